//! The Feedback Transformer (Fan et al. 2020, "Addressing Some Limitations of Transformers
//! with Feedback Memory", arXiv:2002.09402) as an actor-critic policy.
//!
//! # Mechanism
//! At time step `t` the observation is embedded, `x_t^0 = Linear(obs_t)`, and every layer
//! `l = 1..=L` computes `x_t^l` from `x_t^{l-1}` (pre-LayerNorm):
//!
//! ```text
//! x' = x^{l-1} + Wo · Attn(q = Wq · LN(x^{l-1}),  keys/values = [m_{t-τ}, …, m_{t-1}, x^{l-1}])
//! x^l = x' + FF(LN(x'))
//! ```
//!
//! The keys and values do not come from layer `l-1`'s past states, as in a standard
//! transformer, but from the **memory**: one vector per past step,
//! `m_t = Σ_{l=0..L} softmax(w)_l · x_t^l` (the embedding included; `w` learned, initialised to
//! zeros, i.e. a uniform mix), so that the lowest layer of step `t` sees the highest-level
//! representations of the past. Keys and values are `Wk · LN(m)` and `Wv · LN(m)`. With
//! `share_kv` (the default) one LayerNorm and one key/value projection serve every layer, so the
//! keys and values of a memory vector are computed **once**, when it is written, and cached in
//! the memory window: a step costs one key/value projection plus `O(τ)` attention per layer,
//! never a recomputation of the window. Without `share_kv` each layer has its own projection and
//! the window caches one key/value pair per layer. Each head adds a learned bias per relative
//! distance (`0..=τ`) to its scores.
//!
//! # The current step and the first step of an episode
//! Besides the last `τ` memory vectors, each layer also attends to its own input `x_t^{l-1}`
//! (one extra key/value slot at distance 0, projected with the same key/value projection as the
//! memory). The reference implementation (facebookresearch/transformer-sequential,
//! models/feedback.py) attends only to the memory window, which there always holds `τ` vectors
//! (zeros before the first step). Here the memory of a new episode is *empty*: every window
//! entry from the previous episode is masked out, so the extra slot is what keeps the softmax
//! from running over an empty set. At the first step of an episode each layer therefore
//! attends only to its own input; at step `k < τ` of an episode it attends to the `k` memory
//! vectors of the episode so far and to its own input.
//!
//! # Memory layout
//! A sliding window over the last `τ` steps, oldest first, shifted by one each step (drop the
//! oldest entry, append the newest), so its size never changes and relative positions stay
//! aligned with the window's slots. [`Memory::tensors`] holds the memory vectors `[B, τ, d]`,
//! then, for each key/value group (one with `share_kv`, else one per layer), their cached keys
//! `[B, τ, d]` and values `[B, τ, d]`, then the validity mask `[B, τ, 1]` (1 = a memory vector
//! of the current episode, 0 = empty or from an earlier episode).
//!
//! Stepping (rollouts, evaluation) reads the cached keys and values, so a step projects only the
//! new vector. [`crate::ActorCritic::forward_sequence`] (the PPO update) ignores the cache and
//! recomputes the starting window's keys and values from the stored vectors with the current
//! weights, as the paper's reference code does: nothing is stale after the first epoch, and the
//! key/value projection and its LayerNorm get gradient through the starting window too. The
//! price is the vectors themselves: `τ·d` floats per env besides the `2·τ·d` of the cache.
//!
//! Training unrolls the same recurrence step by step (the mechanism is inherently sequential).
//! On the flex CPU backend both calls run the fused kernel of [`crate::kernels`] (one operation
//! for the whole sequence, with a hand-derived backward pass); elsewhere, and as the reference
//! the kernel is tested against, the tensor-operation path below: it embeds the whole chunk at
//! once, runs the recurrence over time for the whole batch, and applies the heads to the whole
//! chunk at once.

use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;

