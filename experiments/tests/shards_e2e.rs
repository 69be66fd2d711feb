//! Sharding a grid over processes that share one runs/ folder: every run is trained exactly
//! once, a killed shard resumes its unfinished run from its checkpoint, and `--report-only`
//! writes the same summary as a single-process invocation.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{rows, temp_dir};

const MAZE: &str = env!("CARGO_BIN_EXE_maze");

fn maze_cmd(preset: &str, runs: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(MAZE);
    c.args(["--preset", preset, "--quiet", "--jobs", "1"])
        .arg("--runs-dir")
        .arg(runs)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env("RUST_BACKTRACE", "0")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX");
    c
}

fn ok(o: Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{what} failed:\n{err}");
    assert!(!err.contains("panicked"), "{what}:\n{err}");
    err
}

/// summary.csv without the timing columns (`steps_per_s`, `wall_time_s_per_run`).
fn summary_without_timing(out: &Path) -> Vec<Vec<String>> {
    let (header, rows) = experiments::report::read_csv(&out.join("summary.csv")).unwrap();
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| !["steps_per_s", "wall_time_s_per_run"].contains(&header[i].as_str()))
        .collect();
    assert!(keep.len() + 2 == header.len(), "{header:?}");
    rows.iter()
        .map(|cells| keep.iter().map(|&i| cells[i].clone()).collect())
        .collect()
}

/// Asserts that the 8 runs under `runs_root` were each started once and never resumed;
/// `context` is added to the message of a failure.
fn assert_each_trained_once(runs_root: &Path, context: &str) {
    let counts = starts_and_resumes(runs_root);
    assert_eq!(counts.len(), 8, "{counts:?}");
    for (run, started, resumed) in &counts {
        assert_eq!(
            (*started, *resumed),
            (1, 0),
            "{run} was trained {started}+{resumed} times{context}"
        );
    }
}

