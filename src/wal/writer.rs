//! Appending write groups to the active segment.
//!
//! Owned by the single log-owner thread; not shared. Each group is one
//! positional write from an aligned buffer that starts at the block holding
//! the end of the previous group: the partly filled block is written again
//! with identical leading bytes, followed by the new records and zero
//! padding to the next block. A torn rewrite can therefore only damage
//! records of the group in flight, which no one has been told are durable.

use std::path::Path;

use super::format::{encode_record, HEADER_LEN};
use super::segment::Segment;
use crate::error::{Error, Result};
use crate::io::{aligned::round_down, AlignedBuf, WriteTicket, BLOCK_SIZE};

/// A group write in flight.
#[derive(Debug)]
#[must_use = "a started group write must be finished"]
pub struct GroupWrite {
    ticket: WriteTicket,
    sync: bool,
}

/// Writes records into a sequence of segments.
#[derive(Debug)]
pub struct LogWriter {
    seg: Segment,
    /// Logical end of data in the segment.
    offset: u64,
    /// Bytes from `round_down(offset)` to `offset`, then the group's records.
    buf: AlignedBuf,
    /// Where the group being built starts.
    group_start: u64,
    /// Offset up to which the segment is known durable.
    synced_offset: u64,
    scratch: Vec<u8>,
    /// Whether bytes were written since the last sync.
    unsynced: bool,
}

impl LogWriter {
    /// A writer at the start of a fresh segment.
    pub fn new(seg: Segment) -> Self {
        LogWriter {
            seg,
            offset: 0,
            buf: AlignedBuf::with_capacity(1 << 20),
            group_start: 0,
            synced_offset: 0,
            scratch: Vec::new(),
            unsynced: false,
        }
    }

    /// The active segment's number.
    pub fn segment_number(&self) -> u64 {
        self.seg.number
    }

    /// Whether a group of `bytes` (payload bytes plus one header per
    /// record) still fits in the active segment.
    pub fn fits(&self, bytes: u64) -> bool {
        self.offset + bytes <= self.seg.size
    }

    /// Bytes of a segment.
    pub fn segment_size(&self) -> u64 {
        self.seg.size
    }

    /// Switches to `next`. The caller syncs the old segment first.
    pub fn switch_to(&mut self, next: Segment) {
        self.seg = next;
        self.offset = 0;
        self.group_start = 0;
        self.synced_offset = 0;
        self.buf.clear();
        self.unsynced = false;
    }

    /// Appends one record (a batch payload) to the group being built.
    pub fn add_record(&mut self, payload: &[u8]) -> Result<()> {
        if self.offset + (HEADER_LEN + payload.len()) as u64 > self.seg.size {
            return Err(Error::LimitExceeded {
                what: format!(
                    "WAL record of {} bytes does not fit in a segment of {} bytes",
                    payload.len(),
                    self.seg.size
                ),
            });
        }
        self.scratch.clear();
        encode_record(
            &mut self.scratch,
            self.seg.number as u32,
            self.synced_offset as u32,
            payload,
        );
        self.buf.extend_from_slice(&self.scratch);
        self.offset += self.scratch.len() as u64;
        Ok(())
    }

    /// Writes the group (and syncs it if `sync`), then starts the next
    /// group after it. On error the writer must not be used again.
    pub fn commit(&mut self, sync: bool) -> Result<()> {
        let pending = self.commit_start(sync);
        self.commit_finish(pending)
    }

    /// Starts writing the group; the caller may work (insert into the
    /// memtable) while the device writes, then calls `commit_finish`.
    pub fn commit_start(&mut self, sync: bool) -> GroupWrite {
        let block_start = round_down(self.group_start);
        debug_assert_eq!(block_start + self.buf.len() as u64, self.offset);
        let data = self.buf.as_padded();
        // SAFETY: `buf` is not touched until commit_finish, which the log
        // owner calls next on this thread (GroupWrite is consumed there).
        let ticket = unsafe { self.seg.file.start_write(data, block_start, sync) };
        GroupWrite { ticket, sync }
    }

    /// Waits for the group's write, then prepares for the next group.
    pub fn commit_finish(&mut self, pending: GroupWrite) -> Result<()> {
        self.seg.file.finish_write(pending.ticket)?;
        self.unsynced = !pending.sync;
        if pending.sync {
            self.synced_offset = self.offset;
        }
        let keep = (self.offset % BLOCK_SIZE as u64) as usize;
        let len = self.buf.len();
        self.buf.retain_from(len - keep);
        self.group_start = self.offset;
        Ok(())
    }

    /// Makes everything written durable (relaxed mode, roll-over, close).
    pub fn sync(&mut self) -> Result<()> {
        if self.unsynced {
            self.seg.file.sync_data()?;
            self.unsynced = false;
            self.synced_offset = self.offset;
        }
        Ok(())
    }

    /// Whether bytes await a sync.
    pub fn has_unsynced(&self) -> bool {
        self.unsynced
    }

    /// The active segment file's path.
    pub fn path(&self) -> &Path {
        self.seg.file.path()
    }
}
