//! [`VecEnv`]: N environments stepped together, in parallel with rayon or sequentially, with
//! auto-reset, per-env seeding that does not depend on threads, episode statistics, and
//! exact save/resume.
//!
//! # Buffers
//! Observations come back as one contiguous row-major `[N × obs_dim]` buffer, ready to become
//! a tensor. All buffers live in a [`VecStep`] that is reused from step to step: after the first
//! episodes have grown the per-env action logs, a step allocates nothing (the rayon path:
//! one small task per helper thread).
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
//! Envs that cannot be replayed ([`Env::resumes_by_replay`] is `false`, e.g. envs in Python)
//! are resumed with [`VecEnv::restart`] instead: each starts its next episode.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::check::panic_message;
use crate::env::{
    Action, ActionSpace, BoxSpace, Env, EnvError, EpisodeStats, Info, MaskProblem, derive_seed,
};

/// [`Parallelism::Auto`] steps sequentially below this many envs (and on a single-thread
/// pool), with rayon from here on.
///
/// Measured with `cargo bench -p envs --bench env_throughput` on 2 cores (GridMaze, multi
/// mode, 3×3 view: ≈ 20–60 ns per env step, so 1024 envs take ≈ 55 µs sequentially); rayon /
/// sequential throughput (best of 15 rounds each), 9×9 mazes, range over four runs:
///
/// | envs              | 256       | 512       | 1024      | 2048      | 4096      |
/// |-------------------|-----------|-----------|-----------|-----------|-----------|
/// | caller in a pool  | 1.00–1.12 | 1.12–1.63 | 1.43–2.32 | 1.84–2.03 | 1.73–1.97 |
/// | caller outside    | 0.92–0.99 | 1.10–1.56 | 1.40–2.14 | 1.79–2.00 | 1.78–1.95 |
///
/// (The sweep's rounds are half as long as those of the bench's main table, whose 1024-env
/// rows (9×9 and 15×15) measured 1.74–2.29× in these four runs.)
///
/// Each step hands work to another thread and waits for its last chunk (a few µs, more on a
/// busy machine), which cheap envs only earn back from several hundred envs on. Envs with costlier steps profit
/// much earlier; pick [`Parallelism::Rayon`] for them explicitly.
pub const AUTO_RAYON_MIN_ENVS: usize = 1024;

/// [`VecEnv::restore`] splits the envs into about this many chunks per worker thread, so
/// that an env with a long replay does not stall the others.
const CHUNKS_PER_THREAD: usize = 4;

/// The rayon path cuts a step into this many chunks, shared between the calling thread and
/// the pool (see `Lanes::step_shared`); so at most this many threads step at once.
const SHARED_CHUNKS: usize = 16;

/// How long the calling thread spins for helpers still stepping their last chunks before it
/// blocks (see `Lanes::step_shared`).
const CALLER_SPIN: Duration = Duration::from_micros(50);

/// Locks `m`; a lock poisoned by a panicking env is still usable (the panic propagates).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How a [`VecEnv`] steps its envs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parallelism {
    /// Sequential when rayon would not pay (a rayon pool with a single thread, or fewer
    /// envs than [`AUTO_RAYON_MIN_ENVS`]); rayon otherwise.
    #[default]
    Auto,
    /// One env after the other on the calling thread.
    Sequential,
    /// Chunks of envs on the current rayon thread pool (use `ThreadPool::install` to pick
    /// one): the calling thread steps chunks itself while tasks on the pool step the others.
    /// Running the whole stepping loop inside `install` (as the trainer does) is a little
    /// faster than calling from outside (no third thread competing for the cores).
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
    /// `[N × mask_width]` the actions allowed at `obs` ([`Env::action_mask`]; all `true` for
    /// an env that gives no mask); empty when no env gives masks ([`VecEnv::has_masks`]).
    pub masks: Vec<bool>,
}

