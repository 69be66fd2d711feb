//! The `fbrl` command line: `train`, `eval`, `render`, `plot` and `export`.
//!
//! The binary (`src/bin/fbrl.rs`) only parses [`Cli`] and calls [`run`]; everything lives
//! here so that other binaries (the experiments) can reuse the config overrides.

mod commands;
pub mod overrides;
mod train;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

pub use overrides::{Overrides, load_config};

use crate::curves::{GroupBy, XAxis};

/// PPO with memory (Feedback Transformer, Transformer, GRU, MLP) on partially observable tasks.
#[derive(Parser, Debug)]
#[command(name = "fbrl", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a policy with PPO (config file + command-line overrides).
    Train(Box<TrainArgs>),
    /// Evaluate a trained policy on held-out seeds: mean ± std return, goals, success rate.
    Eval(EvalArgs),
    /// Record one episode played by a trained policy as an animated GIF.
    Render(RenderArgs),
    /// Draw reward curves of run directories, one line per env and label (PNG + SVG).
    Plot(PlotArgs),
    /// Write a run's policy (any checkpoint) as a policy file for `agents::Agent`, or as an
    /// ONNX one-step graph with explicit memory.
    Export(ExportArgs),
}

/// `fbrl export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A run directory (its latest checkpoint is used) or a checkpoint directory/file.
    #[arg(value_name = "RUN_DIR|CHECKPOINT")]
    pub path: PathBuf,
    /// Output file (`.fbrl` policy file, or `.onnx` with --onnx).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
    /// Write the one-step ONNX graph (observation, episode start and memory in; action
    /// parameters, value and next memory out), observation normaliser included.
    #[arg(long)]
    pub onnx: bool,
}

/// `fbrl train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// TOML config file (keys as in `config.toml` of a run); without it the defaults are used.
    #[arg(long, short = 'c', value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Continue the run in RUN_DIR from its last checkpoint, with its own config.toml (only
    /// --threads and --checkpoint-every may be changed).
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "config")]
    pub resume: Option<PathBuf>,
    /// Write the run exactly into DIR instead of `<run_dir>/<env>__<policy>__<seed>__<time>`.
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub run_dir: Option<PathBuf>,
    /// No progress bar: print one plain line every --log-every updates (for CI and logs).
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Print a log line every this many updates (the last update always prints one).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub log_every: usize,
    /// Stop (with a checkpoint) once this many updates are done, counted from the start of
    /// the run; continue later with --resume.
    #[arg(long, value_name = "UPDATES")]
    pub stop_after: Option<usize>,
    /// Print the resolved configuration as TOML and exit without training.
    #[arg(long)]
    pub print_config: bool,
    /// Evaluate the policy greedily on the held-out seeds of `fbrl eval` every N updates (and
    /// after the last one), into RUN/eval.csv and TensorBoard; the best policy is kept as
    /// RUN/best_policy.fbrl.
    #[arg(long, value_name = "N")]
    pub eval_every: Option<usize>,
    /// Episodes per evaluation during training.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub eval_episodes: usize,
    /// End the run (with a checkpoint) once an evaluation's mean return reaches this value.
    #[arg(
        long,
        value_name = "RETURN",
        requires = "eval_every",
        allow_negative_numbers = true
    )]
    pub stop_at_return: Option<f64>,
    /// End the run (with a checkpoint) after this many evaluations in a row without a better
    /// mean return.
    #[arg(long, value_name = "EVALS", requires = "eval_every")]
    pub patience: Option<usize>,
    /// Train one run on the ranks of an MPI job (decentralised data-parallel PPO): `mpi`.
    /// Needs fbrl built with the `mpi` feature and an MPI launcher (`mpirun -np N fbrl train
    /// --distributed mpi …`, `srun --mpi=pmix …`); `num_envs` is then per rank and
    /// `total_steps` counts the steps of all ranks.
    #[arg(long, value_name = "BACKEND")]
    pub distributed: Option<DistributedBackend>,
    /// With --distributed: DD-PPO's rollout preemption, off by default. Once this fraction of
    /// the ranks (0 < F ≤ 1) has finished its rollout, the others end theirs early (at a
    /// sequence boundary) and the update weights every rank by its samples.
    #[arg(long, value_name = "F", requires = "distributed")]
    pub preempt_fraction: Option<f64>,
    /// Hyperparameter overrides.
    #[command(flatten)]
    pub overrides: Overrides,
}

/// How `fbrl train --distributed` spreads a run over processes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistributedBackend {
    /// The ranks of an MPI job (feature `mpi`).
    Mpi,
}

