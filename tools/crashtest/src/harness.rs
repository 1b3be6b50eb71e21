//! The kill -9 cycle harness, shared by `cityhall-crashtest` (long runs)
//! and `tests/server_crash.rs` (a short run in CI), which includes this
//! file as a module.
//!
//! One cycle: a real `cityhall server` process serves concurrent clients
//! that put, delete, write batches and add time-series points, each client
//! recording what the server acknowledged; at a random moment the server
//! is killed with SIGKILL; `cityhall check` must find the directory clean;
//! the server is started again and every client's keys and points are read
//! back. The oracle:
//!
//! - every acknowledged write is there with its newest acknowledged value
//!   (each client owns its keys and series, and has at most one request
//!   outstanding, so "newest" is well defined);
//! - the one write each client had in flight at the kill is either wholly
//!   there or wholly absent (a batch, or one time-series add, is atomic);
//! - nothing else appears.
//!
//! The restarted server carries the next cycle's load. All choices (the
//! operations, the kill delays) follow the seed, which every failure names;
//! the moment the kill lands relative to the server's work is up to the
//! scheduler, so a seed narrows a failure down rather than replaying it
//! exactly.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use cityhall::client::{Client, ConnectOptions};
use cityhall::io::sim::SimRng;
use cityhall::protocol::ts::TsSeriesPoints;
use cityhall::ts::{Point, RangeQuery, SeriesKey};
use cityhall::WriteBatch;

/// What a run does.
#[derive(Clone, Debug)]
pub struct Config {
    /// The `cityhall` binary.
    pub bin: PathBuf,
    /// The database directory (created if missing; reused across cycles).
    pub data_dir: PathBuf,
    /// Seed of every random choice.
    pub seed: u64,
    /// Kill/restart cycles.
    pub cycles: u64,
    /// Concurrent writing clients.
    pub clients: usize,
    /// Keys each client owns.
    pub keys_per_client: usize,
    /// Longest time the load runs before the kill.
    pub run_ms_max: u64,
    /// Largest value written.
    pub value_bytes_max: usize,
    /// The server's memtable size: small, so that flushes and compactions
    /// happen within a cycle.
    pub memtable_size_bytes_max: usize,
    /// The server's WAL segment size: small, so segments roll over.
    pub wal_segment_size_bytes: u64,
    /// Print one line per cycle to stderr.
    pub verbose: bool,
}

impl Config {
    /// Defaults for `bin` over `data_dir`.
    pub fn new(bin: PathBuf, data_dir: PathBuf, seed: u64, cycles: u64) -> Config {
        Config {
            bin,
            data_dir,
            seed,
            cycles,
            clients: 4,
            keys_per_client: 200,
            run_ms_max: 400,
            value_bytes_max: 1500,
            memtable_size_bytes_max: 256 << 10,
            wal_segment_size_bytes: 256 << 10,
            verbose: false,
        }
    }
}

/// Totals of a run.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Cycles completed (each one a SIGKILL, a check and a verified restart).
    pub cycles: u64,
    /// Acknowledged puts and deletes (single or in batches).
    pub acked_kv_ops: u64,
    /// Acknowledged batches.
    pub acked_batches: u64,
    /// Acknowledged time-series points.
    pub acked_points: u64,
    /// Writes in flight at a kill that turned out applied.
    pub in_flight_applied: u64,
    /// Writes in flight at a kill that turned out absent.
    pub in_flight_absent: u64,
    /// Values checked after restarts (keys and points).
    pub values_checked: u64,
}

/// A failed run: what was wrong, where, and how to reproduce it.
#[derive(Debug)]
pub struct Failure {
    /// The run's seed.
    pub seed: u64,
    /// The cycle that failed.
    pub cycle: u64,
    /// What was wrong.
    pub what: String,
    /// The server's stderr around the failure.
    pub server_log: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "crash test failed: seed {} cycle {}: {}\nserver stderr:\n{}",
            self.seed, self.cycle, self.what, self.server_log
        )
    }
}

