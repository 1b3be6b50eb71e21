//! Opening a database: lock, manifest, WAL replay, cleanup, threads.
//!
//! 1. Take `LOCK` (one process per directory).
//! 2. Read `CURRENT` and replay the manifest (or create a new database).
//! 3. Replay every WAL segment from the manifest's log number, in order,
//!    into the memtable. A torn tail of the last written segment is cut
//!    off (it was never acknowledged); a bad record anywhere else is
//!    `Error::Corruption` and the database does not open.
//! 4. Write what was replayed as a level-0 table (synced): replayed bytes
//!    may have been only in the page cache, and must be durable before any
//!    later write builds on them.
//! 5. Start a fresh manifest holding the recovered state, with the log
//!    number moved past every old segment, point `CURRENT` at it, and only
//!    then delete what it no longer names (old manifests, segments,
//!    temporary files, tables of an interrupted flush).
//! 6. Prepare a fresh segment and start the log thread.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Instant;

use super::commit::{self, LogState, QueueState, SegmentSource};
use super::compact;
use super::flush::{self, table_name};
use super::Version;
use super::{Db, DbMetrics, Inner, MemState, Shared};
use crate::batch::BatchOp;
use crate::error::{Error, Result};
use crate::io::{self, read_all, Fs, OpenOptions};
use crate::manifest::{self, ManifestState, ManifestWriter};
use crate::memtable::Memtable;
use crate::options::Options;
use crate::sstable::{BlockCache, Table};
use crate::types::ValueKind;
use crate::wal::format::{check_record, HEADER_LEN};
use crate::wal::reader::{replay_segment, SegmentEnd};
use crate::wal::segment::{self, parse_segment_name, Preparer};
use crate::wal::writer::LogWriter;

pub(super) fn open(dir: &Path, opts: Options) -> Result<Db> {
    opts.check()?;
    let fs = opts.fs.clone().unwrap_or_else(io::default_fs);
    let fs = fs.for_new_process().unwrap_or(fs);
    fs.create_dir_all(dir)?;
    let lock = fs.lock(&dir.join("LOCK"))?;
    let names = fs.list(dir)?;
    let (mut state, names) = match manifest::read_current(&*fs, dir)? {
        Some(number) => (manifest::recover(&*fs, dir, number)?, names),
        None => {
            let state = new_database(&*fs, dir, &opts, &names)?;
            (state, fs.list(dir)?)
        }
    };
    let max_seen = names
        .iter()
        .filter_map(|n| file_number(n))
        .max()
        .unwrap_or(0);
    let next_file = state.next_file_number.max(max_seen + 1);

    let cache = Arc::new(BlockCache::new(opts.block_cache_size_bytes));
    let mut version = open_tables(&*fs, dir, &state, &cache)?;
    let recovered = Arc::new(Memtable::new(state.log_number));
    let (last_seq, unused) = replay_wal(&*fs, dir, &names, &state, &recovered)?;

    // What the WAL held is written to a table before anything else: replayed
    // bytes may sit only in the page cache (a sync that failed, a relaxed
    // run), and they must be durable before later writes build on them.
    let mut next = next_file;
    let manifest_number = next;
    next += 1;
    if !recovered.is_empty() {
        let (entry, meta, table) = flush::write_table(&*fs, dir, next, &recovered, &cache)?;
        next += 1;
        state.tables.insert(entry.number, entry.clone());
        state.last_sequence = state.last_sequence.max(meta.largest_seq);
        version = version.with_changes(&[], vec![(entry, table)]);
    }
    let first_segment = next;
    next += 1;
    state.log_number = first_segment;
    state.next_file_number = next;

    // A fresh manifest, then the files it no longer needs.
    let manifest = ManifestWriter::create(Arc::clone(&fs), dir, manifest_number, &state)?;
    remove_obsolete(&*fs, dir, &names, &state, manifest_number, &unused)?;

    let next_file = Arc::new(AtomicU64::new(next));
    let wal_direct = opts.durability == crate::options::Durability::Sync;
    // The log starts small: a database opened and left alone holds one
    // idle segment; the first write has the next one readied.
    let first = segment::prepare(
        &*fs,
        dir,
        first_segment,
        opts.idle_wal_segment_size(),
        wal_direct,
    )?;
    let source = if opts.wal_prepare_background {
        SegmentSource::Background(Preparer::start(
            Arc::clone(&fs),
            dir.to_path_buf(),
            Arc::clone(&next_file),
            wal_direct,
        )?)
    } else {
        SegmentSource::Inline
    };
    let shared = Arc::new(Shared {
        opts: opts.clone(),
        dir: dir.to_path_buf(),
        fs: Arc::clone(&fs),
        version: RwLock::new(Arc::new(version)),
        snapshots: Mutex::new(Default::default()),
        compact: Mutex::new(Default::default()),
        compact_cv: Condvar::new(),
        stall: Default::default(),
        cache,
        manifest: Mutex::new(Some(manifest)),
        flush_cv: Condvar::new(),
        mem: RwLock::new(MemState {
            active: Arc::new(Memtable::with_index(
                first_segment,
                opts.memtable_size_bytes_max,
            )),
            immutables: VecDeque::new(),
        }),
        mem_cv: Condvar::new(),
        mem_cv_lock: Mutex::new(()),
        visible_seq: AtomicU64::new(last_seq),
        next_file: Arc::clone(&next_file),
        queue: Mutex::new(QueueState::default()),
        queue_cv: Condvar::new(),
        epoch: Default::default(),
        wake_requests: Default::default(),
        log: Mutex::new(Some(LogState::new(LogWriter::new(first), source, last_seq))),
        poison: Mutex::new(None),
        metrics: DbMetrics::default(),
        closing: AtomicBool::new(false),
        started: Instant::now(),
    });

    let log_shared = Arc::clone(&shared);
    let handle = std::thread::Builder::new()
        .name("cityhall-wal".into())
        .spawn(move || commit::log_thread(log_shared))
        .map_err(|e| Error::io("spawn thread", Path::new("cityhall-wal"), e))?;
    let flush_shared = Arc::clone(&shared);
    let flusher = std::thread::Builder::new()
        .name("cityhall-flush".into())
        .spawn(move || flush::flush_thread(flush_shared))
        .map_err(|e| Error::io("spawn thread", Path::new("cityhall-flush"), e))?;
    let compact_shared = Arc::clone(&shared);
    let compactor = std::thread::Builder::new()
        .name("cityhall-compact".into())
        .spawn(move || compact::compaction_thread(compact_shared))
        .map_err(|e| Error::io("spawn thread", Path::new("cityhall-compact"), e))?;
    let waker_shared = Arc::clone(&shared);
    let waker = std::thread::Builder::new()
        .name("cityhall-waker".into())
        .spawn(move || waker_shared.wake_requests.run(&waker_shared.epoch))
        .map_err(|e| Error::io("spawn thread", Path::new("cityhall-waker"), e))?;
    Ok(Db {
        inner: Arc::new(Inner {
            shared,
            waker: Mutex::new(Some(waker)),
            threads: Mutex::new(vec![handle, flusher, compactor]),
            lock: Mutex::new(Some(lock)),
        }),
    })
}

