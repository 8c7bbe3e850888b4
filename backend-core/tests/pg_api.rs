//! The HTTP API end to end against real PostgreSQL (skipped with a notice without
//! DATABASE_URL): seed through `seed_clinic`, then drive `api_router` with `oneshot`.
//!
//! Goal: bookings, idempotent replays, 409 with alternatives, the three fallback modes, pinned
//! rooms of another clinic, participant conflicts, cancel, availability, preview, and — for
//! every safe strategy — 50 concurrent HTTP bookings of one slot that never double-book.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use backend_core::booking::Strategy;
use backend_core::config::ApiConfig;
use backend_core::db::schema::SchemaVariant;
use backend_core::db::testing::PgTestSchema;
use backend_core::db::{Db, SqlValue};
use backend_core::domain::{
    AppointmentType, Clinic, Doctor, ManualClock, Patient, Room, SequentialIds,
};
use backend_core::http::{ApiContext, api_router};
use backend_core::rules::DEFAULT_RULESET_TOML;
use backend_core::seed::{ClinicSeed, PolicySeed, seed_clinic};
use chrono::{TimeZone, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

const ROOMS: usize = 3;
const PEOPLE: usize = 50;

fn id(kind: u8, n: usize) -> Uuid {
    Uuid::from_u128(((kind as u128) << 64) | (n as u128 + 1))
}

fn clinic_seed(clinic_kind: u8) -> ClinicSeed {
    let clinic_id = id(clinic_kind, 0);
    let rooms = (0..ROOMS)
        .map(|n| Room {
            id: id(clinic_kind + 1, n),
            clinic_id,
            name: format!("Exam {n}"),
            room_type: "exam".into(),
            capacity: 4,
            ..Room::default()
        })
        .collect();
    let doctors = (0..PEOPLE)
        .map(|n| Doctor {
            id: id(clinic_kind + 2, n),
            clinic_id,
            name: format!("Dr {n}"),
            specialty: "general".into(),
            ..Doctor::default()
        })
        .collect();
    let patients = (0..PEOPLE)
        .map(|n| Patient { id: id(clinic_kind + 3, n), age_years: 40, ..Patient::default() })
        .collect();
    let kind = AppointmentType {
        key: "follow_up".into(),
        name: "Follow-up".into(),
        duration_minutes: 20,
        turnover_minutes: 5,
        ..AppointmentType::default()
    };
    ClinicSeed {
        clinic: Clinic {
            id: clinic_id,
            name: format!("Clinic {clinic_kind}"),
            ..Clinic::default()
        },
        rooms,
        doctors,
        patients,
        appointment_types: vec![kind],
        policy: Some(PolicySeed {
            version: 1,
            format: "toml".into(),
            body: DEFAULT_RULESET_TOML.into(),
        }),
    }
}

struct World {
    schema: PgTestSchema,
    router: axum::Router,
    ctx: ApiContext,
}

async fn world(tag: &str, variant: SchemaVariant, strategy: Strategy) -> Option<World> {
    let schema = PgTestSchema::create(tag, variant).await?;
    let db: Arc<dyn Db> = Arc::new(schema.db.clone());
    let now = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    let mut conn = db.acquire().await.unwrap();
    for kind in [10u8, 20u8] {
        seed_clinic(conn.as_mut(), &clinic_seed(kind), now).await.expect("seed");
    }
    drop(conn);
    let config = ApiConfig { strategy, ..ApiConfig::default() };
    let clock = Arc::new(ManualClock::new(now));
    let ctx = ApiContext::new(db, clock, Arc::new(SequentialIds::new(3)), config, 11);
    Some(World { schema, router: api_router(ctx.clone()), ctx })
}

fn booking(n: usize, hour: u32) -> Value {
    json!({
        "clinic_id": id(10, 0),
        "doctor_id": id(12, n),
        "patient_id": id(13, n),
        "appointment_type": "follow_up",
        "start": Utc.with_ymd_and_hms(2030, 3, 11, hour, 0, 0).unwrap(),
        "end": Utc.with_ymd_and_hms(2030, 3, 11, hour, 20, 0).unwrap(),
    })
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn post(router: &axum::Router, uri: &str, key: Option<&str>, body: &Value) -> Answer {
    let mut request = Request::post(uri).header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    send(router, request.body(Body::from(body.to_string())).unwrap()).await
}

async fn send(router: &axum::Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer { status, headers, body }
}

async fn count(db: &dyn Db, sql: &str) -> i64 {
    let mut conn = db.acquire().await.unwrap();
    match conn.execute(sql, &[]).await.unwrap().rows[0][0] {
        SqlValue::Int(n) => n,
        ref other => panic!("count returned {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booking_flow_replay_conflicts_fallbacks_and_cancel() {
    let Some(w) = world("api_flow", SchemaVariant::Guarded, Strategy::Exclusion).await else {
        return;
    };
    let router = &w.router;

    // Preview: ranking without a write.
    let preview = post(router, "/v1/room-assignments:preview", None, &booking(0, 9)).await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert_eq!(preview.body["ranked"].as_array().unwrap().len(), ROOMS, "{}", preview.body);
    assert!(preview.headers.contains_key("server-timing"));

    // Book with an Idempotency-Key; a retry replays it exactly; another body is 422.
    let first = post(router, "/v1/appointments", Some("k-1"), &booking(0, 9)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["status"], "booked");
    assert!(first.body["room"]["id"].is_string());
    let timing = first.headers["server-timing"].to_str().unwrap().to_string();
    assert!(timing.starts_with("rules;dur=") && timing.contains("db;dur="), "{timing}");
    let replay = post(router, "/v1/appointments", Some("k-1"), &booking(0, 9)).await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(replay.body, first.body);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    let other = post(router, "/v1/appointments", Some("k-1"), &booking(1, 9)).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.body["code"], "IDEMPOTENCY_KEY_REUSED");

    // Same doctor at the same time: 409 naming the doctor.
    let mut busy = booking(0, 9);
    busy["patient_id"] = json!(id(13, 5));
    let busy = post(router, "/v1/appointments", None, &busy).await;
    assert_eq!(busy.status, StatusCode::CONFLICT, "{}", busy.body);
    assert_eq!(busy.body["code"], "DOCTOR_UNAVAILABLE");

    // Fill the remaining rooms, then: reject → 409 with alternatives; suggest → 200, no
    // booking; book_without_room → 201 room_pending.
    for n in 1..ROOMS {
        let answer = post(router, "/v1/appointments", None, &booking(n, 9)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "n={n}: {}", answer.body);
    }
    let full = post(router, "/v1/appointments", None, &booking(10, 9)).await;
    assert_eq!(full.status, StatusCode::CONFLICT, "{}", full.body);
    assert_eq!(full.body["code"], "ROOM_UNAVAILABLE");
    assert_eq!(full.headers["content-type"], "application/problem+json");
    let next = full.body["alternatives"]["next_feasible"].as_array().unwrap();
    assert!(!next.is_empty(), "409 should suggest later times: {}", full.body);
    let mut suggest = booking(11, 9);
    suggest["fallback"] = json!("suggest");
    let suggest = post(router, "/v1/appointments", None, &suggest).await;
    assert_eq!(suggest.status, StatusCode::OK, "{}", suggest.body);
    assert_eq!(suggest.body["booked"], false);
    let mut pending = booking(12, 9);
    pending["fallback"] = json!("book_without_room");
    let pending = post(router, "/v1/appointments", None, &pending).await;
    assert_eq!(pending.status, StatusCode::CREATED, "{}", pending.body);
    assert_eq!(pending.body["status"], "room_pending");
    assert!(pending.body["room"].is_null());

    // A room of another clinic is 422 on room_id; nothing written.
    let before = count(&w.schema.db, "SELECT count(*) FROM appointments").await;
    let mut pinned = booking(20, 14);
    pinned["room_id"] = json!(id(21, 0));
    let pinned = post(router, "/v1/appointments", None, &pinned).await;
    assert_eq!(pinned.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", pinned.body);
    assert_eq!(pinned.body["field"], "room_id");
    assert_eq!(count(&w.schema.db, "SELECT count(*) FROM appointments").await, before);

    // Cancel frees the room; cancelling twice is still 200.
    let appointment = first.body["id"].as_str().unwrap().to_string();
    let uri = format!("/v1/appointments/{appointment}/cancel");
    let cancelled = post(router, &uri, None, &json!({})).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert!(cancelled.headers.contains_key("server-timing"));
    assert_eq!(post(router, &uri, None, &json!({})).await.status, StatusCode::OK);
    let again = post(router, "/v1/appointments", None, &booking(10, 9)).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);

    // Availability lists every room with its free intervals.
    let uri = format!(
        "/v1/rooms/availability?clinic_id={}&from=2030-03-11T08:00:00Z&to=2030-03-11T12:00:00Z\
         &appointment_type=follow_up",
        id(10, 0)
    );
    let free = send(router, Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_eq!(free.status, StatusCode::OK, "{}", free.body);
    assert!(free.headers["server-timing"].to_str().unwrap().contains("db;dur="));
    let rooms = free.body["rooms"].as_array().unwrap();
    assert_eq!(rooms.len(), ROOMS);
    let first_free = &rooms[0]["free"][0];
    assert_eq!(first_free["start"], "2030-03-11T08:00:00Z", "{}", free.body);
    assert_eq!(first_free["end"], "2030-03-11T09:00:00Z", "{}", free.body);

    // The policy cache answered every request after the first from memory.
    assert_eq!(w.ctx.policy_cache.misses(), 1);
    assert!(w.ctx.policy_cache.hits() >= 5);
    w.schema.drop_schema().await;
}

async fn fifty_concurrent(strategy: Strategy, variant: SchemaVariant) {
    let tag = format!("api_{}", strategy.name().replace('-', "_"));
    let Some(w) = world(&tag, variant, strategy).await else { return };
    let mut tasks = Vec::new();
    for n in 0..PEOPLE {
        let router = w.router.clone();
        tasks.push(tokio::spawn(async move {
            post(&router, "/v1/appointments", None, &booking(n, 10)).await.status
        }));
    }
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT | StatusCode::SERVICE_UNAVAILABLE => {}
            other => panic!("{strategy}: unexpected status {other}"),
        }
    }
    let overlaps = count(
        &w.schema.db,
        "SELECT count(*) FROM appointments a JOIN appointments b ON a.room_id = b.room_id \
         WHERE a.id < b.id AND a.starts_at < b.blocked_until AND b.starts_at < a.blocked_until \
         AND a.status = 'booked' AND b.status = 'booked'",
    )
    .await;
    w.schema.drop_schema().await;
    assert_eq!(overlaps, 0, "{strategy} double-booked through the API");
    assert!((1..=ROOMS).contains(&created), "{strategy}: {created} created");
    if strategy != Strategy::Serializable {
        assert_eq!(created, ROOMS, "{strategy}: every room should be booked once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_http_bookings_exclusion() {
    fifty_concurrent(Strategy::Exclusion, SchemaVariant::Guarded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_http_bookings_room_lock_unguarded() {
    fifty_concurrent(Strategy::RoomLock, SchemaVariant::Unguarded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_http_bookings_advisory_unguarded() {
    fifty_concurrent(Strategy::Advisory, SchemaVariant::Unguarded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_http_bookings_serializable_unguarded() {
    fifty_concurrent(Strategy::Serializable, SchemaVariant::Unguarded).await;
}

/// Ten copies of one request with one Idempotency-Key, sent at once: exactly one booking;
/// every answer is either that booking (201, the original or a replay) or "in flight" (409).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_with_one_key_book_once() {
    let Some(w) = world("api_idem_race", SchemaVariant::Guarded, Strategy::Exclusion).await else {
        return;
    };
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let router = w.router.clone();
        tasks.push(tokio::spawn(async move {
            post(&router, "/v1/appointments", Some("same-key"), &booking(7, 15)).await
        }));
    }
    let mut bodies = Vec::new();
    let mut in_flight = 0;
    for task in tasks {
        let answer = task.await.unwrap();
        match answer.status {
            StatusCode::CREATED => bodies.push(answer.body),
            StatusCode::CONFLICT => {
                assert_eq!(answer.body["code"], "IDEMPOTENCY_IN_FLIGHT", "{}", answer.body);
                in_flight += 1;
            }
            other => panic!("unexpected {other}: {}", answer.body),
        }
    }
    let booked = count(&w.schema.db, "SELECT count(*) FROM appointments").await;
    let keys = count(&w.schema.db, "SELECT count(*) FROM idempotency_keys").await;
    w.schema.drop_schema().await;
    assert_eq!((booked, keys), (1, 1));
    assert!(!bodies.is_empty());
    assert!(bodies.iter().all(|body| *body == bodies[0]), "replays differ: {bodies:?}");
    assert_eq!(bodies.len() + in_flight, 10);
}
