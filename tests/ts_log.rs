#![allow(clippy::unwrap_used)]
//! The time-series log (one record `ts/l/<seq>` per add, heads in memory,
//! seals that carry a per-series watermark, records deleted once no head
//! needs them) under power cuts on the simulated file system: a crash at
//! every sync point of adds and seals, including between a seal and the
//! deletion of the records it covered, must lose no acknowledged point and
//! count none twice (`sum` series); deleted and expired points stay gone
//! whatever records are replayed; a damaged record is a clear error; the
//! log budget keeps the live records bounded by sealing early, even with
//! a head that cannot be sealed; head keys of the previous format move
//! into the log.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cityhall::io::sim::{CrashMode, SimFs, SyncPoint};
use cityhall::metrics::{MetricValue, MetricsSnapshot};
use cityhall::ts::{DupPolicy, Point, RangeQuery, SeriesKey, SeriesPoints, TimeSeries, TsOptions};
use cityhall::{Db, Error, Options};

const DIR: &str = "/db";

fn db_options(fs: &SimFs) -> Options {
    Options {
        fs: Some(Arc::new(fs.clone())),
        wal_prepare_background: false,
        wal_segment_size_bytes: 256 << 10,
        memtable_size_bytes_max: 64 << 10,
        ..Options::default()
    }
}

fn ts_options() -> TsOptions {
    TsOptions {
        head_points_max: 6,
        chunk_window_ms: 1000,
        chunk_points_max: 8,
        out_of_order_window_ms: i64::MAX,
        ..TsOptions::default()
    }
}

fn keys(n: usize) -> Vec<SeriesKey> {
    (0..n)
        .map(|i| SeriesKey::parse(&format!("log.s{i}{{k=v{}}}", i % 3)).unwrap())
        .collect()
}

type Model = Vec<BTreeMap<i64, f64>>;

fn read_all(ts: &TimeSeries, key: &SeriesKey) -> cityhall::Result<Vec<(i64, f64)>> {
    let q = RangeQuery::raw(i64::MIN, i64::MAX);
    Ok(ts
        .range(key, &q)?
        .map(|p| p.points.iter().map(|p| (p.ts, p.value)).collect())
        .unwrap_or_default())
}

fn gauge(ts: &TimeSeries, name: &str) -> f64 {
    let mut m = MetricsSnapshot::default();
    ts.report(&mut m);
    match m.get(name) {
        Some(MetricValue::Gauge(g)) => *g,
        Some(MetricValue::Counter(c)) => *c as f64,
        other => panic!("metric {name}: {other:?}"),
    }
}

/// Keys and value sizes under `prefix` in `db`.
fn prefix_bytes(db: &Db, prefix: &[u8]) -> (usize, usize) {
    let all = db.scan_prefix(prefix, 1_000_000).unwrap();
    (all.len(), all.iter().map(|(_, v)| v.len()).sum())
}

/// The adds of the workload: round `r` gives every series a point at
/// `r * 250` (windows of 1 s close every 4 rounds) and, for `sum` to
/// combine, the point of round `r - 2` again with value 1.
fn round(keys: &[SeriesKey], r: i64) -> Vec<(usize, Vec<Point>)> {
    (0..keys.len())
        .map(|i| {
            let mut pts = vec![Point {
                ts: r * 250,
                value: (r * 10 + i as i64) as f64,
            }];
            if r >= 2 {
                pts.push(Point {
                    ts: (r - 2) * 250,
                    value: 1.0,
                });
            }
            (i, pts)
        })
        .collect()
}

fn apply(model: &mut Model, add: &[(usize, Vec<Point>)]) {
    for (i, pts) in add {
        for p in pts {
            *model[*i].entry(p.ts).or_insert(0.0) += p.value;
        }
    }
}

/// What a crash image must hold: the model after `acked` adds, or (the
/// add in flight) after one more.
struct Image {
    fs: SimFs,
    acked: usize,
    at_sync: u64,
}

