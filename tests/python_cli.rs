//! `fbrl train --env gym:ID` end to end (fbrl built with `--features python`): a 2-update
//! CartPole-v1 run stopped after update 1 and resumed under the documented rule (the
//! episodes in progress are restarted), then evaluated and rendered; keyword arguments and a
//! wrapper recorded in config.toml; bad envs refused with clear errors.
//!
//! Needs an interpreter with gymnasium and minigrid in `FBRL_PYTHON` (see
//! `envs/tests/python_env.rs`); without one the tests print a loud skip message and pass,
//! unless `FBRL_REQUIRE_PYTHON_ENVS=1`. Run with
//! `cargo test --release -p fbrl --features python --test python_cli`.
#![cfg(feature = "python")]

mod cli_common;
#[path = "../envs/tests/common/python.rs"]
mod python_common;

use std::process::Output;

use cli_common::{TINY_PPO, command, metric_updates, stderr, tiny_mlp};
use fbrl::{EnvConfig, TrainConfig};
use python_common::minigrid_ready;

/// Where the test envs written in Python live (`pom_env:make`).
const TEST_ENVS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/envs/tests/python");

/// Runs `fbrl args` with the test envs importable.
fn fbrl(args: &[&str]) -> Output {
    command(args)
        .env("PYTHONPATH", TEST_ENVS)
        .output()
        .expect("the fbrl binary runs")
}

/// Runs `fbrl args`, failing the test with its stderr unless it succeeds; returns the stderr.
fn ok(args: &[&str]) -> String {
    let o = fbrl(args);
    let err = stderr(&o);
    assert!(o.status.success(), "fbrl {args:?} failed:\n{err}");
    err
}

/// Flags of a tiny run: MLP, 4 envs × 32 steps, a checkpoint after each update.
fn tiny() -> Vec<&'static str> {
    [
        tiny_mlp("32"),
        TINY_PPO.to_vec(),
        vec!["--checkpoint-every", "1"],
    ]
    .concat()
}

/// The arguments of a tiny run into `run` with `flags`, of `total_steps` env steps.
fn train_args<'a>(run: &'a str, flags: &[&'a str], total_steps: &'a str) -> Vec<&'a str> {
    let mut args = vec!["train", "--run-dir", run];
    args.extend_from_slice(flags);
    args.extend(tiny());
    args.extend_from_slice(&["--total-steps", total_steps]);
    args
}

