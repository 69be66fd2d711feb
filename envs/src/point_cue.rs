//! PointCue: a continuous-action memory task. A cue seen only at the first step says which
//! end of a line to push a point mass to, after a delay during which the mass is held still.

use std::fmt::Write;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config_check::{
    at_most, in_range, invalid, non_negative, outcome_rewards, positive, unit_interval,
};
use crate::env::{Action, ActionSpace, BoxSpace, Env, EnvError, EpisodeStats, Step};
use crate::episode::EpisodeGuard;
use crate::render::Frame;

/// Configuration of a [`PointCue`] task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PointCueConfig {
    /// Steps after the cue during which the mass is held at rest and actions have no effect:
    /// the delay the cue must be remembered over (0 = the cue and the go signal come
    /// together; at most 1000000; default 8).
    pub delay: u32,
    /// Steps allowed after the delay before the episode is truncated (≥ 1; default 30). The
    /// episode lasts at most `delay + go_steps` steps.
    pub go_steps: u32,
    /// `|x|` at which the episode ends (in `(0, 1]`; default 1).
    pub goal: f32,
    /// Velocity change per step at full action (finite, > 0; default 0.05).
    pub accel: f32,
    /// Factor the velocity keeps from one step to the next (in `[0, 1]`; default 0.9).
    pub damping: f32,
    /// Largest speed: the velocity is clipped to `±max_speed` (finite, > 0; default 0.25).
    pub max_speed: f32,
    /// Reward for reaching the end the cue pointed to (finite; default 1).
    pub success_reward: f32,
    /// Reward for reaching the other end (finite, at most `success_reward`; default 0).
    pub failure_reward: f32,
    /// Cost subtracted from the reward of every step (finite, ≥ 0; default 0).
    pub step_cost: f32,
    /// Append the elapsed fraction `t / (delay + go_steps)` to the observation (default
    /// false).
    pub time_feature: bool,
}

impl Default for PointCueConfig {
    fn default() -> Self {
        Self {
            delay: 8,
            go_steps: 30,
            goal: 1.0,
            accel: 0.05,
            damping: 0.9,
            max_speed: 0.25,
            success_reward: 1.0,
            failure_reward: 0.0,
            step_cost: 0.0,
            time_feature: false,
        }
    }
}

impl PointCueConfig {
    /// The default task with a delay of `delay` steps.
    pub fn with_delay(delay: u32) -> Self {
        Self {
            delay,
            ..Self::default()
        }
    }

    /// Checks every field; the error names the first offending field.
    pub fn validate(&self) -> Result<(), EnvError> {
        at_most("delay", self.delay, 1_000_000)?;
        in_range("go_steps", self.go_steps, 1, 1_000_000)?;
        if !(self.goal > 0.0 && self.goal <= 1.0) {
            return Err(invalid(
                "goal",
                format!("must be in (0, 1], got {}", self.goal),
            ));
        }
        positive("accel", self.accel)?;
        unit_interval("damping", self.damping)?;
        positive("max_speed", self.max_speed)?;
        outcome_rewards(self.success_reward, self.failure_reward)?;
        non_negative("step_cost", self.step_cost)?;
        Ok(())
    }

    /// Length of the observation: 4 (+ 1 with the time feature).
    pub fn obs_len(&self) -> usize {
        4 + usize::from(self.time_feature)
    }

    /// Longest possible episode: `delay + go_steps`.
    pub fn max_steps(&self) -> u32 {
        self.delay + self.go_steps
    }
}

