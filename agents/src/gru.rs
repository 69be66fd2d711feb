//! The recurrent baseline: an observation embedding, a stack of GRU cells, actor-critic heads.

use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::sigmoid;

use crate::actor_critic::{ActorCritic, SequenceOutput, StepOutput};
use crate::heads::{ActorCriticHeads, HIDDEN_GAIN, orthogonal_linear};
#[cfg(feature = "flex")]
use crate::kernels;
use crate::memory::Memory;
use crate::policy::PolicyError;

/// Configuration of [`GruPolicy`].
#[derive(Config, Debug)]
pub struct GruConfig {
    /// Width of the observation embedding and of each GRU hidden state.
    #[config(default = 64)]
    pub d_model: usize,
    /// Number of stacked GRU cells (each reads the output of the one below).
    #[config(default = 1)]
    pub n_layers: usize,
}

impl GruConfig {
    /// A GRU policy reading `obs_dim` features and choosing among `num_actions` actions.
    pub fn init(&self, obs_dim: usize, num_actions: usize, device: &Device) -> GruPolicy {
        let d = self.d_model;
        GruPolicy {
            embed: orthogonal_linear(obs_dim, d, HIDDEN_GAIN, device),
            cells: (0..self.n_layers)
                .map(|_| GruCell::new(d, d, device))
                .collect(),
            heads: ActorCriticHeads::new(d, num_actions, device),
        }
    }
}

/// One GRU cell (PyTorch's gate layout: reset `r`, update `z`, candidate `n`):
///
/// ```text
/// r = σ(W_ir x + b_ir + W_hr h + b_hr)
/// z = σ(W_iz x + b_iz + W_hz h + b_hz)
/// n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
/// h' = (1 − z) ⊙ n + z ⊙ h
/// ```
///
/// The input projection is separate from the recurrence so that a whole sequence's inputs can
/// be projected in one matrix product and only the `h` path is unrolled step by step.
#[derive(Module, Debug)]
pub struct GruCell {
    /// Input → the three gate pre-activations `[r | z | n]`, `d_input → 3·d_hidden`.
    pub input: Linear,
    /// Hidden state → the three gate pre-activations `[r | z | n]`, `d_hidden → 3·d_hidden`.
    pub hidden: Linear,
}

impl GruCell {
    /// A cell with orthogonal weights (gain 1) and zero biases.
    pub fn new(d_input: usize, d_hidden: usize, device: &Device) -> Self {
        Self {
            input: orthogonal_linear(d_input, 3 * d_hidden, 1.0, device),
            hidden: orthogonal_linear(d_hidden, 3 * d_hidden, 1.0, device),
        }
    }

    /// One step from already projected inputs.
    ///
    /// # Shapes
    /// - `x_proj`: `[B, 3·d]` (the output of `self.input`), `h`: `[B, d]`
    /// - returns the new hidden state `[B, d]`
    pub fn step_projected(&self, x_proj: Tensor<2>, h: Tensor<2>) -> Tensor<2> {
        let h_proj = self.hidden.forward(h.clone()); // [B, 3d]
        let [xr, xz, xn]: [Tensor<2>; 3] = x_proj.chunk(3, 1).try_into().expect("3 gate chunks");
        let [hr, hz, hn]: [Tensor<2>; 3] = h_proj.chunk(3, 1).try_into().expect("3 gate chunks");
        let r = sigmoid(xr + hr); // [B, d]
        let z = sigmoid(xz + hz); // [B, d]
        let n = (xn + r * hn).tanh(); // [B, d]
        n.clone() + z * (h - n) // [B, d] = (1 − z)·n + z·h
    }
}

/// GRU actor-critic: `obs → tanh(Linear) → GRU cells → (logits, value)`.
///
/// Memory: one tensor `[B, n_layers, d_model]`, the hidden state of every cell. An env's
/// hidden state is multiplied by `1 − episode_start` before the step, so a new episode starts
/// from zeros and no gradient crosses the boundary.
#[derive(Module, Debug)]
pub struct GruPolicy {
    /// Observation embedding, `obs_dim → d_model`.
    pub embed: Linear,
    /// The stacked GRU cells, bottom first.
    pub cells: Vec<GruCell>,
    /// Policy and value output layers.
    pub heads: ActorCriticHeads,
}

impl GruPolicy {
    /// Width of the hidden state.
    pub fn d_model(&self) -> usize {
        self.heads.value.weight.dims()[0]
    }

