//! Locust-compatible CSV files: `PREFIX_stats.csv`, `PREFIX_stats_history.csv`,
//! `PREFIX_failures.csv`, with Locust's column names and order (times in ms).
//!
//! Differences from Locust, by design: times are exact HDR values (3 significant figures) with
//! three decimals instead of Locust's two-digit rounding; with a checkpoint (`LoadConfig::
//! checkpoint`) all three are rewritten every second, like Locust's `CSV_STATS_INTERVAL_SEC`. "N/A" marks percentiles of an empty window, as Locust does.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::{ms, percentile_label};
use crate::RealError;
use crate::load_run::LoadOutcome;
use crate::stats::{AGGREGATED, PERCENTILES_TO_REPORT, value_or_zero};

/// Writes the three files; returns the first error after attempting all of them.
pub fn write_all(prefix: &str, outcome: &LoadOutcome, full_history: bool) -> Result<(), RealError> {
    let files = [
        ("_stats.csv", stats_csv(outcome)),
        ("_stats_history.csv", history_csv(outcome, full_history)),
        ("_failures.csv", failures_csv(outcome)),
    ];
    let mut first_error = None;
    for (suffix, text) in files {
        let path = PathBuf::from(format!("{prefix}{suffix}"));
        if let Err(e) = super::write_atomically(&path, text.as_bytes()) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Quotes a field when it holds a comma, a quote or a line break.
pub fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn percentile_header() -> String {
    PERCENTILES_TO_REPORT.iter().map(|&q| percentile_label(q)).collect::<Vec<_>>().join(",")
}

pub fn stats_csv(outcome: &LoadOutcome) -> String {
    let elapsed_s = outcome.elapsed.as_secs_f64();
    let mut out = String::from(
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
         Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,",
    );
    out.push_str(&percentile_header());
    out.push('\n');
    for entry in outcome.recorder.entries() {
        let h = &entry.histogram;
        let (mean, min) = if h.is_empty() { (0.0, 0) } else { (h.mean() / 1_000.0, h.min()) };
        let _ = write!(
            out,
            "{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.1},{:.3},{:.3}",
            field(&entry.method),
            field(&entry.name),
            entry.request_count,
            entry.failure_count,
            ms(value_or_zero(h, 0.5)),
            mean,
            ms(min),
            ms(h.max()),
            entry.average_content_bytes(),
            entry.requests_per_s(elapsed_s),
            entry.failures_per_s(elapsed_s),
        );
        for q in PERCENTILES_TO_REPORT {
            if h.is_empty() {
                out.push_str(",N/A");
            } else {
                let _ = write!(out, ",{:.3}", ms(h.value_at_quantile(q)));
            }
        }
        out.push('\n');
    }
    out
}

pub fn history_csv(outcome: &LoadOutcome, full_history: bool) -> String {
    let mut out = String::from("Timestamp,User Count,Type,Name,Requests/s,Failures/s,");
    out.push_str(&percentile_header());
    out.push_str(
        ",Total Request Count,Total Failure Count,Total Median Response Time,\
         Total Average Response Time,Total Min Response Time,Total Max Response Time,\
         Total Average Content Size\n",
    );
    let rows = outcome.recorder.history.iter();
    for row in rows.filter(|row| full_history || row.name == AGGREGATED) {
        let _ = write!(
            out,
            "{},{},{},{},{:.3},{:.3}",
            row.unix_s,
            row.users,
            field(&row.method),
            field(&row.name),
            row.requests_per_s,
            row.failures_per_s
        );
        if row.window_percentiles_us.is_empty() {
            out.push_str(&",N/A".repeat(PERCENTILES_TO_REPORT.len()));
        }
        for us in &row.window_percentiles_us {
            let _ = write!(out, ",{:.3}", ms(*us));
        }
        let _ = writeln!(
            out,
            ",{},{},{:.3},{:.3},{:.3},{:.3},{:.1}",
            row.total_requests,
            row.total_failures,
            ms(row.total_median_us),
            row.total_mean_us / 1_000.0,
            ms(row.total_min_us),
            ms(row.total_max_us),
            row.total_average_content_bytes
        );
    }
    out
}

pub fn failures_csv(outcome: &LoadOutcome) -> String {
    let mut out = String::from("Method,Name,Error,Occurrences\n");
    for ((method, name, error), count) in &outcome.recorder.failures {
        let _ = writeln!(out, "{},{},{},{count}", field(method), field(name), field(error));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::outcome;
    use super::*;

    fn columns(line: &str) -> usize {
        line.split(',').count()
    }

    #[test]
    fn stats_csv_has_locust_columns_and_one_row_per_name() {
        let text = stats_csv(&outcome());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("Type,Name,Request Count,Failure Count,Median Response Time"));
        assert!(lines[0].ends_with("99%,99.9%,99.99%,100%"));
        assert_eq!(lines.len(), 1 + 3 + 1, "header, three names, Aggregated");
        assert!(lines.iter().all(|l| columns(l) == columns(lines[0])), "{text}");
        let aggregated = lines.last().unwrap();
        assert!(aggregated.starts_with(",Aggregated,156,3,"), "{aggregated}");
    }

    #[test]
    fn history_is_aggregated_only_unless_full() {
        let data = outcome();
        let short = history_csv(&data, false);
        let full = history_csv(&data, true);
        assert_eq!(short.lines().count(), 1 + 3, "one Aggregated row per interval");
        assert_eq!(full.lines().count(), 1 + 3 * 4);
        let header = short.lines().next().unwrap();
        assert!(header.starts_with("Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%"));
        assert!(short.lines().all(|l| columns(l) == columns(header)), "{short}");
    }

    #[test]
    fn failures_are_counted_and_fields_quoted() {
        let text = failures_csv(&outcome());
        assert_eq!(text.lines().nth(1), Some("POST,POST /v1/appointments [conflict],HTTP 500,3"));
        assert_eq!(field("a,\"b\""), "\"a,\"\"b\"\"\"");
    }
}
