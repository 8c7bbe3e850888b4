//! The search: depth-first over scheduling choices with replay from the start, an optional
//! preemption bound, the invariants at the end of each schedule, and the report.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use backend_core::booking::strategy::Strategy;
use backend_core::config::ApiConfig;
use backend_core::db::SqlValue;
use backend_core::http::{ApiContext, api_router};
use scenarios::Scenario;
use tower::ServiceExt;

use super::scheduler::{
    BookingFuture, BookingIds, Event, FixedClock, Hub, Limits, ScheduleOutcome, Slot, Visited,
    run_schedule,
};
use super::scope::{GivenBookings, ScopeBooking, Shape, scope_bookings, scope_scenario};
use crate::SimError;
use crate::ids::ClinicIds;
use crate::invariants;
use crate::observations::{AnswerDetail, BookingKey, BookingRecord, ClientOutcome, DbObservations};
use crate::outcome::Violation;
use crate::patterns::{self, Recorder};
use crate::world::clients::classify_body;
use crate::world::engine::{apply_statements, prepare_engine, strategy};

#[derive(Clone, Debug)]
pub struct CheckConfig {
    pub strategy: String,
    pub bookings: u32,
    pub rooms: u32,
    pub shape: Shape,
    /// The bookings' `fallback` field (`reject`, `suggest`, `book_without_room`).
    pub fallback: String,
    /// Backend crashes per schedule (0 = none): a booking's backend may crash between any
    /// two of its statements (or after its last, before the answer arrives), at most once
    /// per booking; the client then sends the request again.
    pub crash_points: u32,
    /// Whether the bookings carry an Idempotency-Key (their retries reuse it).
    pub idempotency_key: bool,
    /// CHESS-style preemption bound; `None` = unbounded (exhaustive).
    pub preemptions: Option<u32>,
    /// Partial-order reduction by sleep sets (`--no-reduction` turns it off, to measure it).
    pub reduction: bool,
    /// Visited-state caching (`scheduler::Visited`): a schedule stops at a state explored
    /// before (`--no-state-cache` turns it off, to measure it). Path properties (the pair
    /// patterns) are then counted only up to the cached state.
    pub state_cache: bool,
    pub max_schedules: u64,
    /// Bookings given one by one (`shrink`); `None` = `bookings`, `rooms` and `shape` above.
    pub given: Option<Arc<GivenBookings>>,
}

impl CheckConfig {
    /// A scope of `bookings` same-slot bookings in `rooms` rooms, rejecting on conflict, with
    /// keys, no crash points, unbounded.
    pub fn new(strategy: &str, bookings: u32, rooms: u32) -> CheckConfig {
        CheckConfig {
            strategy: strategy.to_string(),
            bookings,
            rooms,
            shape: Shape::SameSlot,
            fallback: "reject".into(),
            crash_points: 0,
            idempotency_key: true,
            preemptions: None,
            reduction: true,
            state_cache: true,
            max_schedules: 1_000_000,
            given: None,
        }
    }

    /// "2 bookings x 1 room, same-slot, strategy naive, crash points, no Idempotency-Key".
    pub fn scope(&self) -> String {
        let mut scope = match &self.given {
            Some(given) => format!("{}, strategy {}", given.label, self.strategy),
            None => format!(
                "{} bookings x {} rooms, {}, fallback {}, strategy {}",
                self.bookings,
                self.rooms,
                self.shape.name(),
                self.fallback,
                self.strategy
            ),
        };
        match self.crash_points {
            0 => {}
            1 => scope.push_str(", 1 crash point"),
            n => scope.push_str(&format!(", {n} crash points")),
        }
        if !self.idempotency_key {
            scope.push_str(", no Idempotency-Key");
        }
        scope
    }

    /// The clinic the bookings are made in.
    pub fn scenario(&self) -> Result<Scenario, SimError> {
        match &self.given {
            Some(given) => Ok(given.scenario.clone()),
            None => scope_scenario(self.rooms),
        }
    }
}

/// The violating schedule with the fewest steps.
#[derive(Debug)]
pub struct Counterexample {
    pub violations: Vec<Violation>,
    pub events: Vec<Event>,
}

