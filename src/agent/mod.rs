//! The monitoring agent: this machine's metrics, read from /proc and /sys,
//! written into CityHall as time series.
//!
//! - Parsers, one file per source, are pure functions over the text of a
//!   file ([`cpu`], [`mem`], [`diskio`], [`net`], [`fs`], [`system`]), so
//!   they are tested against captured files (`tests/data/proc/`).
//! - [`sample::Sampler`] reads the files and builds one [`sample::Sample`]:
//!   every series' point at one time, written as one TS_ADD batch.
//! - [`run::run_loop`] samples every interval into a bounded buffer and
//!   writes it to a [`sink::Sink`] (a server over TCP, or the server's own
//!   time-series layer), reconnecting with backoff; [`cli`] is
//!   `cityhall agent`.
//! - [`self_monitor`] turns the server's metrics into `cityhall.*` series;
//!   [`embedded`] runs it, and the host agent, inside the server.
//! - [`top`] is `cityhall top`, the terminal view of both.
//!
//! Threads: a `Sampler` is used by one thread at a time.

pub mod buffer;
pub mod cli;
pub mod cpu;
pub mod diskio;
pub mod embedded;
pub mod fs;
pub mod interval;
pub mod mem;
pub mod net;
pub mod parse;
pub mod run;
pub mod sample;
pub mod self_monitor;
pub mod sink;
pub mod stop;
pub mod system;
pub mod top;

pub use parse::ParseError;
pub use sample::{Sample, Sampler};
