//! The fused GRU kernel against the tensor-operation reference: outputs, the gradient of every
//! parameter and of the initial hidden state, stepping against the sequence forward, and
//! bitwise determinism across rayon pool sizes.

use burn::nn::Linear;
use burn::tensor::Gradients;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::test_support::{
    assert_close, assert_each_close_and_nonzero, host, in_pool, random_tensor, randomize,
};

const OBS_DIM: usize = 5;
const NUM_ACTIONS: usize = 3;
const D: usize = 8;
const T: usize = 13;

/// A policy whose every weight and bias is random (non-zero biases included).
fn random_policy(
    d: usize,
    n_layers: usize,
    obs_dim: usize,
    seed: u64,
    device: &Device,
) -> GruPolicy {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut policy = GruConfig::new()
        .with_d_model(d)
        .with_n_layers(n_layers)
        .init(obs_dim, NUM_ACTIONS, device);
    let scale = 1.5 / (d as f32).sqrt();
    randomize(&mut policy.embed, 0.8, &mut rng, device);
    for cell in &mut policy.cells {
        randomize(&mut cell.input, scale, &mut rng, device);
        randomize(&mut cell.hidden, scale, &mut rng, device);
    }
    randomize(&mut policy.heads.policy, 0.5, &mut rng, device);
    randomize(&mut policy.heads.value, 0.5, &mut rng, device);
    policy
}

/// Every parameter of `policy` with its name.
fn named_linears(policy: &GruPolicy) -> Vec<(String, &Linear)> {
    let mut linears = vec![("embed".to_string(), &policy.embed)];
    for (l, cell) in policy.cells.iter().enumerate() {
        linears.push((format!("cells.{l}.input"), &cell.input));
        linears.push((format!("cells.{l}.hidden"), &cell.hidden));
    }
    linears.push(("heads.policy".to_string(), &policy.heads.policy));
    linears.push(("heads.value".to_string(), &policy.heads.value));
    linears
}

/// The gradient of every parameter, by name.
fn param_grads(policy: &GruPolicy, grads: &Gradients) -> Vec<(String, Vec<f32>)> {
    let mut out = Vec::new();
    for (name, linear) in named_linears(policy) {
        let weight = linear.weight.val().grad(grads).expect("weight gradient");
        out.push((format!("{name}.weight"), host(weight)));
        let bias = linear.bias.as_ref().expect("bias").val();
        out.push((
            format!("{name}.bias"),
            host(bias.grad(grads).expect("bias gradient")),
        ));
    }
    out
}

/// `[B, T]` episode starts: row 0 at t = 0 and in the middle, row 1 in the middle, the others
/// at a row-dependent step (row 2: none).
fn starts(b: usize, t: usize, device: &Device) -> Tensor<2> {
    let mut v = vec![0.0f32; b * t];
    v[0] = 1.0;
    v[7] = 1.0;
    v[t + 4] = 1.0;
    for r in 3..b {
        v[r * t + (r * 5) % t] = 1.0;
    }
    Tensor::from_data(TensorData::new(v, [b, t]), device)
}

/// A non-zero hidden state: the one after a few reference steps on random observations.
fn warm_h0(policy: &GruPolicy, b: usize, rng: &mut ChaCha8Rng, device: &Device) -> Tensor<3> {
    let mut h = Tensor::zeros([b, policy.cells.len(), policy.d_model()], device);
    for _ in 0..4 {
        let obs = random_tensor([b, OBS_DIM], 1.0, rng, device);
        let (_, _, memory) = policy.step_reference(obs, Tensor::zeros([b], device), h);
        h = memory.tensors.into_iter().next().unwrap();
    }
    h.detach()
}

