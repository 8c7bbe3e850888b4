//! HTTP error paths that need no database: a fake `Db` answers every query with "no rows"
//! (and the policy version check with NULL) and records the statements it saw.
//!
//! Goal: bad input gets a typed problem+json naming the field, with the right status and a
//! stable code, and nothing is written (no INSERT/UPDATE reaches the fake).

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use backend_core::config::ApiConfig;
use backend_core::db::{BoxFuture, Conn, Db, DbError, Rows, SqlValue};
use backend_core::domain::{ManualClock, SequentialIds};
use backend_core::http::{ApiContext, api_router};
use chrono::{TimeZone, Utc};
use http_body_util::BodyExt;
use tower::ServiceExt;

#[derive(Default)]
struct FakeDb {
    statements: Arc<Mutex<Vec<String>>>,
    down: bool,
}

struct FakeConn {
    statements: Arc<Mutex<Vec<String>>>,
}

impl Db for FakeDb {
    fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn Conn>, DbError>> {
        let statements = self.statements.clone();
        let down = self.down;
        Box::pin(async move {
            if down {
                return Err(DbError::new(DbError::POOL_TIMEOUT, "pool timed out"));
            }
            Ok(Box::new(FakeConn { statements }) as Box<dyn Conn>)
        })
    }
}

impl Conn for FakeConn {
    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        _params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<Rows, DbError>> {
        self.statements.lock().unwrap().push(sql.to_string());
        let rows = if sql.contains("max(version)") {
            Rows {
                columns: vec!["version".into()],
                rows: vec![vec![SqlValue::Null]],
                rows_affected: 1,
            }
        } else {
            Rows::default()
        };
        Box::pin(async move { Ok(rows) })
    }
}

fn app(db: FakeDb) -> (axum::Router, Arc<Mutex<Vec<String>>>) {
    let statements = db.statements.clone();
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()));
    let config = ApiConfig { body_bytes_max: 2048, ..ApiConfig::default() };
    let ctx = ApiContext::new(Arc::new(db), clock, Arc::new(SequentialIds::new(7)), config, 1);
    (api_router(ctx), statements)
}

async fn call(
    router: axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> (StatusCode, String, serde_json::Value) {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router.oneshot(request.body(body.into()).unwrap()).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, content_type, json)
}

fn booking(start: &str, end: &str) -> String {
    serde_json::json!({
        "clinic_id": "00000000-0000-0000-0000-000000000001",
        "doctor_id": "00000000-0000-0000-0000-000000000002",
        "patient_id": "00000000-0000-0000-0000-000000000003",
        "appointment_type": "follow_up",
        "start": start,
        "end": end,
    })
    .to_string()
}

