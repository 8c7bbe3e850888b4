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

/// Ids `(booking + 1) << 64 | attempt << 32 | n`: distinct across bookings and their
/// attempts, independent of the schedule.
pub struct BookingIds {
    pub booking: u64,
    pub attempt: u32,
    pub next: AtomicU64,
}

impl IdSource for BookingIds {
    fn next_id(&self) -> Uuid {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let high = (u128::from(self.booking + 1) << 64) | (u128::from(self.attempt) << 32);
        Uuid::from_u128(high | u128::from(n))
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

/// One scheduling decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Submit this booking's posted statement.
    Run(usize),
    /// Let modelled time pass to the next timer (nothing to run), or end the schedule once
    /// every booking is answered. Offered as a choice only beside crash options.
    Continue,
    /// The backend serving this booking crashes between two statements (its connection
    /// closes, so the engine rolls its transaction back; an answer not yet delivered is
    /// lost), and the client sends the same request again. Offered once the attempt has run
    /// a statement other than a pure read, while its next statement is posted or its answer
    /// is on the way; not while a statement waits for a lock (a crash there differs from the
    /// crash just before that statement only by the waiter's place in the lock queue).
    Crash(usize),
}

/// One executed step, for the counterexample table.
#[derive(Clone, Debug)]
pub struct Event {
    /// The booking (0-based).
    pub session: usize,
    /// The database connection (engine session) it ran on, numbered from 0 in the order
    /// they were opened in this schedule: a crash or a new `acquire` opens another.
    pub connection: usize,
    pub sql: String,
    pub params: Vec<SqlValue>,
    /// "SELECT 1", "INSERT 0 1", "ERROR 40P01", "blocked", "unblocked: …", "CRASH …".
    pub outcome: String,
    /// The row of a one-row SELECT (shown by [`Event::outcome_text`]; formatted only when a
    /// counterexample is printed, not for every statement of every schedule).
    pub row: Option<Vec<model::Value>>,
}

impl Event {
    /// The outcome as the counterexample table shows it: a one-row SELECT with its values.
    pub fn outcome_text(&self) -> String {
        match &self.row {
            Some(row) => {
                let row: Vec<String> = row.iter().map(|v| format!("{v:?}")).collect();
                format!("{} [{}]", self.outcome, row.join(", "))
            }
            None => self.outcome.clone(),
        }
    }

    /// A statement the engine ran (not an unblocking or a crash).
    pub fn is_statement(&self) -> bool {
        !self.sql.is_empty()
    }
}

/// The limits of one schedule's choices.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// CHESS-style bound on switches away from a session that could go on; `None` = none.
    pub preemptions_max: Option<u32>,
    /// Crashes one schedule may have in all (0 = no crash points); each booking at most one.
    pub crashes_max: u32,
    /// Sleep sets (partial-order reduction): skip orders that only swap independent steps.
    pub reduction: bool,
}

/// Visited-state cache (stateright-style) over the schedules of one check.
///
/// A STATE is everything the rest of a schedule depends on: the engine's
/// [`Engine::fingerprint`], and per booking its scheduler state, the hash of the statements it
/// sent and the answers it got in its current attempt (the booking code is deterministic in
/// those: fixed clock, per-attempt id source, no randomness), its attempt number, crashes
/// left, connection, answer, plus the crashes and deadlocks so far (the verdict counts a
/// deadlock of a crashed attempt) and, under a preemption bound, the session that ran last.
/// A schedule that reaches a state already explored — with a sleep set that is a subset of
/// the current one and no more preemptions spent — stops there: every
/// continuation was run from the earlier visit (depth-first search finishes a state's subtree
/// before it leaves it, and states never repeat along one schedule because every step grows
/// some session's history, the time or the attempts). The preemption condition keeps the
/// bound exact. The COUNTEREXAMPLE is then the shortest among the schedules run: a shorter
/// path into a state explored before stops there, so a violation behind it is reported with
/// the earlier, longer path (`--no-state-cache` gives the exact shortest).
///
/// Hash collisions (64 bits) could merge two states; at a million states the chance is about
/// 3 in 10^8. Left out on purpose: the step cap (`STEPS_MAX`, a livelock guard no small scope
/// reaches).
#[derive(Default)]
pub struct Visited {
    states: std::collections::BTreeMap<u64, Seen>,
    /// Schedules stopped at a visited state.
    pub hits: u64,
}

