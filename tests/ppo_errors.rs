//! Error paths: invalid configs name the key; corrupted or truncated checkpoints name the
//! file, and a damaged newest one gives way to the intact one before it; a normaliser state that does not fit the run names the normaliser; a non-finite loss stops the run with the update and the quantity and leaves the last
//! good checkpoint readable.

mod ppo_common;

use std::path::Path;

use agents::PolicyKind;
use envs::{Action, ActionSpace, BoxSpace, Env, EnvError, GridMaze, GridMazeConfig, Step};
use fbrl::checkpoint::{latest_checkpoint, open_checkpoint, open_latest};
use fbrl::metrics::read_metrics;
use fbrl::{EnvConfig, TrainConfig};
use ppo_common::{train_envs, train_until as run};

fn parse_err(text: &str) -> String {
    match TrainConfig::from_toml_str(text, "bad.toml") {
        Ok(_) => panic!("config should be rejected:\n{text}"),
        Err(e) => {
            println!("{e}");
            e.to_string()
        }
    }
}

fn assert_mentions(msg: &str, needles: &[&str]) {
    for n in needles {
        assert!(msg.contains(n), "error message lacks `{n}`:\n{msg}");
    }
}

#[test]
fn invalid_configs_name_the_key() {
    // Unknown keys, at every level.
    assert_mentions(&parse_err("num_env = 4\n"), &["bad.toml", "num_env"]);
    assert_mentions(
        &parse_err("[ppo]\nlearning_rat = 0.1\n"),
        &["bad.toml", "learning_rat"],
    );
    assert_mentions(
        &parse_err("[env]\nkind = \"gridmaze\"\nsizee = 9\n"),
        &["bad.toml", "sizee"],
    );
    assert_mentions(
        &parse_err("[policy]\nkind = \"gru\"\nwidth = 9\n"),
        &["bad.toml", "width"],
    );
    assert_mentions(
        &parse_err("[env]\nkind = \"mujoco\"\n"),
        &["bad.toml", "mujoco"],
    );
    // Wrong types.
    assert_mentions(
        &parse_err("num_envs = \"many\"\n"),
        &["bad.toml", "num_envs"],
    );
    assert_mentions(
        &parse_err("[ppo]\nnorm_adv = 3\n"),
        &["bad.toml", "norm_adv"],
    );
    // Invalid values.
    assert_mentions(
        &parse_err("[ppo]\nlearning_rate = -1.0\n"),
        &["ppo.learning_rate", "> 0", "-1"],
    );
    assert_mentions(&parse_err("[ppo]\ngamma = 1.5\n"), &["ppo.gamma"]);
    assert_mentions(
        &parse_err("num_envs = 6\n[ppo]\nnum_minibatches = 4\n"),
        &["ppo.num_minibatches", "6"],
    );
    assert_mentions(&parse_err("num_envs = 0\n"), &["num_envs"]);
    assert_mentions(&parse_err("total_steps = 10\n"), &["total_steps"]);
    assert_mentions(
        &parse_err("[env]\nkind = \"gridmaze\"\nsize = 8\n"),
        &["env.size"],
    );
    assert_mentions(
        &parse_err("[env]\nkind = \"cue_recall\"\nnum_cues = 1\n"),
        &["env.num_cues"],
    );
    assert_mentions(
        &parse_err("[policy]\nkind = \"feedback\"\nd_model = 30\nn_heads = 4\n"),
        &["d_model"],
    );

    // A valid file loads, and its resolved form reads back the same.
    let cfg = TrainConfig::from_toml_str(
        "seed = 3\nnum_envs = 8\n[env]\nkind = \"gridmaze\"\nsize = 9\nmode = \"single\"\n[policy]\nkind = \"gru\"\n[ppo]\nnum_minibatches = 2\ntarget_kl = 0.02\n",
        "good.toml",
    )
    .unwrap();
    assert_eq!(cfg.num_envs, 8);
    assert_eq!(cfg.ppo.target_kl, Some(0.02));
    assert_eq!(
        TrainConfig::from_toml_str(&cfg.to_toml(), "resolved").unwrap(),
        cfg
    );

    // A missing file names it.
    let e = TrainConfig::load("/nonexistent/cfg.toml")
        .unwrap_err()
        .to_string();
    assert_mentions(&e, &["/nonexistent/cfg.toml"]);
}

fn tiny_cfg() -> TrainConfig {
    let mut cfg = TrainConfig::preset_gridmaze_single(PolicyKind::Gru);
    cfg.env = EnvConfig::Gridmaze(GridMazeConfig::single(7, 20));
    cfg.policy.set("d_model", 16).unwrap();
    cfg.num_envs = 4;
    cfg.num_steps = 8;
    cfg.ppo.num_minibatches = 2;
    cfg.total_steps = 4 * 8 * 6;
    cfg.checkpoint_every = 2;
    cfg
}

