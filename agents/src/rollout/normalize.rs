//! Running normalisation of rewards and observations, applied in the rollout.
//!
//! # Why reward scaling (and not value-target normalisation)
//! PPO's losses are not scale free: the value loss grows with the square of the returns, and
//! with a shared trunk, global gradient-norm clipping and Adam's shared statistics, a value
//! loss of ~50 per step (CartPole) drowns the policy gradient. [`RewardNormalizer`] divides
//! every reward by a running standard deviation of the *discounted return*, as Gymnasium's
//! `NormalizeReward`, SB3's `VecNormalize(norm_reward = True)` and CleanRL's continuous PPO do.
//! We chose it over PopArt-style value-target normalisation because it works the same for every
//! policy kind without touching its value head (PopArt must rescale the head's weights whenever
//! the statistics move), it is what users of those libraries already know, and it keeps the
//! advantages, the value clipping range and the value loss on one scale. Rewards are not
//! centred (centring would change which behaviour is optimal when episodes have different
//! lengths); the scaled reward is clipped to `±clip`.
//!
//! Episode returns logged in metrics.csv are always the env's own, unscaled rewards.
//!
//! [`ObsNormalizer`] keeps a running mean and variance per observation feature and maps an
//! observation to `clip((obs − mean) / sqrt(var + ε), ±clip)`. It is updated with every batch
//! of observations the rollout sees and frozen at evaluation (`fbrl eval` / `render` read it
//! from the checkpoint).
//!
//! Both are plain host-side state (`f64` statistics) saved in the checkpoint's `state.json`, so
//! a resumed run continues bit for bit.

use serde::{Deserialize, Serialize};

/// ε added to the variance before taking the square root (Gymnasium / SB3: 1e-8).
pub const NORM_EPSILON: f64 = 1e-8;

/// Running mean and variance of a vector-valued stream, merged batch by batch with the
/// parallel-variance formula (Chan et al.; `RunningMeanStd` of OpenAI baselines / SB3).
///
/// Starts at `mean = 0`, `var = 1`, `count = 1e-4` (as baselines), so the first batch almost
/// entirely replaces the prior.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunningMeanStd {
    /// Per-feature mean.
    pub mean: Vec<f64>,
    /// Per-feature (population) variance.
    pub var: Vec<f64>,
    /// Number of samples merged so far (plus the 1e-4 prior).
    pub count: f64,
}

impl RunningMeanStd {
    /// Statistics of `dim` features with the baselines prior.
    pub fn new(dim: usize) -> Self {
        Self {
            mean: vec![0.0; dim],
            var: vec![1.0; dim],
            count: 1e-4,
        }
    }

    /// Number of features.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Merges a batch of `batch.len() / dim` samples laid out row-major `[n, dim]`.
    pub fn update(&mut self, batch: &[f32]) {
        let dim = self.dim();
        if dim == 0 || batch.is_empty() {
            return;
        }
        debug_assert_eq!(batch.len() % dim, 0);
        let n = (batch.len() / dim) as f64;
        for j in 0..dim {
            let column = batch.iter().skip(j).step_by(dim).map(|&x| f64::from(x));
            let batch_mean = column.clone().sum::<f64>() / n;
            let batch_var = column.map(|x| (x - batch_mean).powi(2)).sum::<f64>() / n;
            let delta = batch_mean - self.mean[j];
            let total = self.count + n;
            let m2 =
                self.var[j] * self.count + batch_var * n + delta * delta * self.count * n / total;
            self.mean[j] += delta * n / total;
            self.var[j] = m2 / total;
        }
        self.count += n;
    }

