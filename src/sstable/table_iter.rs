//! [`TableIter`]: a two-level cursor over a table, the in-memory index
//! first, then one data block at a time through the block cache.
//!
//! The iterator holds its table (an `Arc`) and the current block (an
//! `Arc<Block>`), so it is `Send`, outlives evictions, and keeps the
//! mapping alive. After an error it is invalid until the next seek.

use std::sync::Arc;

use crate::error::Result;
use crate::iter::EntryIter;
use crate::sstable::block::BlockIter;
use crate::sstable::reader::TableInner;

/// A cursor over one table's entries in internal-key order.
#[derive(Debug)]
pub struct TableIter {
    table: Arc<TableInner>,
    block_idx: usize,
    block: Option<BlockIter>,
}

impl TableIter {
    pub(crate) fn new(table: Arc<TableInner>) -> Self {
        TableIter {
            table,
            block_idx: 0,
            block: None,
        }
    }

    /// Makes data block `i` current (none past the last).
    fn load(&mut self, i: usize) -> Result<()> {
        self.block = None;
        self.block_idx = i;
        if i < self.table.index.len() {
            self.block = Some(self.table.read_block(i)?.iter());
        }
        Ok(())
    }

    /// Moves past exhausted blocks to the first entry of the next one.
    fn skip_exhausted(&mut self) -> Result<()> {
        while self.block.as_ref().is_some_and(|b| !b.valid()) {
            self.load(self.block_idx + 1)?;
            if let Some(b) = &mut self.block {
                b.seek_to_first()?;
            }
        }
        Ok(())
    }

    fn seek_inner(&mut self, target: &[u8]) -> Result<()> {
        self.load(self.table.find_block(target))?;
        if let Some(b) = &mut self.block {
            b.seek(target)?;
        }
        self.skip_exhausted()
    }

    fn seek_to_first_inner(&mut self) -> Result<()> {
        self.load(0)?;
        if let Some(b) = &mut self.block {
            b.seek_to_first()?;
        }
        self.skip_exhausted()
    }

    fn next_inner(&mut self) -> Result<()> {
        if let Some(b) = &mut self.block {
            b.next()?;
        }
        self.skip_exhausted()
    }

    /// Invalidates the cursor if `r` is an error.
    fn settle(&mut self, r: Result<()>) -> Result<()> {
        if r.is_err() {
            self.block = None;
        }
        r
    }
}

impl EntryIter for TableIter {
    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let r = self.seek_inner(target);
        self.settle(r)
    }

    fn seek_to_first(&mut self) -> Result<()> {
        let r = self.seek_to_first_inner();
        self.settle(r)
    }

    fn valid(&self) -> bool {
        self.block.as_ref().is_some_and(|b| b.valid())
    }

    fn key(&self) -> &[u8] {
        self.block.as_ref().map_or(&[], |b| b.key())
    }

    fn value(&self) -> &[u8] {
        self.block.as_ref().map_or(&[], |b| b.value())
    }

    fn next(&mut self) -> Result<()> {
        let r = self.next_inner();
        self.settle(r)
    }
}
