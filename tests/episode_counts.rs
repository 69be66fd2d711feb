//! An env's named per-episode counts in `metrics.csv`: GridMaze's `goals_mean` (the header
//! the files had before counts existed), no count column for envs that count nothing, a
//! `<name>_mean` column for a custom env's own count, and runs made before counts existed
//! (`goals_mean` whatever the env) resuming with their columns.

mod ppo_common;

use agents::{PolicyConfig, PolicyKind};
use envs::{
    Action, ActionSpace, BoxSpace, CueRecallConfig, Env, EnvError, GridMazeConfig, Info, Step,
};
use fbrl::metrics::{METRICS_COLUMNS, MetricsRow, read_metrics};
use fbrl::{EnvConfig, TrainConfig};
use ppo_common::{train_envs, train_rows, train_until};

/// The header of a PPO GridMaze run's metrics.csv, as every run had it before counts.
const GRIDMAZE_HEADER: &str = "update,env_steps,wall_time_s,episodes,return_mean,return_min,\
    return_max,length_mean,goals_mean,success_rate,policy_loss,value_loss,entropy,approx_kl,\
    clip_frac,explained_var,grad_norm,lr,steps_per_s";

fn small_cfg(env: EnvConfig, updates: usize) -> TrainConfig {
    let mut policy = PolicyConfig::preset(PolicyKind::Mlp);
    policy.set("hidden", 16).unwrap();
    TrainConfig {
        seed: 3,
        env,
        policy,
        num_envs: 4,
        num_steps: 16,
        total_steps: (4 * 16 * updates) as u64,
        checkpoint_every: 1,
        threads: 1,
        ..TrainConfig::default()
    }
}

fn header(dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    text.lines().next().unwrap().to_string()
}

#[test]
fn gridmaze_logs_goals_mean_and_envs_without_counts_have_no_goals_column() {
    // Multi mode with reward 1 per goal and no step penalty: an episode's return is its
    // number of goals, so `goals_mean` must equal `return_mean` in every row.
    let dir = tempfile::tempdir().unwrap();
    let rows = train_rows(
        &small_cfg(EnvConfig::Gridmaze(GridMazeConfig::multi(7, 8)), 4),
        dir.path(),
    );
    assert_eq!(header(dir.path()), GRIDMAZE_HEADER);
    assert!(rows.iter().any(|r| r.counts.get("goals").unwrap() > 0.0));
    for r in &rows {
        assert!(r.episodes > 0);
        assert_eq!(r.counts.get("goals"), Some(r.return_mean), "{r:?}");
    }

    let plain = METRICS_COLUMNS.join(",");
    for env in [
        EnvConfig::CueRecall(CueRecallConfig::with_corridor(2)),
        EnvConfig::Cartpole(Default::default()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let rows = train_rows(&small_cfg(env, 2), dir.path());
        assert_eq!(header(dir.path()), plain);
        assert!(!header(dir.path()).contains("goals"));
        assert!(rows.iter().all(|r| r.counts.names.is_empty()));
    }
}

/// Walks `len` steps; step `t` (1-based) counts `t % 2` ticks, so an episode of 5 steps
/// totals 3 ticks.
struct Ticker {
    space: BoxSpace,
    t: u32,
    len: u32,
}

impl Env for Ticker {
    fn observation_space(&self) -> &BoxSpace {
        &self.space
    }
    fn action_space(&self) -> ActionSpace {
        ActionSpace::discrete(2)
    }
    fn reset(&mut self, _seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
        self.t = 0;
        obs[0] = 0.0;
        Ok(())
    }
    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step, EnvError> {
        action.discrete(2)?;
        if self.t == self.len {
            return Err(EnvError::StepAfterDone);
        }
        self.t += 1;
        obs[0] = self.t as f32 / self.len as f32;
        Ok(Step {
            reward: 1.0,
            truncated: self.t == self.len,
            info: Info::default().with_count("ticks", (self.t % 2) as f32),
            ..Step::default()
        })
    }
    fn episode_counts(&self) -> &'static [&'static str] {
        &["ticks"]
    }
    fn name(&self) -> String {
        "ticker".into()
    }
}

#[test]
fn a_custom_env_gets_a_column_per_declared_count() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_cfg(EnvConfig::custom_env(), 2);
    let make = |_| {
        Ok(Ticker {
            space: BoxSpace::uniform(1, 0.0, 1.0),
            t: 0,
            len: 5,
        })
    };
    envs::check_env(&mut make(0).unwrap()).unwrap();
    let summary = train_envs(&cfg, make, dir.path()).unwrap();
    let metrics = summary.run_dir.join("metrics.csv");
    let text = std::fs::read_to_string(&metrics).unwrap();
    let columns: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    assert_eq!(
        columns[7..10],
        ["length_mean", "ticks_mean", "success_rate"]
    );
    assert!(!columns.contains(&"goals_mean"));
    let rows = read_metrics(&metrics).unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        assert_eq!((r.length_mean, r.counts.get("ticks")), (5.0, Some(3.0)));
        assert_eq!(r.column("ticks_mean"), Some(3.0));
    }
}

/// A run made before counts existed: its metrics.csv has `goals_mean` (0 for an env without
/// goals) whatever the env. Resuming it keeps the column and appends rows that fit it.
#[test]
fn a_run_of_the_format_before_counts_resumes_with_its_columns() {
    let cfg = small_cfg(EnvConfig::CueRecall(CueRecallConfig::with_corridor(2)), 4);
    let straight = tempfile::tempdir().unwrap();
    let want = train_rows(&cfg, straight.path());

    let dir = tempfile::tempdir().unwrap();
    train_until(&cfg, dir.path(), false, Some(2)).unwrap();
    // Rewrite metrics.csv as the earlier version wrote it: `goals_mean` after `length_mean`.
    let path = dir.path().join("metrics.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let old: String = text
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let mut cells: Vec<&str> = line.split(',').collect();
            let goals = match (i, cells[3]) {
                (0, _) => "goals_mean",
                (_, "0") => "",
                _ => "0",
            };
            cells.insert(8, goals);
            cells.join(",") + "\n"
        })
        .collect();
    std::fs::write(&path, &old).unwrap();
    assert_eq!(header(dir.path()), GRIDMAZE_HEADER);

    train_until(&cfg, dir.path(), true, None).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with(&old),
        "the rows before the checkpoint are kept as they were"
    );
    let rows = read_metrics(&path).unwrap();
    assert_eq!(rows.len(), 4);
    let same = |a: &MetricsRow, b: &MetricsRow| {
        (
            a.update,
            a.episodes,
            a.return_mean.to_bits(),
            a.policy_loss.to_bits(),
        ) == (
            b.update,
            b.episodes,
            b.return_mean.to_bits(),
            b.policy_loss.to_bits(),
        )
    };
    for (got, want) in rows.iter().zip(&want) {
        assert!(same(got, want), "{got:?} vs {want:?}");
        // CueRecall counts no goals: 0 where episodes ended, as the earlier version wrote.
        let goals = got.counts.get("goals").unwrap();
        assert!(
            goals == 0.0 || (goals.is_nan() && got.episodes == 0),
            "{got:?}"
        );
    }
}
