//! SERIALIZABLE as Serializable Snapshot Isolation, after PostgreSQL's predicate.c.
//!
//! SSI RW-ANTIDEPENDENCIES
//! Only SERIALIZABLE transactions are tracked. An rw-antidependency R → W exists when R read
//! data that a concurrent W wrote, without seeing the write: detected when W writes after
//! R's read (W hits R's SIREAD lock), or when R reads after W's still-invisible write.
//!
//! Foreign-key checks read too, as PostgreSQL's RI queries do: a child insert's parent
//! lookup by primary key (tuple + index page), a parent delete's or key update's scan of the
//! child table (relation).
//!
//! SIREAD GRANULARITY (as PostgreSQL 15 on small, single-page tables)
//! - A sequential scan locks the RELATION: any insert, update or delete in it conflicts,
//!   and the scan sees every version, so every concurrent writer of the table is an
//!   out-conflict, flagged in the order the scan meets their versions (heap order).
//! - A lookup by equality on a one-column unique index (the executor's point lookups)
//!   locks the TUPLES it fetched (visible candidates, before the rest of the WHERE) plus the
//!   index LEAF PAGE. A small table's index has one leaf page, so the page lock is kept per
//!   table: any index insertion into the table (an INSERT, or an UPDATE that changes an
//!   indexed column and so cannot be HOT) conflicts with it, which is PostgreSQL's
//!   "different key, same leaf page" false positive. An UPDATE or DELETE conflicts with a
//!   lock on the very version it replaces (or with a heap page / relation lock).
//!   Out-conflicts: only versions the lookup examined, as heap_hot_search_buffer does
//!   (a visible version's deleter/updater, an invisible version's inserter), and none for
//!   a version whose writer aborted, a rolled-back subtransaction included
//!   ([`crate::mvcc::examined_writer`], HeapTupleSatisfiesVacuum's classes).
//! - `SELECT … ORDER BY key LIMIT n` on one table without WHERE (an index scan in key order
//!   that stops at the limit): the key lookup's locks and checks for each key the scan
//!   reaches, not the relation.
//! - A foreign-key check of the referencing rows runs with a fresh snapshot: relation lock,
//!   out-conflicts only with writers whose change that snapshot does not see ([`Ssi::on_scan`]).
//! - A statement that waited and runs again does not repeat the SSI reads or the write
//!   checks it made before the wait (PostgreSQL does not scan a one-page table again, nor
//!   insert, update or delete again).
//! - A foreign-key check of the parent row checks conflict-out before it locks the row, so
//!   the rw-edge stays when the lock waits or fails "concurrent update".
//! - A visible ON CONFLICT arbiter row is SIREAD-locked as a TUPLE (DO NOTHING; DO UPDATE
//!   once it has locked the row, whether or not its WHERE lets the update through), as
//!   pg_locks shows.
//! - An ON CONFLICT arbiter row the snapshot cannot see is checked for conflict-out before
//!   the "concurrent update" error (PostgreSQL 15 reports the rw-dependency when that edge
//!   completes a dangerous structure).
//!
//! WRITES (CheckForSerializableConflictIn)
//! A heap write checks tuple, page and relation locks ([`Ssi::on_write`]) before the
//! unique checks; entries added to a unique index check the index page locks after them,
//! and before a unique violation is reported ([`Ssi::on_index_insert`], _bt_check_unique).
//! Both fail first when the writer is doomed. The rw-edges one write makes come in
//! PostgreSQL's order: the tuple's holders, then the page's, then the relation's, each
//! target's in the order they took its lock ([`Sxact`]'s locks); that is the order of the
//! writer's in-edges, which its pre-commit check walks (`ssi-conflict-in-tuple-before-relation`).
//!
//! DOOMED READERS
//! A doomed transaction fails at its next read of a heap version (the check is per tuple
//! examined): a lookup of an absent key or a scan of an empty table goes on.
//! - More than [`PRED_LOCKS_PER_PAGE_MAX`] tuple locks of one transaction on one table are
//!   promoted to a heap PAGE lock (max_pred_locks_per_page; every row of a small table is on
//!   one page). A page lock conflicts with updates and deletes, not with inserts (heap
//!   inserts check relation locks only; page locks do not lock gaps). A version the reader
//!   created itself takes no tuple lock and does not count (PredicateLockTID returns early;
//!   the executor drops such versions before calling in).
//!
//! ```text
//!   Tin --rw--> Tpivot --rw--> Tout      dangerous when Tout commits first
//! ```
//!
//! WHO FAILS
//! [`Ssi::flag_conflict`] copies `OnConflict_CheckForSerializationFailure`: if the new edge
//! completes a dangerous structure and the current statement is the writer, it fails
//! ("Canceled on identification as a pivot, during write."); if the writer already
//! committed, the reader fails ("… conflict out to pivot N, during read."); otherwise the
//! writer is marked doomed and fails at commit ("… during commit attempt."). [`Ssi::pre_commit`]
//! copies `PreCommit_CheckForSerializationFailure`: a committing Tout dooms every
//! uncommitted pivot that has it as out-conflict and an in-conflict from itself or from an
//! uncommitted, non-read-only, non-doomed transaction.
//!
//! READ ONLY
//! A read-only Tin makes the structure dangerous only if Tout committed before Tin's
//! snapshot. A transaction that commits without a write check is read-only from then on.
//! SERIALIZABLE READ ONLY DEFERRABLE waits for a snapshot taken when no
//! read-write serializable transaction is running (a simplification of "safe snapshot").
//!
//! NOT MODELLED
//! Physical layout: tables and indexes that span several pages (where PostgreSQL's page
//! locks cover only neighbouring keys or rows), promotion from pages to the relation, index
//! scans other than one-column unique equality (ranges, multi-column keys, IN lists, which
//! the model runs as sequential scans, so it may report a 40001 PostgreSQL does not),
//! summarised conflicts, prepared transactions, the "old
//! committed transaction" cases. Records of committed transactions are dropped once no
//! serializable transaction is running.

