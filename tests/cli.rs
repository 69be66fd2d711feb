//! End-to-end tests of the `fbrl` binary: help, config errors, a tiny training run with
//! eval / render / plot, and a run killed with SIGKILL and resumed.
//!
//! Run with `cargo test --release -p fbrl --test cli`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fbrl::TrainConfig;

mod cli_common;

use cli_common::{
    FBRL, assert_fails_naming, eval_report, fbrl, metric_updates, stderr, stdout, tiny,
};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Trains 2 updates of 4 envs × 16 steps into `run` with `flags`; asserts that it succeeds.
fn train_two_updates(run: &str, flags: &[&str]) {
    let mut args = vec![
        "train",
        "--num-envs",
        "4",
        "--num-steps",
        "16",
        "--total-steps",
        "128",
        "--quiet",
        "--run-dir",
        run,
    ];
    args.extend_from_slice(flags);
    let o = fbrl(&args);
    assert!(
        o.status.success(),
        "train {flags:?} failed:\n{}",
        stderr(&o)
    );
}

#[test]
fn help_documents_commands_and_every_hyperparameter_flag() {
    let top = fbrl(&["--help"]);
    assert!(top.status.success());
    for cmd in ["train", "eval", "render", "plot", "export"] {
        assert!(stdout(&top).contains(cmd), "fbrl --help lacks `{cmd}`");
    }
    let help = stdout(&fbrl(&["train", "--help"]));
    for flag in [
        "--config",
        "--resume",
        "--run-dir",
        "--quiet",
        "--seed",
        "--total-steps",
        "--num-envs",
        "--num-steps",
        "--checkpoint-every",
        "--threads",
        "--learning-rate",
        "--anneal-lr",
        "--gamma",
        "--gae-lambda",
        "--num-minibatches",
        "--update-epochs",
        "--norm-adv",
        "--clip-coef",
        "--clip-vloss",
        "--ent-coef",
        "--vf-coef",
        "--max-grad-norm",
        "--target-kl",
        "--adam-eps",
        "--norm-reward",
        "--reward-clip",
        "--norm-obs",
        "--obs-clip",
        "--policy",
        "--critic",
        "--d-model",
        "--n-layers",
        "--n-heads",
        "--d-ff",
        "--span",
        "--share-kv",
        "--gating",
        "--hidden",
        "--env",
        "--maze-size",
        "--horizon",
        "--view-radius",
        "--maze-mode",
        "--corridor-length",
        "--set",
    ] {
        assert!(
            help.contains(flag),
            "fbrl train --help lacks {flag}:\n{help}"
        );
    }
    // Each flag carries its one-line doc.
    assert!(help.contains("Discount factor"));
    assert!(help.contains("Attention span"));
    for kind in ["- feedback:", "- transformer:", "- gru:", "- mlp:"] {
        assert!(help.contains(kind), "--policy does not list `{kind}`");
    }
}

/// Without the `mpi` feature, `--distributed mpi` says how to get it (with the feature, the
/// `distributed` test covers it).
#[cfg(not(feature = "mpi"))]
#[test]
fn distributed_training_needs_the_mpi_feature() {
    assert_fails_naming(
        &["train", "--distributed", "mpi"],
        &["--distributed mpi", "`mpi` feature", "--features mpi"],
    );
}

#[test]
fn config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = write(dir.path(), "unknown.toml", "[ppo]\nlearning_rat = 0.1\n");
    assert_fails_naming(
        &["train", "--config", unknown.to_str().unwrap()],
        &["learning_rat", "unknown.toml"],
    );
    let wrong_type = write(dir.path(), "type.toml", "num_envs = \"eight\"\n");
    assert_fails_naming(
        &["train", "--config", wrong_type.to_str().unwrap()],
        &["num_envs", "type.toml"],
    );
    let negative = write(dir.path(), "neg.toml", "[ppo]\nlearning_rate = -1e-3\n");
    assert_fails_naming(
        &["train", "--config", negative.to_str().unwrap()],
        &["ppo.learning_rate"],
    );
    assert_fails_naming(
        &["train", "--learning-rate", "-0.001", "--print-config"],
        &["ppo.learning_rate"],
    );
    assert_fails_naming(
        &["train", "--num-envs", "6", "--num-minibatches", "4"],
        &["ppo.num_minibatches"],
    );
    assert_fails_naming(
        &["train", "--set", "ppo.gama=0.9", "--print-config"],
        &["gama"],
    );
    assert_fails_naming(
        &["train", "--set", "ppo.gamma=fast", "--print-config"],
        &["gamma"],
    );
    assert_fails_naming(
        &[
            "train",
            "--env",
            "cue-recall",
            "--maze-size",
            "9",
            "--print-config",
        ],
        &["--maze-size", "gridmaze"],
    );
    assert_fails_naming(&["train", "--policy", "lstm"], &["lstm"]);
}

