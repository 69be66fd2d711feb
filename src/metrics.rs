//! `metrics.csv`: one row per update, appended as the run goes, truncated on resume.
//!
//! [`MetricsRow`] is the schema: its fields, in order, are the columns, the env's counts
//! ([`CountColumns`]: `<name>_mean` for each name of [`envs::Env::episode_counts`], e.g.
//! GridMaze's `goals_mean`) between `length_mean` and `success_rate`, the learner's own
//! ([`LearnerColumns`], named by the learner) between `entropy` and `explained_var`
//! ([`metrics_columns`]; a PPO run's on an env without counts are [`METRICS_COLUMNS`]), read
//! and written through the `csv` crate. The columns are fixed when the file is created; a
//! resumed run keeps its file's (a run made before counts existed has `goals_mean` whatever
//! its env: it keeps it, 0 for an env that counts no goals). A NaN or infinite value (e.g. no
//! episode ended during the update) is an empty cell.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use agents::learner::MAX_LEARNER_COLUMNS;
use anyhow::{Context, Result, bail};
use envs::{EpisodeStats, MAX_INFO_SCALARS};
use serde::Serialize;

/// The columns of the `metrics.csv` of a PPO run on an env without counts, in order: the
/// fields of [`MetricsRow`] with PPO's own columns ([`agents::ppo::PPO_COLUMNS`]) as the
/// learner's. An env's counts come after `length_mean` ([`metrics_columns`]).
pub const METRICS_COLUMNS: [&str; 18] = [
    "update",
    "env_steps",
    "wall_time_s",
    "episodes",
    "return_mean",
    "return_min",
    "return_max",
    "length_mean",
    "success_rate",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_frac",
    "explained_var",
    "grad_norm",
    "lr",
    "steps_per_s",
];

/// The columns every run has before the env's counts.
const HEAD_COLUMNS: usize = 8;
/// The columns every run has between the env's counts and the learner's own.
const MIDDLE_COLUMNS: usize = 4;
/// The columns every run has after the learner's own.
const TAIL_COLUMNS: usize = 4;

/// The column of the count `name`: `<name>_mean`, its mean per-episode total.
pub fn count_column(name: &str) -> &'static str {
    intern(&format!("{name}_mean"))
}

/// The count whose column is `column` (`<name>_mean`, `name` a valid count name).
fn column_count(column: &str) -> Option<&str> {
    column
        .strip_suffix("_mean")
        .filter(|name| envs::is_column_name(name))
}

/// `text` as a `&'static str`: each distinct text is leaked once (column names, a handful).
fn intern(text: &str) -> &'static str {
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(name) = names.iter().find(|n| **n == text) {
        return name;
    }
    let name: &'static str = Box::leak(text.to_string().into_boxed_str());
    names.push(name);
    name
}

/// `names` as a `&'static` list (each distinct list is leaked once).
fn intern_list(names: &[&str]) -> &'static [&'static str] {
    static LISTS: Mutex<Vec<&'static [&'static str]>> = Mutex::new(Vec::new());
    let mut lists = LISTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(list) = lists.iter().find(|l| **l == names) {
        return list;
    }
    let list: &'static [&'static str] =
        Box::leak(names.iter().map(|n| intern(n)).collect::<Box<[_]>>());
    lists.push(list);
    list
}

/// The columns of `metrics.csv` for an env whose counts are `counts`
/// ([`envs::Env::episode_counts`]) and a learner whose own columns are `learner`
/// ([`agents::learner::Learner::metric_columns`]): the common ones with `<count>_mean` for
/// each count between `length_mean` and `success_rate`, and the learner's between `entropy`
/// and `explained_var` (for PPO on an env without counts, [`METRICS_COLUMNS`]).
pub fn metrics_columns(counts: &[&str], learner: &[&'static str]) -> Vec<&'static str> {
    let middle = &METRICS_COLUMNS[HEAD_COLUMNS..HEAD_COLUMNS + MIDDLE_COLUMNS];
    let tail = &METRICS_COLUMNS[METRICS_COLUMNS.len() - TAIL_COLUMNS..];
    METRICS_COLUMNS[..HEAD_COLUMNS]
        .iter()
        .copied()
        .chain(counts.iter().map(|c| count_column(c)))
        .chain(middle.iter().copied())
        .chain(learner.iter().copied())
        .chain(tail.iter().copied())
        .collect()
}

/// Whether `column` may be a column of a `metrics.csv`: a common one, some learner's own, or
/// the `<name>_mean` of a count (which columns a run has depends on its env).
pub fn is_metrics_column(column: &str) -> bool {
    METRICS_COLUMNS.contains(&column)
        || crate::config::Algorithm::ALL
            .iter()
            .any(|a| a.metric_columns().contains(&column))
        || column_count(column).is_some()
}

/// The env's count columns of a metrics row: the count names and the mean per-episode total
/// of each over the update's finished episodes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CountColumns {
    /// The count names ([`envs::Env::episode_counts`]); the column of each is
    /// [`count_column`] (`<name>_mean`).
    pub names: &'static [&'static str],
    /// The values, in the order of `names` (the rest unused).
    pub values: [f64; MAX_INFO_SCALARS],
}

