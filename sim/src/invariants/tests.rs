//! Each invariant is shown to fire on a hand-built bad state and to stay quiet on a good one.

use super::*;
use crate::observations::{AnswerDetail, OfferedAlternative};

fn storm() -> Scenario {
    Scenario::builtin("storm").unwrap().scenario
}

fn appt(id: &str, room: &str, doctor: &str, patient: &str, start: u32) -> Appointment {
    Appointment {
        id: id.into(),
        room: Some(room.into()),
        doctor: doctor.into(),
        patient: patient.into(),
        appointment_type: "consult".into(),
        start_min: start,
        end_min: start + 30,
        blocked_until_min: start + 35,
        active: true,
        txn: format!("txn-{id}"),
        written_at_us: 100,
    }
}

fn created(index: u32, a: &Appointment) -> BookingRecord {
    BookingRecord {
        index,
        key: BookingKey {
            doctor: a.doctor.clone(),
            patient: a.patient.clone(),
            appointment_type: a.appointment_type.clone(),
            start_min: a.start_min,
        },
        outcome: ClientOutcome::Created { id: a.id.clone(), room: a.room.clone() },
        answered_at_us: 500,
        leaked: None,
        attempts: 1,
        timeouts: 0,
        lost: 0,
        answer: AnswerDetail {
            sent_at_us: 100,
            booked: a.room.clone().map(|room| (room, a.start_min, a.blocked_until_min)),
            alternatives: Vec::new(),
        },
    }
}

fn violated(results: &[InvariantResult]) -> Vec<&str> {
    results.iter().filter(|r| r.violations > 0).map(|r| r.name.as_str()).collect()
}

#[test]
fn a_clean_state_passes_everything() {
    let rows = vec![
        appt("a1", "room-01", "doctor-01", "patient-001", 540),
        appt("a2", "room-01", "doctor-02", "patient-002", 575), // starts exactly at turnover end
    ];
    let bookings: Vec<_> = rows.iter().enumerate().map(|(i, a)| created(i as u32, a)).collect();
    let (results, violations) = check_all(&storm(), &rows, &bookings, &DbObservations::default());
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!(results.len(), 11);
}

#[test]
fn turnover_overlap_in_a_room_is_a_double_booking() {
    let rows = vec![
        appt("a1", "room-01", "doctor-01", "patient-001", 540),
        appt("a2", "room-01", "doctor-02", "patient-002", 570), // inside a1's turnover
    ];
    let bookings: Vec<_> = rows.iter().enumerate().map(|(i, a)| created(i as u32, a)).collect();
    let (results, violations) = check_all(&storm(), &rows, &bookings, &DbObservations::default());
    assert_eq!(violated(&results), vec!["no_room_overlap"]);
    assert!(violations[0].detail.contains("a1") && violations[0].detail.contains("a2"));
    assert!(violations[0].detail.contains("txn-a2"), "names the transactions");
}

#[test]
fn doctor_and_patient_double_bookings_are_found() {
    let rows = vec![
        appt("a1", "room-01", "doctor-01", "patient-001", 540),
        appt("a2", "room-02", "doctor-01", "patient-001", 550),
    ];
    let bookings: Vec<_> = rows.iter().enumerate().map(|(i, a)| created(i as u32, a)).collect();
    let (results, _) = check_all(&storm(), &rows, &bookings, &DbObservations::default());
    assert_eq!(violated(&results), vec!["no_doctor_double_booking", "no_patient_double_booking"]);
}

#[test]
fn lost_acknowledgement_and_phantom_rows_are_found() {
    let a1 = appt("a1", "room-01", "doctor-01", "patient-001", 540);
    let a2 = appt("a2", "room-02", "doctor-02", "patient-002", 540);
    // Booking 0 was told 201 a1, but a1 is gone; a2 exists but its booking got a 409.
    let mut b1 = created(1, &a2);
    b1.outcome = ClientOutcome::Conflict { alternatives: 2, room_unavailable: true };
    let bookings = vec![created(0, &a1), b1.clone()];
    let (results, _) =
        check_all(&storm(), std::slice::from_ref(&a2), &bookings, &DbObservations::default());
    assert_eq!(violated(&results), vec!["acknowledged_exactly_once", "nothing_unacknowledged"]);
    // The same row is fine when its booking's outcome is unknown (a recorded timeout).
    b1.outcome = ClientOutcome::Unanswered;
    let (results, _) = check_all(&storm(), &[a2], &[b1], &DbObservations::default());
    assert!(violated(&results).is_empty());
}

#[test]
fn hard_rules_are_checked_from_scenario_data() {
    let rules = Scenario::builtin("rules").unwrap().scenario;
    let mut a = appt("a1", "exam-6", "dr-cardio", "patient-001", 540); // exam-6 in maintenance
    a.appointment_type = "consult".into();
    let mut b = appt("a2", "exam-2", "dr-eye", "patient-002", 540);
    b.appointment_type = "ecg_check".into(); // exam-2 has no ecg
    let mut c = appt("a3", "exam-1", "dr-gyn", "pt-tb", 600); // airborne in a normal room
    c.appointment_type = "consult".into();
    let rows = vec![a, b, c];
    let bookings: Vec<_> = rows.iter().enumerate().map(|(i, a)| created(i as u32, a)).collect();
    let (results, violations) = check_all(&rules, &rows, &bookings, &DbObservations::default());
    assert_eq!(violated(&results), vec!["assigned_room_satisfies_hard_rules"]);
    let text: Vec<_> = violations.iter().map(|v| v.detail.as_str()).collect();
    assert!(text[0].contains("H01"), "{text:?}");
    assert!(text[1].contains("H06"), "{text:?}");
    assert!(text[2].contains("H09"), "{text:?}");
}