/// A running server.
struct Server {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts a server and waits until it listens.
    fn start(cfg: &Config) -> Result<Server, String> {
        let (mut server, rx) = Self::spawn(cfg)?;
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => {
                server.addr = addr;
                Ok(server)
            }
            Err(_) => {
                server.kill();
                Err(format!(
                    "the server did not start within 60 s; stderr:\n{}",
                    server.log()
                ))
            }
        }
    }

    /// Starts a server; the receiver gets its address once it listens.
    fn spawn(cfg: &Config) -> Result<(Server, mpsc::Receiver<String>), String> {
        let conf = cfg.data_dir.with_extension("crashtest.conf");
        std::fs::write(
            &conf,
            format!(
                "memtable_size_bytes_max = {}\nwal_segment_size_bytes = {}\n",
                cfg.memtable_size_bytes_max, cfg.wal_segment_size_bytes
            ),
        )
        .map_err(|e| format!("write {}: {e}", conf.display()))?;
        let mut child = Command::new(&cfg.bin)
            .args(["server", "--listen", "127.0.0.1:0", "--threads", "2"])
            .arg("--data-dir")
            .arg(&cfg.data_dir)
            .arg("--config")
            .arg(&conf)
            .env_remove("CITYHALL_DATA_DIR")
            .env_remove("CITYHALL_LISTEN")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", cfg.bin.display()))?;
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        if let Some(pipe) = child.stderr.take() {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.strip_prefix("cityhall: listening on ") {
                        let addr = rest.split_whitespace().next().unwrap_or_default();
                        let _ = tx.send(addr.to_string());
                    }
                    let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
                    l.push_str(&line);
                    l.push('\n');
                    // Keep the tail only: a long run must not grow this.
                    if l.len() > 64 << 10 {
                        let cut = l.len() - (32 << 10);
                        let cut = (cut..l.len()).find(|&i| l.is_char_boundary(i)).unwrap_or(0);
                        l.drain(..cut);
                    }
                }
            });
        }
        let server = Server {
            child,
            addr: String::new(),
            log,
        };
        Ok((server, rx))
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        // SAFETY: sends a signal to our own child process, which has not
        // been reaped yet (its pid cannot have been reused).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// A write a client sent and has no answer for.
#[derive(Clone, Debug)]
enum Pending {
    /// Puts (`Some`) and deletes (`None`) by key index; one request.
    Kv {
        ops: Vec<(usize, Option<Vec<u8>>)>,
        batch: bool,
    },
    /// Points of the client's series; one request.
    Ts(Vec<Point>),
}

/// What one client knows was acknowledged.
#[derive(Clone, Debug, Default)]
struct ClientModel {
    /// Key index -> newest acknowledged value (absent: never written or
    /// deleted).
    kv: BTreeMap<usize, Vec<u8>>,
    /// Acknowledged points of the current cycle, by timestamp.
    points: BTreeMap<i64, f64>,
    /// The verified points of the previous cycle (re-read once more).
    points_prev: BTreeMap<i64, f64>,
    /// Next timestamp offset within the cycle.
    next_ts: i64,
    /// Writes sent, for unique values.
    counter: u64,
}

/// What a client thread hands back.
struct ClientOutcome {
    model: ClientModel,
    pending: Option<Pending>,
    /// An error answered while the server was still alive.
    error_alive: Option<String>,
    stats: Summary,
}

/// Connects with a bound on every read and write, so that a server that
/// stops answering fails the run instead of hanging it.
fn connect(addr: &str) -> cityhall::Result<Client> {
    let opts = ConnectOptions {
        io_timeout: Some(Duration::from_secs(120)),
        ..ConnectOptions::default()
    };
    Client::connect_with(addr, &opts)
}

/// Milliseconds of timestamp space each cycle's points use.
const CYCLE_TS_SPAN: i64 = 1_000_000_000;
/// Timestamp of the first point (2023-11-14); each cycle starts later.
const TS_BASE: i64 = 1_700_000_000_000;

fn cycle_ts_base(cycle: u64) -> i64 {
    TS_BASE + cycle as i64 * CYCLE_TS_SPAN
}

fn key_name(client: usize, idx: usize) -> Vec<u8> {
    format!("crash/c{client:02}/k{idx:05}").into_bytes()
}

fn series(client: usize) -> Result<SeriesKey, String> {
    SeriesKey::parse(&format!("crash.points{{c=\"{client}\"}}"))
        .map_err(|e| format!("series name: {e}"))
}

