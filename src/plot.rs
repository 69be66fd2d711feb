//! Charts for learning curves and experiment results, drawn with plotters.
//!
//! Every chart is written twice: a PNG at the path the caller gives and an SVG beside it
//! (same name, `.svg`). Text is rendered with DejaVu Sans embedded in the binary
//! (`assets/fonts/DejaVuSans.ttf`, Bitstream Vera licence), so plotting needs no fontconfig
//! and no system fonts.
//!
//! - [`LineChart`]: lines with optional confidence bands, markers, dashed horizontal
//!   reference lines (e.g. BFS oracle, random policy) and vertical markers (e.g. the
//!   attention span τ), linear or log axes. Reward curves, decode-speed charts and
//!   success-vs-delay charts are all line charts.
//! - [`BarChart`]: one bar per policy with error bars (e.g. final reward ± 95 % CI).
//! - [`HeatMap`]: a value per cell of a grid of settings, printed in the cell (e.g. final
//!   reward over learning rate × entropy coefficient).
//! - [`plot_runs`]: reward curves straight from run directories, one line per env and
//!   label — what `fbrl plot` draws.
//!
//! The legend sits in its own panel right of the plot, so it never hides a curve.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};
use thiserror::Error;

use crate::curves::{self, BandCurve, CurvesError, GroupBy, Run, XAxis};

/// DejaVu Sans, embedded so that text renders without system fonts.
static DEJAVU_SANS: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// The font family name the embedded font is registered under (plotters' sans-serif).
pub const FONT_FAMILY: &str = "sans-serif";

/// Default image size in pixels (width, height).
pub const DEFAULT_SIZE: (u32, u32) = (1280, 720);

/// The note printed under the legend of every chart with confidence bands.
pub const CI_NOTE: &str =
    "Line: mean over seeds. Shaded: 95% confidence interval of the mean (Student t, n-1 dof).";

/// The note of a chart of a rate (a metric bounded in [0, 1]), whose bands are clipped.
pub const CI_NOTE_RATE: &str = "Line: mean over seeds. Shaded: 95% confidence interval of the \
     mean (Student t, n-1 dof), clipped to [0, 1], the range of a rate.";

/// Errors while drawing or saving a chart.
#[derive(Debug, Error)]
pub enum PlotError {
    /// plotters failed to draw or to write the file.
    #[error("cannot draw {path}: {reason}")]
    Draw {
        /// The output file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The output directory could not be created.
    #[error("cannot create directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The chart has nothing to draw, or its settings are unusable.
    #[error("invalid chart: {0}")]
    Invalid(String),
    /// Reading the runs' metrics failed.
    #[error(transparent)]
    Curves(#[from] CurvesError),
}

/// Registers the embedded DejaVu Sans as plotters' `sans-serif` family (once per process).
pub fn ensure_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if register_font(FONT_FAMILY, FontStyle::Normal, DEJAVU_SANS).is_err() {
            panic!("the embedded DejaVu Sans font is not a valid TTF");
        }
    });
}

/// The two files a chart was written to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedPlot {
    /// The PNG (raster) file.
    pub png: PathBuf,
    /// The SVG (vector) file beside it.
    pub svg: PathBuf,
}

/// A labelled reference value drawn as a dashed line across the plot
/// (horizontal for y values, vertical for x values).
#[derive(Clone, Debug, PartialEq)]
pub struct RefLine {
    /// Legend label, e.g. `"BFS oracle"`.
    pub label: String,
    /// The value (y for horizontal lines, x for vertical lines).
    pub value: f64,
}

impl RefLine {
    /// A reference line with a label and value.
    pub fn new(label: impl Into<String>, value: f64) -> Self {
        Self {
            label: label.into(),
            value,
        }
    }
}

/// One line of a [`LineChart`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// The line's points `(x, y)`, sorted by x.
    pub points: Vec<(f64, f64)>,
    /// Optional band `(low, high)` per point (same length as `points`), drawn shaded.
    pub band: Vec<(f64, f64)>,
    /// Palette index of the colour ([`policy_color`] gives a fixed one per policy name);
    /// `None` uses the series' position.
    pub color: Option<usize>,
    /// Draw the line dashed.
    pub dashed: bool,
    /// Draw a marker at every point.
    pub markers: bool,
}

impl Series {
    /// A plain line.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            label: label.into(),
            points,
            ..Self::default()
        }
    }

    /// A line with a confidence band from a summarised curve; the label gets `(n=…)`.
    pub fn from_band(curve: &BandCurve) -> Self {
        Self {
            label: format!("{} (n={})", curve.label, curve.n_runs),
            points: curve
                .x
                .iter()
                .copied()
                .zip(curve.mean.iter().copied())
                .collect(),
            band: curve
                .low
                .iter()
                .copied()
                .zip(curve.high.iter().copied())
                .collect(),
            color: Some(policy_color(&curve.label, 0)),
            dashed: false,
            markers: false,
        }
    }
}

/// A line chart: series (with optional bands), reference lines, linear or log axes.
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    /// Title at the top.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Dashed horizontal reference lines (e.g. oracle and random policy rewards).
    pub hlines: Vec<RefLine>,
    /// Dashed vertical marker lines (e.g. the attention span τ).
    pub vlines: Vec<RefLine>,
    /// Logarithmic x axis (non-positive values are dropped).
    pub x_log: bool,
    /// Logarithmic y axis (non-positive values are dropped).
    pub y_log: bool,
    /// Fixed x range; `None` fits the data.
    pub x_range: Option<(f64, f64)>,
    /// Fixed y range; `None` fits the data (values outside a fixed range are clamped).
    pub y_range: Option<(f64, f64)>,
    /// Text under the legend (e.g. how the bands were computed).
    pub note: Option<String>,
    /// Image size in pixels.
    pub size: (u32, u32),
}

