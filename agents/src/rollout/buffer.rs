//! [`RolloutBuffer`]: one rollout of `T` steps from `N` envs, plus the memory each env started
//! it with.

use burn::prelude::*;
use burn::tensor::TensorData;

use crate::distribution::ActionDist;
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
    /// The distribution the actions were sampled from.
    pub dist: ActionDist,
    /// Actions taken `[T, N, action_width]`: indices (exact integers) for the discrete
    /// spaces, the unclipped samples for a Gaussian.
    pub actions: Vec<f32>,
    /// The action masks the actions were sampled under `[T, N, mask_width]` (`true` =
    /// allowed); empty when the envs give no masks.
    pub masks: Vec<bool>,
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
    /// Length `L` of the sequences the update replays (divides `num_steps`; `num_steps` =
    /// whole rollouts).
    pub seq_len: usize,
    /// The detached memory of each env before steps `L, 2L, …` (batch `N` each): where the
    /// update's later sequences start.
    pub chunk_memories: Vec<Memory>,
    /// GAE advantages `[T, N]` (after [`RolloutBuffer::compute_advantages`]).
    pub advantages: Vec<f32>,
    /// Value targets `advantages + values` `[T, N]`.
    pub returns: Vec<f32>,
    /// The envs' named step scalars ([`envs::Info::scalars`]) over the rollout: per name,
    /// in order of first appearance, the sum of its values and the number of steps that
    /// reported it.
    pub info_scalars: Vec<(&'static str, f64, u64)>,
}

/// The `[T, N_p, width]` (time-major) arrays `get` reads from each of `parts`, as one
/// `[T, ΣN_p, width]` array: at every step the parts' envs side by side, part 0's first.
fn interleave_envs<X: Copy>(
    parts: &[RolloutBuffer],
    t_len: usize,
    width: usize,
    get: &dyn Fn(&RolloutBuffer) -> &[X],
) -> Vec<X> {
    let n: usize = parts.iter().map(|p| p.num_envs).sum();
    let mut out = Vec::with_capacity(t_len * n * width);
    for t in 0..t_len {
        for p in parts {
            let row = p.num_envs * width;
            out.extend_from_slice(&get(p)[t * row..(t + 1) * row]);
        }
    }
    out
}

impl RolloutBuffer {
    /// An empty buffer for `num_steps` × `num_envs` transitions of actions from `dist`,
    /// starting from `memory0`.
    pub fn new(
        num_steps: usize,
        num_envs: usize,
        obs_dim: usize,
        dist: ActionDist,
        memory0: Memory,
    ) -> Self {
        let len = num_steps * num_envs;
        Self {
            num_steps,
            num_envs,
            obs_dim,
            obs: Vec::with_capacity(len * obs_dim),
            actions: Vec::with_capacity(len * dist.action_width()),
            dist,
            masks: Vec::new(),
            logprobs: Vec::with_capacity(len),
            rewards: Vec::with_capacity(len),
            terminated: Vec::with_capacity(len),
            truncated: Vec::with_capacity(len),
            values: Vec::with_capacity(len),
            truncation_values: Vec::with_capacity(len),
            episode_starts: Vec::with_capacity(len),
            last_values: vec![0.0; num_envs],
            memory0,
            seq_len: num_steps,
            chunk_memories: Vec::new(),
            advantages: vec![],
            returns: vec![],
            info_scalars: Vec::new(),
        }
    }

