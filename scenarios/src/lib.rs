//! `scenarios`: roomsim's scenario files and their validating loader.
//!
//! A scenario is data: the clinic (rooms, doctors, patients, appointment types, or generator
//! parameters), a reference to a rule set, the booking workload, the backend pool, the network,
//! timed faults, success criteria and limits. The schema is documented in
//! `scenarios/README.md`; the built-in scenarios live in `scenarios/data/*.toml` and are
//! compiled in, so `roomsim run --scenario storm` works from any directory.
//!
//! Loading is parse (serde, unknown fields rejected) → expand the generator → validate. Every
//! error names the file, the field and the problem. This crate does not depend on
//! backend-core: rule sets are referenced by name or path and resolved by `sim`.
//!
//! Not modelled here: anything random. A scenario is the same for every seed; the seed only
//! drives the simulation's choices (who books what when, scheduling, latencies).

mod error;
mod schema;
mod validate;

use std::path::{Path, PathBuf};

pub use error::ScenarioError;
pub use schema::*;
pub use validate::{
    BOOKERS_MAX, BOOKINGS_MAX, DOCTORS_MAX, PATIENTS_MAX, ROOMS_MAX, parse_day_unix_s, parse_hhmm,
};

/// The built-in scenarios: (name, file text). Order is the listing order.
pub const BUILTIN: &[(&str, &str)] = &[
    ("storm", include_str!("../data/storm.toml")),
    ("conflict", include_str!("../data/conflict.toml")),
    ("rules", include_str!("../data/rules.toml")),
    ("all", include_str!("../data/all.toml")),
    ("storm-partition", include_str!("../data/storm-partition.toml")),
    ("storm-loss", include_str!("../data/storm-loss.toml")),
    ("storm-backend-crash", include_str!("../data/storm-backend-crash.toml")),
    ("storm-db-crash", include_str!("../data/storm-db-crash.toml")),
    ("storm-no-idempotency", include_str!("../data/storm-no-idempotency.toml")),
    ("storm-client-abort", include_str!("../data/storm-client-abort.toml")),
    ("storm-slow-clients", include_str!("../data/storm-slow-clients.toml")),
    ("storm-db-drop", include_str!("../data/storm-db-drop.toml")),
];

/// Where a rule set comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RulesSource {
    /// A rule set built into backend-core, by name.
    Builtin(String),
    /// A rule-set file (`.toml` or `.json`), resolved against the scenario file's folder.
    File(PathBuf),
}

/// A loaded, validated scenario and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    pub scenario: Scenario,
    /// The file it was read from, or `builtin:<name>`.
    pub origin: PathBuf,
}

impl Loaded {
    /// The scenario after `change`, validated again as its file was (a change can break a
    /// rule: more disjoint bookers than the clinic has patients, say); errors name the origin.
    pub fn changed(&self, change: impl FnOnce(&mut Scenario)) -> Result<Loaded, ScenarioError> {
        let mut scenario = self.scenario.clone();
        change(&mut scenario);
        scenario.expand_generator();
        Loaded::validated(scenario, self.origin.clone())
    }

    fn validated(scenario: Scenario, file: PathBuf) -> Result<Loaded, ScenarioError> {
        validate::validate(&scenario).map_err(|(field, problem)| ScenarioError::Invalid {
            file: file.clone(),
            field,
            problem,
        })?;
        Ok(Loaded { scenario, origin: file })
    }
}

impl Scenario {
    /// Reads, expands and validates a scenario file.
    pub fn load(path: &Path) -> Result<Loaded, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScenarioError::Io { file: path.to_path_buf(), source })?;
        Scenario::parse(&text, path)
    }

    /// A built-in scenario by name (see [`BUILTIN`]).
    pub fn builtin(name: &str) -> Result<Loaded, ScenarioError> {
        let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name) else {
            let known = BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
            return Err(ScenarioError::UnknownBuiltin { name: name.into(), known });
        };
        Scenario::parse(text, Path::new(&format!("builtin:{name}")))
    }

    /// A built-in name, or else a path to a file.
    pub fn resolve(name_or_path: &str) -> Result<Loaded, ScenarioError> {
        let is_builtin = BUILTIN.iter().any(|(n, _)| *n == name_or_path);
        if is_builtin {
            Scenario::builtin(name_or_path)
        } else {
            Scenario::load(name_or_path.as_ref())
        }
    }

    /// Parses scenario text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Loaded, ScenarioError> {
        let file = origin.to_path_buf();
        let mut scenario: Scenario = toml::from_str(text)
            .map_err(|e| ScenarioError::Parse { file: file.clone(), message: e.to_string() })?;
        scenario.expand_generator();
        Loaded::validated(scenario, file)
    }

    /// Total bookings the workload makes.
    pub fn bookings_total(&self) -> u32 {
        self.workload.bookers * self.workload.bookings_per_booker
    }

    /// Appends generated rooms, doctors and patients; clears `generate`.
    fn expand_generator(&mut self) {
        let Some(g) = self.clinic.generate.take() else { return };
        // Limits are re-checked by validation; clamp here so a huge number cannot allocate.
        let rooms = g.rooms.min(ROOMS_MAX + 1);
        let doctors = g.doctors.min(DOCTORS_MAX + 1);
        let patients = g.patients.min(PATIENTS_MAX + 1);
        for i in 0..rooms as usize {
            let room_type = pick(&g.room_types, i).unwrap_or("exam").to_string();
            // An empty tag in the list means "no equipment" for that room.
            let equipment: Vec<String> = pick(&g.equipment, i)
                .filter(|e| !e.is_empty())
                .map(|e| e.to_string())
                .into_iter()
                .collect();
            let accessible = g.accessible_every > 0 && i % g.accessible_every as usize == 0;
            self.clinic.rooms.push(Room {
                name: format!("room-{:02}", i + 1),
                room_type,
                capacity: 2 + (i % 3) as u32,
                equipment,
                accessible,
                aiir: false,
                zone: format!("zone-{}", i % 4),
                status: "active".into(),
            });
        }
        for i in 0..doctors as usize {
            self.clinic.doctors.push(Doctor {
                name: format!("doctor-{:02}", i + 1),
                specialty: pick(&g.specialties, i).unwrap_or("general").to_string(),
                preferred_rooms: Vec::new(),
                zone: format!("zone-{}", i % 4),
            });
        }
        for i in 0..patients as usize {
            self.clinic.patients.push(Patient {
                name: format!("patient-{:03}", i + 1),
                age_years: 18 + (i % 70) as u32,
                needs_accessible: false,
                airborne: false,
            });
        }
    }
}

impl Loaded {
    /// Where the rule set comes from: a path (contains `/` or ends `.toml`/`.json`) relative
    /// to the scenario's folder, else a built-in name.
    pub fn rules_source(&self) -> RulesSource {
        let rules = &self.scenario.rules;
        let is_path = rules.contains('/') || rules.ends_with(".toml") || rules.ends_with(".json");
        if !is_path {
            return RulesSource::Builtin(rules.clone());
        }
        let base = self.origin.parent().unwrap_or(Path::new("."));
        RulesSource::File(base.join(rules))
    }
}

fn pick(list: &[String], index: usize) -> Option<&str> {
    if list.is_empty() { None } else { Some(list[index % list.len()].as_str()) }
}

#[cfg(test)]
mod tests;
