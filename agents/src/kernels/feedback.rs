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

use rayon::prelude::*;

pub(crate) use super::common::Params;
use super::common::{
    add_into, axpy, column_sums_into, dot, layer_norm, layer_norm_back, softmax_in_place,
};
use super::glue::FusedOp;
use super::linalg::{Transposed, gemm, gemm_t};
use super::{ROWS_PER_BLOCK, pool};
use crate::feedback_options::MemoryMix;

/// Sizes of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dims {
    /// Width `d`.
    pub d: usize,
    /// Attention heads `H`.
    pub heads: usize,
    /// Layers `L`.
    pub layers: usize,
    /// Feed-forward width.
    pub ff: usize,
    /// Span `τ`.
    pub span: usize,
    /// Key/value groups: 1 with `share_kv`, else `L`.
    pub groups: usize,
    /// What the memory vector is made of.
    pub mix: MemoryMix,
    /// Whether the current step's slot is a learned key/value pair per group
    /// ([`CurrentSlot::Null`](crate::feedback_options::CurrentSlot::Null)) instead of the own input.
    pub null_slot: bool,
}

impl Dims {
    fn dh(&self) -> usize {
        self.d / self.heads
    }

    fn group(&self, layer: usize) -> usize {
        if self.groups == 1 { 0 } else { layer }
    }
}

/// Offsets of one layer's parameters in the flat parameter vector.
#[derive(Debug, Clone, Copy)]
struct LayerAt {
    ln_a_g: usize,
    ln_a_b: usize,
    wq: usize,
    wo: usize,
    bias: usize,
    ln_f_g: usize,
    ln_f_b: usize,
    w1: usize,
    b1: usize,
    w2: usize,
    b2: usize,
}

/// Offsets of one key/value group's parameters.
#[derive(Debug, Clone, Copy)]
struct GroupAt {
    ln_g: usize,
    ln_b: usize,
    wkv: usize,
    /// The null slot's key/value pair `[2d]`, with `null_slot`.
    null: usize,
}

/// Where each parameter lives in the flat vector. The order, which the policy's
/// `flat_parameters` must follow: per layer `norm_attn.gamma, norm_attn.beta, query.weight,
/// out.weight, position_bias.bias, norm_ff.gamma, norm_ff.beta, ff.hidden.weight,
/// ff.hidden.bias, ff.output.weight, ff.output.bias`; then per group `norm.gamma, norm.beta,
/// proj.weight` (and `null` with a null slot); then `layer_mix`. Weights are `[d_in, d_out]` row-major, the position bias
/// `[H, τ+1]` by distance.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    layers: Vec<LayerAt>,
    groups: Vec<GroupAt>,
    mix: usize,
    /// Total number of floats.
    pub len: usize,
}

impl Layout {
    pub(crate) fn new(dims: &Dims) -> Self {
        let (d, f) = (dims.d, dims.ff);
        let mut at = 0;
        let mut take = |n: usize| {
            let start = at;
            at += n;
            start
        };
        let layers = (0..dims.layers)
            .map(|_| LayerAt {
                ln_a_g: take(d),
                ln_a_b: take(d),
                wq: take(d * d),
                wo: take(d * d),
                bias: take(dims.heads * (dims.span + 1)),
                ln_f_g: take(d),
                ln_f_b: take(d),
                w1: take(d * f),
                b1: take(f),
                w2: take(f * d),
                b2: take(d),
            })
            .collect();
        let groups = (0..dims.groups)
            .map(|_| GroupAt {
                ln_g: take(d),
                ln_b: take(d),
                wkv: take(d * 2 * d),
                null: take(if dims.null_slot { 2 * d } else { 0 }),
            })
            .collect();
        let mix = take(dims.layers + 1);
        Self {
            layers,
            groups,
            mix,
            len: at,
        }
    }
}

/// The sizes a block's passes work with: the model's, the block's, and what follows from them.
#[derive(Clone, Copy)]
struct Sizes {
    d: usize,
    heads: usize,
    layers: usize,
    ff: usize,
    span: usize,
    groups: usize,
    rows: usize,
    steps: usize,
    /// Width of a head.
    dh: usize,
    /// Memory history per row: the starting window plus one vector per step.
    hist: usize,
    /// Attention slots: the window plus the own input.
    slots: usize,
    /// `1/√dh`.
    scale: f32,
}

impl Sizes {
    fn new(dims: &Dims, rows: usize, steps: usize) -> Self {
        let dh = dims.dh();
        Self {
            d: dims.d,
            heads: dims.heads,
            layers: dims.layers,
            ff: dims.ff,
            span: dims.span,
            groups: dims.groups,
            rows,
            steps,
            dh,
            hist: dims.span + steps,
            slots: dims.span + 1,
            scale: 1.0 / (dh as f32).sqrt(),
        }
    }
}

/// The weights of the memory mix over the embedding and the layers' outputs, `[L + 1]`: the
/// softmax of the mixing logits, or one-hot for the fixed mixes.
fn mix_weights(p: &Params, at: &Layout, dims: &Dims) -> Vec<f32> {
    let n = dims.layers + 1;
    match dims.mix {
        MemoryMix::Learned => {
            let mut w = p.get(at.mix, n).to_vec();
            softmax_in_place(&mut w);
            w
        }
        MemoryMix::Top => (0..n).map(|i| f32::from(u8::from(i + 1 == n))).collect(),
        MemoryMix::Embedding => (0..n).map(|i| f32::from(u8::from(i == 0))).collect(),
    }
}

