//! The latency histograms of a run (or of an explore's merged seeds) as inline SVG charts and
//! a table of their percentiles.
//!
//! WHAT: for each recorded metric (room assignment, conflict detection, rules evaluation,
//! pool wait, lock wait) with samples, a frequency polygon over log-spaced buckets (the share
//! of samples per bucket against ms on a log axis), drawn by `svg::render`; metrics without
//! samples are named as such instead of drawn.
//! NOT MODELLED: confidence bands (one run is one sample path).

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::histograms::{Histograms, Metric};
use crate::svg::{self, Chart, Series, escape};

/// Buckets of the polygon: each is 1.25× wider than the one before.
const BUCKET_GROWTH: f64 = 1.25;

/// The metric's snake_case name (as in the JSON report).
pub fn metric_name(metric: Metric) -> String {
    match serde_json::to_value(metric) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{metric:?}"),
    }
}

/// (ms at the bucket's top, share of samples in the bucket), for log-spaced buckets.
fn polygon(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    let total = histogram.len() as f64;
    if total == 0.0 {
        return Vec::new();
    }
    let points: Vec<(f64, f64)> = histogram
        .iter_log(1, BUCKET_GROWTH)
        .map(|step| {
            let share = step.count_since_last_iteration() as f64 / total;
            (step.value_iterated_to().max(1) as f64 / 1_000.0, share)
        })
        .collect();
    // From one empty bucket before the first sample to one after the last.
    let first = points.iter().position(|p| p.1 > 0.0).unwrap_or(0).saturating_sub(1);
    let last = points.iter().rposition(|p| p.1 > 0.0).map_or(points.len(), |i| i + 2);
    points[first..last.min(points.len())].to_vec()
}

/// The charts and the table.
pub fn render(histograms: &Histograms) -> String {
    let mut out = String::from(
        "<table id=\"latency\"><tr><th class=\"l\">Metric</th><th>Samples</th><th>p50 (ms)\
         </th><th>p95 (ms)</th><th>p99 (ms)</th><th>Max (ms)</th></tr>",
    );
    for metric in Metric::ALL {
        let s = histograms.summary(metric);
        let _ = write!(
            out,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td>\
             <td>{:.3}</td></tr>",
            escape(&metric_name(metric)),
            s.count,
            s.p50_us as f64 / 1_000.0,
            s.p95_us as f64 / 1_000.0,
            s.p99_us as f64 / 1_000.0,
            s.max_us as f64 / 1_000.0
        );
    }
    out.push_str("</table>");
    for metric in Metric::ALL {
        let name = metric_name(metric);
        let histogram = histograms.get(metric);
        if histogram.is_empty() {
            let _ = write!(out, "<p class=\"no-samples\">{}: no samples.</p>", escape(&name));
            continue;
        }
        let id = format!("latency-{name}");
        let title = format!("{name}: {} samples", histogram.len());
        let chart = Chart {
            id: &id,
            title: &title,
            x_label: "latency (ms, log scale)",
            y_label: "share of samples",
            log_x: true,
            series: vec![Series { name: name.clone(), points: polygon(histogram), dashed: false }],
        };
        let _ = write!(out, "<figure>{}</figure>", svg::render(&chart));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_only_for_metrics_with_samples_and_shares_sum_to_one() {
        let mut histograms = Histograms::default();
        for value_us in [100, 200, 200, 5_000] {
            histograms.record(Metric::RoomAssignment, value_us);
        }
        let html = render(&histograms);
        assert!(html.contains("id=\"latency-room_assignment\""));
        assert!(!html.contains("id=\"latency-lock_wait\""));
        assert!(html.contains("lock_wait: no samples"));
        let points = polygon(histograms.get(Metric::RoomAssignment));
        let total: f64 = points.iter().map(|p| p.1).sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
    }
}
