//! [`HeatMap`]: a value per cell of a grid of settings, printed in the cell.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::render::{Drawable, err, save_both, title_size};
use super::style::format_value;
use super::{FONT_FAMILY, PlotError, SavedPlot};

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
}

impl Drawable for HeatMap {
    fn validate(&self) -> Result<(), String> {
        self.range().map(|_| ())
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
