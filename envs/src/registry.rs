//! The registry of built-in envs: [`crate::EnvConfig`], the `[env]` table of a run, tagged by
//! `kind`.
//!
//! A built-in env is declared once: its config type sits next to the env (its defaults are
//! its `Default`, its keys its serde fields, its checks its `validate`), and one entry of the
//! `builtin_envs!` list in `lib.rs` registers it under its `kind` with how to build it.
//! Everything else reads the registry: [`crate::EnvConfig`]'s variants, its `name`,
//! `validate` and `build`, the list [`crate::EnvConfig::BUILTIN`] (the `fbrl` command line's
//! `--env` choices and their help) and the keys each kind accepts
//! ([`crate::EnvConfig::accepted_keys`]).
//!
//! Besides the built-in envs, two kinds are not built from this crate's envs:
//! `kind = "gym"` ([`GymEnvConfig`], a Gymnasium env in the embedded Python) and
//! `kind = "custom"` ([`CustomEnvConfig`], the record of an env built by user code).

use serde::{Deserialize, Serialize};

use crate::EnvConfig;
use crate::env::{Env, EnvError};

/// A built env as the boxed [`Env`] the registry hands out.
pub fn boxed<E: Env + 'static>(env: Result<E, EnvError>) -> Result<Box<dyn Env>, EnvError> {
    Ok(Box::new(env?))
}

/// One registered built-in env (an entry of [`EnvConfig::BUILTIN`]).
#[derive(Clone, Copy, Debug)]
pub struct BuiltinEnv {
    /// The `kind` tag of its `[env]` table, e.g. `cue_recall`.
    pub kind: &'static str,
    /// A one-line description (the doc comment of its registration).
    pub about: &'static str,
    /// Its config with every field at its default.
    pub default: fn() -> EnvConfig,
}

impl BuiltinEnv {
    /// The name the command line gives it: its kind with `-` for `_` (`cue-recall`).
    pub fn cli_name(&self) -> String {
        self.kind.replace('_', "-")
    }

    /// The keys its `[env]` table accepts besides `kind`.
    pub fn keys(&self) -> Vec<String> {
        table_keys(&(self.default)())
    }

    /// The registered built-in env of `kind` (as in TOML, `cue_recall`, or as on the command
    /// line, `cue-recall`; case-insensitive).
    pub fn find(kind: &str) -> Option<&'static BuiltinEnv> {
        let kind = kind.to_ascii_lowercase().replace('-', "_");
        EnvConfig::BUILTIN.iter().find(|b| b.kind == kind)
    }
}

/// The keys of `env`'s TOML table besides `kind`.
fn table_keys(env: &EnvConfig) -> Vec<String> {
    toml::Table::try_from(env)
        .map(|t| t.keys().filter(|k| *k != "kind").cloned().collect())
        .unwrap_or_default()
}

