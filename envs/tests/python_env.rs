//! `envs::python`: Gymnasium envs in the embedded Python pass `check_env`, map their spaces,
//! seeds, masks and episode ends as documented, and every kind of bad input is an error that
//! names the env and the Python exception.
//!
//! The embedded interpreter needs `gymnasium`, `numpy` and `minigrid`: point `FBRL_PYTHON` at
//! the `python` of a virtual environment that has them (or activate it). Without them the
//! tests print a loud skip message and pass, unless `FBRL_REQUIRE_PYTHON_ENVS=1`, where they
//! fail. The test envs written in Python live in `tests/python/` (added to `sys.path`).
#![cfg(feature = "python")]

mod common;

use envs::python::{PyEnvSpec, PyGymEnv, python_seed};
use envs::{
    Action, ActionSpace, Env, EnvError, EnvExt, Parallelism, VecEnv, check_env, derive_seed,
};

use pyo3::prelude::*;

/// The Python packages the tests need, each with a module to import.
const PACKAGES: [&str; 3] = ["gymnasium", "numpy", "minigrid"];

/// Whether the embedded Python has the packages (and `tests/python` on its `sys.path`). When
/// it has not: a panic with `FBRL_REQUIRE_PYTHON_ENVS=1`, else a loud message and `false`.
fn python_ready(test: &str) -> bool {
    let problem = match envs::python::start() {
        Err(e) => Some(e.to_string()),
        Ok(()) => Python::with_gil(|py| {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python");
            let path = py.import("sys").and_then(|sys| sys.getattr("path"));
            if let Ok(path) = path
                && !path.contains(dir).unwrap_or(false)
            {
                path.call_method1("insert", (0, dir)).ok();
            }
            PACKAGES.iter().find_map(|m| {
                py.import(*m)
                    .err()
                    .map(|e| format!("cannot import {m}: {e}"))
            })
        }),
    };
    common::python::ready(test, problem)
}

macro_rules! require_python {
    ($test:expr) => {
        if !python_ready($test) {
            return;
        }
    };
}

/// Asserts that the message `e` contains every one of `parts`.
fn assert_names_all(e: &str, parts: &[&str]) {
    for part in parts {
        assert!(e.contains(part), "{part:?} missing from: {e}");
    }
}

/// The error of making `spec`, as text.
fn make_error(spec: &PyEnvSpec) -> String {
    match PyGymEnv::new(spec) {
        Ok(_) => panic!("{spec:?} was made"),
        Err(e) => e.to_string(),
    }
}