/// One action per env, flat, for [`VecEnv::step_actions`]: `[N]` discrete actions,
/// `[N × dims]` multi-discrete actions or `[N × dim]` continuous actions, env after env.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VecActions<'a> {
    /// `[N]` actions of a `Discrete` space.
    Discrete(&'a [usize]),
    /// `[N × dims]` actions of a `MultiDiscrete` space.
    MultiDiscrete(&'a [usize]),
    /// `[N × dim]` actions of a `Box` space.
    Continuous(&'a [f32]),
}

impl<'a> VecActions<'a> {
    /// Number of values held.
    fn len(&self) -> usize {
        match self {
            VecActions::Discrete(a) | VecActions::MultiDiscrete(a) => a.len(),
            VecActions::Continuous(a) => a.len(),
        }
    }

    /// Env `j`'s action, for actions of `width` values each.
    fn get(&self, j: usize, width: usize) -> Action<'a> {
        match *self {
            VecActions::Discrete(a) => Action::Discrete(a[j]),
            VecActions::MultiDiscrete(a) => Action::MultiDiscrete(&a[j * width..(j + 1) * width]),
            VecActions::Continuous(a) => Action::Continuous(&a[j * width..(j + 1) * width]),
        }
    }

    /// The actions of envs `[0, mid)` and `[mid, ..)`.
    fn split_at(self, mid: usize, width: usize) -> (Self, Self) {
        match self {
            VecActions::Discrete(a) => {
                let (x, y) = a.split_at(mid);
                (VecActions::Discrete(x), VecActions::Discrete(y))
            }
            VecActions::MultiDiscrete(a) => {
                let (x, y) = a.split_at(mid * width);
                (VecActions::MultiDiscrete(x), VecActions::MultiDiscrete(y))
            }
            VecActions::Continuous(a) => {
                let (x, y) = a.split_at(mid * width);
                (VecActions::Continuous(x), VecActions::Continuous(y))
            }
        }
    }
}

/// Actions of one episode, as [`Slot`] logs them for replay: discrete and multi-discrete
/// values in `discrete`, continuous values in `continuous`.
#[derive(Clone, Debug, Default, PartialEq)]
struct ActionLog {
    discrete: Vec<usize>,
    continuous: Vec<f32>,
}

impl ActionLog {
    fn push(&mut self, action: Action<'_>) {
        match action {
            Action::Discrete(a) => self.discrete.push(a),
            Action::MultiDiscrete(a) => self.discrete.extend_from_slice(a),
            Action::Continuous(x) => self.continuous.extend_from_slice(x),
        }
    }

    fn clear(&mut self) {
        self.discrete.clear();
        self.continuous.clear();
    }
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
    actions: ActionLog,
    /// Running statistics of the current episode.
    stats: EpisodeStats,
    /// Statistics of the episode that ended at the last step, if one did.
    finished: Option<EpisodeStats>,
}

/// Resume state of one env inside a [`VecEnvState`].
///
/// A state saved before envs had named counts holds `goals` (a number) instead of `counts`:
/// it loads as the count `goals`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "SlotStateFile")]
pub struct EnvSlotState {
    /// Index of the current episode since the last reset (selects the reset seed).
    pub episode: u64,
    /// Actions taken so far in the current episode: discrete actions, or the values of
    /// multi-discrete actions one action after the other.
    pub actions: Vec<usize>,
    /// Values of the continuous actions taken so far in the current episode, one action
    /// after the other (`Box` action spaces).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub continuous_actions: Vec<f32>,
    /// Sum of the rewards so far in the current episode.
    pub ret: f32,
    /// Totals so far of the env's counts in the current episode ([`EpisodeStats::counts`]).
    #[serde(default, skip_serializing_if = "SavedCounts::is_empty")]
    pub counts: SavedCounts,
}

/// An [`EnvSlotState`] as a file holds it, of this version or of the one before counts
/// (which held `goals`).
#[derive(Deserialize)]
struct SlotStateFile {
    episode: u64,
    actions: Vec<usize>,
    #[serde(default)]
    continuous_actions: Vec<f32>,
    ret: f32,
    #[serde(default)]
    counts: SavedCounts,
    /// The earlier format's goals count.
    #[serde(default)]
    goals: Option<u32>,
}

impl From<SlotStateFile> for EnvSlotState {
    fn from(f: SlotStateFile) -> Self {
        let mut counts = f.counts;
        if let Some(goals) = f.goals
            && !counts.0.contains_key("goals")
        {
            counts.0.insert("goals".into(), goals as f32);
        }
        Self {
            episode: f.episode,
            actions: f.actions,
            continuous_actions: f.continuous_actions,
            ret: f.ret,
            counts,
        }
    }
}

/// An episode's count totals by name, as a resume state keeps them (see
/// [`EnvSlotState::counts`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SavedCounts(pub BTreeMap<String, f32>);

impl SavedCounts {
    /// The count totals of `stats`.
    pub fn of(stats: &EpisodeStats) -> Self {
        Self(
            stats
                .counts
                .iter()
                .map(|(name, total)| (name.to_string(), total))
                .collect(),
        )
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether both hold the same totals, bit for bit; a name missing on one side counts as
    /// 0 there (a state of the format before counts holds `goals` 0 for every env).
    fn same_as(&self, other: &Self) -> bool {
        let total = |c: &Self, name: &str| c.0.get(name).copied().unwrap_or(0.0).to_bits();
        self.0
            .keys()
            .chain(other.0.keys())
            .all(|name| total(self, name) == total(other, name))
    }
}

impl std::fmt::Display for SavedCounts {
    /// `, name total` for each count.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0
            .iter()
            .try_for_each(|(name, total)| write!(f, ", {name} {total}"))
    }
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
    action_space: ActionSpace,
    action_width: usize,
    /// Some env gave an action mask at the last reset.
    masked: bool,
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

/// Runs `call`, env `index`'s own `reset` or `step`: its error is prefixed with the index, and
/// a panic in it becomes an error too, naming the env, what it was `doing` (with the episode's
/// seed, so that the failure can be reproduced alone) and the panic's message, instead of
/// unwinding through the rollout.
fn call_env<T>(
    index: usize,
    doing: impl FnOnce() -> String,
    call: impl FnOnce() -> Result<T, EnvError>,
) -> Result<T, EnvError> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(result) => result.map_err(|e| in_env(index, e)),
        Err(payload) => Err(panicked(index, doing(), &*payload)),
    }
}

