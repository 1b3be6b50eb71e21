//! [`Request`]: every request a client can send, its encoder and its
//! bounds-checked decoder.
//!
//! Bodies (after the frame's length and opcode; `bytes` is a `u32` LE
//! length then the bytes; every integer little-endian):
//!
//! ```text
//! PING        0x02  (empty)
//! GET         0x10  key: bytes
//! PUT         0x11  key: bytes | value: bytes
//! DELETE      0x12  key: bytes
//! WRITE_BATCH 0x13  count u32 | count x ( kind u8 (1 put, 0 delete)
//!                                         | key: bytes | value: bytes (put only) )
//! MGET        0x14  count u32 | count x key: bytes
//! SCAN        0x15  mode u8 | start: bytes | end: bytes (mode 1 only) | limit u32
//!                   mode 0: [start, end of keyspace)
//!                   mode 1: [start, end)
//!                   mode 2: every key starting with `start` (a prefix)
//! METRICS     0x20  (empty)
//! COMPACT     0x21  flags u8 (bit 0: start present, bit 1: end present)
//!                   | start: bytes (bit 0 only) | end: bytes (bit 1 only)
//!                   compacts user keys in [start, end], both inclusive;
//!                   an absent bound is unbounded; start > end is refused
//! TS_*   0x50..=0x56  see protocol::ts
//! ```
//!
//! The decoder borrows keys and values from the receive buffer; only a
//! WRITE_BATCH is copied (into the [`WriteBatch`] the engine takes). Every
//! length and count is checked against [`Limits`] before anything is
//! copied, and a body with bytes left over is malformed.

use std::borrow::Cow;

use crate::batch::{BatchOp, WriteBatch};

use super::frame::{begin_frame, end_frame, RawFrame};
use super::handshake::ClientHello;
use super::limits::Limits;
use super::opcode::{Opcode, FUTURE_REQUESTS, TIME_SERIES_REQUESTS};
use super::ts::TsRequest;
use super::wire::{put_bytes, put_len, put_u32, Reader};
use super::{ErrorCode, ProtocolError};

/// Which keys a SCAN covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanRange<'a> {
    /// Keys `>= start` and, if `end` is given, `< end`.
    Range {
        /// First key (inclusive).
        start: &'a [u8],
        /// Bound (exclusive); `None` for the end of the keyspace.
        end: Option<&'a [u8]>,
    },
    /// Keys starting with the prefix.
    Prefix(&'a [u8]),
}

