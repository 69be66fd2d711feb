//! The PPO update: several epochs over minibatches of whole env sequences, each recomputed
//! with `forward_sequence` from the memory the env started the rollout with.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::log_softmax;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::actor_critic::ActorCritic;

use super::PpoError;
use super::buffer::RolloutBuffer;
use super::config::PpoConfig;
use super::gae::explained_variance;
use super::rollout::to_host;

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

/// Sums `‖g‖²` over every float parameter's gradient.
struct GradNormSq<'a> {
    grads: &'a GradientsParams,
    sum: f64,
}

impl ModuleVisitor for GradNormSq<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s: f32 = g.square().sum().into_scalar();
            self.sum += f64::from(s);
        }
    }
}

/// Multiplies every float parameter's gradient by `scale`.
struct ScaleGrads<'a> {
    grads: &'a mut GradientsParams,
    scale: f32,
}

impl ModuleVisitor for ScaleGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.scale));
        }
    }
}

/// Clips the gradients to a global L2 norm of `max_norm` (all parameters together, as
/// `torch.nn.utils.clip_grad_norm_` does; burn's own clipping is per parameter) and returns
/// the norm before clipping.
pub fn clip_grad_norm<M: Module>(model: &M, grads: &mut GradientsParams, max_norm: f32) -> f32 {
    let mut v = GradNormSq { grads, sum: 0.0 };
    model.visit(&mut v);
    let norm = v.sum.sqrt() as f32;
    let scale = max_norm / (norm + 1e-6);
    if norm.is_finite() && scale < 1.0 {
        model.visit(&mut ScaleGrads { grads, scale });
    }
    norm
}

