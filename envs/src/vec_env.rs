//! [`VecEnv`]: N environments stepped together, in parallel with rayon or sequentially, with
//! auto-reset, per-env seeding that does not depend on threads, episode statistics, and
//! exact save/resume.
//!
//! # Buffers
//! Observations come back as one contiguous row-major `[N × obs_dim]` buffer, ready to become
//! a tensor. All buffers live in a [`VecStep`] that is reused from step to step: after the first
//! episodes have grown the per-env action logs, a step allocates nothing, on either path.
//!
//! # Auto-reset
//! When env `i` ends an episode (`terminated` or `truncated`) at a step:
//! - `final_obs[i]` holds the last observation of the episode that ended (bootstrap from it
//!   on truncation);
//! - `obs[i]` holds the *first* observation of env `i`'s next episode (the env was reset);
//! - `finished` holds `(i, stats)` with the ended episode's [`EpisodeStats`].
//!
//! Where an env did not end, `final_obs[i]` equals `obs[i]`: `final_obs` is always the
//! observation that followed the action, so a learner may read it unconditionally.
//!
//! # Seeding
//! Env `i`'s `k`-th episode (`k = 0, 1, …`, counted from the last [`VecEnv::reset`]) is reset
//! with the seed `derive_seed(derive_seed(base_seed, i), k)`. Nothing else is random in the
//! VecEnv, so results never depend on thread scheduling, on the number of threads, or on
//! [`Parallelism`]; the tests check this across the sequential path and rayon pools of 1, 2
//! and 4 threads.
//!
//! # Save and resume
//! [`VecEnv::state`] records, per env, its episode counter, the actions taken so far in the
//! current episode and the running statistics. [`VecEnv::restore`] rebuilds every env by
//! resetting it with the same seed and replaying those actions. This requires the envs to be
//! deterministic given the reset seed and the actions (which [`crate::check_env`] checks), and
//! it verifies the replay: a replay that ends early or gives different statistics is an error.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::env::{BoxSpace, Env, EnvError, EpisodeStats, Info, derive_seed};

/// With the caller outside any rayon pool, [`Parallelism::Auto`] steps sequentially below
/// this many envs.
///
/// Measured with `cargo bench -p envs --bench env_throughput` on 2 cores (GridMaze, multi
/// mode, 3×3 view: ≈ 30–60 ns per env step, so 1024 envs take ≈ 60 µs sequentially): from a
/// thread outside the pool every step pays a hand-off to the pool and back (tens of µs on a
/// busy machine), and rayon stayed at 0.6–1.2× sequential up to 1024 envs. Envs with costlier
/// steps profit much earlier; pick [`Parallelism::Rayon`] for them explicitly.
pub const AUTO_RAYON_MIN_ENVS: usize = 4096;

/// With the caller running inside a rayon pool (`ThreadPool::install`, as the trainer does),
/// [`Parallelism::Auto`] steps sequentially below this many envs.
///
/// Measured as above: inside the pool the hand-off is cheaper; rayon reached 0.55× sequential
/// at 32 envs, 0.9–1.2× at 256–512 and 0.9–1.3× at 1024 envs on a shared 2-core machine.
pub const AUTO_RAYON_MIN_ENVS_IN_POOL: usize = 1024;

/// Rayon splits the envs into about this many chunks per worker thread, so that an unlucky
/// chunk (e.g. one with several resets, which generate a maze) does not stall a whole step.
const CHUNKS_PER_THREAD: usize = 4;

/// How a [`VecEnv`] steps its envs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parallelism {
    /// Sequential when rayon would not pay: a rayon pool with a single thread, or fewer envs
    /// than [`AUTO_RAYON_MIN_ENVS_IN_POOL`] (caller on a rayon worker thread, e.g. inside
    /// `ThreadPool::install`) or [`AUTO_RAYON_MIN_ENVS`] (caller outside any pool); rayon
    /// otherwise.
    #[default]
    Auto,
    /// One env after the other on the calling thread.
    Sequential,
    /// Chunks of envs on the current rayon thread pool (use `ThreadPool::install` to pick one;
    /// running the whole stepping loop inside `install` also makes each step's hand-off to
    /// the pool cheaper).
    Rayon,
}