/// A point mass to push to the end of a line that a cue, seen only at the start, points to.
///
/// # Description
/// At reset a cue `c ∈ {−1, +1}` is drawn (equally likely) and shown in the first observation
/// only. A point mass sits at `x = 0` on the line `[−1, 1]`. For the first `delay` steps it is
/// held at rest (`x = 0`, `v = 0`) whatever the actions, so the cue cannot be kept in the
/// position; then a go signal appears and the actions accelerate the mass. The episode ends
/// when `|x| ≥ goal`: it succeeds when the mass reached the end on the cue's side
/// (`sign(x) = c`). Nothing after the first observation tells the cue, so a policy without
/// memory succeeds at most half the time, while one that remembers the cue for `delay + 1`
/// steps succeeds every time (with the defaults, full acceleration reaches the end in 7 go
/// steps).
///
/// # Action Space
/// `Box(−1, 1, shape [1])`: the acceleration `a`. Actions outside the bounds, non-finite
/// values and actions of the wrong length are refused with [`EnvError::ActionOutsideSpace`],
/// during the delay too.
///
/// # Dynamics
/// During the delay nothing moves. After it, each step applies
/// `v ← clip(damping · v + accel · a, ±max_speed)`, then `x ← clip(x + v, −1, 1)`.
///
/// # Observation Encoding
/// A flat `f32` vector of length 4 (+1):
/// 1. the cue `c` in the first observation (from `reset`), 0 afterwards;
/// 2. the go flag: 1 once the actions move the mass (the observation after `delay` steps and
///    later), else 0;
/// 3. the position `x ∈ [−1, 1]`;
/// 4. the velocity `v ∈ [−max_speed, max_speed]`;
/// 5. with `time_feature = true`, the elapsed fraction `t / (delay + go_steps)` in `[0, 1]`.
///
/// # Rewards
/// `success_reward` (default 1) for reaching the cued end, `failure_reward` (default 0) for
/// the other end, 0 otherwise; `step_cost` (default 0) is subtracted on every step.
///
/// # Termination
/// `terminated` when `|x| ≥ goal`, with `Info::success` saying whether it was the cued end.
/// `truncated` after `delay + go_steps` steps (default 38) without reaching an end, with
/// `Info::success = Some(false)`.
#[derive(Clone, Debug)]
pub struct PointCue {
    cfg: PointCueConfig,
    space: BoxSpace,
    rng: ChaCha8Rng,
    cue: f32,
    x: f32,
    v: f32,
    episode: EpisodeGuard,
}

