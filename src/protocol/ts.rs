//! Time-series requests ([`TsRequest`]) and answers ([`TsResponse`]):
//! bodies, bounds, encoders and bounds-checked decoders.
//!
//! Field types (all integers little-endian): `str` is a `u16` length then
//! that many bytes of UTF-8; `point` is `ts i64 | value f64` (the IEEE-754
//! bits as a `u64`), 16 bytes; `series` is a `str` holding a series in
//! canonical form or with its labels in any order, `name` or
//! `name{k=v,...}` (see [`crate::ts::series`]), at most
//! [`TS_SERIES_BYTES_MAX`] bytes.
//!
//! ```text
//! TS_ADD        0x50  series_count u32 (1..=TS_ADD_SERIES_MAX)
//!                     | series_count x ( series | point_count u32 | point_count x point )
//!                     total points at most TS_ADD_POINTS_MAX; answered OK once durable
//! TS_RANGE      0x51  series | from i64 | to i64 | agg u8 | bucket_ms i64 | limit u32
//!                     agg: 0 raw, 1 avg, 2 min, 3 max, 4 sum, 5 count, 6 first, 7 last, 8 rate
//!                     limit: 1..=TS_RANGE_POINTS_MAX; answered TS_POINTS or NOT_FOUND
//! TS_LATEST     0x52  series; answered TS_POINTS (0 or 1 point) or NOT_FOUND
//! TS_SERIES     0x53  prefix: str | matcher_count u8 (0..=TS_MATCHERS_MAX)
//!                     | matcher_count x ( op u8 (0 =, 1 !=) | key: str | value: str )
//!                     | after: str (empty: from the start) | limit u32 (1..=TS_SERIES_LIMIT_MAX)
//!                     answered TS_SERIES_LIST
//! TS_DELETE     0x54  series | mode u8 (0 the whole series, 1 a range) | from i64 | to i64 (mode 1)
//!                     answered OK or NOT_FOUND
//! TS_RETENTION  0x55  series (empty: the database default) | retention_ms i64
//!                     (-1 the default, 0 forever, > 0 milliseconds); OK or NOT_FOUND
//! TS_POLICY     0x56  series | policy u8 (0 last, 1 first, 2 block, 3 min, 4 max, 5 sum)
//!                     answered OK or NOT_FOUND
//! TS_AGG        0x57  prefix: str | matcher_count u8 (0..=TS_MATCHERS_MAX)
//!                     | matcher_count x ( op u8 (0 =, 1 !=) | key: str | value: str )
//!                     | from i64 | to i64 | agg u8 (1 avg, 2 min, 3 max, 4 sum, 5 count,
//!                     6 first, 7 last; 8 rate is refused) | bucket_ms i64 (0: the whole
//!                     range, one bucket stamped `from`) | limit u32 (1..=TS_RANGE_POINTS_MAX)
//!                     answered TS_POINTS: one point per non-empty bucket, the earliest
//!                     `limit`; `more` and `next_from` (the first bucket left out) when
//!                     there are more. A selector matching more than TS_AGG_SERIES_MAX
//!                     series is refused (ERROR invalid_argument naming the bound).
//!
//! TS_POINTS      0xd0  count u32 | count x point | more u8 (0|1) | next_from i64 (more only)
//! TS_SERIES_LIST 0xd1  count u32 | count x series | more u8 (0|1)
//! ```
//!
//! Example: `ts add cpu 0.75 --time 1700000000000`:
//!
//! ```text
//! 1e 00 00 00               length 30 = opcode + 4 + (2 + 3) + 4 + 16
//! 50                        TS_ADD
//! 01 00 00 00               one series
//! 03 00 63 70 75            "cpu"
//! 01 00 00 00               one point
//! 00 68 e5 cf 8b 01 00 00   ts 1700000000000
//! 00 00 00 00 00 00 e8 3f   0.75
//! ```
//!
//! Example: `ts agg count --prefix cpu. --label host=a --from 0 --to 9`:
//!
//! ```text
//! 2f 00 00 00               length 47 = opcode + (2 + 4) + 1 + (1 + 2 + 4 + 2 + 1) + 8 + 8 + 1 + 8 + 4
//! 57                        TS_AGG
//! 04 00 63 70 75 2e         prefix "cpu."
//! 01                        one matcher
//! 00 04 00 68 6f 73 74      =, key "host"
//! 01 00 61                  value "a"
//! 00 00 00 00 00 00 00 00   from 0
//! 09 00 00 00 00 00 00 00   to 9
//! 05                        count
//! 00 00 00 00 00 00 00 00   bucket_ms 0
//! a0 86 01 00               limit 100000
//! ```
//!
//! The answer of TS_AGG is computed by [`crate::ts::TimeSeries::select`]
//! (the series pooled per bucket; `first`/`last` break ties by canonical
//! order).
//!
//! A TS_POINTS page holds at most the `limit` asked; `more` says the range
//! holds more and `next_from` is the `from` of the query that continues
//! it (see [`crate::ts::aggregate`] for how pages of each aggregation
//! meet). A TS_SERIES_LIST page continues with `after` set to its last
//! series. The decoders check every count against its bound and against
//! the bytes left before allocating; names, labels and matchers are parsed
//! and validated here, at the edge.