    /// The hidden state held in `memory`, checked against this policy's layout.
    ///
    /// # Panics
    /// If `memory` is not one tensor `[batch, n_layers, d_model]` (a memory made by another
    /// policy, or for another batch): a caller bug, reported with both layouts.
    fn hidden_state(&self, memory: Memory, batch: usize) -> Tensor<3> {
        let expected = vec![[batch, self.cells.len(), self.d_model()]];
        assert_eq!(
            memory.shapes(),
            expected,
            "GruPolicy: the memory's shapes differ from the ones init_memory({batch}) makes"
        );
        memory.tensors.into_iter().next().expect("checked above")
    }

    /// [`ActorCritic::step`] with tensor operations, from the hidden state `h` `[B, L, d]`.
    fn step_reference(&self, obs: Tensor<2>, starts: Tensor<1>, h: Tensor<3>) -> StepOutput {
        let [b, _] = obs.dims();
        let keep = (starts.neg() + 1.0).reshape([b, 1, 1]); // [B, 1, 1]
        let h = h * keep; // [B, L, d]
        let mut x = self.embed.forward(obs).tanh(); // [B, d]
        let mut new_h = Vec::with_capacity(self.cells.len());
        for (l, cell) in self.cells.iter().enumerate() {
            let h_l = h.clone().narrow(1, l, 1).squeeze_dim::<2>(1); // [B, d]
            x = cell.step_projected(cell.input.forward(x), h_l); // [B, d]
            new_h.push(x.clone());
        }
        let (logits, value) = self.heads.forward(x); // [B, A], [B]
        let memory = Memory {
            tensors: vec![Tensor::stack(new_h, 1)], // [B, L, d]
        };
        (logits, value, memory)
    }

    /// [`ActorCritic::forward_sequence`] with tensor operations, from the hidden state `h0`
    /// `[B, L, d]` (not detached here: gradients reach it).
    fn forward_sequence_reference(
        &self,
        obs: Tensor<3>,
        episode_start: Tensor<2>,
        h0: Tensor<3>,
    ) -> (Tensor<3>, Tensor<2>) {
        let [_, t, _] = obs.dims();
        let keep = episode_start.neg() + 1.0; // [B, T]
        // Layer by layer: the inputs of a layer over the whole sequence are known once the layer
        // below has run, so their projection is one batched product; only `h` is unrolled.
        let mut x = self.embed.forward(obs).tanh(); // [B, T, d]
        for (l, cell) in self.cells.iter().enumerate() {
            let x_proj = cell.input.forward(x); // [B, T, 3d]
            let mut h = h0.clone().narrow(1, l, 1).squeeze_dim::<2>(1); // [B, d]
            let mut outputs = Vec::with_capacity(t);
            for step in 0..t {
                let keep_t = keep.clone().narrow(1, step, 1); // [B, 1]
                let x_t = x_proj.clone().narrow(1, step, 1).squeeze_dim::<2>(1); // [B, 3d]
                h = cell.step_projected(x_t, h * keep_t); // [B, d]
                outputs.push(h.clone());
            }
            x = Tensor::stack(outputs, 1); // [B, T, d]
        }
        self.heads.forward_sequence(x) // [B, T, A], [B, T]
    }

    /// Every cell's parameters in one vector, the layout of [`kernels::gru::GruStack`].
    #[cfg(feature = "flex")]
    fn packed_cell_params(&self) -> Tensor<1> {
        let mut parts = Vec::with_capacity(4 * self.cells.len());
        for cell in &self.cells {
            for linear in [&cell.input, &cell.hidden] {
                let weight = linear.weight.val();
                let [d_in, d_out] = weight.dims();
                parts.push(weight.reshape([d_in * d_out]));
                parts.push(match &linear.bias {
                    Some(bias) => bias.val(),
                    None => Tensor::zeros([d_out], &linear.weight.device()),
                });
            }
        }
        Tensor::cat(parts, 0)
    }

    /// [`Self::step_reference`] through the fused GRU kernel.
    #[cfg(feature = "flex")]
    fn step_fused(&self, obs: Tensor<2>, starts: Tensor<1>, h: Tensor<3>) -> StepOutput {
        let [b, _] = obs.dims();
        let d = self.d_model();
        // The kernel applies the embedding's tanh.
        let e = self.embed.forward(obs).reshape([b, 1, d]); // [B, 1, d]
        let (top, last) =
            kernels::gru::gru_stack(e, self.packed_cell_params(), h, starts.reshape([b, 1])); // [B, 1, d], [B, L, d]
        let (logits, value) = self.heads.forward(top.reshape([b, d])); // [B, A], [B]
        let memory = Memory {
            tensors: vec![last],
        };
        (logits, value, memory)
    }

