//! [`Client`]: the blocking client of the `cityhall` server.
//!
//! It is the one codec every consumer uses — the CLI, the load generator
//! and the tests — built on [`crate::protocol`]. A client owns one
//! connection. It offers typed calls (`put`, `get`, `scan`, ... in
//! [`commands`]) that send one request and wait for its answer, and a
//! pipelined API underneath them: [`Client::send`] queues requests,
//! [`Client::flush`] writes them in one go, [`Client::recv`] returns the
//! answers in order.
//!
//! Pipelining caveat: the server stops reading a connection while it has
//! unwritten answers, so a caller that sends megabytes of requests without
//! reading any answer can fill both socket buffers and wait forever.
//! Interleave `recv` calls (the load generator keeps a fixed depth).
//!
//! A client is used from one thread at a time (`&mut self`).

pub mod commands;
pub mod render;
pub mod transport;
pub mod ts;
pub mod ts_cli;
pub mod ts_import;

use std::io::{self, Read, Write};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::protocol::{
    decode_frame, ClientHello, Decoded, ErrorCode, ErrorResponse, Limits, Request, Response,
    HANDSHAKE_FRAME_BYTES_MAX, PROTOCOL_VERSION,
};

pub use transport::Transport;

/// The address the server listens on by default.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7878";

/// How a [`Client`] connects.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// The auth token sent in the HELLO (empty: none).
    pub auth_token: Vec<u8>,
    /// Longest wait for the TCP connection to be established.
    pub connect_timeout: Duration,
    /// Longest wait for any one read or write (`None`: no limit).
    pub io_timeout: Option<Duration>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            auth_token: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            io_timeout: None,
        }
    }
}

/// Read buffer growth when no frame length is known yet.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// A connection to a `cityhall` server.
#[derive(Debug)]
pub struct Client {
    transport: Transport,
    addr: String,
    limits: Limits,
    /// Read buffer: answers not yet decoded are `rbuf[rpos..rend]`; the
    /// bytes past `rend` are room for the next read (zeroed once, when
    /// the buffer grows, not before every read).
    rbuf: Vec<u8>,
    rpos: usize,
    rend: usize,
    wbuf: Vec<u8>,
    in_flight: usize,
}

impl Client {
    /// Connects to `addr` (`host:port` or `unix:/path`) and completes the
    /// handshake without an auth token.
    pub fn connect(addr: &str) -> Result<Client> {
        Self::connect_with(addr, &ConnectOptions::default())
    }

    /// Connects to `addr` and completes the handshake.
    pub fn connect_with(addr: &str, options: &ConnectOptions) -> Result<Client> {
        let transport = Transport::connect(addr, options.connect_timeout)?;
        transport
            .set_timeout(options.io_timeout)
            .map_err(|source| io_err("set timeout", addr, source))?;
        let mut client = Client {
            transport,
            addr: addr.to_string(),
            limits: Limits {
                frame_size_bytes_max: HANDSHAKE_FRAME_BYTES_MAX.max(4096),
                ..Limits::default()
            },
            rbuf: Vec::new(),
            rpos: 0,
            rend: 0,
            wbuf: Vec::new(),
            in_flight: 0,
        };
        let hello = ClientHello {
            version: PROTOCOL_VERSION,
            token: &options.auth_token,
        };
        client.send(&Request::Hello(hello))?;
        match client.recv()? {
            Response::Hello(h) if h.version == PROTOCOL_VERSION => {
                client.limits = h.limits;
                Ok(client)
            }
            Response::Hello(h) => Err(Error::Protocol(format!(
                "server at {addr} answered the handshake with protocol version {}, expected {PROTOCOL_VERSION}",
                h.version
            ))),
            Response::Error(e) => Err(server_error(e)),
            other => Err(unexpected("HELLO", &other)),
        }
    }

    /// The address this client connected to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The bounds the server announced in its handshake.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Requests sent (or queued) whose answers have not been received.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Queues a request; it is written by the next [`Client::flush`] or
    /// [`Client::recv`]. A request whose frame exceeds the server's
    /// `frame_size_bytes_max` is refused here, because the server would
    /// have to close the connection over it.
    pub fn send(&mut self, request: &Request<'_>) -> Result<()> {
        let start = self.wbuf.len();
        request.encode(&mut self.wbuf);
        let frame = self.wbuf.len() - start - crate::protocol::FRAME_HEADER_LEN;
        if frame > self.limits.frame_size_bytes_max {
            self.wbuf.truncate(start);
            return Err(Error::LimitExceeded {
                what: format!(
                    "{} request of {frame} bytes exceeds the server's frame_size_bytes_max {}",
                    request.opcode().name(),
                    self.limits.frame_size_bytes_max
                ),
            });
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Queues raw bytes as if they were `requests` requests. For tests that
    /// need to send what the encoder never would.
    pub fn send_raw(&mut self, bytes: &[u8], requests: usize) {
        self.wbuf.extend_from_slice(bytes);
        self.in_flight += requests;
    }

    /// Writes every queued request.
    pub fn flush(&mut self) -> Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let res = self
            .transport
            .write_all(&self.wbuf)
            .and_then(|()| self.transport.flush());
        self.wbuf.clear();
        res.map_err(|source| io_err("write to", &self.addr, source))
    }

    /// Whether a whole answer is already read and waiting to be decoded,
    /// so that [`Client::recv`] needs no read from the socket.
    pub fn has_buffered_answer(&self) -> bool {
        let available = self.rbuf.get(self.rpos..self.rend).unwrap_or_default();
        matches!(
            decode_frame(available, self.limits.frame_size_bytes_max),
            Decoded::Frame(_)
        )
    }

    /// The socket's file descriptor, for a caller that waits on many
    /// connections at once (epoll); reads and writes stay with the client.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.transport.raw_fd()
    }

