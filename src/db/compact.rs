//! Background and manual compaction: pick, run, log, install, delete.
//!
//! The policy is `crate::compaction` (pure: a levels snapshot in, a plan
//! out); this module carries plans out against the live database:
//!
//! 1. snapshot the current version and pick a plan, marking it in flight
//!    (so a concurrent manual compaction never takes the same tables);
//! 2. a trivial move is a manifest edit alone; otherwise the job merges
//!    the inputs into new tables (synced) keeping every version a live
//!    snapshot can see;
//! 3. the version edit (inputs out, outputs in) is appended to the
//!    manifest and synced, and only then is the new version installed;
//! 4. the inputs' files are deleted once the edit is durable and no
//!    version a reader still holds names them.
//!
//! After each install the write-stall state is recomputed from the shape
//! of the levels (L0 file count, pending compaction bytes), and stalled
//! writers are woken. A failure poisons the database.
//!
//! **Idle compaction.** When no level needs compaction, nothing was
//! written and nothing installed (by a flush or a compaction) for
//! `idle_compaction_delay_ms`, and the tables hold more than
//! `idle_space_amplification_max` times the last level's bytes, the thread
//! compacts everything above the last level into it (as `compact_range`
//! of all keys), at most once per change of the levels: what L0 and the
//! upper levels hold when the writes stop does not stay there, so space
//! amplification comes back to ~1.0 without rewriting the last level on
//! every flush while the writes go on. (The thread looks at least every
//! 500 ms, so the delay is met within half a second.)

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use super::flush::table_name;
use super::version::Version;
use super::Shared;
use crate::compaction::{
    manual_range, pick_compaction, run_compaction, space_amplification, write_stall,
    CompactionPlan, InFlight, LevelsSnapshot, ManualStep, StallDecision,
};
use crate::error::{Error, Result};
use crate::io::OpenOptions;
use crate::sstable::{Table, TableOptions};

/// Compaction bookkeeping shared by the background thread and manual runs.
#[derive(Debug, Default)]
pub(crate) struct CompactState {
    in_flight: InFlight,
    /// Per level, where the last size-triggered compaction stopped.
    pointers: Vec<Vec<u8>>,
    /// Replaced tables waiting until no reader holds them.
    obsolete: Vec<Arc<Table>>,
    /// Versions installed so far, and when the last one was.
    installs: u64,
    last_install: Option<Instant>,
    /// `installs` when the last idle compaction ended (none is due until
    /// the levels change again).
    idle_done_at: Option<u64>,
    /// The writes counter as last seen, and since when it has not moved.
    writes_seen: u64,
    writes_quiet_since: Option<Instant>,
}

/// Write-stall states, as stored in `Shared::stall`.
pub(crate) const STALL_NONE: u8 = 0;
pub(crate) const STALL_SLOWDOWN: u8 = 1;
pub(crate) const STALL_STOP: u8 = 2;

impl Shared {
    pub(crate) fn lock_compact(&self) -> MutexGuard<'_, CompactState> {
        self.compact.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn levels_snapshot(&self, version: &Version, pointers: &[Vec<u8>]) -> LevelsSnapshot {
        let mut snap =
            LevelsSnapshot::from_entries(version.levels.iter().flatten().map(|(e, _)| e));
        snap.compact_pointers = pointers.to_vec();
        snap
    }

    /// Installs a new version and refreshes the stall state; wakes the
    /// compaction thread and stalled writers.
    pub(crate) fn install_version(&self, v: Version) {
        let snap = LevelsSnapshot::from_entries(v.levels.iter().flatten().map(|(e, _)| e));
        let stall = match write_stall(&snap, &self.opts.compaction) {
            StallDecision::None => STALL_NONE,
            StallDecision::Slowdown => STALL_SLOWDOWN,
            StallDecision::Stop => STALL_STOP,
        };
        *self.version.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(v);
        self.stall.store(stall, Ordering::Release);
        let mut g = self.compact.lock().unwrap_or_else(|p| p.into_inner());
        g.installs += 1;
        g.last_install = Some(Instant::now());
        self.compact_cv.notify_all();
    }

    /// The oldest sequence a reader may still read at, and the live
    /// snapshots.
    fn snapshot_bounds(&self) -> (u64, Vec<u64>) {
        let live: Vec<u64> = self
            .snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect();
        let newest = self.visible_seq.load(Ordering::Acquire);
        (live.first().copied().unwrap_or(newest).min(newest), live)
    }

