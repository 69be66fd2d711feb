//! [`BarChart`]: one bar per policy with error bars and dashed reference lines.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::render::{
    Drawable, LegendEntry, LegendKind, cartesian_builder, draw_legend, draw_reference, err,
    save_both, split_legend, style_mesh,
};
use super::style::{format_tick, format_value, palette};
use super::{DEFAULT_SIZE, FONT_FAMILY, PlotError, RefLine, SavedPlot};

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
        entries.extend(
            self.hlines
                .iter()
                .enumerate()
                .map(|(i, l)| LegendEntry::reference(i, l)),
        );
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
}

impl Drawable for BarChart {
    fn validate(&self) -> Result<(), String> {
        self.y_bounds().map(|_| ())
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (y0, y1) = self.y_bounds()?;
        root.fill(&WHITE).map_err(err)?;
        let entries = self.legend_entries();
        let (plot_area, legend_area) = split_legend(root, &entries);
        let n = self.bars.len() as f64;
        let (x0, x1) = (-0.5, n - 0.5);
        let mut chart = cartesian_builder(&plot_area, &self.title)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        let y_fmt = |v: &f64| format_tick(*v, y1 - y0);
        let mut mesh = chart.configure_mesh();
        mesh.disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&y_fmt)
            .y_desc(&self.y_label);
        style_mesh(&mut mesh);
        mesh.draw().map_err(err)?;
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
            draw_reference(&mut chart, i, (x0, l.value), (x1, l.value))?;
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
