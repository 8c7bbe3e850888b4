//! Row locks: the conflict matrix (incl. FK KEY SHARE), queueing, EvalPlanQual, NOWAIT,
//! SKIP LOCKED (shared/reference/postgres-semantics.md §2).
use crate::common::*;
use model::Step;

const FK_SETUP: &str = "create table parent (id int primary key, k int unique, v int);
    create table child (id int primary key, parent_id int references parent(id));
    insert into parent values (1, 1, 0), (2, 2, 0);";

/// Each held lock (row) against each request (column): true = the request blocks.
#[test]
fn conflict_matrix_via_sql() {
    let held = [
        "select * from parent where id = 1 for key share",
        "select * from parent where id = 1 for share",
        "select * from parent where id = 1 for no key update",
        "select * from parent where id = 1 for update",
        "update parent set v = 1 where id = 1",
        "update parent set k = 10 where id = 1",
        "delete from parent where id = 1",
        "insert into child values (100, 1)",
    ];
    let requested = [
        "select * from parent where id = 1 for key share",
        "select * from parent where id = 1 for share",
        "select * from parent where id = 1 for no key update",
        "select * from parent where id = 1 for update",
        "update parent set v = 2 where id = 1",
        "update parent set k = 20 where id = 1",
        "delete from parent where id = 1",
        "insert into child values (200, 1)",
    ];
    let expected = [
        [false, false, false, true, false, true, true, false],
        [false, false, true, true, true, true, true, false],
        [false, true, true, true, true, true, true, false],
        [true, true, true, true, true, true, true, true],
        [false, true, true, true, true, true, true, false],
        [true, true, true, true, true, true, true, true],
        [true, true, true, true, true, true, true, true],
        [false, false, false, true, false, true, true, false],
    ];
    for (hi, h_sql) in held.iter().enumerate() {
        for (ri, r_sql) in requested.iter().enumerate() {
            let mut h = H::new(2, FK_SETUP);
            h.ok(0, "begin");
            h.ok(0, h_sql);
            h.ok(1, "begin");
            let blocked = matches!(h.step(1, r_sql), Step::Blocked);
            assert_eq!(blocked, expected[hi][ri], "held `{h_sql}` vs requested `{r_sql}`");
        }
    }
}

/// Deleting a parent with an uncommitted child waits, then fails with 23503.
#[test]
fn fk_delete_waits_then_fails() {
    let mut h = H::new(2, FK_SETUP);
    h.ok(0, "begin");
    h.ok(0, "insert into child values (1, 1)");
    h.blocks(1, "delete from parent where id = 1");
    h.ok(0, "commit");
    let e = h.completed(1).unwrap_err();
    assert_eq!(e.code, "23503");
    assert_eq!(e.constraint.as_deref(), Some("child_parent_id_fkey"));
    assert_eq!(e.detail.as_deref(), Some("Key (id)=(1) is still referenced from table \"child\"."));
    let e = h.err(0, "insert into child values (2, 99)");
    assert_eq!(e.code, "23503");
    assert_eq!(
        e.detail.as_deref(),
        Some("Key (parent_id)=(99) is not present in table \"parent\".")
    );
}

/// A compatible request is not queued behind a conflicting waiter.
#[test]
fn compatible_request_not_queued_behind_waiter() {
    let mut h = H::new(3, HERMITAGE);
    for i in 0..3 {
        h.ok(i, "begin");
    }
    h.ok(0, "select * from test where id = 1 for share");
    h.blocks(1, "select * from test where id = 1 for update");
    h.ok(2, "select * from test where id = 1 for share");
    h.ok(0, "commit");
    assert!(h.done().is_empty(), "T2 still waits for T3");
    h.ok(2, "commit");
    assert_eq!(tag_of(&h.completed(1)), "SELECT 1");
}

/// A transaction upgrading a row lock it already holds does not queue behind a waiter that
/// waits for it (PostgreSQL skips the tuple lock then: tuplelock-upgrade-no-deadlock). Found
/// by the random-sequence fuzz test: the upgrade used to wait behind the UPDATE forever.
#[test]
fn lock_upgrade_not_queued_behind_waiter() {
    let mut h = H::new(3, HERMITAGE);
    h.ok(2, "begin");
    h.ok(2, "select * from test where id = 2 for share");
    h.ok(0, "begin");
    h.ok(0, "select * from test where id = 2 for share");
    h.blocks(1, "update test set value = value + 1 where id = 2");
    h.blocks(2, "delete from test where id = 2");
    h.ok(0, "rollback");
    assert_eq!(tag_of(&h.completed(2)), "DELETE 1");
    h.ok(2, "commit");
    assert_eq!(tag_of(&h.completed(1)), "UPDATE 0");
}

