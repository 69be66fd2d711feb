//! The standard Transformer's trunk ([`crate::transformer`]) as one fused operation: the
//! forward pass over a chunk with its cached prefix, its hand-derived backward pass, and the
//! single decoding step of the rollouts.
//!
//! The operation maps the embedded observations `x0 [B, T, d]`, the cached keys and values of
//! the `τ` steps before the chunk (per layer `[B, τ, d]` each, keys then values) and the trunk's
//! parameters (flattened in the order of [`Layout`]) to the last layer's outputs `[B, T, d]`;
//! the actor-critic heads stay tensor operations. It computes exactly what the reference path
//! of [`crate::transformer`] computes: pre-LN layers in which the query of step `t` attends to
//! the keys of steps `t-τ..=t` of the layer's input (the prefix from the cache, the rest from
//! the chunk) within the current episode, with a learned relative position bias, and (with
//! `gating`) the GTrXL gates in place of the residual connections.
//!
//! Unlike the Feedback Transformer, a layer depends on time only through its input, so every
//! layer runs over the whole chunk at once: the projections and the feed-forward block are
//! matrix products over all `T × rows` of a block, and the attention of a query visits only
//! the `τ + 1` key slots of its window (the reference computes the full `T × (τ + T)` score
//! matrix and masks most of it). Each block of [`ROWS_PER_BLOCK`](super::ROWS_PER_BLOCK) batch
//! rows runs on its own; blocks' parameter gradients are summed in block order, so results do
//! not depend on the number of threads.

use super::attention::{self, BlockGrads, Sizes, TrunkDims};
use super::common::{
    FeedForwardAt, NormRows, Offsets, Params, axpy, dot, forward_blocks, layer_norm_back_at,
    matmul_back, matmul_back_input, matmul_back_weight, relu_back_in_place, relu_in_place,
    row_blocks,
};
use super::glue::{BackwardInput, FusedOp};
use super::linalg::gemm;
use super::pool;

/// Sizes of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dims {
    /// The sizes every attention trunk has.
    pub trunk: TrunkDims,
    /// GTrXL gates instead of residual connections.
    pub gating: bool,
}

impl AsRef<TrunkDims> for Dims {
    fn as_ref(&self) -> &TrunkDims {
        &self.trunk
    }
}

/// Offsets of one GTrXL gate's parameters.
#[derive(Debug, Clone, Copy)]
struct GateAt {
    /// `W_r, W_z, W_g` on the sublayer output, `[d, 3d]`.
    wy: usize,
    /// `U_r, U_z` on the stream, `[d, 2d]`.
    ux: usize,
    /// `U_g` on `r ⊙ x`, `[d, d]`.
    ug: usize,
    /// The gate bias, `[d]`.
    b: usize,
}

/// Offsets of one layer's parameters in the flat parameter vector.
#[derive(Debug, Clone, Copy)]
struct LayerAt {
    /// The attention's LayerNorm: gain `[d]`, then bias `[d]`.
    ln_a: usize,
    wq: usize,
    wkv: usize,
    wo: usize,
    bias: usize,
    /// The feed-forward block.
    ff: FeedForwardAt,
    gate_attn: Option<GateAt>,
    gate_ff: Option<GateAt>,
}

/// Where each parameter lives in the flat vector. The order, which the policy's
/// `parameter_tensors` must follow, per layer: `norm_attn.gamma, norm_attn.beta,
/// query.weight, key_value.weight, out.weight, position_bias.bias, norm_ff.gamma,
/// norm_ff.beta, ff.hidden.weight, ff.hidden.bias, ff.output.weight, ff.output.bias`, then
/// with gating `gate_attn.{from_output.weight, from_stream.weight, candidate.weight, bias}` and
/// the same for `gate_ff`. Weights are `[d_in, d_out]` row-major, the position bias `[H, τ+1]`
/// by distance.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    layers: Vec<LayerAt>,
    /// Total number of floats.
    pub len: usize,
}

