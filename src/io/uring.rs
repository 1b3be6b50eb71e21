//! The io_uring implementation of [`Fs`].
//!
//! Each thread that does IO owns one small ring (created on first use), so
//! no ring is shared and no lock is taken. Every call submits and waits:
//! the engine's concurrency comes from its threads (the WAL owner, the
//! flusher, the compactor), not from many operations in flight on one ring.
//! A durable write is one `RWF_DSYNC` write: a group commit costs one
//! submission and no separate fdatasync.
//!
//! Directory operations (rename, remove, directory sync, locks) are rare and
//! go through the plain POSIX calls.

use std::cell::RefCell;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use io_uring::{opcode, squeue, types, IoUring};

use super::plain::{dir, open_posix, PosixFile};
use super::{Backend, FileHandle, Fs, LockGuard, Mapping, OpenOptions, TicketState, WriteTicket};
use crate::error::{Error, Result};

const RING_ENTRIES: u32 = 8;
/// Largest single read or write submitted (the SQE length is 32 bits).
const IO_CHUNK_BYTES_MAX: usize = 1 << 30;

thread_local! {
    static RING: RefCell<Option<IoUring>> = const { RefCell::new(None) };
}

/// io_uring-backed file system.
#[derive(Debug)]
pub struct UringFs {
    _private: (),
}

impl UringFs {
    /// Sets up a ring on this thread to check that io_uring works at all,
    /// including a no-op round trip; the error names why it does not.
    pub fn new() -> std::io::Result<Self> {
        with_ring(|ring| {
            let nop = opcode::Nop::new().build().user_data(0);
            // SAFETY: a NOP references no memory.
            unsafe { push(ring, &nop)? };
            ring.submit_and_wait(1)?;
            let cqe = ring
                .completion()
                .next()
                .ok_or_else(|| std::io::Error::other("io_uring returned no completion"))?;
            if cqe.result() < 0 {
                return Err(std::io::Error::from_raw_os_error(-cqe.result()));
            }
            Ok(())
        })?;
        Ok(UringFs { _private: () })
    }
}

fn with_ring<T>(f: impl FnOnce(&mut IoUring) -> std::io::Result<T>) -> std::io::Result<T> {
    RING.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(IoUring::new(RING_ENTRIES)?);
        }
        match slot.as_mut() {
            Some(ring) => f(ring),
            None => Err(std::io::Error::other("io_uring ring missing")),
        }
    })
}

/// # Safety
/// Every buffer the entry points to must stay valid until its completion
/// has been reaped.
unsafe fn push(ring: &mut IoUring, entry: &squeue::Entry) -> std::io::Result<()> {
    // SAFETY: forwarded to the caller.
    unsafe { ring.submission().push(entry) }
        .map_err(|_| std::io::Error::other("io_uring submission queue full"))
}

/// Submits `entries` (already pushed: `count` of them) and returns their
/// results in user_data order 0..count.
fn submit_and_collect(ring: &mut IoUring, count: usize) -> std::io::Result<Vec<i32>> {
    let mut results = vec![i32::MIN; count];
    let mut seen = 0;
    while seen < count {
        match ring.submit_and_wait(count - seen) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for cqe in ring.completion() {
            let idx = cqe.user_data() as usize;
            if let Some(slot) = results.get_mut(idx) {
                *slot = cqe.result();
                seen += 1;
            }
        }
    }
    Ok(results)
}

