//! Running one workload: a thread per connection, all released together,
//! each driving its [`Session`] in a closed loop (`--pipeline` requests
//! sent, then all answered, as `redis-benchmark -P` does) or on a fixed
//! schedule (`--rate`), while the calling thread shows progress and ends
//! `--duration` runs.
//!
//! Fixed-rate mode: connection `t` of `C` sends its k-th request at
//! `t0 + (t / C + k) * C / rate`, and each latency is measured from that
//! intended time, not from when the request was actually written, so a
//! stall delays the schedule's requests and their wait is counted
//! (coordinated omission corrected, as wrk2 does). When requests are in
//! flight the connection waits for the oldest answer before sending the
//! next due request; any delay that adds is counted against the system
//! too, never hidden.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant};

use crate::cli::{Config, Workload};
use crate::keys::{KeyChooser, KeyFormat, ValuePool};
use crate::poller::Poller;
use crate::recorder::Recorder;
use crate::rng::Rng;
use crate::session::{Outcome, Req, Session};
use crate::smoke::{self, CheckReport};
use crate::workload::{Budget, Op, OpKind, OpSource};

/// Runs longer than this show progress from their first second.
const PROGRESS_AFTER: Duration = Duration::from_secs(3);
/// How often the watcher looks at the threads.
const WATCH_TICK: Duration = Duration::from_millis(5);

/// Opens connection `t` (a TCP connection or an embedded handle).
pub type Connect<'a> = dyn Fn(usize) -> Result<Box<dyn Session>, String> + Sync + 'a;

/// State the connections of a run share.
#[derive(Debug)]
pub struct Shared {
    pub budget: Budget,
    /// Operations answered so far, for progress.
    pub completed: AtomicU64,
}

/// What one connection hands back.
#[derive(Debug)]
pub struct ThreadOutcome {
    pub rec: Recorder,
    pub check: Option<CheckReport>,
    /// When its last answer arrived.
    pub finished: Instant,
}

/// What a workload run measured.
#[derive(Debug)]
pub struct RunResult {
    pub workload: Workload,
    pub elapsed: Duration,
    pub rec: Recorder,
    /// The smoke workload's verdict.
    pub check: Option<CheckReport>,
    /// The first error any connection met; the run stopped there.
    pub error: Option<String>,
}

/// Everything a connection thread reads.
pub struct Context<'a> {
    pub cfg: &'a Config,
    pub workload: Workload,
    /// Position of the workload in `--workload`, to vary the random
    /// streams from one workload to the next.
    pub position: usize,
    pub pool: &'a ValuePool,
    pub chooser: KeyChooser,
    pub shared: &'a Shared,
}

