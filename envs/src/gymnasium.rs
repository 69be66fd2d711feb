//! The gymnasium-rs bridge (cargo feature `gymnasium`, on by default), both ways:
//!
//! - [`GymnasiumEnv`] wraps a `gymnasium_rs::core::Env` (e.g. its CartPole, see
//!   [`GymnasiumEnv::cartpole`]) as our [`Env`], so it runs in a [`crate::VecEnv`], in
//!   training and in [`crate::check_env`];
//! - [`GymnasiumAdapter`] exposes any of our envs, e.g. [`GridMazeGym`], through
//!   `gymnasium_rs::core::Env<Array1<f32>, i32>`, for gymnasium-rs users.
//!
//! gymnasium-rs 0.1.1's envs do not check actions, do not refuse steps after the end and have
//! no built-in time limit that owns its env; [`GymnasiumEnv`] adds all three, so the wrapped
//! env meets our [`Env`] contract.
//!
//! `Send`: our [`Env`] must be `Send` to be stepped on rayon threads. gymnasium-rs's `Env`
//! trait does not require it (its `dyn Env` is not `Send`), so [`GymnasiumEnv<G>`] requires
//! `G: Send`; its CartPole (an `ndarray` array and a `StdRng`) is `Send`.

use std::collections::HashMap;
use std::marker::PhantomData;

use gymnasium_rs::core::{Env as GymEnv, Info as GymInfo, Options, Reward, Space};
use gymnasium_rs::envs::cartpole::CartPole;
use ndarray::{Array1, Array3};
use serde_json::Value;

use crate::env::{Action, ActionSpace, BoxSpace, Env, EnvError, Step, derive_seed};
use crate::gridmaze::GridMaze;
use crate::render::Frame;

/// Converts u64 seeds to gymnasium-rs's `i32` seeds by folding the high half into the low
/// half (distinct u64 seeds may collide; nearby ones do not).
pub fn gym_seed(seed: u64) -> i32 {
    (seed ^ (seed >> 32)) as u32 as i32
}

/// An observation type of a gymnasium-rs env that can be written as a flat `f32` vector.
pub trait GymObservation {
    /// Number of values.
    fn len(&self) -> usize;
    /// Whether there are no values.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes the values into `out` (same length).
    fn write_to(&self, out: &mut [f32]);
}

impl GymObservation for Array1<f32> {
    fn len(&self) -> usize {
        Array1::len(self)
    }
    fn write_to(&self, out: &mut [f32]) {
        for (o, v) in out.iter_mut().zip(self.iter()) {
            *o = *v;
        }
    }
}

impl GymObservation for Vec<f32> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn write_to(&self, out: &mut [f32]) {
        out.copy_from_slice(self);
    }
}

/// An action type of a gymnasium-rs env: an integer for `Discrete` spaces, an `f32` vector
/// for `Box` spaces.
pub trait GymAction: Sized {
    /// Whether this type holds `Box` actions (an `f32` vector) rather than a `Discrete` index.
    const CONTINUOUS: bool;

    /// The gymnasium-rs action for our `action` (already checked against the space), or
    /// `None` when this type cannot hold that kind of action.
    fn from_action(action: Action<'_>) -> Option<Self>;
}

/// [`GymAction`] for types that hold one kind of action: `$variant`'s payload `$a` becomes
/// `$conv`.
macro_rules! gym_actions {
    ($continuous:literal, $variant:ident: $($t:ty [$a:ident => $conv:expr]),+ $(,)?) => {$(
        impl GymAction for $t {
            const CONTINUOUS: bool = $continuous;

            fn from_action(action: Action<'_>) -> Option<Self> {
                match action {
                    Action::$variant($a) => $conv,
                    _ => None,
                }
            }
        }
    )+};
}

gym_actions!(false, Discrete:
    i32 [a => i32::try_from(a).ok()],
    i64 [a => i64::try_from(a).ok()],
    usize [a => Some(a)],
);
gym_actions!(true, Continuous:
    Array1<f32> [x => Some(Array1::from(x.to_vec()))],
    Vec<f32> [x => Some(x.to_vec())],
);

/// Where a wrapped episode stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    NotReset,
    Running,
    Done,
}

