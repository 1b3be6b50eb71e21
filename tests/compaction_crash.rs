#![allow(clippy::unwrap_used)]
//! Crashes and IO failures inside a compaction, through the simulated file
//! system: nothing acknowledged is lost, and no file is leaked for good.
//!
//! Each case builds the same database on a fresh `SimFs`: two rounds of
//! puts and deletes over 16 keys compacted to the bottom, then three more
//! rounds flushed to three L0 tables on top, so a full `compact_range`
//! merges L0 down and rewrites the tables below (several outputs each,
//! since tables are cut at 1 KiB), shadowing values and dropping
//! tombstones. Everything is flushed and durable before the compaction.
//!
//! - `crash_at_every_sync_of_a_compaction`: a clean run counts the syncs
//!   the compaction makes (output tables, directory, manifest); then for
//!   every `k` in `0..=count` durability freezes after `k` syncs (power
//!   lost there, the process runs on), the compaction finishes, and the
//!   machine crashes in each crash mode. Points before the manifest edit
//!   leave new tables that no manifest names; points after it leave the
//!   replaced inputs on disk (their removal was never made durable). Both
//!   kinds of point are required to occur.
//! - `failures_inside_a_compaction`: the `k`-th write, sync, directory
//!   sync, open or removal fails. A failed removal leaves a replaced input
//!   behind with the database still healthy; any other failure poisons
//!   the database, which is then closed.
//!
//! After each, the database opens (and closes, and is checked: the
//! manifest names exactly the tables in the directory, so an orphan left
//! by the crash was removed by the open; `cityhall check` finds the
//! levels sorted and disjoint), holds exactly the model, and compacts
//! again cleanly. Every message carries the seed and the crash point.

mod model_support;

use std::path::Path;
use std::sync::Arc;

use cityhall::compaction::CompactionOptions;
use cityhall::io::sim::{CrashMode, Op as FsOp, SimFs};
use cityhall::io::Fs;
use cityhall::{Db, Options, WriteBatch};
use model_support::{check_db, check_dir, counter, gauge, key, value, Model, DIR, KEYS};

const SEEDS: [u64; 2] = [0x5eed_0001, 0x5eed_0002];

fn options(sim: &SimFs) -> Options {
    Options {
        fs: Some(Arc::new(sim.clone())),
        wal_prepare_background: false,
        wal_segment_size_bytes: 64 << 10,
        compaction: CompactionOptions {
            // Only manual compactions (static sizing with a huge base: no
            // level is ever over its target): the crash points are then
            // those of the compaction under test alone.
            level_compaction_dynamic_level_bytes: false,
            level0_file_num_compaction_trigger: 1_000,
            level0_slowdown_writes_trigger: 2_000,
            level0_stop_writes_trigger: 3_000,
            max_bytes_for_level_base: 1 << 30,
            target_file_size_bytes: 1 << 10,
            num_levels: 4,
            idle_space_amplification_max: None,
            ..CompactionOptions::default()
        },
        ..Options::default()
    }
}

/// The database every case starts from, and its model and sequence.
struct Built {
    sim: SimFs,
    db: Db,
    model: Model,
    seq: u64,
}

fn build(seed: u64) -> Built {
    let sim = SimFs::new(seed);
    let db = Db::open(DIR, options(&sim)).unwrap();
    let mut model = Model::new();
    let mut seq = 0;
    let mut n = seed % 1000;
    for round in 0..5u64 {
        let mut b = WriteBatch::new();
        for k in 0..KEYS {
            n += 1;
            // Deletes of a changing third of the keys; values of 60 to
            // 260 bytes.
            if (u64::from(k) + round) % 3 == 0 && round > 0 {
                b.delete(key(k));
                model.remove(&key(k));
            } else {
                let v = value(n, 60 + (n as usize * 37) % 200);
                b.put(key(k), v.clone());
                model.insert(key(k), v);
            }
            seq += 1;
        }
        db.write(b).unwrap();
        db.flush().unwrap();
        if round == 1 {
            db.compact_range(None, None).unwrap();
        }
    }
    assert_eq!(gauge(&db, "level0.files"), 3.0, "seed {seed}: L0 before");
    Built {
        sim,
        db,
        model,
        seq,
    }
}

/// The table numbers in the directory and those the manifest names.
fn tables(sim: &SimFs) -> (Vec<u64>, Vec<u64>) {
    let dir = Path::new(DIR);
    let number = cityhall::manifest::read_current(sim, dir).unwrap().unwrap();
    let state = cityhall::manifest::recover(sim, dir, number).unwrap();
    let ssts = sim
        .list(dir)
        .unwrap()
        .iter()
        .filter_map(|n| n.strip_suffix(".sst")?.parse().ok())
        .collect();
    (ssts, state.tables.keys().copied().collect())
}

