//! Pieces shared by the attention policies ([`crate::feedback`] and [`crate::transformer`]):
//! a learned relative position bias over the attention span, masked multi-head softmax
//! attention, the feed-forward block and the checks of their sizes; [`AttentionTrunk`], what
//! both networks have, from which [`ActorCritic`] is implemented once for both, and
//! [`AttentionSpec`], likewise for their configs' [`PolicySpec`].

use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid, softmax};

use crate::actor_critic::{ActorCritic, SequenceOutput, StepOutput};
use crate::heads::ActorCriticHeads;
#[cfg(feature = "flex")]
use crate::kernels;
use crate::memory::Memory;
use crate::policy::PolicyError;
use crate::policy_spec::{MemoryFootprint, PolicySpec, SpecFields};

/// Score given to masked key slots before the softmax. `exp(MASKED_SCORE - max)` underflows to
/// exactly `0.0` in `f32`, so a masked slot gets an attention weight of exactly zero: its value
/// adds nothing to the output and it receives exactly zero gradient. Because the score is
/// *replaced* (not added to), what a masked slot holds cannot change the output.
pub const MASKED_SCORE: f32 = -1.0e9;

/// A size of an attention policy that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttentionConfigError {
    /// A size that must be at least one is zero.
    #[error("attention policy config: `{field}` must be at least 1, got 0")]
    Zero {
        /// The name of the config field (or `obs_dim` / `num_actions`).
        field: &'static str,
    },
    /// The model width is not a multiple of the number of heads.
    #[error(
        "attention policy config: `d_model` ({d_model}) must be divisible by `n_heads` ({n_heads})"
    )]
    HeadsDoNotDivide {
        /// The model width.
        d_model: usize,
        /// The number of attention heads.
        n_heads: usize,
    },
}

