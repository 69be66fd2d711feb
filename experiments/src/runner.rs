//! Runs many training runs, `jobs` at a time, each in a worker process, with resume.
//!
//! Every run has a deterministic directory (e.g. `runs/maze/quick/gridmaze__feedback__0`), so
//! re-running the same command finds it: a run whose latest checkpoint covers all its updates
//! is skipped, one with an earlier checkpoint is resumed from it (the trainer continues the
//! same metrics curve), and one without a checkpoint is started afresh. Stopping the
//! experiment (Ctrl-C, or killing it) loses at most the work since each run's last
//! checkpoint.
//!
//! Why processes and not threads: the trainer seeds the backend's global RNG with the run's
//! seed before initialising the policy, so two runs in one process would race on it and the
//! weights would no longer be a function of the seed. A worker process per run keeps every
//! run exactly reproducible, and its own thread pool (`threads` = cores / jobs).
//! The worker is this same executable, started with [`WORKER_ARG`]; it exits if its parent
//! goes away, so no orphan keeps writing into a run directory.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fbrl::checkpoint::{latest_checkpoint, open_latest};
use fbrl::curves::MetricsTable;
use fbrl::signals::signal_name;
use fbrl::{StopFlag, TrainConfig, TrainOptions};
use indicatif::{ProgressBar, ProgressStyle};

/// First argument that makes an experiment binary act as a training worker.
pub const WORKER_ARG: &str = "__train-worker";

/// One training run of an experiment.
#[derive(Clone, Debug)]
pub struct Job {
    /// Short name for progress lines (e.g. `feedback seed 3`).
    pub name: String,
    /// Its run directory (deterministic).
    pub dir: PathBuf,
    /// Its full training config.
    pub config: TrainConfig,
    /// Relative cost estimate; costlier jobs start first so the last ones finish together.
    pub cost: f64,
}

/// Where a run stands on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// No usable checkpoint: start from scratch.
    Fresh,
    /// A checkpoint after this many updates (fewer than the run has): resume.
    Partial(usize),
    /// The latest checkpoint covers every update.
    Finished,
    /// The run stopped on a non-finite loss or gradient at this update (its
    /// [`fbrl::run_dir::DIVERGED_FILE`]): an outcome of its settings, not retrained (the same
    /// config diverges again).
    Diverged(usize),
}

/// Reads a run directory's latest checkpoint to tell whether to start, resume or skip it.
/// A run trained with another config than `cfg` (e.g. a preset edited since) is an error
/// naming the first differing key, never silently reused.
pub fn run_status(dir: &Path, cfg: &TrainConfig) -> Result<RunStatus> {
    let diverged = fbrl::run_dir::divergence(dir).map(|d| RunStatus::Diverged(d.update));
    let root = dir.join(fbrl::run_dir::CHECKPOINT_DIR);
    if latest_checkpoint(&root)?.is_none() {
        return Ok(diverged.unwrap_or(RunStatus::Fresh));
    }
    // The checkpoint a resume would continue from (the one before a damaged newest one).
    let ckpt = open_latest(&root)?;
    let state = ckpt.state;
    let recorded = TrainConfig::from_toml_str(
        &state.config,
        &format!("the config recorded in {}", ckpt.dir.display()),
    )?;
    if let Some(key) = fbrl::trainer::differing_key(&recorded, cfg)? {
        bail!(
            "{}: this run was trained with a different `{key}` than this experiment asks for \
             (was the preset edited?); move the folder away or pass another --runs-dir",
            dir.display()
        );
    }
    if let Some(d) = diverged {
        Ok(d)
    } else if state.updates_done >= cfg.num_updates() {
        Ok(RunStatus::Finished)
    } else {
        Ok(RunStatus::Partial(state.updates_done))
    }
}

/// If this process was started as a worker (`WORKER_ARG config.toml run_dir fresh|resume
/// parent_pid stop_after|-`), trains that run and returns its result; otherwise `None`.
pub fn run_worker_if_requested() -> Option<Result<()>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(WORKER_ARG) {
        return None;
    }
    Some(worker(&args[2..]))
}

