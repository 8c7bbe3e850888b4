//! Hermitage (ept/hermitage postgres.md) at all three isolation levels, with the outcomes
//! PostgreSQL 15 produced (shared/reference/postgres-semantics.md §1).
use crate::common::*;

const LEVELS: [&str; 3] = ["read committed", "repeatable read", "serializable"];

fn begin(level: &str, n: usize) -> H {
    let mut h = H::new(n, HERMITAGE);
    for i in 0..n {
        h.ok(i, "begin");
        h.ok(i, &format!("set transaction isolation level {level}"));
    }
    h
}

/// G0: write cycles are prevented; at RR/SER the second writer gets 40001 after waiting.
#[test]
fn g0() {
    for level in LEVELS {
        let mut h = begin(level, 2);
        h.ok(0, "update test set value = 11 where id = 1");
        h.blocks(1, "update test set value = 12 where id = 1");
        h.ok(0, "update test set value = 21 where id = 2");
        h.ok(0, "commit");
        let r = h.completed(1);
        assert_eq!(h.ints(0, "select value from test order by id"), vec![vec![11], vec![21]]);
        if level == "read committed" {
            assert_eq!(tag_of(&r), "UPDATE 1");
            h.ok(1, "update test set value = 22 where id = 2");
            h.ok(1, "commit");
            assert_eq!(
                h.committed_ints("select value from test order by id"),
                vec![vec![12], vec![22]]
            );
        } else {
            assert_eq!(code_of(&r), "40001", "{level}");
            assert_eq!(
                r.unwrap_err().message,
                "could not serialize access due to concurrent update"
            );
            assert_eq!(h.code(1, "update test set value = 22 where id = 2"), "25P02");
            assert_eq!(h.tag(1, "commit"), "ROLLBACK");
            assert_eq!(
                h.committed_ints("select value from test order by id"),
                vec![vec![11], vec![21]]
            );
        }
    }
}

/// G1a: aborted reads are never seen.
#[test]
fn g1a() {
    for level in LEVELS {
        let mut h = begin(level, 2);
        h.ok(0, "update test set value = 101 where id = 1");
        assert_eq!(h.ints(1, "select value from test order by id"), vec![vec![10], vec![20]]);
        h.ok(0, "abort");
        assert_eq!(h.ints(1, "select value from test order by id"), vec![vec![10], vec![20]]);
        h.ok(1, "commit");
    }
}

/// G1b: intermediate reads are never seen; RC sees the final committed value.
#[test]
fn g1b() {
    for level in LEVELS {
        let mut h = begin(level, 2);
        h.ok(0, "update test set value = 101 where id = 1");
        assert_eq!(h.ints(1, "select value from test where id = 1"), vec![vec![10]]);
        h.ok(0, "update test set value = 11 where id = 1");
        h.ok(0, "commit");
        let want = if level == "read committed" { 11 } else { 10 };
        assert_eq!(h.ints(1, "select value from test where id = 1"), vec![vec![want]], "{level}");
    }
}

/// G1c: circular information flow; SER fails the second commit as a pivot.
#[test]
fn g1c() {
    for level in LEVELS {
        let mut h = begin(level, 2);
        h.ok(0, "update test set value = 11 where id = 1");
        h.ok(1, "update test set value = 22 where id = 2");
        assert_eq!(h.ints(0, "select value from test where id = 2"), vec![vec![20]]);
        assert_eq!(h.ints(1, "select value from test where id = 1"), vec![vec![10]]);
        h.ok(0, "commit");
        if level == "serializable" {
            let e = h.err(1, "commit");
            assert_eq!(e.code, "40001");
            assert_eq!(
                e.detail.as_deref(),
                Some("Reason code: Canceled on identification as a pivot, during commit attempt.")
            );
        } else {
            h.ok(1, "commit");
        }
    }
}

/// OTV: observed transaction vanishes.
#[test]
fn otv() {
    for level in LEVELS {
        let mut h = begin(level, 3);
        h.ok(0, "update test set value = 11 where id = 1");
        h.ok(0, "update test set value = 19 where id = 2");
        h.blocks(1, "update test set value = 12 where id = 1");
        h.ok(0, "commit");
        let r = h.completed(1);
        assert_eq!(h.ints(2, "select value from test where id = 1"), vec![vec![11]]);
        if level == "read committed" {
            assert_eq!(tag_of(&r), "UPDATE 1");
            h.ok(1, "update test set value = 18 where id = 2");
            assert_eq!(h.ints(2, "select value from test where id = 2"), vec![vec![19]]);
            h.ok(1, "commit");
            assert_eq!(h.ints(2, "select value from test where id = 2"), vec![vec![18]]);
            assert_eq!(h.ints(2, "select value from test where id = 1"), vec![vec![12]]);
        } else {
            assert_eq!(code_of(&r), "40001");
        }
    }
}

/// PMP: predicate-many-preceders; RC sees the phantom, RR/SER do not.
#[test]
fn pmp() {
    for level in LEVELS {
        let mut h = begin(level, 2);
        assert!(h.ints(0, "select * from test where value = 30").is_empty());
        h.ok(1, "insert into test (id, value) values (3, 30)");
        h.ok(1, "commit");
        let rows = h.ints(0, "select * from test where value % 3 = 0");
        if level == "read committed" {
            assert_eq!(rows, vec![vec![3, 30]]);
        } else {
            assert!(rows.is_empty(), "{level}");
        }
        h.ok(0, "commit");
    }
}