use crate::error::Error;
use crate::mvcc::{CommitSeq, TupleId, TxnId, Xid};
use std::collections::{BTreeMap, BTreeSet};

/// Limit on tracked serializable transactions (active plus retained committed ones).
pub const SXACTS_MAX: usize = 1 << 16;

/// PostgreSQL's max_pred_locks_per_page default: one more tuple lock of a transaction on a
/// page promotes them to a page lock.
pub const PRED_LOCKS_PER_PAGE_MAX: usize = 2;

/// How a write touches the SIREAD locks of others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteTarget<'a> {
    pub table: &'a str,
    /// The version an UPDATE or DELETE replaces (None for an INSERT).
    pub replaces: Option<TupleId>,
}

/// A serializable transaction's SSI state.
#[derive(Clone, Debug, Default)]
pub struct Sxact {
    /// Declared READ ONLY, or committed without a write (see [`Ssi::committed`]).
    pub read_only: bool,
    /// Made a write check (CheckForSerializableConflictIn's MyXactDidWrite): a heap write or
    /// a unique-index insertion, kept when its subtransaction rolls back.
    pub wrote: bool,
    pub snapshot_seq: CommitSeq,
    pub commit_seq: Option<CommitSeq>,
    pub doomed: bool,
    /// Tables written, with the (sub)transaction xid that wrote them: a ROLLBACK TO
    /// SAVEPOINT forgets the undone xids' writes ([`Ssi::subtransactions_aborted`]).
    pub writes: BTreeSet<(String, Xid)>,
    /// Transactions with an rw-edge into this one (they read what this one wrote), in the
    /// order the edges were made: PostgreSQL's inConflicts list, which
    /// [`Ssi::pre_commit`] walks in that order (gen-1796900000-0417).
    pub in_conflicts: Vec<TxnId>,
    /// Transactions this one has an rw-edge to (this one read what they wrote).
    pub out_conflicts: BTreeSet<TxnId>,
    /// Its SIREAD locks, each with when it was taken ([`Ssi`]'s count): a write meets the
    /// holders of one lock target in that order ([`Ssi::on_write`]).
    locks: BTreeMap<SireadLock, u64>,
}

