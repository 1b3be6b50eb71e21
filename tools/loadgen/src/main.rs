//! `cityhall-loadgen`: load runs against a CityHall server (over TCP,
//! through `cityhall::client::Client`, so it cannot drift from the wire
//! protocol) or an embedded `cityhall::Db`, with workloads named as in
//! `db_bench` and latencies in HDR histograms.
//!
//! ```text
//! cityhall-loadgen --workload fillrandom,readrandom --addr 127.0.0.1:7878 \
//!     --connections 50 --pipeline 16 --num 200k
//! cityhall-loadgen --workload fillseq,readrandom,readmissing --embedded /tmp/db \
//!     --durability relaxed --duration 10s --json
//! cityhall-loadgen --workload mixed --read-percent 95 --rate 20000 \
//!     --connections 8 --duration 30s --hdr-out mixed.hgrm
//! cityhall-loadgen --workload smoke --embedded /tmp/db --duration 2s
//! ```
//!
//! Output: the Setup block (machine, commit, options), then per workload a
//! summary line with throughput and p50/p90/p99/p99.9/p99.99/max latency
//! in microseconds; embedded, also an `engine` line with the engine's
//! write stall time, write and space amplification, table bytes and the
//! bytes the directory takes on disk (see [`engine_line`]). With `--json` stdout carries only one JSON line per
//! workload and the text goes to stderr.
//!
//! Exit status: 0 success; 1 the smoke check found a mismatch; 2 usage;
//! 3 a connection, server or IO error (one line on stderr naming it).

mod cli;
mod keys;
mod poller;
mod recorder;
mod report;
mod rng;
mod runner;
mod session;
mod setup;
mod smoke;
mod workload;
mod zipf;

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

use cityhall::{Db, Options};
use cli::{Args, Config, Distribution, Target, Workload};
use keys::{KeyChooser, ValuePool};
use session::{Embedded, Remote, Session};
use setup::Setup;

/// Exit status when the smoke check fails.
const EXIT_CHECK_FAILED: u8 = 1;
/// Exit status for usage errors (clap uses it too).
const EXIT_USAGE: u8 = 2;
/// Exit status for connection, server and IO errors.
const EXIT_ERROR: u8 = 3;