/// The inputs of a block of rows that are not parameters.
struct BlockInput<'a> {
    rows: usize,
    steps: usize,
    /// `[rows, T, d]`.
    x0: &'a [f32],
    /// `[rows, T]`, 1.0 where an episode starts.
    starts: &'a [f32],
    /// `[rows, τ]`, 1.0 where a starting memory slot holds a vector of the current episode.
    valid0: &'a [f32],
    /// The starting window: memory vectors `[rows, τ, d]`, or cached keys/values.
    window: Window<'a>,
}

enum Window<'a> {
    /// Memory vectors `[rows, τ, d]`: keys and values are computed from them.
    Vectors(&'a [f32]),
    /// Keys/values per group `[G][rows, τ, 2d]` (already projected: decoding).
    KeyValues(Vec<&'a [f32]>),
}

/// Everything the forward pass of a block computes that its backward pass reads. Per-layer
/// arrays are `[L][T][rows][width]`, per-step ones `[T][rows][width]`, the memory history
/// `[G][rows][τ+T][width]` (index `i < τ`: the starting window, `τ + t`: step `t`'s vector).
#[derive(Debug, Default)]
pub(crate) struct Trace {
    rows: usize,
    steps: usize,
    /// Layer outputs `x^0..x^L`: `[L+1][T][rows][d]`.
    xs: Vec<f32>,
    a_hat: Vec<f32>,
    a_out: Vec<f32>,
    a_rstd: Vec<f32>,
    q: Vec<f32>,
    c_hat: Vec<f32>,
    c_out: Vec<f32>,
    c_rstd: Vec<f32>,
    kv_self: Vec<f32>,
    /// Attention weights `[L][T][rows][H][τ+1]` (slot `τ`: the own input).
    p: Vec<f32>,
    att: Vec<f32>,
    f_hat: Vec<f32>,
    f_out: Vec<f32>,
    f_rstd: Vec<f32>,
    /// Feed-forward hidden units after the ReLU, `[L][T][rows][F]`.
    hid: Vec<f32>,
    /// `LN(m)` of every memory vector: `[G][rows][τ+T][d]` (hat and output), rstd `[G][rows][τ+T]`.
    m_hat: Vec<f32>,
    m_out: Vec<f32>,
    m_rstd: Vec<f32>,
    kv_hist: Vec<f32>,
    /// The first history index each row may attend to at each step, `[T][rows]`.
    floor: Vec<usize>,
}

impl Drop for Trace {
    fn drop(&mut self) {
        for v in [
            &mut self.xs,
            &mut self.a_hat,
            &mut self.a_out,
            &mut self.a_rstd,
            &mut self.q,
            &mut self.c_hat,
            &mut self.c_out,
            &mut self.c_rstd,
            &mut self.kv_self,
            &mut self.p,
            &mut self.att,
            &mut self.f_hat,
            &mut self.f_out,
            &mut self.f_rstd,
            &mut self.hid,
            &mut self.m_hat,
            &mut self.m_out,
            &mut self.m_rstd,
            &mut self.kv_hist,
        ] {
            pool::recycle(std::mem::take(v));
        }
    }
}

/// What a forward pass of a block returns besides its trace.
struct BlockOutput {
    /// Last layer's outputs `[rows, T, d]`.
    top: Vec<f32>,
    /// The last step's memory vector `[rows, d]`.
    last_m: Vec<f32>,
}

/// What every stage of a block's passes reads: the sizes, the layout and the parameters.
struct Ctx<'a> {
    sz: Sizes,
    dims: &'a Dims,
    at: &'a Layout,
    p: &'a Params<'a>,
}

impl Trace {
    /// Zeroed buffers for a block of `sz.rows` rows and `sz.steps` steps.
    fn new(sz: &Sizes) -> Self {
        let Sizes {
            d,
            heads,
            layers,
            ff,
            groups,
            rows,
            steps,
            hist,
            slots,
            ..
        } = *sz;
        let per_layer = |w: usize| pool::zeros(layers * steps * rows * w);
        Trace {
            rows,
            steps,
            xs: pool::zeros((layers + 1) * steps * rows * d),
            a_hat: per_layer(d),
            a_out: per_layer(d),
            a_rstd: per_layer(1),
            q: per_layer(d),
            c_hat: per_layer(d),
            c_out: per_layer(d),
            c_rstd: per_layer(1),
            kv_self: per_layer(2 * d),
            p: per_layer(heads * slots),
            att: per_layer(d),
            f_hat: per_layer(d),
            f_out: per_layer(d),
            f_rstd: per_layer(1),
            hid: per_layer(ff),
            m_hat: pool::zeros(groups * rows * hist * d),
            m_out: pool::zeros(groups * rows * hist * d),
            m_rstd: pool::zeros(groups * rows * hist),
            kv_hist: pool::zeros(groups * rows * hist * 2 * d),
            floor: vec![0; steps * rows],
        }
    }
}

impl Sizes {
    /// Offset (in rows) of layer `l`'s rows at step `t` in the per-layer arrays.
    fn lt(&self, l: usize, t: usize) -> usize {
        (l * self.steps + t) * self.rows
    }
}

