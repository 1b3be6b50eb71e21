//! [`SampleBuffer`]: the samples not yet written, bounded; when full the
//! oldest goes, and the count of what went is kept for reporting.
//!
//! [`Backoff`]: the growing wait between reconnection attempts.

use std::collections::VecDeque;
use std::time::Duration;

use super::sample::Sample;

/// Samples waiting to be written, oldest first, at most `samples_max`.
#[derive(Debug)]
pub struct SampleBuffer {
    queue: VecDeque<Sample>,
    samples_max: usize,
    dropped_total: u64,
    dropped_unreported: u64,
}

impl SampleBuffer {
    /// An empty buffer of at most `samples_max` samples (at least 1).
    pub fn new(samples_max: usize) -> Self {
        SampleBuffer {
            queue: VecDeque::new(),
            samples_max: samples_max.max(1),
            dropped_total: 0,
            dropped_unreported: 0,
        }
    }

    /// Adds a sample, dropping the oldest if the buffer is full.
    pub fn push(&mut self, s: Sample) {
        if self.queue.len() == self.samples_max {
            self.queue.pop_front();
            self.dropped_total += 1;
            self.dropped_unreported += 1;
        }
        self.queue.push_back(s);
    }

    /// The oldest sample.
    pub fn front(&self) -> Option<&Sample> {
        self.queue.front()
    }

    /// Removes the oldest sample (once written, or refused).
    pub fn pop(&mut self) -> Option<Sample> {
        self.queue.pop_front()
    }

    /// Samples waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no sample waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The bound.
    pub fn samples_max(&self) -> usize {
        self.samples_max
    }

    /// Samples dropped since the start.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    /// Samples dropped since the last call (and resets that count).
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped_unreported)
    }
}

/// Doubling waits from `min` to `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `min`, never above `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The wait before the next attempt; each call doubles the following.
    pub fn next_wait(&mut self) -> Duration {
        let w = self.next;
        self.next = (self.next * 2).min(self.max);
        w
    }

    /// Back to `min` (after a success).
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_samples_go_and_are_counted() {
        let mut b = SampleBuffer::new(3);
        for t in 0..5 {
            b.push(Sample::new(t));
        }
        assert_eq!(b.len(), 3);
        assert_eq!(b.front().map(|s| s.ts_ms), Some(2));
        assert_eq!((b.dropped_total(), b.take_dropped()), (2, 2));
        assert_eq!(b.take_dropped(), 0);
        assert_eq!(b.pop().map(|s| s.ts_ms), Some(2));
        b.push(Sample::new(5));
        assert_eq!((b.len(), b.dropped_total()), (3, 2));
        assert_eq!(SampleBuffer::new(0).samples_max(), 1);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(500));
        let waits: Vec<Duration> = (0..5).map(|_| b.next_wait()).collect();
        assert_eq!(waits, [ms(100), ms(200), ms(400), ms(500), ms(500)]);
        b.reset();
        assert_eq!(b.next_wait(), ms(100));
    }
}
