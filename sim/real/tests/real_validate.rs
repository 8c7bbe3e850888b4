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
//! After the timing artefacts were fixed (see sim/real/src/validate.rs, FIDELITY) and the
//! profile re-calibrated at 11:20, four 1-user runs passed with the committed profile (worst:
//! conflict p50 0.83–0.90, rules p95 1.10–1.21) and three with `--profile-from-run` (room
//! assignment p50 1.10–1.12, the simulation's tick floor).
//!
//! QUIET: the committed profile was measured on a QUIET machine; on a loaded one the real
//! side is several times slower and `validate` fails, as it should. So each attempt first asks
//! PostgreSQL for a CHECKPOINT (the suite's earlier tests leave dirty buffers whose flush
//! would land in the measurement) and waits, up to [`SETTLE_MAX`], for a second in which the
//! CPUs are at least [`IDLE_MIN_PERCENT`] idle (Linux `/proc/stat`; elsewhere no wait).
//!
//! SCALED: validate scales the committed profile to this machine by its statement probe (500
//! requests of the scenario's 1-user level, run as the real side runs it, just before it;
//! sim/README.md "A profile that travels"): on 2026-12-05 the committed profile, calibrated on
//! a moment 5x slower, passed with 0 of 6 quantiles out; in two runs of this test it passed at
//! the first and at the second attempt (the first: conflict detection p50 0.62, 100 µs
//! simulated against 161 µs real — two ticks of the simulation's 50 µs clock). On 2026-12-06
//! the probe, then a short calibration, measured faster statements than validate's rounds
//! make, and the 1-user room assignment came out at 0.71–0.80; now it runs those rounds.
//! Since 2026-12-07 the probe is, by default, the judged 1-user level itself
//! (`--statement-probe auto`, [`ProbeSource::FirstLevel`]): a probe run before it missed by
//! up to 40 % when the machine drifted in between. The profile's CLASSES are scaled by their
//! means there, so what this gate judges at one user is the model's composition and spread
//! (p95s, conflict detection), not the committed numbers' absolute speed.
//!
//! DRIFT: this VM's speed moves under us: on 2026-11-28 the same machine measured the real
//! 1-user room assignment p50 at 2.2 ms at 06:50 and 2.6–3.0 ms at 07:15 (rules evaluation, pure
//! CPU in the service, 19 → 28–36 µs), with no load of ours running, and CI's run of that
//! evening 2.9 ms (sim/real 0.75). No fixed profile holds ±15 % across that. When every
//! attempt with the committed profile fails, the test runs validate with
//! `--profile-from-run` ([`SimProfile::FromRun`]): the profile is measured DURING the real run
//! (calibrate's instruments on the same requests), so no drift can come between calibration
//! and measurement. (Calibrating first and validating a minute later was tried: in CI a
//! profile calibrated at one moment put rules evaluation p50 at 0.83 of the real side measured
//! a minute later.) A pass there means the MODEL holds and only the committed profile is stale
//! for this machine, which the test prints as a NOTICE; a failure there fails the test.
//! `sim/real/tests/real_pg.rs` shows that this judgement can fail: a model with 1 ms of network
//! latency it should not have is out of band against a profile from the same run.
//!
//! WHY ONE BOOKER: it is where the committed profile was measured and where the comparison is
//! sharp (no queueing). At 10 and 50 users most quantiles are in band on a quiet machine, not
//! all (see sim/real/src/validate.rs, "FIDELITY"), and the real side moves by 10–25 % from run
//! to run there. Calibrate your own profile with `roomsim calibrate` and pass it with
//! `--profile` to validate elsewhere.

use std::time::Duration;

use real::cpu_time::MachineTimes;
use real::database::DbTarget;
use real::report::ReportArgs;
use real::validate::{Knobs, ProbeSource, SimProfile, ValidateConfig, validate_command};

fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("NOTICE: DATABASE_URL is not set; skipping the real-PostgreSQL test");
            None
        }
    }
}

