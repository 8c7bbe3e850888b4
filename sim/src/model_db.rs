//! backend-core's `Db` over the model server, across turmoil TCP.
//!
//! The backend host's pool ([`crate::pool::Pool`]: size and acquire timeout from the
//! scenario, pool wait recorded) holds connections to the `db` host; each connection is one
//! model session (`model::io::Client` over a turmoil `TcpStream`). Statements and values are
//! converted between backend-core's `SqlValue`/`Rows`/`DbError` and the model's
//! `Value`/`QueryResult`/`SqlError`. A connection whose stream failed is marked broken and
//! never reused (its SQLSTATE is 08006, which backend-core treats as "outcome unknown").
//! Every 40P01 the database reports is recorded for the `no_deadlock` invariant.
//!
//! TRANSACTION SAFETY is not this adapter's: every session is handed out inside backend-core's
//! `TxGuard` (the same code the sqlx adapter runs in production), whose `discard` here marks
//! the pooled connection broken, so its stream is dropped and the model server aborts the
//! session. Like sqlx, the pool does nothing else on release: a statement dropped in flight
//! leaves its reply owed, which the next user drains (`model::io::Client`) — so a guard that
//! fails to discard a session leaves it in its transaction, as it would on PostgreSQL.
//!
//! STATEMENT TAP (explore's pair patterns, `crate::patterns`): every statement sent is noted
//! with its connection (the stream's local address and how many connections that address
//! had before) and its lease (one `acquire`: one request on the backend), classified by
//! `patterns::classify`. The db host notes the peer address of each session it opens, in
//! order (`world::hosts`), so the run's results can put the server's trace (which statement
//! took effect when) beside the lease that sent it.
//!
//! Not modelled: cancel requests, TLS, prepared-statement caching.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use backend_core::db::guard::{GuardMode, RawConn, TxGuard};
use backend_core::db::{BoxFuture, Conn, Db, DbError, Rows, SqlValue};
use model::io::Client;
use model::{SqlError, Value};
use turmoil::net::TcpStream;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use scenarios::{Fault, Scenario};

use crate::patterns::{self, Statement};
use crate::pool::{ConnectFn, Pool, Pooled, WaitObserver};
use crate::timescale::{modelled_us, scaled_ms};

/// The db host's port.
pub const DB_PORT: u16 = 5432;
/// A statement with no reply after this long (modelled) fails with 08006 and its connection
/// is dropped: turmoil TCP has no retransmission, so a segment lost to a partition would
/// otherwise hang the session (and its pool slot) forever — the role TCP keepalive and
/// `statement_timeout` play in production. Lock waits in the scenarios are far shorter.
pub const STATEMENT_TIMEOUT_MS: u64 = 500;

/// Where a dropped connection breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropPoint {
    /// Before the statement is sent: it never runs.
    BeforeSend,
    /// After it was sent, before its reply: it may have run (a COMMIT's outcome is unknown).
    AfterSend,
}

/// The scenario's `db_connection_drop` windows and their random stream (`Stream::DbDrops`).
pub struct DbDrops {
    /// [from, to) modelled µs and the per-statement rate.
    windows: Vec<(u64, u64, f64)>,
    rng: Mutex<ChaCha8Rng>,
}

impl DbDrops {
    /// `None` when the scenario has no such fault (nothing is drawn then).
    pub fn new(scenario: &Scenario, rng: ChaCha8Rng) -> Option<Arc<DbDrops>> {
        let windows: Vec<_> = scenario
            .faults
            .iter()
            .filter_map(|fault| match fault {
                Fault::DbConnectionDrop { rate, .. } => {
                    Some((fault.at_ms() * 1_000, fault.end_ms() * 1_000, *rate))
                }
                _ => None,
            })
            .collect();
        (!windows.is_empty()).then(|| Arc::new(DbDrops { windows, rng: Mutex::new(rng) }))
    }

