//! Soft attention by location: the Gaussian filterbank of DRAW (Gregor, Danihelka, Graves,
//! Rezende, Wierstra 2015, "DRAW: A Recurrent Neural Network For Image Generation", §3.2).
//!
//! An `N × N` grid of 2-D Gaussian filters is laid over an `A × B` image (`A` columns, `B`
//! rows). Five numbers place it, emitted by a linear layer (eq. 21):
//! `(g̃_X, g̃_Y, log σ², log δ̃, log γ)`, from which
//!
//! - the grid centre `g_X = (A + 1)/2 · (g̃_X + 1)`, `g_Y = (B + 1)/2 · (g̃_Y + 1)` (eq. 22–23),
//! - the stride `δ = (max(A, B) − 1)/(N − 1) · δ̃` (eq. 24),
//! - the filters' variance `σ²` and the read intensity `γ`.
//!
//! The filter centres are `μ_X^i = g_X + (i − N/2 − 0.5) δ` for `i = 1..N` (eq. 19–20): the grid
//! is symmetric about `g`. (A known reimplementation counts `i` from 0 and so shifts every
//! filter by one stride; [`grid_offsets`] pins the paper's formula.) Pixel coordinates run
//! `a = 1..A` and `b = 1..B`, so `g̃ = 0` puts the grid exactly at the image's centre.
//!
//! The horizontal and vertical filterbank matrices are (eq. 25–26)
//! `F_X[i, a] = exp(−(a − μ_X^i)² / 2σ²) / Z_X`, rows normalised to sum to one (`Z` is floored,
//! so a grid wholly outside the image reads zeros, not NaN). Then
//!
//! - `read(x) = γ F_Y x F_Xᵀ`: an `N × N` glimpse (eq. 27),
//! - `write(w) = 1/γ̂ · F̂_Yᵀ w F̂_X`: an `N × N` patch splatted onto the canvas (eq. 29).

use burn::tensor::{Tensor, TensorData};

/// Floor of the filters' normaliser `Z`.
pub const Z_FLOOR: f32 = 1e-8;

/// Where and how sharply an `N × N` grid attends, per batch element; each `(B, 1)`.
#[derive(Debug, Clone)]
pub struct Filterbank {
    /// Grid centre, column coordinate `g_X ∈ (0, A + 1)` for `g̃_X ∈ (−1, 1)`.
    pub gx: Tensor<2>,
    /// Grid centre, row coordinate `g_Y`.
    pub gy: Tensor<2>,
    /// Stride between filter centres `δ > 0`.
    pub delta: Tensor<2>,
    /// Filter variance `σ² > 0`.
    pub sigma2: Tensor<2>,
    /// Intensity `γ > 0`.
    pub gamma: Tensor<2>,
    /// Grid side `N`.
    pub n: usize,
}

/// The offsets `i − N/2 − 0.5` of the filter centres from the grid centre, in strides, for
/// `i = 1..N` (eq. 19–20). Symmetric about zero: `offsets[i] = −offsets[N − 1 − i]`.
pub fn grid_offsets(n: usize) -> Vec<f32> {
    (1..=n).map(|i| i as f32 - n as f32 / 2.0 - 0.5).collect()
}

impl Filterbank {
    /// The grid placed by a linear layer's `(B, 5)` output `(g̃_X, g̃_Y, log σ², log δ̃, log γ)`
    /// over an image of `[rows, cols] = [B, A]` pixels (eq. 21–24).
    pub fn from_raw(raw: Tensor<2>, side: [usize; 2], n: usize) -> Self {
        let [rows, cols] = side;
        let col = |k: usize| raw.clone().narrow(1, k, 1); // (B, 1)
        let stride_scale = (rows.max(cols) as f32 - 1.0) / (n.max(2) as f32 - 1.0);
        Self {
            gx: col(0).add_scalar(1.0).mul_scalar((cols as f32 + 1.0) / 2.0),
            gy: col(1).add_scalar(1.0).mul_scalar((rows as f32 + 1.0) / 2.0),
            sigma2: col(2).exp(),
            delta: col(3).exp().mul_scalar(stride_scale),
            gamma: col(4).exp(),
            n,
        }
    }

