//! The one seam for file IO.
//!
//! Everything the engine does to files goes through [`Fs`] and
//! [`FileHandle`]. Three implementations exist:
//!
//! - [`uring::UringFs`]: the default. Writes, reads and syncs are submitted
//!   through io_uring (one ring per thread); a write followed by a data sync
//!   is one `RWF_DSYNC` write.
//! - [`plain::PlainFs`]: `pread`/`pwrite`/`fdatasync`, chosen automatically
//!   with one warning line when io_uring cannot be set up (seccomp,
//!   `kernel.io_uring_disabled`, an old kernel).
//! - [`sim::SimFs`]: an in-memory file system for tests that keeps written
//!   and durable bytes apart, and can drop unsynced bytes, tear the last
//!   write and fail any operation on cue, from a printed seed.
//!
//! Handles are `Send + Sync`; positional reads and writes need no external
//! locking, but the caller owns the ordering of writes to one file.

pub mod aligned;
pub mod plain;
pub mod sim;
pub mod uring;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Result;

pub use aligned::{AlignedBuf, BLOCK_SIZE};

/// How a file is opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Open for writing as well as reading.
    pub write: bool,
    /// Create the file if it does not exist.
    pub create: bool,
    /// Fail if the file exists (implies `create`).
    pub create_new: bool,
    /// Bypass the page cache (`O_DIRECT`): buffers, offsets and lengths of
    /// writes must be multiples of [`BLOCK_SIZE`] and buffers aligned to it.
    /// Falls back to buffered IO where the file system refuses it.
    pub direct: bool,
}

impl OpenOptions {
    /// Read-only.
    pub fn read() -> Self {
        Self::default()
    }

    /// Read and write, creating the file if missing.
    pub fn write_create() -> Self {
        Self {
            write: true,
            create: true,
            ..Self::default()
        }
    }

    /// Read and write; the file must not exist yet.
    pub fn create_new() -> Self {
        Self {
            write: true,
            create: true,
            create_new: true,
            ..Self::default()
        }
    }

    /// The same options with `O_DIRECT` requested.
    pub fn with_direct(mut self) -> Self {
        self.direct = true;
        self
    }
}

/// Which implementation serves a file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// io_uring.
    Uring,
    /// pread/pwrite.
    Plain,
    /// The in-memory simulation used by tests.
    Sim,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Uring => "io_uring",
            Backend::Plain => "pread/pwrite",
            Backend::Sim => "simulated",
        })
    }
}

/// A file system: the directory-level operations.
pub trait Fs: Send + Sync + std::fmt::Debug {
    /// Opens (or creates) a file.
    fn open(&self, path: &Path, opts: OpenOptions) -> Result<Arc<dyn FileHandle>>;
    /// Renames `from` to `to`, replacing `to`. Durable after [`Fs::sync_dir`].
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// Removes a file. Durable after [`Fs::sync_dir`].
    fn remove(&self, path: &Path) -> Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> Result<()>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> Result<()>;
    /// The names of the entries of a directory, sorted.
    fn list(&self, dir: &Path) -> Result<Vec<String>>;
    /// Whether a path exists.
    fn exists(&self, path: &Path) -> bool;
    /// Takes an exclusive advisory lock on `path`, held until the guard drops.
    fn lock(&self, path: &Path) -> Result<Box<dyn LockGuard>>;
    /// Which implementation this is.
    fn backend(&self) -> Backend;
    /// The instance a newly opened database should use. The simulated file
    /// system returns one bound to the current crash epoch, so that a
    /// database left over from before a simulated crash (its threads still
    /// winding down) can no longer touch the files, as a dead process could
    /// not. Real file systems return `None`: use this one.
    fn for_new_process(&self) -> Option<Arc<dyn Fs>> {
        None
    }
}

/// A held lock; dropping it releases the lock.
pub trait LockGuard: Send + Sync + std::fmt::Debug {}

/// An open file.
pub trait FileHandle: Send + Sync + std::fmt::Debug {
    /// The path the file was opened at.
    fn path(&self) -> &Path;
    /// Reads up to `buf.len()` bytes at `offset`; fewer only at end of file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize>;
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()>;
    /// Writes all of `buf` at `offset`, then makes the file's data durable.
    /// io_uring submits it as one `RWF_DSYNC` write.
    fn write_at_sync(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.write_at(buf, offset)?;
        self.sync_data()
    }
    /// Starts writing all of `buf` at `offset` (durably if `sync`) and
    /// returns before it completes where the backend can (io_uring); the
    /// others do the whole write here. [`FileHandle::finish_write`] gives
    /// the result.
    ///
    /// # Safety
    /// `buf` must stay valid and unchanged until `finish_write` has
    /// returned, and `finish_write` must be called on the same thread
    /// before any other operation through this file system on it.
    unsafe fn start_write(&self, buf: &[u8], offset: u64, sync: bool) -> WriteTicket {
        let result = if sync {
            self.write_at_sync(buf, offset)
        } else {
            self.write_at(buf, offset)
        };
        WriteTicket::done(result)
    }

