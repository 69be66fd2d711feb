//! check_env passes on the built-in tasks and explains, in words, what is wrong with broken
//! envs.

use envs::{
    Action, ActionSpace, BoxSpace, CheckConfig, CheckError, CueRecall, CueRecallConfig, Env,
    EnvError, GridMaze, GridMazeConfig, Info, Step, check_env, check_env_with,
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
        assert_eq!(report.action_space, cfg.action_space());
        assert!(!report.masked);
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

/// The episode under way in each env below: its random stream, its step count and whether it
/// has ended.
#[derive(Clone)]
struct Episode {
    rng: ChaCha8Rng,
    t: u32,
    done: bool,
}

impl Episode {
    /// Before the first reset: no episode to step.
    fn new() -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(0),
            t: 0,
            done: true,
        }
    }

    /// Starts an episode, its random stream seeded with `seed`.
    fn start(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self.start_unseeded();
    }

    /// Starts an episode that goes on with the random stream of the last one.
    fn start_unseeded(&mut self) {
        self.t = 0;
        self.done = false;
    }

    /// Counts a step; a step after the end is refused.
    fn tick(&mut self) -> Result<(), EnvError> {
        if self.done {
            return Err(EnvError::StepAfterDone);
        }
        self.t += 1;
        Ok(())
    }
}

