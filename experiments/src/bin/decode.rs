//! Decoding speed: the analog of the Feedback Transformer paper's decoding-speed table.
//!
//! For the Feedback Transformer and the standard transformer at several depths (same width,
//! heads and span), measures the per-step inference latency of `ActorCritic::step` at batch 1
//! and batch 64 on the plain (no autodiff) device, the steps per second, the memory held per
//! env, and the latency at episode step τ and 10·τ (which match: the memory is a fixed window).
//! Both models run on both paths in one process, their episodes interleaved: the fused CPU
//! kernels and the tensor-operation reference, so that every ratio compares like with like.
//!
//! Writes `decode.csv`, `decode.png` (+ `.svg`) and the generated block of `README.md` to
//! `--out` (the reading around the block is kept).
//!
//! ```text
//! cargo run --release -p experiments --bin decode
//! cargo run --release -p experiments --bin decode -- --depths 1,2 --episodes 1
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use agents::{ActorCritic, Memory, Policy, PolicyConfig, PolicyKind};
use anyhow::{Context, Result, bail};
use burn::prelude::*;
use clap::Parser;
use experiments::report;
use fbrl::plot::{LineChart, Series, policy_color};

/// Per-step decoding latency of the Feedback Transformer vs the standard transformer.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Depths (number of layers) to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    depths: Vec<usize>,
    /// Batch sizes (number of envs stepped together), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    batches: Vec<usize>,
    /// Model width d_model (the same for every depth and model).
    #[arg(long, default_value_t = 64)]
    d_model: usize,
    /// Number of attention heads.
    #[arg(long, default_value_t = 4)]
    n_heads: usize,
    /// Attention span τ, in steps.
    #[arg(long, default_value_t = 32)]
    span: usize,
    /// Feed-forward width (default 4·d_model).
    #[arg(long)]
    d_ff: Option<usize>,
    /// Timed episodes per configuration, interleaved across configurations; each episode is
    /// 10·τ steps.
    #[arg(long, default_value_t = 6)]
    episodes: usize,
    /// Untimed warm-up steps per configuration before the timed episodes.
    #[arg(long, default_value_t = 32)]
    warmup: usize,
    /// Observation features per step (27 = GridMaze's 3×3 view with 3 channels).
    #[arg(long, default_value_t = 27)]
    obs_dim: usize,
    /// Number of discrete actions.
    #[arg(long, default_value_t = 4)]
    num_actions: usize,
    /// Worker threads for the CPU backend's parallel kernels (0 = one per hardware thread).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Paths to measure: `fused` (the CPU kernels) and `reference` (tensor operations).
    #[arg(long, value_delimiter = ',', default_value = "fused,reference")]
    paths: Vec<String>,
    /// Output directory.
    #[arg(long, default_value = "results/decode")]
    out: PathBuf,
}

/// The measurements of one (model, depth, batch) configuration.
struct Row {
    model: PolicyKind,
    /// Whether the step ran on the fused kernels.
    fused: bool,
    depth: usize,
    batch: usize,
    params: usize,
    /// Mean per-step latency over all timed steps, seconds.
    mean_s: f64,
    /// Standard deviation of the per-step latency, seconds.
    std_s: f64,
    /// Median per-step latency over all timed steps, seconds.
    median_s: f64,
    /// Median latency of the steps at episode step τ (the `WINDOW` steps from τ), seconds.
    at_tau_s: f64,
    /// Median latency of the steps at episode step 10·τ (the `WINDOW` steps up to 10·τ), seconds.
    at_10tau_s: f64,
    /// Bytes of memory held per env.
    bytes_per_env: usize,
    /// Bytes of memory per env per remembered time step (`bytes_per_env / τ`).
    bytes_per_env_step: f64,
}

/// Number of steps whose median gives the latency "at τ" and "at 10·τ".
const WINDOW: usize = 16;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        0.5 * (xs[n / 2 - 1] + xs[n / 2])
    }
}

