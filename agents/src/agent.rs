//! A trained policy for deployment: load a policy file, keep one memory per env, act on plain
//! slices.
//!
//! ```no_run
//! use agents::Agent;
//! use envs::{CueRecall, CueRecallConfig, Env};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let agent = Agent::load("runs/my_run/policy.fbrl")?;
//! let mut env = CueRecall::new(CueRecallConfig::default())?;
//! let mut obs = vec![0.0; agent.obs_dim()];
//! let mut memory = agent.initial_memory(1);
//! env.reset(7, &mut obs)?;
//! loop {
//!     let acted = agent.act(&obs, &mut memory, true)?;
//!     let step = env.step(acted.action(0).as_action(), &mut obs)?;
//!     if step.done() {
//!         break;
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! An [`AgentMemory`] holds the memory of a batch of envs; a new one starts every env's
//! episode. When env `i` starts a new episode (after `done`, and a reset), call
//! [`AgentMemory::episode_start`] so nothing from its previous episode reaches the next
//! action. The observation normaliser the run trained with is part of the policy file and is
//! applied by [`Agent::act`]: pass the env's raw observations.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::TensorData;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::actor_critic::ActorCritic;
use crate::distribution::{ActionDist, EnvAction};
use crate::memory::Memory;
use crate::policy::{Policy, PolicyConfig, PolicyError};
use crate::policy_io::{PolicyFileHeader, read_policy_file, save_policy_with_normalizer};
use crate::ppo::ObsNormalizer;

/// A trained policy ready to act: the network, its action distribution and the observation
/// normaliser it was trained with.
#[derive(Clone, Debug)]
pub struct Agent {
    policy: Policy,
    header: PolicyFileHeader,
    obs_norm: Option<ObsNormalizer>,
    dist: ActionDist,
    device: Device,
}

/// The memory of a batch of envs between calls to [`Agent::act`].
#[derive(Clone, Debug)]
pub struct AgentMemory {
    memory: Option<Memory>,
    starts: Vec<f32>,
    rng: ChaCha8Rng,
}

impl AgentMemory {
    /// Number of envs this memory is for.
    pub fn batch(&self) -> usize {
        self.starts.len()
    }

    /// Env `i` starts a new episode at its next step: its memory is cleared before that step.
    ///
    /// # Panics
    /// If `i` is not below [`AgentMemory::batch`].
    pub fn episode_start(&mut self, i: usize) {
        assert!(
            i < self.starts.len(),
            "env index {i} out of range for a memory of {} envs",
            self.starts.len()
        );
        self.starts[i] = 1.0;
    }

    /// The policy's memory tensors (`[B, slots, width]` each; none for an MLP).
    pub fn tensors(&self) -> &[Tensor<3>] {
        self.memory.as_ref().map_or(&[], |m| &m.tensors)
    }
}

/// What [`Agent::act`] returns for a batch of `B` envs.
#[derive(Clone, Debug, PartialEq)]
pub struct Acted {
    /// The chosen actions, `[B, action_width]` row-major: indices as exact `f32` integers for
    /// discrete spaces, the unclipped Gaussian values for continuous ones (see
    /// [`Acted::action`] for what the env receives).
    pub actions: Vec<f32>,
    /// The critic's value estimate of each env's state, `[B]`.
    pub values: Vec<f32>,
    /// Log-probability of each chosen action under the policy, `[B]`.
    pub log_probs: Vec<f32>,
    dist: ActionDist,
}

impl Acted {
    /// The action for env `i` as the env takes it (a `Box` action clipped to its bounds);
    /// `acted.action(i).as_action()` is what `Env::step` wants.
    pub fn action(&self, i: usize) -> EnvAction {
        let w = self.dist.action_width();
        self.dist.env_action(&self.actions[i * w..(i + 1) * w])
    }
}

