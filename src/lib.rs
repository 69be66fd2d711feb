//! fbrl: PPO with Feedback Transformer policies on partially observable tasks.

pub use agents;
pub use envs;

pub mod checkpoint;
pub mod config;
pub mod metrics;
pub mod resources;
pub mod run_dir;
pub mod run_lock;
pub mod signals;
pub mod trainer;

pub use config::{CartPoleConfig, ConfigError, CustomEnvConfig, EnvConfig, TrainConfig};
pub use metrics::{METRICS_HEADER, MetricsRow};
pub use signals::StopFlag;
pub use trainer::{Interrupted, RunSummary, TrainOptions, train, train_from_config};

pub mod cli;
pub mod curves;
pub mod plot;
