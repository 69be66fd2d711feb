//! The algorithm seam: a [`Learner`] turns a collected rollout into an update of the policy.
//!
//! The trainer owns everything algorithm-independent (envs, [`crate::rollout`] collection,
//! metrics rows, checkpoints, signals); a learner owns its hyperparameters, its loss and
//! optimizer steps, its own metrics columns and its own checkpoint state. PPO
//! ([`crate::ppo::PpoLearner`]) and IMPALA's V-trace actor-critic
//! ([`crate::vtrace::VtraceLearner`]) are the two learners.
//!
//! One update, as the trainer drives it:
//! ```text
//! acting = learner.acting_policy(&model)                  (non-autodiff; may lag behind)
//! buffer = collect_rollout(acting, envs, state, T, learner.seq_len())
//! model, stats = learner.update(model, optim, buffer, UpdateInput { lr, rng, … })
//! row ← stats (common columns) + stats.columns (learner.metric_columns())
//! ```

use burn::module::Module;
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

use crate::policy::Policy;
use crate::rollout::{RolloutBuffer, RolloutError, RolloutSettings};

/// The most learner-specific metrics columns a learner may declare.
pub const MAX_LEARNER_COLUMNS: usize = 4;

/// Errors of a learner's update.
#[derive(Debug, Error)]
pub enum LearnerError {
    /// A hyperparameter has a value the learner cannot use.
    #[error("invalid config `{key}`: {reason}")]
    InvalidConfig {
        /// Full key of the field, e.g. `ppo.learning_rate`.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A loss or the gradient norm became NaN or infinite.
    #[error(
        "non-finite {quantity} ({value}) in update {update}; stopping before the optimizer step"
    )]
    NonFinite {
        /// Index of the update (0-based).
        update: usize,
        /// Which quantity: `loss` or `gradient norm`.
        quantity: &'static str,
        /// The offending value.
        value: f32,
    },
    /// The caller asked the update to stop (a signal), before its next minibatch.
    #[error("stopped during update {update}, before its optimizer steps were all taken")]
    Interrupted {
        /// Index of the update (1-based, as counted by the trainer).
        update: usize,
    },
    /// The environments reported an error (its message is this error's; it is not repeated
    /// as a source).
    #[error("environment error: {0}")]
    Env(envs::EnvError),
    /// A tensor could not be read back to the host.
    #[error("tensor read-back failed: {0}")]
    Tensor(String),
    /// The learner's checkpoint state is missing or unreadable.
    #[error("learner checkpoint state: {0}")]
    State(String),
}

impl From<envs::EnvError> for LearnerError {
    fn from(e: envs::EnvError) -> Self {
        Self::Env(e)
    }
}

impl From<RolloutError> for LearnerError {
    fn from(e: RolloutError) -> Self {
        match e {
            RolloutError::InvalidConfig { key, reason } => Self::InvalidConfig { key, reason },
            RolloutError::Env(e) => Self::Env(e),
            RolloutError::Tensor(m) => Self::Tensor(m),
        }
    }
}

/// What an update gets from the trainer besides the policy, its optimizer and the rollout.
pub struct UpdateInput<'a> {
    /// Learning rate of this update ([`Learner::learning_rate_at`]).
    pub lr: f64,
    /// The run's sampling / shuffling RNG (minibatch order).
    pub rng: &'a mut ChaCha8Rng,
    /// The autodiff device the policy trains on.
    pub device: &'a Device,
    /// Index of this update (1-based), for error messages.
    pub update: usize,
    /// Asked before every minibatch; once it says yes the update ends with
    /// [`LearnerError::Interrupted`].
    pub should_stop: &'a dyn Fn() -> bool,
}

/// Diagnostics of one update: the columns every actor-critic learner has, and the learner's
/// own ([`Learner::metric_columns`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LearnerStats {
    /// Policy-gradient loss.
    pub policy_loss: f32,
    /// Value (baseline) loss.
    pub value_loss: f32,
    /// Entropy of the policy, nats.
    pub entropy: f32,
    /// Explained variance of the rollout's value estimates w.r.t. the value targets.
    pub explained_var: f32,
    /// Global gradient L2 norm before clipping (mean over minibatches).
    pub grad_norm: f32,
    /// The learner's own diagnostics, in the order of [`Learner::metric_columns`].
    pub columns: Vec<f64>,
}

/// Reads a file of a checkpoint by name: its bytes, `None` when the checkpoint lacks it, or
/// why it cannot be read.
pub type ReadCheckpointFile<'a> = dyn FnMut(&str) -> Result<Option<Vec<u8>>, String> + 'a;

/// The hyperparameters every learner's config has, under the same names in its own section
/// (`[ppo]`, `[vtrace]`); `learner_settings!` reads them
/// from a config.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LearnerSettings {
    /// Adam learning rate (initial value when `anneal_lr` is on).
    pub learning_rate: f64,
    /// Anneal the learning rate linearly from `learning_rate` to 0 over the run.
    pub anneal_lr: bool,
    /// Adam ε.
    pub adam_eps: f32,
    /// Length of the sequences the update replays (`None`: whole rollouts).
    pub seq_len: Option<usize>,
    /// Number of minibatches per epoch.
    pub num_minibatches: usize,
    /// The reward and observation normalisation of the rollout.
    pub rollout: RolloutSettings,
}

