//! The environment contract: spaces, [`Env`], [`Step`] and episode statistics.
//!
//! Observations are flat `f32` vectors written into a caller-provided slice, so a
//! [`crate::VecEnv`] can hand out one contiguous `[num_envs × obs_dim]` buffer without
//! copying or allocating per step.

use std::fmt;

use thiserror::Error;

/// A box of real-valued observations: a shape and per-element bounds (flattened, row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct BoxSpace {
    /// Shape of one observation; the flat length is the product.
    pub shape: Vec<usize>,
    /// Lower bound per element (length = flat length).
    pub low: Vec<f32>,
    /// Upper bound per element (length = flat length).
    pub high: Vec<f32>,
}

impl BoxSpace {
    /// A 1-D box of `len` elements, all within `[low, high]`.
    pub fn uniform(len: usize, low: f32, high: f32) -> Self {
        Self {
            shape: vec![len],
            low: vec![low; len],
            high: vec![high; len],
        }
    }

    /// Number of `f32` values in one observation.
    pub fn flat_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// `Ok` when `obs` has the box's flat length, else [`EnvError::ObsBufferLength`] (for an
    /// env's `reset` / `step` to check the buffer it is given).
    pub fn check_buffer(&self, obs: &[f32]) -> Result<(), EnvError> {
        let expected = self.flat_len();
        if obs.len() != expected {
            return Err(EnvError::ObsBufferLength {
                got: obs.len(),
                expected,
            });
        }
        Ok(())
    }

    /// Whether `x` lies in the box (right length, finite, within bounds).
    pub fn contains(&self, x: &[f32]) -> bool {
        x.len() == self.flat_len()
            && x.iter()
                .zip(self.low.iter().zip(&self.high))
                .all(|(v, (lo, hi))| v.is_finite() && *v >= *lo && *v <= *hi)
    }
}

/// A discrete action space `{0, 1, …, n − 1}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Discrete {
    /// Number of actions.
    pub n: usize,
}

/// Several discrete choices made at once: dimension `k` takes a value in `0..nvec[k]`
/// (Gymnasium's `MultiDiscrete`, e.g. a move and a second choice).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultiDiscrete {
    /// Number of values of each dimension.
    pub nvec: Vec<usize>,
}

/// The actions an env accepts.
///
/// | space | [`Action`] | mask ([`Env::action_mask`]) |
/// |---|---|---|
/// | `Discrete(n)` | `Action::Discrete(a)`, `a < n` | `n` flags |
/// | `MultiDiscrete(nvec)` | `Action::MultiDiscrete(&[a_0, …])`, `a_k < nvec[k]` | `Σ nvec` flags, dimension after dimension |
/// | `Box(low, high, shape)` | `Action::Continuous(&[x, …])` within the bounds | none |
#[derive(Clone, Debug, PartialEq)]
pub enum ActionSpace {
    /// One choice among `n`.
    Discrete(Discrete),
    /// One choice per dimension.
    MultiDiscrete(MultiDiscrete),
    /// A vector of reals within per-element bounds (e.g. torques).
    Box(BoxSpace),
}

impl ActionSpace {
    /// `Discrete(n)`.
    pub fn discrete(n: usize) -> Self {
        ActionSpace::Discrete(Discrete { n })
    }

    /// `MultiDiscrete(nvec)`.
    pub fn multi_discrete(nvec: Vec<usize>) -> Self {
        ActionSpace::MultiDiscrete(MultiDiscrete { nvec })
    }

    /// A 1-D `Box` of `len` actions, each within `[low, high]`.
    pub fn continuous(len: usize, low: f32, high: f32) -> Self {
        ActionSpace::Box(BoxSpace::uniform(len, low, high))
    }

    /// Number of values in one action: 1 (`Discrete`), `nvec.len()`, or the box's flat length.
    pub fn action_width(&self) -> usize {
        match self {
            ActionSpace::Discrete(_) => 1,
            ActionSpace::MultiDiscrete(m) => m.nvec.len(),
            ActionSpace::Box(b) => b.flat_len(),
        }
    }

