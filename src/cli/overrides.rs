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

use agents::{CriticKind, PolicyKind};
use anyhow::{Context, Result, bail};
use clap::{Args, CommandFactory, Parser};
use envs::{ActionMode, MazeMode};
use serde::Serialize;
use toml::{Table, Value};

use crate::config::{EnvConfig, TrainConfig, check_label};
use envs::BuiltinEnv;

/// The prefix of a Gymnasium env on the command line: `--env gym:CartPole-v1`.
const GYM_PREFIX: &str = "gym:";

/// The value of `--env`: a built-in env, or `gym:ID` for a Gymnasium env in the embedded
/// Python (`env.kind = "gym"`, `env.id = ID`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvChoice {
    /// A built-in env, by its `env.kind` (one of [`envs::EnvConfig::BUILTIN`]).
    Builtin(&'static str),
    /// A Gymnasium env id (or a factory `module:name`).
    Gym(String),
}

impl Serialize for EnvChoice {
    /// A built-in env as its `env.kind`; a Gymnasium env as `gym:ID`, which
    /// [`Overrides::apply_to_tree`] splits into `env.kind` and `env.id`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EnvChoice::Builtin(kind) => kind.serialize(s),
            EnvChoice::Gym(id) => s.serialize_str(&format!("{GYM_PREFIX}{id}")),
        }
    }
}

/// The value parser of `--env`: a built-in env's name or `gym:ID`.
fn parse_env_choice(s: &str) -> Result<EnvChoice, String> {
    if let Some(id) = s.strip_prefix(GYM_PREFIX) {
        if id.trim().is_empty() {
            return Err("gym: needs an env id, e.g. gym:CartPole-v1".into());
        }
        return Ok(EnvChoice::Gym(id.to_string()));
    }
    BuiltinEnv::find(s)
        .map(|b| EnvChoice::Builtin(b.kind))
        .ok_or_else(|| {
            format!(
                "expected one of {}, or gym:ID (a Gymnasium env, e.g. gym:CartPole-v1)",
                builtin_cli_names().join(", ")
            )
        })
}

/// The command-line names of the built-in envs (`cue-recall`), in registry order.
fn builtin_cli_names() -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        EnvConfig::BUILTIN
            .iter()
            .map(BuiltinEnv::cli_name)
            .collect()
    })
}

/// The value parser of `--env`: [`parse_env_choice`], with the built-in envs and `gym:ID` as
/// the possible values `--help` lists.
#[derive(Clone, Copy, Debug)]
struct EnvChoiceParser;

