//! `fbrl train`: config file + overrides → [`crate::trainer::train_from_config`], with a
//! progress bar (or plain lines with `--quiet`).

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::TrainArgs;
use super::overrides::load_config;
use crate::config::{EnvConfig, TrainConfig};
use crate::hooks::{PeriodicEval, TrainHook};
use crate::metrics::MetricsRow;
use crate::run_dir::RunDir;
use crate::signals::StopFlag;
use crate::trainer::{Interrupted, ProgressFn, RunStart, TrainOptions, train_from_config};

/// The evaluation-during-training hook of `--eval-every`, with its early stopping.
fn eval_hooks(args: &TrainArgs, cfg: &TrainConfig) -> Result<Vec<Box<dyn TrainHook>>> {
    let Some(every) = args.eval_every else {
        return Ok(Vec::new());
    };
    let mut eval = PeriodicEval::for_config(every, args.eval_episodes, cfg)?;
    if let Some(target) = args.stop_at_return {
        eval = eval.stop_at(target);
    }
    if let Some(patience) = args.patience {
        if patience == 0 {
            bail!("--patience must be at least 1 evaluation");
        }
        eval = eval.patience(patience);
    }
    Ok(vec![Box::new(eval)])
}

/// Number of recent updates the "recent return" of the progress bar averages over.
const RECENT_UPDATES: usize = 10;

/// A running mean of the last few finite values (updates without a finished episode log NaN).
#[derive(Default)]
struct Recent {
    values: VecDeque<f64>,
}

impl Recent {
    fn push(&mut self, v: f64) {
        if v.is_finite() {
            if self.values.len() == RECENT_UPDATES {
                self.values.pop_front();
            }
            self.values.push_back(v);
        }
    }

    fn mean(&self) -> Option<f64> {
        (!self.values.is_empty())
            .then(|| self.values.iter().sum::<f64>() / self.values.len() as f64)
    }
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    match v {
        Some(v) => format!("{v:.prec$}"),
        None => "–".to_string(),
    }
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// One plain log line for an update.
fn log_line(row: &MetricsRow, num_updates: usize) -> String {
    // The learner's own columns (PPO: `kl`, `clip`).
    let learner: Vec<String> = row
        .learner
        .iter()
        .map(|(name, v)| match name {
            "approx_kl" => format!("kl {v:.4}"),
            "clip_frac" => format!("clip {v:.3}"),
            _ => format!("{name} {v:.4}"),
        })
        .collect();
    // The env's counts (GridMaze: `goals`).
    let counts: String = row
        .counts
        .iter()
        .map(|(name, v)| format!("{name} {}  ", fmt_opt(finite(v), 2)))
        .collect();
    format!(
        "update {}/{num_updates}  steps {}  return {}  {counts}success {}  \
         pg {:.4}  vf {:.4}  ent {:.3}  {}  ev {:.3}  {:.0} steps/s",
        row.update,
        row.env_steps,
        fmt_opt(finite(row.return_mean), 3),
        fmt_opt(finite(row.success_rate), 2),
        row.policy_loss,
        row.value_loss,
        row.entropy,
        learner.join("  "),
        row.explained_var,
        row.steps_per_s,
    )
}

/// The config of the run: the run's own `config.toml` when resuming (only keys the trainer
/// allows to differ may be overridden; it names the key otherwise), else the file given.
fn resolve(args: &TrainArgs) -> Result<TrainConfig> {
    let Some(dir) = &args.resume else {
        let mut cfg = load_config(args.config.as_deref(), &args.overrides)?;
        if let Some(note) = round_up_total_steps(&mut cfg) {
            eprintln!("fbrl train: {note}");
        }
        return Ok(cfg);
    };
    let run = RunDir::open(dir)?;
    let cfg = load_config(Some(&run.config_path()), &args.overrides)
        .with_context(|| format!("cannot resume {}", dir.display()))?;
    if let EnvConfig::Custom(c) = &cfg.env {
        return Err(
            anyhow::Error::from(crate::config::env_error(c.not_buildable()))
                .context(format!("cannot resume {}", dir.display())),
        );
    }
    Ok(cfg)
}

/// A new run's `total_steps` rounded up to a whole number of updates (`num_envs ·
/// num_steps` env steps each), so that the run trains at least the budget asked for and its
/// config.toml records what it trains; the message saying so, if it changed.
fn round_up_total_steps(cfg: &mut TrainConfig) -> Option<String> {
    let batch = cfg.batch_size() as u64;
    if batch == 0 || cfg.total_steps.is_multiple_of(batch) {
        return None;
    }
    let asked = cfg.total_steps;
    cfg.total_steps = asked.div_ceil(batch) * batch;
    Some(format!(
        "--total-steps {asked} is not a whole number of updates of {} envs × {} steps = {batch} \
         env steps: training {} updates = {} env steps",
        cfg.num_envs,
        cfg.num_steps,
        cfg.num_updates(),
        cfg.total_steps
    ))
}

/// The progress bar over all env steps of the run (hidden with `--quiet`).
fn progress_bar(quiet: bool, total_steps: u64) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total_steps);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} steps  {msg}  eta {eta}",
        )
        .expect("the progress template is valid"),
    );
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// The first line of a run: what is trained, for how long, and where.
fn header(cfg: &TrainConfig, start: &RunStart) -> String {
    let num_updates = cfg.num_updates();
    format!(
        "fbrl train: {} · {} · {} envs × {} steps · {num_updates} updates ({} env steps) → {}{}",
        cfg.env.name(),
        cfg.policy.kind().name(),
        cfg.num_envs,
        cfg.num_steps,
        num_updates as u64 * cfg.batch_size() as u64,
        start.run_dir.display(),
        if start.updates_done > 0 {
            format!(" (resuming after update {})", start.updates_done)
        } else {
            String::new()
        }
    )
}

