//! Command-line overrides of a [`TrainConfig`]: one typed flag per hyperparameter, plus a
//! generic `--set key.path=value` for any key.
//!
//! Precedence, lowest first: built-in defaults < the TOML file < `--set` < typed flags.
//!
//! Overrides are applied to the TOML tree *before* it is deserialised, so that
//! - keys left out still take their defaults, including the per-kind policy presets
//!   (`--policy gru` on a file that only says `kind = "feedback"` gives the GRU preset);
//! - unknown keys and wrong types from `--set` are rejected exactly like in the file;
//! - switching the env kind (`--env cue-recall`) starts from that env's defaults.
//!
//! The resolved configuration is then validated; errors name the key.

use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use toml::{Table, Value};

use crate::config::TrainConfig;

/// The policy architecture, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    /// Feedback Transformer: every layer attends to a shared memory of past steps.
    Feedback,
    /// Standard causal transformer over the last `span` steps (Transformer-XL style cache).
    Transformer,
    /// GRU recurrent baseline.
    Gru,
    /// Memoryless MLP baseline.
    Mlp,
}

impl From<PolicyArg> for agents::PolicyKind {
    fn from(p: PolicyArg) -> Self {
        match p {
            PolicyArg::Feedback => agents::PolicyKind::Feedback,
            PolicyArg::Transformer => agents::PolicyKind::Transformer,
            PolicyArg::Gru => agents::PolicyKind::Gru,
            PolicyArg::Mlp => agents::PolicyKind::Mlp,
        }
    }
}

/// Where the value function reads its features from, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CriticArg {
    /// A value head on the actor's network.
    Shared,
    /// A second network of the same kind and size.
    Separate,
}

impl From<CriticArg> for agents::CriticKind {
    fn from(c: CriticArg) -> Self {
        match c {
            CriticArg::Shared => agents::CriticKind::Shared,
            CriticArg::Separate => agents::CriticKind::Separate,
        }
    }
}

/// The environment, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EnvArg {
    /// Partially observable maze navigation (`env.kind = "gridmaze"`).
    Gridmaze,
    /// Remember a cue across a corridor (`env.kind = "cue_recall"`).
    CueRecall,
    /// gymnasium-rs's CartPole-v1 (`env.kind = "cartpole"`).
    Cartpole,
}

impl EnvArg {
    /// The `env.kind` tag in config files.
    pub fn kind(self) -> &'static str {
        match self {
            EnvArg::Gridmaze => GRIDMAZE,
            EnvArg::CueRecall => CUE_RECALL,
            EnvArg::Cartpole => "cartpole",
        }
    }
}

/// GridMaze goal behaviour, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MazeModeArg {
    /// The episode ends at the goal.
    Single,
    /// The agent respawns after each goal until the horizon.
    Multi,
}

/// GridMaze action set, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MazeActionsArg {
    /// Four absolute moves (up, right, down, left).
    Absolute,
    /// Turn left, turn right, move forward.
    Egocentric,
}

const GRIDMAZE: &str = "gridmaze";
const CUE_RECALL: &str = "cue_recall";

