//! [`Policy`], the enum that the trainer, the CLI and the experiments use to pick an
//! architecture at run time, with its configuration ([`PolicyConfig`]) and errors.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use burn::module::Param;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::actor_critic::{ActorCritic, SequenceOutput, StepOutput};
use crate::attention::{AttentionConfigError, check_config};
use crate::distribution::ActionDist;
use crate::feedback::{CurrentSlot, FeedbackTransformer, FeedbackTransformerConfig, MemoryMix};
use crate::gru::{GruConfig, GruPolicy};
use crate::memory::Memory;
use crate::mlp::{MlpConfig, MlpPolicy};
use crate::transformer::{Transformer, TransformerConfig};

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
    /// A policy kind name that is not one of `feedback`, `transformer`, `gru`, `mlp`.
    #[error("unknown policy kind `{0}` (expected one of: feedback, transformer, gru, mlp)")]
    UnknownKind(String),
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

/// Which architecture a [`Policy`] is. Written in configs and on the command line in lowercase:
/// `feedback`, `transformer`, `gru`, `mlp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    /// The Feedback Transformer: every layer attends to a shared memory of past steps.
    Feedback,
    /// The standard (Transformer-XL style) transformer: layer l attends to layer l−1's past.
    Transformer,
    /// A GRU recurrent baseline.
    Gru,
    /// A memoryless MLP baseline.
    Mlp,
}

impl PolicyKind {
    /// Every kind, in a fixed order.
    pub const ALL: [PolicyKind; 4] = [
        PolicyKind::Feedback,
        PolicyKind::Transformer,
        PolicyKind::Gru,
        PolicyKind::Mlp,
    ];

    /// The lowercase name used in configs, files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Feedback => "feedback",
            PolicyKind::Transformer => "transformer",
            PolicyKind::Gru => "gru",
            PolicyKind::Mlp => "mlp",
        }
    }

    /// Whether this kind is an attention model (uses `n_heads`, `d_ff`, `span`).
    pub fn is_attention(self) -> bool {
        matches!(self, PolicyKind::Feedback | PolicyKind::Transformer)
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
/// weight files.
///
/// Fields left out of a config take the value of [`PolicyConfig::preset`] for its `kind`, so
/// `kind = "gru"` alone is a complete config. Unknown fields are an error. Each kind reads only
/// the fields it uses (listed per field); the others are kept but ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawPolicyConfig")]
pub struct PolicyConfig {
    /// Which architecture: `feedback`, `transformer`, `gru` or `mlp`.
    pub kind: PolicyKind,
    /// Model width: embedding and attention width (feedback, transformer), hidden-state size (gru).
    pub d_model: usize,
    /// Number of attention heads; must divide `d_model` (feedback, transformer).
    pub n_heads: usize,
    /// Number of layers: transformer blocks (feedback, transformer), stacked GRU cells (gru).
    pub n_layers: usize,
    /// Hidden width of each block's feed-forward network (feedback, transformer).
    pub d_ff: usize,
    /// Attention span τ: how many past time steps a step can attend to (feedback, transformer).
    pub span: usize,
    /// Share the memory's key/value projections across layers, computed once per step (feedback).
    pub share_kv: bool,
    /// GTrXL-style gated residual connections instead of plain residuals (transformer).
    pub gating: bool,
    /// Width of the two hidden layers (mlp).
    pub hidden: usize,
    /// `shared`: the value head reads the actor's network; `separate`: the critic is a second
    /// network of the same kind and size (every kind).
    pub critic: CriticKind,
    /// What the memory vector is made of: `learned` (the mix of all layers), `top` or
    /// `embedding` (feedback; ablations of the mechanism).
    #[serde(default)]
    pub memory_mix: MemoryMix,
    /// What each layer attends to besides the window: `input` (its own input) or `null` (a
    /// learned key/value pair) (feedback; an ablation).
    #[serde(default)]
    pub current_slot: CurrentSlot,
}

/// [`PolicyConfig`] as written by a user: every field but `kind` optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicyConfig {
    kind: PolicyKind,
    d_model: Option<usize>,
    n_heads: Option<usize>,
    n_layers: Option<usize>,
    d_ff: Option<usize>,
    span: Option<usize>,
    share_kv: Option<bool>,
    gating: Option<bool>,
    hidden: Option<usize>,
    critic: Option<CriticKind>,
    memory_mix: Option<MemoryMix>,
    current_slot: Option<CurrentSlot>,
}

