//! The sqlx implementation of [`Db`] over a PostgreSQL pool.
//!
//! WHAT: [`PgDb`] wraps a `sqlx::PgPool` built with explicit options (connection count, acquire
//! timeout, optional `search_path` for test isolation). Each [`Conn::execute`] runs one
//! prepared statement with positional parameters and decodes every column into a [`SqlValue`]
//! by its PostgreSQL type; errors are classified by SQLSTATE and constraint name.
//!
//! WHY: the booking code speaks only the small textual [`Db`] seam so the very same statement
//! stream runs on the in-memory model in the simulation. Transactions are plain `BEGIN` /
//! `COMMIT` statements; sqlx therefore does not know a transaction is open. Every session is
//! handed out inside the shared [`TxGuard`] (`guard.rs`, the same code the simulation's model
//! adapter runs), which tracks the transaction from the moment `BEGIN` is sent and, when a
//! session is dropped mid-transaction (a cancelled request), calls [`RawConn::discard`]:
//! here `close_on_drop`, so PostgreSQL rolls back on disconnect and a pooled connection is
//! never reused with a transaction (or its locks) still open.
//!
//! NOT MODELLED: column types outside the booking subset (ranges, numeric, arrays, json) are
//! rejected with a clear error rather than decoded; select them as text if ever needed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{Column, Executor, Postgres, Row, TypeInfo, ValueRef};
use uuid::Uuid;

use super::guard::{GuardMode, RawConn, TxGuard};
use super::{BoxFuture, Conn, Db, DbError, Rows, SqlValue};

/// Pool settings, passed explicitly at the call site (no hidden defaults).
#[derive(Clone, Debug)]
pub struct PgDbOptions {
    /// Upper bound on open sessions. The booking transactions hold a session for their whole
    /// duration, so this bounds concurrent transactions; 20 stays well under PostgreSQL's
    /// default `max_connections = 100` even with several backends.
    pub connections_max: u32,
    /// How long `acquire` waits for a free session before failing with
    /// [`DbError::POOL_TIMEOUT`].
    pub acquire_timeout: Duration,
    /// When set, every new session runs `SET search_path TO <schema>, public` (test isolation:
    /// one schema per test). Checked by [`schema_identifier`] and quoted.
    pub search_path: Option<String>,
    /// The transaction guard around every session ([`GuardMode::LateBegin`] is a planted bug,
    /// for tests that show the leak).
    pub guard: GuardMode,
}

impl Default for PgDbOptions {
    fn default() -> Self {
        PgDbOptions {
            connections_max: 20,
            acquire_timeout: Duration::from_secs(5),
            search_path: None,
            guard: GuardMode::default(),
        }
    }
}

/// A [`Db`] over a sqlx PostgreSQL pool.
#[derive(Clone, Debug)]
pub struct PgDb {
    pool: sqlx::PgPool,
    guard: GuardMode,
}

impl PgDb {
    /// Connects (eagerly: one session is opened to check the URL) with explicit options.
    pub async fn connect(url: &str, options: &PgDbOptions) -> Result<PgDb, DbError> {
        let search_path = match &options.search_path {
            Some(schema) => Some(schema_identifier(schema)?),
            None => None,
        };
        let setup = super::session_setup(options.guard);
        let pool = PgPoolOptions::new()
            .max_connections(options.connections_max)
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |conn, _meta| {
                let (search_path, setup) = (search_path.clone(), setup.clone());
                Box::pin(async move {
                    if let Some(schema) = search_path {
                        let sql = format!("SET search_path TO {schema}, public");
                        conn.execute(sqlx::AssertSqlSafe(sql)).await?;
                    }
                    for sql in setup {
                        conn.execute(sqlx::AssertSqlSafe(sql)).await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(map_sqlx_error)?;
        Ok(PgDb { pool, guard: options.guard })
    }

    /// The underlying pool (for migrations and test set-up).
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }
}

/// A schema name, checked and returned quoted for use in SQL (`"all"`): lower-case letters,
/// digits and `_`, not starting with a digit, at most 63 bytes (PostgreSQL's NAMEDATALEN).
/// Quoted, so a reserved word such as `all` or `user` is a valid schema name rather than a
/// syntax error; lower-case only, so the quoted name is the one an unquoted reference means.
pub fn schema_identifier(name: &str) -> Result<String, DbError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        return Err(DbError::new(
            "42602",
            format!(
                "invalid schema name {name:?}: lower-case letters, digits and _ only, not \
                 starting with a digit, at most 63 bytes"
            ),
        ));
    }
    Ok(format!("\"{name}\""))
}

impl Db for PgDb {
    fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn Conn>, DbError>> {
        Box::pin(async move {
            let conn = self.pool.acquire().await.map_err(map_sqlx_error)?;
            Ok(Box::new(TxGuard::new(PgConn { conn }, self.guard)) as Box<dyn Conn>)
        })
    }
}

/// One pooled session, unguarded: [`TxGuard`] decides when it must be discarded.
pub struct PgConn {
    conn: PoolConnection<Postgres>,
}

impl RawConn for PgConn {
    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<Rows, DbError>> {
        Box::pin(async move {
            // sqlx caches prepared statements by SQL text with the parameter types of the first
            // call. A NULL binds as text, so a statement with a NULL parameter is prepared
            // unnamed (not cached) to keep the cached version's types intact.
            let persistent = !params.contains(&SqlValue::Null);
            let query =
                bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), params).persistent(persistent);
            run(&mut self.conn, query).await
        })
    }

    /// Closes the session instead of pooling it: the server rolls back and releases every lock.
    fn discard(&mut self) {
        self.conn.close_on_drop();
    }
}

