//! The in-memory side of the time-series layer: the catalog of series and
//! every series' head, guarded by one mutex ([`super::Core::state`]).
//!
//! The head of a series is the authoritative list of its points that are
//! stored as head keys (`ts/p/...`) and not yet sealed into chunks. It is
//! changed only under the mutex, at the moment the write that stores the
//! change is enqueued to the engine, so its order is the WAL's order. It
//! may thus run ahead of what is durable by the writes in flight; reads
//! never use it (they read a snapshot of the engine), only writers and the
//! sealer do.
//!
//! On open, the catalog is read from `ts/i/` and the heads are rebuilt by
//! scanning `ts/p/`: the cost is the number of series plus the points not
//! yet sealed, never the data in chunks.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::db::{Db, Snapshot};
use crate::error::{Error, Result};

use super::keys::{self, SeriesRecord};
use super::maintenance::Job;
use super::options::TsOptions;
use super::Point;

/// Pairs fetched per engine call by paged scans.
pub(crate) const SCAN_PAGE_PAIRS: usize = 1024;

/// One series in memory.
#[derive(Debug)]
pub(crate) struct Series {
    pub id: u64,
    pub record: SeriesRecord,
    pub canonical: String,
    /// Head points, strictly increasing timestamps.
    pub head: Vec<Point>,
    /// Newest timestamp ever accepted (an upper bound after deletes).
    pub newest_ts: Option<i64>,
    /// Points moved from the head by a seal whose write is not yet known
    /// to be durable (so writers still find them).
    pub sealing: Vec<Point>,
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
            record,
            head: Vec::new(),
            sealing: Vec::new(),
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

    /// The value at `ts` in the head or in a seal in flight.
    pub fn memory_value(&self, ts: i64) -> Option<f64> {
        let find = |v: &[Point]| {
            v.binary_search_by_key(&ts, |p| p.ts)
                .ok()
                .and_then(|i| v.get(i))
                .map(|p| p.value)
        };
        find(&self.head).or_else(|| find(&self.sealing))
    }

    /// Merges `points` (a newer write) into the head; returns how many
    /// timestamps are new to it.
    pub fn merge_head(&mut self, points: &BTreeMap<i64, f64>) -> usize {
        let appending = match (self.head.last(), points.keys().next()) {
            (Some(last), Some(&first)) => first > last.ts,
            _ => true,
        };
        if appending {
            self.head
                .extend(points.iter().map(|(&ts, &value)| Point { ts, value }));
            return points.len();
        }
        let mut added = 0;
        for (&ts, &value) in points {
            match self.head.binary_search_by_key(&ts, |p| p.ts) {
                Ok(i) => {
                    if let Some(p) = self.head.get_mut(i) {
                        p.value = value;
                    }
                }
                Err(i) => {
                    self.head.insert(i, Point { ts, value });
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
    pub to_seal: BTreeSet<u64>,
    pub jobs: VecDeque<Job>,
    /// Points in all heads.
    pub head_points: usize,
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

impl State {
    /// Reads the catalog and rebuilds every head; returns the deletions
    /// left unfinished by the last run.
    pub fn load(db: &Db, opts: &TsOptions) -> Result<(State, Vec<u64>)> {
        let mut st = State {
            next_id: 1,
            ..State::default()
        };
        if let Some(v) = db.get(keys::NEXT_ID_KEY)? {
            let b: [u8; 8] = v
                .as_slice()
                .try_into()
                .map_err(|_| catalog_corruption(keys::NEXT_ID_KEY, "not 8 bytes"))?;
            st.next_id = u64::from_le_bytes(b).max(1);
        }
        if let Some(v) = db.get(keys::DEFAULT_RETENTION_KEY)? {
            let b: [u8; 8] = v
                .as_slice()
                .try_into()
                .map_err(|_| catalog_corruption(keys::DEFAULT_RETENTION_KEY, "not 8 bytes"))?;
            st.default_retention_ms = i64::from_le_bytes(b).max(0);
        }
        let meta_end = crate::types::prefix_successor(keys::META_PREFIX).unwrap_or_default();
        for_each(db, keys::META_PREFIX, &meta_end, |k, v| {
            let id = keys::parse_id_key(keys::META_PREFIX, &k)
                .ok_or_else(|| catalog_corruption(&k, "bad catalog key"))?;
            let record = SeriesRecord::decode(&v).map_err(|e| catalog_corruption(&k, e))?;
            let s = Series::new(id, record);
            st.by_name.insert(s.canonical.clone(), id);
            st.series.insert(id, s);
            st.next_id = st.next_id.max(id + 1);
            Ok(true)
        })?;
        let point_end = crate::types::prefix_successor(keys::POINT_PREFIX).unwrap_or_default();
        for_each(db, keys::POINT_PREFIX, &point_end, |k, v| {
            let (id, ts) = keys::parse_id_ts_key(keys::POINT_PREFIX, &k)
                .ok_or_else(|| catalog_corruption(&k, "bad head point key"))?;
            let value = keys::parse_point_value(&v)
                .ok_or_else(|| catalog_corruption(&k, "head point value is not 8 bytes"))?;
            if let Some(s) = st.series.get_mut(&id) {
                s.head.push(Point { ts, value });
                st.head_points += 1;
            }
            Ok(true)
        })?;
        for s in st.series.values_mut() {
            if let Some(last) = s.head.last() {
                s.newest_ts = Some(s.newest_ts.map_or(last.ts, |n| n.max(last.ts)));
            }
            if s.needs_seal(opts) {
                st.to_seal.insert(s.id);
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
}
