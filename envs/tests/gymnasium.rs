//! The gymnasium-rs bridge: CartPole as our Env, GridMaze as a gymnasium-rs Env.
#![cfg(feature = "gymnasium")]

use envs::gymnasium::gym_seed;
use envs::{
    ActionSpace, Env, EnvError, EnvExt, GridMaze, GridMazeConfig, GridMazeGym, GymCartPole,
    GymnasiumAdapter, GymnasiumEnv, Parallelism, VecEnv, check_env,
};
use gymnasium_rs::core::{Env as GymEnv, Space};
use gymnasium_rs::envs::cartpole::CartPole;

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
