//! Action distributions: what a policy's output means for each action space.
//!
//! A policy's actor head produces one row of *distribution parameters* per step,
//! [`ActionDist::param_width`] values wide:
//!
//! | env action space | distribution | parameters | action values |
//! |---|---|---|---|
//! | `Discrete(n)` | categorical | `n` logits | 1 (the index) |
//! | `MultiDiscrete(nvec)` | one categorical per dimension, independent | `Σ nvec` logits, dimension after dimension | `nvec.len()` |
//! | `Box(low, high)` of `d` values | diagonal Gaussian | `d` means, then `d` log-stds | `d` |
//!
//! The Gaussian's log-std is a learned parameter that does not depend on the state (CleanRL's
//! `actor_logstd`, initialised to 0); the policy appends it to the head's means. A sample is
//! clipped to the bounds only when it is sent to the env ([`ActionDist::env_action`]); the
//! log-probability is that of the unclipped sample, which is what the rollout stores.
//!
//! Action masks (discrete spaces): a forbidden action's logit is replaced by
//! [`MASKED_LOGIT`] before the log-softmax. Its probability is then exactly 0 in `f32`
//! (so it is never sampled and adds nothing to the entropy), its log-probability ≈ −10⁹ —
//! −∞ in effect, without the `0 · ∞` NaN a literal −∞ gives in the entropy `Σ p log p`.
//! The same masks are applied when sampling, in the PPO log-probability and in the entropy.
//!
//! Multi-discrete log-probabilities and entropies are the sums over the dimensions.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use envs::ActionSpace;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// The logit a masked (forbidden) action gets: `exp` of it minus any log-sum-exp is exactly
/// 0 in `f32`.
pub const MASKED_LOGIT: f32 = -1.0e9;

/// `0.5 · ln(2π)`.
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_7;

/// The distribution a policy's actor head parameterises, derived from the env's action space
/// ([`ActionDist::from_space`]). Saved in policy files and checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionDist {
    /// One categorical over `n` actions.
    Categorical {
        /// Number of actions.
        n: usize,
    },
    /// Independent categoricals, dimension `k` over `nvec[k]` values.
    MultiCategorical {
        /// Number of values of each dimension.
        nvec: Vec<usize>,
    },
    /// A diagonal Gaussian over `low.len()` reals, clipped to `[low, high]` for the env.
    Gaussian {
        /// Lower bounds of the env's `Box` action space.
        low: Vec<f32>,
        /// Upper bounds of the env's `Box` action space.
        high: Vec<f32>,
    },
}

impl ActionDist {
    /// The distribution for an env's action space.
    pub fn from_space(space: &ActionSpace) -> Self {
        match space {
            ActionSpace::Discrete(d) => ActionDist::Categorical { n: d.n },
            ActionSpace::MultiDiscrete(m) => ActionDist::MultiCategorical {
                nvec: m.nvec.clone(),
            },
            ActionSpace::Box(b) => ActionDist::Gaussian {
                low: b.low.clone(),
                high: b.high.clone(),
            },
        }
    }

    /// A short description, e.g. `categorical(4)`, `multi-categorical([4, 2])`, `gaussian(1)`.
    pub fn describe(&self) -> String {
        match self {
            ActionDist::Categorical { n } => format!("categorical({n})"),
            ActionDist::MultiCategorical { nvec } => format!("multi-categorical({nvec:?})"),
            ActionDist::Gaussian { low, .. } => format!("gaussian({})", low.len()),
        }
    }

    /// Width of the actor head's output layer: logits, or the Gaussian's means.
    pub fn head_width(&self) -> usize {
        match self {
            ActionDist::Categorical { n } => *n,
            ActionDist::MultiCategorical { nvec } => nvec.iter().sum(),
            ActionDist::Gaussian { low, .. } => low.len(),
        }
    }

    /// Width of a policy step's distribution parameters: the head's output, plus the
    /// log-stds for a Gaussian.
    pub fn param_width(&self) -> usize {
        match self {
            ActionDist::Gaussian { low, .. } => 2 * low.len(),
            _ => self.head_width(),
        }
    }

    /// Number of values in one action.
    pub fn action_width(&self) -> usize {
        match self {
            ActionDist::Categorical { .. } => 1,
            ActionDist::MultiCategorical { nvec } => nvec.len(),
            ActionDist::Gaussian { low, .. } => low.len(),
        }
    }

    /// Length of an action mask (`None`: continuous actions are not masked).
    pub fn mask_width(&self) -> Option<usize> {
        match self {
            ActionDist::Gaussian { .. } => None,
            _ => Some(self.head_width()),
        }
    }

    /// Dimension `d` of the Gaussian (`None` for the discrete distributions).
    pub fn gaussian_dim(&self) -> Option<usize> {
        match self {
            ActionDist::Gaussian { low, .. } => Some(low.len()),
            _ => None,
        }
    }