#[test]
fn overrides_take_precedence_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "c.toml",
        "seed = 5\n[ppo]\ngamma = 0.9\n[policy]\nkind = \"feedback\"\n",
    );
    let resolved = |extra: &[&str]| -> TrainConfig {
        let mut args = vec![
            "train",
            "--config",
            file.to_str().unwrap(),
            "--print-config",
        ];
        args.extend_from_slice(extra);
        let o = fbrl(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        toml::from_str(&stdout(&o)).expect("--print-config prints a valid config")
    };
    let file_only = resolved(&[]);
    assert_eq!((file_only.seed, file_only.ppo.gamma), (5, 0.9));
    assert_eq!(file_only.num_envs, TrainConfig::default().num_envs);
    let set = resolved(&["--set", "ppo.gamma=0.95"]);
    assert_eq!(set.ppo.gamma, 0.95);
    let both = resolved(&["--set", "ppo.gamma=0.95", "--gamma", "0.97", "--seed", "7"]);
    assert_eq!((both.seed, both.ppo.gamma), (7, 0.97));
    // Switching the policy kind fills unset fields from that kind's preset.
    let gru = resolved(&["--policy", "gru"]);
    assert_eq!(
        gru.policy,
        agents::PolicyConfig::preset(agents::PolicyKind::Gru)
    );
}

#[test]
fn cartpole_with_normalisers_and_a_separate_critic_trains_and_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("cartpole");
    let run_s = run.to_str().unwrap();
    train_two_updates(
        run_s,
        &[
            "--env",
            "cartpole",
            "--policy",
            "gru",
            "--critic",
            "separate",
            "--norm-obs",
            "true",
        ],
    );
    let saved = TrainConfig::load(run.join("config.toml")).unwrap();
    assert_eq!(saved.policy.critic, agents::CriticKind::Separate);
    assert!(saved.ppo.norm_obs && saved.ppo.norm_reward);
    assert_eq!(saved.env.name(), "cartpole");
    let report = eval_report(&["eval", run_s, "--episodes", "3", "--json"]);
    assert_eq!(report["episodes"], 3);
    assert_fails_naming(
        &["train", "--critic", "both", "--print-config"],
        &["--critic", "both"],
    );
    assert_fails_naming(
        &["train", "--reward-clip", "0", "--print-config"],
        &["ppo.reward_clip"],
    );
}

