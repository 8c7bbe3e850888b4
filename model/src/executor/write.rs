//! Writes: INSERT (defaults, serials, ON CONFLICT), UPDATE and DELETE with RETURNING, and the
//! heap version changes they make (each recorded for `Executor::undo`).

use super::{Conflict, ExecutionResult, Executor, Halt, ON_CONFLICT_RETRIES_MAX};
use crate::catalog::Table;
use crate::error::Error;
use crate::mvcc::{self, RowId, Tuple, TupleId, Undo};
use crate::sql::expr::{self, Expr, Row};
use crate::sql::planner::{self, Delete, Insert, InsertSource, Update};
use crate::sql::{Isolation, LockStrength};
use crate::ssi::WriteTarget;
use crate::{QueryResult, Value, errinput};

impl<'a> Executor<'a> {
    fn index_keys(t: &Table, values: &[Value]) -> Vec<Option<Vec<Value>>> {
        t.uniques
            .iter()
            .map(|u| {
                let key: Vec<Value> = u.columns.iter().map(|&c| values[c].clone()).collect();
                if key.contains(&Value::Null) { None } else { Some(key) }
            })
            .collect()
    }

    fn append_version(
        &mut self,
        table: &str,
        row_id: RowId,
        values: Vec<Value>,
    ) -> ExecutionResult<TupleId> {
        let (xid, cmd) = (self.context.xid, self.snap.cmd);
        let t = self.db.catalog.must_get_mut(table)?;
        let keys = Self::index_keys(t, &values);
        let tuple = Tuple {
            row_id,
            values,
            xmin: xid,
            cmin: cmd,
            xmax: None,
            cmax: 0,
            next: None,
            dead: false,
            keys_updated: false,
        };
        let tid = t.heap.append(tuple, keys);
        self.undo.push((table.to_string(), Undo::Inserted { tuple: tid }));
        Ok(tid)
    }

    fn expire_version(
        &mut self,
        table: &str,
        tid: TupleId,
        next: Option<TupleId>,
        keys_updated: bool,
    ) -> ExecutionResult<()> {
        let (xid, cmd) = (self.context.xid, self.snap.cmd);
        let t = self.db.catalog.must_get_mut(table)?;
        t.heap.touch();
        let tuple = &mut t.heap.tuples[tid];
        let change = Undo::Expired {
            tuple: tid,
            old_xmax: tuple.xmax,
            old_cmax: tuple.cmax,
            old_next: tuple.next,
            old_keys_updated: tuple.keys_updated,
        };
        tuple.xmax = Some(xid);
        tuple.cmax = cmd;
        tuple.next = next;
        tuple.keys_updated = keys_updated;
        self.undo.push((table.to_string(), change));
        Ok(())
    }