/// Prints a line through the bar so it never garbles it (plain stderr when it is hidden).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// The trainer's progress callback: moves the bar, shows recent returns, and logs a line
/// every `log_every` updates.
fn progress(bar: ProgressBar, log_every: usize, num_updates: usize) -> ProgressFn<'static> {
    let mut recent_return = Recent::default();
    // One running mean per count of the env (GridMaze: `goals`).
    let mut recent_counts: Vec<Recent> = Vec::new();
    Box::new(move |row: &MetricsRow| {
        recent_return.push(row.return_mean);
        recent_counts.resize_with(row.counts.names.len(), Recent::default);
        for (recent, (_, v)) in recent_counts.iter_mut().zip(row.counts.iter()) {
            recent.push(v);
        }
        if !bar.is_hidden() {
            bar.set_position(row.env_steps);
            let counts: String = recent_counts
                .iter()
                .zip(row.counts.names)
                .map(|(recent, name)| format!("{name} {}  ", fmt_opt(recent.mean(), 2)))
                .collect();
            bar.set_message(format!(
                "return {}  {counts}{:.0} steps/s",
                fmt_opt(recent_return.mean(), 3),
                row.steps_per_s
            ));
        }
        if row.update.is_multiple_of(log_every) || row.update == num_updates {
            say(&bar, log_line(row, num_updates));
        }
    })
}

/// `fbrl train`.
pub(crate) fn train(args: TrainArgs) -> Result<()> {
    if args.log_every == 0 {
        bail!("--log-every must be at least 1");
    }
    let cfg = resolve(&args)?;
    if args.print_config {
        print!("{}", cfg.to_toml());
        return Ok(());
    }
    if let Some(super::DistributedBackend::Mpi) = args.distributed {
        return train_mpi(&args, &cfg);
    }
    let num_updates = cfg.num_updates();
    let total_steps = num_updates as u64 * cfg.batch_size() as u64;
    let bar = progress_bar(args.quiet, total_steps);
    // The trainer vets the run and creates its directory; the header follows once it is open.
    let on_start = {
        let bar = bar.clone();
        let cfg = cfg.clone();
        move |start: &RunStart| {
            if start.restarted {
                say(
                    &bar,
                    format!(
                        "fbrl train: {} has no checkpoint yet: starting the run over from its config.toml (update 0)",
                        start.run_dir.display()
                    ),
                );
            }
            bar.set_position(start.env_steps);
            say(&bar, header(&cfg, start));
            if let Some(dropped) = start.dropped_episodes {
                say(
                    &bar,
                    format!(
                        "fbrl train: {}",
                        crate::trainer::dropped_episodes_note(dropped)
                    ),
                );
            }
        }
    };
    let opts = TrainOptions {
        run_dir: args.resume.clone().or_else(|| args.run_dir.clone()),
        resume: args.resume.is_some(),
        quiet: true,
        progress: Some(progress(bar.clone(), args.log_every, num_updates)),
        stop_after_updates: args.stop_after,
        stop: Some(StopFlag::install()?),
        on_start: Some(Box::new(on_start)),
        lock_from: None,
        hooks: eval_hooks(&args, &cfg)?,
    };
    let result = train_from_config(&cfg, opts);
    bar.finish_and_clear();
    let summary = Interrupted::exit_process_on(result, "fbrl train: ")?;
    eprintln!(
        "fbrl train: {} updates / {} env steps in {:.1} s ({:.0} steps/s this session) → {}",
        summary.updates_done,
        summary.env_steps,
        summary.wall_time_s,
        summary.steps_per_s,
        summary.run_dir.display()
    );
    if let Some(reason) = &summary.stopped_early {
        eprintln!(
            "stopped early after update {} of {}: {reason}",
            summary.updates_done, summary.num_updates
        );
    } else if summary.updates_done < summary.num_updates {
        eprintln!(
            "stopped after update {} of {}; continue with: fbrl train --resume {}",
            summary.updates_done,
            summary.num_updates,
            summary.run_dir.display()
        );
    }
    Ok(())
}

/// `fbrl train --distributed mpi` without the `mpi` feature.
#[cfg(not(feature = "mpi"))]
fn train_mpi(_args: &TrainArgs, _cfg: &TrainConfig) -> Result<()> {
    bail!(
        "--distributed mpi needs fbrl built with the `mpi` feature: cargo build --release \
         --features mpi (with an MPI library and its headers, e.g. Debian's openmpi-bin and \
         libopenmpi-dev, and libclang-dev)"
    )
}

