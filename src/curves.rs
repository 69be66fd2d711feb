//! Learning curves from training runs: reading `metrics.csv`, grouping runs by env and label
//! (or policy), aligning seeds on a common x grid (env steps or wall time) and summarising
//! them as mean ± 95 % confidence interval (Student t over seeds).
//!
//! Every statistic here is across *runs* (seeds): a run contributes one value per grid point,
//! interpolated linearly between its logged updates (after an optional trailing moving
//! average). The confidence interval of the mean of `n` seeds is
//! `mean ± t(0.975, n − 1) · s / √n`, with `s` the sample standard deviation.
//!
//! For a metric bounded in [0, 1] (a rate such as `success_rate`, see [`metric_bounds`]) the
//! interval is clipped to [0, 1]. Each seed's value there is itself a rate over the many
//! episodes of an update, not one success or failure, so the mean over `n` seeds is not `k`
//! successes out of `n` trials and a Wilson interval would not apply. The true mean lies in
//! [0, 1], so clipping the Student-t interval to [0, 1] never removes it: the coverage stays at
//! least 95 %. (A percentile bootstrap over 3 seeds could not reach beyond the smallest and
//! largest seed and covers the mean only about 75 % of the time.)
//!
//! A run's env and label come from its `config.toml` (the `[env]` table and `label`, which
//! defaults to the policy kind); runs without one fall back to the directory name
//! `<env>__<policy>__<seed>__<time>`. Runs of different envs — different `[env]` tables, e.g.
//! two GridMaze sizes, or two custom envs — are never averaged together.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Errors while reading runs or computing curves.
#[derive(Debug, Error)]
pub enum CurvesError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A CSV line is malformed.
    #[error("{path}, line {line}: {reason}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A column the caller asked for is not in the file.
    #[error("{path}: no column `{column}` (columns: {available})")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// The columns that are there, comma separated.
        available: String,
    },
    /// A run's `config.toml` is not valid TOML.
    #[error("{path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Nothing to plot or summarise.
    #[error("no data: {0}")]
    NoData(String),
}

/// One `metrics.csv`: a header and rows of optional numbers (an empty cell is `None`).
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsTable {
    /// Where the table was read from (used in error messages).
    pub path: PathBuf,
    /// Column names, in file order.
    pub header: Vec<String>,
    /// One row per logged update; `None` where the cell was empty (e.g. no episode ended).
    pub rows: Vec<Vec<Option<f64>>>,
}

