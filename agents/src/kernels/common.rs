//! Numeric pieces shared by the fused kernels: LayerNorm forward and backward (and the rows a
//! LayerNorm saves for its backward), dot products, and the parameters' storage as the
//! kernels read it.

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