use crate::actor_critic::StepOutput;
#[cfg(feature = "flex")]
use crate::attention::fused_step_output;
use crate::attention::{
    AttentionConfigError, AttentionSpec, AttentionTrunk, FeedForward, MASKED_SCORE,
    RelativePositionBias, attention_config_methods, attention_spec_sizes, check_memory_layout,
};
use crate::heads::ActorCriticHeads;
#[cfg(feature = "flex")]
use crate::kernels;
#[cfg(feature = "flex")]
use crate::kernels::{host_values, tensor3};
use crate::memory::Memory;
use crate::policy::PolicyError;

pub use crate::feedback_options::{CurrentSlot, MemoryMix};

/// Configuration of a [`FeedbackTransformer`].
#[derive(Config, Debug)]
pub struct FeedbackTransformerConfig {
    /// Width of the embedding, of every layer and of the memory vectors.
    #[config(default = 64)]
    pub d_model: usize,
    /// Number of attention heads (must divide `d_model`).
    #[config(default = 4)]
    pub n_heads: usize,
    /// Number of layers `L`.
    #[config(default = 2)]
    pub n_layers: usize,
    /// Hidden units of each layer's feed-forward block.
    #[config(default = 256)]
    pub d_ff: usize,
    /// Attention span `τ`: the number of past memory vectors each layer attends to, in steps.
    #[config(default = 32)]
    pub span: usize,
    /// Share one key/value projection of the memory across all layers (keys and values are then
    /// computed once per step and cached); otherwise each layer has its own.
    #[config(default = true)]
    pub share_kv: bool,
    /// What the memory vector is made of (an ablation of the mechanism; default: the learned
    /// mix of all layers).
    #[config(default = "MemoryMix::Learned")]
    pub memory_mix: MemoryMix,
    /// What each layer attends to besides the window (an ablation; default: its own input).
    #[config(default = "CurrentSlot::Input")]
    pub current_slot: CurrentSlot,
}

impl FeedbackTransformerConfig {
    attention_config_methods!(FeedbackTransformer);

    /// Builds the policy for observations of `obs_dim` floats and `num_actions` discrete
    /// actions, or says which size is wrong.
    pub fn try_init(
        &self,
        obs_dim: usize,
        num_actions: usize,
        device: &Device,
    ) -> Result<FeedbackTransformer, AttentionConfigError> {
        self.check(obs_dim, num_actions)?;
        let d = self.d_model;
        let groups = if self.share_kv { 1 } else { self.n_layers };
        let layers = (0..self.n_layers)
            .map(|_| FeedbackLayer {
                norm_attn: LayerNormConfig::new(d).init(device),
                query: LinearConfig::new(d, d).with_bias(false).init(device),
                out: LinearConfig::new(d, d).with_bias(false).init(device),
                position_bias: RelativePositionBias::new(self.n_heads, self.span, device),
                norm_ff: LayerNormConfig::new(d).init(device),
                ff: FeedForward::new(d, self.d_ff, device),
            })
            .collect();
        let key_value = (0..groups)
            .map(|_| MemoryKeyValue {
                norm: LayerNormConfig::new(d).init(device),
                proj: LinearConfig::new(d, 2 * d).with_bias(false).init(device),
                null: (self.current_slot == CurrentSlot::Null)
                    .then(|| Param::from_tensor(Tensor::zeros([2 * d], device))),
            })
            .collect();
        Ok(FeedbackTransformer {
            embed: LinearConfig::new(obs_dim, d).init(device),
            layers,
            key_value,
            layer_mix: Param::from_tensor(Tensor::zeros([self.n_layers + 1], device)),
            heads: ActorCriticHeads::with_final_norm(d, num_actions, device),
            d_model: d,
            n_heads: self.n_heads,
            span: self.span,
            memory_mix: self.memory_mix,
        })
    }
}

/// One layer: pre-LN attention over the memory window (plus the layer's own input), then a
/// pre-LN feed-forward block, each with a residual connection.
#[derive(Module, Debug)]
pub struct FeedbackLayer {
    /// LayerNorm of the query input.
    pub norm_attn: LayerNorm,
    /// Query projection `d → d`.
    pub query: Linear,
    /// Output projection of the attention `d → d`.
    pub out: Linear,
    /// Learned relative position bias of this layer's heads.
    pub position_bias: RelativePositionBias,
    /// LayerNorm before the feed-forward block.
    pub norm_ff: LayerNorm,
    /// Feed-forward block.
    pub ff: FeedForward,
}