impl LineChart {
    /// An empty chart with a title and axis labels, default size, linear axes.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
            hlines: Vec::new(),
            vlines: Vec::new(),
            x_log: false,
            y_log: false,
            x_range: None,
            y_range: None,
            note: None,
            size: DEFAULT_SIZE,
        }
    }

    /// A learning-curve chart: one line + 95 % CI band per summarised curve, with the
    /// Student-t note under the legend.
    pub fn from_bands(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
        curves: &[BandCurve],
    ) -> Self {
        let mut chart = Self::new(title, x_label, y_label);
        chart.series = assign_colors(curves.iter().map(Series::from_band).collect());
        chart.note = Some(CI_NOTE.to_string());
        chart
    }

    /// Writes the chart as PNG to `png` and as SVG beside it.
    pub fn save(&self, png: &Path) -> Result<SavedPlot, PlotError> {
        save_both(self, png, self.size)
    }

    /// Checks the chart and computes its axis ranges `(x0, x1, y0, y1)`.
    fn layout(&self) -> Result<(f64, f64, f64, f64), String> {
        if self.series.iter().all(|s| s.points.is_empty()) {
            return Err("no series has any points".into());
        }
        for s in &self.series {
            if !s.band.is_empty() && s.band.len() != s.points.len() {
                return Err(format!(
                    "series `{}`: band has {} entries for {} points",
                    s.label,
                    s.band.len(),
                    s.points.len()
                ));
            }
        }
        let (x0, x1) = match self.x_range {
            Some(r) => r,
            None => fit_range(self.x_values(), self.x_log, 0.0)?,
        };
        let (y0, y1) = match self.y_range {
            Some(r) => r,
            None => fit_range(self.y_values(), self.y_log, 0.05)?,
        };
        if !(x0 < x1 && y0 < y1) || (self.x_log && x0 <= 0.0) || (self.y_log && y0 <= 0.0) {
            return Err(format!("unusable axis range x {x0}..{x1}, y {y0}..{y1}"));
        }
        Ok((x0, x1, y0, y1))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (x0, x1, y0, y1) = self.layout()?;
        root.fill(&WHITE).map_err(err)?;
        let (plot_area, legend_area) = split_legend(root, &self.legend_entries());
        let bounds = (x0, x1, y0, y1);
        match (self.x_log, self.y_log) {
            (false, false) => self.draw_in(&plot_area, x0..x1, y0..y1, bounds)?,
            (true, false) => self.draw_in(&plot_area, (x0..x1).log_scale(), y0..y1, bounds)?,
            (false, true) => self.draw_in(&plot_area, x0..x1, (y0..y1).log_scale(), bounds)?,
            (true, true) => self.draw_in(
                &plot_area,
                (x0..x1).log_scale(),
                (y0..y1).log_scale(),
                bounds,
            )?,
        }
        draw_legend(&legend_area, &self.legend_entries(), self.note.as_deref())
    }

    fn x_values(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        v.extend(self.vlines.iter().map(|l| l.value));
        v.into_iter()
            .filter(|x| x.is_finite() && (!self.x_log || *x > 0.0))
            .collect()
    }

    fn y_values(&self) -> Vec<f64> {
        let mut v: Vec<f64> = Vec::new();
        for s in &self.series {
            v.extend(s.points.iter().map(|p| p.1));
            v.extend(s.band.iter().flat_map(|b| [b.0, b.1]));
        }
        v.extend(self.hlines.iter().map(|l| l.value));
        v.into_iter()
            .filter(|y| y.is_finite() && (!self.y_log || *y > 0.0))
            .collect()
    }

    fn legend_entries(&self) -> Vec<LegendEntry> {
        let mut entries: Vec<LegendEntry> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| LegendEntry {
                label: s.label.clone(),
                color: palette(s.color.unwrap_or(i)),
                kind: if s.dashed {
                    LegendKind::Dashed
                } else {
                    LegendKind::Line
                },
                band: !s.band.is_empty(),
            })
            .collect();
        for (i, l) in self.hlines.iter().chain(&self.vlines).enumerate() {
            entries.push(LegendEntry {
                label: format!("{} ({})", l.label, format_value(l.value)),
                color: reference_color(i),
                kind: LegendKind::Dashed,
                band: false,
            });
        }
        entries
    }

    /// Whether a point can be drawn: finite, and positive on a log axis.
    fn plottable(&self, p: &(f64, f64)) -> bool {
        p.0.is_finite()
            && p.1.is_finite()
            && (!self.x_log || p.0 > 0.0)
            && (!self.y_log || p.1 > 0.0)
    }

    /// The outline of a series' band: its upper edge left to right, then its lower edge back.
    fn band_outline(&self, s: &Series) -> Vec<(f64, f64)> {
        let edge = |pick: fn(&(f64, f64)) -> f64| -> Vec<(f64, f64)> {
            s.points
                .iter()
                .zip(&s.band)
                .map(|(p, b)| (p.0, pick(b)))
                .filter(|p| self.plottable(p))
                .collect()
        };
        let mut outline = edge(|b| b.1);
        outline.extend(edge(|b| b.0).into_iter().rev());
        outline
    }

    fn draw_in<DB, X, Y>(
        &self,
        area: &DrawingArea<DB, Shift>,
        x_spec: X,
        y_spec: Y,
        (x0, x1, y0, y1): (f64, f64, f64, f64),
    ) -> Result<(), String>
    where
        DB: DrawingBackend,
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, (FONT_FAMILY, title_size(area, &self.title)))
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(80)
            .build_cartesian_2d(x_spec, y_spec)
            .map_err(err)?;
        let x_fmt = |v: &f64| format_tick(*v, x1 - x0);
        let y_fmt = |v: &f64| format_tick(*v, y1 - y0);
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .axis_desc_style((FONT_FAMILY, 20))
            .label_style((FONT_FAMILY, 16))
            .light_line_style(BLACK.mix(0.04))
            .bold_line_style(BLACK.mix(0.12))
            .draw()
            .map_err(err)?;
        let clamp_x = |x: f64| x.clamp(x0, x1);
        let clamp_y = |y: f64| y.clamp(y0, y1);
        let keep = |p: &(f64, f64)| self.plottable(p);
        // Bands first, so every line is drawn on top of every band.
        for (i, s) in self.series.iter().enumerate() {
            if s.band.is_empty() {
                continue;
            }
            let color = palette(s.color.unwrap_or(i));
            let poly: Vec<(f64, f64)> = self
                .band_outline(s)
                .into_iter()
                .map(|(x, y)| (clamp_x(x), clamp_y(y)))
                .collect();
            if poly.len() >= 3 {
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        poly,
                        color.mix(0.18).filled(),
                    )))
                    .map_err(err)?;
            }
        }
        for (i, l) in self.hlines.iter().enumerate() {
            if l.value < y0 || l.value > y1 {
                continue;
            }
            let style = reference_color(i).stroke_width(2);
            chart
                .draw_series(DashedLineSeries::new(
                    [(x0, l.value), (x1, l.value)],
                    10,
                    6,
                    style,
                ))
                .map_err(err)?;
        }
        for (i, l) in self.vlines.iter().enumerate() {
            if l.value < x0 || l.value > x1 {
                continue;
            }
            let style = reference_color(self.hlines.len() + i).stroke_width(2);
            chart
                .draw_series(DashedLineSeries::new(
                    [(l.value, y0), (l.value, y1)],
                    10,
                    6,
                    style,
                ))
                .map_err(err)?;
        }
        for (i, s) in self.series.iter().enumerate() {
            let color = palette(s.color.unwrap_or(i));
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(keep)
                .map(|(x, y)| (clamp_x(x), clamp_y(y)))
                .collect();
            let style = color.stroke_width(3);
            if s.dashed {
                chart
                    .draw_series(DashedLineSeries::new(pts.clone(), 12, 6, style))
                    .map_err(err)?;
            } else {
                chart
                    .draw_series(LineSeries::new(pts.clone(), style))
                    .map_err(err)?;
            }
            if s.markers || pts.len() == 1 {
                chart
                    .draw_series(pts.iter().map(|p| Circle::new(*p, 5, color.filled())))
                    .map_err(err)?;
            }
        }
        Ok(())
    }
}

