//! Runs that survive people, through the `fbrl` binary: two processes on one run, `eval` while
//! the run trains and rotates checkpoints, SIGINT / SIGTERM, and values that must be refused
//! rather than clamped or allowed to abort. Every failure must name its file, key or process,
//! and nothing may panic.
//!
//! Run with `cargo test --release -p fbrl --test run_safety`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fbrl::checkpoint::open_latest;
use fbrl::metrics::{MetricsRow, read_metrics};

mod cli_common;

use cli_common::{FBRL, assert_fails_naming, fbrl, stderr, tiny};

/// A tiny MLP run of `updates` updates (4 envs × 16 steps) in `run`, checkpointing every
/// `every` updates.
fn train_args(run: &Path, updates: usize, every: usize) -> Vec<String> {
    ["train", "--seed", "4"]
        .into_iter()
        .chain(tiny())
        .map(|s| s.to_string())
        .chain([
            "--total-steps".to_string(),
            (updates * 64).to_string(),
            "--checkpoint-every".to_string(),
            every.to_string(),
            "--run-dir".to_string(),
            run.display().to_string(),
        ])
        .collect()
}

fn spawn(args: &[String]) -> Child {
    Command::new(FBRL)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `run` has at least `rows` metrics rows (the child must still be running).
fn wait_for_rows(child: &mut Child, run: &Path, rows: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = std::fs::read_to_string(run.join("metrics.csv"))
            .map(|s| s.lines().count().saturating_sub(1))
            .unwrap_or(0);
        if n >= rows {
            return;
        }
        assert!(child.try_wait().unwrap().is_none(), "training ended early");
        assert!(Instant::now() < deadline, "no progress within 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Trains `updates` updates in `run` (a checkpoint every `every`) to the end; asserts that it
/// succeeds.
fn train(run: &Path, updates: usize, every: usize) {
    let args = train_args(run, updates, every);
    let o = fbrl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Starts training `updates` updates in `run` (a checkpoint every `every`) and returns the
/// process once it has logged `rows` rows.
fn start_training(run: &Path, updates: usize, every: usize, rows: usize) -> Child {
    let mut child = spawn(&train_args(run, updates, every));
    wait_for_rows(&mut child, run, rows);
    child
}

/// Every column but the wall-clock ones, as bits.
fn key(r: &MetricsRow) -> Vec<u64> {
    vec![
        r.update as u64,
        r.env_steps,
        r.episodes as u64,
        r.return_mean.to_bits(),
        r.policy_loss.to_bits(),
        r.value_loss.to_bits(),
        r.entropy.to_bits(),
        r.learner.values[0].to_bits(),
        r.grad_norm.to_bits(),
    ]
}

fn rows(run: &Path) -> Vec<Vec<u64>> {
    read_metrics(run.join("metrics.csv"))
        .unwrap()
        .iter()
        .map(key)
        .collect()
}

fn reference_rows(dir: &Path, updates: usize) -> Vec<Vec<u64>> {
    let run = dir.join("reference");
    train(&run, updates, 1000);
    rows(&run)
}

fn kill(child: &Child, signal: &str) {
    let ok = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {signal} failed");
}

#[test]
fn a_second_process_on_a_training_run_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let updates = 1500;
    let first = start_training(&run, updates, 5, 6);
    let run_s = run.to_str().unwrap();
    for _ in 0..3 {
        let err = assert_fails_naming(
            &["train", "--resume", run_s, "--quiet"],
            &["is in use", &format!("process {}", first.id()), "lock"],
        );
        assert!(err.contains(run_s), "{err}");
    }
    // eval is a reader: it does not need the lock and works meanwhile.
    let o = fbrl(&["eval", run_s, "--episodes", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = rows(&run);
    assert_eq!(got.len(), updates, "metrics.csv lost rows");
    assert_eq!(got, reference_rows(dir.path(), updates));
    assert_eq!(
        open_latest(&run.join("checkpoint"))
            .unwrap()
            .state
            .updates_done,
        updates
    );
    assert!(
        !run.join("lock").exists(),
        "the lock is released at the end"
    );
}

#[test]
fn eval_while_the_run_rotates_its_checkpoint_every_update_never_fails() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut trainer = start_training(&run, 1_000_000, 1, 2);
    let run_s = run.to_str().unwrap();
    let mut calls = 0;
    while calls < 200 {
        let o = fbrl(&["eval", run_s, "--episodes", "1"]);
        let err = stderr(&o);
        assert!(o.status.success(), "eval call {calls} failed:\n{err}");
        assert!(!err.contains("panicked"), "{err}");
        calls += 1;
    }
    assert!(
        trainer.try_wait().unwrap().is_none(),
        "training ended early"
    );
    kill(&trainer, "-TERM");
    let out = trainer.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143));
}

fn stop_with(signal: &str, code: i32) {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let updates = 300;
    let child = start_training(&run, updates, 1000, 5);
    kill(&child, signal);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let run_s = run.to_str().unwrap();
    assert!(
        err.contains("checkpoint written") && err.contains(&format!("--resume {run_s}")),
        "{err}"
    );
    // The checkpoint is at the update the run had reached: every logged row is covered.
    let at_stop = rows(&run).len();
    assert!(at_stop >= 5 && at_stop < updates, "{at_stop} rows");
    let ckpt = open_latest(&run.join("checkpoint")).unwrap();
    assert_eq!(ckpt.state.updates_done, at_stop, "{err}");
    assert!(!run.join("lock").exists(), "the lock is released");

    let o = fbrl(&["train", "--resume", run_s, "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(rows(&run), reference_rows(dir.path(), updates));
}

/// A signal that arrives during a long update stops the run within the grace period plus one
/// minibatch: the update under way is dropped, the run resumes from its last checkpoint, and
/// the resumed run gives the rows of an uninterrupted one.
#[test]
fn sigterm_during_a_long_update_drops_it_and_resume_redoes_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let long_updates = |run: &Path| {
        // 64 one-step sequences in 64 minibatches, 200 epochs: 12,800 optimizer steps, far
        // longer than the half-second grace the test sets.
        let mut args = train_args(run, 2, 1);
        for (flag, value) in [("--update-epochs", "200"), ("--num-minibatches", "64")] {
            let i = args.iter().position(|a| a == flag).unwrap();
            args[i + 1] = value.to_string();
        }
        args.extend(["--seq-len".to_string(), "1".to_string()]);
        args
    };
    let mut child = Command::new(FBRL)
        .args(long_updates(&run))
        .env("RUST_BACKTRACE", "0")
        .env(fbrl::trainer::STOP_GRACE_ENV, "0.5")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_rows(&mut child, &run, 1);
    // The second update's rollout takes milliseconds, its optimizer steps far longer than
    // the grace period.
    std::thread::sleep(Duration::from_millis(300));
    kill(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("after update 1 of 2") && err.contains("the update under way was dropped"),
        "{err}"
    );
    assert_eq!(rows(&run).len(), 1, "{err}");
    assert!(!run.join("lock").exists(), "the lock is released");

    let run_s = run.to_str().unwrap();
    let o = fbrl(&["train", "--resume", run_s, "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let reference = dir.path().join("reference");
    let o = fbrl(
        &long_updates(&reference)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(rows(&run), rows(&reference));
}

#[test]
fn sigint_checkpoints_and_resume_continues_bitwise() {
    stop_with("-INT", 130);
}

#[test]
fn sigterm_checkpoints_and_resume_continues_bitwise() {
    stop_with("-TERM", 143);
}

#[test]
fn a_killed_run_without_a_checkpoint_resumes_from_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let updates = 200;
    // Checkpoints only at the end (`--checkpoint-every 0`): a SIGKILL mid-run leaves none.
    let mut child = start_training(&run, updates, 0, 3);
    child.kill().unwrap(); // SIGKILL: no handler runs, the lock file stays behind
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(run.join("checkpoint"));
    assert!(
        run.join("lock").exists(),
        "a SIGKILLed process leaves its lock"
    );
    let o = fbrl(&["train", "--resume", run.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("no checkpoint yet"), "{err}");
    assert_eq!(rows(&run), reference_rows(dir.path(), updates));
}

#[test]
fn values_that_cannot_be_honoured_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // The base arguments with the flags of `extra` (pairs FLAG VALUE) replaced.
    let with = |extra: &[&str]| -> Vec<String> {
        let mut a = train_args(&run, 3, 1);
        for pair in extra.chunks(2) {
            if let Some(i) = a.iter().position(|x| x == pair[0]) {
                a.drain(i..i + 2);
            }
        }
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let check = |extra: &[&str], needles: &[&str]| {
        let args = with(extra);
        assert_fails_naming(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            needles,
        );
        assert!(!run.exists(), "{extra:?}: the run folder was created");
    };
    check(
        &["--seed", "12345678901234567890"],
        &["--seed", "12345678901234567890"],
    );
    check(
        &["--total-steps", "18446744073709551615"],
        &["--total-steps"],
    );
    check(&["--threads", "100000"], &["`threads`", "100000"]);
    check(
        &["--num-envs", "400000000", "--total-steps", "6400000000"],
        &["num_envs", "memory"],
    );
    check(
        &["--policy", "feedback", "--span", "2000000000"],
        &["span", "memory"],
    );
    check(&["--hidden", "4000000000"], &["hidden", "memory"]);
    check(
        &["--update-epochs", "9223372036854775807"],
        &["ppo.update_epochs", "1..=1000"],
    );

    // A trained run: absurd evaluation sizes are refused too.
    train(&run, 3, 1);
    let run_s = run.to_str().unwrap();
    assert_fails_naming(
        &["eval", run_s, "--episodes", "100000000000"],
        &["--episodes 100000000000", "memory"],
    );
}

fn corrupt_line(path: &PathBuf, line: usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[line] = "this is not a row".to_string();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn damaged_or_edited_run_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    train(&run, 6, 3);
    // Stop at update 4: the checkpoint (update 3) covers rows 1–3.
    let rows_text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();

    // A garbage line in the middle of metrics.csv (update 2's row) is blamed on update 2.
    corrupt_line(&run.join("metrics.csv"), 2);
    let latest = run.join("checkpoint/latest");
    std::fs::write(&latest, "update_000003\n").unwrap();
    let keep = run.join("checkpoint/update_000003");
    assert!(keep.is_dir(), "the previous checkpoint is kept");
    assert_fails_naming(
        &["train", "--resume", run_s, "--quiet"],
        &["metrics.csv", "line 3", "update 2"],
    );
    std::fs::write(run.join("metrics.csv"), &rows_text).unwrap();

    // A hand-edited config.toml is refused on resume, naming the key.
    let cfg_path = run.join("config.toml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    assert!(cfg.contains("update_epochs = 2"), "{cfg}");
    std::fs::write(
        &cfg_path,
        cfg.replace("update_epochs = 2", "update_epochs = 3"),
    )
    .unwrap();
    assert_fails_naming(
        &["train", "--resume", run_s, "--quiet"],
        &["ppo.update_epochs", "config.toml", "update_000003"],
    );
    std::fs::write(&cfg_path, cfg).unwrap();

    // plot: a NaN reference is refused; the same run twice is one seed.
    let png = dir.path().join("p.png");
    let png_s = png.to_str().unwrap();
    assert_fails_naming(
        &["plot", run_s, "-o", png_s, "--ref", "x=nan"],
        &["x=nan", "finite"],
    );
    let o = fbrl(&["plot", run_s, &format!("{run_s}/"), "-o", png_s]);
    assert!(o.status.success(), "{}", stderr(&o));
    let svg = std::fs::read_to_string(png.with_extension("svg")).unwrap();
    assert!(svg.contains("(n=1)"), "the run was counted twice");
}

#[test]
fn resuming_a_finished_run_with_tensorboard_adds_no_event_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut args = train_args(&run, 2, 1);
    args.push("--tensorboard".into());
    let o = Command::new(FBRL).args(&args).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let event_files = || {
        std::fs::read_dir(run.join("tensorboard"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("tfevents"))
            .count()
    };
    assert_eq!(event_files(), 1);
    for _ in 0..2 {
        let o = fbrl(&["train", "--resume", run.to_str().unwrap(), "--tensorboard"]);
        let err = stderr(&o);
        assert!(o.status.success() && !err.contains("panicked at"), "{err}");
    }
    assert_eq!(event_files(), 1);
}
