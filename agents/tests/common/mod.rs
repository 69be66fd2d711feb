//! Helpers shared by the policy tests.
#![allow(dead_code)]

use agents::{ActorCritic, Memory};
use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;

/// Runs `T` steps one at a time from `memory`; returns the stacked step outputs `[B, T, P]`
/// and values `[B, T]`.
pub fn run_steps<P: ActorCritic>(
    policy: &P,
    obs: Tensor<3>,
    starts: Tensor<2>,
    memory: Memory,
) -> (Tensor<3>, Tensor<2>) {
    let [b, t, d] = obs.dims();
    let mut memory = memory;
    let (mut outputs, mut values) = (Vec::new(), Vec::new());
    for s in 0..t {
        let o = obs.clone().narrow(1, s, 1).reshape([b, d]);
        let st = starts.clone().narrow(1, s, 1).reshape([b]);
        let (out, v, m) = policy.step(o, st, memory);
        outputs.push(out);
        values.push(v.reshape([b, 1]));
        memory = m;
    }
    (Tensor::stack(outputs, 1), Tensor::cat(values, 1))
}

/// Deterministic pseudo-random floats in [-1, 1).
pub fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().unwrap()
}

/// Replaces every parameter with noise of a size that keeps activations in range (LayerNorm
/// gains around 1, the memory mix far from uniform, position biases non-zero).
pub struct Randomize {
    pub seed: u64,
}

impl ModuleMapper for Randomize {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        self.seed += 1;
        let seed = self.seed;
        param.map(|t| {
            let dims = t.dims();
            let n: usize = dims.iter().product();
            let v: Vec<f32> = if D == 1 {
                noise(n, seed).into_iter().map(|x| 0.75 + 0.5 * x).collect()
            } else {
                let scale = 1.5 / (dims[0] as f32).sqrt();
                noise(n, seed).into_iter().map(|x| x * scale).collect()
            };
            let device = t.device();
            let new = Tensor::from_data(TensorData::new(v, dims), &device);
            if device.is_autodiff() {
                new.require_grad()
            } else {
                new
            }
        })
    }
}

/// Every parameter's gradient, in visiting order (zeros where a parameter got none).
pub struct CollectGrads<'a> {
    pub grads: &'a GradientsParams,
    pub out: Vec<Vec<f32>>,
}

impl ModuleVisitor for CollectGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let n = param.val().shape().num_elements();
        let grad: Option<Tensor<D>> = self.grads.get(param.id);
        self.out.push(grad.map_or(vec![0.0; n], values));
    }
}

pub fn tensor<const D: usize>(v: Vec<f32>, dims: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, dims), device)
}

pub fn starts(b: usize, t: usize, ones: &[(usize, usize)], device: &Device) -> Tensor<2> {
    let mut v = vec![0.0f32; b * t];
    for &(env, step) in ones {
        v[env * t + step] = 1.0;
    }
    tensor(v, [b, t], device)
}

pub fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
    let diff = got
        .iter()
        .zip(want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff <= 1e-4 * scale,
        "{what}: max |fused - reference| = {diff:e}, largest reference magnitude {scale:e}"
    );
}
