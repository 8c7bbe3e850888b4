//! The results of a finished run: the final rows and the database's observations (folding
//! the db server's statement trace into the run's trace), the end-of-run invariants, the
//! counts, and the [`RunOutcome`] with its trace hash.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::error::SimError;
use crate::histograms::{Histograms, Metric};
use crate::ids::ClinicIds;
use crate::invariants;
use crate::model_db::{ConnId, SETUP_LEASE, TapEntry};
use crate::observations::{
    AnswerDetail, Appointment, BookingKey, BookingRecord, ClientOutcome, DbObservations,
};
use crate::outcome::{Counts, RunOutcome, VIOLATIONS_KEPT_MAX};
use crate::patterns::Recorder;
use crate::timeline::{StatementEvent, Timeline};
use crate::timescale::{TIME_SCALE, modelled_us};
use crate::trace::{Event, SharedTrace};
use crate::workload::PlannedBooking;
use model::SessionId;

use super::config::RunConfig;
use super::engine;
use super::shared::{DbSide, Shared};

/// A finished run.
#[derive(Debug)]
pub struct RunResult {
    pub outcome: RunOutcome,
    pub events: Vec<Event>,
    /// turmoil steps the run took (one per tick): what stepping alone costs, see
    /// `benches/floor.rs`.
    pub steps: u64,
    /// The final rows and the db's statements, for `--html` (kept only with the trace:
    /// `RunConfig::keep_trace`; the hash is the same either way).
    pub timeline: Option<Timeline>,
    /// HTTP connections of the run (not in the report: the report is the same whatever
    /// counted them).
    pub connections: ConnectionCounts,
}

/// HTTP connections between the clients and the backend in one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionCounts {
    /// Connections the bookers opened (connect succeeded).
    pub opened_by_clients: u64,
    /// Connections the backend's accept loop accepted.
    pub accepted_by_backend: u64,
}

/// The final rows and what the database observed; folds the db server's statement trace
/// into the run's trace (hash), into `statements` when given (for `--html`; the hash does
/// not see it), and, beside the backend's statement tap, into the run's pair patterns.
fn db_results(
    side: &DbSide,
    open_at_end: &[String],
    ids: &ClinicIds,
    trace: &SharedTrace,
    histograms: &Arc<Mutex<Histograms>>,
    mut statements: Option<&mut Vec<StatementEvent>>,
) -> Result<(Vec<Appointment>, DbObservations, RunPatterns), SimError> {
    let DbSide { engine, servers, deadlocks, .. } = side;
    {
        {
            let mut attribution = Attribution::new(side);
            let mut trace = trace.lock().expect("trace");
            let mut histograms = histograms.lock().expect("histograms");
            for (server_index, server) in servers.borrow().iter().enumerate() {
                // Lock wait: a statement's "blocked" event to its session's "completed" event.
                // BTreeMap: looked up by session only (for determinism anyway).
                let mut blocked_at: BTreeMap<u32, u64> = BTreeMap::new();
                for event in server.trace() {
                    let at_us = event.at_us / TIME_SCALE as u64;
                    if event.outcome == "blocked" {
                        blocked_at.insert(event.session, at_us);
                    } else if event.outcome.starts_with("completed")
                        && let Some(since) = blocked_at.remove(&event.session)
                    {
                        histograms.record(Metric::LockWait, at_us - since);
                    }
                    attribution.event(event.session, event.kind, &event.outcome);
                    trace.record(at_us, "db", event.to_string());
                    if let Some(statements) = statements.as_deref_mut() {
                        statements.push(StatementEvent {
                            at_us,
                            server: server_index,
                            session: event.session,
                            kind: event.kind,
                            fingerprint: event.fingerprint.clone(),
                            outcome: event.outcome.clone(),
                        });
                    }
                }
            }
            drop(trace);
            let rows = engine::final_rows(&mut engine.borrow_mut(), ids)?;
            let deadlocks = deadlocks.lock().expect("deadlock log").clone();
            let warnings = engine.borrow_mut().take_warnings().into_iter().map(|w| {
                let at_us = modelled_us(w.at);
                (at_us, format!("session {}: WARNING {} {}", w.session, w.code, w.message))
            });
            let begin_in_transaction = warnings.collect();
            let open_at_end = open_at_end.to_vec();
            let patterns = attribution.finish();
            Ok((rows, DbObservations { deadlocks, begin_in_transaction, open_at_end }, patterns))
        }
    }
}