    /// Whether the statement starting at modelled `now_us` finds its connection dropped.
    pub fn draw(&self, now_us: u64) -> Option<DropPoint> {
        let mut rng = self.rng.lock().expect("drop rng");
        for &(from, to, rate) in &self.windows {
            if (from..to).contains(&now_us) && rng.random_bool(rate) {
                let after = rng.random_bool(0.5);
                return Some(if after { DropPoint::AfterSend } else { DropPoint::BeforeSend });
            }
        }
        None
    }
}

/// A connection to the db host: its local address and how many connections that address
/// had before it (a restarted backend host may reuse ports).
pub type ConnId = (SocketAddr, u32);

/// One statement as sent, for the pair patterns.
#[derive(Clone, Debug)]
pub struct TapEntry {
    pub conn: ConnId,
    /// The `acquire` it was sent under (one request on the backend); [`SETUP_LEASE`] for the
    /// statements a new connection runs before any request uses it.
    pub lease: u64,
    /// `model::statement_kind`, to check it against the server's trace.
    pub kind: &'static str,
    pub statement: Statement,
}

impl TapEntry {
    fn new(conn: ConnId, lease: u64, sql: &str, params: &[SqlValue]) -> TapEntry {
        let (kind, statement) = (model::statement_kind(sql), patterns::classify(sql, params));
        TapEntry { conn, lease, kind, statement }
    }
}

/// The lease of a connection's set-up statements (`backend_core::db::session_setup`): leases
/// of requests count from 1.
pub const SETUP_LEASE: u64 = 0;

/// Every statement the backend sent, in order (see the module doc).
#[derive(Debug, Default)]
pub struct TapLog {
    pub entries: Vec<TapEntry>,
    next_lease: u64,
    /// Connections opened so far per local address.
    connections: BTreeMap<SocketAddr, u32>,
}

impl TapLog {
    /// The id of a new connection from `addr`.
    pub fn connection(&mut self, addr: SocketAddr) -> ConnId {
        let n = self.connections.entry(addr).or_default();
        let id = (addr, *n);
        *n += 1;
        id
    }
}

/// Shared by the backend host's pool (restarts included) and the run's results.
pub type StatementTap = Arc<Mutex<TapLog>>;

/// One model session.
pub struct ModelConn {
    client: Client<TcpStream>,
    /// Set when the pool has a tap.
    id: Option<ConnId>,
}

/// (modelled µs, description) of every deadlock error seen.
pub type DeadlockLog = Arc<Mutex<Vec<(u64, String)>>>;

/// Told every statement's round trip: its text and modelled µs from send to answer (a
/// database error counts, a lost connection does not).
pub type StatementObserver = Arc<dyn Fn(&str, u64) + Send + Sync>;

/// Run after every statement's reply, before its caller continues (and before its round
/// trip is told to [`StatementObserver`]): the backend resuming on a core
/// (`world::cpu::ResumeCpu`).
pub type ReplyHook = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// What the pool tells the run as it works.
#[derive(Clone)]
pub struct DbObservers {
    /// Each wait for a pooled connection.
    pub on_wait: WaitObserver,
    pub on_statement: StatementObserver,
    pub deadlocks: DeadlockLog,
    /// After each reply, when the backend's CPU resumes on shared cores.
    pub after_reply: Option<ReplyHook>,
}

/// The pool of model sessions the backend uses.
pub struct ModelDb {
    pool: Pool<ModelConn>,
    deadlocks: DeadlockLog,
    on_statement: StatementObserver,
    after_reply: Option<ReplyHook>,
    guard: GuardMode,
    drops: Option<Arc<DbDrops>>,
    tap: Option<StatementTap>,
}

impl ModelDb {
    /// `acquire_timeout` is simulated (scaled) time.
    pub fn new(
        size: u32,
        acquire_timeout: std::time::Duration,
        observers: DbObservers,
        guard: GuardMode,
        drops: Option<Arc<DbDrops>>,
    ) -> ModelDb {
        ModelDb::with_tap(size, acquire_timeout, observers, guard, drops, None)
    }

