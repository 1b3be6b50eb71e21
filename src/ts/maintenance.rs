//! The maintenance thread: the only writer of chunks and the only one
//! that deletes log records. It seals heads into chunks, deletes ranges
//! and series, applies retention, and trims the log.
//!
//! Because one thread does all of it, one operation at a time, and waits
//! for each write to be durable before the next, a chunk it reads from the
//! engine is always the newest version: read-modify-write of a chunk needs
//! no lock held across the engine's IO. Writers on other threads only ever
//! add log records and catalog records; the state mutex orders their
//! changes to the heads with the sealer's (see [`super::state`]).
//!
//! A seal, for each series taken: copy the points to seal (under the
//! mutex): the closed windows' points of a head that spans two windows,
//! else the whole head; for each chunk window they touch, read the
//! window's chunks from the one the first point falls in onward, merge the
//! points into them (the head wins a tie), cut the result into chunks of
//! at most `chunk_points_max` points, and stage puts of the chunks that
//! changed and deletes of those that went; then, under the mutex again,
//! put the series' catalog record with its new watermark (every point of
//! the series from log records up to it is in chunks once the batch is
//! durable: the sequence before the oldest record a point not sealed
//! comes from, or the newest record of the series if every point is
//! sealed), and enqueue one batch for every series of the round. The
//! heads do not change until that batch is durable (writers and readers
//! find the points there meanwhile; a failed write thus leaves memory as
//! it was). Then, under the mutex, each head drops exactly the points
//! sealed (a point rewritten meanwhile stays, its value wins on reads
//! until the next seal) and takes its new record. Only then are the log
//! records no head needs any more deleted, in a second batch
//! ([`trim_log`]): that order (seal durable, then delete) is what makes a
//! crash between the two harmless — recovery skips, per series, the
//! records its watermark covers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::batch::WriteBatch;
use crate::error::{Error, Result};

use super::chunk;
use super::keys::{self, SeriesRecord};
use super::log::LogEncoder;
use super::series::SeriesKey;
use super::state::for_each;
use super::write::{self, chunk_corruption};
use super::{block_on, enqueue, Core, Point, Retention, TsFuture};

/// Most series sealed in one round (one engine batch).
const SEAL_SERIES_PER_ROUND: usize = 1024;
/// A round stops taking series once their heads hold this many points
/// (each costs a delete in the batch, and its share of a chunk).
const SEAL_POINTS_PER_ROUND: usize = 100_000;
/// A delete or retention batch is written once it holds this many bytes,
/// and a new one started.
const BATCH_BYTES_SOFT_MAX: usize = 4 << 20;

type Reply = oneshot::Sender<Result<()>>;

/// Work handed to the maintenance thread.
#[derive(Debug)]
pub(crate) enum Job {
    /// Delete points of a series: a range, or (`None`) the whole series.
    Delete {
        id: u64,
        range: Option<(i64, i64)>,
        reply: Reply,
    },
    /// Remove the chunks of a deleted series (also resumed on open).
    PurgeChunks { id: u64 },
    /// Apply retention as of `now_ms` (default: the clock).
    Sweep {
        now_ms: Option<i64>,
        reply: Option<Reply>,
    },
    /// Seal every head.
    SealAll { reply: Reply },
    /// Record a retention (`id: None`: the default), then sweep.
    SetRetention {
        id: Option<u64>,
        retention: Retention,
        reply: Reply,
    },
    /// Record a duplicate policy.
    SetPolicy {
        id: u64,
        policy: super::DupPolicy,
        reply: Reply,
    },
}

/// Queues a job and returns its completion.
pub(crate) fn submit(core: &Core, job: impl FnOnce(Reply) -> Job) -> TsFuture {
    let (tx, rx) = oneshot::channel();
    core.lock().jobs.push_back(job(tx));
    core.work_cv.notify_all();
    TsFuture {
        state: super::FutureState::Job(rx),
    }
}

/// Queues a retention change; `None` if there is no such series.
pub(crate) fn submit_retention(
    core: &Core,
    key: Option<&SeriesKey>,
    retention: Retention,
) -> Result<Option<TsFuture>> {
    let id = match key {
        None if retention == Retention::Default => {
            return Err(Error::InvalidArgument(
                "the database default retention cannot be \"default\"".into(),
            ))
        }
        None => None,
        Some(k) => match core.id_of(k) {
            Some(id) => Some(id),
            None => return Ok(None),
        },
    };
    Ok(Some(submit(core, |reply| Job::SetRetention {
        id,
        retention,
        reply,
    })))
}

