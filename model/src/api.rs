//! The public types the workspace codes against: values, results, errors, the answers of
//! [`Engine::submit`](crate::Engine::submit), the engine configuration, and the statement
//! classifier for latency profiles. Re-exported from the crate root (`model::Value`, …).

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

/// The immediate answer to [`Engine::submit`](crate::Engine::submit).
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Done(Response),
    /// The statement waits; its response arrives later through [`Engine::take_completions`](crate::Engine::take_completions).
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
    /// Wall-clock time at virtual time zero, microseconds since the Unix epoch: `now()` is
    /// `epoch_us` + virtual time at transaction start. Default: 2025-01-01T00:00:00Z.
    pub epoch_us: i64,
}

/// 2025-01-01T00:00:00Z in microseconds since the Unix epoch.
pub const DEFAULT_EPOCH_US: i64 = 1_735_689_600_000_000;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { seed: 0, epoch_us: DEFAULT_EPOCH_US }
    }
}

/// A WARNING PostgreSQL sends to the client without failing the statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub session: SessionId,
    /// Engine time when it was raised.
    pub at: Duration,
    /// SQLSTATE, e.g. "25001" (BEGIN inside a transaction block).
    pub code: &'static str,
    pub message: &'static str,
}

/// A session inside a transaction block, as `pg_stat_activity` would show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenTransaction {
    pub session: SessionId,
    /// `idle in transaction (aborted)` rather than `idle in transaction`.
    pub aborted: bool,
    /// A statement of the session is waiting (a lock): the state is `active`, not idle.
    pub waiting: bool,
}

/// Cheap classification of a statement for latency profiles: "select", "insert", "update",
/// "delete", "begin", "commit", "rollback", "ddl" or "other". Looks at the first keyword only
/// (a multi-statement string is classified by its first statement).
pub fn statement_kind(sql: &str) -> &'static str {
    let mut text = sql.trim_start();
    while let Some(rest) = text.strip_prefix("--") {
        text = rest.split_once('\n').map(|x| x.1).unwrap_or("").trim_start();
    }
    // The leading ASCII letters, compared case-insensitively (no lower-cased copy).
    let len = text.bytes().take_while(u8::is_ascii_alphabetic).count();
    let word = &text[..len];
    let is = |names: &[&str]| names.iter().any(|n| word.eq_ignore_ascii_case(n));
    if is(&["select", "with", "values", "table", "show"]) {
        "select"
    } else if is(&["insert"]) {
        "insert"
    } else if is(&["update"]) {
        "update"
    } else if is(&["delete"]) {
        "delete"
    } else if is(&["begin", "start"]) {
        "begin"
    } else if is(&["commit", "end"]) {
        "commit"
    } else if is(&["rollback", "abort"]) {
        "rollback"
    } else if is(&["create", "drop", "alter", "truncate"]) {
        "ddl"
    } else {
        "other"
    }
}
