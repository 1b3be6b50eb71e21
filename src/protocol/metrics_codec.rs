//! The METRICS response body: a [`MetricsSnapshot`] in a structured form,
//! so the client can render it as text, JSON or Prometheus exposition.
//!
//! ```text
//! count u32 | count x metric
//! metric: name len u16 | name (UTF-8) | kind u8 | payload
//!   kind 0 counter:   value u64
//!   kind 1 gauge:     value f64 (IEEE 754 bits as u64)
//!   kind 2 histogram: count u64 | mean f64 | p50 u64 | p90 u64 | p99 u64
//!                     | p999 u64 | max u64
//! ```
//!
//! Names longer than `u16::MAX` bytes are cut (names are chosen by the
//! server, so this never happens in practice).

use crate::metrics::{HistogramSummary, Metric, MetricValue, MetricsSnapshot};

use super::wire::{put_len, put_u16, put_u64, Reader};
use super::{ErrorCode, ProtocolError};

/// Smallest encoded metric: empty name, kind, one u64.
const METRIC_BYTES_MIN: usize = 2 + 1 + 8;

/// Appends the body for `m`.
pub fn encode(out: &mut Vec<u8>, m: &MetricsSnapshot) {
    put_len(out, m.metrics.len());
    for metric in &m.metrics {
        let name = metric.name.as_bytes();
        let name = name.get(..usize::from(u16::MAX)).unwrap_or(name);
        put_u16(out, u16::try_from(name.len()).unwrap_or(u16::MAX));
        out.extend_from_slice(name);
        match &metric.value {
            MetricValue::Counter(v) => {
                out.push(0);
                put_u64(out, *v);
            }
            MetricValue::Gauge(v) => {
                out.push(1);
                put_u64(out, v.to_bits());
            }
            MetricValue::Histogram(h) => {
                out.push(2);
                put_u64(out, h.count);
                put_u64(out, h.mean.to_bits());
                for v in [h.p50, h.p90, h.p99, h.p999, h.max] {
                    put_u64(out, v);
                }
            }
        }
    }
}

/// Parses a body.
pub fn decode(body: &[u8]) -> Result<MetricsSnapshot, ProtocolError> {
    let mut r = Reader::new(body);
    let n = r.count(
        "metric count",
        usize::MAX,
        ErrorCode::MalformedBody,
        "",
        METRIC_BYTES_MIN,
    )?;
    let mut metrics = Vec::with_capacity(n);
    for _ in 0..n {
        let len = usize::from(r.u16("metric name length")?);
        let name = String::from_utf8_lossy(r.raw(len, "metric name")?).into_owned();
        let value = match r.u8("metric kind")? {
            0 => MetricValue::Counter(r.u64("counter")?),
            1 => MetricValue::Gauge(f64::from_bits(r.u64("gauge")?)),
            2 => MetricValue::Histogram(HistogramSummary {
                count: r.u64("histogram count")?,
                mean: f64::from_bits(r.u64("histogram mean")?),
                p50: r.u64("p50")?,
                p90: r.u64("p90")?,
                p99: r.u64("p99")?,
                p999: r.u64("p999")?,
                max: r.u64("max")?,
            }),
            k => {
                return Err(ProtocolError::malformed(format!(
                    "metric {name}: unknown kind {k}"
                )))
            }
        };
        metrics.push(Metric { name, value });
    }
    r.finish("METRICS")?;
    Ok(MetricsSnapshot { metrics })
}
