//! Scripted reference policies: the BFS shortest-path oracle (the "optimal" line in plots),
//! a memoryless left-hand wall follower, and a helper that averages their episodes.

use std::fmt;
use std::str::FromStr;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{
    ACTION_FORWARD, ACTION_TURN_LEFT, ACTION_TURN_RIGHT, ActionMode, GOAL, GridMaze,
    GridMazeConfig, Pos, STRIDE_WALK, WALL, generate,
};
use crate::env::{Action, Env, EnvError, derive_seed};

impl GridMaze {
    /// Shortest-path distance (in moves) from every grid position to the goal, row-major over
    /// the maze's `size × size` positions; `None` for walls and cells that cannot reach the
    /// goal. Computed by BFS once per maze, on first use (allocates the returned vector).
    pub fn distance_map(&mut self) -> Vec<Option<u32>> {
        self.ensure_distances();
        let mut out = Vec::with_capacity(self.size * self.size);
        for r in 0..self.size {
            for c in 0..self.size {
                let d = self.dist[self.index(Pos::new(r, c))];
                out.push((d != u32::MAX).then_some(d));
            }
        }
        out
    }

    /// Shortest-path length in moves from `from` to the goal (BFS oracle); `None` if `from` is
    /// a wall, outside the maze, or cut off from the goal.
    pub fn shortest_path_len(&mut self, from: Pos) -> Option<u32> {
        if from.row >= self.size || from.col >= self.size {
            return None;
        }
        self.ensure_distances();
        let d = self.dist[self.index(from)];
        (d != u32::MAX).then_some(d)
    }

    fn ensure_distances(&mut self) {
        if !self.dist_valid {
            generate::bfs(
                &self.grid,
                self.stride,
                self.goal,
                &mut self.dist,
                &mut self.queue,
            );
            self.dist_valid = true;
        }
    }

    /// The oracle's action: a first step along a shortest path to the goal, using the full
    /// maze (it is the "optimal" reference, not a fair partially-observing agent). Ties go to
    /// the first of up, right, down, left. With egocentric actions: forward if the best
    /// direction is ahead, turn left if it is to the left, otherwise turn right. If the goal is
    /// unreachable from the agent, returns action 0 (with `mask_walls`: the first action the
    /// mask allows).
    ///
    /// With `move_run` actions it returns the direction, as with absolute actions: the oracle
    /// walks, so step with `[direction, STRIDE_WALK]` ([`GridMaze::walk`] builds it).
    pub fn oracle_action(&mut self) -> usize {
        self.ensure_distances();
        let here = self.dist[self.agent];
        if here == u32::MAX || here == 0 {
            return self.first_allowed();
        }
        let best = (0..4)
            .find(|&d| self.dist[self.agent.wrapping_add_signed(self.moves[d])] == here - 1)
            .unwrap_or(0);
        match self.cfg.actions {
            ActionMode::Absolute | ActionMode::MoveRun => best,
            ActionMode::Egocentric => {
                let f = self.facing as usize;
                if best == f {
                    ACTION_FORWARD
                } else if best == (f + 3) % 4 {
                    ACTION_TURN_LEFT
                } else {
                    ACTION_TURN_RIGHT
                }
            }
        }
    }

    /// A memoryless left-hand wall follower. It uses only what the observation shows: the four
    /// cells orthogonally adjacent to the agent (part of any view with r ≥ 1) and the previous
    /// action; with egocentric actions the facing direction is implicit in the rotated view.
    ///
    /// Absolute actions: the heading is the previous action (north at the first step). If the
    /// goal is adjacent, step onto it; otherwise take the first open direction among left of
    /// the heading, the heading, right of it, and back.
    ///
    /// Egocentric actions: if the goal is ahead, forward; if the previous action was a left turn
    /// and ahead is open, forward (completing the turn); else if the goal or an open cell is to
    /// the left, turn left; else if ahead is open, forward; else turn right.
    ///
    /// `move_run` actions: as absolute actions (the heading is the previous direction); it
    /// returns the direction, to be walked with `[direction, STRIDE_WALK]`
    /// ([`GridMaze::walk`]).
    ///
    /// In a perfect maze (no loops) it visits every cell, so it reaches the goal.
    pub fn wall_follower_action(&self) -> usize {
        let neighbour = |d: usize| self.grid[self.agent.wrapping_add_signed(self.moves[d % 4])];
        match self.cfg.actions {
            ActionMode::Absolute | ActionMode::MoveRun => {
                if let Some(d) = (0..4).find(|&d| neighbour(d) == GOAL) {
                    return d;
                }
                let h = self.prev_action.unwrap_or(0);
                [h + 3, h, h + 1, h + 2]
                    .into_iter()
                    .map(|d| d % 4)
                    .find(|&d| neighbour(d) != WALL)
                    .unwrap_or(h)
            }
            ActionMode::Egocentric => {
                let f = self.facing as usize;
                let (ahead, left) = (neighbour(f), neighbour(f + 3));
                let just_turned_left = self.prev_action == Some(ACTION_TURN_LEFT);
                if ahead == GOAL || (just_turned_left && ahead != WALL) {
                    ACTION_FORWARD
                } else if left != WALL {
                    ACTION_TURN_LEFT
                } else if ahead != WALL {
                    ACTION_FORWARD
                } else {
                    ACTION_TURN_RIGHT
                }
            }
        }
    }

