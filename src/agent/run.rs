//! The agent loop: take a sample every interval, buffer it, write what the
//! buffer holds; survive the server going away.
//!
//! One thread does everything, in this order at each wake-up: sample if
//! the interval has passed (into the bounded [`SampleBuffer`], whose oldest
//! sample goes when it is full); connect if not connected and the backoff
//! allows; write the buffered samples oldest first, each as one TS_ADD,
//! removing each once the server acknowledged it (durable). A write that
//! fails for want of a server (connection refused, reset, timed out)
//! closes the connection and keeps the sample for the next attempt; a
//! sample the server refuses (bad input, a bound) is dropped with a
//! message, since sending it again would fail again. When the connection
//! comes back, the agent says how many samples the buffer had to drop.
//!
//! The loop is generic over where samples come from ([`Source`]: the host,
//! or the server's own metrics) and where they go ([`Sink`]: a server over
//! TCP, or the time-series layer of the server process itself).

use std::time::{Duration, Instant};

use super::buffer::{Backoff, SampleBuffer};
use super::sample::{Sample, Sampler};
use super::stop::Stop;

pub use super::sink::{LocalSink, Sink, TcpSink, WriteError};

/// Where samples come from.
pub trait Source {
    /// Readings that make the first sample complete (CPU times).
    fn prime(&mut self) -> Result<(), String>;
    /// One sample stamped `ts_ms`, and what could not be read.
    fn sample(&mut self, ts_ms: i64) -> (Sample, Vec<String>);
}

impl Source for Sampler {
    fn prime(&mut self) -> Result<(), String> {
        Sampler::prime(self)
    }
    fn sample(&mut self, ts_ms: i64) -> (Sample, Vec<String>) {
        Sampler::sample(self, ts_ms)
    }
}

/// How the loop runs.
#[derive(Clone, Debug)]
pub struct LoopConfig {
    /// Time between samples.
    pub interval: Duration,
    /// Most samples kept while the sink is unreachable.
    pub buffer_samples_max: usize,
    /// Stop after this many samples (`None`: until stopped).
    pub samples_max: Option<u64>,
    /// Shortest and longest wait between connection attempts.
    pub backoff_min: Duration,
    /// See `backoff_min`.
    pub backoff_max: Duration,
    /// Prefix of the loop's own series (`agent` gives
    /// `agent.samples_dropped`, ...); `None`: none.
    pub self_prefix: Option<&'static str>,
    /// Name in messages (`cityhall agent`).
    pub name: &'static str,
}

impl LoopConfig {
    /// Defaults for `interval`: a buffer of an hour of samples (at least
    /// 60), backoff from 0.5 s to 30 s.
    pub fn new(interval: Duration) -> Self {
        let per_hour = 3600_u128 * 1000 / interval.as_millis().max(1);
        LoopConfig {
            interval,
            buffer_samples_max: usize::try_from(per_hour).unwrap_or(usize::MAX).max(60),
            samples_max: None,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            self_prefix: Some("agent"),
            name: "cityhall agent",
        }
    }
}

/// What a loop did, reported when it ends.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoopReport {
    /// Samples taken.
    pub samples: u64,
    /// Samples acknowledged by the sink.
    pub written: u64,
    /// Points in the samples written.
    pub points_written: u64,
    /// Samples dropped because the buffer was full.
    pub dropped: u64,
    /// Samples the sink refused.
    pub refused: u64,
    /// CPU time of the loop's thread (user + system).
    pub cpu: Duration,
}

impl LoopReport {
    /// A one-line summary.
    pub fn line(&self) -> String {
        let per = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        format!(
            "{} samples taken, {} written ({} points, {:.1} a sample), {} dropped (buffer full), {} refused; CPU {:.3} ms a sample",
            self.samples,
            self.written,
            self.points_written,
            per(self.points_written, self.written),
            self.dropped,
            self.refused,
            per(self.cpu.as_micros() as u64, self.samples) / 1000.0,
        )
    }
}

/// CPU time (user + system) of the calling thread.
pub fn thread_cpu_time() -> Duration {
    // SAFETY: rusage is plain data; an all-zero value is valid.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid out-pointer; RUSAGE_THREAD is Linux's.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Milliseconds since the epoch now.
fn now_ms() -> i64 {
    crate::ts::options::system_now_ms()
}

/// What the loop carries from one wake-up to the next.
struct State<'a> {
    cfg: &'a LoopConfig,
    log: &'a mut dyn FnMut(&str),
    report: LoopReport,
    buffer: SampleBuffer,
    backoff: Backoff,
    cpu_start: Duration,
    /// Errors of the source already reported (each is reported once).
    seen_errors: Vec<String>,
    /// Since when the sink has been unreachable.
    down_since: Option<Instant>,
    /// Whether a failed connection was reported since the last success.
    failure_reported: bool,
    next_connect: Instant,
}