impl Layout {
    pub(crate) fn new(dims: &Dims) -> Self {
        let (d, f) = (dims.trunk.d, dims.trunk.ff);
        let mut at = Offsets::default();
        let mut take = |n: usize| at.take(n);
        let layers = (0..dims.trunk.layers)
            .map(|_| {
                let mut layer = LayerAt {
                    ln_a: take(2 * d),
                    wq: take(d * d),
                    wkv: take(d * 2 * d),
                    wo: take(d * d),
                    bias: take(dims.trunk.heads * (dims.trunk.span + 1)),
                    ff: FeedForwardAt::take(&mut take, d, f),
                    gate_attn: None,
                    gate_ff: None,
                };
                if dims.gating {
                    let mut gate = || GateAt {
                        wy: take(d * 3 * d),
                        ux: take(d * 2 * d),
                        ug: take(d * d),
                        b: take(d),
                    };
                    layer.gate_attn = Some(gate());
                    layer.gate_ff = Some(gate());
                }
                layer
            })
            .collect();
        Self {
            layers,
            len: at.total(),
        }
    }
}

/// The inputs of a block of rows that are not parameters; the window is the cached keys and
/// values per layer.
type BlockInput<'a> = attention::BlockInput<'a, Vec<Prefix<'a>>>;

/// Everything the forward pass of a block computes that its backward pass reads. Row `i` of a
/// per-layer array `[L][n][width]` is step `i % T` of the block's row `i / T`.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    rows: usize,
    steps: usize,
    /// Layer inputs `x^0..x^L` (`x^L`: the output), `[L+1][n][d]`.
    xs: Vec<f32>,
    a: NormRows,
    q: Vec<f32>,
    /// Keys and values of the chunk's steps, `[L][n][2d]` (the prefix's are read from the
    /// cache).
    kv: Vec<f32>,
    /// Attention weights `[L][n][H][τ+1]` (slot `τ`: the query's own step).
    p: Vec<f32>,
    att: Vec<f32>,
    /// The stream after the attention sublayer, `[L][n][d]`.
    xp: Vec<f32>,
    f: NormRows,
    /// Feed-forward hidden units after the ReLU, `[L][n][F]`.
    hid: Vec<f32>,
    /// With gating: the sublayers' outputs before the ReLU, `[L][2][n][d]` (attention, then
    /// feed-forward), and the gates' `r, z, h`, `[L][2][3][n][d]`.
    sub: Vec<f32>,
    gates: Vec<f32>,
    /// The first history index each query may attend to, `[n]`.
    floor: Vec<usize>,
}

impl Drop for Trace {
    fn drop(&mut self) {
        for v in [
            &mut self.xs,
            &mut self.q,
            &mut self.kv,
            &mut self.p,
            &mut self.att,
            &mut self.xp,
            &mut self.hid,
            &mut self.sub,
            &mut self.gates,
        ] {
            pool::recycle(std::mem::take(v));
        }
    }
}

impl Trace {
    /// The last layer's outputs `[rows, T, d]`.
    fn top(&self, dims: &TrunkDims) -> &[f32] {
        let (d, layers, n) = (dims.d, dims.layers, self.rows * self.steps);
        &self.xs[layers * n * d..(layers + 1) * n * d]
    }

    /// Buffers for a block; every one is fully written by the forward pass.
    fn new(sz: &Sizes, gating: bool) -> Self {
        let Sizes {
            d,
            heads,
            layers,
            ff,
            rows,
            steps,
            n,
            slots,
            ..
        } = *sz;
        let per_layer = |w: usize| pool::scratch(layers * n * w);
        Trace {
            rows,
            steps,
            xs: pool::scratch((layers + 1) * n * d),
            a: NormRows::new(layers * n, d, pool::scratch),
            q: per_layer(d),
            kv: per_layer(2 * d),
            p: per_layer(heads * slots),
            att: per_layer(d),
            xp: per_layer(d),
            f: NormRows::new(layers * n, d, pool::scratch),
            hid: per_layer(ff),
            sub: if gating { per_layer(2 * d) } else { Vec::new() },
            gates: if gating { per_layer(6 * d) } else { Vec::new() },
            floor: vec![0; n],
        }
    }
}

/// The cached keys and values of one layer for the rows of a block, `[rows, τ, d]` each.
#[derive(Clone, Copy)]
struct Prefix<'a> {
    keys: &'a [f32],
    values: &'a [f32],
}

