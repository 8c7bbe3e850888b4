//! The transaction guard every connection goes through: one piece of cancellation-safety code
//! for PostgreSQL (sqlx, `pg.rs`) and for the simulation's model adapter alike.
//!
//! WHAT: [`TxGuard`] wraps a raw session ([`RawConn`]) and implements [`Conn`]. It tracks two
//! facts about the session, both set BEFORE the statement is sent and cleared only on proof:
//! - `transaction_maybe_open`: set when a `BEGIN`/`START TRANSACTION` is about to be sent;
//!   cleared when a `COMMIT`/`ROLLBACK`/`END`/`ABORT` returns (success or failure: PostgreSQL
//!   ends the block either way). A failed `BEGIN` keeps it set (on an aborted session `BEGIN`
//!   itself fails with 25P02).
//! - `statement_in_flight`: set while a statement's reply has not been read.
//!
//! When the guard is dropped with either set (a handler future dropped because its client
//! disconnected, a timeout, a task abort, an early return) it calls [`RawConn::discard`]: the
//! session is never reused as it is; closing it makes the server roll back and release every
//! lock. It also discards a session that reports 25P02 ("current transaction is aborted")
//! while the guard believes no transaction is open: that session carries a transaction
//! nobody owns, and every later statement on it would fail.
//!
//! WHY: a cancelled `BEGIN` is the classic leak. sqlx marks its own transactions open only
//! after `BEGIN` returns, and its release path drains the pending reply and pools the session
//! — in a transaction. The first version of this project's `PgConn` did the same; a Locust run
//! left sessions `idle in transaction` for minutes (issue #12). [`GuardMode::LateBegin`]
//! keeps that broken behaviour as a planted bug, so the simulation shows it can find it.
//!
//! NOT MODELLED: savepoints are not tracked (`ROLLBACK TO` keeps the transaction open, as it
//! should); a statement that both ends and begins a block in one string is not split.

use std::str::FromStr;

use super::{BoxFuture, Conn, DbError, Rows, SqlValue};

/// A session as the driver gives it: executes statements, and can be thrown away.
pub trait RawConn: Send {
    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<Rows, DbError>>;

    /// This session must never be reused as it is: close it instead of pooling it (the server
    /// then rolls back its transaction). Synchronous: it runs from `Drop`.
    fn discard(&mut self);
}

/// Which guard a pool hands out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum GuardMode {
    /// Marks the transaction open before `BEGIN` is sent; discards on drop when a transaction
    /// may be open or a statement is in flight, and on an unowned 25P02.
    #[default]
    Safe,
    /// BROKEN (planted): marks the transaction open only after `BEGIN` returns, and discards
    /// only then — a `BEGIN` cancelled in flight leaves the session in a transaction and back
    /// in the pool. The behaviour of the first `PgConn`.
    LateBegin,
    /// BROKEN (planted): the `Safe` guard, but new sessions skip `session_setup`, so they
    /// have no `idle_in_transaction_session_timeout`: a connection lost right after its
    /// `BEGIN` (a partition) leaves the database's session idle in transaction, holding what
    /// it locked, until TCP notices. What the backend did before 2026-12-06 (issue #17).
    NoIdleTimeout,
}

impl GuardMode {
    pub const ALL: [GuardMode; 3] =
        [GuardMode::Safe, GuardMode::LateBegin, GuardMode::NoIdleTimeout];

    pub fn name(self) -> &'static str {
        match self {
            GuardMode::Safe => "safe",
            GuardMode::LateBegin => "late-begin",
            GuardMode::NoIdleTimeout => "no-idle-timeout",
        }
    }

    pub fn is_broken(self) -> bool {
        matches!(self, GuardMode::LateBegin | GuardMode::NoIdleTimeout)
    }

    /// Whether the transaction is marked open before `BEGIN` is sent (every mode but
    /// `LateBegin`).
    fn marks_before_begin(self) -> bool {
        !matches!(self, GuardMode::LateBegin)
    }

    pub fn describe(self) -> &'static str {
        match self {
            GuardMode::Safe => {
                "transaction marked open before BEGIN is sent; a dropped session is closed"
            }
            GuardMode::LateBegin => {
                "BROKEN: transaction marked open only after BEGIN returns (leaks on cancel)"
            }
            GuardMode::NoIdleTimeout => {
                "BROKEN: sessions without idle_in_transaction_session_timeout (a connection lost after \
                 BEGIN leaves its transaction open)"
            }
        }
    }
}