/// The number in a file name the database owns, if it is one.
fn file_number(name: &str) -> Option<u64> {
    parse_segment_name(name)
        .or_else(|| name.strip_prefix("MANIFEST-")?.parse().ok())
        .or_else(|| name.strip_suffix(".sst")?.parse().ok())
        .or_else(|| name.strip_suffix(".log.tmp")?.parse().ok())
}

fn new_database(
    fs: &dyn Fs,
    dir: &Path,
    opts: &Options,
    names: &[String],
) -> Result<ManifestState> {
    let leftovers: Vec<&String> = names
        .iter()
        .filter(|n| {
            n.starts_with("MANIFEST-")
                || n.starts_with("CURRENT")
                || n.ends_with(".sst")
                || parse_segment_name(n).is_some()
        })
        .collect();
    if !leftovers.is_empty() {
        // A crash while the database was being created can leave a
        // manifest and empty segments but no CURRENT. Nothing was ever
        // acknowledged then: start afresh. Anything holding data means
        // CURRENT was lost from a real database: refuse.
        for name in &leftovers {
            let has_data = name.ends_with(".sst")
                || match parse_segment_name(name) {
                    Some(n) => segment_has_data(fs, &dir.join(name), n)?,
                    None => false,
                };
            if has_data {
                return Err(Error::corruption(
                    &dir.join(manifest::CURRENT),
                    0,
                    format!("CURRENT is missing but {name} holds data"),
                ));
            }
        }
        for name in leftovers {
            fs.remove(&dir.join(name))?;
        }
        fs.sync_dir(dir)?;
    }
    if !opts.create_if_missing {
        return Err(Error::InvalidArgument(format!(
            "no database in {} and create_if_missing is off",
            dir.display()
        )));
    }
    Ok(ManifestState {
        log_number: 1,
        next_file_number: 1,
        last_sequence: 0,
        tables: Default::default(),
    })
}

