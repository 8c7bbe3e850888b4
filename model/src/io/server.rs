//! SERVER: the engine behind a framed protocol, with seeded scheduling and service times.
//!
//! One [`Server`] owns a shared [`Engine`] (`Rc<RefCell<…>>`, so the owner can also read the
//! final state or crash it) and one ENGINE TASK (`spawn_local`: turmoil hosts are
//! current-thread runtimes with a LocalSet). Each connection served by
//! [`Server::serve_connection`] is one engine session; its requests go to the engine task
//! over a channel, and disconnect closes the session.
//!
//! LIFE OF A STATEMENT
//! 1. The connection task reads a frame and queues the statement with the engine task.
//! 2. The engine task yields a few times to gather statements that arrived at the same
//!    instant, then, while an executor is free, picks one by its [`Scheduler`] (PCT
//!    priority, or a uniform random pick on a modelled machine: [`super::sched`]).
//! 3. It advances the engine clock to tokio's (virtual) clock and submits the statement.
//!    Done: the reply is held for a service time drawn from the [`LatencyProfile`] for the
//!    statement's class (text prefix) or else its kind, × `time_scale`, during which the
//!    executor is busy (on time-sliced shared cores the statement's time may be split by
//!    preemption, `super::cores`). Blocked: the executor is freed at once and the reply waits in a table.
//! 4. The engine task sleeps until `Engine::next_timer()` and calls `advance_to`, so
//!    deadlock checks and timeouts fire in virtual time; every `take_completions()` reply is
//!    held for its own service time (without holding an executor) and sent.
//! 5. Each execution and completion is appended to the TRACE (session, kind, fingerprint,
//!    outcome); [`Server::trace_hash`] is the interleaving signature.
//!
//! TIME: the engine clock is its value when the server started plus tokio time since then
//! (unscaled), so timeouts keep their meaning in the simulation's time and a server started
//! on a restarted host continues the engine's clock; only service times are scaled, to lift
//! microsecond costs above turmoil's millisecond tick.
//!
//! CRASH: [`Server::crash_restart`] aborts every transaction (committed data survives), drops
//! every queued reply and disconnects every connection. Not modelled: connection limits,
//! statement cancellation, partial writes of a reply.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::cores::{CoreGuard, Cores, Demand};
use super::frame::{Incoming, IoError, read_frame, write_frame};
use super::sched::{Picker, Scheduler};
use super::trace::{Trace, TraceEvent, fingerprint};
use super::wal::Wal;
use crate::profile::{LatencyProfile, statement_kind};
use crate::{Engine, Response, SessionId, Step, Value};

/// At most this many yields are spent gathering statements that arrive at the same instant.
const GATHER_YIELDS_MAX: usize = 8;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Seeds the scheduler and the service-time stream.
    pub seed: u64,
    /// Service times are multiplied by this (e.g. 20: 50 µs modelled = 1 ms simulated).
    pub time_scale: u32,
    pub profile: LatencyProfile,
    /// Which ready statement runs next when cores are short ([`super::sched`]).
    pub scheduler: Scheduler,
    /// PCT depth d (number of priority change points + 1).
    pub pct_depth: u32,
    /// Expected number of statements in a run; change points are drawn below it.
    pub pct_steps_estimate: u64,
    /// Statements in service at once (CPU cores of the modelled database), when `cores` is
    /// not given.
    pub executors_max: usize,
    /// Cores shared with other work (the backend's CPU on the same machine); `None`: the
    /// server's own `executors_max` cores. See [`super::cores`].
    pub cores: Option<Arc<Cores>>,
    /// Modelled µs the caller's own transport adds to every statement's round trip (after
    /// `time_scale` is removed). The profile's times are client-side round trips, which
    /// already contain a transport, so this much is taken off each draw (never below 0).
    pub transport_us: u64,
    /// The share of a statement's drawn round trip that holds a core (0 < f ≤ 1): the rest
    /// passes without one (a real round trip's wake-ups and WAL-flush wait are not CPU).
    /// With 1 the core is held for the whole draw.
    pub core_fraction: f64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            seed: 0,
            time_scale: 1,
            profile: LatencyProfile::default_profile(),
            scheduler: Scheduler::Pct,
            pct_depth: 3,
            pct_steps_estimate: 1_000,
            executors_max: 2,
            cores: None,
            transport_us: 0,
            core_fraction: 1.0,
        }
    }
}

