//! GridMaze: partially observable maze navigation with a new procedurally generated maze
//! every episode — the maze task of the Feedback Transformer paper.
//!
//! - `config.rs`: [`GridMazeConfig`] and its validation.
//! - `generate.rs`: randomised depth-first search, loops, start and goal placement.
//! - `oracle.rs`: the BFS shortest-path oracle, the scripted wall follower and reference runs.
//! - `draw.rs`: ASCII and RGB rendering.

mod config;
mod draw;
mod generate;
mod oracle;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use config::{ActionMode, GridMazeConfig, MAX_SIZE, MIN_SIZE, MazeMode};
pub use oracle::{ReferencePolicy, ReferenceStats, reference_return, reference_stats};

use crate::env::{Action, ActionSpace, BoxSpace, Env, EnvError, EpisodeStats, Info, Step};
use crate::episode::EpisodeGuard;
use generate::MazeGen;

/// Grid code of a wall (one-hot slot 0 of a visible cell).
pub(crate) const WALL: u8 = 0;
/// Grid code of a floor cell (one-hot slot 1).
pub(crate) const FLOOR: u8 = 1;
/// Grid code of the goal cell (one-hot slot 2).
pub(crate) const GOAL: u8 = 2;

/// What a grid cell holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cell {
    /// Impassable; also what lies outside the maze.
    Wall,
    /// Free to walk on.
    Floor,
    /// The goal (walkable).
    Goal,
}

/// A grid position: row 0 is the top (north) edge, column 0 the left (west) edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pos {
    /// Row, from the top.
    pub row: usize,
    /// Column, from the left.
    pub col: usize,
}

impl Pos {
    /// The position at `row`, `col`.
    pub fn new(row: usize, col: usize) -> Self {
        Self { row, col }
    }
}

/// A compass direction; also the absolute action with the same number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Up (row − 1).
    North = 0,
    /// Right (column + 1).
    East = 1,
    /// Down (row + 1).
    South = 2,
    /// Left (column − 1).
    West = 3,
}

impl Direction {
    /// The direction numbered `i % 4` (0 = north, clockwise).
    pub fn from_index(i: usize) -> Self {
        [Self::North, Self::East, Self::South, Self::West][i % 4]
    }
}

/// Absolute action: move up (north).
pub const ACTION_UP: usize = 0;
/// Absolute action: move right (east).
pub const ACTION_RIGHT: usize = 1;
/// Absolute action: move down (south).
pub const ACTION_DOWN: usize = 2;
/// Absolute action: move left (west).
pub const ACTION_LEFT: usize = 3;
/// Egocentric action: turn 90° counter-clockwise in place.
pub const ACTION_TURN_LEFT: usize = 0;
/// Egocentric action: turn 90° clockwise in place.
pub const ACTION_TURN_RIGHT: usize = 1;
/// Egocentric action: move one cell in the facing direction.
pub const ACTION_FORWARD: usize = 2;
/// `move_run` stride (dimension 1): walk one cell.
pub const STRIDE_WALK: usize = 0;
/// `move_run` stride (dimension 1): run two cells (stopping at the first wall or the goal).
pub const STRIDE_RUN: usize = 1;

/// Names of the absolute directions / actions, for messages.
const DIRECTION_NAMES: [&str; 4] = ["up", "right", "down", "left"];

/// A hand-written maze: the grid and the agent's start.
#[derive(Clone, Debug)]
struct Layout {
    grid: Vec<u8>,
    agent: usize,
    facing: u8,
    goal: usize,
}

