//! The training loop: rollout → learner update → metrics row → checkpoint, with resume.
//!
//! ```text
//! learner = cfg.learner()                                  (PPO, V-trace: `algorithm`)
//! for update in 1..=num_updates:
//!     lr      = learner.learning_rate_at(update − 1, num_updates)
//!     buffer  = collect_rollout(learner.acting_policy(model), venv, state, num_steps)
//!     model   = learner.update(model, optim, buffer, lr)      (PPO: GAE, then its epochs)
//!     metrics.csv ← row;  every checkpoint_every updates and at the end: checkpoint
//! ```
//!
//! # Reproducibility and resume
//! Everything random comes from the run's seed: the policy initialisation (the device RNG is
//! seeded with `seed`), the envs (`VecEnv` base seed `derive_seed(seed, 1)`), and one ChaCha8
//! stream (`derive_seed(seed, 2)`) that samples actions and shuffles minibatches. A checkpoint
//! saves all of it (weights, Adam state, RNG position, env state, observations, episode-start
//! flags, per-env memory and the reward / observation normalisers' statistics), so `--resume`
//! continues bit for bit: the metrics rows after a resume equal those of an uninterrupted run
//! (except the wall-clock columns).
//!
//! The envs are brought back by replaying each episode in progress from its seed and actions,
//! and the replay must give the saved observations. Envs that cannot be replayed
//! ([`Env::resumes_by_replay`] is `false`: Gymnasium envs in Python, whose state cannot be
//! saved) are instead restarted ([`VecEnv::restart`]): the episodes in progress at the
//! checkpoint are dropped (never counted as finished), every env starts its next episode with
//! the seed it would have used next, the policy's memory starts afresh there (the episode-start
//! flags are set) and so do the reward normaliser's running returns. The run then continues
//! from the checkpoint's weights, optimizer, RNG and statistics, but its metrics rows differ
//! from those of an uninterrupted run; the trainer says how many episodes it dropped
//! ([`RunStart::dropped_episodes`]).

use std::path::PathBuf;
use std::time::Instant;

use agents::learner::{Learner, LearnerError, LearnerStats, UpdateInput};
use agents::rollout::{FinishedEpisode, RolloutState, collect_rollout};
use agents::{ActorCritic, PolicyConfig};
use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::prelude::Device;
use envs::{Env, EnvError, VecEnv, derive_seed};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::{
    RngState, SavedRollout, TrainerState, open_latest_to_continue, save_checkpoint_with,
    write_atomic,
};
use crate::config::{EnvConfig, TrainConfig};
use crate::hooks::{TrainHook, UpdateContext};
use crate::metrics::{CountColumns, InfoLog, LearnerColumns, MetricsRow, MetricsWriter};
use crate::run_dir::{INFO_FILE, RunDir};
use crate::run_lock::RunLock;
use crate::signals::{StopFlag, signal_name};

/// Stream index of the VecEnv base seed, `derive_seed(seed, ENV_SEED_STREAM)`.
pub const ENV_SEED_STREAM: u64 = 1;
/// Stream index of the sampling / shuffling RNG seed, `derive_seed(seed, RNG_SEED_STREAM)`.
pub const RNG_SEED_STREAM: u64 = 2;

/// A callback receiving each update's metrics row (e.g. to drive a progress bar).
pub type ProgressFn<'a> = Box<dyn FnMut(&MetricsRow) + Send + 'a>;

/// Where a run starts, once its directory is open: what a caller shows before the first update.
#[derive(Clone, Debug, PartialEq)]
pub struct RunStart {
    /// The run directory (created by the trainer for a new run).
    pub run_dir: PathBuf,
    /// Updates its checkpoint covers (0 for a new run).
    pub updates_done: usize,
    /// Env steps its checkpoint covers (0 for a new run).
    pub env_steps: u64,
    /// A resumed run had no checkpoint yet, so it starts over from its config.
    pub restarted: bool,
    /// For a resume whose envs cannot replay their episodes ([`Env::resumes_by_replay`]; see
    /// the module docs): the number of episodes in progress at the checkpoint that were
    /// dropped. `None` for a new run and for envs resumed exactly.
    pub dropped_episodes: Option<usize>,
}

/// A callback receiving the [`RunStart`] of a run.
pub type StartFn<'a> = Box<dyn FnOnce(&RunStart) + Send + 'a>;

/// How to run [`train`].
#[derive(Default)]
pub struct TrainOptions<'a> {
    /// The run directory. A new run: created (refused if it already holds a run); `None`
    /// creates `<cfg.run_dir>/<env>__<policy>__<seed>__<unix time>/`. With `resume`: the run
    /// to continue (required).
    pub run_dir: Option<PathBuf>,
    /// Continue the run in `run_dir` from its latest checkpoint.
    pub resume: bool,
    /// Print nothing (CI).
    pub quiet: bool,
    /// Called after every update with its metrics row (e.g. to drive a progress bar); when
    /// set, the trainer prints no per-update lines itself.
    pub progress: Option<ProgressFn<'a>>,
    /// Stop once this many updates are done (counted from the start of the run, not of this
    /// call), writing a checkpoint; the run can be resumed later.
    pub stop_after_updates: Option<usize>,
    /// A stop request checked after every update (see [`crate::signals`]): once it holds a
    /// signal number, the trainer writes a checkpoint and returns [`Interrupted`].
    pub stop: Option<StopFlag>,
    /// Called once the run directory is open and the run is set up, before the first update.
    pub on_start: Option<StartFn<'a>>,
    /// The pid of a process on this host that holds the run's lock and hands it over to this
    /// call (an experiment runner that decided about the run under its lock, then started
    /// this worker), so that no other process can take the run in between.
    pub lock_from: Option<u32>,
    /// Called after every update, in order, with the policy (see [`crate::hooks`]); one
    /// returning `Break` ends the run there with a checkpoint.
    pub hooks: Vec<Box<dyn TrainHook + 'a>>,
}

