//! `metrics.csv`: one row per PPO update, appended as the run goes, truncated on resume.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The CSV header, in column order.
pub const METRICS_HEADER: &str = "update,env_steps,wall_time_s,episodes,return_mean,return_min,return_max,length_mean,goals_mean,success_rate,policy_loss,value_loss,entropy,approx_kl,clip_frac,explained_var,grad_norm,lr,steps_per_s";

/// One row of `metrics.csv`. Episode statistics are over the episodes that finished during
/// this update's rollout; a NaN (no such episode) is written as an empty field.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MetricsRow {
    /// Update number, 1-based.
    pub update: usize,
    /// Env steps so far (all envs), after this update's rollout.
    pub env_steps: u64,
    /// Training wall time so far, seconds (summed across resumes).
    pub wall_time_s: f64,
    /// Episodes finished during this update's rollout.
    pub episodes: usize,
    /// Mean episodic return.
    pub return_mean: f64,
    /// Minimum episodic return.
    pub return_min: f64,
    /// Maximum episodic return.
    pub return_max: f64,
    /// Mean episode length, steps.
    pub length_mean: f64,
    /// Mean goals reached per episode.
    pub goals_mean: f64,
    /// Fraction of successful episodes among those reporting success (NaN if none did).
    pub success_rate: f64,
    /// Clipped surrogate loss.
    pub policy_loss: f64,
    /// Value loss.
    pub value_loss: f64,
    /// Policy entropy, nats.
    pub entropy: f64,
    /// Approximate KL divergence, `mean((r − 1) − log r)`.
    pub approx_kl: f64,
    /// Fraction of clipped ratios.
    pub clip_frac: f64,
    /// Explained variance of the value estimates.
    pub explained_var: f64,
    /// Global gradient norm before clipping (mean over minibatches).
    pub grad_norm: f64,
    /// Learning rate used in this update.
    pub lr: f64,
    /// Env steps per second of this update (rollout + learning).
    pub steps_per_s: f64,
}

fn field(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        String::new()
    }
}

fn parse_field(s: &str) -> Result<f64> {
    if s.is_empty() {
        Ok(f64::NAN)
    } else {
        s.parse::<f64>()
            .with_context(|| format!("not a number: `{s}`"))
    }
}

impl MetricsRow {
    /// The row as a CSV line (no newline); non-finite values are empty fields.
    pub fn to_csv(&self) -> String {
        let v = [
            self.wall_time_s,
            self.episodes as f64,
            self.return_mean,
            self.return_min,
            self.return_max,
            self.length_mean,
            self.goals_mean,
            self.success_rate,
            self.policy_loss,
            self.value_loss,
            self.entropy,
            self.approx_kl,
            self.clip_frac,
            self.explained_var,
            self.grad_norm,
            self.lr,
            self.steps_per_s,
        ];
        let mut s = format!("{},{}", self.update, self.env_steps);
        for x in v {
            s.push(',');
            s.push_str(&field(x));
        }
        s
    }

    /// Parses a CSV line written by [`MetricsRow::to_csv`].
    pub fn from_csv(line: &str) -> Result<Self> {
        let f: Vec<&str> = line.trim_end().split(',').collect();
        let ncols = METRICS_HEADER.split(',').count();
        if f.len() != ncols {
            bail!("expected {ncols} fields, got {}", f.len());
        }
        let p = |i: usize| parse_field(f[i]);
        Ok(Self {
            update: f[0]
                .parse()
                .with_context(|| format!("bad update `{}`", f[0]))?,
            env_steps: f[1]
                .parse()
                .with_context(|| format!("bad env_steps `{}`", f[1]))?,
            wall_time_s: p(2)?,
            episodes: f[3]
                .parse()
                .with_context(|| format!("bad episodes `{}`", f[3]))?,
            return_mean: p(4)?,
            return_min: p(5)?,
            return_max: p(6)?,
            length_mean: p(7)?,
            goals_mean: p(8)?,
            success_rate: p(9)?,
            policy_loss: p(10)?,
            value_loss: p(11)?,
            entropy: p(12)?,
            approx_kl: p(13)?,
            clip_frac: p(14)?,
            explained_var: p(15)?,
            grad_norm: p(16)?,
            lr: p(17)?,
            steps_per_s: p(18)?,
        })
    }
}

