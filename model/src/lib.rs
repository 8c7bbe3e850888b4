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
//!
//! LIFE OF A STATEMENT
//! 1. [`Engine::submit`] splits the string at top-level `;` (`sql::split_statements`).
//! 2. Control statements (BEGIN, COMMIT, SAVEPOINT, SET, …) are handled by the session layer
//!    (`session.rs`); everything else is parsed by sqlparser and planned once into a closed
//!    `Plan` (`sql/planner/`), resolving names against the catalog (`catalog.rs`).
//! 3. The session picks the snapshot (per statement at READ COMMITTED, at the first statement
//!    at REPEATABLE READ / SERIALIZABLE) and the executor (`executor/`) runs the plan over
//!    the MVCC heap (`mvcc.rs`), taking row and advisory locks (`locks.rs`), checking
//!    constraints, and reporting SIREAD reads and writes to SSI (`ssi.rs`).
//! 4. If a lock or another transaction is in the way, the statement's changes are undone and
//!    it blocks; it re-runs with the same snapshot when woken (commit, rollback, release) or
//!    fails when a timer fires (deadlock check in `deadlock.rs`, lock_timeout,
//!    statement_timeout).
//! 5. Errors abort the transaction at once (locks released); the outcome is a [`Response`]
//!    with PostgreSQL's SQLSTATE and message (`error.rs`).

pub mod io;
pub mod profile;
pub mod spec;

pub mod catalog;
pub mod deadlock;
pub mod error;
pub mod executor;
pub mod locks;
pub mod mvcc;
pub mod plan_cache;
pub mod session;
pub mod sql;
pub mod ssi;
pub mod value;

use rand::SeedableRng;
use std::collections::BTreeMap;
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

/// The engine: catalog, MVCC heap, lock manager, SSI tracker, sessions and virtual time.
///
/// All methods are synchronous and deterministic: the same sequence of calls with the same
/// config gives the same results.
pub struct Engine {
    config: EngineConfig,
    now: Duration,
    next_session: SessionId,
    /// Open sessions. BTreeMap for determinism of every scan (wake order ties, timers).
    sessions: BTreeMap<SessionId, session::Session>,
    db: executor::Database,
    completions: Vec<Completion>,
    /// Orders waits that began at the same virtual time.
    wait_seq: u64,
    /// Re-entrancy guard for [`Engine::wake`].
    waking: bool,
    /// Parsed statements by text (skips sqlparser and planning on repeats); shared by the
    /// forks of one engine (plans depend only on text and schema version).
    plans: std::sync::Arc<std::sync::Mutex<plan_cache::PlanCache>>,
    /// Warnings PostgreSQL would send as NOTICE messages (kept, not sent to the client).
    warnings: Vec<Warning>,
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

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        let db = executor::Database {
            catalog: catalog::Catalog::default(),
            xids: mvcc::Xids::default(),
            locks: locks::Locks::default(),
            ssi: ssi::Ssi::default(),
            next_row: 1,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(config.seed),
        };
        Engine {
            config,
            now: Duration::ZERO,
            next_session: 1,
            sessions: BTreeMap::new(),
            db,
            completions: Vec::new(),
            wait_seq: 0,
            waking: false,
            plans: Default::default(),
            warnings: Vec::new(),
        }
    }

    /// This engine's state under another seed, exactly as if it had been built from scratch
    /// with `seed` by the same calls — or `None` when that cannot be promised: a session is
    /// open, a completion is pending, or the random stream was drawn from (the draws would
    /// differ by seed). Cheaper than replaying migrations and seed data for every run; the
    /// fork shares this engine's plan cache.
    pub fn fork(&self, seed: u64) -> Option<Engine> {
        let untouched = rand_chacha::ChaCha8Rng::seed_from_u64(self.config.seed).get_word_pos()
            == self.db.rng.get_word_pos();
        if !self.sessions.is_empty() || !self.completions.is_empty() || !untouched {
            return None;
        }
        let mut db = self.db.clone();
        db.rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Some(Engine {
            config: EngineConfig { seed, ..self.config.clone() },
            now: self.now,
            next_session: self.next_session,
            sessions: BTreeMap::new(),
            db,
            completions: Vec::new(),
            wait_seq: self.wait_seq,
            waking: false,
            plans: std::sync::Arc::clone(&self.plans),
            warnings: Vec::new(),
        })
    }

    /// Opens a session (a client connection).
    pub fn open_session(&mut self) -> SessionId {
        let id = self.next_session;
        self.next_session += 1;
        self.sessions.insert(id, session::Session::default());
        id
    }

    /// Disconnects a session: aborts its open transaction and releases every lock it holds
    /// (session-level advisory locks included). Statements this releases show up in
    /// [`Engine::take_completions`].
    pub fn close_session(&mut self, session: SessionId) {
        self.close_impl(session);
    }

    /// Runs one or more `;`-separated statements (simple-query style: the last statement's
    /// result is the response). `params` bind `$1`, `$2`, … in every statement.
    pub fn submit(&mut self, session: SessionId, sql: &str, params: &[Value]) -> Step {
        self.submit_impl(session, sql, params)
    }

    /// Statements released since the last call (by commits, rollbacks, timeouts, deadlock
    /// checks), in the order they completed.
    pub fn take_completions(&mut self) -> Vec<Completion> {
        std::mem::take(&mut self.completions)
    }

    /// Whether the session has a statement waiting.
    pub fn is_blocked(&self, session: SessionId) -> bool {
        self.is_blocked_impl(session)
    }

    /// Virtual time since the engine started.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Advances virtual time (monotonic; an earlier time is ignored), firing every deadlock
    /// check, lock_timeout, statement_timeout and pg_sleep due at or before `now`.
    pub fn advance_to(&mut self, now: Duration) {
        self.advance_impl(now);
    }

    /// The earliest pending timer (deadlock check, timeout, pg_sleep end), if any.
    pub fn next_timer(&self) -> Option<Duration> {
        self.next_timer_impl()
    }

    /// A database crash and restart: every session is gone, every open transaction aborts,
    /// committed data survives.
    pub fn crash_restart(&mut self) {
        self.crash_impl();
    }

    /// Warnings raised since the last call (e.g. 25001 "there is already a transaction in
    /// progress"), in the order they were raised.
    pub fn take_warnings(&mut self) -> Vec<Warning> {
        std::mem::take(&mut self.warnings)
    }

    /// Every open session inside an explicit transaction block, by session id.
    pub fn open_transactions(&self) -> Vec<OpenTransaction> {
        let open = self.sessions.iter().filter_map(|(id, s)| {
            let txn = s.txn.as_ref().filter(|t| t.explicit)?;
            Some(OpenTransaction {
                session: *id,
                aborted: txn.failed,
                waiting: s.pending.is_some(),
            })
        });
        open.collect()
    }

    /// Runs a SELECT on a fresh snapshot of committed data, outside every session, taking no
    /// locks and disturbing no one (for invariant checkers).
    pub fn query_committed(&mut self, sql: &str) -> Response {
        self.query_committed_impl(sql)
    }
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