/// Resets env `index` into `episode` (its seed derived from `base_seed`) through
/// [`call_env`], refusing a first observation that is not finite.
fn reset_env<E: Env>(
    index: usize,
    env: &mut E,
    episode: u64,
    base_seed: u64,
    obs: &mut [f32],
) -> Result<(), EnvError> {
    let calling = Calling {
        index,
        episode,
        step: None,
    };
    let seed = episode_seed(base_seed, index, episode);
    call_env(
        index,
        || calling.describe(base_seed),
        || env.reset(seed, obs),
    )?;
    check_finite(calling, base_seed, None, obs)
}

/// Mutable views of one contiguous run of envs and their slices of the buffers.
struct Lanes<'a, E> {
    /// Index of the first env of the run.
    first: usize,
    envs: &'a mut [E],
    slots: &'a mut [Slot],
    actions: VecActions<'a>,
    action_width: usize,
    obs: &'a mut [f32],
    final_obs: &'a mut [f32],
    rewards: &'a mut [f32],
    terminated: &'a mut [bool],
    truncated: &'a mut [bool],
    infos: &'a mut [Info],
}

impl<'a, E: Env> Lanes<'a, E> {
    /// Number of envs in the run.
    fn len(&self) -> usize {
        self.envs.len()
    }

    /// Splits the run into envs `[0, mid)` and `[mid, len)`.
    fn split_at(self, mid: usize, obs_dim: usize) -> (Self, Self) {
        let (envs_a, envs_b) = self.envs.split_at_mut(mid);
        let (slots_a, slots_b) = self.slots.split_at_mut(mid);
        let (actions_a, actions_b) = self.actions.split_at(mid, self.action_width);
        let (obs_a, obs_b) = self.obs.split_at_mut(mid * obs_dim);
        let (final_a, final_b) = self.final_obs.split_at_mut(mid * obs_dim);
        let (rewards_a, rewards_b) = self.rewards.split_at_mut(mid);
        let (term_a, term_b) = self.terminated.split_at_mut(mid);
        let (trunc_a, trunc_b) = self.truncated.split_at_mut(mid);
        let (infos_a, infos_b) = self.infos.split_at_mut(mid);
        (
            Lanes {
                first: self.first,
                envs: envs_a,
                slots: slots_a,
                actions: actions_a,
                action_width: self.action_width,
                obs: obs_a,
                final_obs: final_a,
                rewards: rewards_a,
                terminated: term_a,
                truncated: trunc_a,
                infos: infos_a,
            },
            Lanes {
                first: self.first + mid,
                envs: envs_b,
                slots: slots_b,
                actions: actions_b,
                action_width: self.action_width,
                obs: obs_b,
                final_obs: final_b,
                rewards: rewards_b,
                terminated: term_b,
                truncated: trunc_b,
                infos: infos_b,
            },
        )
    }

