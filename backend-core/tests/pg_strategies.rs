//! Booking strategies against real PostgreSQL (skipped with a notice without DATABASE_URL).
//!
//! Goal: show on the real database what the simulation must later reproduce: every safe
//! strategy leaves no overlapping room bookings under 50 concurrent requests for the same
//! slot (the lock-based ones on the UNGUARDED schema, i.e. without the exclusion constraint's
//! help); `naive` and `rr-room-lock` double-book; `room-lock-unordered` deadlocks;
//! serializable retries on 40001; the idempotency key replays, rejects another body (422)
//! and reports in-flight duplicates (409).
//!
//! Method: each test gets its own schema, seeds one clinic with three rooms and 50 doctors and
//! patients through plain SQL, then drives `run_booking` directly from 50 tokio tasks.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use backend_core::booking::Strategy;
use backend_core::booking::transaction::{
    AppointmentRow, BookingPlan, Candidate, IdempotencyClaim, Placement, StoredAnswer, TxnOutcome,
    idempotency_lock_key, run_booking,
};
use backend_core::config::RetryPolicy;
use backend_core::db::pg::{PgDb, PgDbOptions};
use backend_core::db::schema::{SchemaVariant, migrate_pg_variant};
use backend_core::db::testing::PgTestSchema;
use backend_core::db::{Conn, Db, SqlValue};
use backend_core::error::Error;
use backend_core::metrics::Metrics;
use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

const CONCURRENT_BOOKINGS: usize = 50;
const ROOMS: usize = 3;

struct Fixture {
    clinic: Uuid,
    rooms: Vec<Uuid>,
    doctors: Vec<Uuid>,
    patients: Vec<Uuid>,
}

fn id(kind: u8, n: usize) -> Uuid {
    Uuid::from_u128(((kind as u128) << 64) | (n as u128 + 1))
}

async fn seed(db: &dyn Db) -> Fixture {
    let mut conn = db.acquire().await.unwrap();
    let clinic = id(1, 0);
    let mut statements: Vec<(&'static str, Vec<SqlValue>)> = vec![
        (
            "INSERT INTO clinics (id, name, body) VALUES ($1, 'Clinic', '{}')",
            vec![SqlValue::Uuid(clinic)],
        ),
        (
            "INSERT INTO appointment_types (clinic_id, key, body) \
             VALUES ($1, 'follow_up', '{}')",
            vec![SqlValue::Uuid(clinic)],
        ),
    ];
    let rooms: Vec<Uuid> = (0..ROOMS).map(|n| id(2, n)).collect();
    for room in &rooms {
        statements.push((
            "INSERT INTO rooms (id, clinic_id, name, room_type, status, body) \
             VALUES ($1, $2, 'Exam', 'exam', 'active', '{}')",
            vec![SqlValue::Uuid(*room), SqlValue::Uuid(clinic)],
        ));
    }
    let doctors: Vec<Uuid> = (0..CONCURRENT_BOOKINGS).map(|n| id(3, n)).collect();
    let patients: Vec<Uuid> = (0..CONCURRENT_BOOKINGS).map(|n| id(4, n)).collect();
    for (doctor, patient) in doctors.iter().zip(&patients) {
        statements.push((
            "INSERT INTO doctors (id, clinic_id, name, body) VALUES ($1, $2, 'Dr', '{}')",
            vec![SqlValue::Uuid(*doctor), SqlValue::Uuid(clinic)],
        ));
        statements.push((
            "INSERT INTO patients (id, body) VALUES ($1, '{}')",
            vec![SqlValue::Uuid(*patient)],
        ));
    }
    for (sql, params) in statements {
        conn.execute(sql, &params).await.unwrap();
    }
    Fixture { clinic, rooms, doctors, patients }
}

fn slot(round: usize) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = Utc.with_ymd_and_hms(2030, 3, 10, 8, 0, 0).unwrap() + Duration::hours(round as i64);
    (start, start + Duration::minutes(30))
}

fn row(fixture: &Fixture, n: usize, round: usize) -> AppointmentRow {
    let (starts_at, ends_at) = slot(round);
    AppointmentRow {
        id: Uuid::from_u128((9u128 << 96) | ((round as u128) << 32) | n as u128),
        clinic_id: fixture.clinic,
        doctor_id: fixture.doctors[n],
        patient_id: fixture.patients[n],
        appointment_type: "follow_up".into(),
        starts_at,
        ends_at,
        infectious: false,
        patient_gender: None,
        policy_version: 1,
        created_at: starts_at - Duration::days(1),
    }
}

