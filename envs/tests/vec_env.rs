//! VecEnv: seeding, auto-reset, episode statistics, errors, parallel paths and resume.

mod common;

use envs::{
    Action, ActionBuf, ActionSpace, BoxSpace, Env, EnvError, EpisodeStats, GridMaze,
    GridMazeConfig, Info, Parallelism, Step, VecActions, VecEnv, VecEnvState, VecStep, derive_seed,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use common::step_error;

/// The episode under way in each env below: its seed, its step count and its length.
#[derive(Clone, Debug)]
struct Episode {
    seed: u64,
    t: u32,
    len: u32,
    started: bool,
    done: bool,
}

impl Episode {
    /// Before the first reset.
    fn new() -> Self {
        Self {
            seed: 0,
            t: 0,
            len: 0,
            started: false,
            done: false,
        }
    }

    /// Starts the episode of `seed`, `len` steps long.
    fn start(&mut self, seed: u64, len: u32) {
        self.seed = seed;
        self.t = 0;
        self.len = len;
        self.started = true;
        self.done = false;
    }

    /// Refuses a step before the first reset or after the end.
    fn check_step(&self) -> Result<(), EnvError> {
        if !self.started {
            return Err(EnvError::NotReset);
        }
        if self.done {
            return Err(EnvError::StepAfterDone);
        }
        Ok(())
    }

    /// Counts a step; whether it ends the episode.
    fn tick(&mut self) -> bool {
        self.t += 1;
        self.done = self.t == self.len;
        self.done
    }

    /// The fraction of the episode done.
    fn progress(&self) -> f32 {
        self.t as f32 / self.len as f32
    }

    /// The seed as an observation in `[0, 1)`.
    fn seed_obs(&self) -> f32 {
        (self.seed % 1000) as f32 / 1000.0
    }
}

/// A small deterministic env whose episodes are easy to predict: the length is `2 + seed % 5`,
/// even seeds terminate and odd seeds truncate, the reward is `action + 0.5·t`, action 2
/// reaches a goal, and the last step reports success when its action is 1.
#[derive(Clone, Debug)]
struct Walk {
    space: BoxSpace,
    ep: Episode,
    /// Env-level failure injection: `step` fails with this message at this step count.
    fail_at: Option<u32>,
    /// `step` panics at this step count (a bug in an env's own code).
    panic_at: Option<u32>,
    /// `reset` panics after this many resets.
    panic_at_reset: Option<u32>,
    /// Resets so far.
    resets: u32,
    /// `step` writes an infinite observation value at this step count.
    inf_obs_at: Option<u32>,
    /// `reset` writes a NaN observation value after this many resets.
    nan_obs_at_reset: Option<u32>,
}

impl Walk {
    fn new() -> Self {
        Self {
            space: BoxSpace::uniform(3, 0.0, 1.0),
            ep: Episode::new(),
            fail_at: None,
            panic_at: None,
            panic_at_reset: None,
            resets: 0,
            inf_obs_at: None,
            nan_obs_at_reset: None,
        }
    }

    fn write(&self, obs: &mut [f32], action: usize) {
        obs[0] = self.ep.progress();
        obs[1] = self.ep.seed_obs();
        obs[2] = action as f32 / 2.0;
    }
}

impl Env for Walk {
    fn observation_space(&self) -> &BoxSpace {
        &self.space
    }
    fn action_space(&self) -> ActionSpace {
        ActionSpace::discrete(3)
    }
    fn reset(&mut self, seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
        assert!(
            self.panic_at_reset != Some(self.resets),
            "simulated panic in reset"
        );
        self.ep.start(seed, 2 + (seed % 5) as u32);
        self.write(obs, 0);
        if self.nan_obs_at_reset == Some(self.resets) {
            obs[0] = f32::NAN;
        }
        self.resets += 1;
        Ok(())
    }
    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step, EnvError> {
        let action = action.discrete(3)?;
        self.ep.check_step()?;
        if self.fail_at == Some(self.ep.t) {
            return Err(EnvError::Other("simulated failure".into()));
        }
        assert!(self.panic_at != Some(self.ep.t), "simulated panic");
        let reward = action as f32 + 0.5 * self.ep.t as f32;
        let inf_obs = self.inf_obs_at == Some(self.ep.t);
        let end = self.ep.tick();
        self.write(obs, action);
        if inf_obs {
            obs[1] = f32::INFINITY;
        }
        Ok(Step {
            reward,
            terminated: end && self.ep.seed.is_multiple_of(2),
            truncated: end && self.ep.seed % 2 == 1,
            info: Info {
                success: end.then_some(action == 1),
                ..Info::default()
            }
            .with_count("goals", f32::from(u8::from(action == 2))),
        })
    }
}

/// Everything a VecEnv step hands out, copied.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    obs: Vec<f32>,
    final_obs: Vec<f32>,
    rewards: Vec<f32>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    infos: Vec<Info>,
    finished: Vec<(usize, EpisodeStats)>,
    masks: Vec<bool>,
}

impl Record {
    fn of(s: &VecStep) -> Self {
        Self {
            obs: s.obs.clone(),
            final_obs: s.final_obs.clone(),
            rewards: s.rewards.clone(),
            terminated: s.terminated.clone(),
            truncated: s.truncated.clone(),
            infos: s.infos.clone(),
            finished: s.finished.clone(),
            masks: s.masks.clone(),
        }
    }
}

/// The first observations and masks after a reset, then a record per step.
#[derive(Clone, Debug, PartialEq)]
struct Trace {
    first: Vec<f32>,
    first_masks: Vec<bool>,
    steps: Vec<Record>,
}

fn random_actions(n_envs: usize, n_actions: usize, steps: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..steps)
        .map(|_| {
            (0..n_envs)
                .map(|_| rng.random_range(0..n_actions))
                .collect()
        })
        .collect()
}

fn discrete_bufs(actions: &[Vec<usize>]) -> Vec<Vec<ActionBuf>> {
    actions
        .iter()
        .map(|step| step.iter().map(|&a| ActionBuf::Discrete(a)).collect())
        .collect()
}

/// Steps `venv` with one action per env, passed in the layout of their kind.
fn step_with<'v, E: Env>(
    venv: &'v mut VecEnv<E>,
    actions: &[ActionBuf],
) -> Result<&'v VecStep, EnvError> {
    let ints = || -> Vec<usize> {
        actions
            .iter()
            .flat_map(|a| match a {
                ActionBuf::Discrete(a) => vec![*a],
                ActionBuf::MultiDiscrete(a) => a.clone(),
                ActionBuf::Continuous(_) => panic!("mixed action kinds"),
            })
            .collect()
    };
    match actions.first() {
        Some(ActionBuf::Continuous(_)) => {
            let flat: Vec<f32> = actions
                .iter()
                .flat_map(|a| match a {
                    ActionBuf::Continuous(x) => x.clone(),
                    _ => panic!("mixed action kinds"),
                })
                .collect();
            venv.step_actions(VecActions::Continuous(&flat))
        }
        Some(ActionBuf::MultiDiscrete(_)) => venv.step_actions(VecActions::MultiDiscrete(&ints())),
        _ => venv.step(&ints()),
    }
}

