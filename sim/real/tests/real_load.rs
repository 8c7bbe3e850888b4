//! The real load generator end to end against a stub HTTP server on 127.0.0.1 (no database):
//! closed and open loop, Server-Timing capture, 409 handling, a server dying mid-run, and the
//! reports — including the HTML report opened in headless Chromium.
//!
//! The stub answers like backend-core's API: 201 for bookings (409 ROOM_UNAVAILABLE for every
//! other conflict-slot booking), 200 for previews, a fixed `Server-Timing` header, and it can
//! be told to close its listener after N requests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use chrono::NaiveDate;
use real::load::{LoadConfig, LoadOutcome, Target, preflight, run_load};
use real::report::{self, ReportArgs, ReportExtras};
use real::workload::{Fixture, Task};
use tokio::sync::Notify;
use uuid::Uuid;

struct Stub {
    requests: AtomicU64,
    /// TCP connections the stub accepted.
    connections: AtomicU64,
    close_after: u64,
    closed: Notify,
}

async fn book(
    stub: Arc<Stub>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, HeaderMap, String) {
    let n = stub.requests.fetch_add(1, Ordering::SeqCst) + 1;
    if n == stub.close_after {
        stub.closed.notify_one();
    }
    assert!(headers.contains_key("idempotency-key"), "bookings carry an Idempotency-Key");
    let value: serde_json::Value = serde_json::from_str(&body).expect("the body is JSON");
    let hot = value["start"].as_str().unwrap().starts_with("2031-03-03T09:");
    let mut out = HeaderMap::new();
    out.insert("server-timing", "rules;dur=0.250, conflict;dur=0.100, db;dur=1.5".parse().unwrap());
    if hot && n.is_multiple_of(2) {
        return (StatusCode::CONFLICT, out, r#"{"code":"ROOM_UNAVAILABLE"}"#.to_string());
    }
    (StatusCode::CREATED, out, r#"{"status":"booked"}"#.to_string())
}

async fn preview() -> (StatusCode, HeaderMap, &'static str) {
    let mut out = HeaderMap::new();
    out.insert("server-timing", "rules;dur=0.500".parse().unwrap());
    (StatusCode::OK, out, r#"{"ranked":[]}"#)
}

/// Serves the stub on its own runtime thread; after `close_after` booking requests the runtime
/// is dropped, which closes the listener and every open connection (a crashed server).
async fn serve_stub(close_after: u64) -> (SocketAddr, Arc<Stub>) {
    let stub = Arc::new(Stub {
        requests: AtomicU64::new(0),
        connections: AtomicU64::new(0),
        close_after,
        closed: Notify::new(),
    });
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let server_stub = stub.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let booking = server_stub.clone();
            let router = Router::new()
                .route("/healthz", get(|| async { "ok" }))
                .route("/v1/appointments", post(move |h, b| book(booking.clone(), h, b)))
                .route("/v1/room-assignments:preview", post(preview));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            sender.send(listener.local_addr().unwrap()).unwrap();
            let counter = server_stub.clone();
            let listener = axum::serve::ListenerExt::tap_io(listener, move |_| {
                counter.connections.fetch_add(1, Ordering::SeqCst);
            });
            tokio::select! {
                biased;
                _ = server_stub.closed.notified() => {}
                _ = axum::serve(listener, router) => {}
            }
        });
        drop(runtime);
    });
    let address = receiver.await.unwrap();
    (address, stub)
}

fn fixture() -> Arc<Fixture> {
    Arc::new(Fixture {
        clinic_id: Uuid::from_u128(1),
        doctor_ids: (10..20).map(Uuid::from_u128).collect(),
        patient_ids: (100..200).map(Uuid::from_u128).collect(),
        room_ids: (200..210).map(Uuid::from_u128).collect(),
        appointment_types: vec!["follow_up".to_string()],
        first_day: NaiveDate::from_ymd_opt(2031, 3, 3).unwrap(),
    })
}