/// The key/value projection of memory vectors: `LN` then `Linear(d, 2d)`.
#[derive(Module, Debug)]
pub struct MemoryKeyValue {
    /// LayerNorm of the memory vector (pre-LN).
    pub norm: LayerNorm,
    /// Keys and values, `d → 2d` (keys first).
    pub proj: Linear,
    /// The learned key/value pair of the current step's slot `[2d]`, with
    /// [`CurrentSlot::Null`] (none: the slot holds the layer's own input).
    pub null: Option<Param<Tensor<1>>>,
}

impl MemoryKeyValue {
    /// `[.., d]` → keys and values side by side `[.., 2d]` (keys first).
    fn project<const D: usize>(&self, m: Tensor<D>) -> Tensor<D> {
        self.proj.forward(self.norm.forward(m))
    }
}

/// The Feedback Transformer actor-critic (see the [module docs](self) for the mechanism, the
/// first step of an episode and the memory layout).
#[derive(Module, Debug)]
pub struct FeedbackTransformer {
    /// Observation embedding `obs_dim → d`.
    pub embed: Linear,
    /// The layers.
    pub layers: Vec<FeedbackLayer>,
    /// Key/value projections of the memory: one shared by all layers, or one per layer.
    pub key_value: Vec<MemoryKeyValue>,
    /// Mixing logits `w` of the memory vector over the embedding and the layer outputs,
    /// `[L + 1]`, initialised to zeros.
    pub layer_mix: Param<Tensor<1>>,
    /// Actor and critic heads on the last layer's output.
    pub heads: ActorCriticHeads,
    /// Model width.
    pub d_model: usize,
    /// Number of attention heads.
    pub n_heads: usize,
    /// Attention span `τ` in steps.
    pub span: usize,
    /// What the memory vector is made of.
    #[module(skip)]
    pub memory_mix: MemoryMix,
}

/// The recurrent state in working form: the memory vectors `[B, τ, d]`, per key/value group the
/// keys and values side by side `[B, τ, 2d]` (keys first, as the projection makes them), and the
/// validity mask `[B, τ, 1]`.
struct Window {
    vectors: Tensor<3>,
    key_values: Vec<Tensor<3>>,
    valid: Tensor<3>,
}

/// What every step of a call shares, computed once per call: each layer's position bias over
/// the window laid out as `[1, τ+1, H, 1]` (key slots oldest first), the memory mix weights
/// `[L+1, 1, 1]` and a column of ones `[B, 1, 1]`.
struct StepConstants {
    biases: Vec<Tensor<4>>,
    mix: Tensor<3>,
    ones: Tensor<3>,
}

