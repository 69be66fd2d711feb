//! Colours (the palette, a fixed colour per policy, the reference lines') and the number
//! formats of axis ranges, ticks and legend values.

use plotters::style::RGBColor;

use super::line::Series;

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
pub(super) fn assign_colors(mut series: Vec<Series>) -> Vec<Series> {
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
    cycle(&TAB10, i)
}

/// Colour `i` of the reference lines (dark, so that they stand apart from the series).
pub(super) fn reference_color(i: usize) -> RGBColor {
    const REFS: [(u8, u8, u8); 5] = [
        (0, 0, 0),
        (110, 110, 110),
        (150, 80, 20),
        (90, 0, 140),
        (0, 110, 110),
    ];
    cycle(&REFS, i)
}

/// Colour `i` of a list of colours, repeating.
fn cycle(colors: &[(u8, u8, u8)], i: usize) -> RGBColor {
    let (r, g, b) = colors[i % colors.len()];
    RGBColor(r, g, b)
}

/// Fits an axis range around the values, padded by `pad` of the span on both sides
/// (multiplicatively on a log axis).
pub(super) fn fit_range(values: Vec<f64>, log: bool, pad: f64) -> Result<(f64, f64), String> {
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
pub(super) fn format_tick(v: f64, span: f64) -> String {
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
pub(super) fn format_value(v: f64) -> String {
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
