//! Counters and latency histograms exposed at `GET /metrics` in Prometheus text format.
//!
//! WHAT: [`Metrics`] holds lock-free counters (bookings by outcome, room conflicts met inside
//! transactions, re-allocations after every candidate was taken, retries by cause, idempotent
//! replays) and fixed-bucket latency histograms for the three Server-Timing phases (rules,
//! conflict detection, database) and whole requests.
//! [`Metrics::render`] writes the Prometheus exposition text; policy-cache hit/miss counts are
//! passed in by the caller, which owns the cache.
//!
//! WHY: the figures the simulation compares against real PostgreSQL (conflicts, retries,
//! cache effectiveness, phase latencies) must be observable on a running backend too.
//!
//! NOT MODELLED: per-route or per-clinic labels; exemplars. Bucket bounds are fixed (µs) and
//! chosen around the 50 ms booking budget.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Hits and misses of one memo of the parsed-body cache (`booking::body_cache::BodyCache`),
/// by entity kind. Defined here, with its renderer, so `metrics` needs nothing from `booking`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoCounts {
    pub kind: &'static str,
    pub hits: u64,
    pub misses: u64,
}

/// Upper bounds (µs) of the histogram buckets; the last bucket is `+Inf`.
pub const BUCKET_BOUNDS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];
const _: () = assert!(BUCKET_BOUNDS_US[0] > 0, "bucket bounds start above zero");

/// A Prometheus-style cumulative histogram over microseconds.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Non-cumulative counts per bucket; index `BUCKET_BOUNDS_US.len()` is `+Inf`.
    counts: [AtomicU64; BUCKET_BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn record(&self, duration: Duration) {
        let us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let index = BUCKET_BOUNDS_US.partition_point(|bound| *bound < us);
        self.counts[index].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (index, bound) in BUCKET_BOUNDS_US.iter().enumerate() {
            cumulative += self.counts[index].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {cumulative}", seconds(*bound));
        }
        cumulative += self.counts[BUCKET_BOUNDS_US.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum_us = self.sum_us.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_sum {}", seconds(sum_us));
        let _ = writeln!(out, "{name}_count {}", self.count());
    }
}

/// Microseconds as a decimal number of seconds, exactly (no float rounding).
fn seconds(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// How a booking request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BookingOutcome {
    Booked,
    RoomPending,
    Rejected,
    Replayed,
    Failed,
}

/// Why a transaction was retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryCause {
    SerializationFailure,
    Deadlock,
    /// A concurrent request committed the same Idempotency-Key first (unique violation).
    IdempotencyRace,
    /// A non-exclusion strategy met the room exclusion constraint anyway (guarded schema).
    RoomTaken,
}

/// Plain counter values, for tests and for the simulation's reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub bookings_booked: u64,
    pub bookings_room_pending: u64,
    pub bookings_rejected: u64,
    pub bookings_replayed: u64,
    pub bookings_failed: u64,
    pub room_conflicts: u64,
    /// Fresh snapshots read and allocated after a transaction found every candidate taken.
    pub reallocations: u64,
    pub retries_serialization: u64,
    pub retries_deadlock: u64,
    pub retries_idempotency: u64,
    pub retries_room_taken: u64,
    pub retries_exhausted: u64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    bookings: [AtomicU64; 5],
    room_conflicts: AtomicU64,
    reallocations: AtomicU64,
    retries: [AtomicU64; 4],
    retries_exhausted: AtomicU64,
    pub rules_latency: Histogram,
    pub conflict_latency: Histogram,
    pub db_latency: Histogram,
    pub request_latency: Histogram,
}

const OUTCOME_LABELS: [&str; 5] = ["booked", "room_pending", "rejected", "replayed", "failed"];
const RETRY_LABELS: [&str; 4] =
    ["serialization_failure", "deadlock", "idempotency_race", "room_taken"];

