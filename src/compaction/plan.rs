//! [`CompactionPlan`]: what the picker decided, and everything the job
//! and the version edit need to carry it out.

use crate::manifest::{TableEntry, VersionEdit};

use super::snapshot::{KeyRange, TableDesc};

/// Why a compaction was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompactionReason {
    /// L0 holds too many files (or bytes).
    Level0,
    /// A level L1+ is over its target size.
    LevelSize,
    /// `compact_range` asked for it.
    Manual,
}

/// The tables a compaction takes from one level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelInputs {
    /// The level they live in.
    pub level: usize,
    /// L0: newest first; L1+: sorted by key.
    pub tables: Vec<TableDesc>,
}

/// One compaction, decided.
#[derive(Clone, Debug, PartialEq)]
pub struct CompactionPlan {
    /// Why it was chosen.
    pub reason: CompactionReason,
    /// The score of the input level when it was chosen (0 for manual).
    pub score: f64,
    /// The level compacted from.
    pub input_level: usize,
    /// The level the outputs go to (`input_level` itself for a manual
    /// rewrite of the bottom of a range).
    pub output_level: usize,
    /// The inputs: the input level's tables first, then the output level's
    /// overlapping tables (omitted when there are none or the levels are
    /// the same). This is also the merge order: newest data first.
    pub inputs: Vec<LevelInputs>,
    /// A single input with nothing overlapping it in the output level:
    /// install it at the output level by a manifest edit, no rewrite.
    pub trivial_move: bool,
    /// No table deeper than `output_level` overlaps `key_range` (and no
    /// running compaction writes there), so nothing older than the inputs
    /// exists for these keys: tombstones that no snapshot needs may be
    /// dropped.
    pub is_bottom: bool,
    /// The user-key range covered by all inputs (and so by all outputs).
    pub key_range: KeyRange,
    /// The new compaction pointer of `input_level` (its largest input
    /// key), for size-triggered compactions from L1+; the caller stores it
    /// in the next snapshot's `compact_pointers`.
    pub compact_pointer: Option<Vec<u8>>,
    /// Outputs are cut at about this size.
    pub target_file_size_bytes: u64,
}

impl CompactionPlan {
    /// Every input table with its level, in merge order.
    pub fn input_tables(&self) -> impl Iterator<Item = (usize, &TableDesc)> + '_ {
        self.inputs
            .iter()
            .flat_map(|l| l.tables.iter().map(move |t| (l.level, t)))
    }

    /// The file numbers of every input, in merge order.
    pub fn input_numbers(&self) -> Vec<u64> {
        self.input_tables().map(|(_, t)| t.number).collect()
    }

    /// Total bytes of the inputs.
    pub fn input_bytes(&self) -> u64 {
        self.input_tables().map(|(_, t)| t.size).sum()
    }

    /// The version edit installing the result: every input deleted,
    /// `new_tables` added. For a trivial move pass
    /// [`CompactionPlan::moved_tables`]. An edit can delete and add the
    /// same file number (at different levels): apply deletions first.
    pub fn version_edit(&self, new_tables: Vec<TableEntry>) -> VersionEdit {
        VersionEdit {
            deleted_tables: self
                .input_tables()
                .map(|(level, t)| (level_u32(level), t.number))
                .collect(),
            new_tables,
            ..VersionEdit::default()
        }
    }

    /// The files to delete once the version edit is durable: every input,
    /// except for a trivial move, whose file lives on at its new level.
    pub fn obsolete_files(&self) -> Vec<u64> {
        if self.trivial_move {
            Vec::new()
        } else {
            self.input_numbers()
        }
    }

    /// For a trivial move: the inputs re-levelled to the output level.
    pub fn moved_tables(&self) -> Vec<TableEntry> {
        self.input_tables()
            .map(|(_, t)| t.to_entry(level_u32(self.output_level)))
            .collect()
    }
}

/// A level number as the manifest stores it. Levels are small (the
/// options bound them), so this never saturates in practice.
pub(crate) fn level_u32(level: usize) -> u32 {
    u32::try_from(level).unwrap_or(u32::MAX)
}
