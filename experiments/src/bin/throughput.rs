//! Training throughput (env steps per second, rollout + update) of PPO on GridMaze 9×9 for
//! every policy kind at the same width and depth, with the fused CPU kernels and with the
//! tensor-operation reference path back to back (same seed, same config), and their ratio.
//!
//! ```text
//! cargo run --release -p experiments --bin throughput -- --updates 3 --threads 2
//! ```
//! Prints one line per policy and path, and writes `results/throughput/throughput.csv`.
//!
//! Beside the env steps per second it prints the floating-point work done per second
//! ([`PolicyConfig::flops_per_step`]: forward, backward counted as twice the forward, Adam) of
//! the update and of the rollout, and that rate as a fraction of one core's f32 FMA peak
//! (`--peak-gflops`, else the clock from `/proc/cpuinfo` × 32: two 8-lane FMA units, the
//! AVX2 kernels of the matrix products), times the number of threads.

use std::path::PathBuf;

use agents::{PolicyConfig, PolicyKind};
use anyhow::Result;
use clap::Parser;
use envs::GridMazeConfig;
use experiments::report;
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
    /// Worker threads of the pool (envs, rollouts and the fused kernels); 0: all cores.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Paths to measure: `fused` (the CPU kernels, where a policy has one) and `reference`
    /// (tensor operations only).
    #[arg(long, value_delimiter = ',', default_value = "fused,reference")]
    paths: Vec<String>,
    /// Output CSV.
    #[arg(long, default_value = "results/throughput/throughput.csv")]
    out: PathBuf,
    /// One core's f32 peak in GFLOP/s (default: the clock from /proc/cpuinfo × 32).
    #[arg(long)]
    peak_gflops: Option<f64>,
}

/// One core's f32 FMA peak, GFLOP/s: the first `cpu MHz` of `/proc/cpuinfo` × 32 flops per
/// cycle (two 8-lane FMA units).
fn core_peak_gflops() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = info
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    Some(mhz / 1000.0 * 32.0)
}

/// Floating-point operations of one PPO update and of one rollout of `cfg` for a policy of
/// `params` parameters on the given path.
fn work(cfg: &TrainConfig, params: usize, fused: bool) -> (f64, f64) {
    let steps = (cfg.num_envs * cfg.num_steps) as f64;
    let chunk = cfg.ppo.seq_len.unwrap_or(cfg.num_steps);
    let forward = cfg.policy.flops_per_step(params, chunk, fused);
    // Backward: two products per forward product (the input's and the weight's gradient).
    let per_epoch = 3.0 * forward * steps;
    // Adam: moments, bias correction, square root, division and the step, per parameter.
    let adam = 12.0 * params as f64 * cfg.ppo.num_minibatches as f64;
    let update = cfg.ppo.update_epochs as f64 * (per_epoch + adam);
    let rollout = cfg.policy.flops_per_step(params, 1, fused) * steps;
    (update, rollout)
}

/// One measured run.
struct Measured {
    steps_per_s: f64,
    rollout_steps_per_s: f64,
    update_s: f64,
    /// Floating-point work of one update, GFLOP.
    update_gflop: f64,
    /// GFLOP/s of the update and of the rollout.
    update_gflops: f64,
    rollout_gflops: f64,
}

fn config(args: &Args, policy: &PolicyConfig) -> TrainConfig {
    TrainConfig {
        env: EnvConfig::Gridmaze(GridMazeConfig::multi(args.size, 128)),
        policy: policy.clone(),
        num_envs: args.num_envs,
        num_steps: args.num_steps,
        total_steps: (args.num_envs * args.num_steps * args.updates) as u64,
        checkpoint_every: 0,
        threads: args.threads,
        ..TrainConfig::default()
    }
}

