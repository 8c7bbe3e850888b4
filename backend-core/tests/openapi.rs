//! The OpenAPI document against the router it describes.
//!
//! Goal: a route added to the router without an operation in the document (or an operation
//! whose route is gone) fails here, and `/openapi.json` serves the generated document.
//! Method: the router's routes are read from the sources of `src/http/` (every `.route(PATH,
//! METHOD(…))` call) and compared with the document's paths and methods; each documented
//! operation is then probed on the live router (a fake `Db` answering "no rows"): its method
//! must not be refused (405) and its path must exist (another method gets 405, not 404).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use backend_core::config::ApiConfig;
use backend_core::db::{BoxFuture, Conn, Db, DbError, Rows, SqlValue};
use backend_core::domain::{ManualClock, SequentialIds};
use backend_core::http::{ApiContext, api_router, openapi};
use chrono::{TimeZone, Utc};
use http_body_util::BodyExt;
use tower::ServiceExt;

struct NoRows;

impl Db for NoRows {
    fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn Conn>, DbError>> {
        Box::pin(async { Ok(Box::new(NoRows) as Box<dyn Conn>) })
    }
}

impl Conn for NoRows {
    fn execute<'a>(
        &'a mut self,
        _sql: &'a str,
        _params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<Rows, DbError>> {
        Box::pin(async { Ok(Rows::default()) })
    }
}

fn router() -> axum::Router {
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()));
    let ids = Arc::new(SequentialIds::new(7));
    api_router(ApiContext::new(Arc::new(NoRows), clock, ids, ApiConfig::default(), 1))
}

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// `(path, method)` of every `.route(…)` call in `src`: the path literal and each
/// `get(`/`post(`/… method router inside the call's parentheses.
fn routes_in_source(src: &str, file: &str) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let needle = ".route(";
    let mut rest = src;
    while let Some(at) = rest.find(needle) {
        let after = rest[at + needle.len()..].trim_start();
        let Some(after) = after.strip_prefix('"') else {
            panic!("{file}: a .route( call whose path is not a string literal");
        };
        let path_end = after.find('"').unwrap_or_else(|| panic!("{file}: unterminated path"));
        let path = &after[..path_end];
        // The call's arguments run to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let mut end = None;
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = Some(i);
                break;
            }
        }
        let call = &after[path_end..end.unwrap_or_else(|| panic!("{file}: unclosed .route("))];
        let mut methods = 0;
        for method in METHODS {
            let pattern = format!("{method}(");
            let found = call.match_indices(&pattern).any(|(i, _)| {
                let before = call[..i].chars().next_back();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            if found {
                routes.insert((path.to_string(), method.to_string()));
                methods += 1;
            }
        }
        assert!(methods > 0, "{file}: route {path} has no method this test recognises");
        rest = &after[path_end..];
    }
    routes
}

fn routes_of_the_router() -> BTreeSet<(String, String)> {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut routes = BTreeSet::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&folder).expect("src/http is readable") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            routes.extend(routes_in_source(&text, &path.display().to_string()));
            files += 1;
        }
    }
    assert!(files >= 4, "only {files} source files found in {}", folder.display());
    routes
}

fn documented_routes() -> BTreeSet<(String, String)> {
    let document: serde_json::Value = serde_json::from_str(openapi::document_json()).unwrap();
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if METHODS.contains(&method.as_str()) {
                routes.insert((path.clone(), method.clone()));
            }
        }
    }
    routes
}

#[test]
fn the_source_scan_finds_routes_and_methods() {
    let src = r#"Router::new()
        .route("/a", post(create))
        .route("/b/{id}", get(read).delete(remove))
        .route(
            "/c",
            put(update_thing),
        )
        .route("/d", axum::routing::patch(x))"#;
    let found = routes_in_source(src, "example");
    let expected: BTreeSet<(String, String)> =
        [("/a", "post"), ("/b/{id}", "get"), ("/b/{id}", "delete"), ("/c", "put"), ("/d", "patch")]
            .iter()
            .map(|(p, m)| (p.to_string(), m.to_string()))
            .collect();
    assert_eq!(found, expected);
}

#[test]
fn every_route_of_the_router_is_documented_and_nothing_else() {
    let in_router = routes_of_the_router();
    let documented = documented_routes();
    let missing: Vec<_> = in_router.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&in_router).collect();
    assert!(missing.is_empty(), "routes without an OpenAPI operation: {missing:?}");
    assert!(extra.is_empty(), "documented operations the router does not have: {extra:?}");
    assert!(in_router.len() >= 7, "only {} routes found: {in_router:?}", in_router.len());
}

async fn status(method: &str, uri: &str) -> StatusCode {
    let request = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
    router().oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn every_documented_operation_answers_on_the_router() {
    for (path, method) in documented_routes() {
        let uri = path.replace("{id}", "00000000-0000-0000-0000-000000000001");
        assert!(!uri.contains('{'), "a path parameter this test does not fill: {path}");
        let answered = status(&method.to_uppercase(), &uri).await;
        assert_ne!(answered, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        // A method the path does not have: 405 proves the path is routed (404 would not).
        let other = if method == "delete" { "PATCH" } else { "DELETE" };
        assert_eq!(status(other, &uri).await, StatusCode::METHOD_NOT_ALLOWED, "{other} {path}");
    }
    assert_eq!(status("GET", "/v1/no-such-route").await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_document_is_served_at_openapi_json() {
    let request = Request::builder().uri("/openapi.json").body(Body::empty()).unwrap();
    let response = router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(std::str::from_utf8(&body).unwrap(), openapi::document_json());
    let document: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
}
