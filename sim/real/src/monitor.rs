//! Database monitoring during load: what the clinic plan watches, sampled on its own
//! connection so it never competes for the backend's pool.
//!
//! SAMPLED every [`SAMPLE_INTERVAL_MS`]:
//! * `pg_stat_activity` — active queries of this database (the sampler excluded), and how many
//!   of them wait on a lock;
//! * `pg_locks` — ungranted lock requests.
//!
//! READ AT START AND END (deltas):
//! * `pg_stat_database.deadlocks` — must not grow for a safe strategy;
//! * `pg_stat_wal.wal_sync` — the WAL flushes (`fdatasync`s) of the whole cluster, to count
//!   how many commits share one (group commit); `None` where the view is missing (before
//!   PostgreSQL 14) or unreadable;
//! * `pg_stat_user_indexes.idx_scan` of the `appointments` and `rooms` indexes.
//!
//! PostgreSQL publishes cumulative statistics with a delay (a backend flushes them at most
//! once per second), so [`Monitor::finish`] waits [`STATS_FLUSH_WAIT_MS`] before the final
//! read; callers that own the backend's pool should close it first (exiting backends flush).
//!
//! NOT MODELLED: per-query texts, lock graphs (only counts are kept).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::{Connection, PgConnection, Row};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::RealError;

pub const SAMPLE_INTERVAL_MS: u64 = 500;
/// Samples kept at most (over 13 hours at the interval above).
pub const SAMPLES_MAX: usize = 100_000;
pub const STATS_FLUSH_WAIT_MS: u64 = 1_200;

/// The tables whose indexes are watched.
pub const WATCHED_TABLES: [&str; 2] = ["appointments", "rooms"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub elapsed_ms: u64,
    pub active_queries: i64,
    pub lock_waiters: i64,
    pub ungranted_locks: i64,
}

/// Index scans of one index over the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexUsage {
    pub table: String,
    pub index: String,
    pub scans_delta: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MonitorSummary {
    pub samples: Vec<Sample>,
    pub deadlocks_delta: i64,
    /// WAL flushes of the whole cluster over the run (`pg_stat_wal.wal_sync`), if readable.
    pub wal_syncs_delta: Option<i64>,
    pub indexes: Vec<IndexUsage>,
    /// A sampling error that cut the series short, if any.
    pub error: Option<String>,
}

impl MonitorSummary {
    pub fn active_queries_max(&self) -> i64 {
        self.samples.iter().map(|s| s.active_queries).max().unwrap_or(0)
    }
    pub fn ungranted_locks_max(&self) -> i64 {
        self.samples.iter().map(|s| s.ungranted_locks).max().unwrap_or(0)
    }
    pub fn lock_waiters_max(&self) -> i64 {
        self.samples.iter().map(|s| s.lock_waiters).max().unwrap_or(0)
    }
    pub fn active_queries_mean(&self) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let sum: i64 = self.samples.iter().map(|s| s.active_queries).sum();
        sum as f64 / self.samples.len() as f64
    }
}

/// A running sampler.
pub struct Monitor {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<PgConnection>,
    samples: Arc<Mutex<(Vec<Sample>, Option<String>)>>,
    deadlocks_start: i64,
    wal_syncs_start: Option<i64>,
    index_scans_start: BTreeMap<(String, String), i64>,
}

/// Connects to `url`, mapping failures to a clear error.
pub async fn connect(url: &str) -> Result<PgConnection, RealError> {
    let connecting = PgConnection::connect(url);
    match tokio::time::timeout(Duration::from_secs(10), connecting).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(RealError::Database(format!("cannot connect to {}: {e}", redact(url)))),
        Err(_) => Err(RealError::Database(format!("{}: no answer within 10 s", redact(url)))),
    }
}

/// The URL without its password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Monitor {
    /// Starts sampling the database of `url`; `schema` (already validated as an identifier)
    /// selects which schema's indexes are watched.
    pub async fn start(url: &str, schema: Option<&str>) -> Result<Monitor, RealError> {
        let mut connection = connect(url).await?;
        if let Some(schema) = schema {
            let quoted = backend_core::db::pg::schema_identifier(schema)
                .map_err(|e| RealError::BadInput(format!("--schema: {}", e.message)))?;
            let sql = format!("SET search_path TO {quoted}, public");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut connection)
                .await
                .map_err(|e| query_error("SET search_path", e))?;
        }
        let deadlocks_start = deadlocks(&mut connection).await?;
        let wal_syncs_start = wal_syncs(&mut connection).await;
        let index_scans_start = index_scans(&mut connection).await?;
        let samples = Arc::new(Mutex::new((Vec::new(), None)));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(sample_loop(connection, samples.clone(), stopped));
        Ok(Monitor {
            stop: Some(stop),
            task,
            samples,
            deadlocks_start,
            wal_syncs_start,
            index_scans_start,
        })
    }

    /// Stops sampling, waits for PostgreSQL to publish its statistics, reads the deltas.
    pub async fn finish(mut self) -> MonitorSummary {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let connection = self.task.await;
        let (samples, mut error) = std::mem::take(&mut *self.samples.lock().expect("samples"));
        let mut summary = MonitorSummary { samples, ..MonitorSummary::default() };
        let Ok(mut connection) = connection else {
            summary.error = Some("the sampler task panicked".to_string());
            return summary;
        };
        tokio::time::sleep(Duration::from_millis(STATS_FLUSH_WAIT_MS)).await;
        match deadlocks(&mut connection).await {
            Ok(end) => summary.deadlocks_delta = end - self.deadlocks_start,
            Err(e) => error = error.or(Some(e.to_string())),
        }
        let wal_syncs_end = wal_syncs(&mut connection).await;
        summary.wal_syncs_delta = self.wal_syncs_start.zip(wal_syncs_end).map(|(a, b)| b - a);
        match index_scans(&mut connection).await {
            Ok(end) => summary.indexes = index_deltas(&self.index_scans_start, &end),
            Err(e) => error = error.or(Some(e.to_string())),
        }
        summary.error = error;
        let _ = connection.close().await;
        summary
    }
}

