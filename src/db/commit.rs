//! Group commit: the write queue and the log owner.
//!
//! Writers push a batch and a [`Completion`] onto the queue. One thread, the
//! log owner, owns the WAL: it drains everything queued (up to
//! `wal_group_size_bytes_max`), gives the group its sequence numbers,
//! inserts it into the active memtable (invisible: reads only see sequence
//! numbers the owner has published), writes the group as one submission and
//! makes it durable, then publishes the group's last sequence and wakes
//! every waiter. While it syncs, the next group queues up.
//!
//! A failed write or sync poisons the database: the group and every later
//! write get an error that says why, and nothing is retried as if it had
//! succeeded.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::completion::Completion;
use super::Shared;
use crate::batch::{BatchOp, WriteBatch};
use crate::error::{Error, Result};
use crate::memtable::Memtable;
use crate::options::Durability;
use crate::types::ValueKind;
use crate::wal::format::HEADER_LEN;
use crate::wal::segment::{self, Preparer, Segment};
use crate::wal::writer::LogWriter;

/// A write waiting for the log owner.
#[derive(Debug)]
pub struct PendingWrite {
    pub batch: WriteBatch,
    pub done: Arc<Completion>,
    pub queued_at: Instant,
}

/// The queue between writers and the log owner.
#[derive(Debug, Default)]
pub struct QueueState {
    pub pending: VecDeque<PendingWrite>,
    pub closing: bool,
}

/// Where the log owner gets its next segment.
pub enum SegmentSource {
    /// A background thread keeps one ready.
    Background(Preparer),
    /// Prepared on the spot (deterministic; used with the simulated FS).
    Inline,
}

/// The log owner's state.
pub struct LogOwner {
    shared: Arc<Shared>,
    log: LogWriter,
    source: SegmentSource,
    next_seq: u64,
    payload: Vec<u8>,
    last_sync: Instant,
}

impl LogOwner {
    pub fn new(shared: Arc<Shared>, log: LogWriter, source: SegmentSource, last_seq: u64) -> Self {
        LogOwner {
            shared,
            log,
            source,
            next_seq: last_seq + 1,
            payload: Vec::new(),
            last_sync: Instant::now(),
        }
    }

    /// Runs until the database closes.
    pub fn run(mut self) {
        let mut group = Vec::new();
        while self.collect(&mut group) {
            self.commit_group(&mut group);
        }
        if let Err(e) = self.log.sync() {
            self.shared.poison(&e);
        }
    }

