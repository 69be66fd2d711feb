//! The attention policies (Feedback Transformer, Transformer) against the policy contract:
//! stepping equals the parallel/unrolled sequence, episodes are isolated, gradients flow through
//! the memory within an episode, the Feedback window holds exactly `τ` memory vectors, and the
//! memory has a fixed size.

use agents::ActorCritic;
use agents::attention::AttentionSizes;
use agents::memory::Memory;
use agents::{FeedbackTransformer, FeedbackTransformerConfig, Transformer, TransformerConfig};
use burn::module::{Module, Param};
use burn::prelude::*;

mod common;
use common::{noise, starts, values};

const OBS: usize = 5;
const ACTIONS: usize = 3;
const SPAN: usize = 4;

/// A policy behind the interface, so every variant runs through the same test code.
type BoxedPolicy = Box<dyn ActorCritic>;

/// The sizes of every policy under test: width 16, 2 heads, 2 layers, feed-forward 32.
fn sizes() -> AttentionSizes {
    AttentionSizes::new(16, 2, 2, 32, SPAN)
}

fn feedback_config() -> FeedbackTransformerConfig {
    FeedbackTransformerConfig::new().with_sizes(sizes())
}

fn transformer_config() -> TransformerConfig {
    TransformerConfig::new().with_sizes(sizes())
}

/// Every attention policy variant under test, small.
fn policies(device: &Device) -> Vec<(&'static str, BoxedPolicy)> {
    vec![
        (
            "feedback",
            Box::new(feedback_config().init(OBS, ACTIONS, device)),
        ),
        (
            "feedback (per-layer kv)",
            Box::new(
                feedback_config()
                    .with_share_kv(false)
                    .init(OBS, ACTIONS, device),
            ),
        ),
        (
            "transformer",
            Box::new(transformer_config().init(OBS, ACTIONS, device)),
        ),
        (
            "transformer (gtrxl gating)",
            Box::new(
                transformer_config()
                    .with_gating(true)
                    .init(OBS, ACTIONS, device),
            ),
        ),
    ]
}

fn obs_seq(b: usize, t: usize, seed: u64, device: &Device) -> Tensor<3> {
    Tensor::from_data(
        TensorData::new(noise(b * t * OBS, seed), [b, t, OBS]),
        device,
    )
}

fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    values((a - b).abs().max())[0]
}

/// Runs `step` over every time step of `obs` `[B, T, obs]`; returns stacked logits, values and
/// the memory after the last step.
fn step_through(
    policy: &dyn ActorCritic,
    obs: Tensor<3>,
    starts: Tensor<2>,
    memory: Memory,
) -> (Tensor<3>, Tensor<2>, Memory) {
    let [b, t, _] = obs.dims();
    let mut memory = memory;
    let mut logits = Vec::new();
    let mut vals = Vec::new();
    for i in 0..t {
        let o = obs.clone().narrow(1, i, 1).reshape([b, OBS]);
        let s = starts.clone().narrow(1, i, 1).reshape([b]);
        let (l, v, m) = policy.step(o, s, memory);
        logits.push(l);
        vals.push(v);
        memory = m;
    }
    (Tensor::stack(logits, 1), Tensor::stack(vals, 1), memory)
}

/// A memory of the right shapes full of noise, every slot marked valid.
fn noisy_memory(like: &Memory, seed: u64, device: &Device) -> Memory {
    let n = like.tensors.len();
    Memory {
        tensors: like
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let dims = t.dims();
                if i + 1 == n {
                    Tensor::ones(dims, device)
                } else {
                    Tensor::from_data(
                        TensorData::new(noise(dims.iter().product(), seed + i as u64), dims),
                        device,
                    )
                    .mul_scalar(3.0)
                }
            })
            .collect(),
    }
}