/// Writes checkpoints up to update 2, damages one file of each with `damage` (so that no
/// intact one is left to fall back on), and checks that opening the newest, opening the run
/// and resuming it fail naming `file` and `what`.
fn damaged(file: &str, what: &str, damage: impl Fn(&Path)) {
    let cfg = tiny_cfg();
    let dir = tempfile::tempdir().unwrap();
    run(&cfg, dir.path(), false, Some(2)).unwrap();
    let root = dir.path().join("checkpoint");
    let ckpt = latest_checkpoint(&root).unwrap().unwrap();
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            damage(&path.join(file));
        }
    }
    let e = format!("{:#}", open_checkpoint(&ckpt).unwrap_err());
    assert_mentions(&e, &[file, what]);
    let e = format!("{:#}", open_latest(&root).unwrap_err());
    assert_mentions(&e, &[file, what]);
    let e = format!("{:#}", run(&cfg, dir.path(), true, None).unwrap_err());
    assert_mentions(&e, &[file, what]);
    println!("{file}: {e}");
}

fn truncate(p: &Path) {
    let bytes = std::fs::read(p).unwrap();
    std::fs::write(p, &bytes[..bytes.len() / 2]).unwrap();
}

fn flip_byte(p: &Path) {
    let mut bytes = std::fs::read(p).unwrap();
    let k = bytes.len() * 2 / 3;
    bytes[k] ^= 0x5a;
    std::fs::write(p, &bytes).unwrap();
}

#[test]
fn corrupted_and_truncated_checkpoints_give_clear_errors() {
    damaged("model.bpk", "truncated", truncate);
    damaged("model.bpk", "corrupted", flip_byte);
    damaged("optim.bpk", "truncated", truncate);
    damaged("optim.bpk", "corrupted", flip_byte);
    damaged("state.json", "truncated", truncate);
    damaged("state.json", "corrupted", flip_byte);
    damaged("manifest.json", "corrupted or truncated", truncate);
    damaged("model.bpk", "missing", |p| std::fs::remove_file(p).unwrap());
}

/// A newest checkpoint damaged after it was written (here: a file truncated, as by an
/// interrupted copy) gives way to the one before it, which every write keeps: opening the run
/// reads that one, and `--resume` continues from it to exactly the rows of an uninterrupted
/// run. A damaged checkpoint with none intact before it stays an error (above).
#[test]
fn a_damaged_newest_checkpoint_gives_way_to_the_one_before() {
    let cfg = tiny_cfg();
    let reference = tempfile::tempdir().unwrap();
    let want = ppo_common::train_rows(&cfg, reference.path());

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("checkpoint");
    run(&cfg, dir.path(), false, Some(4)).unwrap();
    let newest = latest_checkpoint(&root).unwrap().unwrap();
    assert!(newest.ends_with("update_000004"), "{}", newest.display());
    truncate(&newest.join("optim.bpk"));

    let ckpt = open_latest(&root).unwrap();
    assert!(
        ckpt.dir.ends_with("update_000002"),
        "{}",
        ckpt.dir.display()
    );
    assert_eq!(ckpt.state.updates_done, 2);
    // A reader changes nothing; the run that continues points `latest` at its checkpoint.
    assert_eq!(latest_checkpoint(&root).unwrap(), Some(newest.clone()));
    run(&cfg, dir.path(), true, Some(2)).unwrap();
    assert_eq!(latest_checkpoint(&root).unwrap(), Some(ckpt.dir.clone()));
    // The damaged checkpoint is moved aside, so that the next write keeps the intact one as
    // the previous checkpoint.
    assert!(!newest.exists() && root.join("damaged_update_000004").is_dir());
    let got = ppo_common::resume_to_end(&cfg, dir.path());
    ppo_common::assert_same_rows(
        &got,
        &want,
        "resumed from the checkpoint before the damaged one",
        ppo_common::row_bits,
    );
    // The run wrote intact checkpoints again over the damaged one.
    assert_eq!(open_latest(&root).unwrap().state.updates_done, 6);
}

