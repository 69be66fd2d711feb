//! CueRecall: the cue is visible only at the first step, the right exit succeeds, a wrong one
//! fails, a memoryless policy is at chance.

use envs::cue_recall::CUE_ACTION_FORWARD;
use envs::{Action, ActionSpace, CueRecall, CueRecallConfig, Env, EnvError, derive_seed};

fn obs_buf(env: &CueRecall) -> Vec<f32> {
    vec![0.0; env.observation_space().flat_len()]
}

#[test]
fn cue_only_at_the_first_step_and_optimal_play_succeeds() {
    let cfg = CueRecallConfig::with_corridor(5);
    let mut env = CueRecall::new(cfg).unwrap();
    let mut obs = obs_buf(&env);
    let mut cues = [0; 2];
    for s in 0..40 {
        env.reset(s, &mut obs).unwrap();
        let cue = env.cue();
        cues[cue] += 1;
        // [cue one-hot, in corridor, at junction]
        let mut want = vec![0.0; 4];
        want[cue] = 1.0;
        want[2] = 1.0;
        assert_eq!(obs, want);
        let mut t = 0;
        loop {
            let a = env.optimal_action();
            let step = env.step(a.into(), &mut obs).unwrap();
            t += 1;
            assert_eq!(obs[..2], [0.0, 0.0], "cue hidden after the first step");
            assert!(env.observation_space().contains(&obs));
            if step.done() {
                assert!(step.terminated && !step.truncated);
                assert_eq!(step.info.success, Some(true));
                assert_eq!(step.reward, 1.0);
                break;
            }
            assert_eq!(step.info.success, None);
            assert_eq!(step.reward, 0.0);
            assert_eq!(
                obs[3],
                if t == 5 { 1.0 } else { 0.0 },
                "junction flag at t={t}"
            );
        }
        assert_eq!(t, 6, "corridor + decision");
        let st = env.episode_stats();
        assert_eq!((st.ret, st.length, st.success), (1.0, 6, Some(true)));
        // Success is the task's outcome; it counts nothing else.
        assert!(st.counts.is_empty() && env.episode_counts().is_empty());
        assert_eq!(env.step(0.into(), &mut obs), Err(EnvError::StepAfterDone));
    }
    assert!(cues[0] > 5 && cues[1] > 5, "both cues occur: {cues:?}");
}

#[test]
fn wrong_exit_fails_and_any_action_walks_the_corridor() {
    let cfg = CueRecallConfig {
        failure_reward: -1.0,
        num_cues: 3,
        ..CueRecallConfig::with_corridor(3)
    };
    let mut env = CueRecall::new(cfg).unwrap();
    let mut obs = obs_buf(&env);
    env.reset(9, &mut obs).unwrap();
    let wrong = 1 + (env.cue() + 1) % 3;
    for _ in 0..3 {
        // Exit actions in the corridor just move forward.
        let s = env.step(wrong.into(), &mut obs).unwrap();
        assert!(!s.done());
    }
    assert!(env.at_junction());
    let s = env.step(wrong.into(), &mut obs).unwrap();
    assert!(s.terminated);
    assert_eq!((s.reward, s.info.success), (-1.0, Some(false)));
    assert_eq!(env.episode_stats().success, Some(false));
}

#[test]
fn waiting_at_the_junction_truncates() {
    let cfg = CueRecallConfig {
        junction_patience: 2,
        progress_feature: true,
        ..CueRecallConfig::with_corridor(2)
    };
    let mut env = CueRecall::new(cfg).unwrap();
    let mut obs = obs_buf(&env);
    env.reset(0, &mut obs).unwrap();
    assert_eq!(obs[4], 0.0);
    let mut last = None;
    for t in 1..=5 {
        let s = env.step(CUE_ACTION_FORWARD.into(), &mut obs).unwrap();
        assert_eq!(s.truncated, t == 5, "t={t}");
        last = Some(s);
    }
    let s = last.unwrap();
    assert!(!s.terminated && s.info.success == Some(false) && s.reward == 0.0);
    assert_eq!(obs[4], 1.0, "progress 1 at the junction");
    assert_eq!(env.step(1.into(), &mut obs), Err(EnvError::StepAfterDone));
}

#[test]
fn a_memoryless_policy_is_at_chance() {
    // Without the cue every observation after the first is the same for both cues, so any
    // memoryless policy picks the exit independently of the cue: success ≈ 1/2.
    let mut env = CueRecall::new(CueRecallConfig::with_corridor(4)).unwrap();
    let mut obs = obs_buf(&env);
    let episodes = 2000;
    let mut successes = 0;
    for i in 0..episodes {
        env.reset(derive_seed(3, i), &mut obs).unwrap();
        loop {
            // Always "left" (exit 0), a memoryless choice.
            let s = env.step(1.into(), &mut obs).unwrap();
            if s.done() {
                successes += u32::from(s.info.success == Some(true));
                break;
            }
        }
    }
    let rate = f64::from(successes) / episodes as f64;
    assert!((rate - 0.5).abs() < 0.05, "success rate {rate}");
}

