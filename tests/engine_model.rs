#![allow(clippy::unwrap_used)]
//! Model-based tests: random operation sequences against the engine on the
//! simulated file system and against a `BTreeMap`.
//!
//! Operations: puts (small values, sometimes ~10 KiB ones that roll WAL
//! segments), deletes, gets, batches, clean reopens, crash-reopens in every
//! crash mode, writes whose sync fails, and (in the concurrent variant) a
//! power cut while a second thread is writing. In the default `Sync`
//! durability every acknowledged write must survive a crash, and a write
//! that was in flight must be all there or not at all.
//!
//! The compaction variant adds flushes, manual compactions of random key
//! ranges (`Db::compact_range`) and scans, with tiny memtables, tables and
//! level targets so that the background thread compacts on its own too
//! (by size and, between operations, the idle compaction),
//! and snapshots that are held across flushes and compactions: reads
//! through a snapshot must still see exactly its point in time, however
//! the versions under it were merged. After every reopen (clean or after
//! a crash, wherever the compaction was) the directory is checked: the
//! manifest names exactly the tables there are, and `cityhall check`
//! finds the levels sorted and disjoint.
//!
//! On failure proptest prints the shrunk `seed` and `ops`; every assertion
//! message carries the seed and the index of the failing operation. Cases:
//! 64 by default, `PROPTEST_CASES` overrides.

mod model_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cityhall::compaction::CompactionOptions;
use cityhall::io::sim::{CrashMode, Op as FsOp, SimFs};
use cityhall::{Db, Error, Options, Snapshot};
use model_support::{
    apply, check_db, check_dir, check_snapshot, config, gauge, key, summary, to_batch, value, BOp,
    Concrete, Model, DIR, KEYS, R,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

#[derive(Clone, Debug)]
enum Op {
    Put(u8, usize),
    Delete(u8),
    Get(u8),
    Batch(Vec<BOp>),
    /// Close, then open again.
    Reopen,
    /// Power loss, then open again.
    CrashReopen(CrashMode),
    /// A batch written while every sync fails (the disk has gone bad: the
    /// flusher's or segment preparer's syncs fail too, so this does not
    /// depend on which thread syncs first); then power loss in the mode,
    /// and reopen.
    FailedSync(Vec<BOp>, CrashMode),
    /// A second thread writes `batches` one after another; once
    /// `acks_pct` percent of them are acknowledged (and `spin` more spins)
    /// the power fails; then open again.
    ConcurrentCrash {
        batches: Vec<Vec<BOp>>,
        acks_pct: usize,
        spin: u32,
        mode: CrashMode,
    },
    /// Flush the memtables (`Db::flush`).
    Flush,
    /// Compact keys `[start, end]` (`None`: unbounded), then check every
    /// live snapshot.
    Compact(Option<u8>, Option<u8>),
    /// Scan keys `start..end` (no end: to the last) with a limit.
    Scan(u8, Option<u8>, usize),
    /// Take a snapshot (at most four are kept).
    TakeSnapshot,
    /// Read every key and a full scan through the i-th live snapshot.
    ReadSnapshot(usize),
}

fn value_len() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0usize..200, 1 => 9_000usize..11_000]
}

fn bop() -> impl Strategy<Value = BOp> {
    prop_oneof![
        3 => (0..KEYS, value_len()).prop_map(|(k, l)| BOp::Put(k, l)),
        1 => (0..KEYS).prop_map(BOp::Del),
    ]
}

/// At most 4 ops: with values up to 11 KiB a batch stays well below the
/// 64 KiB segment (see `group_larger_than_segment` in engine_concurrency
/// for what happens otherwise).
fn batch() -> impl Strategy<Value = Vec<BOp>> {
    prop::collection::vec(bop(), 1..5)
}

fn crash_mode() -> impl Strategy<Value = CrashMode> {
    prop_oneof![
        Just(CrashMode::DropUnsynced),
        Just(CrashMode::TearLastWrite),
        Just(CrashMode::Random),
    ]
}

