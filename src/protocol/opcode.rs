//! Opcodes: the byte after a frame's length that says what the frame is.
//!
//! Requests use `0x01..=0x7f`, responses `0x80..=0xff`:
//!
//! ```text
//! requests                           responses
//! 0x01 HELLO        (handshake)      0x80 OK
//! 0x02 PING                          0x81 HELLO       (handshake answer)
//! 0x10 GET                           0x82 PONG
//! 0x11 PUT                           0x83 VALUE
//! 0x12 DELETE                        0x84 NOT_FOUND
//! 0x13 WRITE_BATCH                   0x85 VALUES      (MGET answer)
//! 0x14 MGET                          0x86 SCAN_PAGE
//! 0x15 SCAN                          0x87 METRICS
//! 0x20 METRICS                       0xd0 TS_POINTS   (TS_RANGE, TS_LATEST answer)
//! 0x21 COMPACT                       0xd1 TS_SERIES_LIST
//! 0x50 TS_ADD
//! 0x51 TS_RANGE                      0xc0..=0xdf otherwise reserved: time series
//! 0x52 TS_LATEST                     0xff ERROR
//! 0x53 TS_SERIES
//! 0x54 TS_DELETE
//! 0x55 TS_RETENTION
//! 0x56 TS_POLICY
//! 0x57 TS_AGG                       (answered TS_POINTS)
//! 0x40..=0x5f otherwise reserved: time series
//! 0x60..=0x7f reserved: future use
//! ```
//!
//! The time-series bodies are in [`super::ts`]. A reserved request opcode
//! is answered with an `unknown_opcode` error that says the opcode is
//! reserved, and the connection goes on.

use std::ops::RangeInclusive;

/// Request opcodes reserved for time-series operations (add, range, ...).
pub const TIME_SERIES_REQUESTS: RangeInclusive<u8> = 0x40..=0x5f;

/// Response opcodes reserved for time-series answers.
pub const TIME_SERIES_RESPONSES: RangeInclusive<u8> = 0xc0..=0xdf;

/// Request opcodes reserved for later protocol versions.
pub const FUTURE_REQUESTS: RangeInclusive<u8> = 0x60..=0x7f;

/// A request opcode this protocol version defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    /// The handshake; must be the first frame and only there.
    Hello = 0x01,
    /// Liveness check.
    Ping = 0x02,
    /// Read one key.
    Get = 0x10,
    /// Write one key.
    Put = 0x11,
    /// Delete one key.
    Delete = 0x12,
    /// Apply puts and deletes atomically.
    WriteBatch = 0x13,
    /// Read many keys.
    MGet = 0x14,
    /// Read an ordered range of keys.
    Scan = 0x15,
    /// Read the server's and the engine's metrics.
    Metrics = 0x20,
    /// Flush the memtables and compact a key range; answered when done.
    Compact = 0x21,
    /// Add points to time series.
    TsAdd = 0x50,
    /// Read a time range of a series, raw or aggregated.
    TsRange = 0x51,
    /// Read the newest point of a series.
    TsLatest = 0x52,
    /// List series by prefix and labels.
    TsSeries = 0x53,
    /// Delete a series or a time range of it.
    TsDelete = 0x54,
    /// Set a series' (or the default) retention.
    TsRetention = 0x55,
    /// Set a series' duplicate policy.
    TsPolicy = 0x56,
    /// Aggregate across every series a selector matches.
    TsAgg = 0x57,
}

impl Opcode {
    /// Every request opcode, in wire order.
    pub const ALL: [Opcode; 18] = [
        Opcode::Hello,
        Opcode::Ping,
        Opcode::Get,
        Opcode::Put,
        Opcode::Delete,
        Opcode::WriteBatch,
        Opcode::MGet,
        Opcode::Scan,
        Opcode::Metrics,
        Opcode::Compact,
        Opcode::TsAdd,
        Opcode::TsRange,
        Opcode::TsLatest,
        Opcode::TsSeries,
        Opcode::TsDelete,
        Opcode::TsRetention,
        Opcode::TsPolicy,
        Opcode::TsAgg,
    ];

