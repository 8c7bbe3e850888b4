//! Minimal inline SVG line charts for the HTML reports (the real side's load report and the
//! simulation's run pictures, `run_html`): axes with ticks, polylines, a legend, escaping.
//!
//! Hand-written rather than plotters because a report must be one self-contained file with
//! no fonts or scripts fetched, and these charts need nothing beyond lines and text.
//! NOT MODELLED: interactivity, stacked or bar charts.

use std::fmt::Write as _;

pub const WIDTH: f64 = 720.0;
pub const HEIGHT: f64 = 300.0;
const MARGIN_LEFT: f64 = 64.0;
const MARGIN_RIGHT: f64 = 16.0;
const MARGIN_TOP: f64 = 28.0;
const MARGIN_BOTTOM: f64 = 44.0;
/// Points drawn per series at most (longer series are thinned evenly).
pub const POINTS_MAX: usize = 2_000;
/// Distinct colours; series beyond them reuse the palette.
const PALETTE: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

/// A chart to draw.
#[derive(Clone, Debug)]
pub struct Chart<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    /// Logarithmic x axis (latency CDFs); x values must be > 0.
    pub log_x: bool,
    pub series: Vec<Series>,
}

/// Escapes text for HTML and SVG.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

struct Scale {
    min: f64,
    max: f64,
    log: bool,
}

impl Scale {
    fn new(values: impl Iterator<Item = f64>, log: bool) -> Scale {
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
            let v = if log { v.log10() } else { v };
            min = min.min(v);
            max = max.max(v);
        }
        if !min.is_finite() {
            (min, max) = (0.0, 1.0);
        }
        if !log {
            min = min.min(0.0);
        }
        if max - min < 1e-9 {
            max = min + 1.0;
        }
        Scale { min, max, log }
    }

    /// Position in [0, 1] of a value.
    fn unit(&self, v: f64) -> f64 {
        let v = if self.log { v.max(1e-12).log10() } else { v };
        (v - self.min) / (self.max - self.min)
    }

    fn tick_values(&self) -> Vec<f64> {
        (0..=4)
            .map(|i| self.min + (self.max - self.min) * i as f64 / 4.0)
            .map(|v| if self.log { 10_f64.powf(v) } else { v })
            .collect()
    }
}

fn format_tick(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Renders the chart as an `<svg>` element.
pub fn render(chart: &Chart) -> String {
    let xs = chart.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = chart.series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let x_scale = Scale::new(xs, chart.log_x);
    let y_scale = Scale::new(ys, false);
    let plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let px = |x: f64| MARGIN_LEFT + x_scale.unit(x) * plot_w;
    let py = |y: f64| MARGIN_TOP + (1.0 - y_scale.unit(y)) * plot_h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg id="{}" class="chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}">"#,
        escape(chart.id),
        escape(chart.title)
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="18" font-size="14" font-weight="bold">{}</text>"#,
        MARGIN_LEFT,
        escape(chart.title)
    );
    axes(&mut svg, chart, &x_scale, &y_scale, px, py);
    for (index, series) in chart.series.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        polyline(&mut svg, series, colour, px, py);
        let legend_y = MARGIN_TOP + 14.0 * index as f64 + 4.0;
        let _ = write!(
            svg,
            r#"<text class="legend" x="{}" y="{legend_y}" font-size="11" fill="{colour}" text-anchor="end">{}</text>"#,
            WIDTH - MARGIN_RIGHT - 4.0,
            escape(&series.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn axes(
    svg: &mut String,
    chart: &Chart,
    x_scale: &Scale,
    y_scale: &Scale,
    px: impl Fn(f64) -> f64,
    py: impl Fn(f64) -> f64,
) {
    let (left, right) = (MARGIN_LEFT, WIDTH - MARGIN_RIGHT);
    let (top, bottom) = (MARGIN_TOP, HEIGHT - MARGIN_BOTTOM);
    let _ =
        write!(svg, r##"<path d="M{left} {top} V{bottom} H{right}" stroke="#333" fill="none"/>"##);
    for v in x_scale.tick_values() {
        let x = px(v);
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{}" stroke="#333"/><text x="{x:.1}" y="{}" font-size="10" text-anchor="middle">{}</text>"##,
            bottom + 4.0,
            bottom + 16.0,
            format_tick(v)
        );
    }
    for v in y_scale.tick_values() {
        let y = py(v);
        let _ = write!(
            svg,
            r##"<line x1="{}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
            left,
            left - 6.0,
            y + 3.0,
            format_tick(v)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"#,
        (left + right) / 2.0,
        HEIGHT - 8.0,
        escape(chart.x_label)
    );
    let _ = write!(
        svg,
        r#"<text x="14" y="{:.1}" font-size="11" text-anchor="middle" transform="rotate(-90 14 {:.1})">{}</text>"#,
        (top + bottom) / 2.0,
        (top + bottom) / 2.0,
        escape(chart.y_label)
    );
}

fn polyline(
    svg: &mut String,
    series: &Series,
    colour: &str,
    px: impl Fn(f64) -> f64,
    py: impl Fn(f64) -> f64,
) {
    if series.points.is_empty() {
        return;
    }
    let step = series.points.len().div_ceil(POINTS_MAX).max(1);
    let mut points = String::new();
    let last = series.points.len() - 1;
    for (i, (x, y)) in series.points.iter().enumerate() {
        if i % step == 0 || i == last {
            let _ = write!(points, "{:.1},{:.1} ", px(*x), py(*y));
        }
    }
    let dash = if series.dashed { r#" stroke-dasharray="6 3""# } else { "" };
    let _ = write!(
        svg,
        r#"<polyline data-series="{}" fill="none" stroke="{colour}" stroke-width="1.6"{dash} points="{}"/>"#,
        escape(&series.name),
        points.trim_end()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_have_one_polyline_per_nonempty_series_and_escape_text() {
        let chart = Chart {
            id: "c",
            title: "a <b> & c",
            x_label: "x",
            y_label: "y",
            log_x: true,
            series: vec![
                Series {
                    name: "real".into(),
                    points: vec![(1.0, 0.0), (100.0, 1.0)],
                    dashed: false,
                },
                Series { name: "empty".into(), points: vec![], dashed: true },
            ],
        };
        let svg = render(&chart);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
        // Log axis: 1 maps to the left edge, 100 to the right edge.
        assert!(svg.contains(r#"points="64.0,256.0 704.0,28.0""#), "{svg}");
    }

    #[test]
    fn long_series_are_thinned() {
        let points: Vec<(f64, f64)> = (0..10 * POINTS_MAX).map(|i| (i as f64, 1.0)).collect();
        let chart = Chart {
            id: "c",
            title: "t",
            x_label: "x",
            y_label: "y",
            log_x: false,
            series: vec![Series { name: "s".into(), points, dashed: false }],
        };
        let svg = render(&chart);
        let drawn = svg.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        assert!(drawn.split(' ').count() <= POINTS_MAX + 1);
    }
}
