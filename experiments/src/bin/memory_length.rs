//! Memory length: how many seeds of each policy solve the cue-recall task as the corridor
//! (the delay between the cue and the decision) grows past the attention span τ. Each
//! (policy, delay, seed) is a PPO run with identical settings; its final checkpoint is
//! evaluated greedily on held-out seeds, and the seed counts as solved when that success rate
//! reaches the preset's `solved_threshold`. Solved counts are reported with Wilson intervals
//! and compared between arms with Fisher's exact test.
//!
//! ```text
//! # the learning rate per arm, at one delay, on seeds of their own (1000, 1001, …)
//! cargo run --release -p experiments --bin memory_length -- --tune-lrs 5e-4,1e-3,2e-3,4e-3
//! # the study, with the rates chosen above written into the preset's [[arms]]
//! cargo run --release -p experiments --bin memory_length -- --preset default
//! ```
//!
//! Like the maze binary, runs live in deterministic directories and re-running resumes them.
//! Runs start in the order of the delays given (then seed, then arm), so that an invocation
//! stopped early leaves whole delays done.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Parser;
use envs::CueRecallConfig;
use experiments::evaluate::{HeldOutEval, evaluate_run};
use experiments::preset::{self, Arm, PerArm, Preset, select_arms};
use experiments::report::{self, cell};
use experiments::runner::{self, Job};
use experiments::shard::{self, GridArgs};
use fbrl::curves::{self, Run};
use fbrl::plot::{Bar, BarChart, LineChart, RefLine, SavedPlot, Series, policy_color};
use fbrl::stats::{self, Proportion};
use fbrl::{EnvConfig, TrainConfig};
use rayon::prelude::*;

/// Tuning runs use seeds `TUNE_SEED_BASE + i`, never those of the study (`0..seeds`), so that
/// the chosen rate is not scored again on the seeds that chose it.
const TUNE_SEED_BASE: u64 = 1000;

/// Train every policy × delay × seed on cue recall, then report solved seeds vs delay.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Preset name (`experiments/configs/memory_length_<NAME>.toml`: default, tiny) or a
    /// path to a preset TOML file.
    #[arg(long, default_value = "default")]
    preset: String,
    /// Number of seeds per (policy, delay) (default: the preset's; 3 with `--tune-lrs`).
    #[arg(long)]
    seeds: Option<u64>,
    /// Comma-separated arms to run (default: all), e.g. `feedback_l1,gru`.
    #[arg(long, value_delimiter = ',')]
    policies: Option<Vec<String>>,
    /// Comma-separated corridor lengths, in the order their runs start (default: the
    /// preset's `experiment.delays`).
    #[arg(long, value_delimiter = ',')]
    delays: Option<Vec<u32>>,
    /// Tune instead: train every arm with each of these learning rates at `--tune-delay`, on
    /// seeds 1000, 1001, …, and choose per arm the rate that solves most seeds. `ARM:LR`
    /// adds a rate for one arm only (a grid extended where its optimum was at an edge), e.g.
    /// `5e-4,1e-3,2e-3,gru:4e-3`.
    #[arg(long, value_delimiter = ',')]
    tune_lrs: Option<Vec<String>>,
    /// The corridor length the learning rates are tuned at.
    #[arg(long, default_value_t = 32)]
    tune_delay: u32,
    /// Folder for the PNG, CSVs and README (default: the preset's `experiment.out`, its
    /// `tuning/` subfolder when tuning; for presets without one, under `--runs-dir`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Root of the run directories.
    #[arg(long, default_value = "runs/memory_length")]
    runs_dir: PathBuf,
    /// Runs at once, progress display, sharding over a cluster and `--report-only`.
    #[command(flatten)]
    grid: GridArgs,
}

/// One (arm, delay, learning rate) and its runs over seeds.
struct Cell {
    arm: Arm,
    delay: u32,
    lr: f64,
    num_envs: usize,
    num_steps: usize,
    seeds: Vec<u64>,
    dirs: Vec<PathBuf>,
}

/// What one invocation trains.
struct Plan {
    preset: Preset,
    cue: CueRecallConfig,
    tuning: bool,
    delays: Vec<u32>,
    arms: Vec<Arm>,
    runs_root: PathBuf,
    out: PathBuf,
    at_once: usize,
    jobs: Vec<Job>,
    cells: Vec<Cell>,
}

/// One run's outcome.
struct SeedResult {
    seed: u64,
    eval: HeldOutEval,
    train_final: Option<f64>,
    /// Training success rate per update, `(env steps, rate)`.
    curve: Vec<(f64, f64)>,
}

