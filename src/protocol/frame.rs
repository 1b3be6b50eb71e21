//! Frames: the length-prefixed envelope around every request and response,
//! and [`decode_frame`], the incremental decoder.
//!
//! ```text
//! +--------------------+-----------+------------------------+
//! | length: u32 LE     | opcode u8 | body (length - 1 bytes)|
//! +--------------------+-----------+------------------------+
//!   bytes 0..4           byte 4      bytes 5..4+length
//! ```
//!
//! `length` counts the opcode and the body, not itself; it is at least 1
//! and at most the receiver's `frame_size_bytes_max`. The decoder looks at
//! the length before anything else, so a frame over the bound is refused
//! before a byte of it is buffered. It never allocates: it works on the
//! caller's buffer and hands back a borrowed body.

use super::error_code::{ErrorCode, ProtocolError};

/// Bytes of the length field.
pub const FRAME_HEADER_LEN: usize = 4;

/// One complete frame found at the front of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawFrame<'a> {
    /// The opcode byte.
    pub opcode: u8,
    /// The body after the opcode.
    pub body: &'a [u8],
    /// Bytes of the buffer the frame occupies (header included).
    pub consumed: usize,
}

/// What [`decode_frame`] found at the front of a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// The buffer holds no complete frame yet. `frame_len` is the total
    /// size of the frame being received (header included) once its length
    /// field is in, so the caller can size its next read.
    NeedMore {
        /// Total bytes of the pending frame, if its header has arrived.
        frame_len: Option<usize>,
    },
    /// A complete frame.
    Frame(RawFrame<'a>),
    /// The bytes are not a frame. With `skip: Some(n)` the frame boundary
    /// is still known: drop `n` bytes and go on. With `None` the stream
    /// cannot be resynchronised and must be closed after the error is sent.
    Error {
        /// What is wrong.
        error: ProtocolError,
        /// Bytes to drop to reach the next frame, if that is known.
        skip: Option<usize>,
    },
}

/// Decodes the frame at the front of `buf`, refusing lengths over
/// `frame_size_bytes_max`.
pub fn decode_frame(buf: &[u8], frame_size_bytes_max: usize) -> Decoded<'_> {
    let Some((header, rest)) = buf.split_first_chunk::<FRAME_HEADER_LEN>() else {
        return Decoded::NeedMore { frame_len: None };
    };
    let len = u32::from_le_bytes(*header) as usize;
    if len > frame_size_bytes_max {
        return Decoded::Error {
            error: ProtocolError::new(
                ErrorCode::FrameTooLarge,
                format!("frame of {len} bytes exceeds frame_size_bytes_max {frame_size_bytes_max}"),
            ),
            skip: None,
        };
    }
    if len == 0 {
        return Decoded::Error {
            error: ProtocolError::malformed("frame length 0: a frame holds at least its opcode"),
            skip: Some(FRAME_HEADER_LEN),
        };
    }
    if rest.len() < len {
        return Decoded::NeedMore {
            frame_len: Some(FRAME_HEADER_LEN + len),
        };
    }
    let (frame, _) = rest.split_at(len);
    match frame.split_first() {
        Some((&opcode, body)) => Decoded::Frame(RawFrame {
            opcode,
            body,
            consumed: FRAME_HEADER_LEN + len,
        }),
        None => Decoded::NeedMore { frame_len: None },
    }
}

/// Starts a frame in `out`: a length placeholder and the opcode. Returns
/// the frame's start, to pass to [`end_frame`].
pub fn begin_frame(out: &mut Vec<u8>, opcode: u8) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, opcode]);
    start
}

/// Finishes the frame begun at `start` by writing its length. A frame over
/// `u32::MAX` bytes gets length `u32::MAX`, which every receiver refuses.
pub fn end_frame(out: &mut [u8], start: usize) {
    let len = out.len().saturating_sub(start + FRAME_HEADER_LEN);
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    if let Some(header) = out.get_mut(start..start + FRAME_HEADER_LEN) {
        header.copy_from_slice(&len.to_le_bytes());
    }
}

/// Bytes a frame with a body of `body_len` bytes occupies.
pub const fn frame_len(body_len: usize) -> usize {
    FRAME_HEADER_LEN + 1 + body_len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(opcode: u8, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let start = begin_frame(&mut out, opcode);
        out.extend_from_slice(body);
        end_frame(&mut out, start);
        out
    }

    #[test]
    fn decodes_incrementally() {
        let mut buf = frame(0x10, b"hello");
        buf.extend(frame(0x02, b""));
        for cut in 0..10 {
            let expected = if cut < 4 { None } else { Some(10) };
            assert_eq!(
                decode_frame(&buf[..cut], 100),
                Decoded::NeedMore {
                    frame_len: expected
                }
            );
        }
        let Decoded::Frame(f) = decode_frame(&buf, 100) else {
            panic!("no frame")
        };
        assert_eq!((f.opcode, f.body, f.consumed), (0x10, &b"hello"[..], 10));
        let Decoded::Frame(g) = decode_frame(&buf[10..], 100) else {
            panic!("no frame")
        };
        assert_eq!((g.opcode, g.body, g.consumed), (0x02, &b""[..], 5));
    }

    #[test]
    fn refuses_large_and_empty_frames() {
        let huge = [0xff, 0xff, 0xff, 0xff];
        match decode_frame(&huge, 1 << 20) {
            Decoded::Error { error, skip: None } => {
                assert_eq!(error.code, ErrorCode::FrameTooLarge);
                assert_eq!(
                    error.message,
                    "frame of 4294967295 bytes exceeds frame_size_bytes_max 1048576"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        match decode_frame(&[0, 0, 0, 0, 9], 10) {
            Decoded::Error {
                error,
                skip: Some(4),
            } => assert_eq!(error.code, ErrorCode::MalformedBody),
            other => panic!("unexpected {other:?}"),
        }
    }
}
