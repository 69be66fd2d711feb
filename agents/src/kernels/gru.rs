//! A stack of GRU cells over a whole sequence as one fused operation.
//!
//! The batch is split into blocks of [`ROWS_PER_BLOCK`] rows (more for very short sequences),
//! and every block runs the whole stack, forward and backward, on its own, in parallel. Within
//! a block, per layer, the input projection of every step is one matrix product; only the
//! hidden-state path is unrolled, one `[rows, d] × [d, 3d]` product per step. The backward pass
//! is back-propagation through time in reverse order, keeping the gate pre-activation gradients
//! of every step, after which the weight gradients are matrix products over all the block's
//! rows and steps; the blocks' parameter gradients are then summed in block order.
//!
//! `exp`, `sigmoid` and `tanh` are branch-free polynomial versions (errors about 2·10⁻⁷) so
//! that the gate loops vectorise.

use burn::prelude::*;

use super::common::{
    add_into, column_sums_into, forward_blocks, map_saved_blocks, row_blocks, rows_of,
};
use super::linalg::{Transposed, gemm, gemm_t};
use super::{BackwardInput, FusedOp, ROWS_PER_BLOCK, apply};

/// The fewest row-steps (batch rows × steps) a parallel block is given where the batch allows.
const MIN_BLOCK_ROW_STEPS: usize = 32;

/// The GRU stack of `layers` cells of width `d` (inputs of width `d` too) over `batch`
/// sequences of `steps` steps.
///
/// Inputs (all flat):
/// 0. `e`: the bottom cell's inputs before their `tanh` (the observation embedding)
///    `[B, T, d]`;
/// 1. the packed parameters: for every cell, bottom first, the input `Linear`'s weight
///    `[d, 3d]` and bias `[3d]`, then the hidden `Linear`'s weight `[d, 3d]` and bias `[3d]`
///    (gate layout `[r | z | n]`, see [`crate::gru::GruCell`]);
/// 2. `h0`: the hidden state of every cell before the first step `[B, L, d]`;
/// 3. `episode_start`: `[B, T]` (no gradient); a row's hidden state is multiplied by
///    `1 − episode_start` before each step.
///
/// Output: the top cell's outputs `[B, T, d]`, followed by every cell's last hidden state
/// `[B, L, d]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GruStack {
    batch: usize,
    steps: usize,
    d: usize,
    layers: usize,
}

/// What the forward pass of one block of rows keeps: the bottom cell's inputs `tanh(e)`
/// `[rows, T, d]`, and per layer, its outputs `[rows, T, d]`
/// and the gates `[rows, T, 4d]` (`r`, `z`, `n` and the hidden projection's `n` part).
#[derive(Debug)]
pub(crate) struct BlockSaved {
    x0: Vec<f32>,
    outs: Vec<Vec<f32>>,
    gates: Vec<Vec<f32>>,
}

/// Offsets of one cell's parameters in the packed vector.
#[derive(Clone, Copy)]
struct Layout {
    d: usize,
}

impl Layout {
    fn w_len(self) -> usize {
        3 * self.d * self.d
    }
    fn layer_len(self) -> usize {
        2 * (self.w_len() + 3 * self.d)
    }
    fn w_input(self, l: usize) -> usize {
        l * self.layer_len()
    }
    fn b_input(self, l: usize) -> usize {
        self.w_input(l) + self.w_len()
    }
    fn w_hidden(self, l: usize) -> usize {
        self.b_input(l) + 3 * self.d
    }
    fn b_hidden(self, l: usize) -> usize {
        self.w_hidden(l) + self.w_len()
    }
}