type Reply = oneshot::Sender<Response>;

enum Cmd {
    Query {
        session: SessionId,
        sql: String,
        params: Vec<Value>,
        reply: Reply,
    },
    /// A COMMIT whose WAL flush has ended: apply it now ([`EngineTask::commit_after_flush`]).
    Apply {
        commit: Queued,
        generation: u64,
    },
    Close {
        session: SessionId,
        generation: u64,
    },
    Crash,
}

struct Queued {
    session: SessionId,
    sql: String,
    params: Vec<Value>,
    reply: Reply,
    /// Arrived within [`PING_PONG_US`] of its session's previous reply, on cores that serve
    /// such statements first ([`Cores::urgent_first`]).
    urgent: bool,
}

struct Shared {
    engine: Rc<RefCell<Engine>>,
    tx: mpsc::UnboundedSender<Cmd>,
    trace: Trace,
    generation: watch::Sender<u64>,
    start: Instant,
    /// The engine's clock when this server started (non-zero for a restarted host).
    base: Duration,
    /// `ServerConfig::time_scale`, for the idle-in-transaction timer.
    time_scale: u32,
}

/// A handle on the running server; clones share it.
#[derive(Clone)]
pub struct Server {
    shared: Rc<Shared>,
}

impl Server {
    /// Starts the engine task. Must run inside a `LocalSet` (every turmoil host does).
    pub fn start(engine: Rc<RefCell<Engine>>, config: ServerConfig) -> Server {
        assert!(config.time_scale >= 1, "time_scale must be at least 1");
        assert!(config.executors_max >= 1, "executors_max must be at least 1");
        let (tx, rx) = mpsc::unbounded_channel();
        let base = engine.borrow().now();
        let shared = Rc::new(Shared {
            engine,
            tx,
            trace: Trace::default(),
            generation: watch::Sender::new(0),
            start: Instant::now(),
            base,
            time_scale: config.time_scale,
        });
        let task = EngineTask::new(Rc::clone(&shared), config);
        tokio::task::spawn_local(task.run(rx));
        Server { shared }
    }

    /// Serves one connection until the client closes it, the stream fails, or a crash.
    pub async fn serve_connection<S>(&self, mut stream: S) -> Result<(), IoError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut generation = self.shared.generation.subscribe();
        let born = *generation.borrow_and_update();
        let session = self.shared.engine.borrow_mut().open_session();
        let result = self.serve_session(&mut stream, session, &mut generation).await;
        if *generation.borrow() == born {
            let _ = self.shared.tx.send(Cmd::Close { session, generation: born });
        }
        result
    }

    async fn serve_session<S>(
        &self,
        stream: &mut S,
        session: SessionId,
        generation: &mut watch::Receiver<u64>,
    ) -> Result<(), IoError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            // Idle inside a transaction block with `idle_in_transaction_session_timeout` set:
            // PostgreSQL ends the session (FATAL 25P03, then the connection closes) when no
            // statement comes in time, which aborts its transaction and frees its locks.
            // Here the connection closes (the client's next statement finds it closed) and
            // `serve_connection` closes the session.
            let idle_max = self.shared.engine.borrow().idle_in_transaction_timeout_ms(session);
            let idle_max = idle_max.map(|ms| Duration::from_millis(ms) * self.shared.time_scale);
            let request = tokio::select! {
                biased;
                _ = generation.changed() => return Err(IoError::Closed),
                _ = sleep_or_never(idle_max) => {
                    let what = "idle-in-transaction timeout".to_string();
                    self.shared.record(session, "terminate", what, "25P03".to_string());
                    return Ok(());
                }
                r = read_frame::<_, Incoming>(stream) => r?,
            };
            let (sql, params) = match request {
                None | Some(Incoming::Close) => return Ok(()),
                Some(Incoming::Query { sql, params }) => (sql, params),
            };
            let (reply, answer) = oneshot::channel();
            let _ = self.shared.tx.send(Cmd::Query { session, sql, params, reply });
            let response = tokio::select! {
                biased;
                _ = generation.changed() => return Err(IoError::Closed),
                r = answer => r.map_err(|_| IoError::Closed)?,
            };
            write_frame(stream, &response).await?;
        }
    }

    /// Crash and restart the database: open transactions abort, committed data survives,
    /// every connection drops.
    pub fn crash_restart(&self) {
        let _ = self.shared.tx.send(Cmd::Crash);
    }

    /// The shared engine (e.g. to read the final state after a run).
    pub fn engine(&self) -> Rc<RefCell<Engine>> {
        Rc::clone(&self.shared.engine)
    }

    /// Every executed statement and completion so far, in order.
    pub fn trace(&self) -> Vec<TraceEvent> {
        self.shared.trace.events()
    }

    /// FNV-1a hash of the trace: the run's interleaving signature.
    pub fn trace_hash(&self) -> u64 {
        self.shared.trace.hash()
    }
}