/// Reads every row of a `metrics.csv`.
pub fn read_metrics(path: impl AsRef<Path>) -> Result<Vec<MetricsRow>> {
    let path = path.as_ref();
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if i == 0 {
            if line.trim_end() != METRICS_HEADER {
                bail!("{}: unexpected header `{line}`", path.display());
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        rows.push(
            MetricsRow::from_csv(&line)
                .with_context(|| format!("{}: line {}", path.display(), i + 1))?,
        );
    }
    Ok(rows)
}

/// Appends rows to `metrics.csv`, flushing each one.
pub struct MetricsWriter {
    path: PathBuf,
    file: File,
}

impl MetricsWriter {
    /// Creates a new `metrics.csv` with its header (overwriting any file there).
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut file =
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        writeln!(file, "{METRICS_HEADER}")
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self { path, file })
    }

    /// Opens an existing `metrics.csv` for a resumed run: keeps the header and the complete
    /// rows with `update ≤ keep_updates` (rows written after the last checkpoint, and a
    /// half-written last line, are dropped), rewriting the file atomically, then appends.
    pub fn resume(path: impl AsRef<Path>, keep_updates: usize) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut kept = String::new();
        kept.push_str(METRICS_HEADER);
        kept.push('\n');
        let mut lines = text.split_inclusive('\n');
        match lines.next() {
            Some(h) if h.trim_end() == METRICS_HEADER => {}
            _ => bail!("{}: missing or unexpected header", path.display()),
        }
        let mut expected = 1;
        for (i, line) in lines.enumerate() {
            // A line without its newline is a row cut by a kill: drop it.
            if !line.ends_with('\n') {
                break;
            }
            let row = match MetricsRow::from_csv(line) {
                Ok(row) => row,
                // Rows after the checkpoint are dropped anyway; a bad row before it is damage.
                Err(e) if expected <= keep_updates => bail!(
                    "{}: line {} (the row of update {expected}, covered by the checkpoint) is \
                     not a metrics row: {e:#}",
                    path.display(),
                    i + 2
                ),
                Err(_) => break,
            };
            if row.update > keep_updates {
                break;
            }
            if row.update != expected {
                bail!(
                    "{}: row for update {} found where update {expected} was expected",
                    path.display(),
                    row.update
                );
            }
            kept.push_str(line);
            expected += 1;
        }
        if expected != keep_updates + 1 {
            bail!(
                "{}: has rows up to update {} but the checkpoint is at update {keep_updates}",
                path.display(),
                expected - 1
            );
        }
        crate::checkpoint::write_atomic(&path, kept.as_bytes())?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Self { path, file })
    }

    /// Appends one row and flushes it to the OS.
    pub fn append(&mut self, row: &MetricsRow) -> Result<()> {
        writeln!(self.file, "{}", row.to_csv())
            .and_then(|_| self.file.flush())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// Forces the rows written so far to disk.
    pub fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .with_context(|| format!("cannot sync {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_round_trips_and_nan_is_empty() {
        let row = MetricsRow {
            update: 3,
            env_steps: 1024,
            wall_time_s: 1.5,
            episodes: 0,
            return_mean: f64::NAN,
            lr: 2.5e-4,
            ..Default::default()
        };
        let line = row.to_csv();
        assert_eq!(line.split(',').count(), METRICS_HEADER.split(',').count());
        assert!(line.starts_with("3,1024,1.5,0,,"));
        let back = MetricsRow::from_csv(&line).unwrap();
        assert!(back.return_mean.is_nan());
        assert_eq!(back.lr, 2.5e-4);
        assert_eq!(back.update, 3);
    }
}
