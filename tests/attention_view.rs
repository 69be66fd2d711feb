//! `fbrl render --attention`: the recorded attention weights and what is drawn from them.
//! Every layer's weights over its window sum to one at every step, steps before the
//! episode's start get none, and the tinted places of the maze carry the same weights.

use agents::{ActorCritic, CriticKind, Policy, PolicyConfig, PolicyKind};
use burn::prelude::*;
use envs::{Env, GridMaze, GridMazeConfig};
use fbrl::attention_view::{self, place_weights};
use fbrl::eval::{ActionSelection, RecordedEpisode, record_episode};

const SPAN: usize = 4;

fn config(kind: PolicyKind, critic: CriticKind) -> PolicyConfig {
    let mut c = PolicyConfig::small(kind, 16, SPAN);
    c.set("n_layers", 2).unwrap();
    c.critic = critic;
    c
}

fn maze() -> GridMaze {
    GridMaze::new(GridMazeConfig::multi(7, 24)).unwrap()
}

fn policy(kind: PolicyKind, critic: CriticKind, device: &Device) -> Policy {
    let env = maze();
    config(kind, critic).init_for_env(&env, device).unwrap()
}

fn record(kind: PolicyKind, critic: CriticKind) -> RecordedEpisode {
    let device = Device::flex();
    record_episode(
        &policy(kind, critic, &device),
        None,
        Box::new(maze()),
        11,
        ActionSelection::Sample,
        &device,
        true,
        None,
    )
    .unwrap()
}

/// Weights sum to one per layer and head, steps before the start get exactly zero, and the
/// places drawn on the maze carry the layer's whole weight.
fn check_episode(ep: &RecordedEpisode) {
    assert_eq!(ep.weights.len(), ep.result.length as usize);
    assert_eq!(ep.frames.len(), ep.weights.len() + 1);
    assert_eq!(ep.span(), SPAN);
    for (t, layers) in ep.weights.iter().enumerate() {
        assert_eq!(layers.len(), 2);
        for (l, heads) in layers.iter().enumerate() {
            assert_eq!(heads.len(), 2);
            for slots in heads {
                assert_eq!(slots.len(), SPAN + 1);
                let sum: f32 = slots.iter().sum();
                assert!((sum - 1.0).abs() < 1e-5, "t {t} layer {l}: sum {sum}");
                for (slot, &w) in slots.iter().enumerate() {
                    assert!(w >= 0.0);
                    if ep.slot_step(t, slot).is_none() {
                        assert_eq!(w, 0.0, "t {t} layer {l} slot {slot}: before the start");
                    }
                }
            }
            let mean: f32 = ep.layer_weights(t, l).iter().sum();
            assert!((mean - 1.0).abs() < 1e-5);
            let places = place_weights(ep, t, l);
            let drawn: f32 = places.iter().map(|(_, w)| w).sum();
            assert!((drawn - 1.0).abs() < 1e-5, "t {t} layer {l}: drawn {drawn}");
            // The current step is drawn where the agent is now.
            assert!(places.iter().any(|(r, _)| Some(*r) == ep.agent_rects[t]));
        }
    }
    // At the first step only the step itself can be attended to.
    for heads in &ep.weights[0] {
        for slots in heads {
            assert_eq!(slots[SPAN], 1.0);
        }
    }
}

#[test]
fn recorded_weights_sum_to_one_and_skip_steps_before_the_start() {
    for kind in [PolicyKind::Feedback, PolicyKind::Transformer] {
        for critic in [CriticKind::Shared, CriticKind::Separate] {
            let ep = record(kind, critic);
            assert!(ep.weights.len() > SPAN, "{kind:?}: episode too short");
            check_episode(&ep);
        }
    }
}

