//! Numeric pieces shared by the fused kernels: LayerNorm forward and backward (and the rows a
//! LayerNorm saves for its backward), dot products, and the parameters' storage as the
//! kernels read it.

use rayon::prelude::*;

use super::linalg::{Transposed, gemm, gemm_t};
use super::pool;

/// LayerNorm's epsilon (burn's default, which every norm of the policy uses).
pub(crate) const LN_EPS: f32 = 1e-5;

/// The parameters as the kernel reads them: one flat vector in the kernel's layout order (training,
/// where they arrive as one differentiable tensor), or the separate parameter tensors' own
/// storage, each starting at its offset in that layout (decoding, without copying them).
pub(crate) enum Params<'a> {
    /// The flat vector.
    Flat(&'a [f32]),
    /// `(offset, values)` per parameter, in layout order.
    Parts(Vec<(usize, &'a [f32])>),
}

impl Params<'_> {
    /// The `len` floats at `offset` of the flat layout.
    pub(crate) fn get(&self, offset: usize, len: usize) -> &[f32] {
        match self {
            Params::Flat(p) => &p[offset..offset + len],
            Params::Parts(parts) => {
                let i = parts.partition_point(|(o, _)| *o <= offset) - 1;
                let (o, values) = parts[i];
                &values[offset - o..offset - o + len]
            }
        }
    }
}

/// LayerNorm of `rows` rows of width `d`: writes the normalised rows `hat`, the output
/// `out = hat·g + b` and each row's `1/σ`.
pub(crate) fn layer_norm(
    x: &[f32],
    g: &[f32],
    b: &[f32],
    hat: &mut [f32],
    out: &mut [f32],
    rstd: &mut [f32],
) {
    let d = g.len();
    for (r, xr) in x.chunks_exact(d).enumerate() {
        let mean = xr.iter().sum::<f32>() / d as f32;
        let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let s = 1.0 / (var + LN_EPS).sqrt();
        rstd[r] = s;
        let hr = &mut hat[r * d..(r + 1) * d];
        let or = &mut out[r * d..(r + 1) * d];
        for i in 0..d {
            hr[i] = (xr[i] - mean) * s;
            or[i] = hr[i] * g[i] + b[i];
        }
    }
}

/// What a LayerNorm over many rows of width `d` saves for its backward, in pooled buffers:
/// the normalised rows `hat [rows, d]`, the outputs `out = hat·g + b` `[rows, d]` and each
/// row's `1/σ` `[rows]`.
#[derive(Debug, Default)]
pub(crate) struct NormRows {
    pub(crate) hat: Vec<f32>,
    pub(crate) out: Vec<f32>,
    pub(crate) rstd: Vec<f32>,
    d: usize,
}

impl NormRows {
    /// Buffers for `rows` rows of width `d`, from `alloc` ([`pool::zeros`] or
    /// [`pool::scratch`]).
    pub(crate) fn new(rows: usize, d: usize, alloc: fn(usize) -> Vec<f32>) -> Self {
        Self {
            hat: alloc(rows * d),
            out: alloc(rows * d),
            rstd: alloc(rows),
            d,
        }
    }

    /// LayerNorm of the rows `x` into rows `o..` of these buffers, with the gain and bias side
    /// by side at `ln` in the flat layout (gain `[d]`, then bias `[d]`).
    pub(crate) fn forward(&mut self, p: &Params, ln: usize, x: &[f32], o: usize) {
        let d = self.d;
        let n = x.len() / d;
        layer_norm(
            x,
            p.get(ln, d),
            p.get(ln + d, d),
            &mut self.hat[o * d..(o + n) * d],
            &mut self.out[o * d..(o + n) * d],
            &mut self.rstd[o..o + n],
        );
    }

    /// The outputs from row `o` on (the left operand of a product over rows `o..`).
    pub(crate) fn out_from(&self, o: usize) -> &[f32] {
        &self.out[o * self.d..]
    }

    /// `(hat, rstd)` of rows `o..o + n`: what [`layer_norm_back_at`] reads.
    pub(crate) fn saved(&self, o: usize, n: usize) -> (&[f32], &[f32]) {
        (
            &self.hat[o * self.d..(o + n) * self.d],
            &self.rstd[o..o + n],
        )
    }
}

impl Drop for NormRows {
    fn drop(&mut self) {
        for v in [&mut self.hat, &mut self.out, &mut self.rstd] {
            pool::recycle(std::mem::take(v));
        }
    }
}

/// LayerNorm's backward pass: adds the input gradient to `dx` and the parameters' gradients
/// to `dg`, `db`, given the output gradient `dy` and the forward's `hat`, `rstd`.
pub(crate) fn layer_norm_back(
    dy: &[f32],
    hat: &[f32],
    rstd: &[f32],
    g: &[f32],
    dx: &mut [f32],
    dg: &mut [f32],
    db: &mut [f32],
) {
    let d = g.len();
    for (r, dyr) in dy.chunks_exact(d).enumerate() {
        let hr = &hat[r * d..(r + 1) * d];
        let mut mean_dh = 0.0;
        let mut mean_dh_h = 0.0;
        for i in 0..d {
            let dh = dyr[i] * g[i];
            mean_dh += dh;
            mean_dh_h += dh * hr[i];
            dg[i] += dyr[i] * hr[i];
            db[i] += dyr[i];
        }
        mean_dh /= d as f32;
        mean_dh_h /= d as f32;
        let dxr = &mut dx[r * d..(r + 1) * d];
        for i in 0..d {
            dxr[i] += rstd[r] * (dyr[i] * g[i] - mean_dh - hr[i] * mean_dh_h);
        }
    }
}

pub(crate) fn softmax_in_place(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in v.iter_mut() {
        *x /= sum;
    }
}

/// `dst += src`, element by element.
pub(crate) fn add_into(dst: &mut [f32], src: &[f32]) {
    for (a, b) in dst.iter_mut().zip(src) {
        *a += b;
    }
}

/// `dst += ` the column sums of the row-major matrix `rows` (`dst.len()` columns), in row
/// order.
pub(crate) fn column_sums_into(dst: &mut [f32], rows: &[f32]) {
    for row in rows.chunks_exact(dst.len()) {
        add_into(dst, row);
    }
}

/// `Σ a·b` with eight independent partial sums (vectorised; the order is fixed).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `y += a·x`.
pub(crate) fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// The blocks of rows a batch of `batch` rows is split into, `(first row, rows)`: `per_block`
/// rows each, the last one what is left. A function of the batch only (never of the number of
/// threads), so that results are the same for any pool size.
pub(crate) fn row_blocks(batch: usize, per_block: usize) -> Vec<(usize, usize)> {
    (0..batch)
        .step_by(per_block)
        .map(|b0| (b0, per_block.min(batch - b0)))
        .collect()
}

/// The forward pass `block` on every block of rows (`(first row, rows)`, as [`row_blocks`]
/// lists them) in parallel; returns the blocks' outputs (`output` of what a block returns)
/// joined in block order (`len` floats reserved), and what the blocks returned, in block order.
pub(crate) fn forward_blocks<S: Send>(
    blocks: Vec<(usize, usize)>,
    len: usize,
    block: impl Fn((usize, usize)) -> S + Sync + Send,
    output: impl Fn(&S) -> &[f32],
) -> (Vec<f32>, Vec<S>) {
    let results: Vec<S> = blocks.into_par_iter().map(block).collect();
    let mut joined = Vec::with_capacity(len);
    for s in &results {
        joined.extend_from_slice(output(s));
    }
    (joined, results)
}

/// `f` on every block of rows (`(first row, rows)`, as [`row_blocks`] lists them) with what
/// the block's forward pass saved, in parallel; the results in block order.
pub(crate) fn map_saved_blocks<S: Sync, T: Send>(
    blocks: Vec<(usize, usize)>,
    saved: &[S],
    f: impl Fn((usize, usize), &S) -> T + Sync + Send,
) -> Vec<T> {
    blocks
        .into_par_iter()
        .zip(saved.par_iter())
        .map(|(rows, s)| f(rows, s))
        .collect()
}

/// [`layer_norm_back`] of the LayerNorm whose gain and bias lie side by side at `ln` in the
/// flat layout (gain `[d]`, then bias `[d]`): reads the gain from `p`, adds the gain's and the
/// bias's gradients to `gp[ln..ln + 2d]` and the input's to `dx`.
pub(crate) fn layer_norm_back_at(
    p: &Params,
    gp: &mut [f32],
    (ln, d): (usize, usize),
    dy: &[f32],
    (hat, rstd): (&[f32], &[f32]),
    dx: &mut [f32],
) {
    let (dg, rest) = gp[ln..].split_at_mut(d);
    layer_norm_back(dy, hat, rstd, p.get(ln, d), dx, dg, &mut rest[..d]);
}

/// Offsets in a flat parameter vector, handed out one after the other in layout order.
#[derive(Debug, Default)]
pub(crate) struct Offsets(usize);

impl Offsets {
    /// The offset of the next `n` floats.
    pub(crate) fn take(&mut self, n: usize) -> usize {
        let start = self.0;
        self.0 += n;
        start
    }

    /// The number of floats handed out so far.
    pub(crate) fn total(&self) -> usize {
        self.0
    }
}

/// The row-major `rows × bias.len()` matrix whose every row is `bias`.
pub(crate) fn rows_of(bias: &[f32], rows: usize) -> Vec<f32> {
    let mut m = Vec::with_capacity(rows * bias.len());
    for _ in 0..rows {
        m.extend_from_slice(bias);
    }
    m
}

/// Offsets of a pre-LN feed-forward block's parameters in a flat layout:
/// `y = relu(LN(x)·W1 + b1)·W2 + b2`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FeedForwardAt {
    /// The LayerNorm: gain `[d]`, then bias `[d]`.
    pub(crate) ln: usize,
    /// `W1 [d, F]`.
    pub(crate) w1: usize,
    /// `b1 [F]`.
    pub(crate) b1: usize,
    /// `W2 [F, d]`.
    pub(crate) w2: usize,
    /// `b2 [d]`.
    pub(crate) b2: usize,
}

