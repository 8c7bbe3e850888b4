//! The [`Engine`] facade: the sans-IO engine's public methods, over the state it owns
//! (sessions, the database, virtual time, completions). The statement machinery behind
//! the methods is in `session/` (`impl Engine` continued) and `executor/`.

use crate::{Completion, EngineConfig, OpenTransaction, Response, SessionId, Step, Value, Warning};
use crate::{catalog, executor, locks, mvcc, plan_cache, session, ssi};
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::time::Duration;

/// The engine: catalog, MVCC heap, lock manager, SSI tracker, sessions and virtual time.
///
/// All methods are synchronous and deterministic: the same sequence of calls with the same
/// config gives the same results.
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) now: Duration,
    pub(crate) next_session: SessionId,
    /// Open sessions. BTreeMap for determinism of every scan (wake order ties, timers).
    pub(crate) sessions: BTreeMap<SessionId, session::Session>,
    pub(crate) db: executor::Database,
    pub(crate) completions: Vec<Completion>,
    /// Orders waits that began at the same virtual time.
    pub(crate) wait_seq: u64,
    /// Re-entrancy guard for [`Engine::wake`].
    pub(crate) waking: bool,
    /// Parsed statements by text (skips sqlparser and planning on repeats); shared by the
    /// forks of one engine (plans depend only on text and schema version).
    pub(crate) plans: std::sync::Arc<std::sync::Mutex<plan_cache::PlanCache>>,
    /// Warnings PostgreSQL would send as NOTICE messages (kept, not sent to the client).
    pub(crate) warnings: Vec<Warning>,
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
