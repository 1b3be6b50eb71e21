//! One client connection: the handshake, then read, decode, execute and
//! answer, in a loop, until the peer leaves, breaks the protocol, falls
//! silent or the server stops.
//!
//! Each turn of the loop decodes every complete frame already buffered,
//! executes them (see [`super::handler`]), and writes all their answers in
//! one go; only then does it read again. So a pipelining client gets its
//! answers batched, and a client that does not read its answers stops
//! being read (backpressure): at most `in_flight_requests_max` answers or
//! [`OUT_BYTES_SOFT_MAX`] bytes are queued before the loop writes.
//!
//! Bounds: a frame's length is checked against the frame bound (before the
//! handshake, [`HANDSHAKE_FRAME_BYTES_MAX`]) before its bytes are awaited;
//! the read buffer grows toward the frame's size only as its bytes arrive,
//! and never past about twice the frame bound. A partial frame still incomplete `read_timeout` after its first
//! byte (trickling bytes does not extend it), a HELLO not complete
//! `read_timeout` after the connection was accepted, or a
//! connection silent for `idle_timeout`, is answered with a `read_timeout`
//! ERROR and closed.
//!
//! Closing after an ERROR is a "lingering close": the server shuts down its
//! sending side, then discards what the client still sends for a moment,
//! so the client reads the ERROR instead of a connection reset.

use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_uring::buf::BoundedBuf;

use crate::protocol::handshake::tokens_equal;
use crate::protocol::response::write_error;
use crate::protocol::{
    decode_frame, ClientHello, Decoded, ErrorCode, Opcode, ProtocolError, RawFrame, Response,
    ServerHello, HANDSHAKE_FRAME_BYTES_MAX, PROTOCOL_VERSION,
};

use super::handler::{handle, Answers};
use super::stream::ConnStream;
use super::Shared;

/// Answers queued beyond this many bytes are written before more frames
/// are executed.
pub const OUT_BYTES_SOFT_MAX: usize = 1 << 20;
/// Read size when no frame length is known.
const READ_CHUNK_BYTES: usize = 16 << 10;
/// A read buffer larger than this is given back once empty.
const READ_BUFFER_KEEP_BYTES: usize = 256 << 10;
/// Longest lingering close.
const LINGER: Duration = Duration::from_millis(500);
/// Most bytes discarded by a lingering close.
const LINGER_BYTES_MAX: usize = 1 << 20;

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The peer closed its side.
    PeerClosed,
    /// The server sent a closing ERROR (written already).
    Refused,
    /// Reading or writing failed.
    Broken,
}

struct Conn<'s> {
    shared: &'s Shared,
    input: Vec<u8>,
    start: usize,
    answers: Answers,
    handshaken: bool,
    /// Size of the frame being received, once its header is in.
    frame_len: Option<usize>,
    /// When the first byte of the frame being received arrived (for a new
    /// connection: when it was accepted, since the HELLO is due).
    frame_began: Option<Instant>,
}

/// Serves one connection to its end, then closes it.
pub(crate) async fn serve<S: ConnStream>(
    stream: S,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conn = Conn {
        shared: &shared,
        input: Vec::new(),
        start: 0,
        answers: Answers::default(),
        handshaken: false,
        frame_len: None,
        frame_began: Some(Instant::now()),
    };
    let end = conn.run(&stream, &mut stop).await;
    if end == End::Refused {
        shared.stats.connections_dropped.inc();
        linger_close(&stream).await;
    }
    // Completes any read still in flight, so the descriptor is released.
    let _ = stream.shutdown(Shutdown::Both);
}

/// Sends a closing ERROR to a connection that is not served, then closes it.
pub(crate) async fn refuse<S: ConnStream>(stream: S, e: ProtocolError) {
    let mut out = Vec::new();
    write_error(&mut out, &e);
    let write = stream.write_all(out);
    if tokio::time::timeout(LINGER, write).await.is_ok() {
        linger_close(&stream).await;
    }
    let _ = stream.shutdown(Shutdown::Both);
}

