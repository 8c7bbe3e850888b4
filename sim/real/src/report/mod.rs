//! Reports of a real load run: a text summary on stdout, and on request a self-contained HTML
//! file, Locust-compatible CSV files and an HdrHistogram interval log.
//!
//! All figures come from the exact HDR histograms of [`super::stats::Recorder`]; tables list
//! request names in BTreeMap order so two reports of the same data are byte-identical (apart
//! from wall-clock timestamps).
//!
//! METRICS shared with the simulation (and compared by `validate`):
//! * `room_assignment` — client-side latency of the `POST /v1/appointments` requests (both
//!   booking tasks) that were assigned a room (201); 409s are counted, not averaged in;
//! * `conflict_detection` — the backend's `Server-Timing: conflict` duration;
//! * `rules_evaluation` — the backend's `Server-Timing: rules` duration.

pub mod csv;
pub mod html;
/// The generic SVG helpers live in the simulation's `svg` (its run pictures use them too).
pub use sim::svg;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};

use super::RealError;
use super::load_run::LoadOutcome;
use super::monitor::MonitorSummary;
use super::stats::{PERCENTILES_TO_REPORT, Recorder, value_or_zero};
use sim::compare::{Comparison, latency_histogram};

/// The room-assignment p95 target, µs.
pub const ROOM_ASSIGNMENT_P95_TARGET_US: u64 = 100_000;
/// The throughput target, bookings per second.
pub const THROUGHPUT_TARGET_PER_S: f64 = 20.0;

pub use super::load_run::ReportArgs;

/// A simulated histogram drawn against its real counterpart.
#[derive(Clone, Debug)]
pub struct Overlay {
    /// e.g. "room_assignment @ 50 users".
    pub label: String,
    pub real: Histogram<u64>,
    pub sim: Histogram<u64>,
    pub comparison: Comparison,
}

/// What a report shows besides the load statistics.
#[derive(Clone, Debug, Default)]
pub struct ReportExtras {
    pub monitor: Option<MonitorSummary>,
    pub overlays: Vec<Overlay>,
    /// Pre-formatted side-by-side table (validate).
    pub comparison_text: Option<String>,
    /// Extra lines (e.g. strategy, anomalies).
    pub notes: Vec<String>,
}

/// The client-side latency of every booking request that was assigned a room (201).
pub fn room_assignment(recorder: &Recorder) -> Histogram<u64> {
    recorder.room_assigned.clone()
}

/// A Server-Timing metric's histogram, empty when the backend never sent it.
pub fn server_timing(recorder: &Recorder, metric: &str) -> Histogram<u64> {
    recorder.server_timing.get(metric).cloned().unwrap_or_else(latency_histogram)
}

pub fn ms(us: u64) -> f64 {
    us as f64 / 1_000.0
}

/// The text summary: Locust-style tables and the room-assignment performance block.
pub fn text_summary(outcome: &LoadOutcome) -> String {
    let recorder = &outcome.recorder;
    let elapsed_s = outcome.elapsed.as_secs_f64();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:<46} {:>8} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "Type", "Name", "# reqs", "# fails(%)", "Avg", "Min", "Max", "Med", "req/s"
    );
    for entry in recorder.entries() {
        let h = &entry.histogram;
        let fail_pct = if entry.request_count == 0 {
            0.0
        } else {
            100.0 * entry.failure_count as f64 / entry.request_count as f64
        };
        let _ = writeln!(
            out,
            "{:<8} {:<46} {:>8} {:>5}({:>5.2}%) {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.1}",
            entry.method,
            entry.name,
            entry.request_count,
            entry.failure_count,
            fail_pct,
            if h.is_empty() { 0.0 } else { h.mean() / 1_000.0 },
            ms(if h.is_empty() { 0 } else { h.min() }),
            ms(h.max()),
            ms(value_or_zero(h, 0.5)),
            entry.requests_per_s(elapsed_s),
        );
    }
    out.push_str("\nResponse time percentiles (ms, exact HDR, 3 significant figures)\n");
    let _ = write!(out, "{:<8} {:<46}", "Type", "Name");
    for q in PERCENTILES_TO_REPORT {
        let _ = write!(out, " {:>8}", percentile_label(q));
    }
    out.push('\n');
    for entry in recorder.entries() {
        let _ = write!(out, "{:<8} {:<46}", entry.method, entry.name);
        for q in PERCENTILES_TO_REPORT {
            let _ = write!(out, " {:>8.2}", ms(value_or_zero(&entry.histogram, q)));
        }
        out.push('\n');
    }
    out.push_str(&performance_block(outcome));
    out
}

