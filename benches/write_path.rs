//! Write-path throughput: durable puts with 1, 16 and 64 concurrent
//! writers, non-durable (relaxed) puts, and the cost of the sync itself
//! (append-and-grow versus overwrite of pre-zeroed blocks).
//!
//! A writer is a thread blocked in `Db::put` (`durable-N`), or an async
//! task awaiting `Db::write_async`, N of them on one thread
//! (`durable-async-N`), which is how the server's connections write.
//!
//! Not a criterion bench: group commit needs many writers at once, so each
//! case runs its writers for a fixed time and reports operations per second.
//!
//! ```text
//! cargo bench --bench write_path                 # all cases, 5 s each
//! cargo bench --bench write_path -- --secs 10 durable-16
//! ```
//! Set CITYHALL_BENCH_DIR to put the data on a particular file system
//! (default: the system temp directory).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use cityhall::io::{default_fs, AlignedBuf, OpenOptions};
use cityhall::{Db, Durability, Options};

const VALUE_BYTES: usize = 100;

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("CITYHALL_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

fn open_db(dir: &tempfile::TempDir, durability: Durability) -> Db {
    Db::open(
        dir.path(),
        Options {
            durability,
            memtable_size_bytes_max: 1 << 30,
            ..Options::default()
        },
    )
    .unwrap()
}

/// CPU seconds (user + system) this process has used so far, all threads.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to an rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

fn report(db: &Db, what: &str, writers: usize, n: u64, elapsed: f64, cpu: f64) {
    let m = db.metrics();
    let group = match m.get("wal.group_writes") {
        Some(cityhall::metrics::MetricValue::Histogram(h)) => h.mean,
        _ => 0.0,
    };
    let sync_p50 = match m.get("wal.sync_latency_us") {
        Some(cityhall::metrics::MetricValue::Histogram(h)) => h.p50,
        _ => 0,
    };
    println!(
        "{what:14} writers={writers:3}  {:>10.0} puts/s  ({n} puts in {elapsed:.1} s, \
         {group:.1} writes/group, sync p50 {sync_p50} us, {:.1} us CPU a put)",
        n as f64 / elapsed,
        cpu * 1e6 / n.max(1) as f64
    );
}

fn puts(writers: usize, durability: Durability, secs: f64) {
    let dir = bench_dir();
    let db = open_db(&dir, durability);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..writers)
        .map(|t| {
            let (db, stop, done) = (db.clone(), Arc::clone(&stop), Arc::clone(&done));
            std::thread::spawn(move || {
                let value = [b'v'; VALUE_BYTES];
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("{t:04}{i:012}");
                    db.put(key.as_bytes(), &value).unwrap();
                    i += 1;
                }
                done.fetch_add(i, Ordering::Relaxed);
            })
        })
        .collect();
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    let mode = match durability {
        Durability::Sync => "durable",
        Durability::Relaxed { .. } => "relaxed",
    };
    report(&db, mode, writers, n, elapsed, cpu_seconds() - cpu0);
    db.close().unwrap();
}

/// Wakes the bench thread when a write completes.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// `writers` durable puts in flight at all times from one thread, each
/// a `write_async` future: as soon as one resolves, its writer puts the
/// next key.
fn async_puts(writers: usize, secs: f64) {
    let dir = bench_dir();
    let db = open_db(&dir, Durability::Sync);
    let value = [b'v'; VALUE_BYTES];
    let put = |t: usize, i: u64| {
        let mut b = cityhall::WriteBatch::new();
        b.put(format!("{t:04}{i:012}").into_bytes(), value.to_vec());
        db.write_async(b)
    };
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut next = vec![1u64; writers];
    let mut inflight: Vec<_> = (0..writers).map(|t| Some(put(t, 0))).collect();
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut n = 0u64;
    let mut outstanding = writers;
    while outstanding > 0 {
        let running = Instant::now() < deadline;
        let mut progressed = false;
        for (t, slot) in inflight.iter_mut().enumerate() {
            let Some(f) = slot else { continue };
            if let Poll::Ready(r) = Pin::new(f).poll(&mut cx) {
                r.unwrap();
                n += 1;
                progressed = true;
                if running {
                    *slot = Some(put(t, next[t]));
                    next[t] += 1;
                } else {
                    *slot = None;
                    outstanding -= 1;
                }
            }
        }
        if !progressed {
            std::thread::park();
        }
    }
    report(
        &db,
        "durable-async",
        writers,
        n,
        start.elapsed().as_secs_f64(),
        cpu_seconds() - cpu0,
    );
    db.close().unwrap();
}

/// fdatasync after a 4 KiB O_DIRECT write that grows the file, versus
/// after overwriting a block of a pre-zeroed file.
fn sync_cost(secs: f64) {
    let dir = bench_dir();
    let fs = default_fs();
    let mut buf = AlignedBuf::with_capacity(4096);
    buf.extend_from_slice(&[1u8; 4096]);
    for (name, prezero) in [("append+grow", false), ("overwrite", true)] {
        let path = dir.path().join(name);
        let f = fs
            .open(&path, OpenOptions::create_new().with_direct())
            .unwrap();
        let blocks = 16384u64;
        if prezero {
            let zeros = AlignedBuf::with_capacity(1 << 20);
            for i in 0..(blocks * 4096 / (1 << 20)) {
                f.write_at(zeros.full(), i * (1 << 20)).unwrap();
            }
            f.sync_data().unwrap();
        }
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed().as_secs_f64() < secs && n < blocks {
            f.write_at_sync(buf.as_padded(), n * 4096).unwrap();
            n += 1;
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("sync-cost {name:12} {us:8.1} us per 4 KiB write+fdatasync ({n} writes)");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut secs = 5.0;
    let mut filters = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--secs" => secs = it.next().and_then(|s| s.parse().ok()).unwrap_or(secs),
            "--bench" => {}
            other if other.starts_with("--") => {}
            other => filters.push(other.to_string()),
        }
    }
    let want = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f));
    println!("backend: {}", default_fs().backend());
    if want("sync-cost") {
        sync_cost(secs);
    }
    for writers in [1, 16, 64] {
        if want(&format!("durable-{writers}")) {
            puts(writers, Durability::Sync, secs);
        }
    }
    for writers in [16, 64] {
        if want(&format!("durable-async-{writers}")) {
            async_puts(writers, secs);
        }
    }
    for writers in [1, 16] {
        if want(&format!("relaxed-{writers}")) {
            puts(writers, Durability::Relaxed { interval_ms: 100 }, secs);
        }
    }
}
