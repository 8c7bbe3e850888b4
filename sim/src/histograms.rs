//! Latency histograms of one run (or of many seeds merged), in µs of modelled time.
//!
//! HdrHistogram with 3 significant digits over 1 µs ..= 60 s. Five are kept: room assignment
//! (the whole booking as the client sees it, from the intended send time), conflict detection
//! and rules evaluation per slot (charged by the backend's cost model), pool wait and lock
//! wait. JSON carries each as base64 of HdrHistogram's V2 serialization (byte-identical for
//! equal histograms, so JSON reports can be snapshotted and merged exactly).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

/// Highest recordable value: 60 s in µs (larger values saturate).
pub const LATENCY_US_MAX: u64 = 60_000_000;
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// Which latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    RoomAssignment,
    ConflictDetection,
    RulesEvaluation,
    PoolWait,
    LockWait,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::RoomAssignment,
        Metric::ConflictDetection,
        Metric::RulesEvaluation,
        Metric::PoolWait,
        Metric::LockWait,
    ];
}

/// One histogram per metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Histograms {
    // BTreeMap: serialized in metric order (for determinism).
    by_metric: BTreeMap<Metric, Histogram<u64>>,
    /// Conflict detection and rules evaluation again, split by the HTTP status of the answer
    /// that reported them: a diagnostic for `validate` (the real side splits its Server-Timing
    /// the same way), not in reports and not kept by [`Histograms::to_encoded`].
    by_status: BTreeMap<(Metric, u16), Histogram<u64>>,
    /// Every statement's round trip as the backend saw it (sent to answered, modelled µs),
    /// by its class (`model::profile::statement_class`): a diagnostic for `validate
    /// --statement-times` (the real side times its statements the same way), not in reports
    /// and not kept by [`Histograms::to_encoded`].
    by_statement: BTreeMap<String, Histogram<u64>>,
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

impl Default for Histograms {
    fn default() -> Self {
        Histograms {
            by_metric: Metric::ALL.iter().map(|m| (*m, new_histogram())).collect(),
            by_status: BTreeMap::new(),
            by_statement: BTreeMap::new(),
        }
    }
}