    /// Steps the run on the current rayon pool with the calling thread working instead of
    /// waiting. The run is cut into at most [`SHARED_CHUNKS`] chunks; the caller takes chunks
    /// from the front and `helpers` tasks spawned on the pool take them from the back, until
    /// they meet. The split adapts to how late the helpers start, and each side keeps mostly
    /// the same envs from step to step (warm caches). On errors in several chunks, the lowest
    /// env's wins. Works the same whether the caller is one of the pool's threads or not.
    fn step_shared(self, helpers: usize, base_seed: u64, obs_dim: usize) -> Result<(), EnvError> {
        let chunk_len = self.len().div_ceil(SHARED_CHUNKS).max(1);
        let used = self.len().div_ceil(chunk_len);
        let mut rest = Some(self);
        let chunks: [Mutex<Option<Self>>; SHARED_CHUNKS] = std::array::from_fn(|_| {
            Mutex::new(rest.take().map(|lanes| {
                if lanes.len() > chunk_len {
                    let (head, tail) = lanes.split_at(chunk_len, obs_dim);
                    rest = Some(tail);
                    head
                } else {
                    lanes
                }
            }))
        });
        // More helpers than chunks left for them would find nothing to do.
        let helpers = helpers.min(used - 1);
        let errors: [Mutex<Option<EnvError>>; SHARED_CHUNKS] =
            std::array::from_fn(|_| Mutex::new(None));
        // Chunks `[front, back)` are still to be stepped.
        let queue = Mutex::new((0, used));
        let work = |from_front: bool| loop {
            let k = {
                let mut q = lock(&queue);
                if q.0 >= q.1 {
                    break;
                }
                if from_front {
                    q.0 += 1;
                    q.0 - 1
                } else {
                    q.1 -= 1;
                    q.1
                }
            };
            if let Some(lanes) = lock(&chunks[k]).take()
                && let Err(e) = lanes.step(base_seed, obs_dim)
            {
                *lock(&errors[k]) = Some(e);
            }
        };
        // Helpers still stepping. When the caller runs out of chunks it spins briefly for
        // them rather than going to sleep in the scope's join, whose wake-up costs more than
        // a chunk takes.
        let pending = AtomicUsize::new(helpers);
        rayon::in_place_scope(|scope| {
            for _ in 0..helpers {
                scope.spawn(|_| {
                    work(false);
                    pending.fetch_sub(1, Ordering::Release);
                });
            }
            work(true);
            let start = Instant::now();
            while pending.load(Ordering::Acquire) > 0 && start.elapsed() < CALLER_SPIN {
                std::hint::spin_loop();
            }
        });
        match errors
            .into_iter()
            .find_map(|e| e.into_inner().unwrap_or_else(|p| p.into_inner()))
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Steps every env of the run; auto-resets those that end. A panic in an env's own code is
    /// caught once for the whole run (not per call, which would cost the hot loop) and becomes
    /// an error naming the env and the call it was in.
    fn step(self, base_seed: u64, obs_dim: usize) -> Result<(), EnvError> {
        let mut calling = Calling::default();
        catch_unwind(AssertUnwindSafe(|| {
            self.step_envs(base_seed, obs_dim, &mut calling)
        }))
        .unwrap_or_else(|payload| {
            Err(panicked(
                calling.index,
                calling.describe(base_seed),
                &*payload,
            ))
        })
    }

    /// [`Lanes::step`]'s loop; `calling` is kept up to date with the env call under way.
    fn step_envs(
        self,
        base_seed: u64,
        obs_dim: usize,
        calling: &mut Calling,
    ) -> Result<(), EnvError> {
        let obs_rows = self.obs.chunks_exact_mut(obs_dim);
        let final_rows = self.final_obs.chunks_exact_mut(obs_dim);
        let (actions, width) = (self.actions, self.action_width);
        let lanes = self
            .envs
            .iter_mut()
            .zip(self.slots.iter_mut())
            .zip(obs_rows.zip(final_rows))
            .zip(self.rewards.iter_mut())
            .zip(self.terminated.iter_mut().zip(self.truncated.iter_mut()))
            .zip(self.infos.iter_mut());
        for (j, (((((env, slot), (obs, final_obs)), reward), (term, trunc)), info)) in
            lanes.enumerate()
        {
            let index = self.first + j;
            let action = actions.get(j, width);
            let t = slot.stats.length + 1;
            *calling = Calling {
                index,
                episode: slot.episode,
                step: Some(t),
            };
            let s = env.step(action, obs).map_err(|e| in_env(index, e))?;
            check_finite(*calling, base_seed, Some(s.reward), obs)?;
            slot.actions.push(action);
            slot.stats.record(&s, t);
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
                calling.episode = slot.episode;
                calling.step = None;
                env.reset(episode_seed(base_seed, index, slot.episode), obs)
                    .map_err(|e| in_env(index, e))?;
                check_finite(*calling, base_seed, None, obs)?;
            } else {
                slot.finished = None;
            }
        }
        Ok(())
    }
}

