//! Faults under a live server: the server runs in this process
//! (`server::start_in_process`) on the simulated file system, and the disk
//! fails under it while real clients talk to it over TCP.
//!
//! - Disk full: writes are refused with an error that says so, reads go
//!   on, and once space returns writes resume without a restart; nothing
//!   acknowledged is lost, even to a power loss afterwards.
//! - Failing reads: a read that fails under the flush poisons the engine;
//!   clients get an error naming the read, every acknowledged value stays
//!   readable, and the server keeps answering. A read that fails while a
//!   database opens fails the open with an error naming the file, at every
//!   read of the open; it never opens on wrong data.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cityhall::client::Client;
use cityhall::io::sim::{CrashMode, Op, SimFs};
use cityhall::io::Fs;
use cityhall::server::{start_in_process, InProcess, ServerConfig};
use cityhall::{Db, Options};

const DIR: &str = "/db";

fn options(sim: &SimFs, memtable: usize) -> Options {
    Options {
        fs: Some(Arc::new(sim.clone())),
        wal_segment_size_bytes: 64 << 10,
        memtable_size_bytes_max: memtable,
        ..Options::default()
    }
}

fn server(sim: &SimFs, memtable: usize) -> InProcess {
    let mut config = ServerConfig::new(PathBuf::from(DIR));
    config.listen = "127.0.0.1:0".into();
    config.threads = 1;
    config.options = options(sim, memtable);
    start_in_process(config).unwrap()
}

fn live_bytes(sim: &SimFs) -> u64 {
    sim.list(Path::new(DIR))
        .unwrap()
        .iter()
        .map(|n| {
            sim.read_file(&Path::new(DIR).join(n))
                .map_or(0, |d| d.len() as u64)
        })
        .sum()
}

fn key(i: usize) -> Vec<u8> {
    format!("key{i:04}").into_bytes()
}

fn val(i: usize, len: usize) -> Vec<u8> {
    let mut v = format!("value{i}.").into_bytes();
    v.resize(len.max(v.len()), b'a' + (i % 26) as u8);
    v
}

/// After a power loss, every acknowledged key holds its value.
fn assert_durable(sim: &SimFs, acked: &[(Vec<u8>, Vec<u8>)], ctx: &str) {
    sim.crash(CrashMode::DropUnsynced);
    let db = Db::open(DIR, options(sim, 64 << 20)).unwrap();
    for (k, v) in acked {
        assert_eq!(
            db.get(k).unwrap().as_ref(),
            Some(v),
            "{ctx}: {} lost",
            String::from_utf8_lossy(k)
        );
    }
    db.close().unwrap();
}

#[test]
fn disk_full_refuses_writes_reads_go_on_and_writes_resume() {
    let sim = SimFs::new(31);
    let srv = server(&sim, 64 << 20);
    let mut c = Client::connect(&srv.addr).unwrap();
    let mut acked = Vec::new();
    for i in 0..4 {
        c.put(&key(i), &val(i, 1000)).unwrap();
        acked.push((key(i), val(i, 1000)));
    }
    // Room for the segments already there (and the one prepared ahead),
    // not for one more. The first write asked the preparer thread for that
    // segment: wait until it has joined the directory.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sim
        .list(Path::new(DIR))
        .unwrap()
        .iter()
        .filter(|n| n.ends_with(".log"))
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no segment was prepared ahead"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    sim.set_space_limit(Some(live_bytes(&sim) + 4096));
    let mut i = 4;
    let err = loop {
        match c.put(&key(i), &val(i, 8 << 10)) {
            Ok(()) => acked.push((key(i), val(i, 8 << 10))),
            Err(e) => break e.to_string(),
        }
        i += 1;
        assert!(i < 200, "the disk never filled");
    };
    assert!(
        err.contains("No space left on device"),
        "the refusal does not say the disk is full: {err}"
    );
    assert!(acked.len() > 4, "no write went into the prepared space");

    // Reads go on, on this connection and on new ones.
    for (k, v) in &acked {
        assert_eq!(c.get(k).unwrap().as_ref(), Some(v));
    }
    assert_eq!(c.get(&key(i)).unwrap(), None, "the refused write applied");
    let mut other = Client::connect(&srv.addr).unwrap();
    other.ping().unwrap();
    assert_eq!(other.get(&acked[0].0).unwrap().as_ref(), Some(&acked[0].1));

    // Still full: refused again, and the refusal is not a poisoning.
    let again = other
        .put(&key(i), &val(i, 8 << 10))
        .unwrap_err()
        .to_string();
    assert!(again.contains("No space left on device"), "{again}");
    assert_eq!(srv.shared.db.poisoned(), None);

    // Space returns: writes resume without a restart.
    sim.set_space_limit(None);
    for j in i..i + 20 {
        c.put(&key(j), &val(j, 8 << 10)).unwrap();
        acked.push((key(j), val(j, 8 << 10)));
    }
    for (k, v) in &acked {
        assert_eq!(other.get(k).unwrap().as_ref(), Some(v));
    }
    drop((c, other));
    srv.stop().unwrap();
    assert_durable(&sim, &acked, "after the disk filled and emptied");
}

