//! GridMaze: determinism, maze structure, observation encoding, modes, oracles, errors,
//! wall masks and `move_run` actions.

use std::collections::VecDeque;

use envs::gridmaze::{
    ACTION_DOWN, ACTION_FORWARD, ACTION_LEFT, ACTION_RIGHT, ACTION_TURN_LEFT, ACTION_TURN_RIGHT,
    ACTION_UP, STRIDE_RUN, STRIDE_WALK,
};
use envs::{
    Action, ActionBuf, ActionMode, ActionSpace, Cell, Direction, Env, EnvError, GridMaze,
    GridMazeConfig, MazeMode, Pos, ReferencePolicy, VecActions, VecEnv, check_env, derive_seed,
    reference_stats, save_gif,
};
use proptest::prelude::*;

/// One-hot of a visible cell: wall, floor, goal.
const W: [f32; 3] = [1.0, 0.0, 0.0];
const F: [f32; 3] = [0.0, 1.0, 0.0];
const G: [f32; 3] = [0.0, 0.0, 1.0];

fn view(cells: [[f32; 3]; 9]) -> Vec<f32> {
    cells.concat()
}

fn obs_buf(env: &GridMaze) -> Vec<f32> {
    vec![0.0; env.observation_space().flat_len()]
}

/// Whether the step reached the goal (its count `goals` is 1).
fn reached(s: &envs::Step) -> bool {
    s.info.counts.get("goals") == Some(1.0)
}

#[test]
fn goals_are_a_declared_count_reported_on_every_step() {
    let mut env = GridMaze::new(GridMazeConfig::multi(7, 30)).unwrap();
    assert_eq!(env.episode_counts(), ["goals"]);
    let mut obs = obs_buf(&env);
    env.reset(3, &mut obs).unwrap();
    let mut total = 0.0;
    while !env.is_done() {
        let a = env.oracle_action();
        let s = env.step(a.into(), &mut obs).unwrap();
        let goals = s.info.counts.get("goals");
        assert!(goals == Some(0.0) || goals == Some(1.0), "{goals:?}");
        assert_eq!(s.info.counts.len(), 1);
        total += goals.unwrap();
    }
    assert!(total > 0.0);
    let st = env.episode_stats();
    assert_eq!(st.count("goals"), Some(total));
    assert!(st.to_string().contains(&format!("goals {total}")), "{st}");
}

/// A cheap deterministic action stream.
fn actions(seed: u64, n: usize, len: usize) -> Vec<usize> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        })
        .collect()
}

/// Runs an episode with the given actions (stopping at done) and records everything.
fn trajectory(
    cfg: &GridMazeConfig,
    seed: u64,
    acts: &[usize],
) -> Vec<(Vec<f32>, f32, bool, bool, Pos)> {
    let mut env = GridMaze::new(cfg.clone()).unwrap();
    let mut obs = obs_buf(&env);
    env.reset(seed, &mut obs).unwrap();
    let mut out = vec![(obs.clone(), 0.0, false, false, env.agent_pos())];
    for &a in acts {
        let s = env.step(a.into(), &mut obs).unwrap();
        out.push((
            obs.clone(),
            s.reward,
            s.terminated,
            s.truncated,
            env.agent_pos(),
        ));
        if s.done() {
            break;
        }
    }
    out
}

/// Checks that the maze is perfect: maze cells (odd, odd) are floor, (even, even) are walls,
/// the outer ring is wall, passages = cells − 1, and every open cell is connected.
fn assert_perfect(env: &GridMaze) {
    let n = env.size();
    let cells = env.cells();
    let m = (n - 1) / 2;
    let mut rooms = 0;
    let mut passages = 0;
    for r in 0..n {
        for c in 0..n {
            let open = cells[r][c] != Cell::Wall;
            if r == 0 || c == 0 || r == n - 1 || c == n - 1 {
                assert!(!open, "outer wall open at {r},{c}");
            } else if r % 2 == 1 && c % 2 == 1 {
                assert!(open, "maze cell {r},{c} is a wall");
                rooms += 1;
            } else if r % 2 == 0 && c % 2 == 0 {
                assert!(!open, "pillar {r},{c} is open");
            } else if open {
                passages += 1;
            }
        }
    }
    assert_eq!(rooms, m * m);
    assert_eq!(passages, m * m - 1, "a perfect maze has cells − 1 passages");
    assert_eq!(
        reachable(env, env.agent_pos()),
        rooms + passages,
        "maze not connected"
    );
}

/// Number of open cells reachable from `from` (independent BFS).
fn reachable(env: &GridMaze, from: Pos) -> usize {
    let n = env.size();
    let mut seen = vec![false; n * n];
    let mut q = VecDeque::from([from]);
    seen[from.row * n + from.col] = true;
    let mut count = 0;
    while let Some(p) = q.pop_front() {
        count += 1;
        let nbs = [
            (p.row.wrapping_sub(1), p.col),
            (p.row + 1, p.col),
            (p.row, p.col.wrapping_sub(1)),
            (p.row, p.col + 1),
        ];
        for (r, c) in nbs {
            let q2 = Pos::new(r, c);
            if r < n && c < n && env.is_open(q2) && !seen[r * n + c] {
                seen[r * n + c] = true;
                q.push_back(q2);
            }
        }
    }
    count
}

#[test]
fn same_seed_same_trajectory_different_seed_differs() {
    for cfg in [
        GridMazeConfig::multi(9, 64),
        GridMazeConfig::single(11, 200),
        GridMazeConfig::multi(7, 64).egocentric(),
        GridMazeConfig {
            loop_density: 0.3,
            time_feature: true,
            ..GridMazeConfig::multi(13, 100)
        },
    ] {
        let n = cfg.num_actions();
        let acts = actions(7, n, 300);
        let a = trajectory(&cfg, 42, &acts);
        let b = trajectory(&cfg, 42, &acts);
        assert_eq!(a, b, "same seed must give the same trajectory ({cfg:?})");
        let differs = (43..48).any(|s| trajectory(&cfg, s, &acts) != a);
        assert!(differs, "different seeds gave identical trajectories");
    }
}

#[test]
fn different_seeds_give_different_mazes() {
    let mut env = GridMaze::new(GridMazeConfig::multi(9, 64)).unwrap();
    let mut obs = obs_buf(&env);
    let mut mazes = std::collections::HashSet::new();
    for s in 0..50 {
        env.reset(derive_seed(1, s), &mut obs).unwrap();
        mazes.insert((env.cells(), env.agent_pos(), env.goal_pos()));
    }
    assert!(
        mazes.len() >= 45,
        "only {} distinct episodes of 50",
        mazes.len()
    );
}

