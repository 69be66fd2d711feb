//! Splitting an experiment's grid of runs over several processes or machines (a Slurm job
//! array, a Kubernetes Indexed Job) that share one `runs/` folder.
//!
//! # The rule
//! The grid's runs are ordered by their run directory's path; shard `I` of `N` trains the runs
//! at positions `p` with `p mod N = I`. The assignment depends only on the grid (preset, arms,
//! seeds), never on timing, so a re-run of a shard (a requeued array task) picks the same runs
//! and resumes them from their checkpoints. Each run is also claimed by its run lock while it
//! trains ([`fbrl::run_lock`]), so two processes never train one run even if shards overlap.
//!
//! # Where the shard comes from
//! `--shard I/N` if given; otherwise a Slurm array task (`SLURM_ARRAY_TASK_ID` with
//! `SLURM_ARRAY_TASK_COUNT`, or with `SLURM_ARRAY_TASK_MIN`/`MAX`: index = id − min); otherwise
//! a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`, with the count from `--shard-count` or
//! `FBRL_SHARD_COUNT`); otherwise the process runs the whole grid.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::runner::Job;

/// One shard of a grid: index `index` (0-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 0-based shard index, `< count`.
    pub index: usize,
    /// Number of shards, ≥ 1.
    pub count: usize,
}

/// The options every grid-running binary takes: how many runs train at once, the progress
/// display and the sharding.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct GridArgs {
    /// Runs trained at once (default: one per core); each gets cores / jobs threads.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// No progress bar: plain lines only.
    #[arg(long)]
    pub quiet: bool,
    /// Sharding over a cluster and `--report-only` (alias `--no-train`).
    #[command(flatten)]
    pub shard: ShardArgs,
}

impl GridArgs {
    /// How many of a grid's `runs` train at once ([`crate::runner::at_once`] of `--jobs`).
    pub fn at_once(&self, runs: usize) -> usize {
        crate::runner::at_once(self.jobs, runs)
    }
}

/// The shard options of [`GridArgs`].
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ShardArgs {
    /// Train only shard I of N of the grid (0-based, e.g. `--shard 2/4`); default: from
    /// SLURM_ARRAY_TASK_ID / JOB_COMPLETION_INDEX when set, else the whole grid.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Number of shards for a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX` gives the index);
    /// default: $FBRL_SHARD_COUNT.
    #[arg(long, value_name = "N")]
    pub shard_count: Option<usize>,
    /// Do not train: read every finished run of the grid and write the report (plots, CSVs,
    /// README block) as a single-machine invocation would; names the runs that are missing.
    #[arg(long, alias = "no-train")]
    pub report_only: bool,
}

impl Shard {
    /// Parses `I/N`.
    pub fn parse(text: &str) -> Result<Self> {
        let (i, n) = text
            .split_once('/')
            .with_context(|| format!("--shard {text:?}: expected I/N, e.g. 0/4"))?;
        let index: usize = i
            .trim()
            .parse()
            .with_context(|| format!("--shard {text:?}: `{i}` is not a shard index"))?;
        let count: usize = n
            .trim()
            .parse()
            .with_context(|| format!("--shard {text:?}: `{n}` is not a shard count"))?;
        Self::new(index, count).with_context(|| format!("--shard {text:?}"))
    }

    /// Shard `index` of `count`, checked.
    pub fn new(index: usize, count: usize) -> Result<Self> {
        if count == 0 {
            bail!("the shard count must be at least 1");
        }
        if index >= count {
            bail!(
                "shard index {index} is out of range for {count} shards (0..={})",
                count - 1
            );
        }
        Ok(Self { index, count })
    }

