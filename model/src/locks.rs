//! Row locks and advisory locks, and what a blocked statement waits for.
//!
//! ROW LOCKS
//! PostgreSQL keeps tuple locks in the tuple header (xmax / multixact); the model keeps them
//! in a table keyed by (relation, logical row), each entry naming the holding transaction,
//! the xid that took it (so ROLLBACK TO SAVEPOINT can release it) and the strength. Writers
//! take locks too: UPDATE of no unique column → FOR NO KEY UPDATE, UPDATE of a unique column
//! or DELETE → FOR UPDATE, a foreign-key check → FOR KEY SHARE on the parent row.
//!
//! ```text
//!   held \ requested  KEY SHARE  SHARE  NO KEY UPD  UPDATE
//!   KEY SHARE             ok       ok       ok         B
//!   SHARE                 ok       ok       B          B
//!   NO KEY UPDATE         ok       B        B          B
//!   UPDATE                B        B        B          B
//! ```
//! With strengths numbered 0..3 in that order, two locks conflict exactly when their numbers
//! add up to 3 or more.
//!
//! QUEUEING
//! A new request is checked against holders only, so a compatible request is not queued
//! behind a waiter. Waiters are woken in the order they began to wait, and a woken waiter is
//! granted only if it is also compatible with every earlier waiter still queued on the same
//! row (FIFO among conflicting waiters). The engine implements the FIFO part, because it
//! knows the wait order.
//!
//! ADVISORY LOCKS
//! Exclusive or shared, transaction-level (released at commit/rollback) or session-level
//! (reference-counted, released by pg_advisory_unlock or disconnect). A session never
//! conflicts with itself.
//!
//! NOT MODELLED
//! Table-level (heavyweight relation) locks, multixact ids, lock escalation.

use crate::SessionId;
use crate::mvcc::{RowId, TupleId, TxnId, Xid};
use crate::sql::LockStrength;
use std::collections::BTreeMap;
use std::time::Duration;

/// Limit on holders of one lock (shared lockers); a programmer-error guard.
pub const LOCK_HOLDERS_MAX: usize = 4096;

/// Whether a held row lock conflicts with a requested one.
pub fn row_conflicts(held: LockStrength, requested: LockStrength) -> bool {
    (held as u8) + (requested as u8) >= 3
}

/// What a blocked statement waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wait {
    /// The end of a (sub)transaction: an in-progress inserter or deleter of a conflicting
    /// key.
    Txn(Xid),
    Row {
        table: String,
        row: RowId,
        mode: LockStrength,
    },
    Advisory {
        key: i64,
        shared: bool,
    },
    /// pg_sleep: until this virtual time.
    Sleep(Duration),
    /// SERIALIZABLE READ ONLY DEFERRABLE: until no read-write SERIALIZABLE transaction runs.
    SafeSnapshot,
}

impl Wait {
    /// Whether the wait is for a lock (lock_timeout and deadlock checks apply).
    pub fn is_lock(&self) -> bool {
        matches!(self, Wait::Txn(_) | Wait::Row { .. } | Wait::Advisory { .. })
    }
}

/// One held row lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowLock {
    pub txn: TxnId,
    pub xid: Xid,
    pub session: SessionId,
    pub mode: LockStrength,
    /// The version locked: the one the statement went on with (READ COMMITTED: the newest).
    /// A REPEATABLE READ locker waits for holders of ITS snapshot's version before it judges
    /// that version's committed update (`executor::locking`).
    pub tid: TupleId,
}

/// One held advisory lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdvisoryHold {
    pub session: SessionId,
    /// Transaction-level hold: the transaction and xid; None for session-level.
    pub xact: Option<(TxnId, Xid)>,
    pub shared: bool,
    pub count: u32,
}

/// The lock tables. BTreeMaps for determinism of every iteration.
#[derive(Clone, Debug, Default)]
pub struct Locks {
    pub rows: BTreeMap<(String, RowId), Vec<RowLock>>,
    pub advisory: BTreeMap<i64, Vec<AdvisoryHold>>,
}

impl Locks {
    /// Holders (other transactions) whose lock conflicts with `mode`.
    pub fn row_blockers(
        &self,
        table: &str,
        row: RowId,
        txn: TxnId,
        mode: LockStrength,
    ) -> Vec<&RowLock> {
        match self.rows.get(&(table.to_string(), row)) {
            None => Vec::new(),
            Some(list) => {
                list.iter().filter(|l| l.txn != txn && row_conflicts(l.mode, mode)).collect()
            }
        }
    }

    /// Grants a row lock (after the caller checked for blockers).
    pub fn grant_row(&mut self, table: &str, row: RowId, lock: RowLock) {
        let list = self.rows.entry((table.to_string(), row)).or_default();
        assert!(
            list.iter().all(|l| l.txn == lock.txn || !row_conflicts(l.mode, lock.mode)),
            "granting a row lock that conflicts with a holder"
        );
        if list.iter().any(|l| l.txn == lock.txn && l.mode >= lock.mode) {
            return;
        }
        assert!(list.len() < LOCK_HOLDERS_MAX, "too many holders of one row lock");
        list.push(lock);
    }

