//! Time series over the LSM: [`TimeSeries`].
//!
//! A series is a name plus optional labels ([`SeriesKey`]); a point is a
//! timestamp in milliseconds and a finite f64 ([`Point`]). Everything is
//! stored in the same [`Db`] as the key-value data, so the WAL, group
//! commit, flushes, compaction, checksums and crash recovery are the
//! engine's and are not written a second time.
//!
//! Threads: a `TimeSeries` is a cheap handle (`Clone`, `Send`, `Sync`),
//! callable from any thread; the blocking calls must not be made from an
//! async event loop (use the `*_async` ones there). One background thread
//! (the *maintenance* thread) seals heads into chunks, deletes, and applies
//! retention; it is the only writer of chunks.
//!
//! # Storage: a log record per add, heads in memory, sealed chunks
//!
//! ```text
//! add (one engine batch, durable on ack)       maintenance thread
//!   ts/l/<seq> = every point of the add  ──seal──>  ts/c/<id><first ts> = chunk   (put)
//!   ts/o/log_seq = seq                              ts/i/<id> (watermark)         (put)
//!   ts/s/.., ts/i/.. (a new series)       ──trim──>  ts/l/<seq> no head needs     (delete)
//! ```
//!
//! The keys and the catalog record are drawn in [`keys`], the log record
//! in `log.rs`, the chunk format in [`chunk`].
//!
//! **Why a log record per add.** The engine has no merge operator, and
//! appending a point to a chunk value would rewrite the chunk through the
//! WAL at every point. So an add is written as one compact value holding
//! all its points (about 10 bytes a point at a 10 s step), one engine
//! batch per add request, durable when acknowledged, crash-safe by the WAL
//! alone: one WAL entry and one memtable insert per add, not per point.
//! Each series keeps its unsealed points in memory (its *head*: sorted
//! `(ts, value)` with the log sequence of each, in `state.rs`), updated
//! under one mutex at the moment the batch is enqueued, so the heads
//! follow the log's order. A record stores the values after the duplicate
//! policy was applied, so replaying it sets values and never combines
//! them. When a head spans two chunk windows its closed windows' points
//! are sealed; when it holds `head_points_max` points (1024) all are. A
//! seal is one atomic batch of chunks and catalog records, each with the
//! series' watermark: every point of the series from log records up to it
//! is in chunks. Once that batch is durable, the records below the oldest
//! one any head still holds a point from are deleted. When the live
//! records exceed `log_bytes_max` (64 MiB) the heads pinning the oldest
//! ones are sealed whole, early; past twice that, adds are refused until
//! the sealer catches up. On open, heads are rebuilt by replaying the live
//! records in order, each series' points only past its watermark (cost:
//! the live log, never the chunks); a record failing its crc32 is a
//! corruption error naming its key. Deletes and retention seal the
//! series' head whole first, so no replay can bring back what they drop.
//! Databases of the previous format (a head key `ts/p/<id><ts>` per
//! point) have their head keys moved into one log record on open.
//!
//! **Chunks and windows.** Chunks never straddle a multiple of
//! `chunk_window_ms`; a seal merges the head into the chunks of the window
//! it touches (from the chunk its first point falls in to the window's
//! end), so a series holds one chunk per window up to `chunk_points_max`
//! (1024) points — 720 points at a 10 s interval. Rewriting the open
//! chunk at every seal costs a few hundred bytes of WAL per 120 points,
//! against about 32 bytes of WAL per point for the head keys themselves.
//!
//! **Out-of-order points** within `out_of_order_window_ms` (1 h) of the
//! series' newest point are accepted and go to the head like any other;
//! the next seal merges them into the chunk of their window (a small
//! re-seal of that window's chunks, never of the whole series). Older
//! points are refused with an error naming the window.
//!
//! **Duplicate timestamps** follow the series' policy ([`DupPolicy`],
//! stored in its catalog record, `last` by default), resolved when the
//! point is written against the head and the chunk;
//! what is stored is then plain "newest write wins": on a read the head
//! beats a chunk, and a seal's merge lets the head win.
//!
//! **Reads** take one engine snapshot and, under the mutex, a copy of the
//! series' head in the range (which keeps a seal's points until its
//! chunks are durable), and merge the chunks (from the window holding
//! `from`) with it in time order, the head winning a tie, so a point being
//! sealed is seen exactly once. They never
//! see a write before it is durable: a head point whose log record the
//! snapshot does not see yet makes the read wait for it and start again.
//! Aggregation streams ([`aggregate`]); memory is a page of keys, one
//! decoded chunk and the head.
//!
//! **Retention** (per series, else the database default, else forever)
//! is applied by the maintenance thread: every
//! `retention_sweep_interval_ms` (60 s) and right after it is set. It
//! drops whole windows that ended before `now - retention` by deleting
//! their chunk keys, found by key alone — never a rewrite. A series with
//! something to drop and points in the log past its watermark is sealed
//! whole first, so that no replay brings the dropped points back. Points inside a window that is only partly expired stay
//! until the whole window is (at most one window longer than asked). A
//! write older than the cutoff is refused.
//!
//! **Deletes** run on the maintenance thread and are acknowledged when
//! done. A series: its catalog records go in one batch with a marker
//! `ts/d/<id>` (from then on the series is gone, and replay skips its
//! points), then its chunks in batches, then the marker (an interrupted
//! purge resumes on open). A range: the head is sealed whole, then chunks
//! overlapping the range are rewritten without it (those inside it
//! deleted) in one batch — or, for a range whose chunk changes exceed
//! 4 MiB, in several, each durable before the next.
//!
//! **Bounds**: series names and labels ([`series`]); points per add
//! (`add_points_max`, 500 000); series (`series_max`, 1 000 000); points in
//! all heads (`head_points_total_max`, 4 Mi; beyond it adds are refused
//! until sealing catches up); live log bytes (`log_bytes_max`, above);
//! chunk points (`chunk_points_max`).
//!
//! # Measured
//!
//! On the TSBS "cpu-only" shape (100 hosts x 10 fields, a point every
//! 10 s for a day, each a clamped integer random walk: 8.64 M points),
//! embedded, durability `sync`, adds of 100 000 points, then `seal_all`
//! and a full compaction: **0.343 bytes per point** in tables (the chunk
//! values alone: 0.312). A 720-point chunk of that data is 216 bytes
//! (0.300 bytes/point: zero bits per timestamp, about two per value); a
//! float random walk with millisecond jitter, which takes Gorilla's XOR
//! path, 7.8 bytes/point. Chunk codec: encode 71 M points/s, decode
//! 129 M points/s. Durable ingest through the library with a log record
//! per add: 4.7 M points/s with adds of 100 000 points, 3.65 M with adds
//! of 10 000, 0.47 M with adds of 1 000 (bound by one fdatasync per add);
//! with a head key per point it was 0.32 M, 0.38 M and 0.33 M in the same
//! session. Through the server (`cityhall client ts import`, `sync`):
//! 3.05 to 3.09 M points/s, against 0.32 M before. Queries on one series
//! over a day: all 8 640 points 0.17 ms, hourly averages 0.21 ms, latest
//! point 9 µs; a count over each of 100 series 22 ms (BENCHMARKS.md has
//! the runs and their load). Machine: 2 vCPU AMD EPYC VM, ext4 on a
//! virtio disk, Linux 6.18.
//!
//! ```text
//! CITYHALL_TS_HOSTS=100 cargo bench --bench ts -- at_rest
//! cargo bench --bench ts
//! ```

