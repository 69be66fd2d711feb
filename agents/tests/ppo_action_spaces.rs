//! PPO on real envs of every action space: rollouts never take an action the env's mask
//! forbids (masked GridMaze, masked multi-discrete GridMaze), continuous samples are stored
//! unclipped with their own log-probability while the env receives them clipped (Pendulum),
//! the stored chunk memories replay the rollout exactly (`seq_len` sequences), and the update
//! runs on each.

use agents::distribution::gaussian_logp;
use agents::ppo::{PpoConfig, RolloutState, collect_rollout, ppo_update};
use agents::{ActionDist, ActorCritic, Policy, PolicyConfig, PolicyKind};
use burn::optim::AdamConfig;
use burn::prelude::*;
use burn::tensor::TensorData;
use envs::{Env, GridMaze, GridMazeConfig, Pendulum, PendulumConfig, PointCue, VecEnv};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn policy_for<E: Env>(kind: PolicyKind, venv: &VecEnv<E>, device: &Device) -> Policy {
    PolicyConfig::small(kind, 32, 8)
        .init_for_env(&venv.envs()[0], device)
        .unwrap()
}

fn state_for<E: Env>(policy: &Policy, venv: &mut VecEnv<E>, device: &Device) -> RolloutState {
    let n = venv.num_envs();
    RolloutState {
        obs: venv.reset().unwrap().to_vec(),
        episode_starts: vec![1.0; n],
        memory: policy.init_memory(n, device),
        rng: ChaCha8Rng::seed_from_u64(3),
        reward_norm: None,
        obs_norm: None,
    }
}

/// Runs the PPO update of `model` (on the autodiff device) on `buf` once; its statistics
/// must be finite.
fn update_runs(model: Policy, buf: &mut agents::ppo::RolloutBuffer, num_minibatches: usize) {
    let device = Device::flex().autodiff();
    let mut optim = AdamConfig::new().init();
    let cfg = PpoConfig {
        num_minibatches,
        update_epochs: 2,
        ..PpoConfig::default()
    };
    buf.compute_advantages(cfg.gamma, cfg.gae_lambda);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (_, stats) = ppo_update(
        model,
        &mut optim,
        buf,
        &cfg,
        1e-3,
        &mut rng,
        &device,
        1,
        &|| false,
    )
    .expect("the update runs");
    for (name, v) in [
        ("policy loss", stats.policy_loss),
        ("value loss", stats.value_loss),
        ("entropy", stats.entropy),
        ("grad norm", stats.grad_norm),
    ] {
        assert!(v.is_finite(), "{name} = {v}");
    }
}

#[test]
fn masked_actions_are_never_taken_in_rollouts() {
    let device = Device::flex();
    for cfg in [
        GridMazeConfig::multi(7, 40).masked(),
        GridMazeConfig::multi(7, 40).move_run().masked(),
    ] {
        let mut venv = VecEnv::from_fn(8, 11, |_| GridMaze::new(cfg.clone())).unwrap();
        for kind in [PolicyKind::Mlp, PolicyKind::Feedback] {
            let model = policy_for(kind, &venv, &device.clone().autodiff());
            let policy = model.valid();
            let mut state = state_for(&policy, &mut venv, &device);
            assert!(venv.has_masks());
            let (mut buf, _) = collect_rollout(&policy, &mut venv, &mut state, 64, 64, &device)
                .expect("the rollout runs");
            let dist = ActionDist::from_space(venv.action_space());
            let (w, m) = (dist.action_width(), dist.mask_width().unwrap());
            assert_eq!(buf.masks.len(), 64 * 8 * m);
            let segments: Vec<usize> = match &dist {
                ActionDist::Categorical { n } => vec![*n],
                ActionDist::MultiCategorical { nvec } => nvec.clone(),
                ActionDist::Gaussian { .. } => unreachable!(),
            };
            let mut forbidden_seen = 0;
            for k in 0..64 * 8 {
                let mask = &buf.masks[k * m..(k + 1) * m];
                forbidden_seen += mask.iter().filter(|a| !**a).count();
                let mut start = 0;
                for (d, &n) in segments.iter().enumerate() {
                    let a = buf.actions[k * w + d] as usize;
                    assert!(a < n && mask[start + a], "step {k}: masked value {a} taken");
                    start += n;
                }
            }
            assert!(forbidden_seen > 0, "the mazes have walls to mask");
            update_runs(model, &mut buf, 4);
        }
    }
}

