//! The time-series keyspace inside the LSM, and the catalog record.
//!
//! ```text
//! key                                  value
//! ts/s/<canonical series>              series id: u64 BE             name index
//! ts/i/<id: u64 BE>                    series record (below)         catalog
//! ts/l/<log seq: u64 BE>              log record (see log.rs)       points of one add
//! ts/p/<id: u64 BE><ts: 8 B>           f64 bits, u64 LE              head point (format 1,
//!                                                                    moved into the log on open)
//! ts/c/<id: u64 BE><first ts: 8 B>     chunk (see chunk.rs)          sealed chunk
//! ts/d/<id: u64 BE>                    (empty)                       series being deleted
//! ts/o/next_series_id                  u64 LE                        id allocator
//! ts/o/default_retention_ms            i64 LE                        database default
//! ts/o/log_seq                         u64 LE                        newest log record
//! ```
//!
//! A timestamp in a key is the i64 with its sign bit flipped, big-endian,
//! so that byte order is time order across negative and positive times.
//! Ids are fixed-width, so the keys of one series are one contiguous
//! range and need no separator.
//!
//! Series record (value of `ts/i/<id>`):
//!
//! ```text
//! +---------+--------+--------------+---------------+--------------+------------------+
//! | version | policy | retention_ms | sealed_max_ts | log_sealed   | canonical series |
//! | u8 = 2  | u8     | i64 LE       | i64 LE        | u64 LE       | UTF-8, the rest  |
//! +---------+--------+--------------+---------------+--------------+------------------+
//! policy: 0 last, 1 first, 2 block, 3 min, 4 max, 5 sum
//! retention_ms: -1 the database default, 0 keep forever, > 0 keep that long
//! sealed_max_ts: newest timestamp ever sealed into a chunk (i64::MIN: none)
//! log_sealed: the watermark: every point of this series from log records
//!   with a sequence <= it is in chunks (or was deleted); recovery replays
//!   only the series' points of later records
//! ```
//!
//! Version 1 (no `log_sealed`, read as 0) is still decoded.

use crate::types::prefix_successor;

use super::series::SeriesKey;
use super::DupPolicy;

/// Prefix of the name index.
pub const NAME_PREFIX: &[u8] = b"ts/s/";
/// Prefix of the catalog.
pub const META_PREFIX: &[u8] = b"ts/i/";
/// Prefix of log records.
pub const LOG_PREFIX: &[u8] = b"ts/l/";
/// Prefix of head points (format 1).
pub const POINT_PREFIX: &[u8] = b"ts/p/";
/// Prefix of chunks.
pub const CHUNK_PREFIX: &[u8] = b"ts/c/";
/// Prefix of pending series deletions.
pub const DELETING_PREFIX: &[u8] = b"ts/d/";
/// The id allocator.
pub const NEXT_ID_KEY: &[u8] = b"ts/o/next_series_id";
/// The database-wide default retention.
pub const DEFAULT_RETENTION_KEY: &[u8] = b"ts/o/default_retention_ms";
/// The newest log record's sequence, written with every record.
pub const LOG_SEQ_KEY: &[u8] = b"ts/o/log_seq";

const PREFIX_LEN: usize = 5;

