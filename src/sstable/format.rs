//! Block framing, block handles and the footer: the fixed parts of the
//! table format.
//!
//! Every block (data, filter, index) is stored framed:
//!
//! ```text
//! +---------------------------+-----------------+-----------------------+
//! | payload (size bytes)      | type u8         | crc32 u32 LE          |
//! +---------------------------+-----------------+-----------------------+
//! type: 0 = raw, 1 = Snappy (raw format, `snap::raw`)
//! crc32 (crc32fast) covers payload ++ type
//! ```
//!
//! The payload is Snappy-compressed only when that saves at least 1/8 of
//! its size. A [`BlockHandle`] names a block by the offset of its payload
//! and the payload's size; the 5-byte trailer follows the payload.
//!
//! The footer is the last 72 bytes of the file:
//!
//! ```text
//! offset  size  field
//!      0     8  filter block offset   u64 LE
//!      8     8  filter block size     u64 LE
//!     16     8  index block offset    u64 LE
//!     24     8  index block size      u64 LE
//!     32     8  entry count           u64 LE
//!     40     8  smallest sequence     u64 LE
//!     48     8  largest sequence      u64 LE
//!     56     4  format version        u32 LE (1)
//!     60     4  crc32 of bytes 0..60  u32 LE
//!     64     8  magic                 u64 LE, the bytes "CHSSTBL1"
//! ```
//!
//! Decoding never trusts a length: every size is checked against the bytes
//! that are there and against [`BLOCK_PAYLOAD_BYTES_MAX`].

use crate::sstable::block::{Malformed, BLOCK_PAYLOAD_BYTES_MAX};
use crate::varint;

/// Bytes after each block payload: compression type and crc32.
pub const BLOCK_TRAILER_LEN: usize = 5;
/// Bytes of the footer.
pub const FOOTER_LEN: usize = 72;
/// The last eight bytes of every table file.
pub const TABLE_MAGIC: u64 = u64::from_le_bytes(*b"CHSSTBL1");
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const TYPE_RAW: u8 = 0;
const TYPE_SNAPPY: u8 = 1;

/// Where a block's payload lies in the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockHandle {
    /// Offset of the payload.
    pub offset: u64,
    /// Bytes of the payload (the trailer not included).
    pub size: u64,
}

impl BlockHandle {
    /// Offset just past the block's trailer.
    pub fn end(&self) -> Option<u64> {
        self.offset
            .checked_add(self.size)?
            .checked_add(BLOCK_TRAILER_LEN as u64)
    }

    /// Appends the handle as two varints (the index block's values).
    pub fn encode_varint(&self, out: &mut Vec<u8>) {
        varint::put(out, self.offset);
        varint::put(out, self.size);
    }

    /// Decodes a handle written by [`BlockHandle::encode_varint`]; the
    /// bytes must hold exactly the two varints.
    pub fn decode_varint(mut data: &[u8]) -> Result<Self, Malformed> {
        let offset = varint::get(&mut data).ok_or("truncated block handle")?;
        let size = varint::get(&mut data).ok_or("truncated block handle")?;
        if !data.is_empty() {
            return Err("trailing bytes after a block handle");
        }
        Ok(BlockHandle { offset, size })
    }
}

/// Frames a block payload: compresses it when that pays, and returns the
/// bytes to store and the trailer to append after them.
pub struct Framer {
    encoder: snap::raw::Encoder,
    scratch: Vec<u8>,
    compress: bool,
}

impl std::fmt::Debug for Framer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framer")
            .field("compress", &self.compress)
            .finish()
    }
}

impl Framer {
    /// A framer; `compress` enables Snappy.
    pub fn new(compress: bool) -> Self {
        Framer {
            encoder: snap::raw::Encoder::new(),
            scratch: Vec::new(),
            compress,
        }
    }

    /// The stored payload (raw or compressed) and its 5-byte trailer.
    pub fn frame<'a>(&'a mut self, raw: &'a [u8]) -> (&'a [u8], [u8; BLOCK_TRAILER_LEN]) {
        let mut kind = TYPE_RAW;
        let mut payload = raw;
        if self.compress && raw.len() >= 64 {
            self.scratch
                .resize(snap::raw::max_compress_len(raw.len()), 0);
            if let Ok(n) = self.encoder.compress(raw, &mut self.scratch) {
                if n <= raw.len() - raw.len() / 8 {
                    kind = TYPE_SNAPPY;
                    payload = self.scratch.get(..n).unwrap_or(raw);
                }
            }
        }
        let mut h = crc32fast::Hasher::new();
        h.update(payload);
        h.update(&[kind]);
        let crc = h.finalize().to_le_bytes();
        (payload, [kind, crc[0], crc[1], crc[2], crc[3]])
    }
}