/// What every stage of a block's passes reads: the sizes, the dims, the layout and the
/// parameters.
type Ctx<'a> = attention::Ctx<'a, Dims, Layout>;

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The GTrXL gate over `n` rows: `out = x + z ⊙ (h − x)` with `r = σ(W_r ŷ + U_r x)`,
/// `z = σ(W_z ŷ + U_z x − b)`, `h = tanh(W_g ŷ + U_g (r ⊙ x))` and `ŷ = relu(y)`. Writes
/// `r, z, h` (`[3][n][d]`) into `rzh` and the result into `out`.
fn gate_forward(
    p: &Params,
    g: GateAt,
    d: usize,
    (x, y): (&[f32], &[f32]),
    rzh: &mut [f32],
    out: &mut [f32],
) {
    let n = x.len() / d;
    let mut yr = y.to_vec();
    relu_in_place(&mut yr);
    let mut wy = pool::zeros(n * 3 * d);
    gemm(n, d, 3 * d, &yr, p.get(g.wy, 3 * d * d), 0.0, &mut wy);
    let mut ux = pool::zeros(n * 2 * d);
    gemm(n, d, 2 * d, x, p.get(g.ux, 2 * d * d), 0.0, &mut ux);
    let b = p.get(g.b, d);
    let (r, rest) = rzh.split_at_mut(n * d);
    let (z, h) = rest.split_at_mut(n * d);
    let mut rx = pool::zeros(n * d);
    for i in 0..n {
        for c in 0..d {
            let (k, kw, ku) = (i * d + c, i * 3 * d + c, i * 2 * d + c);
            r[k] = sigmoid(wy[kw] + ux[ku]);
            z[k] = sigmoid(wy[kw + d] + ux[ku + d] - b[c]);
            rx[k] = r[k] * x[k];
            // The candidate's pre-activation, completed by the product below.
            h[k] = wy[kw + 2 * d];
        }
    }
    gemm(n, d, d, &rx, p.get(g.ug, d * d), 1.0, h);
    for k in 0..n * d {
        h[k] = h[k].tanh();
        out[k] = x[k] + z[k] * (h[k] - x[k]);
    }
    pool::recycle(yr);
    pool::recycle(wy);
    pool::recycle(ux);
    pool::recycle(rx);
}

/// [`gate_forward`] backwards given the gradient of its output `dout [n, d]`: adds the
/// stream's gradient to `dx`, writes the sublayer output's gradient (before the ReLU) into
/// `dy` and adds the gate's parameter gradients to `gp`.
#[allow(clippy::too_many_arguments)]
fn gate_backward(
    p: &Params,
    g: GateAt,
    d: usize,
    (x, y, rzh): (&[f32], &[f32], &[f32]),
    dout: &[f32],
    dx: &mut [f32],
    dy: &mut [f32],
    gp: &mut [f32],
) {
    let n = x.len() / d;
    let (r, rest) = rzh.split_at(n * d);
    let (z, h) = rest.split_at(n * d);
    let mut dw = pool::zeros(n * 3 * d); // [dar, daz, dah] per row
    let mut du = pool::zeros(n * 2 * d); // [dar, daz] per row
    let mut dah = pool::zeros(n * d);
    for i in 0..n {
        for c in 0..d {
            let k = i * d + c;
            let go = dout[k];
            dx[k] += go * (1.0 - z[k]);
            let dz = go * (h[k] - x[k]);
            let daz = dz * z[k] * (1.0 - z[k]);
            dah[k] = go * z[k] * (1.0 - h[k] * h[k]);
            dw[i * 3 * d + d + c] = daz;
            dw[i * 3 * d + 2 * d + c] = dah[k];
            du[i * 2 * d + d + c] = daz;
            gp[g.b + c] -= daz;
        }
    }
    // Through U_g (r ⊙ x).
    let mut drx = pool::zeros(n * d);
    matmul_back_input(p, (g.ug, (n, d, d)), &dah, (0.0, &mut drx));
    let mut rx = pool::zeros(n * d);
    for k in 0..n * d {
        rx[k] = r[k] * x[k];
        dx[k] += drx[k] * r[k];
        let dar = drx[k] * x[k] * r[k] * (1.0 - r[k]);
        let (i, c) = (k / d, k % d);
        dw[i * 3 * d + c] = dar;
        du[i * 2 * d + c] = dar;
    }
    matmul_back_weight(gp, (g.ug, (n, d, d)), (&rx, &dah));
    // Through U_r, U_z on the stream.
    matmul_back((p, &mut *gp), (g.ux, (n, d, 2 * d)), (x, &du), (1.0, dx));
    // Through W_r, W_z, W_g on relu(y).
    let mut yr = y.to_vec();
    relu_in_place(&mut yr);
    matmul_back((p, &mut *gp), (g.wy, (n, d, 3 * d)), (&yr, &dw), (0.0, dy));
    relu_back_in_place(dy, y);
    for v in [dw, du, dah, drx, rx, yr] {
        pool::recycle(v);
    }
}

