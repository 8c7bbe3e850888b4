//! The turmoil world of one run: hosts, workload, faults, and the checks during and after.
//!
//! ```text
//!  clients (1 host, one task per booker) ──HTTP/turmoil TCP──▶ backend ──pool──▶ db
//! ```
//! - `clients` runs every booker as a task on one host (turmoil's per-step cost grows with the
//!   host count); each attempt is a fresh HTTP/1 connection (`net`).
//! - `backend` serves backend-core's `api_router` over a pool of model sessions
//!   (`model_world`, `model_db`); `db` runs the model engine's server (`model::io::Server`)
//!   on an engine owned by the run, so a db crash keeps committed data. `--backend stand-in`
//!   swaps backend and db for the harness self-test of `stand_in` (no db host).
//!
//! The master seed gives turmoil's `rng_seed` and every other stream (see `seeds`); the epoch
//! is fixed at the scenario's clinic day. Every modelled duration is stretched by
//! `TIME_SCALE` (see `timescale`) and un-stretched before it is recorded.
//!
//! Faults are applied by the driver loop between `sim.step()` calls, at their modelled times:
//! message loss sets turmoil's link fail rate on clients↔backend or backend↔db (a failed send
//! breaks that TCP connection); a backend crash is `sim.crash` then `sim.bounce` (its pool
//! starts empty); a partition cuts backend↔db; a db crash aborts every open transaction
//! (`Engine::crash_restart`) and restarts the db host on the same engine. On the stand-in
//! backend the db faults are recorded in the trace but act on nothing.
//!
//! Invariants are checked twice: DURING the run where cheap (`live`: raw db errors at
//! response time, 40P01s as the backend receives them, overlapping 201s at the second 201's
//! arrival, each stamped with its modelled time), and AFTER it from the final database state
//! read on the database side (`invariants`), which stay authoritative.
//!
//! Not modelled: CPU time of the backend beyond its charged work (`model_world::CostModel`),
//! HTTP keep-alive, clock skew between hosts.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use scenarios::{Fault, Link, Scenario, parse_day_unix_s};

use backend_core::booking::strategy::Strategy;
use backend_core::db::guard::GuardMode;
use model::Engine;
use model::io::Server;
use model::profile::LatencyProfile;

use crate::client_faults::ClientFaults;
use crate::error::SimError;
use crate::histograms::{Histograms, Metric};
use crate::ids::ClinicIds;
use crate::invariants;
use crate::live::{Acknowledged, LiveChecker};
use crate::model_db::DeadlockLog;
use crate::model_world;
use crate::net;
use crate::observations::{
    AnswerDetail, Appointment, BookingKey, BookingRecord, DbObservations, OfferedAlternative,
    Outcome,
};
use crate::outcome::{Counts, RunOutcome, VIOLATIONS_KEPT_MAX};
use crate::pool::{ConnectFn, Pool, WaitObserver};
use crate::seeds::{Seeds, Stream};
use crate::stand_in;
use crate::timescale::{TICK, TIME_SCALE, modelled_us, scaled_ms, scaled_us};
pub use crate::topology::{BACKEND_PORT, BackendKind};
use crate::trace::{Event, SharedTrace, Trace};
use crate::workload::{self, PlannedBooking};

/// Client backoff between attempts, modelled µs per attempt number.
pub const CLIENT_BACKOFF_US: u64 = 500;

/// What to run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub scenario: Arc<Scenario>,
    pub seed: u64,
    pub strategy: String,
    /// The backend's transaction guard: the production one, or a planted broken variant.
    pub guard: GuardMode,
    /// Keep every trace event (for `--trace`); the hash is computed either way.
    pub keep_trace: bool,
    pub backend: BackendKind,
    /// Service times of the model database (`--profile FILE`; default
    /// `model/profiles/default.toml`). Ignored by the stand-in backend.
    pub profile: Arc<LatencyProfile>,
}

/// The committed default latency profile, parsed once per process.
pub fn default_profile() -> Arc<LatencyProfile> {
    static DEFAULT: OnceLock<Arc<LatencyProfile>> = OnceLock::new();
    DEFAULT.get_or_init(|| Arc::new(LatencyProfile::default_profile())).clone()
}

/// `--profile FILE`, or the committed default; the error names the file and the field.
pub fn load_profile(path: Option<&std::path::Path>) -> Result<Arc<LatencyProfile>, SimError> {
    match path {
        None => Ok(default_profile()),
        Some(path) => LatencyProfile::load(path)
            .map(Arc::new)
            .map_err(|e| SimError::BadInput(format!("--profile: {e}"))),
    }
}

/// A finished run.
#[derive(Debug)]
pub struct RunResult {
    pub outcome: RunOutcome,
    pub events: Vec<Event>,
    /// turmoil steps the run took (one per tick): what stepping alone costs, see
    /// `benches/floor.rs`.
    pub steps: u64,
}

/// The strategies a backend can run: (name, broken).
pub fn strategies(backend: BackendKind) -> Vec<(&'static str, bool)> {
    match backend {
        BackendKind::Model => Strategy::ALL.iter().map(|s| (s.name(), s.is_broken())).collect(),
        BackendKind::StandIn => stand_in::STRATEGIES.to_vec(),
    }
}

