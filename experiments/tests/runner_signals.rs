//! SIGTERM to an experiment binary (what a scheduler sends): it forwards the signal to its
//! training workers, each writes a checkpoint at the update it reached, the binary exits with
//! 143, and the same command later resumes every run to the end.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fbrl::checkpoint::open_latest;

mod common;

use common::rows;

#[test]
fn sigterm_stops_every_worker_with_a_checkpoint_and_the_rerun_resumes() {
    let root = std::env::temp_dir().join(format!("fbrl-e2e-signals-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let preset = root.join("preset.toml");
    std::fs::write(&preset, common::gru_preset("signals", 2, 2000, 1000)).unwrap();
    let args = |extra: &[&str]| {
        let mut a = vec![
            "--preset".to_string(),
            preset.display().to_string(),
            "--quiet".to_string(),
            "--jobs".to_string(),
            "2".to_string(),
            "--out".to_string(),
            root.join("out").display().to_string(),
            "--runs-dir".to_string(),
            root.join("runs").display().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let runs: Vec<_> = (0..2)
        .map(|s| root.join(format!("runs/signals/gridmaze__gru__{s}")))
        .collect();

    let mut child = Command::new(env!("CARGO_BIN_EXE_maze"))
        .args(args(&[]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while runs.iter().any(|r| rows(r) < 3) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the experiment ended early"
        );
        assert!(Instant::now() < deadline, "no progress within 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(err.contains("SIGTERM") && err.contains("resume"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for run in &runs {
        let done = open_latest(&run.join("checkpoint"))
            .unwrap()
            .state
            .updates_done;
        assert_eq!(done, rows(run), "{}: checkpoint vs rows", run.display());
        assert!(done < 2000, "{} finished before the signal", run.display());
        assert!(
            !run.join("lock").exists(),
            "{} kept its lock",
            run.display()
        );
    }

    let o = Command::new(env!("CARGO_BIN_EXE_maze"))
        .args(args(&[]))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("2 to resume"), "{err}");
    for run in &runs {
        assert_eq!(rows(run), 2000, "{}", run.display());
    }
    std::fs::remove_dir_all(root).unwrap();
}
