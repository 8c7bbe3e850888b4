//! Serving the router on any listener, with read limits: the one accept loop production
//! (`roomsim serve`, tokio TCP) and the simulation (turmoil TCP) both run.
//!
//! WHAT: [`serve`] accepts connections and serves each with hyper's HTTP/1 connection
//! builder, given a timer so that [`ServeLimits::header_read_timeout`] is enforced (axum 0.8's
//! own `serve` sets no timer, so hyper's 30 s default is silently inert and a slowloris
//! client holds a connection as long as it likes). [`ServeLimits::body_read_timeout`] bounds
//! the time to receive the whole body (408 `REQUEST_TIMEOUT` as problem+json); the body is
//! read under the router's size limit ([`ServeLimits::body_bytes_max`], 413 beyond). On
//! `shutdown` the loop stops accepting, asks every connection to finish its request, and
//! waits for them.
//!
//! WHY: a disconnecting or slow client is the normal case for a public service. The header
//! timeout ends a connection that never finishes its headers; the body timeout ends one
//! that trickles its body; hyper drops the handler of a client that disconnects, which the
//! transaction guard (`db::guard`) makes safe.
//!
//! Each connection runs as a task of its own, spawned by [`serve`] with `tokio::spawn`, or by
//! the caller's spawner with [`serve_spawning`]: the simulation spawns on its host's
//! `LocalSet`, whose tasks a host crash drops in spawn order. (A current-thread runtime keeps
//! `tokio::spawn`ed tasks in lists chosen by their process-wide task id and drops them list by
//! list, so what the drops do would depend on what else ran in the process.)
//!
//! NOT MODELLED: HTTP/2, TLS, a limit on concurrent connections (bound it in front of the
//! service), keep-alive idle timeout beyond the header read timeout of the next request.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;

use crate::error::Error;

/// Read limits of [`serve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeLimits {
    /// From a connection's first byte (or the end of its previous response) to the end of a
    /// request's headers; the connection is closed when exceeded.
    pub header_read_timeout: Duration,
    /// From the end of the headers to the end of the body; 408 when exceeded.
    pub body_read_timeout: Duration,
    /// Largest body read (413 beyond); the router's own limit should be the same.
    pub body_bytes_max: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            body_bytes_max: 16 * 1024,
        }
    }
}

/// One connection's work, from its first byte to its close: what [`serve_spawning`] hands to
/// its spawner.
pub type ConnectionTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Serves `router` on `listener` until `shutdown` completes, then drains open connections.
/// Each connection is a `tokio::spawn`ed task.
pub async fn serve<L>(
    listener: L,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
{
    let spawn = |task: ConnectionTask| drop(tokio::spawn(task));
    serve_spawning(listener, router, limits, shutdown, spawn).await
}

/// [`serve`], with each connection's task given to `spawn` (which must run it to its end).
pub async fn serve_spawning<L>(
    mut listener: L,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send,
    mut spawn: impl FnMut(ConnectionTask) + Send,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
{
    let router = with_body_timeout(router, limits);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, _address) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let service =
            router.clone().map_request(|request: Request<Incoming>| request.map(Body::new));
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
        let connection =
            builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        spawn(Box::pin(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        }));
    }
    graceful.shutdown().await;
    Ok(())
}

/// Reads the whole body first, within the body timeout and the size limit.
fn with_body_timeout(router: Router, limits: ServeLimits) -> Router {
    router.layer(middleware::from_fn_with_state(limits, read_body))
}

async fn read_body(State(limits): State<ServeLimits>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let read = axum::body::to_bytes(body, limits.body_bytes_max);
    match tokio::time::timeout(limits.body_read_timeout, read).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(Err(error)) => {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|cause| cause.is::<http_body_util::LengthLimitError>());
            if too_large {
                Error::BodyTooLarge { bytes_max: limits.body_bytes_max }.into_response()
            } else {
                Error::MalformedBody { message: format!("the body could not be read: {error}") }
                    .into_response()
            }
        }
        Err(_) => {
            let timeout_ms = limits.body_read_timeout.as_millis() as u64;
            Error::RequestTimeout { timeout_ms }.into_response()
        }
    }
}