impl State<'_> {
    fn say(&mut self, what: &str) {
        (self.log)(&format!("{}: {what}", self.cfg.name));
    }

    fn take_sample(&mut self, source: &mut dyn Source) {
        let (mut s, errors) = source.sample(now_ms());
        for e in errors {
            if !self.seen_errors.contains(&e) && self.seen_errors.len() < 100 {
                self.say(&format!("{e} (reported once)"));
                self.seen_errors.push(e);
            }
        }
        self.report.samples += 1;
        if let Some(p) = self.cfg.self_prefix {
            let cpu = thread_cpu_time().saturating_sub(self.cpu_start);
            s.push(
                &format!("{p}.cpu_time_ms"),
                None,
                cpu.as_secs_f64() * 1000.0,
            );
            let dropped = self.buffer.dropped_total() as f64;
            s.push(&format!("{p}.samples_dropped"), None, dropped);
            let n = s.points.len() + 1;
            s.push(&format!("{p}.points_per_sample"), None, n as f64);
        }
        self.buffer.push(s);
    }

    fn connect(&mut self, sink: &mut dyn Sink) {
        match sink.connect() {
            Ok(()) => {
                if let Some(since) = self.down_since.take() {
                    let secs = since.elapsed().as_secs_f64();
                    self.say(&format!(
                        "reconnected to {} after {secs:.1} s",
                        sink.describe()
                    ));
                }
                self.backoff.reset();
                self.failure_reported = false;
            }
            Err(e) => {
                let wait = self.backoff.next_wait();
                if !self.failure_reported {
                    self.failure_reported = true;
                    let retry = if self.cfg.samples_max == Some(1) {
                        String::new()
                    } else {
                        format!(
                            "; retrying with backoff up to {} s, buffering up to {} samples",
                            self.cfg.backoff_max.as_secs(),
                            self.buffer.samples_max()
                        )
                    };
                    self.say(&format!("cannot reach {}: {e}{retry}", sink.describe()));
                    self.down_since.get_or_insert_with(Instant::now);
                }
                self.next_connect = Instant::now() + wait;
            }
        }
    }

    /// Writes the buffered samples, oldest first, until one fails.
    fn flush(&mut self, sink: &mut dyn Sink) {
        let backlog = self.buffer.len();
        while let Some(s) = self.buffer.front() {
            match sink.write(s) {
                Ok(()) => {
                    self.report.written += 1;
                    self.report.points_written += s.points.len() as u64;
                    self.buffer.pop();
                }
                Err(WriteError::Refused(e)) => {
                    self.say(&format!("sample refused, dropped: {e}"));
                    self.report.refused += 1;
                    self.buffer.pop();
                }
                Err(WriteError::Unavailable(e)) => {
                    let left = self.buffer.len();
                    self.say(&format!(
                        "lost {}: {e}; {left} samples buffered",
                        sink.describe()
                    ));
                    sink.disconnect();
                    self.down_since = Some(Instant::now());
                    self.next_connect = Instant::now() + self.backoff.next_wait();
                    return;
                }
            }
        }
        let dropped = self.buffer.take_dropped();
        if backlog > 1 || dropped > 0 {
            let (max, total) = (self.buffer.samples_max(), self.buffer.dropped_total());
            self.say(&format!(
                "wrote {backlog} buffered samples; dropped {dropped} (buffer of {max} full), {total} dropped in all"
            ));
        }
    }
}

