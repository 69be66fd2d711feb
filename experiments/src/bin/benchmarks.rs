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
//! - `python-memory` (cargo feature `python`; not in the default list): CleanRL `ppo_trxl`'s
//!   documented settings on ProofofMemory-v0 (24,576 steps) and MiniGrid-MemoryS9-v0
//!   (2,048,000 steps), Transformer and Feedback, both envs run in Python (`experiments/python/`,
//!   put on `PYTHONPATH` by the binary itself). Not checked: CleanRL publishes no figure for
//!   these envs; reported are the final return and success, env steps/s, and the env steps and
//!   seconds each seed took to first reach 90 % success (`python_memory.csv`, one PNG per env
//!   against env steps and one against wall-clock time).
//!
//! ```text
//! cargo run --release -p experiments --bin benchmarks
//! FBRL_PYTHON=~/gym-venv/bin/python cargo run --release -p experiments --features python \
//!     --bin benchmarks -- --suites python-memory --seeds 5 --out results/benchmarks/python_memory
//! ```
//!
//! Writes `results/benchmarks/` (one PNG per suite, summary.csv, README block). Runs live in
//! deterministic directories under `runs/benchmarks/`; re-running resumes or skips them. Exits
//! with an error when a check fails (except on the `tiny` preset, whose budgets are for tests).

use std::path::{Path, PathBuf};

use agents::ppo::PpoConfig;
use agents::{PolicyConfig, PolicyKind};
use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use envs::PointCueConfig;
use envs::{CueRecallConfig, GridMazeConfig};
use experiments::evaluate::evaluate_run;
use experiments::report::{self, cell};
use experiments::runner::{self, Job};
use fbrl::curves::{self, Run, Summary, XAxis};
use fbrl::plot::{LineChart, RefLine};
use fbrl::{CartPoleConfig, EnvConfig, GymEnvConfig, TrainConfig};
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
/// The python-memory suite's learning-speed threshold: a seed "has learned" at the first update
/// whose logged success rate reaches this.
const LEARNED_SUCCESS: f64 = 0.9;

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
    /// CleanRL `ppo_trxl`'s settings on Python memory envs: Transformer vs Feedback (needs
    /// the `python` cargo feature; not run by default).
    PythonMemory,
}

impl Suite {
    fn name(self) -> &'static str {
        match self {
            Suite::Cartpole => "cartpole",
            Suite::Scale => "scale",
            Suite::Memory => "memory",
            Suite::Pendulum => "pendulum",
            Suite::PointCue => "point_cue",
            Suite::PythonMemory => "python_memory",
        }
    }
}

/// An env of the python-memory suite, with CleanRL `ppo_trxl`'s documented settings for it
/// (docs.cleanrl.dev, "PPO-TrXL", Hyperparameters; the script's defaults for what the command
/// does not set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PythonMemoryEnv {
    /// ProofofMemory-v0 (`experiments/python/proof_of_memory.py`).
    ProofOfMemory,
    /// MiniGrid-MemoryS9-v0, 3×3 view, 96-step limit (`experiments/python/minigrid_memory.py`).
    MinigridMemory,
}

/// CleanRL's settings for one env of the python-memory suite.
struct TrxlSettings {
    /// Directory-name stem and plot file name.
    slug: &'static str,
    /// The env's Gymnasium name.
    title: &'static str,
    /// The `module:factory` that makes it.
    factory: &'static str,
    /// CleanRL's `total_timesteps // batch × batch` (the steps it trains).
    total_steps: u64,
    num_steps: usize,
    update_epochs: usize,
    layers: usize,
    heads: usize,
    dim: usize,
    /// `trxl_memory_length`, capped by CleanRL at the episode's step limit.
    memory: usize,
    vf_coef: f32,
    max_grad_norm: f32,
    lr: f64,
    ent_coef: f32,
    /// The best mean return, and the best a policy without memory can do (where known).
    optimal: Option<f64>,
    memoryless: Option<f64>,
}