fn config(address: SocketAddr, tasks: Vec<Task>) -> LoadConfig {
    LoadConfig {
        target: Target::parse(&format!("http://{address}")).unwrap(),
        tasks,
        users: 8,
        spawn_rate_per_s: 100.0,
        run_time: Duration::from_millis(2_500),
        rate_per_s: None,
        wait_ms: 0,
        seed: 7,
        timeout: Duration::from_secs(2),
        requests_max: 2_000,
        progress: false,
        checkpoint: None,
        connections: Default::default(),
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("roomsim-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_counts_outcomes_and_server_timing() {
    let (address, stub) = serve_stub(u64::MAX).await;
    let config = config(address, Task::ALL.to_vec());
    preflight(&config.target).await.unwrap();
    let outcome = run_load(config, fixture()).await;
    assert_eq!(outcome.stopped_early, None);
    let all = outcome.recorder.aggregated();
    assert_eq!(all.failure_count, 0, "{:?}", outcome.recorder.failures);
    assert_eq!(all.request_count, 2_000, "the request budget bounds the run");
    let o = &outcome.outcomes;
    assert_eq!(o.booked + o.rejected + o.previewed, 2_000);
    assert!(o.rejected > 0 && o.previewed > 0 && o.booked > 0, "{o:?}");
    assert_eq!(stub.requests.load(Ordering::SeqCst), o.booked + o.rejected);
    let rules = &outcome.recorder.server_timing["rules"];
    assert_eq!(rules.len(), 2_000, "every answer carried rules timing");
    assert_eq!(rules.value_at_quantile(0.01), 250, "0.250 ms booking rules time");
    assert_eq!(rules.max(), 500, "0.500 ms preview rules time");
    assert_eq!(outcome.users_max, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_sends_at_the_fixed_rate() {
    let (address, _stub) = serve_stub(u64::MAX).await;
    let mut config = config(address, vec![Task::Concurrent]);
    config.rate_per_s = Some(200.0);
    config.run_time = Duration::from_secs(2);
    let outcome = run_load(config, fixture()).await;
    let all = outcome.recorder.aggregated();
    // 2 s at 200/s: exactly 400 intended arrivals.
    assert_eq!(all.request_count, 400);
    assert_eq!(outcome.outcomes.booked, 400);
    let rps = outcome.recorder.history.iter().filter(|r| r.name == "Aggregated").nth(1).unwrap();
    assert!((rps.requests_per_s - 200.0).abs() < 40.0, "second interval at {}", rps.requests_per_s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_dying_mid_run_stops_the_run_and_keeps_partial_results() {
    let (address, _stub) = serve_stub(300).await;
    let mut config = config(address, vec![Task::Concurrent]);
    config.run_time = Duration::from_secs(60);
    config.requests_max = 1_000_000;
    let checkpoint_dir = temp_dir("partial-checkpoint");
    config.checkpoint = Some(ReportArgs {
        csv: Some(checkpoint_dir.join("run").display().to_string()),
        hlog: Some(checkpoint_dir.join("run.hlog")),
        ..ReportArgs::default()
    });
    let outcome = run_load(config, fixture()).await;
    let reason = outcome.stopped_early.clone().expect("the run must notice the dead server");
    assert!(reason.contains("stopped answering"), "{reason}");
    assert!(outcome.elapsed < Duration::from_secs(30), "stopped after {:?}", outcome.elapsed);
    assert!(outcome.outcomes.booked >= 250, "partial results kept: {:?}", outcome.outcomes);
    let dir = temp_dir("partial");
    let args = ReportArgs {
        csv: Some(dir.join("run").display().to_string()),
        html: Some(dir.join("run.html")),
        hlog: Some(dir.join("run.hlog")),
        csv_full_history: false,
    };
    // The checkpoint at the run's end already left the partial results on disk.
    let checkpointed = aggregated_count(&checkpoint_dir.join("run_stats.csv"));
    assert_eq!(checkpointed, outcome.recorder.aggregated().request_count);
    report::write_all(&args, &outcome, None).unwrap();
    let html = std::fs::read_to_string(dir.join("run.html")).unwrap();
    assert!(html.contains("Stopped early"));
    let failures = std::fs::read_to_string(dir.join("run_failures.csv")).unwrap();
    assert!(failures.lines().count() >= 2, "{failures}");
}

/// The `Aggregated` request count of a Locust-style stats CSV.
fn aggregated_count(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let row = text.lines().find(|l| l.starts_with(",Aggregated,")).expect("an Aggregated row");
    row.split(',').nth(2).unwrap().parse().unwrap()
}

/// A run killed mid-way (its task aborted, as when the process dies) leaves the CSV files and
/// the interval log of every completed second: they are written while the run goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_way_leaves_its_checkpointed_reports() {
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let (address, _stub) = serve_stub(u64::MAX).await;
    let dir = temp_dir("killed");
    let mut config = config(address, vec![Task::Concurrent]);
    config.run_time = Duration::from_secs(60);
    config.requests_max = u64::MAX;
    config.checkpoint = Some(ReportArgs {
        csv: Some(dir.join("run").display().to_string()),
        hlog: Some(dir.join("run.hlog")),
        ..ReportArgs::default()
    });
    let run = tokio::spawn(run_load(config, fixture()));
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    let seen_while_running = aggregated_count(&dir.join("run_stats.csv"));
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled(), "the run was killed, not finished");
    assert!(seen_while_running > 0, "stats written while the run was going on");
    let history = std::fs::read_to_string(dir.join("run_stats_history.csv")).unwrap();
    let rows = history.lines().filter(|l| l.contains(",Aggregated,")).count();
    assert!((2..=3).contains(&rows), "one row per completed second: {history}");
    let bytes = std::fs::read(dir.join("run.hlog")).unwrap();
    let intervals =
        IntervalLogIterator::new(&bytes).filter(|e| matches!(e, Ok(LogEntry::Interval(_)))).count();
    assert!(intervals >= 2, "interval log has the completed seconds: {intervals}");
    assert!(!dir.join("run_stats.csv.tmp").exists(), "no half-written file left behind");
}

/// Generates a report from a real (stub-served) run for the browser test.
async fn generated_report(dir: &Path) -> PathBuf {
    let (address, _stub) = serve_stub(u64::MAX).await;
    let mut config = config(address, Task::ALL.to_vec());
    config.run_time = Duration::from_millis(2_200);
    config.requests_max = 100_000;
    let outcome: LoadOutcome = run_load(config, fixture()).await;
    let path = dir.join("report.html");
    let args = ReportArgs { html: Some(path.clone()), ..ReportArgs::default() };
    let real = report::room_assignment(&outcome.recorder);
    let overlay = report::Overlay {
        label: "room_assignment".to_string(),
        comparison: sim::compare::compare(&real, &real),
        sim: real.clone(),
        real,
    };
    let extras = ReportExtras { overlays: vec![overlay], ..ReportExtras::default() };
    report::write_all(&args, &outcome, Some(&extras)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_renders_in_headless_chromium() {
    let dir = temp_dir("browser");
    let path = generated_report(&dir).await;
    if Command::new("chromium").arg("--version").output().is_err() {
        eprintln!("NOTICE: chromium not installed; skipping the browser check (CI installs it)");
        return;
    }
    let profile = dir.join("chromium-profile");
    let output = Command::new("timeout")
        .arg("120")
        .arg("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", path.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&output.stdout);
    let check = dom
        .split("data-render-check=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| {
            panic!(
                "the render check did not run; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    // run, requests, percentiles, server-timing, failures; charts: time, rps, CDF.
    assert_eq!(check, "tables=5/5 charts=3/3", "DOM: {dom}");
    assert!(dom.contains("room_assignment sim"), "the CDF legend names the simulated line");
}

/// `rounds` rounds (three in most tests) of ten bookings, each sent 1 ms apart, by `users`
/// users (booking i by user i mod `users`, so each user sends its bookings of a round in
/// order).
struct TenBookingRounds {
    fixture: Arc<Fixture>,
    users: u64,
    rounds: u64,
}

impl real::load::RoundPlanner for TenBookingRounds {
    fn round(&mut self, index: u64) -> Option<Vec<real::load::ScheduledRequest>> {
        if index >= self.rounds {
            return None;
        }
        let tasks = [Task::Concurrent];
        let mut workload =
            real::workload::UserWorkload::new(&self.fixture, &tasks, self.users, index);
        let requests = (0..10_u64)
            .map(|i| real::load::ScheduledRequest {
                user: (i % self.users) as u32,
                send_at_us: i * 1_000,
                request: workload.next_request(),
            })
            .collect();
        Some(requests)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_replay_a_schedule_until_the_planner_ends() {
    let (address, stub) = serve_stub(u64::MAX).await;
    let mut config = config(address, vec![Task::Concurrent]);
    config.run_time = Duration::from_secs(30);
    let outcome = real::load::run_rounds(
        config,
        &mut TenBookingRounds { fixture: fixture(), users: 10, rounds: 3 },
    )
    .await;
    assert_eq!(outcome.stopped_early, None);
    assert_eq!(outcome.recorder.aggregated().request_count, 30);
    assert_eq!(stub.requests.load(Ordering::SeqCst), 30);
    assert_eq!(outcome.users_max, 10);
    assert_eq!(outcome.rounds, Some(3));
    assert!(outcome.elapsed < Duration::from_secs(5), "rounds end with the planner");
}

/// A request budget ends the rounds (validate's statement probe), not only the run time: the
/// rounds stop once it is spent, mid-round included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_end_when_the_request_budget_is_spent() {
    let (address, stub) = serve_stub(u64::MAX).await;
    let mut config = config(address, vec![Task::Concurrent]);
    config.run_time = Duration::from_secs(30);
    config.requests_max = 15;
    let mut endless = TenBookingRounds { fixture: fixture(), users: 10, rounds: u64::MAX };
    let outcome = real::load::run_rounds(config, &mut endless).await;
    assert_eq!(outcome.stopped_early, None);
    assert_eq!(outcome.recorder.aggregated().request_count, 15);
    assert_eq!(stub.requests.load(Ordering::SeqCst), 15);
    assert_eq!(outcome.rounds, Some(2), "ten requests, then five of the second round");
    assert!(outcome.elapsed < Duration::from_secs(5), "it ran {:?}", outcome.elapsed);
}

/// Locust's HttpUser: each closed-loop user keeps one keep-alive connection, so the server
/// accepts one connection per user for hundreds of requests (plus the preflight's); with
/// `--fresh-connections` one per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_is_one_connection_per_user_fresh_one_per_request() {
    use real::load::Connections;
    for mode in [Connections::KeepAlive, Connections::Fresh] {
        let (address, stub) = serve_stub(u64::MAX).await;
        let mut config = config(address, vec![Task::Concurrent]);
        config.requests_max = 400;
        config.spawn_rate_per_s = 1_000_000.0;
        config.connections = mode;
        let outcome = run_load(config, fixture()).await;
        assert_eq!(outcome.stopped_early, None);
        let all = outcome.recorder.aggregated();
        assert_eq!(all.failure_count, 0, "{:?}", outcome.recorder.failures);
        assert_eq!(all.request_count, 400);
        let accepted = stub.connections.load(Ordering::SeqCst);
        match mode {
            Connections::KeepAlive => {
                assert_eq!(outcome.connections_opened, 8, "one per user ({mode:?})");
                assert_eq!(accepted, 8, "the server accepted one per user");
            }
            Connections::Fresh => {
                assert_eq!(outcome.connections_opened, 400, "one per request ({mode:?})");
                assert_eq!(accepted, 400, "the server accepted one per request");
            }
        }
    }
}

/// validate's real side: each round's booker (the simulation's) sends its requests in order
/// on one connection, opened at its first request of the round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_give_each_booker_one_connection_per_round() {
    let (address, stub) = serve_stub(u64::MAX).await;
    let mut config = config(address, vec![Task::Concurrent]);
    config.run_time = Duration::from_secs(30);
    let outcome = real::load::run_rounds(
        config,
        &mut TenBookingRounds { fixture: fixture(), users: 5, rounds: 3 },
    )
    .await;
    assert_eq!(outcome.stopped_early, None);
    assert_eq!(outcome.recorder.aggregated().request_count, 30);
    assert_eq!(outcome.users_max, 5, "two requests per user");
    // 3 rounds × 5 users: a round starts with no connection, as a simulated world does.
    assert_eq!(outcome.connections_opened, 15);
    assert_eq!(stub.connections.load(Ordering::SeqCst), 15);
}
