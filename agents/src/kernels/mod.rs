//! Fused CPU kernels for the policies.
//!
//! The Feedback Transformer and the GRU are sequential in time: written with tensor operations,
//! one training step of theirs is dozens of small operations per time step, and on the CPU the
//! cost of each operation (dispatch, allocation, the autodiff graph) outweighs its arithmetic.
//! The standard Transformer is parallel over time, but its tensor-operation attention scores
//! every query against the whole cached prefix plus chunk and masks most of it; its kernel
//! visits only the `τ + 1` slots of each query's window. The MLP is not recurrent, but its
//! layers are small and its `tanh` (the backend's scalar `tanhf`, run again in the backward
//! pass) costs more than its matrix products.
//! The kernels here run a whole sequence (the MLP: a whole batch of rows) forward, and its
//! hand-derived backward pass, on plain `f32` buffers with batched matrix products
//! (`ndarray`/`matrixmultiply`), parallel over the batch on the rayon pool, and enter burn's
//! autodiff graph as **one** operation each.
//!
//! A kernel is used where the policy's tensors live on the `flex` CPU backend (with or without
//! autodiff, without gradient checkpointing) and [`fused_enabled`] is true (the default). The
//! tensor-operation implementations in the policies stay as the reference path: other backends
//! use them, the tests compare the kernels against them, and [`set_fused`] switches a process
//! back to them (the `throughput` binary measures both in one run).
//!
//! # Determinism
//! The batch is split into blocks of a fixed number of rows ([`ROWS_PER_BLOCK`]), whatever the
//! number of threads, and every reduction over rows (weight gradients) runs in a fixed order
//! after the parallel part, so results are bitwise the same for any pool size.

use std::sync::atomic::{AtomicU8, Ordering};

use burn::prelude::*;

#[cfg(feature = "flex")]
pub(crate) mod attention;
#[cfg(feature = "flex")]
pub(crate) mod common;
#[cfg(feature = "flex")]
pub(crate) mod feedback;
#[cfg(feature = "flex")]
mod glue;
#[cfg(feature = "flex")]
pub(crate) mod gru;
#[cfg(feature = "flex")]
pub(crate) mod linalg;
#[cfg(feature = "flex")]
pub(crate) mod mlp;
#[cfg(feature = "flex")]
pub(crate) mod pool;
#[cfg(feature = "flex")]
pub(crate) mod transformer;

#[cfg(feature = "flex")]
#[allow(unused_imports)]
pub(crate) use glue::{BackwardInput, FusedOp, HostTensor, apply};

/// Rows of the batch a parallel task processes. Fixed, so that the split (and so every result)
/// does not depend on the number of threads.
pub const ROWS_PER_BLOCK: usize = 8;

/// Unset (0), on (1), off (2).
static FUSED: AtomicU8 = AtomicU8::new(0);

/// The environment variable that picks the path for a whole process (and the worker processes
/// it starts): `FBRL_KERNELS=reference` runs every policy on its tensor-operation reference
/// path; `fused` (or unset) uses the kernels where they apply.
pub const KERNELS_ENV: &str = "FBRL_KERNELS";

/// A value of [`KERNELS_ENV`] that is not a kernel choice.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{KERNELS_ENV}={value:?} is not a kernel choice: expected `fused`, `reference` or unset")]
pub struct KernelsEnvError {
    /// The value the variable holds.
    pub value: String,
}

/// The choice a value of [`KERNELS_ENV`] makes: `Some(true)` for fused (also for unset or
/// empty), `Some(false)` for the reference path.
pub fn parse_kernels(value: Option<&str>) -> Result<bool, KernelsEnvError> {
    match value {
        None | Some("fused" | "") => Ok(true),
        Some("reference") => Ok(false),
        Some(other) => Err(KernelsEnvError {
            value: other.to_string(),
        }),
    }
}

/// Settles the process's kernel choice: the last [`set_fused`], else [`KERNELS_ENV`] (read
/// once). Policy construction calls it, so a bad value surfaces as an error there rather than
/// as a panic in the first step.
pub fn check_kernels_env() -> Result<bool, KernelsEnvError> {
    match FUSED.load(Ordering::Relaxed) {
        1 => Ok(true),
        2 => Ok(false),
        _ => {
            let value = std::env::var(KERNELS_ENV).ok();
            let on = parse_kernels(value.as_deref())?;
            set_fused(on);
            Ok(on)
        }
    }
}

