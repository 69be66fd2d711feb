//! Distributed PPO over MPI (feature `mpi`): each test starts `mpirun -np 2 fbrl train
//! --distributed mpi …` and checks the run it leaves.
//!
//! * equivalence: the weights after 3 updates of 2 ranks × 2 envs equal those of the
//!   single-process reference (`fbrl::distributed::reference_run`: the 4 envs of both ranks in
//!   one process, minibatches the unions of the ranks'), up to floating-point reduction order;
//! * learning: 2 ranks × 2 envs solve CartPole with the budget of the single-process learning
//!   test (4 envs);
//! * faults: a rank killed with SIGKILL ends the job within a bounded time, naming the rank,
//!   the checkpoint on disk stays loadable and a relaunch resumes from it; a rank that stops
//!   answering (SIGSTOP) ends the job after the bounded wait; ranks with different
//!   configs are refused; `--distributed mpi` outside a launcher says so;
//! * resume: 3 updates + a relaunch with `--resume` + 3 equal 6 updates bit for bit;
//! * rollout preemption (`--preempt-fraction`): off, no rollout is cut; on, lagging ranks stop
//!   at sequence boundaries that leave whole minibatches.
//!
//! Skipped with a message when `mpirun` is missing, unless `FBRL_REQUIRE_MPI` is set (CI sets
//! it after installing Open MPI).
//!
//! `cargo test --release --features mpi --test distributed -- --nocapture` prints the figures.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use agents::{ActionDist, PolicyKind};
use burn::prelude::Device;
use envs::Env;
use fbrl::checkpoint::open_latest;
use fbrl::distributed::{REQUIRE_MPI_ENV, flat_weights, reference_run};
use fbrl::{CartPoleConfig, EnvConfig, MetricsRow, TrainConfig};

/// `mpirun`, or `None` (after saying so) when the test should be skipped.
fn mpirun() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("mpirun"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os(REQUIRE_MPI_ENV).is_none(),
            "{REQUIRE_MPI_ENV} is set but mpirun is not on PATH (install openmpi-bin)"
        );
        eprintln!(
            "SKIP: mpirun is not on PATH (install openmpi-bin; set {REQUIRE_MPI_ENV}=1 to fail instead)"
        );
    }
    found
}

/// `mpirun -np ranks fbrl <args>` as a command (root allowed, no binding to cores, the
/// shared-memory transport without the single-copy mechanism containers forbid, and waiting
/// ranks yielding the CPU: the tests may run with fewer cores than ranks).
fn mpi_command<S: AsRef<std::ffi::OsStr>>(mpirun: &Path, ranks: usize, args: &[S]) -> Command {
    let mut c = Command::new(mpirun);
    c.args([
        "-np",
        &ranks.to_string(),
        "--oversubscribe",
        "--bind-to",
        "none",
    ])
    .arg(env!("CARGO_BIN_EXE_fbrl"))
    .args(args)
    .env("OMPI_MCA_rmaps_base_oversubscribe", "1");
    mpi_env(&mut c);
    c
}

/// The Open MPI settings every job of these tests runs with (see [`mpi_command`]).
fn mpi_env(c: &mut Command) {
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .env("OMPI_MCA_mpi_yield_when_idle", "1");
}

/// `fbrl train -q --distributed mpi -c <cfg> --run-dir <run>`'s arguments, then `extra`.
fn train_args(cfg_path: &Path, run_dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["train", "-q", "--distributed", "mpi", "-c"]
        .map(String::from)
        .into();
    args.push(cfg_path.to_str().unwrap().into());
    args.push("--run-dir".into());
    args.push(run_dir.to_str().unwrap().into());
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// Trains `cfg` on 2 ranks into `dir/run` (its config written to `dir/cfg.toml`) and returns
/// the run directory; the job must succeed.
fn train_two_ranks(mpirun: &Path, cfg: &TrainConfig, dir: &Path) -> PathBuf {
    let cfg_path = write_cfg(dir, "cfg.toml", cfg);
    let run_dir = dir.join("run");
    let out = run(mpi_command(
        mpirun,
        2,
        &train_args(&cfg_path, &run_dir, &[]),
    ));
    assert!(out.status.success(), "mpirun failed:\n{}", text(&out));
    run_dir
}

fn run(mut c: Command) -> Output {
    c.output().expect("cannot start mpirun")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn cartpole_cfg(num_envs: usize, num_steps: usize, total_steps: u64) -> TrainConfig {
    let mut cfg = TrainConfig::preset_cartpole(PolicyKind::Mlp);
    cfg.num_envs = num_envs;
    cfg.num_steps = num_steps;
    cfg.total_steps = total_steps;
    cfg.threads = 1;
    cfg.tensorboard = false;
    cfg.ppo.num_minibatches = 2;
    cfg
}

fn write_cfg(dir: &Path, name: &str, cfg: &TrainConfig) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, cfg.to_toml()).unwrap();
    p
}