impl MetricsTable {
    /// Reads and parses a metrics CSV file.
    pub fn read(path: &Path) -> Result<Self, CurvesError> {
        let text = std::fs::read_to_string(path).map_err(|source| CurvesError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses CSV text (header line, then numeric rows; empty cells allowed).
    ///
    /// A trailing line without a newline that has the wrong number of cells is ignored:
    /// that is a row being written when a run was killed, not a corrupt file.
    pub fn parse(text: &str, path: &Path) -> Result<Self, CurvesError> {
        let err = |line: usize, reason: String| CurvesError::Csv {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| err(1, e.to_string()))?
            .iter()
            .map(str::to_string)
            .collect();
        if header.is_empty() {
            return Err(err(1, "empty file, expected a header line".into()));
        }
        let records = reader
            .into_records()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(e.position().map_or(0, |p| p.line() as usize), e.to_string()))?;
        let last = records.len().saturating_sub(1);
        let mut rows = Vec::with_capacity(records.len());
        for (k, record) in records.iter().enumerate() {
            let line = record.position().map_or(0, |p| p.line() as usize);
            if record.len() != header.len() {
                if k == last && !text.ends_with('\n') {
                    break;
                }
                return Err(err(
                    line,
                    format!("{} cells, header has {}", record.len(), header.len()),
                ));
            }
            let row = record
                .iter()
                .zip(&header)
                .map(|(cell, column)| {
                    if cell.is_empty() {
                        return Ok(None);
                    }
                    cell.parse::<f64>().map(Some).map_err(|_| {
                        err(line, format!("column `{column}`: `{cell}` is not a number"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            rows.push(row);
        }
        Ok(Self {
            path: path.to_path_buf(),
            header,
            rows,
        })
    }

    fn index(&self, name: &str) -> Result<usize, CurvesError> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| CurvesError::MissingColumn {
                path: self.path.clone(),
                column: name.to_string(),
                available: self.header.join(", "),
            })
    }

    /// Adds the env's named step scalars of an info log as columns `info/<name>`, matched to
    /// the rows by `update` (empty where an update did not report one).
    pub fn add_info_columns(&mut self, rows: &[(usize, String, f64)]) -> Result<(), CurvesError> {
        let update = self.index("update")?;
        let row_of: std::collections::HashMap<usize, usize> = self
            .rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r[update].map(|u| (u as usize, i)))
            .collect();
        for (u, name, mean) in rows {
            let column = format!("info/{name}");
            let c = match self.header.iter().position(|h| *h == column) {
                Some(c) => c,
                None => {
                    self.header.push(column);
                    for r in &mut self.rows {
                        r.push(None);
                    }
                    self.header.len() - 1
                }
            };
            if let Some(&i) = row_of.get(u) {
                self.rows[i][c] = mean.is_finite().then_some(*mean);
            }
        }
        Ok(())
    }

    /// All values of one column (`None` for empty cells).
    pub fn column(&self, name: &str) -> Result<Vec<Option<f64>>, CurvesError> {
        let i = self.index(name)?;
        Ok(self.rows.iter().map(|r| r[i]).collect())
    }

    /// `(x, y)` pairs of two columns, keeping only rows where both cells hold finite numbers.
    pub fn xy(&self, x: &str, y: &str) -> Result<Vec<(f64, f64)>, CurvesError> {
        let (ix, iy) = (self.index(x)?, self.index(y)?);
        Ok(self
            .rows
            .iter()
            .filter_map(|r| match (r[ix], r[iy]) {
                (Some(a), Some(b)) if a.is_finite() && b.is_finite() => Some((a, b)),
                _ => None,
            })
            .collect())
    }

    /// The last non-empty value of a column, if any.
    pub fn last(&self, name: &str) -> Result<Option<f64>, CurvesError> {
        Ok(self.column(name)?.into_iter().rev().flatten().next())
    }
}

/// A training run on disk: its directory, identity and metrics.
#[derive(Clone, Debug)]
pub struct Run {
    /// The run directory.
    pub dir: PathBuf,
    /// Environment name: `env.kind` of the run's `config.toml` (`env.name` for a custom env),
    /// else the `<env>` part of the directory name `<env>__<policy>__<seed>__<time>`, else
    /// empty.
    pub env: String,
    /// The `[env]` table of the run's `config.toml`: the env's full identity (kind and every
    /// setting). `None` when the run has no `config.toml`.
    pub env_config: Option<toml::Table>,
    /// Policy kind: `policy.kind` of the run's `config.toml`, else the `<policy>` part of the
    /// directory name, else the whole directory name.
    pub policy: String,
    /// The run's label: `label` of its `config.toml` (`fbrl train --name`), else [`Run::policy`].
    pub label: String,
    /// Seed: `seed` of the run's `config.toml`, else from the directory name when it carries
    /// one.
    pub seed: Option<u64>,
    /// The run's `metrics.csv`.
    pub metrics: MetricsTable,
}

/// Splits a run directory name `<env>__<policy>__<seed>__<time>` (time optional) into
/// `(env, policy, seed)`. Returns `None` for names that do not follow the pattern.
pub fn parse_run_name(name: &str) -> Option<(String, String, Option<u64>)> {
    let parts: Vec<&str> = name.split("__").collect();
    if parts.len() < 3 || parts[0].is_empty() || parts[1].is_empty() {
        return None;
    }
    Some((
        parts[0].to_string(),
        parts[1].to_string(),
        parts[2].parse().ok(),
    ))
}

/// Reads a run's `config.toml` as a TOML table; `None` when the run has none.
fn read_run_config(dir: &Path) -> Result<Option<toml::Table>, CurvesError> {
    let path = dir.join(crate::run_dir::CONFIG_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CurvesError::Io { path, source }),
    };
    text.parse::<toml::Table>()
        .map(Some)
        .map_err(|e| CurvesError::Config {
            path,
            reason: e.to_string(),
        })
}

impl Run {
    /// Loads a run directory: reads `metrics.csv`, and takes the env, policy, label and seed
    /// from `config.toml` where it has them, else from the directory name.
    pub fn load(dir: &Path) -> Result<Self, CurvesError> {
        let mut metrics = MetricsTable::read(&dir.join(crate::run_dir::METRICS_FILE))?;
        let info = dir.join(crate::run_dir::INFO_FILE);
        if info.is_file() {
            let rows = crate::metrics::read_info(&info).map_err(|e| CurvesError::Csv {
                path: info.clone(),
                line: 0,
                reason: format!("{e:#}"),
            })?;
            metrics.add_info_columns(&rows)?;
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        let (mut env, mut policy, mut seed) =
            parse_run_name(&name).unwrap_or((String::new(), name, None));
        let config = read_run_config(dir)?;
        let mut label = None;
        let mut env_config = None;
        if let Some(cfg) = &config {
            let text =
                |v: Option<&toml::Value>| v.and_then(toml::Value::as_str).map(str::to_string);
            if let Some(table) = cfg.get("env").and_then(toml::Value::as_table) {
                let kind = text(table.get("kind"));
                let custom_name =
                    text(table.get("name")).filter(|_| kind.as_deref() == Some("custom"));
                if let Some(e) = custom_name.or(kind) {
                    env = e;
                }
                env_config = Some(table.clone());
            }
            if let Some(p) = text(cfg.get("policy").and_then(|p| p.get("kind"))) {
                policy = p;
            }
            if let Some(s) = cfg.get("seed").and_then(toml::Value::as_integer) {
                seed = u64::try_from(s).ok();
            }
            label = text(cfg.get("label"));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            env,
            env_config,
            label: label.unwrap_or_else(|| policy.clone()),
            policy,
            seed,
            metrics,
        })
    }

    /// The env's identity as one string: its kind and every setting of its `[env]` table
    /// (keys sorted), or its name when the run has no `config.toml`. Runs are only averaged
    /// together when these are equal.
    pub fn env_identity(&self) -> String {
        match &self.env_config {
            Some(table) => canonical_table(table),
            None => self.env.clone(),
        }
    }
}

/// A TOML value written with table keys sorted, on one line.
fn canonical(value: &toml::Value) -> String {
    match value {
        toml::Value::Table(t) => canonical_table(t),
        toml::Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

fn canonical_table(table: &toml::Table) -> String {
    let mut entries: Vec<(&String, &toml::Value)> = table.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let inner: Vec<String> = entries
        .into_iter()
        .map(|(k, v)| format!("{k} = {}", canonical(v)))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// How `fbrl plot` puts runs into lines. Runs of different envs ([`Run::env_identity`]) are
/// never put into one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum GroupBy {
    /// One line per env and label (`fbrl train --name`, default: the policy kind).
    #[default]
    Label,
    /// One line per env and policy kind: runs with different labels of one policy are
    /// averaged together.
    Policy,
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GroupBy::Label => "label",
            GroupBy::Policy => "policy",
        })
    }
}

/// Runs that are drawn as one line: one env, one label (or policy).
#[derive(Clone, Debug)]
pub struct RunGroup {
    /// The env's name for the legend and title: [`Run::env`], followed by the settings that
    /// tell it apart when runs of several envs of that name are grouped, e.g.
    /// `gridmaze (size = 9)`.
    pub env: String,
    /// The env's identity ([`Run::env_identity`]).
    pub env_identity: String,
    /// The label (or the policy kind, with [`GroupBy::Policy`]).
    pub label: String,
    /// The runs (seeds).
    pub runs: Vec<Run>,
}

/// Groups runs by env identity and label (or policy kind), keeping the order in which
/// groups first appear. Runs of different envs always end up in different groups; when
/// several envs share a name, each group's [`RunGroup::env`] names the settings that differ.
pub fn group_runs(runs: Vec<Run>, by: GroupBy) -> Vec<RunGroup> {
    let mut groups: Vec<RunGroup> = Vec::new();
    for run in runs {
        let identity = run.env_identity();
        let label = match by {
            GroupBy::Label => run.label.clone(),
            GroupBy::Policy => run.policy.clone(),
        };
        match groups
            .iter_mut()
            .find(|g| g.env_identity == identity && g.label == label)
        {
            Some(g) => g.runs.push(run),
            None => groups.push(RunGroup {
                env: run.env.clone(),
                env_identity: identity,
                label,
                runs: vec![run],
            }),
        }
    }
    // Envs that share a name are told apart by the settings in which they differ.
    let configs: Vec<(String, String, Option<toml::Table>)> = groups
        .iter()
        .map(|g| {
            (
                g.env.clone(),
                g.env_identity.clone(),
                g.runs[0].env_config.clone(),
            )
        })
        .collect();
    for g in &mut groups {
        let mut namesakes: Vec<&(String, String, Option<toml::Table>)> = Vec::new();
        for c in configs.iter().filter(|c| c.0 == g.env) {
            if !namesakes.iter().any(|n| n.1 == c.1) {
                namesakes.push(c);
            }
        }
        if namesakes.len() < 2 {
            continue;
        }
        let own = namesakes
            .iter()
            .find(|n| n.1 == g.env_identity)
            .and_then(|n| n.2.as_ref());
        let mut keys: Vec<&String> = namesakes
            .iter()
            .filter_map(|n| n.2.as_ref())
            .flat_map(|t| t.keys())
            .collect();
        keys.sort();
        keys.dedup();
        let differing: Vec<String> = keys
            .into_iter()
            .filter(|k| {
                let first = namesakes[0].2.as_ref().and_then(|t| t.get(*k));
                namesakes
                    .iter()
                    .any(|n| n.2.as_ref().and_then(|t| t.get(*k)) != first)
            })
            .map(|k| {
                let value = own.and_then(|t| t.get(k)).map(canonical);
                format!("{k} = {}", value.as_deref().unwrap_or("unset"))
            })
            .collect();
        g.env = if own.is_none() {
            format!("{} (no config.toml)", g.env)
        } else {
            format!("{} ({})", g.env, differing.join(", "))
        };
    }
    groups
}

/// What goes on the x axis of a learning curve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum XAxis {
    /// Environment steps (summed over all parallel envs).
    #[default]
    Steps,
    /// Wall-clock time in seconds since the run started.
    Time,
}

impl XAxis {
    /// The metrics column for this axis.
    pub fn column(self) -> &'static str {
        match self {
            XAxis::Steps => "env_steps",
            XAxis::Time => "wall_time_s",
        }
    }