/// The single task that touches the engine.
struct EngineTask {
    shared: Rc<Shared>,
    config: ServerConfig,
    picker: Picker,
    /// Service-time stream, separate from the scheduler's so one does not shift the other.
    rng: ChaCha8Rng,
    ready: Vec<Queued>,
    /// Replies of blocked statements, by session; a Vec scanned in order for determinism.
    blocked: Vec<(SessionId, &'static str, String, Reply)>,
    /// Where statements run: the server's own executors or cores shared with the backend.
    cores: Arc<Cores>,
    /// Tells time-sliced cores how many ready statements wait for one (`super::cores`).
    demand: Demand,
    /// Per session, the transport its earlier statements took beyond their draws (modelled,
    /// before `time_scale`) and whether it is inside a transaction block: see
    /// [`EngineTask::reply_delay`].
    transport_debt: BTreeMap<SessionId, TransportDebt>,
    /// The log's flusher, when the profile has a `[wal] commit_flush_share`.
    wal: Option<Wal>,
    /// Per session, when its last reply was due to leave ([`EngineTask::follows_its_reply`]).
    last_reply: BTreeMap<SessionId, Instant>,
    /// Sessions whose open transaction wrote (its COMMIT flushes): see
    /// [`EngineTask::note_writes`].
    wrote: BTreeSet<SessionId>,
}

/// Modelled µs after a session's reply within which its next statement is a ping-pong
/// ([`EngineTask::follows_its_reply`]): the real backends that slept less than this before a
/// statement waited 5 µs for a core on average (session 28, storm at 50 users).
pub const PING_PONG_US: u64 = 100;

/// Modelled µs of CPU a WAL flush takes after its I/O, on shared cores (`super::wal`).
pub const WAL_FLUSH_CPU_US: u64 = 25;

/// Longest transport debt a session carries (modelled time).
pub const TRANSPORT_DEBT_MAX: Duration = Duration::from_millis(2);

/// A session's transport debt ([`EngineTask::reply_delay`]).
#[derive(Clone, Copy, Debug, Default)]
struct TransportDebt {
    owed: Duration,
    /// Between BEGIN and COMMIT/ROLLBACK: replies there do not pay.
    in_block: bool,
}

impl EngineTask {
    fn new(shared: Rc<Shared>, config: ServerConfig) -> EngineTask {
        let (depth, steps) = (config.pct_depth, config.pct_steps_estimate);
        let picker = Picker::new(config.scheduler, config.seed, depth, steps);
        let rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x5e41_11ce_7133_0001);
        let cores = config.cores.clone().unwrap_or_else(|| Cores::new(config.executors_max));
        let demand = cores.demand();
        let transport_debt = BTreeMap::new();
        let (ready, blocked) = (Vec::new(), Vec::new());
        let wal_cpu = config.cores.as_ref().map(|shared| {
            (Arc::clone(shared), Duration::from_micros(WAL_FLUSH_CPU_US) * config.time_scale)
        });
        let wal = (config.profile.commit_flush_share() > 0.0).then(|| Wal::start(wal_cpu));
        let wrote = BTreeSet::new();
        EngineTask {
            shared,
            config,
            picker,
            rng,
            ready,
            blocked,
            cores,
            demand,
            transport_debt,
            wal,
            wrote,
            last_reply: BTreeMap::new(),
        }
    }

