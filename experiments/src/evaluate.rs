//! Evaluating a run's final checkpoint on held-out seeds (greedy and sampled actions), cached
//! in the run directory as `heldout_eval.json` keyed by the checkpoint and episode count.

use std::path::Path;

use anyhow::{Context, Result};
use burn::prelude::Device;
use envs::Env;
use fbrl::TrainConfig;
use fbrl::eval::{self, ActionSelection, EVAL_SEED_OFFSET};
use serde::{Deserialize, Serialize};

/// File name of the cached evaluation inside a run directory.
pub const EVAL_FILE: &str = "heldout_eval.json";

/// Mean results of one evaluation mode.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalMeans {
    /// Mean episode return.
    pub return_mean: f64,
    /// Mean goals per episode: the mean of the count `goals` (GridMaze's; 0 for an env
    /// that counts no goals).
    pub goals_mean: f64,
    /// Fraction of successful episodes, for tasks that report success.
    pub success_rate: Option<f64>,
}

/// A run's final checkpoint evaluated on held-out seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeldOutEval {
    /// Updates done by the evaluated checkpoint.
    pub updates_done: usize,
    /// Episodes per mode.
    pub episodes: usize,
    /// Base evaluation seed (`seed + EVAL_SEED_OFFSET`).
    pub eval_seed: u64,
    /// Greedy (most likely) actions.
    pub greedy: EvalMeans,
    /// Actions sampled from the policy, as during training.
    pub sampled: EvalMeans,
}

/// Evaluates the latest checkpoint of `run_dir` on `episodes` held-out episodes, greedy and
/// sampled (seeds never used in training, see `fbrl::eval`), or returns the cached
/// result for that checkpoint.
pub fn evaluate_run(run_dir: &Path, episodes: usize) -> Result<HeldOutEval> {
    let config = TrainConfig::load(run_dir.join(fbrl::run_dir::CONFIG_FILE))?;
    let ckpt = fbrl::checkpoint::open_latest(&run_dir.join(fbrl::run_dir::CHECKPOINT_DIR))?;
    let cache = run_dir.join(EVAL_FILE);
    if let Ok(text) = std::fs::read_to_string(&cache)
        && let Ok(saved) = serde_json::from_str::<HeldOutEval>(&text)
        && saved.updates_done == ckpt.state.updates_done
        && saved.episodes == episodes
    {
        return Ok(saved);
    }
    let device = Device::default();
    let probe = config.env.build()?;
    let policy = config
        .policy
        .init_for_env(&*probe, &device)
        .context("cannot build the run's policy")?;
    let policy = ckpt.load_model(policy)?;
    ckpt.check_normalizers(&config, probe.observation_space().flat_len())?;
    let eval_seed = config.seed.wrapping_add(EVAL_SEED_OFFSET);
    let env_cfg = config.env.clone();
    let mut means = Vec::new();
    for mode in [ActionSelection::Greedy, ActionSelection::Sample] {
        let r = eval::evaluate(
            &policy,
            ckpt.state.rollout.obs_norm.as_ref(),
            &|| Ok(env_cfg.build()?),
            episodes,
            eval_seed,
            mode,
            &device,
        )
        .with_context(|| format!("evaluating {}", run_dir.display()))?;
        means.push(EvalMeans {
            return_mean: r.return_mean,
            goals_mean: r.counts.get(envs::GOALS).unwrap_or(0.0),
            success_rate: r.success_rate,
        });
    }
    let result = HeldOutEval {
        updates_done: ckpt.state.updates_done,
        episodes,
        eval_seed,
        greedy: means[0],
        sampled: means[1],
    };
    std::fs::write(&cache, serde_json::to_string_pretty(&result)?)
        .with_context(|| format!("cannot write {}", cache.display()))?;
    Ok(result)
}
