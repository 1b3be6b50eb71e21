//! Leveled compaction: policy (which tables to merge, when to stall
//! writers) and mechanism (merging tables into new ones).
//!
//! Policy and mechanism are separate, as in mini-lsm:
//!
//! - **Policy is pure.** [`pick_compaction`], [`manual_range`],
//!   [`write_stall`] and [`pending_compaction_bytes`] take an immutable
//!   [`LevelsSnapshot`] (and the [`InFlight`] compactions) and return a
//!   decision. They do no IO, take no locks and can be run by a simulator
//!   or a property test without a disk.
//! - **The mechanism executes a plan.** [`run_compaction`] merges the
//!   plan's input tables into new table files and returns their manifest
//!   records. It never edits the manifest and never deletes files.
//! - **The caller** (the database's compaction thread) owns the rest:
//!   snapshot the version, pick, mark the plan in flight, run it (or, for a
//!   trivial move, just edit), log the version edit
//!   ([`CompactionPlan::version_edit`]), install the new version, remove
//!   [`CompactionPlan::obsolete_files`] once the edit is durable (never a
//!   trivially moved file), and store the plan's
//!   [`CompactionPlan::compact_pointer`].
//!
//! Threads: the policy functions are pure and may be called from any
//! thread on any snapshot. A job runs on one thread (the compaction
//! thread) and shares only its read-only input tables; several jobs may run
//! at once if their plans were picked against one [`InFlight`] record.
//!
//! # The shape this keeps
//!
//! - L0 files overlap and are ordered newest first; L1 and deeper are
//!   sorted and disjoint in internal-key order. For every user key, a
//!   version in a shallower level (or a newer L0 file) is newer than any
//!   version deeper down. Every rule below exists to keep this.
//! - L0 inputs are closed under overlap: no L0 file left behind overlaps
//!   them, so an older version never stays above a newer one moved down.
//! - L1+ inputs are a *clean cut*: a run of files whose neighbours outside
//!   the run do not share a boundary user key. (One user key's versions
//!   may continue from one file into the next; they move together.)
//! - The output level's inputs are all its files overlapping the inputs'
//!   user-key range (also a clean cut), so the outputs fit back in between
//!   the files left there.
//! - Two running compactions never share a table, and two whose key ranges
//!   meet never touch a common level ([`InFlight`]); only one L0
//!   compaction runs at a time.
//! - A *trivial move* (one input, nothing overlapping it in the output
//!   level) is done by a manifest edit alone.
//! - `is_bottom`: no level below the output overlaps the plan's range and
//!   no running compaction writes there, so no older version of its keys
//!   exists anywhere else.
//!
//! # What the job keeps (see [`filter`])
//!
//! Per user key, the newest version, plus the newest version visible at
//! each live snapshot; a version shadowed by a newer one in the same
//! snapshot stripe is dropped; a tombstone is dropped only when
//! `is_bottom` and it is at or below the earliest snapshot. Outputs are
//! cut at about the target size, never inside one user key's versions.
//!
//! # Scoring and stalls
//!
//! See [`sizing`] (targets, dynamic level sizing, scores) and [`stall`]
//! (pending compaction bytes, slowdown and stop). Options: [`options`].

pub mod filter;
pub mod job;
pub mod options;
pub mod picker;
pub mod plan;
pub mod sizing;
pub mod snapshot;
pub mod stall;

#[cfg(test)]
mod job_tests;
#[cfg(test)]
mod picker_tests;

pub use filter::{Verdict, VersionFilter};
pub use job::{run_compaction, table_file_name, CompactionOutput};
pub use options::{CompactionOptions, FilePriority};
pub use picker::{manual_range, pick_compaction, ManualStep};
pub use plan::{CompactionPlan, CompactionReason, LevelInputs};
pub use sizing::{base_bytes, level_scores, level_targets, space_amplification, LevelTargets};
pub use snapshot::{InFlight, KeyRange, LevelsSnapshot, TableDesc};
pub use stall::{pending_compaction_bytes, write_stall, StallDecision};