/// The forward pass of one block of rows.
fn forward_block(dims: &Dims, at: &Layout, p: &Params, input: &BlockInput) -> (BlockOutput, Trace) {
    let sz = Sizes::new(dims, input.rows, input.steps);
    let cx = Ctx { sz, dims, at, p };
    let Sizes {
        d,
        layers,
        span,
        rows,
        steps,
        ..
    } = sz;
    let mut tr = Trace::new(&sz);
    start_window(&cx, &input.window, &mut tr);
    let mix = mix_weights(p, at, dims);
    let mut top = pool::zeros(rows * steps * d);
    let mut floor: Vec<usize> = vec![0; rows];
    let mut xp = vec![0.0; rows * d];
    let mut m = vec![0.0; rows * d];
    for t in 0..steps {
        for r in 0..rows {
            if input.starts[r * steps + t] > 0.5 {
                floor[r] = span + t;
            }
            tr.floor[t * rows + r] = floor[r];
        }
        // x^0: the embedded observations of this step.
        let o = sz.lt(0, t);
        for r in 0..rows {
            tr.xs[(o + r) * d..(o + r + 1) * d]
                .copy_from_slice(&input.x0[(r * steps + t) * d..(r * steps + t + 1) * d]);
        }
        for l in 0..layers {
            layer_forward(&cx, &mut tr, input.valid0, &floor, (l, t), &mut xp);
        }
        write_memory(&cx, &mut tr, &mix, t, &mut m);
        let o = sz.lt(layers, t);
        for r in 0..rows {
            top[(r * steps + t) * d..(r * steps + t + 1) * d]
                .copy_from_slice(&tr.xs[(o + r) * d..(o + r + 1) * d]);
        }
    }
    (BlockOutput { top, last_m: m }, tr)
}

/// The starting window's keys and values: projected from the memory vectors, or copied from
/// the cache.
fn start_window(cx: &Ctx, window: &Window, tr: &mut Trace) {
    let Sizes {
        d,
        span,
        groups,
        rows,
        hist,
        ..
    } = cx.sz;
    let p = cx.p;
    let mut m_rows = vec![0.0; span * d];
    let mut m_hat_rows = vec![0.0; span * d];
    let mut m_out_rows = vec![0.0; span * d];
    let mut m_rstd_rows = vec![0.0; span];
    let mut kv_rows = vec![0.0; span * 2 * d];
    for g in 0..groups {
        let ga = cx.at.groups[g];
        for r in 0..rows {
            let h0 = (g * rows + r) * hist;
            match window {
                Window::Vectors(m0) => {
                    m_rows.copy_from_slice(&m0[r * span * d..(r + 1) * span * d]);
                    layer_norm(
                        &m_rows,
                        p.get(ga.ln_g, d),
                        p.get(ga.ln_b, d),
                        &mut m_hat_rows,
                        &mut m_out_rows,
                        &mut m_rstd_rows,
                    );
                    gemm(
                        span,
                        d,
                        2 * d,
                        &m_out_rows,
                        p.get(ga.wkv, 2 * d * d),
                        0.0,
                        &mut kv_rows,
                    );
                    tr.m_hat[h0 * d..(h0 + span) * d].copy_from_slice(&m_hat_rows);
                    tr.m_out[h0 * d..(h0 + span) * d].copy_from_slice(&m_out_rows);
                    tr.m_rstd[h0..h0 + span].copy_from_slice(&m_rstd_rows);
                    tr.kv_hist[h0 * 2 * d..(h0 + span) * 2 * d].copy_from_slice(&kv_rows);
                }
                Window::KeyValues(kv) => {
                    tr.kv_hist[h0 * 2 * d..(h0 + span) * 2 * d]
                        .copy_from_slice(&kv[g][r * span * 2 * d..(r + 1) * span * 2 * d]);
                }
            }
        }
    }
}

/// Layer `l` at step `t`: `x^{l+1}` from `x^l` (query, the current slot's key/value, the
/// attention, the feed-forward block). `xp` is scratch `[rows, d]`.
fn layer_forward(
    cx: &Ctx,
    tr: &mut Trace,
    valid0: &[f32],
    floor: &[usize],
    (l, t): (usize, usize),
    xp: &mut [f32],
) {
    let Sizes { d, rows, .. } = cx.sz;
    let (p, la) = (cx.p, cx.at.layers[l]);
    let ga = cx.at.groups[cx.dims.group(l)];
    let o = cx.sz.lt(l, t);
    let x = &tr.xs[o * d..(o + rows) * d];
    layer_norm(
        x,
        p.get(la.ln_a_g, d),
        p.get(la.ln_a_b, d),
        &mut tr.a_hat[o * d..(o + rows) * d],
        &mut tr.a_out[o * d..(o + rows) * d],
        &mut tr.a_rstd[o..o + rows],
    );
    gemm(
        rows,
        d,
        d,
        &tr.a_out[o * d..],
        p.get(la.wq, d * d),
        0.0,
        &mut tr.q[o * d..],
    );
    // The current step's slot: the own input's key and value, or the null pair.
    if cx.dims.null_slot {
        let null = p.get(ga.null, 2 * d);
        for row in tr.kv_self[o * 2 * d..(o + rows) * 2 * d].chunks_exact_mut(2 * d) {
            row.copy_from_slice(null);
        }
    } else {
        layer_norm(
            x,
            p.get(ga.ln_g, d),
            p.get(ga.ln_b, d),
            &mut tr.c_hat[o * d..(o + rows) * d],
            &mut tr.c_out[o * d..(o + rows) * d],
            &mut tr.c_rstd[o..o + rows],
        );
        gemm(
            rows,
            d,
            2 * d,
            &tr.c_out[o * d..],
            p.get(ga.wkv, 2 * d * d),
            0.0,
            &mut tr.kv_self[o * 2 * d..],
        );
    }
    attend(cx, tr, valid0, floor, (l, t));
    feed_forward(cx, tr, (l, t), xp);
}

