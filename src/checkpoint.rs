//! Checkpoints of a training run: weights, Adam state, counters, RNG, env and memory state,
//! written atomically so that a kill at any moment leaves the last good checkpoint intact.
//!
//! # Layout
//! ```text
//! <run>/checkpoint/
//!   latest                  name of the newest complete checkpoint, e.g. `update_000020`
//!   update_000020/
//!     model.bpk             policy weights (burnpack; parameter ids kept)
//!     optim.bpk             Adam moments and step counts (burnpack, keyed by parameter id)
//!     state.json            counters, sampling RNG, VecEnv state, observations, episode
//!                           starts, the per-env policy memory and the reward / observation
//!                           normalisers' statistics (see [`TrainerState`])
//!     manifest.json         length and FNV-1a 64 hash of each of the three files above
//! ```
//!
//! # Atomicity
//! A checkpoint is written to `update_N.tmp/`, every file is fsynced, the folder is renamed to
//! `update_N/` and the parent fsynced; then `latest` is replaced by writing `latest.tmp`,
//! fsyncing and renaming it over `latest` (atomic on POSIX). Only then are older checkpoints
//! removed. A kill before the rename of `latest` leaves the previous checkpoint as `latest`;
//! leftover `.tmp` folders are ignored and cleaned on the next write.
//!
//! # Integrity
//! Loading checks each file against the manifest; a missing, truncated or corrupted file is an
//! error naming it. Every write keeps the checkpoint before the new one, so when the newest is
//! damaged after it was written (a disk fault, an interrupted copy of the run), [`open_latest`]
//! opens that earlier one instead and says so: the run loses the updates in between, not the
//! run.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use agents::Memory;
use agents::rollout::{ObsNormalizer, RewardNormalizer, RolloutState};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, TensorData};
use envs::{Env, VecEnv, VecEnvState};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use anyhow::{Context, Result, bail};

/// Version of the checkpoint format.
pub const CHECKPOINT_VERSION: u32 = 2;

/// Name of the pointer file to the newest checkpoint.
pub const LATEST: &str = "latest";

const MODEL_FILE: &str = "model.bpk";
const OPTIM_FILE: &str = "optim.bpk";
const STATE_FILE: &str = "state.json";
const MANIFEST_FILE: &str = "manifest.json";

/// The exact position of a ChaCha8 stream: seed, stream id and word position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The 32-byte seed, hex.
    pub seed: String,
    /// Stream id.
    pub stream: u64,
    /// Word position in the stream (a u128, as a decimal string).
    pub word_pos: String,
}

impl RngState {
    /// Captures `rng`'s position.
    pub fn capture(rng: &ChaCha8Rng) -> Self {
        Self {
            seed: rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// Rebuilds the RNG at the captured position.
    pub fn restore(&self) -> Result<ChaCha8Rng> {
        use rand::SeedableRng;
        if self.seed.len() != 64 {
            bail!("rng.seed must be 64 hex digits, got {}", self.seed.len());
        }
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = u8::from_str_radix(&self.seed[2 * i..2 * i + 2], 16)
                .context("rng.seed is not hex")?;
        }
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(
            self.word_pos
                .parse::<u128>()
                .context("rng.word_pos is not a number")?,
        );
        Ok(rng)
    }
}

/// A memory tensor on the host: shape `[B, slots, width]` and row-major data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedTensor {
    /// `[B, slots, width]`.
    pub shape: [usize; 3],
    /// Row-major values.
    pub data: Vec<f32>,
}

/// Saves a [`Memory`] to host tensors.
pub fn memory_to_host(memory: &Memory) -> Result<Vec<SavedTensor>> {
    memory
        .tensors
        .iter()
        .map(|t| {
            let shape = t.dims();
            let data = t
                .to_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("cannot read memory tensor: {e:?}"))?;
            Ok(SavedTensor { shape, data })
        })
        .collect()
}

