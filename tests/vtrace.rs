//! V-trace through the learner seam (release mode): it learns CueRecall with a Feedback
//! policy, resumes bit for bit (with a policy lag, whose older weights travel in the
//! checkpoint), and trains end to end through `fbrl train --algo vtrace`.

mod cli_common;
mod ppo_common;

use agents::vtrace::VtraceConfig;
use agents::{PolicyConfig, PolicyKind};
use envs::CueRecallConfig;
use fbrl::metrics::read_metrics;
use fbrl::{Algorithm, EnvConfig, TrainConfig};
use ppo_common::{
    assert_same_rows, maze_cfg, resume_to_end, row_bits, tail_mean, train_rows, train_until,
};

fn small_policy(kind: PolicyKind) -> PolicyConfig {
    let mut policy = PolicyConfig::small(kind, 32, 8);
    policy.set("n_layers", 1).unwrap();
    policy
}

#[test]
fn vtrace_resumes_bit_for_bit_with_and_without_a_policy_lag() {
    let k = 6;
    for (kind, lag) in [(PolicyKind::Feedback, 0), (PolicyKind::Gru, 2)] {
        let cfg = TrainConfig {
            seed: 5,
            algorithm: Algorithm::Vtrace,
            vtrace: VtraceConfig {
                policy_lag: lag,
                norm_obs: true,
                ..VtraceConfig::default()
            },
            ..maze_cfg(small_policy(kind), 24, 8, 16, k)
        };
        let a = tempfile::tempdir().unwrap();
        let full = train_rows(&cfg, a.path());
        assert_eq!(full.len(), k);
        assert_eq!(
            full[0].learner.names,
            agents::vtrace::VTRACE_COLUMNS,
            "V-trace writes its own columns"
        );
        let b = tempfile::tempdir().unwrap();
        train_until(&cfg, b.path(), false, Some(3)).unwrap();
        let resumed = resume_to_end(&cfg, b.path());
        // Every column but the wall-clock ones (and the env's counts), bitwise.
        assert_same_rows(&full, &resumed, &format!("{kind} lag {lag}"), row_bits);
        // The weights, not the file bytes: a policy file also records burn's parameter ids,
        // which are fresh in every process.
        let weights = |dir: &std::path::Path| {
            let (policy, _) =
                agents::load_policy(dir.join("policy.fbrl"), &Default::default()).unwrap();
            fbrl::distributed::flat_weights(&policy)
                .into_iter()
                .map(f32::to_bits)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            weights(a.path()),
            weights(b.path()),
            "{kind} lag {lag}: final weights differ"
        );
        println!("V-trace {kind}, policy lag {lag}: {k} updates == 3 + resume 3 (bitwise)");
    }
}

#[test]
fn vtrace_with_a_feedback_policy_solves_cue_recall() {
    let cfg = TrainConfig {
        env: EnvConfig::CueRecall(CueRecallConfig::with_corridor(4)),
        policy: small_policy(PolicyKind::Feedback),
        num_envs: 16,
        num_steps: 32,
        total_steps: 16 * 32 * 60,
        checkpoint_every: 0,
        algorithm: Algorithm::Vtrace,
        ..TrainConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let rows = train_rows(&cfg, dir.path());
    let success = tail_mean(&rows, 5, |r| r.success_rate);
    println!(
        "V-trace, cue_recall corridor 4, feedback, {} steps in {:.1}s: success over the last 5 \
         updates {success:.3}",
        cfg.total_steps,
        t0.elapsed().as_secs_f64()
    );
    assert!(
        success >= 0.9,
        "V-trace Feedback success {success:.3} < 0.9"
    );
}

#[test]
fn fbrl_train_algo_vtrace_trains_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // The tiny run without PPO's flags, which V-trace refuses.
    let mut args = vec!["train", "--algo", "vtrace", "--total-steps", "256"];
    args.extend(cli_common::tiny_mlp("16"));
    args.extend(cli_common::TINY_MAZE);
    args.extend([
        "--set",
        "vtrace.num_minibatches=2",
        "--set",
        "vtrace.rho_bar=0.9",
        "--run-dir",
        run.to_str().unwrap(),
    ]);
    let o = cli_common::fbrl(&args);
    assert!(o.status.success(), "{}", cli_common::stderr(&o));
    let cfg = TrainConfig::load(run.join("config.toml")).unwrap();
    assert_eq!(cfg.algorithm, Algorithm::Vtrace);
    assert_eq!(cfg.vtrace.rho_bar, 0.9);
    let header = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(
        header
            .lines()
            .next()
            .unwrap()
            .contains("entropy,approx_kl,rho_mean,rho_clip_frac,explained_var"),
        "{header}"
    );
    assert_eq!(read_metrics(run.join("metrics.csv")).unwrap().len(), 4);
    // PPO's typed flags would be ignored by V-trace: refused, naming the flag.
    cli_common::assert_fails_naming(
        &[
            "train",
            "--algo",
            "vtrace",
            "--gamma",
            "0.9",
            "--total-steps",
            "256",
        ],
        &["--gamma", "vtrace"],
    );
}
