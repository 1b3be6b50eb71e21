//! [`Table`]: an open, immutable table file, read through a memory map.
//!
//! `Table::open` maps the file, checks the footer (magic, crc, version),
//! checks that the filter, index and data blocks tile the file exactly
//! (data blocks from offset 0, back to back, then the filter, the index
//! and the footer), and loads the filter and the index into memory. Data
//! blocks are read on demand through the shared [`BlockCache`]; each is
//! crc-checked, decompressed and validated before first use.
//!
//! Every offset and size read from the file is checked before use, so a
//! damaged or truncated file gives `Error::Corruption` naming the file and
//! the offset of the damaged part, never a panic or a wrong answer. A
//! `Table` is cheap to clone and safe to share between threads.

use std::cmp::Ordering;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::io::{FileHandle, Mapping};
use crate::iter::EntryIter;
use crate::sstable::block::{Block, BLOCK_PAYLOAD_BYTES_MAX};
use crate::sstable::cache::BlockCache;
use crate::sstable::filter::Filter;
use crate::sstable::format::{unframe, BlockHandle, Footer, FOOTER_LEN};
use crate::sstable::table_iter::TableIter;
use crate::sstable::verify::{self, VerifyReport};
use crate::types::{
    compare_internal_keys, split_internal_key, user_key, SeqNo, ValueKind, SEQ_MAX,
};

/// The decoded index: for each data block, its last internal key and its
/// handle. The keys lie back to back in one buffer, and the binary search
/// of a point read runs first over `words`: for each block, the eight
/// bytes of its last user key that follow the prefix every key of the
/// table shares (big-endian, zero-padded). That array is an eighth of the
/// keys' size and dense, so the search's cache misses, which were a fifth
/// of a cached point read, mostly go; whole keys are compared only among
/// the blocks whose word equals the target's, usually one.
#[derive(Debug, Default)]
pub(crate) struct Index {
    keys: Vec<u8>,
    /// `ends[i]` is where block `i`'s last key ends in `keys`.
    ends: Vec<u32>,
    handles: Vec<BlockHandle>,
    /// Bytes at the start of every last user key that are the same for
    /// all blocks.
    common: usize,
    words: Vec<u64>,
}

/// Eight bytes of `user_key` from `at` on, big-endian, zero-padded: a
/// number that orders as the keys do (keys that agree on these bytes, or
/// differ only in length, get the same word and are told apart by a full
/// comparison).
fn key_word(user_key: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(rest) = user_key.get(at..) {
        let n = rest.len().min(8);
        w[..n].copy_from_slice(&rest[..n]);
    }
    u64::from_be_bytes(w)
}

impl Index {
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// The last internal key of data block `i` (`i < len()`).
    pub fn last_key(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.keys[start..self.ends[i] as usize]
    }

    pub fn handle(&self, i: usize) -> Option<BlockHandle> {
        self.handles.get(i).copied()
    }

