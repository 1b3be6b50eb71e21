#![allow(clippy::unwrap_used)]
//! Model-based test of the time-series layer on a real engine, over the
//! simulated file system (with power cuts) and over a temporary directory
//! on the real one: random adds (several series per request,
//! duplicates, out-of-order points, every duplicate policy), range
//! queries raw and aggregated with paging, latest, range and series
//! deletes, retention as the clock moves, seals, engine flushes and
//! compactions, clean reopens and power cuts — against a `BTreeMap` per
//! series.
//!
//! The layer is configured tiny (heads of 4 points, windows of 10 s,
//! chunks of at most 8 points) so that seals, re-seals of older windows
//! and split chunks happen within a few operations, while the background
//! sealer runs concurrently: results must not depend on what is sealed.
//!
//! On failure proptest prints the shrunk `seed` and `ops`; every message
//! names the step. `PROPTEST_CASES` sets the number of cases (default 48).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use cityhall::io::sim::{CrashMode, SimFs};
use cityhall::ts::aggregate::{self, bucket_start};
use cityhall::ts::{
    Aggregation, DupPolicy, LabelMatcher, Point, RangeQuery, Retention, SeriesKey, SeriesPoints,
    SeriesQuery, TimeSeries, TsOptions,
};
use cityhall::{Db, Options};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

const DIR: &str = "/db";
const WINDOW_MS: i64 = 10_000;
const SERIES: [&str; 3] = ["cpu", "cpu{host=a}", "mem{dc=x,host=b}"];
/// Timestamps fall in [T0, T0 + SPAN).
const T0: i64 = 1_000_000;
const SPAN: i64 = 60_000;

static CLOCK: AtomicI64 = AtomicI64::new(0);
/// Held by each case: the clock is shared by the tests of this file.
static CLOCK_USERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn clock() -> i64 {
    CLOCK.load(Ordering::SeqCst)
}

#[derive(Clone, Debug)]
enum Op {
    /// Points per series index: (offset from T0, value).
    Add(Vec<(usize, Vec<(i64, f64)>)>),
    Range {
        s: usize,
        from: i64,
        len: i64,
        agg: Option<Aggregation>,
        bucket: i64,
        limit: usize,
    },
    Latest(usize),
    DeleteRange(usize, i64, i64),
    DeleteSeries(usize),
    Policy(usize, DupPolicy),
    Retention(Option<usize>, Retention),
    /// Move the clock forward and apply retention.
    Tick(i64),
    SealAll,
    Flush,
    Compact,
    Reopen,
    Crash(CrashMode),
    List,
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-50i64..50).prop_map(|v| v as f64),
        (-5000i64..5000).prop_map(|v| v as f64 / 100.0),
        -1e9f64..1e9,
    ]
}

fn points() -> impl Strategy<Value = Vec<(i64, f64)>> {
    prop::collection::vec(
        (prop_oneof![0..SPAN, 0i64..40].prop_map(|t| t), value()),
        1..12,
    )
}

fn op() -> impl Strategy<Value = Op> {
    let agg = prop_oneof![
        Just(None),
        prop::sample::select(Aggregation::ALL.to_vec()).prop_map(Some)
    ];
    prop_oneof![
        12 => prop::collection::vec((0..SERIES.len(), points()), 1..4).prop_map(Op::Add),
        4 => (0..SERIES.len(), -5_000..SPAN, 0..SPAN + 10_000, agg, prop_oneof![Just(0i64), 1i64..25_000], 1usize..20)
            .prop_map(|(s, from, len, agg, bucket, limit)| Op::Range {
                s,
                from,
                len,
                bucket: if agg.is_some() { bucket } else { 0 },
                agg,
                limit,
            }),
        2 => (0..SERIES.len()).prop_map(Op::Latest),
        2 => (0..SERIES.len(), 0..SPAN, 0..20_000i64).prop_map(|(s, a, l)| Op::DeleteRange(s, a, l)),
        1 => (0..SERIES.len()).prop_map(Op::DeleteSeries),
        1 => (0..SERIES.len(), prop::sample::select(DupPolicy::ALL.to_vec())).prop_map(|(s, p)| Op::Policy(s, p)),
        1 => (prop::option::of(0..SERIES.len()), prop_oneof![
                Just(Retention::Default),
                Just(Retention::Forever),
                (5_000i64..80_000).prop_map(Retention::Ms)
            ]).prop_map(|(s, r)| Op::Retention(s, r)),
        2 => (0i64..20_000).prop_map(Op::Tick),
        2 => Just(Op::SealAll),
        1 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
        1 => prop_oneof![
                Just(CrashMode::DropUnsynced),
                Just(CrashMode::TearLastWrite),
                Just(CrashMode::Random)
            ].prop_map(Op::Crash),
        1 => Just(Op::List),
    ]
}

