//! The booking transaction of each [`Strategy`], with bounded, jittered retries.
//!
//! WHAT: [`run_booking`] takes a ranked list of candidate rooms (computed by the allocator from
//! a snapshot read outside the transaction) and runs one strategy's transaction through the
//! [`Conn`] seam: idempotency claim, locks, in-transaction check, INSERT, the idempotency
//! record, COMMIT. Serialization failures (40001), deadlocks (40P01), a lost idempotency-key
//! race (23505) and, for the non-exclusion strategies, an exclusion violation met anyway
//! (23P01, only possible on the guarded schema) re-run the whole transaction after a
//! full-jitter backoff drawn from the injected seeded RNG; at most `retries_max` times.
//!
//! THE STATEMENTS (RC = READ COMMITTED, RR = REPEATABLE READ):
//! ```text
//! exclusion            BEGIN RC; [idem]; per candidate: INSERT … ON CONFLICT DO NOTHING
//!                      (INSERT 0 0 → participants? → 409 doctor/patient, else next room)
//! room-lock            BEGIN RC; [idem]; rooms FOR NO KEY UPDATE in id order; check; INSERT*
//! serializable         BEGIN SERIALIZABLE; [idem]; check; INSERT*
//! advisory             BEGIN RC; [idem]; pg_advisory_xact_lock(room key), key order; check;
//!                      INSERT*
//! naive (BROKEN)       BEGIN RC; [idem]; check; INSERT                       → double-books
//! rr-room-lock (BROKEN) BEGIN RR; [idem]; rooms FOR NO KEY UPDATE in id order; check; INSERT
//!                      → the snapshot is taken by the first statement, before the lock wait,
//!                        so the check misses the booking that held the lock: double-books
//! room-lock-unordered (BROKEN) as room-lock but locks in SCORE order      → deadlocks (40P01)
//! [idem]  = SELECT pg_try_advisory_xact_lock(key hash) (false → 409 in flight);
//!           SELECT … FROM idempotency_keys WHERE key = $1 (found → replay or 422)
//! check   = SELECT count(*) … WHERE room_id = $1 AND status IN (room-occupying)
//!           AND starts_at < $blocked_until AND blocked_until > $starts_at
//! INSERT* = INSERT … ON CONFLICT DO NOTHING (INSERT 0 0 → participants? → 409 doctor/patient,
//!           else the room constraint matched: re-run the whole transaction, as a 23P01 did)
//! ```
//! The locking strategies lock every candidate up front, in one global order, so two bookings
//! never wait on each other in a cycle; only the BROKEN unordered variant breaks that order.
//!
//! WHY `exclusion` INSERTS WITH ON CONFLICT DO NOTHING: a plain INSERT puts its index entry
//! in first and checks the EXCLUDE constraints afterwards, waiting for any in-progress
//! overlapping row. Two truly concurrent overlapping INSERTs therefore each wait for the
//! other: a deadlock (40P01 "while checking exclusion constraint"), which PostgreSQL breaks
//! only after `deadlock_timeout`; 50 requests for one best room produced hundreds of them once
//! a slow transaction held that room (`tests/pg_strategies.rs`, `exclusion_causes_no_
//! deadlocks`). ON CONFLICT makes the INSERT speculative: it first waits for conflicting
//! in-progress rows WITHOUT having inserted anything, and if a concurrent row appears after
//! its own insertion it withdraws its row and starts over instead of waiting (PostgreSQL's
//! livelock-preventing wait, execIndexing.c "unprincipled deadlocks"). A booking thus never
//! waits while it holds a row another booking waits for. At READ COMMITTED a conflict with a
//! committed row is `INSERT 0 0`, not an error, so no savepoint is needed. The constraints
//! stay the safety net: they are what the INSERT is judged against.
//!
//! The ON CONFLICT has NO target on purpose: every unique and exclusion constraint of the
//! table becomes an arbiter, so two concurrent bookings of one doctor (or patient) in
//! different rooms cannot deadlock on `no_doctor_overlap` either. The price is that
//! `INSERT 0 0` does not say which constraint matched, so the booking asks (`busy_participant`,
//! a fresh READ COMMITTED snapshot that sees the committed conflicting row): an overlapping
//! appointment of the doctor or patient is the 409 the constraint's 23P01 used to give; anything
//! else is the room (or a duplicate id, which fresh UUIDs rule out) and the next room is tried.
//! If the conflicting row is cancelled between the INSERT and that query, the doctor or patient
//! is free again and trying the next room is still right.
//!
//! EVERY SAFE STRATEGY INSERTS THAT WAY: the room locks of `room-lock` and `advisory` only
//! serialise bookings of the same rooms, and `serializable` takes none, so two bookings of one
//! doctor (or patient) in different rooms still INSERT concurrently against
//! `no_doctor_overlap` / `no_patient_overlap`, and a plain INSERT deadlocks there exactly as
//! above (`tests/pg_strategies.rs`, `safe_strategies_same_doctor_cause_no_deadlocks`). Their
//! room check already ran under their own guard, so an `INSERT 0 0` without a busy participant
//! means the room constraint (guarded schema only) caught what the guard missed: the whole
//! transaction is re-run, as the 23P01 was. Under SERIALIZABLE, a conflicting row the
//! snapshot cannot see makes the speculative INSERT fail with 40001 (retried) rather than
//! answer `INSERT 0 0`, so the participant query always sees the row that matched. The
//! BROKEN strategies keep their plain INSERTs: they exist to fail.
//!
//! NOT MODELLED: statement or lock timeouts (the pool's acquire timeout bounds waiting for a
//! session; PostgreSQL's deadlock detector bounds lock cycles). A connection lost during
//! COMMIT is reported as `DatabaseUnavailable` (outcome unknown), never retried blindly.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use uuid::Uuid;

