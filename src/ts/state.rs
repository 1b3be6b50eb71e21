//! The in-memory side of the time-series layer: the catalog of series and
//! every series' head, guarded by one mutex ([`super::Core::state`]).
//!
//! The head of a series holds its points not yet sealed into chunks, each
//! with the sequence of the log record (`ts/l/<seq>`) that stores it; the
//! head is the only place those points live outside the log. It is
//! changed only under the mutex, at the moment the write that stores the
//! change is enqueued to the engine, so its order is the WAL's order and
//! it may run ahead of what is durable by the writes in flight. Readers
//! therefore use only the points whose log record is visible in their
//! engine snapshot (`ts/o/log_seq`, written with every record, says up to
//! which sequence that is) and wait for the others.
//!
//! Pins: a log record may be deleted once no head holds a point from it.
//! `pins` orders the non-empty heads by their oldest log sequence, so the
//! smallest is the first record still needed.
//!
//! On open, the catalog is read from `ts/i/` and the heads are rebuilt by
//! replaying the live log records in order, skipping each series' points
//! of records at or below its watermark (`log_sealed`): the cost is the
//! number of series plus the log, never the data in chunks.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::batch::WriteBatch;
use crate::db::{Db, Snapshot};
use crate::error::{Error, Result};

use super::keys::{self, SeriesRecord};
use super::log;
use super::maintenance::Job;
use super::options::TsOptions;
use super::Point;

/// Pairs fetched per engine call by paged scans.
pub(crate) const SCAN_PAGE_PAIRS: usize = 1024;
/// Log records fetched per engine call on open (each up to megabytes).
const LOG_PAGE_RECORDS: usize = 4;

/// One series in memory.
#[derive(Debug)]
pub(crate) struct Series {
    pub id: u64,
    pub record: SeriesRecord,
    pub canonical: String,
    /// Head points, strictly increasing timestamps.
    pub head: Vec<Point>,
    /// The log sequence of each head point (parallel to `head`).
    pub head_seqs: Vec<u64>,
    /// At most the smallest of `head_seqs` (exact after a seal).
    pub first_seq: u64,
    /// The newest log record that holds a point of this series.
    pub last_seq: u64,
    /// The entry of this series in `State::pins`, if any.
    pub pin: Option<u64>,
    /// Newest timestamp ever accepted (an upper bound after deletes).
    pub newest_ts: Option<i64>,
    /// Time ranges whose deletion is in progress: chunk values read from
    /// the engine inside them are stale.
    pub deleting: Vec<(i64, i64)>,
    /// A seal failed (a damaged chunk); not retried until reopened.
    pub seal_failed: bool,
}

impl Series {
    pub fn new(id: u64, record: SeriesRecord) -> Self {
        Series {
            id,
            canonical: record.key.canonical(),
            newest_ts: record.sealed_max_ts,
            last_seq: record.log_sealed,
            record,
            head: Vec::new(),
            head_seqs: Vec::new(),
            first_seq: 0,
            pin: None,
            deleting: Vec::new(),
            seal_failed: false,
        }
    }

    /// The retention in force: 0 is forever.
    pub fn retention_ms(&self, default_ms: i64) -> i64 {
        if self.record.retention_ms < 0 {
            default_ms
        } else {
            self.record.retention_ms
        }
    }

    /// Whether the sealer should take this head now.
    pub fn needs_seal(&self, opts: &TsOptions) -> bool {
        if self.seal_failed {
            return false;
        }
        match (self.head.first(), self.head.last()) {
            (Some(a), Some(b)) => {
                self.head.len() >= opts.head_points_max
                    || opts.window_start(a.ts) != opts.window_start(b.ts)
            }
            _ => false,
        }
    }

    /// The value at `ts` in the head (which keeps the points of a seal in
    /// flight until it is durable).
    pub fn memory_value(&self, ts: i64) -> Option<f64> {
        self.head
            .binary_search_by_key(&ts, |p| p.ts)
            .ok()
            .and_then(|i| self.head.get(i))
            .map(|p| p.value)
    }