/// How often each run of `runs_root` was started and resumed, from the runner's logs (a start
/// whose worker found the run's lock taken by another process trained nothing, and does not
/// count).
fn starts_and_resumes(runs_root: &Path) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(runs_root.join("logs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&path).unwrap();
            let lost_the_lock = text.matches(" is in use: ").count();
            out.push((
                path.file_stem().unwrap().to_string_lossy().into_owned(),
                text.matches("--- start").count() - lost_the_lock,
                text.matches("--- resume").count(),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn three_shards_at_once_train_every_run_once_and_report_like_one_process() {
    let root = temp_dir("shards");
    let single = root.join("single");
    let o = maze_cmd("tiny", &single, &root.join("out-single"), &[])
        .output()
        .unwrap();
    ok(o, "the single-process run");

    let shared = root.join("shared");
    let children: Vec<_> = (0..3)
        .map(|i| {
            maze_cmd(
                "tiny",
                &shared,
                &root.join(format!("out-{i}")),
                &["--shard", &format!("{i}/3")],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let err = ok(c.wait_with_output().unwrap(), &format!("shard {i}/3"));
        assert!(err.contains(&format!("shard {i}/3:")), "{err}");
        assert!(
            !root.join(format!("out-{i}/summary.csv")).exists(),
            "a shard wrote a report"
        );
    }
    assert_each_trained_once(&shared.join("tiny"), "");

    let report = root.join("out-report");
    let o = maze_cmd("tiny", &shared, &report, &["--report-only"])
        .output()
        .unwrap();
    ok(o, "--report-only");
    assert_eq!(
        summary_without_timing(&report),
        summary_without_timing(&root.join("out-single"))
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn a_killed_shard_resumes_its_run_and_the_report_is_unchanged() {
    let root = temp_dir("shard-kill");
    let preset = root.join("long.toml");
    std::fs::write(&preset, common::gru_preset("long", 4, 300, 20)).unwrap();
    let preset = preset.to_str().unwrap();
    let single_out = root.join("out-single");
    ok(
        maze_cmd(preset, &root.join("single"), &single_out, &[])
            .output()
            .unwrap(),
        "the single-process run",
    );

    let shared = root.join("shared");
    ok(
        maze_cmd(preset, &shared, &root.join("out-0"), &["--shard", "0/2"])
            .output()
            .unwrap(),
        "shard 0/2",
    );
    let mut shard1 = maze_cmd(preset, &shared, &root.join("out-1"), &["--shard", "1/2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Shard 1 of 2 owns seeds 1 and 3 (every other run directory in path order).
    let run1 = shared.join("long/gridmaze__gru__1");
    let deadline = Instant::now() + Duration::from_secs(120);
    while rows(&run1) < 50 {
        assert!(shard1.try_wait().unwrap().is_none(), "shard 1 ended early");
        assert!(Instant::now() < deadline, "no progress within 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    shard1.kill().unwrap(); // SIGKILL: no checkpoint, its worker stops on its own
    shard1.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while fbrl::run_lock::live_holder(&run1).is_some() {
        assert!(
            Instant::now() < deadline,
            "the orphaned worker did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let at_kill = rows(&run1);
    assert!(at_kill < 300, "run 1 finished before the kill");

    let missing = maze_cmd(
        preset,
        &shared,
        &root.join("out-report"),
        &["--report-only"],
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success(), "{err}");
    assert!(
        err.contains("not finished") && err.contains("gridmaze__gru__1"),
        "{err}"
    );

    let err = ok(
        maze_cmd(preset, &shared, &root.join("out-1"), &["--shard", "1/2"])
            .output()
            .unwrap(),
        "shard 1/2 again",
    );
    assert!(err.contains("1 to resume"), "{err}");
    let report = root.join("out-report");
    ok(
        maze_cmd(preset, &shared, &report, &["--report-only"])
            .output()
            .unwrap(),
        "--report-only",
    );
    assert_eq!(
        summary_without_timing(&report),
        summary_without_timing(&single_out)
    );
    std::fs::remove_dir_all(root).unwrap();
}

/// Two whole-grid invocations on one runs/ folder, the second (MLP only) started just after the
/// first: neither clears a run the other trained, neither fails on a run the other holds,
/// every run is trained once, and an invocation that left runs to the other writes no report.
#[test]
fn overlapping_invocations_share_the_runs_without_losing_any() {
    let root = temp_dir("overlap");
    let shared = root.join("runs");
    let all = maze_cmd("tiny", &shared, &root.join("out-all"), &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mlp = maze_cmd(
        "tiny",
        &shared,
        &root.join("out-mlp"),
        &["--policies", "mlp"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let err_mlp = ok(mlp.wait_with_output().unwrap(), "the MLP-only invocation");
    let err_all = ok(all.wait_with_output().unwrap(), "the whole-grid invocation");
    assert_each_trained_once(
        &shared.join("tiny"),
        &format!("\nall:\n{err_all}\nmlp:\n{err_mlp}"),
    );
    // Every run has its full metrics.
    let tiny = shared.join("tiny");
    for entry in std::fs::read_dir(&tiny).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("config.toml").exists() {
            let n = rows(&dir);
            assert!(n > 0, "{} has no metrics rows", dir.display());
        }
    }
    // The whole-grid report is written only by an invocation that saw every run finish.
    let skipped_claimed = err_all.contains("claimed by another process");
    assert_eq!(
        root.join("out-all/summary.csv").exists(),
        !skipped_claimed,
        "{err_all}"
    );
    let o = maze_cmd(
        "tiny",
        &shared,
        &root.join("out-report"),
        &["--report-only"],
    )
    .output()
    .unwrap();
    ok(o, "--report-only after both");
    std::fs::remove_dir_all(root).unwrap();
}

/// Two identical whole-grid invocations started at the same moment: both exit 0 (a run the
/// other claimed is skipped, never a failure), every run is trained once, and the report is
/// written only by an invocation that saw every run finish.
#[test]
fn simultaneous_invocations_both_succeed_and_train_each_run_once() {
    let root = temp_dir("simultaneous");
    let shared = root.join("runs");
    let children: Vec<_> = (0..2)
        .map(|i| {
            maze_cmd("tiny", &shared, &root.join(format!("out-{i}")), &[])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let errs: Vec<String> = children
        .into_iter()
        .enumerate()
        .map(|(i, c)| ok(c.wait_with_output().unwrap(), &format!("invocation {i}")))
        .collect();
    assert_each_trained_once(&shared.join("tiny"), &format!("\n{errs:?}"));
    for (i, err) in errs.iter().enumerate() {
        let skipped_claimed = err.contains("claimed by another process");
        assert_eq!(
            root.join(format!("out-{i}/summary.csv")).exists(),
            !skipped_claimed,
            "{err}"
        );
    }
    std::fs::remove_dir_all(root).unwrap();
}
