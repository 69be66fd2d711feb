//! [`Policy`], the enum that the trainer, the CLI and the experiments use to pick an
//! architecture at run time, with its configuration ([`PolicyConfig`]) and errors.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use burn::module::Param;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::actor_critic::{ActorCritic, SequenceOutput, StepOutput};
use crate::attention::AttentionConfigError;
use crate::distribution::ActionDist;
use crate::memory::Memory;
pub use crate::{KindConfig, PolicyKind, PolicyNet};

/// Errors of policy configuration, construction and weight files.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A configuration field has a value the policy cannot be built with.
    #[error("invalid policy config: `{field}` {message}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// What is wrong with its value.
        message: String,
    },
    /// A policy kind name that is not one of the registered kinds.
    #[error("unknown policy kind `{0}` (expected one of: {names})", names = PolicyKind::names())]
    UnknownKind(String),
    /// A field that the policy's kind does not have (nor any other kind).
    #[error("unknown field `{field}` of policy kind `{kind}`, expected one of {expected}")]
    UnknownField {
        /// The policy kind.
        kind: &'static str,
        /// The field as written.
        field: String,
        /// The kind's fields.
        expected: String,
    },
    /// A field whose value has the wrong type or an unknown name.
    #[error("invalid policy config: `{field}`: {message}")]
    BadField {
        /// The field.
        field: String,
        /// What is wrong with its value.
        message: String,
    },
    /// Reading or writing a weight file failed.
    #[error("policy file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a policy file, or it is truncated or corrupt.
    #[error("policy file {path} is not a valid policy file: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The weights in the file do not fit the architecture they are loaded into.
    #[error("policy file {path} does not match the architecture: {message}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Which tensors or fields disagree.
        message: String,
    },
    /// What was handed to a loaded policy (observations, masks, memory) does not fit it.
    #[error("bad input to the policy: {0}")]
    BadInput(String),
    /// [`KERNELS_ENV`](crate::kernels::KERNELS_ENV) holds a value that is not a kernel choice.
    #[error(transparent)]
    Kernels(#[from] crate::kernels::KernelsEnvError),
}

impl From<crate::memory::MemoryLayoutError> for PolicyError {
    fn from(e: crate::memory::MemoryLayoutError) -> Self {
        Self::BadInput(e.to_string())
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> PolicyError {
    PolicyError::InvalidConfig {
        field,
        message: message.into(),
    }
}

/// The first of `sizes` that is zero, as an error naming it.
pub(crate) fn at_least_one(sizes: &[(&'static str, usize)]) -> Result<(), PolicyError> {
    match sizes.iter().find(|(_, value)| *value == 0) {
        Some(&(field, _)) => Err(invalid(field, "must be at least 1")),
        None => Ok(()),
    }
}

impl From<AttentionConfigError> for PolicyError {
    fn from(e: AttentionConfigError) -> Self {
        match e {
            AttentionConfigError::Zero { field } => invalid(field, "must be at least 1"),
            AttentionConfigError::HeadsDoNotDivide { d_model, n_heads } => invalid(
                "d_model",
                format!("= {d_model} is not divisible by n_heads = {n_heads}"),
            ),
        }
    }
}

impl PolicyKind {
    /// The registered kinds' names, `feedback, transformer, …`.
    pub fn names() -> String {
        PolicyKind::ALL.map(PolicyKind::name).join(", ")
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PolicyKind {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PolicyKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| PolicyError::UnknownKind(s.to_string()))
    }
}

/// Where a policy's value function reads its features from. Written `shared` / `separate`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum CriticKind {
    /// Actor and critic share the network; the value is a second head on its output.
    #[default]
    Shared,
    /// The critic is a second network of the same kind and size, with its own trunk (and its
    /// own memory): twice the parameters and compute, and no interference between the value
    /// loss and the policy gradient (CleanRL's classic-control agents).
    Separate,
}

impl CriticKind {
    /// The lowercase name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            CriticKind::Shared => "shared",
            CriticKind::Separate => "separate",
        }
    }
}

impl fmt::Display for CriticKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The architecture and size of a policy, as written in experiment configs (TOML/JSON) and in
/// weight files: `kind`, `critic`, and the fields of the kind's config ([`KindConfig`]; each
/// kind declares its own fields with their defaults, next to its network).
///
/// Fields left out of a config take the kind's defaults ([`PolicyConfig::preset`]), so
/// `kind = "gru"` alone is a complete config. A field that no kind has is an error; a field of
/// another kind is accepted and ignored, because every config and weight file written before
/// the kinds had their own configs holds every kind's fields (a GRU run's `config.toml` has
/// `span`, `d_ff`, …). Only the kind's own fields are written.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyConfig {
    /// `shared`: the value head reads the actor's network; `separate`: the critic is a second
    /// network of the same kind and size (every kind).
    pub critic: CriticKind,
    /// The kind and its config.
    pub spec: KindConfig,
}