#[test]
fn tiny_run_trains_evaluates_renders_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("gridmaze__mlp__3__0");
    let run_s = run.to_str().unwrap();
    let mut args = vec![
        "train",
        "--seed",
        "3",
        "--total-steps",
        "192",
        "--run-dir",
        run_s,
    ];
    args.extend(tiny());
    let o = fbrl(&args);
    assert!(o.status.success(), "train failed:\n{}", stderr(&o));
    assert!(stderr(&o).contains("update 3/3"), "{}", stderr(&o));

    let saved = TrainConfig::load(run.join("config.toml")).expect("config.toml is a valid config");
    assert_eq!(saved.seed, 3);
    assert_eq!(saved.num_envs, 4);
    assert_eq!(saved.policy.kind(), agents::PolicyKind::Mlp);
    assert_eq!(metric_updates(&run), vec![1, 2, 3]);

    let o = fbrl(&["eval", run_s, "--episodes", "8"]);
    assert!(o.status.success(), "eval failed:\n{}", stderr(&o));
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.starts_with("mean return"))
        .unwrap_or_else(|| panic!("{out}"));
    let mean: f64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(mean.is_finite() && mean >= 0.0, "{line}");
    assert!(out.contains("8 episodes"), "{out}");

    let report = eval_report(&["eval", run_s, "-n", "4", "--sample", "--json"]);
    assert_eq!(report["episodes"], 4);
    assert_eq!(report["per_episode"].as_array().unwrap().len(), 4);
    assert!(report["return_mean"].is_f64());

    let gif = dir.path().join("episode.gif");
    let o = fbrl(&["render", run_s, "-o", gif.to_str().unwrap()]);
    assert!(o.status.success(), "render failed:\n{}", stderr(&o));
    let bytes = std::fs::read(&gif).unwrap();
    assert!(bytes.starts_with(b"GIF89a") || bytes.starts_with(b"GIF87a"));
    // A cap on the episode's steps bounds the frames kept in memory.
    let o = fbrl(&[
        "render",
        run_s,
        "-o",
        gif.to_str().unwrap(),
        "--max-steps",
        "5",
    ]);
    assert!(o.status.success(), "render failed:\n{}", stderr(&o));
    assert!(stdout(&o).contains("(6 frames)"), "{}", stdout(&o));
    assert!(stderr(&o).contains("cut after 5 steps"), "{}", stderr(&o));
    assert_fails_naming(
        &["render", run_s, "--attention", "-o", gif.to_str().unwrap()],
        &["--attention", "`mlp` policy has no attention weights"],
    );

    let png = dir.path().join("curve.png");
    let o = fbrl(&["plot", run_s, "-o", png.to_str().unwrap(), "--smooth", "2"]);
    assert!(o.status.success(), "plot failed:\n{}", stderr(&o));
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"));
    assert!(png.with_extension("svg").is_file());
    // An output that is not a PNG path is refused in words, not by the plotting library.
    let svg = dir.path().join("curve.svg");
    assert_fails_naming(
        &["plot", run_s, "-o", svg.to_str().unwrap()],
        &["curve.svg", "ending in .png"],
    );
    assert_fails_naming(
        &["plot", run_s, "-o", dir.path().to_str().unwrap()],
        &["is a directory"],
    );

    // A hand-edited config.toml is refused by eval and render, naming the key.
    let config_path = run.join("config.toml");
    let original = std::fs::read_to_string(&config_path).unwrap();
    let mut edited: toml::Table = toml::from_str(&original).unwrap();
    edited.insert("seed".into(), toml::Value::Integer(4));
    std::fs::write(&config_path, toml::to_string(&edited).unwrap()).unwrap();
    assert_fails_naming(
        &["eval", run_s, "-n", "2"],
        &["`seed`", "was config.toml edited?"],
    );
    assert_fails_naming(
        &["render", run_s, "-o", gif.to_str().unwrap()],
        &["`seed`", "was config.toml edited?"],
    );
    std::fs::write(&config_path, original).unwrap();

    // A run directory is never silently overwritten.
    assert_fails_naming(&args, &["already holds a run"]);
    // Nor is a folder that holds something else (`--run-dir /`, a home directory).
    let other = dir.path().join("not-a-run");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let mut into_other = args.clone();
    let at = into_other.iter().position(|a| *a == "--run-dir").unwrap();
    let other_s = other.to_str().unwrap().to_string();
    into_other[at + 1] = &other_s;
    assert_fails_naming(&into_other, &["is not empty and holds no run", "notes.txt"]);
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 1);
    assert_fails_naming(
        &["eval", dir.path().to_str().unwrap()],
        &["neither a run directory"],
    );
}

/// A fake run directory: a config.toml (env `env_toml`, GRU, optional label) and a
/// metrics.csv whose success rate and return are `rate` at every update.
fn fake_run(root: &Path, name: &str, env_toml: &str, label: Option<&str>, rate: f64) -> String {
    let run = root.join(name);
    std::fs::create_dir_all(&run).unwrap();
    let label = label.map_or(String::new(), |l| format!("label = \"{l}\"\n"));
    write(
        &run,
        "config.toml",
        &format!("{label}seed = 0\n[env]\n{env_toml}[policy]\nkind = \"gru\"\n"),
    );
    let mut csv = String::from("update,env_steps,wall_time_s,return_mean,success_rate\n");
    for u in 1..=5 {
        csv.push_str(&format!("{u},{},{u},{rate},{rate}\n", u * 100));
    }
    write(&run, "metrics.csv", &csv);
    run.to_str().unwrap().to_string()
}

