//! fbrl: PPO with Feedback Transformer policies on partially observable tasks.
//!
//! Cargo features (all on by default): `plot` (reward-curve charts, [`plot`]) and `cli` (the
//! `fbrl` command line, [`cli`]); a program that only trains and evaluates can turn them off
//! and drop plotters, clap and indicatif.

pub use agents;
pub use envs;

pub mod attention_view;
pub mod checkpoint;
pub mod config;
pub mod distributed;
pub mod eval;
pub mod hooks;
pub mod metrics;
pub mod resources;
pub mod run_dir;
pub mod run_lock;
pub mod signals;
pub mod stats;
pub mod tensorboard;
pub mod trainer;

pub use config::{
    Algorithm, CartPoleConfig, ConfigError, CustomEnvConfig, EnvConfig, GymEnvConfig, TrainConfig,
};
pub use metrics::{METRICS_COLUMNS, MetricsRow};
pub use signals::StopFlag;
pub use trainer::{Interrupted, RunStart, RunSummary, TrainOptions, train, train_from_config};

#[cfg(feature = "cli")]
pub mod cli;
pub mod curves;
#[cfg(feature = "plot")]
pub mod plot;