/// The outcome of one [`VecEnv::step`] (or [`VecEnv::reset`]) for all N envs.
///
/// The buffers are reused between steps; copy what you need to keep.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VecStep {
    /// `[N × obs_dim]` next observations, row-major; for envs that just ended, the first
    /// observation of their new episode (auto-reset).
    pub obs: Vec<f32>,
    /// `[N]` rewards of this step.
    pub rewards: Vec<f32>,
    /// `[N]` the episode reached a real end at this step.
    pub terminated: Vec<bool>,
    /// `[N]` the episode was cut by a time limit at this step.
    pub truncated: Vec<bool>,
    /// `[N × obs_dim]` the observation that followed the action: for envs whose episode ended,
    /// its last observation (bootstrap from it on truncation); elsewhere equal to `obs`.
    pub final_obs: Vec<f32>,
    /// `[N]` extra facts about each transition.
    pub infos: Vec<Info>,
    /// Episodes that ended at this step, as `(env index, statistics)`, in env order.
    pub finished: Vec<(usize, EpisodeStats)>,
}

impl VecStep {
    /// Whether env `i`'s episode ended at this step, for either reason.
    pub fn done(&self, i: usize) -> bool {
        self.terminated[i] || self.truncated[i]
    }
}

/// Per-env bookkeeping kept by the VecEnv (episode counter, action log, running stats).
#[derive(Clone, Debug, Default)]
struct Slot {
    /// Index of the current episode since the last `reset` (selects the reset seed).
    episode: u64,
    /// Actions taken so far in the current episode (replayed by `restore`).
    actions: Vec<usize>,
    /// Running statistics of the current episode.
    stats: EpisodeStats,
    /// Statistics of the episode that ended at the last step, if one did.
    finished: Option<EpisodeStats>,
}

/// Resume state of one env inside a [`VecEnvState`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnvSlotState {
    /// Index of the current episode since the last reset (selects the reset seed).
    pub episode: u64,
    /// Actions taken so far in the current episode.
    pub actions: Vec<usize>,
    /// Sum of the rewards so far in the current episode.
    pub ret: f32,
    /// Goals reached so far in the current episode.
    pub goals: u32,
}

/// Everything needed to continue a [`VecEnv`] exactly where it was (see [`VecEnv::restore`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VecEnvState {
    /// The base seed all per-env episode seeds are derived from.
    pub base_seed: u64,
    /// Per-env resume state, in env order.
    pub envs: Vec<EnvSlotState>,
}

/// N environments of one type stepped together, with auto-reset (see the [module
/// docs](self) for the buffer layout, auto-reset, seeding and resume rules).
pub struct VecEnv<E: Env> {
    envs: Vec<E>,
    slots: Vec<Slot>,
    base_seed: u64,
    space: BoxSpace,
    obs_dim: usize,
    num_actions: usize,
    parallelism: Parallelism,
    /// `reset`/`restore` ran and no step failed since.
    ready: bool,
    buf: VecStep,
}

/// The seed of env `index`'s `episode`-th episode.
fn episode_seed(base_seed: u64, index: usize, episode: u64) -> u64 {
    derive_seed(derive_seed(base_seed, index as u64), episode)
}

/// Prefixes an env's error with its index.
fn in_env(index: usize, e: EnvError) -> EnvError {
    EnvError::Other(format!("env {index}: {e}"))
}

/// Mutable views of one contiguous run of envs and their slices of the buffers.
struct Lanes<'a, E> {
    /// Index of the first env of the run.
    first: usize,
    envs: &'a mut [E],
    slots: &'a mut [Slot],
    actions: &'a [usize],
    obs: &'a mut [f32],
    final_obs: &'a mut [f32],
    rewards: &'a mut [f32],
    terminated: &'a mut [bool],
    truncated: &'a mut [bool],
    infos: &'a mut [Info],
}

impl<E: Env> Lanes<'_, E> {
    /// Steps every env of the run; auto-resets those that end.
    fn step(self, base_seed: u64, obs_dim: usize) -> Result<(), EnvError> {
        let obs_rows = self.obs.chunks_exact_mut(obs_dim);
        let final_rows = self.final_obs.chunks_exact_mut(obs_dim);
        let lanes = self
            .envs
            .iter_mut()
            .zip(self.slots.iter_mut())
            .zip(self.actions)
            .zip(obs_rows.zip(final_rows))
            .zip(self.rewards.iter_mut())
            .zip(self.terminated.iter_mut().zip(self.truncated.iter_mut()))
            .zip(self.infos.iter_mut());
        for (j, ((((((env, slot), &action), (obs, final_obs)), reward), (term, trunc)), info)) in
            lanes.enumerate()
        {
            let index = self.first + j;
            let s = env.step(action, obs).map_err(|e| in_env(index, e))?;
            slot.actions.push(action);
            slot.stats.ret += s.reward;
            slot.stats.length += 1;
            slot.stats.goals += u32::from(s.info.goal_reached);
            *reward = s.reward;
            *term = s.terminated;
            *trunc = s.truncated;
            *info = s.info;
            final_obs.copy_from_slice(obs);
            if s.done() {
                let mut stats = std::mem::take(&mut slot.stats);
                stats.success = s.info.success;
                stats.truncated = s.truncated && !s.terminated;
                slot.finished = Some(stats);
                slot.actions.clear();
                slot.episode += 1;
                env.reset(episode_seed(base_seed, index, slot.episode), obs)
                    .map_err(|e| in_env(index, e))?;
            } else {
                slot.finished = None;
            }
        }
        Ok(())
    }
}

