//! The database seam.
//!
//! Every byte of SQL that backend-core runs goes through [`Db`] and [`Conn`]: the same
//! statements run on real PostgreSQL (the sqlx implementation in [`pg`]) and, in the
//! simulation, on the in-memory PostgreSQL-semantics model (the adapter lives in `sim`).
//!
//! The seam is deliberately small and textual: a connection executes one SQL statement with
//! positional parameters (`$1`, `$2`, …) and returns rows or an error classified by SQLSTATE.
//! Transactions are plain `BEGIN` / `COMMIT` / `ROLLBACK` statements so both implementations
//! see exactly the same statement stream.

pub mod guard;
pub mod pg;
pub mod schema;
pub mod testing;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// How long a database session may sit idle inside a transaction block before PostgreSQL
/// ends it (`idle_in_transaction_session_timeout`: FATAL 25P03, the transaction aborts and its
/// locks go): 5× the room-assignment p95 target (100 ms). A booking transaction's statements
/// follow each other within milliseconds, so a gap this long means the backend lost the
/// connection or stalled. Without it, a connection cut right after its `BEGIN` left the
/// database's session idle in transaction, holding whatever it had locked, until TCP noticed
/// (found by the simulation: storm-partition, `sim/tests/client_faults.rs`).
pub const IDLE_IN_TRANSACTION_TIMEOUT_MS: u64 = 500;

/// The statements every new database session runs before it is first used, on PostgreSQL
/// ([`pg::PgDb`]) and in the simulation (sim's `ModelDb`) alike; none under the planted
/// [`GuardMode::NoIdleTimeout`](guard::GuardMode::NoIdleTimeout).
pub fn session_setup(guard: guard::GuardMode) -> Vec<String> {
    if guard == guard::GuardMode::NoIdleTimeout {
        return Vec::new();
    }
    vec![format!("SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_TIMEOUT_MS}")]
}

/// A boxed, `Send` future: the trait must be object safe (`Arc<dyn Db>`) and axum handlers need
/// `Send` futures.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A parameter or a column value. Only the types the booking SQL uses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SqlValue {
    Null,
    Bool(bool),
    /// int, bigint, serial: all carried as i64.
    Int(i64),
    Text(String),
    Uuid(Uuid),
    /// timestamptz, always UTC.
    Timestamp(DateTime<Utc>),
}

/// The result of one statement.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rows {
    /// Column names, in select-list order.
    pub columns: Vec<String>,
    pub rows: Vec<Vec<SqlValue>>,
    /// The command tag's row count (INSERT 0 n, UPDATE n, SELECT n, …).
    pub rows_affected: u64,
}

/// A database error, classified by SQLSTATE. Never shown raw to an HTTP client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbError {
    /// Five-character SQLSTATE, or one of the non-standard codes below for transport failures.
    pub sqlstate: String,
    pub message: String,
    /// The constraint named by the error, when PostgreSQL names one (23505, 23P01, 23503, …).
    pub constraint: Option<String>,
}

impl DbError {
    /// SQLSTATE used for a connection that failed or was lost (PostgreSQL's class 08).
    pub const CONNECTION_FAILURE: &'static str = "08006";
    /// SQLSTATE used when no pooled connection could be had within the pool timeout.
    pub const POOL_TIMEOUT: &'static str = "08001";

    pub fn new(sqlstate: impl Into<String>, message: impl Into<String>) -> Self {
        DbError { sqlstate: sqlstate.into(), message: message.into(), constraint: None }
    }

    pub fn is_serialization_failure(&self) -> bool {
        self.sqlstate == "40001"
    }
    pub fn is_deadlock(&self) -> bool {
        self.sqlstate == "40P01"
    }
    pub fn is_exclusion_violation(&self) -> bool {
        self.sqlstate == "23P01"
    }
    pub fn is_unique_violation(&self) -> bool {
        self.sqlstate == "23505"
    }
    /// Connection-class failures (08xxx): the outcome of an in-flight commit is unknown.
    pub fn is_connection_failure(&self) -> bool {
        self.sqlstate.starts_with("08")
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.sqlstate)
    }
}

impl std::error::Error for DbError {}

/// A source of connections (a pool).
pub trait Db: Send + Sync + 'static {
    /// Takes a connection from the pool, waiting at most the pool's acquire timeout
    /// (then [`DbError::POOL_TIMEOUT`]).
    fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn Conn>, DbError>>;
}

/// One database session. Dropping it returns it to the pool. Implementations hand sessions out
/// inside [`guard::TxGuard`], which closes a session dropped mid-transaction or mid-statement
/// instead of pooling it (the same code for PostgreSQL and for the simulation's model).
pub trait Conn: Send {
    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<Rows, DbError>>;
}
