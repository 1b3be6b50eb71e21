//! The command line: [`Args`] as clap parses it, checked into the options
//! the runner reads. Flags and defaults follow `cityhall-loadgen` (and so
//! `db_bench`): `--num` counts the operations of all threads together,
//! keys are drawn from `[0, --key-space)`, the key space defaults to
//! `--num`.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::keys::decimal_digits;

/// Most threads in one run.
pub const THREADS_MAX: usize = 1024;
/// Largest key the tool generates.
pub const KEY_SIZE_BYTES_MAX: usize = 64 << 10;
/// Largest value the tool generates.
pub const VALUE_SIZE_BYTES_MAX: usize = 1 << 20;

/// db_bench-style workloads against RocksDB or fjall, with the keys,
/// values and report of cityhall-loadgen's embedded mode.
#[derive(Parser, Debug, Clone)]
#[command(name = "peer-bench", version, about)]
pub struct Args {
    /// The engine under test.
    #[arg(long, value_enum)]
    pub engine: EngineKind,
    /// Workloads to run in order on the same database, comma separated.
    #[arg(
        long,
        visible_alias = "benchmarks",
        value_enum,
        value_delimiter = ',',
        required = true
    )]
    pub workload: Vec<Workload>,
    /// The database directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub db: PathBuf,
    /// Operations per workload, all threads together.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub num: u64,
    /// Threads, each issuing operations in a closed loop.
    #[arg(
        long,
        default_value_t = 1,
        value_name = "N",
        visible_alias = "connections"
    )]
    pub threads: usize,
    /// Key size in bytes (fixed-width zero-padded decimal).
    #[arg(long, default_value_t = 16, value_name = "BYTES")]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100, value_name = "BYTES")]
    pub value_size: usize,
    /// Keys are drawn from [0, N) [default: --num].
    #[arg(long, value_name = "N")]
    pub key_space: Option<u64>,
    /// Pairs read per scan.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub scan_length: u32,
    /// Sync every write before it returns (RocksDB WriteOptions::set_sync,
    /// fjall Database::persist(PersistMode::SyncData) after each insert).
    #[arg(long)]
    pub sync: bool,
    /// Block cache in MiB [default: RocksDB 256 (as CityHall), fjall its
    /// own default of 32].
    #[arg(long, value_name = "MIB")]
    pub cache_mb: Option<u64>,
    /// Seed of every random choice [default: from the clock; printed].
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Write each workload's latency distribution as .hgrm text
    /// (microseconds); with several workloads FILE gets the workload's
    /// name before its extension, as cityhall-loadgen does.
    #[arg(long, value_name = "FILE")]
    pub hdr_out: Option<PathBuf>,
    /// Print one JSON line per workload on stdout (text goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// The engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    Rocksdb,
    Fjall,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Rocksdb => "rocksdb",
            EngineKind::Fjall => "fjall",
        }
    }
}

/// The workloads, named as in cityhall-loadgen (and db_bench).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Puts in key order.
    Fillseq,
    /// Puts of random keys.
    Fillrandom,
    /// Puts of random keys, meant for a filled database.
    Overwrite,
    /// Gets of random keys of the key space.
    Readrandom,
    /// Gets of an existing key with `.` appended (never written).
    Readmissing,
    /// Gets of random keys of the first 1% of the key space.
    Readhot,
    /// Reads of --scan-length pairs from a random key.
    #[value(alias = "seekrandom")]
    Scan,
    /// Deletes of random keys.
    Deleterandom,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Fillseq => "fillseq",
            Workload::Fillrandom => "fillrandom",
            Workload::Overwrite => "overwrite",
            Workload::Readrandom => "readrandom",
            Workload::Readmissing => "readmissing",
            Workload::Readhot => "readhot",
            Workload::Scan => "scan",
            Workload::Deleterandom => "deleterandom",
        }
    }
}

/// The checked options of a run.
#[derive(Clone, Debug)]
pub struct Config {
    pub engine: EngineKind,
    pub workloads: Vec<Workload>,
    pub db: PathBuf,
    pub num: u64,
    pub threads: usize,
    pub key_size: usize,
    pub value_size: usize,
    pub key_space: u64,
    pub scan_length: u32,
    pub sync: bool,
    pub cache_mb: Option<u64>,
    pub seed: u64,
    pub hdr_out: Option<PathBuf>,
    pub json: bool,
    /// The command line as given.
    pub command: String,
}

impl Config {
    /// Checks `args`; the error is a usage error.
    pub fn from_args(args: Args, command: String) -> Result<Config, String> {
        if !(1..=THREADS_MAX).contains(&args.threads) {
            return Err(format!("--threads must be 1..={THREADS_MAX}"));
        }
        if !(1..=KEY_SIZE_BYTES_MAX).contains(&args.key_size) {
            return Err(format!("--key-size must be 1..={KEY_SIZE_BYTES_MAX}"));
        }
        if args.value_size > VALUE_SIZE_BYTES_MAX {
            return Err(format!(
                "--value-size must be at most {VALUE_SIZE_BYTES_MAX}"
            ));
        }
        if args.num == 0 || args.scan_length == 0 {
            return Err("--num and --scan-length must be positive".into());
        }
        let key_space = args.key_space.unwrap_or(args.num);
        if key_space == 0 {
            return Err("--key-space must be positive".into());
        }
        let widest = if args.workload.contains(&Workload::Fillseq) {
            key_space.max(args.num) - 1
        } else {
            key_space - 1
        };
        if decimal_digits(widest) > args.key_size {
            return Err(format!(
                "--key-size {} is too small for key index {widest}",
                args.key_size
            ));
        }
        let seed = args.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
        Ok(Config {
            engine: args.engine,
            workloads: args.workload,
            db: args.db,
            num: args.num,
            threads: args.threads,
            key_size: args.key_size,
            value_size: args.value_size,
            key_space,
            scan_length: args.scan_length,
            sync: args.sync,
            cache_mb: args.cache_mb,
            seed,
            hdr_out: args.hdr_out,
            json: args.json,
            command,
        })
    }
}