impl CountColumns {
    /// The counts `names` with `values` (missing values are NaN; extra ones dropped).
    ///
    /// # Panics
    /// With more than [`MAX_INFO_SCALARS`] names.
    pub fn new(names: &[&str], values: &[f64]) -> Self {
        assert!(
            names.len() <= MAX_INFO_SCALARS,
            "at most {MAX_INFO_SCALARS} counts, got {names:?}"
        );
        // The unused slots stay 0, so that equal counts compare equal.
        let mut v = [0.0; MAX_INFO_SCALARS];
        for (i, slot) in v.iter_mut().enumerate().take(names.len()) {
            *slot = values.get(i).copied().unwrap_or(f64::NAN);
        }
        Self {
            names: intern_list(names),
            values: v,
        }
    }

    /// The counts `names` over `episodes`: the mean per-episode total of each (an episode
    /// without a total of a name counts 0 of it), NaN when there are no episodes.
    pub fn of_episodes<'e>(
        names: &[&str],
        episodes: impl Iterator<Item = &'e EpisodeStats> + Clone,
    ) -> Self {
        let means: Vec<f64> = names
            .iter()
            .map(|name| {
                let (sum, n) = episodes.clone().fold((0.0, 0usize), |(s, n), e| {
                    (s + f64::from(e.count(name).unwrap_or(0.0)), n + 1)
                });
                if n == 0 { f64::NAN } else { sum / n as f64 }
            })
            .collect();
        Self::new(names, &means)
    }

    /// The mean of the count `name`, if the row has it.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.names
            .iter()
            .position(|n| *n == name)
            .map(|i| self.values[i])
    }

    /// `(count name, value)` of every count, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        self.names.iter().copied().zip(self.values)
    }
}

/// The learner's own columns of a metrics row: names (from the learner) and values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LearnerColumns {
    /// The column names ([`agents::learner::Learner::metric_columns`]).
    pub names: &'static [&'static str],
    /// The values, in the order of `names` (the rest unused).
    pub values: [f64; MAX_LEARNER_COLUMNS],
}

impl LearnerColumns {
    /// The columns `names` with `values` (missing values are NaN; extra ones dropped).
    pub fn new(names: &'static [&'static str], values: &[f64]) -> Self {
        let mut v = [f64::NAN; MAX_LEARNER_COLUMNS];
        for (slot, x) in v.iter_mut().zip(values).take(names.len()) {
            *slot = *x;
        }
        Self { names, values: v }
    }

    /// The value of the column `name`, if the learner has it.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// `(name, value)` of every column, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        self.names.iter().copied().zip(self.values)
    }
}

impl Default for LearnerColumns {
    /// PPO's columns, zero.
    fn default() -> Self {
        Self {
            names: agents::ppo::PPO_COLUMNS,
            values: [0.0; MAX_LEARNER_COLUMNS],
        }
    }
}

