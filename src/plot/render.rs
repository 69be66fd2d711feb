//! Writing a chart to PNG and SVG, and what every chart draws the same way: the legend panel,
//! the title's size and wrapped notes.

use std::fmt::Display;
use std::path::Path;

use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::style::{format_value, reference_color};
use super::{FONT_FAMILY, PlotError, RefLine, SavedPlot, ensure_fonts};

/// A plotters error as the message of a [`PlotError::Draw`].
pub(super) fn err<E: Display>(e: E) -> String {
    e.to_string()
}

/// A chart that can draw itself on any plotters backend.
pub(super) trait Drawable {
    /// Checks the chart before any file is created.
    fn validate(&self) -> Result<(), String>;
    /// Draws the chart on `root`, the whole image.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// Renders a chart to `png` (bitmap) and to the `.svg` beside it.
pub(super) fn save_both<C: Drawable>(
    chart: &C,
    png: &Path,
    size: (u32, u32),
) -> Result<SavedPlot, PlotError> {
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
        chart.draw(&root).map_err(|r| draw_err(png, r))?;
        root.present().map_err(|e| draw_err(png, e.to_string()))?;
    }
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        chart.draw(&root).map_err(|r| draw_err(&svg, r))?;
        root.present().map_err(|e| draw_err(&svg, e.to_string()))?;
    }
    Ok(SavedPlot {
        png: png.to_path_buf(),
        svg,
    })
}

/// How a legend row draws its sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum LegendKind {
    /// A solid line.
    Line,
    /// A dashed line.
    Dashed,
    /// A filled block (a bar).
    Block,
}

/// One row of a legend: a sample in a colour, then the label.
pub(super) struct LegendEntry {
    /// The text right of the sample.
    pub(super) label: String,
    /// The sample's colour.
    pub(super) color: RGBColor,
    /// The sample's kind.
    pub(super) kind: LegendKind,
    /// Whether a shaded band is drawn behind the sample.
    pub(super) band: bool,
}

impl LegendEntry {
    /// The row of the `i`-th reference line of a chart: dashed, its value after the label.
    pub(super) fn reference(i: usize, line: &RefLine) -> Self {
        Self {
            label: format!("{} ({})", line.label, format_value(line.value)),
            color: reference_color(i),
            kind: LegendKind::Dashed,
            band: false,
        }
    }
}

const LEGEND_FONT: u32 = 16;
const LEGEND_ROW: i32 = 28;
const LEGEND_SAMPLE: i32 = 34;

/// Splits the root into the plot (left) and a legend panel (right) wide enough for the
/// longest label, capped at 40 % of the width.
pub(super) fn split_legend<DB: DrawingBackend>(
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
pub(super) fn draw_legend<DB: DrawingBackend>(
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
pub(super) fn title_size<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, title: &str) -> u32 {
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

/// The chart builder of a line or bar chart on `area`: the title sized to fit, the margin and
/// the axes' label areas.
pub(super) fn cartesian_builder<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    title: &str,
) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, (FONT_FAMILY, title_size(area, title)))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(80);
    builder
}

/// The fonts and grid lines of a line or bar chart's mesh.
pub(super) fn style_mesh<X, Y, DB>(mesh: &mut MeshStyle<'_, '_, X, Y, DB>)
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    DB: DrawingBackend,
{
    mesh.axis_desc_style((FONT_FAMILY, 20))
        .label_style((FONT_FAMILY, 16))
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.12));
}

/// Draws the `i`-th reference line of a chart, dashed, from `from` to `to`.
pub(super) fn draw_reference<DB, CT>(
    chart: &mut ChartContext<'_, DB, CT>,
    i: usize,
    from: (f64, f64),
    to: (f64, f64),
) -> Result<(), String>
where
    DB: DrawingBackend,
    CT: CoordTranslate<From = (f64, f64)>,
{
    let style = reference_color(i).stroke_width(2);
    chart
        .draw_series(DashedLineSeries::new([from, to], 10, 6, style))
        .map_err(err)?;
    Ok(())
}
