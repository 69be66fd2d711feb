//! How a policy kind is declared: [`PolicySpec`], implemented by each kind's config next to its
//! network (`feedback.rs`, `transformer.rs`, `gru.rs`, `mlp.rs`), and the two macros that keep
//! the declaration in one place:
//! - [`kind_config!`](crate::kind_config) declares a kind's config struct: its fields with their
//!   defaults and one-line docs (the TOML keys, the command line's `--FIELD` flags and their
//!   help);
//! - [`policy_kinds!`](crate::policy_kinds) registers every kind once (in `lib.rs`): it makes
//!   [`PolicyKind`](crate::PolicyKind), the tagged per-kind config
//!   [`KindConfig`](crate::KindConfig) and the network enum [`PolicyNet`](crate::PolicyNet).
//!
//! A new kind is then its module (the network, its config with `kind_config!` and its
//! `PolicySpec`), one line in the `policy_kinds!` of `lib.rs` next to its `mod`, and its tests;
//! the config files, the command line, the cost and memory estimates and `--help` read the
//! rest from the registry.

use std::fmt;

use burn::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::actor_critic::{ActorCritic, StepOutput};
use crate::memory::Memory;
use crate::policy::PolicyError;

/// One field of a kind's config: its key (in TOML and JSON; `--FIELD` with dashes on the
/// command line) and its one-line doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The key, e.g. `d_model`.
    pub name: &'static str,
    /// What it is, as written in the config struct's doc comment.
    pub doc: &'static str,
}

/// The fields of a kind's config, declared with [`kind_config!`](crate::kind_config) (which
/// also derives what every kind's config is: cloned, compared, defaulted and (de)serialised).
pub trait SpecFields:
    Clone + fmt::Debug + PartialEq + Default + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Every field, in declaration order.
    const FIELDS: &'static [Field];
}

/// What one network of a kind keeps and computes, in `f32` values, for the run's memory
/// estimate (`fbrl train` refuses a run that would not fit before anything is allocated).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryFootprint {
    /// Values of the memory one env carries from step to step (0 for a memoryless kind).
    pub memory_per_env: f64,
    /// Values of activations an update's forward pass keeps per env step for the backward.
    pub activations_per_step: f64,
}

/// The declaration of a policy kind, implemented by its config (a struct declared with
/// [`kind_config!`](crate::kind_config), so `Default` gives the kind's preset): everything the
/// trainer, the command line and the cost tables need to know about the kind.
pub trait PolicySpec: SpecFields {
    /// The network it builds.
    type Net: ActorCritic;

    /// Whether the kind is an attention model (has an attention span and per-step attention
    /// weights to show).
    const ATTENTION: bool = false;

    /// Checks every field; the error names the first bad one.
    fn validate(&self) -> Result<(), PolicyError>;

    /// Approximate number of trainable parameters of one network for `obs_dim` features and
    /// an actor head of `num_actions` outputs, from the sizes alone (nothing is allocated):
    /// close to the built network's count (the memory estimate and size checks use it).
    fn approx_parameters(&self, obs_dim: usize, num_actions: usize) -> f64;

    /// Floating-point operations of one network's forward pass per env step beyond its
    /// matrix products' `2·params` (see [`PolicyConfig::flops_per_step`](crate::PolicyConfig::flops_per_step)):
    /// attention scores and weighted values, projections applied more than once per step.
    fn extra_flops_per_step(&self, chunk: usize, fused: bool) -> f64 {
        let _ = (chunk, fused);
        0.0
    }

    /// What one network keeps per env and per update step (the run's memory estimate).
    fn footprint(&self) -> MemoryFootprint;

    /// Depth of the trunk: its layers, blocks or stacked cells (tables and legends show it).
    fn depth(&self) -> usize;

    /// Relative training cost of one network per env step, 1 for a 2-layer Transformer with
    /// span 16 (one-core training throughput with the fused CPU kernels, results/throughput
    /// and results/memory_maze), so that experiment runners start costly runs first.
    fn relative_cost(&self) -> f64;

