//! Derived image tasks of Mnih et al. 2014: *translated* and *cluttered translated* MNIST.
//!
//! Each example is a pure function of `(seed, index)`: digit `index mod n` of the base set is
//! placed at a random position on a `W × W` canvas; the cluttered variant adds `K` random 8×8
//! crops of other digits at random positions (pixel-wise maximum). Canvases are made on demand
//! per batch, never all held in memory. A set may hold `P` placements of each digit (`P · n`
//! examples): a training set that shows each digit at `P` positions instead of one.

use std::sync::Arc;

use super::images::ImageSet;
use crate::train::rng::Rng;

/// A translated (and optionally cluttered) view of a digit set.
#[derive(Debug, Clone)]
pub struct Translated {
    /// The digits (28×28).
    pub base: Arc<ImageSet>,
    /// Canvas side `W`.
    pub canvas: usize,
    /// Number of distractor crops `K` (0: plain translated MNIST).
    pub clutter: usize,
    /// Side of each distractor crop (8 in the paper).
    pub crop: usize,
    /// Seed of every placement.
    pub seed: u64,
    /// Placements of each digit `P`: the set has `P · n` examples (1: one per digit).
    pub placements: usize,
}

impl Translated {
    /// Translated MNIST on a `canvas × canvas` field (the paper uses 60).
    pub fn plain(base: Arc<ImageSet>, canvas: usize, seed: u64) -> Self {
        Self::cluttered(base, canvas, 0, seed)
    }

    /// Cluttered translated MNIST with `clutter` 8×8 distractors (paper: 60/4 and 100/8).
    pub fn cluttered(base: Arc<ImageSet>, canvas: usize, clutter: usize, seed: u64) -> Self {
        assert!(canvas >= base.h && canvas >= base.w, "canvas {canvas} smaller than the digits");
        Self { base, canvas, clutter, crop: 8, seed, placements: 1 }
    }

    /// The same task with `p` placements of each digit (`p · n` examples; example `j` is
    /// digit `j mod n`).
    pub fn with_placements(self, p: usize) -> Self {
        assert!(p >= 1, "at least one placement per digit");
        Self { placements: p, ..self }
    }

    /// Number of examples: `P` per base digit.
    pub fn len(&self) -> usize {
        self.base.len() * self.placements
    }

    /// Whether there is no example.
    pub fn is_empty(&self) -> bool {
        self.base.is_empty()
    }

    /// Writes example `index` (digit `index mod n`, at a placement drawn from `(seed, index)`)
    /// into `out` (`canvas²` bytes) and returns its label and the top-left corner `(row, col)`
    /// of the digit.
    pub fn render(&self, index: usize, out: &mut [u8]) -> (u8, (usize, usize)) {
        let (w, b) = (self.canvas, &self.base);
        assert_eq!(out.len(), w * w);
        out.fill(0);
        let mut rng = Rng::derive(self.seed, "translated", index as u64);
        let n = b.len();
        // Distractors first, so the digit itself is never hidden by a crop's zeros (max blend).
        for _ in 0..self.clutter {
            let mut other = rng.below(n);
            if n > 1 && other == index % n {
                other = (other + 1) % n;
            }
            let (sy, sx) = (rng.below(b.h - self.crop + 1), rng.below(b.w - self.crop + 1));
            let (dy, dx) = (rng.below(w - self.crop + 1), rng.below(w - self.crop + 1));
            let src = b.image(other);
            for r in 0..self.crop {
                for c in 0..self.crop {
                    let o = &mut out[(dy + r) * w + dx + c];
                    *o = (*o).max(src[(sy + r) * b.w + sx + c]);
                }
            }
        }
        let i = index % n;
        let (ty, tx) = (rng.below(w - b.h + 1), rng.below(w - b.w + 1));
        let src = b.image(i);
        for r in 0..b.h {
            for c in 0..b.w {
                let o = &mut out[(ty + r) * w + tx + c];
                *o = (*o).max(src[r * b.w + c]);
            }
        }
        (b.labels[i], (ty, tx))
    }

    /// A batch as `(len, W*W)` floats in `[0, 1]` and labels.
    pub fn batch_f32(&self, indices: &[usize]) -> (Vec<f32>, Vec<i64>) {
        let s = self.canvas * self.canvas;
        let mut x = Vec::with_capacity(indices.len() * s);
        let mut y = Vec::with_capacity(indices.len());
        let mut buf = vec![0u8; s];
        for &i in indices {
            let (label, _) = self.render(i, &mut buf);
            x.extend(buf.iter().map(|&p| p as f32 / 255.0));
            y.push(label as i64);
        }
        (x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten 28×28 "digits": digit d is a filled square of value 100+d at rows/cols 10..18.
    fn toy() -> Arc<ImageSet> {
        let mut pixels = vec![0u8; 10 * 28 * 28];
        for d in 0..10 {
            for r in 10..18 {
                for c in 10..18 {
                    pixels[d * 784 + r * 28 + c] = 100 + d as u8;
                }
            }
        }
        Arc::new(ImageSet { h: 28, w: 28, pixels, labels: (0..10).collect(), classes: 10 })
    }

    #[test]
    fn placements_show_each_digit_at_several_positions() {
        let t = Translated::plain(toy(), 60, 5).with_placements(3);
        assert_eq!(t.len(), 30);
        let mut buf = vec![0; 3600];
        let mut corners = vec![];
        for j in [4, 14, 24] {
            let (label, corner) = t.render(j, &mut buf);
            assert_eq!(label, 4, "example {j} is digit {j} mod 10");
            corners.push(corner);
        }
        corners.dedup();
        assert_eq!(corners.len(), 3, "three placements of digit 4: {corners:?}");
        assert_eq!(Translated::plain(toy(), 60, 5).len(), 10);
    }

    #[test]
    fn translated_places_the_whole_digit_deterministically() {
        let t = Translated::plain(toy(), 60, 5);
        let mut a = vec![0; 3600];
        let mut b = vec![0; 3600];
        let (la, pa) = t.render(3, &mut a);
        let (lb, pb) = t.render(3, &mut b);
        assert_eq!((la, pa, &a), (lb, pb, &b));
        assert_eq!(la, 3);
        let (ty, tx) = pa;
        assert!(ty <= 32 && tx <= 32);
        assert_eq!(a[(ty + 12) * 60 + tx + 12], 103);
        assert_eq!(a.iter().filter(|&&p| p > 0).count(), 64, "only the digit is drawn");
        // Positions vary across examples.
        let positions: std::collections::HashSet<_> = (0..10).map(|i| t.render(i, &mut b).1).collect();
        assert!(positions.len() > 5);
    }

    #[test]
    fn clutter_adds_distractor_pixels_and_keeps_the_digit() {
        let t = Translated::cluttered(toy(), 100, 8, 1);
        let mut x = vec![0; 10_000];
        let (label, (ty, tx)) = t.render(4, &mut x);
        assert_eq!(label, 4);
        assert!(x[(ty + 12) * 100 + tx + 12] >= 104);
        let lit = x.iter().filter(|&&p| p > 0).count();
        assert!(lit > 64, "distractors drawn: {lit} lit pixels");
        let (bx, by) = t.batch_f32(&[4, 5]);
        assert_eq!((bx.len(), by), (20_000, vec![4, 5]));
        assert!(bx.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }
}
