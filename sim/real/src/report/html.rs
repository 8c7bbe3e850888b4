//! The self-contained HTML report: request statistics, percentiles, failures, Server-Timing
//! metrics, database monitoring, the validate table, and inline SVG charts (latency over
//! time, latency CDF real vs simulated, active queries). Nothing is fetched from anywhere.
//!
//! A small inline script checks, in the browser, that every table has rows and every chart
//! has a drawn line of non-zero size, and writes the result to `body[data-render-check]`; the
//! headless-Chromium test reads it back from the dumped DOM.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::svg::{self, Chart, Series, escape};
use super::{ReportExtras, ms, percentile_label, room_assignment, server_timing};
use crate::load_run::LoadOutcome;
use crate::stats::{AGGREGATED, PERCENTILES_TO_REPORT, value_or_zero};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222}\
table{border-collapse:collapse;margin:8px 0 20px}\
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}\
th{background:#f3f3f3}td.l,th.l{text-align:left}\
pre{background:#f7f7f7;padding:8px;font-size:12px;overflow:auto}\
.fail{color:#b00;font-weight:bold}.ok{color:#070}figure{margin:8px 0 24px}";

const RENDER_CHECK: &str = "<script>(function(){\
var t=[].slice.call(document.querySelectorAll('table'));\
var tablesOk=t.filter(function(x){return x.rows.length>1&&x.offsetHeight>0}).length;\
var c=[].slice.call(document.querySelectorAll('svg.chart'));\
var chartsOk=c.filter(function(s){var l=s.querySelector('polyline');\
if(!l)return false;var b=l.getBBox();return (b.width>0||b.height>0)&&s.getBoundingClientRect().width>0}).length;\
document.body.setAttribute('data-render-check','tables='+tablesOk+'/'+t.length+' charts='+chartsOk+'/'+c.length);\
})();</script>";

/// Renders the whole report.
pub fn render(outcome: &LoadOutcome, extras: &ReportExtras) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>roomsim load report</title><style>{STYLE}</style></head><body>"
    );
    header(&mut page, outcome, extras);
    request_statistics(&mut page, outcome);
    percentiles(&mut page, outcome);
    server_timings(&mut page, outcome);
    failures(&mut page, outcome);
    if let Some(text) = &extras.comparison_text {
        let _ =
            write!(page, "<h2>Real vs simulated</h2><pre id=\"comparison\">{}</pre>", escape(text));
    }
    monitor(&mut page, extras);
    charts(&mut page, outcome, extras);
    page.push_str(RENDER_CHECK);
    page.push_str("</body></html>\n");
    page
}

fn header(page: &mut String, outcome: &LoadOutcome, extras: &ReportExtras) {
    let config = &outcome.config;
    let tags: Vec<&str> = config.tasks.iter().map(|t| t.tag()).collect();
    let model = match config.rate_per_s {
        Some(rate) => format!("open loop, {rate} requests/s (latency from intended send time)"),
        None => {
            format!("closed loop, {} users at {} users/s", config.users, config.spawn_rate_per_s)
        }
    };
    let _ = write!(
        page,
        "<h1>roomsim load report</h1><table id=\"run\"><tr><th class=\"l\">Field</th>\
         <th class=\"l\">Value</th></tr>"
    );
    let rows = [
        ("Target", config.target.base.clone()),
        ("Started (unix s)", outcome.started_unix_s.to_string()),
        ("Duration", format!("{:.1} s", outcome.elapsed.as_secs_f64())),
        ("Arrival model", model),
        ("Tags", tags.join(", ")),
        ("Seed", config.seed.to_string()),
        ("Bookings/s", format!("{:.1}", outcome.bookings_per_s())),
    ];
    for (key, value) in rows {
        let _ = write!(
            page,
            "<tr><td class=\"l\">{key}</td><td class=\"l\">{}</td></tr>",
            escape(&value)
        );
    }
    if let Some(reason) = &outcome.stopped_early {
        let _ = write!(
            page,
            "<tr><td class=\"l\">Stopped early</td><td class=\"l fail\">{}</td></tr>",
            escape(reason)
        );
    }
    for note in &extras.notes {
        let _ =
            write!(page, "<tr><td class=\"l\">Note</td><td class=\"l\">{}</td></tr>", escape(note));
    }
    page.push_str("</table>");
}

fn request_statistics(page: &mut String, outcome: &LoadOutcome) {
    let elapsed_s = outcome.elapsed.as_secs_f64();
    page.push_str(
        "<h2>Request Statistics</h2><table id=\"requests\"><tr><th class=\"l\">Type</th>\
         <th class=\"l\">Name</th><th># Requests</th><th># Fails</th><th>Average (ms)</th>\
         <th>Min (ms)</th><th>Max (ms)</th><th>Average size (bytes)</th><th>RPS</th>\
         <th>Failures/s</th></tr>",
    );
    for entry in outcome.recorder.entries() {
        let h = &entry.histogram;
        let (mean, min) = if h.is_empty() { (0.0, 0) } else { (h.mean() / 1_000.0, h.min()) };
        let _ = write!(
            page,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td>\
             <td>{mean:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.0}</td><td>{:.1}</td>\
             <td>{:.2}</td></tr>",
            escape(&entry.method),
            escape(&entry.name),
            entry.request_count,
            entry.failure_count,
            ms(min),
            ms(h.max()),
            entry.average_content_bytes(),
            entry.requests_per_s(elapsed_s),
            entry.failures_per_s(elapsed_s),
        );
    }
    page.push_str("</table>");
}

fn percentiles(page: &mut String, outcome: &LoadOutcome) {
    page.push_str("<h2>Response Time Statistics (ms)</h2><table id=\"percentiles\"><tr><th class=\"l\">Name</th>");
    for q in PERCENTILES_TO_REPORT {
        let _ = write!(page, "<th>{}</th>", percentile_label(q));
    }
    page.push_str("</tr>");
    for entry in outcome.recorder.entries() {
        let _ = write!(page, "<tr><td class=\"l\">{}</td>", escape(&entry.name));
        for q in PERCENTILES_TO_REPORT {
            let _ = write!(page, "<td>{:.2}</td>", ms(value_or_zero(&entry.histogram, q)));
        }
        page.push_str("</tr>");
    }
    page.push_str("</table>");
}

fn server_timings(page: &mut String, outcome: &LoadOutcome) {
    page.push_str(
        "<h2>Backend Server-Timing (ms)</h2><table id=\"server-timing\"><tr>\
         <th class=\"l\">Metric</th><th>Samples</th><th>p50</th><th>p95</th><th>p99</th>\
         <th>Max</th></tr>",
    );
    let mut metrics: Vec<(String, Histogram<u64>)> =
        vec![("room_assignment (client)".to_string(), room_assignment(&outcome.recorder))];
    for name in outcome.recorder.server_timing.keys() {
        metrics.push((name.clone(), server_timing(&outcome.recorder, name)));
    }
    for (name, h) in metrics {
        let _ = write!(
            page,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td>\
             <td>{:.3}</td></tr>",
            escape(&name),
            h.len(),
            ms(value_or_zero(&h, 0.5)),
            ms(value_or_zero(&h, 0.95)),
            ms(value_or_zero(&h, 0.99)),
            ms(h.max())
        );
    }
    page.push_str("</table>");
}

fn failures(page: &mut String, outcome: &LoadOutcome) {
    page.push_str(
        "<h2>Failures Statistics</h2><table id=\"failures\"><tr><th class=\"l\">Method</th>\
         <th class=\"l\">Name</th><th class=\"l\">Error</th><th>Occurrences</th></tr>",
    );
    if outcome.recorder.failures.is_empty() {
        page.push_str("<tr><td class=\"l\" colspan=\"4\">No failures</td></tr>");
    }
    for ((method, name, error), count) in &outcome.recorder.failures {
        let _ = write!(
            page,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{count}</td></tr>",
            escape(method),
            escape(name),
            escape(error)
        );
    }
    page.push_str("</table>");
}

fn monitor(page: &mut String, extras: &ReportExtras) {
    let Some(m) = &extras.monitor else { return };
    let deadlock_class = if m.deadlocks_delta == 0 { "ok" } else { "fail" };
    let _ = write!(
        page,
        "<h2>Database Monitoring</h2><table id=\"monitor\"><tr><th class=\"l\">Measure</th>\
         <th>Value</th></tr>\
         <tr><td class=\"l\">Samples</td><td>{}</td></tr>\
         <tr><td class=\"l\">Active queries (max / mean)</td><td>{} / {:.1}</td></tr>\
         <tr><td class=\"l\">Queries waiting on a lock (max)</td><td>{}</td></tr>\
         <tr><td class=\"l\">Ungranted locks (max)</td><td>{}</td></tr>\
         <tr><td class=\"l\">Deadlocks (delta)</td><td class=\"{deadlock_class}\">{}</td></tr>",
        m.samples.len(),
        m.active_queries_max(),
        m.active_queries_mean(),
        m.lock_waiters_max(),
        m.ungranted_locks_max(),
        m.deadlocks_delta
    );
    if let Some(error) = &m.error {
        let _ = write!(
            page,
            "<tr><td class=\"l\">Sampler error</td><td class=\"fail\">{}</td></tr>",
            escape(error)
        );
    }
    page.push_str("</table><table id=\"indexes\"><tr><th class=\"l\">Table</th><th class=\"l\">Index</th><th>Scans (delta)</th></tr>");
    for index in &m.indexes {
        let _ = write!(
            page,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td></tr>",
            escape(&index.table),
            escape(&index.index),
            index.scans_delta
        );
    }
    page.push_str("</table>");
}

fn charts(page: &mut String, outcome: &LoadOutcome, extras: &ReportExtras) {
    page.push_str("<h2>Charts</h2>");
    let aggregated = outcome.recorder.history.iter().filter(|r| r.name == AGGREGATED);
    let mut p50 = Vec::new();
    let mut p95 = Vec::new();
    let mut rps = Vec::new();
    for row in aggregated {
        rps.push((row.elapsed_s, row.requests_per_s));
        if let (Some(a), Some(b)) =
            (row.window_percentiles_us.first(), row.window_percentiles_us.get(5))
        {
            p50.push((row.elapsed_s, ms(*a)));
            p95.push((row.elapsed_s, ms(*b)));
        }
    }
    let series = |name: &str, points, dashed| Series { name: name.to_string(), points, dashed };
    figure(
        page,
        &Chart {
            id: "latency-over-time",
            title: "Response time over time (10 s window)",
            x_label: "seconds since start",
            y_label: "ms",
            log_x: false,
            series: vec![series("p50", p50, false), series("p95", p95, false)],
        },
    );
    figure(
        page,
        &Chart {
            id: "rps-over-time",
            title: "Requests per second",
            x_label: "seconds since start",
            y_label: "requests/s",
            log_x: false,
            series: vec![series("all requests", rps, false)],
        },
    );
    figure(page, &cdf_chart(outcome, extras));
    if let Some(m) = &extras.monitor {
        let active =
            m.samples.iter().map(|s| (s.elapsed_ms as f64 / 1_000.0, s.active_queries as f64));
        let ungranted =
            m.samples.iter().map(|s| (s.elapsed_ms as f64 / 1_000.0, s.ungranted_locks as f64));
        figure(
            page,
            &Chart {
                id: "db-activity",
                title: "Database: active queries and ungranted locks",
                x_label: "seconds since start",
                y_label: "count",
                log_x: false,
                series: vec![
                    series("active queries", active.collect(), false),
                    series("ungranted locks", ungranted.collect(), true),
                ],
            },
        );
    }
}

fn cdf_chart<'a>(outcome: &LoadOutcome, extras: &ReportExtras) -> Chart<'a> {
    let mut series = Vec::new();
    if extras.overlays.is_empty() {
        let real = room_assignment(&outcome.recorder);
        series.push(Series {
            name: "room_assignment real".into(),
            points: cdf_points(&real),
            dashed: false,
        });
    }
    for overlay in &extras.overlays {
        let real = cdf_points(&overlay.real);
        let sim = cdf_points(&overlay.sim);
        series.push(Series {
            name: format!("{} real", overlay.label),
            points: real,
            dashed: false,
        });
        series.push(Series { name: format!("{} sim", overlay.label), points: sim, dashed: true });
    }
    Chart {
        id: "latency-cdf",
        title: "Latency CDF: real vs simulated",
        x_label: "latency (ms, log scale)",
        y_label: "fraction of requests",
        log_x: true,
        series,
    }
}

/// The empirical CDF of a histogram as (ms, fraction) points.
pub fn cdf_points(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    if histogram.is_empty() {
        return Vec::new();
    }
    let total = histogram.len() as f64;
    let mut cumulative = 0_u64;
    let mut points = Vec::new();
    for step in histogram.iter_recorded() {
        cumulative += step.count_since_last_iteration();
        points.push((ms(step.value_iterated_to().max(1)), cumulative as f64 / total));
    }
    points
}

fn figure(page: &mut String, chart: &Chart) {
    let _ = write!(page, "<figure>{}</figure>", svg::render(chart));
}

#[cfg(test)]
mod tests {
    use super::super::tests::outcome;
    use super::*;
    use crate::report::Overlay;
    use sim::compare::compare;

    #[test]
    fn report_is_self_contained_with_tables_and_charts() {
        let data = outcome();
        let real = room_assignment(&data.recorder);
        let overlay = Overlay {
            label: "room_assignment".into(),
            comparison: compare(&real, &real),
            sim: real.clone(),
            real,
        };
        let extras = ReportExtras { overlays: vec![overlay], ..ReportExtras::default() };
        let page = render(&data, &extras);
        for id in [
            "requests",
            "percentiles",
            "failures",
            "server-timing",
            "latency-cdf",
            "latency-over-time",
        ] {
            assert!(page.contains(&format!("id=\"{id}\"")), "missing {id}");
        }
        assert!(!page.contains("http://") || !page.contains("src=\"http"), "nothing fetched");
        assert!(!page.contains("<link") && !page.contains("src="), "no external resources");
        assert!(page.contains("room_assignment sim"));
    }

    #[test]
    fn cdf_ends_at_one() {
        let data = outcome();
        let points = cdf_points(&room_assignment(&data.recorder));
        assert_eq!(points.last().unwrap().1, 1.0);
        assert!(points.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    }
}
