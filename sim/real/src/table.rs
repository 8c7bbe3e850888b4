//! The side-by-side table of `roomsim validate`: per metric and concurrency level, p50 / p90 /
//! p95 / p99 real vs simulated, their ratios and verdicts, KS D and W1 / real mean.
//!
//! ```text
//! metric              users  quantile   real ms    sim ms   ratio   band  verdict
//! room_assignment        50       p50     3.210     3.050   0.950   ±15%  pass
//! …
//! room_assignment        50  n 1200/5000  KS D 0.043  W1/mean 0.071
//! ```

use std::fmt::Write as _;

use sim::compare::{Comparison, Verdict};

/// One compared metric at one concurrency level.
#[derive(Clone, Debug)]
pub struct MetricRow {
    pub metric: String,
    pub level: u32,
    pub comparison: Comparison,
}

fn quantile_name(q: f64) -> String {
    format!("p{}", (q * 100.0).round() as u64)
}

fn optional(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"))
}

/// Renders the table, real against simulated; a final line counts judged quantiles and
/// failures.
pub fn side_by_side(rows: &[MetricRow]) -> String {
    side_by_side_labelled(rows, ["real ms", "sim ms"])
}

/// [`side_by_side`] with other headings for its two columns of values (validate's real
/// replicas judged against its first: `["real 1 ms", "real 2 ms"]`).
pub fn side_by_side_labelled(rows: &[MetricRow], columns: [&str; 2]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:>5} {:>9} {:>10} {:>10} {:>7} {:>6}  verdict",
        "metric", "users", "quantile", columns[0], columns[1], "ratio", "band"
    );
    for row in rows {
        for q in &row.comparison.rows {
            let band = q.tolerance.map_or("-".to_string(), |t| format!("±{:.0}%", t * 100.0));
            let ratio = if q.ratio.is_finite() { format!("{:.3}", q.ratio) } else { "n/a".into() };
            let _ = writeln!(
                out,
                "{:<20} {:>5} {:>9} {:>10.3} {:>10.3} {:>7} {:>6}  {}",
                row.metric,
                row.level,
                quantile_name(q.quantile),
                q.real_us as f64 / 1_000.0,
                q.sim_us as f64 / 1_000.0,
                ratio,
                band,
                q.verdict.label()
            );
        }
        let c = &row.comparison;
        let _ = writeln!(
            out,
            "{:<20} {:>5}  n {} {} / {} {}  KS D {}  W1/mean {}",
            row.metric,
            row.level,
            first_word(columns[0]),
            c.real_count,
            first_word(columns[1]),
            c.sim_count,
            optional(c.ks_d),
            optional(c.w1_over_mean)
        );
    }
    let (judged, failed) = (quantiles_judged(rows), quantiles_out_of_band(rows));
    let _ = writeln!(out, "judged quantiles: {judged}, out of band: {failed}");
    out
}

/// "real" of "real ms", "real 2" of "real 2 ms": a column's name without its unit.
fn first_word(column: &str) -> &str {
    column.strip_suffix(" ms").unwrap_or(column)
}

/// Quantiles judged (passed or failed) over every metric and level.
pub fn quantiles_judged(rows: &[MetricRow]) -> usize {
    quantiles_where(rows, |v| matches!(v, Verdict::Pass | Verdict::Fail))
}

/// Judged quantiles out of band over every metric and level (the summary line's count, and
/// validate's error's).
pub fn quantiles_out_of_band(rows: &[MetricRow]) -> usize {
    quantiles_where(rows, |v| *v == Verdict::Fail)
}

/// Quantiles over every metric and level whose verdict `counted` accepts.
fn quantiles_where(rows: &[MetricRow], counted: impl Fn(&Verdict) -> bool) -> usize {
    rows.iter().flat_map(|r| &r.comparison.rows).filter(|q| counted(&q.verdict)).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim::compare::{compare, latency_histogram};

    #[test]
    fn table_lists_every_quantile_and_counts_failures() {
        let mut real = latency_histogram();
        let mut sim = latency_histogram();
        for i in 0..20_000_u64 {
            real.record(1_000 + i % 1_000).unwrap();
            sim.record(2_000 + 2 * (i % 1_000)).unwrap();
        }
        let rows = vec![MetricRow {
            metric: "room_assignment".into(),
            level: 50,
            comparison: compare(&real, &sim),
        }];
        let text = side_by_side(&rows);
        for q in ["p50", "p90", "p95", "p99"] {
            assert!(text.contains(q), "{text}");
        }
        assert!(text.contains("FAIL"), "ratio 2 is out of every band: {text}");
        assert!(text.contains("judged quantiles: 3, out of band: 3"), "{text}");
        assert!(text.contains("n real 20000 / sim 20000"), "{text}");
        assert_eq!((quantiles_judged(&rows), quantiles_out_of_band(&rows)), (3, 3));
    }

    /// Goal: a replica's table names its columns, and counts as the simulation's does.
    #[test]
    fn a_labelled_table_names_its_columns_and_counts_alike() {
        let (mut first, mut again) = (latency_histogram(), latency_histogram());
        for i in 0..20_000_u64 {
            first.record(1_000 + i % 1_000).unwrap();
            again.record(1_100 + i % 1_000).unwrap();
        }
        let row = |other: &hdrhistogram::Histogram<u64>| MetricRow {
            metric: "conflict_detection".into(),
            level: 10,
            comparison: compare(&first, other),
        };
        let near = vec![row(&again)];
        let text = side_by_side_labelled(&near, ["real 1 ms", "real 2 ms"]);
        assert!(text.lines().next().unwrap().contains("real 1 ms  real 2 ms"), "{text}");
        assert!(text.contains("n real 1 20000 / real 2 20000"), "{text}");
        assert!(text.contains("judged quantiles: 3, out of band: 0"), "{text}");
        let mut far = latency_histogram();
        for i in 0..20_000_u64 {
            far.record(1_500 + 3 * (i % 1_000)).unwrap();
        }
        let rows = vec![row(&far)];
        assert_eq!((quantiles_judged(&rows), quantiles_out_of_band(&rows)), (3, 3));
    }
}