/// Partially observable maze navigation with a fresh maze every episode.
///
/// # Description
/// A square maze of odd side `size` (walls included) is generated at every `reset` by
/// randomised depth-first search from a random start cell, which gives a *perfect* maze (a
/// spanning tree of the `((size−1)/2)²` maze cells: every cell reachable, exactly one path
/// between two cells). With `loop_density > 0` each remaining wall between two maze cells is
/// knocked out with that probability, adding loops. The agent starts at the DFS start cell; the
/// goal is a maze cell drawn uniformly among those whose shortest-path distance from the start
/// is at least `min_goal_distance` moves (default 4 = two maze cells away, out of sight of a
/// 3×3 view); when no cell is that far, among the farthest cells. The agent sees only the
/// `(2r+1)×(2r+1)` window around itself; outside the maze reads as wall. All randomness comes
/// from the env's own ChaCha8 RNG seeded by `reset(seed)`, so a seed fixes the episode.
/// Hand-written mazes can be loaded with [`GridMaze::from_layout`].
///
/// # Action Space
/// `Discrete(4)` with `actions = "absolute"` (default): 0 = up, 1 = right, 2 = down, 3 = left.
/// `Discrete(3)` with `actions = "egocentric"`: 0 = turn left, 1 = turn right, 2 = forward; the
/// agent has a facing direction (random at reset) and its view turns with it.
/// `MultiDiscrete([4, 2])` with `actions = "move_run"`: `[direction, stride]`, the direction as
/// in absolute mode, the stride 0 = walk one cell ([`STRIDE_WALK`]), 1 = run two cells
/// ([`STRIDE_RUN`]); a run stops at the first wall (after one cell when the second is a wall)
/// and on the goal. Moving into a wall leaves the agent in place (the step still counts).
///
/// # Action Mask
/// With `mask_walls = true`, [`Env::action_mask`] gives the moves that do not run into a wall,
/// recomputed after every `reset` and `step`, and `step` refuses a forbidden action with
/// [`EnvError::ActionOutsideSpace`] (naming the action and the wall), leaving the env as it
/// was:
/// - absolute: 4 flags, a direction is forbidden when its adjacent cell is a wall;
/// - egocentric: 3 flags, `forward` is forbidden when facing a wall, turns are always allowed;
/// - `move_run`: 4 + 2 flags, the directions as in absolute mode; both strides are always
///   allowed (a run in an allowed direction moves at least one cell, so it never runs into a
///   wall from the start).
///
/// An agent walled in on all four sides (possible only in hand-written layouts) may take every
/// direction, so that the mask never forbids every value of a dimension. Without
/// `mask_walls`, `action_mask` is `None`.
///
/// # Observation Encoding
/// A flat `f32` vector of length `3·(2r+1)² + P + 1 (+1)` (P = 4 absolute, 3 egocentric, 4 + 2
/// `move_run`; [`GridMazeConfig::prev_action_len`]), in order:
/// 1. the view, row-major from its top-left, 3 values per cell: one-hot `[wall, floor, goal]`.
///    With egocentric actions the view is rotated so that the facing direction is up: view row
///    0 is the farthest row ahead, view column 0 the leftmost (the agent is at the centre);
/// 2. one-hot of the previous action (all zeros at the first step); for `move_run` a one-hot
///    of the previous direction (4 slots) followed by a one-hot of the previous stride (2
///    slots);
/// 3. the previous reward (0 at the first step);
/// 4. with `time_feature = true`, the normalised time step `t / horizon` in [0, 1].
///
/// The 3×3 / 4-action default is 27 + 4 + 1 = 32 values. Bounds: one-hots and time in [0, 1],
/// the reward in `[−step_penalty, goal_reward]`.
///
/// # Rewards
/// `goal_reward` (default 1) when the agent steps onto the goal, minus `step_penalty` (default
/// 0) on every step. Every step also reports the count `goals` ([`Info::counts`], declared by
/// [`Env::episode_counts`]): 1 on the step that reaches the goal, else 0, so an episode's
/// [`EpisodeStats::count`]`("goals")` is the number of goals it reached.
///
/// # Termination
/// - `single` mode: `terminated` when the agent reaches the goal.
/// - `multi` mode (default): reaching the goal respawns the agent
///   at a uniformly random maze cell other than the goal (facing kept); the maze and goal stay
///   until the episode ends, so remembering them pays off. It never terminates.
/// - Both: `truncated` when the step count reaches `horizon` (unless the same step terminated).
///   After either, `step` returns [`EnvError::StepAfterDone`] until `reset`.
///
/// # Configurations
/// See [`GridMazeConfig`]. Presets: `GridMazeConfig::default()` = `GridMazeConfig::multi(7, 64)`
/// (the main experiment: 7×7, 3×3 view, horizon 64, multi), `GridMazeConfig::single(size,
/// horizon)`, and `.egocentric()`, `.move_run()` and `.masked()` on either.
#[derive(Clone, Debug)]
pub struct GridMaze {
    cfg: GridMazeConfig,
    space: BoxSpace,
    /// Number of discrete actions (absolute, egocentric) or of directions (`move_run`).
    n_actions: usize,
    /// Length of the previous-action one-hot in the observation.
    prev_len: usize,
    /// With `mask_walls` or `move_run` actions, steps go through `step_extended`.
    extended: bool,
    /// Side of the maze (without padding).
    size: usize,
    /// Wall cells of padding around the maze, `max(r, 1)`, so the view never leaves the grid.
    pad: usize,
    /// Row length of the padded grid, `size + 2·pad`.
    stride: usize,
    /// Padded grid of WALL / FLOOR / GOAL codes.
    grid: Vec<u8>,
    /// Offsets (padded grid index deltas) of the view cells in observation order, per facing
    /// direction (absolute actions use entry 0).
    view_offsets: [Vec<isize>; 4],
    /// Grid index deltas of N, E, S, W.
    moves: [isize; 4],
    layout: Option<Layout>,
    gen_state: MazeGen,
    /// Padded grid indices where the agent may (re)spawn.
    spawn: Vec<u32>,
    /// Index of the goal in `spawn` (skipped when respawning), or `usize::MAX`.
    goal_spawn: usize,
    rng: ChaCha8Rng,
    agent: usize,
    goal: usize,
    facing: u8,
    /// The previous action (absolute, egocentric) or direction (`move_run`).
    prev_action: Option<usize>,
    /// Observation slot of the previous `move_run` stride, after the direction slots.
    prev_stride_slot: Option<usize>,
    prev_reward: f32,
    /// The current action mask (with `mask_walls`; empty otherwise).
    mask: Vec<bool>,
    /// Reset before step, the horizon, the step count and the episode's statistics.
    episode: EpisodeGuard,
    /// BFS distance to the goal per grid index; valid when `dist_valid`.
    dist: Vec<u32>,
    dist_valid: bool,
    queue: Vec<u32>,
}

