//! [`TableBuilder`]: streams sorted entries into a new table file.
//!
//! The builder cuts data blocks of about `block_size_bytes`, frames each
//! (see [`crate::sstable::format`]), and appends them to an aligned write
//! buffer. Whole 4096-byte chunks of the buffer are written as soon as
//! `write_buffer_bytes` have accumulated, so a file opened with `O_DIRECT`
//! only ever sees aligned offsets, aligned lengths and aligned memory.
//! `finish` adds the filter, the index and the footer, writes the tail
//! padded with zeros to a whole chunk, cuts the padding off with
//! `set_len(true length)`, and syncs the data. The table is then complete
//! and durable; publishing it (manifest edit, directory sync) is the
//! caller's job.
//!
//! One builder is driven by one thread. After any error the builder is
//! failed and refuses further calls; the caller removes the file.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::io::aligned::round_down;
use crate::io::{AlignedBuf, FileHandle};
use crate::sstable::block::BlockBuilder;
use crate::sstable::filter::{hash_key, Filter};
use crate::sstable::format::{BlockHandle, Footer, Framer};
use crate::types::{compare_internal_keys, split_internal_key, user_key, SeqNo};

/// How tables are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableOptions {
    /// Target size of a data block before compression.
    pub block_size_bytes: usize,
    /// Entries between restart points in a block.
    pub restart_interval: usize,
    /// Bytes buffered before a write is issued (rounded to 4096).
    pub write_buffer_bytes: usize,
    /// Compress blocks with Snappy when that saves at least 1/8.
    pub compression: bool,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            block_size_bytes: 4096,
            restart_interval: 16,
            write_buffer_bytes: 512 << 10,
            compression: true,
        }
    }
}

/// What a finished table holds; recorded in the manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableMeta {
    /// Bytes of the file.
    pub file_size: u64,
    /// Entries (puts and tombstones).
    pub entries: u64,
    /// Smallest internal key (empty for an empty table).
    pub smallest: Vec<u8>,
    /// Largest internal key (empty for an empty table).
    pub largest: Vec<u8>,
    /// Smallest sequence number (0 for an empty table).
    pub smallest_seq: SeqNo,
    /// Largest sequence number (0 for an empty table).
    pub largest_seq: SeqNo,
}

/// Writes one table file from entries given in increasing internal-key
/// order.
#[derive(Debug)]
pub struct TableBuilder {
    file: Arc<dyn FileHandle>,
    opts: TableOptions,
    framer: Framer,
    data: BlockBuilder,
    index: BlockBuilder,
    /// Unwritten bytes; `out[0]` lies at file offset `out_offset`.
    out: AlignedBuf,
    out_offset: u64,
    hashes: Vec<u64>,
    meta: TableMeta,
    handle_scratch: Vec<u8>,
    /// Buffered bytes at which whole chunks are written out.
    flush_at_bytes: usize,
    failed: bool,
}

impl TableBuilder {
    /// A builder writing to `file` (empty, opened for writing, possibly
    /// with `O_DIRECT`).
    pub fn new(file: Arc<dyn FileHandle>, opts: TableOptions) -> Self {
        let buffer = opts.write_buffer_bytes.max(4096);
        TableBuilder {
            file,
            framer: Framer::new(opts.compression),
            data: BlockBuilder::new(opts.restart_interval),
            index: BlockBuilder::new(opts.restart_interval),
            out: AlignedBuf::with_capacity(buffer + opts.block_size_bytes + 4096),
            out_offset: 0,
            hashes: Vec::new(),
            meta: TableMeta::default(),
            handle_scratch: Vec::new(),
            flush_at_bytes: buffer,
            failed: false,
            opts,
        }
    }

