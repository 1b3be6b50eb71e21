//! Write-path throughput: durable puts with 1, 16 and 64 concurrent
//! writers, non-durable (relaxed) puts, and the cost of the sync itself
//! (append-and-grow versus overwrite of pre-zeroed blocks).
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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
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

fn puts(writers: usize, durability: Durability, secs: f64) {
    let dir = bench_dir();
    let db = Db::open(
        dir.path(),
        Options {
            durability,
            memtable_size_bytes_max: 1 << 30,
            ..Options::default()
        },
    )
    .unwrap();
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
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    let m = db.metrics();
    let group = match m.get("wal.group_writes") {
        Some(cityhall::metrics::MetricValue::Histogram(h)) => h.mean,
        _ => 0.0,
    };
    let sync_p50 = match m.get("wal.sync_latency_us") {
        Some(cityhall::metrics::MetricValue::Histogram(h)) => h.p50,
        _ => 0,
    };
    let mode = match durability {
        Durability::Sync => "durable",
        Durability::Relaxed { .. } => "relaxed",
    };
    println!(
        "{mode:8} writers={writers:3}  {:>10.0} puts/s  ({n} puts in {elapsed:.1} s, \
         {group:.1} writes/group, sync p50 {sync_p50} us)",
        n as f64 / elapsed
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
    for writers in [1, 16] {
        if want(&format!("relaxed-{writers}")) {
            puts(writers, Durability::Relaxed { interval_ms: 100 }, secs);
        }
    }
}