    /// The row-normalised filter matrices `(F_X (B, N, A), F_Y (B, N, B))` (eq. 25–26).
    pub fn matrices(&self, side: [usize; 2]) -> (Tensor<3>, Tensor<3>) {
        let [rows, cols] = side;
        if rows == cols {
            // Square images: both axes in one pass, `(B, 2N, A)`, half the small ops.
            let n = self.n;
            let g = Tensor::cat(vec![self.gx.clone(), self.gy.clone()], 1); // (B, 2)
            let f = filters_many(g, self.delta.clone(), self.sigma2.clone(), n, cols);
            return (f.clone().narrow(1, 0, n), f.narrow(1, n, n));
        }
        let fx = filters(self.gx.clone(), self.delta.clone(), self.sigma2.clone(), self.n, cols);
        let fy = filters(self.gy.clone(), self.delta.clone(), self.sigma2.clone(), self.n, rows);
        (fx, fy)
    }

    /// The filter centres `(μ_Y, μ_X)` of batch element `b` in pixel coordinates (`1..B`,
    /// `1..A`), for pictures.
    pub fn centres(&self, b: usize) -> (Vec<f32>, Vec<f32>) {
        let scalar = |t: &Tensor<2>| -> f32 { t.clone().narrow(0, b, 1).into_scalar() };
        let (gx, gy, d) = (scalar(&self.gx), scalar(&self.gy), scalar(&self.delta));
        let offsets = grid_offsets(self.n);
        (offsets.iter().map(|o| gy + o * d).collect(), offsets.iter().map(|o| gx + o * d).collect())
    }
}

/// A starting bias for the layer that emits `(g̃_X, g̃_Y, log σ², log δ̃, log γ)`: the grid
/// centred, its `N` filters tiling the image (stride `δ = max(A, B)/N`) and overlapping
/// (`σ = δ/2`), `γ = 1`. With `δ̃ = 1, σ = 1` instead, a 2×2 grid over a 28×28 image would sit
/// on the image's edges and a 12×12 grid over 100×100 pixels would sample isolated pixels:
/// the first reads would carry almost nothing, and a DRAW encoder given nothing lets its
/// posterior collapse onto the prior.
pub fn tiling_bias(side: [usize; 2], n: usize) -> [f32; 5] {
    let longest = side[0].max(side[1]) as f32;
    let delta = longest / n.max(1) as f32;
    let stride_scale = (longest - 1.0) / (n.max(2) as f32 - 1.0);
    [0.0, 0.0, 2.0 * (delta / 2.0).ln(), (delta / stride_scale).ln(), 0.0]
}

/// A linear layer `inputs → 5` emitting filterbank parameters, its bias set by [`tiling_bias`].
pub fn attention_layer(inputs: usize, side: [usize; 2], n: usize, device: &burn::tensor::Device) -> burn::nn::Linear {
    let mut layer = burn::nn::LinearConfig::new(inputs, 5).init(device);
    let b = Tensor::<1>::from_data(TensorData::new(tiling_bias(side, n).to_vec(), [5]), device);
    layer.bias = Some(burn::module::Param::from_tensor(b));
    layer
}

/// One axis of the filterbank: `F[b, i, a] ∝ exp(−(a − μ^i)² / 2σ²)` for pixel coordinates
/// `a = 1..len`, rows normalised (eq. 25–26). `g, δ, σ²`: `(B, 1)` → `(B, N, len)`.
pub fn filters(g: Tensor<2>, delta: Tensor<2>, sigma2: Tensor<2>, n: usize, len: usize) -> Tensor<3> {
    filters_many(g, delta, sigma2, n, len)
}

/// [`filters`] for `K` grid centres at once: `g (B, K)` → `(B, K·N, len)`, grid `k` in rows
/// `k·N..(k+1)·N`.
fn filters_many(g: Tensor<2>, delta: Tensor<2>, sigma2: Tensor<2>, n: usize, len: usize) -> Tensor<3> {
    let [b, k] = g.dims();
    let device = g.device();
    let offsets = Tensor::<3>::from_data(TensorData::new(grid_offsets(n), [1, 1, n]), &device); // (1, 1, N)
    let mu = g.reshape([b, k, 1]) + offsets * delta.reshape([b, 1, 1]); // (B, K, N)
    let coords: Vec<f32> = (1..=len).map(|a| a as f32).collect();
    let a = Tensor::<3>::from_data(TensorData::new(coords, [1, 1, len]), &device); // (1, 1, A)
    let d = a - mu.reshape([b, k * n, 1]); // (B, K·N, A)
    let f = (d.square() * sigma2.reshape([b, 1, 1]).mul_scalar(2.0).recip().neg()).exp(); // (B, K·N, A)
    let z = f.clone().sum_dim(2).clamp_min(Z_FLOOR); // (B, K·N, 1)
    f / z
}

