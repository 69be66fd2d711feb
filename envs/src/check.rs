//! [`check_env`]: runs a few random episodes on an env and tells in words what is wrong.
//!
//! Checked, in this order:
//! - the observation space is consistent (`low`/`high` lengths match the shape, bounds are
//!   not NaN, `low <= high`) and so is the action space ([`ActionSpace::validate`]: at least
//!   one action per dimension, finite box bounds);
//! - an action mask, where the env gives one (discrete and multi-discrete spaces only), has
//!   [`ActionSpace::mask_width`] flags and allows at least one value of every dimension;
//!   random actions are drawn from the mask;
//! - every observation from `reset` and `step` is written in full, has the space's length,
//!   is finite and lies within the bounds (the error names the element, its value and the
//!   bound);
//! - rewards are finite;
//! - every episode ends (`terminated` or `truncated`) within [`CheckConfig::max_steps`];
//! - after an episode ended, `step` is refused until the next `reset`;
//! - the same seed and actions give the same trajectory (observations, rewards, flags);
//! - actions outside the space (`n` for `Discrete(n)`, a value `nvec[k]`, a value above a
//!   box's upper bound, an action of the wrong length) and actions the current mask forbids
//!   are refused, and refusing them leaves the env as it was.
//!
//! Panics inside the env are caught and reported as errors.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

use crate::env::{
    Action, ActionBuf, ActionSpace, BoxSpace, Env, EnvError, MaskProblem, Step, derive_seed,
};

/// A quiet NaN with a payload no computation produces: marks observation elements the env
/// did not write.
const UNWRITTEN: u32 = 0x7FC0_5EED;

/// How thoroughly [`check_env_with`] exercises an env.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckConfig {
    /// Number of random-action episodes to run (each is run twice to compare trajectories).
    pub episodes: usize,
    /// An episode that has not ended after this many steps is reported as never ending.
    pub max_steps: u64,
    /// Seed of the episode seeds and of the random actions.
    pub seed: u64,
}

impl Default for CheckConfig {
    fn default() -> Self {
        Self {
            episodes: 3,
            max_steps: 100_000,
            seed: 0,
        }
    }
}

/// What [`check_env`] ran on an env that passed.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckReport {
    /// Episodes run with random actions (not counting the repeated runs for determinism).
    pub episodes: usize,
    /// Steps taken in those episodes.
    pub steps: u64,
    /// Mean episode return under random actions.
    pub mean_return: f64,
    /// Mean episode length in steps.
    pub mean_length: f64,
    /// Episodes that ended by `terminated`.
    pub terminated: usize,
    /// Episodes that ended by `truncated` only.
    pub truncated: usize,
    /// Length of one observation.
    pub obs_dim: usize,
    /// The action space.
    pub action_space: ActionSpace,
    /// Whether the env gave action masks.
    pub masked: bool,
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "env passed: {} random episodes, {} steps (mean return {:.3}, mean length {:.1}, \
             {} terminated, {} truncated); observations of length {} within bounds, finite \
             rewards, same seed gives the same trajectory, actions outside {}{} and steps after \
             the end refused",
            self.episodes,
            self.steps,
            self.mean_return,
            self.mean_length,
            self.terminated,
            self.truncated,
            self.obs_dim,
            self.action_space,
            if self.masked { " or its masks" } else { "" }
        )
    }
}