/// Rebuilds a [`Memory`] on `device`.
pub fn memory_from_host(saved: &[SavedTensor], device: &Device) -> Result<Memory> {
    let mut tensors = Vec::with_capacity(saved.len());
    for (i, s) in saved.iter().enumerate() {
        if s.data.len() != s.shape.iter().product::<usize>() {
            bail!(
                "memory tensor {i}: shape {:?} does not match its {} values",
                s.shape,
                s.data.len()
            );
        }
        tensors.push(Tensor::<3>::from_data(
            TensorData::new(s.data.clone(), s.shape),
            device,
        ));
    }
    Ok(Memory { tensors })
}

/// Everything of a run that is not weights or optimizer state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Format version ([`CHECKPOINT_VERSION`]).
    pub version: u32,
    /// The run's resolved config (TOML) when the run started: a resume refuses a config.toml
    /// that differs from it in any key that may not change.
    pub config: String,
    /// Updates completed (the next update is `updates_done + 1`); also the position in the
    /// learning-rate schedule.
    pub updates_done: usize,
    /// Total updates of the run (the schedule's length).
    pub num_updates: usize,
    /// Env steps so far.
    pub env_steps: u64,
    /// Training wall time so far, seconds.
    pub wall_time_s: f64,
    /// Episodes finished so far.
    pub episodes: u64,
    /// Where the rollout stands (its keys stand at the top level of state.json).
    #[serde(flatten)]
    pub rollout: SavedRollout,
}

impl TrainerState {
    /// The state of a run before its first update: no updates, steps or episodes yet, the
    /// given `config` (TOML), RNG and envs, and the other rollout fields empty (they are filled
    /// when a checkpoint is written).
    pub fn at_start(config: String, num_updates: usize, rng: RngState, venv: VecEnvState) -> Self {
        Self {
            version: CHECKPOINT_VERSION,
            config,
            updates_done: 0,
            num_updates,
            env_steps: 0,
            wall_time_s: 0.0,
            episodes: 0,
            rollout: SavedRollout {
                rng,
                venv,
                obs: vec![],
                episode_starts: vec![],
                memory: vec![],
                reward_norm: None,
                obs_norm: None,
            },
        }
    }
}

/// Where a rollout over a set of envs stands, as a checkpoint keeps it: what a resume needs
/// to continue it bit for bit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedRollout {
    /// Sampling / shuffling RNG.
    pub rng: RngState,
    /// The VecEnv's resume state.
    pub venv: VecEnvState,
    /// Current observations `[N, obs_dim]`.
    pub obs: Vec<f32>,
    /// Episode-start flags for the next step `[N]`.
    pub episode_starts: Vec<f32>,
    /// The policy memory of every env.
    pub memory: Vec<SavedTensor>,
    /// Reward scaling statistics (the learner's `norm_reward`), `null` when off.
    pub reward_norm: Option<RewardNormalizer>,
    /// Observation normalisation statistics (the learner's `norm_obs`), `null` when off.
    pub obs_norm: Option<ObsNormalizer>,
}

impl SavedRollout {
    /// The rollout of `state` over the envs of `venv`.
    pub fn capture<E: Env>(state: &RolloutState, venv: &VecEnv<E>) -> Result<Self> {
        Ok(Self {
            rng: RngState::capture(&state.rng),
            venv: venv.state(),
            obs: state.obs.clone(),
            episode_starts: state.episode_starts.clone(),
            memory: memory_to_host(&state.memory)?,
            reward_norm: state.reward_norm.clone(),
            obs_norm: state.obs_norm.clone(),
        })
    }

