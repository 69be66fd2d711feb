//! The MLP policy (two `tanh` layers, then the logits and value heads) as one fused operation.
//!
//! Written with tensor operations the MLP is cheap in arithmetic but not in overhead: every
//! layer is a matrix product, a bias add and a `tanh` (the backend's scalar `tanhf`, computed
//! again in the backward pass), each a separate allocation and autodiff node. Here the batch
//! is split into blocks of [`MLP_ROWS_PER_BLOCK`] rows; per block the forward pass is three
//! matrix products (the two heads share one, their weights side by side) with the branch-free
//! `tanh` of the GRU kernel, keeping both layers' outputs; the backward pass uses them (the
//! derivative of `tanh` is `1 − tanh²`). Blocks run in parallel and their parameter gradients
//! are summed in block order, so results do not depend on the number of threads.

use burn::nn::Linear;
use burn::prelude::*;

use super::common::{
    add_into, column_sums_into, forward_blocks, map_saved_blocks, row_blocks, rows_of,
};
use super::gru::tanh;
use super::linalg::{Transposed, gemm, gemm_t};
use super::{BackwardInput, FusedOp, apply};

/// Rows of the batch one parallel task processes (fixed: the split must not depend on the
/// number of threads).
pub(crate) const MLP_ROWS_PER_BLOCK: usize = 256;

/// The MLP `x → h1 = tanh(x·W1 + b1) → h2 = tanh(h1·W2 + b2) → (h2·Wp + bp, h2·Wv + bv)` over
/// `rows` input rows.
///
/// Inputs (all flat, row-major, `Linear` weights `[d_input, d_output]`):
/// 0. `x` `[rows, d_in]`; 1. `W1` `[d_in, hidden]`; 2. `b1` `[hidden]`;
/// 3. `W2` `[hidden, hidden]`; 4. `b2` `[hidden]`; 5. `Wp` `[hidden, A]`; 6. `bp` `[A]`;
/// 7. `Wv` `[hidden, 1]`; 8. `bv` `[1]`.
///
/// Output: `[rows, A + 1]`, every row the `A` logits followed by the value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MlpNet {
    rows: usize,
    d_in: usize,
    hidden: usize,
    actions: usize,
}

/// What the forward pass of one block keeps: both layers' outputs `[rows, hidden]`.
#[derive(Debug)]
pub(crate) struct BlockSaved {
    h1: Vec<f32>,
    h2: Vec<f32>,
}

/// `g ⊙ (1 − h²)`, in place in `g`: the gradient through `h = tanh(z)`.
fn through_tanh(g: &mut [f32], h: &[f32]) {
    for (g, &h) in g.iter_mut().zip(h) {
        *g *= 1.0 - h * h;
    }
}

impl MlpNet {
    /// The blocks of rows: `(first row, rows)`.
    fn blocks(&self) -> Vec<(usize, usize)> {
        row_blocks(self.rows, MLP_ROWS_PER_BLOCK)
    }

    /// Width of the output (and of the joined head weights): the logits and the value.
    fn out_width(&self) -> usize {
        self.actions + 1
    }

    fn check(&self, inputs: &[&[f32]]) {
        let (d, h, a) = (self.d_in, self.hidden, self.actions);
        let want = [self.rows * d, d * h, h, h * h, h, h * a, a, h, 1];
        let got: Vec<usize> = inputs.iter().map(|x| x.len()).collect();
        assert_eq!(got, want, "MlpNet: input sizes");
    }

    /// The heads' weights side by side `[hidden, A + 1]`, and their biases `[A + 1]`.
    fn joined_heads(&self, inputs: &[&[f32]]) -> (Vec<f32>, Vec<f32>) {
        let (wp, bp, wv, bv) = (inputs[5], inputs[6], inputs[7], inputs[8]);
        let mut w = Vec::with_capacity(self.hidden * self.out_width());
        for (row, v) in wp.chunks_exact(self.actions).zip(wv) {
            w.extend_from_slice(row);
            w.push(*v);
        }
        let mut b = bp.to_vec();
        b.push(bv[0]);
        (w, b)
    }

    /// The block's output `[rows, A + 1]` and its two layers' outputs.
    fn forward_block(
        &self,
        inputs: &[&[f32]],
        heads: (&[f32], &[f32]),
        r0: usize,
        rows: usize,
    ) -> (Vec<f32>, BlockSaved) {
        let (d, h, o) = (self.d_in, self.hidden, self.out_width());
        let x = &inputs[0][r0 * d..(r0 + rows) * d];
        let mut h1 = rows_of(inputs[2], rows);
        gemm(rows, d, h, x, inputs[1], 1.0, &mut h1);
        h1.iter_mut().for_each(|v| *v = tanh(*v));
        let mut h2 = rows_of(inputs[4], rows);
        gemm(rows, h, h, &h1, inputs[3], 1.0, &mut h2);
        h2.iter_mut().for_each(|v| *v = tanh(*v));
        let mut out = rows_of(heads.1, rows);
        gemm(rows, h, o, &h2, heads.0, 1.0, &mut out);
        (out, BlockSaved { h1, h2 })
    }

