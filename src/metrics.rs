//! `metrics.csv`: one row per PPO update, appended as the run goes, truncated on resume.
//!
//! [`MetricsRow`] is the schema: its fields, in order, are the columns ([`METRICS_COLUMNS`]),
//! read and written through the `csv` crate. A NaN or infinite value (e.g. no episode ended
//! during the update) is an empty cell.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The columns of `metrics.csv`, in order: the fields of [`MetricsRow`].
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

/// One row of `metrics.csv`. Episode statistics are over the episodes that finished during
/// this update's rollout; a NaN (no such episode) is written as an empty field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    /// Update number, 1-based.
    pub update: usize,
    /// Env steps so far (all envs), after this update's rollout.
    pub env_steps: u64,
    /// Training wall time so far, seconds (summed across resumes).
    #[serde(with = "cell")]
    pub wall_time_s: f64,
    /// Episodes finished during this update's rollout.
    pub episodes: usize,
    /// Mean episodic return.
    #[serde(with = "cell")]
    pub return_mean: f64,
    /// Minimum episodic return.
    #[serde(with = "cell")]
    pub return_min: f64,
    /// Maximum episodic return.
    #[serde(with = "cell")]
    pub return_max: f64,
    /// Mean episode length, steps.
    #[serde(with = "cell")]
    pub length_mean: f64,
    /// Mean goals reached per episode.
    #[serde(with = "cell")]
    pub goals_mean: f64,
    /// Fraction of successful episodes among those reporting success (NaN if none did).
    #[serde(with = "cell")]
    pub success_rate: f64,
    /// Clipped surrogate loss.
    #[serde(with = "cell")]
    pub policy_loss: f64,
    /// Value loss.
    #[serde(with = "cell")]
    pub value_loss: f64,
    /// Policy entropy, nats.
    #[serde(with = "cell")]
    pub entropy: f64,
    /// Approximate KL divergence, `mean((r − 1) − log r)`.
    #[serde(with = "cell")]
    pub approx_kl: f64,
    /// Fraction of clipped ratios.
    #[serde(with = "cell")]
    pub clip_frac: f64,
    /// Explained variance of the value estimates.
    #[serde(with = "cell")]
    pub explained_var: f64,
    /// Global gradient norm before clipping (mean over minibatches).
    #[serde(with = "cell")]
    pub grad_norm: f64,
    /// Learning rate used in this update.
    #[serde(with = "cell")]
    pub lr: f64,
    /// Env steps per second of this update (rollout + learning).
    #[serde(with = "cell")]
    pub steps_per_s: f64,
}

impl MetricsRow {
    /// The value of the column `name` (one of [`METRICS_COLUMNS`]); `None` for another name.
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
}

/// A float cell: the shortest text that reads back to the same value, empty when not finite.
mod cell {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.collect_str(x)
        } else {
            s.serialize_str("")
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// The metrics file at `path` as CSV records, its header checked against [`METRICS_COLUMNS`].
fn reader<'t>(path: &Path, text: &'t [u8]) -> Result<csv::Reader<&'t [u8]>> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text);
    let header = reader
        .headers()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if header.iter().ne(METRICS_COLUMNS) {
        bail!(
            "{}: unexpected header `{}`",
            path.display(),
            header.iter().collect::<Vec<_>>().join(",")
        );
    }
    Ok(reader)
}

/// One record as a row (errors name the file and the line).
fn parse_row(path: &Path, record: csv::Result<csv::StringRecord>) -> Result<MetricsRow> {
    let record = record.with_context(|| format!("cannot read {}", path.display()))?;
    let line = record.position().map_or(0, |p| p.line() as usize);
    if record.len() != METRICS_COLUMNS.len() {
        bail!(
            "{}: line {line}: expected {} fields, got {}",
            path.display(),
            METRICS_COLUMNS.len(),
            record.len()
        );
    }
    record
        .deserialize(None)
        .with_context(|| format!("{}: line {line}", path.display()))
}

/// Reads every row of a `metrics.csv`.
pub fn read_metrics(path: impl AsRef<Path>) -> Result<Vec<MetricsRow>> {
    let path = path.as_ref();
    let text = std::fs::read(path).with_context(|| format!("cannot open {}", path.display()))?;
    reader(path, &text)?
        .into_records()
        .map(|record| parse_row(path, record))
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
    /// Creates a new `metrics.csv` with its header (overwriting any file there).
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file =
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut writer = row_writer(file);
        writer
            .write_record(METRICS_COLUMNS)
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
        let reader = reader(&path, complete)
            .with_context(|| format!("{}: missing or unexpected header", path.display()))?;
        let mut kept = Vec::with_capacity(keep_updates);
        for record in reader.into_records() {
            let expected = kept.len() + 1;
            let row = match parse_row(&path, record) {
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
        out.write_record(METRICS_COLUMNS)?;
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
        "policy_loss" | "value_loss" | "entropy" | "approx_kl" | "clip_frac" | "explained_var"
        | "grad_norm" => "losses",
        "episodes" | "return_mean" | "return_min" | "return_max" | "length_mean" | "goals_mean"
        | "success_rate" => "episode",
        _ => "train",
    };
    format!("{group}/{column}")
}

/// Every finite column of a metrics row except `update` and `env_steps` (the step), tagged.
pub fn row_scalars(row: &MetricsRow) -> Result<Vec<(String, f32)>> {
    Ok(METRICS_COLUMNS
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