pub mod aggregate;
pub mod bits;
pub mod chunk;
pub mod keys;
pub mod line_protocol;
mod log;
mod maintenance;
pub mod options;
mod query;
mod select;
pub mod series;
mod state;
pub mod time;
mod write;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::JoinHandle;

use crate::db::{Db, WriteFuture};
use crate::error::{Error, Result};
use crate::metrics::{Counter, MetricsSnapshot};

pub use aggregate::{Aggregation, RangePage};
pub use options::TsOptions;
pub use query::check_range;
pub use select::{check_select, SelectQuery};
pub use series::{LabelMatcher, MatchOp, SeriesKey};

use state::State;

/// One sample: a time in milliseconds since the epoch and a finite value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Milliseconds since the Unix epoch (negative before 1970).
    pub ts: i64,
    /// The value; NaN and infinities are refused on write.
    pub value: f64,
}

/// What a point at a timestamp the series already holds does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DupPolicy {
    /// The new value replaces the old one. The default.
    Last = 0,
    /// The old value stays; the new one is dropped silently.
    First = 1,
    /// The write is refused with an error (nothing of it is stored).
    Block = 2,
    /// The smaller value stays.
    Min = 3,
    /// The larger value stays.
    Max = 4,
    /// The values are added.
    Sum = 5,
}

impl DupPolicy {
    /// Every policy, in wire order.
    pub const ALL: [DupPolicy; 6] = [
        DupPolicy::Last,
        DupPolicy::First,
        DupPolicy::Block,
        DupPolicy::Min,
        DupPolicy::Max,
        DupPolicy::Sum,
    ];

