//! Constraint checks of a written row: NOT NULL, CHECK, unique and exclusion (waiting for an
//! in-progress conflicting writer, with the SSI write check in PostgreSQL's order), and
//! FOREIGN KEY from the child side (FOR KEY SHARE on the parent) and the parent side.

use super::{Conflict, ExecutionResult, Executor, Halt, row_text};
use crate::Value;
use crate::error::Error;
use crate::locks::Wait;
use crate::mvcc::{self, Liveness, Snapshot, TupleId, TxnId};
use crate::sql::expr::{self, Row};
use crate::sql::{Isolation, LockStrength};
use crate::ssi::WriteTarget;
use crate::value;
use std::cmp::Ordering;

impl<'a> Executor<'a> {
    /// The checks of writing the version `values` of `table` (replacing `replaces`), in
    /// PostgreSQL's order: the heap write's SSI conflict-in check, then the unique and
    /// exclusion checks (which may wait for an in-progress writer), then, when the write
    /// adds entries to a unique index (`index_insert`), the index's SSI conflict-in check.
    /// A duplicate key is reported as 23505 only after that index check
    /// (_bt_check_unique), so a doomed or pivot writer gets 40001; an exclusion violation
    /// is reported without it (check_exclusion_or_unique_constraint has none).
    pub(super) fn write_checks(
        &mut self,
        table: &str,
        values: &[Value],
        replaces: Option<TupleId>,
        index_insert: bool,
    ) -> ExecutionResult<()> {
        self.ssi_write(WriteTarget { table, replaces })?;
        match self.find_conflict(table, values, None)? {
            Some(c) if c.exclusion => Err(self.conflict_error(table, values, c).into()),
            Some(c) => {
                self.ssi_index_insert(table)?;
                Err(self.conflict_error(table, values, c).into())
            }
            None if index_insert => self.ssi_index_insert(table),
            None => Ok(()),
        }
    }

    /// NOT NULL and CHECK constraints of a proposed row.
    pub(super) fn check_row(&mut self, table: &str, values: &[Value]) -> ExecutionResult<()> {
        // The definition is read in place (the checks' evaluation only needs the effects).
        let params = self.params;
        let (catalog, _, mut effects) = self.side_effects();
        let t = catalog.must_get(table)?;
        for (i, c) in t.columns.iter().enumerate() {
            if c.not_null && values[i] == Value::Null {
                return Err(Error::Constraint {
                    code: "23502",
                    message: format!("null value in column \"{}\" of relation \"{table}\" violates not-null constraint", c.name),
                    detail: Some(format!("Failing row contains ({}).", row_text(values))),
                    constraint: None,
                }
                .into());
            }
        }
        for check in &t.checks {
            let v = expr::eval(&check.expr, &Row::new(values, params), &mut effects)?;
            if v == Value::Bool(false) {
                return Err(Error::Constraint {
                    code: "23514",
                    message: format!(
                        "new row for relation \"{table}\" violates check constraint \"{}\"",
                        check.name
                    ),
                    detail: Some(format!("Failing row contains ({}).", row_text(values))),
                    constraint: Some(check.name.clone()),
                }
                .into());
            }
        }
        Ok(())
    }

    /// Finds a live conflicting version for a proposed row, waiting on in-progress ones.
    /// `only`: restrict to one arbiter (is exclusion, index).
    pub(super) fn find_conflict(
        &mut self,
        table: &str,
        values: &[Value],
        only: Option<(bool, usize)>,
    ) -> ExecutionResult<Option<Conflict>> {
        let t = self.db.catalog.must_get(table)?;
        let xids = &self.db.xids;
        let own_txn = self.context.txn;
        for (ui, u) in t.uniques.iter().enumerate() {
            if only.is_some_and(|o| o != (false, ui)) {
                continue;
            }
            let key: Vec<Value> = u.columns.iter().map(|&c| values[c].clone()).collect();
            if key.contains(&Value::Null) {
                continue;
            }
            for &tid in t.heap.indexes[ui].get(&key).map(Vec::as_slice).unwrap_or(&[]) {
                match mvcc::liveness(xids, &t.heap.tuples[tid], own_txn) {
                    Liveness::Dead => {}
                    Liveness::Live => {
                        return Ok(Some(Conflict { exclusion: false, index: ui, tid }));
                    }
                    Liveness::WaitFor(other) => return Err(Halt::Block(Wait::Txn(other))),
                }
            }
        }
        for (xi, x) in t.exclusions.iter().enumerate() {
            if only.is_some_and(|o| o != (true, xi)) {
                continue;
            }
            if !exclusion_applies(x, values)? {
                continue;
            }
            for (tid, tuple) in t.heap.tuples.iter().enumerate() {
                if tuple.dead || !exclusion_matches(x, values, &tuple.values)? {
                    continue;
                }
                match mvcc::liveness(xids, tuple, own_txn) {
                    Liveness::Dead => {}
                    Liveness::Live => {
                        return Ok(Some(Conflict { exclusion: true, index: xi, tid }));
                    }
                    Liveness::WaitFor(other) => return Err(Halt::Block(Wait::Txn(other))),
                }
            }
        }
        Ok(None)
    }

