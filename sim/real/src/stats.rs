//! Request statistics of a real load run: one HdrHistogram (µs, 3 significant figures) per
//! request name, per Server-Timing metric, plus a per-second time series.
//!
//! WHY NOT LOCUST'S NUMBERS
//!
//! Locust rounds each response time to about two significant digits; we keep exact HDR
//! histograms and print Locust-style tables from them (latency-validation.md §0). The CSV files
//! follow Locust's column layout so existing tooling reads them.
//!
//! TIME SERIES
//!
//! Every [`INTERVAL_MS`] the runner calls [`Recorder::roll_interval`]: the interval's histograms
//! are serialised (V2) for the HdrHistogram interval log, summarised into a [`HistoryRow`]
//! (Locust's `_stats_history.csv`: percentiles over a sliding window of the last
//! [`WINDOW_INTERVALS`] intervals) and reset. Only the window's histograms are kept live, so
//! memory does not grow with the run time beyond one small row and a few KB per interval.
//!
//! NOT MODELLED: Locust's `_exceptions.csv` (there are no user-code exceptions here).

use std::collections::{BTreeMap, VecDeque};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer, V2Serializer};

use sim::compare::latency_histogram;

/// Length of one time-series interval.
pub const INTERVAL_MS: u64 = 1_000;
/// Locust's `CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW`: 10 s of intervals.
pub const WINDOW_INTERVALS: usize = 10;
/// Locust's `PERCENTILES_TO_REPORT`.
pub const PERCENTILES_TO_REPORT: [f64; 11] =
    [0.50, 0.66, 0.75, 0.80, 0.90, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0];
/// Distinct failure messages kept; further ones are counted under one "other" row.
pub const FAILURE_KINDS_MAX: usize = 100;
/// The name of the row that sums all request names.
pub const AGGREGATED: &str = "Aggregated";

/// The statistics of one request name (or the aggregate).
#[derive(Clone, Debug)]
pub struct Entry {
    pub method: String,
    pub name: String,
    pub histogram: Histogram<u64>,
    pub request_count: u64,
    pub failure_count: u64,
    pub content_bytes_total: u64,
    interval: Histogram<u64>,
    interval_requests: u64,
    interval_failures: u64,
    window: VecDeque<Histogram<u64>>,
}

impl Entry {
    fn new(method: &str, name: &str) -> Entry {
        Entry {
            method: method.to_string(),
            name: name.to_string(),
            histogram: latency_histogram(),
            request_count: 0,
            failure_count: 0,
            content_bytes_total: 0,
            interval: latency_histogram(),
            interval_requests: 0,
            interval_failures: 0,
            window: VecDeque::with_capacity(WINDOW_INTERVALS),
        }
    }

    fn record(&mut self, latency_us: u64, ok: bool, content_bytes: u64) {
        self.histogram.saturating_record(latency_us.max(1));
        self.interval.saturating_record(latency_us.max(1));
        self.request_count += 1;
        self.interval_requests += 1;
        self.content_bytes_total += content_bytes;
        if !ok {
            self.failure_count += 1;
            self.interval_failures += 1;
        }
    }

    /// Requests per second over `elapsed_s`.
    pub fn requests_per_s(&self, elapsed_s: f64) -> f64 {
        if elapsed_s > 0.0 { self.request_count as f64 / elapsed_s } else { 0.0 }
    }

    pub fn failures_per_s(&self, elapsed_s: f64) -> f64 {
        if elapsed_s > 0.0 { self.failure_count as f64 / elapsed_s } else { 0.0 }
    }

    pub fn average_content_bytes(&self) -> f64 {
        if self.request_count == 0 {
            return 0.0;
        }
        self.content_bytes_total as f64 / self.request_count as f64
    }
}

/// One row of the time series (one interval, one request name).
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryRow {
    /// Seconds since the run started, at the end of the interval.
    pub elapsed_s: f64,
    /// Unix time in seconds at the end of the interval (for Locust's `Timestamp`).
    pub unix_s: u64,
    pub users: u32,
    pub method: String,
    pub name: String,
    pub requests_per_s: f64,
    pub failures_per_s: f64,
    /// [`PERCENTILES_TO_REPORT`] over the sliding window, µs; empty when the window is empty.
    pub window_percentiles_us: Vec<u64>,
    pub total_requests: u64,
    pub total_failures: u64,
    pub total_median_us: u64,
    pub total_mean_us: f64,
    pub total_min_us: u64,
    pub total_max_us: u64,
    pub total_average_content_bytes: f64,
}

/// One interval's histogram, serialised for the interval log.
#[derive(Clone, Debug)]
pub struct IntervalHistogram {
    pub tag: String,
    pub start_ms: u64,
    pub duration_ms: u64,
    /// V2 serialisation (`hdrhistogram::serialization::V2Serializer`).
    pub encoded: Vec<u8>,
}