use crate::ts::series::{LabelMatcher, MatchOp, SeriesKey, SERIES_KEY_BYTES_MAX};
use crate::ts::{Aggregation, DupPolicy, Point, RangeQuery, Retention, SelectQuery};

use super::frame::{begin_frame, end_frame};
use super::opcode::{Opcode, ResponseOpcode};
use super::wire::{put_len, put_u16, put_u32, put_u64, Reader};
use super::{ErrorCode, ProtocolError};

/// Longest series text.
pub const TS_SERIES_BYTES_MAX: usize = SERIES_KEY_BYTES_MAX;
/// Most series in one TS_ADD.
pub const TS_ADD_SERIES_MAX: usize = 10_000;
/// Most points in one TS_ADD.
pub const TS_ADD_POINTS_MAX: usize = 500_000;
/// Most points (or buckets) in one TS_POINTS page.
pub const TS_RANGE_POINTS_MAX: usize = 100_000;
/// Most series in one TS_SERIES_LIST page.
pub const TS_SERIES_LIMIT_MAX: usize = 10_000;
/// Most matchers in one TS_SERIES or TS_AGG.
pub const TS_MATCHERS_MAX: usize = 16;
/// Most series one TS_AGG may match.
pub const TS_AGG_SERIES_MAX: usize = 10_000;

const POINT_BYTES: usize = 16;

/// The points of one series in a TS_ADD.
#[derive(Clone, Debug, PartialEq)]
pub struct TsSeriesPoints {
    /// The series.
    pub series: SeriesKey,
    /// Its points.
    pub points: Vec<Point>,
}

/// A time-series request.
#[derive(Clone, Debug)]
pub enum TsRequest {
    /// Add points to series.
    Add(Vec<TsSeriesPoints>),
    /// A page of a range query.
    Range {
        /// The series.
        series: SeriesKey,
        /// The query (its `limit` at most [`TS_RANGE_POINTS_MAX`]).
        query: RangeQuery,
    },
    /// The newest point.
    Latest {
        /// The series.
        series: SeriesKey,
    },
    /// A page of the series list.
    Series {
        /// Canonical-form prefix.
        prefix: String,
        /// Label conditions, all of which must hold.
        matchers: Vec<LabelMatcher>,
        /// Continue after this series (empty: from the start).
        after: String,
        /// Most series in the page.
        limit: u32,
    },
    /// Delete a series, or the points of a time range.
    Delete {
        /// The series.
        series: SeriesKey,
        /// `None`: the whole series; else `[from, to]`.
        range: Option<(i64, i64)>,
    },
    /// Set a series' retention, or the database default (`series: None`).
    Retention {
        /// The series, or `None` for the default.
        series: Option<SeriesKey>,
        /// The retention.
        retention: Retention,
    },
    /// Set a series' duplicate policy.
    Policy {
        /// The series.
        series: SeriesKey,
        /// The policy.
        policy: DupPolicy,
    },
    /// A page of an aggregate across series.
    Agg {
        /// Canonical-form prefix.
        prefix: String,
        /// Label conditions, all of which must hold.
        matchers: Vec<LabelMatcher>,
        /// First timestamp (inclusive).
        from: i64,
        /// Last timestamp (inclusive).
        to: i64,
        /// What to compute (not rate).
        agg: Aggregation,
        /// Bucket width in ms; 0: the whole range.
        bucket_ms: i64,
        /// Most buckets in the page (at most [`TS_RANGE_POINTS_MAX`]).
        limit: u32,
    },
}

