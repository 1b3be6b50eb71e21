//! Serving the time-series requests (bodies in
//! [`crate::protocol::ts`]) with the server's [`crate::ts::TimeSeries`].
//!
//! TS_ADD is a write like PUT: the points are checked and enqueued at
//! once, and the engine's future joins the connection's pending writes,
//! so pipelined adds share group commits and are answered in order once
//! durable. The other requests first settle the pending writes (answers
//! stay in request order, reads see the connection's own writes): reads
//! (TS_RANGE, TS_LATEST, TS_SERIES, TS_AGG) are served inline (TS_AGG
//! reads each series it pools from a snapshot of its own);
//! TS_DELETE, TS_RETENTION and TS_POLICY are awaited — the connection
//! waits, its event loop does not.

use std::time::Instant;

use crate::db::WriteFuture;
use crate::protocol::opcode::ResponseOpcode;
use crate::protocol::response::{write_empty, write_error};
use crate::protocol::ts::{write_points, write_series_list, TsRequest};
use crate::protocol::{ErrorCode, Opcode, ProtocolError};
use crate::ts::{SeriesPoints, SeriesQuery, TsFuture};

use super::handler::{engine_error, Answers};
use super::Shared;
use crate::Error;

/// Executes a time-series request. Returns the engine's future of a
/// TS_ADD whose points are enqueued (the caller queues it as a pending
/// write); every other request has been answered on return.
pub(crate) async fn execute(
    shared: &Shared,
    answers: &mut Answers,
    request: TsRequest,
    op: Opcode,
    started: Instant,
) -> Option<WriteFuture> {
    let result = match &request {
        TsRequest::Add(groups) => {
            let batch: Vec<SeriesPoints<'_>> = groups
                .iter()
                .map(|g| SeriesPoints {
                    series: &g.series,
                    points: &g.points,
                })
                .collect();
            match shared.ts.add_write(&batch) {
                Ok(future) => return Some(future),
                Err(e) => {
                    answers.settle(shared).await;
                    Err(ts_error(&e))
                }
            }
        }
        _ => {
            answers.settle(shared).await;
            serve(shared, &mut answers.out, request).await
        }
    };
    let stats = shared.stats.op(op);
    stats.requests.inc();
    if let Err(e) = result {
        stats.errors.inc();
        write_error(&mut answers.out, &e);
    }
    stats.latency_us.record_since(started);
    None
}

async fn serve(
    shared: &Shared,
    out: &mut Vec<u8>,
    request: TsRequest,
) -> Result<(), ProtocolError> {
    let ts = &shared.ts;
    match request {
        TsRequest::Add(_) => Err(ProtocolError::new(
            ErrorCode::Internal,
            "TS_ADD reached the read path",
        )),
        TsRequest::Range { series, mut query } => {
            // A page never outgrows the frame bound (the client follows
            // `next_from` for the rest).
            query.limit = query.limit.min(frame_room(shared) / TS_POINT_BYTES).max(1);
            range(out, ts.range(&series, &query))
        }
        TsRequest::Latest { series } => match ts.latest(&series) {
            Ok(Some(p)) => {
                write_points(out, p.as_slice(), None);
                Ok(())
            }
            Ok(None) => {
                write_empty(out, ResponseOpcode::NotFound);
                Ok(())
            }
            Err(e) => Err(ts_error(&e)),
        },
        TsRequest::Series {
            prefix,
            matchers,
            after,
            limit,
        } => {
            let per_series = 2 + crate::ts::series::SERIES_KEY_BYTES_MAX;
            let q = SeriesQuery {
                prefix,
                matchers,
                after: (!after.is_empty()).then_some(after),
                limit: (limit as usize).min(frame_room(shared) / per_series).max(1),
            };
            let page = ts.series(&q).map_err(|e| ts_error(&e))?;
            write_series_list(out, &page.series, page.more);
            Ok(())
        }
        TsRequest::Delete { series, range } => {
            let f = match range {
                None => ts.delete_series_async(&series),
                Some((from, to)) => ts.delete_range_async(&series, from, to),
            };
            answer(out, f).await
        }
        TsRequest::Retention { series, retention } => {
            answer(out, ts.set_retention_async(series.as_ref(), retention)).await
        }
        TsRequest::Policy { series, policy } => {
            answer(out, ts.set_policy_async(&series, policy)).await
        }
        agg @ TsRequest::Agg { .. } => {
            let Some(mut q) = agg.select_query() else {
                return Err(ProtocolError::new(
                    ErrorCode::Internal,
                    "TS_AGG without a query",
                ));
            };
            q.limit = q.limit.min(frame_room(shared) / TS_POINT_BYTES).max(1);
            let page = ts.select(&q).map_err(|e| ts_error(&e))?;
            write_points(out, &page.points, page.next_from);
            Ok(())
        }
    }
}

/// Bytes a TS_POINTS point takes.
const TS_POINT_BYTES: usize = 16;

/// Room for entries in an answer frame (the bound less the fixed fields).
fn frame_room(shared: &Shared) -> usize {
    shared.limits.frame_size_bytes_max.saturating_sub(64)
}

fn range(
    out: &mut Vec<u8>,
    r: crate::Result<Option<crate::ts::RangePage>>,
) -> Result<(), ProtocolError> {
    match r.map_err(|e| ts_error(&e))? {
        Some(page) => write_points(out, &page.points, page.next_from),
        None => write_empty(out, ResponseOpcode::NotFound),
    }
    Ok(())
}

/// OK once `f` is durable, NOT_FOUND when there was no such series.
async fn answer(
    out: &mut Vec<u8>,
    f: crate::Result<Option<TsFuture>>,
) -> Result<(), ProtocolError> {
    match f.map_err(|e| ts_error(&e))? {
        None => write_empty(out, ResponseOpcode::NotFound),
        Some(f) => {
            f.await.map_err(|e| ts_error(&e))?;
            write_empty(out, ResponseOpcode::Ok);
        }
    }
    Ok(())
}

/// The ERROR for a failure of the time-series layer: bad input keeps its
/// message as is (it names the series and the point), the rest is as for
/// the engine.
fn ts_error(e: &Error) -> ProtocolError {
    match e {
        Error::InvalidArgument(m) => ProtocolError::new(ErrorCode::InvalidArgument, m.clone()),
        other => engine_error(other),
    }
}
