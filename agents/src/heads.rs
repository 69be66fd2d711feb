//! Actor-critic output heads and CleanRL-style layer initialisation, shared by every policy.

use burn::module::Param;
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;

/// Gain of the policy (logits) output layer: small, so the initial policy is near uniform.
pub const POLICY_HEAD_GAIN: f64 = 0.01;
/// Gain of the value output layer.
pub const VALUE_HEAD_GAIN: f64 = 1.0;
/// Gain of hidden layers followed by `tanh` (CleanRL's `sqrt(2)`).
pub const HIDDEN_GAIN: f64 = std::f64::consts::SQRT_2;

/// A `Linear` layer `d_input → d_output` with an orthogonal weight of the given `gain` and a
/// zero bias (CleanRL's `layer_init`).
pub fn orthogonal_linear(d_input: usize, d_output: usize, gain: f64, device: &Device) -> Linear {
    let mut linear = LinearConfig::new(d_input, d_output)
        .with_bias(false)
        .with_initializer(Initializer::Orthogonal { gain })
        .init(device);
    linear.bias = Some(Param::from_tensor(Tensor::zeros([d_output], device)));
    linear
}

/// The two output layers of an actor-critic, the same for every policy: action logits
/// (orthogonal, gain 0.01, so the initial policy is near uniform) and a scalar value
/// (orthogonal, gain 1), both reading the same trunk features. A pre-LN trunk (the attention
/// policies) leaves its residual stream unnormalised, so its heads start with a final
/// LayerNorm ([`ActorCriticHeads::with_final_norm`]).
#[derive(Module, Debug)]
pub struct ActorCriticHeads {
    /// Normalises the trunk's output (pre-LN trunks only).
    pub norm: Option<LayerNorm>,
    /// Trunk features → action logits.
    pub policy: Linear,
    /// Trunk features → state value.
    pub value: Linear,
}

impl ActorCriticHeads {
    /// Heads reading `d_input` features and producing `num_actions` logits and one value.
    pub fn new(d_input: usize, num_actions: usize, device: &Device) -> Self {
        Self {
            norm: None,
            policy: orthogonal_linear(d_input, num_actions, POLICY_HEAD_GAIN, device),
            value: orthogonal_linear(d_input, 1, VALUE_HEAD_GAIN, device),
        }
    }

    /// [`ActorCriticHeads::new`] behind a final LayerNorm of width `d_input`.
    pub fn with_final_norm(d_input: usize, num_actions: usize, device: &Device) -> Self {
        Self {
            norm: Some(LayerNormConfig::new(d_input).init(device)),
            ..Self::new(d_input, num_actions, device)
        }
    }

    /// `[.., d_input]` → (logits `[.., A]`, value `[.., 1]`).
    fn apply<const D: usize>(&self, features: Tensor<D>) -> (Tensor<D>, Tensor<D>) {
        let x = match &self.norm {
            Some(norm) => norm.forward(features),
            None => features,
        };
        (self.policy.forward(x.clone()), self.value.forward(x))
    }

    /// Logits and values for a batch of feature vectors.
    ///
    /// # Shapes
    /// - `features`: `[N, d_input]`
    /// - returns `(logits [N, A], values [N])`
    pub fn forward(&self, features: Tensor<2>) -> (Tensor<2>, Tensor<1>) {
        let (logits, value) = self.apply(features); // [N, A], [N, 1]
        (logits, value.squeeze_dim::<1>(1))
    }

    /// Logits and values for a batch of feature sequences.
    ///
    /// # Shapes
    /// - `features`: `[B, T, d_input]`
    /// - returns `(logits [B, T, A], values [B, T])`
    pub fn forward_sequence(&self, features: Tensor<3>) -> (Tensor<3>, Tensor<2>) {
        let (logits, values) = self.apply(features); // [B, T, A], [B, T, 1]
        (logits, values.squeeze_dim::<2>(2))
    }
}