/// Resets env `index` into episode `slot.episode` and replays `saved`'s actions, checking
/// that the replay reproduces the saved statistics.
fn replay<E: Env>(
    index: usize,
    base_seed: u64,
    env: &mut E,
    slot: &mut Slot,
    saved: &EnvSlotState,
    obs: &mut [f32],
) -> Result<(), EnvError> {
    slot.episode = saved.episode;
    slot.actions.clear();
    slot.stats = EpisodeStats::default();
    slot.finished = None;
    env.reset(episode_seed(base_seed, index, slot.episode), obs)
        .map_err(|e| in_env(index, e))?;
    let total = saved.actions.len();
    for (t, &action) in saved.actions.iter().enumerate() {
        let s = env.step(action, obs).map_err(|e| {
            in_env(
                index,
                EnvError::Other(format!("replaying saved action {t} of {total} failed: {e}")),
            )
        })?;
        slot.actions.push(action);
        slot.stats.ret += s.reward;
        slot.stats.length += 1;
        slot.stats.goals += u32::from(s.info.goal_reached);
        if s.done() {
            return Err(in_env(
                index,
                EnvError::Other(format!(
                    "replaying the saved actions ended the episode at action {} of {total}; \
                     the env is not deterministic given its reset seed and actions",
                    t + 1
                )),
            ));
        }
    }
    if slot.stats.ret.to_bits() != saved.ret.to_bits() || slot.stats.goals != saved.goals {
        return Err(in_env(
            index,
            EnvError::Other(format!(
                "replaying the saved actions gave return {} and {} goals, but the saved state \
                 has return {} and {} goals; the env is not deterministic given its reset \
                 seed and actions",
                slot.stats.ret, slot.stats.goals, saved.ret, saved.goals
            )),
        ));
    }
    Ok(())
}

impl<E: Env> VecEnv<E> {
    /// Wraps `envs` (at least one; all with the same spaces). Call [`VecEnv::reset`] before
    /// the first step.
    pub fn new(envs: Vec<E>, base_seed: u64) -> Result<Self, EnvError> {
        let Some(first) = envs.first() else {
            return Err(EnvError::InvalidConfig {
                field: "envs",
                reason: "a VecEnv needs at least one env, got 0".into(),
            });
        };
        let space = first.observation_space().clone();
        let num_actions = first.action_space().n;
        let obs_dim = space.flat_len();
        if space.low.len() != obs_dim || space.high.len() != obs_dim {
            return Err(EnvError::InvalidConfig {
                field: "envs",
                reason: format!(
                    "env 0's observation space is inconsistent: shape {:?} has {obs_dim} \
                     elements but `low` has {} and `high` has {}",
                    space.shape,
                    space.low.len(),
                    space.high.len()
                ),
            });
        }
        if num_actions == 0 {
            return Err(EnvError::InvalidConfig {
                field: "envs",
                reason: "env 0's action space has 0 actions".into(),
            });
        }
        for (i, env) in envs.iter().enumerate().skip(1) {
            if env.observation_space() != &space {
                return Err(EnvError::InvalidConfig {
                    field: "envs",
                    reason: format!(
                        "env {i}'s observation space (shape {:?}) differs from env 0's \
                         (shape {:?}); all envs of a VecEnv need the same spaces",
                        env.observation_space().shape,
                        space.shape
                    ),
                });
            }
            if env.action_space().n != num_actions {
                return Err(EnvError::InvalidConfig {
                    field: "envs",
                    reason: format!(
                        "env {i} has {} actions but env 0 has {num_actions}; all envs of a \
                         VecEnv need the same spaces",
                        env.action_space().n
                    ),
                });
            }
        }
        let n = envs.len();
        let buf = VecStep {
            obs: vec![0.0; n * obs_dim],
            rewards: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            final_obs: vec![0.0; n * obs_dim],
            infos: vec![Info::default(); n],
            finished: Vec::with_capacity(n),
        };
        Ok(Self {
            slots: vec![Slot::default(); n],
            envs,
            base_seed,
            space,
            obs_dim,
            num_actions,
            parallelism: Parallelism::Auto,
            ready: false,
            buf,
        })
    }

