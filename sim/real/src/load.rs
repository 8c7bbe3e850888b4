//! The real HTTP load generator: hyper 1 over tokio TCP, to loopback targets only.
//!
//! TWO ARRIVAL MODELS
//!
//! * Closed loop (Locust's model): `users` users are started at `spawn_rate` per second; each
//!   sends a request, waits for the answer, waits `wait_ms`, repeats. Latency is measured from
//!   the actual send. Closed-loop throughput is bounded by users / (response + wait) and a
//!   stalled server is sampled less (coordinated omission): use it for Locust-style runs.
//! * Open loop (`--rate R`, wrk2's model): request i is *intended* at `start + i/R`; a
//!   dispatcher spawns it then, whatever is still in flight, and its latency is measured from
//!   the intended time, so a stall shows in full (no coordinated omission).
//!
//! Both stop by themselves: at the run time, after `requests_max` requests, or when the target
//! stops answering ([`CONNECTION_FAILURES_MAX`] transport failures in a row), keeping the
//! partial results. In-flight open-loop requests are bounded by [`IN_FLIGHT_MAX`]; an arrival
//! beyond it is recorded as a failure ("in-flight limit"), not silently delayed.
//!
//! CHECKPOINTS: with [`LoadConfig::checkpoint`] set, the CSV files and the interval log are
//! rewritten (to a temporary file, then renamed) after every [`INTERVAL_MS`] interval and once
//! more when the run ends, so a run that dies mid-way — the target down, the process killed —
//! leaves its results up to the last second on disk. The HTML report is written by the caller
//! at the end only.
//!
//! CONNECTIONS (issue #16, as Locust's `HttpUser`): by default every closed-loop user keeps
//! ONE HTTP/1.1 keep-alive connection ([`UserSession`]) for all its requests, and a round's
//! booker ([`run_rounds`]) one for its requests of the round — the simulation's booker, whose
//! world starts with no connection. A connection that broke, timed out or was cut short is
//! dropped and the user's next request connects again. `--fresh-connections`
//! ([`Connections::Fresh`], the same flag and meaning as the simulation's) opens a new
//! connection per request. The open loop has no users: it shares one pool in keep-alive mode.
//! The outcome counts the connections the users opened.
//!
//! OUTCOMES: 2xx is a success; a booking answered 201 is booked, one answered 200 (fallback
//! "suggest": alternatives only) or 409 (no feasible room) is the expected answer to a
//! conflict and is counted as rejected; anything else, a timeout or a
//! transport error is a failure. `Server-Timing` metrics (rules, conflict, db) of every
//! answered request go into their own histograms.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
pub use sim::net::Connections;
use tokio::time::Instant;

use super::RealError;
use super::report;
use super::stats::{INTERVAL_MS, Recorder, parse_server_timing};
use super::workload::{Fixture, PlannedRequest, Task, UserWorkload};

pub use super::load_run::{
    CONNECTION_FAILURES_MAX, IN_FLIGHT_MAX, LoadConfig, LoadOutcome, Outcomes, PROGRESS_INTERVAL_S,
    Target, USERS_MAX,
};

/// Server-Timing metrics the recorder also splits by the HTTP status of the answer (validate's
/// diagnostic).
pub const SPLIT_BY_STATUS: [&str; 2] = ["conflict", "rules"];

/// The recorder's key of Server-Timing `metric` reported by answers of HTTP `status`
/// (`conflict@409`).
pub fn status_key(metric: &str, status: u16) -> String {
    format!("{metric}@{status}")
}

