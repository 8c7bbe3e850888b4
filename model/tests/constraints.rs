//! Unique and exclusion checks that wait for in-progress inserters, ON CONFLICT rules
//! (shared/reference/postgres-semantics.md §3).
use crate::common::*;

const U: &str = "create table u (id int primary key, v text);";
const APPT: &str =
    "create table appt (id serial primary key, room_id int not null, during tstzrange not null,
    exclude using gist (room_id with =, during with &&));";

fn ins(room: i64, from_h: u32, to_h: u32) -> String {
    format!(
        "insert into appt (room_id, during) values ({room}, tstzrange('2025-03-10 {from_h:02}:00:00+00', '2025-03-10 {to_h:02}:00:00+00', '[)'))"
    )
}

fn two_with_snapshots(setup: &str, level: &str) -> H {
    let mut h = H::new(2, setup);
    for i in 0..2 {
        h.ok(i, &format!("begin isolation level {level}"));
        h.ok(i, "select 1");
    }
    h
}

/// T2's insert of T1's uncommitted key waits; 23505 after commit (even at RR, invisible row),
/// success after rollback.
#[test]
fn unique_waits_for_inserter() {
    for level in ["read committed", "repeatable read", "serializable"] {
        let mut h = two_with_snapshots(U, level);
        h.ok(0, "insert into u values (1, 'a')");
        h.blocks(1, "insert into u values (1, 'b')");
        h.ok(0, "commit");
        let e = h.completed(1).unwrap_err();
        assert_eq!(e.code, "23505", "{level}");
        assert_eq!(e.message, "duplicate key value violates unique constraint \"u_pkey\"");
        assert_eq!(e.detail.as_deref(), Some("Key (id)=(1) already exists."));
        assert_eq!(e.constraint.as_deref(), Some("u_pkey"));

        let mut h = two_with_snapshots(U, level);
        h.ok(0, "insert into u values (1, 'a')");
        h.blocks(1, "insert into u values (1, 'b')");
        h.ok(0, "rollback");
        assert_eq!(tag_of(&h.completed(1)), "INSERT 0 1");
    }
}

/// ON CONFLICT DO NOTHING: RC inserts nothing after the wait; RR/SER 40001.
#[test]
fn on_conflict_do_nothing_waits() {
    for (level, want) in
        [("read committed", "INSERT 0 0"), ("repeatable read", "40001"), ("serializable", "40001")]
    {
        let mut h = two_with_snapshots(U, level);
        h.ok(0, "insert into u values (1, 'a')");
        h.blocks(1, "insert into u values (1, 'b') on conflict do nothing");
        h.ok(0, "commit");
        assert_eq!(tag_of(&h.completed(1)), want, "{level}");
    }
    // Committed after T2's snapshot: no wait.
    for (level, want) in [("read committed", "INSERT 0 0"), ("repeatable read", "40001")] {
        let mut h = two_with_snapshots(U, level);
        h.ok(0, "insert into u values (1, 'a')");
        h.ok(0, "commit");
        let r = h.step(1, "insert into u values (1, 'b') on conflict do nothing");
        let model::Step::Done(r) = r else { panic!("blocked") };
        assert_eq!(tag_of(&r), want);
    }
}

/// ON CONFLICT DO UPDATE waits and then updates T1's row at RC; 40001 at RR.
#[test]
fn on_conflict_do_update() {
    let mut h = two_with_snapshots(U, "read committed");
    h.ok(0, "insert into u values (1, 'a')");
    h.blocks(
        1,
        "insert into u values (1, 'b') on conflict (id) do update set v = u.v || excluded.v",
    );
    h.ok(0, "commit");
    assert_eq!(tag_of(&h.completed(1)), "INSERT 0 1");
    h.ok(1, "commit");
    let r = h.e.query_committed("select v from u").unwrap();
    assert_eq!(r.rows, vec![vec![model::Value::Text("ab".into())]]);

    let mut h = two_with_snapshots(U, "repeatable read");
    h.ok(0, "insert into u values (1, 'a')");
    h.blocks(1, "insert into u values (1, 'b') on conflict (id) do update set v = excluded.v");
    h.ok(0, "commit");
    assert_eq!(code_of(&h.completed(1)), "40001");

    let mut h = H::new(1, U);
    assert_eq!(h.code(0, "insert into u values (1, 'a') on conflict (v) do nothing"), "42P10");
    assert_eq!(
        h.code(0, "insert into u values (1,'a'),(1,'b') on conflict (id) do update set v = 'x'"),
        "21000"
    );
}

/// SER: both read the key (∅), then both insert: the loser gets 40001 instead of 23505.
#[test]
fn read_write_unique_serializable() {
    for (level, want) in [("repeatable read", "23505"), ("serializable", "40001")] {
        let mut h = two_with_snapshots(U, level);
        h.ok(0, "select * from u where id = 1");
        h.ok(1, "select * from u where id = 1");
        h.ok(0, "insert into u values (1, 'a')");
        h.blocks(1, "insert into u values (1, 'b')");
        h.ok(0, "commit");
        assert_eq!(code_of(&h.completed(1)), want, "{level}");
    }
}