/// The attention of each row and head of layer `l` at step `t` over the window and the
/// current slot: weights into `tr.p`, outputs into `tr.att`.
fn attend(cx: &Ctx, tr: &mut Trace, valid0: &[f32], floor: &[usize], (l, t): (usize, usize)) {
    let Sizes {
        d,
        heads,
        span,
        rows,
        dh,
        hist,
        slots,
        scale,
        ..
    } = cx.sz;
    let g = cx.dims.group(l);
    let o = cx.sz.lt(l, t);
    let bias = cx.p.get(cx.at.layers[l].bias, heads * slots);
    let mut scores = vec![0.0; slots];
    for r in 0..rows {
        let q = &tr.q[(o + r) * d..(o + r + 1) * d];
        let kv_s = &tr.kv_self[(o + r) * 2 * d..(o + r + 1) * 2 * d];
        let base = (g * rows + r) * hist;
        let lo = floor[r].max(t);
        for h in 0..heads {
            let qh = &q[h * dh..(h + 1) * dh];
            let mut max = f32::NEG_INFINITY;
            for j in 0..span {
                let i = t + j;
                let allowed = i >= lo && (i >= span || valid0[r * span + i] > 0.5);
                scores[j] = if allowed {
                    let k = &tr.kv_hist[(base + i) * 2 * d + h * dh..][..dh];
                    let s = dot(qh, k) * scale + bias[h * slots + span - j];
                    max = max.max(s);
                    s
                } else {
                    f32::NEG_INFINITY
                };
            }
            let s_self = dot(qh, &kv_s[h * dh..(h + 1) * dh]) * scale + bias[h * slots];
            scores[span] = s_self;
            max = max.max(s_self);
            let mut sum = 0.0;
            for s in scores.iter_mut() {
                *s = if *s == f32::NEG_INFINITY {
                    0.0
                } else {
                    (*s - max).exp()
                };
                sum += *s;
            }
            let pw = &mut tr.p[((o + r) * heads + h) * slots..][..slots];
            for (w, s) in pw.iter_mut().zip(&scores) {
                *w = s / sum;
            }
            let out = &mut tr.att[(o + r) * d + h * dh..][..dh];
            out.fill(0.0);
            for (j, &w) in pw.iter().enumerate() {
                if w == 0.0 {
                    continue;
                }
                let v = if j < span {
                    &tr.kv_hist[(base + t + j) * 2 * d + d + h * dh..][..dh]
                } else {
                    &kv_s[d + h * dh..d + (h + 1) * dh]
                };
                axpy(out, w, v);
            }
        }
    }
}

/// `x' = x + Att·Wo`, then `x^{l+1} = x' + FF(LN(x'))`, for layer `l` at step `t`.
fn feed_forward(cx: &Ctx, tr: &mut Trace, (l, t): (usize, usize), xp: &mut [f32]) {
    let Sizes { d, ff, rows, .. } = cx.sz;
    let (p, la) = (cx.p, cx.at.layers[l]);
    let o = cx.sz.lt(l, t);
    let (below, above) = tr.xs.split_at_mut(cx.sz.lt(l + 1, t) * d);
    let x = &below[o * d..(o + rows) * d];
    let x_next = &mut above[..rows * d];
    xp.copy_from_slice(x);
    gemm(rows, d, d, &tr.att[o * d..], p.get(la.wo, d * d), 1.0, xp);
    layer_norm(
        xp,
        p.get(la.ln_f_g, d),
        p.get(la.ln_f_b, d),
        &mut tr.f_hat[o * d..(o + rows) * d],
        &mut tr.f_out[o * d..(o + rows) * d],
        &mut tr.f_rstd[o..o + rows],
    );
    let hid = &mut tr.hid[o * ff..(o + rows) * ff];
    for row in hid.chunks_exact_mut(ff) {
        row.copy_from_slice(p.get(la.b1, ff));
    }
    gemm(
        rows,
        d,
        ff,
        &tr.f_out[o * d..],
        p.get(la.w1, d * ff),
        1.0,
        hid,
    );
    for v in hid.iter_mut() {
        *v = v.max(0.0);
    }
    let b2 = p.get(la.b2, d);
    for (r, row) in x_next.chunks_exact_mut(d).enumerate() {
        for i in 0..d {
            row[i] = xp[r * d + i] + b2[i];
        }
    }
    gemm(rows, ff, d, hid, p.get(la.w2, ff * d), 1.0, x_next);
}

/// The memory vector `m` of step `t` (the mix of the embedding and the layers' outputs) and
/// its keys/values, appended to the history.
fn write_memory(cx: &Ctx, tr: &mut Trace, mix: &[f32], t: usize, m: &mut [f32]) {
    let Sizes {
        d,
        span,
        groups,
        rows,
        hist,
        ..
    } = cx.sz;
    let p = cx.p;
    m.fill(0.0);
    for (l, &w) in mix.iter().enumerate() {
        let o = cx.sz.lt(l, t);
        for (a, b) in m.iter_mut().zip(&tr.xs[o * d..(o + rows) * d]) {
            *a += w * b;
        }
    }
    let mut m_hat_t = vec![0.0; rows * d];
    let mut m_out_t = vec![0.0; rows * d];
    let mut m_rstd_t = vec![0.0; rows];
    let mut kv_t = vec![0.0; rows * 2 * d];
    for g in 0..groups {
        let ga = cx.at.groups[g];
        layer_norm(
            m,
            p.get(ga.ln_g, d),
            p.get(ga.ln_b, d),
            &mut m_hat_t,
            &mut m_out_t,
            &mut m_rstd_t,
        );
        gemm(
            rows,
            d,
            2 * d,
            &m_out_t,
            p.get(ga.wkv, 2 * d * d),
            0.0,
            &mut kv_t,
        );
        for r in 0..rows {
            let i = (g * rows + r) * hist + span + t;
            tr.m_hat[i * d..(i + 1) * d].copy_from_slice(&m_hat_t[r * d..(r + 1) * d]);
            tr.m_out[i * d..(i + 1) * d].copy_from_slice(&m_out_t[r * d..(r + 1) * d]);
            tr.m_rstd[i] = m_rstd_t[r];
            tr.kv_hist[i * 2 * d..(i + 1) * 2 * d]
                .copy_from_slice(&kv_t[r * 2 * d..(r + 1) * 2 * d]);
        }
    }
}