/// One bar of a [`BarChart`].
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    /// Label under the bar.
    pub label: String,
    /// Bar height.
    pub value: f64,
    /// Error bar `(low, high)`, if any.
    pub error: Option<(f64, f64)>,
    /// Palette index of the colour; `None` uses the bar's position.
    pub color: Option<usize>,
}

/// A bar chart with optional error bars and dashed horizontal reference lines.
#[derive(Clone, Debug, PartialEq)]
pub struct BarChart {
    /// Title at the top.
    pub title: String,
    /// Y axis label.
    pub y_label: String,
    /// The bars, left to right.
    pub bars: Vec<Bar>,
    /// Dashed horizontal reference lines.
    pub hlines: Vec<RefLine>,
    /// Text under the legend.
    pub note: Option<String>,
    /// Image size in pixels.
    pub size: (u32, u32),
}

impl BarChart {
    /// An empty bar chart with a title and y label, default size.
    pub fn new(title: impl Into<String>, y_label: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            y_label: y_label.into(),
            bars: Vec::new(),
            hlines: Vec::new(),
            note: None,
            size: DEFAULT_SIZE,
        }
    }

    /// Writes the chart as PNG to `png` and as SVG beside it.
    pub fn save(&self, png: &Path) -> Result<SavedPlot, PlotError> {
        save_both(self, png, self.size)
    }

    fn legend_entries(&self) -> Vec<LegendEntry> {
        let mut entries: Vec<LegendEntry> = self
            .bars
            .iter()
            .enumerate()
            .map(|(i, b)| LegendEntry {
                label: match b.error {
                    Some((lo, hi)) => format!(
                        "{}: {} [{}, {}]",
                        b.label,
                        format_value(b.value),
                        format_value(lo),
                        format_value(hi)
                    ),
                    None => format!("{}: {}", b.label, format_value(b.value)),
                },
                color: palette(b.color.unwrap_or(i)),
                kind: LegendKind::Block,
                band: false,
            })
            .collect();
        for (i, l) in self.hlines.iter().enumerate() {
            entries.push(LegendEntry {
                label: format!("{} ({})", l.label, format_value(l.value)),
                color: reference_color(i),
                kind: LegendKind::Dashed,
                band: false,
            });
        }
        entries
    }

    /// Checks the bars and computes the y range `(y0, y1)` (always including 0).
    fn y_bounds(&self) -> Result<(f64, f64), String> {
        if self.bars.is_empty() {
            return Err("no bars".into());
        }
        let mut ys: Vec<f64> = vec![0.0];
        for b in &self.bars {
            if !b.value.is_finite() {
                return Err(format!("bar `{}` has value {}", b.label, b.value));
            }
            ys.push(b.value);
            if let Some((lo, hi)) = b.error {
                ys.extend([lo, hi]);
            }
        }
        ys.extend(self.hlines.iter().map(|l| l.value));
        let ys: Vec<f64> = ys.into_iter().filter(|v| v.is_finite()).collect();
        let lo = ys.iter().copied().fold(f64::MAX, f64::min);
        let hi = ys.iter().copied().fold(f64::MIN, f64::max);
        let pad = ((hi - lo) * 0.08).max(1e-9);
        Ok((if lo < 0.0 { lo - pad } else { 0.0 }, hi + pad))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (y0, y1) = self.y_bounds()?;
        root.fill(&WHITE).map_err(err)?;
        let entries = self.legend_entries();
        let (plot_area, legend_area) = split_legend(root, &entries);
        let n = self.bars.len() as f64;
        let (x0, x1) = (-0.5, n - 0.5);
        let mut chart = ChartBuilder::on(&plot_area)
            .caption(
                &self.title,
                (FONT_FAMILY, title_size(&plot_area, &self.title)),
            )
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        let y_fmt = |v: &f64| format_tick(*v, y1 - y0);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&y_fmt)
            .y_desc(&self.y_label)
            .axis_desc_style((FONT_FAMILY, 20))
            .label_style((FONT_FAMILY, 16))
            .light_line_style(BLACK.mix(0.04))
            .bold_line_style(BLACK.mix(0.12))
            .draw()
            .map_err(err)?;
        let half = 0.3;
        for (i, b) in self.bars.iter().enumerate() {
            let color = palette(b.color.unwrap_or(i));
            let x = i as f64;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x - half, 0.0), (x + half, b.value)],
                    color.mix(0.85).filled(),
                )))
                .map_err(err)?;
            if let Some((lo, hi)) = b.error {
                let style = BLACK.stroke_width(2);
                let cap = 0.08;
                chart
                    .draw_series([
                        PathElement::new(vec![(x, lo), (x, hi)], style),
                        PathElement::new(vec![(x - cap, lo), (x + cap, lo)], style),
                        PathElement::new(vec![(x - cap, hi), (x + cap, hi)], style),
                    ])
                    .map_err(err)?;
            }
        }
        for (i, l) in self.hlines.iter().enumerate() {
            let style = reference_color(i).stroke_width(2);
            chart
                .draw_series(DashedLineSeries::new(
                    [(x0, l.value), (x1, l.value)],
                    10,
                    6,
                    style,
                ))
                .map_err(err)?;
        }
        // Category labels under the bars, in pixels of the root (the plot area is its
        // left part, so both share the origin).
        let style =
            TextStyle::from((FONT_FAMILY, 16).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for (i, b) in self.bars.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64, y0));
            root.draw(&Text::new(b.label.clone(), (px, py + 10), style.clone()))
                .map_err(err)?;
        }
        draw_legend(&legend_area, &entries, self.note.as_deref())
    }
}