/// How the requests of a round rank the rooms.
#[derive(Clone, Copy, Debug)]
enum Ranking {
    /// Request n ranks the first `rooms` rooms rotated by n, so rank orders differ.
    Rotated(usize),
    /// Every request ranks the first `rooms` rooms in one order, as the allocator does for
    /// similar requests: all of them try the same best room first.
    Same(usize),
    /// Request n tries only room n mod `ROOMS`: requests of different rooms share no room
    /// lock, so they reach their INSERTs concurrently.
    Own,
}

fn candidates(fixture: &Fixture, n: usize, ranking: Ranking) -> Vec<Candidate> {
    let (rooms, shift) = match ranking {
        Ranking::Rotated(rooms) => (rooms, n),
        Ranking::Same(rooms) => (rooms, 0),
        Ranking::Own => {
            let room_id = fixture.rooms[n % ROOMS];
            let score = "0hard/0medium/0soft".into();
            return vec![Candidate { room_id, turnover_minutes: 5, score }];
        }
    };
    (0..rooms)
        .map(|k| Candidate {
            room_id: fixture.rooms[(shift + k) % rooms],
            turnover_minutes: 5,
            score: "0hard/0medium/0soft".into(),
        })
        .collect()
}

fn render_created(placement: &Placement) -> StoredAnswer {
    let body = format!("{{\"room\":{:?}}}", placement.room_id.map(|r| r.to_string()));
    StoredAnswer { status_code: 201, body }
}

struct RoundResult {
    booked: usize,
    all_taken: usize,
    exhausted: usize,
    /// 409 DOCTOR_UNAVAILABLE.
    doctor_busy: usize,
}

/// `bookings` concurrent bookings of one slot, each ranking rooms by `ranking`.
async fn concurrent_round(
    db: Arc<dyn Db>,
    fixture: &Arc<Fixture>,
    strategy: Strategy,
    (round, bookings): (usize, usize),
    ranking: Ranking,
    metrics: &Arc<Metrics>,
) -> RoundResult {
    let retry = RetryPolicy { retries_max: 10, backoff_base_ms: 2, backoff_cap_ms: 40 };
    let mut tasks = Vec::new();
    for n in 0..bookings {
        let (db, fixture, metrics) = (db.clone(), fixture.clone(), metrics.clone());
        let retry = retry.clone();
        tasks.push(tokio::spawn(async move {
            let rng = Mutex::new(ChaCha8Rng::seed_from_u64(n as u64));
            let row = row(&fixture, n, round);
            let candidates = candidates(&fixture, n, ranking);
            let plan = BookingPlan {
                strategy,
                row: &row,
                candidates: &candidates,
                book_without_room: false,
                idempotency: None,
                render_created: &render_created,
            };
            let mut conn = db.acquire().await.expect("acquire");
            run_booking(conn.as_mut(), &plan, &retry, &rng, &metrics).await
        }));
    }
    let mut result = RoundResult { booked: 0, all_taken: 0, exhausted: 0, doctor_busy: 0 };
    for task in tasks {
        match task.await.unwrap() {
            Ok(report) => match report.outcome {
                TxnOutcome::Committed(_) => result.booked += 1,
                TxnOutcome::AllTaken => result.all_taken += 1,
                other => panic!("{strategy}: unexpected outcome {other:?}"),
            },
            Err(Error::RetriesExhausted { .. }) => result.exhausted += 1,
            Err(error) if error.code() == "DOCTOR_UNAVAILABLE" => result.doctor_busy += 1,
            Err(other) => panic!("{strategy}: unexpected error {other:?}"),
        }
    }
    result
}

/// Pairs of room-occupying appointments in one room whose blocked ranges overlap.
async fn overlapping_pairs(db: &dyn Db) -> usize {
    let mut conn = db.acquire().await.unwrap();
    let rows = conn
        .execute(
            "SELECT room_id, starts_at, blocked_until FROM appointments \
             WHERE status IN ('held', 'booked', 'checked_in') AND room_id IS NOT NULL \
             ORDER BY room_id, starts_at",
            &[],
        )
        .await
        .unwrap();
    let mut pairs = 0;
    for (i, a) in rows.rows.iter().enumerate() {
        for b in &rows.rows[i + 1..] {
            if a[0] == b[0] && b[1] < a[2] && a[1] < b[2] {
                pairs += 1;
            }
        }
    }
    pairs
}