    /// The head's points in `[from, to]`, in time order, and the newest
    /// log sequence among them (0: none).
    pub fn memory_points(&self, from: i64, to: i64) -> (Vec<Point>, u64) {
        let a = self.head.partition_point(|p| p.ts < from);
        let b = self.head.partition_point(|p| p.ts <= to).max(a);
        let points = self.head.get(a..b).unwrap_or_default().to_vec();
        let seq = self
            .head_seqs
            .get(a..b)
            .unwrap_or_default()
            .iter()
            .copied()
            .max()
            .unwrap_or(0);
        (points, seq)
    }

    /// Merges `points` (strictly increasing; a newer write, from log
    /// record `seq`) into the head; returns how many timestamps are new
    /// to it.
    pub fn merge_head(&mut self, points: &[Point], seq: u64) -> usize {
        if points.is_empty() {
            return 0;
        }
        if self.head.is_empty() {
            self.first_seq = seq;
        }
        self.last_seq = self.last_seq.max(seq);
        let appending = match (self.head.last(), points.first()) {
            (Some(last), Some(first)) => first.ts > last.ts,
            _ => true,
        };
        if appending {
            self.head.extend_from_slice(points);
            self.head_seqs
                .extend(std::iter::repeat_n(seq, points.len()));
            return points.len();
        }
        let mut added = 0;
        for &p in points {
            match self.head.binary_search_by_key(&p.ts, |q| q.ts) {
                Ok(i) => {
                    if let (Some(q), Some(s)) = (self.head.get_mut(i), self.head_seqs.get_mut(i)) {
                        q.value = p.value;
                        *s = seq;
                    }
                }
                Err(i) => {
                    self.head.insert(i, p);
                    self.head_seqs.insert(i, seq);
                    added += 1;
                }
            }
        }
        added
    }

    /// Whether `ts` lies in a range being deleted.
    pub fn is_deleting(&self, ts: i64) -> bool {
        self.deleting.iter().any(|&(a, b)| a <= ts && ts <= b)
    }
}

/// Everything the mutex guards.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub by_name: HashMap<String, u64>,
    pub series: BTreeMap<u64, Series>,
    pub next_id: u64,
    /// 0: keep forever.
    pub default_retention_ms: i64,
    /// Heads to seal (their closed windows, or all at the point bound).
    pub to_seal: BTreeSet<u64>,
    /// Heads to seal whole (the log budget asks).
    pub to_seal_full: BTreeSet<u64>,
    pub jobs: VecDeque<Job>,
    /// Points in all heads.
    pub head_points: usize,
    /// The sequence the next log record gets.
    pub next_log_seq: u64,
    /// Every log record up to this one is visible to reads (durable).
    pub confirmed_log_seq: u64,
    /// Live log records: sequence -> bytes.
    pub log_live: BTreeMap<u64, u64>,
    /// Their bytes.
    pub log_live_bytes: u64,
    /// (oldest log sequence, series id) of every non-empty head.
    pub pins: BTreeSet<(u64, u64)>,
    /// The log budget asked for seals not yet done.
    pub budget_forced: bool,
}

impl State {
    /// Brings `pins` up to date with the head of `id`.
    pub fn repin(&mut self, id: u64) {
        let Some(s) = self.series.get_mut(&id) else {
            return;
        };
        let want = (!s.head.is_empty()).then_some(s.first_seq);
        if want != s.pin {
            if let Some(old) = s.pin {
                self.pins.remove(&(old, id));
            }
            if let Some(new) = want {
                self.pins.insert((new, id));
            }
            s.pin = want;
        }
    }

    /// Forgets the pin of `id` (its series is going away).
    pub fn unpin(&mut self, id: u64) {
        if let Some(old) = self.series.get_mut(&id).and_then(|s| s.pin.take()) {
            self.pins.remove(&(old, id));
        }
    }

    /// Advances `confirmed_log_seq` to what `snap` sees.
    pub fn confirm(&mut self, snap: &Snapshot) -> Result<()> {
        if self.confirmed_log_seq + 1 >= self.next_log_seq {
            return Ok(());
        }
        if let Some(v) = snap.get(keys::LOG_SEQ_KEY)? {
            let seq = parse_u64(keys::LOG_SEQ_KEY, &v)?;
            self.confirmed_log_seq = self.confirmed_log_seq.max(seq);
        }
        Ok(())
    }

