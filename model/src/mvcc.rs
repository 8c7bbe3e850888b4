//! The MVCC heap: row versions, transaction status and snapshot visibility.
//!
//! VERSIONS
//! Each table's heap is an append-only vector of [`Tuple`]s (row versions). An INSERT appends
//! a version with `xmin` = the writing (sub)transaction id; an UPDATE sets the old version's
//! `xmax` and `next` and appends the new version; a DELETE sets `xmax`. All versions of one
//! logical row share a `row_id`, which is also the key of the row-lock table.
//!
//! ```text
//!   row 7:  v0 (xmin=3, xmax=5) --next--> v1 (xmin=5, xmax=-)
//!   txn 4 with a snapshot taken before 5 committed sees v0; txn 6 sees v1.
//! ```
//!
//! ISOLATION
//! A [`Snapshot`] is the commit sequence number at the time it was taken, plus the owner's
//! transaction id and command number: a version is visible if its inserter committed at or
//! before the snapshot's sequence number (or is the owner, at an earlier command) and its
//! deleter did not. Commits are atomic, so "committed before the snapshot" is exactly
//! "commit sequence number ≤ snapshot sequence number" — no active-transaction list needed.
//!
//! SUBTRANSACTIONS
//! SAVEPOINT starts a new xid for later writes; ROLLBACK TO marks the xids created since then
//! aborted, which hides their versions exactly like an aborted transaction's.
//!
//! STATEMENT RETRY
//! A statement that must wait undoes its own version changes ([`Heap::undo`]) and runs again
//! from the start once woken, with the same snapshot. Row locks it took stay held.
//!
//! NOT MODELLED
//! Vacuum (dead versions stay forever), HOT chains, tuple ctid output, on-disk pages (and so
//! page-level SIREAD locks), hint bits.

use crate::Value;
use std::collections::BTreeMap;

/// A (sub)transaction id. Top-level transactions use their first xid as [`TxnId`].
pub type Xid = u64;
/// A top-level transaction id.
pub type TxnId = u64;
/// A logical row (shared by all its versions).
pub type RowId = u64;
/// Index of a version in its table's heap.
pub type TupleId = usize;
/// Commit sequence number.
pub type CommitSeq = u64;

/// One row version.
#[derive(Clone, Debug)]
pub struct Tuple {
    pub row_id: RowId,
    pub values: Vec<Value>,
    pub xmin: Xid,
    pub cmin: u32,
    pub xmax: Option<Xid>,
    pub cmax: u32,
    /// The newer version written by the updater in `xmax`, if it was an update.
    pub next: Option<TupleId>,
    /// Removed by a statement undo or TRUNCATE: invisible to everyone, skipped by checks.
    pub dead: bool,
    /// PostgreSQL's HEAP_KEYS_UPDATED: the update or delete in `xmax` took the key-update
    /// mode (it changed a unique-key column, deleted the row, or updated a row its own
    /// subtransaction had locked FOR UPDATE), so a later FOR KEY SHARE conflicts with it.
    pub keys_updated: bool,
}

/// The state of one xid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XidStatus {
    InProgress,
    Committed(CommitSeq),
    Aborted,
}

/// Every xid's owner and status. BTreeMap for determinism of any iteration.
#[derive(Clone, Default, Debug)]
pub struct Xids {
    map: BTreeMap<Xid, (TxnId, XidStatus)>,
    next: Xid,
    pub last_commit: CommitSeq,
}

impl Xids {
    /// Allocates an xid owned by `top` (or a new top-level transaction when `top` is None).
    pub fn allocate(&mut self, top: Option<TxnId>) -> Xid {
        self.next += 1;
        let xid = self.next;
        self.map.insert(xid, (top.unwrap_or(xid), XidStatus::InProgress));
        xid
    }