    /// A human-readable axis label.
    pub fn label(self) -> &'static str {
        match self {
            XAxis::Steps => "environment steps",
            XAxis::Time => "wall-clock time (s)",
        }
    }
}

impl fmt::Display for XAxis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XAxis::Steps => "steps",
            XAxis::Time => "time",
        })
    }
}

impl std::str::FromStr for XAxis {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "steps" | "env_steps" => Ok(XAxis::Steps),
            "time" | "wall_time" | "wall_time_s" => Ok(XAxis::Time),
            other => Err(format!(
                "unknown x axis `{other}`: expected `steps` or `time`"
            )),
        }
    }
}

/// Trailing moving average over `window` points (the point itself and up to `window − 1`
/// before it). `window <= 1` returns the points unchanged.
pub fn smooth(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    if window <= 1 {
        return points.to_vec();
    }
    let mut out = Vec::with_capacity(points.len());
    let mut sum = 0.0;
    for i in 0..points.len() {
        sum += points[i].1;
        if i >= window {
            sum -= points[i - window].1;
        }
        let n = (i + 1).min(window) as f64;
        out.push((points[i].0, sum / n));
    }
    out
}

/// Linear interpolation of a curve sorted by x; `None` outside `[x_first, x_last]`.
pub fn interpolate(points: &[(f64, f64)], x: f64) -> Option<f64> {
    let first = points.first()?;
    let last = points.last()?;
    if x < first.0 || x > last.0 {
        return None;
    }
    let j = points.partition_point(|p| p.0 < x);
    if j == 0 {
        return Some(first.1);
    }
    let (a, b) = (points[j - 1], points[j.min(points.len() - 1)]);
    if b.0 <= a.0 {
        return Some(b.1);
    }
    Some(a.1 + (b.1 - a.1) * (x - a.0) / (b.0 - a.0))
}