/// One row of `metrics.csv`. Episode statistics are over the episodes that finished during
/// this update's rollout; a NaN (no such episode) is written as an empty field.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MetricsRow {
    /// Update number, 1-based.
    pub update: usize,
    /// Env steps so far (all envs), after this update's rollout.
    pub env_steps: u64,
    /// Training wall time so far, seconds (summed across resumes).
    pub wall_time_s: f64,
    /// Episodes finished during this update's rollout.
    pub episodes: usize,
    /// Mean episodic return.
    pub return_mean: f64,
    /// Minimum episodic return.
    pub return_min: f64,
    /// Maximum episodic return.
    pub return_max: f64,
    /// Mean episode length, steps.
    pub length_mean: f64,
    /// The env's counts: the mean per-episode total of each (columns `<name>_mean`, e.g.
    /// GridMaze's `goals_mean`).
    pub counts: CountColumns,
    /// Fraction of successful episodes among those reporting success (NaN if none did).
    pub success_rate: f64,
    /// Policy-gradient loss (PPO: the clipped surrogate).
    pub policy_loss: f64,
    /// Value loss.
    pub value_loss: f64,
    /// Policy entropy, nats.
    pub entropy: f64,
    /// The learner's own columns (PPO: `approx_kl`, the approximate KL divergence
    /// `mean((r − 1) − log r)`, and `clip_frac`, the fraction of clipped ratios).
    pub learner: LearnerColumns,
    /// Explained variance of the value estimates.
    pub explained_var: f64,
    /// Global gradient norm before clipping (mean over minibatches).
    pub grad_norm: f64,
    /// Learning rate used in this update.
    pub lr: f64,
    /// Env steps per second of this update (rollout + learning).
    pub steps_per_s: f64,
}

impl MetricsRow {
    /// The value of the column `name` (one of the row's columns, [`metrics_columns`]);
    /// `None` for another name.
    pub fn column(&self, name: &str) -> Option<f64> {
        let value = serde_json::to_value(self).ok()?;
        let cell = value.get(name)?;
        // Float cells serialise as their text (empty when not finite).
        Some(
            cell.as_f64()
                .or_else(|| cell.as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(f64::NAN),
        )
    }

    /// The row's columns: [`metrics_columns`] of its counts and its learner's.
    pub fn columns(&self) -> Vec<&'static str> {
        metrics_columns(self.counts.names, self.learner.names)
    }

    /// The row of the `record` of a file with the columns `layout`.
    fn from_record(layout: Layout, record: &csv::StringRecord) -> Result<Self> {
        let text = |i: usize| record.get(i).unwrap_or("");
        let int = |i: usize| -> Result<u64> {
            text(i)
                .parse()
                .with_context(|| format!("column {} is not a count: {:?}", i + 1, text(i)))
        };
        let float = |i: usize| -> Result<f64> {
            match text(i) {
                "" => Ok(f64::NAN),
                t => t
                    .parse()
                    .with_context(|| format!("column {} is not a number: {t:?}", i + 1)),
            }
        };
        let Layout { counts, learner } = layout;
        let c = counts.len();
        let count_values = (0..c)
            .map(|j| float(HEAD_COLUMNS + j))
            .collect::<Result<Vec<_>>>()?;
        let middle = HEAD_COLUMNS + c;
        let k = learner.len();
        let values = (0..k)
            .map(|j| float(middle + MIDDLE_COLUMNS + j))
            .collect::<Result<Vec<_>>>()?;
        let tail = middle + MIDDLE_COLUMNS + k;
        Ok(Self {
            update: int(0)? as usize,
            env_steps: int(1)?,
            wall_time_s: float(2)?,
            episodes: int(3)? as usize,
            return_mean: float(4)?,
            return_min: float(5)?,
            return_max: float(6)?,
            length_mean: float(7)?,
            counts: CountColumns::new(counts, &count_values),
            success_rate: float(middle)?,
            policy_loss: float(middle + 1)?,
            value_loss: float(middle + 2)?,
            entropy: float(middle + 3)?,
            learner: LearnerColumns::new(learner, &values),
            explained_var: float(tail)?,
            grad_norm: float(tail + 1)?,
            lr: float(tail + 2)?,
            steps_per_s: float(tail + 3)?,
        })
    }
}

/// A float cell of `metrics.csv` (see [`cell`]).
struct Cell(f64);

impl Serialize for Cell {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        cell::serialize(&self.0, s)
    }
}

