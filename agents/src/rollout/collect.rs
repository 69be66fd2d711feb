//! Rollout collection: one batched `policy.step` per time step on a [`VecEnv`], actions sampled
//! on the host from a seeded ChaCha8 RNG.

use burn::prelude::*;
use burn::tensor::TensorData;
use envs::{Env, EpisodeStats, VecActions, VecEnv};
use rand_chacha::ChaCha8Rng;

use crate::actor_critic::ActorCritic;
use crate::distribution::{ActionDist, EnvAction};
use crate::memory::Memory;

use super::RolloutError;
use super::buffer::RolloutBuffer;
use super::normalize::{ObsNormalizer, RewardNormalizer};

/// What the rollout carries from one update to the next (and what a checkpoint saves).
#[derive(Clone, Debug)]
pub struct RolloutState {
    /// Current (raw, unnormalised) observation of every env `[N, obs_dim]`.
    pub obs: Vec<f32>,
    /// 1.0 for the envs whose episode starts at the next step (the previous step ended one,
    /// or the run just began) `[N]`.
    pub episode_starts: Vec<f32>,
    /// Policy memory of every env (batch `N`), on the rollout (non-autodiff) device.
    pub memory: Memory,
    /// RNG used to sample actions and to shuffle minibatches.
    pub rng: ChaCha8Rng,
    /// Reward scaling (the learner's `norm_reward`), updated every step.
    pub reward_norm: Option<RewardNormalizer>,
    /// Observation normalisation (the learner's `norm_obs`), updated every step.
    pub obs_norm: Option<ObsNormalizer>,
}

impl RolloutState {
    /// The observations `obs` `[n, obs_dim]` as the policy sees them: normalised with the
    /// current statistics when observation normalisation is on (statistics unchanged).
    pub fn policy_obs(&self, obs: &[f32]) -> Vec<f32> {
        match &self.obs_norm {
            Some(norm) => norm.normalize(obs),
            None => obs.to_vec(),
        }
    }
}

/// An episode that finished during a rollout, with the extra facts of its last step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FinishedEpisode {
    /// Index of the env it ran in.
    pub env: usize,
    /// Its statistics.
    pub stats: EpisodeStats,
}

/// Copies a tensor to a host `Vec<f32>` (a read-back failure is a [`RolloutError::Tensor`]).
pub fn to_host<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, RolloutError> {
    t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| RolloutError::Tensor(format!("{e:?}")))
}

/// Collects `num_steps` steps from every env of `venv` with `policy` (a non-autodiff copy of
/// the model on `device`), starting from and updating `state`.
///
/// Per step `t`: the observation statistics are updated with `obs_t` and `obs_t` normalised
/// (`norm_obs`), `policy.step(obs_t, episode_start_t, memory)` for all envs at once, actions
/// sampled from the distribution the env's action space calls for ([`ActionDist`], under
/// the envs' action masks when they give them; continuous samples clipped to the bounds for
/// the env only), `venv.step_actions`, rewards scaled (`norm_reward`; the buffer holds the
/// scaled rewards, the finished episodes' statistics the env's own). `episode_start_{t+1}` is
/// the `done` of step `t`, so the policy resets the memory of exactly the envs whose episode
/// just began.
///
/// Truncation bootstrap: for the envs whose episode was truncated at step `t`,
/// `V(final_obs)` is computed by one extra, batched policy step on their final observations
/// with their memory *after* step `t` (the memory of the episode that just ended, before any
/// reset); its new memory is thrown away. GAE then bootstraps from it (see
/// [`super::gae::compute_gae`]).
///
/// `seq_len` (dividing `num_steps`): the memory of every env before steps `seq_len`,
/// `2·seq_len`, … is stored too, so the update can replay sequences of that length
/// (`num_steps`: whole rollouts only).
pub fn collect_rollout<P: ActorCritic, E: Env>(
    policy: &P,
    venv: &mut VecEnv<E>,
    state: &mut RolloutState,
    num_steps: usize,
    seq_len: usize,
    device: &Device,
) -> Result<(RolloutBuffer, Vec<FinishedEpisode>), RolloutError> {
    collect_rollout_until(policy, venv, state, num_steps, seq_len, device, &mut |_| {
        false
    })
}