pub use crate::stats::{Summary, mean_ci95, t_quantile};

/// A curve summarised across runs: mean and 95 % CI per grid point.
#[derive(Clone, Debug, PartialEq)]
pub struct BandCurve {
    /// Legend label (usually the policy name).
    pub label: String,
    /// Number of runs (seeds) behind every point.
    pub n_runs: usize,
    /// Grid of x values.
    pub x: Vec<f64>,
    /// Mean over runs at each x.
    pub mean: Vec<f64>,
    /// Lower 95 % CI bound at each x (clipped to the metric's bounds, if it has any).
    pub low: Vec<f64>,
    /// Upper 95 % CI bound at each x (clipped to the metric's bounds, if it has any).
    pub high: Vec<f64>,
}

/// Aligns several runs' curves on a common grid of `grid_points` evenly spaced x values
/// over the range every run covers (from the latest first x to the earliest last x), and
/// summarises them per grid point with [`mean_ci95`]. Each run is linearly interpolated. When
/// no x is common to all runs, the grid spans all of them and each run is held at its first /
/// last value outside its own range.
pub fn aggregate(
    label: &str,
    curves: &[Vec<(f64, f64)>],
    grid_points: usize,
) -> Result<BandCurve, CurvesError> {
    aggregate_within(label, curves, grid_points, None)
}

