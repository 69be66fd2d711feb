//! Pendulum: Gymnasium's Pendulum-v1 dynamics and reward step by step, the speed clip, the
//! time limit, refused actions, determinism per seed and config validation.

mod common;

use envs::pendulum::angle_normalize;
use envs::{Action, ActionSpace, Env, EnvError, EnvExt, Pendulum, PendulumConfig, check_env};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use common::assert_bad_configs;

fn env() -> Pendulum {
    Pendulum::new(PendulumConfig::default()).unwrap()
}

/// One step of Gymnasium's `Pendulum.step` with the default parameters, in `f64`:
/// `(new th, new thdot, reward)`.
fn reference_step(th: f64, thdot: f64, u: f64) -> (f64, f64, f64) {
    let (g, m, l, dt, max_speed) = (10.0, 1.0, 1.0, 0.05, 8.0);
    let costs = angle_normalize(th).powi(2) + 0.1 * thdot * thdot + 0.001 * u * u;
    let newthdot = (thdot + (3.0 * g / (2.0 * l) * th.sin() + 3.0 / (m * l * l) * u) * dt)
        .clamp(-max_speed, max_speed);
    (th + newthdot * dt, newthdot, -costs)
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

/// Steps from `(th, thdot)` with `torques` and checks every step against `want`:
/// `(th, thdot, reward)` after each step, computed by hand with Gymnasium's formulas.
fn check_trajectory(th: f64, thdot: f64, torques: &[f32], want: &[(f64, f64, f64)]) {
    let mut env = env();
    let mut obs = vec![0.0; 3];
    env.set_state(th, thdot, &mut obs).unwrap();
    assert_eq!(obs, [th.cos() as f32, th.sin() as f32, thdot as f32]);
    let (mut rth, mut rthdot) = (th, thdot);
    for (&u, &(wth, wthdot, wr)) in torques.iter().zip(want) {
        let s = env.step(Action::Continuous(&[u]), &mut obs).unwrap();
        let (th, thdot) = env.state();
        assert!(close(th, wth, 1e-12), "th {th}, want {wth}");
        assert!(close(thdot, wthdot, 1e-12), "thdot {thdot}, want {wthdot}");
        assert!(
            close(f64::from(s.reward), wr, 1e-5),
            "reward {}, want {wr}",
            s.reward
        );
        let want_obs = [wth.cos() as f32, wth.sin() as f32, wthdot as f32];
        for (o, w) in obs.iter().zip(want_obs) {
            assert!((o - w).abs() <= 1e-6, "obs {obs:?}, want {want_obs:?}");
        }
        assert!(!s.terminated && !s.truncated);
        assert_eq!(s.info.success, None);
        // The same step from the in-test port of Gymnasium's formulas.
        let (nth, nthdot, nr) = reference_step(rth, rthdot, f64::from(u));
        assert!(close(nth, th, 1e-12) && close(nthdot, thdot, 1e-12) && close(nr, wr, 1e-12));
        (rth, rthdot) = (nth, nthdot);
    }
}

#[test]
fn matches_hand_computed_steps() {
    // Values from Gymnasium's pendulum.py formulas evaluated in double precision.
    check_trajectory(
        1.0,
        0.5,
        &[2.0, -1.5, 0.0],
        &[
            (1.071555161930296, 1.4311032386059224, -1.029),
            (1.1647833031404466, 1.864562824203012, -1.3552861130142986),
            (1.292462798424734, 2.5535899056857474, -1.7043795958147614),
        ],
    );
    // The reward uses the normalised angle: 5 rad counts as 5 − 2π.
    check_trajectory(
        5.0,
        -0.25,
        &[0.5, 1.0],
        &[
            (4.955290339700133, -0.8941932059973539, -1.6530645325615692),
            (4.881681520895757, -1.4721763760875124, -1.8442631936224416),
        ],
    );
    let first_reward = -((5.0 - 2.0 * std::f64::consts::PI).powi(2) + 0.1 * 0.0625 + 0.001 * 0.25);
    assert!(close(first_reward, -1.6530645325615692, 1e-12));
}

#[test]
fn speed_is_clipped_to_max_speed() {
    // 7.9 + (15 sin(π/2) + 3·2)·0.05 = 8.95 → 8.
    check_trajectory(
        std::f64::consts::FRAC_PI_2,
        7.9,
        &[2.0, 2.0],
        &[
            (1.9707963267948965, 8.0, -8.71240110027234),
            (2.3707963267948964, 8.0, -10.288038161708258),
        ],
    );
    check_trajectory(
        -std::f64::consts::FRAC_PI_2,
        -7.9,
        &[-2.0],
        &[(-1.9707963267948965, -8.0, -8.71240110027234)],
    );
}

#[test]
fn angle_normalize_wraps_like_python_modulo() {
    let pi = std::f64::consts::PI;
    assert!(close(angle_normalize(5.0), 5.0 - 2.0 * pi, 1e-15));
    assert!(close(angle_normalize(-5.0), -5.0 + 2.0 * pi, 1e-15));
    assert_eq!(angle_normalize(0.0), 0.0);
    assert_eq!(angle_normalize(pi), -pi);
    assert_eq!(angle_normalize(-pi), -pi);
}

#[test]
fn upright_and_still_costs_nothing() {
    let mut env = env();
    let mut obs = vec![0.0; 3];
    env.set_state(0.0, 0.0, &mut obs).unwrap();
    assert_eq!(obs, [1.0, 0.0, 0.0]);
    let s = env.step(Action::Continuous(&[0.0]), &mut obs).unwrap();
    assert_eq!(s.reward, 0.0);
    assert_eq!(obs, [1.0, 0.0, 0.0]);
}

#[test]
fn spaces_and_name() {
    let env = env();
    let space = env.observation_space();
    assert_eq!(space.shape, [3]);
    assert_eq!(space.low, [-1.0, -1.0, -8.0]);
    assert_eq!(space.high, [1.0, 1.0, 8.0]);
    assert_eq!(env.action_space(), ActionSpace::continuous(1, -2.0, 2.0));
    assert_eq!(env.name(), "Pendulum-v1");
}

#[test]
fn truncated_at_the_time_limit_never_terminated() {
    let mut env = env();
    let mut obs = vec![0.0; 3];
    env.reset(3, &mut obs).unwrap();
    let mut ret = 0.0;
    for t in 1..=200 {
        let u = if t % 2 == 0 { 2.0 } else { -0.7 };
        let s = env.step(Action::Continuous(&[u]), &mut obs).unwrap();
        ret += s.reward;
        assert!(!s.terminated);
        assert_eq!(s.truncated, t == 200, "step {t}");
        assert!(s.reward <= 0.0 && s.reward >= -16.2737);
        assert!(env.observation_space().contains(&obs));
    }
    let st = env.episode_stats();
    assert_eq!((st.length, st.truncated, st.success), (200, true, None));
    assert_eq!(st.ret, ret);
    assert_eq!(
        env.step(Action::Continuous(&[0.0]), &mut obs),
        Err(EnvError::StepAfterDone)
    );

    let cfg = PendulumConfig {
        max_episode_steps: 5,
        ..PendulumConfig::default()
    };
    let mut env = Pendulum::new(cfg).unwrap();
    env.reset(0, &mut obs).unwrap();
    for t in 1..=5 {
        let s = env.step(Action::Continuous(&[1.0]), &mut obs).unwrap();
        assert_eq!(s.truncated, t == 5);
    }
}

#[test]
fn refuses_actions_outside_the_box() {
    let mut env = env();
    let mut obs = vec![0.0; 3];
    assert_eq!(
        env.step(Action::Continuous(&[0.0]), &mut obs),
        Err(EnvError::NotReset)
    );
    env.set_state(0.5, -0.5, &mut obs).unwrap();
    let bad: [&[f32]; 8] = [
        &[2.0001],
        &[-2.5],
        &[f32::NAN],
        &[f32::INFINITY],
        &[f32::NEG_INFINITY],
        &[],
        &[0.0, 0.0],
        &[3.0, 0.0],
    ];
    for a in bad {
        let before = obs.clone();
        let r = env.step(Action::Continuous(a), &mut obs);
        assert!(
            matches!(r, Err(EnvError::ActionOutsideSpace(_))),
            "{a:?} gave {r:?}"
        );
        assert_eq!(obs, before, "a refused action leaves the observation");
        assert_eq!(
            env.state(),
            (0.5, -0.5),
            "a refused action leaves the state"
        );
    }
    assert!(env.step(Action::Discrete(0), &mut obs).is_err());
    assert!(env.step(Action::MultiDiscrete(&[0]), &mut obs).is_err());
    let mut short = vec![0.0; 2];
    assert_eq!(
        env.step(Action::Continuous(&[0.0]), &mut short),
        Err(EnvError::ObsBufferLength {
            got: 2,
            expected: 3
        })
    );
    assert_eq!(env.elapsed_steps(), 0);
    // The bounds themselves are accepted.
    env.step(Action::Continuous(&[2.0]), &mut obs).unwrap();
    env.step(Action::Continuous(&[-2.0]), &mut obs).unwrap();
    assert!(env.set_state(f64::NAN, 0.0, &mut obs).is_err());
    assert!(env.set_state(0.0, 8.5, &mut obs).is_err());
}

#[test]
fn same_seed_same_episode() {
    let run = |seed: u64| {
        let mut env = env();
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        let mut all = env.reset_vec(seed).unwrap();
        for _ in 0..50 {
            let u = rng.random_range(-2.0f32..=2.0);
            let (obs, s) = env.step_vec(&[u][..]).unwrap();
            all.extend(obs);
            all.push(s.reward);
        }
        all
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn reset_draws_the_start_state_from_gymnasiums_ranges() {
    let mut env = env();
    let mut obs = vec![0.0; 3];
    let (mut min_th, mut max_th) = (f64::MAX, f64::MIN);
    for seed in 0..500 {
        env.reset(seed, &mut obs).unwrap();
        let (th, thdot) = env.state();
        assert!((-std::f64::consts::PI..std::f64::consts::PI).contains(&th));
        assert!((-1.0..1.0).contains(&thdot));
        assert_eq!(obs, [th.cos() as f32, th.sin() as f32, thdot as f32]);
        (min_th, max_th) = (min_th.min(th), max_th.max(th));
    }
    assert!(min_th < -3.0 && max_th > 3.0, "{min_th}..{max_th}");
}

#[test]
fn check_env_passes() {
    let configs = [
        PendulumConfig::default(),
        PendulumConfig {
            g: 9.81,
            m: 0.5,
            l: 2.0,
            dt: 0.02,
            max_speed: 4.0,
            max_torque: 0.75,
            max_episode_steps: 50,
        },
    ];
    for cfg in configs {
        let mut env = Pendulum::new(cfg.clone()).unwrap();
        let report = check_env(&mut env).unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
        assert_eq!(report.terminated, 0);
        assert_eq!(report.truncated, 3);
        assert_eq!(report.mean_length, f64::from(cfg.max_episode_steps));
    }
}

#[test]
fn bad_configs_name_the_field() {
    let d = PendulumConfig::default;
    let cases = [
        (PendulumConfig { g: f64::NAN, ..d() }, "g"),
        (PendulumConfig { m: 0.0, ..d() }, "m"),
        (PendulumConfig { l: -1.0, ..d() }, "l"),
        (
            PendulumConfig {
                dt: f64::INFINITY,
                ..d()
            },
            "dt",
        ),
        (
            PendulumConfig {
                max_speed: 0.5,
                ..d()
            },
            "max_speed",
        ),
        (
            PendulumConfig {
                max_speed: 1e300,
                ..d()
            },
            "max_speed",
        ),
        (
            PendulumConfig {
                max_torque: 0.0,
                ..d()
            },
            "max_torque",
        ),
        (
            PendulumConfig {
                max_torque: 1e300,
                ..d()
            },
            "max_torque",
        ),
        (
            PendulumConfig {
                max_episode_steps: 0,
                ..d()
            },
            "max_episode_steps",
        ),
    ];
    assert_bad_configs(Pendulum::new, cases);
}

#[test]
fn config_serde_defaults_and_unknown_fields() {
    let cfg: PendulumConfig = serde_json::from_str(r#"{"g": 9.81}"#).unwrap();
    assert_eq!(
        cfg,
        PendulumConfig {
            g: 9.81,
            ..PendulumConfig::default()
        }
    );
    let json = serde_json::to_string(&PendulumConfig::default()).unwrap();
    let back: PendulumConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, PendulumConfig::default());
    let err = serde_json::from_str::<PendulumConfig>(r#"{"gravity": 9.81}"#).unwrap_err();
    assert!(err.to_string().contains("gravity"), "{err}");
}

#[test]
fn renders_the_rod() {
    let mut env = env();
    let mut obs = vec![0.0; 3];
    env.set_state(0.0, 0.0, &mut obs).unwrap();
    let text = env.render_ascii().unwrap();
    assert!(text.contains("t=0/200"), "{text}");
    let up = env.render_rgb().unwrap();
    assert_eq!(up.rgb.len(), up.width * up.height * 3);
    let (cx, cy) = (up.width / 2, up.height / 2);
    let white = [255, 255, 255];
    // Upright: the rod is above the pivot, not below.
    assert_ne!(up.pixel(cx, cy - up.height / 4), Some(white));
    assert_eq!(up.pixel(cx, cy + up.height / 4), Some(white));
    env.set_state(std::f64::consts::PI, 0.0, &mut obs).unwrap();
    env.step(Action::Continuous(&[1.0]), &mut obs).unwrap();
    let down = env.render_rgb().unwrap();
    assert_eq!(down.pixel(cx, cy - down.height / 4), Some(white));
    assert_ne!(down.pixel(cx, cy + down.height / 4), Some(white));
    assert!(env.render_ascii().unwrap().contains("torque +1.000"));
}
