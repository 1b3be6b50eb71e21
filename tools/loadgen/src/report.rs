//! Reporting a run: the text summary (db_bench style), the JSON line, and
//! the `.hgrm` percentile distribution.
//!
//! The `.hgrm` text is what HdrHistogram's Java
//! `outputPercentileDistribution(out, 5, 1000.0)` prints for a histogram
//! recorded in nanoseconds: values in microseconds, five percentile ticks
//! per half distance, then the `#[Mean ...]`, `#[Max ...]` and
//! `#[Buckets ...]` footer. The hdrhistogram crate has no writer for it,
//! so it is written here; HdrHistogram's online plotter reads it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::cli::{Config, Distribution, Target};
use crate::recorder::SIGFIG;
use crate::runner::RunResult;
use crate::setup::{durability_name, Setup};

/// Nanoseconds per reported unit (microseconds).
const NS_PER_US: f64 = 1000.0;
/// Percentile ticks per half distance in `.hgrm` output (Java's default).
const HGRM_TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub p99_99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// Of a histogram recorded in nanoseconds.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        let q = |q: f64| h.value_at_quantile(q) as f64 / NS_PER_US;
        Percentiles {
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p99_9: q(0.999),
            p99_99: q(0.9999),
            max: h.max() as f64 / NS_PER_US,
            mean: h.mean() / NS_PER_US,
        }
    }

    fn to_json(self) -> Value {
        json!({
            "p50": round2(self.p50),
            "p90": round2(self.p90),
            "p99": round2(self.p99),
            "p99_9": round2(self.p99_9),
            "p99_99": round2(self.p99_99),
            "max": round2(self.max),
            "mean": round2(self.mean),
        })
    }

    fn line(self) -> String {
        format!(
            "p50 {} p90 {} p99 {} p99.9 {} p99.99 {} max {} (mean {})",
            us(self.p50),
            us(self.p90),
            us(self.p99),
            us(self.p99_9),
            us(self.p99_99),
            us(self.max),
            us(self.mean)
        )
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Microseconds with a precision that suits their size.
fn us(x: f64) -> String {
    if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

/// Operations per second of a run.
pub fn ops_per_sec(r: &RunResult) -> f64 {
    let secs = r.elapsed.as_secs_f64();
    if secs > 0.0 {
        r.rec.ops() as f64 / secs
    } else {
        0.0
    }
}

/// The text summary of a run.
pub fn text(cfg: &Config, r: &RunResult) -> String {
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<12} : {:>10.0} ops/sec; {:>7.1} MB/s ({} ops in {:.3} s, {} connections x pipeline {})",
        r.workload.name(),
        ops_per_sec(r),
        r.rec.bytes as f64 / secs / 1e6,
        r.rec.ops(),
        secs,
        cfg.connections,
        cfg.pipeline
    );
    let _ = writeln!(
        s,
        "{:<12}   latency us: {}",
        "",
        Percentiles::of(&r.rec.all).line()
    );
    let kinds: Vec<_> = r.rec.kinds().collect();
    if kinds.len() > 1 {
        for (kind, h) in kinds {
            let _ = writeln!(
                s,
                "{:<12}   {:>6} {} ops: {}",
                "",
                kind.name(),
                h.len(),
                Percentiles::of(h).line()
            );
        }
    }
    if r.rec.found + r.rec.not_found > 0 {
        let _ = writeln!(
            s,
            "{:<12}   ({} of {} found)",
            "",
            r.rec.found,
            r.rec.found + r.rec.not_found
        );
    }
    if r.rec.pairs > 0 {
        let _ = writeln!(s, "{:<12}   {} pairs scanned", "", r.rec.pairs);
    }
    if let Some(c) = &r.check {
        let verdict = if c.mismatches == 0 { "PASS" } else { "FAIL" };
        let _ = writeln!(
            s,
            "{:<12}   check {verdict}: {} answers and {} keys read back, {} mismatches",
            "", c.answers_checked, c.keys_verified, c.mismatches
        );
        for note in &c.notes {
            let _ = writeln!(s, "{:<12}     {note}", "");
        }
    }
    s
}