impl Agent {
    /// Loads the policy file at `path` (written by every `fbrl train` run as
    /// `RUN/policy.fbrl`, or by `fbrl export`) on the default device.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, PolicyError> {
        Self::load_on(path, &Device::default())
    }

    /// [`Agent::load`] onto `device`.
    pub fn load_on(path: impl AsRef<Path>, device: &Device) -> Result<Self, PolicyError> {
        let (policy, header) = read_policy_file(path.as_ref(), device)?;
        let dist = header.action_dist();
        Ok(Self {
            obs_norm: header.obs_normalizer.clone(),
            policy,
            header,
            dist,
            device: device.clone(),
        })
    }

    /// An agent from a policy in memory (e.g. during training): `config`, `obs_dim` and `dist`
    /// must be what `policy` was built with.
    pub fn from_policy(
        policy: Policy,
        config: &PolicyConfig,
        obs_dim: usize,
        dist: &ActionDist,
        obs_norm: Option<ObsNormalizer>,
    ) -> Result<Self, PolicyError> {
        let header = PolicyFileHeader::describe(&policy, config, obs_dim, dist, obs_norm.clone())
            .map_err(|message| PolicyError::Mismatch {
            path: PathBuf::new(),
            message,
        })?;
        let device = policy.devices().into_iter().next().unwrap_or_default();
        Ok(Self {
            policy,
            header,
            obs_norm,
            dist: dist.clone(),
            device,
        })
    }

    /// Writes the agent as a policy file (atomically; normaliser included).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), PolicyError> {
        save_policy_with_normalizer(
            path,
            &self.policy,
            &self.header.config,
            self.header.obs_dim,
            &self.dist,
            self.obs_norm.as_ref(),
        )
    }

    /// What the policy file says about the policy.
    pub fn header(&self) -> &PolicyFileHeader {
        &self.header
    }

    /// The network.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The observation normaliser applied before the network, if the run trained with one.
    pub fn obs_normalizer(&self) -> Option<&ObsNormalizer> {
        self.obs_norm.as_ref()
    }

    /// The action distribution (and so the action space) of the policy.
    pub fn action_dist(&self) -> &ActionDist {
        &self.dist
    }

    /// Number of observation features per env.
    pub fn obs_dim(&self) -> usize {
        self.header.obs_dim
    }

    /// Number of values per action in [`Acted::actions`].
    pub fn action_width(&self) -> usize {
        self.dist.action_width()
    }

    /// The device the policy runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A fresh memory for `batch` envs, each starting an episode (sampling seed 0).
    pub fn initial_memory(&self, batch: usize) -> AgentMemory {
        self.initial_memory_seeded(batch, 0)
    }

    /// [`Agent::initial_memory`] with the seed of the sampling RNG (non-greedy actions).
    pub fn initial_memory_seeded(&self, batch: usize, seed: u64) -> AgentMemory {
        AgentMemory {
            memory: Some(self.policy.init_memory(batch, &self.device)),
            starts: vec![1.0; batch],
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// One step for a batch of envs: `obs` holds `B × obs_dim` raw observations (row-major,
    /// `B = memory.batch()`). `greedy` picks the most likely action (a Gaussian's mean),
    /// otherwise one is sampled. The memory moves on by one step. Inputs of the wrong size, NaN
    /// or infinite observation values and NaN policy outputs (weights or inputs large enough
    /// to overflow the network) are errors that leave the memory as it was.
    pub fn act(
        &self,
        obs: &[f32],
        memory: &mut AgentMemory,
        greedy: bool,
    ) -> Result<Acted, PolicyError> {
        self.act_masked(obs, None, memory, greedy)
    }

    /// [`Agent::act`] under action masks `[B, mask_width]` (`true` = allowed), as the envs'
    /// `Env::action_mask` give them.
    pub fn act_masked(
        &self,
        obs: &[f32],
        masks: Option<&[bool]>,
        memory: &mut AgentMemory,
        greedy: bool,
    ) -> Result<Acted, PolicyError> {
        let b = memory.batch();
        let obs_dim = self.obs_dim();
        if b == 0 {
            return Err(bad_input("the memory is for 0 envs"));
        }
        if obs.len() != b * obs_dim {
            return Err(bad_input(format!(
                "{} observation values given; the memory is for {b} envs of {obs_dim} features \
                 ({} values expected)",
                obs.len(),
                b * obs_dim
            )));
        }
        if let Some(k) = obs.iter().position(|x| !x.is_finite()) {
            // Refused before the policy runs: a NaN would stay in that env's memory.
            return Err(bad_input(format!(
                "observation value {k} (env {}, feature {}) is {}: observations must be finite",
                k / obs_dim,
                k % obs_dim,
                obs[k]
            )));
        }
        let masks = match (masks, self.dist.mask_width()) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(bad_input(format!(
                    "action masks given, but {} cannot be masked",
                    self.dist.describe()
                )));
            }
            (Some(m), Some(w)) if m.len() != b * w => {
                return Err(bad_input(format!(
                    "{} mask values given, {b} envs × {w} expected",
                    m.len()
                )));
            }
            (Some(m), Some(w)) => Some(Tensor::<2, Bool>::from_data(
                TensorData::new(m.to_vec(), [b, w]),
                &self.device,
            )),
        };
        let Some(state) = memory.memory.as_ref() else {
            return Err(bad_input("the memory was lost by an earlier failed step"));
        };
        self.policy.check_step_inputs(b, b, state)?;
        let state = memory.memory.take().expect("checked above");
        let policy_obs = match &self.obs_norm {
            Some(norm) => norm.normalize(obs),
            None => obs.to_vec(),
        };
        let obs_t = Tensor::<2>::from_data(TensorData::new(policy_obs, [b, obs_dim]), &self.device);
        let starts =
            Tensor::<1>::from_data(TensorData::new(memory.starts.clone(), [b]), &self.device);
        // Kept until the step's outputs are read: a failed step leaves the memory and the
        // sampling RNG as they were.
        let before = state.clone();
        let (params, values, next) = self.policy.step(obs_t, starts, state);
        let mut rng = memory.rng.clone();
        match self.choose(params, values, masks, greedy, &mut rng) {
            Ok(acted) => {
                memory.memory = Some(next);
                memory.starts.fill(0.0);
                memory.rng = rng;
                Ok(acted)
            }
            Err(e) => {
                memory.memory = Some(before);
                Err(e)
            }
        }
    }

    /// The actions (each env's mode, or samples from `rng`) and values of one step's policy
    /// outputs; NaN outputs are an error.
    fn choose(
        &self,
        params: Tensor<2>,
        values: Tensor<1>,
        masks: Option<Tensor<2, Bool>>,
        greedy: bool,
        rng: &mut ChaCha8Rng,
    ) -> Result<Acted, PolicyError> {
        let p = self.dist.param_width();
        let table = read_f32(self.dist.sampling_table(params, masks))?;
        let values = read_f32(values)?;
        if values.iter().any(|v| v.is_nan()) {
            return Err(bad_input("the policy produced NaN values"));
        }
        let mut actions = Vec::with_capacity(values.len() * self.dist.action_width());
        let mut log_probs = Vec::with_capacity(values.len());
        for row in table.chunks(p) {
            if row.iter().any(|v| v.is_nan()) {
                return Err(bad_input("the policy produced NaN outputs"));
            }
            let first = actions.len();
            if greedy {
                self.dist.mode_row(row, &mut actions);
                log_probs.push(self.dist.log_prob_row(row, &actions[first..]));
            } else {
                log_probs.push(self.dist.sample_row(row, rng, &mut actions));
            }
        }
        Ok(Acted {
            actions,
            values,
            log_probs,
            dist: self.dist.clone(),
        })
    }
}

fn bad_input(message: impl Into<String>) -> PolicyError {
    PolicyError::BadInput(message.into())
}

fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, PolicyError> {
    t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| bad_input(format!("cannot read the policy's output: {e:?}")))
}