use super::Strategy;
use super::retry::{RetryPolicy, backoff};
use crate::db::{Conn, DbError, Rows, SqlValue};
use crate::error::Error;
use crate::metrics::{Metrics, RetryCause};

/// The appointment to insert; `room_id`, `turnover_minutes` and `score` come from the
/// candidate that wins (or stay empty for `room_pending`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppointmentRow {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub doctor_id: Uuid,
    pub patient_id: Uuid,
    pub appointment_type: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub infectious: bool,
    pub patient_gender: Option<String>,
    pub policy_version: i64,
    pub created_at: DateTime<Utc>,
}

/// One ranked room to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub room_id: Uuid,
    /// Minutes the room stays blocked after the visit (depends on the room and the patient).
    pub turnover_minutes: u32,
    /// The rules engine's score, stored for audit (`"0hard/0medium/-14soft"`).
    pub score: String,
}

impl Candidate {
    pub fn blocked_until(&self, ends_at: DateTime<Utc>) -> DateTime<Utc> {
        ends_at + chrono::Duration::minutes(i64::from(self.turnover_minutes))
    }
}

/// The Idempotency-Key of the request and the hash of its canonical body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyClaim {
    pub key: String,
    pub request_hash: String,
}

/// Where the booking landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Index into the candidate list, or `None` for `room_pending`.
    pub candidate_index: Option<usize>,
    pub room_id: Option<Uuid>,
    pub turnover_minutes: u32,
}

/// Everything one booking transaction needs.
pub struct BookingPlan<'a> {
    pub strategy: Strategy,
    pub row: &'a AppointmentRow,
    /// Ranked, best first; at most `candidates_max` long.
    pub candidates: &'a [Candidate],
    /// Fallback `book_without_room`: when every candidate is taken, insert `room_pending`.
    pub book_without_room: bool,
    pub idempotency: Option<&'a IdempotencyClaim>,
    /// Renders the answer to store with the idempotency key, called before COMMIT so a replay
    /// returns the very bytes of the first answer (the booking service injects it).
    pub render_created: &'a (dyn Fn(&Placement) -> StoredAnswer + Send + Sync),
}