impl clap::builder::TypedValueParser for EnvChoiceParser {
    type Value = EnvChoice;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<EnvChoice, clap::Error> {
        let text = value.to_string_lossy();
        parse_env_choice(&text).map_err(|reason| {
            let flag = arg.map_or_else(|| "--env".to_string(), ToString::to_string);
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("invalid value '{text}' for '{flag}': {reason}\n"),
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        let gym = clap::builder::PossibleValue::new("gym:ID").help(
            "A Gymnasium env in the embedded Python (`env.kind = \"gym\"`, needs fbrl built \
             with `--features python`): gymnasium.make(ID); gym:PACKAGE:ID imports the \
             package that registers ID; gym:module:name calls a factory",
        );
        let builtin = EnvConfig::BUILTIN
            .iter()
            .zip(builtin_cli_names())
            .map(|(b, name)| {
                clap::builder::PossibleValue::new(name.as_str()).help(format!(
                    "{} (`env.kind = \"{}\"`)",
                    b.about.trim().trim_end_matches('.'),
                    b.kind
                ))
            });
        Some(Box::new(builtin.chain([gym])))
    }
}

/// The value parser of `--env-kwargs`: a JSON object, as the TOML table `env.kwargs`.
fn parse_kwargs(s: &str) -> Result<Table, String> {
    let json: serde_json::Value =
        serde_json::from_str(s).map_err(|e| format!("not JSON ({e}), e.g. '{{\"size\": 9}}'"))?;
    if !json.is_object() {
        return Err(format!(
            "must be a JSON object of keyword arguments, got {json}"
        ));
    }
    Table::try_from(&json)
        .map_err(|e| format!("cannot be kept in config.toml ({e}; TOML has no null)"))
}

/// The `env.kind` and, for `gym:ID`, the `env.id` of an `--env` value in a config tree.
fn split_env_kind(value: &Value) -> (Value, Option<Value>) {
    match value.as_str().and_then(|v| v.strip_prefix(GYM_PREFIX)) {
        Some(id) => (Value::String("gym".into()), Some(Value::String(id.into()))),
        None => (value.clone(), None),
    }
}

/// Overrides of the training configuration. Every flag is optional; a flag that is given
/// replaces the value from the config file (`--set` is applied first, typed flags last).
///
/// The flags mirror the config: each field is named after its key (the sections `ppo`,
/// `policy` and `env` are the nested structs), so a given flag serialises to exactly the
/// keys it overrides.
#[derive(Args, Serialize, Clone, Debug, Default, PartialEq)]
#[command(next_help_heading = "Run")]
pub struct Overrides {
    /// Label of the run, recorded as `label` in its config.toml: `fbrl plot` draws runs with
    /// the same env and label as one line (default label: the policy kind). Non-empty, no
    /// `/`, `\`, `__` or control characters.
    #[arg(id = "label", long = "name", value_name = "LABEL", value_parser = parse_label)]
    pub label: Option<String>,
    /// Base random seed of the run (envs, initialisation, action sampling).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Total training budget in env steps, summed over all envs.
    #[arg(long)]
    pub total_steps: Option<u64>,
    /// Number of parallel environments.
    #[arg(long)]
    pub num_envs: Option<usize>,
    /// Rollout length per env per update, in steps (also the truncated-BPTT length).
    #[arg(long)]
    pub num_steps: Option<usize>,
    /// Write a checkpoint every this many updates (0 = only at the end).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Worker threads (0 = one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also write the metrics as TensorBoard event files into `<run>/tensorboard/`
    /// (`tensorboard --logdir runs`).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub tensorboard: Option<bool>,
    /// The learning algorithm: `ppo` (the default; the typed flags below set its `[ppo]`
    /// keys) or `vtrace` (IMPALA's V-trace; set its keys with `--set vtrace.KEY=VALUE`).
    #[arg(id = "algorithm", long = "algo", value_enum)]
    pub algorithm: Option<crate::config::Algorithm>,
    /// The `[ppo]` keys.
    #[command(flatten)]
    pub ppo: PpoOverrides,
    /// The `[policy]` keys.
    #[command(flatten)]
    pub policy: PolicyOverrides,
    /// The `[env]` keys.
    #[command(flatten)]
    pub env: EnvOverrides,
    /// Set any config key by its dotted path, e.g. `--set ppo.gamma=0.95` (repeatable; the
    /// value is TOML: 3, 0.5, true, "text"; a bare word is taken as a string).
    #[arg(long = "set", value_name = "KEY.PATH=VALUE", help_heading = "Any key")]
    #[serde(skip)]
    pub set: Vec<String>,
}

/// Overrides of the `[ppo]` keys.
#[derive(Args, Serialize, Clone, Debug, Default, PartialEq)]
#[command(next_help_heading = "PPO")]
pub struct PpoOverrides {
    /// Adam learning rate (initial value when annealing); > 0.
    #[arg(long, visible_alias = "lr", allow_negative_numbers = true)]
    pub learning_rate: Option<f64>,
    /// Anneal the learning rate linearly to 0 over the run.
    #[arg(long, value_name = "BOOL")]
    pub anneal_lr: Option<bool>,
    /// Discount factor γ, in [0, 1].
    #[arg(long, allow_negative_numbers = true)]
    pub gamma: Option<f32>,
    /// GAE λ, in [0, 1].
    #[arg(long, allow_negative_numbers = true)]
    pub gae_lambda: Option<f32>,
    /// Minibatches per epoch; must divide the sequences per rollout, num_envs × num_steps /
    /// seq_len (minibatches are whole sequences).
    #[arg(long)]
    pub num_minibatches: Option<usize>,
    /// Length of the sequences the update replays (divides --num-steps; default: whole
    /// rollouts). Each starts from the memory its env had at that step of the rollout.
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Optimisation epochs over each rollout.
    #[arg(long)]
    pub update_epochs: Option<usize>,
    /// Normalise advantages per minibatch.
    #[arg(long, value_name = "BOOL")]
    pub norm_adv: Option<bool>,
    /// Surrogate clipping coefficient ε (ratio clipped to [1−ε, 1+ε]).
    #[arg(long, allow_negative_numbers = true)]
    pub clip_coef: Option<f32>,
    /// Clip the value loss around the rollout's values.
    #[arg(long, value_name = "BOOL")]
    pub clip_vloss: Option<bool>,
    /// Coefficient of the entropy bonus.
    #[arg(long, allow_negative_numbers = true)]
    pub ent_coef: Option<f32>,
    /// Coefficient of the value loss.
    #[arg(long, allow_negative_numbers = true)]
    pub vf_coef: Option<f32>,
    /// Maximum global L2 norm of the gradient.
    #[arg(long, allow_negative_numbers = true)]
    pub max_grad_norm: Option<f32>,
    /// Stop an update's epochs early when the approximate KL exceeds this.
    #[arg(long, allow_negative_numbers = true)]
    pub target_kl: Option<f32>,
    /// Adam ε (numerical stability term).
    #[arg(long, allow_negative_numbers = true)]
    pub adam_eps: Option<f32>,
    /// Scale rewards by a running std of the discounted return (default true): the same
    /// settings then learn whatever the env's reward scale. Logged returns stay unscaled.
    #[arg(long, value_name = "BOOL")]
    pub norm_reward: Option<bool>,
    /// Clip scaled rewards to ±this (with --norm-reward).
    #[arg(long, allow_negative_numbers = true)]
    pub reward_clip: Option<f32>,
    /// Normalise observations per feature with a running mean/var (frozen at evaluation).
    #[arg(long, value_name = "BOOL")]
    pub norm_obs: Option<bool>,
    /// Clip normalised observations to ±this (with --norm-obs).
    #[arg(long, allow_negative_numbers = true)]
    pub obs_clip: Option<f32>,
}

/// Overrides of the `[policy]` keys: `--policy KIND`, `--critic`, and one flag per field of
/// the registered kinds (`--d-model`, `--span`, …; also `--policy.FIELD`), made from the
/// kinds' declarations: their fields, docs and defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyOverrides {
    /// Policy architecture; fields not set in the file take this kind's preset.
    pub kind: Option<PolicyKind>,
    /// Value function: `shared` or `separate`.
    pub critic: Option<CriticKind>,
    /// The kinds' fields given, by key, as their config values.
    pub fields: std::collections::BTreeMap<String, serde_json::Value>,
}

/// A field of one or more registered policy kinds, as the command line offers it.
struct PolicyFlag {
    /// The key, e.g. `d_model`.
    name: &'static str,
    /// The doc of the first kind that has it.
    doc: &'static str,
    /// Its value type, from its default: a number, a boolean or a name.
    value: serde_json::Value,
    /// `(kind, default)` of every kind that has it.
    defaults: Vec<(PolicyKind, serde_json::Value)>,
}

impl PolicyFlag {
    /// The id of its argument, the dotted config key.
    fn id(&self) -> String {
        format!("policy.{}", self.name)
    }

