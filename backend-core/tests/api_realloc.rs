//! Re-allocation when every candidate room is taken between the snapshot and the transaction.
//!
//! Goal: a booking whose `candidates_max` ranked rooms are all booked by concurrent requests
//! after its snapshot was read re-reads the snapshot and books another free room; it answers
//! 409 ROOM_UNAVAILABLE (or `suggest`'s 200) only when the fresh snapshot has no feasible
//! room, and then with alternatives computed from that fresh snapshot; re-allocation is
//! bounded by `reallocations_max`; metrics, the CPU-cost hook and Server-Timing count every
//! round.
//!
//! Method: an in-memory fake `Db` that understands the booking statements (reference reads,
//! the day's appointments, BEGIN/COMMIT/ROLLBACK, the exclusion strategy's INSERT … ON
//! CONFLICT DO NOTHING and the locking strategies' overlap check and INSERT). It can "steal"
//! rooms: while `steals_left > 0`, the room a transaction tries is first booked by a competitor
//! (committed at once, so the next snapshot sees it) and the attempt finds it taken — exactly
//! what concurrent bookings committing between snapshot and transaction look like.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use backend_core::booking::Strategy;
use backend_core::booking::work::{Work, WorkCharge};
use backend_core::config::ApiConfig;
use backend_core::db::{BoxFuture, Conn, Db, DbError, Rows, SqlValue};
use backend_core::domain::{
    AppointmentType, Clinic, Doctor, ManualClock, Patient, Room, SequentialIds,
};
use backend_core::http::{ApiContext, api_router};
use backend_core::metrics::Metrics;
use backend_core::rules::DEFAULT_RULESET_TOML;
use chrono::{DateTime, TimeZone, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

fn id(kind: u8, n: usize) -> Uuid {
    Uuid::from_u128(((kind as u128) << 64) | (n as u128 + 1))
}

fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 3, 11, hour, minute, 0).unwrap()
}

/// A committed appointment of the fake: (id, room, start, end, blocked_until).
#[derive(Clone, Debug)]
struct Row {
    id: Uuid,
    room_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    blocked_until: DateTime<Utc>,
}

#[derive(Default)]
struct State {
    rooms: Vec<Room>,
    committed: Vec<Row>,
    /// Rooms still to be stolen by competitors at the next attempts.
    steals_left: u32,
    /// Competitor bookings made so far (their ids).
    stolen: Vec<Uuid>,
    /// Statements seen, first two words.
    log: Vec<String>,
}

impl State {
    fn overlaps(&self, room_id: Uuid, start: DateTime<Utc>, blocked_until: DateTime<Utc>) -> bool {
        self.committed
            .iter()
            .any(|r| r.room_id == room_id && r.start < blocked_until && r.blocked_until > start)
    }

    /// A competitor books `room_id` for the same visit and commits at once.
    fn steal(&mut self, room_id: Uuid, start: DateTime<Utc>, end: DateTime<Utc>) {
        let competitor = id(90, self.stolen.len());
        let blocked_until = end + chrono::Duration::minutes(5);
        self.committed.push(Row { id: competitor, room_id, start, end, blocked_until });
        self.stolen.push(competitor);
        self.steals_left -= 1;
    }
}

#[derive(Clone)]
struct FakeDb {
    state: Arc<Mutex<State>>,
}

struct FakeConn {
    state: Arc<Mutex<State>>,
    /// Rows inserted by the open transaction (committed on COMMIT).
    pending: Vec<Row>,
}

impl Db for FakeDb {
    fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn Conn>, DbError>> {
        let conn = FakeConn { state: self.state.clone(), pending: Vec::new() };
        Box::pin(async move { Ok(Box::new(conn) as Box<dyn Conn>) })
    }
}

fn one(value: SqlValue) -> Rows {
    Rows { columns: vec!["c".into()], rows: vec![vec![value]], rows_affected: 1 }
}

fn affected(n: u64) -> Rows {
    Rows { rows_affected: n, ..Rows::default() }
}

fn uuid_at(params: &[SqlValue], index: usize) -> Uuid {
    match &params[index] {
        SqlValue::Uuid(id) => *id,
        other => panic!("parameter {index}: expected uuid, got {other:?}"),
    }
}

fn time_at(params: &[SqlValue], index: usize) -> DateTime<Utc> {
    match &params[index] {
        SqlValue::Timestamp(at) => *at,
        other => panic!("parameter {index}: expected timestamp, got {other:?}"),
    }
}

