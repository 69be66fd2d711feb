//! The gymnasium-rs bridge: CartPole and a Box-action env as our Env, GridMaze and Pendulum
//! as gymnasium-rs Envs.
#![cfg(feature = "gymnasium")]

mod common;

use envs::gymnasium::gym_seed;
use envs::{
    Action, ActionSpace, Env, EnvError, EnvExt, Frame, GridMaze, GridMazeConfig, GridMazeGym,
    GymCartPole, GymnasiumAdapter, GymnasiumEnv, Parallelism, Pendulum, PendulumConfig, VecActions,
    VecEnv, check_env,
};
use gymnasium_rs::core::{Env as GymEnv, Info as GymInfo, Options, Reward, Space};
use gymnasium_rs::envs::cartpole::CartPole;
use ndarray::Array1;
use serde_json::Value;

use common::step_error;

fn assert_send<T: Send>() {}

#[test]
fn wrappers_are_send() {
    assert_send::<GymCartPole>();
    assert_send::<GymnasiumEnv<CartPole>>();
    assert_send::<GridMazeGym>();
}

#[test]
fn check_env_passes_on_cartpole() {
    let mut env = GymCartPole::cartpole();
    let report = check_env(&mut env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.obs_dim, 4);
    assert_eq!(report.action_space, ActionSpace::discrete(2));
    assert!(!report.masked);
    // Random actions drop the pole within a few dozen steps: every episode terminates.
    assert_eq!(report.terminated, 3);
    assert!(
        report.mean_length > 5.0 && report.mean_length < 200.0,
        "{report}"
    );
}

#[test]
fn gymnasium_rs_cartpole_bounds_fail_check_env_and_the_fix_is_needed() {
    // gymnasium-rs reports the pole-angle bound as the termination threshold itself; the
    // last observation of an episode lies beyond it, which check_env points out.
    let mut raw = GymnasiumEnv::new(CartPole::new()).unwrap();
    let e = check_env(&mut raw).unwrap_err().to_string();
    assert!(e.contains("observation element 2 is"), "{e}");
    assert!(e.contains("bound 0.2094"), "{e}");
}

#[test]
fn cartpole_draws_frames_from_its_observation() {
    let mut env = GymCartPole::cartpole();
    assert!(
        env.render_rgb().is_none(),
        "nothing to draw before the first reset"
    );
    env.reset_vec(3).unwrap();
    let first = env.render_rgb().unwrap();
    let mut obs = vec![0.0; 4];
    // Pushing right for a while moves the cart and tips the pole: the picture changes.
    for _ in 0..8 {
        env.step(Action::Discrete(1), &mut obs).unwrap();
    }
    let later = env.render_rgb().unwrap();
    assert_eq!((first.width, first.height), (later.width, later.height));
    assert_ne!(first, later);
    let white = [255, 255, 255];
    assert!(
        later.rgb.chunks(3).any(|p| p != white),
        "something is drawn"
    );

    // A user's renderer sees the last observation.
    fn brightness(obs: &[f32]) -> Frame {
        let mut frame = Frame::new(1, 1);
        let v = (obs[0].abs() * 1000.0).min(255.0) as u8;
        frame.fill_rect(0, 0, 1, 1, [v, v, v]);
        frame
    }
    let mut env = GymnasiumEnv::new(CartPole::new())
        .unwrap()
        .with_renderer(brightness);
    let obs = env.reset_vec(3).unwrap();
    assert_eq!(env.render_rgb(), Some(brightness(&obs)));
}