    /// The rollout state with the observations `obs` of the envs, after checking that there
    /// is an episode-start flag for each of `num_envs` envs (`source` names where the saved
    /// state was read in the error); the memory goes to `device`.
    pub fn restore(
        &self,
        obs: Vec<f32>,
        num_envs: usize,
        device: &Device,
        source: &str,
    ) -> Result<RolloutState> {
        if self.episode_starts.len() != num_envs {
            bail!(
                "{source} has {} episode-start flags for {num_envs} envs",
                self.episode_starts.len()
            );
        }
        Ok(RolloutState {
            obs,
            episode_starts: self.episode_starts.clone(),
            memory: memory_from_host(&self.memory, device)?,
            rng: self.rng.restore()?,
            reward_norm: self.reward_norm.clone(),
            obs_norm: self.obs_norm.clone(),
        })
    }

    /// Replays the envs of `venv` to the saved position and returns their observations,
    /// after checking them bit for bit against the saved ones (`whose` names the envs and
    /// `dir` the checkpoint in the errors).
    pub fn replay<E: Env>(
        &self,
        venv: &mut VecEnv<E>,
        whose: &str,
        dir: &Path,
    ) -> Result<Vec<f32>> {
        let obs = venv
            .restore(&self.venv)
            .with_context(|| format!("cannot restore {whose} from {}", dir.display()))?
            .to_vec();
        if obs.len() != self.obs.len()
            || obs
                .iter()
                .zip(&self.obs)
                .any(|(a, b)| a.to_bits() != b.to_bits())
        {
            bail!(
                "cannot resume from {}: replaying {whose} does not give the saved observations \
                 (is the env deterministic given its seed and actions?)",
                dir.display()
            );
        }
        Ok(obs)
    }
}

/// One normaliser of a checkpoint against the run: `(what, state key, config key)` name it,
/// `on` says whether the run uses it, `saved` is the result of checking the saved state (`None`
/// when the checkpoint has none).
fn check_normalizer(
    path: &Path,
    (what, key, flag): (&str, &str, &str),
    on: bool,
    saved: Option<Result<(), String>>,
) -> Result<()> {
    match (saved, on) {
        (Some(Err(e)), true) => bail!(
            "checkpoint file {}: the {what} (`{key}`) is invalid: {e}",
            path.display()
        ),
        (Some(Ok(())), true) | (None, false) => Ok(()),
        (saved, _) => bail!(
            "checkpoint file {}: the run has {flag} = {on} but the checkpoint {} a {what} (`{key}`)",
            path.display(),
            if saved.is_some() { "has" } else { "lacks" }
        ),
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ManifestEntry {
    name: String,
    len: u64,
    fnv64: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    files: Vec<ManifestEntry>,
}

/// FNV-1a 64-bit hash (detects corruption; not cryptographic).
fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync folder {}", dir.display()))
}

fn fsync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", path.display()))
}

/// Writes `bytes` to `path` atomically: `path.tmp`, fsync, rename, fsync the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f =
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(bytes)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("cannot sync {}", tmp.display()))?;
    }
    fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    if let Some(parent) = path.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// Name of the checkpoint folder of update `n`.
pub fn checkpoint_name(updates_done: usize) -> String {
    format!("update_{updates_done:06}")
}

/// Writes a checkpoint of `model`, `optim` and `state` under `ckpt_root` (a run's
/// `checkpoint/` folder) atomically, points `latest` at it and removes older ones.
/// Returns the checkpoint's folder.
pub fn save_checkpoint<M: Module>(
    ckpt_root: &Path,
    model: &M,
    optim: &ModuleOptimizer,
    state: &TrainerState,
) -> Result<PathBuf> {
    save_checkpoint_with(ckpt_root, model, optim, state, &[])
}

