//! The background flush: frozen memtable -> table -> manifest edit -> free
//! WAL segments.
//!
//! One flush thread takes the oldest frozen memtable, writes it as a table
//! (`NNNNNN.sst`, through the table builder's aligned `O_DIRECT` writes,
//! synced), syncs the directory, and records it in the manifest together
//! with the new log number (the first segment of the oldest memtable still
//! in memory) and the last flushed sequence. Only after that edit is
//! durable is the table installed for reads and the memtable dropped, in
//! that order, so a reader that looks at memtables first and tables second
//! never misses the data. Then the segments below the new log number are
//! deleted. A failure poisons the database (no later write pretends all is
//! well); the WAL still covers the memtable, so nothing acknowledged is lost.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::Shared;
use crate::error::Result;
use crate::io::{Fs, OpenOptions};
use crate::iter::EntryIter;
use crate::manifest::{TableEntry, VersionEdit};
use crate::memtable::Memtable;
use crate::sstable::{BlockCache, Table, TableBuilder, TableMeta, TableOptions};
use crate::wal::segment::parse_segment_name;

/// The file name of table `number`.
pub fn table_name(number: u64) -> String {
    format!("{number:06}.sst")
}

/// Runs until the database closes or a flush fails.
pub fn flush_thread(shared: Arc<Shared>) {
    while let Some(mem) = shared.wait_for_flush_work() {
        if shared.poisoned().is_some() {
            return;
        }
        let start = Instant::now();
        match flush_one(&shared, &mem) {
            Ok(()) => {
                shared.metrics.flushes.inc();
                shared.metrics.flush_latency_us.record_since(start);
            }
            Err(e) => {
                shared.poison(&e);
                shared.notify_mem();
                return;
            }
        }
    }
}

/// Writes `mem` as table `number` in `dir` (synced, directory synced) and
/// opens it. Used by the flush thread and by recovery.
pub(crate) fn write_table(
    fs: &dyn Fs,
    dir: &Path,
    number: u64,
    mem: &Arc<Memtable>,
    cache: &Arc<BlockCache>,
) -> Result<(TableEntry, TableMeta, Arc<Table>)> {
    let path = dir.join(table_name(number));
    let file = fs.open(&path, OpenOptions::create_new().with_direct())?;
    let mut builder = TableBuilder::new(file, TableOptions::default());
    let mut it = mem.iter();
    it.seek_to_first()?;
    while it.valid() {
        builder.add(it.key(), it.value())?;
        it.next()?;
    }
    let meta = builder.finish()?;
    fs.sync_dir(dir)?;
    let reader = fs.open(&path, OpenOptions::read())?;
    let table = Arc::new(Table::open(reader, number, Arc::clone(cache))?);
    let entry = TableEntry {
        level: 0,
        number,
        size: meta.file_size,
        smallest: meta.smallest.clone(),
        largest: meta.largest.clone(),
    };
    Ok((entry, meta, table))
}

fn flush_one(shared: &Shared, mem: &Arc<Memtable>) -> Result<()> {
    let mut edit = VersionEdit::default();
    let mut table = None;
    if !mem.is_empty() {
        let number = shared.next_file.fetch_add(1, Ordering::SeqCst);
        let (entry, meta, t) = write_table(&*shared.fs, &shared.dir, number, mem, &shared.cache)?;
        shared.metrics.flush_bytes.add(meta.file_size);
        table = Some(t);
        edit.new_tables.push(entry);
        edit.last_sequence = Some(meta.largest_seq);
    }
    let log_number = shared.log_number_after_flush(mem);
    edit.log_number = Some(log_number);
    edit.next_file_number = Some(shared.next_file.load(Ordering::SeqCst));
    shared.log_edit(&edit)?;
    if let (Some(t), Some(entry)) = (table, edit.new_tables.pop()) {
        shared.install_l0(entry, t);
    }
    shared.drop_flushed(mem);
    remove_segments_below(shared, log_number);
    Ok(())
}

/// Removes the WAL segments the durable manifest no longer needs. A
/// failure loses nothing (the next flush, or the next open, removes what
/// is left), so it is counted in `obsolete_delete_errors` rather than
/// failing the flush and poisoning the database.
fn remove_segments_below(shared: &Shared, log_number: u64) {
    let names = match shared.fs.list(&shared.dir) {
        Ok(names) => names,
        Err(e) => {
            shared.obsolete_delete_failed(&shared.dir, &e);
            return;
        }
    };
    for name in names {
        if parse_segment_name(&name).is_some_and(|n| n < log_number) {
            let path = shared.dir.join(&name);
            if let Err(e) = shared.fs.remove(&path) {
                shared.obsolete_delete_failed(&path, &e);
            }
        }
    }
}
