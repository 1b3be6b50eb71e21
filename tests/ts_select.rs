//! Aggregates across series (`TimeSeries::select`) on a real database,
//! against a model built from the per-series range answers: for random
//! series, points (regular ticks, whose chunks are counted from their
//! headers, and irregular ones, out-of-order and overwritten points left
//! in heads over sealed chunks) and random selectors, ranges, buckets and
//! page sizes, the pooled answer, page after page, equals combining each
//! matching series' own range answers. Plus the series bound.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use cityhall::ts::{
    Aggregation, LabelMatcher, Point, RangeQuery, SelectQuery, SeriesKey, SeriesPoints,
    SeriesQuery, TimeSeries, TsOptions,
};
use cityhall::{Db, Error, Options};
use proptest::prelude::*;

struct Open {
    db: Db,
    ts: TimeSeries,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.ts.close();
        let _ = self.db.close();
    }
}

fn open(dir: &std::path::Path) -> Open {
    let db = Db::open(dir, Options::default()).unwrap();
    // Small heads, windows and chunks: many chunks, some sealed while
    // later writes to their span wait in heads.
    let ts = TimeSeries::open(
        db.clone(),
        TsOptions {
            head_points_max: 6,
            chunk_window_ms: 1_000,
            chunk_points_max: 16,
            out_of_order_window_ms: 1_000_000,
            ..TsOptions::default()
        },
    )
    .unwrap();
    Open { db, ts }
}

const SERIES: [&str; 6] = [
    "cpu.a{host=x}",
    "cpu.a{host=y}",
    "cpu.b{dc=1,host=x}",
    "cpu.b{host=y}",
    "mem.a{host=x}",
    "cpu{host=z}",
];

fn add(ts: &TimeSeries, series: &str, points: &[Point]) {
    let k = SeriesKey::parse(series).unwrap();
    ts.add(&[SeriesPoints { series: &k, points }]).unwrap();
}

#[derive(Clone, Debug)]
enum Op {
    /// `n` points every `step` ms from `start`, values from `seed`.
    Ticks {
        series: usize,
        start: i64,
        step: i64,
        n: usize,
        seed: i64,
    },
    /// Points at arbitrary times (out of order, overwrites).
    Scatter {
        series: usize,
        points: Vec<(i64, i64)>,
    },
    Seal,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..SERIES.len(), 0i64..5_000, prop_oneof![Just(10i64), Just(100), 1i64..300], 1usize..80, -50i64..50)
            .prop_map(|(series, start, step, n, seed)| Op::Ticks { series, start, step, n, seed }),
        3 => (0..SERIES.len(), proptest::collection::vec((prop_oneof![(0i64..800).prop_map(|t| t * 10), 0i64..8_000], -100i64..100), 1..12))
            .prop_map(|(series, points)| Op::Scatter { series, points }),
        1 => Just(Op::Seal),
    ]
}

fn apply(ts: &TimeSeries, op: &Op) {
    match op {
        Op::Ticks {
            series,
            start,
            step,
            n,
            seed,
        } => {
            let points: Vec<Point> = (0..*n as i64)
                .map(|i| Point {
                    ts: start + i * step,
                    // Small integers: every sum is exact whatever the order.
                    value: ((seed + i * 7) % 23) as f64,
                })
                .collect();
            add(ts, SERIES[*series], &points);
        }
        Op::Scatter { series, points } => {
            let mut by_ts = BTreeMap::new();
            for &(t, v) in points {
                by_ts.insert(t, v as f64);
            }
            let points: Vec<Point> = by_ts
                .into_iter()
                .map(|(ts, value)| Point { ts, value })
                .collect();
            add(ts, SERIES[*series], &points);
        }
        Op::Seal => ts.seal_all().unwrap(),
    }
}

fn range(
    ts: &TimeSeries,
    key: &SeriesKey,
    q: &SelectQuery,
    agg: Option<Aggregation>,
) -> Vec<Point> {
    let rq = RangeQuery {
        from: q.from,
        to: q.to,
        agg,
        bucket_ms: if agg.is_some() { q.bucket_ms } else { 0 },
        limit: usize::MAX,
    };
    ts.range(key, &rq).unwrap().unwrap().points
}