/// Acceptance 1: stepping one at a time equals `forward_sequence`, from a non-empty memory,
/// with episode starts in the middle and T > τ.
#[test]
fn step_matches_forward_sequence() {
    let device = Device::flex();
    let (b, warmup, t) = (3, 6, 3 * SPAN + 1);
    for (name, policy) in policies(&device) {
        // Warm up: a non-empty memory, one env mid-episode since before the warm-up's start.
        let warm_obs = obs_seq(b, warmup, 1, &device);
        let warm_starts = starts(b, warmup, &[(0, 0), (1, 0), (2, 0), (1, 4)], &device);
        let (_, _, memory0) = step_through(
            policy.as_ref(),
            warm_obs,
            warm_starts,
            policy.init_memory(b, &device),
        );

        let obs = obs_seq(b, t, 2, &device);
        let st = starts(b, t, &[(0, 3), (1, 0), (1, 7), (1, 8)], &device);
        let (step_logits, step_values, _) =
            step_through(policy.as_ref(), obs.clone(), st.clone(), memory0.clone());
        let (seq_logits, seq_values) = policy.forward_sequence(obs, st, memory0);
        assert_eq!(seq_logits.dims(), [b, t, ACTIONS], "{name}");
        assert_eq!(seq_values.dims(), [b, t], "{name}");
        let dl = max_abs_diff(step_logits, seq_logits);
        let dv = max_abs_diff(step_values, seq_values);
        assert!(
            dl <= 1e-4 && dv <= 1e-4,
            "{name}: step vs sequence: logits {dl:e}, values {dv:e}"
        );
    }
}

/// The PPO path: roll out with the validation copy of a model on the plain device, then
/// recompute the sequence with the autodiff model from the stored memory, and backpropagate.
#[test]
fn autodiff_sequence_matches_plain_rollout_and_backpropagates() {
    let ad = Device::flex().autodiff();
    let (b, t) = (2, 2 * SPAN);
    let feedback: FeedbackTransformer = feedback_config().init(OBS, ACTIONS, &ad);
    let transformer: Transformer = transformer_config()
        .with_gating(true)
        .init(OBS, ACTIONS, &ad);
    // The embedding is the first layer: a gradient there has crossed the whole trunk.
    let feedback_embed = feedback.embed.weight.clone();
    let transformer_embed = transformer.embed.weight.clone();
    let models: Vec<(&str, BoxedPolicy, BoxedPolicy, Param<Tensor<2>>)> = vec![
        (
            "feedback",
            Box::new(feedback.valid()),
            Box::new(feedback),
            feedback_embed,
        ),
        (
            "transformer",
            Box::new(transformer.valid()),
            Box::new(transformer),
            transformer_embed,
        ),
    ];
    let plain_device = Device::flex();
    for (name, plain, model, embed) in models {
        let memory0 = {
            let o = obs_seq(b, 3, 7, &plain_device);
            let s = starts(b, 3, &[(0, 0), (1, 0)], &plain_device);
            step_through(plain.as_ref(), o, s, plain.init_memory(b, &plain_device)).2
        };
        let obs = obs_seq(b, t, 8, &plain_device);
        let st = starts(b, t, &[(1, 2)], &plain_device);
        let (step_logits, _, _) =
            step_through(plain.as_ref(), obs.clone(), st.clone(), memory0.clone());
        let (logits, vals) = model.forward_sequence(
            obs.to_device(&ad),
            st.to_device(&ad),
            memory0.to_device(&ad),
        );
        assert!(logits.device().is_autodiff(), "{name}");
        let d = max_abs_diff(step_logits, logits.clone().inner());
        assert!(d <= 1e-4, "{name}: autodiff sequence vs plain steps: {d:e}");
        let grads = (logits.sum() + vals.sum()).backward();
        let g = embed
            .val()
            .grad(&grads)
            .unwrap_or_else(|| panic!("{name}: no gradient reaches the embedding"));
        let g: f32 = g.abs().sum().into_scalar();
        assert!(g > 0.0 && g.is_finite(), "{name}: embedding gradient {g}");
    }
}