    /// Takes from `log_live` the records no head needs and every read
    /// sees: those the caller deletes.
    pub fn take_dead_logs(&mut self) -> BTreeMap<u64, u64> {
        let pinned = self.pins.first().map_or(self.next_log_seq, |p| p.0);
        let bound = pinned.min(self.confirmed_log_seq + 1);
        let keep = self.log_live.split_off(&bound);
        let dead = std::mem::replace(&mut self.log_live, keep);
        self.log_live_bytes -= dead.values().sum::<u64>();
        dead
    }

    /// Puts back records whose deletion failed.
    pub fn untake_logs(&mut self, logs: BTreeMap<u64, u64>) {
        self.log_live_bytes += logs.values().sum::<u64>();
        self.log_live.extend(logs);
    }

    /// The series whose heads pin the oldest log records, enough of them
    /// that sealing them brings the live log under half of `budget`.
    pub fn budget_victims(&self, budget: u64) -> Vec<u64> {
        let excess = self.log_live_bytes.saturating_sub(budget / 2);
        let mut freed = 0;
        let mut until = self.next_log_seq;
        for (&seq, &bytes) in &self.log_live {
            if freed >= excess {
                until = seq;
                break;
            }
            freed += bytes;
        }
        self.pins
            .iter()
            .take_while(|p| p.0 < until)
            .map(|p| p.1)
            .collect()
    }
}

/// What paged scans read from: the engine or one of its snapshots.
pub(crate) trait ScanSource {
    fn scan_page(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
}

impl ScanSource for Db {
    fn scan_page(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.scan(start, end, limit)
    }
}

impl ScanSource for Snapshot {
    fn scan_page(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.scan(start, end, limit)
    }
}

/// Calls `f` on every pair in `[start, end)`, a page at a time, until it
/// returns `false`.
pub(crate) fn for_each(
    src: &impl ScanSource,
    start: &[u8],
    end: &[u8],
    mut f: impl FnMut(Vec<u8>, Vec<u8>) -> Result<bool>,
) -> Result<()> {
    let mut cursor = start.to_vec();
    loop {
        let page = src.scan_page(&cursor, Some(end), SCAN_PAGE_PAIRS)?;
        let full = page.len() == SCAN_PAGE_PAIRS;
        let mut last = None;
        for (k, v) in page {
            last = Some(k.clone());
            if !f(k, v)? {
                return Ok(());
            }
        }
        match last {
            Some(mut k) if full => {
                k.push(0);
                cursor = k;
            }
            _ => return Ok(()),
        }
    }
}

fn catalog_corruption(key: &[u8], what: impl Into<String>) -> Error {
    Error::Corruption {
        file: format!(
            "time-series key {}",
            crate::client::render::escape_bytes(key)
        ),
        offset: 0,
        what: what.into(),
    }
}

fn parse_u64(key: &[u8], v: &[u8]) -> Result<u64> {
    let b: [u8; 8] = v
        .try_into()
        .map_err(|_| catalog_corruption(key, "not 8 bytes"))?;
    Ok(u64::from_le_bytes(b))
}

impl State {
    /// Reads the catalog and rebuilds every head from the log; returns
    /// the deletions left unfinished by the last run.
    pub fn load(db: &Db, opts: &TsOptions) -> Result<(State, Vec<u64>)> {
        let mut st = State {
            next_id: 1,
            next_log_seq: 1,
            ..State::default()
        };
        if let Some(v) = db.get(keys::NEXT_ID_KEY)? {
            st.next_id = parse_u64(keys::NEXT_ID_KEY, &v)?.max(1);
        }
        if let Some(v) = db.get(keys::DEFAULT_RETENTION_KEY)? {
            st.default_retention_ms = (parse_u64(keys::DEFAULT_RETENTION_KEY, &v)? as i64).max(0);
        }
        let mut last_log = 0;
        if let Some(v) = db.get(keys::LOG_SEQ_KEY)? {
            last_log = parse_u64(keys::LOG_SEQ_KEY, &v)?;
        }
        let meta_end = crate::types::prefix_successor(keys::META_PREFIX).unwrap_or_default();
        for_each(db, keys::META_PREFIX, &meta_end, |k, v| {
            let id = keys::parse_id_key(keys::META_PREFIX, &k)
                .ok_or_else(|| catalog_corruption(&k, "bad catalog key"))?;
            let record = SeriesRecord::decode(&v).map_err(|e| catalog_corruption(&k, e))?;
            last_log = last_log.max(record.log_sealed);
            let s = Series::new(id, record);
            st.by_name.insert(s.canonical.clone(), id);
            st.series.insert(id, s);
            st.next_id = st.next_id.max(id + 1);
            Ok(true)
        })?;
        // The live log, in order.
        let log_end = crate::types::prefix_successor(keys::LOG_PREFIX).unwrap_or_default();
        let mut cursor = keys::LOG_PREFIX.to_vec();
        loop {
            let page = db.scan(&cursor, Some(&log_end), LOG_PAGE_RECORDS)?;
            let full = page.len() == LOG_PAGE_RECORDS;
            for (k, v) in &page {
                let seq = keys::parse_id_key(keys::LOG_PREFIX, k)
                    .ok_or_else(|| catalog_corruption(k, "bad log record key"))?;
                st.replay(seq, v).map_err(|e| catalog_corruption(k, e))?;
                last_log = last_log.max(seq);
            }
            match page.last() {
                Some((k, _)) if full => {
                    cursor = k.clone();
                    cursor.push(0);
                }
                _ => break,
            }
        }
        st.next_log_seq = last_log + 1;
        st.confirmed_log_seq = last_log;
        st.migrate_head_keys(db)?;
        let ids: Vec<u64> = st.series.keys().copied().collect();
        for id in ids {
            st.repin(id);
            let Some(s) = st.series.get_mut(&id) else {
                continue;
            };
            if let Some(last) = s.head.last() {
                s.newest_ts = Some(s.newest_ts.map_or(last.ts, |n| n.max(last.ts)));
            }
            st.head_points += s.head.len();
            if s.needs_seal(opts) {
                st.to_seal.insert(id);
            }
        }
        let mut deleting = Vec::new();
        let del_end = crate::types::prefix_successor(keys::DELETING_PREFIX).unwrap_or_default();
        for_each(db, keys::DELETING_PREFIX, &del_end, |k, _| {
            if let Some(id) = keys::parse_id_key(keys::DELETING_PREFIX, &k) {
                deleting.push(id);
                st.next_id = st.next_id.max(id + 1);
            }
            Ok(true)
        })?;
        Ok((st, deleting))
    }