    /// Checks the state read from a checkpoint: `dim` features, finite values, variances and
    /// count ≥ 0. The error says which field is wrong.
    pub fn check(&self, dim: usize) -> Result<(), String> {
        if self.mean.len() != dim || self.var.len() != dim {
            return Err(format!(
                "has {} means and {} variances, expected {dim}",
                self.mean.len(),
                self.var.len()
            ));
        }
        if let Some(j) = self.mean.iter().position(|m| !m.is_finite()) {
            return Err(format!("mean[{j}] is {}", self.mean[j]));
        }
        if let Some(j) = self.var.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(format!(
                "var[{j}] is {} (must be finite and ≥ 0)",
                self.var[j]
            ));
        }
        if !(self.count.is_finite() && self.count > 0.0) {
            return Err(format!("count is {} (must be finite and > 0)", self.count));
        }
        Ok(())
    }
}

/// Scales rewards by a running standard deviation of the discounted return (see the module
/// docs). One discounted-return accumulator per env, reset when its episode ends (terminated
/// or truncated).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RewardNormalizer {
    /// Statistics of the discounted returns (one feature).
    pub return_rms: RunningMeanStd,
    /// Discounted return of each env's current episode so far `[N]`.
    pub returns: Vec<f64>,
    /// Discount γ of the accumulated returns.
    pub gamma: f64,
    /// The scaled reward is clipped to `±clip`.
    pub clip: f64,
}

impl RewardNormalizer {
    /// A normaliser for `num_envs` envs with discount `gamma`, clipping scaled rewards to `±clip`.
    pub fn new(num_envs: usize, gamma: f32, clip: f32) -> Self {
        Self {
            return_rms: RunningMeanStd::new(1),
            returns: vec![0.0; num_envs],
            gamma: f64::from(gamma),
            clip: f64::from(clip),
        }
    }

    /// The current scale: rewards are divided by this.
    pub fn scale(&self) -> f64 {
        (self.return_rms.var[0] + NORM_EPSILON).sqrt()
    }

    /// Normalises one step of rewards of all envs in place: `R_i ← γ·R_i + r_i`, merge the
    /// `R` of all envs into the statistics, `r_i ← clip(r_i / sqrt(var + ε))`, then
    /// `R_i ← 0` where env `i`'s episode ended at this step.
    pub fn normalize(&mut self, rewards: &mut [f32], terminated: &[bool], truncated: &[bool]) {
        debug_assert_eq!(rewards.len(), self.returns.len());
        for (ret, &r) in self.returns.iter_mut().zip(rewards.iter()) {
            *ret = *ret * self.gamma + f64::from(r);
        }
        let batch: Vec<f32> = self.returns.iter().map(|&x| x as f32).collect();
        self.return_rms.update(&batch);
        let scale = self.scale();
        for (i, r) in rewards.iter_mut().enumerate() {
            *r = (f64::from(*r) / scale).clamp(-self.clip, self.clip) as f32;
            if terminated[i] || truncated[i] {
                self.returns[i] = 0.0;
            }
        }
    }

    /// Checks the state read from a checkpoint for `num_envs` envs.
    pub fn check(&self, num_envs: usize) -> Result<(), String> {
        self.return_rms
            .check(1)
            .map_err(|e| format!("return statistics: {e}"))?;
        if self.returns.len() != num_envs {
            return Err(format!(
                "has discounted returns for {} envs, the run has {num_envs}",
                self.returns.len()
            ));
        }
        if let Some(i) = self.returns.iter().position(|r| !r.is_finite()) {
            return Err(format!(
                "discounted return of env {i} is {}",
                self.returns[i]
            ));
        }
        Ok(())
    }
}

/// Normalises observations per feature with running statistics (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObsNormalizer {
    /// Per-feature statistics of every observation seen in training.
    pub rms: RunningMeanStd,
    /// Normalised features are clipped to `±clip`.
    pub clip: f64,
}

impl ObsNormalizer {
    /// A normaliser for observations of `obs_dim` features, clipping to `±clip`.
    pub fn new(obs_dim: usize, clip: f32) -> Self {
        Self {
            rms: RunningMeanStd::new(obs_dim),
            clip: f64::from(clip),
        }
    }