/// Overrides of the training configuration. Every flag is optional; a flag that is given
/// replaces the value from the config file (`--set` is applied first, typed flags last).
#[derive(Args, Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    // ---- run ----
    /// Base random seed of the run (envs, initialisation, action sampling).
    #[arg(long, help_heading = "Run")]
    pub seed: Option<u64>,
    /// Total training budget in env steps, summed over all envs.
    #[arg(long, help_heading = "Run")]
    pub total_steps: Option<u64>,
    /// Number of parallel environments.
    #[arg(long, help_heading = "Run")]
    pub num_envs: Option<usize>,
    /// Rollout length per env per update, in steps (also the truncated-BPTT length).
    #[arg(long, help_heading = "Run")]
    pub num_steps: Option<usize>,
    /// Write a checkpoint every this many updates (0 = only at the end).
    #[arg(long, help_heading = "Run")]
    pub checkpoint_every: Option<usize>,
    /// Worker threads (0 = one per core).
    #[arg(long, help_heading = "Run")]
    pub threads: Option<usize>,

    // ---- PPO ----
    /// Adam learning rate (initial value when annealing); > 0.
    #[arg(
        long,
        visible_alias = "lr",
        allow_negative_numbers = true,
        help_heading = "PPO"
    )]
    pub learning_rate: Option<f64>,
    /// Anneal the learning rate linearly to 0 over the run.
    #[arg(long, value_name = "BOOL", help_heading = "PPO")]
    pub anneal_lr: Option<bool>,
    /// Discount factor γ, in [0, 1].
    #[arg(long, allow_negative_numbers = true, help_heading = "PPO")]
    pub gamma: Option<f32>,
    /// GAE λ, in [0, 1].
    #[arg(long, allow_negative_numbers = true, help_heading = "PPO")]
    pub gae_lambda: Option<f32>,
    /// Minibatches per epoch; must divide --num-envs (minibatches are whole env sequences).
    #[arg(long, help_heading = "PPO")]
    pub num_minibatches: Option<usize>,
    /// Optimisation epochs over each rollout.
    #[arg(long, help_heading = "PPO")]
    pub update_epochs: Option<usize>,
    /// Normalise advantages per minibatch.
    #[arg(long, value_name = "BOOL", help_heading = "PPO")]
    pub norm_adv: Option<bool>,
    /// Surrogate clipping coefficient ε (ratio clipped to [1−ε, 1+ε]).
    #[arg(long, allow_negative_numbers = true, help_heading = "PPO")]
    pub clip_coef: Option<f32>,
    /// Clip the value loss around the rollout's values.
    #[arg(long, value_name = "BOOL", help_heading = "PPO")]
    pub clip_vloss: Option<bool>,
    /// Coefficient of the entropy bonus.
    #[arg(long, allow_negative_numbers = true, help_heading = "PPO")]
    pub ent_coef: Option<f32>,
    /// Coefficient of the value loss.
    #[arg(long, allow_negative_numbers = true, help_heading = "PPO")]
    pub vf_coef: Option<f32>,
    /// Maximum global L2 norm of the gradient.
    #[arg(long, allow_negative_numbers = true, help_heading = "PPO")]
    pub max_grad_norm: Option<f32>,
    /// Stop an update's epochs early when the approximate KL exceeds this.
    #[arg(long, allow_negative_numbers = true, help_heading = "PPO")]
    pub target_kl: Option<f32>,
    /// Adam ε (numerical stability term).
    #[arg(long, allow_negative_numbers = true, help_heading = "PPO")]
    pub adam_eps: Option<f32>,
    /// Scale rewards by a running std of the discounted return (default true): the same
    /// settings then learn whatever the env's reward scale. Logged returns stay unscaled.
    #[arg(long, value_name = "BOOL", help_heading = "PPO")]
    pub norm_reward: Option<bool>,
    /// Clip scaled rewards to ±this (with --norm-reward).
    #[arg(long, allow_negative_numbers = true, help_heading = "PPO")]
    pub reward_clip: Option<f32>,
    /// Normalise observations per feature with a running mean/var (frozen at evaluation).
    #[arg(long, value_name = "BOOL", help_heading = "PPO")]
    pub norm_obs: Option<bool>,
    /// Clip normalised observations to ±this (with --norm-obs).
    #[arg(long, allow_negative_numbers = true, help_heading = "PPO")]
    pub obs_clip: Option<f32>,

    // ---- policy ----
    /// Policy architecture; fields not set in the file take this kind's preset.
    #[arg(long, value_enum, help_heading = "Policy")]
    pub policy: Option<PolicyArg>,
    /// Model width: embedding/attention width, GRU hidden size.
    #[arg(long, help_heading = "Policy")]
    pub d_model: Option<usize>,
    /// Number of layers: transformer blocks or stacked GRU cells.
    #[arg(long, help_heading = "Policy")]
    pub n_layers: Option<usize>,
    /// Number of attention heads (must divide --d-model).
    #[arg(long, help_heading = "Policy")]
    pub n_heads: Option<usize>,
    /// Hidden width of each transformer block's feed-forward network.
    #[arg(long, help_heading = "Policy")]
    pub d_ff: Option<usize>,
    /// Attention span τ: how many past steps a step can attend to.
    #[arg(long, help_heading = "Policy")]
    pub span: Option<usize>,
    /// Feedback Transformer: share the memory's key/value projections across layers.
    #[arg(long, value_name = "BOOL", help_heading = "Policy")]
    pub share_kv: Option<bool>,
    /// Transformer: GTrXL-style gated residual connections.
    #[arg(long, value_name = "BOOL", help_heading = "Policy")]
    pub gating: Option<bool>,
    /// MLP: width of the two hidden layers.
    #[arg(long, help_heading = "Policy")]
    pub hidden: Option<usize>,
    /// Value function: `shared` (a head on the actor's network) or `separate` (a second
    /// network of the same kind and size; twice the compute).
    #[arg(long, value_enum, help_heading = "Policy")]
    pub critic: Option<CriticArg>,

    // ---- environment ----
    /// Environment kind; switching kind starts from that env's default settings.
    #[arg(long, value_enum, help_heading = "Environment")]
    pub env: Option<EnvArg>,
    /// GridMaze: side length in cells, outer walls included (odd, 7..=31).
    #[arg(long, help_heading = "Environment")]
    pub maze_size: Option<usize>,
    /// GridMaze: episode length limit in steps (the episode is truncated there).
    #[arg(long, help_heading = "Environment")]
    pub horizon: Option<u32>,
    /// GridMaze: view radius r; the agent sees (2r+1)×(2r+1) cells.
    #[arg(long, help_heading = "Environment")]
    pub view_radius: Option<usize>,
    /// GridMaze: what happens at the goal.
    #[arg(long, value_enum, help_heading = "Environment")]
    pub maze_mode: Option<MazeModeArg>,
    /// GridMaze: action set.
    #[arg(long, value_enum, help_heading = "Environment")]
    pub maze_actions: Option<MazeActionsArg>,
    /// GridMaze: reward for reaching the goal (≥ 0).
    #[arg(long, allow_negative_numbers = true, help_heading = "Environment")]
    pub goal_reward: Option<f32>,
    /// GridMaze: penalty subtracted on every step (≥ 0).
    #[arg(long, allow_negative_numbers = true, help_heading = "Environment")]
    pub step_penalty: Option<f32>,
    /// GridMaze: probability of knocking out extra walls (adds loops), in [0, 1].
    #[arg(long, allow_negative_numbers = true, help_heading = "Environment")]
    pub loop_density: Option<f32>,
    /// GridMaze: minimum start-to-goal shortest-path distance in moves.
    #[arg(long, help_heading = "Environment")]
    pub min_goal_distance: Option<u32>,
    /// GridMaze: append the normalised time t / horizon to the observation.
    #[arg(long, value_name = "BOOL", help_heading = "Environment")]
    pub time_feature: Option<bool>,
    /// CueRecall: corridor steps between the cue and the junction (the memory delay).
    #[arg(long, help_heading = "Environment")]
    pub corridor_length: Option<u32>,
    /// CueRecall: number of cues and exits (≥ 2).
    #[arg(long, help_heading = "Environment")]
    pub num_cues: Option<usize>,
    /// CueRecall: reward for the right exit.
    #[arg(long, allow_negative_numbers = true, help_heading = "Environment")]
    pub success_reward: Option<f32>,
    /// CueRecall: reward for a wrong exit (at most the success reward).
    #[arg(long, allow_negative_numbers = true, help_heading = "Environment")]
    pub failure_reward: Option<f32>,
    /// CueRecall: extra steps the agent may wait at the junction before truncation.
    #[arg(long, help_heading = "Environment")]
    pub junction_patience: Option<u32>,
    /// CueRecall: append the corridor progress to the observation.
    #[arg(long, value_name = "BOOL", help_heading = "Environment")]
    pub progress_feature: Option<bool>,

    // ---- generic ----
    /// Set any config key by its dotted path, e.g. `--set ppo.gamma=0.95` (repeatable; the
    /// value is TOML: 3, 0.5, true, "text"; a bare word is taken as a string).
    #[arg(long = "set", value_name = "KEY.PATH=VALUE", help_heading = "Any key")]
    pub set: Vec<String>,
}

