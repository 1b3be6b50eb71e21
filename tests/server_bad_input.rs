//! A misbehaving client against the real server: random bytes, huge
//! frame lengths, half frames then silence, unknown opcodes, oversized
//! keys, malformed bodies, bad handshakes, and a thousand abandoned
//! connections. Each gets its ERROR or its connection closed, and the
//! server goes on answering correctly.
#![allow(clippy::unwrap_used)]

mod server_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cityhall::client::Client;
use cityhall::metrics::MetricValue;
use cityhall::protocol::frame::{begin_frame, end_frame};
use cityhall::protocol::{
    decode_frame, ClientHello, Decoded, ErrorCode, Limits, Request, Response, PROTOCOL_VERSION,
};

use server_support::raw::Raw;
use server_support::Server;

fn still_serves(server: &Server) {
    let mut c = server.client();
    c.put(b"alive", b"yes").unwrap();
    assert_eq!(c.get(b"alive").unwrap(), Some(b"yes".to_vec()));
    c.ping().unwrap();
}

/// A deterministic xorshift byte stream.
fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn random_bytes_before_handshake_get_bad_handshake_and_close() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    for seed in 1..=20 {
        let mut r = Raw::connect(&server.addr);
        r.write(&random_bytes(seed, 4096));
        let e = r.expect_error(ErrorCode::BadHandshake);
        assert!(
            e.message.starts_with("expected a HELLO frame first") || e.message.contains("HELLO"),
            "{e}"
        );
        r.expect_closed();
    }
    let mut r = Raw::connect(&server.addr);
    r.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    r.expect_error(ErrorCode::BadHandshake);
    r.expect_closed();
    still_serves(&server);
}

#[test]
fn random_bytes_after_handshake_never_break_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    for seed in 1..=20 {
        let mut r = Raw::hello(&server.addr);
        r.write(&random_bytes(seed * 7919, 2048));
        // Whatever comes back must be well-formed frames, then maybe a close.
        let mut answers = 0;
        let deadline = Instant::now() + Duration::from_secs(20);
        r.s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        loop {
            let mut chunk = [0u8; 4096];
            match r.s.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => r.buf.extend_from_slice(&chunk[..n]),
            }
            assert!(Instant::now() < deadline);
        }
        while let Decoded::Frame(f) = decode_frame(&r.buf, Limits::default().frame_size_bytes_max) {
            Response::decode(f, &Limits::default()).unwrap();
            let n = f.consumed;
            r.buf.drain(..n);
            answers += 1;
        }
        assert!(r.buf.is_empty(), "a partial frame from the server");
        let _ = answers;
    }
    still_serves(&server);
}

#[test]
fn a_frame_claiming_4_gib_is_refused_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut r = Raw::hello(&server.addr);
    r.write(&[0xff, 0xff, 0xff, 0xff, 0x11, 1, 2, 3]);
    let e = r.expect_error(ErrorCode::FrameTooLarge);
    assert!(
        e.message
            .starts_with("frame of 4294967295 bytes exceeds frame_size_bytes_max"),
        "{e}"
    );
    r.expect_closed();

    // Before the handshake the bound is the handshake's.
    let mut r = Raw::connect(&server.addr);
    r.write(&[0xff, 0xff, 0xff, 0xff]);
    r.expect_error(ErrorCode::BadHandshake);
    r.expect_closed();
    still_serves(&server);
}

#[test]
fn a_half_frame_then_silence_is_closed_after_the_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--read-timeout-ms", "300", "--idle-timeout-ms", "2000"],
    );

    let mut r = Raw::hello(&server.addr);
    let started = Instant::now();
    r.write(&[100, 0, 0, 0, 0x10, 1, 2, 3]);
    let e = r.expect_error(ErrorCode::ReadTimeout);
    assert!(e.message.contains("partial frame"), "{e}");
    r.expect_closed();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(10),
        "{waited:?}"
    );

    // Trickling one byte at a time does not keep a frame open.
    let mut r = Raw::hello(&server.addr);
    let started = Instant::now();
    r.write(&[100, 0, 0, 0]);
    r.s.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut answered = None;
    for _ in 0..40 {
        r.write(&[0x10]);
        let mut chunk = [0u8; 256];
        if let Ok(n @ 1..) = r.s.read(&mut chunk) {
            r.buf.extend_from_slice(&chunk[..n]);
            answered = Some(started.elapsed());
            break;
        }
    }
    let waited = answered.expect("no answer while trickling bytes");
    assert!(waited < Duration::from_millis(1500), "{waited:?}");
    r.s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    r.expect_error(ErrorCode::ReadTimeout);

    // No HELLO at all: the read timeout too.
    let mut r = Raw::connect(&server.addr);
    r.expect_error(ErrorCode::ReadTimeout);
    r.expect_closed();

    // An idle, complete connection: the idle timeout.
    let mut r = Raw::hello(&server.addr);
    let started = Instant::now();
    let e = r.expect_error(ErrorCode::ReadTimeout);
    assert!(e.message.contains("idle"), "{e}");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    r.expect_closed();
    still_serves(&server);
}

#[test]
fn unknown_and_reserved_opcodes_get_an_error_and_the_connection_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut r = Raw::hello(&server.addr);
    for op in [0x00u8, 0x03, 0x41, 0x70, 0x99, 0xff] {
        let mut f = Vec::new();
        let start = begin_frame(&mut f, op);
        f.extend_from_slice(b"body");
        end_frame(&mut f, start);
        r.write(&f);
        let e = r.expect_error(ErrorCode::UnknownOpcode);
        assert!(
            e.message.starts_with(&format!("unknown opcode 0x{op:02x}")),
            "{e}"
        );
        if op == 0x41 {
            assert!(e.message.contains("time series"), "{e}");
        }
    }
    r.send(&Request::Ping);
    assert_eq!(r.recv(), Some(Response::Pong));
    still_serves(&server);
}