#[test]
fn cartpole_trains_resumes_by_restarting_episodes_evaluates_and_renders() {
    if !minigrid_ready("cartpole_trains_resumes_by_restarting_episodes_evaluates_and_renders") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("cartpole");
    let run_s = run.to_str().unwrap();
    let flags = ["--env", "gym:CartPole-v1", "--stop-after", "1"];
    let err = ok(&train_args(run_s, &flags, "256"));
    assert!(err.contains("CartPole-v1"), "{err}");
    assert_eq!(metric_updates(&run), [1]);
    let cfg = TrainConfig::load(run.join("config.toml")).unwrap();
    let EnvConfig::Gym(gym) = &cfg.env else {
        panic!("{:?}", cfg.env)
    };
    assert_eq!(
        (gym.id.as_str(), gym.wrapper.as_deref()),
        ("CartPole-v1", None)
    );

    // The resume restarts the 4 episodes in progress (CartPole-v1 episodes under a random
    // policy outlast the 32 steps of an update often enough that some are cut).
    let err = ok(&["train", "--resume", run_s, "--quiet"]);
    assert!(err.contains("(resuming after update 1)"), "{err}");
    assert!(
        err.contains("episode(s) in progress at the checkpoint were dropped")
            && err.contains("differ from those of an uninterrupted run"),
        "{err}"
    );
    assert_eq!(metric_updates(&run), [1, 2]);

    let o = fbrl(&["eval", run_s, "-n", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("3 episodes of CartPole-v1"), "{out}");

    let gif = dir.path().join("cartpole.gif");
    let gif_s = gif.to_str().unwrap();
    // As on a machine without a display session: CartPole's pygame renderer still draws
    // its frames, and SDL prints no error about the missing display.
    let o = command(&["render", run_s, "-o", gif_s, "--max-steps", "5"])
        .env("PYTHONPATH", TEST_ENVS)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("SDL_VIDEODRIVER")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("the fbrl binary runs");
    let err = stderr(&o);
    assert!(o.status.success(), "fbrl render failed:\n{err}");
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
    assert!(std::fs::metadata(&gif).unwrap().len() > 0);
}

#[test]
fn kwargs_and_wrapper_are_recorded_and_bad_envs_are_clear_errors() {
    if !minigrid_ready("kwargs_and_wrapper_are_recorded_and_bad_envs_are_clear_errors") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // MiniGrid's memory task with its image observation, and a smaller view.
    let run = dir.path().join("minigrid");
    let run_s = run.to_str().unwrap();
    let flags = [
        "--env",
        "gym:MiniGrid-MemoryS9-v0",
        "--env-kwargs",
        r#"{"agent_view_size": 5}"#,
        "--wrapper",
        "minigrid.wrappers:ImgObsWrapper",
    ];
    ok(&train_args(run_s, &flags, "128"));
    let cfg = TrainConfig::load(run.join("config.toml")).unwrap();
    let EnvConfig::Gym(gym) = &cfg.env else {
        panic!("{:?}", cfg.env)
    };
    assert_eq!(gym.id, "MiniGrid-MemoryS9-v0");
    assert_eq!(
        gym.wrapper.as_deref(),
        Some("minigrid.wrappers:ImgObsWrapper")
    );
    assert_eq!(
        gym.kwargs
            .get("agent_view_size")
            .and_then(|v| v.as_integer()),
        Some(5)
    );
    assert_eq!(cfg.env.name(), "MiniGrid-MemoryS9-v0");
    // A 5×5 view: the policy was built for 5 × 5 × 3 observations, and eval rebuilds the env
    // with the recorded settings.
    let o = fbrl(&["eval", run_s, "-n", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // A factory of one's own; it draws no rgb_array frames, which render says.
    let run = dir.path().join("pom");
    let run_s = run.to_str().unwrap();
    ok(&train_args(run_s, &["--env", "gym:pom_env:make"], "128"));
    let o = fbrl(&[
        "render",
        run_s,
        "-o",
        dir.path().join("x.gif").to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("rgb_array"), "{err}");

    // Bad envs: each fails without a panic, naming the env and the Python error.
    let cases: [(&[&str], &[&str]); 4] = [
        (
            &["--env", "gym:NoSuchEnv-v0"],
            &["`NoSuchEnv-v0`", "NameNotFound", "gym:PACKAGE:NoSuchEnv-v0"],
        ),
        (
            &[
                "--env",
                "gym:CartPole-v1",
                "--env-kwargs",
                r#"{"bogus": 1}"#,
            ],
            &["`CartPole-v1`", "unexpected keyword argument 'bogus'"],
        ),
        (
            &["--env", "gym:minigrid:MiniGrid-MemoryS9-v0"],
            &["`minigrid:MiniGrid-MemoryS9-v0`", "Dict", "ImgObsWrapper"],
        ),
        (&["--env-kwargs", "{}"], &["--env-kwargs", "gym:ID"]),
    ];
    for (i, (flags, needles)) in cases.iter().enumerate() {
        let run = dir.path().join(format!("bad{i}"));
        let o = fbrl(&train_args(run.to_str().unwrap(), flags, "128"));
        let err = stderr(&o);
        assert!(!o.status.success(), "{flags:?} succeeded");
        assert!(!err.contains("panicked"), "{flags:?} panicked:\n{err}");
        for n in *needles {
            assert!(err.contains(n), "{flags:?}: `{n}` missing from:\n{err}");
        }
    }
}
