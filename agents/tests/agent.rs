//! `Agent::act` as deployment uses it: a step that fails leaves the memory as it was.

use agents::{ActionDist, Agent, PolicyKind};
use burn::prelude::*;
use envs::ActionSpace;

mod common;
use common::small_config;

const OBS_DIM: usize = 5;

/// Observations that overflow the attention policies' embedding (`±f32::MAX`): finite, so
/// `act` takes them, but the network's outputs are NaN.
fn overflowing(batch: usize) -> Vec<f32> {
    (0..batch * OBS_DIM)
        .map(|i| if i % 2 == 0 { f32::MAX } else { -f32::MAX })
        .collect()
}

fn ordinary(batch: usize, step: usize) -> Vec<f32> {
    (0..batch * OBS_DIM)
        .map(|i| ((i + 7 * step) as f32 * 0.37).sin())
        .collect()
}

/// A step whose policy outputs are NaN is an error, and the memory (and the sampling RNG) are
/// those before it: the steps after act exactly as if it had never been tried.
#[test]
fn a_step_with_nan_outputs_leaves_the_memory_as_it_was() {
    let device = Device::flex();
    let dist = ActionDist::from_space(&ActionSpace::discrete(3));
    for kind in [PolicyKind::Feedback, PolicyKind::Transformer] {
        let config = small_config(kind);
        let policy = config.init(OBS_DIM, 3, &device).unwrap();
        let agent = Agent::from_policy(policy, &config, OBS_DIM, &dist, None).unwrap();
        let (mut tried, mut clean) = (
            agent.initial_memory_seeded(2, 5),
            agent.initial_memory_seeded(2, 5),
        );
        for step in 0..4 {
            if step == 2 {
                let err = agent
                    .act(&overflowing(2), &mut tried, false)
                    .unwrap_err()
                    .to_string();
                assert!(err.contains("NaN"), "{kind:?}: {err}");
            }
            let obs = ordinary(2, step);
            let a = agent.act(&obs, &mut tried, false).unwrap();
            let b = agent.act(&obs, &mut clean, false).unwrap();
            assert_eq!(a, b, "{kind:?}, step {step}");
            assert!(a.values.iter().all(|v| v.is_finite()), "{kind:?}: {a:?}");
        }
    }
}