/// The forward pass of one block of rows. Returns the trace (whose last layer block of `xs`
/// is the output, and whose `kv` holds every layer's new keys and values).
fn forward_block(dims: &Dims, at: &Layout, p: &Params, input: &BlockInput) -> Trace {
    let cx = Ctx::new(dims, at, p, (input.rows, input.steps));
    let sz = cx.sz;
    let Sizes {
        d, layers, span, n, ..
    } = sz;
    let mut tr = Trace::new(&sz, dims.gating);
    tr.xs[..n * d].copy_from_slice(input.x0);
    input.episode_floors(span, &mut tr.floor);
    for l in 0..layers {
        layer_forward(&cx, &mut tr, input.valid0, input.window[l], l);
    }
    tr
}

/// Layer `l` over the whole block: `x^{l+1}` from `x^l`.
fn layer_forward(cx: &Ctx, tr: &mut Trace, valid0: &[f32], prefix: Prefix, l: usize) {
    let Sizes { d, ff, n, .. } = cx.sz;
    let (p, la) = (cx.p, cx.at.layers[l]);
    let o = l * n;
    tr.a.forward(p, la.ln_a, &tr.xs[o * d..(o + n) * d], o);
    let a_out = &tr.a.out[o * d..(o + n) * d];
    gemm(n, d, d, a_out, p.get(la.wq, d * d), 0.0, &mut tr.q[o * d..]);
    gemm(
        n,
        d,
        2 * d,
        a_out,
        p.get(la.wkv, 2 * d * d),
        0.0,
        &mut tr.kv[2 * o * d..2 * (o + n) * d],
    );
    attend(cx, tr, valid0, prefix, l);
    let (below, above) = tr.xs.split_at_mut((o + n) * d);
    let x = &below[o * d..];
    let x_next = &mut above[..n * d];
    // The attention sublayer's output and the stream after it.
    let xp = &mut tr.xp[o * d..(o + n) * d];
    match la.gate_attn {
        None => {
            xp.copy_from_slice(x);
            gemm(n, d, d, &tr.att[o * d..], p.get(la.wo, d * d), 1.0, xp);
        }
        Some(g) => {
            let y = &mut tr.sub[2 * o * d..(2 * o + n) * d];
            gemm(n, d, d, &tr.att[o * d..], p.get(la.wo, d * d), 0.0, y);
            gate_forward(
                p,
                g,
                d,
                (x, y),
                &mut tr.gates[6 * o * d..(6 * o + 3 * n) * d],
                xp,
            );
        }
    }
    let xp = &tr.xp[o * d..(o + n) * d];
    let hid = &mut tr.hid[o * ff..(o + n) * ff];
    la.ff.hidden(p, (n, d, ff), xp, (&mut tr.f, o), hid);
    match la.gate_ff {
        None => la.ff.output(p, (n, d, ff), hid, Some(xp), x_next),
        Some(g) => {
            let y = &mut tr.sub[(2 * o + n) * d..(2 * o + 2 * n) * d];
            la.ff.output(p, (n, d, ff), hid, None, y);
            let rzh = &mut tr.gates[(6 * o + 3 * n) * d..(6 * o + 6 * n) * d];
            gate_forward(p, g, d, (xp, y), rzh, x_next);
        }
    }
}