    /// Merges a batch of observations `[n, obs_dim]` into the statistics (training only).
    pub fn update(&mut self, batch: &[f32]) {
        self.rms.update(batch);
    }

    /// The normalised copy of a batch of observations `[n, obs_dim]` (statistics unchanged).
    pub fn normalize(&self, batch: &[f32]) -> Vec<f32> {
        let dim = self.rms.dim();
        let inv_std: Vec<f64> = self
            .rms
            .var
            .iter()
            .map(|v| 1.0 / (v + NORM_EPSILON).sqrt())
            .collect();
        batch
            .iter()
            .enumerate()
            .map(|(k, &x)| {
                let j = k % dim;
                ((f64::from(x) - self.rms.mean[j]) * inv_std[j]).clamp(-self.clip, self.clip) as f32
            })
            .collect()
    }

    /// Checks the state read from a checkpoint for observations of `obs_dim` features.
    pub fn check(&self, obs_dim: usize) -> Result<(), String> {
        self.rms.check(obs_dim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean and population variance of feature `j` of row-major `[n, dim]` data.
    fn column_stats(xs: &[f32], j: usize, dim: usize) -> (f64, f64) {
        let col: Vec<f64> = xs
            .iter()
            .skip(j)
            .step_by(dim)
            .map(|&x| f64::from(x))
            .collect();
        let n = col.len() as f64;
        let mean = col.iter().sum::<f64>() / n;
        (
            mean,
            col.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n,
        )
    }

    #[test]
    fn running_statistics_match_the_whole_stream() {
        let xs: Vec<f32> = (0..60)
            .map(|i| ((i * 37) % 11) as f32 * 0.5 - 2.0)
            .collect();
        let mut rms = RunningMeanStd::new(3);
        for chunk in xs.chunks(9) {
            rms.update(chunk);
        }
        for j in 0..3 {
            let (mean, var) = column_stats(&xs, j, 3);
            // The 1e-4 prior shifts the figures by ~1e-5.
            assert!(
                (rms.mean[j] - mean).abs() < 1e-4,
                "{j}: {} vs {mean}",
                rms.mean[j]
            );
            assert!(
                (rms.var[j] - var).abs() < 1e-3,
                "{j}: {} vs {var}",
                rms.var[j]
            );
        }
        assert!((rms.count - 20.0).abs() < 1e-3);
    }

    /// The reference: the statistics of every discounted return seen so far, recomputed
    /// from scratch, with the baselines prior folded in by the same formula.
    fn merged(prior_count: f64, samples: &[f64]) -> (f64, f64) {
        let n = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let total = prior_count + n;
        let delta = mean; // the prior's mean is 0
        let m2 = prior_count + var * n + delta * delta * prior_count * n / total; // prior var 1
        (delta * n / total, m2 / total)
    }

    #[test]
    fn reward_normalizer_follows_a_hand_computed_sequence() {
        // Two envs, γ = 0.5. Env 0 terminates at step 1, env 1 is truncated at step 2.
        let gamma = 0.5;
        let mut norm = RewardNormalizer::new(2, gamma, 1e9);
        let steps: [([f32; 2], [bool; 2], [bool; 2]); 4] = [
            ([1.0, 2.0], [false, false], [false, false]),
            ([1.0, 0.0], [true, false], [false, false]),
            ([3.0, 4.0], [false, false], [false, true]),
            ([0.0, 1.0], [false, false], [false, false]),
        ];
        // Discounted returns by hand, after each step (before the reset at its end):
        // t0: [1, 2]; t1: [1.5, 1] (env 0 ends → 0); t2: [3, 4.5] (env 1 ends → 0);
        // t3: [1.5, 1].
        let expected_returns = [[1.0, 2.0], [1.5, 1.0], [3.0, 4.5], [1.5, 1.0]];
        let mut seen = Vec::new();
        for (t, (r, term, trunc)) in steps.iter().enumerate() {
            let mut rewards = *r;
            norm.normalize(&mut rewards, term, trunc);
            seen.extend(expected_returns[t]);
            let (mean, var) = merged(1e-4, &seen);
            assert!((norm.return_rms.mean[0] - mean).abs() < 1e-9, "t{t}");
            assert!((norm.return_rms.var[0] - var).abs() < 1e-9, "t{t}");
            let scale = (var + NORM_EPSILON).sqrt();
            for i in 0..2 {
                let want = f64::from(r[i]) / scale;
                assert!((f64::from(rewards[i]) - want).abs() < 1e-5, "t{t} env {i}");
            }
        }
        // After t3 nothing ended: the accumulators hold t3's returns.
        assert_eq!(norm.returns, vec![1.5, 1.0]);
        // An ended episode starts its next return from 0: after t1 env 0 restarted at t2 (3.0).
    }

    #[test]
    fn reward_scaling_is_invariant_to_the_reward_scale() {
        let mut a = RewardNormalizer::new(3, 0.99, 10.0);
        let mut b = RewardNormalizer::new(3, 0.99, 10.0);
        for t in 0..200 {
            let r: Vec<f32> = (0..3).map(|i| ((t * 7 + i * 3) % 5) as f32 * 0.1).collect();
            let done: Vec<bool> = (0..3).map(|i| (t + i) % 17 == 0).collect();
            let no = vec![false; 3];
            let mut ra = r.clone();
            let mut rb: Vec<f32> = r.iter().map(|x| x * 100.0).collect();
            a.normalize(&mut ra, &done, &no);
            b.normalize(&mut rb, &done, &no);
            if t > 20 {
                for (x, y) in ra.iter().zip(&rb) {
                    assert!((x - y).abs() < 1e-3 * x.abs().max(1.0), "t{t}: {x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn scaled_rewards_are_clipped() {
        let mut norm = RewardNormalizer::new(1, 0.99, 2.0);
        // Tiny returns make the scale tiny: a large reward then hits the clip.
        for _ in 0..100 {
            norm.normalize(&mut [1e-4], &[false], &[false]);
        }
        let mut r = [5.0f32];
        norm.normalize(&mut r, &[false], &[false]);
        assert_eq!(r[0], 2.0);
        let mut r = [-5.0f32];
        norm.normalize(&mut r, &[false], &[false]);
        assert_eq!(r[0], -2.0);
    }

    #[test]
    fn observations_are_centred_scaled_and_clipped() {
        let mut norm = ObsNormalizer::new(2, 5.0);
        let batch: Vec<f32> = (0..100)
            .flat_map(|i| [i as f32, 3.0 + 2.0 * (i % 2) as f32])
            .collect();
        norm.update(&batch);
        let out = norm.normalize(&batch);
        for j in 0..2 {
            let (mean, var) = column_stats(&out, j, 2);
            assert!(mean.abs() < 1e-3, "feature {j}: mean {mean}");
            assert!((var - 1.0).abs() < 1e-2, "feature {j}: var {var}");
        }
        let far = norm.normalize(&[1e6, -1e6]);
        assert_eq!(far, vec![5.0, -5.0]);
    }

    #[test]
    fn corrupted_states_are_named() {
        let mut r = RewardNormalizer::new(2, 0.99, 10.0);
        assert!(r.check(2).is_ok());
        assert!(r.check(3).unwrap_err().contains("2 envs"));
        r.return_rms.var[0] = -1.0;
        assert!(r.check(2).unwrap_err().contains("var[0]"));
        let mut o = ObsNormalizer::new(3, 10.0);
        assert!(o.check(4).unwrap_err().contains("expected 4"));
        o.rms.mean[1] = f64::NAN;
        assert!(o.check(3).unwrap_err().contains("mean[1]"));
    }
}
