//! [`GridMazeConfig`]: every knob of the GridMaze task, with validation.

use serde::{Deserialize, Serialize};

use crate::config_check::{at_least, invalid, non_negative, unit_interval};
use crate::env::{ActionSpace, EnvError};

/// Smallest allowed maze side length (cells, walls included).
pub const MIN_SIZE: usize = 7;
/// Largest allowed maze side length (cells, walls included).
pub const MAX_SIZE: usize = 31;

/// What happens when the agent reaches the goal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum MazeMode {
    /// The episode terminates at the goal (or is truncated at the horizon).
    Single,
    /// The agent respawns at a random cell other than the goal and the episode runs until the
    /// horizon; the maze and the goal stay, so remembering them pays off.
    #[default]
    Multi,
}

/// How actions move the agent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ActionMode {
    /// Four absolute moves: 0 = up (north), 1 = right (east), 2 = down (south), 3 = left (west).
    #[default]
    Absolute,
    /// Minigrid style: 0 = turn left, 1 = turn right, 2 = move forward; the agent has a facing
    /// direction and the view turns with it (the facing direction is always "up" in the view).
    Egocentric,
    /// Two choices per step, `MultiDiscrete([4, 2])`: dimension 0 is the absolute direction
    /// (as [`ActionMode::Absolute`]), dimension 1 the stride: 0 = walk one cell, 1 = run two
    /// cells. A run stops at the first wall (after one cell when the second is a wall) and on
    /// the goal. Serialised `"move_run"`.
    #[serde(rename = "move_run")]
    #[cfg_attr(feature = "clap", value(name = "move_run", alias = "move-run"))]
    MoveRun,
}

impl ActionMode {
    /// Number of values of the stride dimension of [`ActionMode::MoveRun`] (walk, run).
    pub const STRIDES: usize = 2;
}

/// Configuration of a [`crate::GridMaze`].
///
/// The default is the main experiment's setting: `multi` mode, 7×7 maze, 3×3 view, horizon 64.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GridMazeConfig {
    /// Side length of the square maze in grid cells, outer walls included; odd, 7..=31.
    pub size: usize,
    /// View radius r: the agent sees a (2r+1)×(2r+1) window centred on itself (1 → 3×3).
    pub view_radius: usize,
    /// `single` (terminate at the goal) or `multi` (respawn, run until the horizon).
    pub mode: MazeMode,
    /// `absolute` (4 moves), `egocentric` (turn left / turn right / forward) or `move_run`
    /// (a direction and a stride: walk one cell or run two).
    pub actions: ActionMode,
    /// Maximum episode length in steps; reaching it truncates the episode.
    pub horizon: u32,
    /// Reward for reaching the goal (≥ 0).
    pub goal_reward: f32,
    /// Penalty subtracted from the reward on every step (≥ 0; 0 disables it).
    pub step_penalty: f32,
    /// Probability in [0, 1] that each wall between two maze cells left by the perfect-maze
    /// generator is knocked out, adding loops (0 = perfect maze).
    pub loop_density: f32,
    /// Minimum shortest-path distance from the start to the goal, in moves; when no cell is
    /// that far, the goal is placed among the farthest cells.
    pub min_goal_distance: u32,
    /// Append the normalised time step `t / horizon` to the observation.
    pub time_feature: bool,
    /// Give an action mask that forbids moves into a wall (absolute and `move_run`: the
    /// directions whose adjacent cell is a wall; egocentric: `forward` when facing a wall,
    /// turns always allowed); forbidden actions are refused by `step`. Off by default (no
    /// mask, moving into a wall leaves the agent in place). Left out of the serialised config
    /// when off.
    #[serde(skip_serializing_if = "is_false")]
    pub mask_walls: bool,
}

/// Whether `b` is `false` (keeps fields that are off out of serialised configs).
fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for GridMazeConfig {
    fn default() -> Self {
        Self {
            size: 7,
            view_radius: 1,
            mode: MazeMode::Multi,
            actions: ActionMode::Absolute,
            horizon: 64,
            goal_reward: 1.0,
            step_penalty: 0.0,
            loop_density: 0.0,
            min_goal_distance: 4,
            time_feature: false,
            mask_walls: false,
        }
    }
}

impl GridMazeConfig {
    /// `multi` mode (respawn at the goal, fixed horizon) with a 3×3 view and defaults elsewhere.
    /// The main experiment is `GridMazeConfig::multi(7, 64)`.
    pub fn multi(size: usize, horizon: u32) -> Self {
        Self {
            size,
            horizon,
            mode: MazeMode::Multi,
            ..Self::default()
        }
    }

