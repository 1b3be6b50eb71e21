//! The chunk codec: up to [`CHUNK_POINTS_MAX`] points of one series,
//! compressed, checksummed, stored as one value in the LSM.
//!
//! Timestamps are Gorilla's delta-of-delta, or nothing at all when every
//! step is the same (a collector ticking every 10 s costs zero bits per
//! timestamp). Values are Gorilla's XOR of consecutive IEEE-754 bit
//! patterns, or, when every value of the chunk is a decimal in disguise
//! (an integer, or a number with at most 15 decimal digits that
//! `mantissa / 10^scale` reproduces bit for bit), the deltas of the
//! integer mantissas in a Rice code whose parameter is fitted to the
//! chunk. The encoder picks per chunk; the decoder obeys the flags.
//!
//! ```text
//! offset 0        1        2
//!        +--------+--------+-------------+-------------------+
//!        | format | flags  | count       | first timestamp   |
//!        | u8 = 1 | u8     | varint      | zigzag varint, ms |
//!        +--------+--------+-------------+-------------------+
//!        | step varint              (flags bit 0 and count >= 2)   |
//!        | scale u8 | rice k u8 | first mantissa zigzag varint     |
//!        |                          (flags bit 1)                  |
//!        +--------------------------------------------------------+
//!        | bit stream: timestamps 1..count (flags bit 0 clear),   |
//!        | then values (high bit first, zero padded to a byte)     |
//!        +--------------------------------------------------------+
//!        | crc32 u32 LE of every byte before it                   |
//!        +--------------------------------------------------------+
//! flags: bit 0  timestamps: 0 delta-of-delta, 1 constant step
//!        bit 1  values:     0 XOR,            1 decimal mantissas
//!        bits 2..7 zero
//! ```
//!
//! Delta-of-delta `D` (wrapping 64-bit arithmetic, so every i64 sequence
//! round-trips), prefix code then payload:
//!
//! ```text
//! 0                        D = 0
//! 10    + 7 bits  D + 63   D in [-63, 64]
//! 110   + 9 bits  D + 255  D in [-255, 256]
//! 1110  + 12 bits D + 2047 D in [-2047, 2048]
//! 11110 + 32 bits D + 2^31 - 1
//! 11111 + 64 bits D
//! ```
//!
//! XOR values: the first value's 64 bits, then per value `x = bits ^
//! previous bits`: `0` if `x = 0`; `10` + the meaningful bits if they fit
//! the previous window; else `11` + leading zeros (5 bits, at most 31) +
//! meaningful length - 1 (6 bits) + the meaningful bits.
//!
//! Decimal values: per value after the first, `z = zigzag(mantissa -
//! previous mantissa)` as Rice(k): `z >> k` one bits, a zero bit, the low
//! `k` bits of `z`; or, when `z >> k` is [`RICE_ESCAPE`] or more, that many
//! one bits and `z` in 64 bits.
//!
//! Decoding trusts nothing: the checksum first, then every count against
//! the bytes present before allocating, timestamps strictly increasing,
//! values finite, nothing left over. A damaged chunk is an error that says
//! what is wrong, never a panic.

use super::bits::{BitReader, BitWriter};
use super::Point;
use crate::varint;

/// The format byte this codec writes.
pub const FORMAT: u8 = 1;
/// Most points one chunk may hold.
pub const CHUNK_POINTS_MAX: usize = 1 << 16;
/// Rice quotients at or above this are escaped to 64 raw bits.
pub const RICE_ESCAPE: u32 = 20;
/// Largest decimal scale tried (10^15 is exact in an f64).
const SCALE_MAX: usize = 15;
/// Largest mantissa magnitude (every integer up to it is exact in an f64).
const MANTISSA_MAX: i64 = 1 << 53;
const CRC_LEN: usize = 4;

const FLAG_CONSTANT_STEP: u8 = 1;
const FLAG_DECIMAL: u8 = 2;