/// The [`LearnerSettings`] of a learner's config: its fields of the same names (the configs
/// are separate structs, each its own TOML section that refuses unknown keys, so the shared
/// fields are named here once rather than nested).
macro_rules! learner_settings {
    ($cfg:expr) => {
        $crate::learner::LearnerSettings {
            learning_rate: $cfg.learning_rate,
            anneal_lr: $cfg.anneal_lr,
            adam_eps: $cfg.adam_eps,
            seq_len: $cfg.seq_len,
            num_minibatches: $cfg.num_minibatches,
            rollout: $crate::rollout::RolloutSettings {
                gamma: $cfg.gamma,
                norm_reward: $cfg.norm_reward,
                reward_clip: $cfg.reward_clip,
                norm_obs: $cfg.norm_obs,
                obs_clip: $cfg.obs_clip,
            },
        }
    };
}
pub(crate) use learner_settings;

/// One learning algorithm over the shared rollout machinery (see the module docs).
pub trait Learner {
    /// The algorithm's name as the config and the CLI spell it (`ppo`, `vtrace`).
    fn name(&self) -> &'static str;

    /// The names of the learner's own metrics columns (at most [`MAX_LEARNER_COLUMNS`]), in
    /// the order of [`LearnerStats::columns`]; `metrics.csv` has them between `entropy` and
    /// `explained_var`.
    fn metric_columns(&self) -> &'static [&'static str];

    /// Checks every hyperparameter; the error names the first offending key as
    /// `<name>.<field>`.
    fn validate(&self) -> Result<(), LearnerError>;

    /// The settings every learner's config has under the same names.
    fn settings(&self) -> LearnerSettings;

    /// The length of the sequences the update replays (`None`: whole rollouts).
    fn seq_len(&self) -> Option<usize> {
        self.settings().seq_len
    }

    /// The number of minibatches per epoch (must divide the number of sequences).
    fn num_minibatches(&self) -> usize {
        self.settings().num_minibatches
    }

    /// The reward and observation normalisation the rollout applies for this learner.
    fn rollout_settings(&self) -> RolloutSettings {
        self.settings().rollout
    }

    /// The learning rate of update `update` (0-based) of `num_updates`: linear decay to 0
    /// when `anneal_lr` is on ([`annealed_learning_rate`]), else constant.
    fn learning_rate_at(&self, update: usize, num_updates: usize) -> f64 {
        let s = self.settings();
        annealed_learning_rate(s.learning_rate, s.anneal_lr, update, num_updates)
    }

    /// A fresh optimizer for the policy: Adam with the config's ε ([`adam_with_eps`]).
    fn optimizer(&self) -> ModuleOptimizer {
        adam_with_eps(self.settings().adam_eps)
    }

    /// The (non-autodiff) policy the rollout acts with, given the current `model`: the model
    /// itself for an on-policy learner, an older copy for one that learns off-policy.
    fn acting_policy(&mut self, model: &Policy) -> Policy {
        model.valid()
    }

    /// Updates `model` from the rollout `buf` (its sequences replayed from their stored
    /// memories); returns the new model and the update's diagnostics. `model` is the model
    /// before the update, so that a learner may keep it (for a policy lag).
    fn update(
        &mut self,
        model: Policy,
        optim: &mut ModuleOptimizer,
        buf: &mut RolloutBuffer,
        input: UpdateInput<'_>,
    ) -> Result<(Policy, LearnerStats), LearnerError>;

    /// The learner's own checkpoint state, as files `(name, bytes)` written into the
    /// checkpoint folder (none by default).
    fn checkpoint_files(&self) -> Result<Vec<(String, Vec<u8>)>, LearnerError> {
        Ok(Vec::new())
    }

    /// Restores the state [`Learner::checkpoint_files`] saved: `read(name)` gives a file's
    /// bytes (`None` when the checkpoint lacks it); `model` is the checkpoint's model.
    fn restore_checkpoint(
        &mut self,
        read: &mut ReadCheckpointFile<'_>,
        model: &Policy,
    ) -> Result<(), LearnerError> {
        let _ = (read, model);
        Ok(())
    }
}

/// Adam with ε `eps` and no burn-side clipping (the learners clip the global norm themselves,
/// see [`crate::rollout::clip_grad_norm`]).
pub fn adam_with_eps(eps: f32) -> ModuleOptimizer {
    AdamConfig::new().with_epsilon(eps).init()
}

/// Linear decay of `lr` to 0 over `num_updates` when `anneal` (CleanRL:
/// `frac = 1 − update / num_updates`, `update` 0-based), else constant.
pub fn annealed_learning_rate(lr: f64, anneal: bool, update: usize, num_updates: usize) -> f64 {
    if anneal && num_updates > 0 {
        let frac = 1.0 - update as f64 / num_updates as f64;
        frac * lr
    } else {
        lr
    }
}

/// The weights of `policy` as burnpack bytes (for a learner's checkpoint state).
pub fn policy_weights(policy: &Policy) -> Result<Vec<u8>, LearnerError> {
    policy
        .clone()
        .into_record()
        .into_bytes()
        .map(|b| b.to_vec())
        .map_err(|e| LearnerError::State(format!("cannot serialise the weights: {e}")))
}

/// `policy` with the weights `bytes` written by [`policy_weights`].
pub fn load_policy_weights_from(policy: Policy, bytes: Vec<u8>) -> Result<Policy, LearnerError> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| LearnerError::State(format!("unreadable weights: {e}")))?;
    policy
        .try_load_record(record)
        .map_err(|e| LearnerError::State(format!("cannot load weights: {e}")))
}