impl FakeConn {
    fn answer(&mut self, sql: &str, params: &[SqlValue]) -> Result<Rows, DbError> {
        let mut state = self.state.lock().unwrap();
        state.log.push(sql.split_whitespace().take(2).collect::<Vec<_>>().join(" "));
        if sql.contains("max(version)") {
            return Ok(one(SqlValue::Int(1)));
        }
        if sql.starts_with("SELECT format, body FROM rule_policies") {
            let row =
                vec![SqlValue::Text("toml".into()), SqlValue::Text(DEFAULT_RULESET_TOML.into())];
            return Ok(Rows { columns: vec![], rows: vec![row], rows_affected: 1 });
        }
        if sql.starts_with("SELECT body FROM clinics") {
            return Ok(body(&clinic()));
        }
        if sql.starts_with("SELECT body FROM doctors") {
            return Ok(body(&doctor()));
        }
        if sql.starts_with("SELECT body FROM patients") {
            return Ok(body(&patient()));
        }
        if sql.starts_with("SELECT body FROM appointment_types") {
            return Ok(body(&appointment_type()));
        }
        if sql.starts_with("SELECT body FROM rooms") {
            let rows = state.rooms.iter().map(|r| vec![SqlValue::Text(json_text(r))]).collect();
            return Ok(Rows { columns: vec!["body".into()], rows, rows_affected: 0 });
        }
        if sql.starts_with("SELECT id, clinic_id, room_id") {
            return Ok(appointments(&state.committed));
        }
        if sql.starts_with("BEGIN") {
            assert!(self.pending.is_empty(), "BEGIN inside a transaction");
            return Ok(affected(0));
        }
        if sql.starts_with("ROLLBACK") {
            self.pending.clear();
            return Ok(affected(0));
        }
        if sql.starts_with("COMMIT") {
            state.committed.append(&mut self.pending);
            return Ok(affected(0));
        }
        if sql.starts_with("SELECT id FROM rooms WHERE id = $1 FOR NO KEY UPDATE") {
            return Ok(one(SqlValue::Uuid(uuid_at(params, 0))));
        }
        if sql.starts_with("SELECT count(*) AS overlapping FROM appointments") {
            // The locking strategies' check: a competitor may commit just before it.
            let (room, blocked_until, start) =
                (uuid_at(params, 0), time_at(params, 1), time_at(params, 2));
            if state.steals_left > 0 {
                state.steal(room, start, blocked_until - chrono::Duration::minutes(5));
            }
            return Ok(one(SqlValue::Int(i64::from(state.overlaps(room, start, blocked_until)))));
        }
        if sql.starts_with("SELECT doctor_id, patient_id FROM appointments") {
            // Competitors are other doctors and patients.
            return Ok(Rows::default());
        }
        if sql.starts_with("INSERT INTO appointments") && sql.contains("'room_pending'") {
            // No room, so no room conflict; competitors never share the doctor or patient.
            return Ok(affected(1));
        }
        if sql.starts_with("INSERT INTO appointments") {
            let row = Row {
                id: uuid_at(params, 0),
                room_id: uuid_at(params, 2),
                start: time_at(params, 6),
                end: time_at(params, 7),
                blocked_until: time_at(params, 9),
            };
            if sql.contains("ON CONFLICT DO NOTHING") {
                if state.steals_left > 0 {
                    state.steal(row.room_id, row.start, row.end);
                }
                if state.overlaps(row.room_id, row.start, row.blocked_until) {
                    return Ok(affected(0));
                }
            }
            self.pending.push(row);
            return Ok(affected(1));
        }
        panic!("the fake does not know this statement: {sql}");
    }
}

impl Conn for FakeConn {
    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<Rows, DbError>> {
        let result = self.answer(sql, params);
        Box::pin(async move { result })
    }
}

/// A reference entity as the one-row `body` column the snapshot reads.
fn body<T: serde::Serialize>(entity: &T) -> Rows {
    one(SqlValue::Text(json_text(entity)))
}

fn json_text<T: serde::Serialize>(entity: &T) -> String {
    serde_json::to_string(entity).expect("serialisable entity")
}

fn appointments(committed: &[Row]) -> Rows {
    let rows = committed
        .iter()
        .map(|r| {
            vec![
                SqlValue::Uuid(r.id),
                SqlValue::Uuid(clinic().id),
                SqlValue::Uuid(r.room_id),
                SqlValue::Uuid(id(12, 99)),
                SqlValue::Uuid(id(13, 99)),
                SqlValue::Text("follow_up".into()),
                SqlValue::Timestamp(r.start),
                SqlValue::Timestamp(r.end),
                SqlValue::Int((r.blocked_until - r.end).num_minutes()),
                SqlValue::Text("booked".into()),
                SqlValue::Bool(false),
                SqlValue::Null,
            ]
        })
        .collect();
    Rows { columns: vec![], rows, rows_affected: committed.len() as u64 }
}

fn clinic() -> Clinic {
    Clinic { id: id(10, 0), name: "Fake clinic".into(), ..Clinic::default() }
}