/// A request, borrowing its keys and values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// The handshake.
    Hello(ClientHello<'a>),
    /// Liveness check.
    Ping,
    /// Read one key.
    Get {
        /// The key.
        key: &'a [u8],
    },
    /// Write one key.
    Put {
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
    },
    /// Delete one key.
    Delete {
        /// The key.
        key: &'a [u8],
    },
    /// Apply puts and deletes atomically.
    WriteBatch(Cow<'a, WriteBatch>),
    /// Read many keys; answered with one optional value per key, in order.
    MGet {
        /// The keys.
        keys: Vec<&'a [u8]>,
    },
    /// Read up to `limit` pairs of a range in key order.
    Scan {
        /// The keys covered.
        range: ScanRange<'a>,
        /// Most pairs wanted (the answer may hold fewer and a continuation).
        limit: u32,
    },
    /// Read the metrics.
    Metrics,
    /// Flush, then compact the user keys in `[start, end]` (both
    /// inclusive, `None`: unbounded); answered with OK when done.
    Compact {
        /// First key (inclusive).
        start: Option<&'a [u8]>,
        /// Last key (inclusive).
        end: Option<&'a [u8]>,
    },
    /// A time-series request.
    Ts(TsRequest),
}

impl<'a> Request<'a> {
    /// The request's opcode.
    pub fn opcode(&self) -> Opcode {
        match self {
            Request::Hello(_) => Opcode::Hello,
            Request::Ping => Opcode::Ping,
            Request::Get { .. } => Opcode::Get,
            Request::Put { .. } => Opcode::Put,
            Request::Delete { .. } => Opcode::Delete,
            Request::WriteBatch(_) => Opcode::WriteBatch,
            Request::MGet { .. } => Opcode::MGet,
            Request::Scan { .. } => Opcode::Scan,
            Request::Metrics => Opcode::Metrics,
            Request::Compact { .. } => Opcode::Compact,
            Request::Ts(r) => r.opcode(),
        }
    }

    /// Appends the whole frame (length, opcode, body) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = begin_frame(out, self.opcode() as u8);
        match self {
            Request::Hello(h) => h.encode(out),
            Request::Ping | Request::Metrics => {}
            Request::Get { key } | Request::Delete { key } => put_bytes(out, key),
            Request::Put { key, value } => {
                put_bytes(out, key);
                put_bytes(out, value);
            }
            Request::WriteBatch(batch) => encode_batch(out, batch),
            Request::MGet { keys } => {
                put_len(out, keys.len());
                for k in keys {
                    put_bytes(out, k);
                }
            }
            Request::Scan { range, limit } => {
                match range {
                    ScanRange::Range { start, end: None } => {
                        out.push(0);
                        put_bytes(out, start);
                    }
                    ScanRange::Range {
                        start,
                        end: Some(end),
                    } => {
                        out.push(1);
                        put_bytes(out, start);
                        put_bytes(out, end);
                    }
                    ScanRange::Prefix(prefix) => {
                        out.push(2);
                        put_bytes(out, prefix);
                    }
                }
                put_u32(out, *limit);
            }
            Request::Compact { start, end } => {
                out.push(u8::from(start.is_some()) | u8::from(end.is_some()) << 1);
                for bound in [start, end].into_iter().flatten() {
                    put_bytes(out, bound);
                }
            }
            Request::Ts(r) => r.encode_body(out),
        }
        end_frame(out, start);
    }

    /// Decodes a request frame, checking every size against `limits`.
    pub fn decode(frame: RawFrame<'a>, limits: &Limits) -> Result<Self, ProtocolError> {
        let Some(opcode) = Opcode::from_u8(frame.opcode) else {
            return Err(unknown_opcode(frame.opcode));
        };
        let mut r = Reader::new(frame.body);
        let req = match opcode {
            Opcode::Hello => return ClientHello::decode(frame.body).map(Request::Hello),
            Opcode::Ping => Request::Ping,
            Opcode::Metrics => Request::Metrics,
            Opcode::Get => Request::Get {
                key: read_key(&mut r, limits)?,
            },
            Opcode::Delete => Request::Delete {
                key: read_write_key(&mut r, limits)?,
            },
            Opcode::Put => Request::Put {
                key: read_write_key(&mut r, limits)?,
                value: read_value(&mut r, limits)?,
            },
            Opcode::WriteBatch => Request::WriteBatch(Cow::Owned(decode_batch(&mut r, limits)?)),
            Opcode::MGet => {
                let n = r.count(
                    "MGET key count",
                    limits.mget_keys_max,
                    ErrorCode::TooManyKeys,
                    "mget_keys_max",
                    4,
                )?;
                let mut keys = Vec::with_capacity(n);
                for _ in 0..n {
                    keys.push(read_key(&mut r, limits)?);
                }
                Request::MGet { keys }
            }
            Opcode::Scan => decode_scan(&mut r, limits)?,
            Opcode::Compact => decode_compact(&mut r, limits)?,
            Opcode::TsAdd
            | Opcode::TsRange
            | Opcode::TsLatest
            | Opcode::TsSeries
            | Opcode::TsDelete
            | Opcode::TsRetention
            | Opcode::TsPolicy
            | Opcode::TsAgg => Request::Ts(TsRequest::decode(opcode, &mut r)?),
        };
        r.finish(opcode.name())?;
        Ok(req)
    }
}