/// `eˣ` without branches, so that loops over slices vectorise: Cody-Waite range reduction and
/// Cephes' polynomial (relative error about 2·10⁻⁷), the input clamped to `[−87, 88]`.
#[inline(always)]
fn exp(x: f32) -> f32 {
    // 1.5·2²³: adding it rounds to an integer, kept in the low bits of the sum.
    const SHIFT: f32 = 12_582_912.0;
    let x = if x < -87.0 { -87.0 } else { x };
    let x = if x > 88.0 { 88.0 } else { x };
    let shifted = x * std::f32::consts::LOG2_E + SHIFT;
    let n = shifted - SHIFT;
    let f = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4;
    p = p * f + 1.398_199_9e-3;
    p = p * f + 8.333_452e-3;
    p = p * f + 4.166_579_6e-2;
    p = p * f + 0.166_666_65;
    p = p * f + 0.5;
    let e_f = p * f * f + f + 1.0;
    let two_n = f32::from_bits(
        shifted
            .to_bits()
            .wrapping_sub(SHIFT.to_bits())
            .wrapping_add(127)
            << 23,
    );
    e_f * two_n
}

/// `1 / (1 + e⁻ˣ)` through [`exp`].
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh x = 1 − 2 / (e²ˣ + 1)` through [`exp`] (absolute error about 2·10⁻⁷).
#[inline(always)]
pub(super) fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

impl GruStack {
    pub(crate) fn new(batch: usize, steps: usize, d: usize, layers: usize) -> Self {
        Self {
            batch,
            steps,
            d,
            layers,
        }
    }

    fn layout(&self) -> Layout {
        Layout { d: self.d }
    }

    /// Length of the packed parameter vector.
    pub(crate) fn param_len(&self) -> usize {
        self.layers * self.layout().layer_len()
    }

    /// Batch rows per parallel block: [`ROWS_PER_BLOCK`], or a multiple of it for short
    /// sequences (a single step: 32 rows), so that a block's matrix products are not too small.
    /// A function of the sequence length only, never of the number of threads.
    fn rows_per_block(&self) -> usize {
        ROWS_PER_BLOCK * (MIN_BLOCK_ROW_STEPS / (ROWS_PER_BLOCK * self.steps)).max(1)
    }

    /// The blocks of rows of the batch: `(first row, rows)`.
    fn blocks(&self) -> Vec<(usize, usize)> {
        row_blocks(self.batch, self.rows_per_block())
    }

    fn check(&self, inputs: &[&[f32]]) {
        let (b, t, d, l) = (self.batch, self.steps, self.d, self.layers);
        assert_eq!(inputs.len(), 4, "GruStack: e, params, h0, episode_start");
        assert_eq!(inputs[0].len(), b * t * d, "GruStack: e is [B, T, d]");
        assert_eq!(inputs[1].len(), self.param_len(), "GruStack: packed params");
        assert_eq!(inputs[2].len(), b * l * d, "GruStack: h0 is [B, L, d]");
        assert_eq!(inputs[3].len(), b * t, "GruStack: episode_start is [B, T]");
    }

    /// The forward pass of rows `b0 .. b0 + rows`.
    fn forward_block(&self, inputs: &[&[f32]], b0: usize, rows: usize) -> BlockSaved {
        let (t_len, d, lay) = (self.steps, self.d, self.layout());
        let (d3, d4) = (3 * d, 4 * d);
        let params = inputs[1];
        let h0 = &inputs[2][b0 * self.layers * d..(b0 + rows) * self.layers * d];
        let starts = &inputs[3][b0 * t_len..(b0 + rows) * t_len];
        let n_rows = rows * t_len;
        let x0: Vec<f32> = inputs[0][b0 * t_len * d..(b0 + rows) * t_len * d]
            .iter()
            .map(|&e| tanh(e))
            .collect();
        let mut outs: Vec<Vec<f32>> = Vec::with_capacity(self.layers);
        let mut gates_all = Vec::with_capacity(self.layers);
        for l in 0..self.layers {
            let x = match l {
                0 => x0.as_slice(),
                _ => outs[l - 1].as_slice(),
            };
            let w_i = &params[lay.w_input(l)..lay.b_input(l)];
            let b_i = &params[lay.b_input(l)..lay.w_hidden(l)];
            let w_h = &params[lay.w_hidden(l)..lay.b_hidden(l)];
            let b_h = &params[lay.b_hidden(l)..lay.b_hidden(l) + d3];
            // The input projection of every step at once: [rows·T, d] × [d, 3d].
            let mut xp = rows_of(b_i, n_rows);
            gemm(n_rows, d, d3, x, w_i, 1.0, &mut xp);
            let mut h: Vec<f32> = (0..rows)
                .flat_map(|r| h0[(r * self.layers + l) * d..][..d].iter().copied())
                .collect();
            let mut out = vec![0.0; n_rows * d];
            let mut gates = vec![0.0; n_rows * d4];
            let mut hp = vec![0.0; rows * d3];
            for t in 0..t_len {
                for r in 0..rows {
                    let keep = 1.0 - starts[r * t_len + t];
                    for v in &mut h[r * d..(r + 1) * d] {
                        *v *= keep;
                    }
                    hp[r * d3..(r + 1) * d3].copy_from_slice(b_h);
                }
                // The hidden projection of the block's rows: [rows, d] × [d, 3d].
                gemm(rows, d, d3, &h, w_h, 1.0, &mut hp);
                for r in 0..rows {
                    let row = r * t_len + t;
                    let h_r = &mut h[r * d..(r + 1) * d];
                    let hp_r = &hp[r * d3..(r + 1) * d3];
                    let xp_r = &xp[row * d3..(row + 1) * d3];
                    let (g_rz, g_rest) = gates[row * d4..(row + 1) * d4].split_at_mut(2 * d);
                    let (g_n, g_hn) = g_rest.split_at_mut(d);
                    for ((g, &a), &b) in g_rz.iter_mut().zip(&xp_r[..2 * d]).zip(&hp_r[..2 * d]) {
                        *g = sigmoid(a + b);
                    }
                    g_hn.copy_from_slice(&hp_r[2 * d..]);
                    for (((n, &a), &rg), &hn) in g_n
                        .iter_mut()
                        .zip(&xp_r[2 * d..])
                        .zip(&g_rz[..d])
                        .zip(&*g_hn)
                    {
                        *n = tanh(a + rg * hn);
                    }
                    let o = &mut out[row * d..(row + 1) * d];
                    for (((o, h), &n), &z) in o.iter_mut().zip(h_r).zip(&*g_n).zip(&g_rz[d..]) {
                        let h_new = n + z * (*h - n);
                        *o = h_new;
                        *h = h_new;
                    }
                }
            }
            outs.push(out);
            gates_all.push(gates);
        }
        BlockSaved {
            x0,
            outs,
            gates: gates_all,
        }
    }

    /// The backward pass of rows `b0 .. b0 + rows`: the gradients of this block's `e` and
    /// `h0`, and its share of the parameter gradient (empty unless `want_params`).
    fn backward_block(
        &self,
        inputs: &[&[f32]],
        saved: &BlockSaved,
        grad: &[f32],
        b0: usize,
        rows: usize,
        want_params: bool,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (b, t_len, d, n_layers, lay) =
            (self.batch, self.steps, self.d, self.layers, self.layout());
        let (d3, d4) = (3 * d, 4 * d);
        let params = inputs[1];
        let h0 = &inputs[2][b0 * n_layers * d..(b0 + rows) * n_layers * d];
        let starts = &inputs[3][b0 * t_len..(b0 + rows) * t_len];
        let n_rows = rows * t_len;
        let g_last = &grad[b * t_len * d..][(b0 * n_layers * d)..((b0 + rows) * n_layers * d)];
        // The gradient reaching the current layer's outputs: the top cell's from `grad`.
        let mut g_out = grad[b0 * t_len * d..(b0 + rows) * t_len * d].to_vec();
        let mut dh0 = vec![0.0; rows * n_layers * d];
        let mut dparams = if want_params {
            vec![0.0; self.param_len()]
        } else {
            Vec::new()
        };
        for l in (0..n_layers).rev() {
            let out = &saved.outs[l];
            let gates = &saved.gates[l];
            let x = match l {
                0 => saved.x0.as_slice(),
                _ => saved.outs[l - 1].as_slice(),
            };
            let w_h = &params[lay.w_hidden(l)..lay.b_hidden(l)];
            for r in 0..rows {
                let last = (r * t_len + t_len - 1) * d;
                let g = &g_last[(r * n_layers + l) * d..][..d];
                for (o, &v) in g_out[last..last + d].iter_mut().zip(g) {
                    *o += v;
                }
            }
            // Gradients of the input projection (rows in batch-major order, like the inputs) and of the
            // hidden projection (time-major, so that a step's rows are contiguous), every step.
            let mut dxp = vec![0.0; n_rows * d3];
            let mut dhp = vec![0.0; n_rows * d3];
            // The masked hidden state each step read, time-major like `dhp`.
            let mut h_prev_all = vec![0.0; n_rows * d];
            // The gradient reaching each row's hidden state from later steps.
            let mut dh = vec![0.0; rows * d];
            for t in (0..t_len).rev() {
                for r in 0..rows {
                    let row = r * t_len + t;
                    let row_t = t * rows + r;
                    let keep = 1.0 - starts[row];
                    let h_prev_src = match t {
                        0 => &h0[(r * n_layers + l) * d..][..d],
                        _ => &out[(row - 1) * d..row * d],
                    };
                    let h_prev = &mut h_prev_all[row_t * d..(row_t + 1) * d];
                    for (p, &s) in h_prev.iter_mut().zip(h_prev_src) {
                        *p = keep * s;
                    }
                    let g = &gates[row * d4..(row + 1) * d4];
                    let go = &g_out[row * d..(row + 1) * d];
                    let dh_r = &mut dh[r * d..(r + 1) * d];
                    let dxp_r = &mut dxp[row * d3..(row + 1) * d3];
                    let dhp_r = &mut dhp[row_t * d3..(row_t + 1) * d3];
                    for j in 0..d {
                        let (rg, zg, n, hn) = (g[j], g[d + j], g[2 * d + j], g[3 * d + j]);
                        let dht = go[j] + dh_r[j];
                        let da_n = dht * (1.0 - zg) * (1.0 - n * n);
                        let da_z = dht * (h_prev[j] - n) * zg * (1.0 - zg);
                        let da_r = da_n * hn * rg * (1.0 - rg);
                        dxp_r[j] = da_r;
                        dxp_r[d + j] = da_z;
                        dxp_r[2 * d + j] = da_n;
                        dhp_r[j] = da_r;
                        dhp_r[d + j] = da_z;
                        dhp_r[2 * d + j] = da_n * rg;
                        dh_r[j] = dht * zg;
                    }
                }
                // Through the hidden projection: [rows, 3d] × [d, 3d]ᵀ.
                gemm_t(
                    Transposed::B,
                    (rows, d3, d),
                    &dhp[t * rows * d3..],
                    w_h,
                    1.0,
                    &mut dh,
                );
                for r in 0..rows {
                    let keep = 1.0 - starts[r * t_len + t];
                    for v in &mut dh[r * d..(r + 1) * d] {
                        *v *= keep;
                    }
                }
            }
            for r in 0..rows {
                dh0[(r * n_layers + l) * d..][..d].copy_from_slice(&dh[r * d..(r + 1) * d]);
            }
            if want_params {
                let (dw_i, rest) = dparams[lay.w_input(l)..].split_at_mut(lay.w_len());
                let (db_i, rest) = rest.split_at_mut(d3);
                let (dw_h, rest) = rest.split_at_mut(lay.w_len());
                let db_h = &mut rest[..d3];
                gemm_t(Transposed::A, (d, n_rows, d3), x, &dxp, 0.0, dw_i);
                column_sums_into(db_i, &dxp);
                gemm_t(Transposed::A, (d, n_rows, d3), &h_prev_all, &dhp, 0.0, dw_h);
                column_sums_into(db_h, &dhp);
            }
            // The gradient of this layer's inputs: [rows·T, 3d] × [d, 3d]ᵀ.
            let w_i = &params[lay.w_input(l)..lay.b_input(l)];
            gemm_t(Transposed::B, (n_rows, d3, d), &dxp, w_i, 0.0, &mut g_out);
        }
        // Through the tanh of the bottom cell's inputs.
        for (g, &x) in g_out.iter_mut().zip(&saved.x0) {
            *g *= 1.0 - x * x;
        }
        (g_out, dh0, dparams)
    }
}

impl FusedOp for GruStack {
    type Saved = Vec<BlockSaved>;

    fn forward(&self, inputs: &[&[f32]], _save: bool) -> (Vec<f32>, Option<Vec<BlockSaved>>) {
        self.check(inputs);
        let (b, t, d, n_layers) = (self.batch, self.steps, self.d, self.layers);
        let (mut output, saved) = forward_blocks(
            self.blocks(),
            b * t * d + b * n_layers * d,
            |(b0, rows)| self.forward_block(inputs, b0, rows),
            |s| &s.outs[n_layers - 1],
        );
        for s in &saved {
            let rows = s.outs[0].len() / (t * d);
            for r in 0..rows {
                for out in &s.outs {
                    output.extend_from_slice(&out[(r * t + t - 1) * d..(r * t + t) * d]);
                }
            }
        }
        (output, Some(saved))
    }

    fn backward(&self, b: BackwardInput<'_, Vec<BlockSaved>>) -> Vec<Vec<f32>> {
        let inputs = b.inputs;
        self.check(inputs);
        let blocks = map_saved_blocks(self.blocks(), b.saved, |(b0, rows), s| {
            self.backward_block(inputs, s, b.grad, b0, rows, b.wants(1))
        });
        let mut dx = Vec::new();
        let mut dh0 = Vec::new();
        let mut dparams = if b.wants(1) {
            vec![0.0; self.param_len()]
        } else {
            Vec::new()
        };
        // Block order, whatever the number of threads.
        for (bx, bh, bp) in &blocks {
            if b.wants(0) {
                dx.extend_from_slice(bx);
            }
            if b.wants(2) {
                dh0.extend_from_slice(bh);
            }
            add_into(&mut dparams, bp);
        }
        let dstarts = if b.wants(3) {
            vec![0.0; self.batch * self.steps]
        } else {
            Vec::new()
        };
        vec![dx, dparams, dh0, dstarts]
    }
}

/// The GRU stack reading `tanh(e)` as one operation (one autodiff node on `Autodiff<Flex>`).
///
/// # Shapes
/// - `e`: `[B, T, d]`, `params`: the packed cell parameters (see [`GruStack`]), `h0`:
///   `[B, L, d]`, `episode_start`: `[B, T]`
/// - returns the top cell's outputs `[B, T, d]` and every cell's last hidden state
///   `[B, L, d]`
pub(crate) fn gru_stack(
    e: Tensor<3>,
    params: Tensor<1>,
    h0: Tensor<3>,
    episode_start: Tensor<2>,
) -> (Tensor<3>, Tensor<3>) {
    let [b, t, d] = e.dims();
    let [_, n_layers, _] = h0.dims();
    let op = GruStack::new(b, t, d, n_layers);
    assert_eq!(params.dims()[0], op.param_len(), "GruStack: packed params");
    let out = apply(
        op,
        [
            e.reshape([b * t * d]),
            params,
            h0.reshape([b * n_layers * d]),
            episode_start.reshape([b * t]),
        ],
    );
    let top = out.clone().narrow(0, 0, b * t * d).reshape([b, t, d]);
    let last = out
        .narrow(0, b * t * d, b * n_layers * d)
        .reshape([b, n_layers, d]);
    (top, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_branch_free_functions_match_std() {
        for i in -40_000..=40_000 {
            let x = i as f32 * 5e-4;
            let e = (exp(x) - x.exp()).abs() / x.exp();
            assert!(e < 5e-7, "exp({x}): relative error {e}");
            let s = (sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs();
            assert!(s < 5e-7, "sigmoid({x}): error {s}");
            let t = (tanh(x) - x.tanh()).abs();
            assert!(t < 5e-7, "tanh({x}): error {t}");
        }
        for x in [-1e4f32, -100.0, -88.0, 88.0, 100.0, 1e4] {
            assert!(exp(x).is_finite() && exp(x) >= 0.0);
            assert!((tanh(x) - x.signum()).abs() < 1e-6);
            assert!((sigmoid(x) - if x > 0.0 { 1.0 } else { 0.0 }).abs() < 1e-6);
        }
    }
}
