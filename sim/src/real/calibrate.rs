//! Calibration: per-statement service times measured on real PostgreSQL, written as a latency
//! profile that `model::profile::LatencyProfile` reads.
//!
//! METHOD
//!
//! The backend runs bookings at low concurrency (one at a time by default, so no statement
//! waits on a lock) over a [`TimingDb`]: a [`Db`] wrapper that times every statement from the
//! client side (send → last row decoded) and files it under its statement kind
//! (`model::profile::statement_kind`). That round trip over loopback is what the model's
//! service time stands for: the simulation adds its own network latency on top, which the
//! scenario keeps near zero for the db link.
//!
//! Each kind with at least [`SAMPLES_MIN`] samples becomes an EMPIRICAL quantile table
//! (`quantiles = [[q, µs], …]` at [`PROFILE_QUANTILES`], read from the HDR histogram); a kind
//! the workload never ran keeps the committed default's entry, marked in a comment.
//! Backend CPU costs (the `rules` and `conflict` Server-Timing durations) are written as
//! comments for the reader: the profile format has no field for them.
//!
//! NOT MODELLED: load dependence (measured at concurrency 1 on purpose; contention must emerge
//! in the simulation), statement-specific costs within a kind.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backend_core::booking::Strategy;
use backend_core::db::schema::SchemaVariant;

use backend_core::db::{BoxFuture, Conn, Db, DbError, Rows, SqlValue};
use hdrhistogram::Histogram;
use model::profile::{DEFAULT_PROFILE_TOML, LatencyProfile, STATEMENT_KINDS, statement_kind};
use tokio::time::Instant;

use super::RealError;
use super::compare::latency_histogram;
use super::database::{DbTarget, TempDatabase, unique_database_name};
use super::load::{LoadConfig, run_load};
use super::serve::{ServeConfig, Server};
use super::setup::setup_for_run;
use super::stats::value_or_zero;
use super::workload::Task;

/// A kind needs this many samples to be written from measurements.
pub const SAMPLES_MIN: u64 = 20;
/// The quantiles of each empirical table (0 is the minimum, 1 the maximum).
pub const PROFILE_QUANTILES: [f64; 13] =
    [0.0, 0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99, 0.995, 0.999, 1.0];

/// Statement service times by kind, µs.
#[derive(Debug, Default)]
pub struct StatementTimes {
    /// BTreeMap for a stable profile layout (determinism of the written file).
    pub by_kind: BTreeMap<&'static str, Histogram<u64>>,
}

impl StatementTimes {
    pub fn record(&mut self, kind: &'static str, service_us: u64) {
        self.by_kind
            .entry(kind)
            .or_insert_with(latency_histogram)
            .saturating_record(service_us.max(1));
    }

    pub fn count(&self, kind: &str) -> u64 {
        self.by_kind.get(kind).map_or(0, Histogram::len)
    }
}

/// A [`Db`] that times every statement of every connection it hands out.
#[derive(Clone)]
pub struct TimingDb {
    inner: Arc<dyn Db>,
    times: Arc<Mutex<StatementTimes>>,
}

impl TimingDb {
    pub fn new(inner: Arc<dyn Db>) -> TimingDb {
        TimingDb { inner, times: Arc::new(Mutex::new(StatementTimes::default())) }
    }

    /// The times recorded so far (taken out: the wrapper starts over).
    pub fn take_times(&self) -> StatementTimes {
        std::mem::take(&mut *self.times.lock().expect("statement times lock"))
    }
}

impl Db for TimingDb {
    fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn Conn>, DbError>> {
        Box::pin(async move {
            let inner = self.inner.acquire().await?;
            let conn: Box<dyn Conn> = Box::new(TimingConn { inner, times: self.times.clone() });
            Ok(conn)
        })
    }
}

struct TimingConn {
    inner: Box<dyn Conn>,
    times: Arc<Mutex<StatementTimes>>,
}

impl Conn for TimingConn {
    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<Rows, DbError>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.inner.execute(sql, params).await;
            let service_us = started.elapsed().as_micros() as u64;
            // Failed statements are timed too: a 23P01 costs the database as much as a success.
            let kind = statement_kind(sql);
            self.times.lock().expect("statement times lock").record(kind, service_us);
            result
        })
    }
}

/// Backend CPU figures for the profile's comments, µs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CpuCosts {
    pub rules_p50_us: Option<u64>,
    pub conflict_p50_us: Option<u64>,
}

