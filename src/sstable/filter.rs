//! The table filter: answers "this user key is certainly absent" before any
//! data block is touched.
//!
//! User keys are hashed to 64 bits with [`hash_key`] (a fixed wyhash-style
//! multiply-mix, part of the on-disk format: it must never change), the
//! hashes are sorted and deduplicated, and a binary fuse filter with 8-bit
//! fingerprints (`xorf::BinaryFuse8`, ~9 bits per key, false-positive rate
//! ~0.4%) is built over them. Tiny key sets store their hashes instead.
//! The filter has no false negatives; the table builder checks that for
//! every key before the filter is written.
//!
//! Filter block payload:
//!
//! ```text
//! +---------+--------------------------------------------------------------+
//! | kind u8 | body                                                         |
//! +---------+--------------------------------------------------------------+
//! kind 0, exact:  count u32 LE | count x hash u64 LE (strictly increasing)
//! kind 1, fuse:   seed u64 LE | segment_length u32 LE
//!                 | segment_length_mask u32 LE | segment_count_length u32 LE
//!                 | fingerprint count u32 LE | fingerprints (1 byte each)
//! kind 2, none:   (empty) -- every key may be present
//! ```
//!
//! A probe of kind 1 is one hash, one multiply-mix and three byte loads
//! (tens of nanoseconds). Decoding checks every parameter so that no probe
//! can index outside the fingerprints.

use xorf::BinaryFuse8;

use crate::sstable::block::Malformed;
use crate::sstable::fuse_params::{self, FuseParams};

/// Key sets up to this size store their hashes instead of a fuse filter.
const EXACT_KEYS_MAX: usize = 8;
/// Largest segment length xorf produces.
const SEGMENT_LENGTH_MAX: u32 = 1 << 18;

const KIND_EXACT: u8 = 0;
const KIND_FUSE: u8 = 1;
const KIND_NONE: u8 = 2;

const P0: u64 = 0xa076_1d64_78bd_642f;
const P1: u64 = 0xe703_7ed1_a0b4_28db;
const P2: u64 = 0x8ebc_6af0_9c88_c6e3;
const SEED: u64 = 0x2d35_8dcc_aa6c_78a5;

fn mum(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

fn le64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    let n = b.len().min(8);
    w[..n].copy_from_slice(&b[..n]);
    u64::from_le_bytes(w)
}

/// The 64-bit hash of a user key used by the filter. Part of the on-disk
/// format.
pub fn hash_key(key: &[u8]) -> u64 {
    let mut h = SEED;
    let mut chunks = key.chunks_exact(16);
    for c in &mut chunks {
        let (a, b) = c.split_at(8);
        h = mum(le64(a) ^ P0, le64(b) ^ h);
    }
    let tail = chunks.remainder();
    let (a, b) = tail.split_at(tail.len().min(8));
    h = mum(le64(a) ^ P0, le64(b) ^ h);
    mum(h ^ P1, key.len() as u64 ^ P2)
}

#[derive(Clone, Debug)]
enum Repr {
    Exact(Vec<u64>),
    Fuse {
        params: FuseParams,
        fingerprints: Vec<u8>,
    },
    None,
}

/// A built or decoded filter.
#[derive(Clone, Debug)]
pub struct Filter {
    repr: Repr,
}

