//! [`RolloutBuffer`]: one rollout of `T` steps from `N` envs, plus the memory each env started
//! it with.

use crate::memory::Memory;

use super::gae::{GaeInputs, compute_gae};

/// One rollout, stored on the host, time-major `[T, N]` (index `t * N + i`).
///
/// Besides the usual PPO arrays it keeps what a memory policy needs to recompute the rollout
/// in the update: `episode_starts` (1.0 where the memory was reset before step `t`) and
/// `memory0`, the (detached) memory each env had *before* step 0. Replaying
/// `forward_sequence(obs[i, 0..T], episode_starts[i, 0..T], memory0[i])` gives the same logits
/// and values as the rollout did (truncated BPTT over the rollout).
#[derive(Clone, Debug)]
pub struct RolloutBuffer {
    /// Number of time steps `T`.
    pub num_steps: usize,
    /// Number of envs `N`.
    pub num_envs: usize,
    /// Length of one observation.
    pub obs_dim: usize,
    /// Observations `[T, N, obs_dim]`.
    pub obs: Vec<f32>,
    /// Actions taken `[T, N]`.
    pub actions: Vec<i64>,
    /// Log-probability of the action under the rollout policy `[T, N]`.
    pub logprobs: Vec<f32>,
    /// Rewards `[T, N]`.
    pub rewards: Vec<f32>,
    /// The transition at `t` ended its episode with a real termination `[T, N]`.
    pub terminated: Vec<bool>,
    /// The transition at `t` ended its episode by the time limit `[T, N]`.
    pub truncated: Vec<bool>,
    /// Value estimates `V(s_t)` `[T, N]`.
    pub values: Vec<f32>,
    /// `V(final_obs)` where `truncated`, else 0 `[T, N]`.
    pub truncation_values: Vec<f32>,
    /// 1.0 where the policy memory was reset before step `t` `[T, N]`.
    pub episode_starts: Vec<f32>,
    /// Value of the observation following the last step `[N]`.
    pub last_values: Vec<f32>,
    /// The detached memory of each env before step 0 (batch `N`).
    pub memory0: Memory,
    /// GAE advantages `[T, N]` (after [`RolloutBuffer::compute_advantages`]).
    pub advantages: Vec<f32>,
    /// Value targets `advantages + values` `[T, N]`.
    pub returns: Vec<f32>,
}

impl RolloutBuffer {
    /// An empty buffer for `num_steps` × `num_envs` transitions, starting from `memory0`.
    pub fn new(num_steps: usize, num_envs: usize, obs_dim: usize, memory0: Memory) -> Self {
        let len = num_steps * num_envs;
        Self {
            num_steps,
            num_envs,
            obs_dim,
            obs: Vec::with_capacity(len * obs_dim),
            actions: Vec::with_capacity(len),
            logprobs: Vec::with_capacity(len),
            rewards: Vec::with_capacity(len),
            terminated: Vec::with_capacity(len),
            truncated: Vec::with_capacity(len),
            values: Vec::with_capacity(len),
            truncation_values: Vec::with_capacity(len),
            episode_starts: Vec::with_capacity(len),
            last_values: vec![0.0; num_envs],
            memory0,
            advantages: vec![],
            returns: vec![],
        }
    }

    /// Fills `advantages` and `returns` with GAE(γ, λ) (see [`compute_gae`]).
    pub fn compute_advantages(&mut self, gamma: f32, lambda: f32) {
        let (adv, ret) = compute_gae(&GaeInputs {
            num_steps: self.num_steps,
            num_envs: self.num_envs,
            rewards: &self.rewards,
            values: &self.values,
            terminated: &self.terminated,
            truncated: &self.truncated,
            truncation_values: &self.truncation_values,
            last_values: &self.last_values,
            gamma,
            lambda,
        });
        self.advantages = adv;
        self.returns = ret;
    }

    /// Gathers a `[T, N, width]` array into env-major `[B, T, width]` for the envs `envs`
    /// (a minibatch of whole env sequences).
    pub fn env_major<X: Copy>(&self, data: &[X], width: usize, envs: &[usize]) -> Vec<X> {
        let (t_len, n) = (self.num_steps, self.num_envs);
        debug_assert_eq!(data.len(), t_len * n * width);
        let mut out = Vec::with_capacity(envs.len() * t_len * width);
        for &i in envs {
            for t in 0..t_len {
                let k = (t * n + i) * width;
                out.extend_from_slice(&data[k..k + width]);
            }
        }
        out
    }
}
