//! Tests of whole tables: builder -> file -> reader, on the simulated and
//! the real file system, against models, and under damage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;

use super::*;
use crate::error::Error;
use crate::io::sim::{Op, SimFs};
use crate::io::{FileHandle, Fs, Mapping, OpenOptions};
use crate::iter::EntryIter;
use crate::types::{compare_internal_keys, internal_key, split_internal_key, ValueKind};

type Entry = (Vec<u8>, Vec<u8>);

fn small_opts() -> TableOptions {
    TableOptions {
        block_size_bytes: 256,
        restart_interval: 4,
        write_buffer_bytes: 4096,
        compression: true,
    }
}

fn sorted(mut entries: Vec<Entry>) -> Vec<Entry> {
    entries.sort_by(|a, b| compare_internal_keys(&a.0, &b.0));
    entries.dedup_by(|a, b| a.0 == b.0);
    entries
}

/// Entries for keys `key00000..`, one put each at seq i+1, some with an
/// older version and some deleted.
fn sample(n: usize) -> Vec<Entry> {
    let mut v = Vec::new();
    for i in 0..n {
        let k = format!("key{i:05}");
        let seq = 10 * i as u64 + 5;
        if i % 7 == 3 {
            v.push((
                internal_key(k.as_bytes(), seq, ValueKind::Delete),
                Vec::new(),
            ));
        } else {
            v.push((
                internal_key(k.as_bytes(), seq, ValueKind::Put),
                format!("value-{i}-{}", "x".repeat(i % 40)).into_bytes(),
            ));
        }
        if i % 3 == 0 {
            v.push((
                internal_key(k.as_bytes(), seq - 2, ValueKind::Put),
                b"older".to_vec(),
            ));
        }
    }
    sorted(v)
}

fn write(file: Arc<dyn FileHandle>, entries: &[Entry], opts: TableOptions) -> TableMeta {
    let mut b = TableBuilder::new(file, opts);
    for (k, v) in entries {
        b.add(k, v).unwrap();
    }
    b.finish().unwrap()
}

fn sim_table(entries: &[Entry], opts: TableOptions) -> (SimFs, PathBuf, TableMeta) {
    let fs = SimFs::new(7);
    let path = PathBuf::from("/db/000001.sst");
    let file = fs
        .open(&path, OpenOptions::create_new().with_direct())
        .unwrap();
    let meta = write(file, entries, opts);
    (fs, path, meta)
}

fn open(fs: &SimFs, path: &Path) -> crate::Result<Table> {
    let file = fs.open(path, OpenOptions::read())?;
    Table::open(file, 1, Arc::new(BlockCache::new(1 << 20)))
}

fn drain(it: &mut dyn EntryIter) -> crate::Result<Vec<Entry>> {
    let mut out = Vec::new();
    while it.valid() {
        out.push((it.key().to_vec(), it.value().to_vec()));
        it.next()?;
    }
    Ok(out)
}

/// What `get(user_key, snap)` must return, from the sorted entries: the
/// first entry of that user key with a sequence <= snap.
fn model_get(entries: &[Entry], user: &[u8], snap: u64) -> Option<(ValueKind, Vec<u8>)> {
    let from = entries.partition_point(|(k, _)| split_internal_key(k).unwrap().0 < user);
    entries[from..].iter().find_map(|(k, v)| {
        let (u, seq, kind) = split_internal_key(k)?;
        if u != user {
            return Some(None);
        }
        (seq <= snap).then(|| Some((kind, v.clone())))
    })?
}

fn check_table(table: &Table, entries: &[Entry]) {
    let mut it = table.iter();
    it.seek_to_first().unwrap();
    assert_eq!(drain(&mut it).unwrap(), entries);
    for (k, _) in entries.iter().step_by(3) {
        let (user, seq, _) = split_internal_key(k).unwrap();
        for snap in [seq, seq + 1, seq.saturating_sub(1), u64::MAX] {
            assert_eq!(
                table.get(user, snap).unwrap(),
                model_get(entries, user, snap)
            );
        }
        it.seek(k).unwrap();
        assert_eq!(it.key(), &k[..]);
    }
    assert_eq!(table.get(b"absent", u64::MAX).unwrap(), None);
    assert_eq!(table.get(b"", u64::MAX).unwrap(), None);
    assert_eq!(table.get(b"zzzz", u64::MAX).unwrap(), None);
    let report = table.verify().unwrap();
    assert_eq!(report.entries, entries.len() as u64);
    assert_eq!(report.file_size, table.file_size());
}