/// The JSON line of a run: every figure and option.
pub fn json_line(cfg: &Config, setup: &Setup, r: &RunResult) -> String {
    let by_op: serde_json::Map<String, Value> = r
        .rec
        .kinds()
        .map(|(k, h)| {
            (
                k.name().to_string(),
                json!({"ops": h.len(), "latency_us": Percentiles::of(h).to_json()}),
            )
        })
        .collect();
    let (target, addr, dir) = match &cfg.target {
        Target::Server(a) => ("server", Some(a.clone()), None),
        Target::Embedded(d) => ("embedded", None, Some(d.display().to_string())),
    };
    let secs = r.elapsed.as_secs_f64();
    let v = json!({
        "tool": "cityhall-loadgen",
        "workload": r.workload.name(),
        "target": target,
        "ops": r.rec.ops(),
        "seconds": secs,
        "ops_per_sec": round2(ops_per_sec(r)),
        "mb_per_sec": round2(if secs > 0.0 { r.rec.bytes as f64 / secs / 1e6 } else { 0.0 }),
        "latency_us": Percentiles::of(&r.rec.all).to_json(),
        "by_op": by_op,
        "found": r.rec.found,
        "not_found": r.rec.not_found,
        "pairs_scanned": r.rec.pairs,
        "error": r.error,
        "check": r.check.as_ref().map(|c| json!({
            "answers_checked": c.answers_checked,
            "keys_verified": c.keys_verified,
            "mismatches": c.mismatches,
            "notes": c.notes,
        })),
        "options": {
            "addr": addr,
            "embedded": dir,
            "connections": cfg.connections,
            "pipeline": cfg.pipeline,
            "client_threads": cfg.client_threads,
            "num": cfg.num,
            "duration_s": cfg.duration.map(|d| d.as_secs_f64()),
            "key_size": cfg.key_size,
            "value_size": cfg.value_size,
            "key_space": cfg.key_space,
            "distribution": match cfg.distribution {
                Distribution::Uniform => "uniform",
                Distribution::Zipfian => "zipfian",
            },
            "read_percent": cfg.read_percent,
            "scan_length": cfg.scan_length,
            "rate": cfg.rate,
            "durability": match cfg.target {
                Target::Embedded(_) => Some(durability_name(cfg.durability)),
                Target::Server(_) => None,
            },
            "seed": cfg.seed,
            "command": cfg.command,
        },
        "setup": setup.to_json(),
    });
    v.to_string()
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

/// The percentile distribution of `h` (nanoseconds) in HdrHistogram's
/// `.hgrm` text format, in microseconds.
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
    let mean = if h.is_empty() { 0.0 } else { h.mean() };
    let stdev = if h.is_empty() { 0.0 } else { h.stdev() };
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
    let _ = writeln!(
        s,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_bucket_count(SIGFIG)
    );
    s
}

/// HdrHistogram's sub-bucket count for `sigfig` significant digits: the
/// power of two at or above `2 * 10^sigfig`.
fn sub_bucket_count(sigfig: u8) -> u64 {
    (2 * 10u64.pow(u32::from(sigfig))).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::new_histogram;

    #[test]
    fn hgrm_has_the_java_layout() {
        let mut h = new_histogram();
        for i in 1..=10_000u64 {
            h.record(i * 1000).unwrap();
        }
        let out = hgrm(&h);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        // First line: the smallest value, percentile 0.
        let first: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(first[0], "1.000");
        assert_eq!(first[1], "0.000000000000");
        assert_eq!(first[2], "1");
        assert_eq!(first[3], "1.00");
        // The 100% line has three columns and the full count.
        let last_data = lines[lines.len() - 4];
        let cols: Vec<&str> = last_data.split_whitespace().collect();
        assert_eq!(cols.len(), 3);
        assert_eq!(cols[1], "1.000000000000");
        assert_eq!(cols[2], "10000");
        assert!(lines[lines.len() - 3].starts_with("#[Mean    = "));
        assert!(lines[lines.len() - 2].contains("Total count    =        10000]"));
        assert!(lines[lines.len() - 1].ends_with("SubBuckets     =         2048]"));
        // Counts never decrease.
        let mut prev = 0u64;
        for l in &lines[2..lines.len() - 3] {
            let c: u64 = l.split_whitespace().nth(2).unwrap().parse().unwrap();
            assert!(c >= prev);
            prev = c;
        }
    }

    #[test]
    fn hgrm_paths() {
        let p = Path::new("/tmp/run.hgrm");
        assert_eq!(hgrm_path(p, "fillrandom", false), p);
        assert_eq!(
            hgrm_path(p, "fillrandom", true),
            Path::new("/tmp/run.fillrandom.hgrm")
        );
        assert_eq!(
            hgrm_path(Path::new("out"), "scan", true),
            Path::new("out.scan")
        );
    }

    #[test]
    fn percentiles_are_in_microseconds() {
        let mut h = new_histogram();
        h.record(250_000).unwrap();
        let p = Percentiles::of(&h);
        assert!((p.p50 - 250.0).abs() < 0.5, "{}", p.p50);
        assert!((p.max - 250.0).abs() < 0.5);
    }
}
