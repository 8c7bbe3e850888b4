//! Issue #12 on real PostgreSQL, through HTTP: clients that give up mid-request against
//! `roomsim serve` (in-process, its own schema). Afterwards no pooled session is inside a
//! transaction, /healthz answers 200, and retrying every booking with its Idempotency-Key
//! books each exactly once: none lost, none duplicated. Skips with a notice without
//! `DATABASE_URL`.

use std::time::Duration;

use backend_core::db::schema::SchemaVariant;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use real::database::DbTarget;
use real::serve::{ServeConfig, Server};
use real::setup::{SetupConfig, setup};
use sqlx::{Connection, Executor, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BOOKINGS: usize = 60;
const POOL: u32 = 4;

fn request(body: &str, key: &str) -> Vec<u8> {
    format!(
        "POST /v1/appointments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Idempotency-Key: {key}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Sends and reads the whole answer (or gives up after `abort_after`, dropping the socket).
async fn send(
    address: std::net::SocketAddr,
    bytes: Vec<u8>,
    abort_after: Option<Duration>,
) -> Option<String> {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(&bytes).await.unwrap();
    let mut out = Vec::new();
    match abort_after {
        Some(limit) => match tokio::time::timeout(limit, stream.read_to_end(&mut out)).await {
            Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
            Err(_) => None,
        },
        None => {
            stream.read_to_end(&mut out).await.unwrap();
            Some(String::from_utf8_lossy(&out).into_owned())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborting_clients_leave_no_transaction_and_lose_no_booking() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("NOTICE: DATABASE_URL is not set; skipping the real-PostgreSQL test");
        return;
    };
    let schema = format!("t_abort_{}", std::process::id());
    let mut admin = PgConnection::connect(&url).await.unwrap();
    let reset = format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}");
    admin.execute(sqlx::AssertSqlSafe(reset)).await.unwrap();
    let target = DbTarget::new(&url, Some(&schema)).unwrap();
    let report = setup(&SetupConfig {
        target: target.clone(),
        scenario: "storm".into(),
        variant: SchemaVariant::Guarded,
        fixture_path: None,
    })
    .await
    .unwrap();
    let strategy = "exclusion".parse().unwrap();
    let server = Server::start(&ServeConfig::ephemeral(&target, POOL, strategy, 1)).await.unwrap();
    let f = &report.fixture;
    let bodies: Vec<String> = (0..BOOKINGS)
        .map(|i| {
            // Four start times an hour apart (turnover never joins them), 15 bookings each on
            // 30 rooms: contended, but every booking fits, so each must end up booked once.
            let start = 9 * 60 + 60 * (i % 4) as i64;
            let day = f.first_day.and_hms_opt(0, 0, 0).unwrap().and_utc();
            let at = |min: i64| (day + chrono::Duration::minutes(min)).to_rfc3339();
            serde_json::json!({
                "clinic_id": f.clinic_id,
                "doctor_id": f.doctor_ids[i % f.doctor_ids.len()],
                "patient_id": f.patient_ids[i % f.patient_ids.len()],
                "appointment_type": f.appointment_types[0],
                "start": at(start),
                "end": at(start + 30),
                "fallback": "suggest",
            })
            .to_string()
        })
        .collect();
    // Every booking first sent by a client that gives up after 0-15 ms, all at once.
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut first = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let limit = Duration::from_micros(rng.random_range(0..15_000));
        let bytes = request(body, &format!("abort-{i}"));
        first.push(tokio::spawn(send(server.address, bytes, Some(limit))));
    }
    for task in first {
        task.await.unwrap();
    }
    // Abandoned handlers are dropped; give closed sessions a moment to end.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // What the next borrowers see: take every pooled session at once; none is in a
    // transaction (two autocommit statements get two transaction ids; inside a block, one).
    let mut held = Vec::new();
    for _ in 0..POOL {
        held.push(server.db.pool().acquire().await.unwrap());
    }
    for conn in held.iter_mut() {
        let xid = "SELECT txid_current()";
        let a: i64 = sqlx::query_scalar(xid).fetch_one(&mut **conn).await.unwrap();
        let b: i64 = sqlx::query_scalar(xid).fetch_one(&mut **conn).await.unwrap();
        assert_ne!(a, b, "a pooled session is inside a leaked transaction");
    }
    drop(held);
    let health = send(
        server.address,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        None,
    )
    .await
    .unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    // Every client retries with its key until it has an answer: each booking exactly once.
    let mut created = 0;
    for (i, body) in bodies.iter().enumerate() {
        let answer =
            send(server.address, request(body, &format!("abort-{i}")), None).await.unwrap();
        let status: u16 = answer[9..12].parse().unwrap();
        assert_eq!(status, 201, "booking {i}: {answer}");
        created += 1;
    }
    let mut conn = server.db.pool().acquire().await.unwrap();
    let active = "SELECT count(*) FROM appointments WHERE status <> 'cancelled'";
    let rows: i64 = sqlx::query_scalar(active).fetch_one(&mut *conn).await.unwrap();
    assert_eq!(rows as u64, created, "rows = bookings answered 201 (none lost, none twice)");
    let keys: i64 = sqlx::query_scalar("SELECT count(DISTINCT key) FROM idempotency_keys")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(keys as usize, BOOKINGS, "every request's key was recorded once");
    drop(conn);
    server.stop().await;
    let drop_sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    admin.execute(sqlx::AssertSqlSafe(drop_sql)).await.unwrap();
}
