//! Benchmarks of the trainer with the framework defaults (`PpoConfig::default()`, each policy's
//! preset; no per-env tuning), against published and built-in references:
//!
//! - `cartpole`: CartPole-v1 (gymnasium-rs), MLP, CleanRL's `ppo.py` rollout sizes (4 envs ×
//!   128 steps, 500 k steps). Check: the mean over seeds of the final return (last 10 % of env
//!   steps) is ≥ 475. CleanRL's published `ppo.py` figure is drawn beside it.
//! - `scale`: the same run with the env's rewards ×1 and ×100, on CueRecall (GRU) and GridMaze
//!   `single` (MLP). Check: the final success rates' 95 % CIs overlap (scale invariance).
//!
//! Controls with reward scaling off (`ppo.norm_reward = false`: CartPole, and the ×100 runs)
//! are trained and drawn beside them, unchecked, to show what the scaling changes.
//! - `memory`: every memory policy on CueRecall at its default delay. Check: final success
//!   ≥ 0.95 (mean over seeds).
//! - `pendulum`: Pendulum-v1 (continuous torque), MLP, with the settings CleanRL's
//!   `ppo_continuous_action.py` was measured with (γ 0.9, 4 envs × 1024 steps, 10 epochs,
//!   entropy 0, lr 1e-3, the rest default), 200 k steps. Check: the mean over seeds of the
//!   final return is ≥ −550; CleanRL's measured mean (−477) is drawn beside it.
//! - `point_cue`: the continuous-action memory task (steer to the side a cue showed before a
//!   delay), every policy. Check: each memory policy's final success is ≥ 0.9 and the
//!   memoryless MLP's stays at chance (within 0.5 ± 0.1).
//!
//! ```text
//! cargo run --release -p experiments --bin benchmarks
//! ```
//!
//! Writes `results/benchmarks/` (one PNG per suite, summary.csv, README block). Runs live in
//! deterministic directories under `runs/benchmarks/`; re-running resumes or skips them. Exits
//! with an error when a check fails (except on the `tiny` preset, whose budgets are for tests).

use std::path::{Path, PathBuf};

use agents::{PolicyConfig, PolicyKind};
use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use envs::{CueRecallConfig, GridMazeConfig};
use envs::{PendulumConfig, PointCueConfig};
use experiments::evaluate::evaluate_run;
use experiments::report::{self, cell};
use experiments::runner::{self, Job};
use fbrl::curves::{self, Run, Summary, XAxis};
use fbrl::plot::{LineChart, RefLine};
use fbrl::{CartPoleConfig, EnvConfig, TrainConfig};
use rayon::prelude::*;

/// CleanRL's `ppo.py` on CartPole-v1 with these rollout sizes: average episodic return
/// 492.40 ± 13.05 (CleanRL documentation, "PPO" page, `ppo.py` experiment results table).
const CLEANRL_CARTPOLE: f64 = 492.40;
/// The CartPole check: mean final return over seeds.
const CARTPOLE_TARGET: f64 = 475.0;
/// The memory check: mean final success over seeds.
const MEMORY_TARGET: f64 = 0.95;
/// "Final" = mean over the last this fraction of env steps.
const FINAL_FRACTION: f64 = 0.1;
/// Rewards of the scaled twin of a scale-invariance pair are multiplied by this.
const REWARD_SCALE: f32 = 100.0;
/// CleanRL's `ppo_continuous_action.py` on Pendulum-v1 with the pendulum suite's settings,
/// mean of the last 10 % of steps over seeds 1 / 2 / 3 (−564 / −335 / −532), measured on a
/// 2-core machine.
const CLEANRL_PENDULUM: f64 = -477.0;
/// The Pendulum check: mean final return over seeds.
const PENDULUM_TARGET: f64 = -550.0;
/// The continuous-memory check: mean final success of the memory policies.
const POINT_CUE_TARGET: f64 = 0.9;
/// The continuous-memory control: the MLP's final success stays within this of 0.5.
const CHANCE_MARGIN: f64 = 0.1;
/// Learning rate of the point_cue suite (every policy).
const POINT_CUE_LR: f64 = 2e-3;
/// Env steps per point_cue run.
const POINT_CUE_STEPS: u64 = 204_800;
/// Held-out greedy episodes per run of the memory suite.
const EVAL_EPISODES: usize = 200;