    /// Blocks the leader while the levels are past the stop trigger, and
    /// slows it down past the slowdown trigger; both are counted.
    pub(crate) fn throttle_writes(&self) -> Result<()> {
        match self.stall.load(Ordering::Acquire) {
            STALL_SLOWDOWN => {
                let start = Instant::now();
                std::thread::sleep(Duration::from_millis(1));
                self.metrics.write_slowdowns.inc();
                self.metrics
                    .write_slowdown_us
                    .add(start.elapsed().as_micros() as u64);
                Ok(())
            }
            STALL_STOP => {
                let start = Instant::now();
                self.metrics.write_stops.inc();
                let mut g = self.lock_compact();
                while self.stall.load(Ordering::Acquire) == STALL_STOP {
                    if self.closing.load(Ordering::Acquire) {
                        return Err(Error::Closed);
                    }
                    if let Some(reason) = self.poisoned() {
                        return Err(Error::Poisoned(reason));
                    }
                    g = self
                        .compact_cv
                        .wait_timeout(g, Duration::from_millis(100))
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
                self.metrics
                    .write_stop_us
                    .add(start.elapsed().as_micros() as u64);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// What the compaction thread does next.
enum Work {
    Plan(CompactionPlan),
    Idle,
    /// Replaced tables that a reader held when they were replaced are now
    /// free to delete.
    Obsolete,
}

/// Whether an idle compaction is due (see the module docs).
fn idle_compaction_due(shared: &Shared, st: &mut CompactState, snap: &LevelsSnapshot) -> bool {
    let opts = &shared.opts.compaction;
    let Some(max) = opts.idle_space_amplification_max else {
        return false;
    };
    let now = Instant::now();
    let writes = shared.metrics.writes.get();
    if writes != st.writes_seen || st.writes_quiet_since.is_none() {
        st.writes_seen = writes;
        st.writes_quiet_since = Some(now);
    }
    let delay = Duration::from_millis(opts.idle_compaction_delay_ms);
    let quiet = |since: Option<Instant>| since.is_none_or(|t| now.duration_since(t) >= delay);
    quiet(st.writes_quiet_since)
        && quiet(st.last_install)
        && st.in_flight.is_empty()
        && shared.memtables().1.is_empty()
        && st.idle_done_at != Some(st.installs)
        && space_amplification(snap) > max
}

/// The background compaction thread. Returns on close or failure.
pub(crate) fn compaction_thread(shared: Arc<Shared>) {
    loop {
        let work = {
            let mut st = shared.lock_compact();
            loop {
                if shared.closing.load(Ordering::Acquire) || shared.poisoned().is_some() {
                    return;
                }
                let version = shared.current_version();
                let snap = shared.levels_snapshot(&version, &st.pointers);
                if let Some(plan) = pick_compaction(&snap, &st.in_flight, &shared.opts.compaction) {
                    st.in_flight.add(&plan);
                    break Work::Plan(plan);
                }
                if idle_compaction_due(&shared, &mut st, &snap) {
                    break Work::Idle;
                }
                if st.obsolete.iter().any(|t| Arc::strong_count(t) == 1) {
                    break Work::Obsolete;
                }
                st = shared
                    .compact_cv
                    .wait_timeout(st, Duration::from_millis(500))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        };
        let plan = match work {
            Work::Plan(plan) => plan,
            Work::Obsolete => {
                delete_obsolete(&shared);
                continue;
            }
            Work::Idle => {
                let installs_before = shared.lock_compact().installs;
                // Fails only on close or poison (which it has set itself).
                let Ok(steps) = compact_range(&shared, None, None) else {
                    shared.notify_mem();
                    return;
                };
                shared.metrics.compaction_idle_runs.inc();
                // Done until the levels change by anything but this run (a
                // flush that finished meanwhile makes it due again).
                shared.lock_compact().idle_done_at = Some(installs_before + steps);
                continue;
            }
        };
        let result = execute(&shared, &plan);
        shared.lock_compact().in_flight.remove(&plan);
        if let Err(e) = result {
            shared.poison(&e);
            shared.notify_mem();
            return;
        }
        delete_obsolete(&shared);
    }
}

/// Whether a compaction is running (for the metrics).
pub(crate) fn compaction_running(shared: &Shared) -> bool {
    !shared.lock_compact().in_flight.is_empty()
}

/// Carries out one plan: edit, install, queue the inputs for deletion.
fn execute(shared: &Shared, plan: &CompactionPlan) -> Result<()> {
    let start = Instant::now();
    let version = shared.current_version();
    let find = |level: usize, number: u64| -> Result<Arc<Table>> {
        version
            .levels
            .get(level)
            .and_then(|l| l.iter().find(|(e, _)| e.number == number))
            .map(|(_, t)| Arc::clone(t))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "compaction input {} is not in level {level}",
                    table_name(number)
                ))
            })
    };
    let inputs: Vec<(u32, u64, Arc<Table>)> = plan
        .input_tables()
        .map(|(level, t)| Ok((level as u32, t.number, find(level, t.number)?)))
        .collect::<Result<_>>()?;
    let m = &shared.metrics;
    if plan.trivial_move {
        let moved = plan.moved_tables();
        let mut edit = plan.version_edit(moved.clone());
        edit.next_file_number = Some(shared.next_file.load(Ordering::SeqCst));
        shared.log_edit(&edit)?;
        let added = moved
            .into_iter()
            .zip(inputs.iter().map(|(_, _, t)| Arc::clone(t)))
            .collect();
        shared.install_changes(&edit.deleted_tables, added);
        m.compaction_trivial_moves.inc();
    } else {
        let (smallest, live) = shared.snapshot_bounds();
        let tables: Vec<Table> = inputs.iter().map(|(_, _, t)| (**t).clone()).collect();
        let next = || shared.next_file.fetch_add(1, Ordering::SeqCst);
        let out = run_compaction(
            &*shared.fs,
            &shared.dir,
            plan,
            tables,
            smallest,
            &live,
            &next,
            &TableOptions::default(),
            plan.target_file_size_bytes,
        )?;
        let mut added = Vec::with_capacity(out.new_tables.len());
        for entry in &out.new_tables {
            let file = shared.fs.open(
                &shared.dir.join(table_name(entry.number)),
                OpenOptions::read(),
            )?;
            let table = Table::open(file, entry.number, Arc::clone(&shared.cache))?;
            added.push((entry.clone(), Arc::new(table)));
        }
        let mut edit = plan.version_edit(out.new_tables.clone());
        edit.next_file_number = Some(shared.next_file.load(Ordering::SeqCst));
        shared.log_edit(&edit)?;
        shared.install_changes(&edit.deleted_tables, added);
        shared
            .lock_compact()
            .obsolete
            .extend(inputs.into_iter().map(|(_, _, t)| t));
        m.compactions.inc();
        m.compaction_bytes_read.add(out.bytes_read);
        m.compaction_bytes_written.add(out.bytes_written);
        m.compaction_entries_dropped.add(out.entries_dropped);
    }
    if let Some(p) = &plan.compact_pointer {
        let mut st = shared.lock_compact();
        if st.pointers.len() <= plan.input_level {
            st.pointers.resize(plan.input_level + 1, Vec::new());
        }
        st.pointers[plan.input_level] = p.clone();
    }
    m.compaction_latency_us.record_since(start);
    Ok(())
}

/// Deletes replaced tables that no installed or reader-held version names.
pub(crate) fn delete_obsolete(shared: &Shared) {
    let ready: Vec<Arc<Table>> = {
        let mut st = shared.lock_compact();
        let (ready, keep) = std::mem::take(&mut st.obsolete)
            .into_iter()
            .partition(|t| Arc::strong_count(t) == 1);
        st.obsolete = keep;
        ready
    };
    for t in ready {
        let number = t.id();
        drop(t);
        shared.cache.forget_table(number);
        let path = shared.dir.join(table_name(number));
        if let Err(e) = shared.fs.remove(&path) {
            // The manifest no longer names it: the next open removes it.
            shared.obsolete_delete_failed(&path, &e);
        }
    }
}

/// Compacts user keys in `[start, end]` (None: unbounded) down the levels,
/// in the caller's thread, until nothing in the range remains to do.
/// Returns the number of steps run (each installed one version).
pub(crate) fn compact_range(
    shared: &Shared,
    start: Option<&[u8]>,
    end: Option<&[u8]>,
) -> Result<u64> {
    let mut from_level = 0;
    let mut steps = 0;
    loop {
        let plan = {
            let mut st = shared.lock_compact();
            loop {
                if let Some(reason) = shared.poisoned() {
                    return Err(Error::Poisoned(reason));
                }
                if shared.closing.load(Ordering::Acquire) {
                    return Err(Error::Closed);
                }
                let version = shared.current_version();
                let snap = shared.levels_snapshot(&version, &st.pointers);
                match manual_range(
                    &snap,
                    &st.in_flight,
                    &shared.opts.compaction,
                    start,
                    end,
                    from_level,
                ) {
                    ManualStep::Done => return Ok(steps),
                    ManualStep::Busy => {
                        st = shared
                            .compact_cv
                            .wait_timeout(st, Duration::from_millis(50))
                            .map(|(g, _)| g)
                            .unwrap_or_else(|p| p.into_inner().0);
                    }
                    ManualStep::Plan { plan, next_level } => {
                        st.in_flight.add(&plan);
                        from_level = next_level;
                        break plan;
                    }
                }
            }
        };
        let result = execute(shared, &plan);
        shared.lock_compact().in_flight.remove(&plan);
        if let Err(e) = result {
            shared.poison(&e);
            return Err(e);
        }
        steps += 1;
        delete_obsolete(shared);
    }
}