pub(super) fn finish(
    config: &RunConfig,
    plan: &[PlannedBooking],
    shared: Shared,
    side: &DbSide,
    steps: u64,
) -> Result<RunResult, SimError> {
    let records: Vec<BookingRecord> = shared
        .records
        .borrow()
        .iter()
        .zip(plan)
        .map(|(record, b)| record.clone().unwrap_or_else(|| unfinished(b)))
        .collect();
    let ids = ClinicIds::new(&config.scenario);
    let open_at_end = shared.open_at_end.borrow().clone();
    let mut statements = config.keep_trace.then(Vec::new);
    let (rows, observed, patterns) = db_results(
        side,
        &open_at_end,
        &ids,
        &shared.trace,
        &shared.histograms,
        statements.as_mut(),
    )?;
    let (invariants, mut violations) =
        invariants::check_all(&config.scenario, &rows, &records, &observed);
    violations.truncate(VIOLATIONS_KEPT_MAX);
    let trace = shared.trace.lock().expect("trace");
    // The hosts (and their handles on the histograms) went with the sim: take them whole
    // rather than copy five HdrHistograms; copy only if something still holds them.
    let histograms = match Arc::try_unwrap(shared.histograms) {
        Ok(only) => only.into_inner().expect("histograms"),
        Err(still_shared) => still_shared.lock().expect("histograms").clone(),
    };
    let live = shared.live.borrow();
    let outcome = RunOutcome {
        seed: config.seed,
        scenario: config.scenario.name.clone(),
        strategy: config.strategy.clone(),
        guard: config.guard,
        trace_hash: trace.hash_hex(),
        patterns: patterns.patterns,
        pattern_statements_unmatched: patterns.unmatched,
        counts: counts(&records, &rows),
        invariants,
        violations,
        histograms,
        workload_us: records.iter().map(|r| r.answered_at_us).max().unwrap_or(0),
        events_count: trace.events_count(),
        in_run: live.violations().to_vec(),
        in_run_count: live.count(),
        first_violation_us: live.first_violation_us(),
        core_busy_us: side.cores.as_ref().map(|c| modelled_us(c.busy())),
        statement_core_us: side.cores.as_ref().map(|c| modelled_us(c.statement_busy())),
        backend_metrics: shared.backend_metrics.snapshot(),
    };
    let row_inserts = match statements {
        Some(_) => engine::appointment_inserts(&mut side.engine.borrow_mut())?,
        None => Vec::new(),
    };
    let timeline = statements.map(|statements| Timeline {
        rows,
        statements,
        deadlocks: observed.deadlocks.clone(),
        row_inserts,
    });
    let connections = ConnectionCounts {
        opened_by_clients: shared.connections_opened.get(),
        accepted_by_backend: shared.connections_accepted.load(std::sync::atomic::Ordering::Relaxed),
    };
    Ok(RunResult { outcome, events: trace.events().to_vec(), steps, timeline, connections })
}

/// A run's pair patterns (`crate::patterns`) and the server statements that could not be
/// put beside the lease that sent them.
struct RunPatterns {
    patterns: BTreeMap<String, u64>,
    unmatched: u64,
}

/// Puts the server's trace (when each statement took effect) beside the backend's tap (which
/// lease sent it): the db host noted each session's peer address in session-id order, the
/// tap each statement's connection, in the order sent. A session whose next statement is
/// not of the kind the tap expects (a connection whose statements were lost in flight) is
/// left out from there on, and its statements are counted as unmatched.
struct Attribution {
    recorder: Recorder,
    /// Session → the statements its connection sent, not yet seen in the trace.
    queues: BTreeMap<SessionId, VecDeque<TapEntry>>,
    /// Session → its statement waiting for a lock.
    waiting: BTreeMap<SessionId, TapEntry>,
    unmatched: u64,
}

