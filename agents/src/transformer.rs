//! The standard transformer baseline: causal self-attention in which layer `l` at step `t`
//! attends to layer `l-1`'s states (the layer's own inputs) of steps `t-τ..=t`, Transformer-XL
//! style, as an actor-critic policy.
//!
//! # Mechanism
//! `x_t^0 = Linear(obs_t)`; each layer is pre-LayerNorm:
//!
//! ```text
//! x' = x^{l-1}_t + Wo · Attn(q = Wq · LN(x^{l-1}_t), keys/values = Wk, Wv · LN(x^{l-1}_{t-τ..=t}))
//! x^l_t = x' + FF(LN(x'))
//! ```
//!
//! with a learned relative position bias per head over distances `0..=τ`. With `gating`, both
//! residual connections are replaced by the GRU-type gates of GTrXL (Parisotto et al. 2020),
//! applied to the ReLU of the sublayer's output. A step always attends to itself, so the first
//! step of an episode (no valid past) is well defined: it attends only to its own state. The
//! receptive field over time grows with depth (`L·τ` steps), unlike the Feedback Transformer's
//! single memory.
//!
//! # Memory layout
//! Per layer, the keys `[B, τ, d]` and values `[B, τ, d]` of that layer's inputs over the last
//! `τ` steps (oldest first), then the validity mask `[B, τ, 1]` (1 = a step of the current
//! episode): the usual key/value cache of transformer decoding, so a step projects only its own
//! state and attends over `τ + 1` slots per layer, `O(τ·d)`, instead of re-projecting the whole
//! window, `O(τ·d²)`. The memory per env is `2·L·τ·d + τ` floats, against the Feedback
//! Transformer's `2·τ·d + τ` (one memory shared by all layers). The prefix keys and values
//! in `memory0` are the ones computed when the memory was written (as the Feedback
//! Transformer's are): in a PPO update they come from the rollout's parameters, and no gradient
//! reaches them.
//!
//! [`crate::ActorCritic::forward_sequence`] runs parallel over time: the cached prefix from `memory0`
//! (detached) is put in front of the chunk and one attention per layer covers the whole chunk
//! under a causal + span + episode mask. [`crate::ActorCritic::step`] is the same computation with a
//! chunk of one step.
//!
//! On the flex CPU backend both calls run the fused kernel of [`crate::kernels`] (one
//! operation of the autodiff graph for the whole trunk, with its hand-derived backward pass;
//! each query visits only the `τ + 1` slots of its window); the tensor-operation path here is
//! the reference it is tested against, which other backends use.

use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;

use crate::actor_critic::StepOutput;
#[cfg(feature = "flex")]
use crate::attention::fused_step_output;
use crate::attention::{
    AttentionConfigError, AttentionSpec, AttentionTrunk, FeedForward, GruGate,
    RelativePositionBias, attention_config_methods, attention_spec_sizes, check_memory_layout,
    masked_attention, merge_heads, residual, split_heads,
};
use crate::heads::ActorCriticHeads;
#[cfg(feature = "flex")]
use crate::kernels;
#[cfg(feature = "flex")]
use crate::kernels::{host_values, tensor3};
use crate::memory::Memory;
use crate::policy::PolicyError;

/// Configuration of a [`Transformer`].
#[derive(Config, Debug)]
pub struct TransformerConfig {
    /// Width of the embedding and of every layer.
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
    /// Attention span `τ`: the number of past steps each layer attends to, in steps.
    #[config(default = 32)]
    pub span: usize,
    /// GTrXL gating: GRU-type gates instead of residual connections.
    #[config(default = false)]
    pub gating: bool,
}

impl TransformerConfig {
    attention_config_methods!(Transformer);

