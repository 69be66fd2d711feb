//! Decentralised data-parallel PPO (DD-PPO): one run spread over `N` processes ("ranks"),
//! e.g. launched by `mpirun -np N` or `srun --mpi=pmix` (feature `mpi`, [`mpi`]).
//!
//! # What each rank does
//! Every rank owns `num_envs` envs: rank `r` seeds them, and its action-sampling / shuffling RNG,
//! from [`rank_seed`]`(seed, r)` (rank 0 uses the run's seed itself, so a one-rank run is
//! seeded like a plain one). All ranks start from the same weights (drawn from `seed`, checked
//! by a hash) and per update:
//! 1. collect a rollout of their own envs (`num_steps` steps; with DD-PPO's preemption,
//!    [`DistributedOptions::preempt_fraction`], a rank that lags behind stops early once
//!    enough ranks have finished);
//! 2. merge the normalisers' statistics: each rank's share of the rollout's observations and
//!    discounted returns is merged, in rank order, into the statistics every rank held at the
//!    rollout's start, so that all ranks continue with the same statistics;
//! 3. run the PPO update on their own rollout, averaging gradients, advantage statistics and
//!    diagnostics per minibatch (see [`agents::ppo::collective`]);
//! 4. exchange the episodes that finished and any stop request (a signal on any rank stops
//!    every rank after the update, with a checkpoint).
//!
//! `total_steps` counts the env steps of all ranks together: the run has
//! `total_steps / (ranks · num_envs · num_steps)` updates.
//!
//! # Equivalence
//! `N` ranks of `E` envs take the same optimizer steps as one process with the `N·E` envs
//! whose minibatches are the unions of the ranks' minibatches: the weights after every update
//! are the same up to the order of floating-point reductions. [`reference_run`] is that one
//! process (it collects each rank's rollout with that rank's seeds, joins the buffers and
//! updates on the union minibatches); the `distributed` test compares a 2-rank run with it.
//! Within a rollout a rank normalises with the statistics of its own share of the steps so
//! far (merged with every rank's at the end of the rollout), which [`reference_run`] does too.
//!
//! # Files
//! Rank 0 alone writes the run: config.toml, metrics.csv (episodes and returns of all ranks;
//! the `info/` scalars are rank 0's), TensorBoard, the lock and the checkpoints. A checkpoint
//! holds, besides the usual files (rank 0's state in `state.json`), `ranks.json`: every rank's
//! RNG, env state, observations, memory and normalisers, gathered by rank 0 and written inside
//! the atomic checkpoint folder. A resume restarts every rank from the checkpoint rank 0 reads
//! (the ranks need a shared file system); it must have the same number of ranks.
//!
//! # Faults
//! Ranks whose configs differ are refused at the start, naming the first differing key.
//! A setup step that fails on any rank fails on every rank, naming the rank. An MPI rank that
//! dies is reported by the launcher (`mpirun` names the rank and ends the job); a rank that
//! stops answering makes the others give up after a bounded wait ([`mpi`]). The checkpoint on
//! disk is then the last complete one, and a relaunch with `--resume` continues from it.

#[cfg(feature = "mpi")]
pub mod mpi;

use std::path::PathBuf;
use std::time::Instant;

use agents::ppo::{
    Collective, FinishedEpisode, ObsNormalizer, RewardNormalizer, RolloutBuffer, RolloutState,
    RunningMeanStd, UpdatePlan, adam, collect_rollout, collect_rollout_until, ppo_update_with,
    shuffled_minibatches,
};
use agents::{ActorCritic, Policy};
use anyhow::{Context, Result, bail};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use envs::{Env, EnvError, EpisodeStats, VecEnv, VecEnvState, derive_seed};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{
    RngState, SavedRollout, TrainerState, VerifiedCheckpoint, open_checkpoint, write_atomic,
};
use crate::config::{EnvConfig, TrainConfig};
use crate::metrics::{InfoLog, MetricsWriter};
use crate::run_dir::{INFO_FILE, RunDir};
use crate::signals::StopFlag;
use crate::trainer::{
    ENV_SEED_STREAM, RNG_SEED_STREAM, RunSummary, TrainOptions, UpdateLoop, first_difference,
    init_policy, is_periodic_checkpoint, metrics_row, open_run, stop_on_update_error,
    write_checkpoint,
};

/// Options of a distributed run beyond [`TrainOptions`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DistributedOptions {
    /// DD-PPO's rollout preemption: once this fraction of the ranks (rounded up) has finished
    /// its rollout, the others end theirs at the start of their next sequence that leaves
    /// them a whole number of sequences per minibatch; the update then weights every rank by
    /// its number of samples, as one process with the union of the rollouts would. `None`
    /// (the default): every rank collects `num_steps` steps. A rollout cut short has fewer
    /// steps, so the run ends with fewer than `total_steps` env steps; the equivalence with
    /// one process holds for the rollouts as collected.
    pub preempt_fraction: Option<f64>,
}

/// The file of a distributed checkpoint that holds every rank's state ([`RankState`]).
pub const RANKS_FILE: &str = "ranks.json";

/// The environment variable that makes a missing MPI launcher fail the distributed tests
/// instead of skipping them.
pub const REQUIRE_MPI_ENV: &str = "FBRL_REQUIRE_MPI";

/// The seed rank `rank` derives its envs and its RNG from: `seed` itself for rank 0,
/// `derive_seed(seed, 2^32 + rank)` for the others.
pub fn rank_seed(seed: u64, rank: usize) -> u64 {
    if rank == 0 {
        seed
    } else {
        derive_seed(seed, (1u64 << 32) + rank as u64)
    }
}

/// Number of updates of a run of `cfg` on `ranks` ranks: `total_steps / (ranks · num_envs ·
/// num_steps)`.
pub fn num_updates(cfg: &TrainConfig, ranks: usize) -> usize {
    (cfg.total_steps / (cfg.batch_size() * ranks).max(1) as u64) as usize
}

