//! Booking, preview and cancel.
//!
//! BOOKING FLOW (POST /v1/appointments):
//! 1. Parse (400 malformed JSON / 422 wrong shape, field named) and validate (422).
//! 2. Idempotency-Key (optional): checked, and the body's canonical hash computed.
//! 3. Snapshot reads outside any transaction: policy version check (cache), clinic, doctor,
//!    patient, type, rooms, the day's appointments. Unknown ids → 422 naming the field.
//! 4. Allocator (pure) → ranked rooms; the CPU-cost hook is charged.
//! 5. Decide: participant busy → 409; pinned room infeasible → 422; no room → 409 (reject),
//!    200 with suggestions (suggest) or a room_pending booking (book_without_room).
//! 6. The strategy's transaction on the top `candidates_max` rooms; rooms taken meanwhile are
//!    skipped.
//! 7. If every candidate was taken (by bookings that committed after the snapshot), go back to
//!    3 with a fresh snapshot: at most `reallocations_max` times. A fresh snapshot without a
//!    feasible room answers as in 5, with alternatives from that snapshot; `book_without_room`
//!    books room_pending only in the last round. When even the last transaction finds every
//!    candidate taken, one more snapshot is read (with the time search on) and the request
//!    answers ROOM_UNAVAILABLE (or suggestions) from it: the rooms were lost to contention.
//!    Every round's allocator run is charged again through the CPU-cost hook and its time
//!    added to Server-Timing `rules`; its database time to `db`.
//!
//! Nothing is half-written: every write happens in the one transaction of step 6.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use super::bodies::{Assignment, BookedRoom, CreatedBody};
use super::error::{body_rejection, parse_json, path_rejection};
use super::{ApiContext, Timing, with_timing};
use crate::allocator::{
    AllocateError, Allocation, AllocatorConfig, ClinicSnapshot, Outcome, allocate,
};
use crate::booking::idempotency::{check_key, request_hash};
use crate::booking::snapshot::{enum_to_str, load_appointment, load_policy, load_snapshot};
use crate::booking::transaction::{
    AppointmentRow, BookingPlan, Candidate, IdempotencyClaim, Placement, TxnOutcome,
    lookup_idempotency_key, run_booking,
};
use crate::booking::work::Work;
use crate::db::{Conn, SqlValue};
use crate::domain::{AppointmentStatus, BookingRequest, FallbackMode, Isolation};
use crate::error::{Error, ProblemExtensions, Result};
use crate::metrics::BookingOutcome;
use crate::rules::RuleSet;

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/v1/appointments", post(create_appointment))
        .route("/v1/room-assignments:preview", post(preview))
        .route("/v1/appointments/{id}/cancel", post(cancel))
}

async fn create_appointment(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let mut timing = Timing::default();
    let result = book(&ctx, &headers, body, &mut timing).await;
    ctx.metrics.request_latency.record(started.elapsed());
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            ctx.metrics.booking(outcome_of_error(&error));
            error.into_response()
        }
    };
    timing.record(&ctx.metrics);
    with_timing(response, &timing)
}

fn outcome_of_error(error: &Error) -> BookingOutcome {
    match error {
        Error::RoomUnavailable { .. }
        | Error::ParticipantUnavailable { .. }
        | Error::PinnedRoomInfeasible { .. } => BookingOutcome::Rejected,
        _ => BookingOutcome::Failed,
    }
}

/// What the allocation phase produced for a request.
struct Prepared {
    request: BookingRequest,
    snapshot: ClinicSnapshot,
    allocation: Allocation,
}

/// Step 1: parse and validate (the horizon against the backend's clock).
fn parse_request(ctx: &ApiContext, bytes: &[u8]) -> Result<(Value, BookingRequest)> {
    let (body, request): (Value, BookingRequest) = parse_json(bytes)?;
    request.validate().map_err(Error::Validation)?;
    request.validate_horizon(ctx.clock.now()).map_err(Error::Validation)?;
    Ok((body, request))
}