    /// Builds the policy for observations of `obs_dim` floats and `num_actions` discrete
    /// actions, or says which size is wrong.
    pub fn try_init(
        &self,
        obs_dim: usize,
        num_actions: usize,
        device: &Device,
    ) -> Result<Transformer, AttentionConfigError> {
        self.check(obs_dim, num_actions)?;
        let d = self.d_model;
        let layers = (0..self.n_layers)
            .map(|_| TransformerLayer {
                norm_attn: LayerNormConfig::new(d).init(device),
                query: LinearConfig::new(d, d).with_bias(false).init(device),
                key_value: LinearConfig::new(d, 2 * d).with_bias(false).init(device),
                out: LinearConfig::new(d, d).with_bias(false).init(device),
                position_bias: RelativePositionBias::new(self.n_heads, self.span, device),
                norm_ff: LayerNormConfig::new(d).init(device),
                ff: FeedForward::new(d, self.d_ff, device),
                gate_attn: self.gating.then(|| GruGate::new(d, device)),
                gate_ff: self.gating.then(|| GruGate::new(d, device)),
                n_heads: self.n_heads,
            })
            .collect();
        Ok(Transformer {
            embed: LinearConfig::new(obs_dim, d).init(device),
            layers,
            heads: ActorCriticHeads::with_final_norm(d, num_actions, device),
            d_model: d,
            span: self.span,
        })
    }
}

/// One pre-LN transformer layer whose keys and values cover a cached prefix plus the chunk.
#[derive(Module, Debug)]
pub struct TransformerLayer {
    /// LayerNorm of the layer input (queries, keys and values alike).
    pub norm_attn: LayerNorm,
    /// Query projection `d → d`.
    pub query: Linear,
    /// Key and value projection `d → 2d` (keys first).
    pub key_value: Linear,
    /// Output projection of the attention `d → d`.
    pub out: Linear,
    /// Learned relative position bias of this layer's heads.
    pub position_bias: RelativePositionBias,
    /// LayerNorm before the feed-forward block.
    pub norm_ff: LayerNorm,
    /// Feed-forward block.
    pub ff: FeedForward,
    /// GTrXL gate replacing the attention's residual connection (with `gating`).
    pub gate_attn: Option<GruGate>,
    /// GTrXL gate replacing the feed-forward block's residual connection (with `gating`).
    pub gate_ff: Option<GruGate>,
    /// Number of attention heads.
    pub n_heads: usize,
}

impl TransformerLayer {
    /// Runs the layer over a chunk given the cached keys and values of the `τ` steps before it.
    ///
    /// # Shapes
    /// - `x`: the chunk's inputs to this layer `[B, T, d]`
    /// - `prefix_keys`, `prefix_values`: `[B, τ, d]`
    /// - `bias`: `[1, H, T, τ+T]`, `allowed`: `[B, 1, T, τ+T]`
    /// - returns the layer's outputs `[B, T, d]`, the chunk's keys and values `[B, T, d]` and
    ///   the attention weights `[B, H, T, τ+T]`
    fn forward(
        &self,
        x: Tensor<3>,
        prefix_keys: Tensor<3>,
        prefix_values: Tensor<3>,
        bias: Tensor<4>,
        allowed: Tensor<4, Bool>,
    ) -> (Tensor<3>, Tensor<3>, Tensor<3>, Tensor<4>) {
        let d = x.dims()[2];
        let normed = self.norm_attn.forward(x.clone()); // [B, T, d]
        let query = self.query.forward(normed.clone()); // [B, T, d]
        let kv = self.key_value.forward(normed); // [B, T, 2d]
        let (keys, values) = (kv.clone().narrow(2, 0, d), kv.narrow(2, d, d)); // [B, T, d] each
        let (attended, weights) = masked_attention(
            split_heads(query, self.n_heads),
            split_heads(
                Tensor::cat(vec![prefix_keys, keys.clone()], 1),
                self.n_heads,
            ),
            split_heads(
                Tensor::cat(vec![prefix_values, values.clone()], 1),
                self.n_heads,
            ),
            bias,
            allowed,
        ); // [B, H, T, Dh]
        let y = self.out.forward(merge_heads(attended)); // [B, T, d]
        let x = residual(self.gate_attn.as_ref(), x, y);
        let y = self.ff.forward(self.norm_ff.forward(x.clone())); // [B, T, d]
        let x = residual(self.gate_ff.as_ref(), x, y);
        (x, keys, values, weights)
    }
}

/// The transformer baseline actor-critic (see the [module docs](self)).
#[derive(Module, Debug)]
pub struct Transformer {
    /// Observation embedding `obs_dim → d`.
    pub embed: Linear,
    /// The layers.
    pub layers: Vec<TransformerLayer>,
    /// Actor and critic heads on the last layer's output.
    pub heads: ActorCriticHeads,
    /// Model width.
    pub d_model: usize,
    /// Attention span `τ` in steps.
    pub span: usize,
}