/// The murmur3 finalizer xorf applies to `key + seed`.
fn mix(key: u64, seed: u64) -> u64 {
    let mut k = key.wrapping_add(seed);
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

fn fuse_contains(p: &FuseParams, fingerprints: &[u8], key_hash: u64) -> bool {
    let hash = mix(key_hash, p.seed);
    let f = (hash ^ (hash >> 32)) as u8;
    let h0 = ((u128::from(hash) * u128::from(p.segment_count_length)) >> 64) as u32;
    let mut h1 = h0.wrapping_add(p.segment_length);
    let mut h2 = h1.wrapping_add(p.segment_length);
    h1 ^= ((hash >> 18) as u32) & p.segment_length_mask;
    h2 ^= (hash as u32) & p.segment_length_mask;
    let at = |i: u32| fingerprints.get(i as usize).copied();
    match (at(h0), at(h1), at(h2)) {
        (Some(a), Some(b), Some(c)) => f ^ a ^ b ^ c == 0,
        // Unreachable for validated parameters; never a false negative.
        _ => true,
    }
}

fn params_valid(p: &FuseParams, fingerprints: usize) -> bool {
    let len = u64::from(p.segment_length);
    p.segment_length.is_power_of_two()
        && p.segment_length <= SEGMENT_LENGTH_MAX
        && p.segment_length_mask == p.segment_length - 1
        && p.segment_count_length >= p.segment_length
        && p.segment_count_length % p.segment_length == 0
        && u64::from(p.segment_count_length) + 2 * len == fingerprints as u64
}

impl Filter {
    /// Builds a filter over key hashes (from [`hash_key`]); duplicates are
    /// fine.
    pub fn build(mut hashes: Vec<u64>) -> Filter {
        hashes.sort_unstable();
        hashes.dedup();
        if hashes.len() <= EXACT_KEYS_MAX {
            return Filter {
                repr: Repr::Exact(hashes),
            };
        }
        let filter = Self::build_fuse(&hashes).unwrap_or(Filter { repr: Repr::None });
        debug_assert!(
            !matches!(filter.repr, Repr::None),
            "binary fuse construction failed"
        );
        filter
    }

    fn build_fuse(hashes: &[u64]) -> Option<Filter> {
        let fuse = BinaryFuse8::try_from(hashes).ok()?;
        let params = fuse_params::extract(&fuse)?;
        if !params_valid(&params, fuse.fingerprints.len()) {
            return None;
        }
        let filter = Filter {
            repr: Repr::Fuse {
                params,
                fingerprints: fuse.fingerprints.to_vec(),
            },
        };
        // Check the data right before it is written: no false negatives.
        hashes
            .iter()
            .all(|&h| filter.may_contain_hash(h))
            .then_some(filter)
    }

    /// Whether a user key may be in the table (false: certainly absent).
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.may_contain_hash(hash_key(user_key))
    }

    /// [`Filter::may_contain`] for a key already hashed with [`hash_key`].
    pub fn may_contain_hash(&self, h: u64) -> bool {
        match &self.repr {
            Repr::Exact(hashes) => hashes.binary_search(&h).is_ok(),
            Repr::Fuse {
                params,
                fingerprints,
            } => fuse_contains(params, fingerprints, h),
            Repr::None => true,
        }
    }

    /// Bytes the filter occupies in memory.
    pub fn size_bytes(&self) -> usize {
        match &self.repr {
            Repr::Exact(h) => 8 * h.len(),
            Repr::Fuse { fingerprints, .. } => fingerprints.len() + 20,
            Repr::None => 0,
        }
    }

    /// Appends the filter block payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match &self.repr {
            Repr::Exact(hashes) => {
                out.push(KIND_EXACT);
                out.extend_from_slice(&(hashes.len() as u32).to_le_bytes());
                for h in hashes {
                    out.extend_from_slice(&h.to_le_bytes());
                }
            }
            Repr::Fuse {
                params,
                fingerprints,
            } => {
                out.push(KIND_FUSE);
                out.extend_from_slice(&params.seed.to_le_bytes());
                out.extend_from_slice(&params.segment_length.to_le_bytes());
                out.extend_from_slice(&params.segment_length_mask.to_le_bytes());
                out.extend_from_slice(&params.segment_count_length.to_le_bytes());
                out.extend_from_slice(&(fingerprints.len() as u32).to_le_bytes());
                out.extend_from_slice(fingerprints);
            }
            Repr::None => out.push(KIND_NONE),
        }
    }

    /// Decodes a filter block payload, checking every field.
    pub fn decode(data: &[u8]) -> Result<Filter, Malformed> {
        let (&kind, mut rest) = data.split_first().ok_or("empty filter block")?;
        let repr = match kind {
            KIND_EXACT => {
                let count = take_u32(&mut rest)? as usize;
                if rest.len() != count.saturating_mul(8) {
                    return Err("filter hash count does not match its size");
                }
                let hashes: Vec<u64> = rest.chunks_exact(8).map(le64).collect();
                if hashes.windows(2).any(|w| w[0] >= w[1]) {
                    return Err("filter hashes are not increasing");
                }
                Repr::Exact(hashes)
            }
            KIND_FUSE => {
                let seed =
                    take_u32(&mut rest).map(u64::from)? | take_u32(&mut rest).map(u64::from)? << 32;
                let params = FuseParams {
                    seed,
                    segment_length: take_u32(&mut rest)?,
                    segment_length_mask: take_u32(&mut rest)?,
                    segment_count_length: take_u32(&mut rest)?,
                };
                let count = take_u32(&mut rest)? as usize;
                if rest.len() != count || !params_valid(&params, count) {
                    return Err("filter parameters do not match its size");
                }
                Repr::Fuse {
                    params,
                    fingerprints: rest.to_vec(),
                }
            }
            KIND_NONE if rest.is_empty() => Repr::None,
            _ => return Err("unknown filter kind"),
        };
        Ok(Filter { repr })
    }
}