#[test]
fn round_trip_on_the_simulated_fs() {
    let entries = sample(500);
    let (fs, path, meta) = sim_table(&entries, small_opts());
    assert_eq!(meta.entries, entries.len() as u64);
    assert_eq!(meta.smallest, entries[0].0);
    assert_eq!(meta.largest, entries[entries.len() - 1].0);
    assert_eq!((meta.smallest_seq, meta.largest_seq), (3, 4995));
    assert_eq!(fs.read_file(&path).unwrap().len() as u64, meta.file_size);
    let table = open(&fs, &path).unwrap();
    assert_eq!(table.entries(), meta.entries);
    assert_eq!(table.seq_range(), (3, 4995));
    check_table(&table, &entries);
    assert!(table.verify().unwrap().data_blocks > 10);
}

#[test]
fn empty_and_single_entry_tables() {
    let (fs, path, meta) = sim_table(&[], TableOptions::default());
    assert_eq!(meta.entries, 0);
    let t = open(&fs, &path).unwrap();
    let mut it = t.iter();
    it.seek_to_first().unwrap();
    assert!(!it.valid());
    assert_eq!(t.get(b"a", 9).unwrap(), None);
    assert_eq!(t.verify().unwrap().entries, 0);

    let one = vec![(internal_key(b"k", 4, ValueKind::Put), b"v".to_vec())];
    let (fs, path, _) = sim_table(&one, TableOptions::default());
    let t = open(&fs, &path).unwrap();
    check_table(&t, &one);
    assert_eq!(t.get(b"k", 3).unwrap(), None);
}

#[test]
fn values_larger_than_a_block() {
    let entries: Vec<Entry> = (0..5u8)
        .map(|i| {
            (
                internal_key(&[b'a' + i], 1, ValueKind::Put),
                vec![i; 100_000 + i as usize],
            )
        })
        .collect();
    let (fs, path, _) = sim_table(&entries, TableOptions::default());
    check_table(&open(&fs, &path).unwrap(), &entries);
}

#[test]
fn real_fs_with_o_direct_pads_and_truncates() {
    let dir = tempfile::tempdir().unwrap();
    let fs = crate::io::default_fs();
    let path = dir.path().join("000007.sst");
    let file = fs
        .open(&path, OpenOptions::create_new().with_direct())
        .unwrap();
    let entries = sample(20_000);
    let opts = TableOptions {
        write_buffer_bytes: 64 << 10,
        ..TableOptions::default()
    };
    let meta = write(file, &entries, opts);
    assert_ne!(meta.file_size % 4096, 0, "the test wants an unaligned tail");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), meta.file_size);
    let file = fs.open(&path, OpenOptions::read()).unwrap();
    let table = Table::open(file, 7, Arc::new(BlockCache::new(8 << 20))).unwrap();
    check_table(&table, &entries);
    let file = fs.open(&path, OpenOptions::read()).unwrap();
    assert_eq!(
        Table::verify_file(file).unwrap().entries,
        entries.len() as u64
    );
}

/// A file handle that checks every write obeys the O_DIRECT rules.
#[derive(Debug)]
struct AlignCheck {
    inner: Arc<dyn FileHandle>,
    writes: Mutex<Vec<(u64, usize)>>,
}

impl FileHandle for AlignCheck {
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> crate::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> crate::Result<()> {
        assert_eq!(offset % 4096, 0, "unaligned offset");
        assert_eq!(buf.len() % 4096, 0, "unaligned length");
        assert_eq!(buf.as_ptr() as usize % 4096, 0, "unaligned buffer");
        self.writes.lock().unwrap().push((offset, buf.len()));
        self.inner.write_at(buf, offset)
    }
    fn sync_data(&self) -> crate::Result<()> {
        self.inner.sync_data()
    }
    fn sync_all(&self) -> crate::Result<()> {
        self.inner.sync_all()
    }
    fn set_len(&self, len: u64) -> crate::Result<()> {
        self.inner.set_len(len)
    }
    fn len(&self) -> crate::Result<u64> {
        self.inner.len()
    }
    fn map(&self) -> crate::Result<Mapping> {
        self.inner.map()
    }
    fn is_direct(&self) -> bool {
        true
    }
}

#[test]
fn every_write_is_aligned_and_the_tail_is_cut() {
    let fs = SimFs::new(3);
    let path = PathBuf::from("/db/000002.sst");
    let inner = fs.open(&path, OpenOptions::create_new()).unwrap();
    let file = Arc::new(AlignCheck {
        inner,
        writes: Mutex::new(Vec::new()),
    });
    let entries = sample(3000);
    let meta = write(file.clone(), &entries, small_opts());
    let writes = file.writes.lock().unwrap().clone();
    assert!(writes.len() > 5, "several buffer flushes: {writes:?}");
    let mut expect = 0;
    for (off, len) in &writes {
        assert_eq!(*off, expect, "writes are sequential");
        expect += *len as u64;
    }
    assert!(expect >= meta.file_size && expect - meta.file_size < 4096);
    assert_eq!(fs.read_file(&path).unwrap().len() as u64, meta.file_size);
    check_table(&open(&fs, &path).unwrap(), &entries);
}

