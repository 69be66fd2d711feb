//! Training hooks: code that runs after every update with the policy in hand.
//!
//! A [`TrainHook`] (in [`crate::TrainOptions::hooks`]) is called after each update's metrics
//! row is written, with the row, the current policy and its observation normaliser. It can
//! log extra scalars to TensorBoard ([`UpdateContext::log_scalar`]) and end the run early by
//! returning [`ControlFlow::Break`] with a reason: the trainer then writes a checkpoint at that
//! update and returns normally, with [`crate::RunSummary::stopped_early`] holding the reason
//! (no signal involved; `fbrl train --resume` continues the run if wanted).
//!
//! Two hooks come with the crate:
//! - [`PeriodicEval`]: greedy evaluation on the held-out seeds of `fbrl eval` every K updates,
//!   written to `RUN/eval.csv` and TensorBoard (`eval/…`), the best policy kept as
//!   `RUN/best_policy.fbrl`, with optional early stopping (a target score, or no improvement
//!   for a number of evaluations).
//! - [`StopWhen`]: ends the run once a metrics column reaches a threshold.
//!
//! A closure `FnMut(&mut UpdateContext) -> anyhow::Result<ControlFlow<String>>` is a hook too:
//!
//! ```
//! use std::ops::ControlFlow;
//! use fbrl::hooks::{TrainHook, UpdateContext};
//!
//! let stop_on_kl = |ctx: &mut UpdateContext<'_>| -> anyhow::Result<ControlFlow<String>> {
//!     let kl = ctx.row.column("approx_kl").unwrap_or(0.0);
//!     Ok(if kl > 0.5 {
//!         ControlFlow::Break(format!("approx_kl {kl:.2} > 0.5"))
//!     } else {
//!         ControlFlow::Continue(())
//!     })
//! };
//! let hooks: Vec<Box<dyn TrainHook>> = vec![Box::new(stop_on_kl)];
//! # let _ = hooks;
//! ```

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;

use agents::ppo::ObsNormalizer;
use agents::{ActionDist, Policy};
use envs::Env;

use crate::config::TrainConfig;
use crate::eval::{self, ActionSelection, EVAL_SEED_OFFSET, EvalReport};
use crate::metrics::MetricsRow;

/// Name of the evaluation log [`PeriodicEval`] writes in the run directory.
pub const EVAL_FILE: &str = "eval.csv";
/// Name of the best policy file [`PeriodicEval`] keeps in the run directory.
pub const BEST_POLICY_FILE: &str = "best_policy.fbrl";

/// What a hook sees after an update.
pub struct UpdateContext<'a> {
    /// The update's metrics row (already written to `metrics.csv`).
    pub row: &'a MetricsRow,
    /// Updates of the whole run.
    pub num_updates: usize,
    /// The policy after this update (no autodiff).
    pub policy: &'a Policy,
    /// The observation normaliser the policy reads through, if the run uses one.
    pub obs_normalizer: Option<&'a ObsNormalizer>,
    /// The run's config.
    pub config: &'a TrainConfig,
    /// The run directory.
    pub run_dir: &'a Path,
    /// Observation features per env.
    pub obs_dim: usize,
    /// The policy's action distribution.
    pub action_dist: &'a ActionDist,
    /// The device the policy lives on.
    pub device: &'a Device,
    scalars: Vec<(String, f32)>,
}

impl<'a> UpdateContext<'a> {
    /// A context for one update (the trainer builds these; public for testing hooks).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        row: &'a MetricsRow,
        num_updates: usize,
        policy: &'a Policy,
        obs_normalizer: Option<&'a ObsNormalizer>,
        config: &'a TrainConfig,
        run_dir: &'a Path,
        obs_dim: usize,
        action_dist: &'a ActionDist,
        device: &'a Device,
    ) -> Self {
        Self {
            row,
            num_updates,
            policy,
            obs_normalizer,
            config,
            run_dir,
            obs_dim,
            action_dist,
            device,
            scalars: Vec::new(),
        }
    }

    /// Logs a scalar under `tag` (e.g. `eval/return_mean`) at this update's env step count,
    /// into the run's TensorBoard file when it writes one.
    pub fn log_scalar(&mut self, tag: impl Into<String>, value: f64) {
        self.scalars.push((tag.into(), value as f32));
    }

    /// The scalars logged so far (the trainer hands them to TensorBoard).
    pub fn take_scalars(&mut self) -> Vec<(String, f32)> {
        std::mem::take(&mut self.scalars)
    }
}

