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
//!   (`cityhall.wal.sync_latency_us.p99`); a histogram with no value yet
//!   gives nothing. The histograms are the server's, which count from
//!   its start (as `cityhall client metrics` shows them), so their
//!   percentiles move slowly on a server that has run long; hence also
//!   `.interval_mean`, the exact mean of the values recorded since the
//!   previous sample (from the change of count and sum), present when
//!   there were any;
//! - the figures of an opcode never requested are left out (16 opcodes
//!   would otherwise make 150 empty series);
//! - `cityhall.block_cache.hit_percent` is derived: hits over lookups
//!   since the server started.

use crate::metrics::{MetricValue, MetricsSnapshot};

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

/// Count and sum of each histogram at the previous sample.
pub type Previous = std::collections::HashMap<String, (u64, f64)>;

/// Adds the points of `m` to `s` (see the module doc for the names);
/// `prev` carries the histograms' counts and sums from one call to the next.
pub fn add_metrics(m: &MetricsSnapshot, prev: &mut Previous, s: &mut Sample) {
    for metric in &m.metrics {
        if op_unused(m, &metric.name) {
            continue;
        }
        match &metric.value {
            MetricValue::Counter(v) => s.push(&series_name(&metric.name), None, *v as f64),
            MetricValue::Gauge(v) => s.push(&series_name(&metric.name), None, *v),
            MetricValue::Histogram(h) => {
                if h.count == 0 {
                    continue;
                }
                let base = metric
                    .name
                    .strip_suffix(".latency_us")
                    .filter(|_| metric.name.starts_with("server."));
                let base = series_name(base.unwrap_or(&metric.name));
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
                let sum = h.mean * h.count as f64;
                let before = prev.insert(metric.name.clone(), (h.count, sum));
                if let Some((count0, sum0)) = before {
                    if h.count > count0 {
                        let mean = (sum - sum0) / (h.count - count0) as f64;
                        s.push(&format!("{base}.interval_mean"), None, mean.max(0.0));
                    }
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

/// A [`Source`] of the server's metrics, read by a closure.
pub struct MetricsSource<F: FnMut() -> MetricsSnapshot> {
    read: F,
    prev: Previous,
}

impl<F: FnMut() -> MetricsSnapshot> MetricsSource<F> {
    /// A source calling `read` for each sample.
    pub fn new(read: F) -> Self {
        MetricsSource {
            read,
            prev: Previous::new(),
        }
    }
}

impl<F: FnMut() -> MetricsSnapshot> Source for MetricsSource<F> {
    fn prime(&mut self) -> Result<(), String> {
        let mut ignored = Sample::new(0);
        add_metrics(&(self.read)(), &mut self.prev, &mut ignored);
        Ok(())
    }
    fn sample(&mut self, ts_ms: i64) -> (Sample, Vec<String>) {
        let mut s = Sample::new(ts_ms);
        add_metrics(&(self.read)(), &mut self.prev, &mut s);
        (s, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Histogram;

    #[test]
    fn metrics_become_cityhall_series() {
        let mut m = MetricsSnapshot::default();
        m.counter("server.put.requests", 3);
        let h = Histogram::new();
        for v in [10, 20, 30, 4000] {
            h.record(v);
        }
        m.histogram("server.put.latency_us", &h);
        m.counter("server.get.requests", 0);
        m.counter("server.get.errors", 0);
        m.histogram("server.get.latency_us", &Histogram::new());
        m.gauge("server.connections_current", 2.0);
        m.histogram("wal.sync_latency_us", &h);
        m.histogram("flush.latency_us", &Histogram::new());
        m.counter("block_cache.hits", 3);
        m.counter("block_cache.misses", 1);
        m.gauge("level1.bytes", 1e6);
        let mut s = Sample::new(5);
        let mut prev = Previous::new();
        add_metrics(&m, &mut prev, &mut s);
        let got: Vec<(String, f64)> = s.points.iter().map(|(k, v)| (k.canonical(), *v)).collect();
        let find = |n: &str| got.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
        assert_eq!(find("cityhall.put.requests"), Some(3.0));
        assert_eq!(find("cityhall.put.count"), Some(4.0));
        assert_eq!(find("cityhall.put.p50"), Some(20.0));
        let p99 = find("cityhall.put.p99").unwrap();
        assert!((3990.0..=4010.0).contains(&p99), "{p99}");
        assert!(find("cityhall.wal.sync_latency_us.p99").is_some());
        assert_eq!(find("cityhall.connections_current"), Some(2.0));
        assert_eq!(find("cityhall.level1.bytes"), Some(1e6));
        assert_eq!(find("cityhall.block_cache.hit_percent"), Some(75.0));
        // Unused opcodes and empty histograms make no series.
        assert!(got.iter().all(|(k, _)| !k.starts_with("cityhall.get.")));
        assert!(got.iter().all(|(k, _)| !k.starts_with("cityhall.flush.")));
        assert_eq!(got.len(), 1 + 7 + 1 + 7 + 2 + 1 + 1);
        assert!(find("cityhall.put.interval_mean").is_none());

        // The next sample: the mean of what was recorded in between.
        h.record(60);
        h.record(100);
        let mut m2 = MetricsSnapshot::default();
        m2.counter("server.put.requests", 5);
        m2.histogram("server.put.latency_us", &h);
        let mut s = Sample::new(6);
        add_metrics(&m2, &mut prev, &mut s);
        let mean = s
            .points
            .iter()
            .find(|(k, _)| k.canonical() == "cityhall.put.interval_mean")
            .map(|(_, v)| *v)
            .unwrap();
        assert!((mean - 80.0).abs() < 0.5, "{mean}");
        // Nothing recorded since: no interval mean.
        let mut s = Sample::new(7);
        add_metrics(&m2, &mut prev, &mut s);
        assert!(s
            .points
            .iter()
            .all(|(k, _)| k.name() != "cityhall.put.interval_mean"));
    }
}