impl PythonMemoryEnv {
    const ALL: [PythonMemoryEnv; 2] = [
        PythonMemoryEnv::ProofOfMemory,
        PythonMemoryEnv::MinigridMemory,
    ];

    fn settings(self) -> TrxlSettings {
        match self {
            // --total_timesteps 25000 --num_envs 16 --num_steps 128 --num_minibatches 8
            // --update_epochs 4 --trxl_num_layers 4 --trxl_num_heads 1 --trxl_dim 64
            // --trxl_memory_length 16 --trxl_positional_encoding none --vf_coef 0.1
            // --max_grad_norm 0.5 --init_lr 3.0e-4 --init_ent_coef 0.001 --clip_coef 0.2
            PythonMemoryEnv::ProofOfMemory => TrxlSettings {
                slug: "proof_of_memory",
                title: "ProofofMemory-v0",
                factory: "proof_of_memory:make",
                total_steps: 24_576,
                num_steps: 128,
                update_epochs: 4,
                layers: 4,
                heads: 1,
                dim: 64,
                memory: 16,
                vf_coef: 0.1,
                max_grad_norm: 0.5,
                lr: 3.0e-4,
                ent_coef: 1e-3,
                optimal: Some(1.2),
                memoryless: Some(-0.4),
            },
            // --total_timesteps 2048000 --num_envs 16 --num_steps 256 --trxl_num_layers 2
            // --trxl_num_heads 4 --trxl_dim 256 --trxl_memory_length 64 --max_grad_norm 0.25
            // --anneal_steps 4096000 --clip_coef 0.2; defaults: 3 epochs, 8 minibatches,
            // vf_coef 0.5, init_lr 2.75e-4, init_ent_coef 1e-4.
            PythonMemoryEnv::MinigridMemory => TrxlSettings {
                slug: "minigrid_memory_s9",
                title: "MiniGrid-MemoryS9-v0",
                factory: "minigrid_memory:make",
                total_steps: 2_048_000,
                num_steps: 256,
                update_epochs: 3,
                layers: 2,
                heads: 4,
                dim: 256,
                memory: 64,
                vf_coef: 0.5,
                max_grad_norm: 0.25,
                lr: 2.75e-4,
                ent_coef: 1e-4,
                optimal: None,
                memoryless: None,
            },
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
    /// Comma-separated suites to run (default: all but `python-memory`, which needs the
    /// `python` cargo feature).
    #[arg(long, value_enum, value_delimiter = ',')]
    suites: Option<Vec<Suite>>,
    /// The envs of the `python-memory` suite (default: both).
    #[arg(long, value_enum, value_delimiter = ',')]
    python_envs: Option<Vec<PythonMemoryEnv>>,
    /// Train the `python-memory` runs for this many env steps (whole rollouts) instead of
    /// CleanRL's budget: a reduced run, labelled as such in the report. Use another
    /// `--runs-dir` and `--out` than the full suite's.
    #[arg(long)]
    python_steps: Option<u64>,
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

/// One checked bench per policy kind of `kinds`, judged on `success_rate`: `make` gives each
/// its id and config.
fn success_benches(
    suite: Suite,
    kinds: &[PolicyKind],
    make: impl Fn(PolicyKind) -> (String, TrainConfig),
) -> impl Iterator<Item = Bench> {
    kinds.iter().map(move |&kind| {
        let (id, config) = make(kind);
        Bench {
            suite,
            id,
            label: kind.name().into(),
            metric: "success_rate",
            control: false,
            config,
        }
    })
}

impl Bench {
    fn dir(&self, runs_root: &Path, seed: u64) -> PathBuf {
        runs_root.join(format!("{}__{seed}", self.id))
    }

    /// The learning curve of the bench's `seeds` runs against `axis`, labelled `label`: the
    /// mean with its 95 % band on 100 points, smoothed over 1/50 of the run's updates.
    fn band(
        &self,
        label: &str,
        seeds: u64,
        runs_root: &Path,
        axis: XAxis,
    ) -> Result<curves::BandCurve> {
        let runs = (0..seeds)
            .map(|seed| Run::load(&self.dir(runs_root, seed)))
            .collect::<Result<Vec<_>, _>>()?;
        let smooth = (self.config.num_updates() / 50).max(1);
        Ok(curves::group_curve(
            label,
            &runs,
            axis,
            self.metric,
            smooth,
            100,
        )?)
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
    let mut cfg = TrainConfig::preset_pendulum(PolicyKind::Mlp);
    cfg.total_steps = budget(preset, cfg.total_steps, cfg.batch_size());
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

/// CleanRL `ppo_trxl`'s settings for `env`, mapped onto `kind` (see the README of
/// results/benchmarks/python_memory for what does not map exactly). The tiny preset keeps the
/// model but rolls out 2 envs × one sequence (2 minibatches) for two updates.
fn python_memory(env: PythonMemoryEnv, kind: PolicyKind, preset: BudgetPreset) -> TrainConfig {
    let s = env.settings();
    let mut policy = PolicyConfig::preset(kind);
    // CleanRL's feed-forward is one d × d layer with ReLU. A kind without a field ignores it.
    for (field, value) in [
        ("d_model", s.dim),
        ("n_heads", s.heads),
        ("n_layers", s.layers),
        ("d_ff", s.dim),
        ("span", s.memory),
    ] {
        policy
            .set(field, value)
            .expect("the sizes are policy fields");
    }
    let mut cfg = TrainConfig {
        num_envs: 16,
        num_steps: s.num_steps,
        env: EnvConfig::Gym(GymEnvConfig {
            id: s.factory.into(),
            ..GymEnvConfig::default()
        }),
        policy,
        ..TrainConfig::default()
    };
    cfg.ppo = PpoConfig {
        learning_rate: s.lr,
        // CleanRL anneals over `anneal_steps` (163.84 M for ProofofMemory: constant within
        // 0.02 % over its 24,576 steps; 4.096 M for MiniGrid: down to 52 % by the end).
        anneal_lr: false,
        gamma: 0.995,
        gae_lambda: 0.95,
        num_minibatches: 8,
        seq_len: Some(s.memory),
        update_epochs: s.update_epochs,
        norm_adv: false,
        clip_coef: 0.2,
        clip_vloss: true,
        ent_coef: s.ent_coef,
        vf_coef: s.vf_coef,
        max_grad_norm: s.max_grad_norm,
        target_kl: None,
        // torch's AdamW default.
        adam_eps: 1e-8,
        norm_reward: false,
        ..PpoConfig::default()
    };
    cfg.total_steps = s.total_steps;
    if preset == BudgetPreset::Tiny {
        cfg.num_envs = 2;
        cfg.num_steps = s.memory;
        cfg.ppo.num_minibatches = 2;
        cfg.total_steps = 2 * cfg.batch_size() as u64;
    }
    cfg
}

fn benches(suites: &[Suite], python_envs: &[PythonMemoryEnv], preset: BudgetPreset) -> Vec<Bench> {
    let mut out = Vec::new();
    for &suite in suites {
        match suite {
            Suite::PythonMemory => {
                for &env in python_envs {
                    for kind in [PolicyKind::Transformer, PolicyKind::Feedback] {
                        out.push(Bench {
                            suite,
                            id: format!("{}__{kind}", env.settings().slug),
                            label: format!("{kind} ({})", env.settings().title),
                            metric: "return_mean",
                            control: false,
                            config: python_memory(env, kind, preset),
                        });
                    }
                }
            }
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
            Suite::PointCue => out.extend(success_benches(suite, &PolicyKind::ALL, |kind| {
                (format!("point_cue__{kind}"), point_cue(kind, preset))
            })),
            // The GRU's ×1 run is the scale suite's: same config, same directory.
            Suite::Memory => out.extend(success_benches(
                suite,
                &[
                    PolicyKind::Feedback,
                    PolicyKind::Transformer,
                    PolicyKind::Gru,
                ],
                |kind| {
                    (
                        format!("cue_recall-x1__{kind}"),
                        cue_recall(kind, 1.0, preset),
                    )
                },
            )),
        }
    }
    out
}

fn main() -> Result<()> {
    runner::experiment_main(run)
}

/// Trains the benchmarks `args` ask for (the command started at `t0`), then checks and plots
/// them.
fn run(args: Args, t0: std::time::Instant) -> Result<()> {
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
    let python_envs = args
        .python_envs
        .clone()
        .unwrap_or_else(|| PythonMemoryEnv::ALL.to_vec());
    if suites.contains(&Suite::PythonMemory) {
        prepare_python_envs(&python_envs)?;
    }
    let mut benches = benches(&suites, &python_envs, args.preset);
    if let Some(steps) = args.python_steps {
        for b in benches
            .iter_mut()
            .filter(|b| b.suite == Suite::PythonMemory)
        {
            let batch = b.config.batch_size() as u64;
            b.config.total_steps = (steps / batch).max(1) * batch;
        }
    }
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
    let python_memory = if suites.contains(&Suite::PythonMemory) {
        let seeds = python_memory_seeds(&benches, args.seeds, &runs_root)?;
        for line in python_memory_lines(&seeds) {
            println!("report  {line}");
        }
        write_python_memory_csv(&seeds, &args.out)?;
        Some(seeds)
    } else {
        None
    };

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
    if let Some(seeds) = &python_memory {
        if let Some(steps) = args.python_steps {
            md.push_str(&format!(
                "**Reduced budget** (`--python-steps {steps}`): the python-memory runs trained \
                 fewer env steps than CleanRL's settings give (ProofofMemory-v0 24,576, \
                 MiniGrid-MemoryS9-v0 2,048,000); see the env steps column.\n\n"
            ));
        }
        md.push_str(&python_memory_block(seeds));
    }
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
            // Relative cost per env step, from the policy kind's declaration.
            let cost_per_step = config.policy.relative_cost();
            jobs.push(Job {
                name: format!("{} seed {seed}", b.id),
                dir,
                cost: cost_per_step * config.total_steps as f64,
                config,
            });
        }
    }
    let at_once = runner::at_once(jobs_arg, jobs.len());
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
        // A memory task's line: `what`'s final success against `target`, with the held-out score.
        let success = |what: String, target: &str| {
            format!(
                "{what}: final success {:.3} [{:.3}, {:.3}] {target} (seeds: {}; held-out greedy {})",
                s.mean,
                s.ci_low,
                s.ci_high,
                fmt_seeds(o, 3),
                o.greedy.map_or("-".into(), |g| format!("{:.3}", g.mean))
            )
        };
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
                success(format!("memory {}", b.label), &format!("≥ {MEMORY_TARGET}")),
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
            Suite::PointCue if b.config.policy.kind() == PolicyKind::Mlp => checks.push((
                success(
                    "point_cue mlp (no memory)".into(),
                    &format!("within {CHANCE_MARGIN} of chance 0.5"),
                ),
                (s.mean - 0.5).abs() <= CHANCE_MARGIN,
            )),
            Suite::PointCue => checks.push((
                success(
                    format!("point_cue {}", b.label),
                    &format!("≥ {POINT_CUE_TARGET}"),
                ),
                s.mean >= POINT_CUE_TARGET,
            )),
            Suite::Scale | Suite::PythonMemory => {}
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
        if suite == Suite::PythonMemory {
            pngs.extend(plot_python_memory(benches, seeds, runs_root, out)?);
            continue;
        }
        let members: Vec<&Bench> = benches.iter().filter(|b| b.suite == suite).collect();
        let mut bands = Vec::new();
        for b in &members {
            bands.push(b.band(&b.label, seeds, runs_root, XAxis::Steps)?);
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
            Suite::PythonMemory => unreachable!("drawn by plot_python_memory"),
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
            b.config.policy.kind().name().to_string(),
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
         entropy 0, lr 1e-3), `point_cue` 16 envs × 128 steps and lr 2e-3, `python_memory` CleanRL `ppo_trxl`'s settings (below). Final = mean of the metric over the last 10 % of env steps \
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
    if !checks.is_empty() {
        md.push_str("\nChecks:\n");
    }
    md.push('\n');
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

/// Puts the python-memory envs' folder on `PYTHONPATH` (restarting this process with it when
/// it is not there: the runs' workers inherit it), then makes each env once, so that a missing
/// interpreter or package is reported before any run starts.
#[cfg(feature = "python")]
fn prepare_python_envs(envs: &[PythonMemoryEnv]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/python"));
    let current = std::env::var_os("PYTHONPATH").unwrap_or_default();
    if !std::env::split_paths(&current).any(|p| p == dir) {
        let others = std::env::split_paths(&current).filter(|p| !p.as_os_str().is_empty());
        let joined = std::env::join_paths(std::iter::once(dir).chain(others))
            .context("cannot put the python-memory envs on PYTHONPATH")?;
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
        let err = std::process::Command::new(exe)
            .arg0(arg0)
            .args(args)
            .env("PYTHONPATH", joined)
            .exec();
        return Err(err).context("cannot restart with the python-memory envs on PYTHONPATH");
    }
    for &env in envs {
        python_memory(env, PolicyKind::Transformer, BudgetPreset::Tiny)
            .env
            .build()
            .with_context(|| format!("cannot make {} in Python", env.settings().title))?;
    }
    Ok(())
}

/// The python-memory suite runs Python envs: without the `python` feature it cannot.
#[cfg(not(feature = "python"))]
fn prepare_python_envs(_: &[PythonMemoryEnv]) -> Result<()> {
    bail!(
        "the python-memory suite runs Python envs, which need the `python` cargo feature: \
         cargo run --release -p experiments --features python --bin benchmarks -- \
         --suites python-memory"
    )
}

/// One python-memory run: what it reached, how fast, and when it first learned.
struct PySeed {
    env: PythonMemoryEnv,
    policy: String,
    seed: u64,
    env_steps: f64,
    wall_s: f64,
    final_return: f64,
    final_success: f64,
    /// The logged return averaged over every update: how fast it learned, per env step.
    mean_return: f64,
    /// Env steps and seconds at the first update whose success rate reached
    /// [`LEARNED_SUCCESS`] (none: never).
    learned_at: Option<(f64, f64)>,
}

impl PySeed {
    fn steps_per_s(&self) -> f64 {
        self.env_steps / self.wall_s
    }
}

/// Every python-memory run's [`PySeed`], in bench then seed order.
fn python_memory_seeds(benches: &[Bench], seeds: u64, runs_root: &Path) -> Result<Vec<PySeed>> {
    let mut out = Vec::new();
    for b in benches.iter().filter(|b| b.suite == Suite::PythonMemory) {
        let env = PythonMemoryEnv::ALL
            .into_iter()
            .find(|e| b.id.starts_with(&format!("{}__", e.settings().slug)))
            .expect("a python-memory bench is named after its env");
        for seed in 0..seeds {
            let run = Run::load(&b.dir(runs_root, seed))?;
            let m = &run.metrics;
            let finals = |col: &str| -> Result<f64> {
                let pts = m.xy("env_steps", col)?;
                Ok(curves::final_value(&pts, FINAL_FRACTION).unwrap_or(f64::NAN))
            };
            let (steps, wall, success) = (
                m.column("env_steps")?,
                m.column("wall_time_s")?,
                m.column("success_rate")?,
            );
            let learned_at =
                (0..success.len()).find_map(|i| match (steps[i], wall[i], success[i]) {
                    (Some(x), Some(t), Some(s)) if s >= LEARNED_SUCCESS => Some((x, t)),
                    _ => None,
                });
            out.push(PySeed {
                env,
                policy: b.config.policy.kind().name().into(),
                seed,
                env_steps: m.last("env_steps")?.unwrap_or(f64::NAN),
                wall_s: m.last("wall_time_s")?.unwrap_or(f64::NAN),
                final_return: finals("return_mean")?,
                final_success: finals("success_rate")?,
                mean_return: {
                    let r = m.xy("env_steps", "return_mean")?;
                    r.iter().map(|p| p.1).sum::<f64>() / r.len().max(1) as f64
                },
                learned_at,
            });
        }
    }
    Ok(out)
}

/// The python-memory runs grouped by (env, policy), in their order.
fn python_memory_groups(seeds: &[PySeed]) -> Vec<Vec<&PySeed>> {
    let mut groups: Vec<Vec<&PySeed>> = Vec::new();
    for s in seeds {
        match groups
            .iter_mut()
            .find(|g| g[0].env == s.env && g[0].policy == s.policy)
        {
            Some(g) => g.push(s),
            None => groups.push(vec![s]),
        }
    }
    groups
}

/// `mean [low, high]` of `values` with `digits` decimals.
fn fmt_ci(values: &[f64], digits: usize) -> String {
    curves::mean_ci95(values).map_or("-".into(), |s| {
        format!(
            "{:.digits$} [{:.digits$}, {:.digits$}]",
            s.mean, s.ci_low, s.ci_high
        )
    })
}

/// Mean env steps and seconds to [`LEARNED_SUCCESS`] over the seeds that got there, and how
/// many did.
fn learned_summary(group: &[&PySeed]) -> (Option<f64>, Option<f64>, usize) {
    let reached: Vec<(f64, f64)> = group.iter().filter_map(|s| s.learned_at).collect();
    let mean = |f: fn(&(f64, f64)) -> f64| {
        (!reached.is_empty()).then(|| reached.iter().map(f).sum::<f64>() / reached.len() as f64)
    };
    (mean(|r| r.0), mean(|r| r.1), reached.len())
}

/// One printed line per (env, policy) of the python-memory suite.
fn python_memory_lines(seeds: &[PySeed]) -> Vec<String> {
    python_memory_groups(seeds)
        .iter()
        .map(|g| {
            let col = |f: fn(&PySeed) -> f64| g.iter().map(|s| f(s)).collect::<Vec<_>>();
            let (steps, secs, n) = learned_summary(g);
            format!(
                "python-memory {} {}: final return {} (seeds: {}), final success {}, {:.0} env steps/s; success ≥ {LEARNED_SUCCESS} first after {} env steps, {} s ({n}/{} seeds)",
                g[0].env.settings().title,
                g[0].policy,
                fmt_ci(&col(|s| s.final_return), 3),
                col(|s| s.final_return)
                    .iter()
                    .map(|v| format!("{v:.3}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                fmt_ci(&col(|s| s.final_success), 3),
                col(PySeed::steps_per_s).iter().sum::<f64>() / g.len() as f64,
                steps.map_or("-".into(), |v| format!("{v:.0}")),
                secs.map_or("-".into(), |v| format!("{v:.1}")),
                g.len()
            )
        })
        .collect()
}

/// python_memory.csv: one row per python-memory run.
fn write_python_memory_csv(seeds: &[PySeed], out: &Path) -> Result<()> {
    let rows: Vec<Vec<String>> = seeds
        .iter()
        .map(|s| {
            vec![
                s.env.settings().title.to_string(),
                s.policy.clone(),
                s.seed.to_string(),
                format!("{:.0}", s.env_steps),
                cell(Some(s.final_return)),
                cell(Some(s.final_success)),
                cell(Some(s.mean_return)),
                cell(Some(s.wall_s)),
                cell(Some(s.steps_per_s())),
                cell(s.learned_at.map(|l| l.0)),
                cell(s.learned_at.map(|l| l.1)),
            ]
        })
        .collect();
    report::write_csv(
        &out.join("python_memory.csv"),
        &[
            "env",
            "policy",
            "seed",
            "env_steps",
            "final_return",
            "final_success",
            "mean_return_over_training",
            "wall_s",
            "env_steps_per_s",
            "steps_to_success_0.9",
            "seconds_to_success_0.9",
        ],
        &rows,
    )
}

/// The python-memory part of the README block: settings, then one row per (env, policy).
fn python_memory_block(seeds: &[PySeed]) -> String {
    let mut md = String::from(
        "**python-memory**: CleanRL `ppo_trxl`'s documented settings (no published figure for \
         these envs). Final = mean over the last 10 % of env steps, mean [95 % CI] over seeds; \
         \"return over training\" = the logged return averaged over every update (higher: learned \
         sooner); env steps/s = a run's env steps over its wall time (one thread); \"to 90 %\" = the \
         first update whose logged success rate is ≥ 0.9, mean over the seeds that reached it.\n\n",
    );
    md.push_str("| env | policy | env steps | final return | final success | return over training | env steps/s | to 90 %: env steps | to 90 %: s | seeds there |\n");
    md.push_str("|---|---|---:|---|---|---|---:|---:|---:|---:|\n");
    for g in python_memory_groups(seeds) {
        let col = |f: fn(&PySeed) -> f64| g.iter().map(|s| f(s)).collect::<Vec<_>>();
        let (steps, secs, n) = learned_summary(&g);
        md.push_str(&format!(
            "| {} | {} | {:.0} | {} | {} | {} | {:.0} | {} | {} | {n}/{} |\n",
            g[0].env.settings().title,
            g[0].policy,
            g[0].env_steps,
            fmt_ci(&col(|s| s.final_return), 3),
            fmt_ci(&col(|s| s.final_success), 3),
            fmt_ci(&col(|s| s.mean_return), 3),
            col(PySeed::steps_per_s).iter().sum::<f64>() / g.len() as f64,
            steps.map_or("-".into(), |v| format!("{v:.0}")),
            secs.map_or("-".into(), |v| format!("{v:.1}")),
            g.len()
        ));
    }
    md.push('\n');
    md
}

/// Two PNGs per python-memory env: episodic return against env steps and against wall-clock
/// time, both policies, with the env's best and memoryless returns where known.
fn plot_python_memory(
    benches: &[Bench],
    seeds: u64,
    runs_root: &Path,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let mut pngs = Vec::new();
    for env in PythonMemoryEnv::ALL {
        let s = env.settings();
        let members: Vec<&Bench> = benches
            .iter()
            .filter(|b| {
                b.suite == Suite::PythonMemory && b.id.starts_with(&format!("{}__", s.slug))
            })
            .collect();
        if members.is_empty() {
            continue;
        }
        for (axis, suffix) in [(XAxis::Steps, ""), (XAxis::Time, "_time")] {
            let mut bands = Vec::new();
            for b in &members {
                bands.push(b.band(b.config.policy.kind().name(), seeds, runs_root, axis)?);
            }
            let mut chart = LineChart::from_bands(
                format!("{}, CleanRL ppo_trxl settings", s.title),
                axis.label(),
                "episodic return",
                &bands,
            );
            if let Some(v) = s.optimal {
                chart.hlines.push(RefLine::new("best possible", v));
            }
            if let Some(v) = s.memoryless {
                chart.hlines.push(RefLine::new("best without memory", v));
            }
            let png = out.join(format!("python_memory_{}{suffix}.png", s.slug));
            chart
                .save(&png)
                .with_context(|| format!("cannot write {}", png.display()))?;
            pngs.push(png);
        }
    }
    Ok(pngs)
}