/// Checks a strategy name; the error lists the valid names.
pub fn check_strategy(name: &str, backend: BackendKind) -> Result<(), SimError> {
    if strategies(backend).iter().any(|(n, _)| *n == name) {
        return Ok(());
    }
    let known: Vec<_> = strategies(backend).iter().map(|(n, _)| *n).collect();
    Err(SimError::BadInput(format!("unknown strategy `{name}` (known: {})", known.join(", "))))
}

/// The database side of one run.
enum DbSide {
    StandIn(Arc<Mutex<stand_in::Store>>),
    Model { engine: Rc<RefCell<Engine>>, servers: Rc<RefCell<Vec<Server>>>, deadlocks: DeadlockLog },
}

struct Shared {
    trace: SharedTrace,
    histograms: Arc<Mutex<Histograms>>,
    records: Rc<RefCell<Vec<Option<BookingRecord>>>>,
    /// In-run invariant checks (clients and the driver feed it; all on this thread).
    live: Rc<RefCell<LiveChecker>>,
    /// The backend listens (set by its host after binding; the clients wait for it).
    backend_listening: Rc<Cell<bool>>,
    /// Sessions still inside a transaction once the run was quiet (see `settle`).
    open_at_end: RefCell<Vec<String>>,
    client_faults: Rc<ClientFaults>,
}

/// Runs one seed.
pub fn run(config: &RunConfig) -> Result<RunResult, SimError> {
    check_strategy(&config.strategy, config.backend)?;
    let scenario = config.scenario.clone();
    let seeds = Seeds::new(config.seed);
    let plan = workload::plan(&scenario, &mut seeds.rng(Stream::Workload));
    let shared = Shared {
        trace: Trace::shared(config.keep_trace),
        histograms: Arc::new(Mutex::new(Histograms::default())),
        records: Rc::new(RefCell::new(vec![None; plan.len()])),
        live: Rc::new(RefCell::new(LiveChecker::default())),
        backend_listening: Rc::new(Cell::new(false)),
        open_at_end: RefCell::new(Vec::new()),
        client_faults: Rc::new(ClientFaults::new(&scenario, seeds.rng(Stream::ClientFaults))),
    };
    let mut sim = build_sim(&scenario, &seeds);
    let side = match config.backend {
        BackendKind::StandIn => {
            let store = Arc::new(Mutex::new(stand_in::Store::default()));
            add_backend(&mut sim, config, &seeds, &shared, store.clone());
            DbSide::StandIn(store)
        }
        BackendKind::Model => add_model_hosts(&mut sim, config, &seeds, &shared)?,
    };
    // The model backend's cost model records rules evaluation itself, at µs precision.
    let rules_from_header = !matches!(config.backend, BackendKind::Model);
    add_clients(&mut sim, &scenario, plan.clone(), &shared, rules_from_header);
    drive(&mut sim, &scenario, &shared, &side)?;
    let steps = (sim.elapsed().as_nanos() / TICK.as_nanos()) as u64;
    drop(sim);
    finish(config, &plan, shared, &side, steps)
}

fn add_model_hosts(
    sim: &mut turmoil::Sim<'static>,
    config: &RunConfig,
    seeds: &Seeds,
    shared: &Shared,
) -> Result<DbSide, SimError> {
    let strategy = model_world::strategy(&config.strategy)?;
    let ids = ClinicIds::new(&config.scenario);
    let engine = model_world::prepared_engine(&config.scenario, &ids, strategy, config.seed)?;
    let engine = Rc::new(RefCell::new(engine));
    let servers = Rc::new(RefCell::new(Vec::new()));
    let deadlocks: DeadlockLog = Arc::new(Mutex::new(Vec::new()));
    let cores = model_world::shared_cores(&config.profile);
    model_world::add_db_host(
        sim,
        engine.clone(),
        seeds,
        &config.profile,
        servers.clone(),
        cores.clone(),
    );
    let sinks = model_world::BackendSinks {
        histograms: shared.histograms.clone(),
        deadlocks: deadlocks.clone(),
        listening: shared.backend_listening.clone(),
    };
    let machine = model_world::Machine { profile: config.profile.clone(), cores };
    let backend = model_world::BackendSpec {
        scenario: config.scenario.clone(),
        strategy,
        guard: config.guard,
    };
    model_world::add_backend_host(sim, backend, seeds, sinks, machine);
    Ok(DbSide::Model { engine, servers, deadlocks })
}

/// The turmoil world every run steps, before any host is added (public for `benches/floor.rs`,
/// which steps it with idle hosts to measure turmoil's own cost per step).
pub fn build_sim(scenario: &Scenario, seeds: &Seeds) -> turmoil::Sim<'static> {
    let day_s = parse_day_unix_s(&scenario.clinic.day).expect("validated by the scenarios crate");
    let network = &scenario.network;
    turmoil::Builder::new()
        .rng_seed(seeds.u64(Stream::Turmoil))
        .epoch(UNIX_EPOCH + Duration::from_secs(day_s as u64))
        .tick_duration(TICK)
        .simulation_duration(scaled_ms(scenario.limits.simulation_ms_max))
        .min_message_latency(scaled_us(network.latency_us_min))
        .max_message_latency(scaled_us(network.latency_us_max))
        .enable_random_order()
        .build()
}

