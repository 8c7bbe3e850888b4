//! CLIENT: one model session over any byte stream.
//!
//! A `Client` owns one connection (one engine session). `query` sends one request and waits
//! for its reply; a statement that blocks in the engine simply takes longer to answer. Drop
//! or `close` ends the session (the server then aborts its transaction). Not modelled:
//! pipelining, query cancellation, TLS or authentication.

use tokio::io::{AsyncRead, AsyncWrite};

use super::frame::{IoError, QueryRef, Request, read_frame, write_frame};
use crate::{Response, Value};

pub struct Client<S> {
    stream: S,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub fn new(stream: S) -> Client<S> {
        Client { stream }
    }

    /// Runs `sql` (one or more `;`-separated statements) with `$n` bound to `params`.
    /// SQL errors come back as `Ok(Err(SqlError))`; `Err` means the connection failed.
    pub async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Response, IoError> {
        write_frame(&mut self.stream, &QueryRef { sql, params }).await?;
        match read_frame::<_, Response>(&mut self.stream).await? {
            Some(reply) => Ok(reply),
            None => Err(IoError::Closed),
        }
    }

    /// Ends the session politely.
    pub async fn close(mut self) -> Result<(), IoError> {
        write_frame(&mut self.stream, &Request::Close).await
    }
}