impl TrainOptions<'_> {
    /// Calls [`TrainOptions::on_start`] (once) with the start of the run in `run_dir` at
    /// `counters`; `restart`: the run starts from its config (a new run, or a resumed one
    /// without a checkpoint); `dropped_episodes`: see [`RunStart::dropped_episodes`].
    pub(crate) fn report_start(
        &mut self,
        run_dir: &std::path::Path,
        counters: &TrainerState,
        restart: bool,
        dropped_episodes: Option<usize>,
    ) {
        if let Some(on_start) = self.on_start.take() {
            on_start(&RunStart {
                run_dir: run_dir.to_path_buf(),
                updates_done: counters.updates_done,
                env_steps: counters.env_steps,
                restarted: restart && self.resume,
                dropped_episodes,
            });
        }
    }
}

/// The run stopped at a signal: after the update under way, with a checkpoint written at the
/// update it had reached; or, when that update goes on for more than [`UPDATE_STOP_GRACE`]
/// after the signal, within one minibatch of that, dropping the update: the run then resumes
/// from its last checkpoint.
#[derive(Debug, thiserror::Error)]
#[error(
    "stopped by {} after update {update} of {num_updates}: {}; continue with `fbrl train \
     --resume {}`",
    signal_name(*.signal),
    checkpoint_note(.checkpoint, *.dropped_update),
    .run_dir.display()
)]
pub struct Interrupted {
    /// The signal number (2: SIGINT, 15: SIGTERM).
    pub signal: i32,
    /// Updates done and kept.
    pub update: usize,
    /// Updates of the whole run.
    pub num_updates: usize,
    /// The checkpoint the run resumes from (empty when none was written yet).
    pub checkpoint: PathBuf,
    /// The run directory.
    pub run_dir: PathBuf,
    /// Whether the update under way was dropped (the checkpoint is an earlier one).
    pub dropped_update: bool,
}

/// How long an update may go on after a stop signal before it is dropped (see [`Interrupted`]):
/// 5 s, or the seconds in [`STOP_GRACE_ENV`].
pub const UPDATE_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The environment variable that sets [`UPDATE_STOP_GRACE`] in seconds (e.g. `0.5`).
pub const STOP_GRACE_ENV: &str = "FBRL_STOP_GRACE_S";

/// [`UPDATE_STOP_GRACE`], or the value of [`STOP_GRACE_ENV`] when it is a number of seconds
/// (≥ 0, finite).
fn update_stop_grace() -> std::time::Duration {
    std::env::var(STOP_GRACE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(UPDATE_STOP_GRACE, std::time::Duration::from_secs_f64)
}

/// Where an interrupted run resumes from, in words.
fn checkpoint_note(checkpoint: &std::path::Path, dropped_update: bool) -> String {
    match (checkpoint.as_os_str().is_empty(), dropped_update) {
        (true, _) => {
            "the update under way was dropped and no checkpoint was written yet: a resume \
             starts from the beginning"
                .to_string()
        }
        (false, true) => format!(
            "the update under way was dropped; the run resumes from {}",
            checkpoint.display()
        ),
        (false, false) => format!("checkpoint written to {}", checkpoint.display()),
    }
}

impl Interrupted {
    /// The conventional exit status of a process stopped by this signal, `128 + signal`.
    pub fn exit_code(&self) -> i32 {
        128 + self.signal
    }

    /// For a program stopping as the signal asked: when `result` is an [`Interrupted`] run, prints
    /// its message after `prefix` and exits the process with [`Interrupted::exit_code`];
    /// otherwise returns `result`.
    pub fn exit_process_on<T>(result: Result<T>, prefix: &str) -> Result<T> {
        if let Err(e) = &result
            && let Some(stopped) = e.downcast_ref::<Interrupted>()
        {
            eprintln!("{prefix}{stopped}");
            std::process::exit(stopped.exit_code());
        }
        result
    }
}

/// What a call to [`train`] did.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Updates done so far (all calls together).
    pub updates_done: usize,
    /// Updates of the whole run.
    pub num_updates: usize,
    /// Env steps so far.
    pub env_steps: u64,
    /// Training wall time so far, seconds.
    pub wall_time_s: f64,
    /// Episodes finished so far.
    pub episodes: u64,
    /// Env steps per second over this call.
    pub steps_per_s: f64,
    /// Seconds spent collecting rollouts in this call (policy inference + env steps).
    pub rollout_time_s: f64,
    /// Seconds spent in PPO updates in this call (GAE, forward/backward, optimizer).
    pub update_time_s: f64,
    /// The last metrics row written, if any.
    pub last_row: Option<MetricsRow>,
    /// Why a hook ended the run before its last update, if one did.
    pub stopped_early: Option<String>,
}

