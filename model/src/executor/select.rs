//! SELECT: candidate rows from the FROM sources, grouping and aggregates, ORDER BY,
//! OFFSET / LIMIT and projection.

use super::{Candidate, ExecutionResult, Executor, SideEffects};
use crate::error::Error;
use crate::sql::expr::{self, AggKind, Expr, Row};
use crate::sql::planner::{OrderKey, Select, Source};
use crate::value;
use crate::{QueryResult, Value, errinput};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// A SELECT that PostgreSQL runs as an index scan in key order up to its LIMIT
/// ([`Executor::index_order`]).
pub(super) struct IndexOrdered {
    pub table: String,
    /// The key column, in the table's row.
    pub column: usize,
    pub desc: bool,
}

impl<'a> Executor<'a> {
    fn select_candidates(&mut self, s: &Select) -> ExecutionResult<Vec<Candidate>> {
        match s.sources.as_slice() {
            [] => {
                let values = Vec::new();
                let keep = self.eval_filter(s.filter.as_ref(), &values)?;
                Ok(if keep { vec![Candidate { tids: vec![], values }] } else { vec![] })
            }
            [one] => {
                let rows = self.source_rows(one, s.filter.as_ref())?;
                Ok(rows.into_iter().map(|(t, v)| Candidate { tids: vec![t], values: v }).collect())
            }
            [left, right] => {
                let l = self.source_rows(left, None)?;
                let r = self.source_rows(right, None)?;
                let mut out = Vec::new();
                for (lt, lv) in &l {
                    for (rt, rv) in &r {
                        let mut values = lv.clone();
                        values.extend(rv.iter().cloned());
                        if self.eval_filter(s.filter.as_ref(), &values)? {
                            out.push(Candidate { tids: vec![*lt, *rt], values });
                        }
                    }
                }
                Ok(out)
            }
            _ => Err(Error::FeatureNotSupported("more than two tables".into()).into()),
        }
    }

    pub(super) fn select(&mut self, s: &Select) -> ExecutionResult<QueryResult> {
        let rows = self.select_rows(s)?;
        let columns = s.projection.iter().map(|(n, _)| n.clone()).collect();
        Ok(QueryResult { tag: format!("SELECT {}", rows.len()), columns, rows })
    }

    /// The projected rows of a SELECT (also the source of INSERT … SELECT).
    pub(super) fn select_rows(&mut self, s: &Select) -> ExecutionResult<Vec<Vec<Value>>> {
        let index_ordered = self.index_order(s)?;
        if let [Source::Table { table, .. }] = s.sources.as_slice()
            && !s.grouped
            && s.locks.is_empty()
            && index_ordered.is_none()
        {
            return self.select_rows_in_place(s, table);
        }
        let cands = match &index_ordered {
            Some(ordered) => self.scan_untracked(&ordered.table)?,
            None => self.select_candidates(s)?,
        };
        if s.grouped {
            return self.grouped(s, cands);
        }
        let mut keyed = Vec::with_capacity(cands.len());
        for c in cands {
            let (out, keys) = self.project(s, &c.values, &[])?;
            keyed.push((keys, c, out));
        }
        sort_keyed(&mut keyed, s);
        let (offset, limit) = self.offset_limit(s)?;
        let mut rows = Vec::new();
        let mut skipped = 0;
        // An index-ordered scan's SSI reads go up to each row it reaches (`reached`), and
        // to the end of the index when the LIMIT is not met.
        let mut reached: Option<Value> = None;
        for (_, mut cand, mut out) in keyed {
            if limit.is_some_and(|l| rows.len() >= l) {
                break;
            }
            if let Some(ordered) = &index_ordered {
                let key = cand.values[ordered.column].clone();
                self.ssi_read_index_range(ordered, reached.as_ref(), Some(&key))?;
                reached = Some(key);
            }
            if !s.locks.is_empty() {
                match self.lock_select_row(s, &mut cand)? {
                    false => continue,
                    true => out = self.project(s, &cand.values, &[])?.0,
                }
            }
            if skipped < offset {
                skipped += 1;
                continue;
            }
            rows.push(out);
        }
        if let Some(ordered) = &index_ordered
            && limit.is_none_or(|l| rows.len() < l)
        {
            self.ssi_read_index_range(ordered, reached.as_ref(), None)?;
        }
        Ok(rows)
    }

