//! Derived image tasks of Mnih et al. 2014: *translated* and *cluttered translated* MNIST.
//!
//! Each example is a pure function of `(seed, index)`: digit `index mod n` of the base set is
//! placed at a random position on a `W × W` canvas; the cluttered variant adds `K` random 8×8
//! crops of other digits at random positions (pixel-wise maximum). Canvases are made on demand
//! per batch, never all held in memory. A set may hold `P` placements of each digit (`P · n`
//! examples): a training set that shows each digit at `P` positions instead of one. A training
//! set may also *warp* each digit (a random scale and rotation about its centre, bilinear), so
//! that the placements of a digit are not all the same shape.

use std::sync::Arc;

use super::images::ImageSet;
use crate::rng::Rng;

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
    /// Digit warp `w`: scale uniform in `[1 − w, 1 + w]`, rotation uniform in `[−w, w]` radians
    /// (0: none).
    pub warp: f32,
}

impl Translated {
    /// Translated MNIST on a `canvas × canvas` field (the paper uses 60).
    pub fn plain(base: Arc<ImageSet>, canvas: usize, seed: u64) -> Self {
        Self::cluttered(base, canvas, 0, seed)
    }

    /// Cluttered translated MNIST with `clutter` 8×8 distractors (paper: 60/4 and 100/8).
    pub fn cluttered(base: Arc<ImageSet>, canvas: usize, clutter: usize, seed: u64) -> Self {
        assert!(canvas >= base.h && canvas >= base.w, "canvas {canvas} smaller than the digits");
        Self { base, canvas, clutter, crop: 8, seed, placements: 1, warp: 0.0 }
    }

    /// The same task with each digit warped by up to `w` ([`Translated::warp`]); the layouts
    /// (positions, clutter) stay those of the unwarped task.
    pub fn with_warp(self, w: f32) -> Self {
        assert!((0.0..0.5).contains(&w), "warp {w} outside [0, 0.5)");
        Self { warp: w, ..self }
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
        let warped;
        let src = if self.warp > 0.0 {
            // Its own stream, so the layout does not depend on the warp.
            let mut r = Rng::derive(self.seed, "warp", index as u64);
            let scale = 1.0 + self.warp * (2.0 * r.uniform() as f32 - 1.0);
            let angle = self.warp * (2.0 * r.uniform() as f32 - 1.0);
            warped = warp_image(b.image(i), b.h, b.w, scale, angle);
            &warped[..]
        } else {
            b.image(i)
        };
        for r in 0..b.h {
            for c in 0..b.w {
                let o = &mut out[(ty + r) * w + tx + c];
                *o = (*o).max(src[r * b.w + c]);
            }
        }
        (b.labels[i], (ty, tx))
    }

    /// Pixels of `indices` on the canvas, in `[0, 1]`, `(len, canvas²)` row-major, their labels, and each digit's centre, `(len, 2)` as 0-based `(row, col)`
    /// pixels (the middle of its `h × w` box; a warp turns the digit about it).
    pub fn batch_with_centres(&self, indices: &[usize]) -> (Vec<f32>, Vec<i64>, Vec<f32>) {
        let s = self.canvas * self.canvas;
        let mid = [(self.base.h as f32 - 1.0) / 2.0, (self.base.w as f32 - 1.0) / 2.0];
        let mut x = Vec::with_capacity(indices.len() * s);
        let mut y = Vec::with_capacity(indices.len());
        let mut centres = Vec::with_capacity(indices.len() * 2);
        let mut buf = vec![0u8; s];
        for &i in indices {
            let (label, (ty, tx)) = self.render(i, &mut buf);
            x.extend(buf.iter().map(|&p| p as f32 / 255.0));
            y.push(label as i64);
            centres.extend([ty as f32 + mid[0], tx as f32 + mid[1]]);
        }
        (x, y, centres)
    }
}