impl TryFrom<RawPolicyConfig> for PolicyConfig {
    type Error = PolicyError;

    fn try_from(raw: RawPolicyConfig) -> Result<Self, Self::Error> {
        let p = PolicyConfig::preset(raw.kind);
        let config = PolicyConfig {
            kind: raw.kind,
            d_model: raw.d_model.unwrap_or(p.d_model),
            n_heads: raw.n_heads.unwrap_or(p.n_heads),
            n_layers: raw.n_layers.unwrap_or(p.n_layers),
            d_ff: raw.d_ff.unwrap_or(p.d_ff),
            span: raw.span.unwrap_or(p.span),
            share_kv: raw.share_kv.unwrap_or(p.share_kv),
            gating: raw.gating.unwrap_or(p.gating),
            hidden: raw.hidden.unwrap_or(p.hidden),
            critic: raw.critic.unwrap_or(p.critic),
            memory_mix: raw.memory_mix.unwrap_or(p.memory_mix),
            current_slot: raw.current_slot.unwrap_or(p.current_slot),
        };
        config.validate()?;
        Ok(config)
    }
}

impl Default for PolicyConfig {
    /// The Feedback Transformer preset.
    fn default() -> Self {
        Self::preset(PolicyKind::Feedback)
    }
}

impl PolicyConfig {
    /// The equal-depth preset shared by every kind: width 64, 2 layers, 4 heads, `d_ff` 256,
    /// span τ = 32, shared keys/values, no gating; the GRU is one cell of width 64 and the MLP
    /// has two hidden layers of 64.
    pub fn preset(kind: PolicyKind) -> Self {
        Self {
            kind,
            d_model: 64,
            n_heads: 4,
            n_layers: if kind == PolicyKind::Gru { 1 } else { 2 },
            d_ff: 256,
            span: 32,
            share_kv: true,
            gating: false,
            hidden: 64,
            critic: CriticKind::Shared,
            memory_mix: MemoryMix::Learned,
            current_slot: CurrentSlot::Input,
        }
    }

