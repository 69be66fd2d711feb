//! The GRU and MLP baselines behind the `ActorCritic` interface, through `Policy`:
//! stepping equals the sequence forward, episode starts cut off the past (values and
//! gradients), gradients flow through the GRU's memory, and memory does not grow. And
//! `critic = "separate"` for every kind: the value function is a second network with its own
//! memory, stepping equals the sequence forward, and the value loss reaches no actor parameter
//! (nor the policy loss a critic parameter).

use agents::{ActorCritic, CriticKind, Memory, Policy, PolicyConfig, PolicyKind};
use burn::optim::GradientsParams;
use burn::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod common;
use common::{max_abs_diff, starts, values as host};

const OBS_DIM: usize = 6;
const NUM_ACTIONS: usize = 4;
const KINDS: [PolicyKind; 2] = [PolicyKind::Gru, PolicyKind::Mlp];

fn policy(kind: PolicyKind, device: &Device) -> Policy {
    PolicyConfig::preset(kind)
        .init(OBS_DIM, NUM_ACTIONS, device)
        .expect("preset builds")
}

fn random_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn obs_seq(b: usize, t: usize, seed: u64, device: &Device) -> Tensor<3> {
    Tensor::from_data(
        TensorData::new(random_vec(b * t * OBS_DIM, seed), [b, t, OBS_DIM]),
        device,
    )
}

/// A non-empty memory: the memory after `steps` random steps from a fresh one.
fn warm_memory(policy: &Policy, b: usize, steps: usize, device: &Device) -> Memory {
    let obs = obs_seq(b, steps, 99, device);
    let mut memory = policy.init_memory(b, device);
    for s in 0..steps {
        let o = obs.clone().narrow(1, s, 1).reshape([b, OBS_DIM]);
        let (_, _, m) = policy.step(o, Tensor::zeros([b], device), memory);
        memory = m;
    }
    memory
}

#[test]
fn step_by_step_equals_forward_sequence() {
    let device = Device::flex();
    let (b, t) = (3, 12);
    for kind in KINDS {
        let policy = policy(kind, &device);
        let memory0 = warm_memory(&policy, b, 5, &device);
        if kind == PolicyKind::Gru {
            let h: f32 = memory0.tensors[0].clone().abs().sum().into_scalar();
            assert!(h > 0.0, "the starting memory is not empty");
        }
        let obs = obs_seq(b, t, 1, &device);
        // Env 0: episode starts at step 0 and mid-sequence; env 1: mid-sequence; env 2: none.
        let st = starts(b, t, &[(0, 0), (0, 6), (1, 4)], &device);
        let (step_logits, step_values) =
            common::run_steps(&policy, obs.clone(), st.clone(), memory0.clone());
        let step_values = step_values.reshape([b, t, 1]);
        let (seq_logits, seq_values) = policy.forward_sequence(obs, st, memory0);
        let dl = max_abs_diff(&host(step_logits), &host(seq_logits));
        let dv = max_abs_diff(&host(step_values), &host(seq_values.reshape([b, t, 1])));
        assert!(dl <= 1e-4, "{kind}: logits differ by {dl}");
        assert!(dv <= 1e-4, "{kind}: values differ by {dv}");
    }
}

#[test]
fn episode_start_cuts_off_the_past() {
    let device = Device::flex();
    let (b, t, s) = (2, 10, 4); // env 0 starts a new episode at step s
    for kind in KINDS {
        let policy = policy(kind, &device);
        let st = starts(b, t, &[(0, s)], &device);
        let obs = obs_seq(b, t, 2, &device);
        let memory0 = warm_memory(&policy, b, 3, &device);
        let (logits, values) = policy.forward_sequence(obs.clone(), st.clone(), memory0);

        // Perturb everything env 0 saw before step s, and its starting memory.
        let noise = obs_seq(b, t, 3, &device).mul_scalar(5.0);
        let mask = Tensor::<3>::from_data(
            TensorData::new(
                (0..b * t * OBS_DIM)
                    .map(|i| {
                        let (e, step) = (i / (t * OBS_DIM), (i / OBS_DIM) % t);
                        if e == 0 && step < s { 1.0f32 } else { 0.0 }
                    })
                    .collect(),
                [b, t, OBS_DIM],
            ),
            &device,
        );
        let obs2 = obs + noise * mask;
        let other_memory = warm_memory(&policy, b, 7, &device);
        let (logits2, values2) = policy.forward_sequence(obs2, st, other_memory);

        let after = |x: Tensor<3>| host(x.narrow(0, 0, 1).narrow(1, s, t - s));
        let dl = max_abs_diff(&after(logits), &after(logits2));
        let dv = max_abs_diff(
            &after(values.reshape([b, t, 1])),
            &after(values2.reshape([b, t, 1])),
        );
        assert!(dl <= 1e-6, "{kind}: logits after the start changed by {dl}");
        assert!(dv <= 1e-6, "{kind}: values after the start changed by {dv}");
    }
}