/// One SIREAD lock target.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SireadLock {
    /// A relation (sequential scans, a foreign-key check's scan).
    Relation(String),
    /// A heap page (promoted tuple locks); one page per table in this model.
    Page(String),
    /// An index leaf page (unique-index lookups); one per table in this model.
    IndexPage(String),
    /// A tuple: a version fetched by a unique-index lookup or by its location.
    Tuple(String, TupleId),
}

impl Sxact {
    /// Whether it holds `lock`.
    fn holds(&self, lock: &SireadLock) -> bool {
        self.locks.contains_key(lock)
    }

    /// Its tuple locks on `table`.
    fn tuple_locks_on(&self, table: &str) -> usize {
        self.locks.keys().filter(|l| l.is_tuple_on(table)).count()
    }
}

impl SireadLock {
    /// Whether this is a tuple lock on `table`.
    fn is_tuple_on(&self, table: &str) -> bool {
        matches!(self, SireadLock::Tuple(t, _) if t == table)
    }
}

/// The SSI tracker. BTreeMap/BTreeSet for determinism of the doom order.
#[derive(Clone, Debug, Default)]
pub struct Ssi {
    pub sxacts: BTreeMap<TxnId, Sxact>,
    /// SIREAD locks taken so far, by every transaction: the order of [`Sxact`]'s locks.
    locks_taken: u64,
}

impl Ssi {
    /// Registers a serializable transaction when it takes its snapshot.
    pub fn register(&mut self, txn: TxnId, read_only: bool, snapshot_seq: CommitSeq) {
        assert!(self.sxacts.len() < SXACTS_MAX, "too many tracked serializable transactions");
        self.sxacts.insert(txn, Sxact { read_only, snapshot_seq, ..Sxact::default() });
    }

    /// Records that `me` holds `lock` from now, unless it held it already.
    fn take(sxact: &mut Sxact, locks_taken: &mut u64, lock: SireadLock) {
        sxact.locks.entry(lock).or_insert_with(|| {
            *locks_taken += 1;
            *locks_taken
        });
    }

    fn concurrent(a: &Sxact, b: &Sxact) -> bool {
        a.commit_seq.is_none_or(|c| c > b.snapshot_seq)
            && b.commit_seq.is_none_or(|c| c > a.snapshot_seq)
    }

    /// Whether any read-write serializable transaction is still running.
    pub fn has_active_writer(&self) -> bool {
        self.sxacts.values().any(|s| s.commit_seq.is_none() && !s.read_only)
    }

    /// `me` read `table`: take the SIREAD lock and add edges to concurrent writers whose
    /// writes it cannot see, in the order the scan met their versions (`scan_order`, the
    /// writers of the versions in heap order; others after them): PostgreSQL checks tuple by
    /// tuple, and an edge that fails the statement leaves the later ones unmade
    /// (`ssi-conflict-out-scan-order`).
    pub fn on_read(&mut self, me: TxnId, table: &str, scan_order: &[TxnId]) -> Result<(), Error> {
        let Some(mine) = self.sxacts.get_mut(&me) else { return Ok(()) };
        Self::take(mine, &mut self.locks_taken, SireadLock::Relation(table.to_string()));
        let mut writers = self.concurrent_writers(me, table);
        writers.sort_by_key(|w| scan_order.iter().position(|x| x == w).unwrap_or(usize::MAX));
        for writer in writers {
            self.flag_conflict(me, writer, me)?;
        }
        Ok(())
    }

    /// `me` scanned `table` with a snapshot other than its transaction snapshot (a
    /// foreign-key check's fresh one): the relation SIREAD lock, and edges to the concurrent
    /// writers among `examined` (the writers of the versions whose change that snapshot
    /// does not see), not to every writer of the table as [`Ssi::on_read`] does.
    pub fn on_scan(&mut self, me: TxnId, table: &str, examined: &[TxnId]) -> Result<(), Error> {
        let Some(mine) = self.sxacts.get_mut(&me) else { return Ok(()) };
        Self::take(mine, &mut self.locks_taken, SireadLock::Relation(table.to_string()));
        self.flag_examined(me, examined)
    }

