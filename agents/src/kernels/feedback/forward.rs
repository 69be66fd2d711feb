//! The forward pass of a block of rows, step by step: each layer's attention over the memory
//! window and its feed-forward block, then the step's memory vector and its keys and values.
//! Everything the backward pass reads is kept in a [`Trace`].

use super::layout::{Ctx, Dims, LayerStep, Layout, mix_weights};
use crate::kernels::attention::{self, Sizes};
use crate::kernels::common::{NormRows, Params, axpy, dot, layer_norm};
use crate::kernels::linalg::gemm;
use crate::kernels::pool;

/// The inputs of a block of rows that are not parameters.
pub(super) type BlockInput<'a> = attention::BlockInput<'a, Window<'a>>;

/// The starting window: memory vectors `[rows, τ, d]`, or cached keys/values.
pub(super) enum Window<'a> {
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
    pub(super) rows: usize,
    pub(super) steps: usize,
    /// Layer outputs `x^0..x^L`: `[L+1][T][rows][d]`.
    pub(super) xs: Vec<f32>,
    pub(super) a: NormRows,
    pub(super) q: Vec<f32>,
    pub(super) c: NormRows,
    pub(super) kv_self: Vec<f32>,
    /// Attention weights `[L][T][rows][H][τ+1]` (slot `τ`: the own input).
    pub(super) p: Vec<f32>,
    pub(super) att: Vec<f32>,
    pub(super) f: NormRows,
    /// Feed-forward hidden units after the ReLU, `[L][T][rows][F]`.
    pub(super) hid: Vec<f32>,
    /// `LN(m)` of every memory vector: `[G][rows][τ+T]` rows.
    pub(super) m: NormRows,
    pub(super) kv_hist: Vec<f32>,
    /// The first history index each row may attend to at each step, `[rows][T]`.
    pub(super) floor: Vec<usize>,
}

impl Drop for Trace {
    fn drop(&mut self) {
        for v in [
            &mut self.xs,
            &mut self.q,
            &mut self.kv_self,
            &mut self.p,
            &mut self.att,
            &mut self.hid,
            &mut self.kv_hist,
        ] {
            pool::recycle(std::mem::take(v));
        }
    }
}

/// What a forward pass of a block returns besides its trace.
pub(super) struct BlockOutput {
    /// Last layer's outputs `[rows, T, d]`.
    pub(super) top: Vec<f32>,
    /// The last step's memory vector `[rows, d]`.
    pub(super) last_m: Vec<f32>,
}

impl Trace {
    /// Zeroed buffers for a block of `sz.rows` rows and `sz.steps` steps, with `groups`
    /// key/value groups.
    fn new(sz: &Sizes, groups: usize) -> Self {
        let Sizes {
            d,
            heads,
            layers,
            ff,
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
            a: NormRows::new(layers * steps * rows, d, pool::zeros),
            q: per_layer(d),
            c: NormRows::new(layers * steps * rows, d, pool::zeros),
            kv_self: per_layer(2 * d),
            p: per_layer(heads * slots),
            att: per_layer(d),
            f: NormRows::new(layers * steps * rows, d, pool::zeros),
            hid: per_layer(ff),
            m: NormRows::new(groups * rows * hist, d, pool::zeros),
            kv_hist: pool::zeros(groups * rows * hist * 2 * d),
            floor: vec![0; steps * rows],
        }
    }
}