/// One override: a dotted key, its value, and the flag it came from (for error messages).
struct Assignment {
    flag: &'static str,
    key: &'static str,
    value: Value,
}

/// An integer flag as a TOML value. TOML integers are 64-bit signed: a larger value (a seed
/// ≥ 2^63, say) is an error naming the flag, never silently clamped.
fn int<T: TryInto<i64> + Copy + std::fmt::Display>(
    flag: &str,
    v: Option<T>,
) -> Result<Option<Value>> {
    v.map(|x| {
        x.try_into().map(Value::Integer).map_err(|_| {
            anyhow::anyhow!(
                "{flag} {x} is larger than a config file can hold (at most {} = 2^63 − 1)",
                i64::MAX
            )
        })
    })
    .transpose()
}

impl Overrides {
    /// The typed flags that were given, as `(flag, dotted key, value)`, in application order.
    fn assignments(&self) -> Result<Vec<Assignment>> {
        let mut out = Vec::new();
        let mut push = |flag: &'static str, key: &'static str, value: Option<Value>| {
            if let Some(value) = value {
                out.push(Assignment { flag, key, value });
            }
        };
        let float = |v: Option<f32>| v.map(|x| Value::Float(f64::from(x)));
        let string = |s: &str| Value::String(s.to_string());

        push("--seed", "seed", int("--seed", self.seed)?);
        push(
            "--total-steps",
            "total_steps",
            int("--total-steps", self.total_steps)?,
        );
        push("--num-envs", "num_envs", int("--num-envs", self.num_envs)?);
        push(
            "--num-steps",
            "num_steps",
            int("--num-steps", self.num_steps)?,
        );
        push(
            "--checkpoint-every",
            "checkpoint_every",
            int("--checkpoint-every", self.checkpoint_every)?,
        );
        push("--threads", "threads", int("--threads", self.threads)?);

        push(
            "--learning-rate",
            "ppo.learning_rate",
            self.learning_rate.map(Value::Float),
        );
        push(
            "--anneal-lr",
            "ppo.anneal_lr",
            self.anneal_lr.map(Value::Boolean),
        );
        push("--gamma", "ppo.gamma", float(self.gamma));
        push("--gae-lambda", "ppo.gae_lambda", float(self.gae_lambda));
        push(
            "--num-minibatches",
            "ppo.num_minibatches",
            int("--num-minibatches", self.num_minibatches)?,
        );
        push(
            "--update-epochs",
            "ppo.update_epochs",
            int("--update-epochs", self.update_epochs)?,
        );
        push(
            "--norm-adv",
            "ppo.norm_adv",
            self.norm_adv.map(Value::Boolean),
        );
        push("--clip-coef", "ppo.clip_coef", float(self.clip_coef));
        push(
            "--clip-vloss",
            "ppo.clip_vloss",
            self.clip_vloss.map(Value::Boolean),
        );
        push("--ent-coef", "ppo.ent_coef", float(self.ent_coef));
        push("--vf-coef", "ppo.vf_coef", float(self.vf_coef));
        push(
            "--max-grad-norm",
            "ppo.max_grad_norm",
            float(self.max_grad_norm),
        );
        push("--target-kl", "ppo.target_kl", float(self.target_kl));
        push("--adam-eps", "ppo.adam_eps", float(self.adam_eps));
        push(
            "--norm-reward",
            "ppo.norm_reward",
            self.norm_reward.map(Value::Boolean),
        );
        push("--reward-clip", "ppo.reward_clip", float(self.reward_clip));
        push(
            "--norm-obs",
            "ppo.norm_obs",
            self.norm_obs.map(Value::Boolean),
        );
        push("--obs-clip", "ppo.obs_clip", float(self.obs_clip));

        let kind = self
            .policy
            .map(|p| string(agents::PolicyKind::from(p).name()));
        push("--policy", "policy.kind", kind);
        push(
            "--d-model",
            "policy.d_model",
            int("--d-model", self.d_model)?,
        );
        push(
            "--n-layers",
            "policy.n_layers",
            int("--n-layers", self.n_layers)?,
        );
        push(
            "--n-heads",
            "policy.n_heads",
            int("--n-heads", self.n_heads)?,
        );
        push("--d-ff", "policy.d_ff", int("--d-ff", self.d_ff)?);
        push("--span", "policy.span", int("--span", self.span)?);
        push(
            "--share-kv",
            "policy.share_kv",
            self.share_kv.map(Value::Boolean),
        );
        push("--gating", "policy.gating", self.gating.map(Value::Boolean));
        push("--hidden", "policy.hidden", int("--hidden", self.hidden)?);
        let critic = self
            .critic
            .map(|c| string(agents::CriticKind::from(c).name()));
        push("--critic", "policy.critic", critic);

        push("--env", "env.kind", self.env.map(|e| string(e.kind())));
        push(
            "--maze-size",
            "env.size",
            int("--maze-size", self.maze_size)?,
        );
        push("--horizon", "env.horizon", int("--horizon", self.horizon)?);
        push(
            "--view-radius",
            "env.view_radius",
            int("--view-radius", self.view_radius)?,
        );
        let mode = self.maze_mode.map(|m| match m {
            MazeModeArg::Single => string("single"),
            MazeModeArg::Multi => string("multi"),
        });
        push("--maze-mode", "env.mode", mode);
        let actions = self.maze_actions.map(|a| match a {
            MazeActionsArg::Absolute => string("absolute"),
            MazeActionsArg::Egocentric => string("egocentric"),
        });
        push("--maze-actions", "env.actions", actions);
        push("--goal-reward", "env.goal_reward", float(self.goal_reward));
        push(
            "--step-penalty",
            "env.step_penalty",
            float(self.step_penalty),
        );
        push(
            "--loop-density",
            "env.loop_density",
            float(self.loop_density),
        );
        push(
            "--min-goal-distance",
            "env.min_goal_distance",
            int("--min-goal-distance", self.min_goal_distance)?,
        );
        push(
            "--time-feature",
            "env.time_feature",
            self.time_feature.map(Value::Boolean),
        );
        push(
            "--corridor-length",
            "env.corridor_length",
            int("--corridor-length", self.corridor_length)?,
        );
        push(
            "--num-cues",
            "env.num_cues",
            int("--num-cues", self.num_cues)?,
        );
        push(
            "--success-reward",
            "env.success_reward",
            float(self.success_reward),
        );
        push(
            "--failure-reward",
            "env.failure_reward",
            float(self.failure_reward),
        );
        push(
            "--junction-patience",
            "env.junction_patience",
            int("--junction-patience", self.junction_patience)?,
        );
        push(
            "--progress-feature",
            "env.progress_feature",
            self.progress_feature.map(Value::Boolean),
        );
        Ok(out)
    }