const POW10: [f64; SCALE_MAX + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// What is wrong with a chunk's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkError {
    /// Byte offset in the chunk where decoding failed.
    pub offset: usize,
    /// What check failed.
    pub what: String,
}

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (chunk byte {})", self.what, self.offset)
    }
}

fn err(offset: usize, what: impl Into<String>) -> ChunkError {
    ChunkError {
        offset,
        what: what.into(),
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// Encodes `points` (1 to [`CHUNK_POINTS_MAX`], timestamps strictly
/// increasing, values finite) and appends the chunk to `out`. Input that
/// breaks those rules is refused with a message; it is a caller's bug.
pub fn encode(points: &[Point], out: &mut Vec<u8>) -> Result<(), String> {
    check_input(points)?;
    let Some(first) = points.first() else {
        return Err("a chunk holds at least one point".into());
    };
    let start = out.len();
    let step = constant_step(points);
    let decimal = decimal_form(points);
    let mut flags = 0;
    if step.is_some() || points.len() == 1 {
        flags |= FLAG_CONSTANT_STEP;
    }
    if decimal.is_some() {
        flags |= FLAG_DECIMAL;
    }
    out.push(FORMAT);
    out.push(flags);
    varint::put(out, points.len() as u64);
    varint::put(out, zigzag(first.ts));
    if let Some(step) = step {
        varint::put(out, step);
    }
    let mut w = BitWriter::new();
    if flags & FLAG_CONSTANT_STEP == 0 {
        write_timestamps(&mut w, points);
    }
    match &decimal {
        Some(d) => {
            out.push(d.scale as u8);
            out.push(d.k as u8);
            varint::put(out, zigzag(d.mantissas.first().copied().unwrap_or(0)));
            write_decimal(&mut w, &d.mantissas, d.k);
        }
        None => write_xor(&mut w, points),
    }
    out.extend_from_slice(&w.finish());
    let crc = crc32fast::hash(out.get(start..).unwrap_or_default());
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn check_input(points: &[Point]) -> Result<(), String> {
    if points.is_empty() || points.len() > CHUNK_POINTS_MAX {
        return Err(format!(
            "a chunk holds 1 to {CHUNK_POINTS_MAX} points, not {}",
            points.len()
        ));
    }
    for (i, p) in points.iter().enumerate() {
        if !p.value.is_finite() {
            return Err(format!("point {i} has the non-finite value {}", p.value));
        }
        if i > 0 && points.get(i - 1).is_some_and(|q| q.ts >= p.ts) {
            return Err(format!("timestamps not strictly increasing at point {i}"));
        }
    }
    Ok(())
}

/// The common step when every delta is the same (two points or more).
fn constant_step(points: &[Point]) -> Option<u64> {
    let mut it = points.windows(2).map(|w| match w {
        [a, b] => b.ts.wrapping_sub(a.ts) as u64,
        _ => 0,
    });
    let step = it.next()?;
    (step <= i64::MAX as u64 && it.all(|d| d == step)).then_some(step)
}

fn write_timestamps(w: &mut BitWriter, points: &[Point]) {
    let mut prev_delta = 0i64;
    for pair in points.windows(2) {
        let [a, b] = pair else { continue };
        let delta = b.ts.wrapping_sub(a.ts);
        let dod = delta.wrapping_sub(prev_delta);
        prev_delta = delta;
        match dod {
            0 => w.bit(false),
            -63..=64 => {
                w.write(0b10, 2);
                w.write((dod + 63) as u64, 7);
            }
            -255..=256 => {
                w.write(0b110, 3);
                w.write((dod + 255) as u64, 9);
            }
            -2047..=2048 => {
                w.write(0b1110, 4);
                w.write((dod + 2047) as u64, 12);
            }
            -2_147_483_647..=2_147_483_648 => {
                w.write(0b11110, 5);
                w.write((dod + 2_147_483_647) as u64, 32);
            }
            _ => {
                w.write(0b11111, 5);
                w.write(dod as u64, 64);
            }
        }
    }
}

fn write_xor(w: &mut BitWriter, points: &[Point]) {
    let mut prev = 0u64;
    // The previous meaningful window (leading, trailing), once there is one.
    let mut window: Option<(u32, u32)> = None;
    for (i, p) in points.iter().enumerate() {
        let bits = p.value.to_bits();
        if i == 0 {
            w.write(bits, 64);
            prev = bits;
            continue;
        }
        let x = bits ^ prev;
        prev = bits;
        if x == 0 {
            w.bit(false);
            continue;
        }
        let lead = x.leading_zeros().min(31);
        let trail = x.trailing_zeros();
        match window {
            Some((pl, pt)) if lead >= pl && trail >= pt => {
                w.write(0b10, 2);
                w.write(x >> pt, 64 - pl - pt);
            }
            _ => {
                let sig = 64 - lead - trail;
                w.write(0b11, 2);
                w.write(u64::from(lead), 5);
                w.write(u64::from(sig - 1), 6);
                w.write(x >> trail, sig);
                window = Some((lead, trail));
            }
        }
    }
}

/// Values as `mantissa / 10^scale`, when every one is exactly that.
struct Decimal {
    scale: usize,
    k: u32,
    mantissas: Vec<i64>,
}

fn decimal_form(points: &[Point]) -> Option<Decimal> {
    'scales: for (scale, &pow) in POW10.iter().enumerate() {
        let mut mantissas = Vec::with_capacity(points.len());
        for p in points {
            let m = (p.value * pow).round();
            // (NaN and infinity from an overflowing product fail too.)
            if m.abs().partial_cmp(&(MANTISSA_MAX as f64)) != Some(std::cmp::Ordering::Less) {
                continue 'scales;
            }
            // Checked exactly as the decoder computes it (from the integer,
            // so -0.0 is not mistaken for 0).
            let m = m as i64;
            if (m as f64 / pow).to_bits() != p.value.to_bits() {
                continue 'scales;
            }
            mantissas.push(m);
        }
        let k = rice_parameter(&mantissas);
        return Some(Decimal {
            scale,
            k,
            mantissas,
        });
    }
    None
}

fn deltas(mantissas: &[i64]) -> impl Iterator<Item = u64> + '_ {
    mantissas.windows(2).map(|w| match w {
        [a, b] => zigzag(b - a),
        _ => 0,
    })
}

fn rice_bits(z: u64, k: u32) -> u64 {
    let q = z >> k;
    if q >= u64::from(RICE_ESCAPE) {
        u64::from(RICE_ESCAPE) + 64
    } else {
        q + 1 + u64::from(k)
    }
}

/// The Rice parameter that codes these mantissas' deltas in the fewest bits.
fn rice_parameter(mantissas: &[i64]) -> u32 {
    let n = mantissas.len().saturating_sub(1).max(1) as u64;
    let mean = deltas(mantissas).fold(0u64, |s, z| s.saturating_add(z)) / n;
    let guess = 63 - mean.max(1).leading_zeros();
    let lo = guess.saturating_sub(2);
    let hi = (guess + 2).min(62);
    (lo..=hi)
        .min_by_key(|&k| deltas(mantissas).map(|z| rice_bits(z, k)).sum::<u64>())
        .unwrap_or(0)
}

fn write_decimal(w: &mut BitWriter, mantissas: &[i64], k: u32) {
    for z in deltas(mantissas) {
        let q = z >> k;
        if q >= u64::from(RICE_ESCAPE) {
            w.write((1u64 << RICE_ESCAPE) - 1, RICE_ESCAPE);
            w.write(z, 64);
        } else {
            // q < 20: the ones and the zero fit one write.
            w.write(((1u64 << q) - 1) << 1, q as u32 + 1);
            w.write(z, k);
        }
    }
}

/// The chunk without its trailing crc32, once the crc matches.
fn checked_body(data: &[u8]) -> Result<&[u8], ChunkError> {
    let body_len = data
        .len()
        .checked_sub(CRC_LEN)
        .ok_or_else(|| err(0, format!("chunk of {} bytes is too short", data.len())))?;
    let (body, crc) = data.split_at(body_len);
    let stored = u32::from_le_bytes(crc.try_into().map_err(|_| err(body_len, "no checksum"))?);
    let actual = crc32fast::hash(body);
    if stored != actual {
        return Err(err(
            body_len,
            format!("checksum mismatch: stored {stored:08x}, computed {actual:08x}"),
        ));
    }
    Ok(body)
}

/// Decodes a whole chunk.
pub fn decode(data: &[u8]) -> Result<Vec<Point>, ChunkError> {
    let mut out = Vec::new();
    decode_into(data, &mut out)?;
    Ok(out)
}

/// Decodes a whole chunk, appending its points to `out` (which is left as
/// it was on error).
pub fn decode_into(data: &[u8], out: &mut Vec<Point>) -> Result<(), ChunkError> {
    let body = checked_body(data)?;
    let before = out.len();
    let r = decode_body(body, out);
    if r.is_err() {
        out.truncate(before);
    }
    r
}

struct Header {
    flags: u8,
    count: usize,
    first_ts: i64,
    step: u64,
    scale: usize,
    k: u32,
    first_mantissa: i64,
}

fn read_varint(rest: &mut &[u8], body: &[u8], what: &str) -> Result<u64, ChunkError> {
    let at = body.len() - rest.len();
    varint::get(rest).ok_or_else(|| err(at, format!("{what} truncated")))
}

fn read_u8(rest: &mut &[u8], body: &[u8], what: &str) -> Result<u8, ChunkError> {
    let at = body.len() - rest.len();
    let (&b, tail) = rest
        .split_first()
        .ok_or_else(|| err(at, format!("{what} truncated")))?;
    *rest = tail;
    Ok(b)
}

fn read_header(body: &[u8]) -> Result<(Header, &[u8]), ChunkError> {
    let mut rest = body;
    let format = read_u8(&mut rest, body, "format byte")?;
    if format != FORMAT {
        return Err(err(0, format!("unknown chunk format {format}")));
    }
    let flags = read_u8(&mut rest, body, "flags")?;
    if flags & !(FLAG_CONSTANT_STEP | FLAG_DECIMAL) != 0 {
        return Err(err(1, format!("unknown flags {flags:#04x}")));
    }
    let count = read_varint(&mut rest, body, "point count")?;
    if count == 0 || count > CHUNK_POINTS_MAX as u64 {
        return Err(err(
            2,
            format!("point count {count} out of 1..={CHUNK_POINTS_MAX}"),
        ));
    }
    let count = count as usize;
    let first_ts = unzigzag(read_varint(&mut rest, body, "first timestamp")?);
    let mut h = Header {
        flags,
        count,
        first_ts,
        step: 0,
        scale: 0,
        k: 0,
        first_mantissa: 0,
    };
    if flags & FLAG_CONSTANT_STEP != 0 && count >= 2 {
        h.step = read_varint(&mut rest, body, "timestamp step")?;
        if h.step == 0 || h.step > i64::MAX as u64 {
            return Err(err(
                body.len() - rest.len(),
                format!("bad timestamp step {}", h.step),
            ));
        }
    }
    if flags & FLAG_DECIMAL != 0 {
        h.scale = usize::from(read_u8(&mut rest, body, "decimal scale")?);
        h.k = u32::from(read_u8(&mut rest, body, "rice parameter")?);
        h.first_mantissa = unzigzag(read_varint(&mut rest, body, "first mantissa")?);
        if h.scale > SCALE_MAX || h.k > 62 || h.first_mantissa.abs() > MANTISSA_MAX {
            return Err(err(
                body.len() - rest.len(),
                format!(
                    "bad decimal header: scale {}, rice k {}, first mantissa {}",
                    h.scale, h.k, h.first_mantissa
                ),
            ));
        }
    }
    Ok((h, rest))
}

fn decode_body(body: &[u8], out: &mut Vec<Point>) -> Result<(), ChunkError> {
    let (h, stream) = read_header(body)?;
    let stream_at = body.len() - stream.len();
    // Every point after the first costs at least one bit, unless both
    // columns are implicit (constant step and constant decimal values
    // still cost a bit each); so the count is bounded by the stream.
    if h.count - 1 > stream.len() * 8 {
        return Err(err(
            stream_at,
            format!(
                "point count {} cannot fit in a stream of {} bytes",
                h.count,
                stream.len()
            ),
        ));
    }
    let mut r = BitReader::new(stream);
    let at = |r: &BitReader<'_>| stream_at + r.position() / 8;
    out.reserve(h.count);
    let base = out.len();
    // Timestamps first.
    let mut prev = h.first_ts;
    out.push(Point {
        ts: prev,
        value: 0.0,
    });
    let mut prev_delta = 0i64;
    for i in 1..h.count {
        let ts = if h.flags & FLAG_CONSTANT_STEP != 0 {
            prev.checked_add(h.step as i64)
                .ok_or_else(|| err(stream_at, "timestamp step overflows"))?
        } else {
            let dod =
                read_dod(&mut r).ok_or_else(|| err(at(&r), format!("timestamp {i} truncated")))?;
            prev_delta = prev_delta.wrapping_add(dod);
            let ts = prev.wrapping_add(prev_delta);
            if ts <= prev {
                return Err(err(at(&r), format!("timestamp {i} does not increase")));
            }
            ts
        };
        out.push(Point { ts, value: 0.0 });
        prev = ts;
    }
    let points = out.get_mut(base..).unwrap_or_default();
    if h.flags & FLAG_DECIMAL != 0 {
        read_decimal(&mut r, &h, points).map_err(|(bit, what)| err(stream_at + bit / 8, what))?;
    } else {
        read_xor(&mut r, points).map_err(|(bit, what)| err(stream_at + bit / 8, what))?;
    }
    if r.remaining() >= 8 {
        return Err(err(
            at(&r),
            format!("{} bytes left after the last point", r.remaining() / 8),
        ));
    }
    Ok(())
}

fn read_dod(r: &mut BitReader<'_>) -> Option<i64> {
    Some(match r.unary(5)? {
        0 => 0,
        1 => r.read(7)? as i64 - 63,
        2 => r.read(9)? as i64 - 255,
        3 => r.read(12)? as i64 - 2047,
        4 => r.read(32)? as i64 - 2_147_483_647,
        _ => r.read(64)? as i64,
    })
}

fn finite(r: &BitReader<'_>, i: usize, v: f64) -> Result<f64, (usize, String)> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err((r.position(), format!("value {i} is not finite")))
    }
}

