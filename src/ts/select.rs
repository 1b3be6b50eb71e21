//! Aggregates across series: one answer for every series a selector
//! matches ([`SelectQuery`], [`super::TimeSeries::select`]), as PromQL's
//! `sum(count_over_time(...))` or `avg(...)` give, in one request instead
//! of one range query per series.
//!
//! **What is computed.** The series are those whose canonical form starts
//! with `prefix` and that every label matcher accepts (as `ts series`
//! lists them). Their points in `[from, to]` are pooled, and `agg` is
//! computed over the pool per bucket (buckets aligned on multiples of
//! `bucket_ms`, stamped with their start, empty ones omitted, as for one
//! series), or over the whole range when `bucket_ms` is 0, stamped with
//! `from`:
//!
//! - `count`: the number of points; `sum`: their sum; `avg`: sum / count;
//!   `min`, `max`: over every point;
//! - `first`: the value of the earliest point, on a tie the one of the
//!   series first in canonical order; `last`: the latest point, on a tie
//!   the series last in canonical order;
//! - `rate` is per series and refused here.
//!
//! Sums add the series in canonical order, each in time order, in f64.
//! A pool without points gives no line.
//!
//! **Cost.** `count` reads only chunk headers where they give the
//! timestamps (a constant step, as a collector's ticks have) and no head
//! point falls in the chunk's span: no chunk is decoded, and a run of
//! timestamps is split among buckets by arithmetic. Everything else reads
//! each series' points through its range query, a page at a time.
//!
//! **Bounds.** At most `series_max` series are visited: a selector that
//! matches more is refused before any point is read, with an error that
//! names the bound and the way to narrow it. The answer holds at most
//! `limit` buckets: the buckets kept are always the earliest ones (memory:
//! `limit` accumulators), and `next_from` is the start of the first bucket
//! left out, the `from` of the query that continues. Each series is read
//! from its own snapshot: the answer is exact for data that is not being
//! written meanwhile, like every multi-request read.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

use super::aggregate::{bucket_start, Aggregation, RangePage};
use super::query::{self, TsRun};
use super::series::{LabelMatcher, SeriesKey};
use super::{Core, Point, RangeQuery, SeriesQuery};

/// Points read per page when a series is read raw.
const PAGE_POINTS: usize = 64 * 1024;

/// An aggregate across series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectQuery {
    /// Only series whose canonical form starts with this.
    pub prefix: String,
    /// Only series every matcher accepts.
    pub matchers: Vec<LabelMatcher>,
    /// First timestamp (inclusive).
    pub from: i64,
    /// Last timestamp (inclusive).
    pub to: i64,
    /// What to compute (not [`Aggregation::Rate`]).
    pub agg: Aggregation,
    /// Bucket width in ms; 0: one value over the range, stamped `from`.
    pub bucket_ms: i64,
    /// Most buckets in the answer (>= 1).
    pub limit: usize,
    /// Most series the selector may match (>= 1); more is an error.
    pub series_max: usize,
}

/// Checks a select query's arguments.
pub fn check_select(q: &SelectQuery) -> Result<()> {
    if q.agg == Aggregation::Rate {
        return Err(Error::InvalidArgument(
            "rate is per series; across series use count, sum, min, max, avg, first or last".into(),
        ));
    }
    super::query::check_span(q.from, q.to, q.bucket_ms)?;
    if q.limit == 0 {
        return Err(Error::InvalidArgument("aggregate limit 0".into()));
    }
    if q.series_max == 0 {
        return Err(Error::InvalidArgument("series_max 0".into()));
    }
    Ok(())
}

/// A bucket's running aggregate over the points pooled so far.
#[derive(Clone, Copy, Debug)]
struct Partial {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    first: Point,
    last: Point,
}

impl Partial {
    fn new(p: Point) -> Self {
        Partial {
            count: 1,
            sum: p.value,
            min: p.value,
            max: p.value,
            first: p,
            last: p,
        }
    }

    fn counted(n: u64) -> Self {
        let zero = Point { ts: 0, value: 0.0 };
        Partial {
            count: n,
            sum: 0.0,
            min: 0.0,
            max: 0.0,
            first: zero,
            last: zero,
        }
    }

    /// Adds a point; series come in canonical order and each in time
    /// order, which settles the ties of `first` and `last`.
    fn add(&mut self, p: Point) {
        self.count += 1;
        self.sum += p.value;
        self.min = self.min.min(p.value);
        self.max = self.max.max(p.value);
        if p.ts < self.first.ts {
            self.first = p;
        }
        if p.ts >= self.last.ts {
            self.last = p;
        }
    }