/// Acceptance 2: after an episode start nothing from before it (observations, memory0)
/// changes any output, and no gradient crosses it.
#[test]
fn episode_start_isolates_outputs_and_gradients() {
    let device = Device::flex();
    let (b, t, s) = (2, 2 * SPAN + 2, SPAN + 1);
    for (name, policy) in policies(&device) {
        // Env 0 starts a new episode at step `s`; env 1 carries on.
        let st = starts(b, t, &[(0, s)], &device);
        let obs = obs_seq(b, t, 3, &device);
        let memory0 = {
            let o = obs_seq(b, 5, 4, &device);
            let s0 = starts(b, 5, &[(0, 0), (1, 0)], &device);
            step_through(policy.as_ref(), o, s0, policy.init_memory(b, &device)).2
        };
        let (logits, vals) = policy.forward_sequence(obs.clone(), st.clone(), memory0.clone());

        // Perturb everything env 0 saw before `s` and the whole starting memory.
        let mut perturbed = values(obs.clone());
        let noisy = noise(s * OBS, 5);
        perturbed[..s * OBS]
            .iter_mut()
            .zip(&noisy)
            .for_each(|(x, n)| *x += 2.0 * n);
        let obs2 = Tensor::from_data(TensorData::new(perturbed, [b, t, OBS]), &device);
        let memory2 = noisy_memory(&memory0, 6, &device);
        let (logits2, vals2) = policy.forward_sequence(obs2, st.clone(), memory2);

        let after = |x: Tensor<3>| x.narrow(0, 0, 1).narrow(1, s, t - s);
        let after_v = |x: Tensor<2>| x.narrow(0, 0, 1).narrow(1, s, t - s);
        assert_eq!(
            max_abs_diff(after(logits.clone()), after(logits2.clone())),
            0.0,
            "{name}: logits after the episode start depend on the past"
        );
        assert_eq!(
            max_abs_diff(after_v(vals.clone()), after_v(vals2.clone())),
            0.0,
            "{name}: values after the episode start depend on the past"
        );
        // The perturbation is not a no-op: outputs before the start do change.
        let before = max_abs_diff(
            logits.narrow(0, 0, 1).narrow(1, 0, s),
            logits2.narrow(0, 0, 1).narrow(1, 0, s),
        );
        assert!(
            before > 1e-4,
            "{name}: perturbation changed nothing before the start ({before:e})"
        );
    }

    // Gradients: a loss on env 0's outputs after the start has exactly zero gradient with
    // respect to env 0's observations before it, and a non-zero one at and after it.
    let ad = Device::flex().autodiff();
    for (name, policy) in policies(&ad) {
        let st = starts(b, t, &[(0, 0), (1, 0), (0, s)], &ad);
        let obs = obs_seq(b, t, 9, &ad).require_grad();
        let (logits, vals) = policy.forward_sequence(obs.clone(), st, policy.init_memory(b, &ad));
        let loss = logits.narrow(0, 0, 1).narrow(1, s, t - s).sum()
            + vals.narrow(0, 0, 1).narrow(1, s, t - s).sum();
        let grads = loss.backward();
        let g = obs.grad(&grads).expect("observations require grad");
        let before = values(g.clone().narrow(0, 0, 1).narrow(1, 0, s).abs().max())[0];
        let at = values(g.narrow(0, 0, 1).narrow(1, s, 1).abs().max())[0];
        assert_eq!(before, 0.0, "{name}: gradient crosses the episode start");
        assert!(
            at > 0.0,
            "{name}: no gradient at the episode start's own step"
        );
    }
}

/// Acceptance 3: within an episode, a loss at step T has a non-zero gradient with respect to
/// the observation at step 1 when T − 1 < τ.
#[test]
fn gradients_flow_through_memory_within_an_episode() {
    let ad = Device::flex().autodiff();
    let (b, t) = (2, SPAN); // T − 1 < τ
    for (name, policy) in policies(&ad) {
        let st = starts(b, t, &[(0, 0), (1, 0)], &ad);
        let obs = obs_seq(b, t, 10, &ad).require_grad();
        let (logits, vals) = policy.forward_sequence(obs.clone(), st, policy.init_memory(b, &ad));
        let loss = logits.narrow(1, t - 1, 1).sum() + vals.narrow(1, t - 1, 1).sum();
        let grads = loss.backward();
        let g = obs.grad(&grads).expect("observations require grad");
        for env in 0..b {
            let first = values(g.clone().narrow(0, env, 1).narrow(1, 0, 1).abs().max())[0];
            assert!(
                first > 0.0,
                "{name}: no gradient from step {t} to step 1 (env {env})"
            );
        }
    }
}

