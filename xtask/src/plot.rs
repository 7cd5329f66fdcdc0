//! PNG line plots with plotters, pure Rust: the font is DejaVu Sans embedded from Debian's
//! fonts-dejavu-core (licence in `xtask/assets/`), so no fontconfig or freetype is needed.

use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // the bytes are a valid TTF compiled into the binary; a failure here is a build defect
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .map_err(|_| "bad font")
            .expect("embedded DejaVu Sans is a valid font");
    });
}

/// One named curve.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// A log-log line plot with markers, one colour per series.
pub fn loglog(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<(), String> {
    register_font();
    let pts = series.iter().flat_map(|s| s.points.iter()).filter(|p| p.0 > 0.0 && p.1 > 0.0);
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return Err(format!("{}: nothing positive to plot", path.display()));
    }
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((x0 / 1.5..x1 * 1.5).log_scale(), (y0 / 2.0..y1 * 2.0).log_scale())
        .map_err(|e| err(&e))?;
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).label_style(("sans-serif", 15)).draw().map_err(|e| err(&e))?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<_> = s.points.iter().copied().filter(|p| p.0 > 0.0 && p.1 > 0.0).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled()))).map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

/// One panel of a multi-panel figure, on the square [lo, hi]².
pub enum Panel {
    /// Values on a regular grid (row 0 = bottom), drawn with a perceptual-ish colour ramp.
    Heatmap { values: Vec<Vec<f64>> },
    /// Point clouds, each (points, colour).
    Scatter { clouds: Vec<(Vec<(f64, f64)>, RGBColor)> },
    /// Polylines (trajectories), each drawn thin, their end points marked.
    Paths { paths: Vec<Vec<(f64, f64)>> },
}

fn ramp(v: f64) -> RGBColor {
    // dark blue → teal → yellow, v in [0, 1]
    let stops = [(0.0, (20.0, 20.0, 80.0)), (0.5, (30.0, 150.0, 140.0)), (1.0, (250.0, 230.0, 60.0))];
    let v = v.clamp(0.0, 1.0);
    let (a, b) = if v < 0.5 { (stops[0], stops[1]) } else { (stops[1], stops[2]) };
    let s = (v - a.0) / (b.0 - a.0);
    let mix = |x: f64, y: f64| (x + s * (y - x)) as u8;
    RGBColor(mix(a.1 .0, b.1 .0), mix(a.1 .1, b.1 .1), mix(a.1 .2, b.1 .2))
}

/// A grid of panels (rows × columns) with row and column titles, saved as PNG.
pub fn panels(
    path: &Path,
    title: &str,
    row_titles: &[String],
    col_titles: &[&str],
    grid: &[Vec<Panel>],
    lo: f64,
    hi: f64,
) -> Result<(), String> {
    register_font();
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let (rows, cols) = (grid.len(), grid.first().map_or(0, Vec::len));
    let cell = 300u32;
    let root = BitMapBackend::new(path, (cell * cols as u32 + 40, cell * rows as u32 + 60)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(|e| err(&e))?;
    let areas = root.margin(0, 0, 40, 0).split_evenly((rows, cols));
    for (i, area) in areas.iter().enumerate() {
        let (r, c) = (i / cols, i % cols);
        let caption = format!("{} — {}", row_titles.get(r).map_or("", String::as_str), col_titles.get(c).unwrap_or(&""));
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 13))
            .margin(4)
            .build_cartesian_2d(lo..hi, lo..hi)
            .map_err(|e| err(&e))?;
        match &grid[r][c] {
            Panel::Heatmap { values } => {
                let ny = values.len();
                let nx = values.first().map_or(0, Vec::len);
                let (vmin, vmax) = values.iter().flatten().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
                let (dx, dy) = ((hi - lo) / nx as f64, (hi - lo) / ny as f64);
                chart
                    .draw_series(values.iter().enumerate().flat_map(|(iy, row)| {
                        row.iter().enumerate().map(move |(ix, &v)| {
                            let (x0, y0) = (lo + ix as f64 * dx, lo + iy as f64 * dy);
                            Rectangle::new([(x0, y0), (x0 + dx, y0 + dy)], ramp((v - vmin) / (vmax - vmin).max(1e-12)).filled())
                        })
                    }))
                    .map_err(|e| err(&e))?;
            }
            Panel::Scatter { clouds } => {
                for (points, color) in clouds {
                    chart.draw_series(points.iter().map(|&p| Circle::new(p, 1, color.mix(0.6).filled()))).map_err(|e| err(&e))?;
                }
            }
            Panel::Paths { paths } => {
                for p in paths {
                    chart.draw_series(LineSeries::new(p.clone(), BLUE.mix(0.35))).map_err(|e| err(&e))?;
                    if let (Some(&a), Some(&b)) = (p.first(), p.last()) {
                        chart.draw_series([Circle::new(a, 2, RED.filled()), Circle::new(b, 2, BLACK.filled())]).map_err(|e| err(&e))?;
                    }
                }
            }
        }
    }
    root.present().map_err(|e| err(&e))
}

/// One linear-axes panel of [`line_panels`].
pub struct LinePanel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Draw a legend (off for bundles of trajectories).
    pub legend: bool,
}

/// Panels of line plots with linear axes (rows × `cols`), each scaled to its own data.
pub fn line_panels(path: &Path, title: &str, cols: usize, panels: &[LinePanel]) -> Result<(), String> {
    register_font();
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let cols = cols.max(1);
    let rows = panels.len().div_ceil(cols);
    let (w, h) = (420u32, 320u32);
    let root = BitMapBackend::new(path, (w * cols as u32, h * rows as u32 + 40)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(|e| err(&e))?;
    for (panel, area) in panels.iter().zip(root.split_evenly((rows, cols))) {
        let pts = panel.series.iter().flat_map(|s| s.points.iter()).filter(|p| p.0.is_finite() && p.1.is_finite());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in pts {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if x0 > x1 {
            continue;
        }
        let pad = |a: f64, b: f64| if b > a { 0.05 * (b - a) } else { 0.5 };
        let (px, py) = (pad(x0, x1), pad(y0, y1));
        let mut chart = ChartBuilder::on(&area)
            .caption(&panel.title, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(x0 - px..x1 + px, y0 - py..y1 + py)
            .map_err(|e| err(&e))?;
        chart.configure_mesh().x_desc(&panel.x_label).y_desc(&panel.y_label).label_style(("sans-serif", 12)).draw().map_err(|e| err(&e))?;
        for (i, s) in panel.series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let (stroke, alpha) = if panel.legend { (2, 1.0) } else { (1, 0.5) };
            let drawn =
                chart.draw_series(LineSeries::new(s.points.iter().copied(), color.mix(alpha).stroke_width(stroke))).map_err(|e| err(&e))?;
            if panel.legend {
                drawn.label(s.label.clone()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            }
        }
        if panel.legend {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 11))
                .draw()
                .map_err(|e| err(&e))?;
        }
    }
    root.present().map_err(|e| err(&e))
}
