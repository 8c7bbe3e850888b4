//! Sessions, transactions and the engine's scheduling of blocked statements.
//!
//! LIFE OF A SUBMIT
//! 1. The string is split into statements; they run in order in the session's transaction
//!    (an implicit one, committed after the last statement, unless BEGIN opened a block).
//! 2. A statement either completes, fails (the transaction aborts at once — its locks are
//!    released at the error, not at ROLLBACK — and the rest of the string is dropped), or
//!    blocks. A blocked statement keeps its plan, snapshot and replay log.
//! 3. Whenever a transaction ends or a lock is released, [`Engine::wake`] re-runs blocked
//!    statements whose wait may be over, in the order they began to wait (the FIFO rule for
//!    conflicting waiters). Finished ones are reported through `take_completions`.
//! 4. Virtual time drives deadlock checks (once per wait, deadlock_timeout after it began),
//!    lock_timeout, statement_timeout and pg_sleep ends ([`Engine::fire_due`]).
//!
//! SNAPSHOTS
//! READ COMMITTED takes one per statement; REPEATABLE READ and SERIALIZABLE take one at the
//! first statement after BEGIN (not at BEGIN). A SERIALIZABLE READ ONLY DEFERRABLE
//! transaction's first statement takes its snapshot, then waits until no read-write
//! serializable transaction runs, and keeps that snapshot (PostgreSQL's safe-snapshot wait;
//! the model does not detect an unsafe snapshot and retry).
//!
//! NOT MODELLED
//! Prepared transactions, two-phase commit, notices/warnings sent to the client (e.g. "there
//! is no transaction in progress" still answers the command tag; only 25001, BEGIN inside a
//! block, is kept, for `Engine::take_warnings`), idle-in-transaction timeouts.
//!
//! LAYOUT
//! This file holds the session and transaction state, the submit path (split, plan, run a
//! statement, block) and the engine-wide entry points (close, crash, committed-data query).
//! `control.rs` owns the transaction lifecycle (begin, commit, abort on error) and the
//! control statements (BEGIN, COMMIT, SAVEPOINT, SET, SHOW, …); `waits.rs` owns blocked
//! statements: wake-ups, the waits-for graph, deadlock checks and timers.

mod control;
mod waits;

use crate::error::Error;
use crate::executor::{Executor, Halt, Replay, TransactionContext};
use crate::locks::Wait;
use crate::mvcc::{Snapshot, TxnId, Xid};
use crate::plan_cache::Parsed;
use crate::sql::planner::{Plan, plan_sql};
use crate::sql::{self, Isolation};
use crate::{Engine, QueryResult, Response, SessionId, SqlError, Step, Value, errinput};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// Limit on timers fired by one `advance_to`.
pub const TIMER_FIRINGS_MAX: usize = 1 << 20;

/// Limit on wake-up rounds after one event (each round completes or re-blocks a statement).
pub const WAKE_ROUNDS_MAX: usize = 1 << 20;

/// Per-session settings (SET), with PostgreSQL's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub deadlock_timeout_ms: u64,
    /// 0 = no limit.
    pub lock_timeout_ms: u64,
    /// 0 = no limit.
    pub statement_timeout_ms: u64,
    /// 0 = no limit. Enforced by the async server (`io::server`), which ends a session left
    /// idle inside a transaction block this long, as PostgreSQL's FATAL 25P03 does.
    pub idle_in_transaction_timeout_ms: u64,
    pub default_isolation: Isolation,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            deadlock_timeout_ms: 1000,
            lock_timeout_ms: 0,
            statement_timeout_ms: 0,
            idle_in_transaction_timeout_ms: 0,
            default_isolation: Isolation::ReadCommitted,
        }
    }
}

