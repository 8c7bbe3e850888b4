//! The sqlx implementation of [`Db`] over a PostgreSQL pool.
//!
//! WHAT: [`PgDb`] wraps a `sqlx::PgPool` built with explicit options (connection count, acquire
//! timeout, optional `search_path` for test isolation). Each [`Conn::execute`] runs one
//! prepared statement with positional parameters and decodes every column into a [`SqlValue`]
//! by its PostgreSQL type; errors are classified by SQLSTATE and constraint name.
//!
//! WHY: the booking code speaks only the small textual [`Db`] seam so the very same statement
//! stream runs on the in-memory model in the simulation. Transactions are plain `BEGIN` /
//! `COMMIT` statements; sqlx therefore does not know a transaction is open, so [`PgConn`]
//! tracks it itself and, if dropped mid-transaction (a cancelled request), closes the session
//! instead of returning it to the pool: PostgreSQL rolls back on disconnect, so a pooled
//! connection is never reused with a transaction (or its locks) still open.
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
    /// one schema per test). Must be a plain identifier.
    pub search_path: Option<String>,
}

impl Default for PgDbOptions {
    fn default() -> Self {
        PgDbOptions {
            connections_max: 20,
            acquire_timeout: Duration::from_secs(5),
            search_path: None,
        }
    }
}

/// A [`Db`] over a sqlx PostgreSQL pool.
#[derive(Clone, Debug)]
pub struct PgDb {
    pool: sqlx::PgPool,
}

impl PgDb {
    /// Connects (eagerly: one session is opened to check the URL) with explicit options.
    pub async fn connect(url: &str, options: &PgDbOptions) -> Result<PgDb, DbError> {
        let search_path = match &options.search_path {
            Some(schema) => Some(checked_identifier(schema)?),
            None => None,
        };
        let pool = PgPoolOptions::new()
            .max_connections(options.connections_max)
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |conn, _meta| {
                let search_path = search_path.clone();
                Box::pin(async move {
                    if let Some(schema) = search_path {
                        let sql = format!("SET search_path TO {schema}, public");
                        conn.execute(sqlx::AssertSqlSafe(sql)).await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(map_sqlx_error)?;
        Ok(PgDb { pool })
    }

    /// The underlying pool (for migrations and test set-up).
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }
}

/// A schema name used in `SET search_path`: letters, digits and `_` only, ≤ 63 bytes.
fn checked_identifier(name: &str) -> Result<String, DbError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        return Err(DbError::new(
            "42602",
            format!("invalid schema name for search_path: {name:?}"),
        ));
    }
    Ok(name.to_string())
}

impl Db for PgDb {
    fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn Conn>, DbError>> {
        Box::pin(async move {
            let conn = self.pool.acquire().await.map_err(map_sqlx_error)?;
            Ok(Box::new(PgConn { conn: Some(conn), transaction_open: false }) as Box<dyn Conn>)
        })
    }
}

/// One pooled session.
pub struct PgConn {
    conn: Option<PoolConnection<Postgres>>,
    /// True between a `BEGIN`/`START TRANSACTION` and the `COMMIT`/`ROLLBACK` that ends it.
    transaction_open: bool,
}

impl Drop for PgConn {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut()
            && self.transaction_open
        {
            // The transaction was abandoned (a cancelled future or an early return). Close
            // the session: the server rolls back and releases every lock.
            conn.close_on_drop();
        }
    }
}

/// How a statement changes the session's transaction state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TransactionEffect {
    Begins,
    Ends,
    None,
}

fn transaction_effect(sql: &str) -> TransactionEffect {
    let head: String = sql.trim_start().chars().take(24).collect::<String>().to_ascii_uppercase();
    let first = head.split_whitespace().next().unwrap_or("");
    let second = head.split_whitespace().nth(1).unwrap_or("");
    match first {
        "BEGIN" | "START" => TransactionEffect::Begins,
        "COMMIT" | "END" | "ABORT" => TransactionEffect::Ends,
        // `ROLLBACK TO [SAVEPOINT] x` keeps the transaction open.
        "ROLLBACK" if second != "TO" => TransactionEffect::Ends,
        _ => TransactionEffect::None,
    }
}

impl Conn for PgConn {
    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<Rows, DbError>> {
        Box::pin(async move {
            let conn = self.conn.as_mut().expect("PgConn used after its session was taken");
            // sqlx caches prepared statements by SQL text with the parameter types of the first
            // call. A NULL binds as text, so a statement with a NULL parameter is prepared
            // unnamed (not cached) to keep the cached version's types intact.
            let persistent = !params.contains(&SqlValue::Null);
            let query =
                bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), params).persistent(persistent);
            let result = run(conn, query).await;
            match transaction_effect(sql) {
                TransactionEffect::Begins if result.is_ok() => self.transaction_open = true,
                // COMMIT of a failed transaction still ends it; so does a failed ROLLBACK.
                TransactionEffect::Ends => self.transaction_open = false,
                _ => {}
            }
            result
        })
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
    fn transaction_effect_tracks_begin_commit_and_savepoints() {
        assert_eq!(
            transaction_effect("BEGIN ISOLATION LEVEL SERIALIZABLE"),
            TransactionEffect::Begins
        );
        assert_eq!(transaction_effect("  commit"), TransactionEffect::Ends);
        assert_eq!(transaction_effect("ROLLBACK"), TransactionEffect::Ends);
        assert_eq!(transaction_effect("ROLLBACK TO SAVEPOINT s1"), TransactionEffect::None);
        assert_eq!(transaction_effect("SAVEPOINT s1"), TransactionEffect::None);
        assert_eq!(transaction_effect("SELECT 1"), TransactionEffect::None);
    }

    #[test]
    fn search_path_names_are_checked() {
        assert!(checked_identifier("t_abc123").is_ok());
        assert!(checked_identifier("t; DROP TABLE rooms").is_err());
        assert!(checked_identifier("").is_err());
        assert!(checked_identifier("1abc").is_err());
    }
}
