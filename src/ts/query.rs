//! The read path: range queries, the latest point, series listings.
//!
//! A read takes, under the state mutex, one engine snapshot and a copy of
//! the series' head within the range (a seal removes points from the head
//! only once its chunks are durable). A range merges the two in time
//! order: the snapshot's chunks (from the window holding `from`, since
//! chunks never straddle a window), read a page at a time, and the head's
//! points; on a tie the head wins (it is the newer write, or the same
//! value a seal in flight is writing into the chunk), so a point being
//! sealed is seen exactly once.
//!
//! Nothing not yet durable is seen: the head runs ahead of durability by
//! the adds in flight, so when the copy holds a point whose log record
//! the snapshot does not see yet (`ts/o/log_seq`), the read lets go of the
//! mutex, waits for the record to become durable, and starts again. Memory
//! stays bounded by a page, one decoded chunk and the series' head.

use std::collections::VecDeque;

use crate::db::Snapshot;
use crate::error::{Error, Result};
use crate::types::prefix_successor;

use super::aggregate::{self, RangePage};
use super::chunk;
use super::keys;
use super::series::SeriesKey;
use super::state::{for_each, ScanSource, SCAN_PAGE_PAIRS};
use super::write::chunk_corruption;
use super::{Core, Point, RangeQuery, SeriesPage, SeriesQuery};

/// A range of keys of the snapshot, read a page at a time.
struct Paged<'a> {
    snap: &'a Snapshot,
    cursor: Option<Vec<u8>>,
    end: Vec<u8>,
    buf: VecDeque<(Vec<u8>, Vec<u8>)>,
}

impl<'a> Paged<'a> {
    fn new(snap: &'a Snapshot, start: Vec<u8>, end: Vec<u8>) -> Self {
        Paged {
            snap,
            cursor: Some(start),
            end,
            buf: VecDeque::new(),
        }
    }

    fn next(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        if self.buf.is_empty() {
            if let Some(start) = self.cursor.take() {
                let page = self
                    .snap
                    .scan_page(&start, Some(&self.end), SCAN_PAGE_PAIRS)?;
                if page.len() == SCAN_PAGE_PAIRS {
                    if let Some((k, _)) = page.last() {
                        let mut next = k.clone();
                        next.push(0);
                        self.cursor = Some(next);
                    }
                }
                self.buf.extend(page);
            }
        }
        Ok(self.buf.pop_front())
    }
}

/// The points of one series in `[from, to]`, in time order.
struct PointStream<'a> {
    name: String,
    from: i64,
    to: i64,
    /// The points in memory, in time order, and the next one's index.
    memory: Vec<Point>,
    memory_next: usize,
    chunks: Paged<'a>,
    /// The decoded chunk and the index of its next point.
    chunk_points: Vec<Point>,
    chunk_next: usize,
    failed: bool,
}

impl<'a> PointStream<'a> {
    fn new(core: &Core, view: &'a View, name: String, from: i64, to: i64) -> Self {
        let (_, ce) = keys::ts_range(keys::CHUNK_PREFIX, view.id, from, to);
        let cs = keys::id_ts_key(keys::CHUNK_PREFIX, view.id, core.opts.window_start(from));
        PointStream {
            name,
            from,
            to,
            memory: view.memory.clone(),
            memory_next: 0,
            chunks: Paged::new(&view.snap, cs, ce),
            chunk_points: Vec::new(),
            chunk_next: 0,
            failed: false,
        }
    }

    fn peek_head(&mut self) -> Result<Option<Point>> {
        Ok(self.memory.get(self.memory_next).copied())
    }

    fn peek_chunk(&mut self) -> Result<Option<Point>> {
        while self.chunk_next >= self.chunk_points.len() {
            let Some((k, v)) = self.chunks.next()? else {
                return Ok(None);
            };
            self.chunk_points.clear();
            chunk::decode_into(&v, &mut self.chunk_points)
                .map_err(|e| chunk_corruption(&self.name, &k, e))?;
            let (from, to) = (self.from, self.to);
            self.chunk_next = self.chunk_points.partition_point(|p| p.ts < from);
            let end = self.chunk_points.partition_point(|p| p.ts <= to);
            self.chunk_points.truncate(end);
        }
        Ok(self.chunk_points.get(self.chunk_next).copied())
    }

    fn step(&mut self) -> Result<Option<Point>> {
        let h = self.peek_head()?;
        let c = self.peek_chunk()?;
        Ok(match (h, c) {
            (None, None) => None,
            (Some(h), c) if c.is_none_or(|c| h.ts <= c.ts) => {
                if c.is_some_and(|c| c.ts == h.ts) {
                    self.chunk_next += 1;
                }
                self.memory_next += 1;
                Some(h)
            }
            (_, c) => {
                self.chunk_next += 1;
                c
            }
        })
    }
}

