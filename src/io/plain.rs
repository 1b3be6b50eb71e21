//! The pread/pwrite implementation of [`Fs`], and the POSIX pieces that the
//! io_uring implementation shares (open, rename, directory sync, locks).

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{Backend, FileHandle, Fs, LockGuard, Mapping, OpenOptions};
use crate::error::{Error, Result};

/// pread/pwrite/fdatasync on plain file descriptors.
#[derive(Debug, Default)]
pub struct PlainFs;

impl PlainFs {
    /// A new instance.
    pub fn new() -> Self {
        PlainFs
    }
}

static DIRECT_WARNED: AtomicBool = AtomicBool::new(false);

/// Opens a file with the given options. When `O_DIRECT` is refused by the
/// file system (EINVAL), opens it buffered and warns once.
pub(crate) fn open_posix(path: &Path, opts: OpenOptions) -> Result<(File, bool)> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true)
        .write(opts.write)
        .create(opts.create && !opts.create_new)
        .create_new(opts.create_new);
    if opts.direct {
        let mut od = o.clone();
        od.custom_flags(libc::O_DIRECT);
        match od.open(path) {
            Ok(f) => return Ok((f, true)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                if !DIRECT_WARNED.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "cityhall: warning: {} does not support O_DIRECT; using buffered IO",
                        path.display()
                    );
                }
            }
            Err(e) => return Err(Error::io("open", path, e)),
        }
    }
    let f = o.open(path).map_err(|e| Error::io("open", path, e))?;
    Ok((f, false))
}

/// The directory operations common to the POSIX implementations.
pub(crate) mod dir {
    use super::*;

    pub fn rename(from: &Path, to: &Path) -> Result<()> {
        std::fs::rename(from, to).map_err(|e| Error::io("rename", from, e))
    }

    pub fn remove(path: &Path) -> Result<()> {
        std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e))
    }

    pub fn sync_dir(dir: &Path) -> Result<()> {
        let f = File::open(dir).map_err(|e| Error::io("open directory", dir, e))?;
        f.sync_all()
            .map_err(|e| Error::io("fsync directory", dir, e))
    }

    pub fn create_dir_all(dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))
    }

    pub fn list(dir: &Path) -> Result<Vec<String>> {
        let rd = std::fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    pub fn lock(path: &Path) -> Result<Box<dyn LockGuard>> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io("open lock file", path, e))?;
        // SAFETY: flock on a valid descriptor owned by `f`.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(Error::Locked(
                    path.parent().unwrap_or(path).display().to_string(),
                ));
            }
            return Err(Error::io("flock", path, err));
        }
        Ok(Box::new(FlockGuard { _file: f }))
    }
}

#[derive(Debug)]
struct FlockGuard {
    _file: File,
}

impl LockGuard for FlockGuard {}

impl Fs for PlainFs {
    fn open(&self, path: &Path, opts: OpenOptions) -> Result<Arc<dyn FileHandle>> {
        let (file, direct) = open_posix(path, opts)?;
        Ok(Arc::new(PosixFile {
            file,
            path: path.to_path_buf(),
            direct,
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
        Backend::Plain
    }
}

/// A file served by pread/pwrite.
#[derive(Debug)]
pub struct PosixFile {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) direct: bool,
}

impl PosixFile {
    pub(crate) fn map_file(&self) -> Result<Mapping> {
        let len = self
            .file
            .metadata()
            .map_err(|e| Error::io("stat", &self.path, e))?
            .len();
        if len == 0 {
            return Ok(Mapping::Bytes(Vec::new()));
        }
        // SAFETY: table files are immutable once written; CityHall never
        // modifies or truncates a file while a mapping of it is alive.
        let m = unsafe { memmap2::Mmap::map(&self.file) }
            .map_err(|e| Error::io("mmap", &self.path, e))?;
        Ok(Mapping::Mmap(m))
    }
}

impl FileHandle for PosixFile {
    fn path(&self) -> &Path {
        &self.path
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read", &self.path, e)),
            }
        }
        Ok(done)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.file
            .write_all_at(buf, offset)
            .map_err(|e| Error::io("write", &self.path, e))
    }
    fn sync_data(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("fdatasync", &self.path, e))
    }
    fn sync_all(&self) -> Result<()> {
        self.file
            .sync_all()
            .map_err(|e| Error::io("fsync", &self.path, e))
    }
    fn set_len(&self, len: u64) -> Result<()> {
        self.file
            .set_len(len)
            .map_err(|e| Error::io("truncate", &self.path, e))
    }
    fn len(&self) -> Result<u64> {
        Ok(self
            .file
            .metadata()
            .map_err(|e| Error::io("stat", &self.path, e))?
            .len())
    }
    fn map(&self) -> Result<Mapping> {
        self.map_file()
    }
    fn is_direct(&self) -> bool {
        self.direct
    }
}