    /// Every xid that did not abort, with its owner and status, in xid order (what
    /// `Engine::fingerprint` hashes: an aborted xid only ever makes versions invisible).
    pub fn not_aborted(&self) -> impl Iterator<Item = (Xid, TxnId, XidStatus)> + '_ {
        self.map.iter().filter(|e| e.1.1 != XidStatus::Aborted).map(|(x, (t, s))| (*x, *t, *s))
    }

    pub fn status(&self, xid: Xid) -> XidStatus {
        self.map.get(&xid).map(|e| e.1).unwrap_or(XidStatus::Aborted)
    }

    pub fn top(&self, xid: Xid) -> TxnId {
        self.map.get(&xid).map(|e| e.0).unwrap_or(xid)
    }

    /// Marks xids aborted.
    pub fn abort(&mut self, xids: &[Xid]) {
        for x in xids {
            if let Some(e) = self.map.get_mut(x) {
                assert!(e.1 == XidStatus::InProgress, "aborting an xid that already ended");
                e.1 = XidStatus::Aborted;
            }
        }
    }

    /// Commits the given xids atomically with one new commit sequence number.
    pub fn commit(&mut self, xids: &[Xid]) -> CommitSeq {
        self.last_commit += 1;
        for x in xids {
            if let Some(e) = self.map.get_mut(x)
                && e.1 == XidStatus::InProgress
            {
                e.1 = XidStatus::Committed(self.last_commit);
            }
        }
        self.last_commit
    }
}

/// What a statement may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub seq: CommitSeq,
    pub txn: TxnId,
    pub cmd: u32,
}

impl Snapshot {
    /// Whether a write by `xid` at command `cmd` is visible to this snapshot.
    pub fn sees(&self, xids: &Xids, xid: Xid, cmd: u32) -> bool {
        match xids.status(xid) {
            XidStatus::Committed(seq) => seq <= self.seq,
            XidStatus::InProgress => xids.top(xid) == self.txn && cmd < self.cmd,
            XidStatus::Aborted => false,
        }
    }

    /// Whether a version is visible.
    pub fn visible(&self, xids: &Xids, t: &Tuple) -> bool {
        if t.dead || !self.sees(xids, t.xmin, t.cmin) {
            return false;
        }
        match t.xmax {
            None => true,
            Some(x) => !self.sees(xids, x, t.cmax),
        }
    }
}

/// A version's state ignoring snapshots, as unique and exclusion checks see it ("dirty"
/// snapshot): live, gone, or depending on a transaction still in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Live,
    Dead,
    /// Its fate depends on this (sub)transaction of another transaction: waiting for the
    /// xid rather than its top-level transaction lets a ROLLBACK TO SAVEPOINT release it.
    WaitFor(Xid),
}

/// Classifies a version for a conflict check made by transaction `me`.
pub fn liveness(xids: &Xids, t: &Tuple, me: TxnId) -> Liveness {
    if t.dead {
        return Liveness::Dead;
    }
    match xids.status(t.xmin) {
        XidStatus::Aborted => return Liveness::Dead,
        XidStatus::InProgress if xids.top(t.xmin) != me => {
            return Liveness::WaitFor(t.xmin);
        }
        _ => {}
    }
    match t.xmax.map(|x| (x, xids.status(x))) {
        None | Some((_, XidStatus::Aborted)) => Liveness::Live,
        Some((_, XidStatus::Committed(_))) => Liveness::Dead,
        Some((x, XidStatus::InProgress)) if xids.top(x) == me => Liveness::Dead,
        Some((x, XidStatus::InProgress)) => Liveness::WaitFor(x),
    }
}

/// The writer HeapCheckForSerializableConflictOut checks for a version a scan examined
/// (top-level txn), by the version's HeapTupleSatisfiesVacuum class:
/// - DEAD (its inserter aborted, including a rolled-back subtransaction): none;
/// - LIVE (no deleter, or the deleter aborted): none if visible, else its inserter;
/// - INSERT_IN_PROGRESS (inserter still running): its inserter;
/// - DELETE_IN_PROGRESS / RECENTLY_DEAD (a live deleter or updater): that writer if the
///   version is visible, else its inserter, as for an invisible LIVE version (a version
///   inserted and then updated by a transaction the snapshot cannot see, e.g. the old
///   version a foreign-key check's fresh snapshot skips for the newer one, conflicts with
///   its inserter). PostgreSQL returns early when that xid precedes TransactionXmin (and
///   classes a version whose deleter does as DEAD); such an inserter committed before the
///   snapshot, which [`crate::ssi::Ssi`]'s concurrency test (XidIsConcurrent) rules out too.
pub fn examined_writer(xids: &Xids, tuple: &Tuple, visible: bool) -> Option<TxnId> {
    let aborted = |x: Xid| xids.status(x) == XidStatus::Aborted;
    if tuple.dead || aborted(tuple.xmin) {
        return None;
    }
    let writer = match tuple.xmax.filter(|&x| !aborted(x)) {
        _ if xids.status(tuple.xmin) == XidStatus::InProgress => tuple.xmin,
        None if visible => return None,
        Some(deleter) if visible => deleter,
        None | Some(_) => tuple.xmin,
    };
    Some(xids.top(writer))
}

