//! What the picker looks at: an immutable [`LevelsSnapshot`] of the live
//! tables, and the [`InFlight`] record of compactions already running.
//!
//! Level shape (checked by [`LevelsSnapshot::validate`]):
//!
//! - L0 files may overlap one another; they are listed newest first.
//! - L1 and deeper are sorted by internal key and do not overlap in
//!   internal-key order (`largest[i] < smallest[i + 1]`). Two neighbours
//!   may still share a *user* key (the older versions of a key continuing
//!   in the next file); the picker never separates such neighbours.
//!
//! Key ranges ([`KeyRange`]) are inclusive ranges of *user* keys: two files
//! "overlap" when their user-key ranges intersect, whatever their
//! sequences. That is the conservative notion every rule here needs.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::ops::{Range, RangeInclusive};

use crate::manifest::TableEntry;
use crate::types::{compare_internal_keys, user_key};

use super::plan::CompactionPlan;

/// A table as the picker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableDesc {
    /// File number (`NNNNNN.sst`).
    pub number: u64,
    /// Size in bytes.
    pub size: u64,
    /// Smallest internal key.
    pub smallest: Vec<u8>,
    /// Largest internal key.
    pub largest: Vec<u8>,
}

impl TableDesc {
    /// The user key of the smallest internal key.
    pub fn smallest_user_key(&self) -> &[u8] {
        user_key(&self.smallest)
    }

    /// The user key of the largest internal key.
    pub fn largest_user_key(&self) -> &[u8] {
        user_key(&self.largest)
    }

    /// The user-key range the table covers.
    pub fn range(&self) -> KeyRange {
        KeyRange::new(self.smallest_user_key(), self.largest_user_key())
    }

    /// Whether the table's user-key range intersects `r`.
    pub fn overlaps(&self, r: &KeyRange) -> bool {
        self.smallest_user_key() <= r.hi.as_slice() && r.lo.as_slice() <= self.largest_user_key()
    }

    /// The manifest record of this table at `level`.
    pub fn to_entry(&self, level: u32) -> TableEntry {
        TableEntry {
            level,
            number: self.number,
            size: self.size,
            smallest: self.smallest.clone(),
            largest: self.largest.clone(),
        }
    }
}

impl From<&TableEntry> for TableDesc {
    fn from(e: &TableEntry) -> Self {
        TableDesc {
            number: e.number,
            size: e.size,
            smallest: e.smallest.clone(),
            largest: e.largest.clone(),
        }
    }
}

/// An inclusive range of user keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    /// Smallest user key in the range.
    pub lo: Vec<u8>,
    /// Largest user key in the range.
    pub hi: Vec<u8>,
}

impl KeyRange {
    /// The range `[lo, hi]`.
    pub fn new(lo: &[u8], hi: &[u8]) -> Self {
        KeyRange {
            lo: lo.to_vec(),
            hi: hi.to_vec(),
        }
    }

    /// Whether the two ranges share a user key.
    pub fn overlaps(&self, other: &KeyRange) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }

    /// Grows the range to cover `other` as well.
    pub fn extend(&mut self, other: &KeyRange) {
        if other.lo < self.lo {
            self.lo.clone_from(&other.lo);
        }
        if other.hi > self.hi {
            self.hi.clone_from(&other.hi);
        }
    }

    /// The smallest range covering every table in `tables`; `None` if empty.
    pub fn covering<'a>(tables: impl IntoIterator<Item = &'a TableDesc>) -> Option<KeyRange> {
        let mut it = tables.into_iter();
        let mut r = it.next()?.range();
        for t in it {
            r.extend(&t.range());
        }
        Some(r)
    }
}

