//! The compaction job: carries out one [`CompactionPlan`] by merging its
//! input tables into new tables.
//!
//! `run_compaction` merges the inputs with a [`MergingIter`] (input level
//! first, L0 newest first, then the output level), passes every version
//! through a [`VersionFilter`] (the shadowing and tombstone rules are in
//! [`super::filter`]), and streams what survives into [`TableBuilder`]s.
//! An output is cut when its estimated size reaches the target size and
//! the next entry starts a new user key, so one user key's versions never
//! span two outputs and the outputs are sorted and disjoint in user keys.
//! Each output is a new `NNNNNN.sst` created with `create_new` and
//! `O_DIRECT`, finished (the builder syncs its data), and the directory is
//! synced once at the end.
//!
//! The job owns nothing afterwards: it never edits the manifest and never
//! deletes inputs; the caller installs the outputs with a version edit and
//! removes the inputs once that edit is durable. On any error the job
//! removes the outputs it created (best effort) and returns the error, so
//! a failed job leaves the directory as it found it (apart from a removal
//! that itself failed, which leaves an unreferenced file for the next
//! open's garbage collection).
//!
//! The job runs on one thread (the compaction thread) and shares only the
//! read-only input tables.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::{Fs, OpenOptions};
use crate::iter::EntryIter;
use crate::manifest::TableEntry;
use crate::merge::MergingIter;
use crate::sstable::{Table, TableBuilder, TableOptions};
use crate::types::{split_internal_key, user_key, SeqNo};

use super::filter::{Verdict, VersionFilter};
use super::plan::{level_u32, CompactionPlan};

/// The file name of table `number` (`NNNNNN.sst`).
pub fn table_file_name(number: u64) -> String {
    format!("{number:06}.sst")
}

/// What a finished job produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactionOutput {
    /// The new tables, at the plan's output level, sorted by key.
    pub new_tables: Vec<TableEntry>,
    /// Bytes of the input files.
    pub bytes_read: u64,
    /// Bytes of the output files.
    pub bytes_written: u64,
    /// Entries read from the inputs (each distinct internal key once).
    pub entries_read: u64,
    /// Entries written to the outputs.
    pub entries_written: u64,
    /// Entries dropped: shadowed versions and obsolete tombstones.
    pub entries_dropped: u64,
    /// Of those, obsolete tombstones.
    pub tombstones_dropped: u64,
}

/// Runs `plan` over `inputs` (one open [`Table`] per input of the plan,
/// any order, each opened with its file number as table id).
///
/// `smallest_snapshot` is the oldest sequence any reader may use (the
/// oldest live snapshot, or the last sequence if none is live);
/// `live_snapshots` are the sequences of the live snapshots. New files are
/// numbered by `next_file` and created in `dir`; they are cut at about
/// `target_file_size` bytes. A trivial-move plan is rewritten like any
/// other (callers normally move it in the manifest instead).
#[expect(
    clippy::too_many_arguments,
    reason = "the job's inputs are independent; a struct would only rename them"
)]
pub fn run_compaction(
    fs: &dyn Fs,
    dir: &Path,
    plan: &CompactionPlan,
    inputs: Vec<Table>,
    smallest_snapshot: SeqNo,
    live_snapshots: &[SeqNo],
    next_file: &dyn Fn() -> u64,
    table_opts: &TableOptions,
    target_file_size: u64,
) -> Result<CompactionOutput> {
    let tables = order_inputs(plan, inputs)?;
    let mut out = Outputs {
        fs,
        dir,
        next_file,
        table_opts,
        target_file_size,
        level: level_u32(plan.output_level),
        created: Vec::new(),
        current: None,
        stats: CompactionOutput {
            bytes_read: tables.iter().map(Table::file_size).sum(),
            ..CompactionOutput::default()
        },
    };
    let filter = VersionFilter::new(smallest_snapshot, live_snapshots, plan.is_bottom);
    match merge_into(&tables, filter, &mut out).and_then(|()| out.finish_all()) {
        Ok(stats) => Ok(stats),
        Err(e) => {
            out.abandon();
            Err(e)
        }
    }
}

