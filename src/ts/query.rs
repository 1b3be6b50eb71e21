//! The read path: range queries, the latest point, series listings.
//!
//! Every read takes one engine snapshot and reads only from it, so a seal
//! (one atomic batch that writes a chunk and deletes the head keys it
//! holds) is seen entirely or not at all, and nothing not yet durable is
//! seen. A range merges two streams of the snapshot in time order: the
//! series' chunks (from the window holding `from`, since chunks never
//! straddle a window) and its head keys; on a tie the head point wins (it
//! is the newer write). Both are read a page at a time, so memory stays
//! bounded by a page plus one decoded chunk whatever the range.

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
    heads: Paged<'a>,
    chunks: Paged<'a>,
    head_peek: Option<Point>,
    /// The decoded chunk and the index of its next point.
    chunk_points: Vec<Point>,
    chunk_next: usize,
    failed: bool,
}

impl<'a> PointStream<'a> {
    fn new(core: &Core, snap: &'a Snapshot, id: u64, name: String, from: i64, to: i64) -> Self {
        let (hs, he) = keys::ts_range(keys::POINT_PREFIX, id, from, to);
        let (_, ce) = keys::ts_range(keys::CHUNK_PREFIX, id, from, to);
        let cs = keys::id_ts_key(keys::CHUNK_PREFIX, id, core.opts.window_start(from));
        PointStream {
            name,
            from,
            to,
            heads: Paged::new(snap, hs, he),
            chunks: Paged::new(snap, cs, ce),
            head_peek: None,
            chunk_points: Vec::new(),
            chunk_next: 0,
            failed: false,
        }
    }

    fn peek_head(&mut self) -> Result<Option<Point>> {
        if self.head_peek.is_none() {
            if let Some((k, v)) = self.heads.next()? {
                let (_, ts) = keys::parse_id_ts_key(keys::POINT_PREFIX, &k)
                    .ok_or_else(|| bad_key(&k, "bad head point key"))?;
                let value = keys::parse_point_value(&v)
                    .ok_or_else(|| bad_key(&k, "head point value is not 8 bytes"))?;
                self.head_peek = Some(Point { ts, value });
            }
        }
        Ok(self.head_peek)
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
                self.head_peek = None;
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

/// Checks a range query's arguments.
pub fn check_range(q: &RangeQuery) -> Result<()> {
    if q.from > q.to {
        return Err(Error::InvalidArgument(format!(
            "range from {} is after to {}",
            q.from, q.to
        )));
    }
    if q.bucket_ms < 0 {
        return Err(Error::InvalidArgument(format!(
            "bucket of {} ms is negative",
            q.bucket_ms
        )));
    }
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

pub(crate) fn range(core: &Core, key: &SeriesKey, q: &RangeQuery) -> Result<Option<RangePage>> {
    check_range(q)?;
    let Some(id) = core.id_of(key) else {
        return Ok(None);
    };
    let snap = core.db.snapshot();
    let stream = PointStream::new(core, &snap, id, key.canonical(), q.from, q.to);
    aggregate::page(stream, q.agg, q.bucket_ms, q.limit).map(Some)
}

pub(crate) fn latest(core: &Core, key: &SeriesKey) -> Result<Option<Option<Point>>> {
    let (id, hint) = {
        let st = core.lock();
        let Some(&id) = st.by_name.get(&key.canonical()) else {
            return Ok(None);
        };
        (id, st.series.get(&id).and_then(|s| s.record.sealed_max_ts))
    };
    let snap = core.db.snapshot();
    let mut head = None;
    let (hs, he) = keys::ts_range(keys::POINT_PREFIX, id, i64::MIN, i64::MAX);
    for_each(&snap, &hs, &he, |k, v| {
        head = Some((k, v));
        Ok(true)
    })?;
    let head = match head {
        Some((k, v)) => {
            let (_, ts) = keys::parse_id_ts_key(keys::POINT_PREFIX, &k)
                .ok_or_else(|| bad_key(&k, "bad head point key"))?;
            let value = keys::parse_point_value(&v)
                .ok_or_else(|| bad_key(&k, "head point value is not 8 bytes"))?;
            Some(Point { ts, value })
        }
        None => None,
    };
    let ce = keys::id_end(keys::CHUNK_PREFIX, id);
    let mut last = None;
    if let Some(h) = hint {
        let cs = keys::id_ts_key(keys::CHUNK_PREFIX, id, core.opts.window_start(h));
        for_each(&snap, &cs, &ce, |k, v| {
            last = Some((k, v));
            Ok(true)
        })?;
    }
    if last.is_none() {
        for_each(&snap, &keys::id_key(keys::CHUNK_PREFIX, id), &ce, |k, v| {
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
    if from > to {
        return Err(Error::InvalidArgument(format!(
            "range from {from} is after to {to}"
        )));
    }
    let Some(id) = core.id_of(key) else {
        return Ok(false);
    };
    let name = key.canonical();
    let snap = core.db.snapshot();
    // The stream supplies the head points in [from, to]; the chunks are
    // read here, by header.
    let mut heads = PointStream::new(core, &snap, id, name.clone(), from, to);
    let (_, ce) = keys::ts_range(keys::CHUNK_PREFIX, id, from, to);
    let cs = keys::id_ts_key(keys::CHUNK_PREFIX, id, core.opts.window_start(from));
    let mut chunks = Paged::new(&snap, cs, ce);
    let one = |ts| TsRun {
        first: ts,
        step: 0,
        count: 1,
    };
    let mut decoded = Vec::new();
    while let Some((k, v)) = chunks.next()? {
        let s = chunk::summary(&v).map_err(|e| chunk_corruption(&name, &k, e))?;
        // Head points before the chunk are in no chunk still to come.
        while let Some(h) = heads.peek_head()?.filter(|h| h.ts < s.first_ts) {
            sink(one(h.ts));
            heads.head_peek = None;
        }
        let head_inside = |heads: &mut PointStream<'_>, last: i64| -> Result<bool> {
            Ok(heads.peek_head()?.is_some_and(|h| h.ts <= last))
        };
        if let (Some(step), Some(last)) = (s.step, s.last_ts()) {
            if !head_inside(&mut heads, last)? {
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
            while let Some(h) = heads.peek_head()?.filter(|h| h.ts <= p.ts) {
                if h.ts < p.ts {
                    sink(one(h.ts));
                }
                heads.head_peek = None;
            }
            sink(one(p.ts));
        }
        while let Some(h) = heads.peek_head()?.filter(|h| h.ts <= last) {
            sink(one(h.ts));
            heads.head_peek = None;
        }
    }
    while let Some(h) = heads.peek_head()? {
        sink(one(h.ts));
        heads.head_peek = None;
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