fn run_actions<E: Env>(venv: &mut VecEnv<E>, actions: &[Vec<ActionBuf>]) -> Trace {
    let first = venv.reset().unwrap().to_vec();
    let first_masks = venv.last().masks.clone();
    let steps = actions
        .iter()
        .map(|a| Record::of(step_with(venv, a).unwrap()))
        .collect();
    Trace {
        first,
        first_masks,
        steps,
    }
}

fn run<E: Env>(venv: &mut VecEnv<E>, actions: &[Vec<usize>]) -> Trace {
    run_actions(venv, &discrete_bufs(actions))
}

/// The masks the documented semantics give: none when no env gives one (or the space has
/// none), else every env's mask, all `true` for an env without one.
fn reference_masks<E: Env>(envs: &[E], masked: bool) -> Vec<bool> {
    let Some(width) = envs[0].action_space().mask_width() else {
        return Vec::new();
    };
    if !masked {
        return Vec::new();
    }
    envs.iter()
        .flat_map(|e| {
            e.action_mask()
                .map_or_else(|| vec![true; width], <[bool]>::to_vec)
        })
        .collect()
}

/// The documented semantics, written out with plain loops over standalone envs: env i's
/// k-th episode is reset with `derive_seed(derive_seed(base, i), k)`, an env that ends is
/// reset at once, `final_obs` is the observation that followed the action.
fn reference<E: Env>(envs: Vec<E>, base: u64, actions: &[Vec<usize>]) -> Trace {
    reference_actions(envs, base, &discrete_bufs(actions))
}

fn reference_actions<E: Env>(mut envs: Vec<E>, base: u64, actions: &[Vec<ActionBuf>]) -> Trace {
    let n = envs.len();
    let d = envs[0].observation_space().flat_len();
    let mut episode = vec![0u64; n];
    let mut stats = vec![EpisodeStats::default(); n];
    let mut obs = vec![0.0; n * d];
    for (i, env) in envs.iter_mut().enumerate() {
        env.reset(
            derive_seed(derive_seed(base, i as u64), 0),
            &mut obs[i * d..(i + 1) * d],
        )
        .unwrap();
    }
    let masked = envs.iter().any(|e| e.action_mask().is_some());
    let first_masks = reference_masks(&envs, masked);
    let mut steps = Vec::new();
    for a in actions {
        let mut rec = Record {
            obs: vec![0.0; n * d],
            final_obs: vec![0.0; n * d],
            rewards: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            infos: vec![Info::default(); n],
            finished: Vec::new(),
            masks: Vec::new(),
        };
        for (i, env) in envs.iter_mut().enumerate() {
            let row = &mut rec.final_obs[i * d..(i + 1) * d];
            let s = env.step(a[i].as_action(), row).unwrap();
            rec.rewards[i] = s.reward;
            rec.terminated[i] = s.terminated;
            rec.truncated[i] = s.truncated;
            rec.infos[i] = s.info;
            stats[i].ret += s.reward;
            stats[i].length += 1;
            for (name, value) in s.info.counts.iter() {
                stats[i].counts.add(name, value);
            }
            let next = &mut rec.obs[i * d..(i + 1) * d];
            if s.done() {
                let mut st = std::mem::take(&mut stats[i]);
                st.success = s.info.success;
                st.truncated = s.truncated && !s.terminated;
                rec.finished.push((i, st));
                episode[i] += 1;
                env.reset(derive_seed(derive_seed(base, i as u64), episode[i]), next)
                    .unwrap();
            } else {
                next.copy_from_slice(&rec.final_obs[i * d..(i + 1) * d]);
            }
        }
        rec.masks = reference_masks(&envs, masked);
        steps.push(rec);
    }
    Trace {
        first: obs,
        first_masks,
        steps,
    }
}

fn maze(size: usize, horizon: u32) -> GridMaze {
    GridMaze::new(GridMazeConfig::multi(size, horizon)).unwrap()
}