/// An answer as stored with an Idempotency-Key: the status and the exact body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status_code: u16,
    pub body: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOutcome {
    Committed(Placement),
    /// Every candidate was taken and no fallback booking was asked for (rolled back).
    AllTaken,
    /// The Idempotency-Key was already used with this body: the stored response.
    Replay {
        status_code: u16,
        body: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnReport {
    pub outcome: TxnOutcome,
    pub attempts: u32,
    /// Candidate rooms found taken inside the transaction (23P01 or a positive check).
    pub room_conflicts: u32,
    /// Time spent waiting on the database (statements, lock waits), excluding backoff sleeps.
    pub db_time: Duration,
    /// Time spent resolving conflicts inside the transaction (locks, checks, INSERT attempts),
    /// summed over attempts; part of `db_time`.
    pub conflict_time: Duration,
}

/// How an attempt failed.
enum Failure {
    Retry(RetryCause, DbError),
    Final(Error),
}

impl From<DbError> for Failure {
    fn from(error: DbError) -> Failure {
        if error.is_serialization_failure() {
            return Failure::Retry(RetryCause::SerializationFailure, error);
        }
        if error.is_deadlock() {
            return Failure::Retry(RetryCause::Deadlock, error);
        }
        let constraint = error.constraint.as_deref();
        if error.is_unique_violation() && constraint == Some("idempotency_keys_pkey") {
            return Failure::Retry(RetryCause::IdempotencyRace, error);
        }
        if error.is_exclusion_violation() && constraint == Some(ROOM_CONSTRAINT) {
            return Failure::Retry(RetryCause::RoomTaken, error);
        }
        Failure::Final(Error::from(error))
    }
}

/// The exclusion constraint that guards rooms (guarded schema only).
pub const ROOM_CONSTRAINT: &str = "no_room_overlap";

/// Statement-level session: executes and accounts database time.
struct Session<'c> {
    conn: &'c mut dyn Conn,
    db_time: Duration,
    conflict_time: Duration,
}

impl Session<'_> {
    async fn exec(&mut self, sql: &str, params: &[SqlValue]) -> Result<Rows, DbError> {
        let started = Instant::now();
        let result = self.conn.execute(sql, params).await;
        self.db_time += started.elapsed();
        result
    }
}

/// Runs the plan's transaction, retrying as the module doc describes.
pub async fn run_booking(
    conn: &mut dyn Conn,
    plan: &BookingPlan<'_>,
    retry: &RetryPolicy,
    rng: &Mutex<ChaCha8Rng>,
    metrics: &Metrics,
) -> Result<TxnReport, Error> {
    assert!(!plan.candidates.is_empty() || plan.book_without_room, "nothing to book");
    let mut session = Session { conn, db_time: Duration::ZERO, conflict_time: Duration::ZERO };
    let mut room_conflicts = 0u32;
    let attempts_max = retry.retries_max + 1;
    for attempt in 1..=attempts_max {
        let result = attempt_once(&mut session, plan, &mut room_conflicts).await;
        let failure = match result {
            Ok(outcome) => {
                let (db_time, conflict_time) = (session.db_time, session.conflict_time);
                let attempts = attempt;
                return Ok(TxnReport { outcome, attempts, room_conflicts, db_time, conflict_time });
            }
            Err(failure) => failure,
        };
        // Best effort: the transaction is already aborted or the session is gone.
        let rolled_back = session.exec("ROLLBACK", &[]).await;
        tracing::info!(attempt, ok = rolled_back.is_ok(), "booking transaction rolled back");
        match failure {
            Failure::Final(error) => return Err(error),
            Failure::Retry(cause, error) => {
                tracing::info!(attempt, ?cause, sqlstate = %error.sqlstate, "booking transaction retried");
                if cause == RetryCause::RoomTaken {
                    room_conflicts += 1;
                }
                if attempt == attempts_max {
                    metrics.retries_exhausted();
                    return Err(Error::RetriesExhausted {
                        attempts: attempt,
                        sqlstate: error.sqlstate,
                    });
                }
                metrics.retry(cause);
                tokio::time::sleep(backoff(retry, attempt, rng)).await;
            }
        }
    }
    unreachable!("the loop returns on its last attempt")
}

