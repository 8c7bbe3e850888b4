//! Booking, preview and cancel: parsing, and answers as HTTP responses.
//!
//! BOOKING (POST /v1/appointments):
//! 1. Parse (400 malformed JSON / 422 wrong shape, field named) and validate (422).
//! 2. Idempotency-Key (optional): checked, and the body's canonical hash computed.
//! 3. The booking service (`booking::service::book`) runs the use case: snapshot, allocator,
//!    decide, transaction, re-allocation rounds, the all-taken fallback. It calls back into
//!    this module only to render the 201 body ([`created_body`]), which it stores with the
//!    Idempotency-Key before COMMIT (the service's module doc says why).
//! 4. Its answer becomes the response: 201 (the rendered body), a replay (stored status and
//!    body, `Idempotent-Replayed: true`), 200 with suggestions, or the error's problem+json;
//!    every response carries `Server-Timing` from the phases the service measured.
//!
//! PREVIEW runs the service's read-and-allocate step only; CANCEL is one UPDATE.

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
use crate::allocator::Allocation;
use crate::booking::idempotency::{check_key, request_hash};
use crate::booking::service::{self, BookingAnswer, BookingContext, CreatedBooking};
use crate::booking::snapshot::load_appointment;
use crate::booking::transaction::{IdempotencyClaim, StoredAnswer};
use crate::db::SqlValue;
use crate::domain::{AppointmentStatus, BookingRequest};
use crate::error::{Error, Result};
use crate::metrics::BookingOutcome;

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

/// Step 1: parse and validate (the horizon against the backend's clock).
fn parse_request(ctx: &ApiContext, bytes: &[u8]) -> Result<(Value, BookingRequest)> {
    let (body, request): (Value, BookingRequest) = parse_json(bytes)?;
    request.validate().map_err(Error::Validation)?;
    request.validate_horizon(ctx.clock.now()).map_err(Error::Validation)?;
    Ok((body, request))
}

/// Parse, then the booking service, then its answer as a response.
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
    let booking = booking_context(ctx);
    let answer =
        service::book(&booking, conn.as_mut(), request, claim.as_ref(), &created_body, timing)
            .await?;
    Ok(match answer {
        BookingAnswer::Created { answer, .. } => stored_response(answer),
        BookingAnswer::Replayed(answer) => {
            let mut response = stored_response(answer);
            let replayed = HeaderValue::from_static("true");
            response.headers_mut().insert("idempotent-replayed", replayed);
            response
        }
        BookingAnswer::Suggestions(allocation) => {
            json_response(StatusCode::OK, suggestions(&allocation))
        }
    })
}

/// What the booking service needs from the handlers' shared state.
fn booking_context(ctx: &ApiContext) -> BookingContext<'_> {
    let config = &ctx.config;
    BookingContext {
        strategy: config.strategy,
        retry: &config.retry,
        candidates_max: config.candidates_max,
        reallocations_max: config.reallocations_max,
        allocator: &config.allocator,
        rooms_max: config.rooms_max,
        day_appointments_max: config.day_appointments_max,
        clock: ctx.clock.as_ref(),
        ids: ctx.ids.as_ref(),
        metrics: &ctx.metrics,
        policy_cache: &ctx.policy_cache,
        bodies: &ctx.bodies,
        work: ctx.work.as_ref(),
        retry_rng: &ctx.retry_rng,
    }
}

fn idempotency_key(headers: &HeaderMap, chars_max: usize) -> Result<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .map_err(|_| Error::invalid("Idempotency-Key", "only visible ASCII characters allowed"))?;
    check_key(key, chars_max)?;
    Ok(Some(key.to_string()))
}

/// The 201 body (also the body stored with the Idempotency-Key), written straight to bytes
/// (see `bodies`): the booking service's [`RenderCreated`](service::RenderCreated).
fn created_body(created: &CreatedBooking<'_>) -> StoredAnswer {
    let CreatedBooking { prepared, row, candidates, placement } = *created;
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
    StoredAnswer { status_code: 201, body: body.to_json() }
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

/// A rendered or stored answer: its status and exact body.
fn stored_response(answer: StoredAnswer) -> Response {
    let StoredAnswer { status_code, body } = answer;
    let status = StatusCode::from_u16(status_code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// POST /v1/room-assignments:preview — the same ranking as a booking, no write.
async fn preview(State(ctx): State<ApiContext>, body: Result<Bytes, BytesRejection>) -> Response {
    let mut timing = Timing::default();
    let result = async {
        let bytes = body.map_err(|r| body_rejection(r, ctx.config.body_bytes_max))?;
        let (_body, request) = parse_request(&ctx, &bytes)?;
        let mut conn = ctx.db.acquire().await?;
        let (booking, allocator) = (booking_context(&ctx), &ctx.config.allocator);
        let prepared =
            service::prepare(&booking, conn.as_mut(), request, allocator, &mut timing).await?;
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
