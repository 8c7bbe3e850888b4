//! Transaction lifecycle and control statements: starting a transaction (implicit or
//! BEGIN), commit, abort on error (locks released at the error) and rollback, and BEGIN /
//! COMMIT / ROLLBACK / SAVEPOINT / RELEASE / SET [TRANSACTION] / SHOW.

use super::{Settings, Transaction, ok};
use crate::error::Error;
use crate::mvcc::{Xid, XidStatus};
use crate::sql::{self, Control, Isolation, TxnModes};
use crate::{Engine, QueryResult, SessionId, Value, errinput};

impl Engine {
    pub(super) fn ensure_txn(&mut self, session: SessionId) {
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
    pub(super) fn handle_error(&mut self, session: SessionId, e: &Error) {
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
        self.db.ssi.subtransactions_aborted(xids);
    }

    /// Rolls back and closes the session's transaction.
    pub(super) fn abort_txn(&mut self, session: SessionId) {
        let Some(txn) = self.sessions.get_mut(&session).and_then(|s| s.txn.take()) else { return };
        if !txn.ended {
            self.abort_xids(&txn.xids);
            self.db.ssi.aborted(txn.id);
        }
        self.wake();
    }

    /// Commits and closes the session's transaction (SSI may refuse: then it aborts).
    pub(super) fn commit_txn(&mut self, session: SessionId) -> Result<(), Error> {
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

    pub(super) fn exec_control(
        &mut self,
        session: SessionId,
        c: Control,
    ) -> Result<QueryResult, Error> {
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
            "idle_in_transaction_session_timeout" => {
                settings.idle_in_transaction_timeout_ms =
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
            "idle_in_transaction_session_timeout" => ms(e.idle_in_transaction_timeout_ms),
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
}