async fn attempt_once(
    session: &mut Session<'_>,
    plan: &BookingPlan<'_>,
    room_conflicts: &mut u32,
) -> Result<TxnOutcome, Failure> {
    session.exec(begin_sql(plan.strategy), &[]).await?;
    if let Some(claim) = plan.idempotency
        && let Some(replay) = claim_idempotency_key(session, claim).await?
    {
        session.exec("ROLLBACK", &[]).await?;
        return Ok(replay);
    }
    let started = Instant::now();
    let placed = place(session, plan, room_conflicts).await;
    session.conflict_time += started.elapsed();
    match placed? {
        Some(placement) => finish(session, plan, placement).await,
        None => {
            session.exec("ROLLBACK", &[]).await?;
            Ok(TxnOutcome::AllTaken)
        }
    }
}

/// Conflict resolution inside the transaction: locks, checks, INSERT. `None`: all taken.
async fn place(
    session: &mut Session<'_>,
    plan: &BookingPlan<'_>,
    room_conflicts: &mut u32,
) -> Result<Option<Placement>, Failure> {
    lock_candidates(session, plan).await?;
    for (index, candidate) in plan.candidates.iter().enumerate() {
        if try_candidate(session, plan, candidate).await? {
            return Ok(Some(Placement {
                candidate_index: Some(index),
                room_id: Some(candidate.room_id),
                turnover_minutes: candidate.turnover_minutes,
            }));
        }
        *room_conflicts += 1;
    }
    if plan.book_without_room {
        insert_room_pending(session, plan).await?;
        return Ok(Some(Placement { candidate_index: None, room_id: None, turnover_minutes: 0 }));
    }
    Ok(None)
}

fn begin_sql(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Serializable => "BEGIN ISOLATION LEVEL SERIALIZABLE",
        Strategy::RrRoomLock => "BEGIN ISOLATION LEVEL REPEATABLE READ",
        Strategy::Exclusion
        | Strategy::RoomLock
        | Strategy::Advisory
        | Strategy::Naive
        | Strategy::RoomLockUnordered => "BEGIN ISOLATION LEVEL READ COMMITTED",
    }
}

/// Takes the key's transaction-scoped advisory lock and looks for a stored response.
async fn claim_idempotency_key(
    session: &mut Session<'_>,
    claim: &IdempotencyClaim,
) -> Result<Option<TxnOutcome>, Failure> {
    let lock_key = SqlValue::Int(idempotency_lock_key(&claim.key));
    let rows = session.exec("SELECT pg_try_advisory_xact_lock($1) AS locked", &[lock_key]).await?;
    if rows.rows.first().and_then(|row| row.first()) != Some(&SqlValue::Bool(true)) {
        return Err(Failure::Final(Error::IdempotencyInFlight));
    }
    let rows = session.exec(STORED_RESPONSE, &[SqlValue::Text(claim.key.clone())]).await?;
    stored_response(&rows, claim).map_err(Failure::Final)
}

const STORED_RESPONSE: &str =
    "SELECT request_hash, status_code, body FROM idempotency_keys WHERE key = $1";

/// Looks the key up outside any transaction, before any work: a completed request is replayed
/// at once (its booking would otherwise now conflict with itself). The in-transaction claim
/// still decides races between concurrent requests.
pub async fn lookup_idempotency_key(
    conn: &mut dyn Conn,
    claim: &IdempotencyClaim,
) -> Result<Option<TxnOutcome>, Error> {
    let rows = conn.execute(STORED_RESPONSE, &[SqlValue::Text(claim.key.clone())]).await?;
    stored_response(&rows, claim)
}

/// The replay for a stored key row, 422 when the body differs, `None` when there is no row.
fn stored_response(rows: &Rows, claim: &IdempotencyClaim) -> Result<Option<TxnOutcome>, Error> {
    let Some(row) = rows.rows.first() else { return Ok(None) };
    match row.as_slice() {
        [SqlValue::Text(hash), SqlValue::Int(status), SqlValue::Text(body)] => {
            if *hash != claim.request_hash {
                return Err(Error::IdempotencyKeyReused);
            }
            let status_code = u16::try_from(*status)
                .map_err(|_| Error::Internal(format!("stored status {status} out of range")))?;
            Ok(Some(TxnOutcome::Replay { status_code, body: body.clone() }))
        }
        other => Err(Error::Internal(format!("unexpected idempotency_keys row shape: {other:?}"))),
    }
}

