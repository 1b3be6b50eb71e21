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
use crate::types::{compare_internal_keys, split_internal_key, SeqNo, ValueKind, SEQ_MAX};

/// The decoded index: for each data block, its last internal key and its
/// handle. The keys lie back to back in one buffer so that the binary
/// search of a point read touches two flat arrays, not one heap
/// allocation per block.
#[derive(Debug, Default)]
pub(crate) struct Index {
    keys: Vec<u8>,
    /// `ends[i]` is where block `i`'s last key ends in `keys`.
    ends: Vec<u32>,
    handles: Vec<BlockHandle>,
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
        let (mut lo, mut hi) = (0, self.len());
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
    Ok(entries)
}
