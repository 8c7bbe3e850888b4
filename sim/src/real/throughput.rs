//! `roomsim throughput`: booking throughput through the real HTTP service with N users,
//! side by side with `pgbench` running the same booking SQL with N clients, in one run on one
//! machine (the issue's performance figure: aim for at least 0.5×).
//!
//! THE SAME SQL: [`pgbench_script`] is the statement sequence backend-core runs for one
//! `exclusion` booking with an Idempotency-Key, in order: the idempotency lookup, the snapshot
//! reads (policy version, clinic, doctor, patient, appointment type, rooms, the day's
//! appointments), then `BEGIN`, the key's advisory lock and lookup, `SAVEPOINT`, the
//! appointment `INSERT`, the key `INSERT`, `COMMIT` — 15 statements, prepared
//! (`-M prepared`, as sqlx prepares them). Parameters are computed from a per-client counter
//! (`-D k=0`), so every booking gets its own hour and never meets an exclusion conflict: the
//! figure is the database's cost of the booking path, without the allocator, HTTP or JSON.
//! Ids follow `crate::ids` (`kind << 120 | index`), so they name the seeded storm clinic.
//!
//! Both sides run in a temporary database; the HTTP side first (closed loop, `concurrent`
//! tag), then `pgbench` for the same duration.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use backend_core::booking::Strategy;
use backend_core::db::schema::SchemaVariant;

use super::RealError;
use super::database::{DbTarget, TempDatabase, unique_database_name};
use super::load::{LoadConfig, run_load};
use super::report;
use super::serve::{ServeConfig, Server};
use super::setup::setup_for_run;
use super::stats::value_or_zero;
use super::workload::Task;

/// How to measure.
#[derive(Clone, Debug)]
pub struct ThroughputConfig {
    pub target: DbTarget,
    pub clients: u32,
    pub pool_connections: u32,
    pub run_time: Duration,
    pub seed: u64,
}

/// What was measured.
#[derive(Clone, Debug, PartialEq)]
pub struct ThroughputFigures {
    pub http_bookings_per_s: f64,
    pub http_room_assignment_p95_us: u64,
    pub http_failures: u64,
    pub pgbench_tps: f64,
}

impl ThroughputFigures {
    pub fn ratio(&self) -> f64 {
        if self.pgbench_tps > 0.0 { self.http_bookings_per_s / self.pgbench_tps } else { 0.0 }
    }
}

/// The pgbench script: one exclusion booking with an Idempotency-Key (see the module doc).
pub fn pgbench_script() -> String {
    let clinic = "'01000000-0000-0000-0000-000000000000'::uuid";
    let id = |kind: &str, var: &str| {
        format!("('{kind}000000-0000-0000-0000-' || lpad(to_hex(:{var}::bigint), 12, '0'))::uuid")
    };
    let (room, doctor, patient, appointment) =
        (id("02", "r"), id("03", "d"), id("04", "p"), id("05", "n"));
    let start = "('2030-01-01T00:00:00Z'::timestamptz + :n * interval '1 hour')";
    let end = format!("({start} + interval '30 minutes')");
    let blocked = format!("({start} + interval '35 minutes')");
    let key = "('bench-' || :n)";
    format!(
        "\\set k :k + 1\n\
         \\set n :k * 1000 + :client_id\n\
         \\set r :n % 30\n\
         \\set d :n % 25\n\
         \\set p :n % 50\n\
         SELECT request_hash, status_code, body FROM idempotency_keys WHERE key = {key};\n\
         SELECT max(version) AS version FROM rule_policies WHERE clinic_id = {clinic};\n\
         SELECT body FROM clinics WHERE id = {clinic};\n\
         SELECT body FROM doctors WHERE id = {doctor} AND clinic_id = {clinic};\n\
         SELECT body FROM patients WHERE id = {patient};\n\
         SELECT body FROM appointment_types WHERE clinic_id = {clinic} AND key = 'consult';\n\
         SELECT body FROM rooms WHERE clinic_id = {clinic} ORDER BY id LIMIT 1001;\n\
         SELECT id, clinic_id, room_id, doctor_id, patient_id, appointment_type, starts_at, \
         ends_at, turnover_minutes, status, infectious, patient_gender FROM appointments \
         WHERE clinic_id = {clinic} AND starts_at < date_trunc('day', {start}) + interval '26 hours' \
         AND blocked_until > date_trunc('day', {start}) - interval '2 hours' \
         ORDER BY starts_at, id LIMIT 100001;\n\
         BEGIN ISOLATION LEVEL READ COMMITTED;\n\
         SELECT pg_try_advisory_xact_lock(:n) AS locked;\n\
         SELECT request_hash, status_code, body FROM idempotency_keys WHERE key = {key};\n\
         SAVEPOINT candidate;\n\
         INSERT INTO appointments (id, clinic_id, room_id, doctor_id, patient_id, \
         appointment_type, starts_at, ends_at, turnover_minutes, blocked_until, status, \
         infectious, patient_gender, policy_version, score, created_at) VALUES ({appointment}, \
         {clinic}, {room}, {doctor}, {patient}, 'consult', {start}, {end}, 5, {blocked}, 'booked', \
         false, NULL::text, 1, '0hard/0medium/-4soft', now());\n\
         INSERT INTO idempotency_keys (key, request_hash, status_code, body, appointment_id, \
         created_at) VALUES ({key}, 'hash', 201, '{{\"status\":\"booked\"}}', {appointment}, now());\n\
         COMMIT;\n"
    )
}