    /// [`ModelDb::new`], noting every statement sent in `tap` (module doc).
    pub fn with_tap(
        size: u32,
        acquire_timeout: std::time::Duration,
        observers: DbObservers,
        guard: GuardMode,
        drops: Option<Arc<DbDrops>>,
        tap: Option<StatementTap>,
    ) -> ModelDb {
        let DbObservers { on_wait, on_statement, deadlocks, after_reply } = observers;
        let connect_tap = tap.clone();
        let setup = backend_core::db::session_setup(guard);
        let connect: ConnectFn<ModelConn> = Arc::new(move || {
            let (tap, setup) = (connect_tap.clone(), setup.clone());
            Box::pin(async move {
                let stream = TcpStream::connect(("db", DB_PORT)).await.map_err(|e| {
                    DbError::new(DbError::CONNECTION_FAILURE, format!("connect to db: {e}"))
                })?;
                let id = match (&tap, stream.local_addr()) {
                    (Some(tap), Ok(addr)) => Some(tap.lock().expect("tap").connection(addr)),
                    _ => None,
                };
                let mut client = Client::new(stream);
                // What every production session runs first (backend-core's `session_setup`).
                for sql in setup {
                    if let (Some(tap), Some(conn)) = (&tap, id) {
                        let entry = TapEntry::new(conn, SETUP_LEASE, &sql, &[]);
                        tap.lock().expect("tap").entries.push(entry);
                    }
                    round_trip(&mut client, &sql, &[]).await?.map_err(to_db_error)?;
                }
                Ok(ModelConn { client, id })
            })
        });
        let pool = Pool::new(size, acquire_timeout, connect, on_wait);
        ModelDb { pool, deadlocks, on_statement, after_reply, guard, drops, tap }
    }
}

impl Db for ModelDb {
    fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn Conn>, DbError>> {
        Box::pin(async move {
            let pooled = self.pool.acquire().await?;
            let lease = self.tap.as_ref().map(|tap| {
                let mut log = tap.lock().expect("tap");
                log.next_lease += 1;
                (tap.clone(), log.next_lease)
            });
            let raw = PooledConn {
                pooled,
                deadlocks: self.deadlocks.clone(),
                on_statement: self.on_statement.clone(),
                after_reply: self.after_reply.clone(),
                drops: self.drops.clone(),
                lease,
            };
            Ok(Box::new(TxGuard::new(raw, self.guard)) as Box<dyn Conn>)
        })
    }
}

struct PooledConn {
    pooled: Pooled<ModelConn>,
    deadlocks: DeadlockLog,
    on_statement: StatementObserver,
    after_reply: Option<ReplyHook>,
    drops: Option<Arc<DbDrops>>,
    /// The tap and this lease's number, when noting statements.
    lease: Option<(StatementTap, u64)>,
}

impl PooledConn {
    /// Notes a statement that is being sent (module doc).
    fn note(&mut self, sql: &str, params: &[SqlValue]) {
        let (Some((tap, lease)), Some(conn)) = (&self.lease, self.pooled.get_mut().id) else {
            return;
        };
        tap.lock().expect("tap").entries.push(TapEntry::new(conn, *lease, sql, params));
    }

    async fn execute_statement(&mut self, sql: &str, params: &[SqlValue]) -> Result<Rows, DbError> {
        let values: Vec<Value> = params.iter().map(to_model).collect();
        let now_us = modelled_us(turmoil::sim_elapsed().unwrap_or_default());
        if let Some(point) = self.drops.as_ref().and_then(|d| d.draw(now_us)) {
            // A connection reset (`db_connection_drop`): the stream is dropped with the
            // connection, so the server sees the disconnect and aborts the session.
            self.pooled.mark_broken();
            if point == DropPoint::AfterSend {
                self.note(sql, params);
                let _ = self.pooled.get_mut().client.send_only(sql, &values).await;
            }
            let when = match point {
                DropPoint::BeforeSend => "before the statement was sent",
                DropPoint::AfterSend => "after the statement was sent",
            };
            let message = format!("db connection reset {when}");
            return Err(DbError::new(DbError::CONNECTION_FAILURE, message));
        }
        self.note(sql, params);
        let response = match round_trip(&mut self.pooled.get_mut().client, sql, &values).await {
            Ok(response) => response,
            Err(lost) => {
                self.pooled.mark_broken();
                return Err(lost);
            }
        };
        if let Some(after_reply) = &self.after_reply {
            after_reply().await;
        }
        let answered_us = modelled_us(turmoil::sim_elapsed().unwrap_or_default());
        (self.on_statement)(sql, answered_us.saturating_sub(now_us));
        match response {
            Ok(result) => Ok(to_rows(result)),
            Err(error) => {
                if error.code == "40P01" {
                    let at_us = modelled_us(turmoil::sim_elapsed().unwrap_or_default());
                    let text = format!("{} (statement: {})", error.message, first_line(sql));
                    self.deadlocks.lock().expect("deadlock log").push((at_us, text));
                }
                Err(to_db_error(error))
            }
        }
    }
}