    /// `(last key, handle)` of every data block, in order.
    pub fn entries(&self) -> impl Iterator<Item = (&[u8], BlockHandle)> + '_ {
        (0..self.len()).map(|i| (self.last_key(i), self.handles[i]))
    }

    /// The first data block whose last key is >= `target` (`len()` if none).
    pub fn find(&self, target: &[u8]) -> usize {
        let n = self.len();
        if n == 0 || self.words.len() != n {
            return self.find_in(target, 0, n);
        }
        // The prefix every block's last user key starts with decides alone
        // when the target's user key does not start with it too.
        let first = user_key(self.last_key(0));
        let common = &first[..self.common.min(first.len())];
        let tu = user_key(target);
        let head = &tu[..common.len().min(tu.len())];
        // (A target shorter than the shared prefix compares Less or
        // Greater here, never Equal.)
        match head.cmp(common) {
            Ordering::Less => return 0,
            Ordering::Greater => return n,
            Ordering::Equal => {}
        }
        let w = key_word(tu, common.len());
        let lo = self.words.partition_point(|&x| x < w);
        let hi = lo + self.words[lo..].partition_point(|&x| x == w);
        self.find_in(target, lo, hi)
    }

    /// The first block in `[lo, hi)` whose last key is >= `target` (`hi`
    /// if none), by comparing whole keys.
    fn find_in(&self, target: &[u8], lo: usize, hi: usize) -> usize {
        let (mut lo, mut hi) = (lo, hi);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if compare_internal_keys(self.last_key(mid), target) == Ordering::Less {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    fn push(&mut self, last_key: &[u8], handle: BlockHandle) -> Result<(), String> {
        self.keys.extend_from_slice(last_key);
        let end = u32::try_from(self.keys.len()).map_err(|_| "index keys exceed 4 GiB")?;
        self.ends.push(end);
        self.handles.push(handle);
        Ok(())
    }

    /// Builds the search words once every block is pushed. The keys are
    /// in order, so the prefix all of them share is the one the first and
    /// the last share.
    fn finish(&mut self) {
        let n = self.len();
        if n == 0 {
            return;
        }
        let (first, last) = (user_key(self.last_key(0)), user_key(self.last_key(n - 1)));
        self.common = first.iter().zip(last).take_while(|(a, b)| a == b).count();
        self.words = (0..n)
            .map(|i| key_word(user_key(self.last_key(i)), self.common))
            .collect();
    }
}

/// The state shared by a table's clones and iterators.
pub(crate) struct TableInner {
    pub path: Arc<Path>,
    pub id: u64,
    pub map: Mapping,
    pub cache: Arc<BlockCache>,
    pub footer: Footer,
    pub index: Index,
    pub filter: Filter,
}

impl std::fmt::Debug for TableInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("path", &self.path)
            .field("id", &self.id)
            .field("file_size", &self.map.len())
            .field("footer", &self.footer)
            .field("data_blocks", &self.index.len())
            .finish()
    }
}

/// An open table file.
#[derive(Clone, Debug)]
pub struct Table {
    inner: Arc<TableInner>,
}

impl TableInner {
    pub fn corrupt(&self, offset: u64, what: impl Into<String>) -> Error {
        Error::corruption(&self.path, offset, what)
    }

    /// Reads, checks and decodes the block at `handle`, bypassing the cache.
    pub fn load_block(&self, handle: BlockHandle) -> Result<Block> {
        let raw = framed(&self.map, handle)
            .and_then(unframe)
            .map_err(|w| self.corrupt(handle.offset, w))?;
        Block::decode(raw, Arc::clone(&self.path), handle.offset)
    }

    /// Data block `i`, through the cache.
    pub fn read_block(&self, i: usize) -> Result<Arc<Block>> {
        let handle = self.index.handle(i).ok_or_else(|| {
            self.corrupt(self.footer.index.offset, "data block index out of range")
        })?;
        let offset = handle.offset;
        if let Some(b) = self.cache.get(self.id, offset) {
            return Ok(b);
        }
        let block = Arc::new(self.load_block(handle)?);
        self.cache.insert(self.id, offset, Arc::clone(&block));
        Ok(block)
    }

    /// The first data block whose last key is >= `target`.
    pub fn find_block(&self, target: &[u8]) -> usize {
        self.index.find(target)
    }
}

/// The framed bytes (payload and trailer) of a block.
fn framed(map: &[u8], h: BlockHandle) -> std::result::Result<&[u8], &'static str> {
    let start = usize::try_from(h.offset).map_err(|_| "block offset out of range")?;
    let end = h
        .end()
        .and_then(|e| usize::try_from(e).ok())
        .ok_or("block size out of range")?;
    map.get(start..end)
        .ok_or("block extends past the end of the file")
}