    /// The 23505 / 23P01 error for a conflict, or 40001 for a SERIALIZABLE transaction that
    /// SSI already doomed and whose snapshot cannot see the conflicting row (exclusion
    /// constraints always give 23P01, as PostgreSQL 15).
    fn conflict_error(&self, table: &str, values: &[Value], c: Conflict) -> Error {
        let t = match self.db.catalog.must_get(table) {
            Ok(t) => t,
            Err(e) => return e,
        };
        let other = &t.heap.tuples[c.tid];
        let key_text = |cols: &[usize], vals: &[Value]| -> String {
            cols.iter().map(|&i| value::to_pg_text(&vals[i])).collect::<Vec<_>>().join(", ")
        };
        if c.exclusion {
            let x = &t.exclusions[c.index];
            let cols: Vec<usize> = x.elements.iter().map(|e| e.0).collect();
            let names = t.column_list(&cols);
            return Error::Constraint {
                code: "23P01",
                message: format!(
                    "conflicting key value violates exclusion constraint \"{}\"",
                    x.name
                ),
                detail: Some(format!(
                    "Key ({names})=({}) conflicts with existing key ({names})=({}).",
                    key_text(&cols, values),
                    key_text(&cols, &other.values)
                )),
                constraint: Some(x.name.clone()),
            };
        }
        // A serializable writer already marked doomed (the committed winner saw it as a
        // pivot) gets the serialization failure instead of the unique violation.
        if self.context.ssi
            && self.db.ssi.is_doomed(self.context.txn)
            && !self.snap.visible(&self.db.xids, other)
        {
            return Error::rw_dependency("Canceled on identification as a pivot, during write");
        }
        let u = &t.uniques[c.index];
        Error::Constraint {
            code: "23505",
            message: format!("duplicate key value violates unique constraint \"{}\"", u.name),
            detail: Some(format!(
                "Key ({})=({}) already exists.",
                t.column_list(&u.columns),
                key_text(&u.columns, values)
            )),
            constraint: Some(u.name.clone()),
        }
    }

    /// Foreign-key checks for a new or changed child row: the parent row must exist and is
    /// locked FOR KEY SHARE.
    pub(super) fn check_parents(
        &mut self,
        table: &str,
        values: &[Value],
        old: Option<&[Value]>,
    ) -> ExecutionResult<()> {
        let fks = self.db.catalog.must_get(table)?.foreign_keys.clone();
        for fk in fks {
            let key: Vec<Value> = fk.columns.iter().map(|&c| values[c].clone()).collect();
            if key.contains(&Value::Null) {
                continue;
            }
            if let Some(old) = old
                && fk.columns.iter().all(|&c| old[c] == values[c])
            {
                continue;
            }
            let missing = || {
                let child = &fk;
                Halt::Error(Error::Constraint {
                    code: "23503",
                    message: format!(
                        "insert or update on table \"{table}\" violates foreign key constraint \"{}\"",
                        child.name
                    ),
                    detail: None,
                    constraint: Some(child.name.clone()),
                })
            };
            // PostgreSQL's RI check is `SELECT … FOR KEY SHARE` with the statement's
            // snapshot: at REPEATABLE READ and above that is the transaction snapshot, so a
            // parent deleted or updated by a transaction that committed after it fails with
            // 40001 (ExecLockRows says "concurrent update" for both), not 23503.
            let snapshot_rules = self.context.isolation >= Isolation::RepeatableRead;
            let found = if snapshot_rules {
                self.visible_by_key(&fk.parent, &fk.parent_columns, &key, self.snap)?
            } else {
                self.latest_visible_by_key(&fk.parent, &fk.parent_columns, &key)?
            };
            let Some(tid) = found else {
                return Err(self.fk_missing_detail(missing(), table, &fk, &key));
            };
            // The RI query is a primary-key lookup: tuple + index-page SIREAD locks, and the
            // conflict-out check of the versions it examines, made by its scan before
            // LockRows locks the row (so a lock wait or a "concurrent update" after it
            // does not undo the rw-edge).
            if self.context.ssi && self.ssi_read_is_new() {
                let examined = self.key_writers(&fk.parent, &fk.parent_columns, &key);
                let fetched = self.others_versions(&fk.parent, &[tid])?;
                self.db.ssi.on_read_key(self.context.txn, &fk.parent, &fetched, &examined)?;
            }
            match self.lock_row(&fk.parent, tid, LockStrength::KeyShare, false, false) {
                Err(Halt::Error(Error::Serialization { .. })) if snapshot_rules => {
                    return Err(Error::concurrent_update().into());
                }
                other => {
                    other?;
                }
            }
            if self.latest_visible_by_key(&fk.parent, &fk.parent_columns, &key)?.is_none() {
                return Err(self.fk_missing_detail(missing(), table, &fk, &key));
            }
        }
        Ok(())
    }

