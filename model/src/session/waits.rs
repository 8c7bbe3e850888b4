//! Blocked statements: re-running them when a wait may be over (FIFO among conflicting
//! waiters), the waits-for graph and deadlock checks, and the timers virtual time fires
//! (deadlock_timeout, lock_timeout, statement_timeout, pg_sleep).

use super::{Blocked, SleptOn, TIMER_FIRINGS_MAX, WAKE_ROUNDS_MAX};
use crate::deadlock;
use crate::error::Error;
use crate::locks::{Wait, row_conflicts};
use crate::mvcc::{RowId, TxnId, XidStatus};
use crate::sql::LockStrength;
use crate::{Completion, Engine, SessionId};
use std::collections::BTreeMap;
use std::time::Duration;

impl Engine {
    fn blocked_order(&self) -> Vec<(Duration, u64, SessionId)> {
        let mut order: Vec<(Duration, u64, SessionId)> = self
            .sessions
            .iter()
            .filter_map(|(id, s)| {
                s.pending.as_ref()?.blocked.as_ref().map(|b| (b.wait_start, b.wait_seq, *id))
            })
            .collect();
        order.sort();
        order
    }

    /// Whom a row wait that began at `order` (wait start, wait seq) sleeps on, first first;
    /// empty for another wait, or when nothing is in its way.
    ///
    /// THE TUPLE LOCK: heap_lock_tuple, heap_update and heap_delete take the row's
    /// heavyweight tuple lock (its mode conflicting as the row lock modes do) before they
    /// sleep on the row's holders, and keep it while they sleep. So a waiter behind an earlier
    /// waiter of a conflicting mode waits for THAT waiter (which holds the tuple lock, or
    /// queues for it first), not for the row's holders; only when none is ahead does it sleep
    /// on the holders, the first conflicting one (MultiXactIdWait takes members in order). A
    /// transaction that already holds a lock on the row skips the tuple lock
    /// (heap_lock_tuple's skip_tuple_lock, spec tuplelock-upgrade-no-deadlock): it sleeps on
    /// the holders, and a later waiter does not wait for it (regressions/gen-1797500000-2405).
    pub(super) fn row_wait_targets(
        &self,
        session: SessionId,
        wait: &Wait,
        order: (Duration, u64),
    ) -> Vec<(TxnId, SessionId)> {
        self.row_sleep(session, wait, order).1
    }

    /// What a row wait that began at `order` sleeps on first ([`SleptOn`]), if anything.
    pub(super) fn row_slept_on(
        &self,
        session: SessionId,
        wait: &Wait,
        order: (Duration, u64),
    ) -> Option<SleptOn> {
        let (tuple_lock, targets) = self.row_sleep(session, wait, order);
        let &(txn, _) = targets.first()?;
        Some(SleptOn::on(tuple_lock, txn))
    }

    /// [`Engine::row_wait_targets`], and whether they are waiters ahead (the tuple lock)
    /// rather than the row's holder.
    fn row_sleep(
        &self,
        session: SessionId,
        wait: &Wait,
        order: (Duration, u64),
    ) -> (bool, Vec<(TxnId, SessionId)>) {
        let Wait::Row { table, row, mode } = wait else { return (false, Vec::new()) };
        let txn = self.txn_of(session).unwrap_or(0);
        let skips_tuple_lock =
            |txn| self.db.locks.holds_row(table, *row, txn, LockStrength::KeyShare);
        if !skips_tuple_lock(txn) {
            let mut ahead: Vec<((Duration, u64), TxnId, SessionId)> = (self.waiters_before(order))
                .filter(|(_, o)| conflicts_on_row(&o.wait, table, *row, *mode))
                .map(|(id, o)| ((o.wait_start, o.wait_seq), self.txn_of(id).unwrap_or(0), id))
                .filter(|&(_, other, _)| !skips_tuple_lock(other))
                .collect();
            if !ahead.is_empty() {
                ahead.sort();
                return (true, ahead.into_iter().map(|(_, txn, id)| (txn, id)).collect());
            }
        }
        let first_holder = self.db.locks.row_blockers(table, *row, txn, *mode).first().copied();
        (false, first_holder.map(|l| (l.txn, l.session)).into_iter().collect())
    }

