//! `cityhall-crashtest`: kill -9 cycles of the real server for long runs.
//!
//! ```text
//! cityhall-crashtest --cycles 1000 --seed 42 --bin target/release/cityhall
//! ```
//!
//! Each cycle loads the server with concurrent clients, kills it with
//! SIGKILL at a random moment, runs `cityhall check` on its directory,
//! restarts it and verifies every acknowledged write (see `harness.rs`).
//! Exit 0 when every cycle passed; 1 with the seed and cycle of the first
//! failure otherwise. The data directory of a failed run is kept.

mod harness;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

/// Kill -9 cycles of the real `cityhall` server, checking every
/// acknowledged write after each restart.
#[derive(Parser, Debug)]
#[command(name = "cityhall-crashtest", version, about)]
struct Args {
    /// Kill/restart cycles.
    #[arg(long, default_value_t = 100)]
    cycles: u64,
    /// Seed of every random choice [default: from the clock, printed].
    #[arg(long)]
    seed: Option<u64>,
    /// The `cityhall` binary [default: beside this one].
    #[arg(long, value_name = "PATH")]
    bin: Option<PathBuf>,
    /// Database directory [default: a fresh one under $TMPDIR, removed on success].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Concurrent writing clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Keys each client owns.
    #[arg(long, default_value_t = 200)]
    keys: usize,
    /// Longest load before a kill, in ms.
    #[arg(long, default_value_t = 400)]
    run_ms_max: u64,
    /// The server's memtable size in bytes (small: flushes and compactions
    /// happen within a cycle).
    #[arg(long, default_value_t = 256 << 10)]
    memtable_bytes: usize,
    /// One line per cycle on stderr.
    #[arg(long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let bin = match args.bin {
        Some(b) => b,
        None => match std::env::current_exe() {
            Ok(exe) => exe.with_file_name("cityhall"),
            Err(e) => {
                eprintln!("cityhall-crashtest: cannot find the cityhall binary ({e}); pass --bin");
                return ExitCode::from(2);
            }
        },
    };
    if !bin.is_file() {
        eprintln!(
            "cityhall-crashtest: no cityhall binary at {}; pass --bin",
            bin.display()
        );
        return ExitCode::from(2);
    }
    let scratch = args.data_dir.is_none();
    let dir = args.data_dir.unwrap_or_else(|| harness::scratch_dir(seed));
    let mut cfg = harness::Config::new(bin, dir.clone(), seed, args.cycles);
    cfg.clients = args.clients.max(1);
    cfg.keys_per_client = args.keys.max(1);
    cfg.run_ms_max = args.run_ms_max;
    cfg.memtable_size_bytes_max = args.memtable_bytes;
    cfg.verbose = args.verbose;
    eprintln!(
        "cityhall-crashtest: seed {seed}, {} cycles, {} clients, data in {}",
        cfg.cycles,
        cfg.clients,
        dir.display()
    );
    let started = Instant::now();
    match harness::run(&cfg) {
        Ok(s) => {
            println!(
                "seed {seed}: {} cycles survived, 0 lost; {} puts and deletes ({} batches), \
                 {} points acknowledged; in flight at a kill: {} applied, {} absent; \
                 {} values checked; {:.0} s",
                s.cycles,
                s.acked_kv_ops,
                s.acked_batches,
                s.acked_points,
                s.in_flight_applied,
                s.in_flight_absent,
                s.values_checked,
                started.elapsed().as_secs_f64()
            );
            if scratch {
                harness::remove_scratch(&dir);
            }
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("{f}");
            eprintln!("data directory kept: {}", dir.display());
            ExitCode::from(1)
        }
    }
}
