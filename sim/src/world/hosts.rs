//! The hosts of the world besides the clients: the backend and the db.
//!
//! ```text
//!  clients ──HTTP──▶ backend (api_router, ModelDb pool) ──model protocol──▶ db (model::io::Server)
//! ```
//! - The db host serves the model engine of the run (`engine`) with the profile's service
//!   times; a restarted db host starts a fresh `Server` on the same engine.
//! - The backend host runs backend-core's `api_router` behind production's accept loop, over
//!   a pool of model sessions (`model_db`), with a seeded id source, a clock at the clinic
//!   day's midnight plus modelled time, and the modelled CPU of `cpu`.
//! - Every backend a thread starts shares that thread's parsed-body cache
//!   (`backend_core::booking::body_cache`): the stored bodies are the same for every seed of
//!   a scenario, so they are parsed once per thread instead of once per run. The cache is
//!   keyed by the full text and changes no answer, so sharing it is unobservable.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use backend_core::booking::body_cache::BodyCache;
use backend_core::booking::strategy::Strategy;
use backend_core::config::ApiConfig;
use backend_core::db::guard::GuardMode;
use backend_core::domain::{Clock, SequentialIds};
use backend_core::http::serve::{ConnectionTask, ServeLimits, serve_spawning};
use backend_core::http::{ApiContext, api_router};
use chrono::{DateTime, Utc};
use model::Engine;
use model::io::{Cores, Scheduler, Server, ServerConfig};
use model::profile::LatencyProfile;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scenarios::{Scenario, parse_day_unix_s};

use crate::error::SimError;
use crate::histograms::{Histograms, Metric};
use crate::ids::ClinicIds;
use crate::model_db::{
    DB_PORT, DbDrops, DbObservers, DeadlockLog, ModelDb, ReplyHook, StatementObserver, StatementTap,
};
use crate::net;
use crate::pool::WaitObserver;
use crate::seeds::{Seeds, Stream};
use crate::timescale::{RESOLUTION_US, TIME_SCALE, modelled_us, scaled_ms};
use crate::topology::BACKEND_PORT;

use super::config::RunConfig;
use super::cpu::{self, ChargeSleep, Machine, RequestCpu};
use super::engine;
use super::shared::{DbSide, Shared};

/// Registers the model backend and the db host; the db side the driver and results use.
pub(super) fn add_model_hosts(
    sim: &mut turmoil::Sim<'static>,
    config: &RunConfig,
    seeds: &Seeds,
    shared: &Shared,
) -> Result<DbSide, SimError> {
    let strategy = engine::strategy(&config.strategy)?;
    let ids = ClinicIds::new(&config.scenario);
    let engine =
        engine::prepared_engine(&config.scenario, &ids, strategy, seeds.u64(Stream::Engine))?;
    let engine = Rc::new(RefCell::new(engine));
    let servers = Rc::new(RefCell::new(Vec::new()));
    let deadlocks: DeadlockLog = Arc::new(Mutex::new(Vec::new()));
    let cores = cpu::shared_cores(&config.profile);
    let opened = Rc::new(RefCell::new(Vec::new()));
    let tap = StatementTap::default();
    let db_sinks = DbSinks { servers: servers.clone(), opened: opened.clone() };
    let core_fraction =
        config.profile.backend_cpu.as_ref().map_or(1.0, |cpu| cpu.statement_core_fraction());
    let db_cores = DbCores { cores: cores.clone(), core_fraction };
    add_db_host(sim, engine.clone(), seeds, &config.profile.statements, db_sinks, db_cores);
    let sinks = BackendSinks {
        histograms: shared.histograms.clone(),
        deadlocks: deadlocks.clone(),
        listening: shared.backend_listening.clone(),
        tap: Some(tap.clone()),
        accepted: shared.connections_accepted.clone(),
        metrics: shared.backend_metrics.clone(),
    };
    let machine = Machine { profile: config.profile.clone(), cores: cores.clone() };
    let backend = BackendSpec { scenario: config.scenario.clone(), strategy, guard: config.guard };
    add_backend_host(sim, backend, seeds, sinks, machine);
    Ok(DbSide { engine, servers, deadlocks, opened, tap, cores })
}

/// Modelled µs the simulation's transport adds to one statement's round trip over a link
/// with no latency: 0 to 2 ticks depending on the (random) order turmoil polls the hosts in,
/// one tick on average, plus half a tick because tokio rounds every sleep UP to a whole tick
/// (taking half a tick off turns that into rounding to the nearest). Taken off every drawn
/// service time, because the profile's times are client-side round trips that already contain
/// the (loopback) transport. `tests/timescale.rs` checks that the mean round trip equals the
/// mean draw.
pub const DB_TRANSPORT_US: u64 = RESOLUTION_US + RESOLUTION_US / 2;