impl std::fmt::Display for GuardMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GuardMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        GuardMode::ALL.into_iter().find(|mode| mode.name() == text).ok_or_else(|| {
            let known: Vec<_> = GuardMode::ALL.iter().map(|m| m.name()).collect();
            format!("unknown guard `{text}` (known: {})", known.join(", "))
        })
    }
}

/// How a statement changes the session's transaction state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionEffect {
    Begins,
    Ends,
    None,
}

/// Classifies a statement by its first words (case-insensitive, no allocation).
pub fn transaction_effect(sql: &str) -> TransactionEffect {
    let mut words = sql.split_whitespace();
    let first = words.next().unwrap_or("");
    let second = words.next().unwrap_or("");
    let is = |word: &str, expected: &str| word.eq_ignore_ascii_case(expected);
    // `BEGIN;` written with its semicolon still begins.
    let first = first.trim_end_matches(';');
    if is(first, "BEGIN") || (is(first, "START") && is(second, "TRANSACTION")) {
        TransactionEffect::Begins
    } else if is(first, "COMMIT") || is(first, "END") || is(first, "ABORT") {
        TransactionEffect::Ends
    } else if is(first, "ROLLBACK") && !is(second, "TO") {
        // `ROLLBACK TO [SAVEPOINT] x` keeps the transaction open.
        TransactionEffect::Ends
    } else {
        TransactionEffect::None
    }
}

/// A session wrapped in the transaction guard: what [`super::Db::acquire`] hands out.
pub struct TxGuard<C: RawConn> {
    inner: C,
    mode: GuardMode,
    transaction_maybe_open: bool,
    statement_in_flight: bool,
}

impl<C: RawConn> TxGuard<C> {
    pub fn new(inner: C, mode: GuardMode) -> TxGuard<C> {
        TxGuard { inner, mode, transaction_maybe_open: false, statement_in_flight: false }
    }

    /// Whether the guard would discard the session if dropped now.
    pub fn must_discard(&self) -> bool {
        if self.mode.marks_before_begin() {
            self.transaction_maybe_open || self.statement_in_flight
        } else {
            self.transaction_maybe_open
        }
    }

    async fn run(&mut self, sql: &str, params: &[SqlValue]) -> Result<Rows, DbError> {
        let effect = transaction_effect(sql);
        if effect == TransactionEffect::Begins && self.mode.marks_before_begin() {
            self.transaction_maybe_open = true;
        }
        self.statement_in_flight = true;
        let result = self.inner.execute(sql, params).await;
        self.statement_in_flight = false;
        match effect {
            TransactionEffect::Begins if result.is_ok() => self.transaction_maybe_open = true,
            // COMMIT of a failed transaction still ends it; so does a failed ROLLBACK.
            TransactionEffect::Ends => self.transaction_maybe_open = false,
            _ => {}
        }
        if let Err(error) = &result
            && self.mode.marks_before_begin()
            && error.sqlstate == "25P02"
            && !self.transaction_maybe_open
        {
            // The session is inside an aborted transaction this guard never opened: it came
            // out of the pool that way. Never hand it out again.
            tracing::warn!(
                sql = first_words(sql),
                "discarding a session in an unowned aborted transaction"
            );
            self.inner.discard();
        }
        result
    }
}

fn first_words(sql: &str) -> &str {
    let line = sql.trim_start().lines().next().unwrap_or("");
    &line[..line.len().min(48)]
}

impl<C: RawConn> Conn for TxGuard<C> {
    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<Rows, DbError>> {
        Box::pin(self.run(sql, params))
    }
}

