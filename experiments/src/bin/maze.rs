//! The maze experiment: Feedback Transformer vs standard Transformer (and GRU and MLP
//! baselines) trained with identical PPO settings and the same env-step budget on GridMaze
//! `multi`, several seeds each; reward curves with 95 % confidence bands, final-reward bars,
//! a summary table, held-out generalisation, and a results README.
//!
//! ```text
//! cargo run --release -p experiments --bin maze -- --preset quick
//! cargo run --release -p experiments --bin maze -- --preset full --experiment depth
//! ```
//!
//! Runs live in deterministic directories under `--runs-dir`; running the same command again
//! resumes unfinished runs from their checkpoints and skips finished ones, then redraws
//! everything from all the runs' metrics.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use envs::GridMazeConfig;
use envs::gridmaze::{ReferencePolicy, reference_stats};
use experiments::evaluate::evaluate_run;
use experiments::preset::{self, Arm, Preset, select_arms};
use experiments::report::{self, cell};
use experiments::runner::{self, Job};
use experiments::shard::{self, GridArgs};
use fbrl::EnvConfig;
use fbrl::curves::{self, BandCurve, Run, Summary, XAxis};
use fbrl::plot::{Bar, BarChart, LineChart, RefLine, SavedPlot, policy_color};
use rayon::prelude::*;

/// Which comparison to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Experiment {
    /// Feedback vs Transformer vs GRU vs MLP at equal depth (`[[arms]]` of the preset).
    Main,
    /// Feedback at 1–2 layers vs Transformer at 2–4 layers (`[[depth_arms]]`). Runs live
    /// beside the main comparison's, so an arm with a main arm's name and config reuses its runs.
    Depth,
    /// Variants of the Feedback memory (`[[ablation_arms]]`). Runs live beside the main
    /// comparison's, so an arm with a main arm's name and config reuses its runs.
    Ablations,
}

/// Train every policy × seed of a maze preset, then plot and summarise.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Preset name (`experiments/configs/maze_<NAME>.toml`: tiny, quick, full, hard) or a
    /// path to a preset TOML file.
    #[arg(long, default_value = "quick")]
    preset: String,
    /// Which comparison: the main one or the depth comparison.
    #[arg(long, value_enum, default_value_t = Experiment::Main)]
    experiment: Experiment,
    /// Number of seeds per policy (default: the preset's).
    #[arg(long)]
    seeds: Option<u64>,
    /// Comma-separated arms to run (default: all of the preset's), e.g. `feedback,mlp`.
    #[arg(long, value_delimiter = ',')]
    policies: Option<Vec<String>>,
    /// Folder for the plots, CSVs and README (the depth comparison goes into `<out>/depth`,
    /// the ablations into `<out>/ablations`). Default: the preset's `experiment.out` (a
    /// committed results folder); for presets without one (quick looks), `<runs-dir>/<preset>/report`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Root of the run directories (`<runs-dir>/<preset>/gridmaze__<arm>__<seed>`).
    #[arg(long, default_value = "runs/maze")]
    runs_dir: PathBuf,
    /// Runs at once, progress display, sharding over a cluster and `--report-only`.
    #[command(flatten)]
    grid: GridArgs,
    /// Stop every run after this many updates (with a checkpoint) and exit; the same command
    /// without it resumes them.
    #[arg(long)]
    stop_after_updates: Option<usize>,
}

/// Fractions of a run's env steps at which the reward is read ("reward at fixed marks").
const MARKS: [f64; 4] = [0.25, 0.5, 0.75, 1.0];

/// One seed's numbers: what `seeds.csv` holds and the Welch tests compare.
struct SeedResult {
    seed: u64,
    /// Mean of the metric over the last `final_fraction` of env steps.
    final_value: f64,
    /// Mean of the metric over every update (the area under the curve per env step).
    auc: f64,
    /// The metric at each of [`MARKS`]: the mean over the `final_fraction` window ending there.
    marks: Vec<f64>,
    heldout_greedy: f64,
    steps_per_s: f64,
    wall_s: f64,
}

/// Everything measured for one arm.
struct ArmResult {
    arm: Arm,
    label: String,
    params: usize,
    runs: Vec<Run>,
    seeds: Vec<SeedResult>,
    finals: Summary,
    steps_per_s: f64,
    wall_s: f64,
    heldout_greedy: Option<Summary>,
    heldout_sampled: Option<Summary>,
}

fn fmt_params(n: usize) -> String {
    if n >= 1_000_000 {
        format!("{:.2}M", n as f64 / 1e6)
    } else if n >= 1000 {
        format!("{:.1}k", n as f64 / 1e3)
    } else {
        n.to_string()
    }
}