    /// Length of an action mask: `n`, `Σ nvec`, or `None` for a `Box` (continuous actions
    /// cannot be masked).
    pub fn mask_width(&self) -> Option<usize> {
        match self {
            ActionSpace::Discrete(d) => Some(d.n),
            ActionSpace::MultiDiscrete(m) => Some(m.nvec.iter().sum()),
            ActionSpace::Box(_) => None,
        }
    }

    /// The flags of each dimension in an action mask, dimension after dimension (one range
    /// for `Discrete`, none for a `Box`).
    pub fn mask_ranges(&self) -> Vec<std::ops::Range<usize>> {
        match self {
            ActionSpace::Discrete(d) => std::iter::once(0..d.n).collect(),
            ActionSpace::MultiDiscrete(m) => {
                let mut start = 0;
                m.nvec
                    .iter()
                    .map(|&n| {
                        start += n;
                        start - n..start
                    })
                    .collect()
            }
            ActionSpace::Box(_) => Vec::new(),
        }
    }

    /// What is wrong with `mask` as an action mask of this space, if anything: the space
    /// cannot be masked, the mask has the wrong length, or it forbids every value of a
    /// dimension.
    pub fn mask_problem(&self, mask: &[bool]) -> Option<MaskProblem> {
        let Some(width) = self.mask_width() else {
            return Some(MaskProblem::NotMaskable);
        };
        if mask.len() != width {
            return Some(MaskProblem::Length {
                got: mask.len(),
                want: width,
            });
        }
        self.mask_ranges()
            .into_iter()
            .position(|r| !mask[r].contains(&true))
            .map(|dim| MaskProblem::AllForbidden { dim })
    }

    /// The first dimension of `action` (an action of this space) whose value `mask` (a mask
    /// of this space) forbids, if any.
    pub fn forbidden_dim(&self, mask: &[bool], action: Action<'_>) -> Option<usize> {
        let values: &[usize] = match &action {
            Action::Discrete(a) => std::slice::from_ref(a),
            Action::MultiDiscrete(a) => a,
            Action::Continuous(_) => return None,
        };
        self.mask_ranges()
            .into_iter()
            .zip(values)
            .position(|(r, &v)| !mask[r.start + v])
    }

    /// Number of actions of a `Discrete` space, `None` for the others.
    pub fn num_discrete(&self) -> Option<usize> {
        match self {
            ActionSpace::Discrete(d) => Some(d.n),
            _ => None,
        }
    }