/// A VecEnv of `n` copies of `env`, of base seed `seed`, stepping on the path `p`.
fn copies<E: Env + Clone>(env: E, n: usize, seed: u64, p: Parallelism) -> VecEnv<E> {
    VecEnv::new(vec![env; n], seed).unwrap().with_parallelism(p)
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

#[test]
fn walk_matches_the_documented_semantics() {
    let n = 7;
    let actions = random_actions(n, 3, 40, 1);
    let expected = reference(vec![Walk::new(); n], 11, &actions);
    let mut venv = VecEnv::new(vec![Walk::new(); n], 11).unwrap();
    let got = run(&mut venv, &actions);
    assert_eq!(got, expected);
    // The episodes really did end, both ways, with statistics.
    let finished: Vec<_> = got.steps.iter().flat_map(|r| r.finished.clone()).collect();
    assert!(finished.len() > 20, "{} episodes ended", finished.len());
    assert!(finished.iter().any(|(_, s)| s.truncated));
    assert!(finished.iter().any(|(_, s)| !s.truncated));
}

#[test]
fn finished_stats_are_those_of_the_episode() {
    // One env, seed known: the episode length is 2 + seed % 5.
    let base = 3;
    let seed0 = derive_seed(derive_seed(base, 0), 0);
    let len0 = 2 + (seed0 % 5) as usize;
    let mut venv = VecEnv::new(vec![Walk::new()], base).unwrap();
    venv.reset().unwrap();
    // Actions 2, 2, …, then 1 on the last step: every step but the last reaches a goal.
    for t in 0..len0 {
        let a = if t + 1 == len0 { 1 } else { 2 };
        let s = venv.step(&[a]).unwrap();
        if t + 1 < len0 {
            assert!(s.finished.is_empty());
            assert!(!s.done(0));
        } else {
            assert!(s.done(0));
            assert_eq!(s.terminated[0], seed0.is_multiple_of(2));
            let ret: f32 = (0..len0)
                .map(|k| if k + 1 == len0 { 1.0 } else { 2.0 } + 0.5 * k as f32)
                .sum();
            let mut expected = EpisodeStats {
                ret,
                length: len0 as u32,
                success: Some(true),
                truncated: seed0 % 2 == 1,
                ..EpisodeStats::default()
            };
            expected.counts.set("goals", len0 as f32 - 1.0);
            assert_eq!(expected.count("goals"), Some(len0 as f32 - 1.0));
            assert_eq!(s.finished, vec![(0, expected)]);
        }
    }
    assert_eq!(venv.current_episode(0), Some(&EpisodeStats::default()));
}

#[test]
fn auto_reset_keeps_the_final_obs_and_starts_the_next_episode() {
    let base = 5;
    let n = 3;
    let mut venv = VecEnv::new(vec![Walk::new(); n], base).unwrap();
    venv.reset().unwrap();
    let d = venv.obs_dim();
    let mut ended = 0;
    for _ in 0..12 {
        let s = venv.step(&[1, 1, 1]).unwrap().clone();
        for i in 0..n {
            let (obs, fin) = (&s.obs[i * d..(i + 1) * d], &s.final_obs[i * d..(i + 1) * d]);
            if s.done(i) {
                ended += 1;
                // The final obs is the end of the walk (t = len), the new obs its start.
                assert_eq!(fin[0], 1.0);
                assert_eq!(obs[0], 0.0);
                assert_ne!(obs[1], fin[1], "the next episode has a new seed");
                let k = venv.envs()[i].ep.seed;
                let mut fresh = Walk::new();
                let mut first = vec![0.0; d];
                fresh.reset(k, &mut first).unwrap();
                assert_eq!(obs, &first[..]);
            } else {
                assert_eq!(obs, fin, "final_obs equals obs where nothing ended");
                assert!(obs[0] > 0.0 && obs[0] < 1.0);
            }
        }
    }
    assert!(ended >= 6);
}

#[test]
fn episode_seeds_follow_the_documented_rule() {
    let base = 77;
    let cfg = GridMazeConfig::multi(9, 5);
    let n = 4;
    let mut venv = VecEnv::from_fn(n, base, |_| GridMaze::new(cfg.clone())).unwrap();
    venv.reset().unwrap();
    // Horizon 5: every env starts episode 1 after 5 steps, episode 2 after 10.
    for k in 0..3u64 {
        for i in 0..n {
            let mut lone = GridMaze::new(cfg.clone()).unwrap();
            let mut obs = vec![0.0; venv.obs_dim()];
            lone.reset(derive_seed(derive_seed(base, i as u64), k), &mut obs)
                .unwrap();
            let e = &venv.envs()[i];
            assert_eq!(e.cells(), lone.cells(), "env {i} episode {k}: maze");
            assert_eq!(e.agent_pos(), lone.agent_pos());
            assert_eq!(e.goal_pos(), lone.goal_pos());
            assert_eq!(
                &venv.last().obs[i * obs.len()..(i + 1) * obs.len()],
                &obs[..]
            );
        }
        for _ in 0..5 {
            venv.step(&vec![0; n]).unwrap();
        }
    }
    // reset() starts over at episode 0.
    let again = venv.reset().unwrap().to_vec();
    let mut fresh = VecEnv::from_fn(n, base, |_| GridMaze::new(cfg.clone())).unwrap();
    assert_eq!(fresh.reset().unwrap(), &again[..]);
}

#[test]
fn gridmaze_matches_the_reference_on_every_path_and_thread_count() {
    // 37 envs (not a multiple of any chunk count), horizon 16 so that many episodes end.
    let n = 37;
    let base = 2024;
    let make = |_| GridMaze::new(GridMazeConfig::multi(9, 16));
    let actions = random_actions(n, 4, 120, 9);
    let expected = reference((0..n).map(|i| make(i).unwrap()).collect(), base, &actions);
    assert!(expected.steps.iter().any(|r| !r.finished.is_empty()));
    assert!(
        expected
            .steps
            .iter()
            .any(|r| r.infos.iter().any(|i| i.counts.get("goals") == Some(1.0)))
    );

    for p in [
        Parallelism::Sequential,
        Parallelism::Rayon,
        Parallelism::Auto,
    ] {
        let mut venv = VecEnv::from_fn(n, base, make).unwrap().with_parallelism(p);
        assert_eq!(venv.uses_rayon(), p == Parallelism::Rayon);
        assert_eq!(
            run(&mut venv, &actions),
            expected,
            "{p:?} on the global pool"
        );
        for threads in [1, 2, 4] {
            let got = pool(threads).install(|| {
                let mut venv = VecEnv::from_fn(n, base, make).unwrap().with_parallelism(p);
                run(&mut venv, &actions)
            });
            assert_eq!(got, expected, "{p:?} with {threads} threads");
        }
    }
}

#[test]
fn auto_picks_rayon_for_many_envs_and_matches() {
    use envs::vec_env::AUTO_RAYON_MIN_ENVS;
    let make = |_| GridMaze::new(GridMazeConfig::multi(7, 8));
    // Below the threshold Auto stays sequential, in a pool or not.
    let few = AUTO_RAYON_MIN_ENVS - 1;
    assert!(!VecEnv::from_fn(few, 1, make).unwrap().uses_rayon());
    assert!(!pool(2).install(|| VecEnv::from_fn(few, 1, make).unwrap().uses_rayon()));

    let n = AUTO_RAYON_MIN_ENVS + 3;
    let actions = random_actions(n, 4, 30, 4);
    let mut seq = VecEnv::from_fn(n, 1, make)
        .unwrap()
        .with_parallelism(Parallelism::Sequential);
    let expected = run(&mut seq, &actions);
    // From the threshold on, Auto picks rayon wherever the pool has several threads, and
    // gives the sequential results.
    let mut auto = VecEnv::from_fn(n, 1, make).unwrap();
    assert_eq!(auto.uses_rayon(), rayon::current_num_threads() > 1);
    assert_eq!(
        run(&mut auto, &actions),
        expected,
        "Auto on the global pool"
    );
    for threads in [1, 2, 4] {
        let (uses, got) = pool(threads).install(|| {
            let mut venv = VecEnv::from_fn(n, 1, make).unwrap();
            (venv.uses_rayon(), run(&mut venv, &actions))
        });
        assert_eq!(uses, threads > 1, "Auto with {threads} threads");
        assert_eq!(got, expected, "Auto with {threads} threads");
    }
}

#[test]
fn state_and_restore_reproduce_the_continuation() {
    let n = 9;
    let base = 31;
    let make = |_| GridMaze::new(GridMazeConfig::multi(9, 20));
    let actions = random_actions(n, 4, 90, 3);
    for p in [Parallelism::Sequential, Parallelism::Rayon] {
        let mut venv = VecEnv::from_fn(n, base, make).unwrap().with_parallelism(p);
        venv.reset().unwrap();
        for a in &actions[..47] {
            venv.step(a).unwrap();
        }
        let saved = venv.state();
        let obs_at_save = venv.last().obs.clone();
        assert!(
            saved
                .envs
                .iter()
                .any(|e| e.episode > 0 && !e.actions.is_empty())
        );
        let json = serde_json::to_string(&saved).unwrap();
        let continuation: Vec<Record> = actions[47..]
            .iter()
            .map(|a| Record::of(venv.step(a).unwrap()))
            .collect();
        assert!(continuation.iter().any(|r| !r.finished.is_empty()));

        // A fresh VecEnv with another base seed, restored from the JSON state.
        let restored: VecEnvState = serde_json::from_str(&json).unwrap();
        let mut other = VecEnv::from_fn(n, 999, make).unwrap().with_parallelism(p);
        assert_eq!(other.restore(&restored).unwrap(), &obs_at_save[..]);
        assert_eq!(other.base_seed(), base);
        assert_eq!(other.state(), saved);
        // Everything matches, including the statistics of episodes that straddle the save
        // point.
        for (a, expected) in actions[47..].iter().zip(&continuation) {
            assert_eq!(&Record::of(other.step(a).unwrap()), expected);
        }
    }
}

#[test]
fn restore_rejects_a_state_the_envs_do_not_reproduce() {
    let mut venv = VecEnv::new(vec![Walk::new(); 2], 0).unwrap();
    venv.reset().unwrap();
    venv.step(&[1, 1]).unwrap();
    let mut state = venv.state();
    // Wrong number of envs.
    let mut short = state.clone();
    short.envs.pop();
    let e = venv.restore(&short).unwrap_err().to_string();
    assert!(e.contains("1 envs") && e.contains("has 2"), "{e}");
    // A recorded return the replay does not give.
    state.envs[1].ret += 1.0;
    let e = venv.restore(&state).unwrap_err().to_string();
    assert!(
        e.starts_with("env 1: ") && e.contains("not deterministic"),
        "{e}"
    );
    // More actions than the episode lasts.
    let mut state = venv.state();
    state.envs[0].actions = vec![0; 10];
    let e = venv.restore(&state).unwrap_err().to_string();
    assert!(
        e.starts_with("env 0: ") && e.contains("ended the episode"),
        "{e}"
    );
    // A recorded count the replay does not give.
    venv.reset().unwrap();
    venv.step(&[1, 1]).unwrap();
    let mut state = venv.state();
    state.envs[1].counts.0.insert("goals".into(), 1.0);
    let e = venv.restore(&state).unwrap_err().to_string();
    assert!(
        e.starts_with("env 1: ") && e.contains("goals 1") && e.contains("goals 0"),
        "{e}"
    );
}

/// A VecEnv state as checkpoints held it before envs had named counts: `goals` per env.
#[test]
fn states_of_the_format_before_counts_load_and_restore() {
    let base = 31;
    let make = |_| GridMaze::new(GridMazeConfig::multi(9, 40));
    let mut venv = VecEnv::from_fn(2, base, make).unwrap();
    venv.reset().unwrap();
    // The oracle reaches a goal in env 0 within the first steps.
    let mut goals = [0u32; 2];
    for _ in 0..25 {
        let a: Vec<usize> = venv
            .envs_mut()
            .iter_mut()
            .map(|e| e.oracle_action())
            .collect();
        let s = venv.step(&a).unwrap();
        for (g, info) in goals.iter_mut().zip(&s.infos) {
            *g += info.counts.get("goals").unwrap() as u32;
        }
    }
    assert!(goals[0] > 0, "{goals:?}");
    let state = venv.state();
    assert_eq!(state.envs[0].counts.0["goals"], goals[0] as f32);
    // The same state in the earlier format.
    let old = serde_json::json!({
        "base_seed": state.base_seed,
        "envs": state.envs.iter().zip(goals).map(|(e, g)| serde_json::json!({
            "episode": e.episode, "actions": e.actions, "ret": e.ret, "goals": g,
        })).collect::<Vec<_>>(),
    });
    let loaded: VecEnvState = serde_json::from_value(old.clone()).unwrap();
    assert_eq!(loaded, state);
    let mut other = VecEnv::from_fn(2, 999, make).unwrap();
    assert_eq!(other.restore(&loaded).unwrap(), &venv.last().obs[..]);
    // A wrong old-format count is still caught by the replay.
    let mut wrong = old;
    wrong["envs"][0]["goals"] = (goals[0] + 1).into();
    let wrong: VecEnvState = serde_json::from_value(wrong).unwrap();
    let e = other.restore(&wrong).unwrap_err().to_string();
    assert!(e.contains("not deterministic"), "{e}");

    // An env that counts nothing saved `goals: 0`.
    let mut plain =
        VecEnv::new(vec![envs::CueRecall::new(Default::default()).unwrap()], 4).unwrap();
    plain.reset().unwrap();
    plain.step(&[1]).unwrap();
    let state = plain.state();
    assert!(state.envs[0].counts.is_empty());
    let mut old = serde_json::to_value(&state).unwrap();
    old["envs"][0]["goals"] = 0.into();
    let loaded: VecEnvState = serde_json::from_value(old).unwrap();
    plain.restore(&loaded).unwrap();
    assert_eq!(plain.state(), state);
}

#[test]
fn errors_name_the_env_and_the_problem() {
    let mut venv = VecEnv::new(vec![Walk::new(); 4], 0).unwrap();
    let e = venv.step(&[0; 4]).unwrap_err().to_string();
    assert!(e.contains("before reset"), "{e}");
    venv.reset().unwrap();
    let e = venv.step(&[0, 1, 2]).unwrap_err().to_string();
    assert_eq!(
        e,
        "expected 4 action values (4 envs × 1 per action of Discrete(3)), got 3"
    );
    let e = venv.step(&[0, 1, 2, 7]).unwrap_err().to_string();
    assert_eq!(
        e,
        "env 3: invalid action 7: the action space has 3 actions (0..3)"
    );
    // Refused actions step nothing: the next valid step still works.
    venv.step(&[0; 4]).unwrap();

    // Construction errors.
    let e = VecEnv::<Walk>::new(vec![], 0).err().unwrap().to_string();
    assert!(e.contains("at least one env"), "{e}");
    let e = VecEnv::from_fn(3, 0, |i| {
        let mut cfg = GridMazeConfig::multi(9, 10);
        if i == 2 {
            cfg.size = 8;
        }
        GridMaze::new(cfg)
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.starts_with("env 2: ") && e.contains("size"), "{e}");
    let mut envs = vec![Walk::new(); 3];
    envs[1].space = BoxSpace::uniform(4, 0.0, 1.0);
    let e = VecEnv::new(envs, 0).err().unwrap().to_string();
    assert!(
        e.contains("env 1") && e.contains("differs from env 0"),
        "{e}"
    );
}

/// Steps `envs` (base seed `base`, path `p`) twice with action 0, the second step failing:
/// returns the VecEnv and that step's error, after checking that the VecEnv then refuses to
/// step until it is reset.
fn second_step_fails(envs: Vec<Walk>, base: u64, p: Parallelism) -> (VecEnv<Walk>, String) {
    let n = envs.len();
    let mut venv = VecEnv::new(envs, base).unwrap().with_parallelism(p);
    venv.reset().unwrap();
    venv.step(&vec![0; n]).unwrap();
    let e = venv.step(&vec![0; n]).unwrap_err().to_string();
    let refused = venv.step(&vec![0; n]).unwrap_err().to_string();
    assert!(refused.contains("call VecEnv::reset"), "{refused}");
    (venv, e)
}

/// A panic in an env's own `step` or `reset` (a bug in a user's env) is an error on every
/// path, naming the env, what it was doing with its episode's seed (to reproduce it alone)
/// and the panic's message; the VecEnv then needs a reset, as after any env error.
#[test]
fn a_panicking_env_is_an_error_naming_it_and_its_seed() {
    for p in [Parallelism::Sequential, Parallelism::Rayon] {
        let mut envs = vec![Walk::new(); 6];
        envs[4].panic_at = Some(1);
        let (_, e) = second_step_fails(envs, 7, p);
        let seed = derive_seed(derive_seed(7, 4), 0);
        assert_eq!(
            e,
            format!("env 4 panicked in step 2 of episode 0 (reset seed {seed}): simulated panic"),
            "{p:?}"
        );

        // In the first reset, and in the automatic reset after an episode ends.
        for (resets, episode) in [(0, 0), (1, 1)] {
            let mut envs = vec![Walk::new(); 6];
            envs[1].panic_at_reset = Some(resets);
            let mut venv = VecEnv::new(envs, 7).unwrap().with_parallelism(p);
            let e = if resets == 0 {
                venv.reset().unwrap_err().to_string()
            } else {
                venv.reset().unwrap();
                // Episodes last at least 2 steps and at most 6.
                (0..6)
                    .find_map(|_| venv.step(&[0; 6]).err())
                    .expect("env 1's episode ends within 6 steps")
                    .to_string()
            };
            let seed = derive_seed(derive_seed(7, 1), episode);
            assert_eq!(
                e,
                format!(
                    "env 1 panicked in reset for episode {episode} (seed {seed}): simulated \
                     panic in reset"
                ),
                "{p:?}"
            );
        }
    }
}

/// A NaN or infinite observation from an env's `step` or `reset` is refused where it appears,
/// naming the env, the element and the step or reset with its seed.
#[test]
fn a_non_finite_observation_is_an_error_naming_the_env() {
    for p in [Parallelism::Sequential, Parallelism::Rayon] {
        let mut envs = vec![Walk::new(); 6];
        envs[3].inf_obs_at = Some(1);
        let (_, e) = second_step_fails(envs, 5, p);
        let seed = derive_seed(derive_seed(5, 3), 0);
        assert_eq!(
            e,
            format!(
                "env 3 returned a non-finite observation (element 1 is inf) in step 2 of \
                 episode 0 (reset seed {seed})"
            ),
            "{p:?}"
        );

        let mut envs = vec![Walk::new(); 6];
        envs[2].nan_obs_at_reset = Some(0);
        let mut venv = VecEnv::new(envs, 5).unwrap().with_parallelism(p);
        let e = venv.reset().unwrap_err().to_string();
        let seed = derive_seed(derive_seed(5, 2), 0);
        assert_eq!(
            e,
            format!(
                "env 2 returned a non-finite observation (element 0 is NaN) in reset for \
                 episode 0 (seed {seed})"
            ),
            "{p:?}"
        );
    }
}

#[test]
fn an_env_failure_names_the_env_and_requires_a_reset() {
    for p in [Parallelism::Sequential, Parallelism::Rayon] {
        let mut envs = vec![Walk::new(); 6];
        envs[4].fail_at = Some(1);
        let (mut venv, e) = second_step_fails(envs, 0, p);
        assert_eq!(e, "env 4: simulated failure", "{p:?}");
        venv.reset().unwrap();
        venv.step(&[0; 6]).unwrap();
    }
}

#[test]
fn the_lowest_failing_env_is_reported_on_every_path() {
    // Envs 1 and 4 fail at the same step; on the rayon paths they may fail on different
    // threads, and the error must still name env 1, as the sequential path does.
    let make = || {
        let mut envs = vec![Walk::new(); 6];
        envs[1].fail_at = Some(1);
        envs[4].fail_at = Some(1);
        VecEnv::new(envs, 0).unwrap()
    };
    let check = |p: Parallelism, label: &str| {
        let mut venv = make().with_parallelism(p);
        venv.reset().unwrap();
        venv.step(&[0; 6]).unwrap();
        let e = venv.step(&[0; 6]).unwrap_err().to_string();
        assert_eq!(e, "env 1: simulated failure", "{p:?} {label}");
    };
    for p in [Parallelism::Sequential, Parallelism::Rayon] {
        check(p, "on the global pool");
        for threads in [1, 2, 4] {
            pool(threads).install(|| check(p, &format!("in a pool of {threads}")));
        }
    }
}

#[test]
fn accessors_report_the_spaces() {
    let cfg = GridMazeConfig::multi(9, 10);
    let venv = VecEnv::from_fn(5, 0, |_| GridMaze::new(cfg.clone())).unwrap();
    assert_eq!(venv.num_envs(), 5);
    assert_eq!(venv.obs_dim(), cfg.obs_len());
    assert_eq!(venv.num_actions(), 4);
    assert_eq!(venv.observation_space().flat_len(), cfg.obs_len());
    assert_eq!(venv.parallelism(), Parallelism::Auto);
    assert_eq!(maze(9, 10).observation_space(), venv.observation_space());
}

/// A deterministic continuous env: the action is a force in `[-1, 1]` and a gain in `[0, 2]`;
/// the position moves by `force × gain / 4` (within `[0, 1]`), the reward is `force × gain`,
/// and episodes last `3 + seed % 4` steps and truncate.
#[derive(Clone, Debug)]
struct Drift {
    space: BoxSpace,
    ep: Episode,
    pos: f32,
}

impl Drift {
    fn new() -> Self {
        Self {
            space: BoxSpace::uniform(3, 0.0, 1.0),
            ep: Episode::new(),
            pos: 0.0,
        }
    }

    fn space() -> ActionSpace {
        ActionSpace::Box(BoxSpace {
            shape: vec![2],
            low: vec![-1.0, 0.0],
            high: vec![1.0, 2.0],
        })
    }

    fn write(&self, obs: &mut [f32]) {
        obs[0] = self.pos;
        obs[1] = self.ep.progress();
        obs[2] = self.ep.seed_obs();
    }
}

impl Env for Drift {
    fn observation_space(&self) -> &BoxSpace {
        &self.space
    }
    fn action_space(&self) -> ActionSpace {
        Drift::space()
    }
    fn reset(&mut self, seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
        self.ep.start(seed, 3 + (seed % 4) as u32);
        self.pos = 0.2 + (seed % 7) as f32 / 10.0;
        self.write(obs);
        Ok(())
    }
    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step, EnvError> {
        Drift::space().check(action)?;
        let Action::Continuous(x) = action else {
            unreachable!("the space accepts only continuous actions")
        };
        self.ep.check_step()?;
        self.pos = (self.pos + x[0] * x[1] / 4.0).clamp(0.0, 1.0);
        let end = self.ep.tick();
        self.write(obs);
        Ok(Step {
            reward: x[0] * x[1],
            truncated: end,
            ..Step::default()
        })
    }
}

/// A deterministic masked env, `MultiDiscrete([3, 2])` or `Discrete(3)`: dimension 0 forbids
/// value `(seed + t) % 3`, dimension 1 forbids value 1 on odd steps; forbidden actions are
/// refused when the env gives its mask. The reward is `a0 + 10·a1`; episodes last
/// `2 + seed % 3` steps and terminate.
#[derive(Clone, Debug)]
struct Pick {
    space: BoxSpace,
    multi: bool,
    ep: Episode,
    last: [usize; 2],
    mask: Vec<bool>,
    /// Whether `action_mask` gives the mask and the env enforces it.
    gives_mask: bool,
    /// Steps taken since the env was made; from this many on, the mask forbids every value
    /// of dimension 0.
    steps_taken: u32,
    empty_mask_from: Option<u32>,
    /// The mask has one flag too few.
    short_mask: bool,
}

impl Pick {
    fn multi() -> Self {
        Self {
            space: BoxSpace::uniform(4, 0.0, 1.0),
            multi: true,
            ep: Episode::new(),
            last: [0, 0],
            mask: Vec::new(),
            gives_mask: true,
            steps_taken: 0,
            empty_mask_from: None,
            short_mask: false,
        }
    }

    fn discrete() -> Self {
        Self {
            multi: false,
            ..Self::multi()
        }
    }

    /// The value of dimension 0 the mask forbids now.
    fn forbidden(&self) -> usize {
        ((self.ep.seed + u64::from(self.ep.t)) % 3) as usize
    }

    fn update(&mut self, obs: &mut [f32]) {
        let f = self.forbidden();
        self.mask = (0..3).map(|v| v != f).collect();
        if self.multi {
            self.mask.extend([true, self.ep.t.is_multiple_of(2)]);
        }
        if self.empty_mask_from.is_some_and(|k| self.steps_taken >= k) {
            self.mask[..3].fill(false);
        }
        if self.short_mask {
            self.mask.pop();
        }
        obs[0] = self.ep.progress();
        obs[1] = self.last[0] as f32 / 2.0;
        obs[2] = self.last[1] as f32;
        obs[3] = self.ep.seed_obs();
    }
}

impl Env for Pick {
    fn observation_space(&self) -> &BoxSpace {
        &self.space
    }
    fn action_space(&self) -> ActionSpace {
        if self.multi {
            ActionSpace::multi_discrete(vec![3, 2])
        } else {
            ActionSpace::discrete(3)
        }
    }
    fn reset(&mut self, seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
        self.ep.start(seed, 2 + (seed % 3) as u32);
        self.last = [0, 0];
        self.update(obs);
        Ok(())
    }
    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step, EnvError> {
        self.action_space().check(action)?;
        let a = match action {
            Action::Discrete(a) => [a, 0],
            Action::MultiDiscrete(a) => [a[0], a[1]],
            Action::Continuous(_) => unreachable!("the space refuses continuous actions"),
        };
        self.ep.check_step()?;
        if self.gives_mask && (a[0] == self.forbidden() || (a[1] == 1 && self.ep.t % 2 == 1)) {
            return Err(EnvError::ActionOutsideSpace(format!(
                "{action} is forbidden now"
            )));
        }
        let end = self.ep.tick();
        self.steps_taken += 1;
        self.last = a;
        self.update(obs);
        Ok(Step {
            reward: (a[0] + 10 * a[1]) as f32,
            terminated: end,
            ..Step::default()
        })
    }
    fn action_mask(&self) -> Option<&[bool]> {
        self.gives_mask.then_some(self.mask.as_slice())
    }
}

/// `steps` rounds of random actions of `Drift`'s space for `n_envs` envs.
fn random_box_actions(n_envs: usize, steps: usize, seed: u64) -> Vec<Vec<ActionBuf>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..steps)
        .map(|_| {
            (0..n_envs)
                .map(|_| {
                    ActionBuf::Continuous(vec![
                        rng.random_range(-1.0..=1.0),
                        rng.random_range(0.0..=2.0),
                    ])
                })
                .collect()
        })
        .collect()
}

