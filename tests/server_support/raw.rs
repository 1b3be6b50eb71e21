//! A raw protocol connection for bad-input tests: frames are written by
//! hand or encoded from requests, and answers read with the protocol's own
//! decoder.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use cityhall::protocol::frame::{begin_frame, end_frame};
use cityhall::protocol::{
    decode_frame, ClientHello, Decoded, ErrorCode, ErrorResponse, Limits, Request, Response,
    PROTOCOL_VERSION,
};

/// A connection that reads frames with the protocol decoder.
pub struct Raw {
    pub s: TcpStream,
    pub buf: Vec<u8>,
}

impl Raw {
    /// Connects, without a handshake.
    pub fn connect(addr: &str) -> Raw {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Raw { s, buf: Vec::new() }
    }

    /// Connects and completes the handshake.
    pub fn hello(addr: &str) -> Raw {
        let mut r = Raw::connect(addr);
        r.send(&Request::Hello(ClientHello {
            version: PROTOCOL_VERSION,
            token: b"",
        }));
        assert!(matches!(r.recv(), Some(Response::Hello(_))));
        r
    }

    /// Sends an encoded request.
    pub fn send(&mut self, req: &Request<'_>) {
        let mut out = Vec::new();
        req.encode(&mut out);
        self.s.write_all(&out).unwrap();
    }

    /// Sends raw bytes; the server may already have closed, which is what
    /// some tests expect.
    pub fn write(&mut self, bytes: &[u8]) {
        let _ = self.s.write_all(bytes);
    }

    /// Sends a well-framed request with opcode `op` and any body.
    pub fn frame(&mut self, op: u8, body: &[u8]) {
        let mut f = Vec::new();
        let start = begin_frame(&mut f, op);
        f.extend_from_slice(body);
        end_frame(&mut f, start);
        self.s.write_all(&f).unwrap();
    }

    /// The next response, or `None` at end of stream.
    pub fn recv(&mut self) -> Option<Response> {
        let limits = Limits::default();
        loop {
            match decode_frame(&self.buf, limits.frame_size_bytes_max) {
                Decoded::Frame(f) => {
                    let resp = Response::decode(f, &limits).unwrap();
                    let n = f.consumed;
                    self.buf.drain(..n);
                    return Some(resp);
                }
                Decoded::NeedMore { .. } => {}
                Decoded::Error { error, .. } => panic!("server sent a bad frame: {error}"),
            }
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    /// Expects an ERROR with `code` (closing the connection exactly when
    /// the code does); returns it.
    pub fn expect_error(&mut self, code: ErrorCode) -> ErrorResponse {
        match self.recv() {
            Some(Response::Error(e)) => {
                assert_eq!(e.error_code(), Some(code), "{e}");
                assert_eq!(e.closing, code.is_closing(), "{e}");
                e
            }
            other => panic!("expected {code} error, got {other:?}"),
        }
    }

    /// Expects an ERROR with `code` that keeps the connection and whose
    /// message says `says`.
    pub fn expect_error_saying(&mut self, code: ErrorCode, says: &str) {
        let e = self.expect_error(code);
        assert!(!e.closing, "{e}");
        assert!(e.message.contains(says), "{e} should say {says:?}");
    }

    /// Expects the server to close the connection.
    pub fn expect_closed(&mut self) {
        assert_eq!(self.recv(), None, "connection should be closed");
    }

    /// A PING answered with PONG.
    pub fn ping(&mut self) {
        self.send(&Request::Ping);
        assert_eq!(self.recv(), Some(Response::Pong));
    }
}