/// Takes the strategy's locks on every candidate room before any check.
async fn lock_candidates(session: &mut Session<'_>, plan: &BookingPlan<'_>) -> Result<(), Failure> {
    let mut rooms: Vec<Uuid> = plan.candidates.iter().map(|c| c.room_id).collect();
    match plan.strategy {
        Strategy::RoomLock | Strategy::RrRoomLock => {
            // One global order (room id) so two bookings never wait on each other in a cycle.
            rooms.sort();
            lock_room_rows(session, &rooms).await
        }
        // BROKEN on purpose: score order differs between requests, so lock cycles form.
        Strategy::RoomLockUnordered => lock_room_rows(session, &rooms).await,
        Strategy::Advisory => {
            let mut keys: Vec<i64> = rooms.iter().map(|id| room_lock_key(*id)).collect();
            keys.sort_unstable();
            keys.dedup();
            for key in keys {
                session.exec("SELECT pg_advisory_xact_lock($1)", &[SqlValue::Int(key)]).await?;
            }
            Ok(())
        }
        Strategy::Exclusion | Strategy::Serializable | Strategy::Naive => Ok(()),
    }
}

async fn lock_room_rows(session: &mut Session<'_>, rooms: &[Uuid]) -> Result<(), Failure> {
    for room in rooms {
        session
            .exec("SELECT id FROM rooms WHERE id = $1 FOR NO KEY UPDATE", &[SqlValue::Uuid(*room)])
            .await?;
    }
    Ok(())
}

/// Tries one room; `Ok(false)` means it is taken and the next one should be tried.
async fn try_candidate(
    session: &mut Session<'_>,
    plan: &BookingPlan<'_>,
    candidate: &Candidate,
) -> Result<bool, Failure> {
    if plan.strategy == Strategy::Exclusion {
        return insert_unless_conflict(session, plan.row, Some(candidate)).await;
    }
    if room_is_taken(session, plan.row, candidate).await? {
        return Ok(false);
    }
    if plan.strategy.is_broken() {
        insert_appointment(session, plan.row, Some(candidate)).await?;
        return Ok(true);
    }
    if insert_unless_conflict(session, plan.row, Some(candidate)).await? {
        return Ok(true);
    }
    // The check found the room free under the strategy's guard, yet the room constraint
    // matched: re-run the whole transaction, as a 23P01 on the room did (module doc).
    let mut error = DbError::new(
        "23P01",
        "INSERT … ON CONFLICT DO NOTHING met a booking of a room the check found free",
    );
    error.constraint = Some(ROOM_CONSTRAINT.to_string());
    Err(Failure::Retry(RetryCause::RoomTaken, error))
}

async fn room_is_taken(
    session: &mut Session<'_>,
    row: &AppointmentRow,
    candidate: &Candidate,
) -> Result<bool, DbError> {
    let rows = session
        .exec(
            "SELECT count(*) AS overlapping FROM appointments \
             WHERE room_id = $1 AND status IN ('held', 'booked', 'checked_in') \
             AND starts_at < $2 AND blocked_until > $3",
            &[
                SqlValue::Uuid(candidate.room_id),
                SqlValue::Timestamp(candidate.blocked_until(row.ends_at)),
                SqlValue::Timestamp(row.starts_at),
            ],
        )
        .await?;
    match rows.rows.first().and_then(|r| r.first()) {
        Some(SqlValue::Int(count)) => Ok(*count > 0),
        other => Err(DbError::new("XX000", format!("count(*) returned {other:?}"))),
    }
}

const INSERT_WITH_ROOM: &str = "INSERT INTO appointments (id, clinic_id, room_id, doctor_id, \
     patient_id, appointment_type, starts_at, ends_at, turnover_minutes, blocked_until, status, \
     infectious, patient_gender, policy_version, score, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'booked', $11, $12::text, $13, $14, $15)";

