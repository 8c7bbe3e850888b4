//! A minimal PostgreSQL simple-query client (protocol 3.0) for the spec runner's sessions.
//!
//! It exists because the report needs exact command tags, which sqlx hides. Supported: TCP,
//! trust authentication, startup `options`, `Query` with several statements (the last result
//! wins; an error ends the step), text-format results. Values: int2/int4/int8 → JSON
//! numbers, bool → true/false, NULL → null, anything else → PostgreSQL's text.
//! `try_finish` is cancel-safe (it only appends what `read` returned to a buffer), so a step
//! can be polled with short timeouts while another connection checks for lock waits.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::super::runner::{BackendError, StepResult};

/// A backend message may not exceed this many bytes.
const MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

const OID_BOOL: u32 = 16;
const OID_INT8: u32 = 20;
const OID_INT2: u32 = 21;
const OID_INT4: u32 = 23;

pub struct WireConn {
    stream: TcpStream,
    buf: Vec<u8>,
    pub pid: i32,
    busy: bool,
    cols: Option<(Vec<String>, Vec<u32>)>,
    rows: Vec<Vec<serde_json::Value>>,
    last: Option<StepResult>,
}

fn err(what: impl std::fmt::Display) -> BackendError {
    BackendError(format!("postgres session connection: {what}"))
}

impl WireConn {
    pub async fn connect(url: &str, options: &str) -> Result<WireConn, BackendError> {
        let opts: sqlx::postgres::PgConnectOptions =
            url.parse().map_err(|e| err(format!("bad URL {url:?}: {e}")))?;
        let addr = format!("{}:{}", opts.get_host(), opts.get_port());
        let stream = TcpStream::connect(&addr).await.map_err(|e| err(format!("{addr}: {e}")))?;
        let mut conn = WireConn {
            stream,
            buf: Vec::new(),
            pid: 0,
            busy: true,
            cols: None,
            rows: Vec::new(),
            last: None,
        };
        let mut body = Vec::new();
        body.extend_from_slice(&196_608i32.to_be_bytes());
        let database = opts.get_database().unwrap_or(opts.get_username());
        for (k, v) in [("user", opts.get_username()), ("database", database), ("options", options)]
        {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        msg.extend_from_slice(&body);
        conn.stream.write_all(&msg).await.map_err(err)?;
        match conn.try_finish(Duration::from_secs(10)).await? {
            Some(StepResult::Error { message, .. }) => Err(err(format!("startup: {message}"))),
            Some(_) => Ok(conn),
            None => Err(err("startup timed out")),
        }
    }

    /// Whether a statement is in flight.
    pub fn busy(&self) -> bool {
        self.busy
    }

    pub async fn send(&mut self, sql: &str) -> Result<(), BackendError> {
        assert!(!self.busy, "a step was sent while the previous one is running");
        let mut msg = vec![b'Q'];
        msg.extend_from_slice(&((sql.len() + 5) as i32).to_be_bytes());
        msg.extend_from_slice(sql.as_bytes());
        msg.push(0);
        self.stream.write_all(&msg).await.map_err(err)?;
        self.busy = true;
        self.cols = None;
        self.rows.clear();
        self.last = None;
        Ok(())
    }

    /// Reads for up to `wait`; the step's outcome once the server is ready for a new query.
    pub async fn try_finish(&mut self, wait: Duration) -> Result<Option<StepResult>, BackendError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some((kind, body)) = self.next_message()? {
                if let Some(done) = self.handle(kind, &body)? {
                    return Ok(Some(done));
                }
            }
            let mut chunk = [0u8; 8192];
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await;
            match read {
                Err(_) => return Ok(None),
                Ok(Ok(0)) => return Err(err("server closed the connection")),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => return Err(err(e)),
            }
        }
    }

    fn next_message(&mut self) -> Result<Option<(u8, Vec<u8>)>, BackendError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = i32::from_be_bytes(self.buf[1..5].try_into().expect("4 bytes")) as usize;
        if !(4..=MESSAGE_BYTES_MAX).contains(&len) {
            return Err(err(format!("bad message length {len}")));
        }
        if self.buf.len() < 1 + len {
            return Ok(None);
        }
        let kind = self.buf[0];
        let body = self.buf[5..1 + len].to_vec();
        self.buf.drain(..1 + len);
        Ok(Some((kind, body)))
    }

    /// Applies one message; the outcome when it is ReadyForQuery.
    fn handle(&mut self, kind: u8, body: &[u8]) -> Result<Option<StepResult>, BackendError> {
        match kind {
            b'R' => {
                let code = read_i32(body, 0)?;
                if code != 0 {
                    return Err(err(format!(
                        "authentication method {code} is not supported (use trust)"
                    )));
                }
            }
            b'K' => self.pid = read_i32(body, 0)?,
            b'T' => self.cols = Some(row_description(body)?),
            b'D' => {
                let types = self.cols.as_ref().map(|c| c.1.clone()).unwrap_or_default();
                self.rows.push(data_row(body, &types)?);
            }
            b'C' => {
                let tag = cstr(body, 0)?.0;
                self.last = Some(match self.cols.take() {
                    Some((cols, _)) => {
                        StepResult::Rows { cols, rows: std::mem::take(&mut self.rows) }
                    }
                    None => StepResult::Tag { tag },
                });
            }
            b'E' => self.last = Some(error_fields(body)?),
            b'Z' => {
                self.busy = false;
                return Ok(Some(
                    self.last.take().unwrap_or(StepResult::Tag { tag: String::new() }),
                ));
            }
            _ => {} // ParameterStatus, NoticeResponse, EmptyQueryResponse, …
        }
        Ok(None)
    }

    pub async fn close(mut self) {
        let _ = self.stream.write_all(&[b'X', 0, 0, 0, 4]).await;
    }
}

