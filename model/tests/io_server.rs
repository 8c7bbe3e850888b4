//! The model server and client over in-memory duplex streams, on paused tokio time.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use model::io::frame::{read_frame, write_frame};
use model::io::{Client, Cores, Group, Incoming, QueryRef, Server, ServerConfig, Sharing};
use model::profile::LatencyProfile;
use model::{Engine, EngineConfig, QueryResult, Range, Response, SqlError, Step, Value};
use tokio::io::DuplexStream;
use tokio::task::LocalSet;
use tokio::time::Instant;

/// Every statement costs exactly 100 µs, so timings are exact.
fn fixed_profile() -> LatencyProfile {
    let mut text = String::new();
    for kind in model::profile::STATEMENT_KINDS {
        text.push_str(&format!("[kinds.{kind}]\nquantiles = [[0.0, 100.0], [1.0, 100.0]]\n"));
    }
    LatencyProfile::from_toml_str(&text, "test").unwrap()
}

fn config(seed: u64, time_scale: u32) -> ServerConfig {
    ServerConfig {
        seed,
        time_scale,
        profile: fixed_profile(),
        executors_max: 1,
        ..Default::default()
    }
}

fn connect(server: &Server) -> Client<DuplexStream> {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = server.clone();
    tokio::task::spawn_local(async move { server.serve_connection(b).await });
    Client::new(a)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn frames_round_trip_every_value() {
    let values = vec![
        Value::Null,
        Value::Bool(true),
        Value::Int(-7),
        Value::Text("it's".into()),
        Value::Uuid(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
        Value::Timestamp(1_700_000_000_000_000),
        Value::Range(Box::new(Range {
            lower: Some(Value::Int(1)),
            upper: None,
            lower_inclusive: true,
            upper_inclusive: false,
            empty: false,
        })),
    ];
    let (mut a, mut b) = tokio::io::duplex(1024);
    write_frame(&mut a, &QueryRef { sql: "SELECT $1", params: &values }).await.unwrap();
    let got: Incoming = read_frame(&mut b).await.unwrap().unwrap();
    assert_eq!(got, Incoming::Query { sql: "SELECT $1".into(), params: values.clone() });

    for response in [
        Ok(QueryResult { tag: "SELECT 1".into(), columns: vec!["v".into()], rows: vec![values] }),
        Err(SqlError {
            code: "23P01".into(),
            message: "conflicting key value violates exclusion constraint \"x\"".into(),
            detail: Some("Key …".into()),
            constraint: Some("x".into()),
        }),
    ] {
        write_frame(&mut b, &response).await.unwrap();
        let got: Response = read_frame(&mut a).await.unwrap().unwrap();
        assert_eq!(got, response);
    }
    drop(b);
    assert!(read_frame::<_, Incoming>(&mut a).await.unwrap().is_none(), "clean EOF is None");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn oversized_frame_is_refused() {
    let (mut a, mut b) = tokio::io::duplex(64);
    tokio::io::AsyncWriteExt::write_all(&mut a, &u32::MAX.to_be_bytes()).await.unwrap();
    let err = read_frame::<_, Incoming>(&mut b).await.unwrap_err();
    assert!(matches!(err, model::io::IoError::FrameTooLarge { .. }), "{err}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn replies_match_the_engine_and_are_held_for_the_service_time() {
    LocalSet::new()
        .run_until(async {
            let engine = Rc::new(RefCell::new(Engine::new(EngineConfig::default())));
            let server = Server::start(Rc::clone(&engine), config(1, 10));
            let mut client = connect(&server);
            let t0 = Instant::now();
            let got = client.query("SELECT 1/0", &[]).await.unwrap();
            // 100 µs of modelled service × time_scale 10.
            assert_eq!(t0.elapsed(), Duration::from_millis(1));
            let mut direct = Engine::new(EngineConfig::default());
            let s = direct.open_session();
            assert_eq!(Step::Done(got), direct.submit(s, "SELECT 1/0", &[]));
            let trace = server.trace();
            assert_eq!(trace.len(), 1, "{trace:?}");
            assert_eq!(trace[0].kind, "select");
            assert_eq!(trace[0].fingerprint, "select ?/?");
        })
        .await;
}

/// A class with `us_per_row` costs its table plus that much per returned row.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_select_costs_more_for_every_row_it_returns() {
    LocalSet::new()
        .run_until(async {
            let mut text = String::new();
            for kind in model::profile::STATEMENT_KINDS {
                text.push_str(&format!(
                    "[kinds.{kind}]\nquantiles = [[0.0, 100.0], [1.0, 100.0]]\n"
                ));
            }
            text.push_str(
                "[classes.\"SELECT v FROM t\"]\nquantiles = [[0.0, 100.0], [1.0, 100.0]]\n\
                 us_per_row = 40.0\n",
            );
            let profile = LatencyProfile::from_toml_str(&text, "rows").unwrap();
            let engine = Rc::new(RefCell::new(Engine::new(EngineConfig::default())));
            let server =
                Server::start(Rc::clone(&engine), ServerConfig { profile, ..config(1, 10) });
            let mut client = connect(&server);
            client.query("CREATE TABLE t (v int)", &[]).await.unwrap().unwrap();
            let t0 = Instant::now();
            assert!(client.query("SELECT v FROM t", &[]).await.unwrap().unwrap().rows.is_empty());
            assert_eq!(t0.elapsed(), Duration::from_millis(1), "no rows: the table's 100 µs × 10");
            for v in 0..5 {
                client.query(&format!("INSERT INTO t VALUES ({v})"), &[]).await.unwrap().unwrap();
            }
            let t0 = Instant::now();
            assert_eq!(client.query("SELECT v FROM t", &[]).await.unwrap().unwrap().rows.len(), 5);
            assert_eq!(t0.elapsed(), Duration::from_millis(3), "(100 + 5 × 40) µs × 10");
            let t0 = Instant::now();
            client.query("SELECT count(*) FROM t", &[]).await.unwrap().unwrap();
            assert_eq!(t0.elapsed(), Duration::from_millis(1), "another text: no cost per row");
        })
        .await;
}

/// Eight clients send at the same instant; the order the server runs them is the schedule.
async fn schedule(seed: u64) -> Vec<u32> {
    let engine = Rc::new(RefCell::new(Engine::new(EngineConfig::default())));
    let server = Server::start(engine, config(seed, 1));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut client = connect(&server);
        tasks.push(tokio::task::spawn_local(async move {
            client.query(&format!("SELECT {i}"), &[]).await.unwrap()
        }));
    }
    for t in tasks {
        let _ = t.await.unwrap();
    }
    server.trace().iter().map(|e| e.session).collect()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_schedule_depends_on_the_seed_and_replays() {
    LocalSet::new()
        .run_until(async {
            let first = schedule(1).await;
            assert_eq!(first.len(), 8);
            assert_eq!(first, schedule(1).await, "same seed, same schedule");
            let mut distinct = std::collections::BTreeSet::new();
            for seed in 0..8 {
                distinct.insert(schedule(seed).await);
            }
            assert!(distinct.len() >= 4, "8 seeds gave only {} schedules", distinct.len());
        })
        .await;
}

/// Two sessions deadlock over the server; returns how long the first waiter waited.
async fn deadlock_over_server(engine: Rc<RefCell<Engine>>) -> Duration {
    let server = Server::start(engine, config(3, 1));
    let mut c1 = connect(&server);
    let mut c2 = connect(&server);
    let ok = |r: model::Response| r.unwrap().tag;
    ok(c1.query("CREATE TABLE t (id int primary key, v int)", &[]).await.unwrap());
    ok(c1.query("INSERT INTO t VALUES (1, 0), (2, 0)", &[]).await.unwrap());
    ok(c1.query("BEGIN", &[]).await.unwrap());
    ok(c2.query("BEGIN", &[]).await.unwrap());
    ok(c1.query("UPDATE t SET v = 1 WHERE id = 1", &[]).await.unwrap());
    ok(c2.query("UPDATE t SET v = 2 WHERE id = 2", &[]).await.unwrap());
    let t0 = Instant::now();
    let w1 = tokio::task::spawn_local(async move {
        let r = c1.query("UPDATE t SET v = 1 WHERE id = 2", &[]).await.unwrap();
        (r, t0.elapsed(), c1)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r2 = c2.query("UPDATE t SET v = 2 WHERE id = 1", &[]).await.unwrap();
    let (r1, waited, _c1) = w1.await.unwrap();
    // s1 waited first, so its check (1 s after it began waiting) finds the cycle.
    assert_eq!(r1.unwrap_err().code, "40P01");
    assert_eq!(r2.unwrap().tag, "UPDATE 1");
    waited
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn blocking_and_deadlock_detection_end_to_end() {
    LocalSet::new()
        .run_until(async {
            let engine = Rc::new(RefCell::new(Engine::new(EngineConfig::default())));
            let waited = deadlock_over_server(engine).await;
            // deadlock_timeout (1 s) plus a few 100 µs service times.
            assert!(waited >= Duration::from_secs(1), "{waited:?}");
            assert!(waited < Duration::from_millis(1100), "{waited:?}");
            // A server started on an engine whose clock is already far along (a restarted
            // host) continues that clock: the deadlock check still fires after 1 s.
            let engine = Rc::new(RefCell::new(Engine::new(EngineConfig::default())));
            engine.borrow_mut().advance_to(Duration::from_secs(100));
            let waited = deadlock_over_server(engine).await;
            assert!(waited < Duration::from_millis(1100), "{waited:?}");
        })
        .await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn crash_restart_keeps_committed_data_and_drops_connections() {
    LocalSet::new()
        .run_until(async {
            let engine = Rc::new(RefCell::new(Engine::new(EngineConfig::default())));
            let server = Server::start(Rc::clone(&engine), config(9, 1));
            let mut c1 = connect(&server);
            let mut c2 = connect(&server);
            let q = |sql: &'static str| sql;
            for sql in ["CREATE TABLE t (id int primary key)", "INSERT INTO t VALUES (1)"] {
                c1.query(q(sql), &[]).await.unwrap().unwrap();
            }
            c1.query("BEGIN", &[]).await.unwrap().unwrap();
            c1.query("INSERT INTO t VALUES (2)", &[]).await.unwrap().unwrap();
            let blocked = tokio::task::spawn_local(async move {
                c2.query("INSERT INTO t VALUES (2)", &[]).await // waits for c1's insert
            });
            tokio::time::sleep(Duration::from_millis(10)).await;
            server.crash_restart();
            let err = blocked.await.unwrap().unwrap_err();
            assert!(err.is_connection_lost(), "the waiter's connection drops: {err}");
            assert!(c1.query("COMMIT", &[]).await.unwrap_err().is_connection_lost());
            let mut fresh = connect(&server);
            let rows = fresh.query("SELECT id FROM t ORDER BY id", &[]).await.unwrap().unwrap();
            assert_eq!(rows.rows, vec![vec![Value::Int(1)]], "committed row kept, open one gone");
        })
        .await;
}

/// Two clients insert the same key at the same instant; returns whose row won.
async fn race_winner(seed: u64) -> Value {
    let engine = Rc::new(RefCell::new(Engine::new(EngineConfig::default())));
    {
        let mut e = engine.borrow_mut();
        let s = e.open_session();
        let _ = e.submit(s, "CREATE TABLE t (id int primary key, who int)", &[]);
    }
    let server = Server::start(Rc::clone(&engine), config(seed, 1));
    let mut tasks = Vec::new();
    for who in 1..=2 {
        let mut client = connect(&server);
        tasks.push(tokio::task::spawn_local(async move {
            client.query("INSERT INTO t VALUES (1, $1)", &[Value::Int(who)]).await.unwrap()
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap().err().map(|e| e.code));
    }
    codes.sort();
    assert_eq!(codes, [None, Some("23505".to_string())], "one wins, one hits the key");
    let rows = engine.borrow_mut().query_committed("SELECT who FROM t").unwrap().rows;
    rows[0][0].clone()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_seed_decides_which_of_two_racing_inserts_wins() {
    LocalSet::new()
        .run_until(async {
            let mut winners = std::collections::BTreeSet::new();
            for seed in 0..16 {
                winners.insert(race_winner(seed).await);
            }
            assert_eq!(winners.len(), 2, "both clients win under some seed: {winners:?}");
        })
        .await;
}

/// A draw shorter than the caller's transport is owed: later replies outside a transaction
/// block, and the block's COMMIT, leave that much earlier; replies inside the block do not
/// pay, so the phases timed there keep their drawn length.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn short_draws_are_owed_and_paid_outside_transaction_blocks() {
    let mut text = String::new();
    for kind in model::profile::STATEMENT_KINDS {
        let us = match kind {
            "insert" => 200,
            "commit" => 300,
            _ => 20,
        };
        text.push_str(&format!("[kinds.{kind}]\nquantiles = [[0.0, {us}.0], [1.0, {us}.0]]\n"));
    }
    let config = ServerConfig {
        seed: 1,
        // 1 modelled µs = 1 ms of tokio time: tokio's timer has millisecond ticks.
        time_scale: 1_000,
        profile: LatencyProfile::from_toml_str(&text, "test").unwrap(),
        // Each statement holds a core for its whole draw, past its early reply; with no real
        // transport here, enough cores that no statement waits for one.
        executors_max: 16,
        transport_us: 75,
        ..Default::default()
    };
    LocalSet::new()
        .run_until(async {
            let engine = Rc::new(RefCell::new(Engine::new(EngineConfig::default())));
            let server = Server::start(Rc::clone(&engine), config);
            let mut client = connect(&server);
            let mut took_us = async |sql: &str| {
                let t0 = Instant::now();
                client.query(sql, &[]).await.unwrap().unwrap();
                (t0.elapsed().as_millis()) as u64
            };
            // 20 µs draws: 0 reply delay each, 55 µs owed each.
            assert_eq!(took_us("CREATE TABLE t (x int)").await, 0);
            assert_eq!(took_us("SELECT 1").await, 0);
            // Outside a block the INSERT pays: 200 − 75 − 110 owed.
            assert_eq!(took_us("INSERT INTO t VALUES (1)").await, 15);
            assert_eq!(took_us("SELECT 1").await, 0); // owes 55
            assert_eq!(took_us("BEGIN").await, 0); // owes 110
            // Inside the block nothing pays.
            assert_eq!(took_us("INSERT INTO t VALUES (2)").await, 125);
            // The COMMIT pays what it can: 300 − 75 − 110.
            assert_eq!(took_us("COMMIT").await, 115);
            assert_eq!(took_us("INSERT INTO t VALUES (3)").await, 125, "nothing owed now");
        })
        .await;
}

/// `idle_in_transaction_session_timeout`: a session idle inside a transaction block that long
/// is ended by the server (PostgreSQL: FATAL 25P03), its transaction aborts and its row locks
/// go, so a waiter proceeds; the same session idle OUTSIDE a block, or with the setting 0 (the
/// default), stays. Time is scaled like every other modelled duration (`time_scale`).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_session_idle_in_a_transaction_past_its_timeout_is_ended() {
    LocalSet::new()
        .run_until(async {
            let engine = Rc::new(RefCell::new(Engine::new(EngineConfig::default())));
            let time_scale = 20;
            let server = Server::start(Rc::clone(&engine), config(5, time_scale));
            let mut setup = connect(&server);
            for sql in ["CREATE TABLE t (id int primary key, v int)", "INSERT INTO t VALUES (1, 0)"]
            {
                setup.query(sql, &[]).await.unwrap().unwrap();
            }
            let mut idle = connect(&server);
            let mut never = connect(&server);
            idle.query("SET idle_in_transaction_session_timeout = '50ms'", &[])
                .await
                .unwrap()
                .unwrap();
            let shown = idle.query("SHOW idle_in_transaction_session_timeout", &[]).await;
            assert_eq!(shown.unwrap().unwrap().rows, vec![vec![Value::Text("50ms".into())]]);
            // Outside a block the setting does nothing.
            tokio::time::sleep(Duration::from_millis(200) * time_scale).await;
            idle.query("BEGIN", &[]).await.unwrap().unwrap();
            idle.query("UPDATE t SET v = 1 WHERE id = 1", &[]).await.unwrap().unwrap();
            never.query("BEGIN", &[]).await.unwrap().unwrap();
            let t0 = Instant::now();
            let waiter = tokio::task::spawn_local(async move {
                let r = setup.query("UPDATE t SET v = 2 WHERE id = 1", &[]).await.unwrap();
                (r, t0.elapsed())
            });
            let (updated, waited) = waiter.await.unwrap();
            assert_eq!(updated.unwrap().tag, "UPDATE 1", "the lock went with the session");
            let waited_ms = waited.as_millis() / u128::from(time_scale);
            assert!(
                (50..60).contains(&waited_ms),
                "ended after ~50 ms idle, waited {waited_ms} ms"
            );
            let err = idle.query("COMMIT", &[]).await.unwrap_err();
            assert!(err.is_connection_lost(), "the session is gone: {err}");
            let rows = connect(&server).query("SELECT v FROM t", &[]).await.unwrap().unwrap();
            assert_eq!(rows.rows, vec![vec![Value::Int(2)]], "its update aborted");
            // Without the setting, a session idle in a block stays (PostgreSQL's default, 0).
            tokio::time::sleep(Duration::from_secs(10) * time_scale).await;
            never.query("SELECT 1", &[]).await.unwrap().unwrap();
            never.query("COMMIT", &[]).await.unwrap().unwrap();
            let bad =
                connect(&server).query("SET idle_in_transaction_session_timeout = 'x'", &[]).await;
            assert_eq!(bad.unwrap().unwrap_err().code, "22023");
        })
        .await;
}

/// Two sessions send `SELECT 1` at the same instant to a server on ONE shared core; returns
/// when each reply arrived. Each statement's draw is 100 µs × time scale 100 = 10 ms.
async fn two_statements_on_one_core(core_fraction: f64) -> Vec<Duration> {
    let engine = Rc::new(RefCell::new(Engine::new(EngineConfig::default())));
    let cores = Cores::new(1);
    let server =
        Server::start(engine, ServerConfig { cores: Some(cores), core_fraction, ..config(1, 100) });
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let mut client = connect(&server);
        tasks.push(tokio::task::spawn_local(async move {
            client.query("SELECT 1", &[]).await.unwrap().unwrap();
            t0.elapsed()
        }));
    }
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.unwrap());
    }
    done.sort();
    done
}

/// `core_fraction`: a statement holds its core for that share of its draw and spends the
/// rest off it, so a second statement waits only for the first one's CPU part; alone, a
/// statement takes its whole draw either way (one rounding to the clock's 1 ms tick, not two:
/// 0.25 of 10 ms is 2.5 ms on the core).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_statement_holds_its_core_for_its_core_fraction_of_the_draw() {
    LocalSet::new()
        .run_until(async {
            let ms = Duration::from_millis;
            // All on the core: the second waits the whole first draw.
            assert_eq!(two_statements_on_one_core(1.0).await, vec![ms(10), ms(20)]);
            // 3 ms on the core: the second starts then.
            assert_eq!(two_statements_on_one_core(0.3).await, vec![ms(10), ms(13)]);
            // 2.5 ms rounds up to the next tick; the first reply still comes at 10 ms.
            assert_eq!(two_statements_on_one_core(0.25).await, vec![ms(10), ms(13)]);
        })
        .await;
}

/// Session X's second statement follows its first reply at once (a ping-pong) while session
/// Y's statement has waited since 5 ms behind a busy core; returns whose second round ended
/// first. One shared core in 1 ms slices, every draw 10 ms; a 30 ms piece of other database
/// work takes the core from 10 ms, so both statements wait for its slice's end at 11 ms.
async fn ping_pong_against_a_waiting_statement(seed: u64, sharing: Sharing) -> &'static str {
    let ms = Duration::from_millis;
    let engine = Rc::new(RefCell::new(Engine::new(EngineConfig::default())));
    let cores = Cores::on_ticks(1, Some(ms(1)), ms(1), sharing);
    let server =
        Server::start(engine, ServerConfig { cores: Some(cores.clone()), ..config(seed, 100) });
    let (mut x, mut y) = (connect(&server), connect(&server));
    let t0 = Instant::now();
    let x = tokio::task::spawn_local(async move {
        x.query("SELECT 1", &[]).await.unwrap().unwrap();
        x.query("SELECT 2", &[]).await.unwrap().unwrap();
        t0.elapsed()
    });
    let other = tokio::task::spawn_local(async move {
        tokio::time::sleep(ms(1)).await;
        cores.hold(Group::Database, ms(30)).await;
    });
    let y = tokio::task::spawn_local(async move {
        tokio::time::sleep(ms(5)).await;
        y.query("SELECT 3", &[]).await.unwrap().unwrap();
        t0.elapsed()
    });
    let (x, y) = (x.await.unwrap(), y.await.unwrap());
    other.await.unwrap();
    if x < y { "x" } else { "y" }
}

/// PING-PONG FIRST (`model::io::cores`): a statement that arrives right after its session's
/// reply runs before one that has waited longer; with two groups the server picks among them
/// by its scheduler, and in some seeds the one that waited goes first.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_statement_right_after_its_reply_runs_first_when_ping_pongs_go_first() {
    LocalSet::new()
        .run_until(async {
            let mut two_groups = Vec::new();
            for seed in 0..16 {
                let first =
                    ping_pong_against_a_waiting_statement(seed, Sharing::PingPongFirst).await;
                assert_eq!(first, "x", "seed {seed}: the ping-pong goes first");
                two_groups
                    .push(ping_pong_against_a_waiting_statement(seed, Sharing::TwoGroups).await);
            }
            assert!(two_groups.contains(&"y"), "two groups: the scheduler's pick, {two_groups:?}");
        })
        .await;
}