    /// Replays log record `seq` into the heads of the series it holds
    /// points of, skipping each series' points at or below its watermark.
    fn replay(&mut self, seq: u64, record: &[u8]) -> std::result::Result<(), String> {
        let series = &mut self.series;
        log::decode(record, |id, points| {
            if let Some(s) = series.get_mut(&id) {
                if seq > s.record.log_sealed {
                    s.merge_head(points, seq);
                }
            }
        })?;
        self.log_live.insert(seq, record.len() as u64);
        self.log_live_bytes += record.len() as u64;
        Ok(())
    }

    /// Moves the head keys of format 1 (`ts/p/<id><ts>`, one per point)
    /// into one log record, in one atomic batch.
    fn migrate_head_keys(&mut self, db: &Db) -> Result<()> {
        let point_end = crate::types::prefix_successor(keys::POINT_PREFIX).unwrap_or_default();
        let mut points: BTreeMap<u64, Vec<Point>> = BTreeMap::new();
        let mut batch = WriteBatch::new();
        for_each(db, keys::POINT_PREFIX, &point_end, |k, v| {
            let (id, ts) = keys::parse_id_ts_key(keys::POINT_PREFIX, &k)
                .ok_or_else(|| catalog_corruption(&k, "bad head point key"))?;
            let value = keys::parse_point_value(&v)
                .ok_or_else(|| catalog_corruption(&k, "head point value is not 8 bytes"))?;
            points.entry(id).or_default().push(Point { ts, value });
            batch.delete(k);
            Ok(true)
        })?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut enc = log::LogEncoder::with_points(batch.len());
        for (id, pts) in &points {
            enc.group(*id, pts);
        }
        let seq = self.next_log_seq;
        let record = enc.finish();
        batch.put(keys::log_key(seq), record.clone());
        batch.put(keys::LOG_SEQ_KEY, seq.to_le_bytes().to_vec());
        db.write(batch)?;
        self.next_log_seq += 1;
        self.confirmed_log_seq = seq;
        self.replay(seq, &record)
            .map_err(|e| catalog_corruption(&keys::log_key(seq), e))
    }
}