/// The answer built from each matching series' own range answers.
fn model(ts: &TimeSeries, q: &SelectQuery) -> Vec<Point> {
    let series = ts
        .series(&SeriesQuery {
            prefix: q.prefix.clone(),
            matchers: q.matchers.clone(),
            after: None,
            limit: 1000,
        })
        .unwrap()
        .series;
    // Per bucket: count, sum, min, max, first (ts, value), last (ts, value).
    type Acc = (f64, f64, f64, f64, (i64, f64), (i64, f64));
    let mut acc: BTreeMap<i64, Acc> = BTreeMap::new();
    let stamp = |ts: i64| {
        if q.bucket_ms == 0 {
            q.from
        } else {
            cityhall::ts::aggregate::bucket_start(ts, q.bucket_ms)
        }
    };
    for key in &series {
        let count = range(ts, key, q, Some(Aggregation::Count));
        let sum = range(ts, key, q, Some(Aggregation::Sum));
        let min = range(ts, key, q, Some(Aggregation::Min));
        let max = range(ts, key, q, Some(Aggregation::Max));
        let raw = range(ts, key, q, None);
        assert_eq!(count.len(), sum.len());
        for (i, c) in count.iter().enumerate() {
            let b = stamp(c.ts);
            let e = acc.entry(b).or_insert((
                0.0,
                0.0,
                f64::INFINITY,
                f64::NEG_INFINITY,
                (i64::MAX, 0.0),
                (i64::MIN, 0.0),
            ));
            e.0 += c.value;
            e.1 += sum[i].value;
            e.2 = e.2.min(min[i].value);
            e.3 = e.3.max(max[i].value);
        }
        for p in raw {
            let e = acc.get_mut(&stamp(p.ts)).unwrap();
            if p.ts < e.4 .0 {
                e.4 = (p.ts, p.value);
            }
            if p.ts >= e.5 .0 {
                e.5 = (p.ts, p.value);
            }
        }
    }
    acc.into_iter()
        .map(|(ts, (count, sum, min, max, first, last))| Point {
            ts,
            value: match q.agg {
                Aggregation::Count => count,
                Aggregation::Sum => sum,
                Aggregation::Avg => sum / count,
                Aggregation::Min => min,
                Aggregation::Max => max,
                Aggregation::First => first.1,
                Aggregation::Last | Aggregation::Rate => last.1,
            },
        })
        .collect()
}

/// Every page of a select, following `next_from` as a client does.
fn pages(ts: &TimeSeries, q: &SelectQuery) -> Vec<Point> {
    let mut q = q.clone();
    let mut out = Vec::new();
    loop {
        let page = ts.select(&q).unwrap();
        assert!(page.points.len() <= q.limit);
        out.extend(page.points);
        match page.next_from {
            Some(next) => {
                assert!(next > q.from, "pages go forward");
                q.from = next;
            }
            None => return out,
        }
    }
}