/// What [`check_env`] found wrong, in words.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CheckError {
    /// The observation space contradicts itself.
    #[error("the observation space is inconsistent: {0}")]
    Space(String),
    /// The action space has no actions.
    #[error("the action space has 0 actions; it needs at least one")]
    NoActions,
    /// The action space contradicts itself (a dimension without values, bad box bounds).
    #[error("the action space is invalid: {0}")]
    ActionSpace(String),
    /// An action mask of the wrong length, on a space that cannot be masked, or forbidding
    /// every value of a dimension.
    #[error("{at}: {detail}")]
    BadMask {
        /// Which call the mask followed.
        at: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The env returned an error where none was expected.
    #[error("{at} returned an error: {source}")]
    EnvFailed {
        /// Which call, e.g. `step 4 of episode 1 (action 2)`.
        at: String,
        /// The env's error.
        source: EnvError,
    },
    /// The env panicked.
    #[error(
        "{at} panicked: {message} (the observation buffer passed had {obs_len} elements, the \
         length of the observation space)"
    )]
    Panicked {
        /// Which call.
        at: String,
        /// The panic message.
        message: String,
        /// Length of the observation buffer that was passed.
        obs_len: usize,
    },
    /// The observation's length differs from the space's.
    #[error("observation length does not match the observation space: {0}")]
    ObsLength(String),
    /// An observation element is NaN or infinite.
    #[error("{at}: observation element {index} is {value}; observations must be finite")]
    NonFiniteObs {
        /// Which call.
        at: String,
        /// Index of the element in the flat observation.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// An observation element lies outside the space's bounds.
    #[error("{at}: observation element {index} is {value}, {side} bound {bound}")]
    ObsOutOfBounds {
        /// Which call.
        at: String,
        /// Index of the element in the flat observation.
        index: usize,
        /// Its value.
        value: f32,
        /// `below its lower` or `above its upper`.
        side: &'static str,
        /// The bound it violates.
        bound: f32,
    },
    /// A reward is NaN or infinite.
    #[error("{at} returned reward {reward}; rewards must be finite")]
    NonFiniteReward {
        /// Which call.
        at: String,
        /// The reward.
        reward: f32,
    },
    /// The env's counts ([`crate::Info::counts`], [`Env::episode_counts`]) break their
    /// rules: a declared name that cannot name a column or is declared twice, too many names,
    /// or a step reporting a count that is not declared or not finite.
    #[error("{0}")]
    Counts(String),
    /// The same seed and actions gave different trajectories.
    #[error(
        "the env is not deterministic: {0}; an env must own its RNG and seed it in reset, \
         so that the same seed and actions give the same episode"
    )]
    Nondeterministic(String),
    /// An action outside the action space, or one the current mask forbids, was accepted.
    #[error(
        "{at} accepted the invalid {action}: {why}; step must return an error \
         (EnvError::InvalidAction or EnvError::ActionOutsideSpace) for it"
    )]
    InvalidActionAccepted {
        /// Which call.
        at: String,
        /// The invalid action, in words.
        action: String,
        /// Why it is invalid.
        why: String,
    },
    /// Refusing an invalid action changed the env's trajectory.
    #[error(
        "refusing the invalid {action} changed the env: {detail}; a refused action \
         must leave the env as it was"
    )]
    RefusalChangedState {
        /// The invalid action, in words.
        action: String,
        /// Where the trajectories differ.
        detail: String,
    },
    /// A step after the end of an episode was accepted.
    #[error(
        "step was accepted after episode {episode} ended ({how} at step {length}); it must \
         return EnvError::StepAfterDone until the next reset"
    )]
    StepAfterDoneAccepted {
        /// Episode index.
        episode: usize,
        /// `terminated` or `truncated`.
        how: &'static str,
        /// Step at which the episode ended.
        length: u64,
    },
    /// An episode did not end.
    #[error(
        "episode {episode} (seed {seed}) did not end within {max_steps} steps of random \
         actions; add a time limit that sets `truncated`, or raise CheckConfig::max_steps"
    )]
    NeverEnds {
        /// Episode index.
        episode: usize,
        /// Its reset seed.
        seed: u64,
        /// The step limit of the check.
        max_steps: u64,
    },
}