/// Builds the envs of `cfg.env` and trains (see [`train`]). A custom env (`kind = "custom"`)
/// cannot be built from its record: call [`train`] with its factory instead.
pub fn train_from_config(cfg: &TrainConfig, opts: TrainOptions<'_>) -> Result<RunSummary> {
    if let EnvConfig::Custom(c) = &cfg.env {
        return Err(crate::config::env_error(c.not_buildable()).into());
    }
    train(cfg, |_| cfg.env.build(), opts)
}

/// Checks that the envs a caller built match the run's recorded `[env]`, so that the run's
/// `config.toml` describes what was trained: for a built-in kind, env 0 must have the spaces
/// of the env the config builds. A custom env is taken at its word.
pub(crate) fn check_envs_match_config<E: Env>(cfg: &TrainConfig, env: &E) -> Result<()> {
    if matches!(cfg.env, EnvConfig::Custom(_)) {
        return Ok(());
    }
    let configured = crate::config::build_env(&cfg.env)?;
    let describe = |space: &envs::BoxSpace, actions: envs::ActionSpace| {
        format!("observation shape {:?} and actions {actions}", space.shape)
    };
    let want = describe(configured.observation_space(), configured.action_space());
    let got = describe(env.observation_space(), env.action_space());
    if want != got {
        bail!(
            "the envs given to `train` do not match the config's `[env]`: kind = \"{}\" has \
             {want}, but env 0 (`{}`) has {got}; for an env of your own set \
             `env = EnvConfig::custom(\"<name>\")` (`kind = \"custom\"` in TOML) so that the \
             run's config.toml records it",
            cfg.env.name(),
            env.name()
        );
    }
    Ok(())
}

/// Trains a policy with PPO on `cfg.num_envs` envs made by `make_env(i)` (see the module
/// docs). Writes `config.toml`, `metrics.csv` and checkpoints into the run directory.
///
/// Errors: an invalid config (naming the key), an env error, a non-finite loss or gradient
/// (naming the update and the quantity; the last checkpoint is left as it was), a missing,
/// corrupted or truncated checkpoint on resume (naming the file).
pub fn train<E: Env>(
    cfg: &TrainConfig,
    make_env: impl Fn(usize) -> Result<E, EnvError> + Sync,
    opts: TrainOptions<'_>,
) -> Result<RunSummary> {
    // A custom env named by its own `Env::name` (`EnvConfig::custom_env()`).
    let named;
    let cfg = match &cfg.env {
        EnvConfig::Custom(c) if c.name.is_empty() => {
            let env = make_env(0).context("cannot build env 0 to read its name")?;
            let mut with_name = cfg.clone();
            with_name.env = EnvConfig::Custom(crate::config::CustomEnvConfig {
                name: env.name(),
                params: c.params.clone(),
            });
            named = with_name;
            &named
        }
        _ => cfg,
    };
    cfg.validate()?;
    crate::resources::check_threads(cfg.threads)?;
    crate::resources::check_run_fits(cfg, &make_env)?;
    if cfg.threads > 0 {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.threads)
            .build()
            .context("cannot build the thread pool")?;
        let make_env = &make_env;
        pool.install(move || on_pool_thread(move || train_inner(cfg, make_env, opts)))
    } else {
        train_inner(cfg, &make_env, opts)
    }
}

/// Runs `f` on a pool thread; with the `python` feature, keeping that thread's Python
/// thread state while it runs (once a Python env started the interpreter), so that Python
/// env steps on it cost what they cost on the main thread ([`envs::python::with_thread_state`]).
#[cfg(feature = "python")]
fn on_pool_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    envs::python::with_thread_state(f)
}

/// Runs `f` (without the `python` feature there is no Python thread state to keep).
#[cfg(not(feature = "python"))]
fn on_pool_thread<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Finds the first key whose value differs between two TOML tables (`prefix.key`).
pub(crate) fn first_difference(a: &toml::Table, b: &toml::Table, prefix: &str) -> Option<String> {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    // A table's `kind` (the env's, the policy's) decides what its other keys mean: when it
    // differs, it is the difference to name, not the first key the other kind lacks.
    let kind = String::from("kind");
    let keys = keys
        .contains(&kind)
        .then_some(&kind)
        .into_iter()
        .chain(keys.iter().copied().filter(|k| **k != kind));
    for k in keys {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (a.get(k), b.get(k)) {
            (Some(toml::Value::Table(x)), Some(toml::Value::Table(y))) => {
                if let Some(d) = first_difference(x, y, &key) {
                    return Some(d);
                }
            }
            (x, y) if x != y => return Some(key),
            _ => {}
        }
    }
    None
}

/// The keys that may change between a run and its resumption.
const RESUME_FREE_KEYS: [&str; 5] = [
    "threads",
    "run_dir",
    "checkpoint_every",
    "tensorboard",
    "label",
];

/// The first key (other than `threads`, `run_dir`, `checkpoint_every`, `tensorboard` and `label`,
/// which a run may change when it resumes) whose value differs between two configs.
pub fn differing_key(a: &TrainConfig, b: &TrainConfig) -> Result<Option<String>> {
    let as_table = |c: &TrainConfig| -> Result<toml::Table> {
        let mut t = toml::Table::try_from(c).context("cannot convert the config to TOML")?;
        for k in RESUME_FREE_KEYS {
            t.remove(k);
        }
        Ok(t)
    };
    Ok(first_difference(&as_table(a)?, &as_table(b)?, ""))
}