#[test]
fn a_cartpole_episode_runs() {
    let mut env = GymCartPole::cartpole();
    assert_eq!(env.name(), "CartPole-v1");
    assert_eq!(env.time_limit(), Some(500));
    let obs = env.reset_vec(7).unwrap();
    assert_eq!(obs.len(), 4);
    assert!(obs.iter().all(|v| v.abs() <= 0.05), "{obs:?}");
    // Always pushing right tips the pole over: it terminates, with reward 1 per step and 0
    // on the terminating step (gymnasium-rs's convention).
    let mut ret = 0.0;
    let mut steps = 0;
    loop {
        let (obs, s) = env.step_vec(1).unwrap();
        ret += s.reward;
        steps += 1;
        if s.done() {
            assert!(s.terminated && !s.truncated);
            assert!(
                obs[2].abs() > 12f32.to_radians() || obs[0].abs() > 2.4,
                "{obs:?}"
            );
            assert_eq!(s.reward, 0.0);
            break;
        }
        assert!(steps < 500);
    }
    assert_eq!(ret, (steps - 1) as f32);
    assert_eq!(env.step_vec(0).unwrap_err(), EnvError::StepAfterDone);
    assert_eq!(
        env.step_vec(2).unwrap_err(),
        EnvError::InvalidAction { action: 2, n: 2 }
    );
    // Same seed, same start.
    assert_eq!(env.reset_vec(7).unwrap(), env.reset_vec(7).unwrap());
    assert_ne!(env.reset_vec(7).unwrap(), env.reset_vec(8).unwrap());
}

#[test]
fn the_time_limit_truncates() {
    let mut env = GymCartPole::cartpole().with_time_limit(3).unwrap();
    env.reset_vec(0).unwrap();
    // Alternate pushes keep the pole up for 3 steps.
    let flags: Vec<_> = [0, 1, 0]
        .iter()
        .map(|&a| {
            let s = env.step_vec(a).unwrap().1;
            (s.terminated, s.truncated)
        })
        .collect();
    assert_eq!(flags, [(false, false), (false, false), (false, true)]);
    let e = GymCartPole::cartpole().with_time_limit(0).err().unwrap();
    assert!(e.to_string().contains("max_steps"), "{e}");
}

#[test]
fn cartpole_runs_in_a_vec_env_on_rayon() {
    let run = |p| {
        let mut venv = VecEnv::from_fn(8, 3, |_| Ok(GymCartPole::cartpole()))
            .unwrap()
            .with_parallelism(p);
        venv.reset().unwrap();
        let mut ended = 0;
        let mut obs = Vec::new();
        for t in 0..200 {
            let actions: Vec<usize> = (0..8).map(|i| (i + t) % 2).collect();
            let s = venv.step(&actions).unwrap();
            ended += s.finished.len();
            obs.extend_from_slice(&s.obs);
        }
        (ended, obs)
    };
    let (ended, seq) = run(Parallelism::Sequential);
    assert!(ended > 0);
    assert_eq!(run(Parallelism::Rayon), (ended, seq));
}

#[test]
fn replacing_the_space_checks_its_length() {
    let e = GymnasiumEnv::new(CartPole::new())
        .unwrap()
        .with_observation_space(envs::BoxSpace::uniform(3, 0.0, 1.0))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("observation_space") && e.contains("4 elements"),
        "{e}"
    );
}

#[test]
fn gym_seed_folds_both_halves() {
    assert_eq!(gym_seed(5), 5);
    assert_ne!(gym_seed(1 << 40), gym_seed(0));
}