/// The backend's header and body read timeouts, modelled ms (`roomsim serve`'s defaults).
pub const SERVE_READ_TIMEOUT_MS: u64 = 10_000;

/// The clinic day's midnight plus modelled time.
struct SimClock {
    day_start_s: i64,
}

impl Clock for SimClock {
    fn now(&self) -> DateTime<Utc> {
        let us = modelled_us(turmoil::sim_elapsed().unwrap_or_default()) as i64;
        DateTime::from_timestamp_micros(self.day_start_s * 1_000_000 + us).expect("a valid day")
    }
}

/// Per memo (entity kind) of a thread's shared body cache: entries and bytes of text kept.
const BODY_CACHE_ENTRIES_MAX: usize = 1024;
const BODY_CACHE_TEXT_BYTES_MAX: usize = 1024 * 1024;

thread_local! {
    /// The parsed-body cache every backend started on this thread uses (see the module doc).
    static BODIES: Arc<BodyCache> =
        Arc::new(BodyCache::with_limits(BODY_CACHE_ENTRIES_MAX, BODY_CACHE_TEXT_BYTES_MAX));
}

/// The cores the db host's statements run on: shared ones (`None`: its own), and the share of
/// each statement's draw that holds one (`[cpu] statement_core_fraction`).
pub struct DbCores {
    pub cores: Option<Arc<Cores>>,
    pub core_fraction: f64,
}

/// Registers the db host: a model server on the shared engine, with `profile`'s service times.
pub fn add_db_host(
    sim: &mut turmoil::Sim<'static>,
    engine: Rc<RefCell<Engine>>,
    seeds: &Seeds,
    profile: &LatencyProfile,
    sinks: DbSinks,
    db_cores: DbCores,
) {
    let DbCores { cores, core_fraction } = db_cores;
    let DbSinks { servers: trace_sink, opened } = sinks;
    let config = ServerConfig {
        seed: seeds.u64(Stream::DbScheduler),
        time_scale: TIME_SCALE,
        profile: profile.clone(),
        // One machine shared with the backend: the kernel's pick among runnable work, not
        // PCT's favoured sessions (`model::io::sched`).
        scheduler: if cores.is_some() { Scheduler::RandomOrder } else { Scheduler::Pct },
        cores,
        transport_us: DB_TRANSPORT_US,
        core_fraction,
        ..ServerConfig::default()
    };
    sim.host("db", move || {
        let (engine, config, servers) = (engine.clone(), config.clone(), trace_sink.clone());
        let opened = opened.clone();
        async move {
            let server = Server::start(engine, config);
            servers.borrow_mut().push(server.clone());
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", DB_PORT)).await?;
            loop {
                let (stream, peer) = listener.accept().await?;
                let server = server.clone();
                let opened = opened.clone();
                tokio::task::spawn_local(async move {
                    // `serve_connection` opens the engine session in this same poll, before
                    // its first await: `opened` is in session-id order.
                    opened.borrow_mut().push(peer);
                    let _ = server.serve_connection(stream).await;
                });
            }
        }
    });
}

/// Where the db host reports: its servers (one per start) and the peer address of every
/// session it opened, in opening order (for the pair patterns, `crate::model_db`'s tap).
pub struct DbSinks {
    pub servers: Rc<RefCell<Vec<Server>>>,
    pub opened: Rc<RefCell<Vec<std::net::SocketAddr>>>,
}

/// Where the backend host reports.
pub struct BackendSinks {
    pub histograms: Arc<Mutex<Histograms>>,
    pub deadlocks: DeadlockLog,
    /// Set once the backend listens (the clients start then: see `clients::add_clients`).
    pub listening: Rc<Cell<bool>>,
    /// Notes every statement sent (`crate::model_db`'s tap), when given.
    pub tap: Option<StatementTap>,
    /// Counts the HTTP connections the backend accepted, over every incarnation.
    pub accepted: Arc<std::sync::atomic::AtomicU64>,
    /// The backend's counters (`/metrics`), over every incarnation.
    pub metrics: Arc<backend_core::metrics::Metrics>,
}

/// What the backend host runs.
pub struct BackendSpec {
    pub scenario: Arc<Scenario>,
    pub strategy: Strategy,
    /// The transaction guard around every pooled session (backend-core's, as in production).
    pub guard: GuardMode,
}