/// Gradients of one block: every parameter `[Layout::len]`, the inputs `[rows, T, d]` and the
/// starting memory vectors `[rows, τ, d]` (empty unless asked for).
struct BlockGrads {
    params: Vec<f32>,
    x0: Vec<f32>,
    m0: Vec<f32>,
}

/// The gradients a block's backward pass accumulates: every parameter, the inputs, and the
/// per-step gradients of the linear layers' outputs kept for the weight products at the end.
struct Grads {
    params: Vec<f32>,
    x0: Vec<f32>,
    q: Vec<f32>,
    kv_self: Vec<f32>,
    xp: Vec<f32>,
    hpre: Vec<f32>,
    y: Vec<f32>,
    kv_hist: Vec<f32>,
    mixw: Vec<f32>,
}

impl Grads {
    fn new(sz: &Sizes, n_params: usize) -> Self {
        let Sizes {
            d,
            layers,
            ff,
            groups,
            rows,
            steps,
            hist,
            ..
        } = *sz;
        let per_layer = |w: usize| pool::zeros(layers * steps * rows * w);
        Self {
            params: pool::zeros(n_params),
            x0: pool::zeros(rows * steps * d),
            q: per_layer(d),
            kv_self: per_layer(2 * d),
            xp: per_layer(d),
            hpre: per_layer(ff),
            y: per_layer(d),
            kv_hist: pool::zeros(groups * rows * hist * 2 * d),
            mixw: vec![0.0; layers + 1],
        }
    }
}

/// The backward pass of one block given the gradient of its outputs `dtop [rows, T, d]`.
fn backward_block(
    dims: &Dims,
    at: &Layout,
    p: &Params,
    tr: &Trace,
    dtop: &[f32],
    want_m0: bool,
) -> BlockGrads {
    let sz = Sizes::new(dims, tr.rows, tr.steps);
    let cx = Ctx { sz, dims, at, p };
    let Sizes {
        d,
        layers,
        rows,
        steps,
        ..
    } = sz;
    let mut gr = Grads::new(&sz, at.len);
    let mix = mix_weights(p, at, dims);
    let mut dxs = vec![0.0; (layers + 1) * rows * d];
    let mut dm = vec![0.0; rows * d];
    for t in (0..steps).rev() {
        dxs.fill(0.0);
        for r in 0..rows {
            dxs[(layers * rows + r) * d..(layers * rows + r + 1) * d]
                .copy_from_slice(&dtop[(r * steps + t) * d..(r * steps + t + 1) * d]);
        }
        // The memory vector of step t: every later step that read it is done.
        memory_back(&cx, tr, &mut gr, t, &mut dm);
        for l in 0..=layers {
            let o = sz.lt(l, t);
            gr.mixw[l] += dot(&tr.xs[o * d..(o + rows) * d], &dm);
            for (a, b) in dxs[l * rows * d..(l + 1) * rows * d].iter_mut().zip(&dm) {
                *a += mix[l] * b;
            }
        }
        for l in (0..layers).rev() {
            layer_backward(&cx, tr, &mut gr, (l, t), &mut dxs);
        }
        for r in 0..rows {
            gr.x0[(r * steps + t) * d..(r * steps + t + 1) * d]
                .copy_from_slice(&dxs[r * d..(r + 1) * d]);
        }
    }
    let dm0 = start_window_back(&cx, tr, &mut gr, want_m0);
    weight_gradients(&cx, tr, &mut gr);
    // The mixing logits through the softmax.
    if dims.mix == MemoryMix::Learned {
        let s_dw: f32 = mix.iter().zip(&gr.mixw).map(|(s, w)| s * w).sum();
        for l in 0..=layers {
            gr.params[at.mix + l] += mix[l] * (gr.mixw[l] - s_dw);
        }
    }
    let Grads {
        params,
        x0,
        q,
        kv_self,
        xp,
        hpre,
        y,
        kv_hist,
        ..
    } = gr;
    for v in [q, kv_self, xp, hpre, y, kv_hist] {
        pool::recycle(v);
    }
    BlockGrads {
        params,
        x0,
        m0: dm0,
    }
}

/// The gradient of step `t`'s memory vector (`dm [rows, d]`) from the gradients its keys and
/// values received, through their projection and LayerNorm.
fn memory_back(cx: &Ctx, tr: &Trace, gr: &mut Grads, t: usize, dm: &mut [f32]) {
    let Sizes {
        d,
        span,
        groups,
        rows,
        hist,
        ..
    } = cx.sz;
    let p = cx.p;
    dm.fill(0.0);
    let mut dkv_rows = vec![0.0; rows * 2 * d];
    let mut d_lnout = vec![0.0; rows * d];
    let (mut hat, mut rstd) = (vec![0.0; rows * d], vec![0.0; rows]);
    for g in 0..groups {
        let ga = cx.at.groups[g];
        for r in 0..rows {
            let i = (g * rows + r) * hist + span + t;
            dkv_rows[r * 2 * d..(r + 1) * 2 * d]
                .copy_from_slice(&gr.kv_hist[i * 2 * d..(i + 1) * 2 * d]);
            hat[r * d..(r + 1) * d].copy_from_slice(&tr.m_hat[i * d..(i + 1) * d]);
            rstd[r] = tr.m_rstd[i];
        }
        gemm_t(
            Transposed::B,
            (rows, 2 * d, d),
            &dkv_rows,
            p.get(ga.wkv, 2 * d * d),
            0.0,
            &mut d_lnout,
        );
        let (gg, rest) = gr.params[ga.ln_g..].split_at_mut(d);
        layer_norm_back(
            &d_lnout,
            &hat,
            &rstd,
            p.get(ga.ln_g, d),
            dm,
            gg,
            &mut rest[..d],
        );
    }
}