/// Budgets: `default` (the benchmark, ≈ 10 minutes on 2 cores) or `tiny` (seconds; for tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BudgetPreset {
    /// The benchmark's budgets.
    Default,
    /// A few updates per run: checks the pipeline, not the learning.
    Tiny,
}

/// One suite of benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Suite {
    /// CartPole-v1, MLP, vs CleanRL.
    Cartpole,
    /// Rewards ×1 vs ×100 on CueRecall and GridMaze.
    Scale,
    /// Every memory policy on CueRecall.
    Memory,
    /// Pendulum-v1 (continuous actions), MLP, vs CleanRL.
    Pendulum,
    /// The continuous-action memory task: every memory policy vs the MLP.
    PointCue,
}

impl Suite {
    fn name(self) -> &'static str {
        match self {
            Suite::Cartpole => "cartpole",
            Suite::Scale => "scale",
            Suite::Memory => "memory",
            Suite::Pendulum => "pendulum",
            Suite::PointCue => "point_cue",
        }
    }
}

/// Train the benchmark suites with the framework defaults, then check and plot them.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Budgets: `default` or `tiny` (a few updates per run, for tests).
    #[arg(long, value_enum, default_value = "default")]
    preset: BudgetPreset,
    /// Seeds per benchmark.
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Comma-separated suites to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    suites: Option<Vec<Suite>>,
    /// Folder for the PNGs, CSV and README.
    #[arg(long, default_value = "results/benchmarks")]
    out: PathBuf,
    /// Root of the run directories.
    #[arg(long, default_value = "runs/benchmarks")]
    runs_dir: PathBuf,
    /// Runs trained at once (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
    /// No progress bar: plain lines only.
    #[arg(long)]
    quiet: bool,
}

/// One benchmark: a training config run over seeds, and the metric it is judged by.
#[derive(Clone, Debug)]
struct Bench {
    suite: Suite,
    /// Directory-name stem, e.g. `cue_recall-x100__gru`.
    id: String,
    /// Legend label.
    label: String,
    /// metrics.csv column judged: `return_mean`, `success_rate` or `goals_mean`.
    metric: &'static str,
    /// A control run with reward scaling off: shown beside the checked runs, not checked.
    control: bool,
    config: TrainConfig,
}

impl Bench {
    fn dir(&self, runs_root: &Path, seed: u64) -> PathBuf {
        runs_root.join(format!("{}__{seed}", self.id))
    }
}

/// What a benchmark reached over its seeds.
struct Outcome {
    /// Final value of the metric per seed.
    finals: Vec<f64>,
    summary: Summary,
    /// Held-out greedy success per seed (memory suite).
    greedy: Option<Summary>,
}

fn budget(preset: BudgetPreset, default: u64, batch: usize) -> u64 {
    match preset {
        BudgetPreset::Default => default,
        BudgetPreset::Tiny => 3 * batch as u64,
    }
}

fn cue_recall(kind: PolicyKind, scale: f32, preset: BudgetPreset) -> TrainConfig {
    let defaults = CueRecallConfig::default();
    let env = CueRecallConfig {
        success_reward: defaults.success_reward * scale,
        failure_reward: defaults.failure_reward * scale,
        ..defaults
    };
    let mut cfg = TrainConfig {
        num_envs: 32,
        num_steps: 32,
        env: EnvConfig::CueRecall(env),
        policy: PolicyConfig::preset(kind),
        ..TrainConfig::default()
    };
    cfg.total_steps = budget(preset, 153_600, cfg.batch_size());
    cfg
}

fn gridmaze_single(scale: f32, preset: BudgetPreset) -> TrainConfig {
    let defaults = GridMazeConfig::single(7, 50);
    let env = GridMazeConfig {
        goal_reward: defaults.goal_reward * scale,
        step_penalty: defaults.step_penalty * scale,
        ..defaults
    };
    let mut cfg = TrainConfig {
        env: EnvConfig::Gridmaze(env),
        policy: PolicyConfig::preset(PolicyKind::Mlp),
        ..TrainConfig::default()
    };
    cfg.total_steps = budget(preset, 524_288, cfg.batch_size());
    cfg
}

