//! Tests of the charts: files written, pixels where the lines and bands are, the legend and
//! the titles of the run plots.

use std::path::Path;

use super::style::{format_tick, format_value};
use super::*;
use crate::curves::{BandCurve, GroupBy, XAxis};
use crate::metrics::{CountColumns, MetricsRow, MetricsWriter};

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
            let mut metrics = MetricsWriter::create_for(
                run.join("metrics.csv"),
                &["goals"],
                agents::ppo::PPO_COLUMNS,
            )
            .unwrap();
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
                    counts: CountColumns::new(&["goals"], &[goals]),
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
        format!("{label}[env]\nkind = \"custom\"\nname = \"{env}\"\n[policy]\nkind = \"gru\"\n"),
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
