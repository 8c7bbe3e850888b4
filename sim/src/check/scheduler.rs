//! One schedule: the bookings' futures, the engine, and the scheduler that picks which
//! session's pending statement runs next.
//!
//! Each booking is a future of `api_router(...).oneshot(request)`. Its `Conn::execute` posts
//! the statement into a slot of the shared [`Hub`] and waits; the scheduler submits posted
//! statements to the engine one at a time, in the order the chooser decides. A statement that
//! blocks in the engine waits until a commit, rollback or a timer releases it. Retry backoff
//! sleeps run on a paused tokio clock and are settled before every choice, so they add no
//! choice points (a sleep is a yield).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use backend_core::db::{BoxFuture, Conn, Db, DbError, Rows, SqlValue};
use backend_core::domain::{Clock, IdSource};
use chrono::{DateTime, Utc};
use model::{Engine, SessionId, Step};
use uuid::Uuid;

use crate::model_db::{from_model_owned, rows_affected, to_model};

/// Steps of one schedule beyond which it is reported as bounded-out (a livelock guard).
pub const STEPS_MAX: usize = 400;

/// Where a session's statement stands.
#[derive(Default)]
pub struct Slot {
    /// Posted by the session, not yet submitted.
    pub pending: Option<(String, Vec<SqlValue>)>,
    /// The answer waiting to be read by the session.
    pub result: Option<Result<Rows, DbError>>,
    /// The session's connection was dropped: its engine session must be closed.
    pub close: bool,
}

/// The slots of every booking.
#[derive(Default)]
pub struct Hub {
    pub slots: Vec<Slot>,
}

pub type SharedHub = Arc<Mutex<Hub>>;

/// The `Db` of one booking.
pub struct CheckDb {
    pub hub: SharedHub,
    pub slot: usize,
}

impl Db for CheckDb {
    fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn Conn>, DbError>> {
        let conn = CheckConn { hub: self.hub.clone(), slot: self.slot };
        Box::pin(std::future::ready(Ok(Box::new(conn) as Box<dyn Conn>)))
    }
}

struct CheckConn {
    hub: SharedHub,
    slot: usize,
}

impl Drop for CheckConn {
    fn drop(&mut self) {
        if let Ok(mut hub) = self.hub.lock() {
            hub.slots[self.slot].close = true;
        }
    }
}

impl Conn for CheckConn {
    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<Rows, DbError>> {
        Box::pin(ExecFuture { hub: self.hub.clone(), slot: self.slot, sql, params, posted: false })
    }
}

struct ExecFuture<'a> {
    hub: SharedHub,
    slot: usize,
    sql: &'a str,
    params: &'a [SqlValue],
    posted: bool,
}

impl Future for ExecFuture<'_> {
    type Output = Result<Rows, DbError>;
    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut hub = this.hub.lock().expect("hub");
        let slot = &mut hub.slots[this.slot];
        if !this.posted {
            this.posted = true;
            slot.pending = Some((this.sql.to_string(), this.params.to_vec()));
            return Poll::Pending;
        }
        match slot.result.take() {
            Some(result) => Poll::Ready(result),
            None => Poll::Pending,
        }
    }
}

/// A fixed clock: the clinic day's start plus one minute (`created_at` only).
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// Ids `(booking + 1) << 64 | n`: distinct across bookings, independent of the schedule.
pub struct BookingIds {
    pub booking: u64,
    pub next: AtomicU64,
}

impl IdSource for BookingIds {
    fn next_id(&self) -> Uuid {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        Uuid::from_u128((u128::from(self.booking + 1) << 64) | u128::from(n))
    }
}

/// A booking's answer: HTTP status and body text.
pub type Answer = (u16, String);
pub type BookingFuture = Pin<Box<dyn Future<Output = Answer>>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    Posted,
    Blocked,
    Done,
}

/// One executed step, for the counterexample table.
#[derive(Clone, Debug)]
pub struct Event {
    pub session: usize,
    pub sql: String,
    pub params: Vec<SqlValue>,
    /// "SELECT 1", "INSERT 0 1", "ERROR 40P01", "blocked", "unblocked: …".
    pub outcome: String,
}

/// What one schedule produced.
pub struct Outcome {
    pub answers: Vec<Option<Answer>>,
    /// (chosen index among enabled, enabled count, chosen session) per choice.
    pub choices: Vec<(usize, usize, usize)>,
    pub events: Vec<Event>,
    pub deadlocks: Vec<String>,
    /// A session still waited with no timer pending, or the step cap hit.
    pub stuck: Option<String>,
    pub preemptions: u32,
}