#[test]
fn runs_are_named_and_plotted_by_env_and_label() {
    let dir = tempfile::tempdir().unwrap();
    // A bad --name is refused, naming the flag.
    for bad in ["", "a/b", "a__b"] {
        assert_fails_naming(&["train", "--name", bad, "--print-config"], &["--name"]);
    }
    // The label is recorded in config.toml (and config files without one still load).
    let run = dir.path().join("named");
    let mut args = vec![
        "train",
        "--name",
        "tiny-lr",
        "--total-steps",
        "64",
        "--run-dir",
        run.to_str().unwrap(),
    ];
    args.extend(tiny());
    let o = fbrl(&args);
    assert!(o.status.success(), "train failed:\n{}", stderr(&o));
    let text = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(text.contains("label = \"tiny-lr\""), "{text}");
    let saved = TrainConfig::load(run.join("config.toml")).unwrap();
    assert_eq!(saved.label.as_deref(), Some("tiny-lr"));
    let png = dir.path().join("named.png");
    let o = fbrl(&["plot", run.to_str().unwrap(), "-o", png.to_str().unwrap()]);
    assert!(o.status.success(), "plot failed:\n{}", stderr(&o));
    let svg = std::fs::read_to_string(png.with_extension("svg")).unwrap();
    assert!(svg.contains("tiny-lr (n=1)"), "the legend shows the label");

    // Two envs whose folder names agree on the policy: two lines, never one of 6 seeds; the
    // band of a success rate with seeds 0, 1, 1 stays in [0, 1] (the note says it is clipped).
    let mut runs = Vec::new();
    for (seed, rate) in [0.0, 1.0, 1.0].into_iter().enumerate() {
        for env in ["keydoor", "keydoor_cont"] {
            let env_toml = format!("kind = \"custom\"\nname = \"{env}\"\n");
            runs.push(fake_run(
                dir.path(),
                &format!("{env}__gru__{seed}__1700000000"),
                &env_toml,
                None,
                rate,
            ));
        }
    }
    let png = dir.path().join("envs.png");
    let png_s = png.to_str().unwrap();
    let mut args = vec!["plot", "-o", png_s, "--metric", "success_rate"];
    args.extend(runs.iter().map(String::as_str));
    let o = fbrl(&args);
    assert!(o.status.success(), "plot failed:\n{}", stderr(&o));
    let svg = std::fs::read_to_string(png.with_extension("svg")).unwrap();
    assert!(svg.contains("keydoor / gru (n=3)"), "one line per env");
    assert!(svg.contains("keydoor_cont / gru (n=3)"), "one line per env");
    assert!(
        !svg.contains("(n=6)"),
        "two envs were averaged into one line"
    );
    assert!(svg.contains("clipped"), "the note says the band is clipped");
    args.extend(["--group-by", "policy"]);
    let o = fbrl(&args);
    assert!(o.status.success(), "plot failed:\n{}", stderr(&o));
    let svg = std::fs::read_to_string(png.with_extension("svg")).unwrap();
    assert!(svg.contains("keydoor / gru (n=3)") && !svg.contains("(n=6)"));

    // Two settings of one env kind are two envs too; two labels of one policy, two lines.
    let mut runs = Vec::new();
    for seed in 0..2 {
        for (size, label) in [(7, "lr1"), (7, "lr2"), (9, "lr1")] {
            let env_toml = format!("kind = \"gridmaze\"\nsize = {size}\n");
            let name = format!("gridmaze__gru__{seed}__{size}{label}");
            runs.push(fake_run(dir.path(), &name, &env_toml, Some(label), 0.5));
        }
    }
    let png = dir.path().join("labels.png");
    let mut args = vec![
        "plot",
        "-o",
        png.to_str().unwrap(),
        "--metric",
        "return_mean",
    ];
    args.extend(runs.iter().map(String::as_str));
    let o = fbrl(&args);
    assert!(o.status.success(), "plot failed:\n{}", stderr(&o));
    let svg = std::fs::read_to_string(png.with_extension("svg")).unwrap();
    for line in [
        "gridmaze (size = 7) / lr1 (n=2)",
        "gridmaze (size = 7) / lr2 (n=2)",
        "gridmaze (size = 9) / lr1 (n=2)",
    ] {
        assert!(svg.contains(line), "no line `{line}`");
    }
    let help = stdout(&fbrl(&["plot", "--help"]));
    assert!(
        help.contains("--group-by") && help.contains("clipped to [0, 1]"),
        "{help}"
    );
}

