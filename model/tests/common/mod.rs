//! A small driver for engine tests: sessions by index, expectations on each step.
#![allow(dead_code)]

use model::{Engine, EngineConfig, QueryResult, Response, SessionId, SqlError, Step, Value};
use std::time::Duration;

pub struct H {
    pub e: Engine,
    pub s: Vec<SessionId>,
}

impl H {
    /// An engine with `n` sessions and `setup` run in a control session.
    pub fn new(n: usize, setup: &str) -> H {
        let mut e = Engine::new(EngineConfig::default());
        let control = e.open_session();
        if !setup.is_empty() {
            match e.submit(control, setup, &[]) {
                Step::Done(Ok(_)) => {}
                other => panic!("setup failed: {other:?}"),
            }
        }
        e.close_session(control);
        let s = (0..n).map(|_| e.open_session()).collect();
        H { e, s }
    }

    pub fn step(&mut self, i: usize, sql: &str) -> Step {
        self.e.submit(self.s[i], sql, &[])
    }

    pub fn ok(&mut self, i: usize, sql: &str) -> QueryResult {
        match self.step(i, sql) {
            Step::Done(Ok(r)) => r,
            other => panic!("session {i}: {sql}: expected success, got {other:?}"),
        }
    }

    pub fn tag(&mut self, i: usize, sql: &str) -> String {
        self.ok(i, sql).tag
    }

    pub fn err(&mut self, i: usize, sql: &str) -> SqlError {
        match self.step(i, sql) {
            Step::Done(Err(e)) => e,
            other => panic!("session {i}: {sql}: expected an error, got {other:?}"),
        }
    }

    pub fn code(&mut self, i: usize, sql: &str) -> String {
        self.err(i, sql).code
    }

    pub fn blocks(&mut self, i: usize, sql: &str) {
        match self.step(i, sql) {
            Step::Blocked => {}
            other => panic!("session {i}: {sql}: expected to block, got {other:?}"),
        }
        assert!(self.e.is_blocked(self.s[i]));
    }

    /// Completed blocked statements since the last call, as (session index, response).
    pub fn done(&mut self) -> Vec<(usize, Response)> {
        let s = self.s.clone();
        self.e
            .take_completions()
            .into_iter()
            .map(|c| (s.iter().position(|x| *x == c.session).expect("known session"), c.response))
            .collect()
    }

    /// The single completion expected now, for session i.
    pub fn completed(&mut self, i: usize) -> Response {
        let d = self.done();
        assert_eq!(d.len(), 1, "expected exactly one completion, got {d:?}");
        assert_eq!(d[0].0, i, "completion for the wrong session: {d:?}");
        d[0].1.clone()
    }

    pub fn ints(&mut self, i: usize, sql: &str) -> Vec<Vec<i64>> {
        let r = self.ok(i, sql);
        r.rows
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|v| match v {
                        Value::Int(x) => x,
                        Value::Null => i64::MIN,
                        other => panic!("not an int: {other:?}"),
                    })
                    .collect()
            })
            .collect()
    }

    pub fn advance_ms(&mut self, ms: u64) {
        let t = self.e.now() + Duration::from_millis(ms);
        self.e.advance_to(t);
    }

    pub fn committed_ints(&mut self, sql: &str) -> Vec<Vec<i64>> {
        let r = self.e.query_committed(sql).expect("query_committed");
        r.rows
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|v| match v {
                        Value::Int(x) => x,
                        _ => i64::MIN,
                    })
                    .collect()
            })
            .collect()
    }
}

pub fn code_of(r: &Response) -> &str {
    match r {
        Ok(_) => "ok",
        Err(e) => &e.code,
    }
}

pub fn tag_of(r: &Response) -> &str {
    match r {
        Ok(q) => &q.tag,
        Err(e) => &e.code,
    }
}

/// Hermitage's setup.
pub const HERMITAGE: &str =
    "create table test (id int primary key, value int); insert into test values (1,10),(2,20);";