/// Exclusion: overlapping insert waits, then 23P01 with PostgreSQL's DETAIL; adjacent ranges
/// and other rooms do not conflict; SER still gives 23P01.
#[test]
fn exclusion_waits_then_conflicts() {
    for level in ["read committed", "serializable"] {
        let mut h = two_with_snapshots(APPT, level);
        h.ok(0, "select count(*) from appt");
        h.ok(1, "select count(*) from appt");
        h.ok(0, &ins(1, 9, 10));
        h.ok(1, &ins(1, 10, 11));
        h.ok(1, &ins(2, 9, 10));
        h.blocks(1, &ins(1, 9, 11));
        h.ok(0, "commit");
        let e = h.completed(1).unwrap_err();
        assert_eq!(e.code, "23P01", "{level}");
        assert_eq!(
            e.message,
            "conflicting key value violates exclusion constraint \"appt_room_id_during_excl\""
        );
        assert_eq!(
            e.detail.as_deref(),
            Some("Key (room_id, during)=(1, [\"2025-03-10 09:00:00+00\",\"2025-03-10 11:00:00+00\")) conflicts with existing key (room_id, during)=(1, [\"2025-03-10 09:00:00+00\",\"2025-03-10 10:00:00+00\"]).".replace("]).", ")).").as_str())
        );
    }
}

/// Exclusion and ON CONFLICT: DO NOTHING works, DO UPDATE is 42809.
#[test]
fn exclusion_on_conflict() {
    let mut h = H::new(1, APPT);
    h.ok(0, &ins(1, 9, 10));
    assert_eq!(h.tag(0, &format!("{} on conflict do nothing", ins(1, 9, 10))), "INSERT 0 0");
    let named =
        format!("{} on conflict on constraint appt_room_id_during_excl do nothing", ins(1, 9, 10));
    assert_eq!(h.tag(0, &named), "INSERT 0 0");
    let e = h.err(
        0,
        &format!(
            "{} on conflict on constraint appt_room_id_during_excl do update set room_id = 2",
            ins(1, 9, 10)
        ),
    );
    assert_eq!(e.code, "42809");
}

/// A conflicting row deleted by an in-progress transaction: wait, then succeed.
#[test]
fn exclusion_waits_for_deleter() {
    let mut h = H::new(2, APPT);
    h.ok(0, &ins(1, 9, 10));
    h.ok(0, "begin");
    h.ok(0, "delete from appt");
    h.blocks(1, &ins(1, 9, 10));
    h.ok(0, "commit");
    assert_eq!(tag_of(&h.completed(1)), "INSERT 0 1");
}

/// NOT NULL, CHECK, generated columns, defaults, casts and type errors.
#[test]
fn row_constraints_and_types() {
    let mut h = H::new(1, "create table c (id bigserial primary key, n int not null check (n > 0),
        d int generated always as (n * 2) stored, t timestamptz default now(), b bool default true)");
    assert_eq!(h.code(0, "insert into c (n) values (null)"), "23502");
    let e = h.err(0, "insert into c (n) values (0)");
    assert_eq!((e.code.as_str(), e.constraint.as_deref()), ("23514", Some("c_n_check")));
    // Failed inserts consumed serial values 1 and 2 (sequences are not rolled back).
    assert_eq!(h.ints(0, "insert into c (n) values (4) returning id, d"), vec![vec![3, 8]]);
    assert_eq!(h.code(0, "insert into c (n) values ('abc')"), "22P02");
    assert_eq!(h.code(0, "insert into c (n, d) values (1, 2)"), "428C9");
    assert_eq!(h.code(0, "select '2025-13-45'::timestamptz"), "22008");
    assert_eq!(h.code(0, "select 'soon'::timestamptz"), "22007");
    assert_eq!(h.code(0, "select 1 where 1 = 'abc'"), "22P02");
    let r = h.ok(0, "select t = '2025-01-01 00:00:00+00'::timestamptz, b from c");
    assert_eq!(r.rows, vec![vec![model::Value::Bool(true), model::Value::Bool(true)]]);
    assert_eq!(h.code(0, "select * from c where n = any(array[1])"), "0A000");
}

/// An inserter's ROLLBACK TO SAVEPOINT releases a waiter on its key (waits are per xid).
#[test]
fn unique_wait_released_by_rollback_to_savepoint() {
    let mut h = H::new(2, U);
    h.ok(0, "begin");
    h.ok(0, "savepoint a");
    h.ok(0, "insert into u values (1, 'a')");
    h.blocks(1, "insert into u values (1, 'b')");
    h.ok(0, "rollback to savepoint a");
    assert_eq!(tag_of(&h.completed(1)), "INSERT 0 1");
}

/// ON CONFLICT DO UPDATE waiting on a row lock whose holder then deletes the row inserts
/// the new row instead (RC).
#[test]
fn on_conflict_update_after_concurrent_delete_inserts() {
    let mut h = H::new(2, U);
    h.ok(0, "insert into u values (1, 'a')");
    h.ok(0, "begin");
    h.ok(0, "select * from u where id = 1 for update");
    h.blocks(1, "insert into u values (1, 'b') on conflict (id) do update set v = 'updated'");
    h.ok(0, "delete from u where id = 1");
    h.ok(0, "commit");
    assert_eq!(tag_of(&h.completed(1)), "INSERT 0 1");
    let r = h.e.query_committed("select v from u").unwrap();
    assert_eq!(r.rows, vec![vec![model::Value::Text("b".into())]]);
}