/// [`save_checkpoint`] with `extra` files `(name, bytes)` written into the checkpoint folder
/// and listed in its manifest (read back with [`VerifiedCheckpoint::read_extra`]).
pub fn save_checkpoint_with<M: Module>(
    ckpt_root: &Path,
    model: &M,
    optim: &ModuleOptimizer,
    state: &TrainerState,
    extra: &[(&str, &[u8])],
) -> Result<PathBuf> {
    fs::create_dir_all(ckpt_root)
        .with_context(|| format!("cannot create {}", ckpt_root.display()))?;
    let name = checkpoint_name(state.updates_done);
    let tmp = ckpt_root.join(format!("{name}.tmp"));
    let dest = ckpt_root.join(&name);
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
    }
    if let Err(e) = write_files(&tmp, model, optim, state, extra) {
        // A partial folder is never read, and would hold the space a retry needs (a full disk).
        let _ = fs::remove_dir_all(&tmp);
        return Err(e.context(format!(
            "the checkpoint of update {} was not written (the checkpoints already in {} are \
             unchanged)",
            state.updates_done,
            ckpt_root.display()
        )));
    }

    if dest.exists() {
        fs::remove_dir_all(&dest).with_context(|| format!("cannot remove {}", dest.display()))?;
    }
    fs::rename(&tmp, &dest)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), dest.display()))?;
    fsync_dir(ckpt_root)?;
    write_atomic(&ckpt_root.join(LATEST), format!("{name}\n").as_bytes())?;

    // The new checkpoint is live: drop the older ones and leftover temporary folders, but
    // keep the previous one, which a reader that read `latest` just before may still be
    // opening (`fbrl eval` during training).
    let mut older: Vec<(String, PathBuf)> = Vec::new();
    for entry in
        fs::read_dir(ckpt_root).with_context(|| format!("cannot list {}", ckpt_root.display()))?
    {
        let entry = entry?;
        let fname = entry.file_name().to_string_lossy().to_string();
        if fname.starts_with("update_") && fname != name && entry.path().is_dir() {
            older.push((fname, entry.path()));
        }
    }
    // Names sort by update (zero-padded); `.tmp` leftovers sort after their update.
    older.sort();
    let keep = older
        .iter()
        .rposition(|(f, _)| !f.ends_with(".tmp") && f.as_str() < name.as_str());
    for (k, (_, path)) in older.iter().enumerate() {
        if Some(k) != keep {
            fs::remove_dir_all(path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(dest)
}

/// Writes the files of a checkpoint (`model`, `optim`, `state`, `extra` and the manifest of
/// them) into the new folder `tmp`, each fsynced.
fn write_files<M: Module>(
    tmp: &Path,
    model: &M,
    optim: &ModuleOptimizer,
    state: &TrainerState,
    extra: &[(&str, &[u8])],
) -> Result<()> {
    fs::create_dir(tmp).with_context(|| format!("cannot create {}", tmp.display()))?;

    model
        .clone()
        .save_file(tmp.join(MODEL_FILE))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e:?}", tmp.join(MODEL_FILE).display()))?;
    optim
        .save(tmp.join(OPTIM_FILE))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e:?}", tmp.join(OPTIM_FILE).display()))?;
    let json = serde_json::to_vec(state).context("cannot serialise the trainer state")?;
    fs::write(tmp.join(STATE_FILE), &json)
        .with_context(|| format!("cannot write {}", tmp.join(STATE_FILE).display()))?;

    for (name, bytes) in extra {
        fs::write(tmp.join(name), bytes)
            .with_context(|| format!("cannot write {}", tmp.join(name).display()))?;
    }
    let mut files = Vec::new();
    let names = [MODEL_FILE, OPTIM_FILE, STATE_FILE]
        .into_iter()
        .chain(extra.iter().map(|(name, _)| *name));
    for f in names {
        let p = tmp.join(f);
        let bytes = fs::read(&p).with_context(|| format!("cannot read back {}", p.display()))?;
        fsync_file(&p)?;
        files.push(ManifestEntry {
            name: f.to_string(),
            len: bytes.len() as u64,
            fnv64: format!("{:016x}", fnv64(&bytes)),
        });
    }
    let manifest = Manifest {
        version: CHECKPOINT_VERSION,
        files,
    };
    let mpath = tmp.join(MANIFEST_FILE);
    fs::write(&mpath, serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| format!("cannot write {}", mpath.display()))?;
    fsync_file(&mpath)?;
    fsync_dir(tmp)?;
    Ok(())
}

