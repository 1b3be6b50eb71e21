//! Executing requests against the engine and queueing their answers in
//! request order.
//!
//! [`Answers`] is a connection's output queue. Writes (PUT, DELETE,
//! WRITE_BATCH) are handed to the engine with `write_async` as soon as they
//! are decoded and kept pending, so a run of pipelined writes joins one WAL
//! group commit; the event loop is never blocked while the group syncs.
//! Before any other answer is queued, the pending writes are awaited in
//! order and their answers queued first. That keeps answers in request
//! order and gives every connection read-your-writes: a GET after a PUT on
//! the same connection sees it.
//!
//! Reads (GET, MGET, SCAN) are served inline: the engine answers them from
//! memory and mapped files without blocking on IO for long.
//!
//! COMPACT (flush, then compact a key range; seconds to minutes of IO) is
//! never run on the event loop: it waits for its turn (one at a time), runs
//! on a thread of its own, and the connection awaits its answer while the
//! event loop serves the other connections.

use std::collections::VecDeque;
use std::time::Instant;

use crate::batch::WriteBatch;
use crate::db::WriteFuture;
use crate::error::Error;
use crate::protocol::opcode::ResponseOpcode;
use crate::protocol::response::{
    write_empty, write_error, write_metrics, write_value, ScanPageEncoder, ValuesEncoder,
};
use crate::protocol::{ErrorCode, Opcode, ProtocolError, RawFrame, Request, ScanRange};
use crate::types::prefix_successor;

use super::Shared;

/// Pairs fetched from the engine per call while filling a SCAN page, at
/// first; later calls are sized by the pairs seen so far.
const SCAN_CHUNK_PAIRS_INITIAL: usize = 64;
/// Most pairs fetched per engine call.
const SCAN_CHUNK_PAIRS_MAX: usize = 1_024;

struct PendingWrite {
    future: WriteFuture,
    op: Opcode,
    started: Instant,
}

/// A connection's queued answers, in request order.
#[derive(Default)]
pub(crate) struct Answers {
    /// Encoded answers not yet written to the socket.
    pub out: Vec<u8>,
    pending: VecDeque<PendingWrite>,
    /// Answers queued or pending since the last write to the socket.
    pub count: usize,
}

impl Answers {
    /// Awaits every pending write in order and queues its answer.
    pub async fn settle(&mut self, shared: &Shared) {
        while let Some(p) = self.pending.pop_front() {
            let result = p.future.await;
            let stats = shared.stats.op(p.op);
            match result {
                Ok(()) => write_empty(&mut self.out, ResponseOpcode::Ok),
                Err(e) => {
                    stats.errors.inc();
                    write_error(&mut self.out, &engine_error(&e));
                }
            }
            stats.requests.inc();
            stats.latency_us.record_since(p.started);
        }
    }

    /// Queues an error answer (after any pending writes).
    pub async fn error(&mut self, shared: &Shared, e: &ProtocolError) {
        self.settle(shared).await;
        write_error(&mut self.out, e);
        self.count += 1;
    }
}