/// What one invocation trains: the preset, the arms and one run directory per arm and seed.
struct Plan {
    experiment: Experiment,
    preset: Preset,
    maze: GridMazeConfig,
    seeds: u64,
    arms: Vec<Arm>,
    /// Where the plots, CSVs and README go.
    out: PathBuf,
    runs_root: PathBuf,
    jobs_at_once: usize,
    threads: usize,
    jobs: Vec<Job>,
    /// The run directories of each arm, one per seed.
    arm_dirs: Vec<Vec<PathBuf>>,
}

/// The goals metric every maze chart and table reads.
const METRIC: &str = "goals_mean";

fn main() -> Result<()> {
    runner::experiment_main(run)
}

/// Trains the runs `args` ask for (the command started at `t0`), then evaluates, plots and
/// summarises them.
fn run(args: Args, t0: std::time::Instant) -> Result<()> {
    let plan = plan(&args)?;
    let e = &plan.preset.experiment;
    eprintln!(
        "maze {} ({}): {} arms × {} seeds, {} env steps each, {} at a time × {} threads → {}",
        e.name,
        plan.runs_root
            .file_name()
            .unwrap_or_default()
            .to_string_lossy(),
        plan.arms.len(),
        plan.seeds,
        plan.preset.train.total_steps,
        plan.jobs_at_once,
        plan.threads,
        plan.runs_root.display()
    );
    let Some(run_report) = shard::train_grid(
        &args.grid,
        &plan.jobs,
        plan.jobs_at_once,
        &plan.runs_root,
        args.stop_after_updates,
    )?
    else {
        return Ok(());
    };
    runner::refuse_diverged(&plan.jobs)?;
    if let Some(n) = args.stop_after_updates {
        eprintln!(
            "stopped every run after {n} updates in {:.0} s; run the same command without \
             --stop-after-updates to continue",
            run_report.wall_s
        );
        return Ok(());
    }
    eprintln!(
        "training done in {:.0} s ({} runs trained or resumed); evaluating and plotting",
        run_report.wall_s,
        plan.jobs.len() - run_report.skipped
    );

    let refs = reference_lines(&plan.maze, e.reference_episodes)?;
    let results = measure_arms(&plan)?;
    std::fs::create_dir_all(&plan.out)
        .with_context(|| format!("cannot create {}", plan.out.display()))?;
    let saved = draw_charts(&plan, &results, &refs)?;
    write_tables(&plan, &results)?;
    let tests = pair_tests(&plan, &results);
    write_seed_tables(&plan, &results, &tests)?;
    let mut md = run_description(&plan, &results, &run_report, t0.elapsed().as_secs_f64());
    md.push_str(&results_section(&plan, &results, &refs, &saved));
    md.push_str(&speed_and_tests_section(&results, &tests));
    let title = match plan.experiment {
        Experiment::Main => "Maze experiment: Feedback Transformer vs Transformer, GRU, MLP",
        Experiment::Depth => "Depth comparison: shallow Feedback vs deeper Transformer",
        Experiment::Ablations => "Ablations of the Feedback memory",
    };
    report::update_readme(&plan.out.join("README.md"), title, &md)?;
    for r in &results {
        eprintln!(
            "{:<40} final {:.2} [{:.2}, {:.2}]  held-out greedy {:.2}  {:.0} steps/s",
            r.label,
            r.finals.mean,
            r.finals.ci_low,
            r.finals.ci_high,
            r.heldout_greedy.map(|g| g.mean).unwrap_or(f64::NAN),
            r.steps_per_s
        );
    }
    eprintln!(
        "wrote {} (total {:.1} s)",
        plan.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Reads the preset and lays out the runs: arms × seeds, each with its directory and config.
fn plan(args: &Args) -> Result<Plan> {
    let path = preset::preset_path("maze", &args.preset);
    let preset = Preset::load(&path)?;
    let EnvConfig::Gridmaze(maze) = preset.train.env.clone() else {
        bail!(
            "{}: the maze experiment needs train.env.kind = \"gridmaze\"",
            path.display()
        );
    };
    let e = &preset.experiment;
    let seeds = args.seeds.unwrap_or(e.seeds);
    experiments::preset::check_seeds(seeds)?;
    let out_root = match (&args.out, &e.out) {
        (Some(out), _) => out.clone(),
        (None, Some(out)) => out.clone(),
        (None, None) => args.runs_dir.join(&e.name).join("report"),
    };
    let (all_arms, sub, out) = match args.experiment {
        Experiment::Main => (&preset.arms, e.name.clone(), out_root),
        // Depth arms and ablation arms live beside the main comparison's runs: an arm with a
        // main arm's name and config reuses its runs (a different config is refused, naming
        // the key).
        Experiment::Depth => (&preset.depth_arms, e.name.clone(), out_root.join("depth")),
        Experiment::Ablations => (
            &preset.ablation_arms,
            e.name.clone(),
            out_root.join("ablations"),
        ),
    };
    if all_arms.is_empty() {
        bail!(
            "{} has no {} to run",
            path.display(),
            match args.experiment {
                Experiment::Main => "[[arms]]",
                Experiment::Depth => "[[depth_arms]]",
                Experiment::Ablations => "[[ablation_arms]]",
            }
        );
    }
    let arms = select_arms(all_arms, args.policies.as_deref())?;
    let runs_root = args.runs_dir.join(&sub);
    let n_jobs = arms.len() * seeds as usize;
    let jobs_at_once = args.grid.at_once(n_jobs);
    let threads = (runner::cores() / jobs_at_once).max(1);
    let mut jobs = Vec::new();
    let mut arm_dirs: Vec<Vec<PathBuf>> = Vec::new();
    for arm in &arms {
        let mut dirs = Vec::new();
        for seed in 0..seeds {
            let config = preset.run_config(arm, seed, threads);
            let dir = runs_root.join(format!("gridmaze__{}__{seed}", arm.name));
            dirs.push(dir.clone());
            jobs.push(Job {
                name: format!("{} seed {seed}", arm.name),
                dir,
                cost: arm.cost_per_step() * config.total_steps as f64,
                config,
            });
        }
        arm_dirs.push(dirs);
    }
    Ok(Plan {
        experiment: args.experiment,
        preset,
        maze,
        seeds,
        arms,
        out,
        runs_root,
        jobs_at_once,
        threads,
        jobs,
        arm_dirs,
    })
}

/// The scripted reference policies' goals per episode on the same maze distribution.
fn reference_lines(maze: &GridMazeConfig, episodes: usize) -> Result<Vec<RefLine>> {
    [
        (ReferencePolicy::Oracle, "BFS oracle"),
        (ReferencePolicy::WallFollower, "wall follower (memoryless)"),
        (ReferencePolicy::Random, "random"),
    ]
    .par_iter()
    .map(|(p, label)| {
        reference_stats(maze, *p, episodes, 12_345)
            .map(|s| RefLine::new(*label, s.mean_goals))
            .with_context(|| format!("reference policy {p}"))
    })
    .collect()
}

/// Reads every arm's runs and evaluates their final checkpoints on held-out seeds.
fn measure_arms(plan: &Plan) -> Result<Vec<ArmResult>> {
    envs::GridMaze::new(plan.maze.clone())?;
    let (obs_dim, n_actions) = (plan.maze.obs_len(), plan.maze.num_actions());
    plan.arms
        .iter()
        .zip(&plan.arm_dirs)
        .map(|(arm, dirs)| {
            let params = arm.policy.num_parameters(obs_dim, n_actions)?;
            measure_arm(plan, arm, params, dirs)
        })
        .collect()
}

/// One arm: final reward, throughput and wall time per seed, and the held-out evaluation.
fn measure_arm(plan: &Plan, arm: &Arm, params: usize, dirs: &[PathBuf]) -> Result<ArmResult> {
    let e = &plan.preset.experiment;
    let label = match plan.experiment {
        Experiment::Main | Experiment::Ablations => {
            format!("{} · {} params", arm.name, fmt_params(params))
        }
        Experiment::Depth => format!(
            "{} L={} · {} params",
            arm.policy.kind().name(),
            arm.policy.depth(),
            fmt_params(params)
        ),
    };
    let runs = dirs
        .iter()
        .map(|d| Run::load(d))
        .collect::<Result<Vec<_>, _>>()?;
    let mut finals = Vec::new();
    let mut sps = Vec::new();
    let mut walls = Vec::new();
    let mut aucs = Vec::new();
    let mut marks = Vec::new();
    let total = plan.preset.train.total_steps as f64;
    for r in &runs {
        let pts = r.metrics.xy("env_steps", METRIC)?;
        finals.push(
            curves::final_value(&pts, e.final_fraction)
                .with_context(|| format!("{}: no episode finished", r.dir.display()))?,
        );
        aucs.push(pts.iter().map(|p| p.1).sum::<f64>() / pts.len() as f64);
        marks.push(
            MARKS
                .iter()
                .map(|m| window_mean(&pts, m * total, e.final_fraction * total))
                .collect::<Vec<_>>(),
        );
        let s: Vec<f64> = r
            .metrics
            .column("steps_per_s")?
            .into_iter()
            .flatten()
            .collect();
        sps.push(s.iter().sum::<f64>() / s.len().max(1) as f64);
        walls.push(r.metrics.last("wall_time_s")?.unwrap_or(0.0));
    }
    let evals = dirs
        .par_iter()
        .map(|d| evaluate_run(d, e.eval_episodes))
        .collect::<Result<Vec<_>>>()?;
    let greedy: Vec<f64> = evals.iter().map(|v| v.greedy.goals_mean).collect();
    let sampled: Vec<f64> = evals.iter().map(|v| v.sampled.goals_mean).collect();
    let seeds = (0..runs.len())
        .map(|i| SeedResult {
            seed: i as u64,
            final_value: finals[i],
            auc: aucs[i],
            marks: marks[i].clone(),
            heldout_greedy: greedy[i],
            steps_per_s: sps[i],
            wall_s: walls[i],
        })
        .collect();
    Ok(ArmResult {
        arm: arm.clone(),
        label,
        params,
        seeds,
        finals: curves::mean_ci95(&finals).expect("at least one seed"),
        steps_per_s: sps.iter().sum::<f64>() / sps.len() as f64,
        wall_s: walls.iter().sum::<f64>() / walls.len() as f64,
        heldout_greedy: curves::mean_ci95(&greedy),
        heldout_sampled: curves::mean_ci95(&sampled),
        runs,
    })
}

/// Mean of the points with `x` in `(end − width, end]` (NaN when none: no episode ended there).
fn window_mean(points: &[(f64, f64)], end: f64, width: f64) -> f64 {
    let inside: Vec<f64> = points
        .iter()
        .filter(|p| p.0 <= end + 0.5 && p.0 > end - width)
        .map(|p| p.1)
        .collect();
    if inside.is_empty() {
        f64::NAN
    } else {
        inside.iter().sum::<f64>() / inside.len() as f64
    }
}

/// A measure the Welch tests compare: its name and the reader of one seed's value.
type Measure = (String, Box<dyn Fn(&SeedResult) -> f64>);

/// The measures the Welch tests compare.
fn measures() -> Vec<Measure> {
    let mut m: Vec<Measure> = vec![
        ("final".into(), Box::new(|s: &SeedResult| s.final_value)),
        ("auc".into(), Box::new(|s: &SeedResult| s.auc)),
        (
            "heldout_greedy".into(),
            Box::new(|s: &SeedResult| s.heldout_greedy),
        ),
    ];
    for (i, f) in MARKS.iter().enumerate().take(MARKS.len() - 1) {
        m.push((
            format!("at_{:.0}pct_steps", f * 100.0),
            Box::new(move |s: &SeedResult| s.marks[i]),
        ));
    }
    m
}

/// One Welch test of a pair of arms on one measure.
struct PairTest {
    a: String,
    b: String,
    measure: String,
    mean_a: f64,
    mean_b: f64,
    welch: Option<fbrl::stats::Welch>,
}

/// The pairs compared: the preset's `experiment.comparisons` whose arms both ran, else the
/// first arm against each other one.
fn comparison_pairs(plan: &Plan, results: &[ArmResult]) -> Vec<(usize, usize)> {
    let index = |name: &str| results.iter().position(|r| r.arm.name == name);
    let listed: Vec<(usize, usize)> = plan
        .preset
        .experiment
        .comparisons
        .iter()
        .filter_map(|[a, b]| Some((index(a)?, index(b)?)))
        .collect();
    if !listed.is_empty() && plan.experiment == Experiment::Main {
        return listed;
    }
    (1..results.len()).map(|j| (0, j)).collect()
}

/// Welch's t-test of every compared pair on every measure.
fn pair_tests(plan: &Plan, results: &[ArmResult]) -> Vec<PairTest> {
    let mut tests = Vec::new();
    for (i, j) in comparison_pairs(plan, results) {
        let (a, b) = (&results[i], &results[j]);
        for (name, read) in measures() {
            let finite = |r: &ArmResult| -> Vec<f64> {
                r.seeds
                    .iter()
                    .map(&read)
                    .filter(|v| v.is_finite())
                    .collect()
            };
            let (va, vb) = (finite(a), finite(b));
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            tests.push(PairTest {
                a: a.arm.name.clone(),
                b: b.arm.name.clone(),
                measure: name,
                mean_a: mean(&va),
                mean_b: mean(&vb),
                welch: fbrl::stats::welch(&va, &vb),
            });
        }
    }
    tests
}

/// `seeds.csv` (every run's numbers), `curves.csv` (every run's metric per update) and
/// `welch.csv` (every compared pair on every measure).
fn write_seed_tables(plan: &Plan, results: &[ArmResult], tests: &[PairTest]) -> Result<()> {
    let mut header = vec![
        "policy".to_string(),
        "seed".into(),
        "final_goals".into(),
        "auc_goals".into(),
    ];
    header.extend(
        MARKS
            .iter()
            .map(|m| format!("goals_at_{:.0}pct_steps", m * 100.0)),
    );
    header.extend([
        "heldout_greedy_goals".into(),
        "steps_per_s".into(),
        "wall_time_s".into(),
    ]);
    let rows: Vec<Vec<String>> = results
        .iter()
        .flat_map(|r| {
            r.seeds.iter().map(|s| {
                let mut row = vec![
                    r.arm.name.clone(),
                    s.seed.to_string(),
                    cell(Some(s.final_value)),
                    cell(Some(s.auc)),
                ];
                row.extend(s.marks.iter().map(|v| cell(Some(*v))));
                row.extend([
                    cell(Some(s.heldout_greedy)),
                    format!("{:.0}", s.steps_per_s),
                    format!("{:.1}", s.wall_s),
                ]);
                row
            })
        })
        .collect();
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    report::write_csv(&plan.out.join("seeds.csv"), &header_refs, &rows)?;

    let mut curve_rows = Vec::new();
    for r in results {
        for (seed, run) in r.runs.iter().enumerate() {
            let cols = ["update", "env_steps", "wall_time_s", METRIC];
            let columns = cols
                .iter()
                .map(|c| run.metrics.column(c))
                .collect::<Result<Vec<_>, _>>()?;
            for k in 0..columns[0].len() {
                let mut row = vec![r.arm.name.clone(), seed.to_string()];
                row.extend(columns.iter().map(|c| cell(c[k])));
                curve_rows.push(row);
            }
        }
    }
    report::write_csv(
        &plan.out.join("curves.csv"),
        &[
            "policy",
            "seed",
            "update",
            "env_steps",
            "wall_time_s",
            METRIC,
        ],
        &curve_rows,
    )?;

    let welch_rows: Vec<Vec<String>> = tests
        .iter()
        .map(|t| {
            let w = t.welch;
            vec![
                t.a.clone(),
                t.b.clone(),
                t.measure.clone(),
                cell(Some(t.mean_a)),
                cell(Some(t.mean_b)),
                cell(w.map(|w| w.mean_diff)),
                cell(w.map(|w| w.t)),
                cell(w.map(|w| w.df)),
                cell(w.map(|w| w.p_two_sided)),
                cell(w.map(|w| w.hedges_g)),
            ]
        })
        .collect();
    report::write_csv(
        &plan.out.join("welch.csv"),
        &[
            "arm_a",
            "arm_b",
            "measure",
            "mean_a",
            "mean_b",
            "mean_diff",
            "t",
            "df",
            "p_two_sided",
            "hedges_g",
        ],
        &welch_rows,
    )
}

/// The README's tables of learning speed (reward at the marks, mean over training) and of the
/// Welch tests.
fn speed_and_tests_section(results: &[ArmResult], tests: &[PairTest]) -> String {
    let fmt = |s: Option<Summary>| match s {
        Some(s) if s.n > 1 => format!("{:.2} [{:.2}, {:.2}]", s.mean, s.ci_low, s.ci_high),
        Some(s) => format!("{:.2}", s.mean),
        None => "–".into(),
    };
    let mut md = String::from(
        "Learning speed: goals per episode at fixed fractions of the env-step budget (each the \
         mean over the same window as the final reward, ending at the mark) and the mean over \
         the whole run (area under the curve per env step); mean [95% Student-t CI] over \
         seeds.\n\n| policy |",
    );
    for m in MARKS {
        md.push_str(&format!(" at {:.0}% |", m * 100.0));
    }
    md.push_str(" mean over training |\n|---|");
    md.push_str(&"---|".repeat(MARKS.len() + 1));
    md.push('\n');
    for r in results {
        md.push_str(&format!("| {} |", r.arm.name));
        for i in 0..MARKS.len() {
            let v: Vec<f64> = r
                .seeds
                .iter()
                .map(|s| s.marks[i])
                .filter(|v| v.is_finite())
                .collect();
            md.push_str(&format!(" {} |", fmt(curves::mean_ci95(&v))));
        }
        let auc: Vec<f64> = r.seeds.iter().map(|s| s.auc).collect();
        md.push_str(&format!(" {} |\n", fmt(curves::mean_ci95(&auc))));
    }
    md.push_str(
        "\nWelch's t-test of each compared pair (difference of means A − B, two-sided p, \
         Hedges' g), on the final reward, the mean over training and the held-out greedy \
         reward; every measure, the marks included, is in `welch.csv`.\n\n\
         | A | B | final: A − B (p, g) | mean over training: A − B (p, g) | held-out greedy: A − B (p, g) |\n\
         |---|---|---|---|---|\n",
    );
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for t in tests {
        if !pairs.contains(&(t.a.as_str(), t.b.as_str())) {
            pairs.push((t.a.as_str(), t.b.as_str()));
        }
    }
    for (a, b) in pairs {
        md.push_str(&format!("| {a} | {b} |"));
        for measure in ["final", "auc", "heldout_greedy"] {
            let t = tests
                .iter()
                .find(|t| t.a == a && t.b == b && t.measure == measure);
            md.push_str(&match t.and_then(|t| t.welch) {
                Some(w) => format!(
                    " {:+.2} (p = {}, g = {:+.2}) |",
                    w.mean_diff,
                    fmt_p(w.p_two_sided),
                    w.hedges_g
                ),
                None => " – |".into(),
            });
        }
        md.push('\n');
    }
    md.push('\n');
    md
}

/// A p-value: three decimals, scientific below 0.001.
fn fmt_p(p: f64) -> String {
    if p < 1e-3 {
        format!("{p:.1e}")
    } else {
        format!("{p:.3}")
    }
}

/// Every arm's colour, distinct: an arm whose colour an earlier arm already has (two
/// Transformer arms of different spans) gets the first palette colour no arm uses.
fn arm_colors(experiment: Experiment, results: &[ArmResult]) -> Vec<usize> {
    let wanted: Vec<usize> = results
        .iter()
        .map(|r| arm_color(experiment, &r.arm))
        .collect();
    let mut taken: Vec<usize> = Vec::new();
    for &c in &wanted {
        let clash = taken.contains(&c);
        let c = if clash {
            (0..)
                .find(|k| !wanted.contains(k) && !taken.contains(k))
                .expect("an unused colour")
        } else {
            c
        };
        taken.push(c);
    }
    taken
}

/// The colour of an arm in every chart.
fn arm_color(experiment: Experiment, arm: &Arm) -> usize {
    match experiment {
        Experiment::Main => policy_color(&arm.name, 7),
        Experiment::Depth => depth_color(arm),
        Experiment::Ablations => ablation_color(arm),
    }
}

/// Reward curves (vs env steps and vs wall time) and the final-reward bars.
fn draw_charts(plan: &Plan, results: &[ArmResult], refs: &[RefLine]) -> Result<Vec<SavedPlot>> {
    let e = &plan.preset.experiment;
    let what = match plan.experiment {
        Experiment::Main => "",
        Experiment::Depth => "depth comparison, ",
        Experiment::Ablations => "ablations, ",
    };
    let y_label = if plan.maze.goal_reward == 1.0 && plan.maze.step_penalty == 0.0 {
        "goals per episode (= episode reward)"
    } else {
        "goals per episode"
    };
    let smooth_note = if e.smooth > 1 {
        format!(" Curves smoothed over {} updates.", e.smooth)
    } else {
        String::new()
    };
    let colors = arm_colors(plan.experiment, results);
    let mut saved = Vec::new();
    for (x_axis, file) in [
        (XAxis::Steps, "reward_curve.png"),
        (XAxis::Time, "reward_vs_time.png"),
    ] {
        let bands: Vec<BandCurve> = results
            .iter()
            .map(|r| curves::group_curve(&r.label, &r.runs, x_axis, METRIC, e.smooth, 200))
            .collect::<Result<_, _>>()?;
        let mut chart = LineChart::from_bands(
            format!(
                "{} — {what}{} preset: goals per episode vs {}",
                e.title,
                e.name,
                match x_axis {
                    XAxis::Steps => "env steps",
                    XAxis::Time => "wall-clock time",
                }
            ),
            x_axis.label(),
            y_label,
            &bands,
        );
        for ((s, r), c) in chart.series.iter_mut().zip(results).zip(&colors) {
            s.color = Some(*c);
            s.dashed = plan.experiment == Experiment::Depth
                && r.arm.policy.kind() == agents::PolicyKind::Transformer;
        }
        chart.hlines = refs.to_vec();
        chart.note = Some(format!(
            "{}{smooth_note} Dashed: scripted reference policies on the same mazes.",
            fbrl::plot::CI_NOTE
        ));
        saved.push(chart.save(&plan.out.join(file))?);
    }
    let mut bars = BarChart::new(
        format!(
            "{} — {what}{} preset: final reward (last {:.0}% of steps)",
            e.title,
            e.name,
            e.final_fraction * 100.0
        ),
        y_label,
    );
    bars.bars = results
        .iter()
        .zip(&colors)
        .map(|(r, c)| Bar {
            label: r.label.clone(),
            value: r.finals.mean,
            error: (r.finals.n > 1).then_some((r.finals.ci_low, r.finals.ci_high)),
            color: Some(*c),
        })
        .collect();
    bars.hlines = refs.to_vec();
    bars.note =
        Some("Error bars: 95% confidence interval of the mean over seeds (Student t).".into());
    saved.push(bars.save(&plan.out.join("final_reward_bar.png"))?);
    Ok(saved)
}

/// `summary.csv` (training results per arm) and `generalisation.csv` (held-out evaluation).
fn write_tables(plan: &Plan, results: &[ArmResult]) -> Result<()> {
    let train = &plan.preset.train;
    let summary_rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.arm.name.clone(),
                r.arm.policy.kind().name().to_string(),
                r.arm.policy.depth().to_string(),
                r.params.to_string(),
                r.finals.n.to_string(),
                cell(Some(r.finals.mean)),
                cell(Some(r.finals.ci_low)),
                cell(Some(r.finals.ci_high)),
                cell(Some(r.finals.std)),
                format!("{:.0}", r.steps_per_s),
                format!("{:.1}", r.wall_s),
                train.total_steps.to_string(),
                r.arm
                    .learning_rate
                    .unwrap_or(train.ppo.learning_rate)
                    .to_string(),
                r.arm
                    .ent_coef
                    .map_or_else(|| train.ppo.ent_coef.to_string(), |x| x.to_string()),
            ]
        })
        .collect();
    report::write_csv(
        &plan.out.join("summary.csv"),
        &[
            "policy",
            "kind",
            "layers",
            "params",
            "seeds",
            "final_goals_mean",
            "ci95_low",
            "ci95_high",
            "std",
            "steps_per_s",
            "wall_time_s_per_run",
            "env_steps_per_run",
            "learning_rate",
            "ent_coef",
        ],
        &summary_rows,
    )?;
    let gen_rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let g = r.heldout_greedy.expect("evaluated");
            let s = r.heldout_sampled.expect("evaluated");
            vec![
                r.arm.name.clone(),
                r.finals.n.to_string(),
                cell(Some(r.finals.mean)),
                cell(Some(r.finals.ci_low)),
                cell(Some(r.finals.ci_high)),
                cell(Some(g.mean)),
                cell(Some(g.ci_low)),
                cell(Some(g.ci_high)),
                cell(Some(s.mean)),
                cell(Some(s.ci_low)),
                cell(Some(s.ci_high)),
                plan.preset.experiment.eval_episodes.to_string(),
            ]
        })
        .collect();
    report::write_csv(
        &plan.out.join("generalisation.csv"),
        &[
            "policy",
            "seeds",
            "train_final_goals",
            "train_ci95_low",
            "train_ci95_high",
            "heldout_greedy_goals",
            "heldout_greedy_ci95_low",
            "heldout_greedy_ci95_high",
            "heldout_sampled_goals",
            "heldout_sampled_ci95_low",
            "heldout_sampled_ci95_high",
            "episodes_per_seed",
        ],
        &gen_rows,
    )
}

