//! VecEnv: seeding, auto-reset, episode statistics, errors, parallel paths and resume.

use envs::{
    BoxSpace, Discrete, Env, EnvError, EpisodeStats, GridMaze, GridMazeConfig, Info, Parallelism,
    Step, VecEnv, VecEnvState, derive_seed,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A small deterministic env whose episodes are easy to predict: the length is `2 + seed % 5`,
/// even seeds terminate and odd seeds truncate, the reward is `action + 0.5·t`, action 2
/// reaches a goal, and the last step reports success when its action is 1.
#[derive(Clone, Debug)]
struct Walk {
    space: BoxSpace,
    seed: u64,
    t: u32,
    len: u32,
    started: bool,
    done: bool,
    /// Env-level failure injection: `step` fails with this message at this step count.
    fail_at: Option<u32>,
}

impl Walk {
    fn new() -> Self {
        Self {
            space: BoxSpace::uniform(3, 0.0, 1.0),
            seed: 0,
            t: 0,
            len: 0,
            started: false,
            done: false,
            fail_at: None,
        }
    }

    fn write(&self, obs: &mut [f32], action: usize) {
        obs[0] = self.t as f32 / self.len as f32;
        obs[1] = (self.seed % 1000) as f32 / 1000.0;
        obs[2] = action as f32 / 2.0;
    }
}

impl Env for Walk {
    fn observation_space(&self) -> &BoxSpace {
        &self.space
    }
    fn action_space(&self) -> Discrete {
        Discrete { n: 3 }
    }
    fn reset(&mut self, seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
        self.seed = seed;
        self.t = 0;
        self.len = 2 + (seed % 5) as u32;
        self.started = true;
        self.done = false;
        self.write(obs, 0);
        Ok(())
    }
    fn step(&mut self, action: usize, obs: &mut [f32]) -> Result<Step, EnvError> {
        if action >= 3 {
            return Err(EnvError::InvalidAction { action, n: 3 });
        }
        if !self.started {
            return Err(EnvError::NotReset);
        }
        if self.done {
            return Err(EnvError::StepAfterDone);
        }
        if self.fail_at == Some(self.t) {
            return Err(EnvError::Other("simulated failure".into()));
        }
        let reward = action as f32 + 0.5 * self.t as f32;
        self.t += 1;
        self.write(obs, action);
        let end = self.t == self.len;
        self.done = end;
        Ok(Step {
            reward,
            terminated: end && self.seed.is_multiple_of(2),
            truncated: end && self.seed % 2 == 1,
            info: Info {
                goal_reached: action == 2,
                success: end.then_some(action == 1),
            },
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

fn run<E: Env>(venv: &mut VecEnv<E>, actions: &[Vec<usize>]) -> (Vec<f32>, Vec<Record>) {
    let first = venv.reset().unwrap().to_vec();
    let records = actions
        .iter()
        .map(|a| {
            let s = venv.step(a).unwrap();
            Record {
                obs: s.obs.clone(),
                final_obs: s.final_obs.clone(),
                rewards: s.rewards.clone(),
                terminated: s.terminated.clone(),
                truncated: s.truncated.clone(),
                infos: s.infos.clone(),
                finished: s.finished.clone(),
            }
        })
        .collect();
    (first, records)
}

/// The documented semantics, written out with plain loops over standalone envs: env i's
/// k-th episode is reset with `derive_seed(derive_seed(base, i), k)`, an env that ends is
/// reset at once, `final_obs` is the observation that followed the action.
fn reference<E: Env>(
    mut envs: Vec<E>,
    base: u64,
    actions: &[Vec<usize>],
) -> (Vec<f32>, Vec<Record>) {
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
    let first = obs.clone();
    let mut records = Vec::new();
    for a in actions {
        let mut rec = Record {
            obs: vec![0.0; n * d],
            final_obs: vec![0.0; n * d],
            rewards: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            infos: vec![Info::default(); n],
            finished: Vec::new(),
        };
        for (i, env) in envs.iter_mut().enumerate() {
            let row = &mut rec.final_obs[i * d..(i + 1) * d];
            let s = env.step(a[i], row).unwrap();
            rec.rewards[i] = s.reward;
            rec.terminated[i] = s.terminated;
            rec.truncated[i] = s.truncated;
            rec.infos[i] = s.info;
            stats[i].ret += s.reward;
            stats[i].length += 1;
            stats[i].goals += u32::from(s.info.goal_reached);
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
        records.push(rec);
    }
    (first, records)
}

fn maze(size: usize, horizon: u32) -> GridMaze {
    GridMaze::new(GridMazeConfig::multi(size, horizon)).unwrap()
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
    let finished: Vec<_> = got.1.iter().flat_map(|r| r.finished.clone()).collect();
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
            let expected = EpisodeStats {
                ret,
                length: len0 as u32,
                goals: len0 as u32 - 1,
                success: Some(true),
                truncated: seed0 % 2 == 1,
            };
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
                let k = venv.envs()[i].seed;
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
    assert!(expected.1.iter().any(|r| !r.finished.is_empty()));
    assert!(
        expected
            .1
            .iter()
            .any(|r| r.infos.iter().any(|i| i.goal_reached))
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
            .map(|a| {
                let s = venv.step(a).unwrap();
                Record {
                    obs: s.obs.clone(),
                    final_obs: s.final_obs.clone(),
                    rewards: s.rewards.clone(),
                    terminated: s.terminated.clone(),
                    truncated: s.truncated.clone(),
                    infos: s.infos.clone(),
                    finished: s.finished.clone(),
                }
            })
            .collect();
        assert!(continuation.iter().any(|r| !r.finished.is_empty()));

        // A fresh VecEnv with another base seed, restored from the JSON state.
        let restored: VecEnvState = serde_json::from_str(&json).unwrap();
        let mut other = VecEnv::from_fn(n, 999, make).unwrap().with_parallelism(p);
        assert_eq!(other.restore(&restored).unwrap(), &obs_at_save[..]);
        assert_eq!(other.base_seed(), base);
        assert_eq!(other.state(), saved);
        for (a, expected) in actions[47..].iter().zip(&continuation) {
            let s = other.step(a).unwrap();
            assert_eq!(&s.obs, &expected.obs);
            assert_eq!(&s.final_obs, &expected.final_obs);
            assert_eq!(&s.rewards, &expected.rewards);
            assert_eq!(&s.terminated, &expected.terminated);
            assert_eq!(&s.truncated, &expected.truncated);
            assert_eq!(&s.infos, &expected.infos);
            // Statistics of episodes that straddle the save point are complete.
            assert_eq!(&s.finished, &expected.finished);
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
}

#[test]
fn errors_name_the_env_and_the_problem() {
    let mut venv = VecEnv::new(vec![Walk::new(); 4], 0).unwrap();
    let e = venv.step(&[0; 4]).unwrap_err().to_string();
    assert!(e.contains("before reset"), "{e}");
    venv.reset().unwrap();
    let e = venv.step(&[0, 1, 2]).unwrap_err().to_string();
    assert_eq!(e, "expected 4 actions (one per env), got 3");
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

#[test]
fn an_env_failure_names_the_env_and_requires_a_reset() {
    for p in [Parallelism::Sequential, Parallelism::Rayon] {
        let mut envs = vec![Walk::new(); 6];
        envs[4].fail_at = Some(1);
        let mut venv = VecEnv::new(envs, 0).unwrap().with_parallelism(p);
        venv.reset().unwrap();
        venv.step(&[0; 6]).unwrap();
        let e = venv.step(&[0; 6]).unwrap_err().to_string();
        assert_eq!(e, "env 4: simulated failure", "{p:?}");
        let e = venv.step(&[0; 6]).unwrap_err().to_string();
        assert!(e.contains("call VecEnv::reset"), "{e}");
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
