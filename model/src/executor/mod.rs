//! The executor: runs one planned statement against the database state.
//!
//! WHAT THIS DOES
//! [`Executor::run`] executes a [`Plan`] for one session with a fixed snapshot. A statement either
//! completes, fails, or halts with a [`Wait`] (a row lock, another transaction's end, an
//! advisory lock, a sleep). On a wait, the engine undoes the attempt's version changes
//! ([`Executor::undo`]) and later runs the statement again from the start with the same snapshot
//! and the same [`Replay`] log (sequence values and side-effecting function results already
//! produced), keeping the row locks it took. Re-running with the original snapshot gives
//! PostgreSQL's READ COMMITTED EvalPlanQual behaviour: candidates come from the statement
//! snapshot (rows that newly match are never picked up) and a locked candidate that was
//! updated by a committed transaction is re-checked on its newest version.
//!
//! ROW LOCKS AND VERSION CHECKS (per candidate row, [`Executor::lock_row`])
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
//!
//! LAYOUT
//! This file holds the shared state and types ([`Database`], [`Executor`], [`Halt`],
//! [`TransactionContext`], [`Replay`]), the entry points ([`Executor::run`],
//! [`Executor::undo`]) and the helpers every concern uses (expression evaluation, SSI
//! reporting, the read-only check). By concern: `effects.rs` (side-effecting functions),
//! `scan.rs` (table scans), `select.rs` (SELECT), `locking.rs` (row locks), `constraints.rs`
//! (constraint checks), `write.rs` (INSERT / UPDATE / DELETE) and `ddl.rs`.

mod constraints;
mod ddl;
mod effects;
mod locking;
mod scan;
mod select;
mod write;

use crate::catalog::Catalog;
use crate::error::Error;
use crate::locks::{Locks, Wait};
use crate::mvcc::{RowId, Snapshot, TupleId, TxnId, Undo, Xid, Xids};
use crate::sql::Isolation;
use crate::sql::expr::{self, Expr, Row};
use crate::sql::planner::Plan;
use crate::ssi::{Ssi, WriteTarget};
use crate::value;
use crate::{QueryResult, SessionId, Value, errinput};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// Limit on re-tries of ON CONFLICT after the conflicting row vanished under its lock.
pub const ON_CONFLICT_RETRIES_MAX: usize = 8;

/// Limit on rows produced by generate_series (a guard against runaway statements).
pub const SERIES_ROWS_MAX: i64 = 10_000_000;

/// The whole database state the executor works on.
#[derive(Clone)]
pub struct Database {
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

type ExecutionResult<T> = std::result::Result<T, Halt>;

/// The session and transaction running a statement.
#[derive(Clone, Debug)]
pub struct TransactionContext {
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
    /// The commit sequence of each foreign-key check's fresh snapshot, in order: PostgreSQL
    /// takes it once, before any wait for a referencing row's locker.
    pub check_snapshots: Vec<crate::mvcc::CommitSeq>,
    /// SSI reads (SIREAD lock plus conflict-out check) earlier attempts completed. PostgreSQL
    /// does not scan again after a wait (a one-page table's tuples are all checked when the
    /// page is read), so a re-run takes these reads without checking them again; reads past
    /// them (a foreign-key check after the row lock) are new and are checked.
    pub ssi_reads: usize,
    /// SSI write checks (CheckForSerializableConflictIn, heap or index) earlier attempts
    /// completed: a statement that waits does not insert, update or delete again in
    /// PostgreSQL, so a re-run does not check them again (checked then with the other
    /// transaction committed, they could find a dangerous structure PostgreSQL never saw).
    pub ssi_writes: usize,
    /// Rows an INSERT appended before it waited (for a foreign-key lock, or for another
    /// row's unique check), by the row's position among the statement's insertions: they
    /// stay in the heap and the indexes while it waits, as PostgreSQL's do (a later
    /// inserter of the same key waits for this statement; a deadlock can close through
    /// it), and a re-run goes on from them instead of inserting them again.
    pub inserted: Vec<(usize, TupleId)>,
    /// The undo log of the kept rows, handed to the re-run (or applied when the wait ends
    /// in an error without one, [`Replay::undo_kept`]).
    pub kept_undo: Vec<(String, Undo)>,
}

/// Counts one replayable action of this attempt (`index`, one past the previous) against
/// those earlier attempts completed (`done`): true, and counted as done, the first time.
fn first_time(index: &mut usize, done: &mut usize) -> bool {
    *index += 1;
    if *index <= *done {
        return false;
    }
    *done = *index;
    true
}

/// Applies an undo log to `db`, newest change first, leaving it empty.
fn undo_all(db: &mut Database, log: &mut Vec<(String, Undo)>) {
    while let Some((table, change)) = log.pop() {
        if let Some(t) = db.catalog.tables.get_mut(&table) {
            t.heap.undo(&change);
        }
    }
}

impl Replay {
    /// Removes the rows kept in place by a waiting INSERT that will not run again.
    pub fn undo_kept(&mut self, db: &mut Database) {
        undo_all(db, &mut self.kept_undo);
    }
}

/// One attempt at one statement.
pub struct Executor<'a> {
    pub db: &'a mut Database,
    pub context: TransactionContext,
    pub snap: Snapshot,
    pub params: &'a [Value],
    pub replay: &'a mut Replay,
    pub now: Duration,
    pub undo: Vec<(String, Undo)>,
    call_index: usize,
    serial_index: usize,
    check_snapshot_index: usize,
    ssi_read_index: usize,
    ssi_write_index: usize,
    insert_index: usize,
}