impl Conn<'_> {
    async fn run<S: ConnStream>(&mut self, stream: &S, stop: &mut watch::Receiver<bool>) -> End {
        loop {
            let refused = self.process().await;
            if !self.answers.out.is_empty() && !self.write(stream).await {
                return End::Broken;
            }
            if refused {
                return End::Refused;
            }
            if self.answers.count > 0 {
                // Stopped early for backpressure; more frames may be buffered.
                self.answers.count = 0;
                continue;
            }
            if *stop.borrow() {
                return self
                    .refuse(
                        stream,
                        ErrorCode::ShuttingDown,
                        "the server is shutting down",
                    )
                    .await;
            }
            self.compact();
            let partial = self.start < self.input.len() || !self.handshaken;
            let (timeout, why) = if partial {
                // Measured from the frame's first byte, not the last read,
                // so trickling bytes does not keep a frame open forever.
                let began = *self.frame_began.get_or_insert_with(Instant::now);
                (
                    self.shared
                        .config
                        .read_timeout
                        .saturating_sub(began.elapsed()),
                    "a partial frame (or no HELLO) was not completed",
                )
            } else {
                (self.shared.config.idle_timeout, "the connection was idle")
            };
            // Grow toward the frame's size no faster than the bytes that
            // actually arrive, so a length claim alone allocates little.
            let missing = self
                .frame_len
                .map_or(READ_CHUNK_BYTES, |n| n.saturating_sub(self.input.len()));
            let want = missing.min(self.input.len().max(READ_CHUNK_BYTES));
            self.input.reserve(want.max(1));
            let buf = std::mem::take(&mut self.input);
            let len = buf.len();
            tokio::select! {
                (res, slice) = stream.read(buf.slice(len..)) => {
                    self.input = slice.into_inner();
                    match res {
                        Ok(0) => return End::PeerClosed,
                        Ok(n) => self.shared.stats.bytes_in.add(n as u64),
                        Err(_) => return End::Broken,
                    }
                }
                _ = tokio::time::sleep(timeout) => {
                    let msg = format!("{why} within {} ms", timeout.as_millis());
                    return self.refuse(stream, ErrorCode::ReadTimeout, &msg).await;
                }
                _ = stop.changed() => {
                    return self.refuse(stream, ErrorCode::ShuttingDown, "the server is shutting down").await;
                }
            }
        }
    }

    /// Decodes and executes buffered frames until none is complete or the
    /// answer queue is full. Returns true if the connection must close (a
    /// closing ERROR is queued).
    async fn process(&mut self) -> bool {
        let config = &self.shared.config;
        let refused = loop {
            if self.answers.count >= config.in_flight_requests_max
                || self.answers.out.len() >= OUT_BYTES_SOFT_MAX
            {
                break false;
            }
            let bound = match self.handshaken {
                true => self.shared.limits.frame_size_bytes_max,
                false => HANDSHAKE_FRAME_BYTES_MAX,
            };
            let buffered = self.input.get(self.start..).unwrap_or_default();
            match decode_frame(buffered, bound) {
                Decoded::NeedMore { frame_len } => {
                    self.frame_len = frame_len;
                    break false;
                }
                Decoded::Error { error, skip } => {
                    self.shared.stats.bad_frames.inc();
                    let error = self.before_handshake(error);
                    match skip {
                        Some(n) if self.handshaken => {
                            self.answers.error(self.shared, &error).await;
                            self.start += n;
                            self.frame_began = None;
                        }
                        _ => {
                            let error = ProtocolError::new(closing(error.code), error.message);
                            self.answers.error(self.shared, &error).await;
                            break true;
                        }
                    }
                }
                Decoded::Frame(frame) => {
                    let consumed = frame.consumed;
                    if self.handshaken {
                        handle(self.shared, &mut self.answers, frame).await;
                    } else {
                        match check_hello(self.shared, frame) {
                            Ok(()) => self.accept_hello(),
                            Err(e) => {
                                self.shared.stats.bad_frames.inc();
                                self.answers.error(self.shared, &e).await;
                                break true;
                            }
                        }
                    }
                    self.start += consumed;
                    self.frame_began = None;
                }
            }
        };
        self.answers.settle(self.shared).await;
        refused
    }

    /// Marks the handshake done and queues the server's HELLO.
    fn accept_hello(&mut self) {
        self.handshaken = true;
        self.answers.count += 1;
        Response::Hello(ServerHello {
            version: PROTOCOL_VERSION,
            limits: self.shared.limits,
        })
        .encode(&mut self.answers.out);
        self.shared.stats.op(Opcode::Hello).requests.inc();
    }

    /// Before the handshake every problem is a bad handshake.
    fn before_handshake(&self, e: ProtocolError) -> ProtocolError {
        if self.handshaken {
            return e;
        }
        ProtocolError::new(
            ErrorCode::BadHandshake,
            format!("expected a HELLO frame first: {}", e.message),
        )
    }

    /// Writes the queued answers; false if the socket failed or the client
    /// did not take them within the idle timeout.
    async fn write<S: ConnStream>(&mut self, stream: &S) -> bool {
        let out = std::mem::take(&mut self.answers.out);
        let n = out.len() as u64;
        let write = stream.write_all(out);
        match tokio::time::timeout(self.shared.config.idle_timeout, write).await {
            Ok((Ok(()), mut buf)) => {
                self.shared.stats.bytes_out.add(n);
                buf.clear();
                if buf.capacity() > OUT_BYTES_SOFT_MAX * 2 {
                    buf = Vec::new();
                }
                self.answers.out = buf;
                true
            }
            _ => false,
        }
    }

    /// Queues a closing ERROR, writes it and reports the connection refused.
    async fn refuse<S: ConnStream>(&mut self, stream: &S, code: ErrorCode, msg: &str) -> End {
        write_error(&mut self.answers.out, &ProtocolError::new(code, msg));
        if self.write(stream).await {
            End::Refused
        } else {
            End::Broken
        }
    }

    /// Drops consumed bytes from the read buffer and gives back a large
    /// buffer once it is empty.
    fn compact(&mut self) {
        if self.start == 0 {
            return;
        }
        self.input.drain(..self.start.min(self.input.len()));
        self.start = 0;
        if self.input.is_empty() && self.input.capacity() > READ_BUFFER_KEEP_BYTES {
            self.input = Vec::new();
        }
    }
}