impl Attribution {
    fn new(side: &DbSide) -> Attribution {
        let opened = side.opened.borrow();
        // The run is over: a session opened now takes the next id, which tells the first id
        // the db host's sessions got (they were opened one after another, nothing between).
        let next = {
            let mut engine = side.engine.borrow_mut();
            let next = engine.open_session();
            engine.close_session(next);
            next
        };
        let first = next - opened.len() as SessionId;
        let mut per_conn: BTreeMap<ConnId, VecDeque<TapEntry>> = BTreeMap::new();
        for entry in std::mem::take(&mut side.tap.lock().expect("tap").entries) {
            per_conn.entry(entry.conn).or_default().push_back(entry);
        }
        let mut nth: BTreeMap<std::net::SocketAddr, u32> = BTreeMap::new();
        let mut queues = BTreeMap::new();
        for (i, peer) in opened.iter().enumerate() {
            let n = nth.entry(*peer).or_default();
            let queue = per_conn.remove(&(*peer, *n)).unwrap_or_default();
            *n += 1;
            queues.insert(first + i as SessionId, queue);
        }
        Attribution { recorder: Recorder::new(), queues, waiting: BTreeMap::new(), unmatched: 0 }
    }

    fn event(&mut self, session: SessionId, kind: &str, outcome: &str) {
        if kind == "terminate" {
            // The server ended an idle session (idle-in-transaction timeout): nothing follows.
            self.queues.remove(&session);
            return;
        }
        if let Some(done) = outcome.strip_prefix("completed ") {
            match self.waiting.remove(&session) {
                Some(entry) => self.recorder.statement(entry.lease, &entry.statement, done != "ok"),
                None => self.unmatched += 1,
            }
            return;
        }
        let Some(queue) = self.queues.get_mut(&session) else {
            self.unmatched += 1;
            return;
        };
        match queue.pop_front() {
            // A connection's set-up: no request's statement, in no pattern.
            Some(entry) if entry.kind == kind && entry.lease == SETUP_LEASE => {}
            Some(entry) if entry.kind == kind => {
                if outcome == "blocked" {
                    self.recorder.blocked(entry.lease, &entry.statement);
                    self.waiting.insert(session, entry);
                } else {
                    self.recorder.statement(entry.lease, &entry.statement, outcome != "ok");
                }
            }
            _ => {
                self.queues.remove(&session);
                self.unmatched += 1;
            }
        }
    }

    fn finish(self) -> RunPatterns {
        RunPatterns { patterns: self.recorder.patterns(), unmatched: self.unmatched }
    }
}

fn unfinished(b: &PlannedBooking) -> BookingRecord {
    let key = BookingKey {
        doctor: b.doctor.clone(),
        patient: b.patient.clone(),
        appointment_type: b.appointment_type.clone(),
        start_min: b.start_min,
    };
    let outcome = ClientOutcome::Unfinished;
    BookingRecord {
        index: b.index,
        key,
        outcome,
        answered_at_us: 0,
        leaked: None,
        attempts: 0,
        timeouts: 0,
        lost: 0,
        answer: AnswerDetail::default(),
    }
}

fn counts(records: &[BookingRecord], rows: &[Appointment]) -> Counts {
    let mut c = Counts { bookings: records.len() as u64, ..Counts::default() };
    for r in records {
        c.attempts += r.attempts as u64;
        c.timeouts += r.timeouts as u64;
        c.connection_failures += r.lost as u64;
        match &r.outcome {
            ClientOutcome::Created { room, .. } => {
                c.created_201 += 1;
                c.room_pending += room.is_none() as u64;
            }
            ClientOutcome::Conflict { alternatives, room_unavailable } => {
                c.conflicts_409 += 1;
                c.room_unavailable += *room_unavailable as u64;
                c.conflicts_with_alternatives += (*room_unavailable && *alternatives > 0) as u64;
            }
            ClientOutcome::Rejected { .. } => c.other_4xx += 1,
            ClientOutcome::ServerError { .. } => c.errors_5xx += 1,
            ClientOutcome::Unanswered | ClientOutcome::Unfinished => c.unanswered += 1,
        }
    }
    c.appointments_final = rows.iter().filter(|a| a.active).count() as u64;
    c
}
