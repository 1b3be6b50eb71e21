//! [`Options`]: how a database is opened, with every limit named.

use std::sync::Arc;

use crate::compaction::CompactionOptions;
use crate::io::Fs;

/// When an acknowledged write is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Every write group is synced before any write in it is acknowledged
    /// or visible. Survives power loss. The default.
    Sync,
    /// Writes are acknowledged once written to the log; the log is synced
    /// at most `interval_ms` later (like Redis `appendfsync everysec`). A
    /// crash of the process loses nothing; power loss may lose the last
    /// interval.
    Relaxed {
        /// Milliseconds between syncs.
        interval_ms: u64,
    },
}

/// Options for [`crate::Db::open`].
#[derive(Clone, Debug)]
pub struct Options {
    /// The file system; `None` picks io_uring, falling back to pread/pwrite.
    pub fs: Option<Arc<dyn Fs>>,
    /// Durability of acknowledged writes.
    pub durability: Durability,
    /// Size of each pre-zeroed WAL segment of a busy log (one waking from
    /// an idle segment grows toward it eightfold at a time).
    pub wal_segment_size_bytes: u64,
    /// Size of the segment the log starts in after open and after a
    /// manual flush, until writes come: a database at rest then holds one
    /// small segment rather than two full ones. Capped at
    /// `wal_segment_size_bytes`.
    pub wal_idle_segment_size_bytes: u64,
    /// Largest write group the log owner submits at once.
    pub wal_group_size_bytes_max: usize,
    /// Size at which the active memtable is frozen.
    pub memtable_size_bytes_max: usize,
    /// Frozen memtables allowed to wait for flushing before writes stall.
    pub immutable_memtables_max: usize,
    /// Leveled compaction: triggers, level sizes, stall thresholds.
    pub compaction: CompactionOptions,
    /// Bytes of decoded table blocks kept in the shared cache.
    pub block_cache_size_bytes: u64,
    /// Largest key.
    pub key_size_bytes_max: usize,
    /// Largest value.
    pub value_size_bytes_max: usize,
    /// Largest write batch (encoded).
    pub batch_size_bytes_max: usize,
    /// Create the database if the directory holds none.
    pub create_if_missing: bool,
    /// Prepare the next WAL segment on a background thread (off: prepare
    /// it on the log owner when needed, which keeps simulated runs
    /// deterministic).
    pub wal_prepare_background: bool,
}

impl Options {
    /// Refuses bounds the on-disk formats cannot hold: a WAL record's
    /// payload length and a segment's offsets are 32-bit fields, and a
    /// record longer than the reader accepts would be acknowledged and then
    /// refused by recovery.
    pub fn check(&self) -> crate::Result<()> {
        use crate::wal::format::RECORD_PAYLOAD_BYTES_MAX;
        if self.batch_size_bytes_max > RECORD_PAYLOAD_BYTES_MAX {
            return Err(crate::Error::InvalidArgument(format!(
                "batch_size_bytes_max {} exceeds {RECORD_PAYLOAD_BYTES_MAX}, the largest WAL record",
                self.batch_size_bytes_max
            )));
        }
        if self.wal_segment_size_bytes > u64::from(u32::MAX) {
            return Err(crate::Error::InvalidArgument(format!(
                "wal_segment_size_bytes {} exceeds {}, the largest offset a WAL record can name",
                self.wal_segment_size_bytes,
                u32::MAX
            )));
        }
        Ok(())
    }

    /// The idle WAL segment's size: `wal_idle_segment_size_bytes` rounded
    /// up to whole blocks, at most a full segment.
    pub(crate) fn idle_wal_segment_size(&self) -> u64 {
        let block = crate::io::BLOCK_SIZE as u64;
        let size = self.wal_idle_segment_size_bytes.max(1).div_ceil(block) * block;
        size.min(self.wal_segment_size_bytes)
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fs: None,
            durability: Durability::Sync,
            wal_segment_size_bytes: 64 << 20,
            wal_idle_segment_size_bytes: 1 << 20,
            wal_group_size_bytes_max: 4 << 20,
            memtable_size_bytes_max: 64 << 20,
            immutable_memtables_max: 2,
            compaction: CompactionOptions::default(),
            block_cache_size_bytes: 256 << 20,
            key_size_bytes_max: 64 << 10,
            value_size_bytes_max: 16 << 20,
            batch_size_bytes_max: 32 << 20,
            create_if_missing: true,
            wal_prepare_background: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_the_formats_cannot_hold_are_refused_by_name() {
        assert!(Options::default().check().is_ok());
        let big_batch = Options {
            batch_size_bytes_max: 1 << 30,
            ..Options::default()
        };
        let e = big_batch.check().unwrap_err().to_string();
        assert!(e.contains("batch_size_bytes_max 1073741824"), "{e}");
        let big_segment = Options {
            wal_segment_size_bytes: 8 << 30,
            ..Options::default()
        };
        let e = big_segment.check().unwrap_err().to_string();
        assert!(e.contains("wal_segment_size_bytes 8589934592"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = crate::Db::open(dir.path(), big_batch)
            .unwrap_err()
            .to_string();
        assert!(e.contains("batch_size_bytes_max"), "{e}");
    }
}