    /// Its help: the doc, then the kinds that have it with their defaults, grouped by value.
    fn help(&self) -> String {
        let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
        for (kind, value) in &self.defaults {
            let shown = show_json(value);
            match groups.iter_mut().find(|(v, _)| *v == shown) {
                Some((_, kinds)) => kinds.push(kind.name()),
                None => groups.push((shown, vec![kind.name()])),
            }
        }
        let defaults: Vec<String> = groups
            .iter()
            .map(|(v, kinds)| format!("{v} ({})", kinds.join(", ")))
            .collect();
        format!(
            "{} [default: {}; other kinds ignore it]",
            self.doc.trim(),
            defaults.join(", ")
        )
    }
}

/// A config value as the help shows it.
fn show_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every field of the registered policy kinds, once, in the order of the registry.
fn policy_flags() -> Vec<PolicyFlag> {
    let mut flags: Vec<PolicyFlag> = Vec::new();
    for kind in PolicyKind::ALL {
        for (field, value) in agents::PolicyConfig::preset(kind).spec.spec().values() {
            match flags.iter_mut().find(|f| f.name == field.name) {
                Some(flag) => flag.defaults.push((kind, value)),
                None => flags.push(PolicyFlag {
                    name: field.name,
                    doc: field.doc,
                    value: value.clone(),
                    defaults: vec![(kind, value)],
                }),
            }
        }
    }
    flags
}

impl clap::FromArgMatches for PolicyOverrides {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut out = Self::default();
        out.update_from_arg_matches(matches)?;
        Ok(out)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        if let Some(kind) = matches.get_one::<PolicyKind>("policy.kind") {
            self.kind = Some(*kind);
        }
        if let Some(critic) = matches.get_one::<CriticKind>("policy.critic") {
            self.critic = Some(*critic);
        }
        for flag in policy_flags() {
            let id = flag.id();
            let value: Option<serde_json::Value> = match flag.value {
                serde_json::Value::Bool(_) => matches.get_one::<bool>(&id).map(|v| (*v).into()),
                serde_json::Value::Number(_) => {
                    matches.get_one::<usize>(&id).map(|v| (*v as u64).into())
                }
                _ => matches.get_one::<String>(&id).map(|v| v.clone().into()),
            };
            if let Some(value) = value {
                self.fields.insert(flag.name.to_string(), value);
            }
        }
        Ok(())
    }
}

impl Args for PolicyOverrides {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        use clap::Arg;
        let mut cmd = cmd
            .next_help_heading("Policy")
            .arg(
                Arg::new("policy.kind")
                    .long("policy")
                    .value_name("KIND")
                    .value_parser(clap::value_parser!(PolicyKind))
                    .help(
                        "Policy architecture; fields not set in the file take this kind's preset",
                    ),
            )
            .arg(
                Arg::new("policy.critic")
                    .long("critic")
                    .value_parser(clap::value_parser!(CriticKind))
                    .help(
                        "Value function: `shared` (a head on the actor's network) or `separate` \
                         (a second network of the same kind and size; twice the compute)",
                    ),
            );
        for flag in policy_flags() {
            let arg = Arg::new(flag.id())
                .long(flag.name.replace('_', "-"))
                .alias(flag.id())
                .help(flag.help());
            let arg = match flag.value {
                serde_json::Value::Bool(_) => arg
                    .value_name("BOOL")
                    .value_parser(clap::value_parser!(bool)),
                serde_json::Value::Number(_) => arg.value_parser(clap::value_parser!(usize)),
                _ => arg.value_name("NAME"),
            };
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl Serialize for PolicyOverrides {
    /// The given keys of `[policy]`: `kind`, `critic` and the fields.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        if let Some(kind) = &self.kind {
            map.serialize_entry("kind", kind)?;
        }
        if let Some(critic) = &self.critic {
            map.serialize_entry("critic", critic)?;
        }
        for (field, value) in &self.fields {
            map.serialize_entry(field, value)?;
        }
        map.end()
    }
}

