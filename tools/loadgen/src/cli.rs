//! The command line: [`Args`] as clap parses it, and [`Config`], the
//! checked and defaulted form every other module reads.
//!
//! Defaults follow `db_bench`: `--num 1000000`, 16-byte keys, 100-byte
//! values, a key space as large as `--num`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::keys::decimal_digits;

/// Operations in a run when neither `--num` nor `--duration` is given.
pub const NUM_DEFAULT: u64 = 1_000_000;
/// Length of a smoke run when neither `--num` nor `--duration` is given.
pub const SMOKE_DURATION_DEFAULT: Duration = Duration::from_secs(3);
/// Largest key the tool generates (the server's default bound is 64 KiB).
pub const KEY_SIZE_BYTES_MAX: usize = 64 << 10;
/// Largest value the tool generates.
pub const VALUE_SIZE_BYTES_MAX: usize = 1 << 20;
/// Most connections (threads) in one run.
pub const CONNECTIONS_MAX: usize = 4096;
/// Most requests in flight per connection.
pub const PIPELINE_MAX: usize = 4096;

/// Load runs against a CityHall server or an embedded database, with HDR
/// latency percentiles. Workloads are named as in db_bench.
#[derive(Parser, Debug, Clone)]
#[command(name = "cityhall-loadgen", version, about)]
pub struct Args {
    /// Workloads to run in order on the same database, comma separated
    /// (like db_bench --benchmarks): fillseq, fillrandom, overwrite,
    /// readrandom, readmissing, readhot, scan, mixed, deleterandom,
    /// deleteall, compact, smoke.
    #[arg(
        long,
        visible_alias = "benchmarks",
        value_enum,
        value_delimiter = ',',
        required = true
    )]
    pub workload: Vec<Workload>,
    /// Server address (host:port or unix:/path) [default: 127.0.0.1:7878].
    #[arg(long, value_name = "ADDR", conflicts_with = "embedded")]
    pub addr: Option<String>,
    /// Open the database in DIR in-process instead of talking to a server.
    #[arg(long, value_name = "DIR")]
    pub embedded: Option<PathBuf>,
    /// Connections (threads), each with its own connection or handle.
    #[arg(long, default_value_t = 1, value_name = "N", visible_alias = "threads")]
    pub connections: usize,
    /// Requests in flight per connection: sent together, then answered.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub pipeline: usize,
    /// Client threads driving the connections; each runs its connections'
    /// closed loops from one event loop, as redis-benchmark does: a
    /// connection's next requests go out as soon as its answers are in
    /// (closed loop only) [default: one thread per connection].
    #[arg(long, value_name = "N")]
    pub client_threads: Option<usize>,
    /// Operations per workload, all connections together (accepts 200k, 1m)
    /// [default: 1000000, or unbounded with --duration].
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub num: Option<u64>,
    /// Run each workload this long (10s, 500ms, 2m); with --num, whichever
    /// ends first.
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Key size in bytes.
    #[arg(long, default_value_t = 16, value_name = "BYTES")]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100, value_name = "BYTES")]
    pub value_size: usize,
    /// Keys are drawn from [0, N) [default: --num, or 1000000].
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub key_space: Option<u64>,
    /// How keys are drawn (zipfian: YCSB's, constant 0.99, scrambled).
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    pub distribution: Distribution,
    /// Share of reads in the mixed workload (the rest are puts).
    #[arg(long, default_value_t = 90, value_name = "PCT", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub read_percent: u8,
    /// Pairs read per scan.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub scan_length: u32,
    /// Fixed-rate mode: total operations per second, spread evenly over the
    /// connections; latency is measured from each request's intended send
    /// time (coordinated omission corrected).
    #[arg(long, value_name = "OPS")]
    pub rate: Option<f64>,
    /// Durability of the embedded database (a server has its own flag).
    #[arg(long, value_enum, value_name = "MODE")]
    pub durability: Option<DurabilityArg>,
    /// Milliseconds between syncs with --durability relaxed.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub sync_interval_ms: u64,
    /// Seed of every random choice [default: from the clock; printed].
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Write each workload's latency distribution in HdrHistogram's .hgrm
    /// text format (microseconds) to FILE; with several workloads, FILE
    /// gets the workload's name before its extension.
    #[arg(long, value_name = "FILE")]
    pub hdr_out: Option<PathBuf>,
    /// Print one JSON line per workload on stdout (the Setup and the text
    /// report go to stderr).
    #[arg(long)]
    pub json: bool,
    /// Embedded: after each workload, wait until the engine's background
    /// work (flushes, compactions, the idle compaction) has finished, then
    /// print the engine line again.
    #[arg(long)]
    pub settle: bool,
    /// Print the Setup header and exit.
    #[arg(long)]
    pub setup_only: bool,
}