impl Iterator for PointStream<'_> {
    type Item = Result<Point>;

    fn next(&mut self) -> Option<Result<Point>> {
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(p) => p.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

fn bad_key(key: &[u8], what: &str) -> Error {
    Error::Corruption {
        file: format!(
            "time-series key {}",
            crate::client::render::escape_bytes(key)
        ),
        offset: 0,
        what: what.into(),
    }
}

/// Checks the time span and bucket width a query asks for.
pub(crate) fn check_span(from: i64, to: i64, bucket_ms: i64) -> Result<()> {
    if from > to {
        return Err(Error::InvalidArgument(format!(
            "range from {from} is after to {to}"
        )));
    }
    if bucket_ms < 0 {
        return Err(Error::InvalidArgument(format!(
            "bucket of {bucket_ms} ms is negative"
        )));
    }
    Ok(())
}

/// Checks a range query's arguments.
pub fn check_range(q: &RangeQuery) -> Result<()> {
    check_span(q.from, q.to, q.bucket_ms)?;
    if q.bucket_ms > 0 && q.agg.is_none() {
        return Err(Error::InvalidArgument(
            "a bucket needs an aggregation (avg, min, max, sum, count, first, last, rate)".into(),
        ));
    }
    if q.limit == 0 {
        return Err(Error::InvalidArgument("range limit 0".into()));
    }
    Ok(())
}

/// What a read of one series sees: an engine snapshot and the series'
/// durable points in memory within the range.
struct View {
    id: u64,
    snap: Snapshot,
    memory: Vec<Point>,
}

/// Most waits of a read for an add in flight to become durable (each
/// [`DURABLE_POLL`]): ten seconds, far beyond a group commit.
const DURABLE_WAITS_MAX: u32 = 50_000;
const DURABLE_POLL: std::time::Duration = std::time::Duration::from_micros(200);

/// Takes the [`View`] of `key` over `[from, to]`; `None` if the series
/// does not exist.
fn view(core: &Core, key: &SeriesKey, from: i64, to: i64) -> Result<Option<View>> {
    let canonical = key.canonical();
    let mut waits = 0u32;
    loop {
        let need = {
            let mut st = core.lock();
            let Some(&id) = st.by_name.get(&canonical) else {
                return Ok(None);
            };
            let snap = core.db.snapshot();
            st.confirm(&snap)?;
            let Some(s) = st.series.get(&id) else {
                return Ok(None);
            };
            let (memory, newest) = s.memory_points(from, to);
            if newest <= st.confirmed_log_seq {
                return Ok(Some(View { id, snap, memory }));
            }
            newest
        };
        if let Some(reason) = core.db.poisoned() {
            return Err(Error::Poisoned(reason));
        }
        waits += 1;
        if waits > DURABLE_WAITS_MAX {
            return Err(Error::LimitExceeded {
                what: format!(
                    "series {canonical}: the add of log record {need} is still not durable; the read gave up waiting"
                ),
            });
        }
        std::thread::sleep(DURABLE_POLL);
    }
}

pub(crate) fn range(core: &Core, key: &SeriesKey, q: &RangeQuery) -> Result<Option<RangePage>> {
    check_range(q)?;
    let Some(view) = view(core, key, q.from, q.to)? else {
        return Ok(None);
    };
    let stream = PointStream::new(core, &view, key.canonical(), q.from, q.to);
    aggregate::page(stream, q.agg, q.bucket_ms, q.limit).map(Some)
}

pub(crate) fn latest(core: &Core, key: &SeriesKey) -> Result<Option<Option<Point>>> {
    let hint = {
        let st = core.lock();
        let Some(&id) = st.by_name.get(&key.canonical()) else {
            return Ok(None);
        };
        st.series.get(&id).and_then(|s| s.record.sealed_max_ts)
    };
    let Some(view) = view(core, key, i64::MIN, i64::MAX)? else {
        return Ok(None);
    };
    let (id, snap) = (view.id, &view.snap);
    let head = view.memory.last().copied();
    let ce = keys::id_end(keys::CHUNK_PREFIX, id);
    let mut last = None;
    if let Some(h) = hint {
        let cs = keys::id_ts_key(keys::CHUNK_PREFIX, id, core.opts.window_start(h));
        for_each(snap, &cs, &ce, |k, v| {
            last = Some((k, v));
            Ok(true)
        })?;
    }
    if last.is_none() {
        for_each(snap, &keys::id_key(keys::CHUNK_PREFIX, id), &ce, |k, v| {
            last = Some((k, v));
            Ok(true)
        })?;
    }
    let chunk_last = match last {
        Some((k, v)) => chunk::decode(&v)
            .map_err(|e| chunk_corruption(&key.canonical(), &k, e))?
            .last()
            .copied(),
        None => None,
    };
    Ok(Some(match (head, chunk_last) {
        (Some(h), Some(c)) if c.ts > h.ts => Some(c),
        (Some(h), _) => Some(h),
        (None, c) => c,
    }))
}

pub(crate) fn series(core: &Core, q: &SeriesQuery) -> Result<SeriesPage> {
    if q.limit == 0 {
        return Err(Error::InvalidArgument("series limit 0".into()));
    }
    let prefix = keys::name_key(&q.prefix);
    let mut start = prefix.clone();
    if let Some(after) = &q.after {
        let mut a = keys::name_key(after);
        a.push(0);
        start = start.max(a);
    }
    let end = prefix_successor(&prefix).unwrap_or_default();
    let mut page = SeriesPage::default();
    if start >= end {
        return Ok(page);
    }
    for_each(&core.db, &start, &end, |k, _| {
        let text = k
            .strip_prefix(keys::NAME_PREFIX)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(|| bad_key(&k, "series name is not UTF-8"))?;
        let key = SeriesKey::parse(text).map_err(|e| bad_key(&k, &e.to_string()))?;
        if q.matchers.iter().all(|m| m.matches(&key)) {
            if page.series.len() == q.limit {
                page.more = true;
                return Ok(false);
            }
            page.series.push(key);
        }
        Ok(true)
    })?;
    Ok(page)
}

/// Timestamps of points of one series, as [`count_runs`] passes them:
/// `count` points at `first`, `first + step`, ... (a lone point: step 0,
/// count 1). Values are not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TsRun {
    pub first: i64,
    pub step: i64,
    pub count: u64,
}

