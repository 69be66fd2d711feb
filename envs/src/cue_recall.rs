//! CueRecall: a T-maze memory diagnostic. A cue seen only at the first step decides which exit
//! pays at the end of a corridor whose length is the memory delay.

use std::fmt::Write;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config_check::{at_least, at_most, outcome_rewards};
use crate::env::{Action, ActionSpace, BoxSpace, Env, EnvError, EpisodeStats, Step};
use crate::episode::EpisodeGuard;
use crate::render::Frame;

/// Action 0: move forward along the corridor (waits in place at the junction).
pub const CUE_ACTION_FORWARD: usize = 0;

/// Configuration of a [`CueRecall`] task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CueRecallConfig {
    /// Corridor steps between the cue and the junction: the delay the cue must be remembered
    /// over (0 = the junction is at the start).
    pub corridor_length: u32,
    /// Number of distinct cues and of exits at the junction (≥ 2; 2 is the classic T-maze).
    pub num_cues: usize,
    /// Reward for taking the exit the cue pointed to (finite).
    pub success_reward: f32,
    /// Reward for taking a wrong exit (finite, at most `success_reward`; e.g. 0 or −1).
    pub failure_reward: f32,
    /// Extra steps the agent may wait at the junction (action forward) before the episode is
    /// truncated.
    pub junction_patience: u32,
    /// Append the corridor progress `position / corridor_length` (1 at the junction) to the
    /// observation.
    pub progress_feature: bool,
}

impl Default for CueRecallConfig {
    fn default() -> Self {
        Self {
            corridor_length: 4,
            num_cues: 2,
            success_reward: 1.0,
            failure_reward: 0.0,
            junction_patience: 4,
            progress_feature: false,
        }
    }
}

impl CueRecallConfig {
    /// The classic two-cue T-maze with a corridor of `corridor_length` steps.
    pub fn with_corridor(corridor_length: u32) -> Self {
        Self {
            corridor_length,
            ..Self::default()
        }
    }

    /// Checks every field; the error names the first offending field.
    pub fn validate(&self) -> Result<(), EnvError> {
        at_least("num_cues", self.num_cues, 2)?;
        at_most("num_cues", self.num_cues, 64)?;
        at_most("corridor_length", self.corridor_length, 1_000_000)?;
        outcome_rewards(self.success_reward, self.failure_reward)?;
        at_most("junction_patience", self.junction_patience, 1_000_000)?;
        Ok(())
    }

    /// Length of the observation: `num_cues + 2 (+ 1 with the progress feature)`.
    pub fn obs_len(&self) -> usize {
        self.num_cues + 2 + usize::from(self.progress_feature)
    }

    /// Longest possible episode: the corridor, the patience steps and the decision.
    pub fn max_steps(&self) -> u32 {
        self.corridor_length + self.junction_patience + 1
    }
}

/// A T-maze / cue-recall memory task.
///
/// # Description
/// At reset a cue `c ∈ {0, …, k−1}` is drawn uniformly (k = `num_cues`) and shown in the first
/// observation only. The agent then walks a corridor of `corridor_length` steps — every action
/// moves it one step forward — and reaches a junction with k exits. Exit `c` is the right one.
/// Nothing after the first observation tells the cue, so a memoryless policy succeeds with
/// probability exactly 1/k (its choice at the junction cannot depend on the cue), while a
/// policy that remembers the cue for `corridor_length + 1` steps can succeed every time.
///
/// # Action Space
/// `Discrete(k + 1)`: 0 = forward (in the corridor: move on; at the junction: wait), `1 + i` =
/// take exit `i` (in the corridor it also just moves forward). For k = 2: 1 = left, 2 = right.
///
/// # Observation Encoding
/// A flat `f32` vector of length `k + 2 (+1)`:
/// 1. one-hot of the cue at the first observation (from `reset`), zeros afterwards;
/// 2. 1 while in the corridor (before the junction), else 0;
/// 3. 1 at the junction, else 0;
/// 4. with `progress_feature = true`, `position / corridor_length` in [0, 1] (1 if the
///    corridor is empty).
///
/// # Rewards
/// `success_reward` (default 1) for the right exit, `failure_reward` (default 0; −1 is a common
/// choice) for a wrong one, 0 on every other step.
///
/// # Termination
/// `terminated` when an exit is taken at the junction (`Info::success` says whether it was the
/// right one). `truncated` if the agent waits at the junction for more than
/// `junction_patience` steps (episode length `corridor_length + junction_patience + 1`), with
/// `Info::success = Some(false)`.
///
/// # Configurations
/// See [`CueRecallConfig`]; `CueRecallConfig::with_corridor(n)` sets the delay. The shortest
/// episode has `corridor_length + 1` steps.
#[derive(Clone, Debug)]
pub struct CueRecall {
    cfg: CueRecallConfig,
    space: BoxSpace,
    rng: ChaCha8Rng,
    cue: usize,
    position: u32,
    /// The exit taken, once the episode has ended with one.
    exit: Option<usize>,
    episode: EpisodeGuard,
}

