//! The one error type of the crate.
//!
//! Operating errors (IO failures, damaged files, bad input) are values of
//! [`Error`]; programmer errors are assertions. Every variant names what
//! failed so that the message alone is enough to act on.

use std::path::Path;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in CityHall.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system IO call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation that failed (`open`, `write`, `fdatasync`, ...).
        op: &'static str,
        /// The file or directory it was applied to.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Bytes read from disk failed a check.
    #[error("corruption in {file} at offset {offset}: {what}")]
    Corruption {
        /// The damaged file.
        file: String,
        /// Byte offset of the damaged record or block.
        offset: u64,
        /// What check failed.
        what: String,
    },
    /// A size or count bound was exceeded.
    #[error("limit exceeded: {what}")]
    LimitExceeded {
        /// The bound and the offending size.
        what: String,
    },
    /// An earlier write or sync failed; the database refuses further writes.
    #[error("database is poisoned and refuses writes: {0}")]
    Poisoned(String),
    /// A caller passed something that cannot be accepted.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Another process holds the database directory.
    #[error("database directory {0} is locked by another process")]
    Locked(String),
    /// A malformed or unexpected message on the wire.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The database was closed.
    #[error("database is closed")]
    Closed,
}

impl Error {
    /// Wraps an OS error with the operation and path it came from.
    pub fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.display().to_string(),
            source,
        }
    }

    /// A corruption error for `file` at `offset`.
    pub fn corruption(file: &Path, offset: u64, what: impl Into<String>) -> Self {
        Error::Corruption {
            file: file.display().to_string(),
            offset,
            what: what.into(),
        }
    }

    /// True for errors that mean "the disk is full".
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC))
    }
}