fn query() -> impl Strategy<Value = SelectQuery> {
    (
        prop_oneof![
            Just(""),
            Just("cpu"),
            Just("cpu."),
            Just("cpu.a"),
            Just("mem"),
            Just("zz")
        ],
        proptest::sample::subsequence(vec!["host=x", "host!=y", "dc=1", "dc!=1"], 0..3),
        -100i64..6_000,
        0i64..9_000,
        proptest::sample::select(vec![
            Aggregation::Count,
            Aggregation::Count,
            Aggregation::Sum,
            Aggregation::Avg,
            Aggregation::Min,
            Aggregation::Max,
            Aggregation::First,
            Aggregation::Last,
        ]),
        prop_oneof![
            Just(0i64),
            Just(7),
            Just(100),
            Just(1000),
            Just(2500),
            1i64..4000
        ],
        prop_oneof![Just(100_000usize), 1usize..5],
    )
        .prop_map(
            |(prefix, m, from, len, agg, bucket_ms, limit)| SelectQuery {
                prefix: prefix.into(),
                matchers: m.iter().map(|t| LabelMatcher::parse(t).unwrap()).collect(),
                from,
                to: from + len,
                agg,
                bucket_ms,
                limit,
                series_max: 100,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn the_pooled_answer_equals_combining_the_per_series_answers(
        ops in proptest::collection::vec(op(), 1..25),
        overwrites in proptest::collection::btree_map(0..SERIES.len(), (0i64..8, 0usize..100), 0..4),
        queries in proptest::collection::vec(query(), 1..8),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let o = open(dir.path());
        for op in &ops {
            apply(&o.ts, op);
        }
        // Sealed points overwritten in place: heads over chunks, at query
        // time (two points of one window per series: no seal is due).
        o.ts.seal_all().unwrap();
        for (&series, &(window, k)) in &overwrites {
            let key = SeriesKey::parse(SERIES[series]).unwrap();
            let rq = RangeQuery { from: window * 1000, to: window * 1000 + 999, agg: None, bucket_ms: 0, limit: 1000 };
            let Some(page) = o.ts.range(&key, &rq).unwrap() else { continue };
            let n = page.points.len();
            if n == 0 {
                continue;
            }
            let mut again: Vec<Point> = [k % n, (k + 1) % n].iter().map(|&i| Point { ts: page.points[i].ts, value: 40.0 + i as f64 }).collect();
            again.sort_by_key(|p| p.ts);
            again.dedup_by_key(|p| p.ts);
            add(&o.ts, SERIES[series], &again);
        }
        for q in &queries {
            let got = pages(&o.ts, q);
            let want = model(&o.ts, q);
            prop_assert_eq!(got.len(), want.len(), "{:?}", q);
            for (g, w) in got.iter().zip(&want) {
                prop_assert_eq!(g.ts, w.ts, "{:?}", q);
                prop_assert_eq!(g.value.to_bits(), w.value.to_bits(), "{:?} at {}", q, g.ts);
            }
        }
    }
}

#[test]
fn counts_from_headers_match_decoded_counts_around_heads() {
    // One series of regular ticks sealed into constant-step chunks, then
    // an overwrite and an out-of-order point left in the head inside a
    // sealed chunk's span (two points in one window: no seal is due):
    // each point counted once.
    let dir = tempfile::tempdir().unwrap();
    let o = open(dir.path());
    let ticks: Vec<Point> = (0..100)
        .map(|i| Point {
            ts: i * 10,
            value: 1.0,
        })
        .collect();
    add(&o.ts, "cpu.a{host=x}", &ticks);
    o.ts.seal_all().unwrap();
    add(
        &o.ts,
        "cpu.a{host=x}",
        &[Point { ts: 50, value: 9.0 }, Point { ts: 55, value: 9.0 }],
    );
    let q = SelectQuery {
        prefix: "cpu.".into(),
        matchers: vec![],
        from: 0,
        to: 10_000,
        agg: Aggregation::Count,
        bucket_ms: 0,
        limit: 10,
        series_max: 10,
    };
    assert_eq!(
        pages(&o.ts, &q),
        vec![Point {
            ts: 0,
            value: 101.0
        }]
    );
    // Clipped at both ends: 30..=970 holds 95 ticks plus the point at 55.
    let clipped = SelectQuery {
        from: 25,
        to: 975,
        ..q.clone()
    };
    assert_eq!(
        pages(&o.ts, &clipped),
        vec![Point {
            ts: 25,
            value: 96.0
        }]
    );
    let halves = SelectQuery {
        bucket_ms: 500,
        ..q.clone()
    };
    assert_eq!(
        pages(&o.ts, &halves),
        vec![
            Point { ts: 0, value: 51.0 },
            Point {
                ts: 500,
                value: 50.0
            }
        ]
    );
    assert_eq!(pages(&o.ts, &halves), model(&o.ts, &halves));
}

#[test]
fn a_selector_over_the_series_bound_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(dir.path());
    for s in SERIES {
        add(&o.ts, s, &[Point { ts: 1, value: 1.0 }]);
    }
    let q = SelectQuery {
        prefix: "cpu.".into(),
        matchers: vec![],
        from: 0,
        to: 10,
        agg: Aggregation::Sum,
        bucket_ms: 0,
        limit: 10,
        series_max: 3,
    };
    match o.ts.select(&q) {
        Err(Error::LimitExceeded { what }) => {
            assert!(what.contains("series_max 3"), "{what}");
            assert!(what.contains("narrow it"), "{what}");
        }
        other => panic!("expected the series bound, got {other:?}"),
    }
    // Exactly at the bound is fine.
    let q = SelectQuery { series_max: 4, ..q };
    assert_eq!(
        o.ts.select(&q).unwrap().points,
        vec![Point { ts: 0, value: 4.0 }]
    );
    let rate = SelectQuery {
        agg: Aggregation::Rate,
        ..q
    };
    match o.ts.select(&rate) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("rate is per series"), "{m}"),
        other => panic!("expected rate refused, got {other:?}"),
    }
}
