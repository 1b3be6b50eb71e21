//! The wire protocol between `cityhall` clients and the server: frames,
//! the handshake, requests, responses and their bounds.
//!
//! This module owns the format and nothing else: no sockets, no engine.
//! The server, the CLI client, the load generator and the tests all encode
//! and decode through it, so none of them can drift from the format.
//! Decoders work on byte slices, never allocate on the word of a length
//! field, and never panic on any input (a property test feeds them random
//! bytes).
//!
//! # Frames
//!
//! Every message in either direction is one frame:
//!
//! ```text
//! offset 0        4         5
//!        +--------+---------+---------------------------+
//!        | length | opcode  | body                      |
//!        | u32 LE | u8      | length - 1 bytes          |
//!        +--------+---------+---------------------------+
//! ```
//!
//! `length` counts the opcode and body (so it is at least 1) and is at most
//! [`Limits::frame_size_bytes_max`]. Integers are little-endian; a `bytes`
//! field is a `u32` length then that many bytes.
//!
//! # A connection
//!
//! 1. The client sends HELLO (magic `CTYH`, version, optional auth token);
//!    the server answers HELLO with its version and [`Limits`], or an
//!    ERROR and closes. See [`handshake`].
//! 2. The client sends requests, as many as it likes without waiting
//!    (pipelining); the server answers each exactly once, in order. There is
//!    no request id: the n-th response answers the n-th request.
//! 3. A request that is malformed, over a bound or of an unknown opcode is
//!    answered with an ERROR and the connection goes on, because the frame
//!    boundary is still known. A length over the frame bound, a bad
//!    handshake, too many connections, a read timeout or a server shutdown
//!    is answered with an ERROR whose *closing* flag is set, then the server
//!    closes the connection.
//!
//! Opcodes are listed in [`opcode`], request bodies in [`request`],
//! response bodies in [`response`], error codes in [`ErrorCode`].
//!
//! # Example: `PUT "k" = "v"` and its answer
//!
//! ```text
//! 0b 00 00 00   length 11 = opcode + 4 + 1 + 4 + 1
//! 11            PUT
//! 01 00 00 00   key length 1
//! 6b            "k"
//! 01 00 00 00   value length 1
//! 76            "v"
//!
//! 01 00 00 00   length 1
//! 80            OK
//! ```

pub mod error_code;
pub mod frame;
pub mod handshake;
pub mod limits;
pub mod metrics_codec;
pub mod opcode;
pub mod request;
pub mod response;
pub mod ts;
pub mod wire;

pub use error_code::{ErrorCode, ProtocolError};
pub use frame::{decode_frame, Decoded, RawFrame, FRAME_HEADER_LEN};
pub use handshake::{ClientHello, ServerHello, HANDSHAKE_FRAME_BYTES_MAX, MAGIC, PROTOCOL_VERSION};
pub use limits::Limits;
pub use opcode::{Opcode, ResponseOpcode};
pub use request::{Request, ScanRange};
pub use response::{ErrorResponse, Response, ScanPage};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds arbitrary bytes through the request and response decoders the
    /// way the server and client do: no panic, every frame accounted for.
    fn decode_all(mut buf: &[u8], limits: &Limits) {
        loop {
            match decode_frame(buf, limits.frame_size_bytes_max) {
                Decoded::NeedMore { .. } => return,
                Decoded::Error { skip: None, .. } => return,
                Decoded::Error { skip: Some(n), .. } => buf = &buf[n..],
                Decoded::Frame(f) => {
                    let _ = Request::decode(f, limits);
                    let _ = Response::decode(f, limits);
                    buf = &buf[f.consumed..];
                }
            }
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let limits = Limits { frame_size_bytes_max: 256, ..Limits::default() };
            decode_all(&bytes, &limits);
        }

        #[test]
        fn random_bodies_never_panic(op in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let limits = Limits::default();
            let f = RawFrame { opcode: op, body: &body, consumed: 0 };
            let _ = Request::decode(f, &limits);
            let _ = Response::decode(f, &limits);
        }
    }
}