/// A checkpoint found on disk and verified against its manifest.
#[derive(Clone, Debug)]
pub struct VerifiedCheckpoint {
    /// Its folder.
    pub dir: PathBuf,
    /// The trainer state.
    pub state: TrainerState,
    /// The weights file's bytes, as verified (loading never re-reads a file that a running
    /// trainer may have rotated away since).
    model_bytes: Vec<u8>,
}

impl VerifiedCheckpoint {
    /// Path of the weights file.
    pub fn model_path(&self) -> PathBuf {
        self.dir.join(MODEL_FILE)
    }

    /// Path of the optimizer-state file.
    pub fn optim_path(&self) -> PathBuf {
        self.dir.join(OPTIM_FILE)
    }

    /// Loads the weights into `model` (built with the run's policy config); the error names the
    /// weights file.
    pub fn load_model<M: Module>(&self, model: M) -> Result<M> {
        let p = self.model_path();
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(self.model_bytes.clone()))
            .map_err(|e| anyhow::anyhow!("cannot read weights from {}: {e}", p.display()))?;
        model
            .try_load_record(record)
            .map_err(|e| anyhow::anyhow!("cannot load weights from {}: {e}", p.display()))
    }

    /// The bytes of the extra file `name` (see [`save_checkpoint_with`]), checked against the
    /// manifest; `None` when the checkpoint has no such file.
    pub fn read_extra(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let mpath = self.dir.join(MANIFEST_FILE);
        let mbytes =
            fs::read(&mpath).with_context(|| format!("cannot read {}", mpath.display()))?;
        let manifest: Manifest = serde_json::from_slice(&mbytes)
            .with_context(|| format!("checkpoint file {} is corrupted", mpath.display()))?;
        let Some(entry) = manifest.files.iter().find(|e| e.name == name) else {
            return Ok(None);
        };
        let p = self.dir.join(name);
        let bytes = fs::read(&p)
            .with_context(|| format!("checkpoint file {} is missing or unreadable", p.display()))?;
        if bytes.len() as u64 != entry.len || format!("{:016x}", fnv64(&bytes)) != entry.fnv64 {
            bail!(
                "checkpoint file {} is truncated or corrupted (its length or hash differs from \
                 the manifest's)",
                p.display()
            );
        }
        Ok(Some(bytes))
    }

    /// Path of the trainer-state file.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The first key in which the config this checkpoint was trained with (its record in
    /// state.json) differs from `cfg`, if any: a config.toml edited since the checkpoint
    /// would silently change a resumed or evaluated run.
    pub fn differing_key(&self, cfg: &crate::TrainConfig) -> Result<Option<String>> {
        let recorded = crate::TrainConfig::from_toml_str(
            &self.state.config,
            &format!("the config recorded in {}", self.state_path().display()),
        )?;
        crate::trainer::differing_key(&recorded, cfg)
    }

    /// Checks the checkpoint's normalisers against the run's config `cfg` (the learner's
    /// `norm_reward` and `norm_obs`, e.g. `ppo.norm_reward`; `num_envs`) and observation size;
    /// the error names state.json and the normaliser.
    pub fn check_normalizers(&self, cfg: &crate::TrainConfig, obs_dim: usize) -> Result<()> {
        let path = self.state_path();
        let learner = cfg.learner();
        let settings = learner.rollout_settings();
        let key = |field: &str| format!("{}.{field}", learner.name());
        check_normalizer(
            &path,
            ("reward normaliser", "reward_norm", &key("norm_reward")),
            settings.norm_reward,
            self.state
                .rollout
                .reward_norm
                .as_ref()
                .map(|n| n.check(cfg.num_envs)),
        )?;
        check_normalizer(
            &path,
            ("observation normaliser", "obs_norm", &key("norm_obs")),
            settings.norm_obs,
            self.state
                .rollout
                .obs_norm
                .as_ref()
                .map(|n| n.check(obs_dim)),
        )
    }

    /// Loads the optimizer state into `optim`.
    pub fn load_optim(&self, optim: ModuleOptimizer) -> Result<ModuleOptimizer> {
        let p = self.optim_path();
        optim
            .load(&p)
            .map_err(|e| anyhow::anyhow!("cannot load optimizer state from {}: {e:?}", p.display()))
    }
}