/// Runs pgbench and returns its tps (without initial connection time).
fn run_pgbench(url: &str, script: &Path, clients: u32, seconds: u64) -> Result<f64, RealError> {
    let output = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-D", "k=0", "-j", "2"])
        .arg(format!("--client={clients}"))
        .arg(format!("--time={seconds}"))
        .arg(format!("--file={}", script.display()))
        .arg(url)
        .output()
        .map_err(|e| RealError::BadInput(format!("cannot run pgbench: {e} (is it installed?)")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tps = stdout
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l["tps = ".len()..].split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok());
    match (output.status.success(), tps) {
        (true, Some(tps)) => Ok(tps),
        _ => Err(RealError::RunFailed(format!("pgbench failed: {stdout}\n{stderr}"))),
    }
}

/// Measures both sides in a temporary database.
pub async fn measure(config: &ThroughputConfig) -> Result<ThroughputFigures, RealError> {
    let temp = TempDatabase::create(&config.target, &unique_database_name("roomsim_bench")).await?;
    let result = measure_in(&temp.target, config).await;
    temp.drop_database().await;
    result
}

async fn measure_in(
    target: &DbTarget,
    config: &ThroughputConfig,
) -> Result<ThroughputFigures, RealError> {
    let fixture = setup_for_run(target, "storm", SchemaVariant::Guarded).await?;
    let serve_config =
        ServeConfig::ephemeral(target, config.pool_connections, Strategy::Exclusion, config.seed);
    let server = Server::start(&serve_config).await?;
    let tasks = vec![Task::Concurrent];
    let load_config =
        LoadConfig::closed(&server.base_url(), tasks, config.clients, config.run_time, config.seed);
    let outcome = run_load(load_config, fixture).await;
    server.stop().await;
    let script_path: PathBuf =
        std::env::temp_dir().join(format!("{}.sql", unique_database_name("roomsim_pgbench")));
    std::fs::write(&script_path, pgbench_script()).map_err(|e| RealError::io(&script_path, e))?;
    let seconds = config.run_time.as_secs().max(1);
    let (url, clients) = (target.url.clone(), config.clients);
    let script = script_path.clone();
    // pgbench is a child process; waiting for it on this runtime thread is fine: nothing else
    // runs on this runtime now.
    let tps = run_pgbench(&url, &script, clients, seconds);
    let _ = std::fs::remove_file(&script_path);
    let assign = report::room_assignment(&outcome.recorder);
    Ok(ThroughputFigures {
        http_bookings_per_s: outcome.bookings_per_s(),
        http_room_assignment_p95_us: value_or_zero(&assign, 0.95),
        http_failures: outcome.recorder.aggregated().failure_count,
        pgbench_tps: tps?,
    })
}

/// The lines `roomsim throughput` prints.
pub fn describe(config: &ThroughputConfig, f: &ThroughputFigures) -> String {
    format!(
        "booking throughput, {} s each, {} clients:\n\
         \x20 roomsim serve (HTTP, pool {}):  {:>8.1} bookings/s  (room assignment p95 {:.2} ms, {} failed requests)\n\
         \x20 pgbench (same booking SQL):     {:>8.1} transactions/s\n\
         \x20 ratio serve / pgbench:          {:>8.2}  (aim ≥ 0.5)\n",
        config.run_time.as_secs(),
        config.clients,
        config.pool_connections,
        f.http_bookings_per_s,
        f.http_room_assignment_p95_us as f64 / 1_000.0,
        f.http_failures,
        f.pgbench_tps,
        f.ratio()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_has_the_fifteen_booking_statements() {
        let script = pgbench_script();
        let statements = script.lines().filter(|l| !l.starts_with('\\')).count();
        assert_eq!(statements, 15, "{script}");
        assert!(script.contains("SAVEPOINT candidate;"));
        assert!(script.contains("'03000000-0000-0000-0000-' || lpad(to_hex(:d::bigint), 12, '0')"));
    }
}
