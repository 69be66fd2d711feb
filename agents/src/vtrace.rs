//! IMPALA's V-trace actor-critic (Espeholt et al. 2018), synchronous, as a [`Learner`].
//!
//! The rollout is collected with the *behaviour* policy μ, which may be `policy_lag` updates
//! older than the learner's policy π (lag 0: the current one, as PPO; a lag lets asynchronous
//! actors reuse this learner later). Each update runs `update_epochs` epochs over
//! `num_minibatches` minibatches of whole env sequences, each recomputed with
//! `forward_sequence` from the memory it started with in the rollout, as PPO does. Per
//! minibatch, with `ρ_t = min(ρ̄, π(a_t|x_t)/μ(a_t|x_t))` and `c_t = λ · min(c̄, π/μ)`
//! ([`vtrace_targets`]):
//!
//! ```text
//! v_s   = V(x_s) + Σ_{t≥s} γ^{t−s} (Π_{s≤i<t} c_i) ρ_t (r_t + γ V(x_{t+1}) − V(x_t))
//! A_s   = ρ_s (r_s + γ v_{s+1} − V(x_s))
//! loss  = −mean(A_s · log π(a_s|x_s)) + baseline_cost · ½ mean((v_s − V(x_s))²)
//!         − entropy_cost · mean(entropy)
//! ```
//!
//! with `V` the learner's current values (no gradient through the targets). Episode ends cut
//! the sums: a termination bootstraps from 0, a truncation from `V(final_obs)` of the rollout
//! (as GAE does here). The value after a sequence's last step is the rollout's estimate.

use std::collections::VecDeque;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::actor_critic::ActorCritic;
use crate::learner::{
    Learner, LearnerError, LearnerSettings, LearnerStats, ReadCheckpointFile, UpdateInput,
    learner_settings, load_policy_weights_from, policy_weights,
};
use crate::policy::Policy;
use crate::rollout::collect::to_host;
use crate::rollout::{
    GaeInputs, RolloutBuffer, SequenceBatch, clip_grad_norm, explained_variance,
    shuffled_minibatches,
};

/// V-trace hyperparameters (the `[vtrace]` section of a training config). Rollout sizes
/// (`num_envs`, `num_steps`) live in the training config, as for PPO.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VtraceConfig {
    /// Adam learning rate (initial value when `anneal_lr` is on).
    pub learning_rate: f64,
    /// Anneal the learning rate linearly from `learning_rate` to 0 over the run.
    pub anneal_lr: bool,
    /// Discount factor γ.
    pub gamma: f32,
    /// λ of the V-trace targets (the trace coefficients are `λ · min(c̄, π/μ)`).
    pub lambda: f32,
    /// ρ̄: truncation of the importance weights in the temporal differences and the policy
    /// gradient.
    pub rho_bar: f32,
    /// c̄: truncation of the importance weights in the traces.
    pub c_bar: f32,
    /// Coefficient of the value (baseline) loss.
    pub baseline_cost: f32,
    /// Coefficient of the entropy bonus (default 0.0006, TorchBeast's IMPALA default; PPO's
    /// 0.01 keeps CartPole's sampled policy from settling at 500).
    pub entropy_cost: f32,
    /// Number of minibatches per epoch; must divide `num_envs × num_steps / seq_len`.
    pub num_minibatches: usize,
    /// Number of epochs over the rollout per update.
    pub update_epochs: usize,
    /// Length of the sequences the update replays (as `ppo.seq_len`); absent: whole rollouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_len: Option<usize>,
    /// The rollout acts with the parameters of `policy_lag` updates ago (0: the current ones).
    pub policy_lag: usize,
    /// Maximum global L2 norm of the gradient.
    pub max_grad_norm: f32,
    /// Adam ε.
    pub adam_eps: f32,
    /// Divide rewards by a running standard deviation of the discounted return.
    pub norm_reward: bool,
    /// Scaled rewards are clipped to `±reward_clip` (with `norm_reward`).
    pub reward_clip: f32,
    /// Normalise observations per feature with a running mean and variance.
    pub norm_obs: bool,
    /// Normalised observations are clipped to `±obs_clip` (with `norm_obs`).
    pub obs_clip: f32,
}