/// `fbrl eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A run directory (its latest checkpoint is used) or a checkpoint directory/file.
    #[arg(value_name = "RUN_DIR|CHECKPOINT")]
    pub path: PathBuf,
    /// Number of episodes.
    #[arg(long, short = 'n', default_value_t = 100)]
    pub episodes: usize,
    /// Base seed of the held-out evaluation seeds (default: the run's seed + 1000000).
    #[arg(long)]
    pub seed: Option<u64>,
    /// How actions are chosen.
    #[command(flatten)]
    pub actions: ActionChoice,
    /// Print one JSON object (summary and per-episode results) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `--greedy` / `--sample` of `fbrl eval` and `fbrl render`.
#[derive(Args, Debug)]
pub struct ActionChoice {
    /// Take the most likely action (the default).
    #[arg(long, conflicts_with = "sample")]
    pub greedy: bool,
    /// Sample actions from the policy instead of taking the most likely one.
    #[arg(long)]
    pub sample: bool,
}

impl ActionChoice {
    /// The selection these flags ask for.
    pub fn selection(&self) -> crate::eval::ActionSelection {
        if self.sample {
            crate::eval::ActionSelection::Sample
        } else {
            crate::eval::ActionSelection::Greedy
        }
    }
}

/// `fbrl render`.
#[derive(Args, Debug)]
pub struct RenderArgs {
    /// A run directory (its latest checkpoint is used) or a checkpoint directory/file.
    #[arg(value_name = "RUN_DIR|CHECKPOINT")]
    pub path: PathBuf,
    /// Output GIF file.
    #[arg(long, short = 'o', default_value = "episode.gif")]
    pub output: PathBuf,
    /// Episode seed (default: the first held-out evaluation seed of the run).
    #[arg(long)]
    pub seed: Option<u64>,
    /// How actions are chosen.
    #[command(flatten)]
    pub actions: ActionChoice,
    /// Frame duration in hundredths of a second.
    #[arg(long, default_value_t = 15)]
    pub delay_cs: u16,
    /// Stop the episode after this many steps (the GIF then ends there): every frame is kept
    /// in memory until the GIF is written.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_steps: u32,
    /// Draw, beside each frame, the weights each layer of an attention policy (feedback,
    /// transformer) gives to the steps of its window, and tint where those steps happened.
    #[arg(long)]
    pub attention: bool,
}

/// `fbrl plot`.
#[derive(Args, Debug)]
#[command(after_help = "\
Runs are grouped by env and label: each line is the mean over the seeds of one env and one \
label (`fbrl train --name`, default: the policy kind), both read from the run's config.toml \
(from its directory name <env>__<policy>__<seed>__<time> when it has none). Runs of different \
envs (a different [env] table: another kind, name or setting) are never averaged into one line: \
with several envs, each line is labelled `env / label`.

Bands: 95 % confidence interval of the mean over seeds (Student t, n-1 dof). For a rate \
(success_rate, clip_frac) the interval is clipped to [0, 1]: each seed's value is itself a \
rate over many episodes, not one success or failure, so a Wilson interval does not apply, and \
the true mean never lies outside [0, 1].")]
pub struct PlotArgs {
    /// Run directories (each with a metrics.csv, and the config.toml a run writes).
    #[arg(value_name = "RUN_DIRS", required = true, num_args = 1..)]
    pub runs: Vec<PathBuf>,
    /// Output PNG (an SVG is written beside it).
    #[arg(long, short = 'o', default_value = "reward_curve.png")]
    pub output: PathBuf,
    /// Moving-average window in updates (1 = no smoothing).
    #[arg(long, default_value_t = 1)]
    pub smooth: usize,
    /// X axis: env steps or wall-clock time.
    #[arg(long, value_enum, default_value_t = XAxis::Steps)]
    pub x: XAxis,
    /// Metrics column to plot (default: the env's count, goals_mean for GridMaze, else
    /// return_mean).
    #[arg(long)]
    pub metric: Option<String>,
    /// What makes one line, within each env (runs of different envs never share a line):
    /// `label` (the run's --name, default: its policy kind) or `policy` (the policy kind;
    /// runs with different labels of one policy are averaged together).
    #[arg(long, value_enum, value_name = "KEY", default_value_t = GroupBy::Label)]
    pub group_by: GroupBy,
    /// Chart title (default: made from the env, metric and axis).
    #[arg(long)]
    pub title: Option<String>,
    /// A dashed reference line, LABEL=VALUE (repeatable), e.g. --ref "BFS oracle=10.6".
    #[arg(long = "ref", value_name = "LABEL=VALUE")]
    pub refs: Vec<String>,
}

/// The command line's definition, with the defaults of the training flags in `fbrl train
/// --help`.
pub fn command() -> clap::Command {
    Cli::command().mut_subcommand("train", overrides::help_with_defaults)
}

/// Parses the process's arguments (exits with clap's message on bad input, as `Cli::parse`).
pub fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => commands::train(*args),
        Command::Eval(args) => commands::eval(args),
        Command::Render(args) => commands::render(args),
        Command::Plot(args) => commands::plot(args),
        Command::Export(args) => commands::export(args),
    }
}