fn read_xor(r: &mut BitReader<'_>, points: &mut [Point]) -> Result<(), (usize, String)> {
    let truncated = |r: &BitReader<'_>, i: usize| (r.position(), format!("value {i} truncated"));
    let mut prev = 0u64;
    let mut window: Option<(u32, u32)> = None;
    for (i, p) in points.iter_mut().enumerate() {
        let bits = if i == 0 {
            r.read(64).ok_or_else(|| truncated(r, i))?
        } else {
            match r.unary(2).ok_or_else(|| truncated(r, i))? {
                0 => prev,
                1 => {
                    let (lead, trail) = window.ok_or_else(|| {
                        (
                            r.position(),
                            format!("value {i} reuses a window before any"),
                        )
                    })?;
                    let x = r.read(64 - lead - trail).ok_or_else(|| truncated(r, i))?;
                    prev ^ (x << trail)
                }
                _ => {
                    let lead = r.read(5).ok_or_else(|| truncated(r, i))? as u32;
                    let sig = r.read(6).ok_or_else(|| truncated(r, i))? as u32 + 1;
                    if lead + sig > 64 {
                        return Err((
                            r.position(),
                            format!("value {i}: window of {lead} + {sig} bits"),
                        ));
                    }
                    let trail = 64 - lead - sig;
                    let x = r.read(sig).ok_or_else(|| truncated(r, i))?;
                    window = Some((lead, trail));
                    prev ^ (x << trail)
                }
            }
        };
        prev = bits;
        p.value = finite(r, i, f64::from_bits(bits))?;
    }
    Ok(())
}