impl Default for VtraceConfig {
    fn default() -> Self {
        Self {
            learning_rate: 2.5e-4,
            anneal_lr: true,
            gamma: 0.99,
            lambda: 0.95,
            rho_bar: 1.0,
            c_bar: 1.0,
            baseline_cost: 0.5,
            entropy_cost: 0.0006,
            num_minibatches: 4,
            update_epochs: 4,
            seq_len: None,
            policy_lag: 0,
            max_grad_norm: 0.5,
            adam_eps: 1e-5,
            norm_reward: true,
            reward_clip: 10.0,
            norm_obs: false,
            obs_clip: 10.0,
        }
    }
}

/// The most updates the acting policy may lag behind.
pub const MAX_POLICY_LAG: usize = 64;

impl VtraceConfig {
    /// Checks every field; the error names the first offending key as `vtrace.<field>`.
    pub fn validate(&self) -> Result<(), LearnerError> {
        let bad =
            |key: &'static str, reason: String| Err(LearnerError::InvalidConfig { key, reason });
        let positive = [
            ("vtrace.rho_bar", self.rho_bar),
            ("vtrace.c_bar", self.c_bar),
            ("vtrace.max_grad_norm", self.max_grad_norm),
            ("vtrace.adam_eps", self.adam_eps),
            ("vtrace.reward_clip", self.reward_clip),
            ("vtrace.obs_clip", self.obs_clip),
        ];
        if !self.learning_rate.is_finite() || self.learning_rate <= 0.0 {
            return bad(
                "vtrace.learning_rate",
                format!("must be > 0, got {}", self.learning_rate),
            );
        }
        for (key, v) in positive {
            if !v.is_finite() || v <= 0.0 {
                return bad(key, format!("must be > 0, got {v}"));
            }
        }
        for (key, v) in [("vtrace.gamma", self.gamma), ("vtrace.lambda", self.lambda)] {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                return bad(key, format!("must be in [0, 1], got {v}"));
            }
        }
        for (key, v) in [
            ("vtrace.baseline_cost", self.baseline_cost),
            ("vtrace.entropy_cost", self.entropy_cost),
        ] {
            if !v.is_finite() || v < 0.0 {
                return bad(key, format!("must be ≥ 0, got {v}"));
            }
        }
        if self.num_minibatches == 0 {
            return bad("vtrace.num_minibatches", "must be at least 1, got 0".into());
        }
        if self.update_epochs == 0 || self.update_epochs > crate::ppo::config::MAX_UPDATE_EPOCHS {
            return bad(
                "vtrace.update_epochs",
                format!(
                    "must be in 1..={}, got {}",
                    crate::ppo::config::MAX_UPDATE_EPOCHS,
                    self.update_epochs
                ),
            );
        }
        if self.seq_len == Some(0) {
            return bad("vtrace.seq_len", "must be at least 1, got 0".into());
        }
        if self.policy_lag > MAX_POLICY_LAG {
            return bad(
                "vtrace.policy_lag",
                format!("must be at most {MAX_POLICY_LAG}, got {}", self.policy_lag),
            );
        }
        Ok(())
    }
}

/// Inputs of [`vtrace_targets`]: the rollout as GAE reads it (time-major `[T, N]`; its `lambda`
/// is V-trace's λ), the log importance weights and the truncation levels.
#[derive(Clone, Copy, Debug)]
pub struct VtraceInputs<'a> {
    /// Rewards, values `V(x_t)`, episode ends, bootstrap values, γ and λ.
    pub rollout: GaeInputs<'a>,
    /// `log π(a_t|x_t) − log μ(a_t|x_t)` `[T, N]`.
    pub log_rhos: &'a [f32],
    /// ρ̄.
    pub rho_bar: f32,
    /// c̄.
    pub c_bar: f32,
}