/// Decodes and executes one request frame, queueing its answer.
pub(crate) async fn handle(shared: &Shared, answers: &mut Answers, frame: RawFrame<'_>) {
    let started = Instant::now();
    let request = match Request::decode(frame, &shared.limits) {
        Ok(r) => r,
        Err(e) => {
            shared.stats.bad_frames.inc();
            answers.error(shared, &e).await;
            return;
        }
    };
    let op = request.opcode();
    answers.count += 1;
    let batch = match request {
        Request::Put { key, value } => {
            let mut b = WriteBatch::new();
            b.put(key, value);
            Some(b)
        }
        Request::Delete { key } => {
            let mut b = WriteBatch::new();
            b.delete(key);
            Some(b)
        }
        Request::WriteBatch(b) => Some(b.into_owned()),
        Request::Ts(ts) => {
            if let Some(future) = super::ts_exec::execute(shared, answers, ts, op, started).await {
                answers.pending.push_back(PendingWrite {
                    future,
                    op,
                    started,
                });
            }
            None
        }
        Request::Compact { start, end } => {
            answers.settle(shared).await;
            let result = compact(shared, start, end).await;
            let stats = shared.stats.op(op);
            stats.requests.inc();
            match result {
                Ok(()) => write_empty(&mut answers.out, ResponseOpcode::Ok),
                Err(e) => {
                    stats.errors.inc();
                    write_error(&mut answers.out, &e);
                }
            }
            stats.latency_us.record_since(started);
            None
        }
        other => {
            answers.settle(shared).await;
            let ok = execute_read(shared, &mut answers.out, other);
            let stats = shared.stats.op(op);
            stats.requests.inc();
            if !ok {
                stats.errors.inc();
            }
            stats.latency_us.record_since(started);
            None
        }
    };
    if let Some(batch) = batch {
        answers.pending.push_back(PendingWrite {
            future: shared.db.write_async(batch),
            op,
            started,
        });
    }
}

/// Serves a request that does not write; returns false if it answered
/// with an ERROR.
fn execute_read(shared: &Shared, out: &mut Vec<u8>, request: Request<'_>) -> bool {
    let result = match request {
        Request::Ping => {
            write_empty(out, ResponseOpcode::Pong);
            Ok(())
        }
        Request::Get { key } => match shared.db.get(key) {
            Ok(Some(v)) => {
                write_value(out, &v);
                Ok(())
            }
            Ok(None) => {
                write_empty(out, ResponseOpcode::NotFound);
                Ok(())
            }
            Err(e) => Err(engine_error(&e)),
        },
        Request::MGet { keys } => mget(shared, out, &keys),
        Request::Scan { range, limit } => scan(shared, out, range, limit as usize),
        Request::Metrics => {
            write_metrics(out, &shared.metrics());
            Ok(())
        }
        Request::Hello(_) => Err(ProtocolError::new(
            ErrorCode::InvalidArgument,
            "HELLO is only valid as the first frame of a connection",
        )),
        Request::Put { .. }
        | Request::Delete { .. }
        | Request::WriteBatch(_)
        | Request::Ts(_)
        | Request::Compact { .. } => Err(ProtocolError::new(
            ErrorCode::Internal,
            "a write, compact or time-series request reached the read path",
        )),
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            write_error(out, &e);
            false
        }
    }
}

/// Flushes and compacts `[start, end]` on a thread of its own (like
/// `ldb compact`), one request at a time; resolves when it is done. A
/// compaction of the whole database first seals every time-series head
/// into its chunks, so that nothing is left in the per-point form.
async fn compact(
    shared: &Shared,
    start: Option<&[u8]>,
    end: Option<&[u8]>,
) -> Result<(), ProtocolError> {
    let _turn = shared
        .compact_turn
        .acquire()
        .await
        .map_err(|_| ProtocolError::new(ErrorCode::ShuttingDown, "the server is stopping"))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let db = shared.db.clone();
    let ts = (start.is_none() && end.is_none()).then(|| shared.ts.clone());
    let (start, end) = (start.map(<[u8]>::to_vec), end.map(<[u8]>::to_vec));
    std::thread::Builder::new()
        .name("cityhall-compact-request".into())
        .spawn(move || {
            let sealed = ts.map_or(Ok(()), |ts| ts.seal_all());
            let _ =
                tx.send(sealed.and_then(|()| db.compact_range(start.as_deref(), end.as_deref())));
        })
        .map_err(|e| {
            ProtocolError::new(
                ErrorCode::Internal,
                format!("cannot start a thread for the compaction: {e}"),
            )
        })?;
    match rx.await {
        Ok(result) => result.map_err(|e| engine_error(&e)),
        Err(_) => Err(ProtocolError::new(
            ErrorCode::Internal,
            "the compaction thread ended without an answer",
        )),
    }
}