/// `img (h, w)` scaled by `scale` and rotated by `angle` radians about its centre: each output
/// pixel samples the input bilinearly at the inverse-mapped point (zero outside).
pub fn warp_image(img: &[u8], h: usize, w: usize, scale: f32, angle: f32) -> Vec<u8> {
    let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
    let (sin, cos) = angle.sin_cos();
    let at = |y: isize, x: isize| -> f32 {
        if y < 0 || x < 0 || y >= h as isize || x >= w as isize { 0.0 } else { img[y as usize * w + x as usize] as f32 }
    };
    let mut out = vec![0u8; h * w];
    for r in 0..h {
        for c in 0..w {
            // Output offset from the centre, rotated back and unscaled: the source point.
            let (dy, dx) = (r as f32 - cy, c as f32 - cx);
            let sy = (cos * dy - sin * dx) / scale + cy;
            let sx = (sin * dy + cos * dx) / scale + cx;
            let (y0, x0) = (sy.floor(), sx.floor());
            let (fy, fx) = (sy - y0, sx - x0);
            let (y0, x0) = (y0 as isize, x0 as isize);
            let v = at(y0, x0) * (1.0 - fy) * (1.0 - fx)
                + at(y0, x0 + 1) * (1.0 - fy) * fx
                + at(y0 + 1, x0) * fy * (1.0 - fx)
                + at(y0 + 1, x0 + 1) * fy * fx;
            out[r * w + c] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
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

    /// The batch with centres is the plain batch, and each centre is the middle of the
    /// 28×28 box whose corner `render` reports.
    #[test]
    fn batches_carry_each_digits_centre() {
        let t = Translated::cluttered(toy(), 60, 4, 9).with_warp(0.1);
        let idx = [3, 7, 0];
        let (x, y, c) = t.batch_with_centres(&idx);
        assert_eq!((x.len(), y.len(), c.len()), (3 * 3600, 3, 6));
        let mut buf = vec![0; 3600];
        for (k, &i) in idx.iter().enumerate() {
            let (_, (ty, tx)) = t.render(i, &mut buf);
            assert_eq!([c[2 * k], c[2 * k + 1]], [ty as f32 + 13.5, tx as f32 + 13.5]);
        }
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
        let (bx, by, _) = t.batch_with_centres(&[4, 5]);
        assert_eq!((bx.len(), by), (20_000, vec![4, 5]));
        assert!(bx.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }

    #[test]
    fn warp_is_exact_at_identity_and_moves_mass_as_a_rotation_should() {
        let img: Vec<u8> = (0..28 * 28).map(|i| ((i * 37) % 251) as u8).collect();
        assert_eq!(warp_image(&img, 28, 28, 1.0, 0.0), img);
        // A quarter turn of a bar along the top rows puts it along a side column.
        let mut bar = vec![0u8; 28 * 28];
        bar[2 * 28 + 4..2 * 28 + 24].fill(200);
        let turned = warp_image(&bar, 28, 28, 1.0, std::f32::consts::FRAC_PI_2);
        let col = |c: usize| (4..24).filter(|r| turned[r * 28 + c] > 100).count();
        assert!(col(2).max(col(25)) >= 18, "{} {}", col(2), col(25));
        // Scaling up by 1.5 spreads the bright square over more pixels.
        let t = toy();
        let big = warp_image(t.image(3), 28, 28, 1.5, 0.0);
        let lit = |v: &[u8]| v.iter().filter(|&&p| p > 50).count();
        assert!(lit(&big) > lit(t.image(3)) * 2, "{} {}", lit(&big), lit(t.image(3)));
    }

    #[test]
    fn warped_placements_keep_the_layout_and_change_the_digit() {
        let plain = Translated::cluttered(toy(), 100, 8, 1).with_placements(2);
        let warped = plain.clone().with_warp(0.3);
        let (mut a, mut b) = (vec![0; 10_000], vec![0; 10_000]);
        let mut differ = 0;
        for j in 0..20 {
            let (la, pa) = plain.render(j, &mut a);
            let (lb, pb) = warped.render(j, &mut b);
            assert_eq!((la, pa), (lb, pb), "same label and position");
            differ += (a != b) as usize;
        }
        assert!(differ >= 15, "{differ} of 20 warped");
    }
}
