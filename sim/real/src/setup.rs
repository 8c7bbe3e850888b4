//! `roomsim db setup`: migrations, the scenario's clinic, and the fixture file `load` reads.
//!
//! Idempotent: when every roomsim table exists the migrations are skipped, and a clinic that
//! is already there (same stable id) is not seeded twice. With `--schema` the schema is created
//! first. `--unguarded` creates the appointments table without the `no_room_overlap`
//! exclusion constraint, so the BROKEN strategies can show their double bookings.

use std::path::PathBuf;

use backend_core::db::schema::{SchemaVariant, migrate_pg, migrate_pg_variant};
use backend_core::db::{Conn, SqlValue};
use backend_core::seed::seed_clinic;
use chrono::{NaiveDate, Utc};
use scenarios::{Loaded, Scenario};

use super::RealError;
use super::clinic::clinic_seed;
use super::database::{DbTarget, REQUIRED_TABLES, fixture_from_db, session};
use super::workload::Fixture;

/// What to set up.
#[derive(Clone, Debug)]
pub struct SetupConfig {
    pub target: DbTarget,
    pub scenario: String,
    pub variant: SchemaVariant,
    /// Where the fixture is written; `None`: not written.
    pub fixture_path: Option<PathBuf>,
}

/// What setup did.
#[derive(Clone, Debug)]
pub struct SetupReport {
    pub fixture: Fixture,
    pub migrated: bool,
    pub seeded: bool,
}

/// Loads a scenario by built-in name or path, as bad input when it does not load.
pub fn load_scenario(name: &str) -> Result<Loaded, RealError> {
    Scenario::resolve(name).map_err(|e| RealError::BadInput(format!("--scenario {name}: {e}")))
}

/// The scenario's clinic day.
pub fn clinic_day(loaded: &Loaded) -> Result<NaiveDate, RealError> {
    let day = &loaded.scenario.clinic.day;
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|e| RealError::BadInput(format!("scenario clinic.day `{day}`: {e}")))
}

async fn tables_present(conn: &mut dyn Conn) -> Result<usize, RealError> {
    let mut present = 0;
    for table in REQUIRED_TABLES {
        let rows = conn
            .execute("SELECT to_regclass($1)::text", &[SqlValue::Text(table.to_string())])
            .await
            .map_err(|e| RealError::Database(format!("checking the schema: {e}")))?;
        present += usize::from(rows.rows.first().and_then(|r| r.first()) != Some(&SqlValue::Null));
    }
    Ok(present)
}

/// Runs the setup; see the module doc.
pub async fn setup(config: &SetupConfig) -> Result<SetupReport, RealError> {
    let loaded = load_scenario(&config.scenario)?;
    let seed = clinic_seed(&loaded)?;
    let first_day = clinic_day(&loaded)?;
    let db = config.target.pool(2).await?;
    let mut conn = session(&db).await?;
    let fail = |what: &str, e: backend_core::db::DbError| {
        RealError::Database(format!("{what} on {}: {e}", config.target.describe()))
    };
    if let Some(schema) = &config.target.schema {
        let quoted = backend_core::db::pg::schema_identifier(schema)
            .map_err(|e| RealError::BadInput(format!("--schema: {}", e.message)))?;
        let sql = format!("CREATE SCHEMA IF NOT EXISTS {quoted}");
        conn.execute(&sql, &[]).await.map_err(|e| fail("creating the schema", e))?;
    }
    let present = tables_present(conn.as_mut()).await?;
    let migrated = present < REQUIRED_TABLES.len();
    if migrated && present > 0 {
        return Err(RealError::Database(format!(
            "{} has {present} of the {} roomsim tables: a partial schema; drop it and retry",
            config.target.describe(),
            REQUIRED_TABLES.len()
        )));
    }
    if migrated {
        let result = match config.variant {
            SchemaVariant::Guarded => migrate_pg(db.pool()).await,
            SchemaVariant::Unguarded => migrate_pg_variant(db.pool(), config.variant).await,
        };
        result.map_err(|e| fail("migrating", e))?;
    }
    let exists = conn
        .execute("SELECT id FROM clinics WHERE id = $1", &[SqlValue::Uuid(seed.clinic.id)])
        .await
        .map_err(|e| fail("reading clinics", e))?;
    let seeded = exists.rows.is_empty();
    if seeded {
        seed_clinic(conn.as_mut(), &seed, Utc::now()).await.map_err(|e| {
            RealError::Database(format!("seeding {}: {e}", config.target.describe()))
        })?;
    }
    let fixture = fixture_from_db(conn.as_mut(), Some(&seed.clinic.name), first_day).await?;
    drop(conn);
    db.pool().close().await;
    if let Some(path) = &config.fixture_path {
        fixture.save(path)?;
    }
    Ok(SetupReport { fixture, migrated, seeded })
}

/// Sets up `scenario` in `target` (no fixture file) and returns its fixture.
pub async fn setup_for_run(
    target: &DbTarget,
    scenario: &str,
    variant: SchemaVariant,
) -> Result<std::sync::Arc<Fixture>, RealError> {
    let config = SetupConfig {
        target: target.clone(),
        scenario: scenario.to_string(),
        variant,
        fixture_path: None,
    };
    Ok(std::sync::Arc::new(setup(&config).await?.fixture))
}

/// The lines `roomsim db setup` prints.
pub fn describe(report: &SetupReport, config: &SetupConfig) -> String {
    let f = &report.fixture;
    let mut lines = vec![
        format!("database: {}", config.target.describe()),
        format!(
            "migrations: {} ({} schema)",
            if report.migrated { "applied" } else { "already present" },
            config.variant.name()
        ),
        format!("clinic: {} ({})", f.clinic_id, if report.seeded { "seeded" } else { "existed" }),
        format!(
            "rooms: {}  doctors: {}  patients: {}",
            f.room_ids.len(),
            f.doctor_ids.len(),
            f.patient_ids.len()
        ),
        format!("appointment types: {}", f.appointment_types.join(", ")),
        format!("first day: {}", f.first_day),
    ];
    if let Some(path) = &config.fixture_path {
        lines.push(format!("fixture written to {}", path.display()));
    }
    lines.join("\n") + "\n"
}