impl Serialize for MetricsRow {
    /// The cells in the order of [`MetricsRow::columns`], named by them.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let width = self.counts.names.len() + self.learner.names.len();
        let mut st = s.serialize_struct(
            "MetricsRow",
            HEAD_COLUMNS + MIDDLE_COLUMNS + TAIL_COLUMNS + width,
        )?;
        st.serialize_field("update", &self.update)?;
        st.serialize_field("env_steps", &self.env_steps)?;
        st.serialize_field("wall_time_s", &Cell(self.wall_time_s))?;
        st.serialize_field("episodes", &self.episodes)?;
        for (name, x) in [
            ("return_mean", self.return_mean),
            ("return_min", self.return_min),
            ("return_max", self.return_max),
            ("length_mean", self.length_mean),
        ]
        .into_iter()
        .chain(self.counts.iter().map(|(n, x)| (count_column(n), x)))
        .chain([
            ("success_rate", self.success_rate),
            ("policy_loss", self.policy_loss),
            ("value_loss", self.value_loss),
            ("entropy", self.entropy),
        ])
        .chain(self.learner.iter())
        .chain([
            ("explained_var", self.explained_var),
            ("grad_norm", self.grad_norm),
            ("lr", self.lr),
            ("steps_per_s", self.steps_per_s),
        ]) {
            st.serialize_field(name, &Cell(x))?;
        }
        st.end()
    }
}

/// A float cell: the shortest text that reads back to the same value, empty when not finite.
mod cell {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.collect_str(x)
        } else {
            s.serialize_str("")
        }
    }
}

/// The variable columns of a `metrics.csv`: the env's counts and the learner's own.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Layout {
    /// The count names (columns `<name>_mean`).
    counts: &'static [&'static str],
    /// The learner's own columns.
    learner: &'static [&'static str],
}

impl Layout {
    /// The layout of the header `header`, if it is [`metrics_columns`] of some counts and
    /// some learner's columns.
    fn of_header(header: &csv::StringRecord) -> Option<Self> {
        let end = header.iter().position(|c| c == "success_rate")?;
        let counts = header
            .iter()
            .take(end)
            .skip(HEAD_COLUMNS)
            .map(column_count)
            .collect::<Option<Vec<_>>>()?;
        if counts.len() > MAX_INFO_SCALARS {
            return None;
        }
        crate::config::Algorithm::ALL
            .iter()
            .map(|a| a.metric_columns())
            .find(|learner| header.iter().eq(metrics_columns(&counts, learner)))
            .map(|learner| Self {
                counts: intern_list(&counts),
                learner,
            })
    }

    /// Number of columns.
    fn width(&self) -> usize {
        HEAD_COLUMNS + self.counts.len() + MIDDLE_COLUMNS + self.learner.len() + TAIL_COLUMNS
    }
}

/// The metrics file at `path` as CSV records, and the layout its header names (the header
/// must be [`metrics_columns`] of some counts and some learner's).
fn reader<'t>(path: &Path, text: &'t [u8]) -> Result<(csv::Reader<&'t [u8]>, Layout)> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text);
    let header = reader
        .headers()
        .with_context(|| format!("cannot read {}", path.display()))?;
    match Layout::of_header(header) {
        Some(layout) => Ok((reader, layout)),
        None => bail!(
            "{}: unexpected header `{}`",
            path.display(),
            header.iter().collect::<Vec<_>>().join(",")
        ),
    }
}

/// One record as a row (errors name the file and the line).
fn parse_row(
    path: &Path,
    layout: Layout,
    record: csv::Result<csv::StringRecord>,
) -> Result<MetricsRow> {
    let record = record.with_context(|| format!("cannot read {}", path.display()))?;
    let line = record.position().map_or(0, |p| p.line() as usize);
    let width = layout.width();
    if record.len() != width {
        bail!(
            "{}: line {line}: expected {width} fields, got {}",
            path.display(),
            record.len()
        );
    }
    MetricsRow::from_record(layout, &record)
        .with_context(|| format!("{}: line {line}", path.display()))
}

/// Reads every row of a `metrics.csv`.
pub fn read_metrics(path: impl AsRef<Path>) -> Result<Vec<MetricsRow>> {
    let path = path.as_ref();
    let text = std::fs::read(path).with_context(|| format!("cannot open {}", path.display()))?;
    let (reader, layout) = reader(path, &text)?;
    reader
        .into_records()
        .map(|record| parse_row(path, layout, record))
        .collect()
}

/// A CSV writer of metrics rows that writes no header of its own: the header is written
/// once, when the file is created.
fn row_writer<W: std::io::Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out)
}

/// Appends rows to `metrics.csv`, flushing each one (and, if attached, to a TensorBoard
/// event file).
pub struct MetricsWriter {
    path: PathBuf,
    writer: csv::Writer<File>,
    layout: Layout,
    tensorboard: Option<crate::tensorboard::EventWriter>,
}