/// Checks `env` with the default [`CheckConfig`] (3 random episodes of at most 100 000 steps).
///
/// ```
/// # use envs::{Action, ActionSpace, BoxSpace, Env, EnvError, Step};
/// /// A one-step env: the action is the reward.
/// struct Bandit { space: BoxSpace, done: bool }
/// impl Env for Bandit {
///     fn observation_space(&self) -> &BoxSpace { &self.space }
///     fn action_space(&self) -> ActionSpace { ActionSpace::discrete(2) }
///     fn reset(&mut self, _seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
///         self.done = false;
///         obs[0] = 0.0;
///         Ok(())
///     }
///     fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step, EnvError> {
///         let action = action.discrete(2)?;
///         if self.done { return Err(EnvError::StepAfterDone); }
///         self.done = true;
///         obs[0] = 1.0;
///         Ok(Step { reward: action as f32, terminated: true, ..Step::default() })
///     }
/// }
/// let mut env = Bandit { space: BoxSpace::uniform(1, 0.0, 1.0), done: true };
/// let report = envs::check_env(&mut env).unwrap();
/// assert_eq!(report.steps, 3);
/// ```
pub fn check_env<E: Env + ?Sized>(env: &mut E) -> Result<CheckReport, CheckError> {
    check_env_with(env, &CheckConfig::default())
}

/// One recorded episode: actions, and per step the observation, reward and flags.
#[derive(Default)]
struct Trajectory {
    first_obs: Vec<f32>,
    actions: Vec<ActionBuf>,
    /// The mask before each step (empty without masks).
    masks: Vec<Option<Vec<bool>>>,
    /// `[len × obs_dim]`
    obs: Vec<f32>,
    steps: Vec<Step>,
}

/// Runs `f` and turns a panic into [`CheckError::Panicked`].
fn guarded<T>(
    at: impl Fn() -> String,
    obs_len: usize,
    f: impl FnOnce() -> T,
) -> Result<T, CheckError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| CheckError::Panicked {
        at: at(),
        message: panic_message(&*payload),
        obs_len,
    })
}

/// The message a panic was raised with (`panic!`'s text), or "(no message)".
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// Maps an env error to a check error, turning a buffer-length complaint into an
/// observation-length message.
fn env_failed(at: String, e: EnvError, space: &BoxSpace) -> CheckError {
    match e {
        EnvError::ObsBufferLength { expected, .. } => CheckError::ObsLength(format!(
            "{at}: the env expects observations of length {expected}, but its observation \
             space has {} elements (shape {:?})",
            space.flat_len(),
            space.shape
        )),
        source => CheckError::EnvFailed { at, source },
    }
}

fn reset_checked<E: Env + ?Sized>(
    env: &mut E,
    seed: u64,
    obs: &mut [f32],
    space: &BoxSpace,
) -> Result<(), CheckError> {
    let at = || format!("reset(seed = {seed})");
    obs.fill(f32::from_bits(UNWRITTEN));
    let len = obs.len();
    guarded(at, len, || env.reset(seed, obs))?.map_err(|e| env_failed(at(), e, space))?;
    check_obs(obs, space, &at())
}

fn step_checked<E: Env + ?Sized>(
    env: &mut E,
    action: Action<'_>,
    obs: &mut [f32],
    space: &BoxSpace,
    at: &dyn Fn() -> String,
) -> Result<Step, CheckError> {
    obs.fill(f32::from_bits(UNWRITTEN));
    let len = obs.len();
    let s = guarded(at, len, || env.step(action, obs))?.map_err(|e| env_failed(at(), e, space))?;
    check_obs(obs, space, &at())?;
    if !s.reward.is_finite() {
        return Err(CheckError::NonFiniteReward {
            at: at(),
            reward: s.reward,
        });
    }
    let declared = env.episode_counts();
    for (name, value) in s.info.counts.iter() {
        if !declared.contains(&name) {
            return Err(CheckError::Counts(format!(
                "{} reported the count `{name}`, which episode_counts() does not declare \
                 ({declared:?}); declare every count so that metrics.csv has its column",
                at()
            )));
        }
        if !value.is_finite() {
            return Err(CheckError::Counts(format!(
                "{} reported the count `{name}` = {value}; counts must be finite",
                at()
            )));
        }
    }
    Ok(s)
}