    fn result(&self, agg: Aggregation) -> f64 {
        match agg {
            Aggregation::Count => self.count as f64,
            Aggregation::Sum => self.sum,
            Aggregation::Avg => self.sum / self.count as f64,
            Aggregation::Min => self.min,
            Aggregation::Max => self.max,
            Aggregation::First => self.first.value,
            Aggregation::Last | Aggregation::Rate => self.last.value,
        }
    }
}

/// The buckets of the answer: at most `limit`, always the earliest.
struct Buckets {
    limit: usize,
    map: BTreeMap<i64, Partial>,
    /// The first bucket left out (every bucket from it on is).
    cut: Option<i64>,
}

impl Buckets {
    fn kept(&self, start: i64) -> bool {
        self.cut.is_none_or(|c| start < c)
    }

    /// The bucket starting at `start`, made room for; `None` if it is
    /// beyond the ones kept.
    fn slot(&mut self, start: i64) -> Option<&mut Partial> {
        if !self.kept(start) {
            return None;
        }
        if !self.map.contains_key(&start) && self.map.len() == self.limit {
            match self.map.last_key_value().map(|(k, _)| *k) {
                Some(last) if last > start => {
                    self.map.remove(&last);
                    self.cut = Some(last);
                }
                _ => {
                    self.cut = Some(start);
                    return None;
                }
            }
        }
        self.map.get_mut(&start)
    }

    fn add_point(&mut self, start: i64, p: Point) {
        match self.slot(start) {
            Some(acc) => acc.add(p),
            None => {
                if self.kept(start) {
                    self.map.insert(start, Partial::new(p));
                }
            }
        }
    }

    fn add_count(&mut self, start: i64, n: u64) {
        match self.slot(start) {
            Some(acc) => acc.count += n,
            None => {
                if self.kept(start) {
                    self.map.insert(start, Partial::counted(n));
                }
            }
        }
    }
}

/// Runs a select query: the series, then one pass over each.
pub(crate) fn select(core: &Core, q: &SelectQuery) -> Result<RangePage> {
    check_select(q)?;
    let series = matching(core, q)?;
    let mut b = Buckets {
        limit: if q.bucket_ms == 0 { 1 } else { q.limit },
        map: BTreeMap::new(),
        cut: None,
    };
    let stamp = |ts: i64| {
        if q.bucket_ms == 0 {
            q.from
        } else {
            bucket_start(ts, q.bucket_ms)
        }
    };
    for key in &series {
        // Buckets from the cut on are dropped: read no further.
        let to = match b.cut {
            Some(c) => q.to.min(c.saturating_sub(1)),
            None => q.to,
        };
        if to < q.from {
            break;
        }
        if q.agg == Aggregation::Count {
            query::count_runs(core, key, q.from, to, &mut |run| {
                count_run(&mut b, run, q.bucket_ms, q.from)
            })?;
        } else {
            read_points(core, key, q.from, to, |p| b.add_point(stamp(p.ts), p))?;
        }
    }
    Ok(RangePage {
        points: b
            .map
            .iter()
            .map(|(&ts, acc)| Point {
                ts,
                value: acc.result(q.agg),
            })
            .collect(),
        next_from: b.cut,
    })
}

/// The series the selector matches, in canonical order; an error if they
/// are more than `series_max`.
fn matching(core: &Core, q: &SelectQuery) -> Result<Vec<SeriesKey>> {
    let page = query::series(
        core,
        &SeriesQuery {
            prefix: q.prefix.clone(),
            matchers: q.matchers.clone(),
            after: None,
            limit: q.series_max,
        },
    )?;
    if page.more {
        return Err(Error::LimitExceeded {
            what: format!(
                "the selector (prefix {:?}{}) matches more than series_max {} series; \
                 narrow it with a longer prefix or label matchers",
                q.prefix,
                q.matchers
                    .iter()
                    .map(|m| format!(", {m}"))
                    .collect::<String>(),
                q.series_max
            ),
        });
    }
    Ok(page.series)
}

/// Every point of `key` in `[from, to]`, a page at a time.
fn read_points(
    core: &Core,
    key: &SeriesKey,
    from: i64,
    to: i64,
    mut f: impl FnMut(Point),
) -> Result<()> {
    let mut rq = RangeQuery {
        from,
        to,
        agg: None,
        bucket_ms: 0,
        limit: PAGE_POINTS,
    };
    loop {
        let Some(page) = query::range(core, key, &rq)? else {
            return Ok(());
        };
        page.points.iter().copied().for_each(&mut f);
        match page.next_from {
            Some(next) if next > rq.from => rq.from = next,
            Some(next) => {
                return Err(Error::Corruption {
                    file: format!("time series {}", key.canonical()),
                    offset: 0,
                    what: format!("range page did not advance from {}: {next}", rq.from),
                })
            }
            None => return Ok(()),
        }
    }
}