/// A gymnasium-rs env (`G: gymnasium_rs::core::Env<O, A>`, Box observations, Discrete actions
/// with an integer `A` or Box actions with an `f32`-vector `A`) as our [`Env`]: observations are flattened to `f32`, actions are checked, a step
/// after the end is refused, and an optional time limit sets `truncated`.
///
/// Seeds: our `u64` reset seed is passed to the wrapped env's `reset` as [`gym_seed`]`(seed)`.
/// Determinism is the wrapped env's: CartPole reseeds its RNG in `reset`, so it is
/// deterministic.
///
/// Rendering: the wrapped env's own `render` is not called (CartPole's is unimplemented in
/// gymnasium-rs 0.1.1 and panics); [`GymnasiumEnv::with_renderer`] draws the RGB frames from
/// the last observation instead ([`GymnasiumEnv::cartpole`] sets one).
pub struct GymnasiumEnv<G, O = Array1<f32>, A = i32> {
    inner: G,
    space: BoxSpace,
    action_space: ActionSpace,
    max_steps: Option<u32>,
    t: u32,
    phase: Phase,
    name: String,
    renderer: Option<Renderer>,
    /// The last observation, kept only when there is a renderer.
    last_obs: Vec<f32>,
    _types: PhantomData<fn(A) -> O>,
}

/// Draws an RGB frame from an observation (see [`GymnasiumEnv::with_renderer`]).
pub type Renderer = fn(&[f32]) -> Frame;

impl<G, O, A> GymnasiumEnv<G, O, A>
where
    G: GymEnv<O, A> + Send,
    O: GymObservation,
    A: GymAction,
{
    /// Wraps `inner`; fails unless its observation space is a Box with `low`/`high` of equal
    /// length and its action space is Discrete with at least one action or a Box with finite
    /// bounds (mapped to our `Discrete(n)` and `Box(low, high, [len])`).
    pub fn new(inner: G) -> Result<Self, EnvError> {
        let space = match inner.observation_space() {
            Space::Box { low, high } => {
                if low.len() != high.len() {
                    return Err(EnvError::InvalidConfig {
                        field: "observation_space",
                        reason: format!(
                            "the gymnasium-rs env's Box space has {} lower and {} upper bounds",
                            low.len(),
                            high.len()
                        ),
                    });
                }
                BoxSpace {
                    shape: vec![low.len()],
                    low: low.to_vec(),
                    high: high.to_vec(),
                }
            }
            Space::Discrete(n) => {
                return Err(EnvError::InvalidConfig {
                    field: "observation_space",
                    reason: format!(
                        "the gymnasium-rs env has a Discrete({n}) observation space; only Box \
                         observation spaces can be wrapped"
                    ),
                });
            }
        };
        let action_space = match inner.action_space() {
            Space::Discrete(n) => ActionSpace::discrete(usize::try_from(n).unwrap_or(0)),
            Space::Box { low, high } => ActionSpace::Box(BoxSpace {
                shape: vec![low.len()],
                low: low.to_vec(),
                high: high.to_vec(),
            }),
        };
        if let Err(reason) = action_space.validate() {
            return Err(EnvError::InvalidConfig {
                field: "action_space",
                reason: format!("the gymnasium-rs env's action space: {reason}"),
            });
        }
        if A::CONTINUOUS != matches!(action_space, ActionSpace::Box(_)) {
            return Err(EnvError::InvalidConfig {
                field: "action_space",
                reason: format!(
                    "the gymnasium-rs env has a {action_space} action space but is wrapped \
                     with the action type `{}`; use an integer type for Discrete and \
                     `Array1<f32>` or `Vec<f32>` for Box",
                    std::any::type_name::<A>()
                ),
            });
        }
        Ok(Self::wrapping(inner, space, action_space))
    }

    /// `inner` with the spaces it is seen through, before its first reset: no time limit, no
    /// renderer, named "gymnasium".
    fn wrapping(inner: G, space: BoxSpace, action_space: ActionSpace) -> Self {
        Self {
            inner,
            space,
            action_space,
            max_steps: None,
            t: 0,
            phase: Phase::NotReset,
            name: "gymnasium".into(),
            renderer: None,
            last_obs: Vec::new(),
            _types: PhantomData,
        }
    }

    /// Ends each episode with `truncated` after `max_steps` steps (unless it terminated);
    /// fails for 0.
    pub fn with_time_limit(mut self, max_steps: u32) -> Result<Self, EnvError> {
        if max_steps == 0 {
            return Err(EnvError::InvalidConfig {
                field: "max_steps",
                reason: "the time limit must be at least 1 step".into(),
            });
        }
        self.max_steps = Some(max_steps);
        Ok(self)
    }

    /// Replaces the observation space reported by the wrapped env (e.g. to fix bounds that its
    /// observations exceed); fails if the length differs.
    pub fn with_observation_space(mut self, space: BoxSpace) -> Result<Self, EnvError> {
        let len = self.space.flat_len();
        if space.flat_len() != len || space.low.len() != len || space.high.len() != len {
            return Err(EnvError::InvalidConfig {
                field: "observation_space",
                reason: format!(
                    "the replacement space (shape {:?}, {} lower and {} upper bounds) must \
                     have the wrapped env's {len} elements",
                    space.shape,
                    space.low.len(),
                    space.high.len()
                ),
            });
        }
        self.space = space;
        Ok(self)
    }

    /// Sets the name used in run directories and plot titles.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Draws [`Env::render_rgb`]'s frames with `renderer`, from the last observation (frames
    /// of one size, whatever the observation, so that an episode makes one GIF).
    pub fn with_renderer(mut self, renderer: Renderer) -> Self {
        self.renderer = Some(renderer);
        self
    }

    /// The time limit, if any.
    pub fn time_limit(&self) -> Option<u32> {
        self.max_steps
    }

    /// The wrapped env.
    pub fn inner(&self) -> &G {
        &self.inner
    }

    /// The wrapped env, mutably.
    pub fn inner_mut(&mut self) -> &mut G {
        &mut self.inner
    }

    /// Unwraps the wrapped env.
    pub fn into_inner(self) -> G {
        self.inner
    }

    fn write_obs(&mut self, o: &O, obs: &mut [f32]) -> Result<(), EnvError> {
        if o.len() != obs.len() {
            return Err(EnvError::ObsBufferLength {
                got: obs.len(),
                expected: o.len(),
            });
        }
        o.write_to(obs);
        if self.renderer.is_some() {
            self.last_obs.clear();
            self.last_obs.extend_from_slice(obs);
        }
        Ok(())
    }
}

