//! The graph of one time step of each policy network, written with the operations of
//! [`GraphBuilder`] in the same order as the tensor-operation reference paths of
//! [`crate::feedback`], [`crate::transformer`], [`crate::gru`] and [`crate::mlp`].

use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;

use super::graph::{Attr, GraphBuilder};
use crate::attention::{FeedForward, GruGate, MASKED_SCORE, RelativePositionBias};
use crate::feedback::{FeedbackTransformer, MemoryKeyValue, MemoryMix};
use crate::gru::GruPolicy;
use crate::heads::ActorCriticHeads;
use crate::mlp::MlpPolicy;
use crate::policy::PolicyNet;
use crate::transformer::Transformer;

/// The epsilon of every LayerNorm of the policies (burn's `LayerNormConfig` default, which
/// they all use, and the fused kernels' constant).
const LN_EPS: f32 = 1e-5;

/// The host values of a tensor as `f32`.
pub(crate) fn host<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, String> {
    t.try_into_vec_as::<f32>()
        .map_err(|e| format!("cannot read a weight tensor: {e:?}"))
}

/// The step's graph inputs and the values derived from them that every network shares.
pub(crate) struct StepContext {
    /// The graph under construction.
    pub(crate) g: GraphBuilder,
    /// The observation fed to the networks `[B, obs_dim]` (normalised when a normaliser is
    /// folded in).
    pub(crate) obs: String,
    /// The raw observation input, whose shape gives the batch size.
    pub(crate) raw_obs: String,
    /// The `episode_start` input `[B]`.
    pub(crate) start: String,
    batch: Option<String>,
    keep: Option<String>,
    ones: Option<String>,
}

impl StepContext {
    /// A context reading the inputs `raw_obs` and `start`; `obs` is what the networks read.
    pub(crate) fn new(g: GraphBuilder, raw_obs: &str, obs: &str, start: &str) -> Self {
        Self {
            g,
            obs: obs.into(),
            raw_obs: raw_obs.into(),
            start: start.into(),
            batch: None,
            keep: None,
            ones: None,
        }
    }

    /// The batch size as an `int64` vector `[1]`.
    fn batch(&mut self) -> String {
        if let Some(b) = &self.batch {
            return b.clone();
        }
        let raw = self.raw_obs.clone();
        let b = self.g.node(
            "Shape",
            &[&raw],
            vec![Attr::Int("start", 0), Attr::Int("end", 1)],
            "batch",
        );
        self.batch = Some(b.clone());
        b
    }

    /// The runtime shape `[B, rest..]`.
    pub(crate) fn batch_shape(&mut self, rest: &[i64]) -> String {
        let batch = self.batch();
        let rest = self.g.ints(rest);
        self.g.concat(&[&batch, &rest], 0)
    }

    /// A `[1, ..]` constant repeated over the batch: `[B, ..]`.
    pub(crate) fn broadcast_rows(&mut self, row: &str, rest: &[i64]) -> String {
        let shape = self.batch_shape(rest);
        self.g.expand(row, &shape)
    }

    /// `1 − episode_start` as `[B, 1, 1]`: multiplies a memory to empty it at a reset.
    fn keep(&mut self) -> String {
        if let Some(k) = &self.keep {
            return k.clone();
        }
        let (one, start) = (self.g.scalar(1.0), self.start.clone());
        let keep = self.g.sub(&one, &start);
        let keep = self.g.reshape(&keep, &[-1, 1, 1]);
        self.keep = Some(keep.clone());
        keep
    }

    /// Ones `[B, 1, 1]` (the validity of the slot a step appends to its window).
    fn ones(&mut self) -> String {
        if let Some(o) = &self.ones {
            return o.clone();
        }
        let one = self.g.constant("one", &[1, 1, 1], &[1.0]);
        let ones = self.broadcast_rows(&one, &[1, 1]);
        self.ones = Some(ones.clone());
        ones
    }
}

/// What a network's step gives: the head outputs asked for and the memory after the step.
pub(crate) struct NetStep {
    /// The actor head's output `[B, head_width]`.
    pub(crate) logits: Option<String>,
    /// The value `[B]`.
    pub(crate) value: Option<String>,
    /// The memory after the step, in the order of the network's `Memory`.
    pub(crate) memory: Vec<String>,
}

/// Which heads of a network the graph needs.
#[derive(Clone, Copy)]
pub(crate) struct Wanted {
    pub(crate) logits: bool,
    pub(crate) value: bool,
}