fn measure(args: &Args, policy: &PolicyConfig, params: usize, dir: PathBuf) -> Result<Measured> {
    let cfg = config(args, policy);
    let (update_flops, rollout_flops) = work(&cfg, params, agents::kernels::fused_enabled());
    let s = train_from_config(
        &cfg,
        TrainOptions {
            run_dir: Some(dir),
            quiet: true,
            ..Default::default()
        },
    )?;
    let update_s = s.update_time_s / s.updates_done as f64;
    let rollout_s = s.rollout_time_s / s.updates_done as f64;
    Ok(Measured {
        steps_per_s: s.steps_per_s,
        rollout_steps_per_s: s.env_steps as f64 / s.rollout_time_s,
        update_s,
        update_gflop: update_flops / 1e9,
        update_gflops: update_flops / update_s / 1e9,
        rollout_gflops: rollout_flops / rollout_s / 1e9,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    for path in &args.paths {
        anyhow::ensure!(
            path == "fused" || path == "reference",
            "--paths: unknown path `{path}` (expected fused, reference)"
        );
    }
    let tmp = std::env::temp_dir().join(format!("fbrl-throughput-{}", std::process::id()));
    let header = [
        "policy",
        "path",
        "threads",
        "parameters",
        "num_envs",
        "num_steps",
        "updates",
        "steps_per_s",
        "rollout_steps_per_s",
        "update_s_per_update",
        "update_gflop",
        "update_gflops",
        "rollout_gflops",
        "update_fraction_of_peak",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    let threads = if args.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.threads
    };
    let peak = args
        .peak_gflops
        .or_else(core_peak_gflops)
        .unwrap_or(f64::NAN)
        * threads as f64;
    println!(
        "threads {threads}, {} envs x {} steps, {} updates; f32 FMA peak of {threads} core(s): {peak:.0} GFLOP/s",
        args.num_envs, args.num_steps, args.updates
    );
    for name in &args.policies {
        let kind: PolicyKind = name.parse()?;
        let mut policy = PolicyConfig::preset(kind);
        // A kind without a field ignores it.
        for (field, value) in [
            ("d_model", args.d_model),
            ("hidden", args.d_model),
            ("n_layers", args.n_layers),
        ] {
            policy.set(field, value)?;
        }
        let obs_dim = GridMazeConfig::multi(args.size, 128).obs_len();
        let params = policy.num_parameters(obs_dim, 4)?;
        let mut by_path = Vec::new();
        for path in &args.paths {
            agents::kernels::set_fused(path == "fused");
            let m = measure(&args, &policy, params, tmp.join(format!("{name}-{path}")))?;
            let update_gflop = m.update_gflop;
            println!(
                "{name:12} {path:9} {params:7} params  train {:8.0} steps/s  (rollout alone {:8.0} steps/s, update {:.2} s each)  update {update_gflop:.1} GFLOP at {:5.1} GFLOP/s ({:4.1} % of peak), rollout {:5.1} GFLOP/s",
                m.steps_per_s,
                m.rollout_steps_per_s,
                m.update_s,
                m.update_gflops,
                100.0 * m.update_gflops / peak,
                m.rollout_gflops
            );
            rows.push(vec![
                name.clone(),
                path.clone(),
                threads.to_string(),
                params.to_string(),
                args.num_envs.to_string(),
                args.num_steps.to_string(),
                args.updates.to_string(),
                format!("{:.0}", m.steps_per_s),
                format!("{:.0}", m.rollout_steps_per_s),
                format!("{:.3}", m.update_s),
                format!("{update_gflop:.2}"),
                format!("{:.2}", m.update_gflops),
                format!("{:.2}", m.rollout_gflops),
                format!("{:.3}", m.update_gflops / peak),
            ]);
            by_path.push(m);
        }
        if let [fused, reference] = by_path.as_slice() {
            println!(
                "{name:12} fused / reference: training {:.2}x, rollout {:.2}x, update {:.2}x",
                fused.steps_per_s / reference.steps_per_s,
                fused.rollout_steps_per_s / reference.rollout_steps_per_s,
                reference.update_s / fused.update_s
            );
        }
    }
    agents::kernels::set_fused(true);
    let _ = std::fs::remove_dir_all(&tmp);
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    report::write_csv(&args.out, &header, &rows)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
