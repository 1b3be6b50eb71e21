//! Group commit: the write queue, the leader, and the log thread.
//!
//! Writers push a batch and a [`Completion`] onto the queue. Exactly one
//! thread at a time is the *leader* and owns the WAL ([`LogState`]): it
//! drains everything queued (up to `wal_group_size_bytes_max`), gives the
//! group its sequence numbers, inserts it into the active memtable
//! (invisible: reads only see sequence numbers that have been published),
//! writes the group as one submission linked with its fdatasync, then
//! publishes the group's last sequence and wakes every waiter. While it
//! syncs, the next group queues up.
//!
//! Who leads: a blocking writer that finds no leader leads itself, so a
//! lone writer pays for its sync and nothing else (no thread hand-off).
//! Once its own write is done it hands leadership to the log thread if
//! more writes wait. Async writers (the server) never block their thread:
//! if no leader is active they wake the log thread, which leads for as
//! long as the queue is not empty. The log thread also runs the periodic
//! sync of the relaxed durability mode.
//!
//! A failed write or sync poisons the database: the group and every later
//! write get an error that says why, and nothing is retried as if it had
//! succeeded. One failure is not a failed write of the log: a full disk
//! while preparing the next segment (a new file, zero-filled under a
//! temporary name before it joins the log). Then the log is as it was,
//! synced; the group is refused with the disk-full error, the database is
//! not poisoned, reads go on, and a later write tries again (preparing
//! segments inline from then on), so writes resume when space returns.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::completion::Completion;
use super::Shared;
use crate::batch::{BatchOp, WriteBatch};
use crate::error::{Error, Result};
use crate::memtable::Memtable;
use crate::options::{Durability, Options};
use crate::types::ValueKind;
use crate::wal::format::HEADER_LEN;
use crate::wal::segment::{self, Preparer, Segment};
use crate::wal::writer::LogWriter;

/// A write waiting for the leader.
#[derive(Debug)]
pub struct PendingWrite {
    pub batch: WriteBatch,
    /// Freeze the active memtable (for a flush) even if it is not full.
    pub freeze: bool,
    pub done: Arc<Completion>,
    pub queued_at: Instant,
}

/// The queue between writers and the leader.
#[derive(Debug, Default)]
pub struct QueueState {
    pub pending: VecDeque<PendingWrite>,
    /// Some thread is leading (owns [`LogState`]).
    pub leader_active: bool,
    pub closing: bool,
}

/// Where the leader gets its next segment.
#[derive(Debug)]
pub enum SegmentSource {
    /// A background thread keeps one ready.
    Background(Preparer),
    /// Prepared on the spot (deterministic; used with the simulated FS).
    Inline,
}

/// The WAL and sequence counter, owned by whoever leads.
#[derive(Debug)]
pub struct LogState {
    log: LogWriter,
    source: SegmentSource,
    next_seq: u64,
    payload: Vec<u8>,
    last_sync: Instant,
    group: Vec<PendingWrite>,
    /// The current group failed before any of it reached the log, for want
    /// of space for a new segment: refuse it without poisoning.
    refused: bool,
    /// Writes in the last group committed.
    last_group_writes: usize,
    /// Groups the log thread still commits without gathering.
    gather_backoff: u32,
}

impl LogState {
    pub fn new(log: LogWriter, source: SegmentSource, last_seq: u64) -> Self {
        LogState {
            log,
            source,
            next_seq: last_seq + 1,
            payload: Vec::new(),
            last_sync: Instant::now(),
            group: Vec::new(),
            refused: false,
            last_group_writes: 0,
            gather_backoff: 0,
        }
    }

    /// Syncs what relaxed mode left unsynced, stops the preparer and
    /// removes the spare segment it prepared.
    pub fn shut_down(&mut self, shared: &Shared) {
        if let Err(e) = self.log.sync() {
            shared.poison(&e);
        }
        discard_spare(shared, &mut self.source);
        self.source = SegmentSource::Inline;
    }
}