fn unknown_opcode(op: u8) -> ProtocolError {
    let why = if TIME_SERIES_REQUESTS.contains(&op) {
        " (reserved for time series, not served by this version)"
    } else if FUTURE_REQUESTS.contains(&op) {
        " (reserved for future protocol versions)"
    } else if op >= 0x80 {
        " (a response opcode, not a request)"
    } else {
        ""
    };
    ProtocolError::new(
        ErrorCode::UnknownOpcode,
        format!("unknown opcode 0x{op:02x}{why}"),
    )
}

fn read_key<'a>(r: &mut Reader<'a>, limits: &Limits) -> Result<&'a [u8], ProtocolError> {
    r.bytes(
        "key",
        limits.key_size_bytes_max,
        ErrorCode::KeyTooLarge,
        "key_size_bytes_max",
    )
}

fn read_write_key<'a>(r: &mut Reader<'a>, limits: &Limits) -> Result<&'a [u8], ProtocolError> {
    let key = read_key(r, limits)?;
    if key.is_empty() {
        return Err(ProtocolError::new(ErrorCode::InvalidArgument, "empty key"));
    }
    Ok(key)
}

fn read_value<'a>(r: &mut Reader<'a>, limits: &Limits) -> Result<&'a [u8], ProtocolError> {
    r.bytes(
        "value",
        limits.value_size_bytes_max,
        ErrorCode::ValueTooLarge,
        "value_size_bytes_max",
    )
}

fn encode_batch(out: &mut Vec<u8>, batch: &WriteBatch) {
    put_len(out, batch.len());
    for op in batch.ops() {
        match op {
            BatchOp::Put { key, value } => {
                out.push(1);
                put_bytes(out, key);
                put_bytes(out, value);
            }
            BatchOp::Delete { key } => {
                out.push(0);
                put_bytes(out, key);
            }
        }
    }
}

fn decode_batch(r: &mut Reader<'_>, limits: &Limits) -> Result<WriteBatch, ProtocolError> {
    let n = r.count(
        "batch op count",
        limits.batch_ops_max,
        ErrorCode::BatchTooLarge,
        "batch_ops_max",
        5,
    )?;
    let mut batch = WriteBatch::new();
    for i in 0..n {
        let kind = r.u8("batch op kind")?;
        let key = read_write_key(r, limits)?;
        let value = match kind {
            1 => Some(read_value(r, limits)?),
            0 => None,
            k => {
                return Err(ProtocolError::malformed(format!(
                    "batch op {i}: unknown kind {k}"
                )))
            }
        };
        // Checked before the op is copied into the batch.
        let op_bytes = key.len() + value.map_or(6, |v| v.len() + 11);
        let size = batch.encoded_size_max() + op_bytes;
        if size > limits.batch_size_bytes_max {
            return Err(ProtocolError::new(
                ErrorCode::BatchTooLarge,
                format!(
                    "batch of {size}+ bytes exceeds batch_size_bytes_max {}",
                    limits.batch_size_bytes_max
                ),
            ));
        }
        match value {
            Some(v) => batch.put(key, v),
            None => batch.delete(key),
        };
    }
    Ok(batch)
}

fn decode_scan<'a>(r: &mut Reader<'a>, limits: &Limits) -> Result<Request<'a>, ProtocolError> {
    let mode = r.u8("scan mode")?;
    let start = read_key(r, limits)?;
    let range = match mode {
        0 => ScanRange::Range { start, end: None },
        1 => ScanRange::Range {
            start,
            end: Some(read_key(r, limits)?),
        },
        2 => ScanRange::Prefix(start),
        m => return Err(ProtocolError::malformed(format!("unknown scan mode {m}"))),
    };
    let limit = r.u32("scan limit")?;
    if limit == 0 {
        return Err(ProtocolError::new(
            ErrorCode::InvalidArgument,
            "scan limit 0",
        ));
    }
    if limit as usize > limits.scan_limit_max {
        return Err(ProtocolError::new(
            ErrorCode::ScanLimitTooLarge,
            format!(
                "scan limit {limit} exceeds scan_limit_max {}",
                limits.scan_limit_max
            ),
        ));
    }
    Ok(Request::Scan { range, limit })
}