    /// Whether `session`'s statement arriving now follows its previous reply within
    /// [`PING_PONG_US`] (modelled): the service sent it right after that reply, a hand-off
    /// the kernel serves at once (`super::cores`, PING-PONG FIRST).
    fn follows_its_reply(&self, session: SessionId) -> bool {
        let window = Duration::from_micros(PING_PONG_US) * self.config.time_scale;
        let now = Instant::now();
        self.last_reply
            .get(&session)
            .is_some_and(|&sent| now.saturating_duration_since(sent) <= window)
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        loop {
            self.deliver_completions();
            self.run_ready();
            let urgent = self.ready.iter().filter(|q| q.urgent).count();
            self.demand.report(self.ready.len(), urgent);
            let timer = self.shared.engine.borrow().next_timer();
            let deadline = timer.map(|t| self.shared.start + t.saturating_sub(self.shared.base));
            tokio::select! {
                biased;
                _ = self.cores.released() => {}
                cmd = rx.recv() => match cmd {
                    None => return,
                    Some(cmd) => {
                        self.handle(cmd);
                        self.gather(&mut rx).await;
                    }
                },
                _ = sleep_until_opt(deadline), if deadline.is_some() => self.advance_clock(),
            }
        }
    }

    /// Lets same-instant senders run, then drains everything they queued.
    async fn gather(&mut self, rx: &mut mpsc::UnboundedReceiver<Cmd>) {
        for _ in 0..GATHER_YIELDS_MAX {
            tokio::task::yield_now().await;
            let mut got = false;
            while let Ok(cmd) = rx.try_recv() {
                self.handle(cmd);
                got = true;
            }
            if !got {
                return;
            }
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Query { session, sql, params, reply } => {
                let urgent = self.cores.urgent_first() && self.follows_its_reply(session);
                self.ready.push(Queued { session, sql, params, reply, urgent })
            }
            Cmd::Apply { commit, generation } => self.apply_commit(commit, generation),
            Cmd::Close { session, generation } => {
                if generation != *self.shared.generation.borrow() {
                    return; // The session died with a crash already.
                }
                self.wrote.remove(&session);
                self.ready.retain(|q| q.session != session);
                self.blocked.retain(|b| b.0 != session);
                self.transport_debt.remove(&session);
                self.last_reply.remove(&session);
                self.picker.forget(session);
                self.advance_clock();
                self.shared.engine.borrow_mut().close_session(session);
            }
            Cmd::Crash => {
                self.ready.clear();
                self.blocked.clear();
                self.transport_debt.clear();
                self.last_reply.clear();
                // A commit still flushing is lost with its session (its Apply is dropped).
                self.wrote.clear();
                self.shared.engine.borrow_mut().crash_restart();
                self.shared.generation.send_modify(|g| *g += 1);
            }
        }
    }

    fn advance_clock(&mut self) {
        let elapsed = Instant::now().saturating_duration_since(self.shared.start);
        self.shared.engine.borrow_mut().advance_to(self.shared.base + elapsed);
    }