impl Serialize for PolicyConfig {
    /// `kind`, then the kind's fields in their declared order, then `critic`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let values = self.spec.spec().values();
        let mut map = s.serialize_map(Some(values.len() + 2))?;
        map.serialize_entry("kind", &self.kind())?;
        for (field, value) in &values {
            map.serialize_entry(field.name, value)?;
        }
        map.serialize_entry("critic", &self.critic)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for PolicyConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let fields = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        PolicyConfig::from_fields(fields).map_err(serde::de::Error::custom)
    }
}

impl Default for PolicyConfig {
    /// The Feedback Transformer preset.
    fn default() -> Self {
        Self::preset(PolicyKind::Feedback)
    }
}

impl PolicyConfig {
    /// The preset of `kind`: every field at the default its kind declares. The presets are
    /// of equal depth: width 64, 2 layers, 4 heads, `d_ff` 256, span τ = 32, shared
    /// keys/values, no gating; the GRU is one cell of width 64 and the MLP has two hidden
    /// layers of 64. The critic is shared.
    pub fn preset(kind: PolicyKind) -> Self {
        Self {
            critic: CriticKind::Shared,
            spec: KindConfig::preset(kind),
        }
    }

    /// Which architecture.
    pub fn kind(&self) -> PolicyKind {
        self.spec.kind()
    }