    /// The first action (direction for `move_run`) the current mask allows; 0 without a mask.
    fn first_allowed(&self) -> usize {
        match self.action_mask() {
            Some(mask) => mask.iter().position(|&m| m).unwrap_or(0),
            None => 0,
        }
    }

    /// The `move_run` action that walks one cell in direction `dir` (as returned by
    /// [`GridMaze::oracle_action`] and [`GridMaze::wall_follower_action`] in that mode):
    /// `[dir, STRIDE_WALK]`.
    pub fn walk(dir: usize) -> [usize; 2] {
        [dir, STRIDE_WALK]
    }
}

/// A scripted policy used as a reference line in plots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReferencePolicy {
    /// Uniformly random actions.
    Random,
    /// The BFS shortest-path oracle ([`GridMaze::oracle_action`]); sees the whole maze.
    Oracle,
    /// The memoryless left-hand wall follower ([`GridMaze::wall_follower_action`]).
    WallFollower,
}

impl FromStr for ReferencePolicy {
    type Err = EnvError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "random" => Ok(Self::Random),
            "oracle" => Ok(Self::Oracle),
            "wall-follower" | "wall_follower" => Ok(Self::WallFollower),
            other => Err(EnvError::Other(format!(
                "unknown reference policy {other:?}: use random, oracle or wall-follower"
            ))),
        }
    }
}

impl fmt::Display for ReferencePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Random => "random",
            Self::Oracle => "oracle",
            Self::WallFollower => "wall-follower",
        })
    }
}

/// Mean episode statistics of a scripted policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReferenceStats {
    /// Number of episodes averaged.
    pub episodes: usize,
    /// Mean sum of rewards per episode.
    pub mean_return: f64,
    /// Mean goals reached per episode.
    pub mean_goals: f64,
    /// Mean episode length in steps.
    pub mean_length: f64,
}

/// Runs `episodes` episodes of `policy` on GridMazes built from `cfg` (episode `i` is reset
/// with `derive_seed(seed, i)`) and returns the mean statistics.
///
/// The random policy draws uniformly among the actions the mask allows (all of them without
/// `mask_walls`); with `move_run` it draws a direction and a stride, and the scripted
/// policies walk.
pub fn reference_stats(
    cfg: &GridMazeConfig,
    policy: ReferencePolicy,
    episodes: usize,
    seed: u64,
) -> Result<ReferenceStats, EnvError> {
    if episodes == 0 {
        return Err(EnvError::InvalidConfig {
            field: "episodes",
            reason: "must be at least 1".into(),
        });
    }
    let mut env = GridMaze::new(cfg.clone())?;
    let n = env.n_actions;
    let mut obs = vec![0.0; env.observation_space().flat_len()];
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, u64::MAX));
    let mut total = ReferenceStats {
        episodes,
        ..ReferenceStats::default()
    };
    for i in 0..episodes {
        env.reset(derive_seed(seed, i as u64), &mut obs)?;
        loop {
            let action = match policy {
                ReferencePolicy::Random => match env.action_mask() {
                    Some(mask) => {
                        let allowed = mask[..n].iter().filter(|&&m| m).count();
                        let k = rng.random_range(0..allowed.max(1));
                        mask[..n]
                            .iter()
                            .enumerate()
                            .filter(|(_, m)| **m)
                            .nth(k)
                            .map_or(0, |(a, _)| a)
                    }
                    None => rng.random_range(0..n),
                },
                ReferencePolicy::Oracle => env.oracle_action(),
                ReferencePolicy::WallFollower => env.wall_follower_action(),
            };
            let step = if env.cfg.actions == ActionMode::MoveRun {
                let stride = match policy {
                    ReferencePolicy::Random => rng.random_range(0..ActionMode::STRIDES),
                    _ => STRIDE_WALK,
                };
                env.step(Action::MultiDiscrete(&[action, stride]), &mut obs)?
            } else {
                env.step(action.into(), &mut obs)?
            };
            if step.done() {
                break;
            }
        }
        let s = env.episode_stats();
        total.mean_return += f64::from(s.ret);
        total.mean_goals += f64::from(s.count(super::GOALS).unwrap_or(0.0));
        total.mean_length += f64::from(s.length);
    }
    let k = episodes as f64;
    total.mean_return /= k;
    total.mean_goals /= k;
    total.mean_length /= k;
    Ok(total)
}

/// Mean return per episode of `policy` over `episodes` episodes (see [`reference_stats`]).
pub fn reference_return(
    cfg: &GridMazeConfig,
    policy: ReferencePolicy,
    episodes: usize,
    seed: u64,
) -> Result<f64, EnvError> {
    Ok(reference_stats(cfg, policy, episodes, seed)?.mean_return)
}
