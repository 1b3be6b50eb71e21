//! Running one workload: a thread per `--threads`, all released together
//! by a barrier, each in a closed loop claiming the run's next operation
//! from a shared counter until `--num` are handed out; latency is measured
//! around each store call and recorded in nanoseconds.
//!
//! The operations are cityhall-loadgen's, drawn the same way: thread `t`
//! of the workload at position `p` in `--workload` owns the generator
//! `Rng::new(seed, p << 32 | t)`, draws a key index for every operation
//! (`fillseq` then ignores it and puts the run-wide sequence number), and
//! for a put draws the value from the shared `ValuePool` right after. So
//! with the same `--seed` and workload list, a single-threaded run issues
//! the very keys and values the load generator issues.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::cli::{Config, Workload};
use crate::engines::Store;
use crate::keys::{KeyChooser, KeyFormat, ValuePool};
use crate::rng::Rng;

/// Longest latency recorded exactly (cityhall-loadgen's bound).
const LATENCY_NS_MAX: u64 = 3_600 * 1_000_000_000;
/// Significant digits of the histograms (cityhall-loadgen's).
pub const SIGFIG: u8 = 3;
/// Progress lines on stderr this often, once a run is this old.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// A latency histogram in nanoseconds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, SIGFIG)
        .unwrap_or_else(|e| panic!("histogram bounds rejected: {e}"))
}

/// What a run (or one thread of it) measured.
#[derive(Debug)]
pub struct Measured {
    pub hist: Histogram<u64>,
    pub found: u64,
    pub not_found: u64,
    pub pairs: u64,
    /// Key and value bytes written or read.
    pub bytes: u64,
}

impl Measured {
    fn new() -> Measured {
        Measured {
            hist: new_histogram(),
            found: 0,
            not_found: 0,
            pairs: 0,
            bytes: 0,
        }
    }

    fn merge(&mut self, o: &Measured) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.hist.add(&o.hist);
        self.found += o.found;
        self.not_found += o.not_found;
        self.pairs += o.pairs;
        self.bytes += o.bytes;
    }
}

/// The result of one workload.
#[derive(Debug)]
pub struct RunResult {
    pub workload: Workload,
    pub elapsed: Duration,
    pub m: Measured,
    pub error: Option<String>,
}

impl RunResult {
    pub fn ops_per_sec(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.m.hist.len() as f64 / s
        } else {
            0.0
        }
    }
}

/// What the threads share.
struct Shared<'a> {
    cfg: &'a Config,
    store: &'a dyn Store,
    pool: &'a ValuePool,
    chooser: KeyChooser,
    workload: Workload,
    position: usize,
    claimed: AtomicU64,
    completed: AtomicU64,
    stop: AtomicBool,
}

impl Shared<'_> {
    fn claim(&self) -> Option<u64> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        let i = self.claimed.fetch_add(1, Ordering::Relaxed);
        (i < self.cfg.num).then_some(i)
    }
}

/// Runs `workload` (at `position` in the list) on `store`.
pub fn run(
    cfg: &Config,
    store: &dyn Store,
    pool: &ValuePool,
    workload: Workload,
    position: usize,
) -> RunResult {
    let shared = Shared {
        cfg,
        store,
        pool,
        chooser: KeyChooser::uniform(cfg.key_space),
        workload,
        position,
        claimed: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    };
    let barrier = Barrier::new(cfg.threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..cfg.threads)
            .map(|t| {
                let (shared, barrier) = (&shared, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let r = thread(shared, t);
                    if r.is_err() {
                        shared.stop.store(true, Ordering::Relaxed);
                    }
                    (r, Instant::now())
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        let mut next = PROGRESS_EVERY;
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(5));
            if t0.elapsed() >= next {
                eprintln!(
                    "... {:<12} {:>6.1} s {:>11} ops",
                    workload.name(),
                    t0.elapsed().as_secs_f64(),
                    shared.completed.load(Ordering::Relaxed)
                );
                next += PROGRESS_EVERY;
            }
        }
        let mut result = RunResult {
            workload,
            elapsed: Duration::ZERO,
            m: Measured::new(),
            error: None,
        };
        for h in handles {
            match h.join() {
                Ok((Ok(m), end)) => {
                    result.m.merge(&m);
                    result.elapsed = result.elapsed.max(end.duration_since(t0));
                }
                Ok((Err(e), _)) => {
                    result.error.get_or_insert(e);
                }
                Err(_) => {
                    result
                        .error
                        .get_or_insert_with(|| "a thread panicked".into());
                }
            }
        }
        result
    })
}

/// One thread's closed loop.
fn thread(sh: &Shared<'_>, t: usize) -> Result<Measured, String> {
    let cfg = sh.cfg;
    let mut rng = Rng::new(cfg.seed, ((sh.position as u64) << 32) | t as u64);
    let mut keys = KeyFormat::new(cfg.key_size);
    let hot_keys = cfg.key_space.div_ceil(100).max(1);
    let scan_limit = cfg.scan_length as usize;
    let mut m = Measured::new();
    while let Some(seq) = sh.claim() {
        let index = sh.chooser.next(&mut rng);
        let start;
        match sh.workload {
            Workload::Fillseq | Workload::Fillrandom | Workload::Overwrite => {
                let i = if sh.workload == Workload::Fillseq {
                    seq
                } else {
                    index
                };
                let value = sh.pool.value(&mut rng, cfg.value_size);
                let key = keys.key(i);
                m.bytes += (key.len() + value.len()) as u64;
                start = Instant::now();
                sh.store.put(key, value)?;
            }
            Workload::Readrandom | Workload::Readmissing | Workload::Readhot => {
                let key = match sh.workload {
                    Workload::Readmissing => keys.missing_key(index),
                    Workload::Readhot => keys.key(rng.below(hot_keys)),
                    _ => keys.key(index),
                };
                start = Instant::now();
                let found = sh.store.get(key)?;
                match found {
                    Some(len) => {
                        m.found += 1;
                        m.bytes += (len + cfg.key_size) as u64;
                    }
                    None => m.not_found += 1,
                }
            }
            Workload::Scan => {
                let key = keys.key(index);
                start = Instant::now();
                // limit + 1, as the load generator's embedded session asks
                // cityhall::Db::scan for (to learn whether more follow).
                let mut pairs = sh.store.scan(key, scan_limit + 1)?;
                pairs.truncate(scan_limit);
                m.pairs += pairs.len() as u64;
                m.bytes += pairs
                    .iter()
                    .map(|(k, v)| (k.len() + v.len()) as u64)
                    .sum::<u64>();
            }
            Workload::Deleterandom => {
                let key = keys.key(index);
                start = Instant::now();
                sh.store.delete(key)?;
            }
        }
        let ns = u64::try_from(start.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .clamp(1, LATENCY_NS_MAX);
        m.hist.saturating_record(ns);
        sh.completed.fetch_add(1, Ordering::Relaxed);
    }
    Ok(m)
}