/// The error of the first failing call of an episode of `odd_envs:make(kind)` (action 1
/// every step, at most 10 steps).
fn odd_episode_error(kind: &str) -> String {
    let mut env = PyGymEnv::new(&PyEnvSpec::new("odd_envs:make").with_kwarg("kind", kind))
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
    let run = |env: &mut PyGymEnv| -> Result<(), EnvError> {
        env.reset_vec(0)?;
        for _ in 0..10 {
            if env.step_vec(1)?.1.done() {
                break;
            }
        }
        Ok(())
    };
    match run(&mut env) {
        Ok(()) => panic!("an episode of odd_envs:make({kind:?}) went through"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn cartpole_passes_check_env() {
    require_python!("cartpole_passes_check_env");
    let mut env = PyGymEnv::make("CartPole-v1").unwrap();
    assert_eq!(env.observation_space().shape, vec![4]);
    assert_eq!(env.action_space(), ActionSpace::discrete(2));
    assert_eq!(env.name(), "CartPole-v1");
    assert!(!env.resumes_by_replay());
    let report = check_env(&mut env).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.terminated > 0, "{report}");
    // Gymnasium's CartPole terminates within 500 steps: the last observation of an episode is
    // the one past the threshold, as Gymnasium gives it.
    env.reset_vec(3).unwrap();
    let mut last = None;
    for _ in 0..500 {
        let (obs, s) = env.step_vec(0).unwrap();
        if s.done() {
            assert!(s.terminated && !s.truncated, "{s:?}");
            last = Some(obs);
            break;
        }
    }
    let last = last.expect("always pushing left ends the episode");
    assert!(last[2].abs() > 0.2095 || last[0].abs() > 2.4, "{last:?}");
}

#[test]
fn minigrid_memory_with_img_obs_wrapper_passes_check_env() {
    require_python!("minigrid_memory_with_img_obs_wrapper_passes_check_env");
    let spec =
        PyEnvSpec::new("MiniGrid-MemoryS9-v0").with_wrapper("minigrid.wrappers:ImgObsWrapper");
    let mut env = PyGymEnv::new(&spec).unwrap();
    let space = env.observation_space().clone();
    assert_eq!(space.shape, vec![7, 7, 3]);
    assert_eq!((space.low[0], space.high[0]), (0.0, 255.0));
    assert_eq!(env.action_space(), ActionSpace::discrete(7));
    check_env(&mut env).unwrap_or_else(|e| panic!("{e}"));
    // Its own observation is a Dict: refused, naming the space and the wrappers that help.
    let e = make_error(&PyEnvSpec::new("minigrid:MiniGrid-MemoryS9-v0"));
    assert_names_all(
        &e,
        &[
            "MiniGrid-MemoryS9-v0",
            "Dict",
            "FlattenObservation",
            "ImgObsWrapper",
        ],
    );
}

#[test]
fn a_memory_task_written_in_python_passes_check_env_with_its_masks() {
    require_python!("a_memory_task_written_in_python_passes_check_env_with_its_masks");
    let spec = PyEnvSpec::new("pom_env:make")
        .with_kwarg("num_cues", 3)
        .with_kwarg("delay", 4);
    let mut env = PyGymEnv::new(&spec).unwrap();
    assert_eq!(env.observation_space().shape, vec![5]);
    let report = check_env(&mut env).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.masked, "{report}");
    // One episode by hand: the cue, the delay (only "wait" allowed), the answer.
    let obs = env.reset_vec(11).unwrap();
    let cue = obs[..3]
        .iter()
        .position(|&x| x == 1.0)
        .expect("a cue is shown");
    assert_eq!(env.action_mask(), Some(&[true, false, false][..]));
    let e = env.step_vec(1).unwrap_err();
    assert!(matches!(e, EnvError::ActionOutsideSpace(_)), "{e}");
    for _ in 0..4 {
        let (obs, s) = env.step_vec(0).unwrap();
        assert!(!s.done() && obs[..3].iter().all(|&x| x == 0.0), "{obs:?}");
    }
    assert_eq!(env.action_mask(), Some(&[true; 3][..]));
    let (_, s) = env.step_vec(cue).unwrap();
    assert_eq!((s.reward, s.terminated, s.truncated), (1.0, true, false));
    assert_eq!(s.info.success, Some(true));
    assert_eq!(env.step_vec(0).unwrap_err(), EnvError::StepAfterDone);
    // A time limit shorter than the episode: truncated, not terminated, as the env says.
    let spec = spec.with_kwarg("max_steps", 2);
    let mut env = PyGymEnv::new(&spec).unwrap();
    env.reset_vec(1).unwrap();
    let s = env.step_vec(0).unwrap().1;
    assert!(!s.done());
    let s = env.step_vec(0).unwrap().1;
    assert!(s.truncated && !s.terminated, "{s:?}");
}

/// CleanRL `ppo_trxl`'s ProofofMemory-v0 (the `python-memory` benchmark's env, in
/// `experiments/python/`): `check_env`, and the goal side remembered from the first
/// observations wins where the other side loses.
#[test]
fn proof_of_memory_passes_check_env_and_rewards_remembering_the_goal() {
    require_python!("proof_of_memory_passes_check_env_and_rewards_remembering_the_goal");
    Python::with_gil(|py| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/python");
        let path = py
            .import("sys")
            .and_then(|sys| sys.getattr("path"))
            .unwrap();
        if !path.contains(dir).unwrap() {
            path.call_method1("insert", (0, dir)).unwrap();
        }
    });
    let spec = PyEnvSpec::new("proof_of_memory:make");
    let mut env = PyGymEnv::new(&spec).unwrap();
    assert_eq!(env.observation_space().shape, vec![3]);
    assert_eq!(
        env.action_space(),
        ActionSpace::Discrete(envs::Discrete { n: 2 })
    );
    check_env(&mut env).unwrap_or_else(|e| panic!("{e}"));
    for seed in 0..20 {
        for remember in [true, false] {
            let obs = env.reset_vec(seed).unwrap();
            let good_is_right = obs[2] > 0.0;
            let action = usize::from(good_is_right == remember);
            let (mut ret, mut steps) = (0.0, 0);
            let last = loop {
                let (obs, s) = env.step_vec(action).unwrap();
                ret += s.reward;
                steps += 1;
                if steps > 2 {
                    assert_eq!((obs[0], obs[2]), (0.0, 0.0), "goals hidden after two steps");
                }
                if s.done() {
                    break s;
                }
            };
            assert!(last.terminated && !last.truncated, "{last:?}");
            assert_eq!(last.info.success, Some(remember), "seed {seed}");
            assert_eq!(ret > 0.5, remember, "seed {seed}: return {ret}");
        }
    }
}

