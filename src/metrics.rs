//! `metrics.csv`: one row per update, appended as the run goes, truncated on resume.
//!
//! [`MetricsRow`] is the schema: its fields, in order, are the columns, the learner's own
//! ([`LearnerColumns`], named by the learner) between `entropy` and `explained_var`
//! ([`metrics_columns`]; a PPO run's are [`METRICS_COLUMNS`]), read and written through the
//! `csv` crate. A NaN or infinite value (e.g. no episode ended
//! during the update) is an empty cell.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use agents::learner::MAX_LEARNER_COLUMNS;
use anyhow::{Context, Result, bail};
use serde::Serialize;

/// The columns of a PPO run's `metrics.csv`, in order: the fields of [`MetricsRow`] with
/// PPO's own columns ([`agents::ppo::PPO_COLUMNS`]) as the learner's.
pub const METRICS_COLUMNS: [&str; 19] = [
    "update",
    "env_steps",
    "wall_time_s",
    "episodes",
    "return_mean",
    "return_min",
    "return_max",
    "length_mean",
    "goals_mean",
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

/// The columns every run has before the learner's own.
const HEAD_COLUMNS: usize = 13;
/// The columns every run has after the learner's own.
const TAIL_COLUMNS: usize = 4;

/// The columns of `metrics.csv` for a learner whose own columns are `learner`
/// ([`agents::learner::Learner::metric_columns`]): the common ones with the learner's between
/// `entropy` and `explained_var` (for PPO, [`METRICS_COLUMNS`]).
pub fn metrics_columns(learner: &[&'static str]) -> Vec<&'static str> {
    let tail = &METRICS_COLUMNS[METRICS_COLUMNS.len() - TAIL_COLUMNS..];
    METRICS_COLUMNS[..HEAD_COLUMNS]
        .iter()
        .chain(learner)
        .chain(tail)
        .copied()
        .collect()
}

/// Whether `column` is a column of some learner's `metrics.csv`.
pub fn is_metrics_column(column: &str) -> bool {
    METRICS_COLUMNS.contains(&column)
        || crate::config::Algorithm::ALL
            .iter()
            .any(|a| a.metric_columns().contains(&column))
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
    /// Mean goals reached per episode.
    pub goals_mean: f64,
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

    /// The row's columns: [`metrics_columns`] of its learner's.
    pub fn columns(&self) -> Vec<&'static str> {
        metrics_columns(self.learner.names)
    }

    /// The row of the `record` of a file whose learner columns are `learner`.
    fn from_record(learner: &'static [&'static str], record: &csv::StringRecord) -> Result<Self> {
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
        let k = learner.len();
        let values = (0..k)
            .map(|j| float(HEAD_COLUMNS + j))
            .collect::<Result<Vec<_>>>()?;
        let tail = HEAD_COLUMNS + k;
        Ok(Self {
            update: int(0)? as usize,
            env_steps: int(1)?,
            wall_time_s: float(2)?,
            episodes: int(3)? as usize,
            return_mean: float(4)?,
            return_min: float(5)?,
            return_max: float(6)?,
            length_mean: float(7)?,
            goals_mean: float(8)?,
            success_rate: float(9)?,
            policy_loss: float(10)?,
            value_loss: float(11)?,
            entropy: float(12)?,
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
        let mut st = s.serialize_struct("MetricsRow", HEAD_COLUMNS + 2 + TAIL_COLUMNS)?;
        st.serialize_field("update", &self.update)?;
        st.serialize_field("env_steps", &self.env_steps)?;
        st.serialize_field("wall_time_s", &Cell(self.wall_time_s))?;
        st.serialize_field("episodes", &self.episodes)?;
        for (name, x) in [
            ("return_mean", self.return_mean),
            ("return_min", self.return_min),
            ("return_max", self.return_max),
            ("length_mean", self.length_mean),
            ("goals_mean", self.goals_mean),
            ("success_rate", self.success_rate),
            ("policy_loss", self.policy_loss),
            ("value_loss", self.value_loss),
            ("entropy", self.entropy),
        ]
        .into_iter()
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

/// The metrics file at `path` as CSV records, and the learner columns its header names (the
/// header must be [`metrics_columns`] of some learner's).
fn reader<'t>(
    path: &Path,
    text: &'t [u8],
) -> Result<(csv::Reader<&'t [u8]>, &'static [&'static str])> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text);
    let header = reader
        .headers()
        .with_context(|| format!("cannot read {}", path.display()))?;
    let learner = crate::config::Algorithm::ALL
        .iter()
        .map(|a| a.metric_columns())
        .find(|names| header.iter().eq(metrics_columns(names)));
    match learner {
        Some(names) => Ok((reader, names)),
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
    learner: &'static [&'static str],
    record: csv::Result<csv::StringRecord>,
) -> Result<MetricsRow> {
    let record = record.with_context(|| format!("cannot read {}", path.display()))?;
    let line = record.position().map_or(0, |p| p.line() as usize);
    let width = HEAD_COLUMNS + learner.len() + TAIL_COLUMNS;
    if record.len() != width {
        bail!(
            "{}: line {line}: expected {width} fields, got {}",
            path.display(),
            record.len()
        );
    }
    MetricsRow::from_record(learner, &record)
        .with_context(|| format!("{}: line {line}", path.display()))
}

/// Reads every row of a `metrics.csv`.
pub fn read_metrics(path: impl AsRef<Path>) -> Result<Vec<MetricsRow>> {
    let path = path.as_ref();
    let text = std::fs::read(path).with_context(|| format!("cannot open {}", path.display()))?;
    let (reader, learner) = reader(path, &text)?;
    reader
        .into_records()
        .map(|record| parse_row(path, learner, record))
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
    tensorboard: Option<crate::tensorboard::EventWriter>,
}

impl MetricsWriter {
    /// Creates a new `metrics.csv` with PPO's header (overwriting any file there).
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        Self::create_for(path, agents::ppo::PPO_COLUMNS)
    }

    /// Creates a new `metrics.csv` with the header of a learner whose own columns are
    /// `learner` (overwriting any file there).
    pub fn create_for(path: impl AsRef<Path>, learner: &'static [&'static str]) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file =
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut writer = row_writer(file);
        writer
            .write_record(metrics_columns(learner))
            .and_then(|()| writer.flush().map_err(csv::Error::from))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self {
            path,
            writer,
            tensorboard: None,
        })
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
        let (reader, learner) = reader(&path, complete)
            .with_context(|| format!("{}: missing or unexpected header", path.display()))?;
        let mut kept = Vec::with_capacity(keep_updates);
        for record in reader.into_records() {
            let expected = kept.len() + 1;
            let row = match parse_row(&path, learner, record) {
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
        out.write_record(metrics_columns(learner))?;
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
            tensorboard: None,
        })
    }

    /// Appends one row and flushes it to the OS.
    pub fn append(&mut self, row: &MetricsRow) -> Result<()> {
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
        "episodes" | "return_mean" | "return_min" | "return_max" | "length_mean" | "goals_mean"
        | "success_rate" => "episode",
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
    fn the_columns_are_the_fields_of_the_row() {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(MetricsRow::default()).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next().unwrap(), METRICS_COLUMNS.join(","));
    }
}
