//! Shared helpers of the tests that drive the `fbrl` binary.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The `fbrl` binary under test.
pub const FBRL: &str = env!("CARGO_BIN_EXE_fbrl");

/// Runs `fbrl args` to completion.
pub fn fbrl(args: &[&str]) -> Output {
    Command::new(FBRL)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the fbrl binary runs")
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

/// Flags of a tiny, fast run: MLP on a 7×7 GridMaze with a short horizon so episodes end.
pub const TINY: &[&str] = &[
    "--policy",
    "mlp",
    "--hidden",
    "16",
    "--num-envs",
    "4",
    "--num-steps",
    "16",
    "--num-minibatches",
    "2",
    "--update-epochs",
    "2",
    "--maze-size",
    "7",
    "--horizon",
    "16",
    "--threads",
    "1",
    "--quiet",
];
