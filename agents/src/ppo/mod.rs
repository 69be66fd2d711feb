//! PPO with memory, to the standard of CleanRL's `ppo_atari_lstm.py` / `ppo_trxl.py`.
//!
//! One update reads top to bottom:
//! 1. [`collect_rollout`] (in [`crate::rollout`], shared with the other learners): `T` steps of `N` envs, one batched `policy.step` per step on a
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

pub mod config;
pub mod update;

// The rollout machinery PPO runs on lives in `crate::rollout` (shared with the other
// learners); its modules and items stay reachable under `ppo::` as before.
pub use crate::distribution::sample_categorical;
pub use crate::rollout::collect as rollout;
pub use crate::rollout::{
    Collective, FinishedEpisode, GaeInputs, ObsNormalizer, RewardNormalizer, RolloutBuffer,
    RolloutState, RunningMeanStd, clip_grad_norm, collect_rollout, collect_rollout_until,
    compute_gae, explained_variance, shuffled_minibatches,
};
pub use crate::rollout::{buffer, collective, gae, normalize};
pub use config::PpoConfig;
pub use update::{UpdatePlan, UpdateStats, ppo_update, ppo_update_with};

use burn::optim::ModuleOptimizer;

use crate::learner::{
    Learner, LearnerSettings, LearnerStats, UpdateInput, adam_with_eps, learner_settings,
};
use crate::policy::Policy;

/// Errors of the PPO machinery: the learners' errors ([`crate::learner::LearnerError`]).
pub type PpoError = crate::learner::LearnerError;

/// The Adam optimizer PPO uses (ε from the config; no burn-side clipping: PPO clips the
/// global norm itself, see [`clip_grad_norm`]).
pub fn adam(cfg: &PpoConfig) -> ModuleOptimizer {
    adam_with_eps(cfg.adam_eps)
}

/// PPO's own metrics columns: the approximate KL and the fraction of clipped ratios.
pub const PPO_COLUMNS: &[&str] = &["approx_kl", "clip_frac"];

/// PPO as a [`Learner`]: GAE on the rollout, then [`ppo_update`].
#[derive(Clone, Debug)]
pub struct PpoLearner {
    /// The hyperparameters.
    pub cfg: PpoConfig,
}

impl PpoLearner {
    /// A learner with the hyperparameters `cfg`.
    pub fn new(cfg: PpoConfig) -> Self {
        Self { cfg }
    }
}

impl Learner for PpoLearner {
    fn name(&self) -> &'static str {
        "ppo"
    }

    fn metric_columns(&self) -> &'static [&'static str] {
        PPO_COLUMNS
    }

    fn validate(&self) -> Result<(), PpoError> {
        self.cfg.validate()
    }

    fn settings(&self) -> LearnerSettings {
        learner_settings!(self.cfg)
    }

    fn update(
        &mut self,
        model: Policy,
        optim: &mut ModuleOptimizer,
        buf: &mut RolloutBuffer,
        input: UpdateInput<'_>,
    ) -> Result<(Policy, LearnerStats), PpoError> {
        buf.compute_advantages(self.cfg.gamma, self.cfg.gae_lambda);
        let (model, s) = ppo_update(
            model,
            optim,
            buf,
            &self.cfg,
            input.lr,
            input.rng,
            input.device,
            input.update,
            input.should_stop,
        )?;
        Ok((model, s.into()))
    }
}

impl From<UpdateStats> for LearnerStats {
    fn from(s: UpdateStats) -> Self {
        Self {
            policy_loss: s.policy_loss,
            value_loss: s.value_loss,
            entropy: s.entropy,
            explained_var: s.explained_var,
            grad_norm: s.grad_norm,
            columns: vec![f64::from(s.approx_kl), f64::from(s.clip_frac)],
        }
    }
}