#[derive(Debug)]
pub struct CheckReport {
    pub scope: String,
    pub schedules: u64,
    /// True when every schedule within the bound was run (no cap hit).
    pub complete: bool,
    pub seconds: f64,
    pub counterexample: Option<Counterexample>,
    pub violating_schedules: u64,
    /// Schedules cut short by the partial-order reduction (reorders of explored ones).
    pub pruned: u64,
    /// Schedules stopped at a state explored before (visited-state caching).
    pub cache_hits: u64,
    /// Distinct states (decision points) recorded by the cache; 0 without it.
    pub states: usize,
    /// Distinct end states (committed appointments and the answers) over the schedules.
    pub distinct_end_states: usize,
    /// The longest schedule, in statements run.
    pub steps_max: usize,
    /// Pair pattern (`crate::patterns`) → schedules whose bookings showed it.
    pub patterns: BTreeMap<String, u64>,
}

impl CheckReport {
    pub fn verdict_line(&self, config: &CheckConfig) -> String {
        match (self.complete, config.preemptions) {
            (true, None) => format!("exhaustive for {}", self.scope),
            (true, Some(k)) => format!("bounded: {k} preemptions ({})", self.scope),
            (false, _) => format!(
                "bounded: stopped at --max-schedules {} ({})",
                config.max_schedules, self.scope
            ),
        }
    }
}

/// Everything a schedule is built from, made once per check.
struct Prepared {
    scenario: Scenario,
    ids: ClinicIds,
    strategy: Strategy,
    bookings: Vec<ScopeBooking>,
    template: model::Engine,
    now: chrono::DateTime<chrono::Utc>,
    /// Parsed stored bodies (the rule policy TOML), shared by every attempt of every schedule
    /// as one `serve` process shares them: the cache changes no answer.
    bodies: Arc<backend_core::booking::body_cache::BodyCache>,
    /// Ids of the rows the scope starts from (`GivenBookings::prior`).
    prior_ids: BTreeSet<String>,
}

fn prepare(config: &CheckConfig) -> Result<Prepared, SimError> {
    let strategy = strategy(&config.strategy)?;
    let scenario = config.scenario()?;
    let ids = ClinicIds::new(&scenario);
    let bookings = match &config.given {
        Some(given) => given.bookings.clone(),
        None => scope_bookings(&scenario, &ids, config.bookings, config.shape, &config.fallback)?,
    };
    let mut template = prepare_engine(&scenario, &ids, strategy, 0)?;
    let mut prior_ids = BTreeSet::new();
    if let Some(given) = &config.given {
        apply_statements(&mut template, &given.prior)?;
        for (_, params) in &given.prior {
            if let Some(SqlValue::Uuid(id)) = params.first() {
                prior_ids.insert(id.to_string());
            }
        }
    }
    let day_s = scenarios::parse_day_unix_s(&scenario.clinic.day).expect("validated");
    let now = chrono::DateTime::from_timestamp(day_s + 60, 0).expect("a valid day");
    let bodies = Arc::default();
    Ok(Prepared { scenario, ids, strategy, bookings, template, now, bodies, prior_ids })
}

/// The router of one booking's attempt with the state a fresh `serve` process would have:
/// built once per (booking, attempt) and reused by every schedule, its id source, retry
/// generator and policy cache reset before each use (building an axum router was a sixth of
/// a schedule's time). The body cache stays shared: it changes no statement or answer.
struct AttemptRouter {
    router: axum::Router,
    ids: Arc<BookingIds>,
    retry_rng: Arc<Mutex<rand_chacha::ChaCha8Rng>>,
    policy_cache: Arc<backend_core::rules::PolicyCache>,
}

/// Routers by (booking, attempt).
type Routers = std::cell::RefCell<BTreeMap<(usize, u32), AttemptRouter>>;

