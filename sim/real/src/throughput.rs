//! `roomsim throughput`: booking throughput through the real HTTP service with N users,
//! side by side with `pgbench` running the same booking SQL with N clients, in one run on one
//! machine (the performance figure: aim for at least 0.5×).
//!
//! THE SAME SQL, BY CONSTRUCTION: the pgbench script is not written by hand. The HTTP side's
//! database is wrapped in a [`RecordingDb`] that keeps the statements (text and parameters) of
//! the first [`RECORDED_BOOKINGS`] connection uses that booked (an `INSERT INTO appointments`
//! and a `COMMIT`); [`pgbench_script`] turns two of them with the same statement sequence into
//! a pgbench script: backend-core's own statement texts, in its order, `$n` placeholders
//! replaced by pgbench expressions. A parameter equal in both bookings is a constant (clinic,
//! …) and becomes a literal; one that differs varies per booking and becomes an expression of
//! the per-client counter `:n` (`-D k=0`; `\set n :k * 1000 + :client_id`): timestamps shift
//! by `:n` hours (so bookings never overlap), new rows' ids (an INSERT's `id` column) and lock
//! keys hash `:n`, texts get `-:n` appended; one value in several places stays one expression.
//! Other ids that differ (doctor, patient, room) reference seeded rows and keep the first
//! booking's value: every pgbench booking uses one doctor, patient and room, hours apart. If backend-core
//! changes its statements, the script follows. Run with `-M prepared`, as sqlx prepares them.
//! The figure is the database's cost of the booking path, without HTTP, JSON or the allocator.
//!
//! Both sides run in a temporary database; the HTTP side first (closed loop, `concurrent`
//! tag), then `pgbench` for the same duration.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backend_core::booking::Strategy;
use backend_core::db::schema::SchemaVariant;
use backend_core::db::{BoxFuture, Conn, Db, DbError, Rows, SqlValue};

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

/// Booking connection uses recorded at most.
pub const RECORDED_BOOKINGS: usize = 8;
/// Statements of one recorded connection use at most (a guard: a booking runs about 15).
pub const RECORDED_STATEMENTS_MAX: usize = 200;

/// One statement backend-core ran, with its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedStatement {
    pub sql: String,
    pub params: Vec<SqlValue>,
}

/// A [`Db`] that records the statements of the first [`RECORDED_BOOKINGS`] connection uses
/// that booked an appointment.
#[derive(Clone)]
pub struct RecordingDb {
    inner: Arc<dyn Db>,
    bookings: Arc<Mutex<Vec<Vec<RecordedStatement>>>>,
}

impl RecordingDb {
    pub fn new(inner: Arc<dyn Db>) -> RecordingDb {
        RecordingDb { inner, bookings: Arc::new(Mutex::new(Vec::new())) }
    }

    /// The bookings recorded so far.
    pub fn bookings(&self) -> Vec<Vec<RecordedStatement>> {
        self.bookings.lock().expect("recording lock").clone()
    }
}

impl Db for RecordingDb {
    fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn Conn>, DbError>> {
        Box::pin(async move {
            let inner = self.inner.acquire().await?;
            let full = self.bookings.lock().expect("recording lock").len() >= RECORDED_BOOKINGS;
            if full {
                return Ok(inner);
            }
            let conn = RecordingConn { inner, statements: Vec::new(), sink: self.bookings.clone() };
            Ok(Box::new(conn) as Box<dyn Conn>)
        })
    }
}

struct RecordingConn {
    inner: Box<dyn Conn>,
    statements: Vec<RecordedStatement>,
    sink: Arc<Mutex<Vec<Vec<RecordedStatement>>>>,
}

impl Conn for RecordingConn {
    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<Rows, DbError>> {
        if self.statements.len() < RECORDED_STATEMENTS_MAX {
            self.statements
                .push(RecordedStatement { sql: sql.to_string(), params: params.to_vec() });
        }
        self.inner.execute(sql, params)
    }
}

impl Drop for RecordingConn {
    fn drop(&mut self) {
        let booked = self.statements.iter().any(|s| s.sql.starts_with("INSERT INTO appointments"))
            && self.statements.iter().any(|s| s.sql == "COMMIT");
        let mut sink = self.sink.lock().expect("recording lock");
        if booked && sink.len() < RECORDED_BOOKINGS {
            sink.push(std::mem::take(&mut self.statements));
        }
    }
}

/// A SQL literal that pgbench leaves alone (no `:` outside `::`, which pgbench would take
/// for a variable): texts with a colon are hex-encoded, timestamps are built from µs.
fn literal(value: &SqlValue) -> String {
    match value {
        SqlValue::Null => "NULL".to_string(),
        SqlValue::Bool(b) => b.to_string(),
        SqlValue::Int(i) => format!("{i}::bigint"),
        SqlValue::Uuid(u) => format!("'{u}'::uuid"),
        SqlValue::Timestamp(t) => {
            format!("('epoch'::timestamptz + {} * interval '1 microsecond')", t.timestamp_micros())
        }
        SqlValue::Text(text) if text.contains(':') || text.contains('\\') => {
            let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
            format!("convert_from('\\x{hex}'::bytea, 'UTF8')")
        }
        SqlValue::Text(text) => format!("'{}'", text.replace('\'', "''")),
    }
}

