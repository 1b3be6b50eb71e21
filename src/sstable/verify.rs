//! The full check of one table: every block read from the file (not the
//! cache), crc-checked, decoded and validated; data blocks in order and
//! matching their index entries; every user key admitted by the filter;
//! the footer's entry count and sequence range equal to what the blocks
//! hold. Used by `cityhall check` and by tests.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::error::Result;
use crate::iter::EntryIter;
use crate::sstable::format::{BLOCK_TRAILER_LEN, FOOTER_LEN};
use crate::sstable::reader::TableInner;
use crate::types::{compare_internal_keys, split_internal_key, SeqNo};

/// What a successful check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Bytes of the file.
    pub file_size: u64,
    /// Entries counted in the data blocks.
    pub entries: u64,
    /// Data blocks.
    pub data_blocks: u64,
    /// Bytes of data blocks on disk, trailers included.
    pub data_bytes: u64,
    /// Bytes of the filter block on disk, trailer included.
    pub filter_bytes: u64,
    /// Bytes of the index block on disk, trailer included.
    pub index_bytes: u64,
    /// Smallest sequence number found (0 if empty).
    pub smallest_seq: SeqNo,
    /// Largest sequence number found (0 if empty).
    pub largest_seq: SeqNo,
}

/// Checks every block of `t`; the first problem is returned as
/// `Error::Corruption` naming the file and the offset of the bad part.
pub(crate) fn verify(t: &TableInner) -> Result<VerifyReport> {
    let trailer = BLOCK_TRAILER_LEN as u64;
    let mut report = VerifyReport {
        file_size: t.map.len() as u64,
        filter_bytes: t.footer.filter.size + trailer,
        index_bytes: t.footer.index.size + trailer,
        smallest_seq: SeqNo::MAX,
        ..VerifyReport::default()
    };
    let mut last_key: Vec<u8> = Vec::new();
    let mut last_user: Vec<u8> = Vec::new();
    for (index_key, handle) in t.index.entries() {
        let at = handle.offset;
        let block = Arc::new(t.load_block(handle)?);
        let mut it = block.iter();
        it.seek_to_first()?;
        if !it.valid() {
            return Err(t.corrupt(at, "empty data block"));
        }
        if report.entries > 0 && compare_internal_keys(&last_key, it.key()) != Ordering::Less {
            return Err(t.corrupt(at, "data block does not start after the previous one"));
        }
        while it.valid() {
            let Some((user, seq, _kind)) = split_internal_key(it.key()) else {
                return Err(t.corrupt(at, "malformed internal key"));
            };
            if (report.entries == 0 || user != last_user.as_slice()) && !t.filter.may_contain(user)
            {
                return Err(t.corrupt(
                    t.footer.filter.offset,
                    format!(
                        "filter rejects key \"{}\" stored at {at}",
                        user.escape_ascii()
                    ),
                ));
            }
            last_user.clear();
            last_user.extend_from_slice(user);
            report.smallest_seq = report.smallest_seq.min(seq);
            report.largest_seq = report.largest_seq.max(seq);
            report.entries += 1;
            last_key.clear();
            last_key.extend_from_slice(it.key());
            it.next()?;
        }
        if last_key.as_slice() != index_key {
            return Err(t.corrupt(
                at,
                "last key of the data block differs from its index entry",
            ));
        }
        report.data_blocks += 1;
        report.data_bytes += handle.size + trailer;
    }
    if report.entries == 0 {
        report.smallest_seq = 0;
    }
    let footer_at = report.file_size.saturating_sub(FOOTER_LEN as u64);
    let f = &t.footer;
    if report.entries != f.entries {
        return Err(t.corrupt(
            footer_at,
            format!(
                "footer counts {} entries, the blocks hold {}",
                f.entries, report.entries
            ),
        ));
    }
    if (report.smallest_seq, report.largest_seq) != (f.smallest_seq, f.largest_seq) {
        return Err(t.corrupt(
            footer_at,
            format!(
                "footer sequence range {}..={} differs from the blocks' {}..={}",
                f.smallest_seq, f.largest_seq, report.smallest_seq, report.largest_seq
            ),
        ));
    }
    Ok(report)
}
