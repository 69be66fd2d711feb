//! Checks of single config fields, shared by the built-in envs' `validate`: each error is an
//! [`EnvError::InvalidConfig`] that names the field and says what it must be.

use std::fmt::Display;

use crate::env::EnvError;

/// The [`EnvError::InvalidConfig`] of `field`.
pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> EnvError {
    EnvError::InvalidConfig {
        field,
        reason: reason.into(),
    }
}

/// `value` is at least `min`.
pub(crate) fn at_least<T: PartialOrd + Display>(
    field: &'static str,
    value: T,
    min: T,
) -> Result<(), EnvError> {
    if value < min {
        return Err(invalid(
            field,
            format!("must be at least {min}, got {value}"),
        ));
    }
    Ok(())
}

/// `value` is at most `max`.
pub(crate) fn at_most<T: PartialOrd + Display>(
    field: &'static str,
    value: T,
    max: T,
) -> Result<(), EnvError> {
    if value > max {
        return Err(invalid(
            field,
            format!("must be at most {max}, got {value}"),
        ));
    }
    Ok(())
}

/// `value` is in `min..=max`.
pub(crate) fn in_range<T: PartialOrd + Display>(
    field: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<(), EnvError> {
    if value < min || value > max {
        return Err(invalid(
            field,
            format!("must be in {min}..={max}, got {value}"),
        ));
    }
    Ok(())
}

/// `value` is finite and above 0.
pub(crate) fn positive<T: Into<f64> + Display + Copy>(
    field: &'static str,
    value: T,
) -> Result<(), EnvError> {
    finite_sign(field, value, false)
}

/// `value` is finite and not below 0.
pub(crate) fn non_negative<T: Into<f64> + Display + Copy>(
    field: &'static str,
    value: T,
) -> Result<(), EnvError> {
    finite_sign(field, value, true)
}

/// `value` is finite and above 0, or 0 itself with `zero_allowed`.
fn finite_sign<T: Into<f64> + Display + Copy>(
    field: &'static str,
    value: T,
    zero_allowed: bool,
) -> Result<(), EnvError> {
    let v: f64 = value.into();
    let bound = if zero_allowed { "≥" } else { ">" };
    if !(v.is_finite() && (v > 0.0 || zero_allowed && v == 0.0)) {
        return Err(invalid(
            field,
            format!("must be finite and {bound} 0, got {value}"),
        ));
    }
    Ok(())
}

/// `value` is in `[0, 1]` (a probability or a fraction).
pub(crate) fn unit_interval(field: &'static str, value: f32) -> Result<(), EnvError> {
    if !(0.0..=1.0).contains(&value) {
        return Err(invalid(field, format!("must be in [0, 1], got {value}")));
    }
    Ok(())
}

/// The rewards of a task that ends in success or failure: `success_reward` finite,
/// `failure_reward` finite and at most `success_reward`.
pub(crate) fn outcome_rewards(success_reward: f32, failure_reward: f32) -> Result<(), EnvError> {
    if !success_reward.is_finite() {
        return Err(invalid(
            "success_reward",
            format!("must be finite, got {success_reward}"),
        ));
    }
    if !failure_reward.is_finite() || failure_reward > success_reward {
        return Err(invalid(
            "failure_reward",
            format!(
                "must be finite and at most success_reward ({success_reward}), got {failure_reward}"
            ),
        ));
    }
    Ok(())
}