/// A run killed before its first checkpoint (only config.toml and some metrics rows exist) is
/// not a dead end: `--resume` starts it over from its config and ends with exactly the rows of
/// an uninterrupted run.
#[test]
fn a_run_without_a_checkpoint_resumes_from_its_config() {
    let cfg = tiny_cfg();
    let reference = tempfile::tempdir().unwrap();
    run(&cfg, reference.path(), false, None).unwrap();
    let want = std::fs::read_to_string(reference.path().join("metrics.csv")).unwrap();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), cfg.to_toml()).unwrap();
    // Two rows of a run that died before checkpointing, the second cut mid-line.
    let mut rows = want.lines().take(3).collect::<Vec<_>>().join("\n");
    rows.truncate(rows.len() - 5);
    std::fs::write(dir.path().join("metrics.csv"), rows).unwrap();
    let summary = run(&cfg, dir.path(), true, None).unwrap();
    assert_eq!(summary.updates_done, cfg.num_updates());
    let got = read_metrics(dir.path().join("metrics.csv")).unwrap();
    let want = read_metrics(reference.path().join("metrics.csv")).unwrap();
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().zip(&want) {
        assert_eq!(
            (
                a.update,
                a.env_steps,
                a.return_mean.to_bits(),
                a.policy_loss.to_bits()
            ),
            (
                b.update,
                b.env_steps,
                b.return_mean.to_bits(),
                b.policy_loss.to_bits()
            )
        );
    }
}

