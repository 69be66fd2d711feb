//! Shared helpers of the experiment binaries' end-to-end tests.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A maze preset named `name` whose runs are GRUs of width 16 on the tiny maze: `seeds` seeds
/// of `updates` updates (8 envs × 16 steps), a checkpoint every `checkpoint_every` updates.
/// Long enough to stop mid-run, short enough to finish in seconds.
pub fn gru_preset(name: &str, seeds: u64, updates: usize, checkpoint_every: usize) -> String {
    format!(
        r#"
[experiment]
name = "{name}"
title = "GridMaze multi 7x7, horizon 16"
seeds = {seeds}
final_fraction = 0.5
eval_episodes = 4
reference_episodes = 10
smooth = 1

[train]
total_steps = {total}
num_envs = 8
num_steps = 16
checkpoint_every = {checkpoint_every}

[train.env]
kind = "gridmaze"
size = 7
mode = "multi"
horizon = 16

[train.ppo]
num_minibatches = 2
update_epochs = 1

[[arms]]
name = "gru"
kind = "gru"
d_model = 16
"#,
        total = updates * 8 * 16
    )
}

/// The number of metrics rows a run has logged (0 before its metrics.csv exists).
pub fn rows(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.csv"))
        .map(|s| s.lines().count().saturating_sub(1))
        .unwrap_or(0)
}

/// Writes to `path` the tiny maze preset (`configs/maze_tiny.toml`) with `line` added to its
/// `mlp` arm (e.g. `learning_rate = 1e30`).
pub fn tiny_preset_with_mlp(path: &Path, line: &str) {
    let tiny = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/maze_tiny.toml"),
    )
    .unwrap();
    let arm = "name = \"mlp\"\nkind = \"mlp\"\n";
    let preset = tiny.replace(arm, &format!("{arm}{line}\n"));
    assert_ne!(preset, tiny, "the tiny preset's mlp arm moved");
    std::fs::write(path, preset).unwrap();
}

/// A command running the experiment binary `bin` quietly in 2 jobs on one seed of the `gru`
/// and `mlp` arms of the tiny preset, written to `preset` with `line` added to its `mlp` arm.
pub fn gru_and_mlp_with(bin: &str, preset: &Path, line: &str) -> Command {
    tiny_preset_with_mlp(preset, line);
    let mut c = Command::new(bin);
    c.args([
        "--quiet",
        "--jobs",
        "2",
        "--seeds",
        "1",
        "--policies",
        "gru,mlp",
    ])
    .arg("--preset")
    .arg(preset);
    c
}

/// Runs `cmd` to completion and asserts that it succeeds (`what` names it if not); returns
/// its stdout and stderr.
pub fn succeeds(cmd: &mut Command, what: &str) -> (String, String) {
    let o = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{what} failed:\n{stderr}\n{stdout}");
    (stdout, stderr)
}

/// Runs `cmd` to completion and asserts that it fails; returns its stderr.
pub fn fails(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "{stderr}");
    stderr
}

/// A fresh, empty temporary directory for the test `name` (of this process).
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fbrl-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The arguments that put an experiment binary's report in `out` and its runs in `runs`.
pub fn out_and_runs<'a>(out: &'a Path, runs: &'a Path) -> [&'a OsStr; 4] {
    [
        OsStr::new("--out"),
        out.as_os_str(),
        OsStr::new("--runs-dir"),
        runs.as_os_str(),
    ]
}
