//! Saving and loading policy weights.
//!
//! A policy file is one file with three parts:
//!
//! ```text
//! fbrl-policy\n                       magic line
//! {"format_version":3,"kind":"gru",…}\n   one-line JSON header (PolicyFileHeader)
//! <burnpack bytes>                    the weights, as written by burn's ModuleRecord
//! ```
//!
//! The header says what architecture the weights belong to (kind, [`PolicyConfig`],
//! observation and action sizes, and the observation normaliser the policy was trained with),
//! so [`load_policy`] and [`crate::Agent::load`] can rebuild the policy from the file alone,
//! and `head -2 file` shows what a file holds. Files are written atomically (a temporary file
//! in the same directory, then a rename): a crash mid-save never leaves a half-written file.
//! Every failure — missing file, not a policy file, truncated or corrupt weights, weights of
//! another architecture or shape — is a [`PolicyError`] naming the file, never a panic.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use crate::actor_critic::ActorCritic;
use crate::distribution::ActionDist;
use crate::policy::{Policy, PolicyConfig, PolicyError, PolicyKind};
use crate::ppo::ObsNormalizer;

/// The first line of every policy file.
pub const POLICY_FILE_MAGIC: &[u8] = b"fbrl-policy\n";
/// The version of the file layout written by [`save_policy`] (3: the header may hold the
/// observation normaliser). Files of version 2 are read too.
pub const POLICY_FILE_VERSION: u32 = 3;

/// The oldest file layout this build reads.
const OLDEST_READABLE_VERSION: u32 = 2;

/// What a policy file says about the weights it holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFileHeader {
    /// Version of the file layout ([`POLICY_FILE_VERSION`]).
    pub format_version: u32,
    /// The architecture (same as `config.kind`, repeated for people reading the header).
    pub kind: PolicyKind,
    /// The configuration the policy was built from.
    pub config: PolicyConfig,
    /// Number of observation features the policy reads.
    pub obs_dim: usize,
    /// Width of the actor head's output: the number of discrete actions (`Σ nvec` for
    /// multi-discrete actions, the dimension for continuous ones).
    pub num_actions: usize,
    /// The action distribution, for other than one categorical (absent: a categorical over
    /// `num_actions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionDist>,
    /// Number of trainable parameters.
    pub num_parameters: usize,
    /// The observation normaliser the policy was trained with (frozen), applied to raw
    /// observations before the network (absent: observations go in unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obs_normalizer: Option<ObsNormalizer>,
    /// Length of the burnpack weights that follow the header, in bytes.
    pub weights_bytes: u64,
}