    /// Flushes, then reads the answer to the oldest unanswered request.
    pub fn recv(&mut self) -> Result<Response> {
        self.flush()?;
        loop {
            let available = self.rbuf.get(self.rpos..self.rend).unwrap_or_default();
            let want = match decode_frame(available, self.limits.frame_size_bytes_max) {
                Decoded::Frame(f) => {
                    let resp = Response::decode(f, &self.limits);
                    self.rpos += f.consumed;
                    self.in_flight = self.in_flight.saturating_sub(1);
                    return resp.map_err(|e| {
                        Error::Protocol(format!("bad answer from server at {}: {e}", self.addr))
                    });
                }
                Decoded::Error { error, .. } => {
                    return Err(Error::Protocol(format!(
                        "bad frame from server at {}: {error}",
                        self.addr
                    )))
                }
                Decoded::NeedMore { frame_len } => frame_len.unwrap_or(0),
            };
            self.fill(want)?;
        }
    }

    /// Reads more bytes: at least enough for a frame of `frame_len` bytes
    /// when that is known.
    fn fill(&mut self, frame_len: usize) -> Result<()> {
        if self.rpos > 0 {
            self.rbuf.copy_within(self.rpos..self.rend, 0);
            self.rend -= self.rpos;
            self.rpos = 0;
        }
        let have = self.rend;
        let room = frame_len.saturating_sub(have).max(READ_CHUNK_BYTES);
        if self.rbuf.len() < have + room {
            self.rbuf.resize(have + room, 0);
        }
        let res = loop {
            match self.transport.read(&mut self.rbuf[have..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let n = match res {
            Ok(n) => n,
            Err(source) => return Err(io_err("read from", &self.addr, source)),
        };
        self.rend = have + n;
        if n == 0 {
            return Err(io_err(
                "read from",
                &self.addr,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ),
            ));
        }
        Ok(())
    }

    /// Tells the server no more requests come (half-close); answers to
    /// requests already sent can still be received.
    pub fn finish_sending(&mut self) -> Result<()> {
        self.flush()?;
        self.transport
            .shutdown_write()
            .map_err(|source| io_err("shut down", &self.addr, source))
    }
}

/// The token in the file at `path`, surrounding whitespace trimmed (what
/// every command's `--auth-token-file` names); the error names the file.
pub fn read_auth_token(path: &std::path::Path) -> std::result::Result<Vec<u8>, String> {
    std::fs::read(path)
        .map(|raw| raw.trim_ascii().to_vec())
        .map_err(|e| format!("cannot read auth token file {}: {e}", path.display()))
}

/// An IO error on the connection to `addr`.
fn io_err(op: &'static str, addr: &str, source: io::Error) -> Error {
    Error::Io {
        op,
        path: addr.to_string(),
        source,
    }
}

/// Turns an ERROR answer into the crate's error type.
pub fn server_error(e: ErrorResponse) -> Error {
    match e.error_code() {
        Some(
            ErrorCode::KeyTooLarge
            | ErrorCode::ValueTooLarge
            | ErrorCode::BatchTooLarge
            | ErrorCode::TooManyKeys
            | ErrorCode::ScanLimitTooLarge
            | ErrorCode::ResponseTooLarge
            | ErrorCode::FrameTooLarge
            | ErrorCode::TooManyConnections,
        ) => Error::LimitExceeded { what: e.message },
        Some(ErrorCode::InvalidArgument) => Error::InvalidArgument(e.message),
        Some(ErrorCode::Poisoned) => Error::Poisoned(e.message),
        Some(ErrorCode::Closed) => Error::Closed,
        _ => Error::Protocol(format!("server answered {e}")),
    }
}

/// The error for an answer of the wrong kind.
pub(crate) fn unexpected(wanted: &str, got: &Response) -> Error {
    let got = match got {
        Response::Ok => "OK",
        Response::Hello(_) => "HELLO",
        Response::Pong => "PONG",
        Response::Value(_) => "VALUE",
        Response::NotFound => "NOT_FOUND",
        Response::Values(_) => "VALUES",
        Response::ScanPage(_) => "SCAN_PAGE",
        Response::Metrics(_) => "METRICS",
        Response::Ts(crate::protocol::ts::TsResponse::Points(_)) => "TS_POINTS",
        Response::Ts(crate::protocol::ts::TsResponse::SeriesList { .. }) => "TS_SERIES_LIST",
        Response::Error(_) => "ERROR",
    };
    Error::Protocol(format!("expected a {wanted} answer, got {got}"))
}