    /// Edges from `me` to the concurrent serializable transactions among `examined`, in the
    /// order given (the order the versions were examined: PostgreSQL checks tuple by tuple,
    /// and an edge that fails the statement leaves the later ones unmade), each writer once.
    fn flag_examined(&mut self, me: TxnId, examined: &[TxnId]) -> Result<(), Error> {
        let mine = &self.sxacts[&me];
        let mut writers: Vec<TxnId> = Vec::new();
        for &w in examined {
            let concurrent = self.sxacts.get(&w).is_some_and(|s| Self::concurrent(mine, s));
            if w != me && concurrent && !writers.contains(&w) {
                writers.push(w);
            }
        }
        for writer in writers {
            self.flag_conflict(me, writer, me)?;
        }
        Ok(())
    }

    /// `me` looked up `table` by a unique-index key: lock the index leaf page and the
    /// `fetched` versions (promoting to a page lock past [`PRED_LOCKS_PER_PAGE_MAX`]), and
    /// add edges to the concurrent writers of the `examined` versions (their deleters or
    /// inserters whose change `me` cannot see).
    pub fn on_read_key(
        &mut self,
        me: TxnId,
        table: &str,
        fetched: &[TupleId],
        examined: &[TxnId],
    ) -> Result<(), Error> {
        let Some(mine) = self.sxacts.get_mut(&me) else { return Ok(()) };
        Self::take(mine, &mut self.locks_taken, SireadLock::IndexPage(table.to_string()));
        self.on_read_versions(me, table, fetched, examined)
    }

    /// `me` fetched `fetched` versions of `table` by their location, without an index scan
    /// (ON CONFLICT's fetch of the arbiter row): tuple SIREAD locks (promoted to a page lock
    /// past [`PRED_LOCKS_PER_PAGE_MAX`]) and edges to the concurrent writers in `examined`.
    pub fn on_read_versions(
        &mut self,
        me: TxnId,
        table: &str,
        fetched: &[TupleId],
        examined: &[TxnId],
    ) -> Result<(), Error> {
        let Some(mine) = self.sxacts.get_mut(&me) else { return Ok(()) };
        let covered = mine.holds(&SireadLock::Page(table.to_string()))
            || mine.holds(&SireadLock::Relation(table.to_string()));
        if !covered {
            for &tid in fetched {
                let lock = SireadLock::Tuple(table.to_string(), tid);
                Self::take(mine, &mut self.locks_taken, lock);
            }
            if mine.tuple_locks_on(table) > PRED_LOCKS_PER_PAGE_MAX {
                mine.locks.retain(|lock, _| !lock.is_tuple_on(table));
                Self::take(mine, &mut self.locks_taken, SireadLock::Page(table.to_string()));
            }
        }
        self.flag_examined(me, examined)
    }

    /// CheckForSerializableConflictOutNeeded: a doomed transaction fails at its next read
    /// of a heap version (PostgreSQL checks per tuple examined; the executor calls this
    /// before a read that examines at least one version, so a lookup of an absent key or a
    /// scan of an empty table goes on). Not called when a statement re-runs after a wait
    /// (PostgreSQL does not scan again then).
    pub fn fail_if_doomed(&self, me: TxnId) -> Result<(), Error> {
        if self.sxacts.get(&me).is_some_and(|m| m.doomed) {
            return Err(Error::rw_dependency(
                "Canceled on identification as a pivot, during conflict out checking",
            ));
        }
        Ok(())
    }

    /// `me` wrote a heap version (under the subtransaction `xid`): CheckForSerializableConflictIn
    /// of heap_insert, heap_update and heap_delete. Fails when `me` is doomed; adds edges
    /// from the concurrent readers whose relation, page or tuple SIREAD locks the write
    /// hits. The index entries an insert adds are checked apart ([`Ssi::on_index_insert`]),
    /// after the unique check, as btree insertion does.
    pub fn on_write(&mut self, me: TxnId, xid: Xid, target: WriteTarget<'_>) -> Result<(), Error> {
        let table = target.table;
        let Some(mine) = self.sxacts.get_mut(&me) else { return Ok(()) };
        mine.writes.insert((table.to_string(), xid));
        mine.wrote = true;
        self.fail_conflict_in_if_doomed(me)?;
        // CheckForSerializableConflictIn checks the tuple's lock target, then its page's,
        // then the relation's (the level, 0 to 2, orders the edges). A reader holds one of
        // them at most: PostgreSQL takes no lock a coarser one of the same transaction
        // covers, and drops those a new one covers; so the coarsest held is the one.
        // An INSERT (no version replaced) checks the relation only.
        let table = table.to_string();
        let targets = [
            (2, Some(SireadLock::Relation(table.clone()))),
            (1, target.replaces.map(|_| SireadLock::Page(table.clone()))),
            (0, target.replaces.map(|tid| SireadLock::Tuple(table.clone(), tid))),
        ];
        self.flag_readers(me, |s| {
            targets.iter().find_map(|(level, lock)| Some((*level, *s.locks.get(lock.as_ref()?)?)))
        })
    }

