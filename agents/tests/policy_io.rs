//! Saving and loading policy weights: round trips for every kind, and clear errors for
//! missing, truncated, corrupt or mismatched files.

use std::path::PathBuf;

use agents::{
    ActionDist, ActorCritic, Policy, PolicyConfig, PolicyError, PolicyKind, load_policy,
    load_policy_weights, read_policy_header, save_policy, save_policy_for,
};
use burn::prelude::*;

mod common;
use common::small_config;

const OBS_DIM: usize = 5;
const NUM_ACTIONS: usize = 3;

/// A directory of its own for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("agents-policy-io-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The [`small_config`] of `kind` and a policy it builds for `OBS_DIM` and `NUM_ACTIONS`.
fn small_policy(kind: PolicyKind, device: &Device) -> (PolicyConfig, Policy) {
    let config = small_config(kind);
    let policy = config.init(OBS_DIM, NUM_ACTIONS, device).unwrap();
    (config, policy)
}

/// Logits and values of a few steps from a fresh memory, on the host.
fn outputs(policy: &Policy, device: &Device) -> Vec<f32> {
    let b = 2;
    let mut memory = policy.init_memory(b, device);
    let mut out = Vec::new();
    for s in 0..4 {
        let obs = Tensor::<1, Int>::arange(0..(b * OBS_DIM) as i64, device)
            .float()
            .reshape([b, OBS_DIM])
            .mul_scalar(0.1 * (s as f32 + 1.0))
            .sin();
        let start = Tensor::full([b], if s == 0 { 1.0 } else { 0.0 }, device);
        let (logits, values, m) = policy.step(obs, start, memory);
        memory = m;
        out.extend(logits.into_data().try_into_vec::<f32>().unwrap());
        out.extend(values.into_data().try_into_vec::<f32>().unwrap());
    }
    out
}

#[test]
fn save_load_round_trip_gives_identical_outputs_for_every_kind() {
    let dir = TempDir::new("save_load_round_trip_gives_identical_outputs_for_every_kind");
    let device = Device::flex();
    for kind in PolicyKind::ALL {
        let (config, policy) = small_policy(kind, &device);
        let path = dir.file(&format!("{kind}.fbrl"));
        save_policy(&path, &policy, &config, OBS_DIM, NUM_ACTIONS).unwrap();

        let header = read_policy_header(&path).unwrap();
        assert_eq!(header.kind, kind);
        assert_eq!(header.config, config);
        assert_eq!((header.obs_dim, header.num_actions), (OBS_DIM, NUM_ACTIONS));
        assert_eq!(header.num_parameters, policy.num_parameters());

        let (loaded, loaded_config) = load_policy(&path, &device).unwrap();
        assert_eq!(loaded_config, config);
        assert_eq!(loaded.kind(), kind);
        assert_eq!(
            outputs(&loaded, &device),
            outputs(&policy, &device),
            "{kind}"
        );

        // Into a freshly initialised policy of the same config (different random weights).
        let fresh = config.init(OBS_DIM, NUM_ACTIONS, &device).unwrap();
        assert_ne!(
            outputs(&fresh, &device),
            outputs(&policy, &device),
            "{kind}"
        );
        let fresh = load_policy_weights(&path, fresh).unwrap();
        assert_eq!(
            outputs(&fresh, &device),
            outputs(&policy, &device),
            "{kind}"
        );
        // No temporary file is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

#[test]
fn loading_into_another_architecture_is_an_error() {
    let dir = TempDir::new("loading_into_another_architecture_is_an_error");
    let device = Device::flex();
    let (gru_config, gru) = small_policy(PolicyKind::Gru, &device);
    let path = dir.file("gru-for-mismatch.fbrl");
    save_policy(&path, &gru, &gru_config, OBS_DIM, NUM_ACTIONS).unwrap();

    for kind in [
        PolicyKind::Mlp,
        PolicyKind::Feedback,
        PolicyKind::Transformer,
    ] {
        let other = small_config(kind)
            .init(OBS_DIM, NUM_ACTIONS, &device)
            .unwrap();
        let err = load_policy_weights(&path, other).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, PolicyError::Mismatch { .. }), "{msg}");
        assert!(
            msg.contains("`gru`") && msg.contains(&format!("`{kind}`")),
            "{msg}"
        );
        assert!(msg.contains("gru-for-mismatch.fbrl"), "{msg}");
    }

    // Same kind, another width.
    let wider = gru_config.clone().with("d_model", 32).unwrap();
    let other = wider.init(OBS_DIM, NUM_ACTIONS, &device).unwrap();
    let err = load_policy_weights(&path, other).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, PolicyError::Mismatch { .. }), "{msg}");
    assert!(msg.contains("parameters"), "{msg}");

    // Same kind and width, another observation size.
    let other = gru_config.init(OBS_DIM + 1, NUM_ACTIONS, &device).unwrap();
    assert!(matches!(
        load_policy_weights(&path, other),
        Err(PolicyError::Mismatch { .. })
    ));
}