/// The output at step `t` as a function of the observations, all in one episode.
fn output_at(policy: &dyn ActorCritic, obs: &[f32], t: usize, device: &Device) -> Tensor<2> {
    let len = obs.len() / OBS;
    let o = Tensor::from_data(TensorData::new(obs.to_vec(), [1, len, OBS]), device);
    let (logits, vals) = policy.forward_sequence(
        o,
        starts(1, len, &[(0, 0)], device),
        policy.init_memory(1, device),
    );
    Tensor::cat(
        vec![
            logits.narrow(1, t, 1).reshape([1, ACTIONS]),
            vals.narrow(1, t, 1),
        ],
        1,
    )
}

/// Changes the observation at step `s` of a one-env sequence.
fn perturb_step(obs: &[f32], s: usize) -> Vec<f32> {
    let mut o = obs.to_vec();
    o[s * OBS..(s + 1) * OBS].iter_mut().for_each(|x| *x += 1.5);
    o
}

/// The output at step `t` changes with the observation of every step within the span before
/// it and with none older (messages start with `what`).
fn assert_sees_exactly_its_span(
    what: &str,
    policy: &dyn ActorCritic,
    obs: &[f32],
    t: usize,
    device: &Device,
) {
    let base = output_at(policy, obs, t, device);
    for s in 0..=t {
        let d = max_abs_diff(
            base.clone(),
            output_at(policy, &perturb_step(obs, s), t, device),
        );
        if s + SPAN < t {
            assert_eq!(
                d, 0.0,
                "{what}obs at step {s} (older than the span) reached step {t}"
            );
        } else {
            assert!(
                d > 1e-6,
                "{what}obs at step {s} (inside the span) did not reach step {t}"
            );
        }
    }
}

/// Acceptance 3 (span): the Feedback Transformer's attention window holds exactly the last τ
/// memory vectors. Memory vectors normally mix every layer's output, so older observations can
/// still reach step t through the intermediate memory vectors (that is the point of feedback
/// memory, checked below too). To test the window itself, the memory mix is set to select only
/// the embedding (`softmax(w)` = one-hot on layer 0, exactly, in f32): then each memory vector is
/// a function of its own step's observation only, and the output at t must be unaffected by
/// observations at steps ≤ t − τ − 1, and affected by the one at t − τ (and by every one inside
/// the window).
#[test]
fn feedback_window_holds_exactly_span_memory_vectors() {
    let device = Device::flex();
    let t = 3 * SPAN;
    let obs = noise((t + 1) * OBS, 11);
    for share_kv in [true, false] {
        let mut policy: FeedbackTransformer = feedback_config()
            .with_share_kv(share_kv)
            .init(OBS, ACTIONS, &device);
        let mut w = vec![-100.0f32; policy.layers.len() + 1];
        w[0] = 100.0;
        policy.layer_mix = Param::from_tensor(Tensor::from_data(
            TensorData::new(w.clone(), [w.len()]),
            &device,
        ));
        assert_eq!(values(policy.layer_mix_weights()), [1.0, 0.0, 0.0]);

        let what = format!("share_kv={share_kv}: ");
        assert_sees_exactly_its_span(&what, &policy, &obs, t, &device);

        // With the default (uniform) mix, memory vectors carry the layers' outputs, which attended
        // to older memory: information older than the span reaches t through them.
        let policy: FeedbackTransformer = feedback_config()
            .with_share_kv(share_kv)
            .init(OBS, ACTIONS, &device);
        let base = output_at(&policy, &obs, t, &device);
        let d = max_abs_diff(
            base,
            output_at(&policy, &perturb_step(&obs, t - SPAN - 2), t, &device),
        );
        assert!(
            d > 0.0,
            "share_kv={share_kv}: feedback memory does not carry information past the span"
        );
    }
}