    /// Whether no override at all was given.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && matches!(self.assignments(), Ok(a) if a.is_empty())
    }

    /// Applies `--set` and then the typed flags to a config tree (as read from a TOML file).
    ///
    /// Switching `env.kind` starts the env table afresh (the other env's keys would be
    /// unknown); switching `policy.kind` keeps the explicit keys and lets the new kind's
    /// preset fill the rest.
    pub fn apply_to_tree(&self, tree: &mut Table) -> Result<()> {
        let had_env = tree.contains_key("env");
        apply_sets(tree, &self.set)?;
        let assignments = self.assignments()?;
        for a in &assignments {
            if a.key == "env.kind" {
                let env = table_at(tree, "env", a.flag)?;
                if env.get("kind") != Some(&a.value) {
                    env.clear();
                }
            }
            set_path(tree, a.key, a.value.clone(), a.flag)?;
        }
        // An env table made only by overrides starts from the default env kind.
        if !had_env && let Some(Value::Table(env)) = tree.get_mut("env") {
            env.entry("kind")
                .or_insert_with(|| Value::String(default_env_kind()));
        }
        // Env-specific flags must match the env kind, else the error would be a puzzling
        // "unknown field" from the other env's config.
        let kind = tree
            .get("env")
            .and_then(|e| e.get("kind"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(default_env_kind);
        for a in &assignments {
            let Some(field) = a.key.strip_prefix("env.") else {
                continue;
            };
            let wants = if is_maze_field(field) {
                GRIDMAZE
            } else if field == "kind" {
                continue;
            } else {
                CUE_RECALL
            };
            if kind != wants {
                bail!(
                    "{} sets `{}`, which belongs to env.kind = \"{wants}\", but the configured env is \"{kind}\" (use --env {})",
                    a.flag,
                    a.key,
                    wants.replace('_', "-")
                );
            }
        }
        Ok(())
    }

    /// Applies the overrides to an already built config (through its TOML form, so the same
    /// rules hold). Unlike [`load_config`], every field is then explicit, so `--policy` keeps
    /// the sizes of `cfg` instead of taking the new kind's preset.
    pub fn apply(&self, cfg: &mut TrainConfig) -> Result<()> {
        let mut tree = Table::try_from(&*cfg).context("cannot convert the config to TOML")?;
        self.apply_to_tree(&mut tree)?;
        *cfg = tree_to_config(tree)?;
        Ok(())
    }
}

fn is_maze_field(field: &str) -> bool {
    matches!(
        field,
        "size"
            | "horizon"
            | "view_radius"
            | "mode"
            | "actions"
            | "goal_reward"
            | "step_penalty"
            | "loop_density"
            | "min_goal_distance"
            | "time_feature"
    )
}

/// The `env.kind` of the default config.
fn default_env_kind() -> String {
    Table::try_from(TrainConfig::default())
        .ok()
        .and_then(|t| t.get("env")?.get("kind")?.as_str().map(str::to_string))
        .unwrap_or_else(|| GRIDMAZE.to_string())
}

/// The table at `key` in `tree`, created when missing.
fn table_at<'a>(tree: &'a mut Table, key: &str, flag: &str) -> Result<&'a mut Table> {
    match tree
        .entry(key.to_string())
        .or_insert_with(|| Value::Table(Table::new()))
    {
        Value::Table(t) => Ok(t),
        other => bail!(
            "{flag}: `{key}` is a {} in the config, not a table",
            other.type_str()
        ),
    }
}