/// Whether the fused kernels are used where they apply: the last [`set_fused`], else
/// [`KERNELS_ENV`], else yes.
///
/// # Panics
/// If [`KERNELS_ENV`] holds something other than `fused` or `reference` and nothing checked
/// it first ([`check_kernels_env`], which [`PolicyConfig::init_for`](crate::PolicyConfig::init_for)
/// and policy files' loading call, returns that as an error).
pub fn fused_enabled() -> bool {
    check_kernels_env().unwrap_or_else(|e| panic!("{e}"))
}

/// Turns the fused kernels on or off for the whole process (off: every policy runs its
/// tensor-operation reference path). Meant for benchmarks and tests that compare the two.
pub fn set_fused(enabled: bool) {
    FUSED.store(if enabled { 1 } else { 2 }, Ordering::Relaxed);
}

/// Whether a tensor on `device` would go through the fused kernels: the flex backend, bare or
/// under autodiff without gradient checkpointing, and [`fused_enabled`].
pub fn runs_fused(device: &Device) -> bool {
    fused_enabled() && glue_supports(device)
}

#[cfg(feature = "flex")]
fn glue_supports(device: &Device) -> bool {
    glue::supports(device)
}

#[cfg(not(feature = "flex"))]
fn glue_supports(_device: &Device) -> bool {
    false
}

/// A tensor's values on the host as `f32`, row-major.
#[cfg(feature = "flex")]
pub(crate) fn host_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 tensor")
}

/// A rank-3 tensor of `values` (row-major) on `device`.
#[cfg(feature = "flex")]
pub(crate) fn tensor3(values: Vec<f32>, shape: [usize; 3], device: &Device) -> Tensor<3> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Tensors read on the host, in place where they allow it (see [`HostTensor`]).
#[cfg(feature = "flex")]
pub(crate) fn host_tensors<const D: usize>(tensors: Vec<Tensor<D>>) -> Vec<HostTensor> {
    tensors.into_iter().map(HostTensor::new).collect()
}

/// The parameter tensors of a decoding step read in place, and each one's offset in the
/// kernel's flat layout (the tensors laid end to end): what [`common::Params::Parts`] takes.
#[cfg(feature = "flex")]
pub(crate) fn param_parts(storage: &[HostTensor]) -> Vec<(usize, &[f32])> {
    let mut offset = 0;
    storage
        .iter()
        .map(|t| {
            let values = t.values();
            offset += values.len();
            (offset - values.len(), values)
        })
        .collect()
}

/// A parameter tensor as a flat vector, for a kernel's parameter list.
#[cfg(feature = "flex")]
pub(crate) fn flat<const D: usize>(t: Tensor<D>) -> Tensor<1> {
    let n = t.shape().num_elements();
    t.reshape([n])
}

/// A LayerNorm's gain and bias, in that order, for a kernel's parameter list.
#[cfg(feature = "flex")]
pub(crate) fn push_norm(ln: &burn::nn::LayerNorm, out: &mut Vec<Tensor<1>>) {
    out.push(ln.gamma.val());
    out.push(ln.beta.as_ref().expect("LayerNorm with beta").val());
}

/// A window `[B, τ, width]` moved on by one step on the host: per row the oldest slot is
/// dropped and `new(row)` (`width` floats) appended.
#[cfg(feature = "flex")]
pub(crate) fn slide_window<'a>(
    old: &[f32],
    (batch, span, width): (usize, usize, usize),
    new: impl Fn(usize) -> &'a [f32],
) -> Vec<f32> {
    let mut out = Vec::with_capacity(batch * span * width);
    for r in 0..batch {
        out.extend_from_slice(&old[(r * span + 1) * width..(r + 1) * span * width]);
        out.extend_from_slice(&new(r)[..width]);
    }
    out
}

/// The validity `[B, τ]` of a window after one decoding step: the slots kept stay valid unless
/// the step started a new episode, and the new slot is valid.
#[cfg(feature = "flex")]
pub(crate) fn slide_valid(valid: &[f32], starts: &[f32], span: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(starts.len() * span);
    for (r, start) in starts.iter().enumerate() {
        let keep = if *start > 0.5 { 0.0 } else { 1.0 };
        out.extend(valid[r * span + 1..(r + 1) * span].iter().map(|v| v * keep));
        out.push(1.0);
    }
    out
}
