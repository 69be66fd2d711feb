//! ONNX export of one time step of a trained [`Policy`], with its memory as explicit inputs
//! and outputs, so that any ONNX runtime can run the policy in a deployment loop.
//!
//! [`export_onnx`] writes the graph of [`ActorCritic::step`] for one batch of envs (ONNX
//! opset 17, IR version 8, the weights stored as float constants). The graph is the same
//! computation as `step`: an observation normaliser given to the export is folded into its
//! front, and for the discrete action spaces an action mask is applied at its end.
//!
//! # Inputs
//! | name | type, shape | meaning |
//! |---|---|---|
//! | `obs` | float `[batch, obs_dim]` | the raw observations (normalised inside the graph when an [`ObsNormalizer`] was given to the export) |
//! | `episode_start` | float `[batch]` | `1.0` where a new episode starts at this step (the env's memory is emptied before the step), else `0.0`; exactly `step`'s `starts` |
//! | `memory_0` … `memory_{k-1}` | float `[batch, slots, width]` | the memory, as [`ActorCritic::init_memory`] makes it |
//! | `action_mask` | bool `[batch, mask_width]` | discrete action spaces only: `true` = the action is allowed |
//!
//! # Outputs
//! | name | type, shape | meaning |
//! |---|---|---|
//! | `logits` | float `[batch, param_width]` | the distribution parameters `step` returns (see below) |
//! | `value` | float `[batch]` | the value estimate |
//! | `next_memory_0` … | float, the shapes of the memory inputs | the memory after the step |
//!
//! `logits` is, per [`ActionDist`]:
//! - categorical over `n` actions: the `n` logits;
//! - multi-discrete `nvec`: `Σ nvec` logits, dimension after dimension (a softmax per
//!   dimension);
//! - Gaussian over `d` values: `2d` columns, the `d` means then the `d` log-standard
//!   deviations (a learned constant, the same for every row). A sample is
//!   `mean + exp(log_std) · ε`, clipped to the action space's bounds before the env sees it.
//!
//! # Memory
//! The graph holds no state: feed each step's `next_memory_i` back as the next step's
//! `memory_i`. A fresh memory is all zeros (every policy's `init_memory` is zeros); at the
//! first step of every episode (including the very first step) set that env's
//! `episode_start` to `1.0`, which empties its memory before the step exactly as during
//! training. Envs of a batch are independent: rows of different envs never mix. The memory
//! tensors are the policy's own (see [`crate::feedback`], [`crate::transformer`],
//! [`crate::gru`]; the MLP has none, `k = 0`); with a separate critic the actor's tensors come
//! first, then the critic's. Their number and shapes are in the [`OnnxSummary`] and in the
//! model's inputs; `episode_start` must be exactly `0.0` or `1.0`.
//!
//! # Action masks
//! Our code applies action masks outside `step`, when sampling and in the PPO loss
//! ([`ActionDist::sampling_table`]): a forbidden action's logit is replaced by
//! [`MASKED_LOGIT`] (−10⁹) before the softmax. The graph applies the same rule to its `logits`
//! output, so a softmax or an argmax over its rows never picks a forbidden action. The input is
//! optional by convention: feed all `true` when the env gives no mask, and `logits` is then
//! exactly `step`'s output. Continuous (Gaussian) policies have no `action_mask` input.
//!
//! # Observation normaliser
//! With an [`ObsNormalizer`], the graph first computes
//! `clip((obs − mean) · 1/sqrt(var + 1e-8), −clip, clip)` with the statistics frozen as
//! `f32` constants, so a deployer feeds raw observations.
//!
//! # Running the model (Python, onnxruntime)
//! ```text
//! import numpy as np, onnxruntime as ort
//! sess = ort.InferenceSession("policy.onnx")
//! inputs = {i.name: i for i in sess.get_inputs()}
//! n = 4                                   # envs
//! memory = {name: np.zeros([n] + i.shape[1:], np.float32)
//!           for name, i in inputs.items() if name.startswith("memory_")}
//! start = np.ones(n, np.float32)          # every env starts an episode
//! obs = env_reset()                       # [n, obs_dim] float32
//! while True:
//!     feed = {"obs": obs, "episode_start": start, **memory}
//!     if "action_mask" in inputs:
//!         feed["action_mask"] = np.ones((n, inputs["action_mask"].shape[1]), bool)
//!     logits, value, *next_memory = sess.run(None, feed)
//!     memory = {f"memory_{i}": m for i, m in enumerate(next_memory)}
//!     action = logits.argmax(axis=1)      # categorical: greedy action
//!     obs, done = env_step(action)
//!     start = done.astype(np.float32)     # 1.0 where a new episode begins
//! ```
//!
//! [`ActorCritic::step`]: crate::ActorCritic::step
//! [`ActorCritic::init_memory`]: crate::ActorCritic::init_memory