/// Checks the names an env declares for its counts: column names, each once, at most
/// [`crate::MAX_INFO_SCALARS`].
fn check_declared_counts(declared: &[&str]) -> Result<(), CheckError> {
    if declared.len() > crate::MAX_INFO_SCALARS {
        return Err(CheckError::Counts(format!(
            "episode_counts() declares {} counts ({declared:?}); an Info holds at most {}",
            declared.len(),
            crate::MAX_INFO_SCALARS
        )));
    }
    for (i, name) in declared.iter().enumerate() {
        if !crate::is_column_name(name) {
            return Err(CheckError::Counts(format!(
                "episode_counts() declares {name:?}; a count name is made of letters, digits, \
                 `_`, `-` and `.`"
            )));
        }
        if declared[..i].contains(name) {
            return Err(CheckError::Counts(format!(
                "episode_counts() declares `{name}` twice"
            )));
        }
    }
    Ok(())
}

/// Checks one observation against the space: fully written, finite, within bounds.
fn check_obs(obs: &[f32], space: &BoxSpace, at: &str) -> Result<(), CheckError> {
    let unwritten: Vec<usize> = (0..obs.len())
        .filter(|&i| obs[i].to_bits() == UNWRITTEN)
        .collect();
    if let Some(&first) = unwritten.first() {
        let suffix = unwritten.len() == obs.len() - first;
        let detail = if suffix {
            format!(
                "{at}: the env wrote only the first {first} of the {} elements of the \
                 observation space (shape {:?}); elements {first}..{} were never written",
                obs.len(),
                space.shape,
                obs.len()
            )
        } else {
            format!(
                "{at}: the env did not write observation element {first} ({} elements left \
                 unwritten of {}, shape {:?}); write the whole observation on every call",
                unwritten.len(),
                obs.len(),
                space.shape
            )
        };
        return Err(CheckError::ObsLength(detail));
    }
    for (index, ((&value, &lo), &hi)) in obs.iter().zip(&space.low).zip(&space.high).enumerate() {
        if !value.is_finite() {
            return Err(CheckError::NonFiniteObs {
                at: at.to_string(),
                index,
                value,
            });
        }
        if value < lo {
            return Err(CheckError::ObsOutOfBounds {
                at: at.to_string(),
                index,
                value,
                side: "below its lower",
                bound: lo,
            });
        }
        if value > hi {
            return Err(CheckError::ObsOutOfBounds {
                at: at.to_string(),
                index,
                value,
                side: "above its upper",
                bound: hi,
            });
        }
    }
    Ok(())
}

fn check_space(space: &BoxSpace) -> Result<(), CheckError> {
    let len = space.flat_len();
    if space.low.len() != len || space.high.len() != len {
        return Err(CheckError::Space(format!(
            "shape {:?} has {len} elements, but `low` has {} and `high` has {}",
            space.shape,
            space.low.len(),
            space.high.len()
        )));
    }
    for (i, (&lo, &hi)) in space.low.iter().zip(&space.high).enumerate() {
        if lo.is_nan() || hi.is_nan() {
            return Err(CheckError::Space(format!(
                "the bounds of element {i} are [{lo}, {hi}]; bounds must not be NaN"
            )));
        }
        if lo > hi {
            return Err(CheckError::Space(format!(
                "element {i} has lower bound {lo} above its upper bound {hi}"
            )));
        }
    }
    Ok(())
}

/// Describes the first difference between step `t` of two runs, if any.
fn first_difference(a: &Trajectory, b_step: &Step, b_obs: &[f32], t: usize) -> Option<String> {
    let d = b_obs.len();
    let a_step = &a.steps[t];
    if a_step.reward.to_bits() != b_step.reward.to_bits() {
        return Some(format!(
            "at step {} the reward was {} in the first run and {} in the second",
            t + 1,
            a_step.reward,
            b_step.reward
        ));
    }
    if (a_step.terminated, a_step.truncated) != (b_step.terminated, b_step.truncated) {
        return Some(format!(
            "at step {} (terminated, truncated) was {:?} in the first run and {:?} in the second",
            t + 1,
            (a_step.terminated, a_step.truncated),
            (b_step.terminated, b_step.truncated)
        ));
    }
    let a_obs = &a.obs[t * d..(t + 1) * d];
    obs_difference(a_obs, b_obs).map(|(i, x, y)| {
        format!(
            "at step {} observation element {i} was {x} in the first run and {y} in the second",
            t + 1
        )
    })
}

