//! The fused Feedback Transformer kernel against the tensor-operation reference: outputs,
//! the gradient of every parameter and of the starting memory, the decoding step, and
//! determinism across thread counts.
#![cfg(feature = "flex")]

use agents::attention::AttentionSizes;
use agents::feedback::{CurrentSlot, MemoryMix};
use agents::memory::Memory;
use agents::{FeedbackTransformer, FeedbackTransformerConfig};
use burn::module::Module;
use burn::prelude::*;

mod common;
use common::{
    FusedTrunk, Randomize, assert_close, assert_fused_steps_match,
    assert_outputs_and_parameter_grads_close, assert_same_on_any_thread_count, fused_trunk_pass,
    noise, starts, tensor, warmed_up,
};

const OBS: usize = 5;
const ACTIONS: usize = 3;

/// A variant of the model: `share_kv`, the memory mix and the current step's slot.
type Variant = (bool, MemoryMix, CurrentSlot);

/// The default model with and without shared keys/values, and every ablation.
const VARIANTS: [Variant; 6] = [
    (true, MemoryMix::Learned, CurrentSlot::Input),
    (false, MemoryMix::Learned, CurrentSlot::Input),
    (true, MemoryMix::Top, CurrentSlot::Input),
    (false, MemoryMix::Embedding, CurrentSlot::Input),
    (true, MemoryMix::Learned, CurrentSlot::Null),
    (false, MemoryMix::Top, CurrentSlot::Null),
];

fn config((share_kv, mix, slot): Variant) -> FeedbackTransformerConfig {
    FeedbackTransformerConfig::new()
        .with_sizes(AttentionSizes::new(16, 2, 2, 24, 4))
        .with_share_kv(share_kv)
        .with_memory_mix(mix)
        .with_current_slot(slot)
}

fn policy(variant: Variant, device: &Device) -> FeedbackTransformer {
    config(variant)
        .init(OBS, ACTIONS, device)
        .map(&mut Randomize { seed: 7 })
}

/// The passes compare the starting memory vectors' gradient: the window's keys and values are
/// recomputed from them.
impl FusedTrunk for FeedbackTransformer {
    fn tracked(_memory: &Memory) -> usize {
        1
    }
}

/// Acceptance: batch 3, T = 3τ + 5, episode starts in the middle (and at the first step of one
/// env), a warmed-up memory, `share_kv` on and off, every ablation of the memory: outputs and
/// all gradients agree within 1e-4 relative.
#[test]
fn fused_recurrence_matches_the_reference_with_gradients() {
    let device = Device::flex().autodiff();
    for variant in VARIANTS {
        let policy = policy(variant, &device);
        let (b, t) = (3, 3 * 4 + 5);
        let memory = warmed_up(&policy, b, OBS, 6, &device);
        let obs = tensor(noise(b * t * OBS, 11), [b, t, OBS], &device);
        let starts = starts(b, t, &[(0, 5), (1, 0), (2, 9), (2, 10)], &device);
        let io = (&obs, &starts);
        let fused = fused_trunk_pass(&policy, io, &memory, ACTIONS, true);
        let reference = fused_trunk_pass(&policy, io, &memory, ACTIONS, false);
        let (share_kv, mix, slot) = variant;
        let tag = format!(
            "{} kv, {} mix, {} slot",
            if share_kv { "shared" } else { "per-layer" },
            mix.name(),
            slot.name()
        );
        let nonzero = assert_outputs_and_parameter_grads_close(&tag, &fused, &reference)
            .into_iter()
            .filter(|nonzero| *nonzero)
            .count();
        // A fixed mix leaves the mixing logits without a gradient.
        let unused = usize::from(mix != MemoryMix::Learned);
        assert_eq!(
            nonzero,
            reference.2.len() - unused,
            "{tag}: every parameter in use gets a gradient"
        );
        assert_close(
            &format!("{tag}: gradient of the starting memory"),
            &fused.3[0],
            &reference.3[0],
        );
        assert!(reference.3[0].iter().any(|v| *v != 0.0));
    }
}

/// The fused decoding step (plain flex) against the reference step (the same weights under
/// autodiff, which steps with tensor operations): logits, values and every memory tensor.
#[test]
fn fused_step_matches_the_reference_step() {
    let ad = Device::flex().autodiff();
    for variant in VARIANTS {
        assert_fused_steps_match("", &policy(variant, &ad), (5, OBS, 11), &[6]);
    }
}

/// The split of the batch into blocks does not depend on the number of threads: the same
/// gradients, bitwise, with one and with two threads.
#[test]
fn fused_gradients_do_not_depend_on_the_thread_count() {
    let policy = policy(VARIANTS[0], &Device::flex().autodiff());
    assert_same_on_any_thread_count(&policy, (OBS, ACTIONS));
}
