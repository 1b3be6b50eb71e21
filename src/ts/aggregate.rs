//! Range results: raw points, per-bucket aggregates and counter rates,
//! computed from a stream of points in time order, one page at a time.
//!
//! Pure functions over an iterator: no storage, so they are tested against
//! a naive model.
//!
//! - Buckets are aligned on multiples of the bucket width (from the epoch,
//!   so a bucket of `1h` starts on the hour, also before 1970), stamped
//!   with their start; buckets without points are omitted. A bucket of 0
//!   means no bucketing: `avg` etc. give one value over the whole range,
//!   stamped with the first point's timestamp.
//! - `rate` is for counters that only grow, except when they are reset: a
//!   drop from `a` to `b` counts as a reset to zero followed by an increase
//!   of `b` (as Prometheus does). Without a bucket, every point after the
//!   first yields `increase / seconds since the previous point`, stamped
//!   with its own timestamp. With a bucket, each bucket holding two points
//!   or more yields the increase between its first and last point divided
//!   by the seconds between them (the pairs never cross buckets, so pages
//!   are independent).
//! - Sums and averages add in time order in f64; a sum can overflow to
//!   infinity, which is returned as such.

use super::Point;
use crate::error::Result;

/// What a range query computes per bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Aggregation {
    /// Mean of the values.
    Avg = 1,
    /// Smallest value.
    Min = 2,
    /// Largest value.
    Max = 3,
    /// Sum of the values.
    Sum = 4,
    /// Number of points.
    Count = 5,
    /// Value of the earliest point.
    First = 6,
    /// Value of the latest point.
    Last = 7,
    /// Per-second increase of a counter, resets counted from zero.
    Rate = 8,
}

impl Aggregation {
    /// Every aggregation, in wire order.
    pub const ALL: [Aggregation; 8] = [
        Aggregation::Avg,
        Aggregation::Min,
        Aggregation::Max,
        Aggregation::Sum,
        Aggregation::Count,
        Aggregation::First,
        Aggregation::Last,
        Aggregation::Rate,
    ];

    /// Decodes a wire value.
    pub fn from_u8(b: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| *a as u8 == b)
    }

    /// Its lower-case name (`avg`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Aggregation::Avg => "avg",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
            Aggregation::Sum => "sum",
            Aggregation::Count => "count",
            Aggregation::First => "first",
            Aggregation::Last => "last",
            Aggregation::Rate => "rate",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.name() == s)
    }
}

/// One page of a range result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RangePage {
    /// Points or buckets in time order.
    pub points: Vec<Point>,
    /// Where the next page starts (the `from` of the next query), if the
    /// range holds more than the page.
    pub next_from: Option<i64>,
}

/// The start of the bucket of width `bucket_ms` holding `ts` (saturating
/// at `i64::MIN` for the first bucket of time).
pub fn bucket_start(ts: i64, bucket_ms: i64) -> i64 {
    if bucket_ms <= 0 {
        return ts;
    }
    let b = i128::from(bucket_ms);
    let start = i128::from(ts).div_euclid(b) * b;
    i64::try_from(start).unwrap_or(i64::MIN)
}

/// Reset-adjusted increase from `prev` to `next`.
pub fn counter_increase(prev: f64, next: f64) -> f64 {
    if next >= prev {
        next - prev
    } else {
        next
    }
}

/// Per-second rate of `increase` over `ms` milliseconds.
fn per_second(increase: f64, ms: i64) -> f64 {
    increase / (ms as f64 / 1000.0)
}

#[derive(Clone, Copy, Debug)]
struct Acc {
    start: i64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    first: Point,
    last: Point,
    increase: f64,
}

impl Acc {
    fn new(start: i64, p: Point) -> Self {
        Acc {
            start,
            count: 1,
            sum: p.value,
            min: p.value,
            max: p.value,
            first: p,
            last: p,
            increase: 0.0,
        }
    }

    fn add(&mut self, p: Point) {
        self.count += 1;
        self.sum += p.value;
        self.min = self.min.min(p.value);
        self.max = self.max.max(p.value);
        self.increase += counter_increase(self.last.value, p.value);
        self.last = p;
    }

    fn result(&self, agg: Aggregation) -> Option<f64> {
        Some(match agg {
            Aggregation::Avg => self.sum / self.count as f64,
            Aggregation::Min => self.min,
            Aggregation::Max => self.max,
            Aggregation::Sum => self.sum,
            Aggregation::Count => self.count as f64,
            Aggregation::First => self.first.value,
            Aggregation::Last => self.last.value,
            Aggregation::Rate => {
                if self.count < 2 {
                    return None;
                }
                per_second(self.increase, self.last.ts.wrapping_sub(self.first.ts))
            }
        })
    }
}

