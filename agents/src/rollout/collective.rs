//! Data-parallel PPO: what the update needs from a group of processes ("ranks") that each own
//! a share of the envs, and the gradient exchange built on it.
//!
//! Every rank collects a rollout of its own envs and runs [`crate::ppo::ppo_update_with`] on it with
//! the same minibatch count. Per minibatch each rank computes the loss of its own share, then
//! the ranks average their gradients ([`Collective::all_reduce_sum_f32`] on one flat vector,
//! divided by the number of ranks) and every rank takes the same clipped Adam step. Because
//! every rank's share has the same number of samples, the mean of the ranks' minibatch losses
//! is the loss of the union of their minibatches, so the averaged gradient is that union's
//! gradient: N ranks of E envs take the steps of one process with N·E envs whose minibatches
//! are the unions of the ranks' minibatches (the same weights after every update, up to the
//! order of floating-point reductions). Per-minibatch advantage normalisation uses the mean and
//! standard deviation of the union too, and the diagnostics (losses, KL, clip fraction) are the
//! union's, so `target_kl` stops every rank after the same epoch.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::TensorData;

/// A group of ranks that reduce and exchange data; every call is collective: all ranks make
/// the same calls in the same order.
pub trait Collective {
    /// This rank, `0..size()`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Replaces `xs` by its element-wise sum over the ranks; every rank gets the same values.
    /// `what` names the exchange in error messages (a rank that stops answering).
    fn all_reduce_sum_f32(&self, xs: &mut [f32], what: &'static str);
    /// As [`Collective::all_reduce_sum_f32`], in `f64`.
    fn all_reduce_sum_f64(&self, xs: &mut [f64], what: &'static str);
    /// Every rank's `bytes`, in rank order (the lengths may differ).
    fn all_gather_bytes(&self, bytes: &[u8], what: &'static str) -> Vec<Vec<u8>>;
    /// Tells every other rank that this rank finished collecting the rollout of `update`
    /// (rollout preemption); does not wait for them. A group without point-to-point
    /// messages does nothing.
    fn notify_done(&self, _update: usize) {}
    /// How many other ranks have told this one (since the last call) that they finished the
    /// rollout of `update`; does not wait.
    fn poll_done(&self, _update: usize) -> usize {
        0
    }
    /// Waits for the `count` notices of `update` not received yet, so that none is left over.
    fn wait_done(&self, _update: usize, _count: usize) {}
}

/// The gradients of `model`'s float parameters laid out in one vector, in the module's visiting
/// order (the same on every rank): each parameter's values, then one presence flag per
/// parameter (1 where it has a gradient). [`unflatten_grads`] puts them back.
pub struct FlatGrads {
    /// The values, then the flags.
    pub data: Vec<f32>,
    /// `(offset, shape)` of each float parameter, in visiting order.
    layout: Vec<(usize, Vec<usize>)>,
}

impl FlatGrads {
    /// Number of gradient values (without the flags).
    pub fn num_values(&self) -> usize {
        self.layout
            .last()
            .map_or(0, |(o, s)| o + s.iter().product::<usize>())
    }
}

struct Flatten<'a> {
    grads: &'a GradientsParams,
    data: Vec<f32>,
    flags: Vec<f32>,
    layout: Vec<(usize, Vec<usize>)>,
}

impl ModuleVisitor for Flatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let shape = param.val().dims().to_vec();
        let len: usize = shape.iter().product();
        self.layout.push((self.data.len(), shape));
        match self.grads.get::<D>(param.id) {
            Some(g) => {
                let values = g
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .expect("a float gradient reads back as f32");
                debug_assert_eq!(values.len(), len);
                self.data.extend_from_slice(&values);
                self.flags.push(1.0);
            }
            None => {
                self.data.resize(self.data.len() + len, 0.0);
                self.flags.push(0.0);
            }
        }
    }
}

/// Copies the gradients of `model` into one host vector (see [`FlatGrads`]).
pub fn flatten_grads<M: Module>(model: &M, grads: &GradientsParams) -> FlatGrads {
    let mut v = Flatten {
        grads,
        data: Vec::new(),
        flags: Vec::new(),
        layout: Vec::new(),
    };
    model.visit(&mut v);
    let mut data = v.data;
    data.extend_from_slice(&v.flags);
    FlatGrads {
        data,
        layout: v.layout,
    }
}