/// The first element where two observations differ (bitwise).
fn obs_difference(a: &[f32], b: &[f32]) -> Option<(usize, f32, f32)> {
    a.iter()
        .zip(b)
        .enumerate()
        .find(|(_, (x, y))| x.to_bits() != y.to_bits())
        .map(|(i, (x, y))| (i, *x, *y))
}

/// Checks `env` with the given thoroughness; see the [module docs](self) for what is checked.
pub fn check_env_with<E: Env + ?Sized>(
    env: &mut E,
    cfg: &CheckConfig,
) -> Result<CheckReport, CheckError> {
    let space = env.observation_space().clone();
    check_space(&space)?;
    let action_space = env.action_space();
    if action_space.num_discrete() == Some(0) {
        return Err(CheckError::NoActions);
    }
    action_space.validate().map_err(CheckError::ActionSpace)?;
    check_declared_counts(env.episode_counts())?;
    let d = space.flat_len();
    let mut obs = vec![0.0f32; d];
    let mut report = CheckReport {
        episodes: cfg.episodes,
        steps: 0,
        mean_return: 0.0,
        mean_length: 0.0,
        terminated: 0,
        truncated: 0,
        obs_dim: d,
        action_space: action_space.clone(),
        masked: false,
    };
    let mut total_return = 0.0f64;

    for episode in 0..cfg.episodes {
        let seed = derive_seed(cfg.seed, episode as u64);
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, 1));

        // First run: random actions, recorded.
        let mut a = Trajectory::default();
        reset_checked(env, seed, &mut obs, &space)?;
        a.first_obs.extend_from_slice(&obs);
        let mut mask = checked_mask(env, &action_space, &|| format!("reset(seed = {seed})"))?;
        let last = loop {
            if a.steps.len() as u64 >= cfg.max_steps {
                return Err(CheckError::NeverEnds {
                    episode,
                    seed,
                    max_steps: cfg.max_steps,
                });
            }
            let action = random_action(&action_space, mask.as_deref(), &mut rng);
            let t = a.steps.len();
            let at = || format!("step {} of episode {episode} ({action})", t + 1);
            let s = step_checked(env, action.as_action(), &mut obs, &space, &at)?;
            report.masked |= mask.is_some();
            a.masks.push(mask);
            mask = if s.done() {
                None
            } else {
                checked_mask(env, &action_space, &at)?
            };
            a.actions.push(action);
            a.obs.extend_from_slice(&obs);
            a.steps.push(s);
            total_return += f64::from(s.reward);
            if s.done() {
                break s;
            }
        };
        let length = a.steps.len() as u64;
        report.steps += length;
        if last.terminated {
            report.terminated += 1;
        } else {
            report.truncated += 1;
        }

        // Stepping after the end must be refused.
        let at = || format!("step after the end of episode {episode}");
        let first = &a.actions[0];
        if let Ok(Ok(_)) = guarded(at, d, || env.step(first.as_action(), &mut obs)) {
            return Err(CheckError::StepAfterDoneAccepted {
                episode,
                how: if last.terminated {
                    "terminated"
                } else {
                    "truncated"
                },
                length,
            });
        }

        // Second run: same seed and actions must give the same trajectory.
        reset_checked(env, seed, &mut obs, &space)?;
        if let Some((i, x, y)) = obs_difference(&a.first_obs, &obs) {
            return Err(CheckError::Nondeterministic(format!(
                "reset with the same seed {seed} gave different observations: element {i} was \
                 {x} the first time and {y} the second"
            )));
        }
        for t in 0..a.actions.len() {
            let action = &a.actions[t];
            let at = || format!("step {} of episode {episode} (replay, {action})", t + 1);
            let s = match step_checked(env, action.as_action(), &mut obs, &space, &at) {
                Ok(s) => s,
                Err(CheckError::EnvFailed {
                    source: EnvError::StepAfterDone,
                    ..
                }) => {
                    return Err(CheckError::Nondeterministic(format!(
                        "with seed {seed} and the same actions the episode ended before step \
                         {} in the second run but ran to step {length} in the first",
                        t + 1
                    )));
                }
                Err(e) => return Err(e),
            };
            if let Some(detail) = first_difference(&a, &s, &obs, t) {
                return Err(CheckError::Nondeterministic(format!(
                    "with seed {seed} and the same actions, {detail}"
                )));
            }
        }

        // Third run (first episode only): actions outside the space must be refused, at the
        // start and midway, and so must every action the mask forbids at those steps, without
        // changing the trajectory.
        if episode == 0 {
            reset_checked(env, seed, &mut obs, &space)?;
            let probes = [0, a.actions.len() / 2];
            let mut refused_last = String::new();
            for t in 0..a.actions.len() {
                if probes.contains(&t) {
                    let at = || format!("step {} of episode {episode}", t + 1);
                    let mut invalid = invalid_actions(&action_space);
                    invalid.extend(masked_actions(&action_space, a.masks[t].as_deref()));
                    for (bad, why) in invalid {
                        let mut scratch = obs.clone();
                        let refused = guarded(at, d, || env.step(bad.as_action(), &mut scratch))?;
                        if refused.is_ok() {
                            return Err(CheckError::InvalidActionAccepted {
                                at: at(),
                                action: bad.to_string(),
                                why,
                            });
                        }
                        refused_last = bad.to_string();
                    }
                }
                let action = &a.actions[t];
                let at = || format!("step {} of episode {episode} ({action})", t + 1);
                let s =
                    step_checked(env, action.as_action(), &mut obs, &space, &at).map_err(|e| {
                        CheckError::RefusalChangedState {
                            action: refused_last.clone(),
                            detail: format!("afterwards {e}"),
                        }
                    })?;
                if let Some(detail) = first_difference(&a, &s, &obs, t) {
                    return Err(CheckError::RefusalChangedState {
                        action: refused_last.clone(),
                        detail,
                    });
                }
            }
        }
    }
    if cfg.episodes > 0 {
        report.mean_return = total_return / cfg.episodes as f64;
        report.mean_length = report.steps as f64 / cfg.episodes as f64;
    }
    Ok(report)
}