/// Pendulum-v1 with the settings CleanRL's continuous PPO was measured with.
fn pendulum(preset: BudgetPreset) -> TrainConfig {
    let mut cfg = TrainConfig {
        num_envs: 4,
        num_steps: 1024,
        env: EnvConfig::Pendulum(PendulumConfig::default()),
        policy: PolicyConfig::preset(PolicyKind::Mlp),
        ..TrainConfig::default()
    };
    cfg.ppo.gamma = 0.9;
    cfg.ppo.update_epochs = 10;
    cfg.ppo.ent_coef = 0.0;
    cfg.ppo.learning_rate = 1e-3;
    cfg.total_steps = budget(preset, 200_000, cfg.batch_size());
    cfg
}

/// The continuous-action memory task (default delay) for `kind`.
fn point_cue(kind: PolicyKind, preset: BudgetPreset) -> TrainConfig {
    let mut cfg = TrainConfig {
        num_envs: 16,
        num_steps: 128,
        env: EnvConfig::PointCue(PointCueConfig::default()),
        policy: PolicyConfig::preset(kind),
        ..TrainConfig::default()
    };
    cfg.ppo.learning_rate = POINT_CUE_LR;
    cfg.total_steps = budget(preset, POINT_CUE_STEPS, cfg.batch_size());
    cfg
}

fn benches(suites: &[Suite], preset: BudgetPreset) -> Vec<Bench> {
    let mut out = Vec::new();
    for &suite in suites {
        match suite {
            Suite::Cartpole => {
                let mut config = TrainConfig::preset_cartpole(PolicyKind::Mlp);
                config.env = EnvConfig::Cartpole(CartPoleConfig::default());
                config.total_steps = budget(preset, 500_000, config.batch_size());
                let mut unscaled = config.clone();
                unscaled.ppo.norm_reward = false;
                out.push(Bench {
                    suite,
                    id: "cartpole__mlp".into(),
                    label: "mlp".into(),
                    metric: "return_mean",
                    control: false,
                    config,
                });
                out.push(Bench {
                    suite,
                    id: "cartpole-unscaled__mlp".into(),
                    label: "mlp, reward scaling off".into(),
                    metric: "return_mean",
                    control: true,
                    config: unscaled,
                });
            }
            Suite::Scale => {
                // Per env: rewards ×1, ×100, and ×100 with reward scaling off (a control).
                // GridMaze `single` ends at the goal: goals per episode is the fraction of
                // episodes that reached it.
                type Make = fn(f32, BudgetPreset) -> TrainConfig;
                let envs: [(&str, &str, &str, Make); 2] = [
                    ("cue_recall", "gru", "success_rate", |scale, preset| {
                        cue_recall(PolicyKind::Gru, scale, preset)
                    }),
                    ("gridmaze_single", "mlp", "goals_mean", gridmaze_single),
                ];
                for (env, policy, metric, make) in envs {
                    for (scale, scaled) in
                        [(1.0, true), (REWARD_SCALE, true), (REWARD_SCALE, false)]
                    {
                        let mut config = make(scale, preset);
                        config.ppo.norm_reward = scaled;
                        let (tag, off) = if scaled {
                            ("", "")
                        } else {
                            ("-unscaled", ", scaling off")
                        };
                        out.push(Bench {
                            suite,
                            id: format!("{env}-x{scale}{tag}__{policy}"),
                            label: format!(
                                "{} {policy}, reward ×{scale}{off}",
                                env.replace('_', " ")
                            ),
                            metric,
                            control: !scaled,
                            config,
                        });
                    }
                }
            }
            Suite::Pendulum => out.push(Bench {
                suite,
                id: "pendulum__mlp".into(),
                label: "mlp".into(),
                metric: "return_mean",
                control: false,
                config: pendulum(preset),
            }),
            Suite::PointCue => {
                for kind in PolicyKind::ALL {
                    out.push(Bench {
                        suite,
                        id: format!("point_cue__{kind}"),
                        label: kind.name().into(),
                        metric: "success_rate",
                        control: false,
                        config: point_cue(kind, preset),
                    });
                }
            }
            Suite::Memory => {
                for kind in [
                    PolicyKind::Feedback,
                    PolicyKind::Transformer,
                    PolicyKind::Gru,
                ] {
                    out.push(Bench {
                        suite,
                        // The GRU's ×1 run is the scale suite's: same config, same directory.
                        id: format!("cue_recall-x1__{kind}"),
                        label: kind.name().into(),
                        metric: "success_rate",
                        control: false,
                        config: cue_recall(kind, 1.0, preset),
                    });
                }
            }
        }
    }
    out
}

