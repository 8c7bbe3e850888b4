//! CLIENT: one model session over any byte stream.
//!
//! A `Client` owns one connection (one engine session). `query` sends one request and waits
//! for its reply; a statement that blocks in the engine simply takes longer to answer. Drop
//! or `close` ends the session (the server then aborts its transaction).
//!
//! CANCELLATION, as sqlx does it: a `query` future dropped after its request was written
//! leaves the reply owed. The next `query` first reads and drops every owed reply (sqlx's
//! `wait_until_ready`, which its pool runs as the release "ping"), so the session stays in
//! step — and stays in whatever state the dropped statement left it in (a dropped `BEGIN`
//! leaves it in a transaction, exactly as on PostgreSQL). Reading is cancel-safe: bytes of a
//! half-read reply are kept in the client's buffer, never lost with the dropped future.
//! Not modelled: pipelining, cancel requests (`pg_cancel_backend`), TLS or authentication.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::frame::{Decode, FRAME_BYTES_MAX, Incoming, IoError, QueryRef, write_frame};
use crate::{Response, Value};

/// Bytes asked of the stream per read.
const READ_CHUNK_BYTES: usize = 4096;

pub struct Client<S> {
    stream: S,
    /// Bytes read but not yet consumed as a whole frame.
    buffer: Vec<u8>,
    /// Replies to requests already written whose `query` future was dropped before reading.
    replies_owed: u32,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub fn new(stream: S) -> Client<S> {
        Client { stream, buffer: Vec::new(), replies_owed: 0 }
    }

    /// Runs `sql` (one or more `;`-separated statements) with `$n` bound to `params`.
    /// SQL errors come back as `Ok(Err(SqlError))`; `Err` means the connection failed.
    /// Cancel-safe in the sense of the module doc: a dropped call's reply is drained first.
    pub async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Response, IoError> {
        while self.replies_owed > 0 {
            // The dropped statement's result: nobody waits for it (sqlx discards it too).
            let _dropped: Response = self.read_reply().await?;
            self.replies_owed -= 1;
        }
        // turmoil and tokio TCP writes of a frame complete in one poll on an open stream; a
        // write dropped half-way would desynchronise the stream, as it would for sqlx.
        write_frame(&mut self.stream, &QueryRef { sql, params }).await?;
        self.replies_owed += 1;
        let reply = self.read_reply().await?;
        self.replies_owed -= 1;
        Ok(reply)
    }

    /// Writes a query and returns without its reply (a connection that resets right after
    /// sending: the caller drops the client, so the reply is never read).
    pub async fn send_only(&mut self, sql: &str, params: &[Value]) -> Result<(), IoError> {
        write_frame(&mut self.stream, &QueryRef { sql, params }).await?;
        self.replies_owed += 1;
        Ok(())
    }

    /// Replies owed by dropped `query` calls (drained by the next call).
    pub fn replies_owed(&self) -> u32 {
        self.replies_owed
    }

    /// Reads one whole reply frame; cancel-safe (partial bytes stay in `buffer`).
    async fn read_reply(&mut self) -> Result<Response, IoError> {
        loop {
            if self.buffer.len() >= 4 {
                let len_bytes: [u8; 4] = self.buffer[..4].try_into().expect("four bytes");
                let len = u32::from_be_bytes(len_bytes) as usize;
                if len > FRAME_BYTES_MAX {
                    return Err(IoError::FrameTooLarge { len });
                }
                if self.buffer.len() >= 4 + len {
                    let reply = Response::decode_all(&self.buffer[4..4 + len]);
                    self.buffer.drain(..4 + len);
                    return reply;
                }
            }
            let mut chunk = [0u8; READ_CHUNK_BYTES];
            let read = self.stream.read(&mut chunk).await?;
            if read == 0 {
                return Err(IoError::Closed);
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }

    /// Ends the session politely.
    pub async fn close(mut self) -> Result<(), IoError> {
        write_frame(&mut self.stream, &Incoming::Close).await
    }
}