/// Summary figures of one histogram, µs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub mean_us: u64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Histograms {
    pub fn record(&mut self, metric: Metric, value_us: u64) {
        let h = self.by_metric.get_mut(&metric).expect("every metric has a histogram");
        h.saturating_record(value_us.max(1));
    }

    pub fn get(&self, metric: Metric) -> &Histogram<u64> {
        &self.by_metric[&metric]
    }

    /// Records a time of `metric` reported by an answer of HTTP `status`, in both the metric
    /// and its split by status.
    pub fn record_by_status(&mut self, metric: Metric, status: u16, value_us: u64) {
        self.record(metric, value_us);
        let h = self.by_status.entry((metric, status)).or_insert_with(new_histogram);
        h.saturating_record(value_us.max(1));
    }

    /// `metric` by the HTTP status of the answer that reported it (only what was recorded
    /// with [`Histograms::record_by_status`]).
    pub fn by_status(&self, metric: Metric) -> BTreeMap<u16, &Histogram<u64>> {
        let recorded = self.by_status.iter().filter(|((m, _), _)| *m == metric);
        recorded.map(|((_, status), h)| (*status, h)).collect()
    }

    /// Records one statement's round trip under its class.
    pub fn record_statement(&mut self, sql: &str, value_us: u64) {
        let class = model::profile::statement_class(sql);
        let h = match self.by_statement.get_mut(class) {
            Some(h) => h,
            None => self.by_statement.entry(class.to_string()).or_insert_with(new_histogram),
        };
        h.saturating_record(value_us.max(1));
    }

    /// Statement round trips by class (what [`Histograms::record_statement`] recorded).
    pub fn by_statement(&self) -> &BTreeMap<String, Histogram<u64>> {
        &self.by_statement
    }

    pub fn merge(&mut self, other: &Histograms) {
        for (metric, h) in &other.by_metric {
            let mine = self.by_metric.get_mut(metric).expect("every metric has a histogram");
            mine.add(h).expect("histograms with equal bounds always merge");
        }
        for (key, h) in &other.by_status {
            let mine = self.by_status.entry(*key).or_insert_with(new_histogram);
            mine.add(h).expect("histograms with equal bounds always merge");
        }
        for (class, h) in &other.by_statement {
            let mine = self.by_statement.entry(class.clone()).or_insert_with(new_histogram);
            mine.add(h).expect("histograms with equal bounds always merge");
        }
    }

    pub fn summary(&self, metric: Metric) -> Summary {
        let h = self.get(metric);
        if h.is_empty() {
            return Summary::default();
        }
        Summary {
            count: h.len(),
            mean_us: h.mean().round() as u64,
            p50_us: h.value_at_quantile(0.50),
            p95_us: h.value_at_quantile(0.95),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        }
    }

    /// metric → base64(V2).
    pub fn to_encoded(&self) -> BTreeMap<Metric, String> {
        let mut serializer = V2Serializer::new();
        let mut out = BTreeMap::new();
        for (metric, h) in &self.by_metric {
            let mut bytes = Vec::new();
            serializer.serialize(h, &mut bytes).expect("serializing to a Vec cannot fail");
            out.insert(*metric, STANDARD.encode(bytes));
        }
        out
    }

    /// The inverse of [`Histograms::to_encoded`]; names the metric that fails to decode.
    pub fn from_encoded(encoded: &BTreeMap<Metric, String>) -> Result<Histograms, String> {
        let mut out = Histograms::default();
        let mut deserializer = Deserializer::new();
        for (metric, text) in encoded {
            let bytes = STANDARD.decode(text).map_err(|e| format!("histogram {metric:?}: {e}"))?;
            let h: Histogram<u64> = deserializer
                .deserialize(&mut bytes.as_slice())
                .map_err(|e| format!("histogram {metric:?}: {e:?}"))?;
            out.by_metric
                .get_mut(metric)
                .expect("every metric")
                .add(&h)
                .map_err(|e| format!("histogram {metric:?}: {e:?}"))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_merge_round_trip() {
        let mut a = Histograms::default();
        for v in 1..=1000 {
            a.record(Metric::RoomAssignment, v * 10);
        }
        a.record(Metric::PoolWait, 0);
        let decoded = Histograms::from_encoded(&a.to_encoded()).unwrap();
        assert_eq!(decoded, a);
        assert_eq!(a.to_encoded(), decoded.to_encoded(), "encoding is byte-stable");
        let mut merged = a.clone();
        merged.merge(&decoded);
        let s = merged.summary(Metric::RoomAssignment);
        assert_eq!(s.count, 2000);
        assert!((9_490..=9_510).contains(&s.p95_us), "p95 {}", s.p95_us);
        assert_eq!(merged.summary(Metric::PoolWait).count, 2);
        assert_eq!(merged.summary(Metric::LockWait), Summary::default());
        let bad = BTreeMap::from([(Metric::LockWait, "!!".to_string())]);
        assert!(Histograms::from_encoded(&bad).unwrap_err().contains("LockWait"));
    }

    #[test]
    fn conflict_detection_and_rules_are_also_split_by_status_and_merged() {
        let conflict = Metric::ConflictDetection;
        let mut a = Histograms::default();
        a.record_by_status(conflict, 201, 300);
        a.record_by_status(conflict, 409, 2_000);
        a.record_by_status(conflict, 409, 4_000);
        a.record_by_status(Metric::RulesEvaluation, 409, 30);
        assert_eq!(a.summary(conflict).count, 3, "the metric has them all");
        let count =
            |h: &Histograms, metric, status| h.by_status(metric).get(&status).map(|h| h.len());
        let counts = (count(&a, conflict, 201), count(&a, conflict, 409), count(&a, conflict, 500));
        assert_eq!(counts, (Some(1), Some(2), None));
        assert_eq!(count(&a, Metric::RulesEvaluation, 409), Some(1), "each metric its own split");
        assert_eq!(count(&a, Metric::RulesEvaluation, 201), None);
        let mut b = Histograms::default();
        b.record_by_status(conflict, 409, 1_000);
        b.merge(&a);
        assert_eq!(count(&b, conflict, 409), Some(3));
        assert_eq!(count(&b, Metric::RulesEvaluation, 409), Some(1));
        assert_eq!(b.by_status(conflict)[&409].max(), a.by_status(conflict)[&409].max());
        let (mut ok, mut rejected) = (Histograms::default(), Histograms::default());
        ok.record_by_status(conflict, 201, 300);
        rejected.record_by_status(conflict, 409, 300);
        assert_eq!(ok.get(conflict), rejected.get(conflict));
        assert_ne!(ok, rejected, "the split takes part in equality (replay checks)");
    }
}