    /// Whether the transaction holds a row lock of at least `mode`.
    pub fn holds_row(&self, table: &str, row: RowId, txn: TxnId, mode: LockStrength) -> bool {
        self.rows
            .get(&(table.to_string(), row))
            .is_some_and(|list| list.iter().any(|l| l.txn == txn && l.mode >= mode))
    }

    /// Whether the (sub)transaction `xid` itself took a row lock of at least `mode`.
    pub fn holds_row_in(&self, table: &str, row: RowId, xid: Xid, mode: LockStrength) -> bool {
        self.rows
            .get(&(table.to_string(), row))
            .is_some_and(|list| list.iter().any(|l| l.xid == xid && l.mode >= mode))
    }

    /// Sessions holding an advisory lock that conflicts with the request.
    pub fn advisory_blockers(&self, key: i64, session: SessionId, shared: bool) -> Vec<SessionId> {
        match self.advisory.get(&key) {
            None => Vec::new(),
            Some(list) => list
                .iter()
                .filter(|h| h.session != session && !(h.shared && shared))
                .map(|h| h.session)
                .collect(),
        }
    }

    /// Grants an advisory lock (after the caller checked for blockers).
    pub fn grant_advisory(&mut self, key: i64, hold: AdvisoryHold) {
        let list = self.advisory.entry(key).or_default();
        match list
            .iter_mut()
            .find(|h| h.session == hold.session && h.xact == hold.xact && h.shared == hold.shared)
        {
            Some(h) => h.count += 1,
            None => {
                assert!(list.len() < LOCK_HOLDERS_MAX, "too many holders of one advisory lock");
                list.push(hold);
            }
        }
    }

    /// Releases one session-level hold; false if the session held none (PostgreSQL warns).
    pub fn unlock_advisory(&mut self, key: i64, session: SessionId, shared: bool) -> bool {
        let Some(list) = self.advisory.get_mut(&key) else { return false };
        let Some(pos) = list
            .iter()
            .position(|h| h.session == session && h.xact.is_none() && h.shared == shared)
        else {
            return false;
        };
        list[pos].count -= 1;
        if list[pos].count == 0 {
            list.remove(pos);
        }
        if list.is_empty() {
            self.advisory.remove(&key);
        }
        true
    }

    /// Releases every lock taken by one of `xids` (a transaction end or a rollback to a
    /// savepoint).
    pub fn release_xids(&mut self, xids: &[Xid]) {
        self.rows.retain(|_, list| {
            list.retain(|l| !xids.contains(&l.xid));
            !list.is_empty()
        });
        self.advisory.retain(|_, list| {
            list.retain(|h| !h.xact.is_some_and(|(_, x)| xids.contains(&x)));
            !list.is_empty()
        });
    }

    /// Releases a session's session-level advisory locks.
    pub fn release_session(&mut self, session: SessionId) {
        self.advisory.retain(|_, list| {
            list.retain(|h| !(h.session == session && h.xact.is_none()));
            !list.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LockStrength::*;

    /// The conflict matrix matches PostgreSQL's table for tuple locks.
    #[test]
    fn conflict_matrix() {
        let expected = [
            (KeyShare, [false, false, false, true]),
            (Share, [false, false, true, true]),
            (NoKeyUpdate, [false, true, true, true]),
            (Update, [true, true, true, true]),
        ];
        for (held, row) in expected {
            for (req, want) in [KeyShare, Share, NoKeyUpdate, Update].into_iter().zip(row) {
                assert_eq!(row_conflicts(held, req), want, "{held:?} vs {req:?}");
            }
        }
    }

    /// Session-level advisory locks are reference counted; transaction-level ones go with
    /// their xid.
    #[test]
    fn advisory_counts_and_release() {
        let mut l = Locks::default();
        l.grant_advisory(1, AdvisoryHold { session: 1, xact: None, shared: false, count: 1 });
        l.grant_advisory(1, AdvisoryHold { session: 1, xact: None, shared: false, count: 1 });
        assert_eq!(l.advisory_blockers(1, 2, true), vec![1]);
        assert!(l.advisory_blockers(1, 1, false).is_empty());
        assert!(l.unlock_advisory(1, 1, false));
        assert_eq!(l.advisory_blockers(1, 2, false), vec![1]);
        assert!(l.unlock_advisory(1, 1, false));
        assert!(!l.unlock_advisory(1, 1, false));
        l.grant_advisory(
            2,
            AdvisoryHold { session: 3, xact: Some((7, 8)), shared: false, count: 1 },
        );
        l.release_xids(&[8]);
        assert!(l.advisory_blockers(2, 1, false).is_empty());
    }
}