/// Steps 3 and 4: read, allocate (shared with preview).
async fn prepare(
    ctx: &ApiContext,
    conn: &mut dyn Conn,
    request: BookingRequest,
    allocator: &AllocatorConfig,
    timing: &mut Timing,
) -> Result<Prepared> {
    let read_started = Instant::now();
    let read = read_inputs(ctx, conn, &request).await;
    timing.db += read_started.elapsed();
    let (policy, snapshot) = read?;
    let allocation = run_allocator(ctx, &policy, &snapshot, &request, allocator, timing).await?;
    Ok(Prepared { request, snapshot, allocation })
}

async fn read_inputs(
    ctx: &ApiContext,
    conn: &mut dyn Conn,
    request: &BookingRequest,
) -> Result<(std::sync::Arc<RuleSet>, ClinicSnapshot)> {
    let policy = load_policy(conn, &ctx.policy_cache, &ctx.bodies, request.clinic_id).await?;
    let config = &ctx.config;
    let (rooms_max, appointments_max) = (config.rooms_max, config.day_appointments_max);
    let snapshot = load_snapshot(conn, &ctx.bodies, request, rooms_max, appointments_max).await?;
    Ok((policy, snapshot))
}

async fn run_allocator(
    ctx: &ApiContext,
    policy: &RuleSet,
    snapshot: &ClinicSnapshot,
    request: &BookingRequest,
    allocator: &AllocatorConfig,
    timing: &mut Timing,
) -> Result<Allocation> {
    let started = Instant::now();
    let allocation = allocate(policy, snapshot, request, allocator);
    let allocation = allocation.map_err(allocate_error)?;
    ctx.work.charge(Work::RulesEvaluation(allocation.stats)).await;
    timing.rules += started.elapsed();
    let started = Instant::now();
    ctx.work.charge(Work::ConflictDetection(allocation.stats)).await;
    timing.conflict += started.elapsed();
    Ok(allocation)
}

fn allocate_error(error: AllocateError) -> Error {
    match error {
        AllocateError::Invalid(validation) => Error::Validation(validation),
        AllocateError::PinnedRoomNotInClinic { room_id, .. } => Error::UnknownReference {
            field: "room_id".into(),
            entity: "room",
            id: room_id.to_string(),
            scope: " in this clinic",
        },
        // The snapshot was read for this very request: a mismatch is our bug.
        AllocateError::SnapshotMismatch { .. } | AllocateError::TooLarge { .. } => {
            Error::Internal(error.to_string())
        }
    }
}

async fn book(
    ctx: &ApiContext,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    timing: &mut Timing,
) -> Result<Response> {
    let bytes = body.map_err(|rejection| body_rejection(rejection, ctx.config.body_bytes_max))?;
    let key = idempotency_key(headers, ctx.config.idempotency_key_chars_max)?;
    let (body, request) = parse_request(ctx, &bytes)?;
    let claim = key.map(|key| IdempotencyClaim { key, request_hash: request_hash(&body) });
    let acquire_started = Instant::now();
    let conn = ctx.db.acquire().await;
    timing.db += acquire_started.elapsed();
    let mut conn = conn?;
    if let Some(replay) = stored_replay(conn.as_mut(), claim.as_ref(), timing).await? {
        return finish_booking(ctx, None, replay, &never_respond);
    }
    let mut round = Round { request, reallocations: 0, row_id: None };
    loop {
        match book_round(ctx, conn.as_mut(), claim.as_ref(), &mut round, timing).await? {
            RoundEnd::Answer(response) => return Ok(response),
            RoundEnd::AllTaken => {
                // Every candidate was taken by concurrent bookings since the snapshot: read a
                // fresh one and allocate again (step 7 of the module doc).
                round.reallocations += 1;
                ctx.metrics.reallocation();
            }
        }
    }
}

/// The state carried from one allocation round of a booking to the next.
struct Round {
    request: BookingRequest,
    /// Fresh snapshots read because every candidate of the previous round was taken.
    reallocations: u32,
    /// The appointment id, drawn once at the first transaction and kept across rounds.
    row_id: Option<Uuid>,
}

