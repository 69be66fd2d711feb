//! Playing episodes with a trained policy: evaluation on held-out seeds (`fbrl eval`) and
//! recording one episode as a GIF (`fbrl render`).
//!
//! # Held-out seeds
//! Training resets env `i`'s `k`-th episode with
//! `derive_seed(derive_seed(derive_seed(seed, 1), i), k)`: the [`envs::VecEnv`] rule on the
//! base seed `derive_seed(seed, 1)` (see [`crate::trainer`]). Evaluation episode `j`
//! (`j = 0, 1, …`) is reset with `derive_seed(eval_seed, j) ^ EVAL_SEED_SALT`, where
//! `eval_seed` defaults to the run's training seed plus [`EVAL_SEED_OFFSET`]. The two seed
//! streams come from different functions, so an evaluation episode repeats a training seed
//! only by a 64-bit hash collision. (A small maze has few distinct layouts, so a held-out
//! *seed* can still draw a
//! layout seen in training; on 7×7 there are only 192 perfect mazes.)

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use burn::tensor::TensorData;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use agents::ppo::ObsNormalizer;
use agents::{ActionDist, ActorCritic, EnvAction, Policy};
use envs::{Env, Frame, InfoScalars, derive_seed};

/// Added to the training seed to get the default evaluation seed.
pub const EVAL_SEED_OFFSET: u64 = 1_000_000;

/// Mixed into every evaluation episode seed so the evaluation stream differs from the
/// training stream even for equal base seeds.
pub const EVAL_SEED_SALT: u64 = 0xE7A1_5EED_0000_0000;

/// At most this many episodes are played side by side in one batch.
const MAX_BATCH: usize = 64;

/// The reset seed of evaluation episode `j` (see the module docs).
pub fn eval_episode_seed(eval_seed: u64, j: u64) -> u64 {
    derive_seed(eval_seed, j) ^ EVAL_SEED_SALT
}

/// How actions are picked from the policy's logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionSelection {
    /// The most likely action.
    Greedy,
    /// A sample from the policy's distribution (seeded).
    Sample,
}

/// One played episode.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EpisodeResult {
    /// The reset seed.
    pub seed: u64,
    /// Sum of rewards.
    pub ret: f64,
    /// Number of steps.
    pub length: u32,
    /// The episode's totals of the env's counts ([`envs::Info::counts`], e.g. GridMaze's
    /// `goals`), by name.
    pub counts: InfoScalars,
    /// Success flag of the last step, for tasks that report one.
    pub success: Option<bool>,
    /// The episode was cut by the time limit.
    pub truncated: bool,
}

/// Summary of an evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalReport {
    /// Number of episodes.
    pub episodes: usize,
    /// Base seed of the evaluation seeds.
    pub eval_seed: u64,
    /// Greedy or sampled actions.
    pub actions: ActionSelection,
    /// Mean episode return.
    pub return_mean: f64,
    /// Standard deviation of the episode return (over episodes, n − 1 denominator).
    pub return_std: f64,
    /// Smallest episode return.
    pub return_min: f64,
    /// Largest episode return.
    pub return_max: f64,
    /// The mean per-episode total of each of the env's counts: the counts it declares
    /// ([`Env::episode_counts`]), then any other an episode reported (an episode without a
    /// total of a name counts 0 of it). In JSON, one field `<name>_mean` each (e.g.
    /// GridMaze's `goals_mean`).
    #[serde(flatten)]
    pub counts: CountMeans,
    /// Fraction of episodes that reported success, if the task reports it.
    pub success_rate: Option<f64>,
    /// Mean episode length in steps.
    pub length_mean: f64,
    /// Every episode.
    pub per_episode: Vec<EpisodeResult>,
}

/// The mean per-episode total of each count of an evaluation, in order (see
/// [`EvalReport::counts`]); serialises as a map from `<name>_mean` to the mean.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CountMeans(pub Vec<(&'static str, f64)>);

impl CountMeans {
    /// The means over `episodes` of the counts `declared`, then of any other count an
    /// episode reported, in the order first reported.
    pub fn of_episodes(declared: &[&'static str], episodes: &[EpisodeResult]) -> Self {
        let mut names: Vec<&'static str> = declared.to_vec();
        for e in episodes {
            for (name, _) in e.counts.iter() {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        let n = episodes.len().max(1) as f64;
        Self(
            names
                .into_iter()
                .map(|name| {
                    let sum: f64 = episodes
                        .iter()
                        .map(|e| f64::from(e.counts.get(name).unwrap_or(0.0)))
                        .sum();
                    (name, sum / n)
                })
                .collect(),
        )
    }

    /// The mean of the count `name`, if the evaluation has it.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
    }
}

impl Serialize for CountMeans {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(name, m)| (format!("{name}_mean"), m)))
    }
}

