//! [`plot_runs`]: reward curves read from run directories, grouped and averaged over seeds.

use std::path::{Path, PathBuf};

use super::line::LineChart;
use super::{CI_NOTE_RATE, DEFAULT_SIZE, PlotError, RefLine, SavedPlot};
use crate::curves::{self, GroupBy, Run, XAxis};

/// Options for [`plot_runs`].
#[derive(Clone, Debug, PartialEq)]
pub struct RunsPlotOptions {
    /// What goes on the x axis.
    pub x_axis: XAxis,
    /// Trailing moving-average window, in logged updates (1 = no smoothing).
    pub smooth: usize,
    /// Metrics column to plot; `None` picks an env's count (`goals_mean` for GridMaze runs,
    /// see [`curves::default_metric`]), else `return_mean`.
    pub metric: Option<String>,
    /// How runs are put into lines (runs of different envs never share one).
    pub group_by: GroupBy,
    /// Title; `None` makes one from the env name, metric and axis.
    pub title: Option<String>,
    /// Dashed horizontal reference lines.
    pub refs: Vec<RefLine>,
    /// Number of x grid points the runs are aligned on.
    pub grid_points: usize,
    /// Image size in pixels.
    pub size: (u32, u32),
}

impl Default for RunsPlotOptions {
    fn default() -> Self {
        Self {
            x_axis: XAxis::Steps,
            smooth: 1,
            metric: None,
            group_by: GroupBy::Label,
            title: None,
            refs: Vec::new(),
            grid_points: 200,
            size: DEFAULT_SIZE,
        }
    }
}

/// Draws learning curves from run directories (each holding a `metrics.csv`): runs are
/// grouped by env and label, or by env and policy kind (see [`GroupBy`] and [`curves::Run`]
/// for where each is read from); each group is drawn as the mean over its seeds with a 95 %
/// Student-t confidence band, clipped to [0, 1] for a rate ([`curves::metric_bounds`]).
/// Runs of different envs are never averaged: with several envs, each line is labelled
/// `env / label` and the title names them all. Writes `out_png` and the SVG beside it.
pub fn plot_runs(
    run_dirs: &[PathBuf],
    out_png: &Path,
    opts: &RunsPlotOptions,
) -> Result<SavedPlot, PlotError> {
    if run_dirs.is_empty() {
        return Err(PlotError::Invalid("no run directories given".into()));
    }
    // The same run named twice (`runs/a runs/a/`, a symlink) is one seed, not two.
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<&PathBuf> = run_dirs
        .iter()
        .filter(|d| seen.insert(std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf())))
        .collect();
    let runs = unique
        .into_iter()
        .map(|d| Run::load(d))
        .collect::<Result<Vec<_>, _>>()?;
    let metric = opts
        .metric
        .clone()
        .unwrap_or_else(|| curves::default_metric(&runs));
    let groups = curves::group_runs(runs, opts.group_by);
    let env_name = |g: &curves::RunGroup| {
        if g.env.is_empty() {
            "unknown env".to_string()
        } else {
            g.env.clone()
        }
    };
    let mut envs: Vec<String> = Vec::new();
    for g in &groups {
        if !envs.contains(&env_name(g)) {
            envs.push(env_name(g));
        }
    }
    let bands = groups
        .iter()
        .map(|g| {
            let label = if envs.len() > 1 {
                format!("{} / {}", env_name(g), g.label)
            } else {
                g.label.clone()
            };
            curves::group_curve(
                &label,
                &g.runs,
                opts.x_axis,
                &metric,
                opts.smooth,
                opts.grid_points,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let title = opts.title.clone().unwrap_or_else(|| {
        let env = if groups.iter().all(|g| g.env.is_empty()) {
            String::new()
        } else {
            envs.join(", ")
        };
        let what = curves::metric_label(&metric);
        if env.is_empty() {
            format!("{what} vs {}", opts.x_axis.label())
        } else {
            format!("{env}: {what} vs {}", opts.x_axis.label())
        }
    });
    let y_label = if opts.smooth > 1 {
        format!(
            "{} (moving average of {} updates)",
            curves::metric_label(&metric),
            opts.smooth
        )
    } else {
        curves::metric_label(&metric)
    };
    let mut chart = LineChart::from_bands(title, opts.x_axis.label(), y_label, &bands);
    if curves::metric_bounds(&metric) == Some((0.0, 1.0)) {
        chart.note = Some(CI_NOTE_RATE.to_string());
    }
    chart.hlines = opts.refs.clone();
    chart.size = opts.size;
    chart.save(out_png)
}