/// A value unique to (client, cycle, counter), of a random length.
fn value(rng: &mut SimRng, client: usize, cycle: u64, n: u64, len_max: usize) -> Vec<u8> {
    let mut v = format!("c{client}.y{cycle}.n{n}.").into_bytes();
    let len = v.len() + rng.below(len_max.saturating_sub(v.len()).max(1) as u64) as usize;
    let mut x = rng.next_u64();
    while v.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        v.push(b'a' + ((x >> 59) as u8 % 26));
    }
    v
}

fn point_value(client: usize, cycle: u64, n: u64) -> f64 {
    (client as f64) * 1e9 + (cycle as f64) * 1e5 + n as f64
}

struct ClientCtx {
    id: usize,
    cycle: u64,
    addr: String,
    seed: u64,
    keys: usize,
    value_bytes_max: usize,
    killed: Arc<AtomicBool>,
}

/// Writes until the server dies (or answers an error).
fn client_loop(ctx: ClientCtx, mut model: ClientModel) -> ClientOutcome {
    let mut rng = SimRng::new(ctx.seed);
    let mut stats = Summary::default();
    let outcome = |model, pending, error_alive, stats| ClientOutcome {
        model,
        pending,
        error_alive,
        stats,
    };
    let mut client = match connect(&ctx.addr) {
        Ok(c) => c,
        Err(e) => {
            let alive = !ctx.killed.load(Ordering::SeqCst);
            let err = alive.then(|| format!("connect: {e}"));
            return outcome(model, None, err, stats);
        }
    };
    let Ok(series) = series(ctx.id) else {
        return outcome(model, None, Some("bad series name".into()), stats);
    };
    let base = cycle_ts_base(ctx.cycle);
    loop {
        model.counter += 1;
        let n = model.counter;
        let roll = rng.below(100);
        let pending = if roll < 20 {
            let pts: Vec<Point> = (0..1 + rng.below(30))
                .map(|j| Point {
                    ts: base + model.next_ts + j as i64 * 7,
                    value: point_value(ctx.id, ctx.cycle, n * 100 + j),
                })
                .collect();
            model.next_ts += pts.len() as i64 * 7 + 1 + rng.below(50) as i64;
            Pending::Ts(pts)
        } else {
            let count = if roll < 45 { 2 + rng.below(5) } else { 1 };
            let ops = (0..count)
                .map(|j| {
                    let idx = rng.below(ctx.keys as u64) as usize;
                    let v = (rng.below(4) != 0).then(|| {
                        value(&mut rng, ctx.id, ctx.cycle, n * 10 + j, ctx.value_bytes_max)
                    });
                    (idx, v)
                })
                .collect();
            Pending::Kv {
                ops,
                batch: roll < 45,
            }
        };
        let result = match &pending {
            Pending::Ts(pts) => client.ts_add(vec![TsSeriesPoints {
                series: series.clone(),
                points: pts.clone(),
            }]),
            Pending::Kv { ops, batch: true } => {
                let mut b = WriteBatch::new();
                for (idx, v) in ops {
                    match v {
                        Some(v) => b.put(key_name(ctx.id, *idx), v.clone()),
                        None => b.delete(key_name(ctx.id, *idx)),
                    };
                }
                client.write_batch(&b)
            }
            Pending::Kv { ops, batch: false } => match ops.first() {
                Some((idx, Some(v))) => client.put(&key_name(ctx.id, *idx), v),
                Some((idx, None)) => client.delete(&key_name(ctx.id, *idx)),
                None => Ok(()),
            },
        };
        match result {
            Ok(()) => {
                apply(&mut model, &pending);
                match &pending {
                    Pending::Ts(pts) => stats.acked_points += pts.len() as u64,
                    Pending::Kv { ops, batch } => {
                        stats.acked_kv_ops += ops.len() as u64;
                        stats.acked_batches += u64::from(*batch);
                    }
                }
            }
            Err(e) => {
                let alive = !ctx.killed.load(Ordering::SeqCst);
                let err = alive.then(|| format!("{pending:?} failed: {e}"));
                return outcome(model, Some(pending), err, stats);
            }
        }
    }
}

fn apply(model: &mut ClientModel, pending: &Pending) {
    match pending {
        Pending::Ts(pts) => {
            for p in pts {
                model.points.insert(p.ts, p.value);
            }
        }
        Pending::Kv { ops, .. } => {
            for (idx, v) in ops {
                match v {
                    Some(v) => model.kv.insert(*idx, v.clone()),
                    None => model.kv.remove(idx),
                };
            }
        }
    }
}