fn mget(shared: &Shared, out: &mut Vec<u8>, keys: &[&[u8]]) -> Result<(), ProtocolError> {
    let frame_max = shared.limits.frame_size_bytes_max;
    let enc = ValuesEncoder::begin(out, keys.len());
    for key in keys {
        let value = match shared.db.get(key) {
            Ok(v) => v,
            Err(e) => {
                enc.abandon(out);
                return Err(engine_error(&e));
            }
        };
        ValuesEncoder::push(out, value.as_deref());
        if enc.frame_bytes(out) > frame_max {
            enc.abandon(out);
            return Err(ProtocolError::new(
                ErrorCode::ResponseTooLarge,
                format!(
                    "the values of these {} keys exceed frame_size_bytes_max {frame_max}; ask for fewer keys",
                    keys.len()
                ),
            ));
        }
    }
    enc.finish(out);
    Ok(())
}

/// Fills one SCAN page: at most `limit` pairs and at most a frame's worth
/// of bytes; the first pair left out becomes the continuation. The engine
/// is asked for pairs in chunks, so memory stays near one page even when
/// `limit` is large; all chunks read one snapshot, so a page is consistent.
fn scan(
    shared: &Shared,
    out: &mut Vec<u8>,
    range: ScanRange<'_>,
    limit: usize,
) -> Result<(), ProtocolError> {
    let (start, end) = match range {
        ScanRange::Range { start, end } => (start, end.map(<[u8]>::to_vec)),
        ScanRange::Prefix(p) => (p, prefix_successor(p)),
    };
    let limits = &shared.limits;
    let budget = limits
        .frame_size_bytes_max
        .saturating_sub(ScanPageEncoder::trailer_bytes(limits.key_size_bytes_max));
    let out_start = out.len();
    let mut enc = ScanPageEncoder::begin(out);
    let mut cursor = start.to_vec();
    let mut returned = 0usize;
    let mut continuation = None;
    let mut chunk = SCAN_CHUNK_PAIRS_INITIAL.min(limit + 1);
    let view = shared.db.snapshot();
    'pages: loop {
        let want = chunk.min(limit + 1 - returned);
        let pairs = match view.scan(&cursor, end.as_deref(), want) {
            Ok(p) => p,
            Err(e) => {
                out.truncate(out_start);
                return Err(engine_error(&e));
            }
        };
        let exhausted = pairs.len() < want;
        let mut last = None;
        for (k, v) in pairs {
            let full = enc.frame_bytes(out) + ScanPageEncoder::pair_bytes(&k, &v) > budget;
            if returned == limit || full {
                continuation = Some(k);
                break 'pages;
            }
            enc.push(out, &k, &v);
            returned += 1;
            last = Some(k);
        }
        match last {
            Some(mut k) if !exhausted => {
                k.push(0); // the smallest key after `k`
                cursor = k;
            }
            _ => break,
        }
        let used = enc.frame_bytes(out).max(1);
        let pair_avg = (used / returned.max(1)).max(1);
        chunk = (budget.saturating_sub(used) / pair_avg).clamp(1, SCAN_CHUNK_PAIRS_MAX);
    }
    enc.finish(out, continuation.as_deref());
    Ok(())
}

/// The ERROR for an engine failure.
pub(crate) fn engine_error(e: &Error) -> ProtocolError {
    let code = match e {
        Error::InvalidArgument(_) | Error::LimitExceeded { .. } => ErrorCode::InvalidArgument,
        Error::Poisoned(_) => ErrorCode::Poisoned,
        Error::Closed => ErrorCode::Closed,
        Error::Io { .. } | Error::Corruption { .. } => ErrorCode::Storage,
        #[allow(unreachable_patterns)]
        _ => ErrorCode::Internal,
    };
    ProtocolError::new(code, e.to_string())
}