/// Computes one page of at most `limit` results (`limit` >= 1) from
/// `points` (in strictly increasing time order): raw points when `agg` is
/// `None`, else `agg` per bucket of `bucket_ms` (0: no buckets).
pub fn page(
    points: impl Iterator<Item = Result<Point>>,
    agg: Option<Aggregation>,
    bucket_ms: i64,
    limit: usize,
) -> Result<RangePage> {
    let limit = limit.max(1);
    match agg {
        None => raw(points, limit),
        Some(Aggregation::Rate) if bucket_ms == 0 => point_rates(points, limit),
        Some(agg) => buckets(points, agg, bucket_ms, limit),
    }
}

fn raw(points: impl Iterator<Item = Result<Point>>, limit: usize) -> Result<RangePage> {
    let mut out = RangePage::default();
    for p in points {
        let p = p?;
        if out.points.len() == limit {
            out.next_from = Some(p.ts);
            break;
        }
        out.points.push(p);
    }
    Ok(out)
}

fn point_rates(points: impl Iterator<Item = Result<Point>>, limit: usize) -> Result<RangePage> {
    let mut out = RangePage::default();
    let mut prev: Option<Point> = None;
    for p in points {
        let p = p?;
        if let Some(q) = prev {
            if out.points.len() == limit {
                // The next page starts at the last point rated, which is
                // then the first point of its first pair.
                out.next_from = Some(q.ts);
                break;
            }
            let v = per_second(counter_increase(q.value, p.value), p.ts.wrapping_sub(q.ts));
            out.points.push(Point { ts: p.ts, value: v });
        }
        prev = Some(p);
    }
    Ok(out)
}