/// A correct env that each test breaks in one way.
#[derive(Clone)]
struct Toy {
    space: BoxSpace,
    ep: Episode,
    pos: f32,
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
    /// The count `hits` is reported but not declared.
    UndeclaredCount,
    /// The count `hits` is declared twice.
    TwiceDeclaredCount,
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
            ep: Episode::new(),
            pos: 0.0,
            fault,
        }
    }

    fn write(&self, obs: &mut [f32]) {
        let v = [
            self.pos,
            if self.fault == Fault::OutOfBounds && self.ep.t >= 2 {
                1.5
            } else {
                (self.ep.t as f32 / 100.0).min(1.0)
            },
            if self.fault == Fault::NanObs && self.ep.t >= 1 {
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
    fn action_space(&self) -> ActionSpace {
        ActionSpace::discrete(2)
    }
    fn reset(&mut self, seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
        if self.fault == Fault::Nondeterministic {
            self.ep.start_unseeded();
        } else {
            self.ep.start(seed);
        }
        self.pos = self.ep.rng.random_range(-0.1..0.1);
        self.write(obs);
        Ok(())
    }
    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step, EnvError> {
        let action = match (action.discrete(2), action) {
            (Ok(a), _) => a,
            (Err(_), Action::Discrete(a)) if self.fault == Fault::AcceptsInvalidAction => a,
            (Err(e), _) => {
                if self.fault == Fault::RefusalMoves {
                    self.pos = (self.pos + 0.05).min(1.0);
                }
                return Err(e);
            }
        };
        if self.fault == Fault::AcceptsStepAfterDone {
            self.ep.t += 1;
        } else {
            self.ep.tick()?;
        }
        let dir = if action == 1 { 0.1 } else { -0.1 };
        self.pos = (self.pos + dir + self.ep.rng.random_range(-0.05..0.05)).clamp(-1.0, 1.0);
        let terminated = self.pos.abs() >= 0.5 && self.fault != Fault::Endless;
        let truncated = self.ep.t >= 60 && self.fault != Fault::Endless;
        self.ep.done = terminated || truncated;
        self.write(obs);
        let reward = if self.fault == Fault::InfiniteReward && self.ep.t == 3 {
            f32::INFINITY
        } else {
            1.0
        };
        Ok(Step {
            reward,
            terminated,
            truncated: truncated && !terminated,
            info: Info::default().with_count("hits", 1.0),
        })
    }
    fn episode_counts(&self) -> &'static [&'static str] {
        match self.fault {
            Fault::UndeclaredCount => &[],
            Fault::TwiceDeclaredCount => &["hits", "hits"],
            _ => &["hits"],
        }
    }
}

/// Asserts that the message `e` starts with `start` and ends with `end`.
fn assert_between(e: &str, start: &str, end: &str) {
    assert!(e.starts_with(start), "{e}");
    assert!(e.ends_with(end), "{e}");
}

/// Asserts that `check_env` refuses `env` for its action mask, with a message that starts with
/// `start` and ends with `end`.
fn assert_bad_mask(env: &mut impl Env, start: &str, end: &str) {
    let err = check_env(env).unwrap_err();
    assert!(matches!(err, CheckError::BadMask { .. }), "{err:?}");
    assert_between(&err.to_string(), start, end);
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
fn counts_must_be_declared_once() {
    let e = check(Fault::UndeclaredCount).unwrap_err();
    assert!(
        e.starts_with("step 1 of episode 0") && e.contains("the count `hits`, which"),
        "{e}"
    );
    let e = check(Fault::TwiceDeclaredCount).unwrap_err();
    assert_eq!(e, "episode_counts() declares `hits` twice");
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
    assert_between(
        &e,
        "step 2 of episode 0 (action ",
        "observation element 1 is 1.5, above its upper bound 1",
    );
}

#[test]
fn nan_observation_is_reported() {
    let e = check(Fault::NanObs).unwrap_err();
    assert_between(
        &e,
        "step 1 of episode 0",
        "observation element 2 is NaN; observations must be finite",
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
        "step 1 of episode 0 accepted the invalid action 2: action 2 is not in Discrete(2) \
         (0..2); step must return an error (EnvError::InvalidAction or \
         EnvError::ActionOutsideSpace) for it"
    );
}

#[test]
fn accepted_step_after_the_end_is_reported() {
    let e = check(Fault::AcceptsStepAfterDone).unwrap_err();
    assert_between(
        &e,
        "step was accepted after episode 0 ended (",
        "it must return EnvError::StepAfterDone until the next reset",
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
    assert_between(
        &e,
        "step 3 of episode 0",
        "returned reward inf; rewards must be finite",
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
    assert_between(
        &e,
        "refusing the invalid action 2 changed the env: ",
        "a refused action must leave the env as it was",
    );
}

#[test]
fn errors_are_matchable() {
    let mut env = Toy::new(Fault::AcceptsInvalidAction);
    assert!(matches!(
        check_env(&mut env),
        Err(CheckError::InvalidActionAccepted { action, .. }) if action == "action 2"
    ));
    let mut env = Toy::new(Fault::NanObs);
    assert!(matches!(
        check_env(&mut env),
        Err(CheckError::NonFiniteObs { index: 2, .. })
    ));
}

/// A correct masked env, `Discrete(3)` or `MultiDiscrete([3, 2])`, that each test breaks in
/// one way. Dimension 0 forbids one value, drawn at random at every step; dimension 1 forbids
/// value 1 on odd steps. The reward is the value of dimension 0; episodes last 6 steps.
#[derive(Clone)]
struct Picker {
    space: BoxSpace,
    actions: ActionSpace,
    ep: Episode,
    mask: Vec<bool>,
    blocked: usize,
    fault: MaskFault,
}

#[derive(Clone, Copy, PartialEq)]
enum MaskFault {
    None,
    /// The mask has one flag too few.
    ShortMask,
    /// From step 2 on, the mask forbids every value of the last dimension.
    EmptyDimension,
    /// The mask is given but not enforced: forbidden actions are accepted.
    AcceptsMasked,
}

impl Picker {
    fn discrete(fault: MaskFault) -> Self {
        Self::new(ActionSpace::discrete(3), fault)
    }

    fn multi(fault: MaskFault) -> Self {
        Self::new(ActionSpace::multi_discrete(vec![3, 2]), fault)
    }

    fn new(actions: ActionSpace, fault: MaskFault) -> Self {
        Self {
            space: BoxSpace::uniform(3, 0.0, 1.0),
            actions,
            ep: Episode::new(),
            mask: Vec::new(),
            blocked: 0,
            fault,
        }
    }

    fn nvec(&self) -> Vec<usize> {
        match &self.actions {
            ActionSpace::Discrete(d) => vec![d.n],
            ActionSpace::MultiDiscrete(m) => m.nvec.clone(),
            ActionSpace::Box(_) => Vec::new(),
        }
    }

    fn draw_mask(&mut self) {
        self.blocked = self.ep.rng.random_range(0..3);
        self.mask = (0..3).map(|v| v != self.blocked).collect();
        if matches!(self.actions, ActionSpace::MultiDiscrete(_)) {
            self.mask.extend([true, self.ep.t.is_multiple_of(2)]);
        }
        match self.fault {
            MaskFault::ShortMask => {
                self.mask.pop();
            }
            MaskFault::EmptyDimension if self.ep.t >= 2 => {
                let last = *self.nvec().last().unwrap();
                let len = self.mask.len();
                self.mask[len - last..].fill(false);
            }
            _ => {}
        }
    }

    fn write(&self, obs: &mut [f32]) {
        obs[0] = self.ep.t as f32 / 6.0;
        obs[1] = self.blocked as f32 / 2.0;
        obs[2] = (self.ep.t % 2) as f32;
    }
}

impl Env for Picker {
    fn observation_space(&self) -> &BoxSpace {
        &self.space
    }
    fn action_space(&self) -> ActionSpace {
        self.actions.clone()
    }
    fn reset(&mut self, seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
        self.ep.start(seed);
        self.draw_mask();
        self.write(obs);
        Ok(())
    }
    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step, EnvError> {
        self.actions.check(action)?;
        if self.ep.done {
            return Err(EnvError::StepAfterDone);
        }
        let values = match action {
            Action::Discrete(a) => vec![a],
            Action::MultiDiscrete(a) => a.to_vec(),
            Action::Continuous(_) => unreachable!("the space refuses continuous actions"),
        };
        if self.fault != MaskFault::AcceptsMasked {
            let mut start = 0;
            for (k, (&v, n)) in values.iter().zip(self.nvec()).enumerate() {
                if self.mask.get(start + v) == Some(&false) {
                    return Err(EnvError::ActionOutsideSpace(format!(
                        "{action}: value {v} of dimension {k} is masked"
                    )));
                }
                start += n;
            }
        }
        self.ep.t += 1;
        self.ep.done = self.ep.t >= 6;
        self.draw_mask();
        self.write(obs);
        Ok(Step {
            reward: values[0] as f32,
            truncated: self.ep.done,
            ..Step::default()
        })
    }
    fn action_mask(&self) -> Option<&[bool]> {
        Some(&self.mask)
    }
}

/// A correct continuous env that each test breaks in one way: a point on `[-1, 1]` pushed by
/// a force in `[-1, 1]` and a brake in `[0, 2]`, with noise; it terminates when the point
/// gets beyond ±0.8 and truncates after 20 steps.
#[derive(Clone)]
struct Torque {
    space: BoxSpace,
    actions: ActionSpace,
    ep: Episode,
    pos: f32,
    fault: BoxFault,
}

#[derive(Clone, Copy, PartialEq)]
enum BoxFault {
    None,
    /// Any action of the right length is accepted, whatever its values.
    AcceptsOutOfBounds,
    /// The bounds are checked with comparisons that NaN passes.
    AcceptsNan,
    /// The env gives an action mask although its actions are continuous.
    MaskOnBox,
}

impl Torque {
    fn new(fault: BoxFault) -> Self {
        Self {
            space: BoxSpace::uniform(2, -1.0, 1.0),
            actions: ActionSpace::Box(BoxSpace {
                shape: vec![2],
                low: vec![-1.0, 0.0],
                high: vec![1.0, 2.0],
            }),
            ep: Episode::new(),
            pos: 0.0,
            fault,
        }
    }

    fn write(&self, obs: &mut [f32]) {
        obs[0] = self.pos;
        obs[1] = self.ep.t as f32 / 20.0;
    }
}

impl Env for Torque {
    fn observation_space(&self) -> &BoxSpace {
        &self.space
    }
    fn action_space(&self) -> ActionSpace {
        self.actions.clone()
    }
    fn reset(&mut self, seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
        self.ep.start(seed);
        self.pos = self.ep.rng.random_range(-0.2..0.2);
        self.write(obs);
        Ok(())
    }
    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step, EnvError> {
        let x = match action {
            Action::Continuous(x) if x.len() == 2 => x,
            other => {
                return Err(EnvError::ActionOutsideSpace(format!(
                    "{other} is not a force and a brake"
                )));
            }
        };
        match self.fault {
            BoxFault::AcceptsOutOfBounds => {}
            BoxFault::AcceptsNan => {
                let ActionSpace::Box(b) = &self.actions else {
                    unreachable!("a Box space")
                };
                if x.iter()
                    .zip(b.low.iter().zip(&b.high))
                    .any(|(v, (lo, hi))| v < lo || v > hi)
                {
                    return Err(EnvError::ActionOutsideSpace(format!(
                        "{action} is out of bounds"
                    )));
                }
            }
            BoxFault::None | BoxFault::MaskOnBox => self.actions.check(action)?,
        }
        self.ep.tick()?;
        let push = 0.2 * x[0] * (1.0 - 0.4 * x[1]);
        self.pos = (self.pos + push + self.ep.rng.random_range(-0.05..0.05)).clamp(-1.0, 1.0);
        let terminated = self.pos.abs() >= 0.8;
        let truncated = !terminated && self.ep.t >= 20;
        self.ep.done = terminated || truncated;
        self.write(obs);
        Ok(Step {
            reward: -0.1 * x[1] + f32::from(u8::from(terminated)),
            terminated,
            truncated,
            ..Step::default()
        })
    }
    fn action_mask(&self) -> Option<&[bool]> {
        (self.fault == BoxFault::MaskOnBox).then_some(&[true, true][..])
    }
}

#[test]
fn a_masked_multi_discrete_env_passes() {
    let mut env = Picker::multi(MaskFault::None);
    let report = check_env(&mut env).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.masked);
    assert_eq!(report.action_space, ActionSpace::multi_discrete(vec![3, 2]));
    assert_eq!((report.steps, report.truncated), (18, 3));
    let text = report.to_string();
    assert!(
        text.contains("actions outside MultiDiscrete([3, 2]) or its masks"),
        "{text}"
    );

    let mut env = Picker::discrete(MaskFault::None);
    let report = check_env(&mut env).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.masked);
    assert_eq!(report.action_space, ActionSpace::discrete(3));
}

#[test]
fn a_continuous_env_passes() {
    let mut env = Torque::new(BoxFault::None);
    let report = check_env_with(
        &mut env,
        &CheckConfig {
            episodes: 8,
            ..CheckConfig::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!report.masked);
    assert_eq!(report.action_space, env.action_space());
    assert_eq!(report.episodes, 8);
    assert!(report.steps > 8);
    let text = report.to_string();
    assert!(
        text.contains("actions outside Box(shape [2]) and steps"),
        "{text}"
    );
}

#[test]
fn a_mask_of_the_wrong_length_is_reported() {
    for (mut env, space) in [
        (Picker::discrete(MaskFault::ShortMask), "Discrete(3)"),
        (Picker::multi(MaskFault::ShortMask), "MultiDiscrete([3, 2])"),
    ] {
        let (flags, width) = if space == "Discrete(3)" {
            (2, 3)
        } else {
            (4, 5)
        };
        assert_bad_mask(
            &mut env,
            "the action mask after reset(seed = ",
            &format!(
                "it has {flags} flags; the {space} action space needs {width} (one per action \
                 value)"
            ),
        );
    }
}

#[test]
fn a_mask_that_forbids_every_value_of_a_dimension_is_reported() {
    // Discrete: the mask forbids every action.
    assert_bad_mask(
        &mut Picker::discrete(MaskFault::EmptyDimension),
        "the action mask after step 2 of episode 0 (action ",
        "it forbids every value of dimension 0 of Discrete(3); at least one action must be \
             allowed",
    );
    // MultiDiscrete: every value of dimension 1 is forbidden, dimension 0 is fine.
    assert_bad_mask(
        &mut Picker::multi(MaskFault::EmptyDimension),
        "the action mask after step 2 of episode 0 (action [",
        "it forbids every value of dimension 1 of MultiDiscrete([3, 2]); at least one \
             action must be allowed",
    );
}

#[test]
fn an_env_that_accepts_a_masked_action_is_reported() {
    for mut env in [
        Picker::discrete(MaskFault::AcceptsMasked),
        Picker::multi(MaskFault::AcceptsMasked),
    ] {
        let err = check_env(&mut env).unwrap_err();
        let CheckError::InvalidActionAccepted { at, action, why } = &err else {
            panic!("expected InvalidActionAccepted, got {err:?}");
        };
        assert_eq!(at, "step 1 of episode 0");
        // At the first step, dimension 0 forbids one value; the refused action uses it.
        assert!(
            why.starts_with("the current action mask forbids value ")
                && why.ends_with(" of dimension 0"),
            "{why}"
        );
        assert!(action.starts_with("action "), "{action}");
        let e = err.to_string();
        assert!(
            e.starts_with("step 1 of episode 0 accepted the invalid action "),
            "{e}"
        );
        assert!(e.contains("the current action mask forbids value"), "{e}");
        assert!(
            e.ends_with(
                "step must return an error (EnvError::InvalidAction or \
                 EnvError::ActionOutsideSpace) for it"
            ),
            "{e}"
        );
    }
}

#[test]
fn invalid_box_bounds_are_reported() {
    let with_bounds = |low: Vec<f32>, high: Vec<f32>| {
        let mut env = Torque::new(BoxFault::None);
        env.actions = ActionSpace::Box(BoxSpace {
            shape: vec![2],
            low,
            high,
        });
        check_env(&mut env).unwrap_err()
    };
    let cases = [
        (
            with_bounds(vec![-1.0, 1.0], vec![1.0, 0.5]),
            "the action Box's bounds of element 1 are [1, 0.5]; they must not be NaN, with low \
             <= high and a finite value between them",
        ),
        (
            with_bounds(vec![f32::INFINITY, 0.0], vec![f32::INFINITY, 2.0]),
            "the action Box's bounds of element 0 are [inf, inf]; they must not be NaN, with \
             low <= high and a finite value between them",
        ),
        (
            with_bounds(vec![-1.0, f32::NAN], vec![1.0, 2.0]),
            "the action Box's bounds of element 1 are [NaN, 2]; they must not be NaN, with low \
             <= high and a finite value between them",
        ),
        (
            with_bounds(vec![-1.0], vec![1.0, 2.0]),
            "the action Box has shape [2] (2 elements) but 1 lower and 2 upper bounds",
        ),
    ];
    for (err, detail) in cases {
        assert_eq!(err, CheckError::ActionSpace(detail.to_string()));
        assert_eq!(
            err.to_string(),
            format!("the action space is invalid: {detail}")
        );
    }
}

#[test]
fn a_discrete_space_without_values_is_reported() {
    let err = check_env(&mut Picker::new(
        ActionSpace::multi_discrete(vec![3, 0]),
        MaskFault::None,
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the action space is invalid: MultiDiscrete([3, 0]): dimension 1 has 0 values; each \
         needs at least one"
    );
    assert!(matches!(err, CheckError::ActionSpace(_)));
    let err = check_env(&mut Picker::new(
        ActionSpace::multi_discrete(vec![]),
        MaskFault::None,
    ))
    .unwrap_err();
    assert_eq!(
        err,
        CheckError::ActionSpace("MultiDiscrete([]) has no dimensions".to_string())
    );
    let err = check_env(&mut Picker::new(ActionSpace::discrete(0), MaskFault::None)).unwrap_err();
    assert_eq!(err, CheckError::NoActions);
}

#[test]
fn a_continuous_env_that_accepts_out_of_bounds_actions_is_reported() {
    let err = check_env(&mut Torque::new(BoxFault::AcceptsOutOfBounds)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "step 1 of episode 0 accepted the invalid action [3.0, 0.0]: action element 0 is 3, \
         outside [-1, 1]; step must return an error (EnvError::InvalidAction or \
         EnvError::ActionOutsideSpace) for it"
    );
    assert!(matches!(err, CheckError::InvalidActionAccepted { .. }));
    // Bounds checked with `<` and `>` let NaN through.
    let err = check_env(&mut Torque::new(BoxFault::AcceptsNan)).unwrap_err();
    let CheckError::InvalidActionAccepted { at, action, why } = &err else {
        panic!("expected InvalidActionAccepted, got {err:?}");
    };
    assert_eq!(at, "step 1 of episode 0");
    assert_eq!(action, "action [NaN, 0.0]");
    assert_eq!(why, "action element 0 is NaN, outside [-1, 1]");
}

#[test]
fn a_mask_on_a_box_space_is_reported() {
    assert_bad_mask(
        &mut Torque::new(BoxFault::MaskOnBox),
        "the action mask after reset(seed = ",
        "the env gives a mask of 2 flags, but its Box(shape [2]) action space cannot be \
             masked (action_mask must return None)",
    );
}

#[test]
fn an_unbounded_box_action_space_passes_and_still_refuses_non_finite_actions() {
    let mut env = Torque::new(BoxFault::None);
    // Unbounded force; a brake bounded below only.
    env.actions = ActionSpace::Box(BoxSpace {
        shape: vec![2],
        low: vec![f32::NEG_INFINITY, 0.0],
        high: vec![f32::INFINITY, f32::INFINITY],
    });
    let report = check_env(&mut env).unwrap();
    assert_eq!(report.action_space, env.actions);
    // An env whose bound checks let non-finite values through is still caught on an
    // unbounded space (infinity is within [−∞, ∞] by comparison, but not an action).
    let mut leaky = Torque::new(BoxFault::AcceptsNan);
    leaky.actions = env.actions.clone();
    let err = check_env(&mut leaky).unwrap_err();
    assert!(
        matches!(err, CheckError::InvalidActionAccepted { ref why, .. } if why.contains("is inf")),
        "{err}"
    );
}