fn read_decimal(
    r: &mut BitReader<'_>,
    h: &Header,
    points: &mut [Point],
) -> Result<(), (usize, String)> {
    let pow = POW10.get(h.scale).copied().unwrap_or(1.0);
    let mut m = h.first_mantissa;
    for (i, p) in points.iter_mut().enumerate() {
        if i > 0 {
            let bad =
                |r: &BitReader<'_>| (r.position(), format!("value {i} truncated or out of range"));
            let q = r.unary(RICE_ESCAPE).ok_or_else(|| bad(r))?;
            let z = if q == RICE_ESCAPE {
                r.read(64).ok_or_else(|| bad(r))?
            } else {
                let low = r.read(h.k).ok_or_else(|| bad(r))?;
                u64::from(q)
                    .checked_shl(h.k)
                    .filter(|v| v >> h.k == u64::from(q))
                    .ok_or_else(|| bad(r))?
                    | low
            };
            m = m
                .checked_add(unzigzag(z))
                .filter(|m| m.abs() <= MANTISSA_MAX)
                .ok_or_else(|| bad(r))?;
        }
        p.value = finite(r, i, m as f64 / pow)?;
    }
    Ok(())
}

/// What a chunk's header says of its timestamps, read without decoding
/// the bit stream: for counting points ([`super::select`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkSummary {
    /// Points in the chunk (at least one).
    pub count: usize,
    /// Timestamp of its first point.
    pub first_ts: i64,
    /// The step between consecutive timestamps when every step is the same
    /// (flags bit 0, or a single point: 0); `None` when the timestamps are
    /// in the bit stream.
    pub step: Option<i64>,
}

