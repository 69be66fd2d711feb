//! Every action space through every policy: the distribution parameters a policy outputs
//! (categorical logits, multi-categorical logits, Gaussian means + learned log-std), stepping
//! equals the sequence forward for all four kinds, log-probabilities and entropies equal
//! hand-computed values (Gaussian, masked categorical, multi-discrete sums), and a masked
//! action is never sampled.

use agents::distribution::{MASKED_LOGIT, gaussian_logp};
use agents::{ActionDist, ActorCritic, EnvAction, PolicyConfig, PolicyKind};
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

mod common;
use common::{max_abs_diff, values as host};

const OBS_DIM: usize = 5;

fn spaces() -> Vec<ActionDist> {
    vec![
        ActionDist::Categorical { n: 4 },
        ActionDist::MultiCategorical { nvec: vec![3, 2] },
        ActionDist::Gaussian {
            low: vec![-2.0, -1.0],
            high: vec![2.0, 1.0],
        },
    ]
}

fn tensor3(data: Vec<f32>, shape: [usize; 3], device: &Device) -> Tensor<3> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

#[test]
fn every_kind_steps_as_it_runs_sequences_in_every_action_space() {
    let device = Device::flex();
    let (b, t) = (3, 9);
    for kind in PolicyKind::ALL {
        for dist in spaces() {
            let policy = PolicyConfig::preset(kind)
                .init_for(OBS_DIM, &dist, &device)
                .unwrap();
            // A warm memory, so the sequence does not start from zeros.
            let warm = tensor3(common::noise(b * 4 * OBS_DIM, 7), [b, 4, OBS_DIM], &device);
            let mut memory = policy.init_memory(b, &device);
            for s in 0..4 {
                let o = warm.clone().narrow(1, s, 1).reshape([b, OBS_DIM]);
                memory = policy.step(o, Tensor::zeros([b], &device), memory).2;
            }
            let obs = tensor3(common::noise(b * t * OBS_DIM, 11), [b, t, OBS_DIM], &device);
            let mut st = vec![0.0f32; b * t];
            st[4] = 1.0; // env 0 starts an episode at step 4
            st[t + 7] = 1.0; // env 1 at step 7
            let starts = Tensor::<2>::from_data(TensorData::new(st, [b, t]), &device);
            let (step_params, step_values) =
                common::run_steps(&policy, obs.clone(), starts.clone(), memory.clone());
            let (seq_params, seq_values) = policy.forward_sequence(obs, starts, memory);
            assert_eq!(
                seq_params.dims(),
                [b, t, dist.param_width()],
                "{kind} {}",
                dist.describe()
            );
            let dp = max_abs_diff(&host(step_params.clone()), &host(seq_params.clone()));
            let dv = max_abs_diff(&host(step_values), &host(seq_values));
            assert!(
                dp <= 1e-4,
                "{kind} {}: params differ by {dp}",
                dist.describe()
            );
            assert!(
                dv <= 1e-4,
                "{kind} {}: values differ by {dv}",
                dist.describe()
            );

            // The same log-probabilities and entropies either way.
            let w = dist.action_width();
            let actions: Vec<f32> = (0..b * t * w)
                .map(|i| match &dist {
                    ActionDist::Categorical { n } => (i % n) as f32,
                    ActionDist::MultiCategorical { nvec } => (i % nvec[i % w]) as f32,
                    ActionDist::Gaussian { .. } => (i as f32 * 0.37).sin(),
                })
                .collect();
            let actions = tensor3(actions, [b, t, w], &device);
            let (l1, e1) = dist.log_prob_entropy(step_params, actions.clone(), None);
            let (l2, e2) = dist.log_prob_entropy(seq_params, actions, None);
            assert!(max_abs_diff(&host(l1), &host(l2)) <= 1e-4);
            assert!(max_abs_diff(&host(e1), &host(e2)) <= 1e-4);

            // A Gaussian policy has one learned log-std per dimension, 0 at the start.
            if let Some(d) = dist.gaussian_dim() {
                let log_std = policy
                    .log_std
                    .as_ref()
                    .expect("a gaussian policy has a log-std");
                assert_eq!(log_std.val().dims(), [d]);
                let p = host(
                    policy
                        .forward_sequence(
                            tensor3(vec![0.1; OBS_DIM], [1, 1, OBS_DIM], &device),
                            Tensor::ones([1, 1], &device),
                            policy.init_memory(1, &device),
                        )
                        .0,
                );
                assert_eq!(&p[d..], &vec![0.0; d][..]);
            } else {
                assert!(policy.log_std.is_none());
            }
        }
    }
}