    /// Appends an entry. `ikey` is an encoded internal key and must sort
    /// strictly after the previous one; a key out of order or malformed is
    /// an `InvalidArgument` error (and a bug in the caller).
    pub fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        self.check_usable()?;
        let Some((user, seq, _kind)) = split_internal_key(ikey) else {
            return Err(self.reject(format!("malformed internal key of {} bytes", ikey.len())));
        };
        let first = self.meta.entries == 0;
        if !first && compare_internal_keys(&self.meta.largest, ikey) != Ordering::Less {
            return Err(self.reject(format!(
                "keys out of order: \"{}\" after \"{}\"",
                ikey.escape_ascii(),
                self.meta.largest.escape_ascii()
            )));
        }
        if let Err(e) = self.data.add(ikey, value) {
            self.failed = true;
            return Err(e);
        }
        if first || user != user_key(&self.meta.largest) {
            self.hashes.push(hash_key(user));
        }
        if first {
            self.meta.smallest = ikey.to_vec();
            self.meta.smallest_seq = seq;
            self.meta.largest_seq = seq;
        } else {
            self.meta.smallest_seq = self.meta.smallest_seq.min(seq);
            self.meta.largest_seq = self.meta.largest_seq.max(seq);
        }
        self.meta.largest.clear();
        self.meta.largest.extend_from_slice(ikey);
        self.meta.entries += 1;
        if self.data.size_estimate() >= self.opts.block_size_bytes {
            self.guard(Self::flush_data_block)?;
        }
        Ok(())
    }

    /// Entries added so far.
    pub fn entries(&self) -> u64 {
        self.meta.entries
    }

    /// Bytes the file would have if finished now, roughly (compaction cuts
    /// output files by it).
    pub fn file_size_estimate(&self) -> u64 {
        self.out_offset + self.out.len() as u64 + self.data.size_estimate() as u64
    }

    /// Writes the filter, index and footer, makes the file durable, and
    /// returns what the table holds.
    pub fn finish(mut self) -> Result<TableMeta> {
        self.check_usable()?;
        self.guard(Self::finish_inner)?;
        Ok(std::mem::take(&mut self.meta))
    }

    fn finish_inner(&mut self) -> Result<()> {
        if !self.data.is_empty() {
            self.flush_data_block()?;
        }
        let filter = Filter::build(std::mem::take(&mut self.hashes));
        let mut filter_bytes = Vec::with_capacity(filter.size_bytes() + 32);
        filter.encode(&mut filter_bytes);
        let filter_handle = self.write_block(&filter_bytes)?;
        let mut index = std::mem::replace(&mut self.index, BlockBuilder::new(1));
        let index_handle = self.write_block(index.finish())?;
        let footer = Footer {
            filter: filter_handle,
            index: index_handle,
            entries: self.meta.entries,
            smallest_seq: self.meta.smallest_seq,
            largest_seq: self.meta.largest_seq,
        };
        self.out.extend_from_slice(&footer.encode());
        let file_size = self.out_offset + self.out.len() as u64;
        let padded = self.out.as_padded();
        if !padded.is_empty() {
            self.file.write_at(padded, self.out_offset)?;
        }
        // Cut the zero padding of the last chunk off.
        self.file.set_len(file_size)?;
        self.file.sync_data()?;
        self.meta.file_size = file_size;
        Ok(())
    }

    fn flush_data_block(&mut self) -> Result<()> {
        let mut block = std::mem::replace(&mut self.data, BlockBuilder::new(1));
        let handle = self.write_block(block.finish());
        let result = handle.and_then(|h| {
            self.handle_scratch.clear();
            h.encode_varint(&mut self.handle_scratch);
            self.index.add(block.last_key(), &self.handle_scratch)
        });
        block.reset();
        self.data = block;
        result
    }

    /// Frames a block into the buffer; writes whole chunks when it is full.
    fn write_block(&mut self, raw: &[u8]) -> Result<BlockHandle> {
        let (payload, trailer) = self.framer.frame(raw);
        let handle = BlockHandle {
            offset: self.out_offset + self.out.len() as u64,
            size: payload.len() as u64,
        };
        self.out.extend_from_slice(payload);
        self.out.extend_from_slice(&trailer);
        debug_assert_eq!(handle.end(), Some(self.out_offset + self.out.len() as u64));
        if self.out.len() >= self.flush_at_bytes {
            let n = round_down(self.out.len() as u64) as usize;
            let chunk = self.out.as_slice().get(..n).unwrap_or_default();
            self.file.write_at(chunk, self.out_offset)?;
            self.out.retain_from(n);
            self.out_offset += n as u64;
        }
        Ok(handle)
    }

    fn check_usable(&self) -> Result<()> {
        if self.failed {
            return Err(Error::InvalidArgument(format!(
                "table builder for {} failed earlier and cannot continue",
                self.file.path().display()
            )));
        }
        Ok(())
    }

    fn reject(&mut self, what: String) -> Error {
        self.failed = true;
        Error::InvalidArgument(format!("{}: {what}", self.file.path().display()))
    }

    /// Runs a step; any error fails the builder.
    fn guard(&mut self, step: fn(&mut Self) -> Result<()>) -> Result<()> {
        let r = step(self);
        if r.is_err() {
            self.failed = true;
        }
        r
    }
}
