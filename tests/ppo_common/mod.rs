//! Shared helpers of the PPO integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Mutex;

use agents::PolicyConfig;
use envs::{Env, EnvError, GridMazeConfig, VecEnv};
use fbrl::metrics::{MetricsRow, read_metrics};
use fbrl::{EnvConfig, TrainConfig, TrainOptions, train_from_config};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Tests of one binary run on parallel threads, but policy initialisation draws from the
/// backend's global RNG: training runs take this lock so each run's initialisation is
/// reproducible.
pub static TRAIN_LOCK: Mutex<()> = Mutex::new(());

/// A run of `updates` updates of `num_envs` envs × `num_steps` steps on GridMaze
/// `multi(7, horizon)` with `policy`, a checkpoint every 2 updates, the rest default.
pub fn maze_cfg(
    policy: PolicyConfig,
    horizon: u32,
    num_envs: usize,
    num_steps: usize,
    updates: usize,
) -> TrainConfig {
    TrainConfig {
        env: EnvConfig::Gridmaze(GridMazeConfig::multi(7, horizon)),
        policy,
        num_envs,
        num_steps,
        total_steps: (num_envs * num_steps * updates) as u64,
        checkpoint_every: 2,
        ..TrainConfig::default()
    }
}

/// Trains `cfg` quietly into `dir` (resuming the run there with `resume`), stopping after
/// `stop` updates if given.
pub fn train_until(
    cfg: &TrainConfig,
    dir: &Path,
    resume: bool,
    stop: Option<usize>,
) -> anyhow::Result<fbrl::RunSummary> {
    let _guard = TRAIN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    train_from_config(
        cfg,
        TrainOptions {
            run_dir: Some(dir.to_path_buf()),
            resume,
            quiet: true,
            stop_after_updates: stop,
            ..Default::default()
        },
    )
}

/// Resumes the run of `cfg` in `dir` to its end; returns its metrics rows.
pub fn resume_to_end(cfg: &TrainConfig, dir: &Path) -> Vec<MetricsRow> {
    train_until(cfg, dir, true, None).unwrap();
    read_metrics(dir.join("metrics.csv")).unwrap()
}

/// Trains `cfg` on the envs `make` builds, quietly, into `dir`.
pub fn train_envs<E: Env>(
    cfg: &TrainConfig,
    make: impl Fn(usize) -> Result<E, EnvError> + Sync,
    dir: &Path,
) -> anyhow::Result<fbrl::RunSummary> {
    let _guard = TRAIN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    fbrl::train(
        cfg,
        make,
        TrainOptions {
            run_dir: Some(dir.to_path_buf()),
            quiet: true,
            ..Default::default()
        },
    )
}

/// Trains `cfg` quietly into `dir` and returns its metrics rows.
pub fn train_rows(cfg: &TrainConfig, dir: &Path) -> Vec<MetricsRow> {
    let _guard = TRAIN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let summary = train_from_config(
        cfg,
        TrainOptions {
            run_dir: Some(dir.to_path_buf()),
            quiet: true,
            ..Default::default()
        },
    )
    .expect("training failed");
    assert_eq!(summary.updates_done, cfg.num_updates());
    read_metrics(dir.join("metrics.csv")).expect("metrics.csv unreadable")
}

/// Statistics of a uniformly random policy over `episodes` finished episodes:
/// (mean return, success rate among episodes that report success).
pub fn random_policy<E: Env>(
    make: impl Fn(usize) -> Result<E, EnvError>,
    episodes: usize,
    seed: u64,
) -> (f64, f64) {
    let mut venv = VecEnv::from_fn(16, seed, make).unwrap();
    venv.reset().unwrap();
    let na = venv.num_actions();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut ret, mut n, mut succ, mut ns) = (0.0f64, 0usize, 0usize, 0usize);
    while n < episodes {
        let actions: Vec<usize> = (0..16).map(|_| rng.random_range(0..na)).collect();
        let step = venv.step(&actions).unwrap();
        for (_, s) in &step.finished {
            ret += f64::from(s.ret);
            n += 1;
            if let Some(ok) = s.success {
                ns += 1;
                succ += usize::from(ok);
            }
        }
    }
    (
        ret / n as f64,
        if ns == 0 {
            f64::NAN
        } else {
            succ as f64 / ns as f64
        },
    )
}

/// `x` as raw bits, NaN as one value: NaN compares equal to NaN.
pub fn bits(x: f64) -> u64 {
    if x.is_nan() { u64::MAX } else { x.to_bits() }
}

/// Every column of a metrics row but the wall-clock ones and the env's counts, as raw bits.
pub fn row_bits(r: &MetricsRow) -> Vec<u64> {
    let mut v = vec![r.update as u64, r.env_steps, r.episodes as u64];
    let cells = [
        r.return_mean,
        r.return_min,
        r.return_max,
        r.length_mean,
        r.success_rate,
        r.policy_loss,
        r.value_loss,
        r.entropy,
        r.explained_var,
        r.grad_norm,
        r.lr,
    ];
    let learner = r.learner.iter().map(|(_, x)| x);
    v.extend(cells.into_iter().chain(learner).map(bits));
    v
}

/// Asserts that the rows `b` are the rows `a`, compared by `key`; `what` names them.
pub fn assert_same_rows(
    a: &[MetricsRow],
    b: &[MetricsRow],
    what: &str,
    key: impl Fn(&MetricsRow) -> Vec<u64>,
) {
    assert_eq!(a.len(), b.len(), "{what}: {} rows vs {}", a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(
            key(x),
            key(y),
            "{what}: row of update {} differs:\n{x:?}\n{y:?}",
            x.update
        );
    }
}

/// Mean of a column over the last `k` rows that have a value.
pub fn tail_mean(rows: &[MetricsRow], k: usize, col: impl Fn(&MetricsRow) -> f64) -> f64 {
    let vals: Vec<f64> = rows.iter().map(col).filter(|v| v.is_finite()).collect();
    let tail = &vals[vals.len().saturating_sub(k)..];
    tail.iter().sum::<f64>() / tail.len() as f64
}