fn metrics_rows(run: &Path) -> Vec<MetricsRow> {
    fbrl::metrics::read_metrics(run.join("metrics.csv")).unwrap()
}

/// Runs `updates` updates of `cfg` on 2 ranks and compares the weights with the
/// single-process reference.
fn check_against_the_reference(mpirun: &Path, cfg: &TrainConfig, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = write_cfg(dir.path(), "cfg.toml", cfg);
    let run_dir = dir.path().join("run");
    let updates = 3;
    let stop = updates.to_string();
    let out = run(mpi_command(
        mpirun,
        2,
        &train_args(&cfg_path, &run_dir, &["--stop-after", &stop]),
    ));
    assert!(out.status.success(), "mpirun failed:\n{}", text(&out));

    let ckpt = open_latest(&run_dir.join("checkpoint")).unwrap();
    assert_eq!(ckpt.state.updates_done, updates);
    let EnvConfig::Cartpole(env_cfg) = cfg.env.clone() else {
        unreachable!()
    };
    let env = env_cfg.build().unwrap();
    let dist = ActionDist::from_space(&env.action_space());
    let device = Device::default();
    device.seed(cfg.seed);
    let fresh = cfg
        .policy
        .init_for(
            env.observation_space().shape.iter().product(),
            &dist,
            &device,
        )
        .unwrap();
    let initial = flat_weights(&fresh);
    let distributed = flat_weights(&ckpt.load_model(fresh).unwrap());
    let reference =
        flat_weights(&reference_run(cfg, |_| CartPoleConfig::build(&env_cfg), 2, updates).unwrap());
    assert_eq!(distributed.len(), reference.len());
    let max_diff = distributed
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let moved = reference
        .iter()
        .zip(&initial)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!(
        "{what}, 2 ranks × {} envs, {updates} updates: max |w_mpi − w_reference| = {max_diff:.3e} \
         (the updates moved the weights by up to {moved:.3e})",
        cfg.num_envs
    );
    assert!(moved > 1e-4, "the updates did not change the weights");
    assert!(
        max_diff <= 1e-5,
        "{what}: the 2-rank weights differ from the single-process reference by {max_diff}"
    );
    // Rank 0 wrote the steps of both ranks; CartPole counts nothing: no count column.
    let rows = metrics_rows(&run_dir);
    assert_eq!(rows.len(), updates);
    assert!(rows.iter().all(|r| r.counts.names.is_empty()));
    assert_eq!(
        rows[updates - 1].env_steps,
        (updates * 2 * cfg.num_envs * cfg.num_steps) as u64
    );
}

#[test]
fn two_ranks_take_the_steps_of_one_process_with_the_union_of_their_minibatches() {
    let Some(mpirun) = mpirun() else { return };
    // An MLP with both normalisers (their statistics merged across ranks).
    let mut cfg = cartpole_cfg(2, 32, 2 * 2 * 32 * 10);
    cfg.ppo.update_epochs = 2;
    cfg.ppo.norm_obs = true;
    cfg.checkpoint_every = 1;
    check_against_the_reference(&mpirun, &cfg, "MLP");
    // A GRU replaying chunks of 16 steps from stored memories (4 sequences per rank).
    let mut cfg = cartpole_cfg(2, 32, 2 * 2 * 32 * 10);
    cfg.policy = agents::PolicyConfig::preset(PolicyKind::Gru);
    cfg.ppo.seq_len = Some(16);
    cfg.checkpoint_every = 1;
    check_against_the_reference(&mpirun, &cfg, "GRU, seq_len 16");
}

#[test]
fn a_gridmaze_run_logs_the_goals_of_both_ranks() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Multi mode, reward 1 per goal, no step penalty: an episode's return is its goal count.
    let mut cfg = cartpole_cfg(2, 32, 2 * 2 * 32 * 4);
    cfg.env = EnvConfig::Gridmaze(envs::GridMazeConfig::multi(7, 32));
    let run_dir = train_two_ranks(&mpirun, &cfg, dir.path());
    let header = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    let header: Vec<&str> = header.lines().next().unwrap().split(',').collect();
    assert_eq!(header[7..10], ["length_mean", "goals_mean", "success_rate"]);
    let rows = metrics_rows(&run_dir);
    assert_eq!(rows.len(), 4);
    // 2 ranks × 2 envs × 32 steps of episodes of 32 steps: 4 episodes per update.
    assert!(rows.iter().all(|r| r.episodes == 4), "{rows:?}");
    assert!(rows.iter().any(|r| r.counts.get("goals").unwrap() > 0.0));
    for r in &rows {
        assert_eq!(r.counts.get("goals"), Some(r.return_mean), "{r:?}");
    }
}