#[test]
fn seeds_map_deterministically_into_python_range() {
    require_python!("seeds_map_deterministically_into_python_range");
    assert_eq!(python_seed(7), 7);
    assert_eq!(python_seed(u64::MAX), 0);
    assert_eq!(python_seed(1 << 32), 1);
    assert_ne!(python_seed(1), python_seed(2));
    let mut env = PyGymEnv::make("pom_env:make").unwrap();
    let mut cues = std::collections::BTreeSet::new();
    for seed in (0..12).chain([u64::MAX, 1 << 40]) {
        let a = env.reset_vec(seed).unwrap();
        assert_eq!(env.reset_vec(seed).unwrap(), a, "seed {seed}");
        cues.insert(a[..3].iter().position(|&x| x == 1.0));
    }
    assert_eq!(cues.len(), 3, "fourteen seeds show every cue: {cues:?}");
}

#[test]
fn spaces_map_as_documented() {
    require_python!("spaces_map_as_documented");
    let make = |kind: &str| {
        PyGymEnv::new(&PyEnvSpec::new("odd_envs:make").with_kwarg("kind", kind))
            .unwrap_or_else(|e| panic!("{kind}: {e}"))
    };
    // Box (2, 3): flattened row-major, the shape kept; Discrete(3, start=-1): our 0 is -1.
    let mut env = make("fine");
    assert_eq!(env.observation_space().shape, vec![2, 3]);
    assert_eq!(env.observation_space().low, vec![-1.0; 6]);
    assert_eq!(env.action_space(), ActionSpace::discrete(3));
    env.reset_vec(0).unwrap();
    let (obs, _) = env.step_vec(0).unwrap();
    assert_eq!(obs, vec![-0.1, 0.1, 0.0, 0.0, 0.0, 0.0]);
    let (obs, _) = env.step_vec(2).unwrap();
    assert_eq!(obs, vec![0.1, 0.0, 0.2, 0.0, 0.0, 0.0]);
    check_env(&mut env).unwrap_or_else(|e| panic!("{e}"));
    // A list observation is read in the space's dtype.
    check_env(&mut make("list_obs")).unwrap_or_else(|e| panic!("{e}"));
    // MultiBinary(3): MultiDiscrete of 2s; MultiDiscrete([2, 3], start=[1, -1]): offsets.
    let mut env = make("multi_binary");
    assert_eq!(
        env.action_space(),
        ActionSpace::multi_discrete(vec![2, 2, 2])
    );
    check_env(&mut env).unwrap_or_else(|e| panic!("{e}"));
    let mut env = make("multi_discrete");
    assert_eq!(env.action_space(), ActionSpace::multi_discrete(vec![2, 3]));
    env.reset_vec(0).unwrap();
    let (obs, _) = env.step_vec(&[1usize, 2][..]).unwrap();
    assert!(
        (obs[0] - 0.3).abs() < 1e-6,
        "(1 + 1) + (2 - 1) = 3 → 0.3: {obs:?}"
    );
    check_env(&mut env).unwrap_or_else(|e| panic!("{e}"));
    // Discrete(4, start=10) observations: one-hot of obs - 10.
    let mut env = make("discrete_obs");
    assert_eq!(env.observation_space().shape, vec![4]);
    assert_eq!(env.reset_vec(0).unwrap(), vec![1.0, 0.0, 0.0, 0.0]);
    assert_eq!(env.step_vec(0).unwrap().0, vec![0.0, 1.0, 0.0, 0.0]);
    check_env(&mut env).unwrap_or_else(|e| panic!("{e}"));
}

