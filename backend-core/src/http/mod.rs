//! The HTTP API (axum 0.8), built from explicit state and servable on any listener.
//!
//! WHAT: [`ApiContext`] carries everything a handler needs (database, clock, id source,
//! configuration with the strategy and retry budget, metrics, policy cache, parsed-body cache,
//! the CPU-cost hook and the seeded retry-jitter RNG); [`api_router`] merges the resource routers:
//!
//! ```text
//! POST /v1/appointments                 book (Idempotency-Key honoured)      appointments.rs
//! POST /v1/room-assignments:preview     same ranking, no write               appointments.rs
//! POST /v1/appointments/{id}/cancel     cancel (idempotent)                  appointments.rs
//! GET  /v1/rooms/availability           free intervals per room              availability.rs
//! GET  /healthz                         database reachable                   here
//! GET  /metrics                         Prometheus text (outcomes, retries,  here
//!                                       caches, latency histograms)
//! GET  /openapi.json                    the OpenAPI 3.1 document             openapi.rs
//! ```
//! Errors are `application/problem+json` with stable codes (`error.rs`). Every response of a
//! booking or preview carries `Server-Timing: rules;dur=…, conflict;dur=…, db;dur=…` in
//! milliseconds with microsecond precision, measured with `tokio::time::Instant` (virtual
//! time under turmoil): rules = allocator (rules evaluation, including its in-memory interval
//! checks) plus the charged CPU cost; conflict = in-transaction conflict resolution (locks,
//! checks, INSERT attempts) plus the charged conflict-detection cost, or, when the conflict is
//! found in the snapshot (busy participant, no free room: no transaction runs), that round's
//! snapshot read and allocator time; db = all database time.
//!
//! Every response carries `x-request-id` (the client's, when sane, else a counter), and the
//! handler runs in a `request` tracing span with that id; every 5xx is logged at error level.
//! 404 (no route) and 405 (wrong method) are problem+json too. `serve.rs` is the accept loop
//! with header and body read timeouts.
//!
//! NOT MODELLED: authentication, CORS, TLS.

mod appointments;
mod availability;
mod bodies;
pub mod error;
pub mod openapi;
pub mod serve;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tracing::Instrument;

use crate::booking::body_cache::BodyCache;
use crate::booking::work::{NoCharge, WorkCharge};
use crate::config::ApiConfig;
use crate::db::Db;
use crate::domain::{Clock, IdSource};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::rules::PolicyCache;

/// Everything the handlers share. Cheap to clone (all `Arc`s).
#[derive(Clone)]
pub struct ApiContext {
    pub db: Arc<dyn Db>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdSource>,
    pub config: Arc<ApiConfig>,
    pub metrics: Arc<Metrics>,
    pub policy_cache: Arc<PolicyCache>,
    /// Stored bodies already parsed, by their text (`booking::body_cache`).
    pub bodies: Arc<BodyCache>,
    pub work: Arc<dyn WorkCharge>,
    /// Jitter for retry backoff; seeded, so a simulated run replays exactly.
    pub retry_rng: Arc<Mutex<ChaCha8Rng>>,
}

impl ApiContext {
    /// A context with fresh policy and body caches and metrics, no CPU-cost charge, and the retry RNG
    /// seeded from `retry_seed`.
    pub fn new(
        db: Arc<dyn Db>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
        config: ApiConfig,
        retry_seed: u64,
    ) -> ApiContext {
        ApiContext {
            db,
            clock,
            ids,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::default()),
            policy_cache: Arc::new(PolicyCache::default()),
            bodies: Arc::new(BodyCache::default()),
            work: Arc::new(NoCharge),
            retry_rng: Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(retry_seed))),
        }
    }

    /// Replaces the CPU-cost hook (the simulation's virtual-time charge).
    pub fn with_work_charge(mut self, work: Arc<dyn WorkCharge>) -> ApiContext {
        self.work = work;
        self
    }

    /// Reads `clinic_id`'s rule policy into the policy cache through the pool: the version
    /// check and the policy read a booking makes on a cache miss (`booking::snapshot::
    /// load_policy`), so later bookings find it cached as they do in a service that has
    /// already served one. The connection goes back to the pool.
    pub async fn warm_policy(&self, clinic_id: uuid::Uuid) -> crate::error::Result<()> {
        let mut conn = self.db.acquire().await?;
        let (cache, bodies) = (&self.policy_cache, &self.bodies);
        crate::booking::snapshot::load_policy(conn.as_mut(), cache, bodies, clinic_id).await?;
        Ok(())
    }

    /// Replaces the parsed-body cache, e.g. with one shared by every backend a process runs.
    /// The cache changes no answer (`booking::body_cache`), so sharing it is unobservable.
    pub fn with_body_cache(mut self, bodies: Arc<BodyCache>) -> ApiContext {
        self.bodies = bodies;
        self
    }

    /// Replaces the counters `/metrics` renders, e.g. with ones that outlive a restarted
    /// service (the simulation's backend host counts over every incarnation).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> ApiContext {
        self.metrics = metrics;
        self
    }
}

