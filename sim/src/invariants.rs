//! Invariants checked after every run, from the final database state (read from the database
//! side, never through the backend) and the clients' own records.
//!
//! 1. `no_room_overlap` — no two active appointments in one room overlap, turnover included.
//! 2. `no_doctor_double_booking`, `no_patient_double_booking` — visit times of one doctor
//!    (patient) never overlap.
//! 3. `acknowledged_exactly_once` — every booking answered 201 exists exactly once, active.
//! 4. `nothing_unacknowledged` — every active appointment was acknowledged with 201, or
//!    belongs to a booking whose outcome the client never learnt (a recorded timeout, or a
//!    final 503 after its retries: the service said a commit's outcome may be unknown).
//! 5. `assigned_room_satisfies_hard_rules` — an independent oracle from scenario data: room
//!    active (H01), room type allowed (H05), required equipment (H06), accessibility (H08),
//!    airborne isolation (H09). It does not reuse backend-core's rules engine on purpose.
//! 6. `no_raw_db_error` — no client answer carries a database error's SQLSTATE or message.
//! 7. `no_deadlock` — no statement failed with 40P01.
//! 8. `every_request_answered` — every booking ended with an answer or a recorded timeout
//!    (a booker still running when the simulation limit hit violates this).
//! 9. `alternatives_correct` — every alternative a client was offered (409 or `suggest`'s
//!    200) names a room that passes the oracle of 5 for the booking's type and patient, at a
//!    time that does not overlap (turnover included) any booking some client had seen
//!    acknowledged with 201 before this request's answered attempt was sent. Such a booking
//!    committed before the backend read its snapshot, so a correct backend never offers it.
//!    The offered visit's turnover is taken as the type's `turnover_min` (the backend's is
//!    never shorter), so the check can miss an overlap but never invents one. Room-only
//!    suggestions without a time are checked for the room alone.
//! 10. `session_hygiene` — no pooled session is handed out inside a transaction (no BEGIN
//!     meets an open block, WARNING 25001) and none stays in one once the run is quiet.
//!
//! A violation names the rows (appointment ids), the transactions / bookings and the
//! simulated (modelled) times involved. Pairwise checks sort by start and sweep, so they cost
//! O(n log n + overlaps).
//!
//! What they read (rows, the clients' booking records, the database's observations) is
//! defined in `observations`.

use std::collections::BTreeMap;

use scenarios::Scenario;

use crate::observations::{Appointment, BookingKey, BookingRecord, ClientOutcome, DbObservations};
use crate::outcome::{InvariantResult, Violation};

/// Runs every invariant; returns results in a fixed order and the violations found.
pub fn check_all(
    scenario: &Scenario,
    rows: &[Appointment],
    bookings: &[BookingRecord],
    db: &DbObservations,
) -> (Vec<InvariantResult>, Vec<Violation>) {
    let mut violations = Vec::new();
    let active: Vec<&Appointment> = rows.iter().filter(|a| a.active).collect();
    let results = vec![
        overlap(
            "no_room_overlap",
            &active,
            |a| a.room.clone(),
            |a| a.blocked_until_min,
            &mut violations,
        ),
        overlap(
            "no_doctor_double_booking",
            &active,
            |a| Some(a.doctor.clone()),
            |a| a.end_min,
            &mut violations,
        ),
        overlap(
            "no_patient_double_booking",
            &active,
            |a| Some(a.patient.clone()),
            |a| a.end_min,
            &mut violations,
        ),
        acknowledged_exactly_once(&active, bookings, &mut violations),
        nothing_unacknowledged(&active, bookings, &mut violations),
        hard_rules(scenario, &active, &mut violations),
        no_raw_db_error(bookings, &mut violations),
        no_deadlock(db, &mut violations),
        every_request_answered(bookings, &mut violations),
        alternatives_correct(scenario, bookings, &mut violations),
        session_hygiene(db, &mut violations),
    ];
    (results, violations)
}