/// V-trace targets `v_s` and policy-gradient advantages `ρ_s (r_s + γ v_{s+1} − V(x_s))`,
/// both `[T, N]`, computed backwards: `v_s − V(x_s) = δ_s + γ c_s (1 − done_s) (v_{s+1} −
/// V(x_{s+1}))` with `δ_s = ρ_s (r_s + γ V_next − V(x_s))`. `V_next` and `v_{s+1}` are 0 after a
/// termination, `V(final_obs)` after a truncation, and `last_values` after the last step.
/// With `π = μ`, `c̄ = ρ̄ = 1` the targets are the GAE(λ) returns. Sums in `f64`.
pub fn vtrace_targets(v: &VtraceInputs<'_>) -> (Vec<f32>, Vec<f32>) {
    let inp = &v.rollout;
    let (t_len, n) = (inp.num_steps, inp.num_envs);
    let len = t_len * n;
    assert!(
        [
            inp.rewards.len(),
            inp.values.len(),
            v.log_rhos.len(),
            inp.terminated.len(),
            inp.truncated.len(),
            inp.truncation_values.len()
        ]
        .iter()
        .all(|&l| l == len)
            && inp.last_values.len() == n,
        "vtrace_targets: inputs must be [T, N] = [{t_len}, {n}] (last_values [N])"
    );
    let (gamma, lambda) = (f64::from(inp.gamma), f64::from(inp.lambda));
    let mut vs = vec![0.0f32; len];
    let mut pg = vec![0.0f32; len];
    for i in 0..n {
        let mut next_acc = 0.0f64; // v_{t+1} − V(x_{t+1})
        for t in (0..t_len).rev() {
            let k = t * n + i;
            let ratio = f64::from(v.log_rhos[k]).exp();
            let rho = ratio.min(f64::from(v.rho_bar));
            let c = lambda * ratio.min(f64::from(v.c_bar));
            let (next_value, next_vs) = if inp.terminated[k] {
                (0.0, 0.0)
            } else if inp.truncated[k] {
                let v = f64::from(inp.truncation_values[k]);
                (v, v)
            } else if t + 1 == t_len {
                let v = f64::from(inp.last_values[i]);
                (v, v)
            } else {
                let v = f64::from(inp.values[k + n]);
                (v, v + next_acc)
            };
            let done = inp.terminated[k] || inp.truncated[k];
            let (r, value) = (f64::from(inp.rewards[k]), f64::from(inp.values[k]));
            let delta = rho * (r + gamma * next_value - value);
            let acc = delta + if done { 0.0 } else { gamma * c * next_acc };
            vs[k] = (value + acc) as f32;
            pg[k] = (rho * (r + gamma * next_vs - value)) as f32;
            next_acc = acc;
        }
    }
    (vs, pg)
}

/// V-trace's own metrics columns: the approximate KL between the behaviour and the learner's
/// policy, the mean importance weight `π/μ`, and the fraction of weights truncated at ρ̄.
pub const VTRACE_COLUMNS: &[&str] = &["approx_kl", "rho_mean", "rho_clip_frac"];

/// The V-trace actor-critic as a [`Learner`] (see the module docs).
#[derive(Clone, Debug)]
pub struct VtraceLearner {
    /// The hyperparameters.
    pub cfg: VtraceConfig,
    /// The policies of the last `policy_lag` updates, oldest first (the acting one in front).
    lagged: VecDeque<Policy>,
}

impl VtraceLearner {
    /// A learner with the hyperparameters `cfg`.
    pub fn new(cfg: VtraceConfig) -> Self {
        Self {
            cfg,
            lagged: VecDeque::new(),
        }
    }
}

/// The file of a checkpoint holding the lagged policy `j` (0: the oldest).
fn lag_file(j: usize) -> String {
    format!("vtrace_lag_{j}.bpk")
}

/// The value after the last step of each sequence of `units`, from the rollout: `V(x_{t_end})`,
/// or the bootstrap value after the rollout's last step.
fn sequence_last_values(buf: &RolloutBuffer, units: &[usize]) -> Vec<f32> {
    let (n, k_per) = (buf.num_envs, buf.chunks_per_env());
    units
        .iter()
        .map(|&u| {
            let (i, k) = (u / k_per, u % k_per);
            let t_end = (k + 1) * buf.seq_len;
            if t_end >= buf.num_steps {
                buf.last_values[i]
            } else {
                buf.values[t_end * n + i]
            }
        })
        .collect()
}

