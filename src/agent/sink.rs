//! [`Sink`]: where the agent loop writes samples — a server over the client
//! protocol ([`TcpSink`]) or the time-series layer of this process
//! ([`LocalSink`]) — and how a failed write is told apart: no server now
//! (keep the sample, retry) or a refusal (drop it, it would fail again).

use crate::client::{Client, ConnectOptions};
use crate::error::Error;
use crate::protocol::ts::TS_ADD_SERIES_MAX;
use crate::ts::{Point, SeriesKey, SeriesPoints, TimeSeries};

use super::sample::Sample;

/// Why a write did not happen.
#[derive(Debug)]
pub enum WriteError {
    /// No server to write to now; try again later.
    Unavailable(String),
    /// The server refused the sample; it would refuse it again.
    Refused(String),
}

impl WriteError {
    fn from_error(e: Error) -> Self {
        match e {
            Error::InvalidArgument(_) | Error::LimitExceeded { .. } => {
                WriteError::Refused(e.to_string())
            }
            other => WriteError::Unavailable(other.to_string()),
        }
    }
}

/// Where samples go.
pub trait Sink {
    /// Whether a write can be attempted now.
    fn connected(&self) -> bool;
    /// Connects (a no-op where there is nothing to connect).
    fn connect(&mut self) -> Result<(), String>;
    /// Writes one sample, durably.
    fn write(&mut self, s: &Sample) -> Result<(), WriteError>;
    /// Drops the connection after a failure.
    fn disconnect(&mut self);
    /// What it writes to, for messages.
    fn describe(&self) -> String;
}

/// A server reached over TCP (or a Unix socket) with the client.
#[derive(Debug)]
pub struct TcpSink {
    addr: String,
    options: ConnectOptions,
    client: Option<Client>,
}

impl TcpSink {
    /// A sink for the server at `addr`.
    pub fn new(addr: &str, options: ConnectOptions) -> Self {
        TcpSink {
            addr: addr.to_string(),
            options,
            client: None,
        }
    }
}

impl Sink for TcpSink {
    fn connected(&self) -> bool {
        self.client.is_some()
    }
    fn connect(&mut self) -> Result<(), String> {
        let c = Client::connect_with(&self.addr, &self.options).map_err(|e| e.to_string())?;
        self.client = Some(c);
        Ok(())
    }
    fn write(&mut self, s: &Sample) -> Result<(), WriteError> {
        let Some(c) = self.client.as_mut() else {
            return Err(WriteError::Unavailable("not connected".into()));
        };
        for batch in s.batches(TS_ADD_SERIES_MAX) {
            c.ts_add(batch).map_err(WriteError::from_error)?;
        }
        Ok(())
    }
    fn disconnect(&mut self) {
        self.client = None;
    }
    fn describe(&self) -> String {
        self.addr.clone()
    }
}

/// The time-series layer of this process (the server running the agent
/// or its own monitoring). After a failed write it counts as
/// disconnected, so that retries follow the backoff.
#[derive(Clone, Debug)]
pub struct LocalSink {
    ts: TimeSeries,
    ok: bool,
}

impl LocalSink {
    /// A sink writing into `ts`.
    pub fn new(ts: TimeSeries) -> Self {
        LocalSink { ts, ok: true }
    }
}

impl Sink for LocalSink {
    fn connected(&self) -> bool {
        self.ok
    }
    fn connect(&mut self) -> Result<(), String> {
        self.ok = true;
        Ok(())
    }
    fn write(&mut self, s: &Sample) -> Result<(), WriteError> {
        let points: Vec<[Point; 1]> = s
            .points
            .iter()
            .map(|(_, v)| {
                [Point {
                    ts: s.ts_ms,
                    value: *v,
                }]
            })
            .collect();
        let batch: Vec<SeriesPoints<'_>> = s
            .points
            .iter()
            .zip(&points)
            .map(|((k, _), p): (&(SeriesKey, f64), _)| SeriesPoints {
                series: k,
                points: p,
            })
            .collect();
        self.ts.add(&batch).map_err(WriteError::from_error)
    }
    fn disconnect(&mut self) {
        self.ok = false;
    }
    fn describe(&self) -> String {
        "this server".into()
    }
}
