//! The retina of the Recurrent Attention Model (Mnih et al. 2014, §3.1 "Sensor"): at a location
//! `l ∈ [-1, 1]²` it extracts `k` square patches centred on `l`, the first `g × g` and each next
//! one twice the side of the previous, all brought down to `g × g` by averaging `2^i × 2^i`
//! blocks and stacked — high resolution at the centre of gaze, ever coarser around it. Pixels
//! outside the image read as zero.
//!
//! The sensor is a fixed, non-learned read of the pixels: the model's gradient never flows
//! through the location (it is trained by REINFORCE), so the whole batch is read in one plain
//! pass over the pixel buffer — one fused operation, no tensor graph.

use burn::tensor::{Tensor, TensorData};

/// The geometry of a glimpse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Retina {
    /// Side of each patch after down-sampling (`g`; 8 for 28×28 MNIST, 12 for 60×60).
    pub patch: usize,
    /// Number of scales (`k`).
    pub scales: usize,
}

impl Retina {
    /// Values per glimpse: `k · g · g`.
    pub fn len(&self) -> usize {
        self.scales * self.patch * self.patch
    }

    /// Whether a glimpse is empty (no scale).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Side in pixels of scale `i` before down-sampling: `g · 2^i`.
    pub fn side(&self, i: usize) -> usize {
        self.patch << i
    }

    /// Top-left pixel `(row, col)` of scale `i`'s patch for location `l = (row, col)` in
    /// `[-1, 1]²` on an `h × w` image. `(-1, -1)` is the top-left corner, `(1, 1)` the
    /// bottom-right one; the patch's centre is at `((l + 1) / 2) · size`, rounded.
    pub fn corner(&self, l: [f32; 2], h: usize, w: usize, i: usize) -> (isize, isize) {
        let s = self.side(i) as isize;
        let centre = |v: f32, n: usize| (((v.clamp(-1.0, 1.0) + 1.0) * 0.5 * n as f32).round()) as isize;
        (centre(l[0], h) - s / 2, centre(l[1], w) - s / 2)
    }

    /// Reads glimpses for a batch: `images` is `(B, h, w)` row-major, `locations` `(B, 2)`;
    /// returns `(B, k, g, g)` row-major.
    pub fn read(&self, images: &[f32], h: usize, w: usize, locations: &[f32]) -> Vec<f32> {
        let b = locations.len() / 2;
        assert_eq!(images.len(), b * h * w, "images must be (B, h, w)");
        let g = self.patch;
        let mut out = vec![0.0f32; b * self.len()];
        for n in 0..b {
            let img = &images[n * h * w..(n + 1) * h * w];
            let l = [locations[2 * n], locations[2 * n + 1]];
            for i in 0..self.scales {
                let f = 1usize << i; // block side
                let (top, left) = self.corner(l, h, w, i);
                let inv = 1.0 / (f * f) as f32;
                let dst = &mut out[(n * self.scales + i) * g * g..(n * self.scales + i + 1) * g * g];
                for (r, row) in dst.chunks_mut(g).enumerate() {
                    for dy in 0..f {
                        let y = top + (r * f + dy) as isize;
                        if y < 0 || y >= h as isize {
                            continue;
                        }
                        let src = &img[y as usize * w..(y as usize + 1) * w];
                        // Columns of this row that fall inside the image.
                        let x0 = left.max(0) as usize;
                        let x1 = (left + (g * f) as isize).min(w as isize);
                        if x1 <= x0 as isize {
                            continue;
                        }
                        for x in x0..x1 as usize {
                            row[(x as isize - left) as usize / f] += src[x];
                        }
                    }
                    for v in row.iter_mut() {
                        *v *= inv;
                    }
                }
            }
        }
        out
    }
}

impl Retina {
    /// The read at location `l` as a matrix `A` (`(h·w) × len`, row-major) with
    /// `glimpse = pixels · A`: each column averages the pixels of one output cell.
    pub fn matrix(&self, h: usize, w: usize, l: [f32; 2]) -> Vec<f32> {
        let (g, k) = (self.patch, self.len());
        let mut a = vec![0.0f32; h * w * k];
        for i in 0..self.scales {
            let f = 1usize << i;
            let (top, left) = self.corner(l, h, w, i);
            let inv = 1.0 / (f * f) as f32;
            for r in 0..g * f {
                let y = top + r as isize;
                if y < 0 || y >= h as isize {
                    continue;
                }
                for c in 0..g * f {
                    let x = left + c as isize;
                    if x < 0 || x >= w as isize {
                        continue;
                    }
                    let col = i * g * g + (r / f) * g + c / f;
                    a[(y as usize * w + x as usize) * k + col] += inv;
                }
            }
        }
        a
    }

