//! The memoryless baseline: a two-hidden-layer `tanh` MLP actor-critic.

use burn::nn::Linear;
use burn::prelude::*;

use crate::actor_critic::{ActorCritic, SequenceOutput, StepOutput};
use crate::heads::{ActorCriticHeads, HIDDEN_GAIN, orthogonal_linear};
#[cfg(feature = "flex")]
use crate::kernels;
use crate::memory::Memory;
use crate::policy::PolicyError;

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

    /// Logits and values of a batch of observations: the trunk and the heads, through the
    /// fused MLP kernel where it applies ([`kernels::runs_fused`]), else with tensor
    /// operations (the reference).
    ///
    /// # Shapes
    /// - `obs`: `[N, obs_dim]`, returns `(logits [N, A], values [N])`
    fn forward_rows(&self, obs: Tensor<2>) -> (Tensor<2>, Tensor<1>) {
        #[cfg(feature = "flex")]
        if self.heads.norm.is_none() && kernels::runs_fused(&obs.device()) {
            return self.forward_rows_fused(obs);
        }
        self.forward_rows_reference(obs)
    }

    /// [`Self::forward_rows`] with tensor operations.
    fn forward_rows_reference(&self, obs: Tensor<2>) -> (Tensor<2>, Tensor<1>) {
        self.heads.forward(self.trunk(obs)) // [N, A], [N]
    }

    /// [`Self::forward_rows`] through the fused MLP kernel (heads without a final norm).
    #[cfg(feature = "flex")]
    fn forward_rows_fused(&self, obs: Tensor<2>) -> (Tensor<2>, Tensor<1>) {
        let (policy, value) = (&self.heads.policy, &self.heads.value);
        kernels::mlp::mlp_forward(obs, [&self.layer1, &self.layer2, policy, value]) // [N, A], [N]
    }
}

impl ActorCritic for MlpPolicy {
    fn init_memory(&self, _batch: usize, _device: &Device) -> Memory {
        Memory::empty()
    }

    fn memory_shapes(&self, _batch: usize) -> Vec<[usize; 3]> {
        vec![]
    }

    fn step(&self, obs: Tensor<2>, _starts: Tensor<1>, memory: Memory) -> StepOutput {
        let (logits, value) = self.forward_rows(obs); // [B, A], [B]
        (logits, value, memory)
    }

    fn forward_sequence(&self, obs: Tensor<3>, _starts: Tensor<2>, _m: Memory) -> SequenceOutput {
        let [b, t, d] = obs.dims();
        let (logits, values) = self.forward_rows(obs.reshape([b * t, d])); // [B*T, A], [B*T]
        let a = logits.dims()[1];
        (logits.reshape([b, t, a]), values.reshape([b, t]))
    }