    /// Waits for a write started with [`FileHandle::start_write`].
    fn finish_write(&self, ticket: WriteTicket) -> Result<()> {
        ticket.into_result()
    }

    /// `fdatasync`: makes written data (and the size) durable.
    fn sync_data(&self) -> Result<()>;
    /// `fsync`: makes data and all metadata durable.
    fn sync_all(&self) -> Result<()>;
    /// Sets the file's length (truncating or extending with zeros).
    fn set_len(&self, len: u64) -> Result<()>;
    /// The current length in bytes.
    fn len(&self) -> Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
    /// A read-only view of the whole file as it is now.
    fn map(&self) -> Result<Mapping>;
    /// Whether writes bypass the page cache.
    fn is_direct(&self) -> bool;
}

/// A write in flight (see [`FileHandle::start_write`]).
#[derive(Debug)]
#[must_use = "a started write must be finished"]
pub struct WriteTicket {
    pub(crate) state: TicketState,
}

#[derive(Debug)]
pub(crate) enum TicketState {
    /// Completed already, with this result.
    Done(Result<()>),
    /// Submitted to this thread's ring.
    Submitted {
        ptr: *const u8,
        len: usize,
        offset: u64,
        sync: bool,
    },
}

// SAFETY: the raw pointer is only dereferenced by `finish_write`, under the
// contract of `start_write` (same thread, buffer still valid).
unsafe impl Send for WriteTicket {}

impl WriteTicket {
    /// A ticket for a write that has already completed.
    pub fn done(result: Result<()>) -> Self {
        WriteTicket {
            state: TicketState::Done(result),
        }
    }

    fn into_result(self) -> Result<()> {
        match self.state {
            TicketState::Done(r) => r,
            TicketState::Submitted { .. } => Err(crate::error::Error::InvalidArgument(
                "write ticket finished by a backend that did not start it".into(),
            )),
        }
    }
}

/// Reads exactly `buf.len()` bytes at `offset`, or fails with
/// `UnexpectedEof` naming the file.
pub fn read_exact_at(file: &dyn FileHandle, buf: &mut [u8], offset: u64) -> Result<()> {
    let n = file.read_at(buf, offset)?;
    if n < buf.len() {
        return Err(crate::error::Error::io(
            "read",
            file.path(),
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("short read: {n} of {} bytes at offset {offset}", buf.len()),
            ),
        ));
    }
    Ok(())
}

/// Reads a whole file into memory.
pub fn read_all(file: &dyn FileHandle) -> Result<Vec<u8>> {
    let len = usize::try_from(file.len()?).map_err(|_| {
        crate::error::Error::InvalidArgument(format!("{} is too large", file.path().display()))
    })?;
    let mut buf = vec![0u8; len];
    let n = file.read_at(&mut buf, 0)?;
    buf.truncate(n);
    Ok(buf)
}

/// A read-only view of a file: a memory mapping, or owned bytes where
/// mapping is impossible (empty files, the simulated file system).
#[derive(Debug)]
pub enum Mapping {
    /// An `mmap` of the file.
    Mmap(memmap2::Mmap),
    /// The file's bytes, copied.
    Bytes(Vec<u8>),
}

impl std::ops::Deref for Mapping {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Mapping::Mmap(m) => m,
            Mapping::Bytes(b) => b,
        }
    }
}

/// The default file system: io_uring when it can be set up, otherwise
/// pread/pwrite with one warning line on stderr naming the cause.
pub fn default_fs() -> Arc<dyn Fs> {
    match uring::UringFs::new() {
        Ok(fs) => Arc::new(fs),
        Err(cause) => {
            eprintln!(
                "cityhall: warning: io_uring unavailable ({cause}); likely cause: the syscall is \
                 disabled by seccomp or kernel.io_uring_disabled; using pread/pwrite"
            );
            Arc::new(plain::PlainFs::new())
        }
    }
}

/// Joins a directory and a file name.
pub fn join(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