/// The shapes `[slots, width]` of a network's memory tensors (batch left out).
pub(crate) fn memory_shapes(net: &PolicyNet) -> Vec<[usize; 2]> {
    let shapes = net.inner().memory_shapes(1);
    shapes.into_iter().map(|[_, s, w]| [s, w]).collect()
}

/// The error of a policy kind that has no ONNX graph (a kind registered without one).
fn no_graph(net: &PolicyNet) -> String {
    format!("policy kind `{}` has no ONNX export", net.kind())
}

/// The number of observation features the network reads.
pub(crate) fn input_width(net: &PolicyNet) -> Result<usize, String> {
    // A new kind exports once it has its arms here; until then its export is an error.
    #[allow(unreachable_patterns)]
    match net {
        PolicyNet::Feedback(p) => Ok(p.embed.weight.dims()[0]),
        PolicyNet::Transformer(p) => Ok(p.embed.weight.dims()[0]),
        PolicyNet::Gru(p) => Ok(p.embed.weight.dims()[0]),
        PolicyNet::Mlp(p) => Ok(p.layer1.weight.dims()[0]),
        _ => Err(no_graph(net)),
    }
}

/// The width of the network's actor head.
pub(crate) fn head_width(net: &PolicyNet) -> Result<usize, String> {
    #[allow(unreachable_patterns)]
    let heads = match net {
        PolicyNet::Feedback(p) => &p.heads,
        PolicyNet::Transformer(p) => &p.heads,
        PolicyNet::Gru(p) => &p.heads,
        PolicyNet::Mlp(p) => &p.heads,
        _ => return Err(no_graph(net)),
    };
    Ok(heads.policy.weight.dims()[1])
}

/// One step of `net`, reading `memory` (its own tensors, in order).
pub(crate) fn emit_net(
    cx: &mut StepContext,
    net: &PolicyNet,
    memory: &[String],
    wanted: Wanted,
) -> Result<NetStep, String> {
    #[allow(unreachable_patterns)]
    match net {
        PolicyNet::Feedback(p) => feedback(cx, p, memory, wanted),
        PolicyNet::Transformer(p) => transformer(cx, p, memory, wanted),
        PolicyNet::Gru(p) => gru(cx, p, memory, wanted),
        PolicyNet::Mlp(p) => mlp(cx, p, wanted),
        _ => Err(no_graph(net)),
    }
}

/// A parameter as a constant of the same shape.
fn param<const D: usize>(
    g: &mut GraphBuilder,
    hint: &str,
    p: &Param<Tensor<D>>,
) -> Result<String, String> {
    let t = p.val();
    let dims = t.dims();
    Ok(g.constant(hint, &dims, &host(t)?))
}

/// `x · W + b` of a burn `Linear` (weight `[d_in, d_out]`).
fn linear(g: &mut GraphBuilder, x: &str, layer: &Linear, hint: &str) -> Result<String, String> {
    let w = param(g, &format!("{hint}.weight"), &layer.weight)?;
    let y = g.matmul(x, &w);
    Ok(match &layer.bias {
        Some(b) => {
            let b = param(g, &format!("{hint}.bias"), b)?;
            g.add(&y, &b)
        }
        None => y,
    })
}

/// LayerNorm over the last axis.
fn norm(g: &mut GraphBuilder, x: &str, ln: &LayerNorm, hint: &str) -> Result<String, String> {
    let gamma = param(g, &format!("{hint}.gamma"), &ln.gamma)?;
    let beta = match &ln.beta {
        Some(b) => Some(param(g, &format!("{hint}.beta"), b)?),
        None => None,
    };
    Ok(g.layer_norm(x, &gamma, beta.as_deref(), LN_EPS))
}

/// `Linear → ReLU → Linear`.
fn feed_forward(
    g: &mut GraphBuilder,
    x: &str,
    ff: &FeedForward,
    hint: &str,
) -> Result<String, String> {
    let h = linear(g, x, &ff.hidden, &format!("{hint}.hidden"))?;
    let h = g.unary("Relu", &h);
    linear(g, &h, &ff.output, &format!("{hint}.output"))
}

