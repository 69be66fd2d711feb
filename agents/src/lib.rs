//! Policies with memory and PPO.
//!
//! - [`Memory`] ← [`ActorCritic`]: the state a caller holds, and the interface
//!   (`init_memory`, `step`, `forward_sequence`).
//! - The policies (Feedback Transformer, Transformer, GRU, MLP) and `Policy`, which picks one
//!   at run time.
//! - [`rollout`]: rollout collection, buffers, normalisers and GAE, shared by the learners.
//! - [`learner::Learner`], the algorithm seam, and its learners: PPO with whole-sequence
//!   minibatches and truncated BPTT, and IMPALA's V-trace actor-critic ([`vtrace`]).
//! - [`Agent`]: a trained policy loaded from its file, acting on plain slices (deployment).

pub mod actor_critic;
pub mod agent;
pub mod attention;
pub mod distribution;
pub mod feedback;
mod feedback_options;
pub mod gru;
pub mod heads;
pub mod kernels;
pub mod learner;
pub mod memory;
pub mod mlp;
pub mod onnx;
pub mod policy;
pub mod policy_io;
pub mod policy_spec;
pub mod ppo;
pub mod rollout;
#[cfg(all(test, feature = "flex"))]
mod test_support;
pub mod transformer;
pub mod vtrace;

// The policy kinds, registered once each: a kind is its module (above), its line here and its
// tests; configs, the command line and the cost tables read the rest from its `PolicySpec`.
policy_kinds! {
    /// The Feedback Transformer: every layer attends to a shared memory of past steps.
    Feedback = "feedback": feedback::FeedbackSpec => feedback::FeedbackTransformer,
    /// The standard (Transformer-XL style) transformer: layer l attends to layer l−1's past.
    Transformer = "transformer": transformer::TransformerSpec => transformer::Transformer,
    /// A GRU recurrent baseline.
    Gru = "gru": gru::GruSpec => gru::GruPolicy,
    /// A memoryless MLP baseline.
    Mlp = "mlp": mlp::MlpSpec => mlp::MlpPolicy,
}

pub use actor_critic::{ActorCritic, SequenceOutput, StepOutput};
pub use agent::{Acted, Agent, AgentMemory};
/// The tensor library the policies are written in (for deployers: no separate `burn`
/// dependency, so no second feature set to compile).
pub use burn;
/// The device a policy runs on (`Device::default()`: the CPU backend of the build).
pub use burn::prelude::Device;
pub use distribution::{ActionDist, EnvAction};
pub use feedback::{
    CurrentSlot, FeedbackSpec, FeedbackTransformer, FeedbackTransformerConfig, MemoryMix,
};
pub use gru::{GruConfig, GruPolicy, GruSpec};
pub use memory::{Memory, MemoryLayoutError};
pub use mlp::{MlpConfig, MlpPolicy, MlpSpec};
pub use onnx::{OnnxExport, OnnxSummary, export_onnx};
pub use policy::{CriticKind, Policy, PolicyConfig, PolicyError};
pub use policy_io::{
    PolicyFileHeader, load_policy, load_policy_weights, read_policy_header, save_policy,
    save_policy_for, save_policy_with_normalizer,
};
pub use policy_spec::{Field, MemoryFootprint, PolicySpec};
pub use transformer::{Transformer, TransformerConfig, TransformerSpec};