/// PMP-write: RC re-checks and deletes nothing; RR/SER fail with 40001.
#[test]
fn pmp_write() {
    for level in LEVELS {
        let mut h = begin(level, 2);
        assert_eq!(h.tag(0, "update test set value = value + 10"), "UPDATE 2");
        h.blocks(1, "delete from test where value = 20");
        h.ok(0, "commit");
        let r = h.completed(1);
        if level == "read committed" {
            assert_eq!(tag_of(&r), "DELETE 0");
            assert_eq!(h.ints(1, "select * from test order by id"), vec![vec![1, 20], vec![2, 30]]);
        } else {
            assert_eq!(code_of(&r), "40001");
        }
    }
}

/// P4: lost update prevented at RR/SER.
#[test]
fn p4_lost_update() {
    for level in LEVELS {
        let mut h = begin(level, 2);
        h.ok(0, "select * from test where id = 1");
        h.ok(1, "select * from test where id = 1");
        h.ok(0, "update test set value = 11 where id = 1");
        h.blocks(1, "update test set value = 11 where id = 1");
        h.ok(0, "commit");
        let r = h.completed(1);
        if level == "read committed" {
            assert_eq!(tag_of(&r), "UPDATE 1");
            h.ok(1, "commit");
        } else {
            assert_eq!(code_of(&r), "40001");
        }
    }
}

/// G-single: read skew.
#[test]
fn g_single() {
    for level in LEVELS {
        let mut h = begin(level, 2);
        assert_eq!(h.ints(0, "select value from test where id = 1"), vec![vec![10]]);
        h.ok(1, "select * from test where id = 1");
        h.ok(1, "select * from test where id = 2");
        h.ok(1, "update test set value = 12 where id = 1");
        h.ok(1, "update test set value = 18 where id = 2");
        h.ok(1, "commit");
        let want = if level == "read committed" { 18 } else { 20 };
        assert_eq!(h.ints(0, "select value from test where id = 2"), vec![vec![want]]);
        h.ok(0, "commit");
    }
}

/// G-single with a write predicate: RR/SER fail at once without waiting.
#[test]
fn g_single_write_predicate() {
    for level in LEVELS {
        let mut h = begin(level, 2);
        h.ok(0, "select * from test where id = 1");
        h.ok(1, "select * from test");
        h.ok(1, "update test set value = 12 where id = 1");
        h.ok(1, "update test set value = 18 where id = 2");
        h.ok(1, "commit");
        if level == "read committed" {
            assert_eq!(h.tag(0, "delete from test where value = 20"), "DELETE 0");
        } else {
            assert_eq!(h.code(0, "delete from test where value = 20"), "40001");
        }
    }
}

/// G2-item write skew: only SER prevents it, at the second commit.
#[test]
fn g2_item() {
    for level in LEVELS {
        let mut h = begin(level, 2);
        h.ok(0, "select * from test where id in (1,2)");
        h.ok(1, "select * from test where id in (1,2)");
        h.ok(0, "update test set value = 11 where id = 1");
        h.ok(1, "update test set value = 21 where id = 2");
        h.ok(0, "commit");
        if level == "serializable" {
            assert_eq!(h.code(1, "commit"), "40001");
            assert_eq!(
                h.committed_ints("select value from test order by id"),
                vec![vec![11], vec![20]]
            );
        } else {
            h.ok(1, "commit");
            assert_eq!(
                h.committed_ints("select value from test order by id"),
                vec![vec![11], vec![21]]
            );
        }
    }
}

/// G2 anti-dependency cycles with predicates and inserts.
#[test]
fn g2_predicate() {
    for level in LEVELS {
        let mut h = begin(level, 2);
        assert!(h.ints(0, "select * from test where value % 3 = 0").is_empty());
        assert!(h.ints(1, "select * from test where value % 3 = 0").is_empty());
        h.ok(0, "insert into test (id, value) values (3, 30)");
        h.ok(1, "insert into test (id, value) values (4, 42)");
        h.ok(0, "commit");
        if level == "serializable" {
            assert_eq!(h.code(1, "commit"), "40001");
        } else {
            h.ok(1, "commit");
        }
    }
}

/// Fekete's read-only anomaly: SER fails T1's write as a pivot, during write.
#[test]
fn g2_fekete_read_only() {
    for level in LEVELS {
        let mut h = begin(level, 3);
        h.ok(0, "select * from test");
        h.ok(1, "update test set value = value + 5 where id = 2");
        h.ok(1, "commit");
        assert_eq!(h.ints(2, "select * from test order by id"), vec![vec![1, 10], vec![2, 25]]);
        h.ok(2, "commit");
        if level == "serializable" {
            let e = h.err(0, "update test set value = 0 where id = 1");
            assert_eq!(e.code, "40001");
            assert_eq!(
                e.detail.as_deref(),
                Some("Reason code: Canceled on identification as a pivot, during write.")
            );
        } else {
            assert_eq!(h.tag(0, "update test set value = 0 where id = 1"), "UPDATE 1");
        }
    }
}
