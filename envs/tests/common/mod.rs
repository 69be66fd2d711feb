//! Shared helpers of the envs' integration tests.
#![allow(dead_code)]

use std::fmt::Debug;

use envs::{Env, EnvError, VecActions, VecEnv};

/// Asserts that `make` refuses each config of `cases` with [`EnvError::InvalidConfig`] naming
/// the field given with it.
pub fn assert_bad_configs<C: Clone + Debug, E: Debug>(
    make: impl Fn(C) -> Result<E, EnvError>,
    cases: impl IntoIterator<Item = (C, &'static str)>,
) {
    for (cfg, field) in cases {
        match make(cfg.clone()) {
            Err(EnvError::InvalidConfig { field: f, reason }) => {
                assert_eq!(f, field, "{cfg:?}: {reason}");
            }
            other => panic!("{cfg:?} gave {other:?}"),
        }
    }
}

/// The error of stepping `venv` with `actions`, as text.
pub fn step_error<E: Env>(venv: &mut VecEnv<E>, actions: VecActions<'_>) -> String {
    venv.step_actions(actions).unwrap_err().to_string()
}

#[cfg(feature = "python")]
pub mod python;
