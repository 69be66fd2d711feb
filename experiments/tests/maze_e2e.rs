//! End to end: the maze binary on the tiny preset trains every policy × seed in worker
//! processes, can be stopped and resumed, and writes decodable PNGs, SVGs and the CSVs.

mod common;

use std::path::Path;
use std::process::Command;

use common::{fails, succeeds, temp_dir};
use experiments::report::read_csv;

const MAZE: &str = env!("CARGO_BIN_EXE_maze");

fn maze(out: &Path, runs: &Path, extra: &[&str]) -> String {
    let mut c = Command::new(MAZE);
    c.args(["--preset", "tiny", "--quiet", "--jobs", "2"])
        .args(common::out_and_runs(out, runs))
        .args(extra);
    succeeds(&mut c, "maze").1
}

fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    (info.width, info.height)
}

fn metrics_rows(dir: &Path) -> Vec<u64> {
    csv::Reader::from_path(dir.join("metrics.csv"))
        .unwrap()
        .records()
        .map(|r| r.unwrap()[0].parse().unwrap())
        .collect()
}

#[test]
fn maze_tiny_end_to_end_with_resume() {
    let root = temp_dir("maze");
    let (out, runs) = (root.join("out"), root.join("runs"));

    // Stop every run after 1 of its 3 updates, then resume them all.
    let log = maze(&out, &runs, &["--stop-after-updates", "1"]);
    assert!(log.contains("8 to start"), "{log}");
    let run = runs.join("tiny/gridmaze__feedback__1");
    assert_eq!(metrics_rows(&run), vec![1]);
    assert!(!out.join("summary.csv").exists());
    let log = maze(&out, &runs, &[]);
    assert!(log.contains("8 to resume"), "{log}");
    // The resumed curve continues without duplicated or lost rows.
    assert_eq!(metrics_rows(&run), vec![1, 2, 3]);

    for name in ["reward_curve", "reward_vs_time", "final_reward_bar"] {
        assert_eq!(
            png_size(&out.join(format!("{name}.png"))),
            fbrl::plot::DEFAULT_SIZE
        );
        let svg = std::fs::read_to_string(out.join(format!("{name}.svg"))).unwrap();
        assert!(
            svg.contains("BFS oracle"),
            "{name}.svg lacks the oracle line"
        );
    }
    let (_, rows) = read_csv(&out.join("summary.csv")).unwrap();
    let policies: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        policies,
        ["feedback", "transformer", "gru", "mlp"],
        "{rows:?}"
    );
    for cells in &rows {
        assert_eq!(cells[4], "2", "two seeds: {cells:?}");
        let mean: f64 = cells[5].parse().unwrap();
        assert!((0.0..=16.0).contains(&mean), "goals per episode {mean}");
    }
    let (_, generalisation) = read_csv(&out.join("generalisation.csv")).unwrap();
    assert_eq!(generalisation.len(), 4, "{generalisation:?}");
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(readme.contains("--preset tiny") && readme.contains("logical cores"));
    // Every run's numbers and curve, and the Welch tests of the first arm against each other.
    let (header, seeds) = read_csv(&out.join("seeds.csv")).unwrap();
    assert_eq!(seeds.len(), 8, "{seeds:?}");
    assert_eq!(&header[..4], ["policy", "seed", "final_goals", "auc_goals"]);
    for row in &seeds {
        let auc: f64 = row[3].parse().unwrap();
        assert!((0.0..=16.0).contains(&auc), "{row:?}");
    }
    let (_, curves) = read_csv(&out.join("curves.csv")).unwrap();
    assert_eq!(curves.len(), 8 * 3, "3 updates per run");
    let (_, welch) = read_csv(&out.join("welch.csv")).unwrap();
    let pairs: Vec<(&str, &str)> = welch
        .iter()
        .filter(|r| r[2] == "final")
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("feedback", "transformer"),
            ("feedback", "gru"),
            ("feedback", "mlp")
        ]
    );
    for r in welch.iter().filter(|r| !r[8].is_empty()) {
        let p: f64 = r[8].parse().unwrap();
        assert!((0.0..=1.0).contains(&p), "{r:?}");
    }
    assert!(readme.contains("| feedback | mlp |"), "{readme}");

    // A third call trains nothing and redraws the same tables.
    let log = maze(&out, &runs, &[]);
    assert!(log.contains("8 finished already"), "{log}");
    assert_eq!(read_csv(&out.join("summary.csv")).unwrap().1.len(), 4);

    // The depth comparison: parameter counts in the legend; its `transformer` arm is the main
    // comparison's (same name and config), so only the other two arms train.
    let log = maze(&out, &runs, &["--experiment", "depth", "--seeds", "1"]);
    assert!(
        log.contains("1 finished already, 0 to resume, 2 to start"),
        "{log}"
    );
    let svg = std::fs::read_to_string(out.join("depth/reward_curve.svg")).unwrap();
    assert!(svg.contains("feedback L=1 ·") && svg.contains("transformer L=2 ·"));
    assert!(svg.contains("params (n=1)"));

    // The ablations: the default arm's runs are the main comparison's, the variants train.
    let log = maze(&out, &runs, &["--experiment", "ablations"]);
    assert!(
        log.contains("2 finished already") && log.contains("4 to start"),
        "{log}"
    );
    let (_, rows) = read_csv(&out.join("ablations/summary.csv")).unwrap();
    let arms: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        arms,
        ["feedback", "feedback_top_layer", "feedback_null_slot"]
    );
    assert!(out.join("ablations/final_reward_bar.png").is_file());

    // Finished runs of another config (an edited preset) are never silently reused.
    let preset = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/maze_tiny.toml"
    ))
    .unwrap();
    let edited = root.join("tiny_edited.toml");
    std::fs::write(
        &edited,
        preset.replace("update_epochs = 2", "update_epochs = 3"),
    )
    .unwrap();
    let stderr = fails(
        Command::new(MAZE)
            .arg("--preset")
            .arg(&edited)
            .args(["--quiet", "--out"])
            .arg(&out)
            .arg("--runs-dir")
            .arg(&runs),
    );
    assert!(
        stderr.contains("`ppo.update_epochs`") && stderr.contains("gridmaze__feedback__0"),
        "{stderr}"
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn unknown_policy_is_a_clear_error() {
    let root = temp_dir("bad");
    let stderr = fails(
        Command::new(MAZE)
            .args(["--preset", "tiny", "--quiet", "--policies", "feedback,lstm"])
            .args(common::out_and_runs(&root.join("out"), &root.join("runs"))),
    );
    assert!(
        stderr.contains("`lstm`") && stderr.contains("arms:"),
        "{stderr}"
    );
    let stderr = fails(Command::new(MAZE).args(["--preset", "nope"]));
    assert!(stderr.contains("maze_nope.toml"), "{stderr}");
    // A seed count that would only exhaust memory is refused at once, with or without
    // --report-only, before any folder is made.
    for extra in [&[][..], &["--report-only"][..]] {
        let stderr = fails(
            Command::new(MAZE)
                .args(["--preset", "tiny", "--quiet", "--seeds", "1000000000"])
                .args(extra)
                .args(common::out_and_runs(
                    &root.join("out-seeds"),
                    &root.join("runs-seeds"),
                )),
        );
        assert!(
            stderr.contains("--seeds 1000000000 is more than"),
            "{stderr}"
        );
        assert!(!root.join("runs-seeds").exists());
    }
    std::fs::remove_dir_all(root).unwrap();
}

/// An arm whose learning rate blows the weights up: every other run is still trained, and the
/// report, which needs every run trained to its end, is refused with the diverged run named.
#[test]
fn a_diverged_run_is_named_and_the_report_refused() {
    let root = temp_dir("diverge");
    let path = root.join("maze_diverge.toml");
    let stderr = fails(
        common::gru_and_mlp_with(MAZE, &path, "learning_rate = 1e30")
            .args(common::out_and_runs(&root.join("out"), &root.join("runs"))),
    );
    assert!(!stderr.contains("panicked at"), "{stderr}");
    assert!(
        stderr.contains("stopped on a non-finite loss or gradient")
            && stderr.contains("gridmaze__mlp__0")
            && stderr.contains("lower the learning rate"),
        "{stderr}"
    );
    assert_eq!(
        metrics_rows(&root.join("runs/tiny/gridmaze__gru__0")).len(),
        3
    );
    assert!(!root.join("out/summary.csv").exists());
    std::fs::remove_dir_all(root).unwrap();
}

/// A quick look never overwrites a committed results folder: a preset without
/// `experiment.out` (tiny, quick) reports under its runs folder unless `--out` is given, for
/// the maze comparison and the tuning sweep alike.
#[test]
fn quick_presets_report_under_the_runs_folder_by_default() {
    let root = temp_dir("default-out");
    // `bin` on one seed of the tiny preset's MLP, without `--out`, run in `root`.
    let quick = |bin: &str, runs: &Path, extra: &[&str]| {
        let mut c = Command::new(bin);
        c.args([
            "--preset",
            "tiny",
            "--quiet",
            "--seeds",
            "1",
            "--policies",
            "mlp",
        ])
        .args(extra)
        .arg("--runs-dir")
        .arg(runs)
        .current_dir(&root);
        succeeds(&mut c, bin);
    };
    let runs = root.join("runs");
    quick(MAZE, &runs, &[]);
    assert!(runs.join("tiny/report/summary.csv").exists());
    assert!(!root.join("results").exists());
    quick(
        env!("CARGO_BIN_EXE_tune"),
        &root.join("tune-runs"),
        &["--lrs", "0.001", "--ent-coefs", "0.01"],
    );
    assert!(root.join("tune-runs/tiny/report/tuning.csv").exists());
    assert!(!root.join("results").exists());
    std::fs::remove_dir_all(root).unwrap();
}
