//! Reporting, in cityhall-loadgen's shapes so one script reads both: the
//! text line per workload, the JSON line (`ops_per_sec`, `latency_us`
//! with `p50 p90 p99 p99_9 p99_99 max mean`, `found`, `not_found`,
//! `pairs_scanned`, ...), and the `.hgrm` percentile distribution in
//! HdrHistogram's text format (microseconds, five ticks per half
//! distance), written as `tools/loadgen/src/report.rs` writes it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::cli::Config;
use crate::run::{RunResult, SIGFIG};

/// Nanoseconds per reported unit (microseconds).
const NS_PER_US: f64 = 1000.0;
/// Percentile ticks per half distance in `.hgrm` output.
const HGRM_TICKS_PER_HALF_DISTANCE: u32 = 5;

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Latency percentiles in microseconds, as JSON.
fn percentiles(h: &Histogram<u64>) -> Value {
    let q = |q: f64| round2(h.value_at_quantile(q) as f64 / NS_PER_US);
    json!({
        "p50": q(0.50),
        "p90": q(0.90),
        "p99": q(0.99),
        "p99_9": q(0.999),
        "p99_99": q(0.9999),
        "max": round2(h.max() as f64 / NS_PER_US),
        "mean": round2(h.mean() / NS_PER_US),
    })
}

/// The Setup block: machine and options, before any number.
pub fn setup_text(cfg: &Config, engine: &str) -> String {
    let mut s = String::from("Setup\n");
    let mut line = |k: &str, v: String| {
        let _ = writeln!(s, "  {:<12} {v}", format!("{k}:"));
    };
    line("CPU", cpu_line());
    line("Kernel", kernel());
    line("Engine", engine.to_string());
    line("Database", cfg.db.display().to_string());
    line(
        "Keys",
        format!(
            "{} bytes, fixed-width decimal; key space {}, uniform",
            cfg.key_size, cfg.key_space
        ),
    );
    line(
        "Values",
        format!("{} bytes, compressible to about half", cfg.value_size),
    );
    line(
        "Load",
        format!(
            "{} threads, closed loop, {} operations per workload",
            cfg.threads, cfg.num
        ),
    );
    line(
        "Workloads",
        cfg.workloads
            .iter()
            .map(|w| w.name())
            .collect::<Vec<_>>()
            .join(","),
    );
    line("Seed", cfg.seed.to_string());
    line("Command", cfg.command.clone());
    s
}

fn cpu_line() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let n = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{n} x {model}")
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_else(|_| "unknown".into())
}

/// The text summary of a run, db_bench style.
pub fn text(cfg: &Config, r: &RunResult) -> String {
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let h = &r.m.hist;
    let us = |v: u64| v as f64 / NS_PER_US;
    let mut s = format!(
        "{:<12} : {:>10.0} ops/sec; {:>7.1} MB/s ({} ops in {:.3} s, {} threads)\n{:<12}   \
         latency us: p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} p99.99 {:.1} max {:.1} (mean {:.1})\n",
        r.workload.name(),
        r.ops_per_sec(),
        r.m.bytes as f64 / secs / 1e6,
        h.len(),
        secs,
        cfg.threads,
        "",
        us(h.value_at_quantile(0.5)),
        us(h.value_at_quantile(0.9)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.value_at_quantile(0.9999)),
        us(h.max()),
        h.mean() / NS_PER_US,
    );
    if r.m.found + r.m.not_found > 0 {
        let _ = writeln!(
            s,
            "{:<12}   ({} of {} found)",
            "",
            r.m.found,
            r.m.found + r.m.not_found
        );
    }
    if r.m.pairs > 0 {
        let _ = writeln!(s, "{:<12}   {} pairs scanned", "", r.m.pairs);
    }
    s
}

/// The JSON line of a run, with cityhall-loadgen's field names.
pub fn json_line(cfg: &Config, engine: &str, r: &RunResult) -> String {
    let secs = r.elapsed.as_secs_f64();
    json!({
        "tool": "peer-bench",
        "engine": cfg.engine.name(),
        "engine_settings": engine,
        "workload": r.workload.name(),
        "target": "embedded",
        "ops": r.m.hist.len(),
        "seconds": secs,
        "ops_per_sec": round2(r.ops_per_sec()),
        "mb_per_sec": round2(if secs > 0.0 { r.m.bytes as f64 / secs / 1e6 } else { 0.0 }),
        "latency_us": percentiles(&r.m.hist),
        "found": r.m.found,
        "not_found": r.m.not_found,
        "pairs_scanned": r.m.pairs,
        "error": r.error,
        "options": {
            "embedded": cfg.db.display().to_string(),
            "connections": cfg.threads,
            "num": cfg.num,
            "key_size": cfg.key_size,
            "value_size": cfg.value_size,
            "key_space": cfg.key_space,
            "distribution": "uniform",
            "scan_length": cfg.scan_length,
            "durability": if cfg.sync { "sync" } else { "none" },
            "seed": cfg.seed,
            "command": cfg.command,
        },
    })
    .to_string()
}

/// Where the `.hgrm` of `workload` goes: `path` itself for a single
/// workload, else `path` with `.<workload>` before its extension.
pub fn hgrm_path(path: &Path, workload: &str, several: bool) -> PathBuf {
    if !several {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{workload}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{workload}"),
    };
    path.with_file_name(name)
}

/// The percentile distribution of `h` (nanoseconds) as `.hgrm` text in
/// microseconds.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let p = usize::from(SIGFIG);
    let mut s = String::new();
    let _ = write!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total: u64 = 0;
    if !h.is_empty() {
        for v in h.iter_quantiles(HGRM_TICKS_PER_HALF_DISTANCE) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / NS_PER_US;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    s,
                    "{value:>12.p$} {q:>2.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(s, "{value:>12.p$} {q:>2.12} {total:>10}");
            }
        }
    }
    let (mean, stdev) = if h.is_empty() {
        (0.0, 0.0)
    } else {
        (h.mean(), h.stdev())
    };
    let _ = writeln!(
        s,
        "#[Mean    = {:>12.p$}, StdDeviation   = {:>12.p$}]",
        mean / NS_PER_US,
        stdev / NS_PER_US
    );
    let _ = writeln!(
        s,
        "#[Max     = {:>12.p$}, Total count    = {:>12}]",
        h.max() as f64 / NS_PER_US,
        h.len()
    );
    let sub_buckets = (2 * 10u64.pow(u32::from(SIGFIG))).next_power_of_two();
    let _ = writeln!(
        s,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_buckets
    );
    s
}
