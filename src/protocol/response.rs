//! [`Response`]: every answer a server sends, its decoder (used by the
//! client) and the encoders the server writes with.
//!
//! Bodies (after the frame's length and opcode; `bytes` is a `u32` LE
//! length then the bytes):
//!
//! ```text
//! OK         0x80  (empty)
//! HELLO      0x81  see protocol::handshake
//! PONG       0x82  (empty)
//! VALUE      0x83  value: bytes
//! NOT_FOUND  0x84  (empty)
//! VALUES     0x85  count u32 | count x ( present u8 (0|1) | value: bytes (present only) )
//! SCAN_PAGE  0x86  count u32 | count x ( key: bytes | value: bytes )
//!                  | more u8 (0|1) | continuation: bytes (more only)
//! METRICS    0x87  see protocol::metrics_codec
//! TS_POINTS  0xd0  see protocol::ts
//! TS_SERIES_LIST 0xd1  see protocol::ts
//! ERROR      0xff  code u16 | flags u8 (bit 0: the server closes the connection)
//!                  | message len u16 | message (UTF-8, at most 1024 bytes)
//! ```
//!
//! A SCAN_PAGE's continuation is the first key *not* returned: the next
//! page is a range scan starting there (inclusive) with the same end.

use crate::metrics::MetricsSnapshot;

use super::frame::{begin_frame, end_frame, RawFrame};
use super::handshake::ServerHello;
use super::limits::Limits;
use super::metrics_codec;
use super::opcode::ResponseOpcode;
use super::ts::TsResponse;
use super::wire::{bytes_len, put_bytes, put_len, put_u16, Reader};
use super::{ErrorCode, ProtocolError};

/// Longest ERROR message; longer ones are cut at a character boundary.
pub const ERROR_MESSAGE_BYTES_MAX: usize = 1_024;

/// The body of an ERROR response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    /// The wire code (see [`ErrorCode`]); kept raw so that codes added by a
    /// newer server still reach the caller.
    pub code: u16,
    /// Whether the server closes the connection after this frame.
    pub closing: bool,
    /// What went wrong.
    pub message: String,
}

impl ErrorResponse {
    /// The code, if this build knows it.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_u16(self.code)
    }
}

impl std::fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.error_code() {
            Some(c) => write!(f, "{c}: {}", self.message),
            None => write!(f, "error {}: {}", self.code, self.message),
        }
    }
}

/// One page of a SCAN.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Pairs in key order.
    pub pairs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The first key not returned, when the range holds more.
    pub continuation: Option<Vec<u8>>,
}

/// A decoded response.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    /// Success without a payload.
    Ok,
    /// The handshake answer.
    Hello(ServerHello),
    /// The PING answer.
    Pong,
    /// GET found a value.
    Value(Vec<u8>),
    /// GET found nothing.
    NotFound,
    /// The MGET answer, one entry per key asked.
    Values(Vec<Option<Vec<u8>>>),
    /// A SCAN page.
    ScanPage(ScanPage),
    /// The METRICS answer.
    Metrics(MetricsSnapshot),
    /// A time-series answer.
    Ts(TsResponse),
    /// The request failed.
    Error(ErrorResponse),
}

