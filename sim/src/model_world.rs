//! The real system under test in the turmoil world: backend-core over the model engine.
//!
//! ```text
//!  clients ──HTTP──▶ backend (api_router, ModelDb pool) ──model protocol──▶ db (model::io::Server)
//! ```
//! - The ENGINE lives outside the db host (`Rc<RefCell<Engine>>` owned by the run), so a db
//!   crash + restart keeps committed data: the driver calls `Engine::crash_restart` and the
//!   restarted host starts a fresh `Server` on the same engine.
//! - Before the workload, migrations (guarded schema, or unguarded for strategies that must
//!   not be saved by the EXCLUDE constraint) and the clinic seed run directly on the engine
//!   through a synchronous `Conn` (no network, no time).
//! - The backend gets a seeded id source, a clock at the clinic day's midnight plus modelled
//!   time, and a `WorkCharge` that sleeps a modelled CPU cost (see [`CostModel`]).
//! - Every backend a thread starts shares that thread's parsed-body cache
//!   (`backend_core::booking::body_cache`): the stored bodies are the same for every seed of
//!   a scenario, so they are parsed once per thread instead of once per run. The cache is
//!   keyed by the full text and changes no answer, so sharing it is unobservable.
//! - After the run the invariants read `appointments` with `Engine::query_committed` — from
//!   the database side, never through the backend.
//!
//! - With a profile that has `[cpu] request_us`, every HTTP request first spends one draw of
//!   the backend's own CPU ([`RequestCpu`]); with `[cpu] cores`, that CPU, the rules charge and
//!   every statement run on one shared pool of cores (`model::io::Cores`, [`Machine`]).
//!
//! Not modelled: preemption (processor sharing) on the shared cores.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use backend_core::booking::body_cache::BodyCache;
use backend_core::booking::strategy::Strategy;
use backend_core::booking::work::{Work, WorkCharge};
use backend_core::config::ApiConfig;
use backend_core::db::guard::GuardMode;
use backend_core::db::schema::{SchemaVariant, migration_scripts_for};
use backend_core::db::{BoxFuture, Conn, DbError, Rows, SqlValue};
use backend_core::domain::{Clock, SequentialIds};
use backend_core::http::serve::{ServeLimits, serve};
use backend_core::http::{ApiContext, api_router};
use backend_core::seed::{ClinicSeed, PolicySeed, seed_clinic};
use chrono::{DateTime, Utc};
use model::io::{Cores, Scheduler, Server, ServerConfig};
use model::profile::LatencyProfile;
use model::{Engine, EngineConfig, Step};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scenarios::{Scenario, parse_day_unix_s};

use crate::clinic::clinic_data;
use crate::error::SimError;
use crate::histograms::{Histograms, Metric};
use crate::ids::ClinicIds;
use crate::model_db::{DB_PORT, DbDrops, DeadlockLog, ModelDb, from_model, to_model};
use crate::net;
use crate::observations::Appointment;
use crate::pool::WaitObserver;
use crate::seeds::{Seeds, Stream};
use crate::timescale::{RESOLUTION_US, TIME_SCALE, modelled_us, scaled_ms, scaled_us};
use crate::topology::BACKEND_PORT;

/// Modelled CPU cost of the backend's pure work, charged as a (scaled) sleep.
///
/// RULES EVALUATION (the allocator, with its in-memory interval checks): with a profile that
/// has a `[cpu]` table (written by `roomsim calibrate` from the real backend's Server-Timing
/// `rules`), `rule_checks × a draw from rules_ns_per_check`; without one, the fallback
/// constants below (not measured). CONFLICT DETECTION: the in-memory interval checks are
/// part of the allocator's time, and the real backend's `conflict` phase is database work
/// (the in-transaction INSERT and checks, which the simulation times on its own), so a
/// measured profile charges nothing for it; the fallback charges its constants.
///
/// PRECISION: the clock only moves in 50 µs ticks, so the sleep is the cost rounded to the
/// NEAREST tick (a 30 µs cost sleeps one tick, a 20 µs cost none), and the exact charged cost
/// is recorded in the rules-evaluation histogram at µs precision — what the real backend's
/// Server-Timing measures. Contention: the charge waits for a shared core when there are any;
/// the cost itself does not grow with load.
pub struct CostModel;