/// A network's step: the actor and critic heads on features `[B, d]`, and the `memory` after
/// the step.
fn emit_heads(
    g: &mut GraphBuilder,
    x: &str,
    heads: &ActorCriticHeads,
    (wanted, hint): (Wanted, &str),
    memory: Vec<String>,
) -> Result<NetStep, String> {
    let x = match &heads.norm {
        Some(ln) => norm(g, x, ln, &format!("{hint}.heads.norm"))?,
        None => x.to_string(),
    };
    let logits = if wanted.logits {
        Some(linear(
            g,
            &x,
            &heads.policy,
            &format!("{hint}.heads.policy"),
        )?)
    } else {
        None
    };
    let value = if wanted.value {
        let v = linear(g, &x, &heads.value, &format!("{hint}.heads.value"))?;
        Some(g.reshape(&v, &[-1]))
    } else {
        None
    };
    Ok(NetStep {
        logits,
        value,
        memory,
    })
}

/// An attention network's step: [`emit_heads`] on features `[B, d]`, with the window's
/// tensors after the step `next`, then its validity `valid [B, τ, 1]` moved on by the step.
fn emit_window_step(
    cx: &mut StepContext,
    x: &str,
    heads: &ActorCriticHeads,
    (wanted, hint): (Wanted, &str),
    (mut next, valid, tau): (Vec<String>, &str, usize),
) -> Result<NetStep, String> {
    let ones = cx.ones();
    next.push(slide(&mut cx.g, valid, &ones, tau, 1));
    emit_heads(&mut cx.g, x, heads, (wanted, hint), next)
}

/// Drops the oldest slot of a window `[B, τ, w]` and appends `new` (`[B, w]` or `[B, 1, w]`).
fn slide(g: &mut GraphBuilder, old: &str, new: &str, tau: usize, width: usize) -> String {
    let new = g.reshape(new, &[-1, 1, width as i64]);
    if tau == 1 {
        new
    } else {
        let kept = g.slice(old, 1, 1, tau);
        g.concat(&[&kept, &new], 1)
    }
}

/// Whether each of the `τ + 1` key slots is masked, `[B, τ+1, 1, 1]`: the window's slots
/// whose validity (after the episode-start reset) is below 0.5; the current step's slot never.
fn window_mask(cx: &mut StepContext, valid: &str, tau: usize) -> String {
    let ones = cx.ones();
    let g = &mut cx.g;
    let all = g.concat(&[valid, &ones], 1);
    let all = g.reshape(&all, &[-1, tau as i64 + 1, 1, 1]);
    let half = g.scalar(0.5);
    g.less(&all, &half)
}

/// A relative position bias laid out for a window of `τ + 1` key slots oldest first,
/// `[1, τ+1, H, 1]` (slot `k` at distance `τ − k`).
fn window_bias(
    g: &mut GraphBuilder,
    bias: &RelativePositionBias,
    hint: &str,
) -> Result<String, String> {
    let [heads, slots] = bias.bias.dims();
    let b = host(bias.bias.val())?; // [H, τ+1] by distance
    let tau = slots - 1;
    let mut out = Vec::with_capacity(heads * slots);
    for k in 0..slots {
        for h in 0..heads {
            out.push(b[h * slots + (tau - k)]);
        }
    }
    Ok(g.constant(hint, &[1, slots, heads, 1], &out))
}

/// One query per env against `τ + 1` key slots: scaled dot products plus the position bias,
/// masked slots replaced by [`MASKED_SCORE`], softmax over the slots, weighted sum of values.
///
/// `query [B, d]`, `keys` and `values` `[B, τ+1, d]`, `bias [1, τ+1, H, 1]`,
/// `masked [B, τ+1, 1, 1]` → `[B, d]`.
fn attend(
    g: &mut GraphBuilder,
    query: &str,
    keys: &str,
    values: &str,
    bias: &str,
    masked: &str,
    heads: usize,
    d: usize,
    slots: usize,
) -> String {
    let dh = d / heads;
    let (h, dh_i, s) = (heads as i64, dh as i64, slots as i64);
    let q = g.reshape(query, &[-1, 1, h, dh_i]);
    let k = g.reshape(keys, &[-1, s, h, dh_i]);
    let v = g.reshape(values, &[-1, s, h, dh_i]);
    let qk = g.mul(&k, &q);
    let scores = g.reduce_sum(&qk, 3, true); // [B, τ+1, H, 1]
    let scale = g.scalar((dh as f32).sqrt());
    let scores = g.div(&scores, &scale);
    let scores = g.add(&scores, bias);
    let masked_score = g.scalar(MASKED_SCORE);
    let scores = g.select(masked, &masked_score, &scores);
    let weights = g.softmax(&scores, 1);
    let wv = g.mul(&weights, &v);
    let attended = g.reduce_sum(&wv, 1, false); // [B, H, Dh]
    g.reshape(&attended, &[-1, d as i64])
}

