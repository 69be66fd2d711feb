//! The PPO update: several epochs over minibatches of whole env sequences, each recomputed
//! with `forward_sequence` from the memory the env started the rollout with.

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use rand_chacha::ChaCha8Rng;

use crate::actor_critic::ActorCritic;
use crate::distribution::ActionDist;
use crate::rollout::buffer::RolloutBuffer;
use crate::rollout::collect::to_host;
use crate::rollout::collective::{
    Collective, average_grads, global_explained_variance, global_mean_std,
};
use crate::rollout::gae::explained_variance;
use crate::rollout::minibatch::{SequenceBatch, clip_grad_norm, mean_std, shuffled_minibatches};

use super::PpoError;
use super::config::PpoConfig;

/// Diagnostics of one PPO update, averaged over every minibatch step it took.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UpdateStats {
    /// Clipped surrogate loss.
    pub policy_loss: f32,
    /// Value loss (`0.5 · MSE`, clipped when `clip_vloss`).
    pub value_loss: f32,
    /// Entropy of the policy.
    pub entropy: f32,
    /// Approximate KL between the rollout and the updated policy, `mean((r − 1) − log r)`.
    pub approx_kl: f32,
    /// Fraction of samples whose ratio was clipped (`|r − 1| > ε`).
    pub clip_frac: f32,
    /// Explained variance of the rollout's value estimates w.r.t. the returns.
    pub explained_var: f32,
    /// Global gradient L2 norm before clipping.
    pub grad_norm: f32,
    /// Number of epochs run (fewer than configured when `target_kl` stopped the update).
    pub epochs: usize,
}

/// One minibatch of sequences `[B, L]` (whole rollouts of `B` envs, or `B` chunks of length
/// `L`): the model's inputs as tensors on the autodiff device, the rollout's targets on the
/// host.
struct Minibatch {
    seq: SequenceBatch,
    old_logp: Vec<f32>,
    old_values: Vec<f32>,
    returns: Vec<f32>,
    advantages: Vec<f32>,
}

impl Minibatch {
    /// The sequences `units` from `buf` (see [`RolloutBuffer::sequence_major`]), advantages
    /// normalised when `norm_adv`.
    fn gather(
        buf: &RolloutBuffer,
        units: &[usize],
        norm_adv: bool,
        device: &Device,
        comm: Option<&dyn Collective>,
    ) -> Self {
        let float = |data: &[f32]| buf.sequence_major(data, 1, units);
        let mut advantages = float(&buf.advantages);
        if norm_adv {
            // Over the union of the ranks' minibatches when the update is distributed.
            let (m, s) = match comm {
                Some(comm) => global_mean_std(&advantages, comm),
                None => mean_std(&advantages),
            };
            for a in &mut advantages {
                *a = ((f64::from(*a) - m) / (s + 1e-8)) as f32;
            }
        }
        Self {
            seq: SequenceBatch::gather(buf, units, device),
            old_logp: float(&buf.logprobs),
            old_values: float(&buf.values),
            returns: float(&buf.returns),
            advantages,
        }
    }
}

/// The PPO loss of one minibatch and its parts (scalars `[1]`, still attached to the graph).
struct Losses {
    total: Tensor<1>,
    policy: Tensor<1>,
    value: Tensor<1>,
    entropy: Tensor<1>,
    /// Log-probabilities of the rollout's actions under the current model `[B, T]`.
    new_logp: Tensor<2>,
}

/// Recomputes the minibatch's sequences and builds the loss: clipped surrogate
/// − `ent_coef` · entropy + `vf_coef` · (clipped) value loss.
fn compute_losses<M: ActorCritic>(
    model: &M,
    mb: Minibatch,
    dist: &ActionDist,
    cfg: &PpoConfig,
    device: &Device,
) -> Losses {
    let seq = mb.seq;
    let old_logp = seq.tensor(&mb.old_logp, device);
    let adv = seq.tensor(&mb.advantages, device);
    let returns = seq.tensor(&mb.returns, device);
    let old_values = seq.tensor(&mb.old_values, device);

    let (params, values) = model.forward_sequence(seq.obs, seq.starts, seq.memory0); // [B, T, P], [B, T]
    let (new_logp, entropy) = dist.log_prob_entropy(params, seq.actions, seq.masks); // [B, T] each
    let entropy = entropy.mean(); // [1]

    // Clipped surrogate objective.
    let ratio = (new_logp.clone() - old_logp).exp(); // [B, T]
    let pg1 = adv.clone().neg() * ratio.clone();
    let pg2 = adv.neg() * ratio.clamp(1.0 - cfg.clip_coef, 1.0 + cfg.clip_coef);
    let policy = pg1.max_pair(pg2).mean();

    // Value loss, clipped around the rollout's values when `clip_vloss`.
    let v_unclipped = (values.clone() - returns.clone()).square();
    let value = if cfg.clip_vloss {
        let v_clipped =
            old_values.clone() + (values - old_values).clamp(-cfg.clip_coef, cfg.clip_coef);
        let v_clipped = (v_clipped - returns).square();
        v_unclipped.max_pair(v_clipped).mean().mul_scalar(0.5)
    } else {
        v_unclipped.mean().mul_scalar(0.5)
    };

    let total = policy.clone() - entropy.clone().mul_scalar(cfg.ent_coef)
        + value.clone().mul_scalar(cfg.vf_coef);
    Losses {
        total,
        policy,
        value,
        entropy,
        new_logp,
    }
}

