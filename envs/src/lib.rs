//! Environments for memory-based reinforcement learning.
//!
//! - [`Env`]: the trait a user implements to plug in a task (flat `f32` observations;
//!   discrete, multi-discrete or continuous actions, with optional action masks;
//!   `terminated` vs `truncated`; named per-step scalars in [`Info`]).
//! - `GridMaze`: partially observable maze navigation, a new maze every episode.
//! - `CueRecall`: a cue seen only at the start decides the right exit after a corridor.
//! - `VecEnv`: N envs stepped in parallel with rayon, with auto-reset.
//! - `check_env`: tells a user in words what is wrong with their env.
//! - `PyGymEnv` (cargo feature `python`): a Gymnasium env written in Python, run in an
//!   embedded interpreter.

pub mod check;
pub mod cue_recall;
pub mod env;
pub mod gridmaze;
#[cfg(feature = "gymnasium")]
pub mod gymnasium;
pub mod pendulum;
pub mod point_cue;
#[cfg(feature = "python")]
pub mod python;
pub mod render;
pub mod vec_env;

pub use check::{CheckConfig, CheckError, CheckReport, check_env, check_env_with};
pub use cue_recall::{CueRecall, CueRecallConfig};
pub use env::{
    Action, ActionBuf, ActionSpace, BoxSpace, Discrete, Env, EnvError, EnvExt, EpisodeStats, Info,
    InfoScalars, MAX_INFO_SCALARS, MaskProblem, MultiDiscrete, Step, derive_seed,
};
pub use gridmaze::{
    ActionMode, Cell, Direction, GridMaze, GridMazeConfig, MazeMode, Pos, ReferencePolicy,
    ReferenceStats, reference_return, reference_stats,
};
#[cfg(feature = "gymnasium")]
pub use gymnasium::{GridMazeGym, GymCartPole, GymnasiumAdapter, GymnasiumEnv};
pub use pendulum::{Pendulum, PendulumConfig};
pub use point_cue::{PointCue, PointCueConfig};
#[cfg(feature = "python")]
pub use python::{PyEnvSpec, PyGymEnv};
pub use render::{Frame, GifWriter, save_gif};
pub use vec_env::{Parallelism, VecActions, VecEnv, VecEnvState, VecStep};
