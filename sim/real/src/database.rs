//! Connecting to the real database with clear errors, checking the schema, and
//! `roomsim db cleanup`.
//!
//! Every command takes `--database-url` and an optional `--schema`: with a schema, every
//! session runs `SET search_path TO <schema>, public`, so tests (and people) can keep several
//! independent roomsim databases side by side in one PostgreSQL database.
//!
//! ERRORS: a URL that is not `postgres://…` is bad input; a database that does not answer, or
//! refuses the login, is a database error naming the (password-redacted) URL; tables missing
//! means `roomsim db setup` was not run, and the error says so.

use std::sync::Arc;
use std::time::Duration;

use backend_core::db::guard::GuardMode;
use backend_core::db::pg::{PgDb, PgDbOptions, schema_identifier};
use backend_core::db::{Conn, Db, DbError, Rows, SqlValue};

use super::RealError;
use super::monitor::redact;
use super::workload::Fixture;

/// Tables `roomsim db setup` creates; all must exist before load is served.
pub const REQUIRED_TABLES: [&str; 6] =
    ["clinics", "rooms", "doctors", "patients", "appointments", "idempotency_keys"];

/// Where the database is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbTarget {
    pub url: String,
    pub schema: Option<String>,
}

impl DbTarget {
    pub fn new(url: &str, schema: Option<&str>) -> Result<DbTarget, RealError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(RealError::BadInput(format!(
                "--database-url `{}`: expected postgres://user@host:port/database",
                redact(url)
            )));
        }
        if let Some(schema) = schema {
            schema_identifier(schema)
                .map_err(|e| RealError::BadInput(format!("--schema: {}", e.message)))?;
        }
        Ok(DbTarget { url: url.to_string(), schema: schema.map(str::to_string) })
    }

    /// A pool of `connections_max` sessions.
    pub async fn pool(&self, connections_max: u32) -> Result<PgDb, RealError> {
        self.pool_guarded(connections_max, GuardMode::default()).await
    }

    /// [`DbTarget::pool`] with a chosen transaction guard.
    pub async fn pool_guarded(
        &self,
        connections_max: u32,
        guard: GuardMode,
    ) -> Result<PgDb, RealError> {
        let options = PgDbOptions {
            connections_max,
            acquire_timeout: Duration::from_secs(5),
            search_path: self.schema.clone(),
            guard,
        };
        let connecting = PgDb::connect(&self.url, &options);
        match tokio::time::timeout(Duration::from_secs(15), connecting).await {
            Ok(Ok(db)) => Ok(db),
            Ok(Err(e)) => Err(self.unreachable(&e.to_string())),
            Err(_) => Err(self.unreachable("no answer within 15 s")),
        }
    }

    pub fn unreachable(&self, why: &str) -> RealError {
        RealError::Database(format!("cannot connect to {}: {why}", redact(&self.url)))
    }

    pub fn describe(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{} (schema {schema})", redact(&self.url)),
            None => redact(&self.url),
        }
    }
}

fn db_error(what: &str, error: DbError) -> RealError {
    RealError::Database(format!("{what}: {error}"))
}

/// One session from the pool, with a clear error.
pub async fn session(db: &PgDb) -> Result<Box<dyn Conn>, RealError> {
    db.acquire().await.map_err(|e| db_error("acquiring a session", e))
}