/// The success flag is `info["success"]` or `info["is_success"]` on an episode's last step,
/// given as a bool or as a number that is 0 or 1 (gymnasium-robotics' float32
/// `is_success`); any other value is no flag.
#[test]
fn success_flags_are_read_from_bools_and_zero_one_numbers() {
    require_python!("success_flags_are_read_from_bools_and_zero_one_numbers");
    for (kind, want) in [
        ("float_success", Some(true)),
        ("int_success", Some(true)),
        ("array_success", Some(true)),
        ("fractional_success", None),
        ("fine", None),
    ] {
        let mut env = PyGymEnv::new(&PyEnvSpec::new("odd_envs:make").with_kwarg("kind", kind))
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        env.reset_vec(0).unwrap();
        let last = (0..5).map(|_| env.step_vec(1).unwrap().1).last().unwrap();
        assert!(last.terminated, "{kind}");
        assert_eq!(last.info.success, want, "{kind}");
    }
}

#[test]
fn bad_envs_are_clear_errors_naming_the_env_and_the_exception() {
    require_python!("bad_envs_are_clear_errors_naming_the_env_and_the_exception");
    let cases: [(&str, &[&str]); 5] = [
        (
            "raise_in_step",
            &[
                "`odd_envs:make`",
                "step failed",
                "RuntimeError: the simulator exploded at step 3",
                "odd_envs.py",
            ],
        ),
        ("wrong_shape", &["`odd_envs:make`", "shape (6,)", "(2, 3)"]),
        (
            "wrong_dtype",
            &["`odd_envs:make`", "dtype float64", "float32"],
        ),
        ("nan_reward", &["`odd_envs:make`", "reward NaN", "finite"]),
        ("old_api", &["`odd_envs:make`", "tuple of 4", "old Gym API"]),
    ];
    for (kind, parts) in cases {
        let e = odd_episode_error(kind);
        for part in parts {
            assert!(e.contains(part), "{kind}: {part:?} missing from: {e}");
        }
    }
    let spec = |kind: &str| PyEnvSpec::new("odd_envs:make").with_kwarg("kind", kind);
    let e = make_error(&spec("dict_obs"));
    assert!(
        e.contains("Dict") && e.contains("FlattenObservation"),
        "{e}"
    );
    let e = make_error(&spec("text_action"));
    assert!(e.contains("Text") && e.contains("not supported"), "{e}");
    // An env id that does not exist, a keyword argument the env refuses.
    let e = make_error(&PyEnvSpec::new("NoSuchEnv-v0"));
    assert_names_all(
        &e,
        &[
            "`NoSuchEnv-v0`",
            "cannot make it",
            "NameNotFound",
            "doesn't exist",
            "gym:PACKAGE:NoSuchEnv-v0",
        ],
    );
    let e = make_error(&PyEnvSpec::new("CartPole-v1").with_kwarg("bogus", 1));
    assert_names_all(
        &e,
        &[
            "`CartPole-v1`",
            "TypeError",
            "unexpected keyword argument 'bogus'",
        ],
    );
    let e = make_error(&PyEnvSpec::new("pom_env:make").with_kwarg("num_cues", 1));
    assert!(e.contains("ValueError: num_cues must be at least 2"), "{e}");
    let e = make_error(&PyEnvSpec::new("no_such_module_here:make"));
    assert!(e.contains("ModuleNotFoundError"), "{e}");
    let e =
        make_error(&PyEnvSpec::new("CartPole-v1").with_wrapper("minigrid.wrappers:NoSuchWrapper"));
    assert!(
        e.contains("--wrapper") && e.contains("NoSuchWrapper"),
        "{e}"
    );
    // After an error inside the env it needs a reset; a reset makes it usable again.
    let mut env = PyGymEnv::new(&spec("raise_in_step")).unwrap();
    env.reset_vec(0).unwrap();
    env.step_vec(1).unwrap();
    env.step_vec(1).unwrap();
    assert!(env.step_vec(1).is_err());
    assert_eq!(env.step_vec(1).unwrap_err(), EnvError::NotReset);
    env.reset_vec(0).unwrap();
    env.step_vec(1).unwrap();
}

#[test]
fn renders_rgb_frames_only_when_asked_and_offered() {
    require_python!("renders_rgb_frames_only_when_asked_and_offered");
    let mut env = PyGymEnv::new(&PyEnvSpec::new("odd_envs:make").with_render()).unwrap();
    env.reset_vec(0).unwrap();
    env.step_vec(0).unwrap();
    let frame = env.render_rgb().expect("an rgb_array frame");
    assert_eq!((frame.width, frame.height), (6, 4));
    assert_eq!(frame.pixel(1, 0), Some([255, 0, 0]));
    assert_eq!(frame.pixel(2, 0), Some([0, 0, 0]));
    let env = PyGymEnv::make("odd_envs:make").unwrap();
    assert!(env.render_rgb().is_none(), "made without render_mode");
    let e = make_error(&PyEnvSpec::new("pom_env:make").with_render());
    assert!(e.contains("rgb_array"), "{e}");
    let mut env = PyGymEnv::new(&PyEnvSpec::new("CartPole-v1").with_render()).unwrap();
    env.reset_vec(0).unwrap();
    let frame = env.render_rgb().expect("CartPole draws rgb_array frames");
    assert_eq!((frame.width, frame.height), (600, 400));
}