    /// Checks the space itself: at least one action per dimension, a non-empty box with
    /// bounds of the right length, none NaN, `low <= high` and a finite value between them
    /// (infinite bounds are allowed: an unbounded action). The error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            ActionSpace::Discrete(d) if d.n == 0 => {
                Err("Discrete(0) has no actions; it needs at least one".into())
            }
            ActionSpace::Discrete(_) => Ok(()),
            ActionSpace::MultiDiscrete(m) => {
                if m.nvec.is_empty() {
                    return Err("MultiDiscrete([]) has no dimensions".into());
                }
                match m.nvec.iter().position(|&n| n == 0) {
                    Some(k) => Err(format!(
                        "MultiDiscrete({:?}): dimension {k} has 0 values; each needs at least one",
                        m.nvec
                    )),
                    None => Ok(()),
                }
            }
            ActionSpace::Box(b) => {
                let len = b.flat_len();
                if len == 0 {
                    return Err(format!(
                        "the action Box has shape {:?}: no elements",
                        b.shape
                    ));
                }
                if b.low.len() != len || b.high.len() != len {
                    return Err(format!(
                        "the action Box has shape {:?} ({len} elements) but {} lower and {} \
                         upper bounds",
                        b.shape,
                        b.low.len(),
                        b.high.len()
                    ));
                }
                for (i, (&lo, &hi)) in b.low.iter().zip(&b.high).enumerate() {
                    if lo.is_nan()
                        || hi.is_nan()
                        || lo > hi
                        || lo == f32::INFINITY
                        || hi == f32::NEG_INFINITY
                    {
                        return Err(format!(
                            "the action Box's bounds of element {i} are [{lo}, {hi}]; they must \
                             not be NaN, with low <= high and a finite value between them"
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    /// Why `action` is not in the space, or `None` when it is (right kind, right length,
    /// every value in range, finite).
    pub fn why_outside(&self, action: Action<'_>) -> Option<String> {
        match (self, action) {
            (ActionSpace::Discrete(d), Action::Discrete(a)) => {
                (a >= d.n).then(|| format!("action {a} is not in Discrete({}) (0..{})", d.n, d.n))
            }
            (ActionSpace::MultiDiscrete(m), Action::MultiDiscrete(a)) => {
                if a.len() != m.nvec.len() {
                    return Some(format!(
                        "action {a:?} has {} values, MultiDiscrete({:?}) has {} dimensions",
                        a.len(),
                        m.nvec,
                        m.nvec.len()
                    ));
                }
                a.iter().zip(&m.nvec).position(|(&v, &n)| v >= n).map(|k| {
                    format!(
                        "action {a:?}: dimension {k} is {}, outside 0..{}",
                        a[k], m.nvec[k]
                    )
                })
            }
            (ActionSpace::Box(b), Action::Continuous(x)) => {
                if x.len() != b.flat_len() {
                    return Some(format!(
                        "action of {} values, the action Box has {}",
                        x.len(),
                        b.flat_len()
                    ));
                }
                x.iter()
                    .zip(b.low.iter().zip(&b.high))
                    .position(|(v, (lo, hi))| !(v.is_finite() && v >= lo && v <= hi))
                    .map(|i| {
                        format!(
                            "action element {i} is {}, outside [{}, {}]",
                            x[i], b.low[i], b.high[i]
                        )
                    })
            }
            (space, action) => Some(format!("{action} is not an action of {space}")),
        }
    }

    /// Whether `action` lies in the space.
    pub fn contains(&self, action: Action<'_>) -> bool {
        self.why_outside(action).is_none()
    }

    /// `Ok` when `action` lies in the space, else [`EnvError::InvalidAction`] for a discrete
    /// action out of range and [`EnvError::ActionOutsideSpace`] otherwise.
    pub fn check(&self, action: Action<'_>) -> Result<(), EnvError> {
        match (self, action) {
            (ActionSpace::Discrete(d), Action::Discrete(a)) if a >= d.n => {
                Err(EnvError::InvalidAction { action: a, n: d.n })
            }
            _ => match self.why_outside(action) {
                Some(reason) => Err(EnvError::ActionOutsideSpace(reason)),
                None => Ok(()),
            },
        }
    }
}

impl fmt::Display for ActionSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionSpace::Discrete(d) => write!(f, "Discrete({})", d.n),
            ActionSpace::MultiDiscrete(m) => write!(f, "MultiDiscrete({:?})", m.nvec),
            ActionSpace::Box(b) => {
                let same = |v: &[f32]| v.iter().all(|&x| x.to_bits() == v[0].to_bits());
                if !b.low.is_empty() && same(&b.low) && same(&b.high) {
                    write!(f, "Box({}, {}, shape {:?})", b.low[0], b.high[0], b.shape)
                } else {
                    write!(f, "Box(shape {:?})", b.shape)
                }
            }
        }
    }
}

/// What is wrong with an action mask ([`ActionSpace::mask_problem`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskProblem {
    /// The space is a `Box`: continuous actions cannot be masked.
    NotMaskable,
    /// The mask has `got` flags, the space needs `want`.
    Length {
        /// Flags in the mask.
        got: usize,
        /// [`ActionSpace::mask_width`].
        want: usize,
    },
    /// Every value of dimension `dim` is forbidden.
    AllForbidden {
        /// The dimension.
        dim: usize,
    },
}

impl fmt::Display for MaskProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaskProblem::NotMaskable => f.write_str("continuous actions cannot be masked"),
            MaskProblem::Length { got, want } => {
                write!(f, "it has {got} flags, the action space needs {want}")
            }
            MaskProblem::AllForbidden { dim } => {
                write!(f, "it forbids every value of dimension {dim}")
            }
        }
    }
}

/// One action, borrowed: what [`Env::step`] receives.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action<'a> {
    /// An action of a `Discrete` space.
    Discrete(usize),
    /// An action of a `MultiDiscrete` space: one value per dimension.
    MultiDiscrete(&'a [usize]),
    /// An action of a `Box` space.
    Continuous(&'a [f32]),
}

impl From<usize> for Action<'static> {
    fn from(a: usize) -> Self {
        Action::Discrete(a)
    }
}