/// The status of a [`status_key`] of `metric`; `None` for any other key.
pub fn status_of_key(metric: &str, key: &str) -> Option<u16> {
    key.strip_prefix(metric)?.strip_prefix('@')?.parse().ok()
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// State shared by every task of a run.
struct Shared {
    client: HttpClient,
    config: LoadConfig,
    recorder: Mutex<Recorder>,
    outcomes: Mutex<Outcomes>,
    stop: AtomicBool,
    stop_reason: Mutex<Option<String>>,
    connection_failures_in_row: AtomicU64,
    requests_issued: AtomicU64,
    in_flight: AtomicU64,
    users_running: AtomicU64,
    /// Connections the users' sessions opened.
    connections_opened: AtomicU64,
    /// Set once a checkpoint failed (reported once, on stderr).
    checkpoint_failed: AtomicBool,
}

impl Shared {
    fn new(config: LoadConfig) -> Shared {
        let pool_idle_per_host = config.users.max(64) as usize;
        Shared {
            client: http_client(pool_idle_per_host),
            config,
            recorder: Mutex::new(Recorder::new()),
            outcomes: Mutex::new(Outcomes::default()),
            stop: AtomicBool::new(false),
            stop_reason: Mutex::new(None),
            connection_failures_in_row: AtomicU64::new(0),
            requests_issued: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            users_running: AtomicU64::new(0),
            connections_opened: AtomicU64::new(0),
            checkpoint_failed: AtomicBool::new(false),
        }
    }

    fn stop_with(&self, reason: String) {
        let mut slot = self.stop_reason.lock().expect("stop reason lock");
        if slot.is_none() {
            *slot = Some(reason);
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Claims one request from the budget; false once the budget or the run is over.
    fn claim_request(&self) -> bool {
        if self.stop.load(Ordering::SeqCst) {
            return false;
        }
        self.requests_issued.fetch_add(1, Ordering::SeqCst) < self.config.requests_max
    }

    /// Whether every request of the budget has been claimed.
    fn budget_spent(&self) -> bool {
        self.requests_issued.load(Ordering::SeqCst) >= self.config.requests_max
    }
}

fn http_client(pool_idle_per_host: usize) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(pool_idle_per_host)
        .build(connector)
}

/// Checks that the target answers `GET /healthz` before any load is sent.
pub async fn preflight(target: &Target) -> Result<(), RealError> {
    let client = http_client(1);
    let url = format!("{}/healthz", target.base);
    let request =
        http::Request::get(&url).body(Full::new(Bytes::new())).expect("a static request is valid");
    let answer = tokio::time::timeout(Duration::from_secs(5), client.request(request)).await;
    match answer {
        Err(_) => Err(RealError::BadInput(format!("target {url}: no answer within 5 s"))),
        Ok(Err(e)) => Err(RealError::BadInput(format!(
            "target {url} is not answering ({}); is `roomsim serve` running?",
            error_chain(&e)
        ))),
        Ok(Ok(response)) if !response.status().is_success() => Err(RealError::BadInput(format!(
            "target {url} answered {}; is it a roomsim server?",
            response.status()
        ))),
        Ok(Ok(_)) => Ok(()),
    }
}

/// Runs the load and returns its statistics, partial when the target failed mid-run.
pub async fn run_load(config: LoadConfig, fixture: Arc<Fixture>) -> LoadOutcome {
    let shared = Arc::new(Shared::new(config));
    let started_unix_s = unix_now_s();
    let start = Instant::now();
    let ticker = tokio::spawn(interval_ticker(shared.clone(), start, started_unix_s));
    let users_max = match shared.config.rate_per_s {
        Some(rate) => {
            open_loop(shared.clone(), fixture, start, rate).await;
            0
        }
        None => closed_loop(shared.clone(), fixture, start).await,
    };
    finish(shared, ticker, start, started_unix_s, users_max).await
}

/// One request of a round, at its intended offset from the round's start.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduledRequest {
    /// Who sends it: one user's requests go in order on its session.
    pub user: u32,
    pub send_at_us: u64,
    pub request: PlannedRequest,
}

/// What [`RoundPlanner::before_round`] returns: done, or why the run must stop.
pub type BeforeRound<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;

/// Hands out the requests of each round (`None`: no more rounds).
pub trait RoundPlanner: Send {
    fn round(&mut self, index: u64) -> Option<Vec<ScheduledRequest>>;

    /// Runs before round `index` is sent, while nothing is in flight (e.g. clearing the
    /// tables when the planner starts reusing its days). An error stops the run with it.
    fn before_round(&mut self, _index: u64) -> BeforeRound<'_> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Rounds of scheduled requests (the simulation's workload replayed for real): every request
/// of a round is sent at its intended offset, measured from that intended time (open model);
/// the next round starts when the previous one has completed. Stops at the run time, the
/// request budget, the planner's end, or a dead target.
pub async fn run_rounds(config: LoadConfig, planner: &mut dyn RoundPlanner) -> LoadOutcome {
    let shared = Arc::new(Shared::new(config));
    let started_unix_s = unix_now_s();
    let start = Instant::now();
    let deadline = start + shared.config.run_time;
    let ticker = tokio::spawn(interval_ticker(shared.clone(), start, started_unix_s));
    let mut users_max = 0_u32;
    let mut rounds = 0_u64;
    for index in 0_u64.. {
        if Instant::now() >= deadline || shared.stop.load(Ordering::SeqCst) || shared.budget_spent()
        {
            break;
        }
        if let Err(reason) = planner.before_round(index).await {
            shared.stop_with(format!("before round {index}: {reason}"));
            break;
        }
        let Some(requests) = planner.round(index) else { break };
        let users = requests.iter().map(|r| r.user).collect::<std::collections::BTreeSet<_>>();
        users_max = users_max.max(users.len() as u32);
        shared.users_running.store(users.len() as u64, Ordering::SeqCst);
        run_round(&shared, requests).await;
        rounds += 1;
    }
    let mut outcome = finish(shared, ticker, start, started_unix_s, users_max).await;
    outcome.rounds = Some(rounds);
    outcome
}

async fn run_round(shared: &Arc<Shared>, requests: Vec<ScheduledRequest>) {
    let round_start = Instant::now();
    // Each user (the simulation's booker) sends its requests in order on its own session, as
    // the simulated booker does; the round starts with no connection, as a simulated world.
    let mut users: std::collections::BTreeMap<u32, Vec<ScheduledRequest>> = Default::default();
    for scheduled in requests {
        if !shared.claim_request() {
            break;
        }
        users.entry(scheduled.user).or_default().push(scheduled);
    }
    let mut handles = Vec::with_capacity(users.len());
    for (_, mine) in users {
        let shared = shared.clone();
        handles.push(tokio::spawn(async move {
            let mut session = UserSession::new(shared.config.connections);
            for scheduled in mine {
                let intended = round_start + Duration::from_micros(scheduled.send_at_us);
                let measured_from = sleep_until_due(intended).await;
                send_and_record(&shared, &mut session, scheduled.request, measured_from).await;
            }
            session.finish(&shared);
        }));
    }
    for handle in handles {
        let _ = handle.await;
    }
}

/// Waits for `intended` and returns the instant the request's latency is measured from.
///
/// - `intended` has come already (the user is behind, held up by its own previous request,
///   or this is a round's first send): `intended` itself, so a slow system is charged in full
///   (no coordinated omission). No sleep: tokio's timer rounds every deadline UP to its next
///   millisecond tick, even one that has passed, so `sleep_until(now)` waited 0.5–1 ms that
///   was counted as the system's (validate's simultaneous 1-user rounds measured room
///   assignment p50 1.6 ms without that wait, 2.3–2.6 ms with it).
/// - `intended` is still to come: the moment the timer woke this task. The same rounding
///   wakes a send due in the future 0–1 ms late, and that overshoot is the load generator's:
///   the simulation sends at the intended instant. Until 2026-12-06 it was counted, adding
///   ~0.5 ms to every request of a scenario whose bookers arrive over a window (conflict, all,
///   rules) and ~1.3 ms to the backend CPU `--profile-from-run` measured on conflict.
async fn sleep_until_due(intended: Instant) -> Instant {
    if Instant::now() >= intended {
        return intended;
    }
    tokio::time::sleep_until(intended).await;
    Instant::now().max(intended)
}

async fn finish(
    shared: Arc<Shared>,
    ticker: tokio::task::JoinHandle<()>,
    start: Instant,
    started_unix_s: u64,
    users_max: u32,
) -> LoadOutcome {
    shared.stop.store(true, Ordering::SeqCst);
    let elapsed = start.elapsed();
    let _ = ticker.await;
    let recorder = {
        let mut recorder = shared.recorder.lock().expect("recorder lock");
        recorder.roll_interval(elapsed.as_millis() as u64, unix_now_s(), 0);
        std::mem::take(&mut *recorder)
    };
    let outcomes = shared.outcomes.lock().expect("outcomes lock").clone();
    let stopped_early = shared.stop_reason.lock().expect("stop reason lock").clone();
    let config = shared.config.clone();
    let outcome = LoadOutcome {
        recorder,
        outcomes,
        elapsed,
        started_unix_s,
        users_max,
        stopped_early,
        config,
        rounds: None,
        connections_opened: shared.connections_opened.load(Ordering::SeqCst),
    };
    if let Some(args) = &shared.config.checkpoint {
        report_checkpoint_error(&shared, report::write_checkpoint(args, &outcome));
    }
    outcome
}

/// The files of one checkpoint: a snapshot of the run so far.
fn checkpoint(shared: &Shared, recorder: Recorder, elapsed: Duration, started_unix_s: u64) {
    let Some(args) = &shared.config.checkpoint else { return };
    let snapshot = LoadOutcome {
        recorder,
        outcomes: shared.outcomes.lock().expect("outcomes lock").clone(),
        elapsed,
        started_unix_s,
        users_max: shared.users_running.load(Ordering::SeqCst) as u32,
        stopped_early: None,
        config: shared.config.clone(),
        rounds: None,
        connections_opened: shared.connections_opened.load(Ordering::SeqCst),
    };
    report_checkpoint_error(shared, report::write_checkpoint(args, &snapshot));
}

fn report_checkpoint_error(shared: &Shared, result: Result<(), RealError>) {
    if let Err(error) = result
        && !shared.checkpoint_failed.swap(true, Ordering::SeqCst)
    {
        eprintln!("warning: writing the report checkpoint failed: {error}");
    }
}

async fn closed_loop(shared: Arc<Shared>, fixture: Arc<Fixture>, start: Instant) -> u32 {
    let config = &shared.config;
    let deadline = start + config.run_time;
    let mut handles = Vec::with_capacity(config.users as usize);
    for user in 0..config.users {
        let spawn_at = start + Duration::from_secs_f64(user as f64 / config.spawn_rate_per_s);
        if spawn_at >= deadline || shared.stop.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep_until(spawn_at).await;
        let (shared, fixture) = (shared.clone(), fixture.clone());
        handles.push(tokio::spawn(async move {
            shared.users_running.fetch_add(1, Ordering::SeqCst);
            user_loop(&shared, &fixture, user as u64, deadline).await;
        }));
    }
    let users_started = handles.len() as u32;
    for handle in handles {
        let _ = handle.await;
    }
    users_started
}

async fn user_loop(shared: &Shared, fixture: &Fixture, user: u64, deadline: Instant) {
    let tasks = shared.config.tasks.clone();
    let mut workload = UserWorkload::new(fixture, &tasks, shared.config.seed, user);
    let mut session = UserSession::new(shared.config.connections);
    while Instant::now() < deadline && shared.claim_request() {
        let planned = workload.next_request();
        let sent_at = Instant::now();
        send_and_record(shared, &mut session, planned, sent_at).await;
        if shared.config.wait_ms > 0 {
            tokio::time::sleep(Duration::from_millis(shared.config.wait_ms)).await;
        }
    }
    session.finish(shared);
}

async fn open_loop(shared: Arc<Shared>, fixture: Arc<Fixture>, start: Instant, rate: f64) {
    let deadline = start + shared.config.run_time;
    let tasks = shared.config.tasks.clone();
    // One stream for the whole arrival sequence: request i is the same for every run.
    let mut workload = UserWorkload::new(&fixture, &tasks, shared.config.seed, u64::MAX);
    let mut handles = Vec::new();
    for index in 0_u64.. {
        let intended = start + Duration::from_secs_f64(index as f64 / rate);
        if intended >= deadline || !shared.claim_request() {
            break;
        }
        let measured_from = sleep_until_due(intended).await;
        let planned = workload.next_request();
        if shared.in_flight.load(Ordering::SeqCst) >= IN_FLIGHT_MAX {
            let name = planned.task.request_name();
            let latency_us = measured_from.elapsed().as_micros() as u64;
            let mut recorder = shared.recorder.lock().expect("recorder lock");
            recorder.record("POST", name, latency_us, 0, Some("in-flight limit"));
            continue;
        }
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        handles.push(tokio::spawn(async move {
            // No users here: keep-alive shares the pool, fresh opens a connection per request.
            let mut session = UserSession::open_loop(shared.config.connections);
            send_and_record(&shared, &mut session, planned, measured_from).await;
            session.finish(&shared);
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        }));
        handles.retain(|h: &tokio::task::JoinHandle<()>| !h.is_finished());
    }
    for handle in handles {
        let _ = handle.await;
    }
}

/// What one answered or failed request produced.
struct Answer {
    status: u16,
    body: Bytes,
    server_timing: Vec<(String, u64)>,
}

/// One user's way to the target: its keep-alive connection (kept only after a request's
/// answer was read in full, so a request cut short never leaves a half-read answer on it),
/// a fresh connection per request, or (open loop, keep-alive) the shared pool.
pub struct UserSession {
    mode: Connections,
    pooled: bool,
    idle: Option<SendRequest<Full<Bytes>>>,
    opened: u64,
}

impl UserSession {
    pub fn new(mode: Connections) -> UserSession {
        UserSession { mode, pooled: false, idle: None, opened: 0 }
    }

    fn open_loop(mode: Connections) -> UserSession {
        UserSession { pooled: mode == Connections::KeepAlive, ..UserSession::new(mode) }
    }

    /// Adds this session's connections to the run's count (the connection closes on drop).
    fn finish(self, shared: &Shared) {
        shared.connections_opened.fetch_add(self.opened, Ordering::SeqCst);
    }

    /// A usable connection: the idle one if it is still open, else a new one.
    async fn connection(&mut self, target: &Target) -> Result<SendRequest<Full<Bytes>>, String> {
        if let Some(mut sender) = self.idle.take()
            && sender.ready().await.is_ok()
        {
            return Ok(sender);
        }
        let address = target.base.trim_start_matches("http://");
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| format!("connect {address}: {e}"))?;
        let _ = stream.set_nodelay(true);
        self.opened += 1;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| error_chain(&e))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// Sends `request` (origin-form URI, Host header set) and reads the whole answer.
    async fn exchange(
        &mut self,
        shared: &Shared,
        request: http::Request<Full<Bytes>>,
    ) -> Result<Answer, String> {
        if self.pooled {
            let (mut parts, body) = request.into_parts();
            let url = format!("{}{}", shared.config.target.base, parts.uri);
            parts.uri = url.parse().map_err(|e| format!("the request URL {url}: {e}"))?;
            let response = shared
                .client
                .request(http::Request::from_parts(parts, body))
                .await
                .map_err(|e| error_chain(&e))?;
            return read_answer(response).await;
        }
        let mut sender = self.connection(&shared.config.target).await?;
        let response = sender.send_request(request).await.map_err(|e| error_chain(&e))?;
        let answer = read_answer(response).await?;
        if self.mode == Connections::KeepAlive {
            self.idle = Some(sender);
        }
        Ok(answer)
    }
}