    fn run_ready(&mut self) {
        while !self.ready.is_empty() {
            let Some(core) = self.cores.try_take() else { break };
            let core = core.for_statement();
            // Urgent statements first (none unless the cores serve them first).
            let urgent = self.ready.iter().any(|q| q.urgent);
            let candidate = |q: &&Queued| !urgent || q.urgent;
            let sessions: Vec<SessionId> =
                self.ready.iter().filter(candidate).map(|q| q.session).collect();
            let nth = self.picker.pick(&sessions);
            let index = (self.ready.iter().enumerate())
                .filter(|(_, q)| candidate(q))
                .nth(nth)
                .map(|(i, _)| i)
                .expect("the picker picks one of the candidates");
            let q = self.ready.remove(index);
            self.advance_clock();
            let kind = statement_kind(&q.sql);
            if kind == "commit" && self.flushes(q.session) {
                self.commit_after_flush(q, core);
                continue;
            }
            let step = self.shared.engine.borrow_mut().submit(q.session, &q.sql, &q.params);
            match step {
                Step::Done(response) => {
                    self.record(q.session, kind, &q.sql, outcome(&response));
                    self.note_writes(q.session, kind, &q.sql, response.is_ok());
                    self.send_later(q.session, kind, &q.sql, response, q.reply, Some(core));
                }
                Step::Blocked => {
                    drop(core); // A blocked statement waits without a core.
                    self.record(q.session, kind, &q.sql, "blocked".into());
                    self.blocked.push((q.session, kind, q.sql, q.reply));
                }
            }
            // A statement may have released others (commit, rollback, error).
            self.deliver_completions();
        }
    }

    fn deliver_completions(&mut self) {
        let completions = self.shared.engine.borrow_mut().take_completions();
        for c in completions {
            let Some(i) = self.blocked.iter().position(|b| b.0 == c.session) else {
                continue; // Its connection is gone.
            };
            let (session, kind, sql, reply) = self.blocked.remove(i);
            self.record(session, kind, &sql, format!("completed {}", outcome(&c.response)));
            self.note_writes(session, kind, &sql, c.response.is_ok());
            self.send_later(session, kind, &sql, c.response, reply, None);
        }
    }

    /// Whether the session's COMMIT waits for a WAL flush: the profile models one, its
    /// transaction wrote, and COMMIT would commit it (not answer ROLLBACK).
    fn flushes(&self, session: SessionId) -> bool {
        self.wal.is_some()
            && self.wrote.contains(&session)
            && self.shared.engine.borrow().commits_on_commit(session)
    }

    /// Keeps [`EngineTask::wrote`]: a transaction block's end or start forgets the session; a
    /// successful INSERT, UPDATE, DELETE or row-locking SELECT (PostgreSQL gives each an
    /// xid, whose commit record is flushed) notes it.
    fn note_writes(&mut self, session: SessionId, kind: &str, sql: &str, ok: bool) {
        if self.wal.is_none() {
            return; // Nothing flushes: no need to know (and no SELECT text scanned per statement).
        }
        match kind {
            "begin" | "commit" | "rollback" => {
                self.wrote.remove(&session);
            }
            "insert" | "update" | "delete" if ok => {
                self.wrote.insert(session);
            }
            "select" if ok && locks_rows(sql) => {
                self.wrote.insert(session);
            }
            _ => {}
        }
    }

    /// A COMMIT of a writing transaction (`super::wal`): its draw is spent as any statement's,
    /// holding a core for `core_fraction` of it before the flush, and the last
    /// `commit_flush_share` of its reply's delay waiting for the log's flusher (with the
    /// commits queued behind the flush in progress). Only then is it applied, visible and its
    /// locks released ([`EngineTask::apply_commit`]), and answered.
    fn commit_after_flush(&mut self, commit: Queued, core: CoreGuard) {
        let scale = self.config.time_scale;
        let profile = &self.config.profile;
        let drawn = profile.sample_statement("commit", &commit.sql, &mut self.rng);
        let share = profile.commit_flush_share();
        let reply_after = self.reply_delay(commit.session, "commit", drawn) * scale;
        let flush = (drawn * scale).mul_f64(share).min(reply_after);
        let before_flush = reply_after - flush;
        // The flush is not CPU: the core is held before it only.
        let core_time = (drawn * scale).mul_f64(self.config.core_fraction).min(before_flush);
        let wal = self.wal.clone().expect("flushes() checked the log");
        let (cores, tx) = (Arc::clone(&self.cores), self.shared.tx.clone());
        let generation = *self.shared.generation.borrow();
        tokio::task::spawn_local(async move {
            let started = Instant::now();
            drop(cores.spend(core, core_time).await);
            if before_flush > core_time {
                tokio::time::sleep_until(started + before_flush).await;
            }
            if !flush.is_zero() {
                wal.flush(flush).await;
            }
            let _ = tx.send(Cmd::Apply { commit, generation });
        });
    }