    /// `single` mode (terminate at the goal, truncate at the horizon) with a 3×3 view.
    pub fn single(size: usize, horizon: u32) -> Self {
        Self {
            size,
            horizon,
            mode: MazeMode::Single,
            ..Self::default()
        }
    }

    /// The same configuration with egocentric actions (turn left / turn right / forward).
    pub fn egocentric(mut self) -> Self {
        self.actions = ActionMode::Egocentric;
        self
    }

    /// The same configuration with `move_run` actions (a direction and a stride).
    pub fn move_run(mut self) -> Self {
        self.actions = ActionMode::MoveRun;
        self
    }

    /// The same configuration with an action mask that forbids moves into a wall
    /// ([`GridMazeConfig::mask_walls`]).
    pub fn masked(mut self) -> Self {
        self.mask_walls = true;
        self
    }

    /// Checks every field; the error names the first offending field.
    pub fn validate(&self) -> Result<(), EnvError> {
        if self.size.is_multiple_of(2) || !(MIN_SIZE..=MAX_SIZE).contains(&self.size) {
            return Err(invalid(
                "size",
                format!(
                    "must be odd and in {MIN_SIZE}..={MAX_SIZE}, got {}",
                    self.size
                ),
            ));
        }
        self.validate_except_size(self.size)
    }

    /// Validation of everything but the size rule, against a maze of side `side`
    /// (used for hand-written layouts, whose side need not be odd).
    pub(crate) fn validate_except_size(&self, side: usize) -> Result<(), EnvError> {
        if 2 * self.view_radius + 1 > side {
            return Err(invalid(
                "view_radius",
                format!(
                    "the view ({0}×{0}) is larger than the maze ({side}×{side})",
                    2 * self.view_radius + 1
                ),
            ));
        }
        at_least("horizon", self.horizon, 1)?;
        non_negative("goal_reward", self.goal_reward)?;
        if !self.step_penalty.is_finite() || self.step_penalty < 0.0 {
            return Err(invalid(
                "step_penalty",
                format!(
                    "must be finite and ≥ 0 (it is subtracted), got {}",
                    self.step_penalty
                ),
            ));
        }
        unit_interval("loop_density", self.loop_density)
    }

    /// Number of discrete actions: 4 (absolute) or 3 (egocentric). `move_run` has no single
    /// discrete action; for it this is the number of values in one action, 2 (as
    /// [`crate::VecEnv::num_actions`] reports for multi-discrete spaces). See
    /// [`GridMazeConfig::action_space`] for the full space.
    pub fn num_actions(&self) -> usize {
        match self.actions {
            ActionMode::Absolute => 4,
            ActionMode::Egocentric => 3,
            ActionMode::MoveRun => 2,
        }
    }

    /// The action space: `Discrete(4)` (absolute), `Discrete(3)` (egocentric) or
    /// `MultiDiscrete([4, 2])` (`move_run`: direction, stride).
    pub fn action_space(&self) -> ActionSpace {
        match self.actions {
            ActionMode::Absolute => ActionSpace::discrete(4),
            ActionMode::Egocentric => ActionSpace::discrete(3),
            ActionMode::MoveRun => ActionSpace::multi_discrete(vec![4, ActionMode::STRIDES]),
        }
    }

    /// Length of the observation's previous-action one-hot: one slot per action (4 or 3),
    /// or for `move_run` one per direction and one per stride (4 + 2 = 6, two slots set).
    pub fn prev_action_len(&self) -> usize {
        match self.actions {
            ActionMode::Absolute | ActionMode::Egocentric => self.num_actions(),
            ActionMode::MoveRun => 4 + ActionMode::STRIDES,
        }
    }

    /// Side of the visible window, `2r + 1`.
    pub fn view_side(&self) -> usize {
        2 * self.view_radius + 1
    }

    /// Length of the flat observation:
    /// `3·(2r+1)² + P + 1 (+ 1 with the time feature)`, with `P` =
    /// [`GridMazeConfig::prev_action_len`] (4, 3, or 6 for `move_run`).
    pub fn obs_len(&self) -> usize {
        3 * self.view_side() * self.view_side()
            + self.prev_action_len()
            + 1
            + usize::from(self.time_feature)
    }
}
