//! Reading segments back at recovery.
//!
//! Records are checked one by one: whole header, known segment number,
//! bounded length, matching crc, decodable batch, increasing sequence. The
//! first record that fails (or the zero header that ends the data) is the
//! end of the segment's data, and then one question decides what it means:
//! does a valid record follow it that was written when the bad spot was
//! already durable (its durable offset lies beyond the bad spot)? A crash
//! can only damage bytes that were not yet synced, so such a record means
//! synced data is damaged: that is `Error::Corruption` naming the file and
//! offset, never skipped. Without one, the bad spot is the torn tail of
//! writes never synced (in the sync mode: never acknowledged); the caller
//! truncates it (last segment only).

use std::path::Path;

use super::format::{check_record, Header, HEADER_LEN};
use crate::batch::WriteBatch;
use crate::error::{Error, Result};
use crate::types::SeqNo;

/// How a segment's data ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentEnd {
    /// Clean: a zero header or the end of the file at `offset`.
    Clean {
        /// End of the valid data.
        offset: u64,
    },
    /// A record at `offset` failed its checks and nothing synced follows:
    /// the torn tail of the last write.
    Torn {
        /// Start of the torn record.
        offset: u64,
    },
}

impl SegmentEnd {
    /// The offset where valid data ends.
    pub fn offset(&self) -> u64 {
        match *self {
            SegmentEnd::Clean { offset } | SegmentEnd::Torn { offset } => offset,
        }
    }
}

/// Replays the records of one segment image, calling `apply` for each
/// batch in order. `last_seq` is the sequence already recovered; the next
/// record must start exactly at `last_seq + 1` (sequence numbers are dense),
/// so a missing segment or record is never skipped silently.
pub fn replay_segment(
    path: &Path,
    data: &[u8],
    segment: u32,
    mut last_seq: SeqNo,
    mut apply: impl FnMut(SeqNo, WriteBatch) -> Result<()>,
) -> Result<(SegmentEnd, SeqNo)> {
    let mut off = 0usize;
    loop {
        let rest = &data[off..];
        let bad = match Header::parse(rest) {
            None if rest.iter().all(|&b| b == 0) => {
                return Ok((SegmentEnd::Clean { offset: off as u64 }, last_seq))
            }
            None => "truncated record header".to_string(),
            Some(h) if h.is_zero() => {
                check_nothing_synced_after(path, data, segment, off)?;
                return Ok((SegmentEnd::Clean { offset: off as u64 }, last_seq));
            }
            Some(_) => match check_record(rest, segment) {
                None => "bad record (checksum, length or segment number)".to_string(),
                Some((h, payload)) => match WriteBatch::decode(payload) {
                    Err(e) => format!("undecodable batch: {e}"),
                    Ok((seq, _)) if seq != last_seq + 1 => {
                        format!(
                            "sequence {seq} does not continue {last_seq}{}",
                            if seq > last_seq + 1 {
                                " (writes are missing)"
                            } else {
                                ""
                            }
                        )
                    }
                    Ok((seq, batch)) => {
                        let count = batch.len() as u64;
                        apply(seq, batch)?;
                        last_seq = seq + count.max(1) - 1;
                        off += HEADER_LEN + h.len as usize;
                        continue;
                    }
                },
            },
        };
        if let Some(later) = later_group_after(data, segment, off) {
            return Err(Error::corruption(
                path,
                off as u64,
                format!("{bad}, followed by synced records at offset {later}"),
            ));
        }
        return Ok((SegmentEnd::Torn { offset: off as u64 }, last_seq));
    }
}

fn check_nothing_synced_after(path: &Path, data: &[u8], segment: u32, off: usize) -> Result<()> {
    match later_group_after(data, segment, off) {
        Some(later) => Err(Error::corruption(
            path,
            off as u64,
            format!("record zeroed, followed by synced records at offset {later}"),
        )),
        None => Ok(()),
    }
}

/// The offset of a valid record after `bad` that belongs to a write group
/// starting after `bad`, if there is one.
fn later_group_after(data: &[u8], segment: u32, bad: usize) -> Option<usize> {
    let seg = segment.to_le_bytes();
    let mut p = bad + 1;
    while p + HEADER_LEN <= data.len() {
        if data[p + 8..p + 12] == seg {
            if let Some((h, _)) = check_record(&data[p..], segment) {
                if h.group_offset as usize > bad {
                    return Some(p);
                }
            }
        }
        p += 1;
    }
    None
}

/// Whether any valid record of `segment` starts at offset 0 of `data`
/// (used to tell a used segment from a prepared, never-written one).
pub fn has_first_record(data: &[u8], segment: u32) -> bool {
    check_record(data, segment).is_some()
}