/// Distances `τ + i − k` between query `i` of a chunk of `t` steps and key `k` of the prefix
/// plus chunk (`[t, τ+t]`, clamped to `0..=τ`), and whether the key is within the span and not
/// in the future.
fn span_layout(t: usize, tau: usize, device: &Device) -> (Tensor<2, Int>, Tensor<2, Bool>) {
    let keys = tau + t;
    let mut distances = Vec::with_capacity(t * keys);
    let mut in_span = Vec::with_capacity(t * keys);
    for i in 0..t {
        for k in 0..keys {
            let dist = (tau + i) as i64 - k as i64;
            in_span.push((0..=tau as i64).contains(&dist));
            distances.push(dist.clamp(0, tau as i64));
        }
    }
    (
        Tensor::from_data(TensorData::new(distances, [t, keys]), device),
        Tensor::from_data(TensorData::new(in_span, [t, keys]), device),
    )
}

impl Transformer {
    /// Runs a chunk of `T` steps in parallel from a memory.
    ///
    /// # Shapes
    /// - `x`: embedded observations `[B, T, d]`, `starts`: `[B, T]`
    /// - returns the last layer's outputs `[B, T, d]`, the memory after the chunk and each
    ///   layer's attention weights `[B, H, T, τ+T]` (keys: the τ cached steps, then the chunk)
    fn run(
        &self,
        x: Tensor<3>,
        starts: Tensor<2>,
        memory: Memory,
    ) -> (Tensor<3>, Memory, Vec<Tensor<4>>) {
        let [b, t, _] = x.dims();
        let tau = self.span;
        let keys = tau + t;
        let device = x.device();
        check_memory_layout("Transformer", &self.window_shapes(b), &memory.shapes());
        let mut caches = memory.tensors;
        let valid = caches.pop().expect("checked layout").reshape([b, tau]); // [B, τ]

        // Episode index of each step within the chunk (0 = the episode memory0 belongs to).
        let episode = starts.cumsum(1); // [B, T]
        let key_episode = Tensor::cat(vec![Tensor::zeros([b, tau], &device), episode.clone()], 1); // [B, τ+T]
        let key_valid =
            Tensor::cat(vec![valid, Tensor::ones([b, t], &device)], 1).greater_elem(0.5); // [B, τ+T]
        let same_episode = episode
            .clone()
            .reshape([b, t, 1])
            .expand([b, t, keys])
            .equal(
                key_episode
                    .clone()
                    .reshape([b, 1, keys])
                    .expand([b, t, keys]),
            ); // [B, T, τ+T]
        let (distances, in_span) = span_layout(t, tau, &device);
        let allowed = same_episode
            .bool_and(key_valid.clone().reshape([b, 1, keys]).expand([b, t, keys]))
            .bool_and(in_span.reshape([1, t, keys]).expand([b, t, keys]))
            .reshape([b, 1, t, keys]);

        // Slide a cache over the chunk: keep the last τ of prefix + chunk.
        let slide = |prefix: Tensor<3>, chunk: Tensor<3>| {
            Tensor::cat(vec![prefix, chunk], 1).narrow(1, t, tau)
        };
        let mut x = x;
        let mut next_caches = Vec::with_capacity(caches.len() + 1);
        let mut attention = Vec::with_capacity(self.layers.len());
        let mut caches = caches.into_iter();
        for layer in &self.layers {
            let (prefix_keys, prefix_values) = (
                caches.next().expect("checked"),
                caches.next().expect("checked"),
            );
            let bias = layer.position_bias.for_distances(distances.clone()); // [1, H, T, τ+T]
            let (out, keys, values, weights) = layer.forward(
                x,
                prefix_keys.clone(),
                prefix_values.clone(),
                bias,
                allowed.clone(),
            );
            next_caches.push(slide(prefix_keys, keys));
            next_caches.push(slide(prefix_values, values));
            attention.push(weights);
            x = out;
        }

        // After the chunk, a cached step stays valid if it belongs to the chunk's last episode.
        let last_episode = episode.narrow(1, t - 1, 1).expand([b, keys]); // [B, τ+T]
        let next_valid = key_episode
            .equal(last_episode)
            .bool_and(key_valid)
            .float()
            .narrow(1, t, tau)
            .reshape([b, tau, 1]);
        next_caches.push(next_valid);
        (
            x,
            Memory {
                tensors: next_caches,
            },
            attention,
        )
    }
}

