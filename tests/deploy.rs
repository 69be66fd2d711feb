//! From a trained run to a deployed agent: the policy file every run writes, `fbrl export`,
//! `agents::Agent` (through `examples/deploy.rs` itself), evaluation during training, early
//! stopping, the per-kind learning rate and the rounding of `--total-steps`.
//!
//! Run with `cargo test --release -p fbrl --test deploy`.

use std::ops::ControlFlow;
use std::path::Path;

use agents::{ActorCritic, Agent};
use fbrl::hooks::{PeriodicEval, StopWhen, TrainHook, UpdateContext};
use fbrl::{TrainConfig, TrainOptions};

mod cli_common;

use cli_common::{assert_fails_naming, eval_report, fbrl, stderr, stdout};

#[path = "../examples/deploy.rs"]
mod deploy;

/// Trains a small Feedback run on CueRecall (the example's env) with an observation
/// normaliser, so the policy file must carry it; asserts that it succeeds and returns its
/// stderr.
fn train_cue_recall(run: &Path, total_steps: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "train",
        "--env",
        "cue-recall",
        "--policy",
        "feedback",
        "--d-model",
        "16",
        "--n-heads",
        "2",
        "--n-layers",
        "1",
        "--d-ff",
        "32",
        "--span",
        "4",
        "--norm-obs",
        "true",
        "--num-envs",
        "4",
        "--num-steps",
        "32",
        "--num-minibatches",
        "2",
        "--update-epochs",
        "1",
        "--total-steps",
        total_steps,
        "--checkpoint-every",
        "2",
        "--quiet",
        "--run-dir",
        run.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = fbrl(&args);
    assert!(o.status.success(), "train failed:\n{}", stderr(&o));
    stderr(&o)
}

/// Return and length of episode 0 of `fbrl eval RUN -n 1 --seed seed` and its reset seed.
fn eval_one(run: &Path, seed: u64) -> (u64, f64, u64) {
    let seed = seed.to_string();
    let report = eval_report(&[
        "eval",
        run.to_str().unwrap(),
        "-n",
        "1",
        "--seed",
        &seed,
        "--json",
    ]);
    let ep = &report["per_episode"][0];
    (
        ep["seed"].as_u64().unwrap(),
        ep["ret"].as_f64().unwrap(),
        ep["length"].as_u64().unwrap(),
    )
}

