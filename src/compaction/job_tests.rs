//! Tests of the compaction job on the simulated file system: random
//! versions, tombstones and snapshots through the job, checked against a
//! model of what every reader sees; output shape; faults.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::error::Error;
use crate::io::sim::{Op, SimFs};
use crate::io::{Fs, OpenOptions};
use crate::iter::EntryIter;
use crate::sstable::{BlockCache, Table, TableBuilder, TableOptions};
use crate::types::{
    compare_internal_keys, internal_key, split_internal_key, user_key, SeqNo, ValueKind, SEQ_MAX,
};

type Entry = (Vec<u8>, Vec<u8>);

fn table_opts() -> TableOptions {
    TableOptions {
        block_size_bytes: 256,
        restart_interval: 4,
        write_buffer_bytes: 4096,
        compression: false,
    }
}

struct Fixture {
    fs: SimFs,
    dir: PathBuf,
    cache: Arc<BlockCache>,
    next: Cell<u64>,
}

impl Fixture {
    fn new(seed: u64) -> Self {
        Fixture {
            fs: SimFs::new(seed),
            dir: PathBuf::from("/db"),
            cache: Arc::new(BlockCache::new(1 << 20)),
            next: Cell::new(100),
        }
    }

    /// Writes sorted `entries` as table `number`.
    fn write(&self, number: u64, entries: &[Entry]) -> TableDesc {
        let path = self.dir.join(table_file_name(number));
        let file = self
            .fs
            .open(&path, OpenOptions::create_new().with_direct())
            .unwrap();
        let mut b = TableBuilder::new(file, table_opts());
        for (k, v) in entries {
            b.add(k, v).unwrap();
        }
        let meta = b.finish().unwrap();
        TableDesc {
            number,
            size: meta.file_size,
            smallest: meta.smallest,
            largest: meta.largest,
        }
    }

    fn open(&self, number: u64) -> Table {
        let path = self.dir.join(table_file_name(number));
        let file = self.fs.open(&path, OpenOptions::read()).unwrap();
        Table::open(file, number, Arc::clone(&self.cache)).unwrap()
    }

    fn read(&self, number: u64) -> Vec<Entry> {
        let mut it = self.open(number).iter();
        it.seek_to_first().unwrap();
        let mut out = Vec::new();
        while it.valid() {
            out.push((it.key().to_vec(), it.value().to_vec()));
            it.next().unwrap();
        }
        out
    }

    fn run(
        &self,
        plan: &CompactionPlan,
        smallest: SeqNo,
        live: &[SeqNo],
        target: u64,
    ) -> crate::Result<CompactionOutput> {
        let inputs = self.inputs(plan);
        self.run_on(plan, inputs, smallest, live, target)
    }

    fn inputs(&self, plan: &CompactionPlan) -> Vec<Table> {
        plan.input_numbers()
            .into_iter()
            .map(|n| self.open(n))
            .collect()
    }

    fn run_on(
        &self,
        plan: &CompactionPlan,
        inputs: Vec<Table>,
        smallest: SeqNo,
        live: &[SeqNo],
        target: u64,
    ) -> crate::Result<CompactionOutput> {
        let next_file = || {
            let n = self.next.get();
            self.next.set(n + 1);
            n
        };
        run_compaction(
            &self.fs,
            &self.dir,
            plan,
            inputs,
            smallest,
            live,
            &next_file,
            &table_opts(),
            target,
        )
    }

    fn files(&self) -> Vec<String> {
        self.fs.list(&self.dir).unwrap()
    }
}

fn plan_for(tables: Vec<TableDesc>, is_bottom: bool) -> CompactionPlan {
    CompactionPlan {
        reason: CompactionReason::Manual,
        score: 0.0,
        input_level: 0,
        output_level: 1,
        key_range: KeyRange::covering(&tables).unwrap(),
        inputs: vec![LevelInputs { level: 0, tables }],
        trivial_move: false,
        is_bottom,
        compact_pointer: None,
        target_file_size_bytes: 0,
    }
}

fn sorted(mut v: Vec<Entry>) -> Vec<Entry> {
    v.sort_by(|a, b| compare_internal_keys(&a.0, &b.0));
    v
}

/// Per user key, the newest version with sequence <= `snap`.
fn visible(entries: &[Entry], snap: SeqNo) -> BTreeMap<Vec<u8>, (SeqNo, ValueKind, Vec<u8>)> {
    let mut m = BTreeMap::new();
    for (k, v) in entries {
        let (user, seq, kind) = split_internal_key(k).unwrap();
        if seq <= snap && m.get(user).is_none_or(|&(s, _, _): &(SeqNo, _, _)| s < seq) {
            m.insert(user.to_vec(), (seq, kind, v.clone()));
        }
    }
    m
}

