//! Bad time-series requests against the real server: malformed bodies,
//! counts over their bounds or beyond the bytes sent, bad names, labels,
//! aggregations, limits, NaN values, and random bodies under every
//! time-series opcode. Each gets an ERROR that names the problem, the
//! connection goes on, nothing is stored, and the server keeps serving.
//! Also: pipelined adds are answered in order, each once durable.
#![allow(clippy::unwrap_used)]

mod server_support;

use cityhall::protocol::ts::{TsRequest, TsResponse, TsSeriesPoints, TS_RANGE_POINTS_MAX};
use cityhall::protocol::{ErrorCode, Request, Response};
use cityhall::ts::{Point, RangeQuery, SeriesKey};

use server_support::raw::Raw;
use server_support::Server;

fn str16(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn key(s: &str) -> SeriesKey {
    SeriesKey::parse(s).unwrap()
}

#[test]
fn malformed_time_series_requests_get_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut r = Raw::hello(&server.addr);

    // TS_ADD: a count over the bound, a count beyond the body, an empty
    // request, a name over the bound, a bad name, bad labels, NaN.
    r.frame(0x50, &1_000_000u32.to_le_bytes());
    r.expect_error_saying(ErrorCode::BatchTooLarge, "ts_add_series_max");
    r.frame(0x50, &7u32.to_le_bytes());
    r.expect_error_saying(ErrorCode::MalformedBody, "cannot fit");
    r.frame(0x50, &0u32.to_le_bytes());
    r.expect_error_saying(ErrorCode::InvalidArgument, "no series");
    let mut b = 1u32.to_le_bytes().to_vec();
    str16(&mut b, &"x".repeat(1025));
    r.frame(0x50, &b);
    r.expect_error_saying(ErrorCode::KeyTooLarge, "ts_series_bytes_max");
    for (name, says) in [
        ("", "series name"),
        ("cpu load", "not allowed"),
        ("cpu{host=a", "closing brace"),
        ("cpu{host=a,host=b}", "twice"),
        ("cpu{=a}", "label key"),
    ] {
        let mut b = 1u32.to_le_bytes().to_vec();
        str16(&mut b, name);
        b.extend_from_slice(&0u32.to_le_bytes());
        r.frame(0x50, &b);
        r.expect_error_saying(ErrorCode::InvalidArgument, says);
    }
    let mut b = 1u32.to_le_bytes().to_vec();
    str16(&mut b, "cpu");
    b.extend_from_slice(&1_000_000u32.to_le_bytes());
    r.frame(0x50, &b);
    r.expect_error_saying(ErrorCode::BatchTooLarge, "ts_add_points_max");
    let mut b = 1u32.to_le_bytes().to_vec();
    str16(&mut b, "cpu");
    b.extend_from_slice(&2u32.to_le_bytes());
    b.extend_from_slice(&5i64.to_le_bytes());
    b.extend_from_slice(&1.0f64.to_bits().to_le_bytes());
    r.frame(0x50, &b);
    r.expect_error_saying(ErrorCode::MalformedBody, "cannot fit");
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        r.send(&Request::Ts(TsRequest::Add(vec![
            TsSeriesPoints {
                series: key("ok"),
                points: vec![Point { ts: 1, value: 1.0 }],
            },
            TsSeriesPoints {
                series: key("cpu"),
                points: vec![Point { ts: 2, value: bad }],
            },
        ])));
        r.expect_error_saying(ErrorCode::InvalidArgument, "not a finite number");
    }
    // Trailing bytes after a well-formed body.
    let mut b = Vec::new();
    str16(&mut b, "cpu");
    b.push(0);
    r.frame(0x52, &b);
    r.expect_error_saying(ErrorCode::MalformedBody, "trailing");

    // TS_RANGE: unknown aggregation, a limit of 0 or over the bound, from
    // after to, a bucket without an aggregation, a negative bucket.
    let range = |agg: u8, from: i64, to: i64, bucket: i64, limit: u32| {
        let mut b = Vec::new();
        str16(&mut b, "cpu");
        b.extend_from_slice(&from.to_le_bytes());
        b.extend_from_slice(&to.to_le_bytes());
        b.push(agg);
        b.extend_from_slice(&bucket.to_le_bytes());
        b.extend_from_slice(&limit.to_le_bytes());
        b
    };
    r.frame(0x51, &range(42, 0, 1, 0, 1));
    r.expect_error_saying(ErrorCode::MalformedBody, "unknown aggregation");
    r.frame(0x51, &range(0, 0, 1, 0, 0));
    r.expect_error_saying(ErrorCode::InvalidArgument, "limit 0");
    r.frame(0x51, &range(0, 0, 1, 0, TS_RANGE_POINTS_MAX as u32 + 1));
    r.expect_error_saying(ErrorCode::ScanLimitTooLarge, "exceeds");
    r.frame(0x51, &range(0, 5, 1, 0, 1));
    r.expect_error_saying(ErrorCode::InvalidArgument, "is after");
    r.frame(0x51, &range(0, 0, 1, 1000, 1));
    r.expect_error_saying(ErrorCode::InvalidArgument, "needs an aggregation");
    r.frame(0x51, &range(1, 0, 1, -5, 1));
    r.expect_error_saying(ErrorCode::InvalidArgument, "negative");

    // TS_SERIES: too many matchers, a bad matcher op or label, limit 0.
    let mut b = Vec::new();
    str16(&mut b, "");
    b.push(200);
    r.frame(0x53, &b);
    r.expect_error_saying(ErrorCode::InvalidArgument, "ts_matchers_max");
    let mut b = Vec::new();
    str16(&mut b, "");
    b.push(1);
    b.push(9);
    r.frame(0x53, &b);
    r.expect_error_saying(ErrorCode::MalformedBody, "matcher op");
    let mut b = Vec::new();
    str16(&mut b, "");
    b.push(1);
    b.push(0);
    str16(&mut b, "host");
    str16(&mut b, "a,b");
    r.frame(0x53, &b);
    r.expect_error_saying(ErrorCode::InvalidArgument, "not allowed");
    let mut b = Vec::new();
    str16(&mut b, "");
    b.push(0);
    str16(&mut b, "");
    b.extend_from_slice(&0u32.to_le_bytes());
    r.frame(0x53, &b);
    r.expect_error_saying(ErrorCode::InvalidArgument, "limit 0");

    // TS_DELETE, TS_RETENTION, TS_POLICY.
    let mut b = Vec::new();
    str16(&mut b, "cpu");
    b.push(3);
    r.frame(0x54, &b);
    r.expect_error_saying(ErrorCode::MalformedBody, "delete mode");
    let mut b = Vec::new();
    str16(&mut b, "cpu");
    b.extend_from_slice(&(-7i64).to_le_bytes());
    r.frame(0x55, &b);
    r.expect_error_saying(ErrorCode::InvalidArgument, "retention -7");
    let mut b = Vec::new();
    str16(&mut b, "");
    b.extend_from_slice(&(-1i64).to_le_bytes());
    r.frame(0x55, &b);
    r.expect_error_saying(ErrorCode::InvalidArgument, "default retention");
    let mut b = Vec::new();
    str16(&mut b, "cpu");
    b.push(77);
    r.frame(0x56, &b);
    r.expect_error_saying(ErrorCode::MalformedBody, "unknown policy");

    // Unassigned time-series opcodes stay reserved.
    r.frame(0x40, b"");
    r.expect_error_saying(ErrorCode::UnknownOpcode, "time series");
    r.frame(0x5f, b"x");
    r.expect_error_saying(ErrorCode::UnknownOpcode, "time series");

    // Nothing was stored by any of that; the connection still works.
    r.ping();
    r.send(&Request::Ts(TsRequest::Series {
        prefix: String::new(),
        matchers: Vec::new(),
        after: String::new(),
        limit: 10,
    }));
    assert_eq!(
        r.recv(),
        Some(Response::Ts(TsResponse::SeriesList {
            series: Vec::new(),
            more: false
        }))
    );
}