#[derive(Clone, Debug, Default)]
struct ModelSeries {
    points: BTreeMap<i64, f64>,
    policy: Option<DupPolicy>,
    retention: Option<Retention>,
}

#[derive(Clone, Debug, Default)]
struct Model {
    series: BTreeMap<usize, ModelSeries>,
    default_retention_ms: i64,
}

impl Model {
    fn retention_ms(&self, s: &ModelSeries) -> i64 {
        match s.retention.unwrap_or(Retention::Default) {
            Retention::Default => self.default_retention_ms,
            Retention::Forever => 0,
            Retention::Ms(ms) => ms,
        }
    }

    fn cutoff(&self, s: Option<&ModelSeries>, now: i64) -> Option<i64> {
        let r = match s {
            Some(s) => self.retention_ms(s),
            None => self.default_retention_ms,
        };
        (r > 0).then(|| bucket_start(now - r, WINDOW_MS))
    }

    /// Applies an add; `Err` if the layer must refuse it (nothing stored).
    fn add(&mut self, req: &[(usize, Vec<(i64, f64)>)], now: i64) -> Result<(), String> {
        let mut next = self.clone();
        for (s, pts) in req {
            let cutoff = self.cutoff(next.series.get(s), now);
            let entry = next.series.entry(*s).or_default();
            let policy = entry.policy.unwrap_or(DupPolicy::Last);
            for &(t, v) in pts {
                if cutoff.is_some_and(|c| t < c) {
                    return Err("retention".into());
                }
                let stored = match (entry.points.get(&t), policy) {
                    (None, _) | (Some(_), DupPolicy::Last) => Some(v),
                    (Some(_), DupPolicy::First) => None,
                    (Some(_), DupPolicy::Block) => return Err("duplicate".into()),
                    (Some(o), DupPolicy::Min) => Some(o.min(v)),
                    (Some(o), DupPolicy::Max) => Some(o.max(v)),
                    (Some(o), DupPolicy::Sum) => Some(o + v),
                };
                if let Some(v) = stored {
                    entry.points.insert(t, v);
                }
            }
        }
        *self = next;
        Ok(())
    }

    fn apply_retention(&mut self, now: i64) {
        let default = self.default_retention_ms;
        for s in self.series.values_mut() {
            let r = match s.retention.unwrap_or(Retention::Default) {
                Retention::Default => default,
                Retention::Forever => 0,
                Retention::Ms(ms) => ms,
            };
            if r > 0 {
                let c = bucket_start(now - r, WINDOW_MS);
                s.points = s.points.split_off(&c);
            }
        }
    }
}

struct Harness {
    sim: SimFs,
    /// `Some`: the engine runs in this directory of the real file system
    /// (power cuts become clean reopens).
    disk: Option<tempfile::TempDir>,
    db: Option<Db>,
    ts: Option<TimeSeries>,
    keys: Vec<SeriesKey>,
    model: Model,
    step: usize,
    seed: u64,
    /// Last, so that it is released after the layer has stopped.
    _clock: std::sync::MutexGuard<'static, ()>,
}