/// Reads everything one client owns and checks it against its model and
/// its in-flight write; returns the model with the in-flight write
/// resolved.
fn verify_client(
    c: &mut Client,
    id: usize,
    keys: usize,
    cycle: u64,
    mut model: ClientModel,
    pending: Option<Pending>,
    stats: &mut Summary,
) -> Result<ClientModel, String> {
    // The state if the in-flight write was applied.
    let mut applied = model.clone();
    if let Some(p) = &pending {
        apply(&mut applied, p);
    }
    let names: Vec<Vec<u8>> = (0..keys).map(|i| key_name(id, i)).collect();
    let mut got: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    let chunk = c.limits().mget_keys_max.clamp(1, 256);
    for (n, part) in names.chunks(chunk).enumerate() {
        let refs: Vec<&[u8]> = part.iter().map(|k| k.as_slice()).collect();
        let vals = c
            .mget(&refs)
            .map_err(|e| format!("client {id}: mget: {e}"))?;
        for (j, v) in vals.into_iter().enumerate() {
            if let Some(v) = v {
                got.insert(n * chunk + j, v);
            }
        }
    }
    stats.values_checked += keys as u64;
    let series = series(id)?;
    let base = cycle_ts_base(cycle);
    let read = |c: &mut Client, from: i64| -> Result<BTreeMap<i64, f64>, String> {
        let q = RangeQuery {
            from,
            to: from + CYCLE_TS_SPAN - 1,
            agg: None,
            bucket_ms: 0,
            limit: usize::MAX >> 1,
        };
        let pts = c
            .ts_range(&series, &q)
            .map_err(|e| format!("client {id}: ts range from {from}: {e}"))?
            .unwrap_or_default();
        Ok(pts.into_iter().map(|p| (p.ts, p.value)).collect())
    };
    let got_points = read(c, base)?;
    stats.values_checked += got_points.len() as u64;
    if cycle > 0 {
        let prev = read(c, cycle_ts_base(cycle - 1))?;
        if prev != model.points_prev {
            return Err(format!(
                "client {id}: the previous cycle's points changed: {} verified, {} now ({})",
                model.points_prev.len(),
                prev.len(),
                first_difference(&model.points_prev, &prev)
            ));
        }
        stats.values_checked += prev.len() as u64;
    }
    let as_acked = got == model.kv && got_points == model.points;
    let as_applied = got == applied.kv && got_points == applied.points;
    if pending.is_some() {
        if as_applied && !as_acked {
            stats.in_flight_applied += 1;
        } else if as_acked {
            stats.in_flight_absent += 1;
        }
    }
    if !(as_acked || as_applied) {
        let (kv_diff, pt_diff) = (
            first_difference(&model.kv, &got),
            first_difference(&model.points, &got_points),
        );
        return Err(format!(
            "client {id}: state after restart is neither the acknowledged one nor it plus the \
             write in flight ({pending:?})\n  keys vs acknowledged: {kv_diff}\n  keys vs \
             applied: {}\n  points vs acknowledged: {pt_diff}\n  points vs applied: {}",
            first_difference(&applied.kv, &got),
            first_difference(&applied.points, &got_points),
        ));
    }
    if as_applied {
        model = applied;
    }
    Ok(model)
}

fn first_difference<K: Ord + std::fmt::Debug + Clone, V: PartialEq + std::fmt::Debug>(
    want: &BTreeMap<K, V>,
    got: &BTreeMap<K, V>,
) -> String {
    for (k, v) in want {
        match got.get(k) {
            None => return format!("{k:?} missing (want {})", short(v)),
            Some(g) if g != v => return format!("{k:?} is {} (want {})", short(g), short(v)),
            _ => {}
        }
    }
    match got.keys().find(|k| !want.contains_key(*k)) {
        Some(k) => format!("{k:?} present, should be absent"),
        None => "none".into(),
    }
}

fn short<V: std::fmt::Debug>(v: &V) -> String {
    let s = format!("{v:?}");
    s.chars().take(60).collect()
}