    /// This config with its width set from `units` (the unit is the kind's width step: the
    /// number of heads for an attention model, 1 otherwise), for equal-parameter comparisons
    /// ([`PolicyConfig::matched_params`](crate::PolicyConfig::matched_params)).
    fn with_width(&self, units: usize) -> Self;

    /// Builds one network for `obs_dim` features and an actor head of `num_actions` outputs.
    fn build(
        &self,
        obs_dim: usize,
        num_actions: usize,
        device: &Device,
    ) -> Result<Self::Net, PolicyError>;

    /// [`ActorCritic::step`], with each layer's attention weights `[B, H, τ+1]` for a kind
    /// that has them (`None` by default).
    fn step_with_attention(
        net: &Self::Net,
        obs: Tensor<2>,
        starts: Tensor<1>,
        memory: Memory,
    ) -> (StepOutput, Option<Vec<Tensor<3>>>) {
        (net.step(obs, starts, memory), None)
    }
}

/// Parameters of the actor-critic heads on a trunk of width `d`: `num_actions` actor outputs
/// and one value, each with a bias.
pub fn heads_parameters(d: f64, num_actions: usize) -> f64 {
    (d + 1.0) * (num_actions as f64 + 1.0)
}

/// The fields of `spec` as a JSON object.
fn to_object<S: PolicySpec>(spec: &S) -> Map<String, Value> {
    match serde_json::to_value(spec) {
        Ok(Value::Object(map)) => map,
        _ => unreachable!("a kind config serialises to an object of its fields"),
    }
}

/// The value of `field` of `spec`, if the kind has that field.
pub fn get_field<S: PolicySpec>(spec: &S, field: &str) -> Option<Value> {
    to_object(spec).remove(field)
}

/// Sets `field` of `spec` to `value`; an error for a field the kind does not have or a value
/// of the wrong type, naming the field.
pub fn set_field<S: PolicySpec>(
    spec: &mut S,
    kind: &'static str,
    field: &str,
    value: Value,
) -> Result<(), PolicyError> {
    let mut map = to_object(spec);
    if !map.contains_key(field) {
        return Err(PolicyError::UnknownField {
            kind,
            field: field.to_string(),
            expected: names(S::FIELDS),
        });
    }
    map.insert(field.to_string(), value);
    *spec = from_object(map)?;
    Ok(())
}

/// A kind's config from the fields given (the others take the kind's defaults); a value of the
/// wrong type is an error naming its field. The fields must all be the kind's.
pub fn from_object<S: PolicySpec>(map: Map<String, Value>) -> Result<S, PolicyError> {
    serde_json::from_value(Value::Object(map.clone())).map_err(|e| {
        // Name the field: the first that fails on its own.
        let field = map
            .into_iter()
            .find(|(k, v)| {
                let one = Map::from_iter([(k.clone(), v.clone())]);
                serde_json::from_value::<S>(Value::Object(one)).is_err()
            })
            .map_or_else(|| "?".to_string(), |(k, _)| k);
        PolicyError::BadField {
            field,
            message: e.to_string(),
        }
    })
}