    /// [`Engine::row_wait_targets`] of a blocked statement.
    fn blocked_row_targets(&self, session: SessionId, b: &Blocked) -> Vec<(TxnId, SessionId)> {
        self.row_wait_targets(session, &b.wait, (b.wait_start, b.wait_seq))
    }

    /// Row waiters whose holder ended while another conflicting holder remains, or that got
    /// the tuple lock and now sleep on the row's holders, begin a new sleep: a new deadlock
    /// check, deadlock_timeout from now (see [`Blocked::sleep_start`]).
    fn rearm_changed_row_waits(&mut self) {
        for (_, _, s) in self.blocked_order() {
            self.rearm_row_wait(s);
        }
    }

    /// [`Engine::rearm_changed_row_waits`] of one blocked statement.
    fn rearm_row_wait(&mut self, s: SessionId) {
        let now = self.now;
        let Some(b) = self.blocked_of(s) else { return };
        let Some(previous) = b.waited_on else { return };
        let (tuple_lock, current) = self.row_sleep(s, &b.wait, (b.wait_start, b.wait_seq));
        let Some(&(first, _)) = current.first() else { return };
        let unchanged = match previous {
            SleptOn::TupleLock(txn) => tuple_lock && current.iter().any(|t| t.0 == txn),
            SleptOn::Holder(txn) => !tuple_lock && first == txn,
        };
        if unchanged {
            return;
        }
        if let Some(b) = self
            .sessions
            .get_mut(&s)
            .and_then(|x| x.pending.as_mut())
            .and_then(|p| p.blocked.as_mut())
        {
            b.waited_on = Some(SleptOn::on(tuple_lock, first));
            b.sleep_start = now;
            b.deadlock_checked = false;
        }
    }

    /// Re-runs blocked statements whose wait may be over, first waiter first, until none can
    /// make progress.
    pub(crate) fn wake(&mut self) {
        if self.waking {
            return;
        }
        self.rearm_changed_row_waits();
        self.waking = true;
        for _ in 0..WAKE_ROUNDS_MAX {
            let mut progressed = false;
            for (_, _, s) in self.blocked_order() {
                if !self.wait_over(s) {
                    continue;
                }
                let before = self.sessions[&s]
                    .pending
                    .as_ref()
                    .and_then(|p| p.blocked.as_ref())
                    .map(|b| b.wait.clone());
                if let Some(response) = self.drive(s) {
                    self.completions.push(Completion { session: s, response });
                    progressed = true;
                    break;
                }
                let after = self.sessions[&s]
                    .pending
                    .as_ref()
                    .and_then(|p| p.blocked.as_ref())
                    .map(|b| b.wait.clone());
                if before != after {
                    progressed = true;
                    break;
                }
                // Blocked again on the same row: it sleeps on what is in its way now, and is
                // not re-run for the sleep it just ended.
                self.rearm_row_wait(s);
            }
            if !progressed {
                break;
            }
        }
        self.rearm_changed_row_waits();
        self.waking = false;
    }

    pub(super) fn blocked_of(&self, s: SessionId) -> Option<&Blocked> {
        self.sessions.get(&s)?.pending.as_ref()?.blocked.as_ref()
    }

    fn txn_of(&self, s: SessionId) -> Option<TxnId> {
        self.sessions.get(&s)?.txn.as_ref().map(|t| t.id)
    }