    /// The block's input gradient `[rows, d_in]` (empty unless `want_x`) and its parameter
    /// gradients in input order (`W1, b1, W2, b2`, then the joined heads' weights and biases).
    fn backward_block(
        &self,
        inputs: &[&[f32]],
        heads_w: &[f32],
        s: &BlockSaved,
        grad: &[f32],
        (r0, rows): (usize, usize),
        want_x: bool,
    ) -> (Vec<f32>, [Vec<f32>; 6]) {
        let (d, h, o) = (self.d_in, self.hidden, self.out_width());
        let x = &inputs[0][r0 * d..(r0 + rows) * d];
        let g = &grad[r0 * o..(r0 + rows) * o];
        // Heads.
        let mut dwh = vec![0.0; h * o];
        gemm_t(Transposed::A, (h, rows, o), &s.h2, g, 0.0, &mut dwh);
        let mut dbh = vec![0.0; o];
        column_sums_into(&mut dbh, g);
        let mut g2 = vec![0.0; rows * h];
        gemm_t(Transposed::B, (rows, o, h), g, heads_w, 0.0, &mut g2);
        // Second layer.
        through_tanh(&mut g2, &s.h2);
        let mut dw2 = vec![0.0; h * h];
        gemm_t(Transposed::A, (h, rows, h), &s.h1, &g2, 0.0, &mut dw2);
        let mut db2 = vec![0.0; h];
        column_sums_into(&mut db2, &g2);
        let mut g1 = vec![0.0; rows * h];
        gemm_t(Transposed::B, (rows, h, h), &g2, inputs[3], 0.0, &mut g1);
        // First layer.
        through_tanh(&mut g1, &s.h1);
        let mut dw1 = vec![0.0; d * h];
        gemm_t(Transposed::A, (d, rows, h), x, &g1, 0.0, &mut dw1);
        let mut db1 = vec![0.0; h];
        column_sums_into(&mut db1, &g1);
        let dx = if want_x {
            let mut dx = vec![0.0; rows * d];
            gemm_t(Transposed::B, (rows, h, d), &g1, inputs[1], 0.0, &mut dx);
            dx
        } else {
            Vec::new()
        };
        (dx, [dw1, db1, dw2, db2, dwh, dbh])
    }
}

impl FusedOp for MlpNet {
    type Saved = Vec<BlockSaved>;

    fn forward(&self, inputs: &[&[f32]], save: bool) -> (Vec<f32>, Option<Vec<BlockSaved>>) {
        self.check(inputs);
        let (w, b) = self.joined_heads(inputs);
        let (output, blocks) = forward_blocks(
            self.blocks(),
            self.rows * self.out_width(),
            |(r0, rows)| self.forward_block(inputs, (&w, &b), r0, rows),
            |(out, _)| out,
        );
        let saved = blocks.into_iter().map(|(_, s)| s).collect();
        (output, save.then_some(saved))
    }

    fn backward(&self, b: BackwardInput<'_, Vec<BlockSaved>>) -> Vec<Vec<f32>> {
        let inputs = b.inputs;
        self.check(inputs);
        let (w, _) = self.joined_heads(inputs);
        let blocks = map_saved_blocks(self.blocks(), b.saved, |rows, s| {
            self.backward_block(inputs, &w, s, b.grad, rows, b.wants(0))
        });
        let (h, a) = (self.hidden, self.actions);
        let mut dx = Vec::new();
        let mut dparams = [
            vec![0.0; self.d_in * h],
            vec![0.0; h],
            vec![0.0; h * h],
            vec![0.0; h],
            vec![0.0; h * (a + 1)],
            vec![0.0; a + 1],
        ];
        // Block order, whatever the number of threads.
        for (bx, bp) in &blocks {
            dx.extend_from_slice(bx);
            for (acc, part) in dparams.iter_mut().zip(bp) {
                add_into(acc, part);
            }
        }
        let [dw1, db1, dw2, db2, dwh, dbh] = dparams;
        let mut dwp = Vec::with_capacity(h * a);
        let mut dwv = Vec::with_capacity(h);
        for row in dwh.chunks_exact(a + 1) {
            dwp.extend_from_slice(&row[..a]);
            dwv.push(row[a]);
        }
        let (dbp, dbv) = (dbh[..a].to_vec(), vec![dbh[a]]);
        vec![dx, dw1, db1, dw2, db2, dwp, dbp, dwv, dbv]
    }
}

/// A `Linear`'s weight `[d_input, d_output]` flattened, and its bias (zeros without one).
fn flat_linear(linear: &Linear) -> (Tensor<1>, Tensor<1>) {
    let weight = linear.weight.val();
    let [d_in, d_out] = weight.dims();
    let bias = match &linear.bias {
        Some(bias) => bias.val(),
        None => Tensor::zeros([d_out], &weight.device()),
    };
    (weight.reshape([d_in * d_out]), bias)
}

/// The MLP as one operation (one autodiff node on `Autodiff<Flex>`): two `tanh` layers, then
/// the policy and value heads.
///
/// # Shapes
/// - `x`: `[N, d_in]`; `layer1`: `d_in → hidden`; `layer2`: `hidden → hidden`; `policy`:
///   `hidden → A`; `value`: `hidden → 1`
/// - returns `(logits [N, A], values [N])`
pub(crate) fn mlp_forward(
    x: Tensor<2>,
    [layer1, layer2, policy, value]: [&Linear; 4],
) -> (Tensor<2>, Tensor<1>) {
    let [rows, d_in] = x.dims();
    let [hidden, actions] = policy.weight.dims();
    let op = MlpNet {
        rows,
        d_in,
        hidden,
        actions,
    };
    let (w1, b1) = flat_linear(layer1);
    let (w2, b2) = flat_linear(layer2);
    let (wp, bp) = flat_linear(policy);
    let (wv, bv) = flat_linear(value);
    let out = apply(
        op,
        [x.reshape([rows * d_in]), w1, b1, w2, b2, wp, bp, wv, bv],
    )
    .reshape([rows, actions + 1]); // [N, A + 1]
    let logits = out.clone().narrow(1, 0, actions); // [N, A]
    let values = out.narrow(1, actions, 1).reshape([rows]); // [N]
    (logits, values)
}
