//! Reads what the allocator needs, through the [`Conn`] seam, outside any transaction.
//!
//! WHAT: [`load_policy`] runs the cheap version check (`SELECT max(version) …`) and parses the
//! stored rule set only on a policy-cache miss; [`load_snapshot`] reads the clinic, its rooms,
//! the doctor, the patient, the appointment type and the day's appointments into a
//! [`ClinicSnapshot`]. Unknown ids become `UnknownReference` errors naming the request field.
//! Every stored body is parsed through the [`BodyCache`]: the statements and the bodies read
//! are the same, only the parse of a text seen before is skipped (see `body_cache`).
//!
//! WHY outside the transaction: the allocator is pure and may be slow-ish (all rooms × all
//! rules); holding locks during it would serialise bookings. The snapshot may be stale by the
//! time the transaction runs; the strategy's in-transaction check (or the exclusion
//! constraint) is what guarantees correctness, and a stale ranking only costs a retry with the
//! next-ranked room.
//!
//! NOT MODELLED: a patient's appointments in other clinics are not loaded (their overlap is
//! still refused by the `no_patient_overlap` constraint at INSERT time).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::booking::body_cache::{BodyCache, Memo};
use crate::db::{Conn, Rows, SqlValue};
use crate::domain::{
    Appointment, AppointmentStatus, AppointmentType, BookingRequest, Clinic, Doctor, Gender,
    Patient, Room,
};
use crate::error::{Error, Result};
use crate::rules::{PolicyCache, RuleSet};
use crate::schedule::ClinicSnapshot;

/// The clinic's current policy, from the cache when the stored version is unchanged.
pub async fn load_policy(
    conn: &mut dyn Conn,
    cache: &PolicyCache,
    bodies: &BodyCache,
    clinic_id: Uuid,
) -> Result<Arc<RuleSet>> {
    let rows = conn
        .execute(
            "SELECT max(version) AS version FROM rule_policies WHERE clinic_id = $1",
            &[SqlValue::Uuid(clinic_id)],
        )
        .await?;
    let version = match first_value(&rows) {
        Some(SqlValue::Int(version)) if *version > 0 => *version,
        _ => {
            // An unknown clinic is the client's error, not a missing policy.
            load_clinic(conn, bodies, clinic_id).await?;
            return Err(Error::PolicyInvalid {
                clinic_id: clinic_id.to_string(),
                message: "no rule policy is stored for this clinic".into(),
            });
        }
    };
    let version_u64 = u64::try_from(version).expect("checked positive above");
    if let Some(rules) = cache.lookup(clinic_id, version_u64) {
        return Ok(rules);
    }
    let rules = read_policy(conn, bodies, clinic_id, version).await?;
    Ok(cache.insert(clinic_id, rules))
}

async fn read_policy(
    conn: &mut dyn Conn,
    bodies: &BodyCache,
    clinic_id: Uuid,
    version: i64,
) -> Result<RuleSet> {
    let rows = conn
        .execute(
            "SELECT format, body FROM rule_policies WHERE clinic_id = $1 AND version = $2",
            &[SqlValue::Uuid(clinic_id), SqlValue::Int(version)],
        )
        .await?;
    let invalid =
        |message: String| Error::PolicyInvalid { clinic_id: clinic_id.to_string(), message };
    let (format, body) = match rows.rows.first().map(Vec::as_slice) {
        Some([SqlValue::Text(format), SqlValue::Text(body)]) => (format, body),
        other => return Err(invalid(format!("version {version} row unreadable: {other:?}"))),
    };
    let parsed = match format.as_str() {
        "toml" => bodies.policies_toml.get_or_parse(body, RuleSet::from_toml),
        "json" => bodies.policies_json.get_or_parse(body, RuleSet::from_json),
        other => return Err(invalid(format!("unknown policy format {other:?}"))),
    };
    let parsed = parsed.map_err(|error| invalid(format!("version {version}: {error}")))?;
    let mut rules = RuleSet::clone(&parsed);
    // The row's key is authoritative for version and clinic.
    rules.version = u64::try_from(version).expect("stored versions are positive");
    rules.clinic_id = Some(clinic_id);
    Ok(rules)
}