/// Approximate KL `mean((r − 1) − log r)` and the fraction of clipped ratios, on the host.
fn kl_and_clip_frac(new_logp: &[f32], old_logp: &[f32], clip_coef: f32) -> (f64, f64) {
    let (mut kl, mut clipped) = (0.0f64, 0usize);
    for (&nl, &ol) in new_logp.iter().zip(old_logp) {
        let log_ratio = f64::from(nl) - f64::from(ol);
        let r = log_ratio.exp();
        kl += (r - 1.0) - log_ratio;
        if (r - 1.0).abs() > f64::from(clip_coef) {
            clipped += 1;
        }
    }
    let m = new_logp.len() as f64;
    (kl / m, clipped as f64 / m)
}

/// Running sums of the per-minibatch diagnostics.
#[derive(Default)]
struct StatSums {
    policy_loss: f64,
    value_loss: f64,
    entropy: f64,
    approx_kl: f64,
    clip_frac: f64,
    grad_norm: f64,
    count: usize,
}

impl StatSums {
    /// The averages, into `stats`.
    fn average_into(&self, stats: &mut UpdateStats) {
        let c = self.count.max(1) as f64;
        stats.policy_loss = (self.policy_loss / c) as f32;
        stats.value_loss = (self.value_loss / c) as f32;
        stats.entropy = (self.entropy / c) as f32;
        stats.approx_kl = (self.approx_kl / c) as f32;
        stats.clip_frac = (self.clip_frac / c) as f32;
        stats.grad_norm = (self.grad_norm / c) as f32;
    }
}

/// Runs the PPO update on `model` (on the autodiff device `device`) from the rollout `buf`
/// (whose advantages must be computed), with learning rate `lr`. `update` is the index of this
/// update, used in error messages.
///
/// The rollout's sequences are the envs' whole rollouts, or with `buf.seq_len < T` each env's
/// `T / seq_len` consecutive chunks. Per epoch the sequences are shuffled and split into
/// `num_minibatches` groups; each group's sequences `[B, L]` are recomputed with
/// `forward_sequence` from the memory each started with in the rollout (`memory0`, or the
/// stored chunk memories): truncated BPTT over each sequence. Loss = clipped surrogate − `ent_coef` · entropy +
/// `vf_coef` · (clipped) value loss; advantages normalised per minibatch; gradients clipped
/// to a global norm; one Adam step per minibatch.
///
/// A non-finite loss or gradient norm returns [`PpoError::NonFinite`] before the optimizer
/// step, so the weights are never overwritten with NaN. `should_stop` is asked before every
/// minibatch; once it says yes the update ends with [`PpoError::Interrupted`] (the weights
/// and optimizer are then part-way through the update: the caller resumes from a checkpoint).
pub fn ppo_update<M: ActorCritic + Module>(
    model: M,
    optim: &mut ModuleOptimizer,
    buf: &RolloutBuffer,
    cfg: &PpoConfig,
    lr: f64,
    rng: &mut ChaCha8Rng,
    device: &Device,
    update: usize,
    should_stop: &dyn Fn() -> bool,
) -> Result<(M, UpdateStats), PpoError> {
    let mut order: Vec<usize> = (0..buf.num_envs * buf.chunks_per_env()).collect();
    let mut minibatches =
        |_epoch: usize| shuffled_minibatches(&mut order, rng, cfg.num_minibatches.max(1));
    ppo_update_with(
        model,
        optim,
        buf,
        cfg,
        lr,
        device,
        update,
        should_stop,
        UpdatePlan {
            minibatches: &mut minibatches,
            comm: None,
            share: 1.0,
        },
    )
}

/// How [`ppo_update_with`] draws its minibatches and with whom it averages its gradients.
pub struct UpdatePlan<'a> {
    /// The minibatches of epoch `e` (0-based), as lists of sequence indices (see
    /// [`RolloutBuffer::sequence_major`]); [`ppo_update`] uses [`shuffled_minibatches`].
    pub minibatches: &'a mut dyn FnMut(usize) -> Vec<Vec<usize>>,
    /// The ranks to average gradients, advantage statistics and diagnostics with (see
    /// [`super::collective`]); `None`: this process alone.
    pub comm: Option<&'a dyn Collective>,
    /// With `comm`: this rank's share of every minibatch's samples times the number of ranks
    /// (1 when every rank has as many samples); its gradient and diagnostics are weighted by it
    /// before the ranks average them, so that the average is that of the union.
    pub share: f32,
}