/// Requests are equal when they encode to the same bytes (values compare
/// by their bits, so a request holding NaN equals itself).
impl PartialEq for TsRequest {
    fn eq(&self, other: &Self) -> bool {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        self.encode_body(&mut a);
        other.encode_body(&mut b);
        self.opcode() == other.opcode() && a == b
    }
}

impl Eq for TsRequest {}

/// A page of points.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TsPointsPage {
    /// The points (or buckets).
    pub points: Vec<Point>,
    /// The `from` that continues the range, if it holds more.
    pub next_from: Option<i64>,
}

/// A time-series answer.
#[derive(Clone, Debug, PartialEq)]
pub enum TsResponse {
    /// TS_POINTS.
    Points(TsPointsPage),
    /// TS_SERIES_LIST: canonical forms, and whether more follow.
    SeriesList {
        /// The series, in canonical order.
        series: Vec<String>,
        /// Whether more series match after the last one.
        more: bool,
    },
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u16(out, u16::try_from(s.len()).unwrap_or(u16::MAX));
    out.extend_from_slice(s.as_bytes());
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_point(out: &mut Vec<u8>, p: &Point) {
    put_i64(out, p.ts);
    put_u64(out, p.value.to_bits());
}

fn read_str<'a>(r: &mut Reader<'a>, what: &str) -> Result<&'a str, ProtocolError> {
    let len = usize::from(r.u16(what)?);
    if len > TS_SERIES_BYTES_MAX {
        return Err(ProtocolError::new(
            ErrorCode::KeyTooLarge,
            format!("{what} of {len} bytes exceeds ts_series_bytes_max {TS_SERIES_BYTES_MAX}"),
        ));
    }
    let b = r.raw(len, what)?;
    std::str::from_utf8(b).map_err(|_| ProtocolError::malformed(format!("{what} is not UTF-8")))
}

fn invalid(e: crate::Error) -> ProtocolError {
    let msg = match e {
        crate::Error::InvalidArgument(m) => m,
        other => other.to_string(),
    };
    ProtocolError::new(ErrorCode::InvalidArgument, msg)
}

fn read_series(r: &mut Reader<'_>) -> Result<SeriesKey, ProtocolError> {
    SeriesKey::parse(read_str(r, "series")?).map_err(invalid)
}

fn read_i64(r: &mut Reader<'_>, what: &str) -> Result<i64, ProtocolError> {
    Ok(r.u64(what)? as i64)
}

fn read_point(r: &mut Reader<'_>) -> Result<Point, ProtocolError> {
    Ok(Point {
        ts: read_i64(r, "point timestamp")?,
        value: f64::from_bits(r.u64("point value")?),
    })
}

fn read_limit(r: &mut Reader<'_>, what: &str, max: usize) -> Result<u32, ProtocolError> {
    let limit = r.u32(what)?;
    if limit == 0 {
        return Err(ProtocolError::new(
            ErrorCode::InvalidArgument,
            format!("{what} 0"),
        ));
    }
    if limit as usize > max {
        return Err(ProtocolError::new(
            ErrorCode::ScanLimitTooLarge,
            format!("{what} {limit} exceeds {max}"),
        ));
    }
    Ok(limit)
}

impl TsRequest {
    /// The request's opcode.
    pub fn opcode(&self) -> Opcode {
        match self {
            TsRequest::Add(_) => Opcode::TsAdd,
            TsRequest::Range { .. } => Opcode::TsRange,
            TsRequest::Latest { .. } => Opcode::TsLatest,
            TsRequest::Series { .. } => Opcode::TsSeries,
            TsRequest::Delete { .. } => Opcode::TsDelete,
            TsRequest::Retention { .. } => Opcode::TsRetention,
            TsRequest::Policy { .. } => Opcode::TsPolicy,
            TsRequest::Agg { .. } => Opcode::TsAgg,
        }
    }

    /// The library query a TS_AGG asks for (bounded by
    /// [`TS_AGG_SERIES_MAX`]); `None` for every other request.
    pub fn select_query(&self) -> Option<SelectQuery> {
        match self {
            TsRequest::Agg {
                prefix,
                matchers,
                from,
                to,
                agg,
                bucket_ms,
                limit,
            } => Some(SelectQuery {
                prefix: prefix.clone(),
                matchers: matchers.clone(),
                from: *from,
                to: *to,
                agg: *agg,
                bucket_ms: *bucket_ms,
                limit: *limit as usize,
                series_max: TS_AGG_SERIES_MAX,
            }),
            _ => None,
        }
    }

