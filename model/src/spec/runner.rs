//! RUNNER: plays a spec's permutations against a [`SpecBackend`], like isolationtester.
//!
//! For each permutation: a fresh database; the `setup` blocks on a control connection; each
//! session's `setup` on its own connection; then the steps in order:
//! 1. If the step's session is still waiting on an earlier step, wait for that one to finish
//!    (report it as completed), then report any other waiter that finished meanwhile.
//! 2. Start the step. It either finishes (`blocked: false` with its result) or is BLOCKED
//!    (waiting for a lock). A step that is merely slow (`pg_sleep`) is waited for.
//! 3. Report every earlier waiter that has now finished, in the order they began waiting.
//!
//! At the end every waiter is waited for, in the order they began waiting (isolationtester's
//! final drain); a waiter that can never finish is reported `stuck`. Then the session and
//! global teardowns run. Setup/teardown results are reported only when they fail.
//!
//! Blocker markers work as in isolationtester: `step(*)` is reported waiting as soon as it
//! starts (its completion at the next check); `step(other)` is not reported complete while
//! `other` is still waiting; `step(other notices N)` is treated like `step(other)` (notices
//! are not counted).
//!
//! Differences from isolationtester: each permutation gets fresh connections and a fresh
//! database (so session settings never leak between permutations); errors of steps that
//! finish at the same time are reported one by one, not combined.

use serde::{Deserialize, Serialize};

use super::parse::{PermutationStep, Spec};

/// How long both backends let a step run, when anything is waiting, before they declare it
/// blocked and start the next step: PostgreSQL in real time, the model in virtual time. A
/// deadlock check or lock/statement timeout due within it fires "during" the step, as it
/// does under a harness that polls (isolationtester) or waits (the 150 ms of the recorder
/// behind issue 14). Steps started while nothing waits take no virtual time.
pub const SETTLE_WINDOW: std::time::Duration = std::time::Duration::from_millis(150);

/// What one step produced: R in the JSON format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StepResult {
    Tag { tag: String },
    Rows { cols: Vec<String>, rows: Vec<Vec<serde_json::Value>> },
    Error { error: String, message: String },
}

impl StepResult {
    pub fn is_error(&self) -> bool {
        matches!(self, StepResult::Error { .. })
    }
}

/// One line of a permutation's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Event {
    /// A step was started: it finished at once, or it is waiting.
    Step {
        step: String,
        session: String,
        blocked: bool,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        result: Option<StepResult>,
    },
    /// A waiting step finished.
    Completed { completed: String, session: String, result: StepResult },
    /// A waiting step that can never finish (no pending timer; or the step timeout passed).
    Stuck { stuck: String, session: String },
    /// A failed setup or teardown block (`where`: "setup", "teardown", "s1 setup", …).
    Control { control: String, result: StepResult },
}

/// One permutation's report: a line of the JSON output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermutationResult {
    pub permutation: Vec<String>,
    pub events: Vec<Event>,
}

/// What starting a step gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Started {
    Done(StepResult),
    Blocked,
}

/// The backend could not run the spec at all (connection failure, protocol error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// A database the runner can drive: the model engine, or real PostgreSQL.
///
/// Sessions are numbered 0.. in spec order.
#[allow(async_fn_in_trait)] // Used generically only; no Send bound is needed.
pub trait SpecBackend {
    /// A fresh database with one connection per session, plus a control connection.
    async fn open(&mut self, sessions: usize) -> Result<(), BackendError>;
    /// Runs a setup/teardown block on the control connection.
    async fn control(&mut self, sql: &str) -> Result<StepResult, BackendError>;
    /// Starts a step on a session: finished, or blocked on a lock.
    async fn start(&mut self, session: usize, sql: &str) -> Result<Started, BackendError>;
    /// Whether a waiting step has finished, without waiting for locks.
    async fn poll(&mut self, session: usize) -> Result<Option<StepResult>, BackendError>;
    /// Waits for a waiting step to finish; `None` if it never can.
    async fn wait(&mut self, session: usize) -> Result<Option<StepResult>, BackendError>;
    /// Called after each step has started (finished or blocked). If `any_waiting` (this
    /// step or an earlier one is waiting) the clock advances by [`SETTLE_WINDOW`], firing
    /// the timers due in it; otherwise timing cannot matter until the next wait.
    async fn after_step(&mut self, sql: &str, any_waiting: bool) -> Result<(), BackendError>;
    /// Ends the permutation: drop connections and the database.
    async fn close(&mut self) -> Result<(), BackendError>;
}

