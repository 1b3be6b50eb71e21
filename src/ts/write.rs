//! The write path: adding points, and the catalog settings (retention,
//! duplicate policy).
//!
//! An add is one engine batch: one log record `ts/l/<seq>` holding every
//! point of the request (see [`super::log`]), `ts/o/log_seq`, and the
//! catalog keys of the new series, all or nothing; it is acknowledged
//! when that batch is durable. The whole request is checked first (finite
//! values, retention, the out-of-order window, the duplicate policy)
//! against the heads and the chunks, under the state mutex; the batch is
//! enqueued and the heads changed under the same hold of the mutex, so
//! heads follow the log's order.

use std::collections::{BTreeMap, HashMap};

use crate::batch::WriteBatch;
use crate::error::{Error, Result};

use super::chunk;
use super::keys::{self, SeriesRecord};
use super::log::LogEncoder;
use super::series::SeriesKey;
use super::state::{self, Series};
use super::{enqueue, enqueue_write, Core, DupPolicy, Point, Retention, SeriesPoints, TsFuture};
use crate::db::WriteFuture;

/// The points one request stores for one series.
struct Stage<'a> {
    id: u64,
    key: &'a SeriesKey,
    canonical: String,
    is_new: bool,
    newest: Option<i64>,
    /// Policy `last`: the points in request order (sorted at the end).
    points: Vec<Point>,
    /// Other policies: the values resolved so far.
    resolved: BTreeMap<i64, f64>,
}

impl Stage<'_> {
    /// The points to store: strictly increasing, the last write of a
    /// timestamp winning.
    fn finish(&mut self) {
        if !self.resolved.is_empty() {
            self.points = std::mem::take(&mut self.resolved)
                .into_iter()
                .map(|(ts, value)| Point { ts, value })
                .collect();
            return;
        }
        if self.points.windows(2).all(|w| w[0].ts < w[1].ts) {
            return;
        }
        self.points.sort_by_key(|p| p.ts);
        let mut out: Vec<Point> = Vec::with_capacity(self.points.len());
        for p in self.points.drain(..) {
            match out.last_mut() {
                Some(q) if q.ts == p.ts => *q = p,
                _ => out.push(p),
            }
        }
        self.points = out;
    }
}

pub(crate) fn add(core: &Core, batch: &[SeriesPoints<'_>]) -> Result<WriteFuture> {
    let opts = &core.opts;
    let total: usize = batch.iter().map(|b| b.points.len()).sum();
    if total > opts.add_points_max {
        return Err(Error::LimitExceeded {
            what: format!(
                "{total} points in one add exceed add_points_max {}",
                opts.add_points_max
            ),
        });
    }
    for b in batch {
        if let Some(p) = b.points.iter().find(|p| !p.value.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "series {}: value {} at {} is not a finite number (NaN and infinities are refused)",
                b.series, p.value, p.ts
            )));
        }
    }
    let canonicals: Vec<String> = batch.iter().map(|b| b.series.canonical()).collect();
    let now = (opts.clock)();
    let mut guard = core.lock();
    let st = &mut *guard;
    let mut stages: Vec<Stage<'_>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut new_series = 0u64;
    for (b, canonical) in batch.iter().zip(&canonicals) {
        let si = match index.get(canonical.as_str()) {
            Some(&i) => i,
            None => {
                let existing = st.by_name.get(canonical).copied();
                let id = match existing {
                    Some(id) => id,
                    None => {
                        if st.series.len() + new_series as usize >= opts.series_max {
                            return Err(Error::LimitExceeded {
                                what: format!(
                                    "series {canonical} would exceed series_max {}",
                                    opts.series_max
                                ),
                            });
                        }
                        new_series += 1;
                        st.next_id + new_series - 1
                    }
                };
                stages.push(Stage {
                    id,
                    key: b.series,
                    canonical: canonical.clone(),
                    is_new: existing.is_none(),
                    newest: st.series.get(&id).and_then(|s| s.newest_ts),
                    points: Vec::with_capacity(b.points.len()),
                    resolved: BTreeMap::new(),
                });
                index.insert(canonical.as_str(), stages.len() - 1);
                stages.len() - 1
            }
        };
        let Some(stage) = stages.get_mut(si) else {
            continue;
        };
        let series = st.series.get(&stage.id);
        stage_points(core, stage, series, st.default_retention_ms, now, b)?;
    }
    let mut adding = 0;
    for s in &mut stages {
        s.finish();
        adding += s.points.len();
    }
    if st.head_points + adding > opts.head_points_total_max {
        return Err(Error::LimitExceeded {
            what: format!(
                "time-series heads hold {} points awaiting their seal (head_points_total_max {}); retry shortly",
                st.head_points, opts.head_points_total_max
            ),
        });
    }
    if st.log_live_bytes > opts.log_bytes_max.saturating_mul(2) {
        // The seals that free the log must be under way, or every add
        // from now on is refused and none asks for them.
        let wake = force_budget_seals(st, opts.log_bytes_max);
        let live = st.log_live_bytes;
        drop(guard);
        if wake {
            core.work_cv.notify_all();
        }
        return Err(Error::LimitExceeded {
            what: format!(
                "time-series log records hold {} bytes awaiting their seal (twice log_bytes_max {}); retry shortly",
                live, opts.log_bytes_max
            ),
        });
    }
    let mut wb = WriteBatch::new();
    let mut log = LogEncoder::with_points(adding);
    for s in &stages {
        if s.is_new {
            wb.put(keys::name_key(&s.canonical), s.id.to_be_bytes().to_vec());
            wb.put(
                keys::id_key(keys::META_PREFIX, s.id),
                new_record(s.key).encode(),
            );
        }
        log.group(s.id, &s.points);
    }
    if new_series > 0 {
        wb.put(
            keys::NEXT_ID_KEY,
            (st.next_id + new_series).to_le_bytes().to_vec(),
        );
    }
    let seq = st.next_log_seq;
    let record_bytes = if log.is_empty() {
        0
    } else {
        let record = log.finish();
        let n = record.len() as u64;
        wb.put(keys::log_key(seq), record);
        wb.put(keys::LOG_SEQ_KEY, seq.to_le_bytes().to_vec());
        n
    };
    let future = enqueue_write(&core.db, wb)?;
    // Durable-to-be: now the heads may change.
    if record_bytes > 0 {
        st.next_log_seq += 1;
        st.log_live.insert(seq, record_bytes);
        st.log_live_bytes += record_bytes;
    }
    st.next_id += new_series;
    let mut wake = false;
    for s in stages {
        if s.is_new {
            st.by_name.insert(s.canonical.clone(), s.id);
            core.metrics.series_created.inc();
        }
        let series = st
            .series
            .entry(s.id)
            .or_insert_with(|| Series::new(s.id, new_record(s.key)));
        st.head_points += series.merge_head(&s.points, seq);
        series.newest_ts = match (series.newest_ts, s.newest) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let needs = series.needs_seal(opts);
        st.repin(s.id);
        if needs && st.to_seal.insert(s.id) {
            wake = true;
        }
    }
    if st.log_live_bytes > opts.log_bytes_max {
        wake |= force_budget_seals(st, opts.log_bytes_max);
    }
    core.metrics.points_written.add(adding as u64);
    drop(guard);
    if wake {
        core.work_cv.notify_all();
    }
    Ok(future)
}