/// FNV-1a 64, as the checkpoint manifest records it.
fn fnv64(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Rewrites the checkpoint's state.json with `edit` and updates the manifest to match, so that
/// the damage passes the integrity check and only the state's own validation can catch it.
fn edit_state(ckpt: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let path = ckpt.join("state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut state);
    let bytes = serde_json::to_vec(&state).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let mpath = ckpt.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    for f in manifest["files"].as_array_mut().unwrap() {
        if f["name"] == "state.json" {
            f["len"] = serde_json::json!(bytes.len());
            f["fnv64"] = serde_json::json!(fnv64(&bytes));
        }
    }
    std::fs::write(&mpath, serde_json::to_vec(&manifest).unwrap()).unwrap();
}

#[test]
fn a_corrupted_normalizer_state_is_a_named_error() {
    let mut cfg = tiny_cfg();
    cfg.ppo.norm_obs = true;
    type Edit = fn(&mut serde_json::Value);
    let cases: [(Edit, &[&str]); 5] = [
        (
            |s| s["reward_norm"]["return_rms"]["var"][0] = serde_json::json!(-1.0),
            &["reward normaliser", "var[0]"],
        ),
        (
            |s| s["reward_norm"]["returns"] = serde_json::json!([0.0]),
            &["reward normaliser", "1 envs", "4"],
        ),
        (
            |s| s["obs_norm"]["rms"]["mean"] = serde_json::json!([0.0, 1.0]),
            &["observation normaliser", "expected"],
        ),
        (
            |s| s["reward_norm"] = serde_json::Value::Null,
            &["norm_reward", "lacks", "reward_norm"],
        ),
        (
            |s| s["obs_norm"]["rms"]["count"] = serde_json::json!("many"),
            &["state.json", "cannot be parsed"],
        ),
    ];
    for (edit, needles) in cases {
        let dir = tempfile::tempdir().unwrap();
        run(&cfg, dir.path(), false, Some(2)).unwrap();
        let ckpt = latest_checkpoint(&dir.path().join("checkpoint"))
            .unwrap()
            .unwrap();
        edit_state(&ckpt, edit);
        let e = format!("{:#}", run(&cfg, dir.path(), true, None).unwrap_err());
        assert_mentions(&e, needles);
        assert_mentions(&e, &["state.json"]);
        println!("{e}");
    }
}

#[test]
fn resume_with_a_different_config_is_refused() {
    let cfg = tiny_cfg();
    let dir = tempfile::tempdir().unwrap();
    run(&cfg, dir.path(), false, Some(2)).unwrap();
    let mut other = cfg.clone();
    other.ppo.learning_rate = 1e-3;
    let e = format!("{:#}", run(&other, dir.path(), true, None).unwrap_err());
    assert_mentions(&e, &["ppo.learning_rate", "config.toml"]);
}

/// GridMaze that returns the reward `r` at its `n`-th step (`at = Some((n, r))`), or panics
/// at its `panic_at`-th.
struct FaultyMaze {
    inner: GridMaze,
    steps: usize,
    at: Option<(usize, f32)>,
    panic_at: Option<usize>,
}

impl FaultyMaze {
    /// The GridMaze of `cfg`, with the faults `at` and `panic_at`.
    fn new(
        cfg: &TrainConfig,
        at: Option<(usize, f32)>,
        panic_at: Option<usize>,
    ) -> Result<Self, EnvError> {
        let EnvConfig::Gridmaze(c) = &cfg.env else {
            unreachable!()
        };
        Ok(Self {
            inner: GridMaze::new(c.clone())?,
            steps: 0,
            at,
            panic_at,
        })
    }
}

impl Env for FaultyMaze {
    fn observation_space(&self) -> &BoxSpace {
        self.inner.observation_space()
    }
    fn action_space(&self) -> ActionSpace {
        self.inner.action_space()
    }
    fn reset(&mut self, seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
        self.inner.reset(seed, obs)
    }
    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step, EnvError> {
        let mut s = self.inner.step(action, obs)?;
        self.steps += 1;
        if Some(self.steps) == self.panic_at {
            panic!("injected panic at step {}", self.steps);
        }
        if let Some((_, r)) = self.at.filter(|(n, _)| *n == self.steps) {
            s.reward = r;
        }
        Ok(s)
    }
}

#[test]
fn non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint() {
    // An env's NaN is refused where it appears (below), so the loss is made non-finite by a
    // finite reward too large for f32 returns: the largest f32, unscaled, during update 3's
    // rollout (steps 17..24 of each env); checkpoint at update 2.
    let mut cfg = tiny_cfg();
    cfg.ppo.norm_reward = false;
    let dir = tempfile::tempdir().unwrap();
    let at = 2 * cfg.num_steps + 3;
    let make = |i: usize| FaultyMaze::new(&cfg, (i == 0).then_some((at, f32::MAX)), None);
    let result = train_envs(&cfg, make, dir.path());
    let e = format!("{:#}", result.unwrap_err());
    assert_mentions(&e, &["non-finite", "update 3", "loss", "update_000002"]);
    println!("{e}");
    let ckpt = open_latest(&dir.path().join("checkpoint")).unwrap();
    assert_eq!(ckpt.state.updates_done, 2);
    assert_eq!(
        read_metrics(dir.path().join("metrics.csv")).unwrap().len(),
        2
    );

    // A learning rate that blows the weights up stops with the same kind of error.
    let mut huge = tiny_cfg();
    huge.ppo.learning_rate = 1e30;
    huge.ppo.anneal_lr = false;
    let dir = tempfile::tempdir().unwrap();
    let e = format!("{:#}", run(&huge, dir.path(), false, None).unwrap_err());
    assert_mentions(&e, &["non-finite", "update"]);
    println!("{e}");
    // The run records where it diverged, for the experiment binaries to report.
    let d = fbrl::run_dir::divergence(dir.path()).expect("diverged.txt");
    assert!(d.update >= 1 && d.message.contains("non-finite"), "{d:?}");
    // A resume tries again from the last good checkpoint (and diverges again, rewriting it).
    let e = format!("{:#}", run(&huge, dir.path(), true, None).unwrap_err());
    assert_mentions(&e, &["non-finite"]);
    assert!(fbrl::run_dir::divergence(dir.path()).is_some());
}

/// A panic in an env's own code (a bug in a user's `step`) stops the run with an error naming
/// the env, the step and its episode's reset seed, instead of unwinding out of the trainer: the
/// last checkpoint stays the one to resume from, and the run's lock is released.
#[test]
fn a_panicking_env_stops_the_run_with_an_error_naming_it() {
    let cfg = tiny_cfg();
    let dir = tempfile::tempdir().unwrap();
    // A panic in env 1 during update 3's rollout; checkpoint at update 2.
    let at = 2 * cfg.num_steps + 3;
    let make = |i: usize| FaultyMaze::new(&cfg, None, (i == 1).then_some(at));
    let e = format!("{:#}", train_envs(&cfg, make, dir.path()).unwrap_err());
    assert_mentions(
        &e,
        &[
            "update 3",
            "env 1 panicked in step",
            "reset seed",
            &format!("injected panic at step {at}"),
        ],
    );
    assert_eq!(e.matches("injected panic").count(), 1, "said once: {e}");
    println!("{e}");
    let ckpt = open_latest(&dir.path().join("checkpoint")).unwrap();
    assert_eq!(ckpt.state.updates_done, 2);
    assert!(!dir.path().join(fbrl::run_lock::LOCK_FILE).exists());
}

/// A NaN or infinite reward or observation from an env is refused where it appears, naming the
/// env, the step and its episode's reset seed, instead of reaching the loss; the last
/// checkpoint stays the one to resume from.
#[test]
fn a_non_finite_reward_from_an_env_is_an_error_naming_it() {
    let cfg = tiny_cfg();
    let dir = tempfile::tempdir().unwrap();
    let at = 2 * cfg.num_steps + 3;
    let make = |i: usize| FaultyMaze::new(&cfg, (i == 2).then_some((at, f32::NAN)), None);
    let e = format!("{:#}", train_envs(&cfg, make, dir.path()).unwrap_err());
    assert_mentions(
        &e,
        &[
            "update 3",
            "env 2 returned a non-finite reward (NaN) in step",
            "reset seed",
        ],
    );
    println!("{e}");
    let ckpt = open_latest(&dir.path().join("checkpoint")).unwrap();
    assert_eq!(ckpt.state.updates_done, 2);
}