/// The fused path (flex backend).
#[cfg(feature = "flex")]
impl Transformer {
    fn kernel_dims(&self) -> kernels::transformer::Dims {
        let first = &self.layers[0];
        kernels::transformer::Dims {
            trunk: kernels::attention::TrunkDims {
                d: self.d_model,
                heads: first.n_heads,
                layers: self.layers.len(),
                ff: first.ff.hidden.weight.dims()[1],
                span: self.span,
            },
            gating: first.gate_attn.is_some(),
        }
    }
}

impl AttentionTrunk for Transformer {
    fn embed(&self) -> &Linear {
        &self.embed
    }

    fn heads(&self) -> &ActorCriticHeads {
        &self.heads
    }

    #[cfg(feature = "flex")]
    fn parameter_tensors(&self) -> Vec<Tensor<1>> {
        use kernels::{flat, push_norm as norm};
        fn gate(g: &GruGate, out: &mut Vec<Tensor<1>>) {
            out.push(flat(g.from_output.weight.val()));
            out.push(flat(g.from_stream.weight.val()));
            out.push(flat(g.candidate.weight.val()));
            out.push(g.bias.val());
        }
        let mut parts = Vec::new();
        for layer in &self.layers {
            norm(&layer.norm_attn, &mut parts);
            parts.push(flat(layer.query.weight.val()));
            parts.push(flat(layer.key_value.weight.val()));
            parts.push(flat(layer.out.weight.val()));
            parts.push(flat(layer.position_bias.bias.val()));
            norm(&layer.norm_ff, &mut parts);
            layer.ff.push_parameters(&mut parts);
            if let (Some(ga), Some(gf)) = (&layer.gate_attn, &layer.gate_ff) {
                gate(ga, &mut parts);
                gate(gf, &mut parts);
            }
        }
        parts
    }

    fn window_shapes(&self, batch: usize) -> Vec<[usize; 3]> {
        let mut shapes = vec![[batch, self.span, self.d_model]; 2 * self.layers.len()];
        shapes.push([batch, self.span, 1]);
        shapes
    }

    fn trunk_reference(&self, x: Tensor<3>, starts: Tensor<2>, memory: Memory) -> Tensor<3> {
        self.run(x, starts, memory).0
    }

