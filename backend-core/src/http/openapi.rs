//! The OpenAPI 3.1 document of the HTTP API, generated with utoipa; served at
//! `GET /openapi.json` and printed by `roomsim openapi`.
//!
//! WHAT: the schemas come from the code: the request types derive `ToSchema` where they are
//! defined (`BookingRequest`, `Needs`, `Isolation`, `FallbackMode` in `domain`; the 201 body
//! `CreatedBody` in `bodies`; the preview body `Allocation` in `allocator`), the availability
//! query derives `IntoParams` in `availability`. The operations are declared here, one
//! `#[utoipa::path]` per route, on declaration-only functions, so the handlers' files stay
//! free of documentation attributes. [`PROBLEM_TYPES`] lists every problem+json code with its
//! status; the `Problem` schema's `code` enum and description are built from it. A modifier
//! adds the headers every response carries (`X-Request-Id`; `Server-Timing` on `/v1/`
//! routes; `Retry-After` on 409 and 503).
//!
//! WHY declared here and not on the handlers: the handlers change often; the tests in
//! `backend-core/tests/openapi.rs` keep the two in step instead. They fail when a route of
//! the router (found in this folder's sources and probed on the live router) has no
//! operation, when a field of a request type is missing from its schema, or when an error
//! code is missing from [`PROBLEM_TYPES`].
//!
//! NOT MODELLED: the nested allocator types (ranked rooms, rejections, contributions,
//! alternatives) are free-form objects in the schema; security schemes (there is no
//! authentication).

use std::sync::OnceLock;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa::openapi::schema::{Schema, Type};
use utoipa::openapi::{Object, OpenApi as Document, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};

use super::ApiContext;

/// One problem+json error type: its stable `code`, HTTP status and meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProblemType {
    pub code: &'static str,
    pub status: u16,
    pub meaning: &'static str,
}

impl ProblemType {
    /// `https://roomsim.example/problems/room-unavailable`: the problem's `type` member.
    pub fn type_uri(&self) -> String {
        format!(
            "https://roomsim.example/problems/{}",
            self.code.to_ascii_lowercase().replace('_', "-")
        )
    }
}

/// Every code a problem+json body can carry (`crate::error::Error::code`, including the
/// domain validation codes). The test `every_error_code_is_documented` fails when one is
/// missing or its status differs.
pub const PROBLEM_TYPES: &[ProblemType] = &[
    ProblemType { code: "MALFORMED_BODY", status: 400, meaning: "the body is not valid JSON" },
    ProblemType { code: "BODY_TOO_LARGE", status: 413, meaning: "the body exceeds the size limit" },
    ProblemType { code: "INVALID_TIME_RANGE", status: 422, meaning: "`end` is not after `start`" },
    ProblemType {
        code: "DURATION_TOO_LONG",
        status: 422,
        meaning: "the booking is longer than the longest allowed",
    },
    ProblemType {
        code: "INVALID_FIELD",
        status: 422,
        meaning: "a field (named in `field`) has a wrong type or an invalid value",
    },
    ProblemType {
        code: "UNKNOWN_REFERENCE",
        status: 422,
        meaning: "a field names a clinic, doctor, patient, room or type that does not exist",
    },
    ProblemType {
        code: "OUTSIDE_BOOKING_HORIZON",
        status: 422,
        meaning: "`start` is outside the booking horizon (5 years back, 2 years ahead of now)",
    },
    ProblemType {
        code: "NOT_FOUND",
        status: 404,
        meaning: "the resource named by the URL does not exist",
    },
    ProblemType { code: "ROUTE_NOT_FOUND", status: 404, meaning: "no route matches the path" },
    ProblemType {
        code: "METHOD_NOT_ALLOWED",
        status: 405,
        meaning: "the path exists but not with this method (`Allow` lists the methods)",
    },
    ProblemType {
        code: "REQUEST_TIMEOUT",
        status: 408,
        meaning: "the request body did not arrive within the server's body read timeout",
    },
    ProblemType {
        code: "ROOM_UNAVAILABLE",
        status: 409,
        meaning: "no room satisfies every hard rule (`alternatives`, `rejected` attached)",
    },
    ProblemType {
        code: "DOCTOR_UNAVAILABLE",
        status: 409,
        meaning: "the doctor is booked in an overlapping appointment",
    },
    ProblemType {
        code: "PATIENT_UNAVAILABLE",
        status: 409,
        meaning: "the patient is booked in an overlapping appointment",
    },
    ProblemType {
        code: "PINNED_ROOM_INFEASIBLE",
        status: 422,
        meaning: "the pinned `room_id` fails a hard rule or is taken",
    },
    ProblemType {
        code: "IDEMPOTENCY_KEY_REUSED",
        status: 422,
        meaning: "the Idempotency-Key was used with a different body",
    },
    ProblemType {
        code: "IDEMPOTENCY_IN_FLIGHT",
        status: 409,
        meaning: "a request with this Idempotency-Key is still being processed; retry",
    },
    ProblemType {
        code: "INVALID_STATE",
        status: 409,
        meaning: "the resource's state forbids the operation (e.g. cancelling a done appointment)",
    },
    ProblemType {
        code: "RETRIES_EXHAUSTED",
        status: 503,
        meaning: "serialization failures or deadlocks persisted past the retry budget; retry",
    },
    ProblemType {
        code: "DATABASE_UNAVAILABLE",
        status: 503,
        meaning: "the database could not be reached; retry with the same Idempotency-Key",
    },
    ProblemType {
        code: "POLICY_INVALID",
        status: 500,
        meaning: "the clinic's stored rule policy cannot be used",
    },
    ProblemType { code: "INTERNAL", status: 500, meaning: "a server bug; never described" },
];