impl EvalReport {
    /// Summarises a list of episodes of an env whose declared counts are `counts`
    /// ([`Env::episode_counts`]).
    pub fn from_episodes(
        eval_seed: u64,
        actions: ActionSelection,
        counts: &[&'static str],
        per_episode: Vec<EpisodeResult>,
    ) -> Self {
        let n = per_episode.len().max(1) as f64;
        let rets: Vec<f64> = per_episode.iter().map(|e| e.ret).collect();
        let mean = rets.iter().sum::<f64>() / n;
        let var = if rets.len() > 1 {
            rets.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (rets.len() - 1) as f64
        } else {
            0.0
        };
        let successes: Vec<bool> = per_episode.iter().filter_map(|e| e.success).collect();
        Self {
            episodes: per_episode.len(),
            eval_seed,
            actions,
            return_mean: mean,
            return_std: var.sqrt(),
            return_min: rets.iter().copied().fold(f64::INFINITY, f64::min),
            return_max: rets.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            counts: CountMeans::of_episodes(counts, &per_episode),
            success_rate: (!successes.is_empty())
                .then(|| successes.iter().filter(|s| **s).count() as f64 / successes.len() as f64),
            length_mean: per_episode.iter().map(|e| f64::from(e.length)).sum::<f64>() / n,
            per_episode,
        }
    }
}

/// Picks actions for a batch from `[B, A]` logits.
struct Chooser {
    selection: ActionSelection,
    rng: ChaCha8Rng,
}

impl Chooser {
    /// One action per row of `params` `[B, P]` (the policy's distribution parameters for
    /// `dist`), under the action masks `masks` `[B, mask_width]` when the envs give them:
    /// the most likely allowed action (greedy; a Gaussian's mean) or a sample, clipped to a
    /// `Box`'s bounds.
    fn choose(
        &mut self,
        dist: &ActionDist,
        params: Tensor<2>,
        masks: Option<Vec<bool>>,
    ) -> Result<Vec<EnvAction>> {
        let [b, p] = params.dims();
        if p != dist.param_width() {
            bail!(
                "the policy outputs {p} distribution parameters per step, the env's actions need \
                 {} ({})",
                dist.param_width(),
                dist.describe()
            );
        }
        let device = params.device();
        let masks = match (masks, dist.mask_width()) {
            (Some(m), Some(w)) => Some(Tensor::<2, Bool>::from_data(
                TensorData::new(m, [b, w]),
                &device,
            )),
            _ => None,
        };
        let table = dist
            .sampling_table(params, masks) // [B, P]
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("cannot read the policy's output: {e:?}"))?;
        let mut actions = Vec::with_capacity(b);
        let mut values = Vec::with_capacity(dist.action_width());
        for row in table.chunks(p) {
            if row.iter().any(|l| l.is_nan()) {
                bail!("the policy produced NaN outputs");
            }
            values.clear();
            match self.selection {
                ActionSelection::Greedy => dist.mode_row(row, &mut values),
                ActionSelection::Sample => {
                    dist.sample_row(row, &mut self.rng, &mut values);
                }
            }
            actions.push(dist.env_action(&values));
        }
        Ok(actions)
    }
}

/// The action masks of `envs` `[B, mask_width]` (all `true` for an env without one), or
/// `None` when the action space has no masks or no env gives one.
fn current_masks(dist: &ActionDist, envs: &[Box<dyn Env>]) -> Result<Option<Vec<bool>>> {
    let Some(width) = dist.mask_width() else {
        return Ok(None);
    };
    if envs.iter().all(|e| e.action_mask().is_none()) {
        return Ok(None);
    }
    let mut masks = Vec::with_capacity(envs.len() * width);
    for env in envs {
        match env.action_mask() {
            Some(m) => match env.action_space().mask_problem(m) {
                None => masks.extend_from_slice(m),
                Some(problem) => bail!(
                    "the env's action mask does not fit its {} action space: {problem}",
                    env.action_space()
                ),
            },
            None => masks.extend(std::iter::repeat_n(true, width)),
        }
    }
    Ok(Some(masks))
}