impl Response {
    /// Decodes a response frame; lengths are checked against `limits` and
    /// against the bytes present before anything is copied.
    pub fn decode(frame: RawFrame<'_>, limits: &Limits) -> Result<Self, ProtocolError> {
        let Some(op) = ResponseOpcode::from_u8(frame.opcode) else {
            return Err(ProtocolError::new(
                ErrorCode::UnknownOpcode,
                format!("unknown response opcode 0x{:02x}", frame.opcode),
            ));
        };
        let mut r = Reader::new(frame.body);
        let value = |r: &mut Reader<'_>| -> Result<Vec<u8>, ProtocolError> {
            Ok(r.bytes(
                "value",
                limits.value_size_bytes_max,
                ErrorCode::ValueTooLarge,
                "value_size_bytes_max",
            )?
            .to_vec())
        };
        let resp = match op {
            ResponseOpcode::Ok => Response::Ok,
            ResponseOpcode::Pong => Response::Pong,
            ResponseOpcode::NotFound => Response::NotFound,
            ResponseOpcode::Hello => return ServerHello::decode(frame.body).map(Response::Hello),
            ResponseOpcode::Metrics => {
                return metrics_codec::decode(frame.body).map(Response::Metrics)
            }
            ResponseOpcode::Value => Response::Value(value(&mut r)?),
            ResponseOpcode::Values => {
                let n = r.count(
                    "value count",
                    limits.mget_keys_max,
                    ErrorCode::TooManyKeys,
                    "mget_keys_max",
                    1,
                )?;
                let mut values = Vec::with_capacity(n);
                for _ in 0..n {
                    values.push(match r.u8("present flag")? {
                        0 => None,
                        _ => Some(value(&mut r)?),
                    });
                }
                Response::Values(values)
            }
            ResponseOpcode::ScanPage => {
                let n = r.count(
                    "pair count",
                    limits.scan_limit_max,
                    ErrorCode::ScanLimitTooLarge,
                    "scan_limit_max",
                    8,
                )?;
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = read_key(&mut r, limits)?.to_vec();
                    pairs.push((key, value(&mut r)?));
                }
                let continuation = match r.u8("more flag")? {
                    0 => None,
                    _ => Some(read_key(&mut r, limits)?.to_vec()),
                };
                Response::ScanPage(ScanPage {
                    pairs,
                    continuation,
                })
            }
            ResponseOpcode::TsPoints | ResponseOpcode::TsSeriesList => {
                Response::Ts(TsResponse::decode(op, &mut r)?)
            }
            ResponseOpcode::Error => {
                let code = r.u16("error code")?;
                let flags = r.u8("error flags")?;
                let len = usize::from(r.u16("message length")?);
                let message = String::from_utf8_lossy(r.raw(len, "error message")?).into_owned();
                Response::Error(ErrorResponse {
                    code,
                    closing: flags & 1 != 0,
                    message,
                })
            }
        };
        r.finish("response")?;
        Ok(resp)
    }

    /// Appends the whole frame; used by tests and tools (the server uses
    /// the streaming encoders below).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Response::Ok => write_empty(out, ResponseOpcode::Ok),
            Response::Pong => write_empty(out, ResponseOpcode::Pong),
            Response::NotFound => write_empty(out, ResponseOpcode::NotFound),
            Response::Hello(h) => {
                let start = begin_frame(out, ResponseOpcode::Hello as u8);
                h.encode(out);
                end_frame(out, start);
            }
            Response::Value(v) => write_value(out, v),
            Response::Values(values) => {
                let enc = ValuesEncoder::begin(out, values.len());
                for v in values {
                    ValuesEncoder::push(out, v.as_deref());
                }
                enc.finish(out);
            }
            Response::ScanPage(page) => {
                let mut enc = ScanPageEncoder::begin(out);
                for (k, v) in &page.pairs {
                    enc.push(out, k, v);
                }
                enc.finish(out, page.continuation.as_deref());
            }
            Response::Metrics(m) => write_metrics(out, m),
            Response::Ts(t) => t.encode(out),
            Response::Error(e) => write_error_raw(out, e.code, e.closing, &e.message),
        }
    }
}

fn read_key<'a>(r: &mut Reader<'a>, limits: &Limits) -> Result<&'a [u8], ProtocolError> {
    r.bytes(
        "key",
        limits.key_size_bytes_max,
        ErrorCode::KeyTooLarge,
        "key_size_bytes_max",
    )
}

/// Appends a response with an empty body (OK, PONG, NOT_FOUND).
pub fn write_empty(out: &mut Vec<u8>, op: ResponseOpcode) {
    let start = begin_frame(out, op as u8);
    end_frame(out, start);
}

/// Appends a VALUE response.
pub fn write_value(out: &mut Vec<u8>, value: &[u8]) {
    let start = begin_frame(out, ResponseOpcode::Value as u8);
    put_bytes(out, value);
    end_frame(out, start);
}

/// Appends a METRICS response.
pub fn write_metrics(out: &mut Vec<u8>, m: &MetricsSnapshot) {
    let start = begin_frame(out, ResponseOpcode::Metrics as u8);
    metrics_codec::encode(out, m);
    end_frame(out, start);
}

/// Appends an ERROR response for `e`; `closing` follows the code.
pub fn write_error(out: &mut Vec<u8>, e: &ProtocolError) {
    write_error_raw(out, e.code as u16, e.code.is_closing(), &e.message);
}

fn write_error_raw(out: &mut Vec<u8>, code: u16, closing: bool, message: &str) {
    let mut cut = message.len().min(ERROR_MESSAGE_BYTES_MAX);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let message = message.get(..cut).unwrap_or_default();
    let start = begin_frame(out, ResponseOpcode::Error as u8);
    put_u16(out, code);
    out.push(u8::from(closing));
    put_u16(out, u16::try_from(message.len()).unwrap_or(0));
    out.extend_from_slice(message.as_bytes());
    end_frame(out, start);
}

/// Writes a VALUES response entry by entry.
#[derive(Debug)]
pub struct ValuesEncoder {
    start: usize,
}

impl ValuesEncoder {
    /// Starts a VALUES frame for `count` entries.
    pub fn begin(out: &mut Vec<u8>, count: usize) -> Self {
        let start = begin_frame(out, ResponseOpcode::Values as u8);
        put_len(out, count);
        ValuesEncoder { start }
    }