async fn assert_safe(strategy: Strategy, variant: SchemaVariant) {
    safe_round(strategy, variant).await;
}

/// One round of [`CONCURRENT_BOOKINGS`] concurrent bookings for three rooms on a fresh
/// schema, checked safe; returns its 40001 retries (`None`: no PostgreSQL).
async fn safe_round(strategy: Strategy, variant: SchemaVariant) -> Option<u64> {
    let tag = format!("safe_{}", strategy.name().replace('-', "_"));
    let schema = PgTestSchema::create(&tag, variant).await?;
    let db: Arc<dyn Db> = Arc::new(schema.db.clone());
    let fixture = Arc::new(seed(db.as_ref()).await);
    let metrics = Arc::new(Metrics::default());
    let started = std::time::Instant::now();
    let bookings = (0, CONCURRENT_BOOKINGS);
    let result = concurrent_round(
        db.clone(),
        &fixture,
        strategy,
        bookings,
        Ranking::Rotated(ROOMS),
        &metrics,
    )
    .await;
    let elapsed = started.elapsed();
    let m = metrics.snapshot();
    eprintln!(
        "figure: {strategy} ({}): 50 concurrent: booked {}, all-taken {}, exhausted {}, \
         retries 40001={} 40P01={} 23P01={}, {elapsed:?}",
        variant.name(),
        result.booked,
        result.all_taken,
        result.exhausted,
        m.retries_serialization,
        m.retries_deadlock,
        m.retries_room_taken
    );
    let pairs = overlapping_pairs(db.as_ref()).await;
    schema.drop_schema().await;
    assert_eq!(pairs, 0, "{strategy} on {} double-booked", variant.name());
    assert_eq!(result.booked + result.all_taken + result.exhausted, CONCURRENT_BOOKINGS);
    assert!(result.booked <= ROOMS);
    // Three rooms, one slot: exactly three bookings succeed. Under serializable some requests
    // may run out of retries, but never all of them.
    if strategy == Strategy::Serializable {
        assert!(result.booked >= 1);
    } else {
        assert_eq!(result.booked, ROOMS, "{strategy}: every free room should be booked");
        assert_eq!(result.exhausted, 0, "{strategy}: no retries should run out");
    }
    Some(m.retries_serialization)
}

