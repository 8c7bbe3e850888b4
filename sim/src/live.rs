//! In-run invariant checks: violations caught at the moment they become visible.
//!
//! The end-of-run checks (`invariants`) read the final database state; these run during the
//! simulation, where they are cheap, and stamp each violation with the modelled time it
//! became visible, naming the bookings, appointments and statements involved:
//!
//! - `no_raw_db_error` — a client answer carries database error text (at response time).
//! - `no_deadlock` — a statement failed with 40P01 (when the backend receives it, from the
//!   db pool's `DeadlockLog`; the driver polls the log between simulation steps).
//! - `no_room_overlap`, `no_doctor_double_booking`, `no_patient_double_booking` — a 201 whose
//!   interval overlaps another acknowledged booking of the same room (turnover included, as
//!   the 201 states it), doctor or patient (at the second 201's arrival).
//!
//! The end-of-run checks stay authoritative and count violations; the in-run ones add *when*.
//! Not checked in-run: `acknowledged_exactly_once`, `nothing_unacknowledged`, hard rules and
//! `every_request_answered`, which need the final state. Every booking acknowledged with 201
//! is taken as active (the workloads never cancel).

use serde::{Deserialize, Serialize};

/// Violations kept per run (the first time is exact even when more were dropped).
pub const LIVE_VIOLATIONS_KEPT_MAX: usize = 20;

/// A violation seen during the run, at a modelled time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedViolation {
    pub at_us: u64,
    pub invariant: String,
    pub detail: String,
}

/// A booking acknowledged with 201, as the client saw it. Times are minutes of the clinic day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acknowledged {
    /// The workload's booking index.
    pub booking: u32,
    /// The appointment id of the 201.
    pub id: String,
    pub room: Option<String>,
    pub doctor: String,
    pub patient: String,
    pub start_min: u32,
    pub end_min: u32,
    /// `end_min` plus the room's turnover as the 201 stated it.
    pub blocked_until_min: u32,
    /// When the 201 arrived (modelled µs).
    pub at_us: u64,
}

/// The checker of one run.
#[derive(Debug, Default)]
pub struct LiveChecker {
    acknowledged: Vec<Acknowledged>,
    kept: Vec<TimedViolation>,
    count: u64,
    first_us: Option<u64>,
    deadlocks_seen: usize,
}

impl LiveChecker {
    /// Violations so far (all of them; at most [`LIVE_VIOLATIONS_KEPT_MAX`] are kept).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The earliest violation time, if any.
    pub fn first_violation_us(&self) -> Option<u64> {
        self.first_us
    }

    /// The kept violations, in the order they were seen.
    pub fn violations(&self) -> &[TimedViolation] {
        &self.kept
    }

    fn push(&mut self, at_us: u64, invariant: &str, detail: String) {
        self.count += 1;
        self.first_us = Some(self.first_us.map_or(at_us, |t| t.min(at_us)));
        if self.kept.len() < LIVE_VIOLATIONS_KEPT_MAX {
            self.kept.push(TimedViolation { at_us, invariant: invariant.into(), detail });
        }
    }

    /// A client answer carried database error text (`what`, from `leaked_db_error`).
    pub fn raw_db_error(&mut self, at_us: u64, booking: u32, attempt: u32, what: &str) {
        let detail = format!("booking #{booking} attempt {attempt} answered at {at_us} us: {what}");
        self.push(at_us, "no_raw_db_error", detail);
    }

    /// New entries of the deadlock log (modelled µs, error text and statement) since the
    /// last call; each is one violation at its own time.
    pub fn deadlocks(&mut self, log: &[(u64, String)]) {
        for (at_us, text) in log.iter().skip(self.deadlocks_seen) {
            self.push(*at_us, "no_deadlock", format!("40P01 at {at_us} us: {text}"));
        }
        self.deadlocks_seen = self.deadlocks_seen.max(log.len());
    }

    /// A 201 arrived: checks it against every booking acknowledged before, then remembers it.
    /// A repeated 201 for the same appointment (an idempotent retry) is not a second booking.
    pub fn created(&mut self, new: Acknowledged) {
        if self.acknowledged.iter().any(|a| a.id == new.id) {
            return;
        }
        let mut found = Vec::new();
        for old in &self.acknowledged {
            let same_room = new.room.is_some() && old.room == new.room;
            if same_room && overlaps(old, &new, |a| a.blocked_until_min) {
                found.push(("no_room_overlap", old));
            }
            if old.doctor == new.doctor && overlaps(old, &new, |a| a.end_min) {
                found.push(("no_doctor_double_booking", old));
            }
            if old.patient == new.patient && overlaps(old, &new, |a| a.end_min) {
                found.push(("no_patient_double_booking", old));
            }
        }
        let found: Vec<(&str, String)> =
            found.into_iter().map(|(name, old)| (name, describe(old))).collect();
        for (name, old) in found {
            let detail = format!("{} overlaps {old} (acknowledged earlier)", describe(&new));
            self.push(new.at_us, name, detail);
        }
        self.acknowledged.push(new);
    }
}