/// Sets the dotted `path` in `tree` to `value`, creating missing tables.
fn set_path(tree: &mut Table, path: &str, value: Value, flag: &str) -> Result<()> {
    let keys: Vec<&str> = path.split('.').map(str::trim).collect();
    if keys.iter().any(|k| k.is_empty()) {
        bail!("{flag}: empty key in path {path:?}");
    }
    let (last, parents) = keys.split_last().expect("split yields at least one key");
    let mut table = tree;
    for (i, key) in parents.iter().enumerate() {
        let entry = table
            .entry(key.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        table = match entry {
            Value::Table(t) => t,
            other => bail!(
                "{flag}: `{}` is a {}, not a table",
                keys[..=i].join("."),
                other.type_str()
            ),
        };
    }
    table.insert(last.to_string(), value);
    Ok(())
}

/// Applies `key.path=value` assignments to a TOML tree. The value is parsed as TOML (so
/// `0.95`, `true`, `"multi"`, `[1, 2]` work); a bare word that is not valid TOML is taken
/// as a string (`--set env.mode=multi`). Missing tables along the path are created.
pub fn apply_sets(tree: &mut Table, sets: &[String]) -> Result<()> {
    for assignment in sets {
        let (path, raw) = assignment
            .split_once('=')
            .with_context(|| format!("--set {assignment:?}: expected KEY.PATH=VALUE"))?;
        let flag = format!("--set {assignment}");
        set_path(tree, path.trim(), parse_value(raw.trim()), &flag)?;
    }
    Ok(())
}

fn parse_value(raw: &str) -> Value {
    match format!("v = {raw}").parse::<Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| Value::String(raw.to_string())),
        Err(_) => Value::String(raw.to_string()),
    }
}

