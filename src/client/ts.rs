//! The time-series calls of [`Client`]: one request, one answer each, or
//! as many pages as a long range or listing takes.

use crate::error::{Error, Result};
use crate::protocol::ts::{
    TsPointsPage, TsRequest, TsResponse, TsSeriesPoints, TS_RANGE_POINTS_MAX, TS_SERIES_LIMIT_MAX,
};
use crate::protocol::Response;
use crate::ts::{DupPolicy, LabelMatcher, Point, RangeQuery, Retention, SelectQuery, SeriesKey};

use super::{unexpected, Client};

/// Most pages a paged call follows before it gives up (a server whose
/// continuations never advance would otherwise loop forever).
const PAGES_MAX: usize = 1 << 20;

fn found(resp: Response) -> Result<bool> {
    match resp {
        Response::Ok => Ok(true),
        Response::NotFound => Ok(false),
        other => Err(unexpected("OK or NOT_FOUND", &other)),
    }
}

impl Client {
    /// Adds points to series (creating new ones), atomically; returns once
    /// they are durable.
    pub fn ts_add(&mut self, groups: Vec<TsSeriesPoints>) -> Result<()> {
        match self.call(&crate::protocol::Request::Ts(TsRequest::Add(groups)))? {
            Response::Ok => Ok(()),
            other => Err(unexpected("OK", &other)),
        }
    }

    /// One page of a range query; `None` if the series does not exist.
    pub fn ts_range_page(
        &mut self,
        series: &SeriesKey,
        query: &RangeQuery,
    ) -> Result<Option<TsPointsPage>> {
        let req = TsRequest::Range {
            series: series.clone(),
            query: *query,
        };
        match self.call(&crate::protocol::Request::Ts(req))? {
            Response::Ts(TsResponse::Points(p)) => Ok(Some(p)),
            Response::NotFound => Ok(None),
            other => Err(unexpected("TS_POINTS or NOT_FOUND", &other)),
        }
    }

    /// Up to `query.limit` points (or buckets) of a range, following pages;
    /// `None` if the series does not exist.
    pub fn ts_range(
        &mut self,
        series: &SeriesKey,
        query: &RangeQuery,
    ) -> Result<Option<Vec<Point>>> {
        let mut out = Vec::new();
        let mut q = *query;
        for _ in 0..PAGES_MAX {
            q.limit = (query.limit - out.len()).clamp(1, TS_RANGE_POINTS_MAX);
            let Some(page) = self.ts_range_page(series, &q)? else {
                return Ok(None);
            };
            out.extend(page.points);
            match page.next_from {
                Some(next) if out.len() < query.limit => {
                    if next < q.from {
                        return Err(Error::Protocol(format!(
                            "server continued a range at {next}, before its start {}",
                            q.from
                        )));
                    }
                    q.from = next;
                }
                _ => {
                    out.truncate(query.limit);
                    return Ok(Some(out));
                }
            }
        }
        Err(Error::Protocol("range took too many pages".into()))
    }

    /// One page of an aggregate across series (`query.series_max` is the
    /// server's, [`crate::protocol::ts::TS_AGG_SERIES_MAX`]).
    pub fn ts_agg_page(&mut self, query: &SelectQuery) -> Result<TsPointsPage> {
        let req = TsRequest::Agg {
            prefix: query.prefix.clone(),
            matchers: query.matchers.clone(),
            from: query.from,
            to: query.to,
            agg: query.agg,
            bucket_ms: query.bucket_ms,
            limit: u32::try_from(query.limit.clamp(1, TS_RANGE_POINTS_MAX)).unwrap_or(1),
        };
        match self.call(&crate::protocol::Request::Ts(req))? {
            Response::Ts(TsResponse::Points(p)) => Ok(p),
            other => Err(unexpected("TS_POINTS", &other)),
        }
    }

    /// Up to `query.limit` buckets of an aggregate across every series
    /// the selector matches, following pages.
    pub fn ts_agg(&mut self, query: &SelectQuery) -> Result<Vec<Point>> {
        let mut out = Vec::new();
        let mut q = query.clone();
        for _ in 0..PAGES_MAX {
            q.limit = query.limit.saturating_sub(out.len()).max(1);
            let page = self.ts_agg_page(&q)?;
            out.extend(page.points);
            match page.next_from {
                Some(next) if out.len() < query.limit => {
                    if next <= q.from {
                        return Err(Error::Protocol(format!(
                            "server continued an aggregate at {next}, not after its start {}",
                            q.from
                        )));
                    }
                    q.from = next;
                }
                _ => {
                    out.truncate(query.limit);
                    return Ok(out);
                }
            }
        }
        Err(Error::Protocol("aggregate took too many pages".into()))
    }

    /// The newest point: `None` if the series does not exist, `Some(None)`
    /// if it has no point.
    pub fn ts_latest(&mut self, series: &SeriesKey) -> Result<Option<Option<Point>>> {
        let req = TsRequest::Latest {
            series: series.clone(),
        };
        match self.call(&crate::protocol::Request::Ts(req))? {
            Response::Ts(TsResponse::Points(p)) => Ok(Some(p.points.last().copied())),
            Response::NotFound => Ok(None),
            other => Err(unexpected("TS_POINTS or NOT_FOUND", &other)),
        }
    }

    /// Up to `limit` series whose canonical form starts with `prefix` and
    /// that every matcher accepts, in canonical order, following pages.
    pub fn ts_series(
        &mut self,
        prefix: &str,
        matchers: &[LabelMatcher],
        limit: usize,
    ) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for _ in 0..PAGES_MAX {
            let want = (limit - out.len()).clamp(1, TS_SERIES_LIMIT_MAX);
            let req = TsRequest::Series {
                prefix: prefix.to_string(),
                matchers: matchers.to_vec(),
                after: out.last().cloned().unwrap_or_default(),
                limit: u32::try_from(want).unwrap_or(u32::MAX),
            };
            let (series, more) = match self.call(&crate::protocol::Request::Ts(req))? {
                Response::Ts(TsResponse::SeriesList { series, more }) => (series, more),
                other => return Err(unexpected("TS_SERIES_LIST", &other)),
            };
            let progressed = !series.is_empty();
            out.extend(series);
            if !more || out.len() >= limit || !progressed {
                out.truncate(limit);
                return Ok(out);
            }
        }
        Err(Error::Protocol("series listing took too many pages".into()))
    }

    /// Deletes a series (`range: None`) or the points of `[from, to]`;
    /// `false` if the series does not exist.
    pub fn ts_delete(&mut self, series: &SeriesKey, range: Option<(i64, i64)>) -> Result<bool> {
        let req = TsRequest::Delete {
            series: series.clone(),
            range,
        };
        found(self.call(&crate::protocol::Request::Ts(req))?)
    }

    /// Sets a series' retention, or the default with `series: None`;
    /// `false` if the series does not exist.
    pub fn ts_retention(
        &mut self,
        series: Option<&SeriesKey>,
        retention: Retention,
    ) -> Result<bool> {
        let req = TsRequest::Retention {
            series: series.cloned(),
            retention,
        };
        found(self.call(&crate::protocol::Request::Ts(req))?)
    }

    /// Sets a series' duplicate policy; `false` if it does not exist.
    pub fn ts_policy(&mut self, series: &SeriesKey, policy: DupPolicy) -> Result<bool> {
        let req = TsRequest::Policy {
            series: series.clone(),
            policy,
        };
        found(self.call(&crate::protocol::Request::Ts(req))?)
    }
}