/// Code run after every update (see the module docs).
pub trait TrainHook: Send {
    /// Called after each update; `Break(reason)` ends the run there (with a checkpoint).
    fn on_update(&mut self, ctx: &mut UpdateContext<'_>) -> Result<ControlFlow<String>>;
}

impl<F> TrainHook for F
where
    F: FnMut(&mut UpdateContext<'_>) -> Result<ControlFlow<String>> + Send,
{
    fn on_update(&mut self, ctx: &mut UpdateContext<'_>) -> Result<ControlFlow<String>> {
        self(ctx)
    }
}

/// Ends the run once a metrics column (a [`crate::METRICS_COLUMNS`] name, a learner's own
/// column, or an env's count column `<name>_mean`) reaches a threshold:
/// `≥ threshold`, or `≤` with [`StopWhen::below`]. A column the run's `metrics.csv` does not
/// have is an error at the first update.
#[derive(Clone, Debug)]
pub struct StopWhen {
    column: String,
    threshold: f64,
    below: bool,
}

impl StopWhen {
    /// Stop once `column ≥ threshold`. Fails for a name that is not a metrics column.
    pub fn at_least(column: &str, threshold: f64) -> Result<Self> {
        if !crate::metrics::is_metrics_column(column) {
            bail!(
                "`{column}` is not a metrics column (one of: {}, a learner's own column, or \
                 `<count>_mean` for a count the env declares)",
                crate::METRICS_COLUMNS.join(", ")
            );
        }
        Ok(Self {
            column: column.to_string(),
            threshold,
            below: false,
        })
    }

    /// Stop once `column ≤ threshold` instead.
    pub fn below(mut self) -> Self {
        self.below = true;
        self
    }
}

impl TrainHook for StopWhen {
    fn on_update(&mut self, ctx: &mut UpdateContext<'_>) -> Result<ControlFlow<String>> {
        let Some(value) = ctx.row.column(&self.column) else {
            bail!(
                "`{}` is not a column of this run's metrics.csv (its columns: {})",
                self.column,
                ctx.row.columns().join(", ")
            );
        };
        let reached = if self.below {
            value <= self.threshold
        } else {
            value >= self.threshold
        };
        Ok(if reached {
            ControlFlow::Break(format!(
                "{} = {value} reached {}",
                self.column, self.threshold
            ))
        } else {
            ControlFlow::Continue(())
        })
    }
}

/// Which number of an evaluation decides the best policy and early stopping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalScore {
    /// Mean episode return.
    Return,
    /// Mean goals per episode: the mean of the count `goals` (GridMaze's), the same as
    /// `Count("goals")`.
    Goals,
    /// The mean per-episode total of the env's count of this name ([`envs::Info::counts`]).
    Count(&'static str),
    /// Success rate (tasks that report success).
    Success,
}

impl EvalScore {
    /// The count a `Goals` score reads.
    const GOALS: &'static str = "goals";

    fn of(self, report: &EvalReport) -> f64 {
        match self {
            EvalScore::Return => report.return_mean,
            EvalScore::Goals => report.counts.get(Self::GOALS).unwrap_or(f64::NAN),
            EvalScore::Count(name) => report.counts.get(name).unwrap_or(f64::NAN),
            EvalScore::Success => report.success_rate.unwrap_or(f64::NAN),
        }
    }

    /// Its column of `eval.csv`.
    fn name(self) -> &'static str {
        match self {
            EvalScore::Return => "return_mean",
            EvalScore::Goals => crate::metrics::count_column(Self::GOALS),
            EvalScore::Count(name) => crate::metrics::count_column(name),
            EvalScore::Success => "success_rate",
        }
    }
}

/// A factory of one evaluation env.
pub type EnvFactory = Box<dyn Fn() -> Result<Box<dyn Env>> + Send + Sync>;

/// Evaluation during training (see the module docs): every `every` updates and after the
/// last one, `episodes` greedy episodes on the held-out seeds `fbrl eval` uses (the run's
/// seed + [`EVAL_SEED_OFFSET`]), so an evaluation at the end equals `fbrl eval -n episodes`.
pub struct PeriodicEval {
    every: usize,
    episodes: usize,
    make_env: EnvFactory,
    score: EvalScore,
    stop_at: Option<f64>,
    patience: Option<usize>,
    best: Option<(f64, usize)>,
    evals_since_best: usize,
    /// The columns of the open `eval.csv` (empty until it is opened).
    columns: Vec<&'static str>,
}

/// The columns of `eval.csv` for an env without counts. An env's counts
/// ([`Env::episode_counts`]) have a column `<name>_mean` each after `return_std`
/// ([`eval_columns`]); a file keeps the columns it was created with.
pub const EVAL_COLUMNS: [&str; 8] = [
    "update",
    "env_steps",
    "episodes",
    "return_mean",
    "return_std",
    "success_rate",
    "length_mean",
    "best",
];

/// The columns of `eval.csv` before the env's counts.
const EVAL_HEAD: usize = 5;

/// The columns of `eval.csv` for an env whose counts are `counts`: [`EVAL_COLUMNS`] with
/// `<name>_mean` for each count after `return_std`.
pub fn eval_columns(counts: &[&str]) -> Vec<&'static str> {
    EVAL_COLUMNS[..EVAL_HEAD]
        .iter()
        .copied()
        .chain(counts.iter().map(|c| crate::metrics::count_column(c)))
        .chain(EVAL_COLUMNS[EVAL_HEAD..].iter().copied())
        .collect()
}

