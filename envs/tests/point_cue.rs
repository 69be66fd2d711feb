//! PointCue: the cue is visible only at the first step, the mass is held during the delay,
//! pushing towards the remembered cue always succeeds and a fixed push is at chance.

mod common;

use envs::{Action, ActionSpace, Env, EnvError, PointCue, PointCueConfig, check_env};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use common::assert_bad_configs;

fn obs_buf(env: &PointCue) -> Vec<f32> {
    vec![0.0; env.observation_space().flat_len()]
}

fn push(env: &mut PointCue, a: f32, obs: &mut [f32]) -> envs::Step {
    env.step(Action::Continuous(&[a]), obs).unwrap()
}

/// Runs one episode with `policy(first observation, current observation)` and returns
/// `(success, length, return)`; checks that `Info::success` is set exactly on the last step.
fn episode(
    env: &mut PointCue,
    seed: u64,
    mut policy: impl FnMut(&[f32], &[f32]) -> f32,
) -> (bool, u32, f32) {
    let mut obs = obs_buf(env);
    env.reset(seed, &mut obs).unwrap();
    let first = obs.clone();
    let mut ret = 0.0;
    loop {
        let a = policy(&first, &obs);
        let s = push(env, a, &mut obs);
        ret += s.reward;
        assert!(env.observation_space().contains(&obs), "{obs:?}");
        if s.done() {
            let success = s.info.success.expect("success set on the last step");
            return (success, env.elapsed_steps(), ret);
        }
        assert_eq!(s.info.success, None);
    }
}

#[test]
fn cue_only_at_the_first_step_and_go_after_the_delay() {
    let mut env = PointCue::new(PointCueConfig::default()).unwrap();
    let mut obs = obs_buf(&env);
    let mut cues = [0; 2];
    for seed in 0..50 {
        env.reset(seed, &mut obs).unwrap();
        let cue = env.cue();
        assert!(cue == 1.0 || cue == -1.0);
        cues[usize::from(cue > 0.0)] += 1;
        assert_eq!(obs, [cue, 0.0, 0.0, 0.0]);
        for t in 1..=12 {
            let s = push(&mut env, 0.0, &mut obs);
            assert!(!s.done());
            assert_eq!(obs[0], 0.0, "cue hidden at t={t}");
            assert_eq!(obs[1], if t >= 8 { 1.0 } else { 0.0 }, "go flag at t={t}");
        }
    }
    assert!(cues[0] > 10 && cues[1] > 10, "both cues occur: {cues:?}");
}

#[test]
fn actions_during_the_delay_do_not_move_the_mass() {
    let cfg = PointCueConfig::with_delay(6);
    let mut left = PointCue::new(cfg.clone()).unwrap();
    let mut right = PointCue::new(cfg).unwrap();
    let (mut ol, mut or) = (obs_buf(&left), obs_buf(&right));
    for seed in 0..20 {
        left.reset(seed, &mut ol).unwrap();
        right.reset(seed, &mut or).unwrap();
        for t in 1..=6 {
            let sl = push(&mut left, -1.0, &mut ol);
            let sr = push(&mut right, 1.0, &mut or);
            assert_eq!(ol, or, "t={t}");
            assert_eq!(sl, sr, "t={t}");
            assert_eq!((left.position(), left.velocity()), (0.0, 0.0));
            assert_eq!(ol[2..], [0.0, 0.0]);
        }
        // After the delay the same pushes move the masses apart.
        push(&mut left, -1.0, &mut ol);
        push(&mut right, 1.0, &mut or);
        assert_eq!(ol[2], -0.05);
        assert_eq!(or[2], 0.05);
        assert_eq!((ol[3], or[3]), (-0.05, 0.05));
    }
}

#[test]
fn pushing_towards_the_remembered_cue_always_succeeds() {
    let mut env = PointCue::new(PointCueConfig::default()).unwrap();
    for seed in 0..200 {
        let (success, length, ret) = episode(&mut env, seed, |first, _| first[0]);
        assert!(success, "seed {seed}");
        assert_eq!(length, 8 + 7, "delay + 7 go steps at full acceleration");
        assert_eq!(ret, 1.0);
        let st = env.episode_stats();
        assert_eq!(
            (st.success, st.length, st.truncated),
            (Some(true), 15, false)
        );
        assert!(st.counts.is_empty() && env.episode_counts().is_empty());
        assert_eq!(env.position(), env.cue());
    }
    // The same with a longer delay and the env's own optimal action.
    let mut env = PointCue::new(PointCueConfig::with_delay(40)).unwrap();
    let mut obs = obs_buf(&env);
    for seed in 0..50 {
        env.reset(seed, &mut obs).unwrap();
        let s = loop {
            let a = env.optimal_action();
            let s = push(&mut env, a, &mut obs);
            if s.done() {
                break s;
            }
        };
        assert!(s.terminated && s.info.success == Some(true));
    }
}

