//! The backend's error enum and its policy: HTTP status, stable code, retryability.
//!
//! WHAT: every failure a booking, preview, availability or cancel request can meet is one
//! [`Error`] variant. [`Error::status_code`], [`Error::code`] and [`Error::client_may_retry`]
//! are the single place where the mapping lives; `http::error` renders it as
//! `application/problem+json`.
//!
//! WHY: a caller never sees a raw database error. Database failures are classified here
//! (exclusion violation → conflict, serialization/deadlock after the retry budget → 503 with a
//! retry hint, connection loss → 503) and their text is logged, not returned.
//!
//! NOT MODELLED: authentication/authorisation (no 401/403): the clinic id in the body scopes
//! every request.

use crate::db::DbError;

/// Extra members of a problem document (alternatives, conflicts, …), kept as JSON so the error
/// type does not depend on the allocator's types.
pub type ProblemExtensions = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body is not valid JSON or does not have the expected shape.
    #[error("malformed request body: {message}")]
    MalformedBody { message: String },
    /// The body exceeds the configured size limit.
    #[error("request body larger than {bytes_max} bytes")]
    BodyTooLarge { bytes_max: usize },
    /// The booking request fails the domain's own validation (names the field).
    #[error("{0}")]
    Validation(crate::domain::ValidationError),
    /// A field has an invalid value (end ≤ start, overlong string, bad key, …).
    #[error("invalid field `{field}`: {message}")]
    InvalidField { field: String, message: String },
    /// A field names an entity that does not exist (or belongs to another clinic).
    #[error("field `{field}`: {entity} {id} not found{scope}")]
    UnknownReference { field: String, entity: &'static str, id: String, scope: &'static str },
    /// The resource named by the URL does not exist.
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },
    /// No route matches the path.
    #[error("no route {method} {path} (see /openapi.json for the API)")]
    RouteNotFound { method: String, path: String },
    /// The path exists, but not with this method.
    #[error("{path} does not accept {method}")]
    MethodNotAllowed { method: String, path: String },
    /// The client sent its request too slowly (body read timeout).
    #[error("the request body did not arrive within {timeout_ms} ms")]
    RequestTimeout { timeout_ms: u64 },
    /// No feasible room (fallback `reject` or `suggest`): 409 with alternatives.
    #[error("no feasible room: {detail}")]
    RoomUnavailable { detail: String, extensions: Box<ProblemExtensions> },
    /// The doctor or the patient is already booked at that time.
    #[error("{field}: already booked in an overlapping appointment")]
    ParticipantUnavailable { field: &'static str, extensions: Box<ProblemExtensions> },
    /// The client pinned a room (`room_id`) that fails a hard rule or is taken.
    #[error("pinned room {room_id} cannot be used: {reason}")]
    PinnedRoomInfeasible { room_id: String, reason: String, extensions: Box<ProblemExtensions> },
    /// The Idempotency-Key was already used with another request body.
    #[error("Idempotency-Key is already used with a different request body")]
    IdempotencyKeyReused,
    /// A request with the same Idempotency-Key is still being processed.
    #[error("a request with this Idempotency-Key is still in flight; retry later")]
    IdempotencyInFlight,
    /// The resource exists but is in a state that forbids the operation.
    #[error("{message}")]
    InvalidState { message: String },
    /// Serialization failures or deadlocks persisted past the retry budget.
    #[error("gave up after {attempts} attempts ({sqlstate})")]
    RetriesExhausted { attempts: u32, sqlstate: String },
    /// The database could not be reached (pool timeout, lost connection). If this happened
    /// during COMMIT the outcome is unknown: retry with the same Idempotency-Key.
    #[error("database unavailable: {0}")]
    DatabaseUnavailable(DbError),
    /// The stored rule policy cannot be used.
    #[error("rule policy for clinic {clinic_id} is invalid: {message}")]
    PolicyInvalid { clinic_id: String, message: String },
    /// Any other database error: a bug or a schema mismatch. Logged, never shown raw.
    #[error("database error: {0}")]
    Database(DbError),
    /// A programmer error surfaced as a 500 rather than a panic.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::InvalidField { field: field.into(), message: message.into() }
    }

    pub fn participant_unavailable(field: &'static str) -> Error {
        Error::ParticipantUnavailable { field, extensions: Box::default() }
    }

    /// Extra problem members (alternatives, conflicts) carried by the error.
    pub fn extensions(&self) -> Option<&ProblemExtensions> {
        match self {
            Error::RoomUnavailable { extensions, .. }
            | Error::ParticipantUnavailable { extensions, .. }
            | Error::PinnedRoomInfeasible { extensions, .. } => Some(extensions),
            _ => None,
        }
    }

    /// The HTTP status for this error.
    pub fn status_code(&self) -> u16 {
        match self {
            Error::MalformedBody { .. } => 400,
            Error::BodyTooLarge { .. } => 413,
            Error::Validation(_) => 422,
            // The request is well-formed JSON but semantically wrong.
            Error::InvalidField { .. } | Error::UnknownReference { .. } => 422,
            Error::NotFound { .. } | Error::RouteNotFound { .. } => 404,
            Error::MethodNotAllowed { .. } => 405,
            Error::RequestTimeout { .. } => 408,
            Error::RoomUnavailable { .. } | Error::ParticipantUnavailable { .. } => 409,
            Error::PinnedRoomInfeasible { .. } => 422,
            // IETF idempotency draft: mismatch → 422, outstanding request → 409.
            Error::IdempotencyKeyReused => 422,
            Error::IdempotencyInFlight => 409,
            Error::InvalidState { .. } => 409,
            Error::RetriesExhausted { .. } | Error::DatabaseUnavailable(_) => 503,
            Error::PolicyInvalid { .. } | Error::Database(_) | Error::Internal(_) => 500,
        }
    }

    /// A stable machine-readable code (part of the API contract: never rename one).
    pub fn code(&self) -> &'static str {
        match self {
            Error::MalformedBody { .. } => "MALFORMED_BODY",
            Error::BodyTooLarge { .. } => "BODY_TOO_LARGE",
            Error::Validation(error) => error.code(),
            Error::InvalidField { .. } => "INVALID_FIELD",
            Error::UnknownReference { .. } => "UNKNOWN_REFERENCE",
            Error::NotFound { .. } => "NOT_FOUND",
            Error::RouteNotFound { .. } => "ROUTE_NOT_FOUND",
            Error::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            Error::RequestTimeout { .. } => "REQUEST_TIMEOUT",
            Error::RoomUnavailable { .. } => "ROOM_UNAVAILABLE",
            Error::ParticipantUnavailable { field: "doctor_id", .. } => "DOCTOR_UNAVAILABLE",
            Error::ParticipantUnavailable { .. } => "PATIENT_UNAVAILABLE",
            Error::PinnedRoomInfeasible { .. } => "PINNED_ROOM_INFEASIBLE",
            Error::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Error::IdempotencyInFlight => "IDEMPOTENCY_IN_FLIGHT",
            Error::InvalidState { .. } => "INVALID_STATE",
            Error::RetriesExhausted { .. } => "RETRIES_EXHAUSTED",
            Error::DatabaseUnavailable(_) => "DATABASE_UNAVAILABLE",
            Error::PolicyInvalid { .. } => "POLICY_INVALID",
            Error::Database(_) | Error::Internal(_) => "INTERNAL",
        }
    }

    /// True when the same request may succeed if sent again later (Retry-After is sent).
    pub fn client_may_retry(&self) -> bool {
        match self {
            // Contention or an outage: the same request can succeed later.
            Error::IdempotencyInFlight
            | Error::RetriesExhausted { .. }
            | Error::DatabaseUnavailable(_) => true,
            // The world may change (a cancellation frees the room), but retrying the identical
            // request at once is pointless.
            Error::RoomUnavailable { .. } | Error::ParticipantUnavailable { .. } => false,
            _ => false,
        }
    }

    /// The request field this error is about, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::InvalidField { field, .. } | Error::UnknownReference { field, .. } => {
                Some(field)
            }
            Error::ParticipantUnavailable { field, .. } => Some(field),
            Error::Validation(error) => Some(error.field()),
            Error::PinnedRoomInfeasible { .. } => Some("room_id"),
            _ => None,
        }
    }

    /// The text shown to the client: internal errors are not described.
    pub fn public_detail(&self) -> String {
        match self {
            Error::Database(_) | Error::Internal(_) => "internal error".to_string(),
            Error::DatabaseUnavailable(_) => "database unavailable; retry later".to_string(),
            other => other.to_string(),
        }
    }
}