/// Runs `validate` at one booker with `profile`; returns (result, HTML report, report folder).
fn run_validate(
    url: &str,
    name: &str,
    profile: &SimProfile,
) -> (Result<(), real::RealError>, String, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("roomsim-ci-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = ValidateConfig {
        target: DbTarget::new(url, None).unwrap(),
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
        profile: profile.clone(),
        // validate scales the committed profile to this machine, class by class (printed), by
        // its statement probe: the default for a 1-user first level, that level itself.
        machine_scaling: true,
        probe_source: ProbeSource::for_levels(&[1]),
        connections: Default::default(),
        knobs: Knobs::default(),
        statement_times: false,
        wait_events: false,
        real_repeats: 1,
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let result = validate_command(config, &runtime);
    let html = std::fs::read_to_string(dir.join("validate.html")).expect("the HTML report");
    (result, html, dir)
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
/// Attempts with the profile measured during the run, when the committed one failed.
const FROM_RUN_ATTEMPTS_MAX: usize = 2;
/// Longest wait for a quiet second before an attempt.
const SETTLE_MAX: Duration = Duration::from_secs(60);
/// A second counts as quiet when the CPUs were at least this idle.
const IDLE_MIN_PERCENT: u64 = 85;

#[test]
fn validate_passes_on_the_committed_profile() {
    let Some(url) = database_url() else { return };
    let mut failures = Vec::new();
    if passes(&url, &SimProfile::committed(), ATTEMPTS_MAX, "committed", &mut failures) {
        return;
    }
    // The committed profile no longer describes this machine (the VM's speed drifts): does the
    // MODEL still hold? Measure the profile during the run itself and judge against it.
    if passes(&url, &SimProfile::FromRun, FROM_RUN_ATTEMPTS_MAX, "from-run", &mut failures) {
        eprintln!(
            "NOTICE: the COMMITTED profile failed validate on this machine ({}); with a profile \
             measured during the run it passes, so the model holds and the committed profile \
             is stale for this machine now: re-calibrate it (model/profiles/default.toml) if \
             this persists.",
            failures.join("; ")
        );
        return;
    }
    panic!("validate failed in every attempt: {}", failures.join("; "));
}

/// Up to `attempts` runs of validate with `profile`; true at the first pass.
fn passes(
    url: &str,
    profile: &SimProfile,
    attempts: usize,
    label: &str,
    failures: &mut Vec<String>,
) -> bool {
    for attempt in 1..=attempts {
        settle(url);
        let (result, html, dir) = run_validate(url, &format!("{label}{attempt}"), profile);
        check_run(&html, &dir);
        if matches!(profile, SimProfile::FromRun) {
            let written = dir.join("validate.profile.toml");
            assert!(written.exists(), "the measured profile is written beside the report");
            assert!(html.contains("simulation profile: measured during this run"), "named");
        }
        eprintln!("{label} profile, attempt {attempt}:\n{}", verdict_lines(&html));
        // A real side measured beside other work (validate's warning): said with the verdict.
        for line in html.lines().filter(|l| l.contains("shared its machine")) {
            eprintln!("NOTICE: {}", line.trim());
        }
        match result {
            Ok(()) => return true,
            Err(error) => failures.push(format!("{label} profile, attempt {attempt}: {error}")),
        }
    }
    false
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

/// The CPUs' idle share over `window`, from `/proc/stat` (idle + iowait over all,
/// `real::cpu_time::MachineTimes`).
fn idle_percent_over(window: Duration) -> Option<u64> {
    let before = MachineTimes::now()?;
    std::thread::sleep(window);
    let after = MachineTimes::now()?;
    let all = |t: &MachineTimes| t.busy_us + t.idle_us + t.steal_us;
    let total = all(&after).saturating_sub(all(&before)).max(1);
    Some(after.idle_us.saturating_sub(before.idle_us) * 100 / total)
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
    let table = html.lines().filter(|l| l.contains("FAIL") || l.contains("pass")).count();
    assert!(table >= 6, "the verdicts are in the report");
}

/// The verdict rows of the report, for the failure message.
fn verdict_lines(html: &str) -> String {
    let rows: Vec<&str> =
        html.lines().filter(|l| l.contains("FAIL") || l.contains("pass")).collect();
    rows.join("\n")
}