#[test]
fn two_ranks_learn_cartpole_like_one_process() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    // The budget of `ppo_learning`'s CartPole test (4 envs × 128 steps, 200 000 steps, 4
    // minibatches of 128 steps) with the 4 envs split over 2 ranks: each rank cuts its 2
    // rollouts into 4 sequences of 64 steps (the MLP has no memory, so only the minibatch
    // size matters), and each minibatch is the union of one from each rank, 128 steps.
    let mut cfg = cartpole_cfg(2, 128, 200_000);
    cfg.checkpoint_every = 0;
    cfg.ppo.seq_len = Some(64);
    cfg.ppo.num_minibatches = 4;
    let t0 = Instant::now();
    let run_dir = train_two_ranks(&mpirun, &cfg, dir.path());
    let mpi_s = t0.elapsed().as_secs_f64();
    let last = tail_return(&metrics_rows(&run_dir));

    // The same budget in one process with the 4 envs, for comparison.
    let mut single = cfg.clone();
    single.num_envs = 4;
    single.ppo.seq_len = None;
    let single_dir = dir.path().join("single");
    let t0 = Instant::now();
    fbrl::train_from_config(
        &single,
        fbrl::TrainOptions {
            run_dir: Some(single_dir.clone()),
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap();
    let single_last = tail_return(&metrics_rows(&single_dir));
    println!(
        "cartpole, MLP, {} steps: 2 ranks × 2 envs {last:.1} ({mpi_s:.1} s), one process × 4 \
         envs {single_last:.1} ({:.1} s): mean return over the last 10 % of updates",
        cfg.total_steps,
        t0.elapsed().as_secs_f64()
    );
    assert!(last >= 475.0, "CartPole return of 2 ranks {last:.1} < 475");
}

/// The mean return over the last 10 % of updates (those in which an episode ended).
fn tail_return(rows: &[MetricsRow]) -> f64 {
    let tail = (rows.len() / 10).max(1);
    let finite: Vec<f64> = rows[rows.len() - tail..]
        .iter()
        .map(|r| r.return_mean)
        .filter(|x| x.is_finite())
        .collect();
    assert!(
        !finite.is_empty(),
        "no episode ended in the last 10 % of updates"
    );
    finite.iter().sum::<f64>() / finite.len() as f64
}

/// The pid of the process of rank `rank` whose command line mentions `marker`.
fn rank_pid(rank: usize, marker: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if !cmdline.starts_with(env!("CARGO_BIN_EXE_fbrl")) || !cmdline.contains(marker) {
            continue;
        }
        let want = format!("OMPI_COMM_WORLD_RANK={rank}");
        if environ.split(|&b| b == 0).any(|v| v == want.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

/// Sends `signal` (`-9`, `-STOP`) to the process `pid`; whether `kill` succeeded.
fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

fn wait_with_deadline(child: &mut Child, deadline: Duration) -> Option<std::process::ExitStatus> {
    let t0 = Instant::now();
    while t0.elapsed() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Starts a long CartPole job on 2 ranks in `dir/run` (a checkpoint every 2 updates, ranks
/// giving up on a silent peer after `timeout_s`) and returns it, running, once its checkpoint
/// of update `at` is on disk, with its run folder and the pid of its rank 1.
fn long_job_past_checkpoint(
    mpirun: &Path,
    dir: &Path,
    timeout_s: u64,
    at: usize,
) -> (Child, PathBuf, u32) {
    let mut cfg = cartpole_cfg(2, 64, 2 * 2 * 64 * 1000);
    cfg.checkpoint_every = 2;
    let cfg_path = write_cfg(dir, "cfg.toml", &cfg);
    let run_dir = dir.join("run");
    let mut cmd = mpi_command(mpirun, 2, &train_args(&cfg_path, &run_dir, &[]));
    cmd.env("FBRL_MPI_TIMEOUT_S", timeout_s.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let latest = run_dir.join("checkpoint").join("latest");
    let want = format!("update_{at:06}");
    let t0 = Instant::now();
    while std::fs::read_to_string(&latest).unwrap_or_default().trim() < want.as_str() {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "no checkpoint of update {at} after 5 minutes"
        );
        assert!(child.try_wait().unwrap().is_none(), "the job ended early");
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = rank_pid(1, run_dir.to_str().unwrap()).expect("rank 1's process");
    (child, run_dir, pid)
}

#[test]
fn a_killed_rank_ends_the_job_and_a_relaunch_resumes() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Wait for a checkpoint past the first one.
    let (mut child, run_dir, pid) = long_job_past_checkpoint(&mpirun, dir.path(), 20, 4);
    let run_arg = run_dir.to_str().unwrap().to_string();
    let killed_at = Instant::now();
    assert!(signal(pid, "-9"));
    let bound = Duration::from_secs(60);
    let Some(status) = wait_with_deadline(&mut child, bound) else {
        child.kill().ok();
        panic!("the job did not end within {bound:?} of killing rank 1");
    };
    let ended_after = killed_at.elapsed();
    let out = child.wait_with_output().unwrap();
    let log = text(&out);
    println!(
        "rank 1 (pid {pid}) killed: the job ended after {:.1} s with {status}; its message:\n{}",
        ended_after.as_secs_f64(),
        log.lines()
            .filter(|l| l.contains("rank 1"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(!status.success());
    assert!(log.contains("rank 1"), "no message names rank 1:\n{log}");

    // The checkpoint on disk is a complete one, and a relaunch continues from it.
    let ckpt = open_latest(&run_dir.join("checkpoint")).expect("the last checkpoint loads");
    let done = ckpt.state.updates_done;
    assert!(done >= 4, "checkpoint at update {done}");
    let out = run(mpi_command(
        &mpirun,
        2,
        &[
            "train",
            "-q",
            "--distributed",
            "mpi",
            "--resume",
            &run_arg,
            "--stop-after",
            &(done + 2).to_string(),
        ],
    ));
    assert!(out.status.success(), "the relaunch failed:\n{}", text(&out));
    let log = text(&out);
    assert!(
        log.contains(&format!("resuming after update {done}")),
        "the relaunch did not resume after update {done}:\n{log}"
    );
    let ckpt = open_latest(&run_dir.join("checkpoint")).unwrap();
    assert_eq!(ckpt.state.updates_done, done + 2);
    let rows = metrics_rows(&run_dir);
    assert_eq!(rows.len(), done + 2);
    assert_eq!(
        rows.iter().map(|r| r.update).collect::<Vec<_>>(),
        (1..=done + 2).collect::<Vec<_>>()
    );
}

#[test]
fn ranks_with_different_configs_are_refused() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = cartpole_cfg(2, 32, 2 * 2 * 32 * 4);
    let a = write_cfg(dir.path(), "a.toml", &cfg);
    let mut other = cfg.clone();
    other.ppo.learning_rate *= 2.0;
    let b = write_cfg(dir.path(), "b.toml", &other);
    let run_dir = dir.path().join("run");
    let fbrl = env!("CARGO_BIN_EXE_fbrl");
    // MPMD: rank 0 runs a.toml, rank 1 b.toml.
    let mut c = Command::new(&mpirun);
    c.args(["--oversubscribe", "--bind-to", "none", "-np", "1", fbrl])
        .args(train_args(&a, &run_dir, &[]))
        .args([":", "-np", "1", fbrl])
        .args(train_args(&b, &run_dir, &[]));
    mpi_env(&mut c);
    let out = run(c);
    let log = text(&out);
    assert!(!out.status.success());
    assert!(
        log.contains("rank 1's config differs from rank 0's at `ppo.learning_rate`"),
        "{log}"
    );
    assert!(
        !run_dir.join("checkpoint").exists(),
        "a refused job trained anyway"
    );
}

#[test]
fn distributed_outside_a_launcher_says_so() {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fbrl"));
    c.args(["train", "-q", "--distributed", "mpi"]);
    for var in fbrl::distributed::LAUNCHER_VARS {
        c.env_remove(var);
    }
    let out = c.output().unwrap();
    assert!(!out.status.success());
    let log = text(&out);
    assert!(log.contains("needs an MPI launcher"), "{log}");
}

#[test]
fn a_hung_rank_ends_the_job_after_the_bounded_wait() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Rank 1 stops answering (SIGSTOP): rank 0 gives up after 3 s and the job ends.
    let (mut child, run_dir, pid) = long_job_past_checkpoint(&mpirun, dir.path(), 3, 2);
    let stopped_at = Instant::now();
    assert!(signal(pid, "-STOP"));
    let Some(status) = wait_with_deadline(&mut child, Duration::from_secs(60)) else {
        child.kill().ok();
        signal(pid, "-9");
        panic!("the job still runs 60 s after rank 1 stopped answering");
    };
    let ended_after = stopped_at.elapsed();
    signal(pid, "-9");
    let log = text(&child.wait_with_output().unwrap());
    println!(
        "rank 1 stopped: the job ended after {:.1} s with {status}: {}",
        ended_after.as_secs_f64(),
        log.lines()
            .find(|l| l.contains("no answer"))
            .unwrap_or_default()
    );
    assert!(!status.success());
    assert!(
        log.contains("rank 0 of 2: no answer from every rank for 3 s"),
        "{log}"
    );
    open_latest(&run_dir.join("checkpoint")).expect("the last checkpoint loads");
}

#[test]
fn rollout_preemption_cuts_lagging_ranks_at_sequence_boundaries() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cartpole_cfg(2, 128, 2 * 2 * 128 * 40);
    cfg.ppo.seq_len = Some(16);
    cfg.checkpoint_every = 10;
    let cfg_path = write_cfg(dir.path(), "cfg.toml", &cfg);
    let steps_per_update = |run: &Path| -> Vec<u64> {
        let rows = metrics_rows(run);
        let mut last = 0;
        rows.iter()
            .map(|r| {
                let d = r.env_steps - last;
                last = r.env_steps;
                d
            })
            .collect()
    };
    let full = (2 * 2 * 128) as u64;
    for preempt in [None, Some("0.5")] {
        let run_dir = dir.path().join(format!("run-{}", preempt.unwrap_or("off")));
        let extra = preempt.map_or(vec![], |f| vec!["--preempt-fraction", f]);
        let out = run(mpi_command(
            &mpirun,
            2,
            &train_args(&cfg_path, &run_dir, &extra),
        ));
        assert!(out.status.success(), "mpirun failed:\n{}", text(&out));
        let steps = steps_per_update(&run_dir);
        assert_eq!(steps.len(), 40);
        let cut = steps.iter().filter(|&&s| s < full).count();
        println!(
            "preemption {}: {cut} of 40 rollouts cut short, {} env steps in all",
            preempt.unwrap_or("off"),
            steps.iter().sum::<u64>()
        );
        match preempt {
            // Off: every rank collects every step.
            None => assert_eq!(cut, 0),
            // On: a rank stops only where it keeps whole sequences of 16 steps for each of
            // its 2 minibatches (2 envs: a multiple of 16 steps), never beyond the budget.
            Some(_) => {
                for &s in &steps {
                    assert!(s <= full && s % (2 * 16) == 0, "{s} steps in an update");
                }
            }
        }
        open_latest(&run_dir.join("checkpoint")).unwrap();
    }
}

#[test]
fn a_resumed_two_rank_run_continues_bit_for_bit() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cartpole_cfg(2, 32, 2 * 2 * 32 * 6);
    cfg.ppo.norm_obs = true;
    cfg.checkpoint_every = 1;
    let cfg_path = write_cfg(dir.path(), "cfg.toml", &cfg);
    let train = |run_dir: &Path, resume: bool, stop_after: usize| {
        let mut args = vec!["train", "-q", "--distributed", "mpi"];
        let (run_s, stop) = (run_dir.to_str().unwrap(), stop_after.to_string());
        if resume {
            args.extend(["--resume", run_s]);
        } else {
            args.extend(["-c", cfg_path.to_str().unwrap(), "--run-dir", run_s]);
        }
        args.extend(["--stop-after", &stop]);
        let out = run(mpi_command(&mpirun, 2, &args));
        assert!(out.status.success(), "mpirun failed:\n{}", text(&out));
    };
    let whole = dir.path().join("whole");
    train(&whole, false, 6);
    let halves = dir.path().join("halves");
    train(&halves, false, 3);
    train(&halves, true, 6);
    // Every column but the clock's, and every rank's state at the end.
    let strip = |run: &Path| -> Vec<String> {
        metrics_rows(run)
            .into_iter()
            .map(|mut r| {
                (r.wall_time_s, r.steps_per_s) = (0.0, 0.0);
                format!("{r:?}")
            })
            .collect()
    };
    assert_eq!(strip(&whole), strip(&halves));
    let ranks = |run: &Path| -> String {
        let ckpt = open_latest(&run.join("checkpoint")).unwrap();
        String::from_utf8(
            ckpt.read_extra(fbrl::distributed::RANKS_FILE)
                .unwrap()
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(ranks(&whole), ranks(&halves));
    println!("2 ranks: 6 updates = 3 + resume + 3, bit for bit (metrics and every rank's state)");
}