/// Half-open intervals [start, end) overlap — the same rule as the end-of-run sweep.
fn overlaps(a: &Acknowledged, b: &Acknowledged, end: impl Fn(&Acknowledged) -> u32) -> bool {
    a.start_min < end(b) && b.start_min < end(a)
}

fn describe(a: &Acknowledged) -> String {
    format!(
        "booking #{} appointment {} (room {}, doctor {}, patient {}, minutes {}-{} blocked to {}, \
         201 at {} us)",
        a.booking,
        a.id,
        a.room.as_deref().unwrap_or("none"),
        a.doctor,
        a.patient,
        a.start_min,
        a.end_min,
        a.blocked_until_min,
        a.at_us
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(
        booking: u32,
        room: &str,
        doctor: &str,
        patient: &str,
        start: u32,
        end: u32,
    ) -> Acknowledged {
        Acknowledged {
            booking,
            id: format!("id-{booking}"),
            room: (!room.is_empty()).then(|| room.to_string()),
            doctor: doctor.into(),
            patient: patient.into(),
            start_min: start,
            end_min: end,
            blocked_until_min: end + 5,
            at_us: 1_000 * booking as u64,
        }
    }

    /// A room interval overlapping only through the turnover is caught, at the second 201's
    /// time, naming both bookings; back-to-back visits after the turnover are not.
    #[test]
    fn room_overlap_includes_turnover() {
        let mut c = LiveChecker::default();
        c.created(ack(1, "r1", "d1", "p1", 540, 570));
        c.created(ack(2, "r1", "d2", "p2", 575, 600));
        assert_eq!(c.count(), 0, "{:?}", c.violations());
        c.created(ack(3, "r1", "d3", "p3", 572, 574));
        assert_eq!(
            c.count(),
            2,
            "inside 1's turnover and overlapping 2's start: {:?}",
            c.violations()
        );
        let v = &c.violations()[0];
        assert_eq!((v.invariant.as_str(), v.at_us), ("no_room_overlap", 3_000));
        assert!(v.detail.contains("booking #3") && v.detail.contains("booking #1"), "{}", v.detail);
        assert_eq!(c.first_violation_us(), Some(3_000));
    }

    /// Doctor and patient intervals exclude turnover; rooms of different names never clash;
    /// a 201 without a room is checked for doctor and patient only.
    #[test]
    fn doctor_and_patient_overlaps() {
        let mut c = LiveChecker::default();
        c.created(ack(1, "r1", "d1", "p1", 540, 570));
        c.created(ack(2, "r2", "d1", "p2", 570, 600));
        assert_eq!(c.count(), 0, "back to back for the doctor is fine");
        c.created(ack(3, "", "d1", "p3", 560, 565));
        c.created(ack(4, "r3", "d4", "p2", 590, 610));
        let names: Vec<_> = c.violations().iter().map(|v| v.invariant.as_str()).collect();
        assert_eq!(names, ["no_doctor_double_booking", "no_patient_double_booking"]);
    }

    /// An idempotent retry answering the same appointment again is not a double booking.
    #[test]
    fn same_appointment_twice_is_not_a_violation() {
        let mut c = LiveChecker::default();
        c.created(ack(1, "r1", "d1", "p1", 540, 570));
        c.created(ack(1, "r1", "d1", "p1", 540, 570));
        assert_eq!(c.count(), 0);
    }

    /// Deadlock log entries count once each, at their own times; raw errors name the booking.
    #[test]
    fn deadlocks_and_raw_errors() {
        let mut c = LiveChecker::default();
        let mut log = vec![(700, "deadlock detected (statement: UPDATE rooms)".to_string())];
        c.deadlocks(&log);
        c.deadlocks(&log);
        log.push((650, "deadlock detected (statement: SELECT 1)".into()));
        c.deadlocks(&log);
        assert_eq!(c.count(), 2);
        assert_eq!(c.first_violation_us(), Some(650));
        c.raw_db_error(900, 7, 1, "raw database error text `sqlstate`");
        let last = c.violations().last().unwrap();
        assert_eq!(last.invariant, "no_raw_db_error");
        assert!(last.detail.contains("booking #7 attempt 1"), "{}", last.detail);
    }

    /// Only the first LIVE_VIOLATIONS_KEPT_MAX are kept; the count stays exact.
    #[test]
    fn kept_violations_are_bounded() {
        let mut c = LiveChecker::default();
        for i in 0..(LIVE_VIOLATIONS_KEPT_MAX as u64 + 5) {
            c.raw_db_error(i, 0, 0, "x");
        }
        assert_eq!(c.violations().len(), LIVE_VIOLATIONS_KEPT_MAX);
        assert_eq!(c.count(), LIVE_VIOLATIONS_KEPT_MAX as u64 + 5);
    }
}