/// The `main` of an experiment binary: trains the run of a worker when this process was
/// started as one ([`run_worker_if_requested`]), else parses the command line into `A` and
/// calls `run` with it and the time the command started.
pub fn experiment_main<A: clap::Parser>(run: impl FnOnce(A, Instant) -> Result<()>) -> Result<()> {
    if let Some(result) = run_worker_if_requested() {
        return result;
    }
    let started = Instant::now();
    run(A::parse(), started)
}

fn worker(args: &[String]) -> Result<()> {
    let [config, dir, mode, parent, stop_after] = args else {
        bail!("{WORKER_ARG} expects: CONFIG RUN_DIR fresh|resume PARENT_PID STOP_AFTER|-");
    };
    let stop_after_updates = match stop_after.as_str() {
        "-" => None,
        n => Some(n.parse().context("stop-after updates")?),
    };
    let cfg = TrainConfig::load(config)?;
    let parent: u32 = parent.parse().context("parent pid")?;
    let opts = TrainOptions {
        run_dir: Some(PathBuf::from(dir)),
        resume: mode == "resume",
        quiet: true,
        progress: Some(Box::new(move |_| {
            // Reparented: the experiment was killed. Stop like a killed run would.
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(130);
            }
        })),
        stop_after_updates,
        stop: Some(StopFlag::install()?),
        on_start: None,
        lock_from: Some(parent),
        hooks: Vec::new(),
    };
    let summary = fbrl::Interrupted::exit_process_on(fbrl::train_from_config(&cfg, opts), "")?;
    eprintln!(
        "finished {}: {} updates, {} env steps, {:.0} s, {:.0} steps/s",
        summary.run_dir.display(),
        summary.updates_done,
        summary.env_steps,
        summary.wall_time_s,
        summary.steps_per_s
    );
    Ok(())
}

/// The env steps a run has logged so far (last row of its `metrics.csv`; 0 if none).
pub fn logged_steps(dir: &Path) -> u64 {
    MetricsTable::read(&dir.join(fbrl::run_dir::METRICS_FILE))
        .and_then(|table| table.last("env_steps"))
        .ok()
        .flatten()
        .map_or(0, |steps| steps as u64)
}

/// What [`run_jobs`] did.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// Runs skipped because they were already finished.
    pub skipped: usize,
    /// Runs resumed from a checkpoint.
    pub resumed: usize,
    /// Runs started from scratch.
    pub started: usize,
    /// Runs left alone because another live process (another shard, another host) holds them.
    pub claimed: usize,
    /// Runs that stopped on a non-finite loss or gradient (now or in an earlier invocation).
    pub diverged: usize,
    /// Wall time of this call, seconds.
    pub wall_s: f64,
}

struct Active {
    job: Job,
    child: Child,
    log: PathBuf,
    /// The run's lock as this process took it to decide about the run; the worker takes it
    /// over, and dropping it afterwards removes the file only if it is still this process's
    /// (the worker died before taking it).
    _claim: Option<fbrl::run_lock::RunLock>,
}

/// Prints a line through the progress bar (plain stderr when it is hidden).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// The state of one [`run_jobs`] call: the queue, the running workers and the progress bar.
struct Pool<'a> {
    exe: PathBuf,
    logs_dir: &'a Path,
    stop_after: Option<usize>,
    quiet: bool,
    t0: Instant,
    bar: ProgressBar,
    report: RunReport,
    /// Jobs not started yet, cheapest first (`pop()` takes the costliest).
    queue: Vec<(Job, RunStatus)>,
    active: Vec<Active>,
    failures: Vec<String>,
    /// All env steps of the runs, and those of the runs that are done.
    total: u64,
    finished_steps: u64,
    last_line: Instant,
    /// The signal forwarded to the workers, once one came.
    forwarded: Option<i32>,
}