enum RoundEnd {
    Answer(Response),
    /// The transaction found every candidate taken; the request goes to the next round.
    AllTaken,
}

/// One round: snapshot → allocator → decide → transaction (steps 3 to 6).
async fn book_round(
    ctx: &ApiContext,
    conn: &mut dyn Conn,
    claim: Option<&IdempotencyClaim>,
    round: &mut Round,
    timing: &mut Timing,
) -> Result<RoundEnd> {
    let reallocations_max = ctx.config.reallocations_max;
    // Past the budget, this round only reads the state to answer from: no transaction, and
    // the allocator also searches other times so the answer has alternatives.
    let exhausted = round.reallocations > reallocations_max;
    let searching = exhausted.then(|| AllocatorConfig {
        suggest_times_when_assigned: true,
        ..ctx.config.allocator.clone()
    });
    let allocator = searching.as_ref().unwrap_or(&ctx.config.allocator);
    let before = *timing;
    let prepared = prepare(ctx, conn, round.request.clone(), allocator, timing).await?;
    let decided = decide(ctx, &prepared);
    if found_in_snapshot(&decided) {
        // The conflict was detected by reading the day and running the allocator: that is
        // this request's conflict detection (Server-Timing `conflict`), not zero.
        timing.conflict += (timing.db - before.db) + (timing.rules - before.rules);
    }
    if !matches!(decided, Ok(Some(_))) {
        // A duplicate of this request may have committed since the first lookup: its own
        // booking then makes this one look infeasible. The booking and its key commit
        // together, so a snapshot that saw the booking is followed by a lookup that sees the
        // key: replay rather than reject.
        if let Some(replay) = stored_replay(conn, claim, timing).await? {
            return finish_booking(ctx, None, replay, &never_respond).map(RoundEnd::Answer);
        }
    }
    let Some(candidates) = decided? else {
        ctx.metrics.booking(BookingOutcome::Rejected);
        return Ok(RoundEnd::Answer(json_response(
            StatusCode::OK,
            suggestions(&prepared.allocation),
        )));
    };
    if exhausted {
        assert!(!candidates.is_empty(), "book_without_room never ends a round all-taken");
        let detail = format!(
            "rooms were free, but every ranked room was booked concurrently in \
             {reallocations_max} re-allocations; retry"
        );
        return answer_all_taken(ctx, &prepared, detail).map(RoundEnd::Answer);
    }
    let id = *round.row_id.get_or_insert_with(|| ctx.ids.next_id());
    let row = appointment_row(ctx, &prepared, id);
    // The room_pending fallback applies only once re-allocation cannot find a room either.
    let last_round = round.reallocations == reallocations_max;
    let book_without_room = prepared.request.fallback == FallbackMode::BookWithoutRoom
        && (candidates.is_empty() || last_round);
    let once = RespondOnce::new(|placement: &Placement| {
        created_body(&prepared, &row, &candidates, placement)
    });
    let respond = |placement: &Placement| once.respond(placement);
    let plan = BookingPlan {
        strategy: ctx.config.strategy,
        row: &row,
        candidates: &candidates,
        book_without_room,
        idempotency: claim,
        respond: &respond,
    };
    let (retry, rng, metrics) = (&ctx.config.retry, &ctx.retry_rng, &ctx.metrics);
    let report = run_booking(conn, &plan, retry, rng, metrics).await?;
    timing.db += report.db_time;
    timing.conflict += report.conflict_time;
    for _ in 0..report.room_conflicts {
        ctx.metrics.room_conflict();
    }
    if report.outcome == TxnOutcome::AllTaken {
        assert!(!book_without_room, "the room_pending fallback never ends all-taken");
        return Ok(RoundEnd::AllTaken);
    }
    finish_booking(ctx, Some(&prepared), report.outcome, &respond).map(RoundEnd::Answer)
}

