//! End to end: the memory-length binary on its tiny preset, tuning then the study. The study
//! writes the solved-vs-delay PNG (with the span τ marked), one summary row per (policy,
//! delay) with a Wilson interval, one row per run, the Fisher tests of the preset's
//! comparisons, and — the tiny preset naming no results folder — all of it under the runs
//! folder, never into results/.

mod common;

use std::process::Command;

fn run(args: &[&str], root: &std::path::Path) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_memory_length"));
    c.args(["--preset", "tiny", "--quiet", "--jobs", "2"])
        .args(args)
        .arg("--runs-dir")
        .arg(root.join("runs"));
    common::succeeds(&mut c, "memory_length").0
}

#[test]
fn memory_length_tiny_end_to_end() {
    let root = common::temp_dir("memlen");
    let read = |p: std::path::PathBuf| experiments::report::read_csv(&p).unwrap().1;

    // Tuning: 4 arms × 2 rates × 1 seed at delay 2, on the tuning seeds (1000, …).
    let stdout = run(
        &[
            "--tune-lrs",
            "1e-3,2e-3",
            "--tune-delay",
            "2",
            "--seeds",
            "1",
        ],
        &root,
    );
    let tuning = root.join("runs/tiny-tuning/report");
    let rows = read(tuning.join("tuning.csv"));
    assert_eq!(rows.len(), 4 * 2, "{rows:?}");
    for arm in ["feedback", "transformer", "gru", "mlp"] {
        let mine: Vec<_> = rows.iter().filter(|r| r[0] == arm).collect();
        assert_eq!(mine.len(), 2);
        assert_eq!(mine.iter().filter(|r| r[8] == "1").count(), 1, "{mine:?}");
        assert!(
            stdout.contains(&format!("{arm}: learning_rate = ")),
            "{stdout}"
        );
    }
    let seeds = read(tuning.join("seeds.csv"));
    assert!(
        seeds.iter().all(|r| r[3] == "1000" && r[1] == "2"),
        "{seeds:?}"
    );
    assert_eq!(read(tuning.join("chosen.csv")).len(), 4);

    // The study: 4 arms × delays 2 and 6 × 1 seed, written to the default (untracked) folder.
    run(&[], &root);
    let out = root.join("runs/tiny/report");
    let file = std::fs::File::open(out.join("success_vs_delay.png")).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), fbrl::plot::DEFAULT_SIZE);
    let svg = std::fs::read_to_string(out.join("success_vs_delay.svg")).unwrap();
    assert!(svg.contains("attention span τ (4)"), "no span line");

    let rows = read(out.join("success_vs_delay.csv"));
    assert_eq!(rows.len(), 4 * 2, "{rows:?}");
    for r in &rows {
        assert!(["feedback", "transformer", "gru", "mlp"].contains(&r[0].as_str()));
        assert!(["2", "6"].contains(&r[1].as_str()));
        assert_eq!(r[3], "1");
        let (k, frac): (u64, f64) = (r[4].parse().unwrap(), r[5].parse().unwrap());
        let (lo, hi): (f64, f64) = (r[6].parse().unwrap(), r[7].parse().unwrap());
        assert!(k <= 1 && frac == k as f64, "{r:?}");
        // Wilson bounds of 0/1 and 1/1: [0, 0.7935] and [0.2065, 1].
        assert!(0.0 <= lo && lo <= frac && frac <= hi && hi <= 1.0, "{r:?}");
        assert!((hi - lo - 0.7935).abs() < 1e-3, "{r:?}");
    }
    // Rollouts hold two of the longest episodes, with the batch (8 × 32) kept: delay 2
    // (longest 7) → 16 envs × 16 steps, delay 6 (longest 11) → 8 envs × 32 steps.
    let seeds = read(out.join("seeds.csv"));
    assert_eq!(seeds.len(), 8);
    for r in &seeds {
        let want = if r[1] == "2" {
            ["16", "16"]
        } else {
            ["8", "32"]
        };
        assert_eq!([r[4].as_str(), r[5].as_str()], want, "{r:?}");
        let solved = r[6].parse::<f64>().unwrap() >= 0.9;
        assert_eq!(r[9], if solved { "1" } else { "0" }, "{r:?}");
    }
    let fisher = read(out.join("fisher.csv"));
    assert_eq!(fisher.len(), 2, "one comparison at two delays: {fisher:?}");
    for r in &fisher {
        assert_eq!((r[1].as_str(), r[4].as_str()), ("feedback", "transformer"));
        let p: f64 = r[7].parse().unwrap();
        // 1 seed each: p = 1 whatever the outcomes.
        assert!((p - 1.0).abs() < 1e-9, "{r:?}");
    }
    assert_eq!(read(out.join("curves.csv")).len(), 8);
    assert!(!std::path::Path::new("results/memory_length/tiny").exists());
    std::fs::remove_dir_all(root).unwrap();
}