    /// Appends the body (after the opcode).
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            TsRequest::Add(groups) => {
                put_len(out, groups.len());
                for g in groups {
                    put_str(out, &g.series.canonical());
                    put_len(out, g.points.len());
                    for p in &g.points {
                        put_point(out, p);
                    }
                }
            }
            TsRequest::Range { series, query } => {
                put_str(out, &series.canonical());
                put_i64(out, query.from);
                put_i64(out, query.to);
                out.push(query.agg.map_or(0, |a| a as u8));
                put_i64(out, query.bucket_ms);
                put_u32(out, u32::try_from(query.limit).unwrap_or(u32::MAX));
            }
            TsRequest::Latest { series } => put_str(out, &series.canonical()),
            TsRequest::Series {
                prefix,
                matchers,
                after,
                limit,
            } => {
                put_selector(out, prefix, matchers);
                put_str(out, after);
                put_u32(out, *limit);
            }
            TsRequest::Delete { series, range } => {
                put_str(out, &series.canonical());
                match range {
                    None => out.push(0),
                    Some((from, to)) => {
                        out.push(1);
                        put_i64(out, *from);
                        put_i64(out, *to);
                    }
                }
            }
            TsRequest::Retention { series, retention } => {
                put_str(
                    out,
                    &series.as_ref().map(|s| s.canonical()).unwrap_or_default(),
                );
                put_i64(out, retention.to_ms());
            }
            TsRequest::Policy { series, policy } => {
                put_str(out, &series.canonical());
                out.push(*policy as u8);
            }
            TsRequest::Agg {
                prefix,
                matchers,
                from,
                to,
                agg,
                bucket_ms,
                limit,
            } => {
                put_selector(out, prefix, matchers);
                put_i64(out, *from);
                put_i64(out, *to);
                out.push(*agg as u8);
                put_i64(out, *bucket_ms);
                put_u32(out, *limit);
            }
        }
    }

    /// Decodes the body of a time-series opcode; the caller checks that
    /// nothing is left over.
    pub fn decode(op: Opcode, r: &mut Reader<'_>) -> Result<Self, ProtocolError> {
        Ok(match op {
            Opcode::TsAdd => TsRequest::Add(decode_add(r)?),
            Opcode::TsRange => decode_range(r)?,
            Opcode::TsLatest => TsRequest::Latest {
                series: read_series(r)?,
            },
            Opcode::TsSeries => decode_series(r)?,
            Opcode::TsDelete => {
                let series = read_series(r)?;
                let range = match r.u8("delete mode")? {
                    0 => None,
                    1 => {
                        let from = read_i64(r, "from")?;
                        let to = read_i64(r, "to")?;
                        if from > to {
                            return Err(ProtocolError::new(
                                ErrorCode::InvalidArgument,
                                format!("delete range from {from} is after to {to}"),
                            ));
                        }
                        Some((from, to))
                    }
                    m => return Err(ProtocolError::malformed(format!("unknown delete mode {m}"))),
                };
                TsRequest::Delete { series, range }
            }
            Opcode::TsRetention => {
                let text = read_str(r, "series")?;
                let series = if text.is_empty() {
                    None
                } else {
                    Some(SeriesKey::parse(text).map_err(invalid)?)
                };
                let ms = read_i64(r, "retention_ms")?;
                let retention = Retention::from_ms(ms).ok_or_else(|| {
                    ProtocolError::new(
                        ErrorCode::InvalidArgument,
                        format!(
                            "retention {ms} ms: use -1 (default), 0 (forever) or a positive number"
                        ),
                    )
                })?;
                if series.is_none() && retention == Retention::Default {
                    return Err(ProtocolError::new(
                        ErrorCode::InvalidArgument,
                        "the database default retention cannot be -1 (default)",
                    ));
                }
                TsRequest::Retention { series, retention }
            }
            Opcode::TsAgg => decode_agg(r)?,
            Opcode::TsPolicy => {
                let series = read_series(r)?;
                let b = r.u8("policy")?;
                let policy = DupPolicy::from_u8(b)
                    .ok_or_else(|| ProtocolError::malformed(format!("unknown policy {b}")))?;
                TsRequest::Policy { series, policy }
            }
            other => {
                return Err(ProtocolError::new(
                    ErrorCode::Internal,
                    format!("{} is not a time-series opcode", other.name()),
                ))
            }
        })
    }
}

