//! Scanning: the visible versions of one table (a unique-index point lookup when the filter
//! pins a key, else a sequential scan) with the SIREAD locks SSI needs, and the rows of a
//! FROM source.

use super::select::{IndexOrdered, order_values};
use super::{Candidate, ExecutionResult, Executor, SERIES_ROWS_MAX};
use crate::catalog::Table;
use crate::mvcc::{TupleId, examined_writer};
use crate::sql::expr::{self, BinOp, Expr, Row};
use crate::sql::planner::Source;
use crate::value;
use crate::{Value, errinput};
use std::cmp::Ordering;

impl<'a> Executor<'a> {
    /// Tuple ids worth examining: a unique-index lookup when the filter pins a one-column
    /// unique key with `col = constant` (`Some` ids), else every version (`None`: a
    /// sequential scan).
    fn candidate_tids(
        &mut self,
        table: &str,
        filter: Option<&Expr>,
    ) -> ExecutionResult<Option<Vec<TupleId>>> {
        let t = self.db.catalog.must_get(table)?;
        if let Some((index, key)) = point_key(t, filter, self.params) {
            let ty = t.columns[t.uniques[index].columns[0]].ty;
            if let Ok(key) = value::coerce(key, ty) {
                let tids = t.heap.indexes[index].get(&vec![key]).cloned().unwrap_or_default();
                return Ok(Some(tids));
            }
        }
        Ok(None)
    }

    /// Visible versions of one table matching `filter` (evaluated over the table's row), as
    /// tuple ids: the values stay in the heap (callers that need a copy take one). Takes
    /// the SIREAD locks of a key lookup or of a sequential scan (see `ssi.rs`).
    pub(super) fn scan(
        &mut self,
        table: &str,
        filter: Option<&Expr>,
    ) -> ExecutionResult<Vec<TupleId>> {
        let lookup = self.candidate_tids(table, filter)?;
        let is_lookup = lookup.is_some();
        let tids = match lookup {
            Some(tids) => tids,
            None => (0..self.db.catalog.must_get(table)?.heap.tuples.len()).collect(),
        };
        let params = self.params;
        let snap = self.snap;
        let own_txn = self.context.txn;
        let track = self.context.ssi;
        let (catalog, xids, mut effects) = self.side_effects();
        let t = catalog.must_get(table)?;
        let mut out = Vec::new();
        // For a key lookup: the versions fetched (visible) and the writers whose change of
        // an examined version this snapshot cannot see (heap_hot_search_buffer's checks);
        // for a scan, those writers give the order of its conflict-out edges.
        let mut fetched = Vec::new();
        let mut examined = Vec::new();
        // Every version the index or the heap leads to is examined, aborted ones included
        // (PostgreSQL's heap keeps them until vacuum).
        let examined_versions = tids.len();
        for tid in tids {
            let tuple = &t.heap.tuples[tid];
            let visible = snap.visible(xids, tuple);
            if track && !tuple.dead {
                if let Some(w) = examined_writer(xids, tuple, visible).filter(|&w| w != own_txn) {
                    examined.push(w);
                }
                if visible {
                    fetched.push(tid);
                }
            }
            if !visible {
                continue;
            }
            let keep = match filter {
                None => true,
                Some(f) => {
                    expr::is_true(&expr::eval(f, &Row::new(&tuple.values, params), &mut effects)?)
                }
            };
            if keep {
                out.push(tid);
            }
        }
        if !is_lookup {
            self.ssi_read(table, examined_versions, &examined)?;
        } else {
            self.ssi_read_key(table, &fetched, &examined, examined_versions)?;
        }
        Ok(out)
    }

    /// Every visible version of `table` as candidates, without SSI reads: the caller takes
    /// them as the rows are reached ([`Executor::ssi_read_index_range`]).
    pub(super) fn scan_untracked(&mut self, table: &str) -> ExecutionResult<Vec<Candidate>> {
        let t = self.db.catalog.must_get(table)?;
        Ok((0..t.heap.tuples.len())
            .filter(|&tid| self.snap.visible(&self.db.xids, &t.heap.tuples[tid]))
            .map(|tid| Candidate {
                tids: vec![Some(tid)],
                values: t.heap.tuples[tid].values.clone(),
            })
            .collect())
    }