/// Adds a run of timestamps to the buckets it spans.
fn count_run(b: &mut Buckets, run: TsRun, bucket_ms: i64, from: i64) {
    if bucket_ms == 0 || run.count <= 1 || run.step == 0 {
        let start = if bucket_ms == 0 {
            from
        } else {
            bucket_start(run.first, bucket_ms)
        };
        b.add_count(start, run.count);
        return;
    }
    let (step, bucket) = (i128::from(run.step), i128::from(bucket_ms));
    let mut i: i128 = 0;
    let n = i128::from(run.count);
    while i < n {
        let ts = i128::from(run.first) + i * step;
        let start = i128::from(bucket_start(
            i64::try_from(ts).unwrap_or(i64::MAX),
            bucket_ms,
        ));
        // Points of this run before the next bucket's start.
        let in_bucket = ((start + bucket - ts - 1) / step + 1).min(n - i);
        let start = i64::try_from(start).unwrap_or(i64::MIN);
        if !b.kept(start) {
            return;
        }
        b.add_count(start, u64::try_from(in_bucket).unwrap_or(0));
        i += in_bucket;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(limit: usize) -> Buckets {
        Buckets {
            limit,
            map: BTreeMap::new(),
            cut: None,
        }
    }

    fn counts(b: &Buckets) -> Vec<(i64, u64)> {
        b.map.iter().map(|(k, v)| (*k, v.count)).collect()
    }

    #[test]
    fn a_run_is_split_among_buckets_by_arithmetic() {
        // 10 points every 3 ms from 5: 5 8 11 14 17 20 23 26 29 32.
        let run = TsRun {
            first: 5,
            step: 3,
            count: 10,
        };
        let mut b = buckets(100);
        count_run(&mut b, run, 10, 0);
        assert_eq!(counts(&b), vec![(0, 2), (10, 3), (20, 4), (30, 1)]);
        let mut b = buckets(100);
        count_run(&mut b, run, 0, -7);
        assert_eq!(counts(&b), vec![(-7, 10)]);
        // Negative times, buckets wider than the run.
        let mut b = buckets(100);
        count_run(
            &mut b,
            TsRun {
                first: -25,
                step: 10,
                count: 5,
            },
            1000,
            0,
        );
        assert_eq!(counts(&b), vec![(-1000, 3), (0, 2)]);
    }

    #[test]
    fn only_the_earliest_buckets_are_kept() {
        let mut b = buckets(2);
        for start in [30, 10, 20, 40, 0, 10] {
            b.add_count(start, 1);
        }
        assert_eq!(counts(&b), vec![(0, 1), (10, 2)]);
        assert_eq!(b.cut, Some(20));
        b.add_count(25, 1);
        assert_eq!(counts(&b), vec![(0, 1), (10, 2)]);
        let mut b = buckets(2);
        count_run(
            &mut b,
            TsRun {
                first: 0,
                step: 1,
                count: 100,
            },
            10,
            0,
        );
        assert_eq!(counts(&b), vec![(0, 10), (10, 10)]);
        assert_eq!(b.cut, Some(20));
    }

    #[test]
    fn ties_of_first_and_last_go_to_the_first_and_the_last_series() {
        let mut acc = Partial::new(Point { ts: 5, value: 1.0 });
        acc.add(Point { ts: 5, value: 2.0 });
        acc.add(Point { ts: 3, value: 3.0 });
        acc.add(Point { ts: 3, value: 4.0 });
        assert_eq!(acc.result(Aggregation::First), 3.0);
        assert_eq!(acc.result(Aggregation::Last), 2.0);
        assert_eq!(acc.result(Aggregation::Count), 4.0);
        assert_eq!(acc.result(Aggregation::Avg), 2.5);
    }

    #[test]
    fn bad_queries_are_refused_with_the_reason() {
        let q = SelectQuery {
            prefix: String::new(),
            matchers: vec![],
            from: 0,
            to: 10,
            agg: Aggregation::Count,
            bucket_ms: 0,
            limit: 1,
            series_max: 1,
        };
        assert!(check_select(&q).is_ok());
        for (bad, what) in [
            (
                SelectQuery {
                    agg: Aggregation::Rate,
                    ..q.clone()
                },
                "rate is per series",
            ),
            (
                SelectQuery {
                    from: 11,
                    ..q.clone()
                },
                "after to",
            ),
            (
                SelectQuery {
                    bucket_ms: -1,
                    ..q.clone()
                },
                "negative",
            ),
            (
                SelectQuery {
                    limit: 0,
                    ..q.clone()
                },
                "limit 0",
            ),
        ] {
            let e = check_select(&bad).unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        }
    }
}
