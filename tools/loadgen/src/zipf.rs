//! [`Zipfian`]: key ranks drawn from a Zipf distribution, as YCSB draws
//! them (`requestdistribution=zipfian`, constant 0.99).
//!
//! The draw is the method of Gray et al., "Quickly Generating
//! Billion-Record Synthetic Databases" (SIGMOD 1994), which YCSB's
//! `ZipfianGenerator` implements: one uniform number and one `powf` per
//! draw after an O(n) set-up (the generalised harmonic number `zeta(n)`).
//! As YCSB's `ScrambledZipfianGenerator` does, the rank is then hashed
//! (FNV-1a, 64 bit) onto the key space, so the popular keys are spread
//! over it instead of being the first few keys in order.
//!
//! Above [`ZETA_EXACT_TERMS_MAX`] terms, the tail of `zeta(n)` is taken
//! from its integral (midpoint rule), which is exact to far more digits
//! than the draw needs and keeps set-up under a second for any key space.

use crate::rng::Rng;

/// The Zipf constant YCSB uses.
pub const THETA: f64 = 0.99;

/// Terms of `zeta(n)` summed one by one; the rest are integrated.
const ZETA_EXACT_TERMS_MAX: u64 = 10_000_000;

/// A Zipf distribution over `[0, n)`; cheap to copy.
#[derive(Clone, Copy, Debug)]
pub struct Zipfian {
    n: u64,
    alpha: f64,
    zetan: f64,
    eta: f64,
    half_pow_theta: f64,
}

impl Zipfian {
    /// The distribution over `n` items (at least one) with constant `theta`
    /// (in `(0, 1)`).
    pub fn new(n: u64, theta: f64) -> Zipfian {
        let n = n.max(1);
        let zetan = zeta(n, theta);
        let zeta2 = zeta(2, theta);
        let eta = if n <= 2 {
            0.0
        } else {
            (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan)
        };
        Zipfian {
            n,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
            half_pow_theta: 0.5f64.powf(theta),
        }
    }

    /// A rank in `[0, n)`: rank 0 is the most popular.
    pub fn rank(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + self.half_pow_theta {
            return 1.min(self.n - 1);
        }
        let r = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        r.min(self.n - 1)
    }

    /// A key index in `[0, n)`: the rank scrambled over the key space.
    pub fn key(&self, rng: &mut Rng) -> u64 {
        fnv1a64(self.rank(rng)) % self.n
    }
}

/// `sum(1 / i^theta)` for `i` in `1..=n`.
fn zeta(n: u64, theta: f64) -> f64 {
    let exact = n.min(ZETA_EXACT_TERMS_MAX);
    let mut sum = 0.0;
    for i in 1..=exact {
        sum += 1.0 / (i as f64).powf(theta);
    }
    if n > exact {
        // sum over i in (exact, n] of i^-theta ~ integral of x^-theta
        // over [exact + 1/2, n + 1/2].
        let p = 1.0 - theta;
        let a = exact as f64 + 0.5;
        let b = n as f64 + 0.5;
        sum += (b.powf(p) - a.powf(p)) / p;
    }
    sum
}

/// FNV-1a over the eight little-endian bytes of `x`, as YCSB hashes.
fn fnv1a64(x: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in x.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_are_skewed_and_in_range() {
        let z = Zipfian::new(1000, THETA);
        let mut rng = Rng::new(42, 0);
        let mut counts = vec![0u64; 1000];
        for _ in 0..100_000 {
            let r = z.rank(&mut rng);
            counts[r as usize] += 1;
        }
        // With theta 0.99 over 1000 items, rank 0 takes about 13% of draws
        // and the top ten about 39%.
        let top: u64 = counts[..10].iter().sum();
        assert!(counts[0] > 10_000 && counts[0] < 16_000, "{}", counts[0]);
        assert!(top > 33_000 && top < 45_000, "{top}");
        assert!(counts[0] > counts[1] && counts[1] > counts[9]);
    }

    #[test]
    fn keys_stay_in_range() {
        for n in [1u64, 2, 3, 17] {
            let z = Zipfian::new(n, THETA);
            let mut rng = Rng::new(1, n);
            for _ in 0..1000 {
                assert!(z.key(&mut rng) < n);
            }
        }
    }

    #[test]
    fn integrated_tail_matches_the_sum() {
        // Switching to the midpoint integral after only 1000 terms is
        // already within 1e-8 relative of the exact sum (the error falls as
        // terms^-2, and the real switch-over is at ten million).
        let n = 2_000_000u64;
        let exact: f64 = (1..=n).map(|i| 1.0 / (i as f64).powf(THETA)).sum();
        let head: f64 = (1..=1000u64).map(|i| 1.0 / (i as f64).powf(THETA)).sum();
        let p = 1.0 - THETA;
        let approx = head + ((n as f64 + 0.5).powf(p) - 1000.5f64.powf(p)) / p;
        assert!(
            ((approx - exact) / exact).abs() < 1e-8,
            "{approx} vs {exact}"
        );
    }
}