impl MetricsWriter {
    /// Creates a new `metrics.csv` with the header of PPO on an env without counts
    /// (overwriting any file there).
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        Self::create_for(path, &[], agents::ppo::PPO_COLUMNS)
    }

    /// Creates a new `metrics.csv` with the header of an env whose counts are `counts`
    /// ([`envs::Env::episode_counts`]) and a learner whose own columns are `learner`
    /// (overwriting any file there). Errors: more than [`MAX_INFO_SCALARS`] counts, a name
    /// that cannot name a column, or one given twice.
    pub fn create_for(
        path: impl AsRef<Path>,
        counts: &[&str],
        learner: &'static [&'static str],
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        check_count_names(counts, learner)?;
        let file =
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut writer = row_writer(file);
        writer
            .write_record(metrics_columns(counts, learner))
            .and_then(|()| writer.flush().map_err(csv::Error::from))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self {
            path,
            writer,
            layout: Layout {
                counts: intern_list(counts),
                learner,
            },
            tensorboard: None,
        })
    }

    /// The names of the counts the file has columns for (fixed when it was created): the
    /// rows appended must have these counts ([`CountColumns::of_episodes`]).
    pub fn counts(&self) -> &'static [&'static str] {
        self.layout.counts
    }

    /// Also writes every appended row into a new TensorBoard event file in `dir`. For a
    /// resumed run, `resumed_after_steps` is the env step count of its checkpoint: the file
    /// starts with a session start there, so TensorBoard drops what an earlier file logged
    /// after the checkpoint.
    pub fn with_tensorboard(
        mut self,
        dir: &Path,
        resumed_after_steps: Option<u64>,
    ) -> Result<Self> {
        let mut tb = crate::tensorboard::EventWriter::create(dir)?;
        if let Some(steps) = resumed_after_steps {
            tb.session_start(steps as i64 + 1)?;
            tb.flush()?;
        }
        self.tensorboard = Some(tb);
        Ok(self)
    }

    /// Opens an existing `metrics.csv` for a resumed run: keeps the header and the complete
    /// rows with `update ≤ keep_updates` (rows written after the last checkpoint, and a
    /// half-written last line, are dropped), rewriting the file atomically, then appends.
    pub fn resume(path: impl AsRef<Path>, keep_updates: usize) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let text =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        // A last line without its newline is a row cut by a kill: drop it.
        let complete = match text.iter().rposition(|&b| b == b'\n') {
            Some(end) => &text[..=end],
            None => &text[..0],
        };
        let (reader, layout) = reader(&path, complete)
            .with_context(|| format!("{}: missing or unexpected header", path.display()))?;
        let mut kept = Vec::with_capacity(keep_updates);
        for record in reader.into_records() {
            let expected = kept.len() + 1;
            let row = match parse_row(&path, layout, record) {
                Ok(row) => row,
                // Rows after the checkpoint are dropped anyway; a bad row before it is damage.
                Err(e) if expected <= keep_updates => bail!(
                    "the row of update {expected}, covered by the checkpoint, is not a \
                     metrics row: {e:#}"
                ),
                Err(_) => break,
            };
            if row.update > keep_updates {
                break;
            }
            if row.update != expected {
                bail!(
                    "{}: row for update {} found where update {expected} was expected",
                    path.display(),
                    row.update
                );
            }
            kept.push(row);
        }
        if kept.len() != keep_updates {
            bail!(
                "{}: has rows up to update {} but the checkpoint is at update {keep_updates}",
                path.display(),
                kept.len()
            );
        }
        let mut out = row_writer(Vec::new());
        out.write_record(metrics_columns(layout.counts, layout.learner))?;
        for row in &kept {
            out.serialize(row)?;
        }
        let bytes = out
            .into_inner()
            .map_err(|e| anyhow::anyhow!("cannot format the kept metrics rows: {e}"))?;
        crate::checkpoint::write_atomic(&path, &bytes)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Self {
            path,
            writer: row_writer(file),
            layout,
            tensorboard: None,
        })
    }

    /// Appends one row and flushes it to the OS. Errors: a row whose counts or learner
    /// columns are not the file's.
    pub fn append(&mut self, row: &MetricsRow) -> Result<()> {
        let layout = Layout {
            counts: row.counts.names,
            learner: row.learner.names,
        };
        if layout != self.layout {
            bail!(
                "{}: a row with the columns {:?} does not fit the file's columns {:?}",
                self.path.display(),
                metrics_columns(layout.counts, layout.learner),
                metrics_columns(self.layout.counts, self.layout.learner)
            );
        }
        self.writer
            .serialize(row)
            .and_then(|()| self.writer.flush().map_err(csv::Error::from))
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        match &mut self.tensorboard {
            Some(tb) => {
                tb.scalars(row.env_steps as i64, &row_scalars(row)?)?;
                tb.flush()
            }
            None => Ok(()),
        }
    }

    /// Writes extra scalars (e.g. a hook's evaluation) at `env_steps` into the TensorBoard
    /// file, when the run writes one.
    pub fn scalars(&mut self, env_steps: u64, values: &[(String, f32)]) -> Result<()> {
        match &mut self.tensorboard {
            Some(tb) if !values.is_empty() => {
                tb.scalars(env_steps as i64, values)?;
                tb.flush()
            }
            _ => Ok(()),
        }
    }

    /// Forces the rows written so far to disk.
    pub fn sync(&mut self) -> Result<()> {
        self.writer
            .get_ref()
            .sync_data()
            .with_context(|| format!("cannot sync {}", self.path.display()))
    }
}

