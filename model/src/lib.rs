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

pub mod io;
pub mod profile;
pub mod spec;

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

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { seed: 0 }
    }
}

/// The engine: catalog, MVCC heap, lock manager, SSI tracker, sessions and virtual time.
///
/// All methods are synchronous and deterministic: the same sequence of calls with the same
/// config gives the same results.
pub struct Engine {
    config: EngineConfig,
    now: Duration,
    next_session: SessionId,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        Engine { config, now: Duration::ZERO, next_session: 1 }
    }

    /// Opens a session (a client connection).
    pub fn open_session(&mut self) -> SessionId {
        let id = self.next_session;
        self.next_session += 1;
        id
    }

    /// Disconnects a session: aborts its open transaction and releases every lock it holds
    /// (session-level advisory locks included). Statements this releases show up in
    /// [`Engine::take_completions`].
    pub fn close_session(&mut self, session: SessionId) {
        let _ = session;
    }

    /// Runs one or more `;`-separated statements (simple-query style: the last statement's
    /// result is the response). `params` bind `$1`, `$2`, … in every statement.
    pub fn submit(&mut self, session: SessionId, sql: &str, params: &[Value]) -> Step {
        let _ = (session, sql, params, self.config.seed);
        Step::Done(Err(SqlError {
            code: "0A000".into(),
            message: "the model engine is not implemented yet".into(),
            detail: None,
            constraint: None,
        }))
    }

    /// Statements released since the last call (by commits, rollbacks, timeouts, deadlock
    /// checks), in the order they completed.
    pub fn take_completions(&mut self) -> Vec<Completion> {
        Vec::new()
    }

    /// Whether the session has a statement waiting.
    pub fn is_blocked(&self, session: SessionId) -> bool {
        let _ = session;
        false
    }

    /// Virtual time since the engine started.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Advances virtual time (monotonic; an earlier time is ignored), firing every deadlock
    /// check, lock_timeout, statement_timeout and pg_sleep due at or before `now`.
    pub fn advance_to(&mut self, now: Duration) {
        if now > self.now {
            self.now = now;
        }
    }

    /// The earliest pending timer (deadlock check, timeout, pg_sleep end), if any.
    pub fn next_timer(&self) -> Option<Duration> {
        None
    }

    /// A database crash and restart: every session is gone, every open transaction aborts,
    /// committed data survives.
    pub fn crash_restart(&mut self) {}
}