type R = Result<(), TestCaseError>;

fn ts_options() -> TsOptions {
    TsOptions {
        head_points_max: 4,
        chunk_window_ms: WINDOW_MS,
        chunk_points_max: 8,
        out_of_order_window_ms: i64::MAX,
        retention_sweep_interval_ms: 50,
        clock,
        ..TsOptions::default()
    }
}

impl Harness {
    fn new(seed: u64, on_disk: bool) -> Result<Self, TestCaseError> {
        let clock = CLOCK_USERS.lock().unwrap_or_else(|p| p.into_inner());
        CLOCK.store(T0, Ordering::SeqCst);
        let mut h = Harness {
            sim: SimFs::new(seed),
            disk: on_disk.then(|| tempfile::tempdir().unwrap()),
            db: None,
            ts: None,
            keys: SERIES
                .iter()
                .map(|s| SeriesKey::parse(s).unwrap())
                .collect(),
            model: Model::default(),
            step: 0,
            seed,
            _clock: clock,
        };
        h.open()?;
        Ok(h)
    }

    fn ctx(&self) -> String {
        format!("seed {} step {}", self.seed, self.step)
    }

    fn open(&mut self) -> R {
        let mut opts = Options {
            fs: Some(Arc::new(self.sim.clone())),
            wal_prepare_background: false,
            wal_segment_size_bytes: 256 << 10,
            memtable_size_bytes_max: 32 << 10,
            immutable_memtables_max: 100_000,
            ..Options::default()
        };
        let dir = match &self.disk {
            Some(d) => {
                opts.fs = None;
                d.path().to_path_buf()
            }
            None => std::path::PathBuf::from(DIR),
        };
        let db = Db::open(dir, opts)
            .map_err(|e| TestCaseError::fail(format!("{}: open: {e}", self.ctx())))?;
        let ts = TimeSeries::open(db.clone(), ts_options())
            .map_err(|e| TestCaseError::fail(format!("{}: ts open: {e}", self.ctx())))?;
        self.db = Some(db);
        self.ts = Some(ts);
        Ok(())
    }

    fn ts(&self) -> &TimeSeries {
        self.ts.as_ref().unwrap()
    }

    fn close(&mut self, clean: bool) -> R {
        if let Some(ts) = self.ts.take() {
            ts.close();
        }
        if let Some(db) = self.db.take() {
            let r = db.close();
            if clean {
                r.map_err(|e| TestCaseError::fail(format!("{}: close: {e}", self.ctx())))?;
            }
        }
        Ok(())
    }

    fn check_series(&self, s: usize) -> R {
        let key = &self.keys[s];
        let got = self.ts().range(
            key,
            &RangeQuery {
                from: i64::MIN,
                to: i64::MAX,
                agg: None,
                bucket_ms: 0,
                limit: 100_000,
            },
        );
        let got = got.map_err(|e| TestCaseError::fail(format!("{}: range: {e}", self.ctx())))?;
        match (self.model.series.get(&s), got) {
            (None, None) => Ok(()),
            (Some(m), Some(page)) => {
                let want: Vec<Point> = m
                    .points
                    .iter()
                    .map(|(&ts, &value)| Point { ts, value })
                    .collect();
                prop_assert!(page.next_from.is_none());
                prop_assert_eq!(
                    bits(&page.points),
                    bits(&want),
                    "{}: series {}",
                    self.ctx(),
                    key
                );
                Ok(())
            }
            (m, g) => Err(TestCaseError::fail(format!(
                "{}: series {key}: model has it: {}, layer has it: {}",
                self.ctx(),
                m.is_some(),
                g.is_some()
            ))),
        }
    }

    fn check_all(&self) -> R {
        for s in 0..SERIES.len() {
            self.check_series(s)?;
        }
        Ok(())
    }