#[test]
fn determinism_and_errors() {
    let mut a = CueRecall::new(CueRecallConfig::default()).unwrap();
    let mut b = CueRecall::new(CueRecallConfig::default()).unwrap();
    let (mut oa, mut ob) = (obs_buf(&a), obs_buf(&b));
    for s in 0..20 {
        a.reset(s, &mut oa).unwrap();
        b.reset(s, &mut ob).unwrap();
        assert_eq!(oa, ob);
        assert_eq!(a.cue(), b.cue());
    }
    assert_eq!(a.action_space(), ActionSpace::discrete(3));
    assert_eq!(a.action_mask(), None);
    assert_eq!(
        a.step(3.into(), &mut oa),
        Err(EnvError::InvalidAction { action: 3, n: 3 })
    );
    assert!(matches!(
        a.step(Action::MultiDiscrete(&[0, 1]), &mut oa),
        Err(EnvError::ActionOutsideSpace(why)) if why.contains("Discrete(3)")
    ));
    let mut fresh = CueRecall::new(CueRecallConfig::default()).unwrap();
    assert_eq!(fresh.step(0.into(), &mut oa), Err(EnvError::NotReset));
    let field = |cfg: CueRecallConfig| match CueRecall::new(cfg) {
        Err(EnvError::InvalidConfig { field, .. }) => field,
        other => panic!("expected an error, got {other:?}"),
    };
    let d = CueRecallConfig::default;
    assert_eq!(field(CueRecallConfig { num_cues: 1, ..d() }), "num_cues");
    assert_eq!(
        field(CueRecallConfig {
            success_reward: f32::INFINITY,
            ..d()
        }),
        "success_reward"
    );
    assert_eq!(
        field(CueRecallConfig {
            failure_reward: 2.0,
            ..d()
        }),
        "failure_reward"
    );
    // A zero-length corridor: the cue and the junction are seen together.
    let mut env = CueRecall::new(CueRecallConfig::with_corridor(0)).unwrap();
    let mut obs = obs_buf(&env);
    env.reset(1, &mut obs).unwrap();
    assert_eq!(obs[3], 1.0);
    let s = env.step(env.optimal_action().into(), &mut obs).unwrap();
    assert_eq!(s.info.success, Some(true));
    assert!(env.render_ascii().unwrap().contains('@'));
    assert_eq!(env.name(), "cue-recall-0");
}

#[test]
fn renders_the_corridor_the_cue_and_the_exit_taken() {
    let cfg = CueRecallConfig {
        num_cues: 3,
        ..CueRecallConfig::with_corridor(4)
    };
    let mut env = CueRecall::new(cfg.clone()).unwrap();
    let mut obs = vec![0.0; cfg.obs_len()];
    // Two seeds with different cues show the cue in different colours at the start cell.
    let mut starts = Vec::new();
    for seed in 0..20 {
        env.reset(seed, &mut obs).unwrap();
        let frame = env.render_rgb().unwrap();
        let [x, y, _, _] = env.agent_rect().unwrap();
        // The start cell's corner, beside the agent's square.
        starts.push((env.cue(), frame.pixel(x - 1, y + 1).unwrap()));
    }
    let colour_of = |cue: usize| starts.iter().find(|s| s.0 == cue).map(|s| s.1);
    let (a, b) = (colour_of(0).unwrap(), colour_of(1).unwrap());
    assert_ne!(a, b, "different cues, different colours");
    assert!(starts.iter().all(|s| colour_of(s.0) == Some(s.1)));

    env.reset(0, &mut obs).unwrap();
    let first = env.render_rgb().unwrap();
    let at_start = env.agent_rect().unwrap();
    env.step(Action::Discrete(CUE_ACTION_FORWARD), &mut obs)
        .unwrap();
    let second = env.render_rgb().unwrap();
    let moved = env.agent_rect().unwrap();
    assert_eq!((first.width, first.height), (second.width, second.height));
    assert!(moved[0] > at_start[0], "{moved:?} vs {at_start:?}");
    // The cue is gone from the start cell after the first step.
    let corner = (at_start[0] - 1, at_start[1] + 1);
    assert_ne!(
        first.pixel(corner.0, corner.1),
        second.pixel(corner.0, corner.1)
    );
    while !env.at_junction() {
        env.step(Action::Discrete(CUE_ACTION_FORWARD), &mut obs)
            .unwrap();
    }
    let at_junction = env.agent_rect().unwrap();
    env.step(Action::Discrete(1 + env.cue()), &mut obs).unwrap();
    let on_exit = env.agent_rect().unwrap();
    assert!(
        on_exit[0] > at_junction[0],
        "{on_exit:?} vs {at_junction:?}"
    );
    let last = env.render_rgb().unwrap();
    assert_eq!(last.pixel(on_exit[0], on_exit[1]), Some([30, 30, 30]));

    // Long corridors and many cues keep the picture small.
    for (corridor, cues) in [(1_000_000, 2), (0, 64), (7, 64)] {
        let cfg = CueRecallConfig {
            num_cues: cues,
            ..CueRecallConfig::with_corridor(corridor)
        };
        let mut env = CueRecall::new(cfg.clone()).unwrap();
        let mut obs = vec![0.0; cfg.obs_len()];
        env.reset(3, &mut obs).unwrap();
        let frame = env.render_rgb().unwrap();
        assert!(
            frame.width <= 512 && frame.height <= 512,
            "{corridor} {cues}"
        );
        let [x, y, w, h] = env.agent_rect().unwrap();
        assert!(x + w <= frame.width && y + h <= frame.height);
    }
}