impl FeedbackTransformer {
    /// The memory's tensors in working form. With `recompute`, the keys and values come from
    /// the memory vectors with the current weights (the cache is not read).
    fn window_from_memory(&self, memory: Memory, recompute: bool) -> Window {
        let batch = memory.batch_size().unwrap_or(0);
        check_memory_layout(
            "FeedbackTransformer",
            &self.window_shapes(batch),
            &memory.shapes(),
        );
        let mut tensors = memory.tensors.into_iter();
        let vectors = tensors.next().expect("checked layout");
        let mut rest: Vec<Tensor<3>> = tensors.collect();
        let valid = rest.pop().expect("checked layout");
        let key_values = if recompute {
            self.key_value
                .iter()
                .map(|kv| kv.project(vectors.clone()))
                .collect()
        } else {
            let mut key_values = Vec::new();
            let mut it = rest.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                key_values.push(Tensor::cat(vec![k, v], 2)); // [B, τ, 2d]
            }
            key_values
        };
        Window {
            vectors,
            key_values,
            valid,
        }
    }

    fn window_into_memory(window: Window) -> Memory {
        let mut tensors = Vec::with_capacity(2 * window.key_values.len() + 2);
        tensors.push(window.vectors);
        for kv in window.key_values {
            let d = kv.dims()[2] / 2;
            tensors.push(kv.clone().narrow(2, 0, d));
            tensors.push(kv.narrow(2, d, d));
        }
        tensors.push(window.valid);
        Memory { tensors }
    }

    /// The softmax-normalised weights of the memory vector over the embedding (index 0) and the
    /// layer outputs (index `l`), `[L + 1]`.
    pub fn layer_mix_weights(&self) -> Tensor<1> {
        let n = self.layers.len() + 1;
        let one_hot = |i: usize| {
            let mut w = vec![0.0f32; n];
            w[i] = 1.0;
            Tensor::from_data(TensorData::new(w, [n]), &self.layer_mix.device())
        };
        match self.memory_mix {
            MemoryMix::Learned => softmax(self.layer_mix.val(), 0),
            MemoryMix::Top => one_hot(n - 1),
            MemoryMix::Embedding => one_hot(0),
        }
    }

    fn constants(&self, batch: usize, device: &Device) -> StepConstants {
        StepConstants {
            biases: self
                .layers
                .iter()
                .map(|layer| {
                    let [_, heads, _, slots] = layer.position_bias.window().dims();
                    layer
                        .position_bias
                        .window()
                        .reshape([heads, slots])
                        .swap_dims(0, 1)
                        .reshape([1, slots, heads, 1])
                })
                .collect(),
            mix: self
                .layer_mix_weights()
                .reshape([self.layers.len() + 1, 1, 1]),
            ones: Tensor::ones([batch, 1, 1], device),
        }
    }

    /// One step of the recurrence for a batch: the embedded observation `x0 [B, d]`, the
    /// episode-start flags `start [B, 1, 1]` and the window before the step; returns the last
    /// layer's output `[B, d]`, the window after the step and each layer's attention weights
    /// `[B, τ+1, H, 1]` (window slots oldest first, then the current step's slot).
    ///
    /// The attention of the single query is written with broadcast products and sums over
    /// `[B, τ+1, H, Dh]` (scores `[B, τ+1, H, 1]`), which needs no transposes and no copies.
    fn advance(
        &self,
        x0: Tensor<2>,
        start: Tensor<3>,
        window: Window,
        consts: &StepConstants,
    ) -> (Tensor<2>, Window, Vec<Tensor<4>>) {
        let [b, d] = x0.dims();
        let tau = self.span;
        let heads = self.n_heads;
        let dh = d / heads;
        let scale = (dh as f32).sqrt();
        // A new episode starts with an empty memory: mask out the whole window.
        let valid = window.valid * start.neg().add_scalar(1.0); // [B, τ, 1]
        // The window's τ slots plus the current step's own slot, which is always allowed.
        let masked = Tensor::cat(vec![valid.clone(), consts.ones.clone()], 1) // [B, τ+1, 1]
            .reshape([b, tau + 1, 1, 1])
            .lower_elem(0.5)
            .expand([b, tau + 1, heads, 1]); // [B, τ+1, H, 1]

        let shared = self.key_value.len() == 1;
        let mut x = x0.clone();
        let mut outputs = vec![x0]; // x^0 .. x^L, each [B, d]
        let mut attention = Vec::with_capacity(self.layers.len());
        for (l, layer) in self.layers.iter().enumerate() {
            let g = if shared { 0 } else { l };
            let kv_self = match &self.key_value[g].null {
                None => self.key_value[g].project(x.clone()), // [B, 2d]
                Some(null) => null.val().reshape([1, 2 * d]).expand([b, 2 * d]),
            };
            let kv = Tensor::cat(
                vec![window.key_values[g].clone(), kv_self.reshape([b, 1, 2 * d])],
                1,
            )
            .reshape([b, tau + 1, 2 * heads, dh]); // [B, τ+1, 2H, Dh]
            let keys = kv.clone().narrow(2, 0, heads); // [B, τ+1, H, Dh]
            let values = kv.narrow(2, heads, heads); // [B, τ+1, H, Dh]
            let query = layer
                .query
                .forward(layer.norm_attn.forward(x.clone()))
                .reshape([b, 1, heads, dh]); // [B, 1, H, Dh]
            let scores = (keys * query).sum_dim(3).div_scalar(scale) + consts.biases[l].clone(); // [B, τ+1, H, 1]
            let weights = softmax(scores.mask_fill(masked.clone(), MASKED_SCORE), 1); // [B, τ+1, H, 1]
            let attended = (weights.clone() * values).sum_dim(1).reshape([b, d]); // [B, d]
            attention.push(weights);
            x = x + layer.out.forward(attended);
            x = x.clone() + layer.ff.forward(layer.norm_ff.forward(x));
            outputs.push(x.clone());
        }

        // The new memory vector: a learned convex mix of the embedding and every layer's output.
        let memory_vector = (Tensor::stack::<3>(outputs, 0) * consts.mix.clone())
            .sum_dim(0)
            .reshape([b, d]); // [B, d]

        // Slide the window by one: drop the oldest slot, append the new entry.
        let slide = |old: Tensor<3>, new: Tensor<2>| {
            let width = new.dims()[1];
            let new = new.reshape([b, 1, width]);
            if tau == 1 {
                new
            } else {
                Tensor::cat(vec![old.narrow(1, 1, tau - 1), new], 1)
            }
        };
        let key_values = self
            .key_value
            .iter()
            .zip(window.key_values)
            .map(|(kv, old)| slide(old, kv.project(memory_vector.clone())))
            .collect();
        let vectors = slide(window.vectors, memory_vector);
        let valid = slide(valid, consts.ones.clone().reshape([b, 1]));
        (
            x,
            Window {
                vectors,
                key_values,
                valid,
            },
            attention,
        )
    }
}