#[test]
fn weights_that_do_not_fit_their_header_are_a_shape_mismatch() {
    let dir = TempDir::new("weights_that_do_not_fit_their_header_are_a_shape_mismatch");
    // A header that claims d_model 32 in front of d_model 16 weights: burn's record validation
    // catches every tensor whose shape differs and the error names them.
    let device = Device::flex();
    let (config, policy) = small_policy(PolicyKind::Mlp, &device);
    let path = dir.file("mlp-edited-header.fbrl");
    save_policy(&path, &policy, &config, OBS_DIM, NUM_ACTIONS).unwrap();

    let bytes = std::fs::read(&path).unwrap();
    let magic_len = b"fbrl-policy\n".len();
    let header_end = magic_len + bytes[magic_len..].iter().position(|&b| b == b'\n').unwrap();
    let mut header: serde_json::Value =
        serde_json::from_slice(&bytes[magic_len..header_end]).unwrap();
    let wider = config.clone().with("hidden", 32).unwrap();
    header["config"]["hidden"] = 32.into();
    header["num_parameters"] = wider.num_parameters(OBS_DIM, NUM_ACTIONS).unwrap().into();
    let mut edited = bytes[..magic_len].to_vec();
    edited.extend(serde_json::to_vec(&header).unwrap());
    edited.extend(&bytes[header_end..]);
    std::fs::write(&path, edited).unwrap();

    let err = load_policy(&path, &device).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, PolicyError::Mismatch { .. }), "{msg}");
    assert!(msg.contains("shape mismatch"), "{msg}");
}

#[test]
fn missing_truncated_and_corrupt_files_are_errors() {
    let dir = TempDir::new("missing_truncated_and_corrupt_files_are_errors");
    let device = Device::flex();
    let missing = dir.file("does-not-exist.fbrl");
    let err = load_policy(&missing, &device).unwrap_err();
    assert!(matches!(err, PolicyError::Io { .. }), "{err}");
    assert!(err.to_string().contains("does-not-exist.fbrl"), "{err}");

    let (config, policy) = small_policy(PolicyKind::Feedback, &device);
    let path = dir.file("feedback-full.fbrl");
    save_policy(&path, &policy, &config, OBS_DIM, NUM_ACTIONS).unwrap();
    let bytes = std::fs::read(&path).unwrap();

    // Truncated at several places: inside the magic, the header, the weights.
    for cut in [5, 40, bytes.len() / 2, bytes.len() - 1] {
        let truncated = dir.file(&format!("truncated-{cut}.fbrl"));
        std::fs::write(&truncated, &bytes[..cut]).unwrap();
        let err = load_policy(&truncated, &device).unwrap_err();
        assert!(
            matches!(err, PolicyError::Corrupt { .. }),
            "cut {cut}: {err}"
        );
        assert!(
            err.to_string().contains(&format!("truncated-{cut}.fbrl")),
            "{err}"
        );
    }

    // Same length, garbage in the weights.
    let mut garbled = bytes.clone();
    let n = garbled.len();
    for b in &mut garbled[n - n / 3..] {
        *b = 0xAB;
    }
    let garbled_path = dir.file("garbled.fbrl");
    std::fs::write(&garbled_path, &garbled).unwrap();
    if let Ok((loaded, _)) = load_policy(&garbled_path, &device) {
        // Garbage that happens to parse must at least not pass for the original weights.
        assert_ne!(outputs(&loaded, &device), outputs(&policy, &device));
    }

    // Garbage in the weights' index (just after the header).
    let mut bad_index = bytes.clone();
    let header_end = bytes.iter().skip(12).position(|&b| b == b'\n').unwrap() + 13;
    for b in &mut bad_index[header_end..header_end + 16] {
        *b = 0xFF;
    }
    let bad_index_path = dir.file("bad-index.fbrl");
    std::fs::write(&bad_index_path, &bad_index).unwrap();
    let err = load_policy(&bad_index_path, &device).unwrap_err();
    assert!(matches!(err, PolicyError::Corrupt { .. }), "{err}");

    // Not a policy file at all.
    let text = dir.file("not-a-policy.txt");
    std::fs::write(&text, "hello").unwrap();
    let err = load_policy(&text, &device).unwrap_err();
    assert!(err.to_string().contains("magic"), "{err}");
}