    /// `me` inserts index entries into `table`'s unique indexes, or found a duplicate there
    /// and is about to report it (_bt_check_unique checks conflict-in first, so an SSI
    /// failure is not masked by the unique violation): fails when doomed; adds edges from
    /// the concurrent readers holding index-page SIREAD locks of `table`.
    pub fn on_index_insert(&mut self, me: TxnId, table: &str) -> Result<(), Error> {
        let Some(mine) = self.sxacts.get_mut(&me) else { return Ok(()) };
        mine.wrote = true;
        self.fail_conflict_in_if_doomed(me)?;
        let lock = SireadLock::IndexPage(table.to_string());
        self.flag_readers(me, |s| s.locks.get(&lock).map(|&taken| (0, taken)))
    }

    /// CheckForSerializableConflictIn's first check: a doomed transaction fails at its next
    /// write.
    fn fail_conflict_in_if_doomed(&self, me: TxnId) -> Result<(), Error> {
        if self.sxacts.get(&me).is_some_and(|m| m.doomed) {
            return Err(Error::rw_dependency(
                "Canceled on identification as a pivot, during conflict in checking",
            ));
        }
        Ok(())
    }

    /// Edges reader -> `me` from every concurrent serializable transaction whose SIREAD
    /// lock `hit` says the write touches, in the order PostgreSQL meets them: `hit` gives the
    /// lock's (target level, when it was taken), finest target first, each target's holders
    /// in the order they took it (its predicateLocks list). The order is the order of
    /// `me`'s in-edges, which [`Ssi::pre_commit`] walks.
    fn flag_readers(
        &mut self,
        me: TxnId,
        hit: impl Fn(&Sxact) -> Option<(u8, u64)>,
    ) -> Result<(), Error> {
        let mine = &self.sxacts[&me];
        let mut readers: Vec<((u8, u64), TxnId)> = self
            .sxacts
            .iter()
            .filter(|(t, s)| **t != me && Self::concurrent(mine, s))
            .filter_map(|(t, s)| hit(s).map(|order| (order, *t)))
            .collect();
        readers.sort();
        for (_, reader) in readers {
            self.flag_conflict(reader, me, me)?;
        }
        Ok(())
    }

    /// Transactions concurrent with `me` that wrote `table`.
    fn concurrent_writers(&self, me: TxnId, table: &str) -> Vec<TxnId> {
        let mine = &self.sxacts[&me];
        self.sxacts
            .iter()
            .filter(|(t, s)| {
                **t != me
                    && s.writes.iter().any(|(written, _)| written == table)
                    && Self::concurrent(mine, s)
            })
            .map(|(t, _)| *t)
            .collect()
    }

    /// Whether `me` was marked to fail at its next check.
    pub fn is_doomed(&self, me: TxnId) -> bool {
        self.sxacts.get(&me).is_some_and(|s| s.doomed)
    }

    /// Whether `me` (serializable) had SIREAD-locked `table`.
    pub fn has_read(&self, me: TxnId, table: &str) -> bool {
        self.sxacts.get(&me).is_some_and(|s| {
            s.holds(&SireadLock::Relation(table.to_string()))
                || s.holds(&SireadLock::IndexPage(table.to_string()))
        })
    }