/// A grid of values, one coloured cell each (light = low, dark = high, over the grid's own
/// range), the value printed in the cell, one cell optionally framed. Empty cells are grey.
#[derive(Clone, Debug, PartialEq)]
pub struct HeatMap {
    /// Title at the top.
    pub title: String,
    /// Label of the columns' axis.
    pub x_label: String,
    /// Label of the rows' axis.
    pub y_label: String,
    /// Column names, left to right.
    pub columns: Vec<String>,
    /// Row names, bottom to top.
    pub rows: Vec<String>,
    /// `values[row][column]`.
    pub values: Vec<Vec<Option<f64>>>,
    /// The cell to frame, `(row, column)` (e.g. the chosen setting).
    pub highlight: Option<(usize, usize)>,
    /// Text under the map.
    pub note: Option<String>,
    /// Image size in pixels.
    pub size: (u32, u32),
}

impl HeatMap {
    /// Writes the map as PNG to `png` and as SVG beside it.
    pub fn save(&self, png: &Path) -> Result<SavedPlot, PlotError> {
        save_both(self, png, self.size)
    }

    fn range(&self) -> Result<(f64, f64), String> {
        if self.rows.is_empty() || self.columns.is_empty() {
            return Err("a heat map needs at least one row and one column".into());
        }
        if self.values.len() != self.rows.len()
            || self.values.iter().any(|r| r.len() != self.columns.len())
        {
            return Err(format!(
                "values must be {} rows × {} columns",
                self.rows.len(),
                self.columns.len()
            ));
        }
        let all: Vec<f64> = self.values.iter().flatten().flatten().copied().collect();
        if let Some(v) = all.iter().find(|v| !v.is_finite()) {
            return Err(format!("heat map value {v}"));
        }
        let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Ok((lo, hi))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (lo, hi) = self.range()?;
        root.fill(&WHITE).map_err(err)?;
        let (nx, ny) = (self.columns.len() as f64, self.rows.len() as f64);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT_FAMILY, title_size(root, &self.title)))
            .margin(24)
            .x_label_area_size(if self.note.is_some() { 110 } else { 70 })
            .y_label_area_size(110)
            .build_cartesian_2d(0.0..nx, 0.0..ny)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(0)
            .y_labels(0)
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .axis_desc_style((FONT_FAMILY, 20))
            .draw()
            .map_err(err)?;
        let text = |dark: bool| {
            TextStyle::from((FONT_FAMILY, 22).into_font())
                .color(if dark { &WHITE } else { &BLACK })
                .pos(Pos::new(HPos::Center, VPos::Center))
        };
        for (r, row) in self.values.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                let (x, y) = (c as f64, r as f64);
                let (fill, dark) = match v {
                    Some(v) => {
                        let t = if hi > lo { (v - lo) / (hi - lo) } else { 1.0 };
                        let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
                        (
                            RGBColor(mix(239.0, 8.0), mix(243.0, 48.0), mix(255.0, 107.0)),
                            t > 0.55,
                        )
                    }
                    None => (RGBColor(200, 200, 200), false),
                };
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x, y), (x + 1.0, y + 1.0)],
                        fill.filled(),
                    )))
                    .map_err(err)?;
                let label = match v {
                    Some(v) => format_value(*v),
                    None => "—".to_string(),
                };
                let (px, py) = chart.backend_coord(&(x + 0.5, y + 0.5));
                root.draw(&Text::new(label, (px, py), text(dark)))
                    .map_err(err)?;
            }
        }
        if let Some((r, c)) = self.highlight {
            let (x, y) = (c as f64, r as f64);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x + 0.02, y + 0.02), (x + 0.98, y + 0.98)],
                    RGBColor(230, 97, 1).stroke_width(4),
                )))
                .map_err(err)?;
        }
        let below =
            TextStyle::from((FONT_FAMILY, 18).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for (c, name) in self.columns.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(c as f64 + 0.5, 0.0));
            root.draw(&Text::new(name.clone(), (px, py + 8), below.clone()))
                .map_err(err)?;
        }
        let left =
            TextStyle::from((FONT_FAMILY, 18).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
        for (r, name) in self.rows.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(0.0, r as f64 + 0.5));
            root.draw(&Text::new(name.clone(), (px - 8, py), left.clone()))
                .map_err(err)?;
        }
        if let Some(note) = &self.note {
            let (w, h) = root.dim_in_pixel();
            let style = TextStyle::from((FONT_FAMILY, 16).into_font())
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            root.draw(&Text::new(
                note.clone(),
                (w as i32 / 2, h as i32 - 10),
                style,
            ))
            .map_err(err)?;
        }
        Ok(())
    }
}