#[test]
fn random_time_series_bodies_never_break_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut r = Raw::hello(&server.addr);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..700u64 {
        let op = 0x50 + (i % 7) as u8;
        let len = (next() % 64) as usize;
        let mut body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Make some bodies start plausibly (small counts and lengths).
        if i % 3 == 0 && body.len() >= 4 {
            body[0] = (next() % 3) as u8;
            body[1] = 0;
            if op == 0x50 {
                body[2] = 0;
                body[3] = 0;
            }
        }
        r.frame(op, &body);
        match r.recv() {
            Some(Response::Error(e)) => assert!(!e.closing, "{e}"),
            Some(_) => {}
            None => panic!("connection closed after a random body for 0x{op:02x}"),
        }
    }
    r.ping();
    let mut c = server.client();
    c.ts_add(vec![TsSeriesPoints {
        series: key("alive"),
        points: vec![Point { ts: 1, value: 1.0 }],
    }])
    .unwrap();
    assert_eq!(
        c.ts_latest(&key("alive")).unwrap(),
        Some(Some(Point { ts: 1, value: 1.0 }))
    );
}

#[test]
fn pipelined_adds_are_answered_in_order_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut c = server.client();
    let groups = |i: i64| {
        vec![
            TsSeriesPoints {
                series: key("pipe{n=a}"),
                points: (0..100)
                    .map(|j| Point {
                        ts: i * 1000 + j,
                        value: (i * 100 + j) as f64,
                    })
                    .collect(),
            },
            TsSeriesPoints {
                series: key("pipe{n=b}"),
                points: vec![Point {
                    ts: i,
                    value: -(i as f64),
                }],
            },
        ]
    };
    for i in 0..50 {
        c.send(&Request::Ts(TsRequest::Add(groups(i)))).unwrap();
    }
    // One bad request in the middle of the pipeline.
    c.send(&Request::Ts(TsRequest::Add(vec![TsSeriesPoints {
        series: key("pipe{n=a}"),
        points: vec![Point {
            ts: 0,
            value: f64::NAN,
        }],
    }])))
    .unwrap();
    c.send(&Request::Ping).unwrap();
    for _ in 0..50 {
        assert_eq!(c.recv().unwrap(), Response::Ok);
    }
    assert!(matches!(c.recv().unwrap(), Response::Error(_)));
    assert_eq!(c.recv().unwrap(), Response::Pong);
    let q = RangeQuery::raw(i64::MIN, i64::MAX);
    let a = c.ts_range(&key("pipe{n=a}"), &q).unwrap().unwrap();
    assert_eq!(a.len(), 5000);
    assert!(a.iter().enumerate().all(|(i, p)| p.value == i as f64));
    let b = c.ts_range(&key("pipe{n=b}"), &q).unwrap().unwrap();
    assert_eq!(b.len(), 50);
    // Paged reads of a long range meet exactly.
    let mut q2 = q;
    q2.limit = 4999;
    assert_eq!(
        c.ts_range(&key("pipe{n=a}"), &q2).unwrap().unwrap().len(),
        4999
    );
    assert!(c.metrics().unwrap().get("server.ts_add.requests").is_some());
}