#[test]
fn perfect_mazes_connected_and_goal_far_enough() {
    for size in [7, 9, 15, 31] {
        let mut env = GridMaze::new(GridMazeConfig::single(size, 100)).unwrap();
        let mut obs = obs_buf(&env);
        for s in 0..40 {
            env.reset(s, &mut obs).unwrap();
            assert_perfect(&env);
            let start = env.agent_pos();
            assert_eq!(env.cell(env.goal_pos()), Cell::Goal);
            let d = env.shortest_path_len(start).expect("goal reachable");
            // Every maze of side ≥ 7 has a cell ≥ 4 moves from any start.
            assert!(
                d >= 4,
                "goal only {d} moves from the start (size {size}, seed {s})"
            );
            // Goals are maze cells (odd coordinates).
            assert_eq!((env.goal_pos().row % 2, env.goal_pos().col % 2), (1, 1));
        }
    }
}

#[test]
fn loops_add_passages_and_keep_goal_reachable() {
    let cfg = GridMazeConfig {
        loop_density: 1.0,
        ..GridMazeConfig::multi(9, 64)
    };
    let mut env = GridMaze::new(cfg).unwrap();
    let mut obs = obs_buf(&env);
    env.reset(3, &mut obs).unwrap();
    // Every wall between two maze cells is gone: only pillars and the outer ring remain.
    for r in 1..8 {
        for c in 1..8 {
            let pillar = r % 2 == 0 && c % 2 == 0;
            assert_eq!(env.cell(Pos::new(r, c)) == Cell::Wall, pillar, "{r},{c}");
        }
    }
    let cfg = GridMazeConfig {
        loop_density: 0.2,
        min_goal_distance: 6,
        ..GridMazeConfig::multi(15, 64)
    };
    let mut env = GridMaze::new(cfg).unwrap();
    for s in 0..30 {
        env.reset(s, &mut obs_buf(&env)).unwrap();
        let open = env
            .cells()
            .iter()
            .flatten()
            .filter(|c| **c != Cell::Wall)
            .count();
        assert!(open > 49 + 48, "loops must add passages");
        assert_eq!(reachable(&env, env.agent_pos()), open);
        // True (loop-aware) distance respects the minimum.
        assert!(env.shortest_path_len(env.agent_pos()).unwrap() >= 6);
    }
}

const LAYOUT: &str = "
    #######
    #.....#
    #.#.#.#
    #..A..#
    #.#G#.#
    #.....#
    #######";