    /// Waits for writes; false when closing with nothing left.
    fn collect(&mut self, group: &mut Vec<PendingWrite>) -> bool {
        let interval = match self.shared.opts.durability {
            Durability::Relaxed { interval_ms } => Some(Duration::from_millis(interval_ms.max(1))),
            Durability::Sync => None,
        };
        let mut q = self.shared.lock_queue();
        loop {
            if !q.pending.is_empty() {
                break;
            }
            if q.closing {
                return false;
            }
            match interval {
                Some(iv) if self.log.has_unsynced() => {
                    let due = iv.saturating_sub(self.last_sync.elapsed());
                    if due.is_zero() {
                        drop(q);
                        self.relaxed_sync();
                        q = self.shared.lock_queue();
                        continue;
                    }
                    q = self
                        .shared
                        .queue_cv
                        .wait_timeout(q, due)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
                _ => {
                    q = self
                        .shared
                        .queue_cv
                        .wait(q)
                        .unwrap_or_else(|p| p.into_inner());
                }
            }
        }
        let mut bytes = 0usize;
        while let Some(w) = q.pending.front() {
            let size = w.batch.encoded_size_max() + HEADER_LEN;
            if !group.is_empty() && bytes + size > self.shared.opts.wal_group_size_bytes_max {
                break;
            }
            bytes += size;
            if let Some(w) = q.pending.pop_front() {
                group.push(w);
            }
        }
        true
    }

    fn relaxed_sync(&mut self) {
        let start = Instant::now();
        match self.log.sync() {
            Ok(()) => self.shared.metrics.wal_sync_latency_us.record_since(start),
            Err(e) => self.shared.poison(&e),
        }
        self.last_sync = Instant::now();
    }

    fn commit_group(&mut self, group: &mut Vec<PendingWrite>) {
        let result = self.write_group(group);
        let m = &self.shared.metrics;
        match result {
            Ok(()) => {
                m.wal_groups.inc();
                m.wal_group_writes.record(group.len() as u64);
                for w in group.drain(..) {
                    m.write_latency_us.record_since(w.queued_at);
                    w.done.complete(Ok(()));
                }
            }
            Err(e) => {
                self.shared.poison(&e);
                let reason = e.to_string();
                for w in group.drain(..) {
                    w.done.complete(Err(Error::Poisoned(reason.clone())));
                }
            }
        }
        if let Durability::Relaxed { interval_ms } = self.shared.opts.durability {
            if self.last_sync.elapsed() >= Duration::from_millis(interval_ms) {
                self.relaxed_sync();
            }
        }
    }

    fn write_group(&mut self, group: &[PendingWrite]) -> Result<()> {
        if let Some(reason) = self.shared.poisoned() {
            return Err(Error::Poisoned(reason));
        }
        let bytes: u64 = group
            .iter()
            .map(|w| (w.batch.encoded_size_max() + HEADER_LEN) as u64)
            .sum();
        self.maybe_freeze_memtable(bytes)?;
        if !self.log.fits(bytes) {
            self.roll()?;
        }
        let active = self.shared.active_memtable();
        let first_seq = self.next_seq;
        for w in group {
            self.payload.clear();
            w.batch.encode(self.next_seq, &mut self.payload);
            self.log.add_record(&self.payload)?;
            apply(&active, self.next_seq, &w.batch);
            self.next_seq += w.batch.len() as u64;
        }
        let sync = self.shared.opts.durability == Durability::Sync;
        let start = Instant::now();
        self.log.commit(sync)?;
        let m = &self.shared.metrics;
        if sync {
            m.wal_sync_latency_us.record_since(start);
            self.last_sync = Instant::now();
        }
        m.wal_bytes.add(bytes);
        m.writes.add(self.next_seq - first_seq);
        self.shared
            .visible_seq
            .store(self.next_seq - 1, Ordering::Release);
        Ok(())
    }

    /// Moves to a fresh segment, syncing the old one first.
    fn roll(&mut self) -> Result<()> {
        self.log.sync()?;
        let next = self.next_segment()?;
        self.log.switch_to(next);
        self.shared.metrics.wal_segments_rolled.inc();
        Ok(())
    }

    fn next_segment(&mut self) -> Result<Segment> {
        match &self.source {
            SegmentSource::Background(p) => p.take(),
            SegmentSource::Inline => {
                let number = self.shared.next_file.fetch_add(1, Ordering::SeqCst);
                segment::prepare(
                    &*self.shared.fs,
                    &self.shared.dir,
                    number,
                    self.shared.opts.wal_segment_size_bytes,
                )
            }
        }
    }

    /// Freezes a full active memtable, stalling while too many frozen ones
    /// wait for the flusher. The new memtable starts in a new segment so
    /// that flushing a memtable frees whole segments.
    fn maybe_freeze_memtable(&mut self, incoming: u64) -> Result<()> {
        let limit = self.shared.opts.memtable_size_bytes_max;
        let active = self.shared.active_memtable();
        if active.is_empty() || active.size_bytes() + incoming as usize <= limit {
            return Ok(());
        }
        self.shared.wait_for_immutable_room()?;
        self.roll()?;
        self.shared.freeze_active(self.log.segment_number());
        Ok(())
    }
}

fn apply(mem: &Memtable, first_seq: u64, batch: &WriteBatch) {
    for (i, op) in batch.ops().iter().enumerate() {
        let seq = first_seq + i as u64;
        match op {
            BatchOp::Put { key, value } => mem.insert(key, seq, ValueKind::Put, value),
            BatchOp::Delete { key } => mem.insert(key, seq, ValueKind::Delete, &[]),
        }
    }
}