/// Whether the decision is a conflict found in the snapshot (no transaction will run): a busy
/// doctor or patient, no feasible room (409 or suggestions), a pinned room that is taken.
fn found_in_snapshot(decided: &Result<Option<Vec<Candidate>>>) -> bool {
    matches!(
        decided,
        Ok(None)
            | Err(Error::RoomUnavailable { .. }
                | Error::ParticipantUnavailable { .. }
                | Error::PinnedRoomInfeasible { .. })
    )
}

fn finish_booking(
    ctx: &ApiContext,
    prepared: Option<&Prepared>,
    outcome: TxnOutcome,
    respond: &dyn Fn(&Placement) -> (u16, String),
) -> Result<Response> {
    match outcome {
        TxnOutcome::Committed(placement) => {
            let pending = placement.room_id.is_none();
            let (status, body) = respond(&placement);
            let outcome =
                if pending { BookingOutcome::RoomPending } else { BookingOutcome::Booked };
            ctx.metrics.booking(outcome);
            Ok(text_response(status, body))
        }
        TxnOutcome::Replay { status_code, body } => {
            ctx.metrics.booking(BookingOutcome::Replayed);
            let mut response = text_response(status_code, body);
            let replayed = HeaderValue::from_static("true");
            response.headers_mut().insert("idempotent-replayed", replayed);
            Ok(response)
        }
        TxnOutcome::AllTaken => {
            let prepared = prepared.expect("an all-taken outcome comes from a transaction");
            let detail = "every ranked room was booked concurrently".to_string();
            answer_all_taken(ctx, prepared, detail)
        }
    }
}

/// Rooms were free in the snapshot but none could be had: the fallback's answer, from
/// `prepared` (the caller makes sure it is fresh).
fn answer_all_taken(ctx: &ApiContext, prepared: &Prepared, detail: String) -> Result<Response> {
    if prepared.request.fallback == FallbackMode::Suggest {
        ctx.metrics.booking(BookingOutcome::Rejected);
        return Ok(json_response(StatusCode::OK, suggestions(&prepared.allocation)));
    }
    Err(room_unavailable(&prepared.allocation, detail))
}

/// The stored response for the request's key, if it has one and it completed.
async fn stored_replay(
    conn: &mut dyn Conn,
    claim: Option<&IdempotencyClaim>,
    timing: &mut Timing,
) -> Result<Option<TxnOutcome>> {
    let Some(claim) = claim else { return Ok(None) };
    let started = Instant::now();
    let stored = lookup_idempotency_key(conn, claim).await;
    timing.db += started.elapsed();
    stored
}

fn never_respond(_: &Placement) -> (u16, String) {
    unreachable!("a replay builds no response")
}

fn idempotency_key(headers: &HeaderMap, chars_max: usize) -> Result<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .map_err(|_| Error::invalid("Idempotency-Key", "only visible ASCII characters allowed"))?;
    check_key(key, chars_max)?;
    Ok(Some(key.to_string()))
}

/// Step 5: the candidates to try, `None` for "answer with suggestions", or an error.
fn decide(ctx: &ApiContext, prepared: &Prepared) -> Result<Option<Vec<Candidate>>> {
    let allocation = &prepared.allocation;
    match &allocation.outcome {
        Outcome::ParticipantBusy { conflicts } => {
            let doctor =
                conflicts.iter().any(|c| c.participant == crate::allocator::Participant::Doctor);
            let field = if doctor { "doctor_id" } else { "patient_id" };
            let mut extensions = ProblemExtensions::new();
            extensions.insert("conflicts".into(), json!(conflicts));
            extensions.insert("alternatives".into(), alternatives_json(allocation));
            Err(Error::ParticipantUnavailable { field, extensions: Box::new(extensions) })
        }
        Outcome::PinnedRoomRejected { rejection } => {
            let mut extensions = ProblemExtensions::new();
            extensions.insert("rejection".into(), json!(rejection));
            extensions.insert("alternatives".into(), alternatives_json(allocation));
            Err(Error::PinnedRoomInfeasible {
                room_id: rejection.room_id.to_string(),
                reason: format!("{} {}", rejection.rule.code(), rejection.message),
                extensions: Box::new(extensions),
            })
        }
        Outcome::NoRoom { fallback: FallbackMode::Suggest } => Ok(None),
        Outcome::NoRoom { .. } => {
            Err(room_unavailable(allocation, "no room satisfies every hard rule".into()))
        }
        Outcome::RoomPending { .. } => Ok(Some(Vec::new())),
        Outcome::Assigned { .. } => Ok(Some(candidates(ctx, prepared))),
    }
}