#[test]
fn observation_encoding_on_hand_written_maze() {
    let cfg = GridMazeConfig {
        time_feature: true,
        step_penalty: 0.25,
        ..GridMazeConfig::single(7, 10)
    };
    let mut env = GridMaze::from_layout(LAYOUT, cfg).unwrap();
    assert_eq!(env.observation_space().flat_len(), 27 + 4 + 1 + 1);
    let mut obs = obs_buf(&env);
    env.reset(0, &mut obs).unwrap();
    assert_eq!(env.agent_pos(), Pos::new(3, 3));
    assert_eq!(env.goal_pos(), Pos::new(4, 3));
    let mut want = view([W, F, W, F, F, F, W, G, W]);
    want.extend([0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(obs, want);

    // Move right: view centred on (3, 4).
    let s = env.step(ACTION_RIGHT.into(), &mut obs).unwrap();
    assert_eq!(s.reward, -0.25);
    assert!(!s.done());
    let mut want = view([F, W, F, F, F, F, G, W, F]);
    want.extend([0.0, 1.0, 0.0, 0.0, -0.25, 0.1]);
    assert_eq!(obs, want);
    assert!(env.observation_space().contains(&obs));

    // Bump into the wall below: the agent stays, the step counts.
    env.step(ACTION_DOWN.into(), &mut obs).unwrap();
    assert_eq!(env.agent_pos(), Pos::new(3, 4));
    assert_eq!(obs[27..], [0.0, 0.0, 1.0, 0.0, -0.25, 0.2]);

    // Back left, then down onto the goal: terminated in single mode.
    env.step(3.into(), &mut obs).unwrap();
    let s = env.step(ACTION_DOWN.into(), &mut obs).unwrap();
    assert!(s.terminated && !s.truncated && reached(&s));
    assert_eq!(s.reward, 1.0 - 0.25);
    // The final view is centred on the goal.
    assert_eq!(obs[12..15], G);
    let st = env.episode_stats();
    assert_eq!((st.length, st.count("goals")), (4, Some(1.0)));
    assert!((st.ret - (1.0 - 4.0 * 0.25)).abs() < 1e-6);
    assert_eq!(env.step(0.into(), &mut obs), Err(EnvError::StepAfterDone));
}

#[test]
fn view_radius_two_and_out_of_bounds_read_as_wall() {
    let layout = "
        .....
        .....
        ..A..
        ....G
        .....";
    let cfg = GridMazeConfig {
        view_radius: 2,
        ..GridMazeConfig::multi(5, 10)
    };
    let mut env = GridMaze::from_layout(layout, cfg).unwrap();
    let mut obs = obs_buf(&env);
    env.reset(0, &mut obs).unwrap();
    assert_eq!(obs.len(), 75 + 4 + 1);
    // All 25 cells visible: 24 floor and the goal at view (3, 4).
    for k in 0..25 {
        let want = if k == 3 * 5 + 4 { G } else { F };
        assert_eq!(obs[3 * k..3 * k + 3], want, "cell {k}");
    }
    env.step(ACTION_RIGHT.into(), &mut obs).unwrap();
    env.step(ACTION_RIGHT.into(), &mut obs).unwrap();
    // At the east edge: view columns 3 and 4 lie outside the maze.
    assert_eq!(env.agent_pos(), Pos::new(2, 4));
    for r in 0..5 {
        for c in 0..5 {
            let k = r * 5 + c;
            let want = if c >= 3 {
                W
            } else if (r, c) == (3, 2) {
                G
            } else {
                F
            };
            assert_eq!(obs[3 * k..3 * k + 3], want, "view ({r}, {c})");
        }
    }
}

#[test]
fn egocentric_view_turns_with_the_agent() {
    let layout = LAYOUT.replace('A', ">");
    let cfg = GridMazeConfig::single(7, 20).egocentric();
    let mut env = GridMaze::from_layout(&layout, cfg).unwrap();
    assert_eq!(env.action_space(), ActionSpace::discrete(3));
    let mut obs = obs_buf(&env);
    env.reset(0, &mut obs).unwrap();
    assert_eq!(env.facing(), Direction::East);
    // Facing east: ahead (view top) is column 4, the left (view column 0) is north.
    let mut want = view([W, F, W, F, F, G, W, F, W]);
    want.extend([0.0, 0.0, 0.0, 0.0]);
    assert_eq!(obs, want);

    env.step(ACTION_TURN_RIGHT.into(), &mut obs).unwrap();
    assert_eq!(env.facing(), Direction::South);
    assert_eq!(env.agent_pos(), Pos::new(3, 3));
    // Facing south: ahead is row 4 with the goal in the middle; the left is east.
    let mut want = view([W, G, W, F, F, F, W, F, W]);
    want.extend([0.0, 1.0, 0.0, 0.0]);
    assert_eq!(obs, want);

    env.step(ACTION_TURN_LEFT.into(), &mut obs).unwrap();
    env.step(ACTION_TURN_LEFT.into(), &mut obs).unwrap();
    assert_eq!(env.facing(), Direction::North);
    // Facing north: the plain, unrotated view.
    assert_eq!(obs[..27], view([W, F, W, F, F, F, W, G, W]));

    env.step(ACTION_TURN_LEFT.into(), &mut obs).unwrap();
    env.step(ACTION_TURN_LEFT.into(), &mut obs).unwrap();
    let s = env.step(ACTION_FORWARD.into(), &mut obs).unwrap();
    assert!(
        s.terminated && reached(&s),
        "forward while facing south reaches the goal"
    );
    assert_eq!(env.episode_stats().length, 6);
}

#[test]
fn multi_mode_respawns_counts_goals_and_truncates_at_horizon() {
    let horizon = 200;
    let mut env = GridMaze::new(GridMazeConfig::multi(9, horizon)).unwrap();
    let mut obs = obs_buf(&env);
    env.reset(5, &mut obs).unwrap();
    let goal = env.goal_pos();
    let maze = env.cells();
    let mut goals = 0;
    let mut ret = 0.0;
    for t in 1..=horizon {
        let a = env.oracle_action();
        let before = env.agent_pos();
        let s = env.step(a.into(), &mut obs).unwrap();
        ret += s.reward;
        assert!(!s.terminated, "multi mode never terminates");
        assert_eq!(
            s.truncated,
            t == horizon,
            "truncated exactly at the horizon"
        );
        assert_eq!(env.goal_pos(), goal, "the goal stays");
        assert_eq!(env.cells(), maze, "the maze stays");
        assert_ne!(env.agent_pos(), goal, "the agent never stays on the goal");
        if reached(&s) {
            goals += 1;
            assert_eq!(s.reward, 1.0);
            assert!(env.is_open(env.agent_pos()));
        } else {
            assert_eq!(s.reward, 0.0);
            // Without a goal the oracle moves one step.
            let d =
                before.row.abs_diff(env.agent_pos().row) + before.col.abs_diff(env.agent_pos().col);
            assert_eq!(d, 1);
        }
    }
    assert!(
        goals >= 10,
        "the oracle reaches the goal many times in 200 steps, got {goals}"
    );
    let st = env.episode_stats();
    assert_eq!(
        (st.count("goals"), st.length, st.truncated),
        (Some(goals as f32), horizon, true)
    );
    assert_eq!(st.ret, ret);
    assert_eq!(env.step(0.into(), &mut obs), Err(EnvError::StepAfterDone));
    // Reset starts a fresh episode.
    env.reset(6, &mut obs).unwrap();
    assert!(env.step(0.into(), &mut obs).is_ok());
}

#[test]
fn single_mode_truncates_when_the_goal_is_not_reached() {
    let mut env = GridMaze::from_layout(LAYOUT, GridMazeConfig::single(7, 3)).unwrap();
    let mut obs = obs_buf(&env);
    env.reset(0, &mut obs).unwrap();
    for t in 1..=3 {
        let s = env.step(0.into(), &mut obs).unwrap();
        assert_eq!((s.terminated, s.truncated), (false, t == 3));
    }
    assert!(env.episode_stats().truncated);
}

#[test]
fn bad_actions_and_calls_are_errors() {
    let mut env = GridMaze::new(GridMazeConfig::default()).unwrap();
    let mut obs = obs_buf(&env);
    assert_eq!(env.step(0.into(), &mut obs), Err(EnvError::NotReset));
    env.reset(0, &mut obs).unwrap();
    assert_eq!(
        env.step(4.into(), &mut obs),
        Err(EnvError::InvalidAction { action: 4, n: 4 })
    );
    let mut short = vec![0.0; 5];
    assert_eq!(
        env.step(0.into(), &mut short),
        Err(EnvError::ObsBufferLength {
            got: 5,
            expected: 32
        })
    );
    assert!(env.reset(0, &mut short).is_err());
    let mut ego = GridMaze::new(GridMazeConfig::default().egocentric()).unwrap();
    let mut obs = obs_buf(&ego);
    ego.reset(0, &mut obs).unwrap();
    assert!(matches!(
        ego.step(3.into(), &mut obs),
        Err(EnvError::InvalidAction { action: 3, n: 3 })
    ));
}

fn field_of(cfg: GridMazeConfig) -> &'static str {
    match GridMaze::new(cfg) {
        Err(EnvError::InvalidConfig { field, reason }) => {
            assert!(!reason.is_empty());
            field
        }
        other => panic!("expected an invalid config error, got {other:?}"),
    }
}

#[test]
fn invalid_configs_name_the_field() {
    let d = GridMazeConfig::default;
    assert_eq!(field_of(GridMazeConfig { size: 8, ..d() }), "size");
    assert_eq!(field_of(GridMazeConfig { size: 5, ..d() }), "size");
    assert_eq!(field_of(GridMazeConfig { size: 33, ..d() }), "size");
    assert_eq!(
        field_of(GridMazeConfig {
            view_radius: 4,
            ..d()
        }),
        "view_radius"
    );
    assert_eq!(field_of(GridMazeConfig { horizon: 0, ..d() }), "horizon");
    assert_eq!(
        field_of(GridMazeConfig {
            goal_reward: -1.0,
            ..d()
        }),
        "goal_reward"
    );
    assert_eq!(
        field_of(GridMazeConfig {
            goal_reward: f32::NAN,
            ..d()
        }),
        "goal_reward"
    );
    assert_eq!(
        field_of(GridMazeConfig {
            step_penalty: -0.1,
            ..d()
        }),
        "step_penalty"
    );
    assert_eq!(
        field_of(GridMazeConfig {
            loop_density: 1.5,
            ..d()
        }),
        "loop_density"
    );
    assert_eq!(
        field_of(GridMazeConfig {
            loop_density: f32::NAN,
            ..d()
        }),
        "loop_density"
    );
    let msg = GridMaze::new(GridMazeConfig { size: 8, ..d() })
        .unwrap_err()
        .to_string();
    assert!(msg.contains("size") && msg.contains('8'), "{msg}");
    assert!(GridMazeConfig::multi(31, 1).validate().is_ok());
    assert!(
        GridMazeConfig {
            view_radius: 3,
            ..d()
        }
        .validate()
        .is_ok()
    );
}

#[test]
fn bad_layouts_are_errors_naming_the_layout() {
    for bad in [
        "",
        "###\n#A#\n##",
        "###\n#A#\n###",
        "###\n#G#\n###",
        "####\n#AG#\n#GA#\n####",
        "###\n#AX\n#G#",
    ] {
        match GridMaze::from_layout(bad, GridMazeConfig::single(7, 10)) {
            Err(EnvError::InvalidConfig { field, .. }) => assert_eq!(field, "layout", "{bad:?}"),
            other => panic!("layout {bad:?}: expected an error, got {other:?}"),
        }
    }
    // A 3×3 view does not fit a 1-wide layout.
    assert!(matches!(
        GridMaze::from_layout("A", GridMazeConfig::single(7, 10)),
        Err(EnvError::InvalidConfig {
            field: "view_radius",
            ..
        }) | Err(EnvError::InvalidConfig {
            field: "layout",
            ..
        })
    ));
}

#[test]
fn oracle_reaches_the_goal_in_exactly_the_shortest_path_length() {
    for (size, loops) in [(7, 0.0), (9, 0.0), (15, 0.0), (31, 0.0), (15, 0.3)] {
        let cfg = GridMazeConfig {
            loop_density: loops,
            ..GridMazeConfig::single(size, 10_000)
        };
        let mut env = GridMaze::new(cfg).unwrap();
        let mut obs = obs_buf(&env);
        for s in 0..20 {
            env.reset(s, &mut obs).unwrap();
            let d = env.shortest_path_len(env.agent_pos()).unwrap();
            let map = env.distance_map();
            assert_eq!(map[env.goal_pos().row * size + env.goal_pos().col], Some(0));
            let mut steps = 0;
            loop {
                let a = env.oracle_action();
                steps += 1;
                if env.step(a.into(), &mut obs).unwrap().done() {
                    break;
                }
            }
            assert!(env.episode_stats().count("goals") == Some(1.0));
            assert_eq!(steps, d, "size {size}, seed {s}");
        }
    }
}

#[test]
fn egocentric_oracle_reaches_the_goal() {
    let mut env = GridMaze::new(GridMazeConfig::single(11, 1000).egocentric()).unwrap();
    let mut obs = obs_buf(&env);
    for s in 0..20 {
        env.reset(s, &mut obs).unwrap();
        let d = env.shortest_path_len(env.agent_pos()).unwrap();
        while !env.is_done() {
            let a = env.oracle_action();
            env.step(a.into(), &mut obs).unwrap();
        }
        let st = env.episode_stats();
        assert_eq!(st.count("goals"), Some(1.0));
        // Each move needs at most two turns before it.
        assert!(
            st.length >= d && st.length <= 3 * d,
            "length {} vs distance {d}",
            st.length
        );
    }
}

#[test]
fn wall_follower_reaches_the_goal_in_perfect_mazes() {
    for cfg in [
        GridMazeConfig::single(9, 100_000),
        GridMazeConfig::single(21, 100_000),
        GridMazeConfig::single(15, 100_000).egocentric(),
    ] {
        let size = cfg.size;
        let mut env = GridMaze::new(cfg).unwrap();
        let mut obs = obs_buf(&env);
        for s in 0..30 {
            env.reset(s, &mut obs).unwrap();
            let open = env
                .cells()
                .iter()
                .flatten()
                .filter(|c| **c != Cell::Wall)
                .count() as u32;
            while !env.is_done() {
                let a = env.wall_follower_action();
                env.step(a.into(), &mut obs).unwrap();
            }
            let st = env.episode_stats();
            assert!(
                st.count("goals") == Some(1.0) && !st.truncated,
                "size {size} seed {s}: {st:?}"
            );
            // A wall follower walks each corridor at most twice (plus turns in place).
            let bound = if env.config().actions == ActionMode::Egocentric {
                8
            } else {
                2
            };
            assert!(
                st.length <= bound * open,
                "{} steps for {open} open cells",
                st.length
            );
        }
    }
}

#[test]
fn reference_policies_are_ordered() {
    let cfg = GridMazeConfig::multi(7, 64);
    let random = reference_stats(&cfg, ReferencePolicy::Random, 200, 1).unwrap();
    let wall = reference_stats(&cfg, ReferencePolicy::WallFollower, 200, 1).unwrap();
    let oracle = reference_stats(&cfg, ReferencePolicy::Oracle, 200, 1).unwrap();
    assert_eq!(oracle.mean_length, 64.0);
    assert_eq!(oracle.mean_return, oracle.mean_goals);
    assert!(
        random.mean_goals < wall.mean_goals && wall.mean_goals < oracle.mean_goals,
        "random {random:?} wall {wall:?} oracle {oracle:?}"
    );
    assert_eq!(
        reference_stats(&cfg, ReferencePolicy::Oracle, 200, 1).unwrap(),
        oracle,
        "deterministic for a seed"
    );
    assert!(reference_stats(&cfg, ReferencePolicy::Random, 0, 1).is_err());
    assert_eq!(
        "wall-follower".parse::<ReferencePolicy>().unwrap(),
        ReferencePolicy::WallFollower
    );
    assert!("nope".parse::<ReferencePolicy>().is_err());
}

#[test]
fn renders_ascii_rgb_and_gif() {
    let mut env = GridMaze::from_layout(LAYOUT, GridMazeConfig::multi(7, 10)).unwrap();
    let mut obs = obs_buf(&env);
    env.reset(0, &mut obs).unwrap();
    let text = env.render_ascii().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8);
    assert_eq!(lines[0], "#######");
    assert_eq!(lines[1], "#     #", "floor outside the view is blank");
    assert_eq!(lines[2], "# %.% #", "walls in view are %");
    assert_eq!(lines[3], "# .A. #", "floor in view is .");
    assert_eq!(lines[4], "# %G% #");
    assert!(lines[7].starts_with("t=0/10"));

    let frame = env.render_rgb().unwrap();
    assert_eq!((frame.width, frame.height), (7 * 16, 7 * 16));
    assert_eq!(frame.rgb.len(), 7 * 16 * 7 * 16 * 3);
    let centre = |r: usize, c: usize| frame.pixel(c * 16 + 8, r * 16 + 8).unwrap();
    assert_ne!(centre(3, 3), centre(5, 5), "agent differs from floor");
    assert_ne!(centre(4, 3), centre(5, 5), "goal differs from floor");
    assert_ne!(centre(3, 2), centre(5, 2), "visible floor is highlighted");
    assert_eq!(frame.pixel(7 * 16, 0), None);

    let dir = std::env::temp_dir().join(format!("gridmaze-gif-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("episode.gif");
    let mut frames = vec![frame];
    env.step(ACTION_RIGHT.into(), &mut obs).unwrap();
    frames.push(env.render_rgb().unwrap());
    save_gif(&path, &frames, 20).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"GIF89a"));
    assert!(bytes.len() > 200);
    std::fs::remove_dir_all(&dir).unwrap();

    let missing = dir.join("no/such/dir/x.gif");
    let err = save_gif(&missing, &frames, 20).unwrap_err().to_string();
    assert!(err.contains("x.gif"), "{err}");
    let mut odd = frames.clone();
    odd.push(envs::Frame::new(3, 3));
    let err = save_gif(std::env::temp_dir().join("mismatch.gif"), &odd, 20).unwrap_err();
    assert!(err.to_string().contains("mismatch.gif"), "{err}");
    let _ = std::fs::remove_file(std::env::temp_dir().join("mismatch.gif"));
}