fn io_error(path: &Path, source: std::io::Error) -> PolicyError {
    PolicyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, message: impl Into<String>) -> PolicyError {
    PolicyError::Corrupt {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn mismatch(path: &Path, message: impl Into<String>) -> PolicyError {
    PolicyError::Mismatch {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Writes `policy`'s weights and a header describing it to `path` (parent directories are
/// created). `config`, `obs_dim` and `num_actions` must be what `policy` was built with:
/// a policy whose kind or parameter count disagrees with them is refused.
pub fn save_policy(
    path: impl AsRef<Path>,
    policy: &Policy,
    config: &PolicyConfig,
    obs_dim: usize,
    num_actions: usize,
) -> Result<(), PolicyError> {
    save_policy_for(
        path,
        policy,
        config,
        obs_dim,
        &ActionDist::Categorical { n: num_actions },
    )
}

/// [`save_policy`] for a policy whose head parameterises `dist` (any action space).
pub fn save_policy_for(
    path: impl AsRef<Path>,
    policy: &Policy,
    config: &PolicyConfig,
    obs_dim: usize,
    dist: &ActionDist,
) -> Result<(), PolicyError> {
    save_policy_with_normalizer(path, policy, config, obs_dim, dist, None)
}

/// [`save_policy_for`] with the observation normaliser the policy was trained with, so that
/// whoever loads the file feeds it raw observations (what every run writes as
/// `RUN/policy.fbrl`).
pub fn save_policy_with_normalizer(
    path: impl AsRef<Path>,
    policy: &Policy,
    config: &PolicyConfig,
    obs_dim: usize,
    dist: &ActionDist,
    obs_normalizer: Option<&ObsNormalizer>,
) -> Result<(), PolicyError> {
    let path = path.as_ref();
    let mut header =
        PolicyFileHeader::describe(policy, config, obs_dim, dist, obs_normalizer.cloned())
            .map_err(|m| mismatch(path, format!("refusing to save: {m}")))?;
    let weights = policy
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| corrupt(path, format!("cannot serialise the weights: {e}")))?;
    header.weights_bytes = weights.len() as u64;
    let header_json = serde_json::to_string(&header).expect("the header serialises to JSON");

    write_atomically(
        path,
        &[POLICY_FILE_MAGIC, header_json.as_bytes(), b"\n", &weights],
    )
}

impl PolicyFileHeader {
    /// The header of a file holding `policy` (weights length 0 until written): checks that
    /// `config`, `obs_dim`, `dist` and the normaliser are what `policy` was built with, and
    /// says what disagrees otherwise.
    pub fn describe(
        policy: &Policy,
        config: &PolicyConfig,
        obs_dim: usize,
        dist: &ActionDist,
        obs_normalizer: Option<ObsNormalizer>,
    ) -> Result<Self, String> {
        if policy.kind() != config.kind() {
            return Err(format!(
                "the policy is a `{}` but its config says `{}`",
                policy.kind(),
                config.kind()
            ));
        }
        let num_parameters = policy.num_parameters();
        let expected = config
            .num_parameters_for(obs_dim, dist)
            .map_err(|e| e.to_string())?;
        if num_parameters != expected {
            return Err(format!(
                "the policy has {num_parameters} parameters but its config (obs_dim {obs_dim}, \
                 actions {}) gives {expected}",
                dist.describe()
            ));
        }
        if let Some(norm) = &obs_normalizer {
            norm.check(obs_dim)
                .map_err(|e| format!("observation normaliser: {e}"))?;
        }
        Ok(Self {
            format_version: POLICY_FILE_VERSION,
            kind: config.kind(),
            config: config.clone(),
            obs_dim,
            num_actions: dist.head_width(),
            action: match dist {
                ActionDist::Categorical { .. } => None,
                other => Some(other.clone()),
            },
            num_parameters,
            obs_normalizer,
            weights_bytes: 0,
        })
    }
}

/// Writes `parts`, one after the other, to a sibling temporary file of `path` (parent
/// directories created), then renames it onto `path`: a crash never leaves a half-written file.
pub(crate) fn write_atomically(path: &Path, parts: &[&[u8]]) -> Result<(), PolicyError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    let tmp = temp_path(path);
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        for part in parts {
            file.write_all(part)?;
        }
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_error(path, e)
    })
}

/// A sibling of `path` to write into before the rename.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    // Unique per process and per call, so concurrent saves never share a temporary file.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    name.push(format!(".tmp-{}-{n}", std::process::id()));
    path.with_file_name(name)
}