/// `50%`, `99.9%`, `100%`: Locust's percentile labels.
pub fn percentile_label(q: f64) -> String {
    let pct = q * 100.0;
    if (pct - pct.round()).abs() < 1e-9 {
        format!("{}%", pct.round() as u64)
    } else {
        let text = format!("{pct:.6}");
        format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
    }
}

fn performance_block(outcome: &LoadOutcome) -> String {
    let assign = room_assignment(&outcome.recorder);
    let p95 = value_or_zero(&assign, 0.95);
    let tick = |ok: bool| if ok { "✓" } else { "✗" };
    let throughput = outcome.bookings_per_s();
    let mut out = String::new();
    out.push_str("\n=== ROOM ASSIGNMENT PERFORMANCE REPORT (real PostgreSQL) ===\n");
    if assign.is_empty() {
        // Nothing was assigned a room (previews only, or every booking rejected): there is no
        // room-assignment latency to judge, which is not the same as missing the target.
        let _ = writeln!(out, "Room assignment: not measured (no booking was assigned a room)");
        let _ = writeln!(out, "Target Met (p95 < 100 ms): n/a");
    } else {
        let _ = writeln!(out, "Room assignment ({} bookings assigned a room):", assign.len());
        let _ = writeln!(out, "Average: {:.2} ms", assign.mean() / 1_000.0);
        let _ = writeln!(out, "p50: {:.2} ms", ms(value_or_zero(&assign, 0.5)));
        let _ = writeln!(out, "p95: {:.2} ms", ms(p95));
        let _ = writeln!(out, "p99: {:.2} ms", ms(value_or_zero(&assign, 0.99)));
        let met = p95 < ROOM_ASSIGNMENT_P95_TARGET_US;
        let _ = writeln!(out, "Target Met (p95 < 100 ms): {}", tick(met));
    }
    for (label, metric) in [("Conflict detection", "conflict"), ("Rules evaluation", "rules")] {
        let h = server_timing(&outcome.recorder, metric);
        let _ = writeln!(
            out,
            "{label} p95 (Server-Timing, {} samples): {:.3} ms",
            h.len(),
            ms(value_or_zero(&h, 0.95))
        );
    }
    let o = &outcome.outcomes;
    let _ = writeln!(out, "Total Appointments Created: {}", o.booked);
    let _ = writeln!(out, "Rejected (409, no feasible room): {}", o.rejected);
    let _ = writeln!(out, "Failed requests: {}", o.failed);
    let ok = throughput >= THROUGHPUT_TARGET_PER_S;
    let _ = writeln!(out, "Throughput: {throughput:.1} bookings/s (target ≥ 20): {}", tick(ok));
    let _ = writeln!(out, "Run time: {:.1} s", outcome.elapsed.as_secs_f64());
    if let Some(reason) = &outcome.stopped_early {
        let _ = writeln!(out, "STOPPED EARLY: {reason}");
    }
    out
}

/// The database-monitoring lines of the text summary.
pub fn monitor_text(m: &MonitorSummary) -> String {
    let mut out = String::from("\n=== DATABASE MONITORING ===\n");
    let _ = writeln!(
        out,
        "samples: {}  active queries max {} mean {:.1}  lock waiters max {}  ungranted locks max {}",
        m.samples.len(),
        m.active_queries_max(),
        m.active_queries_mean(),
        m.lock_waiters_max(),
        m.ungranted_locks_max()
    );
    let _ = writeln!(out, "deadlocks (pg_stat_database delta): {}", m.deadlocks_delta);
    for index in &m.indexes {
        let _ = writeln!(out, "index {}.{}: {} scans", index.table, index.index, index.scans_delta);
    }
    if let Some(error) = &m.error {
        let _ = writeln!(out, "sampler error: {error}");
    }
    out
}