impl<'a> From<&'a [usize]> for Action<'a> {
    fn from(a: &'a [usize]) -> Self {
        Action::MultiDiscrete(a)
    }
}

impl<'a> From<&'a [f32]> for Action<'a> {
    fn from(a: &'a [f32]) -> Self {
        Action::Continuous(a)
    }
}

impl<'a> Action<'a> {
    /// The index of a `Discrete` action below `n`; any other action is an error naming it
    /// (for envs with a `Discrete(n)` space: `let a = action.discrete(self.n)?;`).
    pub fn discrete(self, n: usize) -> Result<usize, EnvError> {
        ActionSpace::discrete(n).check(self)?;
        match self {
            Action::Discrete(a) => Ok(a),
            _ => unreachable!("check accepted only a discrete action"),
        }
    }

    /// The `dim` values of a continuous (`Box`) action, all finite; any other action is an
    /// error naming it (for envs with a `Box` action space of `dim` values:
    /// `let torque = action.continuous(1)?[0];`). Bounds are the env's to apply: the trainer
    /// clips sampled actions to the space's bounds before `step`.
    pub fn continuous(self, dim: usize) -> Result<&'a [f32], EnvError> {
        match self {
            Action::Continuous(x) if x.len() == dim && x.iter().all(|v| v.is_finite()) => Ok(x),
            Action::Continuous(x) if x.len() == dim => Err(EnvError::ActionOutsideSpace(format!(
                "continuous action {x:?} has a value that is not finite"
            ))),
            Action::Continuous(x) => Err(EnvError::ActionOutsideSpace(format!(
                "continuous action of {} values, the space has {dim}",
                x.len()
            ))),
            other => Err(EnvError::ActionOutsideSpace(format!(
                "{other:?} given to an env with continuous actions of {dim} values"
            ))),
        }
    }

    /// The values of a `MultiDiscrete(nvec)` action, each below its `nvec` entry; any other
    /// action is an error naming it.
    pub fn multi_discrete(self, nvec: &[usize]) -> Result<&'a [usize], EnvError> {
        match self {
            Action::MultiDiscrete(a) if a.len() == nvec.len() => {
                match a.iter().zip(nvec).position(|(v, n)| v >= n) {
                    None => Ok(a),
                    Some(i) => Err(EnvError::ActionOutsideSpace(format!(
                        "multi-discrete action {a:?}: value {} of dimension {i} is not below {}",
                        a[i], nvec[i]
                    ))),
                }
            }
            other => Err(EnvError::ActionOutsideSpace(format!(
                "{other:?} given to an env with MultiDiscrete({nvec:?}) actions"
            ))),
        }
    }
}

/// An owned [`Action`], e.g. to keep a sampled action.
#[derive(Clone, Debug, PartialEq)]
pub enum ActionBuf {
    /// An action of a `Discrete` space.
    Discrete(usize),
    /// An action of a `MultiDiscrete` space.
    MultiDiscrete(Vec<usize>),
    /// An action of a `Box` space.
    Continuous(Vec<f32>),
}

impl ActionBuf {
    /// The borrowed action.
    pub fn as_action(&self) -> Action<'_> {
        match self {
            ActionBuf::Discrete(a) => Action::Discrete(*a),
            ActionBuf::MultiDiscrete(a) => Action::MultiDiscrete(a),
            ActionBuf::Continuous(x) => Action::Continuous(x),
        }
    }
}

impl fmt::Display for ActionBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_action().fmt(f)
    }
}

impl fmt::Display for Action<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Discrete(a) => write!(f, "action {a}"),
            Action::MultiDiscrete(a) => write!(f, "action {a:?}"),
            Action::Continuous(x) => write!(f, "action {x:?}"),
        }
    }
}

/// Extra facts about a transition, beyond reward and the end flags.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Info {
    /// Set on the last step of an episode of a task with a success criterion
    /// (e.g. the cue-recall task: the right exit was taken).
    pub success: Option<bool>,
    /// The env's own named numbers for this step (e.g. a distance, an energy), up to
    /// [`MAX_INFO_SCALARS`]: the trainer averages each name over the steps of an update that
    /// report it, into `metrics.csv` (column `info/<name>`) and TensorBoard.
    pub scalars: InfoScalars,
    /// The env's named counts of this step (e.g. GridMaze's `goals`: 1 on the step that
    /// reaches the goal), up to [`MAX_INFO_SCALARS`]: [`EpisodeStats`] sums each name over the
    /// episode, and the trainer writes the mean per-episode total of each name the env
    /// declares ([`Env::episode_counts`]) into `metrics.csv` (column `<name>_mean`). Report a
    /// declared count on every step (0 when nothing happened), so that an episode without
    /// any still totals 0 rather than having no total.
    pub counts: InfoScalars,
}

