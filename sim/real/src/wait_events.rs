//! WAIT EVENTS: where PostgreSQL's sessions spend a level's time, sampled (`roomsim validate
//! --wait-events`; issue #17: measure where the check-then-insert window and the phases'
//! tails come from before modelling them).
//!
//! A sampler on its own connection reads `pg_stat_activity` every [`SAMPLE_INTERVAL_MS`]:
//! every client session of the database that is not idle, by its statement (the first
//! [`STATEMENT_CHARS`] characters, whitespace collapsed) and what it is doing —
//!
//! - `CPU`: active with no wait event (running, or runnable and waiting for a core: the
//!   kernel's queue is invisible to PostgreSQL);
//! - `Type:Event`: active and waiting (`Lock:transactionid` for another transaction's row,
//!   `IO:WALSync` for the log's flush, `LWLock:WALWrite` for the flush in progress, …);
//! - `client (in transaction)`: idle in a transaction block, waiting for the client's next
//!   statement (the service's own time between statements, and its round trips).
//!
//! A statement's count over the samples is how many sessions were in it on average (Little's
//! law: its rate × its time in the database); each state's share says where that time goes.
//! The sampler costs the machine a little CPU (one short query per sample), so it is opt-in.
//!
//! Not modelled: sessions of other databases, background processes (the WAL writer,
//! checkpointer), and anything shorter than the interval is seen in proportion only.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::{PgConnection, Row};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::RealError;
use super::monitor::connect;

/// Interval between samples, ms.
pub const SAMPLE_INTERVAL_MS: u64 = 5;
/// Characters of a statement's text that name it.
pub const STATEMENT_CHARS: usize = 48;
/// Statements shown per level, the busiest first.
pub const STATEMENTS_SHOWN_MAX: usize = 12;
/// States shown per statement, the commonest first.
pub const STATES_SHOWN_MAX: usize = 4;

/// One session as sampled: its statement's text, state, wait event type and wait event.
pub type Row4 = (String, String, Option<String>, Option<String>);

/// What the samples saw: per statement, per state, how many times.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WaitEvents {
    /// Samples taken.
    pub samples: u64,
    /// statement → state → sessions seen in it, summed over the samples.
    pub seen: BTreeMap<String, BTreeMap<String, u64>>,
    /// A sampling error that cut the series short, if any.
    pub error: Option<String>,
}

impl WaitEvents {
    /// Counts one sample's rows: (statement text, state, wait event type, wait event).
    pub fn add_sample(&mut self, rows: &[Row4]) {
        self.samples += 1;
        for (query, state, wait_type, wait_event) in rows {
            let what = match (state.as_str(), wait_type, wait_event) {
                ("active", None, _) => "CPU".to_string(),
                ("active", Some(kind), event) => {
                    format!("{kind}:{}", event.as_deref().unwrap_or("?"))
                }
                ("idle in transaction", ..) => "client (in transaction)".to_string(),
                (other, ..) => other.to_string(),
            };
            let by_state = self.seen.entry(statement_name(query)).or_default();
            *by_state.entry(what).or_default() += 1;
        }
    }

    /// One line per statement, the busiest first (at most [`STATEMENTS_SHOWN_MAX`]): the
    /// sessions in it on average and the shares of its commonest states.
    pub fn lines(&self) -> Vec<String> {
        if self.samples == 0 {
            return vec!["  no samples".to_string()];
        }
        let mut statements: Vec<(&String, u64)> =
            self.seen.iter().map(|(s, states)| (s, states.values().sum())).collect();
        statements.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut lines = Vec::new();
        for (statement, total) in statements.into_iter().take(STATEMENTS_SHOWN_MAX) {
            let mut states: Vec<(&String, &u64)> = self.seen[statement].iter().collect();
            states.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let shares: Vec<String> = (states.iter().take(STATES_SHOWN_MAX))
                .map(|(state, n)| format!("{state} {:.0} %", **n as f64 * 100.0 / total as f64))
                .collect();
            let mean = total as f64 / self.samples as f64;
            lines.push(format!(
                "  {statement:<width$} {mean:6.2} sessions: {}",
                shares.join(", "),
                width = STATEMENT_CHARS
            ));
        }
        if let Some(error) = &self.error {
            lines.push(format!("  (sampling stopped early: {error})"));
        }
        lines
    }
}