/// One policy step, with its results read back to the host as a rollout does (the action is
/// sampled from the logits on the host), so the time covers all the work of the step.
fn timed_step(
    policy: &Policy,
    obs: Tensor<2>,
    start: Tensor<1>,
    memory: Memory,
    device: &Device,
) -> Result<(f64, Memory)> {
    let t0 = Instant::now();
    let (logits, values, memory) = policy.step(obs, start, memory);
    let logits = logits.into_data();
    let values = values.into_data();
    device.sync().ok();
    let elapsed = t0.elapsed().as_secs_f64();
    std::hint::black_box((logits, values));
    Ok((elapsed, memory))
}

/// One configuration under measurement: the policy, its running memory, and the latency of
/// every timed step so far.
struct Bench {
    model: PolicyKind,
    fused: bool,
    depth: usize,
    batch: usize,
    policy: Policy,
    memory: Memory,
    obs_pool: Vec<Tensor<2>>,
    zeros: Tensor<1>,
    ones: Tensor<1>,
    /// `latencies[e][s]`: seconds of episode `e`'s step `s + 1`.
    latencies: Vec<Vec<f64>>,
    /// Memory shapes after warm-up, to check they never change.
    shapes: Vec<[usize; 3]>,
}

impl Bench {
    /// Builds the policy and runs the untimed warm-up steps.
    fn new(
        args: &Args,
        model: PolicyKind,
        fused: bool,
        depth: usize,
        batch: usize,
    ) -> Result<Self> {
        agents::kernels::set_fused(fused);
        let device = Device::flex();
        let mut config = PolicyConfig::preset(model);
        for (field, value) in [
            ("d_model", args.d_model),
            ("n_heads", args.n_heads),
            ("n_layers", depth),
            ("d_ff", args.d_ff.unwrap_or(4 * args.d_model)),
            ("span", args.span),
        ] {
            config.set(field, value)?;
        }
        let policy = config
            .init(args.obs_dim, args.num_actions, &device)
            .with_context(|| format!("building {model} with {depth} layers"))?;
        // A fixed pool of observations, cycled through.
        let obs_pool: Vec<Tensor<2>> = (0..64)
            .map(|i| {
                Tensor::<1, Int>::arange(0..(batch * args.obs_dim) as i64, &device)
                    .float()
                    .mul_scalar(0.37 + i as f32 * 0.011)
                    .sin()
                    .reshape([batch, args.obs_dim])
            })
            .collect();
        let memory = policy.init_memory(batch, &device);
        let mut bench = Self {
            model,
            fused,
            depth,
            batch,
            policy,
            memory,
            obs_pool,
            zeros: Tensor::zeros([batch], &device),
            ones: Tensor::ones([batch], &device),
            latencies: Vec::new(),
            shapes: Vec::new(),
        };
        for s in 0..args.warmup {
            bench.step(s)?;
        }
        bench.shapes = bench.memory.shapes();
        Ok(bench)
    }

    /// Runs episode step `s + 1` (an episode starts at `s = 0`) and returns its latency.
    fn step(&mut self, s: usize) -> Result<f64> {
        let start = if s == 0 { &self.ones } else { &self.zeros };
        let obs = self.obs_pool[s % self.obs_pool.len()].clone();
        let memory = std::mem::replace(&mut self.memory, Memory::empty());
        let (t, memory) = timed_step(&self.policy, obs, start.clone(), memory, &Device::flex())?;
        self.memory = memory;
        Ok(t)
    }

    /// One timed episode of `len` steps.
    fn episode(&mut self, len: usize) -> Result<()> {
        agents::kernels::set_fused(self.fused);
        let mut lat = Vec::with_capacity(len);
        for s in 0..len {
            lat.push(self.step(s)?);
        }
        if self.memory.shapes() != self.shapes {
            bail!(
                "{}: the memory changed shape during the episode: {:?} → {:?}",
                self.model,
                self.shapes,
                self.memory.shapes()
            );
        }
        self.latencies.push(lat);
        Ok(())
    }

