//! Level targets and compaction scores.
//!
//! **Static sizing** (`level_compaction_dynamic_level_bytes = false`): L0
//! flushes into L1; L1's target is `max_bytes_for_level_base` and each
//! deeper level's is `multiplier` times the one above.
//!
//! **Dynamic sizing** (the default, RocksDB's rule): targets are set from
//! the bottom up so that the last level holds about `multiplier / (1 +
//! multiplier)` of the data (~90%), which bounds space amplification at
//! about 1.11 whatever the database size:
//!
//! 1. `max` = the largest L1+ level's bytes; `first` = the first non-empty
//!    L1+ level. With no L1+ data, L0 compacts straight into the last
//!    level and nothing else has a target.
//! 2. `base_max` = max(`max_bytes_for_level_base`, L0 bytes);
//!    `base_min` = `base_max / multiplier`.
//! 3. Divide `max` by the multiplier once per level from the next to last
//!    up to `first`: `size`. If `size <= base_min`, the base level is
//!    `first` with target `base_min + 1` (more levels exist than the data
//!    needs). Otherwise walk the base level up from `first` while `size >
//!    base_max` (dividing again per level, stopping at L1); its target is
//!    `size` (or `base_max` if even L1 would be too big).
//! 4. Each level below the base has `multiplier` times the target of the
//!    one above, never below `base_max`. Levels above the base are empty,
//!    have no target, and L0 compacts into the base level.
//!
//! **Small databases** (dynamic sizing, the largest level under
//! `multiplier` x `max_bytes_for_level_base`; RocksDB differs here):
//! `max_bytes_for_level_base` is replaced in the rule above by
//! [`base_bytes`], a `1/multiplier` share of the largest level, so no
//! level above the last is allowed more than about a tenth of the data.
//! Without this a database of 100 MB keeps up to 64 MB (the base floor) in
//! a level above the last: space amplification near 1.7 before L0 is
//! counted. And when the base level is empty and L0 alone holds more than
//! that share, L0 compacts straight into the first non-empty level (rather
//! than into the base level and, at once, from there down: the same data
//! written twice). L0's own triggers are unchanged (a compaction per
//! flush would rewrite the whole database each time); what L0 holds when
//! the writes stop goes down by the idle compaction (`db/compact.rs`).
//!
//! **Scores**: L0 = max(files / `level0_file_num_compaction_trigger`,
//! bytes / `max_bytes_for_level_base`); Ln = bytes / target. Tables already
//! being compacted are not counted. The last level has no score. A level
//! with score >= 1 needs compaction; the highest goes first.

use super::options::CompactionOptions;
use super::snapshot::{InFlight, LevelsSnapshot};

/// The size targets of one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelTargets {
    /// The level L0 compacts into (1 with static sizing).
    pub base_level: usize,
    /// Target bytes per level; `u64::MAX` for L0, for levels above the
    /// base and where no compaction from the level is wanted.
    pub max_bytes: Vec<u64>,
}

impl LevelTargets {
    /// The target of level `n` (`u64::MAX` if it has none).
    pub fn max_bytes(&self, n: usize) -> u64 {
        self.max_bytes.get(n).copied().unwrap_or(u64::MAX)
    }
}

/// The number of levels to consider: the configured number, or more if the
/// snapshot holds deeper levels (at least 2).
pub fn levels_in_use(snap: &LevelsSnapshot, opts: &CompactionOptions) -> usize {
    opts.num_levels.max(snap.levels.len()).max(2)
}

/// The bytes of the largest level below L0.
fn max_level_bytes(snap: &LevelsSnapshot, n: usize) -> u64 {
    (1..n).map(|l| snap.level_bytes(l)).max().unwrap_or(0)
}

/// `max_bytes_for_level_base`, or, with dynamic sizing in a database whose
/// largest level holds less than `multiplier` times that, a
/// `1/multiplier` share of the largest level (at least 1 byte): the floor
/// of level targets.
pub fn base_bytes(snap: &LevelsSnapshot, opts: &CompactionOptions) -> u64 {
    let base = opts.max_bytes_for_level_base.max(1);
    if !opts.level_compaction_dynamic_level_bytes {
        return base;
    }
    match max_level_bytes(snap, levels_in_use(snap, opts)) {
        0 => base,
        max => base.min((max / opts.multiplier()).max(1)),
    }
}

