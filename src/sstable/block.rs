//! Blocks: sorted (internal key, value) entries with prefix-compressed keys
//! and restart points. Data blocks and the index block share this format.
//!
//! ```text
//! +---------+---------+-----+-------------+-----+-------------+---------------+
//! | entry 0 | entry 1 | ... | restart[0]  | ... | restart[n-1]| n (u32 LE)    |
//! +---------+---------+-----+-------------+-----+-------------+---------------+
//!                             u32 LE offsets of restart entries
//!
//! entry:
//! +-------------------+---------------------+-------------------+-----------+-------+
//! | shared varint     | unshared varint     | value len varint  | key delta | value |
//! +-------------------+---------------------+-------------------+-----------+-------+
//! key = previous key[..shared] ++ key delta (unshared bytes)
//! ```
//!
//! Every `restart_interval`-th entry (16 by default) is a restart point: it
//! stores its whole key (`shared` = 0) and its offset goes into the restart
//! array, so a seek binary-searches the restarts and then scans at most one
//! interval. An empty block is just `n` = 0.
//!
//! Invariants of a decoded [`Block`], checked once by [`Block::decode`]
//! before anything reads it: the restart array fits; restart offsets start
//! at 0, strictly increase and each lands on an entry boundary; every entry
//! lies inside the entry area; every key is a well-formed internal key; and
//! keys strictly increase in internal-key order. The iterator still decodes
//! with checked arithmetic, so even a bug cannot make it index out of
//! bounds. Blocks are immutable and shared (`Arc<Block>`) between threads.

use std::cmp::Ordering;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::iter::EntryIter;
use crate::types::{compare_internal_keys, split_internal_key};
use crate::varint;

/// Default number of entries between restart points.
pub const RESTART_INTERVAL_DEFAULT: usize = 16;

/// Largest block payload (uncompressed, with its restart array) accepted by
/// the builder and by the reader.
pub const BLOCK_PAYLOAD_BYTES_MAX: usize = 128 << 20;

/// A decoding failure: what check failed.
pub(crate) type Malformed = &'static str;

/// Builds one block in memory. Keys must be added in strictly increasing
/// internal-key order (the table builder checks it).
#[derive(Debug)]
pub struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    restart_interval: usize,
    since_restart: usize,
    entries: usize,
    last_key: Vec<u8>,
    finished: bool,
}

impl BlockBuilder {
    /// An empty builder with a restart point every `restart_interval`
    /// entries (at least 1).
    pub fn new(restart_interval: usize) -> Self {
        BlockBuilder {
            buf: Vec::new(),
            restarts: Vec::new(),
            restart_interval: restart_interval.max(1),
            since_restart: 0,
            entries: 0,
            last_key: Vec::new(),
            finished: false,
        }
    }