    fn fk_missing_detail(
        &self,
        h: Halt,
        table: &str,
        fk: &crate::catalog::ForeignKey,
        key: &[Value],
    ) -> Halt {
        let Halt::Error(Error::Constraint { code, message, constraint, .. }) = h else { return h };
        let names =
            self.db.catalog.must_get(table).map(|t| t.column_list(&fk.columns)).unwrap_or_default();
        let text = key.iter().map(value::to_pg_text).collect::<Vec<_>>().join(", ");
        Halt::Error(Error::Constraint {
            code,
            message,
            detail: Some(format!(
                "Key ({names})=({text}) is not present in table \"{}\".",
                fk.parent
            )),
            constraint,
        })
    }

    /// The version with `key` in `columns` visible to a fresh snapshot (what a foreign-key
    /// check sees at READ COMMITTED), using a unique index on exactly those columns.
    fn latest_visible_by_key(
        &self,
        table: &str,
        columns: &[usize],
        key: &[Value],
    ) -> ExecutionResult<Option<TupleId>> {
        let fresh = Snapshot {
            seq: self.db.xids.last_commit,
            txn: self.context.txn,
            cmd: self.snap.cmd + 1,
        };
        self.visible_by_key(table, columns, key, fresh)
    }

    /// Writers of the versions with `key` in `columns` whose change this statement's
    /// snapshot cannot see (a visible version's deleter, an invisible one's inserter).
    fn key_writers(&self, table: &str, columns: &[usize], key: &[Value]) -> Vec<TxnId> {
        let Ok(t) = self.db.catalog.must_get(table) else { return Vec::new() };
        let Some(ui) = t.uniques.iter().position(|u| u.columns == columns) else {
            return Vec::new();
        };
        let xids = &self.db.xids;
        t.heap.indexes[ui]
            .get(key)
            .into_iter()
            .flatten()
            .map(|&tid| &t.heap.tuples[tid])
            .filter(|tuple| !tuple.dead)
            .filter_map(|tuple| {
                let visible = self.snap.visible(xids, tuple);
                mvcc::examined_writer(xids, tuple, visible).filter(|&w| w != self.context.txn)
            })
            .collect()
    }

    /// The version with `key` in `columns` visible to `fresh`, through a unique index on
    /// exactly those columns.
    fn visible_by_key(
        &self,
        table: &str,
        columns: &[usize],
        key: &[Value],
        fresh: Snapshot,
    ) -> ExecutionResult<Option<TupleId>> {
        let t = self.db.catalog.must_get(table)?;
        let Some(ui) = t.uniques.iter().position(|u| u.columns == columns) else {
            return Ok(None);
        };
        let found = t.heap.indexes[ui]
            .get(key)
            .into_iter()
            .flatten()
            .copied()
            .find(|&tid| fresh.visible(&self.db.xids, &t.heap.tuples[tid]));
        Ok(found)
    }

    /// The commit sequence of the next foreign-key check's fresh snapshot: taken on the
    /// statement's first attempt and replayed after a wait, as PostgreSQL's RI query keeps
    /// the snapshot it took before waiting for a referencing row's locker.
    fn check_snapshot_seq(&mut self) -> crate::mvcc::CommitSeq {
        let index = self.check_snapshot_index;
        self.check_snapshot_index += 1;
        if let Some(&seq) = self.replay.check_snapshots.get(index) {
            return seq;
        }
        let seq = self.db.xids.last_commit;
        self.replay.check_snapshots.push(seq);
        seq
    }