#[test]
fn leaks_deadlocks_and_unfinished_bookings_are_found() {
    let a1 = appt("a1", "room-01", "doctor-01", "patient-001", 540);
    let mut leaked = created(0, &a1);
    leaked.outcome = ClientOutcome::ServerError { status: 500 };
    leaked.leaked = leaked_db_error("{\"detail\":\"ERROR: deadlock detected (SQLSTATE 40P01)\"}");
    let mut unfinished = created(1, &a1);
    unfinished.outcome = ClientOutcome::Unfinished;
    let db = DbObservations { deadlocks: vec![(1234, "session 7".into())], ..Default::default() };
    let (results, violations) = check_all(&storm(), &[], &[leaked, unfinished], &db);
    assert_eq!(
        violated(&results),
        vec!["no_raw_db_error", "no_deadlock", "every_request_answered"]
    );
    assert!(violations.iter().any(|v| v.detail.contains("session 7") && v.detail.contains("1234")));
    assert_eq!(leaked_db_error("{\"code\":\"ROOM_UNAVAILABLE\"}"), None);
}

#[test]
fn leaked_sessions_are_found() {
    let clean = DbObservations::default();
    let (results, _) = check_all(&storm(), &[], &[], &clean);
    assert!(violated(&results).is_empty());
    let db = DbObservations {
        begin_in_transaction: vec![(777, "session 3: WARNING 25001".into())],
        open_at_end: vec!["session 4 idle in transaction".into()],
        ..Default::default()
    };
    let (results, violations) = check_all(&storm(), &[], &[], &db);
    assert_eq!(violated(&results), vec!["session_hygiene"]);
    let hygiene = results.iter().find(|r| r.name == "session_hygiene").unwrap();
    assert_eq!(hygiene.violations, 2);
    assert!(violations.iter().any(|v| v.detail.contains("session 3") && v.detail.contains("777")));
    assert!(violations.iter().any(|v| v.detail.contains("session 4 idle in transaction")));
}

#[test]
fn wrong_alternatives_are_found_and_right_ones_pass() {
    // Booking #0 was acknowledged at 500 us: room-01, 09:00-09:30, blocked to 09:35.
    let a1 = appt("a1", "room-01", "doctor-01", "patient-001", 540);
    let acknowledged = created(0, &a1);
    let offer = |room: &str, start: u32| OfferedAlternative {
        room: room.into(),
        visit_min: Some((start, start + 30)),
    };
    let mut refused = created(1, &appt("a2", "room-02", "doctor-02", "patient-002", 540));
    refused.outcome = ClientOutcome::Conflict { alternatives: 4, room_unavailable: true };
    refused.answer = AnswerDetail {
        sent_at_us: 600,
        booked: None,
        alternatives: vec![
            offer("room-02", 540), // another room: fine
            offer("room-01", 575), // starts exactly when a1's turnover ends: fine
            offer("room-01", 550), // inside a1's visit: wrong
            offer("room-99", 600), // not a room of the clinic: wrong
        ],
    };
    refused.answered_at_us = 700;
    let bookings = vec![acknowledged.clone(), refused.clone()];
    let (results, violations) =
        check_all(&storm(), std::slice::from_ref(&a1), &bookings, &DbObservations::default());
    assert_eq!(violated(&results), vec!["alternatives_correct"]);
    let result = results.iter().find(|r| r.name == "alternatives_correct").unwrap();
    assert_eq!((result.checked, result.violations), (4, 2));
    let text: Vec<&str> = violations.iter().map(|v| v.detail.as_str()).collect();
    assert!(
        text[0].contains("booking #1") && text[0].contains("room-01 at 09:10-09:40"),
        "{text:?}"
    );
    assert!(text[0].contains("booking #0") && text[0].contains("blocked to 09:35"), "{text:?}");
    assert!(text[1].contains("room-99 is not in the clinic"), "{text:?}");

    // Sent before a1 was acknowledged: the backend could not have known; not a violation.
    refused.answer.sent_at_us = 400;
    refused.answer.alternatives.truncate(3);
    let (results, _) =
        check_all(&storm(), &[a1], &[acknowledged, refused], &DbObservations::default());
    assert!(violated(&results).is_empty(), "{results:?}");
}

#[test]
fn alternatives_must_pass_the_hard_rule_oracle() {
    let rules = Scenario::builtin("rules").unwrap().scenario;
    let mut refused = created(0, &appt("a1", "exam-1", "dr-cardio", "patient-001", 540));
    refused.outcome = ClientOutcome::Conflict { alternatives: 1, room_unavailable: true };
    // exam-6 is in maintenance (H01).
    let alternatives = vec![OfferedAlternative { room: "exam-6".into(), visit_min: None }];
    refused.answer = AnswerDetail { sent_at_us: 10, booked: None, alternatives };
    let (results, violations) = check_all(&rules, &[], &[refused], &DbObservations::default());
    assert_eq!(violated(&results), vec!["alternatives_correct"]);
    assert!(violations[0].detail.contains("exam-6 (no time given): H01"), "{violations:?}");
}