/// The expression of a parameter that varies per booking; `slot` numbers the distinct
/// varying values, so one value used in several places stays one expression.
fn varying(value: &SqlValue, slot: usize) -> String {
    match value {
        SqlValue::Timestamp(_) => format!("({} + :n * interval '1 hour')", literal(value)),
        SqlValue::Uuid(_) => format!("md5('roomsim-bench-{slot}-' || :n)::uuid"),
        SqlValue::Int(_) => format!("hashtext('roomsim-bench-{slot}-' || :n)::bigint"),
        SqlValue::Text(_) => format!("({} || '-' || :n)", literal(value)),
        SqlValue::Null | SqlValue::Bool(_) => literal(value),
    }
}

/// Replaces `$1`… in `sql` by `args[0]`…; errors on a placeholder without an argument.
fn substitute(sql: &str, args: &[String]) -> Result<String, String> {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' || !chars.peek().is_some_and(|(_, d)| d.is_ascii_digit()) {
            out.push(c);
            continue;
        }
        let mut number = 0_usize;
        while let Some((_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
            number = number * 10 + d.to_digit(10).expect("a digit") as usize;
            chars.next();
        }
        let arg = number.checked_sub(1).and_then(|i| args.get(i));
        let arg = arg.ok_or_else(|| format!("`{sql}`: ${number} has no parameter"))?;
        out.push_str(arg);
    }
    Ok(out)
}

/// The parameter indexes (0-based) an `INSERT INTO t (c, …) VALUES ($n, …)` puts in its `id`
/// column.
fn inserted_ids(sql: &str) -> Vec<usize> {
    let Some(rest) = sql.strip_prefix("INSERT INTO ") else { return Vec::new() };
    let list = |text: &str| -> Option<Vec<String>> {
        let open = text.find('(')?;
        let close = open + text[open..].find(')')?;
        Some(text[open + 1..close].split(',').map(|c| c.trim().to_string()).collect())
    };
    let Some(columns) = list(rest) else { return Vec::new() };
    let Some(values) = rest.find("VALUES").and_then(|at| list(&rest[at..])) else {
        return Vec::new();
    };
    columns
        .iter()
        .zip(&values)
        .filter(|(column, _)| column.as_str() == "id")
        .filter_map(|(_, value)| value.strip_prefix('$')?.parse::<usize>().ok()?.checked_sub(1))
        .collect()
}