/// The glimpse `γ F_Y x F_Xᵀ` of images `x (B, rows, cols)`: `(B, N, N)` (eq. 27).
pub fn read(x: Tensor<3>, fx: Tensor<3>, fy: Tensor<3>, gamma: Tensor<2>) -> Tensor<3> {
    let [b, _] = gamma.dims();
    fy.matmul(x).matmul(fx.swap_dims(1, 2)) * gamma.reshape([b, 1, 1])
}

/// The canvas update `1/γ · F_Yᵀ w F_X` of patches `w (B, N, N)`: `(B, rows, cols)` (eq. 29).
pub fn write(w: Tensor<3>, fx: Tensor<3>, fy: Tensor<3>, gamma: Tensor<2>) -> Tensor<3> {
    let [b, _] = gamma.dims();
    fy.swap_dims(1, 2).matmul(w).matmul(fx) / gamma.reshape([b, 1, 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{cpu as t2, values as vec3};
    use crate::testing::{grad_check, uniform};
    use burn::tensor::Device;

    /// The paper's grid (i from 1) is symmetric about g; counting i from 0 would not be.
    #[test]
    fn grid_centres_follow_the_paper_and_are_symmetric() {
        assert_eq!(grid_offsets(1), vec![0.0]);
        assert_eq!(grid_offsets(2), vec![-0.5, 0.5]);
        assert_eq!(grid_offsets(5), vec![-2.0, -1.0, 0.0, 1.0, 2.0]);
        for n in 1..9 {
            let o = grid_offsets(n);
            assert!(o.iter().sum::<f32>().abs() < 1e-6, "N = {n}: {o:?}");
            assert!((o[n - 1] - o[0] - (n as f32 - 1.0)).abs() < 1e-6);
        }
        // g̃ = 0, δ̃ = 1 over a 9×9 image with N = 9: one filter centred on every pixel 1..9.
        let fb = Filterbank::from_raw(t2(vec![0.0, 0.0, 0.0, 0.0, 0.0], [1, 5]), [9, 9], 9);
        let (mu_y, mu_x) = fb.centres(0);
        let pixels: Vec<f32> = (1..=9).map(|a| a as f32).collect();
        for (got, want) in mu_x.iter().chain(&mu_y).zip(pixels.iter().chain(&pixels)) {
            assert!((got - want).abs() < 1e-5, "{mu_x:?}");
        }
    }

    /// With a tiny σ and stride 1 centred on a 5×5 image, a 3×3 read is the centre crop.
    #[test]
    fn sharp_read_is_a_crop_and_write_puts_it_back() {
        let img: Vec<f32> = (0..25).map(|v| v as f32).collect();
        let x = Tensor::<3>::from_data(TensorData::new(img.clone(), [1, 5, 5]), &Device::flex());
        // δ̃ = 1/(4/2) → δ = 1; σ² = e^-6.
        let raw = t2(vec![0.0, 0.0, -6.0, (0.5f32).ln(), 0.0], [1, 5]);
        let fb = Filterbank::from_raw(raw, [5, 5], 3);
        let (fx, fy) = fb.matrices([5, 5]);
        assert_eq!(fx.dims(), [1, 3, 5]);
        let g = vec3(read(x, fx.clone(), fy.clone(), fb.gamma.clone()));
        let want = [6.0, 7.0, 8.0, 11.0, 12.0, 13.0, 16.0, 17.0, 18.0];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-3, "{g:?}");
        }
        let patch = Tensor::<3>::from_data(TensorData::new(want.to_vec(), [1, 3, 3]), &Device::flex());
        let canvas = vec3(write(patch, fx, fy, fb.gamma));
        for (k, v) in canvas.iter().enumerate() {
            let (r, c) = (k / 5, k % 5);
            let expected = if (1..4).contains(&r) && (1..4).contains(&c) { img[k] } else { 0.0 };
            assert!((v - expected).abs() < 1e-3, "pixel {k}: {v}");
        }
    }

    #[test]
    fn the_starting_grid_tiles_the_image_with_overlapping_filters() {
        for (side, n) in [([28, 28], 2), ([28, 28], 5), ([100, 100], 12)] {
            let raw = t2(tiling_bias(side, n).to_vec(), [1, 5]);
            let fb = Filterbank::from_raw(raw, side, n);
            let (_, mu_x) = fb.centres(0);
            let delta = side[0] as f32 / n as f32;
            // Centres at (k + ½) δ + ½ in 1-based pixel coordinates: the tiles' middles.
            for (k, m) in mu_x.iter().enumerate() {
                assert!((m - ((k as f32 + 0.5) * delta + 0.5)).abs() < 1e-3, "{side:?} {n}: {mu_x:?}");
            }
            let s2: f32 = fb.sigma2.into_scalar();
            assert!((s2.sqrt() - delta / 2.0).abs() < 1e-3);
        }
    }

    #[test]
    fn filters_are_normalised_and_safe_outside_the_image() {
        // A grid far outside the image, and an extremely narrow one: rows sum to 1 or 0, no NaN.
        let raw = t2(vec![40.0, -40.0, -30.0, 0.0, 0.0, 0.3, -0.2, -30.0, 0.0, 0.0, 0.1, 0.1, 0.5, 0.2, 0.0], [3, 5]);
        let fb = Filterbank::from_raw(raw, [7, 6], 4);
        let (fx, fy) = fb.matrices([7, 6]);
        assert_eq!((fx.dims(), fy.dims()), ([3, 4, 6], [3, 4, 7]));
        for (k, f) in [fx, fy].into_iter().enumerate() {
            let rows: Vec<f32> = f.sum_dim(2).into_data().try_to_vec().unwrap();
            for (i, s) in rows.iter().enumerate() {
                assert!(s.is_finite(), "axis {k} row {i}: {s}");
                if i >= 8 {
                    assert!((s - 1.0).abs() < 1e-5, "axis {k} row {i}: {s}");
                }
            }
        }
    }

    /// All five attention parameters, and the image, through filters and read.
    #[test]
    fn read_gradient_matches_finite_differences_for_all_five_parameters() {
        // A non-square image, and a square one (both axes' filters computed in one pass).
        for (rows, cols) in [(6, 5), (5, 5)] {
            let (b, n) = (2, 3);
            let raw = vec![0.1, -0.2, 0.3, -0.1, 0.2, -0.3, 0.25, 0.5, 0.2, -0.1];
            let img = uniform(b * rows * cols, 0.0, 1.0, 4);
            grad_check(&[raw, img], 1e-3, 2e-2, |x| {
                let [raw, img]: [Tensor<1>; 2] = x.try_into().unwrap();
                let fb = Filterbank::from_raw(raw.reshape([b, 5]), [rows, cols], n);
                let (fx, fy) = fb.matrices([rows, cols]);
                read(img.reshape([b, rows, cols]), fx, fy, fb.gamma).reshape([b * n * n])
            });
        }
    }

    #[test]
    fn write_gradient_matches_finite_differences_for_all_five_parameters() {
        let (b, rows, cols, n) = (2, 5, 6, 2);
        let raw = vec![-0.2, 0.1, 0.4, 0.1, -0.3, 0.3, -0.25, 0.3, -0.2, 0.1];
        let patch = uniform(b * n * n, -1.0, 1.0, 5);
        grad_check(&[raw, patch], 1e-3, 2e-2, |x| {
            let [raw, patch]: [Tensor<1>; 2] = x.try_into().unwrap();
            let fb = Filterbank::from_raw(raw.reshape([b, 5]), [rows, cols], n);
            let (fx, fy) = fb.matrices([rows, cols]);
            let out = write(patch.reshape([b, n, n]), fx, fy, fb.gamma);
            assert_eq!(out.dims(), [b, rows, cols]);
            out.reshape([b * rows * cols])
        });
    }
}