/// Queues whole-head seals of the series pinning the oldest log records,
/// unless such a round is already pending; whether the maintenance thread
/// must be woken.
fn force_budget_seals(st: &mut state::State, log_bytes_max: u64) -> bool {
    if st.budget_forced {
        return false;
    }
    let victims = st.budget_victims(log_bytes_max);
    if victims.is_empty() {
        return false;
    }
    st.to_seal_full.extend(victims);
    st.budget_forced = true;
    true
}

fn new_record(key: &SeriesKey) -> SeriesRecord {
    SeriesRecord {
        key: key.clone(),
        policy: DupPolicy::Last,
        retention_ms: Retention::Default.to_ms(),
        sealed_max_ts: None,
        log_sealed: 0,
    }
}

/// Checks the points of one series and stages what they store.
fn stage_points(
    core: &Core,
    stage: &mut Stage<'_>,
    series: Option<&Series>,
    default_retention_ms: i64,
    now: i64,
    b: &SeriesPoints<'_>,
) -> Result<()> {
    let opts = &core.opts;
    let policy = series.map_or(DupPolicy::Last, |s| s.record.policy);
    let retention = series.map_or(default_retention_ms, |s| {
        s.retention_ms(default_retention_ms)
    });
    let cutoff = (retention > 0).then(|| opts.window_start(now.saturating_sub(retention)));
    for p in b.points {
        if let Some(c) = cutoff.filter(|&c| p.ts < c) {
            return Err(Error::InvalidArgument(format!(
                "series {}: point at {} is older than the series keeps (retention {retention} ms: nothing before {c})",
                stage.canonical, p.ts
            )));
        }
        if let Some(n) = stage.newest {
            let oldest = n.saturating_sub(opts.out_of_order_window_ms);
            if p.ts < oldest {
                return Err(Error::InvalidArgument(format!(
                    "series {}: point at {} is too far out of order: the newest point is at {n} and the out-of-order window is {} ms",
                    stage.canonical, p.ts, opts.out_of_order_window_ms
                )));
            }
        }
        if policy == DupPolicy::Last {
            stage.points.push(*p);
            stage.newest = Some(stage.newest.map_or(p.ts, |n| n.max(p.ts)));
            continue;
        }
        let existing = match stage.resolved.get(&p.ts) {
            Some(v) => Some(*v),
            None => match series {
                Some(s) => stored_value(core, s, p.ts)?,
                None => None,
            },
        };
        if let Some(v) = resolve(policy, existing, p.value, &stage.canonical, p.ts)? {
            stage.resolved.insert(p.ts, v);
            stage.newest = Some(stage.newest.map_or(p.ts, |n| n.max(p.ts)));
        }
    }
    Ok(())
}

