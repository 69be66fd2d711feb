//! Policies with memory and PPO.
//!
//! - [`ActorCritic`]: the interface (`init_memory`, `step`, `forward_sequence`).
//! - The policies (Feedback Transformer, Transformer, GRU, MLP) and `Policy`, which picks one
//!   at run time.
//! - PPO with whole-sequence minibatches and truncated BPTT.

pub mod memory;
pub mod policy;

pub use memory::Memory;
pub use policy::ActorCritic;
