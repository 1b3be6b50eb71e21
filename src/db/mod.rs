//! [`Db`]: the engine's public face.
//!
//! Writes go through the group-commit queue to the log owner
//! ([`commit`]); reads take the published sequence as their snapshot and
//! look in the active memtable, then the frozen ones newest first. Opening
//! and recovery live in [`open`].
//!
//! `Db` is a cheap handle (`Clone`, `Send`, `Sync`); the database closes
//! when [`Db::close`] is called or the last handle is dropped.

mod commit;
mod compact;
pub mod completion;
mod flush;
mod futex;
mod open;
mod version;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

pub use completion::WriteFuture;

use crate::batch::WriteBatch;
use crate::error::{Error, Result};
use crate::io::{Backend, Fs, LockGuard};
use crate::iter::EntryIter;
use crate::manifest::{ManifestWriter, TableEntry, VersionEdit};
use crate::memtable::Memtable;
use crate::merge::{MergingIter, UserIter};
use crate::metrics::{Counter, Histogram, MetricsSnapshot};
use crate::options::Options;
use crate::sstable::{BlockCache, Table};
use crate::types::{SeqNo, ValueKind};
use commit::{LogState, PendingWrite, QueueState};
use completion::Completion;
use version::Version;

/// The engine's counters and histograms.
#[derive(Debug, Default)]
pub struct DbMetrics {
    /// Operations (puts and deletes) written.
    pub writes: Counter,
    /// Write groups committed.
    pub wal_groups: Counter,
    /// Writes (batches) per group.
    pub wal_group_writes: Histogram,
    /// Latency of a group's write + sync, microseconds.
    pub wal_sync_latency_us: Histogram,
    /// Bytes appended to the WAL (before block padding).
    pub wal_bytes: Counter,
    /// Segments rolled over.
    pub wal_segments_rolled: Counter,
    /// Write groups refused for want of space for a new WAL segment.
    pub wal_groups_refused_disk_full: Counter,
    /// Time from enqueue to acknowledgement, microseconds.
    pub write_latency_us: Histogram,
    /// Point reads.
    pub gets: Counter,
    /// Memtables flushed.
    pub flushes: Counter,
    /// Bytes of tables written by flushes.
    pub flush_bytes: Counter,
    /// Time to flush one memtable, microseconds.
    pub flush_latency_us: Histogram,
    /// Compactions that rewrote tables.
    pub compactions: Counter,
    /// Compactions done by a manifest edit alone.
    pub compaction_trivial_moves: Counter,
    /// Bytes of tables read by compactions.
    pub compaction_bytes_read: Counter,
    /// Bytes of tables written by compactions.
    pub compaction_bytes_written: Counter,
    /// Versions and tombstones compactions dropped.
    pub compaction_entries_dropped: Counter,
    /// Time of one compaction, microseconds.
    pub compaction_latency_us: Histogram,
    /// Idle compactions run (everything above the last level compacted
    /// into it once the writes paused).
    pub compaction_idle_runs: Counter,
    /// Write groups delayed because level 0 or the compaction debt grew.
    pub write_slowdowns: Counter,
    /// Time spent delayed, microseconds.
    pub write_slowdown_us: Counter,
    /// Times writes stopped until compaction caught up.
    pub write_stops: Counter,
    /// Time spent stopped, microseconds.
    pub write_stop_us: Counter,
    /// Replaced table files that could not be deleted (left for next open).
    pub obsolete_delete_errors: Counter,
    /// Writes stalled because frozen memtables were waiting to be flushed.
    pub write_stalls: Counter,
    /// Time spent stalled, microseconds.
    pub write_stall_us: Counter,
}

/// The memtables.
#[derive(Debug)]
pub(crate) struct MemState {
    active: Arc<Memtable>,
    /// Frozen memtables, newest first.
    immutables: VecDeque<Arc<Memtable>>,
}

