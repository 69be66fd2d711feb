//! check_env passes on the built-in tasks and explains, in words, what is wrong with broken
//! envs.

use envs::{
    BoxSpace, CheckConfig, CheckError, CueRecall, CueRecallConfig, Discrete, Env, EnvError,
    GridMaze, GridMazeConfig, Step, check_env, check_env_with,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn passes_on_gridmaze_configurations() {
    let configs = [
        GridMazeConfig::multi(7, 64),
        GridMazeConfig::multi(15, 200),
        GridMazeConfig::single(9, 100),
        GridMazeConfig::single(11, 80).egocentric(),
        GridMazeConfig {
            loop_density: 0.3,
            step_penalty: 0.01,
            time_feature: true,
            view_radius: 2,
            ..GridMazeConfig::multi(11, 50)
        },
    ];
    for cfg in configs {
        let mut env = GridMaze::new(cfg.clone()).unwrap();
        let report = check_env(&mut env).unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
        assert_eq!(report.episodes, 3);
        assert_eq!(report.obs_dim, cfg.obs_len());
        assert_eq!(report.num_actions, cfg.num_actions());
        assert!(report.steps > 0);
        let text = report.to_string();
        assert!(text.starts_with("env passed: 3 random episodes"), "{text}");
    }
    // Multi mode only ever truncates, at the horizon.
    let mut env = GridMaze::new(GridMazeConfig::multi(9, 40)).unwrap();
    let report = check_env(&mut env).unwrap();
    assert_eq!((report.terminated, report.truncated), (0, 3));
    assert_eq!(report.steps, 120);
}

#[test]
fn passes_on_cue_recall() {
    for cfg in [
        CueRecallConfig::default(),
        CueRecallConfig::with_corridor(20),
        CueRecallConfig {
            num_cues: 4,
            failure_reward: -1.0,
            progress_feature: true,
            ..CueRecallConfig::with_corridor(7)
        },
    ] {
        let mut env = CueRecall::new(cfg.clone()).unwrap();
        let cfg_check = CheckConfig {
            episodes: 10,
            ..CheckConfig::default()
        };
        let report =
            check_env_with(&mut env, &cfg_check).unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
        assert_eq!(report.episodes, 10);
        assert!(report.mean_return >= f64::from(cfg.failure_reward));
    }
}

/// A correct env that each test breaks in one way.
#[derive(Clone)]
struct Toy {
    space: BoxSpace,
    rng: ChaCha8Rng,
    pos: f32,
    t: u32,
    done: bool,
    fault: Fault,
}

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// The observation space says 5 elements, the env writes 4.
    ShortObs,
    /// The env panics copying its internal 4-vector into the 5-element buffer.
    PanicOnLength,
    /// Element 1 goes above its upper bound 1.
    OutOfBounds,
    /// Element 2 becomes NaN.
    NanObs,
    /// The RNG is not reseeded in reset.
    Nondeterministic,
    /// Any action is accepted.
    AcceptsInvalidAction,
    /// Steps after the end are accepted.
    AcceptsStepAfterDone,
    /// The episode never ends.
    Endless,
    /// The reward is infinite on step 3.
    InfiniteReward,
    /// `low` has one element too many.
    BadSpace,
    /// An invalid action is refused but moves the env anyway.
    RefusalMoves,
}

impl Toy {
    fn new(fault: Fault) -> Self {
        let len = if fault == Fault::ShortObs || fault == Fault::PanicOnLength {
            5
        } else {
            4
        };
        let mut space = BoxSpace::uniform(len, -1.0, 1.0);
        if fault == Fault::BadSpace {
            space.low.push(0.0);
        }
        Self {
            space,
            rng: ChaCha8Rng::seed_from_u64(0),
            pos: 0.0,
            t: 0,
            done: false,
            fault,
        }
    }

    fn write(&self, obs: &mut [f32]) {
        let v = [
            self.pos,
            if self.fault == Fault::OutOfBounds && self.t >= 2 {
                1.5
            } else {
                (self.t as f32 / 100.0).min(1.0)
            },
            if self.fault == Fault::NanObs && self.t >= 1 {
                f32::NAN
            } else {
                0.5
            },
            -0.25,
        ];
        match self.fault {
            Fault::ShortObs => obs[..4].copy_from_slice(&v),
            _ => obs.copy_from_slice(&v),
        }
    }
}

impl Env for Toy {
    fn observation_space(&self) -> &BoxSpace {
        &self.space
    }
    fn action_space(&self) -> Discrete {
        Discrete { n: 2 }
    }
    fn reset(&mut self, seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
        if self.fault != Fault::Nondeterministic {
            self.rng = ChaCha8Rng::seed_from_u64(seed);
        }
        self.pos = self.rng.random_range(-0.1..0.1);
        self.t = 0;
        self.done = false;
        self.write(obs);
        Ok(())
    }
    fn step(&mut self, action: usize, obs: &mut [f32]) -> Result<Step, EnvError> {
        if action >= 2 {
            match self.fault {
                Fault::AcceptsInvalidAction => {}
                Fault::RefusalMoves => {
                    self.pos = (self.pos + 0.05).min(1.0);
                    return Err(EnvError::InvalidAction { action, n: 2 });
                }
                _ => return Err(EnvError::InvalidAction { action, n: 2 }),
            }
        }
        if self.done && self.fault != Fault::AcceptsStepAfterDone {
            return Err(EnvError::StepAfterDone);
        }
        let dir = if action == 1 { 0.1 } else { -0.1 };
        self.pos = (self.pos + dir + self.rng.random_range(-0.05..0.05)).clamp(-1.0, 1.0);
        self.t += 1;
        let terminated = self.pos.abs() >= 0.5 && self.fault != Fault::Endless;
        let truncated = self.t >= 60 && self.fault != Fault::Endless;
        self.done = terminated || truncated;
        self.write(obs);
        let reward = if self.fault == Fault::InfiniteReward && self.t == 3 {
            f32::INFINITY
        } else {
            1.0
        };
        Ok(Step {
            reward,
            terminated,
            truncated: truncated && !terminated,
            ..Step::default()
        })
    }
}

