//! Resume tests: an interrupted run continued with `--resume` gives exactly the metrics rows of
//! an uninterrupted run (bitwise, except the wall-clock columns `wall_time_s` and
//! `steps_per_s`), both after a clean stop and after a SIGKILL of the training process, with
//! the reward and observation normalisers on (their statistics travel in the checkpoint).

mod ppo_common;

use std::process::Command;
use std::time::{Duration, Instant};

use agents::{CriticKind, PolicyConfig, PolicyKind};
use envs::GridMazeConfig;
use fbrl::metrics::{MetricsRow, read_metrics};
use fbrl::{EnvConfig, TrainConfig, TrainOptions, train_from_config};
use ppo_common::{bits, maze_cfg, resume_to_end, row_bits, train_rows, train_until};

fn small_cfg(kind: PolicyKind, updates: usize) -> TrainConfig {
    TrainConfig {
        seed: 5,
        ..maze_cfg(PolicyConfig::small(kind, 32, 8), 24, 8, 16, updates)
    }
}

/// Asserts that the rows `b` are the rows `a` in every column but the wall-clock ones
/// (bitwise, NaN equal to NaN); `what` names them.
fn assert_same_rows(a: &[MetricsRow], b: &[MetricsRow], what: &str) {
    let key = |r: &MetricsRow| {
        let mut v = row_bits(r);
        v.extend(r.counts.iter().map(|(_, x)| bits(x)));
        v
    };
    ppo_common::assert_same_rows(a, b, what, key);
}

/// Both normalisers on (reward scaling is on by default) and, optionally, a separate critic.
fn normalized_cfg(kind: PolicyKind, updates: usize, critic: CriticKind) -> TrainConfig {
    let mut cfg = small_cfg(kind, updates);
    assert!(cfg.ppo.norm_reward, "reward scaling is on by default");
    cfg.ppo.norm_obs = true;
    cfg.policy.critic = critic;
    cfg
}

#[test]
fn stop_and_resume_gives_identical_rows_for_every_policy() {
    let k = 6;
    let configs = PolicyKind::ALL
        .into_iter()
        .map(|kind| small_cfg(kind, k))
        .chain([
            normalized_cfg(PolicyKind::Gru, k, CriticKind::Separate),
            normalized_cfg(PolicyKind::Feedback, k, CriticKind::Separate),
        ]);
    for cfg in configs {
        let kind = format!(
            "{} (critic {}, norm_reward {}, norm_obs {})",
            cfg.policy.kind(),
            cfg.policy.critic,
            cfg.ppo.norm_reward,
            cfg.ppo.norm_obs
        );
        let a = tempfile::tempdir().unwrap();
        let full = train_rows(&cfg, a.path());
        assert_eq!(full.len(), k);

        let b = tempfile::tempdir().unwrap();
        // Stop after 3 updates (a checkpoint is written at the stop), then resume twice.
        train_until(&cfg, b.path(), false, Some(3)).unwrap();
        assert_eq!(read_metrics(b.path().join("metrics.csv")).unwrap().len(), 3);
        train_until(&cfg, b.path(), true, Some(5)).unwrap();
        let resumed = resume_to_end(&cfg, b.path());
        assert_same_rows(&full, &resumed, &kind);
        println!("{kind}: {k} updates in one go == 3 + resume 2 + resume 1 (bitwise)");
    }
}

/// With `checkpoint/latest` deleted (by hand, or a kill between the first checkpoint and its
/// pointer) or damaged, a resume continues from the newest complete `update_N` folder, not from zero.
#[test]
fn resume_without_the_latest_pointer_uses_the_newest_checkpoint() {
    let cfg = small_cfg(PolicyKind::Mlp, 6);
    let a = tempfile::tempdir().unwrap();
    let full = train_rows(&cfg, a.path());
    let b = tempfile::tempdir().unwrap();
    train_until(&cfg, b.path(), false, Some(3)).unwrap();
    let latest = b.path().join("checkpoint").join("latest");
    assert!(latest.exists());
    std::fs::remove_file(&latest).unwrap();
    let resumed = resume_to_end(&cfg, b.path());
    assert_same_rows(&full, &resumed, "resumed without `latest`");
    // The same with a damaged pointer.
    let c = tempfile::tempdir().unwrap();
    train_until(&cfg, c.path(), false, Some(3)).unwrap();
    std::fs::write(
        c.path().join("checkpoint").join("latest"),
        "update_0\u{0}garbage",
    )
    .unwrap();
    let resumed = resume_to_end(&cfg, c.path());
    assert_same_rows(&full, &resumed, "resumed with a damaged `latest`");
}