impl GridMaze {
    /// A GridMaze generating a new maze every episode; fails if `cfg` is invalid (the error
    /// names the field). Call [`Env::reset`] before stepping.
    pub fn new(cfg: GridMazeConfig) -> Result<Self, EnvError> {
        cfg.validate()?;
        let mut env = Self::with_side(cfg);
        env.spawn = env.gen_state.cell_index.clone();
        Ok(env)
    }

    /// A GridMaze on a fixed hand-written maze, the same at every reset (for tests, debugging
    /// and hand-made tasks). `cfg.size` is replaced by the layout's side.
    ///
    /// One line per row (leading/trailing whitespace and blank lines are ignored), all of the
    /// same length, as many rows as columns: `#` wall, `.` floor, `G` the goal (exactly one),
    /// and the agent's start (exactly one): `A` or `^` facing north, `>` east, `v` south, `<`
    /// west (the facing matters only with egocentric actions).
    pub fn from_layout(layout: &str, mut cfg: GridMazeConfig) -> Result<Self, EnvError> {
        let rows: Vec<&str> = layout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let bad = |reason: String| EnvError::InvalidConfig {
            field: "layout",
            reason,
        };
        let side = rows.len();
        if side == 0 {
            return Err(bad("the layout is empty".into()));
        }
        for (i, r) in rows.iter().enumerate() {
            if r.chars().count() != side {
                return Err(bad(format!(
                    "row {i} has {} characters; a layout must be square ({side} rows)",
                    r.chars().count()
                )));
            }
        }
        cfg.size = side;
        cfg.validate_except_size(side)?;
        let mut env = Self::with_side(cfg);
        let mut grid = vec![WALL; env.grid.len()];
        let (mut agent, mut facing, mut goal) = (None, 0u8, None);
        for (r, row) in rows.iter().enumerate() {
            for (c, ch) in row.chars().enumerate() {
                let i = env.index(Pos::new(r, c));
                grid[i] = match ch {
                    '#' => WALL,
                    '.' => FLOOR,
                    'G' => {
                        if goal.replace(i).is_some() {
                            return Err(bad("more than one goal `G`".into()));
                        }
                        GOAL
                    }
                    'A' | '^' | '>' | 'v' | '<' => {
                        if agent.replace(i).is_some() {
                            return Err(bad("more than one agent (`A ^ > v <`)".into()));
                        }
                        facing = match ch {
                            '>' => 1,
                            'v' => 2,
                            '<' => 3,
                            _ => 0,
                        };
                        FLOOR
                    }
                    other => {
                        return Err(bad(format!(
                            "unknown character {other:?} at row {r}, column {c} \
                             (use # . G A ^ > v <)"
                        )));
                    }
                };
            }
        }
        let agent = agent.ok_or_else(|| bad("no agent (`A ^ > v <`)".into()))?;
        let goal = goal.ok_or_else(|| bad("no goal `G`".into()))?;
        env.spawn = (0..grid.len())
            .filter(|&i| grid[i] != WALL)
            .map(|i| i as u32)
            .collect();
        if env.cfg.mode == MazeMode::Multi && env.spawn.len() < 2 {
            return Err(bad("multi mode needs a floor cell besides the goal".into()));
        }
        env.goal_spawn = env
            .spawn
            .iter()
            .position(|&i| i as usize == goal)
            .unwrap_or(usize::MAX);
        env.layout = Some(Layout {
            grid,
            agent,
            facing,
            goal,
        });
        Ok(env)
    }