#[test]
fn oversized_and_malformed_requests_get_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut r = Raw::hello(&server.addr);

    let big_key = vec![b'k'; 64 * 1024 + 1];
    r.send(&Request::Put {
        key: &big_key,
        value: b"v",
    });
    let e = r.expect_error(ErrorCode::KeyTooLarge);
    assert_eq!(
        e.message,
        "key of 65537 bytes exceeds key_size_bytes_max 65536"
    );
    r.send(&Request::Get { key: &big_key });
    r.expect_error(ErrorCode::KeyTooLarge);

    // A GET whose key length runs past the body.
    let mut f = Vec::new();
    let start = begin_frame(&mut f, 0x10);
    f.extend_from_slice(&[50, 0, 0, 0, b'a']);
    end_frame(&mut f, start);
    r.write(&f);
    let e = r.expect_error(ErrorCode::MalformedBody);
    assert!(e.message.contains("body ends inside key"), "{e}");

    // Trailing bytes after a PING.
    let mut f = Vec::new();
    let start = begin_frame(&mut f, 0x02);
    f.push(9);
    end_frame(&mut f, start);
    r.write(&f);
    r.expect_error(ErrorCode::MalformedBody);

    // A zero-length frame: the boundary is known, the connection goes on.
    r.write(&[0, 0, 0, 0]);
    r.expect_error(ErrorCode::MalformedBody);

    // An MGET claiming more keys than allowed.
    let mut f = Vec::new();
    let start = begin_frame(&mut f, 0x14);
    f.extend_from_slice(&1_000_000u32.to_le_bytes());
    end_frame(&mut f, start);
    r.write(&f);
    r.expect_error(ErrorCode::TooManyKeys);

    r.send(&Request::Scan {
        range: cityhall::protocol::ScanRange::Prefix(b"a"),
        limit: 1_000_000,
    });
    r.expect_error(ErrorCode::ScanLimitTooLarge);
    r.send(&Request::Put {
        key: b"",
        value: b"v",
    });
    r.expect_error(ErrorCode::InvalidArgument);

    // A second HELLO.
    r.send(&Request::Hello(ClientHello {
        version: PROTOCOL_VERSION,
        token: b"",
    }));
    r.expect_error(ErrorCode::InvalidArgument);

    r.send(&Request::Put {
        key: b"fine",
        value: b"1",
    });
    assert_eq!(r.recv(), Some(Response::Ok));
    r.send(&Request::Get { key: b"fine" });
    assert_eq!(r.recv(), Some(Response::Value(b"1".to_vec())));
    still_serves(&server);
}

#[test]
fn bad_handshakes_are_refused_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);

    let mut r = Raw::connect(&server.addr);
    r.send(&Request::Ping);
    let e = r.expect_error(ErrorCode::BadHandshake);
    assert!(
        e.message
            .contains("expected a HELLO frame (opcode 0x01) first"),
        "{e}"
    );
    r.expect_closed();

    let mut r = Raw::connect(&server.addr);
    r.send(&Request::Hello(ClientHello {
        version: 99,
        token: b"",
    }));
    r.expect_error(ErrorCode::UnsupportedVersion);
    r.expect_closed();

    let mut r = Raw::connect(&server.addr);
    let mut f = Vec::new();
    let start = begin_frame(&mut f, 0x01);
    f.extend_from_slice(b"NOPE\x01\x00\x00\x00");
    end_frame(&mut f, start);
    r.write(&f);
    r.expect_error(ErrorCode::BadHandshake);
    r.expect_closed();
    still_serves(&server);
}

#[test]
fn a_thousand_abandoned_connections_leave_the_server_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--read-timeout-ms", "2000"]);
    let mut hello = Vec::new();
    Request::Hello(ClientHello {
        version: PROTOCOL_VERSION,
        token: b"",
    })
    .encode(&mut hello);
    for round in 0..4 {
        let mut conns = Vec::new();
        for i in 0..250 {
            let mut s = TcpStream::connect(&server.addr).unwrap();
            match (round * 250 + i) % 4 {
                0 => {}
                1 => s.write_all(&hello[..3]).unwrap(),
                2 => s.write_all(&hello).unwrap(),
                _ => s.write_all(&[7, 0, 0, 0, 0x10]).unwrap(),
            }
            conns.push(s);
        }
        drop(conns);
    }
    still_serves(&server);
    // Every abandoned connection is closed: only ours remains.
    let mut c = server.client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = c.metrics().unwrap();
        let open = match m.get("server.connections_current") {
            Some(MetricValue::Gauge(v)) => *v,
            other => panic!("no connection gauge: {other:?}"),
        };
        if open <= 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} connections still open");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn connections_over_the_limit_are_refused_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--connections-max", "3"]);
    let held: Vec<Client> = (0..3).map(|_| server.client()).collect();
    let e = Client::connect(&server.addr).unwrap_err();
    assert!(e.to_string().contains("connections_max 3"), "{e}");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Client::connect(&server.addr) {
            Ok(mut c) => {
                c.ping().unwrap();
                break;
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("still refused after the others left: {e}"),
        }
    }
}
