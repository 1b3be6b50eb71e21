//! The daemon: `cityhall server`.
//!
//! [`run`] owns the life of the process: it blocks the stop signals, binds
//! the listening socket, opens the database, starts one tokio-uring event
//! loop per core ([`worker`]), prints one line saying where it listens,
//! tells systemd it is ready, and waits for SIGTERM or SIGINT. Then it
//! stops accepting, lets connections finish their in-flight requests,
//! closes the database (final sync) and returns.
//!
//! Threads: the main thread only waits for signals; each event loop owns
//! its connections (`!Send` tasks on its own runtime); the engine's WAL
//! thread wakes the loops' write futures. Shared state is [`Shared`]:
//! the database handle, the limits, the auth token and the stats.
//!
//! tokio-uring is named only here (and in `io/`): see DESIGN.md.

pub mod config;
pub mod connection;
pub mod handler;
pub mod listener;
pub mod notify;
pub mod signals;
pub mod stats;
mod stream;
mod ts_exec;
pub mod worker;

use std::sync::Arc;

use tokio::sync::watch;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::options::Durability;
use crate::protocol::Limits;

pub use config::ServerConfig;
use listener::{Bound, ListenAddr};
use signals::StopSignals;
use stats::ServerStats;

/// What every connection of every event loop shares.
#[derive(Debug)]
pub struct Shared {
    /// The database.
    pub db: Db,
    /// The protocol bounds (derived from the engine options).
    pub limits: Limits,
    /// The token every HELLO must carry, if one is configured.
    pub auth_token: Option<Vec<u8>>,
    /// The server's metrics.
    pub stats: ServerStats,
    /// The time-series layer over `db`.
    pub ts: crate::ts::TimeSeries,
    /// The configuration the server runs with.
    pub config: ServerConfig,
    /// One COMPACT runs at a time; later ones wait their turn (each holds
    /// a thread while it runs).
    pub compact_turn: tokio::sync::Semaphore,
}

impl Shared {
    /// Every metric of the server, the engine and the time-series layer.
    pub fn metrics(&self) -> crate::metrics::MetricsSnapshot {
        let mut m = crate::metrics::MetricsSnapshot::default();
        self.stats.report(&mut m);
        m.metrics.extend(self.db.metrics().metrics);
        self.ts.report(&mut m);
        m
    }

    /// The histogram of the server or the engine named `name` (as in
    /// [`Shared::metrics`]) as recorded `(value, count)` pairs, for
    /// figures per interval.
    pub fn histogram_recorded(&self, name: &str) -> Option<Vec<(u64, u64)>> {
        let op = name
            .strip_prefix("server.")
            .and_then(|r| r.strip_suffix(".latency_us"));
        match op {
            Some(op) => crate::protocol::Opcode::ALL
                .iter()
                .find(|o| o.name() == op)
                .map(|o| self.stats.op(*o).latency_us.recorded()),
            None => self.db.histogram_recorded(name),
        }
    }
}

impl crate::agent::self_monitor::MetricsReader for Arc<Shared> {
    fn metrics(&self) -> crate::metrics::MetricsSnapshot {
        Shared::metrics(self)
    }
    fn recorded(&self, histogram: &str) -> Option<Vec<(u64, u64)>> {
        self.histogram_recorded(histogram)
    }
}