#[test]
fn failing_reads_give_clear_errors_and_the_server_stays_up() {
    let sim = SimFs::new(32);
    let srv = server(&sim, 16 << 10);
    let mut c = Client::connect(&srv.addr).unwrap();
    let mut acked = Vec::new();
    for i in 0..5 {
        c.put(&key(i), &val(i, 500)).unwrap();
        acked.push((key(i), val(i, 500)));
    }
    // From now on every read fails: the flush reads back each table it
    // writes, so the first flush fails.
    sim.fail_always(Op::Read);
    let mut i = 5;
    let err = loop {
        match c.put(&key(i), &val(i, 500)) {
            Ok(()) => acked.push((key(i), val(i, 500))),
            Err(e) => break e.to_string(),
        }
        i += 1;
        assert!(i < 2000, "no flush ran into the failing read");
    };
    assert!(
        err.contains("read") && err.contains("simulated EIO"),
        "the error does not name the failed read: {err}"
    );
    // Every acknowledged value is still served, to new connections too.
    let mut other = Client::connect(&srv.addr).unwrap();
    other.ping().unwrap();
    for (k, v) in &acked {
        assert_eq!(other.get(k).unwrap().as_ref(), Some(v));
    }
    // Writes stay refused, each with the reason.
    let again = other.put(b"after", b"fault").unwrap_err().to_string();
    assert!(again.contains("simulated EIO"), "{again}");
    drop((c, other));
    sim.clear_faults();
    let _ = srv.stop();
    assert_durable(&sim, &acked, "after failing reads");
}

/// A read failing at any point of an open fails the open with an error
/// naming the operation and the file; the next open (the fault gone)
/// recovers everything.
#[test]
fn failing_read_at_open_fails_the_open_cleanly() {
    let sim = SimFs::new(33);
    let db = Db::open(DIR, options(&sim, 16 << 10)).unwrap();
    let mut acked = Vec::new();
    for i in 0..120 {
        db.put(&key(i), &val(i, 300)).unwrap();
        acked.push((key(i), val(i, 300)));
        // Tables for the open to read, and a log after them: a full
        // memtable's flush may still wait when close stops the flusher.
        if i == 99 {
            db.flush().unwrap();
        }
    }
    db.close().unwrap();
    drop(db);
    assert!(
        sim.list(Path::new(DIR))
            .unwrap()
            .iter()
            .any(|n| n.ends_with(".sst")),
        "no table to read at open"
    );
    let mut failed_opens = 0;
    for nth in 0.. {
        sim.fail_nth(Op::Read, nth);
        match Db::open(DIR, options(&sim, 16 << 10)) {
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("simulated EIO") && msg.contains(DIR),
                    "read {nth}: the open failed without naming the read and the file: {msg}"
                );
                failed_opens += 1;
            }
            Ok(db) => {
                // The fault was past the last read of the open.
                for (k, v) in &acked {
                    assert_eq!(db.get(k).unwrap().as_ref(), Some(v), "read {nth}");
                }
                db.close().unwrap();
                break;
            }
        }
        sim.clear_faults();
        assert!(nth < 10_000, "opens never stop reading");
    }
    sim.clear_faults();
    assert!(failed_opens > 2, "only {failed_opens} reads at open");
    assert_durable(&sim, &acked, "after failed opens");
}
