#![allow(clippy::unwrap_used)]
//! Compaction end to end on the real file system: overwrites keep only
//! the newest data, levels stay well formed, snapshots survive compaction,
//! and deleting everything then compacting gives the space back.

use cityhall::compaction::CompactionOptions;
use cityhall::metrics::MetricValue;
use cityhall::{Db, Options, WriteBatch};

fn small_options() -> Options {
    Options {
        wal_segment_size_bytes: 256 << 10,
        memtable_size_bytes_max: 64 << 10,
        compaction: CompactionOptions {
            level0_file_num_compaction_trigger: 2,
            max_bytes_for_level_base: 256 << 10,
            target_file_size_bytes: 64 << 10,
            ..CompactionOptions::default()
        },
        ..Options::default()
    }
}

fn counter(db: &Db, name: &str) -> u64 {
    match db.metrics().get(name) {
        Some(MetricValue::Counter(c)) => *c,
        other => panic!("{name}: {other:?}"),
    }
}

fn gauge(db: &Db, name: &str) -> f64 {
    match db.metrics().get(name) {
        Some(MetricValue::Gauge(g)) => *g,
        other => panic!("{name}: {other:?}"),
    }
}

/// 100 bytes that Snappy cannot shrink much, different per key and round.
fn value(key: u32, round: u32) -> Vec<u8> {
    let mut x = u64::from(key) << 32 | u64::from(round) | 1;
    (0..100)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn overwrites_compact_and_snapshots_survive() {
    let dir = tempfile::tempdir().unwrap();
    let keys = 2000u32;
    let db = Db::open(dir.path(), small_options()).unwrap();
    let mut snapshot = None;
    for round in 0..6u32 {
        let mut batch = WriteBatch::new();
        for k in 0..keys {
            batch.put(format!("key{k:06}").into_bytes(), value(k, round));
            if batch.len() == 100 {
                db.write(std::mem::take(&mut batch)).unwrap();
            }
        }
        if round == 1 {
            snapshot = Some(db.snapshot());
        }
    }
    db.compact_range(None, None).unwrap();
    assert!(counter(&db, "compaction.count") > 0, "no compaction ran");
    let snap = snapshot.unwrap();
    for k in (0..keys).step_by(37) {
        let key = format!("key{k:06}");
        assert_eq!(db.get(key.as_bytes()).unwrap(), Some(value(k, 5)));
        assert_eq!(
            snap.get(key.as_bytes()).unwrap(),
            Some(value(k, 1)),
            "{key} at snapshot"
        );
    }
    let all = db.scan(b"", None, usize::MAX).unwrap();
    assert_eq!(all.len(), keys as usize);
    assert!(gauge(&db, "level0.files") <= 1.0);
    drop(snap);
    db.close().unwrap();
    let report = cityhall::check::check_dir(&cityhall::io::plain::PlainFs::new(), dir.path());
    assert!(report.ok(), "{:?}", report.problems);
    let db = Db::open(dir.path(), small_options()).unwrap();
    assert_eq!(db.get(b"key000007").unwrap(), Some(value(7, 5)));
}

/// Bytes of the files in `dir` whose names end with `suffix`.
fn file_bytes(dir: &std::path::Path, suffix: &str) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
        // A file the engine removes meanwhile counts for nothing.
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn deleting_everything_then_compacting_returns_the_space() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        wal_idle_segment_size_bytes: 16 << 10,
        ..small_options()
    };
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    let keys = 3000u32;
    let mut batch = WriteBatch::new();
    for k in 0..keys {
        batch.put(format!("key{k:06}").into_bytes(), value(k, 0));
        if batch.len() == 100 {
            db.write(std::mem::take(&mut batch)).unwrap();
        }
    }
    db.compact_range(None, None).unwrap();
    let full = gauge(&db, "db.table_bytes");
    assert!(full > 100_000.0, "tables hold {full} bytes");
    for k in 0..keys {
        batch.delete(format!("key{k:06}").into_bytes());
        if batch.len() == 100 {
            db.write(std::mem::take(&mut batch)).unwrap();
        }
    }
    db.compact_range(None, None).unwrap();
    let left = gauge(&db, "db.table_bytes");
    assert!(
        left < full / 50.0,
        "{left} of {full} bytes left after deleting everything"
    );
    assert!(db.scan(b"", None, 10).unwrap().is_empty());
    // The log came to rest in one idle segment: no full segment, no
    // spare readied for writes that did not come.
    // The flush thread removes the covered segments just after the
    // flush returns: give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut wal = file_bytes(dir.path(), ".log");
    while wal != 16 << 10 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
        wal = file_bytes(dir.path(), ".log");
    }
    assert_eq!(wal, 16 << 10, "{wal} bytes of WAL left at rest");
    db.close().unwrap();
    let sst = file_bytes(dir.path(), ".sst");
    assert!(
        (sst as f64) < full / 50.0,
        "{sst} bytes of table files left on disk"
    );
    let all = file_bytes(dir.path(), "");
    assert!(all < 64 << 10, "{all} bytes left in the directory");

    // Writes after the rest roll out of the idle segment into full ones,
    // and nothing is lost across a reopen.
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    for k in 0..keys {
        batch.put(format!("key{k:06}").into_bytes(), value(k, 1));
        if batch.len() == 100 {
            db.write(std::mem::take(&mut batch)).unwrap();
        }
    }
    assert!(counter(&db, "wal.segments_rolled") >= 1);
    db.close().unwrap();
    let db = Db::open(dir.path(), opts).unwrap();
    for k in (0..keys).step_by(97) {
        let key = format!("key{k:06}");
        assert_eq!(db.get(key.as_bytes()).unwrap(), Some(value(k, 1)), "{key}");
    }
    assert_eq!(db.scan(b"", None, 10_000).unwrap().len(), keys as usize);
}