fn buckets(
    points: impl Iterator<Item = Result<Point>>,
    agg: Aggregation,
    bucket_ms: i64,
    limit: usize,
) -> Result<RangePage> {
    let mut out = RangePage::default();
    let mut acc: Option<Acc> = None;
    for p in points {
        let p = p?;
        let start = if bucket_ms == 0 {
            acc.map_or(p.ts, |a| a.start)
        } else {
            bucket_start(p.ts, bucket_ms)
        };
        match &mut acc {
            Some(a) if a.start == start => a.add(p),
            _ => {
                if let Some(done) = acc.take() {
                    if let Some(v) = done.result(agg) {
                        out.points.push(Point {
                            ts: done.start,
                            value: v,
                        });
                    }
                }
                if out.points.len() == limit {
                    out.next_from = Some(start);
                    return Ok(out);
                }
                acc = Some(Acc::new(start, p));
            }
        }
    }
    if let Some(done) = acc {
        if let Some(v) = done.result(agg) {
            out.points.push(Point {
                ts: done.start,
                value: v,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn p(ts: i64, value: f64) -> Point {
        Point { ts, value }
    }

    fn run(points: &[Point], agg: Option<Aggregation>, bucket: i64, limit: usize) -> RangePage {
        page(points.iter().copied().map(Ok), agg, bucket, limit).unwrap()
    }

    /// Every page concatenated, following `next_from` like a client.
    fn all(points: &[Point], agg: Option<Aggregation>, bucket: i64, limit: usize) -> Vec<Point> {
        let mut from = i64::MIN;
        let mut out = Vec::new();
        loop {
            let rest: Vec<Point> = points.iter().copied().filter(|q| q.ts >= from).collect();
            let pg = run(&rest, agg, bucket, limit);
            out.extend(pg.points);
            match pg.next_from {
                Some(f) => {
                    assert!(f >= from, "pages go forward");
                    from = f;
                }
                None => return out,
            }
        }
    }

    /// The naive model: group by bucket, then compute from the list.
    fn model(points: &[Point], agg: Aggregation, bucket: i64) -> Vec<Point> {
        let mut groups: BTreeMap<i64, Vec<Point>> = BTreeMap::new();
        for q in points {
            let key = if bucket == 0 {
                points[0].ts
            } else {
                bucket_start(q.ts, bucket)
            };
            groups.entry(key).or_default().push(*q);
        }
        let mut out = Vec::new();
        for (start, g) in groups {
            let vals: Vec<f64> = g.iter().map(|q| q.value).collect();
            let v = match agg {
                Aggregation::Avg => vals.iter().sum::<f64>() / vals.len() as f64,
                Aggregation::Min => vals.iter().copied().fold(f64::INFINITY, f64::min),
                Aggregation::Max => vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                Aggregation::Sum => vals.iter().sum(),
                Aggregation::Count => vals.len() as f64,
                Aggregation::First => vals[0],
                Aggregation::Last => vals[vals.len() - 1],
                Aggregation::Rate => {
                    if g.len() < 2 {
                        continue;
                    }
                    let mut inc = 0.0;
                    for w in g.windows(2) {
                        inc += if w[1].value >= w[0].value {
                            w[1].value - w[0].value
                        } else {
                            w[1].value
                        };
                    }
                    inc / ((g[g.len() - 1].ts - g[0].ts) as f64 / 1000.0)
                }
            };
            out.push(p(start, v));
        }
        out
    }

    #[test]
    fn buckets_align_on_multiples_and_skip_empty_ones() {
        let pts = [p(-1500, 1.0), p(-500, 3.0), p(500, 5.0), p(3500, 7.0)];
        let got = run(&pts, Some(Aggregation::Avg), 1000, 100);
        assert_eq!(
            got.points,
            vec![p(-2000, 1.0), p(-1000, 3.0), p(0, 5.0), p(3000, 7.0)]
        );
        let got = run(&pts, Some(Aggregation::Count), 0, 100);
        assert_eq!(got.points, vec![p(-1500, 4.0)]);
        assert_eq!(bucket_start(i64::MIN, 7), i64::MIN);
        assert_eq!(bucket_start(-1, 60_000), -60_000);
    }

    #[test]
    fn rate_treats_a_drop_as_a_reset_from_zero() {
        // 0 -> 10 -> 20 (reset) 5 -> 15, one point a second.
        let pts = [
            p(0, 0.0),
            p(1000, 10.0),
            p(2000, 20.0),
            p(3000, 5.0),
            p(4000, 15.0),
        ];
        let got = run(&pts, Some(Aggregation::Rate), 0, 100);
        assert_eq!(
            got.points,
            vec![p(1000, 10.0), p(2000, 10.0), p(3000, 5.0), p(4000, 10.0)]
        );
        // One bucket: increase 10 + 10 + 5 + 10 = 35 over 4 s.
        let got = run(&pts, Some(Aggregation::Rate), 10_000, 100);
        assert_eq!(got.points, vec![p(0, 8.75)]);
        // A bucket with one point yields nothing.
        let got = run(&pts, Some(Aggregation::Rate), 2000, 100);
        assert_eq!(got.points, vec![p(0, 10.0), p(2000, 5.0 / 1.0 * 1.0)]);
        let got = run(&[p(0, 1.0)], Some(Aggregation::Rate), 0, 100);
        assert!(got.points.is_empty());
    }

    #[test]
    fn pages_resume_where_they_stopped() {
        let pts: Vec<Point> = (0..10).map(|i| p(i * 100, i as f64)).collect();
        let pg = run(&pts, None, 0, 3);
        assert_eq!(pg.points.len(), 3);
        assert_eq!(pg.next_from, Some(300));
        let pg = run(&pts, Some(Aggregation::Rate), 0, 3);
        assert_eq!(pg.next_from, Some(300));
        assert_eq!(all(&pts, Some(Aggregation::Rate), 0, 3).len(), 9);
        let pg = run(&pts, Some(Aggregation::Sum), 200, 2);
        assert_eq!(pg.points, vec![p(0, 1.0), p(200, 5.0)]);
        assert_eq!(pg.next_from, Some(400));
        assert_eq!(run(&pts, None, 0, 10).next_from, None);
    }

    fn points() -> impl Strategy<Value = Vec<Point>> {
        proptest::collection::btree_map(
            -100_000i64..100_000,
            prop_oneof![(-1000i64..1000).prop_map(|v| v as f64), -1e6f64..1e6],
            1..200,
        )
        .prop_map(|m| m.into_iter().map(|(t, v)| p(t, v)).collect())
    }

    proptest! {
        #[test]
        fn aggregates_match_the_naive_model(
            pts in points(),
            agg in proptest::sample::select(Aggregation::ALL.to_vec()),
            bucket in prop_oneof![Just(0i64), 1i64..50_000],
            limit in 1usize..50,
        ) {
            let got = all(&pts, Some(agg), bucket, limit);
            let want = if agg == Aggregation::Rate && bucket == 0 {
                pts.windows(2).map(|w| p(w[1].ts, counter_increase(w[0].value, w[1].value) / ((w[1].ts - w[0].ts) as f64 / 1000.0))).collect()
            } else {
                model(&pts, agg, bucket)
            };
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                prop_assert_eq!(g.ts, w.ts);
                prop_assert_eq!(g.value.to_bits(), w.value.to_bits(), "{:?} at {}", agg, g.ts);
            }
        }

        #[test]
        fn raw_pages_return_every_point_once(pts in points(), limit in 1usize..50) {
            prop_assert_eq!(all(&pts, None, 0, limit), pts);
        }
    }
}