/// Writes the profile TOML; the result always passes `LatencyProfile::from_toml_str`.
pub fn profile_toml(times: &StatementTimes, cpu: &CpuCosts, description: &str) -> String {
    let defaults: toml::Table = toml::from_str(DEFAULT_PROFILE_TOML).expect("default is TOML");
    let default_kinds = defaults["kinds"].as_table().expect("default has [kinds]");
    let mut out = String::new();
    out.push_str("# Latency profile measured by `roomsim calibrate`: service time per statement\n");
    out.push_str("# kind in microseconds, client-side round trip over loopback, concurrency 1.\n");
    let _ = writeln!(out, "# {description}");
    let cpu_line = |name: &str, v: Option<u64>| match v {
        Some(us) => format!("# backend CPU ({name}, Server-Timing p50): {us} us\n"),
        None => format!("# backend CPU ({name}): not measured\n"),
    };
    out.push_str(&cpu_line("rules evaluation", cpu.rules_p50_us));
    out.push_str(&cpu_line("conflict detection", cpu.conflict_p50_us));
    for kind in STATEMENT_KINDS {
        out.push('\n');
        let _ = writeln!(out, "[kinds.{kind}]");
        match times.by_kind.get(kind).filter(|h| h.len() >= SAMPLES_MIN) {
            Some(histogram) => {
                let _ = writeln!(out, "# measured: {} samples", histogram.len());
                out.push_str(&quantile_line(histogram));
            }
            None => {
                let _ = writeln!(
                    out,
                    "# not measured ({} samples): the committed default",
                    times.count(kind)
                );
                let entry = default_kinds[kind].as_table().expect("default kind is a table");
                for (key, value) in entry {
                    // Value's Display writes nested tables inline: `tail = { p = 0.01, … }`.
                    let _ = writeln!(out, "{key} = {value}");
                }
            }
        }
    }
    debug_assert!(LatencyProfile::from_toml_str(&out, "calibrated").is_ok(), "{out}");
    out
}

fn quantile_line(histogram: &Histogram<u64>) -> String {
    let points: Vec<String> = PROFILE_QUANTILES
        .iter()
        .map(|&q| {
            let us = if q == 0.0 { histogram.min() } else { histogram.value_at_quantile(q) };
            format!("[{q:?}, {us}.0]")
        })
        .collect();
    format!("quantiles = [{}]\n", points.join(", "))
}

/// How to calibrate.
#[derive(Clone, Debug)]
pub struct CalibrateConfig {
    /// The server whose database is used (a temporary database is created next to it).
    pub target: DbTarget,
    pub out: PathBuf,
    /// Bookings measured (after [`WARMUP_REQUESTS`] unmeasured ones).
    pub bookings: u32,
    pub scenario: String,
    pub seed: u64,
}

/// Requests sent before measuring (connections, caches, plans).
pub const WARMUP_REQUESTS: u64 = 100;
/// Longest calibration run.
pub const CALIBRATION_TIME_MAX: Duration = Duration::from_secs(30 * 60);

/// `roomsim calibrate`: measures in a temporary database, writes the profile, prints a summary.
pub async fn calibrate_command(config: CalibrateConfig) -> Result<(), RealError> {
    if config.bookings == 0 {
        return Err(RealError::BadInput("--bookings: must be > 0".to_string()));
    }
    let name = unique_database_name("roomsim_calibrate");
    let temp = TempDatabase::create(&config.target, &name).await?;
    let measured = measure(&temp.target, &config).await;
    temp.drop_database().await;
    let (times, cpu) = measured?;
    let description = format!(
        "scenario {}, {} bookings at concurrency 1, seed {}",
        config.scenario, config.bookings, config.seed
    );
    let text = profile_toml(&times, &cpu, &description);
    LatencyProfile::from_toml_str(&text, "calibrated profile")
        .map_err(|e| RealError::RunFailed(format!("the measured profile is invalid: {e}")))?;
    std::fs::write(&config.out, &text).map_err(|e| RealError::io(&config.out, e))?;
    print!("{}", summary(&times, &cpu));
    println!("profile written to {}", config.out.display());
    Ok(())
}

async fn measure(
    target: &DbTarget,
    config: &CalibrateConfig,
) -> Result<(StatementTimes, CpuCosts), RealError> {
    let fixture = setup_for_run(target, &config.scenario, SchemaVariant::Guarded).await?;
    let serve_config = ServeConfig::ephemeral(target, 2, Strategy::Exclusion, config.seed);
    let slot: Mutex<Option<TimingDb>> = Mutex::new(None);
    let wrap = |db: Arc<dyn Db>| -> Arc<dyn Db> {
        let timing = TimingDb::new(db);
        *slot.lock().expect("timing slot") = Some(timing.clone());
        Arc::new(timing)
    };
    let server = Server::start_wrapped(&serve_config, &wrap).await?;
    let timing = slot.lock().expect("timing slot").take().expect("start_wrapped wraps the db");
    let tasks = vec![Task::Concurrent, Task::Conflict];
    let load_config = |requests_max: u64| LoadConfig {
        requests_max,
        progress: false,
        ..LoadConfig::closed(
            &server.base_url(),
            tasks.clone(),
            1,
            CALIBRATION_TIME_MAX,
            config.seed,
        )
    };
    let warmup = run_load(load_config(WARMUP_REQUESTS), fixture.clone()).await;
    let _ = timing.take_times();
    let outcome = run_load(load_config(u64::from(config.bookings)), fixture).await;
    let times = timing.take_times();
    server.stop().await;
    for run in [&warmup, &outcome] {
        if let Some(reason) = &run.stopped_early {
            return Err(RealError::RunFailed(format!("calibration load stopped: {reason}")));
        }
        let failures = run.recorder.aggregated().failure_count;
        if failures > 0 {
            let kinds: Vec<String> = run.recorder.failures.keys().map(|k| k.2.clone()).collect();
            return Err(RealError::RunFailed(format!(
                "{failures} calibration requests failed: {}",
                kinds.join("; ")
            )));
        }
    }
    let p50 =
        |metric: &str| outcome.recorder.server_timing.get(metric).map(|h| value_or_zero(h, 0.5));
    Ok((times, CpuCosts { rules_p50_us: p50("rules"), conflict_p50_us: p50("conflict") }))
}