/// Reads and checks the header of the policy file at `path`, returning it with the weight
/// bytes that follow it.
fn read_file(path: &Path) -> Result<(PolicyFileHeader, Vec<u8>), PolicyError> {
    let bytes = fs::read(path).map_err(|e| io_error(path, e))?;
    let rest = bytes.strip_prefix(POLICY_FILE_MAGIC).ok_or_else(|| {
        corrupt(
            path,
            "it does not start with the `fbrl-policy` magic line (not written by save_policy?)",
        )
    })?;
    let newline = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt(path, "the header line is not terminated (truncated file?)"))?;
    let header: PolicyFileHeader = serde_json::from_slice(&rest[..newline])
        .map_err(|e| corrupt(path, format!("bad header: {e}")))?;
    if !(OLDEST_READABLE_VERSION..=POLICY_FILE_VERSION).contains(&header.format_version) {
        return Err(corrupt(
            path,
            format!(
                "format_version {} is not supported (this build reads versions \
                 {OLDEST_READABLE_VERSION} to {POLICY_FILE_VERSION})",
                header.format_version
            ),
        ));
    }
    if let Some(norm) = &header.obs_normalizer {
        norm.check(header.obs_dim)
            .map_err(|e| corrupt(path, format!("bad observation normaliser: {e}")))?;
    }
    if header.kind != header.config.kind() {
        return Err(corrupt(
            path,
            format!(
                "header kind `{}` disagrees with config kind `{}`",
                header.kind,
                header.config.kind()
            ),
        ));
    }
    let weights = rest[newline + 1..].to_vec();
    if weights.len() as u64 != header.weights_bytes {
        return Err(corrupt(
            path,
            format!(
                "truncated or corrupt: the header announces {} weight bytes, the file holds {}",
                header.weights_bytes,
                weights.len()
            ),
        ));
    }
    Ok((header, weights))
}

/// The header of the policy file at `path` (what it holds, without loading the weights).
pub fn read_policy_header(path: impl AsRef<Path>) -> Result<PolicyFileHeader, PolicyError> {
    read_file(path.as_ref()).map(|(header, _)| header)
}

/// Builds the policy described by the file at `path` on `device` and loads its weights.
/// Returns the policy and the config it was built from.
pub fn load_policy(
    path: impl AsRef<Path>,
    device: &Device,
) -> Result<(Policy, PolicyConfig), PolicyError> {
    read_policy_file(path.as_ref(), device).map(|(policy, header)| (policy, header.config))
}

/// Builds the policy of the file at `path` on `device`, with the file's header.
pub(crate) fn read_policy_file(
    path: &Path,
    device: &Device,
) -> Result<(Policy, PolicyFileHeader), PolicyError> {
    let (header, weights) = read_file(path)?;
    let policy = header
        .config
        .init_for(header.obs_dim, &header.action_dist(), device)
        .map_err(|e| corrupt(path, format!("the header's config is invalid: {e}")))?;
    if policy.num_parameters() != header.num_parameters {
        return Err(corrupt(
            path,
            format!(
                "the header's config builds a policy of {} parameters, the header says {}",
                policy.num_parameters(),
                header.num_parameters
            ),
        ));
    }
    let policy = apply_weights(path, policy, weights)?;
    Ok((policy, header))
}

/// Loads the weights in the file at `path` into `policy`, an already built policy (e.g. one
/// made from an experiment's config). The file's architecture must match: another kind, or
/// tensors of another shape or name, is a [`PolicyError::Mismatch`] saying what differs.
pub fn load_policy_weights(path: impl AsRef<Path>, policy: Policy) -> Result<Policy, PolicyError> {
    let path = path.as_ref();
    let (header, weights) = read_file(path)?;
    if header.kind != policy.kind() {
        return Err(mismatch(
            path,
            format!(
                "the file holds a `{}` policy, loaded into a `{}` policy",
                header.kind,
                policy.kind()
            ),
        ));
    }
    if header.num_parameters != policy.num_parameters() {
        return Err(mismatch(
            path,
            format!(
                "the file holds {} parameters (config {}), the policy has {}",
                header.num_parameters,
                serde_json::to_string(&header.config).unwrap_or_default(),
                policy.num_parameters()
            ),
        ));
    }
    apply_weights(path, policy, weights)
}

fn apply_weights(path: &Path, policy: Policy, weights: Vec<u8>) -> Result<Policy, PolicyError> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights))
        .map_err(|e| corrupt(path, format!("unreadable weights: {e}")))?;
    policy
        .try_load_record(record)
        .map_err(|e| mismatch(path, e.to_string()))
}

impl PolicyFileHeader {
    /// The action distribution the file's policy parameterises.
    pub fn action_dist(&self) -> ActionDist {
        self.action.clone().unwrap_or(ActionDist::Categorical {
            n: self.num_actions,
        })
    }
}
