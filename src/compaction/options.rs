//! [`CompactionOptions`]: the knobs of leveled compaction and write-stall
//! control. Names and defaults follow RocksDB's, so its tuning guides
//! apply; sizes carry their unit last.

/// How the picker chooses a file from a level that is over its target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FilePriority {
    /// The file whose overlap with the next level is smallest relative to
    /// its own size: the least rewriting per byte pushed down (RocksDB's
    /// `kMinOverlappingRatio`, its default).
    #[default]
    MinOverlappingRatio,
    /// The first file after the level's compaction pointer (the largest key
    /// of the previous compaction from that level), wrapping around
    /// (LevelDB's rule): every key range gets its turn.
    RoundRobin,
}

/// Leveled compaction and write-stall settings.
#[derive(Clone, Debug, PartialEq)]
pub struct CompactionOptions {
    /// L0 files (not already being compacted) that make L0 score 1.
    pub level0_file_num_compaction_trigger: usize,
    /// L0 files at which writes are slowed down.
    pub level0_slowdown_writes_trigger: usize,
    /// L0 files at which writes stop until compaction catches up.
    pub level0_stop_writes_trigger: usize,
    /// Target bytes of the base level (L1, or the dynamic base level).
    pub max_bytes_for_level_base: u64,
    /// Size ratio between adjacent levels (at least 2 is used).
    pub max_bytes_for_level_multiplier: u64,
    /// Number of levels, L0 included (at least 2 is used).
    pub num_levels: usize,
    /// Compaction cuts its output into files of about this size.
    pub target_file_size_bytes: u64,
    /// Size levels from the bottom up, like RocksDB's
    /// `level_compaction_dynamic_level_bytes` (see [`super::sizing`]).
    pub level_compaction_dynamic_level_bytes: bool,
    /// Estimated compaction debt at which writes are slowed down.
    pub soft_pending_compaction_bytes_limit: u64,
    /// Estimated compaction debt at which writes stop.
    pub hard_pending_compaction_bytes_limit: u64,
    /// Which file of an oversized level goes down first.
    pub file_priority: FilePriority,
    /// When the writes pause (no write, and no flush or compaction
    /// installed, for `idle_compaction_delay_ms`) and the tables hold more
    /// than this many times the bytes of the last level, the compaction
    /// thread compacts everything above the last level into it, once per
    /// change of the levels. `None`: never. Not in RocksDB (its nearest are periodic and
    /// universal compaction's size-amplification trigger).
    pub idle_space_amplification_max: Option<f64>,
    /// How long the levels must stay unchanged before the idle compaction.
    pub idle_compaction_delay_ms: u64,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        CompactionOptions {
            level0_file_num_compaction_trigger: 4,
            level0_slowdown_writes_trigger: 20,
            level0_stop_writes_trigger: 36,
            max_bytes_for_level_base: 64 << 20,
            max_bytes_for_level_multiplier: 10,
            num_levels: 7,
            target_file_size_bytes: 64 << 20,
            level_compaction_dynamic_level_bytes: true,
            soft_pending_compaction_bytes_limit: 64 << 30,
            hard_pending_compaction_bytes_limit: 256 << 30,
            file_priority: FilePriority::default(),
            idle_space_amplification_max: Some(1.2),
            idle_compaction_delay_ms: 1_000,
        }
    }
}

impl CompactionOptions {
    /// The size ratio actually used (never below 2).
    pub fn multiplier(&self) -> u64 {
        self.max_bytes_for_level_multiplier.max(2)
    }

    /// The L0 trigger actually used (never below 1).
    pub fn l0_trigger(&self) -> usize {
        self.level0_file_num_compaction_trigger.max(1)
    }
}