/// Side effects of function calls, borrowing the parts of [`Executor`] they need.
struct SideEffects<'b> {
    catalog: &'b Catalog,
    xids: &'b Xids,
    ssi: &'b mut Ssi,
    snap: Snapshot,
    params: &'b [Value],
    locks: &'b mut Locks,
    rng: &'b mut ChaCha8Rng,
    replay: &'b mut Replay,
    call_index: &'b mut usize,
    context: &'b TransactionContext,
    now: Duration,
}

/// A row produced by a scan: the tuple ids it came from (one per table source) and values.
#[derive(Clone, Debug)]
struct Candidate {
    tids: Vec<Option<TupleId>>,
    values: Vec<Value>,
}

/// A unique or exclusion conflict found for a proposed row.
#[derive(Clone, Copy, Debug)]
struct Conflict {
    exclusion: bool,
    index: usize,
    tid: TupleId,
}

impl<'a> Executor<'a> {
    pub fn new(
        db: &'a mut Database,
        context: TransactionContext,
        snap: Snapshot,
        params: &'a [Value],
        replay: &'a mut Replay,
        now: Duration,
    ) -> Executor<'a> {
        Executor {
            db,
            context,
            snap,
            params,
            now,
            undo: std::mem::take(&mut replay.kept_undo),
            replay,
            call_index: 0,
            serial_index: 0,
            check_snapshot_index: 0,
            ssi_read_index: 0,
            ssi_write_index: 0,
            insert_index: 0,
        }
    }

    /// Ends an attempt that blocked: an INSERT whose only changes are rows it appended
    /// keeps them in place for its re-run ([`Replay::inserted`]); any other statement's
    /// changes are undone and it runs again from the start.
    pub fn blocked(&mut self) {
        let only_insertions = self.undo.len() == self.replay.inserted.len()
            && self.undo.iter().all(|(_, u)| matches!(u, Undo::Inserted { .. }));
        if only_insertions && !self.undo.is_empty() {
            self.replay.kept_undo = std::mem::take(&mut self.undo);
        } else {
            self.replay.inserted.clear();
            self.undo();
        }
    }

    /// Reverts this attempt's version changes (before a wait or after an error).
    pub fn undo(&mut self) {
        undo_all(self.db, &mut self.undo);
    }

    /// Runs the plan.
    pub fn execute_plan(&mut self, plan: &Plan) -> ExecutionResult<QueryResult> {
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

    fn side_effects(&mut self) -> (&Catalog, &Xids, SideEffects<'_>) {
        let db = &mut *self.db;
        let effects = SideEffects {
            catalog: &db.catalog,
            xids: &db.xids,
            ssi: &mut db.ssi,
            snap: self.snap,
            params: self.params,
            locks: &mut db.locks,
            rng: &mut db.rng,
            replay: &mut *self.replay,
            call_index: &mut self.call_index,
            context: &self.context,
            now: self.now,
        };
        (&db.catalog, &db.xids, effects)
    }

    fn eval(
        &mut self,
        e: &Expr,
        values: &[Value],
        excluded: Option<&[Value]>,
    ) -> ExecutionResult<Value> {
        let params = self.params;
        let (_, _, mut effects) = self.side_effects();
        let row = Row { values, params, excluded, aggregates: &[] };
        expr::eval(e, &row, &mut effects)
    }

    fn eval_filter(&mut self, filter: Option<&Expr>, values: &[Value]) -> ExecutionResult<bool> {
        match filter {
            None => Ok(true),
            Some(f) => Ok(expr::is_true(&self.eval(f, values, None)?)),
        }
    }

    /// Counts one SSI read of this attempt; false when an earlier attempt of the statement
    /// already did it (its lock is held and its conflicts were flagged then).
    fn ssi_read_is_new(&mut self) -> bool {
        first_time(&mut self.ssi_read_index, &mut self.replay.ssi_reads)
    }

    /// A sequential scan's SSI read: relation SIREAD lock and conflict-out check, or fail
    /// when doomed. PostgreSQL's doomed check (CheckForSerializableConflictOutNeeded) runs
    /// per heap tuple examined, so a scan that `examined_versions` of none does not fail.
    /// `scan_order`: the writers of the versions it examined, in heap order.
    fn ssi_read(
        &mut self,
        table: &str,
        examined_versions: usize,
        scan_order: &[TxnId],
    ) -> ExecutionResult<()> {
        if self.context.ssi && self.ssi_read_is_new() {
            if examined_versions > 0 {
                self.db.ssi.fail_if_doomed(self.context.txn)?;
            }
            self.db.ssi.on_read(self.context.txn, table, scan_order)?;
        }
        Ok(())
    }

    /// A unique-index lookup's SSI read (see [`Ssi::on_read_key`]), with the doomed check
    /// when the index led to at least one heap version (`examined_versions`, as
    /// [`Executor::ssi_read`]): a lookup of a key the index lacks examines none.
    fn ssi_read_key(
        &mut self,
        table: &str,
        fetched: &[TupleId],
        examined: &[TxnId],
        examined_versions: usize,
    ) -> ExecutionResult<()> {
        if self.context.ssi && self.ssi_read_is_new() {
            if examined_versions > 0 {
                self.db.ssi.fail_if_doomed(self.context.txn)?;
            }
            let fetched = self.others_versions(table, fetched)?;
            self.db.ssi.on_read_key(self.context.txn, table, &fetched, examined)?;
        }
        Ok(())
    }

    /// The versions among `fetched` that this transaction did not create: PostgreSQL's
    /// PredicateLockTID takes no tuple SIREAD lock on a version whose xmin is the reader's
    /// own (sub)transaction, which holds the write already. Locking them too promoted a
    /// transaction's tuple locks to a page lock early, which a later DELETE of another row
    /// hit (gen-1796662006-0064).
    fn others_versions(&self, table: &str, fetched: &[TupleId]) -> ExecutionResult<Vec<TupleId>> {
        let t = self.db.catalog.must_get(table)?;
        Ok(fetched
            .iter()
            .copied()
            .filter(|&tid| self.db.xids.top(t.heap.tuples[tid].xmin) != self.context.txn)
            .collect())
    }

    /// Counts one SSI write check of this attempt; false when an earlier attempt of the
    /// statement already made it (see [`Replay::ssi_writes`]).
    fn ssi_write_is_new(&mut self) -> bool {
        first_time(&mut self.ssi_write_index, &mut self.replay.ssi_writes)
    }

    /// The SSI read of versions fetched by location ([`Ssi::on_read_versions`]), with the
    /// doomed check (a version is examined).
    fn ssi_read_versions(
        &mut self,
        table: &str,
        fetched: &[TupleId],
        examined: &[TxnId],
    ) -> ExecutionResult<()> {
        if self.context.ssi && self.ssi_read_is_new() {
            self.db.ssi.fail_if_doomed(self.context.txn)?;
            let fetched = self.others_versions(table, fetched)?;
            self.db.ssi.on_read_versions(self.context.txn, table, &fetched, examined)?;
        }
        Ok(())
    }

    /// A heap write's SSI check ([`Ssi::on_write`]).
    fn ssi_write(&mut self, target: WriteTarget<'_>) -> ExecutionResult<()> {
        if self.context.ssi && self.ssi_write_is_new() {
            self.db.ssi.on_write(self.context.txn, self.context.xid, target)?;
        }
        Ok(())
    }

    /// A unique-index insertion's SSI check ([`Ssi::on_index_insert`]).
    fn ssi_index_insert(&mut self, table: &str) -> ExecutionResult<()> {
        if self.context.ssi && self.ssi_write_is_new() {
            self.db.ssi.on_index_insert(self.context.txn, table)?;
        }
        Ok(())
    }

    fn check_writable(&self, verb: &str) -> ExecutionResult<()> {
        if self.context.read_only {
            return Err(
                errinput!("25006", "cannot execute {verb} in a read-only transaction").into()
            );
        }
        Ok(())
    }
}

fn row_text(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| if *v == Value::Null { "null".to_string() } else { value::to_pg_text(v) })
        .collect::<Vec<_>>()
        .join(", ")
}