    /// Whether PostgreSQL reads this SELECT through a unique index in key order and stops
    /// at the LIMIT: one table, no WHERE or GROUP BY, `ORDER BY key` (ASC NULLS LAST or DESC
    /// NULLS FIRST, the index's order either way) on a one-column unique index, and a
    /// LIMIT. Such a scan (`Limit → LockRows → Index Scan` in EXPLAIN) fetches only the rows
    /// up to the limit, so its SIREAD locks and conflict-out checks cover those rows and
    /// the index page, not the relation. Other orders, filters and unlimited scans are read
    /// as sequential scans (see `ssi.rs`, NOT MODELLED).
    fn index_order(&self, s: &Select) -> ExecutionResult<Option<IndexOrdered>> {
        let ([Source::Table { table, .. }], [(key, desc, nulls_first)], None, false, Some(_)) =
            (s.sources.as_slice(), s.order_by.as_slice(), &s.filter, s.grouped, &s.limit)
        else {
            return Ok(None);
        };
        if !self.context.ssi || desc != nulls_first {
            return Ok(None);
        }
        let column = match key {
            OrderKey::Expr(Expr::Column(c)) => *c,
            OrderKey::Output(i) => match &s.projection[*i].1 {
                Expr::Column(c) => *c,
                _ => return Ok(None),
            },
            OrderKey::Expr(_) => return Ok(None),
        };
        let t = self.db.catalog.must_get(table)?;
        if !t.uniques.iter().any(|u| u.columns == [column]) {
            return Ok(None);
        }
        Ok(Some(IndexOrdered { table: table.clone(), column, desc: *desc }))
    }

    /// [`Executor::select_rows`] of a one-table SELECT without grouping or row locks: projects
    /// straight from the heap's versions instead of copying every matching row first. Same
    /// evaluation order as the general path (filter over every version, the SIREAD, then the
    /// projection of each match in heap order, sort, OFFSET/LIMIT).
    fn select_rows_in_place(
        &mut self,
        s: &Select,
        table: &str,
    ) -> ExecutionResult<Vec<Vec<Value>>> {
        let tids = self.scan(table, s.filter.as_ref())?;
        let params = self.params;
        let mut keyed = Vec::with_capacity(tids.len());
        {
            let (catalog, _, mut effects) = self.side_effects();
            let t = catalog.must_get(table)?;
            for tid in tids {
                let row = Row::new(&t.heap.tuples[tid].values, params);
                let (out, keys) = project_row(s, &row, &mut effects)?;
                keyed.push((keys, (), out));
            }
        }
        self.sorted_page(keyed, s)
    }

    /// Sorts projected rows by their keys, then applies OFFSET/LIMIT (no row locks).
    fn sorted_page<C>(
        &mut self,
        mut keyed: Vec<(Vec<Value>, C, Vec<Value>)>,
        s: &Select,
    ) -> ExecutionResult<Vec<Vec<Value>>> {
        sort_keyed(&mut keyed, s);
        let (offset, limit) = self.offset_limit(s)?;
        let rows = keyed.into_iter().map(|k| k.2).skip(offset);
        Ok(match limit {
            Some(l) => rows.take(l).collect(),
            None => rows.collect(),
        })
    }

    fn offset_limit(&mut self, s: &Select) -> ExecutionResult<(usize, Option<usize>)> {
        let mut num = |e: &Option<Expr>, what: &str| -> ExecutionResult<Option<usize>> {
            match e {
                None => Ok(None),
                Some(e) => match self.eval(e, &[], None)? {
                    Value::Null => Ok(None),
                    Value::Int(i) if i >= 0 => Ok(Some(i as usize)),
                    Value::Int(_) => Err(errinput!("2201W", "{what} must not be negative").into()),
                    other => Err(errinput!(
                        "22P02",
                        "invalid input syntax for type bigint: \"{}\"",
                        value::to_pg_text(&other)
                    )
                    .into()),
                },
            }
        };
        let offset = num(&s.offset, "OFFSET")?.unwrap_or(0);
        let limit = num(&s.limit, "LIMIT")?;
        Ok((offset, limit))
    }

    /// Output values and sort keys of one row.
    fn project(
        &mut self,
        s: &Select,
        values: &[Value],
        aggs: &[Value],
    ) -> ExecutionResult<(Vec<Value>, Vec<Value>)> {
        let params = self.params;
        let (_, _, mut effects) = self.side_effects();
        let row = Row { values, params, excluded: None, aggregates: aggs };
        project_row(s, &row, &mut effects)
    }