/// Booking `index`'s request, attempt `attempt`, through backend-core's router as `serve`
/// runs it (a fresh id source and retry generator per attempt: a crashed backend restarts).
/// The request names its own `x-request-id`, so the router's request counter is never used.
fn booking_future(
    prepared: &Prepared,
    config: &CheckConfig,
    hub: &super::scheduler::SharedHub,
    routers: &Routers,
    index: usize,
    attempt: u32,
) -> BookingFuture {
    let mut routers = routers.borrow_mut();
    let made = routers.entry((index, attempt)).or_insert_with(|| {
        let db = super::scheduler::CheckDb { hub: hub.clone(), slot: index };
        let mut api = ApiConfig { strategy: prepared.strategy, ..ApiConfig::default() };
        api.retry.backoff_base_ms = 1;
        api.retry.backoff_cap_ms = 1;
        let ids = Arc::new(BookingIds { booking: index as u64, attempt, next: AtomicU64::new(0) });
        let ctx = ApiContext::new(
            Arc::new(db),
            Arc::new(FixedClock(prepared.now)),
            ids.clone(),
            api,
            index as u64,
        )
        .with_body_cache(prepared.bodies.clone());
        let retry_rng = ctx.retry_rng.clone();
        let policy_cache = ctx.policy_cache.clone();
        AttemptRouter { router: api_router(ctx), ids, retry_rng, policy_cache }
    });
    // What a fresh process starts with: no ids handed out, the retry generator at its seed,
    // no rule policy cached (a cached one would skip a statement).
    made.ids.next.store(0, std::sync::atomic::Ordering::Relaxed);
    made.policy_cache.clear();
    *made.retry_rng.lock().expect("retry rng") =
        <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(index as u64);
    let mut request = http::Request::post("/v1/appointments")
        .header("content-type", "application/json")
        .header("x-request-id", format!("check-{index}-{attempt}"));
    if config.idempotency_key {
        request = request.header("idempotency-key", format!("check-key-{index}"));
    }
    let request = request
        .body(axum::body::Body::from(prepared.bookings[index].body.clone()))
        .expect("a valid request");
    let router = made.router.clone();
    Box::pin(async move {
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status().as_u16();
        let bytes =
            axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    })
}