    /// Applies a COMMIT whose flush has ended and answers it at once (its time is spent);
    /// nothing when a crash came in between. Its session is still open: a connection is
    /// closed only after the answer to its last statement (`Server::serve_session` reads no
    /// further while it waits), as a PostgreSQL backend finishes a commit before it notices
    /// that its client is gone.
    fn apply_commit(&mut self, commit: Queued, generation: u64) {
        if generation != *self.shared.generation.borrow() {
            return;
        }
        let Queued { session, sql, params, reply, .. } = commit;
        self.advance_clock();
        let step = self.shared.engine.borrow_mut().submit(session, &sql, &params);
        match step {
            Step::Done(response) => {
                self.record(session, "commit", &sql, outcome(&response));
                self.note_writes(session, "commit", &sql, response.is_ok());
                let _ = reply.send(response);
            }
            Step::Blocked => {
                self.record(session, "commit", &sql, "blocked".into());
                self.blocked.push((session, "commit", sql, reply));
            }
        }
    }

    /// Holds a reply for the statement's service time (its profile class, else its kind, plus
    /// the class's cost of the rows returned);
    /// `core`, when given, is held for that time and given back after.
    fn send_later(
        &mut self,
        session: SessionId,
        kind: &str,
        sql: &str,
        response: Response,
        reply: Reply,
        core: Option<CoreGuard>,
    ) {
        let profile = &self.config.profile;
        let rows = response.as_ref().map_or(0, |result| result.rows.len());
        let drawn =
            profile.sample_statement(kind, sql, &mut self.rng) + profile.row_cost(sql, rows);
        // The reply leaves early enough that it arrives one drawn round trip after the
        // request. A core is busy for `core_fraction` of the draw (the transport is CPU work
        // too): first, from the start; what is left of the reply's delay after it passes off
        // the core, and what is left of the core time after the reply is spent then.
        let reply_after = self.reply_delay(session, kind, drawn) * self.config.time_scale;
        if self.cores.urgent_first() {
            self.last_reply.insert(session, Instant::now() + reply_after);
        }
        let core_time = (drawn * self.config.time_scale).mul_f64(self.config.core_fraction);
        let core_before = core_time.min(reply_after);
        let off_core = reply_after - core_before;
        let core_after = core_time - core_before;
        let generation = *self.shared.generation.borrow();
        let shared = Rc::clone(&self.shared);
        let cores = Arc::clone(&self.cores);
        tokio::task::spawn_local(async move {
            let started = tokio::time::Instant::now();
            // On time-sliced cores the work may be preempted (`Cores::spend`); without a
            // quantum `spend` is one sleep.
            let core = match core {
                Some(core) => {
                    let core = cores.spend(core, core_before).await;
                    if off_core.is_zero() {
                        Some(core)
                    } else {
                        drop(core);
                        // Until the reply's due time, not for `off_core`: the clock moves in
                        // whole ticks, and a second sleep would round up a second time (a
                        // tick more on every statement's reply).
                        tokio::time::sleep_until(started + reply_after).await;
                        None
                    }
                }
                None => {
                    tokio::time::sleep(reply_after).await;
                    None
                }
            };
            if *shared.generation.borrow() == generation {
                let _ = reply.send(response);
            }
            if let Some(core) = core
                && !core_after.is_zero()
            {
                drop(cores.spend(core, core_after).await);
            }
        });
    }