/// The env call a run's step loop is making, recorded so that a panic in it can be reported.
#[derive(Clone, Copy, Debug, Default)]
struct Calling {
    /// The env's index.
    index: usize,
    /// Its episode.
    episode: u64,
    /// The step of the episode (1-based) it is taking; `None` while it resets.
    step: Option<u32>,
}

impl Calling {
    /// What the env was doing, with its episode's seed (under `base_seed`).
    fn describe(self, base_seed: u64) -> String {
        let seed = episode_seed(base_seed, self.index, self.episode);
        match self.step {
            Some(t) => format!("step {t} of episode {} (reset seed {seed})", self.episode),
            None => format!("reset for episode {} (seed {seed})", self.episode),
        }
    }
}

/// Refuses a NaN or infinite `reward` (none for a reset) or observation value in `obs` from
/// the env call `calling` where it appears, naming the env and the call, rather than letting
/// it reach the policy and the loss.
fn check_finite(
    calling: Calling,
    base_seed: u64,
    reward: Option<f32>,
    obs: &[f32],
) -> Result<(), EnvError> {
    let what = if let Some(r) = reward.filter(|r| !r.is_finite()) {
        format!("a non-finite reward ({r})")
    } else {
        // A value is NaN or infinite when its exponent bits are all set. The largest exponent
        // over the row is taken without an early exit, so that the hot path vectorises.
        const EXPONENT: u32 = 0x7f80_0000;
        if obs.iter().fold(0, |m, x| m.max(x.to_bits() & EXPONENT)) != EXPONENT {
            return Ok(());
        }
        let Some((k, x)) = obs.iter().enumerate().find(|(_, x)| !x.is_finite()) else {
            return Ok(());
        };
        format!("a non-finite observation (element {k} is {x})")
    };
    Err(EnvError::Other(format!(
        "env {} returned {what} in {}",
        calling.index,
        calling.describe(base_seed)
    )))
}