pub fn run_check(config: &CheckConfig) -> Result<CheckReport, SimError> {
    let prepared = prepare(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| SimError::HostFailed(format!("tokio runtime: {e}")))?;
    let limits = Limits {
        preemptions_max: config.preemptions,
        crashes_max: config.crash_points,
        reduction: config.reduction,
    };
    let mut end_states: BTreeSet<u64> = BTreeSet::new();
    let mut visited = config.state_cache.then(Visited::default);
    // One hub for every schedule (emptied before each), so the routers can be kept.
    let hub: super::scheduler::SharedHub = Arc::new(Mutex::new(Hub::default()));
    let routers = Routers::default();
    let started = Instant::now();
    let mut prefix: Vec<usize> = Vec::new();
    let mut report = CheckReport {
        scope: config.scope(),
        schedules: 0,
        complete: false,
        seconds: 0.0,
        counterexample: None,
        violating_schedules: 0,
        pruned: 0,
        cache_hits: 0,
        states: 0,
        distinct_end_states: 0,
        steps_max: 0,
        patterns: BTreeMap::new(),
    };
    loop {
        if report.schedules + report.pruned + report.cache_hits >= config.max_schedules {
            break;
        }
        let mut engine = prepared.template.fork(0).expect("a prepared engine forks");
        *hub.lock().expect("hub") =
            Hub { slots: (0..prepared.bookings.len()).map(|_| Slot::default()).collect() };
        let make = |index: usize, attempt: u32| {
            booking_future(&prepared, config, &hub, &routers, index, attempt)
        };
        let outcome = runtime.block_on(run_schedule(
            &mut engine,
            &hub,
            &make,
            prepared.bookings.len(),
            &prefix,
            limits,
            visited.as_mut(),
        ));
        let steps = outcome.events.iter().filter(|e| e.is_statement()).count();
        let stopped = outcome.pruned || outcome.cached;
        if outcome.cached {
            report.cache_hits += 1;
        } else if outcome.pruned {
            report.pruned += 1;
        } else {
            report.schedules += 1;
            report.steps_max = report.steps_max.max(steps);
        }
        let (violations, end_state) = if stopped {
            (Vec::new(), None)
        } else {
            let (violations, end_state) = verdict(&prepared, &mut engine, &outcome)?;
            (violations, Some(end_state))
        };
        end_states.extend(end_state);
        if !stopped {
            for pattern in schedule_patterns(&outcome.events).into_keys() {
                *report.patterns.entry(pattern).or_default() += 1;
            }
        }
        if !violations.is_empty() {
            report.violating_schedules += 1;
            let shorter = report
                .counterexample
                .as_ref()
                .is_none_or(|c| steps < c.events.iter().filter(|e| e.is_statement()).count());
            if shorter {
                report.counterexample = Some(Counterexample { violations, events: outcome.events });
            }
        }
        // Next prefix: the deepest choice with an untried alternative, incremented.
        let mut choices: Vec<(usize, usize)> =
            outcome.choices.iter().map(|&(index, count, _)| (index, count)).collect();
        while let Some(&(index, count)) = choices.last() {
            if index + 1 < count {
                break;
            }
            choices.pop();
        }
        let Some(last) = choices.last_mut() else {
            report.complete = true;
            break;
        };
        last.0 += 1;
        prefix = choices.iter().map(|&(index, _)| index).collect();
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.distinct_end_states = end_states.len();
    report.states = visited.as_ref().map_or(0, Visited::len);
    Ok(report)
}

/// The pair patterns of one schedule: each connection (a booking's attempt) is a booking,
/// and a statement that waited takes effect where it was unblocked.
pub fn schedule_patterns(events: &[Event]) -> BTreeMap<String, u64> {
    let mut recorder = Recorder::new();
    let mut waiting: BTreeMap<usize, patterns::Statement> = BTreeMap::new();
    for event in events {
        let booking = event.connection as u64;
        if event.is_statement() {
            let statement = patterns::classify(&event.sql, &event.params);
            if event.outcome == "blocked" {
                recorder.blocked(booking, &statement);
                waiting.insert(event.connection, statement);
            } else {
                recorder.statement(booking, &statement, event.outcome.starts_with("ERROR"));
            }
        } else if let Some(done) = event.outcome.strip_prefix("unblocked: ")
            && let Some(statement) = waiting.remove(&event.connection)
        {
            recorder.statement(booking, &statement, done.starts_with("ERROR"));
        }
    }
    recorder.patterns()
}

/// The run's invariants on the final state and the answers, and a hash of that end state.
fn verdict(
    prepared: &Prepared,
    engine: &mut model::Engine,
    outcome: &ScheduleOutcome,
) -> Result<(Vec<Violation>, u64), SimError> {
    let ids = &prepared.ids;
    let rows = crate::world::engine::final_rows(engine, ids)?;
    let end_state = {
        let mut hasher = std::hash::DefaultHasher::new();
        for row in &rows {
            (&row.id, &row.room, row.start_min, row.active).hash(&mut hasher);
        }
        outcome.answers.hash(&mut hasher);
        hasher.finish()
    };
    let records: Vec<BookingRecord> = outcome
        .answers
        .iter()
        .zip(&prepared.bookings)
        .enumerate()
        .map(|(i, (answer, booking))| {
            let (outcome_of, leaked) = match answer {
                None => (ClientOutcome::Unfinished, None),
                Some((status, text)) => {
                    (classify_body(*status, text, ids), invariants::leaked_db_error(text))
                }
            };
            BookingRecord {
                index: i as u32,
                key: BookingKey {
                    doctor: booking.doctor.clone(),
                    patient: booking.patient.clone(),
                    appointment_type: booking.appointment_type.clone(),
                    start_min: booking.start_min,
                },
                outcome: outcome_of,
                answered_at_us: 0,
                leaked,
                attempts: outcome.attempts[i],
                timeouts: 0,
                lost: outcome.attempts[i] - 1,
                answer: AnswerDetail::default(),
            }
        })
        .collect();
    // The rows a scope starts from (`GivenBookings::prior`) were acknowledged in the run they
    // come from: their answers stand beside the scope's own.
    let mut records = records;
    for row in rows.iter().filter(|r| prepared.prior_ids.contains(&r.id)) {
        records.push(BookingRecord {
            index: records.len() as u32,
            key: BookingKey {
                doctor: row.doctor.clone(),
                patient: row.patient.clone(),
                appointment_type: row.appointment_type.clone(),
                start_min: row.start_min,
            },
            outcome: ClientOutcome::Created { id: row.id.clone(), room: row.room.clone() },
            answered_at_us: 0,
            leaked: None,
            attempts: 1,
            timeouts: 0,
            lost: 0,
            answer: AnswerDetail::default(),
        });
    }
    // Session hygiene is not observed by `check` yet (its sessions close with each schedule).
    let observations = DbObservations {
        deadlocks: outcome.deadlocks.iter().map(|d| (0, d.clone())).collect(),
        ..DbObservations::default()
    };
    let (_, mut violations) =
        invariants::check_all(&prepared.scenario, &rows, &records, &observations);
    if let Some(stuck) = &outcome.stuck {
        violations
            .push(Violation { invariant: "every_request_answered".into(), detail: stuck.clone() });
    }
    Ok((violations, end_state))
}