async fn sample_loop(
    mut connection: PgConnection,
    samples: Arc<Mutex<(Vec<Sample>, Option<String>)>>,
    mut stopped: oneshot::Receiver<()>,
) -> PgConnection {
    let start = Instant::now();
    for tick in 0_u64.. {
        let elapsed_ms = start.elapsed().as_millis() as u64;
        match sample(&mut connection, elapsed_ms).await {
            Ok(sample) => {
                let mut slot = samples.lock().expect("samples");
                if slot.0.len() < SAMPLES_MAX {
                    slot.0.push(sample);
                }
            }
            Err(e) => {
                samples.lock().expect("samples").1 = Some(e.to_string());
                return connection;
            }
        }
        let next = start + Duration::from_millis((tick + 1) * SAMPLE_INTERVAL_MS);
        tokio::select! {
            biased;
            _ = &mut stopped => return connection,
            _ = tokio::time::sleep_until(next) => {}
        }
    }
    connection
}

fn query_error(what: &str, error: sqlx::Error) -> RealError {
    RealError::Database(format!("monitor query on {what}: {error}"))
}

async fn sample(connection: &mut PgConnection, elapsed_ms: u64) -> Result<Sample, RealError> {
    let activity = sqlx::query(
        "SELECT count(*) FILTER (WHERE state = 'active'), \
                count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'Lock') \
         FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(&mut *connection)
    .await
    .map_err(|e| query_error("pg_stat_activity", e))?;
    let ungranted: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_locks WHERE NOT granted")
        .fetch_one(&mut *connection)
        .await
        .map_err(|e| query_error("pg_locks", e))?;
    Ok(Sample {
        elapsed_ms,
        active_queries: activity.get(0),
        lock_waiters: activity.get(1),
        ungranted_locks: ungranted,
    })
}

async fn deadlocks(connection: &mut PgConnection) -> Result<i64, RealError> {
    sqlx::query_scalar(
        "SELECT COALESCE(deadlocks, 0) FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&mut *connection)
    .await
    .map_err(|e| query_error("pg_stat_database", e))
}

/// The cluster's WAL flushes so far (`pg_stat_wal.wal_sync`); `None` when unreadable (no
/// such view before PostgreSQL 14): a diagnostic, never an error.
async fn wal_syncs(connection: &mut PgConnection) -> Option<i64> {
    let sql = "SELECT wal_sync FROM pg_stat_wal";
    sqlx::query_scalar(sql).fetch_one(&mut *connection).await.ok()
}

async fn index_scans(
    connection: &mut PgConnection,
) -> Result<BTreeMap<(String, String), i64>, RealError> {
    let rows = sqlx::query(
        "SELECT relname::text, indexrelname::text, COALESCE(idx_scan, 0) \
         FROM pg_stat_user_indexes WHERE relname = ANY($1) \
         AND schemaname = ANY(current_schemas(false)) ORDER BY 1, 2",
    )
    .bind(WATCHED_TABLES.to_vec())
    .fetch_all(&mut *connection)
    .await
    .map_err(|e| query_error("pg_stat_user_indexes", e))?;
    // BTreeMap for determinism of the report order.
    Ok(rows.iter().map(|row| ((row.get(0), row.get(1)), row.get(2))).collect())
}

fn index_deltas(
    start: &BTreeMap<(String, String), i64>,
    end: &BTreeMap<(String, String), i64>,
) -> Vec<IndexUsage> {
    end.iter()
        .map(|((table, index), scans)| IndexUsage {
            table: table.clone(),
            index: index.clone(),
            scans_delta: scans - start.get(&(table.clone(), index.clone())).copied().unwrap_or(0),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://root@127.0.0.1/test"), "postgres://root@127.0.0.1/test");
    }

    #[test]
    fn index_deltas_subtract_the_start() {
        let key = |i: &str| ("appointments".to_string(), i.to_string());
        let start = BTreeMap::from([(key("a_pkey"), 5)]);
        let end = BTreeMap::from([(key("a_pkey"), 12), (key("idx_new"), 3)]);
        let deltas = index_deltas(&start, &end);
        assert_eq!(deltas[0].scans_delta, 7);
        assert_eq!(deltas[1].scans_delta, 3);
    }
}
