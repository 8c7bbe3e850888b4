//! The accept loop's read limits and the router's error shapes over real TCP (issue #12 items
//! 4, 5, 2, 7 and the request id of item 3). Each test fails on the code before the fix:
//! `axum::serve` had no header or body timeout, 404/405 had empty bodies, NUL and year-9999
//! bookings reached the database.

use std::sync::Arc;
use std::time::Duration;

use backend_core::config::ApiConfig;
use backend_core::db::{BoxFuture, Conn, Db, DbError};
use backend_core::domain::{ManualClock, SequentialIds};
use backend_core::http::serve::{ServeLimits, serve};
use backend_core::http::{ApiContext, api_router};
use chrono::{TimeZone, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A database that is never reached by these requests (every test fails before any SQL).
struct NoDb;

impl Db for NoDb {
    fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn Conn>, DbError>> {
        Box::pin(async { Err(DbError::new(DbError::POOL_TIMEOUT, "no database in this test")) })
    }
}

const LIMITS: ServeLimits = ServeLimits {
    header_read_timeout: Duration::from_millis(300),
    body_read_timeout: Duration::from_millis(300),
    body_bytes_max: 16 * 1024,
};

async fn start() -> std::net::SocketAddr {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap());
    let ctx = ApiContext::new(
        Arc::new(NoDb),
        Arc::new(clock),
        Arc::new(SequentialIds::new(1)),
        ApiConfig::default(),
        1,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, api_router(ctx), LIMITS, std::future::pending()));
    address
}

/// Sends `bytes`, then reads until the server closes or 3 s pass; returns what it read and
/// how long the server took to answer or close.
async fn exchange(address: std::net::SocketAddr, bytes: &[u8]) -> (String, Duration) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "the server held the connection for 3 s: {:?}",
        String::from_utf8_lossy(&out)
    );
    (String::from_utf8_lossy(&out).into_owned(), started.elapsed())
}

#[tokio::test]
async fn slow_headers_are_cut_off_by_the_header_read_timeout() {
    let address = start().await;
    let (answer, waited) =
        exchange(address, b"POST /v1/appointments HTTP/1.1\r\nHost: x\r\n").await;
    assert!(waited < Duration::from_secs(2), "closed after {waited:?}");
    assert!(!answer.contains("201"), "{answer}");
}

#[tokio::test]
async fn a_slow_body_gets_408_problem_json() {
    let address = start().await;
    let head = b"POST /v1/appointments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: 100\r\nConnection: close\r\n\r\n{\"clinic_id\":";
    let (answer, _) = exchange(address, head).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("application/problem+json") && answer.contains("REQUEST_TIMEOUT"),
        "{answer}"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problem_json_with_a_request_id() {
    let address = start().await;
    let (answer, _) =
        exchange(address, b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(
        answer.contains("ROUTE_NOT_FOUND") && answer.contains("application/problem+json"),
        "{answer}"
    );
    assert!(answer.to_ascii_lowercase().contains("x-request-id: "), "{answer}");
    let request = b"DELETE /healthz HTTP/1.1\r\nHost: x\r\nx-request-id: abc-123\r\nConnection: close\r\n\r\n";
    let (answer, _) = exchange(address, request).await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(answer.contains("METHOD_NOT_ALLOWED"), "{answer}");
    assert!(answer.contains("x-request-id: abc-123"), "the client's id is echoed: {answer}");
}

fn booking(appointment_type: &str, start: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "clinic_id": "00000000-0000-0000-0000-000000000001",
        "doctor_id": "00000000-0000-0000-0000-000000000002",
        "patient_id": "00000000-0000-0000-0000-000000000003",
        "appointment_type": appointment_type,
        "start": start,
        "end": start.replace("T09:00", "T09:30"),
    })
    .to_string();
    let head = format!(
        "POST /v1/appointments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    [head.into_bytes(), body.into_bytes()].concat()
}

#[tokio::test]
async fn nul_in_text_and_dates_outside_the_horizon_are_422_naming_the_field() {
    let address = start().await;
    let (answer, _) = exchange(address, &booking("x\u{0}", "2026-03-02T09:00:00Z")).await;
    assert!(answer.starts_with("HTTP/1.1 422"), "{answer}");
    assert!(answer.contains("\"field\":\"appointment_type\""), "{answer}");
    assert!(answer.contains("U+0000"), "{answer}");
    for start in ["9999-03-02T09:00:00Z", "1970-03-02T09:00:00Z"] {
        let (answer, _) = exchange(address, &booking("consult", start)).await;
        assert!(answer.starts_with("HTTP/1.1 422"), "{start}: {answer}");
        assert!(
            answer.contains("OUTSIDE_BOOKING_HORIZON") && answer.contains("\"field\":\"start\""),
            "{answer}"
        );
    }
    let availability = "GET /v1/rooms/availability?clinic_id=00000000-0000-0000-0000-000000000001\
                        &from=2026-03-02T08:00:00Z&to=2026-03-02T18:00:00Z&appointment_type=x%00 \
                        HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (answer, _) = exchange(address, availability.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 422"), "{answer}");
    assert!(answer.contains("appointment_type"), "{answer}");
}
