use crate::common::*;

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
    assert_eq!(h.code(0, "select id, count(*) from test"), "42803");
    assert_eq!(
        h.ints(0, "select value % 2, count(*) from test group by value % 2"),
        vec![vec![0, 1], vec![1, 1]]
    );
    assert_eq!(
        h.ints(0, "select id from test order by value desc limit 1 offset 1"),
        vec![vec![1]]
    );
    assert_eq!(
        h.ints(0, "select a.id, b.id from test a join test b on a.id < b.id order by 1"),
        vec![vec![1, 2]]
    );
    assert_eq!(h.tag(0, "delete from test where id = 2 returning value"), "DELETE 1");
}

/// Correlated EXISTS / NOT EXISTS, inner names shadowing outer ones, INSERT … WHERE NOT
/// EXISTS, and SERIALIZABLE tracking of the subquery's read.
#[test]
fn exists_subqueries() {
    let mut h = H::new(2, HERMITAGE);
    let q =
        "select id from test t where exists (select 1 from test u where u.value = t.value + 10)";
    assert_eq!(h.ints(0, q), vec![vec![1]]);
    let q = "select id from test where not exists (select 1 from test where id = 3) order by id";
    assert_eq!(h.ints(0, q), vec![vec![1], vec![2]]);
    let ins = "insert into test select 3, 30 where not exists (select 1 from test where id = 3)";
    assert_eq!(h.tag(0, ins), "INSERT 0 1");
    assert_eq!(h.tag(0, ins), "INSERT 0 0");
    assert_eq!(
        h.code(0, "select 1 where exists (select 1 from test a join test b on true)"),
        "0A000"
    );
    // read-write-unique-3: both check, both insert; SER turns the duplicate into 40001.
    let ins = "insert into test select 4, 40 where not exists (select 1 from test where id = 4)";
    for i in 0..2 {
        h.ok(i, "begin isolation level serializable");
        h.ok(i, "select 1");
    }
    assert_eq!(h.tag(0, ins), "INSERT 0 1");
    h.blocks(1, ins);
    h.ok(0, "commit");
    assert_eq!(code_of(&h.completed(1)), "40001");
}

/// The plan cache never serves a plan made for an older schema: the same text re-plans
/// after DROP / CREATE TABLE (column positions moved) and after CREATE UNIQUE INDEX.
#[test]
fn cached_plans_follow_schema_changes() {
    let mut h = H::new(1, "create table p (a int, b int); insert into p values (1, 2)");
    let q = "select a from p";
    assert_eq!(h.ints(0, q), vec![vec![1]]);
    assert_eq!(h.ints(0, q), vec![vec![1]]);
    h.ok(0, "drop table p; create table p (b int, c int, a int); insert into p values (7, 8, 9)");
    assert_eq!(h.ints(0, q), vec![vec![9]]);
    h.ok(0, "drop table p");
    assert_eq!(h.code(0, q), "42P01");
    h.ok(0, "create table p (a int)");
    let ins = "insert into p values (1) on conflict (a) do nothing";
    assert_eq!(h.code(0, ins), "42P10");
    h.ok(0, "create unique index p_a on p (a)");
    assert_eq!(h.tag(0, ins), "INSERT 0 1");
    assert_eq!(h.tag(0, ins), "INSERT 0 0");
}

/// NUL in a text parameter fails as PostgreSQL's bind does (22021), and inside a block the
/// transaction is aborted (25P02 until ROLLBACK); the engine records a BEGIN inside an open
/// block as PostgreSQL's WARNING 25001 and lists the open block.
#[test]
fn nul_in_text_parameters_and_nested_begin() {
    let mut engine = model::Engine::new(model::EngineConfig::default());
    let s = engine.open_session();
    let run = |engine: &mut model::Engine, sql: &str, params: &[model::Value]| match engine
        .submit(s, sql, params)
    {
        model::Step::Done(r) => r,
        model::Step::Blocked => panic!("{sql} blocked"),
    };
    let nul = [model::Value::Text("x\0".into())];
    assert_eq!(run(&mut engine, "select $1::text", &nul).unwrap_err().code, "22021");
    assert!(run(&mut engine, "begin", &[]).is_ok());
    assert!(run(&mut engine, "begin", &[]).is_ok(), "a nested BEGIN only warns");
    let warnings = engine.take_warnings();
    assert_eq!(warnings.len(), 1);
    assert_eq!((warnings[0].session, warnings[0].code), (s, "25001"));
    assert_eq!(run(&mut engine, "select $1::text", &nul).unwrap_err().code, "22021");
    let open = engine.open_transactions();
    assert_eq!(open.len(), 1);
    assert!(open[0].aborted && open[0].session == s && !open[0].waiting);
    assert_eq!(run(&mut engine, "select 1", &[]).unwrap_err().code, "25P02");
    assert!(run(&mut engine, "rollback", &[]).is_ok());
    assert!(engine.open_transactions().is_empty());
}
