//! Learning tests (release mode): PPO with its default settings solves CartPole, improves over
//! a random policy on GridMaze `single`, and on the cue-recall memory task a memory policy
//! succeeds where the MLP stays at chance. With continuous actions: the MLP swings up the
//! Pendulum (CleanRL's continuous settings), and on PointCue the GRU steers to the cued side
//! where the MLP stays at chance.
//!
//! `cargo test --release -p fbrl --test ppo_learning -- --nocapture` prints the figures.

mod ppo_common;

use agents::{PolicyConfig, PolicyKind};
use envs::{CueRecall, CueRecallConfig, GridMaze, GridMazeConfig};
use fbrl::{EnvConfig, TrainConfig};
use ppo_common::{random_policy, tail_mean, train_rows};

/// Trains `cfg` (`what` names it) and prints its mean return over the first and the last 10 %
/// of its updates; returns them.
fn first_and_last_tenth(cfg: &TrainConfig, what: &str) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let rows = train_rows(cfg, dir.path());
    let tail = (rows.len() / 10).max(1);
    let last = tail_mean(&rows, tail, |r| r.return_mean);
    let first = tail_mean(&rows[..tail], tail, |r| r.return_mean);
    println!(
        "{what}, {} steps in {:.1}s: mean return {first:.1} over the first 10 % of updates, {last:.1} over the last 10 %",
        cfg.total_steps,
        t0.elapsed().as_secs_f64()
    );
    (first, last)
}

/// CartPole returns are ~50× GridMaze's per episode: with the default `PpoConfig` (reward
/// scaling on) the MLP must still learn it; without scaling it stalls far below.
#[test]
fn mlp_solves_cartpole_with_the_default_settings() {
    let mut cfg = TrainConfig::preset_cartpole(PolicyKind::Mlp);
    cfg.total_steps = 200_000;
    cfg.checkpoint_every = 0;
    cfg.threads = 1;
    let (_, last) = first_and_last_tenth(&cfg, "cartpole, MLP");
    assert!(last >= 400.0, "CartPole return {last:.1} < 400");
}

fn gridmaze_cfg() -> TrainConfig {
    let mut cfg = TrainConfig::preset_gridmaze_single(PolicyKind::Mlp);
    cfg.env = EnvConfig::Gridmaze(GridMazeConfig::single(7, 50));
    cfg.num_envs = 16;
    cfg.num_steps = 64;
    cfg.total_steps = 16 * 64 * 150;
    cfg.checkpoint_every = 0;
    cfg.ppo.learning_rate = 1e-3;
    cfg
}

#[test]
fn mlp_improves_on_gridmaze_single_over_random() {
    let cfg = gridmaze_cfg();
    let EnvConfig::Gridmaze(env_cfg) = cfg.env.clone() else {
        unreachable!()
    };
    let (random_return, _) = random_policy(|_| GridMaze::new(env_cfg.clone()), 2000, 99);
    let dir = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let rows = train_rows(&cfg, dir.path());
    let first = tail_mean(&rows[..5], 5, |r| r.return_mean);
    let last = tail_mean(&rows, 5, |r| r.return_mean);
    let length = tail_mean(&rows, 5, |r| r.length_mean);
    println!(
        "gridmaze single 7x7 h50, MLP, {} steps in {:.1}s: random return {random_return:.3}, first updates {first:.3}, last 5 updates {last:.3} (length {length:.1})",
        cfg.total_steps,
        t0.elapsed().as_secs_f64()
    );
    assert!(
        last > random_return + 0.15,
        "PPO return {last:.3} is not clearly above random {random_return:.3}"
    );
}

fn cue_cfg(kind: PolicyKind) -> TrainConfig {
    let mut policy = PolicyConfig::small(kind, 32, 8);
    policy.set("n_layers", 1).unwrap();
    TrainConfig {
        env: EnvConfig::CueRecall(CueRecallConfig::with_corridor(4)),
        policy,
        num_envs: 16,
        num_steps: 32,
        total_steps: 16 * 32 * 60,
        checkpoint_every: 0,
        ..TrainConfig::default()
    }
}

fn run_cue(kind: PolicyKind) -> f64 {
    let cfg = cue_cfg(kind);
    let dir = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let rows = train_rows(&cfg, dir.path());
    let success = tail_mean(&rows, 5, |r| r.success_rate);
    println!(
        "cue_recall corridor 4, {kind}, {} steps in {:.1}s: success over the last 5 updates {success:.3}",
        cfg.total_steps,
        t0.elapsed().as_secs_f64()
    );
    success
}

#[test]
fn memory_policy_solves_cue_recall_where_mlp_is_at_chance() {
    let EnvConfig::CueRecall(env_cfg) = cue_cfg(PolicyKind::Mlp).env else {
        unreachable!()
    };
    let (_, random_success) = random_policy(|_| CueRecall::new(env_cfg.clone()), 2000, 7);
    println!("cue_recall random policy success {random_success:.3}");
    let mlp = run_cue(PolicyKind::Mlp);
    let feedback = run_cue(PolicyKind::Feedback);
    assert!(feedback >= 0.9, "Feedback success {feedback:.3} < 0.9");
    assert!(
        (0.35..=0.65).contains(&mlp),
        "MLP success {mlp:.3} is not near chance (0.5)"
    );
}

#[test]
fn mlp_swings_up_the_pendulum_with_continuous_torque() {
    // CleanRL's continuous-PPO settings as measured in results/benchmarks/continuous.
    let mut cfg = TrainConfig::preset_pendulum(PolicyKind::Mlp);
    cfg.checkpoint_every = 0;
    cfg.threads = 1;
    let (first, last) = first_and_last_tenth(&cfg, "pendulum, MLP");
    assert!(last >= -600.0, "Pendulum return {last:.1} < -600");
    assert!(last >= first + 400.0, "return {first:.1} → {last:.1}");
}

#[test]
fn gru_remembers_the_cue_with_continuous_actions_where_the_mlp_cannot() {
    let cfg = |kind| {
        let mut cfg = TrainConfig {
            num_envs: 16,
            num_steps: 128,
            total_steps: 16 * 128 * 40,
            checkpoint_every: 0,
            env: EnvConfig::PointCue(envs::PointCueConfig::default()),
            policy: PolicyConfig::preset(kind),
            ..TrainConfig::default()
        };
        cfg.ppo.learning_rate = 2e-3;
        cfg
    };
    let mut finals = Vec::new();
    for kind in [PolicyKind::Gru, PolicyKind::Mlp] {
        let dir = tempfile::tempdir().unwrap();
        let rows = train_rows(&cfg(kind), dir.path());
        let last = tail_mean(&rows, 5, |r| r.success_rate);
        println!("point_cue {kind}: success {last:.3} over the last 5 updates");
        finals.push(last);
    }
    assert!(finals[0] >= 0.9, "GRU success {:.3} < 0.9", finals[0]);
    assert!(
        (finals[1] - 0.5).abs() <= 0.15,
        "the MLP cannot know the cue: success {:.3} should be near 0.5",
        finals[1]
    );
}