/// Runs `workload` with `cfg.connections` connections from `connect`.
pub fn run(
    cfg: &Config,
    workload: Workload,
    position: usize,
    connect: &Connect<'_>,
    pool: &ValuePool,
    chooser: KeyChooser,
) -> RunResult {
    let shared = Shared {
        // `deleteall` deletes each key once, whatever --num says.
        budget: Budget::new(match workload {
            Workload::Deleteall => Some(cfg.key_space),
            _ => cfg.num,
        }),
        completed: AtomicU64::new(0),
    };
    let threads = cfg.client_threads.clamp(1, cfg.connections);
    let barrier = Barrier::new(threads + 1);
    let ctx = Context {
        cfg,
        workload,
        position,
        pool,
        chooser,
        shared: &shared,
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|j| {
                let (ctx, barrier) = (&ctx, &barrier);
                s.spawn(move || {
                    // Connections j, j + threads, j + 2 * threads, ...
                    let sessions: Result<Vec<_>, String> = (j..cfg.connections)
                        .step_by(threads)
                        .map(|t| connect(t).map(|s| (t, s)))
                        .collect();
                    barrier.wait();
                    let r = sessions.and_then(|mut sessions| {
                        if sessions.len() == 1 {
                            let (t, session) = sessions.remove(0);
                            connection(ctx, t, session)
                        } else {
                            multiplexed(ctx, sessions)
                        }
                    });
                    if r.is_err() {
                        ctx.shared.budget.stop();
                    }
                    r
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        watch(cfg, workload, &shared, &handles, t0);
        let mut result = RunResult {
            workload,
            elapsed: Duration::ZERO,
            rec: Recorder::default(),
            check: None,
            error: None,
        };
        for h in handles {
            match h.join() {
                Ok(Ok(out)) => {
                    result.rec.merge(&out.rec);
                    result.elapsed = result.elapsed.max(out.finished.duration_since(t0));
                    if let Some(c) = out.check {
                        result
                            .check
                            .get_or_insert_with(CheckReport::default)
                            .merge(c);
                    }
                }
                Ok(Err(e)) => {
                    result.error.get_or_insert(e);
                }
                Err(_) => {
                    result
                        .error
                        .get_or_insert_with(|| "a connection thread panicked".into());
                }
            }
        }
        result
    })
}

/// Waits for the connections, stopping a `--duration` run on time and
/// printing progress once a second on long runs.
fn watch<T>(
    cfg: &Config,
    workload: Workload,
    shared: &Shared,
    handles: &[ScopedJoinHandle<'_, T>],
    t0: Instant,
) {
    let long = cfg.duration.is_some_and(|d| d > PROGRESS_AFTER);
    let mut next_tick = Duration::from_secs(1);
    let mut last_completed = 0;
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(WATCH_TICK);
        let elapsed = t0.elapsed();
        if cfg.duration.is_some_and(|d| elapsed >= d) {
            shared.budget.stop();
        }
        if elapsed >= next_tick {
            let done = shared.completed.load(Ordering::Relaxed);
            if long || elapsed >= PROGRESS_AFTER {
                eprintln!(
                    "... {:<12} {:>5.1} s  {:>11} ops  {:>10.0} ops/s in the last second",
                    workload.name(),
                    elapsed.as_secs_f64(),
                    done,
                    (done - last_completed) as f64
                );
            }
            last_completed = done;
            next_tick += Duration::from_secs(1);
        }
    }
}

/// One connection's whole run.
fn connection(
    ctx: &Context<'_>,
    t: usize,
    session: Box<dyn Session>,
) -> Result<ThreadOutcome, String> {
    let stream = ((ctx.position as u64) << 32) | t as u64;
    let rng = Rng::new(ctx.cfg.seed, stream);
    if ctx.workload == Workload::Smoke {
        return smoke::connection(ctx, t, session, rng);
    }
    let cfg = ctx.cfg;
    let mut w = Worker::new(ctx, session, rng);
    match cfg.rate {
        None => w.closed_loop(cfg.pipeline)?,
        Some(rate) => {
            let conns = cfg.connections as f64;
            let interval_s = conns / rate;
            let phase_s = interval_s * t as f64 / conns;
            w.open_loop(cfg.pipeline, interval_s, phase_s)?;
        }
    }
    Ok(ThreadOutcome {
        rec: w.rec,
        check: None,
        finished: Instant::now(),
    })
}

/// Several connections driven by one thread, each in its own closed loop:
/// up to `--pipeline` requests sent on a connection, and as soon as all of
/// its answers are in, the next ones sent on it, until the budget is spent
/// (what `redis-benchmark`'s event loop does; over sockets an epoll set
/// says which connection answered). Embedded sessions have no socket and
/// answer in turn: they go round in rounds, every connection's requests
/// sent, then every answer read.
fn multiplexed(
    ctx: &Context<'_>,
    sessions: Vec<(usize, Box<dyn Session>)>,
) -> Result<ThreadOutcome, String> {
    let mut workers: Vec<Worker<'_>> = sessions
        .into_iter()
        .map(|(t, session)| {
            let stream = ((ctx.position as u64) << 32) | t as u64;
            Worker::new(ctx, session, Rng::new(ctx.cfg.seed, stream))
        })
        .collect();
    let fds: Option<Vec<_>> = workers.iter().map(|w| w.session.raw_fd()).collect();
    match fds {
        Some(fds) if workers.len() > 1 => {
            let mut poller = Poller::new(&fds)?;
            per_connection_loops(ctx, &mut poller, &mut workers)?;
        }
        _ => rounds(ctx, &mut workers)?,
    }
    let mut rec = Recorder::default();
    for w in &workers {
        rec.merge(&w.rec);
    }
    Ok(ThreadOutcome {
        rec,
        check: None,
        finished: Instant::now(),
    })
}

/// Sends up to `--pipeline` requests on `w` (as many as the budget still
/// has); whether any were sent.
fn refill(ctx: &Context<'_>, w: &mut Worker<'_>) -> Result<bool, String> {
    let now = Instant::now();
    while w.inflight.len() < ctx.cfg.pipeline {
        let Some(seq) = ctx.shared.budget.claim() else {
            break;
        };
        let op = w.source.op(seq);
        w.send(op, now)?;
    }
    if w.inflight.is_empty() {
        return Ok(false);
    }
    w.session.flush()?;
    Ok(true)
}

/// Embedded sessions: every connection's requests, then every answer.
fn rounds(ctx: &Context<'_>, workers: &mut [Worker<'_>]) -> Result<(), String> {
    loop {
        let mut sent = false;
        for w in workers.iter_mut() {
            sent |= refill(ctx, w)?;
        }
        if !sent {
            return Ok(());
        }
        for w in workers.iter_mut() {
            while !w.inflight.is_empty() {
                w.recv_one()?;
            }
        }
    }
}

/// How long the load generator waits for any answer before it gives up.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Each connection in its own closed loop: read whatever answers a
/// readable socket brought; once a connection has all of its answers, send
/// its next requests.
fn per_connection_loops(
    ctx: &Context<'_>,
    poller: &mut Poller,
    workers: &mut [Worker<'_>],
) -> Result<(), String> {
    let mut waiting = 0usize;
    for w in workers.iter_mut() {
        waiting += usize::from(refill(ctx, w)?);
    }
    let mut ready = Vec::new();
    while waiting > 0 {
        poller.wait(ANSWER_TIMEOUT, &mut ready)?;
        if ready.is_empty() {
            return Err(format!(
                "no answer from the server in {} s ({waiting} connections waiting)",
                ANSWER_TIMEOUT.as_secs()
            ));
        }
        for &i in ready.iter() {
            let Some(w) = workers.get_mut(i) else {
                continue;
            };
            if w.inflight.is_empty() {
                continue;
            }
            w.recv_one()?;
            while !w.inflight.is_empty() && w.session.has_buffered_answer() {
                w.recv_one()?;
            }
            if w.inflight.is_empty() && !refill(ctx, w)? {
                waiting -= 1;
            }
        }
    }
    Ok(())
}

/// A benchmark connection's loop state.
struct Worker<'a> {
    session: Box<dyn Session>,
    source: OpSource,
    keys: KeyFormat,
    pool: &'a ValuePool,
    key_size: usize,
    value_size: usize,
    scan_length: u32,
    /// Start time and kind of each request in flight, oldest first.
    inflight: VecDeque<(Instant, OpKind)>,
    rec: Recorder,
    shared: &'a Shared,
}

impl<'a> Worker<'a> {
    fn new(ctx: &Context<'a>, session: Box<dyn Session>, rng: Rng) -> Worker<'a> {
        let cfg = ctx.cfg;
        Worker {
            session,
            source: OpSource::new(
                ctx.workload,
                ctx.chooser,
                cfg.key_space,
                cfg.read_percent,
                rng,
            ),
            keys: KeyFormat::new(cfg.key_size),
            pool: ctx.pool,
            key_size: cfg.key_size,
            value_size: cfg.value_size,
            scan_length: cfg.scan_length,
            inflight: VecDeque::with_capacity(cfg.pipeline),
            rec: Recorder::default(),
            shared: ctx.shared,
        }
    }

    /// Sends up to `depth` requests, then receives all their answers;
    /// again until the budget is spent.
    fn closed_loop(&mut self, depth: usize) -> Result<(), String> {
        loop {
            let now = Instant::now();
            while self.inflight.len() < depth {
                let Some(seq) = self.shared.budget.claim() else {
                    break;
                };
                let op = self.source.op(seq);
                self.send(op, now)?;
            }
            if self.inflight.is_empty() {
                return Ok(());
            }
            self.session.flush()?;
            while !self.inflight.is_empty() {
                self.recv_one()?;
            }
        }
    }

    /// Sends each request at its scheduled time (see the module comment).
    fn open_loop(&mut self, depth: usize, interval_s: f64, phase_s: f64) -> Result<(), String> {
        set_fine_timer_slack();
        let t0 = Instant::now();
        let due = |k: u64| t0 + Duration::from_secs_f64(phase_s + k as f64 * interval_s);
        let mut k = 0u64;
        let mut spent = false;
        loop {
            let now = Instant::now();
            let mut sent = false;
            while !spent && self.inflight.len() < depth && due(k) <= now {
                match self.shared.budget.claim() {
                    None => spent = true,
                    Some(seq) => {
                        let op = self.source.op(seq);
                        self.send(op, due(k))?;
                        k += 1;
                        sent = true;
                    }
                }
            }
            if sent {
                self.session.flush()?;
            }
            if !self.inflight.is_empty() {
                self.recv_one()?;
                continue;
            }
            if spent {
                return Ok(());
            }
            let wait = due(k).saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
    }

    fn send(&mut self, op: Op, start: Instant) -> Result<(), String> {
        let req = match op {
            Op::Put(i) => {
                let key = self.keys.key(i);
                let value = self.pool.value(self.source.rng(), self.value_size);
                self.rec.bytes += (key.len() + value.len()) as u64;
                Req::Put { key, value }
            }
            Op::Get(i) => Req::Get {
                key: self.keys.key(i),
            },
            Op::GetMissing(i) => Req::Get {
                key: self.keys.missing_key(i),
            },
            Op::Delete(i) => Req::Delete {
                key: self.keys.key(i),
            },
            Op::Scan(i) => Req::Scan {
                start: self.keys.key(i),
                end: None,
                limit: self.scan_length,
            },
        };
        self.session.send(req)?;
        self.inflight.push_back((start, op.kind()));
        Ok(())
    }

    fn recv_one(&mut self) -> Result<(), String> {
        let outcome = self.session.recv()?;
        let end = Instant::now();
        let Some((start, kind)) = self.inflight.pop_front() else {
            return Err("an answer arrived for no request".into());
        };
        self.rec.record(kind, end.saturating_duration_since(start));
        match outcome {
            Outcome::Done => {}
            Outcome::Found(v) => {
                self.rec.found += 1;
                self.rec.bytes += (v.len() + self.key_size) as u64;
            }
            Outcome::NotFound => self.rec.not_found += 1,
            Outcome::Pairs { pairs, .. } => {
                self.rec.pairs += pairs.len() as u64;
                self.rec.bytes += pairs
                    .iter()
                    .map(|(k, v)| (k.len() + v.len()) as u64)
                    .sum::<u64>();
            }
        }
        self.shared.completed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Asks the kernel to wake this thread's sleeps on time (default slack is
/// 50 us), so fixed-rate requests leave when scheduled.
fn set_fine_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer and only changes this
    // thread's timer slack; failure leaves the default, which is harmless.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}