    /// A config from its fields as written (`kind`, `critic` and the kind's fields), the
    /// others at the kind's defaults, validated. A field of another kind is ignored (see
    /// [`PolicyConfig`]); a field no kind has is an error naming it.
    pub fn from_fields(
        mut fields: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, PolicyError> {
        let bad = |field: &str, e: serde_json::Error| PolicyError::BadField {
            field: field.to_string(),
            message: e.to_string(),
        };
        let kind: PolicyKind = match fields.remove("kind") {
            Some(v) => serde_json::from_value(v).map_err(|e| bad("kind", e))?,
            None => {
                return Err(PolicyError::BadField {
                    field: "kind".into(),
                    message: format!("missing (one of: {})", PolicyKind::names()),
                });
            }
        };
        let critic = match fields.remove("critic") {
            Some(v) => serde_json::from_value(v).map_err(|e| bad("critic", e))?,
            None => CriticKind::default(),
        };
        let own = |name: &str| kind.fields().iter().any(|f| f.name == name);
        if let Some(unknown) = fields.keys().find(|name| {
            !own(name)
                && !PolicyKind::ALL
                    .iter()
                    .any(|k| k.fields().iter().any(|f| f.name == name.as_str()))
        }) {
            let expected = ["kind", "critic"]
                .into_iter()
                .chain(kind.fields().iter().map(|f| f.name))
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(PolicyError::UnknownField {
                kind: kind.name(),
                field: unknown.clone(),
                expected,
            });
        }
        fields.retain(|name, _| own(name));
        let config = PolicyConfig {
            critic,
            spec: KindConfig::from_fields(kind, fields)?,
        };
        config.validate()?;
        Ok(config)
    }

    /// The value of `field` of the kind's config, if the kind has it.
    pub fn get(&self, field: &str) -> Option<serde_json::Value> {
        self.spec
            .spec()
            .values()
            .into_iter()
            .find(|(f, _)| f.name == field)
            .map(|(_, v)| v)
    }

    /// The value of the number `field` (`d_model`, `span`, …), if the kind has it.
    pub fn size(&self, field: &str) -> Option<usize> {
        self.get(field)?
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
    }

    /// Sets `field` (a field of the kind's config, or `critic`) to `value`, as a config file
    /// would: `Ok(true)` when set, `Ok(false)` for a field of another kind (ignored), an error
    /// for a field no kind has or a value of the wrong type. Not validated (see
    /// [`PolicyConfig::validate`]).
    pub fn set(&mut self, field: &str, value: impl Serialize) -> Result<bool, PolicyError> {
        let value = serde_json::to_value(value).map_err(|e| PolicyError::BadField {
            field: field.to_string(),
            message: e.to_string(),
        })?;
        if field == "critic" {
            self.critic = serde_json::from_value(value).map_err(|e| PolicyError::BadField {
                field: field.to_string(),
                message: e.to_string(),
            })?;
            return Ok(true);
        }
        if !self.kind().fields().iter().any(|f| f.name == field)
            && PolicyKind::ALL
                .iter()
                .any(|k| k.fields().iter().any(|f| f.name == field))
        {
            return Ok(false);
        }
        self.spec.set(field, value)?;
        Ok(true)
    }

    /// The `kind` preset scaled down for tests and quick looks: `d_model` and `hidden` =
    /// `width`, `d_ff` = 2 · `width`, 2 heads and the given `span` (each where the kind has the
    /// field). Not validated (see [`PolicyConfig::validate`]).
    pub fn small(kind: PolicyKind, width: usize, span: usize) -> Self {
        let mut cfg = Self::preset(kind);
        for (field, value) in [
            ("d_model", width),
            ("hidden", width),
            ("d_ff", 2 * width),
            ("n_heads", 2),
            ("span", span),
        ] {
            cfg.set(field, value)
                .expect("a field of the built-in kinds takes a number");
        }
        cfg
    }

    /// [`PolicyConfig::set`] on a copy, for building configs in one expression.
    pub fn with(mut self, field: &str, value: impl Serialize) -> Result<Self, PolicyError> {
        self.set(field, value)?;
        Ok(self)
    }

    /// Checks every field the kind uses; the error names the first bad field.
    pub fn validate(&self) -> Result<(), PolicyError> {
        self.spec.spec().validate()
    }

    /// Builds the policy for observations of `obs_dim` features and `num_actions` discrete
    /// actions (a categorical head; [`PolicyConfig::init_for`] for the other action spaces).
    pub fn init(
        &self,
        obs_dim: usize,
        num_actions: usize,
        device: &Device,
    ) -> Result<Policy, PolicyError> {
        self.init_for(obs_dim, &ActionDist::Categorical { n: num_actions }, device)
    }

    /// Builds the policy for observations of `obs_dim` features whose actor head
    /// parameterises `dist`: logits for the categorical kinds, means plus a learned,
    /// state-independent log-std (initialised to 0) for a Gaussian.
    pub fn init_for(
        &self,
        obs_dim: usize,
        dist: &ActionDist,
        device: &Device,
    ) -> Result<Policy, PolicyError> {
        self.validate()?;
        crate::kernels::check_kernels_env()?;
        if obs_dim == 0 {
            return Err(invalid("obs_dim", "must be at least 1"));
        }
        if let ActionDist::Categorical { n: 0 } = dist {
            return Err(invalid("num_actions", "must be at least 1"));
        }
        dist.validate().map_err(|e| invalid("action_space", e))?;
        let num_actions = dist.head_width();
        let net = |device: &Device| self.spec.build(obs_dim, num_actions, device);
        let actor = net(device)?;
        let critic = match self.critic {
            CriticKind::Shared => None,
            CriticKind::Separate => Some(net(device)?),
        };
        let log_std = dist
            .gaussian_dim()
            .map(|d| Param::from_tensor(Tensor::zeros([d], device)));
        Ok(Policy {
            actor,
            critic,
            log_std,
        })
    }

    /// Approximate number of trainable parameters of one network of this config (actor, or
    /// critic), from the sizes alone, in `f64`: nothing is allocated, so it can vet sizes too
    /// large to build. Within 10 % of [`PolicyConfig::num_parameters`] per network (an upper
    /// bound for the Feedback Transformer, whose shared key/value projection it counts per
    /// layer; within 1 % for the other kinds).
    pub fn approx_parameters(&self, obs_dim: usize, num_actions: usize) -> f64 {
        self.spec.spec().approx_parameters(obs_dim, num_actions)
    }

    /// Depth of the trunk (see [`PolicySpec::depth`](crate::policy_spec::PolicySpec::depth)).
    pub fn depth(&self) -> usize {
        self.spec.spec().depth()
    }

    /// The number of networks: 2 with a separate critic, else 1.
    pub fn networks(&self) -> f64 {
        match self.critic {
            CriticKind::Shared => 1.0,
            CriticKind::Separate => 2.0,
        }
    }

    /// Floating-point operations (a multiply-add counts two) of one forward pass per env step
    /// of a policy with `params` parameters, run over chunks of `chunk` steps (1: a rollout's
    /// decoding step; the sequence length: a PPO update), on the fused kernels (`fused`) or
    /// the tensor-operation reference path. Matrix products count every weight once per step
    /// (`2·params`, biases and norms included as an upper bound) plus, per network, what the
    /// kind applies more than once per step
    /// ([`PolicySpec::extra_flops_per_step`](crate::policy_spec::PolicySpec::extra_flops_per_step)):
    /// attention counts the score and value products of every key slot actually computed,
    /// masked ones included.
    pub fn flops_per_step(&self, params: usize, chunk: usize, fused: bool) -> f64 {
        2.0 * params as f64 + self.networks() * self.spec.spec().extra_flops_per_step(chunk, fused)
    }

    /// Relative training cost per env step, 1 for a 2-layer Transformer with span 16 and a
    /// shared critic (see
    /// [`PolicySpec::relative_cost`](crate::policy_spec::PolicySpec::relative_cost)); a
    /// separate critic doubles it.
    pub fn relative_cost(&self) -> f64 {
        self.networks() * self.spec.spec().relative_cost()
    }

    /// What the policy keeps per env and per update step, in `f32` values, both networks
    /// together (the run's memory estimate).
    pub fn footprint(&self) -> crate::policy_spec::MemoryFootprint {
        let one = self.spec.spec().footprint();
        crate::policy_spec::MemoryFootprint {
            memory_per_env: self.networks() * one.memory_per_env,
            activations_per_step: self.networks() * one.activations_per_step,
        }
    }

    /// Builds the policy for `env`'s observation and action spaces (see
    /// [`PolicyConfig::init_for`]).
    pub fn init_for_env<E: envs::Env + ?Sized>(
        &self,
        env: &E,
        device: &Device,
    ) -> Result<Policy, PolicyError> {
        self.init_for(
            env.observation_space().flat_len(),
            &ActionDist::from_space(&env.action_space()),
            device,
        )
    }

    /// Number of trainable parameters of this policy for the given observation and action sizes
    /// (the parameters are not materialised).
    pub fn num_parameters(&self, obs_dim: usize, num_actions: usize) -> Result<usize, PolicyError> {
        self.num_parameters_for(obs_dim, &ActionDist::Categorical { n: num_actions })
    }

    /// [`PolicyConfig::num_parameters`] for a policy whose head parameterises `dist`.
    pub fn num_parameters_for(
        &self,
        obs_dim: usize,
        dist: &ActionDist,
    ) -> Result<usize, PolicyError> {
        Ok(self
            .init_for(obs_dim, dist, &Device::default())?
            .num_parameters())
    }

    /// A config of `kind` whose parameter count is within ±10 % of `target_params` (for
    /// equal-parameter comparisons). Starts from [`PolicyConfig::preset`] and picks the width
    /// (`d_model`, with `d_ff = 4·d_model` for attention kinds; `hidden` for the MLP) whose
    /// count is closest to the target. Errors if no width gets within 10 %.
    pub fn matched_params(
        kind: PolicyKind,
        target_params: usize,
        obs_dim: usize,
        num_actions: usize,
    ) -> Result<PolicyConfig, PolicyError> {
        let base = PolicyConfig::preset(kind);
        let with_width = |units: usize| PolicyConfig {
            spec: base.spec.with_width(units),
            ..base.clone()
        };
        let count = |units: usize| with_width(units).num_parameters(obs_dim, num_actions);
        // The count grows with the width: binary search for the first width at or above the target.
        let (mut lo, mut hi) = (1usize, 1usize);
        while count(hi)? < target_params {
            lo = hi;
            hi *= 2;
            if hi > 1 << 16 {
                return Err(invalid(
                    "target_params",
                    format!("= {target_params} is too large to match"),
                ));
            }
        }
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if count(mid)? < target_params {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let mut best = hi;
        if (count(lo)? as i64 - target_params as i64).abs()
            < (count(hi)? as i64 - target_params as i64).abs()
        {
            best = lo;
        }
        let got = count(best)?;
        let rel = (got as f64 - target_params as f64).abs() / target_params.max(1) as f64;
        if rel > 0.10 {
            return Err(invalid(
                "target_params",
                format!(
                    "= {target_params}: the closest `{kind}` has {got} parameters (more than 10% off)"
                ),
            ));
        }
        Ok(with_width(best))
    }
}

impl PolicyNet {
    /// Number of tensors in this network's [`Memory`].
    fn memory_len(&self) -> usize {
        self.inner().memory_shapes(0).len()
    }
}

/// A policy of any kind, chosen at run time from a [`PolicyConfig`]: the actor network and,
/// with `critic = "separate"`, a second network of the same kind and size whose value head
/// gives the values (its own trunk and, for memory policies, its own memory). Implements
/// [`ActorCritic`]; with a separate critic the memory holds the actor's tensors followed by the
/// critic's.
#[derive(Module, Debug)]
pub struct Policy {
    /// The actor (and, with a shared critic, the value function too).
    pub actor: PolicyNet,
    /// The critic's own network (`critic = "separate"`); only its value head is used.
    pub critic: Option<PolicyNet>,
    /// The Gaussian's learned log-std `[d]` (continuous actions only), appended to the actor
    /// head's means in every output (see [`crate::distribution`]).
    pub log_std: Option<Param<Tensor<1>>>,
}

impl Policy {
    /// Which architecture this is.
    pub fn kind(&self) -> PolicyKind {
        self.actor.kind()
    }

    /// Whether the value function has its own network.
    pub fn critic_kind(&self) -> CriticKind {
        if self.critic.is_some() {
            CriticKind::Separate
        } else {
            CriticKind::Shared
        }
    }

    /// [`ActorCritic::step`] that also returns, for an attention policy, each actor layer's
    /// attention weights `[B, H, τ+1]` over its window (the `τ` previous steps oldest first,
    /// then the current step; exactly 0 for steps before the episode's start). `None` for the
    /// GRU and the MLP. The Feedback Transformer runs its tensor-operation path here.
    pub fn step_with_attention(
        &self,
        obs: Tensor<2>,
        starts: Tensor<1>,
        memory: Memory,
    ) -> (StepOutput, Option<Vec<Tensor<3>>>) {
        let (actor_mem, critic_mem) = self.split_memory(memory);
        let ((logits, value, actor_mem), attention) =
            self.actor
                .step_with_attention(obs.clone(), starts.clone(), actor_mem);
        let logits = self.with_log_std(logits);
        let Some(critic) = &self.critic else {
            return ((logits, value, actor_mem), attention);
        };
        let (_, value, critic_mem) = critic.inner().step(obs, starts, critic_mem);
        (
            (logits, value, join_memory(actor_mem, critic_mem)),
            attention,
        )
    }

    /// The distribution parameters for the head's output `[.., d]` (a step's `[B, d]` or a
    /// sequence's `[B, T, d]`): the output itself, followed by the log-std for a Gaussian
    /// (`[.., 2d]`).
    fn with_log_std<const D: usize>(&self, head: Tensor<D>) -> Tensor<D> {
        let Some(log_std) = &self.log_std else {
            return head;
        };
        let dims = head.dims();
        let mut row = [1; D];
        row[D - 1] = dims[D - 1];
        let ls = log_std.val().reshape(row).expand(dims);
        Tensor::cat(vec![head, ls], D - 1)
    }

    /// Splits a memory into the actor's and the critic's parts.
    fn split_memory(&self, memory: Memory) -> (Memory, Memory) {
        let mut tensors = memory.tensors;
        let critic = tensors.split_off(self.actor.memory_len().min(tensors.len()));
        (Memory { tensors }, Memory { tensors: critic })
    }
}

fn join_memory(actor: Memory, critic: Memory) -> Memory {
    let mut tensors = actor.tensors;
    tensors.extend(critic.tensors);
    Memory { tensors }
}

impl ActorCritic for Policy {
    fn init_memory(&self, batch: usize, device: &Device) -> Memory {
        let actor = self.actor.inner().init_memory(batch, device);
        match &self.critic {
            Some(c) => join_memory(actor, c.inner().init_memory(batch, device)),
            None => actor,
        }
    }

    fn memory_shapes(&self, batch: usize) -> Vec<[usize; 3]> {
        let mut shapes = self.actor.inner().memory_shapes(batch);
        if let Some(c) = &self.critic {
            shapes.extend(c.inner().memory_shapes(batch));
        }
        shapes
    }

    fn step(&self, obs: Tensor<2>, starts: Tensor<1>, memory: Memory) -> StepOutput {
        let Some(critic) = &self.critic else {
            let (logits, value, memory) = self.actor.inner().step(obs, starts, memory);
            return (self.with_log_std(logits), value, memory);
        };
        let (actor_mem, critic_mem) = self.split_memory(memory);
        let (logits, _, actor_mem) =
            self.actor
                .inner()
                .step(obs.clone(), starts.clone(), actor_mem);
        let (_, value, critic_mem) = critic.inner().step(obs, starts, critic_mem);
        (
            self.with_log_std(logits),
            value,
            join_memory(actor_mem, critic_mem),
        )
    }

    fn forward_sequence(&self, obs: Tensor<3>, starts: Tensor<2>, m0: Memory) -> SequenceOutput {
        let Some(critic) = &self.critic else {
            let (logits, values) = self.actor.inner().forward_sequence(obs, starts, m0);
            return (self.with_log_std(logits), values);
        };
        let (actor_mem, critic_mem) = self.split_memory(m0);
        let (logits, _) =
            self.actor
                .inner()
                .forward_sequence(obs.clone(), starts.clone(), actor_mem);
        let (_, values) = critic.inner().forward_sequence(obs, starts, critic_mem);
        (self.with_log_std(logits), values)
    }

    fn num_parameters(&self) -> usize {
        self.log_std.as_ref().map_or(0, |p| p.val().dims()[0])
            + self.actor.inner().num_parameters()
            + self
                .critic
                .as_ref()
                .map_or(0, |c| c.inner().num_parameters())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for kind in PolicyKind::ALL {
            assert_eq!(kind.to_string().parse::<PolicyKind>().unwrap(), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
        }
        assert_eq!("GRU".parse::<PolicyKind>().unwrap(), PolicyKind::Gru);
        let err = "lstm".parse::<PolicyKind>().unwrap_err().to_string();
        assert!(err.contains("lstm") && err.contains("feedback"), "{err}");
    }

    #[test]
    fn a_config_with_only_a_kind_is_its_preset() {
        for kind in PolicyKind::ALL {
            let parsed: PolicyConfig = toml::from_str(&format!("kind = \"{kind}\"")).unwrap();
            assert_eq!(parsed, PolicyConfig::preset(kind));
        }
        let parsed: PolicyConfig =
            toml::from_str("kind = \"transformer\"\nn_layers = 4\ngating = true").unwrap();
        let KindConfig::Transformer(t) = &parsed.spec else {
            panic!("{parsed:?}")
        };
        assert_eq!((t.n_layers, t.gating, t.d_model), (4, true, 64));
        let json = serde_json::to_string(&parsed).unwrap();
        assert_eq!(serde_json::from_str::<PolicyConfig>(&json).unwrap(), parsed);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let err = toml::from_str::<PolicyConfig>("kind = \"gru\"\nd_modle = 3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("d_modle"), "{err}");
        let err = toml::from_str::<PolicyConfig>("kind = \"feedback\"\nd_model = 66")
            .unwrap_err()
            .to_string();
        assert!(err.contains("d_model") && err.contains("n_heads"), "{err}");

        let base = PolicyConfig::preset(PolicyKind::Feedback);
        let cases = [
            ("n_layers", base.clone().with("n_layers", 0).unwrap()),
            ("span", base.clone().with("span", 0).unwrap()),
            ("n_heads", base.clone().with("n_heads", 0).unwrap()),
            ("d_ff", base.clone().with("d_ff", 0).unwrap()),
            ("d_model", base.clone().with("d_model", 30).unwrap()),
        ];
        for (field, config) in cases {
            match config.validate() {
                Err(PolicyError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        let mlp = PolicyConfig::preset(PolicyKind::Mlp)
            .with("hidden", 0)
            .unwrap();
        assert!(mlp.validate().is_err());
        // The MLP ignores the attention fields.
        let mlp = PolicyConfig::preset(PolicyKind::Mlp)
            .with("span", 0)
            .unwrap();
        assert!(mlp.validate().is_ok());
        let err = PolicyConfig::preset(PolicyKind::Gru)
            .init(0, 4, &Device::default())
            .unwrap_err();
        assert!(err.to_string().contains("obs_dim"), "{err}");
    }

    #[test]
    fn matched_params_lands_within_ten_percent() {
        let (obs_dim, num_actions) = (27, 4);
        let target = PolicyConfig::preset(PolicyKind::Feedback)
            .num_parameters(obs_dim, num_actions)
            .unwrap();
        for kind in PolicyKind::ALL {
            let config = PolicyConfig::matched_params(kind, target, obs_dim, num_actions).unwrap();
            let got = config.num_parameters(obs_dim, num_actions).unwrap();
            let rel = (got as f64 - target as f64).abs() / target as f64;
            assert!(rel <= 0.10, "{kind}: {got} vs {target}");
            config.validate().unwrap();
        }
        assert!(PolicyConfig::matched_params(PolicyKind::Gru, 10, obs_dim, num_actions).is_err());
    }

    /// A config of `kind` with every field of the kind off its default (numbers doubled,
    /// booleans flipped, names the last of their choices).
    fn off_default(kind: PolicyKind) -> PolicyConfig {
        let mut config = PolicyConfig::preset(kind);
        config.critic = CriticKind::Separate;
        for (field, value) in config.spec.spec().values() {
            let changed = match value {
                serde_json::Value::Number(n) => serde_json::json!(n.as_u64().unwrap() * 2),
                serde_json::Value::Bool(b) => serde_json::json!(!b),
                serde_json::Value::String(s) => serde_json::json!(match s.as_str() {
                    "learned" => "embedding",
                    "input" => "null",
                    other => panic!("{kind}.{}: add a choice for {other}", field.name),
                }),
                other => panic!("{kind}.{}: {other}", field.name),
            };
            assert!(
                config.set(field.name, changed).unwrap(),
                "{kind}.{}",
                field.name
            );
        }
        assert_ne!(config, PolicyConfig::preset(kind));
        config
    }

    #[test]
    fn every_kind_round_trips_through_toml_and_json() {
        for kind in PolicyKind::ALL {
            for config in [PolicyConfig::preset(kind), off_default(kind)] {
                let text = toml::to_string(&config).unwrap();
                assert_eq!(
                    toml::from_str::<PolicyConfig>(&text).unwrap(),
                    config,
                    "{text}"
                );
                let json = serde_json::to_string(&config).unwrap();
                assert_eq!(serde_json::from_str::<PolicyConfig>(&json).unwrap(), config);
                // Only the kind's own fields are written, after its `kind`.
                let table: toml::Table = toml::from_str(&text).unwrap();
                let mut keys: Vec<&str> = table.keys().map(String::as_str).collect();
                keys.sort_unstable();
                let mut want: Vec<&str> = ["kind", "critic"]
                    .into_iter()
                    .chain(kind.fields().iter().map(|f| f.name))
                    .collect();
                want.sort_unstable();
                assert_eq!(keys, want, "{kind}");
                assert!(text.starts_with(&format!("kind = \"{kind}\"")), "{text}");
            }
        }
    }

    #[test]
    fn defaults_are_filled_per_kind() {
        // The same partial config gets each kind's own defaults for the rest.
        for kind in PolicyKind::ALL {
            let preset = PolicyConfig::preset(kind);
            for (field, value) in preset.spec.spec().values() {
                let config: PolicyConfig =
                    toml::from_str(&format!("kind = \"{kind}\"\ncritic = \"separate\"\n")).unwrap();
                assert_eq!(config.get(field.name), Some(value), "{kind}.{}", field.name);
                assert_eq!(config.critic, CriticKind::Separate);
                assert!(
                    !field.doc.trim().is_empty(),
                    "{kind}.{} has no doc",
                    field.name
                );
            }
        }
        let gru: PolicyConfig = toml::from_str("kind = \"gru\"\nd_model = 32").unwrap();
        let feedback: PolicyConfig = toml::from_str("kind = \"feedback\"\nd_model = 32").unwrap();
        assert_eq!(
            (gru.size("d_model"), gru.size("n_layers")),
            (Some(32), Some(1))
        );
        assert_eq!(
            (feedback.size("d_model"), feedback.size("n_layers")),
            (Some(32), Some(2))
        );
    }

    #[test]
    fn a_field_of_another_kind_is_ignored_and_a_field_of_none_is_an_error() {
        // A GRU config as every run wrote it before the kinds had their own configs: all of
        // every kind's fields.
        let old = "kind = \"gru\"\nd_model = 48\nn_heads = 4\nn_layers = 2\nd_ff = 256\n\
                   span = 32\nshare_kv = true\ngating = false\nhidden = 64\n\
                   critic = \"shared\"\nmemory_mix = \"learned\"\ncurrent_slot = \"input\"\n";
        let config: PolicyConfig = toml::from_str(old).unwrap();
        let want = PolicyConfig::preset(PolicyKind::Gru)
            .with("d_model", 48)
            .unwrap()
            .with("n_layers", 2)
            .unwrap();
        assert_eq!(config, want);
        assert_eq!(config.get("span"), None);
        assert!(!toml::to_string(&config).unwrap().contains("span"));
        // Ignored even when the other kind would refuse the value.
        let config: PolicyConfig = toml::from_str("kind = \"mlp\"\nspan = 0\nn_heads = 0").unwrap();
        assert_eq!(config, PolicyConfig::preset(PolicyKind::Mlp));
        let mut mlp = PolicyConfig::preset(PolicyKind::Mlp);
        assert!(!mlp.set("span", 3).unwrap());
        assert!(mlp.set("hidden", 3).unwrap());
        assert_eq!(mlp.size("hidden"), Some(3));
        // A field no kind has, and a value of the wrong type, are errors naming the field.
        let parse_err = |text: &str| {
            toml::from_str::<PolicyConfig>(text)
                .unwrap_err()
                .to_string()
        };
        let err = parse_err("kind = \"mlp\"\nspam = 3");
        assert!(err.contains("spam") && err.contains("hidden"), "{err}");
        let err = parse_err("kind = \"feedback\"\nshare_kv = 3");
        assert!(err.contains("share_kv"), "{err}");
        let err = mlp.set("bogus", 1).unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
        let err = parse_err("d_model = 3");
        assert!(err.contains("kind") && err.contains("feedback"), "{err}");
        let err = parse_err("kind = \"lstm\"");
        assert!(err.contains("lstm"), "{err}");
    }

    #[test]
    fn approx_parameters_is_close_to_the_count_for_every_kind() {
        for kind in PolicyKind::ALL {
            for config in [PolicyConfig::preset(kind), off_default(kind)] {
                for (obs_dim, num_actions) in [(27, 4), (3, 2), (100, 9)] {
                    let exact = config.num_parameters(obs_dim, num_actions).unwrap() as f64;
                    let approx = config.networks() * config.approx_parameters(obs_dim, num_actions);
                    let rel = (approx - exact).abs() / exact;
                    // The Feedback's shared key/value projection counts once per layer (an
                    // upper bound): ≈ 9 % over at the preset, the other kinds within 1 %.
                    let tolerance = if kind == PolicyKind::Feedback {
                        0.10
                    } else {
                        0.01
                    };
                    assert!(rel < tolerance, "{kind} {config:?}: {approx} vs {exact}");
                }
            }
        }
    }

    #[test]
    fn the_estimates_of_the_presets_are_the_previous_numbers() {
        // What the single table of estimates gave before the kinds declared their own.
        let cases = [
            (
                PolicyKind::Feedback,
                102_477.0,
                [249_664.0, 249_664.0, 257_856.0, 257_856.0],
            ),
            (
                PolicyKind::Transformer,
                102_477.0,
                [216_896.0, 216_896.0, 216_896.0, 249_152.0],
            ),
            (PolicyKind::Gru, 27_077.0, [200_000.0; 4]),
            (PolicyKind::Mlp, 6_277.0, [200_000.0; 4]),
        ];
        for (kind, params, flops) in cases {
            let p = PolicyConfig::preset(kind);
            assert_eq!(p.approx_parameters(27, 4), params, "{kind}");
            let got = [(1, true), (1, false), (64, true), (64, false)]
                .map(|(chunk, fused)| p.flops_per_step(100_000, chunk, fused));
            assert_eq!(got, flops, "{kind}");
        }
        let footprint = |kind| {
            let f = PolicyConfig::preset(kind).footprint();
            (f.memory_per_env, f.activations_per_step)
        };
        assert_eq!(footprint(PolicyKind::Feedback), (12_672.0, 6_192.0));
        assert_eq!(footprint(PolicyKind::Transformer), (12_672.0, 6_192.0));
        assert_eq!(footprint(PolicyKind::Gru), (64.0, 768.0));
        assert_eq!(footprint(PolicyKind::Mlp), (0.0, 384.0));
        let cost = |kind| PolicyConfig::preset(kind).relative_cost();
        assert!((cost(PolicyKind::Feedback) - 1.86).abs() < 1e-12);
        assert!((cost(PolicyKind::Transformer) - 1.2).abs() < 1e-12);
        assert_eq!((cost(PolicyKind::Gru), cost(PolicyKind::Mlp)), (0.35, 0.08));
        let separate = PolicyConfig {
            critic: CriticKind::Separate,
            ..PolicyConfig::preset(PolicyKind::Gru)
        };
        assert_eq!(separate.relative_cost(), 0.7);
        assert_eq!(separate.footprint().memory_per_env, 128.0);
    }
}