/// The env's current mask, checked: only discrete spaces have masks, of
/// [`ActionSpace::mask_width`] flags, allowing a value of every dimension.
fn checked_mask<E: Env + ?Sized>(
    env: &E,
    space: &ActionSpace,
    at: &dyn Fn() -> String,
) -> Result<Option<Vec<bool>>, CheckError> {
    let Some(mask) = guarded(at, 0, || env.action_mask().map(<[bool]>::to_vec))? else {
        return Ok(None);
    };
    let bad = |detail: String| CheckError::BadMask {
        at: format!("the action mask after {}", at()),
        detail,
    };
    match space.mask_problem(&mask) {
        None => Ok(Some(mask)),
        Some(MaskProblem::NotMaskable) => Err(bad(format!(
            "the env gives a mask of {} flags, but its {space} action space cannot be masked \
             (action_mask must return None)",
            mask.len()
        ))),
        Some(MaskProblem::Length { got, want }) => Err(bad(format!(
            "it has {got} flags; the {space} action space needs {want} (one per action value)"
        ))),
        Some(MaskProblem::AllForbidden { dim }) => Err(bad(format!(
            "it forbids every value of dimension {dim} of {space}; at least one action must \
             be allowed"
        ))),
    }
}

/// A uniformly random action of `space`, among the values `mask` allows.
fn random_action(space: &ActionSpace, mask: Option<&[bool]>, rng: &mut ChaCha8Rng) -> ActionBuf {
    let mut pick = |range: std::ops::Range<usize>| -> usize {
        let allowed: Vec<usize> = range
            .clone()
            .filter(|&i| mask.is_none_or(|m| m[i]))
            .collect();
        allowed[rng.random_range(0..allowed.len())] - range.start
    };
    match space {
        ActionSpace::Discrete(d) => ActionBuf::Discrete(pick(0..d.n)),
        ActionSpace::MultiDiscrete(_) => {
            ActionBuf::MultiDiscrete(space.mask_ranges().into_iter().map(pick).collect())
        }
        ActionSpace::Box(b) => ActionBuf::Continuous(
            b.low
                .iter()
                .zip(&b.high)
                .map(|(&lo, &hi)| {
                    let u = rng.random::<f32>();
                    match (lo.is_finite(), hi.is_finite()) {
                        // Interpolated, not `lo + (hi − lo)·u`: the width of a box as wide
                        // as f32 itself overflows.
                        (true, true) => (lo * (1.0 - u) + hi * u).clamp(lo, hi),
                        // Unbounded sides: a value within 1 of the finite bound, or of 0.
                        (true, false) => lo + u,
                        (false, true) => hi - u,
                        (false, false) => 2.0 * u - 1.0,
                    }
                })
                .collect(),
        ),
    }
}

