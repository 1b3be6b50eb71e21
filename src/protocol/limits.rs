//! [`Limits`]: every size bound of the protocol, in one place.
//!
//! The server derives its limits from the engine's [`Options`] and sends
//! them in its HELLO answer, so a client knows the bounds before it sends
//! anything and can refuse an oversized request locally. Both sides check
//! every length field against these bounds before allocating.

use crate::options::Options;

use super::wire::{put_u32, Reader};
use super::ProtocolError;

/// Room in a frame beyond the key and value bytes it carries (opcode,
/// length fields, flags, counts).
pub const FRAME_OVERHEAD_BYTES: usize = 64;

/// Smallest frame bound a server announces, whatever its options.
pub const FRAME_SIZE_BYTES_MIN: usize = 64 << 10;

/// Size and count bounds of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame, length field excluded, in either direction.
    pub frame_size_bytes_max: usize,
    /// Largest key.
    pub key_size_bytes_max: usize,
    /// Largest value.
    pub value_size_bytes_max: usize,
    /// Largest WRITE_BATCH, measured as [`crate::WriteBatch::encoded_size_max`].
    pub batch_size_bytes_max: usize,
    /// Most operations in one WRITE_BATCH.
    pub batch_ops_max: usize,
    /// Most keys in one MGET.
    pub mget_keys_max: usize,
    /// Most pairs one SCAN may ask for.
    pub scan_limit_max: usize,
}

impl Limits {
    /// The limits a server over a database opened with `options` enforces.
    pub fn for_options(options: &Options) -> Self {
        let single = options.key_size_bytes_max + options.value_size_bytes_max;
        // Room for the largest batch or pair, plus one more key: a SCAN page
        // holding the largest pair still has room for its continuation key.
        let frame = single.max(options.batch_size_bytes_max)
            + options.key_size_bytes_max
            + FRAME_OVERHEAD_BYTES;
        Limits {
            frame_size_bytes_max: frame.max(FRAME_SIZE_BYTES_MIN),
            key_size_bytes_max: options.key_size_bytes_max,
            value_size_bytes_max: options.value_size_bytes_max,
            batch_size_bytes_max: options.batch_size_bytes_max,
            batch_ops_max: 100_000,
            mget_keys_max: 1_024,
            scan_limit_max: 10_000,
        }
    }

    /// Number of `u32` fields on the wire.
    pub const WIRE_FIELDS: usize = 7;

    /// Appends the limits as seven `u32`s (saturating at `u32::MAX`).
    pub fn encode(&self, out: &mut Vec<u8>) {
        for v in [
            self.frame_size_bytes_max,
            self.key_size_bytes_max,
            self.value_size_bytes_max,
            self.batch_size_bytes_max,
            self.batch_ops_max,
            self.mget_keys_max,
            self.scan_limit_max,
        ] {
            put_u32(out, u32::try_from(v).unwrap_or(u32::MAX));
        }
    }

    /// Reads the seven `u32`s written by [`Limits::encode`].
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, ProtocolError> {
        Ok(Limits {
            frame_size_bytes_max: r.u32("frame_size_bytes_max")? as usize,
            key_size_bytes_max: r.u32("key_size_bytes_max")? as usize,
            value_size_bytes_max: r.u32("value_size_bytes_max")? as usize,
            batch_size_bytes_max: r.u32("batch_size_bytes_max")? as usize,
            batch_ops_max: r.u32("batch_ops_max")? as usize,
            mget_keys_max: r.u32("mget_keys_max")? as usize,
            scan_limit_max: r.u32("scan_limit_max")? as usize,
        })
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::for_options(&Options::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_bound_covers_the_largest_put_and_batch() {
        let l = Limits::default();
        let o = Options::default();
        assert!(l.frame_size_bytes_max >= o.key_size_bytes_max + o.value_size_bytes_max + 9);
        assert!(l.frame_size_bytes_max >= o.batch_size_bytes_max + 5);
        let mut out = Vec::new();
        l.encode(&mut out);
        assert_eq!(out.len(), 4 * Limits::WIRE_FIELDS);
        assert_eq!(Limits::decode(&mut Reader::new(&out)).unwrap(), l);
    }
}
