//! Deterministic ids for the scenario's clinic: names ↔ UUIDs.
//!
//! The backend speaks UUIDs; scenarios and reports speak names. Every entity gets a UUID
//! built from its kind and list index (`kind << 120 | index`), so ids are the same for every
//! seed and every process, and a violation can name rows by their scenario names.

use std::collections::BTreeMap;

use scenarios::Scenario;
use uuid::Uuid;

const CLINIC: u128 = 1;
const ROOM: u128 = 2;
const DOCTOR: u128 = 3;
const PATIENT: u128 = 4;

fn make(kind: u128, index: usize) -> Uuid {
    Uuid::from_u128(kind << 120 | index as u128)
}

/// Name ↔ UUID for one scenario's clinic.
#[derive(Clone, Debug, Default)]
pub struct ClinicIds {
    pub clinic: Uuid,
    // BTreeMaps: looked up, and iterated only in name / id order (for determinism).
    by_name: BTreeMap<(u128, String), Uuid>,
    by_id: BTreeMap<Uuid, String>,
}

impl ClinicIds {
    pub fn new(s: &Scenario) -> ClinicIds {
        let mut ids = ClinicIds { clinic: make(CLINIC, 0), ..ClinicIds::default() };
        let lists: [(u128, Vec<&String>); 3] = [
            (ROOM, s.clinic.rooms.iter().map(|r| &r.name).collect()),
            (DOCTOR, s.clinic.doctors.iter().map(|d| &d.name).collect()),
            (PATIENT, s.clinic.patients.iter().map(|p| &p.name).collect()),
        ];
        for (kind, names) in lists {
            for (index, name) in names.into_iter().enumerate() {
                let id = make(kind, index);
                ids.by_name.insert((kind, name.clone()), id);
                ids.by_id.insert(id, name.clone());
            }
        }
        ids
    }

    fn get(&self, kind: u128, name: &str) -> Uuid {
        *self.by_name.get(&(kind, name.to_string())).unwrap_or_else(|| panic!("no id for `{name}`"))
    }

    pub fn room(&self, name: &str) -> Uuid {
        self.get(ROOM, name)
    }
    pub fn doctor(&self, name: &str) -> Uuid {
        self.get(DOCTOR, name)
    }
    pub fn patient(&self, name: &str) -> Uuid {
        self.get(PATIENT, name)
    }

    /// The scenario name of an id, or the id itself when unknown.
    pub fn name(&self, id: &Uuid) -> String {
        self.by_id.get(id).cloned().unwrap_or_else(|| id.to_string())
    }

    /// Parses a UUID text and names it.
    pub fn name_of_text(&self, text: &str) -> Option<String> {
        Uuid::parse_str(text).ok().map(|id| self.name(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_distinct_per_kind() {
        let s = Scenario::builtin("rules").unwrap().scenario;
        let ids = ClinicIds::new(&s);
        let room = ids.room("exam-1");
        assert_eq!(ids.name(&room), "exam-1");
        assert_ne!(ids.room("exam-1"), ids.doctor("dr-cardio"));
        assert_eq!(ids.name_of_text(&ids.patient("pt-tb").to_string()).unwrap(), "pt-tb");
        assert_eq!(ClinicIds::new(&s).room("iso-2"), ids.room("iso-2"), "stable");
    }
}