fn decode_add(r: &mut Reader<'_>) -> Result<Vec<TsSeriesPoints>, ProtocolError> {
    let n = r.count(
        "series count",
        TS_ADD_SERIES_MAX,
        ErrorCode::BatchTooLarge,
        "ts_add_series_max",
        2 + 4,
    )?;
    if n == 0 {
        return Err(ProtocolError::new(
            ErrorCode::InvalidArgument,
            "TS_ADD with no series",
        ));
    }
    let mut groups = Vec::with_capacity(n);
    let mut total = 0usize;
    for _ in 0..n {
        let series = read_series(r)?;
        let count = r.count(
            "point count",
            TS_ADD_POINTS_MAX - total,
            ErrorCode::BatchTooLarge,
            "ts_add_points_max (points left in the request)",
            POINT_BYTES,
        )?;
        total += count;
        let mut points = Vec::with_capacity(count);
        for _ in 0..count {
            points.push(read_point(r)?);
        }
        groups.push(TsSeriesPoints { series, points });
    }
    Ok(groups)
}

fn decode_range(r: &mut Reader<'_>) -> Result<TsRequest, ProtocolError> {
    let series = read_series(r)?;
    let from = read_i64(r, "from")?;
    let to = read_i64(r, "to")?;
    let agg = match r.u8("aggregation")? {
        0 => None,
        b => Some(
            Aggregation::from_u8(b)
                .ok_or_else(|| ProtocolError::malformed(format!("unknown aggregation {b}")))?,
        ),
    };
    let bucket_ms = read_i64(r, "bucket_ms")?;
    let limit = read_limit(r, "ts range limit", TS_RANGE_POINTS_MAX)?;
    let query = RangeQuery {
        from,
        to,
        agg,
        bucket_ms,
        limit: limit as usize,
    };
    crate::ts::check_range(&query).map_err(invalid)?;
    Ok(TsRequest::Range { series, query })
}

/// Appends a TS_AGG selector: the prefix and the matchers (the encoding
/// TS_SERIES uses too).
fn put_selector(out: &mut Vec<u8>, prefix: &str, matchers: &[LabelMatcher]) {
    put_str(out, prefix);
    out.push(u8::try_from(matchers.len()).unwrap_or(u8::MAX));
    for m in matchers {
        out.push(match m.op {
            MatchOp::Eq => 0,
            MatchOp::Ne => 1,
        });
        put_str(out, &m.key);
        put_str(out, &m.value);
    }
}

fn read_matchers(r: &mut Reader<'_>) -> Result<Vec<LabelMatcher>, ProtocolError> {
    let n = usize::from(r.u8("matcher count")?);
    if n > TS_MATCHERS_MAX {
        return Err(ProtocolError::new(
            ErrorCode::InvalidArgument,
            format!("{n} matchers exceed ts_matchers_max {TS_MATCHERS_MAX}"),
        ));
    }
    let mut matchers = Vec::with_capacity(n);
    for _ in 0..n {
        let op = match r.u8("matcher op")? {
            0 => MatchOp::Eq,
            1 => MatchOp::Ne,
            b => return Err(ProtocolError::malformed(format!("unknown matcher op {b}"))),
        };
        let key = read_str(r, "matcher key")?;
        let value = read_str(r, "matcher value")?;
        matchers.push(LabelMatcher::new(key, op, value).map_err(invalid)?);
    }
    Ok(matchers)
}

fn decode_agg(r: &mut Reader<'_>) -> Result<TsRequest, ProtocolError> {
    let prefix = read_str(r, "prefix")?.to_string();
    let matchers = read_matchers(r)?;
    let from = read_i64(r, "from")?;
    let to = read_i64(r, "to")?;
    let b = r.u8("aggregation")?;
    let agg = Aggregation::from_u8(b)
        .ok_or_else(|| ProtocolError::malformed(format!("unknown aggregation {b}")))?;
    let bucket_ms = read_i64(r, "bucket_ms")?;
    let limit = read_limit(r, "ts agg limit", TS_RANGE_POINTS_MAX)?;
    let req = TsRequest::Agg {
        prefix,
        matchers,
        from,
        to,
        agg,
        bucket_ms,
        limit,
    };
    if let Some(q) = req.select_query() {
        crate::ts::check_select(&q).map_err(invalid)?;
    }
    Ok(req)
}

fn decode_series(r: &mut Reader<'_>) -> Result<TsRequest, ProtocolError> {
    let prefix = read_str(r, "prefix")?.to_string();
    let matchers = read_matchers(r)?;
    let after = read_str(r, "after")?.to_string();
    let limit = read_limit(r, "ts series limit", TS_SERIES_LIMIT_MAX)?;
    Ok(TsRequest::Series {
        prefix,
        matchers,
        after,
        limit,
    })
}

