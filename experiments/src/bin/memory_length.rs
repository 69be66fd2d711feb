//! Memory length: success rate on the cue-recall task against the corridor length (the delay
//! between the cue and the decision) for every policy of a preset, with the attention span τ
//! marked. Each (policy, delay, seed) is a PPO run with identical settings; its final
//! checkpoint is evaluated greedily on held-out seeds.
//!
//! ```text
//! cargo run --release -p experiments --bin memory_length -- --preset default
//! ```
//!
//! Like the maze binary, runs live in deterministic directories and re-running resumes them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Parser;
use envs::CueRecallConfig;
use experiments::evaluate::evaluate_run;
use experiments::preset::{self, Arm, Preset, select_arms};
use experiments::report::{self, cell};
use experiments::runner::{self, Job};
use experiments::shard::{self, ShardArgs};
use fbrl::EnvConfig;
use fbrl::curves::{self, Run};
use fbrl::plot::{LineChart, RefLine, SavedPlot, Series, policy_color};
use rayon::prelude::*;

/// Train every policy × delay × seed on cue recall, then plot success rate vs delay.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Preset name (`experiments/configs/memory_length_<NAME>.toml`: default, tiny) or a
    /// path to a preset TOML file.
    #[arg(long, default_value = "default")]
    preset: String,
    /// Number of seeds per (policy, delay) (default: the preset's).
    #[arg(long)]
    seeds: Option<u64>,
    /// Comma-separated arms to run (default: all), e.g. `feedback,gru`.
    #[arg(long, value_delimiter = ',')]
    policies: Option<Vec<String>>,
    /// Comma-separated corridor lengths (default: the preset's `experiment.delays`).
    #[arg(long, value_delimiter = ',')]
    delays: Option<Vec<u32>>,
    /// Folder for the PNG, CSV and README.
    #[arg(long, default_value = "results/memory_length")]
    out: PathBuf,
    /// Root of the run directories.
    #[arg(long, default_value = "runs/memory_length")]
    runs_dir: PathBuf,
    /// Runs trained at once (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
    /// No progress bar: plain lines only.
    #[arg(long)]
    quiet: bool,
    /// Sharding over a cluster and `--report-only`.
    #[command(flatten)]
    shard: ShardArgs,
}

/// What one invocation trains: arms × delays × seeds, each with its run directory.
struct Plan {
    preset: Preset,
    cue: CueRecallConfig,
    seeds: u64,
    delays: Vec<u32>,
    arms: Vec<Arm>,
    runs_root: PathBuf,
    at_once: usize,
    jobs: Vec<Job>,
    /// `cells[arm][delay]`: the run directories over seeds.
    cells: Vec<Vec<Vec<PathBuf>>>,
}

/// Per arm: the chart series; per (arm, delay): a CSV row and a README table row.
struct Measured {
    series: Vec<Series>,
    rows: Vec<Vec<String>>,
    md_rows: String,
}

