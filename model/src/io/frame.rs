//! FRAMES: the wire protocol between the model client and the model server.
//!
//! Every message is one frame: a 4-byte big-endian payload length, then a JSON payload
//! (serde_json). The client sends [`Request`]s; the server answers each `Query` with exactly
//! one [`WireResponse`], in order. `Close` (or EOF) ends the session. JSON keeps frames
//! readable in traces; the engine, not the codec, dominates the cost. Frames larger than
//! [`FRAME_BYTES_MAX`] are refused rather than allocated.
//!
//! The public API types in `lib.rs` carry no serde derives, so this module mirrors them
//! ([`WireValue`], [`WireResponse`]) and converts both ways. Not modelled: pipelining several
//! queries before reading replies (the client does not do it), cancellation requests.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{QueryResult, Range, Response, SqlError, Value};

/// A frame's payload may not exceed this many bytes.
pub const FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Errors of the client/server transport (not SQL errors: those travel inside responses).
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {len} bytes exceeds the {FRAME_BYTES_MAX}-byte limit")]
    FrameTooLarge { len: usize },
    #[error("cannot decode frame: {0}")]
    Decode(String),
    #[error("connection closed by the server")]
    Closed,
}

impl IoError {
    /// Policy: whether the caller should treat the connection as lost (reconnect) rather than
    /// as a protocol bug. I/O errors and server closes mean the database went away (crash,
    /// partition); oversized or undecodable frames are bugs on one side.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, IoError::Io(_) | IoError::Closed)
    }
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    Query { sql: String, params: Vec<WireValue> },
    Close,
}

/// A [`Value`] on the wire. Uuids travel as 32 hex digits (JSON has no 128-bit integers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WireValue {
    Null,
    Bool(bool),
    Int(i64),
    Text(String),
    Uuid(String),
    Timestamp(i64),
    Range {
        lower: Option<Box<WireValue>>,
        upper: Option<Box<WireValue>>,
        lower_inclusive: bool,
        upper_inclusive: bool,
        empty: bool,
    },
}

/// A [`Response`] on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WireResponse {
    Ok { tag: String, columns: Vec<String>, rows: Vec<Vec<WireValue>> },
    Err { code: String, message: String, detail: Option<String>, constraint: Option<String> },
}

impl From<&Value> for WireValue {
    fn from(v: &Value) -> WireValue {
        match v {
            Value::Null => WireValue::Null,
            Value::Bool(b) => WireValue::Bool(*b),
            Value::Int(i) => WireValue::Int(*i),
            Value::Text(s) => WireValue::Text(s.clone()),
            Value::Uuid(u) => WireValue::Uuid(format!("{u:032x}")),
            Value::Timestamp(t) => WireValue::Timestamp(*t),
            Value::Range(r) => WireValue::Range {
                lower: r.lower.as_ref().map(|b| Box::new(WireValue::from(b))),
                upper: r.upper.as_ref().map(|b| Box::new(WireValue::from(b))),
                lower_inclusive: r.lower_inclusive,
                upper_inclusive: r.upper_inclusive,
                empty: r.empty,
            },
        }
    }
}

impl WireValue {
    /// Back to an engine value; a malformed uuid is a decode error.
    pub fn to_value(&self) -> Result<Value, IoError> {
        let bound = |b: &Option<Box<WireValue>>| b.as_ref().map(|v| v.to_value()).transpose();
        Ok(match self {
            WireValue::Null => Value::Null,
            WireValue::Bool(b) => Value::Bool(*b),
            WireValue::Int(i) => Value::Int(*i),
            WireValue::Text(s) => Value::Text(s.clone()),
            WireValue::Uuid(s) => Value::Uuid(
                u128::from_str_radix(s, 16)
                    .map_err(|e| IoError::Decode(format!("uuid {s:?}: {e}")))?,
            ),
            WireValue::Timestamp(t) => Value::Timestamp(*t),
            WireValue::Range { lower, upper, lower_inclusive, upper_inclusive, empty } => {
                Value::Range(Box::new(Range {
                    lower: bound(lower)?,
                    upper: bound(upper)?,
                    lower_inclusive: *lower_inclusive,
                    upper_inclusive: *upper_inclusive,
                    empty: *empty,
                }))
            }
        })
    }
}

impl From<&Response> for WireResponse {
    fn from(r: &Response) -> WireResponse {
        match r {
            Ok(q) => WireResponse::Ok {
                tag: q.tag.clone(),
                columns: q.columns.clone(),
                rows: q.rows.iter().map(|row| row.iter().map(WireValue::from).collect()).collect(),
            },
            Err(e) => WireResponse::Err {
                code: e.code.clone(),
                message: e.message.clone(),
                detail: e.detail.clone(),
                constraint: e.constraint.clone(),
            },
        }
    }
}

impl WireResponse {
    pub fn to_response(&self) -> Result<Response, IoError> {
        Ok(match self {
            WireResponse::Ok { tag, columns, rows } => Ok(QueryResult {
                tag: tag.clone(),
                columns: columns.clone(),
                rows: rows
                    .iter()
                    .map(|row| row.iter().map(WireValue::to_value).collect())
                    .collect::<Result<_, _>>()?,
            }),
            WireResponse::Err { code, message, detail, constraint } => Err(SqlError {
                code: code.clone(),
                message: message.clone(),
                detail: detail.clone(),
                constraint: constraint.clone(),
            }),
        })
    }
}

/// Writes one frame.
pub async fn write_frame<W, T>(w: &mut W, msg: &T) -> Result<(), IoError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let payload = serde_json::to_vec(msg).map_err(|e| IoError::Decode(e.to_string()))?;
    if payload.len() > FRAME_BYTES_MAX {
        return Err(IoError::FrameTooLarge { len: payload.len() });
    }
    let len = u32::try_from(payload.len()).expect("FRAME_BYTES_MAX fits in u32");
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(&payload).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame; `Ok(None)` on a clean EOF before the frame started.
pub async fn read_frame<R, T>(r: &mut R) -> Result<Option<T>, IoError>
where
    R: AsyncRead + Unpin,
    T: for<'de> Deserialize<'de>,
{
    let mut len_bytes = [0u8; 4];
    match r.read_exact(&mut len_bytes).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len_bytes) as usize;
    if len > FRAME_BYTES_MAX {
        return Err(IoError::FrameTooLarge { len });
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    serde_json::from_slice(&payload).map(Some).map_err(|e| IoError::Decode(e.to_string()))
}