/// The `room_pending` fallback: no room, so the room constraint does not apply.
const INSERT_ROOM_PENDING: &str = "INSERT INTO appointments (id, clinic_id, room_id, doctor_id, \
     patient_id, appointment_type, starts_at, ends_at, turnover_minutes, blocked_until, status, \
     infectious, patient_gender, policy_version, score, created_at) \
     VALUES ($1, $2, NULL, $3, $4, $5, $6, $7, 0, $7, 'room_pending', $8, $9::text, $10, \
     '0hard/-1medium/0soft', $11)";

async fn insert_appointment(
    session: &mut Session<'_>,
    row: &AppointmentRow,
    candidate: Option<&Candidate>,
) -> Result<(), DbError> {
    let (sql, params) = insert_statement(row, candidate);
    let rows = session.exec(sql, &params).await?;
    assert_eq!(rows.rows_affected, 1, "INSERT of one row must report 1 row (Conn contract)");
    Ok(())
}

/// The safe strategies' INSERT (see the module doc): `Ok(false)` when the row conflicted with
/// something other than an overlapping appointment of its doctor or patient (the room, for
/// `exclusion`); a doctor or patient found busy is final.
async fn insert_unless_conflict(
    session: &mut Session<'_>,
    row: &AppointmentRow,
    candidate: Option<&Candidate>,
) -> Result<bool, Failure> {
    let (sql, params) = insert_statement(row, candidate);
    let rows = session.exec(&format!("{sql} ON CONFLICT DO NOTHING"), &params).await?;
    assert!(rows.rows_affected <= 1, "INSERT of one row reported {} rows", rows.rows_affected);
    if rows.rows_affected == 1 {
        return Ok(true);
    }
    match busy_participant(session, row).await? {
        Some(field) => Err(Failure::Final(Error::participant_unavailable(field))),
        None => Ok(false),
    }
}

/// The `room_pending` fallback: through ON CONFLICT for every safe strategy (no room, so only
/// the doctor's and patient's constraints can match), plain for the BROKEN ones.
async fn insert_room_pending(
    session: &mut Session<'_>,
    plan: &BookingPlan<'_>,
) -> Result<(), Failure> {
    if plan.strategy.is_broken() {
        return Ok(insert_appointment(session, plan.row, None).await?);
    }
    if insert_unless_conflict(session, plan.row, None).await? {
        return Ok(());
    }
    Err(Failure::Final(Error::Internal(format!(
        "room_pending INSERT of appointment {} conflicted, but neither its doctor nor its \
         patient has an overlapping appointment (duplicate id, or the conflict was cancelled)",
        plan.row.id
    ))))
}

/// Which participant of `row` already has an overlapping appointment that occupies people
/// (the `no_doctor_overlap` / `no_patient_overlap` predicate), if any.
async fn busy_participant(
    session: &mut Session<'_>,
    row: &AppointmentRow,
) -> Result<Option<&'static str>, DbError> {
    let rows = session
        .exec(
            "SELECT doctor_id, patient_id FROM appointments \
             WHERE (doctor_id = $1 OR patient_id = $2) \
             AND status IN ('held', 'booked', 'checked_in', 'room_pending') \
             AND starts_at < $3 AND ends_at > $4",
            &[
                SqlValue::Uuid(row.doctor_id),
                SqlValue::Uuid(row.patient_id),
                SqlValue::Timestamp(row.ends_at),
                SqlValue::Timestamp(row.starts_at),
            ],
        )
        .await?;
    let doctor = SqlValue::Uuid(row.doctor_id);
    if rows.rows.iter().any(|r| r.first() == Some(&doctor)) {
        return Ok(Some("doctor_id"));
    }
    Ok((!rows.rows.is_empty()).then_some("patient_id"))
}

