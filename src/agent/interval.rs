//! The figures of what a histogram recorded between two copies of it.
//!
//! The server's histograms count from its start; a copy of their counts
//! ([`crate::metrics::Histogram::recorded`]: `(value, count)` per bucket in
//! use) taken at each sample, minus the previous copy, is exactly what was
//! recorded in between, from which percentiles follow the way HDR
//! histograms compute them. Values are bucket tops (within 0.1 %, three
//! significant digits).

use crate::metrics::HistogramSummary;

/// `(value, count)` pairs in increasing value order.
pub type Recorded = Vec<(u64, u64)>;

/// What `now` holds beyond `before` (an older copy of the same histogram).
pub fn difference(now: &[(u64, u64)], before: &[(u64, u64)]) -> Recorded {
    let mut out = Vec::with_capacity(now.len());
    let mut old = before.iter().peekable();
    for &(v, c) in now {
        while old.peek().is_some_and(|(ov, _)| *ov < v) {
            old.next();
        }
        let was = match old.peek() {
            Some((ov, oc)) if *ov == v => *oc,
            _ => 0,
        };
        if c > was {
            out.push((v, c - was));
        }
    }
    out
}

/// Count, mean, percentiles and max of `r`; `None` if it is empty.
pub fn summary(r: &[(u64, u64)]) -> Option<HistogramSummary> {
    let count: u64 = r.iter().map(|(_, c)| c).sum();
    if count == 0 {
        return None;
    }
    let sum: f64 = r.iter().map(|(v, c)| *v as f64 * *c as f64).sum();
    let at = |q: f64| {
        // As hdrhistogram: the smallest value whose cumulative count
        // reaches q of the total (at least one).
        let want = ((q * count as f64) + 0.5).max(1.0) as u64;
        let mut seen = 0;
        for &(v, c) in r {
            seen += c;
            if seen >= want {
                return v;
            }
        }
        r.last().map_or(0, |(v, _)| *v)
    };
    Some(HistogramSummary {
        count,
        mean: sum / count as f64,
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        p999: at(0.999),
        max: r.last().map_or(0, |(v, _)| *v),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Histogram;

    #[test]
    fn the_difference_of_two_copies_is_what_was_recorded_between() {
        let h = Histogram::new();
        for v in [10, 20, 30, 5000] {
            h.record(v);
        }
        let before = h.recorded();
        for v in 1..=100 {
            h.record(v * 10);
        }
        let between = difference(&h.recorded(), &before);
        let s = summary(&between).unwrap();
        assert_eq!(s.count, 100);
        assert_eq!(s.max, 1000);
        assert_eq!(s.p50, 500);
        assert_eq!(s.p99, 990);
        assert!((s.mean - 505.0).abs() < 1.0, "{}", s.mean);
        // The same percentiles as the histogram of those values alone.
        let alone = Histogram::new();
        for v in 1..=100 {
            alone.record(v * 10);
        }
        let a = alone.summary();
        assert_eq!((a.p50, a.p90, a.p99, a.p999), (s.p50, s.p90, s.p99, s.p999));
        assert_eq!(summary(&difference(&before, &before)), None);
        assert_eq!(summary(&[]), None);
    }
}