/// Plays `episodes` episodes with `policy`, `make_env` building one env per episode, on the
/// held-out seeds `eval_episode_seed(eval_seed, j)`, up to 64 at a time in one batch.
/// `obs_norm`: the run's observation normaliser (frozen), when it trained with one.
pub fn evaluate(
    policy: &Policy,
    obs_norm: Option<&ObsNormalizer>,
    make_env: &dyn Fn() -> Result<Box<dyn Env>>,
    episodes: usize,
    eval_seed: u64,
    selection: ActionSelection,
    device: &Device,
) -> Result<EvalReport> {
    if episodes == 0 {
        bail!("--episodes must be at least 1");
    }
    // One result per episode is kept (and printed with --json).
    crate::resources::check_fits(
        episodes as f64 * (std::mem::size_of::<EpisodeResult>() as f64 + 128.0),
        || format!("--episodes {episodes}"),
    )?;
    let mut chooser = Chooser {
        selection,
        rng: ChaCha8Rng::seed_from_u64(eval_seed),
    };
    let mut results = Vec::with_capacity(episodes);
    let mut counts = &[][..];
    let mut start = 0;
    while start < episodes {
        let b = MAX_BATCH.min(episodes - start);
        let seeds: Vec<u64> = (start..start + b)
            .map(|j| eval_episode_seed(eval_seed, j as u64))
            .collect();
        let mut envs = (0..b).map(|_| make_env()).collect::<Result<Vec<_>>>()?;
        counts = envs[0].episode_counts();
        results.extend(play_batch(
            policy,
            obs_norm,
            &mut envs,
            &seeds,
            &mut chooser,
            device,
            None,
            None,
            |_| {},
        )?);
        start += b;
    }
    Ok(EvalReport::from_episodes(
        eval_seed, selection, counts, results,
    ))
}

/// Plays one episode per env in `envs` (reset with `seeds`), all in one batch, until every
/// one has ended. `on_step(&envs)` is called after the reset and after every step (for
/// rendering). Envs whose episode has ended are left alone while the others go on. With
/// `attention`, every step's attention weights (one `[B, H, τ+1]` tensor per layer, see
/// [`Policy::step_with_attention`]) are appended to it; it fails for a policy without any.
/// With `max_steps`, an episode still running after that many steps is cut there (its result
/// marked truncated).
#[allow(clippy::too_many_arguments)]
fn play_batch(
    policy: &Policy,
    obs_norm: Option<&ObsNormalizer>,
    envs: &mut [Box<dyn Env>],
    seeds: &[u64],
    chooser: &mut Chooser,
    device: &Device,
    mut attention: Option<&mut Vec<Vec<Tensor<3>>>>,
    max_steps: Option<usize>,
    mut on_step: impl FnMut(&[Box<dyn Env>]),
) -> Result<Vec<EpisodeResult>> {
    let b = envs.len();
    let obs_dim = envs[0].observation_space().flat_len();
    let dist = ActionDist::from_space(&envs[0].action_space());
    let mut obs = vec![0.0f32; b * obs_dim];
    for (i, env) in envs.iter_mut().enumerate() {
        env.reset(seeds[i], &mut obs[i * obs_dim..(i + 1) * obs_dim])
            .with_context(|| format!("reset(seed = {}) failed", seeds[i]))?;
    }
    on_step(envs);
    let mut results: Vec<EpisodeResult> = seeds
        .iter()
        .map(|&seed| EpisodeResult {
            seed,
            ret: 0.0,
            length: 0,
            counts: InfoScalars::default(),
            success: None,
            truncated: false,
        })
        .collect();
    let mut done = vec![false; b];
    let mut starts = vec![1.0f32; b];
    let mut memory = policy.init_memory(b, device);
    while done.iter().any(|d| !d) {
        let policy_obs = match obs_norm {
            Some(norm) => norm.normalize(&obs),
            None => obs.clone(),
        };
        let obs_t = Tensor::<2>::from_data(TensorData::new(policy_obs, [b, obs_dim]), device);
        let starts_t = Tensor::<1>::from_data(TensorData::new(starts.clone(), [b]), device);
        let (logits, _value, next_memory) = match attention.as_deref_mut() {
            None => policy.step(obs_t, starts_t, memory), // [B, A]
            Some(steps) => {
                let (out, weights) = policy.step_with_attention(obs_t, starts_t, memory);
                let Some(weights) = weights else {
                    bail!(
                        "a `{}` policy has no attention weights to show (only the feedback and \
                         transformer policies attend over past steps)",
                        policy.kind().name()
                    );
                };
                steps.push(weights);
                out
            }
        };
        memory = next_memory;
        let masks = current_masks(&dist, envs)?;
        let actions = chooser.choose(&dist, logits, masks)?;
        starts.fill(0.0);
        for i in 0..b {
            if done[i] {
                continue;
            }
            let step = envs[i]
                .step(
                    actions[i].as_action(),
                    &mut obs[i * obs_dim..(i + 1) * obs_dim],
                )
                .with_context(|| format!("step in the episode with seed {}", seeds[i]))?;
            let r = &mut results[i];
            r.ret += f64::from(step.reward);
            r.length += 1;
            for (name, value) in step.info.counts.iter() {
                r.counts.add(name, value);
            }
            if step.done() {
                done[i] = true;
                r.success = step.info.success;
                r.truncated = step.truncated && !step.terminated;
            } else if max_steps.is_some_and(|m| r.length as usize >= m) {
                // Cut by the caller's cap, like a time limit.
                done[i] = true;
                r.truncated = true;
            }
        }
        on_step(envs);
    }
    Ok(results)
}