    /// The SSI read of an index-ordered scan moving past the keys after `after` up to and
    /// including `upto` (None: to the end of the index), in the scan's direction: a key
    /// lookup's locks and checks for every version with such a key (NULL keys come last,
    /// as the index orders them).
    pub(super) fn ssi_read_index_range(
        &mut self,
        ordered: &IndexOrdered,
        after: Option<&Value>,
        upto: Option<&Value>,
    ) -> ExecutionResult<()> {
        // The index's order: ASC NULLS LAST or DESC NULLS FIRST.
        let in_order = |a: &Value, b: &Value| order_values(a, b, ordered.desc, ordered.desc);
        let own_txn = self.context.txn;
        let (mut fetched, mut examined, mut examined_versions) = (Vec::new(), Vec::new(), 0);
        {
            let t = self.db.catalog.must_get(&ordered.table)?;
            for (tid, tuple) in t.heap.tuples.iter().enumerate() {
                let key = &tuple.values[ordered.column];
                let past = after.is_none_or(|a| in_order(key, a) == Ordering::Greater);
                let within = upto.is_none_or(|u| in_order(key, u) != Ordering::Greater);
                if !past || !within {
                    continue;
                }
                examined_versions += 1;
                if tuple.dead {
                    continue;
                }
                let visible = self.snap.visible(&self.db.xids, tuple);
                let writer = examined_writer(&self.db.xids, tuple, visible);
                if let Some(w) = writer.filter(|&w| w != own_txn) {
                    examined.push(w);
                }
                if visible {
                    fetched.push(tid);
                }
            }
        }
        self.ssi_read_key(&ordered.table, &fetched, &examined, examined_versions)
    }

    /// [`Executor::scan`] with a copy of each row's values.
    fn scan_values(
        &mut self,
        table: &str,
        filter: Option<&Expr>,
    ) -> ExecutionResult<Vec<(TupleId, Vec<Value>)>> {
        let tids = self.scan(table, filter)?;
        let t = self.db.catalog.must_get(table)?;
        Ok(tids.into_iter().map(|tid| (tid, t.heap.tuples[tid].values.clone())).collect())
    }

    pub(super) fn source_rows(
        &mut self,
        source: &Source,
        filter: Option<&Expr>,
    ) -> ExecutionResult<Vec<(Option<TupleId>, Vec<Value>)>> {
        match source {
            Source::Table { table, .. } => Ok(self
                .scan_values(table, filter)?
                .into_iter()
                .map(|(t, v)| (Some(t), v))
                .collect()),
            Source::Series { start, end, .. } => {
                let (a, b) = (self.eval(start, &[], None)?, self.eval(end, &[], None)?);
                let (Value::Int(a), Value::Int(b)) = (a, b) else {
                    return Ok(Vec::new());
                };
                if b.saturating_sub(a) >= SERIES_ROWS_MAX {
                    return Err(errinput!(
                        "54000",
                        "generate_series would produce more than {SERIES_ROWS_MAX} rows"
                    )
                    .into());
                }
                Ok((a..=b).map(|i| (None, vec![Value::Int(i)])).collect())
            }
        }
    }
}

/// `col = constant` on a one-column unique index among the filter's top-level conjuncts.
fn point_key(t: &Table, filter: Option<&Expr>, params: &[Value]) -> Option<(usize, Value)> {
    let mut stack = vec![filter?];
    while let Some(e) = stack.pop() {
        match e {
            Expr::Binary(BinOp::And, a, b) => stack.extend([&**a, &**b]),
            Expr::Binary(BinOp::Eq, a, b) => {
                let (col, constant) = match (&**a, &**b) {
                    (Expr::Column(c), k) | (k, Expr::Column(c)) => (*c, k),
                    _ => continue,
                };
                let v = match constant {
                    Expr::Literal(v) => v.clone(),
                    Expr::Param(i) => params.get(*i)?.clone(),
                    _ => continue,
                };
                if let Some(ui) = t.uniques.iter().position(|u| u.columns == [col]) {
                    return Some((ui, v));
                }
            }
            _ => {}
        }
    }
    None
}