/// An RFC 9457 problem document (`application/problem+json`). Extension members
/// (`alternatives`, `conflicts`, `rejected`, `least_infeasible`, `rejection`,
/// `policy_version`) may follow.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Problem {
    /// `https://roomsim.example/problems/{code in kebab case}`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// The code in words.
    pub title: String,
    /// The HTTP status, repeated.
    pub status: u16,
    /// Stable machine-readable code (never renamed); see the schema's enum.
    pub code: String,
    /// What went wrong, for a human. Internal errors are not described.
    pub detail: String,
    /// The request field at fault (JSON path, header name or query parameter), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The body of the `suggest` fallback when no room is feasible: no booking was made.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Suggestions {
    /// Always false.
    pub booked: bool,
    pub policy_version: u64,
    /// `same_time_other_rooms`, `same_room_other_times`, `next_feasible`.
    #[schema(value_type = Object)]
    pub alternatives: serde_json::Value,
    #[schema(value_type = Option<Object>)]
    pub least_infeasible: Option<serde_json::Value>,
    #[schema(value_type = Vec<Object>)]
    pub rejected: Vec<serde_json::Value>,
}

/// The body of a successful cancel.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Cancelled {
    pub id: uuid::Uuid,
    /// Always `cancelled`.
    pub status: String,
}

/// Free intervals of each room within the queried window.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Availability {
    pub clinic_id: uuid::Uuid,
    pub from: chrono::DateTime<chrono::Utc>,
    pub to: chrono::DateTime<chrono::Utc>,
    pub rooms: Vec<RoomAvailability>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct RoomAvailability {
    pub room_id: uuid::Uuid,
    pub name: Option<String>,
    pub free: Vec<FreeInterval>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct FreeInterval {
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
}

/// `GET /healthz` body.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Health {
    /// `ok` or `database unavailable`.
    pub status: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "roomsim clinic room-assignment API",
        description = "Book appointments; a rules engine and allocator give each booking a room. \
            Errors are application/problem+json (schema Problem; every code is listed in its \
            enum). Every response carries X-Request-Id; responses of /v1/ routes carry \
            Server-Timing (rules, conflict, db in milliseconds)."
    ),
    paths(
        create_appointment,
        preview_room_assignment,
        cancel_appointment,
        room_availability,
        healthz,
        metrics,
        openapi_document
    ),
    components(schemas(
        crate::domain::BookingRequest,
        crate::domain::Needs,
        crate::domain::Isolation,
        crate::domain::FallbackMode,
        Problem
    )),
    modifiers(&ProblemCodes, &CommonHeaders)
)]
pub struct ApiDoc;

