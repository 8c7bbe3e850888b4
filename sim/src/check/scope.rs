//! The scope of a check: which clinic, which bookings (the shape of their times, doctors and
//! patients), how they fall back, whether they carry an Idempotency-Key.

use std::str::FromStr;

use scenarios::Scenario;

use crate::SimError;
use crate::ids::ClinicIds;

/// Bookings and rooms a scope may have.
pub const BOOKINGS_MAX: u32 = 4;
pub const ROOMS_MAX: u32 = 3;

/// The first booking's start, minutes of the clinic day (09:00).
const FIRST_START_MIN: u32 = 9 * 60;
/// How far apart `overlapping` bookings start, in minutes (less than any duration).
const OVERLAP_STEP_MIN: u32 = 10;

/// How the bookings of a scope relate to each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Every booking at 09:00, each its own doctor and patient: they compete for rooms only.
    SameSlot,
    /// Every booking at 09:00 with the same doctor (own patients).
    SameDoctor,
    /// Every booking at 09:00 for the same patient (own doctors).
    SamePatient,
    /// Booking i starts 10·i minutes after 09:00: overlapping, not equal.
    Overlapping,
    /// Booking i starts where booking i−1 ends: no overlap, but inside the room's turnover.
    Adjacent,
    /// Booking i starts where booking i−1's turnover ends: no conflict at all.
    AfterTurnover,
}

impl Shape {
    pub const ALL: [(&'static str, Shape); 6] = [
        ("same-slot", Shape::SameSlot),
        ("same-doctor", Shape::SameDoctor),
        ("same-patient", Shape::SamePatient),
        ("overlapping", Shape::Overlapping),
        ("adjacent", Shape::Adjacent),
        ("after-turnover", Shape::AfterTurnover),
    ];

    pub fn name(self) -> &'static str {
        Shape::ALL.iter().find(|(_, s)| *s == self).map(|(n, _)| *n).expect("listed")
    }
}

impl FromStr for Shape {
    type Err = SimError;
    fn from_str(text: &str) -> Result<Shape, SimError> {
        Shape::ALL.iter().find(|(n, _)| *n == text).map(|(_, s)| *s).ok_or_else(|| {
            let known: Vec<&str> = Shape::ALL.iter().map(|(n, _)| *n).collect();
            SimError::BadInput(format!("--shape {text}: unknown (known: {})", known.join(", ")))
        })
    }
}

/// The `fallback` field every booking of the scope sends.
pub const FALLBACKS: [&str; 3] = ["reject", "suggest", "book_without_room"];

/// One booking of the scope: who, when, and the request body.
#[derive(Clone, Debug)]
pub struct ScopeBooking {
    pub doctor: String,
    pub patient: String,
    pub appointment_type: String,
    pub start_min: u32,
    pub body: String,
}

/// Bookings given one by one instead of by a shape (`roomsim shrink`: bookings of a failing
/// run, in that run's clinic).
#[derive(Clone, Debug)]
pub struct GivenBookings {
    pub scenario: Scenario,
    pub bookings: Vec<ScopeBooking>,
    /// Rows committed before the bookings start (the run's bookings answered before them), as
    /// INSERTs with every column's value: run into the clinic before every schedule, and into
    /// the spec's setup.
    pub prior: Vec<(String, Vec<backend_core::db::SqlValue>)>,
    /// How the scope names them, e.g. "bookings #3 and #17 of storm seed 0".
    pub label: String,
}

/// The clinic of a scope: the `conflict` scenario cut to `rooms` rooms.
pub fn scope_scenario(rooms: u32) -> Result<Scenario, SimError> {
    if !(1..=ROOMS_MAX).contains(&rooms) {
        return Err(SimError::BadInput(format!("--rooms {rooms}: must be 1 to {ROOMS_MAX}")));
    }
    let mut scenario = Scenario::builtin("conflict")?.scenario;
    scenario.clinic.rooms.truncate(rooms as usize);
    Ok(scenario)
}

/// The bookings of a scope, in order.
pub fn scope_bookings(
    scenario: &Scenario,
    ids: &ClinicIds,
    bookings: u32,
    shape: Shape,
    fallback: &str,
) -> Result<Vec<ScopeBooking>, SimError> {
    if !(1..=BOOKINGS_MAX).contains(&bookings) {
        return Err(SimError::BadInput(format!(
            "--bookings {bookings}: must be 1 to {BOOKINGS_MAX}"
        )));
    }
    if !FALLBACKS.contains(&fallback) {
        return Err(SimError::BadInput(format!(
            "--fallback {fallback}: unknown (known: {})",
            FALLBACKS.join(", ")
        )));
    }
    let clinic = &scenario.clinic;
    let kind = &clinic.appointment_types[0];
    let duration_min = kind.duration_min;
    let turnover_min = kind.turnover_min;
    let day = &clinic.day;
    let hhmm = |min: u32| format!("{day}T{:02}:{:02}:00Z", min / 60, min % 60);
    let list = (0..bookings as usize).map(|i| {
        let step = match shape {
            Shape::SameSlot | Shape::SameDoctor | Shape::SamePatient => 0,
            Shape::Overlapping => OVERLAP_STEP_MIN,
            Shape::Adjacent => duration_min,
            Shape::AfterTurnover => duration_min + turnover_min,
        };
        let start_min = FIRST_START_MIN + step * i as u32;
        let doctor = &clinic.doctors[if shape == Shape::SameDoctor { 0 } else { i }].name;
        let patient = &clinic.patients[if shape == Shape::SamePatient { 0 } else { i }].name;
        let body = serde_json::json!({
            "clinic_id": ids.clinic,
            "doctor_id": ids.doctor(doctor),
            "patient_id": ids.patient(patient),
            "appointment_type": kind.name,
            "start": hhmm(start_min),
            "end": hhmm(start_min + duration_min),
            "room_id": null,
            "needs": {"accessible": false, "isolation": "none"},
            "fallback": fallback,
        });
        ScopeBooking {
            doctor: doctor.clone(),
            patient: patient.clone(),
            appointment_type: kind.name.clone(),
            start_min,
            body: body.to_string(),
        }
    });
    Ok(list.collect())
}
