//! Inserts a clinic's reference data through the [`Conn`] seam.
//!
//! WHAT: [`seed_clinic`] writes a [`ClinicSeed`] (clinic, rooms, doctors, patients,
//! appointment types and one rule policy version) in one transaction with parameterized SQL;
//! [`publish_policy`] adds a new policy version. `roomsim db setup` (real PostgreSQL) and the
//! simulation (the model) share this code, so both worlds hold byte-identical data.
//!
//! WHY `body` JSON: each table keeps the full serde record in a text column (see
//! `migrations/0001_reference_data.sql`); the key columns beside it are written from the same
//! struct here, so they cannot disagree.
//!
//! NOT MODELLED: updates or deletes of reference data; patients are inserted with
//! `ON CONFLICT (id) DO NOTHING` because several clinics may share one patient.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::booking::snapshot::enum_to_str;
use crate::db::{Conn, SqlValue};
use crate::domain::{AppointmentType, Clinic, Doctor, Patient, Room};
use crate::error::Error;
use crate::rules::RuleSet;

/// A stored rule policy version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySeed {
    pub version: i64,
    /// `"toml"` or `"json"`.
    pub format: String,
    pub body: String,
}

/// One clinic's reference data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClinicSeed {
    pub clinic: Clinic,
    pub rooms: Vec<Room>,
    pub doctors: Vec<Doctor>,
    pub patients: Vec<Patient>,
    pub appointment_types: Vec<AppointmentType>,
    pub policy: Option<PolicySeed>,
}

impl PolicySeed {
    /// Parses the body as the rule set it claims to be, so a malformed policy (unknown rule
    /// key, wrong parameter type, negative weight, …) is refused before anything is written.
    pub fn validate(&self) -> Result<RuleSet, Error> {
        if self.version <= 0 {
            return Err(Error::invalid("policy.version", "must be positive"));
        }
        let parsed = match self.format.as_str() {
            "toml" => RuleSet::from_toml(&self.body),
            "json" => RuleSet::from_json(&self.body),
            other => {
                let message = format!("{other:?} is not a policy format (toml, json)");
                return Err(Error::invalid("policy.format", message));
            }
        };
        parsed.map_err(|error| Error::invalid("policy.body", error.to_string()))
    }
}

/// Rows written by [`seed_clinic`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeedCounts {
    pub statements: u64,
    pub rows: u64,
}

/// Writes the whole seed in one transaction (all or nothing). Records of another clinic and
/// malformed policies are refused before anything is written.
pub async fn seed_clinic(
    conn: &mut dyn Conn,
    seed: &ClinicSeed,
    now: DateTime<Utc>,
) -> Result<SeedCounts, Error> {
    check_seed(seed)?;
    conn.execute("BEGIN", &[]).await?;
    match write_seed(conn, seed, now).await {
        Ok(counts) => {
            conn.execute("COMMIT", &[]).await?;
            Ok(counts)
        }
        Err(error) => {
            let _ = conn.execute("ROLLBACK", &[]).await;
            Err(error)
        }
    }
}

fn check_seed(seed: &ClinicSeed) -> Result<(), Error> {
    let clinic_id = seed.clinic.id;
    let rooms = seed.rooms.iter().map(|room| ("rooms", room.id, room.clinic_id));
    let doctors = seed.doctors.iter().map(|doctor| ("doctors", doctor.id, doctor.clinic_id));
    for (field, id, owner) in rooms.chain(doctors) {
        if owner != clinic_id {
            let message = format!("{id} belongs to clinic {owner}, not {clinic_id}");
            return Err(Error::invalid(field, message));
        }
    }
    if let Some(policy) = &seed.policy {
        policy.validate()?;
    }
    Ok(())
}