fn doctor() -> Doctor {
    Doctor {
        id: id(12, 0),
        clinic_id: clinic().id,
        name: "Dr Fake".into(),
        specialty: "general".into(),
        ..Doctor::default()
    }
}

fn patient() -> Patient {
    Patient { id: id(13, 0), age_years: 40, ..Patient::default() }
}

fn appointment_type() -> AppointmentType {
    AppointmentType {
        key: "follow_up".into(),
        name: "Follow-up".into(),
        duration_minutes: 20,
        turnover_minutes: 5,
        ..AppointmentType::default()
    }
}

fn rooms(count: usize) -> Vec<Room> {
    (0..count)
        .map(|n| Room {
            id: id(11, n),
            clinic_id: clinic().id,
            name: format!("Exam {n}"),
            room_type: "exam".into(),
            capacity: 4,
            ..Room::default()
        })
        .collect()
}

/// Counts the CPU-cost charges by kind.
#[derive(Default)]
struct CountingCharge {
    rules: AtomicU32,
    conflict: AtomicU32,
}

impl WorkCharge for CountingCharge {
    fn charge(&self, work: Work) -> BoxFuture<'static, ()> {
        let counter = match work {
            Work::RulesEvaluation(_) => &self.rules,
            Work::ConflictDetection(_) => &self.conflict,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Box::pin(std::future::ready(()))
    }
}

struct World {
    state: Arc<Mutex<State>>,
    router: axum::Router,
    metrics: Arc<Metrics>,
    charge: Arc<CountingCharge>,
}

fn world(rooms_count: usize, steals: u32, config: ApiConfig) -> World {
    let state = State { rooms: rooms(rooms_count), steals_left: steals, ..State::default() };
    let state = Arc::new(Mutex::new(state));
    let db = Arc::new(FakeDb { state: state.clone() });
    let clock = Arc::new(ManualClock::new(at(0, 0)));
    let charge = Arc::new(CountingCharge::default());
    let ctx = ApiContext::new(db, clock, Arc::new(SequentialIds::new(3)), config, 11)
        .with_work_charge(charge.clone());
    let metrics = ctx.metrics.clone();
    World { state, router: api_router(ctx), metrics, charge }
}

fn booking(fallback: &str) -> Value {
    json!({
        "clinic_id": clinic().id,
        "doctor_id": doctor().id,
        "patient_id": patient().id,
        "appointment_type": "follow_up",
        "start": at(9, 0),
        "end": at(9, 20),
        "fallback": fallback,
    })
}

struct Answer {
    status: StatusCode,
    server_timing: String,
    body: Value,
}

async fn post(world: &World, body: &Value) -> Answer {
    let request = Request::post("/v1/appointments")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = world.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let server_timing = response
        .headers()
        .get("server-timing")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer { status, server_timing, body }
}

fn begins(state: &Mutex<State>) -> usize {
    state.lock().unwrap().log.iter().filter(|s| s.starts_with("BEGIN")).count()
}

fn config(strategy: Strategy, reallocations_max: u32) -> ApiConfig {
    ApiConfig { strategy, candidates_max: 3, reallocations_max, ..ApiConfig::default() }
}

/// Five rooms; the three candidates of the first transaction are stolen. The booking must
/// land in one of the two others after one re-allocation (every safe strategy's path: the
/// exclusion INSERT and the locking strategies' check).
#[tokio::test]
async fn all_candidates_taken_reallocates_and_books_a_free_room() {
    for strategy in [Strategy::Exclusion, Strategy::RoomLock, Strategy::Serializable] {
        let world = world(5, 3, config(strategy, 4));
        let answer = post(&world, &booking("reject")).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{strategy}: {}", answer.body);
        let state = world.state.lock().unwrap();
        let stolen_rooms: Vec<Uuid> = state
            .committed
            .iter()
            .filter(|r| state.stolen.contains(&r.id))
            .map(|r| r.room_id)
            .collect();
        assert_eq!(stolen_rooms.len(), 3, "{strategy}");
        let room: Uuid = answer.body["room"]["id"].as_str().unwrap().parse().unwrap();
        assert!(!stolen_rooms.contains(&room), "{strategy}: booked a stolen room {room}");
        assert_eq!(state.committed.len(), 4, "{strategy}: three competitors and this booking");
        drop(state);
        assert_eq!(begins(&world.state), 2, "{strategy}: one transaction per round");
        let metrics = world.metrics.snapshot();
        assert_eq!(metrics.reallocations, 1, "{strategy}");
        assert_eq!(metrics.room_conflicts, 3, "{strategy}");
        assert_eq!(metrics.bookings_booked, 1, "{strategy}");
        // The allocator ran twice, and both runs were charged.
        assert_eq!(world.charge.rules.load(Ordering::Relaxed), 2, "{strategy}");
        assert_eq!(world.charge.conflict.load(Ordering::Relaxed), 2, "{strategy}");
        assert!(answer.server_timing.starts_with("rules;dur="), "{}", answer.server_timing);
    }
}

