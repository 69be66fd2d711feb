//! Experiment presets: a TOML file with an `[experiment]` section, a `[train]` section (a
//! `TrainConfig` without its policy: every arm trains with exactly these settings) and the
//! arms, each a named policy config:
//!
//! ```toml
//! [experiment]
//! name = "quick"
//! title = "GridMaze multi 7x7, horizon 64"
//! seeds = 3
//!
//! [train]
//! total_steps = 300_000
//! [train.env]
//! kind = "gridmaze"
//!
//! [[arms]]
//! name = "feedback"
//! kind = "feedback"
//! n_layers = 2
//! ```
//!
//! An arm may override `learning_rate` (a per-policy tuned value, stated in the preset); every
//! other PPO setting and the env-step budget are shared.

use std::path::{Path, PathBuf};

use agents::PolicyConfig;
use anyhow::{Context, Result, bail};
use fbrl::TrainConfig;
use serde::Deserialize;

/// The `[experiment]` section of a preset.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSection {
    /// Preset name, used in run directory names and chart titles (e.g. `quick`).
    pub name: String,
    /// Description of the setting for chart titles (e.g. `GridMaze multi 7x7, horizon 64`).
    pub title: String,
    /// Seeds per arm: runs use seeds `0..seeds`.
    pub seeds: u64,
    /// Fraction of each run's env steps (the last part) averaged into its final reward.
    #[serde(default = "default_final_fraction")]
    pub final_fraction: f64,
    /// Episodes per run when evaluating the final checkpoint on held-out seeds.
    #[serde(default = "default_eval_episodes")]
    pub eval_episodes: usize,
    /// Episodes per scripted reference policy (BFS oracle, random, wall follower).
    #[serde(default = "default_reference_episodes")]
    pub reference_episodes: usize,
    /// Trailing moving-average window of the learning curves, in updates (1 = none).
    #[serde(default = "default_smooth")]
    pub smooth: usize,
    /// Corridor lengths (memory delays) swept by the memory-length experiment.
    #[serde(default)]
    pub delays: Vec<u32>,
    /// Memory-length experiment: if set, every rollout holds at least this many of the delay's
    /// longest episodes, with the batch kept: `num_steps` = the smallest power of two ≥
    /// `rollout_episodes` × (delay + junction patience + 1), `num_envs` = `train.num_envs` ×
    /// `train.num_steps` / `num_steps`. Updates and env steps per run are then the same at
    /// every delay. Unset: `train.num_envs` × `train.num_steps` at every delay.
    #[serde(default)]
    pub rollout_episodes: Option<u32>,
    /// Memory-length experiment: a seed counts as solved when its held-out greedy success
    /// rate is at least this.
    #[serde(default = "default_solved_threshold")]
    pub solved_threshold: f64,
    /// Memory-length experiment: pairs of arms whose solved-seed counts are compared with
    /// Fisher's exact test at every delay, e.g. `[["feedback_l1", "transformer_l2"]]`.
    #[serde(default)]
    pub comparisons: Vec<[String; 2]>,
    /// Folder the report is written to by default (a committed results folder). Presets
    /// without it (quick looks) write under the untracked `runs/` folder.
    #[serde(default)]
    pub out: Option<PathBuf>,
}

fn default_final_fraction() -> f64 {
    0.1
}
fn default_eval_episodes() -> usize {
    256
}
fn default_reference_episodes() -> usize {
    1000
}
fn default_smooth() -> usize {
    1
}
fn default_solved_threshold() -> f64 {
    0.9
}

/// One compared policy: a name and its architecture (plus optional tuned learning rate and
/// entropy coefficient).
#[derive(Clone, Debug, PartialEq)]
pub struct Arm {
    /// Name used in run directories, legends and CSVs (`[a-z0-9_-]`, e.g. `feedback_l1`).
    pub name: String,
    /// The policy architecture and size.
    pub policy: PolicyConfig,
    /// Learning rate for this arm instead of `train.ppo.learning_rate`, if set.
    pub learning_rate: Option<f64>,
    /// Entropy coefficient for this arm instead of `train.ppo.ent_coef`, if set.
    pub ent_coef: Option<f64>,
}

impl Arm {
    /// Relative cost per env step, 1 for a 2-layer Transformer with span 16, from the policy
    /// kind's declaration ([`agents::PolicyConfig::relative_cost`]), so that runners start
    /// costly runs first.
    pub fn cost_per_step(&self) -> f64 {
        self.policy.relative_cost()
    }
}