/// Checks count names for the columns of a new `metrics.csv` whose learner columns are
/// `learner`: each a column name, once, at most [`MAX_INFO_SCALARS`], and none whose column
/// `<name>_mean` is already a column (e.g. `return`).
fn check_count_names(counts: &[&str], learner: &[&'static str]) -> Result<()> {
    if counts.len() > MAX_INFO_SCALARS {
        bail!(
            "an env may declare at most {MAX_INFO_SCALARS} counts (Env::episode_counts), this \
             one declares {counts:?}"
        );
    }
    let taken = metrics_columns(&[], learner);
    for (i, name) in counts.iter().enumerate() {
        if !envs::is_column_name(name) {
            bail!(
                "the env's count {name:?} (Env::episode_counts) cannot name a column: use \
                 letters, digits, `_`, `-` and `.`"
            );
        }
        if counts[..i].contains(name) {
            bail!("the env declares the count `{name}` twice (Env::episode_counts)");
        }
        if taken.contains(&count_column(name)) {
            bail!(
                "the env's count `{name}` (Env::episode_counts) would have the column \
                 `{name}_mean`, which metrics.csv already has; rename the count"
            );
        }
    }
    Ok(())
}

/// The env's named step scalars per update ([`envs::Info::scalars`]), in long form: one line
/// `update,env_steps,name,mean` per name and update, appended as the run goes (the names an
/// env reports need not be known before it reports them), truncated on resume like
/// `metrics.csv`. [`crate::curves::Run::load`] shows them as columns `info/<name>`.
pub struct InfoLog {
    path: PathBuf,
    created: bool,
}

/// The header of the info log.
pub const INFO_COLUMNS: [&str; 4] = ["update", "env_steps", "name", "mean"];

impl InfoLog {
    /// Opens the info log at `path` for a run at `keep_updates` updates: an existing file keeps
    /// its complete lines of updates `≤ keep_updates` (rewritten atomically); none is created
    /// until an update reports a scalar.
    pub fn open(path: impl AsRef<Path>, keep_updates: usize) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(Self {
                path,
                created: false,
            });
        };
        let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
        let mut kept = String::new();
        for (i, line) in complete.lines().enumerate() {
            if i == 0 {
                if line != INFO_COLUMNS.join(",") {
                    bail!("{}: unexpected header `{line}`", path.display());
                }
                kept.push_str(line);
                kept.push('\n');
                continue;
            }
            let update = line.split(',').next().and_then(|u| u.parse::<usize>().ok());
            match update {
                Some(u) if u <= keep_updates => {
                    kept.push_str(line);
                    kept.push('\n');
                }
                Some(_) => {}
                None => bail!("{}: line {} is not an info row", path.display(), i + 1),
            }
        }
        crate::checkpoint::write_atomic(&path, kept.as_bytes())?;
        Ok(Self {
            path,
            created: true,
        })
    }

    /// Appends the means of one update (nothing when there are none).
    pub fn append(&mut self, update: usize, env_steps: u64, means: &[(&str, f64)]) -> Result<()> {
        if means.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        if !self.created {
            text.push_str(&INFO_COLUMNS.join(","));
            text.push('\n');
        }
        for (name, mean) in means {
            let cell = if mean.is_finite() {
                mean.to_string()
            } else {
                String::new()
            };
            text.push_str(&format!("{update},{env_steps},{name},{cell}\n"));
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        std::io::Write::write_all(&mut file, text.as_bytes())
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.created = true;
        Ok(())
    }
}