    /// How long a reply waits so that the statement's round trip is its `drawn` time: the
    /// draw minus the caller's transport (`transport_us`, taken by the simulation's own
    /// network). A draw SHORTER than the transport cannot be honoured (a one-row SELECT takes
    /// 20 µs over real loopback, the simulated transport 75 µs on average), so the session
    /// owes the excess, and its later replies OUTSIDE a transaction block, and its COMMIT or
    /// ROLLBACK, leave that much earlier, as far as their own draws allow. Inside a block
    /// nothing pays: the phases the backend times (conflict detection: the lock and the
    /// INSERT of the booking transaction) keep their drawn length, while a booking's total
    /// comes closer to the sum of its draws. Without the debt, room assignment at 1 user was
    /// ~0.6 ms (~1.35×) longer than real; paying at any next statement made the INSERT pay
    /// for the reads before it and conflict detection p50 came out at 0.44 of real.
    fn reply_delay(&mut self, session: SessionId, kind: &str, drawn: Duration) -> Duration {
        let transport = Duration::from_micros(self.config.transport_us);
        let mut debt = self.transport_debt.get(&session).copied().unwrap_or_default();
        let settles = matches!(kind, "commit" | "rollback");
        let pays = settles || (!debt.in_block && kind != "begin");
        let mut delay = drawn.saturating_sub(transport);
        if drawn < transport {
            debt.owed = (debt.owed + (transport - drawn)).min(TRANSPORT_DEBT_MAX);
        } else if pays {
            let paid = delay.min(debt.owed);
            delay -= paid;
            debt.owed -= paid;
        }
        match kind {
            "begin" => debt.in_block = true,
            _ if settles => debt.in_block = false,
            _ => {}
        }
        self.transport_debt.insert(session, debt);
        delay
    }

    fn record(&self, session: SessionId, kind: &'static str, sql: &str, outcome: String) {
        self.shared.record(session, kind, fingerprint(sql), outcome);
    }
}

impl Shared {
    /// Appends a trace event at the server's time now.
    fn record(&self, session: SessionId, kind: &'static str, fingerprint: String, outcome: String) {
        let at_us = Instant::now().saturating_duration_since(self.start).as_micros();
        let at_us = u64::try_from(at_us).unwrap_or(u64::MAX);
        self.trace.push(TraceEvent { at_us, session, kind, fingerprint, outcome });
    }
}

/// Sleeps `limit` (already in simulated time), or forever without one.
async fn sleep_or_never(limit: Option<Duration>) {
    match limit {
        Some(limit) => tokio::time::sleep(limit).await,
        None => std::future::pending().await,
    }
}

/// Whether a SELECT locks the rows it reads (`FOR UPDATE`, `FOR NO KEY UPDATE`, `FOR SHARE`,
/// `FOR KEY SHARE`): PostgreSQL then gives its transaction an xid.
fn locks_rows(sql: &str) -> bool {
    let upper = sql.to_ascii_uppercase();
    ["FOR UPDATE", "FOR NO KEY UPDATE", "FOR SHARE", "FOR KEY SHARE"]
        .iter()
        .any(|clause| upper.contains(clause))
}

