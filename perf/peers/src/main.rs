//! `peer-bench`: cityhall-loadgen's embedded workloads against RocksDB (a
//! release build through the `rocksdb` crate) and fjall, so that
//! perf/engine-vs-peers.sh can put CityHall beside them in one run.
//!
//! ```text
//! peer-bench --engine rocksdb --workload fillrandom,overwrite --db DIR --num 2000000 --json
//! peer-bench --engine fjall --workload fillrandom --sync --threads 16 --num 20000 --db DIR
//! ```
//!
//! Keys and values are the load generator's own: its `rng.rs`, `zipf.rs`
//! and `keys.rs` are compiled in from tools/loadgen/src (see the `#[path]`
//! attributes below), so the key format (fixed-width zero-padded decimal,
//! `--key-size` wide; a missing key is a real one with `.` appended) and
//! the value bytes (about half compressible) cannot drift from it. The
//! engines' settings are in `engines.rs`.
//!
//! Output: the Setup block and a text line per workload on stderr (stdout
//! with no `--json`); with `--json`, one JSON line per workload on stdout
//! with cityhall-loadgen's field names; with `--hdr-out FILE`, `.hgrm`
//! files as cityhall-loadgen writes them.
//!
//! Exit status: 0 success; 2 usage; 3 an engine or IO error.

mod cli;
mod engines;
#[allow(
    dead_code,
    reason = "shared with cityhall-loadgen; not all of it is used here"
)]
#[path = "../../../tools/loadgen/src/keys.rs"]
mod keys;
mod report;
#[allow(
    dead_code,
    reason = "shared with cityhall-loadgen; not all of it is used here"
)]
#[path = "../../../tools/loadgen/src/rng.rs"]
mod rng;
mod run;
#[allow(
    dead_code,
    reason = "shared with cityhall-loadgen; not all of it is used here"
)]
#[path = "../../../tools/loadgen/src/zipf.rs"]
mod zipf;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use cli::{Args, Config};
use keys::ValuePool;

const EXIT_USAGE: u8 = 2;
const EXIT_ERROR: u8 = 3;

fn main() -> ExitCode {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let cfg = match Config::from_args(Args::parse(), command) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("peer-bench: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let store = match engines::open(&cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("peer-bench: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let engine = store.describe();
    text_out(&cfg, &report::setup_text(&cfg, &engine));
    let pool = ValuePool::new(cfg.seed);
    let several = cfg.workloads.len() > 1;
    for (position, &workload) in cfg.workloads.iter().enumerate() {
        let r = run::run(&cfg, store.as_ref(), &pool, workload, position);
        text_out(&cfg, &report::text(&cfg, &r));
        if cfg.json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", report::json_line(&cfg, &engine, &r));
            let _ = out.flush();
        }
        if let Some(path) = &cfg.hdr_out {
            let path = report::hgrm_path(path, workload.name(), several);
            if let Err(e) = std::fs::write(&path, report::hgrm(&r.m.hist)) {
                eprintln!("peer-bench: cannot write {}: {e}", path.display());
                return ExitCode::from(EXIT_ERROR);
            }
        }
        if let Some(e) = &r.error {
            eprintln!("peer-bench: {}: {e}", workload.name());
            return ExitCode::from(EXIT_ERROR);
        }
    }
    drop(store);
    ExitCode::SUCCESS
}

/// Human-readable text: stdout, or stderr with `--json`.
fn text_out(cfg: &Config, text: &str) {
    if cfg.json {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    } else {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}
