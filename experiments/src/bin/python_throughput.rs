//! Env steps per second of Gymnasium envs in Python, stepped seven ways side by side in one
//! run (cargo feature `python`):
//!
//! - `main`: our [`VecEnv`] of [`PyGymEnv`] (the embedded interpreter), stepped
//!   sequentially on the main thread, the one that started the interpreter: what the trainer
//!   does by default (`threads = 0`: no pool; fewer than
//!   [`envs::vec_env::AUTO_RAYON_MIN_ENVS`] envs: sequential);
//! - `rayon1`: the same VecEnv stepped with [`Parallelism::Rayon`] inside a rayon pool of 1
//!   thread, whose worker steps every env inside [`envs::python::with_thread_state`] (the
//!   trainer with `threads = 1`);
//! - `rayon1-fresh`: the same without `with_thread_state`, so that the worker makes a new
//!   Python thread state at every env step (the trainer with `threads ≥ 1` before it kept one);
//! - `rayon2`: the same VecEnv in a pool of 2 threads (two threads taking turns at the GIL;
//!   the calling worker inside `with_thread_state`, the helper not);
//! - `async`: `gymnasium.vector.AsyncVectorEnv` (one forked subprocess per env, shared
//!   memory) in the embedded interpreter, stepped from Rust with random actions, its
//!   observations, final observations, rewards and done flags copied into Rust buffers;
//! - `python`: the same envs stepped by a plain Python loop in a `$FBRL_PYTHON` subprocess,
//!   no Rust around it (each ended episode reset with a seed, as the VecEnv does);
//! - `embedded`: that plain Python loop run by the embedded interpreter (tells the two
//!   interpreters apart from the bridge's cost).
//!
//! Random actions, uniform over the env's `Discrete` actions. Each round measures every mode
//! for `--seconds` in turn (rounds interleave the modes, so that a change of load hits them
//! alike); the tables give the median round. Each run is timed twice: by the wall clock
//! (env steps/s), and by the CPU time of the threads doing the work (env steps per CPU
//! second: every thread of this process, plus the subprocess of `python` or the workers of
//! `async`, read from `/proc/PID/task/*/schedstat`), which other processes on the same cores
//! change much less than the wall clock. The overhead per env step of our VecEnv over Python
//! alone is `1/main − 1/python` (and `1/rayon1-fresh − 1/python`), in µs.
//!
//! ```text
//! FBRL_PYTHON=~/gym-venv/bin/python cargo run --release -p experiments --features python \
//!     --bin python_throughput -- --seconds 1 --rounds 7
//! ```
//! Prints both tables (markdown) and writes `results/python_throughput/python_throughput.csv`:
//! per env, number of envs and mode, the medians and every round.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use envs::{Env, Parallelism, PyEnvSpec, PyGymEnv, VecEnv};
use experiments::report;
use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::PyModule;

/// The Python half: the plain loop and the AsyncVectorEnv driver.
const DRIVER_SOURCE: &str = include_str!("python_throughput.py");

/// Measures env steps/s of Python envs: our VecEnv (main thread, 1 and 2 rayon threads),
/// Gymnasium's AsyncVectorEnv driven from Rust, and a plain Python loop.
#[derive(Parser, Debug)]
struct Args {
    /// Envs to measure (comma-separated): `cartpole` (CartPole-v1), `memory`
    /// (MiniGrid-MemoryS9-v0 with `minigrid.wrappers:ImgObsWrapper`).
    #[arg(long, value_delimiter = ',', default_value = "cartpole,memory")]
    envs: Vec<String>,
    /// Numbers of envs stepped together (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "8,16")]
    num_envs: Vec<usize>,
    /// Modes to measure (comma-separated): main, rayon1, rayon1-fresh, rayon2, async, python,
    /// embedded.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "main,rayon1,rayon1-fresh,rayon2,async,python,embedded"
    )]
    modes: Vec<String>,
    /// Seconds of stepping per mode and round (after a warm-up of a quarter of that).
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Rounds; each measures every mode once.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seed of the envs' resets and of the random actions.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output CSV.
    #[arg(
        long,
        default_value = "results/python_throughput/python_throughput.csv"
    )]
    out: PathBuf,
}

/// An env of the benchmark: its name, Gymnasium id and wrapper.
struct Bench {
    name: &'static str,
    id: &'static str,
    wrapper: Option<&'static str>,
}