fn check_same_run(saved: &TrainConfig, cfg: &TrainConfig, path: &std::path::Path) -> Result<()> {
    if let Some(key) = differing_key(saved, cfg)? {
        bail!(
            "cannot resume: `{key}` differs from the run's {} (resume with the run's own config)",
            path.display()
        );
    }
    Ok(())
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { f64::NAN } else { s / n as f64 }
}

/// Fills the episode columns of `row` from the episodes finished in a rollout, with the
/// counts `counts` (the metrics file's, [`MetricsWriter::counts`]).
fn episode_columns(row: &mut MetricsRow, counts: &[&str], finished: &[FinishedEpisode]) {
    row.episodes = finished.len();
    row.return_mean = mean(finished.iter().map(|e| f64::from(e.stats.ret)));
    row.return_min = finished
        .iter()
        .map(|e| f64::from(e.stats.ret))
        .fold(f64::NAN, f64::min);
    row.return_max = finished
        .iter()
        .map(|e| f64::from(e.stats.ret))
        .fold(f64::NAN, f64::max);
    row.length_mean = mean(finished.iter().map(|e| f64::from(e.stats.length)));
    row.counts = CountColumns::of_episodes(counts, finished.iter().map(|e| &e.stats));
    row.success_rate = mean(
        finished
            .iter()
            .filter_map(|e| e.stats.success)
            .map(|s| f64::from(u8::from(s))),
    );
}

/// The state of a run that starts at update 0: its config.toml and a fresh metrics.csv
/// written, the envs reset, the RNG seeded, empty memory and normalisers.
fn fresh_start<E: Env>(
    cfg: &TrainConfig,
    learner: &dyn Learner,
    run: &RunDir,
    venv: &mut VecEnv<E>,
    model: &agents::Policy,
    device: &Device,
) -> Result<(TrainerState, RolloutState, MetricsWriter)> {
    let (n, obs_dim) = (cfg.num_envs, venv.obs_dim());
    write_atomic(&run.config_path(), cfg.to_toml().as_bytes())?;
    let mut metrics = MetricsWriter::create_for(
        run.metrics_path(),
        venv.envs()[0].episode_counts(),
        learner.metric_columns(),
    )
    .context("cannot create the run's metrics.csv")?;
    if cfg.tensorboard {
        metrics = metrics.with_tensorboard(&run.tensorboard_dir(), None)?;
    }
    let obs = venv.reset().context("cannot reset the envs")?.to_vec();
    let rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, RNG_SEED_STREAM));
    let state = RolloutState {
        obs,
        episode_starts: vec![1.0; n],
        memory: model.valid().init_memory(n, device),
        rng,
        reward_norm: learner.rollout_settings().reward_normalizer(n),
        obs_norm: learner.rollout_settings().obs_normalizer(obs_dim),
    };
    let counters = TrainerState::at_start(
        cfg.to_toml(),
        cfg.num_updates(),
        RngState::capture(&state.rng),
        venv.state(),
    );
    Ok((counters, state, metrics))
}

/// The state of a run continued from its latest checkpoint, after checking that the
/// checkpoint belongs to this run and that replaying the envs gives its observations (or,
/// for envs that cannot be replayed, after restarting their episodes: the last value is the
/// number of episodes dropped, see the module docs).
fn resume_start<E: Env>(
    cfg: &TrainConfig,
    learner: &mut dyn Learner,
    run: &RunDir,
    venv: &mut VecEnv<E>,
    model: agents::Policy,
    optim: ModuleOptimizer,
    device: &Device,
) -> Result<(
    agents::Policy,
    ModuleOptimizer,
    TrainerState,
    RolloutState,
    MetricsWriter,
    Option<usize>,
)> {
    let (n, obs_dim, num_updates) = (cfg.num_envs, venv.obs_dim(), cfg.num_updates());
    let ckpt = open_latest_to_continue(&run.checkpoint_dir())?;
    // A config.toml edited by hand since the checkpoint would silently change the run.
    if let Some(key) = ckpt.differing_key(cfg)? {
        bail!(
            "cannot resume: `{key}` in {} differs from the config the checkpoint {} was \
             trained with (was config.toml edited?); restore it, or start a new run",
            run.config_path().display(),
            ckpt.dir.display()
        );
    }
    let model = ckpt.load_model(model)?;
    let optim = ckpt.load_optim(optim)?;
    learner
        .restore_checkpoint(
            &mut |name| ckpt.read_extra(name).map_err(|e| format!("{e:#}")),
            &model,
        )
        .with_context(|| format!("cannot resume from {}", ckpt.dir.display()))?;
    let counters = ckpt.state.clone();
    if counters.num_updates != num_updates {
        bail!(
            "cannot resume: the checkpoint's run has {} updates, the config gives {num_updates}",
            counters.num_updates
        );
    }
    let replay = venv.envs().iter().all(Env::resumes_by_replay);
    let saved = &counters.rollout;
    let (obs, dropped_episodes) = if replay {
        (saved.replay(venv, "the envs", &ckpt.dir)?, None)
    } else {
        // The saved observations cannot be reproduced, so they are not compared: each env
        // starts its next episode (see the module docs).
        let obs = venv
            .restart(&saved.venv)
            .with_context(|| format!("cannot restart the envs of {}", ckpt.dir.display()))?
            .to_vec();
        let in_progress = |s: &&envs::vec_env::EnvSlotState| {
            !s.actions.is_empty() || !s.continuous_actions.is_empty()
        };
        (
            obs,
            Some(saved.venv.envs.iter().filter(in_progress).count()),
        )
    };
    ckpt.check_normalizers(cfg, obs_dim)?;
    let mut state = saved.restore(
        obs,
        n,
        device,
        &format!("checkpoint {}", ckpt.dir.display()),
    )?;
    if !replay {
        // Every env is at the start of an episode: the policy's memory and the discounted
        // returns of the reward normaliser start afresh.
        state.episode_starts.fill(1.0);
        if let Some(norm) = state.reward_norm.as_mut() {
            norm.returns.fill(0.0);
        }
    }
    let mut metrics = MetricsWriter::resume(run.metrics_path(), counters.updates_done)?;
    // A finished run has nothing left to log: no new (empty) event file for it.
    if cfg.tensorboard && counters.updates_done < num_updates {
        metrics = metrics.with_tensorboard(&run.tensorboard_dir(), Some(counters.env_steps))?;
    }
    Ok((model, optim, counters, state, metrics, dropped_episodes))
}