/// [`aggregate`] for a metric whose values lie in `bounds = (low, high)` (e.g. `(0, 1)` for a
/// rate): the Student-t interval is clipped to the bounds, which the true mean never leaves
/// (so the coverage stays at least 95 %). `None` leaves the interval as it is.
pub fn aggregate_within(
    label: &str,
    curves: &[Vec<(f64, f64)>],
    grid_points: usize,
    bounds: Option<(f64, f64)>,
) -> Result<BandCurve, CurvesError> {
    let curves: Vec<&Vec<(f64, f64)>> = curves.iter().filter(|c| !c.is_empty()).collect();
    if curves.is_empty() {
        return Err(CurvesError::NoData(format!(
            "`{label}`: no run has a data point"
        )));
    }
    let mut x0 = curves.iter().map(|c| c[0].0).fold(f64::MIN, f64::max);
    let mut x1 = curves
        .iter()
        .map(|c| c[c.len() - 1].0)
        .fold(f64::MAX, f64::min);
    // Ranges with nothing in common (very short runs against wall-clock time, whose first
    // and last updates jitter): summarise over all of them, each run held at its first / last
    // value outside its own range.
    let disjoint = x1 < x0;
    if disjoint {
        x0 = curves.iter().map(|c| c[0].0).fold(f64::MAX, f64::min);
        x1 = curves
            .iter()
            .map(|c| c[c.len() - 1].0)
            .fold(f64::MIN, f64::max);
    }
    let n = if x1 > x0 { grid_points.max(2) } else { 1 };
    let mut out = BandCurve {
        label: label.to_string(),
        n_runs: curves.len(),
        x: Vec::with_capacity(n),
        mean: Vec::with_capacity(n),
        low: Vec::with_capacity(n),
        high: Vec::with_capacity(n),
    };
    for i in 0..n {
        // The last grid point is exactly x1: computed, it could overshoot by rounding.
        let x = if n == 1 {
            x0
        } else if i == n - 1 {
            x1
        } else {
            (x0 + (x1 - x0) * i as f64 / (n - 1) as f64).clamp(x0, x1)
        };
        let ys: Vec<f64> = curves
            .iter()
            .filter_map(|c| {
                if disjoint {
                    interpolate(c, x.clamp(c[0].0, c[c.len() - 1].0))
                } else {
                    interpolate(c, x)
                }
            })
            .collect();
        if ys.len() != curves.len() {
            return Err(CurvesError::NoData(format!(
                "`{label}`: a run has no value at x = {x}"
            )));
        }
        let s = mean_ci95(&ys).expect("ys is not empty");
        let (low, high) = match bounds {
            Some((lo, hi)) => (s.ci_low.clamp(lo, hi), s.ci_high.clamp(lo, hi)),
            None => (s.ci_low, s.ci_high),
        };
        out.x.push(x);
        out.mean.push(s.mean);
        out.low.push(low);
        out.high.push(high);
    }
    Ok(out)
}

/// The mean of `y` over the last `frac` of a run's x range (e.g. `0.1` = last 10 % of env
/// steps): the run's "final" value, less noisy than the last logged point alone.
pub fn final_value(points: &[(f64, f64)], frac: f64) -> Option<f64> {
    let (first, last) = (points.first()?.0, points.last()?.0);
    let from = last - frac.clamp(0.0, 1.0) * (last - first);
    let tail: Vec<f64> = points.iter().filter(|p| p.0 >= from).map(|p| p.1).collect();
    Some(tail.iter().sum::<f64>() / tail.len() as f64)
}

/// Chooses the reward metric to plot for a set of runs: the first column of an env's count
/// (`<name>_mean` between `length_mean` and `success_rate`, e.g. GridMaze's `goals_mean`)
/// that some run logged a non-zero value in, otherwise `return_mean`.
pub fn default_metric(runs: &[Run]) -> String {
    let logged = |column: &str| {
        runs.iter().any(|r| {
            r.metrics
                .column(column)
                .map(|c| c.iter().flatten().any(|v| *v != 0.0))
                .unwrap_or(false)
        })
    };
    runs.iter()
        .flat_map(|r| count_columns(&r.metrics.header))
        .find(|c| logged(c))
        .map_or_else(|| "return_mean".to_string(), str::to_string)
}

/// The count columns of a `metrics.csv` header: those between `length_mean` and
/// `success_rate` (see [`crate::metrics`]).
fn count_columns(header: &[String]) -> impl Iterator<Item = &str> {
    header
        .iter()
        .skip_while(|c| *c != "length_mean")
        .skip(1)
        .take_while(|c| *c != "success_rate")
        .map(String::as_str)
}

/// The range a metrics column's values cannot leave: `(0, 1)` for the rates `success_rate`
/// (fraction of successful episodes) and `clip_frac` (fraction of clipped ratios), `None` for
/// every other column. Confidence bands of these columns are clipped to the range (see the
/// module docs).
pub fn metric_bounds(column: &str) -> Option<(f64, f64)> {
    match column {
        "success_rate" | "clip_frac" => Some((0.0, 1.0)),
        _ => None,
    }
}