/// The folder of the newest checkpoint under `ckpt_root`, if any: the one `latest` names, or,
/// when `latest` is missing (deleted by hand, or a kill between the first checkpoint's rename
/// and the pointer's) or names no folder, the newest complete `update_N` folder (complete by construction: a
/// folder gets that name only after all its files are written and fsynced).
pub fn latest_checkpoint(ckpt_root: &Path) -> Result<Option<PathBuf>> {
    let latest = ckpt_root.join(LATEST);
    if !latest.exists() {
        let newest = newest_complete(ckpt_root)?;
        if let Some(dir) = &newest {
            eprintln!(
                "{} is missing: using {}, the newest complete checkpoint",
                latest.display(),
                dir.display()
            );
        }
        return Ok(newest);
    }
    let name =
        fs::read_to_string(&latest).with_context(|| format!("cannot read {}", latest.display()))?;
    let name = name.trim();
    let usable = !name.is_empty()
        && !name.contains('/')
        && !name.contains("..")
        && ckpt_root.join(name).is_dir();
    if !usable {
        // A damaged pointer: the folders themselves say which checkpoint is the newest.
        let Some(dir) = newest_complete(ckpt_root)? else {
            bail!(
                "checkpoint pointer {} is corrupted (`{name}`) and no checkpoint folder is left",
                latest.display()
            );
        };
        eprintln!(
            "{} is corrupted (`{name}`): using {}, the newest complete checkpoint",
            latest.display(),
            dir.display()
        );
        return Ok(Some(dir));
    }
    Ok(Some(ckpt_root.join(name)))
}

/// The `update_N` folder (not a `.tmp` leftover) with the largest `N` under `ckpt_root`.
fn newest_complete(ckpt_root: &Path) -> Result<Option<PathBuf>> {
    Ok(update_folders(ckpt_root)?.pop().map(|(_, p)| p))
}

/// The complete checkpoint folders `update_N` under `ckpt_root` with their `N`, by `N`; none
/// when the folder cannot be read.
fn update_folders(ckpt_root: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let Ok(entries) = fs::read_dir(ckpt_root) else {
        return Ok(Vec::new());
    };
    let mut folders = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", ckpt_root.display()))?;
        if let Some(n) = update_number(&entry.file_name().to_string_lossy())
            && entry.path().is_dir()
        {
            folders.push((n, entry.path()));
        }
    }
    folders.sort_unstable();
    Ok(folders)
}

/// Opens the checkpoint in folder `dir`, checking every file against the manifest.
pub fn open_checkpoint(dir: &Path) -> Result<VerifiedCheckpoint> {
    let model_bytes = intact_files(dir)?;
    read_verified(dir, model_bytes)
}