/// State shared by the handles and the background threads.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) opts: Options,
    pub(crate) dir: PathBuf,
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) mem: RwLock<MemState>,
    pub(crate) version: RwLock<Arc<Version>>,
    /// Compaction bookkeeping (plans in flight, replaced tables).
    pub(crate) compact: Mutex<compact::CompactState>,
    /// Signalled when the version changes (work for compaction, room for
    /// stopped writers).
    pub(crate) compact_cv: Condvar,
    /// The write-stall state (`compact::STALL_*`).
    pub(crate) stall: std::sync::atomic::AtomicU8,
    /// Sequences of live snapshots, with how many hold each.
    pub(crate) snapshots: Mutex<std::collections::BTreeMap<SeqNo, usize>>,
    pub(crate) cache: Arc<BlockCache>,
    pub(crate) manifest: Mutex<Option<ManifestWriter>>,
    /// Signalled when a memtable is frozen (work for the flusher).
    flush_cv: Condvar,
    /// Signalled when a frozen memtable is flushed away, or on close.
    pub(crate) mem_cv: Condvar,
    mem_cv_lock: Mutex<()>,
    /// The newest sequence visible to reads.
    pub(crate) visible_seq: AtomicU64,
    pub(crate) next_file: Arc<AtomicU64>,
    pub(crate) queue: Mutex<QueueState>,
    pub(crate) queue_cv: Condvar,
    /// Blocking writers sleep here until their group is committed.
    pub(crate) epoch: futex::Epoch,
    /// Requests to the waker thread.
    pub(crate) wake_requests: futex::WakeRequests,
    /// The WAL, held by the current leader.
    log: Mutex<Option<LogState>>,
    poison: Mutex<Option<String>>,
    pub(crate) metrics: DbMetrics,
    closing: AtomicBool,
    started: Instant,
}