/// The most seeds per cell an experiment binary accepts: far more than any study needs, and
/// few enough that planning the grid (a config and a folder name per run) stays small.
pub const MAX_SEEDS: u64 = 10_000;

/// Checks a number of seeds per cell (`--seeds` or a preset's `experiment.seeds`), naming the
/// flag.
pub fn check_seeds(seeds: u64) -> anyhow::Result<()> {
    if seeds == 0 {
        anyhow::bail!("--seeds must be at least 1");
    }
    if seeds > MAX_SEEDS {
        anyhow::bail!("--seeds {seeds} is more than {MAX_SEEDS} seeds per cell");
    }
    Ok(())
}

/// A parsed preset file.
#[derive(Clone, Debug)]
pub struct Preset {
    /// The file it was read from.
    pub path: PathBuf,
    /// The `[experiment]` section.
    pub experiment: ExperimentSection,
    /// The shared training config (its `policy` is a placeholder, replaced per arm).
    pub train: TrainConfig,
    /// The main comparison (`[[arms]]`).
    pub arms: Vec<Arm>,
    /// The depth comparison (`[[depth_arms]]`), possibly empty.
    pub depth_arms: Vec<Arm>,
    /// Variants of one policy's mechanism (`[[ablation_arms]]`), possibly empty.
    pub ablation_arms: Vec<Arm>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PresetFile {
    experiment: ExperimentSection,
    train: toml::Table,
    arms: Vec<toml::Table>,
    #[serde(default)]
    depth_arms: Vec<toml::Table>,
    #[serde(default)]
    ablation_arms: Vec<toml::Table>,
}

fn parse_arms(tables: Vec<toml::Table>, section: &str) -> Result<Vec<Arm>> {
    let mut arms: Vec<Arm> = Vec::new();
    for (i, mut t) in tables.into_iter().enumerate() {
        let name = match t.remove("name") {
            Some(toml::Value::String(s)) => s,
            Some(other) => bail!("{section}[{i}].name must be a string, got {other}"),
            None => bail!("{section}[{i}] has no `name`"),
        };
        if name.is_empty()
            || name.contains("__")
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            bail!(
                "{section}[{i}].name `{name}`: use lowercase letters, digits, `_` and `-` (no `__`)"
            );
        }
        if arms.iter().any(|a| a.name == name) {
            bail!("{section}[{i}].name `{name}` is used twice");
        }
        let learning_rate = match t.remove("learning_rate") {
            None => None,
            Some(toml::Value::Float(x)) if x > 0.0 && x.is_finite() => Some(x),
            Some(other) => bail!(
                "{section}[{i}] (`{name}`).learning_rate must be a positive number, got {other}"
            ),
        };
        let ent_coef = match t.remove("ent_coef") {
            None => None,
            Some(toml::Value::Float(x)) if x >= 0.0 && x.is_finite() => Some(x),
            Some(toml::Value::Integer(0)) => Some(0.0),
            Some(other) => {
                bail!("{section}[{i}] (`{name}`).ent_coef must be a number ≥ 0, got {other}")
            }
        };
        let policy: PolicyConfig = toml::Value::Table(t)
            .try_into()
            .with_context(|| format!("{section}[{i}] (`{name}`): invalid policy config"))?;
        arms.push(Arm {
            name,
            policy,
            learning_rate,
            ent_coef,
        });
    }
    Ok(arms)
}

