//! The settings of gymnasium-rs's CartPole as a built-in env (`kind = "cartpole"`): the env
//! itself is [`crate::GymCartPole`], behind the `gymnasium` cargo feature.

use serde::{Deserialize, Serialize};

use crate::config_check::at_least;
use crate::env::EnvError;

/// Settings of CartPole (`kind = "cartpole"`): reward 1 per step, terminated when the pole
/// falls or the cart leaves the track, truncated at `max_steps`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CartPoleConfig {
    /// Time limit: the episode is truncated after this many steps (`CartPole-v1`: 500).
    pub max_steps: u32,
}

impl Default for CartPoleConfig {
    fn default() -> Self {
        Self { max_steps: 500 }
    }
}

impl CartPoleConfig {
    /// Checks the fields; the error names the field.
    pub fn validate(&self) -> Result<(), EnvError> {
        at_least("max_steps", self.max_steps, 1)
    }

    /// Builds the env (gymnasium-rs's CartPole through [`crate::GymnasiumEnv`]).
    #[cfg(feature = "gymnasium")]
    pub fn build(&self) -> Result<crate::GymCartPole, EnvError> {
        self.validate()?;
        crate::GymCartPole::cartpole().with_time_limit(self.max_steps)
    }

    /// Builds the env: this build lacks the `gymnasium` feature, so it cannot.
    #[cfg(not(feature = "gymnasium"))]
    pub fn build(&self) -> Result<crate::GridMaze, EnvError> {
        Err(EnvError::InvalidConfig {
            field: "kind",
            reason: "is \"cartpole\", which needs fbrl built with the `gymnasium` feature".into(),
        })
    }
}