    fn with_side(cfg: GridMazeConfig) -> Self {
        let size = cfg.size;
        let pad = cfg.view_radius.max(1);
        let stride = size + 2 * pad;
        let n_actions = match cfg.actions {
            ActionMode::MoveRun => 4,
            _ => cfg.num_actions(),
        };
        let prev_len = cfg.prev_action_len();
        let mask = if cfg.mask_walls {
            vec![true; cfg.action_space().mask_width().unwrap_or(0)]
        } else {
            Vec::new()
        };
        let obs_len = cfg.obs_len();
        let mut low = vec![0.0; obs_len];
        let mut high = vec![1.0; obs_len];
        let reward_slot = 3 * cfg.view_side() * cfg.view_side() + prev_len;
        low[reward_slot] = -cfg.step_penalty;
        high[reward_slot] = cfg.goal_reward;
        let space = BoxSpace {
            shape: vec![obs_len],
            low,
            high,
        };
        let s = stride as isize;
        let moves = [-s, 1, s, -1];
        let r = cfg.view_radius as isize;
        // View cell (i, j) (i from the top, j from the left of the view as the agent sees it)
        // lies at world offset (i − r)·back + (j − r)·right, with back = −forward.
        let view_offsets = std::array::from_fn(|f| {
            let (fwd, right) = (moves[f], moves[(f + 1) % 4]);
            let mut v = Vec::with_capacity(cfg.view_side() * cfg.view_side());
            for i in -r..=r {
                for j in -r..=r {
                    v.push(-i * fwd + j * right);
                }
            }
            v
        });
        Self {
            space,
            n_actions,
            prev_len,
            extended: cfg.mask_walls || cfg.actions == ActionMode::MoveRun,
            size,
            pad,
            stride,
            grid: vec![WALL; stride * stride],
            view_offsets,
            moves,
            layout: None,
            gen_state: MazeGen::new(size.max(3), pad),
            spawn: Vec::new(),
            goal_spawn: usize::MAX,
            rng: ChaCha8Rng::seed_from_u64(0),
            agent: 0,
            goal: 0,
            facing: 0,
            prev_action: None,
            prev_stride_slot: None,
            prev_reward: 0.0,
            mask,
            episode: EpisodeGuard::new(cfg.horizon),
            dist: vec![u32::MAX; stride * stride],
            dist_valid: false,
            queue: Vec::with_capacity(stride * stride),
            cfg,
        }
    }

    /// The configuration (for a layout, `size` is the layout's side).
    pub fn config(&self) -> &GridMazeConfig {
        &self.cfg
    }

    /// Side length of the maze, walls included.
    pub fn size(&self) -> usize {
        self.size
    }

    /// What lies at `pos`; positions outside the maze read as [`Cell::Wall`].
    pub fn cell(&self, pos: Pos) -> Cell {
        if pos.row >= self.size || pos.col >= self.size {
            return Cell::Wall;
        }
        match self.grid[self.index(pos)] {
            WALL => Cell::Wall,
            GOAL => Cell::Goal,
            _ => Cell::Floor,
        }
    }

    /// Whether `pos` is walkable (floor or goal).
    pub fn is_open(&self, pos: Pos) -> bool {
        self.cell(pos) != Cell::Wall
    }