impl Fs for UringFs {
    fn open(&self, path: &Path, opts: OpenOptions) -> Result<Arc<dyn FileHandle>> {
        let (file, direct) = open_posix(path, opts)?;
        Ok(Arc::new(UringFile {
            inner: PosixFile {
                file,
                path: path.to_path_buf(),
                direct,
            },
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        dir::rename(from, to)
    }
    fn remove(&self, path: &Path) -> Result<()> {
        dir::remove(path)
    }
    fn sync_dir(&self, d: &Path) -> Result<()> {
        dir::sync_dir(d)
    }
    fn create_dir_all(&self, d: &Path) -> Result<()> {
        dir::create_dir_all(d)
    }
    fn list(&self, d: &Path) -> Result<Vec<String>> {
        dir::list(d)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn lock(&self, path: &Path) -> Result<Box<dyn LockGuard>> {
        dir::lock(path)
    }
    fn backend(&self) -> Backend {
        Backend::Uring
    }
}

/// A file whose reads, writes and syncs go through io_uring.
#[derive(Debug)]
pub struct UringFile {
    inner: PosixFile,
}

impl UringFile {
    fn fd(&self) -> types::Fd {
        types::Fd(self.inner.file.as_raw_fd())
    }

    fn err(&self, op: &'static str, e: std::io::Error) -> Error {
        Error::io(op, &self.inner.path, e)
    }

    /// One write submission. With `sync`, the write carries `RWF_DSYNC`,
    /// so its completion means the data is durable: one operation, no
    /// separate fdatasync (which io_uring would hand to a worker thread).
    /// Returns the bytes written, possibly short.
    fn write_once(&self, buf: &[u8], offset: u64, sync: bool) -> Result<usize> {
        let len = buf.len().min(IO_CHUNK_BYTES_MAX) as u32;
        let results = with_ring(|ring| {
            let mut write = opcode::Write::new(self.fd(), buf.as_ptr(), len).offset(offset);
            if sync {
                write = write.rw_flags(libc::RWF_DSYNC);
            }
            let write = write.build().user_data(0);
            // SAFETY: `buf` outlives the wait below.
            unsafe { push(ring, &write)? };
            submit_and_collect(ring, 1)
        })
        .map_err(|e| self.err("io_uring submit", e))?;
        let written = results.first().copied().unwrap_or(i32::MIN);
        if written < 0 {
            let op = if sync { "write (O_DSYNC)" } else { "write" };
            return Err(self.err(op, std::io::Error::from_raw_os_error(-written)));
        }
        Ok(written as usize)
    }
}

impl FileHandle for UringFile {
    fn path(&self) -> &Path {
        &self.inner.path
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let mut done = 0usize;
        while done < buf.len() {
            let chunk = &mut buf[done..];
            let len = chunk.len().min(IO_CHUNK_BYTES_MAX) as u32;
            let ptr = chunk.as_mut_ptr();
            let results = with_ring(|ring| {
                let read = opcode::Read::new(self.fd(), ptr, len)
                    .offset(offset + done as u64)
                    .build()
                    .user_data(0);
                // SAFETY: `buf` outlives the wait below.
                unsafe { push(ring, &read)? };
                submit_and_collect(ring, 1)
            })
            .map_err(|e| self.err("io_uring submit", e))?;
            let n = results.first().copied().unwrap_or(i32::MIN);
            if n == -libc::EINTR || n == -libc::EAGAIN {
                continue;
            }
            if n < 0 {
                return Err(self.err("read", std::io::Error::from_raw_os_error(-n)));
            }
            if n == 0 {
                break;
            }
            done += n as usize;
        }
        Ok(done)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        if !self.inner.direct {
            // A buffered write only copies into the page cache; io_uring
            // would hand it to a worker thread (two context switches) on
            // most file systems, so it is done inline.
            return self.inner.write_at(buf, offset);
        }
        let mut done = 0usize;
        while done < buf.len() {
            let n = self.write_once(&buf[done..], offset + done as u64, false)?;
            if n == 0 {
                return Err(self.err("write", std::io::Error::from(std::io::ErrorKind::WriteZero)));
            }
            done += n;
        }
        Ok(())
    }

    fn write_at_sync(&self, buf: &[u8], offset: u64) -> Result<()> {
        let n = self.write_once(buf, offset, true)?;
        if n < buf.len() {
            // A short write made only part durable: finish it, then sync.
            self.write_at(&buf[n..], offset + n as u64)?;
            return self.sync_data();
        }
        Ok(())
    }

    unsafe fn start_write(&self, buf: &[u8], offset: u64, sync: bool) -> WriteTicket {
        if !self.inner.direct && !sync {
            return WriteTicket::done(self.inner.write_at(buf, offset));
        }
        let len = buf.len().min(IO_CHUNK_BYTES_MAX);
        let submitted = with_ring(|ring| {
            let mut write = opcode::Write::new(self.fd(), buf.as_ptr(), len as u32).offset(offset);
            if sync {
                write = write.rw_flags(libc::RWF_DSYNC);
            }
            let write = write.build().user_data(0);
            // SAFETY: the caller keeps `buf` valid until finish_write.
            unsafe { push(ring, &write)? };
            ring.submit()
        });
        match submitted {
            Ok(_) => WriteTicket {
                state: TicketState::Submitted {
                    ptr: buf.as_ptr(),
                    len: buf.len(),
                    offset,
                    sync,
                },
            },
            Err(e) => WriteTicket::done(Err(self.err("io_uring submit", e))),
        }
    }

    fn finish_write(&self, ticket: WriteTicket) -> Result<()> {
        let (ptr, len, offset, sync) = match ticket.state {
            TicketState::Done(r) => return r,
            TicketState::Submitted {
                ptr,
                len,
                offset,
                sync,
            } => (ptr, len, offset, sync),
        };
        let results = with_ring(|ring| submit_and_collect(ring, 1))
            .map_err(|e| self.err("io_uring wait", e))?;
        let n = results.first().copied().unwrap_or(i32::MIN);
        if n < 0 {
            let op = if sync { "write (O_DSYNC)" } else { "write" };
            return Err(self.err(op, std::io::Error::from_raw_os_error(-n)));
        }
        let n = n as usize;
        if n < len {
            // SAFETY: start_write's contract keeps ptr..ptr+len valid and
            // unchanged until this call returns.
            let rest = unsafe { std::slice::from_raw_parts(ptr.add(n), len - n) };
            self.write_at(rest, offset + n as u64)?;
            if sync {
                self.sync_data()?;
            }
        }
        Ok(())
    }

    fn sync_data(&self) -> Result<()> {
        self.fsync(true)
    }

    fn sync_all(&self) -> Result<()> {
        self.fsync(false)
    }

    fn set_len(&self, len: u64) -> Result<()> {
        self.inner.set_len(len)
    }

    fn len(&self) -> Result<u64> {
        self.inner.len()
    }

    fn map(&self) -> Result<Mapping> {
        self.inner.map_file()
    }

    fn is_direct(&self) -> bool {
        self.inner.direct
    }
}

impl UringFile {
    fn fsync(&self, data_only: bool) -> Result<()> {
        let op = if data_only { "fdatasync" } else { "fsync" };
        let results = with_ring(|ring| {
            let mut f = opcode::Fsync::new(self.fd());
            if data_only {
                f = f.flags(types::FsyncFlags::DATASYNC);
            }
            let entry = f.build().user_data(0);
            // SAFETY: fsync references no memory.
            unsafe { push(ring, &entry)? };
            submit_and_collect(ring, 1)
        })
        .map_err(|e| self.err("io_uring submit", e))?;
        match results.first().copied() {
            Some(0) => Ok(()),
            Some(rc) if rc < 0 => Err(self.err(op, std::io::Error::from_raw_os_error(-rc))),
            _ => Err(self.err(op, std::io::Error::other("unexpected completion"))),
        }
    }
}