impl Shared {
    pub(crate) fn lock_queue(&self) -> MutexGuard<'_, QueueState> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Locks the WAL state. Only the leader (see `commit`) calls this, so
    /// it is uncontended.
    pub(crate) fn lock_log(&self) -> LogGuard<'_> {
        LogGuard(self.log.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Whether WAL segments are written with `O_DIRECT`: in the relaxed
    /// mode writes go to the page cache, as Redis's `everysec` does, and
    /// only the periodic sync touches the device.
    pub(crate) fn wal_direct(&self) -> bool {
        self.opts.durability == crate::options::Durability::Sync
    }

    pub(crate) fn poisoned(&self) -> Option<String> {
        self.poison
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A file the database no longer needs (a WAL segment, a replaced
    /// table, an unused spare segment) could not be removed: nothing is
    /// lost (the next open removes what no manifest names), so it is
    /// counted in `db.obsolete_delete_errors` and said on stderr, and the
    /// database goes on.
    pub(crate) fn obsolete_delete_failed(&self, what: &Path, e: &Error) {
        self.metrics.obsolete_delete_errors.inc();
        eprintln!(
            "cityhall: warning: cannot remove {} (no longer needed; the next open retries): {e}",
            what.display()
        );
    }

    /// Records the first failure; later writes are refused with it.
    pub(crate) fn poison(&self, e: &Error) {
        let mut p = self.poison.lock().unwrap_or_else(|p| p.into_inner());
        if p.is_none() {
            *p = Some(e.to_string());
        }
    }

    pub(crate) fn active_memtable(&self) -> Arc<Memtable> {
        Arc::clone(&self.mem.read().unwrap_or_else(|p| p.into_inner()).active)
    }

    fn memtables(&self) -> (Arc<Memtable>, Vec<Arc<Memtable>>) {
        let m = self.mem.read().unwrap_or_else(|p| p.into_inner());
        (
            Arc::clone(&m.active),
            m.immutables.iter().map(Arc::clone).collect(),
        )
    }

    /// Freezes the active memtable; the new one starts in WAL segment
    /// `segment`.
    pub(crate) fn freeze_active(&self, segment: u64) {
        {
            let mut m = self.mem.write().unwrap_or_else(|p| p.into_inner());
            let old = std::mem::replace(
                &mut m.active,
                Arc::new(Memtable::with_index(
                    segment,
                    self.opts.memtable_size_bytes_max,
                )),
            );
            m.immutables.push_front(old);
        }
        let _g = self.mem_cv_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.flush_cv.notify_all();
    }

    /// Wakes threads waiting on memtable changes.
    pub(crate) fn notify_mem(&self) {
        {
            let _g = self.mem_cv_lock.lock().unwrap_or_else(|p| p.into_inner());
            self.mem_cv.notify_all();
            self.flush_cv.notify_all();
        }
        let _c = self.compact.lock().unwrap_or_else(|p| p.into_inner());
        self.compact_cv.notify_all();
    }

    /// The oldest frozen memtable, waiting for one; `None` on close.
    pub(crate) fn wait_for_flush_work(&self) -> Option<Arc<Memtable>> {
        let mut g = self.mem_cv_lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if self.closing.load(Ordering::Acquire) {
                return None;
            }
            if let Some(m) = self
                .mem
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .immutables
                .back()
            {
                return Some(Arc::clone(m));
            }
            g = self
                .flush_cv
                .wait_timeout(g, std::time::Duration::from_millis(200))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// The first WAL segment still needed once `flushed` is gone.
    pub(crate) fn log_number_after_flush(&self, flushed: &Arc<Memtable>) -> u64 {
        let m = self.mem.read().unwrap_or_else(|p| p.into_inner());
        m.immutables
            .iter()
            .rev()
            .find(|x| !Arc::ptr_eq(x, flushed))
            .unwrap_or(&m.active)
            .wal_segment_first()
    }

    /// Appends an edit to the manifest and syncs it.
    pub(crate) fn log_edit(&self, edit: &VersionEdit) -> Result<()> {
        let mut g = self.manifest.lock().unwrap_or_else(|p| p.into_inner());
        match g.as_mut() {
            Some(w) => w.append(edit),
            None => Err(Error::Closed),
        }
    }

    /// Makes a new level-0 table visible to reads.
    pub(crate) fn install_l0(&self, entry: TableEntry, table: Arc<Table>) {
        self.install_changes(&[], vec![(entry, table)]);
    }

    /// Installs the current version less `removed`, plus `added`. Only the
    /// flush and compaction paths call this, each after its manifest edit
    /// is durable; they serialise on the manifest lock.
    pub(crate) fn install_changes(&self, removed: &[(u32, u64)], added: Vec<version::LiveTable>) {
        let _m = self.manifest.lock().unwrap_or_else(|p| p.into_inner());
        let next = self.current_version().with_changes(removed, added);
        self.install_version(next);
    }

    /// Drops a flushed memtable and wakes stalled writers.
    pub(crate) fn drop_flushed(&self, flushed: &Arc<Memtable>) {
        {
            let mut m = self.mem.write().unwrap_or_else(|p| p.into_inner());
            m.immutables.retain(|x| !Arc::ptr_eq(x, flushed));
        }
        self.notify_mem();
    }

    pub(crate) fn current_version(&self) -> Arc<Version> {
        Arc::clone(&self.version.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Blocks the log owner while the frozen memtables are at their bound,
    /// counting the stall.
    pub(crate) fn wait_for_immutable_room(&self) -> Result<()> {
        let max = self.opts.immutable_memtables_max.max(1);
        let full = || {
            self.mem
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .immutables
                .len()
                >= max
        };
        if !full() {
            return Ok(());
        }
        let start = Instant::now();
        self.metrics.write_stalls.inc();
        let mut g = self.mem_cv_lock.lock().unwrap_or_else(|p| p.into_inner());
        while full() {
            if self.closing.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            if let Some(reason) = self.poisoned() {
                return Err(Error::Poisoned(reason));
            }
            g = self
                .mem_cv
                .wait_timeout(g, std::time::Duration::from_millis(100))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        self.metrics
            .write_stall_us
            .add(start.elapsed().as_micros() as u64);
        Ok(())
    }
}

/// The locked WAL state; present from open until close.
pub(crate) struct LogGuard<'a>(MutexGuard<'a, Option<LogState>>);

impl std::ops::Deref for LogGuard<'_> {
    type Target = LogState;
    fn deref(&self) -> &LogState {
        match self.0.as_ref() {
            Some(s) => s,
            None => unreachable_log_state(),
        }
    }
}

impl std::ops::DerefMut for LogGuard<'_> {
    fn deref_mut(&mut self) -> &mut LogState {
        match self.0.as_mut() {
            Some(s) => s,
            None => unreachable_log_state(),
        }
    }
}

fn unreachable_log_state() -> ! {
    panic!("WAL state used after close: a leader ran after the log thread exited")
}

struct Inner {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Stopped after the others: writers may wait on it until the end.
    waker: Mutex<Option<JoinHandle<()>>>,
    lock: Mutex<Option<Box<dyn LockGuard>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl Inner {
    fn close(&self) -> Result<()> {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.lock_queue().closing = true;
        self.shared.queue_cv.notify_all();
        self.shared.notify_mem();
        let threads: Vec<_> = self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for t in threads {
            let _ = t.join();
        }
        self.shared.wake_requests.stop();
        if let Some(w) = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = w.join();
        }
        if let Some(mut log) = self
            .shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            log.shut_down(&self.shared);
        }
        compact::delete_obsolete(&self.shared);
        self.shared
            .manifest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.lock.lock().unwrap_or_else(|p| p.into_inner()).take();
        match self.shared.poisoned() {
            Some(reason) => Err(Error::Poisoned(reason)),
            None => Ok(()),
        }
    }
}

/// A point-in-time view of the database. Reads through it see exactly the
/// writes acknowledged before it was taken.
#[derive(Clone, Debug)]
pub struct Snapshot {
    db: Db,
    seq: SeqNo,
    _registration: Arc<SnapshotRegistration>,
}

/// Keeps a snapshot's sequence in the live set (which compaction honours)
/// until the last clone of the snapshot is dropped.
#[derive(Debug)]
struct SnapshotRegistration {
    shared: Arc<Shared>,
    seq: SeqNo,
}

impl Drop for SnapshotRegistration {
    fn drop(&mut self) {
        let mut live = self
            .shared
            .snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = live.get_mut(&self.seq) {
            *n -= 1;
            if *n == 0 {
                live.remove(&self.seq);
            }
        }
    }
}

impl Snapshot {
    /// The sequence number the view is at.
    pub fn sequence(&self) -> SeqNo {
        self.seq
    }

    /// The value of `key` in this view.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_at(key, self.seq)
    }

    /// Like [`Db::scan`], in this view.
    pub fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.db.scan_at(start, end, limit, self.seq)
    }
}

/// A CityHall database.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dir", &self.inner.shared.dir)
            .finish()
    }
}