    /// Builds `n` envs with `make(i)` for `i = 0..n` and wraps them; an error from `make`
    /// names the env index.
    pub fn from_fn(
        n: usize,
        base_seed: u64,
        make: impl Fn(usize) -> Result<E, EnvError>,
    ) -> Result<Self, EnvError> {
        let envs = (0..n)
            .map(|i| make(i).map_err(|e| in_env(i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(envs, base_seed)
    }

    /// Sets how envs are stepped; results are the same either way.
    pub fn with_parallelism(mut self, p: Parallelism) -> Self {
        self.parallelism = p;
        self
    }

    /// The configured parallelism.
    pub fn parallelism(&self) -> Parallelism {
        self.parallelism
    }

    /// Whether the next step would use rayon (resolves [`Parallelism::Auto`] against the
    /// number of envs and the current rayon pool).
    pub fn uses_rayon(&self) -> bool {
        match self.parallelism {
            Parallelism::Sequential => false,
            Parallelism::Rayon => true,
            Parallelism::Auto => {
                let min = if rayon::current_thread_index().is_some() {
                    AUTO_RAYON_MIN_ENVS_IN_POOL
                } else {
                    AUTO_RAYON_MIN_ENVS
                };
                self.envs.len() >= min && rayon::current_num_threads() > 1
            }
        }
    }

    /// Number of envs N.
    pub fn num_envs(&self) -> usize {
        self.envs.len()
    }

    /// Length of one env's observation.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Number of discrete actions.
    pub fn num_actions(&self) -> usize {
        self.num_actions
    }

    /// The observation space shared by all envs.
    pub fn observation_space(&self) -> &BoxSpace {
        &self.space
    }

    /// The base seed episode seeds are derived from.
    pub fn base_seed(&self) -> u64 {
        self.base_seed
    }

    /// The envs, in index order.
    pub fn envs(&self) -> &[E] {
        &self.envs
    }

    /// The envs, mutably. Stepping or resetting them directly bypasses the VecEnv's
    /// bookkeeping (episode stats, resume state); use it for inspection and rendering.
    pub fn envs_mut(&mut self) -> &mut [E] {
        &mut self.envs
    }

    /// The buffers of the last step (or reset).
    pub fn last(&self) -> &VecStep {
        &self.buf
    }

    /// Running statistics of env `i`'s current, unfinished episode.
    pub fn current_episode(&self, i: usize) -> Option<&EpisodeStats> {
        self.slots.get(i).map(|s| &s.stats)
    }

    /// Chunk length for the rayon path.
    fn chunk_len(&self) -> usize {
        let chunks = rayon::current_num_threads().max(1) * CHUNKS_PER_THREAD;
        self.envs.len().div_ceil(chunks).max(1)
    }

    /// Starts every env's episode 0 (seed `derive_seed(derive_seed(base_seed, i), 0)`) and
    /// returns the `[N × obs_dim]` first observations.
    pub fn reset(&mut self) -> Result<&[f32], EnvError> {
        let state = VecEnvState {
            base_seed: self.base_seed,
            envs: vec![EnvSlotState::default(); self.envs.len()],
        };
        self.restore(&state)
    }

    /// Steps env `i` with `actions[i]` for every `i`, auto-resetting envs whose episode ends.
    ///
    /// Errors (nothing is stepped): `actions.len() != N`, an action outside the action space
    /// (the message names the env index), or no [`VecEnv::reset`] yet. An error from an env's
    /// own `step`/`reset` names the env index and leaves the VecEnv needing a `reset` or
    /// `restore`.
    pub fn step(&mut self, actions: &[usize]) -> Result<&VecStep, EnvError> {
        let n = self.envs.len();
        if !self.ready {
            return Err(EnvError::Other(
                "VecEnv::step called before reset (or after a failed step); call \
                 VecEnv::reset or VecEnv::restore first"
                    .into(),
            ));
        }
        if actions.len() != n {
            return Err(EnvError::Other(format!(
                "expected {n} actions (one per env), got {}",
                actions.len()
            )));
        }
        if let Some((i, &a)) = actions
            .iter()
            .enumerate()
            .find(|&(_, &a)| a >= self.num_actions)
        {
            return Err(in_env(
                i,
                EnvError::InvalidAction {
                    action: a,
                    n: self.num_actions,
                },
            ));
        }
        let base_seed = self.base_seed;
        let d = self.obs_dim;
        let result = if self.uses_rayon() {
            let c = self.chunk_len();
            let buf = &mut self.buf;
            (
                self.envs.par_chunks_mut(c),
                self.slots.par_chunks_mut(c),
                actions.par_chunks(c),
                buf.obs.par_chunks_mut(c * d),
                buf.final_obs.par_chunks_mut(c * d),
                buf.rewards.par_chunks_mut(c),
                buf.terminated.par_chunks_mut(c),
                buf.truncated.par_chunks_mut(c),
                buf.infos.par_chunks_mut(c),
            )
                .into_par_iter()
                .enumerate()
                .try_for_each(
                    |(k, (envs, slots, actions, obs, final_obs, rewards, term, trunc, infos))| {
                        Lanes {
                            first: k * c,
                            envs,
                            slots,
                            actions,
                            obs,
                            final_obs,
                            rewards,
                            terminated: term,
                            truncated: trunc,
                            infos,
                        }
                        .step(base_seed, d)
                    },
                )
        } else {
            let buf = &mut self.buf;
            Lanes {
                first: 0,
                envs: &mut self.envs,
                slots: &mut self.slots,
                actions,
                obs: &mut buf.obs,
                final_obs: &mut buf.final_obs,
                rewards: &mut buf.rewards,
                terminated: &mut buf.terminated,
                truncated: &mut buf.truncated,
                infos: &mut buf.infos,
            }
            .step(base_seed, d)
        };
        if let Err(e) = result {
            self.ready = false;
            return Err(e);
        }
        self.buf.finished.clear();
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some(stats) = slot.finished {
                self.buf.finished.push((i, stats));
            }
        }
        Ok(&self.buf)
    }

    /// The resume state: per env, its episode counter, the actions of its current episode
    /// and the running statistics (see the [module docs](self)).
    pub fn state(&self) -> VecEnvState {
        VecEnvState {
            base_seed: self.base_seed,
            envs: self
                .slots
                .iter()
                .map(|s| EnvSlotState {
                    episode: s.episode,
                    actions: s.actions.clone(),
                    ret: s.stats.ret,
                    goals: s.stats.goals,
                })
                .collect(),
        }
    }

    /// Rebuilds every env from `state` (reset with the recorded episode's seed, then replay
    /// the recorded actions; the base seed is taken from `state`) and returns the current
    /// `[N × obs_dim]` observations. The last step's rewards and flags are cleared.
    ///
    /// Errors: a state for a different number of envs, or a replay that does not reproduce
    /// the recorded episode (the env is not deterministic given seed and actions).
    pub fn restore(&mut self, state: &VecEnvState) -> Result<&[f32], EnvError> {
        let n = self.envs.len();
        if state.envs.len() != n {
            return Err(EnvError::Other(format!(
                "the saved VecEnv state has {} envs, this VecEnv has {n}",
                state.envs.len()
            )));
        }
        self.ready = false;
        self.base_seed = state.base_seed;
        let base_seed = self.base_seed;
        let d = self.obs_dim;
        if self.uses_rayon() {
            let c = self.chunk_len();
            (
                self.envs.par_chunks_mut(c),
                self.slots.par_chunks_mut(c),
                state.envs.par_chunks(c),
                self.buf.obs.par_chunks_mut(c * d),
            )
                .into_par_iter()
                .enumerate()
                .try_for_each(|(k, (envs, slots, saved, obs))| {
                    let rows = obs.chunks_exact_mut(d);
                    for (j, (((env, slot), saved), obs)) in
                        envs.iter_mut().zip(slots).zip(saved).zip(rows).enumerate()
                    {
                        replay(k * c + j, base_seed, env, slot, saved, obs)?;
                    }
                    Ok(())
                })?;
        } else {
            let rows = self.buf.obs.chunks_exact_mut(d);
            for (i, (((env, slot), saved), obs)) in self
                .envs
                .iter_mut()
                .zip(&mut self.slots)
                .zip(&state.envs)
                .zip(rows)
                .enumerate()
            {
                replay(i, base_seed, env, slot, saved, obs)?;
            }
        }
        let buf = &mut self.buf;
        buf.final_obs.copy_from_slice(&buf.obs);
        buf.rewards.fill(0.0);
        buf.terminated.fill(false);
        buf.truncated.fill(false);
        buf.infos.fill(Info::default());
        buf.finished.clear();
        self.ready = true;
        Ok(&self.buf.obs)
    }
}
