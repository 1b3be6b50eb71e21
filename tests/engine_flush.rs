#![allow(clippy::unwrap_used)]
//! Flushes: memtables written out as tables while the engine is in use.
//!
//! - `reads_under_concurrent_writes_and_flushes` (real file system): writer
//!   threads overwrite a fixed set of keys with increasing versions while
//!   tiny memtables make flushes run all the time; reader threads `get`
//!   and `scan` and check that no acknowledged write is ever missing, that
//!   the versions one reader sees for one key never go backwards, and that
//!   every value is exactly one that was written. A snapshot taken mid-run
//!   answers the same after many more writes and flushes.
//! - `model_with_flushes` (simulated file system, proptest): random
//!   operations against a `BTreeMap` model, with steps that force a flush
//!   and wait for it, scans with limits, snapshots read later, clean
//!   reopens, crashes (`SimFs::crash`), and crashes that land inside a
//!   flush (a failed sync, or durability frozen at the k-th sync, while a
//!   flush writes its table and its manifest edit). After every reopen:
//!   every acknowledged write is there, an unacknowledged one is all there
//!   or not at all, and no table the manifest does not name is left in the
//!   directory (`check_dir` finds no problem and no leftover).
//! - `flush_deletes_covered_segments_and_reopen_recovers` (real file
//!   system): once a memtable is flushed the WAL segments it covered are
//!   deleted, and a reopen recovers everything from tables plus the WAL
//!   that remains.
//!
//! Tests marked `BUG:` fail against the engine as it is; the comment above
//! each says what is wrong and where. `model_with_flushes` also fails until
//! that bug is fixed (it found it).
//!
//! The proptest prints the shrunk `seed` and `ops` on failure, and every
//! assertion message carries the seed and the index of the failing
//! operation. Cases: 64 by default, `PROPTEST_CASES` overrides. A seed
//! fixes every choice of the test and of `SimFs`; what it cannot fix is the
//! interleaving of the flush thread with the log owner, so a failure that
//! depends on which of them syncs first may need a few runs to reproduce.

mod model_support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cityhall::io::plain::PlainFs;
use cityhall::io::sim::{CrashMode, Op as FsOp, SimFs};
use cityhall::io::Fs;
use cityhall::wal::segment::parse_segment_name;
use cityhall::{Db, Options, Snapshot, WriteBatch};
use model_support::{
    apply, check_db, check_snapshot, config, counter, fail, gauge, key, summary, to_batch, value,
    BOp, Concrete, Model, DIR, KEYS, R,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

// ---------------------------------------------------------------------------
// (a) Reads under concurrent writes and flushes.

const C_KEYS: usize = 48;
const C_WRITERS: usize = 3;
const C_READERS: usize = 3;

fn ckey(k: usize) -> Vec<u8> {
    format!("ckey{k:03}").into_bytes()
}

/// The value of key `k` at version `v`: "k<k>v<v>:" and filler derived
/// from both, so any other version, key or damaged byte is told apart.
fn cvalue(k: usize, v: u64) -> Vec<u8> {
    let mut out = format!("k{k:03}v{v:010}:").into_bytes();
    let len = 200 + (k * 31 + v as usize * 17) % 800;
    let mut x = (k as u64) << 32 ^ v ^ 0x5151_5151;
    while out.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.push(b'a' + (x >> 59) as u8);
    }
    out
}

/// The version a value encodes, after checking it is exactly the value of
/// key `k` at that version.
fn version_of(k: usize, value: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(&value[..value.len().min(16)]).into_owned();
    let v: u64 = text
        .get(5..15)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("key {k}: unparsable value {text:?}"));
    assert!(
        value == cvalue(k, v).as_slice(),
        "key {k}: value is not the one written at version {v}: {text:?}.."
    );
    v
}

/// Per key: the newest version whose write was acknowledged, and the
/// newest version a writer has started to write.
struct Versions {
    acked: Vec<AtomicU64>,
    attempted: Vec<AtomicU64>,
}