/// The whole API. Serve it on any listener (tokio or turmoil TCP) with [`serve::serve`], the
/// accept loop with read limits that `roomsim serve` and the simulation both run.
pub fn api_router(ctx: ApiContext) -> Router {
    let body_bytes_max = ctx.config.body_bytes_max;
    Router::new()
        .merge(appointments::router())
        .merge(availability::router())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(openapi::router())
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_bytes_max))
        .layer(middleware::from_fn_with_state(Arc::new(AtomicU64::new(1)), request_id))
        .with_state(ctx)
}

/// The response header that carries the request id (taken from the request when it is a
/// sane one: 1 to [`REQUEST_ID_CHARS_MAX`] visible ASCII characters).
pub const REQUEST_ID_HEADER: &str = "x-request-id";
pub const REQUEST_ID_CHARS_MAX: usize = 64;

/// Tags every request with an id: a `request` tracing span around the handler (so its logs,
/// retries and rollbacks name it), an error log for every 5xx, and the id in the response.
/// Ids are a per-router counter, so a simulated run replays them exactly.
async fn request_id(
    State(counter): State<Arc<AtomicU64>>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let given = request.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok());
    let id = match given {
        Some(id)
            if (1..=REQUEST_ID_CHARS_MAX).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            id.to_string()
        }
        _ => format!("{:016x}", counter.fetch_add(1, Ordering::Relaxed)),
    };
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    if status.is_server_error() {
        span.in_scope(|| tracing::error!(status = status.as_u16(), "answered with a server error"));
    }
    let value = HeaderValue::from_str(&id).expect("visible ASCII is a valid header value");
    response.headers_mut().insert(REQUEST_ID_HEADER, value);
    response
}

/// 404 for a path no route matches, as problem+json like every other error.
async fn route_not_found(method: Method, uri: Uri) -> Response {
    let path = uri.path().to_string();
    Error::RouteNotFound { method: method.to_string(), path }.into_response()
}

/// 405 for a known path with another method (axum adds the `Allow` header).
async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let path = uri.path().to_string();
    Error::MethodNotAllowed { method: method.to_string(), path }.into_response()
}

async fn healthz(State(ctx): State<ApiContext>) -> Response {
    let ok = match ctx.db.acquire().await {
        Ok(mut conn) => conn.execute("SELECT 1 AS ok", &[]).await.is_ok(),
        Err(_) => false,
    };
    let (status, text) = if ok {
        (StatusCode::OK, r#"{"status":"ok"}"#)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"database unavailable"}"#)
    };
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

async fn metrics(State(ctx): State<ApiContext>) -> Response {
    let (hits, misses) = (ctx.policy_cache.hits(), ctx.policy_cache.misses());
    let text = ctx.metrics.render(hits, misses, &ctx.bodies.counts());
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], text).into_response()
}

// The phase durations are measured by the booking service (`booking::timing`); rendering them
// as a header is this layer's (an inherent impl may live anywhere in the defining crate).
pub use crate::booking::timing::Timing;

impl Timing {
    /// `rules;dur=0.123, conflict;dur=0.000, db;dur=1.500` (ms, µs precision).
    pub fn header_value(&self) -> HeaderValue {
        let ms = |d: Duration| {
            let us = d.as_micros();
            format!("{}.{:03}", us / 1000, us % 1000)
        };
        let text = format!(
            "rules;dur={}, conflict;dur={}, db;dur={}",
            ms(self.rules),
            ms(self.conflict),
            ms(self.db)
        );
        HeaderValue::from_str(&text).expect("ASCII header value")
    }
}

/// Adds the Server-Timing header to a response.
fn with_timing(mut response: Response, timing: &Timing) -> Response {
    response.headers_mut().insert("server-timing", timing.header_value());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_uses_milliseconds_with_microsecond_precision() {
        let timing = Timing {
            rules: Duration::from_micros(1_234),
            conflict: Duration::from_micros(5),
            db: Duration::from_millis(12),
        };
        assert_eq!(
            timing.header_value().to_str().unwrap(),
            "rules;dur=1.234, conflict;dur=0.005, db;dur=12.000"
        );
    }
}