/// The forward pass of one block of rows.
pub(super) fn forward_block(
    dims: &Dims,
    at: &Layout,
    p: &Params,
    input: &BlockInput,
) -> (BlockOutput, Trace) {
    let cx = Ctx::new(dims, at, p, (input.rows, input.steps));
    let sz = cx.sz;
    let Sizes {
        d,
        layers,
        span,
        rows,
        steps,
        ..
    } = sz;
    let mut tr = Trace::new(&sz, dims.groups);
    start_window(&cx, &input.window, &mut tr);
    let mix = mix_weights(p, at, dims);
    let mut top = pool::zeros(rows * steps * d);
    input.episode_floors(span, &mut tr.floor);
    let mut xp = vec![0.0; rows * d];
    let mut m = vec![0.0; rows * d];
    for t in 0..steps {
        // x^0: the embedded observations of this step.
        let o = sz.lt(0, t);
        for r in 0..rows {
            tr.xs[(o + r) * d..(o + r + 1) * d]
                .copy_from_slice(&input.x0[(r * steps + t) * d..(r * steps + t + 1) * d]);
        }
        for l in 0..layers {
            let ls = cx.layer_step(l, t);
            layer_forward(&cx, &mut tr, input.valid0, ls, &mut xp);
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
    let Sizes { d, span, rows, .. } = cx.sz;
    let p = cx.p;
    for (g, ga) in cx.at.groups.iter().enumerate() {
        for r in 0..rows {
            let h0 = cx.sz.history(g, r);
            match window {
                Window::Vectors(m0) => {
                    tr.m.forward(p, ga.ln, &m0[r * span * d..(r + 1) * span * d], h0);
                    let kv = &mut tr.kv_hist[h0 * 2 * d..(h0 + span) * 2 * d];
                    ga.project(p, (span, d), tr.m.out_from(h0), kv);
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
fn layer_forward(cx: &Ctx, tr: &mut Trace, valid0: &[f32], ls: LayerStep, xp: &mut [f32]) {
    let Sizes { d, rows, .. } = cx.sz;
    let LayerStep { la, ga, o, .. } = ls;
    let p = cx.p;
    let x = &tr.xs[o * d..(o + rows) * d];
    tr.a.forward(p, la.ln_a, x, o);
    gemm(
        rows,
        d,
        d,
        tr.a.out_from(o),
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
        tr.c.forward(p, ga.ln, x, o);
        ga.project(p, (rows, d), tr.c.out_from(o), &mut tr.kv_self[o * 2 * d..]);
    }
    attend(cx, tr, valid0, ls);
    feed_forward(cx, tr, ls, xp);
}

/// The attention of each row and head of layer `l` at step `t` over the window and the
/// current slot: weights into `tr.p`, outputs into `tr.att`.
fn attend(cx: &Ctx, tr: &mut Trace, valid0: &[f32], ls: LayerStep) {
    let Sizes {
        d,
        heads,
        span,
        rows,
        steps,
        dh,
        slots,
        scale,
        ..
    } = cx.sz;
    let LayerStep { t, la, g, o, .. } = ls;
    let bias = cx.p.get(la.bias, heads * slots);
    let mut scores = vec![0.0; slots];
    for r in 0..rows {
        let q = &tr.q[(o + r) * d..(o + r + 1) * d];
        let kv_s = &tr.kv_self[(o + r) * 2 * d..(o + r + 1) * 2 * d];
        let base = cx.sz.history(g, r);
        let lo = tr.floor[r * steps + t].max(t);
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
                let v = slot_value(&cx.sz, (&tr.kv_hist, kv_s), base + t, (j, h));
                axpy(out, w, v);
            }
        }
    }
}

/// Head `h`'s value in slot `j` of a row's window: for `j < τ` that of the memory history
/// entry `at + j` (`at`: the row's history start plus the step; `kv_hist`: key/value pairs
/// `[2d]`), else that of the current slot's pair `kv_s`.
#[inline]
pub(super) fn slot_value<'a>(
    sz: &Sizes,
    (kv_hist, kv_s): (&'a [f32], &'a [f32]),
    at: usize,
    (j, h): (usize, usize),
) -> &'a [f32] {
    let (d, dh) = (sz.d, sz.dh);
    if j < sz.span {
        &kv_hist[(at + j) * 2 * d + d + h * dh..][..dh]
    } else {
        &kv_s[d + h * dh..d + (h + 1) * dh]
    }
}

/// `x' = x + Att·Wo`, then `x^{l+1} = x' + FF(LN(x'))`, for layer `l` at step `t`.
fn feed_forward(cx: &Ctx, tr: &mut Trace, ls: LayerStep, xp: &mut [f32]) {
    let Sizes { d, ff, rows, .. } = cx.sz;
    let LayerStep { l, t, la, o, .. } = ls;
    let p = cx.p;
    let (below, above) = tr.xs.split_at_mut(cx.sz.lt(l + 1, t) * d);
    let x = &below[o * d..(o + rows) * d];
    let x_next = &mut above[..rows * d];
    xp.copy_from_slice(x);
    gemm(rows, d, d, &tr.att[o * d..], p.get(la.wo, d * d), 1.0, xp);
    let hid = &mut tr.hid[o * ff..(o + rows) * ff];
    la.ff.hidden(p, (rows, d, ff), xp, (&mut tr.f, o), hid);
    la.ff.output(p, (rows, d, ff), hid, Some(xp), x_next);
}

/// The memory vector `m` of step `t` (the mix of the embedding and the layers' outputs) and
/// its keys/values, appended to the history.
fn write_memory(cx: &Ctx, tr: &mut Trace, mix: &[f32], t: usize, m: &mut [f32]) {
    let Sizes { d, span, rows, .. } = cx.sz;
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
    for (g, ga) in cx.at.groups.iter().enumerate() {
        layer_norm(
            m,
            p.get(ga.ln, d),
            p.get(ga.ln + d, d),
            &mut m_hat_t,
            &mut m_out_t,
            &mut m_rstd_t,
        );
        ga.project(p, (rows, d), &m_out_t, &mut kv_t);
        for r in 0..rows {
            let i = cx.sz.history(g, r) + span + t;
            tr.m.hat[i * d..(i + 1) * d].copy_from_slice(&m_hat_t[r * d..(r + 1) * d]);
            tr.m.out[i * d..(i + 1) * d].copy_from_slice(&m_out_t[r * d..(r + 1) * d]);
            tr.m.rstd[i] = m_rstd_t[r];
            tr.kv_hist[i * 2 * d..(i + 1) * 2 * d]
                .copy_from_slice(&kv_t[r * 2 * d..(r + 1) * 2 * d]);
        }
    }
}
