//! Write-stall control: how far compaction is behind, and whether writers
//! must slow down or stop until it catches up.
//!
//! **Pending compaction bytes** (RocksDB's estimate): if L0 is at its
//! trigger (files or bytes), all of L0 plus all of the base level must be
//! rewritten. Then, from the base level down, each level's excess over its
//! target (including what the level above pushes into it) moves to the
//! next level, and costs `excess * (next_level_bytes / level_bytes + 1)`
//! bytes of rewriting (the fan-out into the next level's overlapping
//! files).
//!
//! **Stall rule**, checked in this order:
//! - `Stop` when L0 has `level0_stop_writes_trigger` files or the pending
//!   bytes reach `hard_pending_compaction_bytes_limit`;
//! - `Slowdown` when L0 has `level0_slowdown_writes_trigger` files or the
//!   pending bytes reach `soft_pending_compaction_bytes_limit`;
//! - otherwise `None`.
//!
//! A pending-bytes limit of 0 disables that limit.
//!
//! L0 files being compacted still count: they still cost every read.

use super::options::CompactionOptions;
use super::sizing::{level_targets, levels_in_use};
use super::snapshot::LevelsSnapshot;

/// What writers must do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StallDecision {
    /// Write at full speed.
    None,
    /// Delay each write a little (the caller picks the delay).
    Slowdown,
    /// Block writes until compaction brings the shape back under the limits.
    Stop,
}

/// The estimated bytes compaction must rewrite to bring every level under
/// its target (see the module docs).
pub fn pending_compaction_bytes(snap: &LevelsSnapshot, opts: &CompactionOptions) -> u64 {
    let targets = level_targets(snap, opts);
    let n = levels_in_use(snap, opts);
    let l0_bytes = snap.level_bytes(0);
    let l0_due = snap.level(0).len() >= opts.l0_trigger()
        || l0_bytes >= opts.max_bytes_for_level_base.max(1);
    let mut pending: u128 = 0;
    let mut to_next: u64 = 0;
    if l0_due {
        pending += u128::from(l0_bytes);
        to_next = l0_bytes;
    }
    for level in targets.base_level..n.saturating_sub(1) {
        let mut size = snap.level_bytes(level);
        if level == targets.base_level && l0_due {
            pending += u128::from(size);
        }
        size = size.saturating_add(to_next);
        to_next = 0;
        let target = targets.max_bytes(level);
        if size > target {
            to_next = size - target;
            let next_bytes = snap.level_bytes(level + 1);
            if next_bytes > 0 {
                // excess * (next / size + 1), in integers.
                let excess = u128::from(to_next);
                pending += excess * u128::from(next_bytes) / u128::from(size) + excess;
            }
        }
    }
    u64::try_from(pending).unwrap_or(u64::MAX)
}

/// Whether writes should go on, slow down or stop (see the module docs).
pub fn write_stall(snap: &LevelsSnapshot, opts: &CompactionOptions) -> StallDecision {
    let l0_files = snap.level(0).len();
    let pending = pending_compaction_bytes(snap, opts);
    let over = |limit: u64| limit > 0 && pending >= limit;
    if l0_files >= opts.level0_stop_writes_trigger || over(opts.hard_pending_compaction_bytes_limit)
    {
        StallDecision::Stop
    } else if l0_files >= opts.level0_slowdown_writes_trigger
        || over(opts.soft_pending_compaction_bytes_limit)
    {
        StallDecision::Slowdown
    } else {
        StallDecision::None
    }
}