fn take_u32(data: &mut &[u8]) -> Result<u32, Malformed> {
    let (head, rest) = data
        .split_first_chunk::<4>()
        .ok_or("truncated filter block")?;
    *data = rest;
    Ok(u32::from_le_bytes(*head))
}

#[cfg(test)]
mod tests {
    use super::*;
    use xorf::Filter as _;

    fn keys(n: usize, tag: &str) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("{tag}{i}").into_bytes()).collect()
    }

    fn round_trip(f: &Filter) -> Filter {
        let mut b = Vec::new();
        f.encode(&mut b);
        Filter::decode(&b).unwrap()
    }

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        for n in [0usize, 1, 2, 8, 9, 100, 10_000] {
            let present = keys(n, "present-");
            let f = Filter::build(present.iter().map(|k| hash_key(k)).collect());
            let f = round_trip(&f);
            assert!(present.iter().all(|k| f.may_contain(k)), "n = {n}");
            let absent = keys(20_000, "absent-");
            let fp = absent.iter().filter(|k| f.may_contain(k)).count();
            assert!(fp < 200, "n = {n}: {fp} false positives of 20000");
            if n == 0 {
                assert_eq!(fp, 0);
            }
        }
    }

    #[test]
    fn probe_matches_xorf() {
        let hashes: Vec<u64> = keys(5000, "k").iter().map(|k| hash_key(k)).collect();
        let mut sorted = hashes.clone();
        sorted.sort_unstable();
        let fuse = BinaryFuse8::try_from(&sorted).unwrap();
        let params = fuse_params::extract(&fuse).unwrap();
        assert!(params_valid(&params, fuse.fingerprints.len()));
        let mut x = 7u64;
        for _ in 0..100_000 {
            x = mix(x, 1);
            assert_eq!(
                fuse_contains(&params, &fuse.fingerprints, x),
                fuse.contains(&x)
            );
        }
    }

    #[test]
    fn hash_is_stable() {
        // Part of the on-disk format: these values must never change.
        assert_eq!(hash_key(b""), hash_key(b""));
        assert_ne!(hash_key(b""), hash_key(b"\0"));
        assert_ne!(hash_key(b"a"), hash_key(b"b"));
        assert_ne!(hash_key(&[0u8; 16]), hash_key(&[0u8; 17]));
        let pinned = [
            hash_key(b""),
            hash_key(b"system.cpu.load"),
            hash_key(b"0123456789abcdef0123"),
        ];
        assert_eq!(pinned, PINNED);
    }

    const PINNED: [u64; 3] = [
        6_831_044_921_096_367_770,
        7_759_665_754_267_162_027,
        16_625_845_606_794_287_262,
    ];

    #[test]
    fn damaged_filters_are_errors_or_safe() {
        let f = Filter::build(keys(50, "x").iter().map(|k| hash_key(k)).collect());
        let mut good = Vec::new();
        f.encode(&mut good);
        assert!(Filter::decode(&[]).is_err());
        assert!(Filter::decode(&good[..good.len() - 1]).is_err());
        assert!(Filter::decode(&[9]).is_err());
        assert!(Filter::decode(&[KIND_EXACT, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]).is_err());
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x41;
            if let Ok(f) = Filter::decode(&bad) {
                for k in keys(100, "y") {
                    let _ = f.may_contain(&k);
                }
            }
        }
    }
}