/// A human-readable label for a metrics column.
pub fn metric_label(column: &str) -> String {
    let known: HashMap<&str, &str> = [
        ("goals_mean", "goals per episode"),
        ("return_mean", "average episode reward"),
        ("success_rate", "success rate"),
        ("length_mean", "episode length (steps)"),
        ("steps_per_s", "env steps per second"),
        ("entropy", "policy entropy"),
        ("explained_var", "explained variance"),
    ]
    .into_iter()
    .collect();
    known
        .get(column)
        .map(|s| s.to_string())
        .unwrap_or_else(|| column.replace('_', " "))
}

/// Learning curves of a group of runs, summarised as a [`BandCurve`]: each run's
/// `(x_axis, metric)` points are smoothed with a trailing window of `smooth_window`
/// updates, then aligned on `grid_points` x values. The band of a bounded metric
/// ([`metric_bounds`]) is clipped to its bounds.
pub fn group_curve(
    label: &str,
    runs: &[Run],
    x_axis: XAxis,
    metric: &str,
    smooth_window: usize,
    grid_points: usize,
) -> Result<BandCurve, CurvesError> {
    let mut curves = Vec::with_capacity(runs.len());
    for run in runs {
        let pts = run.metrics.xy(x_axis.column(), metric)?;
        curves.push(smooth(&pts, smooth_window));
    }
    aggregate_within(label, &curves, grid_points, metric_bounds(metric))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::tests::close;

    #[test]
    fn count_columns_are_those_between_length_and_success() {
        let header: Vec<String> = crate::metrics::metrics_columns(&["waits", "keys"], &[])
            .into_iter()
            .map(str::to_string)
            .collect();
        assert_eq!(
            count_columns(&header).collect::<Vec<_>>(),
            ["waits_mean", "keys_mean"]
        );
        let header: Vec<String> = crate::METRICS_COLUMNS.map(str::to_string).to_vec();
        assert_eq!(count_columns(&header).count(), 0);
    }

    #[test]
    fn parse_handles_empty_cells_and_partial_last_line() {
        let text = "update,env_steps,goals_mean\n1,100,\n2,200,1.5\n3,30";
        let t = MetricsTable::parse(text, Path::new("m.csv")).unwrap();
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.column("goals_mean").unwrap(), vec![None, Some(1.5)]);
        assert_eq!(t.xy("env_steps", "goals_mean").unwrap(), vec![(200.0, 1.5)]);
        assert_eq!(t.last("goals_mean").unwrap(), Some(1.5));
        let e = t.column("nope").unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("m.csv"), "{e}");
        let e = MetricsTable::parse("a,b\n1,x\n", Path::new("m.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("`b`"), "{e}");
        let e = MetricsTable::parse("a,b\n1\n2,3\n", Path::new("m.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn smoothing_and_interpolation() {
        let pts = [(0.0, 0.0), (1.0, 3.0), (2.0, 6.0), (3.0, 0.0)];
        let s = smooth(&pts, 2);
        assert_eq!(s, vec![(0.0, 0.0), (1.0, 1.5), (2.0, 4.5), (3.0, 3.0)]);
        assert_eq!(smooth(&pts, 1), pts.to_vec());
        assert_eq!(interpolate(&pts, 0.5), Some(1.5));
        assert_eq!(interpolate(&pts, 2.5), Some(3.0));
        assert_eq!(interpolate(&pts, 3.0), Some(0.0));
        assert_eq!(interpolate(&pts, 3.5), None);
        assert_eq!(interpolate(&pts, -0.1), None);
    }

    #[test]
    fn aggregate_aligns_runs_on_common_range() {
        // Run a: y = x on [0, 10]; run b: y = x + 2 on [2, 8] (sampled every 2).
        let a: Vec<(f64, f64)> = (0..=10).map(|i| (i as f64, i as f64)).collect();
        let b: Vec<(f64, f64)> = (1..=4)
            .map(|i| (2.0 * i as f64, 2.0 * i as f64 + 2.0))
            .collect();
        let c = aggregate("p", &[a, b], 4).unwrap();
        assert_eq!(c.n_runs, 2);
        assert_eq!(c.x, vec![2.0, 4.0, 6.0, 8.0]);
        assert_eq!(c.mean, vec![3.0, 5.0, 7.0, 9.0]);
        // n = 2, s = sqrt(2): half width = t(0.975, 1) * sqrt(2)/sqrt(2) = 12.706.
        for i in 0..4 {
            assert!(close(c.high[i] - c.mean[i], 12.7062, 1e-3));
            assert!(close(c.mean[i] - c.low[i], 12.7062, 1e-3));
        }
        assert!(aggregate("p", &[vec![], vec![]], 4).is_err());
        // Float grids whose computed last point would overshoot the common end.
        let t1: Vec<(f64, f64)> = vec![(0.1, 1.0), (0.7, 2.0), (1.3000000000000003, 3.0)];
        let t2: Vec<(f64, f64)> = vec![(0.1, 1.0), (0.9, 2.0), (1.3, 3.0)];
        for n in 2..300 {
            let c = aggregate("t", &[t1.clone(), t2.clone()], n).unwrap();
            assert_eq!(c.n_runs, 2);
            assert_eq!(*c.x.last().unwrap(), 1.3);
        }
        // Disjoint ranges: the grid spans both, each run held at its ends outside its range.
        let a = vec![(0.0, 1.0), (1.0, 3.0)];
        let b = vec![(5.0, 10.0), (6.0, 20.0)];
        let c = aggregate("p", &[a, b], 7).unwrap();
        assert_eq!((c.x[0], *c.x.last().unwrap()), (0.0, 6.0));
        assert!(close(c.mean[0], (1.0 + 10.0) / 2.0, 1e-12));
        assert!(close(*c.mean.last().unwrap(), (3.0 + 20.0) / 2.0, 1e-12));
    }

    #[test]
    fn rate_bands_stay_within_0_1_and_others_keep_the_t_band() {
        // Three seeds with success rates 0, 1, 1 at every update: the Student-t interval is
        // 0.667 ± 4.303 · 0.577 / √3 = [-0.77, 2.10]; for a rate it is clipped to [0, 1].
        let text = |v: f64| format!("env_steps,success_rate,return_mean\n1,{v},{v}\n2,{v},{v}\n");
        let runs: Vec<Run> = [0.0, 1.0, 1.0]
            .into_iter()
            .enumerate()
            .map(|(i, v)| Run {
                dir: PathBuf::from(format!("r{i}")),
                env: "e".into(),
                env_config: None,
                policy: "p".into(),
                label: "p".into(),
                seed: Some(i as u64),
                metrics: MetricsTable::parse(&text(v), Path::new("m.csv")).unwrap(),
            })
            .collect();
        let rate = group_curve("p", &runs, XAxis::Steps, "success_rate", 1, 5).unwrap();
        let ret = group_curve("p", &runs, XAxis::Steps, "return_mean", 1, 5).unwrap();
        for i in 0..rate.x.len() {
            assert!(close(rate.mean[i], 2.0 / 3.0, 1e-12));
            assert!((0.0..=1.0).contains(&rate.low[i]), "{rate:?}");
            assert!((0.0..=1.0).contains(&rate.high[i]), "{rate:?}");
            assert_eq!((rate.low[i], rate.high[i]), (0.0, 1.0));
            assert!(close(ret.low[i], -0.7676, 1e-3), "{ret:?}");
            assert!(close(ret.high[i], 2.1009, 1e-3), "{ret:?}");
        }
        // A band inside [0, 1] is left as it is.
        let c = aggregate_within(
            "p",
            &[vec![(0.0, 0.5)], vec![(0.0, 0.6)], vec![(0.0, 0.55)]],
            3,
            Some((0.0, 1.0)),
        )
        .unwrap();
        let t = aggregate(
            "p",
            &[vec![(0.0, 0.5)], vec![(0.0, 0.6)], vec![(0.0, 0.55)]],
            3,
        )
        .unwrap();
        assert_eq!(c, t);
        assert!(c.low[0] > 0.0 && c.high[0] < 1.0);
        assert_eq!(metric_bounds("success_rate"), Some((0.0, 1.0)));
        assert_eq!(metric_bounds("return_mean"), None);
    }

    #[test]
    fn run_identity_comes_from_config_toml_else_the_folder_name() {
        let root = std::env::temp_dir().join(format!("fbrl-curves-load-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let metrics = "env_steps,return_mean\n1,0.5\n";
        // A run folder `name` under `root` with `metrics` and, when given, a config.toml.
        let run_dir = |name: &str, config: Option<&str>| {
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("metrics.csv"), metrics).unwrap();
            if let Some(config) = config {
                std::fs::write(dir.join("config.toml"), config).unwrap();
            }
            dir
        };
        fn identity(run: &Run) -> (&str, &str, &str, Option<u64>) {
            (
                run.env.as_str(),
                run.policy.as_str(),
                run.label.as_str(),
                run.seed,
            )
        }
        let with_config = run_dir(
            "gridmaze__mlp__4__1700000000",
            Some(
                "label = \"big\"\nseed = 7\n[env]\nkind = \"custom\"\nname = \"keydoor\"\n\
                 [env.params]\nsize = 9\n[policy]\nkind = \"gru\"\n",
            ),
        );
        let run = Run::load(&with_config).unwrap();
        assert_eq!(identity(&run), ("keydoor", "gru", "big", Some(7)));
        assert_eq!(
            run.env_identity(),
            "{kind = \"custom\", name = \"keydoor\", params = {size = 9}}"
        );
        // No label: the policy kind is the label.
        let unlabelled = run_dir(
            "my_run",
            Some("[env]\nkind = \"cue_recall\"\n[policy]\nkind = \"feedback\"\n"),
        );
        let run = Run::load(&unlabelled).unwrap();
        assert_eq!(
            (run.env.as_str(), run.policy.as_str(), run.label.as_str()),
            ("cue_recall", "feedback", "feedback")
        );
        // No config.toml: the directory name.
        let bare = run_dir("pendulum__mlp__3__1700000000", None);
        let run = Run::load(&bare).unwrap();
        assert_eq!(identity(&run), ("pendulum", "mlp", "mlp", Some(3)));
        assert_eq!(run.env_config, None);
        assert_eq!(run.env_identity(), "pendulum");
        // A config.toml that is not TOML is an error naming it.
        std::fs::write(bare.join("config.toml"), "[env\n").unwrap();
        let e = Run::load(&bare).unwrap_err().to_string();
        assert!(e.contains("config.toml"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn final_value_averages_the_tail() {
        let pts: Vec<(f64, f64)> = (0..=100).map(|i| (i as f64, i as f64)).collect();
        // last 10 % of x: 90..=100, mean 95.
        assert_eq!(final_value(&pts, 0.1), Some(95.0));
        assert_eq!(final_value(&pts, 0.0), Some(100.0));
        assert_eq!(final_value(&[], 0.1), None);
    }

    #[test]
    fn run_names_and_grouping() {
        assert_eq!(
            parse_run_name("gridmaze__feedback__3__20250101-120000"),
            Some(("gridmaze".into(), "feedback".into(), Some(3)))
        );
        assert_eq!(
            parse_run_name("maze-quick__mlp__0"),
            Some(("maze-quick".into(), "mlp".into(), Some(0)))
        );
        assert_eq!(parse_run_name("my_run"), None);
        let t = MetricsTable::parse("env_steps\n1\n", Path::new("m")).unwrap();
        let mk = |env: &str, size: i64, label: &str, policy: &str| {
            let mut cfg = toml::Table::new();
            cfg.insert("kind".into(), env.into());
            cfg.insert("size".into(), size.into());
            Run {
                dir: PathBuf::from(label),
                env: env.into(),
                env_config: Some(cfg),
                policy: policy.into(),
                label: label.into(),
                seed: None,
                metrics: t.clone(),
            }
        };
        let g = group_runs(
            vec![
                mk("e", 7, "b", "b"),
                mk("e", 7, "a", "a"),
                mk("e", 7, "b", "b"),
            ],
            GroupBy::Label,
        );
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].label.as_str(), g[0].runs.len()), ("b", 2));
        assert_eq!((g[1].label.as_str(), g[1].runs.len()), ("a", 1));
        assert_eq!(
            g[0].env, "e",
            "one env of that name: no settings in its name"
        );
        // Two labels of one policy: two lines, or one with --group-by policy.
        let runs = vec![
            mk("e", 7, "lr1", "gru"),
            mk("e", 7, "lr2", "gru"),
            mk("e", 7, "lr1", "gru"),
        ];
        let g = group_runs(runs.clone(), GroupBy::Label);
        let labels: Vec<(&str, usize)> =
            g.iter().map(|g| (g.label.as_str(), g.runs.len())).collect();
        assert_eq!(labels, vec![("lr1", 2), ("lr2", 1)]);
        let g = group_runs(runs, GroupBy::Policy);
        assert_eq!(
            (g.len(), g[0].label.as_str(), g[0].runs.len()),
            (1, "gru", 3)
        );
        // Two envs are never averaged, by name or by setting, whatever the grouping.
        for by in [GroupBy::Label, GroupBy::Policy] {
            let g = group_runs(
                vec![
                    mk("keydoor", 7, "gru", "gru"),
                    mk("keydoor_cont", 7, "gru", "gru"),
                    mk("keydoor", 9, "gru", "gru"),
                    mk("keydoor", 7, "gru", "gru"),
                ],
                by,
            );
            let envs: Vec<(&str, usize)> =
                g.iter().map(|g| (g.env.as_str(), g.runs.len())).collect();
            assert_eq!(
                envs,
                vec![
                    ("keydoor (size = 7)", 2),
                    ("keydoor_cont", 1),
                    ("keydoor (size = 9)", 1)
                ],
                "{by}"
            );
        }
        assert_eq!("time".parse::<XAxis>(), Ok(XAxis::Time));
        assert!("foo".parse::<XAxis>().is_err());
    }
}