    /// The shard of this process: `--shard`, else the Slurm array or Kubernetes Indexed Job
    /// variables (read through `var`), else `None` (the whole grid).
    pub fn resolve(args: &ShardArgs, var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        if let Some(text) = &args.shard {
            return Self::parse(text).map(Some);
        }
        let num = |name: &str| -> Result<Option<usize>> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .with_context(|| format!("${name} = {v:?} is not a non-negative integer"))
                })
                .transpose()
        };
        if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let count = match (num("SLURM_ARRAY_TASK_COUNT")?, num("SLURM_ARRAY_TASK_MAX")?) {
                (Some(c), _) => c,
                (None, Some(max)) => max + 1 - min.min(max),
                (None, None) => bail!(
                    "$SLURM_ARRAY_TASK_ID is set but neither $SLURM_ARRAY_TASK_COUNT nor \
                     $SLURM_ARRAY_TASK_MAX is: cannot tell the number of shards (or pass --shard I/N)"
                ),
            };
            let index = id.checked_sub(min).with_context(|| {
                format!("$SLURM_ARRAY_TASK_ID = {id} is below $SLURM_ARRAY_TASK_MIN = {min}")
            })?;
            return Self::new(index, count)
                .context("the Slurm array task does not give a valid shard")
                .map(Some);
        }
        if let Some(index) = num("JOB_COMPLETION_INDEX")? {
            let count = match args.shard_count {
                Some(c) => c,
                None => num("FBRL_SHARD_COUNT")?.with_context(|| {
                    "$JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but the number of \
                     shards is not: pass --shard-count N or set $FBRL_SHARD_COUNT"
                })?,
            };
            return Self::new(index, count)
                .context("the Indexed Job does not give a valid shard")
                .map(Some);
        }
        Ok(None)
    }

    /// The jobs of this shard, in the grid's order (see the module docs for the rule).
    pub fn select(&self, jobs: &[Job]) -> Vec<Job> {
        let mut order: Vec<&Job> = jobs.iter().collect();
        order.sort_by(|a, b| a.dir.cmp(&b.dir));
        order
            .into_iter()
            .enumerate()
            .filter(|(p, _)| p % self.count == self.index)
            .map(|(_, j)| j.clone())
            .collect()
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Trains the part of `jobs` this process owns, or nothing with `--report-only` (which
/// first checks that every run of the grid is finished, naming those that are not).
/// Returns `None` when this process was one shard of several: it trained its runs and the
/// report is left to `--report-only` (a single shard, `0/1`, is the whole grid and reports).
/// The runs train with [`crate::runner::run_jobs`], `at_once` at a time (at most one per run
/// of this process's part), with their logs in `<runs_root>/logs`; `--quiet` and `stop_after`
/// are passed on to it.
pub fn train_grid(
    grid: &GridArgs,
    jobs: &[Job],
    at_once: usize,
    runs_root: &Path,
    stop_after: Option<usize>,
) -> Result<Option<crate::runner::RunReport>> {
    let args = &grid.shard;
    let run = |mine: &[Job]| {
        crate::runner::run_jobs(
            mine,
            at_once.min(mine.len()).max(1),
            &runs_root.join("logs"),
            grid.quiet,
            stop_after,
        )
    };
    if args.report_only {
        let missing = unfinished(jobs)?;
        if !missing.is_empty() {
            bail!(
                "--report-only: {} of the {} runs are not finished:\n  {}\nrun the shards that \
                 own them (or the same command without --report-only) first",
                missing.len(),
                jobs.len(),
                missing.join("\n  ")
            );
        }
        return Ok(Some(crate::runner::RunReport::default()));
    }
    match Shard::resolve(args, |k| std::env::var(k).ok())? {
        // One shard of one is the whole grid: train it and report, as without sharding.
        None | Some(Shard { count: 1, .. }) => {
            let report = run(jobs)?;
            if report.claimed > 0 {
                // Runs another process is training are not finished: a report now would
                // mix finished and partial runs. The last invocation to finish writes it.
                eprintln!(
                    "{} run(s) were claimed by another process and are not finished here: no \
                     report written; run the same command again (or with --report-only) once \
                     they are done",
                    report.claimed
                );
                return Ok(None);
            }
            Ok(Some(report))
        }
        Some(shard) => {
            let mine = shard.select(jobs);
            eprintln!(
                "shard {shard}: {} of the grid's {} runs",
                mine.len(),
                jobs.len()
            );
            let report = run(&mine)?;
            eprintln!(
                "shard {shard} done in {:.0} s ({} trained, {} resumed, {} already finished, {} \
                 claimed by another process); when every shard is done, write the report with \
                 --report-only",
                report.wall_s, report.started, report.resumed, report.skipped, report.claimed
            );
            Ok(None)
        }
    }
}

/// The runs of `jobs` that are not finished (missing, or with fewer updates than planned), each
/// described by its name, directory and progress: what `--report-only` must refuse to summarise.
pub fn unfinished(jobs: &[Job]) -> Result<Vec<String>> {
    let mut missing = Vec::new();
    for job in jobs {
        match crate::runner::run_status(&job.dir, &job.config)? {
            // A diverged run is an outcome: the experiment decides whether it can report it.
            crate::runner::RunStatus::Finished | crate::runner::RunStatus::Diverged(_) => {}
            crate::runner::RunStatus::Partial(u) => missing.push(format!(
                "{} ({}: {u} of {} updates)",
                job.name,
                job.dir.display(),
                job.config.num_updates()
            )),
            crate::runner::RunStatus::Fresh => {
                missing.push(format!("{} ({}: not started)", job.name, job.dir.display()))
            }
        }
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_shard_comes_from_the_flag_then_slurm_then_kubernetes() {
        let none = ShardArgs::default();
        assert_eq!(Shard::resolve(&none, env(&[])).unwrap(), None);
        let flag = ShardArgs {
            shard: Some("2/4".into()),
            ..ShardArgs::default()
        };
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        assert_eq!(
            Shard::resolve(&flag, env(&slurm)).unwrap(),
            Some(Shard { index: 2, count: 4 })
        );
        assert_eq!(
            Shard::resolve(&none, env(&slurm)).unwrap(),
            Some(Shard { index: 3, count: 4 })
        );
        // An array 1-4: ids start at MIN.
        let one_based = [
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "4"),
        ];
        assert_eq!(
            Shard::resolve(&none, env(&one_based)).unwrap(),
            Some(Shard { index: 0, count: 4 })
        );
        let k8s = [("JOB_COMPLETION_INDEX", "1"), ("FBRL_SHARD_COUNT", "3")];
        assert_eq!(
            Shard::resolve(&none, env(&k8s)).unwrap(),
            Some(Shard { index: 1, count: 3 })
        );
        let counted = ShardArgs {
            shard_count: Some(5),
            ..ShardArgs::default()
        };
        assert_eq!(
            Shard::resolve(&counted, env(&[("JOB_COMPLETION_INDEX", "4")])).unwrap(),
            Some(Shard { index: 4, count: 5 })
        );
    }

    #[test]
    fn bad_shards_are_named_errors() {
        for (text, needle) in [
            ("3/3", "out of range"),
            ("x/3", "`x`"),
            ("1", "I/N"),
            ("0/0", "at least 1"),
        ] {
            let e = format!("{:#}", Shard::parse(text).unwrap_err());
            assert!(e.contains(needle) && e.contains(text), "{text}: {e}");
        }
        let none = ShardArgs::default();
        let e = Shard::resolve(&none, env(&[("JOB_COMPLETION_INDEX", "1")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--shard-count"), "{e}");
        let e = Shard::resolve(&none, env(&[("SLURM_ARRAY_TASK_ID", "1")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("SLURM_ARRAY_TASK_COUNT"), "{e}");
    }

    #[test]
    fn shards_partition_the_grid_the_same_way_every_time() {
        let jobs: Vec<Job> = (0..11)
            .map(|k| Job {
                name: format!("run {k}"),
                dir: PathBuf::from(format!("runs/x/run_{k:02}")),
                config: fbrl::TrainConfig::default(),
                cost: (k * 7 % 5) as f64,
            })
            .collect();
        let mut reversed = jobs.clone();
        reversed.reverse();
        let mut seen = Vec::new();
        for index in 0..3 {
            let shard = Shard::new(index, 3).unwrap();
            let a: Vec<PathBuf> = shard.select(&jobs).into_iter().map(|j| j.dir).collect();
            let b: Vec<PathBuf> = shard.select(&reversed).into_iter().map(|j| j.dir).collect();
            assert_eq!(
                a, b,
                "the rule does not depend on the order jobs were listed in"
            );
            assert!((3..=4).contains(&a.len()));
            seen.extend(a);
        }
        seen.sort();
        let mut all: Vec<PathBuf> = jobs.into_iter().map(|j| j.dir).collect();
        all.sort();
        assert_eq!(seen, all, "every run in exactly one shard");
    }
}