    /// Whether a blocked session's wait may be over (FIFO among conflicting waiters).
    fn wait_over(&self, s: SessionId) -> bool {
        let Some(b) = self.blocked_of(s) else { return false };
        let txn = self.txn_of(s).unwrap_or(0);
        match &b.wait {
            Wait::Txn(t) => self.db.xids.status(*t) != XidStatus::InProgress,
            Wait::Sleep(until) => self.now >= *until,
            Wait::SafeSnapshot => !self.db.ssi.has_active_writer(),
            Wait::Row { table, row, mode } => {
                // PostgreSQL's heap_lock_tuple skips the tuple lock (and so the queue) when the
                // transaction already holds a weaker lock on the row, to avoid deadlocking with
                // waiters queued behind it (spec tuplelock-upgrade-no-deadlock). Such an
                // upgrade waits for conflicting holders only.
                let upgrader = self.db.locks.holds_row(table, *row, txn, LockStrength::KeyShare);
                if !upgrader
                    && self.earlier_waiters(b).any(|(_, w)| conflicts_on_row(w, table, *row, *mode))
                {
                    return false;
                }
                // No conflicting holder: over. Else PostgreSQL re-judges the row version when
                // the sleep it was in ends (heap_lock_tuple and heap_update go back to l3/l2
                // after their tuple lock and XactLockTableWait): a sleep on an earlier
                // waiter's tuple lock that it now holds, or on a holder that ended while
                // another holds on. Re-run, lock_row judges: REPEATABLE READ fails at once on
                // a committed update of its version even when a newer version is held
                // (regressions/gen-1797700000-0264); else it blocks again, keeping its place.
                self.db.locks.row_blockers(table, *row, txn, *mode).is_empty()
                    || self.row_slept_on(s, &b.wait, (b.wait_start, b.wait_seq)) != b.waited_on
            }
            Wait::Advisory { key, shared } => {
                if !self.db.locks.advisory_blockers(*key, s, *shared).is_empty() {
                    return false;
                }
                !self.earlier_waiters(b).any(|(other, w)| {
                    matches!(w, Wait::Advisory { key: k2, shared: s2 } if k2 == key && other != s && !(*s2 && *shared))
                })
            }
        }
    }