/// Invariant 10, `session_hygiene`: no session is handed out of the pool inside a transaction (no BEGIN
/// meets an open block: PostgreSQL's WARNING 25001), and none is left in one when the run is
/// quiet. Either means a transaction outlived the request that opened it: its locks are
/// held, and the next user of the session runs inside it.
fn session_hygiene(db: &DbObservations, violations: &mut Vec<Violation>) -> InvariantResult {
    let name = "session_hygiene";
    for (at_us, what) in &db.begin_in_transaction {
        let detail =
            format!("{what} at {at_us} us: a pooled session was handed out inside a transaction");
        push(violations, name, detail);
    }
    for what in &db.open_at_end {
        push(violations, name, format!("{what}: a transaction outlived its request"));
    }
    let bad = (db.begin_in_transaction.len() + db.open_at_end.len()) as u64;
    // Checked: every BEGIN warning the engine could raise and every session at the end; the
    // count of sessions is not known here, so count the findings' opportunities as 1 run.
    InvariantResult { name: name.into(), checked: 1, violations: bad }
}

fn push(violations: &mut Vec<Violation>, invariant: &str, detail: String) {
    violations.push(Violation { invariant: invariant.into(), detail });
}

fn describe(a: &Appointment) -> String {
    format!(
        "appointment {} (room {}, {}-{} blocked to {}, txn {}, written at {} us)",
        a.id,
        a.room.as_deref().unwrap_or("none"),
        hhmm(a.start_min),
        hhmm(a.end_min),
        hhmm(a.blocked_until_min),
        a.txn,
        a.written_at_us
    )
}

fn hhmm(min: u32) -> String {
    format!("{:02}:{:02}", min / 60, min % 60)
}

/// Groups by `group` and reports every pair whose [start, end(a)) ranges intersect.
fn overlap(
    name: &str,
    active: &[&Appointment],
    group: impl Fn(&Appointment) -> Option<String>,
    end: impl Fn(&Appointment) -> u32,
    violations: &mut Vec<Violation>,
) -> InvariantResult {
    // BTreeMap: groups are visited in name order (for determinism).
    let mut groups: BTreeMap<String, Vec<&Appointment>> = BTreeMap::new();
    for a in active {
        if let Some(g) = group(a) {
            groups.entry(g).or_default().push(a);
        }
    }
    let mut bad = 0;
    for list in groups.values_mut() {
        sweep_overlaps(list, &end, |a, b| {
            bad += 1;
            push(violations, name, format!("{} overlaps {}", describe(a), describe(b)));
        });
    }
    InvariantResult { name: name.into(), checked: active.len() as u64, violations: bad }
}

/// Sorts one group by start and calls `found` for every pair whose [start, end(a)) ranges
/// intersect.
fn sweep_overlaps<'a>(
    list: &mut [&'a Appointment],
    end: impl Fn(&Appointment) -> u32,
    mut found: impl FnMut(&'a Appointment, &'a Appointment),
) {
    list.sort_by(|x, y| (x.start_min, &x.id).cmp(&(y.start_min, &y.id)));
    for (i, a) in list.iter().enumerate() {
        // Sorted by start: only later rows starting before `a` ends can overlap it.
        for b in list[i + 1..].iter().take_while(|b| b.start_min < end(a)) {
            found(a, b);
        }
    }
}

/// The ids of the active rows that take part in a room overlap (turnover included): what
/// `no_room_overlap` reports, by row (the run's picture, `run_html`, draws them in red).
pub fn room_overlap_ids(rows: &[Appointment]) -> std::collections::BTreeSet<String> {
    let mut by_room: BTreeMap<&str, Vec<&Appointment>> = BTreeMap::new();
    for a in rows.iter().filter(|a| a.active) {
        if let Some(room) = &a.room {
            by_room.entry(room.as_str()).or_default().push(a);
        }
    }
    let mut ids = std::collections::BTreeSet::new();
    for list in by_room.values_mut() {
        sweep_overlaps(
            list,
            |a| a.blocked_until_min,
            |a, b| {
                ids.insert(a.id.clone());
                ids.insert(b.id.clone());
            },
        );
    }
    ids
}

fn acknowledged_exactly_once(
    active: &[&Appointment],
    bookings: &[BookingRecord],
    violations: &mut Vec<Violation>,
) -> InvariantResult {
    let mut by_id: BTreeMap<&str, u32> = BTreeMap::new();
    for a in active {
        *by_id.entry(a.id.as_str()).or_default() += 1;
    }
    let (mut checked, mut bad) = (0, 0);
    for b in bookings {
        if let ClientOutcome::Created { id, .. } = &b.outcome {
            checked += 1;
            let found = by_id.get(id.as_str()).copied().unwrap_or(0);
            if found != 1 {
                bad += 1;
                let detail = format!(
                    "booking #{} answered 201 id {id} at {} us, but the final state holds it {found} times",
                    b.index, b.answered_at_us
                );
                push(violations, "acknowledged_exactly_once", detail);
            }
        }
    }
    InvariantResult { name: "acknowledged_exactly_once".into(), checked, violations: bad }
}