    /// Decodes a wire value.
    pub fn from_u8(b: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| *p as u8 == b)
    }

    /// Its lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            DupPolicy::Last => "last",
            DupPolicy::First => "first",
            DupPolicy::Block => "block",
            DupPolicy::Min => "min",
            DupPolicy::Max => "max",
            DupPolicy::Sum => "sum",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.name() == s)
    }
}

/// How long a series keeps its points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// The database-wide default (itself forever unless set).
    Default,
    /// Forever.
    Forever,
    /// This many milliseconds back from now (> 0).
    Ms(i64),
}

impl Retention {
    /// As stored and sent: -1 default, 0 forever, > 0 milliseconds.
    pub fn to_ms(self) -> i64 {
        match self {
            Retention::Default => -1,
            Retention::Forever => 0,
            Retention::Ms(ms) => ms.max(1),
        }
    }

    /// The inverse of [`Retention::to_ms`]; `None` below -1.
    pub fn from_ms(ms: i64) -> Option<Self> {
        match ms {
            -1 => Some(Retention::Default),
            0 => Some(Retention::Forever),
            ms if ms > 0 => Some(Retention::Ms(ms)),
            _ => None,
        }
    }
}

/// Points of one series, for [`TimeSeries::add`].
#[derive(Clone, Copy, Debug)]
pub struct SeriesPoints<'a> {
    /// The series (created by its first point).
    pub series: &'a SeriesKey,
    /// Its new points, in any order.
    pub points: &'a [Point],
}

/// A range query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeQuery {
    /// First timestamp (inclusive).
    pub from: i64,
    /// Last timestamp (inclusive).
    pub to: i64,
    /// `None`: the raw points.
    pub agg: Option<Aggregation>,
    /// Bucket width in ms; 0: no buckets (see [`aggregate`]).
    pub bucket_ms: i64,
    /// Most points (or buckets) in the page.
    pub limit: usize,
}

impl RangeQuery {
    /// The raw points from `from` to `to` (inclusive), all in one page.
    pub fn raw(from: i64, to: i64) -> Self {
        RangeQuery {
            from,
            to,
            agg: None,
            bucket_ms: 0,
            limit: usize::MAX,
        }
    }
}

/// A series listing query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeriesQuery {
    /// Only series whose canonical form starts with this.
    pub prefix: String,
    /// Only series every matcher accepts.
    pub matchers: Vec<LabelMatcher>,
    /// Only series after this canonical form (paging).
    pub after: Option<String>,
    /// Most series in the page.
    pub limit: usize,
}

/// One page of a series listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeriesPage {
    /// Series in canonical order.
    pub series: Vec<SeriesKey>,
    /// Whether more series match after the last one.
    pub more: bool,
}

/// The layer's counters.
#[derive(Debug, Default)]
pub(crate) struct TsMetrics {
    pub points_written: Counter,
    pub series_created: Counter,
    pub seals: Counter,
    pub chunks_written: Counter,
    pub chunk_bytes_written: Counter,
    pub chunk_points_written: Counter,
    pub chunks_dropped_by_retention: Counter,
    pub maintenance_errors: Counter,
    pub log_records_deleted: Counter,
}

/// State shared by the handles and the maintenance thread.
#[derive(Debug)]
pub(crate) struct Core {
    pub db: Db,
    pub opts: TsOptions,
    pub state: Mutex<State>,
    /// Wakes the maintenance thread (paired with `state`).
    pub work_cv: Condvar,
    pub closing: AtomicBool,
    pub metrics: TsMetrics,
}

impl Core {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The id of `key`, if the series exists.
    pub fn id_of(&self, key: &SeriesKey) -> Option<u64> {
        self.lock().by_name.get(&key.canonical()).copied()
    }

    /// Reports a failure of background work.
    pub fn report(&self, what: &str, e: &Error) {
        self.metrics.maintenance_errors.inc();
        eprintln!("cityhall: time series: {what}: {e}");
    }
}

/// The completion of a time-series write: resolves once it is durable.
#[derive(Debug)]
pub struct TsFuture {
    state: FutureState,
}

#[derive(Debug)]
enum FutureState {
    Write(WriteFuture),
    Job(tokio::sync::oneshot::Receiver<Result<()>>),
}

impl TsFuture {
    /// Blocks the calling thread until the write is durable.
    pub fn wait(self) -> Result<()> {
        block_on(self)
    }
}

impl Future for TsFuture {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        match &mut self.state {
            FutureState::Write(w) => Pin::new(w).poll(cx),
            FutureState::Job(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(Error::Closed))),
        }
    }
}