fn check_image(
    img: &Image,
    keys: &[SeriesKey],
    states: &[Model],
) -> Result<(usize, usize), String> {
    let db = Db::open(DIR, db_options(&img.fs)).map_err(|e| format!("db open: {e}"))?;
    let (log_records, _) = prefix_bytes(&db, b"ts/l/");
    let (chunks, _) = prefix_bytes(&db, b"ts/c/");
    let ts = TimeSeries::open(db.clone(), ts_options()).map_err(|e| format!("ts open: {e}"))?;
    let mut got: Vec<Vec<(i64, f64)>> = Vec::new();
    for k in keys {
        got.push(read_all(&ts, k).map_err(|e| format!("range {k}: {e}"))?);
    }
    ts.close();
    let _ = db.close();
    let want = |m: &Model| -> Vec<Vec<(i64, f64)>> {
        m.iter()
            .map(|s| s.iter().map(|(&t, &v)| (t, v)).collect())
            .collect()
    };
    let ok = [img.acked, img.acked + 1]
        .iter()
        .filter_map(|&n| states.get(n))
        .any(|m| want(m) == got);
    if ok {
        Ok((log_records, chunks))
    } else {
        let expect = states.get(img.acked).map(want).unwrap_or_default();
        let diff = keys
            .iter()
            .zip(expect.iter().zip(&got))
            .find(|(_, (w, g))| w != g)
            .map(|(k, (w, g))| format!("{k}: want {w:?}\n got {g:?}"))
            .unwrap_or_default();
        Err(format!(
            "crash at sync {} after {} acknowledged adds: {diff}",
            img.at_sync, img.acked
        ))
    }
}

/// Runs `rounds` rounds of the workload over `n` series of policy `sum`,
/// deleting the older points of every other series half-way, then seals
/// everything, taking a crash image at every sync point from the first
/// `sum` add on; checks each image reopened.
fn crash_everywhere(n: usize, rounds: i64, seed: u64) -> Vec<(usize, usize)> {
    let keys = keys(n);
    let sim = SimFs::new(seed);
    let acked = Arc::new(Mutex::new(0usize));
    let images: Arc<Mutex<Vec<Image>>> = Arc::default();
    let db = Db::open(DIR, db_options(&sim)).unwrap();
    let ts = TimeSeries::open(db.clone(), ts_options()).unwrap();
    let mut model: Model = vec![BTreeMap::new(); n];
    let mut states = vec![model.clone()];
    let add = |ts: &TimeSeries, a: &[(usize, Vec<Point>)]| {
        let batch: Vec<SeriesPoints<'_>> = a
            .iter()
            .map(|(i, pts)| SeriesPoints {
                series: &keys[*i],
                points: pts,
            })
            .collect();
        ts.add(&batch).unwrap();
    };
    // Round 0 creates the series; then they all sum duplicates.
    let first = round(&keys, 0);
    add(&ts, &first);
    for k in &keys {
        assert!(ts.set_policy(k, DupPolicy::Sum).unwrap());
    }
    apply(&mut model, &first);
    let base = states.len() - 1;
    states[base] = model.clone();
    *acked.lock().unwrap() = 0;
    {
        let (acked, images) = (Arc::clone(&acked), Arc::clone(&images));
        sim.set_sync_hook(Some(Arc::new(move |at: u64, p: &mut SyncPoint<'_>| {
            let fs = p.crash_image(CrashMode::DropUnsynced);
            images.lock().unwrap().push(Image {
                fs,
                acked: *acked.lock().unwrap(),
                at_sync: at,
            });
        })));
    }
    for r in 1..rounds {
        let a = round(&keys, r);
        apply(&mut model, &a);
        states.push(model.clone());
        add(&ts, &a);
        *acked.lock().unwrap() += 1;
        if r == rounds / 2 {
            // Deleted points must stay deleted whatever log records are
            // replayed: the watermark written by the delete's seal.
            for (i, k) in keys.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
                let to = (r - 3) * 250;
                model[i].retain(|&t, _| t > to);
                states.push(model.clone());
                assert!(ts.delete_range(k, 0, to).unwrap());
                *acked.lock().unwrap() += 1;
            }
        }
    }
    ts.seal_all().unwrap();
    sim.set_sync_hook(None);
    // The live process reads the model too.
    for (i, k) in keys.iter().enumerate() {
        let want: Vec<(i64, f64)> = model[i].iter().map(|(&t, &v)| (t, v)).collect();
        assert_eq!(read_all(&ts, k).unwrap(), want, "{k}");
    }
    ts.close();
    db.close().unwrap();
    let images = std::mem::take(&mut *images.lock().unwrap());
    assert!(images.len() as i64 > rounds, "{} sync points", images.len());
    images
        .iter()
        .map(|img| check_image(img, &keys, &states).unwrap_or_else(|e| panic!("seed {seed}: {e}")))
        .collect()
}

#[test]
fn a_crash_between_a_seal_and_the_log_trim_counts_no_point_twice() {
    let seen = crash_everywhere(3, 10, 1);
    // Some crash images hold both chunks and the log records they cover
    // (the seal durable, the trim not): exactly the case the watermark is
    // for; and the seals did trim the log at some point.
    assert!(
        seen.iter().any(|&(logs, chunks)| logs > 0 && chunks > 0),
        "{seen:?}"
    );
}