    /// Adds one step's named scalars to [`RolloutBuffer::info_scalars`].
    pub fn add_info_scalars(&mut self, scalars: impl Iterator<Item = (&'static str, f32)>) {
        for (name, value) in scalars {
            match self.info_scalars.iter_mut().find(|(n, _, _)| *n == name) {
                Some((_, sum, count)) => {
                    *sum += f64::from(value);
                    *count += 1;
                }
                None => self.info_scalars.push((name, f64::from(value), 1)),
            }
        }
    }

    /// The mean of every named step scalar over the rollout, `(name, mean)`.
    pub fn info_scalar_means(&self) -> Vec<(&'static str, f64)> {
        self.info_scalars
            .iter()
            .map(|&(name, sum, count)| (name, sum / count.max(1) as f64))
            .collect()
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

    /// One buffer holding the envs of `parts` side by side (part 0's envs first): the rollout
    /// of one process with all their envs, e.g. the union of the rollouts of data-parallel
    /// ranks. The parts must have the same number of steps, observation size, distribution
    /// and sequence length. Sequence `u` of part `p` with `S` sequences per part becomes
    /// sequence `p · S + u`.
    pub fn concat_envs(parts: &[RolloutBuffer]) -> Self {
        let first = &parts[0];
        let t_len = first.num_steps;
        for p in parts {
            assert_eq!(
                (p.num_steps, p.obs_dim, p.seq_len, p.num_envs),
                (t_len, first.obs_dim, first.seq_len, first.num_envs),
                "concat_envs needs buffers of the same shape"
            );
        }
        let n: usize = parts.iter().map(|p| p.num_envs).sum();
        let time_major = |get: &dyn Fn(&RolloutBuffer) -> &[f32], width| {
            interleave_envs(parts, t_len, width, get)
        };
        let bools = |get: &dyn Fn(&RolloutBuffer) -> &[bool], width| {
            interleave_envs(parts, t_len, width, get)
        };
        let width = first.dist.action_width();
        let masks = match first.dist.mask_width() {
            Some(m) if !first.masks.is_empty() => bools(&|p| &p.masks, m),
            _ => Vec::new(),
        };
        let mut info_scalars: Vec<(&'static str, f64, u64)> = Vec::new();
        for p in parts {
            for &(name, sum, count) in &p.info_scalars {
                match info_scalars.iter_mut().find(|(n, _, _)| *n == name) {
                    Some((_, s, c)) => {
                        *s += sum;
                        *c += count;
                    }
                    None => info_scalars.push((name, sum, count)),
                }
            }
        }
        let computed = parts.iter().all(|p| !p.advantages.is_empty());
        Self {
            num_steps: t_len,
            num_envs: n,
            obs_dim: first.obs_dim,
            obs: time_major(&|p| &p.obs, first.obs_dim),
            dist: first.dist.clone(),
            actions: time_major(&|p| &p.actions, width),
            masks,
            logprobs: time_major(&|p| &p.logprobs, 1),
            rewards: time_major(&|p| &p.rewards, 1),
            terminated: bools(&|p| &p.terminated, 1),
            truncated: bools(&|p| &p.truncated, 1),
            values: time_major(&|p| &p.values, 1),
            truncation_values: time_major(&|p| &p.truncation_values, 1),
            episode_starts: time_major(&|p| &p.episode_starts, 1),
            last_values: parts.iter().flat_map(|p| p.last_values.clone()).collect(),
            memory0: Memory::cat(parts.iter().map(|p| p.memory0.clone()).collect()),
            seq_len: first.seq_len,
            chunk_memories: (0..first.chunk_memories.len())
                .map(|k| Memory::cat(parts.iter().map(|p| p.chunk_memories[k].clone()).collect()))
                .collect(),
            advantages: if computed {
                time_major(&|p| &p.advantages, 1)
            } else {
                Vec::new()
            },
            returns: if computed {
                time_major(&|p| &p.returns, 1)
            } else {
                Vec::new()
            },
            info_scalars,
        }
    }

    /// Number of sequences per env, `num_steps / seq_len`.
    pub fn chunks_per_env(&self) -> usize {
        self.num_steps / self.seq_len.max(1)
    }

    /// Gathers a `[T, N, width]` array into `[B, L, width]` for the sequences `units`: unit
    /// `u = i · K + k` is env `i`'s steps `k·L .. (k+1)·L` (`K` sequences per env of length
    /// `L = seq_len`; with whole rollouts, `u` is the env index).
    pub fn sequence_major<X: Copy>(&self, data: &[X], width: usize, units: &[usize]) -> Vec<X> {
        let (n, len, k_per) = (self.num_envs, self.seq_len, self.chunks_per_env());
        debug_assert_eq!(data.len(), self.num_steps * n * width);
        let mut out = Vec::with_capacity(units.len() * len * width);
        for &u in units {
            let (i, k) = (u / k_per, u % k_per);
            for t in k * len..(k + 1) * len {
                let at = (t * n + i) * width;
                out.extend_from_slice(&data[at..at + width]);
            }
        }
        out
    }

    /// The memory each sequence of `units` (see [`RolloutBuffer::sequence_major`]) starts
    /// from, batch `B`, on the device of the stored memories.
    pub fn sequence_memory(&self, units: &[usize], device: &Device) -> Memory {
        let k_per = self.chunks_per_env();
        let select = |memory: &Memory, envs: Vec<i64>| {
            let b = envs.len();
            memory.select(Tensor::<1, Int>::from_data(
                TensorData::new(envs, [b]),
                device,
            ))
        };
        if k_per == 1 {
            return select(&self.memory0, units.iter().map(|&u| u as i64).collect());
        }
        Memory::cat(
            units
                .iter()
                .map(|&u| {
                    let (i, k) = (u / k_per, u % k_per);
                    let memory = if k == 0 {
                        &self.memory0
                    } else {
                        &self.chunk_memories[k - 1]
                    };
                    select(memory, vec![i as i64])
                })
                .collect(),
        )
    }
}