#[test]
fn the_deploy_example_acts_like_fbrl_eval_and_export_writes_the_same_policy() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train_cue_recall(&run, "512", &[]);
    let policy = run.join("policy.fbrl");
    let agent = Agent::load(&policy).unwrap();
    let norm = agent
        .obs_normalizer()
        .expect("the run's observation normaliser is in its policy file");
    assert!(norm.rms.count > 100.0, "normaliser statistics: {norm:?}");

    // `fbrl export` from the latest checkpoint writes an equivalent file.
    let exported = dir.path().join("exported.fbrl");
    let o = fbrl(&[
        "export",
        run.to_str().unwrap(),
        "-o",
        exported.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "export failed:\n{}", stderr(&o));
    assert_eq!(
        Agent::load(&exported).unwrap().header(),
        agent.header(),
        "exported header"
    );

    // The ONNX graph of the same checkpoint (its numbers are checked against onnxruntime by
    // agents/tests/onnx_runtime.rs).
    let onnx = dir.path().join("agent.onnx");
    let o = fbrl(&[
        "export",
        run.to_str().unwrap(),
        "--onnx",
        "-o",
        onnx.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "export --onnx failed:\n{}", stderr(&o));
    let out = stdout(&o);
    for name in [
        "obs",
        "episode_start",
        "memory_0",
        "logits",
        "value",
        "next_memory_0",
    ] {
        assert!(out.contains(name), "{out}");
    }
    assert!(std::fs::metadata(&onnx).unwrap().len() > 1000);

    let mut lengths = Vec::new();
    for s in 0..6u64 {
        let (seed, ret, len) = eval_one(&run, s);
        for file in [&policy, &exported] {
            let (r, l) = deploy::play(file, seed).unwrap();
            assert_eq!(
                (f64::from(r), l as u64),
                (ret, len),
                "seed {seed}: the example with {} vs fbrl eval",
                file.display()
            );
        }
        lengths.push(len);
    }
    assert!(lengths.iter().all(|&l| l > 1), "episodes: {lengths:?}");
}

#[test]
fn agent_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train_cue_recall(&run, "128", &[]);
    let agent = Agent::load(run.join("policy.fbrl")).unwrap();
    let mut memory = agent.initial_memory(2);
    let err = agent
        .act(&vec![0.0; agent.obs_dim()], &mut memory, true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("2 envs"), "{err}");
    let err = agent
        .act_masked(
            &vec![0.0; 2 * agent.obs_dim()],
            Some(&[true]),
            &mut memory,
            true,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("mask"), "{err}");
    let mut obs = vec![0.0; 2 * agent.obs_dim()];
    obs[agent.obs_dim() + 1] = f32::NAN;
    let err = agent.act(&obs, &mut memory, true).unwrap_err().to_string();
    assert!(
        err.contains("env 1, feature 1") && err.contains("NaN"),
        "{err}"
    );
    // After errors the memory still works; sampled actions come with log-probabilities ≤ 0.
    let acted = agent
        .act(&vec![0.0; 2 * agent.obs_dim()], &mut memory, false)
        .unwrap();
    assert_eq!(acted.values.len(), 2);
    assert!(acted.log_probs.iter().all(|&l| l <= 0.0), "{acted:?}");
    let err = Agent::load(dir.path().join("missing.fbrl"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.fbrl"), "{err}");
    assert_fails_naming(
        &["export", dir.path().to_str().unwrap(), "-o", "x.fbrl"],
        &["neither a run directory"],
    );
}

#[test]
fn evaluation_during_training_matches_fbrl_eval_and_stops_the_run_early() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // 8 updates; an evaluation every 3 updates and after the last.
    train_cue_recall(&run, "1024", &["--eval-every", "3", "--eval-episodes", "5"]);
    let eval = std::fs::read_to_string(run.join("eval.csv")).unwrap();
    let rows: Vec<Vec<&str>> = eval
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let updates: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(updates, ["3", "6", "8"], "{eval}");
    assert!(run.join("best_policy.fbrl").is_file());
    // The last evaluation is `fbrl eval -n 5` of the final policy.
    let report = eval_report(&["eval", run.to_str().unwrap(), "-n", "5", "--json"]);
    let last: f64 = rows[2][3].parse().unwrap();
    assert_eq!(last, report["return_mean"].as_f64().unwrap());

    // A target every policy reaches ends the run at the first evaluation, with a checkpoint.
    let early = dir.path().join("early");
    let err = train_cue_recall(
        &early,
        "1024",
        &[
            "--eval-every",
            "2",
            "--eval-episodes",
            "3",
            "--stop-at-return",
            "-1000",
        ],
    );
    assert!(err.contains("stopped early after update 2 of 8"), "{err}");
    assert!(!err.contains("signal"), "{err}");
    let rows = fbrl::metrics::read_metrics(early.join("metrics.csv")).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(early.join("checkpoint/update_000002").is_dir());
    // The run can be continued like any stopped run.
    let o = fbrl(&["train", "--resume", early.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "resume failed:\n{}", stderr(&o));
    assert_eq!(
        fbrl::metrics::read_metrics(early.join("metrics.csv"))
            .unwrap()
            .len(),
        8
    );
}

#[test]
fn library_hooks_see_the_policy_and_stop_without_signals() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TrainConfig {
        total_steps: 10 * 64,
        num_envs: 4,
        num_steps: 16,
        run_dir: dir.path().to_path_buf(),
        ..TrainConfig::preset_gridmaze_single(agents::PolicyKind::Mlp)
    };
    cfg.checkpoint_every = 0;
    let mut seen = Vec::new();
    let counter = |ctx: &mut UpdateContext<'_>| -> anyhow::Result<ControlFlow<String>> {
        seen.push((ctx.row.update, ctx.policy.num_parameters()));
        ctx.log_scalar("custom/update", ctx.row.update as f64);
        Ok(ControlFlow::Continue(()))
    };
    let stop = StopWhen::at_least("update", 4.0).unwrap();
    let hooks: Vec<Box<dyn TrainHook + '_>> = vec![Box::new(counter), Box::new(stop)];
    let summary = fbrl::train_from_config(
        &cfg,
        TrainOptions {
            run_dir: Some(dir.path().join("run")),
            quiet: true,
            hooks,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(summary.updates_done, 4);
    assert_eq!(
        summary.stopped_early.as_deref(),
        Some("update = 4 reached 4")
    );
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|(_, n)| *n > 0));
    // The checkpoint of the stop is written even with checkpoint_every = 0.
    assert!(dir.path().join("run/checkpoint/update_000004").is_dir());
    assert!(StopWhen::at_least("no_such_column", 1.0).is_err());
    assert!(PeriodicEval::for_config(0, 4, &cfg).is_err());
}