    /// The maze as rows of cells, top row first (allocates; for tests and tools).
    pub fn cells(&self) -> Vec<Vec<Cell>> {
        (0..self.size)
            .map(|r| (0..self.size).map(|c| self.cell(Pos::new(r, c))).collect())
            .collect()
    }

    /// The agent's position.
    pub fn agent_pos(&self) -> Pos {
        self.pos(self.agent)
    }

    /// The goal's position.
    pub fn goal_pos(&self) -> Pos {
        self.pos(self.goal)
    }

    /// The agent's facing direction (meaningful with egocentric actions; north otherwise).
    pub fn facing(&self) -> Direction {
        Direction::from_index(self.facing as usize)
    }

    /// Steps taken in the current episode.
    pub fn time_step(&self) -> u32 {
        self.episode.elapsed()
    }

    /// Whether the current episode has ended (terminated or truncated).
    pub fn is_done(&self) -> bool {
        self.episode.is_done()
    }

    /// Statistics of the current episode so far (final once it has ended).
    pub fn episode_stats(&self) -> EpisodeStats {
        self.episode.stats()
    }

    /// Whether `pos` is inside the agent's current view window.
    pub fn in_view(&self, pos: Pos) -> bool {
        let a = self.agent_pos();
        let r = self.cfg.view_radius;
        pos.row.abs_diff(a.row) <= r && pos.col.abs_diff(a.col) <= r
    }

    fn index(&self, pos: Pos) -> usize {
        (pos.row + self.pad) * self.stride + pos.col + self.pad
    }

    fn pos(&self, index: usize) -> Pos {
        Pos::new(
            index / self.stride - self.pad,
            index % self.stride - self.pad,
        )
    }

    /// Builds the episode's maze, start and goal.
    fn build_episode(&mut self) {
        if let Some(layout) = &self.layout {
            self.grid.copy_from_slice(&layout.grid);
            self.agent = layout.agent;
            self.goal = layout.goal;
            self.facing = layout.facing;
        } else {
            let start = self
                .gen_state
                .carve_perfect(&mut self.grid, self.stride, &mut self.rng);
            self.agent = self.gen_state.cell_index[start] as usize;
            if self.cfg.loop_density > 0.0
                && self.gen_state.add_loops(
                    &mut self.grid,
                    self.size,
                    self.pad,
                    self.cfg.loop_density,
                    &mut self.rng,
                )
            {
                // Loops shorten paths: replace the tree depths by true distances.
                generate::bfs(
                    &self.grid,
                    self.stride,
                    self.agent,
                    &mut self.dist,
                    &mut self.queue,
                );
                for (d, &i) in self
                    .gen_state
                    .depth
                    .iter_mut()
                    .zip(&self.gen_state.cell_index)
                {
                    *d = self.dist[i as usize];
                }
            }
            let goal_cell =
                self.gen_state
                    .pick_goal(start, self.cfg.min_goal_distance, &mut self.rng);
            self.goal = self.gen_state.cell_index[goal_cell] as usize;
            self.goal_spawn = goal_cell;
            self.grid[self.goal] = GOAL;
            self.facing = if self.cfg.actions == ActionMode::Egocentric {
                self.rng.random_range(0..4u8)
            } else {
                0
            };
        }
        self.dist_valid = false;
    }

    /// Moves the agent to a uniformly random spawn cell other than the goal.
    fn respawn(&mut self) {
        let n = self.spawn.len();
        let mut j = self.rng.random_range(0..n - 1);
        if j >= self.goal_spawn {
            j += 1;
        }
        self.agent = self.spawn[j] as usize;
    }

    /// Writes the observation of the current state into `obs` (length checked by the caller).
    fn write_obs(&self, obs: &mut [f32]) {
        obs.fill(0.0);
        let offsets = &self.view_offsets[self.facing as usize];
        let (view, rest) = obs.split_at_mut(3 * offsets.len());
        for (slot, &off) in view.chunks_exact_mut(3).zip(offsets) {
            slot[self.grid[self.agent.wrapping_add_signed(off)] as usize] = 1.0;
        }
        if let Some(a) = self.prev_action {
            rest[a] = 1.0;
        }
        if let Some(s) = self.prev_stride_slot {
            rest[s] = 1.0;
        }
        rest[self.prev_len] = self.prev_reward;
        if self.cfg.time_feature {
            rest[self.prev_len + 1] = self.episode.elapsed() as f32 / self.cfg.horizon as f32;
        }
    }