fn add_backend(
    sim: &mut turmoil::Sim<'static>,
    config: &RunConfig,
    seeds: &Seeds,
    shared: &Shared,
    store: Arc<Mutex<stand_in::Store>>,
) {
    let scenario = config.scenario.clone();
    let naive = config.strategy == "naive";
    let trace = shared.trace.clone();
    let histograms = shared.histograms.clone();
    let db_rng = Arc::new(Mutex::new(seeds.rng(Stream::DbScheduler)));
    let listening = shared.backend_listening.clone();
    sim.host("backend", move || {
        let listening = listening.clone();
        let connect: ConnectFn<()> = Arc::new(|| Box::pin(async { Ok(()) }));
        let sink = histograms.clone();
        let on_wait: WaitObserver =
            Arc::new(move |us| sink.lock().expect("histograms").record(Metric::PoolWait, us));
        let backend = stand_in::Backend {
            scenario: scenario.clone(),
            store: store.clone(),
            pool: Pool::new(
                scenario.backend.pool_size,
                scaled_ms(scenario.backend.acquire_timeout_ms),
                connect,
                on_wait,
            ),
            rng: db_rng.clone(),
            trace: trace.clone(),
            naive,
            ids: Arc::new(ClinicIds::new(&scenario)),
        };
        async move {
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", BACKEND_PORT)).await?;
            listening.set(true);
            axum::serve(net::TurmoilListener(listener), stand_in::router(backend)).await?;
            Ok(())
        }
    });
}

fn add_clients(
    sim: &mut turmoil::Sim<'static>,
    scenario: &Arc<Scenario>,
    plan: Vec<PlannedBooking>,
    shared: &Shared,
    rules_from_header: bool,
) {
    let scenario = scenario.clone();
    let records = shared.records.clone();
    let trace = shared.trace.clone();
    let histograms = shared.histograms.clone();
    let live = shared.live.clone();
    let ids = Arc::new(ClinicIds::new(&scenario));
    let listening = shared.backend_listening.clone();
    let faults = shared.client_faults.clone();
    sim.client("clients", async move {
        // The workload starts once the backend listens, as a load test starts against a
        // service that is up: a client polled before the backend host in the first step
        // found no listener, lost its first attempt and retried after the backoff, which
        // added ~0.5 ms to room assignment in about 40 % of 1-user runs on loopback.
        while !listening.get() {
            tokio::time::sleep(TICK).await;
        }
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        for booker in 0..scenario.workload.bookers {
            let mine: Vec<_> = plan.iter().filter(|b| b.booker == booker).cloned().collect();
            let ctx = ClientCtx {
                scenario: scenario.clone(),
                ids: ids.clone(),
                records: records.clone(),
                trace: trace.clone(),
                histograms: histograms.clone(),
                live: live.clone(),
                faults: faults.clone(),
                start,
                rules_from_header,
            };
            tasks.push(tokio::task::spawn_local(run_booker(mine, ctx)));
        }
        for task in tasks {
            task.await?;
        }
        Ok(())
    });
}

#[derive(Clone)]
struct ClientCtx {
    scenario: Arc<Scenario>,
    ids: Arc<ClinicIds>,
    records: Rc<RefCell<Vec<Option<BookingRecord>>>>,
    trace: SharedTrace,
    histograms: Arc<Mutex<Histograms>>,
    live: Rc<RefCell<LiveChecker>>,
    faults: Rc<ClientFaults>,
    start: tokio::time::Instant,
    /// Record `rules` from Server-Timing (false: the backend's cost model records it).
    rules_from_header: bool,
}

fn now_us() -> u64 {
    modelled_us(turmoil::sim_elapsed().unwrap_or_default())
}

async fn run_booker(bookings: Vec<PlannedBooking>, ctx: ClientCtx) {
    for booking in bookings {
        let intended = ctx.start + scaled_us(booking.send_at_us);
        tokio::time::sleep_until(intended).await;
        let record = book_with_retries(&booking, &ctx).await;
        // Room assignment is the latency of bookings that were assigned a room; 409s and
        // room_pending bookings are counted in the report, not averaged in.
        if matches!(record.outcome, Outcome::Created { room: Some(_), .. }) {
            let latency_us = modelled_us(intended.elapsed());
            ctx.histograms.lock().expect("histograms").record(Metric::RoomAssignment, latency_us);
        }
        ctx.records.borrow_mut()[booking.index as usize] = Some(record);
    }
}