/// Declares [`EnvConfig`] from the list of built-in envs, one entry each:
/// `/// doc` `"kind" => Variant(ConfigType) = |config| build expression,` where `ConfigType`
/// has `Default`, serde's traits, `Clone`, `Debug`, `PartialEq` and
/// `fn validate(&self) -> Result<(), EnvError>`, and the build expression makes a
/// `Result<impl Env, EnvError>` from `config: &ConfigType`.
macro_rules! builtin_envs {
    ($(
        $(#[doc = $doc:literal])*
        $kind:literal => $variant:ident($config:ty) = |$c:ident| $build:expr,
    )*) => {
        /// The environment of a run, tagged by `kind` in TOML:
        ///
        /// ```toml
        /// [env]
        /// kind = "gridmaze"
        /// size = 9
        /// mode = "multi"
        /// ```
        ///
        /// The built-in kinds are registered in one list (see [`crate::registry`]). An env of
        /// your own, trained with `fbrl::train` and your env factory, is recorded as
        /// `kind = "custom"` with its name (and any settings you want kept with the run):
        ///
        /// ```toml
        /// [env]
        /// kind = "custom"
        /// name = "remember_the_light"
        /// params = { delay = 4 }
        /// ```
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "kind")]
        pub enum EnvConfig {
            $(
                $(#[doc = $doc])*
                #[serde(rename = $kind)]
                $variant($config),
            )*
            /// An env built by the program that trains it (`kind = "custom"`).
            #[serde(rename = "custom")]
            Custom($crate::registry::CustomEnvConfig),
            /// A Gymnasium env in the embedded Python (`kind = "gym"`; needs the `python`
            /// cargo feature).
            #[serde(rename = "gym")]
            Gym($crate::registry::GymEnvConfig),
        }

        impl EnvConfig {
            /// The built-in envs, in the order they are registered.
            pub const BUILTIN: &'static [$crate::registry::BuiltinEnv] = &[
                $(
                    $crate::registry::BuiltinEnv {
                        kind: $kind,
                        about: concat!($($doc),*),
                        default: || EnvConfig::$variant(<$config as Default>::default()),
                    },
                )*
            ];

            /// A built-in env's kind; `None` for `custom` and `gym`.
            fn builtin_kind(&self) -> Option<&'static str> {
                match self {
                    $( EnvConfig::$variant(_) => Some($kind), )*
                    EnvConfig::Custom(_) | EnvConfig::Gym(_) => None,
                }
            }

            /// Checks a built-in env's fields; `None` for `custom` and `gym`.
            fn validate_builtin(&self) -> Option<Result<(), $crate::EnvError>> {
                match self {
                    $( EnvConfig::$variant(c) => Some(c.validate()), )*
                    EnvConfig::Custom(_) | EnvConfig::Gym(_) => None,
                }
            }

            /// Builds a built-in env; `None` for `custom` and `gym`.
            fn build_builtin(&self) -> Option<Result<Box<dyn $crate::Env>, $crate::EnvError>> {
                match self {
                    $( EnvConfig::$variant($c) => Some($crate::registry::boxed($build)), )*
                    EnvConfig::Custom(_) | EnvConfig::Gym(_) => None,
                }
            }
        }

        $(
            impl From<$config> for EnvConfig {
                fn from(c: $config) -> Self {
                    EnvConfig::$variant(c)
                }
            }
        )*
    };
}
pub(crate) use builtin_envs;

impl Default for EnvConfig {
    /// The first registered built-in env with its defaults.
    fn default() -> Self {
        (EnvConfig::BUILTIN[0].default)()
    }
}

impl EnvConfig {
    /// A custom env that takes its name from its own [`Env::name`] (read from env 0 when
    /// training starts), without recorded settings: the name is given once, in the env.
    pub fn custom_env() -> Self {
        Self::custom("")
    }

    /// A custom env named `name`, without recorded settings.
    pub fn custom(name: impl Into<String>) -> Self {
        EnvConfig::Custom(CustomEnvConfig {
            name: name.into(),
            params: toml::Table::new(),
        })
    }

    /// Short name used in run directory names: a built-in env's kind (`gridmaze`,
    /// `cue_recall`), a custom env's name or a Gymnasium env's ([`GymEnvConfig::name`]).
    pub fn name(&self) -> &str {
        match (self.builtin_kind(), self) {
            (Some(kind), _) => kind,
            (None, EnvConfig::Gym(c)) => c.name(),
            (None, EnvConfig::Custom(c)) => &c.name,
            (None, _) => unreachable!("every other kind is built in"),
        }
    }

    /// Checks the env's own fields; the error names the field.
    pub fn validate(&self) -> Result<(), EnvError> {
        match (self.validate_builtin(), self) {
            (Some(checked), _) => checked,
            (None, EnvConfig::Gym(c)) => c.validate(),
            (None, EnvConfig::Custom(c)) => c.validate(),
            (None, _) => unreachable!("every other kind is built in"),
        }
    }

    /// Builds one env of the configured kind. A custom env cannot be built from its record:
    /// the error says so and names the env.
    pub fn build(&self) -> Result<Box<dyn Env>, EnvError> {
        match (self.build_builtin(), self) {
            (Some(built), _) => built,
            (None, EnvConfig::Gym(c)) => boxed(c.build()),
            (None, EnvConfig::Custom(c)) => Err(c.not_buildable()),
            (None, _) => unreachable!("every other kind is built in"),
        }
    }

    /// Builds one env for drawing frames (`fbrl render`): as [`EnvConfig::build`], except
    /// that a Gymnasium env is made with `render_mode="rgb_array"` (and refused when it does
    /// not draw such frames).
    pub fn build_for_render(&self) -> Result<Box<dyn Env>, EnvError> {
        match self {
            EnvConfig::Gym(c) => boxed(c.build_for_render()),
            other => other.build(),
        }
    }