#[test]
fn a_fixed_push_succeeds_about_half_the_time() {
    let mut env = PointCue::new(PointCueConfig::default()).unwrap();
    for dir in [-1.0, 1.0] {
        let mut wins = 0;
        for seed in 0..400 {
            let (success, length, ret) = episode(&mut env, seed, |_, _| dir);
            assert_eq!(length, 15, "a full push always reaches an end");
            assert_eq!(ret, if success { 1.0 } else { 0.0 });
            wins += usize::from(success);
        }
        let rate = wins as f64 / 400.0;
        assert!((0.35..=0.65).contains(&rate), "push {dir}: success {rate}");
    }
}

#[test]
fn a_random_policy_reports_success_on_every_episode() {
    let mut env = PointCue::new(PointCueConfig::default()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut wins = 0;
    for seed in 0..300 {
        let (success, length, _) = episode(&mut env, seed, |_, _| rng.random_range(-1.0f32..=1.0));
        assert!(length <= 38);
        wins += usize::from(success);
    }
    assert!(wins < 150, "a policy blind to the cue: {wins}/300");
}

#[test]
fn wrong_end_fails_and_standing_still_is_truncated() {
    let cfg = PointCueConfig {
        failure_reward: -1.0,
        ..PointCueConfig::default()
    };
    let mut env = PointCue::new(cfg).unwrap();
    let (success, length, ret) = episode(&mut env, 3, |first, _| -first[0]);
    assert_eq!((success, length, ret), (false, 15, -1.0));
    assert_eq!(env.episode_stats().success, Some(false));

    let mut obs = obs_buf(&env);
    env.reset(3, &mut obs).unwrap();
    for t in 1..=38 {
        let s = push(&mut env, 0.0, &mut obs);
        assert!(!s.terminated);
        assert_eq!(s.truncated, t == 38, "t={t}");
        assert_eq!(s.reward, 0.0);
        assert_eq!(s.info.success, (t == 38).then_some(false));
    }
    assert_eq!(
        env.step(Action::Continuous(&[0.0]), &mut obs),
        Err(EnvError::StepAfterDone)
    );
}

#[test]
fn no_delay_time_feature_and_step_cost() {
    let cfg = PointCueConfig {
        delay: 0,
        go_steps: 10,
        time_feature: true,
        step_cost: 0.01,
        goal: 0.5,
        ..PointCueConfig::default()
    };
    let mut env = PointCue::new(cfg).unwrap();
    let mut obs = obs_buf(&env);
    assert_eq!(obs.len(), 5);
    env.reset(1, &mut obs).unwrap();
    let cue = env.cue();
    assert_eq!(obs, [cue, 1.0, 0.0, 0.0, 0.0], "cue and go together");
    let mut t = 0;
    loop {
        let s = push(&mut env, cue, &mut obs);
        t += 1;
        assert!((obs[4] - t as f32 / 10.0).abs() < 1e-6);
        if s.done() {
            assert!(s.terminated && s.info.success == Some(true));
            assert!((s.reward - 0.99).abs() < 1e-6);
            break;
        }
        assert_eq!(s.reward, -0.01);
    }
    // x: 0.05, 0.145, 0.2805, 0.45245, 0.657205 ≥ 0.5.
    assert_eq!(t, 5);
}

#[test]
fn refuses_actions_outside_the_box_even_during_the_delay() {
    let mut env = PointCue::new(PointCueConfig::default()).unwrap();
    let mut obs = obs_buf(&env);
    assert_eq!(
        env.step(Action::Continuous(&[0.0]), &mut obs),
        Err(EnvError::NotReset)
    );
    assert_eq!(env.action_space(), ActionSpace::continuous(1, -1.0, 1.0));
    env.reset(0, &mut obs).unwrap();
    let bad: [&[f32]; 6] = [
        &[1.5],
        &[-1.01],
        &[f32::NAN],
        &[f32::INFINITY],
        &[],
        &[0.0, 0.0],
    ];
    for _ in 0..10 {
        for a in bad {
            let r = env.step(Action::Continuous(a), &mut obs);
            assert!(
                matches!(r, Err(EnvError::ActionOutsideSpace(_))),
                "{a:?} gave {r:?}"
            );
        }
        assert!(env.step(Action::Discrete(0), &mut obs).is_err());
        push(&mut env, 1.0, &mut obs);
    }
    assert_eq!(env.elapsed_steps(), 10, "refused actions take no step");
}

#[test]
fn same_seed_same_cue() {
    let mut a = PointCue::new(PointCueConfig::default()).unwrap();
    let mut b = PointCue::new(PointCueConfig::default()).unwrap();
    let (mut oa, mut ob) = (obs_buf(&a), obs_buf(&b));
    for seed in 0..30 {
        a.reset(seed, &mut oa).unwrap();
        b.reset(seed, &mut ob).unwrap();
        assert_eq!(oa, ob);
    }
}

#[test]
fn check_env_passes() {
    let configs = [
        PointCueConfig::default(),
        PointCueConfig {
            delay: 0,
            go_steps: 5,
            goal: 0.3,
            accel: 0.2,
            damping: 0.5,
            max_speed: 0.4,
            success_reward: 2.0,
            failure_reward: -1.0,
            step_cost: 0.05,
            time_feature: true,
        },
        PointCueConfig::with_delay(25),
    ];
    for cfg in configs {
        let mut env = PointCue::new(cfg.clone()).unwrap();
        check_env(&mut env).unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
        assert_eq!(env.name(), "PointCue");
    }
}

#[test]
fn bad_configs_name_the_field() {
    let d = PointCueConfig::default;
    let cases = [
        (
            PointCueConfig {
                delay: 2_000_000,
                ..d()
            },
            "delay",
        ),
        (PointCueConfig { go_steps: 0, ..d() }, "go_steps"),
        (PointCueConfig { goal: 0.0, ..d() }, "goal"),
        (PointCueConfig { goal: 1.5, ..d() }, "goal"),
        (
            PointCueConfig {
                goal: f32::NAN,
                ..d()
            },
            "goal",
        ),
        (PointCueConfig { accel: 0.0, ..d() }, "accel"),
        (
            PointCueConfig {
                damping: 1.1,
                ..d()
            },
            "damping",
        ),
        (
            PointCueConfig {
                damping: f32::NAN,
                ..d()
            },
            "damping",
        ),
        (
            PointCueConfig {
                max_speed: -1.0,
                ..d()
            },
            "max_speed",
        ),
        (
            PointCueConfig {
                success_reward: f32::INFINITY,
                ..d()
            },
            "success_reward",
        ),
        (
            PointCueConfig {
                failure_reward: 2.0,
                ..d()
            },
            "failure_reward",
        ),
        (
            PointCueConfig {
                step_cost: -0.1,
                ..d()
            },
            "step_cost",
        ),
    ];
    assert_bad_configs(PointCue::new, cases);
}

#[test]
fn config_serde_defaults_and_unknown_fields() {
    let cfg: PointCueConfig = serde_json::from_str(r#"{"delay": 3}"#).unwrap();
    assert_eq!(cfg, PointCueConfig::with_delay(3));
    let json = serde_json::to_string(&PointCueConfig::default()).unwrap();
    let back: PointCueConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, PointCueConfig::default());
    let err = serde_json::from_str::<PointCueConfig>(r#"{"horizon": 3}"#).unwrap_err();
    assert!(err.to_string().contains("horizon"), "{err}");
}

#[test]
fn renders() {
    let mut env = PointCue::new(PointCueConfig::default()).unwrap();
    let mut obs = obs_buf(&env);
    env.reset(0, &mut obs).unwrap();
    let text = env.render_ascii().unwrap();
    assert!(
        text.contains("visible now") && text.contains("delay"),
        "{text}"
    );
    let frame = env.render_rgb().unwrap();
    assert_eq!(frame.rgb.len(), frame.width * frame.height * 3);
    let [x, y, w, h] = env.agent_rect().unwrap();
    assert!(x + w <= frame.width && y + h <= frame.height);
    let cue = env.cue();
    while !push(&mut env, cue, &mut obs).done() {}
    let text = env.render_ascii().unwrap();
    assert!(text.contains("cue hidden") && text.contains("go"), "{text}");
    let [x, _, w, _] = env.agent_rect().unwrap();
    assert!(x + w <= frame.width);
    assert_eq!(cue > 0.0, x > frame.width / 2);
}
