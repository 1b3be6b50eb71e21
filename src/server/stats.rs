//! [`ServerStats`]: the daemon's own metrics — connections, requests and
//! latency per opcode, errors, bytes in and out — shared by every event
//! loop and merged with the engine's metrics for the METRICS answer.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::metrics::{Counter, Histogram, MetricsSnapshot};
use crate::protocol::Opcode;

/// Counters and a latency histogram of one opcode.
#[derive(Debug, Default)]
pub struct OpStats {
    /// Requests answered.
    pub requests: Counter,
    /// Requests answered with an ERROR.
    pub errors: Counter,
    /// Time from decoding the request to queueing its answer, in µs.
    pub latency_us: Histogram,
}

/// Metrics of the server layer.
#[derive(Debug, Default)]
pub struct ServerStats {
    connections_current: AtomicUsize,
    /// Connections accepted and served.
    pub connections_total: Counter,
    /// Connections refused because `connections_max` were open.
    pub connections_rejected: Counter,
    /// Connections closed for a protocol violation or a timeout.
    pub connections_dropped: Counter,
    /// Bytes read from clients.
    pub bytes_in: Counter,
    /// Bytes written to clients.
    pub bytes_out: Counter,
    /// Frames that were not a valid request (answered with an ERROR).
    pub bad_frames: Counter,
    ops: [OpStats; Opcode::ALL.len()],
}

impl ServerStats {
    /// The stats of `op`.
    pub fn op(&self, op: Opcode) -> &OpStats {
        let i = Opcode::ALL.iter().position(|o| *o == op).unwrap_or(0);
        &self.ops[i]
    }

    /// Takes a connection slot if fewer than `max` are open.
    pub fn try_open_connection(&self, max: usize) -> bool {
        let mut cur = self.connections_current.load(Ordering::Relaxed);
        loop {
            if cur >= max {
                return false;
            }
            match self.connections_current.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.connections_total.inc();
                    return true;
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Gives a connection slot back.
    pub fn close_connection(&self) {
        self.connections_current.fetch_sub(1, Ordering::AcqRel);
    }

    /// Connections open now.
    pub fn connections_current(&self) -> usize {
        self.connections_current.load(Ordering::Relaxed)
    }

    /// Appends every server metric to `out`.
    pub fn report(&self, out: &mut MetricsSnapshot) {
        out.gauge(
            "server.connections_current",
            self.connections_current() as f64,
        );
        out.counter("server.connections_total", self.connections_total.get());
        out.counter(
            "server.connections_rejected",
            self.connections_rejected.get(),
        );
        out.counter("server.connections_dropped", self.connections_dropped.get());
        out.counter("server.bytes_in", self.bytes_in.get());
        out.counter("server.bytes_out", self.bytes_out.get());
        out.counter("server.bad_frames", self.bad_frames.get());
        for (op, s) in Opcode::ALL.iter().zip(&self.ops) {
            if *op == Opcode::Hello {
                continue;
            }
            out.counter(format!("server.{}.requests", op.name()), s.requests.get());
            out.counter(format!("server.{}.errors", op.name()), s.errors.get());
            out.histogram(format!("server.{}.latency_us", op.name()), &s.latency_us);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_slots_are_bounded() {
        let s = ServerStats::default();
        assert!(s.try_open_connection(2));
        assert!(s.try_open_connection(2));
        assert!(!s.try_open_connection(2));
        s.close_connection();
        assert!(s.try_open_connection(2));
        assert_eq!(s.connections_total.get(), 3);
        s.op(Opcode::Get).requests.inc();
        let mut m = MetricsSnapshot::default();
        s.report(&mut m);
        assert_eq!(
            m.get("server.get.requests"),
            Some(&crate::metrics::MetricValue::Counter(1))
        );
    }
}
