//! Issue #12 item 3: a 5xx is never silent. backend-core's router logs every server error at
//! error level inside a `request` span that carries the request id, and returns that id in
//! `x-request-id`, so an operator can find the log line of the answer a client reports.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::Request;
use backend_core::config::ApiConfig;
use backend_core::db::{BoxFuture, Conn, Db, DbError, Rows, SqlValue};
use backend_core::domain::{ManualClock, SequentialIds};
use backend_core::http::{ApiContext, api_router};
use chrono::TimeZone;
use tower::ServiceExt;

/// Every statement fails with an error backend-core does not expect (a 500).
struct BrokenDb;
struct BrokenConn;

impl Db for BrokenDb {
    fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn Conn>, DbError>> {
        Box::pin(async { Ok(Box::new(BrokenConn) as Box<dyn Conn>) })
    }
}

impl Conn for BrokenConn {
    fn execute<'a>(
        &'a mut self,
        _sql: &'a str,
        _params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<Rows, DbError>> {
        Box::pin(async { Err(DbError::new("42P01", "relation \"appointments\" does not exist")) })
    }
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_server_error_is_logged_with_the_request_id_it_returns() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber =
        tracing_subscriber::fmt().with_writer(move || sink.clone()).with_ansi(false).finish();
    let clock = ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap());
    let ctx = ApiContext::new(
        Arc::new(BrokenDb),
        Arc::new(clock),
        Arc::new(SequentialIds::new(1)),
        ApiConfig::default(),
        1,
    );
    let request = Request::get("/v1/rooms/availability?clinic_id=00000000-0000-0000-0000-000000000001&from=2026-03-02T08:00:00Z&to=2026-03-02T18:00:00Z")
        .body(Body::empty())
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let response = tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(api_router(ctx).oneshot(request)).unwrap()
    });
    assert_eq!(response.status().as_u16(), 500);
    let id = response.headers()["x-request-id"].to_str().unwrap().to_string();
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let error_lines: Vec<&str> = logs.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(!error_lines.is_empty(), "no error logged: {logs}");
    assert!(
        error_lines.iter().all(|l| l.contains(&format!("request_id={id}"))),
        "every error line names the request: {logs}"
    );
    assert!(logs.contains("42P01"), "the cause is logged (never sent to the client): {logs}");
}