async fn read_answer(response: http::Response<hyper::body::Incoming>) -> Result<Answer, String> {
    let status = response.status().as_u16();
    let server_timing = response
        .headers()
        .get_all("server-timing")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_server_timing)
        .collect();
    let body = response.into_body().collect().await.map_err(|e| error_chain(&e))?;
    Ok(Answer { status, body: body.to_bytes(), server_timing })
}

async fn send(
    shared: &Shared,
    session: &mut UserSession,
    planned: &PlannedRequest,
) -> Result<Answer, String> {
    let host = shared.config.target.base.trim_start_matches("http://");
    let mut request = http::Request::post(planned.task.path())
        .header(http::header::HOST, host)
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(key) = &planned.idempotency_key {
        request = request.header("Idempotency-Key", key.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from(planned.body.clone())))
        .map_err(|e| format!("building the request: {e}"))?;
    // A timeout drops the exchange and with it the connection it was using.
    match tokio::time::timeout(shared.config.timeout, session.exchange(shared, request)).await {
        Ok(answer) => answer,
        Err(_) => Err(format!("timeout after {} ms", shared.config.timeout.as_millis())),
    }
}

async fn send_and_record(
    shared: &Shared,
    session: &mut UserSession,
    planned: PlannedRequest,
    measured_from: Instant,
) {
    let answer = send(shared, session, &planned).await;
    let latency_us = measured_from.elapsed().as_micros() as u64;
    let name = planned.task.request_name();
    let mut recorder = shared.recorder.lock().expect("recorder lock");
    let mut outcomes = shared.outcomes.lock().expect("outcomes lock");
    match answer {
        Ok(answer) => {
            shared.connection_failures_in_row.store(0, Ordering::SeqCst);
            for (metric, duration_us) in &answer.server_timing {
                recorder.record_server_timing(metric, *duration_us);
                if SPLIT_BY_STATUS.contains(&metric.as_str()) {
                    // Split by the answer's status too (validate's diagnostic).
                    let key = status_key(metric, answer.status);
                    recorder.record_server_timing(&key, *duration_us);
                }
            }
            let error = classify(planned.task, &answer, &mut outcomes);
            if planned.task.books() && answer.status == 201 {
                recorder.record_room_assigned(latency_us);
            }
            let bytes = answer.body.len() as u64;
            recorder.record("POST", name, latency_us, bytes, error.as_deref());
        }
        Err(error) => {
            outcomes.failed += 1;
            recorder.record("POST", name, latency_us, 0, Some(&error));
            let in_row = shared.connection_failures_in_row.fetch_add(1, Ordering::SeqCst) + 1;
            if in_row >= CONNECTION_FAILURES_MAX {
                shared.stop_with(format!(
                    "target {} stopped answering ({in_row} failures in a row; last: {error})",
                    shared.config.target.base
                ));
            }
        }
    }
}