/// `d_model, n_layers`-style list of field names.
fn names(fields: &[Field]) -> String {
    fields
        .iter()
        .map(|f| format!("`{}`", f.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Declares a policy kind's config struct: each field with its one-line doc and default,
/// `pub NAME: TYPE = DEFAULT`. Derives what a config needs (serde with unknown fields refused,
/// missing ones defaulted; `Default` from the declared defaults) and implements
/// [`SpecFields`](crate::policy_spec::SpecFields), so the field list, the defaults and the docs
/// are written once.
#[macro_export]
macro_rules! kind_config {
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident {
            $( $(#[doc = $doc:literal])+ pub $field:ident : $ty:ty = $default:expr ),+ $(,)?
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $( $(#[doc = $doc])+ pub $field: $ty, )+
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )+ }
            }
        }

        impl $crate::policy_spec::SpecFields for $name {
            const FIELDS: &'static [$crate::policy_spec::Field] = &[
                $( $crate::policy_spec::Field {
                    name: stringify!($field),
                    doc: concat!($($doc),+),
                }, )+
            ];
        }
    };
}

/// Registers the policy kinds, once each: `Variant = "name": SpecType => NetType`, with the
/// kind's one-line doc. Makes [`PolicyKind`](crate::PolicyKind) (the names in configs and on
/// the command line), [`KindConfig`](crate::KindConfig) (the tagged per-kind config) and
/// [`PolicyNet`](crate::PolicyNet) (one network of any kind), and their dispatch.
#[macro_export]
macro_rules! policy_kinds {
    ( $( $(#[doc = $doc:literal])+ $variant:ident = $name:literal : $spec:ty => $net:ty ),+ $(,)? ) => {
        /// Which architecture a [`Policy`](crate::Policy) is, as written in configs and on the
        /// command line (its lowercase name).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
        pub enum PolicyKind {
            $(
                $(#[doc = $doc])+
                #[serde(rename = $name)]
                #[cfg_attr(feature = "clap", value(name = $name))]
                $variant,
            )+
        }

        impl PolicyKind {
            /// Every kind, in the order of their registration.
            pub const ALL: [PolicyKind; [$(stringify!($variant)),+].len()] =
                [$(PolicyKind::$variant),+];

            /// The lowercase name used in configs, files and on the command line.
            pub fn name(self) -> &'static str {
                match self {
                    $( PolicyKind::$variant => $name, )+
                }
            }

            /// Every field of this kind's config, with its doc.
            pub fn fields(self) -> &'static [$crate::policy_spec::Field] {
                match self {
                    $( PolicyKind::$variant =>
                        <$spec as $crate::policy_spec::SpecFields>::FIELDS, )+
                }
            }

            /// Whether this kind is an attention model (has an attention span).
            pub fn is_attention(self) -> bool {
                match self {
                    $( PolicyKind::$variant =>
                        <$spec as $crate::policy_spec::PolicySpec>::ATTENTION, )+
                }
            }
        }

        /// The architecture-specific part of a [`PolicyConfig`](crate::PolicyConfig): one
        /// config per kind, tagged by its `kind` in files.
        #[derive(Clone, Debug, PartialEq)]
        pub enum KindConfig {
            $( $(#[doc = $doc])+ $variant($spec), )+
        }

        impl KindConfig {
            /// Which kind this is.
            pub fn kind(&self) -> PolicyKind {
                match self {
                    $( KindConfig::$variant(_) => PolicyKind::$variant, )+
                }
            }

            /// The preset of `kind`: every field at its declared default.
            pub fn preset(kind: PolicyKind) -> Self {
                match kind {
                    $( PolicyKind::$variant => KindConfig::$variant(<$spec>::default()), )+
                }
            }

            /// The kind's declaration, for what does not depend on its types.
            pub fn spec(&self) -> &dyn $crate::policy_spec::DynSpec {
                match self {
                    $( KindConfig::$variant(s) => s, )+
                }
            }

            /// The config of `kind` from the given fields (every one the kind's; the others
            /// take their defaults).
            pub fn from_fields(
                kind: PolicyKind,
                fields: serde_json::Map<String, serde_json::Value>,
            ) -> Result<Self, $crate::PolicyError> {
                Ok(match kind {
                    $( PolicyKind::$variant =>
                        KindConfig::$variant($crate::policy_spec::from_object(fields)?), )+
                })
            }

            /// Sets `field` to `value`; an error for a field this kind does not have or a
            /// value of the wrong type.
            pub fn set(
                &mut self,
                field: &str,
                value: serde_json::Value,
            ) -> Result<(), $crate::PolicyError> {
                match self {
                    $( KindConfig::$variant(s) =>
                        $crate::policy_spec::set_field(s, $name, field, value), )+
                }
            }

            /// This config with its width set from `units` (see
            /// [`PolicySpec::with_width`](crate::policy_spec::PolicySpec::with_width)).
            pub fn with_width(&self, units: usize) -> Self {
                match self {
                    $( KindConfig::$variant(s) => KindConfig::$variant(
                        $crate::policy_spec::PolicySpec::with_width(s, units)), )+
                }
            }

            /// Builds one network of this config.
            pub fn build(
                &self,
                obs_dim: usize,
                num_actions: usize,
                device: &$crate::Device,
            ) -> Result<PolicyNet, $crate::PolicyError> {
                Ok(match self {
                    $( KindConfig::$variant(s) => PolicyNet::$variant(
                        $crate::policy_spec::PolicySpec::build(s, obs_dim, num_actions, device)?), )+
                })
            }
        }

        /// One network of any kind: the actor of a [`Policy`](crate::Policy), or its separate
        /// critic.
        #[derive(burn::module::Module, Debug)]
        pub enum PolicyNet {
            $( $(#[doc = $doc])+ $variant($net), )+
        }

        impl PolicyNet {
            /// Which architecture this is.
            pub fn kind(&self) -> PolicyKind {
                match self {
                    $( PolicyNet::$variant(_) => PolicyKind::$variant, )+
                }
            }

            /// The network as an [`ActorCritic`](crate::ActorCritic).
            pub fn inner(&self) -> &dyn $crate::ActorCritic {
                match self {
                    $( PolicyNet::$variant(p) => p, )+
                }
            }

            /// [`ActorCritic::step`](crate::ActorCritic::step) with each layer's attention
            /// weights for an attention kind (`None` for the others).
            pub fn step_with_attention(
                &self,
                obs: burn::prelude::Tensor<2>,
                starts: burn::prelude::Tensor<1>,
                memory: $crate::Memory,
            ) -> ($crate::StepOutput, Option<Vec<burn::prelude::Tensor<3>>>) {
                match self {
                    $( PolicyNet::$variant(p) =>
                        <$spec as $crate::policy_spec::PolicySpec>::step_with_attention(
                            p, obs, starts, memory), )+
                }
            }
        }
    };
}

/// The part of [`PolicySpec`] that does not depend on the kind's types, callable on any
/// kind's config through [`KindConfig::spec`](crate::KindConfig::spec).
pub trait DynSpec {
    /// [`PolicySpec::validate`].
    fn validate(&self) -> Result<(), PolicyError>;
    /// [`PolicySpec::approx_parameters`].
    fn approx_parameters(&self, obs_dim: usize, num_actions: usize) -> f64;
    /// [`PolicySpec::extra_flops_per_step`].
    fn extra_flops_per_step(&self, chunk: usize, fused: bool) -> f64;
    /// [`PolicySpec::footprint`].
    fn footprint(&self) -> MemoryFootprint;
    /// [`PolicySpec::relative_cost`].
    fn relative_cost(&self) -> f64;
    /// [`PolicySpec::depth`].
    fn depth(&self) -> usize;
    /// The config's fields and their values, in declaration order.
    fn values(&self) -> Vec<(Field, Value)>;
}

impl<S: PolicySpec> DynSpec for S {
    fn validate(&self) -> Result<(), PolicyError> {
        PolicySpec::validate(self)
    }
    fn approx_parameters(&self, obs_dim: usize, num_actions: usize) -> f64 {
        PolicySpec::approx_parameters(self, obs_dim, num_actions)
    }
    fn extra_flops_per_step(&self, chunk: usize, fused: bool) -> f64 {
        PolicySpec::extra_flops_per_step(self, chunk, fused)
    }
    fn footprint(&self) -> MemoryFootprint {
        PolicySpec::footprint(self)
    }
    fn relative_cost(&self) -> f64 {
        PolicySpec::relative_cost(self)
    }
    fn depth(&self) -> usize {
        PolicySpec::depth(self)
    }
    fn values(&self) -> Vec<(Field, Value)> {
        let mut map = to_object(self);
        S::FIELDS
            .iter()
            .filter_map(|f| map.remove(f.name).map(|v| (*f, v)))
            .collect()
    }
}