    /// Decodes a request opcode; `None` for anything undefined or reserved.
    pub fn from_u8(b: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|o| *o as u8 == b)
    }

    /// Lower-case name, used in metrics (`server.get.requests`).
    pub fn name(self) -> &'static str {
        match self {
            Opcode::Hello => "hello",
            Opcode::Ping => "ping",
            Opcode::Get => "get",
            Opcode::Put => "put",
            Opcode::Delete => "delete",
            Opcode::WriteBatch => "write_batch",
            Opcode::MGet => "mget",
            Opcode::Scan => "scan",
            Opcode::Metrics => "metrics",
            Opcode::Compact => "compact",
            Opcode::TsAdd => "ts_add",
            Opcode::TsRange => "ts_range",
            Opcode::TsLatest => "ts_latest",
            Opcode::TsSeries => "ts_series",
            Opcode::TsDelete => "ts_delete",
            Opcode::TsRetention => "ts_retention",
            Opcode::TsPolicy => "ts_policy",
            Opcode::TsAgg => "ts_agg",
        }
    }

    /// Whether the request changes data (served through the write path).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Opcode::Put
                | Opcode::Delete
                | Opcode::WriteBatch
                | Opcode::TsAdd
                | Opcode::TsDelete
                | Opcode::TsRetention
                | Opcode::TsPolicy
        )
    }

    /// Whether the request is a time-series one (its body is in
    /// [`super::ts`]).
    pub fn is_time_series(self) -> bool {
        TIME_SERIES_REQUESTS.contains(&(self as u8))
    }
}

/// A response opcode this protocol version defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ResponseOpcode {
    /// Success without a payload (PUT, DELETE, WRITE_BATCH).
    Ok = 0x80,
    /// The handshake answer: version and the server's limits.
    Hello = 0x81,
    /// The PING answer.
    Pong = 0x82,
    /// GET found a value.
    Value = 0x83,
    /// GET found nothing.
    NotFound = 0x84,
    /// The MGET answer: one optional value per key.
    Values = 0x85,
    /// A page of SCAN pairs and maybe a continuation key.
    ScanPage = 0x86,
    /// The METRICS answer.
    Metrics = 0x87,
    /// A page of time-series points.
    TsPoints = 0xd0,
    /// A page of time-series names.
    TsSeriesList = 0xd1,
    /// The request failed; the body says why.
    Error = 0xff,
}

impl ResponseOpcode {
    /// Every response opcode, in wire order.
    pub const ALL: [ResponseOpcode; 11] = [
        ResponseOpcode::Ok,
        ResponseOpcode::Hello,
        ResponseOpcode::Pong,
        ResponseOpcode::Value,
        ResponseOpcode::NotFound,
        ResponseOpcode::Values,
        ResponseOpcode::ScanPage,
        ResponseOpcode::Metrics,
        ResponseOpcode::TsPoints,
        ResponseOpcode::TsSeriesList,
        ResponseOpcode::Error,
    ];

    /// Decodes a response opcode.
    pub fn from_u8(b: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|o| *o as u8 == b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_round_trip_and_avoid_reserved_ranges() {
        for o in Opcode::ALL {
            assert_eq!(Opcode::from_u8(o as u8), Some(o));
            assert!((o as u8) < 0x80);
            let ts = o.name().starts_with("ts_");
            assert_eq!(TIME_SERIES_REQUESTS.contains(&(o as u8)), ts, "{o:?}");
            assert_eq!(o.is_time_series(), ts);
            assert!(!FUTURE_REQUESTS.contains(&(o as u8)));
        }
        for o in ResponseOpcode::ALL {
            assert_eq!(ResponseOpcode::from_u8(o as u8), Some(o));
            assert!((o as u8) >= 0x80);
            let ts = matches!(o, ResponseOpcode::TsPoints | ResponseOpcode::TsSeriesList);
            assert_eq!(TIME_SERIES_RESPONSES.contains(&(o as u8)), ts, "{o:?}");
        }
        assert_eq!(Opcode::from_u8(0x40), None);
        assert_eq!(Opcode::from_u8(0x00), None);
    }
}
