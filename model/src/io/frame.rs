//! FRAMES: the wire protocol between the model client and the model server.
//!
//! Every message is one frame: a 4-byte big-endian payload length, then a compact binary
//! payload ([`Codec`]: a tag byte per enum, little-endian integers, u32-length-prefixed
//! UTF-8 strings and sequences). The client sends requests ([`QueryRef`], [`Incoming`]); the
//! server answers each `Query` with exactly one [`Response`], in order. `Close` (or EOF) ends the session.
//! The payload was JSON once; profiling showed serde_json escaping and parsing among the
//! top costs of a simulated run, so the codec is now hand-written. Frames larger than
//! [`FRAME_BYTES_MAX`] are refused rather than allocated; a decoder never allocates more
//! elements than bytes remain, and nested range bounds are limited to [`WIRE_DEPTH_MAX`].
//!
//! The codecs work on the engine's own types: [`QueryRef`] encodes a query straight from
//! borrowed engine values, [`Incoming`] decodes it straight into them (and encodes `Close`),
//! and [`Response`] has its own codec. A uuid travels as 16 raw bytes (tag 7); the older tag
//! 4, 32 hex digits, is still accepted. Not modelled: pipelining several queries before
//! reading replies (the client does not do it), cancellation requests.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{QueryResult, Range, Response, SqlError, Value};

/// A frame's payload may not exceed this many bytes.
pub const FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Limit on nesting of values inside range bounds on the wire.
pub const WIRE_DEPTH_MAX: usize = 4;

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

/// Writes one frame.
pub async fn write_frame<W, T>(w: &mut W, msg: &T) -> Result<(), IoError>
where
    W: AsyncWrite + Unpin,
    T: Encode + ?Sized,
{
    let mut frame = Vec::with_capacity(4 + msg.encoded_len_hint());
    frame.extend_from_slice(&[0u8; 4]);
    msg.encode(&mut frame);
    let len = frame.len() - 4;
    if len > FRAME_BYTES_MAX {
        return Err(IoError::FrameTooLarge { len });
    }
    let len = u32::try_from(len).expect("FRAME_BYTES_MAX fits in u32");
    frame[..4].copy_from_slice(&len.to_be_bytes());
    // Two writes, as with the JSON codec: under turmoil each write is one network segment
    // with its own sampled latency, so this keeps simulated timings (and trace hashes).
    w.write_all(&frame[..4]).await?;
    w.write_all(&frame[4..]).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame; `Ok(None)` on a clean EOF before the frame started.
pub async fn read_frame<R, T>(r: &mut R) -> Result<Option<T>, IoError>
where
    R: AsyncRead + Unpin,
    T: Decode,
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
    T::decode_all(&payload).map(Some)
}

/// The binary payload encoding of a frame's message.
pub trait Encode {
    fn encode(&self, out: &mut Vec<u8>);

    /// Bytes `encode` is expected to write (a capacity hint: the frame buffer is allocated
    /// once instead of growing).
    fn encoded_len_hint(&self) -> usize {
        64
    }
}

/// [`Encode::encoded_len_hint`] of one engine value.
fn value_len_hint(v: &Value) -> usize {
    match v {
        Value::Null => 1,
        Value::Bool(_) => 2,
        Value::Int(_) | Value::Timestamp(_) => 9,
        Value::Text(s) => 5 + s.len(),
        Value::Uuid(_) => 17,
        Value::Range(r) => {
            2 + r.lower.iter().chain(r.upper.iter()).map(value_len_hint).sum::<usize>()
        }
    }
}

/// The binary payload decoding of a frame's message.
pub trait Decode: Sized {
    fn decode(r: &mut Reader<'_>) -> Result<Self, IoError>;

    /// Decodes a whole payload; trailing bytes are an error.
    fn decode_all(payload: &[u8]) -> Result<Self, IoError> {
        let mut r = Reader { bytes: payload, pos: 0 };
        let v = Self::decode(&mut r)?;
        if r.pos != payload.len() {
            return Err(r.error("trailing bytes"));
        }
        Ok(v)
    }
}

/// A cursor over a payload being decoded.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, what: &str) -> IoError {
        IoError::Decode(format!("{what} at payload byte {}", self.pos))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], IoError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| self.error("payload ends early"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, IoError> {
        Ok(self.take(1)?[0])
    }

    fn i64(&mut self) -> Result<i64, IoError> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn u128(&mut self) -> Result<u128, IoError> {
        Ok(u128::from_le_bytes(self.take(16)?.try_into().expect("16 bytes")))
    }

    /// A sequence length, refused when more elements than remaining bytes are claimed.
    fn len(&mut self) -> Result<usize, IoError> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        if n > self.bytes.len() - self.pos {
            return Err(self.error("length exceeds the payload"));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, IoError> {
        let n = self.len()?;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.error("invalid UTF-8"))
    }

    fn opt_string(&mut self) -> Result<Option<String>, IoError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.string().map(Some),
            _ => Err(self.error("bad option tag")),
        }
    }

    /// A length-prefixed sequence. The vector is sized once from the length (bounded by the
    /// remaining bytes, see [`Reader::len`]) instead of growing through a fallible collect.
    fn seq<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, IoError>,
    ) -> Result<Vec<T>, IoError> {
        let n = self.len()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(item(self)?);
        }
        Ok(out)
    }
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    let n = u32::try_from(n).expect("a frame's sequences are shorter than FRAME_BYTES_MAX");
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: &Option<String>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

