//! Resuming envs that cannot replay their episodes ([`envs::Env::resumes_by_replay`] is
//! `false`, as for Gymnasium envs in Python): the trainer does not claim a replay it cannot
//! do. An env that replays differently is refused when it says it replays; when it says it
//! does not, the episodes in progress are dropped, each env starts its next episode, the
//! trainer reports how many it dropped, and the run finishes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use envs::{Action, ActionSpace, BoxSpace, Env, EnvError, Info, Step};
use fbrl::{EnvConfig, RunStart, TrainConfig, TrainOptions};

/// Resets of all `Drift` envs so far: what makes their first observation differ on a replay.
static RESETS: AtomicU32 = AtomicU32::new(0);

/// Runs of this binary train one at a time (the policy initialisation uses a global RNG).
static TRAIN_LOCK: Mutex<()> = Mutex::new(());

/// An env whose first observation depends on how many resets happened before in the process
/// (a stand-in for an env whose state lives elsewhere): five steps, reward 1 each.
struct Drift {
    space: BoxSpace,
    t: u32,
    x: f32,
    replays: bool,
}

impl Drift {
    fn new(replays: bool) -> Self {
        Self {
            space: BoxSpace::uniform(2, 0.0, 1.0),
            t: 0,
            x: 0.0,
            replays,
        }
    }
}

impl Env for Drift {
    fn observation_space(&self) -> &BoxSpace {
        &self.space
    }
    fn action_space(&self) -> ActionSpace {
        ActionSpace::discrete(2)
    }
    fn reset(&mut self, _seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
        self.t = 0;
        // Never the same value twice in the process, so that a replay can never match by
        // chance, whichever test of this binary reset envs before.
        self.x = 1.0 / (RESETS.fetch_add(1, Ordering::Relaxed) + 2) as f32;
        obs.copy_from_slice(&[self.x, 0.0]);
        Ok(())
    }
    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step, EnvError> {
        action.discrete(2)?;
        self.t += 1;
        obs.copy_from_slice(&[self.x, self.t as f32 / 5.0]);
        Ok(Step {
            reward: 1.0,
            terminated: self.t == 5,
            truncated: false,
            info: Info::default(),
        })
    }
    fn resumes_by_replay(&self) -> bool {
        self.replays
    }
    fn name(&self) -> String {
        "drift".into()
    }
}

/// 4 envs × 8 steps per update, episodes of 5 steps: at every checkpoint each env is 3 steps
/// into an episode.
fn cfg() -> TrainConfig {
    let mut cfg = TrainConfig {
        num_envs: 4,
        num_steps: 8,
        total_steps: 4 * 8 * 3,
        checkpoint_every: 1,
        env: EnvConfig::custom("drift"),
        ..TrainConfig::default()
    };
    cfg.ppo.num_minibatches = 2;
    cfg.policy = agents::PolicyConfig::preset(agents::PolicyKind::Mlp);
    cfg.policy.set("hidden", 8).unwrap();
    cfg
}

/// Trains `cfg()` on `Drift` envs in `dir`, the run starting (or resuming) there; the
/// [`RunStart`] the trainer reported comes back with the result.
fn train(
    dir: &std::path::Path,
    replays: bool,
    resume: bool,
    stop: Option<usize>,
) -> (anyhow::Result<fbrl::RunSummary>, Option<RunStart>) {
    let _guard = TRAIN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let started = Mutex::new(None);
    let result = fbrl::train(
        &cfg(),
        |_| Ok(Drift::new(replays)),
        TrainOptions {
            run_dir: Some(dir.to_path_buf()),
            resume,
            quiet: true,
            stop_after_updates: stop,
            on_start: Some(Box::new(|s: &RunStart| {
                *started.lock().unwrap() = Some(s.clone());
            })),
            ..Default::default()
        },
    );
    let started = started.lock().unwrap().clone();
    (result, started)
}

#[test]
fn an_env_that_claims_to_replay_but_does_not_is_refused_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train(&run, true, false, Some(1)).0.unwrap();
    let e = format!("{:#}", train(&run, true, true, None).0.unwrap_err());
    assert!(e.contains("does not give the saved observations"), "{e}");
}

#[test]
fn envs_that_cannot_replay_restart_their_episodes_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (result, started) = train(&run, false, false, Some(1));
    result.unwrap();
    assert_eq!(
        started.unwrap().dropped_episodes,
        None,
        "a new run drops nothing"
    );
    let (result, started) = train(&run, false, true, None);
    let summary = result.unwrap();
    assert_eq!(summary.updates_done, 3);
    let started = started.unwrap();
    assert_eq!(started.updates_done, 1);
    assert_eq!(
        started.dropped_episodes,
        Some(4),
        "each env was 3 steps into an episode at the checkpoint"
    );
    let rows = fbrl::metrics::read_metrics(run.join("metrics.csv")).unwrap();
    let updates: Vec<usize> = rows.iter().map(|r| r.update).collect();
    assert_eq!(updates, [1, 2, 3]);
    // After the restart every episode runs its full 5 steps: the dropped ones are not counted
    // as finished (they would be shorter).
    assert!(
        rows[1..]
            .iter()
            .all(|r| r.episodes == 0 || r.length_mean == 5.0),
        "{rows:?}"
    );
    assert!(
        fbrl::trainer::dropped_episodes_note(4).contains("4 episode(s) in progress"),
        "the note the CLI prints names the count"
    );
}