/// A random action per env among those its row of `masks` allows (all, where `masks` is
/// empty), for the discrete dimensions `nvec`.
fn allowed_actions(
    masks: &[bool],
    nvec: &[usize],
    n_envs: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<ActionBuf> {
    let width: usize = nvec.iter().sum();
    (0..n_envs)
        .map(|i| {
            let mut start = i * width;
            let values: Vec<usize> = nvec
                .iter()
                .map(|&n| {
                    let ok: Vec<usize> = (0..n)
                        .filter(|&v| masks.is_empty() || masks[start + v])
                        .collect();
                    start += n;
                    ok[rng.random_range(0..ok.len())]
                })
                .collect();
            if nvec.len() == 1 {
                ActionBuf::Discrete(values[0])
            } else {
                ActionBuf::MultiDiscrete(values)
            }
        })
        .collect()
}

/// Resets `venv` and steps it `steps` times with random allowed actions; returns the trace
/// and the actions taken.
fn drive<E: Env>(
    venv: &mut VecEnv<E>,
    nvec: &[usize],
    steps: usize,
    seed: u64,
) -> (Trace, Vec<Vec<ActionBuf>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = venv.num_envs();
    let first = venv.reset().unwrap().to_vec();
    let first_masks = venv.last().masks.clone();
    let mut actions = Vec::new();
    let mut records = Vec::new();
    for _ in 0..steps {
        let a = allowed_actions(&venv.last().masks, nvec, n, &mut rng);
        records.push(Record::of(step_with(venv, &a).unwrap()));
        actions.push(a);
    }
    let trace = Trace {
        first,
        first_masks,
        steps: records,
    };
    (trace, actions)
}

fn flat_f32(actions: &[ActionBuf]) -> Vec<f32> {
    actions
        .iter()
        .flat_map(|a| match a {
            ActionBuf::Continuous(x) => x.clone(),
            other => panic!("not continuous: {other}"),
        })
        .collect()
}

fn flat_usize(actions: &[ActionBuf]) -> Vec<usize> {
    actions
        .iter()
        .flat_map(|a| match a {
            ActionBuf::Discrete(a) => vec![*a],
            ActionBuf::MultiDiscrete(a) => a.clone(),
            other => panic!("not discrete: {other}"),
        })
        .collect()
}

#[test]
fn continuous_envs_step_and_auto_reset() {
    let n = 5;
    let base = 8;
    let actions = random_box_actions(n, 30, 2);
    let expected = reference_actions(vec![Drift::new(); n], base, &actions);
    let ended: Vec<_> = expected
        .steps
        .iter()
        .flat_map(|r| r.finished.clone())
        .collect();
    assert!(ended.len() > 20, "{} episodes ended", ended.len());
    assert!(ended.iter().all(|(_, s)| s.truncated && s.length >= 3));
    for p in [Parallelism::Sequential, Parallelism::Rayon] {
        let mut venv = copies(Drift::new(), n, base, p);
        assert_eq!(venv.action_space(), &Drift::space());
        assert_eq!(venv.num_actions(), 2);
        let got = run_actions(&mut venv, &actions);
        assert!(!venv.has_masks());
        assert!(got.first_masks.is_empty());
        assert_eq!(got, expected, "{p:?}");
    }
    // Where an env ended, `final_obs` is the end of its walk and `obs` the next start.
    let d = 3;
    for r in &expected.steps {
        for (i, _) in &r.finished {
            assert_eq!(r.final_obs[i * d + 1], 1.0);
            assert_eq!(r.obs[i * d + 1], 0.0);
        }
    }
}

#[test]
fn multi_discrete_envs_step_and_auto_reset() {
    let n = 6;
    let base = 4;
    for p in [Parallelism::Sequential, Parallelism::Rayon] {
        let mut venv = copies(Pick::multi(), n, base, p);
        assert_eq!(
            venv.action_space(),
            &ActionSpace::multi_discrete(vec![3, 2])
        );
        assert_eq!(venv.num_actions(), 2);
        let (got, actions) = drive(&mut venv, &[3, 2], 40, 5);
        assert!(venv.has_masks());
        let expected = reference_actions(vec![Pick::multi(); n], base, &actions);
        assert_eq!(got, expected, "{p:?}");
        let ended: Vec<_> = got.steps.iter().flat_map(|r| r.finished.clone()).collect();
        assert!(ended.len() > 40, "{} episodes ended", ended.len());
        assert!(ended.iter().all(|(_, s)| !s.truncated));
        // Both values of dimension 1 were taken: its mask forbids value 1 only on odd steps.
        for value in [0, 1] {
            assert!(
                actions
                    .iter()
                    .flatten()
                    .any(|a| matches!(a, ActionBuf::MultiDiscrete(v) if v[1] == value)),
                "value {value} of dimension 1 never taken"
            );
        }
    }
}

/// Restoring `bad` into `venv` is refused with an error about env `i` that contains `needle`.
fn assert_restore_refused<E: Env>(venv: &mut VecEnv<E>, bad: &VecEnvState, i: usize, needle: &str) {
    let e = venv.restore(bad).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("env {i}: ")) && e.contains(needle),
        "{e}"
    );
}