/// What a test run varies.
#[derive(Clone, Copy, Debug)]
struct Variant {
    /// Include power cuts under a second writer.
    concurrent: bool,
    /// Freeze memtables often.
    small_memtable: bool,
    /// Prepare segments on the background thread (not deterministic).
    background: bool,
    /// Flushes, compactions, scans and snapshots, with tiny tables and
    /// levels.
    compaction: bool,
}

const SEQUENTIAL: Variant = Variant {
    concurrent: false,
    small_memtable: false,
    background: false,
    compaction: false,
};

/// Keys `[a, b]`, either bound maybe open; `a <= b` when both are given.
fn key_range() -> impl Strategy<Value = (Option<u8>, Option<u8>)> {
    (prop::option::of(0..KEYS), prop::option::of(0..KEYS)).prop_map(|(a, b)| match (a, b) {
        (Some(a), Some(b)) if key(a) > key(b) => (Some(b), Some(a)),
        other => other,
    })
}

/// The steps of the compaction variant (one arm of [`op`]: a weight of 0
/// is refused in a union of more than ten arms).
fn compaction_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Flush),
        4 => key_range().prop_map(|(a, b)| Op::Compact(a, b)),
        2 => (0..KEYS, prop::option::of(0..KEYS), 1usize..20)
            .prop_map(|(s, e, l)| Op::Scan(s, e, l)),
        3 => Just(Op::TakeSnapshot),
        3 => (0usize..4).prop_map(Op::ReadSnapshot),
    ]
}