/// The tensor-operation path (any backend; the reference the fused kernel is tested against).
impl FeedbackTransformer {
    /// One step on the tensor-operation path and each layer's attention weights as
    /// [`Self::advance`] makes them, `[B, τ+1, H, 1]`.
    fn step_reference_with_weights(
        &self,
        obs: Tensor<2>,
        starts: Tensor<1>,
        memory: Memory,
    ) -> (StepOutput, Vec<Tensor<4>>) {
        let [b, _] = obs.dims();
        let window = self.window_from_memory(memory, false);
        let x0 = self.embed.forward(obs); // [B, d]
        let consts = self.constants(b, &x0.device());
        let (top, window, attention) = self.advance(x0, starts.reshape([b, 1, 1]), window, &consts);
        let (logits, value) = self.heads.forward(top); // [B, A], [B]
        (
            (logits, value.reshape([b]), Self::window_into_memory(window)),
            attention,
        )
    }
}

/// The fused path (flex backend).
#[cfg(feature = "flex")]
impl FeedbackTransformer {
    fn kernel_dims(&self) -> kernels::feedback::Dims {
        kernels::feedback::Dims {
            trunk: kernels::attention::TrunkDims {
                d: self.d_model,
                heads: self.n_heads,
                layers: self.layers.len(),
                ff: self.layers[0].ff.hidden.weight.dims()[1],
                span: self.span,
            },
            groups: self.key_value.len(),
            mix: self.memory_mix,
            null_slot: self.key_value[0].null.is_some(),
        }
    }
}

impl AttentionTrunk for FeedbackTransformer {
    fn embed(&self) -> &Linear {
        &self.embed
    }

    fn heads(&self) -> &ActorCriticHeads {
        &self.heads
    }

    #[cfg(feature = "flex")]
    fn parameter_tensors(&self) -> Vec<Tensor<1>> {
        use kernels::{flat, push_norm as norm};
        let mut parts = Vec::new();
        for layer in &self.layers {
            norm(&layer.norm_attn, &mut parts);
            parts.push(flat(layer.query.weight.val()));
            parts.push(flat(layer.out.weight.val()));
            parts.push(flat(layer.position_bias.bias.val()));
            norm(&layer.norm_ff, &mut parts);
            layer.ff.push_parameters(&mut parts);
        }
        for kv in &self.key_value {
            norm(&kv.norm, &mut parts);
            parts.push(flat(kv.proj.weight.val()));
            if let Some(null) = &kv.null {
                parts.push(null.val());
            }
        }
        parts.push(self.layer_mix.val());
        parts
    }