fn sequence_matches_reference(b: usize, n_layers: usize, seed: u64) {
    let device = Device::flex().autodiff();
    let policy = random_policy(D, n_layers, OBS_DIM, seed, &device);
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 1);
    let obs = random_tensor([b, T, OBS_DIM], 1.0, &mut rng, &device);
    let es = starts(b, T, &device);
    let h0 = warm_h0(&policy, b, &mut rng, &device);
    assert!(host(h0.clone()).iter().any(|&v| v.abs() > 0.1));
    let w_logits = random_tensor([b, T, NUM_ACTIONS], 1.0, &mut rng, &device);
    let w_values = random_tensor([b, T], 1.0, &mut rng, &device);

    let run = |fused: bool| {
        let h0 = h0.clone().require_grad();
        let (logits, values) = if fused {
            policy.forward_sequence_fused(obs.clone(), es.clone(), h0.clone())
        } else {
            policy.forward_sequence_reference(obs.clone(), es.clone(), h0.clone())
        };
        let loss =
            (logits.clone() * w_logits.clone()).sum() + (values.clone() * w_values.clone()).sum();
        let grads = loss.backward();
        let dh0 = host(h0.grad(&grads).expect("h0 gradient"));
        (
            host(logits),
            host(values),
            param_grads(&policy, &grads),
            dh0,
        )
    };
    let (logits, values, grads, dh0) = run(true);
    let (logits_ref, values_ref, grads_ref, dh0_ref) = run(false);
    let case = format!("batch {b}, {n_layers} layer(s)");
    assert_close(&format!("{case}: logits"), &logits, &logits_ref, 1e-4);
    assert_close(&format!("{case}: values"), &values, &values_ref, 1e-4);
    assert_close(&format!("{case}: dh0"), &dh0, &dh0_ref, 1e-4);
    assert!(
        dh0_ref.iter().any(|&v| v != 0.0),
        "{case}: h0 reaches the loss"
    );
    assert_eq!(grads.len(), 2 + 4 * n_layers + 4);
    let pairs = grads.iter().zip(&grads_ref);
    assert_each_close_and_nonzero(
        &case,
        pairs.map(|((name, g), (_, g_ref))| (format!("d {name}"), &g[..], &g_ref[..])),
    );
}

#[test]
fn fused_sequence_matches_the_reference_one_layer() {
    sequence_matches_reference(3, 1, 11);
}

#[test]
fn fused_sequence_matches_the_reference_two_layers() {
    sequence_matches_reference(3, 2, 12);
}

#[test]
fn fused_sequence_matches_the_reference_over_several_blocks() {
    sequence_matches_reference(2 * kernels::ROWS_PER_BLOCK + 1, 2, 13);
}

/// Under autodiff, one fused step (logits, value and the new memory) against the reference,
/// gradients included.
#[test]
fn fused_step_matches_the_reference_with_gradients() {
    let device = Device::flex().autodiff();
    let b = 6;
    let policy = random_policy(D, 2, OBS_DIM, 21, &device);
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let obs = random_tensor([b, OBS_DIM], 1.0, &mut rng, &device);
    let es = Tensor::from_data(
        TensorData::new(vec![0.0, 1.0, 0.0, 0.0, 1.0, 0.0], [b]),
        &device,
    );
    let h0 = warm_h0(&policy, b, &mut rng, &device);
    let w_logits = random_tensor([b, NUM_ACTIONS], 1.0, &mut rng, &device);
    let w_values = random_tensor([b], 1.0, &mut rng, &device);
    let w_memory = random_tensor([b, 2, D], 1.0, &mut rng, &device);
    let run = |fused: bool| {
        let h0 = h0.clone().require_grad();
        let (logits, values, memory) = if fused {
            policy.step_fused(obs.clone(), es.clone(), h0.clone())
        } else {
            policy.step_reference(obs.clone(), es.clone(), h0.clone())
        };
        let memory = memory.tensors.into_iter().next().unwrap();
        let loss = (logits.clone() * w_logits.clone()).sum()
            + (values.clone() * w_values.clone()).sum()
            + (memory.clone() * w_memory.clone()).sum();
        let grads = loss.backward();
        let dh0 = host(h0.grad(&grads).expect("h0 gradient"));
        let outs = [host(logits), host(values), host(memory), dh0];
        (outs, param_grads(&policy, &grads))
    };
    let (outs, grads) = run(true);
    let (outs_ref, grads_ref) = run(false);
    for (what, (a, b)) in ["logits", "values", "memory", "dh0"]
        .iter()
        .zip(outs.iter().zip(&outs_ref))
    {
        assert_close(what, a, b, 1e-4);
    }
    for ((name, g), (_, g_ref)) in grads.iter().zip(&grads_ref) {
        assert_close(&format!("d {name}"), g, g_ref, 1e-4);
    }
}

