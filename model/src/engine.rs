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
        for table in db.catalog.tables.values_mut() {
            table.heap.writes = 0;
            table.heap.fork_fingerprint = std::sync::OnceLock::new();
        }
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

    /// Whether the session is inside a transaction block that COMMIT would commit: open,
    /// explicit, and no error ended it (a COMMIT then answers ROLLBACK).
    pub fn commits_on_commit(&self, session: SessionId) -> bool {
        let txn = self.sessions.get(&session).and_then(|s| s.txn.as_ref());
        txn.is_some_and(|t| t.explicit && !t.failed && !t.ended)
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

    /// How long `session` may stay idle before its server ends it (PostgreSQL's
    /// `idle_in_transaction_session_timeout`, ms): its setting when it is inside a transaction
    /// block (failed or not) with no statement running or waiting; None otherwise or when the
    /// setting is 0. The sans-IO engine has no idle time of its own: the async server
    /// (`io::server`) enforces it.
    pub fn idle_in_transaction_timeout_ms(&self, session: SessionId) -> Option<u64> {
        let s = self.sessions.get(&session)?;
        let in_block = s.txn.as_ref().is_some_and(|t| t.explicit) && s.pending.is_none();
        let ms = s.effective().idle_in_transaction_timeout_ms;
        (in_block && ms > 0).then_some(ms)
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

    /// A hash of everything that decides how this engine answers from here on: every
    /// table's versions and indexes, xid states, row and advisory locks, SSI state, the
    /// sessions (their transactions, settings and waiting statements), virtual time and the
    /// seeded generator's position. Two engines of one template with equal fingerprints give
    /// the same answers to the same future submissions (up to 64-bit hash collisions), which
    /// is what visited-state caching (`roomsim check`) needs.
    ///
    /// Compares engines forked from ONE template: a table no statement wrote since the fork
    /// (`Heap::writes` = 0) is taken as the template's and not hashed. Table definitions are
    /// represented by the schema version (DDL changes it), a waiting statement's plan by its
    /// text (the caller hashes the statements it sent); warnings and completions not yet
    /// taken are left out.
    ///
    /// GARBAGE IS LEFT OUT, as PostgreSQL's HeapTupleSatisfiesVacuum would see it: a version
    /// undone or written by an aborted xid is invisible to everyone and no check examines its
    /// writer, and an aborted xmax leaves its version as if never deleted; index entries and
    /// update links are hashed by the live versions' order, not heap slots. Counters that only
    /// name new things (the next xid, row id, session id) are left out too: states that differ
    /// only there behave alike up to those names, which no SQL the engine supports shows.
    /// So a transaction rolled back after one statement or after three leaves the same
    /// fingerprint once its locks are gone.
    ///
    /// NOT CANONICAL: the same logical state reached with xids, row ids, heap slots or wait
    /// sequence numbers handed out in another order hashes differently (a missed cache hit,
    /// never a wrong one).
    pub fn fingerprint(&self) -> u64 {
        use std::fmt::Write as _;
        use std::hash::Hasher as _;
        let db = &self.db;
        let mut feed = Feed(std::hash::DefaultHasher::new());
        let _ = write!(feed, "{}", db.catalog.schema_version);
        for (name, table) in &db.catalog.tables {
            let hash = if table.heap.writes == 0 {
                *table
                    .heap
                    .fork_fingerprint
                    .get_or_init(|| table_fingerprint(name, &table.heap, &db.xids))
            } else {
                table_fingerprint(name, &table.heap, &db.xids)
            };
            feed.0.write_u64(hash);
        }
        for (xid, top, status) in db.xids.not_aborted() {
            let _ = write!(feed, "{xid}{top}{status:?}");
        }
        let _ = write!(
            feed,
            "{}{:?}{:?}{}{:?}",
            db.xids.last_commit,
            db.locks,
            db.ssi,
            db.rng.get_word_pos(),
            self.now,
        );
        for (id, session) in &self.sessions {
            let _ = write!(feed, "{id}{:?}{:?}", session.settings, session.txn);
            if let Some(p) = &session.pending {
                let _ = write!(feed, "{:?}{:?}{:?}{:?}", p.statements, p.params, p.last, p.started);
                if let Some(b) = &p.blocked {
                    let _ = write!(
                        feed,
                        "{:?}{:?}{:?}{:?}{}{}{:?}{:?}",
                        b.snap,
                        b.replay,
                        b.wait,
                        b.wait_start,
                        b.wait_seq,
                        b.deadlock_checked,
                        b.waited_on,
                        b.sleep_start
                    );
                }
            }
        }
        feed.0.finish()
    }

    /// Runs a SELECT on a fresh snapshot of committed data, outside every session, taking no
    /// locks and disturbing no one (for invariant checkers).
    pub fn query_committed(&mut self, sql: &str) -> Response {
        self.query_committed_impl(sql)
    }
}

/// Feeds formatted text into a hasher without building the string.
struct Feed(std::hash::DefaultHasher);

impl std::fmt::Write for Feed {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        std::hash::Hasher::write(&mut self.0, s.as_bytes());
        Ok(())
    }
}

/// One table's part of [`Engine::fingerprint`]: its live versions in heap order (garbage
/// left out, aborted xmax as none) and its index entries by live position.
fn table_fingerprint(name: &str, heap: &mvcc::Heap, xids: &mvcc::Xids) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let aborted = |xid: mvcc::Xid| xids.status(xid) == mvcc::XidStatus::Aborted;
    let mut live = vec![None; heap.tuples.len()];
    let mut count = 0;
    for (slot, t) in heap.tuples.iter().enumerate() {
        if !t.dead && !aborted(t.xmin) {
            live[slot] = Some(count);
            count += 1;
        }
    }
    let mut h = std::hash::DefaultHasher::new();
    name.hash(&mut h);
    for (slot, t) in heap.tuples.iter().enumerate() {
        if live[slot].is_none() {
            continue;
        }
        (t.row_id, &t.values, t.xmin, t.cmin).hash(&mut h);
        match t.xmax.filter(|&x| !aborted(x)) {
            Some(xmax) => (1u8, xmax, t.cmax, t.next.map(|n| live[n]), t.keys_updated).hash(&mut h),
            None => 0u8.hash(&mut h),
        }
    }
    for index in &heap.indexes {
        for (key, slots) in index {
            let mut any = false;
            for position in slots.iter().filter_map(|&s| live[s]) {
                if !any {
                    key.hash(&mut h);
                    any = true;
                }
                position.hash(&mut h);
            }
        }
        h.write_u8(0xff);
    }
    h.finish()
}