fn nothing_unacknowledged(
    active: &[&Appointment],
    bookings: &[BookingRecord],
    violations: &mut Vec<Violation>,
) -> InvariantResult {
    let mut acknowledged: BTreeMap<&str, ()> = BTreeMap::new();
    // Unknown-outcome bookings per key: each may have left at most one row behind.
    let mut unknown: BTreeMap<&BookingKey, u32> = BTreeMap::new();
    for b in bookings {
        match &b.outcome {
            ClientOutcome::Created { id, .. } => {
                acknowledged.insert(id.as_str(), ());
            }
            // A final 503 says "retry later"; DATABASE_UNAVAILABLE during COMMIT means the
            // outcome is unknown: like a timeout, it may have left one row.
            ClientOutcome::Unanswered
            | ClientOutcome::Unfinished
            | ClientOutcome::ServerError { status: 503 } => {
                *unknown.entry(&b.key).or_default() += 1
            }
            _ => {}
        }
    }
    let mut bad = 0;
    for a in active {
        if acknowledged.contains_key(a.id.as_str()) {
            continue;
        }
        let key = BookingKey {
            doctor: a.doctor.clone(),
            patient: a.patient.clone(),
            appointment_type: a.appointment_type.clone(),
            start_min: a.start_min,
        };
        match unknown.get_mut(&key) {
            Some(n) if *n > 0 => *n -= 1,
            _ => {
                bad += 1;
                let detail = format!("{} was never acknowledged to any client", describe(a));
                push(violations, "nothing_unacknowledged", detail);
            }
        }
    }
    InvariantResult {
        name: "nothing_unacknowledged".into(),
        checked: active.len() as u64,
        violations: bad,
    }
}

fn hard_rules(
    scenario: &Scenario,
    active: &[&Appointment],
    violations: &mut Vec<Violation>,
) -> InvariantResult {
    let clinic = &scenario.clinic;
    let mut bad = 0;
    for a in active {
        let Some(room_name) = &a.room else { continue };
        let problem = match (
            clinic.rooms.iter().find(|r| &r.name == room_name),
            clinic.appointment_types.iter().find(|t| t.name == a.appointment_type),
        ) {
            (None, _) => Some(format!("room {room_name} is not in the clinic")),
            (_, None) => Some(format!("appointment type {} is unknown", a.appointment_type)),
            (Some(room), Some(kind)) => {
                let patient = clinic.patients.iter().find(|p| p.name == a.patient);
                room_problem(room, kind, patient)
            }
        };
        if let Some(problem) = problem {
            bad += 1;
            push(
                violations,
                "assigned_room_satisfies_hard_rules",
                format!("{}: {problem}", describe(a)),
            );
        }
    }
    InvariantResult {
        name: "assigned_room_satisfies_hard_rules".into(),
        checked: active.len() as u64,
        violations: bad,
    }
}

fn room_problem(
    room: &scenarios::Room,
    kind: &scenarios::AppointmentType,
    patient: Option<&scenarios::Patient>,
) -> Option<String> {
    if room.status != "active" {
        return Some(format!("H01 room is {}", room.status));
    }
    if !kind.room_types.contains(&room.room_type) {
        return Some(format!("H05 room type {} not allowed for {}", room.room_type, kind.name));
    }
    if let Some(missing) = kind.required_equipment.iter().find(|e| !room.equipment.contains(e)) {
        return Some(format!("H06 room lacks required equipment {missing}"));
    }
    let patient = patient?;
    if patient.needs_accessible && !room.accessible {
        return Some("H08 patient needs an accessible room".into());
    }
    if patient.airborne && !room.aiir {
        return Some("H09 airborne patient in a room without negative pressure".into());
    }
    None
}

fn no_raw_db_error(bookings: &[BookingRecord], violations: &mut Vec<Violation>) -> InvariantResult {
    let mut bad = 0;
    for b in bookings {
        if let Some(leak) = &b.leaked {
            bad += 1;
            let detail =
                format!("booking #{} at {} us: client saw {leak}", b.index, b.answered_at_us);
            push(violations, "no_raw_db_error", detail);
        }
    }
    InvariantResult {
        name: "no_raw_db_error".into(),
        checked: bookings.len() as u64,
        violations: bad,
    }
}

