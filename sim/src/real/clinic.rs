//! From a scenario's clinic (names, attributes) to backend-core's seed (domain records with
//! ids), so `roomsim db setup` writes the same clinic the simulation books against.
//!
//! IDS are derived from the scenario name, the record kind and the record name with a
//! splitmix64-based hash ([`stable_id`]), never drawn at random: two setups of one scenario,
//! on PostgreSQL or on the model, produce byte-identical rows.
//!
//! RULES: a built-in rule-set name (`default`) is stored as backend-core's default TOML policy;
//! a rule-set file is read and stored as-is (TOML or JSON by extension).
//!
//! NOT MODELLED: rooms' floor-plan coordinates, closures and specialty restrictions (the
//! scenario format has no fields for them; domain defaults apply).

use std::collections::BTreeSet;

use backend_core::domain::{
    AppointmentType, Clinic, Doctor, OpeningHours, Patient, Room, RoomStatus,
};
use backend_core::rules::DEFAULT_RULESET_TOML;
use backend_core::seed::{ClinicSeed, PolicySeed};
use scenarios::{Loaded, RulesSource, Scenario, parse_hhmm};
use uuid::Uuid;

use super::RealError;

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A UUID that depends only on its parts (FNV-1a over the bytes, then splitmix64 twice).
pub fn stable_id(parts: &[&str]) -> Uuid {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    let high = splitmix64(hash);
    let low = splitmix64(high ^ hash);
    let bits = (u128::from(high) << 64) | u128::from(low);
    uuid::Builder::from_random_bytes(bits.to_be_bytes()).into_uuid()
}

fn room_status(text: &str) -> Result<RoomStatus, RealError> {
    // The scenario crate validated the word; the domain enum speaks snake_case JSON.
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| RealError::BadInput(format!("room status `{text}` is not known")))
}

/// The seed of a loaded scenario's clinic.
pub fn clinic_seed(loaded: &Loaded) -> Result<ClinicSeed, RealError> {
    let scenario: &Scenario = &loaded.scenario;
    let c = &scenario.clinic;
    let name = scenario.name.as_str();
    let clinic_id = stable_id(&[name, "clinic", &c.name]);
    let bad = |what: String| RealError::BadInput(format!("scenario {name}: {what}"));
    let opens = parse_hhmm(&c.opens).ok_or_else(|| bad("clinic.opens: not HH:MM".into()))?;
    let closes = parse_hhmm(&c.closes).ok_or_else(|| bad("clinic.closes: not HH:MM".into()))?;
    if opens >= closes || closes > 24 * 60 {
        return Err(bad(format!("clinic: opens {} is not before closes {}", c.opens, c.closes)));
    }
    let clinic = Clinic {
        id: clinic_id,
        name: c.name.clone(),
        opening_hours: OpeningHours::daily(opens as u16, closes as u16),
        closures: Vec::new(),
    };
    let room_id = |room: &str| stable_id(&[name, "room", room]);
    let mut rooms = Vec::with_capacity(c.rooms.len());
    for r in &c.rooms {
        rooms.push(Room {
            id: room_id(&r.name),
            clinic_id,
            name: r.name.clone(),
            room_type: r.room_type.clone(),
            capacity: r.capacity,
            equipment: r.equipment.iter().cloned().collect::<BTreeSet<_>>(),
            accessible: r.accessible,
            aiir: r.aiir,
            zone: r.zone.clone(),
            status: room_status(&r.status)?,
            ..Room::default()
        });
    }
    let doctors = c
        .doctors
        .iter()
        .map(|d| Doctor {
            id: stable_id(&[name, "doctor", &d.name]),
            clinic_id,
            name: d.name.clone(),
            specialty: d.specialty.clone(),
            preferred_rooms: d.preferred_rooms.iter().map(|r| room_id(r)).collect(),
            zone: d.zone.clone(),
        })
        .collect();
    let patients = c
        .patients
        .iter()
        .map(|p| Patient {
            id: stable_id(&[name, "patient", &p.name]),
            name: p.name.clone(),
            age_years: p.age_years,
            mobility_needs: p.needs_accessible,
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
    let policy = Some(policy_seed(loaded)?);
    Ok(ClinicSeed { clinic, rooms, doctors, patients, appointment_types, policy })
}

fn policy_seed(loaded: &Loaded) -> Result<PolicySeed, RealError> {
    match loaded.rules_source() {
        RulesSource::Builtin(builtin) if builtin == "default" => Ok(PolicySeed {
            version: 1,
            format: "toml".to_string(),
            body: DEFAULT_RULESET_TOML.to_string(),
        }),
        RulesSource::Builtin(other) => Err(RealError::BadInput(format!(
            "scenario {}: rules `{other}`: the only built-in rule set is `default`",
            loaded.scenario.name
        ))),
        RulesSource::File(path) => {
            let body = std::fs::read_to_string(&path).map_err(|e| RealError::io(&path, e))?;
            let is_json = path.extension().is_some_and(|e| e == "json");
            let format = if is_json { "json" } else { "toml" };
            Ok(PolicySeed { version: 1, format: format.to_string(), body })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(
            stable_id(&["storm", "room", "room-01"]),
            stable_id(&["storm", "room", "room-01"])
        );
        assert_ne!(
            stable_id(&["storm", "room", "room-01"]),
            stable_id(&["storm", "room", "room-02"])
        );
        // Part boundaries matter: ("ab", "c") is not ("a", "bc").
        assert_ne!(stable_id(&["ab", "c"]), stable_id(&["a", "bc"]));
    }

    #[test]
    fn storm_seed_has_the_scenario_clinic() {
        let loaded = Scenario::builtin("storm").unwrap();
        let seed = clinic_seed(&loaded).unwrap();
        let c = &loaded.scenario.clinic;
        assert_eq!(seed.rooms.len(), c.rooms.len());
        assert_eq!(seed.doctors.len(), c.doctors.len());
        assert_eq!(seed.patients.len(), c.patients.len());
        assert!(seed.rooms.iter().all(|r| r.clinic_id == seed.clinic.id));
        let again = clinic_seed(&loaded).unwrap();
        assert_eq!(seed, again, "the seed is a pure function of the scenario");
        assert!(seed.policy.as_ref().unwrap().body.contains('['), "a TOML policy");
    }
}