fn outcome(response: &Response) -> String {
    match response {
        Ok(_) => "ok".into(),
        Err(e) => e.code.clone(),
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use tokio::io::DuplexStream;

    use super::*;
    use crate::io::Client;
    use crate::{Engine, EngineConfig};

    /// Every statement 100 µs, COMMIT 1,000 µs; × 10 in tokio time: 1 ms and 10 ms. With
    /// `flush_share` 0.6 a writing COMMIT spends 4 ms, then flushes for 6 ms.
    fn server(flush_share: f64, executors: usize) -> Server {
        let mut text = String::new();
        for kind in crate::profile::STATEMENT_KINDS {
            let us = if kind == "commit" { 1_000.0 } else { 100.0 };
            text.push_str(&format!("[kinds.{kind}]\nquantiles = [[0.0, {us}], [1.0, {us}]]\n"));
        }
        if flush_share > 0.0 {
            text.push_str(&format!("[wal]\ncommit_flush_share = {flush_share}\n"));
        }
        let profile = LatencyProfile::from_toml_str(&text, "wal test").unwrap();
        let engine = Rc::new(RefCell::new(Engine::new(EngineConfig::default())));
        let config = ServerConfig {
            seed: 1,
            time_scale: 10,
            profile,
            executors_max: executors,
            ..Default::default()
        };
        Server::start(engine, config)
    }

    fn connect(server: &Server) -> Client<DuplexStream> {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = server.clone();
        tokio::task::spawn_local(async move { server.serve_connection(b).await });
        Client::new(a)
    }

    async fn run(client: &mut Client<DuplexStream>, sql: &str) -> crate::QueryResult {
        client.query(sql, &[]).await.unwrap().unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }

    fn on_local<F: std::future::Future<Output = ()>>(test: F) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&runtime, test);
    }

    /// When a key held by a committing transaction is free for the INSERT waiting on it, ms
    /// after the COMMIT was sent; and how long that COMMIT took.
    async fn waiter_released_after(flush_share: f64) -> (u128, u128) {
        let server = server(flush_share, 2);
        let (mut holder, mut waiter) = (connect(&server), connect(&server));
        run(&mut holder, "CREATE TABLE t (id int primary key)").await;
        for sql in ["BEGIN", "INSERT INTO t VALUES (1)"] {
            run(&mut holder, sql).await;
        }
        run(&mut waiter, "BEGIN").await;
        let waiting = tokio::task::spawn_local(async move {
            let answer = waiter.query("INSERT INTO t VALUES (1)", &[]).await.unwrap();
            (answer, Instant::now())
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let sent = Instant::now();
        run(&mut holder, "COMMIT").await;
        let committed = sent.elapsed().as_millis();
        let (answer, at) = waiting.await.unwrap();
        assert_eq!(answer.unwrap_err().code, "23505", "the key was committed");
        (at.duration_since(sent).as_millis(), committed)
    }

    #[test]
    fn a_commit_becomes_visible_after_its_flush_not_before() {
        on_local(async {
            // Without a flush the COMMIT applies when it starts: the waiter's INSERT fails
            // 1 ms (its own time) later. With one, 4 ms + 6 ms later. The COMMIT itself takes
            // its 10 ms either way.
            assert_eq!(waiter_released_after(0.0).await, (1, 10));
            assert_eq!(waiter_released_after(0.6).await, (11, 10));
        });
    }

    /// How long each of two writing transactions' COMMITs took, the second sent `gap_ms`
    /// after the first; `second_reads_only`: the second wrote nothing.
    async fn two_commits(gap_ms: u64, second_reads_only: bool) -> (u128, u128) {
        let server = server(0.6, 2);
        let (mut first, mut second) = (connect(&server), connect(&server));
        run(&mut first, "CREATE TABLE t (id int)").await;
        for (client, id) in [(&mut first, 1), (&mut second, 2)] {
            run(client, "BEGIN").await;
            match second_reads_only && id == 2 {
                true => run(client, "SELECT id FROM t").await,
                false => run(client, &format!("INSERT INTO t VALUES ({id})")).await,
            };
        }
        let one = tokio::task::spawn_local(async move {
            let sent = Instant::now();
            run(&mut first, "COMMIT").await;
            sent.elapsed().as_millis()
        });
        tokio::time::sleep(Duration::from_millis(gap_ms)).await;
        let sent = Instant::now();
        run(&mut second, "COMMIT").await;
        (one.await.unwrap(), sent.elapsed().as_millis())
    }

    #[test]
    fn a_commit_that_reaches_the_log_during_a_flush_waits_for_the_next() {
        on_local(async {
            // The first flushes 4–10 ms; the second reaches the log at 2 + 4 = 6 ms, waits
            // for the flush in progress, then flushes 10–16: 14 ms for its 10 ms draw.
            assert_eq!(two_commits(2, false).await, (10, 14));
            // Apart, each flushes alone.
            assert_eq!(two_commits(20, false).await, (10, 10));
            // A transaction that wrote nothing does not flush, so nothing holds it up.
            assert_eq!(two_commits(2, true).await, (10, 10));
        });
    }

    #[test]
    fn a_commit_whose_client_left_during_its_flush_still_commits() {
        on_local(async {
            let server = server(0.6, 2);
            let mut leaving = connect(&server);
            run(&mut leaving, "CREATE TABLE t (id int)").await;
            for sql in ["BEGIN", "INSERT INTO t VALUES (1)"] {
                run(&mut leaving, sql).await;
            }
            leaving.send_only("COMMIT", &[]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await; // Into its flush.
            drop(leaving);
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut reader = connect(&server);
            assert_eq!(run(&mut reader, "SELECT id FROM t").await.rows.len(), 1);
        });
    }
}
