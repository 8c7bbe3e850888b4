//! The driver loop: steps the world one tick at a time, applies the scenario's faults at
//! their modelled times (link loss, backend crash, partition, db crash), feeds 40P01s to the
//! in-run checks, and once the clients are done lets open transactions settle.

use scenarios::{Fault, Link, Scenario};

use crate::error::SimError;
use crate::timescale::{modelled_us, scaled_ms};
use crate::trace::SharedTrace;

use super::shared::{DbSide, Shared};

/// A fault action at a modelled time.
enum Action {
    LinkFailRate(Link, f64),
    CrashBackend,
    RestartBackend,
    Partition,
    Repair,
    CrashDb,
    RestartDb,
}

fn schedule(scenario: &Scenario) -> Vec<(u64, Action)> {
    let mut out = Vec::new();
    for fault in &scenario.faults {
        let (at_us, end_us) = (fault.at_ms() * 1_000, fault.end_ms() * 1_000);
        match fault {
            Fault::Loss { link, rate, .. } => {
                out.push((at_us, Action::LinkFailRate(*link, *rate)));
                out.push((end_us, Action::LinkFailRate(*link, 0.0)));
            }
            Fault::BackendCrash { .. } => {
                out.push((at_us, Action::CrashBackend));
                out.push((end_us, Action::RestartBackend));
            }
            Fault::Partition { .. } => {
                out.push((at_us, Action::Partition));
                out.push((end_us, Action::Repair));
            }
            Fault::DbCrash { .. } => {
                out.push((at_us, Action::CrashDb));
                out.push((end_us, Action::RestartDb));
            }
            // Acted on by the clients themselves (`client_faults`) and by the backend's db
            // adapter (`model_db::DbDrops`).
            Fault::ClientAbort { .. }
            | Fault::SlowClients { .. }
            | Fault::DbConnectionDrop { .. } => {}
        }
    }
    // Stable sort: equal times keep file order (for determinism).
    out.sort_by_key(|(at, _)| *at);
    out
}

fn apply(
    sim: &mut turmoil::Sim<'static>,
    action: &Action,
    trace: &SharedTrace,
    at_us: u64,
    side: &DbSide,
) {
    let engine = &side.engine;
    let text = match action {
        Action::LinkFailRate(link, rate) => {
            let (a, b) = match link {
                Link::ClientsBackend => ("clients", "backend"),
                Link::BackendDb => ("backend", "db"),
            };
            sim.set_link_fail_rate(a, b, *rate);
            format!("fault loss {a}<->{b} rate {rate}")
        }
        Action::Partition => {
            sim.partition("backend", "db");
            "fault partition backend<->db".to_string()
        }
        Action::Repair => {
            sim.repair("backend", "db");
            "fault repair backend<->db".to_string()
        }
        Action::CrashDb => {
            sim.crash("db");
            // In-flight transactions abort; committed data survives.
            engine.borrow_mut().crash_restart();
            "fault crash db".to_string()
        }
        Action::RestartDb => {
            sim.bounce("db");
            "fault restart db".to_string()
        }
        Action::CrashBackend => {
            sim.crash("backend");
            "fault crash backend".to_string()
        }
        Action::RestartBackend => {
            sim.bounce("backend");
            "fault restart backend".to_string()
        }
    };
    trace.lock().expect("trace").record(at_us, "driver", text);
}

/// Steps the world, applying faults on time. A run that hits the simulation limit is not an
/// error: its unfinished bookings become `every_request_answered` violations.
pub(super) fn drive(
    sim: &mut turmoil::Sim<'static>,
    scenario: &Scenario,
    shared: &Shared,
    side: &DbSide,
) -> Result<(), SimError> {
    let trace = &shared.trace;
    let actions = schedule(scenario);
    let mut next = 0;
    let limit = scaled_ms(scenario.limits.simulation_ms_max);
    loop {
        let at_us = modelled_us(sim.elapsed());
        while next < actions.len() && actions[next].0 <= at_us {
            apply(sim, &actions[next].1, trace, at_us, side);
            next += 1;
        }
        let stepped = sim.step();
        // A 40P01 is an in-run violation from the moment the backend received it.
        let log = side.deadlocks.lock().expect("deadlock log");
        if !log.is_empty() {
            shared.live.borrow_mut().deadlocks(&log);
        }
        drop(log);
        match stepped {
            Ok(true) => return settle(sim, shared, side),
            Ok(false) => {}
            Err(_) if sim.elapsed() >= limit => return Ok(()),
            Err(e) => return Err(SimError::HostFailed(e.to_string())),
        }
    }
}

/// Modelled time the world may take, after the last client finished, for every session to
/// leave its transaction: twice the statement timeout, so a handler the client abandoned can
/// finish or fail its statement and be dropped.
pub const SETTLE_MS_MAX: u64 = 2 * crate::model_db::STATEMENT_TIMEOUT_MS;

/// After the clients are done: steps on (only while some session is still inside a
/// transaction, at most [`SETTLE_MS_MAX`]) and records the sessions still in one, which the
/// `session_hygiene` invariant reports: a session idle in a transaction when nothing runs
/// any more was leaked (`pg_stat_activity`'s `idle in transaction`). A run that settles at
/// once takes no extra step, so its trace is what it was without this check.
fn settle(sim: &mut turmoil::Sim<'static>, shared: &Shared, side: &DbSide) -> Result<(), SimError> {
    let engine = &side.engine;
    let deadline = sim.elapsed() + scaled_ms(SETTLE_MS_MAX);
    loop {
        let open = engine.borrow().open_transactions();
        if open.is_empty() || sim.elapsed() >= deadline {
            let described = open.iter().map(|t| {
                let state = match (t.waiting, t.aborted) {
                    (true, _) => "active (waiting for a lock)",
                    (false, true) => "idle in transaction (aborted)",
                    (false, false) => "idle in transaction",
                };
                format!(
                    "session {} {state} {} ms after the last client finished",
                    t.session, SETTLE_MS_MAX
                )
            });
            *shared.open_at_end.borrow_mut() = described.collect();
            return Ok(());
        }
        if sim.step().is_err() {
            // The simulation limit: report what is open now.
            let open = engine.borrow().open_transactions();
            let described = open.iter().map(|t| {
                format!("session {} still in a transaction at the simulation limit", t.session)
            });
            *shared.open_at_end.borrow_mut() = described.collect();
            return Ok(());
        }
    }
}