#[test]
fn gaussian_log_prob_and_entropy_are_the_textbook_formulas() {
    let device = Device::flex();
    let dist = ActionDist::Gaussian {
        low: vec![-2.0, -2.0],
        high: vec![2.0, 2.0],
    };
    // Means (0.5, −1), stds (0.5, 1); action (1, 0): both standardised values are 1.
    let ln_half = 0.5f64.ln();
    let params = tensor3(vec![0.5, -1.0, ln_half as f32, 0.0], [1, 1, 4], &device);
    let actions = tensor3(vec![1.0, 0.0], [1, 1, 2], &device);
    let (logp, entropy) = dist.log_prob_entropy(params, actions, None);
    let half_ln_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
    let want_logp = (-0.5 - ln_half - half_ln_2pi) + (-0.5 - 0.0 - half_ln_2pi);
    let want_entropy = (0.5 + half_ln_2pi + ln_half) + (0.5 + half_ln_2pi);
    let (logp, entropy) = (host(logp)[0], host(entropy)[0]);
    assert!(
        (f64::from(logp) - want_logp).abs() < 1e-5,
        "{logp} vs {want_logp}"
    );
    assert!(
        (f64::from(entropy) - want_entropy).abs() < 1e-5,
        "{entropy} vs {want_entropy}"
    );
    // The host's density (used when sampling) agrees.
    let host_logp = gaussian_logp(1.0, 0.5, ln_half as f32) + gaussian_logp(0.0, -1.0, 0.0);
    assert!((host_logp - want_logp).abs() < 1e-6);
}