    /// Appends an entry. Fails with `LimitExceeded` if the block would grow
    /// past [`BLOCK_PAYLOAD_BYTES_MAX`].
    pub fn add(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        debug_assert!(!self.finished, "add after finish without reset");
        debug_assert!(
            self.entries == 0 || compare_internal_keys(&self.last_key, key) == Ordering::Less,
            "block keys out of order"
        );
        let worst = self.size_estimate() + key.len() + value.len() + 3 * 10 + 4;
        if worst > BLOCK_PAYLOAD_BYTES_MAX {
            return Err(Error::LimitExceeded {
                what: format!(
                    "block of {worst} bytes exceeds {BLOCK_PAYLOAD_BYTES_MAX} bytes \
                     (key {} B, value {} B)",
                    key.len(),
                    value.len()
                ),
            });
        }
        let shared = if self.since_restart == self.restart_interval || self.entries == 0 {
            // The bound above keeps the offset far below u32::MAX.
            self.restarts.push(self.buf.len() as u32);
            self.since_restart = 0;
            0
        } else {
            common_prefix(&self.last_key, key)
        };
        varint::put(&mut self.buf, shared as u64);
        varint::put(&mut self.buf, (key.len() - shared) as u64);
        varint::put(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key.truncate(shared);
        self.last_key.extend_from_slice(&key[shared..]);
        self.since_restart += 1;
        self.entries += 1;
        Ok(())
    }

    /// Bytes the finished block will take (before compression).
    pub fn size_estimate(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 4
    }

    /// Whether no entry was added since the last reset.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Entries added since the last reset.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// The last key added (empty if none).
    pub fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Appends the restart array and returns the whole block. Call
    /// [`BlockBuilder::reset`] before adding again.
    pub fn finish(&mut self) -> &[u8] {
        if !self.finished {
            for r in &self.restarts {
                self.buf.extend_from_slice(&r.to_le_bytes());
            }
            self.buf
                .extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
            self.finished = true;
        }
        &self.buf
    }

    /// Empties the builder, keeping its allocations.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.restarts.clear();
        self.since_restart = 0;
        self.entries = 0;
        self.last_key.clear();
        self.finished = false;
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A decoded, validated block, immutable and shared between iterators.
#[derive(Debug)]
pub struct Block {
    data: Vec<u8>,
    /// Offset of the restart array (= end of the entries).
    restarts_at: usize,
    restart_count: usize,
    entries: usize,
    file: Arc<Path>,
    offset: u64,
}

/// One entry's header and where its parts lie in the block.
struct RawEntry {
    shared: usize,
    delta: (usize, usize),
    value: (usize, usize),
    end: usize,
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    let b: [u8; 4] = data.get(at..end)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// Decodes the entry header at `pos`; everything must end by `limit`.
fn raw_entry(data: &[u8], pos: usize, limit: usize) -> std::result::Result<RawEntry, Malformed> {
    let mut rest = data
        .get(pos..limit)
        .ok_or("entry offset outside the block")?;
    let before = rest.len();
    let shared = varint::get(&mut rest).ok_or("truncated entry header")?;
    let unshared = varint::get(&mut rest).ok_or("truncated entry header")?;
    let value_len = varint::get(&mut rest).ok_or("truncated entry header")?;
    let header = before - rest.len();
    let unshared = usize::try_from(unshared).map_err(|_| "key length overflows")?;
    let value_len = usize::try_from(value_len).map_err(|_| "value length overflows")?;
    if unshared > rest.len() || value_len > rest.len() - unshared {
        return Err("entry runs past the end of the block");
    }
    let delta_start = pos + header;
    let value_start = delta_start + unshared;
    let end = value_start + value_len;
    Ok(RawEntry {
        shared: usize::try_from(shared).map_err(|_| "shared length overflows")?,
        delta: (delta_start, value_start),
        value: (value_start, end),
        end,
    })
}

impl Block {
    /// Decodes and validates a block payload (already decompressed and
    /// checksummed). `file` and `offset` name where it came from, for
    /// errors.
    pub fn decode(data: Vec<u8>, file: Arc<Path>, offset: u64) -> Result<Block> {
        match Self::decode_inner(data, file.clone(), offset) {
            Ok(b) => Ok(b),
            Err(what) => Err(Error::corruption(&file, offset, what)),
        }
    }

    fn decode_inner(
        data: Vec<u8>,
        file: Arc<Path>,
        offset: u64,
    ) -> std::result::Result<Block, Malformed> {
        let len = data.len();
        let count_at = len
            .checked_sub(4)
            .ok_or("block shorter than its restart count")?;
        let count = read_u32(&data, count_at).ok_or("block shorter than its restart count")?;
        let count = count as usize;
        let array = count
            .checked_mul(4)
            .filter(|&a| a <= count_at)
            .ok_or("restart count does not fit in the block")?;
        let restarts_at = count_at - array;
        if (count == 0) != (restarts_at == 0) {
            return Err("restart count does not match the entries");
        }
        let mut prev = 0usize;
        for i in 0..count {
            let r = read_u32(&data, restarts_at + 4 * i).ok_or("restart array truncated")? as usize;
            if (i == 0 && r != 0) || (i > 0 && r <= prev) {
                return Err("restart offsets are not increasing from 0");
            }
            if r >= restarts_at {
                return Err("restart offset past the entries");
            }
            prev = r;
        }
        let mut block = Block {
            data,
            restarts_at,
            restart_count: count,
            entries: 0,
            file,
            offset,
        };
        block.entries = block.validate_entries()?;
        Ok(block)
    }

    /// Walks every entry once; returns the entry count.
    fn validate_entries(&self) -> std::result::Result<usize, Malformed> {
        let (mut prev, mut key) = (Vec::new(), Vec::new());
        let (mut pos, mut next_restart, mut entries) = (0usize, 0usize, 0usize);
        while pos < self.restarts_at {
            let at_restart = self.restart(next_restart) == Some(pos);
            if at_restart {
                next_restart += 1;
            }
            let e = raw_entry(&self.data, pos, self.restarts_at)?;
            if at_restart && e.shared != 0 {
                return Err("restart entry shares a key prefix");
            }
            if e.shared > prev.len() {
                return Err("shared key prefix longer than the previous key");
            }
            key.clear();
            key.extend_from_slice(prev.get(..e.shared).ok_or("shared prefix out of range")?);
            key.extend_from_slice(
                self.data
                    .get(e.delta.0..e.delta.1)
                    .ok_or("key out of range")?,
            );
            if split_internal_key(&key).is_none() {
                return Err("malformed internal key");
            }
            if entries > 0 && compare_internal_keys(&prev, &key) != Ordering::Less {
                return Err("keys are not in increasing order");
            }
            std::mem::swap(&mut prev, &mut key);
            entries += 1;
            pos = e.end;
        }
        if next_restart != self.restart_count {
            return Err("restart offset is not at an entry boundary");
        }
        Ok(entries)
    }

    fn restart(&self, i: usize) -> Option<usize> {
        if i >= self.restart_count {
            return None;
        }
        read_u32(&self.data, self.restarts_at + 4 * i).map(|r| r as usize)
    }

    /// Entries in the block.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Bytes of the decoded payload (what the block cache charges).
    pub fn size_bytes(&self) -> usize {
        self.data.len()
    }

    /// Offset of the block in its file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// A cursor over the block, not yet positioned.
    pub fn iter(self: &Arc<Self>) -> BlockIter {
        BlockIter {
            block: Arc::clone(self),
            key: Vec::new(),
            value: (0, 0),
            next: self.restarts_at,
            valid: false,
        }
    }
}

/// A cursor over one block; implements [`EntryIter`].
#[derive(Debug)]
pub struct BlockIter {
    block: Arc<Block>,
    key: Vec<u8>,
    value: (usize, usize),
    /// Offset of the entry after the current one.
    next: usize,
    valid: bool,
}

impl BlockIter {
    fn fail(&mut self, what: Malformed) -> Error {
        self.valid = false;
        Error::corruption(&self.block.file, self.block.offset, what)
    }

    fn seek_to_restart(&mut self, i: usize) -> std::result::Result<(), Malformed> {
        self.key.clear();
        self.valid = false;
        self.next = self.block.restart(i).ok_or("restart index out of range")?;
        Ok(())
    }

    /// Decodes the entry at `self.next`, or becomes invalid at the end.
    fn parse_next(&mut self) -> std::result::Result<(), Malformed> {
        let b = &self.block;
        if self.next >= b.restarts_at {
            self.valid = false;
            self.next = b.restarts_at;
            return Ok(());
        }
        let e = raw_entry(&b.data, self.next, b.restarts_at)?;
        if e.shared > self.key.len() {
            return Err("shared key prefix longer than the previous key");
        }
        self.key.truncate(e.shared);
        self.key
            .extend_from_slice(b.data.get(e.delta.0..e.delta.1).ok_or("key out of range")?);
        self.value = e.value;
        self.next = e.end;
        self.valid = true;
        Ok(())
    }

    /// The whole key stored at restart `i`.
    fn restart_key(&self, i: usize) -> std::result::Result<&[u8], Malformed> {
        let b = &self.block;
        let pos = b.restart(i).ok_or("restart index out of range")?;
        let e = raw_entry(&b.data, pos, b.restarts_at)?;
        if e.shared != 0 {
            return Err("restart entry shares a key prefix");
        }
        b.data.get(e.delta.0..e.delta.1).ok_or("key out of range")
    }

    fn seek_inner(&mut self, target: &[u8]) -> std::result::Result<(), Malformed> {
        if self.block.restart_count == 0 {
            self.valid = false;
            return Ok(());
        }
        // The last restart whose key is < target (or restart 0).
        let (mut left, mut right) = (0usize, self.block.restart_count - 1);
        while left < right {
            let mid = left + (right - left).div_ceil(2);
            if compare_internal_keys(self.restart_key(mid)?, target) == Ordering::Less {
                left = mid;
            } else {
                right = mid - 1;
            }
        }
        self.seek_to_restart(left)?;
        loop {
            self.parse_next()?;
            if !self.valid || compare_internal_keys(&self.key, target) != Ordering::Less {
                return Ok(());
            }
        }
    }
}

impl EntryIter for BlockIter {
    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.seek_inner(target).map_err(|w| self.fail(w))
    }

    fn seek_to_first(&mut self) -> Result<()> {
        if self.block.restart_count == 0 {
            self.valid = false;
            return Ok(());
        }
        self.seek_to_restart(0)
            .and_then(|()| self.parse_next())
            .map_err(|w| self.fail(w))
    }

    fn valid(&self) -> bool {
        self.valid
    }

    fn key(&self) -> &[u8] {
        &self.key
    }

    fn value(&self) -> &[u8] {
        self.block
            .data
            .get(self.value.0..self.value.1)
            .unwrap_or_default()
    }

    fn next(&mut self) -> Result<()> {
        if !self.valid {
            return Ok(());
        }
        self.parse_next().map_err(|w| self.fail(w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{internal_key, ValueKind};

    fn origin() -> Arc<Path> {
        Arc::from(Path::new("test.sst"))
    }

    fn build(n: usize, interval: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
        let mut b = BlockBuilder::new(interval);
        let mut keys = Vec::new();
        for i in 0..n {
            let k = internal_key(format!("key{i:05}").as_bytes(), 7, ValueKind::Put);
            b.add(&k, format!("v{i}").as_bytes()).unwrap();
            keys.push(k);
        }
        (keys, b.finish().to_vec())
    }

    #[test]
    fn round_trip_and_seek() {
        for interval in [1, 2, 16] {
            let (keys, data) = build(100, interval);
            let block = Arc::new(Block::decode(data, origin(), 0).unwrap());
            assert_eq!(block.entries(), 100);
            let mut it = block.iter();
            it.seek_to_first().unwrap();
            for (i, k) in keys.iter().enumerate() {
                assert!(it.valid());
                assert_eq!(it.key(), &k[..]);
                assert_eq!(it.value(), format!("v{i}").as_bytes());
                it.next().unwrap();
            }
            assert!(!it.valid());
            for (i, k) in keys.iter().enumerate() {
                it.seek(k).unwrap();
                assert_eq!(it.key(), &k[..], "interval {interval} key {i}");
                // A newer version of the same user key sorts before it.
                let newer = internal_key(&k[..k.len() - 8], 9, ValueKind::Put);
                it.seek(&newer).unwrap();
                assert_eq!(it.key(), &k[..]);
            }
            it.seek(&internal_key(b"zzz", 1, ValueKind::Put)).unwrap();
            assert!(!it.valid());
            it.seek(b"").unwrap();
            assert_eq!(it.key(), &keys[0][..]);
        }
    }

    #[test]
    fn empty_block() {
        let mut b = BlockBuilder::new(16);
        let data = b.finish().to_vec();
        assert_eq!(data, vec![0, 0, 0, 0]);
        let block = Arc::new(Block::decode(data, origin(), 0).unwrap());
        let mut it = block.iter();
        it.seek_to_first().unwrap();
        assert!(!it.valid());
        it.seek(b"x").unwrap();
        assert!(!it.valid());
    }

    #[test]
    fn malformed_blocks_are_errors() {
        let (_, good) = build(40, 4);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "shorter"),
            (vec![1, 0, 0], "shorter"),
            (vec![0xff, 0xff, 0xff, 0x0f], "does not fit"),
            (
                {
                    let mut d = good.clone();
                    let at = d.len() - 8;
                    d[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
                    d
                },
                "restart offsets are not increasing",
            ),
            (
                {
                    let mut d = good.clone();
                    d[0] = 3; // first entry claims a shared prefix
                    d
                },
                "shares a key prefix",
            ),
        ];
        for (data, want) in cases {
            let err = Block::decode(data, origin(), 42).unwrap_err().to_string();
            assert!(err.contains(want), "{err} should mention {want}");
            assert!(err.contains("test.sst") && err.contains("42"), "{err}");
        }
    }

    #[test]
    fn every_single_byte_corruption_is_safe() {
        let (_, good) = build(30, 4);
        for at in 0..good.len() {
            for bit in 0..8 {
                let mut d = good.clone();
                d[at] ^= 1 << bit;
                if let Ok(b) = Block::decode(d, origin(), 0) {
                    let b = Arc::new(b);
                    let mut it = b.iter();
                    let mut n = 0;
                    let mut r = it.seek_to_first();
                    while r.is_ok() && it.valid() && n < 1000 {
                        n += 1;
                        r = it.next();
                    }
                    let _ = it.seek(&internal_key(b"key00010", 1, ValueKind::Put));
                }
            }
        }
    }
}