    fn window_shapes(&self, batch: usize) -> Vec<[usize; 3]> {
        let mut shapes = vec![[batch, self.span, self.d_model]; 1 + 2 * self.key_value.len()];
        shapes.push([batch, self.span, 1]);
        shapes
    }

    /// The recurrence step by step; the starting keys and values are recomputed from the
    /// memory vectors.
    fn trunk_reference(
        &self,
        x0: Tensor<3>,
        episode_start: Tensor<2>,
        memory0: Memory,
    ) -> Tensor<3> {
        let [b, _, d] = x0.dims();
        let mut window = self.window_from_memory(memory0, true);
        let consts = self.constants(b, &x0.device());
        let mut tops = Vec::with_capacity(x0.dims()[1]);
        for (x, start) in x0.iter_dim(1).zip(episode_start.iter_dim(1)) {
            let (top, next, _) =
                self.advance(x.reshape([b, d]), start.reshape([b, 1, 1]), window, &consts);
            tops.push(top);
            window = next;
        }
        Tensor::stack::<3>(tops, 1) // [B, T, d]
    }

    #[cfg(feature = "flex")]
    fn trunk_fused(&self, x0: Tensor<3>, episode_start: Tensor<2>, memory0: Memory) -> Tensor<3> {
        let [b, t, d] = x0.dims();
        let span = self.span;
        let mut tensors = memory0.tensors;
        let valid0 = tensors.pop().expect("memory layout");
        let m0 = tensors.swap_remove(0);
        assert_eq!(
            m0.dims(),
            [b, span, d],
            "FeedbackTransformer: memory vectors [B, τ, d]"
        );
        let dims = self.kernel_dims();
        let op = kernels::feedback::FeedbackSequence {
            layout: kernels::feedback::Layout::new(&dims),
            dims,
            batch: b,
            steps: t,
            starts: host_values(episode_start),
            valid0: host_values(valid0),
        };
        let out = kernels::apply(
            op,
            [
                self.flat_parameters(),
                x0.reshape([b * t * d]),
                m0.reshape([b * span * d]),
            ],
        );
        out.reshape([b, t, d])
    }

    fn step_reference(&self, obs: Tensor<2>, starts: Tensor<1>, memory: Memory) -> StepOutput {
        self.step_reference_with_weights(obs, starts, memory).0
    }

    #[cfg(feature = "flex")]
    fn step_fused(&self, obs: Tensor<2>, starts: Tensor<1>, memory: Memory) -> StepOutput {
        let [b, _] = obs.dims();
        let device = obs.device();
        let (d, span) = (self.d_model, self.span);
        check_memory_layout(
            "FeedbackTransformer",
            &self.window_shapes(b),
            &memory.shapes(),
        );
        let dims = self.kernel_dims();
        let layout = kernels::feedback::Layout::new(&dims);
        let x0 = self.embed.forward(obs); // [B, d]
        let mut tensors = memory.tensors.into_iter();
        let vectors = tensors.next().expect("checked layout");
        let mut rest: Vec<Tensor<3>> = tensors.collect();
        let valid = rest.pop().expect("checked layout");
        let kv: Vec<Vec<f32>> = rest
            .chunks(2)
            .map(|kv| host_values(Tensor::cat(kv.to_vec(), 2)))
            .collect();
        let starts = host_values(starts);
        let valid_host = host_values(valid);
        let storage = kernels::host_tensors(self.parameter_tensors());
        let parts = kernels::param_parts(&storage);
        let (top, m, new_kv) = kernels::feedback::decode_step(
            &dims,
            &layout,
            &kernels::feedback::Params::Parts(parts),
            &host_values(x0),
            &starts,
            &kv,
            &valid_host,
        );
        // Slide the window on the host: drop the oldest slot, append the new entry.
        let mut tensors = Vec::with_capacity(2 * kv.len() + 2);
        tensors.push(tensor3(
            kernels::slide_window(&host_values(vectors), (b, span, d), |r| &m[r * d..]),
            [b, span, d],
            &device,
        ));
        for (old, new) in kv.iter().zip(&new_kv) {
            let both = kernels::slide_window(old, (b, span, 2 * d), |r| &new[r * 2 * d..]);
            let (keys, values): (Vec<f32>, Vec<f32>) = {
                let mut k = Vec::with_capacity(b * span * d);
                let mut v = Vec::with_capacity(b * span * d);
                for row in both.chunks_exact(2 * d) {
                    k.extend_from_slice(&row[..d]);
                    v.extend_from_slice(&row[d..]);
                }
                (k, v)
            };
            tensors.push(tensor3(keys, [b, span, d], &device));
            tensors.push(tensor3(values, [b, span, d], &device));
        }
        let window = (&valid_host[..], &starts[..], span);
        fused_step_output(&self.heads, (top, d), window, tensors, &device)
    }