impl CostModel {
    /// Fallback: nanoseconds per rule check and per interval examined, plus a fixed 2 µs per
    /// call (invented; used only by a profile without `[cpu]`).
    pub const RULE_CHECK_NS: u64 = 50;
    pub const INTERVAL_NS: u64 = 20;
    pub const FIXED_US: u64 = 2;

    /// The cost of `work` in µs (fractional), drawing from `rng` when the profile measures it.
    pub fn cost_us(work: &Work, profile: &LatencyProfile, rng: &mut ChaCha8Rng) -> f64 {
        match work {
            Work::RulesEvaluation(s) => profile.sample_rules_us(s.rule_checks, rng).unwrap_or(
                (Self::FIXED_US * 1_000 + s.rule_checks * Self::RULE_CHECK_NS) as f64 / 1_000.0,
            ),
            Work::ConflictDetection(_) if profile.has_cpu() => 0.0,
            Work::ConflictDetection(s) => {
                (Self::FIXED_US * 1_000 + s.intervals_examined * Self::INTERVAL_NS) as f64 / 1_000.0
            }
        }
    }

    /// The modelled sleep for a cost: whole ticks, rounded to the nearest.
    pub fn sleep_us(cost_us: f64) -> u64 {
        let ticks = (cost_us / RESOLUTION_US as f64).round() as u64;
        ticks * RESOLUTION_US
    }
}

/// The simulation's [`WorkCharge`]: draws the cost, records rules evaluation exactly, sleeps
/// (holding a core when the profile's cores are shared with the database).
struct ChargeSleep {
    profile: Arc<LatencyProfile>,
    rng: Mutex<ChaCha8Rng>,
    histograms: Arc<Mutex<Histograms>>,
    cores: Option<Arc<Cores>>,
}

impl WorkCharge for ChargeSleep {
    fn charge(&self, work: Work) -> BoxFuture<'static, ()> {
        let cost_us = CostModel::cost_us(&work, &self.profile, &mut self.rng.lock().expect("rng"));
        if matches!(work, Work::RulesEvaluation(_)) {
            let exact_us = cost_us.round() as u64;
            self.histograms.lock().expect("histograms").record(Metric::RulesEvaluation, exact_us);
        }
        let sleep_us = CostModel::sleep_us(cost_us);
        Box::pin(spend_cpu(self.cores.clone(), sleep_us))
    }
}

/// Spends `sleep_us` of modelled CPU: on a shared core when there are shared cores.
async fn spend_cpu(cores: Option<Arc<Cores>>, sleep_us: u64) {
    if sleep_us == 0 {
        return;
    }
    match cores {
        Some(cores) => cores.hold(scaled_us(sleep_us)).await,
        None => tokio::time::sleep(scaled_us(sleep_us)).await,
    }
}

/// Modelled µs the simulation's own transport adds to one HTTP exchange between a client and
/// the backend on a link with no latency: a tick each way on average. `calibrate`'s
/// `request_us` contains the real (loopback) exchange, so this much is taken off each draw,
/// as [`DB_TRANSPORT_US`] is off each statement's (never below 0). Without it the exchange
/// was counted twice: room assignment at 1 user came out ~0.1 ms longer than real.
pub const HTTP_TRANSPORT_US: u64 = 2 * RESOLUTION_US;

