//! The outcome of one simulated run: counts, invariant results, violations, histograms.
//!
//! This is what reports render, what `explore` aggregates and what `merge` reads back from
//! JSON. Everything in it is a pure function of (scenario, strategy, seed).

use serde::{Deserialize, Serialize};

use crate::histograms::Histograms;

/// How the client-side requests ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Logical bookings the workload made.
    pub bookings: u64,
    /// HTTP attempts (first tries and retries).
    pub attempts: u64,
    pub created_201: u64,
    /// 201 with `room: null` (`book_without_room` fallback).
    pub room_pending: u64,
    pub conflicts_409: u64,
    /// 409s because no room was free (ROOM_UNAVAILABLE).
    pub room_unavailable: u64,
    /// ROOM_UNAVAILABLE 409s that carried at least one alternative.
    pub conflicts_with_alternatives: u64,
    pub other_4xx: u64,
    pub errors_5xx: u64,
    /// Attempts that got no answer within the request timeout.
    pub timeouts: u64,
    /// Attempts whose connection failed or broke.
    pub connection_failures: u64,
    /// Bookings that ended without a definite answer (after retries): recorded timeouts.
    pub unanswered: u64,
    /// Active appointments in the final database state.
    pub appointments_final: u64,
}

impl Counts {
    /// Adds another run's counts (explore and merge).
    pub fn add(&mut self, o: &Counts) {
        self.bookings += o.bookings;
        self.attempts += o.attempts;
        self.created_201 += o.created_201;
        self.room_pending += o.room_pending;
        self.conflicts_409 += o.conflicts_409;
        self.room_unavailable += o.room_unavailable;
        self.conflicts_with_alternatives += o.conflicts_with_alternatives;
        self.other_4xx += o.other_4xx;
        self.errors_5xx += o.errors_5xx;
        self.timeouts += o.timeouts;
        self.connection_failures += o.connection_failures;
        self.unanswered += o.unanswered;
        self.appointments_final += o.appointments_final;
    }
}

/// Adds invariant results by name, keeping first-seen order.
pub fn add_invariants(total: &mut Vec<InvariantResult>, more: &[InvariantResult]) {
    for r in more {
        match total.iter_mut().find(|t| t.name == r.name) {
            Some(t) => {
                t.checked += r.checked;
                t.violations += r.violations;
            }
            None => total.push(r.clone()),
        }
    }
}

/// One invariant's result for one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvariantResult {
    pub name: String,
    /// Items checked (pairs, rows, requests …).
    pub checked: u64,
    pub violations: u64,
}

/// One violation, naming rows, transactions and simulated times.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub invariant: String,
    pub detail: String,
}

/// A success criterion's verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Criterion {
    pub name: String,
    pub target: String,
    pub actual: String,
    pub met: bool,
}

/// Everything one run produced.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOutcome {
    pub seed: u64,
    pub scenario: String,
    pub strategy: String,
    /// The backend's transaction guard (`late-begin` is a planted bug).
    pub guard: backend_core::db::guard::GuardMode,
    pub trace_hash: String,
    /// Pair patterns (`crate::patterns`): pattern → competing (pair, room) instances.
    pub patterns: std::collections::BTreeMap<String, u64>,
    /// Server statements the patterns could not attribute to a booking (lost in flight).
    pub pattern_statements_unmatched: u64,
    pub counts: Counts,
    pub invariants: Vec<InvariantResult>,
    pub violations: Vec<Violation>,
    pub histograms: Histograms,
    /// Modelled duration of the workload (first send to last answer).
    pub workload_us: u64,
    pub events_count: u64,
    /// Violations caught during the run (`live`), with their modelled times; at most
    /// `live::LIVE_VIOLATIONS_KEPT_MAX` kept, `in_run_count` exact.
    pub in_run: Vec<crate::live::TimedViolation>,
    pub in_run_count: u64,
    /// When the first in-run violation became visible (modelled µs).
    pub first_violation_us: Option<u64>,
    /// Modelled µs the shared cores were held (`[cpu] cores`; `None` without them): the
    /// modelled machine's CPU time.
    pub core_busy_us: Option<u64>,
    /// The part of `core_busy_us` statements held (`model::io::Cores::statement_busy`).
    pub statement_core_us: Option<u64>,
    /// The backend's counters at the end (`/metrics`: bookings by outcome, rooms found
    /// taken inside a transaction, re-allocations, retries), over every incarnation.
    pub backend_metrics: backend_core::metrics::MetricsSnapshot,
}

/// Violations kept per run (the count is exact; details beyond this are dropped).
pub const VIOLATIONS_KEPT_MAX: usize = 20;

impl RunOutcome {
    pub fn invariant_violations(&self, name: &str) -> u64 {
        self.invariants.iter().filter(|i| i.name == name).map(|i| i.violations).sum()
    }

    pub fn passed(&self) -> bool {
        self.invariants.iter().all(|i| i.violations == 0) && self.in_run_count == 0
    }

    /// Bookings per second of modelled time.
    pub fn throughput_per_s(&self) -> f64 {
        throughput_per_s(self.counts.created_201, self.workload_us)
    }
}

/// Created bookings per second of modelled workload time (0 for an empty workload).
pub fn throughput_per_s(created: u64, workload_us: u64) -> f64 {
    if workload_us == 0 { 0.0 } else { created as f64 * 1e6 / workload_us as f64 }
}
