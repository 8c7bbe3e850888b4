//! POSTGRES BACKEND (feature `postgres`): runs spec steps on a real PostgreSQL server.
//!
//! Like isolationtester: one connection per session plus a control connection; a step is
//! BLOCKED when `pg_isolation_test_session_is_blocked(pid, other session pids)` says so
//! (heavyweight-lock and safe-snapshot waits; `pg_sleep` is not a block, so sleeping steps
//! are waited for). Unlike isolationtester, each permutation gets fresh connections and a
//! fresh schema `spec_<pid>_<n>` (search_path `spec_…, public`, dropped CASCADE afterwards),
//! so runs can proceed in parallel; `btree_gist` is created once in `public`. Connections
//! use `TimeZone=UTC` so timestamps print as the model prints them.
//!
//! The control connection is sqlx. The session connections speak the simple-query protocol
//! through the small client in [`wire`], because sqlx does not expose command tags
//! (`UPDATE 1`, and `ROLLBACK` answering a COMMIT in a failed transaction), which the report
//! compares. Only trust authentication is supported on session connections.
//!
//! SETTLE WINDOW: after a step, while anything waits, the backend sleeps until the real
//! time that corresponds to the model's virtual clock (previous steps' windows and
//! `pg_sleep`s plus this [`SETTLE_WINDOW`]), so deadlock checks and timeouts fire at the
//! same point of the schedule on both sides.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tokio::time::Instant;

use super::parse::Spec;
use super::runner::{
    BackendError, PermutationResult, SETTLE_WINDOW, SpecBackend, Started, StepResult, run_spec,
};

mod wire;

/// A waiting step is given up (cancelled, reported stuck) after this long, by default.
pub const STEP_WAIT_MAX: Duration = Duration::from_secs(60);
/// How long one poll of a session connection waits for bytes before re-checking blocks.
const POLL_INTERVAL: Duration = Duration::from_millis(1);

static SCHEMA_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Runs every permutation of `spec` on the PostgreSQL at `url`.
pub async fn run_postgres(spec: &Spec, url: &str) -> Result<Vec<PermutationResult>, BackendError> {
    run_postgres_with(spec, url, STEP_WAIT_MAX).await
}

/// [`run_postgres`] giving up on a waiting step after `step_wait_max` (the fuzzer's
/// schedules never legitimately wait more than a few seconds).
pub async fn run_postgres_with(
    spec: &Spec,
    url: &str,
    step_wait_max: Duration,
) -> Result<Vec<PermutationResult>, BackendError> {
    let mut backend = PgBackend::connect(url).await?;
    backend.step_wait_max = step_wait_max;
    let results = run_spec(spec, &mut backend).await;
    let _ = backend.control.close().await;
    results
}

pub struct PgBackend {
    url: String,
    control: PgConnection,
    schema: Option<String>,
    sessions: Vec<wire::WireConn>,
    /// The real instant that corresponds to virtual time zero of the model's clock; moved
    /// forward whenever nothing waits, so the real side's per-step overheads never add up.
    epoch: Instant,
    /// The model's virtual clock for this permutation: settle windows plus `pg_sleep`s.
    virtual_now: Duration,
    /// A waiting step is given up after this long.
    step_wait_max: Duration,
}

impl PgBackend {
    pub async fn connect(url: &str) -> Result<PgBackend, BackendError> {
        let mut control = PgConnection::connect(url)
            .await
            .map_err(|e| BackendError(format!("cannot connect to {url}: {e}")))?;
        // A teardown blocked by a transaction a spec left open fails instead of hanging.
        sqlx::raw_sql("SET lock_timeout = '10s'")
            .execute(&mut control)
            .await
            .map_err(|e| BackendError(format!("control connection failed: {e}")))?;
        // Concurrent runs may race to create it; whoever loses sees it exists next time.
        let _ = sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS btree_gist SCHEMA public")
            .execute(&mut control)
            .await;
        Ok(PgBackend {
            url: url.to_string(),
            control,
            schema: None,
            sessions: Vec::new(),
            epoch: Instant::now(),
            virtual_now: Duration::ZERO,
            step_wait_max: STEP_WAIT_MAX,
        })
    }

    async fn control_sql(&mut self, sql: &str) -> Result<StepResult, BackendError> {
        let q = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()));
        match q.execute(&mut self.control).await {
            Ok(_) => Ok(StepResult::Tag { tag: "OK".into() }),
            Err(sqlx::Error::Database(e)) => Ok(StepResult::Error {
                error: e.code().map(|c| c.to_string()).unwrap_or_default(),
                message: e.message().to_string(),
            }),
            Err(e) => Err(BackendError(format!("control connection failed: {e}"))),
        }
    }

    async fn is_blocked(&mut self, session: usize) -> Result<bool, BackendError> {
        let pid = self.sessions[session].pid;
        let others: Vec<i32> = self.sessions.iter().map(|c| c.pid).filter(|&p| p != pid).collect();
        sqlx::query_scalar::<_, bool>(
            "SELECT pg_catalog.pg_isolation_test_session_is_blocked($1, $2)",
        )
        .bind(pid)
        .bind(&others)
        .fetch_one(&mut self.control)
        .await
        .map_err(|e| BackendError(format!("blocked-step check failed: {e}")))
    }

    /// Polls a running step until it finishes (Some) or is blocked on a lock (None).
    async fn settle(&mut self, session: usize) -> Result<Option<StepResult>, BackendError> {
        let deadline = Instant::now() + self.step_wait_max;
        loop {
            if let Some(o) = self.sessions[session].try_finish(POLL_INTERVAL).await? {
                return Ok(Some(o));
            }
            if self.is_blocked(session).await? {
                // It may have finished between the two checks; isolationtester re-checks too.
                return self.sessions[session].try_finish(Duration::ZERO).await;
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
        }
    }
}