#[test]
fn names_and_spaces() {
    let env = GridMaze::new(GridMazeConfig::default()).unwrap();
    assert_eq!(env.name(), "gridmaze-multi-7x7");
    assert_eq!(env.config().mode, MazeMode::Multi);
    let space = env.observation_space();
    assert_eq!(space.shape, vec![32]);
    assert_eq!(space.high[31], 1.0);
    let ego = GridMazeConfig {
        time_feature: true,
        view_radius: 2,
        ..GridMazeConfig::single(9, 50).egocentric()
    };
    assert_eq!(ego.obs_len(), 75 + 3 + 1 + 1);
}

/// The neighbour of `p` in direction `d` (0 = north, clockwise); off-grid reads as a wall.
fn neighbour(p: Pos, d: usize) -> Pos {
    match d {
        0 => Pos::new(p.row.wrapping_sub(1), p.col),
        1 => Pos::new(p.row, p.col + 1),
        2 => Pos::new(p.row + 1, p.col),
        _ => Pos::new(p.row, p.col.wrapping_sub(1)),
    }
}

/// The mask the rules give for the current state, computed from the grid.
fn expected_mask(env: &GridMaze) -> Vec<bool> {
    let p = env.agent_pos();
    let open = |d: usize| env.is_open(neighbour(p, d));
    for d in 0..4 {
        assert_eq!(env.wall_ahead(Direction::from_index(d)), !open(d));
    }
    match env.config().actions {
        ActionMode::Absolute => (0..4).map(open).collect(),
        ActionMode::Egocentric => vec![true, true, open(env.facing() as usize)],
        ActionMode::MoveRun => (0..4).map(open).chain([true, true]).collect(),
    }
}