/// A timestamp as 8 bytes whose byte order is time order.
pub fn ts_bytes(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

fn ts_from(b: [u8; 8]) -> i64 {
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

/// `ts/s/<canonical>`.
pub fn name_key(canonical: &str) -> Vec<u8> {
    [NAME_PREFIX, canonical.as_bytes()].concat()
}

/// `<prefix><id>`: the catalog or deletion key of `id`, or the start of
/// its points or chunks.
pub fn id_key(prefix: &[u8], id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(PREFIX_LEN + 16);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// `<prefix><id><ts>`: a head point or chunk key.
pub fn id_ts_key(prefix: &[u8], id: u64, ts: i64) -> Vec<u8> {
    let mut k = id_key(prefix, id);
    k.extend_from_slice(&ts_bytes(ts));
    k
}

/// The end (exclusive) of the keys of `id` under `prefix`.
pub fn id_end(prefix: &[u8], id: u64) -> Vec<u8> {
    let k = id_key(prefix, id);
    prefix_successor(&k).unwrap_or(k)
}

/// The keys of `id` under `prefix` with timestamps in `[from, to]`, as a
/// scan range `[start, end)`.
pub fn ts_range(prefix: &[u8], id: u64, from: i64, to: i64) -> (Vec<u8>, Vec<u8>) {
    let start = id_ts_key(prefix, id, from);
    let end = match to.checked_add(1) {
        Some(t) => id_ts_key(prefix, id, t),
        None => id_end(prefix, id),
    };
    (start, end)
}

/// Parses `<prefix><id>`.
pub fn parse_id_key(prefix: &[u8], key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(prefix)?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

/// Parses `<prefix><id><ts>`.
pub fn parse_id_ts_key(prefix: &[u8], key: &[u8]) -> Option<(u64, i64)> {
    let rest = key.strip_prefix(prefix)?;
    let (id, ts) = rest.split_first_chunk::<8>()?;
    let ts: [u8; 8] = ts.try_into().ok()?;
    Some((u64::from_be_bytes(*id), ts_from(ts)))
}

/// `ts/l/<seq>`.
pub fn log_key(seq: u64) -> Vec<u8> {
    id_key(LOG_PREFIX, seq)
}

/// A head point's value.
pub fn point_value(v: f64) -> [u8; 8] {
    v.to_bits().to_le_bytes()
}

/// Parses a head point's value.
pub fn parse_point_value(b: &[u8]) -> Option<f64> {
    Some(f64::from_bits(u64::from_le_bytes(b.try_into().ok()?)))
}

/// What the catalog records of a series.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesRecord {
    /// The series.
    pub key: SeriesKey,
    /// What a second point at the same timestamp does.
    pub policy: DupPolicy,
    /// -1: the database default; 0: forever; > 0: milliseconds kept.
    pub retention_ms: i64,
    /// Newest timestamp sealed into a chunk.
    pub sealed_max_ts: Option<i64>,
    /// Every point of the series from log records up to this sequence is
    /// in chunks.
    pub log_sealed: u64,
}

const RECORD_VERSION: u8 = 2;
const RECORD_HEADER_LEN: usize = 26;
const RECORD_V1_HEADER_LEN: usize = 18;

impl SeriesRecord {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let canonical = self.key.canonical();
        let mut out = Vec::with_capacity(RECORD_HEADER_LEN + canonical.len());
        out.push(RECORD_VERSION);
        out.push(self.policy as u8);
        out.extend_from_slice(&self.retention_ms.to_le_bytes());
        out.extend_from_slice(&self.sealed_max_ts.unwrap_or(i64::MIN).to_le_bytes());
        out.extend_from_slice(&self.log_sealed.to_le_bytes());
        out.extend_from_slice(canonical.as_bytes());
        out
    }

    /// Parses a record (version 2 or 1); the error says what is wrong.
    pub fn decode(b: &[u8]) -> Result<Self, String> {
        let version = *b.first().ok_or("empty series record")?;
        let header = match version {
            1 => RECORD_V1_HEADER_LEN,
            RECORD_VERSION => RECORD_HEADER_LEN,
            v => return Err(format!("unknown series record version {v}")),
        };
        let (head, name) = b
            .split_at_checked(header)
            .ok_or_else(|| format!("series record of {} bytes is too short", b.len()))?;
        let field = |at: usize| -> Result<[u8; 8], String> {
            head.get(at..at + 8)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| "short series record".to_string())
        };
        let policy = head.get(1).copied().ok_or("short series record")?;
        let policy =
            DupPolicy::from_u8(policy).ok_or_else(|| format!("unknown policy {policy}"))?;
        let retention_ms = i64::from_le_bytes(field(2)?);
        let sealed = i64::from_le_bytes(field(10)?);
        let log_sealed = if version == 1 {
            0
        } else {
            u64::from_le_bytes(field(18)?)
        };
        let name = std::str::from_utf8(name).map_err(|_| "series name is not UTF-8")?;
        let key = SeriesKey::parse(name).map_err(|e| e.to_string())?;
        Ok(SeriesRecord {
            key,
            policy,
            retention_ms,
            sealed_max_ts: (sealed != i64::MIN).then_some(sealed),
            log_sealed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_bytes_sort_like_timestamps() {
        let ts = [i64::MIN, -5, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        for w in ts.windows(2) {
            assert!(ts_bytes(w[0]) < ts_bytes(w[1]));
        }
        for t in ts {
            let k = id_ts_key(POINT_PREFIX, 7, t);
            assert_eq!(k.len(), 21);
            assert_eq!(parse_id_ts_key(POINT_PREFIX, &k), Some((7, t)));
        }
        assert!(id_end(CHUNK_PREFIX, 7) > id_ts_key(CHUNK_PREFIX, 7, i64::MAX));
        assert!(id_end(CHUNK_PREFIX, 7) <= id_key(CHUNK_PREFIX, 8));
        let (s, e) = ts_range(CHUNK_PREFIX, 1, 5, i64::MAX);
        assert!(s < e);
    }

    #[test]
    fn record_round_trips_and_rejects_damage() {
        let r = SeriesRecord {
            key: SeriesKey::parse("cpu{host=a}").unwrap(),
            policy: DupPolicy::Block,
            retention_ms: 86_400_000,
            sealed_max_ts: Some(-3),
            log_sealed: 77,
        };
        let b = r.encode();
        assert_eq!(SeriesRecord::decode(&b).unwrap(), r);
        for cut in 0..RECORD_HEADER_LEN {
            assert!(SeriesRecord::decode(&b[..cut]).is_err());
        }
        let mut bad = b.clone();
        bad[1] = 9;
        assert!(SeriesRecord::decode(&bad).is_err());
        // Version 1: no watermark.
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&b[1..RECORD_V1_HEADER_LEN]);
        v1.extend_from_slice(&b[RECORD_HEADER_LEN..]);
        let old = SeriesRecord::decode(&v1).unwrap();
        assert_eq!(old.log_sealed, 0);
        assert_eq!(old.key, r.key);
        assert_eq!(old.sealed_max_ts, r.sealed_max_ts);
    }
}