/// Registers the backend host: backend-core's router over the model pool.
pub fn add_backend_host(
    sim: &mut turmoil::Sim<'static>,
    backend: BackendSpec,
    seeds: &Seeds,
    sinks: BackendSinks,
    machine: Machine,
) {
    let BackendSpec { scenario, strategy, guard } = backend;
    let drops = DbDrops::new(&scenario, seeds.rng(Stream::DbDrops));
    let Machine { profile, cores } = machine;
    let BackendSinks { histograms, deadlocks, listening, tap, accepted, metrics } = sinks;
    let day_start_s = parse_day_unix_s(&scenario.clinic.day).expect("validated");
    let backend_seed = seeds.u64(Stream::Backend);
    let cpu_seed = seeds.u64(Stream::BackendCpu);
    let request_seed = seeds.u64(Stream::BackendRequestCpu);
    let warm_clinic = scenario.backend.warm_policy_cache.then(|| ClinicIds::new(&scenario).clinic);
    sim.host("backend", move || {
        let sink = histograms.clone();
        let on_wait: WaitObserver =
            Arc::new(move |us| sink.lock().expect("histograms").record(Metric::PoolWait, us));
        let sink = histograms.clone();
        let on_statement: StatementObserver =
            Arc::new(move |sql, us| sink.lock().expect("histograms").record_statement(sql, us));
        let workers = cpu::backend_workers(&profile);
        let resumes = profile.backend_cpu.as_ref().is_some_and(|cpu| cpu.resume_share() > 0.0);
        let after_reply = resumes.then(|| {
            let resume = cpu::ResumeCpu { cores: cores.clone(), workers: workers.clone() };
            let hook: ReplyHook = Arc::new(move || {
                let resume = resume.clone();
                Box::pin(async move { resume.after_reply().await })
            });
            hook
        });
        let observers =
            DbObservers { on_wait, on_statement, deadlocks: deadlocks.clone(), after_reply };
        let db = ModelDb::with_tap(
            scenario.backend.pool_size,
            scaled_ms(scenario.backend.acquire_timeout_ms),
            observers,
            guard,
            drops.clone(),
            tap.clone(),
        );
        let in_flight = cpu::InFlight::default();
        let mut config = ApiConfig { strategy, ..ApiConfig::default() };
        let config_body_bytes_max = config.body_bytes_max;
        config.retry.retries_max = scenario.backend.db_retries_max;
        // Backoff is a modelled duration: stretch it like every other one.
        config.retry.backoff_base_ms *= TIME_SCALE as u64;
        config.retry.backoff_cap_ms *= TIME_SCALE as u64;
        let ctx = ApiContext::new(
            Arc::new(db),
            Arc::new(SimClock { day_start_s }),
            Arc::new(SequentialIds::new(backend_seed)),
            config,
            backend_seed,
        )
        .with_work_charge(Arc::new(ChargeSleep {
            profile: profile.clone(),
            // A restarted backend starts its cost stream over, like every other seeded part.
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(cpu_seed)),
            histograms: histograms.clone(),
            cores: cores.clone(),
            workers: workers.clone(),
            in_flight: in_flight.clone(),
        }))
        .with_body_cache(BODIES.with(Arc::clone))
        .with_metrics(metrics.clone());
        let request_cpu = RequestCpu {
            profile: profile.clone(),
            // Its own stream: charging requests must not shift the rules-cost draws.
            rng: Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(request_seed))),
            cores: cores.clone(),
            workers,
            in_flight,
        };
        // The accept loop production runs, with its read limits in simulated time.
        let limits = ServeLimits {
            header_read_timeout: scaled_ms(SERVE_READ_TIMEOUT_MS),
            body_read_timeout: scaled_ms(SERVE_READ_TIMEOUT_MS),
            body_bytes_max: config_body_bytes_max,
        };
        let warm = warm_clinic.map(|clinic| (ctx.clone(), clinic));
        let router = cpu::record_rules_per_request(api_router(ctx), histograms.clone());
        let router = request_cpu.layer(router);
        let listening = listening.clone();
        let accepted = accepted.clone();
        async move {
            // `[backend] warm_policy_cache`: the policy read before the clients start (they
            // start once `listening` is set), as a running service holds it. A failure leaves
            // the cache cold: the first booking reads the policy itself.
            if let Some((ctx, clinic)) = warm
                && let Err(error) = ctx.warm_policy(clinic).await
            {
                tracing::warn!(%error, "warming the policy cache failed");
            }
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", BACKEND_PORT)).await?;
            listening.set(true);
            let shutdown = std::future::pending();
            let listener = net::TurmoilListener { listener, accepted };
            // On the host's LocalSet: a crash drops the connections in the order they were
            // accepted (see `serve`'s module notes), whatever task ids tokio handed out.
            let spawn = |task: ConnectionTask| drop(tokio::task::spawn_local(task));
            serve_spawning(listener, router, limits, shutdown, spawn).await?;
            Ok(())
        }
    });
}