struct Unflatten<'a> {
    flat: &'a FlatGrads,
    grads: &'a mut GradientsParams,
    index: usize,
    device: &'a Device,
}

impl ModuleVisitor for Unflatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let (offset, shape) = &self.flat.layout[self.index];
        let flag = self.flat.data[self.flat.num_values() + self.index];
        self.index += 1;
        let old: Option<Tensor<D>> = self.grads.remove::<D>(param.id);
        if flag <= 0.0 {
            return;
        }
        let len: usize = shape.iter().product();
        let values = self.flat.data[*offset..offset + len].to_vec();
        let device = old.map_or_else(|| self.device.clone(), |g| g.device());
        let dims: [usize; D] = shape.as_slice().try_into().expect("rank of the parameter");
        self.grads.register::<D>(
            param.id,
            Tensor::from_data(TensorData::new(values, dims), &device),
        );
    }
}

/// Replaces the gradients of `model` in `grads` by those of `flat` (a [`flatten_grads`] of the
/// same model, reduced over ranks): a parameter gets a gradient where any rank had one.
/// `device` is where gradients that were missing on this rank are put (the inner device of the
/// model's autodiff device).
pub fn unflatten_grads<M: Module>(
    model: &M,
    flat: &FlatGrads,
    grads: &mut GradientsParams,
    device: &Device,
) {
    model.visit(&mut Unflatten {
        flat,
        grads,
        index: 0,
        device,
    });
}

/// Averages the gradients of `model` over the ranks of `comm`, together with `extra` values
/// (the minibatch's losses and diagnostics), in one exchange, this rank's weighted by `share`.
/// Returns the averaged `extra`.
pub fn average_grads<M: Module>(
    model: &M,
    grads: &mut GradientsParams,
    extra: &[f32],
    share: f32,
    comm: &dyn Collective,
    device: &Device,
) -> Vec<f32> {
    let mut flat = flatten_grads(model, grads);
    let values = flat.num_values();
    let flags = flat.layout.len();
    flat.data.extend_from_slice(extra);
    if share != 1.0 {
        // This rank's weight in the union (see `UpdatePlan::share`); the flags stay.
        for x in &mut flat.data[..values] {
            *x *= share;
        }
        for x in &mut flat.data[values + flags..] {
            *x *= share;
        }
    }
    comm.all_reduce_sum_f32(&mut flat.data, "gradient all-reduce");
    let inv = 1.0 / comm.size() as f32;
    for x in &mut flat.data[..values] {
        *x *= inv;
    }
    let mut extra_mean = flat.data.split_off(values + flags);
    for x in &mut extra_mean {
        *x *= inv;
    }
    unflatten_grads(model, &flat, grads, device);
    extra_mean
}

/// Mean and unbiased standard deviation of the union of every rank's `xs` (in `f64`): the
/// figures one process holding all of them would compute.
pub fn global_mean_std(xs: &[f32], comm: &dyn Collective) -> (f64, f64) {
    let mut sums = [
        xs.iter().map(|&x| f64::from(x)).sum::<f64>(),
        xs.len() as f64,
    ];
    comm.all_reduce_sum_f64(&mut sums, "advantage mean");
    let (n, mean) = (sums[1], sums[0] / sums[1]);
    let mut sq = [xs
        .iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()];
    comm.all_reduce_sum_f64(&mut sq, "advantage variance");
    let var = if n > 1.0 { sq[0] / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// Explained variance of the union of every rank's values w.r.t. its returns (as
/// [`super::explained_variance`] over all of them).
pub fn global_explained_variance(values: &[f32], returns: &[f32], comm: &dyn Collective) -> f32 {
    let mut s = [0.0f64; 5];
    for (&v, &r) in values.iter().zip(returns) {
        let (r, d) = (f64::from(r), f64::from(r) - f64::from(v));
        s[0] += r;
        s[1] += r * r;
        s[2] += d;
        s[3] += d * d;
        s[4] += 1.0;
    }
    comm.all_reduce_sum_f64(&mut s, "explained variance");
    let n = s[4];
    if n == 0.0 {
        return f32::NAN;
    }
    let var_y = s[1] / n - (s[0] / n).powi(2);
    let var_d = s[3] / n - (s[2] / n).powi(2);
    if var_y <= 0.0 {
        f32::NAN
    } else {
        (1.0 - var_d / var_y) as f32
    }
}