/// The inputs in the plan's merge order; every input must be present.
fn order_inputs(plan: &CompactionPlan, inputs: Vec<Table>) -> Result<Vec<Table>> {
    let mut by_id: HashMap<u64, Table> = inputs.into_iter().map(|t| (t.id(), t)).collect();
    let mut ordered = Vec::with_capacity(by_id.len());
    for n in plan.input_numbers() {
        let t = by_id.remove(&n).ok_or_else(|| {
            Error::InvalidArgument(format!("compaction input table {n} was not provided"))
        })?;
        ordered.push(t);
    }
    if let Some(extra) = by_id.keys().next() {
        return Err(Error::InvalidArgument(format!(
            "table {extra} was provided but is not an input of the compaction"
        )));
    }
    Ok(ordered)
}

fn merge_into(tables: &[Table], mut filter: VersionFilter, out: &mut Outputs<'_>) -> Result<()> {
    let sources: Vec<Box<dyn EntryIter>> = tables
        .iter()
        .map(|t| Box::new(t.iter()) as Box<dyn EntryIter>)
        .collect();
    let mut merged = MergingIter::new(sources);
    merged.seek_to_first()?;
    while merged.valid() {
        let key = merged.key();
        let Some((user, seq, kind)) = split_internal_key(key) else {
            return Err(Error::InvalidArgument(format!(
                "compaction input yielded a malformed internal key of {} bytes",
                key.len()
            )));
        };
        out.stats.entries_read += 1;
        match filter.decide(user, seq, kind) {
            Verdict::Keep => out.add(key, merged.value())?,
            Verdict::Shadowed => out.stats.entries_dropped += 1,
            Verdict::ObsoleteTombstone => {
                out.stats.entries_dropped += 1;
                out.stats.tombstones_dropped += 1;
            }
        }
        merged.next()?;
    }
    Ok(())
}

/// The output file being written.
struct Current {
    number: u64,
    builder: TableBuilder,
    /// The user key of the last entry added.
    last_user_key: Vec<u8>,
}

/// The outputs of one job: the file being written, and every file created
/// so far (to remove on failure).
struct Outputs<'a> {
    fs: &'a dyn Fs,
    dir: &'a Path,
    next_file: &'a dyn Fn() -> u64,
    table_opts: &'a TableOptions,
    target_file_size: u64,
    level: u32,
    created: Vec<PathBuf>,
    current: Option<Current>,
    stats: CompactionOutput,
}

impl Outputs<'_> {
    fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        let user = user_key(ikey);
        let cut = self.current.as_ref().is_some_and(|c| {
            c.builder.file_size_estimate() >= self.target_file_size
                && c.last_user_key.as_slice() != user
        });
        if cut {
            self.finish_current()?;
        }
        let mut cur = match self.current.take() {
            Some(c) => c,
            None => self.open_next()?,
        };
        cur.builder.add(ikey, value)?;
        if cur.last_user_key.as_slice() != user {
            cur.last_user_key.clear();
            cur.last_user_key.extend_from_slice(user);
        }
        self.current = Some(cur);
        self.stats.entries_written += 1;
        Ok(())
    }

    fn open_next(&mut self) -> Result<Current> {
        let number = (self.next_file)();
        let path = self.dir.join(table_file_name(number));
        let file = self
            .fs
            .open(&path, OpenOptions::create_new().with_direct())?;
        self.created.push(path);
        Ok(Current {
            number,
            builder: TableBuilder::new(file, self.table_opts.clone()),
            last_user_key: Vec::new(),
        })
    }

    fn finish_current(&mut self) -> Result<()> {
        let Some(cur) = self.current.take() else {
            return Ok(());
        };
        let meta = cur.builder.finish()?;
        self.stats.bytes_written += meta.file_size;
        self.stats.new_tables.push(TableEntry {
            level: self.level,
            number: cur.number,
            size: meta.file_size,
            smallest: meta.smallest,
            largest: meta.largest,
        });
        Ok(())
    }

    /// Finishes the last output and makes the new names durable.
    fn finish_all(&mut self) -> Result<CompactionOutput> {
        self.finish_current()?;
        if !self.created.is_empty() {
            self.fs.sync_dir(self.dir)?;
        }
        Ok(std::mem::take(&mut self.stats))
    }

    /// Removes every output created, ignoring failures (best effort).
    fn abandon(&mut self) {
        self.current = None;
        for path in self.created.drain(..) {
            // Best effort: an unreferenced file is harmless and is
            // collected by the next open.
            let _ = self.fs.remove(&path);
        }
    }
}