/// Steps `venv` through `actions[..at]`, saves, steps the rest; then restores a fresh VecEnv
/// (another base seed) from the saved state as JSON and checks it continues identically.
fn check_save_and_restore<E: Env>(
    mut venv: VecEnv<E>,
    mut fresh: VecEnv<E>,
    actions: &[Vec<ActionBuf>],
    at: usize,
) -> VecEnvState {
    venv.reset().unwrap();
    for a in &actions[..at] {
        step_with(&mut venv, a).unwrap();
    }
    let saved = venv.state();
    let at_save = Record::of(venv.last());
    let json = serde_json::to_string(&saved).unwrap();
    let continuation: Vec<Record> = actions[at..]
        .iter()
        .map(|a| Record::of(step_with(&mut venv, a).unwrap()))
        .collect();
    assert!(continuation.iter().any(|r| !r.finished.is_empty()));

    let restored: VecEnvState = serde_json::from_str(&json).unwrap();
    assert_eq!(restored, saved);
    assert_eq!(fresh.restore(&restored).unwrap(), &at_save.obs[..]);
    assert_eq!(fresh.last().masks, at_save.masks);
    assert_eq!(fresh.state(), saved);
    for (a, expected) in actions[at..].iter().zip(&continuation) {
        assert_eq!(&Record::of(step_with(&mut fresh, a).unwrap()), expected);
    }
    saved
}