/// Queues the deletion of a series or of a range of it.
pub(crate) fn submit_delete(
    core: &Core,
    key: &SeriesKey,
    range: Option<(i64, i64)>,
) -> Result<Option<TsFuture>> {
    let Some(id) = core.id_of(key) else {
        return Ok(None);
    };
    Ok(Some(submit(core, |reply| Job::Delete { id, range, reply })))
}

enum Task {
    Job(Job),
    Seal,
    Sweep,
}

/// The thread's loop; returns when the layer closes.
pub(crate) fn run(core: &Core) {
    let interval = Duration::from_millis(core.opts.retention_sweep_interval_ms);
    let mut next_sweep = Instant::now() + interval;
    loop {
        let task = {
            let mut st = core.lock();
            loop {
                if core.closing.load(std::sync::atomic::Ordering::Acquire) {
                    for job in st.jobs.drain(..) {
                        reply_closed(job);
                    }
                    return;
                }
                if st.to_seal_full.is_empty() {
                    // No seal the budget asked for is pending or running.
                    st.budget_forced = false;
                }
                if let Some(job) = st.jobs.pop_front() {
                    break Task::Job(job);
                }
                if !st.to_seal.is_empty() || !st.to_seal_full.is_empty() {
                    break Task::Seal;
                }
                let now = Instant::now();
                if now >= next_sweep {
                    next_sweep = now + interval;
                    break Task::Sweep;
                }
                st = core
                    .work_cv
                    .wait_timeout(st, next_sweep - now)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        };
        match task {
            Task::Seal => {
                let (ids, full): (Vec<u64>, bool) = {
                    let mut guard = core.lock();
                    let st = &mut *guard;
                    let full = !st.to_seal_full.is_empty();
                    let mut ids = Vec::new();
                    let mut points = 0;
                    while ids.len() < SEAL_SERIES_PER_ROUND && points < SEAL_POINTS_PER_ROUND {
                        let next = if full {
                            st.to_seal_full.pop_first()
                        } else {
                            st.to_seal.pop_first()
                        };
                        let Some(id) = next else {
                            break;
                        };
                        points += st.series.get(&id).map_or(0, |s| s.head.len());
                        ids.push(id);
                    }
                    (ids, full)
                };
                if let Err(e) = seal(core, &ids, full).and_then(|()| trim_log(core)) {
                    core.report("seal", &e);
                }
            }
            Task::Sweep => {
                if let Err(e) = sweep(core, (core.opts.clock)()) {
                    core.report("retention", &e);
                }
            }
            Task::Job(job) => {
                run_job(core, job);
                if let Err(e) = trim_log(core) {
                    core.report("log trim", &e);
                }
            }
        }
    }
}

fn reply_closed(job: Job) {
    let reply = match job {
        Job::Delete { reply, .. }
        | Job::SealAll { reply }
        | Job::SetRetention { reply, .. }
        | Job::SetPolicy { reply, .. } => Some(reply),
        Job::Sweep { reply, .. } => reply,
        Job::PurgeChunks { .. } => None,
    };
    if let Some(r) = reply {
        let _ = r.send(Err(Error::Closed));
    }
}

fn run_job(core: &Core, job: Job) {
    match job {
        Job::Delete {
            id,
            range: Some((from, to)),
            reply,
        } => {
            let _ = reply.send(delete_range(core, id, from, to));
        }
        Job::Delete {
            id,
            range: None,
            reply,
        } => {
            let r = delete_series(core, id)
                .and_then(|()| purge_chunks(core, id))
                .and_then(|()| trim_log(core));
            let _ = reply.send(r);
        }
        Job::PurgeChunks { id } => {
            if let Err(e) = purge_chunks(core, id) {
                core.report("delete series", &e);
            }
        }
        Job::Sweep { now_ms, reply } => {
            let r = sweep(core, now_ms.unwrap_or_else(core.opts.clock));
            match reply {
                Some(reply) => {
                    let _ = reply.send(r);
                }
                None => {
                    if let Err(e) = r {
                        core.report("retention", &e);
                    }
                }
            }
        }
        Job::SetRetention {
            id,
            retention,
            reply,
        } => {
            let r = write::record_retention(core, id, retention)
                .and_then(|()| sweep(core, (core.opts.clock)()));
            let _ = reply.send(r);
        }
        Job::SetPolicy { id, policy, reply } => {
            let _ = reply.send(write::record_policy(core, id, policy));
        }
        Job::SealAll { reply } => {
            let heads: Vec<(u64, usize)> = {
                let st = core.lock();
                st.series
                    .values()
                    .filter(|s| !s.head.is_empty())
                    .map(|s| (s.id, s.head.len()))
                    .collect()
            };
            let mut r = Ok(());
            let mut round = Vec::new();
            let mut points = 0;
            for (i, &(id, n)) in heads.iter().enumerate() {
                round.push(id);
                points += n;
                let last = i + 1 == heads.len();
                if last || round.len() >= SEAL_SERIES_PER_ROUND || points >= SEAL_POINTS_PER_ROUND {
                    r = r.and_then(|()| seal(core, &round, true));
                    round.clear();
                    points = 0;
                }
            }
            // Returns with the log trimmed, so what follows (a flush and
            // compaction, a measurement) sees only chunks.
            let _ = reply.send(r.and_then(|()| trim_log(core)));
        }
    }
}

/// A chunk write staged by the sealer or a delete.
#[derive(Debug)]
enum ChunkOp {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

fn apply_ops(batch: &mut WriteBatch, ops: Vec<ChunkOp>) {
    for op in ops {
        match op {
            ChunkOp::Put(k, v) => batch.put(k, v),
            ChunkOp::Delete(k) => batch.delete(k),
        };
    }
}

/// What sealing one series' head produced.
struct SealPart {
    id: u64,
    head: Vec<Point>,
    ops: Vec<ChunkOp>,
    max_ts: i64,
    chunks: u64,
    chunk_bytes: u64,
    chunk_points: u64,
}

/// Seals the heads of `ids` in one batch and waits until it is durable:
/// whole (`full`, or a head at `head_points_max`), else the points of the
/// windows before the newest point's.
fn seal(core: &Core, ids: &[u64], full: bool) -> Result<()> {
    let opts = &core.opts;
    let work: Vec<(u64, String, Vec<Point>)> = {
        let st = core.lock();
        ids.iter()
            .filter_map(|id| st.series.get(id))
            .filter(|s| !s.head.is_empty() && !s.seal_failed)
            .filter_map(|s| {
                let take = if full || s.head.len() >= opts.head_points_max {
                    s.head.len()
                } else {
                    let open = s.head.last().map_or(i64::MIN, |p| opts.window_start(p.ts));
                    s.head.partition_point(|p| opts.window_start(p.ts) < open)
                };
                let points = s.head.get(..take).unwrap_or_default();
                (!points.is_empty()).then(|| (s.id, s.canonical.clone(), points.to_vec()))
            })
            .collect()
    };
    let mut parts = Vec::with_capacity(work.len());
    let mut failed = Vec::new();
    for (id, name, head) in work {
        match build_seal(core, id, &name, head) {
            Ok(p) => parts.push(p),
            Err(e) => {
                core.report(&format!("seal of {name}"), &e);
                failed.push(id);
            }
        }
    }
    let (future, carry, sealed) = {
        let mut guard = core.lock();
        let st = &mut *guard;
        for id in &failed {
            if let Some(s) = st.series.get_mut(id) {
                s.seal_failed = true;
            }
        }
        let mut batch = WriteBatch::new();
        // Heads that cannot be sealed (a damaged chunk) would pin the log
        // forever: their points are carried forward into one new record,
        // so the older ones can go.
        let stuck: Vec<(u64, Vec<Point>)> = ids
            .iter()
            .filter_map(|id| st.series.get(id))
            .filter(|s| s.seal_failed && !s.head.is_empty() && (full || failed.contains(&s.id)))
            .map(|s| (s.id, s.head.clone()))
            .collect();
        let carry_seq = st.next_log_seq;
        let mut carry = None;
        if !stuck.is_empty() {
            let mut enc = LogEncoder::with_points(0);
            for (id, points) in &stuck {
                enc.group(*id, points);
            }
            let record = enc.finish();
            carry = Some((carry_seq, record.len() as u64, stuck));
            batch.put(keys::log_key(carry_seq), record);
            batch.put(keys::LOG_SEQ_KEY, carry_seq.to_le_bytes().to_vec());
        }
        let mut sealed: Vec<(u64, Vec<Point>, SeriesRecord)> = Vec::with_capacity(parts.len());
        for part in parts {
            let Some(s) = st.series.get(&part.id) else {
                continue;
            };
            let split = split_sealed(&s.head, &s.head_seqs, &part.head);
            let mut record = s.record.clone();
            record.sealed_max_ts = Some(
                record
                    .sealed_max_ts
                    .map_or(part.max_ts, |m| m.max(part.max_ts)),
            );
            // Every point of the series from records before the oldest
            // one a point left in the head comes from is in chunks once
            // this batch is durable (points added meanwhile come from
            // later records).
            let watermark = match split.rest_seqs.iter().min() {
                Some(&oldest) => oldest - 1,
                None => s.last_seq,
            };
            record.log_sealed = record.log_sealed.max(watermark);
            batch.put(keys::id_key(keys::META_PREFIX, part.id), record.encode());
            apply_ops(&mut batch, part.ops);
            core.metrics.chunks_written.add(part.chunks);
            core.metrics.chunk_bytes_written.add(part.chunk_bytes);
            core.metrics.chunk_points_written.add(part.chunk_points);
            sealed.push((part.id, part.head, record));
        }
        let future = enqueue(&core.db, batch)?;
        if carry.is_some() {
            st.next_log_seq += 1;
        }
        core.metrics.seals.inc();
        (future, carry, sealed)
    };
    // Until the batch is durable the points stay in the heads, where
    // writers and readers find them (a read merges the head over the
    // chunks, so a point is seen once whether the chunk is visible yet or
    // not). If the write fails nothing in memory has changed.
    let result = block_on(future);
    let mut guard = core.lock();
    let st = &mut *guard;
    if result.is_ok() {
        if let Some((seq, bytes, stuck)) = carry {
            st.log_live.insert(seq, bytes);
            st.log_live_bytes += bytes;
            for (id, points) in stuck {
                let Some(s) = st.series.get_mut(&id) else {
                    continue;
                };
                let split = split_sealed(&s.head, &s.head_seqs, &points);
                let mut seqs = Vec::with_capacity(s.head.len());
                let (mut i, mut j) = (0, 0);
                for p in &s.head {
                    if split.same.get(i).is_some_and(|q| q.ts == p.ts) {
                        seqs.push(seq);
                        i += 1;
                    } else {
                        seqs.push(split.rest_seqs.get(j).copied().unwrap_or(seq));
                        j += 1;
                    }
                }
                s.head_seqs = seqs;
                s.first_seq = s.head_seqs.iter().copied().min().unwrap_or(0);
                s.last_seq = s.last_seq.max(seq);
                st.repin(id);
            }
        }
        for (id, points, record) in sealed {
            let Some(s) = st.series.get_mut(&id) else {
                continue;
            };
            let split = split_sealed(&s.head, &s.head_seqs, &points);
            st.head_points = st.head_points.saturating_sub(split.same.len());
            s.first_seq = split.rest_seqs.iter().copied().min().unwrap_or(0);
            s.head = split.rest;
            s.head_seqs = split.rest_seqs;
            // Policy and retention change only on this thread, so the
            // record is as it was when the batch was built.
            s.record = record;
            st.repin(id);
        }
    }
    for id in ids {
        if st.series.get(id).is_some_and(|s| s.needs_seal(&core.opts)) {
            st.to_seal.insert(*id);
        }
    }
    result
}

/// Deletes the log records no head needs any more and every read sees,
/// in one batch, and waits until that is durable.
pub(crate) fn trim_log(core: &Core) -> Result<()> {
    let future = {
        let mut st = core.lock();
        st.confirm(&core.db.snapshot())?;
        let dead = st.take_dead_logs();
        if dead.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        for seq in dead.keys() {
            batch.delete(keys::log_key(*seq));
        }
        match enqueue(&core.db, batch) {
            Ok(f) => (f, dead),
            Err(e) => {
                st.untake_logs(dead);
                return Err(e);
            }
        }
    };
    let (future, dead) = future;
    let result = future.wait();
    match result {
        Ok(()) => core.metrics.log_records_deleted.add(dead.len() as u64),
        // Still on disk: counted again, deleted by a later trim.
        Err(_) => core.lock().untake_logs(dead),
    }
    result
}

/// A head split by a seal: the points sealed, and the rest.
#[derive(Debug, Default, PartialEq)]
struct Split {
    same: Vec<Point>,
    rest: Vec<Point>,
    rest_seqs: Vec<u64>,
}

/// Splits `head` (with the log sequences `seqs`) into the points that
/// `snapshot` (what the seal wrote) holds with the same value, bit for
/// bit — those a seal removes from the head — and the rest (points added
/// or rewritten since). Both inputs are sorted: one pass.
fn split_sealed(head: &[Point], seqs: &[u64], snapshot: &[Point]) -> Split {
    let mut out = Split {
        same: Vec::with_capacity(snapshot.len()),
        // The head grows back to about its size before the next seal.
        rest: Vec::with_capacity(head.len()),
        rest_seqs: Vec::with_capacity(head.len()),
    };
    let mut j = 0;
    for (p, &seq) in head.iter().zip(seqs) {
        while snapshot.get(j).is_some_and(|q| q.ts < p.ts) {
            j += 1;
        }
        let sealed = snapshot
            .get(j)
            .is_some_and(|q| q.ts == p.ts && q.value.to_bits() == p.value.to_bits());
        if sealed {
            out.same.push(*p);
        } else {
            out.rest.push(*p);
            out.rest_seqs.push(seq);
        }
    }
    out
}

/// Merges `head` (sorted) into the chunks of the windows it touches.
fn build_seal(core: &Core, id: u64, name: &str, head: Vec<Point>) -> Result<SealPart> {
    let opts = &core.opts;
    let mut part = SealPart {
        id,
        ops: Vec::new(),
        max_ts: head.last().map_or(i64::MIN, |p| p.ts),
        chunks: 0,
        chunk_bytes: 0,
        chunk_points: 0,
        head: Vec::new(),
    };
    for group in head.chunk_by(|a, b| opts.window_start(a.ts) == opts.window_start(b.ts)) {
        let Some(first) = group.first() else { continue };
        let ws = opts.window_start(first.ts);
        let start = keys::id_ts_key(keys::CHUNK_PREFIX, id, ws);
        let end = match ws.checked_add(opts.chunk_window_ms) {
            Some(we) => keys::id_ts_key(keys::CHUNK_PREFIX, id, we),
            None => keys::id_end(keys::CHUNK_PREFIX, id),
        };
        let mut existing: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for_each(&core.db, &start, &end, |k, v| {
            existing.push((k, v));
            Ok(true)
        })?;
        let first_of =
            |k: &[u8]| keys::parse_id_ts_key(keys::CHUNK_PREFIX, k).map_or(i64::MIN, |x| x.1);
        // Chunks before the one the head's first point falls in keep.
        let from = existing
            .iter()
            .rposition(|(k, _)| first_of(k) <= first.ts)
            .unwrap_or(0);
        let mut old: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut points = Vec::new();
        for (k, v) in existing.into_iter().skip(from) {
            chunk::decode_into(&v, &mut points).map_err(|e| chunk_corruption(name, &k, e))?;
            old.insert(k, v);
        }
        let merged = merge(&points, group);
        for piece in merged.chunks(opts.chunk_points_max) {
            let Some(p0) = piece.first() else { continue };
            let key = keys::id_ts_key(keys::CHUNK_PREFIX, id, p0.ts);
            let mut value = Vec::new();
            chunk::encode(piece, &mut value)
                .map_err(|e| Error::InvalidArgument(format!("sealing {name}: {e}")))?;
            if old.remove(&key).as_ref() != Some(&value) {
                part.chunks += 1;
                part.chunk_bytes += value.len() as u64;
                part.chunk_points += piece.len() as u64;
                part.ops.push(ChunkOp::Put(key, value));
            }
        }
        part.ops.extend(old.into_keys().map(ChunkOp::Delete));
    }
    part.head = head;
    Ok(part)
}

/// `old` and `new` (both sorted) as one sorted list; `new` wins a tie.
fn merge(old: &[Point], new: &[Point]) -> Vec<Point> {
    let mut out = Vec::with_capacity(old.len() + new.len());
    let (mut i, mut j) = (0, 0);
    while let (Some(a), Some(b)) = (old.get(i), new.get(j)) {
        if a.ts < b.ts {
            out.push(*a);
            i += 1;
        } else {
            if a.ts == b.ts {
                i += 1;
            }
            out.push(*b);
            j += 1;
        }
    }
    out.extend_from_slice(old.get(i..).unwrap_or_default());
    out.extend_from_slice(new.get(j..).unwrap_or_default());
    out
}

/// Writes `batch` and waits until it is durable; leaves a new batch.
fn write_now(core: &Core, batch: &mut WriteBatch) -> Result<()> {
    let b = std::mem::take(batch);
    if b.is_empty() {
        return Ok(());
    }
    enqueue(&core.db, b)?.wait()
}

fn series_name(core: &Core, id: u64) -> Option<String> {
    core.lock().series.get(&id).map(|s| s.canonical.clone())
}

/// Deletes the points of `[from, to]`: chunks first (in batches of
/// bounded size for a long range), then the head points, under the mutex.
fn delete_range(core: &Core, id: u64, from: i64, to: i64) -> Result<()> {
    let Some(name) = series_name(core, id) else {
        return Ok(());
    };
    seal_whole(core, id, &name, "deleted")?;
    {
        let mut st = core.lock();
        if let Some(s) = st.series.get_mut(&id) {
            s.deleting.push((from, to));
        }
    }
    let r = delete_range_inner(core, id, &name, from, to);
    let mut st = core.lock();
    if let Some(s) = st.series.get_mut(&id) {
        s.deleting.retain(|&r| r != (from, to));
    }
    r
}

fn delete_range_inner(core: &Core, id: u64, name: &str, from: i64, to: i64) -> Result<()> {
    let start = keys::id_ts_key(keys::CHUNK_PREFIX, id, core.opts.window_start(from));
    let (_, end) = keys::ts_range(keys::CHUNK_PREFIX, id, from, to);
    let mut batch = WriteBatch::new();
    let mut ops = Vec::new();
    for_each(&core.db, &start, &end, |k, v| {
        let points = chunk::decode(&v).map_err(|e| chunk_corruption(name, &k, e))?;
        if !points.iter().any(|p| from <= p.ts && p.ts <= to) {
            return Ok(true);
        }
        let keep: Vec<Point> = points
            .into_iter()
            .filter(|p| p.ts < from || p.ts > to)
            .collect();
        ops.push(ChunkOp::Delete(k));
        if let Some(p0) = keep.first() {
            let mut value = Vec::new();
            chunk::encode(&keep, &mut value)
                .map_err(|e| Error::InvalidArgument(format!("deleting from {name}: {e}")))?;
            ops.push(ChunkOp::Put(
                keys::id_ts_key(keys::CHUNK_PREFIX, id, p0.ts),
                value,
            ));
        }
        apply_ops(&mut batch, std::mem::take(&mut ops));
        if batch.encoded_size_max() > BATCH_BYTES_SOFT_MAX {
            write_now(core, &mut batch)?;
        }
        Ok(true)
    })?;
    // The head's points in the range were sealed before; points added
    // since came after the delete was asked for, and stay.
    write_now(core, &mut batch)
}

/// Seals the whole head of `id`, so that its points are in chunks and its
/// watermark covers every log record so far (what a delete or a retention
/// sweep needs before it changes chunks: replaying the log must not bring
/// the points back).
fn seal_whole(core: &Core, id: u64, name: &str, what: &str) -> Result<()> {
    seal(core, &[id], true)?;
    let st = core.lock();
    match st.series.get(&id) {
        Some(s) if s.seal_failed => Err(Error::InvalidArgument(format!(
            "series {name}: its points cannot be sealed into chunks (a damaged chunk, reported in the log), so none can be {what}"
        ))),
        _ => Ok(()),
    }
}

/// Removes a series from the catalog with its head, leaving a marker
/// until its chunks are purged.
fn delete_series(core: &Core, id: u64) -> Result<()> {
    let future = {
        let mut guard = core.lock();
        let st = &mut *guard;
        let Some(s) = st.series.get(&id) else {
            return Ok(());
        };
        let mut batch = WriteBatch::new();
        batch.delete(keys::name_key(&s.canonical));
        batch.delete(keys::id_key(keys::META_PREFIX, id));
        batch.put(keys::id_key(keys::DELETING_PREFIX, id), Vec::new());
        let f = enqueue(&core.db, batch)?;
        // Its log records hold points of an id no catalog record names
        // any more: recovery skips them, and they go with the next trim.
        st.unpin(id);
        st.to_seal_full.remove(&id);
        if let Some(s) = st.series.remove(&id) {
            st.by_name.remove(&s.canonical);
            st.head_points = st.head_points.saturating_sub(s.head.len());
        }
        st.to_seal.remove(&id);
        f
    };
    future.wait()
}

/// Deletes every chunk of a deleted series, then its marker.
fn purge_chunks(core: &Core, id: u64) -> Result<()> {
    let start = keys::id_key(keys::CHUNK_PREFIX, id);
    let end = keys::id_end(keys::CHUNK_PREFIX, id);
    let mut batch = WriteBatch::new();
    for_each(&core.db, &start, &end, |k, _| {
        batch.delete(k);
        if batch.encoded_size_max() > BATCH_BYTES_SOFT_MAX {
            write_now(core, &mut batch)?;
        }
        Ok(true)
    })?;
    batch.delete(keys::id_key(keys::DELETING_PREFIX, id));
    write_now(core, &mut batch)
}

/// Drops, for every series with a retention, the chunk windows that
/// ended before `now_ms - retention` (whole chunks, found by their keys
/// alone). A series that has something to drop and points in the log
/// past its watermark is sealed whole first: a partial seal leaves the
/// records of its sealed points live while a newer point pins them, and
/// replaying them must not bring back what retention dropped.
fn sweep(core: &Core, now_ms: i64) -> Result<()> {
    let targets: Vec<(u64, i64, bool, bool)> = {
        let st = core.lock();
        st.series
            .values()
            .filter_map(|s| {
                let r = s.retention_ms(st.default_retention_ms);
                (r > 0).then(|| {
                    let cutoff = core.opts.window_start(now_ms.saturating_sub(r));
                    let old_head = s.head.first().is_some_and(|p| p.ts < cutoff);
                    let logged = s.last_seq > s.record.log_sealed;
                    (s.id, cutoff, old_head, logged)
                })
            })
            .collect()
    };
    let mut unsealed = Vec::new();
    for &(id, cutoff, old_head, logged) in &targets {
        if !logged {
            continue;
        }
        let start = keys::id_key(keys::CHUNK_PREFIX, id);
        let end = keys::id_ts_key(keys::CHUNK_PREFIX, id, cutoff);
        let old_chunk = !core.db.scan(&start, Some(&end), 1)?.is_empty();
        if old_head || old_chunk {
            let name = series_name(core, id).unwrap_or_default();
            if let Err(e) = seal_whole(core, id, &name, "dropped by retention") {
                // Its chunks stay until a sweep can seal it.
                core.report("retention", &e);
                unsealed.push(id);
            }
        }
    }
    let mut batch = WriteBatch::new();
    for &(id, cutoff, _, _) in &targets {
        if unsealed.contains(&id) {
            continue;
        }
        let start = keys::id_key(keys::CHUNK_PREFIX, id);
        let end = keys::id_ts_key(keys::CHUNK_PREFIX, id, cutoff);
        for_each(&core.db, &start, &end, |k, _| {
            batch.delete(k);
            core.metrics.chunks_dropped_by_retention.inc();
            if batch.encoded_size_max() > BATCH_BYTES_SOFT_MAX {
                write_now(core, &mut batch)?;
            }
            Ok(true)
        })?;
    }
    write_now(core, &mut batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ts: i64, value: f64) -> Point {
        Point { ts, value }
    }

    #[test]
    fn merge_prefers_the_new_point() {
        let old = [p(1, 1.0), p(3, 3.0), p(5, 5.0)];
        let new = [p(0, 0.5), p(3, 30.0), p(6, 6.0)];
        assert_eq!(
            merge(&old, &new),
            vec![p(0, 0.5), p(1, 1.0), p(3, 30.0), p(5, 5.0), p(6, 6.0)]
        );
        assert_eq!(merge(&[], &new), new.to_vec());
    }

    #[test]
    fn only_unchanged_points_leave_the_head() {
        let head = [p(1, 1.0), p(2, 2.5), p(4, 4.0), p(5, 5.0)];
        let snap = [p(1, 1.0), p(2, 2.0), p(3, 3.0), p(5, 5.0)];
        assert_eq!(
            split_sealed(&head, &[7, 9, 8, 6], &snap),
            Split {
                same: vec![p(1, 1.0), p(5, 5.0)],
                rest: vec![p(2, 2.5), p(4, 4.0)],
                rest_seqs: vec![9, 8],
            }
        );
    }
}