/// A statement's name: its first [`STATEMENT_CHARS`] characters, whitespace collapsed.
fn statement_name(query: &str) -> String {
    let collapsed = query.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.chars().take(STATEMENT_CHARS).collect()
}

/// A running sampler.
pub struct WaitSampler {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    events: Arc<Mutex<WaitEvents>>,
}

impl WaitSampler {
    /// Starts sampling the database of `url` every [`SAMPLE_INTERVAL_MS`].
    pub async fn start(url: &str) -> Result<WaitSampler, RealError> {
        let connection = connect(url).await?;
        let events = Arc::new(Mutex::new(WaitEvents::default()));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(sample_loop(connection, Arc::clone(&events), stopped));
        Ok(WaitSampler { stop, task, events })
    }

    /// Stops sampling; what was seen.
    pub async fn finish(self) -> WaitEvents {
        let _ = self.stop.send(());
        let joined = self.task.await;
        let mut events = std::mem::take(&mut *self.events.lock().expect("wait events"));
        if joined.is_err() {
            events.error = Some("the sampler task panicked".to_string());
        }
        events
    }
}

async fn sample_loop(
    mut connection: PgConnection,
    events: Arc<Mutex<WaitEvents>>,
    mut stopped: oneshot::Receiver<()>,
) {
    let start = Instant::now();
    for tick in 1_u64.. {
        match sample(&mut connection).await {
            Ok(rows) => events.lock().expect("wait events").add_sample(&rows),
            Err(e) => {
                events.lock().expect("wait events").error = Some(e.to_string());
                return;
            }
        }
        let next = start + Duration::from_millis(tick * SAMPLE_INTERVAL_MS);
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            _ = tokio::time::sleep_until(next) => {}
        }
    }
    let _ = sqlx::Connection::close(connection).await;
}

async fn sample(connection: &mut PgConnection) -> Result<Vec<Row4>, RealError> {
    let rows = sqlx::query(
        "SELECT query, state, wait_event_type, wait_event FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND backend_type = 'client backend' AND state IS NOT NULL AND state <> 'idle'",
    )
    .fetch_all(&mut *connection)
    .await
    .map_err(|e| RealError::Database(format!("wait-event sample (pg_stat_activity): {e}")))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(q: &str, state: &str, kind: Option<&str>, event: Option<&str>) -> Row4 {
        (q.into(), state.into(), kind.map(Into::into), event.map(Into::into))
    }

    /// Goal: each session is counted under its statement and state; a statement's count over
    /// the samples is its sessions on average, and its states' shares sum to its whole.
    #[test]
    fn samples_are_counted_by_statement_and_state_and_shown_busiest_first() {
        let mut events = WaitEvents::default();
        let commit_flushing = row("COMMIT", "active", Some("IO"), Some("WALSync"));
        let commit_waiting = row("COMMIT", "active", Some("LWLock"), Some("WALWrite"));
        let insert = row("INSERT INTO a\n   VALUES ($1)", "active", None, None);
        let between = row("SELECT 1", "idle in transaction", Some("Client"), Some("ClientRead"));
        events.add_sample(&[commit_flushing.clone(), commit_waiting.clone(), insert.clone()]);
        events.add_sample(&[commit_flushing.clone(), between]);
        events.add_sample(&[]);
        events.add_sample(&[commit_flushing]);
        assert_eq!(events.samples, 4);
        assert_eq!(events.seen["COMMIT"]["IO:WALSync"], 3);
        assert_eq!(events.seen["COMMIT"]["LWLock:WALWrite"], 1);
        assert_eq!(events.seen["INSERT INTO a VALUES ($1)"]["CPU"], 1, "whitespace collapsed");
        assert_eq!(events.seen["SELECT 1"]["client (in transaction)"], 1);
        let lines = events.lines();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("  COMMIT "), "{lines:?}");
        assert!(lines[0].contains("  1.00 sessions: IO:WALSync 75 %, LWLock:WALWrite 25 %"));
        assert!(lines[1].contains("INSERT INTO a VALUES ($1)"), "ties by name: {lines:?}");
        assert!(lines[1].contains("0.25 sessions: CPU 100 %"), "{lines:?}");
        let long = "x".repeat(STATEMENT_CHARS + 10);
        assert_eq!(statement_name(&long).chars().count(), STATEMENT_CHARS);
        assert_eq!(WaitEvents::default().lines(), vec!["  no samples".to_string()]);
    }
}