/// The key (`half` 0) or value (`half` 1), all heads, at history index `k` of row `r`
/// (`k < τ`: the cached prefix, else step `k − τ` of the chunk), from the layer's prefix and the
/// chunk's keys/values `chunk [n][2d]`.
fn key_value<'a>(
    sz: &Sizes,
    prefix: Prefix<'a>,
    chunk: &'a [f32],
    (r, k): (usize, usize),
    half: usize,
) -> &'a [f32] {
    let (d, span) = (sz.d, sz.span);
    if k < span {
        let part = if half == 0 {
            prefix.keys
        } else {
            prefix.values
        };
        &part[(r * span + k) * d..][..d]
    } else {
        &chunk[(r * sz.steps + k - span) * 2 * d + half * d..][..d]
    }
}

/// The attention of every query of layer `l` over its window (the `τ` steps before it within
/// the episode, then itself): weights into `tr.p`, outputs into `tr.att`. Slots outside the
/// episode or before the cache was filled are skipped, not computed and masked. A slot's key
/// and value are read once for all heads.
fn attend(cx: &Ctx, tr: &mut Trace, valid0: &[f32], prefix: Prefix, l: usize) {
    let sz = cx.sz;
    let Sizes {
        d,
        heads,
        span,
        rows,
        steps,
        n,
        dh,
        slots,
        scale,
        ..
    } = sz;
    let o = l * n;
    let bias = cx.p.get(cx.at.layers[l].bias, heads * slots);
    let chunk = &tr.kv[2 * o * d..2 * (o + n) * d];
    let mut allowed = vec![false; slots];
    for r in 0..rows {
        for t in 0..steps {
            let i = r * steps + t;
            let lo = tr.floor[i].max(t);
            let q = &tr.q[(o + i) * d..(o + i + 1) * d];
            // Scores straight into the weights' place, `[H][slots]`.
            let pw = &mut tr.p[(o + i) * heads * slots..(o + i + 1) * heads * slots];
            for (j, ok) in allowed.iter_mut().enumerate() {
                let k = t + j;
                *ok = k >= lo && (k >= span || valid0[r * span + k] > 0.5);
                if *ok {
                    let key = key_value(&sz, prefix, chunk, (r, k), 0);
                    for h in 0..heads {
                        pw[h * slots + j] =
                            dot(&q[h * dh..(h + 1) * dh], &key[h * dh..(h + 1) * dh]) * scale
                                + bias[h * slots + span - j];
                    }
                }
            }
            for h in 0..heads {
                let ph = &mut pw[h * slots..(h + 1) * slots];
                let max = ph
                    .iter()
                    .zip(&allowed)
                    .filter(|(_, ok)| **ok)
                    .fold(f32::NEG_INFINITY, |m, (s, _)| m.max(*s));
                let mut sum = 0.0;
                for (s, ok) in ph.iter_mut().zip(&allowed) {
                    *s = if *ok { (*s - max).exp() } else { 0.0 };
                    sum += *s;
                }
                for s in ph.iter_mut() {
                    *s /= sum;
                }
            }
            let out = &mut tr.att[(o + i) * d..(o + i + 1) * d];
            out.fill(0.0);
            for j in 0..slots {
                if allowed[j] {
                    let v = key_value(&sz, prefix, chunk, (r, t + j), 1);
                    for h in 0..heads {
                        let w = pw[h * slots + j];
                        axpy(&mut out[h * dh..(h + 1) * dh], w, &v[h * dh..(h + 1) * dh]);
                    }
                }
            }
        }
    }
}

/// The backward pass of one block given the gradient of its outputs `dtop [rows, T, d]` and
/// the cache it started from; the window's gradient is that of the cached keys and values
/// `[L][keys, values][rows][τ][d]` (empty unless `want_cache`).
fn backward_block(
    dims: &Dims,
    at: &Layout,
    p: &Params,
    (tr, cache): (&Trace, &[Prefix]),
    dtop: &[f32],
    want_cache: bool,
) -> BlockGrads {
    let cx = Ctx::new(dims, at, p, (tr.rows, tr.steps));
    let sz = cx.sz;
    let Sizes {
        d,
        layers,
        span,
        rows,
        n,
        ..
    } = sz;
    let w = rows * span * d;
    let mut gp = pool::zeros(at.len);
    let mut dx_high = pool::scratch(n * d);
    dx_high.copy_from_slice(dtop);
    let mut dx_low = pool::scratch(n * d);
    let mut dprefix = pool::zeros(layers * 2 * w);
    for l in (0..layers).rev() {
        let dp = &mut dprefix[2 * l * w..2 * (l + 1) * w];
        layer_backward(&cx, (tr, cache[l]), &mut gp, l, &dx_high, &mut dx_low, dp);
        std::mem::swap(&mut dx_high, &mut dx_low);
    }
    pool::recycle(dx_low);
    if !want_cache {
        pool::recycle(std::mem::take(&mut dprefix));
    }
    BlockGrads {
        params: gp,
        x0: dx_high,
        window: dprefix,
    }
}