/// Keys and values side by side `[B, 2d]` of vectors `[B, d]`: `Linear(LN(m))`.
fn project_kv(
    g: &mut GraphBuilder,
    m: &str,
    kv: &MemoryKeyValue,
    hint: &str,
) -> Result<String, String> {
    let n = norm(g, m, &kv.norm, &format!("{hint}.norm"))?;
    linear(g, &n, &kv.proj, &format!("{hint}.proj"))
}

fn feedback(
    cx: &mut StepContext,
    p: &FeedbackTransformer,
    memory: &[String],
    wanted: Wanted,
) -> Result<NetStep, String> {
    let (d, tau, heads) = (p.d_model, p.span, p.n_heads);
    let groups = p.key_value.len();
    let n_layers = p.layers.len();
    if groups != 1 && groups != n_layers {
        return Err(format!(
            "feedback: {groups} key/value projections for {n_layers} layers"
        ));
    }
    if memory.len() != 2 + 2 * groups {
        return Err(format!(
            "feedback: {} memory tensors, expected {}",
            memory.len(),
            2 + 2 * groups
        ));
    }
    let vectors = &memory[0];
    let valid_in = &memory[memory.len() - 1];
    let keep = cx.keep();
    let obs = cx.obs.clone();

    let x0 = linear(&mut cx.g, &obs, &p.embed, "feedback.embed")?;
    let valid = cx.g.mul(valid_in, &keep); // [B, τ, 1]
    let masked = window_mask(cx, &valid, tau);

    let mut x = x0.clone();
    let mut outputs = vec![x0];
    for (l, layer) in p.layers.iter().enumerate() {
        let hint = format!("feedback.layers.{l}");
        let gi = if groups == 1 { 0 } else { l };
        let kv = &p.key_value[gi];
        let kv_self = match &kv.null {
            None => project_kv(&mut cx.g, &x, kv, &format!("feedback.key_value.{gi}"))?,
            Some(null) => {
                let row = host(null.val())?;
                let row =
                    cx.g.constant(&format!("feedback.key_value.{gi}.null"), &[1, 2 * d], &row);
                cx.broadcast_rows(&row, &[2 * d as i64])
            }
        };
        let g = &mut cx.g;
        let k_self = g.slice(&kv_self, 1, 0, d);
        let v_self = g.slice(&kv_self, 1, d, 2 * d);
        let k_self = g.reshape(&k_self, &[-1, 1, d as i64]);
        let v_self = g.reshape(&v_self, &[-1, 1, d as i64]);
        let keys = g.concat(&[&memory[1 + 2 * gi], &k_self], 1);
        let values = g.concat(&[&memory[2 + 2 * gi], &v_self], 1);
        let q = norm(g, &x, &layer.norm_attn, &format!("{hint}.norm_attn"))?;
        let q = linear(g, &q, &layer.query, &format!("{hint}.query"))?;
        let bias = window_bias(g, &layer.position_bias, &format!("{hint}.position_bias"))?;
        let attended = attend(g, &q, &keys, &values, &bias, &masked, heads, d, tau + 1);
        let y = linear(g, &attended, &layer.out, &format!("{hint}.out"))?;
        x = g.add(&x, &y);
        let n = norm(g, &x, &layer.norm_ff, &format!("{hint}.norm_ff"))?;
        let y = feed_forward(g, &n, &layer.ff, &format!("{hint}.ff"))?;
        x = g.add(&x, &y);
        outputs.push(x.clone());
    }

    let g = &mut cx.g;
    let memory_vector = match p.memory_mix {
        MemoryMix::Top => outputs[n_layers].clone(),
        MemoryMix::Embedding => outputs[0].clone(),
        MemoryMix::Learned => {
            let weights = host(p.layer_mix_weights())?;
            let mut sum: Option<String> = None;
            for (out, w) in outputs.iter().zip(weights) {
                let w = g.scalar(w);
                let term = g.mul(out, &w);
                sum = Some(match sum {
                    Some(s) => g.add(&s, &term),
                    None => term,
                });
            }
            sum.expect("at least the embedding")
        }
    };

    let mut next = Vec::with_capacity(memory.len());
    next.push(slide(g, vectors, &memory_vector, tau, d));
    for (gi, kv) in p.key_value.iter().enumerate() {
        let both = project_kv(g, &memory_vector, kv, &format!("feedback.key_value.{gi}"))?;
        let k = g.slice(&both, 1, 0, d);
        let v = g.slice(&both, 1, d, 2 * d);
        next.push(slide(g, &memory[1 + 2 * gi], &k, tau, d));
        next.push(slide(g, &memory[2 + 2 * gi], &v, tau, d));
    }
    emit_window_step(cx, &x, &p.heads, (wanted, "feedback"), (next, &valid, tau))
}