/// One recorded episode: what `fbrl render` draws (with `--attention`, the attention weights
/// too).
#[derive(Clone, Debug)]
pub struct RecordedEpisode {
    /// The states: after the reset, then after every step (`weights.len() + 1` frames when
    /// recorded with attention).
    pub frames: Vec<Frame>,
    /// Where the agent is drawn in each frame ([`Env::agent_rect`]), if the env says.
    pub agent_rects: Vec<Option<[usize; 4]>>,
    /// Per decision step `t` (taken in state `frames[t]`), per layer, per head: the attention
    /// weights over the window's `τ + 1` slots (the steps `t − τ … t − 1`, then `t` itself);
    /// empty when recorded without attention.
    pub weights: Vec<Vec<Vec<Vec<f32>>>>,
    /// The episode's result.
    pub result: EpisodeResult,
}

impl RecordedEpisode {
    /// The attention span `τ` (window slots minus the current step's).
    pub fn span(&self) -> usize {
        self.weights
            .first()
            .and_then(|layers| layers.first())
            .and_then(|heads| heads.first())
            .map_or(0, |slots| slots.len().saturating_sub(1))
    }

    /// The episode step a window slot of decision step `t` refers to, or `None` for a slot
    /// before the episode's start.
    pub fn slot_step(&self, t: usize, slot: usize) -> Option<usize> {
        (t + slot).checked_sub(self.span())
    }

    /// Layer `layer`'s weights at decision step `t` averaged over heads, per window slot.
    pub fn layer_weights(&self, t: usize, layer: usize) -> Vec<f32> {
        let heads = &self.weights[t][layer];
        let mut mean = vec![0.0f32; heads[0].len()];
        for h in heads {
            for (m, w) in mean.iter_mut().zip(h) {
                *m += w / heads.len() as f32;
            }
        }
        mean
    }
}