fn main() -> Result<()> {
    if let Some(result) = runner::run_worker_if_requested() {
        return result;
    }
    let args = Args::parse();
    let t0 = std::time::Instant::now();
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let suites = args.suites.clone().unwrap_or_else(|| {
        vec![
            Suite::Cartpole,
            Suite::Scale,
            Suite::Memory,
            Suite::Pendulum,
            Suite::PointCue,
        ]
    });
    let benches = benches(&suites, args.preset);
    let runs_root = match args.preset {
        BudgetPreset::Default => args.runs_dir.clone(),
        BudgetPreset::Tiny => args.runs_dir.join("tiny"),
    };

    // 1. Train every (benchmark, seed) not finished yet.
    let (jobs, at_once) = build_jobs(&benches, args.seeds, &runs_root, args.jobs)?;
    eprintln!(
        "benchmarks ({:?} preset): {} runs ({} benchmarks × {} seeds) → {}",
        args.preset,
        jobs.len(),
        benches.len(),
        args.seeds,
        runs_root.display()
    );
    let run_report = runner::run_jobs(&jobs, at_once, &runs_root.join("logs"), args.quiet, None)?;
    runner::refuse_diverged(&jobs)?;

    // 2. Final values per seed, checks.
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let checked = args.preset == BudgetPreset::Default;
    let outcomes = benches
        .iter()
        .map(|b| measure(b, args.seeds, &runs_root))
        .collect::<Result<Vec<_>>>()?;
    let checks = checks(&benches, &outcomes);
    for (line, ok) in &checks {
        println!("{}  {line}", verdict(checked, *ok));
    }

    // 3. Curves, summary.csv, README block.
    let pngs = plot_suites(&suites, &benches, args.seeds, &runs_root, &args.out)?;
    write_summary_csv(&benches, &outcomes, &args.out)?;
    let mut md = String::new();
    md.push_str(&format!(
        "Command: `{}{}` ({:?} preset, {} seeds; {} runs started, {} resumed, {} already finished; {:.0} s wall).\n\n",
        report::env_prefix(),
        report::command_line(),
        args.preset,
        args.seeds,
        run_report.started,
        run_report.resumed,
        run_report.skipped,
        t0.elapsed().as_secs_f64()
    ));
    md.push_str(&readme_block(&benches, &outcomes, &checks, checked, &pngs));
    report::update_readme(&args.out.join("README.md"), "Benchmarks", &md)?;
    eprintln!(
        "wrote {} in {:.0} s",
        report::rel_path(&args.out),
        t0.elapsed().as_secs_f64()
    );
    let failed = checks.iter().filter(|(_, ok)| !ok).count();
    if checked && failed > 0 {
        bail!("{failed} benchmark check(s) failed (see above)");
    }
    Ok(())
}

/// The runs of every benchmark × seed (a run shared by two benchmarks once), with the number
/// trained at once and their threads.
fn build_jobs(
    benches: &[Bench],
    seeds: u64,
    runs_root: &Path,
    jobs_arg: Option<usize>,
) -> Result<(Vec<Job>, usize)> {
    let mut jobs: Vec<Job> = Vec::new();
    for b in benches {
        for seed in 0..seeds {
            let dir = b.dir(runs_root, seed);
            if jobs.iter().any(|j| j.dir == dir) {
                continue;
            }
            let mut config = b.config.clone();
            config.seed = seed;
            config.checkpoint_every = 25;
            config
                .validate()
                .with_context(|| format!("benchmark {}", b.id))?;
            // Relative cost per env step (one-core training throughput, results/throughput).
            let cost_per_step = match config.policy.kind {
                PolicyKind::Feedback => 3.2,
                PolicyKind::Transformer => 6.3,
                PolicyKind::Gru => 1.0,
                PolicyKind::Mlp => 0.45,
            };
            jobs.push(Job {
                name: format!("{} seed {seed}", b.id),
                dir,
                cost: cost_per_step * config.total_steps as f64,
                config,
            });
        }
    }
    let at_once = jobs_arg.unwrap_or_else(runner::cores).clamp(1, jobs.len());
    let threads = (runner::cores() / at_once).max(1);
    for j in &mut jobs {
        j.config.threads = threads;
    }
    Ok((jobs, at_once))
}