/// Chooses among enabled sessions: `prefix` first, then index 0; a choice that would exceed
/// `preemptions_max` is not offered.
pub async fn run_schedule(
    engine: &mut Engine,
    hub: &SharedHub,
    mut futures: Vec<BookingFuture>,
    prefix: &[usize],
    preemptions_max: Option<u32>,
) -> Outcome {
    let n = futures.len();
    let mut states = vec![State::Running; n];
    let mut sessions: Vec<Option<SessionId>> = vec![None; n];
    let mut out = Outcome {
        answers: vec![None; n],
        choices: Vec::new(),
        events: Vec::new(),
        deadlocks: Vec::new(),
        stuck: None,
        preemptions: 0,
    };
    let mut last: Option<usize> = None;
    loop {
        settle(engine, hub, &mut futures, &mut states, &mut sessions, &mut out).await;
        let enabled: Vec<usize> = (0..n).filter(|&i| states[i] == State::Posted).collect();
        if enabled.is_empty() {
            if states.iter().all(|s| *s == State::Done) {
                return out;
            }
            match engine.next_timer() {
                Some(at) => {
                    engine.advance_to(at);
                    deliver(engine, hub, &mut states, &sessions, &mut out);
                    continue;
                }
                None => {
                    out.stuck = Some("a session waits with no timer pending".into());
                    return out;
                }
            }
        }
        if out.events.len() >= STEPS_MAX {
            out.stuck = Some(format!("step cap of {STEPS_MAX} statements reached"));
            return out;
        }
        // Options in order: continuing the last session is free, a switch away from an
        // enabled last session is a preemption.
        let mut options = enabled.clone();
        if let Some(l) = last
            && let Some(pos) = options.iter().position(|&s| s == l)
        {
            options.remove(pos);
            options.insert(0, l);
            if preemptions_max.is_some_and(|max| out.preemptions >= max) {
                options.truncate(1);
            }
        }
        let index = prefix.get(out.choices.len()).copied().unwrap_or(0).min(options.len() - 1);
        let chosen = options[index];
        if let Some(l) = last
            && l != chosen
            && enabled.contains(&l)
        {
            out.preemptions += 1;
        }
        out.choices.push((index, options.len(), chosen));
        last = Some(chosen);
        submit(engine, hub, chosen, &mut states, &mut sessions, &mut out);
        deliver(engine, hub, &mut states, &sessions, &mut out);
    }
}

fn submit(
    engine: &mut Engine,
    hub: &SharedHub,
    index: usize,
    states: &mut [State],
    sessions: &mut [Option<SessionId>],
    out: &mut Outcome,
) {
    let (sql, params) = hub.lock().expect("hub").slots[index].pending.take().expect("posted");
    let session = *sessions[index].get_or_insert_with(|| engine.open_session());
    let values: Vec<model::Value> = params.iter().map(to_model).collect();
    let step = engine.submit(session, &sql, &values);
    let outcome = match step {
        Step::Done(response) => {
            let (text, result) = convert(response, &sql, out);
            hub.lock().expect("hub").slots[index].result = Some(result);
            states[index] = State::Running;
            text
        }
        Step::Blocked => {
            states[index] = State::Blocked;
            "blocked".to_string()
        }
    };
    out.events.push(Event { session: index, sql, params, outcome });
}

fn convert(
    response: model::Response,
    sql: &str,
    out: &mut Outcome,
) -> (String, Result<Rows, DbError>) {
    match response {
        Ok(result) => {
            let text = if result.tag.starts_with("SELECT") && result.rows.len() == 1 {
                let row: Vec<String> = result.rows[0].iter().map(|v| format!("{v:?}")).collect();
                format!("{} [{}]", result.tag, row.join(", "))
            } else {
                result.tag.clone()
            };
            let rows =
                result.rows.into_iter().map(|r| r.into_iter().map(from_model_owned).collect());
            let rows = Rows {
                columns: result.columns,
                rows: rows.collect(),
                rows_affected: rows_affected(&result.tag),
            };
            (text, Ok(rows))
        }
        Err(error) => {
            if error.code == "40P01" {
                out.deadlocks.push(format!(
                    "{} (statement: {})",
                    error.message,
                    sql.lines().next().unwrap_or("").trim()
                ));
            }
            let text = format!("ERROR {}", error.code);
            (
                text,
                Err(DbError {
                    sqlstate: error.code,
                    message: error.message,
                    constraint: error.constraint,
                }),
            )
        }
    }
}

/// Hands released statements' responses to their sessions.
fn deliver(
    engine: &mut Engine,
    hub: &SharedHub,
    states: &mut [State],
    sessions: &[Option<SessionId>],
    out: &mut Outcome,
) {
    for completion in engine.take_completions() {
        let Some(index) = sessions.iter().position(|s| *s == Some(completion.session)) else {
            continue;
        };
        let (text, result) = convert(completion.response, "(resumed)", out);
        hub.lock().expect("hub").slots[index].result = Some(result);
        states[index] = State::Running;
        out.events.push(Event {
            session: index,
            sql: String::new(),
            params: Vec::new(),
            outcome: format!("unblocked: {text}"),
        });
    }
}

/// Polls every running session until each has posted a statement, waits in the engine or is
/// done; retry backoff sleeps complete on the paused clock meanwhile.
async fn settle(
    engine: &mut Engine,
    hub: &SharedHub,
    futures: &mut [BookingFuture],
    states: &mut [State],
    sessions: &mut [Option<SessionId>],
    out: &mut Outcome,
) {
    std::future::poll_fn(|cx| {
        loop {
            let mut progressed = false;
            for i in 0..futures.len() {
                if states[i] != State::Running {
                    continue;
                }
                if let Poll::Ready(answer) = futures[i].as_mut().poll(cx) {
                    out.answers[i] = Some(answer);
                    states[i] = State::Done;
                    progressed = true;
                } else if hub.lock().expect("hub").slots[i].pending.is_some() {
                    states[i] = State::Posted;
                    progressed = true;
                }
                let close = std::mem::take(&mut hub.lock().expect("hub").slots[i].close);
                if close && let Some(session) = sessions[i].take() {
                    engine.close_session(session);
                    deliver(engine, hub, states, sessions, out);
                    progressed = true;
                }
            }
            if !states.contains(&State::Running) {
                return Poll::Ready(());
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    })
    .await
}