const BENCHES: [Bench; 2] = [
    Bench {
        name: "cartpole",
        id: "CartPole-v1",
        wrapper: None,
    },
    Bench {
        name: "memory",
        id: "minigrid:MiniGrid-MemoryS9-v0",
        wrapper: Some("minigrid.wrappers:ImgObsWrapper"),
    },
];

const MODES: [&str; 7] = [
    "main",
    "rayon1",
    "rayon1-fresh",
    "rayon2",
    "async",
    "python",
    "embedded",
];

/// A small, fast random source for the actions (SplitMix64).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }

    fn fill(&mut self, actions: &mut [usize], n: usize) {
        for a in actions {
            *a = self.below(n);
        }
    }
}

/// One timed run.
#[derive(Clone, Copy, Debug)]
struct Run {
    /// Env steps taken.
    steps: f64,
    /// Wall-clock seconds.
    wall: f64,
    /// CPU seconds of the threads doing the work.
    cpu: f64,
}

impl Run {
    /// Env steps per second (wall clock).
    fn per_s(&self) -> f64 {
        self.steps / self.wall
    }

    /// Env steps per CPU second.
    fn per_cpu_s(&self) -> f64 {
        self.steps / self.cpu
    }
}

/// Seconds that all threads of the processes `pids` have run on a CPU, from
/// `/proc/PID/task/*/schedstat` (nanoseconds, first field); threads that ended are missed.
fn cpu_seconds(pids: &[u32]) -> f64 {
    let mut ns = 0u64;
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            ns += stat
                .split_whitespace()
                .next()
                .and_then(|x| x.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ns as f64 * 1e-9
}

/// Times `run` (which gives env steps and wall seconds) with the CPU time of `pids`.
fn timed(pids: &[u32], run: impl FnOnce() -> Result<(f64, f64)>) -> Result<Run> {
    let before = cpu_seconds(pids);
    let (steps, wall) = run()?;
    Ok(Run {
        steps,
        wall,
        cpu: cpu_seconds(pids) - before,
    })
}

/// Runs `step` (`n` env steps a call) until `seconds` have passed: env steps and seconds.
fn time_steps(seconds: f64, n: usize, mut step: impl FnMut() -> Result<()>) -> Result<(f64, f64)> {
    let start = Instant::now();
    let mut steps = 0usize;
    loop {
        step()?;
        steps += n;
        let elapsed = start.elapsed().as_secs_f64();
        if elapsed >= seconds {
            return Ok((steps as f64, elapsed));
        }
    }
}

/// The interpreter of the `python` mode: `$FBRL_PYTHON`, else the active virtual
/// environment's, else `python3`.
fn python_interpreter() -> PathBuf {
    let set = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty());
    if let Some(p) = set(envs::python::PYTHON_VAR) {
        PathBuf::from(p)
    } else if let Some(venv) = set("VIRTUAL_ENV") {
        PathBuf::from(venv).join("bin").join("python")
    } else {
        PathBuf::from("python3")
    }
}

/// The plain Python loop in a subprocess: one line of seconds in, one of env steps and
/// seconds out.
struct PythonLoop {
    child: Child,
    /// `None` once closed, which ends the loop.
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl PythonLoop {
    fn start(bench: &Bench, n: usize, seed: u64) -> Result<Self> {
        let python = python_interpreter();
        let mut child = Command::new(&python)
            .args(["-c", DRIVER_SOURCE, bench.id, bench.wrapper.unwrap_or("")])
            .arg(n.to_string())
            .arg(seed.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", python.display()))?;
        let stdin = Some(child.stdin.take().context("no stdin")?);
        let stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        let mut this = Self {
            child,
            stdin,
            stdout,
        };
        let ready = this.line()?;
        if ready != "ready" {
            bail!("the Python loop answered {ready:?} instead of `ready`");
        }
        Ok(this)
    }

    fn line(&mut self) -> Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the Python loop ended early (see its error above)");
        }
        Ok(line.trim().to_string())
    }

    fn run(&mut self, seconds: f64) -> Result<(f64, f64)> {
        let stdin = self.stdin.as_mut().context("the Python loop was closed")?;
        writeln!(stdin, "{seconds}")?;
        stdin.flush()?;
        let answer = self.line()?;
        let parse = || -> Option<(f64, f64)> {
            let (steps, wall) = answer.split_once(' ')?;
            Some((steps.parse().ok()?, wall.parse().ok()?))
        };
        parse().with_context(|| format!("the Python loop answered {answer:?}"))
    }
}