/// Layer `l` at step `t` backwards: from the gradient of `x^{l+1}` (`dxs` row block `l + 1`)
/// into the gradient of `x^l` (row block `l`) and the parameters.
fn layer_backward(cx: &Ctx, tr: &Trace, gr: &mut Grads, (l, t): (usize, usize), dxs: &mut [f32]) {
    let Sizes { d, ff, rows, .. } = cx.sz;
    let (p, la) = (cx.p, cx.at.layers[l]);
    let o = cx.sz.lt(l, t);
    let (dlow, dhigh) = dxs.split_at_mut((l + 1) * rows * d);
    let dy = &dhigh[..rows * d];
    let dx = &mut dlow[l * rows * d..(l + 1) * rows * d];
    gr.y[o * d..(o + rows) * d].copy_from_slice(dy);
    // Feed-forward block.
    let mut dhid = vec![0.0; rows * ff];
    let mut d_lnout = vec![0.0; rows * d];
    gemm_t(
        Transposed::B,
        (rows, d, ff),
        dy,
        p.get(la.w2, ff * d),
        0.0,
        &mut dhid,
    );
    let hid = &tr.hid[o * ff..(o + rows) * ff];
    let dh_pre = &mut gr.hpre[o * ff..(o + rows) * ff];
    for i in 0..rows * ff {
        dh_pre[i] = if hid[i] > 0.0 { dhid[i] } else { 0.0 };
    }
    gemm_t(
        Transposed::B,
        (rows, ff, d),
        dh_pre,
        p.get(la.w1, d * ff),
        0.0,
        &mut d_lnout,
    );
    let dxp = &mut gr.xp[o * d..(o + rows) * d];
    dxp.copy_from_slice(dy);
    let (gg, rest) = gr.params[la.ln_f_g..].split_at_mut(d);
    layer_norm_back(
        &d_lnout,
        &tr.f_hat[o * d..(o + rows) * d],
        &tr.f_rstd[o..o + rows],
        p.get(la.ln_f_g, d),
        dxp,
        gg,
        &mut rest[..d],
    );
    add_into(dx, dxp);
    // Attention, then the query and the current slot back to x^l.
    let mut datt = vec![0.0; rows * d];
    gemm_t(
        Transposed::B,
        (rows, d, d),
        dxp,
        p.get(la.wo, d * d),
        0.0,
        &mut datt,
    );
    attend_back(cx, tr, gr, (l, t), &datt);
    query_slot_back(cx, tr, gr, (l, t), dx);
}

/// The attention of layer `l` at step `t` backwards, given the gradient of its output
/// `datt [rows, d]`: into the query's, the current slot's and the window entries' gradients
/// and the position bias.
fn attend_back(cx: &Ctx, tr: &Trace, gr: &mut Grads, (l, t): (usize, usize), datt: &[f32]) {
    let Sizes {
        d,
        heads,
        span,
        rows,
        dh,
        hist,
        slots,
        scale,
        ..
    } = cx.sz;
    let g = cx.dims.group(l);
    let bias_at = cx.at.layers[l].bias;
    let o = cx.sz.lt(l, t);
    let dq = &mut gr.q[o * d..(o + rows) * d];
    dq.fill(0.0);
    let dkvs = &mut gr.kv_self[o * 2 * d..(o + rows) * 2 * d];
    dkvs.fill(0.0);
    let mut dp = vec![0.0; slots];
    for r in 0..rows {
        let q = &tr.q[(o + r) * d..(o + r + 1) * d];
        let kv_s = &tr.kv_self[(o + r) * 2 * d..(o + r + 1) * 2 * d];
        let base = (g * rows + r) * hist;
        for h in 0..heads {
            let pw = &tr.p[((o + r) * heads + h) * slots..][..slots];
            let da = &datt[r * d + h * dh..r * d + (h + 1) * dh];
            let mut pdp = 0.0;
            for j in 0..slots {
                dp[j] = if pw[j] == 0.0 {
                    0.0
                } else {
                    let v = if j < span {
                        &tr.kv_hist[(base + t + j) * 2 * d + d + h * dh..][..dh]
                    } else {
                        &kv_s[d + h * dh..d + (h + 1) * dh]
                    };
                    dot(da, v)
                };
                pdp += pw[j] * dp[j];
            }
            let qh = &q[h * dh..(h + 1) * dh];
            for j in 0..slots {
                if pw[j] == 0.0 {
                    continue;
                }
                let ds = pw[j] * (dp[j] - pdp);
                gr.params[bias_at + h * slots + span - j] += ds;
                let (k, dk_dv): (&[f32], &mut [f32]) = if j < span {
                    let i = base + t + j;
                    (
                        &tr.kv_hist[i * 2 * d..(i + 1) * 2 * d],
                        &mut gr.kv_hist[i * 2 * d..(i + 1) * 2 * d],
                    )
                } else {
                    (kv_s, &mut dkvs[r * 2 * d..(r + 1) * 2 * d])
                };
                let dqh = &mut dq[r * d + h * dh..r * d + (h + 1) * dh];
                axpy(dqh, ds * scale, &k[h * dh..(h + 1) * dh]);
                let (dk, dv) = dk_dv.split_at_mut(d);
                axpy(&mut dk[h * dh..(h + 1) * dh], ds * scale, qh);
                axpy(&mut dv[h * dh..(h + 1) * dh], pw[j], da);
            }
        }
    }
}

