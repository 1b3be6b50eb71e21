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

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::Shared;
use crate::error::Result;
use crate::io::OpenOptions;
use crate::iter::EntryIter;
use crate::manifest::{TableEntry, VersionEdit};
use crate::memtable::Memtable;
use crate::sstable::{Table, TableBuilder, TableOptions};
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

fn flush_one(shared: &Shared, mem: &Arc<Memtable>) -> Result<()> {
    let mut edit = VersionEdit::default();
    let mut table = None;
    if !mem.is_empty() {
        let number = shared.next_file.fetch_add(1, Ordering::SeqCst);
        let path = shared.dir.join(table_name(number));
        let file = shared
            .fs
            .open(&path, OpenOptions::create_new().with_direct())?;
        let mut builder = TableBuilder::new(file, TableOptions::default());
        let mut it = mem.iter();
        it.seek_to_first()?;
        while it.valid() {
            builder.add(it.key(), it.value())?;
            it.next()?;
        }
        let meta = builder.finish()?;
        shared.fs.sync_dir(&shared.dir)?;
        shared.metrics.flush_bytes.add(meta.file_size);
        let reader = shared.fs.open(&path, OpenOptions::read())?;
        table = Some(Arc::new(Table::open(
            reader,
            number,
            Arc::clone(&shared.cache),
        )?));
        edit.new_tables.push(TableEntry {
            level: 0,
            number,
            size: meta.file_size,
            smallest: meta.smallest,
            largest: meta.largest,
        });
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
    remove_segments_below(shared, log_number)
}

fn remove_segments_below(shared: &Shared, log_number: u64) -> Result<()> {
    for name in shared.fs.list(&shared.dir)? {
        if parse_segment_name(&name).is_some_and(|n| n < log_number) {
            shared.fs.remove(&shared.dir.join(&name))?;
        }
    }
    Ok(())
}
