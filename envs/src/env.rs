//! The environment contract: spaces, [`Env`], [`Step`] and episode statistics.
//!
//! Observations are flat `f32` vectors written into a caller-provided slice, so a
//! [`crate::VecEnv`] can hand out one contiguous `[num_envs × obs_dim]` buffer without
//! copying or allocating per step.

use std::fmt;

use thiserror::Error;

/// A box of real-valued observations: a shape and per-element bounds (flattened, row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct BoxSpace {
    /// Shape of one observation; the flat length is the product.
    pub shape: Vec<usize>,
    /// Lower bound per element (length = flat length).
    pub low: Vec<f32>,
    /// Upper bound per element (length = flat length).
    pub high: Vec<f32>,
}

impl BoxSpace {
    /// A 1-D box of `len` elements, all within `[low, high]`.
    pub fn uniform(len: usize, low: f32, high: f32) -> Self {
        Self {
            shape: vec![len],
            low: vec![low; len],
            high: vec![high; len],
        }
    }

    /// Number of `f32` values in one observation.
    pub fn flat_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether `x` lies in the box (right length, finite, within bounds).
    pub fn contains(&self, x: &[f32]) -> bool {
        x.len() == self.flat_len()
            && x.iter()
                .zip(self.low.iter().zip(&self.high))
                .all(|(v, (lo, hi))| v.is_finite() && *v >= *lo && *v <= *hi)
    }
}

/// A discrete action space `{0, 1, …, n − 1}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Discrete {
    /// Number of actions.
    pub n: usize,
}

/// Extra facts about a transition, beyond reward and the end flags.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Info {
    /// The agent reached a goal on this step (GridMaze counts goals per episode).
    pub goal_reached: bool,
    /// Set on the last step of an episode of a task with a success criterion
    /// (e.g. the cue-recall task: the right exit was taken).
    pub success: Option<bool>,
}

/// The outcome of one [`Env::step`]; the next observation is written into the caller's slice.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Step {
    /// Reward for this transition.
    pub reward: f32,
    /// The episode reached a real end (no bootstrapping past it).
    pub terminated: bool,
    /// The episode was cut by a time limit (bootstrap from the final observation).
    pub truncated: bool,
    /// Extra facts about the transition.
    pub info: Info,
}

impl Step {
    /// The episode is over, for either reason.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// Statistics of one finished episode.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpisodeStats {
    /// Sum of rewards.
    pub ret: f32,
    /// Number of steps.
    pub length: u32,
    /// Goals reached during the episode.
    pub goals: u32,
    /// Success flag reported on the last step, for tasks that have one.
    pub success: Option<bool>,
    /// Ended by the time limit rather than a real termination.
    pub truncated: bool,
}

/// Errors an environment reports instead of panicking.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EnvError {
    /// A configuration field has a value the env cannot use.
    #[error("invalid config `{field}`: {reason}")]
    InvalidConfig {
        /// Name of the configuration field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The action is outside the action space.
    #[error("invalid action {action}: the action space has {n} actions (0..{n})")]
    InvalidAction {
        /// The action that was passed.
        action: usize,
        /// Size of the action space.
        n: usize,
    },
    /// `step` was called after the episode ended, without a `reset`.
    #[error("step called after the episode ended; call reset first")]
    StepAfterDone,
    /// `step` was called before the first `reset`.
    #[error("step called before reset")]
    NotReset,
    /// The observation buffer passed in has the wrong length.
    #[error("observation buffer has length {got}, expected {expected}")]
    ObsBufferLength {
        /// Length of the buffer passed in.
        got: usize,
        /// Length of one observation.
        expected: usize,
    },
    /// Any other problem, in words.
    #[error("{0}")]
    Other(String),
}