    fn run(&mut self, op: &Op) -> R {
        match op {
            Op::Add(req) => {
                let now = clock();
                let owned: Vec<(usize, Vec<Point>)> = req
                    .iter()
                    .map(|(s, pts)| {
                        let p = pts
                            .iter()
                            .map(|&(t, value)| Point { ts: T0 + t, value })
                            .collect();
                        (*s, p)
                    })
                    .collect();
                let batch: Vec<SeriesPoints<'_>> = owned
                    .iter()
                    .map(|(s, p)| SeriesPoints {
                        series: &self.keys[*s],
                        points: p,
                    })
                    .collect();
                let got = self.ts().add(&batch);
                let shifted: Vec<(usize, Vec<(i64, f64)>)> = req
                    .iter()
                    .map(|(s, p)| (*s, p.iter().map(|&(t, v)| (T0 + t, v)).collect()))
                    .collect();
                let want = self.model.add(&shifted, now);
                prop_assert_eq!(
                    got.is_ok(),
                    want.is_ok(),
                    "{}: add {:?}: layer {:?}, model {:?}",
                    self.ctx(),
                    req,
                    got,
                    want
                );
                for (s, _) in req {
                    self.check_series(*s)?;
                }
            }
            Op::Range {
                s,
                from,
                len,
                agg,
                bucket,
                limit,
            } => self.range(*s, T0 + from, T0 + from + len, *agg, *bucket, *limit)?,
            Op::Latest(s) => {
                let got = self.ts().latest(&self.keys[*s]).unwrap();
                let want = self.model.series.get(s).map(|m| {
                    m.points
                        .iter()
                        .next_back()
                        .map(|(&ts, &value)| Point { ts, value })
                });
                prop_assert_eq!(got, want, "{}: latest", self.ctx());
            }
            Op::DeleteRange(s, a, l) => {
                let (from, to) = (T0 + a, T0 + a + l);
                let found = self
                    .ts()
                    .delete_range(&self.keys[*s], from, to)
                    .map_err(|e| TestCaseError::fail(format!("{}: delete: {e}", self.ctx())))?;
                prop_assert_eq!(found, self.model.series.contains_key(s));
                if let Some(m) = self.model.series.get_mut(s) {
                    m.points.retain(|t, _| *t < from || *t > to);
                }
                self.check_series(*s)?;
            }
            Op::DeleteSeries(s) => {
                let found = self.ts().delete_series(&self.keys[*s]).unwrap();
                prop_assert_eq!(found, self.model.series.remove(s).is_some());
                self.check_series(*s)?;
            }
            Op::Policy(s, p) => {
                let found = self.ts().set_policy(&self.keys[*s], *p).unwrap();
                prop_assert_eq!(found, self.model.series.contains_key(s));
                if let Some(m) = self.model.series.get_mut(s) {
                    m.policy = Some(*p);
                }
            }
            Op::Retention(s, r) => {
                let key = s.map(|s| &self.keys[s]);
                let got = self.ts().set_retention(key, *r);
                match s {
                    None if *r == Retention::Default => prop_assert!(got.is_err()),
                    None => {
                        prop_assert!(got.unwrap());
                        self.model.default_retention_ms = r.to_ms();
                    }
                    Some(s) => {
                        prop_assert_eq!(got.unwrap(), self.model.series.contains_key(s));
                        if let Some(m) = self.model.series.get_mut(s) {
                            m.retention = Some(*r);
                        }
                    }
                }
                let now = clock();
                self.ts().apply_retention(now).unwrap();
                self.model.apply_retention(now);
                self.check_all()?;
            }
            Op::Tick(d) => {
                let now = CLOCK.fetch_add(*d, Ordering::SeqCst) + d;
                self.ts().apply_retention(now).unwrap();
                self.model.apply_retention(now);
                self.check_all()?;
            }
            Op::SealAll => {
                self.ts().seal_all().unwrap();
                self.check_all()?;
            }
            Op::Flush => self.db.as_ref().unwrap().flush().unwrap(),
            Op::Compact => {
                self.db.as_ref().unwrap().compact_range(None, None).unwrap();
                self.check_all()?;
            }
            Op::Reopen => {
                self.close(true)?;
                self.open()?;
                self.check_all()?;
            }
            Op::Crash(mode) => {
                if self.disk.is_none() {
                    self.sim.crash(*mode);
                }
                self.close(self.disk.is_some())?;
                self.open()?;
                self.check_all()?;
            }
            Op::List => {
                let page = self
                    .ts()
                    .series(&SeriesQuery {
                        prefix: "cpu".into(),
                        limit: 10,
                        ..SeriesQuery::default()
                    })
                    .unwrap();
                let want: Vec<String> = [0usize, 1]
                    .into_iter()
                    .filter(|s| self.model.series.contains_key(s))
                    .map(|s| SERIES[s].to_string())
                    .collect();
                let got: Vec<String> = page.series.iter().map(|k| k.canonical()).collect();
                prop_assert_eq!(got, want, "{}: list", self.ctx());
                let page = self
                    .ts()
                    .series(&SeriesQuery {
                        matchers: vec![LabelMatcher::parse("host!=a").unwrap()],
                        limit: 10,
                        ..SeriesQuery::default()
                    })
                    .unwrap();
                let want: Vec<String> = [0usize, 2]
                    .into_iter()
                    .filter(|s| self.model.series.contains_key(s))
                    .map(|s| SERIES[s].to_string())
                    .collect();
                let got: Vec<String> = page.series.iter().map(|k| k.canonical()).collect();
                prop_assert_eq!(got, want, "{}: list with matcher", self.ctx());
            }
        }
        Ok(())
    }