#[test]
fn builder_rejects_bad_input_and_io_failures() {
    let fs = SimFs::new(4);
    let f = fs
        .open(Path::new("/db/a.sst"), OpenOptions::create_new())
        .unwrap();
    let mut b = TableBuilder::new(f, TableOptions::default());
    b.add(&internal_key(b"b", 5, ValueKind::Put), b"1").unwrap();
    let err = b
        .add(&internal_key(b"a", 5, ValueKind::Put), b"2")
        .unwrap_err();
    assert!(err.to_string().contains("out of order"), "{err}");
    assert!(
        b.add(&internal_key(b"c", 5, ValueKind::Put), b"3").is_err(),
        "failed for good"
    );
    assert!(b.finish().is_err());

    let f = fs
        .open(Path::new("/db/b.sst"), OpenOptions::create_new())
        .unwrap();
    let mut b = TableBuilder::new(f, TableOptions::default());
    b.add(&internal_key(b"b", 5, ValueKind::Put), b"1").unwrap();
    assert!(
        b.add(&internal_key(b"b", 5, ValueKind::Put), b"1").is_err(),
        "duplicate"
    );
    let f = fs
        .open(Path::new("/db/c.sst"), OpenOptions::create_new())
        .unwrap();
    let mut b = TableBuilder::new(f, TableOptions::default());
    assert!(b.add(b"short", b"").is_err(), "not an internal key");

    for op in [Op::Write, Op::Sync] {
        let f = fs
            .open(
                Path::new(&format!("/db/{op:?}.sst")),
                OpenOptions::create_new(),
            )
            .unwrap();
        fs.fail_nth(op, 0);
        let mut b = TableBuilder::new(f, small_opts());
        let mut res = Ok(());
        for (k, v) in sample(2000) {
            res = b.add(&k, &v);
            if res.is_err() {
                break;
            }
        }
        let res = res.and_then(|()| b.finish().map(|_| ()));
        assert!(matches!(res, Err(Error::Io { .. })), "{op:?}: {res:?}");
        fs.clear_faults();
    }
}

#[test]
fn cache_hits_and_filter_skips_blocks() {
    let entries = sample(300);
    let (fs, path, _) = sim_table(&entries, small_opts());
    let cache = Arc::new(BlockCache::new(1 << 20));
    let file = fs.open(&path, OpenOptions::read()).unwrap();
    let t = Table::open(file, 9, cache.clone()).unwrap();
    assert!(t.get(b"key00001", u64::MAX).unwrap().is_some());
    assert_eq!((cache.hits(), cache.misses()), (0, 1));
    assert!(t.get(b"key00001", u64::MAX).unwrap().is_some());
    assert_eq!((cache.hits(), cache.misses()), (1, 1));
    let absent = (0..1000)
        .map(|i| format!("nope{i}").into_bytes())
        .find(|k| !t.may_contain(k))
        .unwrap();
    assert_eq!(t.get(&absent, u64::MAX).unwrap(), None);
    assert_eq!((cache.hits(), cache.misses()), (1, 1), "no block touched");
}

/// The table's bytes with `f` applied, opened and read in full.
fn damaged(entries: &[Entry], f: impl FnOnce(&mut Vec<u8>)) -> (SimFs, PathBuf) {
    let (fs, path, _) = sim_table(entries, small_opts());
    let mut bytes = fs.read_file(&path).unwrap();
    f(&mut bytes);
    assert!(fs.write_file_durable(&path, &bytes));
    (fs, path)
}

fn is_corruption_at(e: &Error, file: &Path, offset: u64) -> bool {
    matches!(e, Error::Corruption { file: f, offset: o, .. }
        if f == &file.display().to_string() && *o == offset)
}