    /// Every `kind` an `[env]` table may name, with the keys it accepts besides `kind`: the
    /// built-in envs in their order, then `gym` and `custom`.
    pub fn accepted_keys() -> Vec<(&'static str, Vec<String>)> {
        let gym = EnvConfig::Gym(GymEnvConfig {
            wrapper: Some(String::new()),
            kwargs: toml::Table::from_iter([("kwarg".to_string(), toml::Value::Integer(0))]),
            ..GymEnvConfig::default()
        });
        let custom = EnvConfig::Custom(CustomEnvConfig {
            name: String::new(),
            params: toml::Table::from_iter([("param".to_string(), toml::Value::Integer(0))]),
        });
        EnvConfig::BUILTIN
            .iter()
            .map(|b| (b.kind, b.keys()))
            .chain([("gym", table_keys(&gym)), ("custom", table_keys(&custom))])
            .collect()
    }
}

/// A Gymnasium env run in the embedded Python (`kind = "gym"`, `fbrl train --env gym:ID`;
/// needs fbrl built with the `python` cargo feature; see `envs::python` for the spaces, seeds
/// and errors):
///
/// ```toml
/// [env]
/// kind = "gym"
/// id = "MiniGrid-MemoryS9-v0"
/// wrapper = "minigrid.wrappers:ImgObsWrapper"
/// kwargs = { agent_view_size = 5 }
/// ```
///
/// A resumed run restarts the episodes in progress at its checkpoint (a Python env's state
/// cannot be saved).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GymEnvConfig {
    /// The env: a Gymnasium id for `gymnasium.make` (`CartPole-v1`), or `module:name` of a
    /// callable in an importable module that makes it (`my_envs:make`).
    pub id: String,
    /// A callable `module:fn` applied to the made env (e.g.
    /// `minigrid.wrappers:ImgObsWrapper`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapper: Option<String>,
    /// Keyword arguments of `gymnasium.make` or of the callable.
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub kwargs: toml::Table,
}

impl GymEnvConfig {
    /// The name runs of this env are called by: the id without its namespace (`ALE/Pong-v5`
    /// → `Pong-v5`, `my_pkg:Maze-v0` → `Maze-v0`); for a callable `module:name`, the module's
    /// last part (`my_pkg.envs:make` → `envs`).
    pub fn name(&self) -> &str {
        let id = self.id.rsplit('/').next().unwrap_or(&self.id);
        match id.split_once(':') {
            Some((module, name)) if is_identifier(name) => {
                module.rsplit('.').next().unwrap_or(module)
            }
            Some((_, name)) => name,
            None => id,
        }
    }

    /// Checks the id (its [`GymEnvConfig::name`] names run directories) and the wrapper's
    /// form; the error names the field.
    pub fn validate(&self) -> Result<(), EnvError> {
        let name = self.name();
        if !is_run_name(name) {
            return Err(EnvError::InvalidConfig {
                field: "id",
                reason: format!(
                    "{:?} is not an env id fbrl can name runs by: a Gymnasium id \
                     ([namespace/]Name-vN) or `module:name` of a callable, whose name part is \
                     letters, digits, `_`, `-` and `.`",
                    self.id
                ),
            });
        }
        if let Some(w) = &self.wrapper
            && !matches!(w.split_once(':'), Some((m, f)) if !m.is_empty() && !f.is_empty())
        {
            return Err(EnvError::InvalidConfig {
                field: "wrapper",
                reason: format!(
                    "must be `module:fn`, e.g. minigrid.wrappers:ImgObsWrapper, got {w:?}"
                ),
            });
        }
        Ok(())
    }

    /// The env to make, with the keyword arguments as JSON.
    #[cfg(feature = "python")]
    fn spec(&self) -> Result<crate::PyEnvSpec, EnvError> {
        self.validate()?;
        let kwargs = match serde_json::to_value(&self.kwargs) {
            Ok(serde_json::Value::Object(map)) => map,
            other => {
                return Err(EnvError::InvalidConfig {
                    field: "kwargs",
                    reason: format!("cannot be passed to Python: {other:?}"),
                });
            }
        };
        Ok(crate::PyEnvSpec {
            id: self.id.clone(),
            kwargs,
            wrapper: self.wrapper.clone(),
            render: false,
        })
    }

    /// Makes the env in the embedded Python.
    #[cfg(feature = "python")]
    pub fn build(&self) -> Result<crate::PyGymEnv, EnvError> {
        crate::PyGymEnv::new(&self.spec()?)
    }