impl<'a> Pool<'a> {
    /// Reads every job's state: finished runs are skipped, the others queued.
    fn new(
        jobs: &[Job],
        logs_dir: &'a Path,
        quiet: bool,
        stop_after: Option<usize>,
    ) -> Result<Self> {
        let t0 = Instant::now();
        // /proc/self/exe stays valid even if the binary is rebuilt while the experiment runs.
        let proc_exe = Path::new("/proc/self/exe");
        let exe = if proc_exe.exists() {
            proc_exe.to_path_buf()
        } else {
            std::env::current_exe().context("cannot find this executable")?
        };
        std::fs::create_dir_all(logs_dir)
            .with_context(|| format!("cannot create {}", logs_dir.display()))?;
        let mut report = RunReport::default();
        let mut queue: Vec<(Job, RunStatus)> = Vec::new();
        let total: u64 = jobs.iter().map(|j| j.config.total_steps).sum();
        let mut finished_steps = 0u64;
        for job in jobs {
            let status = run_status(&job.dir, &job.config)
                .with_context(|| format!("cannot read the state of run {}", job.dir.display()))?;
            match status {
                RunStatus::Partial(u) if stop_after.is_some_and(|s| u >= s) => {
                    report.skipped += 1;
                    finished_steps += logged_steps(&job.dir);
                }
                RunStatus::Finished | RunStatus::Diverged(_) => {
                    report.skipped += 1;
                    finished_steps += job.config.total_steps;
                }
                s => queue.push((job.clone(), s)),
            }
        }
        // Costliest first, so that the cheap runs fill the gaps at the end.
        queue.sort_by(|a, b| b.0.cost.total_cmp(&a.0.cost));
        queue.reverse(); // pop() from the end
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(total)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {percent:>3}% {human_pos}/{human_len} steps, ETA {eta} · {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        Ok(Self {
            exe,
            logs_dir,
            stop_after,
            quiet,
            t0,
            bar,
            report,
            queue,
            active: Vec::new(),
            failures: Vec::new(),
            total,
            finished_steps,
            last_line: Instant::now(),
            forwarded: None,
        })
    }

    fn say(&self, line: String) {
        say(&self.bar, line);
    }

    /// Forwards a stop signal once to every running worker, which checkpoints and exits.
    fn forward(&mut self, sig: i32) {
        self.forwarded = Some(sig);
        self.say(format!(
            "{}: asking {} running worker(s) to checkpoint and stop",
            signal_name(sig),
            self.active.len()
        ));
        for a in &self.active {
            // `kill` from procps: the standard library can only send SIGKILL.
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(a.child.id().to_string())
                .status();
        }
    }

    /// Starts queued jobs until `parallel` run (none once stopping or after a failure).
    fn start_more(&mut self, parallel: usize) -> Result<()> {
        while self.forwarded.is_none()
            && self.failures.is_empty()
            && self.active.len() < parallel.max(1)
        {
            // The status read at the start only planned the queue; it is read again below.
            let Some((job, _planned)) = self.queue.pop() else {
                break;
            };
            // Decide under the run's lock, so that another invocation deciding about the same
            // run at the same moment finds it claimed: the state read at the start was only
            // the plan, and a run another process finished, trains or is resuming must never
            // be cleared.
            std::fs::create_dir_all(&job.dir)
                .with_context(|| format!("cannot create {}", job.dir.display()))?;
            let lock = match fbrl::run_lock::RunLock::acquire(&job.dir) {
                Ok(lock) => lock,
                Err(_) => {
                    // Held by a live process (another shard, another host): leave it alone.
                    let holder = fbrl::run_lock::live_holder(&job.dir)
                        .map_or_else(|| "another process".to_string(), |h| h.to_string());
                    self.report.claimed += 1;
                    self.say(format!("skip {}: claimed by {holder}", job.name));
                    continue;
                }
            };
            let status = run_status(&job.dir, &job.config)
                .with_context(|| format!("cannot read the state of run {}", job.dir.display()))?;
            let resume = match status {
                RunStatus::Finished => {
                    self.report.skipped += 1;
                    self.finished_steps += job.config.total_steps;
                    self.say(format!("skip {}: finished by another process", job.name));
                    continue;
                }
                RunStatus::Diverged(u) => {
                    self.report.skipped += 1;
                    self.finished_steps += job.config.total_steps;
                    self.say(format!(
                        "skip {}: diverged at update {u} in another process",
                        job.name
                    ));
                    continue;
                }
                RunStatus::Partial(u) => {
                    self.report.resumed += 1;
                    self.say(format!("resume {} from update {u}", job.name));
                    true
                }
                RunStatus::Fresh => {
                    self.report.started += 1;
                    // Killed before its first checkpoint: nothing to keep but the lock.
                    clear_except(&job.dir, lock.path())?;
                    false
                }
            };
            // The worker takes the lock over from this process (no moment without a holder).
            let mut worker = spawn(&self.exe, job, resume, self.logs_dir, self.stop_after)?;
            worker._claim = Some(lock);
            self.active.push(worker);
        }
        Ok(())
    }

    /// Collects the workers that exited: done, stopped by the signal, or failed.
    fn reap(&mut self) -> Result<()> {
        let mut i = 0;
        while i < self.active.len() {
            let Some(status) = self.active[i].child.try_wait()? else {
                i += 1;
                continue;
            };
            let a = self.active.swap_remove(i);
            if self.forwarded.is_some() {
                self.say(format!(
                    "stopped {} ({status}); it resumes on the next run",
                    a.job.name
                ));
            } else if status.success() {
                self.finished_steps += match self.stop_after {
                    Some(_) => logged_steps(&a.job.dir),
                    None => a.job.config.total_steps,
                };
                self.say(format!(
                    "done {} ({:.0} s so far)",
                    a.job.name,
                    self.t0.elapsed().as_secs_f64()
                ));
            } else if let Some(d) = fbrl::run_dir::divergence(&a.job.dir) {
                // A setting that diverges is a result (e.g. a learning rate too high): the
                // other runs go on, and the experiment decides what to report.
                self.report.diverged += 1;
                self.finished_steps += a.job.config.total_steps;
                self.say(format!(
                    "diverged {} at update {}: {}",
                    a.job.name, d.update, d.message
                ));
            } else if log_tail(&a.log, 3).contains(" is in use: ") {
                // Another process took the run's lock between this one's decision and its
                // worker's start: that process trains it.
                self.report.claimed += 1;
                self.say(format!(
                    "skip {}: claimed by another process as it started",
                    a.job.name
                ));
            } else {
                let tail = log_tail(&a.log, 8);
                self.failures.push(format!(
                    "run {} ({}) failed with {status}; end of {}:\n{tail}",
                    a.job.name,
                    a.job.dir.display(),
                    a.log.display()
                ));
            }
        }
        Ok(())
    }

    /// Moves the bar to the env steps logged so far (a plain line a minute without a bar).
    fn show_progress(&mut self) {
        let running: u64 = self.active.iter().map(|a| logged_steps(&a.job.dir)).sum();
        let names: Vec<&str> = self.active.iter().map(|a| a.job.name.as_str()).collect();
        let done = self.finished_steps + running;
        self.bar.set_position(done.min(self.total));
        self.bar
            .set_message(format!("running: {}", names.join(", ")));
        if self.bar.is_hidden() && !self.quiet && self.last_line.elapsed() > Duration::from_secs(60)
        {
            self.last_line = Instant::now();
            eprintln!(
                "{:.0} s: {done}/{} env steps; running: {}",
                self.t0.elapsed().as_secs_f64(),
                self.total,
                names.join(", ")
            );
        }
    }
}

/// The runs of `jobs` that diverged, each as `name (dir): update N: message`.
pub fn diverged(jobs: &[Job]) -> Vec<String> {
    jobs.iter()
        .filter_map(|job| {
            fbrl::run_dir::divergence(&job.dir).map(|d| {
                format!(
                    "{} ({}): update {}: {}",
                    job.name,
                    job.dir.display(),
                    d.update,
                    d.message
                )
            })
        })
        .collect()
}

/// Fails, naming every diverged run of `jobs`, for a report that needs every run trained to
/// its end (mean curves, held-out evaluation of the final checkpoint).
pub fn refuse_diverged(jobs: &[Job]) -> Result<()> {
    let runs = diverged(jobs);
    if runs.is_empty() {
        return Ok(());
    }
    bail!(
        "{} run(s) stopped on a non-finite loss or gradient, so this report (which needs every \
         run trained to its end) is not written:\n  {}\nlower the learning rate of their arm \
         (find one with the `tune` binary) and move their folders away, or pass another \
         --runs-dir",
        runs.len(),
        runs.join("\n  ")
    )
}

/// Removes everything in `dir` but the file `keep`.
fn clear_except(dir: &Path, keep: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path == keep {
            continue;
        }
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("cannot clear {} to restart it", path.display()))?;
    }
    Ok(())
}

