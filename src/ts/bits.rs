//! [`BitWriter`] and [`BitReader`]: the bit streams under the chunk codec.
//!
//! Bits are written most significant first, packed into bytes from the
//! high bit down; the last byte is padded with zero bits. The reader knows
//! the stream's length in bits only as "the bytes it was given", so a
//! decoder reading past the last real bit reads padding zeros and must
//! check its own counts; reading past the last byte is an error, never a
//! panic.

/// Appends bits to a byte vector.
#[derive(Debug, Default)]
pub struct BitWriter {
    out: Vec<u8>,
    /// Pending bits (fewer than 8) in the low bits.
    acc: u64,
    pending: u32,
}

impl BitWriter {
    /// An empty stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the low `bits` bits of `v` (at most 64), high bit first.
    pub fn write(&mut self, v: u64, bits: u32) {
        debug_assert!(bits <= 64, "write of {bits} bits");
        if bits > 32 {
            self.write_small(v >> 32, bits - 32);
            self.write_small(v & 0xffff_ffff, 32);
        } else {
            self.write_small(v, bits);
        }
    }

    /// Appends one bit.
    pub fn bit(&mut self, b: bool) {
        self.write_small(u64::from(b), 1);
    }

    fn write_small(&mut self, v: u64, bits: u32) {
        if bits == 0 {
            return;
        }
        let v = v & ((1u64 << bits) - 1);
        // `pending` < 8 and `bits` <= 32: the accumulator never overflows.
        self.acc = (self.acc << bits) | v;
        self.pending += bits;
        while self.pending >= 8 {
            self.pending -= 8;
            self.out.push((self.acc >> self.pending) as u8);
        }
        self.acc &= (1u64 << self.pending) - 1;
    }

    /// Bits written so far.
    pub fn bit_len(&self) -> usize {
        self.out.len() * 8 + self.pending as usize
    }

    /// The bytes, the last one padded with zeros.
    pub fn finish(mut self) -> Vec<u8> {
        if self.pending > 0 {
            self.out.push((self.acc << (8 - self.pending)) as u8);
        }
        self.out
    }
}

/// Reads bits from a byte slice; every read past the end is `None`.
///
/// Bits are served from a 64-bit register, refilled eight bytes at a time.
#[derive(Debug)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// The next byte not yet in the register.
    next: usize,
    /// Unread bits, left-aligned; bits past `avail` are zero or the
    /// stream's own next bits.
    buf: u64,
    avail: u32,
}

impl<'a> BitReader<'a> {
    /// A reader at the first bit of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            next: 0,
            buf: 0,
            avail: 0,
        }
    }

    /// Bits not yet read (padding included).
    pub fn remaining(&self) -> usize {
        self.avail as usize + (self.data.len() - self.next) * 8
    }

    /// Position in bits.
    pub fn position(&self) -> usize {
        self.next * 8 - self.avail as usize
    }

    /// Tops the register up to at least 57 bits, or to the end of the data.
    fn refill(&mut self) {
        if let Some(b) = self.data.get(self.next..self.next + 8) {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            self.buf |= u64::from_be_bytes(a) >> self.avail;
            let bytes = (63 - self.avail) / 8;
            self.next += bytes as usize;
            self.avail += bytes * 8;
            return;
        }
        while self.avail <= 56 {
            let Some(&b) = self.data.get(self.next) else {
                return;
            };
            self.buf |= u64::from(b) << (56 - self.avail);
            self.next += 1;
            self.avail += 8;
        }
    }

    fn consume(&mut self, bits: u32) {
        // `bits` <= `avail` <= 64; a shift by 64 would overflow.
        self.buf = self.buf.checked_shl(bits).unwrap_or(0);
        self.avail -= bits;
    }

    /// Reads one bit.
    pub fn bit(&mut self) -> Option<bool> {
        self.read_small(1).map(|b| b == 1)
    }

    /// Reads `bits` bits (at most 64) as an unsigned number.
    pub fn read(&mut self, bits: u32) -> Option<u64> {
        if bits > 56 {
            if self.remaining() < bits as usize {
                return None;
            }
            let high = self.read_small(bits - 32)?;
            let low = self.read_small(32)?;
            return Some((high << 32) | low);
        }
        self.read_small(bits)
    }

    /// Counts one bits up to the first zero (consumed) or up to `max` ones
    /// (at most 32).
    pub fn unary(&mut self, max: u32) -> Option<u32> {
        debug_assert!(max <= 32);
        if self.avail <= max {
            self.refill();
        }
        let ones = self.buf.leading_ones().min(self.avail);
        if ones >= max {
            self.consume(max);
            Some(max)
        } else if ones < self.avail {
            self.consume(ones + 1);
            Some(ones)
        } else {
            None
        }
    }

    fn read_small(&mut self, bits: u32) -> Option<u64> {
        if bits == 0 {
            return Some(0);
        }
        if self.avail < bits {
            self.refill();
            if self.avail < bits {
                return None;
            }
        }
        let v = self.buf >> (64 - bits);
        self.consume(bits);
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn writes_high_bit_first_and_pads() {
        let mut w = BitWriter::new();
        w.bit(true);
        w.write(0b01, 2);
        assert_eq!(w.bit_len(), 3);
        assert_eq!(w.finish(), vec![0b1010_0000]);
    }

    #[test]
    fn reading_past_the_end_is_none() {
        let mut r = BitReader::new(&[0xff]);
        assert_eq!(r.read(8), Some(0xff));
        assert_eq!(r.bit(), None);
        assert_eq!(r.read(1), None);
        let mut r = BitReader::new(&[]);
        assert_eq!(r.read(64), None);
        assert_eq!(r.unary(3), None);
        assert_eq!(r.unary(0), Some(0));
        let mut r = BitReader::new(&[0b1110_1111, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.unary(5), Some(3));
        assert_eq!(r.unary(32), Some(32));
        assert_eq!(r.unary(4), Some(4));
        assert_eq!(r.unary(1), None);
    }

    proptest! {
        #[test]
        fn unary_matches_bit_by_bit(bytes in proptest::collection::vec(any::<u8>(), 0..12), skip in 0usize..40, max in 0u32..=32) {
            let mut fast = BitReader::new(&bytes);
            let mut slow = BitReader::new(&bytes);
            let skip = skip.min(bytes.len() * 8);
            for _ in 0..skip {
                fast.bit();
                slow.bit();
            }
            let want = (|| {
                let mut n = 0;
                while n < max {
                    if !slow.bit()? {
                        return Some(n);
                    }
                    n += 1;
                }
                Some(n)
            })();
            prop_assert_eq!(fast.unary(max), want);
            if want.is_some() {
                prop_assert_eq!(fast.position(), slow.position());
            }
        }
    }

    proptest! {
        #[test]
        fn round_trip(fields in proptest::collection::vec((any::<u64>(), 0u32..=64), 0..64)) {
            let mut w = BitWriter::new();
            for &(v, bits) in &fields {
                w.write(v, bits);
            }
            let total: usize = fields.iter().map(|f| f.1 as usize).sum();
            prop_assert_eq!(w.bit_len(), total);
            let bytes = w.finish();
            prop_assert_eq!(bytes.len(), total.div_ceil(8));
            let mut r = BitReader::new(&bytes);
            for &(v, bits) in &fields {
                let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
                prop_assert_eq!(r.read(bits), Some(v & mask));
            }
            prop_assert!(r.remaining() < 8);
        }
    }
}