/// Overrides of the `[env]` keys (GridMaze's, then CueRecall's, then a Gymnasium env's).
#[derive(Args, Serialize, Clone, Debug, Default, PartialEq)]
#[command(next_help_heading = "Environment")]
pub struct EnvOverrides {
    /// Environment kind; switching kind starts from that env's default settings.
    #[arg(id = "env.kind", long = "env", value_name = "ENV", value_parser = EnvChoiceParser)]
    pub kind: Option<EnvChoice>,
    /// GridMaze: side length in cells, outer walls included (odd, 7..=31).
    #[arg(long = "maze-size")]
    pub size: Option<usize>,
    /// GridMaze: episode length limit in steps (the episode is truncated there).
    #[arg(long)]
    pub horizon: Option<u32>,
    /// GridMaze: view radius r; the agent sees (2r+1)×(2r+1) cells.
    #[arg(long)]
    pub view_radius: Option<usize>,
    /// GridMaze: what happens at the goal.
    #[arg(long = "maze-mode", value_enum)]
    pub mode: Option<MazeMode>,
    /// GridMaze: action set.
    #[arg(long = "maze-actions", value_enum)]
    pub actions: Option<ActionMode>,
    /// GridMaze: give an action mask that forbids moves into walls (the policy never
    /// samples them).
    #[arg(long, value_name = "BOOL")]
    pub mask_walls: Option<bool>,
    /// GridMaze: reward for reaching the goal (≥ 0).
    #[arg(long, allow_negative_numbers = true)]
    pub goal_reward: Option<f32>,
    /// GridMaze: penalty subtracted on every step (≥ 0).
    #[arg(long, allow_negative_numbers = true)]
    pub step_penalty: Option<f32>,
    /// GridMaze: probability of knocking out extra walls (adds loops), in [0, 1].
    #[arg(long, allow_negative_numbers = true)]
    pub loop_density: Option<f32>,
    /// GridMaze: minimum start-to-goal shortest-path distance in moves.
    #[arg(long)]
    pub min_goal_distance: Option<u32>,
    /// GridMaze: append the normalised time t / horizon to the observation.
    #[arg(long, value_name = "BOOL")]
    pub time_feature: Option<bool>,
    /// CueRecall: corridor steps between the cue and the junction (the memory delay).
    #[arg(long)]
    pub corridor_length: Option<u32>,
    /// CueRecall: number of cues and exits (≥ 2).
    #[arg(long)]
    pub num_cues: Option<usize>,
    /// CueRecall: reward for the right exit.
    #[arg(long, allow_negative_numbers = true)]
    pub success_reward: Option<f32>,
    /// CueRecall: reward for a wrong exit (at most the success reward).
    #[arg(long, allow_negative_numbers = true)]
    pub failure_reward: Option<f32>,
    /// CueRecall: extra steps the agent may wait at the junction before truncation.
    #[arg(long)]
    pub junction_patience: Option<u32>,
    /// CueRecall: append the corridor progress to the observation.
    #[arg(long, value_name = "BOOL")]
    pub progress_feature: Option<bool>,
    /// Gymnasium env: keyword arguments of `gymnasium.make` (or of the callable), as a JSON
    /// object, e.g. '{"size": 9}' (recorded as the table `env.kwargs`).
    #[arg(long = "env-kwargs", value_name = "JSON", value_parser = parse_kwargs)]
    #[serde(skip)]
    pub kwargs: Option<Table>,
    /// Gymnasium env: a callable `module:fn` applied to the made env, e.g.
    /// minigrid.wrappers:ImgObsWrapper.
    #[arg(long, value_name = "MODULE:FN")]
    pub wrapper: Option<String>,
}

/// The value parser of `--name`: a label [`check_label`] accepts.
fn parse_label(s: &str) -> Result<String, String> {
    check_label(s).map(|()| s.to_string())
}

/// One override: a dotted key, its value, and the flag it came from (for error messages).
struct Assignment {
    flag: String,
    key: String,
    value: Value,
}

/// The command-line flag of a config key: the flag whose id is the key, else the one named
/// after its last part (`ppo.gamma` → `--gamma`).
fn flag_of(key: &str) -> String {
    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        overrides: Overrides,
    }
    let command = Flags::command();
    let leaf = key.rsplit('.').next().unwrap_or(key);
    let arg = command
        .get_arguments()
        .find(|a| a.get_id().as_str() == key)
        .or_else(|| {
            command
                .get_arguments()
                .find(|a| a.get_id().as_str() == leaf)
        });
    match arg.and_then(|a| a.get_long()) {
        Some(long) => format!("--{long}"),
        None => format!("the flag of `{key}`"),
    }
}

