//! The backward pass of a block: from the gradient of its outputs, back through the steps in
//! reverse, into the gradients of the parameters, the inputs and the starting memory vectors.

use super::forward::{Trace, slot_value};
use super::layout::{Ctx, Dims, LayerStep, Layout, mix_weights};
use crate::feedback_options::MemoryMix;
use crate::kernels::attention::{BlockGrads, Sizes};
use crate::kernels::common::{
    Params, add_into, axpy, column_sums_into, dot, layer_norm_back_at, matmul_back_input,
    matmul_back_weight,
};
use crate::kernels::pool;

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
    fn new(sz: &Sizes, groups: usize, n_params: usize) -> Self {
        let Sizes {
            d,
            layers,
            ff,
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

/// The backward pass of one block given the gradient of its outputs `dtop [rows, T, d]`; the
/// window's gradient is that of the starting memory vectors `[rows, τ, d]` (empty unless
/// `want_m0`).
pub(super) fn backward_block(
    dims: &Dims,
    at: &Layout,
    p: &Params,
    tr: &Trace,
    dtop: &[f32],
    want_m0: bool,
) -> BlockGrads {
    let cx = Ctx::new(dims, at, p, (tr.rows, tr.steps));
    let sz = cx.sz;
    let Sizes {
        d,
        layers,
        rows,
        steps,
        ..
    } = sz;
    let mut gr = Grads::new(&sz, dims.groups, at.len);
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
            layer_backward(&cx, tr, &mut gr, cx.layer_step(l, t), &mut dxs);
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
        window: dm0,
    }
}

/// The gradient of step `t`'s memory vector (`dm [rows, d]`) from the gradients its keys and
/// values received, through their projection and LayerNorm.
fn memory_back(cx: &Ctx, tr: &Trace, gr: &mut Grads, t: usize, dm: &mut [f32]) {
    let Sizes { d, span, rows, .. } = cx.sz;
    let p = cx.p;
    dm.fill(0.0);
    let mut dkv_rows = vec![0.0; rows * 2 * d];
    let mut d_lnout = vec![0.0; rows * d];
    let (mut hat, mut rstd) = (vec![0.0; rows * d], vec![0.0; rows]);
    for (g, ga) in cx.at.groups.iter().enumerate() {
        for r in 0..rows {
            let i = cx.sz.history(g, r) + span + t;
            dkv_rows[r * 2 * d..(r + 1) * 2 * d]
                .copy_from_slice(&gr.kv_hist[i * 2 * d..(i + 1) * 2 * d]);
            hat[r * d..(r + 1) * d].copy_from_slice(&tr.m.hat[i * d..(i + 1) * d]);
            rstd[r] = tr.m.rstd[i];
        }
        ga.project_back(
            (p, &mut gr.params),
            (rows, d),
            &dkv_rows,
            (&hat, &rstd),
            &mut d_lnout,
            dm,
        );
    }
}

/// Layer `l` at step `t` backwards: from the gradient of `x^{l+1}` (`dxs` row block `l + 1`)
/// into the gradient of `x^l` (row block `l`) and the parameters.
fn layer_backward(cx: &Ctx, tr: &Trace, gr: &mut Grads, ls: LayerStep, dxs: &mut [f32]) {
    let Sizes { d, ff, rows, .. } = cx.sz;
    let LayerStep { l, la, o, .. } = ls;
    let p = cx.p;
    let (dlow, dhigh) = dxs.split_at_mut((l + 1) * rows * d);
    let dy = &dhigh[..rows * d];
    let dx = &mut dlow[l * rows * d..(l + 1) * rows * d];
    gr.y[o * d..(o + rows) * d].copy_from_slice(dy);
    // Feed-forward block.
    let mut d_lnout = vec![0.0; rows * d];
    let hid = &tr.hid[o * ff..(o + rows) * ff];
    let dh_pre = &mut gr.hpre[o * ff..(o + rows) * ff];
    let dxp = &mut gr.xp[o * d..(o + rows) * d];
    dxp.copy_from_slice(dy);
    la.ff.back(
        (p, &mut gr.params),
        (rows, d, ff),
        dy,
        (hid, &tr.f, o),
        dh_pre,
        &mut d_lnout,
        dxp,
    );
    add_into(dx, dxp);
    // Attention, then the query and the current slot back to x^l.
    let mut datt = vec![0.0; rows * d];
    matmul_back_input(p, (la.wo, (rows, d, d)), dxp, (0.0, &mut datt));
    attend_back(cx, tr, gr, ls, &datt);
    query_slot_back(cx, tr, gr, ls, dx);
}

/// The attention of layer `l` at step `t` backwards, given the gradient of its output
/// `datt [rows, d]`: into the query's, the current slot's and the window entries' gradients
/// and the position bias.
fn attend_back(cx: &Ctx, tr: &Trace, gr: &mut Grads, ls: LayerStep, datt: &[f32]) {
    let Sizes {
        d,
        heads,
        span,
        rows,
        dh,
        slots,
        scale,
        ..
    } = cx.sz;
    let LayerStep { t, la, g, o, .. } = ls;
    let dq = &mut gr.q[o * d..(o + rows) * d];
    dq.fill(0.0);
    let dkvs = &mut gr.kv_self[o * 2 * d..(o + rows) * 2 * d];
    dkvs.fill(0.0);
    let mut dp = vec![0.0; slots];
    for r in 0..rows {
        let q = &tr.q[(o + r) * d..(o + r + 1) * d];
        let kv_s = &tr.kv_self[(o + r) * 2 * d..(o + r + 1) * 2 * d];
        let base = cx.sz.history(g, r);
        for h in 0..heads {
            let pw = &tr.p[((o + r) * heads + h) * slots..][..slots];
            let da = &datt[r * d + h * dh..r * d + (h + 1) * dh];
            let mut pdp = 0.0;
            for j in 0..slots {
                dp[j] = if pw[j] == 0.0 {
                    0.0
                } else {
                    let v = slot_value(&cx.sz, (&tr.kv_hist, kv_s), base + t, (j, h));
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
                gr.params[la.bias + h * slots + span - j] += ds;
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
fn query_slot_back(cx: &Ctx, tr: &Trace, gr: &mut Grads, ls: LayerStep, dx: &mut [f32]) {
    let Sizes { d, rows, .. } = cx.sz;
    let LayerStep { la, ga, o, .. } = ls;
    let p = cx.p;
    let mut d_lnout = vec![0.0; rows * d];
    let dq = &gr.q[o * d..(o + rows) * d];
    matmul_back_input(p, (la.wq, (rows, d, d)), dq, (0.0, &mut d_lnout));
    layer_norm_back_at(
        p,
        &mut gr.params,
        (la.ln_a, d),
        &d_lnout,
        tr.a.saved(o, rows),
        dx,
    );
    let dkvs = &gr.kv_self[o * 2 * d..(o + rows) * 2 * d];
    if cx.dims.null_slot {
        column_sums_into(&mut gr.params[ga.null..ga.null + 2 * d], dkvs);
        return;
    }
    ga.project_back(
        (p, &mut gr.params),
        (rows, d),
        dkvs,
        tr.c.saved(o, rows),
        &mut d_lnout,
        dx,
    );
}

/// The starting window's keys/values were computed from the starting memory vectors: their
/// gradients go through that projection (parameters) and, if asked, to the vectors
/// (`[rows, τ, d]`, else empty).
fn start_window_back(cx: &Ctx, tr: &Trace, gr: &mut Grads, want_m0: bool) -> Vec<f32> {
    let Sizes { d, span, rows, .. } = cx.sz;
    let p = cx.p;
    let mut dm0 = vec![0.0; rows * span * d];
    let mut d_ln0 = vec![0.0; span * d];
    for (g, ga) in cx.at.groups.iter().enumerate() {
        for r in 0..rows {
            let h0 = cx.sz.history(g, r);
            ga.project_back(
                (p, &mut gr.params),
                (span, d),
                &gr.kv_hist[h0 * 2 * d..(h0 + span) * 2 * d],
                tr.m.saved(h0, span),
                &mut d_ln0,
                &mut dm0[r * span * d..(r + 1) * span * d],
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
        rows,
        n,
        hist,
        ..
    } = cx.sz;
    let gp = &mut gr.params;
    for l in 0..layers {
        let LayerStep { la, ga, o, .. } = cx.layer_step(l, 0);
        let (a_out, att, f_out) = (tr.a.out_from(o), &tr.att[o * d..], tr.f.out_from(o));
        matmul_back_weight(gp, (la.wq, (n, d, d)), (a_out, &gr.q[o * d..]));
        matmul_back_weight(gp, (la.wo, (n, d, d)), (att, &gr.xp[o * d..]));
        la.ff.weight_grads(
            gp,
            (n, d, ff),
            (f_out, &gr.hpre[o * ff..]),
            (&tr.hid[o * ff..], &gr.y[o * d..]),
        );
        if !cx.dims.null_slot {
            let (c_out, dkv) = (tr.c.out_from(o), &gr.kv_self[o * 2 * d..]);
            matmul_back_weight(gp, (ga.wkv, (n, d, 2 * d)), (c_out, dkv));
        }
    }
    for (g, ga) in cx.at.groups.iter().enumerate() {
        let o = cx.sz.history(g, 0);
        let (m_out, dkv) = (tr.m.out_from(o), &gr.kv_hist[o * 2 * d..]);
        matmul_back_weight(gp, (ga.wkv, (rows * hist, d, 2 * d)), (m_out, dkv));
    }
}
