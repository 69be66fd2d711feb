//! The exported ONNX step graph, run by onnxruntime, reproduces `Policy::step` over 200 steps
//! for every policy kind, action space and option, feeding back its own memory.
//!
//! The Rust side records observations, episode starts, action masks, logits, values and every
//! memory tensor next to each exported model; `tests/onnx_check.py` runs the models with
//! onnxruntime and compares. The Python interpreter is `$FBRL_PYTHON` (default `python3`); when
//! it cannot import onnxruntime the test is skipped with a message on stderr, or fails when
//! `FBRL_REQUIRE_ONNXRUNTIME=1`.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use agents::distribution::MASKED_LOGIT;
use agents::ppo::ObsNormalizer;
use agents::{
    ActionDist, ActorCritic, CriticKind, CurrentSlot, MemoryMix, OnnxExport, Policy, PolicyConfig,
    PolicyKind, export_onnx,
};
use burn::module::Module;
use burn::prelude::*;
use common::{Randomize, noise, small_config, values};

const OBS_DIM: usize = 5;
const BATCH: usize = 3;
const STEPS: usize = 200;
const WARMUP: usize = 7;

/// A directory of its own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("agents-onnx-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn actions() -> [(&'static str, ActionDist); 3] {
    [
        ("categorical", ActionDist::Categorical { n: 4 }),
        ("multi", ActionDist::MultiCategorical { nvec: vec![3, 2] }),
        (
            "gaussian",
            ActionDist::Gaussian {
                low: vec![-1.0; 2],
                high: vec![1.0; 2],
            },
        ),
    ]
}

/// [`small_config`] with two layers (GRU included).
fn small(kind: PolicyKind) -> PolicyConfig {
    small_config(kind).with("n_layers", 2).unwrap()
}

/// Every case: a name, a config, an action space.
fn cases() -> Vec<(String, PolicyConfig, ActionDist)> {
    let mut out = Vec::new();
    for kind in PolicyKind::ALL {
        for (aname, action) in actions() {
            out.push((format!("{kind}-{aname}"), small(kind), action));
        }
    }
    let [cat, multi, gauss] = actions().map(|(_, a)| a);
    let feedback = small(PolicyKind::Feedback);
    let transformer = small(PolicyKind::Transformer);
    let variants = [
        (
            "feedback-mix-top",
            feedback.clone().with("memory_mix", MemoryMix::Top).unwrap(),
            multi.clone(),
        ),
        (
            "feedback-mix-embedding",
            feedback
                .clone()
                .with("memory_mix", MemoryMix::Embedding)
                .unwrap(),
            gauss.clone(),
        ),
        (
            "feedback-null-slot",
            feedback
                .clone()
                .with("current_slot", CurrentSlot::Null)
                .unwrap(),
            cat.clone(),
        ),
        (
            "feedback-unshared-kv",
            feedback.clone().with("share_kv", false).unwrap(),
            multi.clone(),
        ),
        (
            "feedback-unshared-kv-null-slot-separate",
            PolicyConfig {
                critic: CriticKind::Separate,
                ..feedback
                    .clone()
                    .with("share_kv", false)
                    .unwrap()
                    .with("current_slot", CurrentSlot::Null)
                    .unwrap()
            },
            gauss.clone(),
        ),
        (
            "transformer-separate",
            PolicyConfig {
                critic: CriticKind::Separate,
                ..transformer.clone()
            },
            gauss.clone(),
        ),
        (
            "transformer-separate-cat",
            PolicyConfig {
                critic: CriticKind::Separate,
                ..transformer.clone()
            },
            cat.clone(),
        ),
        (
            "transformer-gating",
            transformer.clone().with("gating", true).unwrap(),
            cat.clone(),
        ),
        (
            "transformer-gating-span1",
            transformer
                .with("gating", true)
                .unwrap()
                .with("span", 1)
                .unwrap(),
            multi.clone(),
        ),
        (
            "gru-2-layers-separate",
            PolicyConfig {
                critic: CriticKind::Separate,
                ..small(PolicyKind::Gru).with("n_layers", 2).unwrap()
            },
            multi,
        ),
        (
            "mlp-separate",
            PolicyConfig {
                critic: CriticKind::Separate,
                ..small(PolicyKind::Mlp)
            },
            cat,
        ),
    ];
    for (name, config, action) in variants {
        out.push((name.to_string(), config, action));
    }
    out
}

