//! HTTP over turmoil's simulated TCP: an axum listener and a minimal hyper 1 client.
//!
//! The backend host serves backend-core's axum router on a [`TurmoilListener`] with
//! backend-core's own accept loop (`backend_core::http::serve::serve`, as `roomsim serve`
//! does); the clients host sends each
//! booking attempt on a fresh connection with hyper's low-level `client::conn::http1` (one
//! request per connection), so a connection broken by message loss or a crash fails exactly
//! one attempt and the client's retry policy decides what happens next. No real sockets,
//! threads or wall clock are involved.
//!
//! Not modelled: HTTP keep-alive and connection reuse between attempts.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use turmoil::net::{TcpListener, TcpStream};

/// An accepted-connection source for `axum::serve`.
pub struct TurmoilListener(pub TcpListener);

impl axum::serve::Listener for TurmoilListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // Bounded only by the host's life: accept errors are transient in turmoil (a peer
        // that went away); back off one tick and try again, as axum's own listener does.
        loop {
            match self.0.accept().await {
                Ok(pair) => return pair,
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
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

/// Sends one request on a fresh connection to `host:port` and reads the whole answer.
pub async fn send(
    host: &str,
    port: u16,
    request: http::Request<Full<Bytes>>,
) -> Result<HttpAnswer, HttpFailure> {
    send_paced(host, port, request, None).await
}

/// How a slow client writes: at most `chunk_bytes` per write, `gap` (simulated) between
/// writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    pub chunk_bytes: u32,
    pub gap: Duration,
}

/// [`send`], writing the request at `pace` when given (a slow client).
pub async fn send_paced(
    host: &str,
    port: u16,
    request: http::Request<Full<Bytes>>,
    pace: Option<Pace>,
) -> Result<HttpAnswer, HttpFailure> {
    let stream =
        TcpStream::connect((host, port)).await.map_err(|e| HttpFailure::Connect(e.to_string()))?;
    let stream = Paced { inner: stream, pace, sleep: None };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| HttpFailure::Connect(e.to_string()))?;
    // The connection task ends when the request is done or the connection breaks.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response =
        sender.send_request(request).await.map_err(|e| HttpFailure::Broken(e.to_string()))?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| HttpFailure::Broken(e.to_string()))?.to_bytes();
    Ok(HttpAnswer { status: parts.status.as_u16(), headers: parts.headers, body })
}

/// A stream whose writes are cut to `pace.chunk_bytes` and spaced `pace.gap` apart.
struct Paced<S> {
    inner: S,
    pace: Option<Pace>,
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
        let Some(pace) = self.pace else {
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
