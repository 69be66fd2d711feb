use super::proto::{ModelProto, tensor_shape_proto::dimension::Value as Dim, type_proto};
use super::*;
use crate::actor_critic::ActorCritic;
use crate::policy::{CriticKind, PolicyConfig, PolicyKind};
use crate::test_support::preset_with;
use burn::prelude::*;
use std::fs;
use std::path::PathBuf;

/// A directory of its own for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("agents-onnx-{}-{test}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn shape_of(v: &ValueInfoProto) -> Vec<i64> {
    let Some(TypeProto {
        value: Some(type_proto::Value::TensorType(t)),
        ..
    }) = &v.r#type
    else {
        panic!("{:?} is not a tensor", v.name);
    };
    t.shape
        .as_ref()
        .unwrap()
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(Dim::DimValue(n)) => *n,
            Some(Dim::DimParam(p)) => {
                assert_eq!(p, BATCH_DIM);
                -1
            }
            None => panic!("unknown dimension"),
        })
        .collect()
}

#[test]
fn the_written_file_decodes_and_names_its_inputs_and_outputs() {
    let dir = TempDir::new("decodes");
    let device = Device::flex();
    let config = PolicyConfig {
        critic: CriticKind::Separate,
        ..preset_with(
            PolicyKind::Feedback,
            &[("d_model", 8), ("n_heads", 2), ("d_ff", 16), ("span", 3)],
        )
    };
    let action = ActionDist::Categorical { n: 4 };
    let policy = config.init_for(5, &action, &device).unwrap();
    let path = dir.0.join("policy.onnx");
    let summary = export_onnx(
        &OnnxExport {
            policy: &policy,
            action: &action,
            obs_normalizer: None,
            obs_dim: 5,
        },
        &path,
    )
    .unwrap();

    let model = ModelProto::decode(fs::read(&path).unwrap().as_slice()).unwrap();
    assert_eq!(model.ir_version, Some(ONNX_IR_VERSION));
    assert_eq!(model.opset_import[0].version, Some(ONNX_OPSET));
    let graph = model.graph.unwrap();
    assert_eq!(graph.node.len(), summary.nodes);

    // Feedback memory: vectors, keys, values, validity; the separate critic has its own.
    let memory = [
        vec![-1, 3, 8],
        vec![-1, 3, 8],
        vec![-1, 3, 8],
        vec![-1, 3, 1],
    ];
    let mut want_inputs = vec![
        ("obs".to_string(), vec![-1, 5]),
        ("episode_start".to_string(), vec![-1]),
    ];
    let mut want_outputs = vec![
        ("logits".to_string(), vec![-1, 4]),
        ("value".to_string(), vec![-1]),
    ];
    for (i, shape) in memory.iter().chain(&memory).enumerate() {
        want_inputs.push((format!("memory_{i}"), shape.clone()));
        want_outputs.push((format!("next_memory_{i}"), shape.clone()));
    }
    want_inputs.push(("action_mask".to_string(), vec![-1, 4]));
    let decoded = |values: &[ValueInfoProto]| -> Vec<(String, Vec<i64>)> {
        values
            .iter()
            .map(|v| (v.name.clone().unwrap(), shape_of(v)))
            .collect()
    };
    assert_eq!(decoded(&graph.input), want_inputs);
    assert_eq!(decoded(&graph.output), want_outputs);
    assert_eq!(summary.inputs, want_inputs);
    assert_eq!(summary.outputs, want_outputs);

    // The shapes are those of `init_memory`, and every output is made by a node.
    let shapes: Vec<Vec<i64>> = policy
        .init_memory(1, &device)
        .shapes()
        .into_iter()
        .map(|[_, s, w]| vec![-1, s as i64, w as i64])
        .collect();
    assert_eq!(
        shapes,
        memory.iter().chain(&memory).cloned().collect::<Vec<_>>()
    );
    for (name, _) in &want_outputs {
        assert!(graph.node.iter().any(|n| n.output.contains(name)), "{name}");
    }
    // No temporary file is left behind.
    assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 1);
}

#[test]
fn a_gaussian_policy_has_no_mask_and_a_wrong_export_names_the_file() {
    let dir = TempDir::new("gaussian");
    let device = Device::flex();
    let config = PolicyConfig::preset(PolicyKind::Mlp)
        .with("hidden", 8)
        .unwrap();
    let action = ActionDist::Gaussian {
        low: vec![-1.0; 2],
        high: vec![1.0; 2],
    };
    let policy = config.init_for(3, &action, &device).unwrap();
    let path = dir.0.join("mlp.onnx");
    let export = OnnxExport {
        policy: &policy,
        action: &action,
        obs_normalizer: None,
        obs_dim: 3,
    };
    let summary = export_onnx(&export, &path).unwrap();
    assert_eq!(
        summary.inputs,
        [
            ("obs".to_string(), vec![-1, 3]),
            ("episode_start".to_string(), vec![-1])
        ]
    );
    assert_eq!(
        summary.outputs,
        [
            ("logits".to_string(), vec![-1, 4]),
            ("value".to_string(), vec![-1])
        ]
    );

    let wrong = OnnxExport {
        obs_dim: 4,
        ..export
    };
    let err = export_onnx(&wrong, &dir.0.join("wrong.onnx")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("wrong.onnx") && text.contains("obs_dim"),
        "{text}"
    );
    let normalizer = ObsNormalizer::new(2, 5.0);
    let wrong = OnnxExport {
        obs_normalizer: Some(&normalizer),
        ..export
    };
    let text = export_onnx(&wrong, &dir.0.join("norm.onnx"))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("norm.onnx") && text.contains("normaliser"),
        "{text}"
    );
    let categorical = ActionDist::Categorical { n: 2 };
    let wrong = OnnxExport {
        action: &categorical,
        ..export
    };
    assert!(export_onnx(&wrong, &dir.0.join("cat.onnx")).is_err());
}