#[test]
fn state_and_restore_reproduce_continuous_actions() {
    let n = 7;
    let base = 12;
    let actions = random_box_actions(n, 40, 6);
    for p in [Parallelism::Sequential, Parallelism::Rayon] {
        let make = |seed| copies(Drift::new(), n, seed, p);
        let saved = check_save_and_restore(make(base), make(999), &actions, 21);
        // The continuous actions of the current episodes are what is replayed.
        assert!(saved.envs.iter().all(|e| e.actions.is_empty()));
        assert!(
            saved
                .envs
                .iter()
                .all(|e| e.continuous_actions.len() % 2 == 0)
        );
        assert!(
            saved
                .envs
                .iter()
                .any(|e| e.episode > 0 && !e.continuous_actions.is_empty())
        );
        let json = serde_json::to_string(&saved).unwrap();
        assert!(json.contains("\"continuous_actions\""), "{json}");

        // Changing one saved value changes the replay, which is detected.
        let i = saved
            .envs
            .iter()
            .position(|e| !e.continuous_actions.is_empty())
            .unwrap();
        let mut other = make(base);
        let mut bad = saved.clone();
        bad.envs[i].continuous_actions[0] = -bad.envs[i].continuous_actions[0] - 0.5;
        assert_restore_refused(&mut other, &bad, i, "not deterministic");
        // Half an action, or discrete actions for a continuous space, are refused.
        let mut bad = saved.clone();
        bad.envs[i].continuous_actions.pop();
        assert_restore_refused(&mut other, &bad, i, "not whole actions");
        let mut bad = saved.clone();
        bad.envs[i].actions = vec![1];
        assert_restore_refused(&mut other, &bad, i, "not whole actions");
        assert_eq!(other.restore(&saved).unwrap().len(), n * 3);
    }
}