#[test]
fn no_gradient_crosses_an_episode_start() {
    let device = Device::flex().autodiff();
    let (b, t, s) = (2, 8, 3);
    for kind in KINDS {
        let policy = policy(kind, &device);
        let obs = obs_seq(b, t, 4, &device).require_grad();
        let memory0 = warm_memory(&policy, b, 3, &device).detach();
        let memory0 = Memory {
            tensors: memory0
                .tensors
                .into_iter()
                .map(|m| m.require_grad())
                .collect(),
        };
        let st = starts(b, t, &[(0, s), (1, s)], &device);
        let (logits, values) = policy.forward_sequence(obs.clone(), st, memory0.clone());
        // A loss on the steps from the episode start on.
        let loss = logits.narrow(1, s, t - s).sum() + values.narrow(1, s, t - s).sum();
        let grads = loss.backward();
        let g = obs.grad(&grads).expect("obs gradient");
        let before: f32 = g.clone().narrow(1, 0, s).abs().sum().into_scalar();
        let after: f32 = g.narrow(1, s, t - s).abs().sum().into_scalar();
        assert_eq!(
            before, 0.0,
            "{kind}: gradient reached observations before the start"
        );
        assert!(
            after > 0.0,
            "{kind}: no gradient on the episode's own observations"
        );
        for m in &memory0.tensors {
            if let Some(gm) = m.grad(&grads) {
                let gm: f32 = gm.abs().sum().into_scalar();
                assert_eq!(gm, 0.0, "{kind}: gradient reached the starting memory");
            }
        }
    }
}

#[test]
fn gru_gradient_flows_through_memory_within_an_episode() {
    let device = Device::flex().autodiff();
    let (b, t) = (2, 16); // T − 1 < τ = 32
    let policy = policy(PolicyKind::Gru, &device);
    let obs = obs_seq(b, t, 5, &device).require_grad();
    let memory0 = policy.init_memory(b, &device);
    let st = starts(b, t, &[(0, 0), (1, 0)], &device);
    let (logits, values) = policy.forward_sequence(obs.clone(), st, memory0);
    let loss = logits.narrow(1, t - 1, 1).sum() + values.narrow(1, t - 1, 1).sum();
    let g = obs.grad(&loss.backward()).expect("obs gradient");
    let first: f32 = g.narrow(1, 0, 1).abs().sum().into_scalar();
    assert!(
        first > 0.0,
        "no gradient from step T to the observation at step 1"
    );

    // The MLP, memoryless, has none.
    let mlp = self::policy(PolicyKind::Mlp, &device);
    let obs = obs_seq(b, t, 5, &device).require_grad();
    let st = starts(b, t, &[(0, 0), (1, 0)], &device);
    let (logits, _) = mlp.forward_sequence(obs.clone(), st, Memory::empty());
    let g = obs
        .grad(&logits.narrow(1, t - 1, 1).sum().backward())
        .unwrap();
    let first: f32 = g.narrow(1, 0, 1).abs().sum().into_scalar();
    assert_eq!(first, 0.0, "the MLP has no memory");
}

#[test]
fn memory_size_is_fixed() {
    let device = Device::flex();
    let b = 3;
    for kind in KINDS {
        let config = PolicyConfig::preset(kind);
        let policy = config.init(OBS_DIM, NUM_ACTIONS, &device).unwrap();
        // The time scale of the presets' attention span (neither kind here has one).
        let tau = PolicyConfig::preset(PolicyKind::Feedback)
            .size("span")
            .unwrap();
        let obs = obs_seq(b, 10 * tau, 6, &device);
        let mut memory = policy.init_memory(b, &device);
        let initial = (memory.shapes(), memory.bytes_per_env());
        let mut at = Vec::new();
        for s in 0..10 * tau {
            let o = obs.clone().narrow(1, s, 1).reshape([b, OBS_DIM]);
            let start = if s % 50 == 0 { 1.0 } else { 0.0 };
            let (_, _, m) = policy.step(o, Tensor::full([b], start, &device), memory);
            memory = m;
            if s + 1 == tau + 1 || s + 1 == 10 * tau {
                at.push((memory.shapes(), memory.bytes_per_env()));
            }
        }
        assert_eq!(at[0], at[1], "{kind}: memory changed size");
        assert_eq!(at[0], initial, "{kind}: memory differs from init_memory");
        match kind {
            PolicyKind::Gru => {
                let d_model = config.size("d_model").unwrap();
                assert_eq!(at[0].0, vec![[b, 1, d_model]]);
                assert_eq!(at[0].1, d_model * 4);
            }
            _ => assert_eq!(at[0].1, 0, "the MLP holds no memory"),
        }
    }
}