#[test]
fn damage_is_reported_with_file_and_offset() {
    let entries = sample(400);
    let (fs, path, _) = sim_table(&entries, small_opts());
    let bytes = fs.read_file(&path).unwrap();
    let len = bytes.len();
    let footer = format::Footer::decode(bytes[len - 72..].try_into().unwrap()).unwrap();

    // A data block: the table opens, reads touching the block fail.
    let (fs2, p2) = damaged(&entries, |b| b[10] ^= 0x04);
    let t = open(&fs2, &p2).unwrap();
    let e = t.get(b"key00000", u64::MAX).unwrap_err();
    assert!(is_corruption_at(&e, &p2, 0), "{e}");
    let mut it = t.iter();
    assert!(it.seek_to_first().is_err());
    assert!(!it.valid());
    assert!(
        t.get(b"key00399", u64::MAX).is_ok(),
        "other blocks still read"
    );
    assert!(is_corruption_at(&t.verify().unwrap_err(), &p2, 0));

    // The filter, the index, the footer, a truncation: open fails.
    type Damage = Box<dyn FnOnce(&mut Vec<u8>)>;
    let cases: Vec<(Damage, u64)> = vec![
        (
            Box::new(move |b| b[footer.filter.offset as usize + 3] ^= 0x80),
            footer.filter.offset,
        ),
        (
            Box::new(move |b| b[footer.index.offset as usize + 1] ^= 0x01),
            footer.index.offset,
        ),
        (
            Box::new(move |b| b[len - 72 + 33] ^= 0x01),
            (len - 72) as u64,
        ),
        (Box::new(|b| b.truncate(b.len() - 1)), (len - 73) as u64),
        (Box::new(|b| b.truncate(40)), 0),
    ];
    for (f, offset) in cases {
        let (fs3, p3) = damaged(&entries, f);
        let e = open(&fs3, &p3).unwrap_err();
        assert!(
            is_corruption_at(&e, &p3, offset),
            "{e} (want offset {offset})"
        );
        let file = fs3.open(&p3, OpenOptions::read()).unwrap();
        assert!(Table::verify_file(file).is_err());
    }
}

#[test]
fn any_single_byte_damage_is_detected_and_never_panics() {
    let entries = sample(40);
    let (fs, path, _) = sim_table(&entries, small_opts());
    let good = fs.read_file(&path).unwrap();
    for at in 0..good.len() {
        for mask in [0x01u8, 0xff] {
            let mut bad = good.clone();
            bad[at] ^= mask;
            assert!(fs.write_file_durable(&path, &bad));
            let file = fs.open(&path, OpenOptions::read()).unwrap();
            assert!(
                Table::verify_file(file).is_err(),
                "damage at {at} undetected"
            );
            let Ok(t) = open(&fs, &path) else { continue };
            // Every answer is the right one or an error.
            for (k, _) in &entries {
                let (user, seq, _) = split_internal_key(k).unwrap();
                if let Ok(got) = t.get(user, seq) {
                    assert_eq!(
                        got,
                        model_get(&entries, user, seq),
                        "wrong answer, damage at {at}"
                    );
                }
            }
            let mut it = t.iter();
            if it.seek_to_first().is_ok() {
                if let Ok(all) = drain(&mut it) {
                    assert_eq!(all, entries, "wrong scan, damage at {at}");
                }
            }
        }
    }
}

fn entries_strategy() -> impl Strategy<Value = Vec<Entry>> {
    let entry = (
        prop::collection::vec(prop::sample::select(b"abcdz\x00\xff".to_vec()), 0..12),
        1u64..1000,
        prop::bool::weighted(0.8),
        prop::collection::vec(any::<u8>(), 0..300),
    );
    prop::collection::vec(entry, 0..400).prop_map(|es| {
        sorted(
            es.into_iter()
                .map(|(k, seq, put, v)| {
                    let kind = if put {
                        ValueKind::Put
                    } else {
                        ValueKind::Delete
                    };
                    let v = if put { v } else { Vec::new() };
                    (internal_key(&k, seq, kind), v)
                })
                .collect(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_tables_match_the_model(
        entries in entries_strategy(),
        probes in prop::collection::vec(
            (prop::collection::vec(prop::sample::select(b"abcdz\x00\xff".to_vec()), 0..12),
             0u64..1100),
            0..60),
        block_size in prop::sample::select(vec![64usize, 512, 4096]),
        compression in any::<bool>(),
    ) {
        let opts = TableOptions {
            block_size_bytes: block_size,
            compression,
            ..small_opts()
        };
        let (fs, path, meta) = sim_table(&entries, opts);
        prop_assert_eq!(meta.entries, entries.len() as u64);
        let t = open(&fs, &path).unwrap();
        let mut it = t.iter();
        it.seek_to_first().unwrap();
        prop_assert_eq!(&drain(&mut it).unwrap(), &entries);
        let users: BTreeMap<Vec<u8>, ()> = entries
            .iter()
            .map(|(k, _)| (split_internal_key(k).unwrap().0.to_vec(), ()))
            .collect();
        for u in users.keys() {
            prop_assert_eq!(t.get(u, u64::MAX).unwrap(), model_get(&entries, u, u64::MAX));
        }
        for (user, snap) in &probes {
            prop_assert_eq!(t.get(user, *snap).unwrap(), model_get(&entries, user, *snap));
            let target = internal_key(user, *snap, ValueKind::Put);
            it.seek(&target).unwrap();
            let want: Vec<Entry> = entries
                .iter()
                .filter(|(k, _)| compare_internal_keys(k, &target) != std::cmp::Ordering::Less)
                .cloned()
                .collect();
            prop_assert_eq!(drain(&mut it).unwrap(), want);
        }
        prop_assert_eq!(t.verify().unwrap().entries, entries.len() as u64);
    }
}