async fn book_with_retries(b: &PlannedBooking, ctx: &ClientCtx) -> BookingRecord {
    let w = &ctx.scenario.workload;
    let body = request_body(b, &ctx.scenario, &ctx.ids);
    let mut headers = Vec::new();
    if let Some(key) = &b.idempotency_key {
        headers.push(("idempotency-key", key.clone()));
    }
    let mut leaked = None;
    let mut outcome = Outcome::Unanswered;
    let mut detail = AnswerDetail::default();
    let (mut attempts, mut timeouts, mut lost) = (0, 0, 0);
    for attempt in 0..=w.client_retries_max {
        if attempt > 0 {
            tokio::time::sleep(scaled_us(CLIENT_BACKOFF_US * attempt as u64)).await;
        }
        attempts += 1;
        trace(ctx, format!("send #{} attempt {attempt}", b.index));
        let sent_at_us = now_us();
        let faults = ctx.faults.draw(sent_at_us);
        let request = net::post_json("backend", "/v1/appointments", &headers, &body);
        // A client that gives up closes its connection at a random moment of the request
        // (`client_faults`); for the backend it is a disconnect, for the client a timeout.
        let timeout = scaled_ms(w.request_timeout_ms);
        let (limit, gives_up) = match faults.abort_after_us.map(scaled_us) {
            Some(abort) if abort < timeout => (abort, true),
            _ => (timeout, false),
        };
        let sent = tokio::time::timeout(
            limit,
            net::send_paced("backend", BACKEND_PORT, request, faults.pace),
        );
        let answer = match sent.await {
            Ok(Ok(answer)) => answer,
            Ok(Err(failure)) => {
                lost += 1;
                trace(ctx, format!("lost #{} attempt {attempt}: {failure:?}", b.index));
                if w.retry_lost_response { continue } else { break }
            }
            Err(_) => {
                timeouts += 1;
                let what = if gives_up { "abort" } else { "timeout" };
                trace(ctx, format!("{what} #{} attempt {attempt}", b.index));
                if w.retry_lost_response { continue } else { break }
            }
        };
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        trace(ctx, format!("answer #{} {} {text}", b.index, answer.status));
        if let Some(what) = invariants::leaked_db_error(&text) {
            ctx.live.borrow_mut().raw_db_error(now_us(), b.index, attempt, &what);
            leaked = leaked.or(Some(what));
        }
        record_server_timing(&answer.headers, &ctx.histograms, ctx.rules_from_header);
        if answer.status == 409 && text.contains("IDEMPOTENCY_IN_FLIGHT") {
            continue;
        }
        let parsed: Answer = serde_json::from_str(&text).unwrap_or_default();
        outcome = classify(answer.status, &parsed, &ctx.ids);
        detail = answer_detail(sent_at_us, answer.status, &parsed, &text, b, ctx);
        // A 503 carries Retry-After: the service asks for a retry (DATABASE_UNAVAILABLE: a
        // COMMIT's outcome may be unknown). A client holding an Idempotency-Key retries.
        let retry_asked = answer.status == 503 && b.idempotency_key.is_some();
        if retry_asked && w.retry_lost_response && attempt < w.client_retries_max {
            trace(ctx, format!("retry-after #{} attempt {attempt}", b.index));
            continue;
        }
        if let Outcome::Created { id, room } = &outcome {
            let turnover_min = parsed.turnover_minutes.unwrap_or(0);
            ctx.live.borrow_mut().created(Acknowledged {
                booking: b.index,
                id: id.clone(),
                room: room.clone(),
                doctor: b.doctor.clone(),
                patient: b.patient.clone(),
                start_min: b.start_min,
                end_min: b.start_min + b.duration_min,
                blocked_until_min: b.start_min + b.duration_min + turnover_min,
                at_us: now_us(),
            });
        }
        break;
    }
    let key = BookingKey {
        doctor: b.doctor.clone(),
        patient: b.patient.clone(),
        appointment_type: b.appointment_type.clone(),
        start_min: b.start_min,
    };
    let answered_at_us = now_us();
    BookingRecord {
        index: b.index,
        key,
        outcome,
        answered_at_us,
        leaked,
        attempts,
        timeouts,
        lost,
        answer: detail,
    }
}

fn trace(ctx: &ClientCtx, text: String) {
    ctx.trace.lock().expect("trace").record(now_us(), "client", text);
}

/// The patient's needs, from the scenario (H08 accessibility, H09 airborne isolation).
fn needs(b: &PlannedBooking, scenario: &Scenario) -> serde_json::Value {
    let patient = scenario.clinic.patients.iter().find(|p| p.name == b.patient);
    let accessible = patient.is_some_and(|p| p.needs_accessible);
    let airborne = patient.is_some_and(|p| p.airborne);
    serde_json::json!({
        "accessible": accessible,
        "isolation": if airborne { "airborne" } else { "none" },
    })
}