/// Writes every report the flags ask for. Each file is attempted even if an earlier one fails.
pub fn write_all(
    args: &ReportArgs,
    outcome: &LoadOutcome,
    extras: Option<&ReportExtras>,
) -> Result<(), RealError> {
    let empty = ReportExtras::default();
    let extras = extras.unwrap_or(&empty);
    let mut first_error = None;
    if let Some(path) = &args.html {
        let page = html::render(outcome, extras);
        if let Err(e) = std::fs::write(path, page) {
            first_error.get_or_insert(RealError::io(path, e));
        }
    }
    if let Some(prefix) = &args.csv
        && let Err(e) = csv::write_all(prefix, outcome, args.csv_full_history)
    {
        first_error.get_or_insert(e);
    }
    if let Some(path) = &args.hlog
        && let Err(e) = write_interval_log(path, outcome)
    {
        first_error.get_or_insert(e);
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Rewrites the CSV files and the interval log the flags ask for (not the HTML report): what a
/// run leaves behind if it dies before its end. Each file is replaced atomically.
pub fn write_checkpoint(args: &ReportArgs, outcome: &LoadOutcome) -> Result<(), RealError> {
    let files = ReportArgs { html: None, ..args.clone() };
    write_all(&files, outcome, None)
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader (or a run killed mid-write) never sees a half-written file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RealError> {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    let temporary = path.with_file_name(name);
    std::fs::write(&temporary, bytes).map_err(|e| RealError::io(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| RealError::io(path, e))
}

/// An interval-log tag from a request name (tags may not contain spaces or commas).
pub fn tag_of(name: &str) -> String {
    name.chars().map(|c| if c == ' ' || c == ',' { '_' } else { c }).collect()
}

/// Writes the interval log: one histogram per request name and interval, values in µs
/// (`MaxValueDivisor` 1000 so the max column reads in ms).
pub fn write_interval_log(path: &Path, outcome: &LoadOutcome) -> Result<(), RealError> {
    let mut buffer = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let start = UNIX_EPOCH + Duration::from_secs(outcome.started_unix_s);
    let io = |e: std::io::Error| RealError::io(path, e);
    let mut writer = IntervalLogWriterBuilder::new()
        .add_comment("roomsim load: latency in microseconds")
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1_000.0)
        .begin_log_with(&mut buffer, &mut serializer)
        .map_err(io)?;
    let mut deserializer = Deserializer::new();
    for interval in &outcome.recorder.intervals {
        let histogram: Histogram<u64> = deserializer
            .deserialize(&mut interval.encoded.as_slice())
            .expect("the recorder wrote a valid V2 histogram");
        let tag = tag_of(&interval.tag);
        writer
            .write_histogram(
                &histogram,
                Duration::from_millis(interval.start_ms),
                Duration::from_millis(interval.duration_ms),
                Tag::new(&tag),
            )
            .map_err(|e| RealError::Io {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
    }
    drop(writer);
    write_atomically(path, &buffer)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::load::{LoadConfig, Outcomes, Target};
    use crate::workload::Task;

    /// A small outcome with two request names, failures and three intervals.
    pub(crate) fn outcome() -> LoadOutcome {
        let mut recorder = Recorder::new();
        for second in 1..=3_u64 {
            for i in 0..50_u64 {
                let name = Task::Concurrent.request_name();
                recorder.record("POST", name, 2_000 + i * 100 * second, 300, None);
                recorder.record_room_assigned(2_000 + i * 100 * second);
                recorder.record_server_timing("conflict", 150 + i);
                recorder.record_server_timing("rules", 400 + i);
            }
            recorder.record("POST", Task::Rules.request_name(), 900, 500, None);
            recorder.record("POST", Task::Conflict.request_name(), 7_000, 120, Some("HTTP 500"));
            recorder.roll_interval(second * 1_000, 1_700_000_000 + second, 10);
        }
        let config = LoadConfig {
            target: Target::parse("http://127.0.0.1:8000").unwrap(),
            tasks: Task::ALL.to_vec(),
            users: 10,
            spawn_rate_per_s: 10.0,
            run_time: Duration::from_secs(3),
            rate_per_s: None,
            wait_ms: 0,
            seed: 1,
            timeout: Duration::from_secs(1),
            requests_max: 1_000,
            progress: false,
            checkpoint: None,
            connections: Default::default(),
        };
        LoadOutcome {
            recorder,
            outcomes: Outcomes { booked: 150, rejected: 0, previewed: 3, failed: 3 },
            elapsed: Duration::from_secs(3),
            started_unix_s: 1_700_000_000,
            users_max: 10,
            stopped_early: None,
            config,
            rounds: None,
            connections_opened: 10,
        }
    }

    #[test]
    fn percentile_labels_match_locust() {
        let labels: Vec<String> =
            PERCENTILES_TO_REPORT.iter().map(|&q| percentile_label(q)).collect();
        assert_eq!(labels[0], "50%");
        assert_eq!(labels[8], "99.9%");
        assert_eq!(labels[9], "99.99%");
        assert_eq!(labels[10], "100%");
    }

    #[test]
    fn room_assignment_counts_only_bookings_that_got_a_room() {
        let mut rejected_only = outcome();
        rejected_only.recorder = Recorder::new();
        for _ in 0..50 {
            rejected_only.recorder.record(
                "POST",
                "POST /v1/appointments [conflict]",
                900,
                10,
                None,
            );
        }
        let text = text_summary(&rejected_only);
        assert!(text.contains("not measured (no booking was assigned a room)"), "{text}");
        assert!(text.contains("Target Met (p95 < 100 ms): n/a"), "{text}");
        assert!(room_assignment(&rejected_only.recorder).is_empty());
        rejected_only.recorder.record_room_assigned(250_000);
        let text = text_summary(&rejected_only);
        assert!(text.contains("Target Met (p95 < 100 ms): ✗"), "{text}");
        assert!(text.contains("(1 bookings assigned a room)"), "{text}");
    }

    #[test]
    fn text_summary_has_the_performance_block() {
        let text = text_summary(&outcome());
        assert!(text.contains("ROOM ASSIGNMENT PERFORMANCE REPORT"), "{text}");
        assert!(text.contains("Total Appointments Created: 150"), "{text}");
        assert!(text.contains("Target Met (p95 < 100 ms): ✓"), "{text}");
        assert!(text.contains("Aggregated"), "{text}");
    }

    #[test]
    fn interval_log_round_trips() {
        use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
        let dir = std::env::temp_dir().join(format!("roomsim-hlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.hlog");
        let data = outcome();
        write_interval_log(&path, &data).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let mut histograms = 0;
        let mut total = 0;
        for entry in IntervalLogIterator::new(&bytes) {
            if let LogEntry::Interval(h) = entry.unwrap() {
                histograms += 1;
                let decoded = base64_decode(h.encoded_histogram());
                let hist: Histogram<u64> =
                    Deserializer::new().deserialize(&mut decoded.as_slice()).unwrap();
                total += hist.len();
                assert!(h.tag().is_some());
            }
        }
        assert_eq!(histograms, 9, "3 names × 3 intervals");
        assert_eq!(total, 3 * 52);
    }

    fn base64_decode(text: &str) -> Vec<u8> {
        // A tiny decoder for the test, to avoid a dependency.
        let table = |c: u8| -> u32 {
            match c {
                b'A'..=b'Z' => (c - b'A') as u32,
                b'a'..=b'z' => (c - b'a' + 26) as u32,
                b'0'..=b'9' => (c - b'0' + 52) as u32,
                b'+' => 62,
                b'/' => 63,
                _ => panic!("bad base64 {c}"),
            }
        };
        let clean: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
        let mut out = Vec::new();
        for chunk in clean.chunks(4) {
            let mut acc = 0_u32;
            for (i, &c) in chunk.iter().enumerate() {
                acc |= table(c) << (18 - 6 * i);
            }
            let bytes = acc.to_be_bytes();
            out.extend_from_slice(&bytes[1..chunk.len()]);
        }
        out
    }
}