/// The pgbench script from recorded bookings (see the module doc): the first two with the same
/// statement sequence.
pub fn pgbench_script(bookings: &[Vec<RecordedStatement>]) -> Result<String, RealError> {
    let texts = |b: &Vec<RecordedStatement>| b.iter().map(|s| s.sql.clone()).collect::<Vec<_>>();
    let pair = bookings
        .iter()
        .enumerate()
        .find_map(|(i, a)| bookings[i + 1..].iter().find(|b| texts(a) == texts(b)).map(|b| (a, b)));
    let Some((first, second)) = pair else {
        return Err(RealError::RunFailed(format!(
            "pgbench script: no two of the {} recorded bookings ran the same statements",
            bookings.len()
        )));
    };
    // Ids of new rows (an INSERT's `id` column) are fresh per booking; any other id is a
    // reference to seeded data (doctor, patient, room) and stays the first booking's.
    let fresh: Vec<String> = first
        .iter()
        .flat_map(|s| inserted_ids(&s.sql).into_iter().filter_map(|i| s.params.get(i)))
        .map(|v| format!("{v:?}"))
        .collect();
    let mut slots: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = String::from("\\set k :k + 1\n\\set n :k * 1000 + :client_id\n");
    for (a, b) in first.iter().zip(second) {
        if a.params.len() != b.params.len() {
            return Err(RealError::RunFailed(format!("`{}`: parameter counts differ", a.sql)));
        }
        let args: Vec<String> = a
            .params
            .iter()
            .zip(&b.params)
            .map(|(x, y)| {
                let key = format!("{x:?}");
                let reference = matches!(x, SqlValue::Uuid(_)) && !fresh.contains(&key);
                if x == y || reference {
                    return literal(x);
                }
                let next = slots.len();
                let slot = *slots.entry(key).or_insert(next);
                varying(x, slot)
            })
            .collect();
        let sql = substitute(&a.sql, &args).map_err(RealError::RunFailed)?;
        let _ = writeln!(out, "{sql};");
    }
    Ok(out)
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
    let slot: Mutex<Option<RecordingDb>> = Mutex::new(None);
    let wrap = |db: Arc<dyn Db>| -> Arc<dyn Db> {
        let recording = RecordingDb::new(db);
        *slot.lock().expect("recording slot") = Some(recording.clone());
        Arc::new(recording)
    };
    let server = Server::start_wrapped(&serve_config, &wrap, None).await?;
    let recording = slot.lock().expect("recording slot").take().expect("start_wrapped wraps");
    let tasks = vec![Task::Concurrent];
    let load_config =
        LoadConfig::closed(&server.base_url(), tasks, config.clients, config.run_time, config.seed);
    let outcome = run_load(load_config, fixture).await;
    server.stop().await;
    let script = pgbench_script(&recording.bookings())?;
    let script_path: PathBuf =
        std::env::temp_dir().join(format!("{}.sql", unique_database_name("roomsim_pgbench")));
    std::fs::write(&script_path, &script).map_err(|e| RealError::io(&script_path, e))?;
    let seconds = config.run_time.as_secs().max(1);
    // pgbench is a child process; waiting for it on this runtime thread is fine: nothing else
    // runs on this runtime now.
    let tps = run_pgbench(&target.url, &script_path, config.clients, seconds);
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
    use chrono::{TimeZone, Utc};
    use uuid::Uuid;

    fn statement(sql: &str, params: Vec<SqlValue>) -> RecordedStatement {
        RecordedStatement { sql: sql.to_string(), params }
    }

    fn booking(id: u128, key: &str, hour: u32) -> Vec<RecordedStatement> {
        let clinic = SqlValue::Uuid(Uuid::from_u128(1));
        let room = SqlValue::Uuid(Uuid::from_u128(100 + id));
        let at = SqlValue::Timestamp(Utc.with_ymd_and_hms(2030, 1, 1, hour, 0, 0).unwrap());
        let id = SqlValue::Uuid(Uuid::from_u128(id));
        vec![
            statement("SELECT body FROM clinics WHERE id = $1", vec![clinic.clone()]),
            statement("BEGIN ISOLATION LEVEL READ COMMITTED", vec![]),
            statement(
                "INSERT INTO appointments (id, clinic_id, room_id, starts_at, score) VALUES ($1, $2, $3, $4, $5::text)",
                vec![id.clone(), clinic, room, at, SqlValue::Text("0hard/0medium/-4soft".into())],
            ),
            statement(
                "INSERT INTO idempotency_keys (key, body, appointment_id, status_code) VALUES ($1, $2, $3, $4)",
                vec![
                    SqlValue::Text(key.into()),
                    SqlValue::Text(format!("{{\"id\":\"{key}\"}}")),
                    id,
                    SqlValue::Int(201),
                ],
            ),
            statement("COMMIT", vec![]),
        ]
    }

    #[test]
    fn the_script_is_the_recorded_statements_with_varying_parameters() {
        let other = vec![statement("SELECT 1", vec![])];
        let bookings = [other, booking(5, "key-a", 9), booking(6, "key-b", 10)];
        let script = pgbench_script(&bookings).unwrap();
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(lines.len(), 2 + 5, "{script}");
        assert_eq!(
            lines[2],
            "SELECT body FROM clinics WHERE id = '00000000-0000-0000-0000-000000000001'::uuid;"
        );
        assert_eq!(lines[3], "BEGIN ISOLATION LEVEL READ COMMITTED;");
        // The appointment id varies: one expression, the same in both INSERTs.
        assert!(lines[4].starts_with("INSERT INTO appointments (id, clinic_id, room_id, starts_at, score) VALUES (md5('roomsim-bench-0-' || :n)::uuid, '00000000-"), "{}", lines[4]);
        // The room differs between the bookings but references a seeded row: the first's.
        assert!(lines[4].contains("'00000000-0000-0000-0000-000000000069'::uuid"), "{}", lines[4]);
        assert_eq!(inserted_ids("INSERT INTO t (key, id) VALUES ($1, $2)"), vec![1]);
        assert!(lines[4].contains("('epoch'::timestamptz + 1893488400000000 * interval '1 microsecond') + :n * interval '1 hour'"), "{}", lines[4]);
        assert!(lines[4].ends_with("'0hard/0medium/-4soft'::text);"), "{}", lines[4]);
        assert!(lines[5].contains("('key-a' || '-' || :n)"), "{}", lines[5]);
        assert!(
            lines[5].contains("md5('roomsim-bench-0-' || :n)::uuid, 201::bigint);"),
            "{}",
            lines[5]
        );
        // A text with a colon is hex-encoded: pgbench would read `:"…` as nothing, but `:00`
        // as a variable.
        assert!(lines[5].contains("convert_from('\\x7b226964223a"), "{}", lines[5]);
        assert!(!script.contains('$'), "every placeholder replaced: {script}");
    }

    #[test]
    fn the_script_needs_two_alike_bookings() {
        let err = pgbench_script(&[booking(5, "a", 9)]).unwrap_err();
        assert!(err.to_string().contains("no two of the 1 recorded bookings"), "{err}");
        assert!(
            substitute("SELECT $2", &["x".into()]).unwrap_err().contains("$2 has no parameter")
        );
        assert_eq!(
            substitute("a $1 $10 $1::text", &(1..=10).map(|i| format!("v{i}")).collect::<Vec<_>>())
                .unwrap(),
            "a v1 v10 v1::text"
        );
    }
}