/// Computes the targets (see the module docs for the rule).
pub fn level_targets(snap: &LevelsSnapshot, opts: &CompactionOptions) -> LevelTargets {
    let n = levels_in_use(snap, opts);
    let mult = opts.multiplier();
    let mut max_bytes = vec![u64::MAX; n];
    if !opts.level_compaction_dynamic_level_bytes {
        let mut size = opts.max_bytes_for_level_base.max(1);
        for slot in max_bytes.iter_mut().skip(1) {
            *slot = size;
            size = size.saturating_mul(mult);
        }
        return LevelTargets {
            base_level: 1,
            max_bytes,
        };
    }
    let sizes: Vec<u64> = (0..n).map(|l| snap.level_bytes(l)).collect();
    let max_level_size = max_level_bytes(snap, n);
    let base_floor = base_bytes(snap, opts);
    let small = base_floor < opts.max_bytes_for_level_base;
    let first_non_empty = (1..n).find(|&l| sizes.get(l).is_some_and(|&s| s > 0));
    let Some(first) = first_non_empty.filter(|_| max_level_size > 0) else {
        return LevelTargets {
            base_level: n - 1,
            max_bytes,
        };
    };
    let base_max = base_floor.max(sizes.first().copied().unwrap_or(0));
    let base_min = base_max / mult;
    let mut size = max_level_size;
    for _ in first..n - 1 {
        size /= mult;
    }
    let (base_level, base_size) = if size <= base_min {
        (first, base_min + 1)
    } else {
        let mut base = first;
        while base > 1 && size > base_max {
            base -= 1;
            size /= mult;
        }
        (
            base,
            if size > base_max {
                base_max
            } else {
                size.max(1)
            },
        )
    };
    let mut level_size = base_size;
    for (l, slot) in max_bytes.iter_mut().enumerate().skip(base_level) {
        if l > base_level {
            level_size = level_size.saturating_mul(mult);
        }
        *slot = level_size.max(base_max);
    }
    // A small database whose base level is empty: L0 goes straight to the
    // first level holding data when it alone would overfill the base.
    let l0_bytes = sizes.first().copied().unwrap_or(0);
    let base_level = if small && base_level < first && l0_bytes > base_floor {
        for slot in max_bytes.iter_mut().take(first) {
            *slot = u64::MAX;
        }
        first
    } else {
        base_level
    };
    LevelTargets {
        base_level,
        max_bytes,
    }
}

/// The score of every level (index = level); the last level scores 0.
pub fn level_scores(
    snap: &LevelsSnapshot,
    in_flight: &InFlight,
    opts: &CompactionOptions,
    targets: &LevelTargets,
) -> Vec<f64> {
    let n = levels_in_use(snap, opts);
    let idle_bytes = |l: usize| -> u64 {
        snap.level(l)
            .iter()
            .filter(|t| !in_flight.is_busy(t.number))
            .map(|t| t.size)
            .sum()
    };
    let mut scores = vec![0.0; n];
    for (l, score) in scores.iter_mut().enumerate().take(n - 1) {
        *score = if l == 0 {
            let idle_files = snap
                .level(0)
                .iter()
                .filter(|t| !in_flight.is_busy(t.number))
                .count();
            let by_count = idle_files as f64 / opts.l0_trigger() as f64;
            let by_bytes = idle_bytes(0) as f64 / opts.max_bytes_for_level_base.max(1) as f64;
            by_count.max(by_bytes)
        } else {
            match targets.max_bytes(l) {
                u64::MAX => 0.0,
                target => idle_bytes(l) as f64 / target.max(1) as f64,
            }
        };
    }
    scores
}

/// All table bytes over the bytes of the deepest non-empty level (1.0 for
/// an empty database or one whose data is all in L0): RocksDB's estimate
/// of space amplification, which is exact once the deepest level holds one
/// version of every live key.
pub fn space_amplification(snap: &LevelsSnapshot) -> f64 {
    let sizes: Vec<u64> = (0..snap.levels.len())
        .map(|l| snap.level_bytes(l))
        .collect();
    let total: u64 = sizes.iter().sum();
    match sizes.iter().rev().find(|&&b| b > 0) {
        Some(&last) if last > 0 => total as f64 / last as f64,
        _ => 1.0,
    }
}