/// Where new episodes start (besides the first step of env 0): `(env, step)`.
const STARTS: [(usize, usize); 7] = [
    (0, 50),
    (0, 123),
    (1, 77),
    (2, 30),
    (2, 31),
    (2, 150),
    (1, 199),
];

fn write_f32(dir: &Path, name: &str, data: &[f32]) {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    fs::write(dir.join(format!("{name}.f32")), bytes).unwrap();
}

fn normalizer(seed: u64) -> ObsNormalizer {
    let mut norm = ObsNormalizer::new(OBS_DIM, 2.5);
    norm.rms.mean = noise(OBS_DIM, seed)
        .into_iter()
        .map(|x| f64::from(x) * 2.0)
        .collect();
    norm.rms.var = noise(OBS_DIM, seed + 1)
        .into_iter()
        .map(|x| f64::from(x) * 1.5 + 2.0)
        .collect();
    norm.rms.count = 1000.0;
    norm
}

/// A mask with at least one allowed action per categorical dimension (`None`: all allowed).
fn mask_row(action: &ActionDist, seed: u64) -> Vec<bool> {
    let segments: Vec<usize> = match action {
        ActionDist::Categorical { n } => vec![*n],
        ActionDist::MultiCategorical { nvec } => nvec.clone(),
        ActionDist::Gaussian { .. } => vec![],
    };
    let r = noise(action.head_width(), seed);
    let mut out = Vec::new();
    let mut at = 0;
    for n in segments {
        let seg: Vec<bool> = r[at..at + n].iter().map(|&x| x > -0.2).collect();
        let keep = (seed as usize + at) % n;
        out.extend(seg.iter().enumerate().map(|(i, &b)| b || i == keep));
        at += n;
    }
    out
}

/// Runs the case in Rust, exports it and writes the recording; returns the manifest entry.
fn record_case(
    dir: &Path,
    index: usize,
    name: &str,
    config: &PolicyConfig,
    action: &ActionDist,
) -> serde_json::Value {
    let device = Device::flex();
    let seed = 1000 + 17 * index as u64;
    let policy: Policy = config
        .init_for(OBS_DIM, action, &device)
        .unwrap()
        .map(&mut Randomize { seed });
    let norm = normalizer(seed);
    let case_dir = dir.join(name);
    fs::create_dir_all(&case_dir).unwrap();
    let model = case_dir.join("policy.onnx");
    let summary = export_onnx(
        &OnnxExport {
            policy: &policy,
            action,
            obs_normalizer: Some(&norm),
            obs_dim: OBS_DIM,
        },
        &model,
    )
    .unwrap();

    let raw_obs = |t: usize| -> Vec<f32> {
        noise(BATCH * OBS_DIM, seed * 7919 + t as u64)
            .into_iter()
            .map(|x| 4.0 * x + 0.5)
            .collect()
    };
    let step = |memory, obs: &[f32], starts: &[f32]| {
        let obs = Tensor::<2>::from_data(
            TensorData::new(norm.normalize(obs), [BATCH, OBS_DIM]),
            &device,
        );
        let starts = Tensor::<1>::from_data(TensorData::new(starts.to_vec(), [BATCH]), &device);
        policy.step(obs, starts, memory)
    };

    // A memory that is not empty at the first recorded step.
    let mut memory = policy.init_memory(BATCH, &device);
    for t in 0..WARMUP {
        let starts = vec![if t == 0 { 1.0 } else { 0.0 }; BATCH];
        memory = step(memory, &raw_obs(100_000 + t), &starts).2;
    }
    let shapes: Vec<Vec<usize>> = memory.shapes().iter().map(|s| s.to_vec()).collect();
    for (i, m) in memory.tensors.iter().enumerate() {
        write_f32(&case_dir, &format!("memory0_{i}"), &values(m.clone()));
    }

    let mask_width = action.mask_width();
    let (mut obs_all, mut starts_all, mut mask_all) = (Vec::new(), Vec::new(), Vec::new());
    let (mut logits_all, mut value_all) = (Vec::new(), Vec::new());
    let mut memory_all: Vec<Vec<f32>> = vec![Vec::new(); shapes.len()];
    let mut param_width = 0;
    for t in 0..STEPS {
        let obs = raw_obs(t);
        let mut starts = vec![0.0f32; BATCH];
        if t == 0 {
            starts[0] = 1.0;
        }
        for &(env, at) in &STARTS {
            if at == t {
                starts[env] = 1.0;
            }
        }
        let (logits, value, next) = step(memory, &obs, &starts);
        param_width = logits.dims()[1];
        let mut logits = values(logits);
        if let Some(width) = mask_width {
            for b in 0..BATCH {
                let row = if t % 3 == 0 {
                    vec![true; width]
                } else {
                    mask_row(action, seed + (t * BATCH + b) as u64)
                };
                for (j, &allowed) in row.iter().enumerate() {
                    if !allowed {
                        logits[b * width + j] = MASKED_LOGIT;
                    }
                    mask_all.push(if allowed { 1.0 } else { 0.0 });
                }
            }
        }
        obs_all.extend(obs);
        starts_all.extend(starts);
        logits_all.extend(logits);
        value_all.extend(values(value));
        for (all, m) in memory_all.iter_mut().zip(&next.tensors) {
            all.extend(values(m.clone()));
        }
        memory = next;
    }
    write_f32(&case_dir, "obs", &obs_all);
    write_f32(&case_dir, "episode_start", &starts_all);
    write_f32(&case_dir, "logits", &logits_all);
    write_f32(&case_dir, "value", &value_all);
    if mask_width.is_some() {
        write_f32(&case_dir, "action_mask", &mask_all);
    }
    for (i, m) in memory_all.iter().enumerate() {
        write_f32(&case_dir, &format!("next_memory_{i}"), m);
    }

    // The exported interface is the policy's.
    let memory_inputs: Vec<(String, Vec<i64>)> = summary
        .inputs
        .iter()
        .filter(|(n, _)| n.starts_with("memory_"))
        .cloned()
        .collect();
    assert_eq!(memory_inputs.len(), shapes.len(), "{name}");
    for ((_, got), want) in memory_inputs.iter().zip(&shapes) {
        assert_eq!(got[1..], [want[1] as i64, want[2] as i64], "{name}");
    }
    assert_eq!(
        summary.outputs[0],
        ("logits".to_string(), vec![-1, param_width as i64]),
        "{name}"
    );

    serde_json::json!({
        "name": name,
        "dir": case_dir,
        "steps": STEPS,
        "batch": BATCH,
        "obs_dim": OBS_DIM,
        "param_width": param_width,
        "mask_width": mask_width,
        "memory_shapes": shapes,
    })
}

