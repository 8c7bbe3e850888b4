//! The executor: runs one planned statement against the database state.
//!
//! WHAT THIS DOES
//! [`Exec::run`] executes a [`Plan`] for one session with a fixed snapshot. A statement either
//! completes, fails, or halts with a [`Wait`] (a row lock, another transaction's end, an
//! advisory lock, a sleep). On a wait, the engine undoes the attempt's version changes
//! ([`Exec::undo`]) and later runs the statement again from the start with the same snapshot
//! and the same [`Replay`] log (sequence values and side-effecting function results already
//! produced), keeping the row locks it took. Re-running with the original snapshot gives
//! PostgreSQL's READ COMMITTED EvalPlanQual behaviour: candidates come from the statement
//! snapshot (rows that newly match are never picked up) and a locked candidate that was
//! updated by a committed transaction is re-checked on its newest version.
//!
//! ROW LOCKS AND VERSION CHECKS (per candidate row, [`Exec::lock_row`])
//! 1. Conflicting holder → wait (NOWAIT: 55P03; SKIP LOCKED: skip the row).
//! 2. Lock granted. If the snapshot's version was updated/deleted by a committed transaction:
//!    REPEATABLE READ / SERIALIZABLE → 40001 concurrent update / delete; READ COMMITTED →
//!    continue with the newest version (or skip a deleted row).
//!
//! CONSTRAINTS
//! NOT NULL (23502), CHECK (23514), unique (23505) and exclusion (23P01) — the latter two
//! wait for an in-progress conflicting inserter or deleter, like PostgreSQL's index checks —
//! then FOREIGN KEY (23503, taking FOR KEY SHARE on the parent row).
//!
//! NOT MODELLED
//! Deferred constraints, triggers, ON DELETE CASCADE / SET NULL, partial unique indexes.

use crate::catalog::{Catalog, Table};
use crate::error::Error;
use crate::locks::{AdvisoryHold, Locks, RowLock, Wait};
use crate::mvcc::{
    self, Liveness, RowId, Snapshot, Tuple, TupleId, TxnId, Undo, Xid, XidStatus, Xids,
};
use crate::sql::expr::{self, AggKind, BinOp, Effects, ExistsPlan, Expr, Func, Row};
use crate::sql::planner::{
    self, Delete, Insert, InsertSource, OrderKey, Plan, Select, Source, Update,
};
use crate::sql::{Isolation, LockStrength};
use crate::ssi::{Ssi, WriteTarget};
use crate::value;
use crate::{QueryResult, SessionId, Value, errinput};
use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

/// Limit on re-tries of ON CONFLICT after the conflicting row vanished under its lock.
pub const ON_CONFLICT_RETRIES_MAX: usize = 8;

/// Limit on rows produced by generate_series (a guard against runaway statements).
pub const SERIES_ROWS_MAX: i64 = 10_000_000;

/// The whole database state the executor works on.
#[derive(Clone)]
pub struct Db {
    pub catalog: Catalog,
    pub xids: Xids,
    pub locks: Locks,
    pub ssi: Ssi,
    pub next_row: RowId,
    /// gen_random_uuid and any other seeded choice.
    pub rng: ChaCha8Rng,
}

/// Why a statement stopped before completing.
#[derive(Debug)]
pub enum Halt {
    Error(Error),
    Block(Wait),
}

impl From<Error> for Halt {
    fn from(e: Error) -> Self {
        Halt::Error(e)
    }
}

type Res<T> = std::result::Result<T, Halt>;

/// The session and transaction running a statement.
#[derive(Clone, Debug)]
pub struct Me {
    pub session: SessionId,
    pub txn: TxnId,
    /// The xid new versions and locks are recorded under (a subtransaction's after SAVEPOINT).
    pub xid: Xid,
    pub isolation: Isolation,
    pub read_only: bool,
    /// now(): transaction start, microseconds since the epoch.
    pub now_us: i64,
    /// Whether SSI tracking applies (SERIALIZABLE).
    pub ssi: bool,
}

/// Results of side-effecting calls and sequence values of earlier attempts of the same
/// statement, replayed in order so a re-run does not repeat them.
#[derive(Clone, Debug, Default)]
pub struct Replay {
    pub results: Vec<Value>,
    pub serials: Vec<i64>,
    pub sleep_until: Option<Duration>,
}

/// One attempt at one statement.
pub struct Exec<'a> {
    pub db: &'a mut Db,
    pub me: Me,
    pub snap: Snapshot,
    pub params: &'a [Value],
    pub replay: &'a mut Replay,
    pub now: Duration,
    pub undo: Vec<(String, Undo)>,
    /// The statement blocked before and is running again.
    pub resumed: bool,
    call_index: usize,
    serial_index: usize,
}