/// Runs the daemon until SIGTERM or SIGINT. Must be called from the main
/// thread before any other thread is started (see [`signals`]).
pub fn run(config: ServerConfig) -> Result<()> {
    let signals = StopSignals::block()
        .map_err(|e| Error::io("block signals", std::path::Path::new("SIGTERM/SIGINT"), e))?;
    raise_fd_limit();
    let auth_token = config.load_auth_token()?;
    let addr = ListenAddr::parse(&config.listen)?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| Error::io("create data dir", &config.data_dir, e))?;
    let bound = listener::bind(&addr, auth_token.is_some())?;
    let Started {
        shared,
        stop_tx,
        workers,
        threads,
    } = start(config, auth_token, &bound)?;
    let db = shared.db.clone();
    let durability = match shared.config.options.durability {
        Durability::Sync => "sync".to_string(),
        Durability::Relaxed { interval_ms } => format!("relaxed, sync every {interval_ms} ms"),
    };
    eprintln!(
        "cityhall: listening on {} (data dir {}, io backend {}, durability {durability}, {threads} event loops)",
        bound.display_addr(),
        shared.config.data_dir.display(),
        db.backend(),
    );
    let mut monitors = match crate::agent::embedded::Monitors::start(
        &shared.ts,
        shared.config.self_monitor_interval,
        Some(shared.config.agent_interval),
        Arc::clone(&shared),
    ) {
        Ok(m) => m,
        Err(e) => {
            let _ = stop_tx.send(true);
            workers.join();
            shared.ts.close();
            let _ = db.close();
            return Err(Error::io(
                "start monitoring thread",
                std::path::Path::new("-"),
                e,
            ));
        }
    };
    if let Err(e) = notify::notify("READY=1") {
        eprintln!("cityhall: warning: cannot notify systemd of readiness: {e}");
    }

    let waited = signals.wait();
    let _ = notify::notify("STOPPING=1");
    match &waited {
        Ok(sig) => eprintln!(
            "cityhall: {} received; finishing in-flight requests",
            signals::name(*sig)
        ),
        Err(e) => eprintln!("cityhall: waiting for signals failed ({e}); stopping"),
    }
    monitors.stop();
    let _ = stop_tx.send(true);
    workers.join();
    if let Bound::Unix(_, path) = &bound {
        let _ = std::fs::remove_file(path);
    }
    shared.ts.close();
    drop(shared);
    db.close()?;
    eprintln!("cityhall: stopped");
    Ok(())
}

/// A database with its time-series layer, served by event loops.
struct Started {
    shared: Arc<Shared>,
    stop_tx: watch::Sender<bool>,
    workers: worker::Workers,
    threads: usize,
}

/// Opens the database and the time-series layer and starts the event loops
/// on `bound`; on failure whatever was started is stopped and closed again.
fn start(config: ServerConfig, auth_token: Option<Vec<u8>>, bound: &Bound) -> Result<Started> {
    let db = Db::open(&config.data_dir, config.options.clone())?;
    let ts = match crate::ts::TimeSeries::open(db.clone(), crate::ts::TsOptions::default()) {
        Ok(ts) => ts,
        Err(e) => {
            let _ = db.close();
            return Err(e);
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let threads = config.thread_count();
    let shared = Arc::new(Shared {
        db: db.clone(),
        limits: Limits::for_options(&config.options),
        auth_token,
        stats: ServerStats::default(),
        ts,
        config,
        compact_turn: tokio::sync::Semaphore::new(1),
    });
    match worker::Workers::start(threads, &shared, bound, &stop_rx) {
        Ok(workers) => Ok(Started {
            shared,
            stop_tx,
            workers,
            threads,
        }),
        Err(e) => {
            let _ = stop_tx.send(true);
            shared.ts.close();
            let _ = db.close();
            Err(e)
        }
    }
}

/// Raises the soft open-file limit to the hard limit, so that
/// `connections_max` connections fit.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out-pointer for getrlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` holds values read from getrlimit, soft <= hard.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
}

/// A server run inside the calling process, without signal handling or
/// readiness notification: for tests that give the engine a simulated file
/// system (`config.options.fs`) and inject faults under a live server.
/// The data directory is not created (the engine's file system does that).
#[derive(Debug)]
pub struct InProcess {
    /// The address it listens on.
    pub addr: String,
    /// What its connections share (the database among it).
    pub shared: Arc<Shared>,
    stop_tx: watch::Sender<bool>,
    workers: Option<worker::Workers>,
}

impl std::fmt::Debug for worker::Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Workers")
    }
}

/// Starts a server in this process (see [`InProcess`]).
pub fn start_in_process(config: ServerConfig) -> Result<InProcess> {
    let auth_token = config.load_auth_token()?;
    let bound = listener::bind(&ListenAddr::parse(&config.listen)?, auth_token.is_some())?;
    let Started {
        shared,
        stop_tx,
        workers,
        ..
    } = start(config, auth_token, &bound)?;
    Ok(InProcess {
        addr: bound.display_addr(),
        shared,
        stop_tx,
        workers: Some(workers),
    })
}

impl InProcess {
    /// Stops accepting, lets connections finish, closes the database.
    pub fn stop(mut self) -> Result<()> {
        self.halt();
        self.shared.ts.close();
        self.shared.db.close()
    }

    fn halt(&mut self) {
        let _ = self.stop_tx.send(true);
        if let Some(w) = self.workers.take() {
            w.join();
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.halt();
    }
}