    /// [`read`](Self::read) as a differentiable tensor operation in the pixels:
    /// `(B, h·w)` images → `(B, len)` glimpses, for input-gradient (saliency) analysis. It
    /// builds one dense `(h·w) × len` matrix per image, so it suits small batches only.
    pub fn read_tensor(&self, images: Tensor<2>, h: usize, w: usize, locations: &[f32]) -> Tensor<2> {
        let [b, _] = images.dims();
        let device = images.device();
        let mats: Vec<f32> = (0..b).flat_map(|n| self.matrix(h, w, [locations[2 * n], locations[2 * n + 1]])).collect();
        let a = Tensor::<3>::from_data(TensorData::new(mats, [b, h * w, self.len()]), &device);
        images.unsqueeze_dim::<3>(1).matmul(a).reshape([b, self.len()]) // (B, 1, hw) · (B, hw, K)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, written plainly: crop with zero padding, then average blocks.
    fn naive(r: &Retina, img: &[f32], h: usize, w: usize, l: [f32; 2]) -> Vec<f32> {
        let g = r.patch;
        let mut out = vec![];
        for i in 0..r.scales {
            let s = r.side(i);
            let (top, left) = r.corner(l, h, w, i);
            let px = |y: isize, x: isize| {
                if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                    0.0
                } else {
                    img[y as usize * w + x as usize]
                }
            };
            let crop: Vec<f32> = (0..s)
                .flat_map(|y| (0..s).map(move |x| (y, x)))
                .map(|(y, x)| px(top + y as isize, left + x as isize))
                .collect();
            let f = s / g;
            for gy in 0..g {
                for gx in 0..g {
                    let mut sum = 0.0;
                    for dy in 0..f {
                        for dx in 0..f {
                            sum += crop[(gy * f + dy) * s + gx * f + dx];
                        }
                    }
                    out.push(sum / (f * f) as f32);
                }
            }
        }
        out
    }

    #[test]
    fn centre_glimpse_of_a_known_image() {
        // 8×8 image with value = row*8+col; one 4×4 scale at the centre reads rows/cols 2..6.
        let img: Vec<f32> = (0..64).map(|v| v as f32).collect();
        let r = Retina { patch: 4, scales: 2 };
        let out = r.read(&img, 8, 8, &[0.0, 0.0]);
        assert_eq!(out.len(), 2 * 16);
        assert_eq!(&out[..4], &[18.0, 19.0, 20.0, 21.0]);
        // Scale 1 covers the whole 8×8 image, 2×2 blocks: first block = mean(0,1,8,9).
        assert_eq!(out[16], 4.5);
        assert_eq!(r.len(), 32);
    }

    #[test]
    fn outside_reads_zero() {
        let img = vec![1.0f32; 28 * 28];
        let r = Retina { patch: 8, scales: 1 };
        let out = r.read(&img, 28, 28, &[-1.0, -1.0]); // centred on the top-left corner
        // Rows/cols -4..4: only the bottom-right quarter lies inside.
        assert_eq!(out.iter().sum::<f32>(), 16.0);
        assert_eq!(out[0], 0.0);
        assert_eq!(out[63], 1.0);
    }

    #[test]
    fn tensor_read_equals_the_fused_read_and_has_the_right_gradient() {
        use burn::tensor::Device;
        let dev = Device::flex().autodiff();
        let mut rng = crate::rng::Rng::new(2);
        let (h, w) = (20, 17);
        let img: Vec<f32> = (0..2 * h * w).map(|_| rng.uniform() as f32).collect();
        let r = Retina { patch: 4, scales: 3 };
        let locs = [0.3f32, -0.8, -1.0, 0.9];
        let fused = r.read(&img, h, w, &locs);
        let x = Tensor::<2>::from_data(TensorData::new(img.clone(), [2, h * w]), &dev).require_grad();
        let t = r.read_tensor(x.clone(), h, w, &locs);
        let tv: Vec<f32> = t.clone().into_data().try_to_vec().unwrap();
        assert!(fused.iter().zip(&tv).all(|(a, b)| (a - b).abs() < 1e-5));
        // d(sum of glimpse 0)/d(pixel) is the total weight of that pixel in image 0's read.
        let g: Vec<f32> = x.grad(&t.narrow(0, 0, 1).sum().backward()).unwrap().into_data().try_to_vec().unwrap();
        let a = r.matrix(h, w, [0.3, -0.8]);
        for p in 0..h * w {
            let want: f32 = a[p * r.len()..(p + 1) * r.len()].iter().sum();
            assert!((g[p] - want).abs() < 1e-5);
        }
        assert!(g[h * w..].iter().all(|&v| v == 0.0), "image 1 does not affect glimpse 0");
    }

    proptest! {
        #[test]
        fn batched_read_matches_the_naive_definition(
            seed in 0u64..1000, h in 5usize..40, w in 5usize..40, g in 1usize..7, k in 1usize..4,
            ly in -1.2f32..1.2, lx in -1.2f32..1.2,
        ) {
            let mut rng = crate::rng::Rng::new(seed);
            let img: Vec<f32> = (0..2 * h * w).map(|_| rng.uniform() as f32).collect();
            let r = Retina { patch: g, scales: k };
            let locs = [ly, lx, -lx, ly * 0.5];
            let out = r.read(&img, h, w, &locs);
            for n in 0..2 {
                let want = naive(&r, &img[n * h * w..(n + 1) * h * w], h, w, [locs[2 * n], locs[2 * n + 1]]);
                let got = &out[n * r.len()..(n + 1) * r.len()];
                for (a, b) in got.iter().zip(&want) {
                    prop_assert!((a - b).abs() < 1e-5, "{a} vs {b}");
                }
            }
        }
    }
}
