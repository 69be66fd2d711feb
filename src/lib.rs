//! fbrl: PPO with Feedback Transformer policies on partially observable tasks.

pub use agents;
pub use envs;
