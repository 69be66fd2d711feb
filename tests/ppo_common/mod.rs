//! Shared helpers of the PPO integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Mutex;

use envs::{Env, EnvError, VecEnv};
use fbrl::metrics::{MetricsRow, read_metrics};
use fbrl::{TrainConfig, TrainOptions, train_from_config};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Tests of one binary run on parallel threads, but policy initialisation draws from the
/// backend's global RNG: training runs take this lock so each run's initialisation is
/// reproducible.
pub static TRAIN_LOCK: Mutex<()> = Mutex::new(());

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

/// Mean of a column over the last `k` rows that have a value.
pub fn tail_mean(rows: &[MetricsRow], k: usize, col: impl Fn(&MetricsRow) -> f64) -> f64 {
    let vals: Vec<f64> = rows.iter().map(col).filter(|v| v.is_finite()).collect();
    let tail = &vals[vals.len().saturating_sub(k)..];
    tail.iter().sum::<f64>() / tail.len() as f64
}