/// Mean and (unbiased) standard deviation, in `f64`.
fn mean_std(xs: &[f32]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Shuffles `xs` in place (Fisher–Yates) with `rng`.
fn shuffle(xs: &mut [usize], rng: &mut ChaCha8Rng) {
    for i in (1..xs.len()).rev() {
        let j = rng.random_range(0..=i);
        xs.swap(i, j);
    }
}

/// Runs the PPO update on `model` (on the autodiff device `device`) from the rollout `buf`
/// (whose advantages must be computed), with learning rate `lr`. `update` is the index of this
/// update, used in error messages.
///
/// Per epoch the envs are shuffled and split into `num_minibatches` groups; each group's whole
/// sequences `[B, T]` are recomputed with `forward_sequence` from `memory0` of those envs
/// (truncated BPTT over the rollout). Loss = clipped surrogate − `ent_coef` · entropy +
/// `vf_coef` · (clipped) value loss; advantages normalised per minibatch; gradients clipped
/// to a global norm; one Adam step per minibatch.
///
/// A non-finite loss or gradient norm returns [`PpoError::NonFinite`] before the optimizer
/// step, so the weights are never overwritten with NaN.
pub fn ppo_update<M: ActorCritic + Module>(
    mut model: M,
    optim: &mut ModuleOptimizer,
    buf: &RolloutBuffer,
    cfg: &PpoConfig,
    lr: f64,
    rng: &mut ChaCha8Rng,
    device: &Device,
    update: usize,
) -> Result<(M, UpdateStats), PpoError> {
    let (t_len, n, obs_dim) = (buf.num_steps, buf.num_envs, buf.obs_dim);
    assert_eq!(
        buf.advantages.len(),
        t_len * n,
        "compute_advantages must run before ppo_update"
    );
    if n % cfg.num_minibatches != 0 {
        return Err(PpoError::InvalidConfig {
            key: "ppo.num_minibatches",
            reason: format!("must divide num_envs ({n}), got {}", cfg.num_minibatches),
        });
    }
    let mb_envs = n / cfg.num_minibatches;
    let inner = device.clone().inner();
    let mut stats = UpdateStats {
        explained_var: explained_variance(&buf.values, &buf.returns),
        ..UpdateStats::default()
    };
    let mut sums = [0.0f64; 6];
    let mut count = 0usize;
    let mut order: Vec<usize> = (0..n).collect();

    for _epoch in 0..cfg.update_epochs {
        shuffle(&mut order, rng);
        let mut epoch_kl = 0.0f64;
        let mut epoch_count = 0usize;
        for mb in order.chunks(mb_envs) {
            let b = mb.len();
            let obs = Tensor::<3>::from_data(
                TensorData::new(buf.env_major(&buf.obs, obs_dim, mb), [b, t_len, obs_dim]),
                device,
            );
            let starts = Tensor::<2>::from_data(
                TensorData::new(buf.env_major(&buf.episode_starts, 1, mb), [b, t_len]),
                device,
            );
            let actions = Tensor::<2, Int>::from_data(
                TensorData::new(buf.env_major(&buf.actions, 1, mb), [b, t_len]),
                device,
            );
            let old_logp = buf.env_major(&buf.logprobs, 1, mb);
            let old_values = buf.env_major(&buf.values, 1, mb);
            let returns = buf.env_major(&buf.returns, 1, mb);
            let mut adv = buf.env_major(&buf.advantages, 1, mb);
            if cfg.norm_adv {
                let (m, s) = mean_std(&adv);
                for a in &mut adv {
                    *a = ((f64::from(*a) - m) / (s + 1e-8)) as f32;
                }
            }
            let idx: Vec<i64> = mb.iter().map(|&i| i as i64).collect();
            let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [b]), &inner);
            let memory0 = buf.memory0.select(idx).to_device(device);

            let (logits, values) = model.forward_sequence(obs, starts, memory0); // [B, T, A], [B, T]
            let logp_all = log_softmax(logits, 2); // [B, T, A]
            let new_logp = logp_all
                .clone()
                .gather(2, actions.unsqueeze_dim::<3>(2))
                .squeeze_dim::<2>(2); // [B, T]
            let entropy = logp_all.clone().exp().mul(logp_all).sum_dim(2).neg().mean(); // [1]

            let old_logp_t =
                Tensor::<2>::from_data(TensorData::new(old_logp.clone(), [b, t_len]), device);
            let adv_t = Tensor::<2>::from_data(TensorData::new(adv, [b, t_len]), device);
            let ret_t = Tensor::<2>::from_data(TensorData::new(returns, [b, t_len]), device);
            let logratio = new_logp.clone() - old_logp_t; // [B, T]
            let ratio = logratio.exp();
            let pg1 = adv_t.clone().neg() * ratio.clone();
            let pg2 = adv_t.neg() * ratio.clamp(1.0 - cfg.clip_coef, 1.0 + cfg.clip_coef);
            let pg_loss = pg1.max_pair(pg2).mean();
            let v_unclipped = (values.clone() - ret_t.clone()).square();
            let v_loss = if cfg.clip_vloss {
                let old_v = Tensor::<2>::from_data(TensorData::new(old_values, [b, t_len]), device);
                let v_clipped =
                    old_v.clone() + (values - old_v).clamp(-cfg.clip_coef, cfg.clip_coef);
                let v_clipped = (v_clipped - ret_t).square();
                v_unclipped.max_pair(v_clipped).mean().mul_scalar(0.5)
            } else {
                v_unclipped.mean().mul_scalar(0.5)
            };
            let loss = pg_loss.clone() - entropy.clone().mul_scalar(cfg.ent_coef)
                + v_loss.clone().mul_scalar(cfg.vf_coef);

            let loss_value: f32 = loss.clone().detach().into_scalar();
            if !loss_value.is_finite() {
                return Err(PpoError::NonFinite {
                    update,
                    quantity: "loss",
                    value: loss_value,
                });
            }
            // Diagnostics on the host, from the detached new log-probabilities.
            let new_logp_host = to_host(new_logp.detach())?;
            let (mut kl, mut clipped) = (0.0f64, 0usize);
            for (&nl, &ol) in new_logp_host.iter().zip(&old_logp) {
                let lr_ = f64::from(nl) - f64::from(ol);
                let r = lr_.exp();
                kl += (r - 1.0) - lr_;
                if (r - 1.0).abs() > f64::from(cfg.clip_coef) {
                    clipped += 1;
                }
            }
            let m = new_logp_host.len() as f64;
            let kl = kl / m;

            let mut grads = GradientsParams::from_grads(loss.backward(), &model);
            let grad_norm = clip_grad_norm(&model, &mut grads, cfg.max_grad_norm);
            if !grad_norm.is_finite() {
                return Err(PpoError::NonFinite {
                    update,
                    quantity: "gradient norm",
                    value: grad_norm,
                });
            }
            model = optim.step(lr, model, grads);

            let pg: f32 = pg_loss.detach().into_scalar();
            let vl: f32 = v_loss.detach().into_scalar();
            let ent: f32 = entropy.detach().into_scalar();
            for (s, v) in sums.iter_mut().zip([
                f64::from(pg),
                f64::from(vl),
                f64::from(ent),
                kl,
                clipped as f64 / m,
                f64::from(grad_norm),
            ]) {
                *s += v;
            }
            count += 1;
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
    let c = count.max(1) as f64;
    stats.policy_loss = (sums[0] / c) as f32;
    stats.value_loss = (sums[1] / c) as f32;
    stats.entropy = (sums[2] / c) as f32;
    stats.approx_kl = (sums[3] / c) as f32;
    stats.clip_frac = (sums[4] / c) as f32;
    stats.grad_norm = (sums[5] / c) as f32;
    Ok((model, stats))
}