/// An open transaction.
#[derive(Clone, Debug)]
pub struct Transaction {
    pub id: TxnId,
    /// The xid for new writes and locks (the innermost subtransaction's).
    pub xid: Xid,
    pub xids: Vec<Xid>,
    pub isolation: Isolation,
    pub read_only: bool,
    pub deferrable: bool,
    /// RR/SER: the transaction snapshot, taken at the first statement.
    pub snapshot: Option<Snapshot>,
    /// Command counter: statements before this one are visible to it.
    pub cmd: u32,
    pub start_us: i64,
    /// (name, number of xids when the savepoint was set).
    pub savepoints: Vec<(String, usize)>,
    /// Opened by BEGIN (else implicit, for one submit).
    pub explicit: bool,
    /// An error happened: commands are refused until ROLLBACK (or ROLLBACK TO).
    pub failed: bool,
    /// Every xid already aborted (the error happened outside any savepoint).
    pub ended: bool,
    /// SET LOCAL overrides.
    pub local: Option<Settings>,
}

/// A statement waiting for something.
#[derive(Clone, Debug)]
pub struct Blocked {
    pub plan: Option<Arc<Plan>>,
    pub snap: Snapshot,
    pub replay: Replay,
    pub wait: Wait,
    pub wait_start: Duration,
    pub wait_seq: u64,
    pub deadlock_checked: bool,
    /// For a row wait: what PostgreSQL is sleeping on (`Engine::row_wait_targets`).
    pub waited_on: Option<SleptOn>,
    /// When the current sleep began: the deadlock timer's start. A row wait whose holder
    /// ended while another conflicting holder remains starts a new sleep, and PostgreSQL
    /// arms a new deadlock check for it (ProcSleep per lock wait).
    pub sleep_start: Duration,
}

/// One sleep of a row wait: PostgreSQL sleeps on one lock at a time and re-judges the row
/// version when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SleptOn {
    /// The tuple lock, held (or first queued for) by an earlier waiter of this transaction.
    TupleLock(TxnId),
    /// The row's first conflicting holder, this transaction (XactLockTableWait).
    Holder(TxnId),
}

impl SleptOn {
    /// The sleep on `txn`: behind its tuple lock (`tuple_lock`), else on it as a holder.
    pub(crate) fn on(tuple_lock: bool, txn: TxnId) -> SleptOn {
        if tuple_lock { SleptOn::TupleLock(txn) } else { SleptOn::Holder(txn) }
    }
}

/// The rest of a submitted string.
#[derive(Clone, Debug)]
pub struct Pending {
    pub statements: VecDeque<String>,
    pub params: Vec<Value>,
    pub last: Option<QueryResult>,
    pub started: Duration,
    pub blocked: Option<Blocked>,
}

/// A client connection.
#[derive(Clone, Debug, Default)]
pub struct Session {
    pub settings: Settings,
    pub txn: Option<Transaction>,
    pub pending: Option<Pending>,
}

impl Session {
    pub(crate) fn effective(&self) -> Settings {
        self.txn.as_ref().and_then(|t| t.local).unwrap_or(self.settings)
    }
}

/// What running one statement produced.
enum StatementProgress {
    Done(Result<QueryResult, Error>),
    Blocked,
}

fn ok(tag: &str) -> Result<QueryResult, Error> {
    Ok(QueryResult { tag: tag.to_string(), columns: Vec::new(), rows: Vec::new() })
}

fn to_response(r: Result<QueryResult, Error>) -> Response {
    r.map_err(Error::into_sql_error)
}

impl Engine {
    pub(crate) fn session_error(code: &str, message: &str) -> Step {
        Step::Done(Err(SqlError {
            code: code.into(),
            message: message.into(),
            detail: None,
            constraint: None,
        }))
    }

    pub(crate) fn submit_impl(&mut self, session: SessionId, sql: &str, params: &[Value]) -> Step {
        let Some(s) = self.sessions.get_mut(&session) else {
            return Self::session_error("08003", "connection does not exist");
        };
        if s.pending.is_some() {
            return Self::session_error("08P01", "another command is already in progress");
        }
        let pieces = sql::split_statements(sql);
        if pieces.len() > sql::STATEMENTS_PER_SUBMIT_MAX {
            return Self::session_error("54000", "too many statements in one query string");
        }
        if pieces.is_empty() {
            return Step::Done(to_response(ok("")));
        }
        s.pending = Some(Pending {
            statements: pieces.into_iter().map(|(_, p)| p.to_string()).collect(),
            params: params.to_vec(),
            last: None,
            started: self.now,
            blocked: None,
        });
        let step = match self.drive(session) {
            Some(r) => Step::Done(r),
            None => Step::Blocked,
        };
        self.wake();
        step
    }

