//! Training throughput (env steps per second, rollout + update) of PPO on GridMaze 9×9 for
//! every policy kind at the same width and depth.
//!
//! ```text
//! cargo run --release -p experiments --bin throughput -- --updates 3
//! ```
//! Prints one line per policy and writes `results/throughput/throughput.csv`.

use std::io::Write;
use std::path::PathBuf;

use agents::{PolicyConfig, PolicyKind};
use anyhow::Result;
use clap::Parser;
use envs::GridMazeConfig;
use fbrl::{EnvConfig, TrainConfig, TrainOptions, train_from_config};

/// Measures PPO training steps/s on GridMaze for each policy kind.
#[derive(Parser, Debug)]
struct Args {
    /// Number of PPO updates per policy (the first is included).
    #[arg(long, default_value_t = 3)]
    updates: usize,
    /// Parallel envs.
    #[arg(long, default_value_t = 64)]
    num_envs: usize,
    /// Steps per env per rollout.
    #[arg(long, default_value_t = 128)]
    num_steps: usize,
    /// Model width d_model (and MLP hidden width).
    #[arg(long, default_value_t = 64)]
    d_model: usize,
    /// Layers (attention blocks, GRU cells).
    #[arg(long, default_value_t = 2)]
    n_layers: usize,
    /// Maze side length.
    #[arg(long, default_value_t = 9)]
    size: usize,
    /// Policies to measure (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "mlp,gru,transformer,feedback"
    )]
    policies: Vec<String>,
    /// Output CSV.
    #[arg(long, default_value = "results/throughput/throughput.csv")]
    out: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let tmp = std::env::temp_dir().join(format!("fbrl-throughput-{}", std::process::id()));
    let mut lines = vec!["policy,parameters,num_envs,num_steps,updates,steps_per_s,rollout_steps_per_s,update_s_per_update".to_string()];
    for name in &args.policies {
        let kind: PolicyKind = name.parse()?;
        let mut policy = PolicyConfig::preset(kind);
        policy.d_model = args.d_model;
        policy.hidden = args.d_model;
        policy.n_layers = args.n_layers;
        let cfg = TrainConfig {
            env: EnvConfig::Gridmaze(GridMazeConfig::multi(args.size, 128)),
            policy: policy.clone(),
            num_envs: args.num_envs,
            num_steps: args.num_steps,
            total_steps: (args.num_envs * args.num_steps * args.updates) as u64,
            checkpoint_every: 0,
            ..TrainConfig::default()
        };
        let obs_dim = GridMazeConfig::multi(args.size, 128).obs_len();
        let params = policy.num_parameters(obs_dim, 4)?;
        let dir = tmp.join(name);
        let s = train_from_config(
            &cfg,
            TrainOptions {
                run_dir: Some(dir),
                quiet: true,
                ..Default::default()
            },
        )?;
        let steps = s.env_steps as f64;
        let line = format!(
            "{name},{params},{},{},{},{:.0},{:.0},{:.2}",
            args.num_envs,
            args.num_steps,
            s.updates_done,
            s.steps_per_s,
            steps / s.rollout_time_s,
            s.update_time_s / s.updates_done as f64
        );
        println!(
            "{name:12} {params:7} params  train {:8.0} steps/s  (rollout alone {:8.0} steps/s, update {:.2} s each)",
            s.steps_per_s,
            steps / s.rollout_time_s,
            s.update_time_s / s.updates_done as f64
        );
        lines.push(line);
    }
    let _ = std::fs::remove_dir_all(&tmp);
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut f = std::fs::File::create(&args.out)?;
    writeln!(f, "{}", lines.join("\n"))?;
    println!("wrote {}", args.out.display());
    Ok(())
}
