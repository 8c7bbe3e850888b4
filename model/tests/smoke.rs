mod common;
use common::*;

/// Basic DDL, DML and SELECT features work end to end.
#[test]
fn basic_sql() {
    let mut h = H::new(1, HERMITAGE);
    assert_eq!(h.ints(0, "select * from test order by id"), vec![vec![1, 10], vec![2, 20]]);
    assert_eq!(h.tag(0, "update test set value = value + 1 where id = 1"), "UPDATE 1");
    assert_eq!(h.ints(0, "select value from test where id = 1"), vec![vec![11]]);
    assert_eq!(
        h.ints(0, "select count(*), sum(value), min(value), max(value) from test"),
        vec![vec![2, 31, 11, 20]]
    );
    assert_eq!(h.code(0, "select 1/0"), "22012");
    assert_eq!(h.code(0, "select * from nope"), "42P01");
    assert_eq!(h.code(0, "select nope from test"), "42703");
    let e = h.err(0, "selec 1");
    assert_eq!(e.code, "42601");
    assert_eq!(e.message, "syntax error at or near \"selec\"");
    assert_eq!(e.detail.as_deref(), Some("Line: 1, Column: 1"));
    assert_eq!(h.err(0, "select (1").message, "syntax error at end of input");
    assert_eq!(h.tag(0, "start transaction"), "START TRANSACTION");
    assert_eq!(h.tag(0, "abort"), "ROLLBACK");
    assert_eq!(h.tag(0, "delete from test where id = 2 returning value"), "DELETE 1");
}