/// One statement's round trip, bounded by [`STATEMENT_TIMEOUT_MS`]: the database's answer,
/// or a connection failure (08006) when the stream fails or no reply comes in time, after
/// which the connection must not be used again.
async fn round_trip(
    client: &mut Client<TcpStream>,
    sql: &str,
    values: &[Value],
) -> Result<model::Response, DbError> {
    let lost = |why: String| DbError::new(DbError::CONNECTION_FAILURE, why);
    match tokio::time::timeout(scaled_ms(STATEMENT_TIMEOUT_MS), client.query(sql, values)).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) => Err(lost(format!("db connection lost: {e}"))),
        Err(_) => Err(lost(format!("no reply from the db within {STATEMENT_TIMEOUT_MS} ms"))),
    }
}

impl RawConn for PooledConn {
    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<Rows, DbError>> {
        Box::pin(self.execute_statement(sql, params))
    }

    /// Never pooled again: the stream is dropped, so the server ends the session.
    fn discard(&mut self) {
        self.pooled.mark_broken();
    }
}

fn first_line(sql: &str) -> &str {
    sql.lines().next().unwrap_or_default().trim()
}

pub fn to_model(v: &SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Bool(b) => Value::Bool(*b),
        SqlValue::Int(i) => Value::Int(*i),
        SqlValue::Text(t) => Value::Text(t.clone()),
        SqlValue::Uuid(u) => Value::Uuid(u.as_u128()),
        SqlValue::Timestamp(t) => Value::Timestamp(t.timestamp_micros()),
    }
}

pub fn from_model(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Bool(*b),
        Value::Int(i) => SqlValue::Int(*i),
        Value::Text(t) => SqlValue::Text(t.clone()),
        Value::Uuid(u) => SqlValue::Uuid(uuid::Uuid::from_u128(*u)),
        Value::Timestamp(us) => match chrono::DateTime::from_timestamp_micros(*us) {
            Some(t) => SqlValue::Timestamp(t),
            None => SqlValue::Null,
        },
        // backend-core never reads ranges back; render them for diagnostics.
        Value::Range(r) => SqlValue::Text(format!("{r:?}")),
    }
}

