//! Counters, gauges and HDR latency histograms.
//!
//! Each subsystem owns its metrics as plain fields (atomics and
//! [`Histogram`]s) and reports them into a [`MetricsSnapshot`], which the
//! server renders as text, JSON or Prometheus exposition. Histograms record
//! microseconds (or plain counts, for sizes) with three significant digits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// An HDR histogram behind a lock.
#[derive(Debug)]
pub struct Histogram(Mutex<hdrhistogram::Histogram<u64>>);

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// A histogram of values from 1 to one hour in microseconds, 3 digits.
    pub fn new() -> Self {
        let h = hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .expect("constant histogram bounds are valid");
        Histogram(Mutex::new(h))
    }

    /// Records one value (clamped into range).
    pub fn record(&self, v: u64) {
        let mut h = self.0.lock().unwrap_or_else(|p| p.into_inner());
        h.saturating_record(v.max(1));
    }

    /// Records a duration in microseconds.
    pub fn record_since(&self, start: std::time::Instant) {
        self.record(start.elapsed().as_micros() as u64);
    }

    /// The recorded values as `(value, count)` pairs in increasing value
    /// order, each value the highest of its bucket: a small copy (one pair
    /// per bucket in use) from which the figures of an interval are
    /// computed, as the difference of two copies.
    pub fn recorded(&self) -> Vec<(u64, u64)> {
        let h = self.0.lock().unwrap_or_else(|p| p.into_inner());
        h.iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    /// Percentiles and count.
    pub fn summary(&self) -> HistogramSummary {
        let h = self.0.lock().unwrap_or_else(|p| p.into_inner());
        HistogramSummary {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// A histogram reduced to what is reported.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HistogramSummary {
    /// Values recorded.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value.
    pub max: u64,
}

/// One reported value.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricValue {
    /// A monotonic count.
    Counter(u64),
    /// A point-in-time value.
    Gauge(f64),
    /// A latency or size distribution.
    Histogram(HistogramSummary),
}

/// A named value, e.g. `wal.sync_latency_us`.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// Dotted name, unit last.
    pub name: String,
    /// The value.
    pub value: MetricValue,
}

/// Every metric at one moment, in a stable order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// The metrics.
    pub metrics: Vec<Metric>,
}

impl MetricsSnapshot {
    /// Adds a counter.
    pub fn counter(&mut self, name: impl Into<String>, v: u64) {
        self.push(name, MetricValue::Counter(v));
    }
    /// Adds a gauge.
    pub fn gauge(&mut self, name: impl Into<String>, v: f64) {
        self.push(name, MetricValue::Gauge(v));
    }
    /// Adds a histogram summary.
    pub fn histogram(&mut self, name: impl Into<String>, h: &Histogram) {
        self.push(name, MetricValue::Histogram(h.summary()));
    }
    fn push(&mut self, name: impl Into<String>, value: MetricValue) {
        self.metrics.push(Metric {
            name: name.into(),
            value,
        });
    }
    /// Looks a metric up by name.
    pub fn get(&self, name: &str) -> Option<&MetricValue> {
        self.metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| &m.value)
    }
}