/// `cmd` (the `fbrl train` command) with every override flag's default in its help: the
/// value `TrainConfig::default()` gives its key (the policy keys of the default kind's preset,
/// the env keys of the default env), and the per-env, per-kind learning rate.
pub(crate) fn help_with_defaults(mut cmd: clap::Command) -> clap::Command {
    let Ok(tree) = Table::try_from(TrainConfig::default()) else {
        return cmd;
    };
    let mut defaults = Vec::new();
    leaves(&tree, "", &mut defaults);
    let kind = agents::PolicyConfig::default().kind();
    let env = default_env_kind();
    // The tuned rates on GridMaze, kinds of one rate together: `1e-3 feedback, transformer; …`.
    let mut rates: Vec<(f64, Vec<&str>)> = Vec::new();
    for k in PolicyKind::ALL {
        let lr = crate::config::default_learning_rate("gridmaze", k);
        match rates.iter_mut().find(|(r, _)| *r == lr) {
            Some((_, kinds)) => kinds.push(k.name()),
            None => rates.push((lr, vec![k.name()])),
        }
    }
    let rates: Vec<String> = rates
        .iter()
        .map(|(lr, kinds)| format!("{lr} {}", kinds.join(", ")))
        .collect();
    for (key, value) in defaults {
        let flag = flag_of(&key);
        let Some(long) = flag.strip_prefix("--") else {
            continue;
        };
        let shown = match key.as_str() {
            "ppo.learning_rate" => format!(
                "{} on gridmaze; {} on other envs",
                rates.join("; "),
                crate::config::default_learning_rate("", kind),
            ),
            // A field's help lists every kind's default already (`PolicyFlag::help`).
            k if k.starts_with("policy.") && !matches!(k, "policy.kind" | "policy.critic") => {
                continue;
            }
            k if k.starts_with("env.") && k != "env.kind" => format!("{} ({env})", show(&value)),
            _ => show(&value),
        };
        let id = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long))
            .map(|a| a.get_id().clone());
        if let Some(id) = id {
            cmd = cmd.mut_arg(id, |arg| {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                arg.help(format!("{help} [default: {shown}]"))
            });
        }
    }
    cmd
}

/// A default value as the help shows it.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The leaves of a TOML tree as `(dotted key, value)`, tables walked depth first.
fn leaves(table: &Table, prefix: &str, out: &mut Vec<(String, Value)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Table(t) => leaves(t, &key, out),
            v => out.push((key, v.clone())),
        }
    }
}

/// The integer flags too large for a config file, as `(dotted key, value)`: TOML integers
/// are 64-bit signed.
fn too_large(tree: &serde_json::Value, prefix: &str, out: &mut Vec<(String, u64)>) {
    match tree {
        serde_json::Value::Object(fields) => {
            for (k, v) in fields {
                too_large(v, &format!("{prefix}{k}."), out);
            }
        }
        serde_json::Value::Number(n) if n.as_i64().is_none() => {
            if let Some(u) = n.as_u64() {
                out.push((prefix.trim_end_matches('.').to_string(), u));
            }
        }
        _ => {}
    }
}

impl Overrides {
    /// The typed flags that were given, as `(flag, dotted key, value)`; `env.kind` first, so
    /// that switching env kind happens before that env's keys are set.
    fn assignments(&self) -> Result<Vec<Assignment>> {
        // Flags not given are `None`, which TOML leaves out.
        let table = Table::try_from(self).map_err(|e| self.unrepresentable(e))?;
        let mut out = Vec::new();
        leaves(&table, "", &mut out);
        // The kwargs are one value, a table: `--env-kwargs` replaces the file's.
        if let Some(kwargs) = &self.env.kwargs {
            out.push(("env.kwargs".into(), Value::Table(kwargs.clone())));
        }
        out.sort_by_key(|(key, _)| key != "env.kind");
        Ok(out
            .into_iter()
            .map(|(key, value)| Assignment {
                flag: flag_of(&key),
                key,
                value,
            })
            .collect())
    }