    fn row(&self, tau: usize) -> Row {
        let all: Vec<f64> = self.latencies.iter().flatten().copied().collect();
        let n = all.len() as f64;
        let mean_s = all.iter().sum::<f64>() / n;
        let std_s = (all.iter().map(|x| (x - mean_s).powi(2)).sum::<f64>() / n).sqrt();
        let window = WINDOW.min(tau);
        let around = |from: usize| -> f64 {
            median(
                self.latencies
                    .iter()
                    .flat_map(|e| e[from..from + window].iter().copied())
                    .collect(),
            )
        };
        let bytes_per_env = self.memory.bytes_per_env();
        Row {
            model: self.model,
            fused: self.fused,
            depth: self.depth,
            batch: self.batch,
            params: self.policy.num_parameters(),
            mean_s,
            std_s,
            median_s: median(all),
            // Episode step τ is index τ − 1; the window ending at step 10·τ is the last one.
            at_tau_s: around(tau - 1),
            at_10tau_s: around(10 * tau - window),
            bytes_per_env,
            bytes_per_env_step: bytes_per_env as f64 / tau as f64,
        }
    }
}

/// The name of a path.
fn path_name(fused: bool) -> &'static str {
    if fused { "fused" } else { "reference" }
}

const CSV_HEADER: [&str; 17] = [
    "model",
    "path",
    "depth",
    "batch",
    "d_model",
    "n_heads",
    "span",
    "params",
    "mean_latency_ms",
    "std_latency_ms",
    "median_latency_ms",
    "policy_steps_per_s",
    "env_steps_per_s",
    "latency_at_tau_ms",
    "latency_at_10tau_ms",
    "memory_bytes_per_env",
    "memory_bytes_per_env_per_step",
];

fn write_csv(path: &Path, args: &Args, rows: &[Row]) -> Result<()> {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.model.to_string(),
                path_name(r.fused).to_string(),
                r.depth.to_string(),
                r.batch.to_string(),
                args.d_model.to_string(),
                args.n_heads.to_string(),
                args.span.to_string(),
                r.params.to_string(),
                format!("{:.4}", r.mean_s * 1e3),
                format!("{:.4}", r.std_s * 1e3),
                format!("{:.4}", r.median_s * 1e3),
                format!("{:.1}", 1.0 / r.mean_s),
                format!("{:.1}", r.batch as f64 / r.mean_s),
                format!("{:.4}", r.at_tau_s * 1e3),
                format!("{:.4}", r.at_10tau_s * 1e3),
                r.bytes_per_env.to_string(),
                format!("{:.1}", r.bytes_per_env_step),
            ]
        })
        .collect();
    report::write_csv(path, &CSV_HEADER, &cells)
}

fn table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| model | path | depth | batch | params | latency/step mean ± std (ms) | median (ms) | \
         steps/s (env-steps/s) | at τ (ms) | at 10·τ (ms) | memory/env (bytes) | \
         memory/env/step (bytes) |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {:.3} ± {:.3} | {:.3} | {:.0} ({:.0}) | {:.3} | {:.3} | {} | {:.0} |",
            r.model,
            path_name(r.fused),
            r.depth,
            r.batch,
            r.params,
            r.mean_s * 1e3,
            r.std_s * 1e3,
            r.median_s * 1e3,
            1.0 / r.mean_s,
            r.batch as f64 / r.mean_s,
            r.at_tau_s * 1e3,
            r.at_10tau_s * 1e3,
            r.bytes_per_env,
            r.bytes_per_env_step
        );
    }
    t
}

/// Like-for-like ratios of median latencies per (depth, batch): Transformer ÷ Feedback on each
/// path (above 1: Feedback decodes faster), and reference ÷ fused per model.
fn ratios(rows: &[Row]) -> String {
    let find = |model: PolicyKind, fused: bool, depth: usize, batch: usize| {
        rows.iter()
            .find(|r| r.model == model && r.fused == fused && r.depth == depth && r.batch == batch)
            .map(|r| r.median_s)
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}×", a / b),
        _ => "–".to_string(),
    };
    let mut t = String::from(
        "Median latency ratios, like with like (Transformer ÷ Feedback above 1: Feedback is \
         faster):\n\n\
         | depth | batch | Transformer ÷ Feedback, both fused | both reference | \
         Feedback reference ÷ fused | Transformer reference ÷ fused |\n\
         |---:|---:|---:|---:|---:|---:|\n",
    );
    let mut keys: Vec<(usize, usize)> = rows.iter().map(|r| (r.depth, r.batch)).collect();
    keys.sort_unstable();
    keys.dedup();
    for (depth, batch) in keys {
        let (ff, tf) = (
            find(PolicyKind::Feedback, true, depth, batch),
            find(PolicyKind::Transformer, true, depth, batch),
        );
        let (fr, tr) = (
            find(PolicyKind::Feedback, false, depth, batch),
            find(PolicyKind::Transformer, false, depth, batch),
        );
        let _ = writeln!(
            t,
            "| {depth} | {batch} | {} | {} | {} | {} |",
            ratio(tf, ff),
            ratio(tr, fr),
            ratio(fr, ff),
            ratio(tr, tf)
        );
    }
    t
}