/// Runs the loop until `stop` is set or `samples_max` samples are taken,
/// then tries once more to write what is buffered. Messages go to `log`.
pub fn run_loop(
    cfg: &LoopConfig,
    source: &mut dyn Source,
    sink: &mut dyn Sink,
    stop: &Stop,
    log: &mut dyn FnMut(&str),
) -> LoopReport {
    let mut st = State {
        cfg,
        log,
        report: LoopReport::default(),
        buffer: SampleBuffer::new(cfg.buffer_samples_max),
        backoff: Backoff::new(cfg.backoff_min, cfg.backoff_max),
        cpu_start: thread_cpu_time(),
        seen_errors: Vec::new(),
        down_since: None,
        failure_reported: false,
        next_connect: Instant::now(),
    };
    if let Err(e) = source.prime() {
        st.say(&e);
    }
    let enough = |r: &LoopReport| cfg.samples_max.is_some_and(|n| r.samples >= n);
    let mut next_sample = Instant::now() + cfg.interval;
    loop {
        let wake = if sink.connected() || st.buffer.is_empty() {
            next_sample
        } else {
            next_sample.min(st.next_connect)
        };
        let stopped = stop.sleep_until(wake);
        if !stopped && !enough(&st.report) && Instant::now() >= next_sample {
            st.take_sample(source);
            next_sample += cfg.interval;
            let now = Instant::now();
            if next_sample < now {
                next_sample = now + cfg.interval; // fell behind: skip, do not burst
            }
        }
        let last_round = stopped || enough(&st.report);
        let may_connect = Instant::now() >= st.next_connect || last_round;
        if !sink.connected() && !st.buffer.is_empty() && may_connect {
            st.connect(sink);
        }
        if sink.connected() {
            st.flush(sink);
        }
        if last_round {
            break;
        }
    }
    st.report.dropped = st.buffer.dropped_total();
    if !st.buffer.is_empty() {
        let n = st.buffer.len();
        st.say(&format!("{n} samples not written when stopping"));
    }
    st.report.cpu = thread_cpu_time().saturating_sub(st.cpu_start);
    st.report
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// Samples stamped 1, 2, 3, ...; `taken` is shared with the sink.
    struct Counting(Rc<Cell<i64>>);

    impl Source for Counting {
        fn prime(&mut self) -> Result<(), String> {
            Ok(())
        }
        fn sample(&mut self, _ts_ms: i64) -> (Sample, Vec<String>) {
            let n = self.0.get() + 1;
            self.0.set(n);
            let mut s = Sample::new(n);
            s.push("x", None, n as f64);
            (s, vec!["unreadable".into()])
        }
    }

    /// Down while samples `down` are the newest taken; refuses `refuse`.
    struct Flaky {
        taken: Rc<Cell<i64>>,
        down: std::ops::RangeInclusive<i64>,
        refuse: i64,
        up: bool,
        written: Vec<i64>,
    }

    impl Sink for Flaky {
        fn connected(&self) -> bool {
            self.up
        }
        fn connect(&mut self) -> Result<(), String> {
            if self.down.contains(&self.taken.get()) {
                return Err("refused".into());
            }
            self.up = true;
            Ok(())
        }
        fn write(&mut self, s: &Sample) -> Result<(), WriteError> {
            if self.down.contains(&self.taken.get()) {
                return Err(WriteError::Unavailable("reset".into()));
            }
            if s.ts_ms == self.refuse {
                return Err(WriteError::Refused("bad".into()));
            }
            self.written.push(s.ts_ms);
            Ok(())
        }
        fn disconnect(&mut self) {
            self.up = false;
        }
        fn describe(&self) -> String {
            "flaky".into()
        }
    }

    #[test]
    fn an_outage_drops_the_oldest_samples_and_says_so() {
        let taken = Rc::new(Cell::new(0));
        let mut sink = Flaky {
            taken: Rc::clone(&taken),
            down: 2..=7,
            refuse: 9,
            up: false,
            written: Vec::new(),
        };
        let mut cfg = LoopConfig::new(Duration::from_millis(1));
        cfg.buffer_samples_max = 3;
        cfg.samples_max = Some(10);
        // No wait between attempts: every sample while down tries to
        // connect, so the outcome does not depend on timing.
        cfg.backoff_min = Duration::ZERO;
        cfg.backoff_max = Duration::ZERO;
        cfg.self_prefix = None;
        let mut logs = Vec::new();
        let report = run_loop(
            &cfg,
            &mut Counting(Rc::clone(&taken)),
            &mut sink,
            &Stop::new(),
            &mut |l: &str| logs.push(l.to_string()),
        );
        // 1 written; 2..=7 taken while down, the buffer of 3 keeping the
        // newest (2, 3, 4 dropped, then 5 when 8 arrives); 9 refused.
        assert_eq!(sink.written, [1, 6, 7, 8, 10]);
        assert_eq!(
            (
                report.samples,
                report.written,
                report.dropped,
                report.refused
            ),
            (10, 5, 4, 1)
        );
        assert_eq!(report.points_written, 5);
        let text = logs.join("\n");
        assert!(text.contains("lost flaky: reset"), "{text}");
        assert!(text.contains("reconnected to flaky"), "{text}");
        assert!(
            text.contains("wrote 3 buffered samples; dropped 4"),
            "{text}"
        );
        assert!(text.contains("sample refused, dropped: bad"), "{text}");
        assert_eq!(text.matches("unreadable (reported once)").count(), 1);
    }

    #[test]
    fn a_stopped_loop_ends_at_once() {
        let stop = Stop::new();
        stop.stop();
        let taken = Rc::new(Cell::new(0));
        let mut sink = Flaky {
            taken: Rc::clone(&taken),
            down: 0..=0,
            refuse: 0,
            up: false,
            written: Vec::new(),
        };
        let cfg = LoopConfig::new(Duration::from_secs(3600));
        let r = run_loop(
            &cfg,
            &mut Counting(taken),
            &mut sink,
            &stop,
            &mut |_: &str| {},
        );
        assert_eq!((r.samples, r.written), (0, 0));
    }
}