/// [`collect_rollout`] that may end early: before each step `t` that starts a sequence
/// (`t` a multiple of `seq_len`, `0 < t < num_steps`), `stop(t)` is asked, and when it says
/// yes the rollout ends there with `t` steps (the buffer's `num_steps`). Data-parallel
/// training uses it to preempt the ranks that lag behind.
pub fn collect_rollout_until<P: ActorCritic, E: Env>(
    policy: &P,
    venv: &mut VecEnv<E>,
    state: &mut RolloutState,
    num_steps: usize,
    seq_len: usize,
    device: &Device,
    stop: &mut dyn FnMut(usize) -> bool,
) -> Result<(RolloutBuffer, Vec<FinishedEpisode>), RolloutError> {
    if seq_len == 0 || !num_steps.is_multiple_of(seq_len) {
        return Err(RolloutError::InvalidConfig {
            key: "seq_len",
            reason: format!("must divide num_steps ({num_steps}), got {seq_len}"),
        });
    }
    let n = venv.num_envs();
    let obs_dim = venv.obs_dim();
    let dist = ActionDist::from_space(venv.action_space());
    let width = dist.action_width();
    let mut buf = RolloutBuffer::new(
        num_steps,
        n,
        obs_dim,
        dist.clone(),
        state.memory.clone().detach(),
    );
    let mut finished = Vec::new();
    let mut env_discrete: Vec<usize> = Vec::with_capacity(n * width);
    let mut env_continuous: Vec<f32> = Vec::new();
    buf.seq_len = seq_len;
    for t in 0..num_steps {
        if t > 0 && t.is_multiple_of(seq_len) {
            if stop(t) {
                buf.num_steps = t;
                break;
            }
            buf.chunk_memories.push(state.memory.clone());
        }
        if let Some(norm) = state.obs_norm.as_mut() {
            norm.update(&state.obs);
        }
        let policy_obs = state.policy_obs(&state.obs);
        buf.obs.extend_from_slice(&policy_obs);
        let obs = Tensor::<2>::from_data(TensorData::new(policy_obs, [n, obs_dim]), device);
        let starts =
            Tensor::<1>::from_data(TensorData::new(state.episode_starts.clone(), [n]), device);
        let memory = std::mem::replace(&mut state.memory, Memory::empty());
        let (params, values, memory) = policy.step(obs, starts, memory); // [N, P], [N]
        state.memory = memory.detach();
        let param_width = params.dims()[1];
        if param_width != dist.param_width() {
            return Err(RolloutError::Tensor(format!(
                "the policy outputs {param_width} distribution parameters per step, the env's \
                 {} action space needs {} ({}); was the policy built for another env?",
                venv.action_space(),
                dist.param_width(),
                dist.describe()
            )));
        }
        let mask = match dist.mask_width() {
            Some(m) if venv.has_masks() => {
                let masks = venv.last().masks.clone();
                buf.masks.extend_from_slice(&masks);
                Some(Tensor::<2, Bool>::from_data(
                    TensorData::new(masks, [n, m]),
                    device,
                ))
            }
            _ => None,
        };
        let table = to_host(dist.sampling_table(params, mask))?; // [N, P]
        let values = to_host(values)?; // [N]

        env_discrete.clear();
        env_continuous.clear();
        for row in table.chunks_exact(param_width) {
            let start = buf.actions.len();
            let logp = dist.sample_row(row, &mut state.rng, &mut buf.actions);
            buf.logprobs.push(logp);
            match dist.env_action(&buf.actions[start..]) {
                EnvAction::Discrete(a) => env_discrete.push(a),
                EnvAction::MultiDiscrete(a) => env_discrete.extend(a),
                EnvAction::Continuous(x) => env_continuous.extend(x),
            }
        }
        buf.values.extend_from_slice(&values);
        buf.episode_starts.extend_from_slice(&state.episode_starts);

        let actions = match &dist {
            ActionDist::Categorical { .. } => VecActions::Discrete(&env_discrete),
            ActionDist::MultiCategorical { .. } => VecActions::MultiDiscrete(&env_discrete),
            ActionDist::Gaussian { .. } => VecActions::Continuous(&env_continuous),
        };
        let step = venv.step_actions(actions)?;
        match state.reward_norm.as_mut() {
            Some(norm) => {
                let mut rewards = step.rewards.to_vec();
                norm.normalize(&mut rewards, &step.terminated, &step.truncated);
                buf.rewards.extend_from_slice(&rewards);
            }
            None => buf.rewards.extend_from_slice(&step.rewards),
        }
        buf.terminated.extend_from_slice(&step.terminated);
        buf.truncated.extend_from_slice(&step.truncated);
        for &(env, stats) in &step.finished {
            finished.push(FinishedEpisode { env, stats });
        }
        for info in &step.infos {
            if !info.scalars.is_empty() {
                buf.add_info_scalars(info.scalars.iter());
            }
        }

        let truncated: Vec<usize> = (0..n)
            .filter(|&i| step.truncated[i] && !step.terminated[i])
            .collect();
        let mut trunc_values = vec![0.0f32; n];
        if !truncated.is_empty() {
            let b = truncated.len();
            let mut final_obs = Vec::with_capacity(b * obs_dim);
            for &i in &truncated {
                final_obs.extend_from_slice(&step.final_obs[i * obs_dim..(i + 1) * obs_dim]);
            }
            let idx: Vec<i64> = truncated.iter().map(|&i| i as i64).collect();
            let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [b]), device);
            let mem = state.memory.select(idx);
            let final_obs = state.policy_obs(&final_obs);
            let fo = Tensor::<2>::from_data(TensorData::new(final_obs, [b, obs_dim]), device);
            let zeros = Tensor::<1>::zeros([b], device);
            let (_, v, _) = policy.step(fo, zeros, mem);
            for (&i, v) in truncated.iter().zip(to_host(v)?) {
                trunc_values[i] = v;
            }
        }
        buf.truncation_values.extend_from_slice(&trunc_values);

        state.obs.copy_from_slice(&step.obs);
        for i in 0..n {
            state.episode_starts[i] = if step.terminated[i] || step.truncated[i] {
                1.0
            } else {
                0.0
            };
        }
    }
    // Bootstrap value of the observation after the last step; the memory it produces is
    // discarded (the next rollout repeats this step and keeps it).
    let obs = Tensor::<2>::from_data(
        TensorData::new(state.policy_obs(&state.obs), [n, obs_dim]),
        device,
    );
    let starts = Tensor::<1>::from_data(TensorData::new(state.episode_starts.clone(), [n]), device);
    let (_, last_values, _) = policy.step(obs, starts, state.memory.clone());
    buf.last_values = to_host(last_values)?;
    Ok((buf, finished))
}
