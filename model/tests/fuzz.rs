//! Fuzzing the parser and executor with proptest: random SQL-ish strings and random
//! multi-session statement sequences must never panic, and every blocked statement must
//! eventually finish once time runs far enough and all sessions roll back.
use crate::common::*;
use model::{Engine, EngineConfig, Step};
use proptest::prelude::*;
use std::time::Duration;

const TOKENS: &[&str] = &[
    "select",
    "insert",
    "into",
    "update",
    "delete",
    "from",
    "where",
    "set",
    "values",
    "test",
    "id",
    "value",
    "(",
    ")",
    ",",
    ";",
    "*",
    "=",
    "<",
    ">",
    "<>",
    "+",
    "-",
    "/",
    "%",
    "||",
    "&&",
    "@>",
    "1",
    "0",
    "-1",
    "'x'",
    "'2025-03-10 09:00:00+00'",
    "null",
    "true",
    "and",
    "or",
    "not",
    "in",
    "between",
    "is",
    "order",
    "by",
    "limit",
    "offset",
    "group",
    "having",
    "count",
    "sum",
    "min",
    "max",
    "for",
    "update",
    "share",
    "no",
    "key",
    "nowait",
    "skip",
    "locked",
    "on",
    "conflict",
    "do",
    "nothing",
    "returning",
    "begin",
    "commit",
    "rollback",
    "savepoint",
    "a",
    "to",
    "release",
    "create",
    "table",
    "t2",
    "int",
    "text",
    "primary",
    "unique",
    "check",
    "exclude",
    "using",
    "gist",
    "with",
    "tstzrange",
    "int4range",
    "::",
    "timestamptz",
    "now()",
    "$1",
    "join",
    "pg_sleep",
    "pg_advisory_xact_lock",
    "pg_try_advisory_lock",
    "generate_series",
    "excluded",
    "distinct",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..24).prop_map(|t| t.join(" "))
}

const STATEMENTS: &[&str] = &[
    "begin",
    "begin isolation level repeatable read",
    "begin isolation level serializable",
    "commit",
    "rollback",
    "savepoint s",
    "rollback to savepoint s",
    "select * from test",
    "select * from test where id = 1 for update",
    "select * from test where id = 2 for share nowait",
    "select * from test order by id limit 1 for update skip locked",
    "update test set value = value + 1 where id = 1",
    "update test set value = value + 1 where id = 2",
    "update test set id = id + 10 where id = 1",
    "delete from test where id = 2",
    "insert into test values (3, 30)",
    "insert into test values (3, 31) on conflict (id) do update set value = excluded.value",
    "insert into test values (1, 1) on conflict do nothing",
    "select pg_advisory_xact_lock(1)",
    "select pg_advisory_lock(2)",
    "select pg_advisory_unlock(2)",
    "select pg_sleep(1)",
    "set local lock_timeout = '500ms'",
    "select count(*) from test where value % 3 = 0",
    "insert into appt (room, during) values (1, '[1,5)')",
    "insert into appt (room, during) values (1, '[3,8)')",
    "delete from appt where room = 1",
];

fn sequence() -> impl Strategy<Value = Vec<(usize, usize, u16)>> {
    prop::collection::vec((0..3usize, 0..STATEMENTS.len(), 0..1500u16), 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

    /// Random token soup never panics the parser, planner or executor.
    #[test]
    fn token_soup_never_panics(sql in soup()) {
        let mut h = H::new(1, HERMITAGE);
        let _ = h.step(0, &sql);
        let _ = h.e.query_committed(&sql);
    }

    /// Arbitrary printable strings never panic either.
    #[test]
    fn arbitrary_text_never_panics(sql in "\\PC{0,80}") {
        let mut e = Engine::new(EngineConfig::default());
        let s = e.open_session();
        let _ = e.submit(s, &sql, &[]);
        let _ = model::statement_kind(&sql);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, .. ProptestConfig::default() })]

    /// Random interleavings of three sessions never panic, and once every session stops
    /// and time runs on, nothing stays blocked.
    #[test]
    fn random_sequences_never_panic(steps in sequence()) {
        let setup = format!("{HERMITAGE} create table appt (room int, during int4range, exclude using gist (room with =, during with &&));");
        let mut h = H::new(3, &setup);
        for (session, stmt, advance_ms) in steps {
            if !h.e.is_blocked(h.s[session]) {
                let _ = h.step(session, STATEMENTS[stmt]);
            }
            h.advance_ms(u64::from(advance_ms));
            for c in h.e.take_completions() {
                prop_assert!(!h.e.is_blocked(c.session));
            }
        }
        // Idle sessions end their transactions and drop session-level advisory locks; then
        // every waiter must get through (or fail by deadlock check) as time runs on.
        for _ in 0..4 {
            h.advance_ms(60_000);
            for i in 0..3 {
                if !h.e.is_blocked(h.s[i]) {
                    let _ = h.step(i, "rollback");
                    let _ = h.step(i, "select pg_advisory_unlock_all()");
                }
            }
        }
        for i in 0..3 {
            prop_assert!(!h.e.is_blocked(h.s[i]), "session {} still blocked", i);
        }
        let n = h.e.query_committed("select count(*) from test").map(|r| r.rows.len());
        prop_assert_eq!(n, Ok(1));
        prop_assert_eq!(h.e.next_timer(), None::<Duration>);
        match h.step(0, "select 1") {
            Step::Done(Ok(_)) => {}
            other => prop_assert!(false, "engine unusable after sequence: {:?}", other),
        }
    }
}