fn no_deadlock(db: &DbObservations, violations: &mut Vec<Violation>) -> InvariantResult {
    for (at_us, text) in &db.deadlocks {
        push(violations, "no_deadlock", format!("40P01 at {at_us} us: {text}"));
    }
    InvariantResult {
        name: "no_deadlock".into(),
        checked: 1,
        violations: db.deadlocks.len() as u64,
    }
}

fn every_request_answered(
    bookings: &[BookingRecord],
    violations: &mut Vec<Violation>,
) -> InvariantResult {
    let mut bad = 0;
    for b in bookings.iter().filter(|b| b.outcome == ClientOutcome::Unfinished) {
        bad += 1;
        let detail = format!(
            "booking #{} ({:?}) never ended: no answer and no recorded timeout",
            b.index, b.key
        );
        push(violations, "every_request_answered", detail);
    }
    InvariantResult {
        name: "every_request_answered".into(),
        checked: bookings.len() as u64,
        violations: bad,
    }
}

fn alternatives_correct(
    scenario: &Scenario,
    bookings: &[BookingRecord],
    violations: &mut Vec<Violation>,
) -> InvariantResult {
    let name = "alternatives_correct";
    // Acknowledged bookings in acknowledgement order: (ack time, booking, room, start, blocked).
    let mut acknowledged: Vec<(u64, u32, &str, u32, u32)> = bookings
        .iter()
        .filter(|b| matches!(b.outcome, ClientOutcome::Created { .. }))
        .filter_map(|b| {
            let (room, start, blocked) = b.answer.booked.as_ref()?;
            Some((b.answered_at_us, b.index, room.as_str(), *start, *blocked))
        })
        .collect();
    acknowledged.sort_unstable();
    let clinic = &scenario.clinic;
    let (mut checked, mut bad) = (0, 0);
    for b in bookings {
        let kind = clinic.appointment_types.iter().find(|t| t.name == b.key.appointment_type);
        let patient = clinic.patients.iter().find(|p| p.name == b.key.patient);
        // Bookings acknowledged before this answered attempt was sent.
        let seen = acknowledged.partition_point(|a| a.0 < b.answer.sent_at_us);
        for offered in &b.answer.alternatives {
            checked += 1;
            let when = match offered.visit_min {
                Some((start, end)) => format!("at {}-{}", hhmm(start), hhmm(end)),
                None => "(no time given)".to_string(),
            };
            let room = clinic.rooms.iter().find(|r| r.name == offered.room);
            let problem = match (room, kind) {
                (None, _) => Some(format!("room {} is not in the clinic", offered.room)),
                (_, None) => {
                    Some(format!("appointment type {} is unknown", b.key.appointment_type))
                }
                (Some(room), Some(kind)) => room_problem(room, kind, patient).or_else(|| {
                    let (start, end) = offered.visit_min?;
                    let blocked = end + kind.turnover_min;
                    let clash = acknowledged[..seen]
                        .iter()
                        .find(|a| a.2 == offered.room && a.3 < blocked && start < a.4)?;
                    Some(format!(
                        "overlaps booking #{} ({} {} blocked to {}) acknowledged at {} us",
                        clash.1,
                        clash.2,
                        hhmm(clash.3),
                        hhmm(clash.4),
                        clash.0
                    ))
                }),
            };
            if let Some(problem) = problem {
                bad += 1;
                let detail = format!(
                    "booking #{} (sent at {} us, answered at {} us) was offered room {} {when}: \
                     {problem}",
                    b.index, b.answer.sent_at_us, b.answered_at_us, offered.room
                );
                push(violations, name, detail);
            }
        }
    }
    InvariantResult { name: name.into(), checked, violations: bad }
}

/// Scans an answer body for a leaked database error: a SQLSTATE-looking code next to the word
/// "sqlstate", or a raw PostgreSQL message fragment.
pub fn leaked_db_error(body: &str) -> Option<String> {
    const FRAGMENTS: [&str; 5] = [
        "sqlstate",
        "deadlock detected",
        "could not serialize access",
        "violates exclusion constraint",
        "duplicate key value",
    ];
    // One lower-cased copy, then substring search (measured faster than a case-insensitive
    // window scan over these kilobyte bodies).
    let lower = body.to_ascii_lowercase();
    FRAGMENTS.iter().find(|f| lower.contains(*f)).map(|f| format!("raw database error text `{f}`"))
}

#[cfg(test)]
mod tests;