/// Bits of a COMPACT's flags byte.
const COMPACT_HAS_START: u8 = 1;
const COMPACT_HAS_END: u8 = 2;

fn decode_compact<'a>(r: &mut Reader<'a>, limits: &Limits) -> Result<Request<'a>, ProtocolError> {
    let flags = r.u8("compact flags")?;
    if flags & !(COMPACT_HAS_START | COMPACT_HAS_END) != 0 {
        return Err(ProtocolError::malformed(format!(
            "compact flags 0x{flags:02x} set bits other than 0 (start) and 1 (end)"
        )));
    }
    let start = match flags & COMPACT_HAS_START {
        0 => None,
        _ => Some(read_key(r, limits)?),
    };
    let end = match flags & COMPACT_HAS_END {
        0 => None,
        _ => Some(read_key(r, limits)?),
    };
    if let (Some(s), Some(e)) = (start, end) {
        if s > e {
            return Err(ProtocolError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "compact range start \"{}\" sorts after its end \"{}\"",
                    shown_key(s),
                    shown_key(e)
                ),
            ));
        }
    }
    Ok(Request::Compact { start, end })
}

/// A key for an error message: escaped, and cut after 64 bytes.
fn shown_key(key: &[u8]) -> String {
    const SHOWN_BYTES_MAX: usize = 64;
    let shown = key.get(..SHOWN_BYTES_MAX).unwrap_or(key).escape_ascii();
    if key.len() > SHOWN_BYTES_MAX {
        format!("{shown}...")
    } else {
        shown.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::{decode_frame, Decoded};
    use super::*;

    fn round_trip(req: &Request<'_>) {
        let mut out = Vec::new();
        req.encode(&mut out);
        let limits = Limits::default();
        let Decoded::Frame(f) = decode_frame(&out, limits.frame_size_bytes_max) else {
            panic!("no frame for {req:?}")
        };
        assert_eq!(f.consumed, out.len());
        assert_eq!(&Request::decode(f, &limits).unwrap(), req);
        for cut in 0..f.body.len() {
            let short = RawFrame {
                body: &f.body[..cut],
                ..f
            };
            assert!(
                Request::decode(short, &limits).is_err(),
                "{req:?} cut at {cut}"
            );
        }
    }

    #[test]
    fn every_request_round_trips() {
        let mut b = WriteBatch::new();
        b.put(b"a".to_vec(), b"1".to_vec()).delete(b"b".to_vec());
        for req in [
            Request::Ping,
            Request::Metrics,
            Request::Get { key: b"k" },
            Request::Put {
                key: b"k",
                value: b"v",
            },
            Request::Delete { key: b"k" },
            Request::WriteBatch(Cow::Owned(b)),
            Request::MGet {
                keys: vec![b"a", b"", b"c"],
            },
            Request::Scan {
                range: ScanRange::Range {
                    start: b"a",
                    end: None,
                },
                limit: 5,
            },
            Request::Scan {
                range: ScanRange::Range {
                    start: b"a",
                    end: Some(b"z"),
                },
                limit: 5,
            },
            Request::Scan {
                range: ScanRange::Prefix(b"sys."),
                limit: 10_000,
            },
            Request::Compact {
                start: None,
                end: None,
            },
            Request::Compact {
                start: Some(b"a"),
                end: None,
            },
            Request::Compact {
                start: None,
                end: Some(b"z"),
            },
            Request::Compact {
                start: Some(b"a"),
                end: Some(b"a"),
            },
        ] {
            round_trip(&req);
        }
    }

    #[test]
    fn bounds_are_named() {
        let limits = Limits {
            key_size_bytes_max: 4,
            ..Limits::default()
        };
        let mut out = Vec::new();
        Request::Put {
            key: b"12345",
            value: b"v",
        }
        .encode(&mut out);
        let Decoded::Frame(f) = decode_frame(&out, limits.frame_size_bytes_max) else {
            panic!()
        };
        let e = Request::decode(f, &limits).unwrap_err();
        assert_eq!(e.code, ErrorCode::KeyTooLarge);
        assert_eq!(e.message, "key of 5 bytes exceeds key_size_bytes_max 4");

        let e = Request::decode(
            RawFrame {
                opcode: 0x41,
                body: b"",
                consumed: 5,
            },
            &limits,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownOpcode);
        assert!(e.message.contains("time series"), "{e}");

        let mut out = Vec::new();
        Request::Put {
            key: b"",
            value: b"v",
        }
        .encode(&mut out);
        let Decoded::Frame(f) = decode_frame(&out, limits.frame_size_bytes_max) else {
            panic!()
        };
        assert_eq!(
            Request::decode(f, &limits).unwrap_err().code,
            ErrorCode::InvalidArgument
        );

        let mut out = Vec::new();
        Request::Scan {
            range: ScanRange::Prefix(b"a"),
            limit: 10_001,
        }
        .encode(&mut out);
        let Decoded::Frame(f) = decode_frame(&out, limits.frame_size_bytes_max) else {
            panic!()
        };
        assert_eq!(
            Request::decode(f, &limits).unwrap_err().code,
            ErrorCode::ScanLimitTooLarge
        );
    }

    #[test]
    fn compact_bounds_are_checked() {
        let limits = Limits::default();
        fn decode<'b>(body: &'b [u8], limits: &Limits) -> Result<Request<'b>, ProtocolError> {
            Request::decode(
                RawFrame {
                    opcode: Opcode::Compact as u8,
                    body,
                    consumed: 5 + body.len(),
                },
                limits,
            )
        }
        let mut out = Vec::new();
        Request::Compact {
            start: Some(b"b"),
            end: Some(b"a"),
        }
        .encode(&mut out);
        let Decoded::Frame(f) = decode_frame(&out, limits.frame_size_bytes_max) else {
            panic!()
        };
        let e = Request::decode(f, &limits).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert_eq!(
            e.message,
            "compact range start \"b\" sorts after its end \"a\""
        );

        let e = decode(&[4], &limits).unwrap_err();
        assert_eq!(e.code, ErrorCode::MalformedBody);
        assert!(e.message.contains("compact flags 0x04"), "{e}");
        assert_eq!(
            decode(&[0, 9], &limits).unwrap_err().code,
            ErrorCode::MalformedBody
        );
        assert_eq!(
            decode(&[0], &limits).unwrap(),
            Request::Compact {
                start: None,
                end: None
            }
        );
    }

    #[test]
    fn batch_bounds() {
        let limits = Limits {
            batch_size_bytes_max: 40,
            batch_ops_max: 2,
            ..Limits::default()
        };
        let mut b = WriteBatch::new();
        b.put(b"a".to_vec(), vec![0u8; 30]);
        let mut out = Vec::new();
        Request::WriteBatch(Cow::Borrowed(&b)).encode(&mut out);
        let Decoded::Frame(f) = decode_frame(&out, 1 << 20) else {
            panic!()
        };
        assert_eq!(
            Request::decode(f, &limits).unwrap_err().code,
            ErrorCode::BatchTooLarge
        );

        let mut b = WriteBatch::new();
        b.delete(b"a".to_vec())
            .delete(b"b".to_vec())
            .delete(b"c".to_vec());
        let mut out = Vec::new();
        Request::WriteBatch(Cow::Borrowed(&b)).encode(&mut out);
        let Decoded::Frame(f) = decode_frame(&out, 1 << 20) else {
            panic!()
        };
        let e = Request::decode(f, &limits).unwrap_err();
        assert_eq!(e.code, ErrorCode::BatchTooLarge);
        assert_eq!(e.message, "batch op count 3 exceeds batch_ops_max 2");
    }
}