impl FeedForwardAt {
    /// The next offsets `take` hands out, in the policy's order: `norm_ff.gamma, norm_ff.beta,
    /// ff.hidden.weight, ff.hidden.bias, ff.output.weight, ff.output.bias`.
    pub(crate) fn take(take: &mut impl FnMut(usize) -> usize, d: usize, ff: usize) -> Self {
        Self {
            ln: take(2 * d),
            w1: take(d * ff),
            b1: take(ff),
            w2: take(ff * d),
            b2: take(d),
        }
    }

    /// The hidden units `hid = relu(LN(x)·W1 + b1)` `[n, F]` of the rows `x` `[n, d]`, the
    /// LayerNorm saved at rows `o..` of `norm`.
    pub(crate) fn hidden(
        &self,
        p: &Params,
        (n, d, ff): (usize, usize, usize),
        x: &[f32],
        (norm, o): (&mut NormRows, usize),
        hid: &mut [f32],
    ) {
        norm.forward(p, self.ln, x, o);
        fill_rows(hid, p.get(self.b1, ff));
        gemm(n, d, ff, norm.out_from(o), p.get(self.w1, d * ff), 1.0, hid);
        relu_in_place(hid);
    }

    /// The output `out = base + b2 + hid·W2` `[n, d]` of the hidden units `hid` `[n, F]`;
    /// `base` is the residual stream `[n, d]`, or nothing.
    pub(crate) fn output(
        &self,
        p: &Params,
        (n, d, ff): (usize, usize, usize),
        hid: &[f32],
        base: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let b2 = p.get(self.b2, d);
        match base {
            Some(x) => {
                for (r, row) in out.chunks_exact_mut(d).enumerate() {
                    for i in 0..d {
                        row[i] = x[r * d + i] + b2[i];
                    }
                }
            }
            None => fill_rows(out, b2),
        }
        gemm(n, ff, d, hid, p.get(self.w2, ff * d), 1.0, out);
    }