    /// FlagRWConflict: applies OnConflict_CheckForSerializationFailure, then adds reader →
    /// writer. As PostgreSQL's callers, it does nothing when that edge exists already or the
    /// other transaction is doomed, and it records no edge when the check fails the current
    /// statement (so after ROLLBACK TO SAVEPOINT the transaction goes on without it;
    /// gen-20261207-0280).
    fn flag_conflict(&mut self, reader: TxnId, writer: TxnId, me: TxnId) -> Result<(), Error> {
        let other = if reader == me { writer } else { reader };
        if self.sxacts[&other].doomed || self.sxacts[&reader].out_conflicts.contains(&writer) {
            return Ok(());
        }
        if self.dangerous(reader, writer) {
            if writer == me {
                return Err(Error::rw_dependency(
                    "Canceled on identification as a pivot, during write",
                ));
            }
            if self.sxacts[&writer].commit_seq.is_some() {
                return Err(Error::rw_dependency(format!(
                    "Canceled on conflict out to pivot {writer}, during read"
                )));
            }
            self.sxacts.get_mut(&writer).expect("writer is tracked").doomed = true;
        }
        if let Some(r) = self.sxacts.get_mut(&reader) {
            r.out_conflicts.insert(writer);
        }
        if let Some(w) = self.sxacts.get_mut(&writer) {
            w.in_conflicts.push(reader);
        }
        Ok(())
    }

    /// The three conditions of OnConflict_CheckForSerializationFailure.
    fn dangerous(&self, reader: TxnId, writer: TxnId) -> bool {
        let r = &self.sxacts[&reader];
        let w = &self.sxacts[&writer];
        // R -> W -> T2, T2 committed first.
        for t2 in &w.out_conflicts {
            let Some(t2) = self.sxacts.get(t2) else { continue };
            let Some(t2_seq) = t2.commit_seq else { continue };
            let reader_ok = r.commit_seq.is_none_or(|c| t2_seq <= c);
            let writer_ok = w.commit_seq.is_none_or(|c| t2_seq <= c);
            let ro_ok = !r.read_only || t2_seq <= r.snapshot_seq;
            if reader_ok && writer_ok && ro_ok {
                return true;
            }
        }
        // T0 -> R -> W, W committed first.
        if let (Some(w_seq), false) = (w.commit_seq, r.read_only) {
            for t0 in &r.in_conflicts {
                let Some(t0) = self.sxacts.get(t0) else { continue };
                let t0_ok = t0.commit_seq.is_none_or(|c| c >= w_seq);
                let ro_ok = !t0.read_only || t0.snapshot_seq >= w_seq;
                if !t0.doomed && t0_ok && ro_ok {
                    return true;
                }
            }
        }
        false
    }

    /// PreCommit_CheckForSerializationFailure, then records the commit.
    pub fn pre_commit(&mut self, me: TxnId) -> Result<(), Error> {
        let Some(mine) = self.sxacts.get(&me) else { return Ok(()) };
        if mine.doomed {
            return Err(Error::rw_dependency(
                "Canceled on identification as a pivot, during commit attempt",
            ));
        }
        // Each pivot is doomed as it is found, in the order of the edges into `me`, so a
        // later pivot whose only dangerous in-edge comes from one doomed here is spared
        // (PostgreSQL marks SXACT_FLAG_DOOMED inside the same loop).
        for pivot in mine.in_conflicts.clone() {
            let Some(p) = self.sxacts.get(&pivot) else { continue };
            if p.commit_seq.is_some() || p.doomed {
                continue;
            }
            let found = p.in_conflicts.iter().any(|tin| {
                *tin == me
                    || self
                        .sxacts
                        .get(tin)
                        .is_some_and(|t| t.commit_seq.is_none() && !t.read_only && !t.doomed)
            });
            if found {
                self.sxacts.get_mut(&pivot).expect("pivot is tracked").doomed = true;
            }
        }
        Ok(())
    }

    /// Records a commit's sequence number. A transaction that committed without writing is
    /// read-only from then on, as ReleasePredicateLocks recognises an "implicit read-only
    /// transaction (commit without write)": a later edge into a pivot from it is dangerous
    /// only if the pivot's out-conflict committed before its snapshot (gen-1796570058-0073:
    /// an ON CONFLICT DO NOTHING and a DELETE of no row write nothing).
    pub fn committed(&mut self, me: TxnId, seq: CommitSeq) {
        if let Some(s) = self.sxacts.get_mut(&me) {
            s.commit_seq = Some(seq);
            s.read_only |= !s.wrote;
        }
        self.cleanup();
    }