#[test]
fn stop_and_resume_is_bitwise_for_every_action_space() {
    let k = 5;
    let mut configs = Vec::new();
    // Continuous torque (Gaussian head, learned log-std) with sequence chunks.
    for kind in [PolicyKind::Mlp, PolicyKind::Feedback] {
        let mut cfg = small_cfg(kind, k);
        cfg.env = EnvConfig::Pendulum(envs::PendulumConfig::default());
        cfg.num_envs = 4;
        cfg.num_steps = 32;
        cfg.ppo.seq_len = Some(8);
        cfg.ppo.num_minibatches = 8;
        cfg.total_steps = (4 * 32 * k) as u64;
        configs.push(cfg);
    }
    // The continuous memory task with a GRU.
    let mut cfg = small_cfg(PolicyKind::Gru, k);
    cfg.env = EnvConfig::PointCue(envs::PointCueConfig::default());
    configs.push(cfg);
    // Masked moves, and masked multi-discrete moves (move + stride).
    let mut cfg = small_cfg(PolicyKind::Transformer, k);
    cfg.env = EnvConfig::Gridmaze(GridMazeConfig::multi(7, 24).masked());
    configs.push(cfg);
    let mut cfg = small_cfg(PolicyKind::Feedback, k);
    cfg.env = EnvConfig::Gridmaze(GridMazeConfig::multi(7, 24).move_run().masked());
    configs.push(cfg);
    for cfg in configs {
        let what = format!("{} on {}", cfg.policy.kind(), cfg.env.name());
        let a = tempfile::tempdir().unwrap();
        let full = train_rows(&cfg, a.path());
        assert_eq!(full.len(), k);
        let b = tempfile::tempdir().unwrap();
        train_until(&cfg, b.path(), false, Some(2)).unwrap();
        let resumed = resume_to_end(&cfg, b.path());
        assert_same_rows(&full, &resumed, &what);
        println!("{what}: {k} updates in one go == 2 + resume 3 (bitwise)");
    }
}

/// The child process of `sigkill_mid_run_then_resume`: trains only when that test starts it
/// (with `FBRL_TEST_CHILD_RUN_DIR` set) and returns at once otherwise.
#[test]
#[ignore = "the child process of sigkill_mid_run_then_resume, which runs it"]
fn child_training_process() {
    let Ok(dir) = std::env::var("FBRL_TEST_CHILD_RUN_DIR") else {
        return;
    };
    let cfg = normalized_cfg(PolicyKind::Gru, KILL_UPDATES, CriticKind::Shared);
    train_from_config(
        &cfg,
        TrainOptions {
            run_dir: Some(dir.into()),
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap();
}

const KILL_UPDATES: usize = 60;

#[test]
fn sigkill_mid_run_then_resume() {
    let cfg = normalized_cfg(PolicyKind::Gru, KILL_UPDATES, CriticKind::Shared);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_training_process",
            "--include-ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("FBRL_TEST_CHILD_RUN_DIR", &run)
        .spawn()
        .unwrap();
    // Kill it at some update past a checkpoint, with rows written after that checkpoint.
    let metrics = run.join("metrics.csv");
    let t0 = Instant::now();
    loop {
        let rows = std::fs::read_to_string(&metrics)
            .map(|s| s.lines().count().saturating_sub(1))
            .unwrap_or(0);
        if rows >= 7 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the child made no progress"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child exited early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child should have been killed");
    let rows_at_kill = read_metrics(&metrics).map(|r| r.len()).unwrap_or(0);
    assert!(
        rows_at_kill < KILL_UPDATES,
        "the child finished before it was killed"
    );

    let resumed = resume_to_end(&cfg, &run);

    let reference = tempfile::tempdir().unwrap();
    let full = train_rows(&cfg, reference.path());
    assert_same_rows(&full, &resumed, "killed and resumed");
    println!(
        "killed after {rows_at_kill} rows; resumed run equals the uninterrupted one ({KILL_UPDATES} rows, bitwise)"
    );
}