/// One undoable change made by a statement attempt.
#[derive(Clone, Debug)]
pub enum Undo {
    Inserted {
        tuple: TupleId,
    },
    Expired {
        tuple: TupleId,
        old_xmax: Option<Xid>,
        old_cmax: u32,
        old_next: Option<TupleId>,
        old_keys_updated: bool,
    },
}

/// A table's versions plus, per unique index, key → versions holding that key.
#[derive(Clone, Debug, Default)]
pub struct Heap {
    pub tuples: Vec<Tuple>,
    /// One map per unique index of the table, in catalog order.
    pub indexes: Vec<BTreeMap<Vec<Value>, Vec<TupleId>>>,
    /// Changes to `tuples` or `indexes` since the engine was made or forked: every write
    /// path bumps it ([`Heap::touch`]), so `Engine::fingerprint` can skip a table that still
    /// holds what the fork began with.
    pub writes: u64,
    /// The fingerprint of the table as the fork began with it, computed on first use and
    /// valid while `writes` = 0 (its versions' xids all committed before the fork).
    pub fork_fingerprint: std::sync::OnceLock<u64>,
}

impl Heap {
    /// Counts a change (see `writes`).
    pub fn touch(&mut self) {
        self.writes += 1;
    }

    /// Appends a version and indexes it under `keys` (one key per unique index; `None` for a
    /// key containing NULL, which is never indexed as unique).
    pub fn append(&mut self, tuple: Tuple, keys: Vec<Option<Vec<Value>>>) -> TupleId {
        assert_eq!(keys.len(), self.indexes.len(), "one key per unique index");
        self.touch();
        let id = self.tuples.len();
        self.tuples.push(tuple);
        for (index, key) in self.indexes.iter_mut().zip(keys) {
            if let Some(key) = key {
                index.entry(key).or_default().push(id);
            }
        }
        id
    }

    /// Reverts a statement attempt's changes, newest first.
    pub fn undo(&mut self, change: &Undo) {
        self.touch();
        match change {
            Undo::Inserted { tuple } => self.tuples[*tuple].dead = true,
            Undo::Expired { tuple, old_xmax, old_cmax, old_next, old_keys_updated } => {
                let t = &mut self.tuples[*tuple];
                t.xmax = *old_xmax;
                t.cmax = *old_cmax;
                t.next = *old_next;
                t.keys_updated = *old_keys_updated;
            }
        }
    }

    /// Follows `next` links from a version to the newest version written by a transaction
    /// that did not abort. Bounded by the heap size.
    pub fn newest(&self, xids: &Xids, mut id: TupleId) -> TupleId {
        for _ in 0..=self.tuples.len() {
            let t = &self.tuples[id];
            match (t.next, t.xmax.map(|x| xids.status(x))) {
                (Some(n), Some(XidStatus::Committed(_) | XidStatus::InProgress))
                    if !self.tuples[n].dead =>
                {
                    id = n
                }
                _ => return id,
            }
        }
        panic!("version chain longer than the heap: cycle in next links");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(xmin: Xid) -> Tuple {
        Tuple {
            row_id: 1,
            values: vec![],
            xmin,
            cmin: 0,
            xmax: None,
            cmax: 0,
            next: None,
            dead: false,
            keys_updated: false,
        }
    }

    /// A version is visible once its inserter committed before the snapshot, and an
    /// uncommitted deleter does not hide it from others.
    #[test]
    fn visibility_follows_commit_sequence() {
        let mut xids = Xids::default();
        let t1 = xids.allocate(None);
        let t2 = xids.allocate(None);
        let mut v = tuple(t1);
        let before = Snapshot { seq: xids.last_commit, txn: t2, cmd: 0 };
        assert!(!before.visible(&xids, &v));
        xids.commit(&[t1]);
        let after = Snapshot { seq: xids.last_commit, txn: t2, cmd: 0 };
        assert!(!before.visible(&xids, &v));
        assert!(after.visible(&xids, &v));
        let t3 = xids.allocate(None);
        v.xmax = Some(t3);
        assert!(after.visible(&xids, &v));
        assert_eq!(liveness(&xids, &v, t2), Liveness::WaitFor(t3));
        xids.abort(&[t3]);
        assert_eq!(liveness(&xids, &v, t2), Liveness::Live);
    }
}