impl Drawable for HeatMap {
    fn validate(&self) -> Result<(), String> {
        self.range().map(|_| ())
    }
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        self.draw(root)
    }
}

/// Options for [`plot_runs`].
#[derive(Clone, Debug, PartialEq)]
pub struct RunsPlotOptions {
    /// What goes on the x axis.
    pub x_axis: XAxis,
    /// Trailing moving-average window, in logged updates (1 = no smoothing).
    pub smooth: usize,
    /// Metrics column to plot; `None` picks `goals_mean` for GridMaze runs, else `return_mean`.
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
        .unwrap_or_else(|| curves::default_metric(&runs).to_string());
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

/// A fixed palette index for well-known policy names (`feedback`, `transformer`, `gru`,
/// `mlp`, `lstm`) so a policy has the same colour on every chart; `fallback` otherwise.
pub fn policy_color(name: &str, fallback: usize) -> usize {
    let n = name.to_ascii_lowercase();
    if n.starts_with("feedback") {
        0
    } else if n.starts_with("transformer") {
        1
    } else if n.starts_with("gru") {
        2
    } else if n.starts_with("mlp") {
        3
    } else if n.starts_with("lstm") {
        4
    } else {
        fallback
    }
}

/// Gives every series a distinct colour: known policy names keep their fixed colour unless
/// two series share it, in which case the series' position is used instead.
fn assign_colors(mut series: Vec<Series>) -> Vec<Series> {
    let colors: Vec<usize> = series
        .iter()
        .map(|s| policy_color(&s.label, usize::MAX))
        .collect();
    let unique = colors
        .iter()
        .enumerate()
        .all(|(i, c)| *c != usize::MAX && colors.iter().enumerate().all(|(j, d)| i == j || c != d));
    for (i, s) in series.iter_mut().enumerate() {
        s.color = Some(if unique { colors[i] } else { i });
    }
    series
}

/// Colour `i` of the chart palette (matplotlib's tab10, repeating).
pub fn palette(i: usize) -> RGBColor {
    const TAB10: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = TAB10[i % TAB10.len()];
    RGBColor(r, g, b)
}

fn reference_color(i: usize) -> RGBColor {
    const REFS: [(u8, u8, u8); 5] = [
        (0, 0, 0),
        (110, 110, 110),
        (150, 80, 20),
        (90, 0, 140),
        (0, 110, 110),
    ];
    let (r, g, b) = REFS[i % REFS.len()];
    RGBColor(r, g, b)
}

fn err<E: Display>(e: E) -> String {
    e.to_string()
}

/// A chart that can draw itself on any plotters backend.
trait Drawable {
    /// Checks the chart before any file is created.
    fn validate(&self) -> Result<(), String>;
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

impl Drawable for LineChart {
    fn validate(&self) -> Result<(), String> {
        self.layout().map(|_| ())
    }
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        self.draw(root)
    }
}

impl Drawable for BarChart {
    fn validate(&self) -> Result<(), String> {
        self.y_bounds().map(|_| ())
    }
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        self.draw(root)
    }
}

/// Renders a chart to `png` (bitmap) and to the `.svg` beside it.
fn save_both<C: Drawable>(chart: &C, png: &Path, size: (u32, u32)) -> Result<SavedPlot, PlotError> {
    ensure_fonts();
    chart.validate().map_err(PlotError::Invalid)?;
    if size.0 < 320 || size.1 < 240 {
        return Err(PlotError::Invalid(format!(
            "image size {}x{} is too small (at least 320x240)",
            size.0, size.1
        )));
    }
    if let Some(dir) = png.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| PlotError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let svg = png.with_extension("svg");
    let draw_err = |path: &Path, reason: String| PlotError::Draw {
        path: path.to_path_buf(),
        reason,
    };
    {
        let root = BitMapBackend::new(png, size).into_drawing_area();
        chart.draw_on(&root).map_err(|r| draw_err(png, r))?;
        root.present().map_err(|e| draw_err(png, e.to_string()))?;
    }
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        chart.draw_on(&root).map_err(|r| draw_err(&svg, r))?;
        root.present().map_err(|e| draw_err(&svg, e.to_string()))?;
    }
    Ok(SavedPlot {
        png: png.to_path_buf(),
        svg,
    })
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum LegendKind {
    Line,
    Dashed,
    Block,
}

struct LegendEntry {
    label: String,
    color: RGBColor,
    kind: LegendKind,
    band: bool,
}

const LEGEND_FONT: u32 = 16;
const LEGEND_ROW: i32 = 28;
const LEGEND_SAMPLE: i32 = 34;

/// Splits the root into the plot (left) and a legend panel (right) wide enough for the
/// longest label, capped at 40 % of the width.
fn split_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
) -> (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>) {
    let (w, _) = root.dim_in_pixel();
    let font = TextStyle::from((FONT_FAMILY, LEGEND_FONT).into_font());
    let widest = entries
        .iter()
        .filter_map(|e| root.estimate_text_size(&e.label, &font).ok())
        .map(|(tw, _)| tw)
        .max()
        .unwrap_or(0);
    let panel = (widest + LEGEND_SAMPLE as u32 + 40).clamp(220, w * 2 / 5);
    root.split_horizontally(w - panel)
}

