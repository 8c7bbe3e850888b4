//! `model`: a deterministic, sans-IO PostgreSQL-semantics engine.
//!
//! The simulation runs this engine in place of PostgreSQL. A session submits a statement; the
//! statement completes (rows / command tag / error with SQLSTATE) or blocks. Blocked statements
//! complete when locks are released, or when virtual time advances past a deadlock check,
//! lock_timeout or statement_timeout. The engine has no threads, no wall clock and no
//! HashMap iteration order: the caller owns time and IO.
//!
//! This file fixes the public API the rest of the workspace codes against. Implementation
//! modules fill it in.

use std::time::Duration;

/// A session (one client connection). Ids are handed out in increasing order.
pub type SessionId = u32;

/// A SQL value as the engine stores and returns it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    Null,
    Bool(bool),
    /// int, bigint, serial, bigserial.
    Int(i64),
    /// text, and jsonb carried as opaque text.
    Text(String),
    Uuid(u128),
    /// timestamptz: microseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// tstzrange / int4range.
    Range(Box<Range>),
}

/// A range value. `None` bounds are infinite.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Range {
    pub lower: Option<Value>,
    pub upper: Option<Value>,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    pub empty: bool,
}

/// A completed statement.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    /// PostgreSQL's command tag: "SELECT 3", "INSERT 0 1", "UPDATE 2", "BEGIN", "ROLLBACK", …
    pub tag: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// An error as PostgreSQL reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlError {
    /// Five-character SQLSTATE, e.g. "40001", "23P01".
    pub code: String,
    /// PostgreSQL's primary message, word for word where the engine models the case.
    pub message: String,
    pub detail: Option<String>,
    /// The constraint named by 23505 / 23P01 / 23503 / 23514 errors.
    pub constraint: Option<String>,
}

/// What a statement produced.
pub type Response = Result<QueryResult, SqlError>;

/// The immediate answer to [`Engine::submit`].
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Done(Response),
    /// The statement waits; its response arrives later through [`Engine::take_completions`].
    Blocked,
}

/// A blocked statement that finished.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub session: SessionId,
    pub response: Response,
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Seeds every choice PostgreSQL leaves open.
    pub seed: u64,
}
