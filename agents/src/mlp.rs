//! The memoryless baseline: a two-hidden-layer `tanh` MLP actor-critic.

use burn::nn::Linear;
use burn::prelude::*;

use crate::actor_critic::{ActorCritic, SequenceOutput, StepOutput};
use crate::heads::{ActorCriticHeads, HIDDEN_GAIN, orthogonal_linear};
use crate::memory::Memory;

/// Configuration of [`MlpPolicy`].
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Width of each of the two hidden layers.
    #[config(default = 64)]
    pub hidden: usize,
}

impl MlpConfig {
    /// An MLP reading `obs_dim` features and choosing among `num_actions` actions.
    pub fn init(&self, obs_dim: usize, num_actions: usize, device: &Device) -> MlpPolicy {
        MlpPolicy {
            layer1: orthogonal_linear(obs_dim, self.hidden, HIDDEN_GAIN, device),
            layer2: orthogonal_linear(self.hidden, self.hidden, HIDDEN_GAIN, device),
            heads: ActorCriticHeads::new(self.hidden, num_actions, device),
        }
    }
}

/// Memoryless actor-critic: `obs → tanh(Linear) → tanh(Linear) → (logits, value)`.
///
/// Its memory is [`Memory::empty`]; `episode_start` has no effect. It is the floor every
/// policy with memory should beat on a partially observable task.
#[derive(Module, Debug)]
pub struct MlpPolicy {
    /// First hidden layer, `obs_dim → hidden`.
    pub layer1: Linear,
    /// Second hidden layer, `hidden → hidden`.
    pub layer2: Linear,
    /// Policy and value output layers.
    pub heads: ActorCriticHeads,
}

impl MlpPolicy {
    /// Trunk features of a batch of observations.
    ///
    /// # Shapes
    /// - `obs`: `[N, obs_dim]`, returns `[N, hidden]`
    fn trunk(&self, obs: Tensor<2>) -> Tensor<2> {
        let x = self.layer1.forward(obs).tanh(); // [N, hidden]
        self.layer2.forward(x).tanh() // [N, hidden]
    }
}

impl ActorCritic for MlpPolicy {
    fn init_memory(&self, _batch: usize, _device: &Device) -> Memory {
        Memory::empty()
    }

    fn step(&self, obs: Tensor<2>, _starts: Tensor<1>, memory: Memory) -> StepOutput {
        let (logits, value) = self.heads.forward(self.trunk(obs)); // [B, A], [B]
        (logits, value, memory)
    }

    fn forward_sequence(&self, obs: Tensor<3>, _starts: Tensor<2>, _m: Memory) -> SequenceOutput {
        let [b, t, d] = obs.dims();
        let features = self.trunk(obs.reshape([b * t, d])); // [B*T, hidden]
        let (logits, values) = self.heads.forward(features); // [B*T, A], [B*T]
        let a = logits.dims()[1];
        (logits.reshape([b, t, a]), values.reshape([b, t]))
    }

    fn num_parameters(&self) -> usize {
        self.num_params()
    }
}