/// The command tag's trailing count ("INSERT 0 1", "UPDATE 2", "SELECT 3").
pub fn rows_affected(tag: &str) -> u64 {
    tag.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Moves the values over (no copy of texts): the result is not needed afterwards.
fn to_rows(r: model::QueryResult) -> Rows {
    let rows = r.rows.into_iter().map(|row| row.into_iter().map(from_model_owned).collect());
    Rows { columns: r.columns, rows: rows.collect(), rows_affected: rows_affected(&r.tag) }
}

/// [`from_model`] taking the value, so a text moves instead of being copied.
pub fn from_model_owned(v: Value) -> SqlValue {
    match v {
        Value::Text(t) => SqlValue::Text(t),
        other => from_model(&other),
    }
}

/// Runs one statement straight on `engine` and answers at once, where nothing else runs and
/// nothing may block (the world's setup, serial tests): a statement that would block is a
/// 55000 error naming `where_`.
pub fn execute_at_once(
    engine: &mut model::Engine,
    session: model::SessionId,
    sql: &str,
    params: &[SqlValue],
    where_: &str,
) -> Result<Rows, DbError> {
    let values: Vec<_> = params.iter().map(to_model).collect();
    match engine.submit(session, sql, &values) {
        model::Step::Done(response) => from_response(response),
        model::Step::Blocked => Err(DbError::new("55000", format!("a statement blocked {where_}"))),
    }
}

/// A model response as backend-core's result: rows, or the error by SQLSTATE.
pub fn from_response(response: model::Response) -> Result<Rows, DbError> {
    response.map(to_rows).map_err(to_db_error)
}

fn to_db_error(e: SqlError) -> DbError {
    DbError { sqlstate: e.code, message: e.message, constraint: e.constraint }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_tags_convert() {
        let t = chrono::DateTime::from_timestamp(1_772_409_600, 0).unwrap();
        let u = uuid::Uuid::from_u128(42);
        for v in [SqlValue::Null, SqlValue::Int(-3), SqlValue::Uuid(u), SqlValue::Timestamp(t)] {
            assert_eq!(from_model(&to_model(&v)), v);
        }
        assert_eq!(rows_affected("INSERT 0 1"), 1);
        assert_eq!(rows_affected("UPDATE 12"), 12);
        assert_eq!(rows_affected("BEGIN"), 0);
    }

    /// Every statement the backend sends is timed and filed by class (validate's
    /// `--statement-times`): every transaction begun is ended, and each booking booked ran its
    /// INSERT; the times are the modelled round trips, so none is shorter than the db link's
    /// transport of a tick.
    #[test]
    fn every_statement_round_trip_is_recorded_by_class() {
        use crate::world::{self, RunConfig};
        let config = RunConfig {
            guard: Default::default(),
            scenario: Arc::new(Scenario::builtin("storm").unwrap().scenario),
            seed: 3,
            strategy: "exclusion".into(),
            keep_trace: false,
            profile: world::default_profile(),
            connections: Default::default(),
        };
        let outcome = world::run(&config).unwrap().outcome;
        let by_class = outcome.histograms.by_statement();
        let count = |kind: &str| -> u64 {
            let of_kind =
                by_class.iter().filter(|(c, _)| model::profile::statement_kind(c) == kind);
            of_kind.map(|(_, h)| h.len()).sum()
        };
        assert!(count("begin") > 0, "{:?}", by_class.keys().collect::<Vec<_>>());
        assert_eq!(count("begin"), count("commit") + count("rollback"), "each transaction ends");
        assert!(count("insert") >= outcome.counts.created_201, "{}", outcome.counts.created_201);
        assert!(outcome.counts.created_201 > 0);
        let tick_us = crate::timescale::RESOLUTION_US;
        for (class, h) in by_class {
            assert!(h.min() >= tick_us, "{class}: a round trip of {} µs", h.min());
        }
        let mut twice = outcome.histograms.clone();
        twice.merge(&outcome.histograms);
        let doubled = twice.by_statement().values().map(|h| h.len()).sum::<u64>();
        assert_eq!(doubled, 2 * by_class.values().map(|h| h.len()).sum::<u64>(), "merged");
    }

    /// A profile with `[wal] commit_flush_share` runs the same bookings through the model's
    /// WAL flush (`model::io::wal`): the invariants hold, the run replays, and the commits
    /// becoming visible later changes the interleaving (the trace).
    #[test]
    fn a_run_with_a_wal_flush_holds_its_invariants_and_replays() {
        use crate::world::{self, RunConfig};
        let config = |share: f64| RunConfig {
            guard: Default::default(),
            scenario: Arc::new(Scenario::builtin("storm").unwrap().scenario),
            seed: 3,
            strategy: "exclusion".into(),
            keep_trace: false,
            profile: Arc::new(world::default_profile().with_commit_flush_share(share).unwrap()),
            connections: Default::default(),
        };
        let flushed = world::run(&config(0.75)).unwrap().outcome;
        assert!(flushed.passed(), "{:?}", flushed.violations);
        assert_eq!(flushed.trace_hash, world::run(&config(0.75)).unwrap().outcome.trace_hash);
        let plain = world::run(&config(0.0)).unwrap().outcome;
        assert_ne!(flushed.trace_hash, plain.trace_hash, "the flush moves the commits");
        assert_eq!(flushed.counts.bookings, plain.counts.bookings);
    }
}