impl Visited {
    /// Distinct states recorded.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

/// How a state was first explored.
#[derive(Clone, Copy, Debug)]
struct Seen {
    /// Bookings asleep there (bit i = booking i).
    asleep: u64,
    preemptions: u32,
}

/// What a posted statement can do to other sessions, for the partial-order reduction. A
/// PURE READ (a plain SELECT outside a transaction block or inside a READ COMMITTED one:
/// no row locks, no SIREAD locks, no side-effect functions, a fresh snapshot) depends only on
/// committed state and changes nothing another session can see; it commutes with every step
/// of another session that does not change committed state either (anything but COMMIT and
/// statements run outside a transaction block). Everything else is treated as dependent on
/// everything (conservative: fewer orders are skipped, none wrongly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    PureRead,
    /// Changes nothing committed: a statement inside a transaction block (not COMMIT).
    Private,
    /// May change what other sessions' next snapshot sees.
    Visible,
}

fn effect(sql: &str, in_transaction: bool, read_committed: bool) -> Effect {
    let upper = sql.to_ascii_uppercase();
    let kind = model::statement_kind(sql);
    let single = !upper.trim_end().trim_end_matches(';').contains(';');
    let plain_select = kind == "select"
        && single
        && !upper.contains(" FOR ")
        && !upper.contains("PG_")
        && !upper.contains("NEXTVAL")
        && !upper.contains("SET_CONFIG");
    if plain_select && (!in_transaction || read_committed) {
        return Effect::PureRead;
    }
    // ROLLBACK releases locks, so a waiting statement of a third session may complete: it
    // stays private unless that statement runs outside a transaction block, which the
    // caller rules out (`autocommit_waiting`).
    if in_transaction && kind != "commit" && single {
        return Effect::Private;
    }
    Effect::Visible
}

fn independent(a: Effect, b: Effect) -> bool {
    (a == Effect::PureRead && b != Effect::Visible)
        || (b == Effect::PureRead && a != Effect::Visible)
}

/// Makes booking `index`'s request future for attempt `attempt` (1 = the first send).
pub type MakeBooking<'a> = &'a dyn Fn(usize, u32) -> BookingFuture;

/// What one schedule produced.
pub struct ScheduleOutcome {
    pub answers: Vec<Option<Answer>>,
    /// Requests sent per booking (1 + its crashes).
    pub attempts: Vec<u32>,
    /// (chosen index among the options, option count, the choice) per decision.
    pub choices: Vec<(usize, usize, Choice)>,
    pub events: Vec<Event>,
    pub deadlocks: Vec<String>,
    /// A session still waited with no timer pending, or the step cap hit.
    pub stuck: Option<String>,
    pub preemptions: u32,
    /// Every posted statement was asleep: the schedule only reorders independent steps of
    /// one already explored, so it stopped early and has no verdict.
    pub pruned: bool,
    /// The schedule reached a state explored before ([`Visited`]) and stopped there; it has
    /// no verdict.
    pub cached: bool,
    /// Each booking's current connection number, and how many were opened.
    connection_of: Vec<usize>,
    connections_opened: usize,
    /// Per booking: hash of the statements sent and answers received in its current attempt.
    history: Vec<u64>,
}

/// A statement's response as a booking sees it, for its history hash.
struct ResponseKey<'a>(&'a model::Response);

impl std::hash::Hash for ResponseKey<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self.0 {
            Ok(r) => (0u8, &r.tag, &r.columns, &r.rows).hash(state),
            Err(e) => (1u8, &e.code, &e.message, &e.detail, &e.constraint).hash(state),
        }
    }
}

