//! [`PpoConfig`]: the PPO hyperparameters (CleanRL `ppo_atari_lstm` defaults, plus return
//! normalisation).

use serde::{Deserialize, Serialize};

use super::PpoError;

/// The most epochs over a rollout that an update may take (CleanRL uses 4 to 10): a bound on
/// the time of one update, which is where a run is slowest to answer a stop signal.
pub const MAX_UPDATE_EPOCHS: usize = 1000;
/// PPO hyperparameters. Defaults follow CleanRL's `ppo_atari_lstm.py`, with an entropy
/// coefficient of 0.01, and reward scaling on (`norm_reward`, as CleanRL's continuous PPO and
/// SB3's `VecNormalize`) so that the same defaults learn whatever the env's reward scale.
///
/// Rollout sizes (`num_envs`, `num_steps`) live in the training config: they are shared with
/// the environment side. A minibatch is `num_envs / num_minibatches` whole env sequences of
/// `num_steps` steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PpoConfig {
    /// Adam learning rate (initial value when `anneal_lr` is on).
    pub learning_rate: f64,
    /// Anneal the learning rate linearly from `learning_rate` to 0 over the run.
    pub anneal_lr: bool,
    /// Discount factor γ.
    pub gamma: f32,
    /// λ of generalised advantage estimation.
    pub gae_lambda: f32,
    /// Number of minibatches per epoch (the rollout's sequences are split into this many
    /// groups); must divide `num_envs × num_steps / seq_len`.
    pub num_minibatches: usize,
    /// Length of the sequences the update replays (truncated BPTT length): each env's
    /// rollout is cut into `num_steps / seq_len` chunks, each replayed from the memory the
    /// env had at its start in the rollout (stored then). Must divide `num_steps`; absent:
    /// whole rollouts (`num_steps`). Shorter sequences give more, smaller minibatches with
    /// few envs: 4 envs × 1024 steps with `seq_len = 128` and 32 minibatches makes CleanRL's
    /// 32 minibatches of 128 samples. For a memoryless policy every length is exact; for a
    /// memory policy gradients do not flow across a sequence's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_len: Option<usize>,
    /// Number of epochs over the rollout per update.
    pub update_epochs: usize,
    /// Normalise advantages per minibatch (zero mean, unit std).
    pub norm_adv: bool,
    /// Surrogate clipping coefficient ε (ratio clipped to [1 − ε, 1 + ε]).
    pub clip_coef: f32,
    /// Clip the value loss around the rollout's value estimates (same ε).
    pub clip_vloss: bool,
    /// Coefficient of the entropy bonus.
    pub ent_coef: f32,
    /// Coefficient of the value loss.
    pub vf_coef: f32,
    /// Maximum global L2 norm of the gradient (over all parameters together).
    pub max_grad_norm: f32,
    /// Stop the epochs of an update early when the approximate KL (mean over an epoch's
    /// minibatches, checked after each epoch) exceeds this (none: never).
    pub target_kl: Option<f32>,
    /// Adam ε (numerical stability term).
    pub adam_eps: f32,
    /// Divide rewards by a running standard deviation of the discounted return before GAE
    /// (Gymnasium's `NormalizeReward`; see [`super::normalize`]). Makes the losses independent
    /// of the env's reward scale; logged episode returns stay unscaled.
    pub norm_reward: bool,
    /// Scaled rewards are clipped to `±reward_clip` (with `norm_reward`).
    pub reward_clip: f32,
    /// Normalise observations per feature with a running mean and variance (frozen at
    /// evaluation, saved in the checkpoint); useful for continuous observations of unknown
    /// scale.
    pub norm_obs: bool,
    /// Normalised observations are clipped to `±obs_clip` (with `norm_obs`).
    pub obs_clip: f32,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            learning_rate: 2.5e-4,
            anneal_lr: true,
            gamma: 0.99,
            gae_lambda: 0.95,
            num_minibatches: 4,
            seq_len: None,
            update_epochs: 4,
            norm_adv: true,
            clip_coef: 0.2,
            clip_vloss: true,
            ent_coef: 0.01,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            target_kl: None,
            adam_eps: 1e-5,
            norm_reward: true,
            reward_clip: 10.0,
            norm_obs: false,
            obs_clip: 10.0,
        }
    }
}