impl SeedResult {
    fn greedy(&self) -> f64 {
        self.eval.greedy.success_rate.unwrap_or(0.0)
    }
}

/// A cell's results over seeds.
struct Measured {
    seeds: Vec<SeedResult>,
    solved: Proportion,
}

impl Measured {
    /// The mean greedy success rate over the seeds (`None` without seeds).
    fn mean_greedy(&self) -> Option<f64> {
        mean(self.seeds.iter().map(SeedResult::greedy))
    }

    /// The mean final training success rate over the seeds that have one.
    fn mean_train_final(&self) -> Option<f64> {
        mean(self.seeds.iter().filter_map(|s| s.train_final))
    }

    /// Each seed's greedy success rate with `decimals` decimals, joined by `sep`.
    fn greedy_rates(&self, decimals: usize, sep: &str) -> String {
        self.seeds
            .iter()
            .map(|s| format!("{:.*}", decimals, s.greedy()))
            .collect::<Vec<_>>()
            .join(sep)
    }
}

fn main() -> Result<()> {
    runner::experiment_main(run)
}

/// Trains the runs `args` ask for (the command started at `t0`), then evaluates them and
/// writes the tables, charts and README.
fn run(args: Args, t0: std::time::Instant) -> Result<()> {
    let plan = plan(&args)?;
    eprintln!(
        "memory length {}{}: {} arms × {} delays, {} (arm, delay, learning rate) cells, {} runs of {} env steps → {}",
        plan.preset.experiment.name,
        if plan.tuning { " (tuning)" } else { "" },
        plan.arms.len(),
        plan.delays.len(),
        plan.cells.len(),
        plan.jobs.len(),
        plan.preset.train.total_steps,
        plan.runs_root.display()
    );
    let Some(run_report) =
        shard::train_grid(&args.grid, &plan.jobs, plan.at_once, &plan.runs_root, None)?
    else {
        return Ok(());
    };
    runner::refuse_diverged(&plan.jobs)?;

    std::fs::create_dir_all(&plan.out)
        .with_context(|| format!("cannot create {}", plan.out.display()))?;
    // Evaluation runs as many at once as training did (the others' cores stay free).
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(plan.at_once)
        .build()?;
    let measured = pool.install(|| {
        plan.cells
            .iter()
            .map(|c| measure(&plan, c))
            .collect::<Result<Vec<_>>>()
    })?;
    write_seed_tables(&plan, &measured)?;
    let elapsed_min = t0.elapsed().as_secs_f64() / 60.0;
    if plan.tuning {
        let chosen = write_tuning(&plan, &measured)?;
        let md = tuning_readme(&plan, &run_report, &measured, &chosen, elapsed_min);
        report::update_readme(
            &plan.out.join("README.md"),
            "Memory length: learning rate per arm",
            &md,
        )?;
    } else {
        write_summary(&plan, &measured)?;
        let comparisons = write_fisher(&plan, &measured)?;
        let saved = draw_chart(&plan, &measured)?;
        draw_bars(&plan, &measured)?;
        let md = readme(&plan, &run_report, &measured, &comparisons, elapsed_min);
        report::update_readme(
            &plan.out.join("README.md"),
            "Memory length: solved seeds vs delay on cue recall",
            &md,
        )?;
        eprintln!("wrote {}", saved.png.display());
    }
    eprintln!(
        "wrote {} in {:.1} s",
        plan.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `(num_envs, num_steps)` at one delay: the preset's, or with `rollout_episodes` set, the
/// smallest power-of-two rollout holding that many of the longest episodes, with as many envs
/// as keep the batch (`num_envs × num_steps`) of the preset.
fn rollout_shape(preset: &Preset, cue: &CueRecallConfig) -> Result<(usize, usize)> {
    let train = &preset.train;
    let Some(episodes) = preset.experiment.rollout_episodes else {
        return Ok((train.num_envs, train.num_steps));
    };
    let batch = train.num_envs * train.num_steps;
    let longest = cue.max_steps() as usize;
    let num_steps = (episodes as usize * longest).next_power_of_two();
    if num_steps > batch || !batch.is_multiple_of(num_steps) {
        bail!(
            "delay {}: a rollout of {num_steps} steps ({episodes} × {longest}, rounded up to a \
             power of two) does not divide the batch train.num_envs × train.num_steps = {batch}",
            cue.corridor_length
        );
    }
    Ok((batch / num_steps, num_steps))
}

/// Reads the preset and lays out the runs: one per arm, delay (learning rate) and seed.
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
    let tuning = args.tune_lrs.is_some();
    let (seeds, delays, seed_base) = if tuning {
        (
            args.seeds.unwrap_or(3),
            vec![args.tune_delay],
            TUNE_SEED_BASE,
        )
    } else {
        let delays = args.delays.clone().unwrap_or_else(|| e.delays.clone());
        (args.seeds.unwrap_or(e.seeds), delays, 0)
    };
    experiments::preset::check_seeds(seeds)?;
    if delays.is_empty() {
        bail!("need at least one delay (experiment.delays or --delays)");
    }
    let arms = select_arms(&preset.arms, args.policies.as_deref())?;
    let tune_lrs = match &args.tune_lrs {
        Some(items) => Some(parse_tune_lrs(items, &arms)?),
        None => None,
    };
    let runs_root = args.runs_dir.join(if tuning {
        format!("{}-tuning", e.name)
    } else {
        e.name.clone()
    });
    let out = match (&args.out, &e.out) {
        (Some(out), _) => out.clone(),
        (None, Some(out)) if tuning => out.join("tuning"),
        (None, Some(out)) => out.clone(),
        (None, None) => runs_root.join("report"),
    };
    let mut cells = Vec::new();
    for &d in &delays {
        for arm in &arms {
            let lrs = match &tune_lrs {
                Some(grid) => {
                    let mut lrs = grid.for_arm(&arm.name);
                    lrs.sort_by(f64::total_cmp);
                    lrs.dedup();
                    lrs
                }
                None => vec![arm.learning_rate.unwrap_or(preset.train.ppo.learning_rate)],
            };
            let mut env = cue.clone();
            env.corridor_length = d;
            let (num_envs, num_steps) = rollout_shape(&preset, &env)?;
            for lr in lrs {
                let seeds: Vec<u64> = (seed_base..seed_base + seeds).collect();
                let tag = if tuning {
                    format!("__lr{lr}")
                } else {
                    String::new()
                };
                let dirs = seeds
                    .iter()
                    .map(|s| runs_root.join(format!("cue_recall-d{d:03}__{}{tag}__{s}", arm.name)))
                    .collect();
                cells.push(Cell {
                    arm: arm.clone(),
                    delay: d,
                    lr,
                    num_envs,
                    num_steps,
                    seeds,
                    dirs,
                });
            }
        }
    }
    let n = cells.iter().map(|c| c.seeds.len()).sum::<usize>();
    let at_once = args.grid.at_once(n);
    let threads = (runner::cores() / at_once).max(1);
    // The runner starts the costliest job first; the cost given here is the position in the
    // wanted order (delay as given, then seed, then arm), so that runs start in that order.
    let mut ordered = Vec::new();
    for d in &delays {
        for i in 0..seeds as usize {
            for c in cells.iter().filter(|c| c.delay == *d) {
                ordered.push((c, i));
            }
        }
    }
    let mut jobs = Vec::new();
    for (rank, (c, i)) in ordered.iter().enumerate() {
        let config = run_config(&preset, &cue, c, c.seeds[*i], threads)?;
        jobs.push(Job {
            name: format!(
                "{} delay {} lr {} seed {}",
                c.arm.name, c.delay, c.lr, c.seeds[*i]
            ),
            dir: c.dirs[*i].clone(),
            cost: (ordered.len() - rank) as f64,
            config,
        });
    }
    Ok(Plan {
        preset,
        cue,
        tuning,
        delays,
        arms,
        runs_root,
        out,
        at_once,
        jobs,
        cells,
    })
}

/// `--tune-lrs` items: `LR` (every arm) or `ARM:LR` (that arm only).
fn parse_tune_lrs(items: &[String], arms: &[Arm]) -> Result<PerArm> {
    let grid = PerArm::parse("--tune-lrs", "a learning rate", items, arms)?;
    for (_, lr) in &grid.items {
        if !(lr.is_finite() && *lr > 0.0) {
            bail!("--tune-lrs: {lr} is not a positive learning rate");
        }
    }
    if !grid.items.iter().any(|(only, _)| only.is_none()) {
        bail!("--tune-lrs: give at least one rate for every arm, e.g. 5e-4,1e-3,2e-3");
    }
    Ok(grid)
}

/// The training config of one run of a cell.
fn run_config(
    preset: &Preset,
    cue: &CueRecallConfig,
    c: &Cell,
    seed: u64,
    threads: usize,
) -> Result<TrainConfig> {
    let mut config = preset.run_config(&c.arm, seed, threads);
    let mut env = cue.clone();
    env.corridor_length = c.delay;
    config.env = EnvConfig::CueRecall(env);
    config.ppo.learning_rate = c.lr;
    config.num_envs = c.num_envs;
    config.num_steps = c.num_steps;
    config
        .validate()
        .with_context(|| format!("{} at delay {}", c.arm.name, c.delay))?;
    Ok(config)
}

/// Evaluates every run of a cell on held-out seeds and reads its training curve.
fn measure(plan: &Plan, c: &Cell) -> Result<Measured> {
    let e = &plan.preset.experiment;
    let seeds = c
        .dirs
        .par_iter()
        .zip(&c.seeds)
        .map(|(dir, &seed)| {
            let eval = evaluate_run(dir, e.eval_episodes)?;
            let run = Run::load(dir)?;
            let curve = run.metrics.xy("env_steps", "success_rate")?;
            Ok(SeedResult {
                seed,
                eval,
                train_final: curves::final_value(&curve, e.final_fraction),
                curve,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let k = seeds
        .iter()
        .filter(|s| s.greedy() >= e.solved_threshold)
        .count();
    let solved = stats::wilson(k as u64, seeds.len() as u64).expect("at least one seed");
    Ok(Measured { seeds, solved })
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = values.collect();
    stats::mean_ci95(&v).map(|s| s.mean)
}

/// `seeds.csv` (one row per run) and `curves.csv` (each run's training success per update).
fn write_seed_tables(plan: &Plan, measured: &[Measured]) -> Result<()> {
    let threshold = plan.preset.experiment.solved_threshold;
    let mut rows = Vec::new();
    let mut curve_rows = Vec::new();
    for (c, m) in plan.cells.iter().zip(measured) {
        for s in &m.seeds {
            rows.push(vec![
                c.arm.name.clone(),
                c.delay.to_string(),
                c.lr.to_string(),
                s.seed.to_string(),
                c.num_envs.to_string(),
                c.num_steps.to_string(),
                cell(Some(s.greedy())),
                cell(s.eval.sampled.success_rate),
                cell(s.train_final),
                u8::from(s.greedy() >= threshold).to_string(),
            ]);
            let steps_per_update = (c.num_envs * c.num_steps).to_string();
            let rates = s
                .curve
                .iter()
                .map(|(_, y)| format!("{y:.3}"))
                .collect::<Vec<_>>()
                .join(" ");
            curve_rows.push(vec![
                c.arm.name.clone(),
                c.delay.to_string(),
                c.lr.to_string(),
                s.seed.to_string(),
                steps_per_update,
                rates,
            ]);
        }
    }
    report::write_csv(
        &plan.out.join("seeds.csv"),
        &[
            "policy",
            "delay",
            "learning_rate",
            "seed",
            "num_envs",
            "num_steps",
            "heldout_greedy_success",
            "heldout_sampled_success",
            "train_final_success",
            "solved",
        ],
        &rows,
    )?;
    report::write_csv(
        &plan.out.join("curves.csv"),
        &[
            "policy",
            "delay",
            "learning_rate",
            "seed",
            "env_steps_per_update",
            "train_success_per_update",
        ],
        &curve_rows,
    )
}

/// `success_vs_delay.csv`: per (arm, delay) the solved seeds with their Wilson interval.
fn write_summary(plan: &Plan, measured: &[Measured]) -> Result<()> {
    let rows: Vec<Vec<String>> = plan
        .cells
        .iter()
        .zip(measured)
        .map(|(c, m)| {
            vec![
                c.arm.name.clone(),
                c.delay.to_string(),
                c.lr.to_string(),
                m.solved.n.to_string(),
                m.solved.k.to_string(),
                cell(Some(m.solved.rate)),
                cell(Some(m.solved.low)),
                cell(Some(m.solved.high)),
                cell(m.mean_greedy()),
                cell(m.mean_train_final()),
            ]
        })
        .collect();
    report::write_csv(
        &plan.out.join("success_vs_delay.csv"),
        &[
            "policy",
            "delay",
            "learning_rate",
            "seeds",
            "solved",
            "solved_fraction",
            "wilson95_low",
            "wilson95_high",
            "heldout_greedy_success_mean",
            "train_final_success_mean",
        ],
        &rows,
    )
}

/// How far back an arm can see through attention alone: L·τ for a standard transformer, τ
/// for a Feedback Transformer whose memory holds only the embedded observations (nothing
/// computed is fed back, so nothing is relayed), `None` for the others (the Feedback
/// Transformer relays, the GRU has no span).
fn reach(arm: &Arm) -> Option<usize> {
    match &arm.policy.spec {
        agents::KindConfig::Transformer(t) => Some(t.n_layers * t.span),
        agents::KindConfig::Feedback(f) if f.memory_mix == agents::MemoryMix::Embedding => {
            Some(f.span)
        }
        _ => None,
    }
}

/// One Fisher test: two arms' solved seeds at one delay.
struct Comparison {
    delay: u32,
    a: String,
    b: String,
    ka: u64,
    n: (u64, u64),
    kb: u64,
    p: f64,
    past_reach: bool,
}

/// `fisher.csv`: the preset's comparisons at every delay where both arms ran.
fn write_fisher(plan: &Plan, measured: &[Measured]) -> Result<Vec<Comparison>> {
    let find = |name: &str, d: u32| {
        plan.cells
            .iter()
            .zip(measured)
            .find(|(c, _)| c.arm.name == name && c.delay == d)
    };
    let mut out = Vec::new();
    for &d in &sorted(&plan.delays) {
        for [a, b] in &plan.preset.experiment.comparisons {
            let (Some((ca, ma)), Some((cb, mb))) = (find(a, d), find(b, d)) else {
                continue;
            };
            let (sa, sb) = (ma.solved, mb.solved);
            let past_reach = [&ca.arm, &cb.arm]
                .iter()
                .filter_map(|arm| reach(arm))
                .any(|r| d as usize > r);
            out.push(Comparison {
                delay: d,
                a: a.clone(),
                b: b.clone(),
                ka: sa.k,
                kb: sb.k,
                n: (sa.n, sb.n),
                p: stats::fisher_exact_counts(sa.k, sa.n, sb.k, sb.n),
                past_reach,
            });
        }
    }
    let rows: Vec<Vec<String>> = out
        .iter()
        .map(|c| {
            vec![
                c.delay.to_string(),
                c.a.clone(),
                c.ka.to_string(),
                c.n.0.to_string(),
                c.b.clone(),
                c.kb.to_string(),
                c.n.1.to_string(),
                format!("{:.3e}", c.p),
                u8::from(c.past_reach).to_string(),
            ]
        })
        .collect();
    report::write_csv(
        &plan.out.join("fisher.csv"),
        &[
            "delay",
            "arm_a",
            "solved_a",
            "seeds_a",
            "arm_b",
            "solved_b",
            "seeds_b",
            "fisher_p_two_sided",
            "delay_past_an_arms_attention_reach",
        ],
        &rows,
    )?;
    Ok(out)
}

fn sorted(delays: &[u32]) -> Vec<u32> {
    let mut d = delays.to_vec();
    d.sort_unstable();
    d
}

/// Solved fraction against delay, one line per arm, with Wilson bands and the spans marked.
fn draw_chart(plan: &Plan, measured: &[Measured]) -> Result<SavedPlot> {
    let e = &plan.preset.experiment;
    let mut chart = LineChart::new(
        format!(
            "Cue recall ({} cues): seeds solved vs delay — {} preset",
            plan.cue.num_cues, e.name
        ),
        "corridor length = delay between cue and decision (steps)",
        format!(
            "fraction of seeds solved (held-out greedy success ≥ {})",
            e.solved_threshold
        ),
    );
    for (arm, color) in plan.arms.iter().zip(arm_colors(plan)) {
        let mut cells: Vec<(&Cell, &Measured)> = plan
            .cells
            .iter()
            .zip(measured)
            .filter(|(c, _)| c.arm.name == arm.name)
            .collect();
        cells.sort_by_key(|(c, _)| c.delay);
        let n = cells.first().map_or(0, |(_, m)| m.solved.n);
        let mut s = Series::new(
            format!("{} (n={n})", arm.name),
            cells
                .iter()
                .map(|(c, m)| (f64::from(c.delay), m.solved.rate))
                .collect(),
        );
        s.band = cells
            .iter()
            .map(|(_, m)| (m.solved.low, m.solved.high))
            .collect();
        s.markers = true;
        s.color = Some(color);
        chart.series.push(s);
    }
    chart.y_range = Some((0.0, 1.05));
    let span = plan
        .arms
        .iter()
        .find(|a| a.policy.kind().is_attention())
        .and_then(|a| a.policy.size("span"));
    if let Some(span) = span {
        chart.vlines = vec![RefLine::new("attention span τ", span as f64)];
        let mut reaches: Vec<usize> = plan.arms.iter().filter_map(reach).collect();
        reaches.sort_unstable();
        reaches.dedup();
        for r in reaches.into_iter().filter(|&r| r > span) {
            chart.vlines.push(RefLine::new(
                format!("{}-layer Transformer reach", r / span),
                r as f64,
            ));
        }
    }
    chart.note = Some(format!(
        "Points: fraction of seeds whose final checkpoint succeeds in ≥ {:.0} % of {} held-out \
         greedy episodes; shaded: 95 % Wilson interval. {} env steps per run.",
        e.solved_threshold * 100.0,
        e.eval_episodes,
        plan.preset.train.total_steps
    ));
    Ok(chart.save(&plan.out.join("success_vs_delay.png"))?)
}

/// Each arm's palette colour: its policy's, a free one for a second arm of the same policy
/// (another depth).
fn arm_colors(plan: &Plan) -> Vec<usize> {
    let mut used: Vec<usize> = Vec::new();
    for arm in &plan.arms {
        let mut color = policy_color(&arm.name, 7);
        if used.contains(&color) {
            color = (4..10).find(|c| !used.contains(c)).unwrap_or(color);
        }
        used.push(color);
    }
    used
}

/// One bar chart per delay: each arm's solved fraction with its Wilson interval
/// (`solved_d<delay>.png`), readable where the line chart has a single point per arm.
fn draw_bars(plan: &Plan, measured: &[Measured]) -> Result<()> {
    let e = &plan.preset.experiment;
    let colors = arm_colors(plan);
    let color_of = |name: &str| {
        plan.arms
            .iter()
            .position(|a| a.name == name)
            .map(|i| colors[i])
    };
    for d in sorted(&plan.delays) {
        let mut chart = BarChart::new(
            format!("Cue recall, delay {d}: seeds solved"),
            format!(
                "fraction of seeds solved (held-out greedy success ≥ {})",
                e.solved_threshold
            ),
        );
        for (c, m) in plan
            .cells
            .iter()
            .zip(measured)
            .filter(|(c, _)| c.delay == d)
        {
            chart.bars.push(Bar {
                label: format!("{} {}/{}", c.arm.name, m.solved.k, m.solved.n),
                value: m.solved.rate,
                error: Some((m.solved.low, m.solved.high)),
                color: color_of(&c.arm.name),
            });
        }
        chart.note = Some(format!(
            "Bars: fraction of seeds whose final checkpoint succeeds in ≥ {:.0} % of {} \
             held-out greedy episodes; whiskers: 95 % Wilson interval.",
            e.solved_threshold * 100.0,
            e.eval_episodes
        ));
        chart.save(&plan.out.join(format!("solved_d{d:03}.png")))?;
    }
    Ok(())
}

/// The cells of the arm named `arm` with what was measured for each, by learning rate.
fn arm_cells<'a>(
    plan: &'a Plan,
    measured: &'a [Measured],
    arm: &str,
) -> Vec<(&'a Cell, &'a Measured)> {
    let mut mine: Vec<(&Cell, &Measured)> = plan
        .cells
        .iter()
        .zip(measured)
        .filter(|(c, _)| c.arm.name == arm)
        .collect();
    mine.sort_by(|a, b| a.0.lr.total_cmp(&b.0.lr));
    mine
}

/// Per arm: the tuned cells' rows in grid order and the chosen one: the most seeds solved,
/// ties broken by the mean held-out greedy success, then by the mean final training success
/// (then the smaller rate).
fn write_tuning(plan: &Plan, measured: &[Measured]) -> Result<Vec<(String, f64, bool)>> {
    let mut rows = Vec::new();
    let mut chosen = Vec::new();
    for arm in &plan.arms {
        let mine = arm_cells(plan, measured, &arm.name);
        let key = |m: &Measured| {
            (
                m.solved.k,
                m.mean_greedy().unwrap_or(0.0),
                m.mean_train_final().unwrap_or(0.0),
            )
        };
        let mut best = 0;
        for (i, (_, m)) in mine.iter().enumerate() {
            if key(m) > key(mine[best].1) {
                best = i;
            }
        }
        let at_edge = mine.len() > 1 && (best == 0 || best == mine.len() - 1);
        chosen.push((arm.name.clone(), mine[best].0.lr, at_edge));
        for (i, (c, m)) in mine.iter().enumerate() {
            rows.push(vec![
                c.arm.name.clone(),
                c.delay.to_string(),
                c.lr.to_string(),
                m.solved.n.to_string(),
                m.solved.k.to_string(),
                m.greedy_rates(3, " "),
                cell(m.mean_greedy()),
                cell(m.mean_train_final()),
                u8::from(i == best).to_string(),
            ]);
        }
    }
    report::write_csv(
        &plan.out.join("tuning.csv"),
        &[
            "policy",
            "delay",
            "learning_rate",
            "seeds",
            "solved",
            "heldout_greedy_success_per_seed",
            "heldout_greedy_success_mean",
            "train_final_success_mean",
            "chosen",
        ],
        &rows,
    )?;
    let chosen_rows: Vec<Vec<String>> = chosen
        .iter()
        .map(|(a, lr, edge)| vec![a.clone(), lr.to_string(), u8::from(*edge).to_string()])
        .collect();
    report::write_csv(
        &plan.out.join("chosen.csv"),
        &["policy", "learning_rate", "at_grid_edge"],
        &chosen_rows,
    )?;
    for (arm, lr, edge) in &chosen {
        println!(
            "{arm}: learning_rate = {lr}{}",
            if *edge {
                "   # at the edge of the grid: extend it"
            } else {
                ""
            }
        );
    }
    Ok(chosen)
}

/// The command, machine and setting lines shared by both READMEs.
fn provenance(plan: &Plan, run_report: &runner::RunReport, elapsed_min: f64) -> String {
    let train = &plan.preset.train;
    let e = &plan.preset.experiment;
    let cmd = report::command_line();
    let shown = cmd.split_once(' ').map(|(_, a)| a).unwrap_or("");
    let mut shapes: Vec<(u32, usize, usize)> = plan
        .cells
        .iter()
        .map(|c| (c.delay, c.num_envs, c.num_steps))
        .collect();
    shapes.sort_unstable();
    shapes.dedup();
    let shapes = shapes
        .iter()
        .map(|(d, envs, steps)| {
            format!(
                "delay {d}: {envs} envs × {steps} steps (longest episode {})",
                d + plan.cue.junction_patience + 1
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "Command: `{}cargo run --release -p experiments --bin memory_length -- {shown}`\n\n\
         Preset: `{}`\n\nMachine: {}\n\n\
         Wall time of this invocation: {elapsed_min:.1} min ({} runs started, {} resumed, {} \
         already finished; {} at a time; the held-out evaluation included).\n\n\
         Setting: cue recall with {} cues; {} env steps per run ({} updates of {} steps); \
         rollouts per delay: {shapes}; PPO settings of the preset for every arm except the \
         learning rate; a seed is solved when its final checkpoint succeeds in ≥ {} of {} \
         held-out greedy episodes.\n\n",
        report::env_prefix(),
        report::rel_path(&plan.preset.path),
        report::machine(),
        run_report.started,
        run_report.resumed,
        run_report.skipped,
        plan.at_once,
        plan.cue.num_cues,
        train.total_steps,
        train.num_updates(),
        train.num_envs * train.num_steps,
        e.solved_threshold,
        e.eval_episodes,
    )
}

fn tuning_readme(
    plan: &Plan,
    run_report: &runner::RunReport,
    measured: &[Measured],
    chosen: &[(String, f64, bool)],
    elapsed_min: f64,
) -> String {
    let mut table = String::from(
        "| policy | learning rate | solved | held-out greedy success per seed | mean | training success (final, mean) |\n|---|---:|---:|---|---:|---:|\n",
    );
    for arm in &plan.arms {
        let lr_chosen = chosen.iter().find(|c| c.0 == arm.name).map(|c| c.1);
        let mine = arm_cells(plan, measured, &arm.name);
        for (c, m) in mine {
            let mark = if Some(c.lr) == lr_chosen {
                " **←**"
            } else {
                ""
            };
            table.push_str(&format!(
                "| {} | {}{mark} | {}/{} | {} | {} | {} |\n",
                arm.name,
                c.lr,
                m.solved.k,
                m.solved.n,
                m.greedy_rates(2, " / "),
                cell(m.mean_greedy()),
                cell(m.mean_train_final()),
            ));
        }
    }
    let chosen_lines = chosen
        .iter()
        .map(|(a, lr, edge)| {
            format!(
                "{a}: learning_rate = {lr}{}\n",
                if *edge { "   (at the grid's edge)" } else { "" }
            )
        })
        .collect::<String>();
    format!(
        "{}Tuning seeds: {TUNE_SEED_BASE}, {}, … (the study uses 0, 1, …). Chosen per arm: the \
         most seeds solved; ties broken by the mean held-out greedy success, then by the mean \
         final training success.\n\n{table}\nChosen (`chosen.csv`):\n\n```text\n{chosen_lines}```\n\n\
         Files: `tuning.csv` (every rate), `chosen.csv`, `seeds.csv` (every run), `curves.csv` \
         (training success per update of every run).\n",
        provenance(plan, run_report, elapsed_min),
        TUNE_SEED_BASE + 1,
    )
}

/// The generated block of the results README.
fn readme(
    plan: &Plan,
    run_report: &runner::RunReport,
    measured: &[Measured],
    comparisons: &[Comparison],
    elapsed_min: f64,
) -> String {
    let delays = sorted(&plan.delays);
    let mut table = String::from("| policy | learning rate | reach |");
    for d in &delays {
        table.push_str(&format!(" delay {d} |"));
    }
    table.push_str("\n|---|---:|---:|");
    table.push_str(&"---|".repeat(delays.len()));
    table.push('\n');
    for arm in &plan.arms {
        let lr = arm
            .learning_rate
            .unwrap_or(plan.preset.train.ppo.learning_rate);
        let reach = match (reach(arm), arm.policy.kind()) {
            (Some(r), agents::PolicyKind::Feedback) => format!("τ = {r} (no relay)"),
            (Some(r), _) => format!("L·τ = {r}"),
            (None, agents::PolicyKind::Feedback) => "relay".into(),
            (None, agents::PolicyKind::Gru) => "no span".into(),
            _ => "none".into(),
        };
        table.push_str(&format!("| {} | {lr} | {reach} |", arm.name));
        for &d in &delays {
            let m = plan
                .cells
                .iter()
                .zip(measured)
                .find(|(c, _)| c.arm.name == arm.name && c.delay == d)
                .map(|(_, m)| m);
            match m {
                Some(m) => table.push_str(&format!(
                    " {}/{} [{:.2}, {:.2}] |",
                    m.solved.k, m.solved.n, m.solved.low, m.solved.high
                )),
                None => table.push_str(" |"),
            }
        }
        table.push('\n');
    }
    let mut fisher = String::from(
        "| delay | arm A | solved | arm B | solved | Fisher p (two-sided) | past an arm's attention reach |\n|---:|---|---:|---|---:|---:|---|\n",
    );
    for c in comparisons {
        fisher.push_str(&format!(
            "| {} | {} | {}/{} | {} | {}/{} | {} | {} |\n",
            c.delay,
            c.a,
            c.ka,
            c.n.0,
            c.b,
            c.kb,
            c.n.1,
            fmt_p(c.p),
            if c.past_reach { "yes" } else { "no" }
        ));
    }
    format!(
        "{}Runs: {}; seeds 0 … {} per (policy, delay).\n\n\
         ![solved seeds vs delay](success_vs_delay.png)\n\n\
         Solved seeds / seeds [95 % Wilson interval of the fraction]:\n\n{table}\n\
         Fisher's exact test of the solved counts:\n\n{fisher}\n\
         Files: `success_vs_delay.csv` (per policy and delay), `fisher.csv`, `seeds.csv` (every \
         run: held-out greedy and sampled success, final training success, solved), \
         `curves.csv` (training success per update of every run), `success_vs_delay.png` / \
         `.svg`, `solved_d<delay>.png` / `.svg` (one bar chart per delay).\n",
        provenance(plan, run_report, elapsed_min),
        report::rel_path(&plan.runs_root),
        measured
            .first()
            .map_or(0, |m| m.seeds.len())
            .saturating_sub(1),
    )
}

/// A p-value with three significant digits.
fn fmt_p(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.2e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollouts_hold_two_longest_episodes_with_the_batch_kept() {
        let preset = Preset::load(&preset::preset_path("memory_length", "default")).unwrap();
        let EnvConfig::CueRecall(cue) = preset.train.env.clone() else {
            panic!("cue recall preset")
        };
        let batch = preset.train.num_envs * preset.train.num_steps;
        let want = [
            (16, 32, 64),
            (24, 32, 64),
            (32, 16, 128),
            (48, 16, 128),
            (64, 8, 256),
        ];
        for (d, envs, steps) in want {
            let mut env = cue.clone();
            env.corridor_length = d;
            let (e, s) = rollout_shape(&preset, &env).unwrap();
            assert_eq!((e, s), (envs, steps), "delay {d}");
            assert_eq!(e * s, batch);
            assert!(s >= 2 * env.max_steps() as usize, "delay {d}");
        }
        // Too long for the batch: refused, naming the delay.
        let mut env = cue.clone();
        env.corridor_length = 2000;
        let err = rollout_shape(&preset, &env).unwrap_err().to_string();
        assert!(err.contains("delay 2000"), "{err}");
    }

    #[test]
    fn tune_lrs_take_shared_and_per_arm_rates() {
        let preset = Preset::load(&preset::preset_path("memory_length", "tiny")).unwrap();
        let items = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let grid = parse_tune_lrs(&items(&["1e-3", "gru:4e-3"]), &preset.arms).unwrap();
        assert_eq!(grid.items, vec![(None, 1e-3), (Some("gru".into()), 4e-3)]);
        for bad in [
            &["lstm:1e-3", "1e-3"][..],
            &["x"],
            &["-1e-3"],
            &["gru:1e-3"],
        ] {
            assert!(
                parse_tune_lrs(&items(bad), &preset.arms).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn p_values_print_readably() {
        assert_eq!(fmt_p(1.0), "1.000");
        assert_eq!(fmt_p(0.0123), "0.012");
        assert_eq!(fmt_p(1.45e-11), "1.45e-11");
    }
}