impl TsResponse {
    /// The response's opcode.
    pub fn opcode(&self) -> ResponseOpcode {
        match self {
            TsResponse::Points(_) => ResponseOpcode::TsPoints,
            TsResponse::SeriesList { .. } => ResponseOpcode::TsSeriesList,
        }
    }

    /// Appends the whole frame.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            TsResponse::Points(p) => write_points(out, &p.points, p.next_from),
            TsResponse::SeriesList { series, more } => {
                let start = begin_frame(out, ResponseOpcode::TsSeriesList as u8);
                put_len(out, series.len());
                for s in series {
                    put_str(out, s);
                }
                out.push(u8::from(*more));
                end_frame(out, start);
            }
        }
    }

    /// Decodes the body of a time-series response opcode.
    pub fn decode(op: ResponseOpcode, r: &mut Reader<'_>) -> Result<Self, ProtocolError> {
        match op {
            ResponseOpcode::TsPoints => {
                let n = r.count(
                    "point count",
                    TS_RANGE_POINTS_MAX,
                    ErrorCode::ScanLimitTooLarge,
                    "ts_range_points_max",
                    POINT_BYTES,
                )?;
                let mut points = Vec::with_capacity(n);
                for _ in 0..n {
                    points.push(read_point(r)?);
                }
                let next_from = match r.u8("more flag")? {
                    0 => None,
                    _ => Some(read_i64(r, "next_from")?),
                };
                Ok(TsResponse::Points(TsPointsPage { points, next_from }))
            }
            ResponseOpcode::TsSeriesList => {
                let n = r.count(
                    "series count",
                    TS_SERIES_LIMIT_MAX,
                    ErrorCode::ScanLimitTooLarge,
                    "ts_series_limit_max",
                    2,
                )?;
                let mut series = Vec::with_capacity(n);
                for _ in 0..n {
                    series.push(read_str(r, "series")?.to_string());
                }
                let more = r.u8("more flag")? != 0;
                Ok(TsResponse::SeriesList { series, more })
            }
            other => Err(ProtocolError::new(
                ErrorCode::Internal,
                format!("{other:?} is not a time-series answer"),
            )),
        }
    }
}

/// Appends a TS_POINTS frame.
pub fn write_points(out: &mut Vec<u8>, points: &[Point], next_from: Option<i64>) {
    let start = begin_frame(out, ResponseOpcode::TsPoints as u8);
    put_len(out, points.len());
    for p in points {
        put_point(out, p);
    }
    match next_from {
        Some(n) => {
            out.push(1);
            put_i64(out, n);
        }
        None => out.push(0),
    }
    end_frame(out, start);
}

/// Appends a TS_SERIES_LIST frame.
pub fn write_series_list(out: &mut Vec<u8>, series: &[SeriesKey], more: bool) {
    let start = begin_frame(out, ResponseOpcode::TsSeriesList as u8);
    put_len(out, series.len());
    for s in series {
        put_str(out, &s.canonical());
    }
    out.push(u8::from(more));
    end_frame(out, start);
}

#[cfg(test)]
mod tests {
    use super::super::frame::{decode_frame, Decoded, RawFrame};
    use super::super::{Limits, Request, Response};
    use super::*;

    fn key(s: &str) -> SeriesKey {
        SeriesKey::parse(s).unwrap()
    }

    fn frame_of(req: &TsRequest) -> Vec<u8> {
        let mut out = Vec::new();
        Request::Ts(req.clone()).encode(&mut out);
        out
    }

