//! The handshake: the client's HELLO and the server's HELLO answer.
//!
//! The first frame a client sends must be a HELLO; until it has been
//! accepted the server reads frames of at most
//! [`HANDSHAKE_FRAME_BYTES_MAX`] bytes, so a peer that is not speaking this
//! protocol (an HTTP request, random bytes) is refused after its first four
//! bytes.
//!
//! ```text
//! HELLO request (opcode 0x01), body:
//! +--------+-------------+---------------+------------------+
//! | "CTYH" | version u16 | token len u16 | token (len bytes)|
//! +--------+-------------+---------------+------------------+
//!  0..4     4..6          6..8            8..8+len
//!
//! HELLO response (opcode 0x81), body:
//! +--------+-------------+--------------------------------------------+
//! | "CTYH" | version u16 | 7 x u32 limits (see protocol::Limits):      |
//! |        |             | frame, key, value, batch bytes; batch ops, |
//! |        |             | mget keys, scan limit                      |
//! +--------+-------------+--------------------------------------------+
//!  0..4     4..6          6..34
//! ```
//!
//! A wrong magic is `bad_handshake`, another version `unsupported_version`,
//! a missing or wrong token (when the server has one) `auth_failed`; all
//! three close the connection.

use super::limits::Limits;
use super::wire::{put_u16, Reader};
use super::{ErrorCode, ProtocolError};

/// The four bytes every HELLO starts with.
pub const MAGIC: [u8; 4] = *b"CTYH";

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// Longest auth token.
pub const AUTH_TOKEN_BYTES_MAX: usize = 1_024;

/// Largest frame accepted before the handshake completes.
pub const HANDSHAKE_FRAME_BYTES_MAX: usize = 1 + 4 + 2 + 2 + AUTH_TOKEN_BYTES_MAX;

/// The client's HELLO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// The protocol version the client speaks.
    pub version: u16,
    /// The auth token; empty when the client has none.
    pub token: &'a [u8],
}

impl<'a> ClientHello<'a> {
    /// Appends the body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        put_u16(out, self.version);
        let len = self.token.len().min(usize::from(u16::MAX));
        put_u16(out, u16::try_from(len).unwrap_or(u16::MAX));
        out.extend_from_slice(self.token.get(..len).unwrap_or_default());
    }

    /// Parses a body. Any problem is `bad_handshake` (the version is only
    /// checked by the server, which knows which ones it speaks).
    pub fn decode(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let bad = |e: ProtocolError| ProtocolError::new(ErrorCode::BadHandshake, e.message);
        let mut r = Reader::new(body);
        let magic = r.raw(4, "magic").map_err(bad)?;
        if magic != MAGIC {
            return Err(ProtocolError::new(
                ErrorCode::BadHandshake,
                format!("HELLO magic is {magic:02x?}, expected \"CTYH\""),
            ));
        }
        let version = r.u16("version").map_err(bad)?;
        let len = usize::from(r.u16("token length").map_err(bad)?);
        if len > AUTH_TOKEN_BYTES_MAX {
            return Err(ProtocolError::new(
                ErrorCode::BadHandshake,
                format!("auth token of {len} bytes exceeds {AUTH_TOKEN_BYTES_MAX}"),
            ));
        }
        let token = r.raw(len, "auth token").map_err(bad)?;
        r.finish("HELLO").map_err(bad)?;
        Ok(ClientHello { version, token })
    }
}

/// The server's HELLO answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerHello {
    /// The protocol version the connection uses.
    pub version: u16,
    /// The bounds the server enforces.
    pub limits: Limits,
}

impl ServerHello {
    /// Appends the body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        put_u16(out, self.version);
        self.limits.encode(out);
    }

    /// Parses a body.
    pub fn decode(body: &[u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(body);
        if r.raw(4, "magic")? != MAGIC {
            return Err(ProtocolError::new(
                ErrorCode::BadHandshake,
                "server HELLO has the wrong magic",
            ));
        }
        let version = r.u16("version")?;
        let limits = Limits::decode(&mut r)?;
        r.finish("HELLO answer")?;
        Ok(ServerHello { version, limits })
    }
}

/// Compares two tokens in time that depends only on their lengths.
pub fn tokens_equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips() {
        let h = ClientHello {
            version: PROTOCOL_VERSION,
            token: b"secret",
        };
        let mut out = Vec::new();
        h.encode(&mut out);
        assert!(out.len() < HANDSHAKE_FRAME_BYTES_MAX);
        assert_eq!(ClientHello::decode(&out).unwrap(), h);
        out[0] = b'X';
        assert_eq!(
            ClientHello::decode(&out).unwrap_err().code,
            ErrorCode::BadHandshake
        );
        for cut in 0..out.len() {
            assert!(ClientHello::decode(&out[..cut]).is_err());
        }

        let s = ServerHello {
            version: PROTOCOL_VERSION,
            limits: Limits::default(),
        };
        let mut out = Vec::new();
        s.encode(&mut out);
        assert_eq!(ServerHello::decode(&out).unwrap(), s);
    }

    #[test]
    fn token_compare() {
        assert!(tokens_equal(b"abc", b"abc"));
        assert!(!tokens_equal(b"abc", b"abd"));
        assert!(!tokens_equal(b"abc", b"ab"));
        assert!(tokens_equal(b"", b""));
    }
}
