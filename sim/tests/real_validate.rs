//! CI's `roomsim validate`: the storm on real PostgreSQL (`DATABASE_URL`; skips with a notice
//! without it) and in the simulation with the COMMITTED default profile, at a reduced run time
//! (about 12 s real plus the simulated seeds; under a minute), at one booker.
//!
//! GATING: `validate` must PASS, in one of at most [`ATTEMPTS_MAX`] attempts: every judged
//! quantile (p50 and p95 of room assignment, conflict detection and rules evaluation; p99 has
//! too few samples beyond it in 12 s) within its band, no double booking and no deadlock on
//! PostgreSQL. Each attempt also checks that every report is written (per-level CSV, interval
//! log, HTML) and that the six quantiles were judged.
//!
//! Before: only the p50s and room assignment's p95 were gated, because with one service-time
//! table per statement kind the simulation's spread was too wide (conflict p95 1.3× real).
//! With a table per statement text (`calibrate`'s classes), five quiet 1-user runs on
//! 2026-11-28 put every quantile in band (worst ratios: rules p95 0.84, conflict p95 0.90).
//!
//! QUIET: the committed profile was measured on a QUIET machine; on a loaded one the real
//! side is several times slower and `validate` fails, as it should. So each attempt first asks
//! PostgreSQL for a CHECKPOINT (the suite's earlier tests leave dirty buffers whose flush
//! would land in the measurement) and waits, up to [`SETTLE_MAX`], for a second in which the
//! CPUs are at least [`IDLE_MIN_PERCENT`] idle (Linux `/proc/stat`; elsewhere no wait).
//!
//! WHY ONE BOOKER: it is where the committed profile was measured and where the comparison is
//! sharp (no queueing). At 10 and 50 users most quantiles are in band on a quiet machine, not
//! all (see sim/src/real/validate.rs, "FIDELITY"), and the real side moves by 10–25 % from run
//! to run there. Calibrate your own profile with `roomsim calibrate` and pass it with
//! `--profile` to validate elsewhere.

use std::time::Duration;

use sim::real::database::DbTarget;
use sim::real::report::ReportArgs;
use sim::real::validate::{ValidateConfig, validate_command};

fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("NOTICE: DATABASE_URL is not set; skipping the real-PostgreSQL test");
            None
        }
    }
}

/// Runs `validate` at one booker with the committed profile; returns (result, HTML report).
fn run_validate(
    name: &str,
) -> Option<(Result<(), sim::real::RealError>, String, std::path::PathBuf)> {
    let url = database_url()?;
    let dir = std::env::temp_dir().join(format!("roomsim-ci-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = ValidateConfig {
        target: DbTarget::new(&url, None).unwrap(),
        scenario: "storm".to_string(),
        levels: vec![1],
        run_time: Duration::from_secs(12),
        strategy: "exclusion".parse().unwrap(),
        seed: 1,
        reports: ReportArgs {
            html: Some(dir.join("validate.html")),
            csv: Some(dir.join("validate").display().to_string()),
            csv_full_history: false,
            hlog: Some(dir.join("validate.hlog")),
        },
        profile: sim::world::default_profile(),
        profile_source: "the committed default (model/profiles/default.toml)".to_string(),
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let result = validate_command(config, &runtime);
    let html = std::fs::read_to_string(dir.join("validate.html")).expect("the HTML report");
    Some((result, html, dir))
}

/// (judged quantiles, out of band) from the table's summary line.
fn judgement(html: &str) -> (u64, u64) {
    let line = html.lines().find(|l| l.contains("judged quantiles: ")).expect("a judgement line");
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().unwrap())
        .collect();
    (numbers[0], numbers[1])
}

/// Attempts at most: the real side's speed drifts by 10–25 % within minutes on this VM, so
/// retries separate a model that is off (fails every time) from a moment of drift.
const ATTEMPTS_MAX: usize = 3;
/// Longest wait for a quiet second before an attempt.
const SETTLE_MAX: Duration = Duration::from_secs(60);
/// A second counts as quiet when the CPUs were at least this idle.
const IDLE_MIN_PERCENT: u64 = 85;

#[test]
fn validate_passes_on_the_committed_profile() {
    let Some(url) = database_url() else { return };
    let mut failures = Vec::new();
    for attempt in 1..=ATTEMPTS_MAX {
        settle(&url);
        let Some((result, html, dir)) = run_validate(&format!("validate{attempt}")) else {
            return;
        };
        check_run(&html, &dir);
        eprintln!("attempt {attempt}:\n{}", verdict_lines(&html));
        match result {
            Ok(()) => return,
            Err(error) => failures.push(format!("attempt {attempt}: {error}")),
        }
    }
    panic!("validate failed in every attempt: {}", failures.join("; "));
}

/// CHECKPOINT (best effort: needs a superuser), then wait for a quiet second.
fn settle(url: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let checkpoint = runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::query("CHECKPOINT").execute(&mut conn).await?;
        conn.close().await
    });
    if let Err(error) = checkpoint {
        eprintln!("NOTICE: CHECKPOINT before validate failed (measuring anyway): {error}");
    }
    let started = std::time::Instant::now();
    while started.elapsed() < SETTLE_MAX {
        match idle_percent_over(Duration::from_secs(1)) {
            None => return, // no /proc/stat: cannot tell
            Some(idle) if idle >= IDLE_MIN_PERCENT => return,
            Some(idle) => eprintln!("NOTICE: machine busy ({idle}% idle); waiting to measure"),
        }
    }
    eprintln!("NOTICE: no quiet second in {SETTLE_MAX:?}; measuring anyway");
}

/// The CPUs' idle share over `window`, from `/proc/stat` (idle + iowait over all).
fn idle_percent_over(window: Duration) -> Option<u64> {
    fn sample() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().next()?.strip_prefix("cpu ")?;
        let fields: Vec<u64> = line.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
        Some((idle, fields.iter().take(8).sum()))
    }
    let (idle0, total0) = sample()?;
    std::thread::sleep(window);
    let (idle1, total1) = sample()?;
    let total = total1.saturating_sub(total0).max(1);
    Some(idle1.saturating_sub(idle0) * 100 / total)
}

/// Everything but the bands: reports written, enough samples, no anomaly.
fn check_run(html: &str, dir: &std::path::Path) {
    assert!(html.contains("Real vs simulated"), "the comparison is in the report");
    let stats = std::fs::read_to_string(dir.join("validate-1u_stats.csv")).expect("level CSV");
    let aggregated = stats.lines().find(|l| l.starts_with(",Aggregated,")).unwrap();
    let requests: u64 = aggregated.split(',').nth(2).unwrap().parse().unwrap();
    assert!(requests >= 500, "too few bookings for a judgement: {requests}");
    assert!(dir.join("validate-1u.hlog").exists(), "interval log of the level");
    assert!(html.contains("double bookings per 1,000 bookings: real 0.00"), "no double booking");
    assert!(html.contains("deadlocks on PostgreSQL (delta): 0"), "no deadlock");
    assert!(!html.contains("FAIL: "), "no anomaly or stopped-run failure");
    let (judged, _) = judgement(html);
    assert!(judged >= 6, "p50 and p95 of the three metrics must be judged, got {judged}");
}

/// The verdict rows of the report, for the failure message.
fn verdict_lines(html: &str) -> String {
    let rows: Vec<&str> =
        html.lines().filter(|l| l.contains("FAIL") || l.contains("pass")).collect();
    rows.join("\n")
}