/// The mean of the count whose `eval.csv` column is `column` (`<name>_mean`) in `report`; 0
/// when the report has no such count.
fn report_count_mean(report: &EvalReport, column: &str) -> f64 {
    report
        .counts
        .0
        .iter()
        .find(|(name, _)| crate::metrics::count_column(name) == column)
        .map_or(0.0, |(_, mean)| *mean)
}

/// The counts of an `eval.csv` header, if it is [`eval_columns`] of some.
fn eval_header_counts(header: &str) -> Option<Vec<String>> {
    let cells: Vec<&str> = header.split(',').collect();
    let tail = EVAL_COLUMNS.len() - EVAL_HEAD;
    let counts: Vec<String> = cells
        .get(EVAL_HEAD..cells.len().checked_sub(tail)?)?
        .iter()
        .map(|c| {
            c.strip_suffix("_mean")
                .filter(|n| envs::is_column_name(n))
                .map(str::to_string)
        })
        .collect::<Option<_>>()?;
    (eval_columns(&counts.iter().map(String::as_str).collect::<Vec<_>>()).join(",") == header)
        .then_some(counts)
}

impl PeriodicEval {
    /// Evaluates every `every` updates on `episodes` episodes of envs from `make_env`.
    pub fn new(every: usize, episodes: usize, make_env: EnvFactory) -> Result<Self> {
        if every == 0 {
            bail!("the evaluation interval (--eval-every) must be at least 1 update");
        }
        if episodes == 0 {
            bail!("the number of evaluation episodes (--eval-episodes) must be at least 1");
        }
        Ok(Self {
            every,
            episodes,
            make_env,
            score: EvalScore::Return,
            stop_at: None,
            patience: None,
            best: None,
            evals_since_best: 0,
            columns: Vec::new(),
        })
    }

    /// [`PeriodicEval::new`] for a built-in env of `config` (its `env` table).
    pub fn for_config(every: usize, episodes: usize, config: &TrainConfig) -> Result<Self> {
        let env = config.env.clone();
        crate::config::build_env(&env)
            .context("evaluation during training needs an env the config can build")?;
        Self::new(
            every,
            episodes,
            Box::new(move || Ok(crate::config::build_env(&env)?)),
        )
    }

    /// Which number decides the best policy (default: mean return).
    pub fn score(mut self, score: EvalScore) -> Self {
        self.score = score;
        self
    }

    /// End the run once an evaluation scores at least `target`.
    pub fn stop_at(mut self, target: f64) -> Self {
        self.stop_at = Some(target);
        self
    }

