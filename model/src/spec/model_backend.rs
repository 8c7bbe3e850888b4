//! MODEL BACKEND: runs spec steps on the in-process [`Engine`] in virtual time.
//!
//! Every permutation gets a fresh engine (seeded with the runner's seed). A step is blocked
//! when `submit` answers `Blocked`. A step whose SQL calls `pg_sleep` is not a lock wait:
//! the backend advances virtual time through the engine's timers until that step finishes,
//! which also fires other sessions' deadlock checks and timeouts on the way, exactly as the
//! sleep lets them fire on PostgreSQL. `wait` advances through timers until the session
//! finishes, or reports it stuck when no timer is left. Completions that arrive for other
//! sessions are kept until the runner polls them. After a step, while anything waits,
//! virtual time advances by the runner's settle window.

use std::collections::BTreeMap;

use super::output::value_json;
use super::runner::{BackendError, SETTLE_WINDOW, SpecBackend, Started, StepResult};
use crate::{Engine, EngineConfig, Response, SessionId, Step};

/// A wait gives up after this many timer firings (a guard against a timer that re-arms).
pub const TIMER_ADVANCES_MAX: usize = 100_000;

pub struct ModelBackend {
    seed: u64,
    engine: Engine,
    control: SessionId,
    sessions: Vec<SessionId>,
    /// Finished statements not yet reported, by spec session index; BTreeMap for determinism.
    done: BTreeMap<usize, StepResult>,
}

impl ModelBackend {
    pub fn new(seed: u64) -> ModelBackend {
        let mut engine = Engine::new(EngineConfig { seed, ..EngineConfig::default() });
        let control = engine.open_session();
        ModelBackend { seed, engine, control, sessions: Vec::new(), done: BTreeMap::new() }
    }

    fn collect(&mut self) {
        for c in self.engine.take_completions() {
            if let Some(i) = self.sessions.iter().position(|&s| s == c.session) {
                self.done.insert(i, outcome(c.response));
            }
        }
    }

    /// Advances through timers until `session` finishes; None if it never can.
    fn advance_until_done(&mut self, session: usize) -> Option<StepResult> {
        for _ in 0..TIMER_ADVANCES_MAX {
            self.collect();
            if let Some(o) = self.done.remove(&session) {
                return Some(o);
            }
            let next = self.engine.next_timer()?;
            self.engine.advance_to(next);
        }
        None
    }
}

/// A response in the runner's terms: rows if the statement returns columns, else its tag.
pub fn outcome(response: Response) -> StepResult {
    match response {
        Ok(q) if q.columns.is_empty() => StepResult::Tag { tag: q.tag },
        Ok(q) => StepResult::Rows {
            cols: q.columns,
            rows: q.rows.iter().map(|r| r.iter().map(value_json).collect()).collect(),
        },
        Err(e) => StepResult::Error { error: e.code, message: e.message },
    }
}

impl SpecBackend for ModelBackend {
    async fn open(&mut self, sessions: usize) -> Result<(), BackendError> {
        *self = ModelBackend::new(self.seed);
        self.sessions = (0..sessions).map(|_| self.engine.open_session()).collect();
        Ok(())
    }

    async fn control(&mut self, sql: &str) -> Result<StepResult, BackendError> {
        match self.engine.submit(self.control, sql, &[]) {
            Step::Done(r) => Ok(outcome(r)),
            Step::Blocked => Ok(StepResult::Error {
                error: "blocked".into(),
                message: "a setup or teardown block waited on a lock".into(),
            }),
        }
    }

    async fn start(&mut self, session: usize, sql: &str) -> Result<Started, BackendError> {
        let id = self.sessions[session];
        match self.engine.submit(id, sql, &[]) {
            Step::Done(r) => Ok(Started::Done(outcome(r))),
            Step::Blocked if sql.to_ascii_lowercase().contains("pg_sleep") => {
                match self.advance_until_done(session) {
                    Some(o) => Ok(Started::Done(o)),
                    None => Ok(Started::Blocked),
                }
            }
            Step::Blocked => Ok(Started::Blocked),
        }
    }

    async fn poll(&mut self, session: usize) -> Result<Option<StepResult>, BackendError> {
        self.collect();
        Ok(self.done.remove(&session))
    }

    async fn wait(&mut self, session: usize) -> Result<Option<StepResult>, BackendError> {
        Ok(self.advance_until_done(session))
    }

    async fn after_step(&mut self, _sql: &str, any_waiting: bool) -> Result<(), BackendError> {
        if any_waiting {
            let until = self.engine.now() + SETTLE_WINDOW;
            self.engine.advance_to(until);
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
}