    #[cfg(feature = "flex")]
    fn trunk_fused(&self, x: Tensor<3>, starts: Tensor<2>, memory: Memory) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let span = self.span;
        check_memory_layout("Transformer", &self.window_shapes(b), &memory.shapes());
        let mut caches = memory.tensors;
        let valid0 = caches.pop().expect("checked layout");
        let dims = self.kernel_dims();
        let op = kernels::transformer::TransformerSequence {
            layout: kernels::transformer::Layout::new(&dims),
            dims,
            batch: b,
            steps: t,
            starts: host_values(starts),
            valid0: host_values(valid0),
        };
        let cache = Tensor::cat(
            caches
                .into_iter()
                .map(|c| c.reshape([b * span * d]))
                .collect(),
            0,
        );
        let out = kernels::apply(op, [self.flat_parameters(), x.reshape([b * t * d]), cache]);
        out.reshape([b, t, d])
    }

    fn step_reference(&self, obs: Tensor<2>, starts: Tensor<1>, memory: Memory) -> StepOutput {
        let [b, _] = obs.dims();
        let x = self.embed.forward(obs).reshape([b, 1, self.d_model]); // [B, 1, d]
        let (top, memory, _) = self.run(x, starts.reshape([b, 1]), memory);
        let (logits, value) = self.heads.forward(top.reshape([b, self.d_model])); // [B, A], [B]
        (logits, value.reshape([b]), memory)
    }

    /// The new keys and values are appended to the caches on the host.
    #[cfg(feature = "flex")]
    fn step_fused(&self, obs: Tensor<2>, starts: Tensor<1>, memory: Memory) -> StepOutput {
        let [b, _] = obs.dims();
        let device = obs.device();
        let (d, span) = (self.d_model, self.span);
        check_memory_layout("Transformer", &self.window_shapes(b), &memory.shapes());
        let dims = self.kernel_dims();
        let layout = kernels::transformer::Layout::new(&dims);
        let x0 = self.embed.forward(obs); // [B, d]
        let mut caches = memory.tensors;
        let valid = host_values(caches.pop().expect("checked layout"));
        // Read in place where the tensors allow it: the caches are the bulk of a step's data.
        let cache = kernels::host_tensors(caches);
        let cache: Vec<&[f32]> = cache.iter().map(kernels::HostTensor::values).collect();
        let starts = host_values(starts);
        let storage = kernels::host_tensors(self.parameter_tensors());
        let parts = kernels::param_parts(&storage);
        let (top, new_kv) = kernels::transformer::decode_step(
            &dims,
            &layout,
            &kernels::common::Params::Parts(parts),
            &host_values(x0),
            &starts,
            &cache,
            &valid,
        );
        // Slide every cache on the host: drop the oldest slot, append the new entry.
        let mut tensors = Vec::with_capacity(cache.len() + 1);
        for (l, kv) in new_kv.iter().enumerate() {
            for (half, old) in cache[2 * l..2 * l + 2].iter().enumerate() {
                let out = kernels::slide_window(old, (b, span, d), |r| &kv[(2 * r + half) * d..]);
                tensors.push(tensor3(out, [b, span, d], &device));
            }
        }
        let window = (&valid[..], &starts[..], span);
        fused_step_output(&self.heads, (top, d), window, tensors, &device)
    }

    fn step_with_attention(
        &self,
        obs: Tensor<2>,
        starts: Tensor<1>,
        memory: Memory,
    ) -> (StepOutput, Vec<Tensor<3>>) {
        let [b, _] = obs.dims();
        let x = self.embed.forward(obs).reshape([b, 1, self.d_model]); // [B, 1, d]
        let (top, memory, attention) = self.run(x, starts.reshape([b, 1]), memory);
        let (logits, value) = self.heads.forward(top.reshape([b, self.d_model])); // [B, A], [B]
        let attention = attention
            .into_iter()
            .map(|w| {
                let [b, h, _, keys] = w.dims();
                w.reshape([b, h, keys]) // [B, H, τ+1]
            })
            .collect();
        ((logits, value.reshape([b]), memory), attention)
    }
}

crate::kind_config! {
    /// The `transformer` kind's config: a [`Transformer`] (the policy config's fields for
    /// `kind = "transformer"`).
    pub struct TransformerSpec {
        /// Width of the embedding and of every layer's states.
        pub d_model: usize = 64,
        /// Attention heads per layer (a divisor of `d_model`).
        pub n_heads: usize = 4,
        /// Depth: blocks, each attending to the past states of the block below.
        pub n_layers: usize = 2,
        /// Hidden units of every block's feed-forward network.
        pub d_ff: usize = 256,
        /// The window: how many past steps each layer's states are kept and attended to.
        pub span: usize = 32,
        /// GTrXL-style gated residual connections instead of plain residuals.
        pub gating: bool = false,
    }
}

impl AttentionSpec for TransformerSpec {
    type Net = Transformer;

    /// 1 at 2 layers and span 16 (≈ 11k env steps/s at d = 64).
    const COST_FACTOR: f64 = 1.0;

    attention_spec_sizes!();

    /// With gating, each layer's two GRU-type gates add `2 · (6d² + d)`.
    fn extra_parameters(&self) -> f64 {
        let d = self.d_model as f64;
        if self.gating {
            self.n_layers as f64 * 2.0 * (6.0 * d * d + d)
        } else {
            0.0
        }
    }

    /// Attention scores `τ + 1` key slots per query on the fused path and when decoding; the
    /// reference path scores the whole cached prefix plus chunk (`τ + chunk`) and masks most
    /// of it.
    fn attention_flops_per_step(&self, chunk: usize, fused: bool) -> f64 {
        let span = self.span as f64;
        let keys = if fused || chunk == 1 {
            span + 1.0
        } else {
            span + chunk as f64
        };
        self.sizes().attention_flops(keys)
    }

    fn init_net(
        &self,
        obs: usize,
        actions: usize,
        device: &Device,
    ) -> Result<Self::Net, PolicyError> {
        Ok(TransformerConfig::new()
            .with_sizes(self.sizes())
            .with_gating(self.gating)
            .try_init(obs, actions, device)?)
    }
}