    /// Whether the cell next to the agent in direction `d` (0 = north, clockwise) is a wall.
    fn wall_towards(&self, d: usize) -> bool {
        self.grid[self.agent.wrapping_add_signed(self.moves[d % 4])] == WALL
    }

    /// Whether the cell next to the agent in direction `dir` is a wall (a move that way
    /// leaves the agent in place; with `mask_walls` the mask forbids it).
    pub fn wall_ahead(&self, dir: Direction) -> bool {
        self.wall_towards(dir as usize)
    }

    /// Recomputes the action mask for the current state (with `mask_walls` only).
    fn update_mask(&mut self) {
        match self.cfg.actions {
            ActionMode::Egocentric => {
                self.mask[ACTION_TURN_LEFT] = true;
                self.mask[ACTION_TURN_RIGHT] = true;
                self.mask[ACTION_FORWARD] = !self.wall_towards(self.facing as usize);
            }
            ActionMode::Absolute | ActionMode::MoveRun => {
                let open: [bool; 4] = std::array::from_fn(|d| !self.wall_towards(d));
                // Walled in on all sides (hand-written layouts only): every move is allowed,
                // so that the mask never forbids a whole dimension.
                let all = !open.contains(&true);
                for (m, o) in self.mask.iter_mut().zip(open) {
                    *m = o || all;
                }
                // `move_run` strides: always allowed.
                for m in self.mask.iter_mut().skip(4) {
                    *m = true;
                }
            }
        }
    }

    /// Turns (egocentric `turn left` / `turn right`) or moves one cell for the discrete action
    /// or direction `action`; returns the direction of the move, if any.
    #[inline(always)]
    fn act(&mut self, action: usize) -> Option<usize> {
        let dir = match self.cfg.actions {
            ActionMode::Absolute | ActionMode::MoveRun => Some(action),
            ActionMode::Egocentric => match action {
                ACTION_TURN_LEFT => {
                    self.facing = (self.facing + 3) % 4;
                    None
                }
                ACTION_TURN_RIGHT => {
                    self.facing = (self.facing + 1) % 4;
                    None
                }
                _ => Some(self.facing as usize),
            },
        };
        if let Some(d) = dir {
            self.try_move(d);
        }
        dir
    }

    /// Moves the agent one cell in direction `d` unless a wall is there.
    #[inline(always)]
    fn try_move(&mut self, d: usize) {
        let target = self.agent.wrapping_add_signed(self.moves[d]);
        // A select, not a branch: under a random policy the branch is unpredictable.
        let open = self.grid[target] != WALL;
        self.agent = if open { target } else { self.agent };
    }

    /// Everything after the move: time, reward, goal and respawn, end flags, statistics and
    /// the observation.
    #[inline(always)]
    fn finish_step(&mut self, action: usize, obs: &mut [f32]) -> Step {
        let goal_reached = self.agent == self.goal;
        // `0 − penalty` rather than `−penalty`: no negative zero without a penalty.
        let mut reward = 0.0 - self.cfg.step_penalty;
        let mut terminated = false;
        if goal_reached {
            reward += self.cfg.goal_reward;
            match self.cfg.mode {
                MazeMode::Single => terminated = true,
                MazeMode::Multi => self.respawn(),
            }
        }
        self.prev_action = Some(action);
        self.prev_reward = reward;
        let mut step = Step {
            reward,
            terminated,
            truncated: false,
            info: Info::default().with_count(GOALS, f32::from(u8::from(goal_reached))),
        };
        self.episode.finish_step(&mut step);
        self.write_obs(obs);
        step
    }