/// Writes a checkpoint of the run as it stands (weights, optimizer, counters, RNG, envs,
/// observations, memory, normalisers, and the `extra` files: the learner's state, a
/// distributed run's ranks) after syncing the metrics file, and returns its folder; then the
/// run's policy file (weights and observation normaliser, for `agents::Agent`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_checkpoint<E: Env>(
    cfg: &TrainConfig,
    run: &RunDir,
    model: &agents::Policy,
    optim: &ModuleOptimizer,
    counters: &mut TrainerState,
    state: &RolloutState,
    venv: &VecEnv<E>,
    metrics: &mut MetricsWriter,
    extra: Vec<(String, Vec<u8>)>,
) -> Result<PathBuf> {
    metrics.sync()?;
    counters.rollout = SavedRollout::capture(state, venv)?;
    let extra: Vec<(&str, &[u8])> = extra
        .iter()
        .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
        .collect();
    let saved = save_checkpoint_with(&run.checkpoint_dir(), model, optim, counters, &extra)?;
    agents::save_policy_with_normalizer(
        run.policy_path(),
        &model.valid(),
        &cfg.policy,
        venv.obs_dim(),
        &agents::ActionDist::from_space(venv.action_space()),
        state.obs_norm.as_ref(),
    )
    .context("cannot write the run's policy file")?;
    Ok(saved)
}

/// Opens the run of `opts` (resume) or creates it, and takes its lock. The flag says whether
/// it starts at update 0 (a new run, or one killed before its first checkpoint).
pub(crate) fn open_run(
    cfg: &TrainConfig,
    opts: &TrainOptions<'_>,
) -> Result<(RunDir, RunLock, bool)> {
    if !opts.resume {
        let run = RunDir::create_for(cfg, opts.run_dir.as_deref())?;
        let lock = RunLock::acquire_from(&run.path, opts.lock_from)?;
        return Ok((run, lock, true));
    }
    let Some(dir) = opts.run_dir.as_deref() else {
        bail!("resume needs the run directory to continue");
    };
    let run = RunDir::open(dir)?;
    let lock = RunLock::acquire_from(&run.path, opts.lock_from)?;
    let saved = TrainConfig::load(run.config_path())?;
    check_same_run(&saved, cfg, &run.config_path())?;
    let restart = crate::checkpoint::latest_checkpoint(&run.checkpoint_dir())?.is_none();
    // A resumed run tries again from its last good checkpoint: an old divergence record no
    // longer describes it (it is rewritten if the run diverges again).
    let diverged = run.path.join(crate::run_dir::DIVERGED_FILE);
    match std::fs::remove_file(&diverged) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove {}", diverged.display()));
        }
        _ => {}
    }
    if restart && !opts.quiet {
        // Killed before its first checkpoint: nothing to continue from, so the run starts
        // over from its config (the same seed gives the same rows again).
        eprintln!(
            "fbrl: {} has no checkpoint yet: starting the run over from its {} (update 0)",
            run.path.display(),
            crate::run_dir::CONFIG_FILE
        );
    }
    Ok((run, lock, restart))
}

/// The result of a learner's update, or the error that stops the run: a non-finite loss or
/// gradient names the last good checkpoint.
pub(crate) fn stop_on_update_error<T>(
    result: Result<T, LearnerError>,
    update: usize,
    ckpt_root: &std::path::Path,
) -> Result<T> {
    match result {
        Ok(x) => Ok(x),
        Err(e @ LearnerError::NonFinite { .. }) => {
            let last = match crate::checkpoint::latest_checkpoint(ckpt_root)? {
                Some(p) => format!("the last good checkpoint is {}", p.display()),
                None => "no checkpoint was written yet".to_string(),
            };
            // Recorded in the run directory, so that an experiment can report a diverged
            // setting as a result (a learning rate too high) rather than as a crash.
            if let Some(run_dir) = ckpt_root.parent() {
                let line = format!("update {update}: {e}\n");
                crate::checkpoint::write_atomic(
                    &run_dir.join(crate::run_dir::DIVERGED_FILE),
                    line.as_bytes(),
                )?;
            }
            bail!("training stopped: {e}; {last}");
        }
        Err(e) => Err(e).with_context(|| format!("update {update} failed")),
    }
}