/// `T` fused steps equal the fused sequence forward (and the reference steps), the final
/// memory included; `step` and `forward_sequence` take the fused path on flex.
#[test]
fn fused_steps_equal_the_fused_sequence() {
    let device = Device::flex();
    let b = 5;
    for n_layers in [1, 2] {
        let policy = random_policy(D, n_layers, OBS_DIM, 30 + n_layers as u64, &device);
        let mut rng = ChaCha8Rng::seed_from_u64(40);
        let obs = random_tensor([b, T, OBS_DIM], 1.0, &mut rng, &device);
        let es = starts(b, T, &device);
        let h0 = warm_h0(&policy, b, &mut rng, &device);
        let (logits, values) = policy.forward_sequence_fused(obs.clone(), es.clone(), h0.clone());
        let memory0 = Memory {
            tensors: vec![h0.clone()],
        };
        let (logits_trait, values_trait) =
            policy.forward_sequence(obs.clone(), es.clone(), memory0.clone());
        assert_eq!(host(logits.clone()), host(logits_trait));
        assert_eq!(host(values.clone()), host(values_trait));
        let (logits, values) = (host(logits), host(values));
        let (mut h, mut h_ref) = (h0.clone(), h0.clone());
        let mut memory = memory0;
        for t in 0..T {
            let obs_t = obs.clone().narrow(1, t, 1).squeeze_dim::<2>(1);
            let es_t = es.clone().narrow(1, t, 1).squeeze_dim::<1>(1);
            let (l, v, m) = policy.step_fused(obs_t.clone(), es_t.clone(), h);
            let (l_ref, v_ref, m_ref) = policy.step_reference(obs_t.clone(), es_t.clone(), h_ref);
            let (l_trait, v_trait, m_trait) = policy.step(obs_t, es_t, memory);
            h = m.tensors[0].clone();
            h_ref = m_ref.tensors[0].clone();
            memory = m_trait;
            let (l, v) = (host(l), host(v));
            assert_eq!(l, host(l_trait));
            assert_eq!(v, host(v_trait));
            assert_eq!(host(h.clone()), host(memory.tensors[0].clone()));
            let seq_l: Vec<f32> = (0..b)
                .flat_map(|r| logits[(r * T + t) * NUM_ACTIONS..][..NUM_ACTIONS].to_vec())
                .collect();
            let seq_v: Vec<f32> = (0..b).map(|r| values[r * T + t]).collect();
            assert_close(&format!("step {t}: logits"), &l, &seq_l, 1e-5);
            assert_close(&format!("step {t}: values"), &v, &seq_v, 1e-5);
            assert_close(&format!("step {t}: logits"), &l, &host(l_ref), 1e-4);
            assert_close(&format!("step {t}: values"), &v, &host(v_ref), 1e-4);
            assert_close(
                &format!("step {t}: memory"),
                &host(h.clone()),
                &host(h_ref.clone()),
                1e-4,
            );
        }
    }
}

/// The kernel's two outputs and the gradients of its inputs `e`, the parameters and `h0`.
type KernelRun = [Vec<f32>; 5];

/// One forward and backward pass of the kernel alone, on random inputs.
fn kernel_run(b: usize, t: usize, n_layers: usize, seed: u64) -> KernelRun {
    let device = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let op = kernels::gru::GruStack::new(b, t, D, n_layers);
    let e = random_tensor([b, t, D], 1.0, &mut rng, &device).require_grad();
    let params = random_tensor([op.param_len()], 0.5, &mut rng, &device).require_grad();
    let h0 = random_tensor([b, n_layers, D], 0.8, &mut rng, &device).require_grad();
    let es = starts(b, t, &device);
    let w_top = random_tensor([b, t, D], 1.0, &mut rng, &device);
    let w_last = random_tensor([b, n_layers, D], 1.0, &mut rng, &device);
    let (top, last) = kernels::gru::gru_stack(e.clone(), params.clone(), h0.clone(), es);
    let loss = (top.clone() * w_top).sum() + (last.clone() * w_last).sum();
    let grads = loss.backward();
    [
        host(top),
        host(last),
        host(e.grad(&grads).unwrap()),
        host(params.grad(&grads).unwrap()),
        host(h0.grad(&grads).unwrap()),
    ]
}

#[test]
fn the_kernel_is_bitwise_the_same_for_any_number_of_threads() {
    // Sequences (blocks of `ROWS_PER_BLOCK` rows) and single steps (larger blocks), each with
    // a last block that is not full.
    for (b, t) in [(2 * kernels::ROWS_PER_BLOCK + 1, T), (70, 1)] {
        let with = |threads| in_pool(threads, || kernel_run(b, t, 2, 50));
        let one = with(1);
        let two = with(2);
        assert_eq!(one, two, "batch {b}, {t} step(s)");
        assert_eq!(one, with(2), "batch {b}, {t} step(s): the same across runs");
        assert!(one[3].iter().all(|v| v.is_finite()) && one[3].iter().any(|&v| v != 0.0));
    }
}
