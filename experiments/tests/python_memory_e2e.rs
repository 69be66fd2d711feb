//! End to end: the benchmarks binary's `python-memory` suite on its tiny preset (built with
//! `--features python`): both envs made in the embedded Python from `experiments/python/`
//! (which the binary puts on `PYTHONPATH` itself), Transformer and Feedback trained with
//! CleanRL `ppo_trxl`'s settings, then reported (lines, python_memory.csv, summary.csv,
//! README block) and drawn (against env steps and wall-clock time).
//!
//! Needs an interpreter with gymnasium and minigrid in `FBRL_PYTHON`; without one the test
//! prints a loud skip message and passes, unless `FBRL_REQUIRE_PYTHON_ENVS=1`. Run with
//! `cargo test --release -p experiments --features python --test python_memory_e2e`.

mod common;
#[path = "../../envs/tests/common/python.rs"]
mod python_common;

use std::process::Command;

#[test]
fn python_memory_tiny_end_to_end() {
    if !python_common::minigrid_ready("python_memory_tiny_end_to_end") {
        return;
    }
    let root = common::temp_dir("pymem");
    let out = root.join("out");
    let (stdout, _) = common::succeeds(
        Command::new(env!("CARGO_BIN_EXE_benchmarks"))
            .args(["--preset", "tiny", "--suites", "python-memory"])
            .args(["--seeds", "2", "--quiet"])
            .args(common::out_and_runs(&out, &root.join("runs")))
            .env_remove("PYTHONPATH"),
        "benchmarks",
    );
    // Two envs × two policies, reported, none checked.
    assert_eq!(
        stdout.matches("report  python-memory").count(),
        4,
        "{stdout}"
    );
    for line in [
        "python-memory ProofofMemory-v0 transformer",
        "python-memory ProofofMemory-v0 feedback",
        "python-memory MiniGrid-MemoryS9-v0 transformer",
        "python-memory MiniGrid-MemoryS9-v0 feedback",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    assert!(
        !stdout.contains("PASS") && !stdout.contains("FAIL"),
        "{stdout}"
    );

    for env in ["proof_of_memory", "minigrid_memory_s9"] {
        for suffix in ["", "_time"] {
            let png = out.join(format!("python_memory_{env}{suffix}.png"));
            let bytes = std::fs::read(&png).unwrap();
            assert!(bytes.starts_with(b"\x89PNG"), "{}", png.display());
        }
    }
    let svg = std::fs::read_to_string(out.join("python_memory_proof_of_memory.svg")).unwrap();
    assert!(
        svg.contains("best without memory"),
        "the reference lines are drawn"
    );

    let (header, rows) = experiments::report::read_csv(&out.join("python_memory.csv")).unwrap();
    assert_eq!(header[0], "env");
    assert_eq!(rows.len(), 8, "2 envs × 2 policies × 2 seeds: {rows:?}");
    for r in &rows {
        let sps: f64 = r[7].parse().unwrap();
        assert!(sps > 0.0, "{r:?}");
    }
    let (_, rows) = experiments::report::read_csv(&out.join("summary.csv")).unwrap();
    assert_eq!(rows.len(), 4, "{rows:?}");
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(
        readme.contains("| ProofofMemory-v0 | feedback |"),
        "{readme}"
    );

    // The runs record the env as the factory of experiments/python, which the binary put on
    // PYTHONPATH for them.
    let cfg =
        std::fs::read_to_string(root.join("runs/tiny/proof_of_memory__feedback__0/config.toml"))
            .unwrap();
    assert!(cfg.contains("proof_of_memory:make"), "{cfg}");
    std::fs::remove_dir_all(root).unwrap();
}