#[test]
fn gridmaze_runs_an_episode_through_the_gym_trait() {
    let cfg = GridMazeConfig::single(9, 30);
    let mut gym = GridMazeGym::new(GridMaze::new(cfg.clone()).unwrap());
    let n = cfg.obs_len();
    match GymEnv::observation_space(&gym) {
        Space::Box { low, high } => {
            assert_eq!((low.len(), high.len()), (n, n));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(GymEnv::action_space(&gym), Space::Discrete(4));

    let (obs, info) = gym.reset_seed(42);
    assert_eq!(obs.len(), n);
    assert!(info.is_empty());
    // The same seed through our own trait gives the same first observation.
    let mut lone = GridMaze::new(cfg.clone()).unwrap();
    assert_eq!(obs.to_vec(), lone.reset_vec(42).unwrap());

    // Follow the shortest path: the episode terminates at the goal with reward 1.
    let mut steps = 0;
    let mut ret = 0.0;
    loop {
        let a = gym.env_mut().oracle_action() as i32;
        let (obs, reward, terminated, truncated, info) = GymEnv::step(&mut gym, a);
        let (lone_obs, s) = lone.step_vec(a as usize).unwrap();
        assert_eq!(obs.to_vec(), lone_obs);
        assert_eq!(reward, s.reward);
        ret += reward;
        steps += 1;
        assert!(!info.contains_key("error"), "{info:?}");
        if terminated || truncated {
            assert!(terminated);
            assert_eq!(info["goal_reached"], serde_json::Value::Bool(true));
            assert_eq!(info["goals"], serde_json::Value::from(1.0f32));
            break;
        }
        assert!(steps <= 30);
    }
    assert_eq!(ret, 1.0);

    // Errors come back in the info map, the observation unchanged.
    let (obs, reward, terminated, truncated, info) = GymEnv::step(&mut gym, 0);
    assert_eq!((reward, terminated, truncated), (0.0, false, false));
    assert!(
        info["error"].as_str().unwrap().contains("reset"),
        "{info:?}"
    );
    assert_eq!(obs.len(), n);
    gym.reset_default();
    let before = gym.reset_seed(1).0;
    let (obs, _, _, _, info) = GymEnv::step(&mut gym, 9);
    assert!(
        info["error"].as_str().unwrap().contains("invalid action 9"),
        "{info:?}"
    );
    assert_eq!(obs, before);
    assert!(gym.try_step(-1).is_err());
    assert!(gym.try_step(2).is_ok());

    // Rendering gives an RGB array.
    let frame = GymEnv::render(&gym).unwrap();
    assert_eq!(frame.shape()[2], 3);
    assert!(frame.shape()[0] > 0 && frame.shape()[1] > 0);
}

#[test]
fn reset_without_seed_continues_a_deterministic_sequence() {
    let make = || GymnasiumAdapter::new(GridMaze::new(GridMazeConfig::multi(9, 10)).unwrap());
    let (mut a, mut b) = (make(), make());
    let first: Vec<_> = (0..3).map(|_| a.reset_default().0).collect();
    let second: Vec<_> = (0..3).map(|_| b.reset_default().0).collect();
    assert_eq!(first, second);
    assert_eq!(a.reset_seed(0).0, first[0]);
}

/// A force vector as the Box-action env below reads it, for both action types it accepts.
trait Force {
    fn values(&self) -> &[f32];
}

impl Force for Array1<f32> {
    fn values(&self) -> &[f32] {
        self.as_slice().expect("a contiguous array")
    }
}

impl Force for Vec<f32> {
    fn values(&self) -> &[f32] {
        self
    }
}

/// Where `Push` terminates: `|x| > X_LIMIT`.
const X_LIMIT: f32 = 1.0;
/// The speed is clipped to `±MAX_SPEED`, so `|x| <= X_LIMIT + MAX_SPEED` at the end.
const MAX_SPEED: f32 = 0.5;

/// A gymnasium-rs env with a Box action space: a point on a line pushed by a force in
/// `[-1, 1]`. Observation `[x, v]`; `v += 0.05 f` (clipped), `x += v`; reward `-|x|`;
/// terminates when `|x| > 1`. The start depends only on the reset seed. Like gymnasium-rs's
/// own envs it checks neither actions nor steps after the end, and panics on an empty action.
struct Push {
    action_space: Space,
    x: f32,
    v: f32,
    last_seed: i32,
    /// Steps taken since construction.
    steps: u32,
    /// The last action received.
    last_force: Vec<f32>,
}

impl Push {
    fn new() -> Self {
        Self::with_action_space(Space::Box {
            low: Array1::from(vec![-1.0]),
            high: Array1::from(vec![1.0]),
        })
    }

    fn with_action_space(action_space: Space) -> Self {
        Self {
            action_space,
            x: 0.0,
            v: 0.0,
            last_seed: 0,
            steps: 0,
            last_force: Vec::new(),
        }
    }

    fn obs(&self) -> Array1<f32> {
        Array1::from(vec![self.x, self.v])
    }
}

impl<A: Force> GymEnv<Array1<f32>, A> for Push {
    fn observation_space(&self) -> Space {
        let bound = X_LIMIT + MAX_SPEED;
        Space::Box {
            low: Array1::from(vec![-bound, -MAX_SPEED]),
            high: Array1::from(vec![bound, MAX_SPEED]),
        }
    }

    fn action_space(&self) -> Space {
        self.action_space.clone()
    }

    fn reset(&mut self, seed: Option<i32>, _options: Options) -> (Array1<f32>, GymInfo) {
        let s = seed.unwrap_or_else(|| self.last_seed.wrapping_add(1));
        self.last_seed = s;
        self.x = (s.rem_euclid(201) - 100) as f32 / 1000.0;
        self.v = ((s / 201).rem_euclid(21) - 10) as f32 / 1000.0;
        (self.obs(), GymInfo::new())
    }

    fn step(&mut self, action: A) -> (Array1<f32>, Reward, bool, bool, GymInfo) {
        let f = action.values()[0];
        self.last_force = action.values().to_vec();
        self.steps += 1;
        self.v = (self.v + 0.05 * f).clamp(-MAX_SPEED, MAX_SPEED);
        self.x += self.v;
        let terminated = self.x.abs() > X_LIMIT;
        (self.obs(), -self.x.abs(), terminated, false, GymInfo::new())
    }

    fn render(&self) -> Option<ndarray::Array3<u8>> {
        None
    }

    fn close(&mut self) {}
}

/// The `ActionOutsideSpace` message of `e`, or a panic naming the unexpected error.
fn outside_space(e: EnvError) -> String {
    match e {
        EnvError::ActionOutsideSpace(msg) => msg,
        other => panic!("expected ActionOutsideSpace, got {other:?}"),
    }
}

/// The tests of a `Push` wrapped with the action type `$a`.
macro_rules! box_action_tests {
    ($module:ident, $a:ty) => {
        mod $module {
            use super::*;

            type Wrapped = GymnasiumEnv<Push, Array1<f32>, $a>;

            fn wrapped() -> Wrapped {
                Wrapped::new(Push::new()).unwrap_or_else(|e| panic!("{e}"))
            }

            #[test]
            fn the_box_action_space_maps_to_ours_and_check_env_passes() {
                let env = wrapped();
                assert_eq!(env.action_space(), ActionSpace::continuous(1, -1.0, 1.0));
                assert_eq!(env.observation_space().shape, [2]);
                assert_eq!(env.observation_space().high, [1.5, 0.5]);
                assert_eq!(env.time_limit(), None);

                let mut env = env.with_time_limit(60).unwrap();
                let report = check_env(&mut env).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(report.action_space, ActionSpace::continuous(1, -1.0, 1.0));
                assert_eq!(report.obs_dim, 2);
                assert!(!report.masked);
                assert_eq!(report.terminated + report.truncated, 3, "{report}");
                assert!(report.mean_length <= 60.0, "{report}");
            }

            #[test]
            fn forces_reach_the_wrapped_env_and_the_episode_ends() {
                let mut env = wrapped();
                assert_eq!(env.step_vec(&[0.5f32][..]).unwrap_err(), EnvError::NotReset);
                assert_eq!(env.inner().steps, 0);
                let obs = env.reset_vec(150).unwrap();
                assert_eq!(obs, [0.05, -0.01]);
                let (obs, s) = env.step_vec(&[0.25f32][..]).unwrap();
                assert_eq!(env.inner().last_force, [0.25]);
                let v = -0.01 + 0.05 * 0.25f32;
                assert_eq!(obs, [0.05 + v, v]);
                assert_eq!(s.reward, -(0.05 + v));
                assert!(!s.done());

                // Pushing right at full force terminates past x = 1.
                let mut steps = 1;
                let last = loop {
                    let (obs, s) = env.step_vec(&[1.0f32][..]).unwrap();
                    steps += 1;
                    if s.done() {
                        break (obs, s);
                    }
                    assert!(steps < 100, "{obs:?}");
                };
                assert!(last.1.terminated && !last.1.truncated);
                assert!(last.0[0] > X_LIMIT, "{:?}", last.0);
                assert_eq!(
                    env.step_vec(&[0.0f32][..]).unwrap_err(),
                    EnvError::StepAfterDone
                );
                assert_eq!(env.inner().steps, steps);

                // The time limit truncates.
                let mut env = wrapped().with_time_limit(3).unwrap();
                env.reset_vec(0).unwrap();
                let flags: Vec<_> = (0..3)
                    .map(|_| {
                        let s = env.step_vec(&[0.0f32][..]).unwrap().1;
                        (s.terminated, s.truncated)
                    })
                    .collect();
                assert_eq!(flags, [(false, false), (false, false), (false, true)]);

                // The same seed gives the same start, another seed another one.
                assert_eq!(env.reset_vec(9).unwrap(), env.reset_vec(9).unwrap());
                assert_ne!(env.reset_vec(9).unwrap(), env.reset_vec(10).unwrap());
            }

            #[test]
            fn actions_outside_the_box_are_refused_before_the_wrapped_env_sees_them() {
                let mut env = wrapped();
                let start = env.reset_vec(4).unwrap();
                let refused: [(Action<'_>, &str); 8] = [
                    (
                        Action::Continuous(&[1.5]),
                        "action element 0 is 1.5, outside [-1, 1]",
                    ),
                    (
                        Action::Continuous(&[-1.01]),
                        "action element 0 is -1.01, outside [-1, 1]",
                    ),
                    (
                        Action::Continuous(&[f32::NAN]),
                        "action element 0 is NaN, outside [-1, 1]",
                    ),
                    (
                        Action::Continuous(&[f32::INFINITY]),
                        "action element 0 is inf, outside [-1, 1]",
                    ),
                    (
                        Action::Continuous(&[0.1, 0.2]),
                        "action of 2 values, the action Box has 1",
                    ),
                    (
                        Action::Continuous(&[]),
                        "action of 0 values, the action Box has 1",
                    ),
                    (
                        Action::Discrete(0),
                        "action 0 is not an action of Box(-1, 1, shape [1])",
                    ),
                    (
                        Action::MultiDiscrete(&[0]),
                        "action [0] is not an action of Box(-1, 1, shape [1])",
                    ),
                ];
                let mut obs = vec![0.0; 2];
                for (action, why) in refused {
                    let e = env.step(action, &mut obs).unwrap_err();
                    assert!(e.to_string().starts_with("invalid action: "), "{e}");
                    let msg = outside_space(e);
                    assert_eq!(msg, why, "{action}");
                }
                // Nothing reached the wrapped env, and the episode goes on from its start.
                assert_eq!(env.inner().steps, 0);
                let mut lone = wrapped();
                lone.reset_vec(4).unwrap();
                assert_eq!(
                    env.step_vec(&[-1.0f32][..]).unwrap(),
                    lone.step_vec(&[-1.0f32][..]).unwrap()
                );
                assert_ne!(env.step_vec(&[1.0f32][..]).unwrap().0, start);
            }

            #[test]
            fn a_vec_env_steps_continuous_actions_and_restores_exactly() {
                let make = |_| wrapped().with_time_limit(30);
                let forces = |t: usize| -> Vec<f32> {
                    (0..3)
                        .map(|i| ((t * 7 + i * 5) % 21) as f32 / 10.0 - 1.0)
                        .collect()
                };
                type Trace = Vec<(Vec<f32>, Vec<f32>, Vec<bool>, Vec<bool>, usize)>;
                let run = |venv: &mut VecEnv<Wrapped>, steps: std::ops::Range<usize>| -> Trace {
                    steps
                        .map(|t| {
                            let s = venv
                                .step_actions(VecActions::Continuous(&forces(t)))
                                .unwrap_or_else(|e| panic!("{e}"));
                            (
                                s.obs.clone(),
                                s.rewards.clone(),
                                s.terminated.clone(),
                                s.truncated.clone(),
                                s.finished.len(),
                            )
                        })
                        .collect()
                };

                let mut venv = VecEnv::from_fn(3, 11, make).unwrap();
                assert_eq!(venv.action_space(), &ActionSpace::continuous(1, -1.0, 1.0));
                assert_eq!(venv.num_actions(), 1);
                venv.reset().unwrap();

                // Refused: discrete actions, the wrong number of values, a force out of range.
                let e = step_error(&mut venv, VecActions::Discrete(&[0, 0, 0]));
                assert!(
                    e.contains("env 0") && e.contains("not an action of Box"),
                    "{e}"
                );
                let e = step_error(&mut venv, VecActions::Continuous(&[0.0, 0.0]));
                assert!(e.contains("expected 3 action values"), "{e}");
                let e = step_error(&mut venv, VecActions::Continuous(&[0.0, 2.0, 0.0]));
                assert!(
                    e.contains("env 1") && e.contains("2, outside [-1, 1]"),
                    "{e}"
                );
                assert!(venv.envs().iter().all(|e| e.inner().steps == 0));

                let before = run(&mut venv, 0..45);
                let ended: usize = before.iter().map(|t| t.4).sum();
                assert!(ended >= 3, "{ended} episodes ended");
                let state = venv.state();
                let obs_at_save = venv.last().obs.clone();
                assert!(state.envs.iter().all(|s| s.actions.is_empty()));
                assert!(
                    state.envs.iter().any(|s| !s.continuous_actions.is_empty()),
                    "{state:?}"
                );
                let after = run(&mut venv, 45..90);

                // A fresh VecEnv restored from the state continues exactly.
                let mut resumed = VecEnv::from_fn(3, 999, make).unwrap();
                let obs = resumed.restore(&state).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(obs, &obs_at_save[..]);
                assert_eq!(run(&mut resumed, 45..90), after);

                // Sequential and rayon stepping agree.
                let mut seq = VecEnv::from_fn(3, 11, make)
                    .unwrap()
                    .with_parallelism(Parallelism::Sequential);
                seq.reset().unwrap();
                let mut par = VecEnv::from_fn(3, 11, make)
                    .unwrap()
                    .with_parallelism(Parallelism::Rayon);
                par.reset().unwrap();
                let seq = run(&mut seq, 0..90);
                assert_eq!(run(&mut par, 0..90), seq);
                assert_eq!(seq[..45], before[..]);
                assert_eq!(seq[45..], after[..]);
            }
        }
    };
}

box_action_tests!(array1_actions, Array1<f32>);
box_action_tests!(vec_actions, Vec<f32>);

#[test]
fn both_box_action_types_give_the_same_trajectory() {
    let mut a = GymnasiumEnv::<_, Array1<f32>, Array1<f32>>::new(Push::new()).unwrap();
    let mut b = GymnasiumEnv::<_, Array1<f32>, Vec<f32>>::new(Push::new()).unwrap();
    assert_eq!(a.reset_vec(77).unwrap(), b.reset_vec(77).unwrap());
    let mut ended = 0;
    for t in 0..60u64 {
        let f = [(t as f32 * 0.37).sin()];
        let (obs, s) = a.step_vec(&f[..]).unwrap();
        assert_eq!((obs, s), b.step_vec(&f[..]).unwrap());
        if s.done() {
            ended += 1;
            assert_eq!(a.reset_vec(t).unwrap(), b.reset_vec(t).unwrap());
        }
    }
    assert!(ended > 0);
}

#[test]
fn invalid_gymnasium_rs_action_spaces_are_refused() {
    let boxed = |low: Vec<f32>, high: Vec<f32>| Space::Box {
        low: Array1::from(low),
        high: Array1::from(high),
    };
    let cases = [
        (boxed(vec![1.0], vec![-1.0]), "element 0 are [1, -1]"),
        (
            boxed(vec![-1.0, 0.5], vec![1.0, 0.0]),
            "element 1 are [0.5, 0]",
        ),
        (boxed(vec![f32::NAN], vec![1.0]), "element 0 are [NaN, 1]"),
        (boxed(vec![-1.0], vec![f32::NAN]), "element 0 are [-1, NaN]"),
        (
            boxed(vec![f32::NEG_INFINITY], vec![f32::NEG_INFINITY]),
            "element 0 are [-inf, -inf]",
        ),
        (
            boxed(vec![-1.0, -1.0], vec![1.0]),
            "2 lower and 1 upper bounds",
        ),
        (boxed(vec![], vec![]), "no elements"),
        (Space::Discrete(0), "Discrete(0) has no actions"),
        (Space::Discrete(-3), "Discrete(0) has no actions"),
        // A valid space, but the action type cannot hold its actions.
        (Space::Discrete(2), "wrapped with the action type"),
    ];
    for (space, why) in cases {
        let described = format!("{space:?}");
        let e = GymnasiumEnv::<_, Array1<f32>, Array1<f32>>::new(Push::with_action_space(space))
            .err()
            .unwrap_or_else(|| panic!("{described} was accepted"));
        match &e {
            EnvError::InvalidConfig { field, reason } => {
                assert_eq!(*field, "action_space", "{e}");
                assert!(reason.contains(why), "{described}: {e}");
            }
            other => panic!("{described}: {other:?}"),
        }
        assert!(e.to_string().contains("`action_space`"), "{e}");
    }
}

#[test]
fn pendulum_through_the_gym_trait_takes_continuous_actions() {
    let pendulum = || Pendulum::new(PendulumConfig::default()).unwrap();
    let mut gym = GymnasiumAdapter::new(pendulum());
    assert_eq!(
        GymEnv::action_space(&gym),
        Space::Box {
            low: Array1::from(vec![-2.0]),
            high: Array1::from(vec![2.0]),
        }
    );
    match GymEnv::observation_space(&gym) {
        Space::Box { low, high } => assert_eq!((low.len(), high.len()), (3, 3)),
        other => panic!("{other:?}"),
    }

    let (obs, info) = gym.reset_seed(3);
    assert!(info.is_empty(), "{info:?}");
    let mut lone = pendulum();
    assert_eq!(obs.to_vec(), lone.reset_vec(3).unwrap());

    let (obs, reward, terminated, truncated, info) = gym
        .try_step_action(Action::Continuous(&[0.5]))
        .unwrap_or_else(|e| panic!("{e}"));
    let (lone_obs, s) = lone.step_vec(&[0.5f32][..]).unwrap();
    assert_eq!(obs.to_vec(), lone_obs);
    assert_eq!((reward, terminated, truncated), (s.reward, false, false));
    // Pendulum counts nothing: no count keys, no goal flag.
    assert!(!info.contains_key("goal_reached") && !info.contains_key("goals"));
    assert!(!info.contains_key("error"), "{info:?}");

    // An integer action through gymnasium-rs's i32 trait is refused in the info map.
    let (refused_obs, reward, terminated, truncated, info) = GymEnv::step(&mut gym, 0);
    assert_eq!(refused_obs, obs);
    assert_eq!((reward, terminated, truncated), (0.0, false, false));
    let e = info["error"].as_str().unwrap();
    assert!(e.contains("action 0 is not an action of Box(-2, 2"), "{e}");
    assert_eq!(info.len(), 1, "{info:?}");
    let e = outside_space(gym.try_step(1).unwrap_err());
    assert!(e.contains("not an action of Box"), "{e}");
    let e = outside_space(gym.try_step_action(Action::Continuous(&[2.5])).unwrap_err());
    assert!(e.contains("2.5, outside [-2, 2]"), "{e}");
    let e = outside_space(
        gym.try_step_action(Action::Continuous(&[f32::NAN]))
            .unwrap_err(),
    );
    assert!(e.contains("NaN"), "{e}");

    // The refusals changed nothing: the episode continues like the lone env's, to its
    // time limit.
    let mut steps = 1;
    loop {
        let u = [-1.5f32 + (steps % 4) as f32];
        let (obs, reward, terminated, truncated, _) =
            gym.try_step_action(Action::Continuous(&u)).unwrap();
        let (lone_obs, s) = lone.step_vec(&u[..]).unwrap();
        assert_eq!(obs.to_vec(), lone_obs);
        assert_eq!(reward, s.reward);
        assert!(!terminated);
        steps += 1;
        if truncated {
            break;
        }
    }
    assert_eq!(steps, 200);
    assert_eq!(
        gym.try_step_action(Action::Continuous(&[0.0])).unwrap_err(),
        EnvError::StepAfterDone
    );
}

#[test]
fn multi_discrete_gridmaze_through_the_gym_trait() {
    let cfg = GridMazeConfig::multi(7, 24).move_run();
    let mut gym = GymnasiumAdapter::new(GridMaze::new(cfg.clone()).unwrap());
    assert_eq!(GymEnv::action_space(&gym), Space::Discrete(0));
    assert_eq!(
        gym.env().action_space(),
        ActionSpace::multi_discrete(vec![4, 2])
    );

    let (obs, _) = gym.reset_seed(5);
    let mut lone = GridMaze::new(cfg).unwrap();
    assert_eq!(obs.to_vec(), lone.reset_vec(5).unwrap());

    let (obs, reward, terminated, truncated, info) = gym
        .try_step_action(Action::MultiDiscrete(&[1, 0]))
        .unwrap_or_else(|e| panic!("{e}"));
    let (lone_obs, s) = lone.step_vec(&[1usize, 0][..]).unwrap();
    assert_eq!(obs.to_vec(), lone_obs);
    assert_eq!(
        (reward, terminated, truncated),
        (s.reward, s.terminated, s.truncated)
    );
    let goals = s.info.counts.get("goals").unwrap();
    assert_eq!(info["goals"], Value::from(goals));
    assert_eq!(info["goal_reached"], Value::Bool(goals > 0.0));

    // gymnasium-rs's i32 trait cannot express these actions: refused in the info map.
    let (refused_obs, reward, terminated, truncated, info) = GymEnv::step(&mut gym, 1);
    assert_eq!(refused_obs, obs);
    assert_eq!((reward, terminated, truncated), (0.0, false, false));
    let e = info["error"].as_str().unwrap();
    assert!(e.contains("MultiDiscrete([4, 2])"), "{e}");
    let e = outside_space(
        gym.try_step_action(Action::MultiDiscrete(&[4, 0]))
            .unwrap_err(),
    );
    assert!(e.contains("dimension 0 is 4, outside 0..4"), "{e}");

    // The next valid action continues as in the lone env.
    let (obs, ..) = gym.try_step_action(Action::MultiDiscrete(&[2, 1])).unwrap();
    assert_eq!(obs.to_vec(), lone.step_vec(&[2usize, 1][..]).unwrap().0);
}
