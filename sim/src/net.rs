//! HTTP over turmoil's simulated TCP: an axum listener and a minimal hyper 1 client.
//!
//! The backend host serves backend-core's axum router on a [`TurmoilListener`] with
//! backend-core's own accept loop (`backend_core::http::serve::serve`, as `roomsim serve`
//! does). The clients host sends with hyper's low-level `client::conn::http1` through a
//! [`Session`] per simulated user, in one of two [`Connections`] modes:
//! - keep-alive (the default, as Locust's `HttpUser`): the user keeps ONE HTTP/1.1 connection
//!   and sends its successive requests (its bookings and their retries) on it. A connection
//!   that broke (message loss, a backend crash, a request given up or timed out by the
//!   client) is dropped, never reused: an attempt cut short may have left a half-read answer
//!   on it. The next attempt connects again; the retry policy is the caller's, unchanged.
//! - fresh (`--fresh-connections`): every attempt on a connection of its own, closed after
//!   its answer (the simulation's only mode before issue #16).
//!
//! No real sockets, threads or wall clock are involved. The backend's keep-alive idle limit
//! is its header read timeout (`hosts::SERVE_READ_TIMEOUT_MS`, 10 s modelled), far beyond a
//! run's few modelled milliseconds between one user's requests, so the backend never closes
//! an idle connection in a run.
//!
//! An idle connection already seen closed when the user's next request is due (the backend
//! reset it) is replaced before sending; one whose breakage has not reached the client yet
//! fails that request, as a lost attempt. Not modelled: an HTTP library's silent resend of a
//! request that failed on a stale kept connection (urllib3, under Locust, retries some).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use turmoil::net::{TcpListener, TcpStream};

/// An accepted-connection source for `axum::serve`; counts the connections it accepted.
pub struct TurmoilListener {
    pub listener: TcpListener,
    /// Connections accepted so far (shared with whoever reads the count; one host's thread).
    pub accepted: Arc<std::sync::atomic::AtomicU64>,
}

impl TurmoilListener {
    pub fn new(listener: TcpListener) -> TurmoilListener {
        TurmoilListener { listener, accepted: Arc::default() }
    }
}

impl axum::serve::Listener for TurmoilListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // Bounded only by the host's life: accept errors are transient in turmoil (a peer
        // that went away); back off one tick and try again, as axum's own listener does.
        loop {
            match self.listener.accept().await {
                Ok(pair) => {
                    self.accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return pair;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// An HTTP answer.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// Why an attempt got no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpFailure {
    /// Could not connect (host down, partitioned, refused).
    Connect(String),
    /// The connection broke before a full answer arrived.
    Broken(String),
}

/// How a simulated user's requests reach the backend (`--fresh-connections`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Connections {
    /// One HTTP/1.1 keep-alive connection per user, reused by its successive requests and
    /// replaced when broken (Locust's `HttpUser`).
    #[default]
    KeepAlive,
    /// A fresh connection per request (attempt), closed after its answer.
    Fresh,
}

impl Connections {
    /// The mode `--fresh-connections` (present or not) asks for.
    pub fn from_fresh_flag(fresh: bool) -> Connections {
        if fresh { Connections::Fresh } else { Connections::KeepAlive }
    }

    /// How reports name it.
    pub fn describe(self) -> &'static str {
        match self {
            Connections::KeepAlive => "keep-alive (one HTTP/1.1 connection per user)",
            Connections::Fresh => "fresh (one connection per request, --fresh-connections)",
        }
    }
}

/// Sends one request on a fresh connection to `host:port` and reads the whole answer.
pub async fn send(
    host: &str,
    port: u16,
    request: http::Request<Full<Bytes>>,
) -> Result<HttpAnswer, HttpFailure> {
    Session::new(host, port, Connections::Fresh).send(request, None).await
}

/// How a slow client writes: at most `chunk_bytes` per write, `gap` (simulated) between
/// writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    pub chunk_bytes: u32,
    pub gap: Duration,
}

/// The pace of one connection's writes, set before each request sent on it.
type PaceCell = Arc<Mutex<Option<Pace>>>;

/// An idle connection kept for the user's next request.
struct Idle {
    sender: SendRequest<Full<Bytes>>,
    pace: PaceCell,
}

/// One simulated user's way to the backend: its keep-alive connection (or none, between
/// fresh ones). Drop it to close the connection.
pub struct Session {
    host: String,
    port: u16,
    mode: Connections,
    idle: Option<Idle>,
    opened: u64,
}

impl Session {
    pub fn new(host: &str, port: u16, mode: Connections) -> Session {
        Session { host: host.to_string(), port, mode, idle: None, opened: 0 }
    }

    /// Connections this session opened so far.
    pub fn opened(&self) -> u64 {
        self.opened
    }

    /// Sends `request` and reads the whole answer, writing at `pace` when given (a slow
    /// client). Keep-alive: on the idle connection when it is still usable, else on a new
    /// one, which is kept only once its answer has been read in full. If this future is
    /// dropped mid-request (a timeout, a client giving up), the connection goes with it.
    pub async fn send(
        &mut self,
        request: http::Request<Full<Bytes>>,
        pace: Option<Pace>,
    ) -> Result<HttpAnswer, HttpFailure> {
        let kept = match self.idle.take() {
            // `ready` fails at once for a connection that ended while idle.
            Some(mut idle) => idle.sender.ready().await.is_ok().then_some(idle),
            None => None,
        };
        let Idle { mut sender, pace: cell } = match kept {
            Some(idle) => idle,
            None => self.connect().await?,
        };
        *cell.lock().expect("pace") = pace;
        let response =
            sender.send_request(request).await.map_err(|e| HttpFailure::Broken(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| HttpFailure::Broken(e.to_string()))?.to_bytes();
        if self.mode == Connections::KeepAlive {
            self.idle = Some(Idle { sender, pace: cell });
        }
        Ok(HttpAnswer { status: parts.status.as_u16(), headers: parts.headers, body })
    }

    async fn connect(&mut self) -> Result<Idle, HttpFailure> {
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| HttpFailure::Connect(e.to_string()))?;
        self.opened += 1;
        let pace = PaceCell::default();
        let stream = Paced { inner: stream, pace: pace.clone(), sleep: None };
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| HttpFailure::Connect(e.to_string()))?;
        // The connection task ends when the connection breaks or its sender is dropped
        // (fresh: after the one request; keep-alive: when the session lets it go).
        tokio::task::spawn_local(async move {
            let _ = connection.await;
        });
        Ok(Idle { sender, pace })
    }
}

/// A stream whose writes are cut to `pace.chunk_bytes` and spaced `pace.gap` apart.
struct Paced<S> {
    inner: S,
    pace: PaceCell,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Paced<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Paced<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let Some(pace) = *self.pace.lock().expect("pace") else {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        };
        if let Some(sleep) = self.sleep.as_mut() {
            std::task::ready!(sleep.as_mut().poll(cx));
            self.sleep = None;
        }
        let chunk = buf.len().min(pace.chunk_bytes as usize);
        let written = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &buf[..chunk]))?;
        self.sleep = Some(Box::pin(tokio::time::sleep(pace.gap)));
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A JSON POST request with extra headers.
pub fn post_json(
    host: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &serde_json::Value,
) -> http::Request<Full<Bytes>> {
    let mut builder = http::Request::post(path)
        .header(http::header::HOST, host)
        .header(http::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    let bytes = serde_json::to_vec(body).expect("a serde_json::Value always serializes");
    builder.body(Full::new(Bytes::from(bytes))).expect("static request parts are valid")
}