/// The backend's own CPU per HTTP request outside statements and rules (`[cpu] request_us`,
/// less [`HTTP_TRANSPORT_US`]): a layer around the router that spends one draw before the
/// handler runs. Without that table nothing is charged (the run's figures are the database's
/// and the rules' alone).
#[derive(Clone)]
struct RequestCpu {
    profile: Arc<LatencyProfile>,
    rng: Arc<Mutex<ChaCha8Rng>>,
    cores: Option<Arc<Cores>>,
}

impl RequestCpu {
    fn layer(self, router: axum::Router) -> axum::Router {
        router.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let cost = self.profile.sample_request_us(&mut *self.rng.lock().expect("rng"));
                let cores = self.cores.clone();
                async move {
                    if let Some(cost_us) = cost {
                        let cost_us = (cost_us - HTTP_TRANSPORT_US as f64).max(0.0);
                        spend_cpu(cores, CostModel::sleep_us(cost_us)).await;
                    }
                    next.run(request).await
                }
            },
        ))
    }
}

/// The cores the database and the backend share, when the profile models one machine.
pub fn shared_cores(profile: &LatencyProfile) -> Option<Arc<Cores>> {
    profile.shared_cores().map(|n| Cores::new(n as usize))
}

/// What the backend's CPU costs are drawn from and spent on.
pub struct Machine {
    pub profile: Arc<LatencyProfile>,
    /// Shared with the db host (`[cpu] cores`), or `None`: the backend's CPU is its own.
    pub cores: Option<Arc<Cores>>,
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

/// A synchronous session straight on the engine (setup only: nothing may block).
struct EngineConn<'e> {
    engine: &'e mut Engine,
    session: model::SessionId,
}

impl Conn for EngineConn<'_> {
    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<Rows, DbError>> {
        let values: Vec<_> = params.iter().map(to_model).collect();
        let result = match self.engine.submit(self.session, sql, &values) {
            Step::Done(response) => crate::model_db::from_response(response),
            Step::Blocked => Err(DbError::new("55000", "a setup statement blocked")),
        };
        Box::pin(std::future::ready(result))
    }
}

/// Parses a strategy name (the error lists the valid names).
pub fn strategy(name: &str) -> Result<Strategy, SimError> {
    name.parse::<Strategy>().map_err(|e| SimError::BadInput(e.to_string()))
}

/// Prepared engines kept per thread (explore runs a range of seeds per worker thread).
const TEMPLATES_MAX: usize = 4;

/// Per memo (entity kind) of a thread's shared body cache: entries and bytes of text kept.
const BODY_CACHE_ENTRIES_MAX: usize = 1024;
const BODY_CACHE_TEXT_BYTES_MAX: usize = 1024 * 1024;

thread_local! {
    /// The parsed-body cache every backend started on this thread uses (see the module doc).
    static BODIES: Arc<BodyCache> =
        Arc::new(BodyCache::with_limits(BODY_CACHE_ENTRIES_MAX, BODY_CACHE_TEXT_BYTES_MAX));
}

thread_local! {
    /// (scenario, strategy) → a migrated, seeded engine to fork. The `Arc<Scenario>` is held,
    /// so its address cannot be reused by another scenario while the entry lives: pointer
    /// identity is a sound key (scenarios are generated per case in the property tests).
    static TEMPLATES: RefCell<Vec<(Arc<Scenario>, Strategy, Engine)>> = const { RefCell::new(Vec::new()) };
}

/// [`prepare_engine`], forked from a per-thread template when one exists for this scenario and
/// strategy: the same state as preparing it afresh with `seed` (see `model::Engine::fork`),
/// without replaying the migrations and the clinic seed for every run.
pub fn prepared_engine(
    scenario: &Arc<Scenario>,
    ids: &ClinicIds,
    strategy: Strategy,
    seed: u64,
) -> Result<Engine, SimError> {
    let forked = TEMPLATES.with_borrow(|templates| {
        let found = templates.iter().find(|(s, st, _)| Arc::ptr_eq(s, scenario) && *st == strategy);
        found.and_then(|(_, _, template)| template.fork(seed))
    });
    if let Some(engine) = forked {
        return Ok(engine);
    }
    let engine = prepare_engine(scenario, ids, strategy, seed)?;
    if let Some(template) = engine.fork(seed) {
        TEMPLATES.with_borrow_mut(|templates| {
            if templates.len() >= TEMPLATES_MAX {
                templates.remove(0);
            }
            templates.push((Arc::clone(scenario), strategy, template));
        });
    }
    Ok(engine)
}