fn main() -> Result<()> {
    if let Some(result) = runner::run_worker_if_requested() {
        return result;
    }
    let args = Args::parse();
    let t0 = std::time::Instant::now();
    let plan = plan(&args)?;
    let e = &plan.preset.experiment;
    eprintln!(
        "memory length {}: {} arms × {} delays × {} seeds, {} env steps each → {}",
        e.name,
        plan.arms.len(),
        plan.delays.len(),
        plan.seeds,
        plan.preset.train.total_steps,
        plan.runs_root.display()
    );
    let Some(run_report) = shard::train_grid(&args.shard, &plan.jobs, |mine| {
        runner::run_jobs(
            mine,
            plan.at_once.min(mine.len()).max(1),
            &plan.runs_root.join("logs"),
            args.quiet,
            None,
        )
    })?
    else {
        return Ok(());
    };

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let measured = measure(&plan)?;
    report::write_csv(
        &args.out.join("success_vs_delay.csv"),
        &[
            "policy",
            "delay",
            "seeds",
            "heldout_greedy_success",
            "ci95_low",
            "ci95_high",
            "train_final_success",
        ],
        &measured.rows,
    )?;
    let span = plan
        .arms
        .iter()
        .find(|a| a.policy.kind.is_attention())
        .map(|a| a.policy.span);
    let saved = draw_chart(&plan, measured.series, span, &args.out)?;
    let md = readme(
        &plan,
        &run_report,
        span,
        &measured.md_rows,
        t0.elapsed().as_secs_f64(),
    );
    report::update_readme(
        &args.out.join("README.md"),
        "Memory length: success rate vs delay on cue recall",
        &md,
    )?;
    eprintln!(
        "wrote {} and {} in {:.1} s",
        saved.png.display(),
        args.out.join("success_vs_delay.csv").display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Reads the preset and lays out the runs: one per arm, delay and seed.
fn plan(args: &Args) -> Result<Plan> {
    let path = preset::preset_path("memory_length", &args.preset);
    let preset = Preset::load(&path)?;
    let EnvConfig::CueRecall(cue) = preset.train.env.clone() else {
        bail!(
            "{}: the memory-length experiment needs train.env.kind = \"cue_recall\"",
            path.display()
        );
    };
    let e = &preset.experiment;
    let seeds = args.seeds.unwrap_or(e.seeds);
    let delays = args.delays.clone().unwrap_or_else(|| e.delays.clone());
    if seeds == 0 || delays.is_empty() {
        bail!("need at least one seed and one delay (experiment.delays or --delays)");
    }
    let arms = select_arms(&preset.arms, args.policies.as_deref())?;
    let runs_root = args.runs_dir.join(&e.name);
    let n = arms.len() * delays.len() * seeds as usize;
    let at_once = args.jobs.unwrap_or_else(runner::cores).clamp(1, n);
    let threads = (runner::cores() / at_once).max(1);
    let mut jobs = Vec::new();
    let mut cells: Vec<Vec<Vec<PathBuf>>> = Vec::new();
    for arm in &arms {
        let mut per_delay = Vec::new();
        for &d in &delays {
            let mut dirs = Vec::new();
            for seed in 0..seeds {
                let mut config = preset.run_config(arm, seed, threads);
                let mut env = cue.clone();
                env.corridor_length = d;
                config.env = EnvConfig::CueRecall(env);
                config
                    .validate()
                    .with_context(|| format!("{} at delay {d}", arm.name))?;
                let dir = runs_root.join(format!("cue_recall-d{d:03}__{}__{seed}", arm.name));
                dirs.push(dir.clone());
                jobs.push(Job {
                    name: format!("{} delay {d} seed {seed}", arm.name),
                    dir,
                    cost: arm.cost_per_step() * config.total_steps as f64,
                    config,
                });
            }
            per_delay.push(dirs);
        }
        cells.push(per_delay);
    }
    Ok(Plan {
        preset,
        cue,
        seeds,
        delays,
        arms,
        runs_root,
        at_once,
        jobs,
        cells,
    })
}

/// Evaluates every run on held-out seeds and reads its final training success.
fn measure(plan: &Plan) -> Result<Measured> {
    let e = &plan.preset.experiment;
    let mut out = Measured {
        series: Vec::new(),
        rows: Vec::new(),
        md_rows: String::new(),
    };
    // Each policy's colour; a second arm of the same policy (another depth) gets a free one.
    let mut used: Vec<usize> = Vec::new();
    for (arm, per_delay) in plan.arms.iter().zip(&plan.cells) {
        let mut color = policy_color(&arm.name, 7);
        if used.contains(&color) {
            color = (4..10).find(|c| !used.contains(c)).unwrap_or(color);
        }
        used.push(color);
        let mut points = Vec::new();
        let mut band = Vec::new();
        for (&d, dirs) in plan.delays.iter().zip(per_delay) {
            let evals = dirs
                .par_iter()
                .map(|dir| evaluate_run(dir, e.eval_episodes))
                .collect::<Result<Vec<_>>>()?;
            let greedy: Vec<f64> = evals
                .iter()
                .map(|v| v.greedy.success_rate.unwrap_or(0.0))
                .collect();
            let g = curves::mean_ci95(&greedy).expect("at least one seed");
            let mut train_final = Vec::new();
            for dir in dirs {
                let run = Run::load(dir)?;
                let pts = run.metrics.xy("env_steps", "success_rate")?;
                if let Some(v) = curves::final_value(&pts, e.final_fraction) {
                    train_final.push(v);
                }
            }
            let t = curves::mean_ci95(&train_final);
            points.push((f64::from(d), g.mean));
            band.push((g.ci_low.max(0.0), g.ci_high.min(1.0)));
            out.rows.push(vec![
                arm.name.clone(),
                d.to_string(),
                g.n.to_string(),
                cell(Some(g.mean)),
                cell(Some(g.ci_low)),
                cell(Some(g.ci_high)),
                cell(t.map(|t| t.mean)),
            ]);
            out.md_rows.push_str(&format!(
                "| {} | {d} | {} | {:.2} [{:.2}, {:.2}] | {} |\n",
                arm.name,
                g.n,
                g.mean,
                g.ci_low,
                g.ci_high,
                t.map(|t| format!("{:.2}", t.mean)).unwrap_or_default()
            ));
        }
        let mut s = Series::new(format!("{} (n={})", arm.name, plan.seeds), points);
        if plan.seeds > 1 {
            s.band = band;
        }
        s.markers = true;
        s.color = Some(color);
        out.series.push(s);
    }
    Ok(out)
}

/// Success rate against delay, one line per arm, with chance and the attention span marked.
fn draw_chart(
    plan: &Plan,
    series: Vec<Series>,
    span: Option<usize>,
    out: &Path,
) -> Result<SavedPlot> {
    let e = &plan.preset.experiment;
    let mut chart = LineChart::new(
        format!(
            "Cue recall ({} cues): success rate vs delay — {} preset",
            plan.cue.num_cues, e.name
        ),
        "corridor length = delay between cue and decision (steps)",
        "success rate (greedy, held-out seeds)",
    );
    chart.series = series;
    chart.y_range = Some((0.0, 1.05));
    chart.hlines = vec![RefLine::new("chance", 1.0 / plan.cue.num_cues as f64)];
    if let Some(span) = span {
        chart.vlines = vec![RefLine::new("attention span τ", span as f64)];
        // How far back the deepest standard transformer can see: L·τ.
        let deepest = plan
            .arms
            .iter()
            .filter(|a| a.policy.kind == agents::PolicyKind::Transformer)
            .map(|a| a.policy.n_layers)
            .max()
            .unwrap_or(1);
        if deepest > 1 {
            chart.vlines.push(RefLine::new(
                format!("{deepest}-layer Transformer reach {deepest}τ"),
                (deepest * span) as f64,
            ));
        }
    }
    chart.note = Some(format!(
        "Points: mean over seeds of the final checkpoint's success on {} held-out episodes; \
         shaded: 95% CI of the mean (Student t). {} env steps per run.",
        e.eval_episodes, plan.preset.train.total_steps
    ));
    Ok(chart.save(&out.join("success_vs_delay.png"))?)
}

/// The generated block of the results README.
fn readme(
    plan: &Plan,
    run_report: &runner::RunReport,
    span: Option<usize>,
    md_rows: &str,
    elapsed_s: f64,
) -> String {
    let train = &plan.preset.train;
    let cmd = report::command_line();
    let shown = cmd.split_once(' ').map(|(_, a)| a).unwrap_or("");
    format!(
        "Command: `{}cargo run --release -p experiments --bin memory_length -- {shown}`\n\n\
         Preset: `{}`\n\nMachine: {}\n\n\
         Wall time of this invocation: {:.1} min ({} runs started, {} resumed, {} already finished; {} at a time).\n\n\
         Setting: cue recall with {} cues, {} envs × {} steps per update, {} env steps per run, \
         {} seed(s); the preset's PPO settings for every policy, learning rate per arm: {}; \
         attention span τ = {}.\n\n\
         ![success vs delay](success_vs_delay.png)\n\n\
         | policy | delay | seeds | held-out greedy success [95% CI] | training success (final) |\n|---|---|---|---|---|\n{md_rows}\n\
         Files: `success_vs_delay.csv`, `success_vs_delay.png` / `.svg`.\n",
        report::env_prefix(),
        report::rel_path(&plan.preset.path),
        report::machine(),
        elapsed_s / 60.0,
        run_report.started,
        run_report.resumed,
        run_report.skipped,
        plan.at_once,
        plan.cue.num_cues,
        train.num_envs,
        train.num_steps,
        train.total_steps,
        plan.seeds,
        plan.arms
            .iter()
            .map(|a| format!(
                "{} {}",
                a.name,
                a.learning_rate.unwrap_or(train.ppo.learning_rate)
            ))
            .collect::<Vec<_>>()
            .join(", "),
        span.map(|s| s.to_string()).unwrap_or_else(|| "n/a".into()),
    )
}