    /// End the run after `evaluations` evaluations in a row without a new best.
    pub fn patience(mut self, evaluations: usize) -> Self {
        self.patience = Some(evaluations.max(1));
        self
    }

    /// Keeps the rows of an existing `eval.csv` before `update` (a resumed run), its columns
    /// and the best score among them; starts a new file with the columns of an env whose
    /// counts are `counts` otherwise.
    fn open(&mut self, path: &Path, update: usize, counts: &[&str]) -> Result<()> {
        let mut header = eval_columns(counts).join(",");
        let mut kept = Vec::new();
        if let Ok(text) = std::fs::read_to_string(path) {
            // A last line without its newline was cut by a kill: dropped.
            let complete = text.rfind('\n').map_or("", |end| &text[..end]);
            let mut lines = complete.lines();
            match lines.next() {
                Some(h) if eval_header_counts(h).is_some() => header = h.to_string(),
                _ => bail!(
                    "{}: unexpected header (expected `{header}`); move the file away to \
                     start a new evaluation log",
                    path.display()
                ),
            }
            for line in lines {
                kept.push(line.to_string());
            }
        }
        let file_counts = eval_header_counts(&header).expect("a checked header");
        self.columns = eval_columns(&file_counts.iter().map(String::as_str).collect::<Vec<_>>());
        let Some(column) = self.columns.iter().position(|c| *c == self.score.name()) else {
            bail!(
                "the evaluation score `{}` is not a column of {} (its columns: {}): the env \
                 does not count it",
                self.score.name(),
                path.display(),
                self.columns.join(", ")
            );
        };
        let mut text = header;
        for line in kept {
            let cells: Vec<&str> = line.split(',').collect();
            let Some(u) = cells.first().and_then(|c| c.parse::<usize>().ok()) else {
                continue;
            };
            if u >= update || cells.len() != self.columns.len() {
                continue;
            }
            if let Ok(score) = cells[column].parse::<f64>()
                && self.best.is_none_or(|(b, _)| score > b)
            {
                self.best = Some((score, u));
            }
            text.push('\n');
            text.push_str(&line);
        }
        text.push('\n');
        crate::checkpoint::write_atomic(path, text.as_bytes())
    }
}

impl TrainHook for PeriodicEval {
    fn on_update(&mut self, ctx: &mut UpdateContext<'_>) -> Result<ControlFlow<String>> {
        let update = ctx.row.update;
        let path = ctx.run_dir.join(EVAL_FILE);
        if self.columns.is_empty() {
            let counts = (self.make_env)()
                .context("cannot build the evaluation env")?
                .episode_counts();
            self.open(&path, update, counts)?;
        }
        if !(update.is_multiple_of(self.every) || update == ctx.num_updates) {
            return Ok(ControlFlow::Continue(()));
        }
        let report = eval::evaluate(
            ctx.policy,
            ctx.obs_normalizer,
            &*self.make_env,
            self.episodes,
            ctx.config.seed.wrapping_add(EVAL_SEED_OFFSET),
            ActionSelection::Greedy,
            ctx.device,
        )
        .with_context(|| format!("evaluation after update {update}"))?;
        let score = self.score.of(&report);
        let improved = score.is_finite() && self.best.is_none_or(|(b, _)| score > b);
        if improved {
            self.best = Some((score, update));
            self.evals_since_best = 0;
            agents::save_policy_with_normalizer(
                ctx.run_dir.join(BEST_POLICY_FILE),
                ctx.policy,
                &ctx.config.policy,
                ctx.obs_dim,
                ctx.action_dist,
                ctx.obs_normalizer,
            )
            .context("cannot keep the best policy")?;
        } else {
            self.evals_since_best += 1;
        }
        let cell = |x: f64| {
            if x.is_finite() {
                x.to_string()
            } else {
                String::new()
            }
        };
        let line = self
            .columns
            .iter()
            .map(|column| match *column {
                "update" => update.to_string(),
                "env_steps" => ctx.row.env_steps.to_string(),
                "episodes" => report.episodes.to_string(),
                "return_mean" => cell(report.return_mean),
                "return_std" => cell(report.return_std),
                "success_rate" => cell(report.success_rate.unwrap_or(f64::NAN)),
                "length_mean" => cell(report.length_mean),
                "best" => u8::from(improved).to_string(),
                // A count column: the report's mean, 0 for a count this env does not report
                // (a file of the format before counts has `goals_mean` for every env).
                count => cell(report_count_mean(&report, count)),
            })
            .collect::<Vec<_>>()
            .join(",");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        writeln!(file, "{line}").with_context(|| format!("cannot write {}", path.display()))?;
        ctx.log_scalar("eval/return_mean", report.return_mean);
        for (name, mean) in &report.counts.0 {
            ctx.log_scalar(format!("eval/{name}_mean"), *mean);
        }
        if let Some(rate) = report.success_rate {
            ctx.log_scalar("eval/success_rate", rate);
        }
        if let Some(target) = self.stop_at
            && score >= target
        {
            return Ok(ControlFlow::Break(format!(
                "evaluation {} = {score} reached the target {target}",
                self.score.name()
            )));
        }
        if let Some(patience) = self.patience
            && self.evals_since_best >= patience
        {
            let (best, at) = self.best.unwrap_or((f64::NAN, 0));
            return Ok(ControlFlow::Break(format!(
                "no better evaluation {} in {patience} evaluations (best {best} at update {at})",
                self.score.name()
            )));
        }
        Ok(ControlFlow::Continue(()))
    }
}

