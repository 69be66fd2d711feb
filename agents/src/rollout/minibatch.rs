//! Helpers every learner's update uses: minibatches of whole env sequences, shuffled with the
//! run's RNG, and clipping of the gradients to a global norm.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::TensorData;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::memory::Memory;

use super::buffer::RolloutBuffer;

/// Sums `‖g‖²` over every float parameter's gradient, on the device: one tensor of shape
/// `[1]`, read back once by [`clip_grad_norm`].
struct GradNormSq<'a> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<1>>,
}

impl ModuleVisitor for GradNormSq<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s = g.square().sum(); // [1]
            self.sum = Some(match self.sum.take() {
                Some(acc) => acc + s,
                None => s,
            });
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
    let mut v = GradNormSq { grads, sum: None };
    model.visit(&mut v);
    let norm = v.sum.map_or(0.0, |s| {
        let sum_sq: f32 = s.into_scalar();
        sum_sq.sqrt()
    });
    let scale = max_norm / (norm + 1e-6);
    if norm.is_finite() && scale < 1.0 {
        model.visit(&mut ScaleGrads { grads, scale });
    }
    norm
}

/// Mean and (unbiased) standard deviation, in `f64`.
pub fn mean_std(xs: &[f32]) -> (f64, f64) {
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

/// One epoch's minibatches as the learners draw them ([`crate::ppo::ppo_update`]): `order` (the sequence indices,
/// carried from epoch to epoch) shuffled in place with `rng`, then cut into `num_minibatches`
/// consecutive groups.
pub fn shuffled_minibatches(
    order: &mut [usize],
    rng: &mut ChaCha8Rng,
    num_minibatches: usize,
) -> Vec<Vec<usize>> {
    shuffle(order, rng);
    order
        .chunks(order.len() / num_minibatches.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

/// The model inputs of a minibatch of sequences `[B, L]` (see
/// [`RolloutBuffer::sequence_major`]), as tensors on the (autodiff) device the update runs on:
/// what `forward_sequence` and the action log-probabilities need.
pub struct SequenceBatch {
    /// Observations `[B, L, obs_dim]`.
    pub obs: Tensor<3>,
    /// Episode-start flags `[B, L]`.
    pub starts: Tensor<2>,
    /// Actions taken `[B, L, action_width]`.
    pub actions: Tensor<3>,
    /// Action masks `[B, L, mask_width]`, when the envs gave them.
    pub masks: Option<Tensor<3, Bool>>,
    /// The memory each sequence started with in the rollout (batch `B`).
    pub memory0: Memory,
}

impl SequenceBatch {
    /// The sequences `units` of `buf`, on `device`.
    pub fn gather(buf: &RolloutBuffer, units: &[usize], device: &Device) -> Self {
        let (b, t_len, obs_dim) = (units.len(), buf.seq_len, buf.obs_dim);
        let w = buf.dist.action_width();
        Self {
            obs: Tensor::from_data(
                TensorData::new(
                    buf.sequence_major(&buf.obs, obs_dim, units),
                    [b, t_len, obs_dim],
                ),
                device,
            ),
            starts: Tensor::from_data(
                TensorData::new(
                    buf.sequence_major(&buf.episode_starts, 1, units),
                    [b, t_len],
                ),
                device,
            ),
            actions: Tensor::from_data(
                TensorData::new(buf.sequence_major(&buf.actions, w, units), [b, t_len, w]),
                device,
            ),
            masks: match buf.dist.mask_width() {
                Some(m) if !buf.masks.is_empty() => Some(Tensor::from_data(
                    TensorData::new(buf.sequence_major(&buf.masks, m, units), [b, t_len, m]),
                    device,
                )),
                _ => None,
            },
            memory0: buf
                .sequence_memory(units, &device.clone().inner())
                .to_device(device),
        }
    }

    /// A host vector `[B, L]` as a tensor on `device`.
    pub fn tensor(&self, data: &[f32], device: &Device) -> Tensor<2> {
        let [b, t_len] = self.starts.dims();
        Tensor::from_data(TensorData::new(data.to_vec(), [b, t_len]), device)
    }
}