/// The metrics row of the update `counters` has just counted, with the episode counts
/// `counts` (the metrics file's, [`MetricsWriter::counts`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn metrics_row(
    counters: &TrainerState,
    stats: &LearnerStats,
    columns: &'static [&'static str],
    counts: &[&str],
    lr: f64,
    steps_per_s: f64,
    finished: &[FinishedEpisode],
) -> MetricsRow {
    let mut row = MetricsRow {
        update: counters.updates_done,
        env_steps: counters.env_steps,
        wall_time_s: counters.wall_time_s,
        policy_loss: f64::from(stats.policy_loss),
        value_loss: f64::from(stats.value_loss),
        entropy: f64::from(stats.entropy),
        learner: LearnerColumns::new(columns, &stats.columns),
        explained_var: f64::from(stats.explained_var),
        grad_norm: f64::from(stats.grad_norm),
        lr,
        steps_per_s,
        ..MetricsRow::default()
    };
    episode_columns(&mut row, counts, finished);
    row
}

/// Hands the row to the progress callback, or prints a line every `log_every` updates.
pub(crate) fn report_row(
    opts: &mut TrainOptions<'_>,
    row: &MetricsRow,
    num_updates: usize,
    log_every: usize,
) {
    let update = row.update;
    if let Some(cb) = opts.progress.as_mut() {
        cb(row);
    } else if !opts.quiet && (update.is_multiple_of(log_every) || update == num_updates) {
        let (name, value) = row.learner.iter().next().unwrap_or(("-", f64::NAN));
        let name = if name == "approx_kl" { "kl" } else { name };
        eprintln!(
            "update {update}/{num_updates}  steps {}  return {:.3}  success {:.2}  {name} {value:.4}  {:.0} steps/s",
            row.env_steps, row.return_mean, row.success_rate, row.steps_per_s
        );
    }
}

/// The envs of the run (seeded from `cfg.seed`, checked against `cfg.env`) and a fresh
/// policy for them on `ad_device`, its weights drawn from `cfg.seed`.
fn build_envs_and_policy<E: Env>(
    cfg: &TrainConfig,
    make_env: &(impl Fn(usize) -> Result<E, EnvError> + Sync),
    device: &Device,
    ad_device: &Device,
) -> Result<(VecEnv<E>, agents::Policy)> {
    let venv = VecEnv::from_fn(
        cfg.num_envs,
        derive_seed(cfg.seed, ENV_SEED_STREAM),
        make_env,
    )
    .context("cannot build the envs")?;
    check_envs_match_config(cfg, &venv.envs()[0])?;
    let dist = agents::ActionDist::from_space(venv.action_space());
    device.seed(cfg.seed);
    let model = init_policy(&cfg.policy, venv.obs_dim(), &dist, ad_device)?;
    Ok((venv, model))
}

/// Whether `cfg.checkpoint_every` asks for a checkpoint after `update`. The first one comes
/// after update 1, so that a crash early on loses little.
pub(crate) fn is_periodic_checkpoint(cfg: &TrainConfig, update: usize) -> bool {
    cfg.checkpoint_every > 0 && (update == 1 || update.is_multiple_of(cfg.checkpoint_every))
}

/// What a resume of envs that cannot be replayed did, in words (see the module docs).
pub fn dropped_episodes_note(dropped_episodes: usize) -> String {
    format!(
        "resumed with envs that cannot replay their episodes (Python envs): the {dropped_episodes} \
         episode(s) in progress at the checkpoint were dropped and every env starts its next \
         episode, so the metrics from here on differ from those of an uninterrupted run"
    )
}

/// The line a run starts with when the trainer prints its own progress.
pub(crate) fn announce(cfg: &TrainConfig, num_parameters: usize, run_dir: &std::path::Path) {
    eprintln!(
        "fbrl: {} · {} ({num_parameters} parameters) · {} envs × {} steps · {} updates → {}",
        cfg.env.name(),
        cfg.policy.kind(),
        cfg.num_envs,
        cfg.num_steps,
        cfg.num_updates(),
        run_dir.display()
    );
}

/// The bookkeeping of a training loop, the same for one process and for the ranks of a
/// distributed run: where this call started, where it stops, its timings and its last row.
pub(crate) struct UpdateLoop {
    started: Instant,
    wall_at_start: f64,
    steps_at_start: u64,
    num_updates: usize,
    /// The update after which this call stops.
    pub(crate) stop_at: usize,
    log_every: usize,
    /// The last metrics row written.
    pub(crate) last_row: Option<MetricsRow>,
    rollout_time_s: f64,
    update_time_s: f64,
}

impl UpdateLoop {
    /// The error of a run in `run_dir` stopped by `signal` with `update` updates done and kept,
    /// resuming from `checkpoint` (empty when none was written yet); `dropped_update`: the update
    /// under way was dropped.
    pub(crate) fn interrupted(
        &self,
        signal: i32,
        update: usize,
        checkpoint: PathBuf,
        run_dir: PathBuf,
        dropped_update: bool,
    ) -> anyhow::Error {
        Interrupted {
            signal,
            update,
            num_updates: self.num_updates,
            checkpoint,
            run_dir,
            dropped_update,
        }
        .into()
    }

