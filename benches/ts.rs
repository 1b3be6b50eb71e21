//! Time-series benchmarks (criterion): the chunk codec, ingest through the
//! library on a real database, and range queries with aggregation; and,
//! printed before them, bytes per point at rest after sealing and
//! compaction.
//!
//! The data is shaped like the TSBS "cpu-only" devops workload: per host
//! ten fields (`usage_user` ... `usage_guest_nice`), one point per field
//! every 10 s, each an independent random walk starting uniform in
//! [0, 100), stepping by a standard normal draw, clamped to [0, 100],
//! emitted truncated to an integer.
//!
//! ```text
//! cargo bench --bench ts                      # everything
//! cargo bench --bench ts -- chunk             # one group
//! CITYHALL_TS_HOSTS=100 cargo bench --bench ts -- at_rest   # 8.64 M points
//! ```
//! `CITYHALL_BENCH_DIR` puts the databases on a given file system
//! (default: the system temp directory). Durability is the default
//! (`sync`): every add is acknowledged once fsynced.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BatchSize, Criterion, Throughput};

use cityhall::metrics::MetricValue;
use cityhall::ts::chunk;
use cityhall::ts::{
    Aggregation, Point, RangeQuery, SeriesKey, SeriesPoints, TimeSeries, TsOptions,
};
use cityhall::{Db, Options};

const FIELDS: [&str; 10] = [
    "usage_user",
    "usage_system",
    "usage_idle",
    "usage_nice",
    "usage_iowait",
    "usage_irq",
    "usage_softirq",
    "usage_steal",
    "usage_guest",
    "usage_guest_nice",
];
const STEP_MS: i64 = 10_000;
const DAY_MS: i64 = 86_400_000;
/// 2016-01-01T00:00:00Z, where TSBS starts by default.
const T0: i64 = 1_451_606_400_000;

/// xorshift64* with a Box-Muller normal.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// The TSBS-shaped workload: `hosts` x 10 random walks.
struct Workload {
    keys: Vec<SeriesKey>,
    walks: Vec<f64>,
    rng: Rng,
    step: i64,
}

impl Workload {
    fn new(hosts: usize, seed: u64) -> Self {
        let mut keys = Vec::new();
        for h in 0..hosts {
            for f in FIELDS {
                let host = format!("host_{h}");
                keys.push(
                    SeriesKey::new(&format!("cpu.{f}"), &[("hostname", host.as_str())]).unwrap(),
                );
            }
        }
        let mut rng = Rng(seed | 1);
        let walks = keys.iter().map(|_| rng.uniform() * 100.0).collect();
        Workload {
            keys,
            walks,
            rng,
            step: 0,
        }
    }

    /// The next `steps` points of every series.
    fn next(&mut self, steps: usize) -> Vec<Vec<Point>> {
        let mut out = vec![Vec::with_capacity(steps); self.keys.len()];
        for _ in 0..steps {
            let ts = T0 + self.step * STEP_MS;
            self.step += 1;
            for (i, w) in self.walks.iter_mut().enumerate() {
                *w = (*w + self.rng.normal()).clamp(0.0, 100.0);
                out[i].push(Point {
                    ts,
                    value: w.trunc(),
                });
            }
        }
        out
    }