/// Rounds at most for serializable to show its 40001 retries: on a machine loaded by the
/// rest of the suite, one round's 50 transactions once ran one after another (0 retries).
const SERIALIZABLE_ROUNDS_MAX: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exclusion_is_safe_with_the_constraint() {
    assert_safe(Strategy::Exclusion, SchemaVariant::Guarded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn room_lock_is_safe_without_the_constraint() {
    assert_safe(Strategy::RoomLock, SchemaVariant::Unguarded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn advisory_is_safe_without_the_constraint() {
    assert_safe(Strategy::Advisory, SchemaVariant::Unguarded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serializable_is_safe_without_the_constraint_and_retries_40001() {
    // Every round must be safe; the retries must show in one of them.
    for _ in 0..SERIALIZABLE_ROUNDS_MAX {
        let Some(retries) = safe_round(Strategy::Serializable, SchemaVariant::Unguarded).await
        else {
            return;
        };
        if retries > 0 {
            return;
        }
    }
    panic!("no 40001 retry in {SERIALIZABLE_ROUNDS_MAX} rounds of 50 concurrent bookings");
}

/// A throw-away database `roomsim_dl_<tag>_<pid>_<n>`. `pg_stat_database.deadlocks` counts
/// per database and the other PostgreSQL tests share the URL's database in parallel, so only
/// a database of its own gives a deadlock figure that belongs to one test.
struct DedicatedDatabase {
    name: String,
    admin: PgDb,
    db: PgDb,
}

static DATABASE_COUNTER: AtomicU32 = AtomicU32::new(0);

/// `postgres://user@host:port/db?opts` with the database path replaced by `database`.
fn url_with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_at = base.find("://").map_or(0, |i| i + 3);
    let prefix = match base[authority_at..].find('/') {
        Some(slash) => &base[..authority_at + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{prefix}/{database}?{query}"),
        None => format!("{prefix}/{database}"),
    }
}

fn pool_options(connections_max: u32) -> PgDbOptions {
    PgDbOptions {
        connections_max,
        acquire_timeout: StdDuration::from_secs(120),
        ..PgDbOptions::default()
    }
}

impl DedicatedDatabase {
    /// A migrated database of `variant`, or `None` (after a notice) without `DATABASE_URL`.
    async fn create(tag: &str, variant: SchemaVariant) -> Option<DedicatedDatabase> {
        let Ok(url) = std::env::var("DATABASE_URL") else {
            eprintln!("notice: DATABASE_URL is not set; skipping PostgreSQL test `{tag}`");
            return None;
        };
        let counter = DATABASE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("roomsim_dl_{tag}_{}_{counter}", std::process::id());
        let admin = PgDb::connect(&url, &pool_options(1)).await.expect("connect to DATABASE_URL");
        let mut conn = admin.acquire().await.expect("admin session");
        conn.execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), &[]).await.unwrap();
        conn.execute(&format!("CREATE DATABASE {name}"), &[]).await.unwrap();
        drop(conn);
        let db = PgDb::connect(&url_with_database(&url, &name), &pool_options(25)).await.unwrap();
        let mut conn = db.acquire().await.unwrap();
        conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist", &[]).await.unwrap();
        drop(conn);
        migrate_pg_variant(db.pool(), variant).await.expect("migrate the dedicated database");
        Some(DedicatedDatabase { name, admin, db })
    }

    /// The database's `pg_stat_database.deadlocks`.
    async fn deadlocks(&self) -> i64 {
        let mut conn = self.admin.acquire().await.unwrap();
        let sql = "SELECT deadlocks FROM pg_stat_database WHERE datname = $1";
        let rows = conn.execute(sql, &[SqlValue::Text(self.name.clone())]).await.unwrap();
        match rows.rows.first().and_then(|row| row.first()) {
            Some(SqlValue::Int(count)) => *count,
            other => panic!("pg_stat_database.deadlocks of {}: {other:?}", self.name),
        }
    }

    /// Closes every session and waits until PostgreSQL has let them go: a backend flushes
    /// its pending statistics (the deadlock count among them) when it exits.
    async fn close_sessions(&self) {
        self.db.pool().close().await;
        let mut conn = self.admin.acquire().await.unwrap();
        let sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1";
        for _ in 0..200 {
            let rows = conn.execute(sql, &[SqlValue::Text(self.name.clone())]).await.unwrap();
            if rows.rows[0][0] == SqlValue::Int(0) {
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
        // A session leaves pg_stat_activity just before it flushes its statistics.
        tokio::time::sleep(StdDuration::from_millis(500)).await;
    }

    async fn drop_database(self) {
        let mut conn = self.admin.acquire().await.unwrap();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        conn.execute(&sql, &[]).await.unwrap();
    }
}

/// Index of the extra doctor and patient of the holder transaction.
const HOLDER: usize = 1_000;

async fn seed_holder(db: &dyn Db, fixture: &Fixture, (doctor, patient): (Uuid, Uuid)) {
    let mut conn = db.acquire().await.unwrap();
    let sql = "INSERT INTO doctors (id, clinic_id, name, body) VALUES ($1, $2, 'Dr', '{}')";
    conn.execute(sql, &[SqlValue::Uuid(doctor), SqlValue::Uuid(fixture.clinic)]).await.unwrap();
    let sql = "INSERT INTO patients (id, body) VALUES ($1, '{}')";
    conn.execute(sql, &[SqlValue::Uuid(patient)]).await.unwrap();
}

/// Begins a booking of the best room, to stay uncommitted while the round's requests arrive
/// and then roll back (a client that went away): every request meets it, waits for it, and
/// they all resume at once, which is when concurrent conflicting inserts meet.
async fn hold_best_room(
    db: &dyn Db,
    fixture: &Fixture,
    people: (Uuid, Uuid),
    round: usize,
) -> Box<dyn Conn> {
    let mut conn = db.acquire().await.unwrap();
    let (starts_at, ends_at) = slot(round);
    conn.execute("BEGIN", &[]).await.unwrap();
    conn.execute(
        "INSERT INTO appointments (id, clinic_id, room_id, doctor_id, patient_id, \
         appointment_type, starts_at, ends_at, turnover_minutes, blocked_until, status, \
         created_at) VALUES ($1, $2, $3, $4, $5, 'follow_up', $6, $7, 0, $7, 'booked', $6)",
        &[
            SqlValue::Uuid(Uuid::from_u128((8u128 << 96) | round as u128)),
            SqlValue::Uuid(fixture.clinic),
            SqlValue::Uuid(fixture.rooms[0]),
            SqlValue::Uuid(people.0),
            SqlValue::Uuid(people.1),
            SqlValue::Timestamp(starts_at),
            SqlValue::Timestamp(ends_at),
        ],
    )
    .await
    .unwrap();
    conn
}

/// What the concurrent bookings of a deadlock test compete for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contention {
    /// Distinct doctors and patients; every request ranks the rooms in the same order.
    Room,
    /// One doctor for every request (distinct patients); each request tries its own room
    /// (`Ranking::Own`), so no room lock orders the INSERTs against the doctor's constraint.
    Doctor,
}

/// `rounds` rounds of 50 concurrent bookings of one slot in a database of their own, the best
/// room (and, for `Contention::Doctor`, the doctor) held by a transaction that rolls back
/// (`hold_best_room`); asserts PostgreSQL counted no deadlock there.
async fn assert_no_deadlocks(strategy: Strategy, rounds: usize, contention: Contention) {
    let tag = format!("{}_{contention:?}", strategy.name().replace('-', "_")).to_lowercase();
    let variant = strategy.schema_variant();
    let Some(dedicated) = DedicatedDatabase::create(&tag, variant).await else { return };
    let db: Arc<dyn Db> = Arc::new(dedicated.db.clone());
    let mut fixture = seed(db.as_ref()).await;
    let mut holder_ids = (id(3, HOLDER), id(4, HOLDER));
    seed_holder(db.as_ref(), &fixture, holder_ids).await;
    let ranking = match contention {
        Contention::Room => Ranking::Same(ROOMS),
        Contention::Doctor => {
            fixture.doctors = vec![fixture.doctors[0]; CONCURRENT_BOOKINGS];
            holder_ids.0 = fixture.doctors[0];
            Ranking::Own
        }
    };
    let fixture = Arc::new(fixture);
    let metrics = Arc::new(Metrics::default());
    let before = dedicated.deadlocks().await;
    let (mut booked, mut doctor_busy, mut room_taken, mut exhausted) = (0, 0, 0, 0);
    for round in 0..rounds {
        let bookings = (round, CONCURRENT_BOOKINGS);
        let mut holder = hold_best_room(db.as_ref(), &fixture, holder_ids, round).await;
        let result = concurrent_round(db.clone(), &fixture, strategy, bookings, ranking, &metrics);
        let release = async {
            tokio::time::sleep(StdDuration::from_millis(300)).await;
            holder.execute("ROLLBACK", &[]).await.unwrap();
        };
        let result = tokio::join!(result, release).0;
        booked += result.booked;
        doctor_busy += result.doctor_busy;
        room_taken += result.all_taken;
        exhausted += result.exhausted;
    }
    let pairs = overlapping_pairs(db.as_ref()).await;
    dedicated.close_sessions().await;
    let delta = dedicated.deadlocks().await - before;
    dedicated.drop_database().await;
    let m = metrics.snapshot();
    eprintln!(
        "figure: {strategy} ({}, {contention:?} contention): {rounds} rounds x \
         {CONCURRENT_BOOKINGS} concurrent: booked {booked}, doctor busy {doctor_busy}, \
         room taken {room_taken}, \
         pg_stat_database.deadlocks delta {delta}, client 40P01 retries {}, exhausted {}",
        variant.name(),
        m.retries_deadlock,
        m.retries_exhausted,
    );
    assert_eq!(pairs, 0, "{strategy} double-booked");
    assert_eq!(delta, 0, "{strategy}: PostgreSQL counted {delta} deadlocks");
    assert_eq!(m.retries_deadlock, 0, "{strategy}: clients saw 40P01");
    assert_eq!(exhausted, 0, "{strategy}: requests ran out of retries");
    let booked_per_round = if contention == Contention::Room { ROOMS } else { 1 };
    assert_eq!(booked, rounds * booked_per_round, "{strategy}: every free room should be booked");
    if contention == Contention::Doctor {
        // The others of a round are refused: 409 doctor, or (checked first) the winner's room.
        let refused = rounds * (CONCURRENT_BOOKINGS - 1);
        assert_eq!(doctor_busy + room_taken, refused, "{strategy}: refused bookings");
        assert!(doctor_busy >= refused / 2, "{strategy}: mostly 409 doctor, got {doctor_busy}");
    }
}

/// The validate helper saw 1–6 deadlocks per run of 50 concurrent `exclusion` bookings: two
/// plain INSERTs of overlapping rows each insert their index entry, then each waits for the
/// other while checking the constraint. Before the ON CONFLICT fix the first round alone
/// counted 214 deadlocks here and did not finish within the pool's acquire timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exclusion_causes_no_deadlocks() {
    assert_no_deadlocks(Strategy::Exclusion, 10, Contention::Room).await;
}

/// The same for one doctor booked by 50 requests into different rooms: the doctor's
/// exclusion constraint is an ON CONFLICT arbiter too, so this is 409, never a deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exclusion_same_doctor_is_409_without_deadlocks() {
    assert_no_deadlocks(Strategy::Exclusion, 5, Contention::Doctor).await;
}

/// Runs up to `rounds_max` rounds of 50 concurrent single-room bookings of a fresh slot and
/// returns the round in which the room was first double-booked (outer `None`: skipped).
async fn first_double_booking(strategy: Strategy, rounds_max: usize) -> Option<Option<usize>> {
    let tag = format!("broken_{}", strategy.name().replace('-', "_"));
    let schema = PgTestSchema::create(&tag, SchemaVariant::Unguarded).await?;
    let db: Arc<dyn Db> = Arc::new(schema.db.clone());
    let fixture = Arc::new(seed(db.as_ref()).await);
    let metrics = Arc::new(Metrics::default());
    let mut found = None;
    for round in 0..rounds_max {
        let one_room = Ranking::Rotated(1);
        concurrent_round(
            db.clone(),
            &fixture,
            strategy,
            (round, CONCURRENT_BOOKINGS),
            one_room,
            &metrics,
        )
        .await;
        let pairs = overlapping_pairs(db.as_ref()).await;
        if pairs > 0 {
            eprintln!("figure: {strategy}: {pairs} overlapping pairs in round {round}");
            found = Some(round);
            break;
        }
    }
    schema.drop_schema().await;
    Some(found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn naive_double_books_on_postgres() {
    let Some(found) = first_double_booking(Strategy::Naive, 20).await else { return };
    assert!(found.is_some(), "naive never double-booked in 20 rounds of 50 concurrent bookings");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rr_room_lock_double_books_on_postgres() {
    let Some(found) = first_double_booking(Strategy::RrRoomLock, 20).await else { return };
    assert!(found.is_some(), "rr-room-lock never double-booked in 20 rounds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn room_lock_unordered_deadlocks_on_postgres() {
    let Some(schema) = PgTestSchema::create("broken_unordered", SchemaVariant::Unguarded).await
    else {
        return;
    };
    let db: Arc<dyn Db> = Arc::new(schema.db.clone());
    let fixture = Arc::new(seed(db.as_ref()).await);
    let metrics = Arc::new(Metrics::default());
    let mut deadlocks = 0;
    // Few bookings per round: PostgreSQL resolves each lock cycle only after deadlock_timeout
    // (1 s), so 50 at once would spend minutes waiting.
    for round in 0..10 {
        let strategy = Strategy::RoomLockUnordered;
        let ranking = Ranking::Rotated(ROOMS);
        concurrent_round(db.clone(), &fixture, strategy, (round, 6), ranking, &metrics).await;
        let snapshot = metrics.snapshot();
        deadlocks = snapshot.retries_deadlock + snapshot.retries_exhausted;
        if deadlocks > 0 {
            break;
        }
    }
    let pairs = overlapping_pairs(db.as_ref()).await;
    schema.drop_schema().await;
    eprintln!("figure: room-lock-unordered: {deadlocks} deadlock retries/exhaustions");
    assert!(deadlocks > 0, "room-lock-unordered never deadlocked in 10 rounds");
    assert_eq!(pairs, 0, "unordered locking deadlocks but still never double-books");
}

async fn book_with_key(
    db: &dyn Db,
    fixture: &Fixture,
    n: usize,
    claim: &IdempotencyClaim,
) -> Result<TxnOutcome, Error> {
    let row = row(fixture, n, 0);
    let candidates = candidates(fixture, n, Ranking::Rotated(ROOMS));
    let plan = BookingPlan {
        strategy: Strategy::Exclusion,
        row: &row,
        candidates: &candidates,
        book_without_room: false,
        idempotency: Some(claim),
        render_created: &render_created,
    };
    let rng = Mutex::new(ChaCha8Rng::seed_from_u64(1));
    let mut conn = db.acquire().await.unwrap();
    let retry = RetryPolicy::default();
    run_booking(conn.as_mut(), &plan, &retry, &rng, &Metrics::default()).await.map(|r| r.outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_replays_rejects_other_bodies_and_reports_in_flight() {
    let Some(schema) = PgTestSchema::create("idempotency", SchemaVariant::Guarded).await else {
        return;
    };
    let db = schema.db.clone();
    let fixture = seed(&db).await;
    let claim = IdempotencyClaim { key: "key-1".into(), request_hash: "hash-a".into() };

    let first = book_with_key(&db, &fixture, 0, &claim).await.unwrap();
    let TxnOutcome::Committed(placement) = first else { panic!("first booking: {first:?}") };
    let StoredAnswer { status_code: status, body } = render_created(&placement);
    // Same key, same body: the stored response, and no second appointment.
    let replay = book_with_key(&db, &fixture, 1, &claim).await.unwrap();
    assert_eq!(replay, TxnOutcome::Replay { status_code: status, body });
    // Same key, other body: 422.
    let other = IdempotencyClaim { key: "key-1".into(), request_hash: "hash-b".into() };
    let mismatch = book_with_key(&db, &fixture, 2, &other).await;
    assert!(matches!(mismatch, Err(Error::IdempotencyKeyReused)), "{mismatch:?}");
    // Same key while another transaction holds it: 409 in flight.
    let busy = IdempotencyClaim { key: "key-2".into(), request_hash: "hash-a".into() };
    let mut holder = db.acquire().await.unwrap();
    holder.execute("BEGIN", &[]).await.unwrap();
    let lock = SqlValue::Int(idempotency_lock_key("key-2"));
    holder.execute("SELECT pg_advisory_xact_lock($1)", &[lock]).await.unwrap();
    let in_flight = book_with_key(&db, &fixture, 3, &busy).await;
    assert!(matches!(in_flight, Err(Error::IdempotencyInFlight)), "{in_flight:?}");
    holder.execute("ROLLBACK", &[]).await.unwrap();
    drop(holder);
    let after = book_with_key(&db, &fixture, 3, &busy).await.unwrap();
    assert!(matches!(after, TxnOutcome::Committed(_)), "{after:?}");

    let mut conn = db.acquire().await.unwrap();
    let count = conn.execute("SELECT count(*) FROM appointments", &[]).await.unwrap();
    assert_eq!(count.rows[0][0], SqlValue::Int(2), "replays must not book again");
    drop(conn);
    schema.drop_schema().await;
}

/// The lock-based safe strategies lock every candidate room in one order before inserting.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_strategies_cause_no_deadlocks() {
    for strategy in [Strategy::RoomLock, Strategy::Advisory] {
        assert_no_deadlocks(strategy, 3, Contention::Room).await;
    }
}

/// 50 concurrent bookings of ONE doctor, each in its own room, behind a held booking of that
/// doctor that rolls back, under every safe strategy besides `exclusion` (tested above): room
/// locks do not order these INSERTs and `serializable` takes none, so with plain INSERTs they
/// met on `no_doctor_overlap` and deadlocked; with INSERT … ON CONFLICT DO NOTHING exactly
/// one books per round and the 49 others get 409 DOCTOR_UNAVAILABLE, with no deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn safe_strategies_same_doctor_cause_no_deadlocks() {
    for strategy in [Strategy::RoomLock, Strategy::Advisory, Strategy::Serializable] {
        assert_no_deadlocks(strategy, 3, Contention::Doctor).await;
    }
}