/// Replays the WAL into `mem`. Returns the last sequence and the segments
/// that held nothing (prepared but never written), to be removed.
fn replay_wal(
    fs: &dyn Fs,
    dir: &Path,
    names: &[String],
    state: &ManifestState,
    mem: &Memtable,
) -> Result<(u64, Vec<u64>)> {
    let mut segs: Vec<u64> = names
        .iter()
        .filter_map(|n| parse_segment_name(n))
        .filter(|&n| n >= state.log_number)
        .collect();
    segs.sort_unstable();
    let mut used = Vec::with_capacity(segs.len());
    for &n in &segs {
        used.push(segment_has_data(
            fs,
            &dir.join(segment::segment_name(n)),
            n,
        )?);
    }
    let last_used = used.iter().rposition(|&u| u);
    let mut last_seq = state.last_sequence;
    let mut unused = Vec::new();
    for (i, &n) in segs.iter().enumerate() {
        let path = dir.join(segment::segment_name(n));
        let file = fs.open(&path, OpenOptions::write_create())?;
        let data = read_all(&*file)?;
        let (end, seq) = replay_segment(&path, &data, n as u32, last_seq, |seq, batch| {
            for (j, op) in batch.ops().iter().enumerate() {
                let s = seq + j as u64;
                match op {
                    BatchOp::Put { key, value } => mem.insert(key, s, ValueKind::Put, value),
                    BatchOp::Delete { key } => mem.insert(key, s, ValueKind::Delete, &[]),
                }
            }
            Ok(())
        })?;
        last_seq = seq;
        let is_tail = last_used.is_none_or(|l| i >= l);
        match end {
            SegmentEnd::Torn { offset } if !is_tail => {
                return Err(Error::corruption(
                    &path,
                    offset,
                    "bad record in a segment that later segments follow",
                ));
            }
            SegmentEnd::Torn { offset } => {
                // The torn tail of the last write: cut it off so that it is
                // never mistaken for damage once newer segments follow.
                file.set_len(offset)?;
                file.sync_all()?;
            }
            SegmentEnd::Clean { .. } => {}
        }
        if !used[i] && last_used.is_none_or(|l| i > l) {
            unused.push(n);
        }
    }
    Ok((last_seq, unused))
}

/// Whether a segment's first record is valid (the segment was written to).
fn segment_has_data(fs: &dyn Fs, path: &Path, number: u64) -> Result<bool> {
    let file = fs.open(path, OpenOptions::read())?;
    let mut head = [0u8; HEADER_LEN];
    let n = file.read_at(&mut head, 0)?;
    if n < HEADER_LEN {
        return Ok(false);
    }
    let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    let size = file.len()?;
    let want = (HEADER_LEN + len) as u64;
    if len == 0 || want > size {
        return Ok(false);
    }
    let mut rec = vec![0u8; HEADER_LEN + len];
    io::read_exact_at(&*file, &mut rec, 0)?;
    Ok(check_record(&rec, number as u32).is_some())
}

fn remove_obsolete(
    fs: &dyn Fs,
    dir: &Path,
    names: &[String],
    state: &ManifestState,
    manifest_number: u64,
    unused: &[u64],
) -> Result<()> {
    let mut removed = false;
    for name in names {
        let obsolete = if let Some(n) = parse_segment_name(name) {
            n < state.log_number || unused.contains(&n)
        } else if let Some(n) = name.strip_prefix("MANIFEST-") {
            n.parse::<u64>().ok() != Some(manifest_number)
        } else if let Some(n) = name.strip_suffix(".sst") {
            // A table no manifest names: an interrupted flush left it.
            n.parse::<u64>()
                .is_ok_and(|n| !state.tables.contains_key(&n))
        } else {
            name.ends_with(".tmp")
        };
        if obsolete {
            match fs.remove(&dir.join(name)) {
                Ok(()) => removed = true,
                // Gone since the listing: a leftover `CURRENT.tmp` is
                // reused (and renamed away) when recovery points CURRENT
                // at its new manifest.
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    if removed {
        fs.sync_dir(dir)?;
    }
    Ok(())
}

/// Opens every table the manifest names.
fn open_tables(
    fs: &dyn Fs,
    dir: &Path,
    state: &ManifestState,
    cache: &Arc<BlockCache>,
) -> Result<Version> {
    let mut tables = Vec::with_capacity(state.tables.len());
    for entry in state.tables.values() {
        let file = fs.open(&dir.join(table_name(entry.number)), OpenOptions::read())?;
        let table = Table::open(file, entry.number, Arc::clone(cache))?;
        tables.push((entry.clone(), Arc::new(table)));
    }
    Ok(Version::from_tables(tables))
}