/// Fails with a clear message when the roomsim tables are missing.
pub async fn check_schema(db: &PgDb, target: &DbTarget) -> Result<(), RealError> {
    let mut conn = session(db).await?;
    // In the target schema itself: through the search path (`<schema>, public`) a table in
    // public would pass for it, and cleanup would then empty public's tables.
    let prefix = match &target.schema {
        Some(schema) => {
            let quoted = schema_identifier(schema)
                .map_err(|e| RealError::BadInput(format!("--schema: {}", e.message)))?;
            format!("{quoted}.")
        }
        None => String::new(),
    };
    let mut missing = Vec::new();
    for table in REQUIRED_TABLES {
        let name = SqlValue::Text(format!("{prefix}{table}"));
        let rows = conn
            .execute("SELECT to_regclass($1)::text", &[name])
            .await
            .map_err(|e| db_error("checking the schema", e))?;
        if rows.rows.first().and_then(|r| r.first()) == Some(&SqlValue::Null) {
            missing.push(table);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(RealError::Database(format!(
        "{} has no roomsim schema (missing tables: {}); run `roomsim db setup` first",
        target.describe(),
        missing.join(", ")
    )))
}

/// Counts of what cleanup removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cleaned {
    pub appointments: u64,
    pub idempotency_keys: u64,
}

/// Removes every appointment and idempotency key (the test clinic stays).
pub async fn cleanup(target: &DbTarget) -> Result<Cleaned, RealError> {
    let db = target.pool(1).await?;
    check_schema(&db, target).await?;
    let cleaned = delete_bookings(&db).await;
    db.pool().close().await;
    cleaned
}

/// Removes every appointment and idempotency key through `db` (the test clinic stays), and
/// returns how many there were.
///
/// TRUNCATE, not DELETE: a DELETE leaves the rows dead in the heap and in every index until a
/// vacuum, and validate empties the tables between its levels, so each level after the first
/// ran on the dead rows of all before it (the GiST exclusion and day-sheet indexes included).
/// On storm (2026-12-06 ~19:00) the real 10-user level used 1,277–1,309 µs of machine CPU per
/// request after an 8 s 1-user level, where the statement probe's 10-user level, in a fresh
/// database, used 1,050–1,055.
pub async fn delete_bookings(db: &PgDb) -> Result<Cleaned, RealError> {
    let mut conn = session(db).await?;
    let mut counted = [0_u64; 2];
    for (slot, table) in counted.iter_mut().zip(["idempotency_keys", "appointments"]) {
        let sql = format!("SELECT count(*) FROM {table}");
        let rows = conn.execute(&sql, &[]).await.map_err(|e| db_error(&sql, e))?;
        *slot = first_count(&rows);
    }
    let sql = "TRUNCATE idempotency_keys, appointments";
    conn.execute(sql, &[]).await.map_err(|e| db_error(sql, e))?;
    Ok(Cleaned { idempotency_keys: counted[0], appointments: counted[1] })
}

/// The count in the first column of the first row (a `SELECT count(*)`); 0 without one.
pub fn first_count(rows: &Rows) -> u64 {
    match rows.rows.first().and_then(|r| r.first()) {
        Some(SqlValue::Int(n)) => (*n).max(0) as u64,
        _ => 0,
    }
}

/// Reads the ids of the clinic named `clinic_name` (or the only clinic, when `None`) into a
/// fixture for `roomsim load`; `first_day` is the first day bookings are made for.
pub async fn fixture_from_db(
    conn: &mut dyn Conn,
    clinic_name: Option<&str>,
    first_day: chrono::NaiveDate,
) -> Result<Fixture, RealError> {
    let clinics = conn
        .execute("SELECT id, name FROM clinics ORDER BY name, id", &[])
        .await
        .map_err(|e| db_error("reading clinics", e))?;
    let id_of = |row: &Vec<SqlValue>| match row.first() {
        Some(SqlValue::Uuid(id)) => Some(*id),
        _ => None,
    };
    let clinic_id = match (clinic_name, clinics.rows.as_slice()) {
        (_, []) => return Err(RealError::Database("no clinic: run `roomsim db setup`".into())),
        (None, [only]) => id_of(only),
        (None, many) => {
            let why = format!("{} clinics in the database: choose one by name", many.len());
            return Err(RealError::BadInput(why));
        }
        (Some(name), rows) => {
            let named = rows.iter().find(|r| r.get(1) == Some(&SqlValue::Text(name.into())));
            let Some(row) = named else {
                return Err(RealError::BadInput(format!("no clinic named `{name}`")));
            };
            id_of(row)
        }
    };
    let clinic_id =
        clinic_id.ok_or_else(|| RealError::Database("clinics.id is not a uuid".into()))?;
    let clinic = [SqlValue::Uuid(clinic_id)];
    let ids = |rows: &backend_core::db::Rows| -> Vec<uuid::Uuid> {
        let first = rows.rows.iter().filter_map(|row| row.first());
        first.filter_map(|v| if let SqlValue::Uuid(id) = v { Some(*id) } else { None }).collect()
    };
    let texts = |rows: &backend_core::db::Rows| -> Vec<String> {
        let first = rows.rows.iter().filter_map(|row| row.first());
        first
            .filter_map(|v| if let SqlValue::Text(t) = v { Some(t.clone()) } else { None })
            .collect()
    };
    let mut query = async |sql: &'static str, params: &[SqlValue]| {
        conn.execute(sql, params).await.map_err(|e| db_error(sql, e))
    };
    let doctors = query("SELECT id FROM doctors WHERE clinic_id = $1 ORDER BY id", &clinic).await?;
    let rooms = query("SELECT id FROM rooms WHERE clinic_id = $1 ORDER BY id", &clinic).await?;
    let patients = query("SELECT id FROM patients ORDER BY id", &[]).await?;
    let types =
        query("SELECT key FROM appointment_types WHERE clinic_id = $1 ORDER BY key", &clinic)
            .await?;
    let fixture = Fixture {
        clinic_id,
        doctor_ids: ids(&doctors),
        patient_ids: ids(&patients),
        room_ids: ids(&rooms),
        appointment_types: texts(&types),
        first_day,
    };
    fixture.validate().map_err(|what| RealError::Database(format!("seeded data: {what}")))?;
    Ok(fixture)
}