impl From<DbError> for Error {
    /// The default classification of a database error that the booking code did not handle
    /// itself (it handles 23P01, 40001 and 40P01 where they can occur).
    fn from(error: DbError) -> Error {
        if error.is_connection_failure() {
            return Error::DatabaseUnavailable(error);
        }
        if error.sqlstate == "22021" {
            // Request validation rejects such text first; this is the net under it.
            return Error::invalid(
                "body",
                "a text field holds a character PostgreSQL cannot store",
            );
        }
        match error.constraint.as_deref() {
            Some("no_doctor_overlap") => Error::participant_unavailable("doctor_id"),
            Some("no_patient_overlap") => Error::participant_unavailable("patient_id"),
            _ => Error::Database(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_are_classified_not_leaked() {
        let lost = Error::from(DbError::new(DbError::CONNECTION_FAILURE, "socket closed"));
        assert_eq!(lost.status_code(), 503);
        assert!(lost.client_may_retry());
        assert!(!lost.public_detail().contains("socket"));

        let mut overlap = DbError::new("23P01", "conflicting key value");
        overlap.constraint = Some("no_doctor_overlap".into());
        let mapped = Error::from(overlap);
        assert_eq!(mapped.code(), "DOCTOR_UNAVAILABLE");
        assert_eq!(mapped.field(), Some("doctor_id"));

        let nul = Error::from(DbError::new("22021", "invalid byte sequence for encoding"));
        assert_eq!(nul.status_code(), 422);

        let other = Error::from(DbError::new("42P01", "relation \"x\" does not exist"));
        assert_eq!(other.status_code(), 500);
        assert_eq!(other.public_detail(), "internal error");
    }
}