/// Folds `item` into a booking's history hash.
fn fold(history: &mut u64, item: impl std::hash::Hash) {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::hash::DefaultHasher::new();
    (*history, item).hash(&mut hasher);
    *history = hasher.finish();
}

/// Runs `bookings` requests to the end, choosing among the options at each decision: `prefix`
/// first, then index 0. Options in order: the last session's statement (continuing is free),
/// the other posted statements (each a preemption while the last could go on; not offered
/// past `preemptions_max`), `Continue` when nothing is posted, then the crash options.
pub async fn run_schedule(
    engine: &mut Engine,
    hub: &SharedHub,
    make: MakeBooking<'_>,
    bookings: usize,
    prefix: &[usize],
    limits: Limits,
    mut visited: Option<&mut Visited>,
) -> ScheduleOutcome {
    let n = bookings;
    let mut futures: Vec<BookingFuture> = (0..n).map(|i| make(i, 1)).collect();
    let mut states = vec![State::Running; n];
    let mut sessions: Vec<Option<SessionId>> = vec![None; n];
    // Whether the booking's current attempt has run a statement other than a pure read. A
    // crash before that changes nothing anyone can see: the retry behaves as the first
    // attempt with its reads delayed, a schedule explored without the crash, so such crashes
    // are not offered.
    let mut executed = vec![false; n];
    let mut crashes_left = vec![u32::from(limits.crashes_max > 0); n];
    let mut crashes_total = 0;
    let mut out = ScheduleOutcome {
        answers: vec![None; n],
        attempts: vec![1; n],
        choices: Vec::new(),
        events: Vec::new(),
        deadlocks: Vec::new(),
        stuck: None,
        preemptions: 0,
        pruned: false,
        cached: false,
        connection_of: vec![0; n],
        connections_opened: 0,
        history: vec![0; n],
    };
    let mut last: Option<usize> = None;
    // Sessions whose posted statement need not run next (sleep sets, Godefroid 1996): an
    // order starting with it was explored from an earlier option with only independent
    // steps in between.
    let mut asleep: Vec<usize> = Vec::new();
    // Whether each session's current transaction is READ COMMITTED (from its BEGIN).
    let mut read_committed = vec![true; n];
    // The effect of each session's last submitted statement.
    let mut submitted = vec![Effect::Visible; n];
    loop {
        settle(engine, hub, &mut futures, &mut states, &mut sessions, &mut out).await;
        if out.events.len() >= STEPS_MAX {
            out.stuck = Some(format!("step cap of {STEPS_MAX} statements reached"));
            return out;
        }
        let enabled: Vec<usize> = (0..n).filter(|&i| states[i] == State::Posted).collect();
        let mut options: Vec<Choice> = enabled.iter().map(|&i| Choice::Run(i)).collect();
        if let Some(l) = last
            && let Some(pos) = enabled.iter().position(|&s| s == l)
        {
            options.remove(pos);
            options.insert(0, Choice::Run(l));
            if limits.preemptions_max.is_some_and(|max| out.preemptions >= max) {
                options.truncate(1);
            }
        }
        // A statement that fails inside a transaction releases its locks too (PostgreSQL
        // aborts the transaction at the error): while a statement run outside a transaction
        // block waits, any step may make it commit, so nothing is independent.
        let autocommit_waiting =
            (0..n).any(|i| states[i] == State::Blocked && submitted[i] == Effect::Visible);
        let effects: Vec<Effect> = {
            let open = engine.open_transactions();
            let hub = hub.lock().expect("hub");
            (0..n)
                .map(|i| match (&hub.slots[i].pending, sessions[i]) {
                    _ if autocommit_waiting => Effect::Visible,
                    (Some((sql, _)), session) => {
                        let in_transaction =
                            session.is_some_and(|s| open.iter().any(|t| t.session == s));
                        effect(sql, in_transaction, read_committed[i])
                    }
                    _ => Effect::Visible,
                })
                .collect()
        };
        if limits.reduction {
            let awake = options.len();
            options.retain(|o| !matches!(o, Choice::Run(i) if asleep.contains(i)));
            if awake > 0 && options.is_empty() {
                out.pruned = true;
                return out;
            }
        }
        if enabled.is_empty() {
            options.push(Choice::Continue);
        }
        options.extend(
            (0..n)
                .filter(|&i| {
                    crashes_left[i] > 0
                        && crashes_total < limits.crashes_max
                        && executed[i]
                        && matches!(states[i], State::Posted | State::Done)
                })
                .map(Choice::Crash),
        );
        // States before the prefix's last choice are replays of the schedule before (on the
        // current depth-first path, recorded then); the ones after it are new.
        if let Some(visited) = visited.as_deref_mut()
            && out.choices.len() >= prefix.len()
        {
            let key = {
                use std::hash::{Hash as _, Hasher as _};
                let mut hasher = std::hash::DefaultHasher::new();
                engine.fingerprint().hash(&mut hasher);
                for i in 0..n {
                    (states[i] as u8, out.history[i], out.attempts[i], crashes_left[i])
                        .hash(&mut hasher);
                    (executed[i], read_committed[i], submitted[i] as u8, sessions[i])
                        .hash(&mut hasher);
                    out.answers[i].hash(&mut hasher);
                }
                (crashes_total, out.deadlocks.len()).hash(&mut hasher);
                if limits.preemptions_max.is_some() {
                    last.hash(&mut hasher);
                }
                hasher.finish()
            };
            let here = Seen {
                asleep: asleep.iter().fold(0, |mask, &i| mask | (1 << i)),
                preemptions: out.preemptions,
            };
            match visited.states.get(&key) {
                Some(seen)
                    if seen.asleep & !here.asleep == 0 && seen.preemptions <= here.preemptions =>
                {
                    visited.hits += 1;
                    out.cached = true;
                    return out;
                }
                _ => {
                    visited.states.insert(key, here);
                }
            }
        }
        let (choice, index) = if options.len() == 1 {
            (options[0], 0)
        } else {
            let index = prefix.get(out.choices.len()).copied().unwrap_or(0).min(options.len() - 1);
            out.choices.push((index, options.len(), options[index]));
            (options[index], index)
        };
        if limits.reduction {
            match choice {
                Choice::Run(chosen) => {
                    // The earlier options were explored before this one: they sleep while
                    // only steps independent of theirs run.
                    for option in &options[..index] {
                        if let Choice::Run(j) = option
                            && !asleep.contains(j)
                        {
                            asleep.push(*j);
                        }
                    }
                    asleep.retain(|&j| j != chosen && independent(effects[chosen], effects[j]));
                }
                // A crash rolls back (private, as a ROLLBACK); time passing may fire
                // anything.
                Choice::Crash(_) => {
                    asleep.retain(|&j| independent(Effect::Private, effects[j]));
                }
                Choice::Continue => asleep.clear(),
            }
        }
        match choice {
            Choice::Run(chosen) => {
                if let Some(l) = last
                    && l != chosen
                    && enabled.contains(&l)
                {
                    out.preemptions += 1;
                }
                last = Some(chosen);
                executed[chosen] |= effects[chosen] != Effect::PureRead;
                submitted[chosen] = effects[chosen];
                if let Some((sql, _)) = &hub.lock().expect("hub").slots[chosen].pending {
                    let upper = sql.trim_start().to_ascii_uppercase();
                    if upper.starts_with("BEGIN") || upper.starts_with("START TRANSACTION") {
                        read_committed[chosen] =
                            !upper.contains("REPEATABLE READ") && !upper.contains("SERIALIZABLE");
                    }
                }
                submit(engine, hub, chosen, &mut states, &mut sessions, &mut out);
                deliver(engine, hub, &mut states, &sessions, &mut out);
            }
            Choice::Continue => {
                if states.iter().all(|s| *s == State::Done) {
                    return out;
                }
                let Some(at) = engine.next_timer() else {
                    out.stuck = Some("a session waits with no timer pending".into());
                    return out;
                };
                engine.advance_to(at);
                deliver(engine, hub, &mut states, &sessions, &mut out);
            }
            Choice::Crash(i) => {
                crashes_left[i] -= 1;
                crashes_total += 1;
                out.attempts[i] += 1;
                out.answers[i] = None;
                out.history[i] = 0;
                read_committed[i] = true;
                submitted[i] = Effect::Visible;
                executed[i] = false;
                // The old request's future (and its connection) goes; a fresh one is sent.
                futures[i] = make(i, out.attempts[i]);
                hub.lock().expect("hub").slots[i] = Slot::default();
                if let Some(session) = sessions[i].take() {
                    engine.close_session(session);
                }
                states[i] = State::Running;
                out.events.push(Event {
                    session: i,
                    connection: out.connection_of[i],
                    sql: String::new(),
                    params: Vec::new(),
                    outcome: format!(
                        "CRASH: the backend dies, the client sends it again (attempt {})",
                        out.attempts[i]
                    ),
                    row: None,
                });
                deliver(engine, hub, &mut states, &sessions, &mut out);
            }
        }
    }
}

