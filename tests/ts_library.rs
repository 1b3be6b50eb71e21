//! The time-series library on a real database, case by case: what is
//! refused and why (non-finite values, the out-of-order window, retention,
//! the series and head bounds), how chunks are cut (windows, the point
//! bound) and what survives a reopen (policies, retention, heads).
#![allow(clippy::unwrap_used)]

use cityhall::ts::{
    Aggregation, DupPolicy, Point, RangeQuery, Retention, SeriesKey, SeriesPoints, SeriesQuery,
    TimeSeries, TsOptions,
};
use cityhall::{Db, Error, Options};

fn key(s: &str) -> SeriesKey {
    SeriesKey::parse(s).unwrap()
}

fn pts(v: &[(i64, f64)]) -> Vec<Point> {
    v.iter().map(|&(ts, value)| Point { ts, value }).collect()
}

fn add(ts: &TimeSeries, series: &str, v: &[(i64, f64)]) -> cityhall::Result<()> {
    let k = key(series);
    let p = pts(v);
    ts.add(&[SeriesPoints {
        series: &k,
        points: &p,
    }])
}

fn all(ts: &TimeSeries, series: &str) -> Option<Vec<(i64, f64)>> {
    let q = RangeQuery::raw(i64::MIN, i64::MAX);
    ts.range(&key(series), &q)
        .unwrap()
        .map(|p| p.points.iter().map(|p| (p.ts, p.value)).collect())
}

struct Open {
    db: Db,
    ts: TimeSeries,
}

fn open(dir: &std::path::Path, opts: TsOptions) -> Open {
    let db = Db::open(dir, Options::default()).unwrap();
    let ts = TimeSeries::open(db.clone(), opts).unwrap();
    Open { db, ts }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.ts.close();
        let _ = self.db.close();
    }
}

fn invalid(r: cityhall::Result<()>) -> String {
    match r {
        Err(Error::InvalidArgument(m)) => m,
        other => panic!("expected an invalid argument, got {other:?}"),
    }
}

#[test]
fn refusals_name_the_reason_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(
        dir.path(),
        TsOptions {
            out_of_order_window_ms: 1000,
            series_max: 2,
            ..TsOptions::default()
        },
    );
    let ts = &o.ts;
    let m = invalid(add(ts, "a", &[(1, 1.0), (2, f64::NAN)]));
    assert!(m.contains("not a finite number"), "{m}");
    assert_eq!(all(ts, "a"), None, "a refused add creates no series");

    add(ts, "a", &[(10_000, 1.0)]).unwrap();
    add(ts, "a", &[(9_000, 2.0)]).unwrap();
    let m = invalid(add(ts, "a", &[(10_001, 3.0), (8_999, 3.0)]));
    assert!(m.contains("out-of-order window"), "{m}");
    assert_eq!(all(ts, "a").unwrap(), vec![(9_000, 2.0), (10_000, 1.0)]);

    add(ts, "b", &[(1, 1.0)]).unwrap();
    match add(ts, "c", &[(1, 1.0)]) {
        Err(Error::LimitExceeded { what }) => assert!(what.contains("series_max"), "{what}"),
        other => panic!("{other:?}"),
    }

    let now = cityhall::ts::options::system_now_ms();
    assert!(ts
        .set_retention(Some(&key("b")), Retention::Ms(3_600_000))
        .unwrap());
    let m = invalid(add(ts, "b", &[(now - 5 * 3_600_000, 1.0)]));
    assert!(m.contains("older than the series keeps"), "{m}");
    assert!(ts.set_retention(None, Retention::Default).is_err());
    assert!(!ts
        .set_retention(Some(&key("zz")), Retention::Forever)
        .unwrap());
}

#[test]
fn chunks_follow_windows_and_the_point_bound() {
    let dir = tempfile::tempdir().unwrap();
    let opts = TsOptions {
        head_points_max: 10,
        chunk_window_ms: 1000,
        chunk_points_max: 7,
        out_of_order_window_ms: i64::MAX,
        ..TsOptions::default()
    };
    let o = open(dir.path(), opts.clone());
    // 50 points a window over 3 windows, then late points in the first.
    let mut want = Vec::new();
    for t in 0..150 {
        let v = (t * 3 % 17) as f64;
        add(&o.ts, "s", &[(t * 20, v)]).unwrap();
        want.push((t * 20, v));
    }
    add(&o.ts, "s", &[(5, -1.0), (15, -2.0)]).unwrap();
    want.push((5, -1.0));
    want.push((15, -2.0));
    want.sort_by_key(|p| p.0);
    o.ts.seal_all().unwrap();
    assert_eq!(all(&o.ts, "s").unwrap(), want);
    // Hourly (here: per-window) counts see every point once.
    let q = RangeQuery {
        from: 0,
        to: 10_000,
        agg: Some(Aggregation::Count),
        bucket_ms: 1000,
        limit: 10,
    };
    let counts: Vec<f64> =
        o.ts.range(&key("s"), &q)
            .unwrap()
            .unwrap()
            .points
            .iter()
            .map(|p| p.value)
            .collect();
    assert_eq!(counts, vec![52.0, 50.0, 50.0]);
    // Chunks: every one within a window and at most 7 points.
    let chunks = o.db.scan_prefix(b"ts/c/", 10_000).unwrap();
    assert!(chunks.len() >= 150 / 7, "{} chunks", chunks.len());
    for (k, v) in &chunks {
        let p = cityhall::ts::chunk::decode(v).unwrap();
        assert!(p.len() <= 7);
        let w = p[0].ts.div_euclid(1000);
        assert!(p.iter().all(|q| q.ts.div_euclid(1000) == w), "{k:?}");
    }
    assert!(o.db.scan_prefix(b"ts/p/", 10).unwrap().is_empty());
}

#[test]
fn settings_and_heads_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = TsOptions {
        head_points_max: 1000,
        ..TsOptions::default()
    };
    {
        let o = open(dir.path(), opts.clone());
        add(&o.ts, "p{k=v}", &[(1, 1.0), (2, 2.0)]).unwrap();
        assert!(o.ts.set_policy(&key("p{k=v}"), DupPolicy::Max).unwrap());
        assert!(o
            .ts
            .set_retention(Some(&key("p{k=v}")), Retention::Forever)
            .unwrap());
        assert!(o.ts.set_retention(None, Retention::Ms(1 << 50)).unwrap());
        assert!(!o.ts.set_policy(&key("nope"), DupPolicy::Min).unwrap());
    }
    let o = open(dir.path(), opts);
    assert_eq!(all(&o.ts, "p{k=v}").unwrap(), vec![(1, 1.0), (2, 2.0)]);
    add(&o.ts, "p{k=v}", &[(1, 0.5), (2, 5.0)]).unwrap();
    assert_eq!(all(&o.ts, "p{k=v}").unwrap(), vec![(1, 1.0), (2, 5.0)]);
    let page =
        o.ts.series(&SeriesQuery {
            limit: 10,
            ..SeriesQuery::default()
        })
        .unwrap();
    assert_eq!(page.series, vec![key("p{k=v}")]);
    assert_eq!(
        o.ts.latest(&key("p{k=v}")).unwrap(),
        Some(Some(Point { ts: 2, value: 5.0 }))
    );
    assert!(o.ts.delete_series(&key("p{k=v}")).unwrap());
    assert_eq!(all(&o.ts, "p{k=v}"), None);
    assert!(o
        .db
        .scan_prefix(b"ts/", 100)
        .unwrap()
        .iter()
        .all(|(k, _)| k.starts_with(b"ts/o/")));
}