#[test]
fn saving_with_a_config_that_does_not_describe_the_policy_is_refused() {
    let dir = TempDir::new("saving_with_a_config_that_does_not_describe_the_policy_is_refused");
    let device = Device::flex();
    let (config, policy) = small_policy(PolicyKind::Gru, &device);
    let path = dir.file("refused.fbrl");
    let err = save_policy(
        &path,
        &policy,
        &small_config(PolicyKind::Mlp),
        OBS_DIM,
        NUM_ACTIONS,
    )
    .unwrap_err();
    assert!(matches!(err, PolicyError::Mismatch { .. }), "{err}");
    let err = save_policy(&path, &policy, &config, OBS_DIM + 2, NUM_ACTIONS).unwrap_err();
    assert!(err.to_string().contains("parameters"), "{err}");
    assert!(!path.exists());
}

#[test]
fn save_from_an_autodiff_device_loads_on_the_plain_device() {
    let dir = TempDir::new("save_from_an_autodiff_device_loads_on_the_plain_device");
    let device = Device::flex();
    let config = small_config(PolicyKind::Transformer);
    let policy = config
        .init(OBS_DIM, NUM_ACTIONS, &device.clone().autodiff())
        .unwrap();
    let path = dir.file("autodiff.fbrl");
    save_policy(&path, &policy, &config, OBS_DIM, NUM_ACTIONS).unwrap();
    let (loaded, _) = load_policy(&path, &device).unwrap();
    let plain = policy.valid();
    assert_eq!(outputs(&loaded, &device), outputs(&plain, &device));
}

#[test]
fn multi_discrete_and_gaussian_policies_round_trip_with_their_distribution() {
    let dir = TempDir::new("multi_discrete_and_gaussian_policies_round_trip");
    let device = Device::flex();
    let dists = [
        ActionDist::MultiCategorical { nvec: vec![4, 2] },
        ActionDist::Gaussian {
            low: vec![-2.0, -1.0, 0.0],
            high: vec![2.0, 1.0, 5.0],
        },
    ];
    for kind in PolicyKind::ALL {
        for dist in &dists {
            let config = small_config(kind);
            let mut policy = config.init_for(OBS_DIM, dist, &device).unwrap();
            if let Some(log_std) = policy.log_std.take() {
                // A trained-looking log-std, so that a lost one would show.
                policy.log_std = Some(log_std.map(|t| t.add_scalar(-0.7)));
            }
            let path = dir.file(&format!("{kind}-{}.fbrl", dist.describe()));
            save_policy_for(&path, &policy, &config, OBS_DIM, dist).unwrap();
            let header = read_policy_header(&path).unwrap();
            assert_eq!(header.action_dist(), *dist);
            assert_eq!(header.num_actions, dist.head_width());
            let (loaded, _) = load_policy(&path, &device).unwrap();
            assert_eq!(
                outputs(&loaded, &device),
                outputs(&policy, &device),
                "{kind} {}",
                dist.describe()
            );
            // A categorical policy of the same head width does not take these weights.
            if dist.gaussian_dim().is_some() {
                let categorical = config.init(OBS_DIM, dist.head_width(), &device).unwrap();
                assert!(load_policy_weights(&path, categorical).is_err());
            }
        }
    }
}