/// The README's first part: how the results were made (command, preset, machine, setting).
fn run_description(
    plan: &Plan,
    results: &[ArmResult],
    run_report: &runner::RunReport,
    elapsed_s: f64,
) -> String {
    let (e, train, maze) = (&plan.preset.experiment, &plan.preset.train, &plan.maze);
    let args_text = report::command_line();
    let shown_args = args_text.split_once(' ').map(|(_, a)| a).unwrap_or("");
    let mut md = String::new();
    md.push_str(&format!(
        "Command: `{}cargo run --release -p experiments --bin maze -- {shown_args}`\n\n",
        report::env_prefix()
    ));
    md.push_str(&format!(
        "Preset: `{}`\n\n",
        report::rel_path(&plan.preset.path)
    ));
    md.push_str(&format!("Machine: {}\n\n", report::machine()));
    let trained_wall: f64 = results.iter().map(|r| r.wall_s * r.runs.len() as f64).sum();
    md.push_str(&format!(
        "Wall time of this invocation: {:.1} min ({} runs started, {} resumed, {} already finished; \
         {} runs at a time × {} threads). Training time summed over all runs: {:.1} min.\n\n",
        elapsed_s / 60.0,
        run_report.started,
        run_report.resumed,
        run_report.skipped,
        plan.jobs_at_once,
        plan.threads,
        trained_wall / 60.0
    ));
    md.push_str(&format!(
        "Setting: {} — GridMaze `{}` {}×{}, horizon {}, view {}×{}; {} envs × {} steps per update, \
         {} env steps per run, {} seed(s) per policy; the preset's PPO settings for every policy \
         except the learning rate and entropy coefficient, set per arm (summary.csv).\n\n",
        e.title,
        format!("{:?}", maze.mode).to_lowercase(),
        maze.size,
        maze.size,
        maze.horizon,
        2 * maze.view_radius + 1,
        2 * maze.view_radius + 1,
        train.num_envs,
        train.num_steps,
        train.total_steps,
        plan.seeds
    ));
    md
}

