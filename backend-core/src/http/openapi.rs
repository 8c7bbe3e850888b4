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
mod tests {
    use std::collections::BTreeSet;

    use serde::de::{Deserialize, Deserializer, Error as _, Visitor};
    use serde_json::{Value, json};

    use super::*;
    use crate::allocator::fixture::Fixture;
    use crate::allocator::{AllocatorConfig, allocate};
    use crate::db::DbError;
    use crate::domain::{BookingRequest, Needs, ValidationError};
    use crate::error::Error;
    use crate::http::availability::AvailabilityQuery;
    use crate::http::bodies::{Assignment, BookedRoom, CreatedBody};
    use crate::rules::default_rule_set;

    /// A deserializer that records the field names serde's derive passes to
    /// `deserialize_struct` (the names on the wire, after renames) and then fails.
    struct FieldNames<'a>(&'a mut Option<&'static [&'static str]>);

    impl<'de> Deserializer<'de> for FieldNames<'_> {
        type Error = serde::de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(Self::Error::custom("only structs are inspected"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = Some(fields);
            Err(Self::Error::custom("fields recorded"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    fn serde_fields<'de, T: Deserialize<'de>>() -> BTreeSet<String> {
        let mut fields = None;
        let _ = T::deserialize(FieldNames(&mut fields));
        let fields = fields.expect("a struct deserialised through deserialize_struct");
        fields.iter().map(|field| field.to_string()).collect()
    }

    fn document_value() -> Value {
        serde_json::from_str(document_json()).expect("the document is JSON")
    }

    /// (properties, required) of a component schema.
    fn schema(name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
        let document = document_value();
        let schema = &document["components"]["schemas"][name];
        let properties = schema["properties"].as_object().unwrap_or_else(|| panic!("{name}"));
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        (
            properties.keys().cloned().collect(),
            required.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
        )
    }

    fn keys(value: &Value) -> BTreeSet<String> {
        value.as_object().expect("an object").keys().cloned().collect()
    }

    fn full_request() -> Value {
        json!({
            "clinic_id": "00000000-0000-0000-0000-000000000001",
            "doctor_id": "00000000-0000-0000-0000-000000000002",
            "patient_id": "00000000-0000-0000-0000-000000000003",
            "appointment_type": "consult",
            "start": "2030-01-07T09:00:00Z",
            "end": "2030-01-07T09:30:00Z",
            "room_id": null,
            "needs": {
                "equipment": ["ecg"], "accessible": true, "isolation": "contact",
                "companions": 1, "interpreter": false, "video": false, "private_room": false,
                "nurse_pod": "a"
            },
            "fallback": "suggest",
            "previous_room_id": null
        })
    }

    /// The fields a body may omit: those whose removal serde still accepts.
    fn optional_fields<T: serde::de::DeserializeOwned>(full: &Value) -> BTreeSet<String> {
        serde_json::from_value::<T>(full.clone()).expect("the full body deserialises");
        let mut optional = BTreeSet::new();
        for field in keys(full) {
            let mut without = full.clone();
            without.as_object_mut().unwrap().remove(&field);
            if serde_json::from_value::<T>(without).is_ok() {
                optional.insert(field);
            }
        }
        optional
    }

    /// Goal: every field serde reads from a booking request (and its `needs`) is in the
    /// schema, with nothing extra, and exactly the fields serde requires are `required`.
    /// Method: the field names serde's derive declares, and removal probes on a full body.
    #[test]
    fn request_fields_match_the_schema() {
        let (properties, required) = schema("BookingRequest");
        let fields = serde_fields::<BookingRequest>();
        assert_eq!(properties, fields, "BookingRequest schema vs serde fields");
        let full = full_request();
        assert_eq!(keys(&full), fields, "the test's full body names every field");
        let optional = optional_fields::<BookingRequest>(&full);
        let serde_required: BTreeSet<String> = fields.difference(&optional).cloned().collect();
        assert_eq!(required, serde_required, "required fields of BookingRequest");

        let (properties, required) = schema("Needs");
        let fields = serde_fields::<Needs>();
        assert_eq!(properties, fields, "Needs schema vs serde fields");
        assert_eq!(keys(&full["needs"]), fields);
        assert_eq!(optional_fields::<Needs>(&full["needs"]), fields, "every need is optional");
        assert!(required.is_empty(), "Needs has required fields {required:?}");
        let document = document_value();
        let additional =
            &document["components"]["schemas"]["BookingRequest"]["additionalProperties"];
        assert_eq!(additional, &json!(false), "unknown fields are rejected, so say so");
    }

    /// Goal: the limits the schema states are the ones the server enforces.
    #[test]
    fn documented_limits_are_the_code_limits() {
        use crate::domain::{COMPANIONS_COUNT_MAX, KEY_BYTES_MAX, NEEDS_EQUIPMENT_COUNT_MAX};
        let document = document_value();
        let schemas = &document["components"]["schemas"];
        let request = &schemas["BookingRequest"]["properties"];
        assert_eq!(request["appointment_type"]["maxLength"], json!(KEY_BYTES_MAX));
        assert_eq!(request["appointment_type"]["minLength"], json!(1));
        let needs = &schemas["Needs"]["properties"];
        assert_eq!(needs["equipment"]["maxItems"], json!(NEEDS_EQUIPMENT_COUNT_MAX));
        assert_eq!(needs["companions"]["maximum"], json!(COMPANIONS_COUNT_MAX));
        assert_eq!(needs["nurse_pod"]["maxLength"], json!(KEY_BYTES_MAX));
        let booking = &document["paths"]["/v1/appointments"]["post"];
        let key = &booking["parameters"][0];
        assert_eq!(key["name"], "Idempotency-Key");
        let chars_max = crate::config::ApiConfig::default().idempotency_key_chars_max;
        assert_eq!(key["schema"]["maxLength"], json!(chars_max));
    }

    /// Goal: the availability operation lists exactly the query's fields.
    #[test]
    fn availability_parameters_match_the_query() {
        let document = document_value();
        let parameters = document["paths"]["/v1/rooms/availability"]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .map(|p| {
                assert_eq!(p["in"], "query");
                p["name"].as_str().unwrap().to_string()
            })
            .collect::<BTreeSet<_>>();
        assert_eq!(parameters, serde_fields::<AvailabilityQuery>());
    }

    /// One value of every error variant. The `match` makes this fail to compile when a
    /// variant is added, so the new code cannot be forgotten here (and then in the table).
    fn every_error() -> Vec<Error> {
        let db = || DbError::new("XX000", "x");
        let extensions = Box::<crate::error::ProblemExtensions>::default;
        let time = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let errors = vec![
            Error::MalformedBody { message: String::new() },
            Error::BodyTooLarge { bytes_max: 1 },
            Error::Validation(ValidationError::EndNotAfterStart { start: time, end: time }),
            Error::Validation(ValidationError::DurationTooLong { minutes: 1, max: 1 }),
            Error::Validation(ValidationError::Empty { field: "f" }),
            Error::Validation(ValidationError::TooLong { field: "f", bytes: 1, max: 1 }),
            Error::Validation(ValidationError::TooMany { field: "f", count: 1, max: 1 }),
            Error::Validation(ValidationError::ControlCharacter { field: "f", code_point: 0 }),
            Error::Validation(ValidationError::OutsideHorizon {
                start: time,
                earliest: time,
                latest: time,
                past_days: 1,
                future_days: 1,
            }),
            Error::invalid("f", "m"),
            Error::UnknownReference { field: "f".into(), entity: "e", id: "i".into(), scope: "" },
            Error::NotFound { entity: "e", id: "i".into() },
            Error::RouteNotFound { method: "GET".into(), path: "/x".into() },
            Error::MethodNotAllowed { method: "PUT".into(), path: "/healthz".into() },
            Error::RequestTimeout { timeout_ms: 1 },
            Error::RoomUnavailable { detail: String::new(), extensions: extensions() },
            Error::ParticipantUnavailable { field: "doctor_id", extensions: extensions() },
            Error::ParticipantUnavailable { field: "patient_id", extensions: extensions() },
            Error::PinnedRoomInfeasible {
                room_id: String::new(),
                reason: String::new(),
                extensions: extensions(),
            },
            Error::IdempotencyKeyReused,
            Error::IdempotencyInFlight,
            Error::InvalidState { message: String::new() },
            Error::RetriesExhausted { attempts: 1, sqlstate: "40001".into() },
            Error::DatabaseUnavailable(db()),
            Error::PolicyInvalid { clinic_id: String::new(), message: String::new() },
            Error::Database(db()),
            Error::Internal(String::new()),
        ];
        for error in &errors {
            match error {
                Error::MalformedBody { .. }
                | Error::BodyTooLarge { .. }
                | Error::Validation(
                    ValidationError::EndNotAfterStart { .. }
                    | ValidationError::DurationTooLong { .. }
                    | ValidationError::Empty { .. }
                    | ValidationError::TooLong { .. }
                    | ValidationError::TooMany { .. }
                    | ValidationError::ControlCharacter { .. }
                    | ValidationError::OutsideHorizon { .. },
                )
                | Error::InvalidField { .. }
                | Error::UnknownReference { .. }
                | Error::NotFound { .. }
                | Error::RouteNotFound { .. }
                | Error::MethodNotAllowed { .. }
                | Error::RequestTimeout { .. }
                | Error::RoomUnavailable { .. }
                | Error::ParticipantUnavailable { .. }
                | Error::PinnedRoomInfeasible { .. }
                | Error::IdempotencyKeyReused
                | Error::IdempotencyInFlight
                | Error::InvalidState { .. }
                | Error::RetriesExhausted { .. }
                | Error::DatabaseUnavailable(_)
                | Error::PolicyInvalid { .. }
                | Error::Database(_)
                | Error::Internal(_) => {}
            }
        }
        errors
    }

    /// Goal: every code a problem body can carry is in the Problem schema's enum with the
    /// status the server sends, and the schema lists no code the server never sends.
    #[test]
    fn every_error_code_is_documented() {
        let mut sent = BTreeSet::new();
        for error in every_error() {
            let code = error.code();
            let documented = PROBLEM_TYPES.iter().find(|p| p.code == code);
            let documented = documented.unwrap_or_else(|| panic!("{code} is not in PROBLEM_TYPES"));
            assert_eq!(documented.status, error.status_code(), "status of {code}");
            let body = crate::http::error::problem_response(&error);
            assert_eq!(body.status().as_u16(), documented.status);
            sent.insert(code);
        }
        let listed: BTreeSet<&str> = PROBLEM_TYPES.iter().map(|p| p.code).collect();
        assert_eq!(listed, sent, "PROBLEM_TYPES lists a code no error has");
        let document = document_value();
        let problem = &document["components"]["schemas"]["Problem"];
        let codes: BTreeSet<&str> = problem["properties"]["code"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(codes, listed);
        let description = problem["description"].as_str().unwrap();
        assert!(description.contains("https://roomsim.example/problems/room-unavailable"));
    }

    /// Goal: a problem body's members are the Problem schema's (plus extensions), and its
    /// `type` is the documented URI.
    #[test]
    fn problem_bodies_match_the_schema() {
        let (properties, required) = schema("Problem");
        let error = Error::invalid("end", "bad");
        let response = crate::http::error::problem_response(&error);
        let body = futures::executor::block_on(axum::body::to_bytes(response.into_body(), 1 << 16));
        let body: Value = serde_json::from_slice(&body.unwrap()).unwrap();
        assert_eq!(keys(&body), properties);
        assert!(required.is_subset(&keys(&body)));
        let documented = PROBLEM_TYPES.iter().find(|p| p.code == "INVALID_FIELD").unwrap();
        assert_eq!(body["type"], documented.type_uri());
    }

    /// Goal: the 201 body and the preview body have exactly the documented members.
    /// Method: a generated clinic's allocation, as in `bodies`' own test.
    #[test]
    fn response_bodies_match_their_schemas() {
        let mut fixture = Fixture::generated(12, 7);
        fixture.snapshot.appointments.clear();
        let allocation = allocate(
            &default_rule_set(),
            &fixture.snapshot,
            &fixture.request,
            &AllocatorConfig::default(),
        )
        .unwrap();
        let explanation = allocation.explanation.as_ref().expect("a room was assigned");
        let ranked = &allocation.ranked;
        let request = &fixture.request;
        let body = CreatedBody {
            alternatives: &ranked[1..],
            appointment_type: &request.appointment_type,
            assignment: Assignment {
                explanation: Some(&explanation.contributions),
                policy_version: allocation.policy_version,
                rank: Some(0),
                rejected: &allocation.rejected,
                score: "0hard/0medium/0soft",
            },
            clinic_id: request.clinic_id,
            doctor_id: request.doctor_id,
            end: request.end,
            id: uuid::Uuid::from_u128(42),
            patient_id: request.patient_id,
            room: Some(BookedRoom { id: ranked[0].room_id, name: Some(&ranked[0].room_name) }),
            start: request.start,
            status: "booked",
            turnover_minutes: ranked[0].turnover_minutes,
        };
        let created: Value = serde_json::from_str(&body.to_json()).unwrap();
        for (name, value) in [
            ("BookingCreated", &created),
            ("Assignment", &created["assignment"]),
            ("BookedRoom", &created["room"]),
        ] {
            let (properties, required) = schema(name);
            assert_eq!(keys(value), properties, "{name}");
            assert!(required.is_subset(&properties), "{name}");
        }
        let preview = serde_json::to_value(&allocation).unwrap();
        let (properties, _) = schema("RoomAssignmentPreview");
        assert_eq!(keys(&preview), properties, "RoomAssignmentPreview");
    }

    /// Goal: the documented headers are there: Idempotency-Key on booking, Server-Timing
    /// on every `/v1/` response, X-Request-Id on every response, and it is OpenAPI 3.1.
    #[test]
    fn headers_are_documented() {
        let document = document_value();
        assert_eq!(document["openapi"], "3.1.0");
        let booking = &document["paths"]["/v1/appointments"]["post"];
        let names: Vec<&str> = booking["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "header")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Idempotency-Key"]);
        let mut responses = 0;
        for (path, item) in document["paths"].as_object().unwrap() {
            for (_method, operation) in item.as_object().unwrap() {
                for (status, response) in operation["responses"].as_object().unwrap() {
                    let headers = &response["headers"];
                    assert!(headers.get("x-request-id").is_some(), "{path} {status}");
                    let timed = headers.get("server-timing").is_some();
                    assert_eq!(timed, path.starts_with("/v1/"), "{path} {status}");
                    responses += 1;
                }
            }
        }
        assert!(responses >= 20, "only {responses} responses documented");
    }
}