/// Counts the outcome; returns the failure message for a failed request.
fn classify(task: Task, answer: &Answer, outcomes: &mut Outcomes) -> Option<String> {
    match answer.status {
        201 if task.books() => {
            outcomes.booked += 1;
            None
        }
        // fallback "suggest": no room was free, the alternatives are the answer.
        200..=299 if task.books() => {
            outcomes.rejected += 1;
            None
        }
        200..=299 => {
            outcomes.previewed += 1;
            None
        }
        409 if task.books()
            && problem_code(&answer.body).as_deref() != Some("IDEMPOTENCY_IN_FLIGHT") =>
        {
            outcomes.rejected += 1;
            None
        }
        status => {
            outcomes.failed += 1;
            let code = problem_code(&answer.body).unwrap_or_default();
            Some(format!("HTTP {status} {code}").trim_end().to_string())
        }
    }
}

/// The `code` of an `application/problem+json` body, if any.
fn problem_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("code")?.as_str().map(str::to_string)
}

/// Rolls the recorder every interval and prints progress on stderr.
async fn interval_ticker(shared: Arc<Shared>, start: Instant, started_unix_s: u64) {
    let run_s = shared.config.run_time.as_secs();
    for tick in 1_u64.. {
        tokio::time::sleep_until(start + Duration::from_millis(tick * INTERVAL_MS)).await;
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let now_ms = start.elapsed().as_millis() as u64;
        let users = shared.users_running.load(Ordering::SeqCst) as u32;
        let mut recorder = shared.recorder.lock().expect("recorder lock");
        recorder.roll_interval(now_ms, unix_now_s(), users);
        if shared.config.checkpoint.is_some() {
            let snapshot = recorder.clone();
            drop(recorder);
            checkpoint(&shared, snapshot, Duration::from_millis(now_ms), started_unix_s);
            recorder = shared.recorder.lock().expect("recorder lock");
        }
        let elapsed_s = now_ms / 1_000;
        if shared.config.progress
            && run_s >= PROGRESS_INTERVAL_S
            && elapsed_s.is_multiple_of(PROGRESS_INTERVAL_S)
        {
            let all = recorder.aggregated();
            eprintln!(
                "[{elapsed_s:>4}s/{run_s}s] users {users:>5}  requests {:>8}  failures {:>6}  \
                 req/s {:>8.1}  p95 {:>8.2} ms",
                all.request_count,
                all.failure_count,
                all.requests_per_s(now_ms as f64 / 1_000.0),
                super::stats::value_or_zero(&all.histogram, 0.95) as f64 / 1_000.0,
            );
        }
    }
}

