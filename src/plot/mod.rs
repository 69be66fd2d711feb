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

//!
//! The module's files follow its jobs: [`runs`](self) reads run directories into curves
//! (`runs.rs`), `line.rs`, `bar.rs` and `heatmap.rs` hold one chart kind each, `render.rs`
//! writes a chart to PNG and SVG and draws its legend panel and texts, and `style.rs` holds the
//! colours and the number formats of ticks and legends.

use std::path::PathBuf;
use std::sync::Once;

use plotters::style::{FontStyle, register_font};
use thiserror::Error;

use crate::curves::CurvesError;

mod bar;
mod heatmap;
mod line;
mod render;
mod runs;
mod style;
#[cfg(test)]
mod tests;

pub use bar::{Bar, BarChart};
pub use heatmap::HeatMap;
pub use line::{LineChart, Series};
pub use runs::{RunsPlotOptions, plot_runs};
pub use style::{palette, policy_color};

/// DejaVu Sans, embedded so that text renders without system fonts.
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

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
