//! Learning curves from training runs: reading `metrics.csv`, grouping runs by policy,
//! aligning seeds on a common x grid (env steps or wall time) and summarising them as
//! mean ± 95 % confidence interval (Student t over seeds).
//!
//! Every statistic here is across *runs* (seeds): a run contributes one value per grid point,
//! interpolated linearly between its logged updates (after an optional trailing moving
//! average). The confidence interval of the mean of `n` seeds is
//! `mean ± t(0.975, n − 1) · s / √n`, with `s` the sample standard deviation.

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
    /// Environment name (from the directory name `<env>__<policy>__<seed>__<time>`).
    pub env: String,
    /// Policy name, used to group runs (from the directory name, or the whole name).
    pub policy: String,
    /// Seed, when the directory name carries one.
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

impl Run {
    /// Loads a run directory: parses its name and reads `metrics.csv`.
    pub fn load(dir: &Path) -> Result<Self, CurvesError> {
        let metrics = MetricsTable::read(&dir.join(crate::run_dir::METRICS_FILE))?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        let (env, policy, seed) = parse_run_name(&name).unwrap_or((String::new(), name, None));
        Ok(Self {
            dir: dir.to_path_buf(),
            env,
            policy,
            seed,
            metrics,
        })
    }
}

/// Groups runs by policy name, keeping the order in which policies first appear.
pub fn group_by_policy(runs: Vec<Run>) -> Vec<(String, Vec<Run>)> {
    let mut groups: Vec<(String, Vec<Run>)> = Vec::new();
    for run in runs {
        match groups.iter_mut().find(|(p, _)| *p == run.policy) {
            Some((_, g)) => g.push(run),
            None => groups.push((run.policy.clone(), vec![run])),
        }
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
    /// Lower 95 % CI bound at each x.
    pub low: Vec<f64>,
    /// Upper 95 % CI bound at each x.
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
        out.x.push(x);
        out.mean.push(s.mean);
        out.low.push(s.ci_low);
        out.high.push(s.ci_high);
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

/// Chooses the reward metric to plot for a set of runs: `goals_mean` when any run logged a
/// goal count (GridMaze), otherwise `return_mean`.
pub fn default_metric(runs: &[Run]) -> &'static str {
    let has_goals = runs.iter().any(|r| {
        r.metrics
            .column("goals_mean")
            .map(|c| c.iter().flatten().any(|v| *v != 0.0))
            .unwrap_or(false)
    });
    if has_goals {
        "goals_mean"
    } else {
        "return_mean"
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
/// updates, then aligned on `grid_points` x values.
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
    aggregate(label, &curves, grid_points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
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
        let mk = |p: &str| Run {
            dir: PathBuf::from(p),
            env: "e".into(),
            policy: p.into(),
            seed: None,
            metrics: t.clone(),
        };
        let g = group_by_policy(vec![mk("b"), mk("a"), mk("b")]);
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].0.as_str(), g[0].1.len()), ("b", 2));
        assert_eq!((g[1].0.as_str(), g[1].1.len()), ("a", 1));
        assert_eq!("time".parse::<XAxis>(), Ok(XAxis::Time));
        assert!("foo".parse::<XAxis>().is_err());
    }
}
