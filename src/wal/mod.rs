//! The write-ahead log.
//!
//! - [`format`]: the record framing (crc32, length, segment, group offset).
//! - [`segment`]: segment files, pre-zeroed and prepared ahead of use.
//! - [`writer`]: the log owner's appender (aligned group writes, tail-block
//!   rewrite, linked write + fdatasync).
//! - [`reader`]: replay at recovery, telling a torn tail from corruption.
//!
//! The group-commit loop that drives the writer lives in `db::commit`.

pub mod format;
pub mod reader;
pub mod segment;
pub mod writer;