    /// Runs the session's pending statements until one blocks (None) or all are done.
    fn drive(&mut self, session: SessionId) -> Option<Response> {
        loop {
            let s = self.sessions.get_mut(&session)?;
            let pending = s.pending.as_mut()?;
            let outcome = if let Some(b) = pending.blocked.take() {
                self.resume_blocked(session, b)
            } else if let Some(text) = pending.statements.pop_front() {
                self.exec_statement(session, &text)
            } else {
                return Some(self.finish_submit(session));
            };
            match outcome {
                StatementProgress::Blocked => return None,
                StatementProgress::Done(Ok(r)) => {
                    if let Some(p) =
                        self.sessions.get_mut(&session).and_then(|s| s.pending.as_mut())
                    {
                        p.last = Some(r);
                    }
                }
                StatementProgress::Done(Err(e)) => {
                    self.handle_error(session, &e);
                    if let Some(s) = self.sessions.get_mut(&session) {
                        s.pending = None;
                    }
                    return Some(Err(e.into_sql_error()));
                }
            }
        }
    }

    fn finish_submit(&mut self, session: SessionId) -> Response {
        let s = self.sessions.get_mut(&session).expect("driving an open session");
        let last = s.pending.take().and_then(|p| p.last).unwrap_or_else(|| ok("").expect("ok"));
        let implicit = s.txn.as_ref().is_some_and(|t| !t.explicit);
        if implicit && let Err(e) = self.commit_txn(session) {
            return Err(e.into_sql_error());
        }
        Ok(last)
    }

    fn exec_statement(&mut self, session: SessionId, text: &str) -> StatementProgress {
        let version = self.db.catalog.schema_version;
        let cached = self.plans.lock().expect("plan cache").get(text, version);
        let cached_plan = match cached {
            Some(Parsed::Control(c)) => {
                return StatementProgress::Done(self.exec_control(session, c));
            }
            Some(Parsed::Plan(p)) => Some(p),
            None => None,
        };
        if cached_plan.is_none()
            && let Some(control) = sql::parse_control(text)
        {
            if let Ok(c) = &control {
                self.plans.lock().expect("plan cache").put(
                    text,
                    version,
                    Parsed::Control(c.clone()),
                );
            }
            return StatementProgress::Done(control.and_then(|c| self.exec_control(session, c)));
        }
        let s = &self.sessions[&session];
        if s.txn.as_ref().is_some_and(|t| t.failed) {
            return StatementProgress::Done(Err(Error::InFailedTransaction));
        }
        // PostgreSQL refuses NUL in a text parameter when binding it (22021), an error like any
        // other: inside a block it aborts the transaction.
        let params = s.pending.as_ref().map(|p| p.params.as_slice()).unwrap_or_default();
        if params.iter().any(|v| matches!(v, Value::Text(t) if t.contains('\0'))) {
            return StatementProgress::Done(Err(errinput!(
                "22021",
                "invalid byte sequence for encoding \"UTF8\": 0x00"
            )));
        }
        let plan = match cached_plan {
            Some(p) => p,
            None => match self.plan_uncached(text) {
                Ok(p) => p,
                Err(e) => return StatementProgress::Done(Err(e)),
            },
        };
        self.ensure_txn(session);
        self.start_statement(session, Some(plan))
    }

    /// Parses and plans `text`, remembering a success in the plan cache.
    fn plan_uncached(&mut self, text: &str) -> Result<Arc<Plan>, Error> {
        let (rewritten, strengths) = sql::rewrite_lock_strengths(text);
        let plan = Arc::new(plan_sql(&rewritten, &strengths, &self.db.catalog)?);
        let version = self.db.catalog.schema_version;
        self.plans.lock().expect("plan cache").put(text, version, Parsed::Plan(Arc::clone(&plan)));
        Ok(plan)
    }

    /// Takes the statement snapshot (waiting for a safe one if DEFERRABLE) and runs it.
    fn start_statement(
        &mut self,
        session: SessionId,
        plan: Option<Arc<Plan>>,
    ) -> StatementProgress {
        self.start_statement_at(session, plan, None)
    }