/// Whether `python` can import onnxruntime, onnx and numpy (the error text if not).
fn python_ready(python: &str) -> Result<(), String> {
    match Command::new(python)
        .args(["-c", "import onnxruntime, onnx, numpy"])
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn onnxruntime_reproduces_policy_steps_for_every_kind_and_action_space() {
    let python = std::env::var("FBRL_PYTHON").unwrap_or_else(|_| "python3".to_string());
    if let Err(why) = python_ready(&python) {
        if std::env::var("FBRL_REQUIRE_ONNXRUNTIME").as_deref() == Ok("1") {
            panic!(
                "FBRL_REQUIRE_ONNXRUNTIME=1 but `{python}` cannot import onnxruntime ({why}). \
                 Install it, e.g. `python3 -m venv ~/onnx-venv && ~/onnx-venv/bin/pip install \
                 onnxruntime onnx numpy`, then set FBRL_PYTHON=~/onnx-venv/bin/python"
            );
        }
        // Written to the process's stderr directly, so the test harness does not capture it.
        let _ = writeln!(
            std::io::stderr(),
            "\n!!!!!!!!\n!!! skipped: onnxruntime not importable by {python} ({why})\n\
             !!! set FBRL_PYTHON to an interpreter with onnxruntime, onnx and numpy\n!!!!!!!!\n"
        );
        return;
    }

    let dir = TempDir::new("runtime");
    let manifest: Vec<serde_json::Value> = cases()
        .iter()
        .enumerate()
        .map(|(i, (name, config, action))| record_case(&dir.0, i, name, config, action))
        .collect();
    let manifest_path = dir.0.join("cases.json");
    fs::write(
        &manifest_path,
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx_check.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&manifest_path)
        .output()
        .expect("run the onnx check script");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{} failed (see its output above)",
        script.display()
    );
}