#[test]
fn gaussian_samples_keep_their_log_prob_and_are_clipped_only_for_the_env() {
    let dist = ActionDist::Gaussian {
        low: vec![-1.0],
        high: vec![1.0],
    };
    // Mean 3, far above the bound; std 1.
    let row = [3.0f32, 0.0];
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut above = 0;
    for _ in 0..2000 {
        let mut x = Vec::new();
        let logp = dist.sample_row(&row, &mut rng, &mut x);
        assert!((f64::from(logp) - gaussian_logp(x[0], 3.0, 0.0)).abs() < 1e-5);
        if x[0] > 1.0 {
            above += 1;
        }
        match dist.env_action(&x) {
            EnvAction::Continuous(a) => {
                assert_eq!(a[0], x[0].clamp(-1.0, 1.0));
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(above > 1900, "the stored samples are not clipped: {above}");
    let mut mode = Vec::new();
    dist.mode_row(&row, &mut mode);
    assert_eq!(mode, vec![3.0]);
}

/// `log softmax` of `logits` restricted to the allowed entries, in `f64`.
fn masked_log_softmax(logits: &[f64], allowed: &[bool]) -> Vec<f64> {
    let max = logits
        .iter()
        .zip(allowed)
        .filter(|(_, a)| **a)
        .map(|(l, _)| *l)
        .fold(f64::NEG_INFINITY, f64::max);
    let lse = max
        + logits
            .iter()
            .zip(allowed)
            .filter(|(_, a)| **a)
            .map(|(l, _)| (l - max).exp())
            .sum::<f64>()
            .ln();
    logits
        .iter()
        .zip(allowed)
        .map(|(l, a)| if *a { l - lse } else { f64::NEG_INFINITY })
        .collect()
}

fn entropy_of(logp: &[f64]) -> f64 {
    -logp
        .iter()
        .filter(|l| l.is_finite())
        .map(|l| l.exp() * l)
        .sum::<f64>()
}

#[test]
fn masked_categorical_log_prob_and_entropy_ignore_forbidden_actions() {
    let device = Device::flex();
    let dist = ActionDist::Categorical { n: 4 };
    let logits = [1.0f64, 2.0, 3.0, 0.5];
    let allowed = [true, false, true, false];
    let want = masked_log_softmax(&logits, &allowed);
    let params = tensor3(
        logits.iter().map(|&l| l as f32).collect(),
        [1, 1, 4],
        &device,
    );
    let mask = Tensor::<3, Bool>::from_data(TensorData::new(allowed.to_vec(), [1, 1, 4]), &device);
    for action in [0usize, 2] {
        let (logp, entropy) = dist.log_prob_entropy(
            params.clone(),
            tensor3(vec![action as f32], [1, 1, 1], &device),
            Some(mask.clone()),
        );
        let (logp, entropy) = (host(logp)[0], host(entropy)[0]);
        assert!((f64::from(logp) - want[action]).abs() < 1e-5, "{logp}");
        assert!(
            (f64::from(entropy) - entropy_of(&want)).abs() < 1e-5,
            "{entropy}"
        );
    }
    // Unmasked, the entropy is larger (four actions with mass).
    let (_, unmasked) =
        dist.log_prob_entropy(params.clone(), tensor3(vec![0.0], [1, 1, 1], &device), None);
    let all = masked_log_softmax(&logits, &[true; 4]);
    assert!((f64::from(host(unmasked)[0]) - entropy_of(&all)).abs() < 1e-5);
    // A forbidden action's log-probability is the masked logit's, −∞ in effect.
    let (forbidden, _) =
        dist.log_prob_entropy(params, tensor3(vec![1.0], [1, 1, 1], &device), Some(mask));
    assert!(host(forbidden)[0] <= MASKED_LOGIT / 2.0);
}

#[test]
fn multi_discrete_log_prob_and_entropy_are_sums_over_dimensions() {
    let device = Device::flex();
    let dist = ActionDist::MultiCategorical { nvec: vec![3, 2] };
    let a_logits = [0.2f64, -1.0, 1.5];
    let b_logits = [0.7f64, -0.3];
    let params: Vec<f32> = a_logits
        .iter()
        .chain(&b_logits)
        .map(|&l| l as f32)
        .collect();
    let params = tensor3(params, [1, 1, 5], &device);
    for (mask, a_allowed, b_allowed) in [
        (None, [true; 3], [true; 2]),
        (
            Some(vec![true, false, true, true, true]),
            [true, false, true],
            [true, true],
        ),
    ] {
        let la = masked_log_softmax(&a_logits, &a_allowed);
        let lb = masked_log_softmax(&b_logits, &b_allowed);
        let mask =
            mask.map(|m| Tensor::<3, Bool>::from_data(TensorData::new(m, [1, 1, 5]), &device));
        for (x, y) in [(2usize, 0usize), (0, 1)] {
            let (logp, entropy) = dist.log_prob_entropy(
                params.clone(),
                tensor3(vec![x as f32, y as f32], [1, 1, 2], &device),
                mask.clone(),
            );
            let want_logp = la[x] + lb[y];
            let want_entropy = entropy_of(&la) + entropy_of(&lb);
            assert!((f64::from(host(logp)[0]) - want_logp).abs() < 1e-5);
            assert!((f64::from(host(entropy)[0]) - want_entropy).abs() < 1e-5);
        }
    }
}

#[test]
fn a_masked_action_is_never_sampled() {
    let device = Device::flex();
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    // Categorical: the masked action has by far the largest logit.
    let cases: Vec<(ActionDist, Vec<f32>, Vec<bool>)> = vec![
        (
            ActionDist::Categorical { n: 4 },
            vec![0.0, 8.0, 0.5, -0.5],
            vec![true, false, true, true],
        ),
        (
            ActionDist::MultiCategorical { nvec: vec![3, 2] },
            vec![6.0, 0.0, 0.0, 0.0, 6.0],
            vec![false, true, true, true, false],
        ),
    ];
    for (dist, logits, mask) in cases {
        let p = logits.len();
        let params = Tensor::<2>::from_data(TensorData::new(logits.clone(), [1, p]), &device);
        let mask_t = Tensor::<2, Bool>::from_data(TensorData::new(mask.clone(), [1, p]), &device);
        let table = host(dist.sampling_table(params, Some(mask_t)));
        let mut counts = vec![0usize; p];
        let mut values = Vec::new();
        const SAMPLES: usize = 100_000;
        for _ in 0..SAMPLES {
            values.clear();
            dist.sample_row(&table, &mut rng, &mut values);
            let mut start = 0;
            let widths: Vec<usize> = match &dist {
                ActionDist::Categorical { n } => vec![*n],
                ActionDist::MultiCategorical { nvec } => nvec.clone(),
                ActionDist::Gaussian { .. } => unreachable!(),
            };
            for (v, n) in values.iter().zip(widths) {
                counts[start + *v as usize] += 1;
                start += n;
            }
        }
        for (i, allowed) in mask.iter().enumerate() {
            if !allowed {
                assert_eq!(
                    counts[i],
                    0,
                    "{}: masked value {i} sampled",
                    dist.describe()
                );
            }
        }
        // The allowed values keep their relative probabilities.
        let a = masked_log_softmax(
            &logits[..3]
                .iter()
                .map(|&l| f64::from(l))
                .collect::<Vec<_>>(),
            &mask[..3],
        );
        if let ActionDist::MultiCategorical { .. } = dist {
            for i in 0..3 {
                let freq = counts[i] as f64 / SAMPLES as f64;
                let want = if mask[i] { a[i].exp() } else { 0.0 };
                assert!((freq - want).abs() < 0.01, "value {i}: {freq} vs {want}");
            }
        }
        // Greedy picks the best allowed value.
        let mut mode = Vec::new();
        dist.mode_row(&table, &mut mode);
        assert!(mode.iter().all(|&v| v.is_finite()));
        match &dist {
            ActionDist::Categorical { .. } => assert_eq!(mode, vec![2.0]),
            _ => assert!(mask[mode[0] as usize] && mask[3 + mode[1] as usize]),
        }
    }
}