/// A migrated, seeded engine.
pub fn prepare_engine(
    scenario: &Scenario,
    ids: &ClinicIds,
    strategy: Strategy,
    seed: u64,
) -> Result<Engine, SimError> {
    let day_s = parse_day_unix_s(&scenario.clinic.day).expect("validated");
    let mut engine = Engine::new(EngineConfig { seed, epoch_us: day_s * 1_000_000 });
    let session = engine.open_session();
    let variant = if strategy.needs_exclusion_constraint() {
        SchemaVariant::Guarded
    } else {
        SchemaVariant::Unguarded
    };
    for (name, sql) in migration_scripts_for(variant) {
        if let Step::Done(Err(e)) = engine.submit(session, sql, &[]) {
            return Err(SimError::HostFailed(format!(
                "migration {name} failed on the model: {} ({})",
                e.message, e.code
            )));
        }
    }
    let data = clinic_data(scenario, ids);
    let policy = rules_policy(scenario)?;
    let seed_data = ClinicSeed {
        clinic: data.clinic,
        rooms: data.rooms,
        doctors: data.doctors,
        patients: data.patients,
        appointment_types: data.appointment_types,
        policy: Some(policy),
    };
    let now = DateTime::from_timestamp(day_s, 0).expect("a valid day");
    let mut conn = EngineConn { engine: &mut engine, session };
    futures::executor::block_on(seed_clinic(&mut conn, &seed_data, now))
        .map_err(|e| SimError::HostFailed(format!("seeding the model failed: {e}")))?;
    engine.close_session(session);
    Ok(engine)
}

fn rules_policy(scenario: &Scenario) -> Result<PolicySeed, SimError> {
    let body = match scenario.rules.as_str() {
        "default" => backend_core::rules::DEFAULT_RULESET_TOML.to_string(),
        other => {
            return Err(SimError::BadInput(format!(
                "rules: unknown built-in rule set `{other}` (known: default)"
            )));
        }
    };
    Ok(PolicySeed { version: 1, format: "toml".into(), body })
}

/// Registers the db host: a model server on the shared engine, with `profile`'s service times.
pub fn add_db_host(
    sim: &mut turmoil::Sim<'static>,
    engine: Rc<RefCell<Engine>>,
    seeds: &Seeds,
    profile: &LatencyProfile,
    trace_sink: Rc<RefCell<Vec<Server>>>,
    cores: Option<Arc<Cores>>,
) {
    let config = ServerConfig {
        seed: seeds.u64(Stream::DbScheduler),
        time_scale: TIME_SCALE,
        profile: profile.clone(),
        // One machine shared with the backend: the kernel's pick among runnable work, not
        // PCT's favoured sessions (`model::io::sched`).
        scheduler: if cores.is_some() { Scheduler::RandomOrder } else { Scheduler::Pct },
        cores,
        transport_us: DB_TRANSPORT_US,
        ..ServerConfig::default()
    };
    sim.host("db", move || {
        let (engine, config, servers) = (engine.clone(), config.clone(), trace_sink.clone());
        async move {
            let server = Server::start(engine, config);
            servers.borrow_mut().push(server.clone());
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", DB_PORT)).await?;
            loop {
                let (stream, _) = listener.accept().await?;
                let server = server.clone();
                tokio::task::spawn_local(async move {
                    let _ = server.serve_connection(stream).await;
                });
            }
        }
    });
}