/// The live tables by level, frozen for one decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LevelsSnapshot {
    /// `levels[n]` holds level n: L0 newest first, L1+ sorted by key.
    pub levels: Vec<Vec<TableDesc>>,
    /// Per level, the largest internal key of the last size-triggered
    /// compaction taken from it (empty: start from the beginning). Used by
    /// [`super::FilePriority::RoundRobin`]; see
    /// [`CompactionPlan::compact_pointer`].
    pub compact_pointers: Vec<Vec<u8>>,
}

impl LevelsSnapshot {
    /// A snapshot of `levels` (L0 newest first, L1+ sorted) with no
    /// compaction pointers.
    pub fn new(levels: Vec<Vec<TableDesc>>) -> Self {
        LevelsSnapshot {
            levels,
            compact_pointers: Vec::new(),
        }
    }

    /// A snapshot built from manifest records: L0 ordered newest first by
    /// file number (flushes take increasing numbers), L1+ by smallest key.
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a TableEntry>) -> Self {
        let mut levels: Vec<Vec<TableDesc>> = Vec::new();
        for e in entries {
            let level = e.level as usize;
            if levels.len() <= level {
                levels.resize_with(level + 1, Vec::new);
            }
            if let Some(l) = levels.get_mut(level) {
                l.push(TableDesc::from(e));
            }
        }
        for (n, files) in levels.iter_mut().enumerate() {
            if n == 0 {
                files.sort_by_key(|t| std::cmp::Reverse(t.number));
            } else {
                files.sort_by(|a, b| compare_internal_keys(&a.smallest, &b.smallest));
            }
        }
        LevelsSnapshot::new(levels)
    }

    /// The files of level `n` (empty past the last level).
    pub fn level(&self, n: usize) -> &[TableDesc] {
        self.levels.get(n).map_or(&[], Vec::as_slice)
    }

    /// Total bytes of level `n`.
    pub fn level_bytes(&self, n: usize) -> u64 {
        self.level(n).iter().map(|t| t.size).sum()
    }

    /// The compaction pointer of level `n` (empty if none).
    pub fn compact_pointer(&self, n: usize) -> &[u8] {
        self.compact_pointers.get(n).map_or(&[], Vec::as_slice)
    }

    /// Checks the level shape; the error names the first violation.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = HashSet::new();
        for (n, files) in self.levels.iter().enumerate() {
            for t in files {
                if !seen.insert(t.number) {
                    return Err(format!("table {} is listed twice", t.number));
                }
                if compare_internal_keys(&t.smallest, &t.largest) == Ordering::Greater {
                    return Err(format!("L{n} table {}: smallest > largest", t.number));
                }
            }
            if n == 0 {
                continue;
            }
            for pair in files.windows(2) {
                if let [a, b] = pair {
                    if compare_internal_keys(&a.largest, &b.smallest) != Ordering::Less {
                        return Err(format!(
                            "L{n} tables {} and {} overlap or are out of order",
                            a.number, b.number
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The snapshot after `plan` is installed with `outputs` as its new
    /// tables (for a trivial move, pass no outputs: the input is moved).
    /// Also advances the input level's compaction pointer. This is what
    /// the database's version edit does; simulators and tests use it.
    pub fn apply(&self, plan: &CompactionPlan, outputs: &[TableDesc]) -> LevelsSnapshot {
        let gone: HashSet<u64> = plan.input_numbers().into_iter().collect();
        let mut next = self.clone();
        for files in &mut next.levels {
            files.retain(|t| !gone.contains(&t.number));
        }
        let out = plan.output_level;
        if next.levels.len() <= out {
            next.levels.resize_with(out + 1, Vec::new);
        }
        let added: Vec<TableDesc> = if plan.trivial_move {
            plan.inputs.iter().flat_map(|l| l.tables.clone()).collect()
        } else {
            outputs.to_vec()
        };
        if let Some(files) = next.levels.get_mut(out) {
            files.extend(added);
            if out > 0 {
                files.sort_by(|a, b| compare_internal_keys(&a.smallest, &b.smallest));
            }
        }
        if let Some(p) = &plan.compact_pointer {
            let n = plan.input_level;
            if next.compact_pointers.len() <= n {
                next.compact_pointers.resize_with(n + 1, Vec::new);
            }
            if let Some(slot) = next.compact_pointers.get_mut(n) {
                slot.clone_from(p);
            }
        }
        next
    }
}

/// The compactions already running: their tables are taken, and each
/// holds its key range over the levels it spans (input level through
/// output level).
///
/// Sharing no table is not quite enough: a plan's key range is the hull of
/// its inputs, and two plans whose ranges meet could otherwise write
/// interleaved files into one level, or one could push data below a range
/// that another is rewriting as the bottom. So a new plan is refused if it
/// takes a busy table, or if its key range meets the range of a running
/// plan and their level spans share a level. Plans whose spans are
/// disjoint (one entirely below the other) may share key ranges.
#[derive(Clone, Debug, Default)]
pub struct InFlight {
    tables: HashSet<u64>,
    /// (input level, output level, key range) of each running plan.
    spans: Vec<(usize, usize, KeyRange)>,
}

impl InFlight {
    /// Nothing running.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a plan as started.
    pub fn add(&mut self, plan: &CompactionPlan) {
        self.tables.extend(plan.input_numbers());
        self.spans.push(span(plan));
    }

    /// Records a plan as finished (installed or abandoned).
    pub fn remove(&mut self, plan: &CompactionPlan) {
        for n in plan.input_numbers() {
            self.tables.remove(&n);
        }
        let key = span(plan);
        if let Some(i) = self.spans.iter().position(|s| *s == key) {
            self.spans.swap_remove(i);
        }
    }

    /// Whether table `number` is being compacted.
    pub fn is_busy(&self, number: u64) -> bool {
        self.tables.contains(&number)
    }

    /// Whether nothing is running.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.spans.is_empty()
    }

    /// Whether a running plan's key range meets `r` and its levels
    /// (input through output) meet `levels`.
    pub fn conflicts(&self, levels: RangeInclusive<usize>, r: &KeyRange) -> bool {
        self.spans.iter().any(|(lo, hi, range)| {
            *lo <= *levels.end() && *levels.start() <= *hi && range.overlaps(r)
        })
    }

    /// Whether a running plan writes into a level deeper than `level` over
    /// a range meeting `r`.
    pub fn writes_below(&self, level: usize, r: &KeyRange) -> bool {
        self.spans
            .iter()
            .any(|(_, out, range)| *out > level && range.overlaps(r))
    }
}

fn span(plan: &CompactionPlan) -> (usize, usize, KeyRange) {
    (plan.input_level, plan.output_level, plan.key_range.clone())
}

/// The indices of the files of a sorted level (L1+) whose user-key range
/// intersects `r`.
pub fn overlapping(files: &[TableDesc], r: &KeyRange) -> Range<usize> {
    let start = files.partition_point(|t| t.largest_user_key() < r.lo.as_slice());
    let end = files.partition_point(|t| t.smallest_user_key() <= r.hi.as_slice());
    start..end.max(start)
}

/// Widens `range` (indices into a sorted level) so that no user key has
/// versions both inside and outside it: while a neighbour shares a
/// boundary user key, take the neighbour too. An empty range stays empty.
pub fn clean_cut(files: &[TableDesc], range: Range<usize>) -> Range<usize> {
    if range.is_empty() {
        return range;
    }
    let (mut lo, mut hi) = (range.start, range.end);
    while lo > 0 {
        match (files.get(lo - 1), files.get(lo)) {
            (Some(a), Some(b)) if a.largest_user_key() == b.smallest_user_key() => lo -= 1,
            _ => break,
        }
    }
    while hi < files.len() {
        match (files.get(hi - 1), files.get(hi)) {
            (Some(a), Some(b)) if a.largest_user_key() == b.smallest_user_key() => hi += 1,
            _ => break,
        }
    }
    lo..hi
}