/// Collects every completed request. Shared behind a mutex by the load tasks; cloned for each
/// checkpoint of the report files.
#[derive(Clone, Debug)]
pub struct Recorder {
    /// Keyed by request name; BTreeMap so every report lists names in one order (determinism).
    entries: BTreeMap<String, Entry>,
    aggregated: Entry,
    /// Server-Timing metrics by name ("rules", "conflict", "db"), µs.
    pub server_timing: BTreeMap<String, Histogram<u64>>,
    /// Client-side latency of the booking requests that were assigned a room (201), µs: what
    /// "room assignment" means. 409s and failures are counted elsewhere, not averaged in.
    pub room_assigned: Histogram<u64>,
    /// (method, name, error) → occurrences.
    pub failures: BTreeMap<(String, String, String), u64>,
    pub history: Vec<HistoryRow>,
    pub intervals: Vec<IntervalHistogram>,
    interval_start_ms: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            entries: BTreeMap::new(),
            aggregated: Entry::new("", AGGREGATED),
            server_timing: BTreeMap::new(),
            room_assigned: latency_histogram(),
            failures: BTreeMap::new(),
            history: Vec::new(),
            intervals: Vec::new(),
            interval_start_ms: 0,
        }
    }

    /// Records one finished request. `error` is `Some` for a failure.
    pub fn record(
        &mut self,
        method: &str,
        name: &str,
        latency_us: u64,
        content_bytes: u64,
        error: Option<&str>,
    ) {
        let entry =
            self.entries.entry(name.to_string()).or_insert_with(|| Entry::new(method, name));
        entry.record(latency_us, error.is_none(), content_bytes);
        self.aggregated.record(latency_us, error.is_none(), content_bytes);
        if let Some(error) = error {
            self.record_failure(method, name, error);
        }
    }

    fn record_failure(&mut self, method: &str, name: &str, error: &str) {
        let key = (method.to_string(), name.to_string(), error.to_string());
        if self.failures.len() >= FAILURE_KINDS_MAX && !self.failures.contains_key(&key) {
            let other = (method.to_string(), name.to_string(), "other errors".to_string());
            *self.failures.entry(other).or_insert(0) += 1;
        } else {
            *self.failures.entry(key).or_insert(0) += 1;
        }
    }

    /// Records one Server-Timing metric in µs.
    pub fn record_server_timing(&mut self, metric: &str, duration_us: u64) {
        self.server_timing
            .entry(metric.to_string())
            .or_insert_with(latency_histogram)
            .saturating_record(duration_us.max(1));
    }

    /// A booking request answered 201 (a room was assigned) after `latency_us`.
    pub fn record_room_assigned(&mut self, latency_us: u64) {
        self.room_assigned.saturating_record(latency_us.max(1));
    }

    /// All request names in order, then the aggregate.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values().chain(std::iter::once(&self.aggregated))
    }

    pub fn aggregated(&self) -> &Entry {
        &self.aggregated
    }

    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// Closes the interval ending at `now_ms` (ms since the start): history rows, interval log
    /// entries, sliding windows.
    pub fn roll_interval(&mut self, now_ms: u64, unix_s: u64, users: u32) {
        assert!(now_ms >= self.interval_start_ms, "intervals must move forward");
        let duration_ms = (now_ms - self.interval_start_ms).max(1);
        let names: Vec<String> = self.entries.keys().cloned().collect();
        for name in names {
            let entry = self.entries.get_mut(&name).expect("name was just listed");
            let row = roll_entry(entry, now_ms, duration_ms, unix_s, users);
            self.encode_interval(&name, duration_ms);
            self.history.push(row);
        }
        let row = roll_entry(&mut self.aggregated, now_ms, duration_ms, unix_s, users);
        self.history.push(row);
        self.interval_start_ms = now_ms;
    }

    fn encode_interval(&mut self, name: &str, duration_ms: u64) {
        let entry = &self.entries[name];
        let Some(last) = entry.window.back() else { return };
        let mut encoded = Vec::new();
        V2Serializer::new()
            .serialize(last, &mut encoded)
            .expect("serialising into a Vec cannot fail");
        self.intervals.push(IntervalHistogram {
            tag: name.to_string(),
            start_ms: self.interval_start_ms,
            duration_ms,
            encoded,
        });
    }
}