    /// `deferred`: the commit sequence of a DEFERRABLE transaction's snapshot, taken before
    /// it waited (PostgreSQL keeps that snapshot once it proves safe).
    fn start_statement_at(
        &mut self,
        session: SessionId,
        plan: Option<Arc<Plan>>,
        deferred: Option<u64>,
    ) -> StatementProgress {
        let last_commit = self.db.xids.last_commit;
        let has_writer = self.db.ssi.has_active_writer();
        let s = self.sessions.get_mut(&session).expect("open session");
        let txn = s.txn.as_mut().expect("statement runs in a transaction");
        let snap = match (txn.isolation, txn.snapshot) {
            (Isolation::ReadCommitted, _) => {
                Snapshot { seq: last_commit, txn: txn.id, cmd: txn.cmd }
            }
            (_, Some(first)) => Snapshot { cmd: txn.cmd, ..first },
            (iso, None) => {
                let deferrable = iso == Isolation::Serializable && txn.read_only && txn.deferrable;
                if deferrable && deferred.is_none() && has_writer {
                    let taken = Snapshot { seq: last_commit, txn: txn.id, cmd: txn.cmd };
                    let wait = Wait::SafeSnapshot;
                    return self.block(session, plan, taken, Replay::default(), wait);
                }
                let seq = deferred.unwrap_or(last_commit);
                let first = Snapshot { seq, txn: txn.id, cmd: txn.cmd };
                txn.snapshot = Some(first);
                if iso == Isolation::Serializable {
                    let (id, ro) = (txn.id, txn.read_only);
                    self.db.ssi.register(id, ro, seq);
                }
                first
            }
        };
        match plan {
            Some(p) => self.attempt(session, p, snap, Replay::default(), None),
            None => StatementProgress::Done(ok("")),
        }
    }

    fn resume_blocked(&mut self, session: SessionId, b: Blocked) -> StatementProgress {
        if b.wait == Wait::SafeSnapshot {
            return self.start_statement_at(session, b.plan, Some(b.snap.seq));
        }
        let plan = b.plan.clone().expect("a blocked statement has a plan");
        self.attempt(session, plan, b.snap, b.replay.clone(), Some(b))
    }

    fn transaction_context(&self, session: SessionId) -> TransactionContext {
        let s = &self.sessions[&session];
        let t = s.txn.as_ref().expect("statement runs in a transaction");
        TransactionContext {
            session,
            txn: t.id,
            xid: t.xid,
            isolation: t.isolation,
            read_only: t.read_only,
            now_us: t.start_us,
            ssi: t.isolation == Isolation::Serializable,
        }
    }

    fn attempt(
        &mut self,
        session: SessionId,
        plan: Arc<Plan>,
        snap: Snapshot,
        mut replay: Replay,
        prior: Option<Blocked>,
    ) -> StatementProgress {
        let context = self.transaction_context(session);
        // Borrowed from the session (a field apart from `db`), not copied per attempt.
        let params: &[Value] = self
            .sessions
            .get(&session)
            .and_then(|s| s.pending.as_ref())
            .map_or(&[], |p| p.params.as_slice());
        let mut executor =
            Executor::new(&mut self.db, context, snap, params, &mut replay, self.now);
        let result = executor.execute_plan(&plan);
        match result {
            Err(Halt::Block(_)) => executor.blocked(),
            Err(_) => executor.undo(),
            Ok(_) => {}
        }
        match result {
            Ok(r) => {
                if let Some(t) = self.sessions.get_mut(&session).and_then(|s| s.txn.as_mut()) {
                    t.cmd += 1;
                }
                StatementProgress::Done(Ok(r))
            }
            Err(Halt::Error(e)) => StatementProgress::Done(Err(e)),
            Err(Halt::Block(wait)) => {
                let same = prior.filter(|p| p.wait == wait);
                match same {
                    Some(mut p) => {
                        p.replay = replay;
                        self.set_blocked(session, p);
                        StatementProgress::Blocked
                    }
                    None => self.block(session, Some(plan), snap, replay, wait),
                }
            }
        }
    }