/// The query projection and the current slot's key/value of layer `l` at step `t`
/// backwards: into `dx` (the gradient of `x^l`) and the parameters.
fn query_slot_back(cx: &Ctx, tr: &Trace, gr: &mut Grads, (l, t): (usize, usize), dx: &mut [f32]) {
    let Sizes { d, rows, .. } = cx.sz;
    let (p, la) = (cx.p, cx.at.layers[l]);
    let ga = cx.at.groups[cx.dims.group(l)];
    let o = cx.sz.lt(l, t);
    let mut d_lnout = vec![0.0; rows * d];
    gemm_t(
        Transposed::B,
        (rows, d, d),
        &gr.q[o * d..(o + rows) * d],
        p.get(la.wq, d * d),
        0.0,
        &mut d_lnout,
    );
    let (gg, rest) = gr.params[la.ln_a_g..].split_at_mut(d);
    layer_norm_back(
        &d_lnout,
        &tr.a_hat[o * d..(o + rows) * d],
        &tr.a_rstd[o..o + rows],
        p.get(la.ln_a_g, d),
        dx,
        gg,
        &mut rest[..d],
    );
    let dkvs = &gr.kv_self[o * 2 * d..(o + rows) * 2 * d];
    if cx.dims.null_slot {
        column_sums_into(&mut gr.params[ga.null..ga.null + 2 * d], dkvs);
        return;
    }
    gemm_t(
        Transposed::B,
        (rows, 2 * d, d),
        dkvs,
        p.get(ga.wkv, 2 * d * d),
        0.0,
        &mut d_lnout,
    );
    let (gg, rest) = gr.params[ga.ln_g..].split_at_mut(d);
    layer_norm_back(
        &d_lnout,
        &tr.c_hat[o * d..(o + rows) * d],
        &tr.c_rstd[o..o + rows],
        p.get(ga.ln_g, d),
        dx,
        gg,
        &mut rest[..d],
    );
}

/// The starting window's keys/values were computed from the starting memory vectors: their
/// gradients go through that projection (parameters) and, if asked, to the vectors
/// (`[rows, τ, d]`, else empty).
fn start_window_back(cx: &Ctx, tr: &Trace, gr: &mut Grads, want_m0: bool) -> Vec<f32> {
    let Sizes {
        d,
        span,
        groups,
        rows,
        hist,
        ..
    } = cx.sz;
    let p = cx.p;
    let mut dm0 = vec![0.0; rows * span * d];
    let mut d_ln0 = vec![0.0; span * d];
    for g in 0..groups {
        let ga = cx.at.groups[g];
        for r in 0..rows {
            let h0 = (g * rows + r) * hist;
            gemm_t(
                Transposed::B,
                (span, 2 * d, d),
                &gr.kv_hist[h0 * 2 * d..(h0 + span) * 2 * d],
                p.get(ga.wkv, 2 * d * d),
                0.0,
                &mut d_ln0,
            );
            let (gg, rest) = gr.params[ga.ln_g..].split_at_mut(d);
            layer_norm_back(
                &d_ln0,
                &tr.m_hat[h0 * d..(h0 + span) * d],
                &tr.m_rstd[h0..h0 + span],
                p.get(ga.ln_g, d),
                &mut dm0[r * span * d..(r + 1) * span * d],
                gg,
                &mut rest[..d],
            );
        }
    }
    if want_m0 { dm0 } else { Vec::new() }
}

/// Weight gradients: one product over all `T × rows` per matrix.
fn weight_gradients(cx: &Ctx, tr: &Trace, gr: &mut Grads) {
    let Sizes {
        d,
        layers,
        ff,
        groups,
        rows,
        steps,
        hist,
        ..
    } = cx.sz;
    let n = steps * rows;
    let gp = &mut gr.params;
    for l in 0..layers {
        let la = cx.at.layers[l];
        let ga = cx.at.groups[cx.dims.group(l)];
        let o = cx.sz.lt(l, 0);
        let (a_out, att, f_out) = (&tr.a_out[o * d..], &tr.att[o * d..], &tr.f_out[o * d..]);
        gemm_t(
            Transposed::A,
            (d, n, d),
            a_out,
            &gr.q[o * d..],
            1.0,
            &mut gp[la.wq..la.wq + d * d],
        );
        gemm_t(
            Transposed::A,
            (d, n, d),
            att,
            &gr.xp[o * d..],
            1.0,
            &mut gp[la.wo..la.wo + d * d],
        );
        let w1 = &mut gp[la.w1..la.w1 + d * ff];
        gemm_t(
            Transposed::A,
            (d, n, ff),
            f_out,
            &gr.hpre[o * ff..],
            1.0,
            w1,
        );
        column_sums_into(&mut gp[la.b1..la.b1 + ff], &gr.hpre[o * ff..(o + n) * ff]);
        let w2 = &mut gp[la.w2..la.w2 + ff * d];
        gemm_t(
            Transposed::A,
            (ff, n, d),
            &tr.hid[o * ff..],
            &gr.y[o * d..],
            1.0,
            w2,
        );
        column_sums_into(&mut gp[la.b2..la.b2 + d], &gr.y[o * d..(o + n) * d]);
        if !cx.dims.null_slot {
            let wkv = &mut gp[ga.wkv..ga.wkv + 2 * d * d];
            gemm_t(
                Transposed::A,
                (d, n, 2 * d),
                &tr.c_out[o * d..],
                &gr.kv_self[o * 2 * d..],
                1.0,
                wkv,
            );
        }
    }
    for g in 0..groups {
        let ga = cx.at.groups[g];
        let o = g * rows * hist;
        let wkv = &mut gp[ga.wkv..ga.wkv + 2 * d * d];
        gemm_t(
            Transposed::A,
            (d, rows * hist, 2 * d),
            &tr.m_out[o * d..],
            &gr.kv_hist[o * 2 * d..],
            1.0,
            wkv,
        );
    }
}