/// Opens the database after the fault and checks everything; returns
/// whether the compaction's manifest edit had landed (no L0 table left).
fn reopen_and_check(sim: &SimFs, model: &Model, seq: u64, ctx: &str) -> bool {
    // Open (recovery and cleanup), close (no background work while the
    // directory is checked), check, open again.
    Db::open(DIR, options(sim))
        .and_then(|db| db.close())
        .unwrap_or_else(|e| panic!("{ctx}: open after the fault: {e}"));
    check_dir(sim, ctx).unwrap_or_else(|e| panic!("{e}"));
    let db = Db::open(DIR, options(sim)).unwrap();
    check_db(&db, model, seq, ctx).unwrap_or_else(|e| panic!("{e}"));
    let landed = gauge(&db, "level0.files") == 0.0;
    // What was recovered compacts cleanly, and still holds the model.
    db.compact_range(None, None)
        .unwrap_or_else(|e| panic!("{ctx}: compaction after reopen: {e}"));
    assert_eq!(gauge(&db, "level0.files"), 0.0, "{ctx}");
    check_db(&db, model, seq, &format!("{ctx}, compacted again")).unwrap_or_else(|e| panic!("{e}"));
    db.close().unwrap();
    check_dir(sim, &format!("{ctx}, compacted again")).unwrap_or_else(|e| panic!("{e}"));
    landed
}

#[test]
fn crash_at_every_sync_of_a_compaction() {
    for seed in SEEDS {
        // A clean run: how many syncs the compaction makes.
        let b = build(seed);
        let base = b.sim.sync_count();
        b.db.compact_range(None, None).unwrap();
        let syncs = b.sim.sync_count() - base;
        assert!(
            counter(&b.db, "compaction.count") >= 2,
            "seed {seed}: the compaction under test did not rewrite tables"
        );
        drop(b);
        assert!(syncs >= 3, "seed {seed}: only {syncs} syncs");

        let (mut before_edit, mut after_edit, mut orphans_seen) = (0, 0, 0);
        for k in 0..=syncs {
            for mode in [
                CrashMode::DropUnsynced,
                CrashMode::TearLastWrite,
                CrashMode::Random,
            ] {
                let ctx = format!("seed {seed}, crash after {k} of {syncs} syncs, {mode:?}");
                let b = build(seed);
                b.sim.freeze_durability_after(k);
                b.db.compact_range(None, None)
                    .unwrap_or_else(|e| panic!("{ctx}: compaction: {e}"));
                b.sim.crash(mode);
                drop(b.db);
                let (ssts, named) = tables(&b.sim);
                if ssts != named {
                    orphans_seen += 1;
                }
                if reopen_and_check(&b.sim, &b.model, b.seq, &ctx) {
                    after_edit += 1;
                } else {
                    before_edit += 1;
                }
            }
        }
        assert!(
            before_edit > 0 && after_edit > 0 && orphans_seen > 0,
            "seed {seed}: crash points before the edit {before_edit}, after it {after_edit}, \
             with files no manifest named {orphans_seen}"
        );
    }
}

#[test]
fn failures_inside_a_compaction() {
    for seed in SEEDS {
        let mut leaked_then_cleaned = 0;
        for (op, count) in [
            (FsOp::Write, 12),
            (FsOp::Sync, 8),
            (FsOp::SyncDir, 3),
            (FsOp::Open, 8),
            (FsOp::Remove, 4),
        ] {
            for k in 0..count {
                let ctx = format!("seed {seed}, {op:?} #{k} fails");
                let b = build(seed);
                b.sim.fail_nth(op, k);
                let result = b.db.compact_range(None, None);
                let poisoned = b.db.poisoned();
                match (&result, op) {
                    // A table that cannot be removed stays for the next
                    // open; the database goes on.
                    (Ok(()), FsOp::Remove) => assert!(poisoned.is_none(), "{ctx}"),
                    (Ok(()), _) => {} // the fault came after the compaction
                    (Err(e), _) => assert!(
                        poisoned.is_some(),
                        "{ctx}: compaction failed ({e}) but the database is not poisoned"
                    ),
                }
                let closed = b.db.close();
                assert_eq!(
                    closed.is_ok(),
                    poisoned.is_none(),
                    "{ctx}: close {closed:?}"
                );
                b.sim.clear_faults();
                let (ssts, named) = tables(&b.sim);
                if ssts != named {
                    leaked_then_cleaned += 1;
                }
                reopen_and_check(&b.sim, &b.model, b.seq, &ctx);
            }
        }
        assert!(
            leaked_then_cleaned > 0,
            "seed {seed}: no failure left a file the manifest does not name"
        );
    }
}
