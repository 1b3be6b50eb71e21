//! The WAL record format.
//!
//! A segment is a pre-zeroed file of records laid end to end. Records do
//! not respect block boundaries; the writer rewrites the partly filled last
//! 4 KiB block with the same leading bytes on the next group.
//!
//! ```text
//! offset  size  field
//! 0       4     crc32 (crc32fast, IEEE) of bytes 4 .. 16+len, u32 LE
//! 4       4     len: payload length, u32 LE (1 ..= RECORD_PAYLOAD_BYTES_MAX)
//! 8       4     segment number, u32 LE (the file's own number)
//! 12      4     durable offset: how far the segment was known durable when
//!               this record was written, u32 LE (<= this record's offset;
//!               in the sync mode, where the record's write group starts)
//! 16      len   payload: one encoded WriteBatch (see crate::batch)
//! ```
//!
//! A zero header marks the end of data (segments are pre-zeroed). The
//! segment number rejects a record from any other file; the durable offset
//! tells a torn tail (writes not yet synced, which a crash may leave in any
//! order and state) from damage to data that was already synced: a valid
//! record whose durable offset lies beyond a bad spot proves the bad spot
//! had been synced (see `reader`).

/// Bytes of a record header.
pub const HEADER_LEN: usize = 16;

/// Largest payload of one record.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 256 << 20;

/// A decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The stored checksum.
    pub crc: u32,
    /// Payload length.
    pub len: u32,
    /// The segment the record claims to belong to.
    pub segment: u32,
    /// How far the segment was durable when the record was written.
    pub group_offset: u32,
}

impl Header {
    /// Parses the 16 bytes at the start of `b`.
    pub fn parse(b: &[u8]) -> Option<Header> {
        let h = b.get(..HEADER_LEN)?;
        let word = |i: usize| -> Option<u32> {
            Some(u32::from_le_bytes(h.get(i..i + 4)?.try_into().ok()?))
        };
        Some(Header {
            crc: word(0)?,
            len: word(4)?,
            segment: word(8)?,
            group_offset: word(12)?,
        })
    }

    /// Whether every field is zero (the pre-zeroed end of data).
    pub fn is_zero(&self) -> bool {
        self.crc == 0 && self.len == 0 && self.segment == 0 && self.group_offset == 0
    }
}

/// Appends a framed record.
pub fn encode_record(out: &mut Vec<u8>, segment: u32, group_offset: u32, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&segment.to_le_bytes());
    out.extend_from_slice(&group_offset.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Checks the record at the start of `b` against `segment`; returns the
/// header and payload if it is whole and its checksum matches.
pub fn check_record(b: &[u8], segment: u32) -> Option<(Header, &[u8])> {
    let h = Header::parse(b)?;
    let len = h.len as usize;
    if h.segment != segment || len == 0 || len > RECORD_PAYLOAD_BYTES_MAX {
        return None;
    }
    let body = b.get(4..HEADER_LEN + len)?;
    if crc32fast::hash(body) != h.crc {
        return None;
    }
    Some((h, &body[HEADER_LEN - 4..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 7, 0, b"payload");
        let (h, p) = check_record(&buf, 7).unwrap();
        assert_eq!((h.len, h.segment, p), (7, 7, &b"payload"[..]));
        assert!(check_record(&buf, 8).is_none(), "wrong segment");
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert!(check_record(&bad, 7).is_none(), "flip at {i}");
        }
        assert!(check_record(&buf[..buf.len() - 1], 7).is_none());
    }
}