fn plot(path: &Path, args: &Args, rows: &[Row]) -> Result<()> {
    let mut chart = LineChart::new(
        format!(
            "Decoding latency per step (d={}, {} heads, τ={}, flex CPU)",
            args.d_model, args.n_heads, args.span
        ),
        "depth (layers)",
        "median latency per step (ms)",
    );
    chart.y_log = true;
    for model in [PolicyKind::Feedback, PolicyKind::Transformer] {
        for (bi, &batch) in args.batches.iter().enumerate() {
            for fused in [true, false] {
                let points: Vec<(f64, f64)> = rows
                    .iter()
                    .filter(|r| r.model == model && r.batch == batch && r.fused == fused)
                    .map(|r| (r.depth as f64, r.median_s * 1e3))
                    .collect();
                if points.is_empty() {
                    continue;
                }
                chart.series.push(Series {
                    label: format!("{model}, {}, batch {batch}", path_name(fused)),
                    points,
                    color: Some(policy_color(model.name(), usize::from(!fused))),
                    dashed: bi > 0,
                    markers: true,
                    ..Series::default()
                });
            }
        }
    }
    chart.note = Some(format!(
        "median over {} timed steps per point (CSV: mean ± std too); dashed: batch {}; \
         lighter: reference path",
        args.episodes * 10 * args.span,
        args.batches
            .get(1)
            .map_or("-".to_string(), |b| b.to_string()),
    ));
    chart
        .save(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

fn main() -> Result<()> {
    let args = Args::parse();
    check_args(&args)?;
    if args.threads > 0 {
        // The flex backend runs its parallel kernels (matmul, reductions) on rayon's global pool.
        rayon::ThreadPoolBuilder::new()
            .num_threads(args.threads)
            .build_global()
            .context("setting the number of threads")?;
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    let started = Instant::now();
    let rows = measure(&args)?;
    let elapsed = started.elapsed().as_secs_f64();

    let csv = args.out.join("decode.csv");
    let png = args.out.join("decode.png");
    write_csv(&csv, &args, &rows)?;
    plot(&png, &args, &rows)?;

    let table = format!("{}\n{}", table(&rows), ratios(&rows));
    let readme_path = args.out.join("README.md");
    report::update_readme(
        &readme_path,
        "Decoding speed: Feedback Transformer vs Transformer",
        &readme(&args, &table, elapsed),
    )?;

    println!("\n{table}");
    println!(
        "wrote {}, {}, {} in {elapsed:.0} s",
        csv.display(),
        png.display(),
        readme_path.display()
    );
    Ok(())
}

/// Refuses sizes that measure nothing.
fn check_args(args: &Args) -> Result<()> {
    if args.depths.is_empty() || args.depths.contains(&0) {
        bail!(
            "--depths must list depths of at least 1, got {:?}",
            args.depths
        );
    }
    if args.batches.is_empty() || args.batches.contains(&0) {
        bail!(
            "--batches must list batch sizes of at least 1, got {:?}",
            args.batches
        );
    }
    if args.episodes == 0 {
        bail!("--episodes must be at least 1");
    }
    if args.span == 0 {
        bail!("--span must be at least 1");
    }
    if args.paths.is_empty() || args.paths.iter().any(|p| p != "fused" && p != "reference") {
        bail!(
            "--paths must list `fused` and/or `reference`, got {:?}",
            args.paths
        );
    }
    Ok(())
}

/// Times every (depth, batch, model) configuration and prints one line per configuration.
fn measure(args: &Args) -> Result<Vec<Row>> {
    let mut benches = Vec::new();
    for &depth in &args.depths {
        for &batch in &args.batches {
            for path in &args.paths {
                for model in [PolicyKind::Feedback, PolicyKind::Transformer] {
                    benches.push(Bench::new(args, model, path == "fused", depth, batch)?);
                }
            }
        }
    }
    // Episodes are interleaved across configurations, so that a burst of load from other
    // processes spreads over all of them instead of landing on one.
    for round in 0..args.episodes {
        for bench in benches.iter_mut() {
            bench.episode(10 * args.span)?;
        }
        println!("round {}/{} done", round + 1, args.episodes);
    }
    agents::kernels::set_fused(true);
    let rows: Vec<Row> = benches.iter().map(|b| b.row(args.span)).collect();
    for row in &rows {
        println!(
            "{:<11} {:<9} depth {} batch {:>3}: {:.3} ms/step (median {:.3}), at τ {:.3} ms, \
             at 10τ {:.3} ms, {} bytes/env",
            row.model,
            path_name(row.fused),
            row.depth,
            row.batch,
            row.mean_s * 1e3,
            row.median_s * 1e3,
            row.at_tau_s * 1e3,
            row.at_10tau_s * 1e3,
            row.bytes_per_env
        );
    }
    Ok(rows)
}

/// The results README: the command, the machine, the setup and the table.
fn readme(args: &Args, table: &str, elapsed: f64) -> String {
    let passed: Vec<String> = std::env::args().skip(1).collect();
    let command = if passed.is_empty() {
        "cargo run --release -p experiments --bin decode".to_string()
    } else {
        format!(
            "cargo run --release -p experiments --bin decode -- {}",
            passed.join(" ")
        )
    };
    let path = match args.paths.as_slice() {
        [one] if one == "fused" => "the fused CPU kernels (`agents::kernels`)".to_string(),
        [one] if one == "reference" => {
            "tensor operations for every model (the reference path)".to_string()
        }
        _ => "both paths, in one process: the fused CPU kernels (`agents::kernels`) and \
              tensor operations (the reference path)"
            .to_string(),
    };
    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    let pool = rayon::current_num_threads();
    format!(
        "The analog of the decoding-speed table of Fan et al. (2020): the per-step inference \
         latency of `ActorCritic::step` (one step for a batch of envs, logits and values read \
         back to the host, as in a rollout), on the plain `flex` CPU device without autodiff, \
         with {path}.\n\n\
         Command:\n\n```sh\n{command}\n```\n\n\
         Machine: {cpu} ({threads} hardware threads), burn 0.22 `flex` backend with {pool} \
         worker thread(s). \
         Run took {elapsed:.0} s; load average at the end: {load} (other processes running \
         on the machine add outliers to the mean, which is why the median is reported too and \
         plotted).\n\n\
         Setup: width d = {d}, {h} heads, feed-forward {ff}, span τ = {tau}, obs_dim {obs}, \
         {a} actions. Per configuration: {w} untimed warm-up steps, then {e} episode(s) of 10·τ = {len} \
         timed steps, the episodes of all configurations interleaved. *latency/step* is the mean ± std over all timed steps and *median* their \
         median; *at τ* and *at 10·τ* \
         are medians over the {win} steps starting at episode step τ and ending at step 10·τ; \
         *steps/s* is policy steps per second (env-steps/s = batch × steps/s). *memory/env* is \
         `Memory::bytes_per_env()` (f32 tensors, validity masks included) and *memory/env/step* \
         is that divided by τ: the bytes kept per env for each remembered time step.\n\n\
         {table}\n\
         Files: `decode.csv` (the table), `decode.png` / `decode.svg` (latency vs depth).\n",
        cpu = cpu_model(),
        d = args.d_model,
        h = args.n_heads,
        ff = args.d_ff.unwrap_or(4 * args.d_model),
        tau = args.span,
        obs = args.obs_dim,
        a = args.num_actions,
        w = args.warmup,
        e = args.episodes,
        len = 10 * args.span,
        win = WINDOW.min(args.span),
        load = load_average(),
    )
}