/// `url` with its database name replaced (query parameters kept).
pub fn with_database(url: &str, database: &str) -> Result<String, RealError> {
    let bad =
        || RealError::BadInput(format!("--database-url `{}`: no /database part", redact(url)));
    let authority_start = url.find("://").ok_or_else(bad)? + 3;
    let path_start = url[authority_start..].find('/').ok_or_else(bad)? + authority_start;
    let query = url[path_start..].find('?').map(|i| &url[path_start + i..]).unwrap_or("");
    Ok(format!("{}/{database}{query}", &url[..path_start]))
}

/// A database created for one run (`validate`, `calibrate`) and dropped afterwards, so its
/// statistics (`pg_stat_database.deadlocks`) see only that run.
pub struct TempDatabase {
    admin: DbTarget,
    pub name: String,
    pub target: DbTarget,
}

/// A database name unique to this process and call: `<prefix>_<pid>_<n>`.
pub fn unique_database_name(prefix: &str) -> String {
    static CREATED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CREATED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("{prefix}_{}_{n}", std::process::id())
}

impl TempDatabase {
    /// Creates `name` (dropping a leftover of the same name first) next to `target`'s database.
    pub async fn create(target: &DbTarget, name: &str) -> Result<TempDatabase, RealError> {
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad name {name}");
        let admin = DbTarget { url: target.url.clone(), schema: None };
        let db = admin.pool(1).await?;
        let mut conn = session(&db).await?;
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            conn.execute(&sql, &[]).await.map_err(|e| {
                RealError::Database(format!("{sql}: {e} (the role needs CREATEDB)"))
            })?;
        }
        drop(conn);
        db.pool().close().await;
        let url = with_database(&target.url, name)?;
        Ok(TempDatabase { admin, name: name.to_string(), target: DbTarget { url, schema: None } })
    }

    /// Drops the database (best effort: a failure is printed, not returned).
    pub async fn drop_database(self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let result = async {
            let db = self.admin.pool(1).await?;
            let mut conn = session(&db).await?;
            let outcome = conn.execute(&sql, &[]).await;
            drop(conn);
            db.pool().close().await;
            outcome.map_err(|e| db_error(&sql, e))
        };
        if let Err(e) = result.await {
            eprintln!("warning: could not drop database {}: {e}", self.name);
        }
    }
}

/// The pool as the `Db` trait object backend-core takes.
pub fn as_db(db: &PgDb) -> Arc<dyn Db> {
    Arc::new(db.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_schemas_are_checked() {
        let err = DbTarget::new("mysql://x", None).unwrap_err();
        assert!(
            matches!(err, RealError::BadInput(_) | RealError::Database(_)),
            "the user must fix it (exit 2): {err:?}"
        );
        assert!(err.to_string().contains("mysql://x"), "{err}");
        assert!(DbTarget::new("postgres://root@127.0.0.1/test", Some("t_1")).is_ok());
        let err = DbTarget::new("postgres://h/db", Some("x; drop")).unwrap_err();
        assert!(err.to_string().contains("--schema"), "{err}");
    }

    #[test]
    fn database_names_are_replaced_in_urls() {
        let url =
            with_database("postgres://root@127.0.0.1:5432/test?sslmode=disable", "x").unwrap();
        assert_eq!(url, "postgres://root@127.0.0.1:5432/x?sslmode=disable");
        assert_eq!(with_database("postgres://h/db", "y").unwrap(), "postgres://h/y");
        assert!(with_database("postgres://h", "y").is_err());
    }

    #[tokio::test]
    async fn an_unreachable_database_is_a_clear_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let target = DbTarget::new(&format!("postgres://u:pw@127.0.0.1:{port}/db"), None).unwrap();
        let Err(err) = target.pool(1).await else { panic!("nothing listens there") };
        let text = err.to_string();
        assert!(text.contains("cannot connect to postgres://u:***@127.0.0.1"), "{text}");
        assert!(
            matches!(err, RealError::BadInput(_) | RealError::Database(_)),
            "the user must fix it (exit 2): {err:?}"
        );
    }
}