#[test]
fn every_action_space_trains_evaluates_and_renders() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str]); 4] = [
        // Continuous torque (Gaussian head), in sequence chunks.
        (
            "pendulum",
            &[
                "--env",
                "pendulum",
                "--policy",
                "mlp",
                "--seq-len",
                "8",
                "--num-minibatches",
                "8",
            ],
        ),
        // Continuous actions with memory.
        ("point_cue", &["--env", "point-cue", "--policy", "gru"]),
        // Masked moves.
        (
            "masked",
            &[
                "--policy",
                "feedback",
                "--mask-walls",
                "true",
                "--d-model",
                "16",
                "--n-heads",
                "2",
            ],
        ),
        // Multi-discrete moves (direction + stride), masked.
        (
            "move_run",
            &[
                "--policy",
                "mlp",
                "--maze-actions",
                "move-run",
                "--mask-walls",
                "true",
            ],
        ),
    ];
    for (name, flags) in cases {
        let run = dir.path().join(name);
        let run_s = run.to_str().unwrap();
        train_two_updates(run_s, flags);
        assert_eq!(metric_updates(&run), vec![1, 2], "{name}");
        for selection in [&[][..], &["--sample"][..]] {
            let mut eval = vec!["eval", run_s, "--episodes", "3", "--json"];
            eval.extend_from_slice(selection);
            let report = eval_report(&eval);
            assert_eq!(report["episodes"], 3, "{name}");
            assert!(report["return_mean"].is_f64(), "{name}");
        }
        let gif = dir.path().join(format!("{name}.gif"));
        let o = fbrl(&["render", run_s, "-o", gif.to_str().unwrap()]);
        assert!(o.status.success(), "{name}: render failed:\n{}", stderr(&o));
        assert!(gif_width(&gif) > 0, "{name}");
    }
    let saved = TrainConfig::load(dir.path().join("move_run").join("config.toml")).unwrap();
    let fbrl::EnvConfig::Gridmaze(maze) = saved.env else {
        panic!("{:?}", saved.env)
    };
    assert!(maze.mask_walls);
    assert_eq!(maze.actions, envs::ActionMode::MoveRun);
    assert_fails_naming(
        &[
            "train",
            "--env",
            "pendulum",
            "--seq-len",
            "5",
            "--print-config",
        ],
        &["ppo.seq_len", "num_steps"],
    );
}

/// The screen width of a GIF file (bytes 6–7 of its header).
fn gif_width(path: &Path) -> u16 {
    let bytes = std::fs::read(path).unwrap();
    assert!(bytes.starts_with(b"GIF89a") || bytes.starts_with(b"GIF87a"));
    u16::from_le_bytes([bytes[6], bytes[7]])
}

#[test]
fn attention_policies_render_their_attention() {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["feedback", "transformer"] {
        let run = dir.path().join(kind);
        let run_s = run.to_str().unwrap();
        let mut args = vec!["train", "--total-steps", "128", "--run-dir", run_s];
        args.extend_from_slice(&tiny()[2..]);
        args.extend_from_slice(&["--policy", kind, "--d-model", "16", "--n-heads", "2"]);
        args.extend_from_slice(&["--d-ff", "32", "--span", "4"]);
        let o = fbrl(&args);
        assert!(o.status.success(), "train failed:\n{}", stderr(&o));
        let plain = dir.path().join(format!("{kind}.gif"));
        let o = fbrl(&["render", run_s, "-o", plain.to_str().unwrap()]);
        assert!(o.status.success(), "render failed:\n{}", stderr(&o));
        let with = dir.path().join(format!("{kind}_attention.gif"));
        let o = fbrl(&["render", run_s, "--attention", "-o", with.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "render --attention failed:\n{}",
            stderr(&o)
        );
        assert!(stdout(&o).contains("frames"), "{}", stdout(&o));
        // The attention panel is drawn beside the maze's picture.
        assert!(gif_width(&with) > gif_width(&plain));
    }
}

#[test]
fn killed_run_resumes_without_lost_or_duplicated_rows() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    let updates = 150;
    let total = (updates * 4 * 16).to_string();
    let mut args = vec![
        "train",
        "--total-steps",
        &total,
        "--checkpoint-every",
        "1",
        "--run-dir",
        run_s,
    ];
    args.extend(tiny());
    let mut child = Command::new(FBRL)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Wait for a few checkpoints, then SIGKILL (Child::kill sends SIGKILL on Unix).
    let latest = run.join("checkpoint").join("latest");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let name = std::fs::read_to_string(&latest).unwrap_or_default();
        let done: usize = name
            .trim()
            .trim_start_matches("update_")
            .parse()
            .unwrap_or(0);
        if done >= 3 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "training ended before the kill"
        );
        assert!(Instant::now() < deadline, "no checkpoint within 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "training ended before the kill"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let before = metric_updates(&run);
    assert!(
        before.len() < updates,
        "the run finished ({} rows) before it was killed; make it longer",
        before.len()
    );

    // Resuming with a different hyperparameter is refused, naming the key.
    assert_fails_naming(
        &[
            "train",
            "--resume",
            run_s,
            "--learning-rate",
            "0.1",
            "--quiet",
        ],
        &["ppo.learning_rate"],
    );
    // Another env kind is named as such, not by a key the other kind lacks.
    assert_fails_naming(
        &["train", "--resume", run_s, "--env", "pendulum", "--quiet"],
        &["`env.kind`"],
    );

    let o = fbrl(&["train", "--resume", run_s, "--quiet"]);
    assert!(o.status.success(), "resume failed:\n{}", stderr(&o));
    let after = metric_updates(&run);
    assert_eq!(
        after,
        (1..=updates).collect::<Vec<_>>(),
        "one row per update, in order"
    );
}

