//! Property test over HTTP requests (issue #12): arbitrary bytes, arbitrary JSON and mutated
//! bookings (NUL in text, huge numbers, far dates, wrong types) sent through backend-core's
//! `api_router` on the model engine. Never a 5xx, never a panic, and never a session left
//! inside a transaction after the request.
//!
//! The engine is driven synchronously (no network, no turmoil): every session is handed out
//! inside backend-core's `TxGuard`, as in production; a statement that would block is an
//! error (nothing else runs concurrently here).

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::Request;
use backend_core::booking::strategy::Strategy as BookingStrategy;
use backend_core::config::ApiConfig;
use backend_core::db::guard::{GuardMode, RawConn, TxGuard};
use backend_core::db::{BoxFuture, Conn, Db, DbError, Rows, SqlValue};
use backend_core::domain::{ManualClock, SequentialIds};
use backend_core::http::{ApiContext, api_router};
use http_body_util::BodyExt;
use model::{Engine, SessionId};
use proptest::prelude::*;
use scenarios::Scenario;
use sim::ids::ClinicIds;
use sim::model_db::execute_at_once;
use tower::ServiceExt;

struct EngineDb {
    engine: Arc<Mutex<Engine>>,
}

struct EngineSession {
    engine: Arc<Mutex<Engine>>,
    session: SessionId,
    /// The guard closed it instead of pooling it (a closed session's transaction aborts).
    discarded: bool,
}

impl Db for EngineDb {
    fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn Conn>, DbError>> {
        let session = self.engine.lock().unwrap().open_session();
        let raw = EngineSession { engine: self.engine.clone(), session, discarded: false };
        Box::pin(async move { Ok(Box::new(TxGuard::new(raw, GuardMode::Safe)) as Box<dyn Conn>) })
    }
}

impl RawConn for EngineSession {
    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<Rows, DbError>> {
        let mut engine = self.engine.lock().unwrap();
        let result = execute_at_once(&mut engine, self.session, sql, params, "in a serial test");
        Box::pin(std::future::ready(result))
    }

    fn discard(&mut self) {
        self.discarded = true;
    }
}

/// A session the guard did not discard would go back to the pool: it must not be inside a
/// transaction then. (Every session is closed afterwards; a discarded one's transaction is
/// rolled back by that close, as PostgreSQL does on disconnect.)
impl Drop for EngineSession {
    fn drop(&mut self) {
        let mut engine = self.engine.lock().unwrap();
        let leaked =
            !self.discarded && engine.open_transactions().iter().any(|t| t.session == self.session);
        engine.close_session(self.session);
        drop(engine);
        if leaked && !std::thread::panicking() {
            panic!("session {} handed back to the pool inside a transaction", self.session);
        }
    }
}

struct World {
    engine: Arc<Mutex<Engine>>,
    router: axum::Router,
    booking: serde_json::Value,
}

fn world() -> World {
    let scenario = Arc::new(Scenario::builtin("storm").unwrap().scenario);
    let ids = ClinicIds::new(&scenario);
    let engine =
        sim::world::engine::prepare_engine(&scenario, &ids, BookingStrategy::Exclusion, 1).unwrap();
    let engine = Arc::new(Mutex::new(engine));
    let day = chrono::DateTime::parse_from_rfc3339(&format!("{}T08:00:00Z", scenario.clinic.day))
        .unwrap()
        .with_timezone(&chrono::Utc);
    let ctx = ApiContext::new(
        Arc::new(EngineDb { engine: engine.clone() }),
        Arc::new(ManualClock::new(day)),
        Arc::new(SequentialIds::new(7)),
        ApiConfig::default(),
        7,
    );
    let booking = serde_json::json!({
        "clinic_id": ids.clinic,
        "doctor_id": ids.doctor(&scenario.clinic.doctors[0].name),
        "patient_id": ids.patient(&scenario.clinic.patients[0].name),
        "appointment_type": scenario.clinic.appointment_types[0].name,
        "start": format!("{}T09:00:00Z", scenario.clinic.day),
        "end": format!("{}T09:30:00Z", scenario.clinic.day),
    });
    World { engine, router: api_router(ctx), booking }
}

/// Sends one request; returns the status.
fn send(world: &World, method: &str, uri: &str, body: Vec<u8>) -> u16 {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    runtime.block_on(async {
        let response = world.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(status < 500, "{method} {uri}: {status} {}", String::from_utf8_lossy(&body));
        status
    })
}

fn any_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("x\u{0}")),
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!(1e308)),
        Just(serde_json::Value::from("9999-12-31T23:59:59Z")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

const FIELDS: &[&str] = &[
    "clinic_id",
    "doctor_id",
    "patient_id",
    "appointment_type",
    "start",
    "end",
    "room_id",
    "needs",
    "fallback",
    "previous_room_id",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_request_body_is_a_server_error_or_leaks_a_transaction(
        raw in prop::collection::vec(any::<u8>(), 0..64),
        json in any_json(),
        field in 0..FIELDS.len(),
        value in any_json(),
        path in 0..3usize,
    ) {
        let world = world();
        let uri = ["/v1/appointments", "/v1/room-assignments:preview", "/v1/appointments/x/cancel"][path];
        send(&world, "POST", uri, raw);
        send(&world, "POST", uri, serde_json::to_vec(&json).unwrap());
        let mut mutated = world.booking.clone();
        mutated[FIELDS[field]] = value;
        send(&world, "POST", uri, serde_json::to_vec(&mutated).unwrap());
        // The unmutated booking still books: nothing before it broke the service.
        let status = send(&world, "POST", "/v1/appointments", serde_json::to_vec(&world.booking).unwrap());
        prop_assert!(status == 201 || status == 409, "the valid booking answered {status}");
        prop_assert!(world.engine.lock().unwrap().open_transactions().is_empty());
    }

    #[test]
    fn no_availability_query_is_a_server_error(query in ".{0,40}", kind in ".{0,6}") {
        let world = world();
        let encoded: String = url_encode(&kind);
        let uri = format!(
            "/v1/rooms/availability?clinic_id={}&from=2026-03-02T08:00:00Z&to=2026-03-02T18:00:00Z&appointment_type={encoded}",
            world.booking["clinic_id"].as_str().unwrap()
        );
        send(&world, "GET", &uri, Vec::new());
        let uri = format!("/v1/rooms/availability?{}", url_encode(&query));
        send(&world, "GET", &uri, Vec::new());
    }
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'=' | b'&' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