fn check(fault: Fault) -> Result<String, String> {
    let mut env = Toy::new(fault);
    let cfg = CheckConfig {
        max_steps: 1000,
        ..CheckConfig::default()
    };
    check_env_with(&mut env, &cfg)
        .map(|r| r.to_string())
        .map_err(|e| e.to_string())
}

#[test]
fn the_toy_env_passes() {
    let text = check(Fault::None).unwrap();
    assert!(text.contains("env passed"), "{text}");
}

#[test]
fn short_observation_is_reported() {
    let e = check(Fault::ShortObs).unwrap_err();
    assert_eq!(
        e,
        "observation length does not match the observation space: reset(seed = 0): the env \
         wrote only the first 4 of the 5 elements of the observation space (shape [5]); \
         elements 4..5 were never written"
            .replace("seed = 0", &format!("seed = {}", envs::derive_seed(0, 0)))
    );
}

#[test]
fn length_panic_is_caught_and_explained() {
    let e = check(Fault::PanicOnLength).unwrap_err();
    assert!(e.starts_with("reset(seed = "), "{e}");
    assert!(e.contains("panicked"), "{e}");
    assert!(e.contains("does not match destination slice length"), "{e}");
    assert!(
        e.contains(
            "the observation buffer passed had 5 elements, the length of the observation space"
        ),
        "{e}"
    );
}

#[test]
fn out_of_bounds_observation_names_element_value_and_bound() {
    let e = check(Fault::OutOfBounds).unwrap_err();
    assert!(e.starts_with("step 2 of episode 0 (action "), "{e}");
    assert!(
        e.ends_with("observation element 1 is 1.5, above its upper bound 1"),
        "{e}"
    );
}

#[test]
fn nan_observation_is_reported() {
    let e = check(Fault::NanObs).unwrap_err();
    assert!(e.starts_with("step 1 of episode 0"), "{e}");
    assert!(
        e.ends_with("observation element 2 is NaN; observations must be finite"),
        "{e}"
    );
}

#[test]
fn nondeterminism_is_reported() {
    let e = check(Fault::Nondeterministic).unwrap_err();
    assert!(e.starts_with("the env is not deterministic: "), "{e}");
    assert!(e.contains("with the same seed"), "{e}");
    assert!(e.contains("seed it in reset"), "{e}");
    // The first difference is named: the first obs, element 0 (the random start position).
    assert!(e.contains("element 0 was "), "{e}");
}

#[test]
fn accepted_invalid_action_is_reported() {
    let e = check(Fault::AcceptsInvalidAction).unwrap_err();
    assert_eq!(
        e,
        "step 1 of episode 0 accepted the invalid action 2: the action space has 2 actions \
         (0..2); step must return EnvError::InvalidAction for it"
    );
}

#[test]
fn accepted_step_after_the_end_is_reported() {
    let e = check(Fault::AcceptsStepAfterDone).unwrap_err();
    assert!(
        e.starts_with("step was accepted after episode 0 ended ("),
        "{e}"
    );
    assert!(
        e.ends_with("it must return EnvError::StepAfterDone until the next reset"),
        "{e}"
    );
}

#[test]
fn endless_episode_is_reported() {
    let e = check(Fault::Endless).unwrap_err();
    assert!(
        e.starts_with("episode 0 (seed ") && e.contains("did not end within 1000 steps"),
        "{e}"
    );
    assert!(e.contains("add a time limit that sets `truncated`"), "{e}");
}

#[test]
fn infinite_reward_is_reported() {
    let e = check(Fault::InfiniteReward).unwrap_err();
    assert!(e.starts_with("step 3 of episode 0"), "{e}");
    assert!(
        e.ends_with("returned reward inf; rewards must be finite"),
        "{e}"
    );
}

#[test]
fn inconsistent_space_is_reported() {
    let e = check(Fault::BadSpace).unwrap_err();
    assert_eq!(
        e,
        "the observation space is inconsistent: shape [4] has 4 elements, but `low` has 5 and \
         `high` has 4"
    );
    let mut env = Toy::new(Fault::None);
    env.space.low[2] = 2.0;
    let e = check_env(&mut env).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the observation space is inconsistent: element 2 has lower bound 2 above its upper \
         bound 1"
    );
}

#[test]
fn a_refusal_that_changes_the_env_is_reported() {
    let e = check(Fault::RefusalMoves).unwrap_err();
    assert!(
        e.starts_with("refusing the invalid action 2 changed the env: "),
        "{e}"
    );
    assert!(
        e.ends_with("a refused action must leave the env as it was"),
        "{e}"
    );
}

#[test]
fn errors_are_matchable() {
    let mut env = Toy::new(Fault::AcceptsInvalidAction);
    assert!(matches!(
        check_env(&mut env),
        Err(CheckError::InvalidActionAccepted {
            action: 2,
            n: 2,
            ..
        })
    ));
    let mut env = Toy::new(Fault::NanObs);
    assert!(matches!(
        check_env(&mut env),
        Err(CheckError::NonFiniteObs { index: 2, .. })
    ));
}