/// What a duplicate policy stores for a new value given the one stored.
fn resolve(
    policy: DupPolicy,
    existing: Option<f64>,
    new: f64,
    series: &str,
    ts: i64,
) -> Result<Option<f64>> {
    let Some(old) = existing else {
        return Ok(Some(new));
    };
    let v = match policy {
        DupPolicy::Last => new,
        DupPolicy::First => return Ok(None),
        DupPolicy::Block => {
            return Err(Error::InvalidArgument(format!(
                "series {series}: a point at {ts} exists already (duplicate policy block)"
            )))
        }
        DupPolicy::Min => old.min(new),
        DupPolicy::Max => old.max(new),
        DupPolicy::Sum => old + new,
    };
    if !v.is_finite() {
        return Err(Error::InvalidArgument(format!(
            "series {series}: the sum at {ts} overflows to {v}"
        )));
    }
    Ok(Some(v))
}

/// The value the series holds at `ts`: the head (which keeps a seal's
/// points until it is durable), else the chunk covering `ts` (only the
/// maintenance thread writes chunks, and a delete it has in flight is in
/// `deleting`).
fn stored_value(core: &Core, s: &Series, ts: i64) -> Result<Option<f64>> {
    if let Some(v) = s.memory_value(ts) {
        return Ok(Some(v));
    }
    if s.record.sealed_max_ts.is_none_or(|m| ts > m) || s.is_deleting(ts) {
        return Ok(None);
    }
    let start = keys::id_ts_key(keys::CHUNK_PREFIX, s.id, core.opts.window_start(ts));
    let (_, end) = keys::ts_range(keys::CHUNK_PREFIX, s.id, ts, ts);
    let mut last = None;
    state::for_each(&core.db, &start, &end, |k, v| {
        last = Some((k, v));
        Ok(true)
    })?;
    let Some((k, v)) = last else {
        return Ok(None);
    };
    let points = chunk::decode(&v).map_err(|e| chunk_corruption(&s.canonical, &k, e))?;
    Ok(points
        .binary_search_by_key(&ts, |p| p.ts)
        .ok()
        .and_then(|i| points.get(i))
        .map(|p| p.value))
}

/// The error for a damaged chunk.
pub(crate) fn chunk_corruption(series: &str, key: &[u8], e: chunk::ChunkError) -> Error {
    let start = keys::parse_id_ts_key(keys::CHUNK_PREFIX, key).map_or(0, |(_, t)| t);
    Error::Corruption {
        file: format!("time-series chunk of {series} starting at {start}"),
        offset: e.offset as u64,
        what: e.what,
    }
}

/// Records a retention (of the default with `id: None`); run by the
/// maintenance thread, which sweeps right after.
pub(crate) fn record_retention(core: &Core, id: Option<u64>, r: Retention) -> Result<()> {
    let future = {
        let mut st = core.lock();
        match id {
            None => {
                let ms = r.to_ms().max(0);
                let mut wb = WriteBatch::new();
                wb.put(keys::DEFAULT_RETENTION_KEY, ms.to_le_bytes().to_vec());
                let f = enqueue(&core.db, wb)?;
                st.default_retention_ms = ms;
                f
            }
            Some(id) => {
                let Some(s) = st.series.get_mut(&id) else {
                    return Ok(());
                };
                let mut record = s.record.clone();
                record.retention_ms = r.to_ms();
                let mut wb = WriteBatch::new();
                wb.put(keys::id_key(keys::META_PREFIX, id), record.encode());
                let f = enqueue(&core.db, wb)?;
                s.record = record;
                f
            }
        }
    };
    future.wait()
}

/// Queues a duplicate policy change on the maintenance thread, the one
/// writer of catalog records after a series' creation (a record written
/// beside a seal in flight could carry an older watermark after the
/// seal's); `None` if there is no such series.
pub(crate) fn set_policy(
    core: &Core,
    key: &SeriesKey,
    policy: DupPolicy,
) -> Result<Option<TsFuture>> {
    let Some(id) = core.id_of(key) else {
        return Ok(None);
    };
    Ok(Some(super::maintenance::submit(core, |reply| {
        super::maintenance::Job::SetPolicy { id, policy, reply }
    })))
}

/// Records a duplicate policy; run by the maintenance thread.
pub(crate) fn record_policy(core: &Core, id: u64, policy: DupPolicy) -> Result<()> {
    let future = {
        let mut st = core.lock();
        let Some(s) = st.series.get_mut(&id) else {
            return Ok(());
        };
        let mut record = s.record.clone();
        record.policy = policy;
        let mut wb = WriteBatch::new();
        wb.put(keys::id_key(keys::META_PREFIX, id), record.encode());
        let f = enqueue(&core.db, wb)?;
        s.record = record;
        f
    };
    future.wait()
}