    /// [`Env::step`] with a wall mask or `move_run` actions (kept apart so that the plain
    /// path stays as short as it was): decodes the action, refuses what the mask forbids,
    /// runs a second cell, records the stride and recomputes the mask.
    fn step_extended(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step, EnvError> {
        let (action, stride) = self.decode(action)?;
        self.space.check_buffer(obs)?;
        if self.cfg.mask_walls
            && let Some(e) = self.masked_out(action, stride)
        {
            return Err(e);
        }
        // A run takes a second step unless the first reached the goal; when the first hit a
        // wall, so does the second.
        if let Some(d) = self.act(action)
            && stride == STRIDE_RUN
            && self.agent != self.goal
        {
            self.try_move(d);
        }
        if self.cfg.actions == ActionMode::MoveRun {
            self.prev_stride_slot = Some(self.n_actions + stride);
        }
        let step = self.finish_step(action, obs);
        if self.cfg.mask_walls {
            self.update_mask();
        }
        Ok(step)
    }

    /// Decodes `action` into (direction or discrete action, stride), refusing actions outside
    /// the action space.
    fn decode(&self, action: Action<'_>) -> Result<(usize, usize), EnvError> {
        if self.cfg.actions != ActionMode::MoveRun {
            return Ok((action.discrete(self.n_actions)?, STRIDE_WALK));
        }
        match action {
            Action::MultiDiscrete(&[d, s]) if d < 4 && s < ActionMode::STRIDES => Ok((d, s)),
            _ => Err(match self.cfg.action_space().check(action) {
                Err(e) => e,
                Ok(()) => EnvError::ActionOutsideSpace(format!(
                    "{action} is not an action of {}",
                    self.cfg.action_space()
                )),
            }),
        }
    }

    /// The error for an action the current mask forbids, if it does.
    fn masked_out(&self, a: usize, stride: usize) -> Option<EnvError> {
        match self.cfg.actions {
            ActionMode::Absolute if !self.mask[a] => Some(EnvError::ActionOutsideSpace(format!(
                "action {a} ({}) is forbidden by the action mask: a wall blocks the move {}",
                DIRECTION_NAMES[a], DIRECTION_NAMES[a]
            ))),
            ActionMode::Egocentric if !self.mask[a] => Some(EnvError::ActionOutsideSpace(format!(
                "action {a} (forward) is forbidden by the action mask: a wall blocks the \
                     cell ahead (facing {:?})",
                self.facing()
            ))),
            ActionMode::MoveRun if !self.mask[a] || !self.mask[4 + stride] => {
                let kind = if stride == STRIDE_RUN { "run" } else { "walk" };
                Some(EnvError::ActionOutsideSpace(format!(
                    "action [{a}, {stride}] ({kind} {}) is forbidden by the action mask: a wall \
                     blocks the move {}",
                    DIRECTION_NAMES[a], DIRECTION_NAMES[a]
                )))
            }
            _ => None,
        }
    }
}

/// The name of GridMaze's count of goals reached ([`Info::counts`]).
pub const GOALS: &str = "goals";

impl Env for GridMaze {
    fn observation_space(&self) -> &BoxSpace {
        &self.space
    }

    fn action_space(&self) -> ActionSpace {
        self.cfg.action_space()
    }

    fn reset(&mut self, seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
        self.space.check_buffer(obs)?;
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self.build_episode();
        self.prev_action = None;
        self.prev_stride_slot = None;
        self.prev_reward = 0.0;
        self.episode.start();
        if self.cfg.mask_walls {
            self.update_mask();
        }
        self.write_obs(obs);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step, EnvError> {
        self.episode.check_step()?;
        if self.extended {
            return self.step_extended(action, obs);
        }
        let action = action.discrete(self.n_actions)?;
        self.space.check_buffer(obs)?;
        self.act(action);
        Ok(self.finish_step(action, obs))
    }

    fn action_mask(&self) -> Option<&[bool]> {
        self.cfg.mask_walls.then_some(self.mask.as_slice())
    }

    fn render_ascii(&self) -> Option<String> {
        Some(self.ascii())
    }

    fn render_rgb(&self) -> Option<crate::render::Frame> {
        Some(self.frame(crate::render::CELL_PX))
    }

    fn agent_rect(&self) -> Option<[usize; 4]> {
        let px = crate::render::CELL_PX.max(2);
        let a = self.agent_pos();
        Some([a.col * px, a.row * px, px, px])
    }

    fn episode_counts(&self) -> &'static [&'static str] {
        &[GOALS]
    }

    fn name(&self) -> String {
        let mode = match self.cfg.mode {
            MazeMode::Single => "single",
            MazeMode::Multi => "multi",
        };
        format!("gridmaze-{mode}-{0}x{0}", self.size)
    }
}
