//! The scenario's clinic as backend-core domain values (what gets seeded into the database).
//!
//! Names become the deterministic UUIDs of [`crate::ids`]; attributes the scenario does not
//! carry keep backend-core's defaults (gender policy `any`, no age limits, one chair …).
//! The clinic opens every day at the scenario's opening hours.

use std::collections::BTreeSet;

use backend_core::domain::{
    AppointmentType, Clinic, Doctor, Isolation, OpeningHours, Patient, Room, RoomStatus,
};
use scenarios::{Scenario, parse_hhmm};

use crate::ids::ClinicIds;

/// The clinic's domain values, in scenario order.
pub struct ClinicData {
    pub clinic: Clinic,
    pub rooms: Vec<Room>,
    pub doctors: Vec<Doctor>,
    pub patients: Vec<Patient>,
    pub appointment_types: Vec<AppointmentType>,
}

pub fn clinic_data(s: &Scenario, ids: &ClinicIds) -> ClinicData {
    let c = &s.clinic;
    let opens = parse_hhmm(&c.opens).expect("validated") as u16;
    let closes = parse_hhmm(&c.closes).expect("validated") as u16;
    let clinic = Clinic {
        id: ids.clinic,
        name: c.name.clone(),
        opening_hours: OpeningHours::daily(opens, closes),
        closures: Vec::new(),
    };
    let rooms = c.rooms.iter().map(|r| room(r, ids)).collect();
    let doctors = c
        .doctors
        .iter()
        .map(|d| Doctor {
            id: ids.doctor(&d.name),
            clinic_id: ids.clinic,
            name: d.name.clone(),
            specialty: d.specialty.clone(),
            preferred_rooms: d.preferred_rooms.iter().map(|r| ids.room(r)).collect(),
            zone: d.zone.clone(),
        })
        .collect();
    let patients = c
        .patients
        .iter()
        .map(|p| Patient {
            id: ids.patient(&p.name),
            name: p.name.clone(),
            age_years: p.age_years,
            mobility_needs: p.needs_accessible,
            isolation: if p.airborne { Isolation::Airborne } else { Isolation::None },
            ..Patient::default()
        })
        .collect();
    let appointment_types = c
        .appointment_types
        .iter()
        .map(|t| AppointmentType {
            key: t.name.clone(),
            name: t.name.clone(),
            allowed_room_types: t.room_types.clone(),
            required_equipment: t.required_equipment.iter().cloned().collect(),
            duration_minutes: t.duration_min,
            turnover_minutes: t.turnover_min,
            ..AppointmentType::default()
        })
        .collect();
    ClinicData { clinic, rooms, doctors, patients, appointment_types }
}

fn room(r: &scenarios::Room, ids: &ClinicIds) -> Room {
    let status = match r.status.as_str() {
        "maintenance" => RoomStatus::Maintenance,
        "out_of_service" => RoomStatus::OutOfService,
        _ => RoomStatus::Active,
    };
    Room {
        id: ids.room(&r.name),
        clinic_id: ids.clinic,
        name: r.name.clone(),
        room_type: r.room_type.clone(),
        capacity: r.capacity,
        equipment: r.equipment.iter().cloned().collect::<BTreeSet<_>>(),
        accessible: r.accessible,
        aiir: r.aiir,
        air_changes_per_hour: if r.aiir { 12 } else { 6 },
        zone: r.zone.clone(),
        status,
        chairs: 1,
        ..Room::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_clinic_maps_attributes_and_ids() {
        let s = Scenario::builtin("rules").unwrap().scenario;
        let ids = ClinicIds::new(&s);
        let d = clinic_data(&s, &ids);
        assert_eq!(d.rooms.len(), s.clinic.rooms.len());
        let exam6 = d.rooms.iter().find(|r| r.name == "exam-6").unwrap();
        assert_eq!(exam6.status, RoomStatus::Maintenance);
        let tb = d.patients.iter().find(|p| p.name == "pt-tb").unwrap();
        assert_eq!(tb.isolation, Isolation::Airborne);
        let cardio = d.doctors.iter().find(|x| x.name == "dr-cardio").unwrap();
        assert_eq!(cardio.preferred_rooms, vec![ids.room("exam-1"), ids.room("exam-3")]);
        let proc = d.appointment_types.iter().find(|t| t.key == "minor_procedure").unwrap();
        assert!(proc.required_equipment.contains("suction"));
    }
}
