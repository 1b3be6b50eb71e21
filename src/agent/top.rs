//! `cityhall top`: a plain terminal view of the latest host and CityHall
//! figures, each with a sparkline of its recent history, refreshed every
//! interval. It only reads: the figures are the series the agent and
//! self-monitoring store, so `top` shows nothing for a source not running.
//!
//! Each row is one series: a gauge shows its newest point, a counter its
//! newest rate (`--agg rate`, between its last two points); the sparkline
//! is the average of those over `--history` in 24 buckets, one character each, scaled
//! from the row's smallest to its largest value (a blank where a bucket
//! holds no point). Rows whose series does not exist are left out.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::client::{Client, ConnectOptions, DEFAULT_ADDR};
use crate::error::Result;
use crate::ts::aggregate::bucket_start;
use crate::ts::{Aggregation, RangeQuery, SeriesKey};

use super::cli::parse_interval;

/// Arguments of `cityhall top`.
#[derive(Args, Debug)]
pub struct TopArgs {
    /// Server address: host:port or unix:/path.
    #[arg(long, env = "CITYHALL_ADDR", default_value = DEFAULT_ADDR, value_name = "ADDR")]
    pub addr: String,
    /// File holding the server's auth token.
    #[arg(long, env = "CITYHALL_AUTH_TOKEN_FILE", value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// Time between refreshes.
    #[arg(long, default_value = "10s", value_name = "D")]
    pub interval: String,
    /// How far back the sparklines reach.
    #[arg(long, default_value = "10m", value_name = "D")]
    pub history: String,
    /// Print the view once, without clearing the screen, and exit.
    #[arg(long)]
    pub once: bool,
}

/// Characters of a sparkline, lowest first.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
/// Most points of a counter read for one sparkline.
const POINTS_MAX: usize = 10_000;
/// Buckets (characters) in a sparkline.
pub const SPARK_WIDTH: usize = 24;

/// One character per value, scaled from the smallest to the largest;
/// `None` (no point in that bucket) is a blank.
pub fn sparkline(values: &[Option<f64>]) -> String {
    let present = values.iter().flatten().copied();
    let (lo, hi) = present.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    values
        .iter()
        .map(|v| match v {
            None => ' ',
            Some(_) if hi <= lo => BARS[0],
            Some(v) => {
                let top = (BARS.len() - 1) as f64;
                let i = ((v - lo) / (hi - lo) * top).round() as usize;
                BARS[i.min(BARS.len() - 1)]
            }
        })
        .collect()
}

/// How a row's value is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A percentage.
    Percent,
    /// Bytes (KiB, MiB, ...).
    Bytes,
    /// Bytes per second.
    BytesPerSec,
    /// Microseconds.
    Micros,
    /// A plain number.
    Plain,
    /// Events per second.
    PerSec,
}

/// A value with its unit, short.
pub fn format_unit(v: f64, unit: Unit) -> String {
    fn bytes(v: f64) -> String {
        let mut v = v;
        for u in ["B", "KiB", "MiB", "GiB", "TiB"] {
            if v.abs() < 1024.0 || u == "TiB" {
                return if u == "B" {
                    format!("{v:.0} {u}")
                } else {
                    format!("{v:.1} {u}")
                };
            }
            v /= 1024.0;
        }
        format!("{v:.1} PiB")
    }
    match unit {
        Unit::Percent => format!("{v:.1} %"),
        Unit::Bytes => bytes(v),
        Unit::BytesPerSec => format!("{}/s", bytes(v)),
        Unit::Micros if v >= 1000.0 => format!("{:.1} ms", v / 1000.0),
        Unit::Micros => format!("{v:.0} µs"),
        Unit::PerSec => format!("{v:.1}/s"),
        Unit::Plain if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Unit::Plain => format!("{v:.2}"),
    }
}

/// One line of the view.
#[derive(Clone, Debug)]
struct Row {
    label: String,
    series: String,
    counter: bool,
    unit: Unit,
}

fn row(label: &str, series: &str, counter: bool, unit: Unit) -> Row {
    Row {
        label: label.to_string(),
        series: series.to_string(),
        counter,
        unit,
    }
}