impl Db {
    /// Opens (creating if allowed) the database in `dir`, recovering from
    /// the WAL whatever the last run left.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Db> {
        open::open(dir.as_ref(), options)
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Sets `key` to `value`; returns once durable (per the durability mode).
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut b = WriteBatch::new();
        b.put(key, value);
        self.write(b)
    }

    /// Deletes `key`; returns once durable.
    pub fn delete(&self, key: &[u8]) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete(key);
        self.write(b)
    }

    /// Applies a batch atomically; returns once durable.
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        match self.enqueue(batch, true, false)? {
            Some(done) => commit::write_blocking(self.shared(), &done),
            None => Ok(()),
        }
    }

    /// Applies a batch atomically; the future resolves once durable. The
    /// log owner wakes it, so an async caller never blocks its thread.
    pub fn write_async(&self, batch: WriteBatch) -> WriteFuture {
        match self.enqueue(batch, false, false) {
            Ok(Some(done)) => WriteFuture::waiting(done),
            Ok(None) => WriteFuture::ready(Ok(())),
            Err(e) => WriteFuture::ready(Err(e)),
        }
    }

    fn enqueue(
        &self,
        batch: WriteBatch,
        blocking: bool,
        freeze: bool,
    ) -> Result<Option<Arc<Completion>>> {
        let s = self.shared();
        let o = &s.opts;
        batch.validate(
            o.key_size_bytes_max,
            o.value_size_bytes_max,
            o.batch_size_bytes_max,
        )?;
        if batch.is_empty() && !freeze {
            return Ok(None);
        }
        let record = batch.encoded_size_max() + crate::wal::format::HEADER_LEN;
        if record as u64 > o.wal_segment_size_bytes {
            return Err(Error::LimitExceeded {
                what: format!(
                    "batch of {record} bytes does not fit in a WAL segment of {} bytes \
                     (wal_segment_size_bytes)",
                    o.wal_segment_size_bytes
                ),
            });
        }
        if let Some(reason) = s.poisoned() {
            return Err(Error::Poisoned(reason));
        }
        let done = Arc::new(Completion::default());
        let notify = {
            let mut q = s.lock_queue();
            if q.closing {
                return Err(Error::Closed);
            }
            q.pending.push_back(PendingWrite {
                batch,
                freeze,
                done: Arc::clone(&done),
                queued_at: Instant::now(),
            });
            // Wake the log thread if no one leads and this writer will not
            // lead itself.
            !q.leader_active && !blocking
        };
        if notify {
            s.queue_cv.notify_all();
        }
        Ok(Some(done))
    }

    /// Writes the active memtable (if it holds anything) and every frozen
    /// one to tables, and returns once they are installed.
    pub fn flush(&self) -> Result<()> {
        let s = self.shared();
        if let Some(done) = self.enqueue(WriteBatch::new(), true, true)? {
            commit::write_blocking(s, &done)?;
        }
        let mut g = s.mem_cv_lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(reason) = s.poisoned() {
                return Err(Error::Poisoned(reason));
            }
            if s.closing.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            if s.mem
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .immutables
                .is_empty()
            {
                return Ok(());
            }
            g = s
                .mem_cv
                .wait_timeout(g, std::time::Duration::from_millis(50))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Flushes the memtables, then compacts every table holding user keys
    /// in `[start, end]` (`None`: unbounded) down to the bottom of the
    /// range, dropping shadowed versions and tombstones no snapshot needs.
    /// Returns when done, like `ldb compact`.
    pub fn compact_range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<()> {
        self.flush()?;
        compact::compact_range(self.shared(), start, end).map(|_| ())
    }

    /// The newest value of `key`, if any.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let s = self.shared();
        s.metrics.gets.inc();
        let snapshot = s.visible_seq.load(Ordering::Acquire);
        self.get_at(key, snapshot)
    }

    fn check_open(&self) -> Result<()> {
        if self.shared().closing.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn get_at(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Vec<u8>>> {
        self.check_open()?;
        // Memtables first, then tables: a flush installs the table before
        // it drops the memtable, so this order never misses an entry.
        let (active, immutables) = self.shared().memtables();
        let version = self.shared().current_version();
        let found = |r: Option<(ValueKind, Vec<u8>)>| {
            r.map(|(kind, value)| match kind {
                ValueKind::Put => Some(value),
                ValueKind::Delete => None,
            })
        };
        for mem in std::iter::once(&active).chain(immutables.iter()) {
            if let Some(v) = found(mem.get(key, snapshot)) {
                return Ok(v);
            }
        }
        Ok(found(version.get(key, snapshot)?).flatten())
    }

    /// Up to `limit` live pairs with `start <= key < end` (no end: to the
    /// last key), in key order, as of one point in time.
    pub fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let snapshot = self.shared().visible_seq.load(Ordering::Acquire);
        self.scan_at(start, end, limit, snapshot)
    }

    /// Up to `limit` live pairs whose key starts with `prefix`.
    pub fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let end = crate::types::prefix_successor(prefix);
        self.scan(prefix, end.as_deref(), limit)
    }

    fn scan_at(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        snapshot: SeqNo,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.check_open()?;
        let (active, immutables) = self.shared().memtables();
        let version = self.shared().current_version();
        let mut sources: Vec<Box<dyn EntryIter>> = Vec::with_capacity(8 + immutables.len());
        for mem in std::iter::once(&active).chain(immutables.iter()) {
            sources.push(Box::new(mem.iter()));
        }
        version.add_sources(start, &mut sources);
        let mut it = UserIter::new(MergingIter::new(sources), snapshot, end.map(<[u8]>::to_vec));
        it.seek_to_user_key(start)?;
        let mut out = Vec::new();
        while it.valid() && out.len() < limit {
            out.push((it.user_key().to_vec(), it.value().to_vec()));
            it.next()?;
        }
        Ok(out)
    }

    /// A consistent read view: later writes are invisible to it.
    pub fn snapshot(&self) -> Snapshot {
        let shared = &self.inner.shared;
        let seq = {
            let mut live = shared.snapshots.lock().unwrap_or_else(|p| p.into_inner());
            let seq = shared.visible_seq.load(Ordering::Acquire);
            *live.entry(seq).or_insert(0) += 1;
            seq
        };
        Snapshot {
            db: self.clone(),
            seq,
            _registration: Arc::new(SnapshotRegistration {
                shared: Arc::clone(shared),
                seq,
            }),
        }
    }

    /// The newest sequence number visible to reads.
    pub fn last_sequence(&self) -> SeqNo {
        self.shared().visible_seq.load(Ordering::Acquire)
    }

    /// Which IO implementation serves the database.
    pub fn backend(&self) -> Backend {
        self.shared().fs.backend()
    }

    /// The reason the database refuses writes, if it does.
    pub fn poisoned(&self) -> Option<String> {
        self.shared().poisoned()
    }

    /// The engine's metrics.
    pub fn metrics(&self) -> MetricsSnapshot {
        let s = self.shared();
        let m = &s.metrics;
        let mut out = MetricsSnapshot::default();
        out.counter("db.writes", m.writes.get());
        out.counter("db.gets", m.gets.get());
        out.histogram("db.write_latency_us", &m.write_latency_us);
        out.counter("wal.groups", m.wal_groups.get());
        out.histogram("wal.group_writes", &m.wal_group_writes);
        out.histogram("wal.sync_latency_us", &m.wal_sync_latency_us);
        out.counter("wal.bytes", m.wal_bytes.get());
        out.counter("wal.segments_rolled", m.wal_segments_rolled.get());
        out.counter(
            "wal.groups_refused_disk_full",
            m.wal_groups_refused_disk_full.get(),
        );
        out.counter("write.stalls", m.write_stalls.get());
        out.counter("write.stall_us", m.write_stall_us.get());
        let (active, imms) = s.memtables();
        out.gauge("memtable.active_bytes", active.size_bytes() as f64);
        out.gauge("memtable.immutable_count", imms.len() as f64);
        out.gauge(
            "memtable.immutable_bytes",
            imms.iter().map(|m| m.size_bytes()).sum::<usize>() as f64,
        );
        out.gauge(
            "memtable.index_bytes",
            std::iter::once(&active)
                .chain(imms.iter())
                .map(|m| m.index_size_bytes())
                .sum::<usize>() as f64,
        );
        out.gauge(
            "memtable.index_complete",
            if active.index_complete() { 1.0 } else { 0.0 },
        );
        out.counter("flush.count", m.flushes.get());
        out.counter("flush.bytes", m.flush_bytes.get());
        out.histogram("flush.latency_us", &m.flush_latency_us);
        let version = s.current_version();
        let mut table_bytes = 0u64;
        let mut last_level_bytes = 0u64;
        for level in 0..version::NUM_LEVELS {
            let bytes = version.bytes(level);
            out.gauge(format!("level{level}.files"), version.files(level) as f64);
            out.gauge(format!("level{level}.bytes"), bytes as f64);
            table_bytes += bytes;
            if bytes > 0 {
                last_level_bytes = bytes;
            }
        }
        out.counter("compaction.count", m.compactions.get());
        out.counter("db.obsolete_delete_errors", m.obsolete_delete_errors.get());
        out.counter("compaction.trivial_moves", m.compaction_trivial_moves.get());
        out.counter("compaction.bytes_read", m.compaction_bytes_read.get());
        out.counter("compaction.bytes_written", m.compaction_bytes_written.get());
        out.counter(
            "compaction.entries_dropped",
            m.compaction_entries_dropped.get(),
        );
        out.histogram("compaction.latency_us", &m.compaction_latency_us);
        out.counter("compaction.idle_runs", m.compaction_idle_runs.get());
        out.gauge(
            "compaction.running",
            if compact::compaction_running(s) {
                1.0
            } else {
                0.0
            },
        );
        out.counter("write.slowdowns", m.write_slowdowns.get());
        out.counter("write.slowdown_us", m.write_slowdown_us.get());
        out.counter("write.stops", m.write_stops.get());
        out.counter("write.stop_us", m.write_stop_us.get());
        let user_bytes = m.wal_bytes.get().max(1);
        let disk_written =
            m.wal_bytes.get() + m.flush_bytes.get() + m.compaction_bytes_written.get();
        out.gauge(
            "db.write_amplification",
            disk_written as f64 / user_bytes as f64,
        );
        // Like RocksDB's estimate: all table bytes over the bytes of the
        // deepest non-empty level, which holds (nearly) one version of each
        // key once compaction has caught up.
        out.gauge(
            "db.space_amplification",
            if last_level_bytes == 0 {
                1.0
            } else {
                table_bytes as f64 / last_level_bytes as f64
            },
        );
        out.gauge("db.table_bytes", table_bytes as f64);
        s.cache.report(&mut out);
        out.gauge(
            "db.last_sequence",
            s.visible_seq.load(Ordering::Acquire) as f64,
        );
        out.gauge(
            "db.poisoned",
            if s.poisoned().is_some() { 1.0 } else { 0.0 },
        );
        out.gauge("db.uptime_seconds", s.started.elapsed().as_secs_f64());
        out
    }

    /// The engine histogram named `name` (as in [`Db::metrics`]) as
    /// recorded `(value, count)` pairs (see
    /// [`crate::metrics::Histogram::recorded`]), for figures per interval.
    pub fn histogram_recorded(&self, name: &str) -> Option<Vec<(u64, u64)>> {
        let m = &self.shared().metrics;
        let h = match name {
            "db.write_latency_us" => &m.write_latency_us,
            "wal.group_writes" => &m.wal_group_writes,
            "wal.sync_latency_us" => &m.wal_sync_latency_us,
            "flush.latency_us" => &m.flush_latency_us,
            "compaction.latency_us" => &m.compaction_latency_us,
            _ => return None,
        };
        Some(h.recorded())
    }

    /// Stops the background threads after the queued writes, syncs, and
    /// releases the directory lock. Later calls on any handle fail with
    /// `Error::Closed`. Reports the poison reason if a write had failed.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}