impl PpoConfig {
    /// Checks every field; the error names the first offending key as `ppo.<field>`.
    pub fn validate(&self) -> Result<(), PpoError> {
        fn bad(key: &'static str, reason: String) -> Result<(), PpoError> {
            Err(PpoError::InvalidConfig { key, reason })
        }
        if !self.learning_rate.is_finite() || self.learning_rate <= 0.0 {
            return bad(
                "ppo.learning_rate",
                format!("must be > 0, got {}", self.learning_rate),
            );
        }
        if !(self.gamma.is_finite() && (0.0..=1.0).contains(&self.gamma)) {
            return bad(
                "ppo.gamma",
                format!("must be in [0, 1], got {}", self.gamma),
            );
        }
        if !(self.gae_lambda.is_finite() && (0.0..=1.0).contains(&self.gae_lambda)) {
            return bad(
                "ppo.gae_lambda",
                format!("must be in [0, 1], got {}", self.gae_lambda),
            );
        }
        if self.num_minibatches == 0 {
            return bad(
                "ppo.num_minibatches",
                "must be at least 1, got 0".to_string(),
            );
        }
        if self.seq_len == Some(0) {
            return bad("ppo.seq_len", "must be at least 1, got 0".to_string());
        }
        if self.update_epochs == 0 || self.update_epochs > MAX_UPDATE_EPOCHS {
            return bad(
                "ppo.update_epochs",
                format!(
                    "must be in 1..={MAX_UPDATE_EPOCHS}, got {}",
                    self.update_epochs
                ),
            );
        }
        if !self.clip_coef.is_finite() || self.clip_coef <= 0.0 {
            return bad(
                "ppo.clip_coef",
                format!("must be > 0, got {}", self.clip_coef),
            );
        }
        if !self.ent_coef.is_finite() || self.ent_coef < 0.0 {
            return bad(
                "ppo.ent_coef",
                format!("must be ≥ 0, got {}", self.ent_coef),
            );
        }
        if !self.vf_coef.is_finite() || self.vf_coef < 0.0 {
            return bad("ppo.vf_coef", format!("must be ≥ 0, got {}", self.vf_coef));
        }
        if !self.max_grad_norm.is_finite() || self.max_grad_norm <= 0.0 {
            return bad(
                "ppo.max_grad_norm",
                format!("must be > 0, got {}", self.max_grad_norm),
            );
        }
        if let Some(kl) = self.target_kl
            && (!kl.is_finite() || kl <= 0.0)
        {
            return bad("ppo.target_kl", format!("must be > 0 when set, got {kl}"));
        }
        if !self.adam_eps.is_finite() || self.adam_eps <= 0.0 {
            return bad(
                "ppo.adam_eps",
                format!("must be > 0, got {}", self.adam_eps),
            );
        }
        if !self.reward_clip.is_finite() || self.reward_clip <= 0.0 {
            return bad(
                "ppo.reward_clip",
                format!("must be > 0, got {}", self.reward_clip),
            );
        }
        if !self.obs_clip.is_finite() || self.obs_clip <= 0.0 {
            return bad(
                "ppo.obs_clip",
                format!("must be > 0, got {}", self.obs_clip),
            );
        }
        Ok(())
    }

    /// Learning rate for update `update` (0-based) of `num_updates`: linear decay to 0 when
    /// `anneal_lr` is on (CleanRL: `frac = 1 − update / num_updates`), else constant.
    pub fn learning_rate_at(&self, update: usize, num_updates: usize) -> f64 {
        crate::learner::annealed_learning_rate(
            self.learning_rate,
            self.anneal_lr,
            update,
            num_updates,
        )
    }
}