    /// Makes the env with `render_mode="rgb_array"`, for drawing frames; an env that does not
    /// draw such frames is refused.
    #[cfg(feature = "python")]
    pub fn build_for_render(&self) -> Result<crate::PyGymEnv, EnvError> {
        let mut spec = self.spec()?;
        spec.render = true;
        crate::PyGymEnv::new(&spec)
    }

    /// Makes the env: this build lacks the `python` feature, so it cannot.
    #[cfg(not(feature = "python"))]
    pub fn build(&self) -> Result<crate::GridMaze, EnvError> {
        Err(EnvError::InvalidConfig {
            field: "kind",
            reason: format!(
                "is \"gym\" (env {:?}), which needs fbrl built with the `python` feature: \
                 cargo build --release --features python",
                self.id
            ),
        })
    }

    /// Makes the env for drawing frames: this build lacks the `python` feature, so it cannot.
    #[cfg(not(feature = "python"))]
    pub fn build_for_render(&self) -> Result<crate::GridMaze, EnvError> {
        self.build()
    }
}

/// Whether `s` is a Python identifier of ASCII letters, digits and `_` (a callable's name,
/// unlike a Gymnasium env name such as `Maze-v0`).
fn is_identifier(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `s` can name run directories: non-empty letters, digits, `_`, `-` and `.`, not
/// starting with `.`.
fn is_run_name(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
    !s.is_empty() && s.chars().all(ok) && !s.starts_with('.')
}

/// The record of an env built by user code (see [`EnvConfig::Custom`]). It cannot be built
/// from the config: `fbrl train`, `fbrl eval` and `fbrl render` refuse such runs with an
/// error that says so; the program that trained the run resumes and evaluates it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomEnvConfig {
    /// Name of the env, used in run directory names: letters, digits, `_`, `-` and `.`.
    /// Empty: the trainer takes the env's own [`Env::name`] (so the name is given once).
    pub name: String,
    /// Free-form settings of the env, kept in the run's `config.toml`.
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub params: toml::Table,
}

impl CustomEnvConfig {
    /// Checks the name (it names run directories); the error names the field.
    pub fn validate(&self) -> Result<(), EnvError> {
        if !is_run_name(&self.name) {
            return Err(EnvError::InvalidConfig {
                field: "name",
                reason: format!(
                    "must be a non-empty name of letters, digits, `_`, `-` and `.` (not \
                     starting with `.`; it names run directories), got {:?}",
                    self.name
                ),
            });
        }
        Ok(())
    }

    /// The error for building this env from its record, which only its own program can do
    /// (naming the field `kind`).
    pub fn not_buildable(&self) -> EnvError {
        EnvError::InvalidConfig {
            field: "kind",
            reason: format!(
                "is \"custom\" (env {:?}): a custom env is built by the program that trained \
                 the run (`fbrl::train` with its env factory), not from the config; train, \
                 resume, evaluate or render it from that program",
                self.name
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_env_builds_from_its_defaults_and_names_itself_by_kind() {
        for b in EnvConfig::BUILTIN {
            let cfg = (b.default)();
            assert_eq!(cfg.name(), b.kind);
            assert!(!b.about.trim().is_empty(), "{} has no description", b.kind);
            cfg.validate().unwrap();
            #[cfg(feature = "gymnasium")]
            cfg.build().unwrap();
            assert_eq!(BuiltinEnv::find(&b.cli_name()).unwrap().kind, b.kind);
        }
        assert!(BuiltinEnv::find("custom").is_none() && BuiltinEnv::find("gym").is_none());
        let keys = EnvConfig::accepted_keys();
        let of = |kind: &str| &keys.iter().find(|(k, _)| *k == kind).unwrap().1;
        assert!(of("gridmaze").contains(&"size".to_string()));
        assert!(of("cue_recall").contains(&"corridor_length".to_string()));
        let sorted = |kind: &str| {
            let mut keys = of(kind).clone();
            keys.sort();
            keys
        };
        assert_eq!(sorted("gym"), ["id", "kwargs", "wrapper"]);
        assert_eq!(sorted("custom"), ["name", "params"]);
    }

    #[test]
    fn a_custom_env_is_checked_and_not_built() {
        let e = EnvConfig::custom("a b").validate().unwrap_err().to_string();
        assert!(e.contains("`name`"), "{e}");
        let e = EnvConfig::custom("coin").build().err().unwrap().to_string();
        assert!(e.contains("\"custom\"") && e.contains("\"coin\""), "{e}");
    }
}