/// The fused sequence operation: inputs `[params, x0 [B,T,d], m0 [B,τ,d]]`, output the last
/// layer's outputs `[B, T, d]`.
#[derive(Debug)]
pub(crate) struct FeedbackSequence {
    pub dims: Dims,
    pub layout: Layout,
    pub batch: usize,
    pub steps: usize,
    /// `[B, T]`.
    pub starts: Vec<f32>,
    /// `[B, τ]`.
    pub valid0: Vec<f32>,
}

impl FeedbackSequence {
    fn block_input<'a>(
        &'a self,
        x0: &'a [f32],
        m0: &'a [f32],
        b0: usize,
        rows: usize,
    ) -> BlockInput<'a> {
        let (d, span, steps) = (self.dims.d, self.dims.span, self.steps);
        BlockInput {
            rows,
            steps,
            x0: &x0[b0 * steps * d..(b0 + rows) * steps * d],
            starts: &self.starts[b0 * steps..(b0 + rows) * steps],
            valid0: &self.valid0[b0 * span..(b0 + rows) * span],
            window: Window::Vectors(&m0[b0 * span * d..(b0 + rows) * span * d]),
        }
    }

    fn blocks(&self) -> Vec<(usize, usize)> {
        (0..self.batch)
            .step_by(ROWS_PER_BLOCK)
            .map(|b0| (b0, ROWS_PER_BLOCK.min(self.batch - b0)))
            .collect()
    }
}

impl FusedOp for FeedbackSequence {
    type Saved = Vec<Trace>;

    fn forward(&self, inputs: &[&[f32]], save: bool) -> (Vec<f32>, Option<Vec<Trace>>) {
        let (params, x0, m0) = (Params::Flat(inputs[0]), inputs[1], inputs[2]);
        let results: Vec<(BlockOutput, Trace)> = self
            .blocks()
            .into_par_iter()
            .map(|(b0, rows)| {
                forward_block(
                    &self.dims,
                    &self.layout,
                    &params,
                    &self.block_input(x0, m0, b0, rows),
                )
            })
            .collect();
        let mut top = Vec::with_capacity(self.batch * self.steps * self.dims.d);
        let mut traces = Vec::with_capacity(results.len());
        for (out, trace) in results {
            top.extend_from_slice(&out.top);
            pool::recycle(out.top);
            traces.push(trace);
        }
        (top, save.then_some(traces))
    }

    fn backward(
        &self,
        inputs: &[&[f32]],
        saved: &Vec<Trace>,
        grad: &[f32],
        wanted: &[bool],
    ) -> Vec<Vec<f32>> {
        let params = Params::Flat(inputs[0]);
        let (d, span, steps) = (self.dims.d, self.dims.span, self.steps);
        let want_m0 = wanted.get(2).copied().unwrap_or(false);
        let grads: Vec<BlockGrads> = self
            .blocks()
            .into_par_iter()
            .zip(saved.par_iter())
            .map(|((b0, rows), trace)| {
                backward_block(
                    &self.dims,
                    &self.layout,
                    &params,
                    trace,
                    &grad[b0 * steps * d..(b0 + rows) * steps * d],
                    want_m0,
                )
            })
            .collect();
        let mut gp = vec![0.0; self.layout.len];
        let mut gx = Vec::with_capacity(self.batch * steps * d);
        // Empty when the starting memory wants no gradient (the glue then registers none).
        let mut gm = Vec::with_capacity(if want_m0 { self.batch * span * d } else { 0 });
        for g in grads {
            add_into(&mut gp, &g.params);
            gx.extend_from_slice(&g.x0);
            gm.extend_from_slice(&g.m0);
            pool::recycle(g.params);
            pool::recycle(g.x0);
        }
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
    let (d, span, groups) = (dims.d, dims.span, dims.groups);
    let batch = starts.len();
    let blocks: Vec<(usize, usize)> = (0..batch)
        .step_by(ROWS_PER_BLOCK)
        .map(|b0| (b0, ROWS_PER_BLOCK.min(batch - b0)))
        .collect();
    let results: Vec<(BlockOutput, Trace)> = blocks
        .par_iter()
        .map(|&(b0, rows)| {
            let input = BlockInput {
                rows,
                steps: 1,
                x0: &x0[b0 * d..(b0 + rows) * d],
                starts: &starts[b0..b0 + rows],
                valid0: &valid[b0 * span..(b0 + rows) * span],
                window: Window::KeyValues(
                    kv.iter()
                        .map(|k| &k[b0 * span * 2 * d..(b0 + rows) * span * 2 * d])
                        .collect(),
                ),
            };
            forward_block(dims, at, params, &input)
        })
        .collect();
    let mut top = Vec::with_capacity(batch * d);
    let mut m = Vec::with_capacity(batch * d);
    let mut new_kv = vec![Vec::with_capacity(batch * 2 * d); groups];
    let hist = span + 1;
    for (out, tr) in results {
        top.extend_from_slice(&out.top);
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