/// The residual connection of a sublayer output `y` to the stream `x` (both `[B, d]`):
/// `x + y`, or with GTrXL gating the gate of `x` and `relu(y)`.
fn residual(
    g: &mut GraphBuilder,
    (x, y): (&str, &str),
    gating: Option<&GruGate>,
    d: usize,
    hint: &str,
) -> Result<String, String> {
    match gating {
        Some(gt) => {
            let y = g.unary("Relu", y);
            gate(g, x, &y, gt, d, hint)
        }
        None => Ok(g.add(x, y)),
    }
}

/// The GTrXL gate of a residual stream `x` and a sublayer output `y` (both `[B, d]`).
fn gate(
    g: &mut GraphBuilder,
    x: &str,
    y: &str,
    gate: &GruGate,
    d: usize,
    hint: &str,
) -> Result<String, String> {
    let wy = linear(g, y, &gate.from_output, &format!("{hint}.from_output"))?; // [B, 3d]
    let ux = linear(g, x, &gate.from_stream, &format!("{hint}.from_stream"))?; // [B, 2d]
    let (wr, ur) = (g.slice(&wy, 1, 0, d), g.slice(&ux, 1, 0, d));
    let r = g.add(&wr, &ur);
    let r = g.unary("Sigmoid", &r);
    let (wz, uz) = (g.slice(&wy, 1, d, 2 * d), g.slice(&ux, 1, d, 2 * d));
    let z = g.add(&wz, &uz);
    let b = param(g, &format!("{hint}.bias"), &gate.bias)?;
    let z = g.sub(&z, &b);
    let z = g.unary("Sigmoid", &z);
    let rx = g.mul(&r, x);
    let uc = linear(g, &rx, &gate.candidate, &format!("{hint}.candidate"))?;
    let wg = g.slice(&wy, 1, 2 * d, 3 * d);
    let h = g.add(&wg, &uc);
    let h = g.unary("Tanh", &h);
    let diff = g.sub(&h, x);
    let step = g.mul(&z, &diff);
    Ok(g.add(x, &step))
}

fn transformer(
    cx: &mut StepContext,
    p: &Transformer,
    memory: &[String],
    wanted: Wanted,
) -> Result<NetStep, String> {
    let (d, tau) = (p.d_model, p.span);
    let n_layers = p.layers.len();
    if memory.len() != 2 * n_layers + 1 {
        return Err(format!(
            "transformer: {} memory tensors, expected {}",
            memory.len(),
            2 * n_layers + 1
        ));
    }
    let keep = cx.keep();
    let obs = cx.obs.clone();
    let mut x = linear(&mut cx.g, &obs, &p.embed, "transformer.embed")?;
    let valid = cx.g.mul(&memory[2 * n_layers], &keep); // [B, τ, 1]
    let masked = window_mask(cx, &valid, tau);

    let g = &mut cx.g;
    let mut next = Vec::with_capacity(memory.len());
    for (l, layer) in p.layers.iter().enumerate() {
        let hint = format!("transformer.layers.{l}");
        if layer.gate_attn.is_some() != layer.gate_ff.is_some() {
            return Err(format!(
                "transformer layer {l}: gating on one sublayer only"
            ));
        }
        let normed = norm(g, &x, &layer.norm_attn, &format!("{hint}.norm_attn"))?;
        let q = linear(g, &normed, &layer.query, &format!("{hint}.query"))?;
        let kv = linear(g, &normed, &layer.key_value, &format!("{hint}.key_value"))?;
        let k = g.slice(&kv, 1, 0, d);
        let v = g.slice(&kv, 1, d, 2 * d);
        let k3 = g.reshape(&k, &[-1, 1, d as i64]);
        let v3 = g.reshape(&v, &[-1, 1, d as i64]);
        let keys = g.concat(&[&memory[2 * l], &k3], 1);
        let values = g.concat(&[&memory[2 * l + 1], &v3], 1);
        let bias = window_bias(g, &layer.position_bias, &format!("{hint}.position_bias"))?;
        let attended = attend(
            g,
            &q,
            &keys,
            &values,
            &bias,
            &masked,
            layer.n_heads,
            d,
            tau + 1,
        );
        let y = linear(g, &attended, &layer.out, &format!("{hint}.out"))?;
        let gating = layer.gate_attn.as_ref();
        x = residual(g, (&x, &y), gating, d, &format!("{hint}.gate_attn"))?;
        let n = norm(g, &x, &layer.norm_ff, &format!("{hint}.norm_ff"))?;
        let y = feed_forward(g, &n, &layer.ff, &format!("{hint}.ff"))?;
        let gating = layer.gate_ff.as_ref();
        x = residual(g, (&x, &y), gating, d, &format!("{hint}.gate_ff"))?;
        next.push(slide(g, &memory[2 * l], &k, tau, d));
        next.push(slide(g, &memory[2 * l + 1], &v, tau, d));
    }
    emit_window_step(
        cx,
        &x,
        &p.heads,
        (wanted, "transformer"),
        (next, &valid, tau),
    )
}

