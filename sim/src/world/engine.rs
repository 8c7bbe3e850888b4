//! The model engine of a run, before and after it: migrated (guarded schema, or unguarded
//! for strategies that must not be saved by the EXCLUDE constraint) and seeded with the
//! clinic directly through a synchronous `Conn` (no network, no time), forked from a
//! per-thread template when one exists; and, after the run, the `appointments` rows read with
//! `Engine::query_committed` — from the database side, never through the backend.
//!
//! The ENGINE lives outside the db host (`Rc<RefCell<Engine>>` owned by the run), so a db
//! crash + restart keeps committed data: the driver calls `Engine::crash_restart` and the
//! restarted host starts a fresh `Server` on the same engine (`hosts::add_db_host`).

use std::cell::RefCell;
use std::sync::Arc;

use backend_core::booking::strategy::Strategy;
use backend_core::db::schema::{SchemaVariant, migration_scripts_for};
use backend_core::db::{BoxFuture, Conn, DbError, Rows, SqlValue};
use backend_core::seed::{ClinicSeed, PolicySeed, seed_clinic};
use chrono::DateTime;
use model::{Engine, EngineConfig, Step};
use scenarios::{Scenario, parse_day_unix_s};

use crate::clinic::clinic_data;
use crate::error::SimError;
use crate::ids::ClinicIds;
use crate::model_db::{execute_at_once, from_model};
use crate::observations::Appointment;

/// A synchronous session straight on the engine (setup only: nothing may block).
struct EngineConn<'e> {
    engine: &'e mut Engine,
    session: model::SessionId,
    /// Every statement run, with its parameters, when recording (`setup_statements`).
    recorded: Option<&'e mut Vec<(String, Vec<SqlValue>)>>,
}

impl Conn for EngineConn<'_> {
    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<Rows, DbError>> {
        if let Some(recorded) = self.recorded.as_deref_mut() {
            recorded.push((sql.to_string(), params.to_vec()));
        }
        let result = execute_at_once(self.engine, self.session, sql, params, "in setup");
        Box::pin(std::future::ready(result))
    }
}

/// Parses a strategy name (the error lists the valid names).
pub fn strategy(name: &str) -> Result<Strategy, SimError> {
    name.parse::<Strategy>().map_err(|e| SimError::BadInput(e.to_string()))
}

/// Prepared engines kept per thread (explore runs a range of seeds per worker thread).
const TEMPLATES_MAX: usize = 4;

thread_local! {
    /// (scenario, strategy) → a migrated, seeded engine to fork. The `Arc<Scenario>` is held,
    /// so its address cannot be reused by another scenario while the entry lives: pointer
    /// identity is a sound key (scenarios are generated per case in the property tests).
    static TEMPLATES: RefCell<Vec<(Arc<Scenario>, Strategy, Engine)>> = const { RefCell::new(Vec::new()) };
}

/// [`prepare_engine`], forked from a per-thread template when one exists for this scenario and
/// strategy: the same state as preparing it afresh with `seed` (see `model::Engine::fork`),
/// without replaying the migrations and the clinic seed for every run.
pub fn prepared_engine(
    scenario: &Arc<Scenario>,
    ids: &ClinicIds,
    strategy: Strategy,
    seed: u64,
) -> Result<Engine, SimError> {
    let forked = TEMPLATES.with_borrow(|templates| {
        let found = templates.iter().find(|(s, st, _)| Arc::ptr_eq(s, scenario) && *st == strategy);
        found.and_then(|(_, _, template)| template.fork(seed))
    });
    if let Some(engine) = forked {
        return Ok(engine);
    }
    let engine = prepare_engine(scenario, ids, strategy, seed)?;
    if let Some(template) = engine.fork(seed) {
        TEMPLATES.with_borrow_mut(|templates| {
            if templates.len() >= TEMPLATES_MAX {
                templates.remove(0);
            }
            templates.push((Arc::clone(scenario), strategy, template));
        });
    }
    Ok(engine)
}

/// A migrated, seeded engine.
pub fn prepare_engine(
    scenario: &Scenario,
    ids: &ClinicIds,
    strategy: Strategy,
    seed: u64,
) -> Result<Engine, SimError> {
    prepare(scenario, ids, strategy, seed, None)
}

/// The statements [`prepare_engine`] runs (migrations, then the clinic seed with its
/// parameters), in order: what an isolation spec's setup needs to rebuild the same database.
pub fn setup_statements(
    scenario: &Scenario,
    ids: &ClinicIds,
    strategy: Strategy,
) -> Result<Vec<(String, Vec<SqlValue>)>, SimError> {
    let mut recorded = Vec::new();
    prepare(scenario, ids, strategy, 0, Some(&mut recorded))?;
    Ok(recorded)
}