fn assert_problem(status: StatusCode, content_type: &str, body: &serde_json::Value) {
    assert_eq!(content_type, "application/problem+json", "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(body["code"].is_string() && body["type"].is_string(), "{body}");
}

fn writes(statements: &Mutex<Vec<String>>) -> Vec<String> {
    let statements = statements.lock().unwrap();
    let is_write = |s: &&String| s.starts_with("INSERT") || s.starts_with("UPDATE");
    statements.iter().filter(is_write).cloned().collect()
}

#[tokio::test]
async fn malformed_json_is_400_naming_the_position() {
    let (router, statements) = app(FakeDb::default());
    let (status, content_type, body) =
        call(router, "POST", "/v1/appointments", &[], "{\"clinic_id\": ").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_problem(status, &content_type, &body);
    assert_eq!(body["code"], "MALFORMED_BODY");
    assert!(body["detail"].as_str().unwrap().contains("line 1"), "{body}");
    assert!(statements.lock().unwrap().is_empty(), "no query before the body parses");
}

#[tokio::test]
async fn wrong_field_type_is_422_naming_the_field() {
    let (router, _) = app(FakeDb::default());
    let mut body: serde_json::Value =
        serde_json::from_str(&booking("2030-03-10T09:00:00Z", "2030-03-10T09:20:00Z")).unwrap();
    body["doctor_id"] = serde_json::json!(42);
    let (status, content_type, body) =
        call(router, "POST", "/v1/appointments", &[], body.to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_problem(status, &content_type, &body);
    assert_eq!(body["field"], "doctor_id", "{body}");
}

#[tokio::test]
async fn end_not_after_start_is_422_on_end() {
    let (router, statements) = app(FakeDb::default());
    let request = booking("2030-03-10T09:00:00Z", "2030-03-10T09:00:00Z");
    let (status, content_type, body) = call(router, "POST", "/v1/appointments", &[], request).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_problem(status, &content_type, &body);
    assert_eq!(body["field"], "end");
    assert!(writes(&statements).is_empty());
}

#[tokio::test]
async fn overlong_appointment_type_is_422() {
    let (router, _) = app(FakeDb::default());
    let mut body: serde_json::Value =
        serde_json::from_str(&booking("2030-03-10T09:00:00Z", "2030-03-10T09:20:00Z")).unwrap();
    body["appointment_type"] = serde_json::json!("x".repeat(500));
    let (status, _, body) = call(router, "POST", "/v1/appointments", &[], body.to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "appointment_type", "{body}");
}

#[tokio::test]
async fn oversize_body_is_413() {
    let (router, _) = app(FakeDb::default());
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(10_000));
    let (status, content_type, body) = call(router, "POST", "/v1/appointments", &[], huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_problem(status, &content_type, &body);
    assert_eq!(body["code"], "BODY_TOO_LARGE");
}

#[tokio::test]
async fn unknown_clinic_is_422_naming_clinic_id_and_nothing_is_written() {
    let (router, statements) = app(FakeDb::default());
    let request = booking("2030-03-10T09:00:00Z", "2030-03-10T09:20:00Z");
    let (status, content_type, body) = call(router, "POST", "/v1/appointments", &[], request).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_problem(status, &content_type, &body);
    assert_eq!(body["code"], "UNKNOWN_REFERENCE");
    assert_eq!(body["field"], "clinic_id");
    assert!(writes(&statements).is_empty());
}

#[tokio::test]
async fn bad_idempotency_key_is_422() {
    let (router, _) = app(FakeDb::default());
    let request = booking("2030-03-10T09:00:00Z", "2030-03-10T09:20:00Z");
    let long_key = "k".repeat(300);
    let headers = [("idempotency-key", long_key.as_str())];
    let (status, _, body) = call(router, "POST", "/v1/appointments", &headers, request).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "Idempotency-Key");
}

#[tokio::test]
async fn database_down_is_503_with_retry_after_and_no_raw_error() {
    let (router, _) = app(FakeDb { down: true, ..FakeDb::default() });
    let request = booking("2030-03-10T09:00:00Z", "2030-03-10T09:20:00Z");
    let response = router
        .oneshot(Request::post("/v1/appointments").body(Body::from(request)).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(response.headers().contains_key("server-timing"));
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.contains("DATABASE_UNAVAILABLE"), "{text}");
    assert!(!text.contains("pool timed out"), "raw database text leaked: {text}");
}

#[tokio::test]
async fn cancel_with_a_bad_id_is_422_and_unknown_id_is_404() {
    let (router, _) = app(FakeDb::default());
    let (status, _, body) =
        call(router.clone(), "POST", "/v1/appointments/xyz/cancel", &[], "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "id");
    let uri = "/v1/appointments/00000000-0000-0000-0000-0000000000aa/cancel";
    let (status, _, body) = call(router, "POST", uri, &[], "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "NOT_FOUND");
}

#[tokio::test]
async fn availability_validates_its_query() {
    let (router, _) = app(FakeDb::default());
    let uri = "/v1/rooms/availability?clinic_id=00000000-0000-0000-0000-000000000001\
               &from=2030-03-10T10:00:00Z&to=2030-03-10T09:00:00Z";
    let (status, _, body) = call(router.clone(), "GET", uri, &[], "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "to");
    let (status, _, body) =
        call(router, "GET", "/v1/rooms/availability?clinic_id=nope", &[], "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "query", "{body}");
}

#[tokio::test]
async fn metrics_and_healthz_answer() {
    let (router, _) = app(FakeDb::default());
    let (status, _, _) = call(router.clone(), "GET", "/healthz", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    let response =
        router.oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.contains("roomsim_bookings_total{outcome=\"booked\"} 0"), "{text}");
    assert!(text.contains("roomsim_policy_cache_hits_total"), "{text}");
    assert!(text.contains("roomsim_body_cache_hits_total{kind=\"clinic\"} 0\n"), "{text}");
    assert!(text.contains("roomsim_body_cache_misses_total{kind=\"policy_json\"} 0\n"), "{text}");
    let (status, _, _) =
        call(app(FakeDb { down: true, ..FakeDb::default() }).0, "GET", "/healthz", &[], "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}