/// Most named scalars one [`Info`] holds.
pub const MAX_INFO_SCALARS: usize = 8;

/// Named numbers: an env's scalars or counts of one step ([`Info::scalars`],
/// [`Info::counts`]) or an episode's count totals ([`EpisodeStats::counts`]); a fixed-size
/// list, so that stepping allocates nothing. Serialises as a map from name to value.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct InfoScalars {
    entries: [(&'static str, f32); MAX_INFO_SCALARS],
    len: usize,
}

impl InfoScalars {
    /// The `(name, value)` pairs, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, f32)> + '_ {
        self.entries[..self.len].iter().copied()
    }

    /// Number of scalars.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<f32> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Sets `name` to `value` (replacing an earlier value of that name).
    ///
    /// # Panics
    /// When `name` would be a scalar beyond the [`MAX_INFO_SCALARS`]th, or is not a name of
    /// letters, digits, `_`, `-` and `.` (it becomes a column name): both are bugs of the env,
    /// reported at its call site.
    pub fn set(&mut self, name: &'static str, value: f32) {
        *self.slot(name) = value;
    }

    /// Adds `value` to `name` (a name not yet present starts from 0); panics as
    /// [`InfoScalars::set`] does.
    pub fn add(&mut self, name: &'static str, value: f32) {
        *self.slot(name) += value;
    }

    /// The value of `name`, added as 0 if it is not present yet.
    fn slot(&mut self, name: &'static str) -> &mut f32 {
        if let Some(i) = self.entries[..self.len]
            .iter()
            .position(|(n, _)| *n == name)
        {
            return &mut self.entries[i].1;
        }
        assert!(
            is_column_name(name),
            "info name {name:?}: use letters, digits, `_`, `-` and `.`"
        );
        assert!(
            self.len < MAX_INFO_SCALARS,
            "info name {name:?}: an Info holds at most {MAX_INFO_SCALARS} named scalars or counts"
        );
        self.entries[self.len] = (name, 0.0);
        self.len += 1;
        &mut self.entries[self.len - 1].1
    }
}

/// Whether `name` can name an info scalar or count (it becomes part of a column name): not
/// empty, only ASCII letters, digits, `_`, `-` and `.`.
pub fn is_column_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

impl serde::Serialize for InfoScalars {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl Info {
    /// This info with the named scalar `name = value` (see [`InfoScalars::set`]).
    pub fn with_scalar(mut self, name: &'static str, value: f32) -> Self {
        self.scalars.set(name, value);
        self
    }

    /// This info with the named count `name = value` for this step (see [`Info::counts`]).
    pub fn with_count(mut self, name: &'static str, value: f32) -> Self {
        self.counts.set(name, value);
        self
    }
}

/// The outcome of one [`Env::step`]; the next observation is written into the caller's slice.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Step {
    /// Reward for this transition.
    pub reward: f32,
    /// The episode reached a real end (no bootstrapping past it).
    pub terminated: bool,
    /// The episode was cut by a time limit (bootstrap from the final observation).
    pub truncated: bool,
    /// Extra facts about the transition.
    pub info: Info,
}

impl Step {
    /// The episode is over, for either reason.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }

    /// Ends the episode on a success or a failure (the tasks with a right and a wrong end):
    /// terminated, `success` in its info, and the reward of that outcome added.
    pub fn terminate_with(&mut self, success: bool, success_reward: f32, failure_reward: f32) {
        self.reward += if success {
            success_reward
        } else {
            failure_reward
        };
        self.terminated = true;
        self.info.success = Some(success);
    }
}