    /// Appends one entry.
    pub fn push(out: &mut Vec<u8>, value: Option<&[u8]>) {
        match value {
            Some(v) => {
                out.push(1);
                put_bytes(out, v);
            }
            None => out.push(0),
        }
    }

    /// Bytes of the frame so far (to check against the frame bound).
    pub fn frame_bytes(&self, out: &[u8]) -> usize {
        out.len() - self.start
    }

    /// Drops everything written since [`ValuesEncoder::begin`].
    pub fn abandon(self, out: &mut Vec<u8>) {
        out.truncate(self.start);
    }

    /// Finishes the frame.
    pub fn finish(self, out: &mut [u8]) {
        end_frame(out, self.start);
    }
}

/// Writes a SCAN_PAGE response pair by pair.
#[derive(Debug)]
pub struct ScanPageEncoder {
    start: usize,
    count: u32,
}

impl ScanPageEncoder {
    /// Starts a SCAN_PAGE frame.
    pub fn begin(out: &mut Vec<u8>) -> Self {
        let start = begin_frame(out, ResponseOpcode::ScanPage as u8);
        put_len(out, 0);
        ScanPageEncoder { start, count: 0 }
    }

    /// Bytes a pair adds to the frame.
    pub const fn pair_bytes(key: &[u8], value: &[u8]) -> usize {
        bytes_len(key.len()) + bytes_len(value.len())
    }

    /// Bytes the page trailer (more flag and a continuation key) may add.
    pub const fn trailer_bytes(key_size_bytes_max: usize) -> usize {
        1 + bytes_len(key_size_bytes_max)
    }

    /// Bytes of the frame so far.
    pub fn frame_bytes(&self, out: &[u8]) -> usize {
        out.len() - self.start
    }

    /// Appends one pair.
    pub fn push(&mut self, out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
        put_bytes(out, key);
        put_bytes(out, value);
        self.count += 1;
    }

    /// Finishes the frame with the continuation key, if any.
    pub fn finish(self, out: &mut Vec<u8>, continuation: Option<&[u8]>) {
        match continuation {
            Some(k) => {
                out.push(1);
                put_bytes(out, k);
            }
            None => out.push(0),
        }
        let at = self.start + 5;
        if let Some(slot) = out.get_mut(at..at + 4) {
            slot.copy_from_slice(&self.count.to_le_bytes());
        }
        end_frame(out, self.start);
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::{decode_frame, Decoded};
    use super::*;
    use crate::metrics::Histogram;

    fn round_trip(resp: &Response) {
        let limits = Limits::default();
        let mut out = Vec::new();
        resp.encode(&mut out);
        let Decoded::Frame(f) = decode_frame(&out, limits.frame_size_bytes_max) else {
            panic!("no frame for {resp:?}")
        };
        assert_eq!(f.consumed, out.len());
        assert_eq!(&Response::decode(f, &limits).unwrap(), resp);
        for cut in 0..f.body.len() {
            let short = RawFrame {
                body: &f.body[..cut],
                ..f
            };
            assert!(
                Response::decode(short, &limits).is_err(),
                "{resp:?} cut at {cut}"
            );
        }
    }

    #[test]
    fn every_response_round_trips() {
        let mut m = MetricsSnapshot::default();
        m.counter("a.count", 3);
        m.gauge("b.ratio", 0.5);
        let h = Histogram::new();
        h.record(10);
        m.histogram("c.latency_us", &h);
        for resp in [
            Response::Ok,
            Response::Pong,
            Response::NotFound,
            Response::Value(b"v\x00\xff".to_vec()),
            Response::Values(vec![Some(b"x".to_vec()), None, Some(Vec::new())]),
            Response::ScanPage(ScanPage {
                pairs: vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), Vec::new())],
                continuation: Some(b"c".to_vec()),
            }),
            Response::ScanPage(ScanPage::default()),
            Response::Metrics(m),
            Response::Error(ErrorResponse {
                code: ErrorCode::KeyTooLarge as u16,
                closing: false,
                message: "key of 9 bytes exceeds key_size_bytes_max 8".into(),
            }),
            Response::Hello(ServerHello {
                version: 1,
                limits: Limits::default(),
            }),
        ] {
            round_trip(&resp);
        }
    }

    #[test]
    fn long_error_messages_are_cut_on_a_char_boundary() {
        let msg = "é".repeat(ERROR_MESSAGE_BYTES_MAX);
        let mut out = Vec::new();
        write_error(&mut out, &ProtocolError::new(ErrorCode::Internal, msg));
        let Decoded::Frame(f) = decode_frame(&out, 1 << 20) else {
            panic!()
        };
        let Response::Error(e) = Response::decode(f, &Limits::default()).unwrap() else {
            panic!()
        };
        assert_eq!(e.message.len(), ERROR_MESSAGE_BYTES_MAX);
        assert!(!e.closing);
    }
}