#[test]
fn a_crash_with_many_series_partly_sealed_loses_and_doubles_nothing() {
    let seen = crash_everywhere(24, 14, 7);
    assert!(seen.iter().any(|&(_, chunks)| chunks > 0), "{seen:?}");
}

#[test]
fn a_damaged_log_record_is_a_corruption_naming_its_key() {
    let sim = SimFs::new(3);
    let keys = keys(2);
    {
        let db = Db::open(DIR, db_options(&sim)).unwrap();
        let ts = TimeSeries::open(db.clone(), ts_options()).unwrap();
        for k in &keys {
            ts.add(&[SeriesPoints {
                series: k,
                points: &[Point { ts: 5, value: 1.5 }],
            }])
            .unwrap();
        }
        ts.close();
        // Damage one record's value as a bad disk block under the engine's
        // own checks would not: its own checksum must catch it.
        let logs = db.scan_prefix(b"ts/l/", 10).unwrap();
        assert_eq!(logs.len(), 2);
        let (k, mut v) = logs[1].clone();
        let last = v.len() - 1;
        v[last] ^= 0x40;
        db.put(&k, &v).unwrap();
        db.close().unwrap();
    }
    let db = Db::open(DIR, db_options(&sim)).unwrap();
    let e = TimeSeries::open(db.clone(), ts_options()).unwrap_err();
    assert!(matches!(e, Error::Corruption { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("ts/l/"), "{msg}");
    assert!(msg.contains("checksum"), "{msg}");
}

#[test]
fn the_log_budget_seals_early_and_keeps_the_log_bounded() {
    const BUDGET: u64 = 16 << 10;
    const SERIES: usize = 40;
    const ADDS: i64 = 300;
    let sim = SimFs::new(4);
    let keys = keys(SERIES);
    let opts = TsOptions {
        // Neither the point bound nor a window would seal anything.
        head_points_max: 1024,
        chunk_window_ms: 1 << 40,
        chunk_points_max: 1024,
        log_bytes_max: BUDGET,
        ..TsOptions::default()
    };
    let db = Db::open(DIR, db_options(&sim)).unwrap();
    let ts = TimeSeries::open(db.clone(), opts.clone()).unwrap();
    let mut record_max = 0.0f64;
    let mut live_max = 0.0f64;
    let mut refused = 0;
    for r in 0..ADDS {
        let pts: Vec<Vec<Point>> = (0..SERIES)
            .map(|i| {
                vec![Point {
                    ts: r * 1000,
                    value: (r * 7 + i as i64) as f64,
                }]
            })
            .collect();
        let batch: Vec<SeriesPoints<'_>> = keys
            .iter()
            .zip(&pts)
            .map(|(k, p)| SeriesPoints {
                series: k,
                points: p,
            })
            .collect();
        let before = gauge(&ts, "ts.log_bytes");
        loop {
            match ts.add(&batch) {
                Ok(()) => break,
                // Over twice the budget the add is refused until the
                // sealer catches up.
                Err(Error::LimitExceeded { what }) => {
                    assert!(what.contains("log_bytes_max"), "{what}");
                    refused += 1;
                    std::thread::yield_now();
                }
                Err(e) => panic!("add {r}: {e}"),
            }
        }
        let after = gauge(&ts, "ts.log_bytes");
        record_max = record_max.max(after - before);
        live_max = live_max.max(after);
    }
    // At most twice the budget plus the add that crossed it.
    let bound = 2.0 * BUDGET as f64 + record_max;
    assert!(live_max <= bound, "live log {live_max} bytes > {bound}");
    assert!(gauge(&ts, "ts.seals") > 0.0);
    let (_, on_disk) = prefix_bytes(&db, b"ts/l/");
    assert!(
        on_disk as f64 <= bound,
        "{on_disk} bytes of log records in the engine"
    );
    let (chunks, _) = prefix_bytes(&db, b"ts/c/");
    assert!(chunks > 0, "no chunk: the budget sealed nothing");
    let want = |i: usize| -> Vec<(i64, f64)> {
        (0..ADDS)
            .map(|r| (r * 1000, (r * 7 + i as i64) as f64))
            .collect()
    };
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(read_all(&ts, k).unwrap(), want(i), "{k}");
    }
    eprintln!("live log max {live_max} bytes, {refused} adds refused once");
    // A power cut keeps exactly that.
    ts.close();
    drop(ts);
    sim.crash(CrashMode::DropUnsynced);
    let db = Db::open(DIR, db_options(&sim)).unwrap();
    let ts = TimeSeries::open(db.clone(), opts).unwrap();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(read_all(&ts, k).unwrap(), want(i), "{k} after the crash");
    }
}