/// A small xorshift stream for drawing actions.
struct Draw(u64);

impl Draw {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    /// A value among the allowed flags of `row`.
    fn allowed(&mut self, row: &[bool]) -> usize {
        let ok: Vec<usize> = (0..row.len()).filter(|&i| row[i]).collect();
        ok[self.below(ok.len())]
    }

    /// A random action of `env` that its mask (if any) allows.
    fn action(&mut self, env: &GridMaze) -> ActionBuf {
        let space = env.action_space();
        let all = vec![true; space.mask_width().unwrap()];
        let mask = env.action_mask().unwrap_or(&all);
        match space {
            ActionSpace::Discrete(_) => ActionBuf::Discrete(self.allowed(mask)),
            _ => ActionBuf::MultiDiscrete(vec![self.allowed(&mask[..4]), self.allowed(&mask[4..])]),
        }
    }
}

/// Every action of `space` (all combinations for `move_run`).
fn all_actions(space: &ActionSpace) -> Vec<ActionBuf> {
    match space {
        ActionSpace::Discrete(d) => (0..d.n).map(ActionBuf::Discrete).collect(),
        _ => (0..4)
            .flat_map(|d| (0..2).map(move |s| ActionBuf::MultiDiscrete(vec![d, s])))
            .collect(),
    }
}

/// Whether the current mask allows `action`.
fn allows(mask: &[bool], action: &ActionBuf) -> bool {
    match action {
        ActionBuf::Discrete(a) => mask[*a],
        ActionBuf::MultiDiscrete(a) => mask[a[0]] && mask[4 + a[1]],
        ActionBuf::Continuous(_) => unreachable!(),
    }
}

fn masked_configs() -> Vec<GridMazeConfig> {
    vec![
        GridMazeConfig::multi(9, 64).masked(),
        GridMazeConfig::single(9, 200).egocentric().masked(),
        GridMazeConfig {
            loop_density: 0.3,
            time_feature: true,
            view_radius: 2,
            ..GridMazeConfig::multi(11, 80).move_run().masked()
        },
    ]
}

#[test]
fn check_env_passes_for_masked_and_move_run_mazes() {
    let mut cfgs = masked_configs();
    cfgs.push(GridMazeConfig::multi(9, 64).move_run());
    cfgs.push(GridMazeConfig::single(9, 200).move_run().masked());
    cfgs.push(GridMazeConfig::single(7, 50).move_run());
    for cfg in cfgs {
        let mut env = GridMaze::new(cfg.clone()).unwrap();
        let report = check_env(&mut env).unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
        assert_eq!(report.masked, cfg.mask_walls, "{cfg:?}");
        assert_eq!(report.action_space, cfg.action_space());
        assert_eq!(report.obs_dim, cfg.obs_len());
    }
}

#[test]
fn action_spaces_and_observation_lengths_per_mode() {
    let d = GridMazeConfig::default;
    assert_eq!(d().action_space(), ActionSpace::discrete(4));
    assert_eq!(d().egocentric().action_space(), ActionSpace::discrete(3));
    assert_eq!(
        d().move_run().action_space(),
        ActionSpace::multi_discrete(vec![4, 2])
    );
    assert_eq!((d().num_actions(), d().egocentric().num_actions()), (4, 3));
    // Previous action: 4 direction slots and 2 stride slots.
    assert_eq!(d().move_run().prev_action_len(), 6);
    assert_eq!(d().move_run().obs_len(), 27 + 6 + 1);
    assert_eq!(d().masked().obs_len(), d().obs_len());
    for cfg in [
        d(),
        d().egocentric(),
        d().move_run(),
        d().move_run().masked(),
    ] {
        let env = GridMaze::new(cfg.clone()).unwrap();
        assert_eq!(env.action_space(), cfg.action_space());
        assert_eq!(env.observation_space().flat_len(), cfg.obs_len());
        assert_eq!(env.action_mask().is_some(), cfg.mask_walls);
    }
}