fn op(v: Variant) -> impl Strategy<Value = Op> {
    let concurrent_weight = if v.concurrent { 3 } else { 0 };
    let compaction_weight = if v.compaction { 15 } else { 0 };
    prop_oneof![
        10 => (0..KEYS, value_len()).prop_map(|(k, l)| Op::Put(k, l)),
        3 => (0..KEYS).prop_map(Op::Delete),
        4 => (0..KEYS).prop_map(Op::Get),
        4 => batch().prop_map(Op::Batch),
        1 => Just(Op::Reopen),
        2 => crash_mode().prop_map(Op::CrashReopen),
        1 => (batch(), crash_mode()).prop_map(|(b, m)| Op::FailedSync(b, m)),
        concurrent_weight => (prop::collection::vec(batch(), 1..12), 0usize..100, 0u32..300, crash_mode())
            .prop_map(|(batches, acks_pct, spin, mode)| Op::ConcurrentCrash { batches, acks_pct, spin, mode }),
        compaction_weight => compaction_op(),
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
    /// Index of the operation being run, for messages.
    step: usize,
    variant: Variant,
    /// Live snapshots with the model as of each.
    snapshots: Vec<(Snapshot, Model)>,
}

impl Harness {
    fn new(seed: u64, v: Variant) -> Result<Self, TestCaseError> {
        let sim = SimFs::new(seed);
        let opts = Options {
            fs: Some(Arc::new(sim.clone())),
            wal_prepare_background: v.background,
            wal_segment_size_bytes: 64 << 10,
            // Small: freeze and flush often. Any number of frozen
            // memtables may wait, so that a flush failed by FailedSync
            // never leaves a writer stalled (that hang has its own test,
            // engine_recovery::failed_flush_does_not_hang_stalled_writers).
            memtable_size_bytes_max: if v.small_memtable {
                24 << 10
            } else {
                256 << 20
            },
            immutable_memtables_max: if v.small_memtable { 100_000 } else { 2 },
            ..Options::default()
        };
        let opts = if v.compaction {
            Options {
                memtable_size_bytes_max: 2 << 10,
                immutable_memtables_max: 100_000,
                compaction: CompactionOptions {
                    level0_file_num_compaction_trigger: 2,
                    max_bytes_for_level_base: 4 << 10,
                    max_bytes_for_level_multiplier: 2,
                    num_levels: 5,
                    target_file_size_bytes: 1 << 10,
                    // The idle compaction runs between operations too.
                    idle_compaction_delay_ms: 5,
                    ..CompactionOptions::default()
                },
                ..opts
            }
        } else {
            opts
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
            variant: v,
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

    fn open(&mut self) -> R {
        if self.variant.compaction {
            // Open once so recovery runs and cleans up, close (background
            // compaction would otherwise change the files while they are
            // checked), check, then open for the next operations.
            if let Err(e) = Db::open(DIR, self.opts.clone()).and_then(|db| db.close()) {
                return Err(TestCaseError::fail(format!(
                    "{}: open failed: {e}",
                    self.ctx()
                )));
            }
            check_dir(&self.sim, &format!("{} after open", self.ctx()))?;
        }
        match Db::open(DIR, self.opts.clone()) {
            Ok(db) => {
                self.db = Some(db);
                Ok(())
            }
            Err(e) => Err(TestCaseError::fail(format!(
                "{}: open failed: {e}",
                self.ctx()
            ))),
        }
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

    fn write(&mut self, ops: &[BOp]) -> R {
        let c = self.concrete(ops);
        if let Err(e) = self.db().write(to_batch(&c)) {
            return Err(TestCaseError::fail(format!(
                "{}: write failed: {e}",
                self.ctx()
            )));
        }
        apply(&mut self.model, &c);
        self.seq += c.len() as u64;
        Ok(())
    }

    /// Every key, a full scan and the sequence agree with the model.
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

    /// After a crash: the recovered state must be the model plus exactly
    /// the first `n` of `candidates` for some n in `min..=max`, told apart
    /// by the recovered sequence. Adopts what was recovered.
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
                    "{} {what}: recovered {n} of {} in-flight batches by sequence, but the \
                     state differs (a batch half applied, or acknowledged data lost)\n got {:?}\n \
                     want {:?}",
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
        Err(TestCaseError::fail(format!(
            "{} {what}: recovered sequence {got_seq} matches no acknowledged prefix (model {}, at \
             least {min} of {} more batches)",
            self.ctx(),
            self.seq,
            candidates.len()
        )))
    }

    fn reopen(&mut self) -> R {
        self.snapshots.clear();
        let db = self.db.take().expect("open");
        if let Err(e) = db.close() {
            return Err(TestCaseError::fail(format!(
                "{}: close failed: {e}",
                self.ctx()
            )));
        }
        drop(db);
        self.open()?;
        self.check_all("after reopen")
    }

    fn crash_reopen(&mut self, mode: CrashMode) -> R {
        self.snapshots.clear();
        self.sim.crash(mode);
        drop(self.db.take());
        self.open()?;
        self.check_all(&format!("after crash ({mode:?})"))
    }

    fn failed_sync(&mut self, ops: &[BOp], mode: CrashMode) -> R {
        self.snapshots.clear();
        let c = self.concrete(ops);
        let before = self.dump();
        self.sim.fail_always(FsOp::Sync);
        let r = self.db().write(to_batch(&c));
        prop_assert!(
            r.is_err(),
            "{}: write acknowledged although its sync failed",
            self.ctx()
        );
        prop_assert!(
            self.db().poisoned().is_some(),
            "{}: not poisoned",
            self.ctx()
        );
        prop_assert!(
            self.dump() == before,
            "{}: failed write visible",
            self.ctx()
        );
        prop_assert!(
            matches!(self.db().put(b"other", b"x"), Err(Error::Poisoned(_))),
            "{}: write accepted after poisoning",
            self.ctx()
        );
        self.sim.crash(mode);
        drop(self.db.take());
        self.open()?;
        self.adopt_recovered(&[c], 0, &format!("failed sync, crash {mode:?}"))?;
        self.check_all("after failed sync")
    }

    fn concurrent_crash(
        &mut self,
        batches: &[Vec<BOp>],
        acks_pct: usize,
        spin: u32,
        mode: CrashMode,
    ) -> R {
        self.snapshots.clear();
        let concrete: Vec<Concrete> = batches.iter().map(|b| self.concrete(b)).collect();
        let acks = concrete.len() * acks_pct / 100;
        let acked = Arc::new(AtomicUsize::new(0));
        let results = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let (db, acked, results, work) = (
                self.db().clone(),
                Arc::clone(&acked),
                Arc::clone(&results),
                concrete.clone(),
            );
            std::thread::spawn(move || {
                for b in &work {
                    let r = db.write(to_batch(b));
                    if r.is_ok() {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    results.lock().unwrap().push(r.map_err(|e| e.to_string()));
                }
            })
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while acked.load(Ordering::SeqCst) < acks && results.lock().unwrap().len() < concrete.len()
        {
            prop_assert!(Instant::now() < deadline, "{}: writer stuck", self.ctx());
            std::thread::yield_now();
        }
        for _ in 0..spin {
            std::hint::spin_loop();
        }
        // The power fails: from this instant nothing becomes durable
        // (syncs first), and no more IO succeeds.
        for op in [
            FsOp::Sync,
            FsOp::SyncDir,
            FsOp::Write,
            FsOp::Rename,
            FsOp::Remove,
            FsOp::Open,
        ] {
            self.sim.fail_always(op);
        }
        prop_assert!(writer.join().is_ok(), "{}: writer panicked", self.ctx());
        drop(self.db.take());
        self.sim.crash(mode);
        self.open()?;

        let results = results.lock().unwrap().clone();
        let a = results.iter().take_while(|r| r.is_ok()).count();
        prop_assert!(
            results[a..].iter().all(Result::is_err),
            "{}: a write was acknowledged after an earlier one failed: {:?}",
            self.ctx(),
            results
        );
        // Acknowledged: the first `a`. In flight: at most the next one.
        let candidates = &concrete[..(a + 1).min(concrete.len())];
        self.adopt_recovered(
            candidates,
            a,
            &format!("power cut under load, crash {mode:?}"),
        )?;
        self.check_all("after power cut under load")
    }

    fn flush(&mut self) -> R {
        if let Err(e) = self.db().flush() {
            return Err(TestCaseError::fail(format!(
                "{}: flush failed: {e}",
                self.ctx()
            )));
        }
        self.check_all("after a flush")
    }

    fn compact(&mut self, start: Option<u8>, end: Option<u8>) -> R {
        let (s, e) = (start.map(key), end.map(key));
        if let Err(e) = self.db().compact_range(s.as_deref(), e.as_deref()) {
            return Err(TestCaseError::fail(format!(
                "{}: compact_range failed: {e}",
                self.ctx()
            )));
        }
        self.check_all("after compact_range")?;
        for i in 0..self.snapshots.len() {
            self.read_snapshot(i)?;
        }
        // Everything compacted (and nothing written since): L0 is empty.
        if start.is_none() && end.is_none() {
            let l0 = gauge(self.db(), "level0.files");
            prop_assert!(
                l0 == 0.0,
                "{}: {} L0 files after compacting everything",
                self.ctx(),
                l0
            );
        }
        Ok(())
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
            "{}: scan {:?}..{:?} limit {}: got {} pairs, want {}",
            self.ctx(),
            String::from_utf8_lossy(&s),
            e.as_ref().map(|e| String::from_utf8_lossy(e).into_owned()),
            limit,
            got.len(),
            want.len()
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
            Op::Reopen => self.reopen(),
            Op::CrashReopen(mode) => self.crash_reopen(*mode),
            Op::FailedSync(b, mode) => self.failed_sync(b, *mode),
            Op::ConcurrentCrash {
                batches,
                acks_pct,
                spin,
                mode,
            } => self.concurrent_crash(batches, *acks_pct, *spin, *mode),
            Op::Flush => self.flush(),
            Op::Compact(a, b) => self.compact(*a, *b),
            Op::Scan(s, e, l) => self.scan(*s, *e, *l),
            Op::TakeSnapshot => {
                self.take_snapshot();
                Ok(())
            }
            Op::ReadSnapshot(i) => self.read_snapshot(*i),
        }
    }
}

/// A case that hangs (a write never acknowledged, a close that never
/// returns) cannot be shrunk; the watchdog prints its seed, variant, ops
/// and the operation it is stuck in, then aborts the test process.
struct Watchdog {
    stop: std::sync::mpsc::Sender<()>,
    step: Arc<AtomicUsize>,
}

const CASE_SECONDS_MAX: u64 = 60;

impl Watchdog {
    fn start(seed: u64, ops: &[Op], v: Variant) -> Self {
        let (stop, rx) = std::sync::mpsc::channel::<()>();
        let step = Arc::new(AtomicUsize::new(0));
        let (ops, at) = (ops.to_vec(), Arc::clone(&step));
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(Duration::from_secs(CASE_SECONDS_MAX))
            {
                eprintln!(
                    "HANG: case still running after {CASE_SECONDS_MAX} s, stuck in op #{}\n\
                     seed = {seed}, variant = {v:?}\nops = {ops:#?}",
                    at.load(Ordering::SeqCst)
                );
                std::process::abort();
            }
        });
        Watchdog { stop, step }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.stop.send(());
    }
}

fn run_case(seed: u64, ops: &[Op], v: Variant) -> R {
    let watchdog = Watchdog::start(seed, ops, v);
    let mut h = Harness::new(seed, v)?;
    for (i, op) in ops.iter().enumerate() {
        h.step = i;
        watchdog.step.store(i, Ordering::SeqCst);
        h.run(op)?;
    }
    h.step = ops.len();
    watchdog.step.store(ops.len(), Ordering::SeqCst);
    h.check_all("at the end")?;
    for i in 0..h.snapshots.len() {
        h.read_snapshot(i)?;
    }
    // A last crash must not lose anything either.
    h.crash_reopen(CrashMode::TearLastWrite)
}

proptest! {
    #![proptest_config(config())]

    /// Single-threaded: puts, deletes, batches, reopens, crashes in every
    /// mode, failed syncs.
    #[test]
    fn model_sequential(seed in any::<u64>(), ops in prop::collection::vec(op(SEQUENTIAL), 1..60)) {
        run_case(seed, &ops, SEQUENTIAL)?;
    }

    /// The same with small memtables, so writes freeze memtables (and roll
    /// segments) and reads go through frozen ones.
    #[test]
    fn model_sequential_small_memtables(
        seed in any::<u64>(),
        ops in prop::collection::vec(op(Variant { small_memtable: true, ..SEQUENTIAL }), 1..60),
    ) {
        run_case(seed, &ops, Variant { small_memtable: true, ..SEQUENTIAL })?;
    }

    /// The same with segments prepared ahead on the background thread.
    #[test]
    fn model_background_preparer(
        seed in any::<u64>(),
        ops in prop::collection::vec(op(Variant { background: true, ..SEQUENTIAL }), 1..60),
    ) {
        run_case(seed, &ops, Variant { background: true, ..SEQUENTIAL })?;
    }

    /// Flushes, manual compactions of random ranges and automatic ones
    /// (tiny tables and levels), scans, and snapshots held across them,
    /// with reopens, crashes and failed syncs.
    #[test]
    fn model_with_compactions(
        seed in any::<u64>(),
        ops in prop::collection::vec(op(Variant { compaction: true, ..SEQUENTIAL }), 1..60),
    ) {
        run_case(seed, &ops, Variant { compaction: true, ..SEQUENTIAL })?;
    }

    /// Power cuts while a second thread writes: each batch in flight is
    /// all there or not at all; every acknowledged one is there.
    #[test]
    fn model_concurrent_crash(
        seed in any::<u64>(),
        ops in prop::collection::vec(op(Variant { concurrent: true, ..SEQUENTIAL }), 1..40),
    ) {
        run_case(seed, &ops, Variant { concurrent: true, ..SEQUENTIAL })?;
    }
}