fn host_rows(client: &mut Client) -> Result<Vec<Row>> {
    let mut rows = vec![
        row(
            "cpu user",
            "cpu.usage_user{cpu=cpu-total}",
            false,
            Unit::Percent,
        ),
        row(
            "cpu system",
            "cpu.usage_system{cpu=cpu-total}",
            false,
            Unit::Percent,
        ),
        row(
            "cpu iowait",
            "cpu.usage_iowait{cpu=cpu-total}",
            false,
            Unit::Percent,
        ),
        row("load1", "system.load1", false, Unit::Plain),
        row("mem used", "mem.used_percent", false, Unit::Percent),
        row("swap used", "swap.used_percent", false, Unit::Percent),
        row("processes", "processes.total", false, Unit::Plain),
    ];
    for s in client.ts_series("disk.used_percent{", &[], 8)? {
        let path = label_of(&s, "path");
        rows.push(row(&format!("disk {path}"), &s, false, Unit::Percent));
    }
    for s in client.ts_series("diskio.read_bytes{", &[], 8)? {
        let name = label_of(&s, "name");
        rows.push(row(&format!("{name} read"), &s, true, Unit::BytesPerSec));
        let w = s.replacen("diskio.read_bytes", "diskio.write_bytes", 1);
        rows.push(row(&format!("{name} write"), &w, true, Unit::BytesPerSec));
    }
    for s in client.ts_series("net.bytes_recv{", &[], 8)? {
        let name = label_of(&s, "interface");
        if name == "lo" {
            continue;
        }
        rows.push(row(&format!("{name} recv"), &s, true, Unit::BytesPerSec));
        let w = s.replacen("net.bytes_recv", "net.bytes_sent", 1);
        rows.push(row(&format!("{name} sent"), &w, true, Unit::BytesPerSec));
    }
    Ok(rows)
}

fn cityhall_rows() -> Vec<Row> {
    let us = Unit::Micros;
    vec![
        row("put", "cityhall.put.requests", true, Unit::PerSec),
        row("put p50", "cityhall.put.p50", false, us),
        row("put p99", "cityhall.put.p99", false, us),
        row("get", "cityhall.get.requests", true, Unit::PerSec),
        row("get p50", "cityhall.get.p50", false, us),
        row("get p99", "cityhall.get.p99", false, us),
        row(
            "ts points",
            "cityhall.ts.points_written",
            true,
            Unit::PerSec,
        ),
        row(
            "wal sync p50",
            "cityhall.wal.sync_latency_us.p50",
            false,
            us,
        ),
        row(
            "wal sync p99",
            "cityhall.wal.sync_latency_us.p99",
            false,
            us,
        ),
        row("write stalls", "cityhall.write.stalls", true, Unit::PerSec),
        row(
            "cache hits",
            "cityhall.block_cache.hit_percent",
            false,
            Unit::Percent,
        ),
        row("tables", "cityhall.db.table_bytes", false, Unit::Bytes),
        row(
            "connections",
            "cityhall.connections_current",
            false,
            Unit::Plain,
        ),
    ]
}

fn label_of(series: &str, key: &str) -> String {
    SeriesKey::parse(series)
        .ok()
        .and_then(|k| k.label(key).map(str::to_string))
        .unwrap_or_else(|| series.to_string())
}

/// The latest value and the sparkline of a row; `None` if the series
/// does not exist or has no point in the history.
fn figures(
    client: &mut Client,
    r: &Row,
    now: i64,
    history_ms: i64,
) -> Result<Option<(f64, String)>> {
    let Ok(key) = SeriesKey::parse(&r.series) else {
        return Ok(None);
    };
    let bucket_ms = (history_ms / SPARK_WIDTH as i64).max(1);
    let first = bucket_start(now, bucket_ms) - bucket_ms * (SPARK_WIDTH as i64 - 1);
    // A counter is rated point by point (a bucket holding one point has
    // no rate), then averaged per bucket like a gauge.
    let q = RangeQuery {
        from: first,
        to: now,
        agg: Some(if r.counter {
            Aggregation::Rate
        } else {
            Aggregation::Avg
        }),
        bucket_ms: if r.counter { 0 } else { bucket_ms },
        limit: if r.counter { POINTS_MAX } else { SPARK_WIDTH },
    };
    let Some(points) = client.ts_range(&key, &q)? else {
        return Ok(None);
    };
    let mut sums = vec![(0.0, 0u32); SPARK_WIDTH];
    for p in &points {
        let i = (bucket_start(p.ts, bucket_ms) - first) / bucket_ms;
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| sums.get_mut(i)) {
            slot.0 += p.value;
            slot.1 += 1;
        }
    }
    let slots: Vec<Option<f64>> = sums
        .iter()
        .map(|(sum, n)| (*n > 0).then(|| sum / f64::from(*n)))
        .collect();
    let latest = if r.counter {
        points.last().map(|p| p.value)
    } else {
        client.ts_latest(&key)?.flatten().map(|p| p.value)
    };
    Ok(latest.map(|v| (v, sparkline(&slots))))
}