#[test]
fn a_vec_env_of_python_envs_steps_on_rayon_threads_and_restarts() {
    require_python!("a_vec_env_of_python_envs_steps_on_rayon_threads_and_restarts");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    pool.install(|| {
        let make = |_| PyGymEnv::new(&PyEnvSpec::new("pom_env:make").with_kwarg("delay", 2));
        let mut venv = VecEnv::from_fn(6, 5, make)
            .unwrap()
            .with_parallelism(Parallelism::Rayon);
        venv.reset().unwrap();
        assert!(venv.has_masks());
        let mut finished = 0;
        for _ in 0..40 {
            // "wait" is always allowed; at the query it is a guess.
            finished += venv.step(&[0; 6]).unwrap().finished.len();
        }
        assert!(
            finished >= 6 * 10,
            "{finished} episodes of 3 steps in 40 steps × 6 envs"
        );
        // Resume: each env starts its next episode with that episode's seed.
        let state = venv.state();
        let obs = venv.restart(&state).unwrap().to_vec();
        let mut fresh =
            PyGymEnv::new(&PyEnvSpec::new("pom_env:make").with_kwarg("delay", 2)).unwrap();
        for (i, saved) in state.envs.iter().enumerate() {
            let seed = derive_seed(derive_seed(state.base_seed, i as u64), saved.episode + 1);
            assert_eq!(
                &obs[i * 5..(i + 1) * 5],
                fresh.reset_vec(seed).unwrap(),
                "env {i}"
            );
        }
        assert!(
            venv.state()
                .envs
                .iter()
                .all(|s| s.actions.is_empty() && s.ret == 0.0)
        );
        venv.step(&[0; 6]).unwrap();
    });
}

#[test]
fn with_thread_state_keeps_one_python_thread_state_on_a_worker_thread() {
    require_python!("with_thread_state_keeps_one_python_thread_state_on_a_worker_thread");
    // A `threading.local` value lives as long as the thread state that set it.
    let local: Py<PyAny> = Python::with_gil(|py| {
        py.import("threading")
            .and_then(|t| t.call_method0("local"))
            .map(Into::into)
    })
    .unwrap();
    let set_then_read = || {
        Python::with_gil(|py| local.setattr(py, "x", 1)).unwrap();
        Python::with_gil(|py| local.as_ref(py).hasattr("x")).unwrap()
    };
    std::thread::scope(|s| {
        // Each GIL acquisition of a thread Python did not start makes a new thread state.
        assert!(!s.spawn(set_then_read).join().unwrap());
        assert!(
            s.spawn(|| envs::python::with_thread_state(set_then_read))
                .join()
                .unwrap()
        );
    });
    // Envs step as usual inside it, on a pool thread.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let steps = pool.install(|| {
        envs::python::with_thread_state(|| {
            let mut venv = VecEnv::from_fn(2, 3, |_| PyGymEnv::make("CartPole-v1")).unwrap();
            venv.reset().unwrap();
            (0..50)
                .map(|_| venv.step(&[1, 0]).unwrap().rewards.len())
                .sum::<usize>()
        })
    });
    assert_eq!(steps, 100);
}

#[test]
fn step_before_reset_and_outside_actions_are_refused_before_python() {
    require_python!("step_before_reset_and_outside_actions_are_refused_before_python");
    let mut env = PyGymEnv::make("CartPole-v1").unwrap();
    assert_eq!(env.step_vec(0).unwrap_err(), EnvError::NotReset);
    env.reset_vec(0).unwrap();
    assert!(matches!(
        env.step_vec(2).unwrap_err(),
        EnvError::InvalidAction { action: 2, n: 2 }
    ));
    let mut obs = vec![0.0; 3];
    assert!(matches!(
        env.step(Action::Discrete(0), &mut obs).unwrap_err(),
        EnvError::ObsBufferLength {
            got: 3,
            expected: 4
        }
    ));
}