/// Moves an entry's interval into its window and summarises the window into a history row.
fn roll_entry(
    entry: &mut Entry,
    now_ms: u64,
    duration_ms: u64,
    unix_s: u64,
    users: u32,
) -> HistoryRow {
    let interval = std::mem::replace(&mut entry.interval, latency_histogram());
    if entry.window.len() == WINDOW_INTERVALS {
        entry.window.pop_front();
    }
    entry.window.push_back(interval);
    let mut window = latency_histogram();
    for histogram in &entry.window {
        window.add(histogram).expect("histograms share bounds");
    }
    let window_percentiles_us = if window.is_empty() {
        Vec::new()
    } else {
        PERCENTILES_TO_REPORT.iter().map(|&q| window.value_at_quantile(q)).collect()
    };
    let seconds = duration_ms as f64 / 1_000.0;
    let row = HistoryRow {
        elapsed_s: now_ms as f64 / 1_000.0,
        unix_s,
        users,
        method: entry.method.clone(),
        name: entry.name.clone(),
        requests_per_s: entry.interval_requests as f64 / seconds,
        failures_per_s: entry.interval_failures as f64 / seconds,
        window_percentiles_us,
        total_requests: entry.request_count,
        total_failures: entry.failure_count,
        total_median_us: value_or_zero(&entry.histogram, 0.5),
        total_mean_us: if entry.histogram.is_empty() { 0.0 } else { entry.histogram.mean() },
        total_min_us: if entry.histogram.is_empty() { 0 } else { entry.histogram.min() },
        total_max_us: entry.histogram.max(),
        total_average_content_bytes: entry.average_content_bytes(),
    };
    entry.interval_requests = 0;
    entry.interval_failures = 0;
    row
}

/// `value_at_quantile`, or 0 for an empty histogram.
pub fn value_or_zero(histogram: &Histogram<u64>, quantile: f64) -> u64 {
    if histogram.is_empty() { 0 } else { histogram.value_at_quantile(quantile) }
}

/// Parses a `Server-Timing` header value (`rules;dur=1.25, conflict;dur=0.4;desc="x"`) into
/// (name, µs) pairs. Entries without a parsable `dur` are skipped; durations are ms.
pub fn parse_server_timing(header: &str) -> Vec<(String, u64)> {
    let mut metrics = Vec::new();
    for metric in header.split(',') {
        let mut parts = metric.split(';').map(str::trim);
        let Some(name) = parts.next().filter(|n| !n.is_empty()) else { continue };
        let duration_ms = parts
            .filter_map(|p| p.strip_prefix("dur="))
            .find_map(|v| v.trim_matches('"').parse::<f64>().ok())
            .filter(|ms| ms.is_finite() && *ms >= 0.0);
        if let Some(ms) = duration_ms {
            metrics.push((name.to_string(), (ms * 1_000.0).round() as u64));
        }
    }
    metrics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_parses_durations_in_microseconds() {
        let parsed = parse_server_timing(r#"rules;dur=1.25, conflict;desc="gist";dur=0.4, db"#);
        assert_eq!(parsed, vec![("rules".to_string(), 1_250), ("conflict".to_string(), 400)]);
        assert!(parse_server_timing("x;dur=abc, y;dur=-1").is_empty());
    }

    #[test]
    fn recorder_counts_failures_and_aggregates() {
        let mut recorder = Recorder::new();
        recorder.record("POST", "book", 1_000, 10, None);
        recorder.record("POST", "book", 3_000, 10, Some("HTTP 500"));
        recorder.record("POST", "preview", 2_000, 30, None);
        let book = recorder.entry("book").unwrap();
        assert_eq!((book.request_count, book.failure_count), (2, 1));
        let all = recorder.aggregated();
        assert_eq!((all.request_count, all.failure_count), (3, 1));
        assert_eq!(all.content_bytes_total, 50);
        let key = ("POST".to_string(), "book".to_string(), "HTTP 500".to_string());
        assert_eq!(recorder.failures.get(&key), Some(&1));
        let names: Vec<&str> = recorder.entries().map(|e| e.name.as_str()).collect();
        assert_eq!(names, vec!["book", "preview", AGGREGATED]);
    }

    #[test]
    fn sliding_window_forgets_old_intervals() {
        let mut recorder = Recorder::new();
        recorder.record("POST", "book", 50_000, 0, None);
        recorder.roll_interval(1_000, 0, 1);
        for second in 2..=(WINDOW_INTERVALS as u64 + 1) {
            recorder.record("POST", "book", 1_000, 0, None);
            recorder.roll_interval(second * 1_000, 0, 1);
        }
        let last = recorder.history.iter().rev().find(|r| r.name == "book").unwrap();
        // The 50 ms request left the 10-interval window; the total still remembers it.
        assert!(*last.window_percentiles_us.last().unwrap() < 2_000);
        assert!(last.total_max_us >= 50_000);
        assert_eq!(last.requests_per_s, 1.0);
        assert_eq!(recorder.intervals.len(), WINDOW_INTERVALS + 1);
    }
}
