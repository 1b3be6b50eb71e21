//! [`ErrorCode`] and [`ProtocolError`]: what an ERROR response says.
//!
//! Every problem the server reports has a stable `u16` code (the wire
//! value) and a human message naming the bound or field at fault. Codes
//! marked *closing* mean the server cannot or will not go on reading the
//! connection (it has lost the frame boundary, or the peer is not allowed
//! in): it sends the error frame, then closes.

use std::fmt;

/// The wire value of an ERROR response's code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// A frame's length field exceeds `frame_size_bytes_max`. Closing.
    FrameTooLarge = 1,
    /// The first frame is not a valid HELLO. Closing.
    BadHandshake = 2,
    /// The HELLO names a protocol version this server does not speak. Closing.
    UnsupportedVersion = 3,
    /// The HELLO's auth token is missing or wrong. Closing.
    AuthFailed = 4,
    /// The opcode is not a request this server knows.
    UnknownOpcode = 5,
    /// The body does not parse as the opcode's body.
    MalformedBody = 6,
    /// A key exceeds `key_size_bytes_max`.
    KeyTooLarge = 7,
    /// A value exceeds `value_size_bytes_max`.
    ValueTooLarge = 8,
    /// A batch exceeds `batch_size_bytes_max` or `batch_ops_max`.
    BatchTooLarge = 9,
    /// An MGET names more than `mget_keys_max` keys.
    TooManyKeys = 10,
    /// A SCAN asks for more than `scan_limit_max` pairs.
    ScanLimitTooLarge = 11,
    /// A well-formed request that cannot be served (empty key, limit 0).
    InvalidArgument = 12,
    /// The answer would exceed `frame_size_bytes_max`; ask for less.
    ResponseTooLarge = 13,
    /// The server already serves `connections_max` connections. Closing.
    TooManyConnections = 14,
    /// A partial frame (or no HELLO) stayed incomplete past the read
    /// timeout. Closing.
    ReadTimeout = 15,
    /// The server is stopping. Closing.
    ShuttingDown = 16,
    /// The engine failed to read or write (IO error, corruption).
    Storage = 20,
    /// An earlier failed write poisoned the database; it refuses writes.
    Poisoned = 21,
    /// The database is closed.
    Closed = 22,
    /// A bug in the server; the message says where.
    Internal = 23,
}

impl ErrorCode {
    /// Every code, in wire order.
    pub const ALL: [ErrorCode; 20] = [
        ErrorCode::FrameTooLarge,
        ErrorCode::BadHandshake,
        ErrorCode::UnsupportedVersion,
        ErrorCode::AuthFailed,
        ErrorCode::UnknownOpcode,
        ErrorCode::MalformedBody,
        ErrorCode::KeyTooLarge,
        ErrorCode::ValueTooLarge,
        ErrorCode::BatchTooLarge,
        ErrorCode::TooManyKeys,
        ErrorCode::ScanLimitTooLarge,
        ErrorCode::InvalidArgument,
        ErrorCode::ResponseTooLarge,
        ErrorCode::TooManyConnections,
        ErrorCode::ReadTimeout,
        ErrorCode::ShuttingDown,
        ErrorCode::Storage,
        ErrorCode::Poisoned,
        ErrorCode::Closed,
        ErrorCode::Internal,
    ];

    /// Decodes a wire value; `None` for codes this build does not know.
    pub fn from_u16(v: u16) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| *c as u16 == v)
    }

    /// A short snake_case name, used in messages and metrics.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::BadHandshake => "bad_handshake",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::UnknownOpcode => "unknown_opcode",
            ErrorCode::MalformedBody => "malformed_body",
            ErrorCode::KeyTooLarge => "key_too_large",
            ErrorCode::ValueTooLarge => "value_too_large",
            ErrorCode::BatchTooLarge => "batch_too_large",
            ErrorCode::TooManyKeys => "too_many_keys",
            ErrorCode::ScanLimitTooLarge => "scan_limit_too_large",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::ResponseTooLarge => "response_too_large",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::ReadTimeout => "read_timeout",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Storage => "storage",
            ErrorCode::Poisoned => "poisoned",
            ErrorCode::Closed => "closed",
            ErrorCode::Internal => "internal",
        }
    }

    /// Whether the server closes the connection after sending this error.
    pub fn is_closing(self) -> bool {
        matches!(
            self,
            ErrorCode::FrameTooLarge
                | ErrorCode::BadHandshake
                | ErrorCode::UnsupportedVersion
                | ErrorCode::AuthFailed
                | ErrorCode::TooManyConnections
                | ErrorCode::ReadTimeout
                | ErrorCode::ShuttingDown
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A problem found while decoding or serving a request: the code sent on
/// the wire and a message naming what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    /// The wire code.
    pub code: ErrorCode,
    /// What is wrong, e.g. "key of 70000 bytes exceeds key_size_bytes_max 65536".
    pub message: String,
}

impl ProtocolError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
        }
    }

    /// A [`ErrorCode::MalformedBody`] error.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::MalformedBody, message)
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ProtocolError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_u16(c as u16), Some(c));
        }
        let mut names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        assert_eq!(ErrorCode::from_u16(0), None);
        assert_eq!(ErrorCode::from_u16(999), None);
    }
}