    /// Subtransactions rolled back (ROLLBACK TO SAVEPOINT, or an error inside a savepoint):
    /// their writes no longer make their transaction an out-conflict of a later reader, as
    /// PostgreSQL's HeapCheckForSerializableConflictOut ignores a version whose inserting
    /// subtransaction aborted (DEAD) or whose deleter aborted (LIVE). The rw-edges their
    /// writes already created stay, as PostgreSQL keeps them.
    pub fn subtransactions_aborted(&mut self, xids: &[Xid]) {
        for s in self.sxacts.values_mut() {
            s.writes.retain(|(_, xid)| !xids.contains(xid));
        }
    }

    /// Forgets an aborted transaction and its edges.
    pub fn aborted(&mut self, me: TxnId) {
        if self.sxacts.remove(&me).is_none() {
            return;
        }
        for s in self.sxacts.values_mut() {
            s.in_conflicts.retain(|t| *t != me);
            s.out_conflicts.remove(&me);
        }
        self.cleanup();
    }

    /// Drops everything once no serializable transaction is running: no future transaction
    /// can be concurrent with a committed one then.
    fn cleanup(&mut self) {
        if self.sxacts.values().all(|s| s.commit_seq.is_some()) {
            self.sxacts.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(table: &str) -> WriteTarget<'_> {
        WriteTarget { table, replaces: None }
    }

    fn upd(table: &str, tid: TupleId) -> WriteTarget<'_> {
        WriteTarget { table, replaces: Some(tid) }
    }

    /// Two concurrent read-write transactions, 1 and 2, that have both scanned table `t`.
    fn both_read_t() -> Ssi {
        let mut s = Ssi::default();
        s.register(1, false, 0);
        s.register(2, false, 0);
        s.on_read(1, "t", &[]).unwrap();
        s.on_read(2, "t", &[]).unwrap();
        s
    }

    /// Issue 14's example: T1 looks up key 1 (tuple 0); T2 updates tuple 0 and commits; T1
    /// updates tuple 1. One rw-dependency only: both commit.
    #[test]
    fn key_lookups_lock_tuples_not_the_relation() {
        let mut s = Ssi::default();
        s.register(1, false, 0);
        s.register(2, false, 0);
        s.on_read_key(1, "t", &[0], &[]).unwrap();
        s.on_read_key(2, "t", &[0], &[]).unwrap();
        s.on_write(2, 2, upd("t", 0)).unwrap();
        s.pre_commit(2).unwrap();
        s.committed(2, 1);
        s.on_read_key(1, "t", &[1], &[]).unwrap();
        s.on_write(1, 1, upd("t", 1)).unwrap();
        s.pre_commit(1).unwrap();
        assert_eq!(s.sxacts[&1].out_conflicts.len(), 1);
        assert!(s.sxacts[&1].in_conflicts.is_empty());
    }

    /// An insert hits a key lookup's leaf-page lock; three tuple locks become a page lock
    /// that an update of any other tuple hits, while an insert does not hit a page lock.
    #[test]
    fn index_page_and_promoted_page_locks() {
        let mut s = Ssi::default();
        s.register(1, false, 0);
        s.register(2, false, 0);
        s.on_read_key(1, "t", &[0], &[]).unwrap();
        s.on_write(2, 2, upd("t", 5)).unwrap();
        assert!(s.sxacts[&2].in_conflicts.is_empty());
        s.on_write(2, 2, ins("t")).unwrap();
        assert!(s.sxacts[&2].in_conflicts.is_empty(), "the heap insert misses an index lock");
        s.on_index_insert(2, "t").unwrap();
        assert!(s.sxacts[&2].in_conflicts.contains(&1));
        s.register(3, false, 0);
        s.register(4, false, 0);
        s.on_read_key(3, "u", &[0, 1, 2], &[]).unwrap();
        assert!(s.sxacts[&3].holds(&SireadLock::Page("u".into())));
        assert_eq!(s.sxacts[&3].tuple_locks_on("u"), 0, "the page lock replaced them");
        s.on_write(4, 4, ins("u")).unwrap();
        assert!(s.sxacts[&4].in_conflicts.is_empty());
        s.on_write(4, 4, upd("u", 9)).unwrap();
        assert!(s.sxacts[&4].in_conflicts.contains(&3));
    }

