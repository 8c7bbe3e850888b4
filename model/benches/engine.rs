//! Statements per second through the state machine, in-process: point select / insert /
//! update on a 10,000-row table, and a 50-session booking storm.
//!
//! Run: `cargo bench -p model --bench engine`. Criterion reports time per statement (per
//! storm for the storm); statements/s = 1 / time (the storm runs 250 statements).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use model::{Engine, EngineConfig, SessionId, Step, Value};
use std::hint::black_box;
use std::time::Duration;

const ROWS: i64 = 10_000;

fn loaded() -> (Engine, SessionId) {
    let mut e = Engine::new(EngineConfig::default());
    let s = e.open_session();
    let setup = format!(
        "create table t (id int primary key, v int not null);
         insert into t select g, g from generate_series(1, {ROWS}) g;
         create table ins (id bigint primary key, v int)"
    );
    assert!(matches!(e.submit(s, &setup, &[]), Step::Done(Ok(_))));
    (e, s)
}

fn expect_ok(step: Step) {
    assert!(matches!(step, Step::Done(Ok(_))), "{step:?}");
}

fn point_ops(c: &mut Criterion) {
    let mut g = c.benchmark_group("10k_rows");
    g.throughput(Throughput::Elements(1));
    let (mut e, s) = loaded();
    let mut i = 0i64;
    g.bench_function("point_select", |b| {
        b.iter(|| {
            i = i % ROWS + 1;
            expect_ok(e.submit(s, "select v from t where id = $1", &[Value::Int(i)]));
        })
    });
    let mut next = 0i64;
    g.bench_function("insert", |b| {
        b.iter(|| {
            next += 1;
            expect_ok(e.submit(s, "insert into ins values ($1, 1)", &[Value::Int(next)]));
        })
    });
    g.bench_function("update", |b| {
        b.iter(|| {
            i = i % ROWS + 1;
            expect_ok(e.submit(s, "update t set v = v + 1 where id = $1", &[Value::Int(i)]));
        })
    });
    g.finish();
}

/// The booking transaction each client runs (room lock, overlap check, insert, commit).
const BOOKING: [&str; 5] = [
    "begin",
    "select id from rooms where id = $1 for update",
    "select count(*) from bookings where room_id = $1 and starts < $2 + 1 and ends > $2",
    "insert into bookings (room_id, starts, ends) values ($1, $2, $2 + 1)",
    "commit",
];

/// 50 sessions book 5 rooms concurrently; returns the number of statements completed.
fn storm() -> usize {
    let mut e = Engine::new(EngineConfig::default());
    let setup = e.open_session();
    let ddl = "create table rooms (id int primary key);
        insert into rooms select g from generate_series(1, 5) g;
        create table bookings (id serial primary key, room_id int references rooms(id), starts int, ends int)";
    expect_ok(e.submit(setup, ddl, &[]));
    let sessions: Vec<SessionId> = (0..50).map(|_| e.open_session()).collect();
    let mut next_step = vec![0usize; sessions.len()];
    let mut statements = 0;
    while next_step.iter().any(|&n| n < BOOKING.len()) {
        for (k, &s) in sessions.iter().enumerate() {
            if next_step[k] >= BOOKING.len() || e.is_blocked(s) {
                continue;
            }
            let params = [Value::Int(k as i64 % 5 + 1), Value::Int(k as i64)];
            let step = e.submit(s, BOOKING[next_step[k]], &params);
            if let Step::Done(_) = step {
                next_step[k] += 1;
                statements += 1;
            }
        }
        for c in e.take_completions() {
            let k = sessions.iter().position(|&s| s == c.session).expect("known session");
            next_step[k] += 1;
            statements += 1;
        }
        if sessions.iter().all(|&s| {
            e.is_blocked(s)
                || next_step[sessions.iter().position(|&x| x == s).unwrap()] >= BOOKING.len()
        }) {
            let t = e.next_timer().unwrap_or(e.now() + Duration::from_millis(1));
            e.advance_to(t);
        }
    }
    statements
}

fn booking_storm(c: &mut Criterion) {
    let n = storm();
    assert_eq!(n, 250);
    let mut g = c.benchmark_group("booking_storm_50_sessions");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("storm", |b| b.iter(|| black_box(storm())));
    g.finish();
}

criterion_group!(benches, point_ops, booking_storm);
criterion_main!(benches);