/// `fbrl train --distributed mpi`: this process is one rank of the job (see
/// [`crate::distributed`]); rank 0 prints the progress lines and the summary. An error ends
/// every rank of the job (`MPI_Abort`) after printing it with the rank.
#[cfg(feature = "mpi")]
fn train_mpi(args: &TrainArgs, cfg: &TrainConfig) -> Result<()> {
    if cfg.threads == 0 {
        return train_mpi_rank(args, cfg);
    }
    // As `train` does: the whole rank runs on a worker of a pool of `threads`, MPI included
    // (initialised, called and finalised on that one thread), so that the tensor operations'
    // parallel loops start from inside the pool instead of handing work to it op by op.
    crate::resources::check_threads(cfg.threads)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.threads)
        .build()
        .context("cannot build the thread pool")?;
    pool.install(|| train_mpi_rank(args, cfg))
}

#[cfg(feature = "mpi")]
fn train_mpi_rank(args: &TrainArgs, cfg: &TrainConfig) -> Result<()> {
    use agents::ppo::Collective;
    let group = crate::distributed::mpi::MpiGroup::init()?;
    let (rank, ranks) = (group.rank(), group.size());
    let num_updates = crate::distributed::num_updates(cfg, ranks);
    let log_every = args.log_every;
    let progress: ProgressFn<'_> = Box::new(move |row: &MetricsRow| {
        if row.update.is_multiple_of(log_every) || row.update == num_updates {
            eprintln!("{}", log_line(row, num_updates));
        }
    });
    let opts = TrainOptions {
        run_dir: args.resume.clone().or_else(|| args.run_dir.clone()),
        resume: args.resume.is_some(),
        quiet: args.quiet || rank != 0,
        progress: (rank == 0).then_some(progress),
        stop_after_updates: args.stop_after,
        stop: Some(StopFlag::install()?),
        on_start: (rank == 0).then(|| -> crate::trainer::StartFn<'_> {
            let cfg = cfg.clone();
            Box::new(move |start: &RunStart| {
                eprintln!(
                    "fbrl train: {} · {} · {ranks} ranks × {} envs × {} steps · {num_updates} \
                     updates → {}{}",
                    cfg.env.name(),
                    cfg.policy.kind().name(),
                    cfg.num_envs,
                    cfg.num_steps,
                    start.run_dir.display(),
                    if start.updates_done > 0 {
                        format!(" (resuming after update {})", start.updates_done)
                    } else {
                        String::new()
                    }
                );
            })
        }),
        lock_from: None,
        hooks: eval_hooks(args, cfg)?,
    };
    let dopts = crate::distributed::DistributedOptions {
        preempt_fraction: args.preempt_fraction,
    };
    match crate::distributed::train_distributed_from_config(cfg, opts, &dopts, &group) {
        Ok(summary) => {
            if rank == 0 {
                eprintln!(
                    "fbrl train: {} updates / {} env steps on {ranks} ranks in {:.1} s ({:.0} \
                     steps/s this session) → {}",
                    summary.updates_done,
                    summary.env_steps,
                    summary.wall_time_s,
                    summary.steps_per_s,
                    summary.run_dir.display()
                );
                let x = group.exchanged();
                eprintln!(
                    "fbrl train: rank 0's exchanges: {} calls, {:.1} MB sent, {:.2} s in them \
                     ({:.1} % of the session; rollout {:.1} s, update {:.1} s)",
                    x.calls,
                    x.bytes as f64 / 1e6,
                    x.seconds,
                    100.0 * x.seconds / (summary.rollout_time_s + summary.update_time_s).max(1e-9),
                    summary.rollout_time_s,
                    summary.update_time_s
                );
                if summary.updates_done < summary.num_updates {
                    eprintln!(
                        "stopped after update {} of {}; continue with: mpirun -np {ranks} fbrl \
                         train --distributed mpi --resume {}",
                        summary.updates_done,
                        summary.num_updates,
                        summary.run_dir.display()
                    );
                }
            }
            Ok(())
        }
        Err(e) => {
            if let Some(stopped) = e.downcast_ref::<Interrupted>() {
                if rank == 0 {
                    eprintln!("fbrl train: {stopped}");
                }
                drop(group);
                std::process::exit(stopped.exit_code());
            }
            eprintln!("fbrl train (rank {rank} of {ranks}): {e:#}");
            group.abort(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::CountColumns;

    #[test]
    fn the_log_line_shows_the_env_counts_only() {
        let row = MetricsRow {
            update: 2,
            return_mean: 1.5,
            ..MetricsRow::default()
        };
        let plain = log_line(&row, 4);
        assert!(plain.contains("return 1.500  success 0.00"), "{plain}");
        assert!(!plain.contains("goals"), "{plain}");
        let row = MetricsRow {
            counts: CountColumns::new(&["goals"], &[2.25]),
            ..row
        };
        let line = log_line(&row, 4);
        assert!(
            line.contains("return 1.500  goals 2.25  success 0.00"),
            "{line}"
        );
    }
}
