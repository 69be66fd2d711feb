//! Run directories: `runs/<env>__<policy>__<seed>__<unix time>/` holding `config.toml`,
//! `metrics.csv`, `checkpoint/` and `policy.fbrl`.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

/// Name of the resolved config file in a run directory.
pub const CONFIG_FILE: &str = "config.toml";
/// Name of the metrics file in a run directory.
pub const METRICS_FILE: &str = "metrics.csv";
/// Name of the file of the env's named step scalars per update ([`crate::metrics::InfoLog`]).
pub const INFO_FILE: &str = "info.csv";
/// Name of the checkpoint folder in a run directory.
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// Name of the policy file in a run directory: the weights of the latest checkpoint with the
/// observation normaliser, rewritten at every checkpoint (`agents::Agent::load` reads it).
pub const POLICY_FILE: &str = "policy.fbrl";
/// Name of the file a run writes when it stops on a non-finite loss or gradient: one line,
/// `update <N>: <message>`. A run that resumes removes it; a run that diverges again
/// rewrites it.
pub const DIVERGED_FILE: &str = "diverged.txt";

/// Why and where a run diverged, from its [`DIVERGED_FILE`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The update (1-based) whose loss or gradient was not finite.
    pub update: usize,
    /// The trainer's message.
    pub message: String,
}

/// The divergence recorded in the run directory `dir`, if any. A file that cannot be
/// parsed still counts (update 0, its text as the message): the run did stop on one.
pub fn divergence(dir: &Path) -> Option<Divergence> {
    let text = std::fs::read_to_string(dir.join(DIVERGED_FILE)).ok()?;
    let line = text.lines().next().unwrap_or("").trim();
    let parsed = line
        .strip_prefix("update ")
        .and_then(|rest| rest.split_once(": "))
        .and_then(|(n, msg)| Some((n.parse().ok()?, msg.to_string())));
    let (update, message) = parsed.unwrap_or((0, line.to_string()));
    Some(Divergence { update, message })
}

/// A run directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    /// Its path.
    pub path: PathBuf,
}

/// The CleanRL-style run name `<env>__<policy>__<seed>__<unix time>`.
pub fn run_name(env: &str, policy: &str, seed: u64, unix_time: u64) -> String {
    format!("{env}__{policy}__{seed}__{unix_time}")
}

impl RunDir {
    /// Creates a new run directory under `root` named by [`run_name`] with the current time
    /// (a `-2`, `-3`, … suffix if that name is taken).
    pub fn create_new(root: &Path, env: &str, policy: &str, seed: u64) -> Result<Self> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let base = run_name(env, policy, seed, now);
        std::fs::create_dir_all(root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        for k in 1.. {
            let name = if k == 1 {
                base.clone()
            } else {
                format!("{base}-{k}")
            };
            let path = root.join(name);
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Self { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()));
                }
            }
        }
        unreachable!()
    }

    /// The directory of a new run of `cfg`: exactly `path` when given (see
    /// [`RunDir::create_at`]), else a new one under `cfg.run_dir` (see [`RunDir::create_new`]).
    pub fn create_for(cfg: &crate::TrainConfig, path: Option<&Path>) -> Result<Self> {
        match path {
            Some(p) => Self::create_at(p),
            None => Self::create_new(
                &cfg.run_dir,
                cfg.env.name(),
                cfg.policy.kind().name(),
                cfg.seed,
            ),
        }
    }

    /// Uses `path` as a fresh run directory: creates it, and refuses one that already holds
    /// a run (a `metrics.csv` or a checkpoint), which only `--resume` may continue, or that
    /// holds anything else but a run lock.
    pub fn create_at(path: &Path) -> Result<Self> {
        let dir = Self {
            path: path.to_path_buf(),
        };
        if dir.metrics_path().exists()
            || dir.checkpoint_dir().exists()
            || dir.config_path().exists()
        {
            bail!(
                "{} already holds a run; resume it or pick another directory",
                path.display()
            );
        }
        // Anything else in the folder (`/`, a home directory, another program's files) is not
        // ours to write into; a run lock alone is (a runner hands a fresh run over with it).
        if let Ok(entries) = std::fs::read_dir(path) {
            let mut others: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|name| name != crate::run_lock::LOCK_FILE)
                .collect();
            if !others.is_empty() {
                others.sort();
                others.truncate(3);
                bail!(
                    "{} is not empty and holds no run ({}…): a new run needs an empty or new \
                     directory",
                    path.display(),
                    others.join(", ")
                );
            }
        }
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(dir)
    }

    /// Opens an existing run directory (it must hold a `config.toml`).
    pub fn open(path: &Path) -> Result<Self> {
        let dir = Self {
            path: path.to_path_buf(),
        };
        if !dir.config_path().is_file() {
            bail!(
                "{} is not a run directory: it has no {CONFIG_FILE}",
                path.display()
            );
        }
        Ok(dir)
    }

    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.path.join(CONFIG_FILE)
    }

    /// `policy.fbrl` (see [`POLICY_FILE`]).
    pub fn policy_path(&self) -> PathBuf {
        self.path.join(POLICY_FILE)
    }

    /// `metrics.csv`.
    pub fn metrics_path(&self) -> PathBuf {
        self.path.join(METRICS_FILE)
    }

    /// `checkpoint/`.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.path.join(CHECKPOINT_DIR)
    }

    /// `tensorboard/` (event files, with `tensorboard = true`).
    pub fn tensorboard_dir(&self) -> PathBuf {
        self.path.join(crate::tensorboard::TENSORBOARD_DIR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_name_is_cleanrl_style() {
        assert_eq!(
            run_name("gridmaze", "feedback", 3, 1700000000),
            "gridmaze__feedback__3__1700000000"
        );
    }
}
