//! The monitoring loops that run inside `cityhall server`: self-monitoring
//! (`--self-monitor`, on by default) and the host agent
//! (`--agent-interval`, off by default), each on its own thread, writing
//! straight into the server's time-series layer (no connection, nothing
//! to reconnect; a failed write is kept in the loop's buffer and retried).
//!
//! [`Monitors::stop`] ends both and waits for them; the server calls it
//! before it stops its event loops and closes the database.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::ts::TimeSeries;

use super::run::{run_loop, LocalSink, LoopConfig};
use super::sample::Sampler;
use super::self_monitor::{MetricsReader, MetricsSource};
use super::stop::Stop;

/// The running loops.
#[derive(Debug)]
pub struct Monitors {
    stop: Arc<Stop>,
    threads: Vec<JoinHandle<()>>,
}

impl Monitors {
    /// Starts self-monitoring every `self_interval` (none if zero), reading
    /// the server through `reader`, and the host agent every
    /// `agent_interval` (none if `None` or zero).
    pub fn start(
        ts: &TimeSeries,
        self_interval: Duration,
        agent_interval: Option<Duration>,
        reader: impl MetricsReader,
    ) -> std::io::Result<Monitors> {
        let stop = Arc::new(Stop::new());
        let mut m = Monitors {
            stop: Arc::clone(&stop),
            threads: Vec::new(),
        };
        if !self_interval.is_zero() {
            let mut cfg = LoopConfig::new(self_interval);
            cfg.self_prefix = None;
            cfg.name = "cityhall self-monitor";
            let (ts, stop) = (ts.clone(), Arc::clone(&stop));
            let t = std::thread::Builder::new()
                .name("self-monitor".into())
                .spawn(move || {
                    let mut source = MetricsSource::new(reader);
                    let mut log = |l: &str| eprintln!("{l}");
                    let r = run_loop(&cfg, &mut source, &mut LocalSink::new(ts), &stop, &mut log);
                    eprintln!("cityhall self-monitor: stopped: {}", r.line());
                });
            match t {
                Ok(t) => m.threads.push(t),
                Err(e) => {
                    m.stop();
                    return Err(e);
                }
            }
        }
        if let Some(interval) = agent_interval.filter(|d| !d.is_zero()) {
            let cfg = LoopConfig::new(interval);
            let (ts, stop) = (ts.clone(), Arc::clone(&stop));
            let t = std::thread::Builder::new()
                .name("agent".into())
                .spawn(move || {
                    let mut log = |l: &str| eprintln!("{l}");
                    let r = run_loop(
                        &cfg,
                        &mut Sampler::default(),
                        &mut LocalSink::new(ts),
                        &stop,
                        &mut log,
                    );
                    eprintln!("cityhall agent: stopped: {}", r.line());
                });
            match t {
                Ok(t) => m.threads.push(t),
                Err(e) => {
                    m.stop();
                    return Err(e);
                }
            }
        }
        Ok(m)
    }

    /// Stops the loops and waits for them.
    pub fn stop(&mut self) {
        self.stop.stop();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Monitors {
    fn drop(&mut self) {
        self.stop();
    }
}