#[test]
fn a_head_that_cannot_be_sealed_does_not_pin_the_log() {
    const BUDGET: u64 = 8 << 10;
    const SERIES: usize = 20;
    let sim = SimFs::new(5);
    let keys = keys(SERIES);
    let bad = SeriesKey::parse("log.bad").unwrap();
    let opts = TsOptions {
        head_points_max: 1024,
        chunk_window_ms: 1 << 40,
        chunk_points_max: 1024,
        out_of_order_window_ms: i64::MAX,
        log_bytes_max: BUDGET,
        ..TsOptions::default()
    };
    let db = Db::open(DIR, db_options(&sim)).unwrap();
    let ts = TimeSeries::open(db.clone(), opts.clone()).unwrap();
    let first: Vec<Point> = (0..10)
        .map(|t| Point {
            ts: t,
            value: t as f64,
        })
        .collect();
    ts.add(&[SeriesPoints {
        series: &bad,
        points: &first,
    }])
    .unwrap();
    ts.seal_all().unwrap();
    // Damage its chunk: every later seal of the series fails.
    let chunks = db.scan_prefix(b"ts/c/", 10).unwrap();
    assert_eq!(chunks.len(), 1);
    db.put(&chunks[0].0, b"not a chunk").unwrap();
    let mut live_max = 0.0f64;
    let mut record_max = 0.0f64;
    for r in 0..300i64 {
        let mut pts: Vec<Vec<Point>> = (0..SERIES)
            .map(|i| {
                vec![Point {
                    ts: 100 + r,
                    value: (r + i as i64) as f64,
                }]
            })
            .collect();
        pts.push(vec![Point {
            ts: 100 + r,
            value: 1.0,
        }]);
        let batch: Vec<SeriesPoints<'_>> = keys
            .iter()
            .chain([&bad])
            .zip(&pts)
            .map(|(k, p)| SeriesPoints {
                series: k,
                points: p,
            })
            .collect();
        let before = gauge(&ts, "ts.log_bytes");
        let mut refusals = 0u64;
        loop {
            match ts.add(&batch) {
                Ok(()) => break,
                Err(Error::LimitExceeded { what }) => {
                    assert!(what.contains("log_bytes_max"), "{what}");
                    refusals += 1;
                    // Refused for good would mean the log is pinned.
                    assert!(
                        refusals < 1_000_000,
                        "add {r} refused {refusals} times: {what}"
                    );
                    std::thread::yield_now();
                }
                Err(e) => panic!("add {r}: {e}"),
            }
        }
        let after = gauge(&ts, "ts.log_bytes");
        record_max = record_max.max(after - before);
        live_max = live_max.max(after);
    }
    assert!(gauge(&ts, "ts.maintenance_errors") > 0.0, "no seal failed");
    let bound = 2.0 * BUDGET as f64 + record_max;
    assert!(live_max <= bound, "live log {live_max} bytes > {bound}");
    let (_, on_disk) = prefix_bytes(&db, b"ts/l/");
    assert!(on_disk as f64 <= bound, "{on_disk} bytes of log records");
    let want = |i: usize| -> Vec<(i64, f64)> {
        (0..300).map(|r| (100 + r, (r + i as i64) as f64)).collect()
    };
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(read_all(&ts, k).unwrap(), want(i), "{k}");
    }
    // The damaged series answers with the corruption, not wrong data.
    assert!(matches!(read_all(&ts, &bad), Err(Error::Corruption { .. })));
    // After a power cut the carried points are still there.
    ts.close();
    drop(ts);
    sim.crash(CrashMode::DropUnsynced);
    let db = Db::open(DIR, db_options(&sim)).unwrap();
    let ts = TimeSeries::open(db.clone(), opts).unwrap();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(read_all(&ts, k).unwrap(), want(i), "{k} after the crash");
    }
    // Without the damaged chunk, the series holds exactly its head.
    db.delete(&chunks[0].0).unwrap();
    let head: Vec<(i64, f64)> = (0..300).map(|r| (100 + r, 1.0)).collect();
    assert_eq!(read_all(&ts, &bad).unwrap(), head);
}

static RETENTION_CLOCK: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

fn retention_clock() -> i64 {
    RETENTION_CLOCK.load(std::sync::atomic::Ordering::SeqCst)
}

