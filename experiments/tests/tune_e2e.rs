//! End to end: the tune binary on the tiny preset trains every arm × learning rate × entropy
//! coefficient × seed in worker processes, skips finished runs when run again, and writes the
//! tables, one heat map per arm and the README block.

mod common;

use std::path::Path;
use std::process::Command;

use common::{fails, succeeds, temp_dir};

const TUNE: &str = env!("CARGO_BIN_EXE_tune");

fn tune(out: &Path, runs: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(TUNE);
    c.args(["--preset", "tiny", "--quiet", "--jobs", "2", "--seeds", "2"])
        .args(["--policies", "feedback,mlp", "--lrs", "0.001,0.002"])
        .args(["--ent-coefs", "0,0.01"])
        .args(common::out_and_runs(out, runs))
        .args(extra);
    c
}

#[test]
fn tune_tiny_end_to_end() {
    let root = temp_dir("tune");
    let (out, runs) = (root.join("out"), root.join("runs"));
    let (stdout, stderr) = succeeds(&mut tune(&out, &runs, &[]), "tune");
    // 2 arms × 2 learning rates × 2 entropy coefficients × 2 seeds.
    assert!(stderr.contains("= 16 runs"), "{stderr}");
    assert!(
        runs.join("tiny/feedback__lr0.002__ent0.01__1/metrics.csv")
            .exists()
    );
    for arm in ["feedback", "mlp"] {
        assert!(
            stdout.contains(&format!("  {arm}: learning_rate = ")),
            "{stdout}"
        );
        assert!(out.join(format!("heatmap_{arm}.png")).exists());
        assert!(out.join(format!("heatmap_{arm}.svg")).exists());
    }
    let tuning = std::fs::read_to_string(out.join("tuning.csv")).unwrap();
    assert_eq!(tuning.lines().count(), 1 + 8, "{tuning}");
    let chosen = std::fs::read_to_string(out.join("chosen.csv")).unwrap();
    assert_eq!(chosen.lines().count(), 1 + 2, "{chosen}");
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(
        readme.contains("--preset tiny") && readme.contains("**←**"),
        "{readme}"
    );

    // Run again: every run is finished, nothing is trained, the report is rewritten.
    let (_, stderr) = succeeds(&mut tune(&out, &runs, &[]), "second tune");
    assert!(
        stderr.contains("16 finished already, 0 to resume, 0 to start"),
        "{stderr}"
    );

    // A value the sweep cannot use is refused before anything runs, naming the flag.
    let bad_lrs = |lrs: &str| {
        fails(&mut tune(
            &root.join("out-bad"),
            &root.join("runs-bad"),
            &["--lrs", lrs],
        ))
    };
    let stderr = bad_lrs("0.001,-1");
    assert!(
        stderr.contains("--lrs: -1 is not a valid value"),
        "{stderr}"
    );
    assert!(!root.join("runs-bad").exists());
    // So is one value written twice, which would train the same runs twice.
    let stderr = bad_lrs("1e-3,0.001");
    assert!(stderr.contains("--lrs: 0.001 is listed twice"), "{stderr}");
    assert!(!root.join("runs-bad").exists());
}