/// The booking request in backend-core's shape (room-rules.md §4).
fn request_body(b: &PlannedBooking, scenario: &Scenario, ids: &ClinicIds) -> serde_json::Value {
    let day_s = parse_day_unix_s(&scenario.clinic.day).expect("validated by the scenarios crate");
    let at = |min: u32| {
        let t = chrono::DateTime::from_timestamp(day_s + min as i64 * 60, 0).expect("valid day");
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    serde_json::json!({
        "clinic_id": ids.clinic,
        "doctor_id": ids.doctor(&b.doctor),
        "patient_id": ids.patient(&b.patient),
        "appointment_type": b.appointment_type,
        "start": at(b.start_min),
        "end": at(b.start_min + b.duration_min),
        "room_id": b.room.as_deref().map(|r| ids.room(r)),
        "needs": needs(b, scenario),
        "fallback": scenario.workload.fallback.as_str(),
    })
}

/// The fields of an answer the client looks at; serde skips every other field without
/// building it (the 201 body carries a multi-kilobyte explanation the client never reads).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct Answer {
    id: Option<String>,
    room: Option<AnswerRoom>,
    start: Option<String>,
    end: Option<String>,
    booked: Option<bool>,
    code: Option<String>,
    alternatives: AlternativesCount,
    /// The room's turnover after the visit (201), for the in-run room-overlap check.
    turnover_minutes: Option<u32>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct AnswerRoom {
    id: Option<String>,
}

/// Alternatives are a list, or an object of lists (room-rules.md §4): the number of entries.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct AlternativesCount(u32);

impl<'de> serde::Deserialize<'de> for AlternativesCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = AlternativesCount;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list or an object of lists")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut n = 0;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(AlternativesCount(n))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut n = 0;
                while let Some((_, v)) =
                    map.next_entry::<serde::de::IgnoredAny, AlternativesCount>()?
                {
                    n += v.0;
                }
                Ok(AlternativesCount(n))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(AlternativesCount(0))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(AlternativesCount(0))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(AlternativesCount(0))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(AlternativesCount(0))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(AlternativesCount(0))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(AlternativesCount(0))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(AlternativesCount(0))
            }
        }
        d.deserialize_any(Visit)
    }
}

fn classify(status: u16, answer: &Answer, ids: &ClinicIds) -> Outcome {
    match status {
        201 => Outcome::Created {
            id: answer.id.clone().unwrap_or_default(),
            room: answer
                .room
                .as_ref()
                .and_then(|r| r.id.as_deref())
                .map(|r| ids.name_of_text(r).unwrap_or(r.to_string())),
        },
        // The `suggest` fallback: no booking, alternatives offered.
        200 if answer.booked == Some(false) => {
            Outcome::Conflict { alternatives: answer.alternatives.0, room_unavailable: true }
        }
        409 => Outcome::Conflict {
            alternatives: answer.alternatives.0,
            room_unavailable: answer.code.as_deref() == Some("ROOM_UNAVAILABLE"),
        },
        400..=499 => Outcome::Rejected { status },
        _ => Outcome::ServerError { status },
    }
}

/// The room and blocked range of a 201, and every alternative offered by a 409 or a
/// `suggest` 200, for the `alternatives_correct` invariant.
/// A 201 is read from the typed `answer` (its multi-kilobyte explanation is never built);
/// any other answer is small and parsed whole from `text`.
fn answer_detail(
    sent_at_us: u64,
    status: u16,
    answer: &Answer,
    text: &str,
    b: &PlannedBooking,
    ctx: &ClientCtx,
) -> AnswerDetail {
    let day_s =
        parse_day_unix_s(&ctx.scenario.clinic.day).expect("validated by the scenarios crate");
    // Minutes of the clinic day of an RFC 3339 time (0 when absent or unreadable).
    let minute = |text: Option<&str>| {
        let at = text.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        at.map_or(0, |t| u32::try_from((t.timestamp() - day_s).max(0) / 60).unwrap_or(u32::MAX))
    };
    let room = |text: Option<&str>| {
        text.map(|text| ctx.ids.name_of_text(text).unwrap_or_else(|| text.to_string()))
    };
    let mut detail = AnswerDetail { sent_at_us, ..AnswerDetail::default() };
    if status == 201 {
        let turnover_min = answer.turnover_minutes.unwrap_or(0);
        let (start, end) = (minute(answer.start.as_deref()), minute(answer.end.as_deref()));
        let booked_room = answer.room.as_ref().and_then(|r| r.id.as_deref());
        detail.booked = room(booked_room).map(|r| (r, start, end + turnover_min));
        return detail;
    }
    let json: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let requested = (b.start_min, b.start_min + b.duration_min);
    let offered = |item: &serde_json::Value, visit: Option<(u32, u32)>| {
        // The stand-in names rooms only; backend-core gives ids and times.
        let name = item.as_str().map(str::to_string).or_else(|| room(item["room_id"].as_str()))?;
        let visit =
            visit.or_else(|| Some((minute(item["start"].as_str()), minute(item["end"].as_str()))));
        Some(OfferedAlternative { room: name, visit_min: visit.filter(|_| !item.is_string()) })
    };
    match &json["alternatives"] {
        serde_json::Value::Array(list) => {
            detail.alternatives = list.iter().filter_map(|item| offered(item, None)).collect();
        }
        serde_json::Value::Object(kinds) => {
            for (kind, list) in kinds {
                let visit = (kind == "same_time_other_rooms").then_some(requested);
                let items = list.as_array().map(Vec::as_slice).unwrap_or_default();
                detail.alternatives.extend(items.iter().filter_map(|item| offered(item, visit)));
            }
        }
        _ => {}
    }
    detail
}