impl Versions {
    fn new() -> Self {
        Versions {
            acked: (0..C_KEYS).map(|_| AtomicU64::new(0)).collect(),
            attempted: (0..C_KEYS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
    fn acked(&self, k: usize) -> u64 {
        self.acked[k].load(Ordering::SeqCst)
    }
    fn attempted(&self, k: usize) -> u64 {
        self.attempted[k].load(Ordering::SeqCst)
    }
}

fn writer(db: &Db, w: usize, versions: &Versions, stop: &AtomicBool) {
    let mine: Vec<usize> = (0..C_KEYS).filter(|k| k % C_WRITERS == w).collect();
    let mut v = 0u64;
    while !stop.load(Ordering::SeqCst) {
        v += 1;
        if v % 2 == 0 {
            let mut b = WriteBatch::new();
            for &k in &mine {
                versions.attempted[k].store(v, Ordering::SeqCst);
                b.put(ckey(k), cvalue(k, v));
            }
            db.write(b).unwrap();
            for &k in &mine {
                versions.acked[k].store(v, Ordering::SeqCst);
            }
        } else {
            for &k in &mine {
                versions.attempted[k].store(v, Ordering::SeqCst);
                db.put(&ckey(k), &cvalue(k, v)).unwrap();
                versions.acked[k].store(v, Ordering::SeqCst);
            }
        }
    }
}

/// What one reader saw.
#[derive(Default)]
struct ReaderStats {
    gets: u64,
    scans: u64,
}

/// Checks one answer for key `k`: present if a write was acknowledged
/// before the read began (`acked_before`), a version no older than that
/// nor than this reader saw before, and no newer than any write begun.
fn check_read(
    k: usize,
    got: Option<&[u8]>,
    acked_before: u64,
    seen: &mut [u64],
    versions: &Versions,
) {
    let Some(value) = got else {
        assert_eq!(
            acked_before, 0,
            "key {k} missing although version {acked_before} was acknowledged"
        );
        assert_eq!(seen[k], 0, "key {k} vanished after version {}", seen[k]);
        return;
    };
    let v = version_of(k, value);
    assert!(
        v >= acked_before,
        "key {k}: read version {v} after version {acked_before} was acknowledged"
    );
    assert!(
        v >= seen[k],
        "key {k}: version went backwards from {} to {v}",
        seen[k]
    );
    let attempted = versions.attempted(k);
    assert!(
        v <= attempted,
        "key {k}: version {v} was never written (newest begun: {attempted})"
    );
    seen[k] = v;
}

fn reader(db: &Db, seed: u64, versions: &Versions, stop: &AtomicBool) -> ReaderStats {
    let mut rng = Rng(seed | 1);
    let mut seen = vec![0u64; C_KEYS];
    let mut stats = ReaderStats::default();
    while !stop.load(Ordering::SeqCst) {
        if rng.below(10) < 7 {
            let k = rng.below(C_KEYS as u64) as usize;
            let acked_before = versions.acked(k);
            let got = db.get(&ckey(k)).unwrap();
            check_read(k, got.as_deref(), acked_before, &mut seen, versions);
            stats.gets += 1;
        } else {
            let a = rng.below(C_KEYS as u64) as usize;
            let b = a + 1 + rng.below((C_KEYS - a) as u64) as usize;
            let limit = 1 + rng.below(C_KEYS as u64) as usize;
            let acked_before: Vec<u64> = (0..C_KEYS).map(|k| versions.acked(k)).collect();
            let end = (b < C_KEYS).then(|| ckey(b));
            let got = db.scan(&ckey(a), end.as_deref(), limit).unwrap();
            check_scan(a, b, limit, &got, &acked_before, &mut seen, versions);
            stats.scans += 1;
        }
    }
    stats
}

/// A scan of keys `a..b` with `limit`: in order, within the range, at most
/// `limit`, and no key that was acknowledged before the scan left out.
fn check_scan(
    a: usize,
    b: usize,
    limit: usize,
    got: &[(Vec<u8>, Vec<u8>)],
    acked_before: &[u64],
    seen: &mut [u64],
    versions: &Versions,
) {
    assert!(
        got.len() <= limit,
        "scan returned {} > limit {limit}",
        got.len()
    );
    let mut it = got.iter().peekable();
    let mut returned = 0;
    for (k, &acked) in acked_before.iter().enumerate().take(b).skip(a) {
        if returned == limit {
            break;
        }
        match it.peek() {
            Some((key, value)) if *key == ckey(k) => {
                check_read(k, Some(value), acked, seen, versions);
                returned += 1;
                it.next();
            }
            _ => check_read(k, None, acked, seen, versions),
        }
    }
    assert!(
        it.next().is_none(),
        "scan {a}..{b} limit {limit}: keys out of range or out of order: {:?}",
        got.iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect::<Vec<_>>()
    );
}

/// Every key through `snap`, by get, checked against a full scan of the
/// same snapshot.
fn snapshot_answers(snap: &Snapshot) -> Vec<Option<Vec<u8>>> {
    let gets: Vec<Option<Vec<u8>>> = (0..C_KEYS).map(|k| snap.get(&ckey(k)).unwrap()).collect();
    let scan = snap.scan(b"ckey", None, usize::MAX).unwrap();
    let from_gets: Vec<(Vec<u8>, Vec<u8>)> = gets
        .iter()
        .enumerate()
        .filter_map(|(k, v)| v.clone().map(|v| (ckey(k), v)))
        .collect();
    assert!(
        scan == from_gets,
        "snapshot scan differs from snapshot gets ({} vs {} entries)",
        scan.len(),
        from_gets.len()
    );
    gets
}

fn wait_for_flushes(db: &Db, at_least: u64, deadline: Instant, what: &str) {
    while counter(db, "flush.count") < at_least {
        assert!(
            Instant::now() < deadline,
            "{what}: only {} flushes, want {at_least}",
            counter(db, "flush.count")
        );
        assert!(
            db.poisoned().is_none(),
            "{what}: poisoned: {:?}",
            db.poisoned()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn reads_under_concurrent_writes_and_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        memtable_size_bytes_max: 64 << 10,
        wal_segment_size_bytes: 256 << 10,
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    let versions = Arc::new(Versions::new());
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(20);

    let writers: Vec<_> = (0..C_WRITERS)
        .map(|w| {
            let (db, versions, stop) = (db.clone(), Arc::clone(&versions), Arc::clone(&stop));
            std::thread::spawn(move || writer(&db, w, &versions, &stop))
        })
        .collect();
    let readers: Vec<_> = (0..C_READERS)
        .map(|r| {
            let (db, versions, stop) = (db.clone(), Arc::clone(&versions), Arc::clone(&stop));
            std::thread::spawn(move || reader(&db, 0x1234_5678 + r as u64, &versions, &stop))
        })
        .collect();

    // Mid-run: a snapshot, bounded by what was acknowledged before it and
    // what was begun after it.
    wait_for_flushes(&db, 4, deadline, "before the snapshot");
    let acked_lo: Vec<u64> = (0..C_KEYS).map(|k| versions.acked(k)).collect();
    let snap = db.snapshot();
    let attempted_hi: Vec<u64> = (0..C_KEYS).map(|k| versions.attempted(k)).collect();
    let first = snapshot_answers(&snap);
    for (k, v) in first.iter().enumerate() {
        match v {
            None => assert_eq!(acked_lo[k], 0, "snapshot misses key {k}"),
            Some(v) => {
                let v = version_of(k, v);
                assert!(
                    acked_lo[k] <= v && v <= attempted_hi[k],
                    "snapshot: key {k} at version {v}, outside {}..={}",
                    acked_lo[k],
                    attempted_hi[k]
                );
            }
        }
    }
    let flushes_at_snapshot = counter(&db, "flush.count");
    wait_for_flushes(
        &db,
        flushes_at_snapshot + 16,
        deadline,
        "after the snapshot",
    );
    let again = snapshot_answers(&snap);
    assert!(
        first == again,
        "snapshot answers changed after {} more flushes",
        counter(&db, "flush.count") - flushes_at_snapshot
    );

    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    let mut total = ReaderStats::default();
    for r in readers {
        let s = r.join().unwrap();
        assert!(s.gets > 0 && s.scans > 0, "a reader did nothing");
        total.gets += s.gets;
        total.scans += s.scans;
    }
    assert_eq!(
        snapshot_answers(&snap),
        first,
        "snapshot after the writers stopped"
    );
    drop(snap);

    // Quiet now: every key holds exactly its last acknowledged version,
    // before and after a reopen.
    let check_final = |db: &Db, what: &str| {
        for k in 0..C_KEYS {
            let want = versions.acked(k);
            let got = db.get(&ckey(k)).unwrap();
            assert_eq!(
                got.as_deref().map(|v| version_of(k, v)),
                Some(want),
                "{what}: key {k}"
            );
        }
    };
    check_final(&db, "after the run");
    let flushes = counter(&db, "flush.count");
    assert!(flushes >= 20, "only {flushes} flushes");
    // Reads went to tables, not only to memtables.
    let table_reads = counter(&db, "block_cache.hits") + counter(&db, "block_cache.misses");
    assert!(table_reads > 0, "no read reached a table");
    db.close().unwrap();
    drop(db);
    let db = Db::open(dir.path(), opts).unwrap();
    check_final(&db, "after reopen");
    db.close().unwrap();
    eprintln!(
        "concurrent flushes: {flushes} flushes, {} gets, {} scans, {table_reads} table block reads",
        total.gets, total.scans
    );
}

// ---------------------------------------------------------------------------
// (c) Segments covered by a flush are deleted; reopen recovers all.

fn log_numbers(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| parse_segment_name(&e.unwrap().file_name().into_string().unwrap()))
        .collect();
    v.sort_unstable();
    v
}

/// The manifest's state, read as `cityhall check` reads it.
fn manifest_state(fs: &dyn Fs, dir: &Path) -> cityhall::manifest::ManifestState {
    let number = cityhall::manifest::read_current(fs, dir).unwrap().unwrap();
    cityhall::manifest::recover(fs, dir, number).unwrap()
}

#[test]
fn flush_deletes_covered_segments_and_reopen_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        memtable_size_bytes_max: 64 << 10,
        wal_segment_size_bytes: 256 << 10,
        wal_prepare_background: false,
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    let mut model = Model::new();
    let mut rng = Rng(0xf1a5);
    let mut n = 0u64;
    let deadline = Instant::now() + Duration::from_secs(20);
    // Overwrites and deletes over 300 keys, until three flushes are done.
    while counter(&db, "flush.count") < 3 {
        assert!(Instant::now() < deadline, "no flushes");
        let mut b = WriteBatch::new();
        for _ in 0..8 {
            n += 1;
            let k = format!("key{:04}", rng.below(300)).into_bytes();
            if rng.below(8) == 0 {
                b.delete(k.clone());
                model.remove(&k);
            } else {
                let v = format!("value {n} {}", "x".repeat(rng.below(600) as usize)).into_bytes();
                b.put(k.clone(), v.clone());
                model.insert(k, v);
            }
        }
        db.write(b).unwrap();
    }
    // Once the frozen memtables are flushed, only the active memtable's
    // segment is left (it is larger than a memtable).
    let plain = PlainFs::new();
    let settled = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = log_numbers(dir.path());
        let state = manifest_state(&plain, dir.path());
        let quiet = gauge(&db, "memtable.immutable_count") == 0.0;
        if quiet && logs == [state.log_number] {
            break;
        }
        assert!(
            Instant::now() < settled,
            "after {} flushes: segments {logs:?}, manifest log number {} ({} frozen memtables)",
            counter(&db, "flush.count"),
            state.log_number,
            gauge(&db, "memtable.immutable_count")
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let rolled = counter(&db, "wal.segments_rolled");
    assert!(rolled >= 3, "only {rolled} segments rolled");
    let state = manifest_state(&plain, dir.path());
    assert!(state.tables.len() >= 3, "{} tables", state.tables.len());

    // Reads see the same before and after a reopen (tables + WAL).
    let all = |db: &Db| {
        let scan = db.scan(b"", None, usize::MAX).unwrap();
        let want: Vec<(Vec<u8>, Vec<u8>)> =
            model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert!(
            scan == want,
            "scan: {} entries, model {}",
            scan.len(),
            want.len()
        );
        for i in 0..300 {
            let k = format!("key{i:04}").into_bytes();
            assert_eq!(db.get(&k).unwrap().as_ref(), model.get(&k), "key{i:04}");
        }
    };
    all(&db);
    db.close().unwrap();
    drop(db);
    let report = cityhall::check::check_dir(&plain, dir.path());
    assert!(report.ok(), "check after close: {:?}", report.problems);
    let db = Db::open(dir.path(), opts).unwrap();
    all(&db);
    db.close().unwrap();
}

/// A WAL segment a flush no longer needs but cannot remove costs nothing
/// but the space: the flush succeeds, the failure is counted, writes go
/// on, and the next open removes the segment.
#[test]
fn a_covered_segment_that_cannot_be_removed_is_counted_not_fatal() {
    let sim = SimFs::new(0x5e9);
    let opts = Options {
        fs: Some(Arc::new(sim.clone())),
        memtable_size_bytes_max: 64 << 10,
        wal_segment_size_bytes: 128 << 10,
        wal_prepare_background: false,
        ..Options::default()
    };
    let dir = Path::new("/db");
    let segments = |sim: &SimFs| -> Vec<u64> {
        let mut v: Vec<u64> = sim
            .list(dir)
            .unwrap()
            .iter()
            .filter_map(|n| parse_segment_name(n))
            .collect();
        v.sort_unstable();
        v
    };
    let db = Db::open(dir, opts.clone()).unwrap();
    for i in 0..200u32 {
        db.put(format!("key{i:04}").as_bytes(), &[7u8; 100])
            .unwrap();
    }
    let before = segments(&sim);
    sim.fail_always(FsOp::Remove);
    db.flush().unwrap();
    // The flush thread drops the flushed memtable (which lets `flush`
    // return) before it removes the segments: wait for that step.
    let deadline = Instant::now() + Duration::from_secs(10);
    while counter(&db, "db.obsolete_delete_errors") == 0 {
        assert!(Instant::now() < deadline, "no failed removal was counted");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(db.poisoned(), None);
    let after = segments(&sim);
    assert!(
        before.iter().all(|n| after.contains(n)),
        "segments {before:?} before the flush, {after:?} after"
    );
    db.put(b"after", b"the flush").unwrap();
    db.close().unwrap();
    sim.clear_faults();
    let db = Db::open(dir, opts).unwrap();
    let left = segments(&sim);
    assert!(
        before.iter().all(|n| !left.contains(n)),
        "segments {before:?} still there after reopening: {left:?}"
    );
    assert_eq!(db.get(b"key0123").unwrap(), Some(vec![7u8; 100]));
    assert_eq!(db.get(b"after").unwrap(), Some(b"the flush".to_vec()));
    db.close().unwrap();
}

// ---------------------------------------------------------------------------
// (b) The model, with flushes, scans, snapshots and crashes inside flushes.

const MEMTABLE_BYTES: usize = 32 << 10;
/// Filler written to force a flush.
const FILLER_BYTES: usize = 1024;

/// How a crash is made to land inside a flush.
#[derive(Clone, Copy, Debug)]
enum FlushFault {
    /// The k-th sync (file or directory, as named) from the step's start
    /// fails: the database is poisoned mid-flush.
    Fail(FsOp, u64),
    /// Durability freezes after k more syncs (power lost at that point;
    /// the process runs on until the crash).
    Freeze(u64),
}

#[derive(Clone, Debug)]
enum Op {
    Put(u8, usize),
    Delete(u8),
    Get(u8),
    Batch(Vec<BOp>),
    /// Write filler until a memtable freezes; wait for its flush.
    Flush,
    /// Scan keys `start..end` (no end: to the last) with a limit.
    Scan(u8, Option<u8>, usize),
    /// Take a snapshot (at most four are kept).
    TakeSnapshot,
    /// Read every key and a full scan through the i-th live snapshot.
    ReadSnapshot(usize),
    /// Close, then open again.
    Reopen,
    /// Power loss (wherever the background flush is), then open again.
    CrashReopen(CrashMode),
    /// Fill the memtable to the brim, arm the fault, write until a flush
    /// runs into it; then crash (or close, for a failed sync) and reopen.
    FlushCrash(FlushFault, bool),
}

fn value_len() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0usize..200, 1 => 2_000usize..6_000]
}

fn bop() -> impl Strategy<Value = BOp> {
    prop_oneof![
        3 => (0..KEYS, value_len()).prop_map(|(k, l)| BOp::Put(k, l)),
        1 => (0..KEYS).prop_map(BOp::Del),
    ]
}

fn flush_fault() -> impl Strategy<Value = FlushFault> {
    prop_oneof![
        2 => (0u64..6).prop_map(|k| FlushFault::Fail(FsOp::Sync, k)),
        1 => (0u64..3).prop_map(|k| FlushFault::Fail(FsOp::SyncDir, k)),
        3 => (0u64..10).prop_map(FlushFault::Freeze),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..KEYS, value_len()).prop_map(|(k, l)| Op::Put(k, l)),
        3 => (0..KEYS).prop_map(Op::Delete),
        3 => (0..KEYS).prop_map(Op::Get),
        3 => prop::collection::vec(bop(), 1..5).prop_map(Op::Batch),
        3 => Just(Op::Flush),
        3 => (0..KEYS, prop::option::of(0..KEYS), 1usize..20)
            .prop_map(|(s, e, l)| Op::Scan(s, e, l)),
        2 => Just(Op::TakeSnapshot),
        3 => (0usize..4).prop_map(Op::ReadSnapshot),
        1 => Just(Op::Reopen),
        2 => prop_oneof![
            Just(CrashMode::DropUnsynced),
            Just(CrashMode::TearLastWrite),
            Just(CrashMode::Random),
        ]
        .prop_map(Op::CrashReopen),
        3 => (flush_fault(), any::<bool>()).prop_map(|(f, c)| Op::FlushCrash(f, c)),
    ]
}

struct Harness {
    seed: u64,
    sim: SimFs,
    opts: Options,
    db: Option<Db>,
    model: Model,
    /// Operations acknowledged: the sequence the database must report.
    seq: u64,
    /// Source of unique values.
    counter: u64,
    step: usize,
    /// Live snapshots with the model as of each.
    snapshots: Vec<(Snapshot, Model)>,
}

impl Harness {
    fn new(seed: u64) -> Result<Self, TestCaseError> {
        let sim = SimFs::new(seed);
        let opts = Options {
            fs: Some(Arc::new(sim.clone())),
            wal_prepare_background: false,
            wal_segment_size_bytes: 128 << 10,
            memtable_size_bytes_max: MEMTABLE_BYTES,
            ..Options::default()
        };
        let mut h = Harness {
            seed,
            sim,
            opts,
            db: None,
            model: Model::new(),
            seq: 0,
            counter: 0,
            step: 0,
            snapshots: Vec::new(),
        };
        h.open()?;
        Ok(h)
    }

    fn ctx(&self) -> String {
        format!("seed {} op #{}", self.seed, self.step)
    }

    fn db(&self) -> &Db {
        self.db
            .as_ref()
            .expect("database is open between operations")
    }

    /// Opens the database and checks the directory: the manifest names
    /// every table there is, and `check_dir` finds nothing wrong or left
    /// over.
    fn open(&mut self) -> R {
        // Open once so recovery runs and cleans up, close (background
        // compaction would otherwise change the files while they are
        // checked), check, then open for the next operations.
        match Db::open(DIR, self.opts.clone()).and_then(|db| db.close()) {
            Ok(()) => {}
            Err(e) => return fail(format!("{}: open failed: {e}", self.ctx())),
        }
        self.check_dir()?;
        match Db::open(DIR, self.opts.clone()) {
            Ok(db) => self.db = Some(db),
            Err(e) => return fail(format!("{}: reopen failed: {e}", self.ctx())),
        }
        Ok(())
    }

    fn check_dir(&mut self) -> R {
        model_support::check_dir(&self.sim, &format!("{} after open", self.ctx()))
    }

    fn concrete(&mut self, ops: &[BOp]) -> Concrete {
        ops.iter()
            .map(|o| match *o {
                BOp::Put(k, len) => {
                    self.counter += 1;
                    (key(k), Some(value(self.counter, len)))
                }
                BOp::Del(k) => (key(k), None),
            })
            .collect()
    }

    fn filler(&mut self) -> Concrete {
        let k = (self.counter % u64::from(KEYS)) as u8;
        self.concrete(&[BOp::Put(k, FILLER_BYTES)])
    }

    fn write_concrete(&mut self, c: &Concrete) -> R {
        if let Err(e) = self.db().write(to_batch(c)) {
            return fail(format!("{}: write failed: {e}", self.ctx()));
        }
        apply(&mut self.model, c);
        self.seq += c.len() as u64;
        Ok(())
    }

    fn write(&mut self, ops: &[BOp]) -> R {
        let c = self.concrete(ops);
        self.write_concrete(&c)
    }

    fn flushes(&self) -> u64 {
        counter(self.db(), "flush.count")
    }

    fn frozen(&self) -> f64 {
        gauge(self.db(), "memtable.immutable_count")
    }

    /// Waits until no frozen memtable is left (flushed, or the flusher
    /// stopped on a poisoned database).
    fn wait_quiet(&self) -> R {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.frozen() > 0.0 && self.db().poisoned().is_none() {
            if Instant::now() > deadline {
                return fail(format!("{}: flush did not finish", self.ctx()));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn check_all(&self, what: &str) -> R {
        check_db(
            self.db(),
            &self.model,
            self.seq,
            &format!("{} {what}", self.ctx()),
        )
    }

    fn dump(&self) -> Model {
        (0..KEYS)
            .filter_map(|k| self.db().get(&key(k)).unwrap().map(|v| (key(k), v)))
            .collect()
    }

    fn force_flush(&mut self) -> R {
        let before = self.flushes();
        let mut writes = 0;
        while self.frozen() == 0.0 && self.flushes() == before {
            writes += 1;
            if writes > 4 * MEMTABLE_BYTES / FILLER_BYTES {
                return fail(format!("{}: {writes} writes froze no memtable", self.ctx()));
            }
            let c = self.filler();
            self.write_concrete(&c)?;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.flushes() == before || self.frozen() > 0.0 {
            if let Some(p) = self.db().poisoned() {
                return fail(format!("{}: poisoned while flushing: {p}", self.ctx()));
            }
            if Instant::now() > deadline {
                return fail(format!("{}: flush did not finish", self.ctx()));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.check_all("after a flush")
    }

    fn scan(&self, start: u8, end: Option<u8>, limit: usize) -> R {
        let (s, e) = (key(start), end.map(key));
        let got = self.db().scan(&s, e.as_deref(), limit).unwrap();
        let want: Vec<(Vec<u8>, Vec<u8>)> = self
            .model
            .range(s.clone()..)
            .filter(|(k, _)| e.as_ref().is_none_or(|e| *k < e))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        prop_assert!(
            got == want,
            "{}: scan {:?}..{:?} limit {}: got {:?}, want {:?}",
            self.ctx(),
            String::from_utf8_lossy(&s),
            e.as_ref().map(|e| String::from_utf8_lossy(e).into_owned()),
            limit,
            got.iter()
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v.len()))
                .collect::<Vec<_>>(),
            want.iter()
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v.len()))
                .collect::<Vec<_>>()
        );
        Ok(())
    }

    fn take_snapshot(&mut self) {
        if self.snapshots.len() == 4 {
            self.snapshots.remove(0);
        }
        let snap = self.db().snapshot();
        self.snapshots.push((snap, self.model.clone()));
    }

    fn read_snapshot(&self, i: usize) -> R {
        if self.snapshots.is_empty() {
            return Ok(());
        }
        let (snap, model) = &self.snapshots[i % self.snapshots.len()];
        check_snapshot(snap, model, &self.ctx())
    }

    fn reopen(&mut self) -> R {
        self.snapshots.clear();
        let db = self.db.take().expect("open");
        if let Err(e) = db.close() {
            return fail(format!("{}: close failed: {e}", self.ctx()));
        }
        drop(db);
        self.open()?;
        self.check_all("after reopen")
    }

    fn crash_reopen(&mut self, mode: CrashMode) -> R {
        self.snapshots.clear();
        let db = self.db.take();
        self.sim.crash(mode);
        drop(db);
        self.open()?;
        self.check_all(&format!("after crash ({mode:?})"))
    }

    /// After a crash (or failed IO and a close): the state must be the
    /// model plus exactly the first `n` of `candidates` for some `n` in
    /// `min..=len`, told apart by the recovered sequence. Adopts it.
    fn adopt_recovered(&mut self, candidates: &[Concrete], min: usize, what: &str) -> R {
        let got = self.dump();
        let got_seq = self.db().last_sequence();
        let mut model = self.model.clone();
        let mut seq = self.seq;
        for n in 0..=candidates.len() {
            if n > 0 {
                apply(&mut model, &candidates[n - 1]);
                seq += candidates[n - 1].len() as u64;
            }
            if n >= min && seq == got_seq {
                prop_assert!(
                    got == model,
                    "{} {what}: recovered {n} of {} writes by sequence, but the state differs \
                     (a batch half applied, or acknowledged data lost)\n got {:?}\n want {:?}",
                    self.ctx(),
                    candidates.len(),
                    summary(&got),
                    summary(&model)
                );
                self.model = model;
                self.seq = seq;
                return Ok(());
            }
        }
        fail(format!(
            "{} {what}: recovered sequence {got_seq} matches no allowed prefix (model at {}, at \
             least {min} of {} more writes must be there)",
            self.ctx(),
            self.seq,
            candidates.len()
        ))
    }

    /// A crash (or failure) that lands inside a flush.
    fn flush_crash(&mut self, fault: FlushFault, crash: bool) -> R {
        self.wait_quiet()?;
        // Fill the active memtable to just below its limit, so that one
        // of the next few writes freezes it.
        let mut guard = 0;
        while gauge(self.db(), "memtable.active_bytes") as usize + 3 * FILLER_BYTES < MEMTABLE_BYTES
        {
            let c = self.filler();
            self.write_concrete(&c)?;
            guard += 1;
            if guard > 100 {
                return fail(format!("{}: memtable does not fill", self.ctx()));
            }
        }
        self.wait_quiet()?;
        self.snapshots.clear();
        let flushes_before = self.flushes();
        let sync_base = self.sim.sync_count();
        match fault {
            FlushFault::Fail(op, k) => self.sim.fail_nth(op, k),
            FlushFault::Freeze(k) => self.sim.freeze_durability_after(k),
        }
        // Write until a flush ran (into the fault or not) or a write failed.
        let mut candidates: Vec<Concrete> = Vec::new();
        let mut durable = 0;
        for _ in 0..6 {
            let c = self.filler();
            let r = self.db().write(to_batch(&c));
            candidates.push(c);
            if r.is_err() {
                break;
            }
            let synced_in_time = match fault {
                FlushFault::Fail(..) => true,
                FlushFault::Freeze(k) => self.sim.sync_count() <= sync_base + k,
            };
            if synced_in_time && durable == candidates.len() - 1 {
                durable = candidates.len();
            }
            self.wait_quiet()?;
            if self.flushes() > flushes_before || self.db().poisoned().is_some() {
                break;
            }
        }
        self.wait_quiet()?;
        let db = self.db.take().expect("open");
        let freeze = matches!(fault, FlushFault::Freeze(_));
        if crash || freeze {
            self.sim.crash(CrashMode::DropUnsynced);
            drop(db);
        } else {
            // A clean close: a poisoned database reports why.
            let poisoned = db.poisoned();
            let closed = db.close();
            prop_assert!(
                closed.is_ok() == poisoned.is_none(),
                "{}: close gave {:?} for a database poisoned by {:?}",
                self.ctx(),
                closed,
                poisoned
            );
            drop(db);
            self.sim.clear_faults();
        }
        self.open()?;
        // Acknowledged and durable: present. The rest: all or nothing, in
        // order.
        let what = format!("{fault:?}, crash {crash}");
        self.adopt_recovered(&candidates, durable, &what)?;
        self.check_all(&what)
    }

    fn run(&mut self, op: &Op) -> R {
        match op {
            Op::Put(k, len) => self.write(&[BOp::Put(*k, *len)]),
            Op::Delete(k) => self.write(&[BOp::Del(*k)]),
            Op::Get(k) => {
                let got = self.db().get(&key(*k)).unwrap();
                prop_assert!(
                    got.as_ref() == self.model.get(&key(*k)),
                    "{}: get key{}",
                    self.ctx(),
                    k
                );
                Ok(())
            }
            Op::Batch(b) => self.write(b),
            Op::Flush => self.force_flush(),
            Op::Scan(s, e, l) => self.scan(*s, *e, *l),
            Op::TakeSnapshot => {
                self.take_snapshot();
                Ok(())
            }
            Op::ReadSnapshot(i) => self.read_snapshot(*i),
            Op::Reopen => self.reopen(),
            Op::CrashReopen(mode) => self.crash_reopen(*mode),
            Op::FlushCrash(fault, crash) => self.flush_crash(*fault, *crash),
        }
    }
}

fn run_case(seed: u64, ops: &[Op]) -> R {
    let mut h = Harness::new(seed)?;
    for (i, op) in ops.iter().enumerate() {
        h.step = i;
        h.run(op)?;
    }
    h.step = ops.len();
    h.check_all("at the end")?;
    for i in 0..h.snapshots.len() {
        h.read_snapshot(i)?;
    }
    // A last crash must not lose anything either.
    h.crash_reopen(CrashMode::DropUnsynced)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn model_with_flushes(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..40)) {
        run_case(seed, &ops)?;
    }
}

// ---------------------------------------------------------------------------
// Regressions found by `model_with_flushes`.

/// BUG: (found by `model_with_flushes`, e.g. seed 9530479793536001451) a
/// write whose WAL sync failed is left in the segment (written, never
/// durable). A clean close and reopen (no power loss) replays it from the
/// file system's cache, so it becomes visible and the sequence continues
/// after it, but nothing syncs the replayed segment again. A later power
/// loss then either drops it while keeping the writes made after the
/// reopen (the recovered state is no prefix of the history: a hole at the
/// failed write, and a sequence gap the replay does not notice), or tears
/// it, and then the database does not open at all ("bad record in a
/// segment that later segments follow"). The same happens in relaxed mode
/// when the process dies with an unsynced tail and the machine loses power
/// after the restart. DESIGN.md: "none is visible to readers before it is
/// durable". Fix: at open, make what was replayed durable before accepting
/// writes: `sync_data` every replayed segment in
/// `db/open.rs::replay_wal` (after a failed fsync Linux may have dropped
/// the dirty pages' error state, so the robust variant rewrites the
/// recovered memtable as a table, as LevelDB does, or copies the replayed
/// records into the fresh segment and syncs it); and reject sequence gaps
/// in `wal::reader::replay_segment`.
#[test]
fn replayed_unsynced_write_survives_later_power_loss() {
    let mut failures = Vec::new();
    for seed in 0..8u64 {
        for mode in [
            CrashMode::DropUnsynced,
            CrashMode::TearLastWrite,
            CrashMode::Random,
        ] {
            if let Err(e) = replayed_unsynced_write_case(seed, mode) {
                failures.push(format!("seed {seed} {mode:?}: {e}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 24 cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn replayed_unsynced_write_case(seed: u64, mode: CrashMode) -> Result<(), String> {
    let sim = SimFs::new(seed);
    let opts = Options {
        fs: Some(Arc::new(sim.clone())),
        wal_prepare_background: false,
        wal_segment_size_bytes: 64 << 10,
        ..Options::default()
    };
    let db = Db::open(DIR, opts.clone()).unwrap();
    db.put(b"a", &value(1, 700)).unwrap();
    sim.fail_nth(FsOp::Sync, 0);
    if db.put(b"b", &value(2, 3000)).is_ok() {
        return Err("the write was acknowledged although its sync failed".into());
    }
    let _ = db.close();
    drop(db);
    sim.clear_faults();

    let db = Db::open(DIR, opts.clone()).unwrap();
    let b_after_reopen = db.get(b"b").unwrap();
    db.put(b"c", &value(3, 100)).unwrap();
    let seq = db.last_sequence();
    drop(db);
    sim.crash(mode);

    let db = Db::open(DIR, opts).map_err(|e| format!("open after the power loss: {e}"))?;
    let got = (
        db.get(b"a").unwrap(),
        db.get(b"b").unwrap(),
        db.get(b"c").unwrap(),
    );
    let last = db.last_sequence();
    db.close().unwrap();
    if got.0 != Some(value(1, 700)) || got.2 != Some(value(3, 100)) {
        return Err("an acknowledged write is lost".into());
    }
    if got.1 != b_after_reopen {
        return Err(format!(
            "\"b\" was {} after the reopen and {} after the power loss, while the later \
             acknowledged \"c\" survived",
            if b_after_reopen.is_some() {
                "visible"
            } else {
                "absent"
            },
            if got.1.is_some() { "present" } else { "gone" },
        ));
    }
    if last != seq {
        return Err(format!("last sequence {last}, was {seq}"));
    }
    Ok(())
}

/// BUG: a writer stalled on full frozen memtables is never woken by a
/// failed flush. `Shared::wait_for_immutable_room` (src/db/mod.rs) loops
/// `while full()` and leaves only on close; when the flush thread fails it
/// poisons the database, calls `notify_mem` and exits, so the frozen
/// memtables stay and the stalled leader (and every writer queued behind
/// it) waits until the database is closed instead of getting
/// `Error::Poisoned`. Fix: in that loop, return `Err(Error::Poisoned(..))`
/// when `self.poisoned()` is set (the flusher already notifies `mem_cv`).
#[test]
#[ignore = "timing-dependent: the writer must outrun the flusher, which on an idle machine it \
            often does not; the same bug stays pinned by \
            engine_recovery::failed_flush_does_not_hang_stalled_writers"]
fn failed_flush_wakes_stalled_writers() {
    for attempt in 0..5u64 {
        let sim = SimFs::new(100 + attempt);
        let opts = Options {
            fs: Some(Arc::new(sim.clone())),
            wal_prepare_background: false,
            wal_segment_size_bytes: 2 << 20,
            // The writer must outrun the flusher: no sync per write.
            durability: cityhall::Durability::Relaxed {
                interval_ms: 10_000,
            },
            // Large enough that a flush takes a while; one frozen memtable
            // at most, so the next freeze stalls behind it.
            memtable_size_bytes_max: 1 << 20,
            immutable_memtables_max: 1,
            ..Options::default()
        };
        let db = Db::open(DIR, opts).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = {
            let db = db.clone();
            std::thread::spawn(move || {
                // Each batch fills a memtable: every write freezes one.
                for i in 0u64.. {
                    let mut b = WriteBatch::new();
                    for j in 0..17 {
                        b.put(format!("stall{i:06}/{j:02}"), value(i * 17 + j, 64 << 10));
                    }
                    if let Err(e) = db.write(b) {
                        let _ = tx.send(e.to_string());
                        return;
                    }
                }
            })
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while counter(&db, "write.stalls") == 0 {
            assert!(
                Instant::now() < deadline,
                "the writer never stalled: {} flushes, {} writes, poisoned {:?}",
                counter(&db, "flush.count"),
                counter(&db, "db.writes"),
                db.poisoned()
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        // The writer waits for the flush in progress: make it fail.
        sim.fail_always(FsOp::Sync);
        sim.fail_always(FsOp::SyncDir);
        let result = rx.recv_timeout(Duration::from_secs(3));
        let reason = db.poisoned();
        let flush_failed = reason
            .as_deref()
            .is_some_and(|r| r.contains(".sst") || r.contains("MANIFEST"));
        if !flush_failed && result.is_ok() {
            // The flush finished before the fault; the writer failed on
            // its own sync. Not the case under test: try again.
            drop(db);
            writer.join().unwrap();
            continue;
        }
        let stuck = result.is_err();
        let _ = db.close();
        writer.join().unwrap();
        assert!(
            !stuck,
            "attempt {attempt}: the flush failed ({reason:?}) but the stalled writer was still \
             waiting 3 s later (released only by close)"
        );
        let msg = result.unwrap();
        assert!(msg.contains("poisoned"), "writer got {msg}");
        return;
    }
    panic!("in 5 attempts the flush never failed while a writer stalled behind it");
}