    /// [`Self::forward_sequence_reference`] through the fused GRU kernel.
    #[cfg(feature = "flex")]
    fn forward_sequence_fused(
        &self,
        obs: Tensor<3>,
        episode_start: Tensor<2>,
        h0: Tensor<3>,
    ) -> (Tensor<3>, Tensor<2>) {
        // The kernel applies the embedding's tanh.
        let e = self.embed.forward(obs); // [B, T, d]
        let (top, _) = kernels::gru::gru_stack(e, self.packed_cell_params(), h0, episode_start); // [B, T, d]
        self.heads.forward_sequence(top) // [B, T, A], [B, T]
    }
}

impl ActorCritic for GruPolicy {
    fn init_memory(&self, batch: usize, device: &Device) -> Memory {
        Memory {
            tensors: vec![Tensor::zeros(
                [batch, self.cells.len(), self.d_model()],
                device,
            )],
        }
    }

    fn memory_shapes(&self, batch: usize) -> Vec<[usize; 3]> {
        vec![[batch, self.cells.len(), self.d_model()]]
    }

    fn step(&self, obs: Tensor<2>, starts: Tensor<1>, memory: Memory) -> StepOutput {
        let [b, _] = obs.dims();
        let h = self.hidden_state(memory, b); // [B, L, d]
        #[cfg(feature = "flex")]
        if kernels::runs_fused(&obs.device()) {
            return self.step_fused(obs, starts, h);
        }
        self.step_reference(obs, starts, h)
    }

    fn forward_sequence(&self, obs: Tensor<3>, starts: Tensor<2>, m0: Memory) -> SequenceOutput {
        let [b, _, _] = obs.dims();
        // Truncated BPTT: the sequence starts from the memory as a constant.
        let h0 = self.hidden_state(m0.detach(), b); // [B, L, d]
        #[cfg(feature = "flex")]
        if kernels::runs_fused(&obs.device()) {
            return self.forward_sequence_fused(obs, starts, h0);
        }
        self.forward_sequence_reference(obs, starts, h0)
    }

    fn num_parameters(&self) -> usize {
        self.num_params()
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests;

crate::kind_config! {
    /// The `gru` kind's config: a [`GruPolicy`] (the policy config's fields for
    /// `kind = "gru"`).
    pub struct GruSpec {
        /// Model width: embedding and hidden-state size.
        pub d_model: usize = 64,
        /// Number of stacked GRU cells.
        pub n_layers: usize = 1,
    }
}

impl crate::policy_spec::PolicySpec for GruSpec {
    type Net = GruPolicy;

    fn validate(&self) -> Result<(), PolicyError> {
        crate::policy::at_least_one(&[("d_model", self.d_model), ("n_layers", self.n_layers)])
    }

    /// Embedding, per cell the input and hidden projections `d → 3d` with biases, heads.
    fn approx_parameters(&self, obs_dim: usize, num_actions: usize) -> f64 {
        let d = self.d_model as f64;
        obs_dim as f64 * d
            + d
            + self.n_layers as f64 * 2.0 * (3.0 * d * d + 3.0 * d)
            + crate::policy_spec::heads_parameters(d, num_actions)
    }

    /// Per env the hidden state of every cell; per update step the gates and states.
    fn footprint(&self) -> crate::policy_spec::MemoryFootprint {
        let (d, layers) = (self.d_model as f64, self.n_layers as f64);
        crate::policy_spec::MemoryFootprint {
            memory_per_env: layers * d,
            activations_per_step: layers * d * 12.0,
        }
    }

    /// ≈ 32k env steps/s at d = 64.
    fn relative_cost(&self) -> f64 {
        0.35
    }

    fn depth(&self) -> usize {
        self.n_layers
    }

    fn with_width(&self, units: usize) -> Self {
        Self {
            d_model: units,
            ..self.clone()
        }
    }

    fn build(&self, obs: usize, actions: usize, device: &Device) -> Result<Self::Net, PolicyError> {
        Ok(GruConfig::new()
            .with_d_model(self.d_model)
            .with_n_layers(self.n_layers)
            .init(obs, actions, device))
    }
}