impl SpecBackend for PgBackend {
    async fn open(&mut self, sessions: usize) -> Result<(), BackendError> {
        let n = SCHEMA_COUNTER.fetch_add(1, Ordering::Relaxed);
        let schema = format!("spec_{}_{n}", std::process::id());
        let create = format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; \
             SET search_path TO {schema}, public; SET TimeZone TO 'UTC'"
        );
        if let StepResult::Error { message, .. } = self.control_sql(&create).await? {
            return Err(BackendError(format!("cannot create schema {schema}: {message}")));
        }
        let options = format!("-c search_path={schema},public -c TimeZone=UTC");
        self.sessions.clear();
        for _ in 0..sessions {
            self.sessions.push(wire::WireConn::connect(&self.url, &options).await?);
        }
        self.schema = Some(schema);
        self.epoch = Instant::now();
        self.virtual_now = Duration::ZERO;
        Ok(())
    }

    async fn control(&mut self, sql: &str) -> Result<StepResult, BackendError> {
        self.control_sql(sql).await
    }

    async fn start(&mut self, session: usize, sql: &str) -> Result<Started, BackendError> {
        self.sessions[session].send(sql).await?;
        Ok(match self.settle(session).await? {
            Some(o) => Started::Done(o),
            None => Started::Blocked,
        })
    }

    async fn poll(&mut self, session: usize) -> Result<Option<StepResult>, BackendError> {
        self.settle(session).await
    }

    async fn wait(&mut self, session: usize) -> Result<Option<StepResult>, BackendError> {
        let deadline = Instant::now() + self.step_wait_max;
        while Instant::now() < deadline {
            if let Some(o) = self.sessions[session].try_finish(Duration::from_millis(50)).await? {
                // The model's clock jumps to the timer that ended the wait; follow it.
                self.virtual_now = self.virtual_now.max(Instant::now() - self.epoch);
                return Ok(Some(o));
            }
        }
        Ok(None)
    }

    async fn after_step(&mut self, sql: &str, any_waiting: bool) -> Result<(), BackendError> {
        self.virtual_now += Duration::from_secs(sleep_seconds(sql));
        if any_waiting {
            self.virtual_now += SETTLE_WINDOW;
            tokio::time::sleep_until(self.epoch + self.virtual_now).await;
        } else {
            self.epoch = Instant::now() - self.virtual_now;
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<(), BackendError> {
        // Sessions still running a statement would keep their locks: terminate them.
        let busy: Vec<i32> = self.sessions.iter().filter(|c| c.busy()).map(|c| c.pid).collect();
        for pid in busy {
            let _ = sqlx::query("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .execute(&mut self.control)
                .await;
        }
        for conn in self.sessions.drain(..) {
            conn.close().await;
        }
        if let Some(schema) = self.schema.take() {
            let drop = format!("SET search_path TO public; DROP SCHEMA IF EXISTS {schema} CASCADE");
            if let StepResult::Error { message, .. } = self.control_sql(&drop).await? {
                return Err(BackendError(format!("cannot drop schema {schema}: {message}")));
            }
        }
        Ok(())
    }
}

/// The whole seconds a step sleeps: the sum of its `pg_sleep(N)` calls (the model's virtual
/// clock advances by exactly this; a fractional or non-literal argument counts as 0).
fn sleep_seconds(sql: &str) -> u64 {
    let lower = sql.to_ascii_lowercase();
    lower
        .match_indices("pg_sleep(")
        .map(|(i, m)| {
            let rest = lower[i + m.len()..].trim_start();
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let after = rest[digits.len()..].trim_start();
            if after.starts_with(')') { digits.parse().unwrap_or(0) } else { 0 }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    /// Sleeps are summed; fractional and non-literal arguments count as zero.
    #[test]
    fn sleep_seconds_reads_literal_whole_seconds() {
        assert_eq!(super::sleep_seconds("SELECT pg_sleep(1);"), 1);
        assert_eq!(super::sleep_seconds("select PG_SLEEP( 2 ), pg_sleep(3)"), 5);
        assert_eq!(super::sleep_seconds("select pg_sleep(0.5)"), 0);
        assert_eq!(super::sleep_seconds("select pg_sleep(x)"), 0);
        assert_eq!(super::sleep_seconds("select 1"), 0);
    }
}