#[test]
fn continuous_samples_are_stored_unclipped_and_sent_clipped() {
    let device = Device::flex();
    let mut venv = VecEnv::from_fn(4, 5, |_| Pendulum::new(PendulumConfig::default())).unwrap();
    let model = policy_for(PolicyKind::Mlp, &venv, &device.clone().autodiff());
    let policy = model.valid();
    let mut state = state_for(&policy, &mut venv, &device);
    let steps = 150; // less than an episode: the VecEnv still holds every action it was sent
    let (mut buf, _) = collect_rollout(&policy, &mut venv, &mut state, steps, 30, &device)
        .expect("the rollout runs");
    assert_eq!(buf.actions.len(), steps * 4);
    assert!(buf.masks.is_empty());
    // The initial policy: mean ≈ 0 (head gain 0.01), std 1; bounds ±2.
    let outside = buf.actions.iter().filter(|x| x.abs() > 2.0).count();
    assert!(outside > 0, "some N(0, 1) samples fall beyond ±2");
    let sent = venv.state();
    for (i, env) in sent.envs.iter().enumerate() {
        assert_eq!(env.continuous_actions.len(), steps);
        for (t, &x) in env.continuous_actions.iter().enumerate() {
            let stored = buf.actions[t * 4 + i];
            assert_eq!(x, stored.clamp(-2.0, 2.0), "env {i} step {t}");
        }
    }
    // The stored log-probability is the unclipped sample's under the rollout's Gaussian.
    let obs = Tensor::<2>::from_data(TensorData::new(buf.obs[..4 * 3].to_vec(), [4, 3]), &device);
    let (params, _, _) = policy.step(
        obs,
        Tensor::ones([4], &device),
        policy.init_memory(4, &device),
    );
    let params = params.into_data().try_into_vec::<f32>().unwrap();
    for i in 0..4 {
        let want = gaussian_logp(buf.actions[i], params[2 * i], params[2 * i + 1]);
        assert!((f64::from(buf.logprobs[i]) - want).abs() < 1e-4);
    }
    update_runs(model, &mut buf, 20);
}

#[test]
fn stored_chunk_memories_replay_the_rollout() {
    let device = Device::flex();
    let mut venv =
        VecEnv::from_fn(4, 9, |_| PointCue::new(envs::PointCueConfig::default())).unwrap();
    for kind in [
        PolicyKind::Gru,
        PolicyKind::Feedback,
        PolicyKind::Transformer,
    ] {
        let policy = policy_for(kind, &venv, &device);
        let mut state = state_for(&policy, &mut venv, &device);
        // Warm the memory first, so chunk 0 does not start from zeros either.
        collect_rollout(&policy, &mut venv, &mut state, 16, 16, &device).unwrap();
        let (t_len, len) = (48, 8);
        let (buf, _) = collect_rollout(&policy, &mut venv, &mut state, t_len, len, &device)
            .expect("the rollout runs");
        assert_eq!(buf.chunk_memories.len(), t_len / len - 1);
        let units: Vec<usize> = (0..4 * t_len / len).collect();
        let obs = buf.sequence_major(&buf.obs, 4, &units);
        let starts = buf.sequence_major(&buf.episode_starts, 1, &units);
        let values = buf.sequence_major(&buf.values, 1, &units);
        let b = units.len();
        let (_, replayed) = policy.forward_sequence(
            Tensor::from_data(TensorData::new(obs, [b, len, 4]), &device),
            Tensor::from_data(TensorData::new(starts, [b, len]), &device),
            buf.sequence_memory(&units, &device),
        );
        let replayed = replayed.into_data().try_into_vec::<f32>().unwrap();
        let diff = replayed
            .iter()
            .zip(&values)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "{kind}: replayed values differ by {diff}");
    }
}
