//! Helpers shared by the policy tests.
#![allow(dead_code)]

use agents::{ActorCritic, Memory};
use burn::prelude::*;

/// Runs `T` steps one at a time from `memory`; returns the stacked step outputs `[B, T, P]`
/// and values `[B, T]`.
pub fn run_steps<P: ActorCritic>(
    policy: &P,
    obs: Tensor<3>,
    starts: Tensor<2>,
    memory: Memory,
) -> (Tensor<3>, Tensor<2>) {
    let [b, t, d] = obs.dims();
    let mut memory = memory;
    let (mut outputs, mut values) = (Vec::new(), Vec::new());
    for s in 0..t {
        let o = obs.clone().narrow(1, s, 1).reshape([b, d]);
        let st = starts.clone().narrow(1, s, 1).reshape([b]);
        let (out, v, m) = policy.step(o, st, memory);
        outputs.push(out);
        values.push(v.reshape([b, 1]));
        memory = m;
    }
    (Tensor::stack(outputs, 1), Tensor::cat(values, 1))
}

/// Deterministic pseudo-random floats in [-1, 1).
pub fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}