fn render(client: &mut Client, history_ms: i64, out: &mut String) -> Result<()> {
    use std::fmt::Write as _;
    let now = crate::ts::options::system_now_ms();
    let sections = [("host", host_rows(client)?), ("cityhall", cityhall_rows())];
    for (title, rows) in sections {
        let _ = writeln!(out, "{title}");
        let mut any = false;
        for r in rows {
            if let Some((v, spark)) = figures(client, &r, now, history_ms)? {
                any = true;
                let _ = writeln!(
                    out,
                    "  {:<16} {:>14}  {spark}",
                    r.label,
                    format_unit(v, r.unit)
                );
            }
        }
        if !any {
            let what = if title == "host" {
                "run `cityhall agent` or `cityhall server --agent-interval 10s`"
            } else {
                "self-monitoring is off (`--self-monitor 0`) or has not sampled yet"
            };
            let _ = writeln!(out, "  (no figures: {what})");
        }
    }
    Ok(())
}

/// Runs `cityhall top`; returns the exit code.
pub fn run(args: TopArgs) -> u8 {
    let (interval, history) = match (
        parse_interval(&args.interval),
        parse_interval(&args.history),
    ) {
        (Ok(i), Ok(h)) => (i, h),
        (Err(e), _) => {
            eprintln!("cityhall: top: --interval: {e}");
            return 2;
        }
        (_, Err(e)) => {
            eprintln!("cityhall: top: --history: {e}");
            return 2;
        }
    };
    let mut options = ConnectOptions {
        io_timeout: Some(Duration::from_secs(10)),
        ..ConnectOptions::default()
    };
    if let Some(path) = &args.auth_token_file {
        match crate::client::read_auth_token(path) {
            Ok(token) => options.auth_token = token,
            Err(e) => {
                eprintln!("cityhall: top: {e}");
                return 3;
            }
        }
    }
    let history_ms = i64::try_from(history.as_millis()).unwrap_or(i64::MAX);
    let mut client: Option<Client> = None;
    loop {
        let mut view = String::new();
        let result = match client.take() {
            Some(c) => Ok(c),
            None => Client::connect_with(&args.addr, &options),
        }
        .and_then(|mut c| render(&mut c, history_ms, &mut view).map(|()| c));
        let mut stdout = std::io::stdout().lock();
        let printed = match result {
            Ok(c) => {
                client = Some(c);
                if args.once {
                    write!(stdout, "{view}")
                } else {
                    write!(
                        stdout,
                        "\x1b[H\x1b[2Jcityhall top — {} — every {} s, sparklines over {} min\n\n{view}",
                        args.addr,
                        interval.as_secs_f64(),
                        history.as_secs_f64() / 60.0
                    )
                }
            }
            Err(e) if args.once => {
                eprintln!("cityhall: top: {}: {e}", args.addr);
                return 3;
            }
            Err(e) => writeln!(
                stdout,
                "\x1b[H\x1b[2Jcityhall top: {}: {e}; retrying",
                args.addr
            ),
        };
        if printed.and_then(|()| stdout.flush()).is_err() || args.once {
            return 0;
        }
        drop(stdout);
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_scale_from_lowest_to_highest() {
        let v = [Some(0.0), Some(7.0), None, Some(3.5), Some(14.0)];
        assert_eq!(sparkline(&v), "▁▅ ▃█");
        assert_eq!(sparkline(&[Some(2.0), Some(2.0)]), "▁▁");
        assert_eq!(sparkline(&[None, None]), "  ");
        assert_eq!(sparkline(&[]), "");
    }

    #[test]
    fn units_print_short() {
        assert_eq!(format_unit(42.345, Unit::Percent), "42.3 %");
        assert_eq!(format_unit(1536.0, Unit::Bytes), "1.5 KiB");
        assert_eq!(format_unit(512.0, Unit::BytesPerSec), "512 B/s");
        assert_eq!(
            format_unit(3.0 * 1024.0 * 1024.0 * 1024.0, Unit::Bytes),
            "3.0 GiB"
        );
        assert_eq!(format_unit(950.0, Unit::Micros), "950 µs");
        assert_eq!(format_unit(2500.0, Unit::Micros), "2.5 ms");
        assert_eq!(format_unit(12.0, Unit::Plain), "12");
        assert_eq!(format_unit(0.52, Unit::Plain), "0.52");
        assert_eq!(format_unit(0.25, Unit::PerSec), "0.2/s");
    }
}