/// The error of env `index`'s panic (`payload`) while `doing`.
fn panicked(index: usize, doing: String, payload: &(dyn std::any::Any + Send)) -> EnvError {
    EnvError::Other(format!(
        "env {index} panicked in {doing}: {}",
        panic_message(payload)
    ))
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
    reset_env(index, env, slot.episode, base_seed, obs)?;
    let seed = episode_seed(base_seed, index, slot.episode);
    let space = env.action_space();
    let width = space.action_width();
    let saved_actions: Vec<Action<'_>> = match space {
        ActionSpace::Discrete(_) => saved.actions.iter().map(|&a| Action::Discrete(a)).collect(),
        ActionSpace::MultiDiscrete(_) => saved
            .actions
            .chunks_exact(width)
            .map(Action::MultiDiscrete)
            .collect(),
        ActionSpace::Box(_) => saved
            .continuous_actions
            .chunks_exact(width)
            .map(Action::Continuous)
            .collect(),
    };
    let logged = saved.actions.len() + saved.continuous_actions.len();
    if logged != saved_actions.len() * width {
        return Err(in_env(
            index,
            EnvError::Other(format!(
                "the saved state holds {} discrete and {} continuous action values, which \
                 are not whole actions of the {space} action space",
                saved.actions.len(),
                saved.continuous_actions.len()
            )),
        ));
    }
    let total = saved_actions.len();
    for (t, &action) in saved_actions.iter().enumerate() {
        let s = call_env(
            index,
            || format!("replaying saved action {t} of {total} (reset seed {seed})"),
            || {
                env.step(action, obs).map_err(|e| {
                    EnvError::Other(format!("replaying saved action {t} of {total} failed: {e}"))
                })
            },
        )?;
        slot.actions.push(action);
        let t = slot.stats.length + 1;
        slot.stats.record(&s, t);
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
    let replayed = SavedCounts::of(&slot.stats);
    if slot.stats.ret.to_bits() != saved.ret.to_bits() || !replayed.same_as(&saved.counts) {
        return Err(in_env(
            index,
            EnvError::Other(format!(
                "replaying the saved actions gave return {}{}, but the saved state has return \
                 {}{}; the env is not deterministic given its reset seed and actions",
                slot.stats.ret, replayed, saved.ret, saved.counts
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
        let action_space = first.action_space();
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
        if let Err(reason) = action_space.validate() {
            return Err(EnvError::InvalidConfig {
                field: "envs",
                reason: format!("env 0's action space is invalid: {reason}"),
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
            if env.action_space() != action_space {
                return Err(EnvError::InvalidConfig {
                    field: "envs",
                    reason: format!(
                        "env {i}'s action space {} differs from env 0's {action_space}; all \
                         envs of a VecEnv need the same spaces",
                        env.action_space()
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
            masks: Vec::new(),
        };
        Ok(Self {
            slots: vec![Slot::default(); n],
            envs,
            base_seed,
            space,
            obs_dim,
            action_width: action_space.action_width(),
            action_space,
            masked: false,
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
                self.envs.len() >= AUTO_RAYON_MIN_ENVS && rayon::current_num_threads() > 1
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

    /// Number of actions of a `Discrete` action space; for the other spaces, the number of
    /// values in one action ([`ActionSpace::action_width`]).
    pub fn num_actions(&self) -> usize {
        self.action_space
            .num_discrete()
            .unwrap_or(self.action_width)
    }

    /// The action space shared by all envs.
    pub fn action_space(&self) -> &ActionSpace {
        &self.action_space
    }

    /// Whether the envs give action masks (some env returned one at the last reset or
    /// restore); [`VecStep::masks`] is filled then.
    pub fn has_masks(&self) -> bool {
        self.masked
    }

    /// Copies every env's current action mask into `buf.masks` (all `true` for an env that
    /// gives none). Errors name the env whose mask has the wrong length or forbids every
    /// value of a dimension.
    fn collect_masks(&mut self) -> Result<(), EnvError> {
        let Some(width) = self.action_space.mask_width() else {
            self.masked = false;
            return Ok(());
        };
        if !self.masked {
            return Ok(());
        }
        let masks = &mut self.buf.masks;
        masks.resize(self.envs.len() * width, true);
        for (i, (env, row)) in self
            .envs
            .iter()
            .zip(masks.chunks_exact_mut(width))
            .enumerate()
        {
            let Some(mask) = env.action_mask() else {
                row.fill(true);
                continue;
            };
            let reason = match self.action_space.mask_problem(mask) {
                None => {
                    row.copy_from_slice(mask);
                    continue;
                }
                Some(MaskProblem::AllForbidden { dim }) => format!(
                    "action_mask forbids every value of dimension {dim}; at least one action \
                     must be allowed"
                ),
                Some(_) => format!(
                    "action_mask has {} flags, the {} action space needs {width}",
                    mask.len(),
                    self.action_space
                ),
            };
            return Err(in_env(i, EnvError::Other(reason)));
        }
        Ok(())
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

    /// Steps env `i` with the discrete action `actions[i]` for every `i` (a `Discrete` action
    /// space), auto-resetting envs whose episode ends. See [`VecEnv::step_actions`].
    pub fn step(&mut self, actions: &[usize]) -> Result<&VecStep, EnvError> {
        self.step_actions(VecActions::Discrete(actions))
    }

    /// Steps env `i` with its action in `actions` for every `i`, auto-resetting envs whose
    /// episode ends; the masks of the new observations are in [`VecStep::masks`].
    ///
    /// Errors (nothing is stepped): a number of values other than `N ×` the action width,
    /// actions of another kind than the action space, an action outside the action space or
    /// forbidden by the env's current mask (the message names the env index), or no
    /// [`VecEnv::reset`] yet. An error from an env's own `step`/`reset` names the env index
    /// and leaves the VecEnv needing a `reset` or `restore`; so do a panic in them, which is
    /// caught and returned as an error naming the env, the step or reset and the episode's
    /// seed, with the panic's message, and a NaN or infinite reward or observation value,
    /// refused as it appears with the same details.
    pub fn step_actions(&mut self, actions: VecActions<'_>) -> Result<&VecStep, EnvError> {
        let n = self.envs.len();
        if !self.ready {
            return Err(EnvError::Other(
                "VecEnv::step called before reset (or after a failed step); call \
                 VecEnv::reset or VecEnv::restore first"
                    .into(),
            ));
        }
        let width = self.action_width;
        if actions.len() != n * width {
            return Err(EnvError::Other(format!(
                "expected {} action values ({n} envs × {width} per action of {}), got {}",
                n * width,
                self.action_space,
                actions.len()
            )));
        }
        for i in 0..n {
            let action = actions.get(i, width);
            self.action_space.check(action).map_err(|e| in_env(i, e))?;
            let width = self.action_space.mask_width().unwrap_or(0);
            if self.masked
                && let Some(dim) = self
                    .action_space
                    .forbidden_dim(&self.buf.masks[i * width..(i + 1) * width], action)
            {
                return Err(in_env(
                    i,
                    EnvError::ActionOutsideSpace(format!(
                        "{action} is forbidden by the action mask (dimension {dim})"
                    )),
                ));
            }
        }
        let base_seed = self.base_seed;
        let d = self.obs_dim;
        let uses_rayon = self.uses_rayon();
        let buf = &mut self.buf;
        let lanes = Lanes {
            first: 0,
            envs: &mut self.envs,
            slots: &mut self.slots,
            actions,
            action_width: width,
            obs: &mut buf.obs,
            final_obs: &mut buf.final_obs,
            rewards: &mut buf.rewards,
            terminated: &mut buf.terminated,
            truncated: &mut buf.truncated,
            infos: &mut buf.infos,
        };
        let result = if uses_rayon {
            lanes.step_shared(rayon::current_num_threads().max(1) - 1, base_seed, d)
        } else {
            lanes.step(base_seed, d)
        };
        if let Err(e) = result {
            self.ready = false;
            return Err(e);
        }
        // Scan the compact done flags; only the slots of envs that ended are read.
        let buf = &mut self.buf;
        buf.finished.clear();
        for (i, (&term, &trunc)) in buf.terminated.iter().zip(&buf.truncated).enumerate() {
            if term | trunc
                && let Some(stats) = self.slots[i].finished
            {
                buf.finished.push((i, stats));
            }
        }
        if let Err(e) = self.collect_masks() {
            self.ready = false;
            return Err(e);
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
                    actions: s.actions.discrete.clone(),
                    continuous_actions: s.actions.continuous.clone(),
                    ret: s.stats.ret,
                    counts: SavedCounts::of(&s.stats),
                })
                .collect(),
        }
    }

    /// The start of [`Self::restore`] and [`Self::restart`]: checks that `state` is for this
    /// many envs, then takes its base seed; the envs must be stepped from `state` next.
    fn adopt(&mut self, state: &VecEnvState) -> Result<(), EnvError> {
        let n = self.envs.len();
        if state.envs.len() != n {
            return Err(EnvError::Other(format!(
                "the saved VecEnv state has {} envs, this VecEnv has {n}",
                state.envs.len()
            )));
        }
        self.ready = false;
        self.base_seed = state.base_seed;
        Ok(())
    }

    /// Rebuilds every env from `state` (reset with the recorded episode's seed, then replay
    /// the recorded actions; the base seed is taken from `state`) and returns the current
    /// `[N × obs_dim]` observations. The last step's rewards and flags are cleared.
    ///
    /// Errors: a state for a different number of envs, or a replay that does not reproduce
    /// the recorded episode (the env is not deterministic given seed and actions).
    pub fn restore(&mut self, state: &VecEnvState) -> Result<&[f32], EnvError> {
        self.adopt(state)?;
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
        self.rebuilt()
    }

    /// Starts every env's *next* episode from `state`, instead of replaying the one in
    /// progress as [`VecEnv::restore`] does: env `i` is reset into episode
    /// `state.envs[i].episode + 1` (with that episode's seed), its running statistics start
    /// from zero, and the `[N × obs_dim]` first observations are returned. The base seed is
    /// taken from `state`; the last step's rewards and flags are cleared.
    ///
    /// This is how a run resumes envs whose episodes cannot be replayed
    /// ([`Env::resumes_by_replay`] is `false`): the episodes in progress at the checkpoint
    /// are dropped (never reported as finished), and every env continues with the seeds it
    /// would have used next.
    pub fn restart(&mut self, state: &VecEnvState) -> Result<&[f32], EnvError> {
        self.adopt(state)?;
        let d = self.obs_dim;
        for (i, (((env, slot), saved), obs)) in self
            .envs
            .iter_mut()
            .zip(&mut self.slots)
            .zip(&state.envs)
            .zip(self.buf.obs.chunks_exact_mut(d))
            .enumerate()
        {
            *slot = Slot {
                episode: saved.episode + 1,
                ..Slot::default()
            };
            reset_env(i, env, slot.episode, state.base_seed, obs)?;
        }
        self.rebuilt()
    }

    /// Ends [`VecEnv::restore`] and [`VecEnv::restart`]: no last step (rewards and flags
    /// cleared, `final_obs = obs`), the masks of the rebuilt envs, ready to step.
    fn rebuilt(&mut self) -> Result<&[f32], EnvError> {
        let buf = &mut self.buf;
        buf.final_obs.copy_from_slice(&buf.obs);
        buf.rewards.fill(0.0);
        buf.terminated.fill(false);
        buf.truncated.fill(false);
        buf.infos.fill(Info::default());
        buf.finished.clear();
        self.masked = self.action_space.mask_width().is_some()
            && self.envs.iter().any(|e| e.action_mask().is_some());
        if !self.masked {
            self.buf.masks.clear();
        }
        self.collect_masks()?;
        self.ready = true;
        Ok(&self.buf.obs)
    }
}