fn main() -> ExitCode {
    let command = std::env::args()
        .map(|a| shell_quote(&a))
        .collect::<Vec<_>>()
        .join(" ");
    let args = Args::parse();
    let setup_only = args.setup_only;
    let cfg = match Config::from_args(args, command) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cityhall-loadgen: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let db = match open_embedded(&cfg, setup_only) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("cityhall-loadgen: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let setup = Setup::gather(&cfg, db.as_ref().map(|d| d.backend().to_string()));
    text_out(&cfg, &setup.render(&cfg));
    if setup_only {
        return ExitCode::SUCCESS;
    }
    let status = run_all(&cfg, &setup, db.as_ref());
    if let Some(db) = db {
        if let Err(e) = db.close() {
            eprintln!("cityhall-loadgen: closing the database failed: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    }
    status
}

/// Opens the embedded database, if the run has one (not for
/// `--setup-only`, which only creates the directory to name its file
/// system).
fn open_embedded(cfg: &Config, setup_only: bool) -> Result<Option<Db>, String> {
    let Target::Embedded(dir) = &cfg.target else {
        return Ok(None);
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if setup_only {
        return Ok(None);
    }
    let options = Options {
        durability: cfg.durability,
        ..Options::default()
    };
    Db::open(dir, options)
        .map(Some)
        .map_err(|e| format!("cannot open the database in {}: {e}", dir.display()))
}

/// Runs every workload in order; stops at the first error.
fn run_all(cfg: &Config, setup: &Setup, db: Option<&Db>) -> ExitCode {
    let pool = ValuePool::new(cfg.seed);
    let chooser = match cfg.distribution {
        Distribution::Uniform => KeyChooser::uniform(cfg.key_space),
        Distribution::Zipfian => KeyChooser::zipfian(cfg.key_space),
    };
    let connect = |_t: usize| -> Result<Box<dyn Session>, String> {
        match (&cfg.target, db) {
            (Target::Server(addr), _) => Ok(Box::new(Remote::connect(addr, cfg.scan_length)?)),
            (Target::Embedded(_), Some(db)) => {
                Ok(Box::new(Embedded::new(db.clone(), cfg.pipeline)))
            }
            (Target::Embedded(_), None) => Err("the embedded database is not open".into()),
        }
    };
    let several = cfg.workloads.len() > 1;
    let mut status = ExitCode::SUCCESS;
    for (position, workload) in cfg.workloads.iter().enumerate() {
        if *workload == Workload::Compact {
            let t0 = Instant::now();
            match compact(cfg, db) {
                Ok(text) => {
                    text_out(cfg, &text);
                    if cfg.json {
                        let line = serde_json::json!({
                            "workload": "compact",
                            "elapsed_s": t0.elapsed().as_secs_f64(),
                        });
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(out, "{line}");
                        let _ = out.flush();
                    }
                }
                Err(e) => {
                    eprintln!("cityhall-loadgen: compact: {e}");
                    return ExitCode::from(EXIT_ERROR);
                }
            }
            continue;
        }
        let r = runner::run(cfg, *workload, position, &connect, &pool, chooser);
        if r.error.is_none() || r.rec.ops() > 0 {
            text_out(cfg, &report::text(cfg, &r));
        }
        if let (Some(db), Target::Embedded(dir)) = (db, &cfg.target) {
            text_out(cfg, &engine_line(db, dir));
            if cfg.settle {
                text_out(cfg, &settle(db, dir));
            }
        }
        if cfg.json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", report::json_line(cfg, setup, &r));
            let _ = out.flush();
        }
        if let Some(path) = &cfg.hdr_out {
            let path = report::hgrm_path(path, workload.name(), several);
            if let Err(e) = std::fs::write(&path, report::hgrm(&r.rec.all)) {
                eprintln!("cityhall-loadgen: cannot write {}: {e}", path.display());
                return ExitCode::from(EXIT_ERROR);
            }
        }
        if let Some(e) = &r.error {
            eprintln!("cityhall-loadgen: {}: {e}", workload.name());
            return ExitCode::from(EXIT_ERROR);
        }
        if r.check.as_ref().is_some_and(|c| c.mismatches > 0) {
            eprintln!(
                "cityhall-loadgen: {}: the check found mismatches (see above)",
                workload.name()
            );
            status = ExitCode::from(EXIT_CHECK_FAILED);
        }
    }
    status
}

/// Runs the `compact` step: flush and compact the whole key space, timed.
fn compact(cfg: &Config, db: Option<&Db>) -> Result<String, String> {
    let t0 = Instant::now();
    match (&cfg.target, db) {
        (Target::Embedded(_), Some(db)) => {
            db.compact_range(None, None).map_err(|e| e.to_string())?
        }
        (Target::Embedded(_), None) => return Err("the embedded database is not open".into()),
        (Target::Server(addr), _) => cityhall::client::Client::connect(addr)
            .and_then(|mut c| c.compact(None, None))
            .map_err(|e| format!("{addr}: {e}"))?,
    }
    let mut text = format!(
        "{:<12} : {:.3} s (flush and compact the whole key space)\n",
        "compact",
        t0.elapsed().as_secs_f64()
    );
    if let (Some(db), Target::Embedded(dir)) = (db, &cfg.target) {
        text.push_str(&engine_line(db, dir));
    }
    Ok(text)
}

/// The background work counted by [`settle`].
const SETTLE_COUNTERS: [&str; 3] = ["flush.count", "compaction.count", "compaction.idle_runs"];
/// The engine has settled when nothing runs and nothing was flushed or
/// compacted for this long (longer than the engine's idle delay).
const SETTLE_QUIET: Duration = Duration::from_millis(2_500);
/// Longest wait for the engine to settle.
const SETTLE_WAIT_MAX: Duration = Duration::from_secs(300);

/// Waits until the engine's background work is done (see the constants),
/// then returns the engine line, with the time waited.
fn settle(db: &Db, dir: &std::path::Path) -> String {
    use cityhall::metrics::MetricValue;
    let t0 = Instant::now();
    let state = || {
        let m = db.metrics();
        let value = |name: &str| match m.get(name) {
            Some(MetricValue::Counter(n)) => *n as f64,
            Some(MetricValue::Gauge(g)) => *g,
            _ => 0.0,
        };
        let busy = value("compaction.running") > 0.0 || value("memtable.immutable_count") > 0.0;
        (busy, SETTLE_COUNTERS.map(value))
    };
    let mut last = state();
    let mut quiet_since = Instant::now();
    while t0.elapsed() < SETTLE_WAIT_MAX {
        std::thread::sleep(Duration::from_millis(100));
        let now = state();
        if now.0 || now.1 != last.1 {
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= SETTLE_QUIET {
            break;
        }
        last = now;
    }
    format!(
        "{:<12}   settled after {:.1} s (background work done):\n{}",
        "",
        t0.elapsed().as_secs_f64(),
        engine_line(db, dir)
    )
}

/// The engine's own account of the run so far, one line:
///
/// - `stall`: time writers spent stalled, in seconds (memtable stalls,
///   L0/compaction-debt slowdowns and stops, with their counts);
/// - `write-amp`: bytes written to disk (WAL, flushes, compactions) over
///   bytes written by users (WAL bytes), since the database was opened;
/// - `space-amp`: the engine's estimate, all table bytes over the bytes of
///   the deepest non-empty level;
/// - `tables`: bytes of live tables; `disk`: bytes the directory's files
///   take on disk (allocated blocks, as `du` counts), and of those the
///   WAL segments' (preallocated, so they count in full: a fixed cost of
///   two segments, the one in use and the one prepared next).
fn engine_line(db: &Db, dir: &std::path::Path) -> String {
    use cityhall::metrics::MetricValue;
    let m = db.metrics();
    let counter = |name: &str| match m.get(name) {
        Some(MetricValue::Counter(n)) => *n,
        _ => 0,
    };
    let gauge = |name: &str| match m.get(name) {
        Some(MetricValue::Gauge(g)) => *g,
        _ => 0.0,
    };
    let stall_us =
        counter("write.stall_us") + counter("write.slowdown_us") + counter("write.stop_us");
    let disk = disk_bytes(dir);
    let levels: Vec<String> = (0..7)
        .map(|l| format!("{}", gauge(&format!("level{l}.files"))))
        .collect();
    format!(
        "{:<12}   engine: stall {:.3} s (memtable {}, slowdown {}, stop {}); write-amp {:.2}; \
         space-amp {:.3}; tables {} bytes; disk {} bytes (WAL {}); files per level [{}]; \
         compactions {} ({} moves, {} idle)\n",
        "",
        stall_us as f64 / 1e6,
        counter("write.stalls"),
        counter("write.slowdowns"),
        counter("write.stops"),
        gauge("db.write_amplification"),
        gauge("db.space_amplification"),
        gauge("db.table_bytes") as u64,
        disk.0,
        disk.1,
        levels.join(" "),
        counter("compaction.count"),
        counter("compaction.trivial_moves"),
        counter("compaction.idle_runs"),
    )
}

/// Bytes the files directly in `dir` take on disk (allocated blocks):
/// all of them, and the WAL segments'.
fn disk_bytes(dir: &std::path::Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut all = 0;
    let mut wal = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let bytes = meta.blocks() * 512;
        all += bytes;
        let name = entry.file_name();
        if cityhall::wal::segment::parse_segment_name(&name.to_string_lossy()).is_some() {
            wal += bytes;
        }
    }
    (all, wal)
}

/// Prints human-readable text: on stdout, or on stderr with `--json`.
fn text_out(cfg: &Config, text: &str) {
    if cfg.json {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
    } else {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

/// `arg` quoted for a POSIX shell when it needs it.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}