/// The document, built once per process.
pub fn document() -> &'static Document {
    static DOCUMENT: OnceLock<Document> = OnceLock::new();
    DOCUMENT.get_or_init(ApiDoc::openapi)
}

/// The document as pretty-printed JSON (what `/openapi.json` serves).
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| document().to_pretty_json().expect("an OpenAPI document serialises"))
}

pub(super) fn router() -> Router<ApiContext> {
    Router::new().route("/openapi.json", get(serve_document))
}

async fn serve_document() -> Response {
    let content_type = [(header::CONTENT_TYPE, "application/json")];
    (StatusCode::OK, content_type, document_json()).into_response()
}

/// Sets the `Problem` schema's `code` enum and description from [`PROBLEM_TYPES`].
struct ProblemCodes;

impl Modify for ProblemCodes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.as_mut().expect("components are declared");
        let Some(RefOr::T(Schema::Object(problem))) = components.schemas.get_mut("Problem") else {
            panic!("the Problem schema is declared as an object");
        };
        let mut table = String::from(
            "An RFC 9457 problem. Extension members (alternatives, conflicts, rejected, \
             least_infeasible, rejection, policy_version) may follow.\n\n\
             | code | status | type | meaning |\n| --- | --- | --- | --- |\n",
        );
        for problem_type in PROBLEM_TYPES {
            let ProblemType { code, status, meaning } = problem_type;
            let uri = problem_type.type_uri();
            table.push_str(&format!("| {code} | {status} | {uri} | {meaning} |\n"));
        }
        problem.description = Some(table);
        let Some(RefOr::T(Schema::Object(code))) = problem.properties.get_mut("code") else {
            panic!("the Problem schema has a code property");
        };
        code.enum_values = Some(PROBLEM_TYPES.iter().map(|p| p.code.into()).collect());
    }
}

/// Adds the response headers every operation shares (see the module doc).
struct CommonHeaders;

impl Modify for CommonHeaders {
    fn modify(&self, openapi: &mut Document) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [&mut item.get, &mut item.post, &mut item.put, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                for (status, response) in operation.responses.responses.iter_mut() {
                    let RefOr::T(response) = response else { continue };
                    let headers = &mut response.headers;
                    headers.insert("x-request-id".into(), string_header(REQUEST_ID));
                    if path.starts_with("/v1/") {
                        headers.insert("server-timing".into(), string_header(SERVER_TIMING));
                    }
                    if status == "409" || status == "503" {
                        headers.insert("retry-after".into(), retry_after_header());
                    }
                }
            }
        }
    }
}

const REQUEST_ID: &str = "The id of this request, as the server logs it; quote it when \
    reporting a problem.";

const SERVER_TIMING: &str = "`rules;dur=…, conflict;dur=…, db;dur=…` in milliseconds with \
    microsecond precision: rules = allocator and rules evaluation, conflict = in-transaction \
    conflict resolution, db = all database time.";

fn string_header(description: &str) -> utoipa::openapi::header::Header {
    utoipa::openapi::header::HeaderBuilder::new()
        .schema(Object::with_type(Type::String))
        .description(Some(description))
        .build()
}

fn retry_after_header() -> utoipa::openapi::header::Header {
    utoipa::openapi::header::HeaderBuilder::new()
        .schema(Object::with_type(Type::Integer))
        .description(Some(
            "Seconds to wait before retrying; sent only when the same request may succeed \
             later (IDEMPOTENCY_IN_FLIGHT, RETRIES_EXHAUSTED, DATABASE_UNAVAILABLE).",
        ))
        .build()
}

// The operations. The functions only carry the declarations (see the module doc).

