//! Deadlock detection timing and victim choice, timeouts, advisory locks, pg_sleep
//! (shared/reference/postgres-semantics.md §4).
use crate::common::*;
use std::time::Duration;

fn crossed(h: &mut H) {
    for i in 0..2 {
        h.ok(i, "begin");
    }
    h.ok(0, "update test set value = 11 where id = 1");
    h.ok(1, "update test set value = 22 where id = 2");
}

/// T1 waits, T2 closes the cycle within 1 s: T1 (first waiter) is the victim at 1 s.
#[test]
fn first_waiter_is_victim() {
    let mut h = H::new(2, HERMITAGE);
    crossed(&mut h);
    h.blocks(0, "update test set value = 12 where id = 2");
    h.advance_ms(500);
    h.blocks(1, "update test set value = 21 where id = 1");
    assert_eq!(h.e.next_timer(), Some(Duration::from_millis(1000)));
    h.advance_ms(499);
    assert!(h.done().is_empty());
    h.advance_ms(1);
    let d = h.done();
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(d[0].0, 0);
    let e = d[0].1.clone().unwrap_err();
    assert_eq!((e.code.as_str(), e.message.as_str()), ("40P01", "deadlock detected"));
    assert_eq!((d[1].0, tag_of(&d[1].1)), (1, "UPDATE 1"));
}

/// If T1 already waited more than 1 s (its one check found no cycle), T2 is the victim.
#[test]
fn late_cycle_closer_is_victim() {
    let mut h = H::new(2, HERMITAGE);
    crossed(&mut h);
    h.blocks(0, "update test set value = 12 where id = 2");
    h.advance_ms(1500);
    h.blocks(1, "update test set value = 21 where id = 1");
    h.advance_ms(1000);
    let d = h.done();
    assert_eq!(d.len(), 2);
    assert_eq!((d[0].0, code_of(&d[0].1)), (1, "40P01"));
    assert_eq!((d[1].0, tag_of(&d[1].1)), (0, "UPDATE 1"));
}

/// SET deadlock_timeout picks the victim (deadlock-hard style).
#[test]
fn deadlock_timeout_setting() {
    let mut h = H::new(2, HERMITAGE);
    h.ok(0, "set deadlock_timeout = '10s'");
    h.ok(1, "set deadlock_timeout = '10ms'");
    crossed(&mut h);
    h.blocks(0, "update test set value = 12 where id = 2");
    h.blocks(1, "update test set value = 21 where id = 1");
    h.advance_ms(10);
    let d = h.done();
    assert_eq!((d[0].0, code_of(&d[0].1)), (1, "40P01"));
}

/// Lock upgrade deadlock: both hold FOR SHARE, both UPDATE.
#[test]
fn upgrade_deadlock() {
    let mut h = H::new(2, HERMITAGE);
    for i in 0..2 {
        h.ok(i, "begin");
        h.ok(i, "select * from test where id = 1 for share");
    }
    h.blocks(0, "update test set value = 1 where id = 1");
    h.blocks(1, "update test set value = 2 where id = 1");
    h.advance_ms(1000);
    let d = h.done();
    assert_eq!((d[0].0, code_of(&d[0].1)), (0, "40P01"));
    assert_eq!((d[1].0, code_of(&d[1].1)), (1, "ok"));
}

/// Advisory-lock cycle is detected; xact locks go at commit; session locks survive
/// COMMIT and ROLLBACK; try-lock returns false; shared conflicts with exclusive.
#[test]
fn advisory_locks() {
    let mut h = H::new(2, "");
    for i in 0..2 {
        h.ok(i, "begin");
    }
    h.ok(0, "select pg_advisory_xact_lock(1)");
    h.ok(1, "select pg_advisory_xact_lock(2)");
    h.blocks(0, "select pg_advisory_xact_lock(2)");
    h.blocks(1, "select pg_advisory_xact_lock(1)");
    h.advance_ms(1000);
    let d = h.done();
    assert_eq!((d[0].0, code_of(&d[0].1)), (0, "40P01"));
    h.ok(1, "commit");

    let mut h = H::new(2, "");
    h.ok(0, "begin");
    h.ok(0, "select pg_advisory_lock(7)");
    h.ok(0, "rollback");
    let r = h.ok(1, "select pg_try_advisory_lock(7), pg_try_advisory_xact_lock_shared(8)");
    assert_eq!(r.rows, vec![vec![model::Value::Bool(false), model::Value::Bool(true)]]);
    h.blocks(1, "select pg_advisory_lock_shared(7)");
    h.ok(0, "select pg_advisory_unlock(7)");
    assert_eq!(code_of(&h.completed(1)), "ok");
    let r = h.ok(0, "select pg_try_advisory_lock(7)");
    assert_eq!(r.rows, vec![vec![model::Value::Bool(false)]]);
    h.e.close_session(h.s[1]);
    let r = h.ok(0, "select pg_try_advisory_lock(7)");
    assert_eq!(r.rows, vec![vec![model::Value::Bool(true)]]);
}

/// lock_timeout → 55P03, statement_timeout → 57014; both abort the transaction.
#[test]
fn timeouts() {
    let mut h = H::new(2, HERMITAGE);
    h.ok(0, "begin");
    h.ok(0, "update test set value = 0 where id = 1");
    h.ok(1, "begin");
    h.ok(1, "set local lock_timeout = '100ms'");
    h.blocks(1, "update test set value = 1 where id = 1");
    h.advance_ms(100);
    let e = h.completed(1).unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        ("55P03", "canceling statement due to lock timeout")
    );
    assert_eq!(h.code(1, "select 1"), "25P02");
    h.ok(1, "rollback");
    h.ok(1, "set statement_timeout = 250");
    h.blocks(1, "update test set value = 1 where id = 1");
    h.advance_ms(250);
    let e = h.completed(1).unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        ("57014", "canceling statement due to statement timeout")
    );
}

/// pg_sleep blocks for virtual time; now() is the transaction start.
#[test]
fn pg_sleep_and_now() {
    let mut h = H::new(1, "");
    h.ok(0, "begin");
    h.blocks(0, "select pg_sleep(2)");
    assert_eq!(h.e.next_timer(), Some(Duration::from_secs(2)));
    h.advance_ms(1999);
    assert!(h.done().is_empty());
    h.advance_ms(1);
    assert_eq!(code_of(&h.completed(0)), "ok");
    let r = h.ok(0, "select now() = '2025-01-01 00:00:00+00'");
    assert_eq!(r.rows, vec![vec![model::Value::Bool(true)]]);
    h.ok(0, "commit");
    let r = h.ok(0, "select now() = '2025-01-01 00:00:02+00'");
    assert_eq!(r.rows, vec![vec![model::Value::Bool(true)]]);
}

/// Cross-wait on exclusion constraints deadlocks.
#[test]
fn exclusion_cross_wait_deadlock() {
    let mut h = H::new(
        2,
        "create table appt (room int, during int4range, exclude using gist (room with =, during with &&))",
    );
    for i in 0..2 {
        h.ok(i, "begin");
    }
    h.ok(0, "insert into appt values (1, '[1,2)')");
    h.ok(1, "insert into appt values (1, '[5,6)')");
    h.blocks(0, "insert into appt values (1, '[5,7)')");
    h.blocks(1, "insert into appt values (1, '[1,3)')");
    h.advance_ms(1000);
    let d = h.done();
    assert_eq!((d[0].0, code_of(&d[0].1)), (0, "40P01"));
    assert_eq!((d[1].0, code_of(&d[1].1)), (1, "ok"));
}