/// The environment variables by which [`mpi_launcher`] recognises a launcher.
pub const LAUNCHER_VARS: [&str; 5] = [
    "OMPI_COMM_WORLD_SIZE",
    "PMIX_RANK",
    "PMI_RANK",
    "PMI_SIZE",
    "MPI_LOCALNRANKS",
];

/// The launcher a process was started by, from its environment: `Some(description)` under
/// `mpirun` / `mpiexec` (Open MPI, MPICH) or `srun --mpi=pmix|pmi2`.
pub fn mpi_launcher() -> Option<String> {
    for var in LAUNCHER_VARS {
        if let Ok(v) = std::env::var(var) {
            return Some(format!("{var}={v}"));
        }
    }
    None
}

/// One rank's part of a checkpoint (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankState {
    /// The rank.
    pub rank: usize,
    /// The number of ranks of the run.
    pub ranks: usize,
    /// FNV-1a 64 hash of the rank's weights (hex): the same on every rank.
    pub weights_hash: String,
    /// Where the rank's rollout stands: its RNG, envs, observations, episode starts, policy
    /// memory and normalisers (merged statistics, this rank's discounted returns); its keys
    /// stand at the top level of the rank's entry.
    #[serde(flatten)]
    pub rollout: SavedRollout,
    /// The normalisers' `f64` figures as bit patterns (see [`normalizer_bits`]): JSON numbers
    /// may come back one unit in the last place off, these exactly, so that a resume
    /// continues bit for bit.
    #[serde(default)]
    pub normalizer_bits: Vec<u64>,
}

/// The `f64` figures of the normalisers of `state`, in a fixed order.
fn normalizer_values<'a>(
    reward: Option<&'a mut RewardNormalizer>,
    obs: Option<&'a mut ObsNormalizer>,
) -> Vec<&'a mut f64> {
    let mut out: Vec<&'a mut f64> = Vec::new();
    if let Some(n) = reward {
        out.extend(n.return_rms.mean.iter_mut());
        out.extend(n.return_rms.var.iter_mut());
        out.push(&mut n.return_rms.count);
        out.extend(n.returns.iter_mut());
    }
    if let Some(n) = obs {
        out.extend(n.rms.mean.iter_mut());
        out.extend(n.rms.var.iter_mut());
        out.push(&mut n.rms.count);
    }
    out
}

/// The bit patterns of the normalisers' figures of `state` (see [`RankState`]).
pub fn normalizer_bits(state: &RolloutState) -> Vec<u64> {
    let (mut reward, mut obs) = (state.reward_norm.clone(), state.obs_norm.clone());
    normalizer_values(reward.as_mut(), obs.as_mut())
        .into_iter()
        .map(|x| x.to_bits())
        .collect()
}

/// Puts the figures of [`normalizer_bits`] back into `state`'s normalisers (the same shapes).
fn restore_normalizer_bits(state: &mut RolloutState, bits: &[u64]) -> Result<()> {
    let values = normalizer_values(state.reward_norm.as_mut(), state.obs_norm.as_mut());
    if values.len() != bits.len() {
        bail!(
            "{RANKS_FILE} holds {} normaliser figures, the run's normalisers have {}",
            bits.len(),
            values.len()
        );
    }
    for (v, b) in values.into_iter().zip(bits) {
        *v = f64::from_bits(*b);
    }
    Ok(())
}

/// FNV-1a 64 hash of every float parameter's values, in visiting order.
struct WeightsHash(u64);

