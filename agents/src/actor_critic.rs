//! The actor-critic interface every policy implements.

use burn::prelude::*;

use crate::memory::Memory;

/// What [`ActorCritic::step`] returns: logits `[B, A]`, values `[B]`, the memory after the step.
pub type StepOutput = (Tensor<2>, Tensor<1>, Memory);

/// What [`ActorCritic::forward_sequence`] returns: logits `[B, T, A]`, values `[B, T]`.
pub type SequenceOutput = (Tensor<3>, Tensor<2>);

/// An actor-critic with explicit memory: a trunk, a policy head (action logits) and a value
/// head. The caller holds one [`Memory`] per batch of envs and passes it back each step.
pub trait ActorCritic {
    /// A fresh (empty) memory for `batch` envs on `device`.
    fn init_memory(&self, batch: usize, device: &Device) -> Memory;

    /// One time step for a batch of envs.
    ///
    /// The memory of the envs whose `starts` entry is 1.0 (a new episode starts at this step)
    /// is reset before the step, so nothing from their previous episode reaches the output.
    ///
    /// # Shapes
    /// - `obs`: `[B, obs_dim]`
    /// - `starts`: `[B]` (1.0 where a new episode starts at this step, else 0.0)
    /// - returns `(logits [B, A], value [B], memory')`
    fn step(&self, obs: Tensor<2>, starts: Tensor<1>, memory: Memory) -> StepOutput;

    /// The differentiable version of `T` calls to [`ActorCritic::step`], used by the PPO update.
    /// Starts from `memory0`, the (detached) memory the envs had before the first step.
    /// Returns the same logits and values as stepping one at a time.
    ///
    /// # Shapes
    /// - `obs`: `[B, T, obs_dim]`
    /// - `starts`: `[B, T]` (episode starts)
    /// - returns `(logits [B, T, A], values [B, T])`
    fn forward_sequence(
        &self,
        obs: Tensor<3>,
        starts: Tensor<2>,
        memory0: Memory,
    ) -> SequenceOutput;

    /// Number of trainable parameters.
    fn num_parameters(&self) -> usize;
}