/// Deserialises a config tree; errors quote the offending key.
fn tree_to_config(tree: Table) -> Result<TrainConfig> {
    // Round-trip through text so that deserialisation errors quote the offending line.
    let text = toml::to_string(&tree).context("cannot serialise the configuration")?;
    toml::from_str::<TrainConfig>(&text).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Loads a training configuration: the TOML file (or the built-in defaults when `path` is
/// `None`), then the overrides; then validates it.
///
/// Errors name the file and the offending key: an unknown key, a wrong type, or a value
/// that fails validation.
pub fn load_config(path: Option<&Path>, overrides: &Overrides) -> Result<TrainConfig> {
    let cfg = match path {
        None => {
            let mut tree = Table::new();
            overrides.apply_to_tree(&mut tree)?;
            tree_to_config(tree).context("invalid configuration from the command line")?
        }
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            let mut tree: Table = toml::from_str(&text)
                .with_context(|| format!("invalid config file {}", path.display()))?;
            overrides.apply_to_tree(&mut tree)?;
            match tree_to_config(tree) {
                Ok(cfg) => cfg,
                Err(e) => {
                    // Prefer the error of the file as written: it points at the user's line.
                    if let Err(file_err) = toml::from_str::<TrainConfig>(&text) {
                        bail!("invalid config file {}: {file_err}", path.display());
                    }
                    return Err(e.context(format!(
                        "invalid configuration ({} with command-line overrides)",
                        path.display()
                    )));
                }
            }
        }
    };
    cfg.validate().context("invalid configuration")?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnvConfig;
    use agents::PolicyKind;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        overrides: Overrides,
    }

    fn parse(args: &[&str]) -> Overrides {
        let mut argv = vec!["test"];
        argv.extend_from_slice(args);
        Cmd::try_parse_from(argv).unwrap().overrides
    }

    fn resolve(file: &str, args: &[&str]) -> Result<TrainConfig> {
        let mut tree: Table = toml::from_str(file).unwrap();
        parse(args).apply_to_tree(&mut tree)?;
        tree_to_config(tree)
    }

    #[test]
    fn typed_flags_beat_set_which_beats_the_file() {
        let file = "[ppo]\ngamma = 0.9\nent_coef = 0.02\n";
        let cfg = resolve(file, &[]).unwrap();
        assert_eq!((cfg.ppo.gamma, cfg.ppo.ent_coef), (0.9, 0.02));
        let cfg = resolve(file, &["--set", "ppo.gamma=0.95"]).unwrap();
        assert_eq!((cfg.ppo.gamma, cfg.ppo.ent_coef), (0.95, 0.02));
        let cfg = resolve(file, &["--set", "ppo.gamma=0.95", "--gamma", "0.8"]).unwrap();
        assert_eq!(cfg.ppo.gamma, 0.8);
        // Keys nobody set keep their defaults.
        assert_eq!(
            cfg.ppo.clip_coef,
            agents::ppo::PpoConfig::default().clip_coef
        );
    }

    #[test]
    fn every_typed_flag_reaches_its_field() {
        let cfg = resolve(
            "",
            &[
                "--seed",
                "9",
                "--total-steps",
                "1000",
                "--num-envs",
                "8",
                "--num-steps",
                "16",
                "--checkpoint-every",
                "3",
                "--threads",
                "2",
                "--lr",
                "0.001",
                "--anneal-lr",
                "false",
                "--gamma",
                "0.5",
                "--gae-lambda",
                "0.6",
                "--num-minibatches",
                "2",
                "--update-epochs",
                "7",
                "--norm-adv",
                "false",
                "--clip-coef",
                "0.3",
                "--clip-vloss",
                "false",
                "--ent-coef",
                "0.05",
                "--vf-coef",
                "0.7",
                "--max-grad-norm",
                "1.5",
                "--target-kl",
                "0.02",
                "--adam-eps",
                "1e-6",
                "--policy",
                "transformer",
                "--d-model",
                "48",
                "--n-layers",
                "3",
                "--n-heads",
                "6",
                "--d-ff",
                "96",
                "--span",
                "12",
                "--share-kv",
                "false",
                "--gating",
                "true",
                "--hidden",
                "40",
                "--maze-size",
                "9",
                "--horizon",
                "100",
                "--view-radius",
                "2",
                "--maze-mode",
                "single",
                "--maze-actions",
                "egocentric",
                "--goal-reward",
                "2",
                "--step-penalty",
                "0.01",
                "--loop-density",
                "0.1",
                "--min-goal-distance",
                "3",
                "--time-feature",
                "true",
            ],
        )
        .unwrap();
        assert_eq!(
            (cfg.seed, cfg.total_steps, cfg.num_envs, cfg.num_steps),
            (9, 1000, 8, 16)
        );
        assert_eq!((cfg.checkpoint_every, cfg.threads), (3, 2));
        let p = &cfg.ppo;
        assert_eq!(
            (p.learning_rate, p.anneal_lr, p.gamma, p.gae_lambda),
            (0.001, false, 0.5, 0.6)
        );
        assert_eq!(
            (p.num_minibatches, p.update_epochs, p.norm_adv),
            (2, 7, false)
        );
        assert_eq!(
            (p.clip_coef, p.clip_vloss, p.ent_coef, p.vf_coef),
            (0.3, false, 0.05, 0.7)
        );
        assert_eq!(
            (p.max_grad_norm, p.target_kl, p.adam_eps),
            (1.5, Some(0.02), 1e-6)
        );
        let q = &cfg.policy;
        assert_eq!(q.kind, PolicyKind::Transformer);
        assert_eq!(
            (q.d_model, q.n_layers, q.n_heads, q.d_ff, q.span),
            (48, 3, 6, 96, 12)
        );
        assert_eq!((q.share_kv, q.gating, q.hidden), (false, true, 40));
        let EnvConfig::Gridmaze(m) = &cfg.env else {
            panic!("expected a gridmaze env")
        };
        assert_eq!((m.size, m.horizon, m.view_radius), (9, 100, 2));
        assert_eq!(
            (m.mode, m.actions),
            (envs::MazeMode::Single, envs::ActionMode::Egocentric)
        );
        assert_eq!(
            (m.goal_reward, m.step_penalty, m.loop_density),
            (2.0, 0.01, 0.1)
        );
        assert_eq!((m.min_goal_distance, m.time_feature), (3, true));

        let cfg = resolve(
            "",
            &[
                "--env",
                "cue-recall",
                "--corridor-length",
                "12",
                "--num-cues",
                "3",
                "--success-reward",
                "2",
                "--failure-reward",
                "-1",
                "--junction-patience",
                "5",
                "--progress-feature",
                "true",
            ],
        )
        .unwrap();
        let EnvConfig::CueRecall(c) = &cfg.env else {
            panic!("expected a cue_recall env")
        };
        assert_eq!(
            (c.corridor_length, c.num_cues, c.junction_patience),
            (12, 3, 5)
        );
        assert_eq!(
            (c.success_reward, c.failure_reward, c.progress_feature),
            (2.0, -1.0, true)
        );
    }

    #[test]
    fn switching_env_kind_starts_from_its_defaults() {
        let file = "[env]\nkind = \"gridmaze\"\nsize = 11\n";
        let cfg = resolve(file, &["--env", "cue-recall"]).unwrap();
        assert_eq!(
            cfg.env,
            EnvConfig::CueRecall(envs::CueRecallConfig::default())
        );
        // Naming the kind the file already has keeps the file's settings.
        let cfg = resolve(file, &["--env", "gridmaze"]).unwrap();
        let EnvConfig::Gridmaze(m) = cfg.env else {
            panic!()
        };
        assert_eq!(m.size, 11);
        let err = resolve(file, &["--env", "cue-recall", "--horizon", "9"]).unwrap_err();
        assert!(err.to_string().contains("--horizon"), "{err}");
    }

    #[test]
    fn switching_policy_kind_takes_the_preset_for_unset_fields() {
        let file = "[policy]\nkind = \"feedback\"\nd_model = 32\n";
        let cfg = resolve(file, &["--policy", "gru"]).unwrap();
        assert_eq!(cfg.policy.kind, PolicyKind::Gru);
        assert_eq!(cfg.policy.d_model, 32, "an explicit key is kept");
        assert_eq!(
            cfg.policy.n_layers,
            agents::PolicyConfig::preset(PolicyKind::Gru).n_layers
        );
    }

    #[test]
    fn set_parses_toml_values_and_bare_words() {
        let mut tree = Table::new();
        apply_sets(
            &mut tree,
            &[
                "a.b.c=3".into(),
                "a.x = 0.5".into(),
                "flag=true".into(),
                "word=multi".into(),
                "quoted=\"a b\"".into(),
            ],
        )
        .unwrap();
        assert_eq!(tree["a"]["b"]["c"].as_integer(), Some(3));
        assert_eq!(tree["a"]["x"].as_float(), Some(0.5));
        assert_eq!(tree["flag"].as_bool(), Some(true));
        assert_eq!(tree["word"].as_str(), Some("multi"));
        assert_eq!(tree["quoted"].as_str(), Some("a b"));
        assert!(apply_sets(&mut tree, &["novalue".into()]).is_err());
        assert!(apply_sets(&mut tree, &["a..b=1".into()]).is_err());
        let err = apply_sets(&mut tree, &["flag.inner=1".into()]).unwrap_err();
        assert!(err.to_string().contains("`flag` is a boolean"), "{err}");
    }

    #[test]
    fn apply_to_a_built_config_and_validation_names_keys() {
        let mut cfg = TrainConfig::default();
        parse(&["--num-envs", "8", "--seed", "4"])
            .apply(&mut cfg)
            .unwrap();
        assert_eq!((cfg.num_envs, cfg.seed), (8, 4));
        cfg.ppo.num_minibatches = 3;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("ppo.num_minibatches"), "{err}");
        let err = load_config(None, &parse(&["--lr=-1"])).unwrap_err();
        assert!(format!("{err:#}").contains("ppo.learning_rate"), "{err:#}");
    }
}