/// What a reader sees: the visible puts only.
fn values(entries: &[Entry], snap: SeqNo) -> BTreeMap<Vec<u8>, Vec<u8>> {
    visible(entries, snap)
        .into_iter()
        .filter(|(_, (_, kind, _))| *kind == ValueKind::Put)
        .map(|(k, (_, _, v))| (k, v))
        .collect()
}

/// The model of the job's rule, written independently: per key, keep the
/// newest version of every snapshot stripe, except a bottom tombstone at or
/// below every snapshot.
fn expected(all: &[Entry], bounds: &[SeqNo], is_bottom: bool) -> Vec<Entry> {
    let earliest = bounds.iter().copied().min().unwrap_or(SEQ_MAX);
    let stripe = |seq: SeqNo| bounds.iter().filter(|&&b| b < seq).count();
    let mut out = Vec::new();
    let mut last: Option<(Vec<u8>, usize)> = None;
    for (k, v) in all {
        let (user, seq, kind) = split_internal_key(k).unwrap();
        let st = stripe(seq);
        let shadowed = last
            .as_ref()
            .is_some_and(|(u, s)| u.as_slice() == user && *s == st);
        last = Some((user.to_vec(), st));
        let obsolete = kind == ValueKind::Delete && is_bottom && seq <= earliest;
        if !shadowed && !obsolete {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

#[derive(Clone, Debug)]
struct Version {
    key: u8,
    put: bool,
    table: usize,
    len: usize,
}

fn version() -> impl Strategy<Value = Version> {
    (0u8..40, prop::bool::weighted(0.7), 0usize..4, 0usize..60).prop_map(
        |(key, put, table, len)| Version {
            key,
            put,
            table,
            len,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn compaction_preserves_every_snapshot_view(
        versions in prop::collection::vec(version(), 1..300),
        snaps in prop::collection::vec(1u64..320, 0..4),
        smallest_is_last in any::<bool>(),
        is_bottom in any::<bool>(),
        target in 512u64..4096,
        seed in any::<u64>(),
    ) {
        let fx = Fixture::new(seed);
        let last_seq = versions.len() as u64;
        let mut per_table = vec![Vec::new(); 4];
        let mut all = Vec::new();
        for (i, v) in versions.iter().enumerate() {
            let seq = i as u64 + 1;
            let key = format!("key{:03}", v.key).into_bytes();
            let e = if v.put {
                (internal_key(&key, seq, ValueKind::Put), vec![b'a' + (seq % 26) as u8; v.len])
            } else {
                (internal_key(&key, seq, ValueKind::Delete), Vec::new())
            };
            per_table[v.table].push(e.clone());
            all.push(e);
        }
        let all = sorted(all);
        let mut descs = Vec::new();
        for (i, entries) in per_table.into_iter().enumerate() {
            if !entries.is_empty() {
                descs.push(fx.write(i as u64 + 1, &sorted(entries)));
            }
        }
        let mut live = snaps.clone();
        live.sort_unstable();
        live.dedup();
        let smallest = match live.first() {
            Some(&s) => s,
            None if smallest_is_last => last_seq,
            None => SEQ_MAX,
        };
        let plan = plan_for(descs.clone(), is_bottom);
        let out = fx.run(&plan, smallest, &live, target).unwrap();

        // Shape: sorted, disjoint in user keys, at the output level, sized.
        let mut got = Vec::new();
        for (i, t) in out.new_tables.iter().enumerate() {
            prop_assert_eq!(t.level, 1);
            let entries = fx.read(t.number);
            prop_assert_eq!(&entries.first().unwrap().0, &t.smallest);
            prop_assert_eq!(&entries.last().unwrap().0, &t.largest);
            if let Some(next) = out.new_tables.get(i + 1) {
                prop_assert!(user_key(&t.largest) < user_key(&next.smallest), "a user key spans two outputs");
                prop_assert!(t.size >= target, "output {} of {} bytes cut before the target", i, t.size);
            }
            prop_assert!(t.size <= target + 8192, "output {} of {} bytes", i, t.size);
            got.extend(entries);
        }
        // Accounting.
        prop_assert_eq!(out.bytes_read, descs.iter().map(|d| d.size).sum::<u64>());
        prop_assert_eq!(out.bytes_written, out.new_tables.iter().map(|t| t.size).sum::<u64>());
        prop_assert_eq!(out.entries_read, all.len() as u64);
        prop_assert_eq!(out.entries_written, got.len() as u64);
        prop_assert_eq!(out.entries_dropped, out.entries_read - out.entries_written);

        // Semantics: every reader sees the same thing as before.
        let mut views = live.clone();
        views.extend([smallest, SEQ_MAX]);
        for &s in &views {
            if is_bottom {
                prop_assert_eq!(values(&got, s), values(&all, s), "view at {}", s);
            } else {
                // Tombstones must survive: they hide data further down.
                prop_assert_eq!(visible(&got, s), visible(&all, s), "view at {}", s);
            }
        }
        // And exactly the droppable versions were dropped.
        let mut bounds = live.clone();
        bounds.push(smallest);
        prop_assert_eq!(&got, &expected(&all, &bounds, is_bottom));
        if is_bottom && live.is_empty() {
            prop_assert!(got.iter().all(|(k, _)| split_internal_key(k).unwrap().2 == ValueKind::Put));
            let mut users: Vec<&[u8]> = got.iter().map(|(k, _)| user_key(k)).collect();
            let n = users.len();
            users.dedup();
            prop_assert_eq!(users.len(), n, "one version per key");
        }
        // The job created its outputs and touched nothing else.
        let mut want: Vec<String> = descs.iter().map(|d| table_file_name(d.number)).collect();
        want.extend(out.new_tables.iter().map(|t| table_file_name(t.number)));
        want.sort();
        prop_assert_eq!(fx.files(), want);
    }
}

/// Three overlapping inputs of 400 keys, many versions and tombstones.
fn big_inputs(fx: &Fixture) -> Vec<TableDesc> {
    let mut tables = vec![Vec::new(); 3];
    for i in 0..1200u64 {
        let key = format!("key{:04}", (i * 7) % 400).into_bytes();
        let kind = if i % 5 == 0 {
            ValueKind::Delete
        } else {
            ValueKind::Put
        };
        let value = if kind == ValueKind::Put {
            vec![b'v'; 40]
        } else {
            Vec::new()
        };
        tables[(i % 3) as usize].push((internal_key(&key, i + 1, kind), value));
    }
    tables
        .into_iter()
        .enumerate()
        .map(|(i, t)| fx.write(i as u64 + 1, &sorted(t)))
        .collect()
}

#[test]
fn a_failed_write_or_sync_leaves_no_output_behind() {
    for op in [Op::Open, Op::Write, Op::Sync, Op::SyncDir] {
        let mut failures = 0;
        for k in 0..64 {
            let fx = Fixture::new(k);
            let plan = plan_for(big_inputs(&fx), true);
            let before = fx.files();
            let inputs = fx.inputs(&plan);
            fx.fs.fail_nth(op, k);
            match fx.run_on(&plan, inputs, SEQ_MAX, &[], 2048) {
                Err(e) => {
                    failures += 1;
                    assert!(matches!(e, Error::Io { .. }), "{op:?} #{k}: {e}");
                    assert_eq!(fx.files(), before, "{op:?} #{k} left files behind");
                }
                Ok(out) => {
                    assert!(out.new_tables.len() > 1);
                    break;
                }
            }
        }
        assert!(failures > 0, "no {op:?} fault was hit");
    }
}

#[test]
fn missing_or_foreign_inputs_are_refused() {
    let fx = Fixture::new(1);
    let descs = big_inputs(&fx);
    let plan = plan_for(descs[..2].to_vec(), false);
    let next = || 99;
    let too_few = vec![fx.open(1)];
    let e = run_compaction(
        &fx.fs,
        &fx.dir,
        &plan,
        too_few,
        SEQ_MAX,
        &[],
        &next,
        &table_opts(),
        1 << 20,
    )
    .unwrap_err();
    assert!(e.to_string().contains("table 2 was not provided"), "{e}");
    let too_many = vec![fx.open(1), fx.open(2), fx.open(3)];
    let e = run_compaction(
        &fx.fs,
        &fx.dir,
        &plan,
        too_many,
        SEQ_MAX,
        &[],
        &next,
        &table_opts(),
        1 << 20,
    )
    .unwrap_err();
    assert!(e.to_string().contains("table 3"), "{e}");
    assert!(!fx.fs.exists(Path::new("/db/000099.sst")));
}

#[test]
fn everything_dropped_writes_nothing() {
    let fx = Fixture::new(3);
    let d = fx.write(
        1,
        &sorted(vec![
            (internal_key(b"a", 5, ValueKind::Delete), Vec::new()),
            (internal_key(b"a", 2, ValueKind::Put), b"old".to_vec()),
            (internal_key(b"b", 4, ValueKind::Delete), Vec::new()),
        ]),
    );
    let out = fx
        .run(&plan_for(vec![d], true), SEQ_MAX, &[], 1 << 20)
        .unwrap();
    assert!(out.new_tables.is_empty());
    assert_eq!(
        (
            out.entries_read,
            out.entries_dropped,
            out.tombstones_dropped
        ),
        (3, 3, 2)
    );
    assert_eq!(fx.files(), vec!["000001.sst".to_string()]);
}