    /// Checks every field the kind uses; the error names the first bad field.
    pub fn validate(&self) -> Result<(), PolicyError> {
        match self.kind {
            PolicyKind::Feedback | PolicyKind::Transformer => {
                check_config(
                    self.d_model,
                    self.n_heads,
                    self.n_layers,
                    self.d_ff,
                    self.span,
                )?;
            }
            PolicyKind::Gru => {
                if self.d_model == 0 {
                    return Err(invalid("d_model", "must be at least 1"));
                }
                if self.n_layers == 0 {
                    return Err(invalid("n_layers", "must be at least 1"));
                }
            }
            PolicyKind::Mlp => {
                if self.hidden == 0 {
                    return Err(invalid("hidden", "must be at least 1"));
                }
            }
        }
        Ok(())
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
        let net = |device: &Device| -> Result<PolicyNet, PolicyError> {
            Ok(match self.kind {
                PolicyKind::Feedback => PolicyNet::Feedback(
                    FeedbackTransformerConfig::new()
                        .with_d_model(self.d_model)
                        .with_n_heads(self.n_heads)
                        .with_n_layers(self.n_layers)
                        .with_d_ff(self.d_ff)
                        .with_span(self.span)
                        .with_share_kv(self.share_kv)
                        .with_memory_mix(self.memory_mix)
                        .with_current_slot(self.current_slot)
                        .try_init(obs_dim, num_actions, device)?,
                ),
                PolicyKind::Transformer => PolicyNet::Transformer(
                    TransformerConfig::new()
                        .with_d_model(self.d_model)
                        .with_n_heads(self.n_heads)
                        .with_n_layers(self.n_layers)
                        .with_d_ff(self.d_ff)
                        .with_span(self.span)
                        .with_gating(self.gating)
                        .try_init(obs_dim, num_actions, device)?,
                ),
                PolicyKind::Gru => PolicyNet::Gru(
                    GruConfig::new()
                        .with_d_model(self.d_model)
                        .with_n_layers(self.n_layers)
                        .init(obs_dim, num_actions, device),
                ),
                PolicyKind::Mlp => PolicyNet::Mlp(MlpConfig::new().with_hidden(self.hidden).init(
                    obs_dim,
                    num_actions,
                    device,
                )),
            })
        };
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
    /// large to build. Within a few percent of [`PolicyConfig::num_parameters`] per network.
    pub fn approx_parameters(&self, obs_dim: usize, num_actions: usize) -> f64 {
        let f = |x: usize| x as f64;
        let heads_out = f(num_actions) + 1.0;
        match self.kind {
            PolicyKind::Mlp => {
                let h = f(self.hidden);
                f(obs_dim) * h + h + h * h + h + (h + 1.0) * heads_out
            }
            PolicyKind::Gru => {
                let d = f(self.d_model);
                f(obs_dim) * d
                    + d
                    + f(self.n_layers) * 2.0 * (3.0 * d * d + 3.0 * d)
                    + (d + 1.0) * heads_out
            }
            PolicyKind::Feedback | PolicyKind::Transformer => {
                let (d, ff) = (f(self.d_model), f(self.d_ff));
                let per_layer = 4.0 * (d * d + d)
                    + 2.0 * d * ff
                    + ff
                    + d
                    + 4.0 * d
                    + f(self.span + 1) * f(self.n_heads);
                f(obs_dim) * d + d + f(self.n_layers) * per_layer + (d + 1.0) * heads_out + 2.0 * d
            }
        }
    }

    /// Floating-point operations (a multiply-add counts two) of one forward pass per env step
    /// of a policy with `params` parameters, run over chunks of `chunk` steps (1: a rollout's
    /// decoding step; the sequence length: a PPO update), on the fused kernels (`fused`) or
    /// the tensor-operation reference path. Matrix products count every weight once per step
    /// (`2·params`, biases and norms included as an upper bound) plus what a kind applies more
    /// than once per step; attention counts the score and value products of every key slot
    /// actually computed, masked ones included: `τ + 1` per query on the fused paths and in the
    /// Feedback recurrence, `τ + chunk` on the Transformer's reference path, which scores the
    /// whole cached prefix plus chunk for every query and masks most of it.
    pub fn flops_per_step(&self, params: usize, chunk: usize, fused: bool) -> f64 {
        let f = |x: usize| x as f64;
        let weights = 2.0 * f(params);
        let (d, layers, span) = (f(self.d_model), f(self.n_layers), f(self.span));
        let networks = match self.critic {
            CriticKind::Shared => 1.0,
            CriticKind::Separate => 2.0,
        };
        // Score q·k and weighted value, per key slot: 2·d each.
        let attention = |keys: f64| networks * layers * 4.0 * d * keys;
        match self.kind {
            PolicyKind::Mlp | PolicyKind::Gru => weights,
            PolicyKind::Transformer => {
                let keys = if fused || chunk == 1 {
                    span + 1.0
                } else {
                    span + f(chunk)
                };
                weights + attention(keys)
            }
            PolicyKind::Feedback => {
                // A group's key/value projection `d → 2d` (counted once in `params`, for the
                // new memory vector) is also applied to every layer's own input (the current
                // slot), and to the starting window's `τ` vectors once per chunk.
                let groups = if self.share_kv { 1.0 } else { layers };
                let kv = 2.0 * d * 2.0 * d;
                let self_slots = if self.current_slot == CurrentSlot::Input {
                    layers
                } else {
                    0.0
                };
                let window = if chunk > 1 {
                    groups * span / f(chunk)
                } else {
                    0.0
                };
                let extra = networks * kv * (self_slots + window);
                weights + extra + attention(span + 1.0)
            }
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
        let step = if kind.is_attention() { base.n_heads } else { 1 };
        let with_width = |units: usize| {
            let mut c = base.clone();
            let width = units * step;
            match kind {
                PolicyKind::Mlp => c.hidden = width,
                _ => {
                    c.d_model = width;
                    c.d_ff = 4 * width;
                }
            }
            c
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

/// One network of any kind: the actor of a [`Policy`], or its separate critic.
#[derive(Module, Debug)]
pub enum PolicyNet {
    /// A Feedback Transformer.
    Feedback(FeedbackTransformer),
    /// A standard transformer.
    Transformer(Transformer),
    /// A GRU.
    Gru(GruPolicy),
    /// A memoryless MLP.
    Mlp(MlpPolicy),
}

impl PolicyNet {
    /// Which architecture this is.
    pub fn kind(&self) -> PolicyKind {
        match self {
            PolicyNet::Feedback(_) => PolicyKind::Feedback,
            PolicyNet::Transformer(_) => PolicyKind::Transformer,
            PolicyNet::Gru(_) => PolicyKind::Gru,
            PolicyNet::Mlp(_) => PolicyKind::Mlp,
        }
    }

    /// Number of tensors in this network's [`Memory`].
    fn memory_len(&self) -> usize {
        match self {
            PolicyNet::Feedback(p) => p.memory_shapes(0).len(),
            PolicyNet::Transformer(p) => p.memory_shapes(0).len(),
            PolicyNet::Gru(_) => 1,
            PolicyNet::Mlp(_) => 0,
        }
    }

    fn inner(&self) -> &dyn ActorCritic {
        match self {
            PolicyNet::Feedback(p) => p,
            PolicyNet::Transformer(p) => p,
            PolicyNet::Gru(p) => p,
            PolicyNet::Mlp(p) => p,
        }
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
        let ((logits, value, actor_mem), attention) = match &self.actor {
            PolicyNet::Feedback(p) => {
                let (out, w) = p.step_with_attention(obs.clone(), starts.clone(), actor_mem);
                (out, Some(w))
            }
            PolicyNet::Transformer(p) => {
                let (out, w) = p.step_with_attention(obs.clone(), starts.clone(), actor_mem);
                (out, Some(w))
            }
            other => (
                other.inner().step(obs.clone(), starts.clone(), actor_mem),
                None,
            ),
        };
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
        assert_eq!(
            (parsed.n_layers, parsed.gating, parsed.d_model),
            (4, true, 64)
        );
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
            (
                "n_layers",
                PolicyConfig {
                    n_layers: 0,
                    ..base.clone()
                },
            ),
            (
                "span",
                PolicyConfig {
                    span: 0,
                    ..base.clone()
                },
            ),
            (
                "n_heads",
                PolicyConfig {
                    n_heads: 0,
                    ..base.clone()
                },
            ),
            (
                "d_ff",
                PolicyConfig {
                    d_ff: 0,
                    ..base.clone()
                },
            ),
            (
                "d_model",
                PolicyConfig {
                    d_model: 30,
                    ..base.clone()
                },
            ),
        ];
        for (field, config) in cases {
            match config.validate() {
                Err(PolicyError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        let mlp = PolicyConfig {
            hidden: 0,
            ..PolicyConfig::preset(PolicyKind::Mlp)
        };
        assert!(mlp.validate().is_err());
        // The MLP ignores the attention fields.
        let mlp = PolicyConfig {
            span: 0,
            ..PolicyConfig::preset(PolicyKind::Mlp)
        };
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
}
