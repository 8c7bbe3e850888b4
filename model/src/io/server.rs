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
use std::collections::BTreeMap;
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
    Query { session: SessionId, sql: String, params: Vec<Value>, reply: Reply },
    Close { session: SessionId, generation: u64 },
    Crash,
}

struct Queued {
    session: SessionId,
    sql: String,
    params: Vec<Value>,
    reply: Reply,
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
}

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
        EngineTask { shared, config, picker, rng, ready, blocked, cores, demand, transport_debt }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        loop {
            self.deliver_completions();
            self.run_ready();
            self.demand.set(self.ready.len());
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
                self.ready.push(Queued { session, sql, params, reply })
            }
            Cmd::Close { session, generation } => {
                if generation != *self.shared.generation.borrow() {
                    return; // The session died with a crash already.
                }
                self.ready.retain(|q| q.session != session);
                self.blocked.retain(|b| b.0 != session);
                self.transport_debt.remove(&session);
                self.picker.forget(session);
                self.advance_clock();
                self.shared.engine.borrow_mut().close_session(session);
            }
            Cmd::Crash => {
                self.ready.clear();
                self.blocked.clear();
                self.transport_debt.clear();
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
            let sessions: Vec<SessionId> = self.ready.iter().map(|q| q.session).collect();
            let q = self.ready.remove(self.picker.pick(&sessions));
            self.advance_clock();
            let kind = statement_kind(&q.sql);
            let step = self.shared.engine.borrow_mut().submit(q.session, &q.sql, &q.params);
            match step {
                Step::Done(response) => {
                    self.record(q.session, kind, &q.sql, outcome(&response));
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
            self.send_later(session, kind, &sql, c.response, reply, None);
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