/// Three rooms, all stolen: the fresh snapshot has no feasible room, so the answer is 409
/// ROOM_UNAVAILABLE (or `suggest`'s 200) with alternatives from the FRESH snapshot: later
/// times that do not overlap the competitors' bookings.
#[tokio::test]
async fn no_room_in_the_fresh_snapshot_answers_with_fresh_alternatives() {
    for fallback in ["reject", "suggest"] {
        let world = world(3, 3, config(Strategy::Exclusion, 4));
        let answer = post(&world, &booking(fallback)).await;
        let alternatives = if fallback == "reject" {
            assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);
            assert_eq!(answer.body["code"], "ROOM_UNAVAILABLE", "{}", answer.body);
            assert_eq!(
                answer.body["detail"],
                "no feasible room: no room satisfies every hard rule"
            );
            &answer.body["alternatives"]
        } else {
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            assert_eq!(answer.body["booked"], false, "{}", answer.body);
            &answer.body["alternatives"]
        };
        // The stale snapshot's alternatives would be the other two (now taken) rooms at 09:00.
        assert_eq!(alternatives["same_time_other_rooms"], json!([]), "{alternatives}");
        let next = alternatives["next_feasible"].as_array().expect("a list");
        assert!(!next.is_empty(), "{fallback}: no alternatives: {alternatives}");
        for suggestion in next {
            let start: DateTime<Utc> = suggestion["start"].as_str().unwrap().parse().unwrap();
            // Competitors block every room until 09:25.
            assert!(
                start >= at(9, 25),
                "{fallback}: alternative overlaps a taken room: {suggestion}"
            );
        }
        assert_eq!(world.metrics.snapshot().reallocations, 1);
        assert_eq!(begins(&world.state), 1, "no transaction on a snapshot without rooms");
        assert_eq!(world.charge.rules.load(Ordering::Relaxed), 2);
    }
}

/// Nine rooms, six stolen, budget of one re-allocation: both transactions lose all their
/// candidates; the request then reads one more snapshot (three rooms still free) and answers
/// 409 naming the contention, with alternatives from that snapshot, without a third
/// transaction.
#[tokio::test]
async fn reallocation_is_bounded() {
    let world = world(9, 6, config(Strategy::Exclusion, 1));
    let answer = post(&world, &booking("reject")).await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);
    assert_eq!(answer.body["code"], "ROOM_UNAVAILABLE", "{}", answer.body);
    let detail = answer.body["detail"].as_str().unwrap();
    assert!(detail.contains("1 re-allocations"), "{detail}");
    let alternatives = &answer.body["alternatives"];
    let same_time = alternatives["same_time_other_rooms"].as_array().unwrap();
    assert!(!same_time.is_empty(), "{alternatives}");
    let stolen: Vec<String> = {
        let state = world.state.lock().unwrap();
        let ids = state.committed.iter().filter(|r| state.stolen.contains(&r.id));
        ids.map(|r| r.room_id.to_string()).collect()
    };
    assert_eq!(stolen.len(), 6);
    for room in same_time {
        let room_id = room["room_id"].as_str().unwrap().to_string();
        assert!(!stolen.contains(&room_id), "alternative {room_id} was taken: {alternatives}");
    }
    assert!(!alternatives["next_feasible"].as_array().unwrap().is_empty(), "{alternatives}");
    assert_eq!(begins(&world.state), 2, "at most reallocations_max + 1 transactions");
    let metrics = world.metrics.snapshot();
    assert_eq!((metrics.reallocations, metrics.bookings_rejected), (2, 1));
    assert_eq!(world.charge.rules.load(Ordering::Relaxed), 3);
}

/// `book_without_room` falls back to room_pending only once re-allocation cannot help: with
/// rooms still free after the first round, the booking gets a room.
#[tokio::test]
async fn room_pending_waits_for_the_last_round() {
    let world = world(5, 3, config(Strategy::Exclusion, 2));
    let answer = post(&world, &booking("book_without_room")).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.body["status"], "booked", "{}", answer.body);
    assert!(answer.body["room"]["id"].is_string(), "{}", answer.body);

    // Budget 0: the first (and only) transaction falls back to room_pending at once.
    let world = world_pending();
    let answer = post(&world, &booking("book_without_room")).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.body["status"], "room_pending", "{}", answer.body);
    assert_eq!(world.metrics.snapshot().reallocations, 0);
}

fn world_pending() -> World {
    world(5, 3, config(Strategy::Exclusion, 0))
}
