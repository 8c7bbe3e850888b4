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

use crate::deadlock;
use crate::error::Error;
use crate::executor::{Executor, Halt, Replay, TransactionContext};
use crate::locks::{Wait, row_conflicts};
use crate::mvcc::{Snapshot, TxnId, Xid, XidStatus};
use crate::plan_cache::Parsed;
use crate::sql::planner::{Plan, plan_sql};
use crate::sql::{self, Control, Isolation, LockStrength, TxnModes};
use crate::{
    Completion, Engine, QueryResult, Response, SessionId, SqlError, Step, Value, errinput,
};
use std::collections::{BTreeMap, VecDeque};
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
    pub default_isolation: Isolation,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            deadlock_timeout_ms: 1000,
            lock_timeout_ms: 0,
            statement_timeout_ms: 0,
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
    /// For a row wait: the holder PostgreSQL is sleeping on (the first conflicting one,
    /// as MultiXactIdWait takes members in order).
    pub waited_on: Option<TxnId>,
    /// When the current sleep began: the deadlock timer's start. A row wait whose holder
    /// ended while another conflicting holder remains starts a new sleep, and PostgreSQL
    /// arms a new deadlock check for it (ProcSleep per lock wait).
    pub sleep_start: Duration,
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
    fn effective(&self) -> Settings {
        self.txn.as_ref().and_then(|t| t.local).unwrap_or(self.settings)
    }
}

