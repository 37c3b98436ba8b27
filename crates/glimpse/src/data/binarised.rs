//! Binarised MNIST for generative models: every pixel drawn once as a Bernoulli variable with
//! the grey level as its probability (the construction of Salakhutdinov & Murray 2008, whose
//! fixed draw of Larochelle & Murray is the set the DRAW paper reports on). The draw is fixed
//! by a seed, so every run and every evaluation sees the same binary images.

use super::images::{ImageSet, Split};
use crate::rng::Rng;

/// A fixed binarisation of an image set: one byte (0 or 1) per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binarised {
    /// Image height.
    pub h: usize,
    /// Image width.
    pub w: usize,
    /// `n · h · w` bits.
    pub bits: Vec<u8>,
}

impl Binarised {
    /// Draws every pixel of `set` once from `Rng::derive(seed, "binarise-<split>", 0)`.
    pub fn draw(set: &ImageSet, split: Split, seed: u64) -> Self {
        let stream = match split {
            Split::Train => "binarise-train",
            Split::Test => "binarise-test",
        };
        let mut rng = Rng::derive(seed, stream, 0);
        let bits = set.pixels.iter().map(|&p| u8::from(rng.uniform() < p as f64 / 255.0)).collect();
        Self { h: set.h, w: set.w, bits }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.bits.len() / (self.h * self.w).max(1)
    }

    /// Whether there is no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The images `range` as a new set.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Self {
        let d = self.h * self.w;
        Self { h: self.h, w: self.w, bits: self.bits[range.start * d..range.end * d].to_vec() }
    }

    /// `(len, h*w)` pixels of `indices` as 0.0 / 1.0.
    pub fn batch(&self, indices: &[usize]) -> Vec<f32> {
        let d = self.h * self.w;
        indices.iter().flat_map(|&i| self.bits[i * d..(i + 1) * d].iter().map(|&b| b as f32)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> ImageSet {
        let root = crate::testing::mnist_fixture();
        ImageSet::load(crate::data::registry::by_name("mnist").unwrap(), &root, Split::Train).unwrap()
    }

    #[test]
    fn binarisation_is_fixed_binary_and_follows_the_grey_levels() {
        let set = fixture();
        let a = Binarised::draw(&set, Split::Train, 0);
        assert_eq!(a, Binarised::draw(&set, Split::Train, 0), "same seed, same bits");
        assert_ne!(a, Binarised::draw(&set, Split::Train, 1));
        assert_ne!(a, Binarised::draw(&set, Split::Test, 0), "the splits use their own streams");
        assert!(a.bits.iter().all(|&b| b <= 1));
        // Black pixels stay 0, white ones 1, and the mean matches the mean grey level.
        for (&p, &b) in set.pixels.iter().zip(&a.bits) {
            if p == 0 {
                assert_eq!(b, 0);
            } else if p == 255 {
                assert_eq!(b, 1);
            }
        }
        let grey: f64 = set.pixels.iter().map(|&p| p as f64 / 255.0).sum::<f64>() / set.pixels.len() as f64;
        let ones: f64 = a.bits.iter().map(|&b| b as f64).sum::<f64>() / a.bits.len() as f64;
        assert!((grey - ones).abs() < 0.005, "grey {grey} vs ones {ones}");
        assert_eq!(a.len(), set.len());
        let s = a.slice(2..5);
        assert_eq!(s.len(), 3);
        assert_eq!(s.batch(&[0]), a.batch(&[2]));
    }
}