/// The README's second part: the charts, the results table and the reference policies.
fn results_section(
    plan: &Plan,
    results: &[ArmResult],
    refs: &[RefLine],
    saved: &[SavedPlot],
) -> String {
    let e = &plan.preset.experiment;
    let mut md = String::new();
    for s in saved {
        let name = s.png.file_name().unwrap().to_string_lossy().into_owned();
        md.push_str(&format!("![{name}]({name})\n\n"));
    }
    md.push_str(&format!(
        "Final reward = mean goals per episode over the last {:.0}% of each run's env steps \
         (training episodes, sampled actions); mean over seeds with a 95% Student-t confidence \
         interval. Held-out = the final checkpoint on {} episodes with seeds never used in \
         training.\n\n",
        e.final_fraction * 100.0,
        e.eval_episodes
    ));
    md.push_str("| policy | params | seeds | final goals/ep [95% CI] | held-out greedy [95% CI] | held-out sampled | steps/s | wall time/run |\n|---|---|---|---|---|---|---|---|\n");
    for r in results {
        let g = r.heldout_greedy.expect("evaluated");
        let s = r.heldout_sampled.expect("evaluated");
        md.push_str(&format!(
            "| {} | {} | {} | {:.2} [{:.2}, {:.2}] | {:.2} [{:.2}, {:.2}] | {:.2} | {:.0} | {:.0} s |\n",
            r.arm.name,
            fmt_params(r.params),
            r.finals.n,
            r.finals.mean,
            r.finals.ci_low,
            r.finals.ci_high,
            g.mean,
            g.ci_low,
            g.ci_high,
            s.mean,
            r.steps_per_s,
            r.wall_s
        ));
    }
    md.push_str("\nReference policies (same maze distribution):");
    for r in refs {
        md.push_str(&format!(" {} {:.2};", r.label, r.value));
    }
    md.push_str(" goals per episode.\n\nFiles: `summary.csv`, `generalisation.csv`, `seeds.csv` (every run: final, mean over training, the marks, held-out greedy), `curves.csv` (every run's goals per update), `welch.csv`, and each PNG with an SVG beside it.\n\n");
    md
}