impl Preset {
    /// Reads and checks a preset file; errors name the file and the key.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read preset {}", path.display()))?;
        Self::parse(&text, path).with_context(|| format!("invalid preset {}", path.display()))
    }

    /// Parses preset TOML text (`path` is recorded, not read).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let file: PresetFile = toml::from_str(text)?;
        let mut train = file.train;
        if train.contains_key("policy") {
            bail!("train.policy: policies are set per arm in [[arms]], not in [train]");
        }
        if train.contains_key("seed") {
            bail!("train.seed: seeds are set by experiment.seeds (runs use 0..seeds)");
        }
        let mut placeholder = toml::Table::new();
        placeholder.insert("kind".into(), toml::Value::String("mlp".into()));
        train.insert("policy".into(), toml::Value::Table(placeholder));
        let train: TrainConfig = toml::Value::Table(train)
            .try_into()
            .context("invalid [train] section")?;
        let arms = parse_arms(file.arms, "arms")?;
        let depth_arms = parse_arms(file.depth_arms, "depth_arms")?;
        let ablation_arms = parse_arms(file.ablation_arms, "ablation_arms")?;
        if arms.is_empty() {
            bail!("arms: the preset compares no policy");
        }
        let e = &file.experiment;
        if e.seeds == 0 {
            bail!("experiment.seeds must be at least 1");
        }
        if !(e.final_fraction > 0.0 && e.final_fraction <= 1.0) {
            bail!(
                "experiment.final_fraction must be in (0, 1], got {}",
                e.final_fraction
            );
        }
        if e.eval_episodes == 0 || e.reference_episodes == 0 || e.smooth == 0 {
            bail!("experiment.eval_episodes, reference_episodes and smooth must be at least 1");
        }
        if !(e.solved_threshold > 0.0 && e.solved_threshold <= 1.0) {
            bail!(
                "experiment.solved_threshold must be in (0, 1], got {}",
                e.solved_threshold
            );
        }
        if e.rollout_episodes == Some(0) {
            bail!("experiment.rollout_episodes must be at least 1");
        }
        for [a, b] in &e.comparisons {
            for name in [a, b] {
                if !arms.iter().any(|arm| &arm.name == name) {
                    bail!("experiment.comparisons: `{name}` is not one of the [[arms]]");
                }
            }
        }
        if e.name.is_empty() || e.name.contains('/') || e.name.contains("__") {
            bail!("experiment.name `{}` cannot name a directory", e.name);
        }
        let preset = Self {
            path: path.to_path_buf(),
            experiment: file.experiment,
            train,
            arms,
            depth_arms,
            ablation_arms,
        };
        for arm in preset
            .arms
            .iter()
            .chain(&preset.depth_arms)
            .chain(&preset.ablation_arms)
        {
            preset
                .run_config(arm, 0, 1)
                .validate()
                .with_context(|| format!("arm `{}`", arm.name))?;
        }
        Ok(preset)
    }

    /// The training config of one run: the shared settings, the arm's policy (and learning
    /// rate and entropy coefficient, where it overrides them), the seed and the worker threads.
    pub fn run_config(&self, arm: &Arm, seed: u64, threads: usize) -> TrainConfig {
        let mut cfg = self.train.clone();
        cfg.policy = arm.policy.clone();
        if let Some(lr) = arm.learning_rate {
            cfg.ppo.learning_rate = lr;
        }
        if let Some(ent) = arm.ent_coef {
            cfg.ppo.ent_coef = ent as f32;
        }
        cfg.seed = seed;
        cfg.threads = threads;
        cfg
    }
}

/// Keeps the arms named in `names` (in the preset's order); errors on a name the preset lacks.
pub fn select_arms(arms: &[Arm], names: Option<&[String]>) -> Result<Vec<Arm>> {
    let Some(names) = names else {
        return Ok(arms.to_vec());
    };
    for n in names {
        if !arms.iter().any(|a| &a.name == n) {
            let known: Vec<&str> = arms.iter().map(|a| a.name.as_str()).collect();
            bail!(
                "--policies: `{n}` is not an arm of this preset (arms: {})",
                known.join(", ")
            );
        }
    }
    Ok(arms
        .iter()
        .filter(|a| names.contains(&a.name))
        .cloned()
        .collect())
}

/// A flag's list of values for the arms: `VALUE` items apply to every arm, `ARM:VALUE` items
/// to that arm only (a grid extended for one arm, e.g. `5e-4,1e-3,2e-3,gru:4e-3`).
#[derive(Clone, Debug, PartialEq)]
pub struct PerArm {
    /// Each value with the arm it is limited to (`None`: every arm), in the order given.
    pub items: Vec<(Option<String>, f64)>,
}

impl PerArm {
    /// Parses `items` of the flag `flag`; `what` names a value in errors (`a learning
    /// rate`). An arm that is not in `arms` is refused, naming it.
    pub fn parse(flag: &str, what: &str, items: &[String], arms: &[Arm]) -> Result<Self> {
        let mut parsed = Vec::new();
        for item in items {
            let (only, text) = match item.split_once(':') {
                Some((arm, v)) => {
                    if !arms.iter().any(|a| a.name == arm) {
                        bail!("{flag}: `{arm}` in `{item}` is not one of the arms run");
                    }
                    (Some(arm.to_string()), v)
                }
                None => (None, item.as_str()),
            };
            let v: f64 = text
                .trim()
                .parse()
                .with_context(|| format!("{flag}: `{item}` is not {what}"))?;
            parsed.push((only, v));
        }
        Ok(Self { items: parsed })
    }

