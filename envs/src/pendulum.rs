//! Pendulum: swing a torque-limited pendulum up and keep it upright, with one continuous
//! action (the torque). The dynamics, reward and limits are those of Gymnasium's
//! `Pendulum-v1` (`classic_control/pendulum.py`).

use std::f64::consts::PI;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config_check::{at_least, invalid, positive};
use crate::env::{Action, ActionSpace, BoxSpace, Env, EnvError, EpisodeStats, Step};
use crate::episode::EpisodeGuard;
use crate::render::Frame;

/// Configuration of a [`Pendulum`]; the defaults are Gymnasium's `Pendulum-v1`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PendulumConfig {
    /// Gravitational acceleration (finite; default 10).
    pub g: f64,
    /// Mass of the rod (finite, > 0; default 1).
    pub m: f64,
    /// Length of the rod (finite, > 0; default 1).
    pub l: f64,
    /// Integration time step in seconds (finite, > 0; default 0.05).
    pub dt: f64,
    /// Largest angular speed: the speed is clipped to `±max_speed` after every step, and it
    /// bounds the observation's third element (finite, ≥ 1 because the reset draws the speed
    /// from `[−1, 1]`; default 8).
    pub max_speed: f64,
    /// Largest torque: the action space is `[−max_torque, max_torque]` (finite, > 0;
    /// default 2).
    pub max_torque: f64,
    /// Steps after which the episode is truncated (≥ 1; default 200).
    pub max_episode_steps: u32,
}

impl Default for PendulumConfig {
    fn default() -> Self {
        Self {
            g: 10.0,
            m: 1.0,
            l: 1.0,
            dt: 0.05,
            max_speed: 8.0,
            max_torque: 2.0,
            max_episode_steps: 200,
        }
    }
}

impl PendulumConfig {
    /// Checks every field; the error names the first offending field.
    pub fn validate(&self) -> Result<(), EnvError> {
        if !self.g.is_finite() {
            return Err(invalid("g", format!("must be finite, got {}", self.g)));
        }
        positive("m", self.m)?;
        positive("l", self.l)?;
        positive("dt", self.dt)?;
        positive("max_torque", self.max_torque)?;
        if !(self.max_speed.is_finite() && self.max_speed >= 1.0) {
            return Err(invalid(
                "max_speed",
                format!(
                    "must be finite and at least 1 (the reset draws the speed from [-1, 1]), \
                     got {}",
                    self.max_speed
                ),
            ));
        }
        for (field, v) in [
            ("max_speed", self.max_speed),
            ("max_torque", self.max_torque),
        ] {
            if (v as f32).is_infinite() {
                return Err(invalid(field, format!("must fit in an f32, got {v}")));
            }
        }
        at_least("max_episode_steps", self.max_episode_steps, 1)?;
        Ok(())
    }
}

/// `x` wrapped into `[−π, π)`, as Gymnasium's `angle_normalize` (a floored modulo).
pub fn angle_normalize(x: f64) -> f64 {
    (x + PI).rem_euclid(2.0 * PI) - PI
}

/// The inverted-pendulum swing-up task (Gymnasium's `Pendulum-v1`).
///
/// # Description
/// A rod of mass `m` and length `l` turns about a fixed pivot. The angle `θ` is 0 when the rod
/// points straight up and grows counter-clockwise; gravity pulls the rod away from upright.
/// The agent applies a torque at the pivot, too weak to lift the rod directly from hanging
/// down, so it has to swing it up and then balance it.
///
/// # Action Space
/// `Box(−max_torque, max_torque, shape [1])`: the torque. Actions outside the bounds,
/// non-finite values and actions of the wrong length are refused with
/// [`EnvError::ActionOutsideSpace`] (a trainer clips its sampled actions first).
///
/// # Observation Encoding
/// `[cos θ, sin θ, θ̇]` as `f32`, within `Box([−1, −1, −max_speed], [1, 1, max_speed])`.
///
/// # Dynamics
/// With torque `u` and the state `(θ, θ̇)` before the step, computed in `f64`:
/// `θ̇' = clip(θ̇ + (3g / (2l) · sin θ + 3 / (m l²) · u) · dt, ±max_speed)` and
/// `θ' = θ + θ̇' · dt` (`θ` itself is not wrapped).
///
/// # Rewards
/// `−(angle_normalize(θ)² + 0.1 · θ̇² + 0.001 · u²)` from the state before the step: at most
/// 0 (upright, still, no torque), at least about −16.27 with the default limits.
///
/// # Starting State
/// `θ ~ U[−π, π)`, `θ̇ ~ U[−1, 1)`, drawn from a `ChaCha8Rng` seeded by the reset seed.
///
/// # Termination
/// Never terminates; `truncated` after `max_episode_steps` steps (default 200). There is no
/// success criterion (`Info::success` stays `None`).
#[derive(Clone, Debug)]
pub struct Pendulum {
    cfg: PendulumConfig,
    space: BoxSpace,
    rng: ChaCha8Rng,
    th: f64,
    thdot: f64,
    last_u: Option<f64>,
    episode: EpisodeGuard,
}