    fn num_parameters(&self) -> usize {
        self.num_params()
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::tensor::Gradients;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::kernels::mlp::MLP_ROWS_PER_BLOCK;
    use crate::test_support::{
        assert_each_close_and_nonzero, host, in_pool, random_tensor, randomize,
    };

    const OBS_DIM: usize = 7;
    const HIDDEN: usize = 16;
    const NUM_ACTIONS: usize = 5;

    /// A policy whose every weight and bias is random (the heads' biases start at zero).
    fn random_policy(seed: u64, device: &Device) -> MlpPolicy {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut policy = MlpConfig::new()
            .with_hidden(HIDDEN)
            .init(OBS_DIM, NUM_ACTIONS, device);
        for linear in [
            &mut policy.layer1,
            &mut policy.layer2,
            &mut policy.heads.policy,
            &mut policy.heads.value,
        ] {
            let scale = 1.5 / (linear.weight.dims()[0] as f32).sqrt();
            randomize(linear, scale, &mut rng, device);
        }
        policy
    }

    /// The gradient of every weight and bias, in module order.
    fn param_grads(policy: &MlpPolicy, grads: &Gradients) -> Vec<Vec<f32>> {
        let mut out = Vec::new();
        for linear in [
            &policy.layer1,
            &policy.layer2,
            &policy.heads.policy,
            &policy.heads.value,
        ] {
            out.push(host(
                linear.weight.val().grad(grads).expect("weight gradient"),
            ));
            let bias = linear.bias.as_ref().expect("bias").val();
            out.push(host(bias.grad(grads).expect("bias gradient")));
        }
        out
    }

    /// Logits, values, the observations' gradient and every parameter's gradient of a random
    /// weighted sum of the outputs, on the fused path or the reference.
    fn run(fused: bool, rows: usize, seed: u64) -> Vec<Vec<f32>> {
        let device = Device::flex().autodiff();
        let policy = random_policy(seed, &device);
        let mut rng = ChaCha8Rng::seed_from_u64(seed + 1);
        let obs = random_tensor([rows, OBS_DIM], 2.0, &mut rng, &device).require_grad();
        let w_logits = random_tensor([rows, NUM_ACTIONS], 1.0, &mut rng, &device);
        let w_values = random_tensor([rows], 1.0, &mut rng, &device);
        let (logits, values) = if fused {
            policy.forward_rows_fused(obs.clone())
        } else {
            policy.forward_rows_reference(obs.clone())
        };
        let loss = (logits.clone() * w_logits).sum() + (values.clone() * w_values).sum();
        let grads = loss.backward();
        let mut out = vec![
            host(logits),
            host(values),
            host(obs.grad(&grads).expect("observation gradient")),
        ];
        out.extend(param_grads(&policy, &grads));
        out
    }

    #[test]
    fn the_fused_mlp_matches_the_reference() {
        let names = [
            "logits", "values", "d obs", "d W1", "d b1", "d W2", "d b2", "d Wp", "d bp", "d Wv",
            "d bv",
        ];
        // One row, one partial block, and two full blocks and a partial one.
        for rows in [1, 37, 2 * MLP_ROWS_PER_BLOCK + 3] {
            let fused = run(true, rows, 7);
            let reference = run(false, rows, 7);
            let outputs = names.iter().zip(&fused).zip(&reference);
            assert_each_close_and_nonzero(
                &format!("{rows} rows"),
                outputs.map(|((name, f), r)| (name.to_string(), &f[..], &r[..])),
            );
        }
    }

    #[test]
    fn the_fused_mlp_is_bitwise_the_same_for_any_number_of_threads() {
        let rows = 2 * MLP_ROWS_PER_BLOCK + 3;
        let with = |threads| in_pool(threads, || run(true, rows, 11));
        let one = with(1);
        assert_eq!(one, with(2));
        assert!(one.iter().flatten().all(|v| v.is_finite()));
    }

    #[test]
    fn a_step_gives_the_rows_of_the_sequence() {
        let device = Device::flex();
        let policy = random_policy(3, &device);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let obs = random_tensor([3, 4, OBS_DIM], 1.0, &mut rng, &device);
        let starts = Tensor::zeros([3, 4], &device);
        let (logits, values) = policy.forward_sequence(obs.clone(), starts, Memory::empty());
        let (logits, values) = (host(logits), host(values));
        for t in 0..4 {
            let x = obs.clone().narrow(1, t, 1).reshape([3, OBS_DIM]);
            let (l, v, _) = policy.step(x, Tensor::zeros([3], &device), Memory::empty());
            let (l, v) = (host(l), host(v));
            for b in 0..3 {
                assert_eq!(v[b], values[b * 4 + t]);
                let row = (b * 4 + t) * NUM_ACTIONS;
                assert_eq!(
                    l[b * NUM_ACTIONS..(b + 1) * NUM_ACTIONS],
                    logits[row..row + NUM_ACTIONS]
                );
            }
        }
    }
}

crate::kind_config! {
    /// The `mlp` kind's config: an [`MlpPolicy`] (the policy config's fields for
    /// `kind = "mlp"`).
    pub struct MlpSpec {
        /// Width of the two hidden layers.
        pub hidden: usize = 64,
    }
}

impl crate::policy_spec::PolicySpec for MlpSpec {
    type Net = MlpPolicy;

    fn validate(&self) -> Result<(), PolicyError> {
        crate::policy::at_least_one(&[("hidden", self.hidden)])
    }

    /// Two hidden layers with biases, then the heads.
    fn approx_parameters(&self, obs_dim: usize, num_actions: usize) -> f64 {
        let h = self.hidden as f64;
        obs_dim as f64 * h + h + h * h + h + crate::policy_spec::heads_parameters(h, num_actions)
    }

    /// No memory; per update step the two hidden layers.
    fn footprint(&self) -> crate::policy_spec::MemoryFootprint {
        crate::policy_spec::MemoryFootprint {
            memory_per_env: 0.0,
            activations_per_step: self.hidden as f64 * 6.0,
        }
    }

    /// ≈ 145k env steps/s at width 64.
    fn relative_cost(&self) -> f64 {
        0.08
    }

    /// The two hidden layers.
    fn depth(&self) -> usize {
        2
    }

    fn with_width(&self, units: usize) -> Self {
        Self { hidden: units }
    }

    fn build(&self, obs: usize, actions: usize, device: &Device) -> Result<Self::Net, PolicyError> {
        Ok(MlpConfig::new()
            .with_hidden(self.hidden)
            .init(obs, actions, device))
    }
}
