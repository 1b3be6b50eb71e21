//! The set of live tables, by level, as one immutable value.
//!
//! A `Version` is never changed in place: flush and compaction build a new
//! one and swap it in, so a reader that holds an `Arc<Version>` keeps every
//! table of it mapped and readable for as long as it needs (an obsolete
//! table file is deleted only once no version holds it).
//!
//! Level 0 holds flushed tables, which may overlap; newest first (flushes
//! run one at a time, so a higher file number is newer). Levels 1 and up
//! are sorted by key and never overlap, so a point read touches at most one
//! table per level.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::error::Result;
use crate::iter::EntryIter;
use crate::manifest::TableEntry;
use crate::sstable::Table;
use crate::types::{compare_internal_keys, user_key, SeqNo, ValueKind};

/// Number of levels.
pub const NUM_LEVELS: usize = 7;

/// A live table: what the manifest says of it, and the open reader.
pub(crate) type LiveTable = (TableEntry, Arc<Table>);

/// The live tables.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub(crate) levels: Vec<Vec<LiveTable>>,
}

impl Default for Version {
    fn default() -> Self {
        Version {
            levels: vec![Vec::new(); NUM_LEVELS],
        }
    }
}

impl Version {
    /// A version holding `tables`, each placed at its recorded level.
    pub(crate) fn from_tables(tables: Vec<LiveTable>) -> Self {
        let mut v = Version::default();
        for t in tables {
            let level = (t.0.level as usize).min(NUM_LEVELS - 1);
            v.levels[level].push(t);
        }
        v.sort();
        v
    }

    fn sort(&mut self) {
        for (i, level) in self.levels.iter_mut().enumerate() {
            if i == 0 {
                level.sort_by_key(|t| std::cmp::Reverse(t.0.number));
            } else {
                level.sort_by(|a, b| compare_internal_keys(&a.0.smallest, &b.0.smallest));
            }
        }
    }

    /// A new version: `removed` (level, number) taken out, `added` put in.
    pub(crate) fn with_changes(&self, removed: &[(u32, u64)], added: Vec<LiveTable>) -> Self {
        let mut v = self.clone();
        for level in &mut v.levels {
            level.retain(|(e, _)| !removed.iter().any(|&(l, n)| l == e.level && n == e.number));
        }
        for t in added {
            let level = (t.0.level as usize).min(NUM_LEVELS - 1);
            v.levels[level].push(t);
        }
        v.sort();
        v
    }

    /// Files in `level`.
    pub(crate) fn files(&self, level: usize) -> usize {
        self.levels.get(level).map_or(0, Vec::len)
    }

    /// Bytes in `level`.
    pub(crate) fn bytes(&self, level: usize) -> u64 {
        self.levels
            .get(level)
            .map_or(0, |l| l.iter().map(|(e, _)| e.size).sum())
    }

    /// The newest entry for `key` visible at `snapshot`.
    pub(crate) fn get(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<(ValueKind, Vec<u8>)>> {
        for (_, table) in &self.levels[0] {
            if let Some(found) = table.get(key, snapshot)? {
                return Ok(Some(found));
            }
        }
        for level in self.levels.iter().skip(1) {
            let i = level.partition_point(|(e, _)| user_key(&e.largest) < key);
            if let Some((e, table)) = level.get(i) {
                if user_key(&e.smallest) <= key {
                    if let Some(found) = table.get(key, snapshot)? {
                        return Ok(Some(found));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Adds a cursor per table whose range may reach `start` or beyond,
    /// newest data first.
    pub(crate) fn add_sources(&self, start: &[u8], sources: &mut Vec<Box<dyn EntryIter>>) {
        for (i, level) in self.levels.iter().enumerate() {
            for (e, table) in level {
                if i > 0 && user_key(&e.largest).cmp(start) == Ordering::Less {
                    continue;
                }
                sources.push(Box::new(table.iter()));
            }
        }
    }
}