fn read_i32(b: &[u8], at: usize) -> Result<i32, BackendError> {
    b.get(at..at + 4)
        .map(|s| i32::from_be_bytes(s.try_into().expect("4 bytes")))
        .ok_or_else(|| err("truncated message"))
}

fn read_i16(b: &[u8], at: usize) -> Result<i16, BackendError> {
    b.get(at..at + 2)
        .map(|s| i16::from_be_bytes(s.try_into().expect("2 bytes")))
        .ok_or_else(|| err("truncated message"))
}

/// A NUL-terminated string at `at` and the offset after it.
fn cstr(b: &[u8], at: usize) -> Result<(String, usize), BackendError> {
    let rest = b.get(at..).ok_or_else(|| err("truncated message"))?;
    let end = rest.iter().position(|&c| c == 0).ok_or_else(|| err("unterminated string"))?;
    Ok((String::from_utf8_lossy(&rest[..end]).into_owned(), at + end + 1))
}

fn row_description(b: &[u8]) -> Result<(Vec<String>, Vec<u32>), BackendError> {
    let n = read_i16(b, 0)?.max(0) as usize;
    let (mut names, mut types, mut at) = (Vec::with_capacity(n), Vec::with_capacity(n), 2);
    for _ in 0..n {
        let (name, next) = cstr(b, at)?;
        names.push(name);
        types.push(read_i32(b, next + 6)? as u32);
        at = next + 18;
    }
    Ok((names, types))
}

fn data_row(b: &[u8], types: &[u32]) -> Result<Vec<serde_json::Value>, BackendError> {
    let n = read_i16(b, 0)?.max(0) as usize;
    let (mut row, mut at) = (Vec::with_capacity(n), 2);
    for i in 0..n {
        let len = read_i32(b, at)?;
        at += 4;
        if len < 0 {
            row.push(serde_json::Value::Null);
            continue;
        }
        let bytes = b.get(at..at + len as usize).ok_or_else(|| err("truncated row"))?;
        at += len as usize;
        let text = String::from_utf8_lossy(bytes).into_owned();
        row.push(match types.get(i).copied() {
            Some(OID_INT2 | OID_INT4 | OID_INT8) => text
                .parse::<i64>()
                .map(serde_json::Value::from)
                .unwrap_or(serde_json::Value::String(text)),
            Some(OID_BOOL) => serde_json::Value::Bool(text == "t"),
            _ => serde_json::Value::String(text),
        });
    }
    Ok(row)
}

fn error_fields(b: &[u8]) -> Result<StepResult, BackendError> {
    let (mut code, mut message, mut at) = (String::new(), String::new(), 0);
    while at < b.len() && b[at] != 0 {
        let field = b[at];
        let (value, next) = cstr(b, at + 1)?;
        match field {
            b'C' => code = value,
            b'M' => message = value,
            _ => {}
        }
        at = next;
    }
    Ok(StepResult::Error { error: code, message })
}
