//! Self-monitoring: the server's own metrics written as series under
//! `cityhall.*`, every `--self-monitor` interval (10 s by default).
//!
//! A [`MetricsSnapshot`] becomes points by these rules:
//!
//! - the name gets `cityhall.` in front, with a leading `server.` dropped:
//!   `server.connections_current` -> `cityhall.connections_current`,
//!   `wal.bytes` -> `cityhall.wal.bytes`;
//! - counters are stored as they are (read them with `--agg rate`), gauges
//!   as they are;
//! - a histogram gives `.p50 .p90 .p99 .p999 .max .mean .count`, and a
//!   request latency drops its `.latency_us` so that the p99 of PUT (µs)
//!   is `cityhall.put.p99`; others keep their name
//!   (`cityhall.wal.sync_latency_us.p99`). The figures are those of the
//!   values recorded since the previous sample ([`super::interval`]; for
//!   the first sample, since the server started), where `cityhall client
//!   metrics` shows them since the server started: a slow minute shows in
//!   that minute. `.count` is the number of values in the interval, and an
//!   interval without any gives no point. A histogram the server does not
//!   hand over as counts is stored as its since-start summary;
//! - the figures of an opcode never requested are left out (16 opcodes
//!   would otherwise make 150 empty series);
//! - `cityhall.block_cache.hit_percent` is derived: hits over lookups
//!   since the server started.

use std::collections::HashMap;

use crate::metrics::{HistogramSummary, MetricValue, MetricsSnapshot};

use super::interval::{self, difference, Recorded};
use super::run::Source;
use super::sample::Sample;

/// The series name of a metric.
pub fn series_name(metric: &str) -> String {
    format!(
        "cityhall.{}",
        metric.strip_prefix("server.").unwrap_or(metric)
    )
}

fn op_unused(m: &MetricsSnapshot, name: &str) -> bool {
    let Some(rest) = name.strip_prefix("server.") else {
        return false;
    };
    let Some((op, _)) = rest.split_once('.') else {
        return false;
    };
    matches!(
        m.get(&format!("server.{op}.requests")),
        Some(MetricValue::Counter(0))
    )
}

/// What self-monitoring reads from the server.
pub trait MetricsReader: Send + 'static {
    /// Every metric now.
    fn metrics(&self) -> MetricsSnapshot;
    /// The counts of the histogram named `histogram` (as in the metrics),
    /// if the server can hand them over.
    fn recorded(&self, histogram: &str) -> Option<Recorded>;
}

/// Each histogram's count and counts at the previous sample, by name.
pub type Previous = HashMap<String, (u64, Recorded)>;

/// Adds the points of `m` to `s` (see the module doc for the names);
/// `recorded` hands over a histogram's counts, `prev` holds those of the
/// previous call. A histogram whose count did not change is not copied.
pub fn add_metrics(
    m: &MetricsSnapshot,
    recorded: &dyn Fn(&str) -> Option<Recorded>,
    prev: &mut Previous,
    s: &mut Sample,
) {
    for metric in &m.metrics {
        if op_unused(m, &metric.name) {
            continue;
        }
        match &metric.value {
            MetricValue::Counter(v) => s.push(&series_name(&metric.name), None, *v as f64),
            MetricValue::Gauge(v) => s.push(&series_name(&metric.name), None, *v),
            MetricValue::Histogram(since_start) => {
                let seen = prev.get(&metric.name).map_or(0, |(count, _)| *count);
                if since_start.count == seen {
                    continue; // nothing recorded in this interval
                }
                let figures = match recorded(&metric.name) {
                    Some(now) => {
                        let before = prev.get(&metric.name).map_or(&[][..], |(_, r)| r);
                        let figures = interval::summary(&difference(&now, before));
                        let count = now.iter().map(|(_, c)| c).sum();
                        prev.insert(metric.name.clone(), (count, now));
                        figures
                    }
                    None => Some(*since_start).filter(|h| h.count > 0),
                };
                if let Some(h) = figures {
                    push_histogram(s, &metric.name, &h);
                }
            }
        }
    }
    let counter = |n: &str| match m.get(n) {
        Some(MetricValue::Counter(v)) => Some(*v),
        _ => None,
    };
    if let (Some(h), Some(miss)) = (counter("block_cache.hits"), counter("block_cache.misses")) {
        let lookups = h.saturating_add(miss);
        if lookups > 0 {
            s.push(
                "cityhall.block_cache.hit_percent",
                None,
                100.0 * h as f64 / lookups as f64,
            );
        }
    }
}

