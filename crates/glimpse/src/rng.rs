//! The one source of randomness: a seedable, serialisable generator. Part of the foundation: it
//! imports nothing from the rest of the crate.
//!
//! Every random draw of a run (data order, sampled glimpses, noise) comes from a [`Rng`] derived
//! from the run's seed, and its state is saved in checkpoints, so a resumed run draws exactly
//! what the uninterrupted run would have. Streams for independent purposes come from
//! [`Rng::derive`], a pure function of the seed and a label, so they never interfere.

use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{Rng as _, SeedableRng};

/// A xoshiro256++ generator with the few draws Glimpse needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rng(Xoshiro256PlusPlus);

/// splitmix64 finaliser: a strong 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator seeded from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    /// An independent generator for `(seed, stream, index)`, e.g. `(seed, "epoch", 3)`.
    pub fn derive(seed: u64, stream: &str, index: u64) -> Self {
        let mut h = mix(seed);
        for b in stream.bytes() {
            h = mix(h ^ b as u64);
        }
        Self::new(mix(h ^ mix(index)))
    }

    /// A uniform 64-bit integer.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[0, 1)`, 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `[0, n)` (n > 0), without modulo bias.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0)");
        let n = n as u64;
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.next_u64();
            if v < zone {
                return (v % n) as usize;
            }
        }
    }

    /// Standard normal draw (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// `n` normal draws with the given std, as f32.
    pub fn normals(&mut self, n: usize, std: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal() as f32 * std).collect()
    }

    /// A uniformly random permutation of `0..n` (Fisher–Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            p.swap(i, self.below(i + 1));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_state_round_trips() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        let saved = serde_json::to_string(&a).unwrap();
        let x: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let mut c: Rng = serde_json::from_str(&saved).unwrap();
        let y: Vec<u64> = (0..5).map(|_| c.next_u64()).collect();
        assert_eq!(x, y);
    }

    #[test]
    fn derived_streams_differ() {
        let a = Rng::derive(1, "epoch", 0).next_u64();
        assert_ne!(a, Rng::derive(1, "epoch", 1).next_u64());
        assert_ne!(a, Rng::derive(2, "epoch", 0).next_u64());
        assert_ne!(a, Rng::derive(1, "noise", 0).next_u64());
        assert_eq!(a, Rng::derive(1, "epoch", 0).next_u64());
    }

    #[test]
    fn draws_have_the_right_moments() {
        let mut r = Rng::new(3);
        let n = 20000;
        let u: f64 = (0..n).map(|_| r.uniform()).sum::<f64>() / n as f64;
        assert!((u - 0.5).abs() < 0.01);
        let z: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let m = z.iter().sum::<f64>() / n as f64;
        let v = z.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64;
        assert!(m.abs() < 0.03 && (v - 1.0).abs() < 0.05, "mean {m} var {v}");
        let mut p = r.permutation(100);
        p.sort();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
        assert!((0..1000).all(|_| r.below(7) < 7));
    }
}
