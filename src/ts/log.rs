//! The time-series log record: every point of one add as one engine
//! value, `ts/l/<log seq: u64 BE>`.
//!
//! ```text
//! +---------+-------------+---------------------------------------------+
//! | version | crc32       | body                                        |
//! | u8 = 1  | u32 LE      |                                             |
//! +---------+-------------+---------------------------------------------+
//! body:   varint groups, then per group:
//!         varint series id, varint points,
//!         per point: varint zigzag(ts - previous ts of the group; the
//!         first against 0), then the value's f64 bits as u64 LE
//! crc32:  crc32fast (IEEE) of the body
//! ```
//!
//! A group holds one series' points of the add, strictly increasing in
//! time, each with the value the series stores after its duplicate policy
//! was applied (so replaying a record sets values and never combines
//! them: replay is idempotent). A point at the TSBS shape's 10 s step
//! costs 2 bytes of timestamp and 8 of value.

use crate::varint;

use super::Point;

const VERSION: u8 = 1;
const HEADER_LEN: usize = 5;

/// Builds one log record.
#[derive(Debug)]
pub(crate) struct LogEncoder {
    out: Vec<u8>,
    groups: u64,
    body: Vec<u8>,
}

impl LogEncoder {
    /// An empty record with room for about `points` points.
    pub fn with_points(points: usize) -> Self {
        LogEncoder {
            out: Vec::new(),
            groups: 0,
            body: Vec::with_capacity(points.saturating_mul(11).saturating_add(16)),
        }
    }

    /// Appends one series' points (strictly increasing timestamps).
    pub fn group(&mut self, id: u64, points: &[Point]) {
        if points.is_empty() {
            return;
        }
        self.groups += 1;
        varint::put(&mut self.body, id);
        varint::put(&mut self.body, points.len() as u64);
        let mut prev = 0i64;
        for p in points {
            let d = p.ts.wrapping_sub(prev);
            varint::put(&mut self.body, ((d << 1) ^ (d >> 63)) as u64);
            self.body
                .extend_from_slice(&p.value.to_bits().to_le_bytes());
            prev = p.ts;
        }
    }

    /// Whether no point was added.
    pub fn is_empty(&self) -> bool {
        self.groups == 0
    }

    /// The record's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let mut head = Vec::with_capacity(10);
        varint::put(&mut head, self.groups);
        self.out
            .reserve_exact(HEADER_LEN + head.len() + self.body.len());
        let mut h = crc32fast::Hasher::new();
        h.update(&head);
        h.update(&self.body);
        self.out.push(VERSION);
        self.out.extend_from_slice(&h.finalize().to_le_bytes());
        self.out.extend_from_slice(&head);
        self.out.extend_from_slice(&self.body);
        self.out
    }
}

/// Decodes a record, calling `f(series id, points)` per group; the error
/// says what is wrong.
pub(crate) fn decode(data: &[u8], mut f: impl FnMut(u64, &[Point])) -> Result<(), String> {
    let (&version, rest) = data.split_first().ok_or("empty log record")?;
    if version != VERSION {
        return Err(format!("unknown log record version {version}"));
    }
    let (crc, body) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| format!("log record of {} bytes is too short", data.len()))?;
    if crc32fast::hash(body) != u32::from_le_bytes(*crc) {
        return Err("log record checksum mismatch".into());
    }
    let mut cur = body;
    let groups = varint::get(&mut cur).ok_or("log record: bad group count")?;
    let mut points = Vec::new();
    for g in 0..groups {
        let id = varint::get(&mut cur).ok_or_else(|| format!("log record group {g}: bad id"))?;
        let n = varint::get(&mut cur).ok_or_else(|| format!("log record group {g}: bad count"))?;
        // Each point takes at least 9 bytes.
        if n > (cur.len() / 9) as u64 {
            return Err(format!(
                "log record group {g}: {n} points in {} bytes",
                cur.len()
            ));
        }
        points.clear();
        let mut prev = 0i64;
        for i in 0..n {
            let z = varint::get(&mut cur)
                .ok_or_else(|| format!("log record group {g} point {i}: bad timestamp"))?;
            let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
            let ts = prev.wrapping_add(d);
            if i > 0 && ts <= prev {
                return Err(format!(
                    "log record group {g} point {i}: timestamps out of order"
                ));
            }
            let (v, rest) = cur
                .split_first_chunk::<8>()
                .ok_or_else(|| format!("log record group {g} point {i}: value cut short"))?;
            cur = rest;
            points.push(Point {
                ts,
                value: f64::from_bits(u64::from_le_bytes(*v)),
            });
            prev = ts;
        }
        f(id, &points);
    }
    if !cur.is_empty() {
        return Err(format!(
            "log record: {} bytes after the last group",
            cur.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(ts: i64, value: f64) -> Point {
        Point { ts, value }
    }

    fn groups(data: &[u8]) -> Result<Vec<(u64, Vec<Point>)>, String> {
        let mut out = Vec::new();
        decode(data, |id, pts| out.push((id, pts.to_vec())))?;
        Ok(out)
    }

    #[test]
    fn round_trips() {
        let a = vec![
            p(i64::MIN, -0.0),
            p(-5, 1.5),
            p(0, f64::MAX),
            p(i64::MAX, 3.0),
        ];
        let b = vec![p(1_700_000_000_000, 42.0), p(1_700_000_010_000, 43.0)];
        let mut e = LogEncoder::with_points(6);
        e.group(7, &a);
        e.group(u64::MAX, &b);
        e.group(9, &[]);
        let rec = e.finish();
        assert_eq!(groups(&rec).unwrap(), vec![(7, a), (u64::MAX, b)]);
        let empty = LogEncoder::with_points(0);
        assert!(empty.is_empty());
        assert_eq!(groups(&empty.finish()).unwrap(), vec![]);
    }

    #[test]
    fn damage_is_refused() {
        let mut e = LogEncoder::with_points(2);
        e.group(1, &[p(10, 1.0), p(20, 2.0)]);
        let rec = e.finish();
        for cut in 0..rec.len() {
            assert!(groups(&rec[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..rec.len() {
            let mut bad = rec.clone();
            bad[i] ^= 0x10;
            assert!(groups(&bad).is_err(), "flip at {i}");
        }
        let mut long = rec.clone();
        long.push(0);
        assert!(groups(&long).unwrap_err().contains("checksum"));
    }
}