#[test]
fn state_and_restore_reproduce_multi_discrete_actions() {
    let n = 5;
    let base = 3;
    let mut probe = VecEnv::new(vec![Pick::multi(); n], base).unwrap();
    let (_, actions) = drive(&mut probe, &[3, 2], 30, 8);
    for p in [Parallelism::Sequential, Parallelism::Rayon] {
        let make = |seed| copies(Pick::multi(), n, seed, p);
        let saved = check_save_and_restore(make(base), make(999), &actions, 13);
        assert!(saved.envs.iter().all(|e| e.continuous_actions.is_empty()));
        assert!(saved.envs.iter().all(|e| e.actions.len() % 2 == 0));
        assert!(
            saved
                .envs
                .iter()
                .any(|e| e.episode > 0 && !e.actions.is_empty())
        );
        // An odd number of values is not a whole number of [direction, stride] actions.
        let i = saved
            .envs
            .iter()
            .position(|e| !e.actions.is_empty())
            .unwrap();
        let mut bad = saved.clone();
        bad.envs[i].actions.pop();
        assert_restore_refused(&mut make(base), &bad, i, "not whole actions");
    }
}

#[test]
fn a_wrong_number_or_kind_of_actions_is_an_error() {
    // Continuous: 3 envs × 2 values.
    let mut venv = VecEnv::new(vec![Drift::new(); 3], 1).unwrap();
    let e = step_error(&mut venv, VecActions::Continuous(&[0.0; 6]));
    assert!(e.contains("before reset"), "{e}");
    venv.reset().unwrap();
    assert_eq!(
        step_error(&mut venv, VecActions::Continuous(&[0.0; 5])),
        "expected 6 action values (3 envs × 2 per action of Box(shape [2])), got 5"
    );
    assert_eq!(
        venv.step(&[0, 0, 0]).unwrap_err().to_string(),
        "expected 6 action values (3 envs × 2 per action of Box(shape [2])), got 3"
    );
    assert_eq!(
        step_error(&mut venv, VecActions::Discrete(&[0; 6])),
        "env 0: invalid action: action 0 is not an action of Box(shape [2])"
    );
    assert_eq!(
        step_error(&mut venv, VecActions::MultiDiscrete(&[0; 6])),
        "env 0: invalid action: action [0, 0] is not an action of Box(shape [2])"
    );
    assert_eq!(
        step_error(
            &mut venv,
            VecActions::Continuous(&[0.0, 1.0, 0.5, 1.0, 1.5, 1.0])
        ),
        "env 2: invalid action: action element 0 is 1.5, outside [-1, 1]"
    );
    assert_eq!(
        step_error(
            &mut venv,
            VecActions::Continuous(&[0.0, 1.0, 0.5, f32::NAN, 0.0, 1.0])
        ),
        "env 1: invalid action: action element 1 is NaN, outside [0, 2]"
    );
    // Refused actions step nothing: the next steps are those of the reference.
    let actions = random_box_actions(3, 6, 1);
    let expected = reference_actions(vec![Drift::new(); 3], 1, &actions);
    for (a, want) in actions.iter().zip(&expected.steps) {
        let s = venv
            .step_actions(VecActions::Continuous(&flat_f32(a)))
            .unwrap();
        assert_eq!(&Record::of(s), want);
    }

    // MultiDiscrete([3, 2]): 2 envs × 2 values.
    let mut venv = VecEnv::new(vec![Pick::multi(); 2], 1).unwrap();
    venv.reset().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let ok = flat_usize(&allowed_actions(&venv.last().masks, &[3, 2], 2, &mut rng));
    assert_eq!(
        step_error(&mut venv, VecActions::MultiDiscrete(&ok[..3])),
        "expected 4 action values (2 envs × 2 per action of MultiDiscrete([3, 2])), got 3"
    );
    assert_eq!(
        step_error(&mut venv, VecActions::Continuous(&[0.0; 4])),
        "env 0: invalid action: action [0.0, 0.0] is not an action of MultiDiscrete([3, 2])"
    );
    assert_eq!(
        venv.step(&ok).unwrap_err().to_string(),
        format!(
            "env 0: invalid action: action {} is not an action of MultiDiscrete([3, 2])",
            ok[0]
        )
    );
    let mut bad = ok.clone();
    bad[3] = 2;
    assert_eq!(
        step_error(&mut venv, VecActions::MultiDiscrete(&bad)),
        format!(
            "env 1: invalid action: action [{}, 2]: dimension 1 is 2, outside 0..2",
            ok[2]
        )
    );
    let s = venv.step_actions(VecActions::MultiDiscrete(&ok)).unwrap();
    let expected = reference_actions(
        vec![Pick::multi(); 2],
        1,
        &[vec![
            ActionBuf::MultiDiscrete(ok[..2].to_vec()),
            ActionBuf::MultiDiscrete(ok[2..].to_vec()),
        ]],
    );
    assert_eq!(Record::of(s), expected.steps[0]);
}