/// Draws legend rows (sample + label) from the top of the panel, then the wrapped note.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    note: Option<&str>,
) -> Result<(), String> {
    let (w, _) = area.dim_in_pixel();
    let font = (FONT_FAMILY, LEGEND_FONT).into_font();
    let style = TextStyle::from(font.clone()).pos(Pos::new(HPos::Left, VPos::Center));
    let x0 = 8;
    let mut y = 70;
    for e in entries {
        let x1 = x0 + LEGEND_SAMPLE;
        if e.band {
            area.draw(&Rectangle::new(
                [(x0, y - 9), (x1, y + 9)],
                e.color.mix(0.18).filled(),
            ))
            .map_err(err)?;
        }
        match e.kind {
            LegendKind::Line => area
                .draw(&PathElement::new(
                    vec![(x0, y), (x1, y)],
                    e.color.stroke_width(3),
                ))
                .map_err(err)?,
            LegendKind::Dashed => {
                let mut x = x0;
                while x < x1 {
                    let end = (x + 8).min(x1);
                    area.draw(&PathElement::new(
                        vec![(x, y), (end, y)],
                        e.color.stroke_width(2),
                    ))
                    .map_err(err)?;
                    x += 13;
                }
            }
            LegendKind::Block => area
                .draw(&Rectangle::new(
                    [(x0, y - 8), (x1, y + 8)],
                    e.color.mix(0.85).filled(),
                ))
                .map_err(err)?,
        }
        area.draw(&Text::new(e.label.clone(), (x1 + 8, y), style.clone()))
            .map_err(err)?;
        y += LEGEND_ROW;
    }
    if let Some(note) = note {
        let small_style = TextStyle::from((FONT_FAMILY, 14).into_font());
        y += 10;
        for line in wrap(area, note, &small_style, w.saturating_sub(2 * x0 as u32)) {
            area.draw(&Text::new(line, (x0, y), small_style.clone()))
                .map_err(err)?;
            y += 18;
        }
    }
    Ok(())
}

/// The largest title font size (26 down to 12 px) at which `title` fits the area's width.
fn title_size<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, title: &str) -> u32 {
    let width = area.dim_in_pixel().0.saturating_sub(24);
    (12..=26)
        .rev()
        .find(|&size| {
            let style = TextStyle::from((FONT_FAMILY, size).into_font());
            area.estimate_text_size(title, &style)
                .map(|(w, _)| w <= width)
                .unwrap_or(true)
        })
        .unwrap_or(12)
}