    /// NO ACTION foreign keys pointing at a deleted (or re-keyed) parent row: PostgreSQL's
    /// `SELECT 1 FROM child WHERE fk = $1 FOR KEY SHARE` with a fresh snapshot. A referencing
    /// row locked or deleted by an in-progress transaction is waited for; after the wait a
    /// committed delete removes it at READ COMMITTED and fails 40001 "concurrent update" at
    /// REPEATABLE READ and above (ExecLockRows), an abort leaves it referencing (23503).
    pub(super) fn check_children(
        &mut self,
        table: &str,
        old: &[Value],
        new: Option<&[Value]>,
    ) -> ExecutionResult<()> {
        for (child, fk) in self.db.catalog.referencing(table) {
            let key: Vec<Value> = fk.parent_columns.iter().map(|&c| old[c].clone()).collect();
            if new.is_some_and(|n| fk.parent_columns.iter().all(|&c| n[c] == old[c])) {
                continue;
            }
            let fresh = Snapshot {
                seq: self.check_snapshot_seq(),
                txn: self.context.txn,
                cmd: self.snap.cmd + 1,
            };
            let matches =
                |values: &[Value]| fk.columns.iter().zip(&key).all(|(&c, k)| values[c] == *k);
            // The versions the RI query's scan examines: the matching visible ones, and the
            // writer of each whose change the fresh snapshot does not see (a visible version's
            // deleter or updater, an invisible version's inserter), as
            // HeapCheckForSerializableConflictOut checks them under that snapshot.
            let mut candidates = Vec::new();
            let mut examined = Vec::new();
            {
                let ct = self.db.catalog.must_get(&child)?;
                for (tid, tuple) in ct.heap.tuples.iter().enumerate() {
                    if tuple.dead {
                        continue;
                    }
                    let visible = fresh.visible(&self.db.xids, tuple);
                    examined.extend(mvcc::examined_writer(&self.db.xids, tuple, visible));
                    if visible && matches(&tuple.values) {
                        candidates.push(tid);
                    }
                }
            }
            // The RI query (`SELECT … FROM child WHERE fk = $1`, a sequential scan: the model
            // has no index on foreign-key columns) takes a relation SIREAD lock.
            if self.context.ssi && self.ssi_read_is_new() {
                self.db.ssi.on_scan(self.context.txn, &child, &examined)?;
            }
            let mut referenced = false;
            for tid in candidates {
                let locked = match self.lock_row(&child, tid, LockStrength::KeyShare, false, false)
                {
                    Err(Halt::Error(Error::Serialization { .. })) => {
                        return Err(Error::concurrent_update().into());
                    }
                    other => other?,
                };
                let Some(newest) = locked else { continue };
                let values = &self.db.catalog.must_get(&child)?.heap.tuples[newest].values;
                if matches(values) {
                    referenced = true;
                    break;
                }
            }
            if referenced {
                let pt = self.db.catalog.must_get(table)?;
                let text = key.iter().map(value::to_pg_text).collect::<Vec<_>>().join(", ");
                return Err(Error::Constraint {
                    code: "23503",
                    message: format!(
                        "update or delete on table \"{table}\" violates foreign key constraint \"{}\" on table \"{child}\"",
                        fk.name
                    ),
                    detail: Some(format!(
                        "Key ({})=({text}) is still referenced from table \"{child}\".",
                        pt.column_list(&fk.parent_columns)
                    )),
                    constraint: Some(fk.name.clone()),
                }
                .into());
            }
        }
        Ok(())
    }
}

fn exclusion_applies(x: &crate::catalog::Exclusion, values: &[Value]) -> Result<bool, Error> {
    match &x.filter {
        None => Ok(true),
        Some(f) => Ok(expr::is_true(&expr::eval(
            f,
            &Row::new(values, &[]),
            &mut expr::NoEffects { now_us: 0 },
        )?)),
    }
}

fn exclusion_matches(
    x: &crate::catalog::Exclusion,
    new: &[Value],
    old: &[Value],
) -> Result<bool, Error> {
    for &(col, overlap) in &x.elements {
        let (a, b) = (&new[col], &old[col]);
        if *a == Value::Null || *b == Value::Null {
            return Ok(false);
        }
        let hit = if overlap {
            matches!((a, b), (Value::Range(r1), Value::Range(r2)) if value::ranges_overlap(r1, r2))
        } else {
            value::compare(a, b) == Some(Ordering::Equal)
        };
        if !hit {
            return Ok(false);
        }
    }
    exclusion_applies(x, old)
}