#[test]
fn drawn_frames_show_the_panel_beside_the_maze() {
    let ep = record(PolicyKind::Feedback, CriticKind::Shared);
    let frames = attention_view::draw(&ep);
    assert_eq!(frames.len(), ep.frames.len());
    let maze_w = ep.frames[0].width;
    for f in &frames {
        assert_eq!((f.width, f.height), (frames[0].width, frames[0].height));
        assert!(f.width > maze_w);
    }
    // The maze is pasted unchanged outside the tinted places; at step 0 only the agent's own
    // cell is tinted.
    let [ax, ay, aw, ah] = ep.agent_rects[0].unwrap();
    let mut tinted = 0;
    for y in 0..ep.frames[0].height {
        for x in 0..maze_w {
            let inside = (ax..ax + aw).contains(&x) && (ay..ay + ah).contains(&y);
            let same = frames[0].pixel(x, y) == ep.frames[0].pixel(x, y);
            if !inside {
                assert!(same, "pixel ({x}, {y}) changed outside the agent's cell");
            } else if !same {
                tinted += 1;
            }
        }
    }
    assert!(tinted > 0, "the attended place is not marked");
    // Frames differ over the episode (the panel follows the weights).
    assert!(frames.windows(2).any(|w| w[0] != w[1]));
}

/// Directly through the policy: after an episode start in the middle of a batch's stream, the
/// window's slots from the previous episode get exactly zero weight, while an env whose
/// episode goes on keeps attending to them.
#[test]
fn steps_of_the_previous_episode_get_no_weight() {
    let device = Device::flex();
    let env = maze();
    let obs_dim = env.observation_space().flat_len();
    for kind in [PolicyKind::Feedback, PolicyKind::Transformer] {
        let p = policy(kind, CriticKind::Shared, &device);
        let mut memory = p.init_memory(2, &device);
        let obs = |k: usize| {
            let v: Vec<f32> = (0..2 * obs_dim)
                .map(|i| ((i * 7 + k * 13) % 5) as f32 / 5.0)
                .collect();
            Tensor::<2>::from_data(TensorData::new(v, [2, obs_dim]), &device)
        };
        let starts =
            |a: f32, b: f32| Tensor::<1>::from_data(TensorData::new(vec![a, b], [2]), &device);
        for k in 0..SPAN + 2 {
            let first = if k == 0 { 1.0 } else { 0.0 };
            memory = p.step(obs(k), starts(first, first), memory).2;
        }
        // Env 0 starts a new episode now, env 1 goes on.
        let ((logits, _, memory2), weights) =
            p.step_with_attention(obs(9), starts(1.0, 0.0), memory.clone());
        let (plain_logits, _, _) = p.step(obs(9), starts(1.0, 0.0), memory);
        let diff: f32 = (logits - plain_logits).abs().max().into_scalar();
        assert!(
            diff < 1e-4,
            "{kind:?}: step_with_attention differs from step by {diff}"
        );
        for w in weights.unwrap() {
            let v = w.try_into_vec_as::<f32>().unwrap(); // [2, H, τ+1]
            for head in v.chunks(SPAN + 1).take(2) {
                assert_eq!(&head[..SPAN], &[0.0; SPAN], "{kind:?}: env 0 looks back");
                assert_eq!(head[SPAN], 1.0);
            }
            for head in v.chunks(SPAN + 1).skip(2) {
                assert!(
                    head[..SPAN].iter().all(|&x| x > 0.0),
                    "{kind:?}: env 1 {head:?}"
                );
            }
        }
        // One step later env 0 may look back exactly one step.
        let (_, weights) = p.step_with_attention(obs(10), starts(0.0, 0.0), memory2);
        for w in weights.unwrap() {
            let v = w.try_into_vec_as::<f32>().unwrap();
            for head in v.chunks(SPAN + 1).take(2) {
                assert_eq!(&head[..SPAN - 1], &[0.0; SPAN - 1], "{kind:?}");
                assert!(head[SPAN - 1] > 0.0 && head[SPAN] > 0.0);
            }
        }
    }
}

#[test]
fn policies_without_attention_are_refused() {
    let device = Device::flex();
    for kind in [PolicyKind::Gru, PolicyKind::Mlp] {
        let err = record_episode(
            &policy(kind, CriticKind::Shared, &device),
            None,
            Box::new(maze()),
            1,
            ActionSelection::Greedy,
            &device,
            true,
            None,
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("no attention weights"), "{msg}");
    }
}
