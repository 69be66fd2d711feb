//! `critic = "separate"` for every policy kind: the value function is a second network with its
//! own memory; stepping equals the sequence forward; the value loss reaches no actor parameter
//! and the policy loss no critic parameter.

use agents::{ActorCritic, CriticKind, Memory, Policy, PolicyConfig, PolicyKind};
use burn::optim::GradientsParams;
use burn::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const OBS_DIM: usize = 5;
const NUM_ACTIONS: usize = 3;

fn config(kind: PolicyKind, critic: CriticKind) -> PolicyConfig {
    let mut c = PolicyConfig::preset(kind);
    c.d_model = 16;
    c.d_ff = 32;
    c.n_heads = 2;
    c.span = 4;
    c.hidden = 16;
    c.critic = critic;
    c
}

fn policy(kind: PolicyKind, critic: CriticKind, device: &Device) -> Policy {
    config(kind, critic)
        .init(OBS_DIM, NUM_ACTIONS, device)
        .expect("config builds")
}

fn obs_seq(b: usize, t: usize, seed: u64, device: &Device) -> Tensor<3> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f32> = (0..b * t * OBS_DIM)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    Tensor::from_data(TensorData::new(v, [b, t, OBS_DIM]), device)
}

fn starts(b: usize, t: usize, at: &[(usize, usize)], device: &Device) -> Tensor<2> {
    let mut v = vec![0.0f32; b * t];
    for &(e, s) in at {
        v[e * t + s] = 1.0;
    }
    Tensor::from_data(TensorData::new(v, [b, t]), device)
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The memory after `steps` random steps from a fresh one.
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
fn separate_critic_doubles_parameters_and_memory() {
    let device = Device::flex();
    for kind in PolicyKind::ALL {
        let shared = policy(kind, CriticKind::Shared, &device);
        let separate = policy(kind, CriticKind::Separate, &device);
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
        let policy = policy(kind, CriticKind::Separate, &device);
        let memory0 = warm_memory(&policy, b, 5, &device);
        let obs = obs_seq(b, t, 1, &device);
        let st = starts(b, t, &[(0, 0), (0, 5), (1, 3)], &device);
        let mut memory = memory0.clone();
        let (mut logits, mut values) = (Vec::new(), Vec::new());
        for s in 0..t {
            let o = obs.clone().narrow(1, s, 1).reshape([b, OBS_DIM]);
            let e = st.clone().narrow(1, s, 1).reshape([b]);
            let (l, v, m) = policy.step(o, e, memory);
            logits.push(l);
            values.push(v.reshape([b, 1]));
            memory = m;
        }
        let step_logits = Tensor::stack::<3>(logits, 1);
        let step_values = Tensor::cat(values, 1);
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
        let policy = policy(kind, CriticKind::Separate, &device);
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