fn bind_all<'q>(
    mut query: Query<'q, Postgres, PgArguments>,
    params: &'q [SqlValue],
) -> Query<'q, Postgres, PgArguments> {
    for value in params {
        query = match value {
            // An untyped NULL binds as text; the SQL casts it where the column needs a type.
            SqlValue::Null => query.bind(None::<String>),
            SqlValue::Bool(v) => query.bind(*v),
            SqlValue::Int(v) => query.bind(*v),
            SqlValue::Text(v) => query.bind(v.as_str()),
            SqlValue::Uuid(v) => query.bind(*v),
            SqlValue::Timestamp(v) => query.bind(*v),
        };
    }
    query
}

async fn run(
    conn: &mut PoolConnection<Postgres>,
    query: Query<'_, Postgres, PgArguments>,
) -> Result<Rows, DbError> {
    let mut stream = conn.fetch_many(query);
    let mut out = Rows::default();
    while let Some(step) = stream.try_next().await.map_err(map_sqlx_error)? {
        match step {
            sqlx::Either::Left(done) => out.rows_affected += done.rows_affected(),
            sqlx::Either::Right(row) => {
                if out.columns.is_empty() {
                    out.columns = row.columns().iter().map(|c| c.name().to_string()).collect();
                }
                out.rows.push(decode_row(&row)?);
            }
        }
    }
    Ok(out)
}

fn decode_row(row: &PgRow) -> Result<Vec<SqlValue>, DbError> {
    (0..row.columns().len()).map(|index| decode_column(row, index)).collect()
}

fn decode_column(row: &PgRow, index: usize) -> Result<SqlValue, DbError> {
    let raw = row.try_get_raw(index).map_err(map_sqlx_error)?;
    if raw.is_null() {
        return Ok(SqlValue::Null);
    }
    let type_name = row.column(index).type_info().name().to_string();
    let value = match type_name.as_str() {
        "BOOL" => SqlValue::Bool(get(row, index)?),
        "INT2" => SqlValue::Int(i64::from(get::<i16>(row, index)?)),
        "INT4" => SqlValue::Int(i64::from(get::<i32>(row, index)?)),
        "INT8" => SqlValue::Int(get(row, index)?),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => SqlValue::Text(get(row, index)?),
        "UUID" => SqlValue::Uuid(get::<Uuid>(row, index)?),
        "TIMESTAMPTZ" => SqlValue::Timestamp(get::<DateTime<Utc>>(row, index)?),
        // `SELECT pg_advisory_xact_lock(..)` returns void: no value to carry.
        "VOID" => SqlValue::Null,
        other => {
            let column = row.column(index).name();
            return Err(DbError::new(
                "0A000",
                format!("column {column:?} has type {other}, which the Db seam does not decode"),
            ));
        }
    };
    Ok(value)
}

fn get<'r, T>(row: &'r PgRow, index: usize) -> Result<T, DbError>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(index).map_err(map_sqlx_error)
}

/// Maps a sqlx error to a [`DbError`] carrying SQLSTATE and constraint name.
pub fn map_sqlx_error(error: sqlx::Error) -> DbError {
    match &error {
        sqlx::Error::Database(db) => {
            let sqlstate = db.code().map(|c| c.to_string()).unwrap_or_else(|| "XX000".into());
            let mut mapped = DbError::new(sqlstate, db.message().to_string());
            mapped.constraint = db.constraint().map(str::to_string);
            mapped
        }
        sqlx::Error::PoolTimedOut => DbError::new(DbError::POOL_TIMEOUT, error.to_string()),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => {
            DbError::new(DbError::CONNECTION_FAILURE, error.to_string())
        }
        _ => DbError::new("XX000", error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_names_are_checked() {
        assert_eq!(schema_identifier("t_abc123").unwrap(), "\"t_abc123\"");
        assert_eq!(schema_identifier("all").unwrap(), "\"all\"", "a reserved word, quoted");
        assert!(schema_identifier("t; DROP TABLE rooms").is_err());
        assert!(schema_identifier("a\"b").is_err());
        assert!(schema_identifier("Upper").is_err());
        assert!(schema_identifier("").is_err());
        assert!(schema_identifier("1abc").is_err());
        assert!(schema_identifier(&"x".repeat(64)).is_err());
    }
}