impl Table {
    /// Opens a table written by [`crate::sstable::TableBuilder`]. `table_id`
    /// must be unique among the tables sharing `cache` (the file number).
    pub fn open(file: Arc<dyn FileHandle>, table_id: u64, cache: Arc<BlockCache>) -> Result<Table> {
        let map = file.map()?;
        let path: Arc<Path> = Arc::from(file.path());
        let corrupt = |offset: u64, what: String| Error::corruption(&path, offset, what);
        let len = map.len();
        let footer_at = len.checked_sub(FOOTER_LEN).ok_or_else(|| {
            corrupt(
                0,
                format!("file of {len} bytes is shorter than a table footer"),
            )
        })?;
        let footer_bytes: &[u8; FOOTER_LEN] = map
            .get(footer_at..)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| corrupt(footer_at as u64, "footer out of range".into()))?;
        let footer =
            Footer::decode(footer_bytes).map_err(|w| corrupt(footer_at as u64, w.into()))?;
        if footer.filter.end() != Some(footer.index.offset)
            || footer.index.end() != Some(footer_at as u64)
        {
            return Err(corrupt(
                footer_at as u64,
                format!(
                    "filter {:?} and index {:?} do not tile a file of {len} bytes",
                    footer.filter, footer.index
                ),
            ));
        }
        let filter = framed(&map, footer.filter)
            .and_then(unframe)
            .and_then(|raw| Filter::decode(&raw))
            .map_err(|w| corrupt(footer.filter.offset, w.into()))?;
        let index_raw = framed(&map, footer.index)
            .and_then(unframe)
            .map_err(|w| corrupt(footer.index.offset, w.into()))?;
        let index_block = Arc::new(Block::decode(
            index_raw,
            Arc::clone(&path),
            footer.index.offset,
        )?);
        let index =
            decode_index(&index_block, &footer).map_err(|w| corrupt(footer.index.offset, w))?;
        Ok(Table {
            inner: Arc::new(TableInner {
                path,
                id: table_id,
                map,
                cache,
                footer,
                index,
                filter,
            }),
        })
    }

    /// Opens a table with a private cache and runs [`Table::verify`]: the
    /// offline check of one file.
    pub fn verify_file(file: Arc<dyn FileHandle>) -> Result<VerifyReport> {
        Table::open(file, 0, Arc::new(BlockCache::new(1 << 20)))?.verify()
    }

    /// The table id given at open.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The file's size in bytes.
    pub fn file_size(&self) -> u64 {
        self.inner.map.len() as u64
    }

    /// Entries in the table, as the footer records.
    pub fn entries(&self) -> u64 {
        self.inner.footer.entries
    }

    /// Smallest and largest sequence numbers, as the footer records.
    pub fn seq_range(&self) -> (SeqNo, SeqNo) {
        (
            self.inner.footer.smallest_seq,
            self.inner.footer.largest_seq,
        )
    }

    /// Whether the filter admits `user_key` (false: certainly absent).
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.inner.filter.may_contain(user_key)
    }

    /// The newest entry for `user_key` with sequence <= `snapshot_seq`:
    /// `Some((Put, value))`, `Some((Delete, empty))` for a tombstone, or
    /// `None` if the table has no such entry. Touches no data block when
    /// the filter rules the key out.
    pub fn get(
        &self,
        user_key: &[u8],
        snapshot_seq: SeqNo,
    ) -> Result<Option<(ValueKind, Vec<u8>)>> {
        let t = &self.inner;
        if !t.filter.may_contain(user_key) {
            return Ok(None);
        }
        let mut target = Vec::with_capacity(user_key.len() + 8);
        target.extend_from_slice(user_key);
        // Kind byte 0xff sorts before every real kind of this sequence.
        target.extend_from_slice(&((snapshot_seq.min(SEQ_MAX) << 8) | 0xff).to_be_bytes());
        let i = t.find_block(&target);
        if i >= t.index.len() {
            return Ok(None);
        }
        let block = t.read_block(i)?;
        let mut it = block.iter();
        it.seek(&target)?;
        if !it.valid() {
            return Err(t.corrupt(block.offset(), "data block ends before its index key"));
        }
        let Some((found, _seq, kind)) = split_internal_key(it.key()) else {
            return Err(t.corrupt(block.offset(), "malformed internal key"));
        };
        if found != user_key {
            return Ok(None);
        }
        Ok(Some((kind, it.value().to_vec())))
    }

    /// A cursor over every entry, in internal-key order, not yet
    /// positioned.
    pub fn iter(&self) -> TableIter {
        TableIter::new(Arc::clone(&self.inner))
    }

    /// Reads and checks every block (crc, structure, order, index, filter,
    /// footer counts), bypassing the cache.
    pub fn verify(&self) -> Result<VerifyReport> {
        verify::verify(&self.inner)
    }
}