async fn write_seed(
    conn: &mut dyn Conn,
    seed: &ClinicSeed,
    now: DateTime<Utc>,
) -> Result<SeedCounts, Error> {
    let clinic = &seed.clinic;
    let mut counts = SeedCounts::default();
    let mut run = async |sql: &str, params: Vec<SqlValue>| -> Result<(), Error> {
        let rows = conn.execute(sql, &params).await?;
        counts.statements += 1;
        counts.rows += rows.rows_affected;
        Ok(())
    };
    run(
        "INSERT INTO clinics (id, name, body) VALUES ($1, $2, $3)",
        vec![SqlValue::Uuid(clinic.id), text(&clinic.name), json(clinic)],
    )
    .await?;
    for room in &seed.rooms {
        run(
            "INSERT INTO rooms (id, clinic_id, name, room_type, status, body) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                SqlValue::Uuid(room.id),
                SqlValue::Uuid(clinic.id),
                text(&room.name),
                text(&room.room_type),
                SqlValue::Text(enum_to_str(&room.status)),
                json(room),
            ],
        )
        .await?;
    }
    for doctor in &seed.doctors {
        run(
            "INSERT INTO doctors (id, clinic_id, name, body) VALUES ($1, $2, $3, $4)",
            vec![
                SqlValue::Uuid(doctor.id),
                SqlValue::Uuid(clinic.id),
                text(&doctor.name),
                json(doctor),
            ],
        )
        .await?;
    }
    for patient in &seed.patients {
        run(
            "INSERT INTO patients (id, body) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            vec![SqlValue::Uuid(patient.id), json(patient)],
        )
        .await?;
    }
    for kind in &seed.appointment_types {
        run(
            "INSERT INTO appointment_types (clinic_id, key, body) VALUES ($1, $2, $3)",
            vec![SqlValue::Uuid(clinic.id), text(&kind.key), json(kind)],
        )
        .await?;
    }
    if let Some(policy) = &seed.policy {
        let (sql, params) = policy_insert(clinic.id, policy, now);
        run(sql, params).await?;
    }
    Ok(counts)
}

/// Stores a new policy version for a clinic after validating it (a malformed rule set is
/// refused with the rule and field named; nothing is written).
pub async fn publish_policy(
    conn: &mut dyn Conn,
    clinic_id: Uuid,
    policy: &PolicySeed,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    policy.validate()?;
    let (sql, params) = policy_insert(clinic_id, policy, now);
    conn.execute(sql, &params).await?;
    Ok(())
}

fn policy_insert(
    clinic_id: Uuid,
    policy: &PolicySeed,
    now: DateTime<Utc>,
) -> (&'static str, Vec<SqlValue>) {
    (
        "INSERT INTO rule_policies (clinic_id, version, format, body, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
        vec![
            SqlValue::Uuid(clinic_id),
            SqlValue::Int(policy.version),
            text(&policy.format),
            text(&policy.body),
            SqlValue::Timestamp(now),
        ],
    )
}

fn text(value: &str) -> SqlValue {
    SqlValue::Text(value.to_string())
}

fn json<T: serde::Serialize>(value: &T) -> SqlValue {
    SqlValue::Text(serde_json::to_string(value).expect("domain records always serialise"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::DEFAULT_RULESET_TOML;

    fn policy(format: &str, body: &str) -> PolicySeed {
        PolicySeed { version: 1, format: format.into(), body: body.into() }
    }

    #[test]
    fn policies_are_validated_before_writing() {
        assert!(policy("toml", DEFAULT_RULESET_TOML).validate().is_ok());
        let bad_format = policy("yaml", DEFAULT_RULESET_TOML).validate().unwrap_err();
        assert_eq!(bad_format.field(), Some("policy.format"));
        let bad_body = policy("json", "{\"version\": 1, \"rules\": [{\"key\": \"nope\"}]}");
        let error = bad_body.validate().unwrap_err();
        assert_eq!(error.field(), Some("policy.body"));
        let zero = PolicySeed { version: 0, ..policy("toml", DEFAULT_RULESET_TOML) };
        assert_eq!(zero.validate().unwrap_err().field(), Some("policy.version"));
    }

    #[test]
    fn records_of_another_clinic_are_refused() {
        let clinic = Clinic { id: Uuid::from_u128(1), ..Clinic::default() };
        let room =
            Room { id: Uuid::from_u128(5), clinic_id: Uuid::from_u128(2), ..Room::default() };
        let seed = ClinicSeed { clinic, rooms: vec![room], ..ClinicSeed::default() };
        assert_eq!(check_seed(&seed).unwrap_err().field(), Some("rooms"));
    }
}