/// Greedy word wrap to a pixel width.
fn wrap<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    font: &TextStyle<'_>,
    width: u32,
) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let candidate = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        let fits = area
            .estimate_text_size(&candidate, font)
            .map(|(tw, _)| tw <= width)
            .unwrap_or(true);
        if fits || line.is_empty() {
            line = candidate;
        } else {
            lines.push(std::mem::take(&mut line));
            line = word.to_string();
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Fits an axis range around the values, padded by `pad` of the span on both sides
/// (multiplicatively on a log axis).
fn fit_range(values: Vec<f64>, log: bool, pad: f64) -> Result<(f64, f64), String> {
    if values.is_empty() {
        return Err("no finite values to plot".into());
    }
    let lo = values.iter().copied().fold(f64::MAX, f64::min);
    let hi = values.iter().copied().fold(f64::MIN, f64::max);
    if log {
        let (l, h) = (lo.log10(), hi.log10());
        let (l, h) = if h - l < 1e-9 {
            (l - 0.5, h + 0.5)
        } else {
            (l - pad * (h - l), h + pad * (h - l))
        };
        return Ok((10f64.powf(l), 10f64.powf(h)));
    }
    if hi - lo < 1e-12 {
        let d = if lo.abs() > 0.0 { lo.abs() * 0.1 } else { 1.0 };
        return Ok((lo - d, hi + d));
    }
    Ok((lo - pad * (hi - lo), hi + pad * (hi - lo)))
}

/// Tick label: `1.5M`, `250k` for large numbers, otherwise as many decimals as the axis
/// span needs.
fn format_tick(v: f64, span: f64) -> String {
    let a = v.abs();
    if a >= 1e6 && span >= 1e5 {
        trim(format!("{:.2}", v / 1e6)) + "M"
    } else if a >= 1e4 && span >= 1e3 {
        trim(format!("{:.1}", v / 1e3)) + "k"
    } else {
        let decimals = if span > 0.0 {
            // One decimal more than the tick step needs; trailing zeros are trimmed.
            (1.0 - (span / 10.0).log10().floor()).clamp(0.0, 6.0) as usize
        } else {
            2
        };
        if a > 0.0 && a < 1e-3 && decimals >= 6 {
            format!("{v:.1e}")
        } else {
            trim(format!("{v:.decimals$}"))
        }
    }
}

/// A value for a legend: three significant decimals at most.
fn format_value(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        trim(format!("{:.2}", v / 1e6)) + "M"
    } else if a >= 1e4 {
        trim(format!("{:.1}", v / 1e3)) + "k"
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        trim(format!("{v:.2}"))
    } else {
        trim(format!("{v:.3}"))
    }
}

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{MetricsRow, MetricsWriter};

    /// A fresh temporary directory (removed at the end of the test). Set
    /// `FBRL_PLOT_TEST_DIR` to write the charts there instead, to look at them.
    fn temp_dir(name: &str) -> PathBuf {
        if let Some(base) = std::env::var_os("FBRL_PLOT_TEST_DIR") {
            let d = PathBuf::from(base).join(name);
            std::fs::create_dir_all(&d).unwrap();
            return d;
        }
        let d = std::env::temp_dir().join(format!("fbrl-plot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn cleanup(dir: PathBuf) {
        if std::env::var_os("FBRL_PLOT_TEST_DIR").is_none() {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    fn decode_png(path: &Path) -> (u32, u32, Vec<u8>) {
        let file = std::fs::File::open(path).unwrap();
        let decoder = png::Decoder::new(std::io::BufReader::new(file));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    /// Count of pixels that are neither white nor near-white: text, lines, bands.
    fn ink(buf: &[u8]) -> usize {
        buf.chunks(3).filter(|p| p.iter().any(|c| *c < 200)).count()
    }

    fn synthetic_bands() -> Vec<BandCurve> {
        let x: Vec<f64> = (0..50).map(|i| i as f64 * 40_000.0).collect();
        let mk = |label: &str, scale: f64| BandCurve {
            label: label.into(),
            n_runs: 3,
            x: x.clone(),
            mean: x.iter().map(|v| scale * (1.0 - (-v / 5e5).exp())).collect(),
            low: x
                .iter()
                .map(|v| scale * (1.0 - (-v / 5e5).exp()) - 0.4)
                .collect(),
            high: x
                .iter()
                .map(|v| scale * (1.0 - (-v / 5e5).exp()) + 0.4)
                .collect(),
        };
        vec![mk("feedback", 7.0), mk("transformer", 6.3), mk("mlp", 5.2)]
    }

    #[test]
    fn line_chart_png_decodes_with_size_and_svg_has_text() {
        let dir = temp_dir("line");
        let mut chart = LineChart::from_bands(
            "GridMaze multi 7x7 (quick): goals per episode",
            "environment steps",
            "goals per episode",
            &synthetic_bands(),
        );
        chart.hlines = vec![
            RefLine::new("BFS oracle", 10.6),
            RefLine::new("random", 0.5),
            RefLine::new("wall follower", 5.95),
        ];
        chart.size = (900, 600);
        let saved = chart.save(&dir.join("curve.png")).unwrap();
        let (w, h, buf) = decode_png(&saved.png);
        assert_eq!((w, h), (900, 600));
        // Lines, bands, text: a real chart has a lot of non-white pixels.
        assert!(ink(&buf) > 5_000, "ink {}", ink(&buf));
        let svg = std::fs::read_to_string(&saved.svg).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.contains("BFS oracle (10.6)"));
        assert!(svg.contains("feedback (n=3)"));
        assert!(svg.contains("Student t"));
        cleanup(dir);
    }

    #[test]
    fn text_is_rendered_with_the_embedded_font() {
        // The same chart with and without a long title: the title must add ink, which it
        // only does if glyphs are actually rasterised.
        let dir = temp_dir("font");
        let mut chart = LineChart::new("", "x", "y");
        chart.series = vec![Series::new("a", vec![(0.0, 0.0), (1.0, 1.0)])];
        chart.save(&dir.join("a.png")).unwrap();
        chart.title = "WWWWWWWWWWWWWWWWWWWWWWWWWWWWWW".into();
        chart.save(&dir.join("b.png")).unwrap();
        let (_, _, a) = decode_png(&dir.join("a.png"));
        let (_, _, b) = decode_png(&dir.join("b.png"));
        assert!(ink(&b) > ink(&a) + 500, "{} vs {}", ink(&b), ink(&a));
        cleanup(dir);
    }

    #[test]
    fn log_axes_markers_and_vertical_lines() {
        let dir = temp_dir("log");
        let mut chart = LineChart::new("decode time vs depth", "layers", "ms per step");
        chart.x_log = true;
        chart.y_log = true;
        let mut s = Series::new("feedback", vec![(1.0, 0.5), (2.0, 0.9), (4.0, 1.7)]);
        s.markers = true;
        chart.series = vec![s, Series::new("transformer", vec![(1.0, 0.4), (4.0, 3.0)])];
        chart.vlines = vec![RefLine::new("span", 2.0)];
        let saved = chart.save(&dir.join("log.png")).unwrap();
        let (w, h, _) = decode_png(&saved.png);
        assert_eq!((w, h), DEFAULT_SIZE);
        cleanup(dir);
    }

    #[test]
    fn bar_chart_with_error_bars() {
        let dir = temp_dir("bar");
        let mut chart = BarChart::new("final reward", "goals per episode");
        chart.bars = vec![
            Bar {
                label: "feedback".into(),
                value: 6.9,
                error: Some((6.5, 7.3)),
                color: Some(0),
            },
            Bar {
                label: "mlp".into(),
                value: 5.2,
                error: None,
                color: Some(3),
            },
        ];
        chart.hlines = vec![RefLine::new("BFS oracle", 10.6)];
        chart.size = (800, 500);
        let saved = chart.save(&dir.join("sub/bar.png")).unwrap();
        let (w, h, buf) = decode_png(&saved.png);
        assert_eq!((w, h), (800, 500));
        assert!(ink(&buf) > 2_000);
        assert!(
            std::fs::read_to_string(&saved.svg)
                .unwrap()
                .contains("feedback: 6.9 [6.5, 7.3]")
        );
        cleanup(dir);
    }

    #[test]
    fn invalid_charts_are_errors_not_panics() {
        let dir = temp_dir("bad");
        let chart = LineChart::new("t", "x", "y");
        let e = chart.save(&dir.join("a.png")).unwrap_err().to_string();
        assert!(e.contains("no series"), "{e}");
        let mut chart = LineChart::new("t", "x", "y");
        let mut s = Series::new("a", vec![(0.0, 1.0), (1.0, 2.0)]);
        s.band = vec![(0.0, 1.0)];
        chart.series = vec![s];
        let e = chart.save(&dir.join("a.png")).unwrap_err().to_string();
        assert!(e.contains("band has 1 entries for 2 points"), "{e}");
        let e = BarChart::new("t", "y")
            .save(&dir.join("b.png"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no bars"), "{e}");
        assert!(!dir.join("a.png").exists() && !dir.join("b.svg").exists());
        cleanup(dir);
    }

    #[test]
    fn plot_runs_groups_synthetic_run_dirs() {
        let dir = temp_dir("runs");
        let mut dirs = Vec::new();
        for (policy, slope) in [("feedback", 2.0), ("mlp", 1.0)] {
            for seed in 0..3u64 {
                let run = dir.join(format!("gridmaze__{policy}__{seed}__20250101-000000"));
                std::fs::create_dir_all(&run).unwrap();
                let mut metrics = MetricsWriter::create(run.join("metrics.csv")).unwrap();
                for u in 1..=20u64 {
                    // First update: no episode finished yet (empty reward cells).
                    let goals = if u == 1 {
                        f64::NAN
                    } else {
                        slope * u as f64 / 10.0 + seed as f64 * 0.1
                    };
                    let row = MetricsRow {
                        update: u as usize,
                        env_steps: u * 1000,
                        wall_time_s: u as f64 * 0.5,
                        return_mean: goals,
                        goals_mean: goals,
                        ..MetricsRow::default()
                    };
                    metrics.append(&row).unwrap();
                }
                dirs.push(run);
            }
        }
        let opts = RunsPlotOptions {
            smooth: 3,
            refs: vec![RefLine::new("oracle", 5.0)],
            ..RunsPlotOptions::default()
        };
        let saved = plot_runs(&dirs, &dir.join("out.png"), &opts).unwrap();
        assert_eq!(decode_png(&saved.png).0, DEFAULT_SIZE.0);
        let svg = std::fs::read_to_string(&saved.svg).unwrap();
        assert!(svg.contains("feedback (n=3)") && svg.contains("mlp (n=3)"));
        assert!(svg.contains("gridmaze: goals per episode vs environment steps"));
        let opts = RunsPlotOptions {
            x_axis: XAxis::Time,
            metric: Some("nope".into()),
            ..RunsPlotOptions::default()
        };
        let e = plot_runs(&dirs, &dir.join("t.png"), &opts)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`nope`") && e.contains("metrics.csv"), "{e}");
        cleanup(dir);
    }

    /// A run directory `<root>/<name>` with a config.toml (custom env `env`, GRU policy,
    /// optional label) and a metrics.csv whose success rate is `rate` at every update.
    fn fake_run(root: &Path, name: &str, env: &str, label: Option<&str>, rate: f64) -> PathBuf {
        let run = root.join(name);
        std::fs::create_dir_all(&run).unwrap();
        let label = label.map_or(String::new(), |l| format!("label = \"{l}\"\n"));
        std::fs::write(
            run.join("config.toml"),
            format!(
                "{label}[env]\nkind = \"custom\"\nname = \"{env}\"\n[policy]\nkind = \"gru\"\n"
            ),
        )
        .unwrap();
        let mut metrics = MetricsWriter::create(run.join("metrics.csv")).unwrap();
        for u in 1..=10u64 {
            let row = MetricsRow {
                update: u as usize,
                env_steps: u * 1000,
                wall_time_s: u as f64,
                return_mean: rate,
                success_rate: rate,
                ..MetricsRow::default()
            };
            metrics.append(&row).unwrap();
        }
        run
    }

    #[test]
    fn plot_runs_never_averages_two_envs_and_splits_labels() {
        let dir = temp_dir("envs");
        let mut dirs = Vec::new();
        for (seed, rate) in [0.0, 1.0, 1.0].into_iter().enumerate() {
            // The folder names agree on the policy: only config.toml tells the envs apart.
            for env in ["keydoor", "keydoor_cont"] {
                let name = format!("{env}__gru__{seed}__1700000000");
                dirs.push(fake_run(&dir, &name, env, None, rate));
            }
        }
        let opts = RunsPlotOptions {
            metric: Some("success_rate".into()),
            ..RunsPlotOptions::default()
        };
        let saved = plot_runs(&dirs, &dir.join("envs.png"), &opts).unwrap();
        let svg = std::fs::read_to_string(&saved.svg).unwrap();
        assert!(svg.contains("keydoor / gru (n=3)"), "one line per env");
        assert!(svg.contains("keydoor_cont / gru (n=3)"));
        assert!(!svg.contains("(n=6)"), "two envs averaged into one line");
        assert!(svg.contains("keydoor, keydoor_cont: success rate"));
        assert!(svg.contains("clipped"), "the note says the band is clipped");
        // Grouping by policy still keeps the envs apart.
        let opts = RunsPlotOptions {
            group_by: GroupBy::Policy,
            ..opts
        };
        let saved = plot_runs(&dirs, &dir.join("policy.png"), &opts).unwrap();
        let svg = std::fs::read_to_string(&saved.svg).unwrap();
        assert!(svg.contains("keydoor / gru (n=3)") && !svg.contains("(n=6)"));

        // Two labels of one policy on one env: two lines; one with --group-by policy.
        let mut dirs = Vec::new();
        for seed in 0..2 {
            for label in ["lr1", "lr2"] {
                let name = format!("keydoor__gru__{seed}__{label}");
                dirs.push(fake_run(&dir, &name, "keydoor", Some(label), 0.5));
            }
        }
        let opts = RunsPlotOptions::default();
        let saved = plot_runs(&dirs, &dir.join("labels.png"), &opts).unwrap();
        let svg = std::fs::read_to_string(&saved.svg).unwrap();
        assert!(
            svg.contains("lr1 (n=2)") && svg.contains("lr2 (n=2)"),
            "two labels"
        );
        assert!(svg.contains("keydoor: average episode reward"));
        assert!(svg.contains("Student t") && !svg.contains("clipped"));
        let opts = RunsPlotOptions {
            group_by: GroupBy::Policy,
            ..RunsPlotOptions::default()
        };
        let saved = plot_runs(&dirs, &dir.join("merged.png"), &opts).unwrap();
        let svg = std::fs::read_to_string(&saved.svg).unwrap();
        assert!(svg.contains("gru (n=4)"), "labels merged by policy");
        cleanup(dir);
    }

    #[test]
    fn tick_and_value_formatting() {
        assert_eq!(format_tick(1_500_000.0, 2e6), "1.5M");
        assert_eq!(format_tick(250_000.0, 2e6), "250k");
        assert_eq!(format_tick(0.0, 2e6), "0");
        assert_eq!(format_tick(2.5, 10.0), "2.5");
        assert_eq!(format_tick(0.25, 1.0), "0.25");
        assert_eq!(format_value(10.6), "10.6");
        assert_eq!(format_value(0.5), "0.5");
        assert_eq!(format_value(2_000_000.0), "2M");
    }
}
