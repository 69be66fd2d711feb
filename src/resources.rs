//! Checks of what a run asks of the machine, made before anything is allocated or written:
//! worker threads, and a memory estimate against the memory available.
//!
//! The estimate is deliberately rough (within a small factor): its job is to turn "memory
//! allocation of 3200000000000 bytes failed" (an abort, after the run folder was created) into
//! an error that names the setting responsible, not to predict the peak exactly.

use anyhow::{Result, bail};
use envs::Env;

use crate::config::TrainConfig;

/// `threads` may be at most this many times the machine's available parallelism.
pub const MAX_THREADS_PER_CORE: usize = 4;

/// A field of `/proc/meminfo` (e.g. `MemTotal`, `MemAvailable`) in bytes, if known.
pub fn meminfo_bytes(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.split(':').next() == Some(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// Bytes of memory available to a new process (`MemAvailable` of `/proc/meminfo`), if known.
pub fn available_memory() -> Option<u64> {
    meminfo_bytes("MemAvailable")
}

/// Checks `threads` (the `threads` key; 0 means one per core) against the machine.
pub fn check_threads(threads: usize) -> Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let max = MAX_THREADS_PER_CORE * cores;
    if threads > max {
        bail!(
            "invalid config: `threads` = {threads} is more than {MAX_THREADS_PER_CORE}× the {cores} \
             core(s) of this machine (at most {max}; 0 = one per core)"
        );
    }
    Ok(())
}

/// Fails, naming `what`, when `bytes` exceed the memory available (no check where that is
/// unknown).
pub fn check_fits(bytes: f64, what: impl FnOnce() -> String) -> Result<()> {
    if let Some(avail) = available_memory()
        && bytes > avail as f64
    {
        bail!(
            "{} needs about {} of memory, but this machine has {} available",
            what(),
            human_bytes(bytes),
            human_bytes(avail as f64)
        );
    }
    Ok(())
}

/// `1.5 GiB`-style sizes.
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// A training run's estimated memory, by part, in bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct RunMemoryEstimate {
    /// `(part, the config keys that size it, bytes)`.
    pub parts: Vec<(&'static str, String, f64)>,
}

impl RunMemoryEstimate {
    /// The sum of the parts.
    pub fn total(&self) -> f64 {
        self.parts.iter().map(|p| p.2).sum()
    }
}

/// Estimates the memory a run of `cfg` needs for envs with `obs_dim` features and
/// `num_actions` actions: weights and optimizer state, envs, the rollout buffer, the policy
/// memory of every env, and the activations of one minibatch's forward and backward pass.
/// The policy's parts come from its kind's declaration
/// ([`agents::PolicySpec::approx_parameters`], [`agents::PolicySpec::footprint`]).
/// Computed in `f64`, so absurd sizes give large numbers, never an overflow.
pub fn estimate_run_memory(
    cfg: &TrainConfig,
    obs_dim: usize,
    num_actions: usize,
) -> RunMemoryEstimate {
    let p = &cfg.policy;
    let f = |x: usize| x as f64;
    let (n, t) = (f(cfg.num_envs), f(cfg.num_steps));
    let params = p.networks() * p.approx_parameters(obs_dim, num_actions);
    // Per env and per step, f32 values.
    let footprint = p.footprint();
    // The policy's sizes, by their keys (`d_model, span`).
    let sizes = p
        .spec
        .spec()
        .values()
        .into_iter()
        .filter(|(_, v)| v.is_u64())
        .map(|(field, _)| field.name)
        .collect::<Vec<_>>()
        .join(", ");
    let minibatch = n / f(cfg.ppo.num_minibatches.max(1));
    RunMemoryEstimate {
        parts: vec![
            (
                "weights and optimizer state",
                format!("policy sizes ({sizes})"),
                params * 4.0 * 5.0,
            ),
            (
                "envs",
                "num_envs".into(),
                n * (f(obs_dim) * 4.0 * 4.0 + 512.0),
            ),
            (
                "rollout buffer",
                "num_envs × num_steps".into(),
                n * t * (f(obs_dim) * 4.0 * 2.0 + 64.0),
            ),
            (
                "policy memory",
                format!("num_envs × policy sizes ({sizes})"),
                n * footprint.memory_per_env * 4.0 * 3.0,
            ),
            (
                "update activations",
                format!("num_envs / num_minibatches × num_steps × policy sizes ({sizes})"),
                minibatch * t * footprint.activations_per_step * 4.0,
            ),
        ],
    }
}

/// Fails before anything is allocated when the run's memory estimate exceeds the memory
/// available, naming the largest part and the keys that size it. Builds env 0 with
/// `make_env` to read the spaces.
pub fn check_run_fits<E: Env>(
    cfg: &TrainConfig,
    make_env: impl Fn(usize) -> Result<E, envs::EnvError>,
) -> Result<()> {
    let env = make_env(0).map_err(|e| anyhow::anyhow!("cannot build env 0: {e}"))?;
    check_sizes_fit(
        cfg,
        env.observation_space().flat_len(),
        agents::ActionDist::from_space(&env.action_space()).param_width(),
    )
}

/// [`check_run_fits`] for known observation and action sizes.
pub fn check_sizes_fit(cfg: &TrainConfig, obs_dim: usize, num_actions: usize) -> Result<()> {
    let estimate = estimate_run_memory(cfg, obs_dim, num_actions);
    let (part, keys, bytes) = estimate
        .parts
        .iter()
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .expect("the estimate has parts");
    check_fits(estimate.total(), || {
        format!(
            "this run (mostly its {part}, about {}, sized by {keys})",
            human_bytes(*bytes)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_run_is_small_and_absurd_sizes_are_huge() {
        let cfg = TrainConfig::default();
        let small = estimate_run_memory(&cfg, 27, 4).total();
        assert!(small < 2e9, "{}", human_bytes(small));
        let mut big = cfg.clone();
        big.num_envs = 1 << 40;
        assert!(estimate_run_memory(&big, 27, 4).total() > 1e15);
        let mut wide = cfg.clone();
        wide.policy.set("d_model", 1 << 24).unwrap();
        wide.policy.set("d_ff", 1 << 24).unwrap();
        assert!(estimate_run_memory(&wide, 27, 4).total() > 1e15);
        assert_eq!(human_bytes(1536.0), "1.5 KiB");
    }

    #[test]
    fn the_estimates_are_the_previous_numbers_and_name_the_kinds_sizes() {
        // What the single per-kind table gave before the kinds declared their own footprint.
        let total = |kind, critic| {
            let cfg = TrainConfig {
                policy: agents::PolicyConfig {
                    critic,
                    ..agents::PolicyConfig::preset(kind)
                },
                ..TrainConfig::default()
            };
            estimate_run_memory(&cfg, 27, 4).total()
        };
        use agents::{CriticKind::*, PolicyKind::*};
        assert_eq!(total(Feedback, Shared), 64_860_676.0);
        assert_eq!(total(Gru, Shared), 9_236_324.0);
        assert_eq!(total(Mlp, Shared), 5_625_444.0);
        assert_eq!(total(Gru, Separate), 16_118_472.0);
        let cfg = TrainConfig {
            policy: agents::PolicyConfig::preset(Mlp),
            ..TrainConfig::default()
        };
        let keys = &estimate_run_memory(&cfg, 27, 4).parts[0].1;
        assert_eq!(keys, "policy sizes (hidden)");
    }

    #[test]
    fn threads_beyond_four_per_core_are_refused() {
        assert!(check_threads(0).is_ok());
        assert!(check_threads(1).is_ok());
        let e = check_threads(100_000).unwrap_err().to_string();
        assert!(e.contains("`threads`") && e.contains("100000"), "{e}");
    }
}