/// The first of `sizes` that is zero, as an error naming it.
fn at_least_one(sizes: &[(&'static str, usize)]) -> Result<(), AttentionConfigError> {
    match sizes.iter().find(|(_, value)| *value == 0) {
        Some(&(field, _)) => Err(AttentionConfigError::Zero { field }),
        None => Ok(()),
    }
}

/// A learned bias added to the attention score of each head, one scalar per relative distance
/// `0..=span` between the query's time step and the key's (0 = the query's own step).
/// Initialised to zero.
#[derive(Module, Debug)]
pub struct RelativePositionBias {
    /// `[n_heads, span + 1]`, indexed by distance.
    pub bias: Param<Tensor<2>>,
}

impl RelativePositionBias {
    /// A zero bias for `n_heads` heads over distances `0..=span`.
    pub fn new(n_heads: usize, span: usize, device: &Device) -> Self {
        Self {
            bias: Param::from_tensor(Tensor::zeros([n_heads, span + 1], device)),
        }
    }

    /// The bias of one query against a full window of `span + 1` keys ordered oldest first, the
    /// last one being the query's own step (distance `span - k` for key slot `k`).
    ///
    /// Returns `[1, n_heads, 1, span + 1]`.
    pub fn window(&self) -> Tensor<4> {
        let [heads, slots] = self.bias.dims();
        self.bias.val().flip([1]).reshape([1, heads, 1, slots])
    }

    /// The bias for a block of queries and keys given their distances `[Tq, Tk]` (each in
    /// `0..=span`; entries outside the span must be masked by the caller, clamp them first).
    ///
    /// Returns `[1, n_heads, Tq, Tk]`.
    pub fn for_distances(&self, distances: Tensor<2, Int>) -> Tensor<4> {
        let [tq, tk] = distances.dims();
        let [heads, _] = self.bias.dims();
        self.bias
            .val()
            .select(1, distances.reshape([tq * tk]))
            .reshape([1, heads, tq, tk])
    }
}

/// `[B, T, H * Dh]` → `[B, H, T, Dh]`.
pub fn split_heads(x: Tensor<3>, n_heads: usize) -> Tensor<4> {
    let [b, t, d] = x.dims();
    x.reshape([b, t, n_heads, d / n_heads]).swap_dims(1, 2)
}

/// `[B, H, T, Dh]` → `[B, T, H * Dh]`.
pub fn merge_heads(x: Tensor<4>) -> Tensor<3> {
    let [b, h, t, dh] = x.dims();
    x.swap_dims(1, 2).reshape([b, t, h * dh])
}

/// Multi-head scaled dot-product attention with an additive bias and a mask.
///
/// Every query row must have at least one allowed key (both policies guarantee this by always
/// letting a step attend to itself).
///
/// # Shapes
/// - `query`: `[B, H, Tq, Dh]`, `key` and `value`: `[B, H, Tk, Dh]`
/// - `bias`: `[1, H, Tq, Tk]` (added to the scores)
/// - `allowed`: `[B, 1, Tq, Tk]` (`true` where the query may attend to the key)
/// - returns the output `[B, H, Tq, Dh]` and the attention weights `[B, H, Tq, Tk]` (each row
///   sums to one; exactly zero where not allowed)
pub fn masked_attention(
    query: Tensor<4>,
    key: Tensor<4>,
    value: Tensor<4>,
    bias: Tensor<4>,
    allowed: Tensor<4, Bool>,
) -> (Tensor<4>, Tensor<4>) {
    let [b, h, tq, dh] = query.dims();
    let tk = key.dims()[2];
    let scores = query
        .matmul(key.swap_dims(2, 3))
        .div_scalar((dh as f32).sqrt())
        + bias; // [B, H, Tq, Tk]
    let scores = scores.mask_fill(allowed.bool_not().expand([b, h, tq, tk]), MASKED_SCORE);
    let weights = softmax(scores, 3);
    (weights.clone().matmul(value), weights) // [B, H, Tq, Dh], [B, H, Tq, Tk]
}

/// The position-wise feed-forward block `Linear → ReLU → Linear` (no normalisation inside).
#[derive(Module, Debug)]
pub struct FeedForward {
    /// `d_model → d_ff`.
    pub hidden: Linear,
    /// `d_ff → d_model`.
    pub output: Linear,
}

impl FeedForward {
    /// A block of width `d_model` with `d_ff` hidden units.
    pub fn new(d_model: usize, d_ff: usize, device: &Device) -> Self {
        Self {
            hidden: LinearConfig::new(d_model, d_ff).init(device),
            output: LinearConfig::new(d_ff, d_model).init(device),
        }
    }

    /// `[.., d_model]` → `[.., d_model]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.output.forward(relu(self.hidden.forward(x)))
    }

    /// The hidden weight and bias, then the output weight and bias, appended to a fused
    /// kernel's parameter list.
    #[cfg(feature = "flex")]
    pub(crate) fn push_parameters(&self, out: &mut Vec<Tensor<1>>) {
        out.push(kernels::flat(self.hidden.weight.val()));
        out.push(self.hidden.bias.as_ref().expect("bias").val());
        out.push(kernels::flat(self.output.weight.val()));
        out.push(self.output.bias.as_ref().expect("bias").val());
    }
}

/// The GRU-type gate of GTrXL (Parisotto et al. 2020) that replaces a residual connection:
/// `r = σ(W_r y + U_r x)`, `z = σ(W_z y + U_z x − b)`, `h = tanh(W_g y + U_g (r ⊙ x))`,
/// `out = (1 − z) ⊙ x + z ⊙ h`, with `x` the residual stream and `y` the sublayer's output.
/// `b` starts at 2 so that the gate starts close to the identity.
#[derive(Module, Debug)]
pub struct GruGate {
    /// `W_r, W_z, W_g` applied to `y`: `d → 3d`.
    pub from_output: Linear,
    /// `U_r, U_z` applied to `x`: `d → 2d`.
    pub from_stream: Linear,
    /// `U_g` applied to `r ⊙ x`: `d → d`.
    pub candidate: Linear,
    /// The gate bias `b`, `[d]`.
    pub bias: Param<Tensor<1>>,
}

impl GruGate {
    /// A gate of width `d_model`.
    pub fn new(d_model: usize, device: &Device) -> Self {
        Self {
            from_output: LinearConfig::new(d_model, 3 * d_model)
                .with_bias(false)
                .init(device),
            from_stream: LinearConfig::new(d_model, 2 * d_model)
                .with_bias(false)
                .init(device),
            candidate: LinearConfig::new(d_model, d_model)
                .with_bias(false)
                .init(device),
            bias: Param::from_tensor(Tensor::full([d_model], 2.0, device)),
        }
    }

    /// Gates the stream `x` with the sublayer output `y`, both `[B, T, d]`.
    pub fn forward(&self, x: Tensor<3>, y: Tensor<3>) -> Tensor<3> {
        let d = x.dims()[2];
        let wy = self.from_output.forward(y); // [B, T, 3d]
        let ux = self.from_stream.forward(x.clone()); // [B, T, 2d]
        let r = sigmoid(wy.clone().narrow(2, 0, d) + ux.clone().narrow(2, 0, d));
        let bias = self.bias.val().reshape([1, 1, d]);
        let z = sigmoid(wy.clone().narrow(2, d, d) + ux.narrow(2, d, d) - bias);
        let h = (wy.narrow(2, 2 * d, d) + self.candidate.forward(r * x.clone())).tanh();
        x.clone() + z * (h - x)
    }
}

/// The residual connection of a sublayer output `y` to the stream `x` (both `[B, T, d]`):
/// `x + y`, or with a GTrXL `gate` the gate of `x` and `relu(y)`.
pub(crate) fn residual(gate: Option<&GruGate>, x: Tensor<3>, y: Tensor<3>) -> Tensor<3> {
    match gate {
        Some(gate) => gate.forward(x, relu(y)),
        None => x + y,
    }
}

/// Checks that a memory handed to a policy has the layout that policy's `init_memory` makes,
/// with a clear message naming the policy, instead of a shape error deep inside a kernel.
pub(crate) fn check_memory_layout(policy: &str, expected: &[[usize; 3]], got: &[[usize; 3]]) {
    let ok = expected.len() == got.len()
        && expected
            .iter()
            .zip(got)
            .all(|(e, g)| e[1..] == g[1..] && g[0] == got[0][0]);
    assert!(
        ok,
        "{policy}: the memory has shapes {got:?}, expected [B, slots, width] = {expected:?} \
         (was it made by this policy's `init_memory`?)"
    );
}

/// The end of a fused decoding step (flex backend): the window's validity `valid [B, τ]`,
/// moved on by the step with its episode `starts [B]`, appended to the memory's other
/// `tensors`, and the heads applied to the last layer's outputs `top` (`[B, d]` row-major on
/// the host).
#[cfg(feature = "flex")]
pub(crate) fn fused_step_output(
    heads: &ActorCriticHeads,
    (top, d): (Vec<f32>, usize),
    (valid, starts, span): (&[f32], &[f32], usize),
    mut tensors: Vec<Tensor<3>>,
    device: &Device,
) -> StepOutput {
    let b = starts.len();
    let new_valid = kernels::slide_valid(valid, starts, span);
    tensors.push(kernels::tensor3(new_valid, [b, span, 1], device));
    let top = Tensor::<1>::from_data(TensorData::new(top, [b * d]), device).reshape([b, d]);
    let (logits, value) = heads.forward(top); // [B, A], [B]
    (logits, value.reshape([b]), Memory { tensors })
}

/// The `check`, `init` and `with_sizes` of an attention network's config: one with the five
/// size fields of [`attention_sizes!`] (and their `with_*` setters) and a `try_init` that
/// builds `$net`.
macro_rules! attention_config_methods {
    ($net:ty) => {
        /// This config with the sizes `sizes`.
        pub fn with_sizes(self, sizes: $crate::attention::AttentionSizes) -> Self {
            self.with_d_model(sizes.d_model)
                .with_n_heads(sizes.n_heads)
                .with_n_layers(sizes.n_layers)
                .with_d_ff(sizes.d_ff)
                .with_span(sizes.span)
        }

        /// Checks the sizes, naming the first bad field.
        pub fn check(
            &self,
            obs_dim: usize,
            num_actions: usize,
        ) -> Result<(), $crate::attention::AttentionConfigError> {
            $crate::attention::attention_sizes!(self).check_for(obs_dim, num_actions)
        }

        /// Builds the policy.
        ///
        /// # Panics
        /// If a size is zero or `n_heads` does not divide `d_model` (see [`Self::try_init`]).
        pub fn init(&self, obs_dim: usize, num_actions: usize, device: &Device) -> $net {
            self.try_init(obs_dim, num_actions, device)
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };
}
pub(crate) use attention_config_methods;

/// The [`AttentionSpec::sizes`] and [`AttentionSpec::with_widths`] of a kind's config (one with
/// the five size fields of [`attention_sizes!`]).
macro_rules! attention_spec_sizes {
    () => {
        fn sizes(&self) -> $crate::attention::AttentionSizes {
            $crate::attention::attention_sizes!(self)
        }

        fn with_widths(&self, sizes: $crate::attention::AttentionSizes) -> Self {
            Self {
                d_model: sizes.d_model,
                d_ff: sizes.d_ff,
                ..self.clone()
            }
        }
    };
}
pub(crate) use attention_spec_sizes;

/// The [`AttentionSizes`] of a config with the five size fields of the same names
/// (`d_model, n_heads, n_layers, d_ff, span`): a network's config or a kind's.
macro_rules! attention_sizes {
    ($cfg:expr) => {
        $crate::attention::AttentionSizes {
            d_model: $cfg.d_model,
            n_heads: $cfg.n_heads,
            n_layers: $cfg.n_layers,
            d_ff: $cfg.d_ff,
            span: $cfg.span,
        }
    };
}
pub(crate) use attention_sizes;

/// The sizes shared by the attention kinds (Feedback and Transformer), and the estimates their
/// [`PolicySpec`]s share.
#[derive(Clone, Copy, Debug)]
pub struct AttentionSizes {
    /// Model width.
    pub d_model: usize,
    /// Attention heads per layer.
    pub n_heads: usize,
    /// Layers.
    pub n_layers: usize,
    /// Hidden width of each layer's feed-forward block.
    pub d_ff: usize,
    /// Attention span `τ` in steps.
    pub span: usize,
}

impl AttentionSizes {
    /// The sizes of an attention kind's config.
    pub fn new(d_model: usize, n_heads: usize, n_layers: usize, d_ff: usize, span: usize) -> Self {
        Self {
            d_model,
            n_heads,
            n_layers,
            d_ff,
            span,
        }
    }

    /// Checks these sizes (see [`Self::check`]) for `obs_dim` features and `num_actions`
    /// outputs, naming the first bad field.
    pub fn check_for(
        &self,
        obs_dim: usize,
        num_actions: usize,
    ) -> Result<(), AttentionConfigError> {
        at_least_one(&[("obs_dim", obs_dim), ("num_actions", num_actions)])?;
        self.check()
    }

    /// Checks the configured sizes (those that do not depend on the environment): none is
    /// zero and `n_heads` divides `d_model`; the error names the first bad field.
    pub fn check(&self) -> Result<(), AttentionConfigError> {
        let Self {
            d_model,
            n_heads,
            n_layers,
            d_ff,
            span,
        } = *self;
        at_least_one(&[
            ("d_model", d_model),
            ("n_heads", n_heads),
            ("n_layers", n_layers),
            ("d_ff", d_ff),
            ("span", span),
        ])?;
        if !d_model.is_multiple_of(n_heads) {
            return Err(AttentionConfigError::HeadsDoNotDivide { d_model, n_heads });
        }
        Ok(())
    }

    /// Approximate parameters of one network: embedding, per layer the attention projections
    /// (with biases, an upper bound), the feed-forward block, two norms and the position bias,
    /// then the heads and a final norm.
    pub fn approx_parameters(&self, obs_dim: usize, num_actions: usize) -> f64 {
        let f = |x: usize| x as f64;
        let (d, ff) = (f(self.d_model), f(self.d_ff));
        let per_layer = 4.0 * (d * d + d)
            + 2.0 * d * ff
            + ff
            + d
            + 4.0 * d
            + f(self.span + 1) * f(self.n_heads);
        f(obs_dim) * d
            + d
            + f(self.n_layers) * per_layer
            + crate::policy_spec::heads_parameters(d, num_actions)
            + 2.0 * d
    }

    /// Per env: `τ + 1` slots of keys, values and layer states; per update step: scores and
    /// weights per head, the feed-forward block and the layer's other vectors.
    pub fn footprint(&self) -> MemoryFootprint {
        let f = |x: usize| x as f64;
        let (d, layers, span) = (f(self.d_model), f(self.n_layers), f(self.span) + 1.0);
        MemoryFootprint {
            memory_per_env: span * d * (2.0 * layers + 2.0),
            activations_per_step: layers
                * (span * f(self.n_heads) * 6.0 + f(self.d_ff) * 4.0 + d * 20.0),
        }
    }

    /// The relative cost of a standard transformer of these sizes: it grows with depth and,
    /// through the attention window, with the span (span 128 costs ≈ 2.4× span 16).
    pub fn relative_cost(&self) -> f64 {
        self.n_layers.max(1) as f64 / 2.0 * (1.0 + self.span as f64 / 64.0) / 1.25
    }

    /// Operations of the score `q·k` and the weighted value (2·d each) of every layer for
    /// `keys` key slots per query.
    pub fn attention_flops(&self, keys: f64) -> f64 {
        self.n_layers as f64 * 4.0 * self.d_model as f64 * keys
    }

    /// The widths of `units` heads' worth: `d_model = units · n_heads`, `d_ff = 4 · d_model`.
    pub fn with_width(mut self, units: usize) -> Self {
        self.d_model = units * self.n_heads;
        self.d_ff = 4 * self.d_model;
        self
    }
}

/// An attention policy: an observation embedding, a trunk of attention layers over a window
/// of past steps (run by a fused CPU kernel on flex, by tensor operations elsewhere and in
/// autodiff steps) and the actor-critic heads. [`ActorCritic`] is implemented once for every
/// attention policy from these parts.
pub trait AttentionTrunk: Module {
    /// The observation embedding `obs_dim → d`.
    fn embed(&self) -> &Linear;

    /// The actor and critic heads on the last layer's output.
    fn heads(&self) -> &ActorCriticHeads;

    /// The trunk's parameter tensors in the order of its fused kernel's flat layout (what
    /// [`Self::flat_parameters`] concatenates).
    #[cfg(feature = "flex")]
    fn parameter_tensors(&self) -> Vec<Tensor<1>>;

    /// Every trunk parameter flattened into one vector in the fused kernel's layout order
    /// (differentiable: the gradient of the vector reaches each parameter).
    #[cfg(feature = "flex")]
    fn flat_parameters(&self) -> Tensor<1> {
        Tensor::cat(self.parameter_tensors(), 0)
    }

    /// The shapes of this policy's memory for `batch` envs (its window and validity mask).
    fn window_shapes(&self, batch: usize) -> Vec<[usize; 3]>;

    /// The layers over a chunk on the tensor-operation reference path: the embedded
    /// observations `x [B, T, d]`, the episode starts `[B, T]` and the memory the chunk starts
    /// from (not detached here, so its gradient can be checked) → the last layer's outputs
    /// `[B, T, d]`.
    fn trunk_reference(&self, x: Tensor<3>, starts: Tensor<2>, memory: Memory) -> Tensor<3>;

    /// [`Self::trunk_reference`] as one fused operation (flex backend only; the memory is not
    /// detached here either).
    #[cfg(feature = "flex")]
    fn trunk_fused(&self, x: Tensor<3>, starts: Tensor<2>, memory: Memory) -> Tensor<3>;

    /// [`ActorCritic::step`] on the tensor-operation reference path.
    fn step_reference(&self, obs: Tensor<2>, starts: Tensor<1>, memory: Memory) -> StepOutput;

    /// [`ActorCritic::step`] on the fused path (flex backend, no autodiff).
    #[cfg(feature = "flex")]
    fn step_fused(&self, obs: Tensor<2>, starts: Tensor<1>, memory: Memory) -> StepOutput;

    /// [`ActorCritic::step`] (on the tensor-operation path) that also returns each layer's
    /// attention weights `[B, H, τ+1]` over the window: the `τ` previous steps oldest first,
    /// then the current step's own slot. Slots of steps before the episode's start (or before
    /// the memory was first filled) get exactly 0.
    fn step_with_attention(
        &self,
        obs: Tensor<2>,
        starts: Tensor<1>,
        memory: Memory,
    ) -> (StepOutput, Vec<Tensor<3>>);
}

impl<N: AttentionTrunk> ActorCritic for N {
    /// An empty window: zero entries, every slot invalid.
    fn init_memory(&self, batch: usize, device: &Device) -> Memory {
        Memory::zeros(self.window_shapes(batch), device)
    }

    fn memory_shapes(&self, batch: usize) -> Vec<[usize; 3]> {
        self.window_shapes(batch)
    }

    fn step(&self, obs: Tensor<2>, starts: Tensor<1>, memory: Memory) -> StepOutput {
        #[cfg(feature = "flex")]
        if kernels::runs_fused(&obs.device()) && !obs.device().is_autodiff() {
            return self.step_fused(obs, starts, memory);
        }
        self.step_reference(obs, starts, memory)
    }

    fn forward_sequence(&self, obs: Tensor<3>, starts: Tensor<2>, m0: Memory) -> SequenceOutput {
        let [b, t, _] = obs.dims();
        let x = self.embed().forward(obs); // [B, T, d]
        #[cfg(feature = "flex")]
        let top = if kernels::runs_fused(&x.device()) {
            self.trunk_fused(x, starts, m0.detach())
        } else {
            self.trunk_reference(x, starts, m0.detach())
        };
        #[cfg(not(feature = "flex"))]
        let top = self.trunk_reference(x, starts, m0.detach());
        let (logits, values) = self.heads().forward_sequence(top); // [B, T, A], [B, T]
        (logits, values.reshape([b, t]))
    }

    fn num_parameters(&self) -> usize {
        self.num_params()
    }
}

/// The config of an attention kind: what differs between the kinds (their network, extra
/// parameters and operations, cost); the rest of its [`PolicySpec`] (checks, estimates, depth,
/// width) is implemented once from its [`AttentionSizes`].
pub trait AttentionSpec: SpecFields {
    /// The network it builds.
    type Net: AttentionTrunk;

    /// Training cost relative to a Transformer of the same sizes.
    const COST_FACTOR: f64 = 1.0;

    /// The sizes every attention kind has.
    fn sizes(&self) -> AttentionSizes;

    /// This config with the widths of `sizes` (`d_model`, `d_ff`).
    fn with_widths(&self, sizes: AttentionSizes) -> Self;

    /// Parameters beyond [`AttentionSizes::approx_parameters`].
    fn extra_parameters(&self) -> f64 {
        0.0
    }

    /// [`PolicySpec::extra_flops_per_step`].
    fn attention_flops_per_step(&self, chunk: usize, fused: bool) -> f64;

    /// [`PolicySpec::build`].
    fn init_net(
        &self,
        obs: usize,
        actions: usize,
        device: &Device,
    ) -> Result<Self::Net, PolicyError>;
}

impl<S: AttentionSpec> PolicySpec for S {
    type Net = S::Net;
    const ATTENTION: bool = true;

    fn validate(&self) -> Result<(), PolicyError> {
        Ok(self.sizes().check()?)
    }

    fn approx_parameters(&self, obs_dim: usize, num_actions: usize) -> f64 {
        self.sizes().approx_parameters(obs_dim, num_actions) + self.extra_parameters()
    }

    fn extra_flops_per_step(&self, chunk: usize, fused: bool) -> f64 {
        self.attention_flops_per_step(chunk, fused)
    }

    fn footprint(&self) -> MemoryFootprint {
        self.sizes().footprint()
    }

    fn relative_cost(&self) -> f64 {
        S::COST_FACTOR * self.sizes().relative_cost()
    }

    fn depth(&self) -> usize {
        self.sizes().n_layers
    }

    fn with_width(&self, units: usize) -> Self {
        self.with_widths(self.sizes().with_width(units))
    }

    fn build(&self, obs: usize, actions: usize, device: &Device) -> Result<Self::Net, PolicyError> {
        self.init_net(obs, actions, device)
    }

    /// The tensor-operation path, which has the weights.
    fn step_with_attention(
        net: &S::Net,
        obs: Tensor<2>,
        starts: Tensor<1>,
        memory: Memory,
    ) -> (StepOutput, Option<Vec<Tensor<3>>>) {
        let (out, weights) = net.step_with_attention(obs, starts, memory);
        (out, Some(weights))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.try_into_vec_as::<f32>().unwrap()
    }

    #[test]
    fn window_bias_is_ordered_oldest_first() {
        let device = Device::flex();
        let mut bias = RelativePositionBias::new(1, 2, &device);
        // Bias by distance 0, 1, 2.
        bias.bias = Param::from_tensor(Tensor::from_floats([[10.0, 11.0, 12.0]], &device));
        // Window slots: distance 2 (oldest), 1, 0 (the query's own step).
        assert_eq!(to_vec(bias.window()), [12.0, 11.0, 10.0]);
        let distances = Tensor::from_data(TensorData::new(vec![0i64, 2, 1, 1], [2, 2]), &device);
        assert_eq!(
            to_vec(bias.for_distances(distances)),
            [10.0, 12.0, 11.0, 11.0]
        );
    }

    #[test]
    fn masked_slots_get_exactly_zero_weight() {
        let device = Device::flex();
        let query = Tensor::<4>::ones([1, 1, 1, 2], &device);
        let value =
            |masked: f32| Tensor::<4>::from_floats([[[[1.0, 2.0], [masked, masked]]]], &device);
        let key = Tensor::<4>::from_floats([[[[0.5, 0.5], [1.0e4, 1.0e4]]]], &device);
        let allowed = Tensor::<4, Bool>::from_bool(TensorData::from([[[[true, false]]]]), &device);
        let bias = Tensor::<4>::zeros([1, 1, 1, 2], &device);
        let out = |masked: f32| {
            let (out, weights) = masked_attention(
                query.clone(),
                key.clone(),
                value(masked),
                bias.clone(),
                allowed.clone(),
            );
            assert_eq!(to_vec(weights), [1.0, 0.0]);
            to_vec(out)
        };
        // Only the allowed slot counts, whatever the masked one holds (even a huge score).
        assert_eq!(out(0.0), [1.0, 2.0]);
        assert_eq!(out(1.0e6), [1.0, 2.0]);
    }

    #[test]
    fn sizes_are_checked() {
        let check_sizes = |obs_dim, num_actions, d_model, n_heads, n_layers, d_ff, span| {
            AttentionSizes::new(d_model, n_heads, n_layers, d_ff, span)
                .check_for(obs_dim, num_actions)
        };
        assert_eq!(check_sizes(3, 4, 64, 4, 2, 256, 32), Ok(()));
        assert_eq!(
            check_sizes(3, 4, 64, 5, 2, 256, 32),
            Err(AttentionConfigError::HeadsDoNotDivide {
                d_model: 64,
                n_heads: 5
            })
        );
        assert_eq!(
            check_sizes(0, 4, 64, 4, 2, 256, 32),
            Err(AttentionConfigError::Zero { field: "obs_dim" })
        );
    }
}
