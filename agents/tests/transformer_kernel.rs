//! The fused Transformer kernel against the tensor-operation reference: outputs, the gradient
//! of every parameter and of the starting cache, the decoding step, stepping against the
//! sequence, and determinism across thread counts.
#![cfg(feature = "flex")]

use agents::ActorCritic;
use agents::attention::AttentionSizes;
use agents::memory::Memory;
use agents::{Transformer, TransformerConfig};
use burn::module::Module;
use burn::prelude::*;

mod common;
use common::{
    FusedTrunk, Outcome, Randomize, assert_close, assert_fused_steps_match,
    assert_outputs_and_parameter_grads_close, assert_same_on_any_thread_count, fused_trunk_pass,
    noise, run_steps, starts, tensor, values, warmed_up,
};

const OBS: usize = 5;
const ACTIONS: usize = 3;
const SPAN: usize = 4;

/// A variant of the model: layers and GTrXL gating.
type Variant = (usize, bool);

const VARIANTS: [Variant; 4] = [(2, false), (2, true), (1, false), (3, true)];

fn policy((layers, gating): Variant, device: &Device) -> Transformer {
    TransformerConfig::new()
        .with_sizes(AttentionSizes::new(16, 2, layers, 24, SPAN))
        .with_gating(gating)
        .init(OBS, ACTIONS, device)
        .map(&mut Randomize { seed: 7 })
}

fn tag((layers, gating): Variant) -> String {
    format!(
        "{layers} layer(s), {}",
        if gating { "gated" } else { "residual" }
    )
}

/// The passes compare the starting cache's gradient: every key and value tensor.
impl FusedTrunk for Transformer {
    fn tracked(memory: &Memory) -> usize {
        memory.tensors.len() - 1
    }
}

fn compare(what: &str, fused: &Outcome, reference: &Outcome) {
    let nonzero = assert_outputs_and_parameter_grads_close(what, fused, reference);
    for (i, nonzero) in nonzero.into_iter().enumerate() {
        assert!(nonzero, "{what}: parameter #{i} gets a gradient");
    }
    for (i, (g, r)) in fused.3.iter().zip(&reference.3).enumerate() {
        assert_close(&format!("{what}: gradient of cache tensor #{i}"), g, r);
    }
    assert!(reference.3.iter().flatten().any(|v| *v != 0.0));
}

/// Acceptance: batch 3, a chunk longer than the span (T = 3τ + 5) and one shorter (T = 2),
/// episode starts mid-chunk and at t = 0, a warm cache (part of one env's from an earlier
/// episode), with and without gating, 1–3 layers: outputs and all gradients (every parameter,
/// every cached key and value) agree within 1e-4 relative.
#[test]
fn fused_trunk_matches_the_reference_with_gradients() {
    let device = Device::flex().autodiff();
    for variant in VARIANTS {
        let policy = policy(variant, &device);
        let b = 3;
        let memory = warmed_up(&policy, b, OBS, 6, &device);
        for (t, ones) in [
            (3 * SPAN + 5, vec![(0, 5), (1, 0), (2, 9), (2, 10)]),
            (2, vec![(2, 1)]),
        ] {
            let obs = tensor(noise(b * t * OBS, 11 + t as u64), [b, t, OBS], &device);
            let starts = starts(b, t, &ones, &device);
            let io = (&obs, &starts);
            let fused = fused_trunk_pass(&policy, io, &memory, ACTIONS, true);
            let reference = fused_trunk_pass(&policy, io, &memory, ACTIONS, false);
            compare(&format!("{}, T = {t}", tag(variant)), &fused, &reference);
        }
    }
}

/// The fused decoding step (plain flex) against the reference step (the same weights under
/// autodiff, which steps with tensor operations): logits, values and every memory tensor.
#[test]
fn fused_step_matches_the_reference_step() {
    let ad = Device::flex().autodiff();
    for variant in VARIANTS {
        let what = format!("{}, ", tag(variant));
        assert_fused_steps_match(&what, &policy(variant, &ad), (5, OBS, 11), &[0, 6]);
    }
}

/// On the fused path, stepping one at a time gives what the sequence gives, from a warm cache
/// with starts at t = 0 and mid-sequence.
#[test]
fn fused_steps_match_the_fused_sequence() {
    let device = Device::flex();
    for variant in VARIANTS {
        let policy = policy(variant, &device);
        let (b, t) = (4, 2 * SPAN + 3);
        let memory = warmed_up(&policy, b, OBS, 5, &device);
        let obs = tensor(noise(b * t * OBS, 21), [b, t, OBS], &device);
        let starts = starts(b, t, &[(0, 0), (2, 4), (3, 7)], &device);
        let (logits, values_seq) =
            policy.forward_sequence(obs.clone(), starts.clone(), memory.clone());
        let (step_logits, step_values) = run_steps(&policy, obs, starts, memory);
        assert_close(&tag(variant), &values(step_logits), &values(logits));
        assert_close(&tag(variant), &values(step_values), &values(values_seq));
    }
}

/// The split of the batch into blocks does not depend on the number of threads: the same
/// outputs and gradients, bitwise, with one and with two threads.
#[test]
fn fused_gradients_do_not_depend_on_the_thread_count() {
    for variant in [VARIANTS[0], VARIANTS[1]] {
        let policy = policy(variant, &Device::flex().autodiff());
        assert_same_on_any_thread_count(&policy, (OBS, ACTIONS));
    }
}