    fn earlier_waiters<'a>(
        &'a self,
        b: &'a Blocked,
    ) -> impl Iterator<Item = (SessionId, &'a Wait)> + 'a {
        self.waiters_before((b.wait_start, b.wait_seq)).map(|(id, o)| (id, &o.wait))
    }

    /// The blocked statements that began to wait before `order` (wait start, wait seq).
    fn waiters_before(
        &self,
        order: (Duration, u64),
    ) -> impl Iterator<Item = (SessionId, &Blocked)> + '_ {
        self.sessions.iter().filter_map(move |(id, s)| {
            let o = s.pending.as_ref()?.blocked.as_ref()?;
            ((o.wait_start, o.wait_seq) < order).then_some((*id, o))
        })
    }

    /// Waits-for edges between sessions.
    fn waits_for(&self) -> BTreeMap<SessionId, Vec<SessionId>> {
        let owner: BTreeMap<TxnId, SessionId> = self
            .sessions
            .iter()
            .filter_map(|(id, s)| s.txn.as_ref().map(|t| (t.id, *id)))
            .collect();
        let mut edges = BTreeMap::new();
        for (&id, s) in &self.sessions {
            let Some(b) = s.pending.as_ref().and_then(|p| p.blocked.as_ref()) else { continue };
            let targets: Vec<SessionId> = match &b.wait {
                Wait::Txn(x) => owner.get(&self.db.xids.top(*x)).copied().into_iter().collect(),
                // Behind the tuple lock, every conflicting waiter ahead; else a row held by
                // several transactions (a MultiXact) is waited for one member at a time, in
                // the order they locked it (Do_MultiXactIdWait's XactLockTableWait per
                // member): the edge goes to the first still holding.
                Wait::Row { .. } => {
                    self.blocked_row_targets(id, b).into_iter().map(|(_, s)| s).collect()
                }
                Wait::Advisory { key, shared } => {
                    self.db.locks.advisory_blockers(*key, id, *shared)
                }
                Wait::Sleep(_) | Wait::SafeSnapshot => Vec::new(),
            };
            edges.insert(id, targets);
        }
        edges
    }

    /// Every pending timer: (due, wait start, wait seq, kind, session). Kinds: 0 sleep end,
    /// 1 deadlock check, 2 lock_timeout, 3 statement_timeout.
    fn timers(&self) -> Vec<(Duration, Duration, u64, u8, SessionId)> {
        let mut out = Vec::new();
        for (&id, s) in &self.sessions {
            let Some(p) = &s.pending else { continue };
            let Some(b) = &p.blocked else { continue };
            let e = s.effective();
            let key = |due: Duration, kind: u8| (due, b.wait_start, b.wait_seq, kind, id);
            if let Wait::Sleep(until) = b.wait {
                out.push(key(until, 0));
            }
            if b.wait.is_lock() && !b.deadlock_checked {
                out.push(key(b.sleep_start + Duration::from_millis(e.deadlock_timeout_ms), 1));
            }
            if b.wait.is_lock() && e.lock_timeout_ms > 0 {
                out.push(key(b.wait_start + Duration::from_millis(e.lock_timeout_ms), 2));
            }
            if e.statement_timeout_ms > 0 {
                out.push(key(p.started + Duration::from_millis(e.statement_timeout_ms), 3));
            }
        }
        out.sort();
        out
    }

    pub(crate) fn next_timer_impl(&self) -> Option<Duration> {
        self.timers().first().map(|t| t.0.max(self.now))
    }

    /// Fires every timer due at or before `until`, in time order, then sets the clock.
    pub(crate) fn advance_impl(&mut self, until: Duration) {
        // Each firing ends a wait or marks its one deadlock check done, so the number of
        // firings is bounded by the pending timers; the limit guards against a bug.
        for _ in 0..TIMER_FIRINGS_MAX {
            let Some(&(due, _, _, kind, s)) = self.timers().first() else { break };
            if due > until {
                break;
            }
            self.now = self.now.max(due);
            self.fire(kind, s);
            self.wake();
        }
        if until > self.now {
            self.now = until;
        }
        self.wake();
    }

    fn fire(&mut self, kind: u8, s: SessionId) {
        match kind {
            1 => {
                if let Some(b) = self
                    .sessions
                    .get_mut(&s)
                    .and_then(|x| x.pending.as_mut())
                    .and_then(|p| p.blocked.as_mut())
                {
                    b.deadlock_checked = true;
                }
                let edges = self.waits_for();
                if let Some(cycle) = deadlock::find_cycle(s, &edges) {
                    let detail = self.deadlock_detail(&cycle);
                    self.cancel_blocked(s, Error::Deadlock { detail });
                }
            }
            2 => self.cancel_blocked(
                s,
                Error::LockNotAvailable("canceling statement due to lock timeout".into()),
            ),
            3 => self.cancel_blocked(
                s,
                Error::QueryCanceled("canceling statement due to statement timeout".into()),
            ),
            _ => {}
        }
    }

    fn deadlock_detail(&self, cycle: &[SessionId]) -> String {
        let mut lines = Vec::new();
        for (i, &a) in cycle.iter().enumerate() {
            let b = cycle[(i + 1) % cycle.len()];
            let what = match self.blocked_of(a).map(|x| &x.wait) {
                Some(Wait::Advisory { key, shared }) => {
                    let mode = if *shared { "ShareLock" } else { "ExclusiveLock" };
                    format!("{mode} on advisory lock [0,0,{key},1]")
                }
                Some(Wait::Txn(x)) => format!("ShareLock on transaction {x}"),
                // Behind an earlier waiter: its tuple lock (heavyweight modes of tuple locks).
                Some(Wait::Row { table, row, mode })
                    if matches!(self.blocked_of(b).map(|o| &o.wait),
                        Some(Wait::Row { table: t2, row: r2, .. }) if t2 == table && r2 == row) =>
                {
                    let lock = match mode {
                        LockStrength::KeyShare => "AccessShareLock",
                        LockStrength::Share => "RowShareLock",
                        LockStrength::NoKeyUpdate => "ExclusiveLock",
                        LockStrength::Update => "AccessExclusiveLock",
                    };
                    format!("{lock} on tuple (0,{row}) of relation {table}")
                }
                _ => format!("ShareLock on transaction {}", self.txn_of(b).unwrap_or(0)),
            };
            lines.push(format!("Process {a} waits for {what}; blocked by process {b}."));
        }
        lines.join("\n")
    }

    /// Fails a blocked statement (deadlock victim, timeout) and reports it.
    fn cancel_blocked(&mut self, s: SessionId, e: Error) {
        let Some(p) = self.sessions.get_mut(&s).and_then(|x| x.pending.as_ref()) else { return };
        if p.blocked.is_none() {
            return;
        }
        self.drop_pending(s);
        // The failure is reported before anything it releases.
        self.completions.push(Completion { session: s, response: Err(e.clone().into_sql_error()) });
        self.handle_error(s, &e);
    }
}

/// Whether `wait` is a row wait on (`table`, `row`) whose mode conflicts with `mode`, either
/// way round.
fn conflicts_on_row(wait: &Wait, table: &str, row: RowId, mode: LockStrength) -> bool {
    matches!(wait, Wait::Row { table: t2, row: r2, mode: m2 }
        if t2 == table && *r2 == row && (row_conflicts(*m2, mode) || row_conflicts(mode, *m2)))
}
