//! Generalised advantage estimation over a `[T, N]` rollout, with the `terminated` /
//! `truncated` distinction.

/// Inputs of [`compute_gae`], all laid out time-major `[T, N]` (index `t * N + i`).
#[derive(Clone, Copy, Debug)]
pub struct GaeInputs<'a> {
    /// Number of time steps `T`.
    pub num_steps: usize,
    /// Number of envs `N`.
    pub num_envs: usize,
    /// Reward of the transition taken at step `t`.
    pub rewards: &'a [f32],
    /// Value estimate `V(s_t)` of the observation at step `t`.
    pub values: &'a [f32],
    /// The transition at step `t` ended the episode with a real termination (no bootstrap).
    pub terminated: &'a [bool],
    /// The transition at step `t` ended the episode by the time limit (bootstrap from
    /// `truncation_values`).
    pub truncated: &'a [bool],
    /// `V(final_obs)` for the transitions that were truncated (read only where `truncated`).
    pub truncation_values: &'a [f32],
    /// `[N]`: value of the observation after the last step of the rollout (the bootstrap of an
    /// episode still running at the end of the rollout).
    pub last_values: &'a [f32],
    /// Discount factor γ.
    pub gamma: f32,
    /// GAE λ.
    pub lambda: f32,
}

/// Computes GAE(γ, λ) advantages and returns (`advantages + values`), both `[T, N]`.
///
/// For step `t` of env `i` the value of the next state is
/// - `0` if the transition `terminated` (a real end: nothing follows),
/// - `V(final_obs)` if it was `truncated` (the episode was cut by the time limit, the state
///   still had a future: bootstrap from the observation the env ended on, not from the first
///   observation of the next episode that the auto-resetting env returned),
/// - `V(s_{t+1})` otherwise (`last_values` after the last step).
///
/// and `A_t = δ_t + γλ · (1 − done_t) · A_{t+1}` with `δ_t = r_t + γ V_next − V(s_t)`, where
/// `done_t` is `terminated || truncated`: the advantage recursion never crosses an episode end.
/// Sums are accumulated in `f64`.
pub fn compute_gae(inp: &GaeInputs<'_>) -> (Vec<f32>, Vec<f32>) {
    let (t_len, n) = (inp.num_steps, inp.num_envs);
    let len = t_len * n;
    assert!(
        inp.rewards.len() == len
            && inp.values.len() == len
            && inp.terminated.len() == len
            && inp.truncated.len() == len
            && inp.truncation_values.len() == len
            && inp.last_values.len() == n,
        "compute_gae: inputs must be [T, N] = [{t_len}, {n}] (last_values [N])"
    );
    let gamma = f64::from(inp.gamma);
    let lambda = f64::from(inp.lambda);
    let mut advantages = vec![0.0f32; len];
    let mut returns = vec![0.0f32; len];
    for i in 0..n {
        let mut next_adv = 0.0f64;
        for t in (0..t_len).rev() {
            let k = t * n + i;
            let next_value = if inp.terminated[k] {
                0.0
            } else if inp.truncated[k] {
                f64::from(inp.truncation_values[k])
            } else if t + 1 == t_len {
                f64::from(inp.last_values[i])
            } else {
                f64::from(inp.values[k + n])
            };
            let done = inp.terminated[k] || inp.truncated[k];
            let value = f64::from(inp.values[k]);
            let delta = f64::from(inp.rewards[k]) + gamma * next_value - value;
            let carry = if done { 0.0 } else { gamma * lambda * next_adv };
            let adv = delta + carry;
            advantages[k] = adv as f32;
            returns[k] = (adv + value) as f32;
            next_adv = adv;
        }
    }
    (advantages, returns)
}

/// Explained variance `1 − Var(returns − values) / Var(returns)` (NaN when the returns have
/// zero variance), as logged by CleanRL.
pub fn explained_variance(values: &[f32], returns: &[f32]) -> f32 {
    let n = returns.len() as f64;
    if n == 0.0 {
        return f32::NAN;
    }
    let var = |xs: &[f64]| {
        let m = xs.iter().sum::<f64>() / n;
        xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n
    };
    let y: Vec<f64> = returns.iter().map(|&r| f64::from(r)).collect();
    let diff: Vec<f64> = returns
        .iter()
        .zip(values)
        .map(|(&r, &v)| f64::from(r) - f64::from(v))
        .collect();
    let var_y = var(&y);
    if var_y == 0.0 {
        f32::NAN
    } else {
        (1.0 - var(&diff) / var_y) as f32
    }
}