    /// The block backwards from the gradient `dy` `[n, d]` of its output to its input: the
    /// gradient of the hidden units before the ReLU into `dh` `[n, F]` (`hid`: the units
    /// after it), the LayerNorm's output gradient into `dln` `[n, d]`, its input gradient
    /// added to `dx` and its gain's and bias's to `gp` (the products' weights and biases:
    /// [`Self::weight_grads`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn back(
        &self,
        (p, gp): (&Params, &mut [f32]),
        (n, d, ff): (usize, usize, usize),
        dy: &[f32],
        (hid, norm, o): (&[f32], &NormRows, usize),
        dh: &mut [f32],
        dln: &mut [f32],
        dx: &mut [f32],
    ) {
        matmul_back_input(p, (self.w2, (n, ff, d)), dy, (0.0, dh));
        relu_back_in_place(dh, hid);
        matmul_back_input(p, (self.w1, (n, d, ff)), dh, (0.0, dln));
        layer_norm_back_at(p, gp, (self.ln, d), dln, norm.saved(o, n), dx);
    }

    /// Adds the gradients of `W1, b1, W2, b2` to `gp`, from `n` rows of the LayerNorm's output
    /// `ln_out`, the hidden units' gradient before the ReLU `dh` and after it `hid`, and the
    /// output's gradient `dy`.
    pub(crate) fn weight_grads(
        &self,
        gp: &mut [f32],
        (n, d, ff): (usize, usize, usize),
        (ln_out, dh): (&[f32], &[f32]),
        (hid, dy): (&[f32], &[f32]),
    ) {
        matmul_back_weight(gp, (self.w1, (n, d, ff)), (ln_out, dh));
        column_sums_into(&mut gp[self.b1..self.b1 + ff], &dh[..n * ff]);
        matmul_back_weight(gp, (self.w2, (n, ff, d)), (hid, dy));
        column_sums_into(&mut gp[self.b2..self.b2 + d], &dy[..n * d]);
    }
}