    fn decode_req(bytes: &[u8]) -> Result<Request<'_>, ProtocolError> {
        let limits = Limits::default();
        let Decoded::Frame(f) = decode_frame(bytes, limits.frame_size_bytes_max) else {
            panic!("no frame")
        };
        Request::decode(f, &limits)
    }

    fn requests() -> Vec<TsRequest> {
        vec![
            TsRequest::Add(vec![
                TsSeriesPoints {
                    series: key("cpu{host=a}"),
                    points: vec![
                        Point { ts: 1, value: 0.5 },
                        Point {
                            ts: -7,
                            value: -0.0,
                        },
                    ],
                },
                TsSeriesPoints {
                    series: key("mem"),
                    points: vec![],
                },
            ]),
            TsRequest::Range {
                series: key("cpu"),
                query: RangeQuery {
                    from: i64::MIN,
                    to: i64::MAX,
                    agg: Some(Aggregation::Rate),
                    bucket_ms: 60_000,
                    limit: 10,
                },
            },
            TsRequest::Latest { series: key("cpu") },
            TsRequest::Series {
                prefix: "sys".into(),
                matchers: vec![LabelMatcher::parse("host!=a").unwrap()],
                after: "sys.a".into(),
                limit: 5,
            },
            TsRequest::Delete {
                series: key("cpu"),
                range: None,
            },
            TsRequest::Delete {
                series: key("cpu"),
                range: Some((-5, 5)),
            },
            TsRequest::Retention {
                series: None,
                retention: Retention::Ms(86_400_000),
            },
            TsRequest::Retention {
                series: Some(key("cpu")),
                retention: Retention::Default,
            },
            TsRequest::Policy {
                series: key("cpu"),
                policy: DupPolicy::Block,
            },
            TsRequest::Agg {
                prefix: "cpu.".into(),
                matchers: vec![
                    LabelMatcher::parse("host=a").unwrap(),
                    LabelMatcher::parse("dc!=x").unwrap(),
                ],
                from: -5,
                to: i64::MAX,
                agg: Aggregation::Last,
                bucket_ms: 3_600_000,
                limit: 7,
            },
        ]
    }

    #[test]
    fn every_request_round_trips_and_every_cut_is_refused() {
        for req in requests() {
            let bytes = frame_of(&req);
            assert_eq!(decode_req(&bytes).unwrap(), Request::Ts(req.clone()));
            let Decoded::Frame(f) = decode_frame(&bytes, 1 << 20) else {
                panic!()
            };
            for cut in 0..f.body.len() {
                let short = RawFrame {
                    body: &f.body[..cut],
                    ..f
                };
                assert!(
                    Request::decode(short, &Limits::default()).is_err(),
                    "{req:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn the_documented_example_is_what_the_encoder_writes() {
        let req = TsRequest::Add(vec![TsSeriesPoints {
            series: key("cpu"),
            points: vec![Point {
                ts: 1_700_000_000_000,
                value: 0.75,
            }],
        }]);
        let want = [
            0x1e, 0, 0, 0, 0x50, 1, 0, 0, 0, 3, 0, b'c', b'p', b'u', 1, 0, 0, 0, 0x00, 0x68, 0xe5,
            0xcf, 0x8b, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0xe8, 0x3f,
        ];
        assert_eq!(frame_of(&req), want);
    }

    #[test]
    fn the_documented_agg_example_is_what_the_encoder_writes() {
        let req = TsRequest::Agg {
            prefix: "cpu.".into(),
            matchers: vec![LabelMatcher::parse("host=a").unwrap()],
            from: 0,
            to: 9,
            agg: Aggregation::Count,
            bucket_ms: 0,
            limit: 100_000,
        };
        let want = [
            0x2f, 0, 0, 0, 0x57, 4, 0, b'c', b'p', b'u', b'.', 1, 0, 4, 0, b'h', b'o', b's', b't',
            1, 0, b'a', 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0,
            0xa0, 0x86, 0x01, 0,
        ];
        assert_eq!(frame_of(&req), want);
        let q = req.select_query().unwrap();
        assert_eq!(q.series_max, TS_AGG_SERIES_MAX);
        assert_eq!((q.from, q.to, q.limit), (0, 9, 100_000));
    }

    #[test]
    fn bad_agg_bodies_get_named_errors() {
        let body = |agg: u8, from: i64, to: i64, limit: u32| {
            let mut b = Vec::new();
            put_selector(&mut b, "cpu", &[]);
            put_i64(&mut b, from);
            put_i64(&mut b, to);
            b.push(agg);
            put_i64(&mut b, 0);
            put_u32(&mut b, limit);
            b
        };
        assert!(decode_req(&frame_of(&TsRequest::Agg {
            prefix: "cpu".into(),
            matchers: vec![],
            from: 0,
            to: 1,
            agg: Aggregation::Sum,
            bucket_ms: 0,
            limit: 1,
        }))
        .is_ok());
        let e = body_error(0x57, &body(0, 0, 1, 1));
        assert_eq!(e.code, ErrorCode::MalformedBody);
        assert!(e.message.contains("unknown aggregation 0"), "{e}");
        let e = body_error(0x57, &body(8, 0, 1, 1));
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("rate is per series"), "{e}");
        let e = body_error(0x57, &body(5, 2, 1, 1));
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("after to"), "{e}");
        let e = body_error(0x57, &body(5, 0, 1, TS_RANGE_POINTS_MAX as u32 + 1));
        assert_eq!(e.code, ErrorCode::ScanLimitTooLarge);
        let mut b = Vec::new();
        put_str(&mut b, "cpu");
        b.push(TS_MATCHERS_MAX as u8 + 1);
        let e = body_error(0x57, &b);
        assert!(e.message.contains("ts_matchers_max"), "{e}");
        let mut b = Vec::new();
        put_str(&mut b, "cpu");
        b.push(1);
        b.push(0);
        put_str(&mut b, "bad key");
        put_str(&mut b, "v");
        let e = body_error(0x57, &b);
        assert_eq!(e.code, ErrorCode::InvalidArgument);
    }

    #[test]
    fn responses_round_trip() {
        for resp in [
            TsResponse::Points(TsPointsPage {
                points: vec![Point { ts: 3, value: 1.5 }],
                next_from: Some(4),
            }),
            TsResponse::Points(TsPointsPage::default()),
            TsResponse::SeriesList {
                series: vec!["a".into(), "b{x=y}".into()],
                more: true,
            },
        ] {
            let mut out = Vec::new();
            Response::Ts(resp.clone()).encode(&mut out);
            let limits = Limits::default();
            let Decoded::Frame(f) = decode_frame(&out, limits.frame_size_bytes_max) else {
                panic!()
            };
            assert_eq!(Response::decode(f, &limits).unwrap(), Response::Ts(resp));
        }
    }

    fn body_error(op: u8, body: &[u8]) -> ProtocolError {
        Request::decode(
            RawFrame {
                opcode: op,
                body,
                consumed: 0,
            },
            &Limits::default(),
        )
        .unwrap_err()
    }

    #[test]
    fn bad_bodies_get_named_errors() {
        // A series count over the bound, and one the body cannot hold.
        let e = body_error(0x50, &100_000u32.to_le_bytes());
        assert_eq!(e.code, ErrorCode::BatchTooLarge);
        let e = body_error(0x50, &5u32.to_le_bytes());
        assert_eq!(e.code, ErrorCode::MalformedBody);
        // A series name over the bound.
        let mut b = 1u32.to_le_bytes().to_vec();
        b.extend_from_slice(&2000u16.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        assert_eq!(body_error(0x50, &b).code, ErrorCode::KeyTooLarge);
        // A bad series name.
        let mut b = Vec::new();
        put_str(&mut b, "a b");
        let e = body_error(0x52, &b);
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("not allowed"), "{e}");
        // Unknown aggregation, range limits.
        let mut b = Vec::new();
        put_str(&mut b, "cpu");
        put_i64(&mut b, 0);
        put_i64(&mut b, 10);
        b.push(99);
        put_i64(&mut b, 0);
        put_u32(&mut b, 1);
        assert_eq!(body_error(0x51, &b).code, ErrorCode::MalformedBody);
        let lim = b.len() - 4;
        b[lim - 9] = 1; // avg
        b[lim..].copy_from_slice(&(TS_RANGE_POINTS_MAX as u32 + 1).to_le_bytes());
        assert_eq!(body_error(0x51, &b).code, ErrorCode::ScanLimitTooLarge);
        b[lim..].copy_from_slice(&1u32.to_le_bytes());
        put_i64(&mut b, 0);
        assert_eq!(body_error(0x51, &b).code, ErrorCode::MalformedBody);
        // from after to.
        let mut b = Vec::new();
        put_str(&mut b, "cpu");
        b.push(1);
        put_i64(&mut b, 10);
        put_i64(&mut b, 0);
        assert_eq!(body_error(0x54, &b).code, ErrorCode::InvalidArgument);
        // Retention below -1, unknown policy.
        let mut b = Vec::new();
        put_str(&mut b, "cpu");
        put_i64(&mut b, -2);
        assert_eq!(body_error(0x55, &b).code, ErrorCode::InvalidArgument);
        let mut b = Vec::new();
        put_str(&mut b, "cpu");
        b.push(6);
        assert_eq!(body_error(0x56, &b).code, ErrorCode::MalformedBody);
        // Unassigned time-series opcodes stay reserved.
        let e = body_error(0x41, b"");
        assert_eq!(e.code, ErrorCode::UnknownOpcode);
        assert!(e.message.contains("time series"), "{e}");
    }
}