/// Layer `l` backwards: from the gradient of its output `dy [n, d]` into the gradient of its
/// input `dx` (overwritten), of its cached prefix `dprefix [keys, values][rows][τ][d]` (added
/// to) and the parameters `gp`.
#[allow(clippy::too_many_arguments)]
fn layer_backward(
    cx: &Ctx,
    (tr, prefix): (&Trace, Prefix),
    gp: &mut [f32],
    l: usize,
    dy: &[f32],
    dx: &mut [f32],
    dprefix: &mut [f32],
) {
    let Sizes { d, ff, n, .. } = cx.sz;
    let (p, la) = (cx.p, cx.at.layers[l]);
    let o = l * n;
    let x = &tr.xs[o * d..(o + n) * d];
    let xp = &tr.xp[o * d..(o + n) * d];
    // The feed-forward sublayer: the gradient of its output and of the stream before it.
    let mut dxp = pool::zeros(n * d);
    let mut dsub = pool::zeros(n * d);
    match la.gate_ff {
        None => {
            dxp.copy_from_slice(dy);
            dsub.copy_from_slice(dy);
        }
        Some(g) => {
            let y = &tr.sub[(2 * o + n) * d..(2 * o + 2 * n) * d];
            let rzh = &tr.gates[(6 * o + 3 * n) * d..(6 * o + 6 * n) * d];
            gate_backward(p, g, d, (xp, y, rzh), dy, &mut dxp, &mut dsub, gp);
        }
    }
    let hid = &tr.hid[o * ff..(o + n) * ff];
    let mut dh = pool::zeros(n * ff);
    let mut dln = pool::zeros(n * d);
    la.ff.back(
        (p, &mut *gp),
        (n, d, ff),
        &dsub,
        (hid, &tr.f, o),
        &mut dh,
        &mut dln,
        &mut dxp,
    );
    la.ff
        .weight_grads(gp, (n, d, ff), (tr.f.out_from(o), &dh), (hid, &dsub));
    pool::recycle(dh);
    // The attention sublayer.
    match la.gate_attn {
        None => {
            dx.copy_from_slice(&dxp);
            dsub.copy_from_slice(&dxp);
        }
        Some(g) => {
            let y = &tr.sub[2 * o * d..(2 * o + n) * d];
            let rzh = &tr.gates[6 * o * d..(6 * o + 3 * n) * d];
            dx.fill(0.0);
            gate_backward(p, g, d, (x, y, rzh), &dxp, dx, &mut dsub, gp);
        }
    }
    let mut datt = pool::zeros(n * d);
    let att = &tr.att[o * d..];
    matmul_back(
        (p, &mut *gp),
        (la.wo, (n, d, d)),
        (att, &dsub),
        (0.0, &mut datt),
    );
    let mut dq = pool::zeros(n * d);
    let mut dkv = pool::zeros(n * 2 * d);
    attend_back(
        cx,
        (tr, prefix),
        l,
        &datt,
        (&mut dq, &mut dkv, dprefix),
        &mut gp[la.bias..],
    );
    // Queries, keys and values back to the normalised input.
    let a_out = &tr.a.out[o * d..(o + n) * d];
    matmul_back(
        (p, &mut *gp),
        (la.wq, (n, d, d)),
        (a_out, &dq),
        (0.0, &mut dln),
    );
    matmul_back(
        (p, gp),
        (la.wkv, (n, d, 2 * d)),
        (a_out, &dkv),
        (1.0, &mut dln),
    );
    layer_norm_back_at(p, gp, (la.ln_a, d), &dln, tr.a.saved(o, n), dx);
    for v in [dxp, dsub, dln, datt, dq, dkv] {
        pool::recycle(v);
    }
}

