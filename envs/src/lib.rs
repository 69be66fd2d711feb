//! Environments for memory-based reinforcement learning.
//!
//! - [`Env`]: the trait a user implements to plug in a task (flat `f32` observations;
//!   discrete, multi-discrete or continuous actions, with optional action masks;
//!   `terminated` vs `truncated`; named per-step scalars and per-episode counts in [`Info`],
//!   the counts declared by [`Env::episode_counts`]).
//! - `GridMaze`: partially observable maze navigation, a new maze every episode.
//! - `CueRecall`: a cue seen only at the start decides the right exit after a corridor.
//! - [`EpisodeGuard`]: the step bookkeeping every env shares (reset before step, time limit,
//!   episode statistics).
//! - `VecEnv`: N envs stepped in parallel with rayon, with auto-reset.
//! - `check_env`: tells a user in words what is wrong with their env.
//! - [`EnvConfig`]: the `[env]` table of a run, tagged by `kind`; the built-in envs are
//!   registered in one list below (see [`registry`]).
//! - `PyGymEnv` (cargo feature `python`): a Gymnasium env written in Python, run in an
//!   embedded interpreter.

pub mod cartpole;
pub mod check;
mod config_check;
pub mod cue_recall;
pub mod env;
pub mod episode;
pub mod gridmaze;
#[cfg(feature = "gymnasium")]
pub mod gymnasium;
pub mod pendulum;
pub mod point_cue;
#[cfg(feature = "python")]
pub mod python;
pub mod registry;
pub mod render;
pub mod vec_env;

pub use cartpole::CartPoleConfig;
pub use check::{CheckConfig, CheckError, CheckReport, check_env, check_env_with};
pub use cue_recall::{CueRecall, CueRecallConfig};
pub use env::{
    Action, ActionBuf, ActionSpace, BoxSpace, Discrete, Env, EnvError, EnvExt, EpisodeStats, Info,
    InfoScalars, MAX_INFO_SCALARS, MaskProblem, MultiDiscrete, Step, derive_seed, is_column_name,
};
pub use episode::EpisodeGuard;
pub use gridmaze::{
    ActionMode, Cell, Direction, GOALS, GridMaze, GridMazeConfig, MazeMode, Pos, ReferencePolicy,
    ReferenceStats, reference_return, reference_stats,
};
#[cfg(feature = "gymnasium")]
pub use gymnasium::{GridMazeGym, GymCartPole, GymnasiumAdapter, GymnasiumEnv, Renderer};
pub use pendulum::{Pendulum, PendulumConfig};
pub use point_cue::{PointCue, PointCueConfig};
#[cfg(feature = "python")]
pub use python::{PyEnvSpec, PyGymEnv};
pub use registry::{BuiltinEnv, CustomEnvConfig, GymEnvConfig};
pub use render::{Frame, GifWriter, save_gif};
pub use vec_env::{Parallelism, VecActions, VecEnv, VecEnvState, VecStep};

// The built-in envs, one entry each: the `kind` of its `[env]` table, its config type (next
// to the env) and how to build the env from it; the doc line is its description on the
// command line. The first is the default env.
registry::builtin_envs! {
    /// Partially observable maze navigation.
    "gridmaze" => Gridmaze(GridMazeConfig) = |c| GridMaze::new(c.clone()),
    /// Remember a cue across a corridor (a T-maze).
    "cue_recall" => CueRecall(CueRecallConfig) = |c| CueRecall::new(c.clone()),
    /// gymnasium-rs's CartPole-v1 (needs the `gymnasium` cargo feature, on by default).
    "cartpole" => Cartpole(CartPoleConfig) = |c| c.build(),
    /// Gymnasium's Pendulum-v1, continuous torque.
    "pendulum" => Pendulum(PendulumConfig) = |c| Pendulum::new(c.clone()),
    /// Steer a point mass to the side a cue showed: continuous actions with memory.
    "point_cue" => PointCue(PointCueConfig) = |c| PointCue::new(c.clone()),
}