    /// Write skew: both read, both write; the first commit dooms the second.
    #[test]
    fn write_skew_dooms_second_committer() {
        let mut s = both_read_t();
        s.on_write(1, 1, ins("t")).unwrap();
        s.on_write(2, 2, ins("t")).unwrap();
        s.pre_commit(1).unwrap();
        s.committed(1, 1);
        let err = s.pre_commit(2).unwrap_err().into_sql_error();
        assert_eq!(err.code, "40001");
        assert!(err.detail.unwrap().contains("during commit attempt"));
    }

    /// Once the winner committed, the loser fails at its write ("during write").
    #[test]
    fn loser_fails_during_write_after_winner_commits() {
        let mut s = both_read_t();
        s.on_write(2, 2, ins("t")).unwrap();
        s.pre_commit(2).unwrap();
        s.committed(2, 1);
        let err = s.on_write(1, 1, ins("t")).unwrap_err().into_sql_error();
        assert!(err.detail.unwrap().contains("during write"));
    }

    /// A transaction doomed by another's commit fails at its next write, heap or index
    /// ("during conflict in checking"), before any edge is added.
    #[test]
    fn doomed_writer_fails_at_conflict_in() {
        let mut s = both_read_t();
        s.on_write(1, 1, ins("t")).unwrap();
        s.on_write(2, 2, ins("u")).unwrap();
        s.on_read(1, "u", &[]).unwrap();
        s.pre_commit(2).unwrap();
        s.committed(2, 1);
        assert!(s.is_doomed(1));
        for err in [s.on_write(1, 1, ins("v")), s.on_index_insert(1, "v")] {
            let err = err.unwrap_err().into_sql_error();
            assert_eq!(err.code, "40001");
            assert!(err.detail.unwrap().contains("during conflict in checking"));
        }
    }

    /// A write undone by ROLLBACK TO SAVEPOINT no longer makes its transaction an
    /// out-conflict of a later reader; a write of the surviving xid still does.
    #[test]
    fn rolled_back_subtransaction_write_is_not_read() {
        let mut s = Ssi::default();
        s.register(1, false, 0);
        s.register(2, false, 0);
        s.on_write(1, 10, ins("t")).unwrap();
        s.subtransactions_aborted(&[10]);
        s.on_read(2, "t", &[]).unwrap();
        assert!(s.sxacts[&2].out_conflicts.is_empty());
        s.on_write(1, 11, ins("t")).unwrap();
        s.on_read(2, "t", &[]).unwrap();
        assert!(s.sxacts[&2].out_conflicts.contains(&1));
    }

    /// gen-1796570058-0073: Tin (2) read what Tout (1) wrote, Tout committed, Tin committed,
    /// then the pivot (4, which read before Tout's write) writes what Tin read. A Tin that
    /// committed without writing is read-only, and Tout committed after Tin's snapshot: no
    /// anomaly, the write goes on. The same Tin with a write of its own fails the pivot.
    #[test]
    fn a_transaction_that_committed_without_writing_is_read_only() {
        for tin_wrote in [false, true] {
            let mut s = Ssi::default();
            for t in [1, 2, 4] {
                s.register(t, false, 0);
            }
            s.on_read(4, "t", &[]).unwrap();
            s.on_write(1, 1, ins("t")).unwrap();
            s.pre_commit(1).unwrap();
            s.committed(1, 1);
            s.on_read(2, "t", &[]).unwrap();
            if tin_wrote {
                s.on_write(2, 2, ins("u")).unwrap();
            }
            s.pre_commit(2).unwrap();
            s.committed(2, 2);
            assert_eq!(s.sxacts[&2].read_only, !tin_wrote);
            let pivot_write = s.on_write(4, 4, ins("t"));
            if tin_wrote {
                let err = pivot_write.unwrap_err().into_sql_error();
                assert!(err.detail.unwrap().contains("during write"));
            } else {
                pivot_write.unwrap();
                assert!(s.sxacts[&4].in_conflicts.contains(&2), "the edge is there, harmless");
            }
        }
    }
}