/// Book an appointment; the allocator picks the room.
///
/// The transaction books the best-ranked free room; rooms taken concurrently are skipped and,
/// when every candidate was taken, the clinic is read again and re-allocated. With
/// `fallback: suggest` an infeasible request answers 200 with alternatives and books nothing;
/// with `book_without_room` it books `room_pending` (201, `room: null`).
#[utoipa::path(
    post,
    path = "/v1/appointments",
    operation_id = "createAppointment",
    tag = "appointments",
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255,
            pattern = "^[!-~]+$",
            description = "Optional. Visible ASCII, at most 255 characters by default \
                (`ApiConfig::idempotency_key_chars_max`). A repeat \
                with the same key and body replays the stored response (with \
                `Idempotent-Replayed: true`); a different body is 422 IDEMPOTENCY_KEY_REUSED; \
                while the first is in flight, 409 IDEMPOTENCY_IN_FLIGHT.")
    ),
    request_body(content = crate::domain::BookingRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Booked (`status: booked`, a room) or room_pending (no room).",
            body = super::bodies::CreatedBody,
            headers(("idempotent-replayed" = String,
                description = "`true` when this is the stored response of an earlier request with the same Idempotency-Key."))),
        (status = 200, description = "fallback `suggest` and no feasible room: nothing booked.",
            body = Suggestions),
        (status = 400, description = "MALFORMED_BODY", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "ROOM_UNAVAILABLE, DOCTOR_UNAVAILABLE, PATIENT_UNAVAILABLE, IDEMPOTENCY_IN_FLIGHT",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "BODY_TOO_LARGE", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "INVALID_FIELD, INVALID_TIME_RANGE, DURATION_TOO_LONG, UNKNOWN_REFERENCE, \
            PINNED_ROOM_INFEASIBLE, IDEMPOTENCY_KEY_REUSED", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "INTERNAL, POLICY_INVALID", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "RETRIES_EXHAUSTED, DATABASE_UNAVAILABLE", body = Problem,
            content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn create_appointment() {}

/// Rank the rooms for a booking request without booking.
#[utoipa::path(
    post,
    path = "/v1/room-assignments:preview",
    operation_id = "previewRoomAssignment",
    tag = "appointments",
    request_body(content = crate::domain::BookingRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The allocator's answer.",
            body = crate::allocator::Allocation),
        (status = 400, description = "MALFORMED_BODY", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "BODY_TOO_LARGE", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "INVALID_FIELD, INVALID_TIME_RANGE, DURATION_TOO_LONG, UNKNOWN_REFERENCE",
            body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "INTERNAL, POLICY_INVALID", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "DATABASE_UNAVAILABLE", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn preview_room_assignment() {}

/// Cancel an appointment (idempotent: cancelling a cancelled appointment is 200).
#[utoipa::path(
    post,
    path = "/v1/appointments/{id}/cancel",
    operation_id = "cancelAppointment",
    tag = "appointments",
    params(("id" = uuid::Uuid, Path, description = "The appointment's id.")),
    responses(
        (status = 200, description = "Cancelled.", body = Cancelled),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "INVALID_STATE", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "INVALID_FIELD (`id` is not a UUID)", body = Problem,
            content_type = "application/problem+json"),
        (status = 500, description = "INTERNAL", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "DATABASE_UNAVAILABLE", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn cancel_appointment() {}

/// Free intervals of each of a clinic's rooms within `[from, to)`.
///
/// A free interval is not a promise: rules are applied only when booking or previewing.
#[utoipa::path(
    get,
    path = "/v1/rooms/availability",
    operation_id = "roomAvailability",
    tag = "rooms",
    params(super::availability::AvailabilityQuery),
    responses(
        (status = 200, description = "Free intervals per room.", body = Availability),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "INVALID_FIELD (query, `to`), UNKNOWN_REFERENCE", body = Problem,
            content_type = "application/problem+json"),
        (status = 500, description = "INTERNAL", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "DATABASE_UNAVAILABLE", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code)]
fn room_availability() {}

/// Whether the database is reachable.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    responses(
        (status = 200, description = "The database answered.", body = Health),
        (status = 503, description = "The database did not answer.", body = Health),
    )
)]
#[allow(dead_code)]
fn healthz() {}

/// Prometheus text: booking outcomes, retries, cache counters, latency histograms.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4.", body = String,
            content_type = "text/plain; version=0.0.4; charset=utf-8"),
    )
)]
#[allow(dead_code)]
fn metrics() {}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document.", body = Object)),
)]
#[allow(dead_code)]
fn openapi_document() {}

#[cfg(test)]
mod tests;