/// Plays one episode with `env` reset by `seed` and records its RGB frames (the first
/// observation's state, then one per step), where the agent was drawn and its result; with
/// `attention`, also the attention weights of every step (the actor's; the Feedback
/// Transformer runs its tensor-operation path). Fails if the env cannot draw, and with
/// `attention` for a policy without attention. With `max_steps`, the episode is cut after that
/// many steps (so that an env with a huge or no time limit cannot exhaust memory with frames).
pub fn record_episode(
    policy: &Policy,
    obs_norm: Option<&ObsNormalizer>,
    env: Box<dyn Env>,
    seed: u64,
    selection: ActionSelection,
    device: &Device,
    attention: bool,
    max_steps: Option<usize>,
) -> Result<RecordedEpisode> {
    let mut chooser = Chooser {
        selection,
        rng: ChaCha8Rng::seed_from_u64(seed),
    };
    let mut envs = vec![env];
    let mut frames = Vec::new();
    let mut agent_rects = Vec::new();
    let mut missing = false;
    let mut steps = Vec::new();
    let results = play_batch(
        policy,
        obs_norm,
        &mut envs,
        &[seed],
        &mut chooser,
        device,
        attention.then_some(&mut steps),
        max_steps,
        |envs| match envs[0].render_rgb() {
            Some(f) => {
                frames.push(f);
                agent_rects.push(envs[0].agent_rect());
            }
            None => missing = true,
        },
    )?;
    if missing {
        bail!(
            "the env `{}` cannot draw RGB frames (Env::render_rgb returned None)",
            envs[0].name()
        );
    }
    let mut weights = Vec::with_capacity(steps.len());
    for layers in steps {
        let mut per_layer = Vec::with_capacity(layers.len());
        for w in layers {
            let [_, heads, slots] = w.dims();
            let v = w
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("cannot read the attention weights: {e:?}"))?;
            per_layer.push(
                v.chunks(slots)
                    .take(heads)
                    .map(<[f32]>::to_vec)
                    .collect::<Vec<_>>(),
            );
        }
        weights.push(per_layer);
    }
    Ok(RecordedEpisode {
        frames,
        agent_rects,
        weights,
        result: results[0],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use agents::{PolicyConfig, PolicyKind};
    use envs::{CueRecall, CueRecallConfig};

    fn episode(ret: f64, goals: u32, success: Option<bool>) -> EpisodeResult {
        let mut counts = InfoScalars::default();
        counts.set("goals", goals as f32);
        EpisodeResult {
            seed: 0,
            ret,
            length: 10,
            counts,
            success,
            truncated: false,
        }
    }

    #[test]
    fn report_summarises_episodes() {
        let eps = vec![
            episode(1.0, 1, Some(true)),
            episode(3.0, 2, Some(false)),
            episode(5.0, 3, Some(true)),
            episode(7.0, 6, Some(true)),
        ];
        let r = EvalReport::from_episodes(5, ActionSelection::Greedy, &["goals"], eps.clone());
        assert_eq!(r.episodes, 4);
        assert_eq!(r.return_mean, 4.0);
        // Sample std of 1, 3, 5, 7: sqrt(20 / 3).
        assert!((r.return_std - (20.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!((r.return_min, r.return_max), (1.0, 7.0));
        assert_eq!(r.counts.get("goals"), Some(3.0));
        assert_eq!(r.success_rate, Some(0.75));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["goals_mean"], 3.0);
        assert_eq!(json["per_episode"][1]["counts"]["goals"], 2.0);
        let r =
            EvalReport::from_episodes(5, ActionSelection::Greedy, &[], vec![episode(2.0, 0, None)]);
        assert_eq!((r.return_std, r.success_rate), (0.0, None));
        // A count reported without being declared is summarised too; a declared one that no
        // episode reported has the mean 0.
        assert_eq!(r.counts.0, vec![("goals", 0.0)]);
        let mut eps = eps;
        eps[0].counts = InfoScalars::default();
        let r = EvalReport::from_episodes(5, ActionSelection::Greedy, &["keys"], eps);
        assert_eq!(r.counts.0, vec![("keys", 0.0), ("goals", 11.0 / 4.0)]);
        // An env without counts: no count fields.
        let r = EvalReport::from_episodes(5, ActionSelection::Greedy, &[], vec![]);
        let json = serde_json::to_value(&r).unwrap();
        assert!(
            json.as_object()
                .unwrap()
                .keys()
                .all(|k| !k.starts_with("goals"))
        );
    }

    #[test]
    fn eval_seeds_are_not_training_seeds() {
        // Training episode seeds of the first envs and episodes of the same base seed.
        let train: std::collections::HashSet<u64> = (0..64)
            .flat_map(|i| (0..64).map(move |k| derive_seed(derive_seed(derive_seed(7, 1), i), k)))
            .collect();
        for j in 0..1000 {
            assert!(!train.contains(&eval_episode_seed(7 + EVAL_SEED_OFFSET, j)));
            assert!(!train.contains(&eval_episode_seed(7, j)));
        }
    }

    #[test]
    fn evaluation_is_reproducible_and_batches_any_count() {
        let device = Device::default();
        let cfg = CueRecallConfig::with_corridor(3);
        let make = || -> Result<Box<dyn Env>> { Ok(Box::new(CueRecall::new(cfg.clone())?)) };
        let policy = PolicyConfig::preset(PolicyKind::Gru)
            .init_for_env(&*make().unwrap(), &device)
            .unwrap();
        for selection in [ActionSelection::Greedy, ActionSelection::Sample] {
            let a = evaluate(&policy, None, &make, 70, 3, selection, &device).unwrap();
            let b = evaluate(&policy, None, &make, 70, 3, selection, &device).unwrap();
            assert_eq!(a, b);
            assert_eq!(a.per_episode.len(), 70);
            assert!(a.per_episode.iter().all(|e| e.success.is_some()));
            assert!(a.per_episode.iter().all(|e| e.length >= 4));
        }
        assert!(evaluate(&policy, None, &make, 0, 3, ActionSelection::Greedy, &device).is_err());
    }
}