/// A query as the client sends it, borrowing the statement and the engine values (same bytes
/// as [`Incoming::Query`]).
#[derive(Debug, Clone, Copy)]
pub struct QueryRef<'a> {
    pub sql: &'a str,
    pub params: &'a [Value],
}

/// A request: the server decodes it straight into engine values; the client encodes `Close`
/// with it (a query goes out as a [`QueryRef`], borrowing its values).
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Query { sql: String, params: Vec<Value> },
    Close,
}

impl Encode for QueryRef<'_> {
    fn encoded_len_hint(&self) -> usize {
        1 + 4 + self.sql.len() + 4 + self.params.iter().map(value_len_hint).sum::<usize>()
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len_hint());
        out.push(0);
        put_str(out, self.sql);
        put_len(out, self.params.len());
        self.params.iter().for_each(|v| v.encode(out));
    }
}

impl Encode for Incoming {
    fn encoded_len_hint(&self) -> usize {
        match self {
            Incoming::Query { sql, params } => QueryRef { sql, params }.encoded_len_hint(),
            Incoming::Close => 1,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Incoming::Query { sql, params } => QueryRef { sql, params }.encode(out),
            Incoming::Close => out.push(1),
        }
    }
}

impl Decode for Incoming {
    fn decode(r: &mut Reader<'_>) -> Result<Incoming, IoError> {
        match r.u8()? {
            0 => Ok(Incoming::Query { sql: r.string()?, params: r.seq(Value::decode)? }),
            1 => Ok(Incoming::Close),
            _ => Err(r.error("bad request tag")),
        }
    }
}

impl Value {
    fn decode_at(r: &mut Reader<'_>, depth: usize) -> Result<Value, IoError> {
        Ok(match r.u8()? {
            0 => Value::Null,
            1 => Value::Bool(r.u8()? != 0),
            2 => Value::Int(r.i64()?),
            3 => Value::Text(r.string()?),
            4 => {
                let s = r.string()?;
                let u = u128::from_str_radix(&s, 16)
                    .map_err(|e| IoError::Decode(format!("uuid {s:?}: {e}")))?;
                Value::Uuid(u)
            }
            7 => Value::Uuid(r.u128()?),
            5 => Value::Timestamp(r.i64()?),
            6 => {
                if depth >= WIRE_DEPTH_MAX {
                    return Err(r.error("range bounds nested too deeply"));
                }
                let flags = r.u8()?;
                let mut bound = |bit: u8| -> Result<Option<Value>, IoError> {
                    if flags & bit == 0 {
                        return Ok(None);
                    }
                    Value::decode_at(r, depth + 1).map(Some)
                };
                let (lower, upper) = (bound(1)?, bound(2)?);
                Value::Range(Box::new(Range {
                    lower,
                    upper,
                    lower_inclusive: flags & 4 != 0,
                    upper_inclusive: flags & 8 != 0,
                    empty: flags & 16 != 0,
                }))
            }
            _ => return Err(r.error("bad value tag")),
        })
    }
}

impl Encode for Value {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.push(0),
            Value::Bool(b) => out.extend_from_slice(&[1, u8::from(*b)]),
            Value::Int(i) => {
                out.push(2);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Text(s) => {
                out.push(3);
                put_str(out, s);
            }
            Value::Uuid(u) => {
                out.push(7);
                out.extend_from_slice(&u.to_le_bytes());
            }
            Value::Timestamp(t) => {
                out.push(5);
                out.extend_from_slice(&t.to_le_bytes());
            }
            Value::Range(r) => {
                let flags = u8::from(r.lower.is_some())
                    | u8::from(r.upper.is_some()) << 1
                    | u8::from(r.lower_inclusive) << 2
                    | u8::from(r.upper_inclusive) << 3
                    | u8::from(r.empty) << 4;
                out.extend_from_slice(&[6, flags]);
                r.lower.iter().chain(r.upper.iter()).for_each(|b| b.encode(out));
            }
        }
    }
}

impl Decode for Value {
    fn decode(r: &mut Reader<'_>) -> Result<Value, IoError> {
        Value::decode_at(r, 0)
    }
}

