//! `Engine::fingerprint`: equal for engines that answer alike from here on, different when a
//! future statement could tell them apart (what `roomsim check`'s visited-state cache needs).

use model::{Engine, EngineConfig, Step, Value};

/// A template with one committed row, as check's prepared engine (DDL and data before the
/// fork).
fn template() -> Engine {
    let mut e = Engine::new(EngineConfig::default());
    let s = e.open_session();
    for sql in [
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)",
        "CREATE TABLE other (id int PRIMARY KEY)",
        "INSERT INTO t VALUES (1, 10)",
    ] {
        assert!(matches!(e.submit(s, sql, &[]), Step::Done(Ok(_))), "{sql}");
    }
    e.close_session(s);
    e
}

fn run(e: &mut Engine, session: model::SessionId, sql: &str) {
    let step = e.submit(session, sql, &[]);
    assert!(matches!(step, Step::Done(Ok(_))), "{sql}: {step:?}");
}

/// Runs `statements` in a transaction on a fresh session and rolls back by disconnecting.
fn rolled_back(template: &Engine, statements: &[&str]) -> Engine {
    let mut e = template.fork(0).expect("forks");
    let s = e.open_session();
    run(&mut e, s, "BEGIN");
    for sql in statements {
        run(&mut e, s, sql);
    }
    e.close_session(s);
    e
}

/// Engines are compared only as forks of one template: a schema version (a process-wide
/// counter bumped by every DDL) is part of the fingerprint.
#[test]
fn forks_of_one_template_have_one_fingerprint() {
    let t = template();
    assert_eq!(t.fork(0).unwrap().fingerprint(), t.fork(0).unwrap().fingerprint());
    assert_ne!(t.fork(0).unwrap().fingerprint(), template().fork(0).unwrap().fingerprint());
}

/// A transaction rolled back after one write or after three leaves only garbage: the same
/// state as no transaction at all, whatever xids and row ids it used.
#[test]
fn rolled_back_work_leaves_no_trace_in_the_fingerprint() {
    let t = template();
    let untouched = t.fork(0).unwrap().fingerprint();
    assert_eq!(rolled_back(&t, &[]).fingerprint(), untouched);
    let one = rolled_back(&t, &["INSERT INTO t VALUES (2, 20)"]);
    let three = rolled_back(
        &t,
        &[
            "INSERT INTO t VALUES (2, 20)",
            "UPDATE t SET v = 11 WHERE id = 1",
            "INSERT INTO other VALUES (7)",
        ],
    );
    assert_eq!(one.fingerprint(), untouched);
    assert_eq!(three.fingerprint(), untouched);
}

/// Committed data, an open transaction's uncommitted write, a held row lock and virtual time
/// each change the fingerprint: a cache keyed by it cannot merge states a statement tells
/// apart.
#[test]
fn what_a_future_statement_can_see_changes_the_fingerprint() {
    let t = template();
    let untouched = t.fork(0).unwrap().fingerprint();

    let mut committed = t.fork(0).unwrap();
    let s = committed.open_session();
    run(&mut committed, s, "INSERT INTO t VALUES (2, 20)");
    committed.close_session(s);
    assert_ne!(committed.fingerprint(), untouched, "a committed row");

    let mut other_value = t.fork(0).unwrap();
    let s = other_value.open_session();
    run(&mut other_value, s, "INSERT INTO t VALUES (2, 21)");
    other_value.close_session(s);
    assert_ne!(other_value.fingerprint(), committed.fingerprint(), "another value");

    let mut open = t.fork(0).unwrap();
    let s = open.open_session();
    run(&mut open, s, "BEGIN");
    run(&mut open, s, "INSERT INTO t VALUES (2, 20)");
    assert_ne!(open.fingerprint(), untouched, "an uncommitted write");
    assert_ne!(open.fingerprint(), committed.fingerprint(), "uncommitted vs committed");

    let mut locked = t.fork(0).unwrap();
    let s = locked.open_session();
    run(&mut locked, s, "BEGIN");
    let step = locked.submit(s, "SELECT v FROM t WHERE id = $1 FOR UPDATE", &[Value::Int(1)]);
    assert!(matches!(step, Step::Done(Ok(_))), "{step:?}");
    let mut read = t.fork(0).unwrap();
    let r = read.open_session();
    run(&mut read, r, "BEGIN");
    let step = read.submit(r, "SELECT v FROM t WHERE id = $1", &[Value::Int(1)]);
    assert!(matches!(step, Step::Done(Ok(_))), "{step:?}");
    assert_ne!(locked.fingerprint(), read.fingerprint(), "a row lock");

    let mut later = t.fork(0).unwrap();
    later.advance_to(std::time::Duration::from_millis(5));
    assert_ne!(later.fingerprint(), untouched, "virtual time");
}