/// A reinforcement-learning environment with a flat `f32` observation and a discrete action.
///
/// Implement this trait to plug your own task into vectorisation, PPO training, evaluation
/// and plotting. Run [`crate::check_env`] on it first: it tells you in words what is wrong.
///
/// Contract (as in Gymnasium):
/// - `reset(seed, obs)` starts a new episode; the same seed gives the same episode.
/// - `step(action, obs)` advances one step. `terminated` is a real end, `truncated` a time
///   limit. After either, `step` returns [`EnvError::StepAfterDone`] until the next `reset`.
/// - Invalid actions return [`EnvError::InvalidAction`]; nothing panics.
/// - The env owns its RNG; it is seeded by `reset`.
pub trait Env: Send {
    /// The observation space; every observation written must lie in it.
    fn observation_space(&self) -> &BoxSpace;

    /// The action space.
    fn action_space(&self) -> Discrete;

    /// Starts a new episode seeded by `seed` and writes its first observation into `obs`
    /// (length [`BoxSpace::flat_len`]).
    fn reset(&mut self, seed: u64, obs: &mut [f32]) -> Result<(), EnvError>;

    /// Advances one step with `action` and writes the next observation into `obs`.
    fn step(&mut self, action: usize, obs: &mut [f32]) -> Result<Step, EnvError>;

    /// A text picture of the current state, if the env can draw one.
    fn render_ascii(&self) -> Option<String> {
        None
    }

    /// An RGB picture of the current state, if the env can draw one.
    fn render_rgb(&self) -> Option<crate::render::Frame> {
        None
    }

    /// Where the agent is drawn in [`Env::render_rgb`]'s picture, if the env can say:
    /// `[x, y, width, height]` in pixels. Renderers use it to mark where past steps happened
    /// (e.g. the steps an attention policy attends to).
    fn agent_rect(&self) -> Option<[usize; 4]> {
        None
    }

    /// A short name used in run directories and plot titles.
    fn name(&self) -> String {
        "custom".to_string()
    }
}

impl<E: Env + ?Sized> Env for Box<E> {
    fn observation_space(&self) -> &BoxSpace {
        (**self).observation_space()
    }
    fn action_space(&self) -> Discrete {
        (**self).action_space()
    }
    fn reset(&mut self, seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
        (**self).reset(seed, obs)
    }
    fn step(&mut self, action: usize, obs: &mut [f32]) -> Result<Step, EnvError> {
        (**self).step(action, obs)
    }
    fn render_ascii(&self) -> Option<String> {
        (**self).render_ascii()
    }
    fn render_rgb(&self) -> Option<crate::render::Frame> {
        (**self).render_rgb()
    }
    fn agent_rect(&self) -> Option<[usize; 4]> {
        (**self).agent_rect()
    }
    fn name(&self) -> String {
        (**self).name()
    }
}

/// Convenience wrappers that allocate the observation: `reset_vec` and `step_vec`.
pub trait EnvExt: Env {
    /// `reset` returning a fresh observation vector.
    fn reset_vec(&mut self, seed: u64) -> Result<Vec<f32>, EnvError> {
        let mut obs = vec![0.0; self.observation_space().flat_len()];
        self.reset(seed, &mut obs)?;
        Ok(obs)
    }

    /// `step` returning `(obs, step)`.
    fn step_vec(&mut self, action: usize) -> Result<(Vec<f32>, Step), EnvError> {
        let mut obs = vec![0.0; self.observation_space().flat_len()];
        let s = self.step(action, &mut obs)?;
        Ok((obs, s))
    }
}

impl<E: Env + ?Sized> EnvExt for E {}

impl fmt::Display for EpisodeStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "return {:.3}, length {}, goals {}",
            self.ret, self.length, self.goals
        )?;
        if let Some(s) = self.success {
            write!(f, ", success {s}")?;
        }
        Ok(())
    }
}

/// Derives a per-env seed from a base seed and an env index (SplitMix64 of both), so that a
/// vectorised run does not depend on thread scheduling and nearby indices are uncorrelated.
pub fn derive_seed(base_seed: u64, index: u64) -> u64 {
    let mut z = base_seed
        ^ index
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