/// Trains every job that is not finished, `parallel` at a time, each in a worker process
/// (this executable) with `job.config.threads` threads; with `stop_after`, each run stops
/// (with a checkpoint) once it has done that many updates, to be resumed by a later call.
/// Shows one progress bar over all env steps (a plain line per finished run when `quiet` or
/// stderr is not a terminal). Worker logs go to `<logs_dir>/<run dir name>.log`. Fails after
/// the running jobs end if any run failed, naming it and quoting the end of its log.
///
/// SIGINT / SIGTERM: forwarded once to every worker (each in its own process group, so a
/// terminal's Ctrl-C reaches only this process), which checkpoints and exits; no new run
/// starts; this process then exits with 128 + signal.
pub fn run_jobs(
    jobs: &[Job],
    parallel: usize,
    logs_dir: &Path,
    quiet: bool,
    stop_after: Option<usize>,
) -> Result<RunReport> {
    let mut pool = Pool::new(jobs, logs_dir, quiet, stop_after)?;
    let count = |want: fn(&RunStatus) -> bool| pool.queue.iter().filter(|(_, s)| want(s)).count();
    pool.say(format!(
        "{} runs: {} finished already, {} to resume, {} to start; {parallel} at a time",
        jobs.len(),
        pool.report.skipped,
        count(|s| matches!(s, RunStatus::Partial(_))),
        count(|s| matches!(s, RunStatus::Fresh)),
    ));
    let stop = StopFlag::install()?;
    loop {
        if let (Some(sig), None) = (stop.requested(), pool.forwarded) {
            pool.forward(sig);
        }
        pool.start_more(parallel)?;
        if pool.active.is_empty() {
            break;
        }
        // Poll twice a second, but forward a signal within 50 ms.
        for _ in 0..10 {
            if stop.requested().is_some() && pool.forwarded.is_none() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        pool.reap()?;
        pool.show_progress();
    }
    pool.bar.finish_and_clear();
    pool.report.wall_s = pool.t0.elapsed().as_secs_f64();
    if let Some(sig) = pool.forwarded {
        eprintln!(
            "stopped by {} after {:.0} s; every run stopped with a checkpoint: re-run the same \
             command to resume",
            signal_name(sig),
            pool.report.wall_s
        );
        std::process::exit(128 + sig);
    }
    if !pool.failures.is_empty() {
        bail!(
            "{} run(s) failed (re-run the same command to resume):\n{}",
            pool.failures.len(),
            pool.failures.join("\n")
        );
    }
    Ok(pool.report)
}

fn spawn(
    exe: &Path,
    job: Job,
    resume: bool,
    logs_dir: &Path,
    stop_after: Option<usize>,
) -> Result<Active> {
    let name = job
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    let cfg_path = logs_dir.join(format!("{name}.toml"));
    std::fs::write(&cfg_path, job.config.to_toml())
        .with_context(|| format!("cannot write {}", cfg_path.display()))?;
    let log = logs_dir.join(format!("{name}.log"));
    let mut log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    writeln!(
        log_file,
        "--- {} {}",
        if resume { "resume" } else { "start" },
        job.dir.display()
    )?;
    let child = Command::new(exe)
        .arg(WORKER_ARG)
        .arg(&cfg_path)
        .arg(&job.dir)
        .arg(if resume { "resume" } else { "fresh" })
        .arg(std::process::id().to_string())
        .arg(stop_after.map_or("-".to_string(), |n| n.to_string()))
        .stdin(Stdio::null())
        .process_group(0)
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("cannot start a worker for {}", job.name))?;
    Ok(Active {
        job,
        child,
        log,
        _claim: None,
    })
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Logical cores of this machine (1 if unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// How many of `runs` runs train at once: `jobs` (a `--jobs` flag), else one per core; at
/// most `runs` and at least one.
pub fn at_once(jobs: Option<usize>, runs: usize) -> usize {
    jobs.unwrap_or_else(cores).clamp(1, runs.max(1))
}