/// The attention of layer `l` backwards, given the gradient of its output `datt [n, d]`: into
/// the queries' gradient `dq [n, d]`, the chunk's keys and values `dkv [n][2d]`, the cached
/// prefix's `dprefix [keys, values][rows][τ][d]` and the position bias (`gbias`, starting at
/// the layer's bias). Slots with zero weight (masked) get exactly nothing.
fn attend_back(
    cx: &Ctx,
    (tr, prefix): (&Trace, Prefix),
    l: usize,
    datt: &[f32],
    (dq, dkv, dprefix): (&mut [f32], &mut [f32], &mut [f32]),
    gbias: &mut [f32],
) {
    let sz = cx.sz;
    let Sizes {
        d,
        heads,
        span,
        rows,
        steps,
        n,
        dh,
        slots,
        scale,
        ..
    } = sz;
    let o = l * n;
    let chunk = &tr.kv[2 * o * d..2 * (o + n) * d];
    let (dkeys, dvalues) = dprefix.split_at_mut(rows * span * d);
    // `dp[h][j]`: the gradient of head h's weight on slot j; `used[j]`: any head weighs slot j.
    let mut dp = vec![0.0; heads * slots];
    let mut pdp = vec![0.0; heads];
    let mut used = vec![false; slots];
    for r in 0..rows {
        for t in 0..steps {
            let i = r * steps + t;
            let q = &tr.q[(o + i) * d..(o + i + 1) * d];
            let pw = &tr.p[(o + i) * heads * slots..(o + i + 1) * heads * slots];
            let da = &datt[i * d..(i + 1) * d];
            pdp.fill(0.0);
            for j in 0..slots {
                used[j] = (0..heads).any(|h| pw[h * slots + j] != 0.0);
                if used[j] {
                    let v = key_value(&sz, prefix, chunk, (r, t + j), 1);
                    for h in 0..heads {
                        let g = dot(&da[h * dh..(h + 1) * dh], &v[h * dh..(h + 1) * dh]);
                        dp[h * slots + j] = g;
                        pdp[h] += pw[h * slots + j] * g;
                    }
                }
            }
            for j in 0..slots {
                if !used[j] {
                    continue;
                }
                let k = t + j;
                let key = key_value(&sz, prefix, chunk, (r, k), 0);
                let (dk, dv) = if k < span {
                    let e = (r * span + k) * d;
                    (&mut dkeys[e..e + d], &mut dvalues[e..e + d])
                } else {
                    let e = (r * steps + k - span) * 2 * d;
                    dkv[e..e + 2 * d].split_at_mut(d)
                };
                let dqi = &mut dq[i * d..(i + 1) * d];
                for h in 0..heads {
                    let w = pw[h * slots + j];
                    if w == 0.0 {
                        continue;
                    }
                    let ds = w * (dp[h * slots + j] - pdp[h]);
                    gbias[h * slots + span - j] += ds;
                    let c = h * dh..(h + 1) * dh;
                    axpy(&mut dqi[c.clone()], ds * scale, &key[c.clone()]);
                    axpy(&mut dk[c.clone()], ds * scale, &q[c.clone()]);
                    axpy(&mut dv[c.clone()], w, &da[c]);
                }
            }
        }
    }
}

/// The cache of rows `b0..b0 + rows` per layer, from the cache tensors `[L][keys, values]`
/// of the batch (`[B, τ, d]` each).
fn cache_rows<'a>(cache: &[&'a [f32]], dims: &Dims, (b0, rows): (usize, usize)) -> Vec<Prefix<'a>> {
    let w = dims.trunk.span * dims.trunk.d;
    cache
        .chunks_exact(2)
        .map(|kv| Prefix {
            keys: &kv[0][b0 * w..(b0 + rows) * w],
            values: &kv[1][b0 * w..(b0 + rows) * w],
        })
        .collect()
}

/// The flat cache input `[L][keys, values][B][τ][d]` as its `2L` tensors.
fn split_cache<'a>(cache: &'a [f32], dims: &Dims, batch: usize) -> Vec<&'a [f32]> {
    cache
        .chunks_exact(batch * dims.trunk.span * dims.trunk.d)
        .collect()
}

