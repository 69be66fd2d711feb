//! The Feedback Transformer's recurrence ([`crate::feedback`]) as one fused operation: the
//! forward pass over a whole sequence, its hand-derived backward pass, and the single decoding
//! step of the rollouts.
//!
//! The operation maps the embedded observations `x0 [B, T, d]`, the memory vectors the sequence
//! starts from `m0 [B, τ, d]` and the trunk's parameters (flattened in the order of [`Layout`])
//! to the last layer's outputs `[B, T, d]`; the actor-critic heads stay tensor operations. It
//! computes exactly what the reference path of [`crate::feedback`] computes: pre-LN layers
//! attending to the last `τ` memory vectors of the episode plus their own input, keys and values
//! `Wkv · LN(m)` recomputed from the starting memory vectors with the current weights, the
//! memory vector a softmax-weighted mix of the embedding and every layer's output.
//!
//! Each block of [`ROWS_PER_BLOCK`](super::ROWS_PER_BLOCK) batch rows runs on its own (rows do
//! not interact); the products inside a step are matrix products over the rows of a block.
//! The backward pass of a block keeps the per-step gradients of every linear layer's output and
//! forms the weight gradients as one matrix product over all `T × rows` at the end; blocks'
//! gradients are summed in block order.

//!
//! The files follow the three jobs: `layout.rs` (sizes and where each parameter lives),
//! `forward.rs` (a block's forward pass and the trace it keeps), `backward.rs` (a block's
//! backward pass); this file runs the blocks of a batch in parallel, for training
//! ([`FeedbackSequence`]) and for one decoding step ([`decode_step`]).

mod backward;
mod forward;
mod layout;

use self::backward::backward_block;
pub(crate) use self::forward::Trace;
use self::forward::{BlockInput, Window, forward_block};
pub(crate) use self::layout::{Dims, Layout};
use super::attention::{self, TrunkDims};
pub(crate) use super::common::Params;
use super::common::{forward_blocks, row_blocks};
use super::glue::{BackwardInput, FusedOp};
use super::{ROWS_PER_BLOCK, pool};

/// The fused sequence operation: inputs `[params, x0 [B,T,d], m0 [B,τ,d]]`, output the last
/// layer's outputs `[B, T, d]`.
pub(crate) type FeedbackSequence = attention::Sequence<Dims, Layout>;

impl FusedOp for FeedbackSequence {
    type Saved = Vec<Trace>;

    fn forward(&self, inputs: &[&[f32]], save: bool) -> (Vec<f32>, Option<Vec<Trace>>) {
        let (params, x0, m0) = (Params::Flat(inputs[0]), inputs[1], inputs[2]);
        let (d, span) = (self.dims.trunk.d, self.dims.trunk.span);
        let (top, results) = forward_blocks(
            self.blocks(),
            self.batch * self.steps * d,
            |(b0, rows)| {
                let m0 = Window::Vectors(&m0[b0 * span * d..(b0 + rows) * span * d]);
                let input = self.block_input(x0, (b0, rows), m0);
                forward_block(&self.dims, &self.layout, &params, &input)
            },
            |(out, _)| &out.top,
        );
        let traces = results
            .into_iter()
            .map(|(out, trace)| {
                pool::recycle(out.top);
                trace
            })
            .collect();
        (top, save.then_some(traces))
    }

    fn backward(&self, b: BackwardInput<'_, Vec<Trace>>) -> Vec<Vec<f32>> {
        let params = Params::Flat(b.inputs[0]);
        let TrunkDims { d, span, .. } = self.dims.trunk;
        let want_m0 = b.wants(2);
        // Empty when the starting memory wants no gradient (the glue then registers none).
        let mut gm = Vec::with_capacity(if want_m0 { self.batch * span * d } else { 0 });
        let (gp, gx) = self.backward_blocks(
            (b.saved, b.grad),
            self.layout.len,
            |_, trace, dtop| {
                backward_block(&self.dims, &self.layout, &params, trace, dtop, want_m0)
            },
            |_, m0| gm.extend_from_slice(&m0),
        );
        vec![gp, gx, gm]
    }
}

/// One decoding step for a batch: the embedded observations `x0 [B, d]`, the episode starts
/// `[B]`, the window's cached keys/values per group `[G][B, τ, 2d]` and validity `[B, τ]`.
/// Returns the last layer's outputs `[B, d]`, the new memory vectors `[B, d]` and their
/// keys/values per group `[G][B, 2d]`.
pub(crate) fn decode_step(
    dims: &Dims,
    at: &Layout,
    params: &Params,
    x0: &[f32],
    starts: &[f32],
    kv: &[Vec<f32>],
    valid: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<Vec<f32>>) {
    let (d, span, groups) = (dims.trunk.d, dims.trunk.span, dims.groups);
    let batch = starts.len();
    let (top, results) = forward_blocks(
        row_blocks(batch, ROWS_PER_BLOCK),
        batch * d,
        |(b0, rows)| {
            let window = Window::KeyValues(
                kv.iter()
                    .map(|k| &k[b0 * span * 2 * d..(b0 + rows) * span * 2 * d])
                    .collect(),
            );
            let io = (x0, starts, valid);
            let input = BlockInput::rows_of(&dims.trunk, 1, io, (b0, rows), window);
            forward_block(dims, at, params, &input)
        },
        |(out, _)| &out.top,
    );
    let mut m = Vec::with_capacity(batch * d);
    let mut new_kv = vec![Vec::with_capacity(batch * 2 * d); groups];
    let hist = span + 1;
    for (out, tr) in results {
        m.extend_from_slice(&out.last_m);
        for (g, kv_g) in new_kv.iter_mut().enumerate() {
            for r in 0..tr.rows {
                let i = (g * tr.rows + r) * hist + span;
                kv_g.extend_from_slice(&tr.kv_hist[i * 2 * d..(i + 1) * 2 * d]);
            }
        }
    }
    (top, m, new_kv)
}