#[test]
fn config_fields_serialise_and_default_configs_are_unchanged() {
    let json = serde_json::to_string(&GridMazeConfig::default()).unwrap();
    assert!(!json.contains("mask_walls"), "{json}");
    assert!(json.contains(r#""actions":"absolute""#), "{json}");
    let cfg: GridMazeConfig =
        serde_json::from_str(r#"{"actions": "move_run", "mask_walls": true}"#).unwrap();
    assert_eq!(cfg, GridMazeConfig::default().move_run().masked());
    let back = serde_json::to_string(&cfg).unwrap();
    assert!(back.contains(r#""actions":"move_run""#) && back.contains(r#""mask_walls":true"#));
    assert_eq!(serde_json::from_str::<GridMazeConfig>(&back).unwrap(), cfg);
    let old: GridMazeConfig = serde_json::from_str(r#"{"size": 9}"#).unwrap();
    assert!(!old.mask_walls && old.actions == ActionMode::Absolute);
}

#[test]
fn unmasked_mazes_give_no_mask() {
    for cfg in [
        GridMazeConfig::default(),
        GridMazeConfig::default().egocentric(),
        GridMazeConfig::default().move_run(),
    ] {
        let mut env = GridMaze::new(cfg).unwrap();
        let mut obs = obs_buf(&env);
        env.reset(1, &mut obs).unwrap();
        assert_eq!(env.action_mask(), None);
        // Bumping into walls is allowed (the agent stays).
        for a in all_actions(&env.action_space()) {
            env.step(a.as_action(), &mut obs).unwrap();
            assert_eq!(env.action_mask(), None);
        }
    }
}

#[test]
fn mask_is_exactly_the_moves_not_into_a_wall() {
    for cfg in masked_configs() {
        let mut env = GridMaze::new(cfg.clone()).unwrap();
        let mut obs = obs_buf(&env);
        let mut draw = Draw(0x9E37_79B9);
        let mut steps = 0;
        for seed in 0..20 {
            env.reset(seed, &mut obs).unwrap();
            assert_eq!(env.action_mask().unwrap(), expected_mask(&env), "{cfg:?}");
            while !env.is_done() {
                let a = draw.action(&env);
                let before = env.agent_pos();
                let s = env.step(a.as_action(), &mut obs).unwrap();
                steps += 1;
                let mask = env.action_mask().unwrap();
                assert_eq!(mask, expected_mask(&env), "{cfg:?} seed {seed} after {a}");
                assert!(env.observation_space().contains(&obs));
                // An allowed move always moves the agent (or takes it to the goal).
                let moved = before != env.agent_pos() || reached(&s);
                match cfg.actions {
                    ActionMode::Egocentric => {
                        if a == ActionBuf::Discrete(ACTION_FORWARD) {
                            assert!(moved)
                        }
                    }
                    _ => assert!(moved, "{cfg:?} seed {seed}: {a} left the agent in place"),
                }
            }
        }
        assert!(steps > 1000, "{cfg:?}: only {steps} steps");
    }
}

/// 7×7: the agent in the top-left corner of a ring of corridors, the goal at the bottom.
const CORNER: &str = "
    #######
    #A....#
    #.###.#
    #.#.#.#
    #.#.#.#
    #.G...#
    #######";

#[test]
fn masked_actions_are_refused_and_leave_the_env_unchanged() {
    // Absolute: up and left are walls.
    let mut env = GridMaze::from_layout(CORNER, GridMazeConfig::single(7, 50).masked()).unwrap();
    let mut obs = obs_buf(&env);
    env.reset(0, &mut obs).unwrap();
    assert_eq!(env.action_mask().unwrap(), [false, true, true, false]);
    let first = obs.clone();
    for (a, name) in [(ACTION_UP, "up"), (ACTION_LEFT, "left")] {
        match env.step(a.into(), &mut obs) {
            Err(EnvError::ActionOutsideSpace(msg)) => {
                assert!(
                    msg.contains(&format!("action {a}")) && msg.contains(name),
                    "{msg}"
                );
                assert!(msg.contains("wall") && msg.contains("mask"), "{msg}");
            }
            other => panic!("a wall move must be refused, got {other:?}"),
        }
    }
    assert_eq!(
        obs, first,
        "a refused action does not write the observation"
    );
    assert_eq!((env.agent_pos(), env.time_step()), (Pos::new(1, 1), 0));
    assert_eq!(env.episode_stats(), Default::default());
    env.step(ACTION_RIGHT.into(), &mut obs).unwrap();
    assert_eq!(env.agent_pos(), Pos::new(1, 2));
    assert_eq!(env.action_mask().unwrap(), [false, true, false, true]);
    // Out-of-range actions are still InvalidAction.
    assert_eq!(
        env.step(4.into(), &mut obs),
        Err(EnvError::InvalidAction { action: 4, n: 4 })
    );

    // Egocentric: forward refused when facing the wall, turns allowed.
    let ego = GridMazeConfig::single(7, 50).egocentric().masked();
    let mut env = GridMaze::from_layout(&CORNER.replace('A', "^"), ego).unwrap();
    let mut obs = obs_buf(&env);
    env.reset(0, &mut obs).unwrap();
    assert_eq!(env.action_mask().unwrap(), [true, true, false]);
    let err = env.step(ACTION_FORWARD.into(), &mut obs).unwrap_err();
    assert!(
        matches!(&err, EnvError::ActionOutsideSpace(m) if m.contains("forward") && m.contains("wall")),
        "{err}"
    );
    assert_eq!(env.time_step(), 0);
    env.step(ACTION_TURN_RIGHT.into(), &mut obs).unwrap();
    assert_eq!(env.action_mask().unwrap(), [true, true, true]);
    env.step(ACTION_FORWARD.into(), &mut obs).unwrap();
    assert_eq!(env.agent_pos(), Pos::new(1, 2));

    // move_run: a blocked direction is refused with either stride.
    let cfg = GridMazeConfig::single(7, 50).move_run().masked();
    let mut env = GridMaze::from_layout(CORNER, cfg).unwrap();
    let mut obs = obs_buf(&env);
    env.reset(0, &mut obs).unwrap();
    assert_eq!(
        env.action_mask().unwrap(),
        [false, true, true, false, true, true]
    );
    for stride in [STRIDE_WALK, STRIDE_RUN] {
        let err = env
            .step(Action::MultiDiscrete(&[ACTION_UP, stride]), &mut obs)
            .unwrap_err();
        assert!(
            matches!(&err, EnvError::ActionOutsideSpace(m)
                if m.contains(&format!("[0, {stride}]")) && m.contains("up") && m.contains("wall")),
            "{err}"
        );
    }
    assert_eq!(env.time_step(), 0);
}

#[test]
fn refused_actions_do_not_change_the_trajectory() {
    for cfg in masked_configs() {
        let mut a = GridMaze::new(cfg.clone()).unwrap();
        let mut b = GridMaze::new(cfg.clone()).unwrap();
        let (mut oa, mut ob) = (obs_buf(&a), obs_buf(&b));
        let mut draw = Draw(77);
        let mut refused = 0;
        for seed in 0..5 {
            a.reset(seed, &mut oa).unwrap();
            b.reset(seed, &mut ob).unwrap();
            while !a.is_done() {
                // `a` is offered every forbidden action first; `b` never is.
                let mask = a.action_mask().unwrap().to_vec();
                for bad in all_actions(&a.action_space()) {
                    if !allows(&mask, &bad) {
                        let mut scratch = oa.clone();
                        assert!(matches!(
                            a.step(bad.as_action(), &mut scratch),
                            Err(EnvError::ActionOutsideSpace(_))
                        ));
                        assert_eq!(scratch, oa);
                        refused += 1;
                    }
                }
                let act = draw.action(&b);
                let sa = a.step(act.as_action(), &mut oa).unwrap();
                let sb = b.step(act.as_action(), &mut ob).unwrap();
                assert_eq!((sa, &oa), (sb, &ob), "{cfg:?} seed {seed}");
                assert_eq!(a.agent_pos(), b.agent_pos());
                assert_eq!(a.action_mask(), b.action_mask());
            }
            assert_eq!(a.episode_stats(), b.episode_stats());
        }
        assert!(refused > 50, "{cfg:?}: only {refused} refusals");
    }
}

#[test]
fn running_moves_two_cells_and_stops_at_walls_and_the_goal() {
    let cfg = GridMazeConfig::single(7, 50).move_run();
    let mut env = GridMaze::from_layout(CORNER, cfg).unwrap();
    let mut obs = obs_buf(&env);
    assert_eq!(obs.len(), 27 + 6 + 1);
    env.reset(0, &mut obs).unwrap();
    assert_eq!(obs[27..], [0.0; 7], "no previous action at the first step");
    let (run, walk) = (STRIDE_RUN, STRIDE_WALK);
    let moves = [
        ([ACTION_RIGHT, run], Pos::new(1, 3)),
        ([ACTION_RIGHT, run], Pos::new(1, 5)),
        // Into the wall: stays.
        ([ACTION_RIGHT, run], Pos::new(1, 5)),
        ([ACTION_UP, walk], Pos::new(1, 5)),
        ([ACTION_DOWN, run], Pos::new(3, 5)),
        ([ACTION_DOWN, walk], Pos::new(4, 5)),
        // One cell, then the wall: the run ends after that cell.
        ([ACTION_DOWN, run], Pos::new(5, 5)),
        ([ACTION_LEFT, run], Pos::new(5, 3)),
    ];
    for (t, (a, want)) in moves.into_iter().enumerate() {
        let s = env.step(Action::MultiDiscrete(&a), &mut obs).unwrap();
        assert_eq!(env.agent_pos(), want, "step {t}: {a:?}");
        assert!(!s.done());
        // Previous direction (4 slots), previous stride (2 slots), previous reward.
        let mut prev = [0.0; 7];
        prev[a[0]] = 1.0;
        prev[4 + a[1]] = 1.0;
        assert_eq!(obs[27..], prev, "step {t}");
        assert!(env.observation_space().contains(&obs));
    }
    // The goal is one cell away: the run stops on it.
    let s = env
        .step(Action::MultiDiscrete(&[ACTION_LEFT, run]), &mut obs)
        .unwrap();
    assert!(s.terminated && reached(&s));
    assert_eq!(env.agent_pos(), Pos::new(5, 2));
    assert_eq!(obs[27..], [0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0]);

    // Wrong actions are refused, naming the space.
    let mut env = GridMaze::from_layout(CORNER, GridMazeConfig::single(7, 50).move_run()).unwrap();
    env.reset(0, &mut obs).unwrap();
    for bad in [
        Action::Discrete(1),
        Action::MultiDiscrete(&[4, 0]),
        Action::MultiDiscrete(&[0, 2]),
        Action::MultiDiscrete(&[1]),
        Action::MultiDiscrete(&[1, 0, 0]),
        Action::Continuous(&[0.0, 1.0]),
    ] {
        match env.step(bad, &mut obs) {
            Err(EnvError::ActionOutsideSpace(m)) => assert!(!m.is_empty()),
            other => panic!("{bad} must be refused, got {other:?}"),
        }
    }
    assert_eq!(env.time_step(), 0);
}

#[test]
fn running_in_open_corridors_covers_two_cells() {
    // In generated mazes, a run from a maze cell along an open passage lands on the next
    // maze cell, two cells away.
    let cfg = GridMazeConfig::multi(15, 400).move_run().masked();
    let mut env = GridMaze::new(cfg).unwrap();
    let mut obs = obs_buf(&env);
    let mut runs = 0;
    for seed in 0..10 {
        env.reset(seed, &mut obs).unwrap();
        let mut draw = Draw(seed + 1);
        while !env.is_done() {
            let p = env.agent_pos();
            let mask = env.action_mask().unwrap().to_vec();
            let d = draw.allowed(&mask[..4]);
            let s = env
                .step(Action::MultiDiscrete(&[d, STRIDE_RUN]), &mut obs)
                .unwrap();
            if reached(&s) {
                continue;
            }
            let one = neighbour(p, d);
            let two = neighbour(one, d);
            let want = if env.is_open(two) && env.cell(one) != Cell::Goal {
                two
            } else {
                one
            };
            assert_eq!(env.agent_pos(), want, "seed {seed} from {p:?} dir {d}");
            if p.row % 2 == 1 && p.col % 2 == 1 {
                // Maze cells are two apart; the passage between them is open.
                assert_eq!(env.agent_pos(), two);
                runs += 1;
            }
        }
    }
    assert!(runs > 500, "{runs}");
}

#[test]
fn move_run_observations_lie_in_the_space() {
    for (radius, time) in [(1, false), (2, true), (3, true)] {
        let cfg = GridMazeConfig {
            view_radius: radius,
            time_feature: time,
            step_penalty: 0.05,
            loop_density: 0.2,
            ..GridMazeConfig::multi(13, 60).move_run()
        };
        let mut env = GridMaze::new(cfg.clone()).unwrap();
        let mut obs = obs_buf(&env);
        let view = 3 * cfg.view_side() * cfg.view_side();
        let mut draw = Draw(radius as u64 + 3);
        for seed in 0..10 {
            env.reset(seed, &mut obs).unwrap();
            assert!(env.observation_space().contains(&obs));
            while !env.is_done() {
                let a = draw.action(&env);
                env.step(a.as_action(), &mut obs).unwrap();
                assert!(env.observation_space().contains(&obs));
                assert_eq!(obs[view..view + 4].iter().sum::<f32>(), 1.0);
                assert_eq!(obs[view + 4..view + 6].iter().sum::<f32>(), 1.0);
            }
        }
    }
}

#[test]
fn scripted_policies_walk_in_move_run_mode() {
    let cfg = GridMazeConfig::single(11, 10_000).move_run().masked();
    let mut env = GridMaze::new(cfg.clone()).unwrap();
    let mut obs = obs_buf(&env);
    for s in 0..10 {
        env.reset(s, &mut obs).unwrap();
        let d = env.shortest_path_len(env.agent_pos()).unwrap();
        while !env.is_done() {
            let a = GridMaze::walk(env.oracle_action());
            env.step(Action::MultiDiscrete(&a), &mut obs).unwrap();
        }
        assert_eq!(env.episode_stats().length, d);
        env.reset(s, &mut obs).unwrap();
        while !env.is_done() {
            let a = GridMaze::walk(env.wall_follower_action());
            env.step(Action::MultiDiscrete(&a), &mut obs).unwrap();
        }
        assert_eq!(env.episode_stats().count("goals"), Some(1.0));
    }
    for cfg in [
        GridMazeConfig::multi(7, 64).move_run(),
        GridMazeConfig::multi(7, 64).move_run().masked(),
        GridMazeConfig::multi(7, 64).masked(),
        GridMazeConfig::multi(7, 64).egocentric().masked(),
    ] {
        for policy in [
            ReferencePolicy::Random,
            ReferencePolicy::Oracle,
            ReferencePolicy::WallFollower,
        ] {
            let st = reference_stats(&cfg, policy, 20, 3).unwrap();
            assert_eq!(st.mean_length, 64.0, "{cfg:?} {policy}");
        }
    }
    // Unmasked reference numbers do not depend on the new fields' code paths.
    let plain = GridMazeConfig::multi(7, 64);
    let masked = plain.clone().masked();
    assert_eq!(
        reference_stats(&plain, ReferencePolicy::Oracle, 50, 1).unwrap(),
        reference_stats(&masked, ReferencePolicy::Oracle, 50, 1).unwrap()
    );
}

#[test]
fn vec_env_collects_masks_after_auto_reset() {
    for cfg in [
        GridMazeConfig::single(7, 12).masked(),
        GridMazeConfig::single(7, 12).egocentric().masked(),
        GridMazeConfig::single(7, 12).move_run().masked(),
    ] {
        let n = 6;
        let mut venv = VecEnv::from_fn(n, 11, |_| GridMaze::new(cfg.clone())).unwrap();
        venv.reset().unwrap();
        assert!(venv.has_masks());
        let width = cfg.action_space().mask_width().unwrap();
        let check = |venv: &VecEnv<GridMaze>| {
            let masks = &venv.last().masks;
            assert_eq!(masks.len(), n * width);
            for (i, env) in venv.envs().iter().enumerate() {
                assert_eq!(
                    &masks[i * width..(i + 1) * width],
                    env.action_mask().unwrap()
                );
                assert_eq!(env.action_mask().unwrap(), expected_mask(env));
            }
        };
        check(&venv);
        let mut draw = Draw(5);
        let mut finished = 0;
        for _ in 0..100 {
            let acts: Vec<ActionBuf> = venv.envs().iter().map(|e| draw.action(e)).collect();
            let step = match cfg.actions {
                ActionMode::MoveRun => {
                    let flat: Vec<usize> = acts
                        .iter()
                        .flat_map(|a| match a {
                            ActionBuf::MultiDiscrete(v) => v.clone(),
                            _ => unreachable!(),
                        })
                        .collect();
                    venv.step_actions(VecActions::MultiDiscrete(&flat)).unwrap()
                }
                _ => {
                    let flat: Vec<usize> = acts
                        .iter()
                        .map(|a| match a {
                            ActionBuf::Discrete(v) => *v,
                            _ => unreachable!(),
                        })
                        .collect();
                    venv.step(&flat).unwrap()
                }
            };
            finished += step.finished.len();
            check(&venv);
        }
        assert!(finished >= 40, "{cfg:?}: {finished} episodes ended");
    }
    let mut plain = VecEnv::from_fn(2, 0, |_| GridMaze::new(GridMazeConfig::default())).unwrap();
    plain.reset().unwrap();
    assert!(!plain.has_masks() && plain.last().masks.is_empty());
}

#[test]
fn vec_env_refuses_a_masked_action_naming_the_env() {
    let cfg = GridMazeConfig::single(9, 30).masked();
    let n = 5;
    let mut venv = VecEnv::from_fn(n, 3, |_| GridMaze::new(cfg.clone())).unwrap();
    venv.reset().unwrap();
    let allowed: Vec<usize> = venv
        .envs()
        .iter()
        .map(|e| e.action_mask().unwrap().iter().position(|&m| m).unwrap())
        .collect();
    let (i, bad) = venv
        .envs()
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, e)| {
            let m = e.action_mask().unwrap();
            m.iter().position(|&ok| !ok).map(|a| (i, a))
        })
        .expect("some env has a wall next to the agent");
    let before: Vec<Pos> = venv.envs().iter().map(|e| e.agent_pos()).collect();
    let mut acts = allowed.clone();
    acts[i] = bad;
    let err = venv.step(&acts).unwrap_err().to_string();
    assert!(err.contains(&format!("env {i}")), "{err}");
    let after: Vec<Pos> = venv.envs().iter().map(|e| e.agent_pos()).collect();
    assert_eq!(before, after, "nothing is stepped");
    // The allowed actions still step.
    venv.step(&allowed).unwrap();
    assert!(venv.envs().iter().all(|e| e.time_step() == 1));

    // move_run: the direction dimension is masked.
    let cfg = GridMazeConfig::single(9, 30).move_run().masked();
    let mut venv = VecEnv::from_fn(n, 3, |_| GridMaze::new(cfg.clone())).unwrap();
    venv.reset().unwrap();
    let mut flat = Vec::new();
    let mut target = None;
    for (j, e) in venv.envs().iter().enumerate() {
        let m = e.action_mask().unwrap();
        let blocked = (0..4).find(|&d| !m[d]);
        match (target, blocked) {
            (None, Some(d)) => {
                target = Some(j);
                flat.extend([d, STRIDE_RUN]);
            }
            _ => flat.extend([(0..4).find(|&d| m[d]).unwrap(), STRIDE_WALK]),
        }
    }
    let j = target.expect("some env has a wall next to the agent");
    let err = venv
        .step_actions(VecActions::MultiDiscrete(&flat))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("env {j}")), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn prop_perfect_reachable_and_in_space(
        half in 3usize..=15,
        seed in any::<u64>(),
        radius in 1usize..=3,
        ego in any::<bool>(),
        time in any::<bool>(),
    ) {
        let size = 2 * half + 1;
        let mut cfg = GridMazeConfig {
            view_radius: radius,
            time_feature: time,
            ..GridMazeConfig::multi(size, 40)
        };
        if ego {
            cfg.actions = ActionMode::Egocentric;
        }
        let mut env = GridMaze::new(cfg.clone()).unwrap();
        let mut obs = obs_buf(&env);
        env.reset(seed, &mut obs).unwrap();
        assert_perfect(&env);
        prop_assert!(env.shortest_path_len(env.agent_pos()).is_some());
        prop_assert!(env.observation_space().contains(&obs));
        let view_cells = cfg.view_side() * cfg.view_side();
        for a in actions(seed, cfg.num_actions(), 40) {
            let s = env.step(a.into(), &mut obs).unwrap();
            prop_assert!(env.observation_space().contains(&obs));
            // Exactly one one-hot slot per visible cell.
            let ones: f32 = obs[..3 * view_cells].iter().sum();
            prop_assert_eq!(ones, view_cells as f32);
            prop_assert!(env.is_open(env.agent_pos()));
            if s.done() {
                break;
            }
        }
    }

    #[test]
    fn prop_loops_keep_everything_connected(half in 3usize..=15, seed in any::<u64>(), density in 0.0f32..=1.0) {
        let cfg = GridMazeConfig { loop_density: density, ..GridMazeConfig::single(2 * half + 1, 10) };
        let mut env = GridMaze::new(cfg).unwrap();
        let mut obs = obs_buf(&env);
        env.reset(seed, &mut obs).unwrap();
        let open = env.cells().iter().flatten().filter(|c| **c != Cell::Wall).count();
        prop_assert_eq!(reachable(&env, env.agent_pos()), open);
        prop_assert!(env.shortest_path_len(env.agent_pos()).unwrap() >= 1);
    }
}