/// `error: cause: cause` of an error and its sources.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    let mut depth = 0;
    while let Some(cause) = source {
        if depth >= 8 {
            break;
        }
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
        depth += 1;
    }
    text
}

/// Seconds since the Unix epoch, for report timestamps only (never for measuring).
pub fn unix_now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_key_gives_its_status_back_and_no_other_key_does() {
        assert_eq!(status_key("conflict", 409), "conflict@409");
        assert_eq!(status_of_key("conflict", &status_key("conflict", 201)), Some(201));
        assert_eq!(status_of_key("rules", &status_key("rules", 200)), Some(200));
        let others = ["conflict", "rules", "conflict@", "conflict@x", "lock@409", "rules@409"];
        for other in others {
            assert_eq!(status_of_key("conflict", other), None, "{other}");
        }
    }

    #[test]
    fn targets_must_be_loopback_http() {
        assert_eq!(Target::parse("http://127.0.0.1:8000").unwrap().base, "http://127.0.0.1:8000");
        assert_eq!(Target::parse("http://localhost:9/").unwrap().base, "http://localhost:9");
        for bad in
            ["https://127.0.0.1:1", "http://10.0.0.1:80", "nonsense url", "http://127.0.0.1:1/x"]
        {
            let err = Target::parse(bad).unwrap_err();
            assert!(
                matches!(err, RealError::BadInput(_) | RealError::Database(_)),
                "the user must fix it (exit 2): {err:?}"
            );
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn conflict_409_is_a_rejection_not_a_failure() {
        let answer = |status, body: &str| Answer {
            status,
            body: Bytes::from(body.to_string()),
            server_timing: vec![],
        };
        let mut outcomes = Outcomes::default();
        let rejected = answer(409, r#"{"code":"ROOM_UNAVAILABLE"}"#);
        assert_eq!(classify(Task::Conflict, &rejected, &mut outcomes), None);
        let in_flight = answer(409, r#"{"code":"IDEMPOTENCY_IN_FLIGHT"}"#);
        assert!(classify(Task::Conflict, &in_flight, &mut outcomes).is_some());
        let err = classify(Task::Rules, &answer(500, r#"{"code":"INTERNAL"}"#), &mut outcomes);
        assert_eq!(err.as_deref(), Some("HTTP 500 INTERNAL"));
        assert_eq!(classify(Task::Concurrent, &answer(201, "{}"), &mut outcomes), None);
        assert_eq!(classify(Task::Concurrent, &answer(200, "{}"), &mut outcomes), None);
        assert_eq!(classify(Task::Rules, &answer(200, "{}"), &mut outcomes), None);
        assert_eq!(outcomes, Outcomes { booked: 1, rejected: 2, previewed: 1, failed: 2 });
    }

    /// Paused clock: tokio's timer still wakes on its millisecond ticks, so a send due at
    /// +2.3 ms wakes at +3 ms; the 0.7 ms overshoot must not count.
    #[tokio::test(start_paused = true)]
    async fn a_send_due_later_is_measured_from_when_it_woke_and_a_late_one_from_its_due_time() {
        let start = Instant::now();
        let intended = start + Duration::from_micros(2_300);
        let measured_from = sleep_until_due(intended).await;
        let woke = Instant::now();
        assert!(woke > intended, "the timer rounds up: woke {:?} after start", woke - start);
        assert_eq!(measured_from, woke, "the timer's overshoot is the load generator's");
        // Due already (the user's previous request ran past it): no wait, the due time.
        let overdue = woke - Duration::from_micros(400);
        assert_eq!(sleep_until_due(overdue).await, overdue);
        assert_eq!(Instant::now(), woke, "no sleep for a send that is due");
    }

    #[tokio::test]
    async fn a_dead_target_is_bad_input_and_a_dying_one_stops_the_run() {
        // Bind then drop a listener: the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let target = Target::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let err = preflight(&target).await.unwrap_err();
        assert!(
            matches!(err, RealError::BadInput(_) | RealError::Database(_)),
            "the user must fix it (exit 2): {err:?}"
        );
        assert!(err.to_string().contains("not answering"), "{err}");
        let config = LoadConfig {
            target,
            tasks: vec![Task::Concurrent],
            users: 4,
            spawn_rate_per_s: 1_000.0,
            run_time: Duration::from_secs(30),
            rate_per_s: None,
            wait_ms: 0,
            seed: 1,
            timeout: Duration::from_secs(1),
            requests_max: 100_000,
            progress: false,
            checkpoint: None,
            connections: Connections::KeepAlive,
        };
        let fixture = Arc::new(super::super::workload::tests::fixture());
        let outcome = run_load(config, fixture).await;
        let reason = outcome.stopped_early.expect("the run must stop by itself");
        assert!(reason.contains("stopped answering"), "{reason}");
        assert!(outcome.elapsed < Duration::from_secs(25), "stopped after {:?}", outcome.elapsed);
        assert!(outcome.outcomes.failed >= CONNECTION_FAILURES_MAX);
    }
}