fn submit(
    engine: &mut Engine,
    hub: &SharedHub,
    index: usize,
    states: &mut [State],
    sessions: &mut [Option<SessionId>],
    out: &mut ScheduleOutcome,
) {
    let (sql, params) = hub.lock().expect("hub").slots[index].pending.take().expect("posted");
    let session = match sessions[index] {
        Some(session) => session,
        None => {
            out.connection_of[index] = out.connections_opened;
            out.connections_opened += 1;
            *sessions[index].insert(engine.open_session())
        }
    };
    let values: Vec<model::Value> = params.iter().map(to_model).collect();
    let step = engine.submit(session, &sql, &values);
    fold(&mut out.history[index], (&sql, &values));
    let (outcome, row) = match step {
        Step::Done(response) => {
            fold(&mut out.history[index], ResponseKey(&response));
            let (text, row, result) = convert(response, &sql, out);
            hub.lock().expect("hub").slots[index].result = Some(result);
            states[index] = State::Running;
            (text, row)
        }
        Step::Blocked => {
            states[index] = State::Blocked;
            ("blocked".to_string(), None)
        }
    };
    let connection = out.connection_of[index];
    out.events.push(Event { session: index, connection, sql, params, outcome, row });
}

fn convert(
    response: model::Response,
    sql: &str,
    out: &mut ScheduleOutcome,
) -> (String, Option<Vec<model::Value>>, Result<Rows, DbError>) {
    match response {
        Ok(result) => {
            let row = (result.tag.starts_with("SELECT") && result.rows.len() == 1)
                .then(|| result.rows[0].clone());
            let text = result.tag.clone();
            let rows =
                result.rows.into_iter().map(|r| r.into_iter().map(from_model_owned).collect());
            let rows = Rows {
                columns: result.columns,
                rows: rows.collect(),
                rows_affected: rows_affected(&result.tag),
            };
            (text, row, Ok(rows))
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
                None,
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
    out: &mut ScheduleOutcome,
) {
    for completion in engine.take_completions() {
        let Some(index) = sessions.iter().position(|s| *s == Some(completion.session)) else {
            continue;
        };
        fold(&mut out.history[index], ResponseKey(&completion.response));
        let (text, row, result) = convert(completion.response, "(resumed)", out);
        hub.lock().expect("hub").slots[index].result = Some(result);
        states[index] = State::Running;
        out.events.push(Event {
            session: index,
            connection: out.connection_of[index],
            sql: String::new(),
            params: Vec::new(),
            outcome: format!("unblocked: {text}"),
            row,
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
    out: &mut ScheduleOutcome,
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
