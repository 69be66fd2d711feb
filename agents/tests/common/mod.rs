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

/// A memory after `steps` real steps of `b` envs with `obs_dim` features (env 1 starts an
/// episode two steps before the end, so part of its window is from an earlier episode).
pub fn warmed_up<P: ActorCritic>(
    policy: &P,
    b: usize,
    obs_dim: usize,
    steps: usize,
    device: &Device,
) -> Memory {
    let mut memory = policy.init_memory(b, device);
    for t in 0..steps {
        let obs = tensor(noise(b * obs_dim, 100 + t as u64), [b, obs_dim], device);
        let mut s = vec![0.0; b];
        if t == steps - 2 {
            s[1] = 1.0;
        }
        let (_, _, m) = policy.step(obs, tensor(s, [b], device), memory);
        memory = m;
    }
    memory.detach()
}

/// What one pass of [`trunk_pass`] gives: logits, values, every parameter's gradient and the
/// gradients of the tracked memory tensors.
pub type Outcome = (Vec<f32>, Vec<f32>, Vec<Vec<f32>>, Vec<Vec<f32>>);

/// Asserts that a fused pass's logits, values and parameter gradients match the reference
/// pass's (see [`assert_close`]); returns, per parameter, whether its reference gradient has a
/// non-zero entry.
pub fn assert_outputs_and_parameter_grads_close(
    what: &str,
    fused: &Outcome,
    reference: &Outcome,
) -> Vec<bool> {
    assert_close(&format!("{what}: logits"), &fused.0, &reference.0);
    assert_close(&format!("{what}: values"), &fused.1, &reference.1);
    assert_eq!(fused.2.len(), reference.2.len());
    let mut nonzero = Vec::with_capacity(reference.2.len());
    for (i, (g, r)) in fused.2.iter().zip(&reference.2).enumerate() {
        assert_close(&format!("{what}: gradient of parameter #{i}"), g, r);
        nonzero.push(r.iter().any(|v| *v != 0.0));
    }
    nonzero
}

/// Logits, values, every parameter's gradient and the gradient of each of the first `tracked`
/// tensors of `memory` of `loss = Σ logits·u + Σ values·w`, by the fused or the reference
/// trunk of an attention policy with `actions` outputs.
#[cfg(feature = "flex")]
pub fn trunk_pass<P: agents::attention::AttentionTrunk>(
    policy: &P,
    (obs, starts): (&Tensor<3>, &Tensor<2>),
    memory: &Memory,
    tracked: usize,
    actions: usize,
    fused: bool,
) -> Outcome {
    let device = obs.device();
    let mut memory = memory.clone();
    for m in &mut memory.tensors[..tracked] {
        *m = m.clone().require_grad();
    }
    let start: Vec<Tensor<3>> = memory.tensors[..tracked].to_vec();
    let [b, t, _] = obs.dims();
    let x = policy.embed().forward(obs.clone());
    let top = if fused {
        policy.trunk_fused(x, starts.clone(), memory)
    } else {
        policy.trunk_reference(x, starts.clone(), memory)
    };
    let (logits, value) = policy.heads().forward_sequence(top); // [B, T, A], [B, T]
    let u = tensor(noise(b * t * actions, 5), [b, t, actions], &device);
    let w = tensor(noise(b * t, 6), [b, t], &device);
    let loss = (logits.clone() * u).sum() + (value.clone() * w).sum();
    let mut grads = loss.backward();
    let dmemory = start
        .iter()
        .map(|m| values(m.grad(&grads).expect("the starting memory gets a gradient")))
        .collect();
    let grads = GradientsParams::from_module(&mut grads, policy);
    let mut visitor = CollectGrads {
        grads: &grads,
        out: Vec::new(),
    };
    policy.visit(&mut visitor);
    (values(logits), values(value), visitor.out, dmemory)
}

/// An attention policy whose fused trunk the kernel tests check against its reference trunk.
#[cfg(feature = "flex")]
pub trait FusedTrunk: agents::attention::AttentionTrunk + Sync {
    /// How many leading tensors of `memory` the trunk reads, and so get a gradient (the rest
    /// are derived from them, or the validity mask).
    fn tracked(memory: &Memory) -> usize;
}

