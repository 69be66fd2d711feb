//! Helpers shared by the unit tests: the fused kernels against their tensor-operation
//! references (GRU, MLP), and small policy configs.

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::policy::{PolicyConfig, PolicyKind};

/// A tensor of `shape` with entries uniform in `[-scale, scale)`.
pub(crate) fn random_tensor<const R: usize>(
    shape: [usize; R],
    scale: f32,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Tensor<R> {
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-scale..scale)).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// `linear` with a random weight (entries within `±scale`) and a random bias (within `±0.5`).
pub(crate) fn randomize(linear: &mut Linear, scale: f32, rng: &mut ChaCha8Rng, device: &Device) {
    let [d_in, d_out] = linear.weight.dims();
    linear.weight = Param::from_tensor(random_tensor([d_in, d_out], scale, rng, device));
    linear.bias = Some(Param::from_tensor(random_tensor([d_out], 0.5, rng, device)));
}

/// [`PolicyConfig::preset`] of `kind` with the sizes `fields` set.
pub(crate) fn preset_with(kind: PolicyKind, fields: &[(&str, usize)]) -> PolicyConfig {
    fields
        .iter()
        .fold(PolicyConfig::preset(kind), |config, &(field, value)| {
            config.with(field, value).unwrap()
        })
}

/// The values of `t` on the host.
pub(crate) fn host<const R: usize>(t: Tensor<R>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

/// `max|a − b| ≤ tol · max(1, max|b|)`.
pub(crate) fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    let scale = b.iter().map(|y| y.abs()).fold(1.0, f32::max);
    assert!(
        diff <= tol * scale,
        "{what}: max |fused − reference| = {diff} (scale {scale})"
    );
}

/// For each `(name, fused, reference)`: the reference is not all zeros (it reaches the loss)
/// and the fused values are close to it ([`assert_close`], 1e-4); messages start with `case`.
pub(crate) fn assert_each_close_and_nonzero<'a>(
    case: &str,
    outputs: impl IntoIterator<Item = (String, &'a [f32], &'a [f32])>,
) {
    for (name, fused, reference) in outputs {
        assert!(
            reference.iter().any(|&v| v != 0.0),
            "{case}: {name} is all zeros"
        );
        assert_close(&format!("{case}: {name}"), fused, reference, 1e-4);
    }
}

/// `f` run on a rayon pool of `threads` threads.
pub(crate) fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}
