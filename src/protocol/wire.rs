//! Primitive field encoders and [`Reader`], the bounds-checked cursor that
//! every body decoder uses.
//!
//! All integers are little-endian. A byte string is a `u32` length followed
//! by that many bytes. The reader checks every length against the bound
//! the caller names *and* against the bytes actually left in the body
//! before it hands out a slice, so no decoder ever allocates on the word of
//! a length field.

use super::error_code::{ErrorCode, ProtocolError};

/// Appends a `u16`.
pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends a `u32`.
pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends a `u64`.
pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends a length as `u32`, saturating: a length over `u32::MAX` becomes
/// `u32::MAX`, which every decoder rejects as over its bound.
pub fn put_len(out: &mut Vec<u8>, len: usize) {
    put_u32(out, u32::try_from(len).unwrap_or(u32::MAX));
}

/// Appends a byte string: `u32` length, then the bytes.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

/// Encoded size of a byte string of `len` bytes.
pub const fn bytes_len(len: usize) -> usize {
    4 + len
}

/// A cursor over one frame body.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `body`.
    pub fn new(body: &'a [u8]) -> Self {
        Reader { buf: body }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ProtocolError> {
        if self.buf.len() < n {
            return Err(ProtocolError::malformed(format!(
                "body ends inside {what}: needs {n} bytes, {} left",
                self.buf.len()
            )));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ProtocolError> {
        let b = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    /// Reads a `u8`.
    pub fn u8(&mut self, what: &str) -> Result<u8, ProtocolError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// Reads a `u16`.
    pub fn u16(&mut self, what: &str) -> Result<u16, ProtocolError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    /// Reads a `u32`.
    pub fn u32(&mut self, what: &str) -> Result<u32, ProtocolError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// Reads a `u64`.
    pub fn u64(&mut self, what: &str) -> Result<u64, ProtocolError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Reads `n` raw bytes.
    pub fn raw(&mut self, n: usize, what: &str) -> Result<&'a [u8], ProtocolError> {
        self.take(n, what)
    }

    /// Reads a byte string of at most `max` bytes; a longer one is a
    /// `too_large` error whose message names `bound` (e.g.
    /// `key_size_bytes_max`).
    pub fn bytes(
        &mut self,
        what: &str,
        max: usize,
        too_large: ErrorCode,
        bound: &str,
    ) -> Result<&'a [u8], ProtocolError> {
        let len = self.u32(what)? as usize;
        if len > max {
            return Err(ProtocolError::new(
                too_large,
                format!("{what} of {len} bytes exceeds {bound} {max}"),
            ));
        }
        self.take(len, what)
    }

    /// Reads a count of items each at least `item_bytes_min` long, at most
    /// `max`; checks that the rest of the body can hold that many, so the
    /// caller may reserve room for them.
    pub fn count(
        &mut self,
        what: &str,
        max: usize,
        too_many: ErrorCode,
        bound: &str,
        item_bytes_min: usize,
    ) -> Result<usize, ProtocolError> {
        let n = self.u32(what)? as usize;
        if n > max {
            return Err(ProtocolError::new(
                too_many,
                format!("{what} {n} exceeds {bound} {max}"),
            ));
        }
        if n.saturating_mul(item_bytes_min) > self.buf.len() {
            return Err(ProtocolError::malformed(format!(
                "{what} {n} cannot fit in the {} bytes left in the body",
                self.buf.len()
            )));
        }
        Ok(n)
    }

    /// Fails unless every byte was read.
    pub fn finish(self, what: &str) -> Result<(), ProtocolError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::malformed(format!(
                "{} trailing bytes after the {what} body",
                self.buf.len()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_was_written_and_rejects_short_or_long() {
        let mut out = Vec::new();
        put_u16(&mut out, 7);
        put_u32(&mut out, 8);
        put_u64(&mut out, 9);
        put_bytes(&mut out, b"abc");
        let mut r = Reader::new(&out);
        assert_eq!(r.u16("a").unwrap(), 7);
        assert_eq!(r.u32("b").unwrap(), 8);
        assert_eq!(r.u64("c").unwrap(), 9);
        assert_eq!(
            r.bytes("key", 3, ErrorCode::KeyTooLarge, "k").unwrap(),
            b"abc"
        );
        r.finish("test").unwrap();

        let mut r = Reader::new(&out[14..]);
        let e = r
            .bytes("key", 2, ErrorCode::KeyTooLarge, "key_size_bytes_max")
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::KeyTooLarge);
        assert_eq!(e.message, "key of 3 bytes exceeds key_size_bytes_max 2");

        let mut r = Reader::new(&out[14..16]);
        assert_eq!(
            r.bytes("key", 9, ErrorCode::KeyTooLarge, "k")
                .unwrap_err()
                .code,
            ErrorCode::MalformedBody
        );
    }

    #[test]
    fn count_checks_bound_and_room() {
        let mut out = Vec::new();
        put_u32(&mut out, 1_000_000);
        let e = Reader::new(&out)
            .count("keys", 10, ErrorCode::TooManyKeys, "mget_keys_max", 4)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::TooManyKeys);
        let e = Reader::new(&out)
            .count("keys", usize::MAX, ErrorCode::TooManyKeys, "m", 4)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::MalformedBody);
    }
}
