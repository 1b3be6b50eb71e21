//! Kill -9 cycles of the real `cityhall` server, short enough for CI: the
//! harness of `cityhall-crashtest` (tools/crashtest/src/harness.rs, shared
//! rather than written twice) runs tens of cycles of concurrent puts,
//! deletes, batches and time-series adds, SIGKILL at a random moment,
//! `cityhall check`, restart, and checks every acknowledged write (newest
//! value), every in-flight write (all or nothing), and nothing else.
//!
//! The seed is printed; set `CITYHALL_CRASH_SEED` to run one again. Long
//! runs: `cityhall-crashtest --cycles 1000 --seed S`.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../tools/crashtest/src/harness.rs"]
mod harness;

use std::path::PathBuf;

fn seed() -> u64 {
    match std::env::var("CITYHALL_CRASH_SEED") {
        Ok(s) => s.parse().expect("CITYHALL_CRASH_SEED must be a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

#[test]
fn acknowledged_writes_survive_kill_9_cycles() {
    let seed = seed();
    eprintln!("server_crash: seed {seed} (CITYHALL_CRASH_SEED={seed} to run it again)");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut cfg = harness::Config::new(
        PathBuf::from(env!("CARGO_BIN_EXE_cityhall")),
        dir.clone(),
        seed,
        24,
    );
    cfg.clients = 3;
    cfg.keys_per_client = 150;
    cfg.run_ms_max = 300;
    // Small enough that tables are flushed and compacted within the run.
    cfg.memtable_size_bytes_max = 64 << 10;
    cfg.wal_segment_size_bytes = 128 << 10;
    let summary = match harness::run(&cfg) {
        Ok(s) => s,
        Err(f) => panic!("{f}"),
    };
    eprintln!("server_crash: {summary:?}");
    assert_eq!(summary.cycles, cfg.cycles);
    assert!(
        summary.acked_kv_ops > 0 && summary.acked_points > 0 && summary.acked_batches > 0,
        "seed {seed}: the load acknowledged too little to test anything: {summary:?}"
    );
    let tables = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".sst"))
        })
        .count();
    assert!(tables > 0, "seed {seed}: no table was ever flushed");
}