/// Runs every permutation of `spec`.
pub async fn run_spec<B: SpecBackend>(
    spec: &Spec,
    backend: &mut B,
) -> Result<Vec<PermutationResult>, BackendError> {
    let mut results = Vec::with_capacity(spec.permutations.len());
    for perm in &spec.permutations {
        let names: Vec<String> = perm.iter().map(|p| p.step.clone()).collect();
        backend.open(spec.sessions.len()).await?;
        let mut run = Run { spec, backend: &mut *backend, events: Vec::new(), waiting: Vec::new() };
        let outcome = run.permutation(perm).await;
        let events = run.events;
        let closed = backend.close().await;
        outcome?;
        closed?;
        results.push(PermutationResult { permutation: names, events });
    }
    Ok(results)
}

/// A step reported as waiting.
struct Waiter {
    session: usize,
    step: String,
    /// Its result, once it finished but may not be reported yet (blocker markers).
    held: Option<StepResult>,
    /// Steps that must not be running when this one is reported complete (`step(other)`).
    blockers: Vec<String>,
}

struct Run<'a, B> {
    spec: &'a Spec,
    backend: &'a mut B,
    events: Vec<Event>,
    /// In the order they began waiting.
    waiting: Vec<Waiter>,
}

impl<B: SpecBackend> Run<'_, B> {
    async fn permutation(&mut self, steps: &[PermutationStep]) -> Result<(), BackendError> {
        for sql in &self.spec.setup {
            let r = self.backend.control(sql).await?;
            self.report_control("setup", r);
        }
        for (i, session) in self.spec.sessions.iter().enumerate() {
            if let Some(sql) = &session.setup {
                let r = self.run_to_end(i, sql).await?;
                self.report_control(&format!("{} setup", session.name), r);
            }
        }
        for ps in steps {
            let (session, def) = self.spec.step(&ps.step).expect("parser checked step names");
            if let Some(w) = self.waiting.iter().position(|w| w.session == session) {
                let waiter = self.waiting.remove(w);
                if !self.finish(waiter).await? {
                    return Ok(()); // Stuck: nothing more can run on that session.
                }
                self.check_waiting().await?;
            }
            let mut started = self.backend.start(session, &def.sql).await?;
            // The settle window: while anything waits, each step gets SETTLE_WINDOW before
            // it is declared blocked and the next one starts (timers due in it fire).
            let any_waiting =
                started == Started::Blocked || self.waiting.iter().any(|w| w.held.is_none());
            self.backend.after_step(&def.sql, any_waiting).await?;
            if started == Started::Blocked
                && let Some(o) = self.backend.poll(session).await?
            {
                started = Started::Done(o);
            }
            let once = ps.markers.iter().any(|m| m == "*");
            let blockers: Vec<String> = ps
                .markers
                .iter()
                .filter(|m| *m != "*")
                .map(|m| m.split(' ').next().unwrap_or_default().to_string())
                .collect();
            let (blocked, result, held) = match started {
                Started::Done(o) if once || self.blocked_by(&blockers) => (true, None, Some(o)),
                Started::Done(o) => (false, Some(o), None),
                Started::Blocked => (true, None, None),
            };
            let session_name = self.session_name(session);
            let step = ps.step.clone();
            self.events.push(Event::Step { step, session: session_name, blocked, result });
            self.check_waiting().await?;
            if blocked {
                self.waiting.push(Waiter { session, step: ps.step.clone(), held, blockers });
            }
        }
        // isolationtester's final drain: wait for each in order, skipping any whose blocker
        // step is still running, until none is left.
        while !self.waiting.is_empty() {
            let Some(i) = self.waiting.iter().position(|w| !self.blocked_by(&w.blockers)) else {
                for w in std::mem::take(&mut self.waiting) {
                    let session = self.session_name(w.session);
                    self.events.push(Event::Stuck { stuck: w.step, session });
                }
                return Ok(());
            };
            let waiter = self.waiting.remove(i);
            if !self.finish(waiter).await? {
                return Ok(()); // Stuck: skip the teardowns, the database is dropped anyway.
            }
        }
        self.teardown().await
    }

    async fn teardown(&mut self) -> Result<(), BackendError> {
        for (i, session) in self.spec.sessions.iter().enumerate() {
            if let Some(sql) = &session.teardown {
                let r = self.run_to_end(i, sql).await?;
                self.report_control(&format!("{} teardown", session.name), r);
            }
        }
        if let Some(sql) = &self.spec.teardown {
            let r = self.backend.control(sql).await?;
            self.report_control("teardown", r);
        }
        Ok(())
    }

    /// Whether one of `blockers` is a step still running (waiting).
    fn blocked_by(&self, blockers: &[String]) -> bool {
        self.waiting.iter().any(|w| blockers.contains(&w.step))
    }

    /// Waits for a waiting step and reports it; false if it is stuck.
    async fn finish(&mut self, waiter: Waiter) -> Result<bool, BackendError> {
        let session = self.session_name(waiter.session);
        let result = match waiter.held {
            Some(r) => Some(r),
            None => self.backend.wait(waiter.session).await?,
        };
        let (event, done) = match result {
            Some(result) => (Event::Completed { completed: waiter.step, session, result }, true),
            None => (Event::Stuck { stuck: waiter.step, session }, false),
        };
        self.events.push(event);
        Ok(done)
    }

    /// Reports every waiter that has finished and is not held back by a blocker step, in the
    /// order they began waiting; repeats while a report may have released a held one.
    async fn check_waiting(&mut self) -> Result<(), BackendError> {
        for _ in 0..=self.waiting.len() {
            let mut reported = false;
            let mut i = 0;
            while i < self.waiting.len() {
                if self.waiting[i].held.is_none() {
                    let session = self.waiting[i].session;
                    self.waiting[i].held = self.backend.poll(session).await?;
                }
                if self.waiting[i].held.is_some() && !self.blocked_by(&self.waiting[i].blockers) {
                    let w = self.waiting.remove(i);
                    let session = self.session_name(w.session);
                    let result = w.held.expect("checked");
                    self.events.push(Event::Completed { completed: w.step, session, result });
                    reported = true;
                } else {
                    i += 1;
                }
            }
            if !reported || self.waiting.iter().all(|w| w.blockers.is_empty()) {
                break;
            }
        }
        Ok(())
    }

    /// A session setup/teardown block: run it and wait for it.
    async fn run_to_end(&mut self, session: usize, sql: &str) -> Result<StepResult, BackendError> {
        match self.backend.start(session, sql).await? {
            Started::Done(o) => Ok(o),
            Started::Blocked => {
                Ok(self.backend.wait(session).await?.unwrap_or(StepResult::Error {
                    error: "stuck".into(),
                    message: "session setup/teardown never finished".into(),
                }))
            }
        }
    }

    fn report_control(&mut self, place: &str, result: StepResult) {
        if result.is_error() {
            self.events.push(Event::Control { control: place.to_string(), result });
        }
    }

    fn session_name(&self, session: usize) -> String {
        self.spec.sessions[session].name.clone()
    }
}