impl ModuleVisitor for WeightsHash {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let values = param
            .val()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap_or_default();
        for v in values {
            for b in v.to_bits().to_le_bytes() {
                self.0 ^= u64::from(b);
                self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
}

/// A hash of `model`'s weights (equal weights, equal hash).
pub fn weights_hash<M: Module>(model: &M) -> u64 {
    let mut h = WeightsHash(0xcbf2_9ce4_8422_2325);
    model.visit(&mut h);
    h.0
}

/// Every float parameter of `model`, flattened in visiting order (to compare weights).
pub fn flat_weights<M: Module>(model: &M) -> Vec<f32> {
    struct Flat(Vec<f32>);
    impl ModuleVisitor for Flat {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let values = param
                .val()
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap_or_default();
            self.0.extend(values);
        }
    }
    let mut f = Flat(Vec::new());
    model.visit(&mut f);
    f.0
}

/// Every rank's `local` result: the value where all ranks succeeded, otherwise on every rank
/// an error naming the first rank that failed and its message.
pub fn agree<T>(comm: &dyn Collective, what: &'static str, local: Result<T>) -> Result<T> {
    let mine = match &local {
        Ok(_) => vec![1u8],
        Err(e) => {
            let mut b = vec![0u8];
            b.extend(format!("{e:#}").into_bytes());
            b
        }
    };
    let all = comm.all_gather_bytes(&mine, what);
    match all.iter().position(|b| b.first() != Some(&1)) {
        None => local,
        Some(r) => {
            let msg = String::from_utf8_lossy(all[r].get(1..).unwrap_or_default()).to_string();
            if r == comm.rank() {
                local.with_context(|| format!("{what} failed on rank {r} of {}", comm.size()))
            } else {
                bail!("{what} failed on rank {r} of {}: {msg}", comm.size())
            }
        }
    }
}

/// Refuses ranks whose configs differ from rank 0's (naming the first differing key) or whose
/// options (`what`) differ.
fn check_same_config(comm: &dyn Collective, cfg: &TrainConfig, options: &str) -> Result<()> {
    let mine = format!("{options}\n{}", cfg.to_toml());
    let all = comm.all_gather_bytes(mine.as_bytes(), "config check");
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    let first = text(&all[0]);
    for (r, other) in all.iter().enumerate().skip(1) {
        let other = text(other);
        if other == first {
            continue;
        }
        let (o0, c0) = first.split_once('\n').unwrap_or((&first, ""));
        let (o1, c1) = other.split_once('\n').unwrap_or((&other, ""));
        if o0 != o1 {
            bail!(
                "rank {r} was started with other options than rank 0 ({o1} vs {o0}): every rank \
                 must run the same command"
            );
        }
        let key = match (
            toml::from_str::<toml::Table>(c0),
            toml::from_str::<toml::Table>(c1),
        ) {
            (Ok(a), Ok(b)) => first_difference(&a, &b, "").unwrap_or_else(|| "?".into()),
            _ => "?".into(),
        };
        bail!(
            "rank {r}'s config differs from rank 0's at `{key}`: every rank must train the same \
             config (the same file and overrides)"
        );
    }
    Ok(())
}

/// A rank's envs, seeded from [`rank_seed`], checked against the config.
fn rank_envs<E: Env>(
    cfg: &TrainConfig,
    make_env: &(impl Fn(usize) -> Result<E, EnvError> + Sync),
    rank: usize,
) -> Result<VecEnv<E>> {
    let seed = derive_seed(rank_seed(cfg.seed, rank), ENV_SEED_STREAM);
    let venv = VecEnv::from_fn(cfg.num_envs, seed, make_env).context("cannot build the envs")?;
    crate::trainer::check_envs_match_config(cfg, &venv.envs()[0])?;
    Ok(venv)
}

/// The rollout state of a rank at update 0: envs reset, RNG from [`rank_seed`].
fn rank_fresh_state<E: Env>(
    cfg: &TrainConfig,
    venv: &mut VecEnv<E>,
    model: &Policy,
    rank: usize,
    device: &Device,
) -> Result<RolloutState> {
    let n = cfg.num_envs;
    let obs = venv.reset().context("cannot reset the envs")?.to_vec();
    Ok(RolloutState {
        obs,
        episode_starts: vec![1.0; n],
        memory: model.valid().init_memory(n, device),
        rng: ChaCha8Rng::seed_from_u64(derive_seed(rank_seed(cfg.seed, rank), RNG_SEED_STREAM)),
        reward_norm: cfg
            .ppo
            .norm_reward
            .then(|| RewardNormalizer::new(n, cfg.ppo.gamma, cfg.ppo.reward_clip)),
        obs_norm: cfg
            .ppo
            .norm_obs
            .then(|| ObsNormalizer::new(venv.obs_dim(), cfg.ppo.obs_clip)),
    })
}

/// The statistics merged into `after` since `before` (the same stream continued): count, mean
/// and variance of the added samples alone (the inverse of the parallel-variance merge).
pub fn stats_added(before: &RunningMeanStd, after: &RunningMeanStd) -> RunningMeanStd {
    let (c0, c1) = (before.count, after.count);
    let cd = c1 - c0;
    let dim = after.dim();
    if cd <= 0.0 {
        return RunningMeanStd {
            mean: vec![0.0; dim],
            var: vec![0.0; dim],
            count: 0.0,
        };
    }
    let mut mean = vec![0.0; dim];
    let mut var = vec![0.0; dim];
    for j in 0..dim {
        let md = (after.mean[j] * c1 - before.mean[j] * c0) / cd;
        let delta = md - before.mean[j];
        let m2 = after.var[j] * c1 - before.var[j] * c0 - delta * delta * c0 * cd / c1;
        mean[j] = md;
        var[j] = (m2 / cd).max(0.0);
    }
    RunningMeanStd {
        mean,
        var,
        count: cd,
    }
}

/// Merges the statistics `b` (count, mean, variance) into `a` (parallel-variance formula).
pub fn merge_stats(a: &mut RunningMeanStd, b: &RunningMeanStd) {
    if b.count <= 0.0 {
        return;
    }
    let total = a.count + b.count;
    for j in 0..a.dim() {
        let delta = b.mean[j] - a.mean[j];
        let m2 =
            a.var[j] * a.count + b.var[j] * b.count + delta * delta * a.count * b.count / total;
        a.mean[j] += delta * b.count / total;
        a.var[j] = m2 / total;
    }
    a.count = total;
}

/// The normalisers' statistics at the start of a rollout.
#[derive(Clone)]
struct NormSnapshot {
    obs: Option<RunningMeanStd>,
    ret: Option<RunningMeanStd>,
}

impl NormSnapshot {
    fn of(state: &RolloutState) -> Self {
        Self {
            obs: state.obs_norm.as_ref().map(|n| n.rms.clone()),
            ret: state.reward_norm.as_ref().map(|n| n.return_rms.clone()),
        }
    }
}

fn stats_to_bytes(s: &RunningMeanStd, out: &mut Vec<u8>) {
    out.extend(s.count.to_le_bytes());
    for x in s.mean.iter().chain(&s.var) {
        out.extend(x.to_le_bytes());
    }
}

fn stats_from_bytes(b: &[u8], dim: usize) -> (RunningMeanStd, &[u8]) {
    let f = |i: usize| f64::from_le_bytes(b[8 * i..8 * i + 8].try_into().expect("8 bytes"));
    let s = RunningMeanStd {
        count: f(0),
        mean: (0..dim).map(|j| f(1 + j)).collect(),
        var: (0..dim).map(|j| f(1 + dim + j)).collect(),
    };
    (s, &b[8 * (1 + 2 * dim)..])
}

/// Merges every rank's share of the rollout into the statistics all ranks held at its start
/// (`before`), in rank order, so that every rank ends with the same statistics. `shares` are
/// the ranks' added statistics `(observations, returns)`.
fn merge_shares(
    state: &mut RolloutState,
    before: &NormSnapshot,
    shares: &[(Option<RunningMeanStd>, Option<RunningMeanStd>)],
) {
    if let (Some(norm), Some(start)) = (state.obs_norm.as_mut(), &before.obs) {
        let mut merged = start.clone();
        for (obs, _) in shares {
            merge_stats(&mut merged, obs.as_ref().expect("every rank normalises"));
        }
        norm.rms = merged;
    }
    if let (Some(norm), Some(start)) = (state.reward_norm.as_mut(), &before.ret) {
        let mut merged = start.clone();
        for (_, ret) in shares {
            merge_stats(&mut merged, ret.as_ref().expect("every rank normalises"));
        }
        norm.return_rms = merged;
    }
}

fn own_share(
    state: &RolloutState,
    before: &NormSnapshot,
) -> (Option<RunningMeanStd>, Option<RunningMeanStd>) {
    (
        state
            .obs_norm
            .as_ref()
            .zip(before.obs.as_ref())
            .map(|(n, b)| stats_added(b, &n.rms)),
        state
            .reward_norm
            .as_ref()
            .zip(before.ret.as_ref())
            .map(|(n, b)| stats_added(b, &n.return_rms)),
    )
}

/// Exchanges the ranks' shares of the rollout's normaliser statistics and merges them.
fn sync_normalizers(comm: &dyn Collective, state: &mut RolloutState, before: &NormSnapshot) {
    if before.obs.is_none() && before.ret.is_none() {
        return;
    }
    let (obs, ret) = own_share(state, before);
    let mut bytes = Vec::new();
    if let Some(s) = &obs {
        stats_to_bytes(s, &mut bytes);
    }
    if let Some(s) = &ret {
        stats_to_bytes(s, &mut bytes);
    }
    let obs_dim = obs.as_ref().map_or(0, RunningMeanStd::dim);
    let shares: Vec<_> = comm
        .all_gather_bytes(&bytes, "normaliser statistics")
        .iter()
        .map(|b| {
            let mut rest = b.as_slice();
            let o = obs.as_ref().map(|_| {
                let (s, r) = stats_from_bytes(rest, obs_dim);
                rest = r;
                s
            });
            let r = ret.as_ref().map(|_| stats_from_bytes(rest, 1).0);
            (o, r)
        })
        .collect();
    merge_shares(state, before, &shares);
}

/// Bytes of an episode record before its counts.
const EPISODE_RECORD: usize = 14;

/// Episodes and a stop request, as one rank sends them after an update: the signal (i32),
/// then per episode its env (u32), return (f32), length (u32), success (u8: none, false,
/// true), truncated (u8) and the total of each of the env's counts `counts`
/// ([`envs::Env::episode_counts`], the same on every rank; f32 each, in that order, 0 for
/// a count the episode did not report); all little-endian.
fn encode_after_update(
    signal: Option<i32>,
    counts: &[&str],
    finished: &[FinishedEpisode],
) -> Vec<u8> {
    let mut b = signal.unwrap_or(0).to_le_bytes().to_vec();
    for e in finished {
        b.extend((e.env as u32).to_le_bytes());
        b.extend(e.stats.ret.to_le_bytes());
        b.extend(e.stats.length.to_le_bytes());
        b.push(match e.stats.success {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        });
        b.push(u8::from(e.stats.truncated));
        for name in counts {
            b.extend(e.stats.count(name).unwrap_or(0.0).to_le_bytes());
        }
    }
    b
}

/// The signal and the episodes of [`encode_after_update`]'s bytes, the episodes' envs
/// numbered from `env_offset`.
fn decode_after_update(
    b: &[u8],
    env_offset: usize,
    counts: &[&'static str],
    out: &mut Vec<FinishedEpisode>,
) -> i32 {
    let signal = i32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
    for rec in b[4..].chunks_exact(EPISODE_RECORD + 4 * counts.len()) {
        let u = |i: usize| u32::from_le_bytes(rec[i..i + 4].try_into().expect("4 bytes"));
        let mut stats = EpisodeStats {
            ret: f32::from_bits(u(4)),
            length: u(8),
            success: match rec[12] {
                0 => None,
                1 => Some(false),
                _ => Some(true),
            },
            truncated: rec[13] != 0,
            ..EpisodeStats::default()
        };
        for (k, name) in counts.iter().enumerate() {
            stats
                .counts
                .set(name, f32::from_bits(u(EPISODE_RECORD + 4 * k)));
        }
        out.push(FinishedEpisode {
            env: env_offset + u(0) as usize,
            stats,
        });
    }
    signal
}

/// Builds the envs of `cfg.env` and trains on the ranks of `comm` (see [`train_distributed`]).
pub fn train_distributed_from_config(
    cfg: &TrainConfig,
    opts: TrainOptions<'_>,
    dopts: &DistributedOptions,
    comm: &dyn Collective,
) -> Result<RunSummary> {
    if let EnvConfig::Custom(c) = &cfg.env {
        return Err(crate::config::env_error(c.not_buildable()).into());
    }
    train_distributed(cfg, |_| cfg.env.build(), opts, dopts, comm)
}

/// Where a rank starts: fresh or from the checkpoint rank 0 chose.
struct Start {
    model: Policy,
    optim: ModuleOptimizer,
    counters: TrainerState,
    state: RolloutState,
}

/// Trains one run on the ranks of `comm` (every rank calls this with the same config and
/// options; see the module docs). `cfg.num_envs` is the number of envs of each rank. Rank 0
/// returns the run's summary; the other ranks return theirs with the same counters.
///
/// Not supported here (refused): training hooks (`--eval-every`), a custom env whose name is
/// left to the env, and resuming envs that cannot replay their episodes. `cfg.threads` is not
/// applied (the caller runs each rank in a pool of that size, as `fbrl train` does), and a stop signal is honoured after the
/// update under way, on every rank.
pub fn train_distributed<E: Env>(
    cfg: &TrainConfig,
    make_env: impl Fn(usize) -> Result<E, EnvError> + Sync,
    mut opts: TrainOptions<'_>,
    dopts: &DistributedOptions,
    comm: &dyn Collective,
) -> Result<RunSummary> {
    if !cfg.algorithm.is_ppo() {
        bail!(
            "distributed training runs PPO only, the config has algorithm = \"{}\"; train \
             it in one process (without --distributed)",
            cfg.algorithm
        );
    }
    let started = Instant::now();
    let (rank, ranks) = (comm.rank(), comm.size());
    let options = format!(
        "resume={} run_dir={:?} stop_after={:?} hooks={} {dopts:?}",
        opts.resume,
        opts.run_dir,
        opts.stop_after_updates,
        opts.hooks.len()
    );
    check_same_config(comm, cfg, &options)?;
    agree(comm, "the config check", {
        let checks = || -> Result<()> {
            cfg.validate()?;
            if !opts.hooks.is_empty() {
                bail!("training hooks (--eval-every) are not supported in a distributed run");
            }
            if let Some(f) = dopts.preempt_fraction
                && !(f > 0.0 && f <= 1.0)
            {
                bail!("the preemption fraction must be in (0, 1], got {f}");
            }
            if matches!(&cfg.env, EnvConfig::Custom(c) if c.name.is_empty()) {
                bail!("a distributed run needs the custom env's name in its config");
            }
            crate::resources::check_run_fits(cfg, &make_env)?;
            Ok(())
        };
        checks()
    })?;
    let device = Device::default();
    let ad_device = device.clone().autodiff();
    let num_updates = num_updates(cfg, ranks);
    if num_updates == 0 {
        bail!(
            "total_steps = {} is less than one update of {ranks} ranks × {} envs × {} steps",
            cfg.total_steps,
            cfg.num_envs,
            cfg.num_steps
        );
    }
    let (n, t_len) = (cfg.num_envs, cfg.num_steps);

    let built = agree(comm, "building the envs and the policy", {
        let build = || -> Result<(VecEnv<E>, Policy)> {
            let venv = rank_envs(cfg, &make_env, rank)?;
            let dist = agents::ActionDist::from_space(venv.action_space());
            device.seed(cfg.seed);
            let model = init_policy(&cfg.policy, venv.obs_dim(), &dist, &ad_device)?;
            Ok((venv, model))
        };
        build()
    })?;
    let (mut venv, model) = built;

    // Rank 0 opens (or creates) the run and holds its lock; the others learn where it is.
    let opened = agree(
        comm,
        "opening the run directory",
        if rank == 0 {
            open_run(cfg, &opts).map(Some)
        } else {
            Ok(None)
        },
    )?;
    let (run_path, restart, run0) = {
        let mine = match &opened {
            Some((run, _, restart)) => {
                format!("{}{}", u8::from(*restart), run.path.display())
            }
            None => String::new(),
        };
        let all = comm.all_gather_bytes(mine.as_bytes(), "run directory");
        let text = String::from_utf8_lossy(&all[0]).to_string();
        let (flag, path) = text.split_at(1);
        (PathBuf::from(path), flag == "1", opened)
    };
    let ckpt_root = run_path.join("checkpoint");

    let start = agree(comm, "starting the run", {
        let mut start = || -> Result<Start> {
            if restart {
                let state = rank_fresh_state(cfg, &mut venv, &model, rank, &device)?;
                let counters = TrainerState::at_start(
                    cfg.to_toml(),
                    num_updates,
                    RngState::capture(&state.rng),
                    venv.state(),
                );
                Ok(Start {
                    model: model.clone(),
                    optim: adam(&cfg.ppo),
                    counters,
                    state,
                })
            } else {
                Ok(Start {
                    model: model.clone(),
                    optim: adam(&cfg.ppo),
                    counters: TrainerState::at_start(
                        String::new(),
                        num_updates,
                        RngState::capture(&ChaCha8Rng::seed_from_u64(0)),
                        VecEnvState::default(),
                    ),
                    state: rank_fresh_state(cfg, &mut venv, &model, rank, &device)?,
                })
            }
        };
        start()
    })?;
    let Start {
        mut model,
        mut optim,
        mut counters,
        mut state,
    } = start;
    if !restart {
        // Every rank resumes from the checkpoint rank 0 found (the newest intact one).
        let (chosen, opened) = if rank == 0 {
            match crate::checkpoint::open_latest_to_continue(&ckpt_root) {
                Ok(c) => (Ok(c.dir.display().to_string()), Some(c)),
                Err(e) => (Err(e), None),
            }
        } else {
            (Ok(String::new()), None)
        };
        let chosen = agree(comm, "finding the latest checkpoint", chosen)?;
        let all = comm.all_gather_bytes(chosen.as_bytes(), "checkpoint choice");
        let dir = PathBuf::from(String::from_utf8_lossy(&all[0]).to_string());
        // Rank 0 opened (and checked) it while choosing; the others open it now.
        let ckpt = opened.map_or_else(|| open_checkpoint(&dir), Ok);
        let resumed = agree(
            comm,
            "resuming from the checkpoint",
            ckpt.and_then(|ckpt| {
                resume_rank(
                    cfg,
                    &ckpt,
                    rank,
                    ranks,
                    num_updates,
                    &mut venv,
                    model,
                    optim,
                    &device,
                )
            }),
        )?;
        (model, optim, counters, state) = resumed;
    }
    // The same weights everywhere (the same seed draws them; a resume loads them).
    let hashes = comm.all_gather_bytes(
        &weights_hash(&model).to_le_bytes(),
        "weights check at the start",
    );
    if hashes.iter().any(|h| *h != hashes[0]) {
        bail!(
            "the ranks start from different weights (the policy initialisation is not deterministic on this backend)"
        );
    }

    // Rank 0's files.
    let mut writer = None;
    if let Some((run, lock, _)) = run0 {
        let mut metrics = if restart {
            write_atomic(&run.config_path(), cfg.to_toml().as_bytes())?;
            MetricsWriter::create_for(
                run.metrics_path(),
                venv.envs()[0].episode_counts(),
                agents::ppo::PPO_COLUMNS,
            )
            .context("cannot create the run's metrics.csv")?
        } else {
            MetricsWriter::resume(run.metrics_path(), counters.updates_done)?
        };
        if cfg.tensorboard && counters.updates_done < num_updates {
            let at = (!restart).then_some(counters.env_steps);
            metrics = metrics.with_tensorboard(&run.tensorboard_dir(), at)?;
        }
        let info_log = InfoLog::open(run.path.join(INFO_FILE), counters.updates_done)?;
        if !opts.quiet && opts.progress.is_none() {
            eprintln!(
                "fbrl: {} · {} ({} parameters) · {ranks} ranks × {} envs × {} steps · {num_updates} updates → {}",
                cfg.env.name(),
                cfg.policy.kind(),
                model.num_parameters(),
                cfg.num_envs,
                cfg.num_steps,
                run.path.display()
            );
        }
        opts.report_start(&run.path, &counters, restart, None);
        writer = Some((run, lock, metrics, info_log));
    }
    // Every rank agrees that rank 0's files are open before the first update.
    agree(comm, "opening the run's files", Ok(()))?;

    let mut lp = UpdateLoop::new(started, &counters, num_updates, opts.stop_after_updates);
    // With preemption: how many ranks must have finished before the others stop.
    let preempt_after = dopts
        .preempt_fraction
        .map(|f| ((f * ranks as f64).ceil() as usize).clamp(1, ranks));
    let num_minibatches = cfg.ppo.num_minibatches.max(1);

    let seq_len = cfg.seq_len();
    while counters.updates_done < lp.stop_at {
        let update = counters.updates_done + 1;
        let t0 = Instant::now();
        let lr = cfg.ppo.learning_rate_at(update - 1, num_updates);
        let before = NormSnapshot::of(&state);
        let rollout_policy = model.valid();
        let mut seen = 0usize;
        let mut preempt = |t: usize| match preempt_after {
            // Only where this rank keeps a whole number of sequences per minibatch.
            Some(after) if (n * t / seq_len).is_multiple_of(num_minibatches) => {
                seen += comm.poll_done(update);
                seen >= after
            }
            _ => false,
        };
        let (mut buf, finished) = collect_rollout_until(
            &rollout_policy,
            &mut venv,
            &mut state,
            t_len,
            seq_len,
            &device,
            &mut preempt,
        )
        .with_context(|| format!("rollout of update {update} failed on rank {rank}"))?;
        drop(rollout_policy);
        // Every rank's rollout length: the weights of the ranks in the update.
        let (share, global_batch) = if preempt_after.is_some() {
            comm.notify_done(update);
            comm.wait_done(update, ranks - 1 - seen);
            let lengths: Vec<u64> = comm
                .all_gather_bytes(&(buf.num_steps as u64).to_le_bytes(), "rollout lengths")
                .iter()
                .map(|b| u64::from_le_bytes(b[..8].try_into().expect("8 bytes")))
                .collect();
            let total: u64 = lengths.iter().sum();
            (
                (ranks as f64 * buf.num_steps as f64 / total as f64) as f32,
                total as usize * n,
            )
        } else {
            (1.0, ranks * n * t_len)
        };
        sync_normalizers(comm, &mut state, &before);
        let t_rollout = lp.rollout_done(t0);
        buf.compute_advantages(cfg.ppo.gamma, cfg.ppo.gae_lambda);
        let mut order: Vec<usize> = (0..buf.num_envs * buf.chunks_per_env()).collect();
        let rng = &mut state.rng;
        let mut minibatches =
            |_epoch: usize| shuffled_minibatches(&mut order, rng, num_minibatches);
        let result = ppo_update_with(
            model,
            &mut optim,
            &buf,
            &cfg.ppo,
            lr,
            &ad_device,
            update,
            &|| false,
            UpdatePlan {
                minibatches: &mut minibatches,
                comm: Some(comm),
                share,
            },
        );
        let (new_model, stats) = if rank == 0 {
            stop_on_update_error(result, update, &ckpt_root)?
        } else {
            result.with_context(|| format!("PPO update {update} failed on rank {rank}"))?
        };
        model = new_model;
        lp.update_done(t0, t_rollout);

        // Episodes of every rank, and whether any rank was asked to stop.
        let signal = opts.stop.as_ref().and_then(StopFlag::requested);
        let counts = venv.envs()[0].episode_counts();
        let all = comm.all_gather_bytes(
            &encode_after_update(signal, counts, &finished),
            "episode exchange",
        );
        let mut episodes = Vec::new();
        let mut signal = None;
        for (r, b) in all.iter().enumerate() {
            let s = decode_after_update(b, r * n, counts, &mut episodes);
            if s != 0 && signal.is_none() {
                signal = Some(s);
            }
        }
        if let (Some(s), Some(flag)) = (signal, opts.stop.as_ref()) {
            flag.request(s);
        }

        let steps_per_s = lp.count_update(&mut counters, update, global_batch, episodes.len(), t0);
        let row = metrics_row(
            &counters,
            &agents::learner::LearnerStats::from(stats),
            agents::ppo::PPO_COLUMNS,
            writer
                .as_ref()
                .map_or(&[][..], |(_, _, metrics, _)| metrics.counts()),
            lr,
            steps_per_s,
            &episodes,
        );
        if let Some((_, _, metrics, info_log)) = writer.as_mut() {
            lp.log_row(metrics, info_log, &buf.info_scalar_means(), &row, &mut opts)?;
        }
        lp.last_row = Some(row);

        if is_periodic_checkpoint(cfg, update) || update == lp.stop_at || signal.is_some() {
            let saved = checkpoint_ranks(
                comm,
                cfg,
                writer.as_mut().map(|(run, _, metrics, _)| (&*run, metrics)),
                &model,
                &optim,
                &mut counters,
                &state,
                &venv,
            )?;
            if let Some(signal) = signal {
                return Err(lp.interrupted(signal, update, saved, run_path.clone(), false));
            }
        }
    }

    Ok(lp.summary(run_path, &counters, None))
}

/// This rank's state for a checkpoint.
fn rank_state<E: Env>(
    model: &Policy,
    state: &RolloutState,
    venv: &VecEnv<E>,
    rank: usize,
    ranks: usize,
) -> Result<RankState> {
    Ok(RankState {
        rank,
        ranks,
        weights_hash: format!("{:016x}", weights_hash(model)),
        rollout: SavedRollout::capture(state, venv)?,
        normalizer_bits: normalizer_bits(state),
    })
}

/// Gathers every rank's state and has rank 0 write the checkpoint (with [`RANKS_FILE`]) and the
/// run's policy file; every rank learns whether it succeeded. Refuses ranks whose weights
/// drifted apart.
#[allow(clippy::too_many_arguments)]
fn checkpoint_ranks<E: Env>(
    comm: &dyn Collective,
    cfg: &TrainConfig,
    writer: Option<(&RunDir, &mut MetricsWriter)>,
    model: &Policy,
    optim: &ModuleOptimizer,
    counters: &mut TrainerState,
    state: &RolloutState,
    venv: &VecEnv<E>,
) -> Result<PathBuf> {
    let (rank, ranks) = (comm.rank(), comm.size());
    let mine = agree(
        comm,
        "saving the rank states",
        rank_state(model, state, venv, rank, ranks)
            .and_then(|s| serde_json::to_vec(&s).context("cannot serialise the rank state")),
    )?;
    let all = comm.all_gather_bytes(&mine, "checkpoint gather");
    let states: Vec<RankState> = all
        .iter()
        .map(|b| serde_json::from_slice(b))
        .collect::<Result<_, _>>()
        .context("cannot read a rank's state")?;
    if let Some(r) = states
        .iter()
        .position(|s| s.weights_hash != states[0].weights_hash)
    {
        bail!(
            "rank {r}'s weights differ from rank 0's at update {} (the ranks drifted apart); \
             the last checkpoint is left as it was",
            counters.updates_done
        );
    }
    let written = match writer {
        Some((run, metrics)) => {
            // An error here reaches every rank through `agree` below, as one in the writing.
            serde_json::to_vec(&states)
                .map_err(anyhow::Error::from)
                .and_then(|ranks_json| {
                    write_checkpoint(
                        cfg,
                        run,
                        model,
                        optim,
                        counters,
                        state,
                        venv,
                        metrics,
                        vec![(RANKS_FILE.to_string(), ranks_json)],
                    )
                })
        }
        None => Ok(PathBuf::new()),
    };
    let written = agree(comm, "writing the checkpoint", written)?;
    let all = comm.all_gather_bytes(written.display().to_string().as_bytes(), "checkpoint path");
    Ok(PathBuf::from(String::from_utf8_lossy(&all[0]).to_string()))
}

/// A rank's model, optimizer, counters and rollout state from the opened checkpoint `ckpt`.
#[allow(clippy::too_many_arguments)]
fn resume_rank<E: Env>(
    cfg: &TrainConfig,
    ckpt: &VerifiedCheckpoint,
    rank: usize,
    ranks: usize,
    num_updates: usize,
    venv: &mut VecEnv<E>,
    model: Policy,
    optim: ModuleOptimizer,
    device: &Device,
) -> Result<(Policy, ModuleOptimizer, TrainerState, RolloutState)> {
    let dir = ckpt.dir.as_path();
    if let Some(key) = ckpt.differing_key(cfg)? {
        bail!(
            "cannot resume: `{key}` differs from the config the checkpoint {} was trained with",
            dir.display()
        );
    }
    if ckpt.state.num_updates != num_updates {
        bail!(
            "cannot resume: the checkpoint's run has {} updates, {ranks} ranks of this config give \
             {num_updates}",
            ckpt.state.num_updates
        );
    }
    let Some(bytes) = ckpt.read_extra(RANKS_FILE)? else {
        bail!(
            "cannot resume {} on {ranks} ranks: it is the checkpoint of a single-process run \
             (no {RANKS_FILE}); resume it without --distributed",
            dir.display()
        );
    };
    let states: Vec<RankState> = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is corrupted", dir.join(RANKS_FILE).display()))?;
    if states.len() != ranks {
        bail!(
            "cannot resume {}: it was written by {} ranks, this job has {ranks} (relaunch with \
             the same number of ranks)",
            dir.display(),
            states.len()
        );
    }
    let mine = &states[rank];
    if !venv.envs().iter().all(Env::resumes_by_replay) {
        bail!("a distributed run of envs that cannot replay their episodes cannot be resumed");
    }
    let obs = mine
        .rollout
        .replay(venv, &format!("rank {rank}'s envs"), dir)?;
    let model = ckpt.load_model(model)?;
    let optim = ckpt.load_optim(optim)?;
    let mut state = mine.rollout.restore(
        obs,
        cfg.num_envs,
        device,
        &format!("{}: rank {rank}", dir.join(RANKS_FILE).display()),
    )?;
    if !mine.normalizer_bits.is_empty() {
        restore_normalizer_bits(&mut state, &mine.normalizer_bits)
            .with_context(|| format!("cannot resume rank {rank} from {}", dir.display()))?;
    }
    if let Some(n) = &state.reward_norm {
        n.check(cfg.num_envs)
            .map_err(|e| anyhow::anyhow!("rank {rank}'s reward normaliser: {e}"))?;
    }
    Ok((model, optim, ckpt.state.clone(), state))
}

/// The single-process reference of a run on `ranks` ranks (see the module docs): the weights
/// after `updates` updates of one process that collects each rank's rollout (that rank's envs
/// and RNG, from [`rank_seed`]), merges the normalisers as the ranks do, joins the rollouts into
/// one buffer of `ranks · num_envs` envs and updates on the unions of the minibatches each rank
/// would draw.
pub fn reference_run<E: Env>(
    cfg: &TrainConfig,
    make_env: impl Fn(usize) -> Result<E, EnvError> + Sync,
    ranks: usize,
    updates: usize,
) -> Result<Policy> {
    cfg.validate()?;
    let device = Device::default();
    let ad_device = device.clone().autodiff();
    let num_updates = num_updates(cfg, ranks);
    let mut venvs = (0..ranks)
        .map(|r| rank_envs(cfg, &make_env, r))
        .collect::<Result<Vec<_>>>()?;
    let dist = agents::ActionDist::from_space(venvs[0].action_space());
    device.seed(cfg.seed);
    let mut model = init_policy(&cfg.policy, venvs[0].obs_dim(), &dist, &ad_device)?;
    let mut optim = adam(&cfg.ppo);
    let mut states = venvs
        .iter_mut()
        .enumerate()
        .map(|(r, v)| rank_fresh_state(cfg, v, &model, r, &device))
        .collect::<Result<Vec<_>>>()?;
    let seq_len = cfg.seq_len();
    for update in 1..=updates {
        let lr = cfg.ppo.learning_rate_at(update - 1, num_updates);
        let policy = model.valid();
        let mut bufs: Vec<RolloutBuffer> = Vec::with_capacity(ranks);
        let mut befores = Vec::with_capacity(ranks);
        for (venv, state) in venvs.iter_mut().zip(states.iter_mut()) {
            let before = NormSnapshot::of(state);
            let (buf, _) = collect_rollout(&policy, venv, state, cfg.num_steps, seq_len, &device)?;
            bufs.push(buf);
            befores.push(before);
        }
        let shares: Vec<_> = states
            .iter()
            .zip(&befores)
            .map(|(s, b)| own_share(s, b))
            .collect();
        for (state, before) in states.iter_mut().zip(&befores) {
            merge_shares(state, before, &shares);
        }
        for b in &mut bufs {
            b.compute_advantages(cfg.ppo.gamma, cfg.ppo.gae_lambda);
        }
        let buf = RolloutBuffer::concat_envs(&bufs);
        let per_rank = bufs[0].num_envs * bufs[0].chunks_per_env();
        let mut orders: Vec<Vec<usize>> = (0..ranks).map(|_| (0..per_rank).collect()).collect();
        let m = cfg.ppo.num_minibatches.max(1);
        let mut minibatches = |_epoch: usize| {
            let mut union = vec![Vec::new(); m];
            for (r, (order, state)) in orders.iter_mut().zip(states.iter_mut()).enumerate() {
                for (k, group) in shuffled_minibatches(order, &mut state.rng, m)
                    .into_iter()
                    .enumerate()
                {
                    union[k].extend(group.into_iter().map(|u| r * per_rank + u));
                }
            }
            union
        };
        let (new_model, _) = ppo_update_with(
            model,
            &mut optim,
            &buf,
            &cfg.ppo,
            lr,
            &ad_device,
            update,
            &|| false,
            UpdatePlan {
                minibatches: &mut minibatches,
                comm: None,
                share: 1.0,
            },
        )?;
        model = new_model;
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_statistics_merge_back_to_the_whole() {
        let mut whole = RunningMeanStd::new(2);
        whole.update(&[1.0, 2.0, 3.0, 5.0, -1.0, 0.5]);
        let before = whole.clone();
        let batch = [4.0, 1.0, 2.5, -2.0, 7.0, 3.0, 0.0, 0.0];
        whole.update(&batch);
        let added = stats_added(&before, &whole);
        assert!((added.count - 4.0).abs() < 1e-9);
        let mut alone = RunningMeanStd::new(2);
        alone.update(&batch);
        for j in 0..2 {
            assert!(
                (added.mean[j] - alone.mean[j]).abs() < 1e-4,
                "{added:?} {alone:?}"
            );
            assert!(
                (added.var[j] - alone.var[j]).abs() < 1e-3,
                "{added:?} {alone:?}"
            );
        }
        let mut merged = before.clone();
        merge_stats(&mut merged, &added);
        for j in 0..2 {
            assert!((merged.mean[j] - whole.mean[j]).abs() < 1e-12);
            assert!((merged.var[j] - whole.var[j]).abs() < 1e-12);
        }
    }

    #[test]
    fn episodes_round_trip_through_the_exchange() {
        let mut stats = EpisodeStats {
            ret: 1.5,
            length: 17,
            success: Some(true),
            truncated: true,
            ..EpisodeStats::default()
        };
        stats.counts.set("goals", 2.0);
        stats.counts.set("keys", 0.5);
        let mut plain = stats;
        plain.counts = Default::default();
        let eps = vec![
            FinishedEpisode { env: 3, stats },
            FinishedEpisode {
                env: 0,
                stats: plain,
            },
        ];
        let names = ["goals", "keys"];
        let b = encode_after_update(Some(15), &names, &eps);
        assert_eq!(b.len(), 4 + 2 * (EPISODE_RECORD + 8));
        let mut out = Vec::new();
        assert_eq!(decode_after_update(&b, 8, &names, &mut out), 15);
        assert_eq!((out[0].env, out[1].env), (11, 8));
        assert_eq!(out[0].stats, eps[0].stats);
        assert_eq!(out[0].stats.count("goals"), Some(2.0));
        // An episode without counts arrives with totals 0.
        assert_eq!(out[1].stats.count("keys"), Some(0.0));
        // Without counts, the record is as short as it can be.
        let b = encode_after_update(None, &[], &eps);
        let mut out = Vec::new();
        assert_eq!(decode_after_update(&b, 0, &[], &mut out), 0);
        assert_eq!(b.len(), 4 + 2 * EPISODE_RECORD);
        assert!(out[0].stats.counts.is_empty() && out[0].stats.ret == 1.5);
    }

    #[test]
    fn rank_zero_keeps_the_run_seed() {
        assert_eq!(rank_seed(7, 0), 7);
        assert_ne!(rank_seed(7, 1), rank_seed(7, 2));
    }
}