/// Colour of a depth-comparison arm: blues for Feedback, oranges/reds for Transformer.
fn depth_color(arm: &Arm) -> usize {
    match (arm.policy.kind(), arm.policy.depth()) {
        (agents::PolicyKind::Feedback, 1) => 9,
        (agents::PolicyKind::Feedback, _) => 0,
        (agents::PolicyKind::Transformer, 2) => 1,
        (agents::PolicyKind::Transformer, 3) => 3,
        (agents::PolicyKind::Transformer, _) => 5,
        _ => 7,
    }
}

/// Ablations: the default Feedback memory keeps the Feedback colour; each variant its own.
fn ablation_color(arm: &Arm) -> usize {
    use agents::{CurrentSlot, MemoryMix};
    // Other kinds have the default Feedback memory's colour.
    let (mix, slot, share_kv) = match &arm.policy.spec {
        agents::KindConfig::Feedback(f) => (f.memory_mix, f.current_slot, f.share_kv),
        _ => (MemoryMix::Learned, CurrentSlot::Input, true),
    };
    match (mix, slot, share_kv) {
        (MemoryMix::Learned, CurrentSlot::Input, true) => 0,
        (MemoryMix::Top, _, _) => 4,
        (MemoryMix::Embedding, _, _) => 5,
        (_, CurrentSlot::Null, _) => 6,
        _ => 8,
    }
}
