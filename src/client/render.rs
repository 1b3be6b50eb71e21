//! How the CLI prints what the server returns: binary-safe escaping of
//! keys and values, and metrics as text, JSON or Prometheus exposition.

use std::fmt::Write as _;

use crate::metrics::{HistogramSummary, MetricValue, MetricsSnapshot};

/// Prints bytes on one line without ambiguity: printable UTF-8 stays as it
/// is, a backslash becomes `\\`, every other byte (control characters such
/// as tab and newline, invalid UTF-8) becomes `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else if c.is_control() {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Output formats of `cityhall client metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsFormat {
    /// `name value` lines; histograms as `count= mean= p50= ...`.
    Text,
    /// One JSON object keyed by metric name.
    Json,
    /// Prometheus text exposition (histograms as summaries).
    Prometheus,
}

/// Renders `m` in `format`, ending with a newline.
pub fn render_metrics(m: &MetricsSnapshot, format: MetricsFormat) -> String {
    match format {
        MetricsFormat::Text => text(m),
        MetricsFormat::Json => json(m),
        MetricsFormat::Prometheus => prometheus(m),
    }
}

fn text(m: &MetricsSnapshot) -> String {
    let mut out = String::new();
    for metric in &m.metrics {
        let _ = match &metric.value {
            MetricValue::Counter(v) => writeln!(out, "{} {v}", metric.name),
            MetricValue::Gauge(v) => writeln!(out, "{} {}", metric.name, number(*v)),
            MetricValue::Histogram(h) => writeln!(
                out,
                "{} count={} mean={} p50={} p90={} p99={} p999={} max={}",
                metric.name,
                h.count,
                number(h.mean),
                h.p50,
                h.p90,
                h.p99,
                h.p999,
                h.max
            ),
        };
    }
    out
}

fn json(m: &MetricsSnapshot) -> String {
    let mut out = String::from("{");
    for (i, metric) in m.metrics.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("\n  ");
        json_string(&mut out, &metric.name);
        let _ = match &metric.value {
            MetricValue::Counter(v) => write!(out, ": {{\"type\": \"counter\", \"value\": {v}}}"),
            MetricValue::Gauge(v) => write!(out, ": {{\"type\": \"gauge\", \"value\": {}}}", json_number(*v)),
            MetricValue::Histogram(h) => write!(
                out,
                ": {{\"type\": \"histogram\", \"count\": {}, \"mean\": {}, \"p50\": {}, \"p90\": {}, \"p99\": {}, \"p999\": {}, \"max\": {}}}",
                h.count,
                json_number(h.mean),
                h.p50,
                h.p90,
                h.p99,
                h.p999,
                h.max
            ),
        };
    }
    out.push_str(if m.metrics.is_empty() { "}\n" } else { "\n}\n" });
    out
}

fn prometheus(m: &MetricsSnapshot) -> String {
    let mut out = String::new();
    for metric in &m.metrics {
        let name = prometheus_name(&metric.name);
        let _ = match &metric.value {
            MetricValue::Counter(v) => writeln!(out, "# TYPE {name} counter\n{name} {v}"),
            MetricValue::Gauge(v) => writeln!(out, "# TYPE {name} gauge\n{name} {}", number(*v)),
            MetricValue::Histogram(h) => summary(&mut out, &name, h),
        };
    }
    out
}

fn summary(out: &mut String, name: &str, h: &HistogramSummary) -> std::fmt::Result {
    writeln!(out, "# TYPE {name} summary")?;
    for (q, v) in [
        ("0.5", h.p50),
        ("0.9", h.p90),
        ("0.99", h.p99),
        ("0.999", h.p999),
        ("1", h.max),
    ] {
        writeln!(out, "{name}{{quantile=\"{q}\"}} {v}")?;
    }
    writeln!(out, "{name}_sum {}", number(h.mean * h.count as f64))?;
    writeln!(out, "{name}_count {}", h.count)
}

/// `cityhall_` + the name with every character outside `[a-zA-Z0-9_]`
/// replaced by `_`.
fn prometheus_name(name: &str) -> String {
    let mut out = String::from("cityhall_");
    out.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    out
}

fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn json_number(v: f64) -> String {
    if v.is_finite() {
        number(v)
    } else {
        "null".into()
    }
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Histogram;

    #[test]
    fn escapes_only_what_is_unprintable() {
        assert_eq!(escape_bytes(b"plain 0.75"), "plain 0.75");
        assert_eq!(escape_bytes(b"a\tb\nc\\"), "a\\x09b\\x0ac\\\\");
        assert_eq!(escape_bytes(b"\x00\xff"), "\\x00\\xff");
        assert_eq!(escape_bytes("café".as_bytes()), "café");
    }

    #[test]
    fn renders_every_format() {
        let mut m = MetricsSnapshot::default();
        m.counter("server.get.requests", 3);
        m.gauge("cache.hit_ratio", 0.5);
        let h = Histogram::new();
        h.record(10);
        m.histogram("server.get.latency_us", &h);
        let t = render_metrics(&m, MetricsFormat::Text);
        assert!(t.starts_with("server.get.requests 3\ncache.hit_ratio 0.5\nserver.get.latency_us count=1 mean=10 p50=10"), "{t}");
        let j = render_metrics(&m, MetricsFormat::Json);
        assert!(
            j.contains("\"server.get.requests\": {\"type\": \"counter\", \"value\": 3}"),
            "{j}"
        );
        let p = render_metrics(&m, MetricsFormat::Prometheus);
        assert!(
            p.contains(
                "# TYPE cityhall_server_get_requests counter\ncityhall_server_get_requests 3\n"
            ),
            "{p}"
        );
        assert!(
            p.contains("cityhall_server_get_latency_us{quantile=\"0.99\"} 10\n"),
            "{p}"
        );
        assert!(
            p.contains("cityhall_server_get_latency_us_count 1\n"),
            "{p}"
        );
    }
}