/// `[B, L]` (batch-major) to `[L, B]` (time-major) and back.
fn transpose<X: Copy>(xs: &[X], rows: usize, cols: usize) -> Vec<X> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| xs[r * cols + c]))
        .collect()
}

/// Running sums of the per-minibatch diagnostics.
#[derive(Default)]
struct Sums {
    policy: f64,
    value: f64,
    entropy: f64,
    kl: f64,
    rho: f64,
    clipped: f64,
    grad_norm: f64,
    count: usize,
}

impl Learner for VtraceLearner {
    fn name(&self) -> &'static str {
        "vtrace"
    }

    fn metric_columns(&self) -> &'static [&'static str] {
        VTRACE_COLUMNS
    }

    fn validate(&self) -> Result<(), LearnerError> {
        self.cfg.validate()
    }

    fn settings(&self) -> LearnerSettings {
        learner_settings!(self.cfg)
    }

    fn acting_policy(&mut self, model: &Policy) -> Policy {
        if self.cfg.policy_lag == 0 {
            return model.valid();
        }
        // At the start of a run the older parameters are the initial ones.
        while self.lagged.len() < self.cfg.policy_lag {
            self.lagged.push_front(model.valid());
        }
        self.lagged[0].clone()
    }

    fn update(
        &mut self,
        mut model: Policy,
        optim: &mut ModuleOptimizer,
        buf: &mut RolloutBuffer,
        input: UpdateInput<'_>,
    ) -> Result<(Policy, LearnerStats), LearnerError> {
        let cfg = self.cfg.clone();
        let UpdateInput {
            lr,
            rng,
            device,
            update,
            should_stop,
        } = input;
        let sequences = buf.num_envs * buf.chunks_per_env();
        if !sequences.is_multiple_of(cfg.num_minibatches) {
            return Err(LearnerError::InvalidConfig {
                key: "vtrace.num_minibatches",
                reason: format!(
                    "must divide the number of sequences per rollout ({sequences}), got {}",
                    cfg.num_minibatches
                ),
            });
        }
        if cfg.policy_lag > 0 {
            self.lagged.push_back(model.valid());
            while self.lagged.len() > cfg.policy_lag {
                self.lagged.pop_front();
            }
        }
        let non_finite = |quantity, value| LearnerError::NonFinite {
            update,
            quantity,
            value,
        };
        let mut order: Vec<usize> = (0..sequences).collect();
        let mut sums = Sums::default();
        let (mut ev_values, mut ev_targets) = (Vec::new(), Vec::new());
        for epoch in 0..cfg.update_epochs {
            for units in shuffled_minibatches(&mut order, rng, cfg.num_minibatches) {
                if should_stop() {
                    return Err(LearnerError::Interrupted { update });
                }
                let (b, l) = (units.len(), buf.seq_len);
                let seq = SequenceBatch::gather(buf, &units, device);
                let old_logp = buf.sequence_major(&buf.logprobs, 1, &units);
                let (params, values) = model.forward_sequence(
                    seq.obs.clone(),
                    seq.starts.clone(),
                    seq.memory0.clone(),
                ); // [B, L, P], [B, L]
                let (new_logp, entropy) =
                    buf.dist
                        .log_prob_entropy(params, seq.actions.clone(), seq.masks.clone()); // [B, L] each
                let new_logp_host = to_host(new_logp.clone().detach())?;
                let values_host = to_host(values.clone().detach())?;
                let log_rhos: Vec<f32> = new_logp_host
                    .iter()
                    .zip(&old_logp)
                    .map(|(nl, ol)| nl - ol)
                    .collect();
                let tm = |data: &[f32]| transpose(&buf.sequence_major(data, 1, &units), b, l);
                let tm_bool = |data: &[bool]| transpose(&buf.sequence_major(data, 1, &units), b, l);
                let (vs, pg) = vtrace_targets(&VtraceInputs {
                    rollout: GaeInputs {
                        num_steps: l,
                        num_envs: b,
                        rewards: &tm(&buf.rewards),
                        values: &transpose(&values_host, b, l),
                        terminated: &tm_bool(&buf.terminated),
                        truncated: &tm_bool(&buf.truncated),
                        truncation_values: &tm(&buf.truncation_values),
                        last_values: &sequence_last_values(buf, &units),
                        gamma: cfg.gamma,
                        lambda: cfg.lambda,
                    },
                    log_rhos: &transpose(&log_rhos, b, l),
                    rho_bar: cfg.rho_bar,
                    c_bar: cfg.c_bar,
                });
                let (vs, pg) = (transpose(&vs, l, b), transpose(&pg, l, b));
                if epoch == 0 {
                    ev_values.extend_from_slice(&values_host);
                    ev_targets.extend_from_slice(&vs);
                }

                let policy_loss = (seq.tensor(&pg, device) * new_logp).mean().neg();
                let value_loss = (values - seq.tensor(&vs, device))
                    .square()
                    .mean()
                    .mul_scalar(0.5);
                let entropy = entropy.mean();
                let total = policy_loss.clone() + value_loss.clone().mul_scalar(cfg.baseline_cost)
                    - entropy.clone().mul_scalar(cfg.entropy_cost);
                let loss_value: f32 = total.clone().detach().into_scalar();
                if !loss_value.is_finite() {
                    return Err(non_finite("loss", loss_value));
                }
                let scalar = |t: Tensor<1>| -> f64 {
                    let v: f32 = t.detach().into_scalar();
                    f64::from(v)
                };
                sums.policy += scalar(policy_loss);
                sums.value += scalar(value_loss);
                sums.entropy += scalar(entropy);
                let m = log_rhos.len().max(1) as f64;
                for &log_rho in &log_rhos {
                    let (log_rho, r) = (f64::from(log_rho), f64::from(log_rho).exp());
                    sums.kl += ((r - 1.0) - log_rho) / m;
                    sums.rho += r / m;
                    if r > f64::from(cfg.rho_bar) {
                        sums.clipped += 1.0 / m;
                    }
                }

                let mut grads = GradientsParams::from_grads(total.backward(), &model);
                let grad_norm = clip_grad_norm(&model, &mut grads, cfg.max_grad_norm);
                if !grad_norm.is_finite() {
                    return Err(non_finite("gradient norm", grad_norm));
                }
                model = optim.step(lr, model, grads);
                sums.grad_norm += f64::from(grad_norm);
                sums.count += 1;
            }
        }
        let c = sums.count.max(1) as f64;
        let stats = LearnerStats {
            policy_loss: (sums.policy / c) as f32,
            value_loss: (sums.value / c) as f32,
            entropy: (sums.entropy / c) as f32,
            explained_var: explained_variance(&ev_values, &ev_targets),
            grad_norm: (sums.grad_norm / c) as f32,
            columns: vec![sums.kl / c, sums.rho / c, sums.clipped / c],
        };
        Ok((model, stats))
    }

    fn checkpoint_files(&self) -> Result<Vec<(String, Vec<u8>)>, LearnerError> {
        self.lagged
            .iter()
            .enumerate()
            .map(|(j, p)| Ok((lag_file(j), policy_weights(p)?)))
            .collect()
    }

    fn restore_checkpoint(
        &mut self,
        read: &mut ReadCheckpointFile<'_>,
        model: &Policy,
    ) -> Result<(), LearnerError> {
        self.lagged.clear();
        for j in 0..self.cfg.policy_lag {
            let name = lag_file(j);
            let bytes = read(&name).map_err(LearnerError::State)?.ok_or_else(|| {
                LearnerError::State(format!(
                    "the checkpoint lacks {name}, the policy of vtrace.policy_lag = {} \
                         updates ago",
                    self.cfg.policy_lag
                ))
            })?;
            self.lagged
                .push_back(load_policy_weights_from(model.valid(), bytes)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::compute_gae;

    fn close(a: &[f32], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((f64::from(*x) - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    /// One env, 4 steps, γ = 0.9, λ = 1, ρ̄ = 1, c̄ = 0.5; the episode terminates at step 1
    /// and a new one starts at step 2; the ratios π/μ are 2, 0.5, 1.5, 0.8.
    #[test]
    fn targets_match_hand_computed_values_with_clipping_and_a_termination() {
        let ratios = [2.0f32, 0.5, 1.5, 0.8];
        let log_rhos: Vec<f32> = ratios.iter().map(|r| r.ln()).collect();
        let (vs, pg) = vtrace_targets(&VtraceInputs {
            rollout: GaeInputs {
                num_steps: 4,
                num_envs: 1,
                rewards: &[1.0, 2.0, 0.5, 1.0],
                values: &[0.5, 1.0, 2.0, 1.5],
                terminated: &[false, true, false, false],
                truncated: &[false; 4],
                truncation_values: &[0.0; 4],
                last_values: &[3.0],
                gamma: 0.9,
                lambda: 1.0,
            },
            log_rhos: &log_rhos,
            rho_bar: 1.0,
            c_bar: 0.5,
        });
        // ρ = min(1, ratio) = 1, 0.5, 1, 0.8;  c = min(0.5, ratio) = 0.5, 0.5, 0.5, 0.5.
        // t=3: δ = 0.8·(1 + 0.9·3 − 1.5) = 1.76;        v₃ = 1.5 + 1.76 = 3.26
        // t=2: δ = 1·(0.5 + 0.9·1.5 − 2) = −0.15;        v₂ = 2 − 0.15 + 0.9·0.5·1.76 = 2.642
        // t=1 (terminates): δ = 0.5·(2 + 0 − 1) = 0.5;   v₁ = 1.5 (no trace across the end)
        // t=0: δ = 1·(1 + 0.9·1 − 0.5) = 1.4;            v₀ = 0.5 + 1.4 + 0.9·0.5·0.5 = 2.125
        close(&vs, &[2.125, 1.5, 2.642, 3.26]);
        // A_s = ρ_s (r_s + γ v_{s+1} − V_s), v after the termination = 0, after the end = 3.
        // A₀ = 1·(1 + 0.9·1.5 − 0.5) = 1.85;  A₁ = 0.5·(2 − 1) = 0.5;
        // A₂ = 1·(0.5 + 0.9·3.26 − 2) = 1.434; A₃ = 0.8·(1 + 0.9·3 − 1.5) = 1.76
        close(&pg, &[1.85, 0.5, 1.434, 1.76]);
    }

    /// With π = μ and c̄ = ρ̄ = 1, λ = 1 the targets are the n-step returns GAE(λ = 1) gives,
    /// over several envs with terminations and truncations.
    #[test]
    fn on_policy_targets_equal_the_gae_returns() {
        let (t_len, n) = (6, 3);
        let len = t_len * n;
        let rewards: Vec<f32> = (0..len).map(|k| ((k * 7) % 5) as f32 - 1.5).collect();
        let values: Vec<f32> = (0..len).map(|k| ((k * 3) % 4) as f32 * 0.7).collect();
        let terminated: Vec<bool> = (0..len).map(|k| k % 7 == 3).collect();
        let truncated: Vec<bool> = (0..len).map(|k| k % 11 == 5).collect();
        let truncation_values: Vec<f32> = (0..len).map(|k| k as f32 * 0.1).collect();
        let last_values = [0.3, -0.2, 1.1];
        for lambda in [1.0f32, 0.8] {
            let rollout = GaeInputs {
                num_steps: t_len,
                num_envs: n,
                rewards: &rewards,
                values: &values,
                terminated: &terminated,
                truncated: &truncated,
                truncation_values: &truncation_values,
                last_values: &last_values,
                gamma: 0.95,
                lambda,
            };
            let (vs, _) = vtrace_targets(&VtraceInputs {
                rollout,
                log_rhos: &vec![0.0; len],
                rho_bar: 1.0,
                c_bar: 1.0,
            });
            let (_, returns) = compute_gae(&rollout);
            let want: Vec<f64> = returns.iter().map(|&r| f64::from(r)).collect();
            close(&vs, &want);
        }
    }

    #[test]
    fn validate_names_the_key() {
        let cfg = VtraceConfig {
            rho_bar: 0.0,
            ..VtraceConfig::default()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("vtrace.rho_bar"), "{err}");
        assert!(VtraceConfig::default().validate().is_ok());
    }
}