/// The workloads, named as in db_bench.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Puts in key order.
    Fillseq,
    /// Puts of uniformly (or --distribution) random keys.
    #[value(alias = "put")]
    Fillrandom,
    /// Puts of random keys, meant for a filled database.
    Overwrite,
    /// Gets of random keys of the key space.
    #[value(alias = "get")]
    Readrandom,
    /// Gets of keys that sort next to real ones but were never written.
    Readmissing,
    /// Gets of random keys of the first 1% of the key space.
    Readhot,
    /// Range reads of --scan-length pairs from a random key.
    Scan,
    /// Gets (--read-percent) and puts of random keys.
    Mixed,
    /// Deletes of random keys.
    #[value(alias = "delete")]
    Deleterandom,
    /// Deletes of every key of the key space, in key order (--num does
    /// not apply: one delete per key).
    Deleteall,
    /// Flush the memtables and compact the whole key space, once (like
    /// db_bench's `compact`); timed, no operations.
    Compact,
    /// Puts, gets, deletes and scans checked against a model; exits 1 on
    /// any mismatch.
    Smoke,
}

impl Workload {
    /// The name db_bench would print.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Fillseq => "fillseq",
            Workload::Fillrandom => "fillrandom",
            Workload::Overwrite => "overwrite",
            Workload::Readrandom => "readrandom",
            Workload::Readmissing => "readmissing",
            Workload::Readhot => "readhot",
            Workload::Scan => "scan",
            Workload::Mixed => "mixed",
            Workload::Deleterandom => "deleterandom",
            Workload::Deleteall => "deleteall",
            Workload::Compact => "compact",
            Workload::Smoke => "smoke",
        }
    }
}

/// How key indexes are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Distribution {
    /// Every key equally likely.
    Uniform,
    /// YCSB's zipfian (0.99), scrambled over the key space.
    Zipfian,
}

/// `--durability`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// Every write synced before it is acknowledged.
    Sync,
    /// Synced every --sync-interval-ms.
    Relaxed,
}

/// What the run talks to.
#[derive(Clone, Debug)]
pub enum Target {
    /// A server at this address.
    Server(String),
    /// A database opened in-process in this directory.
    Embedded(PathBuf),
}

/// The checked options of a run.
#[derive(Clone, Debug)]
pub struct Config {
    pub workloads: Vec<Workload>,
    pub target: Target,
    pub connections: usize,
    pub pipeline: usize,
    /// Threads driving the connections (1..=connections).
    pub client_threads: usize,
    /// Operations per workload; `None`: until `duration`.
    pub num: Option<u64>,
    pub duration: Option<Duration>,
    pub key_size: usize,
    pub value_size: usize,
    pub key_space: u64,
    pub distribution: Distribution,
    pub read_percent: u8,
    pub scan_length: u32,
    /// Total operations per second, if fixed-rate.
    pub rate: Option<f64>,
    pub durability: cityhall::Durability,
    pub seed: u64,
    pub hdr_out: Option<PathBuf>,
    pub json: bool,
    /// Wait for the engine to settle after each workload (embedded).
    pub settle: bool,
    /// The command line as given, for the Setup header.
    pub command: String,
}

impl Config {
    /// Checks `args` and fills in the defaults; the error is a usage error.
    pub fn from_args(args: Args, command: String) -> Result<Config, String> {
        let target = match (&args.addr, &args.embedded) {
            (_, Some(dir)) => Target::Embedded(dir.clone()),
            (Some(addr), None) => Target::Server(addr.clone()),
            (None, None) => Target::Server(cityhall::client::DEFAULT_ADDR.to_string()),
        };
        let durability = match (args.durability, &target) {
            (Some(_), Target::Server(_)) => {
                return Err(
                    "--durability applies to --embedded; a server's durability is set \
                            by its own --durability flag"
                        .into(),
                )
            }
            (None | Some(DurabilityArg::Sync), _) => cityhall::Durability::Sync,
            (Some(DurabilityArg::Relaxed), _) => cityhall::Durability::Relaxed {
                interval_ms: args.sync_interval_ms.max(1),
            },
        };
        if !(1..=CONNECTIONS_MAX).contains(&args.connections) {
            return Err(format!("--connections must be 1..={CONNECTIONS_MAX}"));
        }
        let client_threads = args.client_threads.unwrap_or(args.connections);
        if !(1..=args.connections).contains(&client_threads) {
            return Err("--client-threads must be 1..=--connections".into());
        }
        if client_threads < args.connections
            && (args.rate.is_some() || args.workload.contains(&Workload::Smoke))
        {
            return Err(
                "--client-threads below --connections needs the closed loop: not with --rate \
                 or the smoke workload"
                    .into(),
            );
        }
        if !(1..=PIPELINE_MAX).contains(&args.pipeline) {
            return Err(format!("--pipeline must be 1..={PIPELINE_MAX}"));
        }
        if !(1..=KEY_SIZE_BYTES_MAX).contains(&args.key_size) {
            return Err(format!("--key-size must be 1..={KEY_SIZE_BYTES_MAX}"));
        }
        if args.value_size > VALUE_SIZE_BYTES_MAX {
            return Err(format!(
                "--value-size must be at most {VALUE_SIZE_BYTES_MAX}"
            ));
        }
        if args.scan_length == 0 {
            return Err("--scan-length must be positive".into());
        }
        if let Some(rate) = args.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err("--rate must be a positive number of operations per second".into());
            }
        }
        if args.num == Some(0) {
            return Err("--num must be positive".into());
        }
        let only_smoke = args.workload.iter().all(|w| *w == Workload::Smoke);
        let (num, duration) = match (args.num, args.duration) {
            (None, None) if only_smoke => (None, Some(SMOKE_DURATION_DEFAULT)),
            (None, None) => (Some(NUM_DEFAULT), None),
            other => other,
        };
        let key_space = args.key_space.or(num).unwrap_or(NUM_DEFAULT);
        if key_space == 0 {
            return Err("--key-space must be positive".into());
        }
        let widest = match (args.workload.contains(&Workload::Fillseq), num) {
            (true, Some(n)) => key_space.max(n) - 1,
            _ => key_space - 1,
        };
        if decimal_digits(widest) > args.key_size {
            return Err(format!(
                "--key-size {} is too small for key index {widest}: keys are fixed-width \
                 decimal, so it needs at least {} bytes",
                args.key_size,
                decimal_digits(widest)
            ));
        }
        let seed = args.seed.unwrap_or_else(clock_seed);
        Ok(Config {
            workloads: args.workload,
            target,
            connections: args.connections,
            pipeline: args.pipeline,
            client_threads,
            num,
            duration,
            key_size: args.key_size,
            value_size: args.value_size,
            key_space,
            distribution: args.distribution,
            read_percent: args.read_percent,
            scan_length: args.scan_length,
            rate: args.rate,
            durability,
            seed,
            hdr_out: args.hdr_out,
            json: args.json,
            settle: args.settle,
            command,
        })
    }
}