/// Statistics of one finished episode.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpisodeStats {
    /// Sum of rewards.
    pub ret: f32,
    /// Number of steps.
    pub length: u32,
    /// Totals over the episode of the env's named counts ([`Info::counts`]), by name, in the
    /// order they were first reported.
    pub counts: InfoScalars,
    /// Success flag reported on the last step, for tasks that have one.
    pub success: Option<bool>,
    /// Ended by the time limit rather than a real termination.
    pub truncated: bool,
}

/// Errors an environment reports instead of panicking.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EnvError {
    /// A configuration field has a value the env cannot use.
    #[error("invalid config `{field}`: {reason}")]
    InvalidConfig {
        /// Name of the configuration field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The action is outside the action space.
    #[error("invalid action {action}: the action space has {n} actions (0..{n})")]
    InvalidAction {
        /// The action that was passed.
        action: usize,
        /// Size of the action space.
        n: usize,
    },
    /// The action is not one of the action space (wrong kind or length, a value out of
    /// range or bounds, or an action the current mask forbids), in words.
    #[error("invalid action: {0}")]
    ActionOutsideSpace(String),
    /// `step` was called after the episode ended, without a `reset`.
    #[error("step called after the episode ended; call reset first")]
    StepAfterDone,
    /// `step` was called before the first `reset`.
    #[error("step called before reset")]
    NotReset,
    /// The observation buffer passed in has the wrong length.
    #[error("observation buffer has length {got}, expected {expected}")]
    ObsBufferLength {
        /// Length of the buffer passed in.
        got: usize,
        /// Length of one observation.
        expected: usize,
    },
    /// Any other problem, in words.
    #[error("{0}")]
    Other(String),
}

/// A reinforcement-learning environment with a flat `f32` observation and an action of any
/// [`ActionSpace`]: `Discrete`, `MultiDiscrete` or `Box`, optionally with an action mask.
///
/// Implement this trait to plug your own task into vectorisation, PPO training, evaluation
/// and plotting. Run [`crate::check_env`] on it first: it tells you in words what is wrong.
///
/// Contract (as in Gymnasium):
/// - `reset(seed, obs)` starts a new episode; the same seed gives the same episode.
/// - `step(action, obs)` advances one step. `terminated` is a real end, `truncated` a time
///   limit. After either, `step` returns [`EnvError::StepAfterDone`] until the next `reset`.
/// - Invalid actions return [`EnvError::InvalidAction`] or [`EnvError::ActionOutsideSpace`]
///   ([`ActionSpace::check`] does it); nothing panics. An env with a mask also refuses the
///   actions its current mask forbids.
/// - The env owns its RNG; it is seeded by `reset`.
pub trait Env: Send {
    /// The observation space; every observation written must lie in it.
    fn observation_space(&self) -> &BoxSpace;

    /// The action space.
    fn action_space(&self) -> ActionSpace;

    /// Starts a new episode seeded by `seed` and writes its first observation into `obs`
    /// (length [`BoxSpace::flat_len`]).
    fn reset(&mut self, seed: u64, obs: &mut [f32]) -> Result<(), EnvError>;

    /// Advances one step with `action` and writes the next observation into `obs`.
    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step, EnvError>;

    /// The actions allowed in the current state (after the last `reset` or `step`), for
    /// `Discrete` and `MultiDiscrete` spaces: one flag per action value, `true` = allowed
    /// ([`ActionSpace::mask_width`] flags; for `MultiDiscrete` the dimensions' flags one after
    /// the other). `None` (the default): every action is allowed. Policies never sample a
    /// forbidden action; each dimension needs at least one allowed value.
    fn action_mask(&self) -> Option<&[bool]> {
        None
    }

    /// A text picture of the current state, if the env can draw one.
    fn render_ascii(&self) -> Option<String> {
        None
    }

    /// An RGB picture of the current state, if the env can draw one.
    fn render_rgb(&self) -> Option<crate::render::Frame> {
        None
    }

    /// Where the agent is drawn in [`Env::render_rgb`]'s picture, if the env can say:
    /// `[x, y, width, height]` in pixels. Renderers use it to mark where past steps happened
    /// (e.g. the steps an attention policy attends to).
    fn agent_rect(&self) -> Option<[usize; 4]> {
        None
    }