/// Conflicting waiters are served in arrival order: +1, +10, +100 gives 11, 21, 121.
#[test]
fn fifo_waiters() {
    let mut h = H::new(4, HERMITAGE);
    h.ok(0, "begin");
    h.ok(0, "select * from test where id = 1 for update");
    h.blocks(1, "update test set value = value + 1 where id = 1 returning value");
    h.blocks(2, "update test set value = value + 10 where id = 1 returning value");
    h.blocks(3, "update test set value = value + 100 where id = 1 returning value");
    h.ok(0, "commit");
    let d = h.done();
    let values: Vec<(usize, model::Value)> =
        d.iter().map(|(s, r)| (*s, r.clone().unwrap().rows[0][0].clone())).collect();
    use model::Value::Int;
    assert_eq!(values, vec![(1, Int(11)), (2, Int(21)), (3, Int(121))]);
}

/// RC EvalPlanQual: a newly matching row is never picked up; a changed row is re-checked
/// on its newest version.
#[test]
fn read_committed_eval_plan_qual() {
    let mut h = H::new(2, HERMITAGE);
    h.ok(0, "begin");
    h.ok(0, "update test set value = 20 where id = 1");
    assert_eq!(
        h.ints(1, "update test set value = value where value = 20 returning id"),
        vec![vec![2]]
    );

    let mut h = H::new(2, HERMITAGE);
    h.ok(0, "begin");
    h.ok(0, "update test set value = value + 1 where id = 1");
    h.ok(0, "insert into test values (3, 30)");
    h.blocks(1, "update test set value = value + 1 where value >= 10 returning id, value");
    h.ok(0, "commit");
    let r = h.completed(1).unwrap();
    assert_eq!(r.tag, "UPDATE 2");
    use model::Value::Int;
    assert_eq!(r.rows, vec![vec![Int(1), Int(12)], vec![Int(2), Int(21)]]);

    let mut h = H::new(2, HERMITAGE);
    h.ok(0, "begin");
    h.ok(0, "update test set value = 99 where id = 1");
    h.blocks(1, "select * from test where value = 10 for update");
    h.ok(0, "commit");
    assert_eq!(tag_of(&h.completed(1)), "SELECT 0");
}

/// RR: a row only locked (not updated) by a committed transaction gives no error; an
/// updated one gives 40001 concurrent update; a deleted one, concurrent delete.
#[test]
fn repeatable_read_lock_vs_update() {
    let mut h = H::new(2, HERMITAGE);
    h.ok(1, "begin isolation level repeatable read");
    h.ok(1, "select 1");
    h.ok(0, "begin");
    h.ok(0, "select * from test where id = 1 for update");
    h.blocks(1, "select * from test where id = 1 for update");
    h.ok(0, "commit");
    assert_eq!(tag_of(&h.completed(1)), "SELECT 1");

    let mut h = H::new(2, HERMITAGE);
    h.ok(1, "begin isolation level repeatable read");
    h.ok(1, "select 1");
    h.ok(0, "delete from test where id = 1");
    let e = h.err(1, "update test set value = 0 where id = 1");
    assert_eq!(e.message, "could not serialize access due to concurrent delete");
}

/// NOWAIT fails at once with 55P03 naming the relation; SKIP LOCKED skips locked rows.
#[test]
fn nowait_and_skip_locked() {
    let mut h = H::new(2, HERMITAGE);
    h.ok(0, "begin");
    h.ok(0, "select * from test where id = 1 for update");
    let e = h.err(1, "select * from test where id = 1 for update nowait");
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        ("55P03", "could not obtain lock on row in relation \"test\"")
    );
    assert_eq!(
        h.ints(1, "select id from test order by id limit 1 for update skip locked"),
        vec![vec![2]]
    );
    assert_eq!(h.ints(1, "select id from test order by id for share skip locked"), vec![vec![2]]);
}

/// Locks taken in a failed statement's transaction are released at the error.
#[test]
fn locks_released_at_error_not_rollback() {
    let mut h = H::new(2, HERMITAGE);
    h.ok(0, "begin");
    h.ok(0, "update test set value = 0 where id = 1");
    h.blocks(1, "update test set value = 1 where id = 1");
    assert_eq!(h.code(0, "select 1/0"), "22012");
    assert_eq!(tag_of(&h.completed(1)), "UPDATE 1");
    assert_eq!(h.code(0, "select 1"), "25P02");
    assert_eq!(h.tag(0, "commit"), "ROLLBACK");
}

/// Savepoints: ROLLBACK TO recovers from 23505 and undoes later writes.
#[test]
fn savepoints() {
    let mut h = H::new(1, HERMITAGE);
    h.ok(0, "begin");
    h.ok(0, "insert into test values (3, 30)");
    h.ok(0, "savepoint a");
    assert_eq!(h.code(0, "insert into test values (1, 0)"), "23505");
    assert_eq!(h.code(0, "select 1"), "25P02");
    assert_eq!(h.tag(0, "rollback to savepoint a"), "ROLLBACK");
    h.ok(0, "insert into test values (4, 40)");
    h.ok(0, "savepoint b");
    h.ok(0, "delete from test where id = 4");
    h.ok(0, "rollback to b");
    h.ok(0, "release savepoint a");
    h.ok(0, "commit");
    assert_eq!(
        h.committed_ints("select id from test order by id"),
        vec![vec![1], vec![2], vec![3], vec![4]]
    );
}