    fn add(&mut self, ts: &TimeSeries, steps: usize) -> usize {
        let points = self.next(steps);
        let batch: Vec<SeriesPoints<'_>> = self
            .keys
            .iter()
            .zip(&points)
            .map(|(k, p)| SeriesPoints {
                series: k,
                points: p,
            })
            .collect();
        ts.add(&batch).unwrap();
        points.iter().map(Vec::len).sum()
    }
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("CITYHALL_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

fn open(dir: &std::path::Path) -> (Db, TimeSeries) {
    let db = Db::open(dir, Options::default()).unwrap();
    let ts = TimeSeries::open(db.clone(), TsOptions::default()).unwrap();
    (db, ts)
}

fn gauge(db: &Db, name: &str) -> f64 {
    match db.metrics().get(name) {
        Some(MetricValue::Gauge(v)) => *v,
        Some(MetricValue::Counter(v)) => *v as f64,
        _ => 0.0,
    }
}

/// Whether this is a real bench run (not `cargo test --benches`).
fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Loads a day of the workload, seals, compacts, and prints bytes per
/// point in tables and the ingest rate.
fn at_rest() {
    let hosts: usize = std::env::var("CITYHALL_TS_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let (hosts, span) = if full_run() {
        (hosts, DAY_MS)
    } else {
        (1, DAY_MS / 24)
    };
    let dir = bench_dir();
    let (db, ts) = open(dir.path());
    let mut w = Workload::new(hosts, 42);
    let steps_total = (span / STEP_MS) as usize;
    // One add per 100 steps of every series: 1,000 points per host.
    let per_add = 100;
    let start = Instant::now();
    let mut points = 0;
    let mut done = 0;
    while done < steps_total {
        let n = per_add.min(steps_total - done);
        points += w.add(&ts, n);
        done += n;
    }
    let ingest = start.elapsed();
    ts.seal_all().unwrap();
    db.compact_range(None, None).unwrap();
    let table_bytes = gauge(&db, "db.table_bytes");
    let mut m = cityhall::metrics::MetricsSnapshot::default();
    ts.report(&mut m);
    let chunk_bpp = match m.get("ts.chunk_bytes_per_point") {
        Some(MetricValue::Gauge(v)) => *v,
        _ => 0.0,
    };
    println!(
        "at_rest: {hosts} hosts x 10 fields x {} steps = {points} points; ingest {:.0} points/s \
         ({} adds of {} points, durable); after seal + compaction {table_bytes:.0} table bytes = \
         {:.3} bytes/point (chunk values alone, last written: {chunk_bpp:.3})",
        steps_total,
        points as f64 / ingest.as_secs_f64(),
        steps_total.div_ceil(per_add),
        per_add * hosts * 10,
        table_bytes / points as f64,
    );
    ts.close();
    db.close().unwrap();
}

fn chunk_codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("chunk");
    let mut w = Workload::new(1, 7);
    let int_points = w.next(720).swap_remove(0);
    let mut rng = Rng(99);
    let mut v = 50.0;
    let float_points: Vec<Point> = (0..720)
        .map(|i| {
            v += rng.normal();
            Point {
                ts: T0 + i * STEP_MS + (rng.next() % 5) as i64,
                value: v,
            }
        })
        .collect();
    for (name, points) in [
        ("tsbs_int_720", &int_points),
        ("float_walk_720", &float_points),
    ] {
        let mut enc = Vec::new();
        chunk::encode(points, &mut enc).unwrap();
        println!(
            "chunk {name}: {} bytes for {} points = {:.3} bytes/point",
            enc.len(),
            points.len(),
            enc.len() as f64 / points.len() as f64
        );
        g.throughput(Throughput::Elements(points.len() as u64));
        g.bench_function(format!("encode/{name}"), |b| {
            let mut out = Vec::with_capacity(4096);
            b.iter(|| {
                out.clear();
                chunk::encode(black_box(points), &mut out).unwrap();
            })
        });
        g.bench_function(format!("decode/{name}"), |b| {
            let mut out = Vec::with_capacity(1024);
            b.iter(|| {
                out.clear();
                chunk::decode_into(black_box(&enc), &mut out).unwrap();
            })
        });
    }
    g.finish();
}

fn ingest(c: &mut Criterion) {
    let mut g = c.benchmark_group("ingest");
    g.measurement_time(Duration::from_secs(if full_run() { 10 } else { 1 }));
    for (hosts, steps) in [(10usize, 10usize), (10, 100)] {
        let dir = bench_dir();
        let (db, ts) = open(dir.path());
        let mut w = Workload::new(hosts, 3);
        let n = (hosts * 10 * steps) as u64;
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("library_durable/{n}_points_per_add"), |b| {
            b.iter(|| w.add(&ts, steps))
        });
        ts.close();
        db.close().unwrap();
    }
    g.finish();
}

fn query(c: &mut Criterion) {
    let mut g = c.benchmark_group("query");
    let dir = bench_dir();
    let (db, ts) = open(dir.path());
    let mut w = Workload::new(10, 5);
    let steps = (DAY_MS / STEP_MS) as usize;
    let mut done = 0;
    while done < steps {
        w.add(&ts, 360.min(steps - done));
        done += 360;
    }
    ts.seal_all().unwrap();
    db.compact_range(None, None).unwrap();
    let key = w.keys[0].clone();
    let day = |agg, bucket_ms| RangeQuery {
        from: T0,
        to: T0 + DAY_MS - 1,
        agg,
        bucket_ms,
        limit: 100_000,
    };
    g.bench_function("one_series_day_raw", |b| {
        b.iter(|| {
            let p = ts.range(&key, &day(None, 0)).unwrap().unwrap();
            assert_eq!(p.points.len(), steps);
        })
    });
    g.bench_function("one_series_day_hourly_avg", |b| {
        b.iter(|| {
            let p = ts
                .range(&key, &day(Some(Aggregation::Avg), 3_600_000))
                .unwrap()
                .unwrap();
            assert_eq!(p.points.len(), 24);
        })
    });
    g.bench_function("count_all_100_series_day", |b| {
        b.iter(|| {
            let mut total = 0.0;
            for k in &w.keys {
                let p = ts
                    .range(k, &day(Some(Aggregation::Count), 0))
                    .unwrap()
                    .unwrap();
                total += p.points[0].value;
            }
            assert_eq!(total as usize, steps * 100);
        })
    });
    g.bench_function("latest", |b| {
        b.iter_batched(
            || (),
            |()| ts.latest(&key).unwrap().unwrap().unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
    ts.close();
    db.close().unwrap();
}

criterion_group!(benches, chunk_codec, ingest, query);

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if filter.is_empty() || filter.iter().any(|f| "at_rest".contains(f.as_str())) {
        at_rest();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