/// What running one statement produced.
enum Outcome {
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
                Outcome::Blocked => return None,
                Outcome::Done(Ok(r)) => {
                    if let Some(p) =
                        self.sessions.get_mut(&session).and_then(|s| s.pending.as_mut())
                    {
                        p.last = Some(r);
                    }
                }
                Outcome::Done(Err(e)) => {
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

    fn exec_statement(&mut self, session: SessionId, text: &str) -> Outcome {
        let version = self.db.catalog.schema_version;
        let cached = self.plans.lock().expect("plan cache").get(text, version);
        let cached_plan = match cached {
            Some(Parsed::Control(c)) => return Outcome::Done(self.exec_control(session, c)),
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
            return Outcome::Done(control.and_then(|c| self.exec_control(session, c)));
        }
        let s = &self.sessions[&session];
        if s.txn.as_ref().is_some_and(|t| t.failed) {
            return Outcome::Done(Err(Error::InFailedTransaction));
        }
        // PostgreSQL refuses NUL in a text parameter when binding it (22021), an error like any
        // other: inside a block it aborts the transaction.
        let params = s.pending.as_ref().map(|p| p.params.as_slice()).unwrap_or_default();
        if params.iter().any(|v| matches!(v, Value::Text(t) if t.contains('\0'))) {
            return Outcome::Done(Err(errinput!(
                "22021",
                "invalid byte sequence for encoding \"UTF8\": 0x00"
            )));
        }
        let plan = match cached_plan {
            Some(p) => p,
            None => match self.plan_uncached(text) {
                Ok(p) => p,
                Err(e) => return Outcome::Done(Err(e)),
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
    fn start_statement(&mut self, session: SessionId, plan: Option<Arc<Plan>>) -> Outcome {
        self.start_statement_at(session, plan, None)
    }

    /// `deferred`: the commit sequence of a DEFERRABLE transaction's snapshot, taken before
    /// it waited (PostgreSQL keeps that snapshot once it proves safe).
    fn start_statement_at(
        &mut self,
        session: SessionId,
        plan: Option<Arc<Plan>>,
        deferred: Option<u64>,
    ) -> Outcome {
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
            None => Outcome::Done(ok("")),
        }
    }

    fn resume_blocked(&mut self, session: SessionId, b: Blocked) -> Outcome {
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
    ) -> Outcome {
        let context = self.transaction_context(session);
        // Borrowed from the session (a field apart from `db`), not copied per attempt.
        let params: &[Value] = self
            .sessions
            .get(&session)
            .and_then(|s| s.pending.as_ref())
            .map_or(&[], |p| p.params.as_slice());
        let mut executor =
            Executor::new(&mut self.db, context, snap, params, &mut replay, self.now);
        executor.resumed = prior.is_some();
        let result = executor.run(&plan);
        if result.is_err() {
            executor.undo();
        }
        match result {
            Ok(r) => {
                if let Some(t) = self.sessions.get_mut(&session).and_then(|s| s.txn.as_mut()) {
                    t.cmd += 1;
                }
                Outcome::Done(Ok(r))
            }
            Err(Halt::Error(e)) => Outcome::Done(Err(e)),
            Err(Halt::Block(wait)) => {
                let same = prior.filter(|p| p.wait == wait);
                match same {
                    Some(mut p) => {
                        p.replay = replay;
                        self.set_blocked(session, p);
                        Outcome::Blocked
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
    ) -> Outcome {
        self.wait_seq += 1;
        let waited_on = self.first_row_blocker(session, &wait);
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
        Outcome::Blocked
    }

    fn set_blocked(&mut self, session: SessionId, b: Blocked) {
        let p = self
            .sessions
            .get_mut(&session)
            .and_then(|s| s.pending.as_mut())
            .expect("blocked statement is pending");
        p.blocked = Some(b);
    }

    fn ensure_txn(&mut self, session: SessionId) {
        if self.sessions[&session].txn.is_some() {
            return;
        }
        self.begin_txn(session, false);
    }

    fn begin_txn(&mut self, session: SessionId, explicit: bool) {
        let id = self.db.xids.allocate(None);
        let start_us = self.config.epoch_us + self.now.as_micros() as i64;
        let s = self.sessions.get_mut(&session).expect("open session");
        s.txn = Some(Transaction {
            id,
            xid: id,
            xids: vec![id],
            isolation: s.settings.default_isolation,
            read_only: false,
            deferrable: false,
            snapshot: None,
            cmd: 0,
            start_us,
            savepoints: Vec::new(),
            explicit,
            failed: false,
            ended: false,
            local: None,
        });
    }

    /// Aborts on error: the innermost subtransaction if a savepoint exists, else the whole
    /// transaction (an implicit one is also closed).
    fn handle_error(&mut self, session: SessionId, e: &Error) {
        if *e == Error::InFailedTransaction {
            return;
        }
        let Some(s) = self.sessions.get_mut(&session) else { return };
        let Some(txn) = s.txn.as_mut() else { return };
        if !txn.explicit {
            self.abort_txn(session);
            return;
        }
        txn.failed = true;
        if let Some(&(_, from)) = txn.savepoints.last() {
            let xids: Vec<Xid> = txn.xids[from..].to_vec();
            self.abort_xids(&xids);
        } else {
            txn.ended = true;
            let (id, xids) = (txn.id, txn.xids.clone());
            self.abort_xids(&xids);
            self.db.ssi.aborted(id);
        }
        self.wake();
    }

    fn abort_xids(&mut self, xids: &[Xid]) {
        let live: Vec<Xid> = xids
            .iter()
            .copied()
            .filter(|x| self.db.xids.status(*x) == XidStatus::InProgress)
            .collect();
        self.db.xids.abort(&live);
        self.db.locks.release_xids(xids);
    }

    /// Rolls back and closes the session's transaction.
    fn abort_txn(&mut self, session: SessionId) {
        let Some(txn) = self.sessions.get_mut(&session).and_then(|s| s.txn.take()) else { return };
        if !txn.ended {
            self.abort_xids(&txn.xids);
            self.db.ssi.aborted(txn.id);
        }
        self.wake();
    }

    /// Commits and closes the session's transaction (SSI may refuse: then it aborts).
    fn commit_txn(&mut self, session: SessionId) -> Result<(), Error> {
        let Some(txn) = self.sessions.get(&session).and_then(|s| s.txn.clone()) else {
            return Ok(());
        };
        if txn.isolation == Isolation::Serializable
            && let Err(e) = self.db.ssi.pre_commit(txn.id)
        {
            self.abort_txn(session);
            return Err(e);
        }
        self.sessions.get_mut(&session).expect("open session").txn = None;
        let live: Vec<Xid> = txn
            .xids
            .iter()
            .copied()
            .filter(|x| self.db.xids.status(*x) == XidStatus::InProgress)
            .collect();
        let seq = self.db.xids.commit(&live);
        self.db.ssi.committed(txn.id, seq);
        self.db.locks.release_xids(&txn.xids);
        self.wake();
        Ok(())
    }

    fn exec_control(&mut self, session: SessionId, c: Control) -> Result<QueryResult, Error> {
        let failed = self.sessions[&session].txn.as_ref().is_some_and(|t| t.failed);
        let allowed_when_failed =
            matches!(c, Control::Commit | Control::Rollback | Control::RollbackTo(_));
        if failed && !allowed_when_failed {
            return Err(Error::InFailedTransaction);
        }
        match c {
            Control::Begin(modes, start) => self.control_begin(session, modes, start),
            Control::SetTransaction(modes) => self.control_set_transaction(session, modes),
            Control::Commit => {
                let Some(t) = self.sessions[&session].txn.as_ref() else { return ok("COMMIT") };
                if t.failed {
                    self.abort_txn(session);
                    return ok("ROLLBACK");
                }
                self.commit_txn(session)?;
                ok("COMMIT")
            }
            Control::Rollback => {
                self.abort_txn(session);
                ok("ROLLBACK")
            }
            Control::Savepoint(name) => self.control_savepoint(session, name),
            Control::RollbackTo(name) => self.control_rollback_to(session, &name),
            Control::Release(name) => self.control_release(session, &name),
            Control::Set { name, value, local } => self.control_set(session, &name, value, local),
            Control::Show(name) => self.control_show(session, &name),
            Control::NoOp(tag) => ok(tag),
        }
    }

    fn control_begin(
        &mut self,
        session: SessionId,
        modes: TxnModes,
        start: bool,
    ) -> Result<QueryResult, Error> {
        let tag = if start { "START TRANSACTION" } else { "BEGIN" };
        let s = self.sessions.get_mut(&session).expect("open session");
        match s.txn.as_mut() {
            Some(t) if t.explicit => {
                let at = self.now;
                self.warnings.push(crate::Warning {
                    session,
                    at,
                    code: "25001",
                    message: "there is already a transaction in progress",
                });
                return ok(tag);
            }
            Some(t) => t.explicit = true,
            None => self.begin_txn(session, true),
        }
        self.apply_modes(session, modes)?;
        ok(tag)
    }

    fn apply_modes(&mut self, session: SessionId, modes: TxnModes) -> Result<(), Error> {
        let t =
            self.sessions.get_mut(&session).and_then(|s| s.txn.as_mut()).expect("transaction open");
        if let Some(iso) = modes.isolation {
            if t.snapshot.is_some() || t.cmd > 0 {
                return Err(errinput!(
                    "25001",
                    "SET TRANSACTION ISOLATION LEVEL must be called before any query"
                ));
            }
            t.isolation = iso;
        }
        if let Some(ro) = modes.read_only {
            t.read_only = ro;
        }
        if let Some(d) = modes.deferrable {
            t.deferrable = d;
        }
        Ok(())
    }

    fn control_set_transaction(
        &mut self,
        session: SessionId,
        modes: TxnModes,
    ) -> Result<QueryResult, Error> {
        let explicit = self.sessions[&session].txn.as_ref().is_some_and(|t| t.explicit);
        if !explicit {
            // PostgreSQL warns "SET TRANSACTION can only be used in transaction blocks".
            return ok("SET");
        }
        self.apply_modes(session, modes)?;
        ok("SET")
    }

    fn explicit_txn(&mut self, session: SessionId, what: &str) -> Result<&mut Transaction, Error> {
        match self.sessions.get_mut(&session).and_then(|s| s.txn.as_mut()) {
            Some(t) if t.explicit => Ok(t),
            _ => Err(errinput!("25P01", "{what} can only be used in transaction blocks")),
        }
    }

    fn control_savepoint(
        &mut self,
        session: SessionId,
        name: String,
    ) -> Result<QueryResult, Error> {
        let xid_owner = self.explicit_txn(session, "SAVEPOINT")?.id;
        let xid = self.db.xids.allocate(Some(xid_owner));
        let t = self.explicit_txn(session, "SAVEPOINT")?;
        t.savepoints.push((name, t.xids.len()));
        t.xids.push(xid);
        t.xid = xid;
        ok("SAVEPOINT")
    }

    fn control_rollback_to(
        &mut self,
        session: SessionId,
        name: &str,
    ) -> Result<QueryResult, Error> {
        let t = self.explicit_txn(session, "ROLLBACK TO SAVEPOINT")?;
        let Some(pos) = t.savepoints.iter().rposition(|(n, _)| n == name) else {
            return Err(errinput!("3B001", "savepoint \"{name}\" does not exist"));
        };
        let from = t.savepoints[pos].1;
        t.savepoints.truncate(pos + 1);
        let undone: Vec<Xid> = t.xids[from..].to_vec();
        let owner = t.id;
        self.abort_xids(&undone);
        let xid = self.db.xids.allocate(Some(owner));
        let t = self.explicit_txn(session, "ROLLBACK TO SAVEPOINT")?;
        t.xids.push(xid);
        t.xid = xid;
        t.failed = false;
        self.wake();
        ok("ROLLBACK")
    }

    fn control_release(&mut self, session: SessionId, name: &str) -> Result<QueryResult, Error> {
        let t = self.explicit_txn(session, "RELEASE SAVEPOINT")?;
        let Some(pos) = t.savepoints.iter().rposition(|(n, _)| n == name) else {
            return Err(errinput!("3B001", "savepoint \"{name}\" does not exist"));
        };
        t.savepoints.truncate(pos);
        ok("RELEASE")
    }

    fn control_set(
        &mut self,
        session: SessionId,
        name: &str,
        value: Option<String>,
        local: bool,
    ) -> Result<QueryResult, Error> {
        let tag = if value.is_some() { "SET" } else { "RESET" };
        let s = self.sessions.get_mut(&session).expect("open session");
        let mut settings = s.effective();
        let defaults = Settings::default();
        let v = value.as_deref();
        match name {
            "deadlock_timeout" => {
                settings.deadlock_timeout_ms = match v {
                    Some(v) => sql::parse_duration_ms(name, v)?,
                    None => defaults.deadlock_timeout_ms,
                }
            }
            "lock_timeout" => {
                settings.lock_timeout_ms =
                    v.map(|v| sql::parse_duration_ms(name, v)).transpose()?.unwrap_or(0)
            }
            "statement_timeout" => {
                settings.statement_timeout_ms =
                    v.map(|v| sql::parse_duration_ms(name, v)).transpose()?.unwrap_or(0)
            }
            "default_transaction_isolation" | "transaction_isolation" => {
                let level = match v.map(|v| v.to_ascii_lowercase()) {
                    None => Isolation::ReadCommitted,
                    Some(l) if l == "read committed" || l == "read uncommitted" => {
                        Isolation::ReadCommitted
                    }
                    Some(l) if l == "repeatable read" => Isolation::RepeatableRead,
                    Some(l) if l == "serializable" => Isolation::Serializable,
                    Some(l) => {
                        return Err(errinput!(
                            "22023",
                            "invalid value for parameter \"{name}\": \"{l}\""
                        ));
                    }
                };
                if name == "transaction_isolation" {
                    let modes = TxnModes { isolation: Some(level), ..TxnModes::default() };
                    self.apply_modes(session, modes)?;
                    return ok(tag);
                }
                settings.default_isolation = level;
            }
            "search_path"
            | "client_min_messages"
            | "timezone"
            | "application_name"
            | "client_encoding"
            | "datestyle"
            | "synchronous_commit"
            | "idle_in_transaction_session_timeout"
            | "extra_float_digits"
            | "intervalstyle"
            | "standard_conforming_strings" => return ok(tag),
            other => {
                return Err(errinput!("42704", "unrecognized configuration parameter \"{other}\""));
            }
        }
        let s = self.sessions.get_mut(&session).expect("open session");
        match (local, s.txn.as_mut()) {
            (true, Some(t)) if t.explicit => t.local = Some(settings),
            (true, _) => {}
            (false, txn) => {
                s.settings = settings;
                if let Some(t) = txn {
                    t.local = None;
                }
            }
        }
        ok(tag)
    }

    fn control_show(&mut self, session: SessionId, name: &str) -> Result<QueryResult, Error> {
        let s = &self.sessions[&session];
        let e = s.effective();
        let ms = |v: u64| {
            if v == 0 {
                "0".to_string()
            } else if v.is_multiple_of(1000) {
                format!("{}s", v / 1000)
            } else {
                format!("{v}ms")
            }
        };
        let iso = |i: Isolation| match i {
            Isolation::ReadCommitted => "read committed",
            Isolation::RepeatableRead => "repeatable read",
            Isolation::Serializable => "serializable",
        };
        let value = match name {
            "deadlock_timeout" => ms(e.deadlock_timeout_ms),
            "lock_timeout" => ms(e.lock_timeout_ms),
            "statement_timeout" => ms(e.statement_timeout_ms),
            "default_transaction_isolation" => iso(e.default_isolation).to_string(),
            "transaction_isolation" => {
                iso(s.txn.as_ref().map(|t| t.isolation).unwrap_or(e.default_isolation)).to_string()
            }
            other => {
                return Err(errinput!("42704", "unrecognized configuration parameter \"{other}\""));
            }
        };
        Ok(QueryResult {
            tag: "SHOW".into(),
            columns: vec![name.to_string()],
            rows: vec![vec![Value::Text(value)]],
        })
    }

    // ---- waking, timers, deadlocks ----

    fn blocked_order(&self) -> Vec<(Duration, u64, SessionId)> {
        let mut order: Vec<(Duration, u64, SessionId)> = self
            .sessions
            .iter()
            .filter_map(|(id, s)| {
                s.pending.as_ref()?.blocked.as_ref().map(|b| (b.wait_start, b.wait_seq, *id))
            })
            .collect();
        order.sort();
        order
    }

    /// The first conflicting holder of the row a `Wait::Row` waits for.
    fn first_row_blocker(&self, session: SessionId, wait: &Wait) -> Option<TxnId> {
        let Wait::Row { table, row, mode } = wait else { return None };
        let txn = self.txn_of(session).unwrap_or(0);
        self.db.locks.row_blockers(table, *row, txn, *mode).first().map(|l| l.txn)
    }

    /// Row waiters whose holder ended while another conflicting holder remains begin a new
    /// sleep: a new deadlock check, deadlock_timeout from now (see [`Blocked::sleep_start`]).
    fn rearm_changed_row_waits(&mut self) {
        let now = self.now;
        for (_, _, s) in self.blocked_order() {
            let Some(b) = self.blocked_of(s) else { continue };
            let Some(previous) = b.waited_on else { continue };
            let Wait::Row { table, row, mode } = &b.wait else { continue };
            let txn = self.txn_of(s).unwrap_or(0);
            let current: Vec<TxnId> =
                self.db.locks.row_blockers(table, *row, txn, *mode).iter().map(|l| l.txn).collect();
            if current.is_empty() || current.contains(&previous) {
                continue;
            }
            if let Some(b) = self
                .sessions
                .get_mut(&s)
                .and_then(|x| x.pending.as_mut())
                .and_then(|p| p.blocked.as_mut())
            {
                b.waited_on = Some(current[0]);
                b.sleep_start = now;
                b.deadlock_checked = false;
            }
        }
    }

    /// Re-runs blocked statements whose wait may be over, first waiter first, until none can
    /// make progress.
    pub(crate) fn wake(&mut self) {
        if self.waking {
            return;
        }
        self.rearm_changed_row_waits();
        self.waking = true;
        for _ in 0..WAKE_ROUNDS_MAX {
            let mut progressed = false;
            for (_, _, s) in self.blocked_order() {
                if !self.wait_over(s) {
                    continue;
                }
                let before = self.sessions[&s]
                    .pending
                    .as_ref()
                    .and_then(|p| p.blocked.as_ref())
                    .map(|b| b.wait.clone());
                if let Some(response) = self.drive(s) {
                    self.completions.push(Completion { session: s, response });
                    progressed = true;
                    break;
                }
                let after = self.sessions[&s]
                    .pending
                    .as_ref()
                    .and_then(|p| p.blocked.as_ref())
                    .map(|b| b.wait.clone());
                if before != after {
                    progressed = true;
                    break;
                }
            }
            if !progressed {
                break;
            }
        }
        self.rearm_changed_row_waits();
        self.waking = false;
    }

    fn blocked_of(&self, s: SessionId) -> Option<&Blocked> {
        self.sessions.get(&s)?.pending.as_ref()?.blocked.as_ref()
    }

    fn txn_of(&self, s: SessionId) -> Option<TxnId> {
        self.sessions.get(&s)?.txn.as_ref().map(|t| t.id)
    }

    /// Whether a blocked session's wait may be over (FIFO among conflicting waiters).
    fn wait_over(&self, s: SessionId) -> bool {
        let Some(b) = self.blocked_of(s) else { return false };
        let txn = self.txn_of(s).unwrap_or(0);
        match &b.wait {
            Wait::Txn(t) => self.db.xids.status(*t) != XidStatus::InProgress,
            Wait::Sleep(until) => self.now >= *until,
            Wait::SafeSnapshot => !self.db.ssi.has_active_writer(),
            Wait::Row { table, row, mode } => {
                if !self.db.locks.row_blockers(table, *row, txn, *mode).is_empty() {
                    return false;
                }
                // PostgreSQL's heap_lock_tuple skips the tuple lock (and so the queue) when the
                // transaction already holds a weaker lock on the row, to avoid deadlocking with
                // waiters queued behind it (spec tuplelock-upgrade-no-deadlock). Such an
                // upgrade waits for conflicting holders only.
                if self.db.locks.holds_row(table, *row, txn, LockStrength::KeyShare) {
                    return true;
                }
                !self.earlier_waiters(b).any(|(_, w)| match w {
                    Wait::Row { table: t2, row: r2, mode: m2 } => {
                        t2 == table
                            && r2 == row
                            && (row_conflicts(*m2, *mode) || row_conflicts(*mode, *m2))
                    }
                    _ => false,
                })
            }
            Wait::Advisory { key, shared } => {
                if !self.db.locks.advisory_blockers(*key, s, *shared).is_empty() {
                    return false;
                }
                !self.earlier_waiters(b).any(|(other, w)| {
                    matches!(w, Wait::Advisory { key: k2, shared: s2 } if k2 == key && other != s && !(*s2 && *shared))
                })
            }
        }
    }

    fn earlier_waiters<'a>(
        &'a self,
        b: &'a Blocked,
    ) -> impl Iterator<Item = (SessionId, &'a Wait)> + 'a {
        self.sessions.iter().filter_map(move |(id, s)| {
            let o = s.pending.as_ref()?.blocked.as_ref()?;
            ((o.wait_start, o.wait_seq) < (b.wait_start, b.wait_seq)).then_some((*id, &o.wait))
        })
    }

    /// Waits-for edges between sessions.
    fn waits_for(&self) -> BTreeMap<SessionId, Vec<SessionId>> {
        let owner: BTreeMap<TxnId, SessionId> = self
            .sessions
            .iter()
            .filter_map(|(id, s)| s.txn.as_ref().map(|t| (t.id, *id)))
            .collect();
        let mut edges = BTreeMap::new();
        for (&id, s) in &self.sessions {
            let Some(b) = s.pending.as_ref().and_then(|p| p.blocked.as_ref()) else { continue };
            let txn = self.txn_of(id).unwrap_or(0);
            let targets: Vec<SessionId> = match &b.wait {
                Wait::Txn(x) => owner.get(&self.db.xids.top(*x)).copied().into_iter().collect(),
                Wait::Row { table, row, mode } => self
                    .db
                    .locks
                    .row_blockers(table, *row, txn, *mode)
                    .iter()
                    .map(|l| l.session)
                    .collect(),
                Wait::Advisory { key, shared } => {
                    self.db.locks.advisory_blockers(*key, id, *shared)
                }
                Wait::Sleep(_) | Wait::SafeSnapshot => Vec::new(),
            };
            edges.insert(id, targets);
        }
        edges
    }

    /// Every pending timer: (due, wait start, wait seq, kind, session). Kinds: 0 sleep end,
    /// 1 deadlock check, 2 lock_timeout, 3 statement_timeout.
    fn timers(&self) -> Vec<(Duration, Duration, u64, u8, SessionId)> {
        let mut out = Vec::new();
        for (&id, s) in &self.sessions {
            let Some(p) = &s.pending else { continue };
            let Some(b) = &p.blocked else { continue };
            let e = s.effective();
            let key = |due: Duration, kind: u8| (due, b.wait_start, b.wait_seq, kind, id);
            if let Wait::Sleep(until) = b.wait {
                out.push(key(until, 0));
            }
            if b.wait.is_lock() && !b.deadlock_checked {
                out.push(key(b.sleep_start + Duration::from_millis(e.deadlock_timeout_ms), 1));
            }
            if b.wait.is_lock() && e.lock_timeout_ms > 0 {
                out.push(key(b.wait_start + Duration::from_millis(e.lock_timeout_ms), 2));
            }
            if e.statement_timeout_ms > 0 {
                out.push(key(p.started + Duration::from_millis(e.statement_timeout_ms), 3));
            }
        }
        out.sort();
        out
    }

    pub(crate) fn next_timer_impl(&self) -> Option<Duration> {
        self.timers().first().map(|t| t.0.max(self.now))
    }

    /// Fires every timer due at or before `until`, in time order, then sets the clock.
    pub(crate) fn advance_impl(&mut self, until: Duration) {
        // Each firing ends a wait or marks its one deadlock check done, so the number of
        // firings is bounded by the pending timers; the limit guards against a bug.
        for _ in 0..TIMER_FIRINGS_MAX {
            let Some(&(due, _, _, kind, s)) = self.timers().first() else { break };
            if due > until {
                break;
            }
            self.now = self.now.max(due);
            self.fire(kind, s);
            self.wake();
        }
        if until > self.now {
            self.now = until;
        }
        self.wake();
    }

    fn fire(&mut self, kind: u8, s: SessionId) {
        match kind {
            1 => {
                if let Some(b) = self
                    .sessions
                    .get_mut(&s)
                    .and_then(|x| x.pending.as_mut())
                    .and_then(|p| p.blocked.as_mut())
                {
                    b.deadlock_checked = true;
                }
                let edges = self.waits_for();
                if let Some(cycle) = deadlock::find_cycle(s, &edges) {
                    let detail = self.deadlock_detail(&cycle);
                    self.cancel_blocked(s, Error::Deadlock { detail });
                }
            }
            2 => self.cancel_blocked(
                s,
                Error::LockNotAvailable("canceling statement due to lock timeout".into()),
            ),
            3 => self.cancel_blocked(
                s,
                Error::QueryCanceled("canceling statement due to statement timeout".into()),
            ),
            _ => {}
        }
    }

    fn deadlock_detail(&self, cycle: &[SessionId]) -> String {
        let mut lines = Vec::new();
        for (i, &a) in cycle.iter().enumerate() {
            let b = cycle[(i + 1) % cycle.len()];
            let what = match self.blocked_of(a).map(|x| &x.wait) {
                Some(Wait::Advisory { key, shared }) => {
                    let mode = if *shared { "ShareLock" } else { "ExclusiveLock" };
                    format!("{mode} on advisory lock [0,0,{key},1]")
                }
                Some(Wait::Txn(x)) => format!("ShareLock on transaction {x}"),
                _ => format!("ShareLock on transaction {}", self.txn_of(b).unwrap_or(0)),
            };
            lines.push(format!("Process {a} waits for {what}; blocked by process {b}."));
        }
        lines.join("\n")
    }

    /// Fails a blocked statement (deadlock victim, timeout) and reports it.
    fn cancel_blocked(&mut self, s: SessionId, e: Error) {
        let Some(p) = self.sessions.get_mut(&s).and_then(|x| x.pending.as_mut()) else { return };
        if p.blocked.take().is_none() {
            return;
        }
        if let Some(x) = self.sessions.get_mut(&s) {
            x.pending = None;
        }
        // The failure is reported before anything it releases.
        self.completions.push(Completion { session: s, response: Err(e.clone().into_sql_error()) });
        self.handle_error(s, &e);
    }

    pub(crate) fn close_impl(&mut self, session: SessionId) {
        if !self.sessions.contains_key(&session) {
            return;
        }
        if let Some(s) = self.sessions.get_mut(&session) {
            s.pending = None;
        }
        self.abort_txn(session);
        self.db.locks.release_session(session);
        self.sessions.remove(&session);
        self.wake();
    }

    pub(crate) fn crash_impl(&mut self) {
        // Every connection dies at once: nothing blocked may run while transactions abort.
        for s in self.sessions.values_mut() {
            s.pending = None;
        }
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
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
        match executor.run(&plan) {
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