impl ChunkSummary {
    /// Timestamp of the last point, when the header gives it.
    pub fn last_ts(&self) -> Option<i64> {
        let step = self.step?;
        let span = i128::from(step) * (self.count as i128 - 1);
        i64::try_from(i128::from(self.first_ts) + span).ok()
    }
}

/// Checks a chunk's checksum and reads its header: the point count, the
/// first timestamp and, for a constant step, every timestamp. Trusts no
/// more than [`decode`]: a damaged chunk is an error, and a constant step
/// whose last timestamp overflows is one too.
pub fn summary(data: &[u8]) -> Result<ChunkSummary, ChunkError> {
    let body = checked_body(data)?;
    let (h, stream) = read_header(body)?;
    if h.count - 1 > stream.len() * 8 {
        return Err(err(
            body.len() - stream.len(),
            format!("{} points cannot fit {} bytes", h.count, stream.len()),
        ));
    }
    let step = if h.count == 1 {
        Some(0)
    } else if h.flags & FLAG_CONSTANT_STEP != 0 {
        Some(i64::try_from(h.step).map_err(|_| err(2, "timestamp step out of range"))?)
    } else {
        None
    };
    let s = ChunkSummary {
        count: h.count,
        first_ts: h.first_ts,
        step,
    };
    if s.step.is_some() && s.last_ts().is_none() {
        return Err(err(2, "constant-step timestamps overflow"));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pts(v: &[(i64, f64)]) -> Vec<Point> {
        v.iter().map(|&(ts, value)| Point { ts, value }).collect()
    }

    fn round_trip(points: &[Point]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(points, &mut out).unwrap();
        let back = decode(&out).unwrap();
        assert_eq!(back.len(), points.len());
        for (a, b) in back.iter().zip(points) {
            assert_eq!(a.ts, b.ts);
            assert_eq!(a.value.to_bits(), b.value.to_bits(), "at {}", a.ts);
        }
        out
    }

    #[test]
    fn regular_integer_series_cost_about_two_bits_a_point() {
        let mut v = 50i64;
        let points: Vec<Point> = (0..720)
            .map(|i| {
                v = (v + [0, 1, -1, 0, 2, -1, 0, -2][i % 8]).clamp(0, 100);
                Point {
                    ts: 1_700_000_000_000 + i as i64 * 10_000,
                    value: v as f64,
                }
            })
            .collect();
        let enc = round_trip(&points);
        assert_eq!(enc[1], FLAG_CONSTANT_STEP | FLAG_DECIMAL);
        assert!(enc.len() < 720 * 3 / 8 + 24, "{} bytes", enc.len());
    }

    #[test]
    fn special_values_and_extreme_timestamps() {
        round_trip(&pts(&[(0, 0.75)]));
        round_trip(&pts(&[(i64::MIN, -0.0), (i64::MAX, 0.0)]));
        round_trip(&pts(&[
            (i64::MIN, f64::MIN_POSITIVE / 2.0),
            (-1, f64::MAX),
            (0, f64::MIN),
            (1, 5e-324),
            (i64::MAX, -5e-324),
        ]));
        let enc = round_trip(&pts(&[(1, -0.0), (2, -0.0), (3, 1.0)]));
        assert_eq!(enc[1] & FLAG_DECIMAL, 0, "-0.0 is not a decimal");
        let enc = round_trip(&pts(&[(1, 0.1), (5, 0.25), (6, -12.5), (100, 1e12)]));
        assert_eq!(enc[1], FLAG_DECIMAL);
        round_trip(&pts(&[(1, 0.1 + 0.2), (2, std::f64::consts::PI)]));
    }

    #[test]
    fn bad_input_is_refused() {
        let mut out = Vec::new();
        assert!(encode(&[], &mut out).is_err());
        assert!(encode(&pts(&[(1, f64::NAN)]), &mut out).is_err());
        assert!(encode(&pts(&[(1, f64::INFINITY)]), &mut out).is_err());
        assert!(encode(&pts(&[(2, 1.0), (2, 1.0)]), &mut out).is_err());
        assert!(encode(&pts(&[(2, 1.0), (1, 1.0)]), &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn damaged_chunks_are_errors() {
        let points: Vec<Point> = (0..50)
            .map(|i| Point {
                ts: i * 1000 + (i * i) % 7,
                value: (i as f64).sin(),
            })
            .collect();
        let mut enc = Vec::new();
        encode(&points, &mut enc).unwrap();
        for cut in 0..enc.len() {
            assert!(decode(&enc[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..enc.len() {
            for bit in 0..8 {
                let mut bad = enc.clone();
                bad[i] ^= 1 << bit;
                assert!(decode(&bad).is_err(), "flip at byte {i} bit {bit}");
            }
        }
        let e = decode(&[1, 2, 3]).unwrap_err();
        assert!(e.what.contains("too short"), "{e}");
    }

    /// Valid checksums over garbage: the structural checks alone must hold.
    #[test]
    fn garbage_with_a_good_checksum_is_an_error_not_a_panic() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        for len in 0..300 {
            let mut body: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            if let Some(b) = body.first_mut() {
                *b = FORMAT;
            }
            if let Some(b) = body.get_mut(1) {
                *b &= 3;
            }
            let crc = crc32fast::hash(&body);
            body.extend_from_slice(&crc.to_le_bytes());
            let _ = decode(&body);
        }
    }

    fn finite_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>().prop_filter("finite", |v| v.is_finite()),
            (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
            (-100_000i64..100_000, 0u32..4).prop_map(|(m, s)| m as f64 / 10f64.powi(s as i32)),
            Just(-0.0),
            Just(0.0),
            Just(f64::MIN_POSITIVE / 4.0),
            Just(f64::MAX),
            Just(f64::MIN),
        ]
    }

    fn series() -> impl Strategy<Value = Vec<Point>> {
        let deltas = prop_oneof![
            1i64..20_000,
            Just(10_000i64),
            1i64..=i64::MAX / 2048,
            Just(i64::MAX),
        ];
        (
            any::<i64>(),
            proptest::collection::vec((deltas, finite_f64()), 1..400),
            any::<bool>(),
        )
            .prop_map(|(start, steps, constant)| {
                let mut ts = start;
                let mut out = Vec::new();
                for (d, v) in steps {
                    out.push(Point { ts, value: v });
                    let d = if constant { 10_000 } else { d };
                    match ts.checked_add(d) {
                        Some(n) => ts = n,
                        None => break,
                    }
                }
                out
            })
    }

    proptest! {
        #[test]
        fn any_series_round_trips(points in series()) {
            let mut enc = Vec::new();
            encode(&points, &mut enc).unwrap();
            let back = decode(&enc).unwrap();
            prop_assert_eq!(back.len(), points.len());
            for (a, b) in back.iter().zip(&points) {
                prop_assert_eq!(a.ts, b.ts);
                prop_assert_eq!(a.value.to_bits(), b.value.to_bits());
            }
        }

        #[test]
        fn integer_walks_round_trip(start in -1000i64..1000, steps in proptest::collection::vec(-3i64..=3, 1..2000)) {
            let mut v = start;
            let points: Vec<Point> = steps.iter().enumerate().map(|(i, s)| {
                v += s;
                Point { ts: i as i64 * 10_000, value: v as f64 }
            }).collect();
            let enc = round_trip(&points);
            prop_assert!(enc.len() <= points.len() / 2 + 32);
        }

        #[test]
        fn corruption_never_panics_and_is_caught(points in series(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut enc = Vec::new();
            encode(&points, &mut enc).unwrap();
            let i = at.index(enc.len());
            enc[i] ^= 1 << bit;
            prop_assert!(decode(&enc).is_err());
        }
    }
}

#[cfg(test)]
mod summary_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_summary_agrees_with_the_decoded_points(
            first in -1_000_000_000i64..1_000_000_000,
            steps in proptest::collection::vec(prop_oneof![Just(10_000i64), 1i64..50_000], 0..300),
            constant in any::<bool>(),
            values in proptest::collection::vec(-1000i64..1000, 300),
        ) {
            let mut ts = first;
            let mut points = vec![Point { ts, value: values[0] as f64 }];
            for (i, s) in steps.iter().enumerate() {
                ts += if constant { 10_000 } else { *s };
                points.push(Point { ts, value: values[(i + 1) % values.len()] as f64 / 4.0 });
            }
            let mut enc = Vec::new();
            encode(&points, &mut enc).unwrap();
            let s = summary(&enc).unwrap();
            prop_assert_eq!(s.count, points.len());
            prop_assert_eq!(s.first_ts, first);
            if constant || points.len() == 1 {
                prop_assert_eq!(s.last_ts(), Some(ts));
            }
            if let Some(step) = s.step {
                for (i, p) in points.iter().enumerate() {
                    prop_assert_eq!(p.ts, first + step * i as i64);
                }
            }
            // Any flipped byte is caught by the checksum or the header checks.
            for at in 0..enc.len() {
                let mut bad = enc.clone();
                bad[at] ^= 0x41;
                prop_assert!(summary(&bad).is_err(), "flip at {}", at);
            }
        }
    }
}