/// Once the writes pause, what L0 and the upper levels hold goes down to
/// the last level by itself (the idle compaction), and the data is intact.
#[test]
fn idle_compaction_brings_space_amplification_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = small_options();
    // L0 never fills by count here: only the idle compaction empties it.
    opts.compaction.level0_file_num_compaction_trigger = 100;
    opts.compaction.level0_slowdown_writes_trigger = 200;
    opts.compaction.level0_stop_writes_trigger = 300;
    opts.compaction.max_bytes_for_level_base = 1 << 30;
    opts.compaction.idle_compaction_delay_ms = 50;
    let db = Db::open(dir.path(), opts).unwrap();
    let keys = 1000u32;
    let write_round = |round: u32| {
        let mut batch = WriteBatch::new();
        for k in 0..keys {
            batch.put(format!("key{k:06}").into_bytes(), value(k, round));
        }
        db.write(batch).unwrap();
        db.flush().unwrap();
    };
    write_round(0);
    db.compact_range(None, None).unwrap();
    for round in 1..4 {
        write_round(round);
    }
    // Three overwrites of everything in L0 over one version at the bottom.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while counter(&db, "compaction.idle_runs") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no idle compaction; L0 holds {} files, space amplification {}",
            gauge(&db, "level0.files"),
            gauge(&db, "db.space_amplification")
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(gauge(&db, "level0.files"), 0.0);
    let amp = gauge(&db, "db.space_amplification");
    assert!(
        amp <= 1.2,
        "space amplification {amp} after the idle compaction"
    );
    for k in (0..keys).step_by(97) {
        let key = format!("key{k:06}").into_bytes();
        assert_eq!(db.get(&key).unwrap(), Some(value(k, 3)));
    }
    // Done once: with nothing new written it does not run again.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(counter(&db, "compaction.idle_runs"), 1);
    db.close().unwrap();
}

/// Table files on disk.
fn sst_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".sst")
        })
        .count()
}

#[test]
fn tables_replaced_under_readers_are_deleted_once_the_readers_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small_options()).unwrap();
    for round in 0..3u32 {
        let mut batch = WriteBatch::new();
        for k in 0..2000u32 {
            batch.put(format!("key{k:06}").into_bytes(), value(k, round));
        }
        db.write(batch).unwrap();
        db.flush().unwrap();
    }
    // Readers hold versions while compactions replace their tables; a
    // replaced table a reader held at that moment must still go once the
    // readers are done, without waiting for some later compaction.
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    db.scan(b"key000100", Some(b"key000900"), 800).unwrap();
                }
            });
        }
        for _ in 0..3 {
            db.compact_range(None, None).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let live = |db: &Db| {
        (0..7)
            .map(|l| gauge(db, &format!("level{l}.files")) as usize)
            .sum::<usize>()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while sst_files(dir.path()) != live(&db) {
        assert!(
            std::time::Instant::now() < deadline,
            "{} table files on disk, {} live",
            sst_files(dir.path()),
            live(&db)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    db.close().unwrap();
}