/// The rows of an info log: `(update, name, mean)` (a cut last line is skipped).
pub fn read_info(path: impl AsRef<Path>) -> Result<Vec<(usize, String, f64)>> {
    let path = path.as_ref();
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
    let mut rows = Vec::new();
    for (i, line) in complete.lines().enumerate().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let bad = || anyhow::anyhow!("{}: line {} is not an info row", path.display(), i + 1);
        if cells.len() != INFO_COLUMNS.len() {
            return Err(bad());
        }
        let update = cells[0].parse().map_err(|_| bad())?;
        let mean = if cells[3].is_empty() {
            f64::NAN
        } else {
            cells[3].parse().map_err(|_| bad())?
        };
        rows.push((update, cells[2].to_string(), mean));
    }
    Ok(rows)
}

/// The TensorBoard tag of a metrics column: losses and statistics of the update under
/// `losses/`, episode statistics under `episode/`, the rest under `train/`.
pub fn tensorboard_tag(column: &str) -> String {
    let group = match column {
        "policy_loss" | "value_loss" | "entropy" | "explained_var" | "grad_norm" => "losses",
        c if crate::config::Algorithm::ALL
            .iter()
            .any(|a| a.metric_columns().contains(&c)) =>
        {
            "losses"
        }
        "episodes" | "return_mean" | "return_min" | "return_max" | "length_mean"
        | "success_rate" => "episode",
        c if column_count(c).is_some() => "episode",
        _ => "train",
    };
    format!("{group}/{column}")
}

