//! WAL segment files: names and preparation.
//!
//! A segment is named `NNNNNN.log` after its file number. Before a segment
//! takes writes it is written out in full with zeros and synced, so that
//! later writes overwrite allocated, written blocks: a data sync then needs
//! no metadata update (an `fallocate`d file would not do: its extents stay
//! "unwritten" until first written, and converting them is a metadata
//! change). It is prepared under a temporary name and renamed into place,
//! and the directory synced, before it is handed to the writer.
//!
//! The [`Preparer`] readies the next segment on a background thread while
//! the writer fills the current one, so that a roll-over costs the writer
//! nothing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::io::{AlignedBuf, FileHandle, Fs, OpenOptions};

/// The file name of segment `number`.
pub fn segment_name(number: u64) -> String {
    format!("{number:06}.log")
}

/// The number of a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_suffix(".log")?.parse().ok()
}

/// A segment ready for writing.
#[derive(Debug)]
pub struct Segment {
    /// Its file number.
    pub number: u64,
    /// The open file (O_DIRECT where supported).
    pub file: Arc<dyn FileHandle>,
    /// Its size in bytes (pre-zeroed).
    pub size: u64,
}

const ZERO_CHUNK_BYTES: usize = 1 << 20;

/// Creates, zero-fills, syncs and publishes segment `number` in `dir`,
/// opened for writing with `O_DIRECT` if `direct`.
pub fn prepare(fs: &dyn Fs, dir: &Path, number: u64, size: u64, direct: bool) -> Result<Segment> {
    let tmp = dir.join(format!("{number:06}.log.tmp"));
    let path = dir.join(segment_name(number));
    if fs.exists(&tmp) {
        fs.remove(&tmp)?;
    }
    let file = fs.open(&tmp, OpenOptions::create_new().with_direct())?;
    let zeros = AlignedBuf::with_capacity(ZERO_CHUNK_BYTES);
    let zero_block = zeros.full();
    let mut off = 0u64;
    let filled = (|| {
        while off < size {
            let n = (size - off).min(zero_block.len() as u64) as usize;
            file.write_at(&zero_block[..n], off)?;
            off += n as u64;
        }
        file.sync_data()
    })();
    if let Err(e) = filled {
        // Give the space back at once (a full disk is the usual cause);
        // if even that fails, the next open removes the temporary file.
        drop(file);
        let _ = fs.remove(&tmp);
        return Err(e);
    }
    drop(file);
    fs.rename(&tmp, &path)?;
    fs.sync_dir(dir)?;
    let mut opts = OpenOptions::write_create();
    opts.direct = direct;
    let file = fs.open(&path, opts)?;
    Ok(Segment { number, file, size })
}

/// Prepares segments on a background thread, one at a time, when asked.
///
/// The writer asks for the next segment as soon as it knows one will be
/// needed (when it starts writing into a segment) and takes it at the
/// roll-over, so the zero-filling runs while the log is written. A log at
/// rest asks for nothing, so no spare segment sits on disk.
#[derive(Debug)]
pub struct Preparer {
    requests: Sender<u64>,
    rx: Receiver<Result<Segment>>,
    /// A request has been sent and its segment not yet taken.
    outstanding: bool,
    handle: Option<JoinHandle<()>>,
}

impl Preparer {
    /// Starts the thread; it prepares nothing until asked.
    pub fn start(
        fs: Arc<dyn Fs>,
        dir: PathBuf,
        next_file: Arc<AtomicU64>,
        direct: bool,
    ) -> Result<Self> {
        let (requests, req_rx) = channel::<u64>();
        let (tx, rx) = sync_channel::<Result<Segment>>(1);
        let handle = std::thread::Builder::new()
            .name("cityhall-wal-prep".into())
            .spawn(move || prepare_loop(&*fs, &dir, &next_file, direct, &req_rx, &tx))
            .map_err(|e| Error::io("spawn thread", Path::new("cityhall-wal-prep"), e))?;
        Ok(Preparer {
            requests,
            rx,
            outstanding: false,
            handle: Some(handle),
        })
    }

    /// Asks for a segment of `size` bytes unless one is already asked for.
    pub fn request(&mut self, size: u64) {
        if !self.outstanding {
            // A send fails only when the thread has stopped after an
            // error; `take` then reports it.
            let _ = self.requests.send(size);
            self.outstanding = true;
        }
    }

    /// The requested segment (asking for one of `size` bytes if nothing
    /// was asked for); waits until it is ready.
    pub fn take(&mut self, size: u64) -> Result<Segment> {
        self.request(size);
        self.outstanding = false;
        self.rx.recv().unwrap_or_else(|_| {
            Err(Error::Poisoned(
                "WAL segment preparer stopped after an earlier error".into(),
            ))
        })
    }

    /// The segment asked for and not taken, if any (waits for it). The
    /// caller removes it: it never joined the log.
    pub fn take_unused(&mut self) -> Option<Result<Segment>> {
        if !self.outstanding {
            return None;
        }
        self.outstanding = false;
        Some(self.rx.recv().unwrap_or_else(|_| {
            Err(Error::Poisoned(
                "WAL segment preparer stopped after an earlier error".into(),
            ))
        }))
    }
}

fn prepare_loop(
    fs: &dyn Fs,
    dir: &Path,
    next_file: &AtomicU64,
    direct: bool,
    requests: &Receiver<u64>,
    tx: &SyncSender<Result<Segment>>,
) {
    while let Ok(size) = requests.recv() {
        let number = next_file.fetch_add(1, Ordering::SeqCst);
        let seg = prepare(fs, dir, number, size, direct);
        let failed = seg.is_err();
        if tx.send(seg).is_err() || failed {
            // The writer is gone, or the disk failed: a file left behind
            // under its temporary name is removed at the next open.
            return;
        }
    }
}

impl Drop for Preparer {
    fn drop(&mut self) {
        // Closing the request channel stops the thread once it has handed
        // over what it was preparing (the hand-over has room for one): an
        // unused segment is empty and is removed at the next open.
        let (dead, _) = channel();
        drop(std::mem::replace(&mut self.requests, dead));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
