//! H15 participant double booking: the doctor and the patient must not be in two overlapping
//! appointments.
//!
//! This is conflict detection, not room choice: the answer is the same for every room, so it
//! is computed once per candidate time rather than once per room. The test mirrors the
//! `no_doctor_overlap` / `no_patient_overlap` exclusion constraints: the appointment's own
//! `[start, end)` (turnover does not block people), over statuses that block participants.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::Appointment;
use crate::rules::ParticipantParams;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Participant {
    Doctor,
    Patient,
}

/// An existing appointment that already occupies the doctor or the patient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ParticipantConflict {
    pub participant: Participant,
    pub with_appointment: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Appointments in `appointments` that overlap `[start, end)` for the doctor or the patient
/// (both reported), ordered by start, appointment id, participant: never by input order.
pub fn participant_conflicts(
    appointments: &[Appointment],
    doctor_id: Uuid,
    patient_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    params: &ParticipantParams,
) -> Vec<ParticipantConflict> {
    assert!(start < end, "participant check of an empty slot");
    let mut conflicts = Vec::new();
    for appointment in appointments {
        if !appointment.status.blocks_participants() {
            continue;
        }
        if !(appointment.start < end && start < appointment.end) {
            continue;
        }
        let conflict = |participant| ParticipantConflict {
            participant,
            with_appointment: appointment.id,
            start: appointment.start,
            end: appointment.end,
        };
        if params.check_doctor && appointment.doctor_id == doctor_id {
            conflicts.push(conflict(Participant::Doctor));
        }
        if params.check_patient && appointment.patient_id == patient_id {
            conflicts.push(conflict(Participant::Patient));
        }
    }
    conflicts.sort_by_key(|c| (c.start, c.with_appointment, c.participant));
    conflicts
}