/// Decodes the index block into entries and checks that the data blocks it
/// names tile `[0, filter offset)` back to back.
fn decode_index(block: &Arc<Block>, footer: &Footer) -> Result<Index, String> {
    let mut it = block.iter();
    it.seek_to_first().map_err(|e| e.to_string())?;
    let mut entries = Index {
        keys: Vec::new(),
        ends: Vec::with_capacity(block.entries()),
        handles: Vec::with_capacity(block.entries()),
        common: 0,
        words: Vec::new(),
    };
    let mut expect = 0u64;
    while it.valid() {
        let h = BlockHandle::decode_varint(it.value()).map_err(String::from)?;
        if h.offset != expect {
            return Err(format!(
                "index entry {} points at offset {}, expected {expect}",
                entries.len(),
                h.offset
            ));
        }
        if h.size > BLOCK_PAYLOAD_BYTES_MAX as u64 {
            return Err(format!("data block of {} bytes is over the limit", h.size));
        }
        expect = h.end().ok_or("block end overflows")?;
        entries.push(it.key(), h)?;
        it.next().map_err(|e| e.to_string())?;
    }
    if expect != footer.filter.offset {
        return Err(format!(
            "data blocks end at {expect} but the filter starts at {}",
            footer.filter.offset
        ));
    }
    if (footer.entries == 0) != entries.is_empty() {
        return Err(format!(
            "footer counts {} entries but the index names {} blocks",
            footer.entries,
            entries.len()
        ));
    }
    entries.finish();
    Ok(entries)
}

#[cfg(test)]
mod index_tests {
    use super::*;
    use crate::types::internal_key;
    use proptest::prelude::*;

    fn index_of(keys: &[(Vec<u8>, u64)]) -> Index {
        let mut idx = Index::default();
        for (i, (k, seq)) in keys.iter().enumerate() {
            let h = BlockHandle {
                offset: i as u64,
                size: 1,
            };
            idx.push(&internal_key(k, *seq, ValueKind::Put), h).unwrap();
        }
        idx.finish();
        idx
    }

    /// Keys drawn from a small alphabet with shared prefixes, so that
    /// common prefixes, equal words, zero bytes and prefix-of-another
    /// keys all come up.
    fn key() -> impl Strategy<Value = Vec<u8>> {
        (
            prop_oneof![
                Just(b"".to_vec()),
                Just(b"user:".to_vec()),
                Just(b"user:00".to_vec())
            ],
            proptest::collection::vec(
                prop_oneof![Just(0u8), Just(1), Just(b'a'), Just(0xff)],
                0..12,
            ),
        )
            .prop_map(|(mut p, t)| {
                p.extend(t);
                p
            })
    }

    proptest! {
        #[test]
        fn word_search_finds_what_a_plain_binary_search_finds(
            mut keys in proptest::collection::vec((key(), 1u64..5), 1..60),
            targets in proptest::collection::vec((key(), 0u64..6), 1..40),
        ) {
            keys.sort_by(|a, b| {
                compare_internal_keys(
                    &internal_key(&a.0, a.1, ValueKind::Put),
                    &internal_key(&b.0, b.1, ValueKind::Put),
                )
            });
            keys.dedup();
            let idx = index_of(&keys);
            // Every prefix of every key too: targets shorter than, equal to
            // and just past the prefix the keys share.
            let prefixes: Vec<(Vec<u8>, u64)> = keys
                .iter()
                .flat_map(|(k, _)| (0..=k.len()).map(move |j| (k[..j].to_vec(), 3)))
                .collect();
            for (t, seq) in targets.iter().chain(keys.iter()).chain(prefixes.iter()) {
                let target = internal_key(t, *seq, ValueKind::Put);
                prop_assert_eq!(
                    idx.find(&target),
                    idx.find_in(&target, 0, idx.len()),
                    "target {:?}@{}", t, seq
                );
            }
        }
    }
}