impl PointCue {
    /// A point-cue task; fails if `cfg` is invalid (the error names the field).
    pub fn new(cfg: PointCueConfig) -> Result<Self, EnvError> {
        cfg.validate()?;
        let mut low = vec![-1.0, 0.0, -1.0, -cfg.max_speed];
        let mut high = vec![1.0, 1.0, 1.0, cfg.max_speed];
        if cfg.time_feature {
            low.push(0.0);
            high.push(1.0);
        }
        let space = BoxSpace {
            shape: vec![cfg.obs_len()],
            low,
            high,
        };
        let episode = EpisodeGuard::new(cfg.max_steps()).failing_on_truncation();
        Ok(Self {
            cfg,
            space,
            rng: ChaCha8Rng::seed_from_u64(0),
            cue: 1.0,
            x: 0.0,
            v: 0.0,
            episode,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PointCueConfig {
        &self.cfg
    }

    /// The current episode's cue: −1 (left end) or +1 (right end).
    pub fn cue(&self) -> f32 {
        self.cue
    }

    /// The position of the mass.
    pub fn position(&self) -> f32 {
        self.x
    }

    /// The velocity of the mass.
    pub fn velocity(&self) -> f32 {
        self.v
    }

    /// Steps taken in the current episode.
    pub fn elapsed_steps(&self) -> u32 {
        self.episode.elapsed()
    }

    /// Whether the next action moves the mass (the delay is over).
    pub fn go(&self) -> bool {
        self.episode.elapsed() >= self.cfg.delay
    }

    /// Statistics of the current episode so far (final once it has ended).
    pub fn episode_stats(&self) -> EpisodeStats {
        self.episode.stats()
    }

    /// The optimal action for an agent that remembers the cue: full acceleration towards the
    /// cued end.
    pub fn optimal_action(&self) -> f32 {
        self.cue
    }

    fn write_obs(&self, obs: &mut [f32]) {
        let t = self.episode.elapsed();
        obs[0] = if t == 0 { self.cue } else { 0.0 };
        obs[1] = if self.go() { 1.0 } else { 0.0 };
        obs[2] = self.x;
        obs[3] = self.v;
        if self.cfg.time_feature {
            obs[4] = (t as f32 / self.cfg.max_steps() as f32).min(1.0);
        }
    }
}

impl Env for PointCue {
    fn observation_space(&self) -> &BoxSpace {
        &self.space
    }

    fn action_space(&self) -> ActionSpace {
        ActionSpace::continuous(1, -1.0, 1.0)
    }

    fn reset(&mut self, seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
        self.space.check_buffer(obs)?;
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self.cue = if self.rng.random_bool(0.5) { 1.0 } else { -1.0 };
        self.x = 0.0;
        self.v = 0.0;
        self.episode.start();
        self.write_obs(obs);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step, EnvError> {
        self.episode
            .begin_step(&self.action_space(), action, &self.space, obs)?;
        let a = action.continuous(1)?[0];
        let mut step = Step {
            reward: -self.cfg.step_cost,
            ..Step::default()
        };
        if self.go() {
            let s = self.cfg.max_speed;
            self.v = (self.cfg.damping * self.v + self.cfg.accel * a).clamp(-s, s);
            self.x = (self.x + self.v).clamp(-1.0, 1.0);
            if self.x.abs() >= self.cfg.goal {
                step.terminate_with(
                    self.x.signum() == self.cue,
                    self.cfg.success_reward,
                    self.cfg.failure_reward,
                );
            }
        }
        self.episode.finish_step(&mut step);
        self.write_obs(obs);
        Ok(step)
    }

    fn render_ascii(&self) -> Option<String> {
        const CELLS: usize = 21;
        let mut line: Vec<char> = vec!['-'; CELLS];
        line[0] = '|';
        line[CELLS - 1] = '|';
        line[cell_of(self.x, CELLS)] = '@';
        let mut out: String = line.into_iter().collect();
        let cue = if self.episode.elapsed() == 0 {
            format!("cue {:+} (visible now)", self.cue)
        } else {
            "cue hidden".to_string()
        };
        let phase = if self.go() { "go" } else { "delay" };
        let _ = write!(
            out,
            "  x={:+.3} v={:+.3}  {cue}  {phase}  t={}/{}",
            self.x,
            self.v,
            self.episode.elapsed(),
            self.cfg.max_steps()
        );
        out.push('\n');
        Some(out)
    }

    fn render_rgb(&self) -> Option<Frame> {
        let mut frame = Frame::new(FRAME_W, FRAME_H);
        frame.fill_rect(0, 0, FRAME_W, FRAME_H, [255, 255, 255]);
        // The track, with its two ends; at the first step the cued end is green.
        frame.fill_rect(
            MARGIN,
            FRAME_H / 2 - 1,
            FRAME_W - 2 * MARGIN,
            2,
            [160, 160, 160],
        );
        for side in [-1.0f32, 1.0] {
            let colour = if self.episode.elapsed() == 0 && side == self.cue {
                [0, 170, 0]
            } else {
                [60, 60, 60]
            };
            let x = if side < 0.0 {
                MARGIN - 3
            } else {
                FRAME_W - MARGIN
            };
            frame.fill_rect(x, 4, 3, FRAME_H - 8, colour);
        }
        // The go light.
        let light = if self.go() {
            [0, 170, 0]
        } else {
            [200, 40, 40]
        };
        frame.fill_rect(FRAME_W / 2 - 3, 2, 6, 4, light);
        let [x, y, w, h] = self.mass_rect();
        frame.fill_rect(x, y, w, h, [40, 80, 200]);
        Some(frame)
    }

    fn agent_rect(&self) -> Option<[usize; 4]> {
        Some(self.mass_rect())
    }

    fn name(&self) -> String {
        "PointCue".to_string()
    }
}

const FRAME_W: usize = 160;
const FRAME_H: usize = 32;
const MARGIN: usize = 8;
const MASS: usize = 8;

impl PointCue {
    /// Where the mass is drawn in the RGB frame: `[x, y, width, height]`.
    fn mass_rect(&self) -> [usize; 4] {
        let track = (FRAME_W - 2 * MARGIN) as f32;
        let centre = MARGIN as f32 + (self.x.clamp(-1.0, 1.0) + 1.0) / 2.0 * track;
        let x = (centre.round() as usize).saturating_sub(MASS / 2);
        [x, FRAME_H / 2 - MASS / 2, MASS, MASS]
    }
}

/// The cell of `x ∈ [−1, 1]` on a line of `cells` cells.
fn cell_of(x: f32, cells: usize) -> usize {
    let f = (x.clamp(-1.0, 1.0) + 1.0) / 2.0;
    ((f * (cells - 1) as f32).round() as usize).min(cells - 1)
}