impl Drop for PythonLoop {
    fn drop(&mut self) {
        // Closing stdin ends its loop.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// A Python error as an anyhow error with its message.
fn py_err(py: Python<'_>, what: &str, e: PyErr) -> anyhow::Error {
    anyhow!("{what}: {}", e.value(py))
}

/// Measures every mode of `modes` for `bench` with `n` envs; per mode, its runs (one a
/// round).
fn measure(
    bench: &Bench,
    n: usize,
    args: &Args,
    driver: &Py<PyModule>,
    pools: &[rayon::ThreadPool; 2],
) -> Result<Vec<(String, Vec<Run>)>> {
    let want = |m: &str| args.modes.iter().any(|x| x == m);
    let warm = args.seconds / 4.0;
    let me = [std::process::id()];
    let mut rng = Rng(args.seed ^ 0x5EED);
    let mut spec = PyEnvSpec::new(bench.id);
    spec.wrapper = bench.wrapper.map(String::from);

    let mut venv = if ["main", "rayon1", "rayon1-fresh", "rayon2"]
        .iter()
        .any(|m| want(m))
    {
        Some(VecEnv::from_fn(n, args.seed, |_| PyGymEnv::new(&spec))?)
    } else {
        None
    };
    let num_actions = match &venv {
        Some(v) => v.num_actions(),
        None => PyGymEnv::new(&spec)?
            .action_space()
            .num_discrete()
            .context("the benchmark's envs have Discrete actions")?,
    };
    if let Some(v) = &mut venv {
        v.reset()?;
    }
    let (bench_id, wrapper) = (bench.id, bench.wrapper);
    let make = |class: &str| -> Result<Py<PyAny>> {
        Python::with_gil(|py| {
            driver
                .as_ref(py)
                .getattr(class)
                .and_then(|c| c.call1((bench_id, wrapper, n, args.seed)))
                .map(Into::into)
                .map_err(|e| py_err(py, &format!("cannot start {class}"), e))
        })
    };
    let asyncv = if want("async") {
        Some(make("Async")?)
    } else {
        None
    };
    // This process and the AsyncVectorEnv's workers.
    let async_pids = match &asyncv {
        Some(a) => Python::with_gil(|py| {
            a.getattr(py, "pids")
                .and_then(|p| p.extract::<Vec<u32>>(py))
                .map_err(|e| py_err(py, "the AsyncVectorEnv's workers", e))
        })?
        .into_iter()
        .chain(me)
        .collect(),
        None => Vec::new(),
    };
    let embedded = if want("embedded") {
        Some(make("Loop")?)
    } else {
        None
    };
    let mut python = if want("python") {
        Some(PythonLoop::start(bench, n, args.seed)?)
    } else {
        None
    };

    let mut actions = vec![0usize; n];
    let mut obs = vec![0f32; 0];
    let mut final_obs = vec![0f32; 0];
    let mut rewards = vec![0f32; n];
    let mut rounds: Vec<(String, Vec<Run>)> = MODES
        .iter()
        .filter(|m| want(m))
        .map(|m| (m.to_string(), Vec::new()))
        .collect();
    for _ in 0..args.rounds {
        for (mode, results) in &mut rounds {
            let run = match mode.as_str() {
                "main" => {
                    let v = venv.take().expect("made above");
                    let v = venv.insert(v.with_parallelism(Parallelism::Sequential));
                    let mut step = || -> Result<()> {
                        rng.fill(&mut actions, num_actions);
                        v.step(&actions)?;
                        Ok(())
                    };
                    time_steps(warm, n, &mut step)?;
                    timed(&me, || time_steps(args.seconds, n, &mut step))?
                }
                "rayon1" | "rayon1-fresh" | "rayon2" => {
                    let v = venv.take().expect("made above");
                    let v = venv.insert(v.with_parallelism(Parallelism::Rayon));
                    let pool = &pools[usize::from(mode == "rayon2")];
                    let run = || {
                        let mut step = || -> Result<()> {
                            rng.fill(&mut actions, num_actions);
                            v.step(&actions)?;
                            Ok(())
                        };
                        time_steps(warm, n, &mut step)?;
                        timed(&me, || time_steps(args.seconds, n, &mut step))
                    };
                    if mode == "rayon1-fresh" {
                        pool.install(run)?
                    } else {
                        pool.install(|| envs::python::with_thread_state(run))?
                    }
                }
                "async" => {
                    let a = asyncv.as_ref().expect("made above");
                    let mut step = || -> Result<()> {
                        rng.fill(&mut actions, num_actions);
                        Python::with_gil(|py| {
                            let out = a
                                .call_method1(py, "step", (actions.clone(),))
                                .map_err(|e| py_err(py, "AsyncVectorEnv step", e))?;
                            let (o, f, r, done): (&PyAny, &PyAny, &PyAny, Vec<bool>) =
                                out.extract(py).map_err(|e| py_err(py, "its outcome", e))?;
                            let copy = |array: &PyAny, into: &mut Vec<f32>| -> PyResult<()> {
                                let buf = PyBuffer::<f32>::get(array)?;
                                into.resize(buf.item_count(), 0.0);
                                buf.copy_to_slice(py, into)
                            };
                            copy(o, &mut obs)
                                .and_then(|_| copy(f, &mut final_obs))
                                .and_then(|_| copy(r, &mut rewards))
                                .map_err(|e| py_err(py, "copying its outcome", e))?;
                            debug_assert_eq!(done.len(), n);
                            Ok(())
                        })
                    };
                    time_steps(warm, n, &mut step)?;
                    timed(&async_pids, || time_steps(args.seconds, n, &mut step))?
                }
                "python" => {
                    let p = python.as_mut().expect("made above");
                    p.run(warm)?;
                    let pid = [p.child.id()];
                    timed(&pid, || p.run(args.seconds))?
                }
                "embedded" => {
                    let l = embedded.as_ref().expect("made above");
                    let run = |seconds: f64| {
                        Python::with_gil(|py| {
                            l.call_method1(py, "run", (seconds,))
                                .and_then(|r| r.extract::<(f64, f64)>(py))
                                .map_err(|e| py_err(py, "the embedded Python loop", e))
                        })
                    };
                    run(warm)?;
                    timed(&me, || run(args.seconds))?
                }
                other => bail!("unknown mode {other:?}"),
            };
            eprintln!(
                "  {:<8} {n:>3} envs  {mode:<8} {:>9.0} env steps/s  {:>9.0} per CPU second  \
                 ({:.2} CPUs busy)",
                bench.name,
                run.per_s(),
                run.per_cpu_s(),
                run.cpu / run.wall
            );
            results.push(run);
        }
    }
    Python::with_gil(|py| {
        for obj in asyncv.iter().chain(embedded.iter()) {
            let _ = obj.call_method0(py, "close");
        }
    });
    Ok(rounds)
}

fn median(v: impl IntoIterator<Item = f64>) -> f64 {
    let mut s: Vec<f64> = v.into_iter().collect();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// One measured env, number of envs and mode: the medians of its rounds.
struct Row {
    env: &'static str,
    n: usize,
    mode: String,
    per_s: f64,
    per_cpu_s: f64,
    cpus_busy: f64,
    runs: Vec<Run>,
}

/// The markdown table of `rows` by `rate` (wall-clock or CPU-time steps/s).
fn table(rows: &[Row], rate: impl Fn(&Row) -> f64, unit: &str) -> String {
    let mut out = format!(
        "| env | envs | main | rayon1 | rayon1-fresh | rayon2 | async | python | embedded | \
         rayon1 ÷ main | rayon1-fresh ÷ main | rayon2 ÷ main | async ÷ main | main ÷ python \
         | overhead of main over python, {unit} | of rayon1-fresh, {unit} |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    let mut keys: Vec<(&str, usize)> = Vec::new();
    for r in rows {
        if !keys.contains(&(r.env, r.n)) {
            keys.push((r.env, r.n));
        }
    }
    for (env, n) in keys {
        let get = |m: &str| {
            rows.iter()
                .find(|r| r.env == env && r.n == n && r.mode == m)
                .map(&rate)
        };
        let num = |v: Option<f64>| v.map_or("–".into(), |x| format!("{x:.0}"));
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}", a / b),
            _ => "–".into(),
        };
        let alone = get("python");
        let overhead = |m: &str| match (get(m), alone) {
            (Some(b), Some(p)) => format!("{:.1}", 1e6 / b - 1e6 / p),
            _ => "–".into(),
        };
        let main = get("main");
        out.push_str(&format!(
            "| {env} | {n} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} \
             |\n",
            num(main),
            num(get("rayon1")),
            num(get("rayon1-fresh")),
            num(get("rayon2")),
            num(get("async")),
            num(alone),
            num(get("embedded")),
            ratio(get("rayon1"), main),
            ratio(get("rayon1-fresh"), main),
            ratio(get("rayon2"), main),
            ratio(get("async"), main),
            ratio(main, alone),
            overhead("main"),
            overhead("rayon1-fresh"),
        ));
    }
    out
}

fn main() -> Result<()> {
    let args = Args::parse();
    for m in &args.modes {
        if !MODES.contains(&m.as_str()) {
            bail!("unknown mode {m:?}: one of {}", MODES.join(", "));
        }
    }
    let benches: Vec<&Bench> = args
        .envs
        .iter()
        .map(|e| {
            BENCHES
                .iter()
                .find(|b| b.name == e)
                .ok_or_else(|| anyhow!("unknown env {e:?}: cartpole or memory"))
        })
        .collect::<Result<_>>()?;
    envs::python::start()?;
    let driver: Py<PyModule> = Python::with_gil(|py| {
        PyModule::from_code(
            py,
            DRIVER_SOURCE,
            "python_throughput.py",
            "python_throughput",
        )
        .map(Into::into)
        .map_err(|e| py_err(py, "cannot load the Python driver", e))
    })?;
    let pool = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .context("cannot build a thread pool")
    };
    let pools = [pool(1)?, pool(2)?];
    let cpus = std::thread::available_parallelism().map_or(1, |c| c.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    eprintln!(
        "{} CPUs available to this process; load average {}; {} rounds of {} s per mode",
        cpus,
        load.join(" "),
        args.rounds,
        args.seconds
    );

    let mut rows: Vec<Row> = Vec::new();
    for bench in &benches {
        for &n in &args.num_envs {
            for (mode, runs) in measure(bench, n, &args, &driver, &pools)? {
                rows.push(Row {
                    env: bench.name,
                    n,
                    mode,
                    per_s: median(runs.iter().map(Run::per_s)),
                    per_cpu_s: median(runs.iter().map(Run::per_cpu_s)),
                    cpus_busy: median(runs.iter().map(|r| r.cpu / r.wall)),
                    runs,
                });
            }
        }
    }
    println!(
        "\nEnv steps/s (wall clock), median of {} rounds:\n",
        args.rounds
    );
    println!("{}", table(&rows, |r| r.per_s, "µs/step"));
    println!("Env steps per CPU second (CPU time of the threads doing the work):\n");
    println!("{}", table(&rows, |r| r.per_cpu_s, "CPU µs/step"));

    let header = [
        "env",
        "num_envs",
        "mode",
        "cpus",
        "steps_per_s",
        "steps_per_cpu_s",
        "cpus_busy",
        "us_per_step",
        "cpu_us_per_step",
        "vs_main",
        "vs_python",
        "rounds_steps_per_s",
        "rounds_steps_per_cpu_s",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let of = |m: &str| {
                rows.iter()
                    .find(|x| x.env == r.env && x.n == r.n && x.mode == m)
                    .map(|x| r.per_s / x.per_s)
            };
            let join = |f: fn(&Run) -> f64| {
                r.runs
                    .iter()
                    .map(|x| format!("{:.0}", f(x)))
                    .collect::<Vec<_>>()
                    .join(";")
            };
            vec![
                r.env.to_string(),
                r.n.to_string(),
                r.mode.clone(),
                cpus.to_string(),
                format!("{:.0}", r.per_s),
                format!("{:.0}", r.per_cpu_s),
                format!("{:.2}", r.cpus_busy),
                format!("{:.2}", 1e6 / r.per_s),
                format!("{:.2}", 1e6 / r.per_cpu_s),
                report::cell(of("main")),
                report::cell(of("python")),
                join(Run::per_s),
                join(Run::per_cpu_s),
            ]
        })
        .collect();
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    report::write_csv(&args.out, &header, &cells)?;
    eprintln!("wrote {}", report::rel_path(&args.out));
    Ok(())
}
