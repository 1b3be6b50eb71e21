//! The iterator interface shared by memtables, tables and merges.
//!
//! Every source yields entries in internal-key order (see [`crate::types`]):
//! user key ascending, sequence descending. Keys are encoded internal keys;
//! a tombstone's value is empty. Errors (a damaged block) stop the iterator
//! and are returned by the call that hit them.

use crate::error::Result;

/// A cursor over entries in internal-key order.
pub trait EntryIter: Send {
    /// Positions at the first entry whose internal key is >= `target`.
    fn seek(&mut self, target: &[u8]) -> Result<()>;
    /// Positions at the first entry.
    fn seek_to_first(&mut self) -> Result<()>;
    /// Whether the cursor is on an entry.
    fn valid(&self) -> bool;
    /// The current encoded internal key. Only meaningful when `valid()`.
    fn key(&self) -> &[u8];
    /// The current value. Only meaningful when `valid()`.
    fn value(&self) -> &[u8];
    /// Moves to the next entry.
    fn next(&mut self) -> Result<()>;
}
