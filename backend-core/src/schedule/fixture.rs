//! Deterministic demo clinics for tests, benchmarks and the simulation's smoke scenarios.
//!
//! [`Fixture::single_room`] is a clinic with one plain room that satisfies every rule of the
//! default set for the default request, so a test can break exactly one thing.
//! [`Fixture::generated`] builds `rooms_count` varied rooms from a seed (splitmix64, no
//! `rand` dependency) and can fill each room's day with appointments.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use super::ClinicSnapshot;
use crate::domain::{
    Appointment, AppointmentStatus, AppointmentType, BookingRequest, Clinic, Doctor, FallbackMode,
    Gender, Needs, OpeningHours, Patient, Room, splitmix64,
};

/// 2025-03-10 (a Monday) at `hour:minute` UTC: the fixtures' booking day.
pub fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 10, hour, minute, 0).single().expect("valid fixture time")
}

/// Deterministic ids for fixture entities: `kind` in the high bits, `n` in the low ones.
pub fn fixture_id(kind: u8, n: u64) -> Uuid {
    Uuid::from_u128((u128::from(kind) << 120) | u128::from(n) | (1 << 64))
}

/// A snapshot and a request that match it.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub snapshot: ClinicSnapshot,
    pub request: BookingRequest,
}

fn tags(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|tag| tag.to_string()).collect()
}

impl Fixture {
    /// One plain exam room; the request (09:00–09:20 follow-up) breaks no rule.
    pub fn single_room() -> Fixture {
        let clinic = Clinic {
            id: fixture_id(1, 1),
            name: "Fixture clinic".into(),
            opening_hours: OpeningHours::daily(7 * 60, 19 * 60),
            closures: Vec::new(),
        };
        let room = Fixture::plain_room(clinic.id, 0);
        let doctor = Doctor {
            id: fixture_id(3, 1),
            clinic_id: clinic.id,
            name: "Dr Fixture".into(),
            specialty: "general".into(),
            preferred_rooms: vec![room.id],
            zone: "A".into(),
        };
        let patient = Patient {
            id: fixture_id(4, 1),
            name: "Pat Fixture".into(),
            age_years: 40,
            gender: Gender::Female,
            ..Patient::default()
        };
        let appointment_type = AppointmentType {
            key: "follow_up".into(),
            name: "Follow-up".into(),
            allowed_room_types: vec!["exam".into()],
            required_equipment: tags(&["ecg"]),
            preferred_equipment: tags(&["otoscope"]),
            duration_minutes: 20,
            turnover_minutes: 5,
            ..AppointmentType::default()
        };
        let request = BookingRequest {
            clinic_id: clinic.id,
            doctor_id: doctor.id,
            patient_id: patient.id,
            appointment_type: appointment_type.key.clone(),
            start: at(9, 0),
            end: at(9, 20),
            room_id: None,
            needs: Needs::default(),
            fallback: FallbackMode::Reject,
            previous_room_id: None,
        };
        let snapshot = ClinicSnapshot {
            clinic,
            rooms: vec![room],
            doctor,
            patient,
            appointment_type,
            appointments: Vec::new(),
            patient_last_room_id: None,
        };
        Fixture { snapshot, request }
    }

    /// An exam room that satisfies every default rule for the default request: capacity for
    /// exactly patient + one staff member, in zone A, next to the entrance.
    pub fn plain_room(clinic_id: Uuid, n: u64) -> Room {
        Room {
            id: fixture_id(2, n),
            clinic_id,
            name: format!("Exam {n}"),
            room_type: "exam".into(),
            capacity: 2,
            equipment: tags(&["ecg", "otoscope"]),
            zone: "A".into(),
            air_changes_per_hour: 2,
            chairs: 1,
            ..Room::default()
        }
    }

    /// `rooms_count` varied rooms (types, equipment, sizes, zones, positions) from `seed`.
    pub fn generated(rooms_count: usize, seed: u64) -> Fixture {
        let mut fixture = Fixture::single_room();
        let clinic_id = fixture.snapshot.clinic.id;
        let mut state = seed;
        let rooms = (0..rooms_count as u64).map(|n| {
            let mut draw = |modulus: u64| {
                state = splitmix64(state);
                state % modulus
            };
            let mut room = Fixture::plain_room(clinic_id, n);
            room.room_type =
                ["exam", "exam", "exam", "procedure", "isolation"][draw(5) as usize].into();
            room.capacity = 1 + draw(5) as u32;
            room.equipment = tags(
                &[["ecg", "otoscope"], ["ecg", "slit_lamp"], ["otoscope", "o2"]][draw(3) as usize],
            );
            room.accessible = draw(3) == 0;
            room.aiir = room.room_type == "isolation";
            room.air_changes_per_hour = if room.aiir { 12 } else { 2 };
            room.zone = ["A", "B", "C"][draw(3) as usize].into();
            room.x_m = draw(80) as i32;
            room.y_m = draw(40) as i32;
            room.distance_to_entrance_m = draw(120) as u32;
            room.distance_to_checkin_m = draw(120) as u32;
            room
        });
        fixture.snapshot.rooms = rooms.collect();
        let preferred = fixture.snapshot.rooms.iter().take(3).map(|room| room.id).collect();
        fixture.snapshot.doctor.preferred_rooms = preferred;
        fixture
    }

    /// Fills every room's day with `per_room` back-to-back appointments of `minutes` each
    /// from 00:00, for other doctors and patients, leaving no turnover.
    pub fn fill_rooms(&mut self, per_room: usize, minutes: i64) {
        let clinic_id = self.snapshot.clinic.id;
        let day_start = at(0, 0);
        let mut n = 0;
        for room in &self.snapshot.rooms {
            for slot in 0..per_room as i64 {
                n += 1;
                let start = day_start + Duration::minutes(slot * minutes);
                self.snapshot.appointments.push(Appointment {
                    id: fixture_id(5, n),
                    clinic_id,
                    room_id: Some(room.id),
                    doctor_id: fixture_id(3, 1000 + n % 50),
                    patient_id: fixture_id(4, 1000 + n),
                    appointment_type: "follow_up".into(),
                    start,
                    end: start + Duration::minutes(minutes),
                    turnover_minutes: 0,
                    status: AppointmentStatus::Booked,
                    infectious: false,
                    patient_gender: None,
                });
            }
        }
    }
}