    fn grouped(&mut self, s: &Select, cands: Vec<Candidate>) -> ExecutionResult<Vec<Vec<Value>>> {
        // BTreeMap keyed by group values, for determinism (and PostgreSQL-like sorted output
        // is not promised: ORDER BY is applied below).
        let mut groups: BTreeMap<Vec<Value>, (Vec<Value>, Vec<AggState>)> = BTreeMap::new();
        if cands.is_empty() && s.group_by.is_empty() {
            groups.insert(
                Vec::new(),
                (Vec::new(), s.aggregates.iter().map(|a| AggState::new(a.kind)).collect()),
            );
        }
        for c in cands {
            let mut key = Vec::with_capacity(s.group_by.len());
            for g in &s.group_by {
                key.push(self.eval(g, &c.values, None)?);
            }
            let mut args = Vec::with_capacity(s.aggregates.len());
            for a in &s.aggregates {
                args.push(match &a.arg {
                    Some(e) => Some(self.eval(e, &c.values, None)?),
                    None => None,
                });
            }
            let entry = groups.entry(key).or_insert_with(|| {
                (c.values.clone(), s.aggregates.iter().map(|a| AggState::new(a.kind)).collect())
            });
            for (state, arg) in entry.1.iter_mut().zip(args) {
                state.add(arg)?;
            }
        }
        let mut keyed = Vec::new();
        for (_, (rep, states)) in groups {
            let aggs: Vec<Value> = states.into_iter().map(AggState::finish).collect();
            if let Some(h) = &s.having {
                let params = self.params;
                let (_, _, mut effects) = self.side_effects();
                let row = Row { values: &rep, params, excluded: None, aggregates: &aggs };
                if !expr::is_true(&expr::eval(h, &row, &mut effects)?) {
                    continue;
                }
            }
            let (out, keys) = self.project(s, &rep, &aggs)?;
            keyed.push((keys, Candidate { tids: vec![], values: rep }, out));
        }
        self.sorted_page(keyed, s)
    }
}

/// Output values and sort keys of one row.
fn project_row(
    s: &Select,
    row: &Row<'_>,
    effects: &mut SideEffects<'_>,
) -> ExecutionResult<(Vec<Value>, Vec<Value>)> {
    let mut out = Vec::with_capacity(s.projection.len());
    for (_, e) in &s.projection {
        out.push(expr::eval(e, row, effects)?);
    }
    let mut keys = Vec::with_capacity(s.order_by.len());
    for (k, _, _) in &s.order_by {
        keys.push(match k {
            OrderKey::Output(i) => out[*i].clone(),
            OrderKey::Expr(e) => expr::eval(e, row, effects)?,
        });
    }
    Ok((out, keys))
}

/// Sorts by the keys (stable: equal keys keep scan order).
fn sort_keyed<C>(rows: &mut [(Vec<Value>, C, Vec<Value>)], s: &Select) {
    if s.order_by.is_empty() {
        return;
    }
    rows.sort_by(|a, b| {
        for (i, (_, desc, nulls_first)) in s.order_by.iter().enumerate() {
            let ord = order_values(&a.0[i], &b.0[i], *desc, *nulls_first);
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    });
}

/// One ORDER BY item's comparison of two values: NULLs first or last as asked, others
/// ascending or descending.
pub(super) fn order_values(x: &Value, y: &Value, desc: bool, nulls_first: bool) -> Ordering {
    match (x == &Value::Null, y == &Value::Null) {
        (true, true) => Ordering::Equal,
        (true, false) => {
            if nulls_first {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        (false, true) => {
            if nulls_first {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        (false, false) => {
            let o = value::compare(x, y).unwrap_or(Ordering::Equal);
            if desc { o.reverse() } else { o }
        }
    }
}

/// Running state of one aggregate.
enum AggState {
    Count(i64),
    Sum(Option<i64>),
    Extreme { max: bool, best: Option<Value> },
}

impl AggState {
    fn new(kind: AggKind) -> AggState {
        match kind {
            AggKind::CountStar | AggKind::Count => AggState::Count(0),
            AggKind::Sum => AggState::Sum(None),
            AggKind::Min => AggState::Extreme { max: false, best: None },
            AggKind::Max => AggState::Extreme { max: true, best: None },
        }
    }

    fn add(&mut self, arg: Option<Value>) -> Result<(), Error> {
        match (self, arg) {
            (AggState::Count(n), None) => *n += 1,
            (_, Some(Value::Null)) => {}
            (AggState::Count(n), Some(_)) => *n += 1,
            (AggState::Sum(s), Some(Value::Int(i))) => {
                *s = Some(
                    s.unwrap_or(0)
                        .checked_add(i)
                        .ok_or_else(|| Error::other("22003", "bigint out of range"))?,
                )
            }
            (AggState::Sum(_), Some(v)) => {
                return Err(errinput!(
                    "42883",
                    "function sum({}) does not exist",
                    value::value_type_name(&v)
                ));
            }
            (AggState::Extreme { max, best }, Some(v)) => {
                let replace = match best {
                    None => true,
                    Some(b) => {
                        let o = value::compare(&v, b).unwrap_or(Ordering::Equal);
                        if *max { o == Ordering::Greater } else { o == Ordering::Less }
                    }
                };
                if replace {
                    *best = Some(v);
                }
            }
            (_, None) => {}
        }
        Ok(())
    }

    fn finish(self) -> Value {
        match self {
            AggState::Count(n) => Value::Int(n),
            AggState::Sum(s) => s.map(Value::Int).unwrap_or(Value::Null),
            AggState::Extreme { best, .. } => best.unwrap_or(Value::Null),
        }
    }
}