/// The same window property for a one-layer Transformer, where it holds exactly (with more
/// layers the receptive field is L·τ steps).
#[test]
fn one_layer_transformer_sees_exactly_its_span() {
    let device = Device::flex();
    let t = 3 * SPAN;
    let obs = noise((t + 1) * OBS, 12);
    let policy = transformer_config()
        .with_n_layers(1)
        .init(OBS, ACTIONS, &device);
    assert_sees_exactly_its_span("", &policy, &obs, t, &device);
}

/// Acceptance 4: the memory held per env has the same shapes and bytes after τ + 1 and after
/// 10·τ steps, and the expected layout.
#[test]
fn memory_size_is_fixed() {
    let device = Device::flex();
    let b = 2;
    let d = 16;
    for (name, policy) in policies(&device) {
        let mut memory = policy.init_memory(b, &device);
        let initial = (memory.shapes(), memory.bytes_per_env());
        let mut after_span = None;
        for i in 0..10 * SPAN {
            let o = Tensor::from_data(TensorData::new(noise(b * OBS, i as u64), [b, OBS]), &device);
            let s = Tensor::from_data(
                TensorData::new(vec![if i % 7 == 0 { 1.0f32 } else { 0.0 }; b], [b]),
                &device,
            );
            memory = policy.step(o, s, memory).2;
            if i + 1 == SPAN + 1 {
                after_span = Some((memory.shapes(), memory.bytes_per_env()));
            }
        }
        let after_span = after_span.unwrap();
        let after_long = (memory.shapes(), memory.bytes_per_env());
        assert_eq!(after_span, after_long, "{name}: memory grew");
        assert_eq!(
            initial, after_long,
            "{name}: memory differs from init_memory's"
        );
        let expected_bytes = match name {
            "feedback" => (3 * SPAN * d + SPAN) * 4, // vectors, shared keys and values, mask
            "feedback (per-layer kv)" => ((1 + 2 * 2) * SPAN * d + SPAN) * 4, // kv per layer
            _ => (2 * 2 * SPAN * d + SPAN) * 4,      // keys, values per layer
        };
        assert_eq!(after_long.1, expected_bytes, "{name}: bytes per env");
    }
}

/// Parameter counts: sharing the key/value projection saves exactly (L − 1) of them.
#[test]
fn parameter_counts() {
    let device = Device::flex();
    let (d, layers) = (16, 2);
    let shared = feedback_config()
        .init(OBS, ACTIONS, &device)
        .num_parameters();
    let separate = feedback_config()
        .with_share_kv(false)
        .init(OBS, ACTIONS, &device)
        .num_parameters();
    // One key/value projection (2d·d, no bias) and its LayerNorm (2d).
    assert_eq!(separate - shared, (layers - 1) * (2 * d * d + 2 * d));
    let plain = transformer_config()
        .init(OBS, ACTIONS, &device)
        .num_parameters();
    let gated = transformer_config()
        .with_gating(true)
        .init(OBS, ACTIONS, &device)
        .num_parameters();
    // Two gates per layer: 3d·d + 2d·d + d·d weights and d biases each.
    assert_eq!(gated - plain, layers * 2 * (6 * d * d + d));
    assert!(shared > 0 && plain > 0);
}

/// Bad sizes are clear errors naming the field.
#[test]
fn bad_config_is_a_clear_error() {
    let device = Device::flex();
    let err = feedback_config()
        .with_n_heads(3)
        .try_init(OBS, ACTIONS, &device)
        .unwrap_err();
    assert!(err.to_string().contains("n_heads"), "{err}");
    let err = transformer_config()
        .with_span(0)
        .try_init(OBS, ACTIONS, &device)
        .unwrap_err();
    assert!(err.to_string().contains("span"), "{err}");
}