/// A window sealed while a newer point keeps its log record live, then
/// dropped by retention: replaying that record after a power cut must not
/// bring the dropped point back.
#[test]
fn points_dropped_by_retention_stay_dropped_after_a_crash() {
    use cityhall::ts::Retention;
    let sim = SimFs::new(6);
    let opts = TsOptions {
        head_points_max: 100,
        chunk_window_ms: 10_000,
        out_of_order_window_ms: i64::MAX,
        clock: retention_clock,
        ..TsOptions::default()
    };
    let k = SeriesKey::parse("log.retained").unwrap();
    RETENTION_CLOCK.store(1_010_953, std::sync::atomic::Ordering::SeqCst);
    let db = Db::open(DIR, db_options(&sim)).unwrap();
    let ts = TimeSeries::open(db.clone(), opts.clone()).unwrap();
    // One record: a point in window [1,000,000, 1,010,000) and one in the
    // next; the head spans two windows, so the first is sealed alone and
    // the record stays live for the second.
    ts.add(&[SeriesPoints {
        series: &k,
        points: &[
            Point {
                ts: 1_010_000,
                value: 2.0,
            },
            Point {
                ts: 1_000_000,
                value: 1.0,
            },
        ],
    }])
    .unwrap();
    // Once sealed, the first window's chunk is in the engine.
    while prefix_bytes(&db, b"ts/c/").0 == 0 {
        std::thread::yield_now();
    }
    RETENTION_CLOCK.store(1_021_792, std::sync::atomic::Ordering::SeqCst);
    assert!(ts.set_retention(None, Retention::Ms(5_000)).unwrap());
    assert_eq!(read_all(&ts, &k).unwrap(), vec![(1_010_000, 2.0)]);
    ts.close();
    drop(ts);
    sim.crash(CrashMode::DropUnsynced);
    let db = Db::open(DIR, db_options(&sim)).unwrap();
    let ts = TimeSeries::open(db, opts).unwrap();
    assert_eq!(read_all(&ts, &k).unwrap(), vec![(1_010_000, 2.0)]);
}

/// A database of the previous format (catalog records of version 1, a
/// head key `ts/p/<id><ts>` per unsealed point) opens with its points, the
/// head keys moved into one log record, and survives a power cut after.
#[test]
fn head_keys_of_the_previous_format_move_into_the_log() {
    let sim = SimFs::new(8);
    let ts_key = |t: i64| ((t as u64) ^ (1 << 63)).to_be_bytes();
    {
        let db = Db::open(DIR, db_options(&sim)).unwrap();
        let id = 3u64;
        let mut record = vec![1u8, DupPolicy::Sum as u8];
        record.extend_from_slice(&(-1i64).to_le_bytes());
        record.extend_from_slice(&i64::MIN.to_le_bytes());
        record.extend_from_slice(b"old{k=v}");
        db.put(b"ts/s/old{k=v}", &id.to_be_bytes()).unwrap();
        db.put(&[b"ts/i/".as_slice(), &id.to_be_bytes()].concat(), &record)
            .unwrap();
        db.put(b"ts/o/next_series_id", &4u64.to_le_bytes()).unwrap();
        for (t, v) in [(-5i64, 1.5f64), (7, -2.0), (9, 3.25)] {
            let k = [b"ts/p/".as_slice(), &id.to_be_bytes(), &ts_key(t)].concat();
            db.put(&k, &v.to_bits().to_le_bytes()).unwrap();
        }
        db.close().unwrap();
    }
    let want = vec![(-5, 1.5), (7, -2.0), (9, 3.25)];
    let k = SeriesKey::parse("old{k=v}").unwrap();
    let db = Db::open(DIR, db_options(&sim)).unwrap();
    let ts = TimeSeries::open(db.clone(), ts_options()).unwrap();
    assert_eq!(read_all(&ts, &k).unwrap(), want);
    assert_eq!(prefix_bytes(&db, b"ts/p/").0, 0, "head keys left");
    assert_eq!(prefix_bytes(&db, b"ts/l/").0, 1, "no log record");
    // Its policy came along: a second value at 7 is summed.
    ts.add(&[SeriesPoints {
        series: &k,
        points: &[Point { ts: 7, value: 1.0 }],
    }])
    .unwrap();
    ts.close();
    drop(ts);
    sim.crash(CrashMode::DropUnsynced);
    let db = Db::open(DIR, db_options(&sim)).unwrap();
    let ts = TimeSeries::open(db, ts_options()).unwrap();
    assert_eq!(
        read_all(&ts, &k).unwrap(),
        vec![(-5, 1.5), (7, -1.0), (9, 3.25)]
    );
}