    /// The values that apply to the arm named `arm`, in the order given.
    pub fn for_arm(&self, arm: &str) -> Vec<f64> {
        self.items
            .iter()
            .filter(|(only, _)| only.as_deref().is_none_or(|a| a == arm))
            .map(|(_, v)| *v)
            .collect()
    }
}

/// The preset file for `preset`: a path to a TOML file as given, otherwise the bundled
/// `experiments/configs/<prefix>_<preset>.toml` (e.g. prefix `maze`, preset `full`).
pub fn preset_path(prefix: &str, preset: &str) -> PathBuf {
    let as_path = PathBuf::from(preset);
    if preset.ends_with(".toml") || as_path.is_file() {
        return as_path;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs")
        .join(format!("{prefix}_{preset}.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[experiment]
name = "t"
title = "test"
seeds = 2

[train]
total_steps = 1024
num_envs = 8
num_steps = 16
[train.env]
kind = "gridmaze"
size = 7
horizon = 16
[train.ppo]
num_minibatches = 2

[[arms]]
name = "feedback"
kind = "feedback"
d_model = 16
n_heads = 2

[[arms]]
name = "mlp"
kind = "mlp"
learning_rate = 1e-3
"#;

    #[test]
    fn parses_and_builds_run_configs() {
        let p = Preset::parse(GOOD, Path::new("t.toml")).unwrap();
        assert_eq!(p.arms.len(), 2);
        assert_eq!(p.experiment.final_fraction, 0.1);
        let c = p.run_config(&p.arms[0], 3, 1);
        assert_eq!(
            (c.seed, c.threads, c.policy.size("d_model")),
            (3, 1, Some(16))
        );
        assert_eq!(c.ppo.learning_rate, p.train.ppo.learning_rate);
        let c = p.run_config(&p.arms[1], 0, 1);
        assert_eq!(c.ppo.learning_rate, 1e-3);
        let sel = select_arms(&p.arms, Some(&["mlp".to_string()])).unwrap();
        assert_eq!(sel.len(), 1);
        let e = select_arms(&p.arms, Some(&["gru".to_string()])).unwrap_err();
        assert!(e.to_string().contains("`gru`"), "{e}");
    }

    #[test]
    fn bad_presets_name_the_key() {
        let cases = [
            (GOOD.replace("seeds = 2", "seeds = 0"), "experiment.seeds"),
            (
                GOOD.replace("num_minibatches = 2", "num_minibatches = 3"),
                "ppo.num_minibatches",
            ),
            (GOOD.replace("name = \"mlp\"", "name = \"m__x\""), "m__x"),
            (GOOD.replace("d_model = 16", "d_model = 15"), "d_model"),
            (GOOD.replace("horizon = 16", "horizn = 16"), "horizn"),
            (GOOD.replace("[train]", "[train]\nseed = 4"), "train.seed"),
        ];
        for (text, key) in cases {
            let e = format!(
                "{:#}",
                Preset::parse(&text, Path::new("t.toml")).unwrap_err()
            );
            assert!(e.contains(key), "expected `{key}` in: {e}");
        }
    }

    #[test]
    fn costlier_arms_are_estimated_costlier() {
        let p = Preset::parse(GOOD, Path::new("t.toml")).unwrap();
        let arm = |policy: &str| {
            let mut a = p.arms[0].clone();
            a.policy = toml::from_str::<agents::PolicyConfig>(policy).unwrap();
            a.cost_per_step()
        };
        let t16 = arm("kind = \"transformer\"\nn_layers = 2\nspan = 16");
        assert!((t16 - 1.0).abs() < 1e-9, "{t16}");
        let t128 = arm("kind = \"transformer\"\nn_layers = 2\nspan = 128");
        let t16_l4 = arm("kind = \"transformer\"\nn_layers = 4\nspan = 16");
        let separate =
            arm("kind = \"transformer\"\nn_layers = 2\nspan = 16\ncritic = \"separate\"");
        let fb16 = arm("kind = \"feedback\"\nn_layers = 2\nspan = 16");
        let gru = arm("kind = \"gru\"");
        let mlp = arm("kind = \"mlp\"");
        assert!(t128 > 2.0 * t16 && t16_l4 > 1.9 * t16, "{t128} {t16_l4}");
        assert!((separate - 2.0 * t16).abs() < 1e-9);
        assert!(fb16 > t16 && t16 > gru && gru > mlp, "{fb16} {gru} {mlp}");
    }
}