#[test]
fn parameter_counts_match_the_architecture() {
    let device = Device::flex();
    let (o, a, h) = (OBS_DIM, NUM_ACTIONS, 64);
    let mlp = PolicyConfig::preset(PolicyKind::Mlp)
        .init(o, a, &device)
        .unwrap();
    assert_eq!(
        mlp.num_parameters(),
        (o * h + h) + (h * h + h) + (h * a + a) + (h + 1)
    );
    let gru = PolicyConfig::preset(PolicyKind::Gru)
        .init(o, a, &device)
        .unwrap();
    let d = 64;
    assert_eq!(
        gru.num_parameters(),
        (o * d + d) + 2 * (d * 3 * d + 3 * d) + (d * a + a) + (d + 1)
    );
}

#[test]
fn policy_head_starts_near_uniform() {
    let device = Device::flex();
    for kind in KINDS {
        let policy = policy(kind, &device);
        let obs = obs_seq(4, 1, 7, &device).reshape([4, OBS_DIM]);
        let (logits, _, _) = policy.step(
            obs,
            Tensor::ones([4], &device),
            policy.init_memory(4, &device),
        );
        let max: f32 = logits.abs().max().into_scalar();
        assert!(
            max < 0.1,
            "{kind}: initial logits up to {max}; the policy head is scaled by 0.01"
        );
    }
}

#[test]
#[should_panic(expected = "GruPolicy: the memory's shapes differ")]
fn gru_rejects_a_memory_of_another_batch_size() {
    let device = Device::flex();
    let policy = policy(PolicyKind::Gru, &device);
    let memory = policy.init_memory(3, &device);
    let obs = obs_seq(2, 1, 8, &device).reshape([2, OBS_DIM]);
    let _ = policy.step(obs, Tensor::zeros([2], &device), memory);
}

/// A small policy of `kind` (every kind) with the given critic.
fn small_policy(kind: PolicyKind, critic: CriticKind, device: &Device) -> Policy {
    let mut c = PolicyConfig::small(kind, 16, 4);
    c.critic = critic;
    c.init(OBS_DIM, NUM_ACTIONS, device).expect("config builds")
}

#[test]
fn separate_critic_doubles_parameters_and_memory() {
    let device = Device::flex();
    for kind in PolicyKind::ALL {
        let shared = small_policy(kind, CriticKind::Shared, &device);
        let separate = small_policy(kind, CriticKind::Separate, &device);
        assert_eq!(separate.critic_kind(), CriticKind::Separate);
        assert_eq!(
            separate.num_parameters(),
            2 * shared.num_parameters(),
            "{kind}"
        );
        let one = shared.init_memory(3, &device).shapes();
        let two = separate.init_memory(3, &device).shapes();
        assert_eq!(two, [one.clone(), one].concat(), "{kind}");
    }
}

#[test]
fn separate_critic_stepping_equals_forward_sequence() {
    let device = Device::flex();
    let (b, t) = (3, 9);
    for kind in PolicyKind::ALL {
        let policy = small_policy(kind, CriticKind::Separate, &device);
        let memory0 = warm_memory(&policy, b, 5, &device);
        let obs = obs_seq(b, t, 1, &device);
        let st = starts(b, t, &[(0, 0), (0, 5), (1, 3)], &device);
        let (step_logits, step_values) =
            common::run_steps(&policy, obs.clone(), st.clone(), memory0.clone());
        let (seq_logits, seq_values) = policy.forward_sequence(obs, st, memory0);
        let dl = max_abs_diff(&host(step_logits), &host(seq_logits));
        let dv = max_abs_diff(&host(step_values), &host(seq_values));
        assert!(dl <= 1e-4, "{kind}: logits differ by {dl}");
        assert!(dv <= 1e-4, "{kind}: values differ by {dv}");
    }
}

#[test]
fn value_and_policy_gradients_reach_only_their_own_network() {
    let device = Device::flex().autodiff();
    let (b, t) = (2, 6);
    for kind in PolicyKind::ALL {
        let policy = small_policy(kind, CriticKind::Separate, &device);
        let critic = policy.critic.as_ref().expect("a separate critic");
        let obs = obs_seq(b, t, 2, &device);
        let st = starts(b, t, &[(0, 0), (1, 0)], &device);
        let memory0 = policy.init_memory(b, &device);

        let (_, values) = policy.forward_sequence(obs.clone(), st.clone(), memory0.clone());
        let value_loss = values.square().mean();
        let g = value_loss.backward();
        let to_actor = GradientsParams::from_grads(g, &policy.actor);
        assert!(
            to_actor.is_empty(),
            "{kind}: the value loss reached {} actor parameters",
            to_actor.len()
        );
        let g = policy
            .forward_sequence(obs.clone(), st.clone(), memory0.clone())
            .1
            .square()
            .mean()
            .backward();
        assert!(
            !GradientsParams::from_grads(g, critic).is_empty(),
            "{kind}: the value loss does not train the critic"
        );

        let (logits, _) = policy.forward_sequence(obs.clone(), st.clone(), memory0.clone());
        let g = logits.square().mean().backward();
        let to_critic = GradientsParams::from_grads(g, critic);
        assert!(
            to_critic.is_empty(),
            "{kind}: the policy loss reached {} critic parameters",
            to_critic.len()
        );
    }
}