/// Enqueues `batch` and returns its completion, or the error the engine
/// refused it with at once (poisoned, closed, over a bound) — so a caller
/// may change its in-memory state only once this returned `Ok`.
pub(crate) fn enqueue(db: &Db, batch: crate::batch::WriteBatch) -> Result<TsFuture> {
    enqueue_write(db, batch).map(|f| TsFuture {
        state: FutureState::Write(f),
    })
}

/// Like [`enqueue`], as the engine's own future.
pub(crate) fn enqueue_write(db: &Db, batch: crate::batch::WriteBatch) -> Result<WriteFuture> {
    let mut f = db.write_async(batch);
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(&mut f).poll(&mut cx) {
        Poll::Ready(Err(e)) => Err(e),
        Poll::Ready(Ok(())) => Ok(WriteFuture::ready(Ok(()))),
        Poll::Pending => Ok(f),
    }
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future to completion on the calling thread.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

struct Handle {
    core: Arc<Core>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Handle {
    fn stop(&self) {
        self.core.closing.store(true, Ordering::Release);
        {
            let _g = self.core.lock();
            self.core.work_cv.notify_all();
        }
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// The time-series layer over one [`Db`].
#[derive(Clone)]
pub struct TimeSeries {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for TimeSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeSeries").finish_non_exhaustive()
    }
}

impl TimeSeries {
    /// Loads the catalog and the heads from `db` and starts the
    /// maintenance thread. Only one `TimeSeries` may be open over a `Db`.
    pub fn open(db: Db, opts: TsOptions) -> Result<TimeSeries> {
        let opts = opts.sanitized();
        let (mut state, deleting) = State::load(&db, &opts)?;
        for id in deleting {
            state.jobs.push_back(maintenance::Job::PurgeChunks { id });
        }
        let core = Arc::new(Core {
            db,
            opts,
            state: Mutex::new(state),
            work_cv: Condvar::new(),
            closing: AtomicBool::new(false),
            metrics: TsMetrics::default(),
        });
        let c = Arc::clone(&core);
        let thread = std::thread::Builder::new()
            .name("cityhall-ts".into())
            .spawn(move || maintenance::run(&c))
            .map_err(|e| Error::io("spawn", std::path::Path::new("time-series thread"), e))?;
        Ok(TimeSeries {
            handle: Arc::new(Handle {
                core,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    fn core(&self) -> &Core {
        &self.handle.core
    }

    /// The options in force.
    pub fn options(&self) -> &TsOptions {
        &self.core().opts
    }

    /// Adds points to series (creating the new ones) atomically: all are
    /// stored, or none and an error says why. Returns once durable.
    pub fn add(&self, batch: &[SeriesPoints<'_>]) -> Result<()> {
        self.add_async(batch)?.wait()
    }

    /// Like [`TimeSeries::add`]; errors in the input are returned at once,
    /// the future resolves once the points are durable.
    pub fn add_async(&self, batch: &[SeriesPoints<'_>]) -> Result<TsFuture> {
        write::add(self.core(), batch).map(|f| TsFuture {
            state: FutureState::Write(f),
        })
    }

    /// Like [`TimeSeries::add_async`], as the engine's future (what the
    /// server queues with its other pending writes).
    pub(crate) fn add_write(&self, batch: &[SeriesPoints<'_>]) -> Result<WriteFuture> {
        write::add(self.core(), batch)
    }

    /// One page of a range query; `None` if the series does not exist.
    pub fn range(&self, series: &SeriesKey, q: &RangeQuery) -> Result<Option<RangePage>> {
        query::range(self.core(), series, q)
    }

    /// The newest point: `None` if the series does not exist,
    /// `Some(None)` if it holds no point.
    pub fn latest(&self, series: &SeriesKey) -> Result<Option<Option<Point>>> {
        query::latest(self.core(), series)
    }

    /// One page of the series matching `q`.
    pub fn series(&self, q: &SeriesQuery) -> Result<SeriesPage> {
        query::series(self.core(), q)
    }

    /// One page of an aggregate across every series a selector matches
    /// (see `src/ts/select.rs`): at most `q.limit` buckets, the earliest, and the
    /// `from` that continues; an error if the selector matches more than
    /// `q.series_max` series.
    pub fn select(&self, q: &SelectQuery) -> Result<RangePage> {
        select::select(self.core(), q)
    }

    /// Deletes a series and all its points; `false` if it does not exist.
    pub fn delete_series(&self, series: &SeriesKey) -> Result<bool> {
        wait_found(self.delete_series_async(series)?)
    }

    /// Like [`TimeSeries::delete_series`]; `None` if there is no such series.
    pub fn delete_series_async(&self, series: &SeriesKey) -> Result<Option<TsFuture>> {
        maintenance::submit_delete(self.core(), series, None)
    }

    /// Deletes the points of `[from, to]`; `false` if there is no such series.
    pub fn delete_range(&self, series: &SeriesKey, from: i64, to: i64) -> Result<bool> {
        wait_found(self.delete_range_async(series, from, to)?)
    }

    /// Like [`TimeSeries::delete_range`].
    pub fn delete_range_async(
        &self,
        series: &SeriesKey,
        from: i64,
        to: i64,
    ) -> Result<Option<TsFuture>> {
        if from > to {
            return Err(Error::InvalidArgument(format!(
                "delete range from {from} is after to {to}"
            )));
        }
        maintenance::submit_delete(self.core(), series, Some((from, to)))
    }

    /// Sets the retention of a series, or the database default when
    /// `series` is `None` ([`Retention::Default`] is then refused);
    /// `false` if there is no such series. Returns once the setting is
    /// durable and the chunks it condemns are dropped.
    pub fn set_retention(&self, series: Option<&SeriesKey>, r: Retention) -> Result<bool> {
        wait_found(self.set_retention_async(series, r)?)
    }

    /// Like [`TimeSeries::set_retention`].
    pub fn set_retention_async(
        &self,
        series: Option<&SeriesKey>,
        r: Retention,
    ) -> Result<Option<TsFuture>> {
        maintenance::submit_retention(self.core(), series, r)
    }

    /// Sets the duplicate policy of a series; `false` if there is no such
    /// series.
    pub fn set_policy(&self, series: &SeriesKey, policy: DupPolicy) -> Result<bool> {
        wait_found(self.set_policy_async(series, policy)?)
    }

    /// Like [`TimeSeries::set_policy`].
    pub fn set_policy_async(
        &self,
        series: &SeriesKey,
        policy: DupPolicy,
    ) -> Result<Option<TsFuture>> {
        write::set_policy(self.core(), series, policy)
    }

    /// Applies retention as of `now_ms` and returns once done (the
    /// maintenance thread also does this every
    /// [`TsOptions::retention_sweep_interval_ms`]).
    pub fn apply_retention(&self, now_ms: i64) -> Result<()> {
        maintenance::submit(self.core(), |reply| maintenance::Job::Sweep {
            now_ms: Some(now_ms),
            reply: Some(reply),
        })
        .wait()
    }

    /// Seals every head into chunks and returns once durable (a head is
    /// otherwise sealed when full; this is for measurements and tests).
    pub fn seal_all(&self) -> Result<()> {
        maintenance::submit(self.core(), |reply| maintenance::Job::SealAll { reply }).wait()
    }

    /// Appends the layer's metrics to `out`.
    pub fn report(&self, out: &mut MetricsSnapshot) {
        let c = self.core();
        let m = &c.metrics;
        let (series, head_points, log_records, log_bytes) = {
            let st = c.lock();
            (
                st.series.len(),
                st.head_points,
                st.log_live.len(),
                st.log_live_bytes,
            )
        };
        out.gauge("ts.series", series as f64);
        out.gauge("ts.head_points", head_points as f64);
        out.gauge("ts.log_records", log_records as f64);
        out.gauge("ts.log_bytes", log_bytes as f64);
        out.counter("ts.log_records_deleted", m.log_records_deleted.get());
        out.counter("ts.points_written", m.points_written.get());
        out.counter("ts.series_created", m.series_created.get());
        out.counter("ts.seals", m.seals.get());
        out.counter("ts.chunks_written", m.chunks_written.get());
        out.counter("ts.chunk_bytes_written", m.chunk_bytes_written.get());
        out.counter("ts.chunk_points_written", m.chunk_points_written.get());
        let points = m.chunk_points_written.get();
        out.gauge(
            "ts.chunk_bytes_per_point",
            if points == 0 {
                0.0
            } else {
                m.chunk_bytes_written.get() as f64 / points as f64
            },
        );
        out.counter(
            "ts.chunks_dropped_by_retention",
            m.chunks_dropped_by_retention.get(),
        );
        out.counter("ts.maintenance_errors", m.maintenance_errors.get());
    }

    /// Stops the maintenance thread. Heads stay in their log records
    /// (durable); the database itself is not closed.
    pub fn close(&self) {
        self.handle.stop();
    }
}

fn wait_found(f: Option<TsFuture>) -> Result<bool> {
    match f {
        Some(f) => f.wait().map(|()| true),
        None => Ok(false),
    }
}