/// `Server-Timing: rules;dur=0.120, conflict;dur=0.080` (simulated ms) → modelled µs. `rules`
/// only with `rules_from_header`: the model backend's cost model records the charged rules
/// cost at µs precision itself (`model_world::ChargeSleep`), which the 50 µs clock cannot show.
fn record_server_timing(
    headers: &http::HeaderMap,
    histograms: &Arc<Mutex<Histograms>>,
    rules_from_header: bool,
) {
    let Some(value) = headers.get("server-timing").and_then(|v| v.to_str().ok()) else { return };
    for part in value.split(',') {
        let mut fields = part.trim().split(';');
        let name = fields.next().unwrap_or_default();
        let metric = match name {
            "rules" if rules_from_header => Metric::RulesEvaluation,
            "conflict" => Metric::ConflictDetection,
            "lock" => Metric::LockWait,
            _ => continue,
        };
        let dur = fields.find_map(|f| f.strip_prefix("dur=")).and_then(|d| d.parse::<f64>().ok());
        if let Some(ms) = dur {
            let us = (ms * 1_000.0 / TIME_SCALE as f64).round() as u64;
            histograms.lock().expect("histograms").record(metric, us);
        }
    }
}

/// A fault action at a modelled time.
enum Action {
    LinkFailRate(Link, f64),
    CrashBackend,
    RestartBackend,
    Partition,
    Repair,
    CrashDb,
    RestartDb,
}

fn schedule(scenario: &Scenario) -> Vec<(u64, Action)> {
    let mut out = Vec::new();
    for fault in &scenario.faults {
        let (at_us, end_us) = (fault.at_ms() * 1_000, fault.end_ms() * 1_000);
        match fault {
            Fault::Loss { link, rate, .. } => {
                out.push((at_us, Action::LinkFailRate(*link, *rate)));
                out.push((end_us, Action::LinkFailRate(*link, 0.0)));
            }
            Fault::BackendCrash { .. } => {
                out.push((at_us, Action::CrashBackend));
                out.push((end_us, Action::RestartBackend));
            }
            Fault::Partition { .. } => {
                out.push((at_us, Action::Partition));
                out.push((end_us, Action::Repair));
            }
            Fault::DbCrash { .. } => {
                out.push((at_us, Action::CrashDb));
                out.push((end_us, Action::RestartDb));
            }
            // Acted on by the clients themselves (`client_faults`) and by the backend's db
            // adapter (`model_db::DbDrops`).
            Fault::ClientAbort { .. }
            | Fault::SlowClients { .. }
            | Fault::DbConnectionDrop { .. } => {}
        }
    }
    // Stable sort: equal times keep file order (for determinism).
    out.sort_by_key(|(at, _)| *at);
    out
}

fn apply(
    sim: &mut turmoil::Sim<'static>,
    action: &Action,
    trace: &SharedTrace,
    at_us: u64,
    side: &DbSide,
) {
    let engine = match side {
        DbSide::Model { engine, .. } => Some(engine),
        DbSide::StandIn(_) => None,
    };
    let no_db = "skipped: the stand-in world has no db host";
    let text = match action {
        Action::LinkFailRate(link, rate) => {
            let (a, b) = match link {
                Link::ClientsBackend => ("clients", "backend"),
                Link::BackendDb => ("backend", "db"),
            };
            if *link == Link::ClientsBackend || engine.is_some() {
                sim.set_link_fail_rate(a, b, *rate);
                format!("fault loss {a}<->{b} rate {rate}")
            } else {
                format!("fault loss {a}<->{b} {no_db}")
            }
        }
        Action::Partition | Action::Repair | Action::CrashDb | Action::RestartDb
            if engine.is_none() =>
        {
            format!("fault {} {no_db}", action_name(action))
        }
        Action::Partition => {
            sim.partition("backend", "db");
            "fault partition backend<->db".to_string()
        }
        Action::Repair => {
            sim.repair("backend", "db");
            "fault repair backend<->db".to_string()
        }
        Action::CrashDb => {
            sim.crash("db");
            // In-flight transactions abort; committed data survives.
            engine.expect("guarded above").borrow_mut().crash_restart();
            "fault crash db".to_string()
        }
        Action::RestartDb => {
            sim.bounce("db");
            "fault restart db".to_string()
        }
        Action::CrashBackend => {
            sim.crash("backend");
            "fault crash backend".to_string()
        }
        Action::RestartBackend => {
            sim.bounce("backend");
            "fault restart backend".to_string()
        }
    };
    trace.lock().expect("trace").record(at_us, "driver", text);
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::LinkFailRate(..) => "loss",
        Action::CrashBackend => "crash backend",
        Action::RestartBackend => "restart backend",
        Action::Partition => "partition",
        Action::Repair => "repair",
        Action::CrashDb => "crash db",
        Action::RestartDb => "restart db",
    }
}

/// Steps the world, applying faults on time. A run that hits the simulation limit is not an
/// error: its unfinished bookings become `every_request_answered` violations.
fn drive(
    sim: &mut turmoil::Sim<'static>,
    scenario: &Scenario,
    shared: &Shared,
    side: &DbSide,
) -> Result<(), SimError> {
    let trace = &shared.trace;
    let deadlocks = match side {
        DbSide::Model { deadlocks, .. } => Some(deadlocks),
        DbSide::StandIn(_) => None,
    };
    let actions = schedule(scenario);
    let mut next = 0;
    let limit = scaled_ms(scenario.limits.simulation_ms_max);
    loop {
        let at_us = modelled_us(sim.elapsed());
        while next < actions.len() && actions[next].0 <= at_us {
            apply(sim, &actions[next].1, trace, at_us, side);
            next += 1;
        }
        let stepped = sim.step();
        // A 40P01 is an in-run violation from the moment the backend received it.
        if let Some(log) = deadlocks {
            let log = log.lock().expect("deadlock log");
            if !log.is_empty() {
                shared.live.borrow_mut().deadlocks(&log);
            }
        }
        match stepped {
            Ok(true) => return settle(sim, shared, side),
            Ok(false) => {}
            Err(_) if sim.elapsed() >= limit => return Ok(()),
            Err(e) => return Err(SimError::HostFailed(e.to_string())),
        }
    }
}