/// A benchmark's final value per seed (and held-out greedy success for the memory suite).
fn measure(b: &Bench, seeds: u64, runs_root: &Path) -> Result<Outcome> {
    let dirs: Vec<PathBuf> = (0..seeds).map(|s| b.dir(runs_root, s)).collect();
    let mut finals = Vec::new();
    for dir in &dirs {
        let run = Run::load(dir)?;
        let pts = run.metrics.xy("env_steps", b.metric)?;
        finals.push(curves::final_value(&pts, FINAL_FRACTION).unwrap_or(f64::NAN));
    }
    let summary = curves::mean_ci95(&finals).expect("at least one seed");
    let greedy = if matches!(b.suite, Suite::Memory | Suite::PointCue) {
        let evals = dirs
            .par_iter()
            .map(|dir| evaluate_run(dir, EVAL_EPISODES))
            .collect::<Result<Vec<_>>>()?;
        let g: Vec<f64> = evals
            .iter()
            .map(|e| e.greedy.success_rate.unwrap_or(f64::NAN))
            .collect();
        curves::mean_ci95(&g)
    } else {
        None
    };
    Ok(Outcome {
        finals,
        summary,
        greedy,
    })
}

/// Per-seed finals, comma-separated.
fn fmt_seeds(o: &Outcome, digits: usize) -> String {
    o.finals
        .iter()
        .map(|v| format!("{v:.digits$}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `PASS` / `FAIL`, or `not checked` on the tiny preset.
fn verdict(checked: bool, ok: bool) -> &'static str {
    match (checked, ok) {
        (false, _) => "not checked (tiny preset)",
        (true, true) => "PASS",
        (true, false) => "FAIL",
    }
}

/// Every check as `(line, passed)`: CartPole's target, each memory policy's success, each
/// ×1 / ×100 pair's overlapping CIs (controls are reported beside, not checked).
fn checks(benches: &[Bench], outcomes: &[Outcome]) -> Vec<(String, bool)> {
    let mut checks: Vec<(String, bool)> = Vec::new();
    for (b, o) in benches.iter().zip(outcomes) {
        let s = &o.summary;
        if b.control {
            continue;
        }
        match b.suite {
            Suite::Cartpole => checks.push((
                format!(
                    "cartpole mlp: final return {:.1} [{:.1}, {:.1}] ≥ {CARTPOLE_TARGET} (seeds: {}; CleanRL ppo.py {CLEANRL_CARTPOLE})",
                    s.mean,
                    s.ci_low,
                    s.ci_high,
                    fmt_seeds(o, 1)
                ),
                s.mean >= CARTPOLE_TARGET,
            )),
            Suite::Memory => checks.push((
                format!(
                    "memory {}: final success {:.3} [{:.3}, {:.3}] ≥ {MEMORY_TARGET} (seeds: {}; held-out greedy {})",
                    b.label,
                    s.mean,
                    s.ci_low,
                    s.ci_high,
                    fmt_seeds(o, 3),
                    o.greedy.map_or("-".into(), |g| format!("{:.3}", g.mean))
                ),
                s.mean >= MEMORY_TARGET,
            )),
            Suite::Pendulum => checks.push((
                format!(
                    "pendulum mlp: final return {:.1} [{:.1}, {:.1}] ≥ {PENDULUM_TARGET} (seeds: {}; CleanRL ppo_continuous_action.py, same settings, measured: {CLEANRL_PENDULUM})",
                    s.mean,
                    s.ci_low,
                    s.ci_high,
                    fmt_seeds(o, 1)
                ),
                s.mean >= PENDULUM_TARGET,
            )),
            Suite::PointCue if b.config.policy.kind == PolicyKind::Mlp => checks.push((
                format!(
                    "point_cue mlp (no memory): final success {:.3} [{:.3}, {:.3}] within {CHANCE_MARGIN} of chance 0.5 (seeds: {}; held-out greedy {})",
                    s.mean,
                    s.ci_low,
                    s.ci_high,
                    fmt_seeds(o, 3),
                    o.greedy.map_or("-".into(), |g| format!("{:.3}", g.mean))
                ),
                (s.mean - 0.5).abs() <= CHANCE_MARGIN,
            )),
            Suite::PointCue => checks.push((
                format!(
                    "point_cue {}: final success {:.3} [{:.3}, {:.3}] ≥ {POINT_CUE_TARGET} (seeds: {}; held-out greedy {})",
                    b.label,
                    s.mean,
                    s.ci_low,
                    s.ci_high,
                    fmt_seeds(o, 3),
                    o.greedy.map_or("-".into(), |g| format!("{:.3}", g.mean))
                ),
                s.mean >= POINT_CUE_TARGET,
            )),
            Suite::Scale => {}
        }
    }
    let scale_pairs: Vec<(usize, usize)> = (0..benches.len())
        .filter(|&i| benches[i].suite == Suite::Scale && benches[i].id.contains("-x1__"))
        .filter_map(|i| {
            let twin = benches[i]
                .id
                .replace("-x1__", &format!("-x{REWARD_SCALE}__"));
            benches.iter().position(|b| b.id == twin).map(|j| (i, j))
        })
        .collect();
    for &(i, j) in &scale_pairs {
        let (a, b) = (&outcomes[i].summary, &outcomes[j].summary);
        let overlap = a.ci_low <= b.ci_high && b.ci_low <= a.ci_high;
        let name = benches[i].id.replace("-x1__", " ");
        let control_id = benches[i]
            .id
            .replace("-x1__", &format!("-x{REWARD_SCALE}-unscaled__"));
        let control =
            benches
                .iter()
                .position(|b| b.id == control_id)
                .map_or("-".to_string(), |k| {
                    let c = &outcomes[k].summary;
                    format!("{:.3} [{:.3}, {:.3}]", c.mean, c.ci_low, c.ci_high)
                });
        checks.push((
            format!(
                "scale {name}: final success ×1 {:.3} [{:.3}, {:.3}] vs ×{REWARD_SCALE} {:.3} [{:.3}, {:.3}]: 95 % CIs overlap (seeds ×1: {}; ×{REWARD_SCALE}: {}; control ×{REWARD_SCALE} with scaling off: {control})",
                a.mean,
                a.ci_low,
                a.ci_high,
                b.mean,
                b.ci_low,
                b.ci_high,
                fmt_seeds(&outcomes[i], 3),
                fmt_seeds(&outcomes[j], 3)
            ),
            overlap,
        ));
    }
    checks
}

/// One PNG per suite: mean curves with 95 % CI bands (CleanRL's published CartPole figure
/// beside ours; each ×100 twin dashed in its ×1 partner's colour).
fn plot_suites(
    suites: &[Suite],
    benches: &[Bench],
    seeds: u64,
    runs_root: &Path,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let mut pngs = Vec::new();
    for &suite in suites {
        let members: Vec<&Bench> = benches.iter().filter(|b| b.suite == suite).collect();
        let mut bands = Vec::new();
        for b in &members {
            let runs = (0..seeds)
                .map(|s| Run::load(&b.dir(runs_root, s)))
                .collect::<Result<Vec<_>, _>>()?;
            let smooth = (b.config.num_updates() / 50).max(1);
            bands.push(curves::group_curve(
                &b.label,
                &runs,
                XAxis::Steps,
                b.metric,
                smooth,
                100,
            )?);
        }
        let (title, y_label) = match suite {
            Suite::Cartpole => (
                "CartPole-v1, MLP, framework defaults".to_string(),
                "episodic return",
            ),
            Suite::Scale => (
                format!("Reward scale invariance: rewards ×1 vs ×{REWARD_SCALE}"),
                "success rate",
            ),
            Suite::Memory => (
                "CueRecall (default delay), framework defaults".to_string(),
                "success rate",
            ),
            Suite::Pendulum => (
                "Pendulum-v1, MLP, CleanRL's continuous settings".to_string(),
                "episodic return",
            ),
            Suite::PointCue => (
                "PointCue (continuous actions, delay 8)".to_string(),
                "success rate",
            ),
        };
        let mut chart = LineChart::from_bands(title, XAxis::Steps.label(), y_label, &bands);
        if suite == Suite::Pendulum {
            chart.hlines = vec![
                RefLine::new(
                    "CleanRL ppo_continuous_action.py (measured)",
                    CLEANRL_PENDULUM,
                ),
                RefLine::new("target", PENDULUM_TARGET),
            ];
        } else if suite == Suite::Cartpole {
            chart.hlines = vec![
                RefLine::new(
                    "CleanRL ppo.py, published (docs.cleanrl.dev)",
                    CLEANRL_CARTPOLE,
                ),
                RefLine::new("target", CARTPOLE_TARGET),
            ];
        } else {
            chart.y_range = Some((0.0, 1.02));
        }
        if suite == Suite::Scale {
            // Each ×100 twin (scaling on) is dashed in its ×1 partner's colour.
            for (k, b) in members.iter().enumerate() {
                if b.control || !b.id.contains(&format!("-x{REWARD_SCALE}__")) {
                    continue;
                }
                let partner = b.id.replace(&format!("-x{REWARD_SCALE}__"), "-x1__");
                if let Some(p) = members.iter().position(|m| m.id == partner) {
                    chart.series[k].color = chart.series[p].color;
                    chart.series[k].dashed = true;
                }
            }
        }
        let png = out.join(format!("{}.png", suite.name()));
        chart
            .save(&png)
            .with_context(|| format!("cannot write {}", png.display()))?;
        pngs.push(png);
    }

    Ok(pngs)
}

/// summary.csv: one row per benchmark.
fn write_summary_csv(benches: &[Bench], outcomes: &[Outcome], out: &Path) -> Result<()> {
    let mut rows = Vec::new();
    for (b, o) in benches.iter().zip(outcomes) {
        let s = &o.summary;
        rows.push(vec![
            b.suite.name().to_string(),
            b.id.clone(),
            b.config.env.name().to_string(),
            b.config.policy.kind.name().to_string(),
            b.config.ppo.norm_reward.to_string(),
            b.metric.to_string(),
            b.config.total_steps.to_string(),
            s.n.to_string(),
            cell(Some(s.mean)),
            cell(Some(s.ci_low)),
            cell(Some(s.ci_high)),
            o.finals
                .iter()
                .map(|v| format!("{v:.4}"))
                .collect::<Vec<_>>()
                .join(" "),
            cell(o.greedy.map(|g| g.mean)),
        ]);
    }
    report::write_csv(
        &out.join("summary.csv"),
        &[
            "suite",
            "benchmark",
            "env",
            "policy",
            "norm_reward",
            "metric",
            "env_steps",
            "seeds",
            "final_mean",
            "ci95_low",
            "ci95_high",
            "per_seed",
            "heldout_greedy_success",
        ],
        &rows,
    )
}

/// The README block after the command line: machine, table, checks, PNGs.
fn readme_block(
    benches: &[Bench],
    outcomes: &[Outcome],
    checks: &[(String, bool)],
    checked: bool,
    pngs: &[PathBuf],
) -> String {
    let mut md = String::new();
    md.push_str(&format!("Machine: {}\n\n", report::machine()));
    md.push_str(
        "Every run uses the framework defaults: `PpoConfig::default()` (reward scaling on) and \
         the policy's preset, except where a suite sets its own: `pendulum` takes the settings \
         CleanRL's continuous PPO was measured with (γ 0.9, 4 envs × 1024 steps, 10 epochs, \
         entropy 0, lr 1e-3), `point_cue` 16 envs × 128 steps and lr 2e-3. Final = mean of the metric over the last 10 % of env steps \
         (sampled actions, as logged in training); mean [95 % Student-t CI] over seeds.\n\n",
    );
    md.push_str("| suite | benchmark | env steps | final (mean [95 % CI]) | per seed |\n");
    md.push_str("|---|---|---:|---|---|\n");
    for (b, o) in benches.iter().zip(outcomes) {
        let s = &o.summary;
        md.push_str(&format!(
            "| {} | {}{} | {} | {:.3} [{:.3}, {:.3}] | {} |\n",
            b.suite.name(),
            b.label,
            if b.control { " (control)" } else { "" },
            b.config.total_steps,
            s.mean,
            s.ci_low,
            s.ci_high,
            fmt_seeds(o, 3)
        ));
    }
    md.push_str("\nChecks:\n\n");
    for (line, ok) in checks {
        md.push_str(&format!("- **{}** {line}\n", verdict(checked, *ok)));
    }
    md.push('\n');
    for png in pngs {
        let name = png.file_name().unwrap_or_default().to_string_lossy();
        md.push_str(&format!("![{name}]({name})\n\n"));
    }
    md
}