/// Side effects of function calls, borrowing the parts of [`Exec`] they need.
struct Fx<'b> {
    catalog: &'b Catalog,
    xids: &'b Xids,
    ssi: &'b mut Ssi,
    snap: Snapshot,
    params: &'b [Value],
    locks: &'b mut Locks,
    rng: &'b mut ChaCha8Rng,
    replay: &'b mut Replay,
    call_index: &'b mut usize,
    me: &'b Me,
    now: Duration,
}

impl Effects<Halt> for Fx<'_> {
    fn now_us(&mut self) -> i64 {
        self.me.now_us
    }

    fn call(&mut self, func: Func, args: &[Value]) -> Res<Value> {
        if let Some(done) = self.replay.results.get(*self.call_index) {
            *self.call_index += 1;
            return Ok(done.clone());
        }
        let result = match func {
            Func::GenRandomUuid => {
                let mut bytes = [0u8; 16];
                self.rng.fill_bytes(&mut bytes);
                bytes[6] = (bytes[6] & 0x0f) | 0x40;
                bytes[8] = (bytes[8] & 0x3f) | 0x80;
                Value::Uuid(u128::from_be_bytes(bytes))
            }
            Func::PgSleep => self.sleep(args)?,
            Func::Advisory(a) => self.advisory(a, args)?,
            other => {
                return Err(
                    Error::FeatureNotSupported(format!("{other:?} as a side effect")).into()
                );
            }
        };
        self.replay.results.push(result.clone());
        *self.call_index += 1;
        Ok(result)
    }

    fn exists(&mut self, plan: &ExistsPlan, outer: &[Value]) -> Res<bool> {
        let (catalog, xids, snap, params) = (self.catalog, self.xids, self.snap, self.params);
        let t = catalog.must_get(&plan.table)?;
        if self.me.ssi {
            self.ssi.on_read(self.me.txn, &plan.table)?;
        }
        let mut row = Vec::with_capacity(plan.inner_width + outer.len());
        for tuple in &t.heap.tuples {
            if !snap.visible(xids, tuple) {
                continue;
            }
            row.clear();
            row.extend_from_slice(&tuple.values);
            row.extend_from_slice(outer);
            let hit = match &plan.filter {
                None => true,
                Some(f) => expr::is_true(&expr::eval(f, &Row::new(&row, params), self)?),
            };
            if hit {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Fx<'_> {
    fn sleep(&mut self, args: &[Value]) -> Res<Value> {
        let seconds_us: i64 = match args.first() {
            Some(Value::Int(i)) => i.saturating_mul(1_000_000),
            Some(Value::Text(t)) => match t.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => (f * 1e6) as i64,
                _ => {
                    return Err(errinput!(
                        "22P02",
                        "invalid input syntax for type double precision: \"{t}\""
                    )
                    .into());
                }
            },
            _ => 0,
        };
        let until = match self.replay.sleep_until {
            Some(t) => t,
            None => {
                let t = self.now + Duration::from_micros(seconds_us.max(0) as u64);
                self.replay.sleep_until = Some(t);
                t
            }
        };
        if self.now < until {
            return Err(Halt::Block(Wait::Sleep(until)));
        }
        self.replay.sleep_until = None;
        Ok(Value::Text(String::new()))
    }

    fn advisory(&mut self, a: expr::AdvisoryFn, args: &[Value]) -> Res<Value> {
        if a.unlock_all {
            self.locks.release_session(self.me.session);
            return Ok(Value::Text(String::new()));
        }
        let key = match args {
            [Value::Int(k)] => *k,
            [Value::Int(hi), Value::Int(lo)] => (hi << 32) | (lo & 0xffff_ffff),
            [Value::Null] | [_, Value::Null] | [Value::Null, _] => return Ok(Value::Null),
            _ => {
                return Err(
                    errinput!("42883", "function pg_advisory_lock(text) does not exist").into()
                );
            }
        };
        if a.unlock {
            return Ok(Value::Bool(self.locks.unlock_advisory(key, self.me.session, a.shared)));
        }
        if !self.locks.advisory_blockers(key, self.me.session, a.shared).is_empty() {
            if a.try_only {
                return Ok(Value::Bool(false));
            }
            return Err(Halt::Block(Wait::Advisory { key, shared: a.shared }));
        }
        let xact = a.xact.then_some((self.me.txn, self.me.xid));
        self.locks.grant_advisory(
            key,
            AdvisoryHold { session: self.me.session, xact, shared: a.shared, count: 1 },
        );
        Ok(if a.try_only { Value::Bool(true) } else { Value::Text(String::new()) })
    }
}

/// A row produced by a scan: the tuple ids it came from (one per table source) and values.
#[derive(Clone, Debug)]
struct Cand {
    tids: Vec<Option<TupleId>>,
    values: Vec<Value>,
}

fn tag(verb: &str, n: usize) -> QueryResult {
    QueryResult { tag: format!("{verb} {n}"), columns: Vec::new(), rows: Vec::new() }
}

/// A unique or exclusion conflict found for a proposed row.
#[derive(Clone, Copy, Debug)]
struct Conflict {
    exclusion: bool,
    index: usize,
    tid: TupleId,
}

impl<'a> Exec<'a> {
    pub fn new(
        db: &'a mut Db,
        me: Me,
        snap: Snapshot,
        params: &'a [Value],
        replay: &'a mut Replay,
        now: Duration,
    ) -> Exec<'a> {
        Exec {
            db,
            me,
            snap,
            params,
            replay,
            now,
            undo: Vec::new(),
            resumed: false,
            call_index: 0,
            serial_index: 0,
        }
    }

    /// Reverts this attempt's version changes (before a wait or after an error).
    pub fn undo(&mut self) {
        while let Some((table, change)) = self.undo.pop() {
            if let Some(t) = self.db.catalog.tables.get_mut(&table) {
                t.heap.undo(&change);
            }
        }
    }

    /// Runs the plan.
    pub fn run(&mut self, plan: &Plan) -> Res<QueryResult> {
        match plan {
            Plan::Select(s) => self.select(s),
            Plan::Insert(i) => self.insert(i),
            Plan::Update(u) => self.update(u),
            Plan::Delete(d) => self.delete(d),
            Plan::CreateTable(t, if_not_exists) => self.create_table(t, *if_not_exists),
            Plan::CreateUniqueIndex { table, index, if_not_exists } => {
                self.create_unique_index(table, index.clone(), *if_not_exists)
            }
            Plan::DropTable { names, if_exists } => self.drop_tables(names, *if_exists),
            Plan::Truncate(names) => self.truncate(names),
        }
    }

    fn fx(&mut self) -> (&Catalog, &Xids, Fx<'_>) {
        let db = &mut *self.db;
        let fx = Fx {
            catalog: &db.catalog,
            xids: &db.xids,
            ssi: &mut db.ssi,
            snap: self.snap,
            params: self.params,
            locks: &mut db.locks,
            rng: &mut db.rng,
            replay: &mut *self.replay,
            call_index: &mut self.call_index,
            me: &self.me,
            now: self.now,
        };
        (&db.catalog, &db.xids, fx)
    }

    fn eval(&mut self, e: &Expr, values: &[Value], excluded: Option<&[Value]>) -> Res<Value> {
        let params = self.params;
        let (_, _, mut fx) = self.fx();
        let row = Row { values, params, excluded, aggregates: &[] };
        expr::eval(e, &row, &mut fx)
    }

    fn eval_filter(&mut self, filter: Option<&Expr>, values: &[Value]) -> Res<bool> {
        match filter {
            None => Ok(true),
            Some(f) => Ok(expr::is_true(&self.eval(f, values, None)?)),
        }
    }

    fn ssi_read(&mut self, table: &str) -> Res<()> {
        if self.me.ssi {
            if !self.resumed {
                self.db.ssi.fail_if_doomed(self.me.txn)?;
            }
            self.db.ssi.on_read(self.me.txn, table)?;
        }
        Ok(())
    }

    fn ssi_write(&mut self, target: WriteTarget<'_>) -> Res<()> {
        if self.me.ssi {
            self.db.ssi.on_write(self.me.txn, target)?;
        }
        Ok(())
    }

    fn check_writable(&self, verb: &str) -> Res<()> {
        if self.me.read_only {
            return Err(
                errinput!("25006", "cannot execute {verb} in a read-only transaction").into()
            );
        }
        Ok(())
    }

    // ---- scanning ----

    /// Tuple ids worth examining: a unique-index lookup when the filter pins a one-column
    /// unique key with `col = constant` (`Some` ids), else every version (`None`: a
    /// sequential scan).
    fn candidate_tids(&mut self, table: &str, filter: Option<&Expr>) -> Res<Option<Vec<TupleId>>> {
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
    fn scan(&mut self, table: &str, filter: Option<&Expr>) -> Res<Vec<TupleId>> {
        let lookup = self.candidate_tids(table, filter)?;
        let is_lookup = lookup.is_some();
        let tids = match lookup {
            Some(tids) => tids,
            None => (0..self.db.catalog.must_get(table)?.heap.tuples.len()).collect(),
        };
        let params = self.params;
        let snap = self.snap;
        let me = self.me.txn;
        let track = self.me.ssi && is_lookup;
        let (catalog, xids, mut fx) = self.fx();
        let t = catalog.must_get(table)?;
        let mut out = Vec::new();
        // For a key lookup: the versions fetched (visible) and the writers whose change of
        // an examined version this snapshot cannot see (heap_hot_search_buffer's checks).
        let mut fetched = Vec::new();
        let mut examined = Vec::new();
        for tid in tids {
            let tuple = &t.heap.tuples[tid];
            let visible = snap.visible(xids, tuple);
            if track && !tuple.dead {
                let writer = if visible { tuple.xmax } else { Some(tuple.xmin) };
                if let Some(w) = writer.map(|x| xids.top(x)).filter(|&w| w != me) {
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
                    expr::is_true(&expr::eval(f, &Row::new(&tuple.values, params), &mut fx)?)
                }
            };
            if keep {
                out.push(tid);
            }
        }
        if !is_lookup {
            self.ssi_read(table)?;
        } else if self.me.ssi {
            if !self.resumed {
                self.db.ssi.fail_if_doomed(self.me.txn)?;
            }
            self.db.ssi.on_read_key(self.me.txn, table, &fetched, &examined)?;
        }
        Ok(out)
    }

    /// [`Exec::scan`] with a copy of each row's values.
    fn scan_values(
        &mut self,
        table: &str,
        filter: Option<&Expr>,
    ) -> Res<Vec<(TupleId, Vec<Value>)>> {
        let tids = self.scan(table, filter)?;
        let t = self.db.catalog.must_get(table)?;
        Ok(tids.into_iter().map(|tid| (tid, t.heap.tuples[tid].values.clone())).collect())
    }

    fn source_rows(
        &mut self,
        source: &Source,
        filter: Option<&Expr>,
    ) -> Res<Vec<(Option<TupleId>, Vec<Value>)>> {
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

    fn select_candidates(&mut self, s: &Select) -> Res<Vec<Cand>> {
        match s.sources.as_slice() {
            [] => {
                let values = Vec::new();
                let keep = self.eval_filter(s.filter.as_ref(), &values)?;
                Ok(if keep { vec![Cand { tids: vec![], values }] } else { vec![] })
            }
            [one] => {
                let rows = self.source_rows(one, s.filter.as_ref())?;
                Ok(rows.into_iter().map(|(t, v)| Cand { tids: vec![t], values: v }).collect())
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
                            out.push(Cand { tids: vec![*lt, *rt], values });
                        }
                    }
                }
                Ok(out)
            }
            _ => Err(Error::FeatureNotSupported("more than two tables".into()).into()),
        }
    }

    // ---- SELECT ----

    fn select(&mut self, s: &Select) -> Res<QueryResult> {
        let rows = self.select_rows(s)?;
        let columns = s.projection.iter().map(|(n, _)| n.clone()).collect();
        Ok(QueryResult { tag: format!("SELECT {}", rows.len()), columns, rows })
    }

    /// The projected rows of a SELECT (also the source of INSERT … SELECT).
    fn select_rows(&mut self, s: &Select) -> Res<Vec<Vec<Value>>> {
        if let [Source::Table { table, .. }] = s.sources.as_slice()
            && !s.grouped
            && s.locks.is_empty()
        {
            return self.select_rows_in_place(s, table);
        }
        let cands = self.select_candidates(s)?;
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
        for (_, mut cand, mut out) in keyed {
            if limit.is_some_and(|l| rows.len() >= l) {
                break;
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
        Ok(rows)
    }

    /// [`Exec::select_rows`] of a one-table SELECT without grouping or row locks: projects
    /// straight from the heap's versions instead of copying every matching row first. Same
    /// evaluation order as the general path (filter over every version, the SIREAD, then the
    /// projection of each match in heap order, sort, OFFSET/LIMIT).
    fn select_rows_in_place(&mut self, s: &Select, table: &str) -> Res<Vec<Vec<Value>>> {
        let tids = self.scan(table, s.filter.as_ref())?;
        let params = self.params;
        let mut keyed = Vec::with_capacity(tids.len());
        {
            let (catalog, _, mut fx) = self.fx();
            let t = catalog.must_get(table)?;
            for tid in tids {
                let row = Row::new(&t.heap.tuples[tid].values, params);
                let (out, keys) = project_row(s, &row, &mut fx)?;
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
    ) -> Res<Vec<Vec<Value>>> {
        sort_keyed(&mut keyed, s);
        let (offset, limit) = self.offset_limit(s)?;
        let rows = keyed.into_iter().map(|k| k.2).skip(offset);
        Ok(match limit {
            Some(l) => rows.take(l).collect(),
            None => rows.collect(),
        })
    }

    fn offset_limit(&mut self, s: &Select) -> Res<(usize, Option<usize>)> {
        let mut num = |e: &Option<Expr>, what: &str| -> Res<Option<usize>> {
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
    ) -> Res<(Vec<Value>, Vec<Value>)> {
        let params = self.params;
        let (_, _, mut fx) = self.fx();
        let row = Row { values, params, excluded: None, aggregates: aggs };
        project_row(s, &row, &mut fx)
    }

    /// Applies the FOR … clauses to one output row; false when the row is skipped.
    fn lock_select_row(&mut self, s: &Select, cand: &mut Cand) -> Res<bool> {
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

    fn grouped(&mut self, s: &Select, cands: Vec<Cand>) -> Res<Vec<Vec<Value>>> {
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
                let (_, _, mut fx) = self.fx();
                let row = Row { values: &rep, params, excluded: None, aggregates: &aggs };
                if !expr::is_true(&expr::eval(h, &row, &mut fx)?) {
                    continue;
                }
            }
            let (out, keys) = self.project(s, &rep, &aggs)?;
            keyed.push((keys, Cand { tids: vec![], values: rep }, out));
        }
        self.sorted_page(keyed, s)
    }

    // ---- row locks ----

    /// Locks a candidate row (see the module doc). Returns the version to operate on, or
    /// None when the row is skipped (SKIP LOCKED, or deleted under READ COMMITTED).
    fn lock_row(
        &mut self,
        table: &str,
        tid: TupleId,
        mode: LockStrength,
        nowait: bool,
        skip_locked: bool,
    ) -> Res<Option<TupleId>> {
        let t = self.db.catalog.must_get(table)?;
        let row = t.heap.tuples[tid].row_id;
        if !self.db.locks.row_blockers(table, row, self.me.txn, mode).is_empty() {
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
        let lock = RowLock { txn: self.me.txn, xid: self.me.xid, session: self.me.session, mode };
        self.db.locks.grant_row(table, row, lock);
        self.follow_committed_update(table, tid, mode)
    }

    fn follow_committed_update(
        &self,
        table: &str,
        tid: TupleId,
        mode: LockStrength,
    ) -> Res<Option<TupleId>> {
        let t = self.db.catalog.must_get(table)?;
        let xids = &self.db.xids;
        let tuple = &t.heap.tuples[tid];
        let committed_by_other = match tuple.xmax.map(|x| (x, xids.status(x))) {
            Some((x, XidStatus::Committed(_))) => xids.top(x) != self.me.txn,
            _ => false,
        };
        if !committed_by_other {
            return Ok(Some(tid));
        }
        if self.me.isolation >= Isolation::RepeatableRead {
            let updated = tuple.next.is_some_and(|n| !t.heap.tuples[n].dead);
            // heap_lock_tuple: a KEY SHARE request on a version whose committed update kept
            // every unique-key column (no HEAP_KEYS_UPDATED) locks that version, no error.
            let key_kept = tuple.next.filter(|_| updated).is_some_and(|n| {
                let newer = &t.heap.tuples[n].values;
                (0..newer.len())
                    .filter(|&c| t.is_key_column(c))
                    .all(|c| newer[c] == tuple.values[c])
            });
            if mode == LockStrength::KeyShare && key_kept {
                return Ok(Some(tid));
            }
            return Err(if updated {
                Error::concurrent_update()
            } else {
                Error::concurrent_delete()
            }
            .into());
        }
        let newest = t.heap.newest(xids, tid);
        let deleted = t.heap.tuples[newest]
            .xmax
            .is_some_and(|x| matches!(xids.status(x), XidStatus::Committed(_)));
        Ok(if deleted { None } else { Some(newest) })
    }

    // ---- writes ----

    fn index_keys(t: &Table, values: &[Value]) -> Vec<Option<Vec<Value>>> {
        t.uniques
            .iter()
            .map(|u| {
                let key: Vec<Value> = u.columns.iter().map(|&c| values[c].clone()).collect();
                if key.contains(&Value::Null) { None } else { Some(key) }
            })
            .collect()
    }

    fn append_version(&mut self, table: &str, row_id: RowId, values: Vec<Value>) -> Res<TupleId> {
        let (xid, cmd) = (self.me.xid, self.snap.cmd);
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
        };
        let tid = t.heap.append(tuple, keys);
        self.undo.push((table.to_string(), Undo::Inserted { tuple: tid }));
        Ok(tid)
    }

    fn expire_version(&mut self, table: &str, tid: TupleId, next: Option<TupleId>) -> Res<()> {
        let (xid, cmd) = (self.me.xid, self.snap.cmd);
        let t = self.db.catalog.must_get_mut(table)?;
        let tuple = &mut t.heap.tuples[tid];
        let change = Undo::Expired {
            tuple: tid,
            old_xmax: tuple.xmax,
            old_cmax: tuple.cmax,
            old_next: tuple.next,
        };
        tuple.xmax = Some(xid);
        tuple.cmax = cmd;
        tuple.next = next;
        self.undo.push((table.to_string(), change));
        Ok(())
    }

    /// The SSI write check and the unique / exclusion checks, in PostgreSQL's order: the
    /// heap insert checks SSI first (a failure there comes before any wait); after a wait,
    /// a unique index re-checks SSI (so a doomed writer gets 40001 instead of 23505) while an
    /// exclusion constraint reports 23P01 without another SSI check.
    fn write_checks(
        &mut self,
        table: &str,
        values: &[Value],
        replaces: Option<TupleId>,
        index_insert: bool,
    ) -> Res<()> {
        let ssi = self.ssi_write(WriteTarget { table, replaces, index_insert });
        if ssi.is_err() && !self.resumed {
            return ssi;
        }
        match self.find_conflict(table, values, None)? {
            Some(c) if c.exclusion => Err(self.conflict_error(table, values, c).into()),
            Some(c) => {
                ssi?;
                Err(self.conflict_error(table, values, c).into())
            }
            None => ssi,
        }
    }

    /// NOT NULL and CHECK constraints of a proposed row.
    fn check_row(&mut self, table: &str, values: &[Value]) -> Res<()> {
        // The definition is read in place (the checks' evaluation only needs the effects).
        let params = self.params;
        let (catalog, _, mut fx) = self.fx();
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
            let v = expr::eval(&check.expr, &Row::new(values, params), &mut fx)?;
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
    fn find_conflict(
        &mut self,
        table: &str,
        values: &[Value],
        only: Option<(bool, usize)>,
    ) -> Res<Option<Conflict>> {
        let t = self.db.catalog.must_get(table)?;
        let xids = &self.db.xids;
        let me = self.me.txn;
        for (ui, u) in t.uniques.iter().enumerate() {
            if only.is_some_and(|o| o != (false, ui)) {
                continue;
            }
            let key: Vec<Value> = u.columns.iter().map(|&c| values[c].clone()).collect();
            if key.contains(&Value::Null) {
                continue;
            }
            for &tid in t.heap.indexes[ui].get(&key).map(Vec::as_slice).unwrap_or(&[]) {
                match mvcc::liveness(xids, &t.heap.tuples[tid], me) {
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
                match mvcc::liveness(xids, tuple, me) {
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
        if self.me.ssi
            && self.db.ssi.is_doomed(self.me.txn)
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
    fn check_parents(&mut self, table: &str, values: &[Value], old: Option<&[Value]>) -> Res<()> {
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
            let snapshot_rules = self.me.isolation >= Isolation::RepeatableRead;
            let found = if snapshot_rules {
                self.visible_by_key(&fk.parent, &fk.parent_columns, &key, self.snap)?
            } else {
                self.latest_visible_by_key(&fk.parent, &fk.parent_columns, &key)?
            };
            let Some(tid) = found else {
                return Err(self.fk_missing_detail(missing(), table, &fk, &key));
            };
            match self.lock_row(&fk.parent, tid, LockStrength::KeyShare, false, false) {
                Err(Halt::Error(Error::Serialization { .. })) if snapshot_rules => {
                    return Err(Error::concurrent_update().into());
                }
                other => {
                    other?;
                }
            }
            // The RI query is a primary-key lookup: tuple + index-page SIREAD locks.
            if self.me.ssi {
                let examined = self.key_writers(&fk.parent, &fk.parent_columns, &key);
                self.db.ssi.on_read_key(self.me.txn, &fk.parent, &[tid], &examined)?;
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
    ) -> Res<Option<TupleId>> {
        let fresh =
            Snapshot { seq: self.db.xids.last_commit, txn: self.me.txn, cmd: self.snap.cmd + 1 };
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
                let writer = if visible { tuple.xmax } else { Some(tuple.xmin) };
                writer.map(|x| xids.top(x)).filter(|&w| w != self.me.txn)
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
    ) -> Res<Option<TupleId>> {
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

    /// NO ACTION foreign keys pointing at a deleted (or re-keyed) parent row.
    fn check_children(&mut self, table: &str, old: &[Value], new: Option<&[Value]>) -> Res<()> {
        let fresh =
            Snapshot { seq: self.db.xids.last_commit, txn: self.me.txn, cmd: self.snap.cmd + 1 };
        for (child, fk) in self.db.catalog.referencing(table) {
            let key: Vec<Value> = fk.parent_columns.iter().map(|&c| old[c].clone()).collect();
            if new.is_some_and(|n| fk.parent_columns.iter().all(|&c| n[c] == old[c])) {
                continue;
            }
            let ct = self.db.catalog.must_get(&child)?;
            let referenced = ct.heap.tuples.iter().any(|tuple| {
                fresh.visible(&self.db.xids, tuple)
                    && fk.columns.iter().zip(&key).all(|(&c, k)| tuple.values[c] == *k)
            });
            // The RI query (`SELECT … FROM child WHERE fk = $1`, a sequential scan: the model
            // has no index on foreign-key columns) takes a relation SIREAD lock.
            if self.me.ssi {
                self.db.ssi.on_read(self.me.txn, &child)?;
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

    // ---- INSERT ----

    fn insert(&mut self, ins: &Insert) -> Res<QueryResult> {
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

    fn returning(&mut self, items: &[(String, Expr)], values: &[Value]) -> Res<Vec<Value>> {
        let mut out = Vec::with_capacity(items.len());
        for (_, e) in items {
            out.push(self.eval(e, values, None)?);
        }
        Ok(out)
    }

    /// The full row for an INSERT: provided values, defaults, serials, generated columns.
    /// The table's definition is read in place, never copied (serials are its only part a
    /// row changes, through [`Exec::default_value`]).
    fn build_row(&mut self, ins: &Insert, provided: Vec<Option<Value>>) -> Res<Vec<Value>> {
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
        let (catalog, _, mut fx) = self.fx();
        let t = catalog.must_get(&ins.table)?;
        for (ci, c) in t.columns.iter().enumerate() {
            if let Some(g) = &c.generated {
                let v = expr::eval(g, &Row::new(&row, params), &mut fx)?;
                row[ci] = planner::assign(v, c)?;
            }
        }
        Ok(row)
    }

    fn default_value(&mut self, table: &str, ci: usize) -> Res<Value> {
        if self.db.catalog.must_get(table)?.columns[ci].serial_next.is_some() {
            return Ok(Value::Int(self.next_serial(table, ci)?));
        }
        let params = self.params;
        let (catalog, _, mut fx) = self.fx();
        let c = &catalog.must_get(table)?.columns[ci];
        match &c.default {
            Some(e) => {
                let v = expr::eval(e, &Row::new(&[], params), &mut fx)?;
                Ok(planner::assign(v, c)?)
            }
            None => Ok(Value::Null),
        }
    }

    fn next_serial(&mut self, table: &str, ci: usize) -> Res<i64> {
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
    fn insert_row(&mut self, ins: &Insert, values: Vec<Value>) -> Res<Option<Vec<Value>>> {
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
        self.write_checks(&ins.table, &values, None, indexed)?;
        self.check_parents(&ins.table, &values, None)?;
        let row_id = self.db.next_row;
        self.db.next_row += 1;
        self.append_version(&ins.table, row_id, values.clone())?;
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
    ) -> Res<Option<Option<Vec<Value>>>> {
        let oc = ins.on_conflict.as_ref().expect("called with ON CONFLICT");
        let table = ins.table.as_str();
        let visible = {
            let t = self.db.catalog.must_get(table)?;
            self.snap.visible(&self.db.xids, &t.heap.tuples[c.tid])
        };
        let own_this_command = {
            let t = self.db.catalog.must_get(table)?;
            let tuple = &t.heap.tuples[c.tid];
            self.db.xids.top(tuple.xmin) == self.me.txn && tuple.cmin == self.snap.cmd
        };
        let Some((sets, filter)) = &oc.update else {
            if self.me.isolation >= Isolation::RepeatableRead && !visible && !own_this_command {
                return Err(Error::concurrent_update().into());
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
        let Some(tid) = self.lock_row(table, c.tid, LockStrength::Update, false, false)? else {
            return Ok(None);
        };
        if self.me.isolation >= Isolation::RepeatableRead && !visible {
            return Err(Error::concurrent_update().into());
        }
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

    // ---- UPDATE / DELETE ----

    fn update(&mut self, u: &Update) -> Res<QueryResult> {
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
    ) -> Res<Vec<Value>> {
        {
            let params = self.params;
            let (catalog, _, mut fx) = self.fx();
            let t = catalog.must_get(table)?;
            for (ci, c) in t.columns.iter().enumerate() {
                if let Some(g) = &c.generated {
                    let v = expr::eval(g, &Row::new(&new, params), &mut fx)?;
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
        self.expire_version(table, tid, None)?;
        self.write_checks(table, &new, Some(tid), index_insert)?;
        // RI_FKey_fk_upd_check_required: a row version this transaction wrote is checked
        // even when its key columns did not change.
        let own_version = {
            let t = self.db.catalog.must_get(table)?;
            self.db.xids.top(t.heap.tuples[tid].xmin) == self.me.txn
        };
        self.check_parents(table, &new, if own_version { None } else { Some(old) })?;
        let new_tid = self.append_version(table, row_id, new.clone())?;
        self.set_next(table, tid, new_tid)?;
        self.check_children(table, old, Some(&new))?;
        Ok(new)
    }

    fn set_next(&mut self, table: &str, tid: TupleId, next: TupleId) -> Res<()> {
        let t = self.db.catalog.must_get_mut(table)?;
        t.heap.tuples[tid].next = Some(next);
        Ok(())
    }

    fn delete(&mut self, d: &Delete) -> Res<QueryResult> {
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
            self.expire_version(&d.table, target, None)?;
            self.check_children(&d.table, &old, None)?;
            let target_write =
                WriteTarget { table: &d.table, replaces: Some(target), index_insert: false };
            self.ssi_write(target_write)?;
            count += 1;
            if !d.returning.is_empty() {
                returned.push(self.returning(&d.returning, &old)?);
            }
        }
        Ok(self.dml_result(format!("DELETE {count}"), &d.returning, returned))
    }

    // ---- DDL ----

    fn create_table(&mut self, t: &Table, if_not_exists: bool) -> Res<QueryResult> {
        if self.db.catalog.tables.contains_key(&t.name) {
            if if_not_exists {
                return Ok(tag("CREATE TABLE", 0).retag("CREATE TABLE"));
            }
            return Err(errinput!("42P07", "relation \"{}\" already exists", t.name).into());
        }
        self.db.catalog.tables.insert(t.name.clone(), t.clone());
        self.db.catalog.schema_changed();
        Ok(tag("CREATE TABLE", 0).retag("CREATE TABLE"))
    }

    fn create_unique_index(
        &mut self,
        table: &str,
        index: crate::catalog::UniqueIndex,
        if_not_exists: bool,
    ) -> Res<QueryResult> {
        let xids = &self.db.xids;
        let t = self.db.catalog.must_get_mut(table)?;
        if t.uniques.iter().any(|u| u.name == index.name) {
            if if_not_exists {
                return Ok(tag("CREATE INDEX", 0).retag("CREATE INDEX"));
            }
            return Err(errinput!("42P07", "relation \"{}\" already exists", index.name).into());
        }
        let mut map: BTreeMap<Vec<Value>, Vec<TupleId>> = BTreeMap::new();
        for (tid, tuple) in t.heap.tuples.iter().enumerate() {
            let key: Vec<Value> = index.columns.iter().map(|&c| tuple.values[c].clone()).collect();
            if key.contains(&Value::Null) || tuple.dead {
                continue;
            }
            let live = matches!(mvcc::liveness(xids, tuple, 0), Liveness::Live);
            let entry = map.entry(key.clone()).or_default();
            if live
                && entry
                    .iter()
                    .any(|&o| matches!(mvcc::liveness(xids, &t.heap.tuples[o], 0), Liveness::Live))
            {
                return Err(Error::Constraint {
                    code: "23505",
                    message: format!("could not create unique index \"{}\"", index.name),
                    detail: Some(format!(
                        "Key ({})=({}) is duplicated.",
                        t.column_list(&index.columns),
                        row_text(&key)
                    )),
                    constraint: Some(index.name.clone()),
                }
                .into());
            }
            entry.push(tid);
        }
        t.uniques.push(index);
        t.heap.indexes.push(map);
        self.db.catalog.schema_changed();
        Ok(tag("CREATE INDEX", 0).retag("CREATE INDEX"))
    }

    fn drop_tables(&mut self, names: &[String], if_exists: bool) -> Res<QueryResult> {
        for n in names {
            if !self.db.catalog.tables.contains_key(n) && !if_exists {
                return Err(crate::catalog::undefined_table(n).into());
            }
        }
        for n in names {
            self.db.catalog.tables.remove(n);
        }
        self.db.catalog.schema_changed();
        Ok(tag("DROP TABLE", 0).retag("DROP TABLE"))
    }

    fn truncate(&mut self, names: &[String]) -> Res<QueryResult> {
        for n in names {
            self.db.catalog.must_get(n)?;
        }
        for n in names {
            let t = self.db.catalog.tables.get_mut(n).expect("checked above");
            t.heap.tuples.iter_mut().for_each(|tuple| tuple.dead = true);
            t.heap.indexes.iter_mut().for_each(|i| i.clear());
        }
        Ok(tag("TRUNCATE TABLE", 0).retag("TRUNCATE TABLE"))
    }
}

trait Retag {
    fn retag(self, t: &str) -> QueryResult;
}

impl Retag for QueryResult {
    fn retag(mut self, t: &str) -> QueryResult {
        self.tag = t.to_string();
        self
    }
}

fn row_text(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| if *v == Value::Null { "null".to_string() } else { value::to_pg_text(v) })
        .collect::<Vec<_>>()
        .join(", ")
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

/// Output values and sort keys of one row.
fn project_row(s: &Select, row: &Row<'_>, fx: &mut Fx<'_>) -> Res<(Vec<Value>, Vec<Value>)> {
    let mut out = Vec::with_capacity(s.projection.len());
    for (_, e) in &s.projection {
        out.push(expr::eval(e, row, fx)?);
    }
    let mut keys = Vec::with_capacity(s.order_by.len());
    for (k, _, _) in &s.order_by {
        keys.push(match k {
            OrderKey::Output(i) => out[*i].clone(),
            OrderKey::Expr(e) => expr::eval(e, row, fx)?,
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
            let (x, y) = (&a.0[i], &b.0[i]);
            let ord = match (x == &Value::Null, y == &Value::Null) {
                (true, true) => Ordering::Equal,
                (true, false) => {
                    if *nulls_first {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (false, true) => {
                    if *nulls_first {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                (false, false) => {
                    let o = value::compare(x, y).unwrap_or(Ordering::Equal);
                    if *desc { o.reverse() } else { o }
                }
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    });
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