/// The fused sequence operation: inputs `[params, x0 [B,T,d], cache [L][2][B,τ,d]]`, output
/// the last layer's outputs `[B, T, d]`.
pub(crate) type TransformerSequence = attention::Sequence<Dims, Layout>;

impl FusedOp for TransformerSequence {
    type Saved = Vec<Trace>;

    fn forward(&self, inputs: &[&[f32]], save: bool) -> (Vec<f32>, Option<Vec<Trace>>) {
        let (params, x0) = (Params::Flat(inputs[0]), inputs[1]);
        let cache = split_cache(inputs[2], &self.dims, self.batch);
        let (top, traces) = forward_blocks(
            self.blocks(),
            self.batch * self.steps * self.dims.trunk.d,
            |rows| {
                let cache = cache_rows(&cache, &self.dims, rows);
                let input = self.block_input(x0, rows, cache);
                forward_block(&self.dims, &self.layout, &params, &input)
            },
            |tr| tr.top(&self.dims.trunk),
        );
        (top, save.then_some(traces))
    }

    fn backward(&self, b: BackwardInput<'_, Vec<Trace>>) -> Vec<Vec<f32>> {
        let params = Params::Flat(b.inputs[0]);
        let cache = split_cache(b.inputs[2], &self.dims, self.batch);
        let TrunkDims {
            d, span, layers, ..
        } = self.dims.trunk;
        let want_cache = b.wants(2);
        // Empty when the cache wants no gradient (the glue then registers none).
        let mut gc = if want_cache {
            vec![0.0; 2 * layers * self.batch * span * d]
        } else {
            Vec::new()
        };
        let w = span * d;
        let (gp, gx) = self.backward_blocks(
            (b.saved, b.grad),
            self.layout.len,
            |rows, trace, dtop| {
                let cache = cache_rows(&cache, &self.dims, rows);
                let (p, at) = (&params, &self.layout);
                backward_block(&self.dims, at, p, (trace, &cache), dtop, want_cache)
            },
            |(b0, rows), dcache| {
                if want_cache {
                    // [L][keys, values][rows] of the block into [L][keys, values][B].
                    for (part, src) in dcache.chunks_exact(rows * w).enumerate() {
                        let at = (part * self.batch + b0) * w;
                        gc[at..at + rows * w].copy_from_slice(src);
                    }
                }
                pool::recycle(dcache);
            },
        );
        vec![gp, gx, gc]
    }
}

/// Rows of a block of the decoding step: larger than in training, where a block's products
/// already have `T` rows per env, so that a step's products are not dominated by packing the
/// weights; fixed, so that results do not depend on the number of threads.
const DECODE_ROWS_PER_BLOCK: usize = 32;

/// One decoding step for a batch: the embedded observations `x0 [B, d]`, the episode starts
/// `[B]`, the cache tensors `[L][keys, values]` (`[B, τ, d]` each) and the cache's validity
/// `[B, τ]`. Returns the last layer's outputs `[B, d]` and each layer's new keys and values
/// `[L][B][2d]`.
pub(crate) fn decode_step(
    dims: &Dims,
    at: &Layout,
    params: &Params,
    x0: &[f32],
    starts: &[f32],
    cache: &[&[f32]],
    valid: &[f32],
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let (d, layers) = (dims.trunk.d, dims.trunk.layers);
    let batch = starts.len();
    let (top, traces) = forward_blocks(
        row_blocks(batch, DECODE_ROWS_PER_BLOCK),
        batch * d,
        |rows| {
            let window = cache_rows(cache, dims, rows);
            let io = (x0, starts, valid);
            let input = BlockInput::rows_of(&dims.trunk, 1, io, rows, window);
            forward_block(dims, at, params, &input)
        },
        |tr| tr.top(&dims.trunk),
    );
    let mut new_kv = vec![Vec::with_capacity(batch * 2 * d); layers];
    for tr in &traces {
        let n = tr.rows;
        for (l, kv_l) in new_kv.iter_mut().enumerate() {
            kv_l.extend_from_slice(&tr.kv[2 * l * n * d..2 * (l + 1) * n * d]);
        }
    }
    (top, new_kv)
}