fn push_histogram(s: &mut Sample, name: &str, h: &HistogramSummary) {
    let base = name
        .strip_suffix(".latency_us")
        .filter(|_| name.starts_with("server."));
    let base = series_name(base.unwrap_or(name));
    let fields = [
        ("p50", h.p50 as f64),
        ("p90", h.p90 as f64),
        ("p99", h.p99 as f64),
        ("p999", h.p999 as f64),
        ("max", h.max as f64),
        ("mean", h.mean),
        ("count", h.count as f64),
    ];
    for (f, v) in fields {
        s.push(&format!("{base}.{f}"), None, v);
    }
}

/// A [`Source`] of the server's metrics.
pub struct MetricsSource<R: MetricsReader> {
    reader: R,
    prev: Previous,
}

impl<R: MetricsReader> MetricsSource<R> {
    /// A source reading the server through `reader` at each sample.
    pub fn new(reader: R) -> Self {
        MetricsSource {
            reader,
            prev: Previous::new(),
        }
    }
}

impl<R: MetricsReader> Source for MetricsSource<R> {
    fn prime(&mut self) -> Result<(), String> {
        // Nothing to read ahead: the first interval starts with the server.
        Ok(())
    }
    fn sample(&mut self, ts_ms: i64) -> (Sample, Vec<String>) {
        let mut s = Sample::new(ts_ms);
        let reader = &self.reader;
        add_metrics(
            &reader.metrics(),
            &|h| reader.recorded(h),
            &mut self.prev,
            &mut s,
        );
        (s, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Histogram;

    fn points(s: &Sample) -> Vec<(String, f64)> {
        s.points.iter().map(|(k, v)| (k.canonical(), *v)).collect()
    }

    fn find(got: &[(String, f64)], n: &str) -> Option<f64> {
        got.iter().find(|(k, _)| k == n).map(|(_, v)| *v)
    }

    #[test]
    fn metrics_become_cityhall_series_with_figures_per_interval() {
        let put = Histogram::new();
        let wal = Histogram::new();
        for v in [10, 20, 30, 4000] {
            put.record(v);
            wal.record(v);
        }
        let snapshot = |requests: u64| {
            let mut m = MetricsSnapshot::default();
            m.counter("server.put.requests", requests);
            m.histogram("server.put.latency_us", &put);
            m.counter("server.get.requests", 0);
            m.counter("server.get.errors", 0);
            m.histogram("server.get.latency_us", &Histogram::new());
            m.gauge("server.connections_current", 2.0);
            m.histogram("wal.sync_latency_us", &wal);
            m.histogram("flush.latency_us", &Histogram::new());
            m.counter("block_cache.hits", 3);
            m.counter("block_cache.misses", 1);
            m.gauge("level1.bytes", 1e6);
            m
        };
        // Counts are handed over for PUT only; WAL sync falls back to its
        // since-start summary.
        let hists = |name: &str| (name == "server.put.latency_us").then(|| put.recorded());
        let mut prev = Previous::new();
        let mut s = Sample::new(5);
        add_metrics(&snapshot(4), &hists, &mut prev, &mut s);
        let got = points(&s);
        assert_eq!(find(&got, "cityhall.put.requests"), Some(4.0));
        assert_eq!(find(&got, "cityhall.connections_current"), Some(2.0));
        assert_eq!(find(&got, "cityhall.level1.bytes"), Some(1e6));
        assert_eq!(find(&got, "cityhall.block_cache.hit_percent"), Some(75.0));
        assert_eq!(find(&got, "cityhall.wal.sync_latency_us.count"), Some(4.0));
        // The first interval starts with the server.
        assert_eq!(find(&got, "cityhall.put.count"), Some(4.0));
        let p99 = find(&got, "cityhall.put.p99").unwrap();
        assert!((3990.0..=4010.0).contains(&p99), "{p99}");
        // Unused opcodes and empty histograms make no series.
        assert!(got.iter().all(|(k, _)| !k.starts_with("cityhall.get.")));
        assert!(got.iter().all(|(k, _)| !k.starts_with("cityhall.flush.")));
        assert_eq!(got.len(), 1 + 7 + 1 + 7 + 2 + 1 + 1);

        // Two slow PUTs in the next interval: its figures are theirs alone.
        put.record(9000);
        put.record(9000);
        let mut s = Sample::new(6);
        add_metrics(&snapshot(6), &hists, &mut prev, &mut s);
        let got = points(&s);
        assert_eq!(find(&got, "cityhall.put.count"), Some(2.0));
        let p50 = find(&got, "cityhall.put.p50").unwrap();
        assert!((8990.0..=9010.0).contains(&p50), "{p50}");
        assert_eq!(find(&got, "cityhall.put.p99"), Some(p50));

        // An interval without PUTs gives no PUT figures.
        let mut s = Sample::new(7);
        add_metrics(&snapshot(6), &hists, &mut prev, &mut s);
        assert_eq!(find(&points(&s), "cityhall.put.p99"), None);
    }
}