/// The ranked rooms the transaction may try: only the pinned one when a room was pinned.
fn candidates(ctx: &ApiContext, prepared: &Prepared) -> Vec<Candidate> {
    let ranked = prepared.allocation.ranked.iter();
    let pinned = prepared.request.room_id;
    let eligible = ranked.filter(|room| pinned.is_none_or(|id| id == room.room_id));
    let candidates: Vec<Candidate> = eligible
        .take(ctx.config.candidates_max.max(1))
        .map(|room| Candidate {
            room_id: room.room_id,
            turnover_minutes: room.turnover_minutes,
            score: room.score.to_string(),
        })
        .collect();
    assert!(!candidates.is_empty(), "an Assigned outcome has at least one ranked room");
    candidates
}

fn appointment_row(ctx: &ApiContext, prepared: &Prepared, id: Uuid) -> AppointmentRow {
    let request = &prepared.request;
    let patient = &prepared.snapshot.patient;
    AppointmentRow {
        id,
        clinic_id: request.clinic_id,
        doctor_id: request.doctor_id,
        patient_id: request.patient_id,
        appointment_type: request.appointment_type.clone(),
        starts_at: request.start,
        ends_at: request.end,
        infectious: patient.is_infectious() || request.needs.isolation != Isolation::None,
        patient_gender: Some(enum_to_str(&patient.gender)),
        policy_version: i64::try_from(prepared.allocation.policy_version).unwrap_or(i64::MAX),
        created_at: ctx.clock.now(),
    }
}

/// The 201 body (also the body stored with the Idempotency-Key), written straight to bytes
/// (see `bodies`).
fn created_body(
    prepared: &Prepared,
    row: &AppointmentRow,
    candidates: &[Candidate],
    placement: &Placement,
) -> (u16, String) {
    let allocation = &prepared.allocation;
    let room = placement.room_id.map(|room_id| {
        let name = prepared.snapshot.rooms.iter().find(|r| r.id == room_id);
        BookedRoom { id: room_id, name: name.map(|r| r.name.as_str()) }
    });
    let (status, score) = match placement.candidate_index {
        Some(index) => (AppointmentStatus::Booked, candidates[index].score.as_str()),
        None => (AppointmentStatus::RoomPending, "0hard/-1medium/0soft"),
    };
    // The explanation is the top-ranked room's; `rank` says which ranked room was booked.
    let explanation = match placement.candidate_index {
        Some(0) => allocation.explanation.as_ref().map(|e| e.contributions.as_slice()),
        _ => None,
    };
    let body = CreatedBody {
        alternatives: &allocation.alternatives.same_time_other_rooms,
        appointment_type: &row.appointment_type,
        assignment: Assignment {
            explanation,
            policy_version: allocation.policy_version,
            rank: placement.candidate_index,
            rejected: &allocation.rejected,
            score,
        },
        clinic_id: row.clinic_id,
        doctor_id: row.doctor_id,
        end: row.ends_at,
        id: row.id,
        patient_id: row.patient_id,
        room,
        start: row.starts_at,
        status: status.as_str(),
        turnover_minutes: placement.turnover_minutes,
    };
    (201, body.to_json())
}

/// Builds each placement's 201 body once: the transaction stores it with the Idempotency-Key
/// and the handler answers with it, so without this it was built twice per booking.
struct RespondOnce<F> {
    build: F,
    built: std::sync::Mutex<Option<(Placement, (u16, String))>>,
}