impl<C: RawConn> Drop for TxGuard<C> {
    fn drop(&mut self) {
        if self.must_discard() {
            tracing::debug!(
                transaction_maybe_open = self.transaction_maybe_open,
                statement_in_flight = self.statement_in_flight,
                "session dropped mid-transaction or mid-statement: closing it"
            );
            self.inner.discard();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Waker};

    use super::*;

    /// A raw session whose statements never answer (or answer at once), recording discards.
    struct Fake {
        hang: bool,
        reply: Result<Rows, DbError>,
        discarded: Arc<Mutex<u32>>,
    }

    impl RawConn for Fake {
        fn execute<'a>(
            &'a mut self,
            _sql: &'a str,
            _params: &'a [SqlValue],
        ) -> BoxFuture<'a, Result<Rows, DbError>> {
            if self.hang {
                Box::pin(std::future::pending())
            } else {
                Box::pin(std::future::ready(self.reply.clone()))
            }
        }
        fn discard(&mut self) {
            *self.discarded.lock().unwrap() += 1;
        }
    }

    fn guard(mode: GuardMode, hang: bool) -> (TxGuard<Fake>, Arc<Mutex<u32>>) {
        let discarded = Arc::new(Mutex::new(0));
        let fake = Fake { hang, reply: Ok(Rows::default()), discarded: discarded.clone() };
        (TxGuard::new(fake, mode), discarded)
    }

    /// Polls `execute(sql)` once (it hangs) and drops it, as hyper drops a handler.
    fn cancel_in_flight(guard: &mut TxGuard<Fake>, sql: &str) {
        let mut future = guard.execute(sql, &[]);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(future.as_mut().poll(&mut cx).is_pending());
    }

    #[test]
    fn a_begin_cancelled_in_flight_discards_the_session() {
        let (mut safe, discarded) = guard(GuardMode::Safe, true);
        cancel_in_flight(&mut safe, "BEGIN ISOLATION LEVEL READ COMMITTED");
        drop(safe);
        assert_eq!(*discarded.lock().unwrap(), 1);
    }

    #[test]
    fn the_planted_late_begin_guard_leaks_the_cancelled_begin() {
        let (mut late, discarded) = guard(GuardMode::LateBegin, true);
        cancel_in_flight(&mut late, "BEGIN ISOLATION LEVEL READ COMMITTED");
        drop(late);
        assert_eq!(*discarded.lock().unwrap(), 0, "the broken guard pools the session");
    }

    #[test]
    fn a_finished_transaction_returns_the_session_and_an_open_one_does_not() {
        for (statements, expected) in [
            (&["BEGIN", "SELECT 1", "COMMIT"][..], 0),
            (&["BEGIN", "SELECT 1", "ROLLBACK"][..], 0),
            (&["BEGIN", "SELECT 1", "ROLLBACK TO SAVEPOINT a"][..], 1),
            (&["SELECT 1"][..], 0),
            (&["start transaction"][..], 1),
        ] {
            let (mut safe, discarded) = guard(GuardMode::Safe, false);
            for sql in statements {
                futures::executor::block_on(safe.execute(sql, &[])).unwrap();
            }
            drop(safe);
            assert_eq!(*discarded.lock().unwrap(), expected, "{statements:?}");
        }
    }

    #[test]
    fn an_unowned_aborted_transaction_is_discarded_at_once() {
        let discarded = Arc::new(Mutex::new(0));
        let aborted = DbError::new("25P02", "current transaction is aborted");
        let fake = Fake { hang: false, reply: Err(aborted), discarded: discarded.clone() };
        let mut safe = TxGuard::new(fake, GuardMode::Safe);
        assert!(futures::executor::block_on(safe.execute("SELECT 1", &[])).is_err());
        assert_eq!(*discarded.lock().unwrap(), 1);
    }

    #[test]
    fn transaction_effect_reads_the_first_words() {
        use TransactionEffect::*;
        assert_eq!(transaction_effect("BEGIN ISOLATION LEVEL SERIALIZABLE"), Begins);
        assert_eq!(transaction_effect("begin;"), Begins);
        assert_eq!(transaction_effect("START TRANSACTION"), Begins);
        assert_eq!(transaction_effect("  commit"), Ends);
        assert_eq!(transaction_effect("ROLLBACK"), Ends);
        assert_eq!(transaction_effect("ROLLBACK TO SAVEPOINT s1"), None);
        assert_eq!(transaction_effect("SAVEPOINT s1"), None);
        assert_eq!(transaction_effect("SELECT 1"), None);
        assert_eq!(transaction_effect("ENDANGERED"), None);
    }

    #[test]
    fn guard_names_parse_back() {
        for mode in GuardMode::ALL {
            assert_eq!(mode.name().parse::<GuardMode>(), Ok(mode));
        }
        assert!("late".parse::<GuardMode>().unwrap_err().contains("late-begin"));
    }
}