/// A seed from the clock, for runs that do not name one.
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// `10s`, `500ms`, `2m`, `1h`, `1.5s`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 10s, 500ms or 2m"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" => n / 1e6,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use ms, s, m or h)"
            ))
        }
    };
    if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
        return Err(format!("{s:?} is not a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `200000`, `200_000`, `200k`, `1m`, `2g` (powers of ten).
pub fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let (digits, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000),
        Some('g' | 'G') => (&t[..t.len() - 1], 1_000_000_000),
        _ => (&t[..], 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a count like 200000, 200k or 1m"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 parsecs").is_err());
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("200000"), Ok(200_000));
        assert_eq!(parse_count("200_000"), Ok(200_000));
        assert_eq!(parse_count("200k"), Ok(200_000));
        assert_eq!(parse_count("1M"), Ok(1_000_000));
        assert!(parse_count("k").is_err());
        assert!(parse_count("99999999999g").is_err());
    }

    fn config(argv: &[&str]) -> Result<Config, String> {
        let mut full = vec!["cityhall-loadgen"];
        full.extend_from_slice(argv);
        let args = Args::try_parse_from(full).map_err(|e| e.to_string())?;
        Config::from_args(args, String::new())
    }

    #[test]
    fn defaults_follow_db_bench() {
        let c = config(&["--workload", "fillrandom,readrandom"]).unwrap();
        assert_eq!(c.num, Some(NUM_DEFAULT));
        assert_eq!(c.key_space, NUM_DEFAULT);
        assert_eq!(
            c.workloads,
            vec![Workload::Fillrandom, Workload::Readrandom]
        );
        assert!(matches!(c.target, Target::Server(ref a) if a == "127.0.0.1:7878"));
        let s = config(&["--workload", "smoke", "--embedded", "/tmp/x"]).unwrap();
        assert_eq!(s.duration, Some(SMOKE_DURATION_DEFAULT));
        assert_eq!(s.num, None);
    }

    #[test]
    fn client_threads_default_to_one_per_connection() {
        let c = config(&["--workload", "put", "--connections", "8"]).unwrap();
        assert_eq!(c.client_threads, 8);
        let c = config(&[
            "--workload",
            "put",
            "--connections",
            "8",
            "--client-threads",
            "1",
        ])
        .unwrap();
        assert_eq!(c.client_threads, 1);
        for bad in [
            &[
                "--workload",
                "put",
                "--connections",
                "8",
                "--client-threads",
                "9",
            ][..],
            &[
                "--workload",
                "put",
                "--connections",
                "8",
                "--client-threads",
                "0",
            ],
            &[
                "--workload",
                "put",
                "--connections",
                "8",
                "--client-threads",
                "2",
                "--rate",
                "100",
            ],
            &[
                "--workload",
                "smoke",
                "--connections",
                "8",
                "--client-threads",
                "2",
            ],
        ] {
            assert!(config(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_combinations_are_usage_errors() {
        assert!(config(&["--workload", "put", "--durability", "relaxed"]).is_err());
        assert!(config(&["--workload", "put", "--key-size", "4", "--num", "100000"]).is_err());
        assert!(config(&["--workload", "put", "--connections", "0"]).is_err());
        assert!(config(&["--workload", "put", "--rate", "0"]).is_err());
        assert!(config(&["--workload", "put", "--addr", "a:1", "--embedded", "/x"]).is_err());
    }
}