/// Runs `cityhall check DIR`; `Err` with its output unless it exits 0.
fn check_dir(cfg: &Config) -> Result<(), String> {
    let out = Command::new(&cfg.bin)
        .arg("check")
        .arg(&cfg.data_dir)
        .output()
        .map_err(|e| format!("run check: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "cityhall check after the kill: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs the cycles.
pub fn run(cfg: &Config) -> Result<Summary, Failure> {
    let fail = |cycle, what: String, log: String| Failure {
        seed: cfg.seed,
        cycle,
        what,
        server_log: log,
    };
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        fail(
            0,
            format!("create {}: {e}", cfg.data_dir.display()),
            String::new(),
        )
    })?;
    let mut rng = SimRng::new(cfg.seed);
    let mut models: Vec<ClientModel> = vec![ClientModel::default(); cfg.clients];
    let mut total = Summary::default();
    let mut server = Server::start(cfg).map_err(|e| fail(0, e, String::new()))?;
    for cycle in 0..cfg.cycles {
        let started = Instant::now();
        let killed = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = models
            .drain(..)
            .enumerate()
            .map(|(id, m)| {
                let ctx = ClientCtx {
                    id,
                    cycle,
                    addr: server.addr.clone(),
                    seed: rng.next_u64(),
                    keys: cfg.keys_per_client,
                    value_bytes_max: cfg.value_bytes_max,
                    killed: Arc::clone(&killed),
                };
                std::thread::spawn(move || client_loop(ctx, m))
            })
            .collect();
        // Mostly mid-load; now and then at once, while clients connect.
        let delay_ms = match rng.below(10) {
            0 => rng.below(5),
            _ => rng.below(cfg.run_ms_max.max(1)),
        };
        std::thread::sleep(Duration::from_millis(delay_ms));
        killed.store(true, Ordering::SeqCst);
        server.kill();
        let log = server.log();
        let mut outcomes = Vec::new();
        for h in handles {
            match h.join() {
                Ok(o) => outcomes.push(o),
                Err(_) => return Err(fail(cycle, "a client thread panicked".into(), log)),
            }
        }
        for (id, o) in outcomes.iter().enumerate() {
            if let Some(e) = &o.error_alive {
                return Err(fail(
                    cycle,
                    format!("client {id} got an error from a live server: {e}"),
                    log,
                ));
            }
        }
        check_dir(cfg).map_err(|e| fail(cycle, e, log.clone()))?;
        // Now and then the restart itself is killed, during recovery.
        if rng.below(8) == 0 {
            let (mut early, _) = Server::spawn(cfg).map_err(|e| fail(cycle, e, log.clone()))?;
            std::thread::sleep(Duration::from_millis(rng.below(40)));
            early.kill();
            check_dir(cfg)
                .map_err(|e| fail(cycle, format!("after a kill in recovery: {e}"), early.log()))?;
        }
        server = Server::start(cfg).map_err(|e| fail(cycle, format!("restart: {e}"), log))?;
        let mut c = connect(&server.addr)
            .map_err(|e| fail(cycle, format!("connect after restart: {e}"), server.log()))?;
        let mut pending_count = 0;
        for (id, o) in outcomes.into_iter().enumerate() {
            total.acked_kv_ops += o.stats.acked_kv_ops;
            total.acked_batches += o.stats.acked_batches;
            total.acked_points += o.stats.acked_points;
            pending_count += usize::from(o.pending.is_some());
            let mut m = verify_client(
                &mut c,
                id,
                cfg.keys_per_client,
                cycle,
                o.model,
                o.pending,
                &mut total,
            )
            .map_err(|e| fail(cycle, e, server.log()))?;
            m.points_prev = std::mem::take(&mut m.points);
            m.next_ts = 0;
            models.push(m);
        }
        total.cycles += 1;
        if cfg.verbose {
            eprintln!(
                "cycle {cycle}: killed after {delay_ms} ms, {pending_count} writes in flight, \
                 verified in {} ms total; {} kv ops, {} points acknowledged so far",
                started.elapsed().as_millis(),
                total.acked_kv_ops,
                total.acked_points
            );
        }
    }
    drop(server);
    Ok(total)
}

/// The default data directory of a run: a fresh one under the system's
/// temporary directory.
pub fn scratch_dir(seed: u64) -> PathBuf {
    std::env::temp_dir().join(format!("cityhall-crashtest-{}-{seed}", std::process::id()))
}

/// Removes a run's directory and its config file.
pub fn remove_scratch(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_file(dir.with_extension("crashtest.conf"));
}
