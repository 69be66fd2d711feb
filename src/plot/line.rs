//! [`LineChart`]: lines with optional confidence bands, dashed reference lines, linear or log
//! axes.

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use super::render::{
    Drawable, LegendEntry, LegendKind, cartesian_builder, draw_legend, draw_reference, err,
    save_both, split_legend, style_mesh,
};
use super::style::{assign_colors, fit_range, format_tick, palette, policy_color};
use super::{CI_NOTE, DEFAULT_SIZE, PlotError, RefLine, SavedPlot};
use crate::curves::BandCurve;

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
        entries.extend(
            self.hlines
                .iter()
                .chain(&self.vlines)
                .enumerate()
                .map(|(i, l)| LegendEntry::reference(i, l)),
        );
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
        let mut chart = cartesian_builder(area, &self.title)
            .build_cartesian_2d(x_spec, y_spec)
            .map_err(err)?;
        let x_fmt = |v: &f64| format_tick(*v, x1 - x0);
        let y_fmt = |v: &f64| format_tick(*v, y1 - y0);
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt);
        style_mesh(&mut mesh);
        mesh.draw().map_err(err)?;
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
            draw_reference(&mut chart, i, (x0, l.value), (x1, l.value))?;
        }
        for (i, l) in self.vlines.iter().enumerate() {
            if l.value < x0 || l.value > x1 {
                continue;
            }
            draw_reference(
                &mut chart,
                self.hlines.len() + i,
                (l.value, y0),
                (l.value, y1),
            )?;
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

impl Drawable for LineChart {
    fn validate(&self) -> Result<(), String> {
        self.layout().map(|_| ())
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
}