/// Where the backend host reports.
pub struct BackendSinks {
    pub histograms: Arc<Mutex<Histograms>>,
    pub deadlocks: DeadlockLog,
    /// Set once the backend listens (the clients start then: see `world::add_clients`).
    pub listening: Rc<Cell<bool>>,
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
    let BackendSinks { histograms, deadlocks, listening } = sinks;
    let day_start_s = parse_day_unix_s(&scenario.clinic.day).expect("validated");
    let backend_seed = seeds.u64(Stream::Backend);
    let cpu_seed = seeds.u64(Stream::BackendCpu);
    let request_seed = seeds.u64(Stream::BackendRequestCpu);
    sim.host("backend", move || {
        let sink = histograms.clone();
        let on_wait: WaitObserver =
            Arc::new(move |us| sink.lock().expect("histograms").record(Metric::PoolWait, us));
        let db = ModelDb::new(
            scenario.backend.pool_size,
            scaled_ms(scenario.backend.acquire_timeout_ms),
            on_wait,
            deadlocks.clone(),
            guard,
            drops.clone(),
        );
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
        }))
        .with_body_cache(BODIES.with(Arc::clone));
        let request_cpu = RequestCpu {
            profile: profile.clone(),
            // Its own stream: charging requests must not shift the rules-cost draws.
            rng: Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(request_seed))),
            cores: cores.clone(),
        };
        // The accept loop production runs, with its read limits in simulated time.
        let limits = ServeLimits {
            header_read_timeout: scaled_ms(SERVE_READ_TIMEOUT_MS),
            body_read_timeout: scaled_ms(SERVE_READ_TIMEOUT_MS),
            body_bytes_max: config_body_bytes_max,
        };
        let router = request_cpu.layer(api_router(ctx));
        let listening = listening.clone();
        async move {
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", BACKEND_PORT)).await?;
            listening.set(true);
            let shutdown = std::future::pending();
            serve(net::TurmoilListener(listener), router, limits, shutdown).await?;
            Ok(())
        }
    });
}

/// Every appointment row, read from the committed state.
pub fn final_rows(engine: &mut Engine, ids: &ClinicIds) -> Result<Vec<Appointment>, SimError> {
    let sql = "SELECT id, room_id, doctor_id, patient_id, appointment_type, starts_at, ends_at, \
               blocked_until, status, created_at FROM appointments ORDER BY id";
    let result = engine.query_committed(sql).map_err(|e| {
        SimError::HostFailed(format!("reading appointments from the model: {}", e.message))
    })?;
    let minute = |v: &SqlValue| match v {
        SqlValue::Timestamp(t) => (t.timestamp().rem_euclid(86_400) / 60) as u32,
        _ => 0,
    };
    let text = |v: &SqlValue| match v {
        SqlValue::Text(t) => t.clone(),
        SqlValue::Uuid(u) => ids.name(u),
        other => format!("{other:?}"),
    };
    let rows = result.rows.iter().map(|row| {
        let row: Vec<SqlValue> = row.iter().map(from_model).collect();
        let status = text(&row[8]);
        Appointment {
            id: match &row[0] {
                SqlValue::Uuid(u) => u.to_string(),
                other => format!("{other:?}"),
            },
            room: match &row[1] {
                SqlValue::Null => None,
                v => Some(text(v)),
            },
            doctor: text(&row[2]),
            patient: text(&row[3]),
            appointment_type: text(&row[4]),
            start_min: minute(&row[5]),
            end_min: minute(&row[6]),
            blocked_until_min: minute(&row[7]),
            active: matches!(status.as_str(), "held" | "booked" | "checked_in" | "room_pending"),
            txn: format!("status {status}"),
            written_at_us: match &row[9] {
                SqlValue::Timestamp(t) => (t.timestamp_micros().rem_euclid(86_400_000_000)) as u64,
                _ => 0,
            },
        }
    });
    Ok(rows.collect())
}