/// Reads the allocator's input for `request`.
pub async fn load_snapshot(
    conn: &mut dyn Conn,
    bodies: &BodyCache,
    request: &BookingRequest,
    rooms_max: usize,
    day_appointments_max: usize,
) -> Result<ClinicSnapshot> {
    let clinic: Clinic = load_clinic(conn, bodies, request.clinic_id).await?;
    let doctor: Doctor = load_body(
        conn,
        &bodies.doctors,
        "SELECT body FROM doctors WHERE id = $1 AND clinic_id = $2",
        &[SqlValue::Uuid(request.doctor_id), SqlValue::Uuid(request.clinic_id)],
        Reference::new("doctor_id", "doctor", request.doctor_id.to_string(), IN_CLINIC),
    )
    .await?;
    let patient: Patient = load_body(
        conn,
        &bodies.patients,
        "SELECT body FROM patients WHERE id = $1",
        &[SqlValue::Uuid(request.patient_id)],
        Reference::new("patient_id", "patient", request.patient_id.to_string(), ""),
    )
    .await?;
    let appointment_type: AppointmentType = load_body(
        conn,
        &bodies.appointment_types,
        "SELECT body FROM appointment_types WHERE clinic_id = $1 AND key = $2",
        &[SqlValue::Uuid(request.clinic_id), SqlValue::Text(request.appointment_type.clone())],
        Reference::new(
            "appointment_type",
            "appointment type",
            request.appointment_type.clone(),
            IN_CLINIC,
        ),
    )
    .await?;
    let rooms = load_rooms(conn, bodies, request.clinic_id, rooms_max).await?;
    if let Some(room_id) = request.room_id {
        check_pinned_room(conn, &rooms, room_id).await?;
    }
    let (from, to) = day_window(request.start, request.end);
    let appointments =
        load_appointments(conn, request.clinic_id, (from, to), day_appointments_max).await?;
    Ok(ClinicSnapshot {
        clinic,
        rooms,
        doctor,
        patient,
        appointment_type,
        appointments,
        patient_last_room_id: None,
    })
}

const IN_CLINIC: &str = " in this clinic";

/// The request field an entity came from, for error messages.
struct Reference {
    field: &'static str,
    entity: &'static str,
    id: String,
    scope: &'static str,
}

impl Reference {
    fn new(field: &'static str, entity: &'static str, id: String, scope: &'static str) -> Self {
        Reference { field, entity, id, scope }
    }

    fn unknown(self) -> Error {
        Error::UnknownReference {
            field: self.field.into(),
            entity: self.entity,
            id: self.id,
            scope: self.scope,
        }
    }
}

pub async fn load_clinic(
    conn: &mut dyn Conn,
    bodies: &BodyCache,
    clinic_id: Uuid,
) -> Result<Clinic> {
    load_body(
        conn,
        &bodies.clinics,
        "SELECT body FROM clinics WHERE id = $1",
        &[SqlValue::Uuid(clinic_id)],
        Reference::new("clinic_id", "clinic", clinic_id.to_string(), ""),
    )
    .await
}

async fn load_body<T: DeserializeOwned + Clone>(
    conn: &mut dyn Conn,
    memo: &Memo<T>,
    sql: &str,
    params: &[SqlValue],
    reference: Reference,
) -> Result<T> {
    let rows = conn.execute(sql, params).await?;
    match first_value(&rows) {
        Some(SqlValue::Text(body)) => parse_cached(memo, body, reference.entity),
        Some(other) => Err(Error::Internal(format!("{} body is {other:?}", reference.entity))),
        None => Err(reference.unknown()),
    }
}

/// [`parse_body`] through `memo`: a text parsed before is cloned from the memo.
fn parse_cached<T: DeserializeOwned + Clone>(
    memo: &Memo<T>,
    body: &str,
    entity: &str,
) -> Result<T> {
    memo.get_or_parse(body, |body| parse_body(body, entity)).map(|parsed| T::clone(&parsed))
}

fn parse_body<T: DeserializeOwned>(body: &str, entity: &str) -> Result<T> {
    serde_json::from_str(body)
        .map_err(|error| Error::Internal(format!("stored {entity} record unreadable: {error}")))
}

/// The clinic's rooms in id order (at most `rooms_max`).
pub async fn load_rooms(
    conn: &mut dyn Conn,
    bodies: &BodyCache,
    clinic_id: Uuid,
    rooms_max: usize,
) -> Result<Vec<Room>> {
    let limit = i64::try_from(rooms_max + 1).unwrap_or(i64::MAX);
    let rows = conn
        .execute(
            "SELECT body FROM rooms WHERE clinic_id = $1 ORDER BY id LIMIT $2",
            &[SqlValue::Uuid(clinic_id), SqlValue::Int(limit)],
        )
        .await?;
    if rows.rows.len() > rooms_max {
        return Err(Error::invalid("clinic_id", format!("clinic has more than {rooms_max} rooms")));
    }
    rows.rows
        .iter()
        .map(|row| match row.first() {
            Some(SqlValue::Text(body)) => parse_cached(&bodies.rooms, body, "room"),
            other => Err(Error::Internal(format!("room body is {other:?}"))),
        })
        .collect()
}

/// A pinned room must exist and belong to the request's clinic.
async fn check_pinned_room(conn: &mut dyn Conn, rooms: &[Room], room_id: Uuid) -> Result<()> {
    if rooms.iter().any(|room| room.id == room_id) {
        return Ok(());
    }
    let rows = conn
        .execute("SELECT clinic_id FROM rooms WHERE id = $1", &[SqlValue::Uuid(room_id)])
        .await?;
    let scope = if rows.rows.is_empty() { "" } else { " (it belongs to another clinic)" };
    Err(Error::UnknownReference {
        field: "room_id".into(),
        entity: "room",
        id: room_id.to_string(),
        scope,
    })
}

