//! The sizes of the model and of a block, and where each parameter lives in the flat
//! parameter vector.

use crate::feedback_options::MemoryMix;
use crate::kernels::attention::{self, Sizes, TrunkDims};
use crate::kernels::common::{
    FeedForwardAt, Offsets, Params, layer_norm_back_at, matmul_back_input, softmax_in_place,
};
use crate::kernels::linalg::gemm;

/// Sizes of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dims {
    /// The sizes every attention trunk has.
    pub trunk: TrunkDims,
    /// Key/value groups: 1 with `share_kv`, else `L`.
    pub groups: usize,
    /// What the memory vector is made of.
    pub mix: MemoryMix,
    /// Whether the current step's slot is a learned key/value pair per group
    /// ([`CurrentSlot::Null`](crate::feedback_options::CurrentSlot::Null)) instead of the own input.
    pub null_slot: bool,
}

impl Dims {
    pub(super) fn group(&self, layer: usize) -> usize {
        if self.groups == 1 { 0 } else { layer }
    }
}

impl AsRef<TrunkDims> for Dims {
    fn as_ref(&self) -> &TrunkDims {
        &self.trunk
    }
}

/// Offsets of one layer's parameters in the flat parameter vector.
#[derive(Debug, Clone, Copy)]
pub(super) struct LayerAt {
    /// The attention's LayerNorm: gain `[d]`, then bias `[d]`.
    pub(super) ln_a: usize,
    pub(super) wq: usize,
    pub(super) wo: usize,
    pub(super) bias: usize,
    /// The feed-forward block.
    pub(super) ff: FeedForwardAt,
}

/// Offsets of one key/value group's parameters.
#[derive(Debug, Clone, Copy)]
pub(super) struct GroupAt {
    /// The memory's LayerNorm: gain `[d]`, then bias `[d]`.
    pub(super) ln: usize,
    pub(super) wkv: usize,
    /// The null slot's key/value pair `[2d]`, with `null_slot`.
    pub(super) null: usize,
}

impl GroupAt {
    /// The keys and values `kv [n, 2d]` (overwritten) of `n` memory rows from their
    /// LayerNorm's output `ln_out [n, d]`: `ln_out · W_kv`.
    pub(super) fn project(
        &self,
        p: &Params,
        (n, d): (usize, usize),
        ln_out: &[f32],
        kv: &mut [f32],
    ) {
        gemm(n, d, 2 * d, ln_out, p.get(self.wkv, 2 * d * d), 0.0, kv);
    }

    /// [`Self::project`] and the LayerNorm before it backwards for `n` rows: the keys' and
    /// values' gradient `dkv [n, 2d]` through `W_kv` into the LayerNorm's output gradient
    /// `dln [n, d]` (overwritten), then through the LayerNorm (its saved `(hat, rstd)`) into
    /// the memory rows' gradient `dm` (added to) and the norm's gain and bias in `gp`.
    pub(super) fn project_back(
        &self,
        (p, gp): (&Params, &mut [f32]),
        (n, d): (usize, usize),
        dkv: &[f32],
        saved: (&[f32], &[f32]),
        dln: &mut [f32],
        dm: &mut [f32],
    ) {
        matmul_back_input(p, (self.wkv, (n, d, 2 * d)), dkv, (0.0, dln));
        layer_norm_back_at(p, gp, (self.ln, d), dln, saved, dm);
    }
}

/// Where each parameter lives in the flat vector. The order, which the policy's
/// `flat_parameters` must follow: per layer `norm_attn.gamma, norm_attn.beta, query.weight,
/// out.weight, position_bias.bias, norm_ff.gamma, norm_ff.beta, ff.hidden.weight,
/// ff.hidden.bias, ff.output.weight, ff.output.bias`; then per group `norm.gamma, norm.beta,
/// proj.weight` (and `null` with a null slot); then `layer_mix`. Weights are `[d_in, d_out]` row-major, the position bias
/// `[H, τ+1]` by distance.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(super) layers: Vec<LayerAt>,
    pub(super) groups: Vec<GroupAt>,
    pub(super) mix: usize,
    /// Total number of floats.
    pub len: usize,
}

impl Layout {
    pub(crate) fn new(dims: &Dims) -> Self {
        let (d, f) = (dims.trunk.d, dims.trunk.ff);
        let mut at = Offsets::default();
        let mut take = |n: usize| at.take(n);
        let layers = (0..dims.trunk.layers)
            .map(|_| LayerAt {
                ln_a: take(2 * d),
                wq: take(d * d),
                wo: take(d * d),
                bias: take(dims.trunk.heads * (dims.trunk.span + 1)),
                ff: FeedForwardAt::take(&mut take, d, f),
            })
            .collect();
        let groups = (0..dims.groups)
            .map(|_| GroupAt {
                ln: take(2 * d),
                wkv: take(d * 2 * d),
                null: take(if dims.null_slot { 2 * d } else { 0 }),
            })
            .collect();
        let mix = take(dims.trunk.layers + 1);
        Self {
            layers,
            groups,
            mix,
            len: at.total(),
        }
    }
}

/// Offsets in a block's arrays, in the feedback kernel's order.
impl Sizes {
    /// Offset (in rows) of layer `l`'s rows at step `t` in the per-layer arrays.
    #[inline]
    pub(super) fn lt(&self, l: usize, t: usize) -> usize {
        (l * self.steps + t) * self.rows
    }

    /// Offset (in rows) of row `r`'s memory history in group `g`'s part of the history
    /// arrays.
    #[inline]
    pub(super) fn history(&self, g: usize, r: usize) -> usize {
        (g * self.rows + r) * self.hist
    }
}

/// Layer `l` at step `t` as the stages of both passes index it.
#[derive(Clone, Copy)]
pub(super) struct LayerStep {
    pub(super) l: usize,
    pub(super) t: usize,
    /// The layer's parameters.
    pub(super) la: LayerAt,
    /// The layer's key/value group.
    pub(super) g: usize,
    /// That group's parameters.
    pub(super) ga: GroupAt,
    /// Offset (in rows) of the layer's rows at step `t` in the per-layer arrays.
    pub(super) o: usize,
}

/// The weights of the memory mix over the embedding and the layers' outputs, `[L + 1]`: the
/// softmax of the mixing logits, or one-hot for the fixed mixes.
pub(super) fn mix_weights(p: &Params, at: &Layout, dims: &Dims) -> Vec<f32> {
    let n = dims.trunk.layers + 1;
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

/// What every stage of a block's passes reads: the sizes, the dims, the layout and the
/// parameters.
pub(super) type Ctx<'a> = attention::Ctx<'a, Dims, Layout>;

impl Ctx<'_> {
    /// Layer `l` at step `t`.
    pub(super) fn layer_step(&self, l: usize, t: usize) -> LayerStep {
        let g = self.dims.group(l);
        LayerStep {
            l,
            t,
            la: self.at.layers[l],
            g,
            ga: self.at.groups[g],
            o: self.sz.lt(l, t),
        }
    }
}
