//! [`Recorder`]: what one connection measured (latencies in HDR
//! histograms, counts of hits, misses and bytes), merged across
//! connections at the end of a run.
//!
//! Latencies are recorded in nanoseconds with three significant digits
//! (0.1% resolution) up to an hour; reports show microseconds.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::workload::OpKind;

/// Longest latency recorded exactly; longer ones are recorded as this.
const LATENCY_NS_MAX: u64 = 3_600 * 1_000_000_000;
/// Significant digits kept by the histograms.
pub const SIGFIG: u8 = 3;

/// A latency histogram in nanoseconds.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, SIGFIG)
        .unwrap_or_else(|e| panic!("histogram bounds rejected: {e}"))
}

/// One connection's (or, merged, one run's) measurements.
#[derive(Debug)]
pub struct Recorder {
    /// Every operation.
    pub all: Histogram<u64>,
    /// Per kind, created on first use.
    pub by_kind: [Option<Histogram<u64>>; 4],
    /// Reads that found a value.
    pub found: u64,
    /// Reads that found nothing.
    pub not_found: u64,
    /// Pairs returned by scans.
    pub pairs: u64,
    /// Key and value bytes written or read.
    pub bytes: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            all: new_histogram(),
            by_kind: [None, None, None, None],
            found: 0,
            not_found: 0,
            pairs: 0,
            bytes: 0,
        }
    }
}

impl Recorder {
    /// Records one operation of `kind` that took `latency`.
    pub fn record(&mut self, kind: OpKind, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos())
            .unwrap_or(u64::MAX)
            .clamp(1, LATENCY_NS_MAX);
        self.all.saturating_record(ns);
        self.by_kind[kind.index()]
            .get_or_insert_with(new_histogram)
            .saturating_record(ns);
    }

    /// Operations recorded.
    pub fn ops(&self) -> u64 {
        self.all.len()
    }

    /// Adds `other`'s measurements to these.
    pub fn merge(&mut self, other: &Recorder) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.all.add(&other.all);
        for (mine, theirs) in self.by_kind.iter_mut().zip(&other.by_kind) {
            if let Some(t) = theirs {
                let _ = mine.get_or_insert_with(new_histogram).add(t);
            }
        }
        self.found += other.found;
        self.not_found += other.not_found;
        self.pairs += other.pairs;
        self.bytes += other.bytes;
    }

    /// The kinds recorded, with their histograms.
    pub fn kinds(&self) -> impl Iterator<Item = (OpKind, &Histogram<u64>)> {
        OpKind::ALL
            .iter()
            .filter_map(|k| self.by_kind[k.index()].as_ref().map(|h| (*k, h)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_merges() {
        let mut a = Recorder::default();
        a.record(OpKind::Read, Duration::from_micros(100));
        a.found = 1;
        let mut b = Recorder::default();
        b.record(OpKind::Write, Duration::from_micros(300));
        b.record(OpKind::Write, Duration::from_secs(10_000));
        a.merge(&b);
        assert_eq!(a.ops(), 3);
        assert_eq!(a.kinds().count(), 2);
        assert_eq!(a.found, 1);
        assert!(a.all.max() >= LATENCY_NS_MAX - LATENCY_NS_MAX / 1000);
    }
}