/// For counts across series ([`super::select`]): passes the timestamps of
/// every point of `key` in `[from, to]` to `sink`, in time order, each
/// once; `false` if the series does not exist. A chunk whose header gives
/// its timestamps (a constant step) and inside whose span no head point
/// falls is passed as one run, clipped to the range, without decoding;
/// other chunks are decoded and merged with the head points in their span
/// (a head point at a chunk's timestamp is the same point, counted once),
/// and head points are passed one by one. Reads one snapshot, like
/// [`range`].
pub(crate) fn count_runs(
    core: &Core,
    key: &SeriesKey,
    from: i64,
    to: i64,
    sink: &mut dyn FnMut(TsRun),
) -> Result<bool> {
    check_span(from, to, 0)?;
    let Some(view) = view(core, key, from, to)? else {
        return Ok(false);
    };
    let name = key.canonical();
    // The head points in [from, to], in time order, come from the view;
    // the chunks are read here, by header.
    let heads = &view.memory;
    let mut h = 0usize;
    let (_, ce) = keys::ts_range(keys::CHUNK_PREFIX, view.id, from, to);
    let cs = keys::id_ts_key(keys::CHUNK_PREFIX, view.id, core.opts.window_start(from));
    let mut chunks = Paged::new(&view.snap, cs, ce);
    let one = |ts| TsRun {
        first: ts,
        step: 0,
        count: 1,
    };
    let head_at = |h: usize| heads.get(h).copied();
    let mut decoded = Vec::new();
    while let Some((k, v)) = chunks.next()? {
        let s = chunk::summary(&v).map_err(|e| chunk_corruption(&name, &k, e))?;
        // Head points before the chunk are in no chunk still to come.
        while let Some(p) = head_at(h).filter(|p| p.ts < s.first_ts) {
            sink(one(p.ts));
            h += 1;
        }
        if let (Some(step), Some(last)) = (s.step, s.last_ts()) {
            if head_at(h).is_none_or(|p| p.ts > last) {
                if let Some(run) = clip_run(s.first_ts, step, s.count as u64, from, to) {
                    sink(run);
                }
                continue;
            }
        }
        decoded.clear();
        chunk::decode_into(&v, &mut decoded).map_err(|e| chunk_corruption(&name, &k, e))?;
        let last = decoded.last().map_or(s.first_ts, |p| p.ts);
        for p in decoded.iter().filter(|p| p.ts >= from && p.ts <= to) {
            // A head point at a chunk point's timestamp is that point.
            while let Some(q) = head_at(h).filter(|q| q.ts <= p.ts) {
                if q.ts < p.ts {
                    sink(one(q.ts));
                }
                h += 1;
            }
            sink(one(p.ts));
        }
        while let Some(q) = head_at(h).filter(|q| q.ts <= last) {
            sink(one(q.ts));
            h += 1;
        }
    }
    while let Some(q) = head_at(h) {
        sink(one(q.ts));
        h += 1;
    }
    Ok(true)
}

/// The part of the run `first, first + step, ...` (`count` points) inside
/// `[from, to]`.
fn clip_run(first: i64, step: i64, count: u64, from: i64, to: i64) -> Option<TsRun> {
    if step == 0 || count <= 1 {
        return (count >= 1 && first >= from && first <= to).then_some(TsRun {
            first,
            step: 0,
            count: 1,
        });
    }
    let (f, st, n) = (i128::from(first), i128::from(step), i128::from(count));
    let lo = (i128::from(from) - f).max(0);
    let lo = (lo + st - 1) / st;
    let hi = ((i128::from(to) - f).div_euclid(st)).min(n - 1);
    if hi < lo {
        return None;
    }
    Some(TsRun {
        first: i64::try_from(f + lo * st).ok()?,
        step,
        count: u64::try_from(hi - lo + 1).ok()?,
    })
}
