//! Row locks: a SELECT's FOR UPDATE / FOR SHARE clauses, and the lock-then-recheck of one
//! candidate row (ROW LOCKS AND VERSION CHECKS in the `executor` module doc), following a
//! committed update to the newest version under READ COMMITTED.

use super::{Candidate, ExecutionResult, Executor, Halt};
use crate::error::Error;
use crate::locks::{RowLock, Wait};
use crate::mvcc::{TupleId, Xid, XidStatus};
use crate::sql::planner::{Select, Source};
use crate::sql::{Isolation, LockStrength};

impl<'a> Executor<'a> {
    /// Applies the FOR … clauses to one output row; false when the row is skipped.
    pub(super) fn lock_select_row(
        &mut self,
        s: &Select,
        cand: &mut Candidate,
    ) -> ExecutionResult<bool> {
        let widths = &s.widths;
        for clause in &s.locks {
            for &si in &clause.sources {
                let (Some(tid), Source::Table { table, .. }) = (cand.tids[si], &s.sources[si])
                else {
                    continue;
                };
                let offset: usize = widths[..si].iter().sum();
                let locked =
                    self.lock_row(table, tid, clause.strength, clause.nowait, clause.skip_locked);
                // ExecLockRows says "concurrent update" for a concurrently deleted row too.
                let locked = match locked {
                    Err(Halt::Error(Error::Serialization { message, .. }))
                        if message.contains("concurrent delete") =>
                    {
                        Err(Error::concurrent_update().into())
                    }
                    other => other,
                };
                match locked? {
                    None => return Ok(false),
                    Some(newest) if newest != tid => {
                        let t = self.db.catalog.must_get(table)?;
                        let fresh = t.heap.tuples[newest].values.clone();
                        cand.values.splice(offset..offset + widths[si], fresh);
                        cand.tids[si] = Some(newest);
                        if !self.eval_filter(s.filter.as_ref(), &cand.values.clone())? {
                            return Ok(false);
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(true)
    }

    /// Locks a candidate row (see the module doc). Returns the version to operate on, or
    /// None when the row is skipped (SKIP LOCKED, or deleted under READ COMMITTED).
    pub(super) fn lock_row(
        &mut self,
        table: &str,
        tid: TupleId,
        mode: LockStrength,
        nowait: bool,
        skip_locked: bool,
    ) -> ExecutionResult<Option<TupleId>> {
        let t = self.db.catalog.must_get(table)?;
        let row = t.heap.tuples[tid].row_id;
        let blockers = self.db.locks.row_blockers(table, row, self.context.txn, mode);
        // heap_lock_tuple judges the snapshot's version: a running transaction holding it
        // (its updater, or a locker) is waited for first (NOWAIT: 55P03,
        // regressions/gen-1796563697-0091); with none, under REPEATABLE READ a committed
        // update or delete of it is 40001 at once, even when a NEWER version is locked by
        // someone still running (regressions/gen-1796558798-0071).
        let holds_this_version = blockers.iter().any(|l| l.tid == tid);
        if self.context.isolation >= Isolation::RepeatableRead && !holds_this_version {
            self.repeatable_read_version_check(table, tid, mode)?;
        }
        if !blockers.is_empty() {
            if skip_locked {
                return Ok(None);
            }
            if nowait {
                return Err(Error::LockNotAvailable(format!(
                    "could not obtain lock on row in relation \"{table}\""
                ))
                .into());
            }
            return Err(Halt::Block(Wait::Row { table: table.to_string(), row, mode }));
        }
        // REPEATABLE READ judged the snapshot's version above (nobody held it: no blockers)
        // and locks that version; READ COMMITTED follows a committed update.
        let version = if self.context.isolation >= Isolation::RepeatableRead {
            tid
        } else if mode == LockStrength::KeyShare && self.key_share_passes(table, tid)? {
            // heap_lock_tuple's KEY SHARE exception is TM_Ok, not TM_Updated: the snapshot's
            // version is locked and returned, with no EvalPlanQual to the newer one
            // (regressions/gen-1797400000-1102).
            tid
        } else {
            // A row a committed transaction deleted is skipped and NOT locked: heap_lock_tuple
            // gives up the tuple lock it waited with (TM_Deleted), so a later writer of that
            // row does not wait for this transaction (regressions/gen-1797300000-2482).
            let Some(newest) = self.follow_committed_update(table, tid)? else {
                return Ok(None);
            };
            newest
        };
        let lock = RowLock {
            txn: self.context.txn,
            xid: self.context.xid,
            session: self.context.session,
            mode,
            tid: version,
        };
        self.db.locks.grant_row(table, row, lock);
        Ok(Some(version))
    }

    /// READ COMMITTED: the newest version of `tid`'s row when a committed transaction updated
    /// it, `None` when one deleted it, else `tid`.
    fn follow_committed_update(
        &self,
        table: &str,
        tid: TupleId,
    ) -> ExecutionResult<Option<TupleId>> {
        let t = self.db.catalog.must_get(table)?;
        let xids = &self.db.xids;
        if !self.committed_by_other(t.heap.tuples[tid].xmax) {
            return Ok(Some(tid));
        }
        let newest = t.heap.newest(xids, tid);
        let deleted = t.heap.tuples[newest]
            .xmax
            .is_some_and(|x| matches!(xids.status(x), XidStatus::Committed(_)));
        Ok(if deleted { None } else { Some(newest) })
    }

    /// Under REPEATABLE READ / SERIALIZABLE: 40001 when the snapshot's version `tid` was
    /// updated or deleted by another committed transaction (but a KEY SHARE lock on a version
    /// whose update kept its keys passes, unless a newer version's committed update changed
    /// them); Ok otherwise.
    fn repeatable_read_version_check(
        &self,
        table: &str,
        tid: TupleId,
        mode: LockStrength,
    ) -> ExecutionResult<()> {
        let t = self.db.catalog.must_get(table)?;
        let tuple = &t.heap.tuples[tid];
        if !self.committed_by_other(tuple.xmax) {
            return Ok(());
        }
        if mode == LockStrength::KeyShare && self.key_share_passes(table, tid)? {
            return Ok(());
        }
        let updated = tuple.next.is_some_and(|n| !t.heap.tuples[n].dead);
        Err(if updated { Error::concurrent_update() } else { Error::concurrent_delete() }.into())
    }

    /// heap_lock_tuple's KEY SHARE exception, for a snapshot's version `tid` that another
    /// transaction updated and committed: true when that update did not set
    /// HEAP_KEYS_UPDATED (it kept every unique-key column, see write_update) and no newer
    /// version's committed update or delete changed them (heap_lock_updated_tuple locks the
    /// newer versions too, and such a change is TM_Updated there).
    fn key_share_passes(&self, table: &str, tid: TupleId) -> ExecutionResult<bool> {
        let t = self.db.catalog.must_get(table)?;
        let tuple = &t.heap.tuples[tid];
        if !self.committed_by_other(tuple.xmax) {
            return Ok(false);
        }
        let updated = tuple.next.is_some_and(|n| !t.heap.tuples[n].dead);
        if !updated || tuple.keys_updated {
            return Ok(false);
        }
        let mut next = tuple.next;
        while let Some(n) = next.filter(|&n| !t.heap.tuples[n].dead) {
            let newer = &t.heap.tuples[n];
            if newer.keys_updated && self.committed_by_other(newer.xmax) {
                return Ok(false);
            }
            next = newer.next;
        }
        Ok(true)
    }

    /// Whether `xmax` is another transaction's, committed.
    fn committed_by_other(&self, xmax: Option<Xid>) -> bool {
        let xids = &self.db.xids;
        match xmax.map(|x| (x, xids.status(x))) {
            Some((x, XidStatus::Committed(_))) => xids.top(x) != self.context.txn,
            _ => false,
        }
    }
}