/// Removes the segment the preparer readied and the log did not take. It
/// never joined the log, so nothing depends on it; should the removal
/// fail, the next open removes it (an unwritten segment), and the failure
/// is counted.
fn discard_spare(shared: &Shared, source: &mut SegmentSource) {
    let SegmentSource::Background(p) = source else {
        return;
    };
    match p.take_unused() {
        Some(Ok(seg)) => {
            let path = seg.file.path().to_path_buf();
            drop(seg);
            if let Err(e) = shared.fs.remove(&path) {
                shared.obsolete_delete_failed(&path, &e);
            }
        }
        // The preparer failed (a full disk): nothing to remove, and the
        // next roll-over prepares inline and reports the error.
        Some(Err(_)) => *source = SegmentSource::Inline,
        None => {}
    }
}

fn relaxed_interval(shared: &Shared) -> Option<Duration> {
    match shared.opts.durability {
        Durability::Relaxed { interval_ms } => Some(Duration::from_millis(interval_ms.max(1))),
        Durability::Sync => None,
    }
}

/// Called by a blocking writer after enqueueing `done`: leads if no one
/// does, otherwise waits.
pub fn write_blocking(shared: &Shared, done: &Completion) -> Result<()> {
    {
        let mut q = shared.lock_queue();
        if q.leader_active {
            drop(q);
            return done.wait(&shared.epoch);
        }
        q.leader_active = true;
    }
    lead(shared, Some(done));
    done.wait(&shared.epoch)
}

/// Leads until `own` is complete (or, for the log thread, the queue is
/// empty), then gives up leadership, handing it to the log thread if more
/// writes wait.
fn lead(shared: &Shared, own: Option<&Completion>) {
    let mut state = shared.lock_log();
    loop {
        let own_done = own.is_some_and(|c| c.is_complete());
        let mut q = shared.lock_queue();
        if q.pending.is_empty() || own_done {
            q.leader_active = false;
            let wake = !q.pending.is_empty() || q.closing;
            drop(q);
            if wake {
                shared.queue_cv.notify_all();
            }
            return;
        }
        let expect = state.last_group_writes;
        if expect > 1 && q.pending.len() < expect && shared.opts.durability == Durability::Sync {
            if own.is_none() && state.gather_backoff > 0 {
                state.gather_backoff -= 1;
            } else {
                let queued = q.pending.len();
                drop(q);
                if !gather(shared, queued, expect) && own.is_none() {
                    state.gather_backoff = GATHER_BACKOFF_GROUPS;
                }
                q = shared.lock_queue();
            }
        }
        take_group(shared, &mut q, &mut state.group);
        drop(q);
        commit_group(shared, &mut state);
    }
}

/// Longest a leader waits for the writers of the last group to come back.
/// Woken writer threads queue their next writes one context switch after
/// another: 16 of them on 2 cores took longer than 50 us, and a 50 us wait
/// left groups of ~10 where 16 came back (`benches/write_path.rs`).
const GATHER_MAX: Duration = Duration::from_micros(200);

/// Groups the log thread commits without gathering after a gather that
/// was not worth its wait. Writers that come back only well after
/// [`GATHER_MAX`] (a server's clients at one request a connection, whose
/// answers and next requests cross the network) would only lose the wait
/// on every group; a gather now and then finds out whether they have
/// become quick again.
const GATHER_BACKOFF_GROUPS: u32 = 64;

/// Waits (yielding the CPU) until `expect` writes are queued or
/// [`GATHER_MAX`] has passed, `start` being queued when it begins.
/// Whether the wait was worth it: all came, or at least half of the
/// missing ones did.
fn gather(shared: &Shared, start: usize, expect: usize) -> bool {
    let deadline = Instant::now() + GATHER_MAX;
    loop {
        std::thread::yield_now();
        let queued = shared.lock_queue().pending.len();
        if queued >= expect {
            return true;
        }
        if Instant::now() >= deadline {
            return gather_paid_off(start, queued, expect);
        }
    }
}

/// Whether a gather that timed out was still worth its wait: at least half
/// of the writes missing when it began (`expect - start`) came.
fn gather_paid_off(start: usize, queued: usize, expect: usize) -> bool {
    2 * queued.saturating_sub(start) >= expect.saturating_sub(start)
}

fn take_group(shared: &Shared, q: &mut QueueState, group: &mut Vec<PendingWrite>) {
    // A group must fit in one segment (every single write does: enqueue
    // checks it).
    let max = shared
        .opts
        .wal_group_size_bytes_max
        .min(shared.opts.wal_segment_size_bytes as usize);
    let mut bytes = 0usize;
    while let Some(w) = q.pending.front() {
        let size = w.batch.encoded_size_max() + HEADER_LEN;
        if !group.is_empty() && bytes + size > max {
            break;
        }
        bytes += size;
        if let Some(w) = q.pending.pop_front() {
            group.push(w);
        }
    }
}