/// A learning rate that blows the weights up is a result of the sweep, not a crash: the other
/// settings are trained and scored, the diverged one is marked in the tables and never chosen,
/// and a second invocation does not train it again.
#[test]
fn a_diverging_learning_rate_is_reported_and_the_sweep_goes_on() {
    let root = temp_dir("tune-diverge");
    let (out, runs) = (root.join("out"), root.join("runs"));
    let sweep = || {
        let mut c = Command::new(TUNE);
        c.args(["--preset", "tiny", "--quiet", "--jobs", "2", "--seeds", "1"])
            .args([
                "--policies",
                "mlp",
                "--lrs",
                "0.001,1e30",
                "--ent-coefs",
                "0.01",
            ])
            .args(common::out_and_runs(&out, &runs));
        c
    };
    let (stdout, stderr) = succeeds(&mut sweep(), "tune");
    assert!(!stderr.contains("panicked at"), "{stderr}");
    assert!(
        stderr.contains("diverged mlp lr 1000000000000000000000000000000"),
        "{stderr}"
    );
    assert!(stderr.contains("(1 run(s) diverged)"), "{stderr}");
    assert!(stdout.contains("  mlp: learning_rate = 0.001,"), "{stdout}");
    let marker = runs.join("tiny/mlp__lr1000000000000000000000000000000__ent0.01__0/diverged.txt");
    let text = std::fs::read_to_string(&marker).unwrap();
    assert!(
        text.starts_with("update ") && text.contains("non-finite"),
        "{text}"
    );

    let tuning = std::fs::read_to_string(out.join("tuning.csv")).unwrap();
    let row = tuning
        .lines()
        .find(|l| l.starts_with("mlp,1000000000000000000000000000000,"))
        .unwrap_or_else(|| panic!("{tuning}"));
    // Columns: policy, lr, ent, seeds, finals, diverged_at_update, mean, ci low, ci high.
    let cells: Vec<&str> = row.split(',').collect();
    assert_eq!(cells[4], "", "{row}");
    assert!(cells[5].parse::<usize>().unwrap() >= 1, "{row}");
    assert_eq!(cells[6], "", "{row}");
    let chosen = std::fs::read_to_string(out.join("chosen.csv")).unwrap();
    assert!(
        chosen.lines().nth(1).unwrap().starts_with("mlp,0.001,"),
        "{chosen}"
    );
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(
        readme.contains("diverged (1 of 1 seeds; update "),
        "{readme}"
    );

    // Again: both runs are done (one trained, one diverged); nothing is trained.
    let (_, stderr) = succeeds(&mut sweep(), "second tune");
    assert!(
        stderr.contains("2 finished already, 0 to resume, 0 to start"),
        "{stderr}"
    );

    // Only diverging settings: a clear error naming the arm, no panic.
    let stderr = fails(
        Command::new(TUNE)
            .args(["--preset", "tiny", "--quiet", "--jobs", "1", "--seeds", "1"])
            .args(["--policies", "mlp", "--lrs", "1e30", "--ent-coefs", "0.01"])
            .args(common::out_and_runs(&root.join("out-all"), &runs)),
    );
    assert!(!stderr.contains("panicked at"), "{stderr}");
    assert!(
        stderr.contains("arm mlp: every setting diverged"),
        "{stderr}"
    );
}

/// `--lr-factors` tries multiples of each arm's own learning rate: arms with different rates
/// get their own grids, each named by its rates.
#[test]
fn lr_factors_scale_each_arms_own_rate() {
    let root = temp_dir("tune-factors");
    let path = root.join("maze_factors.toml");
    let (_, stderr) = succeeds(
        common::gru_and_mlp_with(TUNE, &path, "learning_rate = 3e-3")
            .args(["--lr-factors", "0.5,2,mlp:4", "--ent-coefs", "0.01"])
            .arg("--runs-dir")
            .arg(root.join("runs")),
        "tune",
    );
    assert!(stderr.contains("= 5 runs"), "{stderr}");
    let mut dirs: Vec<String> = std::fs::read_dir(root.join("runs/tiny"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("__lr"))
        .collect();
    dirs.sort();
    // The GRU has no rate of its own: the preset's PPO rate (2.5e-4) scaled.
    assert_eq!(
        dirs,
        [
            "gru__lr0.000125__ent0.01__0",
            "gru__lr0.0005__ent0.01__0",
            "mlp__lr0.0015__ent0.01__0",
            "mlp__lr0.006__ent0.01__0",
            "mlp__lr0.012__ent0.01__0"
        ],
        "{stderr}"
    );
    let tuning = std::fs::read_to_string(root.join("runs/tiny/report/tuning.csv")).unwrap();
    assert!(tuning.contains("\nmlp,0.006,0.01,1,"), "{tuning}");
    // A factor for an arm that is not tuned is refused, naming it.
    let stderr = fails(Command::new(TUNE).args([
        "--preset",
        "tiny",
        "--policies",
        "mlp",
        "--lr-factors",
        "1,gru:2",
    ]));
    assert!(
        stderr.contains("`gru` in `gru:2` is not one of the arms"),
        "{stderr}"
    );
    // Both ways of giving the rates at once is refused.
    let stderr =
        fails(Command::new(TUNE).args(["--preset", "tiny", "--lrs", "0.001", "--lr-factors", "2"]));
    assert!(stderr.contains("--lr-factors"));
    std::fs::remove_dir_all(root).unwrap();
}