    /// The error of a flag whose value a config file cannot hold (a seed ≥ 2^63, say), naming
    /// the flag: such a value is refused, never silently clamped.
    fn unrepresentable(&self, e: toml::ser::Error) -> anyhow::Error {
        let mut large = Vec::new();
        if let Ok(tree) = serde_json::to_value(self) {
            too_large(&tree, "", &mut large);
        }
        match large.first() {
            Some((key, value)) => anyhow::anyhow!(
                "{} {value} is larger than a config file can hold (at most {} = 2^63 − 1)",
                flag_of(key),
                i64::MAX
            ),
            None => anyhow::anyhow!("cannot write the command-line flags as TOML: {e}"),
        }
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
        let assignments = self.assignments()?;
        // A new env kind starts from that kind's defaults. It is switched before `--set` is
        // applied, so that `--env X --set env.KEY=V` sets KEY of X instead of losing it.
        for a in assignments.iter().filter(|a| a.key == "env.kind") {
            let (kind, id) = split_env_kind(&a.value);
            let env = table_at(tree, "env", &a.flag)?;
            if env.get("kind") != Some(&kind)
                || id.as_ref().is_some_and(|id| env.get("id") != Some(id))
            {
                env.clear();
            }
            set_path(tree, &a.key, kind, &a.flag)?;
            if let Some(id) = id {
                set_path(tree, "env.id", id, &a.flag)?;
            }
        }
        apply_sets(tree, &self.set)?;
        for a in assignments.iter().filter(|a| a.key != "env.kind") {
            set_path(tree, &a.key, a.value.clone(), &a.flag)?;
        }
        // An env table made only by overrides starts from the default env kind.
        if !had_env && let Some(Value::Table(env)) = tree.get_mut("env") {
            env.entry("kind")
                .or_insert_with(|| Value::String(default_env_kind()));
        }
        // The typed learner flags are PPO's keys: another learner would silently ignore them.
        let algorithm = tree
            .get("algorithm")
            .and_then(Value::as_str)
            .unwrap_or("ppo");
        if algorithm != "ppo"
            && let Some(a) = assignments.iter().find(|a| a.key.starts_with("ppo."))
        {
            bail!(
                "{} sets `{}`, but the run's algorithm is {algorithm}: set its keys with \
                 --set {algorithm}.KEY=VALUE",
                a.flag,
                a.key
            );
        }
        check_env_keys(tree, &assignments)
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

/// Env-specific flags must match the env kind, else the error would be a puzzling "unknown
/// field" from the other env's config.
fn check_env_keys(tree: &Table, assignments: &[Assignment]) -> Result<()> {
    let kind = tree
        .get("env")
        .and_then(|e| e.get("kind"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(default_env_kind);
    let owners = EnvConfig::accepted_keys();
    for a in assignments {
        let Some(field) = a.key.strip_prefix("env.") else {
            continue;
        };
        let owning: Vec<&str> = owners
            .iter()
            .filter(|(_, keys)| keys.iter().any(|k| k == field))
            .map(|(kind, _)| *kind)
            .collect();
        let Some(&wants) = owning.first() else {
            continue;
        };
        if !owning.contains(&kind.as_str()) {
            bail!(
                "{} sets `{}`, which belongs to env.kind = \"{wants}\", but the configured env is \"{kind}\" (use --env {})",
                a.flag,
                a.key,
                if wants == "gym" {
                    "gym:ID".to_string()
                } else {
                    wants.replace('_', "-")
                }
            );
        }
    }
    Ok(())
}

/// The `env.kind` of the default config.
fn default_env_kind() -> String {
    Table::try_from(TrainConfig::default())
        .ok()
        .and_then(|t| t.get("env")?.get("kind")?.as_str().map(str::to_string))
        .unwrap_or_else(|| EnvConfig::default().name().to_string())
}

/// Sets `ppo.learning_rate` to the tuned default of the env and policy kind
/// ([`crate::config::default_learning_rate`]) when neither the file nor a flag set it.
fn fill_learning_rate(tree: &mut Table) {
    let kind_at = |section: &str| {
        tree.get(section)
            .and_then(|t| t.get("kind"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    if tree
        .get("ppo")
        .and_then(|p| p.get("learning_rate"))
        .is_some()
    {
        return;
    }
    let env = kind_at("env").unwrap_or_else(default_env_kind);
    let policy = match kind_at("policy") {
        Some(name) => match name.parse::<PolicyKind>() {
            Ok(kind) => kind,
            // An unknown kind is reported when the tree is read.
            Err(_) => return,
        },
        None => agents::PolicyConfig::default().kind(),
    };
    let lr = crate::config::default_learning_rate(&env, policy);
    if let Ok(ppo) = table_at(tree, "ppo", "--learning-rate") {
        ppo.insert("learning_rate".into(), Value::Float(lr));
    }
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
            fill_learning_rate(&mut tree);
            tree_to_config(tree).context("invalid configuration from the command line")?
        }
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            let mut tree: Table = toml::from_str(&text)
                .with_context(|| format!("invalid config file {}", path.display()))?;
            overrides.apply_to_tree(&mut tree)?;
            fill_learning_rate(&mut tree);
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
    use crate::config::GymEnvConfig;

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

    /// [`resolve`] on no file, with flags written `"--flag value"`.
    fn resolve_words(flags: &[&str]) -> Result<TrainConfig> {
        let args: Vec<&str> = flags.iter().flat_map(|f| f.split(' ')).collect();
        resolve("", &args)
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
        let cfg = resolve_words(&[
            "--seed 9",
            "--total-steps 1000",
            "--num-envs 8",
            "--num-steps 16",
            "--checkpoint-every 3",
            "--threads 2",
            "--lr 0.001",
            "--anneal-lr false",
            "--gamma 0.5",
            "--gae-lambda 0.6",
            "--num-minibatches 2",
            "--update-epochs 7",
            "--norm-adv false",
            "--clip-coef 0.3",
            "--clip-vloss false",
            "--ent-coef 0.05",
            "--vf-coef 0.7",
            "--max-grad-norm 1.5",
            "--target-kl 0.02",
            "--adam-eps 1e-6",
            "--policy transformer",
            "--d-model 48",
            "--n-layers 3",
            "--n-heads 6",
            "--d-ff 96",
            "--span 12",
            "--gating true",
            "--maze-size 9",
            "--horizon 100",
            "--view-radius 2",
            "--maze-mode single",
            "--maze-actions egocentric",
            "--goal-reward 2",
            "--step-penalty 0.01",
            "--loop-density 0.1",
            "--min-goal-distance 3",
            "--time-feature true",
        ])
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
        assert_eq!(q.kind(), PolicyKind::Transformer);
        let agents::KindConfig::Transformer(t) = &q.spec else {
            panic!("{q:?}")
        };
        assert_eq!(
            (t.d_model, t.n_layers, t.n_heads, t.d_ff, t.span),
            (48, 3, 6, 96, 12)
        );
        // Each kind's own fields reach them (a field of another kind is ignored).
        assert!(t.gating);
        let q = resolve_words(&["--policy feedback", "--share-kv false"])
            .unwrap()
            .policy;
        assert_eq!(q.get("share_kv"), Some(false.into()));
        let q = resolve_words(&["--policy mlp", "--hidden 40"])
            .unwrap()
            .policy;
        assert_eq!(q.size("hidden"), Some(40));
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
    }

    #[test]
    fn name_sets_the_label_and_a_bad_name_is_refused_naming_the_flag() {
        let cfg = resolve_words(&["--name lr3e-4"]).unwrap();
        assert_eq!(cfg.label.as_deref(), Some("lr3e-4"));
        assert_eq!(resolve_words(&[]).unwrap().label, None);
        assert_eq!(flag_of("label"), "--name");
        for bad in ["", "a/b", "x__y"] {
            let e = Cmd::try_parse_from(["test", "--name", bad])
                .err()
                .unwrap_or_else(|| panic!("--name {bad:?} was accepted"))
                .to_string();
            assert!(e.contains("--name"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn every_cue_recall_flag_reaches_its_field() {
        let cfg = resolve_words(&[
            "--env cue-recall",
            "--corridor-length 12",
            "--num-cues 3",
            "--success-reward 2",
            "--failure-reward -1",
            "--junction-patience 5",
            "--progress-feature true",
        ])
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
    fn env_flags_are_checked_against_every_registered_env() {
        // A key of another built-in env names that env, whichever kind is configured.
        let err = resolve("", &["--env", "pendulum", "--corridor-length", "3"]).unwrap_err();
        let e = err.to_string();
        assert!(
            e.contains("cue_recall")
                && e.contains("\"pendulum\"")
                && e.contains("--env cue-recall"),
            "{e}"
        );
        let err = resolve("", &["--env", "cartpole", "--maze-size", "9"]).unwrap_err();
        assert!(err.to_string().contains("--env gridmaze"), "{err}");
        // A key two envs share is accepted by either.
        let cfg = resolve("", &["--env", "point-cue", "--time-feature", "true"]).unwrap();
        let EnvConfig::PointCue(p) = cfg.env else {
            panic!("{:?}", cfg.env)
        };
        assert!(p.time_feature);
        // Every registered env is a choice of `--env`, by its command-line name.
        for b in EnvConfig::BUILTIN {
            let cfg = resolve("", &["--env", &b.cli_name()]).unwrap();
            assert_eq!(cfg.env, (b.default)());
        }
        let err = parse_env_choice("nope").unwrap_err();
        assert!(err.contains("point-cue") && err.contains("gym:ID"), "{err}");
    }

    #[test]
    fn set_env_keys_survive_an_env_flag() {
        // With and without a file naming another kind, `--set env.*` applies to the `--env` kind.
        for file in ["", "[env]\nkind = \"cue_recall\"\n"] {
            let cfg = resolve(file, &["--env", "gridmaze", "--set", "env.size=9"]).unwrap();
            let EnvConfig::Gridmaze(m) = cfg.env else {
                panic!("{:?}", cfg.env)
            };
            assert_eq!(m.size, 9, "file {file:?}");
            let cfg = resolve(file, &["--set", "env.size=11", "--env", "gridmaze"]).unwrap();
            let EnvConfig::Gridmaze(m) = cfg.env else {
                panic!("{:?}", cfg.env)
            };
            assert_eq!(m.size, 11, "file {file:?}, flags in the other order");
        }
        let cfg = resolve("", &["--env", "pendulum", "--set", "env.max_torque=0.5"]).unwrap();
        let EnvConfig::Pendulum(p) = cfg.env else {
            panic!("{:?}", cfg.env)
        };
        assert_eq!(p.max_torque, 0.5);
        // A key the kind does not have is an error, not silently dropped.
        let err = resolve("", &["--env", "pendulum", "--set", "env.bogus=1"]).unwrap_err();
        assert!(format!("{err:#}").contains("bogus"), "{err:#}");
    }

    #[test]
    fn env_gym_sets_the_id_kwargs_and_wrapper() {
        let cfg = resolve_words(&["--env gym:CartPole-v1"]).unwrap();
        let gym = |id: &str| GymEnvConfig {
            id: id.into(),
            ..GymEnvConfig::default()
        };
        assert_eq!(cfg.env, EnvConfig::Gym(gym("CartPole-v1")));
        let cfg = resolve(
            "",
            &[
                "--env",
                "gym:minigrid:MiniGrid-MemoryS9-v0",
                "--env-kwargs",
                r#"{"agent_view_size": 5, "see_through_walls": true, "name": "x"}"#,
                "--wrapper",
                "minigrid.wrappers:ImgObsWrapper",
            ],
        )
        .unwrap();
        let EnvConfig::Gym(g) = &cfg.env else {
            panic!("{:?}", cfg.env)
        };
        assert_eq!(g.id, "minigrid:MiniGrid-MemoryS9-v0");
        assert_eq!(
            g.wrapper.as_deref(),
            Some("minigrid.wrappers:ImgObsWrapper")
        );
        assert_eq!(g.kwargs["agent_view_size"].as_integer(), Some(5));
        assert_eq!(g.kwargs["see_through_walls"].as_bool(), Some(true));
        assert_eq!(g.kwargs["name"].as_str(), Some("x"));
        // The file's settings stay for the same id, not for another; --env-kwargs replaces the
        // file's table.
        let file = "[env]\nkind = \"gym\"\nid = \"A-v0\"\nkwargs = { x = 1, y = 2 }\n";
        let kwargs = |args: &[&str]| {
            let EnvConfig::Gym(g) = resolve(file, args).unwrap().env else {
                panic!()
            };
            g.kwargs.keys().cloned().collect::<Vec<_>>()
        };
        assert_eq!(kwargs(&["--env", "gym:A-v0"]), ["x", "y"]);
        assert!(kwargs(&["--env", "gym:B-v0"]).is_empty());
        assert_eq!(kwargs(&["--env-kwargs", r#"{"z": 3}"#]), ["z"]);
        // Bad values name the flag and say what is expected.
        for (args, needle) in [
            (&["--env", "gym:"][..], "gym:CartPole-v1"),
            (&["--env", "nope"], "gym:ID"),
            (&["--env-kwargs", "{x"], "not JSON"),
            (&["--env-kwargs", "[1]"], "JSON object"),
            (&["--env-kwargs", r#"{"a": null}"#], "null"),
        ] {
            let e = Cmd::try_parse_from(std::iter::once("test").chain(args.iter().copied()))
                .err()
                .unwrap_or_else(|| panic!("{args:?} was accepted"))
                .to_string();
            assert!(e.contains(needle), "{args:?}: {e}");
        }
        for flags in [["--wrapper", "m:f"], ["--env-kwargs", "{}"]] {
            let e = resolve("", &flags).unwrap_err().to_string();
            assert!(e.contains(flags[0]) && e.contains("--env gym:ID"), "{e}");
        }
        assert!(!parse(&["--env-kwargs", "{}"]).is_empty());
    }

    #[test]
    fn switching_policy_kind_takes_the_preset_for_unset_fields() {
        let file = "[policy]\nkind = \"feedback\"\nd_model = 32\n";
        let cfg = resolve(file, &["--policy", "gru"]).unwrap();
        assert_eq!(cfg.policy.kind(), PolicyKind::Gru);
        assert_eq!(
            cfg.policy.size("d_model"),
            Some(32),
            "an explicit key is kept"
        );
        assert_eq!(
            cfg.policy.size("n_layers"),
            agents::PolicyConfig::preset(PolicyKind::Gru).size("n_layers")
        );
    }

    #[test]
    fn every_field_of_every_kind_has_a_flag_from_the_registry() {
        let help = Cmd::command().render_long_help().to_string();
        for kind in PolicyKind::ALL {
            let preset = agents::PolicyConfig::preset(kind);
            for (field, value) in preset.spec.spec().values() {
                // A value off the default, as the command line writes it.
                let given = match &value {
                    serde_json::Value::Number(n) => (n.as_u64().unwrap() * 2).to_string(),
                    serde_json::Value::Bool(b) => (!b).to_string(),
                    serde_json::Value::String(s) if s == "learned" => "top".into(),
                    serde_json::Value::String(s) if s == "input" => "null".into(),
                    other => panic!("{kind}.{}: add a value for {other}", field.name),
                };
                let flag = format!("--{}", field.name.replace('_', "-"));
                assert!(help.contains(&flag), "--help lacks {flag}");
                // The help gives the doc of the first kind that has the field.
                if kind == PolicyKind::ALL[0] {
                    assert!(
                        help.contains(field.doc.trim()),
                        "--help lacks {}'s doc",
                        field.name
                    );
                }
                assert_eq!(flag_of(&format!("policy.{}", field.name)), flag);
                let long = format!("--policy.{}", field.name);
                for f in [flag.as_str(), long.as_str()] {
                    let cfg = resolve("", &["--policy", kind.name(), f, &given]).unwrap();
                    let got = cfg.policy.get(field.name).unwrap();
                    assert_ne!(got, value, "{kind}: {f} {given}");
                    assert_eq!(show_json(&got), given, "{kind}: {f} {given}");
                }
            }
        }
        // The help gives each kind's default; a bad value names the flag.
        assert!(help.contains("1 (gru)"), "{help}");
        let e = Cmd::try_parse_from(["test", "--span", "x"])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("--span"), "{e}");
        let e = resolve("", &["--policy", "feedback", "--memory-mix", "x"]).unwrap_err();
        assert!(format!("{e:#}").contains("memory_mix"), "{e:#}");
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
