//! Keys and values: how a key index becomes bytes, how indexes are drawn,
//! and where value bytes come from.
//!
//! A key is the zero-padded decimal of its index, `--key-size` bytes wide
//! (`0000000000000042` for index 42 at 16 bytes), so byte order is index
//! order and a range of indexes is a range of keys. A "missing" key is an
//! existing key with `.` appended, as LevelDB's `db_bench readmissing`
//! builds it: it sorts right after a real key, so the read touches the
//! same blocks and filters as a hit would.
//!
//! Values are slices of a pool of pseudo-random bytes in which each
//! 100-byte stretch is 50 random letters followed by a copy of them,
//! so a block compresses to about half, like `db_bench`'s default
//! `--compression_ratio=0.5`.

use crate::rng::Rng;
use crate::zipf::{Zipfian, THETA};

/// Bytes of the value pool; values are slices of it.
const VALUE_POOL_BYTES: usize = 1 << 20;

/// Writes fixed-width decimal keys into a reusable buffer.
#[derive(Clone, Debug)]
pub struct KeyFormat {
    width: usize,
    buf: Vec<u8>,
}

impl KeyFormat {
    /// Keys `width` bytes wide (wider when an index has more digits).
    pub fn new(width: usize) -> KeyFormat {
        KeyFormat {
            width,
            buf: Vec::with_capacity(width + 1),
        }
    }

    /// The key of `index`.
    pub fn key(&mut self, index: u64) -> &[u8] {
        write_key(&mut self.buf, self.width, index);
        &self.buf
    }

    /// A key that sorts right after the key of `index` and is never written.
    pub fn missing_key(&mut self, index: u64) -> &[u8] {
        write_key(&mut self.buf, self.width, index);
        self.buf.push(b'.');
        &self.buf
    }
}

/// Replaces `buf` with the zero-padded decimal of `index`.
fn write_key(buf: &mut Vec<u8>, width: usize, index: u64) {
    let digits = decimal_digits(index);
    buf.clear();
    buf.resize(width.max(digits), b'0');
    let mut i = buf.len();
    let mut v = index;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
}

/// Decimal digits of `v` (1 for 0).
pub fn decimal_digits(v: u64) -> usize {
    let mut d = 1;
    let mut x = v;
    while x >= 10 {
        x /= 10;
        d += 1;
    }
    d
}

/// How key indexes are drawn from the key space.
#[derive(Clone, Copy, Debug)]
pub enum KeyChooser {
    /// Every index of `[0, n)` equally likely.
    Uniform(u64),
    /// Zipf-distributed, scrambled over the key space (see [`Zipfian`]).
    Zipfian(Zipfian),
}

impl KeyChooser {
    /// A uniform chooser over `n` keys.
    pub fn uniform(n: u64) -> KeyChooser {
        KeyChooser::Uniform(n.max(1))
    }

    /// A zipfian chooser over `n` keys with YCSB's constant.
    pub fn zipfian(n: u64) -> KeyChooser {
        KeyChooser::Zipfian(Zipfian::new(n, THETA))
    }

    /// The next index.
    pub fn next(&self, rng: &mut Rng) -> u64 {
        match self {
            KeyChooser::Uniform(n) => rng.below(*n),
            KeyChooser::Zipfian(z) => z.key(rng),
        }
    }
}

/// Pseudo-random value bytes that compress to about half.
#[derive(Debug)]
pub struct ValuePool {
    bytes: Vec<u8>,
}

impl ValuePool {
    /// A pool filled from `seed`.
    pub fn new(seed: u64) -> ValuePool {
        let mut rng = Rng::new(seed, u64::MAX);
        let mut bytes = Vec::with_capacity(VALUE_POOL_BYTES);
        while bytes.len() < VALUE_POOL_BYTES {
            let start = bytes.len();
            for _ in 0..50 {
                bytes.push(b'a' + rng.below(26) as u8);
            }
            bytes.extend_from_within(start..start + 50);
        }
        bytes.truncate(VALUE_POOL_BYTES);
        ValuePool { bytes }
    }

    /// `len` bytes (at most the pool's size) starting at a random offset.
    pub fn value(&self, rng: &mut Rng, len: usize) -> &[u8] {
        let len = len.min(self.bytes.len());
        let room = (self.bytes.len() - len) as u64;
        let at = rng.below(room + 1) as usize;
        &self.bytes[at..at + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fixed_width_decimal() {
        let mut f = KeyFormat::new(16);
        assert_eq!(f.key(0), b"0000000000000000");
        assert_eq!(f.key(42), b"0000000000000042");
        assert_eq!(f.missing_key(42), b"0000000000000042.");
        assert_eq!(f.key(u64::MAX), b"18446744073709551615");
        let mut narrow = KeyFormat::new(2);
        assert_eq!(narrow.key(7), b"07");
        assert_eq!(narrow.key(123), b"123");
    }

    #[test]
    fn key_order_is_index_order() {
        let mut f = KeyFormat::new(8);
        let a = f.key(99).to_vec();
        let b = f.key(100).to_vec();
        assert!(a < b);
        assert!(f.missing_key(99) > &a[..] && f.missing_key(99) < &b[..]);
    }

    #[test]
    fn digits() {
        assert_eq!(decimal_digits(0), 1);
        assert_eq!(decimal_digits(9), 1);
        assert_eq!(decimal_digits(10), 2);
        assert_eq!(decimal_digits(999_999), 6);
        assert_eq!(decimal_digits(u64::MAX), 20);
    }

    #[test]
    fn values_have_the_asked_length() {
        let pool = ValuePool::new(1);
        let mut rng = Rng::new(1, 1);
        assert_eq!(pool.value(&mut rng, 0).len(), 0);
        assert_eq!(pool.value(&mut rng, 100).len(), 100);
        assert_eq!(
            pool.value(&mut rng, VALUE_POOL_BYTES * 2).len(),
            VALUE_POOL_BYTES
        );
    }
}