fn prepare(
    scenario: &Scenario,
    ids: &ClinicIds,
    strategy: Strategy,
    seed: u64,
    mut recorded: Option<&mut Vec<(String, Vec<SqlValue>)>>,
) -> Result<Engine, SimError> {
    let day_s = parse_day_unix_s(&scenario.clinic.day).expect("validated");
    let mut engine = Engine::new(EngineConfig { seed, epoch_us: day_s * 1_000_000 });
    let session = engine.open_session();
    let variant = if strategy.needs_exclusion_constraint() {
        SchemaVariant::Guarded
    } else {
        SchemaVariant::Unguarded
    };
    for (name, sql) in migration_scripts_for(variant) {
        if let Some(recorded) = recorded.as_deref_mut() {
            recorded.push((sql.to_string(), Vec::new()));
        }
        if let Step::Done(Err(e)) = engine.submit(session, sql, &[]) {
            return Err(SimError::HostFailed(format!(
                "migration {name} failed on the model: {} ({})",
                e.message, e.code
            )));
        }
    }
    let data = clinic_data(scenario, ids);
    let policy = rules_policy(scenario)?;
    let seed_data = ClinicSeed {
        clinic: data.clinic,
        rooms: data.rooms,
        doctors: data.doctors,
        patients: data.patients,
        appointment_types: data.appointment_types,
        policy: Some(policy),
    };
    let now = DateTime::from_timestamp(day_s, 0).expect("a valid day");
    let mut conn = EngineConn { engine: &mut engine, session, recorded };
    futures::executor::block_on(seed_clinic(&mut conn, &seed_data, now))
        .map_err(|e| SimError::HostFailed(format!("seeding the model failed: {e}")))?;
    engine.close_session(session);
    Ok(engine)
}

fn rules_policy(scenario: &Scenario) -> Result<PolicySeed, SimError> {
    let body = match scenario.rules.as_str() {
        "default" => backend_core::rules::DEFAULT_RULESET_TOML.to_string(),
        other => {
            return Err(SimError::BadInput(format!(
                "rules: unknown built-in rule set `{other}` (known: default)"
            )));
        }
    };
    Ok(PolicySeed { version: 1, format: "toml".into(), body })
}

/// The columns of `appointments` a row is rebuilt from (all but the generated ranges).
const APPOINTMENT_COLUMNS: &str = "id, clinic_id, room_id, doctor_id, patient_id, \
     appointment_type, starts_at, ends_at, turnover_minutes, blocked_until, status, infectious, \
     patient_gender, policy_version, score, created_at";

/// One INSERT per committed appointment row, ordered by id as [`final_rows`] is (row i of one
/// is row i of the other), with every column's value as a parameter: what a later setup
/// (`roomsim shrink`'s earlier bookings, and their spec) replays to rebuild exactly these rows.
pub fn appointment_inserts(engine: &mut Engine) -> Result<Vec<(String, Vec<SqlValue>)>, SimError> {
    let sql = format!("SELECT {APPOINTMENT_COLUMNS} FROM appointments ORDER BY id");
    let result = engine.query_committed(&sql).map_err(|e| {
        SimError::HostFailed(format!("reading appointments from the model: {}", e.message))
    })?;
    let columns = APPOINTMENT_COLUMNS.split(',').count();
    let placeholders: Vec<String> = (1..=columns).map(|i| format!("${i}")).collect();
    let insert = format!(
        "INSERT INTO appointments ({APPOINTMENT_COLUMNS}) VALUES ({})",
        placeholders.join(", ")
    );
    let rows = result.rows.iter().map(|row| (insert.clone(), row.iter().map(from_model).collect()));
    Ok(rows.collect())
}

/// Runs statements on the engine, one session, each in its own transaction (autocommit); the
/// first failure is an error naming the statement.
pub fn apply_statements(
    engine: &mut Engine,
    statements: &[(String, Vec<SqlValue>)],
) -> Result<(), SimError> {
    let session = engine.open_session();
    for (sql, params) in statements {
        if let Err(e) = execute_at_once(engine, session, sql, params, "in setup") {
            engine.close_session(session);
            return Err(SimError::HostFailed(format!("`{sql}` failed on the model: {e}")));
        }
    }
    engine.close_session(session);
    Ok(())
}

/// Every appointment row, read from the committed state.
pub fn final_rows(engine: &mut Engine, ids: &ClinicIds) -> Result<Vec<Appointment>, SimError> {
    let sql = "SELECT id, room_id, doctor_id, patient_id, appointment_type, starts_at, ends_at, \
               blocked_until, status, created_at FROM appointments ORDER BY id";
    let result = engine.query_committed(sql).map_err(|e| {
        SimError::HostFailed(format!("reading appointments from the model: {}", e.message))
    })?;
    let minute = |v: &SqlValue| match v {
        SqlValue::Timestamp(t) => (t.timestamp().rem_euclid(86_400) / 60) as u32,
        _ => 0,
    };
    let text = |v: &SqlValue| match v {
        SqlValue::Text(t) => t.clone(),
        SqlValue::Uuid(u) => ids.name(u),
        other => format!("{other:?}"),
    };
    let rows = result.rows.iter().map(|row| {
        let row: Vec<SqlValue> = row.iter().map(from_model).collect();
        let status = text(&row[8]);
        Appointment {
            id: match &row[0] {
                SqlValue::Uuid(u) => u.to_string(),
                other => format!("{other:?}"),
            },
            room: match &row[1] {
                SqlValue::Null => None,
                v => Some(text(v)),
            },
            doctor: text(&row[2]),
            patient: text(&row[3]),
            appointment_type: text(&row[4]),
            start_min: minute(&row[5]),
            end_min: minute(&row[6]),
            blocked_until_min: minute(&row[7]),
            active: matches!(status.as_str(), "held" | "booked" | "checked_in" | "room_pending"),
            txn: format!("status {status}"),
            written_at_us: match &row[9] {
                SqlValue::Timestamp(t) => (t.timestamp_micros().rem_euclid(86_400_000_000)) as u64,
                _ => 0,
            },
        }
    });
    Ok(rows.collect())
}