    /// A loop started at `started` from the counts of `counters`, for a run of `num_updates`
    /// updates that this call ends after `stop_after_updates` (all when `None`).
    pub(crate) fn new(
        started: Instant,
        counters: &TrainerState,
        num_updates: usize,
        stop_after_updates: Option<usize>,
    ) -> Self {
        Self {
            started,
            wall_at_start: counters.wall_time_s,
            steps_at_start: counters.env_steps,
            num_updates,
            stop_at: stop_after_updates.unwrap_or(num_updates).min(num_updates),
            log_every: (num_updates / 50).max(1),
            last_row: None,
            rollout_time_s: 0.0,
            update_time_s: 0.0,
        }
    }

    /// Adds the time from `t0` to now as rollout time and returns it.
    pub(crate) fn rollout_done(&mut self, t0: Instant) -> std::time::Duration {
        let t = t0.elapsed();
        self.rollout_time_s += t.as_secs_f64();
        t
    }

    /// Adds the time from `t0` to now, less the rollout's `t_rollout`, as update time.
    pub(crate) fn update_done(&mut self, t0: Instant, t_rollout: std::time::Duration) {
        self.update_time_s += (t0.elapsed() - t_rollout).as_secs_f64();
    }

    /// Counts update `update`, begun at `t0`, of `steps` env steps that finished `episodes`
    /// episodes in `counters`, and returns its env steps per second.
    pub(crate) fn count_update(
        &self,
        counters: &mut TrainerState,
        update: usize,
        steps: usize,
        episodes: usize,
        t0: Instant,
    ) -> f64 {
        counters.updates_done = update;
        counters.env_steps += steps as u64;
        counters.episodes += episodes as u64;
        counters.wall_time_s = self.wall_at_start + self.started.elapsed().as_secs_f64();
        steps as f64 / t0.elapsed().as_secs_f64().max(1e-9)
    }

    /// Writes `row` to the metrics file (and TensorBoard) with the info scalars' means of its
    /// rollout `info_means` (to the info log too), then reports it.
    pub(crate) fn log_row(
        &self,
        metrics: &mut MetricsWriter,
        info_log: &mut InfoLog,
        info_means: &[(&str, f64)],
        row: &MetricsRow,
        opts: &mut TrainOptions<'_>,
    ) -> Result<()> {
        metrics.append(row)?;
        info_log.append(row.update, row.env_steps, info_means)?;
        let info_tags: Vec<(String, f32)> = info_means
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(name, v)| (format!("info/{name}"), *v as f32))
            .collect();
        metrics.scalars(row.env_steps, &info_tags)?;
        report_row(opts, row, self.num_updates, self.log_every);
        Ok(())
    }

    /// The summary of this call, which left the run at `counters` in `run_dir`.
    pub(crate) fn summary(
        self,
        run_dir: PathBuf,
        counters: &TrainerState,
        stopped_early: Option<String>,
    ) -> RunSummary {
        let this_call = self.started.elapsed().as_secs_f64();
        RunSummary {
            run_dir,
            updates_done: counters.updates_done,
            num_updates: self.num_updates,
            env_steps: counters.env_steps,
            wall_time_s: counters.wall_time_s,
            episodes: counters.episodes,
            steps_per_s: (counters.env_steps - self.steps_at_start) as f64 / this_call.max(1e-9),
            rollout_time_s: self.rollout_time_s,
            update_time_s: self.update_time_s,
            last_row: self.last_row,
            stopped_early,
        }
    }
}

