//! GAE against hand-computed values, with a termination and a truncation in the sequence.

use agents::ppo::{GaeInputs, compute_gae, explained_variance};

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() < 1e-5,
            "index {i}: got {x}, expected {y} (all: {a:?})"
        );
    }
}

/// γ = 0.9, λ = 0.8, T = 5, two envs (time-major layout `t * 2 + i`).
///
/// Env 0: `terminated` at t = 1, `truncated` at t = 3 with V(final_obs) = 2.0, running at the
/// end with V(s_5) = 0.6. By hand (δ_t = r_t + γ V_next − V_t, A_t = δ_t + γλ (1 − done_t) A_{t+1}):
/// - t=4: V_next = 0.6 (last value):         δ = 1 + 0.54 − 0.3 = 1.24,  A = 1.24
/// - t=3: truncated, V_next = 2.0:           δ = 0 + 1.8 − 0.4 = 1.4,    A = 1.4 (no carry)
/// - t=2: V_next = V_3 = 0.4:                δ = 2 + 0.36 − 0.2 = 2.16,  A = 2.16 + 0.72·1.4 = 3.168
/// - t=1: terminated, V_next = 0:            δ = 0 − 1.0 = −1.0,         A = −1.0 (no carry)
/// - t=0: V_next = V_1 = 1.0:                δ = 1 + 0.9 − 0.5 = 1.4,    A = 1.4 + 0.72·(−1) = 0.68
///
/// Env 1: no episode end, zero values, one reward of 1 at t = 4: A_t = 0.72^(4−t).
#[test]
fn gae_matches_hand_computed_values() {
    let f = false;
    let t = true;
    // Interleave env 0 and env 1 per step.
    let rewards = [1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 1.0, 1.0];
    let values = [0.5, 0.0, 1.0, 0.0, 0.2, 0.0, 0.4, 0.0, 0.3, 0.0];
    let terminated = [f, f, t, f, f, f, f, f, f, f];
    let truncated = [f, f, f, f, f, f, t, f, f, f];
    // Garbage where not truncated: must be ignored.
    let truncation_values = [9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 2.0, 9.0, 9.0, 9.0];
    let last_values = [0.6, 0.0];
    let (adv, ret) = compute_gae(&GaeInputs {
        num_steps: 5,
        num_envs: 2,
        rewards: &rewards,
        values: &values,
        terminated: &terminated,
        truncated: &truncated,
        truncation_values: &truncation_values,
        last_values: &last_values,
        gamma: 0.9,
        lambda: 0.8,
    });
    let env0: Vec<f32> = (0..5).map(|k| adv[2 * k]).collect();
    let env1: Vec<f32> = (0..5).map(|k| adv[2 * k + 1]).collect();
    close(&env0, &[0.68, -1.0, 3.168, 1.4, 1.24]);
    close(&env1, &[0.268_738_56, 0.373_248, 0.518_4, 0.72, 1.0]);
    let ret0: Vec<f32> = (0..5).map(|k| ret[2 * k]).collect();
    close(&ret0, &[1.18, 0.0, 3.368, 1.8, 1.54]);
}

/// A step that is both terminated and truncated (goal reached on the last allowed step) is a
/// real end: no bootstrap.
#[test]
fn termination_wins_over_truncation() {
    let (adv, _) = compute_gae(&GaeInputs {
        num_steps: 1,
        num_envs: 1,
        rewards: &[1.0],
        values: &[0.25],
        terminated: &[true],
        truncated: &[true],
        truncation_values: &[100.0],
        last_values: &[50.0],
        gamma: 0.99,
        lambda: 0.95,
    });
    close(&adv, &[0.75]);
}

/// Bootstrapping from the value of the observation that started the next episode after a
/// truncation would be wrong: changing V of that observation (`values[t+1]`) must not change
/// the advantage at the truncated step.
#[test]
fn truncation_does_not_bootstrap_from_the_next_episode() {
    let run = |v_next_episode: f32| {
        compute_gae(&GaeInputs {
            num_steps: 2,
            num_envs: 1,
            rewards: &[0.0, 0.0],
            values: &[1.0, v_next_episode],
            terminated: &[false, false],
            truncated: &[true, false],
            truncation_values: &[3.0, 0.0],
            last_values: &[0.0],
            gamma: 0.5,
            lambda: 1.0,
        })
        .0[0]
    };
    assert_eq!(run(0.0), run(123.0));
    assert!((run(0.0) - 0.5).abs() < 1e-6);
}

#[test]
fn explained_variance_is_one_for_perfect_values_and_zero_for_the_mean() {
    let ret = [1.0, 2.0, 3.0, 4.0];
    assert!((explained_variance(&ret, &ret) - 1.0).abs() < 1e-6);
    assert!(explained_variance(&[2.5; 4], &ret).abs() < 1e-6);
}