/// Checks and decodes a framed block: `framed` is the payload followed by
/// its trailer. Returns the raw (decompressed) payload.
pub fn unframe(framed: &[u8]) -> Result<Vec<u8>, Malformed> {
    let split = framed
        .len()
        .checked_sub(BLOCK_TRAILER_LEN)
        .ok_or("block shorter than its trailer")?;
    let (payload, trailer) = framed.split_at(split);
    let [kind, c0, c1, c2, c3] = <[u8; BLOCK_TRAILER_LEN]>::try_from(trailer)
        .map_err(|_| "block shorter than its trailer")?;
    let mut h = crc32fast::Hasher::new();
    h.update(payload);
    h.update(&[kind]);
    if h.finalize() != u32::from_le_bytes([c0, c1, c2, c3]) {
        return Err("block checksum mismatch");
    }
    match kind {
        TYPE_RAW => Ok(payload.to_vec()),
        TYPE_SNAPPY => {
            let n = snap::raw::decompress_len(payload).map_err(|_| "bad snappy header")?;
            // Snappy expands at most ~22x; a larger claim is damage.
            if n > BLOCK_PAYLOAD_BYTES_MAX || n > payload.len().saturating_mul(32) {
                return Err("decompressed block size over the limit");
            }
            let mut out = vec![0u8; n];
            let got = snap::raw::Decoder::new()
                .decompress(payload, &mut out)
                .map_err(|_| "snappy decompression failed")?;
            if got != n {
                return Err("snappy decompressed to the wrong size");
            }
            Ok(out)
        }
        _ => Err("unknown block compression type"),
    }
}

/// The decoded footer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footer {
    /// The filter block.
    pub filter: BlockHandle,
    /// The index block.
    pub index: BlockHandle,
    /// Entries in the table.
    pub entries: u64,
    /// Smallest sequence number of any entry (0 if none).
    pub smallest_seq: u64,
    /// Largest sequence number of any entry (0 if none).
    pub largest_seq: u64,
}

impl Footer {
    /// The footer's 72 bytes.
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut out = [0u8; FOOTER_LEN];
        let fields = [
            self.filter.offset,
            self.filter.size,
            self.index.offset,
            self.index.size,
            self.entries,
            self.smallest_seq,
            self.largest_seq,
        ];
        for (chunk, v) in out.chunks_exact_mut(8).zip(fields) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        out[56..60].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        let crc = crc32fast::hash(&out[..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        out[64..72].copy_from_slice(&TABLE_MAGIC.to_le_bytes());
        out
    }

    /// Decodes and checks a footer (magic, crc, version). Whether the
    /// handles fit the file is the reader's check.
    pub fn decode(b: &[u8; FOOTER_LEN]) -> Result<Footer, Malformed> {
        let u64_at = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(w)
        };
        let u32_at = |at: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&b[at..at + 4]);
            u32::from_le_bytes(w)
        };
        if u64_at(64) != TABLE_MAGIC {
            return Err("bad magic: not a CityHall table, or truncated");
        }
        if crc32fast::hash(&b[..60]) != u32_at(60) {
            return Err("footer checksum mismatch");
        }
        if u32_at(56) != FORMAT_VERSION {
            return Err("unsupported table format version");
        }
        Ok(Footer {
            filter: BlockHandle {
                offset: u64_at(0),
                size: u64_at(8),
            },
            index: BlockHandle {
                offset: u64_at(16),
                size: u64_at(24),
            },
            entries: u64_at(32),
            smallest_seq: u64_at(40),
            largest_seq: u64_at(48),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(raw: &[u8], compress: bool) -> Vec<u8> {
        let mut f = Framer::new(compress);
        let (payload, trailer) = f.frame(raw);
        let mut out = payload.to_vec();
        out.extend_from_slice(&trailer);
        out
    }

    #[test]
    fn frames_round_trip_and_compress_when_it_pays() {
        let text = b"abcdefgh".repeat(200);
        let c = framed(&text, true);
        assert!(c.len() < text.len() / 2, "compressible data is compressed");
        assert_eq!(c[c.len() - 5], TYPE_SNAPPY);
        assert_eq!(unframe(&c).unwrap(), text);
        let r = framed(&text, false);
        assert_eq!(r.len(), text.len() + BLOCK_TRAILER_LEN);
        assert_eq!(unframe(&r).unwrap(), text);
        // Pseudo-random bytes do not compress: stored raw.
        let mut x = 1u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect();
        let n = framed(&noise, true);
        assert_eq!(n[n.len() - 5], TYPE_RAW);
        assert_eq!(unframe(&n).unwrap(), noise);
    }

    #[test]
    fn damaged_frames_are_errors() {
        let text = b"abcdefgh".repeat(200);
        for compress in [true, false] {
            let good = framed(&text, compress);
            for at in 0..good.len() {
                let mut bad = good.clone();
                bad[at] ^= 0x10;
                assert!(unframe(&bad).is_err(), "flip at {at}");
            }
            assert!(unframe(&good[..good.len() - 1]).is_err());
            assert!(unframe(&good[..3]).is_err());
        }
    }

    #[test]
    fn footer_round_trip_and_checks() {
        let f = Footer {
            filter: BlockHandle {
                offset: 100,
                size: 20,
            },
            index: BlockHandle {
                offset: 125,
                size: 30,
            },
            entries: 9,
            smallest_seq: 3,
            largest_seq: 77,
        };
        let b = f.encode();
        assert_eq!(&b[64..], b"CHSSTBL1");
        assert_eq!(Footer::decode(&b).unwrap(), f);
        for at in 0..FOOTER_LEN {
            let mut bad = b;
            bad[at] ^= 1;
            assert!(Footer::decode(&bad).is_err(), "flip at {at}");
        }
        let h = BlockHandle {
            offset: 1 << 40,
            size: 300,
        };
        let mut v = Vec::new();
        h.encode_varint(&mut v);
        assert_eq!(BlockHandle::decode_varint(&v).unwrap(), h);
        assert!(BlockHandle::decode_varint(&v[..v.len() - 1]).is_err());
    }
}