fn train_inner<E: Env>(
    cfg: &TrainConfig,
    make_env: &(impl Fn(usize) -> Result<E, EnvError> + Sync),
    mut opts: TrainOptions<'_>,
) -> Result<RunSummary> {
    let started = Instant::now();
    let device = Device::default();
    let ad_device = device.clone().autodiff();
    let num_updates = cfg.num_updates();
    let (n, t_len) = (cfg.num_envs, cfg.num_steps);

    let (mut venv, model) = build_envs_and_policy(cfg, make_env, &device, &ad_device)?;
    let mut learner = cfg.learner();
    let optim = learner.optimizer();
    let seq_len = learner.seq_len().unwrap_or(t_len);

    // The lock is held for the whole run: one process at a time trains in a run directory.
    let (run, _lock, restart) = open_run(cfg, &opts)?;
    let (mut model, mut optim, mut counters, mut state, mut metrics, dropped_episodes) = if restart
    {
        let (counters, state, metrics) =
            fresh_start(cfg, learner.as_ref(), &run, &mut venv, &model, &device)?;
        (model, optim, counters, state, metrics, None)
    } else {
        resume_start(
            cfg,
            learner.as_mut(),
            &run,
            &mut venv,
            model,
            optim,
            &device,
        )?
    };

    if !opts.quiet && opts.progress.is_none() {
        announce(cfg, model.num_parameters(), &run.path);
        if let Some(dropped) = dropped_episodes {
            eprintln!("fbrl: {}", dropped_episodes_note(dropped));
        }
    }
    opts.report_start(&run.path, &counters, restart, dropped_episodes);
    let mut lp = UpdateLoop::new(started, &counters, num_updates, opts.stop_after_updates);
    let ckpt_root = run.checkpoint_dir();
    let mut stopped_early = None;
    let mut info_log = InfoLog::open(run.path.join(INFO_FILE), counters.updates_done)?;

    while counters.updates_done < lp.stop_at {
        let update = counters.updates_done + 1;
        let t0 = Instant::now();
        let lr = learner.learning_rate_at(update - 1, num_updates);
        let rollout_policy = learner.acting_policy(&model);
        let (mut buf, finished) = collect_rollout(
            &rollout_policy,
            &mut venv,
            &mut state,
            t_len,
            seq_len,
            &device,
        )
        .with_context(|| format!("rollout of update {update} failed"))?;
        drop(rollout_policy);
        let t_rollout = lp.rollout_done(t0);
        // A signal lets the update under way finish (then a checkpoint is written at it) unless
        // that takes more than the grace period from the signal: then the update is dropped.
        let stop = opts.stop.clone();
        let grace = update_stop_grace();
        let seen = std::cell::Cell::new(None::<Instant>);
        let should_stop = move || {
            if stop.as_ref().and_then(StopFlag::requested).is_none() {
                return false;
            }
            let first = seen.get().unwrap_or_else(Instant::now);
            seen.set(Some(first));
            first.elapsed() > grace
        };
        let update_result = learner.update(
            model,
            &mut optim,
            &mut buf,
            UpdateInput {
                lr,
                rng: &mut state.rng,
                device: &ad_device,
                update,
                should_stop: &should_stop,
            },
        );
        if let Err(LearnerError::Interrupted { .. }) = &update_result {
            // Part-way through the update: the last checkpoint is the state to resume from.
            let signal = opts
                .stop
                .as_ref()
                .and_then(StopFlag::requested)
                .unwrap_or(15);
            let checkpoint = crate::checkpoint::latest_checkpoint(&ckpt_root)?;
            return Err(lp.interrupted(
                signal,
                counters.updates_done,
                checkpoint.unwrap_or_default(),
                run.path.clone(),
                true,
            ));
        }
        let (new_model, stats) = stop_on_update_error(update_result, update, &ckpt_root)?;
        model = new_model;
        lp.update_done(t0, t_rollout);

        let steps_per_s = lp.count_update(&mut counters, update, n * t_len, finished.len(), t0);
        let row = metrics_row(
            &counters,
            &stats,
            learner.metric_columns(),
            metrics.counts(),
            lr,
            steps_per_s,
            &finished,
        );
        lp.log_row(
            &mut metrics,
            &mut info_log,
            &buf.info_scalar_means(),
            &row,
            &mut opts,
        )?;
        if stopped_early.is_none() {
            stopped_early = run_hooks(
                &mut opts.hooks,
                &row,
                num_updates,
                &model,
                &state,
                cfg,
                &run,
                &venv,
                &device,
                &mut metrics,
            )
            .with_context(|| format!("a training hook failed after update {update}"))?;
        }
        lp.last_row = Some(row);

        let signal = opts.stop.as_ref().and_then(StopFlag::requested);
        if is_periodic_checkpoint(cfg, update)
            || update == lp.stop_at
            || signal.is_some()
            || stopped_early.is_some()
        {
            let saved = write_checkpoint(
                cfg,
                &run,
                &model,
                &optim,
                &mut counters,
                &state,
                &venv,
                &mut metrics,
                learner.checkpoint_files()?,
            )?;
            if let Some(signal) = signal {
                return Err(lp.interrupted(signal, update, saved, run.path.clone(), false));
            }
        }
        if stopped_early.is_some() {
            break;
        }
    }

    Ok(lp.summary(run.path.clone(), &counters, stopped_early))
}

/// Calls the hooks of a run after an update; the reason of the first one that ends the run.
#[allow(clippy::too_many_arguments)]
fn run_hooks<E: Env>(
    hooks: &mut [Box<dyn TrainHook + '_>],
    row: &MetricsRow,
    num_updates: usize,
    model: &agents::Policy,
    state: &RolloutState,
    cfg: &TrainConfig,
    run: &RunDir,
    venv: &VecEnv<E>,
    device: &Device,
    metrics: &mut MetricsWriter,
) -> Result<Option<String>> {
    if hooks.is_empty() {
        return Ok(None);
    }
    let policy = model.valid();
    let dist = agents::ActionDist::from_space(venv.action_space());
    let mut ctx = UpdateContext::new(
        row,
        num_updates,
        &policy,
        state.obs_norm.as_ref(),
        cfg,
        &run.path,
        venv.obs_dim(),
        &dist,
        device,
    );
    let mut stop = None;
    for hook in hooks.iter_mut() {
        if let std::ops::ControlFlow::Break(reason) = hook.on_update(&mut ctx)? {
            stop = Some(reason);
            break;
        }
    }
    metrics.scalars(row.env_steps, &ctx.take_scalars())?;
    Ok(stop)
}

/// Builds the policy of `cfg` on `device`, with the error naming the key.
pub(crate) fn init_policy(
    cfg: &PolicyConfig,
    obs_dim: usize,
    dist: &agents::ActionDist,
    device: &Device,
) -> Result<agents::Policy> {
    cfg.init_for(obs_dim, dist, device)
        .map_err(|e| anyhow::anyhow!("cannot build the policy: {e}"))
}