impl CueRecall {
    /// A cue-recall task; fails if `cfg` is invalid (the error names the field).
    pub fn new(cfg: CueRecallConfig) -> Result<Self, EnvError> {
        cfg.validate()?;
        let space = BoxSpace::uniform(cfg.obs_len(), 0.0, 1.0);
        let episode = EpisodeGuard::new(cfg.max_steps()).failing_on_truncation();
        Ok(Self {
            cfg,
            space,
            rng: ChaCha8Rng::seed_from_u64(0),
            cue: 0,
            position: 0,
            exit: None,
            episode,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CueRecallConfig {
        &self.cfg
    }

    /// The current episode's cue (the index of the right exit).
    pub fn cue(&self) -> usize {
        self.cue
    }

    /// Steps walked along the corridor (`corridor_length` = at the junction).
    pub fn position(&self) -> u32 {
        self.position
    }

    /// Whether the agent stands at the junction.
    pub fn at_junction(&self) -> bool {
        self.position >= self.cfg.corridor_length
    }

    /// Statistics of the current episode so far (final once it has ended).
    pub fn episode_stats(&self) -> EpisodeStats {
        self.episode.stats()
    }

    /// The optimal action for an agent that remembers the cue: forward along the corridor,
    /// then the cued exit.
    pub fn optimal_action(&self) -> usize {
        if self.at_junction() {
            1 + self.cue
        } else {
            CUE_ACTION_FORWARD
        }
    }

    /// Where the agent is drawn in `pic`: `[x, y, width, height]`, on the exit it took once it
    /// has taken one.
    fn agent_in(&self, pic: &Picture) -> [usize; 4] {
        match self.exit {
            Some(i) => [
                pic.exits_x + 2,
                pic.exits_y + i * pic.exit_h,
                Picture::CELL - 4,
                pic.exit_h.saturating_sub(1).max(1),
            ],
            None => {
                let w = pic.cell_w.clamp(3, Picture::CELL - 4);
                let x = pic.cell_x(self.position as usize) + pic.cell_w.saturating_sub(w) / 2;
                [
                    x.min(Picture::MARGIN + pic.track - w),
                    pic.row_y + 2,
                    w,
                    Picture::CELL - 4,
                ]
            }
        }
    }

    fn write_obs(&self, obs: &mut [f32]) {
        obs.fill(0.0);
        let k = self.cfg.num_cues;
        if self.episode.elapsed() == 0 {
            obs[self.cue] = 1.0;
        }
        if self.at_junction() {
            obs[k + 1] = 1.0;
        } else {
            obs[k] = 1.0;
        }
        if self.cfg.progress_feature {
            obs[k + 2] = if self.cfg.corridor_length == 0 {
                1.0
            } else {
                self.position as f32 / self.cfg.corridor_length as f32
            };
        }
    }
}

impl Env for CueRecall {
    fn observation_space(&self) -> &BoxSpace {
        &self.space
    }

    fn action_space(&self) -> ActionSpace {
        ActionSpace::discrete(self.cfg.num_cues + 1)
    }

    fn reset(&mut self, seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
        self.space.check_buffer(obs)?;
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self.cue = self.rng.random_range(0..self.cfg.num_cues);
        self.position = 0;
        self.exit = None;
        self.episode.start();
        self.write_obs(obs);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step, EnvError> {
        self.episode.check_step()?;
        let action = action.discrete(self.cfg.num_cues + 1)?;
        self.space.check_buffer(obs)?;
        let mut step = Step::default();
        if !self.at_junction() {
            self.position += 1;
        } else if action != CUE_ACTION_FORWARD {
            self.exit = Some(action - 1);
            step.terminate_with(
                action - 1 == self.cue,
                self.cfg.success_reward,
                self.cfg.failure_reward,
            );
        }
        self.episode.finish_step(&mut step);
        self.write_obs(obs);
        Ok(step)
    }

    fn render_ascii(&self) -> Option<String> {
        let mut s = String::new();
        let len = self.cfg.corridor_length as usize;
        s.push('S');
        for i in 1..=len {
            s.push(if i == len { 'J' } else { '-' });
        }
        let mut line: Vec<char> = s.chars().collect();
        line[self.position as usize] = '@';
        let mut out: String = line.into_iter().collect();
        let cue = if self.episode.elapsed() == 0 {
            format!("cue {} (visible now)", self.cue)
        } else {
            "cue hidden".to_string()
        };
        let _ = write!(
            out,
            "  exits 0..{}  {cue}  t={}/{}",
            self.cfg.num_cues,
            self.episode.elapsed(),
            self.cfg.max_steps()
        );
        out.push('\n');
        Some(out)
    }

    /// The corridor as a row of grey cells from the start (left) to the darker junction, the
    /// exits as a column of coloured cells right of it, the agent as a dark square (on the exit
    /// it took once it has taken one). At the first step the start cell shows the cue in its
    /// exit's colour, as the first observation does.
    fn render_rgb(&self) -> Option<Frame> {
        let pic = Picture::new(&self.cfg);
        let mut frame = Frame::new(pic.width, pic.height);
        frame.fill_rect(0, 0, pic.width, pic.height, [255, 255, 255]);
        frame.fill_rect(
            Picture::MARGIN,
            pic.row_y,
            pic.track,
            Picture::CELL,
            [200, 200, 200],
        );
        if pic.cell_w >= 4 {
            for c in 1..pic.cells {
                frame.fill_rect(
                    pic.cell_x(c) - 1,
                    pic.row_y,
                    1,
                    Picture::CELL,
                    [255, 255, 255],
                );
            }
        }
        let junction = pic.cell_x(pic.cells - 1);
        frame.fill_rect(
            junction,
            pic.row_y,
            pic.cell_w,
            Picture::CELL,
            [140, 140, 140],
        );
        let k = self.cfg.num_cues;
        for i in 0..k {
            let y = pic.exits_y + i * pic.exit_h;
            let h = pic.exit_h - usize::from(pic.exit_h > 2);
            frame.fill_rect(pic.exits_x, y, Picture::CELL, h, cue_colour(i, k));
        }
        if self.episode.elapsed() == 0 {
            frame.fill_rect(
                Picture::MARGIN,
                pic.row_y,
                pic.cell_w,
                Picture::CELL,
                cue_colour(self.cue, k),
            );
        }
        let [x, y, w, h] = self.agent_in(&pic);
        frame.fill_rect(x, y, w, h, [30, 30, 30]);
        Some(frame)
    }

    fn agent_rect(&self) -> Option<[usize; 4]> {
        Some(self.agent_in(&Picture::new(&self.cfg)))
    }

    fn name(&self) -> String {
        format!("cue-recall-{}", self.cfg.corridor_length)
    }
}

/// The pixel layout of a [`CueRecall`] picture.
struct Picture {
    /// Corridor cells, start to junction.
    cells: usize,
    /// Width of the corridor.
    track: usize,
    /// Width of one corridor cell (at least 1; cells may share pixels when there are many).
    cell_w: usize,
    /// Top of the corridor row.
    row_y: usize,
    /// Left edge of the exits.
    exits_x: usize,
    /// Top of the first exit.
    exits_y: usize,
    /// Height of one exit.
    exit_h: usize,
    width: usize,
    height: usize,
}

impl Picture {
    /// Cell size in pixels (a long corridor's cells are narrower).
    const CELL: usize = 12;
    /// Blank border around the picture.
    const MARGIN: usize = 4;
    /// Widest the corridor is drawn.
    const MAX_TRACK: usize = 480;
    /// Tallest the column of exits is drawn.
    const MAX_EXITS: usize = 384;

    /// Where `render_rgb` draws things for `cfg`.
    fn new(cfg: &CueRecallConfig) -> Self {
        let cells = cfg.corridor_length as usize + 1;
        let track = (cells * Self::CELL).min(Self::MAX_TRACK);
        let exit_h = (Self::MAX_EXITS / cfg.num_cues).clamp(2, Self::CELL);
        let exits = cfg.num_cues * exit_h;
        let body = exits.max(Self::CELL);
        Self {
            cells,
            track,
            cell_w: (track / cells).max(1),
            row_y: Self::MARGIN + (body - Self::CELL) / 2,
            exits_x: Self::MARGIN + track + 2,
            exits_y: Self::MARGIN + (body - exits) / 2,
            exit_h,
            width: 2 * Self::MARGIN + track + 2 + Self::CELL,
            height: 2 * Self::MARGIN + body,
        }
    }

    /// Left edge of corridor cell `c`.
    fn cell_x(&self, c: usize) -> usize {
        Self::MARGIN + c * self.track / self.cells
    }
}

/// A colour of its own for each of `k` cues: hues evenly around the colour wheel.
fn cue_colour(i: usize, k: usize) -> [u8; 3] {
    let h = 6.0 * i as f32 / k as f32;
    let x = 1.0 - (h % 2.0 - 1.0).abs();
    let (r, g, b) = match h as usize {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    let c = |v: f32| (40.0 + 170.0 * v).round() as u8;
    [c(r), c(g), c(b)]
}