fn gru(
    cx: &mut StepContext,
    p: &GruPolicy,
    memory: &[String],
    wanted: Wanted,
) -> Result<NetStep, String> {
    let d = p.d_model();
    if memory.len() != 1 {
        return Err(format!("gru: {} memory tensors, expected 1", memory.len()));
    }
    let keep = cx.keep();
    let obs = cx.obs.clone();
    let g = &mut cx.g;
    let h = g.mul(&memory[0], &keep); // [B, L, d]
    let x = linear(g, &obs, &p.embed, "gru.embed")?;
    let mut x = g.unary("Tanh", &x);
    let mut new_h = Vec::with_capacity(p.cells.len());
    for (l, cell) in p.cells.iter().enumerate() {
        let hint = format!("gru.cells.{l}");
        let h_l = g.slice(&h, 1, l, l + 1);
        let h_l = g.reshape(&h_l, &[-1, d as i64]);
        let xp = linear(g, &x, &cell.input, &format!("{hint}.input"))?; // [B, 3d]
        let hp = linear(g, &h_l, &cell.hidden, &format!("{hint}.hidden"))?; // [B, 3d]
        let (xr, hr) = (g.slice(&xp, 1, 0, d), g.slice(&hp, 1, 0, d));
        let r = g.add(&xr, &hr);
        let r = g.unary("Sigmoid", &r);
        let (xz, hz) = (g.slice(&xp, 1, d, 2 * d), g.slice(&hp, 1, d, 2 * d));
        let z = g.add(&xz, &hz);
        let z = g.unary("Sigmoid", &z);
        let (xn, hn) = (g.slice(&xp, 1, 2 * d, 3 * d), g.slice(&hp, 1, 2 * d, 3 * d));
        let rhn = g.mul(&r, &hn);
        let n = g.add(&xn, &rhn);
        let n = g.unary("Tanh", &n);
        let diff = g.sub(&h_l, &n);
        let zd = g.mul(&z, &diff);
        x = g.add(&n, &zd);
        new_h.push(g.reshape(&x, &[-1, 1, d as i64]));
    }
    let parts: Vec<&str> = new_h.iter().map(String::as_str).collect();
    let next = if parts.len() == 1 {
        parts[0].to_string()
    } else {
        g.concat(&parts, 1)
    };
    emit_heads(g, &x, &p.heads, (wanted, "gru"), vec![next])
}

fn mlp(cx: &mut StepContext, p: &MlpPolicy, wanted: Wanted) -> Result<NetStep, String> {
    let obs = cx.obs.clone();
    let g = &mut cx.g;
    let x = linear(g, &obs, &p.layer1, "mlp.layer1")?;
    let x = g.unary("Tanh", &x);
    let x = linear(g, &x, &p.layer2, "mlp.layer2")?;
    let x = g.unary("Tanh", &x);
    emit_heads(g, &x, &p.heads, (wanted, "mlp"), vec![])
}