    /// The window's slots are the memory vectors of the `τ` previous steps.
    fn step_with_attention(
        &self,
        obs: Tensor<2>,
        starts: Tensor<1>,
        memory: Memory,
    ) -> (StepOutput, Vec<Tensor<3>>) {
        let (out, attention) = self.step_reference_with_weights(obs, starts, memory);
        let attention = attention
            .into_iter()
            .map(|w| {
                let [b, slots, h, _] = w.dims();
                w.reshape([b, slots, h]).swap_dims(1, 2) // [B, H, τ+1]
            })
            .collect();
        (out, attention)
    }
}

crate::kind_config! {
    /// The `feedback` kind's config: a [`FeedbackTransformer`] (the policy config's fields for
    /// `kind = "feedback"`).
    pub struct FeedbackSpec {
        /// Model width: embedding, attention and memory-vector width.
        pub d_model: usize = 64,
        /// Number of attention heads; must divide `d_model`.
        pub n_heads: usize = 4,
        /// Number of layers (transformer blocks).
        pub n_layers: usize = 2,
        /// Hidden width of each block's feed-forward network.
        pub d_ff: usize = 256,
        /// Attention span τ: how many past time steps a step can attend to.
        pub span: usize = 32,
        /// Share the memory's key/value projections across layers, computed once per step.
        pub share_kv: bool = true,
        /// What the memory vector is made of: `learned` (the mix of all layers), `top` or
        /// `embedding` (ablations of the mechanism).
        pub memory_mix: MemoryMix = MemoryMix::Learned,
        /// What each layer attends to besides the window: `input` (its own input) or `null`
        /// (a learned key/value pair; an ablation).
        pub current_slot: CurrentSlot = CurrentSlot::Input,
    }
}

impl AttentionSpec for FeedbackSpec {
    type Net = FeedbackTransformer;

    /// ≈ 1.55× the Transformer of the same sizes (≈ 7k against 11k env steps/s at d = 64).
    const COST_FACTOR: f64 = 1.55;

    attention_spec_sizes!();

    /// A group's key/value projection `d → 2d` (counted once in the parameters, for the new
    /// memory vector) is also applied to every layer's own input (the current slot), and to
    /// the starting window's `τ` vectors once per chunk; attention scores `τ + 1` key slots.
    fn attention_flops_per_step(&self, chunk: usize, _fused: bool) -> f64 {
        let sizes = self.sizes();
        let (d, layers, span) = (self.d_model as f64, self.n_layers as f64, self.span as f64);
        let groups = if self.share_kv { 1.0 } else { layers };
        let kv = 2.0 * d * 2.0 * d;
        let self_slots = if self.current_slot == CurrentSlot::Input {
            layers
        } else {
            0.0
        };
        let window = if chunk > 1 {
            groups * span / chunk as f64
        } else {
            0.0
        };
        kv * (self_slots + window) + sizes.attention_flops(span + 1.0)
    }

    fn init_net(
        &self,
        obs: usize,
        actions: usize,
        device: &Device,
    ) -> Result<Self::Net, PolicyError> {
        Ok(FeedbackTransformerConfig::new()
            .with_sizes(self.sizes())
            .with_share_kv(self.share_kv)
            .with_memory_mix(self.memory_mix)
            .with_current_slot(self.current_slot)
            .try_init(obs, actions, device)?)
    }
}