impl<F: Fn(&Placement) -> (u16, String)> RespondOnce<F> {
    fn new(build: F) -> Self {
        RespondOnce { build, built: std::sync::Mutex::new(None) }
    }

    fn respond(&self, placement: &Placement) -> (u16, String) {
        let mut built = self.built.lock().expect("respond cache lock poisoned");
        if let Some((cached, response)) = built.as_ref()
            && cached == placement
        {
            return response.clone();
        }
        let response = (self.build)(placement);
        *built = Some((placement.clone(), response.clone()));
        response
    }
}

fn alternatives_json(allocation: &Allocation) -> Value {
    json!(allocation.alternatives)
}

fn room_unavailable(allocation: &Allocation, detail: String) -> Error {
    let mut extensions = ProblemExtensions::new();
    extensions.insert("policy_version".into(), json!(allocation.policy_version));
    extensions.insert("alternatives".into(), alternatives_json(allocation));
    extensions.insert("least_infeasible".into(), json!(allocation.least_infeasible));
    extensions.insert("rejected".into(), json!(allocation.rejected));
    Error::RoomUnavailable { detail, extensions: Box::new(extensions) }
}

/// The `suggest` fallback's answer: no booking, the alternatives.
fn suggestions(allocation: &Allocation) -> Value {
    json!({
        "booked": false,
        "policy_version": allocation.policy_version,
        "alternatives": allocation.alternatives,
        "least_infeasible": allocation.least_infeasible,
        "rejected": allocation.rejected,
    })
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn text_response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// POST /v1/room-assignments:preview — the same ranking as a booking, no write.
async fn preview(State(ctx): State<ApiContext>, body: Result<Bytes, BytesRejection>) -> Response {
    let mut timing = Timing::default();
    let result = async {
        let bytes = body.map_err(|r| body_rejection(r, ctx.config.body_bytes_max))?;
        let (_body, request) = parse_request(&ctx, &bytes)?;
        let mut conn = ctx.db.acquire().await?;
        let allocator = &ctx.config.allocator;
        let prepared = prepare(&ctx, conn.as_mut(), request, allocator, &mut timing).await?;
        Ok::<_, Error>(json_response(StatusCode::OK, json!(prepared.allocation)))
    }
    .await;
    let response = result.unwrap_or_else(IntoResponse::into_response);
    timing.record(&ctx.metrics);
    with_timing(response, &timing)
}

/// POST /v1/appointments/{id}/cancel — idempotent: cancelling a cancelled appointment is 200.
async fn cancel(State(ctx): State<ApiContext>, id: Result<Path<Uuid>, PathRejection>) -> Response {
    let started = Instant::now();
    let result = async {
        let Path(id) = id.map_err(|rejection| path_rejection(rejection, "id"))?;
        let mut conn = ctx.db.acquire().await?;
        let rows = conn
            .execute(
                "UPDATE appointments SET status = 'cancelled' WHERE id = $1 \
                 AND status IN ('held', 'booked', 'checked_in', 'room_pending') RETURNING id",
                &[SqlValue::Uuid(id)],
            )
            .await?;
        if rows.rows_affected == 0 {
            let existing = load_appointment(conn.as_mut(), id).await?;
            let Some(existing) = existing else {
                return Err(Error::NotFound { entity: "appointment", id: id.to_string() });
            };
            if existing.status != AppointmentStatus::Cancelled {
                let status = existing.status.as_str();
                return Err(Error::InvalidState {
                    message: format!("appointment {id} is {status} and cannot be cancelled"),
                });
            }
        }
        let body = json!({ "id": id, "status": "cancelled" });
        Ok::<_, Error>(json_response(StatusCode::OK, body))
    }
    .await;
    // Cancelling is database work only.
    let timing = Timing { db: started.elapsed(), ..Timing::default() };
    with_timing(result.unwrap_or_else(IntoResponse::into_response), &timing)
}