/// Modelled time the world may take, after the last client finished, for every session to
/// leave its transaction: twice the statement timeout, so a handler the client abandoned can
/// finish or fail its statement and be dropped.
pub const SETTLE_MS_MAX: u64 = 2 * crate::model_db::STATEMENT_TIMEOUT_MS;

/// After the clients are done: steps on (only while some session is still inside a
/// transaction, at most [`SETTLE_MS_MAX`]) and records the sessions still in one, which the
/// `session_hygiene` invariant reports: a session idle in a transaction when nothing runs
/// any more was leaked (`pg_stat_activity`'s `idle in transaction`). A run that settles at
/// once takes no extra step, so its trace is what it was without this check.
fn settle(sim: &mut turmoil::Sim<'static>, shared: &Shared, side: &DbSide) -> Result<(), SimError> {
    let DbSide::Model { engine, .. } = side else { return Ok(()) };
    let deadline = sim.elapsed() + scaled_ms(SETTLE_MS_MAX);
    loop {
        let open = engine.borrow().open_transactions();
        if open.is_empty() || sim.elapsed() >= deadline {
            let described = open.iter().map(|t| {
                let state = match (t.waiting, t.aborted) {
                    (true, _) => "active (waiting for a lock)",
                    (false, true) => "idle in transaction (aborted)",
                    (false, false) => "idle in transaction",
                };
                format!(
                    "session {} {state} {} ms after the last client finished",
                    t.session, SETTLE_MS_MAX
                )
            });
            *shared.open_at_end.borrow_mut() = described.collect();
            return Ok(());
        }
        if sim.step().is_err() {
            // The simulation limit: report what is open now.
            let open = engine.borrow().open_transactions();
            let described = open.iter().map(|t| {
                format!("session {} still in a transaction at the simulation limit", t.session)
            });
            *shared.open_at_end.borrow_mut() = described.collect();
            return Ok(());
        }
    }
}

/// The final rows and what the database observed; folds the db server's statement trace
/// into the run's trace (hash and interleaving signature).
fn db_results(
    side: &DbSide,
    open_at_end: &[String],
    ids: &ClinicIds,
    trace: &SharedTrace,
    histograms: &Arc<Mutex<Histograms>>,
) -> Result<(Vec<Appointment>, DbObservations), SimError> {
    match side {
        DbSide::StandIn(store) => {
            Ok((store.lock().expect("store").rows.clone(), DbObservations::default()))
        }
        DbSide::Model { engine, servers, deadlocks } => {
            let mut trace = trace.lock().expect("trace");
            let mut histograms = histograms.lock().expect("histograms");
            for server in servers.borrow().iter() {
                // Lock wait: a statement's "blocked" event to its session's "completed" event.
                // BTreeMap: looked up by session only (for determinism anyway).
                let mut blocked_at: BTreeMap<u32, u64> = BTreeMap::new();
                for event in server.trace() {
                    let at_us = event.at_us / TIME_SCALE as u64;
                    if event.outcome == "blocked" {
                        blocked_at.insert(event.session, at_us);
                    } else if event.outcome.starts_with("completed")
                        && let Some(since) = blocked_at.remove(&event.session)
                    {
                        histograms.record(Metric::LockWait, at_us - since);
                    }
                    trace.record_statement(event.session, event.kind, &event.outcome);
                    trace.record(at_us, "db", event.to_string());
                }
            }
            drop(trace);
            let rows = model_world::final_rows(&mut engine.borrow_mut(), ids)?;
            let deadlocks = deadlocks.lock().expect("deadlock log").clone();
            let warnings = engine.borrow_mut().take_warnings().into_iter().map(|w| {
                let at_us = modelled_us(w.at);
                (at_us, format!("session {}: WARNING {} {}", w.session, w.code, w.message))
            });
            let begin_in_transaction = warnings.collect();
            let open_at_end = open_at_end.to_vec();
            Ok((rows, DbObservations { deadlocks, begin_in_transaction, open_at_end }))
        }
    }
}