/// The path of the best policy a [`PeriodicEval`] keeps in `run_dir`.
pub fn best_policy_path(run_dir: &Path) -> PathBuf {
    run_dir.join(BEST_POLICY_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `eval.csv` as the version before counts wrote it, for every env.
    const OLD_EVAL: &str = "update,env_steps,episodes,return_mean,return_std,goals_mean,success_rate,length_mean,best\n\
        3,96,5,0.2,0.4,0,0.2,4,1\n\
        6,192,5,0.6,0.5,0,0.6,4,1\n";

    fn cue_recall_eval() -> PeriodicEval {
        PeriodicEval::new(
            3,
            5,
            Box::new(|| Ok(Box::new(envs::CueRecall::new(Default::default())?) as Box<dyn Env>)),
        )
        .unwrap()
    }

    #[test]
    fn eval_columns_have_one_mean_per_count() {
        assert_eq!(eval_columns(&[]), EVAL_COLUMNS);
        assert!(!EVAL_COLUMNS.contains(&"goals_mean"));
        // An env counting goals has the columns every run had before counts.
        assert_eq!(
            eval_columns(&["goals"]).join(","),
            OLD_EVAL.lines().next().unwrap()
        );
        assert_eq!(
            eval_header_counts(&eval_columns(&["goals", "keys"]).join(",")),
            Some(vec!["goals".to_string(), "keys".to_string()])
        );
        assert_eq!(eval_header_counts("update,env_steps"), None);
        assert_eq!(EvalScore::Goals.name(), "goals_mean");
        assert_eq!(EvalScore::Count("keys").name(), "keys_mean");
    }

    #[test]
    fn an_eval_log_of_the_format_before_counts_keeps_its_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EVAL_FILE);
        std::fs::write(&path, OLD_EVAL).unwrap();
        let mut eval = cue_recall_eval();
        // Resuming at update 6: the row of update 3 is kept, with its best score.
        eval.open(&path, 6, &[]).unwrap();
        assert_eq!(eval.columns, eval_columns(&["goals"]));
        assert_eq!(eval.best, Some((0.2, 3)));
        let kept = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            kept,
            OLD_EVAL.lines().take(2).collect::<Vec<_>>().join("\n") + "\n"
        );

        // A new log of an env without counts has no goals column, and a goals score there
        // is an error naming the columns.
        std::fs::remove_file(&path).unwrap();
        let mut eval = cue_recall_eval().score(EvalScore::Goals);
        let e = eval.open(&path, 1, &[]).unwrap_err().to_string();
        assert!(
            e.contains("`goals_mean`") && e.contains("return_mean"),
            "{e}"
        );
        let mut eval = cue_recall_eval();
        eval.open(&path, 1, &[]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim_end(),
            EVAL_COLUMNS.join(",")
        );
    }
}
