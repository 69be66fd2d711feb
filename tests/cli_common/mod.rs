//! Shared helpers of the tests that drive the `fbrl` binary.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The `fbrl` binary under test.
pub const FBRL: &str = env!("CARGO_BIN_EXE_fbrl");

/// The command `fbrl args`, without backtraces.
pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(FBRL);
    c.args(args).env("RUST_BACKTRACE", "0");
    c
}

/// Runs `fbrl args` to completion.
pub fn fbrl(args: &[&str]) -> Output {
    command(args).output().expect("the fbrl binary runs")
}

/// The report of `fbrl args` (an `eval … --json`), asserting that it succeeds.
pub fn eval_report(args: &[&str]) -> serde_json::Value {
    let o = fbrl(args);
    assert!(o.status.success(), "fbrl {args:?} failed:\n{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    json["report"].clone()
}

/// The `update` column of a run's metrics.csv.
pub fn metric_updates(run: &Path) -> Vec<usize> {
    fbrl::metrics::read_metrics(run.join("metrics.csv"))
        .unwrap()
        .iter()
        .map(|row| row.update)
        .collect()
}

/// Its stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Its stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that `fbrl args` fails without a panic and that its stderr names every one of
/// `needles`; returns the stderr.
pub fn assert_fails_naming(args: &[&str], needles: &[&str]) -> String {
    let o = fbrl(args);
    let err = stderr(&o);
    assert!(
        !o.status.success(),
        "fbrl {args:?} should fail; stderr:\n{err}"
    );
    assert!(
        !err.contains("panicked at"),
        "fbrl {args:?} panicked:\n{err}"
    );
    for n in needles {
        assert!(
            err.contains(n),
            "stderr of fbrl {args:?} should name `{n}`:\n{err}"
        );
    }
    err
}

/// Flags of a tiny, fast run of either algorithm: an MLP of width 16 on 4 envs × `num_steps`
/// steps, one thread, quiet.
pub fn tiny_mlp(num_steps: &'static str) -> Vec<&'static str> {
    vec![
        "--policy",
        "mlp",
        "--hidden",
        "16",
        "--num-envs",
        "4",
        "--num-steps",
        num_steps,
        "--threads",
        "1",
        "--quiet",
    ]
}

/// PPO's flags of the tiny runs.
pub const TINY_PPO: [&str; 4] = ["--num-minibatches", "2", "--update-epochs", "2"];

/// A 7×7 GridMaze with a short horizon, so that the episodes of a tiny run end.
pub const TINY_MAZE: [&str; 4] = ["--maze-size", "7", "--horizon", "16"];

/// Flags of a tiny, fast PPO run: MLP on a 7×7 GridMaze with a short horizon so episodes end.
pub fn tiny() -> Vec<&'static str> {
    [tiny_mlp("16"), TINY_PPO.to_vec(), TINY_MAZE.to_vec()].concat()
}