/// gymnasium-rs's CartPole with the time limit and bounds of Gymnasium's `CartPole-v1`.
pub type GymCartPole = GymnasiumEnv<CartPole>;

impl GymnasiumEnv<CartPole> {
    /// gymnasium-rs's CartPole as Gymnasium's `CartPole-v1`: truncated after 500 steps, and the
    /// pole-angle bound widened to ±24° (as in Gymnasium): gymnasium-rs 0.1.1 reports ±12°,
    /// the termination threshold itself, which the last observation of an episode exceeds.
    pub fn cartpole() -> Self {
        const X_LIMIT: f32 = 4.8;
        const ANGLE_LIMIT: f32 = 24.0 * std::f32::consts::PI / 180.0;
        let space = BoxSpace {
            shape: vec![4],
            low: vec![-X_LIMIT, f32::MIN, -ANGLE_LIMIT, f32::MIN],
            high: vec![X_LIMIT, f32::MAX, ANGLE_LIMIT, f32::MAX],
        };
        let mut env = Self::wrapping(CartPole::new(), space, ActionSpace::discrete(2))
            .with_name("CartPole-v1")
            .with_renderer(draw_cartpole);
        env.max_steps = Some(500);
        env
    }
}

impl<G, O, A> Env for GymnasiumEnv<G, O, A>
where
    G: GymEnv<O, A> + Send,
    O: GymObservation,
    A: GymAction,
{
    fn observation_space(&self) -> &BoxSpace {
        &self.space
    }

    fn action_space(&self) -> ActionSpace {
        self.action_space.clone()
    }

    fn reset(&mut self, seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
        let (o, _info) = self.inner.reset(Some(gym_seed(seed)), HashMap::new());
        self.write_obs(&o, obs)?;
        self.t = 0;
        self.phase = Phase::Running;
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step, EnvError> {
        self.action_space.check(action)?;
        let gym_action = A::from_action(action).ok_or_else(|| {
            EnvError::ActionOutsideSpace(format!(
                "{action} cannot be passed as the wrapped env's action type `{}`",
                std::any::type_name::<A>()
            ))
        })?;
        match self.phase {
            Phase::NotReset => return Err(EnvError::NotReset),
            Phase::Done => return Err(EnvError::StepAfterDone),
            Phase::Running => {}
        }
        let (o, reward, terminated, truncated, _info) = self.inner.step(gym_action);
        self.write_obs(&o, obs)?;
        self.t += 1;
        let truncated = !terminated && (truncated || self.max_steps.is_some_and(|m| self.t >= m));
        if terminated || truncated {
            self.phase = Phase::Done;
        }
        Ok(Step {
            reward,
            terminated,
            truncated,
            ..Step::default()
        })
    }

    fn render_rgb(&self) -> Option<Frame> {
        if self.phase == Phase::NotReset {
            return None;
        }
        self.renderer.map(|draw| draw(&self.last_obs))
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

/// CartPole from its observation `[x, ẋ, θ, θ̇]`: the cart on its track (the track spans the
/// termination bounds ±2.4), the pole at angle `θ` from upright (positive leans right).
fn draw_cartpole(obs: &[f32]) -> Frame {
    const W: usize = 240;
    const H: usize = 120;
    const X_LIMIT: f64 = 2.4;
    let (x, theta) = (f64::from(obs[0]), f64::from(obs[2]));
    let mut frame = Frame::new(W, H);
    frame.fill_rect(0, 0, W, H, [255, 255, 255]);
    let track_y = 90.0;
    frame.fill_rect(0, track_y as usize, W, 1, [0, 0, 0]);
    let half_track = W as f64 / 2.0 - 20.0;
    let cart_x = W as f64 / 2.0 + (x / X_LIMIT).clamp(-1.1, 1.1) * half_track;
    let (cart_w, cart_h) = (30.0, 14.0);
    let left = (cart_x - cart_w / 2.0).max(0.0) as usize;
    let top = (track_y - cart_h / 2.0) as usize;
    frame.fill_rect(left, top, cart_w as usize, cart_h as usize, [0, 0, 0]);
    let axle = (cart_x, top as f64);
    let length = 70.0;
    let tip = (axle.0 + length * theta.sin(), axle.1 - length * theta.cos());
    frame.fill_segment(axle, tip, 3.0, [202, 152, 101]);
    frame.fill_disc(axle, 3.0, [129, 132, 203]);
    frame
}

/// One of our envs seen through gymnasium-rs's `Env<Array1<f32>, i32>` trait.
///
/// - `reset(Some(s), _)` resets with seed `s as u64` (negative seeds wrap); `reset(None, _)`
///   continues a deterministic seed sequence (`derive_seed(last seed, 1)`, starting from 0).
///   Options are ignored.
/// - `step` returns `(obs, reward, terminated, truncated, info)`; `info` holds
///   the env's counts of the step ([`crate::Info::counts`], e.g. GridMaze's `"goals"`, a
///   number), `"goal_reached"` (bool: `goals > 0`) for envs that count goals, and, on the last
///   step of tasks with a success criterion, `"success"` (bool).
/// - gymnasium-rs's trait has no error channel: an invalid action, a step after the end or
///   before the first reset leaves the env unchanged and returns the current observation,
///   reward 0, both flags false and `info["error"]` with the message. Use
///   [`GymnasiumAdapter::try_step`] to get a `Result` instead.
/// - `render` returns the env's RGB frame as a `[height, width, 3]` array, if it draws one.
pub struct GymnasiumAdapter<E: Env> {
    env: E,
    /// The current observation.
    obs: Vec<f32>,
    /// Where `step` writes, so a refused step leaves `obs` as it was.
    scratch: Vec<f32>,
    last_seed: Option<u64>,
}

/// GridMaze through gymnasium-rs's `Env` trait: `GridMazeGym::new(GridMaze::new(cfg)?)`.
pub type GridMazeGym = GymnasiumAdapter<GridMaze>;

impl<E: Env> GymnasiumAdapter<E> {
    /// Wraps `env`.
    pub fn new(env: E) -> Self {
        let obs = vec![0.0; env.observation_space().flat_len()];
        Self {
            env,
            scratch: obs.clone(),
            obs,
            last_seed: None,
        }
    }

    /// The wrapped env.
    pub fn env(&self) -> &E {
        &self.env
    }

    /// The wrapped env, mutably.
    pub fn env_mut(&mut self) -> &mut E {
        &mut self.env
    }

    /// Unwraps the env.
    pub fn into_inner(self) -> E {
        self.env
    }

    /// `step` with errors returned instead of folded into the info map.
    pub fn try_step(
        &mut self,
        action: i32,
    ) -> Result<(Array1<f32>, Reward, bool, bool, GymInfo), EnvError> {
        let a = usize::try_from(action).map_err(|_| {
            EnvError::ActionOutsideSpace(format!(
                "action {action} is negative; the action space is {}",
                self.env.action_space()
            ))
        })?;
        self.try_step_action(Action::Discrete(a))
    }

    /// `step` with an action of any kind (e.g. `Action::Continuous(&[0.5])` for a Box action
    /// space), errors returned.
    pub fn try_step_action(
        &mut self,
        action: Action<'_>,
    ) -> Result<(Array1<f32>, Reward, bool, bool, GymInfo), EnvError> {
        let s = self.env.step(action, &mut self.scratch)?;
        std::mem::swap(&mut self.obs, &mut self.scratch);
        let mut info = GymInfo::new();
        for (name, value) in s.info.counts.iter() {
            info.insert(name.into(), Value::from(value));
        }
        // GridMaze's goal flag, as before counts existed.
        if let Some(goals) = s.info.counts.get(crate::GOALS) {
            info.insert("goal_reached".into(), Value::Bool(goals > 0.0));
        }
        if let Some(success) = s.info.success {
            info.insert("success".into(), Value::Bool(success));
        }
        Ok((
            Array1::from(self.obs.clone()),
            s.reward,
            s.terminated,
            s.truncated,
            info,
        ))
    }
}

impl<E: Env> GymEnv<Array1<f32>, i32> for GymnasiumAdapter<E> {
    fn observation_space(&self) -> Space {
        let space = self.env.observation_space();
        Space::Box {
            low: Array1::from(space.low.clone()),
            high: Array1::from(space.high.clone()),
        }
    }

    /// `Discrete(n)` and `Box` map to gymnasium-rs's spaces of the same name; gymnasium-rs has
    /// no `MultiDiscrete`, so such a space is reported as `Discrete(0)` (step with
    /// [`GymnasiumAdapter::try_step_action`]).
    fn action_space(&self) -> Space {
        match self.env.action_space() {
            ActionSpace::Discrete(d) => Space::Discrete(i32::try_from(d.n).unwrap_or(i32::MAX)),
            ActionSpace::Box(b) => Space::Box {
                low: Array1::from(b.low),
                high: Array1::from(b.high),
            },
            ActionSpace::MultiDiscrete(_) => Space::Discrete(0),
        }
    }

    fn reset(&mut self, seed: Option<i32>, _options: Options) -> (Array1<f32>, GymInfo) {
        let seed = match seed {
            Some(s) => s as i64 as u64,
            None => self.last_seed.map_or(0, |s| derive_seed(s, 1)),
        };
        self.last_seed = Some(seed);
        let mut info = GymInfo::new();
        if let Err(e) = self.env.reset(seed, &mut self.obs) {
            info.insert("error".into(), Value::String(e.to_string()));
        }
        (Array1::from(self.obs.clone()), info)
    }

    fn step(&mut self, action: i32) -> (Array1<f32>, Reward, bool, bool, GymInfo) {
        self.try_step(action).unwrap_or_else(|e| {
            let mut info = GymInfo::new();
            info.insert("error".into(), Value::String(e.to_string()));
            (Array1::from(self.obs.clone()), 0.0, false, false, info)
        })
    }

    fn render(&self) -> Option<Array3<u8>> {
        let frame = self.env.render_rgb()?;
        Array3::from_shape_vec((frame.height, frame.width, 3), frame.rgb).ok()
    }

    fn close(&mut self) {}
}
