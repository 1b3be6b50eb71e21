//! The typed calls of [`Client`]: one request, one answer each.
//!
//! Every call flushes whatever was queued before it and expects the
//! pipeline to be empty, so that the answer it reads is its own; mixing
//! typed calls with unanswered [`Client::send`]s is refused.

use std::borrow::Cow;

use crate::batch::WriteBatch;
use crate::error::{Error, Result};
use crate::metrics::MetricsSnapshot;
use crate::protocol::{Request, Response, ScanPage, ScanRange};
use crate::types::prefix_successor;

use super::{server_error, unexpected, Client};

impl Client {
    /// Sends one request and returns its answer; an ERROR answer becomes
    /// an `Err`.
    pub fn call(&mut self, request: &Request<'_>) -> Result<Response> {
        if self.in_flight() != 0 {
            return Err(Error::InvalidArgument(format!(
                "{} answers are still pending; receive them before a typed call",
                self.in_flight()
            )));
        }
        self.send(request)?;
        match self.recv()? {
            Response::Error(e) => Err(server_error(e)),
            other => Ok(other),
        }
    }

    /// Checks that the server answers.
    pub fn ping(&mut self) -> Result<()> {
        match self.call(&Request::Ping)? {
            Response::Pong => Ok(()),
            other => Err(unexpected("PONG", &other)),
        }
    }

    /// Sets `key` to `value`; returns once the write is durable.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        expect_ok(self.call(&Request::Put { key, value })?)
    }

    /// Reads `key`.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.call(&Request::Get { key })? {
            Response::Value(v) => Ok(Some(v)),
            Response::NotFound => Ok(None),
            other => Err(unexpected("VALUE or NOT_FOUND", &other)),
        }
    }

    /// Deletes `key` (deleting a missing key succeeds).
    pub fn delete(&mut self, key: &[u8]) -> Result<()> {
        expect_ok(self.call(&Request::Delete { key })?)
    }

    /// Applies `batch` atomically.
    pub fn write_batch(&mut self, batch: &WriteBatch) -> Result<()> {
        expect_ok(self.call(&Request::WriteBatch(Cow::Borrowed(batch)))?)
    }

    /// Reads many keys; one entry per key, in order.
    pub fn mget(&mut self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        match self.call(&Request::MGet {
            keys: keys.to_vec(),
        })? {
            Response::Values(v) if v.len() == keys.len() => Ok(v),
            Response::Values(v) => Err(Error::Protocol(format!(
                "MGET of {} keys answered with {} values",
                keys.len(),
                v.len()
            ))),
            other => Err(unexpected("VALUES", &other)),
        }
    }

    /// Reads one page of at most `limit` pairs.
    pub fn scan_page(&mut self, range: ScanRange<'_>, limit: u32) -> Result<ScanPage> {
        match self.call(&Request::Scan { range, limit })? {
            Response::ScanPage(p) => Ok(p),
            other => Err(unexpected("SCAN_PAGE", &other)),
        }
    }

    /// Reads up to `limit` pairs of `range` in key order, following
    /// continuations across as many pages as it takes.
    pub fn scan(&mut self, range: ScanRange<'_>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let end: Option<Vec<u8>> = match range {
            ScanRange::Range { end, .. } => end.map(<[u8]>::to_vec),
            ScanRange::Prefix(p) => prefix_successor(p),
        };
        let mut out = Vec::new();
        let mut next: Option<Vec<u8>> = None;
        while out.len() < limit {
            let want = (limit - out.len()).min(self.limits().scan_limit_max).max(1);
            let want = u32::try_from(want).unwrap_or(u32::MAX);
            let page = match &next {
                None => self.scan_page(range, want)?,
                Some(start) => self.scan_page(
                    ScanRange::Range {
                        start,
                        end: end.as_deref(),
                    },
                    want,
                )?,
            };
            if page.continuation.is_some() && page.pairs.is_empty() {
                // A pair too large for one page cannot be returned by SCAN.
                return Err(Error::Protocol(
                    "server returned an empty SCAN page with a continuation".into(),
                ));
            }
            out.extend(page.pairs);
            match page.continuation {
                Some(c) => next = Some(c),
                None => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Reads the server's and the engine's metrics.
    pub fn metrics(&mut self) -> Result<MetricsSnapshot> {
        match self.call(&Request::Metrics)? {
            Response::Metrics(m) => Ok(m),
            other => Err(unexpected("METRICS", &other)),
        }
    }
}

impl Client {
    /// Flushes the server's memtables and compacts the user keys in
    /// `[start, end]` (both inclusive, `None`: unbounded) down the levels;
    /// returns when the server is done, like `ldb compact`.
    pub fn compact(&mut self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<()> {
        expect_ok(self.call(&Request::Compact { start, end })?)
    }
}

fn expect_ok(resp: Response) -> Result<()> {
    match resp {
        Response::Ok => Ok(()),
        other => Err(unexpected("OK", &other)),
    }
}
