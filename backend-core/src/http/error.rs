//! Renders [`Error`] as an RFC 9457 `application/problem+json` response.
//!
//! WHAT: `type` is derived from the stable `code`; `title` is the code's human form; `detail`
//! is [`Error::public_detail`] (internal and database errors are logged, never described);
//! `field` names the request field at fault; extension members (alternatives, conflicts) are
//! merged in. Retryable errors carry `Retry-After: 1`. Extractor rejections (malformed JSON,
//! oversize bodies, bad path or query parameters) are mapped to the same shape.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::error::Error;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        problem_response(&self)
    }
}

pub fn problem_response(error: &Error) -> Response {
    let status = StatusCode::from_u16(error.status_code()).expect("valid status");
    if status.is_server_error() {
        tracing::error!(error = %error, code = error.code(), "request failed");
    }
    let code = error.code();
    let mut body = Map::new();
    body.insert("type".into(), json!(format!("https://roomsim.example/problems/{}", slug(code))));
    body.insert("title".into(), json!(title(code)));
    body.insert("status".into(), json!(status.as_u16()));
    body.insert("code".into(), json!(code));
    body.insert("detail".into(), json!(error.public_detail()));
    if let Some(field) = error.field() {
        body.insert("field".into(), json!(field));
    }
    if let Some(extensions) = error.extensions() {
        for (key, value) in extensions.iter() {
            body.insert(key.clone(), value.clone());
        }
    }
    let text = serde_json::to_string(&Value::Object(body)).expect("JSON values serialise");
    let mut response = (status, text).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    if error.client_may_retry() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// `ROOM_UNAVAILABLE` → `room-unavailable`.
fn slug(code: &str) -> String {
    code.to_ascii_lowercase().replace('_', "-")
}

/// `ROOM_UNAVAILABLE` → `Room unavailable`.
fn title(code: &str) -> String {
    let lower = code.to_ascii_lowercase().replace('_', " ");
    let mut chars = lower.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// A body that could not be read: too large, or not readable.
pub fn body_rejection(rejection: BytesRejection, bytes_max: usize) -> Error {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return Error::BodyTooLarge { bytes_max };
    }
    Error::MalformedBody { message: rejection.body_text() }
}

pub fn path_rejection(rejection: PathRejection, field: &str) -> Error {
    Error::invalid(field, rejection.body_text())
}

pub fn query_rejection(rejection: QueryRejection) -> Error {
    Error::invalid("query", rejection.body_text())
}

/// Parses a JSON body in two steps so the error names what is wrong: syntax (400, with line
/// and column) or shape (422, with the JSON path of the field).
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<(Value, T), Error> {
    let value: Value = serde_json::from_slice(bytes).map_err(|error| Error::MalformedBody {
        message: format!(
            "invalid JSON at line {} column {}: {error}",
            error.line(),
            error.column()
        ),
    })?;
    let typed = serde_path_to_error::deserialize(&value).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." { "body".to_string() } else { path };
        Error::invalid(field, error.into_inner().to_string())
    })?;
    Ok((value, typed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_become_types_and_titles() {
        assert_eq!(slug("ROOM_UNAVAILABLE"), "room-unavailable");
        assert_eq!(title("ROOM_UNAVAILABLE"), "Room unavailable");
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Shape {
        a: u32,
        inner: Inner,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        b: String,
    }

    #[test]
    fn json_errors_name_the_line_or_the_field() {
        let syntax = parse_json::<Shape>(b"{\"a\": 1,").unwrap_err();
        assert_eq!(syntax.status_code(), 400);
        assert!(syntax.to_string().contains("line 1"), "{syntax}");
        let shape = parse_json::<Shape>(br#"{"a": 1, "inner": {"b": 7}}"#).unwrap_err();
        assert_eq!(shape.status_code(), 422);
        assert_eq!(shape.field(), Some("inner.b"));
    }
}
