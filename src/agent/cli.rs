//! `cityhall agent [--addr ADDR] [--interval 10s] [--once]`: the agent as
//! its own process, writing to a server over the client protocol.
//!
//! `--once` takes one sample (after a CPU reading `min(interval, 1 s)`
//! earlier, so that CPU usage is in it), writes it and exits: 0 once it is
//! durable, 3 if it could not be written. Without it the agent runs until
//! SIGTERM or SIGINT, then prints a summary line (samples, points, drops,
//! CPU time per sample) on stderr.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::client::{ConnectOptions, DEFAULT_ADDR};
use crate::server::signals::StopSignals;
use crate::ts::time::parse_duration_ms;

use super::run::{run_loop, LoopConfig, TcpSink};
use super::sample::Sampler;
use super::stop::Stop;

/// Arguments of `cityhall agent`.
#[derive(Args, Debug)]
pub struct AgentArgs {
    /// Server address: host:port or unix:/path.
    #[arg(long, env = "CITYHALL_ADDR", default_value = DEFAULT_ADDR, value_name = "ADDR")]
    pub addr: String,
    /// File holding the server's auth token.
    #[arg(long, env = "CITYHALL_AUTH_TOKEN_FILE", value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// Time between samples (500ms, 10s, 1m, ...).
    #[arg(long, default_value = "10s", value_name = "D")]
    pub interval: String,
    /// Take and write one sample, then exit.
    #[arg(long, conflicts_with = "samples")]
    pub once: bool,
    /// Exit after N samples [default: run until stopped].
    #[arg(long, value_name = "N")]
    pub samples: Option<u64>,
    /// Most samples kept while the server is unreachable [default: an
    /// hour of samples, at least 60].
    #[arg(long, value_name = "N")]
    pub buffer: Option<usize>,
}

/// Parses a positive interval (`10s`).
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let ms = parse_duration_ms(text)?;
    if ms <= 0 {
        return Err(format!("interval {text:?} must be positive"));
    }
    Ok(Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX)))
}

/// Runs `cityhall agent`; returns the exit code.
pub fn run(args: AgentArgs) -> u8 {
    let interval = match parse_interval(&args.interval) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cityhall: agent: --interval: {e}");
            return 2;
        }
    };
    let mut options = ConnectOptions {
        io_timeout: Some(interval.max(Duration::from_secs(10))),
        ..ConnectOptions::default()
    };
    if let Some(path) = &args.auth_token_file {
        match crate::client::read_auth_token(path) {
            Ok(token) => options.auth_token = token,
            Err(e) => {
                eprintln!("cityhall: agent: {e}");
                return 3;
            }
        }
    }
    let stop = Arc::new(Stop::new());
    match StopSignals::block() {
        Ok(signals) => {
            let s = Arc::clone(&stop);
            std::thread::spawn(move || {
                let _ = signals.wait();
                s.stop();
            });
        }
        Err(e) => eprintln!("cityhall: agent: warning: cannot block SIGTERM/SIGINT: {e}"),
    }
    let mut cfg = LoopConfig::new(interval);
    if args.once {
        cfg.interval = interval.min(Duration::from_secs(1));
        cfg.samples_max = Some(1);
    } else {
        cfg.samples_max = args.samples;
    }
    if let Some(n) = args.buffer {
        cfg.buffer_samples_max = n;
    }
    let mut sink = TcpSink::new(&args.addr, options);
    let mut sampler = Sampler::default();
    if !args.once {
        eprintln!(
            "cityhall agent: sampling every {} ms into {}",
            interval.as_millis(),
            args.addr
        );
    }
    let mut log = |m: &str| eprintln!("{m}");
    let report = run_loop(&cfg, &mut sampler, &mut sink, &stop, &mut log);
    if args.once {
        if report.written == 1 {
            println!("OK {} points", report.points_written);
            0
        } else {
            eprintln!(
                "cityhall: agent: the sample was not written to {}",
                args.addr
            );
            3
        }
    } else {
        eprintln!("cityhall agent: stopped: {}", report.line());
        0
    }
}