    pub(super) fn insert(&mut self, ins: &Insert) -> ExecutionResult<QueryResult> {
        self.check_writable("INSERT")?;
        let rows: Vec<Vec<Option<Value>>> = match &ins.source {
            InsertSource::Values(rows) => {
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    let mut vals = Vec::with_capacity(r.len());
                    for e in r {
                        vals.push(match e {
                            Expr::Default => None,
                            e => Some(self.eval(e, &[], None)?),
                        });
                    }
                    out.push(vals);
                }
                out
            }
            InsertSource::Select(s) => self
                .select_rows(s)?
                .into_iter()
                .map(|r| r.into_iter().map(Some).collect())
                .collect(),
        };
        let mut count = 0;
        let mut returned = Vec::new();
        for provided in rows {
            let values = self.build_row(ins, provided)?;
            if let Some(final_values) = self.insert_row(ins, values)? {
                count += 1;
                if !ins.returning.is_empty() {
                    returned.push(self.returning(&ins.returning, &final_values)?);
                }
            }
        }
        Ok(self.dml_result(format!("INSERT 0 {count}"), &ins.returning, returned))
    }

    fn dml_result(
        &self,
        tag: String,
        returning: &[(String, Expr)],
        rows: Vec<Vec<Value>>,
    ) -> QueryResult {
        QueryResult { tag, columns: returning.iter().map(|(n, _)| n.clone()).collect(), rows }
    }

    fn returning(
        &mut self,
        items: &[(String, Expr)],
        values: &[Value],
    ) -> ExecutionResult<Vec<Value>> {
        let mut out = Vec::with_capacity(items.len());
        for (_, e) in items {
            out.push(self.eval(e, values, None)?);
        }
        Ok(out)
    }

    /// The full row for an INSERT: provided values, defaults, serials, generated columns.
    /// The table's definition is read in place, never copied (serials are its only part a
    /// row changes, through [`Executor::default_value`]).
    fn build_row(
        &mut self,
        ins: &Insert,
        provided: Vec<Option<Value>>,
    ) -> ExecutionResult<Vec<Value>> {
        let width = {
            let t = self.db.catalog.must_get(&ins.table)?;
            for (&ci, v) in ins.columns.iter().zip(&provided) {
                if t.columns[ci].generated.is_some() && v.is_some() {
                    return Err(errinput!(
                        "428C9",
                        "cannot insert a non-DEFAULT value into column \"{}\"",
                        t.columns[ci].name
                    )
                    .into());
                }
            }
            t.columns.len()
        };
        let mut values: Vec<Option<Value>> = vec![None; width];
        for (&ci, v) in ins.columns.iter().zip(provided) {
            values[ci] = v;
        }
        let mut row = Vec::with_capacity(width);
        for (ci, value) in values.into_iter().enumerate() {
            let v = match value {
                Some(v) => {
                    let t = self.db.catalog.must_get(&ins.table)?;
                    planner::assign(v, &t.columns[ci])?
                }
                None => self.default_value(&ins.table, ci)?,
            };
            row.push(v);
        }
        let params = self.params;
        let (catalog, _, mut effects) = self.side_effects();
        let t = catalog.must_get(&ins.table)?;
        for (ci, c) in t.columns.iter().enumerate() {
            if let Some(g) = &c.generated {
                let v = expr::eval(g, &Row::new(&row, params), &mut effects)?;
                row[ci] = planner::assign(v, c)?;
            }
        }
        Ok(row)
    }

    fn default_value(&mut self, table: &str, ci: usize) -> ExecutionResult<Value> {
        if self.db.catalog.must_get(table)?.columns[ci].serial_next.is_some() {
            return Ok(Value::Int(self.next_serial(table, ci)?));
        }
        let params = self.params;
        let (catalog, _, mut effects) = self.side_effects();
        let c = &catalog.must_get(table)?.columns[ci];
        match &c.default {
            Some(e) => {
                let v = expr::eval(e, &Row::new(&[], params), &mut effects)?;
                Ok(planner::assign(v, c)?)
            }
            None => Ok(Value::Null),
        }
    }

    fn next_serial(&mut self, table: &str, ci: usize) -> ExecutionResult<i64> {
        if let Some(v) = self.replay.serials.get(self.serial_index) {
            self.serial_index += 1;
            return Ok(*v);
        }
        let t = self.db.catalog.must_get_mut(table)?;
        let next = t.columns[ci].serial_next.as_mut().expect("serial column has a sequence");
        let v = *next;
        *next += 1;
        self.replay.serials.push(v);
        self.serial_index += 1;
        Ok(v)
    }

    /// Inserts one row with ON CONFLICT handling. Returns the row as stored (or as updated by
    /// DO UPDATE), None when nothing was written.
    fn insert_row(
        &mut self,
        ins: &Insert,
        values: Vec<Value>,
    ) -> ExecutionResult<Option<Vec<Value>>> {
        let position = self.insert_index;
        self.insert_index += 1;
        if let Some(&(_, tid)) = self.replay.inserted.iter().find(|(p, _)| *p == position) {
            // Appended by an earlier attempt that then waited: only the checks after the
            // insertion are left.
            let stored = self.db.catalog.must_get(&ins.table)?.heap.tuples[tid].values.clone();
            self.check_parents(&ins.table, &stored, None)?;
            return Ok(Some(stored));
        }
        self.check_row(&ins.table, &values)?;
        let arbiter = ins.on_conflict.as_ref().map(|oc| oc.arbiter);
        if let Some(only) = arbiter {
            // A conflicting row deleted while we waited for its lock sends PostgreSQL back
            // to the speculative insertion; bounded here.
            for _ in 0..ON_CONFLICT_RETRIES_MAX {
                let Some(c) = self.find_conflict(&ins.table, &values, only)? else { break };
                if let Some(done) = self.on_conflict(ins, &values, c)? {
                    return Ok(done);
                }
            }
        }
        let indexed = {
            let t = self.db.catalog.must_get(&ins.table)?;
            !t.uniques.is_empty() || !t.exclusions.is_empty()
        };
        // PostgreSQL's order: the heap tuple and its index entries (after the unique
        // check), then the foreign-key check, an AFTER trigger, which may wait with the
        // row in place.
        self.write_checks(&ins.table, &values, None, indexed)?;
        let row_id = self.db.next_row;
        self.db.next_row += 1;
        let tid = self.append_version(&ins.table, row_id, values.clone())?;
        self.replay.inserted.push((position, tid));
        self.check_parents(&ins.table, &values, None)?;
        Ok(Some(values))
    }

    /// Handles a conflict found for an ON CONFLICT arbiter: `Ok(None)` means "the row went
    /// away, try the insertion again"; `Ok(Some(None))` nothing was written; `Ok(Some(row))`
    /// the existing row was updated to `row`.
    fn on_conflict(
        &mut self,
        ins: &Insert,
        proposed: &[Value],
        c: Conflict,
    ) -> ExecutionResult<Option<Option<Vec<Value>>>> {
        let oc = ins.on_conflict.as_ref().expect("called with ON CONFLICT");
        let table = ins.table.as_str();
        let visible = {
            let t = self.db.catalog.must_get(table)?;
            self.snap.visible(&self.db.xids, &t.heap.tuples[c.tid])
        };
        let own_this_command = {
            let t = self.db.catalog.must_get(table)?;
            let tuple = &t.heap.tuples[c.tid];
            self.db.xids.top(tuple.xmin) == self.context.txn && tuple.cmin == self.snap.cmd
        };
        let Some((sets, filter)) = &oc.update else {
            if self.context.isolation >= Isolation::RepeatableRead && !visible && !own_this_command
            {
                return Err(self.on_conflict_invisible(table, c.tid));
            }
            // The visible arbiter row is SIREAD-locked as a tuple, not through the index
            // page (gen-4242-0956 against gen-20261204-0183).
            if visible {
                self.ssi_read_versions(table, &[c.tid], &[])?;
            }
            return Ok(Some(None));
        };
        if own_this_command {
            return Err(errinput!(
                "21000",
                "ON CONFLICT DO UPDATE command cannot affect row a second time"
            )
            .into());
        }
        // ExecOnConflictUpdate locks with ExecUpdateLockMode: FOR UPDATE only when a SET
        // column is a unique-key column, else FOR NO KEY UPDATE (as a plain UPDATE).
        let mode = {
            let t = self.db.catalog.must_get(table)?;
            if sets.iter().any(|(ci, _)| t.is_key_column(*ci)) {
                LockStrength::Update
            } else {
                LockStrength::NoKeyUpdate
            }
        };
        let Some(tid) = self.lock_row(table, c.tid, mode, false, false)? else {
            return Ok(None);
        };
        if self.context.isolation >= Isolation::RepeatableRead && !visible {
            return Err(self.on_conflict_invisible(table, tid));
        }
        // The locked arbiter row is SIREAD-locked as a tuple, as DO NOTHING's is, whether or
        // not its WHERE lets the update through (pg_locks after `… DO UPDATE … WHERE false`
        // shows the tuple lock; gen-1796591661-0020: without it a later writer of that row
        // made no edge from this transaction and a pivot committed).
        self.ssi_read_versions(table, &[tid], &[])?;
        let existing = self.db.catalog.must_get(table)?.heap.tuples[tid].values.clone();
        if let Some(f) = filter
            && !expr::is_true(&self.eval(f, &existing, Some(proposed))?)
        {
            return Ok(Some(None));
        }
        let mut new = existing.clone();
        for (ci, e) in sets {
            let v = self.eval(e, &existing, Some(proposed))?;
            let col = self.db.catalog.must_get(table)?.columns[*ci].clone();
            new[*ci] = planner::assign(v, &col)?;
        }
        self.write_update(table, tid, &existing, new).map(|v| Some(Some(v)))
    }

    /// The error for an ON CONFLICT arbiter row this snapshot cannot see (`tid`): "concurrent
    /// update", unless the serializable conflict-out check on its writer finds a dangerous
    /// structure first, as PostgreSQL 15 reports it (read/write dependencies; measured with
    /// a concurrent committed insert whose transaction had read this one's write).
    fn on_conflict_invisible(&mut self, table: &str, tid: TupleId) -> Halt {
        let examined = {
            let Ok(t) = self.db.catalog.must_get(table) else {
                return Error::concurrent_update().into();
            };
            mvcc::examined_writer(&self.db.xids, &t.heap.tuples[tid], false)
                .filter(|&w| w != self.context.txn)
        };
        match self.ssi_read_versions(table, &[], examined.as_slice()) {
            Err(halt) => halt,
            Ok(()) => Error::concurrent_update().into(),
        }
    }

    pub(super) fn update(&mut self, u: &Update) -> ExecutionResult<QueryResult> {
        self.check_writable("UPDATE")?;
        let key_update = {
            let t = self.db.catalog.must_get(&u.table)?;
            u.sets.iter().any(|(ci, _)| t.is_key_column(*ci))
        };
        let mode = if key_update { LockStrength::Update } else { LockStrength::NoKeyUpdate };
        let tids = self.scan(&u.table, u.filter.as_ref())?;
        let mut count = 0;
        let mut returned = Vec::new();
        for tid in tids {
            let Some(target) = self.lock_row(&u.table, tid, mode, false, false)? else { continue };
            let old = self.db.catalog.must_get(&u.table)?.heap.tuples[target].values.clone();
            if target != tid && !self.eval_filter(u.filter.as_ref(), &old)? {
                continue;
            }
            let mut new = old.clone();
            for (ci, e) in &u.sets {
                let col = self.db.catalog.must_get(&u.table)?.columns[*ci].clone();
                new[*ci] = match e {
                    Expr::Default => self.default_value(&u.table, *ci)?,
                    e => planner::assign(self.eval(e, &old, None)?, &col)?,
                };
            }
            let stored = self.write_update(&u.table, target, &old, new)?;
            count += 1;
            if !u.returning.is_empty() {
                returned.push(self.returning(&u.returning, &stored)?);
            }
        }
        Ok(self.dml_result(format!("UPDATE {count}"), &u.returning, returned))
    }

    /// Writes a new version of a locked row after recomputing generated columns and checking
    /// constraints.
    fn write_update(
        &mut self,
        table: &str,
        tid: TupleId,
        old: &[Value],
        mut new: Vec<Value>,
    ) -> ExecutionResult<Vec<Value>> {
        {
            let params = self.params;
            let (catalog, _, mut effects) = self.side_effects();
            let t = catalog.must_get(table)?;
            for (ci, c) in t.columns.iter().enumerate() {
                if let Some(g) = &c.generated {
                    let v = expr::eval(g, &Row::new(&new, params), &mut effects)?;
                    new[ci] = planner::assign(v, c)?;
                }
            }
        }
        self.check_row(table, &new)?;
        let row_id = self.db.catalog.must_get(table)?.heap.tuples[tid].row_id;
        // Not HOT when an indexed column changes: new entries go into every index.
        let index_insert = {
            let t = self.db.catalog.must_get(table)?;
            (0..new.len()).any(|ci| t.is_indexed_column(ci) && old[ci] != new[ci])
        };
        // compute_new_xmax_infomask: an update of a row this subtransaction had locked FOR
        // UPDATE keeps the stronger mode, so it counts as a key update (HEAP_KEYS_UPDATED).
        let keys_updated = {
            let t = self.db.catalog.must_get(table)?;
            let key_changed = (0..new.len()).any(|ci| t.is_key_column(ci) && old[ci] != new[ci]);
            key_changed
                || self.db.locks.holds_row_in(table, row_id, self.context.xid, LockStrength::Update)
        };
        self.expire_version(table, tid, None, keys_updated)?;
        self.write_checks(table, &new, Some(tid), index_insert)?;
        // RI_FKey_fk_upd_check_required: a row version this transaction wrote is checked
        // even when its key columns did not change.
        let own_version = {
            let t = self.db.catalog.must_get(table)?;
            self.db.xids.top(t.heap.tuples[tid].xmin) == self.context.txn
        };
        self.check_parents(table, &new, if own_version { None } else { Some(old) })?;
        let new_tid = self.append_version(table, row_id, new.clone())?;
        self.set_next(table, tid, new_tid)?;
        self.check_children(table, old, Some(&new))?;
        Ok(new)
    }

    fn set_next(&mut self, table: &str, tid: TupleId, next: TupleId) -> ExecutionResult<()> {
        let t = self.db.catalog.must_get_mut(table)?;
        t.heap.touch();
        t.heap.tuples[tid].next = Some(next);
        Ok(())
    }

    pub(super) fn delete(&mut self, d: &Delete) -> ExecutionResult<QueryResult> {
        self.check_writable("DELETE")?;
        let tids = self.scan(&d.table, d.filter.as_ref())?;
        let mut count = 0;
        let mut returned = Vec::new();
        for tid in tids {
            let Some(target) = self.lock_row(&d.table, tid, LockStrength::Update, false, false)?
            else {
                continue;
            };
            let old = self.db.catalog.must_get(&d.table)?.heap.tuples[target].values.clone();
            if target != tid && !self.eval_filter(d.filter.as_ref(), &old)? {
                continue;
            }
            self.expire_version(&d.table, target, None, true)?;
            // heap_delete checks SSI (CheckForSerializableConflictIn) before it deletes; the
            // foreign-key check of the referencing rows is a trigger that runs after.
            let target_write = WriteTarget { table: &d.table, replaces: Some(target) };
            self.ssi_write(target_write)?;
            self.check_children(&d.table, &old, None)?;
            count += 1;
            if !d.returning.is_empty() {
                returned.push(self.returning(&d.returning, &old)?);
            }
        }
        Ok(self.dml_result(format!("DELETE {count}"), &d.returning, returned))
    }
}
