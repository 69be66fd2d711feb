//! End to end: the benchmarks binary on its tiny preset trains every suite (controls included),
//! writes one PNG per suite, summary.csv and the README block, and marks its checks as not
//! checked (the tiny budgets are for the pipeline, not for learning).

mod common;

use std::process::Command;

use common::temp_dir;

const BENCHMARKS: &str = env!("CARGO_BIN_EXE_benchmarks");

#[test]
fn benchmarks_tiny_end_to_end() {
    let root = temp_dir("bench");
    let out = root.join("out");
    let (stdout, _) = common::succeeds(
        Command::new(BENCHMARKS)
            .args(["--preset", "tiny", "--seeds", "2", "--quiet", "--jobs", "2"])
            .args(common::out_and_runs(&out, &root.join("runs"))),
        "benchmarks",
    );
    // Cartpole 1, memory 3, scale 2, pendulum 1, point_cue 4 checks; controls are not
    // checked.
    assert_eq!(
        stdout.matches("not checked (tiny preset)").count(),
        11,
        "{stdout}"
    );
    assert!(stdout.contains("control ×100 with scaling off"), "{stdout}");

    for suite in ["cartpole", "scale", "memory", "pendulum", "point_cue"] {
        let bytes = std::fs::read(out.join(format!("{suite}.png"))).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{suite}.png");
    }
    let svg = std::fs::read_to_string(out.join("cartpole.svg")).unwrap();
    assert!(
        svg.contains("CleanRL ppo.py"),
        "the CleanRL reference line is drawn"
    );

    let svg = std::fs::read_to_string(out.join("pendulum.svg")).unwrap();
    assert!(svg.contains("CleanRL ppo_continuous_action.py"), "{svg}");
    assert!(stdout.contains("point_cue mlp (no memory)"), "{stdout}");

    let (_, rows) = experiments::report::read_csv(&out.join("summary.csv")).unwrap();
    // cartpole 2 (one control), scale 6 (two controls), memory 3, pendulum 1, point_cue 4.
    assert_eq!(rows.len(), 16, "{rows:?}");
    for r in &rows {
        let mean: f64 = r[8].parse().unwrap();
        assert!(mean.is_finite(), "{r:?}");
        assert_eq!(r[7], "2", "two seeds: {r:?}");
    }
    assert_eq!(
        rows.iter().filter(|r| r[4] == "false").count(),
        3,
        "{rows:?}"
    );
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(readme.contains("| cartpole | mlp |"), "{readme}");
    assert!(readme.contains("| pendulum | mlp |"), "{readme}");
    std::fs::remove_dir_all(root).unwrap();
}

/// Without the `python` feature, the python-memory suite is refused with the command that
/// builds it, before any run starts.
#[cfg(not(feature = "python"))]
#[test]
fn python_memory_needs_the_python_feature() {
    let root = temp_dir("bench-py");
    let stderr = common::fails(
        Command::new(BENCHMARKS)
            .args(["--preset", "tiny", "--suites", "python-memory", "--quiet"])
            .args(common::out_and_runs(&root.join("out"), &root.join("runs"))),
    );
    assert!(stderr.contains("--features python"), "{stderr}");
    assert!(!root.join("runs").exists(), "no run started");
    std::fs::remove_dir_all(root).unwrap();
}
