//! PPO with memory, to the standard of CleanRL's `ppo_atari_lstm.py` / `ppo_trxl.py`.
//!
//! One update reads top to bottom:
//! 1. [`collect_rollout`]: `T` steps of `N` envs, one batched `policy.step` per step on a
//!    non-autodiff copy of the model, actions sampled on the host from a seeded ChaCha8 RNG,
//!    memory reset per env at episode starts; the memory each env *started* the rollout with
//!    is kept in the [`RolloutBuffer`]; `V(final_obs)` is computed for truncated episodes.
//!    Rewards are scaled by a running std of the discounted return and observations optionally
//!    normalised ([`normalize`]).
//! 2. [`RolloutBuffer::compute_advantages`]: GAE(γ, λ), bootstrapping on `truncated` and not
//!    on `terminated` ([`compute_gae`]).
//! 3. [`ppo_update`]: epochs × minibatches of whole env sequences recomputed with
//!    `forward_sequence` from their starting memory; clipped surrogate, clipped value loss,
//!    entropy bonus, per-minibatch advantage normalisation, global grad-norm clipping, Adam.

pub mod buffer;
pub mod collective;
pub mod config;
pub mod gae;
pub mod normalize;
pub mod rollout;
pub mod update;

use burn::optim::{AdamConfig, ModuleOptimizer};
use thiserror::Error;

pub use crate::distribution::sample_categorical;
pub use buffer::RolloutBuffer;
pub use collective::Collective;
pub use config::PpoConfig;
pub use gae::{GaeInputs, compute_gae, explained_variance};
pub use normalize::{ObsNormalizer, RewardNormalizer, RunningMeanStd};
pub use rollout::{FinishedEpisode, RolloutState, collect_rollout, collect_rollout_until};
pub use update::{
    UpdatePlan, UpdateStats, clip_grad_norm, ppo_update, ppo_update_with, shuffled_minibatches,
};

/// Errors of the PPO machinery.
#[derive(Debug, Error)]
pub enum PpoError {
    /// A hyperparameter has a value PPO cannot use.
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
    /// The environments reported an error.
    #[error("environment error: {0}")]
    Env(#[from] envs::EnvError),
    /// A tensor could not be read back to the host.
    #[error("tensor read-back failed: {0}")]
    Tensor(String),
}

/// The Adam optimizer PPO uses (ε from the config; no burn-side clipping: PPO clips the
/// global norm itself, see [`clip_grad_norm`]).
pub fn adam(cfg: &PpoConfig) -> ModuleOptimizer {
    AdamConfig::new().with_epsilon(cfg.adam_eps).init()
}