#[test]
fn masks_follow_resets_and_steps() {
    let n = 4;
    let base = 21;
    let mut envs = vec![Pick::multi(); n];
    envs[1].gives_mask = false;
    let mut venv = VecEnv::new(envs, base).unwrap();
    assert!(!venv.has_masks(), "no reset yet");
    venv.reset().unwrap();
    assert!(venv.has_masks());
    // Row i: dimension 0 forbids (seed + t) % 3, dimension 1 forbids 1 on odd steps; env 1
    // gives no mask, so its row allows everything.
    let expected_row = |e: &Pick| -> Vec<bool> {
        if !e.gives_mask {
            return vec![true; 5];
        }
        let f = ((e.ep.seed + u64::from(e.ep.t)) % 3) as usize;
        let mut row: Vec<bool> = (0..3).map(|v| v != f).collect();
        row.extend([true, e.ep.t.is_multiple_of(2)]);
        row
    };
    let check_rows = |venv: &VecEnv<Pick>| {
        let masks = &venv.last().masks;
        assert_eq!(masks.len(), n * 5);
        for (i, e) in venv.envs().iter().enumerate() {
            assert_eq!(&masks[i * 5..(i + 1) * 5], &expected_row(e)[..], "env {i}");
        }
    };
    check_rows(&venv);
    for (i, e) in venv.envs().iter().enumerate() {
        assert_eq!(e.ep.seed, derive_seed(derive_seed(base, i as u64), 0));
        assert_eq!(e.ep.t, 0);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut episodes = vec![0u64; n];
    let mut resets = 0;
    for _ in 0..25 {
        let a = allowed_actions(&venv.last().masks, &[3, 2], n, &mut rng);
        let s = step_with(&mut venv, &a).unwrap();
        let ended: Vec<usize> = (0..n).filter(|&i| s.done(i)).collect();
        check_rows(&venv);
        for i in ended {
            // After an auto-reset the row is the mask at the start of the next episode.
            resets += 1;
            episodes[i] += 1;
            let e = &venv.envs()[i];
            assert_eq!(e.ep.t, 0);
            assert_eq!(
                e.ep.seed,
                derive_seed(derive_seed(base, i as u64), episodes[i])
            );
        }
    }
    assert!(resets > 10, "{resets} auto-resets");

    // No masks anywhere: `has_masks` is false and `masks` stays empty.
    let mut envs = vec![Pick::multi(); 2];
    envs.iter_mut().for_each(|e| e.gives_mask = false);
    let mut venv = VecEnv::new(envs, 0).unwrap();
    venv.reset().unwrap();
    assert!(!venv.has_masks());
    assert!(venv.last().masks.is_empty());
    let mut venv = VecEnv::new(vec![Walk::new(); 2], 0).unwrap();
    venv.reset().unwrap();
    let s = venv.step(&[0, 1]).unwrap();
    assert!(s.masks.is_empty());
    assert!(!venv.has_masks());
}

#[test]
fn a_masked_action_is_refused_naming_the_env() {
    let n = 3;
    let base = 40;
    let mut venv = VecEnv::new(vec![Pick::multi(); n], base).unwrap();
    venv.reset().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut taken = Vec::new();
    for round in 0..2 {
        let ok = allowed_actions(&venv.last().masks, &[3, 2], n, &mut rng);
        // Env 2 takes the value of dimension 0 its mask forbids.
        let f = venv.envs()[2].forbidden();
        let mut bad = flat_usize(&ok);
        bad[4] = f;
        let e = step_error(&mut venv, VecActions::MultiDiscrete(&bad));
        assert_eq!(
            e,
            format!(
                "env 2: invalid action: action [{f}, {}] is forbidden by the action mask \
                 (dimension 0)",
                bad[5]
            )
        );
        // On odd steps dimension 1 forbids value 1.
        if venv.envs()[1].ep.t % 2 == 1 {
            let mut bad = flat_usize(&ok);
            bad[3] = 1;
            let e = step_error(&mut venv, VecActions::MultiDiscrete(&bad));
            assert_eq!(
                e,
                format!(
                    "env 1: invalid action: action [{}, 1] is forbidden by the action mask \
                     (dimension 1)",
                    bad[2]
                )
            );
        } else {
            assert_eq!(round, 0, "env 1 is at an odd step in round 1");
        }
        // Nothing was stepped: the allowed actions continue the reference.
        let s = venv
            .step_actions(VecActions::MultiDiscrete(&flat_usize(&ok)))
            .unwrap()
            .clone();
        taken.push(ok);
        let expected = reference_actions(vec![Pick::multi(); n], base, &taken);
        assert_eq!(&Record::of(&s), expected.steps.last().unwrap());
    }

    // Discrete(3) with a mask: `step(&[usize])` refuses the forbidden action too.
    let mut venv = VecEnv::new(vec![Pick::discrete(); 2], 5).unwrap();
    venv.reset().unwrap();
    assert!(venv.has_masks());
    assert_eq!(venv.last().masks.len(), 2 * 3);
    let f = venv.envs()[0].forbidden();
    let other = (venv.envs()[1].forbidden() + 1) % 3;
    let e = venv.step(&[f, other]).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("env 0: invalid action: action {f} is forbidden by the action mask (dimension 0)")
    );
    venv.step(&[(f + 1) % 3, other]).unwrap();
}

#[test]
fn a_mask_that_forbids_every_action_names_the_env() {
    // Env 1's mask forbids every value of dimension 0 from its second step on.
    for p in [Parallelism::Sequential, Parallelism::Rayon] {
        let mut envs = vec![Pick::multi(); 3];
        envs[1].empty_mask_from = Some(2);
        let mut venv = VecEnv::new(envs, 7).unwrap().with_parallelism(p);
        venv.reset().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let a = allowed_actions(&venv.last().masks, &[3, 2], 3, &mut rng);
        step_with(&mut venv, &a).unwrap();
        let a = allowed_actions(&venv.last().masks, &[3, 2], 3, &mut rng);
        let e = step_with(&mut venv, &a).unwrap_err().to_string();
        assert_eq!(
            e,
            "env 1: action_mask forbids every value of dimension 0; at least one action must \
             be allowed",
            "{p:?}"
        );
        // The VecEnv needs a reset after that.
        let e = step_with(&mut venv, &a).unwrap_err().to_string();
        assert!(e.contains("call VecEnv::reset"), "{e}");
    }

    // At reset already, for a Discrete space: every action is forbidden.
    let mut envs = vec![Pick::discrete(); 3];
    envs[2].empty_mask_from = Some(0);
    let mut venv = VecEnv::new(envs, 7).unwrap();
    let e = venv.reset().unwrap_err().to_string();
    assert_eq!(
        e,
        "env 2: action_mask forbids every value of dimension 0; at least one action must be \
         allowed"
    );
    let e = venv.step(&[0, 0, 0]).unwrap_err().to_string();
    assert!(e.contains("before reset"), "{e}");

    // A mask of the wrong length names the env too.
    let mut envs = vec![Pick::multi(); 3];
    envs[1].short_mask = true;
    let mut venv = VecEnv::new(envs, 7).unwrap();
    let e = venv.reset().unwrap_err().to_string();
    assert_eq!(
        e,
        "env 1: action_mask has 4 flags, the MultiDiscrete([3, 2]) action space needs 5"
    );
}