/// The product `y = x·W` of `n` rows backwards, `W [k, m]` at `w` in the flat layout, given
/// the output's gradient `dy [n, m]`: adds `xᵀ·dy` to `W`'s gradient in `gp`, and `dy·Wᵀ` to
/// `beta · dx` (`dx [n, k]`; a `beta` of 0 overwrites it).
pub(crate) fn matmul_back(
    (p, gp): (&Params, &mut [f32]),
    (w, (n, k, m)): (usize, (usize, usize, usize)),
    (x, dy): (&[f32], &[f32]),
    (beta, dx): (f32, &mut [f32]),
) {
    matmul_back_weight(gp, (w, (n, k, m)), (x, dy));
    matmul_back_input(p, (w, (n, k, m)), dy, (beta, dx));
}

/// The weight's part of [`matmul_back`]: adds `xᵀ·dy` to `W`'s gradient in `gp`, `W [k, m]`
/// at `w` in the flat layout.
pub(crate) fn matmul_back_weight(
    gp: &mut [f32],
    (w, (n, k, m)): (usize, (usize, usize, usize)),
    (x, dy): (&[f32], &[f32]),
) {
    gemm_t(Transposed::A, (k, n, m), x, dy, 1.0, &mut gp[w..w + k * m]);
}

/// The input's part of [`matmul_back`]: adds `dy·Wᵀ` to `beta · dx` (`dx [n, k]`; a `beta`
/// of 0 overwrites it), `W [k, m]` at `w` in the flat layout.
pub(crate) fn matmul_back_input(
    p: &Params,
    (w, (n, k, m)): (usize, (usize, usize, usize)),
    dy: &[f32],
    (beta, dx): (f32, &mut [f32]),
) {
    gemm_t(Transposed::B, (n, m, k), dy, p.get(w, k * m), beta, dx);
}

/// `v ← relu(v)`.
pub(crate) fn relu_in_place(v: &mut [f32]) {
    for x in v {
        *x = x.max(0.0);
    }
}

/// A ReLU backwards: `grad` (the output's gradient) becomes the input's, zero wherever `y`
/// (the ReLU's input or output, alike in sign) is not positive.
pub(crate) fn relu_back_in_place(grad: &mut [f32], y: &[f32]) {
    for (g, y) in grad.iter_mut().zip(y) {
        if *y <= 0.0 {
            *g = 0.0;
        }
    }
}

/// Every row of the row-major matrix `m` (rows of `row.len()`) set to `row`.
pub(crate) fn fill_rows(m: &mut [f32], row: &[f32]) {
    for r in m.chunks_exact_mut(row.len()) {
        r.copy_from_slice(row);
    }
}
