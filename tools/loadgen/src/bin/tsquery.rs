//! `cityhall-tsquery`: the latency of one time-series query against a
//! server, repeated on one connection, with HDR percentiles; the query side
//! of perf/ts-vs-peers.sh.
//!
//! ```text
//! cityhall-tsquery --addr A --series 'cpu.usage_user{hostname=host_0,...}' --from T --to T [--agg avg --bucket-ms 3600000] [--repeat 1000]
//! cityhall-tsquery --addr A --count-all cpu. --from T --to T [--repeat 10] [--per-series]
//! ```
//! The first form times one range query (raw, or aggregated per bucket);
//! the second times a count of the points of every series whose name
//! starts with the prefix: one TS_AGG request (`ts agg count --prefix`),
//! or with `--per-series` the old way, `ts series` once outside the timing
//! then a `count` range query per series. Output: one line with the
//! answer's size and the latency percentiles in microseconds.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use hdrhistogram::Histogram;

use cityhall::client::Client;
use cityhall::protocol::ts::TS_AGG_SERIES_MAX;
use cityhall::ts::{Aggregation, RangeQuery, SelectQuery, SeriesKey};

#[derive(Parser, Debug)]
#[command(
    name = "cityhall-tsquery",
    about = "Latency of a time-series query, repeated"
)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:7878")]
    addr: String,
    /// The series (name{k=v,...}).
    #[arg(long, conflicts_with = "count_all")]
    series: Option<String>,
    /// Count the points of every series starting with this prefix.
    #[arg(long, value_name = "PREFIX")]
    count_all: Option<String>,
    /// With --count-all: one count range query per series instead of one
    /// TS_AGG request.
    #[arg(long, requires = "count_all")]
    per_series: bool,
    /// First timestamp, epoch ms.
    #[arg(long, allow_hyphen_values = true)]
    from: i64,
    /// Last timestamp, epoch ms.
    #[arg(long, allow_hyphen_values = true)]
    to: i64,
    /// avg, min, max, sum, count, first, last or rate.
    #[arg(long)]
    agg: Option<String>,
    /// Bucket width in ms (with --agg); 0: the whole range.
    #[arg(long, default_value_t = 0)]
    bucket_ms: i64,
    /// Timed repetitions (after one untimed warm-up).
    #[arg(long, default_value_t = 1000)]
    repeat: u64,
}

fn run(args: &Args) -> Result<String, String> {
    let mut client = Client::connect(&args.addr).map_err(|e| e.to_string())?;
    let agg = match args.agg.as_deref() {
        None => None,
        Some(a) => Some(Aggregation::parse(a).ok_or_else(|| format!("unknown --agg {a:?}"))?),
    };
    let query = RangeQuery {
        from: args.from,
        to: args.to,
        agg,
        bucket_ms: args.bucket_ms,
        limit: usize::MAX,
    };
    if let (Some(prefix), false) = (&args.count_all, args.per_series) {
        return count_all(&mut client, prefix, args);
    }
    let targets: Vec<SeriesKey> = match (&args.series, &args.count_all) {
        (Some(s), None) => vec![SeriesKey::parse(s).map_err(|e| e.to_string())?],
        (None, Some(prefix)) => client
            .ts_series(prefix, &[], usize::MAX)
            .map_err(|e| e.to_string())?
            .iter()
            .map(|s| SeriesKey::parse(s))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?,
        _ => return Err("give --series or --count-all".into()),
    };
    let query = if args.count_all.is_some() {
        RangeQuery {
            agg: Some(Aggregation::Count),
            bucket_ms: 0,
            ..query
        }
    } else {
        query
    };
    let mut hist = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let mut answer = (0usize, 0f64);
    for i in 0..=args.repeat {
        let start = Instant::now();
        let mut points = 0;
        let mut total = 0.0;
        for s in &targets {
            let got = client
                .ts_range(s, &query)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("series {s} not found"))?;
            points += got.len();
            total += got.iter().map(|p| p.value).sum::<f64>();
        }
        if i > 0 {
            let us = start.elapsed().as_micros().max(1) as u64;
            hist.record(us).map_err(|e| e.to_string())?;
        }
        answer = (points, total);
    }
    Ok(format!(
        "{} series, {} points or buckets, value sum {}; {}",
        targets.len(),
        answer.0,
        answer.1,
        latency(&hist)
    ))
}

/// Times one TS_AGG count over every series starting with `prefix`.
fn count_all(client: &mut Client, prefix: &str, args: &Args) -> Result<String, String> {
    let query = SelectQuery {
        prefix: prefix.to_string(),
        matchers: Vec::new(),
        from: args.from,
        to: args.to,
        agg: Aggregation::Count,
        bucket_ms: 0,
        limit: 1,
        series_max: TS_AGG_SERIES_MAX,
    };
    let mut hist = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let mut count = 0.0;
    for i in 0..=args.repeat {
        let start = Instant::now();
        let got = client.ts_agg(&query).map_err(|e| e.to_string())?;
        if i > 0 {
            let us = start.elapsed().as_micros().max(1) as u64;
            hist.record(us).map_err(|e| e.to_string())?;
        }
        count = got.first().map_or(0.0, |p| p.value);
    }
    Ok(format!(
        "one TS_AGG count over series {prefix}*: {count} points; {}",
        latency(&hist)
    ))
}

fn latency(hist: &Histogram<u64>) -> String {
    format!(
        "latency us: p50 {} p90 {} p99 {} max {} (mean {:.1}, {} runs)",
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.9),
        hist.value_at_quantile(0.99),
        hist.max(),
        hist.mean(),
        hist.len()
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cityhall-tsquery: {e}");
            ExitCode::from(3)
        }
    }
}