    /// Whether a resumed run may rebuild this env's episode in progress by resetting it with
    /// the episode's seed and replaying its actions ([`crate::VecEnv::restore`]): `true` (the
    /// default) for an env that is deterministic given its reset seed and actions. An env that
    /// says `false` (one whose state cannot be saved and whose replay cannot be vouched for,
    /// such as an env in Python) has its episode in progress dropped when a run resumes, and
    /// starts its next episode instead ([`crate::VecEnv::restart`]).
    fn resumes_by_replay(&self) -> bool {
        true
    }

    /// The names of the counts this env reports in [`Info::counts`] (e.g. GridMaze's
    /// `["goals"]`), declared up front so that `metrics.csv` has a column `<name>_mean` for each
    /// from its first row on. Default: none. Counts an env reports without declaring them
    /// are still summed in [`EpisodeStats::counts`] and evaluations, but get no column;
    /// [`crate::check_env`] reports them.
    fn episode_counts(&self) -> &'static [&'static str] {
        &[]
    }

    /// A short name used in run directories and plot titles.
    fn name(&self) -> String {
        "custom".to_string()
    }
}

impl<E: Env + ?Sized> Env for Box<E> {
    fn observation_space(&self) -> &BoxSpace {
        (**self).observation_space()
    }
    fn action_space(&self) -> ActionSpace {
        (**self).action_space()
    }
    fn reset(&mut self, seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
        (**self).reset(seed, obs)
    }
    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step, EnvError> {
        (**self).step(action, obs)
    }
    fn action_mask(&self) -> Option<&[bool]> {
        (**self).action_mask()
    }
    fn render_ascii(&self) -> Option<String> {
        (**self).render_ascii()
    }
    fn render_rgb(&self) -> Option<crate::render::Frame> {
        (**self).render_rgb()
    }
    fn agent_rect(&self) -> Option<[usize; 4]> {
        (**self).agent_rect()
    }
    fn resumes_by_replay(&self) -> bool {
        (**self).resumes_by_replay()
    }
    fn episode_counts(&self) -> &'static [&'static str] {
        (**self).episode_counts()
    }
    fn name(&self) -> String {
        (**self).name()
    }
}

/// Convenience wrappers that allocate the observation: `reset_vec` and `step_vec`.
pub trait EnvExt: Env {
    /// `reset` returning a fresh observation vector.
    fn reset_vec(&mut self, seed: u64) -> Result<Vec<f32>, EnvError> {
        let mut obs = vec![0.0; self.observation_space().flat_len()];
        self.reset(seed, &mut obs)?;
        Ok(obs)
    }

    /// `step` returning `(obs, step)`; takes anything that converts into an [`Action`]
    /// (`usize`, `&[usize]`, `&[f32]`).
    fn step_vec<'a>(
        &mut self,
        action: impl Into<Action<'a>>,
    ) -> Result<(Vec<f32>, Step), EnvError> {
        let mut obs = vec![0.0; self.observation_space().flat_len()];
        let s = self.step(action.into(), &mut obs)?;
        Ok((obs, s))
    }
}

impl<E: Env + ?Sized> EnvExt for E {}

impl EpisodeStats {
    /// Adds one step to the running statistics of an episode whose length is now `t` steps:
    /// its reward and counts; on its last step also whether it was truncated and its success.
    pub fn record(&mut self, step: &Step, t: u32) {
        self.ret += step.reward;
        self.length = t;
        for (name, value) in step.info.counts.iter() {
            self.counts.add(name, value);
        }
        self.truncated = step.truncated;
        if step.done() {
            self.success = step.info.success;
        }
    }

    /// The episode's total of the count `name` ([`Info::counts`]); `None` when no step
    /// reported it.
    pub fn count(&self, name: &str) -> Option<f32> {
        self.counts.get(name)
    }
}

impl fmt::Display for EpisodeStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "return {:.3}, length {}", self.ret, self.length)?;
        for (name, total) in self.counts.iter() {
            write!(f, ", {name} {total}")?;
        }
        if let Some(s) = self.success {
            write!(f, ", success {s}")?;
        }
        Ok(())
    }
}

/// Derives a per-env seed from a base seed and an env index (SplitMix64 of both), so that a
/// vectorised run does not depend on thread scheduling and nearby indices are uncorrelated.
pub fn derive_seed(base_seed: u64, index: u64) -> u64 {
    let mut z = base_seed
        ^ index
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