/// The day(s) around a request: whole UTC days covering `[start, end)`, plus a turnover margin.
pub fn day_window(start: DateTime<Utc>, end: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let day_start = start.date_naive().and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
    let day_end = end.date_naive().and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
        + Duration::days(1);
    (day_start - Duration::hours(2), day_end + Duration::hours(2))
}

const APPOINTMENT_COLUMNS: &str = "SELECT id, clinic_id, room_id, doctor_id, patient_id, \
     appointment_type, starts_at, ends_at, turnover_minutes, status, infectious, patient_gender \
     FROM appointments";

/// Appointments of the clinic whose blocked range meets `[from, to)`, any status. The
/// overlap is written as `blocked && tstzrange(from, to)` so PostgreSQL answers it from
/// `idx_appointments_clinic_blocked` (migration 0005) with the window's rows only; the
/// equivalent `starts_at < to AND blocked_until > from` read the clinic's whole history
/// before `to` on every booking.
pub async fn load_appointments(
    conn: &mut dyn Conn,
    clinic_id: Uuid,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    appointments_max: usize,
) -> Result<Vec<Appointment>> {
    let limit = i64::try_from(appointments_max + 1).unwrap_or(i64::MAX);
    let sql = day_sheet_sql();
    let params = [
        SqlValue::Uuid(clinic_id),
        SqlValue::Timestamp(to),
        SqlValue::Timestamp(from),
        SqlValue::Int(limit),
    ];
    let rows = conn.execute(&sql, &params).await?;
    if rows.rows.len() > appointments_max {
        return Err(Error::Internal(format!(
            "more than {appointments_max} appointments in one clinic window"
        )));
    }
    rows.rows.iter().map(|row| appointment_from_row(row)).collect()
}

/// The day sheet's statement: `$1` clinic, `$2` window end, `$3` window start, `$4` limit
/// (public so a PostgreSQL test can check its plan).
pub fn day_sheet_sql() -> String {
    format!(
        "{APPOINTMENT_COLUMNS} WHERE clinic_id = $1 AND blocked && tstzrange($3, $2, '[)') \
         ORDER BY starts_at, id LIMIT $4"
    )
}

/// One appointment by id (any clinic), for cancel.
pub async fn load_appointment(conn: &mut dyn Conn, id: Uuid) -> Result<Option<Appointment>> {
    let sql = format!("{APPOINTMENT_COLUMNS} WHERE id = $1");
    let rows = conn.execute(&sql, &[SqlValue::Uuid(id)]).await?;
    rows.rows.first().map(|row| appointment_from_row(row)).transpose()
}

fn appointment_from_row(row: &[SqlValue]) -> Result<Appointment> {
    let bad = |what: &str| Error::Internal(format!("appointments row: bad {what}: {row:?}"));
    let uuid = |index: usize, what: &str| match row.get(index) {
        Some(SqlValue::Uuid(id)) => Ok(*id),
        _ => Err(bad(what)),
    };
    let time = |index: usize, what: &str| match row.get(index) {
        Some(SqlValue::Timestamp(at)) => Ok(*at),
        _ => Err(bad(what)),
    };
    let room_id = match row.get(2) {
        Some(SqlValue::Uuid(id)) => Some(*id),
        Some(SqlValue::Null) => None,
        _ => return Err(bad("room_id")),
    };
    let (Some(SqlValue::Text(kind)), Some(SqlValue::Int(turnover))) = (row.get(5), row.get(8))
    else {
        return Err(bad("appointment_type/turnover_minutes"));
    };
    let status: AppointmentStatus = match row.get(9) {
        Some(SqlValue::Text(status)) => enum_from_str(status).ok_or_else(|| bad("status"))?,
        _ => return Err(bad("status")),
    };
    let infectious = matches!(row.get(10), Some(SqlValue::Bool(true)));
    let patient_gender: Option<Gender> = match row.get(11) {
        Some(SqlValue::Text(gender)) => Some(enum_from_str(gender).ok_or_else(|| bad("gender"))?),
        _ => None,
    };
    Ok(Appointment {
        id: uuid(0, "id")?,
        clinic_id: uuid(1, "clinic_id")?,
        room_id,
        doctor_id: uuid(3, "doctor_id")?,
        patient_id: uuid(4, "patient_id")?,
        appointment_type: kind.clone(),
        start: time(6, "starts_at")?,
        end: time(7, "ends_at")?,
        turnover_minutes: u32::try_from(*turnover).map_err(|_| bad("turnover_minutes"))?,
        status,
        infectious,
        patient_gender,
    })
}

/// A snake_case serde enum from its text form.
pub fn enum_from_str<T: DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
}

/// The text form of a snake_case serde enum.
pub fn enum_to_str<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        other => panic!("enum_to_str used on a non-unit enum value: {other:?}"),
    }
}

fn first_value(rows: &Rows) -> Option<&SqlValue> {
    rows.rows.first().and_then(|row| row.first())
}