    fn range(
        &self,
        s: usize,
        from: i64,
        to: i64,
        agg: Option<Aggregation>,
        bucket: i64,
        limit: usize,
    ) -> R {
        let key = &self.keys[s];
        let mut got = Vec::new();
        let mut cursor = from;
        let mut pages = 0;
        loop {
            let q = RangeQuery {
                from: cursor,
                to,
                agg,
                bucket_ms: bucket,
                limit,
            };
            let page = self
                .ts()
                .range(key, &q)
                .map_err(|e| TestCaseError::fail(format!("{}: range: {e}", self.ctx())))?;
            let Some(page) = page else {
                prop_assert!(!self.model.series.contains_key(&s), "{}: lost", self.ctx());
                return Ok(());
            };
            got.extend(page.points);
            pages += 1;
            match page.next_from {
                Some(n) => {
                    prop_assert!(n >= cursor && pages < 10_000);
                    cursor = n;
                }
                None => break,
            }
        }
        let m = self.model.series.get(&s).cloned().unwrap_or_default();
        let pts: Vec<Point> = m
            .points
            .range(from..=to)
            .map(|(&ts, &value)| Point { ts, value })
            .collect();
        let want = aggregate::page(pts.into_iter().map(Ok), agg, bucket, usize::MAX)
            .unwrap()
            .points;
        prop_assert_eq!(
            bits(&got),
            bits(&want),
            "{}: range {} [{}, {}] {:?} bucket {} limit {}",
            self.ctx(),
            key,
            from,
            to,
            agg,
            bucket,
            limit
        );
        Ok(())
    }
}

fn bits(p: &[Point]) -> Vec<(i64, u64)> {
    p.iter().map(|p| (p.ts, p.value.to_bits())).collect()
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(Config { cases: cases(), ..Config::default() })]

    #[test]
    fn time_series_match_the_model(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..60)) {
        let mut h = Harness::new(seed, false)?;
        for (i, op) in ops.iter().enumerate() {
            h.step = i;
            h.run(op)?;
        }
        h.close(true)?;
    }
}

proptest! {
    #![proptest_config(Config { cases: cases().div_ceil(4), ..Config::default() })]

    #[test]
    fn time_series_match_the_model_on_disk(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..40)) {
        let mut h = Harness::new(seed, true)?;
        for (i, op) in ops.iter().enumerate() {
            h.step = i;
            h.run(op)?;
        }
        h.close(true)?;
    }
}

