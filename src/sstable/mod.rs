//! Sorted string tables: the immutable files of the LSM tree.
//!
//! A table holds (internal key, value) entries in internal-key order (user
//! key ascending, sequence descending; see [`crate::types`]). It is written
//! once by a [`TableBuilder`] (flush or compaction), made durable, and
//! then only read, through a memory map, by [`Table`].
//!
//! File layout:
//!
//! ```text
//! offset 0
//! +--------------------------------------------+
//! | data block 0    | type u8 | crc32 u32 LE   |  ~4 KiB of entries each,
//! | data block 1    | type u8 | crc32 u32 LE   |  Snappy when it saves 1/8
//! | ...                                        |
//! | data block n-1  | type u8 | crc32 u32 LE   |
//! +--------------------------------------------+
//! | filter block    | type u8 | crc32 u32 LE   |  binary fuse over user keys
//! +--------------------------------------------+
//! | index block     | type u8 | crc32 u32 LE   |  per data block: its last
//! |                                            |  internal key -> handle
//! +--------------------------------------------+    (offset varint, size varint)
//! | footer (72 bytes, ends with "CHSSTBL1")    |
//! +--------------------------------------------+
//! ```
//!
//! The blocks tile the file with no gaps, which the reader checks. The
//! formats of each part are drawn in their modules: [`block`] (entries and
//! restart points), [`format`] (block trailer, handles, footer) and
//! [`filter`]. All integers are little-endian except the internal-key
//! trailer, which is big-endian so that keys compare bytewise.
//!
//! Reads check everything they touch (crc of each block, structure of each
//! decoded block, handles against the file), so damage surfaces as
//! `Error::Corruption { file, offset, what }`; [`Table::verify`] checks a
//! whole file for `cityhall check`. Decoded blocks are shared through one
//! byte-bounded [`BlockCache`].

pub mod block;
mod builder;
mod cache;
pub mod filter;
pub mod format;
mod fuse_params;
mod reader;
mod table_iter;
mod verify;

#[cfg(test)]
mod tests;

pub use builder::{TableBuilder, TableMeta, TableOptions};
pub use cache::BlockCache;
pub use reader::Table;
pub use table_iter::TableIter;
pub use verify::VerifyReport;
