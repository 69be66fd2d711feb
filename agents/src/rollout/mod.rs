//! The algorithm-independent half of on-policy learning, shared by every learner
//! ([`crate::learner::Learner`]): rollout collection, the rollout buffer, reward and observation
//! normalisers, GAE, the minibatch helpers and the collective operations of data-parallel
//! training.
//!
//! - [`collect_rollout`]: `T` steps of `N` envs, one batched `policy.step` per step on a
//!   non-autodiff copy of the model, actions sampled on the host from a seeded ChaCha8 RNG,
//!   memory reset per env at episode starts; the memory each env *started* the rollout with
//!   is kept in the [`RolloutBuffer`]; `V(final_obs)` is computed for truncated episodes.
//!   Rewards are scaled by a running std of the discounted return and observations optionally
//!   normalised ([`normalize`]).
//! - [`compute_gae`]: GAE(γ, λ), bootstrapping on `truncated` and not on `terminated`.
//! - [`minibatch`]: shuffled minibatches of whole env sequences and global-norm gradient
//!   clipping.

pub mod buffer;
pub mod collect;
pub mod collective;
pub mod gae;
pub mod minibatch;
pub mod normalize;

use thiserror::Error;

pub use buffer::RolloutBuffer;
pub use collect::{FinishedEpisode, RolloutState, collect_rollout, collect_rollout_until};
pub use collective::Collective;
pub use gae::{GaeInputs, compute_gae, explained_variance};
pub use minibatch::{SequenceBatch, clip_grad_norm, mean_std, shuffled_minibatches};
pub use normalize::{ObsNormalizer, RewardNormalizer, RunningMeanStd};

/// Errors of rollout collection.
#[derive(Debug, Error)]
pub enum RolloutError {
    /// A rollout setting has a value the collection cannot use.
    #[error("invalid config `{key}`: {reason}")]
    InvalidConfig {
        /// Full key of the field, e.g. `ppo.seq_len`.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The environments reported an error (its message is this error's; it is not repeated
    /// as a source).
    #[error("environment error: {0}")]
    Env(envs::EnvError),
    /// A tensor could not be read back to the host, or the policy does not fit the envs.
    #[error("tensor read-back failed: {0}")]
    Tensor(String),
}

impl From<envs::EnvError> for RolloutError {
    fn from(e: envs::EnvError) -> Self {
        Self::Env(e)
    }
}

/// The reward and observation normalisation a learner asks the rollout for (the keys of its
/// config section: `norm_reward`, `reward_clip`, `norm_obs`, `obs_clip`, and `gamma` for the
/// discounted return the reward scale follows).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RolloutSettings {
    /// Discount factor γ of the return whose running std scales the rewards.
    pub gamma: f32,
    /// Divide rewards by a running std of the discounted return.
    pub norm_reward: bool,
    /// Scaled rewards are clipped to `±reward_clip`.
    pub reward_clip: f32,
    /// Normalise observations with a running mean and variance.
    pub norm_obs: bool,
    /// Normalised observations are clipped to `±obs_clip`.
    pub obs_clip: f32,
}

impl RolloutSettings {
    /// A fresh reward normaliser for `num_envs` envs, when `norm_reward` is on.
    pub fn reward_normalizer(&self, num_envs: usize) -> Option<RewardNormalizer> {
        self.norm_reward
            .then(|| RewardNormalizer::new(num_envs, self.gamma, self.reward_clip))
    }

    /// A fresh observation normaliser for observations of `obs_dim`, when `norm_obs` is on.
    pub fn obs_normalizer(&self, obs_dim: usize) -> Option<ObsNormalizer> {
        self.norm_obs
            .then(|| ObsNormalizer::new(obs_dim, self.obs_clip))
    }
}