/// Writers overwrite the same timestamps round after round while the
/// sealer merges heads into chunks and readers read: a read never goes
/// back to an older value of a timestamp, and in the end every timestamp
/// holds its last write, before and after a reopen.
#[test]
fn overwrites_and_reads_race_the_sealer() {
    use cityhall::Durability;
    const ROUNDS: usize = 30;
    const TIMES: i64 = 60;
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let db = Db::open(
            dir.path(),
            Options {
                durability: Durability::Relaxed { interval_ms: 50 },
                ..Options::default()
            },
        )
        .unwrap();
        let ts = TimeSeries::open(
            db.clone(),
            TsOptions {
                head_points_max: 3,
                chunk_window_ms: 1000,
                chunk_points_max: 5,
                out_of_order_window_ms: i64::MAX,
                ..TsOptions::default()
            },
        )
        .unwrap();
        (db, ts)
    };
    let (db, ts) = open();
    let keys: Vec<SeriesKey> = (0..3)
        .map(|i| SeriesKey::parse(&format!("race{i}")).unwrap())
        .collect();
    let all = RangeQuery::raw(i64::MIN, i64::MAX);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for key in &keys {
            let ts = ts.clone();
            scope.spawn(move || {
                for round in 0..ROUNDS {
                    // Timestamps in a scrambled order, a few per add.
                    let order: Vec<i64> = (0..TIMES)
                        .map(|t| (t * 37 + round as i64) % TIMES)
                        .collect();
                    for part in order.chunks(7) {
                        let points: Vec<Point> = part
                            .iter()
                            .map(|&t| Point {
                                ts: t * 100,
                                value: round as f64,
                            })
                            .collect();
                        ts.add(&[SeriesPoints {
                            series: key,
                            points: &points,
                        }])
                        .unwrap();
                    }
                }
            });
        }
        let reader = scope.spawn(|| {
            let mut seen: BTreeMap<(usize, i64), f64> = BTreeMap::new();
            let mut reads = 0;
            while !stop.load(Ordering::SeqCst) || reads < 10 {
                for (i, key) in keys.iter().enumerate() {
                    let Some(page) = ts.range(key, &all).unwrap() else {
                        continue;
                    };
                    for p in page.points {
                        let before = seen.insert((i, p.ts), p.value).unwrap_or(-1.0);
                        assert!(
                            p.value >= before,
                            "{key} at {}: read {} after {before}",
                            p.ts,
                            p.value
                        );
                    }
                }
                reads += 1;
            }
            reads
        });
        // Writers are the other scoped threads; wait for them by polling
        // the values instead of joining (the scope joins them at its end).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if std::time::Instant::now() > deadline {
                stop.store(true, Ordering::SeqCst);
                let now: Vec<_> = keys.iter().map(|k| ts.range(k, &all).unwrap()).collect();
                panic!("the last writes never all became visible: {now:?}");
            }
            let done = keys.iter().all(|k| {
                ts.range(k, &all).unwrap().is_some_and(|p| {
                    p.points.len() == TIMES as usize
                        && p.points.iter().all(|q| q.value == (ROUNDS - 1) as f64)
                })
            });
            if done {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        stop.store(true, Ordering::SeqCst);
        assert!(reader.join().unwrap() >= 10);
    });
    let check = |ts: &TimeSeries| {
        for key in &keys {
            let page = ts.range(key, &all).unwrap().unwrap();
            let want: Vec<(i64, f64)> =
                (0..TIMES).map(|t| (t * 100, (ROUNDS - 1) as f64)).collect();
            let got: Vec<(i64, f64)> = page.points.iter().map(|p| (p.ts, p.value)).collect();
            assert_eq!(got, want, "{key}");
        }
    };
    ts.seal_all().unwrap();
    check(&ts);
    ts.close();
    db.close().unwrap();
    let (db, ts) = open();
    check(&ts);
    ts.close();
    db.close().unwrap();
}
