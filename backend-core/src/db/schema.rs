//! The schema: sqlx migrations, and the same scripts as text for the in-memory model.
//!
//! WHAT: [`migration_scripts`] returns the numbered files of `backend-core/migrations/` (via
//! `include_str!`, so they are the very bytes sqlx applies) for the simulation to run on the
//! model; [`migrate_pg`] applies them to PostgreSQL with `sqlx::migrate!`.
//!
//! SCHEMA VARIANTS: [`SchemaVariant::Unguarded`] uses `0003_appointments.sql` with the lines
//! between its `-- BEGIN no_room_overlap` and `-- END no_room_overlap` markers removed: the
//! same table without the `no_room_overlap` exclusion constraint (derived, not copied, so the
//! two variants cannot drift apart). It exists so that tests and simulations can show (a)
//! that `room-lock`, `advisory` and `serializable` prevent double booking by themselves and
//! (b) that the BROKEN strategies really double-book instead of being rescued by the constraint. Production uses
//! `Guarded` (and only `Guarded` is reachable through `sqlx::migrate!`). Which variant tests
//! which strategy is the strategy's to say (`booking::Strategy::schema_variant`).
//!
//! NOT MODELLED: down-migrations; pruning of old idempotency keys is a query
//! (`booking::idempotency::prune`), not a scheduled job.

use std::sync::OnceLock;

use sqlx::PgPool;

use super::DbError;
use super::pg::map_sqlx_error;

/// Which appointments table to create.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SchemaVariant {
    /// With the `no_room_overlap` EXCLUDE constraint (production).
    #[default]
    Guarded,
    /// Without it: room overlap is left to the booking strategy (tests, simulation).
    Unguarded,
}

impl SchemaVariant {
    pub fn name(self) -> &'static str {
        match self {
            SchemaVariant::Guarded => "guarded",
            SchemaVariant::Unguarded => "unguarded",
        }
    }
}

const REFERENCE: (&str, &str) =
    ("0001_reference_data", include_str!("../../migrations/0001_reference_data.sql"));
const RULE_POLICIES: (&str, &str) =
    ("0002_rule_policies", include_str!("../../migrations/0002_rule_policies.sql"));
const APPOINTMENTS: (&str, &str) =
    ("0003_appointments", include_str!("../../migrations/0003_appointments.sql"));
const ROOM_CONSTRAINT_BEGIN: &str = "    -- BEGIN no_room_overlap";
const ROOM_CONSTRAINT_END: &str = "    -- END no_room_overlap\n";

/// `0003_appointments.sql` without the room exclusion constraint (computed once).
fn appointments_unguarded() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        let sql = APPOINTMENTS.1;
        let begin = sql.find(ROOM_CONSTRAINT_BEGIN).expect("0003 has the BEGIN marker");
        let end = sql.find(ROOM_CONSTRAINT_END).expect("0003 has the END marker");
        assert!(begin < end, "the no_room_overlap markers are out of order");
        let note = "    -- UNGUARDED VARIANT: no no_room_overlap constraint (room overlap is left \
                    to the booking strategy).\n";
        format!("{}{note}{}", &sql[..begin], &sql[end + ROOM_CONSTRAINT_END.len()..])
    })
}
const IDEMPOTENCY: (&str, &str) =
    ("0004_idempotency_keys", include_str!("../../migrations/0004_idempotency_keys.sql"));
const DAY_SHEET_INDEX: (&str, &str) =
    ("0005_day_sheet_index", include_str!("../../migrations/0005_day_sheet_index.sql"));

/// The production (guarded) migration scripts, in order: `(name, sql)`.
pub fn migration_scripts() -> Vec<(String, &'static str)> {
    migration_scripts_for(SchemaVariant::Guarded)
}

/// The migration scripts of one schema variant, in order: `(name, sql)`.
pub fn migration_scripts_for(variant: SchemaVariant) -> Vec<(String, &'static str)> {
    let appointments = match variant {
        SchemaVariant::Guarded => APPOINTMENTS,
        SchemaVariant::Unguarded => ("0003_appointments_unguarded", appointments_unguarded()),
    };
    [REFERENCE, RULE_POLICIES, appointments, IDEMPOTENCY, DAY_SHEET_INDEX]
        .into_iter()
        .map(|(name, sql)| (name.to_string(), sql))
        .collect()
}

/// Applies the guarded migrations with sqlx's migrator (records them in `_sqlx_migrations`).
pub async fn migrate_pg(pool: &PgPool) -> Result<(), DbError> {
    sqlx::migrate!("./migrations")
        .run(pool)
        .await
        .map_err(|error| DbError::new("XX000", format!("migration failed: {error}")))
}

/// Applies one variant's scripts directly (no `_sqlx_migrations` bookkeeping): for a fresh,
/// throw-away schema in tests or in `roomsim db setup --unguarded`.
pub async fn migrate_pg_variant(pool: &PgPool, variant: SchemaVariant) -> Result<(), DbError> {
    let mut conn = pool.acquire().await.map_err(map_sqlx_error)?;
    for (_name, sql) in migration_scripts_for(variant) {
        sqlx::raw_sql(sql).execute(&mut *conn).await.map_err(map_sqlx_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_differ_only_in_the_room_constraint() {
        let guarded = migration_scripts();
        let unguarded = migration_scripts_for(SchemaVariant::Unguarded);
        assert_eq!(guarded.len(), 5);
        assert_eq!(unguarded.len(), 5);
        let all_guarded: String = guarded.iter().map(|(_, sql)| *sql).collect();
        let all_unguarded: String = unguarded.iter().map(|(_, sql)| *sql).collect();
        assert!(all_guarded.contains("CONSTRAINT no_room_overlap EXCLUDE"));
        assert!(!all_unguarded.contains("CONSTRAINT no_room_overlap EXCLUDE"));
        assert!(all_unguarded.contains("UNGUARDED VARIANT"));
        assert_eq!(
            all_guarded.lines().count() - all_unguarded.lines().count(),
            6,
            "only the constraint's lines (with its comment and markers) go"
        );
        for constraint in ["no_doctor_overlap", "no_patient_overlap", "idempotency_keys"] {
            assert!(all_unguarded.contains(constraint), "{constraint} missing");
        }
        let names: Vec<&str> = guarded.iter().map(|(name, _)| name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "scripts must be in migration order");
    }

    /// sqlx applies every file of `migrations/` on PostgreSQL; the simulation's model runs
    /// this list. A file missing from the list would leave the two schemas apart.
    #[test]
    fn every_migration_file_is_in_the_list_the_model_runs() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter_map(|name| name.strip_suffix(".sql").map(str::to_string))
            .collect();
        files.sort();
        let names: Vec<String> = migration_scripts().into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, files);
    }
}