/// [`trunk_pass`] tracking the memory tensors the trunk reads ([`FusedTrunk::tracked`]).
#[cfg(feature = "flex")]
pub fn fused_trunk_pass<P: FusedTrunk>(
    policy: &P,
    (obs, starts): (&Tensor<3>, &Tensor<2>),
    memory: &Memory,
    actions: usize,
    fused: bool,
) -> Outcome {
    let tracked = P::tracked(memory);
    trunk_pass(policy, (obs, starts), memory, tracked, actions, fused)
}

/// The fused decoding step (plain flex, `reference.valid()`) against the reference step (the
/// same weights under autodiff, `reference`) for `steps` steps of `b` envs from empty
/// memories, env 2 starting an episode at each step of `restarts`: logits, values and every
/// memory tensor agree (messages start with `what`).
pub fn assert_fused_steps_match<P: ActorCritic + burn::module::Module>(
    what: &str,
    reference: &P,
    (b, obs_dim, steps): (usize, usize, u64),
    restarts: &[u64],
) {
    let fused = reference.valid();
    let (ad, plain) = (Device::flex().autodiff(), Device::flex());
    let mut m_ref = reference.init_memory(b, &ad);
    let mut m_fused = fused.init_memory(b, &plain);
    for t in 0..steps {
        let o = noise(b * obs_dim, 40 + t);
        let mut s = vec![0.0f32; b];
        if restarts.contains(&t) {
            s[2] = 1.0;
        }
        let (l1, v1, m1) = reference.step(
            tensor(o.clone(), [b, obs_dim], &ad),
            tensor(s.clone(), [b], &ad),
            m_ref,
        );
        let (l2, v2, m2) = fused.step(
            tensor(o, [b, obs_dim], &plain),
            tensor(s, [b], &plain),
            m_fused,
        );
        let what = format!("{what}step {t}");
        assert_close(&format!("{what}: logits"), &values(l2), &values(l1));
        assert_close(&format!("{what}: values"), &values(v2), &values(v1));
        assert_eq!(m1.shapes(), m2.shapes());
        for (i, (a, b)) in m2.tensors.iter().zip(&m1.tensors).enumerate() {
            assert_close(
                &format!("{what}: memory tensor {i}"),
                &values(a.clone()),
                &values(b.clone()),
            );
        }
        (m_ref, m_fused) = (m1, m2);
    }
}

/// The fused pass ([`fused_trunk_pass`], `actions` outputs) over 19 envs × 9 steps from a
/// warm memory of `policy`, with two episode starts, gives the same logits and gradients,
/// bitwise, on one thread and on two.
#[cfg(feature = "flex")]
pub fn assert_same_on_any_thread_count<P: FusedTrunk>(
    policy: &P,
    (obs_dim, actions): (usize, usize),
) {
    let device = Device::flex().autodiff();
    let (b, t) = (19, 9);
    let memory = warmed_up(policy, b, obs_dim, 3, &device);
    let obs = tensor(noise(b * t * obs_dim, 3), [b, t, obs_dim], &device);
    let starts = starts(b, t, &[(4, 2), (17, 0)], &device);
    let run = || fused_trunk_pass(policy, (&obs, &starts), &memory, actions, true);
    let with = |threads| on_threads(threads, run);
    let (one, two) = (with(1), with(2));
    assert_eq!(one.0, two.0);
    assert_eq!(one.2, two.2);
    assert_eq!(one.3, two.3);
}

/// `f` run on a rayon pool of `threads` threads.
pub fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// `max |a − b|` over two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// [`PolicyConfig::preset`] of `kind` at small sizes (width 16, 2 heads, feed-forward 32,
/// span 4; hidden 16).
pub fn small_config(kind: agents::PolicyKind) -> agents::PolicyConfig {
    let sizes = [
        ("d_model", 16),
        ("n_heads", 2),
        ("d_ff", 32),
        ("span", 4),
        ("hidden", 16),
    ];
    sizes.into_iter().fold(
        agents::PolicyConfig::preset(kind),
        |config, (field, value)| config.with(field, value).unwrap(),
    )
}