/// Every finite column of a metrics row except `update` and `env_steps` (the step), tagged.
pub fn row_scalars(row: &MetricsRow) -> Result<Vec<(String, f32)>> {
    Ok(row
        .columns()
        .iter()
        .filter(|c| !matches!(**c, "update" | "env_steps"))
        .filter_map(|c| {
            let x = row.column(c)?;
            x.is_finite().then(|| (tensorboard_tag(c), x as f32))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensorboard_tags_group_the_columns() {
        assert_eq!(tensorboard_tag("value_loss"), "losses/value_loss");
        assert_eq!(tensorboard_tag("return_mean"), "episode/return_mean");
        assert_eq!(tensorboard_tag("lr"), "train/lr");
    }

    /// A `metrics.csv` as the hand-written writer before the `csv` crate wrote it.
    const OLD_FILE: &str = "update,env_steps,wall_time_s,episodes,return_mean,return_min,return_max,length_mean,goals_mean,success_rate,policy_loss,value_loss,entropy,approx_kl,clip_frac,explained_var,grad_norm,lr,steps_per_s\n\
        1,512,0.8123,0,,,,,,,-0.0012,0.4,1.386,0.0001,0,-0.2,0.31,0.00025,630.2\n\
        2,1024,1.6,3,1.5,0,3,42.333333333333336,1.5,,0.002,0.35,1.38,0.0002,0.01,0.1,0.29,0.00024,640\n";

    fn temp_file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fbrl-metrics-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metrics.csv");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn files_of_the_old_writer_load_and_resume() {
        let path = temp_file("old", OLD_FILE);
        let rows = read_metrics(&path).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].update, rows[0].env_steps, rows[0].episodes),
            (1, 512, 0)
        );
        assert!(rows[0].return_mean.is_nan() && rows[0].success_rate.is_nan());
        assert_eq!(rows[0].lr, 2.5e-4);
        assert_eq!(rows[1].length_mean, 42.333333333333336);
        assert!(rows[1].success_rate.is_nan());
        // The old writer's `goals_mean` reads as the count `goals`.
        assert_eq!(rows[1].counts.get("goals"), Some(1.5));
        assert!(rows[0].counts.get("goals").unwrap().is_nan());
        // Resuming rewrites the kept rows exactly as the old writer wrote them.
        drop(MetricsWriter::resume(&path, 2).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), OLD_FILE);
        let mut w = MetricsWriter::resume(&path, 1).unwrap();
        w.append(&rows[1]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), OLD_FILE);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn row_round_trips_and_nan_is_empty() {
        let row = MetricsRow {
            update: 3,
            env_steps: 1024,
            wall_time_s: 1.5,
            episodes: 0,
            return_mean: f64::NAN,
            lr: 2.5e-4,
            ..Default::default()
        };
        let path = temp_file("round-trip", "");
        let mut w = MetricsWriter::create(&path).unwrap();
        w.append(&row).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let line = text.lines().nth(1).unwrap();
        assert_eq!(line.split(',').count(), METRICS_COLUMNS.len());
        assert!(line.starts_with("3,1024,1.5,0,,"), "{line}");
        let back = read_metrics(&path).unwrap()[0];
        assert!(back.return_mean.is_nan());
        assert_eq!(back.lr, 2.5e-4);
        assert_eq!(back.update, 3);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn an_env_that_counts_goals_keeps_the_old_header_and_others_have_no_goals_column() {
        let old_header = OLD_FILE.lines().next().unwrap();
        let goals = temp_file("goals", "");
        let mut w =
            MetricsWriter::create_for(&goals, &["goals"], agents::ppo::PPO_COLUMNS).unwrap();
        assert_eq!(w.counts(), ["goals"]);
        let row = MetricsRow {
            update: 1,
            counts: CountColumns::new(&["goals"], &[2.25]),
            ..Default::default()
        };
        w.append(&row).unwrap();
        let text = std::fs::read_to_string(&goals).unwrap();
        assert_eq!(text.lines().next().unwrap(), old_header);
        assert_eq!(text.lines().nth(1).unwrap().split(',').nth(8), Some("2.25"));
        let back = read_metrics(&goals).unwrap()[0];
        assert_eq!((back.update, back.counts), (1, row.counts));
        // A row without the file's counts does not fit.
        let e = w.append(&MetricsRow::default()).unwrap_err().to_string();
        assert!(e.contains("does not fit"), "{e}");

        let plain = temp_file("plain", "");
        drop(MetricsWriter::create(&plain).unwrap());
        let header = std::fs::read_to_string(&plain).unwrap();
        assert_eq!(header.trim_end(), METRICS_COLUMNS.join(","));
        assert!(!header.contains("goals"));
        for p in [goals, plain] {
            std::fs::remove_dir_all(p.parent().unwrap()).unwrap();
        }
    }

    #[test]
    fn any_count_gets_a_mean_column_and_reads_back() {
        let path = temp_file("counts", "");
        let learner = agents::ppo::PPO_COLUMNS;
        let mut w = MetricsWriter::create_for(&path, &["waits", "keys.found"], learner).unwrap();
        let mut a = EpisodeStats::default();
        a.counts.set("waits", 3.0);
        a.counts.set("keys.found", 1.0);
        let mut b = EpisodeStats::default();
        // `b` reported no `keys.found`: it counts 0 of it.
        b.counts.set("waits", 1.0);
        let row = MetricsRow {
            update: 1,
            counts: CountColumns::of_episodes(w.counts(), [a, b].iter()),
            ..Default::default()
        };
        assert_eq!(row.counts.get("waits"), Some(2.0));
        assert_eq!(row.counts.get("keys.found"), Some(0.5));
        assert_eq!(row.column("waits_mean"), Some(2.0));
        w.append(&row).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        assert_eq!(
            header[7..11],
            [
                "length_mean",
                "waits_mean",
                "keys.found_mean",
                "success_rate"
            ]
        );
        let back = read_metrics(&path).unwrap();
        assert_eq!((back.len(), back[0].counts), (1, row.counts));
        // No episode: the means are empty cells.
        let none = CountColumns::of_episodes(&["waits"], [].iter());
        assert!(none.get("waits").unwrap().is_nan());
        // Resuming keeps the columns.
        let w = MetricsWriter::resume(&path, 1).unwrap();
        assert_eq!(w.counts(), ["waits", "keys.found"]);
        assert_eq!(tensorboard_tag("waits_mean"), "episode/waits_mean");
        assert!(is_metrics_column("waits_mean") && !is_metrics_column("waits"));

        // Names that cannot be columns are refused, naming the count.
        for (counts, needle) in [
            (&["return"][..], "`return_mean`"),
            (&["a b"][..], "\"a b\""),
            (&["x", "x"][..], "twice"),
        ] {
            let e = MetricsWriter::create_for(&path, counts, learner)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(needle), "{e}");
        }
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn the_columns_are_the_fields_of_the_row() {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(MetricsRow::default()).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next().unwrap(), METRICS_COLUMNS.join(","));
    }
}