/// The INSERT of `row` into `candidate`'s room, or as `room_pending` without a candidate.
fn insert_statement(
    row: &AppointmentRow,
    candidate: Option<&Candidate>,
) -> (&'static str, Vec<SqlValue>) {
    let gender = row.patient_gender.clone().map_or(SqlValue::Null, SqlValue::Text);
    match candidate {
        Some(candidate) => (
            INSERT_WITH_ROOM,
            vec![
                SqlValue::Uuid(row.id),
                SqlValue::Uuid(row.clinic_id),
                SqlValue::Uuid(candidate.room_id),
                SqlValue::Uuid(row.doctor_id),
                SqlValue::Uuid(row.patient_id),
                SqlValue::Text(row.appointment_type.clone()),
                SqlValue::Timestamp(row.starts_at),
                SqlValue::Timestamp(row.ends_at),
                SqlValue::Int(i64::from(candidate.turnover_minutes)),
                SqlValue::Timestamp(candidate.blocked_until(row.ends_at)),
                SqlValue::Bool(row.infectious),
                gender,
                SqlValue::Int(row.policy_version),
                SqlValue::Text(candidate.score.clone()),
                SqlValue::Timestamp(row.created_at),
            ],
        ),
        None => (
            INSERT_ROOM_PENDING,
            vec![
                SqlValue::Uuid(row.id),
                SqlValue::Uuid(row.clinic_id),
                SqlValue::Uuid(row.doctor_id),
                SqlValue::Uuid(row.patient_id),
                SqlValue::Text(row.appointment_type.clone()),
                SqlValue::Timestamp(row.starts_at),
                SqlValue::Timestamp(row.ends_at),
                SqlValue::Bool(row.infectious),
                gender,
                SqlValue::Int(row.policy_version),
                SqlValue::Timestamp(row.created_at),
            ],
        ),
    }
}

/// Stores the idempotency record (same transaction) and commits.
async fn finish(
    session: &mut Session<'_>,
    plan: &BookingPlan<'_>,
    placement: Placement,
) -> Result<TxnOutcome, Failure> {
    if let Some(claim) = plan.idempotency {
        let StoredAnswer { status_code, body } = (plan.render_created)(&placement);
        session
            .exec(
                "INSERT INTO idempotency_keys (key, request_hash, status_code, body, \
                 appointment_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    SqlValue::Text(claim.key.clone()),
                    SqlValue::Text(claim.request_hash.clone()),
                    SqlValue::Int(i64::from(status_code)),
                    SqlValue::Text(body),
                    SqlValue::Uuid(plan.row.id),
                    SqlValue::Timestamp(plan.row.created_at),
                ],
            )
            .await?;
    }
    if let Err(error) = session.exec("COMMIT", &[]).await {
        if error.is_connection_failure() {
            // The commit may or may not have happened: never retry blindly.
            return Err(Failure::Final(Error::DatabaseUnavailable(error)));
        }
        return Err(error.into());
    }
    Ok(TxnOutcome::Committed(placement))
}

/// The advisory-lock key of a room: the uuid's two halves folded into one bigint (computed
/// here, not with hashtext(), so the model and PostgreSQL agree on it).
pub fn room_lock_key(room_id: Uuid) -> i64 {
    let (high, low) = room_id.as_u64_pair();
    (high ^ low) as i64
}