impl Metrics {
    pub fn booking(&self, outcome: BookingOutcome) {
        self.bookings[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A room found taken inside the transaction (23P01 or a positive overlap check).
    pub fn room_conflict(&self) {
        self.room_conflicts.fetch_add(1, Ordering::Relaxed);
    }

    /// A fresh snapshot read and allocated again because every candidate was taken.
    pub fn reallocation(&self) {
        self.reallocations.fetch_add(1, Ordering::Relaxed);
    }

    pub fn retry(&self, cause: RetryCause) {
        self.retries[cause as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn retries_exhausted(&self) {
        self.retries_exhausted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MetricsSnapshot {
            bookings_booked: load(&self.bookings[0]),
            bookings_room_pending: load(&self.bookings[1]),
            bookings_rejected: load(&self.bookings[2]),
            bookings_replayed: load(&self.bookings[3]),
            bookings_failed: load(&self.bookings[4]),
            room_conflicts: load(&self.room_conflicts),
            reallocations: load(&self.reallocations),
            retries_serialization: load(&self.retries[0]),
            retries_deadlock: load(&self.retries[1]),
            retries_idempotency: load(&self.retries[2]),
            retries_room_taken: load(&self.retries[3]),
            retries_exhausted: load(&self.retries_exhausted),
        }
    }

    /// Prometheus text exposition. `cache_hits` / `cache_misses` come from the policy cache,
    /// `bodies` from the parsed-body cache (one entry per entity kind).
    pub fn render(&self, cache_hits: u64, cache_misses: u64, bodies: &[MemoCounts]) -> String {
        let mut out = String::with_capacity(4096);
        let load = |counters: &[AtomicU64]| -> Vec<u64> {
            counters.iter().map(|c| c.load(Ordering::Relaxed)).collect()
        };
        let bookings = load(&self.bookings);
        let (name, help) = ("roomsim_bookings_total", "Booking requests by outcome.");
        labelled_counter(&mut out, (name, help, "outcome"), &OUTCOME_LABELS, &bookings);
        let conflicts = self.room_conflicts.load(Ordering::Relaxed);
        let help = "Rooms found taken inside a booking transaction.";
        counter(&mut out, "roomsim_room_conflicts_total", help, conflicts);
        let reallocations = self.reallocations.load(Ordering::Relaxed);
        let help = "Snapshots re-read and re-allocated because every candidate room was taken.";
        counter(&mut out, "roomsim_reallocations_total", help, reallocations);
        let retries = load(&self.retries);
        let (name, help) = ("roomsim_retries_total", "Transaction retries by cause.");
        labelled_counter(&mut out, (name, help, "cause"), &RETRY_LABELS, &retries);
        let exhausted = self.retries_exhausted.load(Ordering::Relaxed);
        let help = "Requests that ran out of retries.";
        counter(&mut out, "roomsim_retries_exhausted_total", help, exhausted);
        counter(&mut out, "roomsim_policy_cache_hits_total", "Policy cache hits.", cache_hits);
        let help = "Policy cache misses.";
        counter(&mut out, "roomsim_policy_cache_misses_total", help, cache_misses);
        let kinds: Vec<&str> = bodies.iter().map(|memo| memo.kind).collect();
        let hits: Vec<u64> = bodies.iter().map(|memo| memo.hits).collect();
        let misses: Vec<u64> = bodies.iter().map(|memo| memo.misses).collect();
        let (name, help) = ("roomsim_body_cache_hits_total", "Stored bodies found parsed already.");
        labelled_counter(&mut out, (name, help, "kind"), &kinds, &hits);
        let (name, help) = ("roomsim_body_cache_misses_total", "Stored bodies parsed.");
        labelled_counter(&mut out, (name, help, "kind"), &kinds, &misses);
        self.rules_latency.render(
            &mut out,
            "roomsim_rules_duration_seconds",
            "Rules evaluation time per request.",
        );
        self.conflict_latency.render(
            &mut out,
            "roomsim_conflict_duration_seconds",
            "Conflict detection time per request.",
        );
        self.db_latency.render(
            &mut out,
            "roomsim_db_duration_seconds",
            "Database time per request.",
        );
        self.request_latency.render(
            &mut out,
            "roomsim_request_duration_seconds",
            "Whole booking request time.",
        );
        out
    }
}

/// One counter family with a label: `(name, help, label name)`, label values and counts.
fn labelled_counter(out: &mut String, family: (&str, &str, &str), labels: &[&str], values: &[u64]) {
    let (name, help, label) = family;
    assert_eq!(labels.len(), values.len(), "{name}: one value per label");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (value_label, value) in labels.iter().zip(values) {
        let _ = writeln!(out, "{name}{{{label}=\"{value_label}\"}} {value}");
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_exact() {
        let histogram = Histogram::default();
        histogram.record(Duration::from_micros(40));
        histogram.record(Duration::from_micros(100));
        histogram.record(Duration::from_millis(3));
        histogram.record(Duration::from_secs(5));
        let mut out = String::new();
        histogram.render(&mut out, "h", "help");
        assert!(out.contains("h_bucket{le=\"0.000050\"} 1\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"0.000100\"} 2\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"0.005000\"} 3\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"1.000000\"} 3\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("h_sum 5.003140\n"), "{out}");
        assert!(out.contains("h_count 4\n"), "{out}");
    }

    #[test]
    fn counters_render_with_labels() {
        let metrics = Metrics::default();
        metrics.booking(BookingOutcome::Booked);
        metrics.booking(BookingOutcome::Booked);
        metrics.retry(RetryCause::Deadlock);
        let bodies = [
            MemoCounts { kind: "clinic", hits: 5, misses: 1 },
            MemoCounts { kind: "room", hits: 0, misses: 3 },
        ];
        let text = metrics.render(7, 2, &bodies);
        assert!(text.contains("roomsim_body_cache_hits_total{kind=\"clinic\"} 5\n"), "{text}");
        assert!(text.contains("roomsim_body_cache_misses_total{kind=\"room\"} 3\n"), "{text}");
        assert!(text.contains("roomsim_bookings_total{outcome=\"booked\"} 2\n"));
        assert!(text.contains("roomsim_retries_total{cause=\"deadlock\"} 1\n"));
        assert!(text.contains("roomsim_policy_cache_hits_total 7\n"));
        assert_eq!(metrics.snapshot().bookings_booked, 2);
    }
}