impl Encode for Response {
    fn encoded_len_hint(&self) -> usize {
        let opt = |s: &Option<String>| 1 + s.as_ref().map_or(0, |s| 4 + s.len());
        match self {
            Ok(q) => {
                let columns: usize = q.columns.iter().map(|c| 4 + c.len()).sum();
                let rows: usize = q
                    .rows
                    .iter()
                    .map(|row| 4 + row.iter().map(value_len_hint).sum::<usize>())
                    .sum();
                1 + 4 + q.tag.len() + 4 + columns + 4 + rows
            }
            Err(e) => {
                1 + 4 + e.code.len() + 4 + e.message.len() + opt(&e.detail) + opt(&e.constraint)
            }
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Ok(q) => {
                out.push(0);
                put_str(out, &q.tag);
                put_len(out, q.columns.len());
                q.columns.iter().for_each(|c| put_str(out, c));
                put_len(out, q.rows.len());
                for row in &q.rows {
                    put_len(out, row.len());
                    row.iter().for_each(|v| v.encode(out));
                }
            }
            Err(e) => {
                out.push(1);
                put_str(out, &e.code);
                put_str(out, &e.message);
                put_opt_str(out, &e.detail);
                put_opt_str(out, &e.constraint);
            }
        }
    }
}

impl Decode for Response {
    fn decode(r: &mut Reader<'_>) -> Result<Response, IoError> {
        match r.u8()? {
            0 => Ok(Ok(QueryResult {
                tag: r.string()?,
                columns: r.seq(Reader::string)?,
                rows: r.seq(|r| r.seq(Value::decode))?,
            })),
            1 => Ok(Err(SqlError {
                code: r.string()?,
                message: r.string()?,
                detail: r.opt_string()?,
                constraint: r.opt_string()?,
            })),
            _ => Err(r.error("bad response tag")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(depth: usize) -> Value {
        let mut v = Value::Int(1);
        for _ in 0..depth {
            v = Value::Range(Box::new(Range {
                lower: Some(v),
                upper: None,
                lower_inclusive: true,
                upper_inclusive: false,
                empty: false,
            }));
        }
        v
    }

    /// Every variant round-trips with exact length hints; bad payloads are decode errors,
    /// never panics.
    #[test]
    fn codecs_round_trip_and_reject_bad_payloads() {
        let values = vec![
            Value::Null,
            Value::Bool(false),
            Value::Int(-5),
            Value::Text("x\"y é".into()),
            Value::Uuid(0xabcdef),
            Value::Timestamp(i64::MIN),
            Value::Range(Box::new(Range {
                lower: Some(Value::Uuid(1)),
                upper: Some(Value::Int(2)),
                lower_inclusive: true,
                upper_inclusive: false,
                empty: false,
            })),
            range(2),
        ];
        let mut direct = Vec::new();
        let query = QueryRef { sql: "select $1", params: &values };
        query.encode(&mut direct);
        assert_eq!(direct.len(), query.encoded_len_hint(), "the hint is exact");
        let incoming = Incoming::decode_all(&direct).unwrap();
        assert_eq!(incoming, Incoming::Query { sql: "select $1".into(), params: values.clone() });
        let mut again = Vec::new();
        incoming.encode(&mut again);
        assert_eq!(again, direct, "an owned query encodes like the borrowed one");
        let mut close = Vec::new();
        Incoming::Close.encode(&mut close);
        assert_eq!(close, [1]);
        assert_eq!(Incoming::decode_all(&close).unwrap(), Incoming::Close);

        let ok: Response = Ok(QueryResult {
            tag: "SELECT 1".into(),
            columns: vec!["c".into(), "é".into()],
            rows: vec![values],
        });
        let err: Response = Err(SqlError {
            code: "40P01".into(),
            message: "deadlock detected".into(),
            detail: Some("d".into()),
            constraint: None,
        });
        for response in [ok, err] {
            let mut out = Vec::new();
            response.encode(&mut out);
            assert_eq!(out.len(), response.encoded_len_hint(), "the hint is exact");
            assert_eq!(Response::decode_all(&out).unwrap(), response);
            assert!(Response::decode_all(&out[..out.len() - 1]).is_err(), "truncated");
            out.push(0);
            assert!(Response::decode_all(&out).is_err(), "trailing byte");
        }

        let mut deep = Vec::new();
        range(WIRE_DEPTH_MAX + 1).encode(&mut deep);
        assert!(Value::decode_all(&deep).is_err(), "too deep");
        let huge_claim = [0u8, 0xff, 0xff, 0xff, 0x7f];
        let e = Incoming::decode_all(&huge_claim).unwrap_err();
        assert!(e.to_string().contains("length exceeds the payload"), "{e}");
    }

    /// The older uuid encoding (tag 4, 32 hex digits) still decodes; a malformed one is an
    /// error.
    #[test]
    fn hex_uuids_still_decode() {
        let query = |uuid: &[u8]| {
            let mut out = vec![0u8];
            out.extend_from_slice(&1u32.to_le_bytes());
            out.push(b'q');
            out.extend_from_slice(&1u32.to_le_bytes());
            out.push(4);
            out.extend_from_slice(&(uuid.len() as u32).to_le_bytes());
            out.extend_from_slice(uuid);
            out
        };
        let hex = format!("{:032x}", 0xabcdefu128);
        assert_eq!(
            Incoming::decode_all(&query(hex.as_bytes())).unwrap(),
            Incoming::Query { sql: "q".into(), params: vec![Value::Uuid(0xabcdef)] }
        );
        assert!(Incoming::decode_all(&query(b"zz")).is_err(), "a malformed hex uuid is an error");
    }
}