/// A two-action env of four steps with a two-number observation: a stand-in for a user's env.
struct Coin {
    space: envs::BoxSpace,
    t: u32,
}

impl Coin {
    fn new() -> Self {
        Coin {
            space: envs::BoxSpace::uniform(2, 0.0, 1.0),
            t: 0,
        }
    }
}

impl envs::Env for Coin {
    fn observation_space(&self) -> &envs::BoxSpace {
        &self.space
    }
    fn action_space(&self) -> envs::ActionSpace {
        envs::ActionSpace::discrete(2)
    }
    fn reset(&mut self, _seed: u64, obs: &mut [f32]) -> Result<(), envs::EnvError> {
        self.t = 0;
        obs.copy_from_slice(&[1.0, 0.0]);
        Ok(())
    }
    fn step(
        &mut self,
        action: envs::Action<'_>,
        obs: &mut [f32],
    ) -> Result<envs::Step, envs::EnvError> {
        let action = action.discrete(2)?;
        self.t += 1;
        obs.copy_from_slice(&[0.0, self.t as f32 / 4.0]);
        Ok(envs::Step {
            reward: action as f32,
            terminated: self.t == 4,
            truncated: false,
            info: envs::Info::default(),
        })
    }
    fn name(&self) -> String {
        "coin".into()
    }
}

#[test]
fn custom_env_runs_are_recorded_as_custom_and_refused_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TrainConfig {
        num_envs: 4,
        num_steps: 8,
        total_steps: 4 * 8 * 2,
        ..TrainConfig::default()
    };
    cfg.ppo.num_minibatches = 2;
    cfg.policy = agents::PolicyConfig::preset(agents::PolicyKind::Mlp);
    let opts = |sub: &str| fbrl::TrainOptions {
        run_dir: Some(dir.path().join(sub)),
        quiet: true,
        ..Default::default()
    };

    // The default `[env]` describes GridMaze: training a custom env under it is refused.
    let e = format!(
        "{:#}",
        fbrl::train(&cfg, |_| Ok(Coin::new()), opts("mislabelled")).unwrap_err()
    );
    for needle in [
        "do not match",
        "kind = \"gridmaze\"",
        "`coin`",
        "kind = \"custom\"",
    ] {
        assert!(e.contains(needle), "`{needle}` missing from: {e}");
    }

    // A bad custom name is an error naming `env.name`.
    cfg.env = fbrl::EnvConfig::custom("no spaces please");
    let e = format!(
        "{:#}",
        fbrl::train(&cfg, |_| Ok(Coin::new()), opts("bad")).unwrap_err()
    );
    assert!(e.contains("env.name"), "{e}");

    // Recorded as custom, the run trains; the CLI then says why it cannot rebuild the env.
    cfg.env = fbrl::EnvConfig::custom("coin");
    fbrl::train(&cfg, |_| Ok(Coin::new()), opts("run")).unwrap();
    let run = dir.path().join("run");
    let saved = TrainConfig::load(run.join("config.toml")).unwrap();
    assert_eq!(saved.env, cfg.env);
    let run = run.to_str().unwrap();
    let config = format!("{run}/config.toml");
    for args in [
        vec!["eval", run],
        vec!["render", run],
        vec!["train", "--resume", run],
        vec!["train", "--config", config.as_str()],
    ] {
        assert_fails_naming(&args, &["\"custom\"", "\"coin\"", "program that trained"]);
    }
}