fn finish(
    config: &RunConfig,
    plan: &[PlannedBooking],
    shared: Shared,
    side: &DbSide,
    steps: u64,
) -> Result<RunResult, SimError> {
    let records: Vec<BookingRecord> = shared
        .records
        .borrow()
        .iter()
        .zip(plan)
        .map(|(record, b)| record.clone().unwrap_or_else(|| unfinished(b)))
        .collect();
    let ids = ClinicIds::new(&config.scenario);
    let open_at_end = shared.open_at_end.borrow().clone();
    let (rows, observed) = db_results(side, &open_at_end, &ids, &shared.trace, &shared.histograms)?;
    let (invariants, mut violations) =
        invariants::check_all(&config.scenario, &rows, &records, &observed);
    violations.truncate(VIOLATIONS_KEPT_MAX);
    let trace = shared.trace.lock().expect("trace");
    // The hosts (and their handles on the histograms) went with the sim: take them whole
    // rather than copy five HdrHistograms; copy only if something still holds them.
    let histograms = match Arc::try_unwrap(shared.histograms) {
        Ok(only) => only.into_inner().expect("histograms"),
        Err(still_shared) => still_shared.lock().expect("histograms").clone(),
    };
    let live = shared.live.borrow();
    let outcome = RunOutcome {
        seed: config.seed,
        backend: config.backend,
        scenario: config.scenario.name.clone(),
        strategy: config.strategy.clone(),
        guard: config.guard,
        trace_hash: trace.hash_hex(),
        signature: trace.signature_hex(),
        counts: counts(&records, &rows),
        invariants,
        violations,
        histograms,
        workload_us: records.iter().map(|r| r.answered_at_us).max().unwrap_or(0),
        events_count: trace.events_count(),
        in_run: live.violations().to_vec(),
        in_run_count: live.count(),
        first_violation_us: live.first_violation_us(),
    };
    Ok(RunResult { outcome, events: trace.events().to_vec(), steps })
}

fn unfinished(b: &PlannedBooking) -> BookingRecord {
    let key = BookingKey {
        doctor: b.doctor.clone(),
        patient: b.patient.clone(),
        appointment_type: b.appointment_type.clone(),
        start_min: b.start_min,
    };
    let outcome = Outcome::Unfinished;
    BookingRecord {
        index: b.index,
        key,
        outcome,
        answered_at_us: 0,
        leaked: None,
        attempts: 0,
        timeouts: 0,
        lost: 0,
        answer: AnswerDetail::default(),
    }
}

fn counts(records: &[BookingRecord], rows: &[Appointment]) -> Counts {
    let mut c = Counts { bookings: records.len() as u64, ..Counts::default() };
    for r in records {
        c.attempts += r.attempts as u64;
        c.timeouts += r.timeouts as u64;
        c.connection_failures += r.lost as u64;
        match &r.outcome {
            Outcome::Created { room, .. } => {
                c.created_201 += 1;
                c.room_pending += room.is_none() as u64;
            }
            Outcome::Conflict { alternatives, room_unavailable } => {
                c.conflicts_409 += 1;
                c.room_unavailable += *room_unavailable as u64;
                c.conflicts_with_alternatives += (*room_unavailable && *alternatives > 0) as u64;
            }
            Outcome::Rejected { .. } => c.other_4xx += 1,
            Outcome::ServerError { .. } => c.errors_5xx += 1,
            Outcome::Unanswered | Outcome::Unfinished => c.unanswered += 1,
        }
    }
    c.appointments_final = rows.iter().filter(|a| a.active).count() as u64;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> ClinicIds {
        ClinicIds::new(&Scenario::builtin("storm").unwrap().scenario)
    }

    /// What the client takes from an answer text: the outcome and a 201's turnover.
    fn classify_text(status: u16, body: &str, ids: &ClinicIds) -> (Outcome, u32) {
        let answer: Answer = serde_json::from_str(body).unwrap_or_default();
        (classify(status, &answer, ids), answer.turnover_minutes.unwrap_or(0))
    }

    /// The typed answer reads what the client needs and skips the rest; alternatives count
    /// as a list or as an object of lists; a malformed body is no panic.
    #[test]
    fn classify_reads_only_what_it_needs() {
        let ids = ids();
        let room = ids.room("room-03");
        let body = format!(
            r#"{{"id":"a1","room":{{"id":"{room}","name":"room-03"}},"turnover_minutes":5,
               "assignment":{{"explanation":[{{"rule":"S01","weight":10}}]}}}}"#
        );
        let (outcome, turnover) = classify_text(201, &body, &ids);
        assert_eq!(outcome, Outcome::Created { id: "a1".into(), room: Some("room-03".into()) });
        assert_eq!(turnover, 5);
        let pending = classify_text(201, r#"{"id":"a2","room":null}"#, &ids);
        assert_eq!(pending, (Outcome::Created { id: "a2".into(), room: None }, 0));
        let list = r#"{"code":"ROOM_UNAVAILABLE","alternatives":[{"a":1},{"b":[2]}]}"#;
        assert_eq!(
            classify_text(409, list, &ids).0,
            Outcome::Conflict { alternatives: 2, room_unavailable: true }
        );
        let object = r#"{"code":"DOCTOR_BUSY","alternatives":{"x":[1,2],"y":[3],"z":null}}"#;
        assert_eq!(
            classify_text(409, object, &ids).0,
            Outcome::Conflict { alternatives: 3, room_unavailable: false }
        );
        let suggest = r#"{"booked":false,"alternatives":[1]}"#;
        assert_eq!(
            classify_text(200, suggest, &ids).0,
            Outcome::Conflict { alternatives: 1, room_unavailable: true }
        );
        assert_eq!(classify_text(500, "not json", &ids).0, Outcome::ServerError { status: 500 });
        assert_eq!(
            classify_text(201, "not json", &ids).0,
            Outcome::Created { id: "".into(), room: None }
        );
    }
}