mod graph;
mod nets;
pub mod proto;

use std::path::Path;

use prost::Message;

use crate::distribution::{ActionDist, MASKED_LOGIT};
use crate::policy::{Policy, PolicyError};
use crate::ppo::normalize::{NORM_EPSILON, ObsNormalizer};
use graph::GraphBuilder;
use nets::{StepContext, Wanted, emit_net, head_width, host, input_width, memory_shapes};
use proto::{
    DATA_TYPE_BOOL, DATA_TYPE_FLOAT, GraphProto, ModelProto, OperatorSetIdProto,
    StringStringEntryProto, TensorShapeProto, TypeProto, ValueInfoProto, tensor_shape_proto,
    type_proto,
};

/// The ONNX IR version of the written files.
pub const ONNX_IR_VERSION: i64 = 8;
/// The version of the default ONNX operator set the graph uses.
pub const ONNX_OPSET: i64 = 17;
/// The symbolic name of the batch dimension of every input and output.
pub const BATCH_DIM: &str = "batch";

/// What to export: a policy, the action distribution its head parameterises, and optionally
/// the observation normaliser it was trained with.
pub struct OnnxExport<'a> {
    /// The policy.
    pub policy: &'a Policy,
    /// The action distribution of its head (the one it was built for).
    pub action: &'a ActionDist,
    /// The observation normaliser to fold into the front of the graph (`None`: the graph
    /// reads observations as the policy does).
    pub obs_normalizer: Option<&'a ObsNormalizer>,
    /// Number of observation features.
    pub obs_dim: usize,
}

/// The interface of a written model: its inputs and outputs with their shapes (`-1` for the
/// batch dimension), in graph order, and its number of nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnnxSummary {
    /// The graph's inputs: name and shape.
    pub inputs: Vec<(String, Vec<i64>)>,
    /// The graph's outputs: name and shape.
    pub outputs: Vec<(String, Vec<i64>)>,
    /// The number of nodes of the graph.
    pub nodes: usize,
}

/// Writes the ONNX model of one step of `export.policy` to `path` (atomically: a temporary
/// file in the same directory, then a rename) and returns its interface. See the
/// [module docs](self) for the inputs, outputs and memory semantics.
///
/// # Errors
/// [`PolicyError::Mismatch`] (naming `path`) when the policy, the action distribution, the
/// observation width and the normaliser do not fit together; [`PolicyError::Io`] when the
/// file cannot be written.
pub fn export_onnx(export: &OnnxExport<'_>, path: &Path) -> Result<OnnxSummary, PolicyError> {
    let (model, summary) = build_model(export).map_err(|message| PolicyError::Mismatch {
        path: path.to_path_buf(),
        message,
    })?;
    crate::policy_io::write_atomically(path, &[&model.encode_to_vec()])?;
    Ok(summary)
}

/// Checks that the parts of an export fit together.
fn check(export: &OnnxExport<'_>) -> Result<(), String> {
    let policy = export.policy;
    let action = export.action;
    action
        .validate()
        .map_err(|e| format!("action distribution: {e}"))?;
    let nets = std::iter::once(&policy.actor).chain(policy.critic.as_ref());
    for (which, net) in ["actor", "critic"].into_iter().zip(nets) {
        let width = input_width(net)?;
        if width != export.obs_dim {
            return Err(format!(
                "the {which} network reads {width} observation features, the export says obs_dim = {}",
                export.obs_dim
            ));
        }
        if net.kind() != policy.actor.kind() {
            return Err(format!(
                "the critic is a {} network, the actor a {}",
                net.kind(),
                policy.actor.kind()
            ));
        }
    }
    let head = head_width(&policy.actor)?;
    if head != action.head_width() {
        return Err(format!(
            "the actor head has {head} outputs, {} needs {}",
            action.describe(),
            action.head_width()
        ));
    }
    match (action.gaussian_dim(), &policy.log_std) {
        (Some(d), Some(log_std)) => {
            let [n] = log_std.val().dims();
            if n != d {
                return Err(format!(
                    "the policy has {n} log-stds, {} needs {d}",
                    action.describe()
                ));
            }
        }
        (Some(_), None) => {
            return Err(format!(
                "{} needs the policy's log-std, which it does not have",
                action.describe()
            ));
        }
        (None, Some(_)) => {
            return Err(format!(
                "the policy has a Gaussian log-std but the action distribution is {}",
                action.describe()
            ));
        }
        (None, None) => {}
    }
    if let Some(norm) = export.obs_normalizer {
        norm.check(export.obs_dim)
            .map_err(|e| format!("observation normaliser: {e}"))?;
        if !(norm.clip.is_finite() && norm.clip > 0.0) {
            return Err(format!(
                "observation normaliser: clip is {} (must be finite and > 0)",
                norm.clip
            ));
        }
    }
    Ok(())
}