/// The advisory-lock key of an Idempotency-Key: the first 8 bytes of SHA-256("idem:" + key).
pub fn idempotency_lock_key(key: &str) -> i64 {
    let digest = Sha256::digest(format!("idem:{key}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use chrono::TimeZone;
    use rand::SeedableRng;

    use super::*;
    use crate::db::BoxFuture;

    /// A connection that fails statements starting with a prefix, a fixed number of times,
    /// and records everything it ran.
    struct ScriptedConn {
        failures: VecDeque<(&'static str, DbError)>,
        log: Vec<String>,
    }

    impl Conn for ScriptedConn {
        fn execute<'a>(
            &'a mut self,
            sql: &'a str,
            _params: &'a [SqlValue],
        ) -> BoxFuture<'a, Result<Rows, DbError>> {
            self.log.push(sql.split_whitespace().take(2).collect::<Vec<_>>().join(" "));
            let fail = self.failures.front().is_some_and(|(prefix, _)| sql.starts_with(prefix));
            let result = if fail {
                Err(self.failures.pop_front().expect("checked").1)
            } else if sql.starts_with("SELECT count(*)") {
                Ok(Rows { rows: vec![vec![SqlValue::Int(0)]], rows_affected: 1, ..Rows::default() })
            } else {
                Ok(Rows { rows_affected: 1, ..Rows::default() })
            };
            Box::pin(async move { result })
        }
    }

    fn row() -> AppointmentRow {
        let at = Utc.with_ymd_and_hms(2030, 3, 10, 9, 0, 0).unwrap();
        AppointmentRow {
            id: Uuid::from_u128(1),
            clinic_id: Uuid::from_u128(2),
            doctor_id: Uuid::from_u128(3),
            patient_id: Uuid::from_u128(4),
            appointment_type: "follow_up".into(),
            starts_at: at,
            ends_at: at + chrono::Duration::minutes(20),
            infectious: false,
            patient_gender: None,
            policy_version: 1,
            created_at: at,
        }
    }

    async fn run(
        strategy: Strategy,
        failures: Vec<(&'static str, DbError)>,
        retries_max: u32,
    ) -> (Result<TxnReport, Error>, Vec<String>, Metrics) {
        let mut conn = ScriptedConn { failures: failures.into(), log: Vec::new() };
        let row = row();
        let candidates =
            [Candidate { room_id: Uuid::from_u128(9), turnover_minutes: 5, score: "s".into() }];
        let render_created = |_: &Placement| StoredAnswer { status_code: 201, body: String::new() };
        let plan = BookingPlan {
            strategy,
            row: &row,
            candidates: &candidates,
            book_without_room: false,
            idempotency: None,
            render_created: &render_created,
        };
        let retry = RetryPolicy { retries_max, backoff_base_ms: 1, backoff_cap_ms: 2 };
        let rng = Mutex::new(ChaCha8Rng::seed_from_u64(5));
        let metrics = Metrics::default();
        let result = run_booking(&mut conn, &plan, &retry, &rng, &metrics).await;
        (result, conn.log, metrics)
    }

    #[tokio::test]
    async fn serialization_failures_are_retried_then_succeed() {
        let failure = || ("INSERT", DbError::new("40001", "could not serialize access"));
        let (result, log, metrics) =
            run(Strategy::Serializable, vec![failure(), failure()], 5).await;
        let report = result.expect("third attempt succeeds");
        assert_eq!(report.attempts, 3);
        assert!(matches!(report.outcome, TxnOutcome::Committed(_)));
        assert_eq!(metrics.snapshot().retries_serialization, 2);
        assert_eq!(log.iter().filter(|s| *s == "ROLLBACK").count(), 2, "{log:?}");
        assert_eq!(log.last().map(String::as_str), Some("COMMIT"));
    }

    #[tokio::test]
    async fn retries_are_bounded_and_never_leak_the_database_error() {
        let failures = (0..10).map(|_| ("COMMIT", DbError::new("40P01", "deadlock"))).collect();
        let (result, log, metrics) = run(Strategy::RoomLock, failures, 3).await;
        match result {
            Err(Error::RetriesExhausted { attempts, sqlstate }) => {
                assert_eq!((attempts, sqlstate.as_str()), (4, "40P01"));
            }
            other => panic!("expected RetriesExhausted, got {other:?}"),
        }
        assert_eq!(log.iter().filter(|s| s.starts_with("BEGIN")).count(), 4);
        let snapshot = metrics.snapshot();
        assert_eq!((snapshot.retries_deadlock, snapshot.retries_exhausted), (3, 1));
    }

    #[tokio::test]
    async fn a_lost_connection_at_commit_is_not_retried() {
        let lost = DbError::new(DbError::CONNECTION_FAILURE, "connection reset");
        let (result, log, _) = run(Strategy::Exclusion, vec![("COMMIT", lost)], 5).await;
        assert!(matches!(result, Err(Error::DatabaseUnavailable(_))), "{result:?}");
        assert_eq!(log.iter().filter(|s| s.starts_with("BEGIN")).count(), 1);
    }

    #[test]
    fn lock_keys_are_stable() {
        let room = Uuid::from_u128((7u128 << 64) | 3);
        assert_eq!(room_lock_key(room), 7 ^ 3);
        assert_eq!(idempotency_lock_key("a"), idempotency_lock_key("a"));
        assert_ne!(idempotency_lock_key("a"), idempotency_lock_key("b"));
    }
}