impl Pendulum {
    /// A pendulum; fails if `cfg` is invalid (the error names the field).
    pub fn new(cfg: PendulumConfig) -> Result<Self, EnvError> {
        cfg.validate()?;
        let speed = cfg.max_speed as f32;
        let space = BoxSpace {
            shape: vec![3],
            low: vec![-1.0, -1.0, -speed],
            high: vec![1.0, 1.0, speed],
        };
        let episode = EpisodeGuard::new(cfg.max_episode_steps);
        Ok(Self {
            cfg,
            space,
            rng: ChaCha8Rng::seed_from_u64(0),
            th: 0.0,
            thdot: 0.0,
            last_u: None,
            episode,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PendulumConfig {
        &self.cfg
    }

    /// The current state `(θ, θ̇)`: angle in radians (0 = upright, not wrapped) and angular
    /// speed.
    pub fn state(&self) -> (f64, f64) {
        (self.th, self.thdot)
    }

    /// Steps taken in the current episode.
    pub fn elapsed_steps(&self) -> u32 {
        self.episode.elapsed()
    }

    /// Statistics of the current episode so far (final once it has ended).
    pub fn episode_stats(&self) -> EpisodeStats {
        self.episode.stats()
    }

    /// Starts a new episode in the state `(th, thdot)` instead of a random one (as `reset`
    /// does otherwise: step count 0, the RNG is left as it is) and writes its observation.
    /// Fails if a value is not finite or `|thdot| > max_speed`.
    pub fn set_state(&mut self, th: f64, thdot: f64, obs: &mut [f32]) -> Result<(), EnvError> {
        self.space.check_buffer(obs)?;
        if !th.is_finite() || !thdot.is_finite() || thdot.abs() > self.cfg.max_speed {
            return Err(EnvError::Other(format!(
                "set_state: the state must be finite with |thdot| <= max_speed ({}), got \
                 th = {th}, thdot = {thdot}",
                self.cfg.max_speed
            )));
        }
        self.start(th, thdot);
        self.write_obs(obs);
        Ok(())
    }

    fn start(&mut self, th: f64, thdot: f64) {
        self.th = th;
        self.thdot = thdot;
        self.last_u = None;
        self.episode.start();
    }

    fn write_obs(&self, obs: &mut [f32]) {
        obs[0] = self.th.cos() as f32;
        obs[1] = self.th.sin() as f32;
        obs[2] = self.thdot as f32;
    }
}

impl Env for Pendulum {
    fn observation_space(&self) -> &BoxSpace {
        &self.space
    }

    fn action_space(&self) -> ActionSpace {
        let torque = self.cfg.max_torque as f32;
        ActionSpace::continuous(1, -torque, torque)
    }

    fn reset(&mut self, seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
        self.space.check_buffer(obs)?;
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        let th = self.rng.random_range(-PI..PI);
        let thdot = self.rng.random_range(-1.0..1.0);
        self.start(th, thdot);
        self.write_obs(obs);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step, EnvError> {
        self.episode
            .begin_step(&self.action_space(), action, &self.space, obs)?;
        let u = action.continuous(1)?[0];
        let PendulumConfig {
            g,
            m,
            l,
            dt,
            max_speed,
            max_torque,
            ..
        } = self.cfg;
        let u = f64::from(u).clamp(-max_torque, max_torque);
        let (th, thdot) = (self.th, self.thdot);
        let costs = angle_normalize(th).powi(2) + 0.1 * thdot.powi(2) + 0.001 * u.powi(2);
        let newthdot = thdot + (3.0 * g / (2.0 * l) * th.sin() + 3.0 / (m * l.powi(2)) * u) * dt;
        let newthdot = newthdot.clamp(-max_speed, max_speed);
        self.th = th + newthdot * dt;
        self.thdot = newthdot;
        self.last_u = Some(u);
        let mut step = Step {
            reward: -costs as f32,
            ..Step::default()
        };
        self.episode.finish_step(&mut step);
        self.write_obs(obs);
        Ok(step)
    }

    fn render_ascii(&self) -> Option<String> {
        let torque = match self.last_u {
            Some(u) => format!("{u:+.3}"),
            None => "-".to_string(),
        };
        Some(format!(
            "pendulum  angle {:+.3} rad (0 = upright)  speed {:+.3} rad/s  torque {torque}  \
             t={}/{}\n",
            angle_normalize(self.th),
            self.thdot,
            self.episode.elapsed(),
            self.cfg.max_episode_steps
        ))
    }

    fn render_rgb(&self) -> Option<Frame> {
        const SIZE: usize = 128;
        const BACKGROUND: [u8; 3] = [255, 255, 255];
        const ROD: [u8; 3] = [204, 77, 77];
        const PIVOT: [u8; 3] = [0, 0, 0];
        const TORQUE: [u8; 3] = [77, 77, 204];
        let mut frame = Frame::new(SIZE, SIZE);
        frame.fill_rect(0, 0, SIZE, SIZE, BACKGROUND);
        let centre = SIZE as f64 / 2.0;
        let length = 0.4 * SIZE as f64;
        // Screen y grows downwards; θ = 0 points up and θ grows counter-clockwise.
        let tip = (
            centre - length * self.th.sin(),
            centre - length * self.th.cos(),
        );
        frame.fill_segment((centre, centre), tip, 0.05 * SIZE as f64, ROD);
        frame.fill_disc((centre, centre), 0.03 * SIZE as f64, PIVOT);
        // The last torque as a bar along the bottom edge, from the middle towards its sign.
        if let Some(u) = self.last_u {
            let half = SIZE / 2;
            let len = ((u.abs() / self.cfg.max_torque).min(1.0) * (half - 4) as f64).round();
            let len = len as usize;
            let x = if u < 0.0 { half - len } else { half };
            frame.fill_rect(x, SIZE - 6, len, 3, TORQUE);
        }
        Some(frame)
    }

    fn name(&self) -> String {
        "Pendulum-v1".to_string()
    }
}