/// The log thread: leads whenever writes wait with no leader, and runs
/// the relaxed mode's periodic sync. Returns when the database closes.
pub fn log_thread(shared: Arc<Shared>) {
    let interval = relaxed_interval(&shared);
    let mut q = shared.lock_queue();
    loop {
        if !q.leader_active && !q.pending.is_empty() {
            q.leader_active = true;
            drop(q);
            lead(&shared, None);
            q = shared.lock_queue();
            continue;
        }
        if q.closing && q.pending.is_empty() && !q.leader_active {
            return;
        }
        match interval {
            Some(iv) => {
                let (g, timeout) = shared
                    .queue_cv
                    .wait_timeout(q, iv)
                    .unwrap_or_else(|p| p.into_inner());
                q = g;
                if timeout.timed_out() && !q.leader_active {
                    q.leader_active = true;
                    drop(q);
                    periodic_sync(&shared);
                    q = shared.lock_queue();
                    q.leader_active = false;
                }
            }
            None => q = shared.queue_cv.wait(q).unwrap_or_else(|p| p.into_inner()),
        }
    }
}

fn periodic_sync(shared: &Shared) {
    let mut state = shared.lock_log();
    if state.log.has_unsynced() {
        sync_now(shared, &mut state);
    }
}

fn sync_now(shared: &Shared, state: &mut LogState) {
    let start = Instant::now();
    match state.log.sync() {
        Ok(()) => shared.metrics.wal_sync_latency_us.record_since(start),
        Err(e) => shared.poison(&e),
    }
    state.last_sync = Instant::now();
}

fn commit_group(shared: &Shared, state: &mut LogState) {
    let result = write_group(shared, state);
    let m = &shared.metrics;
    let group = std::mem::take(&mut state.group);
    match result {
        Ok(()) => {
            state.last_group_writes = group.len();
            m.wal_groups.inc();
            m.wal_group_writes.record(group.len() as u64);
            for w in &group {
                m.write_latency_us.record_since(w.queued_at);
                w.done.complete(Ok(()));
            }
        }
        Err(e) if std::mem::take(&mut state.refused) => {
            m.wal_groups_refused_disk_full.inc();
            for w in &group {
                w.done.complete(Err(same_io_error(&e)));
            }
        }
        Err(e) => {
            shared.poison(&e);
            let reason = match &e {
                Error::Poisoned(r) => r.clone(),
                other => other.to_string(),
            };
            for w in &group {
                w.done.complete(Err(Error::Poisoned(reason.clone())));
            }
        }
    }
    if shared.epoch.advance() {
        shared.wake_requests.request();
    }
    state.group = group;
    state.group.clear();
    if let Some(iv) = relaxed_interval(shared) {
        if state.log.has_unsynced() && state.last_sync.elapsed() >= iv {
            sync_now(shared, state);
        }
    }
}

fn write_group(shared: &Shared, state: &mut LogState) -> Result<()> {
    if let Some(reason) = shared.poisoned() {
        return Err(Error::Poisoned(reason));
    }
    let bytes: u64 = state
        .group
        .iter()
        .map(|w| (w.batch.encoded_size_max() + HEADER_LEN) as u64)
        .sum();
    shared.throttle_writes()?;
    let force = state.group.iter().any(|w| w.freeze);
    maybe_freeze_memtable(shared, state, bytes, force)?;
    // A segment after a small one may still be too small for a group of
    // one large write (see `next_segment_size`); the next is larger, up
    // to a full one, which holds any group.
    while !state.log.fits(bytes) {
        roll(shared, state, SegmentKind::Full)?;
    }
    let first_seq = state.next_seq;
    let mut seq = first_seq;
    for w in state.group.iter().filter(|w| !w.batch.is_empty()) {
        state.payload.clear();
        w.batch.encode(seq, &mut state.payload);
        state.log.add_record(&state.payload)?;
        seq += w.batch.len() as u64;
    }
    state.next_seq = seq;
    if seq == first_seq {
        // Only flush requests: nothing to log.
        return Ok(());
    }
    // Writes have come: have the next segment readied while this one
    // fills (a no-op once asked).
    if let SegmentSource::Background(p) = &mut state.source {
        p.request(next_segment_size(&shared.opts, state.log.segment_size()));
    }
    let sync = shared.opts.durability == Durability::Sync;
    let start = Instant::now();
    // The device writes while the group goes into the memtable (invisible
    // until published below).
    let pending = state.log.commit_start(sync);
    let active = shared.active_memtable();
    apply_group(&active, first_seq, &state.group);
    state.log.commit_finish(pending)?;
    let m = &shared.metrics;
    if sync {
        m.wal_sync_latency_us.record_since(start);
        state.last_sync = Instant::now();
    }
    m.wal_bytes.add(bytes);
    m.writes.add(state.next_seq - first_seq);
    shared
        .visible_seq
        .store(state.next_seq - 1, Ordering::Release);
    Ok(())
}