/// Checks that the first frame is an acceptable HELLO.
fn check_hello(shared: &Shared, frame: RawFrame<'_>) -> Result<(), ProtocolError> {
    if frame.opcode != Opcode::Hello as u8 {
        return Err(ProtocolError::new(
            ErrorCode::BadHandshake,
            format!(
                "expected a HELLO frame (opcode 0x01) first, got opcode 0x{:02x}",
                frame.opcode
            ),
        ));
    }
    let hello = ClientHello::decode(frame.body)?;
    if hello.version != PROTOCOL_VERSION {
        return Err(ProtocolError::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "protocol version {} is not supported; this server speaks {PROTOCOL_VERSION}",
                hello.version
            ),
        ));
    }
    match &shared.auth_token {
        Some(token) if !tokens_equal(hello.token, token) => Err(ProtocolError::new(
            ErrorCode::AuthFailed,
            "missing or wrong auth token",
        )),
        _ => Ok(()),
    }
}

/// A code that closes the connection: `code` itself if it does, otherwise
/// `bad_handshake` (used when the frame boundary is lost before the HELLO).
fn closing(code: ErrorCode) -> ErrorCode {
    if code.is_closing() {
        code
    } else {
        ErrorCode::BadHandshake
    }
}

/// Shuts down the sending side, then reads and discards until the peer
/// closes, [`LINGER`] passes or [`LINGER_BYTES_MAX`] bytes were dropped.
async fn linger_close<S: ConnStream>(stream: &S) {
    let _ = stream.shutdown(Shutdown::Write);
    let drain = async {
        let mut buf = Vec::with_capacity(READ_CHUNK_BYTES);
        let mut total = 0;
        while total < LINGER_BYTES_MAX {
            let (res, b) = stream.read(buf).await;
            buf = b;
            buf.clear();
            match res {
                Ok(n) if n > 0 => total += n,
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}