    /// The logit ranges of the categorical dimensions (empty for a Gaussian).
    fn segments(&self) -> Vec<(usize, usize)> {
        match self {
            ActionDist::Categorical { n } => vec![(0, *n)],
            ActionDist::MultiCategorical { nvec } => {
                let mut start = 0;
                nvec.iter()
                    .map(|&n| {
                        start += n;
                        (start - n, n)
                    })
                    .collect()
            }
            ActionDist::Gaussian { .. } => vec![],
        }
    }

    /// Checks the distribution itself: at least one action per dimension, bounds that are
    /// not NaN with `low <= high` (infinite bounds: unclipped).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            ActionDist::Categorical { n: 0 } => Err("categorical over 0 actions".into()),
            ActionDist::MultiCategorical { nvec } if nvec.is_empty() || nvec.contains(&0) => Err(
                format!("multi-categorical over {nvec:?}: every dimension needs a value"),
            ),
            ActionDist::Gaussian { low, high } => {
                if low.is_empty() || low.len() != high.len() {
                    return Err(format!(
                        "gaussian with {} lower and {} upper bounds",
                        low.len(),
                        high.len()
                    ));
                }
                match low.iter().zip(high).position(|(&l, &h)| {
                    l.is_nan()
                        || h.is_nan()
                        || l > h
                        || l == f32::INFINITY
                        || h == f32::NEG_INFINITY
                }) {
                    Some(i) => Err(format!(
                        "gaussian bounds of element {i} are [{}, {}]",
                        low[i], high[i]
                    )),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// The rows the host samples from, `[N, param_width]`: per categorical dimension the
    /// log-probabilities (masked logits set to [`MASKED_LOGIT`] first); a Gaussian's
    /// parameters unchanged.
    ///
    /// # Shapes
    /// - `params`: `[N, param_width]`
    /// - `mask`: `[N, mask_width]`, `true` = allowed
    pub fn sampling_table(&self, params: Tensor<2>, mask: Option<Tensor<2, Bool>>) -> Tensor<2> {
        let params = match mask {
            Some(mask) if self.mask_width().is_some() => {
                params.mask_fill(mask.bool_not(), MASKED_LOGIT)
            }
            _ => params,
        };
        match self {
            ActionDist::Categorical { .. } => log_softmax(params, 1),
            ActionDist::MultiCategorical { .. } => Tensor::cat(
                self.segments()
                    .into_iter()
                    .map(|(start, n)| log_softmax(params.clone().narrow(1, start, n), 1))
                    .collect(),
                1,
            ),
            ActionDist::Gaussian { .. } => params,
        }
    }

    /// Samples one action from a row of [`ActionDist::sampling_table`], appends its
    /// [`ActionDist::action_width`] values to `out` (indices as exact `f32` integers, or the
    /// unclipped Gaussian sample) and returns its log-probability.
    pub fn sample_row(&self, row: &[f32], rng: &mut ChaCha8Rng, out: &mut Vec<f32>) -> f32 {
        match self {
            ActionDist::Gaussian { low, .. } => {
                let d = low.len();
                let (mean, log_std) = row.split_at(d);
                let mut logp = 0.0f64;
                for (&m, &ls) in mean.iter().zip(log_std) {
                    let eps: f64 = StandardNormal.sample(rng);
                    let x = (f64::from(m) + f64::from(ls).exp() * eps) as f32;
                    out.push(x);
                    logp += gaussian_logp(x, m, ls);
                }
                logp as f32
            }
            _ => {
                let mut logp = 0.0f32;
                for (start, n) in self.segments() {
                    let seg = &row[start..start + n];
                    let a = sample_categorical(seg, rng.random::<f64>());
                    out.push(a as f32);
                    logp += seg[a];
                }
                logp
            }
        }
    }

    /// The most likely action of a row of [`ActionDist::sampling_table`] (the allowed
    /// action of highest probability per dimension, or the Gaussian's mean), appended to
    /// `out`.
    pub fn mode_row(&self, row: &[f32], out: &mut Vec<f32>) {
        match self {
            ActionDist::Gaussian { low, .. } => out.extend_from_slice(&row[..low.len()]),
            _ => {
                for (start, n) in self.segments() {
                    out.push(argmax(&row[start..start + n]) as f32);
                }
            }
        }
    }

    /// Log-probability of the action `values` (as [`ActionDist::sample_row`] and
    /// [`ActionDist::mode_row`] write them) under a row of [`ActionDist::sampling_table`].
    pub fn log_prob_row(&self, row: &[f32], values: &[f32]) -> f32 {
        match self {
            ActionDist::Gaussian { low, .. } => {
                let (mean, log_std) = row.split_at(low.len());
                values
                    .iter()
                    .zip(mean.iter().zip(log_std))
                    .map(|(&x, (&m, &ls))| gaussian_logp(x, m, ls))
                    .sum::<f64>() as f32
            }
            _ => self
                .segments()
                .into_iter()
                .zip(values)
                .map(|((start, _), &a)| row[start + a as usize])
                .sum(),
        }
    }

    /// The action the env receives for the sampled `values` (one action, `action_width`
    /// values): indices for the discrete spaces, the sample clipped to `[low, high]` for a
    /// `Box`.
    pub fn env_action(&self, values: &[f32]) -> EnvAction {
        match self {
            ActionDist::Categorical { .. } => EnvAction::Discrete(values[0] as usize),
            ActionDist::MultiCategorical { .. } => {
                EnvAction::MultiDiscrete(values.iter().map(|&v| v as usize).collect())
            }
            ActionDist::Gaussian { low, high } => EnvAction::Continuous(
                values
                    .iter()
                    .zip(low.iter().zip(high))
                    .map(|(&x, (&lo, &hi))| x.clamp(lo, hi))
                    .collect(),
            ),
        }
    }

    /// Log-probabilities and entropies of `actions` under `params`, differentiable: the PPO
    /// update's. Masked logits get [`MASKED_LOGIT`] (mask `true` = allowed); multi-discrete
    /// values are summed over the dimensions.
    ///
    /// # Shapes
    /// - `params`: `[B, T, param_width]`
    /// - `actions`: `[B, T, action_width]` (indices as `f32` for the discrete spaces)
    /// - `mask`: `[B, T, mask_width]`
    /// - returns `(log_prob [B, T], entropy [B, T])`
    pub fn log_prob_entropy(
        &self,
        params: Tensor<3>,
        actions: Tensor<3>,
        mask: Option<Tensor<3, Bool>>,
    ) -> (Tensor<2>, Tensor<2>) {
        if let ActionDist::Gaussian { low, .. } = self {
            let d = low.len();
            let mean = params.clone().narrow(2, 0, d);
            let log_std = params.narrow(2, d, d);
            let z = (actions - mean) / log_std.clone().exp();
            let logp = (z.square().mul_scalar(-0.5) - log_std.clone()).sub_scalar(HALF_LN_2PI);
            let entropy = log_std.add_scalar(0.5 + HALF_LN_2PI);
            return (
                logp.sum_dim(2).squeeze_dim::<2>(2),
                entropy.sum_dim(2).squeeze_dim::<2>(2),
            );
        }
        let params = match mask {
            Some(mask) => params.mask_fill(mask.bool_not(), MASKED_LOGIT),
            None => params,
        };
        let actions = actions.int();
        let mut total: Option<(Tensor<2>, Tensor<2>)> = None;
        for (k, (start, n)) in self.segments().into_iter().enumerate() {
            let logp_all = log_softmax(params.clone().narrow(2, start, n), 2); // [B, T, n]
            let index = actions.clone().narrow(2, k, 1); // [B, T, 1]
            let logp = logp_all.clone().gather(2, index).squeeze_dim::<2>(2);
            let entropy = logp_all
                .clone()
                .exp()
                .mul(logp_all)
                .sum_dim(2)
                .neg()
                .squeeze_dim::<2>(2);
            total = Some(match total {
                Some((l, e)) => (l + logp, e + entropy),
                None => (logp, entropy),
            });
        }
        total.expect("a categorical distribution has at least one dimension")
    }
}

/// An action for the env, owned (see [`ActionDist::env_action`]).
#[derive(Clone, Debug, PartialEq)]
pub enum EnvAction {
    /// A `Discrete` action.
    Discrete(usize),
    /// A `MultiDiscrete` action.
    MultiDiscrete(Vec<usize>),
    /// A `Box` action, within the bounds.
    Continuous(Vec<f32>),
}

impl EnvAction {
    /// The borrowed action `Env::step` takes.
    pub fn as_action(&self) -> envs::Action<'_> {
        match self {
            EnvAction::Discrete(a) => envs::Action::Discrete(*a),
            EnvAction::MultiDiscrete(a) => envs::Action::MultiDiscrete(a),
            EnvAction::Continuous(x) => envs::Action::Continuous(x),
        }
    }
}

/// Log-density of `x` under `N(mean, exp(log_std)²)`, in `f64`.
pub fn gaussian_logp(x: f32, mean: f32, log_std: f32) -> f64 {
    let z = (f64::from(x) - f64::from(mean)) / f64::from(log_std).exp();
    -0.5 * z * z - f64::from(log_std) - HALF_LN_2PI
}

/// Samples from the categorical distribution with log-probabilities `logp` by inverse CDF
/// with the uniform number `u ∈ [0, 1)`; returns the action (deterministic given `u`). An
/// action of probability 0 (a masked one) is never returned.
pub fn sample_categorical(logp: &[f32], u: f64) -> usize {
    let total: f64 = logp.iter().map(|&l| f64::from(l).exp()).sum();
    let target = u * total;
    let mut cum = 0.0f64;
    for (a, &l) in logp.iter().enumerate() {
        cum += f64::from(l).exp();
        if target < cum {
            return a;
        }
    }
    // Rounding can leave `target` at the very end: pick the last action with mass.
    logp.iter()
        .rposition(|&l| f64::from(l).exp() > 0.0)
        .unwrap_or(0)
}

/// Index of the largest value (the first one on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}