/// Actions outside `space`, each with why.
fn invalid_actions(space: &ActionSpace) -> Vec<(ActionBuf, String)> {
    let mut out = Vec::new();
    match space {
        ActionSpace::Discrete(d) => out.push(ActionBuf::Discrete(d.n)),
        ActionSpace::MultiDiscrete(m) => {
            let mut a = vec![0; m.nvec.len()];
            a[0] = m.nvec[0];
            out.push(ActionBuf::MultiDiscrete(a));
            out.push(ActionBuf::MultiDiscrete(vec![0; m.nvec.len() + 1]));
        }
        ActionSpace::Box(b) => {
            let inside: Vec<f32> = b
                .low
                .iter()
                .zip(&b.high)
                .map(|(&lo, &hi)| if lo.is_finite() { lo } else { hi.min(0.0) })
                .collect();
            // Above the upper bound (infinity itself for an unbounded one).
            let mut x = inside.clone();
            x[0] = b.high[0] + 1.0 + b.high[0].abs();
            out.push(ActionBuf::Continuous(x));
            let mut x = inside;
            x[0] = f32::NAN;
            out.push(ActionBuf::Continuous(x));
            out.push(ActionBuf::Continuous(vec![b.low[0]; b.flat_len() + 1]));
        }
    }
    out.into_iter()
        .map(|a| {
            let why = space
                .why_outside(a.as_action())
                .unwrap_or_else(|| format!("it is outside {space}"));
            (a, why)
        })
        .collect()
}

/// For each value a mask forbids, an action that uses it (the other dimensions take an
/// allowed value), with why it is invalid.
fn masked_actions(space: &ActionSpace, mask: Option<&[bool]>) -> Vec<(ActionBuf, String)> {
    let Some(mask) = mask else {
        return vec![];
    };
    let ranges = space.mask_ranges();
    let allowed: Vec<usize> = ranges
        .iter()
        .map(|r| r.clone().find(|&i| mask[i]).map_or(0, |i| i - r.start))
        .collect();
    let mut out = Vec::new();
    for (k, r) in ranges.iter().enumerate() {
        for i in r.clone().filter(|&i| !mask[i]) {
            let v = i - r.start;
            let action = match space {
                ActionSpace::Discrete(_) => ActionBuf::Discrete(v),
                _ => {
                    let mut a = allowed.clone();
                    a[k] = v;
                    ActionBuf::MultiDiscrete(a)
                }
            };
            out.push((
                action,
                format!("the current action mask forbids value {v} of dimension {k}"),
            ));
        }
    }
    out
}