    fn block(
        &mut self,
        session: SessionId,
        plan: Option<Arc<Plan>>,
        snap: Snapshot,
        replay: Replay,
        wait: Wait,
    ) -> StatementProgress {
        self.wait_seq += 1;
        let waited_on = self.row_slept_on(session, &wait, (self.now, self.wait_seq));
        let b = Blocked {
            plan,
            snap,
            replay,
            wait,
            wait_start: self.now,
            wait_seq: self.wait_seq,
            deadlock_checked: false,
            waited_on,
            sleep_start: self.now,
        };
        self.set_blocked(session, b);
        StatementProgress::Blocked
    }

    fn set_blocked(&mut self, session: SessionId, b: Blocked) {
        let p = self
            .sessions
            .get_mut(&session)
            .and_then(|s| s.pending.as_mut())
            .expect("blocked statement is pending");
        p.blocked = Some(b);
    }

    /// Drops the session's pending statements; a waiting INSERT's kept rows are removed
    /// ([`crate::executor::Replay::undo_kept`]).
    pub(super) fn drop_pending(&mut self, session: SessionId) {
        let pending = self.sessions.get_mut(&session).and_then(|s| s.pending.take());
        if let Some(mut b) = pending.and_then(|p| p.blocked) {
            b.replay.undo_kept(&mut self.db);
        }
    }

    pub(crate) fn close_impl(&mut self, session: SessionId) {
        if !self.sessions.contains_key(&session) {
            return;
        }
        self.drop_pending(session);
        self.abort_txn(session);
        self.db.locks.release_session(session);
        self.sessions.remove(&session);
        self.wake();
    }

    pub(crate) fn crash_impl(&mut self) {
        // Every connection dies at once: nothing blocked may run while transactions abort.
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        for &id in &ids {
            self.drop_pending(id);
        }
        for id in ids {
            self.abort_txn(id);
        }
        self.sessions.clear();
        self.db.locks = Default::default();
        self.db.ssi = Default::default();
        self.completions.clear();
    }

    pub(crate) fn query_committed_impl(&mut self, sql_text: &str) -> Response {
        // A SELECT planned before (by a session or an earlier call) is reused; only SELECT
        // plans are put in the cache from here (a SELECT text is never a control statement).
        let version = self.db.catalog.schema_version;
        let cached = match self.plans.lock().expect("plan cache").get(sql_text, version) {
            Some(Parsed::Plan(p)) if matches!(*p, Plan::Select(_)) => Some(p),
            _ => None,
        };
        let plan = match cached {
            Some(p) => p,
            None => {
                let (rewritten, strengths) = sql::rewrite_lock_strengths(sql_text);
                let plan = plan_sql(&rewritten, &strengths, &self.db.catalog)
                    .map_err(Error::into_sql_error)?;
                let plan = Arc::new(plan);
                if matches!(*plan, Plan::Select(_)) {
                    let parsed = Parsed::Plan(Arc::clone(&plan));
                    self.plans.lock().expect("plan cache").put(sql_text, version, parsed);
                }
                plan
            }
        };
        let Plan::Select(select) = &*plan else {
            return Err(errinput!("0A000", "query_committed runs only SELECT").into_sql_error());
        };
        let effects = select
            .projection
            .iter()
            .map(|p| &p.1)
            .chain(select.filter.iter())
            .any(crate::sql::expr::has_effects);
        if !select.locks.is_empty() || effects {
            return Err(
                errinput!("0A000", "query_committed runs only plain reads").into_sql_error()
            );
        }
        let context = TransactionContext {
            session: 0,
            txn: 0,
            xid: 0,
            isolation: Isolation::ReadCommitted,
            read_only: true,
            now_us: self.config.epoch_us + self.now.as_micros() as i64,
            ssi: false,
        };
        let snap = Snapshot { seq: self.db.xids.last_commit, txn: 0, cmd: 0 };
        let mut replay = Replay::default();
        let mut executor = Executor::new(&mut self.db, context, snap, &[], &mut replay, self.now);
        match executor.execute_plan(&plan) {
            Ok(r) => Ok(r),
            Err(Halt::Error(e)) => Err(e.into_sql_error()),
            Err(Halt::Block(_)) => {
                Err(errinput!("55000", "query_committed would block").into_sql_error())
            }
        }
    }

    pub(crate) fn is_blocked_impl(&self, session: SessionId) -> bool {
        self.blocked_of(session).is_some()
    }
}
