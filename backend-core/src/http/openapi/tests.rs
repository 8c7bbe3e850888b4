//! Unit tests of the OpenAPI document: every route, request field and error code is
//! documented, and the documented headers are there.

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
    let additional = &document["components"]["schemas"]["BookingRequest"]["additionalProperties"];
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
