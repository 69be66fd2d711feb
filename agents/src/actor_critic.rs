//! The actor-critic interface every policy implements.

use burn::prelude::*;

use crate::memory::{Memory, MemoryLayoutError};

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
    ///
    /// # Panics
    /// If `memory` does not have the layout [`ActorCritic::init_memory`] makes for `B` envs
    /// (or `starts` is not `[B]`); [`ActorCritic::try_step`] returns that as an error.
    fn step(&self, obs: Tensor<2>, starts: Tensor<1>, memory: Memory) -> StepOutput;

    /// The shapes of the memory [`ActorCritic::init_memory`] makes for `batch` envs. The
    /// provided version builds one on the default device and reads its shapes; policies
    /// override it with the arithmetic.
    fn memory_shapes(&self, batch: usize) -> Vec<[usize; 3]> {
        self.init_memory(batch, &Device::default()).shapes()
    }

    /// Checks that `memory` and `starts` fit a step of `batch` envs: the memory has the
    /// layout [`ActorCritic::init_memory`] makes for `batch` envs, and `starts` has `batch`
    /// entries.
    fn check_step_inputs(
        &self,
        batch: usize,
        starts: usize,
        memory: &Memory,
    ) -> Result<(), MemoryLayoutError> {
        let expected = self.memory_shapes(batch);
        let got = memory.shapes();
        if expected == got && starts == batch {
            return Ok(());
        }
        Err(MemoryLayoutError {
            batch,
            expected,
            got,
            starts,
        })
    }

    /// [`ActorCritic::step`] with its inputs checked first: a memory of another batch size
    /// or layout than this policy makes (e.g. one made by another policy, or for another
    /// number of envs) is an error naming the expected and actual shapes, not a panic.
    fn try_step(
        &self,
        obs: Tensor<2>,
        starts: Tensor<1>,
        memory: Memory,
    ) -> Result<StepOutput, MemoryLayoutError> {
        let [batch, _] = obs.dims();
        self.check_step_inputs(batch, starts.dims()[0], &memory)?;
        Ok(self.step(obs, starts, memory))
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Agent;
    use crate::distribution::ActionDist;
    use crate::kernels::{KERNELS_ENV, parse_kernels};
    use crate::policy::{Policy, PolicyConfig, PolicyError, PolicyKind};
    use crate::test_support::preset_with;

    fn small(kind: PolicyKind) -> PolicyConfig {
        let sizes = [
            ("d_model", 8),
            ("n_heads", 2),
            ("n_layers", 1),
            ("d_ff", 16),
            ("span", 4),
            ("hidden", 8),
        ];
        preset_with(kind, &sizes)
    }

    fn policy(kind: PolicyKind) -> Policy {
        small(kind).init(3, 2, &Device::flex()).unwrap()
    }

    fn obs(rows: usize) -> (Tensor<2>, Tensor<1>) {
        let device = Device::flex();
        (
            Tensor::zeros([rows, 3], &device),
            Tensor::zeros([rows], &device),
        )
    }

    #[test]
    fn try_step_takes_the_memory_init_memory_makes() {
        for kind in [
            PolicyKind::Feedback,
            PolicyKind::Transformer,
            PolicyKind::Gru,
            PolicyKind::Mlp,
        ] {
            let p = policy(kind);
            assert_eq!(
                p.memory_shapes(2),
                p.init_memory(2, &Device::flex()).shapes()
            );
            let (o, s) = obs(2);
            let (logits, values, next) =
                p.try_step(o, s, p.init_memory(2, &Device::flex())).unwrap();
            assert_eq!(logits.dims(), [2, 2]);
            assert_eq!(values.dims(), [2]);
            assert_eq!(next.shapes(), p.memory_shapes(2));
        }
    }

    #[test]
    fn try_step_names_both_shapes_for_a_memory_of_another_batch_or_policy() {
        let feedback = policy(PolicyKind::Feedback);
        let (o, s) = obs(3);
        let err = feedback
            .try_step(o, s, feedback.init_memory(2, &Device::flex()))
            .unwrap_err();
        assert_eq!(err.batch, 3);
        assert_eq!(err.expected, feedback.memory_shapes(3));
        assert_eq!(err.got, feedback.memory_shapes(2));
        let msg = err.to_string();
        assert!(msg.contains(&format!("{:?}", err.expected)), "{msg}");
        assert!(msg.contains(&format!("{:?}", err.got)), "{msg}");

        let gru = policy(PolicyKind::Gru);
        let (o, s) = obs(2);
        let err = feedback
            .try_step(o, s, gru.init_memory(2, &Device::flex()))
            .unwrap_err();
        assert_eq!(err.got, gru.memory_shapes(2));

        // `starts` of another length than the observations.
        let (o, _) = obs(2);
        let (_, s) = obs(1);
        let err = gru
            .try_step(o, s, gru.init_memory(2, &Device::flex()))
            .unwrap_err();
        assert_eq!(err.starts, 1);
    }

    #[test]
    fn an_agent_refuses_the_memory_of_another_policy_and_keeps_its_own() {
        let dist = ActionDist::Categorical { n: 2 };
        let agent = |kind| Agent::from_policy(policy(kind), &small(kind), 3, &dist, None).unwrap();
        let (feedback, gru) = (agent(PolicyKind::Feedback), agent(PolicyKind::Gru));
        let mut foreign = gru.initial_memory(2);
        let err = feedback.act(&[0.0; 6], &mut foreign, true).unwrap_err();
        assert!(matches!(err, PolicyError::BadInput(_)), "{err}");
        assert!(err.to_string().contains("expected"), "{err}");
        // The failed call left the memory usable by its own agent.
        gru.act(&[0.0; 6], &mut foreign, true).unwrap();
    }

    #[test]
    fn a_bad_kernel_choice_is_an_error_naming_the_variable_and_the_choices() {
        assert_eq!(parse_kernels(None), Ok(true));
        assert_eq!(parse_kernels(Some("fused")), Ok(true));
        assert_eq!(parse_kernels(Some("reference")), Ok(false));
        let err = parse_kernels(Some("fast")).unwrap_err();
        let msg = PolicyError::from(err).to_string();
        for part in [KERNELS_ENV, "fast", "fused", "reference"] {
            assert!(msg.contains(part), "{msg}");
        }
    }
}