/// Per-kind sample counts and quantiles, for the terminal.
pub fn summary(times: &StatementTimes, cpu: &CpuCosts) -> String {
    let mut out = format!(
        "{:<10} {:>8} {:>9} {:>9} {:>9} {:>9}\n",
        "kind", "samples", "p50 us", "p90 us", "p99 us", "max us"
    );
    for (kind, h) in &times.by_kind {
        let _ = writeln!(
            out,
            "{kind:<10} {:>8} {:>9} {:>9} {:>9} {:>9}",
            h.len(),
            value_or_zero(h, 0.5),
            value_or_zero(h, 0.9),
            value_or_zero(h, 0.99),
            h.max()
        );
    }
    let _ = writeln!(
        out,
        "backend CPU p50: rules {:?} us, conflict {:?} us",
        cpu.rules_p50_us, cpu.conflict_p50_us
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_kinds_become_quantile_tables_and_the_rest_defaults() {
        let mut times = StatementTimes::default();
        for i in 0..1_000_u64 {
            times.record("select", 100 + i % 200);
            times.record("commit", 300 + i % 50);
        }
        times.record("delete", 5_000); // one sample: below SAMPLES_MIN
        let cpu = CpuCosts { rules_p50_us: Some(420), conflict_p50_us: None };
        let text = profile_toml(&times, &cpu, "test");
        let profile = LatencyProfile::from_toml_str(&text, "t").expect(&text);
        assert!(text.contains("# measured: 1000 samples"), "{text}");
        assert!(text.contains("rules evaluation, Server-Timing p50): 420 us"), "{text}");
        assert!(text.contains("# not measured (1 samples)"), "{text}");
        match profile.service_time("select") {
            model::profile::ServiceTime::Empirical { quantiles } => {
                assert_eq!(quantiles.first().unwrap(), &(0.0, 100.0));
                assert_eq!(quantiles.last().unwrap(), &(1.0, 299.0));
            }
            other => panic!("select must be empirical, got {other:?}"),
        }
        assert!(matches!(
            profile.service_time("delete"),
            model::profile::ServiceTime::LogNormal { .. }
        ));
    }

    /// A Db whose statements take a fixed (virtual) time.
    struct SlowDb;
    struct SlowConn;
    impl Db for SlowDb {
        fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn Conn>, DbError>> {
            Box::pin(async { Ok(Box::new(SlowConn) as Box<dyn Conn>) })
        }
    }
    impl Conn for SlowConn {
        fn execute<'a>(
            &'a mut self,
            sql: &'a str,
            _params: &'a [SqlValue],
        ) -> BoxFuture<'a, Result<Rows, DbError>> {
            Box::pin(async move {
                let ms = if sql.starts_with("SELECT") { 3 } else { 1 };
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                Ok(Rows::default())
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn timing_db_files_statements_by_kind() {
        let db = TimingDb::new(Arc::new(SlowDb));
        let mut conn = db.acquire().await.unwrap();
        for sql in ["BEGIN", "SELECT 1", "SELECT 2", "INSERT INTO t VALUES (1)", "COMMIT"] {
            conn.execute(sql, &[]).await.unwrap();
        }
        let times = db.take_times();
        assert_eq!(times.count("select"), 2);
        assert_eq!(times.count("begin"), 1);
        assert_eq!(times.count("insert"), 1);
        let select = &times.by_kind["select"];
        assert!(select.equivalent(select.value_at_quantile(0.5), 3_000));
        let commit = &times.by_kind["commit"];
        assert!(commit.equivalent(commit.value_at_quantile(0.5), 1_000));
        assert_eq!(db.take_times().by_kind.len(), 0, "taking the times resets them");
    }
}

#[cfg(test)]
mod committed_profile {
    /// The committed measured profile must stay readable by the model.
    #[test]
    fn measured_profile_loads() {
        let text = include_str!("profiles/measured.toml");
        model::profile::LatencyProfile::from_toml_str(text, "profiles/measured.toml").unwrap();
    }
}