#[test]
fn bare_train_uses_the_tuned_learning_rate_and_rounds_total_steps_up() {
    let print = |args: &[&str]| {
        let mut all = vec!["train", "--print-config"];
        all.extend_from_slice(args);
        let o = fbrl(&all);
        assert!(o.status.success(), "{}", stderr(&o));
        let cfg: TrainConfig = toml::from_str(&stdout(&o)).unwrap();
        (cfg, stderr(&o))
    };
    let (cfg, _) = print(&["--policy", "feedback"]);
    assert_eq!(cfg.ppo.learning_rate, 1e-3);
    let (cfg, _) = print(&["--policy", "mlp"]);
    assert_eq!(cfg.ppo.learning_rate, 8e-3);
    // Elsewhere the PPO default; an explicit rate always wins.
    let (cfg, _) = print(&["--env", "cartpole", "--policy", "mlp"]);
    assert_eq!(cfg.ppo.learning_rate, 2.5e-4);
    let (cfg, _) = print(&["--policy", "gru", "--lr", "3e-4"]);
    assert_eq!(cfg.ppo.learning_rate, 3e-4);
    let (cfg, err) = print(&["--total-steps", "200000"]);
    assert_eq!(cfg.total_steps, 204_800);
    assert!(
        err.contains("training 25 updates = 204800 env steps"),
        "{err}"
    );
    let help = stdout(&fbrl(&["train", "--help"]));
    assert!(help.contains("[default: 5000000]"), "{help}");
    assert!(help.contains("8e-3") || help.contains("0.008"), "{help}");
}

/// A continuous-action env reporting two named scalars: `torque` (the action, every step)
/// and `final_t` (the step count, on the last step only), named `scalar_probe`.
struct ScalarProbe {
    space: envs::BoxSpace,
    t: u32,
}

impl envs::Env for ScalarProbe {
    fn observation_space(&self) -> &envs::BoxSpace {
        &self.space
    }

    fn action_space(&self) -> envs::ActionSpace {
        envs::ActionSpace::continuous(1, -1.0, 1.0)
    }

    fn reset(&mut self, _seed: u64, obs: &mut [f32]) -> Result<(), envs::EnvError> {
        self.t = 0;
        obs[0] = 0.0;
        Ok(())
    }

    fn step(
        &mut self,
        action: envs::Action<'_>,
        obs: &mut [f32],
    ) -> Result<envs::Step, envs::EnvError> {
        let torque = action.continuous(1)?[0];
        self.t += 1;
        obs[0] = self.t as f32 / 8.0;
        let mut info = envs::Info::default().with_scalar("torque", torque);
        let truncated = self.t == 8;
        if truncated {
            info.scalars.set("final_t", self.t as f32);
        }
        Ok(envs::Step {
            reward: -torque.abs(),
            terminated: false,
            truncated,
            info,
        })
    }

    fn name(&self) -> String {
        "scalar_probe".into()
    }
}

#[test]
fn env_scalars_reach_info_csv_and_plots_and_a_custom_env_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        total_steps: 3 * 32,
        num_envs: 2,
        num_steps: 16,
        checkpoint_every: 0,
        threads: 1,
        run_dir: dir.path().to_path_buf(),
        env: fbrl::EnvConfig::custom_env(),
        policy: agents::PolicyConfig::preset(agents::PolicyKind::Mlp),
        ppo: agents::ppo::PpoConfig {
            num_minibatches: 2,
            ..Default::default()
        },
        ..TrainConfig::default()
    };
    let make = |_| {
        Ok(ScalarProbe {
            space: envs::BoxSpace::uniform(1, 0.0, 1.0),
            t: 0,
        })
    };
    let summary = fbrl::train(&cfg, make, TrainOptions::default()).unwrap();
    let run = summary.run_dir;
    let name = run.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("scalar_probe__mlp__"), "{name}");
    let saved = TrainConfig::load(run.join("config.toml")).unwrap();
    assert_eq!(saved.env.name(), "scalar_probe");

    let rows = fbrl::metrics::read_info(run.join("info.csv")).unwrap();
    // Every update: torque (32 steps) and final_t (4 episode ends of 8 steps).
    assert_eq!(rows.len(), 6, "{rows:?}");
    for (update, name, mean) in &rows {
        match name.as_str() {
            "torque" => assert!((-1.0..=1.0).contains(mean), "update {update}: {mean}"),
            "final_t" => assert_eq!(*mean, 8.0),
            other => panic!("unexpected scalar {other}"),
        }
    }
    let loaded = fbrl::curves::Run::load(&run).unwrap();
    let final_t = loaded.metrics.column("info/final_t").unwrap();
    assert_eq!(final_t, vec![Some(8.0); 3]);

    // The action extractors name what is wrong.
    let err = envs::Action::Discrete(1)
        .continuous(1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("continuous actions of 1"), "{err}");
    let err = envs::Action::Continuous(&[0.0, f32::NAN])
        .continuous(2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not finite"), "{err}");
    let err = envs::Action::MultiDiscrete(&[1, 3])
        .multi_discrete(&[2, 3])
        .unwrap_err()
        .to_string();
    assert!(err.contains("dimension 1"), "{err}");
    assert_eq!(
        envs::Action::MultiDiscrete(&[1, 2])
            .multi_discrete(&[2, 3])
            .unwrap(),
        &[1, 2]
    );
}