/// [`ppo_update`] with the minibatches and the group of ranks given by `plan`. With
/// `plan.comm`, every rank of the group must call it with a buffer of the same size and the
/// same config; a non-finite loss or gradient on any rank then stops every rank's update (the
/// check comes after the exchange).
pub fn ppo_update_with<M: ActorCritic + Module>(
    mut model: M,
    optim: &mut ModuleOptimizer,
    buf: &RolloutBuffer,
    cfg: &PpoConfig,
    lr: f64,
    device: &Device,
    update: usize,
    should_stop: &dyn Fn() -> bool,
    plan: UpdatePlan<'_>,
) -> Result<(M, UpdateStats), PpoError> {
    let UpdatePlan {
        minibatches,
        comm,
        share,
    } = plan;
    assert_eq!(
        buf.advantages.len(),
        buf.num_steps * buf.num_envs,
        "compute_advantages must run before ppo_update"
    );
    let n = buf.num_envs * buf.chunks_per_env();
    if cfg.num_minibatches == 0 || !n.is_multiple_of(cfg.num_minibatches) {
        return Err(PpoError::InvalidConfig {
            key: "ppo.num_minibatches",
            reason: format!(
                "must divide the number of sequences per rollout, num_envs × num_steps / \
                 seq_len = {n}, got {}",
                cfg.num_minibatches
            ),
        });
    }
    let non_finite = |quantity, value| PpoError::NonFinite {
        update,
        quantity,
        value,
    };
    let mut stats = UpdateStats {
        explained_var: match comm {
            Some(comm) => global_explained_variance(&buf.values, &buf.returns, comm),
            None => explained_variance(&buf.values, &buf.returns),
        },
        ..UpdateStats::default()
    };
    let mut sums = StatSums::default();
    let inner_device = device.clone().inner();

    for epoch in 0..cfg.update_epochs {
        let (mut epoch_kl, mut epoch_count) = (0.0f64, 0usize);
        for units in minibatches(epoch) {
            let units = units.as_slice();
            // A signal is honoured within one minibatch, however long the update.
            if should_stop() {
                return Err(PpoError::Interrupted { update });
            }
            // Forward: recompute the sequences and build the loss.
            let mb = Minibatch::gather(buf, units, cfg.norm_adv, device, comm);
            let old_logp = mb.old_logp.clone();
            let losses = compute_losses(&model, mb, &buf.dist, cfg, device);
            let loss_value: f32 = losses.total.clone().detach().into_scalar();
            // Distributed, every rank must take part in the exchange below: the check waits
            // for the averaged loss, which is non-finite when any rank's is.
            if comm.is_none() && !loss_value.is_finite() {
                return Err(non_finite("loss", loss_value));
            }
            let new_logp = to_host(losses.new_logp.detach())?;
            let (mut kl, mut clip_frac) = kl_and_clip_frac(&new_logp, &old_logp, cfg.clip_coef);
            let scalar = |t: Tensor<1>| -> f64 {
                let v: f32 = t.detach().into_scalar();
                f64::from(v)
            };
            let mut diagnostics = [
                scalar(losses.policy),
                scalar(losses.value),
                scalar(losses.entropy),
            ];

            // Backward, (averaging over the ranks,) global-norm clipping, optimizer step.
            let mut grads = GradientsParams::from_grads(losses.total.backward(), &model);
            if let Some(comm) = comm {
                let extra = [
                    loss_value,
                    diagnostics[0] as f32,
                    diagnostics[1] as f32,
                    diagnostics[2] as f32,
                    kl as f32,
                    clip_frac as f32,
                ];
                let mean = average_grads(&model, &mut grads, &extra, share, comm, &inner_device);
                if !mean[0].is_finite() {
                    return Err(non_finite("loss", mean[0]));
                }
                for (d, m) in diagnostics.iter_mut().zip(&mean[1..4]) {
                    *d = f64::from(*m);
                }
                (kl, clip_frac) = (f64::from(mean[4]), f64::from(mean[5]));
            }
            let grad_norm = clip_grad_norm(&model, &mut grads, cfg.max_grad_norm);
            if !grad_norm.is_finite() {
                return Err(non_finite("gradient norm", grad_norm));
            }
            model = optim.step(lr, model, grads);

            // Diagnostics.
            sums.policy_loss += diagnostics[0];
            sums.value_loss += diagnostics[1];
            sums.entropy += diagnostics[2];
            sums.approx_kl += kl;
            sums.clip_frac += clip_frac;
            sums.grad_norm += f64::from(grad_norm);
            sums.count += 1;
            epoch_kl += kl;
            epoch_count += 1;
        }
        stats.epochs += 1;
        if let Some(target) = cfg.target_kl
            && epoch_kl / epoch_count as f64 > f64::from(target)
        {
            break;
        }
    }
    sums.average_into(&mut stats);
    Ok((model, stats))
}