/// Checks the manifest of the checkpoint in `dir` and every file against it (the damage a
/// checkpoint can suffer after it was written: a file missing, truncated or corrupted);
/// returns the model file's bytes.
fn intact_files(dir: &Path) -> Result<Vec<u8>> {
    let mpath = dir.join(MANIFEST_FILE);
    let mbytes = fs::read(&mpath).with_context(|| {
        format!(
            "checkpoint file {} is missing or unreadable",
            mpath.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_slice(&mbytes).with_context(|| {
        format!(
            "checkpoint file {} is corrupted or truncated",
            mpath.display()
        )
    })?;
    if manifest.version != CHECKPOINT_VERSION {
        bail!(
            "checkpoint {} has format version {}, this build reads version {CHECKPOINT_VERSION}",
            dir.display(),
            manifest.version
        );
    }
    let mut model_bytes = Vec::new();
    for f in [MODEL_FILE, OPTIM_FILE, STATE_FILE] {
        let p = dir.join(f);
        let Some(entry) = manifest.files.iter().find(|e| e.name == f) else {
            bail!("checkpoint file {} lacks an entry for {f}", mpath.display());
        };
        let bytes = fs::read(&p)
            .with_context(|| format!("checkpoint file {} is missing or unreadable", p.display()))?;
        if (bytes.len() as u64) < entry.len {
            bail!(
                "checkpoint file {} is truncated: {} bytes, expected {}",
                p.display(),
                bytes.len(),
                entry.len
            );
        }
        if bytes.len() as u64 != entry.len || format!("{:016x}", fnv64(&bytes)) != entry.fnv64 {
            bail!(
                "checkpoint file {} is corrupted: its contents do not match {}",
                p.display(),
                mpath.display()
            );
        }
        if f == MODEL_FILE {
            model_bytes = bytes;
        }
    }
    Ok(model_bytes)
}

/// The checkpoint in `dir`, whose files [`intact_files`] checked, with its state read.
fn read_verified(dir: &Path, model_bytes: Vec<u8>) -> Result<VerifiedCheckpoint> {
    let spath = dir.join(STATE_FILE);
    let state: TrainerState = serde_json::from_slice(&fs::read(&spath)?)
        .with_context(|| format!("checkpoint file {} cannot be parsed", spath.display()))?;
    if state.version != CHECKPOINT_VERSION {
        bail!(
            "checkpoint file {} has format version {}",
            spath.display(),
            state.version
        );
    }
    Ok(VerifiedCheckpoint {
        dir: dir.to_path_buf(),
        state,
        model_bytes,
    })
}

/// Opens the newest checkpoint under `ckpt_root` (see [`open_checkpoint`]). A checkpoint that
/// vanishes while it is being read (a running trainer rotated it away) is not an error: the
/// newer one `latest` names by then is read instead. A damaged one (its manifest or a file
/// missing, truncated or corrupted) gives way to the newest intact checkpoint before it, with
/// a warning on stderr that names the damage; with none left, its error is returned.
pub fn open_latest(ckpt_root: &Path) -> Result<VerifiedCheckpoint> {
    open_newest(ckpt_root).map(|(ckpt, _)| ckpt)
}

/// [`open_latest`], and whether it fell back past a damaged checkpoint.
fn open_newest(ckpt_root: &Path) -> Result<(VerifiedCheckpoint, bool)> {
    let mut attempts = 0;
    loop {
        let Some(dir) = latest_checkpoint(ckpt_root)? else {
            bail!(
                "no checkpoint in {} (no `{LATEST}` file)",
                ckpt_root.display()
            );
        };
        match intact_files(&dir) {
            Ok(model_bytes) => return Ok((read_verified(&dir, model_bytes)?, false)),
            Err(_) if !dir.exists() && attempts < 10 => attempts += 1,
            Err(e) => return Ok((open_before(ckpt_root, &dir, e)?, true)),
        }
    }
}

/// [`open_latest`] for the process that continues the run (it holds the run's lock). After
/// falling back past damaged checkpoints, it moves them aside (`update_N` becomes
/// `damaged_update_N`, kept for inspection and never read again) and points `latest` at the
/// checkpoint the run continues from. Otherwise the run's messages would name a damaged
/// checkpoint, and its next write would keep a damaged one as "the previous checkpoint"
/// instead of the intact one.
pub fn open_latest_to_continue(ckpt_root: &Path) -> Result<VerifiedCheckpoint> {
    let (ckpt, fell_back) = open_newest(ckpt_root)?;
    let chosen = ckpt
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let Some(limit) = update_number(&chosen).filter(|_| fell_back) else {
        return Ok(ckpt);
    };
    for (_, path) in update_folders(ckpt_root)?
        .into_iter()
        .filter(|(n, _)| *n > limit)
    {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let aside = ckpt_root.join(format!("damaged_{name}"));
        if aside.exists() {
            fs::remove_dir_all(&aside)
                .with_context(|| format!("cannot remove {}", aside.display()))?;
        }
        fs::rename(&path, &aside)
            .with_context(|| format!("cannot move {} to {}", path.display(), aside.display()))?;
        eprintln!(
            "moved the damaged checkpoint {} to {}",
            path.display(),
            aside.display()
        );
    }
    write_atomic(&ckpt_root.join(LATEST), format!("{chosen}\n").as_bytes())?;
    Ok(ckpt)
}

/// The newest intact checkpoint under `ckpt_root` older than the damaged `damaged` (whose
/// error is `damage`), or that error when there is none.
fn open_before(
    ckpt_root: &Path,
    damaged: &Path,
    damage: anyhow::Error,
) -> Result<VerifiedCheckpoint> {
    let Some(limit) = damaged
        .file_name()
        .and_then(|n| update_number(&n.to_string_lossy()))
    else {
        return Err(damage);
    };
    let earlier = update_folders(ckpt_root).unwrap_or_default();
    for (_, dir) in earlier.into_iter().rev().filter(|(n, _)| *n < limit) {
        if let Ok(ckpt) = open_checkpoint(&dir) {
            eprintln!(
                "warning: cannot open checkpoint {} ({damage:#}); using {}, the newest intact \
                 checkpoint before it (update {})",
                damaged.display(),
                dir.display(),
                ckpt.state.updates_done
            );
            return Ok(ckpt);
        }
    }
    Err(damage)
}

/// `N` of a complete checkpoint folder's name `update_N` (not a `.tmp` leftover).
fn update_number(name: &str) -> Option<u64> {
    name.strip_prefix("update_")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn rng_state_round_trips() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..13 {
            rng.next_u32();
        }
        let saved = RngState::capture(&rng);
        let mut back = saved.restore().unwrap();
        for _ in 0..100 {
            assert_eq!(rng.next_u64(), back.next_u64());
        }
    }

    /// A checkpoint whose writing fails part-way (here: an extra file that cannot be created)
    /// leaves no partial folder behind, says which update it was and that the checkpoints on
    /// disk are unchanged, and the previous checkpoint stays `latest` and opens.
    #[test]
    fn a_failed_write_leaves_no_partial_folder_and_the_previous_checkpoint_intact() {
        let device = Device::flex();
        let model = burn::nn::LinearConfig::new(3, 2).init(&device);
        let optim: ModuleOptimizer = burn::optim::AdamConfig::new().init();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("checkpoint");
        let venv = VecEnvState {
            base_seed: 1,
            envs: vec![],
        };
        let mut state = TrainerState::at_start(
            String::new(),
            4,
            RngState::capture(&ChaCha8Rng::seed_from_u64(1)),
            venv,
        );
        state.updates_done = 1;
        let first = save_checkpoint(&root, &model, &optim, &state).unwrap();

        state.updates_done = 2;
        let bytes = [1u8, 2, 3];
        let e = save_checkpoint_with(&root, &model, &optim, &state, &[("no/such/dir", &bytes)])
            .unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("checkpoint of update 2 was not written")
                && e.contains("unchanged")
                && e.contains("no/such/dir"),
            "{e}"
        );
        assert!(!root.join("update_000002.tmp").exists());
        assert!(!root.join("update_000002").exists());
        let kept = open_latest(&root).unwrap();
        assert_eq!((kept.dir, kept.state.updates_done), (first, 1));
    }
}