/// A value's type: a tensor of `elem_type` with the batch dimension symbolic.
fn value_info(name: &str, elem_type: i32, shape: &[i64], doc: &str) -> ValueInfoProto {
    let dim = shape
        .iter()
        .map(|&d| tensor_shape_proto::Dimension {
            value: Some(if d < 0 {
                tensor_shape_proto::dimension::Value::DimParam(BATCH_DIM.into())
            } else {
                tensor_shape_proto::dimension::Value::DimValue(d)
            }),
            denotation: None,
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem_type),
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: None,
        }),
        doc_string: Some(doc.into()),
    }
}

/// The model and its summary.
fn build_model(export: &OnnxExport<'_>) -> Result<(ModelProto, OnnxSummary), String> {
    check(export)?;
    let policy = export.policy;
    let action = export.action;
    let obs_dim = export.obs_dim;

    let actor_shapes = memory_shapes(&policy.actor);
    let critic_shapes = policy
        .critic
        .as_ref()
        .map(memory_shapes)
        .unwrap_or_default();
    let memory_count = actor_shapes.len() + critic_shapes.len();

    let mut inputs: Vec<(ValueInfoProto, Vec<i64>)> = Vec::new();
    let mut add_input = |name: &str, ty: i32, shape: Vec<i64>, doc: &str| {
        inputs.push((value_info(name, ty, &shape, doc), shape));
    };
    add_input(
        "obs",
        DATA_TYPE_FLOAT,
        vec![-1, obs_dim as i64],
        "raw observations",
    );
    add_input(
        "episode_start",
        DATA_TYPE_FLOAT,
        vec![-1],
        "1.0 where a new episode starts at this step (memory emptied first), else 0.0",
    );
    let memory_names: Vec<String> = (0..memory_count).map(|i| format!("memory_{i}")).collect();
    for (name, [s, w]) in memory_names
        .iter()
        .zip(actor_shapes.iter().chain(&critic_shapes))
    {
        add_input(
            name,
            DATA_TYPE_FLOAT,
            vec![-1, *s as i64, *w as i64],
            "memory before the step (zeros at the start; then the previous step's next_memory)",
        );
    }
    if let Some(width) = action.mask_width() {
        add_input(
            "action_mask",
            DATA_TYPE_BOOL,
            vec![-1, width as i64],
            "true = allowed; forbidden actions get a logit of -1e9 (feed all true without a mask)",
        );
    }

    let mut g = GraphBuilder::default();
    let obs = match export.obs_normalizer {
        None => "obs".to_string(),
        Some(norm) => {
            let mean: Vec<f32> = norm.rms.mean.iter().map(|&m| m as f32).collect();
            let inv_std: Vec<f32> = norm
                .rms
                .var
                .iter()
                .map(|v| (1.0 / (v + NORM_EPSILON).sqrt()) as f32)
                .collect();
            let mean = g.constant("obs_normalizer.mean", &[1, obs_dim], &mean);
            let inv_std = g.constant("obs_normalizer.inv_std", &[1, obs_dim], &inv_std);
            let centred = g.sub("obs", &mean);
            let scaled = g.mul(&centred, &inv_std);
            let clip = norm.clip as f32;
            g.clip(&scaled, -clip, clip)
        }
    };
    let mut cx = StepContext::new(g, "obs", &obs, "episode_start");

    let (actor_memory, critic_memory) = memory_names.split_at(actor_shapes.len());
    let actor = emit_net(
        &mut cx,
        &policy.actor,
        actor_memory,
        Wanted {
            logits: true,
            value: policy.critic.is_none(),
        },
    )?;
    let critic = match &policy.critic {
        Some(net) => Some(emit_net(
            &mut cx,
            net,
            critic_memory,
            Wanted {
                logits: false,
                value: true,
            },
        )?),
        None => None,
    };

    let mut logits = actor
        .logits
        .clone()
        .expect("the actor's logits were asked for");
    if let Some(log_std) = &policy.log_std {
        let d = log_std.val().dims()[0];
        let row = cx.g.constant("log_std", &[1, d], &host(log_std.val())?);
        let rows = cx.broadcast_rows(&row, &[d as i64]);
        logits = cx.g.concat(&[&logits, &rows], 1);
    }
    if action.mask_width().is_some() {
        let masked = cx.g.scalar(MASKED_LOGIT);
        logits = cx.g.select("action_mask", &logits, &masked);
    }
    let value = match &critic {
        Some(c) => c.value.clone(),
        None => actor.value.clone(),
    }
    .expect("the value was asked for");
    let next_memory: Vec<String> = actor
        .memory
        .iter()
        .chain(critic.iter().flat_map(|c| c.memory.iter()))
        .cloned()
        .collect();
    if next_memory.len() != memory_count {
        return Err(format!(
            "the graph makes {} memory tensors, the policy has {memory_count}",
            next_memory.len()
        ));
    }

    let mut outputs: Vec<(ValueInfoProto, Vec<i64>)> = Vec::new();
    let mut add_output = |g: &mut GraphBuilder, name: &str, from: &str, shape: Vec<i64>, doc| {
        g.node_into("Identity", &[from], vec![], vec![name.to_string()]);
        outputs.push((value_info(name, DATA_TYPE_FLOAT, &shape, doc), shape));
    };
    let logits_doc = match action {
        ActionDist::Gaussian { .. } => "the Gaussian's means, then its log-standard deviations",
        ActionDist::MultiCategorical { .. } => {
            "logits of each dimension one after the other (forbidden actions: -1e9)"
        }
        ActionDist::Categorical { .. } => "action logits (forbidden actions: -1e9)",
    };
    add_output(
        &mut cx.g,
        "logits",
        &logits,
        vec![-1, action.param_width() as i64],
        logits_doc,
    );
    add_output(&mut cx.g, "value", &value, vec![-1], "value estimate");
    for (i, (from, [s, w])) in next_memory
        .iter()
        .zip(actor_shapes.iter().chain(&critic_shapes))
        .enumerate()
    {
        add_output(
            &mut cx.g,
            &format!("next_memory_{i}"),
            from,
            vec![-1, *s as i64, *w as i64],
            "memory after the step: feed it as memory_i at the next step",
        );
    }

    let g = cx.g;
    let summary = OnnxSummary {
        inputs: inputs
            .iter()
            .map(|(v, s)| (v.name.clone().unwrap_or_default(), s.clone()))
            .collect(),
        outputs: outputs
            .iter()
            .map(|(v, s)| (v.name.clone().unwrap_or_default(), s.clone()))
            .collect(),
        nodes: g.nodes.len(),
    };
    let meta = |key: &str, value: String| StringStringEntryProto {
        key: Some(key.into()),
        value: Some(value),
    };
    let model = ModelProto {
        ir_version: Some(ONNX_IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(ONNX_OPSET),
        }],
        producer_name: Some("fbrl".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        domain: None,
        model_version: Some(1),
        doc_string: Some(
            "One time step of a policy with explicit memory: feed next_memory_i back as \
             memory_i, and set episode_start to 1 where an episode begins."
                .into(),
        ),
        graph: Some(GraphProto {
            node: g.nodes,
            name: Some(format!("{}_policy_step", policy.kind())),
            initializer: g.initializers,
            doc_string: None,
            input: inputs.into_iter().map(|(v, _)| v).collect(),
            output: outputs.into_iter().map(|(v, _)| v).collect(),
            value_info: vec![],
        }),
        metadata_props: vec![
            meta("policy_kind", policy.kind().to_string()),
            meta("critic", policy.critic_kind().to_string()),
            meta(
                "action_dist",
                serde_json::to_string(action).map_err(|e| e.to_string())?,
            ),
            meta(
                "obs_normalized",
                export.obs_normalizer.is_some().to_string(),
            ),
        ],
    };
    Ok((model, summary))
}

#[cfg(test)]
mod tests;