/// An IO error like `e`, for each writer of a refused group.
fn same_io_error(e: &Error) -> Error {
    match e {
        Error::Io { op, path, source } => Error::Io {
            op,
            path: path.clone(),
            source: match source.raw_os_error() {
                Some(code) => std::io::Error::from_raw_os_error(code),
                None => std::io::Error::new(source.kind(), source.to_string()),
            },
        },
        other => Error::Poisoned(other.to_string()),
    }
}

/// Which segment a roll-over moves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SegmentKind {
    /// The next segment of a busy log: `wal_segment_size_bytes`, or on
    /// the way there from a small one (see `next_segment_size`).
    Full,
    /// A small `wal_idle_segment_size_bytes` one, after a manual flush:
    /// the log may now rest, and a log at rest should hold next to no
    /// disk space. The first write into it asks for the next one.
    Idle,
}

/// Moves to a fresh segment, syncing the old one first. No space for the
/// new segment refuses the group (see the module docs).
fn roll(shared: &Shared, state: &mut LogState, kind: SegmentKind) -> Result<()> {
    state.log.sync()?;
    let next = match next_segment(shared, state, kind) {
        Ok(next) => next,
        Err(e) if e.is_disk_full() => {
            // The preparer thread stops at its first error; prepare inline
            // from now on.
            state.source = SegmentSource::Inline;
            state.refused = true;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    state.log.switch_to(next);
    shared.metrics.wal_segments_rolled.inc();
    Ok(())
}

fn next_segment(shared: &Shared, state: &mut LogState, kind: SegmentKind) -> Result<Segment> {
    if kind == SegmentKind::Idle {
        // A spare segment must not outlive the busy spell; it also
        // holds a lower file number than the idle one, which must come
        // after every segment already in the log.
        discard_spare(shared, &mut state.source);
        return prepare_inline(shared, shared.opts.idle_wal_segment_size());
    }
    let size = next_segment_size(&shared.opts, state.log.segment_size());
    match &mut state.source {
        SegmentSource::Background(p) => p.take(size),
        SegmentSource::Inline => prepare_inline(shared, size),
    }
}

/// The size of the segment that follows one of `current` bytes: the full
/// `wal_segment_size_bytes`, except that a log waking from a small idle
/// segment grows toward it eightfold at a time. The first writes after an
/// open or a manual flush fill the idle segment (1 MiB) in a few
/// milliseconds, sooner than a full segment (64 MiB) is zero-filled, and
/// the roll-over would wait for the rest; 8 MiB is ready in time, and so
/// is the full one after it. Never smaller than a group of many writes can
/// be (`wal_group_size_bytes_max`); a group of one write larger than the
/// segment rolls on to the next, larger one (every write fits a full
/// segment: `Db` refuses larger ones).
fn next_segment_size(opts: &Options, current: u64) -> u64 {
    let full = opts.wal_segment_size_bytes;
    let block = crate::io::BLOCK_SIZE as u64;
    let group_max = (opts.wal_group_size_bytes_max as u64).min(full);
    let floor = group_max.div_ceil(block).saturating_mul(block);
    current.saturating_mul(8).max(floor).min(full)
}

fn prepare_inline(shared: &Shared, size: u64) -> Result<Segment> {
    let number = shared.next_file.fetch_add(1, Ordering::SeqCst);
    segment::prepare(&*shared.fs, &shared.dir, number, size, shared.wal_direct())
}

/// Freezes a full active memtable, stalling while too many frozen ones
/// wait for the flusher. The new memtable starts in a new segment so that
/// flushing a memtable frees whole segments.
fn maybe_freeze_memtable(
    shared: &Shared,
    state: &mut LogState,
    incoming: u64,
    force: bool,
) -> Result<()> {
    let limit = shared.opts.memtable_size_bytes_max;
    let active = shared.active_memtable();
    let full = active.size_bytes() + incoming as usize > limit;
    if active.is_empty() || !(full || force) {
        return Ok(());
    }
    shared.wait_for_immutable_room()?;
    // A flush asked for by hand (`Db::flush`, `compact_range`) is where a
    // log may come to rest: start over in a small segment (writes that go
    // on ask for the next one at once). A memtable that filled up by itself
    // means the log is busy.
    let kind = if force {
        SegmentKind::Idle
    } else {
        SegmentKind::Full
    };
    roll(shared, state, kind)?;
    shared.freeze_active(state.log.segment_number());
    Ok(())
}

/// Keys ahead of the insert whose index slot is being loaded, and (half
/// as far) whose newest entry is.
const PREFETCH_SLOTS_AHEAD: usize = 16;
const PREFETCH_ENTRIES_AHEAD: usize = PREFETCH_SLOTS_AHEAD / 2;

/// Inserts a group's writes into `mem`, numbering from `first_seq`. Each
/// insert's first cache misses (its index slot, then the entry that slot
/// holds) are started some keys early, so a group's misses overlap.
fn apply_group(mem: &Memtable, first_seq: u64, group: &[PendingWrite]) {
    fn key(op: &BatchOp) -> &[u8] {
        match op {
            BatchOp::Put { key, .. } | BatchOp::Delete { key } => key,
        }
    }
    let mut slots_ahead = group.iter().flat_map(|w| w.batch.ops()).map(key);
    let mut entries_ahead = slots_ahead.clone();
    for k in slots_ahead.by_ref().take(PREFETCH_SLOTS_AHEAD) {
        mem.prefetch_slot(k);
    }
    for k in entries_ahead.by_ref().take(PREFETCH_ENTRIES_AHEAD) {
        mem.prefetch_entry(k);
    }
    let mut seq = first_seq;
    for w in group {
        for op in w.batch.ops() {
            if let Some(k) = slots_ahead.next() {
                mem.prefetch_slot(k);
            }
            if let Some(k) = entries_ahead.next() {
                mem.prefetch_entry(k);
            }
            match op {
                BatchOp::Put { key, value } => mem.insert(key, seq, ValueKind::Put, value),
                BatchOp::Delete { key } => mem.insert(key, seq, ValueKind::Delete, &[]),
            }
            seq += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{gather_paid_off, next_segment_size, Options};

    #[test]
    fn a_log_waking_from_an_idle_segment_grows_toward_full_ones() {
        let opts = Options::default();
        let full = opts.wal_segment_size_bytes;
        let idle = opts.idle_wal_segment_size();
        let second = next_segment_size(&opts, idle);
        assert_eq!(second, 8 * idle);
        // A group of many writes at its bound fits.
        assert!(second >= opts.wal_group_size_bytes_max as u64);
        assert_eq!(next_segment_size(&opts, second), full);
        assert_eq!(next_segment_size(&opts, full), full);
        // A group bound of "no bound" neither overflows nor shrinks the
        // step below a full segment.
        let unbounded = Options {
            wal_group_size_bytes_max: usize::MAX,
            ..Options::default()
        };
        assert_eq!(next_segment_size(&unbounded, idle), full);
        assert_eq!(next_segment_size(&opts, u64::MAX / 2), full);
        // Segments configured small stay at their size.
        let small = Options {
            wal_segment_size_bytes: 256 << 10,
            wal_idle_segment_size_bytes: 64 << 10,
            ..Options::default()
        };
        assert_eq!(next_segment_size(&small, 64 << 10), 256 << 10);
    }

    #[test]
    fn a_gather_pays_off_when_half_the_missing_writes_came() {
        // 50 expected, 10 queued at the start: 40 missing.
        assert!(gather_paid_off(10, 30, 50));
        assert!(gather_paid_off(10, 49, 50));
        assert!(!gather_paid_off(10, 29, 50));
        assert!(!gather_paid_off(10, 10, 50));
    }
}
