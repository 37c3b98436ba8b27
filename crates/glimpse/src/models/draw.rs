//! DRAW (Gregor, Danihelka, Graves, Rezende, Wierstra 2015, "DRAW: A Recurrent Neural Network
//! For Image Generation"): a variational auto-encoder that builds an image over `T` steps,
//! reading the image and writing to a canvas through soft attention windows.
//!
//! Per step t (paper eq. 3–8), with `σ` the logistic sigmoid:
//! - `x̂_t = x − σ(c_{t−1})`, the error image;
//! - `r_t = read(x_t, x̂_t, h^dec_{t−1})`: two `N × N` filterbank glimpses (eq. 27), or the
//!   whole images without attention (eq. 17);
//! - `h^enc_t = LSTM^enc(h^enc_{t−1}, [r_t, h^dec_{t−1}])`;
//! - `z_t ~ Q(Z_t | h^enc_t) = N(μ_t, σ_t)`, `μ_t = W h^enc_t`, `log σ_t = W h^enc_t` (eq. 1–2),
//!   drawn as `μ + σ ε` (reparameterisation);
//! - `h^dec_t = LSTM^dec(h^dec_{t−1}, z_t)`;
//! - `c_t = c_{t−1} + write(h^dec_t)`: an `N × N` patch through the transposed filterbank
//!   (eq. 28–29), or a whole-image update without attention (eq. 18).
//!
//! The loss (eq. 9–12) is the negative variational bound in nats: the reconstruction term
//! `L^x = −log D(x | c_T)` with `D` Bernoulli of mean `σ(c_T)`, plus the latent term
//! `L^z = Σ_t KL(Q(Z_t | h^enc_t) ‖ N(0, I)) = ½ Σ_t (μ_t² + σ_t² − log σ_t² − 1)`.
//! Generation (eq. 13–16) runs only the decoder on `z_t ~ N(0, I)`.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::lstm::LstmCell;
use crate::attention::filterbank::{self, Filterbank};

/// Sizes of a [`Draw`] model. The paper's MNIST model: `T = 64`, 256-unit LSTMs, `z` of 100,
/// read 2×2, write 5×5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrawConfig {
    /// Image `[rows, cols]`.
    pub side: [usize; 2],
    /// Glimpses (time steps) `T`.
    pub steps: usize,
    /// Encoder LSTM width.
    pub encoder: usize,
    /// Decoder LSTM width.
    pub decoder: usize,
    /// Latent width per step.
    pub latent: usize,
    /// Read grid side `N` (0: read the whole image, no attention).
    pub read: usize,
    /// Write grid side `N` (0: write the whole image, no attention).
    pub write: usize,
}

impl DrawConfig {
    /// The paper's MNIST generation model, with (`attention`) or without attention.
    pub fn mnist(attention: bool) -> Self {
        let (read, write) = if attention { (2, 5) } else { (0, 0) };
        Self { side: [28, 28], steps: 64, encoder: 256, decoder: 256, latent: 100, read, write }
    }

    /// Width of the read vector `r_t`.
    pub fn read_len(&self) -> usize {
        let [rows, cols] = self.side;
        2 * if self.read == 0 { rows * cols } else { self.read * self.read }
    }

    /// Builds the model.
    pub fn init(&self, device: &Device) -> Draw {
        let [rows, cols] = self.side;
        let patch = if self.write == 0 { rows * cols } else { self.write * self.write };
        Draw {
            encoder: LstmCell::new(self.read_len() + self.decoder, self.encoder, device),
            decoder: LstmCell::new(self.latent, self.decoder, device),
            q: LinearConfig::new(self.encoder, 2 * self.latent).init(device),
            // Both windows start tiling the whole image (see `filterbank::tiling_bias`).
            read_attention: (self.read > 0)
                .then(|| filterbank::attention_layer(self.decoder, self.side, self.read, device)),
            write_attention: (self.write > 0)
                .then(|| filterbank::attention_layer(self.decoder, self.side, self.write, device)),
            write_patch: LinearConfig::new(self.decoder, patch).init(device),
            side: self.side,
            steps: self.steps,
            latent: self.latent,
            read: self.read,
            write: self.write,
        }
    }
}

/// The DRAW network.
#[derive(Module, Debug)]
pub struct Draw {
    encoder: LstmCell,
    decoder: LstmCell,
    /// `h^enc → (μ, log σ)` (eq. 1–2).
    q: Linear,
    /// `h^dec → (g̃_X, g̃_Y, log σ², log δ̃, log γ)` for reading (eq. 21).
    read_attention: Option<Linear>,
    /// The same for writing.
    write_attention: Option<Linear>,
    /// `h^dec → w_t`, the `N × N` patch (or whole image) written (eq. 28).
    write_patch: Linear,
    #[module(skip)]
    side: [usize; 2],
    #[module(skip)]
    steps: usize,
    #[module(skip)]
    latent: usize,
    #[module(skip)]
    read: usize,
    #[module(skip)]
    write: usize,
}

/// The terms of the negative variational bound, per image, in nats.
#[derive(Debug, Clone)]
pub struct Bound {
    /// `L^x`, `(B,)`.
    pub reconstruction: Tensor<1>,
    /// `L^z`, `(B,)`.
    pub kl: Tensor<1>,
}

impl Bound {
    /// `L^x + L^z`, `(B,)`.
    pub fn total(&self) -> Tensor<1> {
        self.reconstruction.clone() + self.kl.clone()
    }
}

/// A window drawn in a picture: centre `(row, col)` and side, in pixels (0-based rows/cols).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Centre row.
    pub row: f32,
    /// Centre column.
    pub col: f32,
    /// Side `N δ`.
    pub side: f32,
}

/// What a run of DRAW did, step by step, for pictures (batch element-major).
#[derive(Debug, Clone, Default)]
pub struct DrawTrace {
    /// `σ(c_t)` per step, each `B·rows·cols`.
    pub canvases: Vec<Vec<f32>>,
    /// The write window of each step, per batch element (empty without attention).
    pub writes: Vec<Vec<Window>>,
    /// The read window of each step, per batch element (empty without attention or when
    /// generating).
    pub reads: Vec<Vec<Window>>,
}

/// The windows of a filterbank, one per batch element.
pub fn windows(fb: &Filterbank) -> Vec<Window> {
    let v = |t: &Tensor<2>| -> Vec<f32> { t.clone().into_data().try_to_vec().expect("f32") };
    let (gx, gy, d) = (v(&fb.gx), v(&fb.gy), v(&fb.delta));
    (0..gx.len()).map(|b| Window { row: gy[b] - 1.0, col: gx[b] - 1.0, side: fb.n as f32 * d[b] }).collect()
}

/// `log(1 + e^x)`, stable for any `x`.
pub fn softplus(x: Tensor<2>) -> Tensor<2> {
    relu(x.clone()) + x.abs().neg().exp().add_scalar(1.0).log()
}

/// Bernoulli negative log-likelihood of binary `x` under logits `c`, summed per row:
/// `Σ softplus(c) − x c`, `(B, D) → (B,)`.
pub fn bernoulli_nll(logits: Tensor<2>, x: Tensor<2>) -> Tensor<1> {
    let [b, _] = x.dims();
    (softplus(logits.clone()) - x * logits).sum_dim(1).reshape([b])
}

impl Draw {
    /// Glimpses `T`.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Latent width.
    pub fn latent(&self) -> usize {
        self.latent
    }

    /// Image `[rows, cols]`.
    pub fn side(&self) -> [usize; 2] {
        self.side
    }

    fn zeros(&self, b: usize, width: usize, device: &Device) -> Tensor<2> {
        Tensor::zeros([b, width], device)
    }

    /// The `n × n` filterbank that `attention` emits from `h^dec` (eq. 21–24), its windows
    /// recorded in `seen`, and its `F_X`, `F_Y` (eq. 25–26).
    fn attend(
        &self,
        attention: &Linear,
        h_dec: Tensor<2>,
        n: usize,
        seen: Option<&mut Vec<Vec<Window>>>,
    ) -> (Filterbank, Tensor<3>, Tensor<3>) {
        let fb = Filterbank::from_raw(attention.forward(h_dec), self.side, n);
        if let Some(seen) = seen {
            seen.push(windows(&fb));
        }
        let (fx, fy) = fb.matrices(self.side);
        (fb, fx, fy)
    }

    /// `r_t`: `(B, read_len)` from images and error images `(B, rows, cols)` (eq. 17 / 27).
    fn read_step(&self, x: Tensor<3>, x_hat: Tensor<3>, h_dec: Tensor<2>, trace: Option<&mut DrawTrace>) -> Tensor<2> {
        let [b, rows, cols] = x.dims();
        match &self.read_attention {
            None => Tensor::cat(vec![x.reshape([b, rows * cols]), x_hat.reshape([b, rows * cols])], 1),
            Some(attention) => {
                let n = self.read;
                let (fb, fx, fy) = self.attend(attention, h_dec, n, trace.map(|t| &mut t.reads));
                let g = filterbank::read(x, fx.clone(), fy.clone(), fb.gamma.clone()).reshape([b, n * n]);
                let g_hat = filterbank::read(x_hat, fx, fy, fb.gamma).reshape([b, n * n]);
                Tensor::cat(vec![g, g_hat], 1)
            }
        }
    }

    /// `write(h^dec_t)`: `(B, rows, cols)` (eq. 18 / 29).
    fn write_step(&self, h_dec: Tensor<2>, trace: Option<&mut DrawTrace>) -> Tensor<3> {
        let [b, _] = h_dec.dims();
        let [rows, cols] = self.side;
        let w = self.write_patch.forward(h_dec.clone());
        match &self.write_attention {
            None => w.reshape([b, rows, cols]),
            Some(attention) => {
                let n = self.write;
                let (fb, fx, fy) = self.attend(attention, h_dec, n, trace.map(|t| &mut t.writes));
                filterbank::write(w.reshape([b, n, n]), fx, fy, fb.gamma)
            }
        }
    }

    /// Encodes and reconstructs binary images `x (B, rows, cols)` with the noise `ε (T, B, Z)`;
    /// returns the negative bound's terms per image.
    pub fn bound(&self, x: Tensor<3>, noise: Tensor<3>, mut trace: Option<&mut DrawTrace>) -> Bound {
        let [b, rows, cols] = x.dims();
        let device = x.device();
        let (enc, dec) = (self.encoder.hidden(), self.decoder.hidden());
        let (mut h_enc, mut c_enc) = (self.zeros(b, enc, &device), self.zeros(b, enc, &device));
        let (mut h_dec, mut c_dec) = (self.zeros(b, dec, &device), self.zeros(b, dec, &device));
        let mut canvas = Tensor::<3>::zeros([b, rows, cols], &device);
        let mut kl = Tensor::<2>::zeros([b, self.latent], &device);
        for t in 0..self.steps {
            let x_hat = x.clone() - sigmoid(canvas.clone()); // eq. 3
            let r = self.read_step(x.clone(), x_hat, h_dec.clone(), trace.as_deref_mut()); // eq. 4
            (h_enc, c_enc) = self.encoder.step(Tensor::cat(vec![r, h_dec.clone()], 1), h_enc, c_enc); // eq. 5
            let q = self.q.forward(h_enc.clone()); // (B, 2Z)
            let mu = q.clone().narrow(1, 0, self.latent);
            let log_sigma = q.narrow(1, self.latent, self.latent);
            let eps = noise.clone().narrow(0, t, 1).reshape([b, self.latent]);
            let z = mu.clone() + log_sigma.clone().exp() * eps; // eq. 6
            // KL(N(μ, σ) ‖ N(0, 1)) = ½ (μ² + σ² − 2 log σ − 1)   (eq. 11)
            kl = kl + mu.square() + log_sigma.clone().mul_scalar(2.0).exp() - log_sigma.mul_scalar(2.0);
            (h_dec, c_dec) = self.decoder.step(z, h_dec, c_dec); // eq. 7
            canvas = canvas + self.write_step(h_dec.clone(), trace.as_deref_mut()); // eq. 8
            if let Some(tr) = trace.as_deref_mut() {
                tr.canvases.push(sigmoid(canvas.clone()).into_data().try_to_vec().expect("f32"));
            }
        }
        let kl = (kl.sum_dim(1).reshape([b]) - (self.steps * self.latent) as f32).mul_scalar(0.5);
        let reconstruction = bernoulli_nll(canvas.reshape([b, rows * cols]), x.reshape([b, rows * cols])); // eq. 9
        Bound { reconstruction, kl }
    }

    /// Generates images from the prior with noise `z (T, B, Z)` (eq. 13–16): the final means
    /// `σ(c_T)`, `(B, rows, cols)`.
    pub fn generate(&self, z: Tensor<3>, mut trace: Option<&mut DrawTrace>) -> Tensor<3> {
        let [_, b, _] = z.dims();
        let [rows, cols] = self.side;
        let device = z.device();
        let dec = self.decoder.hidden();
        let (mut h_dec, mut c_dec) = (self.zeros(b, dec, &device), self.zeros(b, dec, &device));
        let mut canvas = Tensor::<3>::zeros([b, rows, cols], &device);
        for t in 0..self.steps {
            let z_t = z.clone().narrow(0, t, 1).reshape([b, self.latent]);
            (h_dec, c_dec) = self.decoder.step(z_t, h_dec, c_dec);
            canvas = canvas + self.write_step(h_dec.clone(), trace.as_deref_mut());
            if let Some(tr) = trace.as_deref_mut() {
                tr.canvases.push(sigmoid(canvas.clone()).into_data().try_to_vec().expect("f32"));
            }
        }
        sigmoid(canvas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::testing::{grad_check, uniform};
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::TensorData;

    fn tiny(read: usize, write: usize) -> DrawConfig {
        DrawConfig { side: [6, 5], steps: 3, encoder: 8, decoder: 7, latent: 3, read, write }
    }

    fn noise(t: usize, b: usize, z: usize, seed: u64, device: &Device) -> Tensor<3> {
        let v = Rng::new(seed).normals(t * b * z, 1.0);
        Tensor::from_data(TensorData::new(v, [t, b, z]), device)
    }

    #[test]
    fn softplus_and_bernoulli_nll_match_the_direct_formulas_and_stay_finite() {
        let dev = Device::flex();
        let logits = vec![-100.0f32, -2.0, 0.0, 3.0, 100.0, 0.5];
        let x = vec![1.0f32, 0.0, 1.0, 1.0, 0.0, 0.0];
        let lt = Tensor::<2>::from_data(TensorData::new(logits.clone(), [2, 3]), &dev);
        let xt = Tensor::<2>::from_data(TensorData::new(x.clone(), [2, 3]), &dev);
        let got: Vec<f32> = bernoulli_nll(lt, xt).into_data().try_to_vec().unwrap();
        let direct = |c: f32, x: f32| -> f64 {
            // −log p(x | σ(c)) computed in f64 on the probabilities, where they are representable.
            let p = 1.0 / (1.0 + (-(c as f64)).exp());
            if x == 1.0 {
                if c < -30.0 { -(c as f64) } else { -p.ln() }
            } else if c > 30.0 {
                c as f64
            } else {
                -(1.0 - p).ln()
            }
        };
        for row in 0..2 {
            let want: f64 = (0..3).map(|k| direct(logits[row * 3 + k], x[row * 3 + k])).sum();
            assert!((got[row] as f64 - want).abs() < 1e-3 * want.max(1.0), "row {row}: {} vs {want}", got[row]);
        }
    }

    #[test]
    fn shapes_and_bound_terms_are_sane() {
        let dev = Device::flex();
        for (read, write) in [(2, 3), (0, 0)] {
            let cfg = tiny(read, write);
            let m = crate::device::seeded(&dev, 1, || cfg.init(&dev));
            let x = Tensor::<3>::from_data(
                TensorData::new(uniform(2 * 30, 0.0, 1.0, 1).iter().map(|v| v.round()).collect(), [2, 6, 5]),
                &dev,
            );
            let mut trace = DrawTrace::default();
            let bound = m.bound(x, noise(3, 2, 3, 1, &dev), Some(&mut trace));
            assert_eq!(bound.total().dims(), [2]);
            let kl: Vec<f32> = bound.kl.into_data().try_to_vec().unwrap();
            assert!(kl.iter().all(|&v| v >= 0.0 && v.is_finite()), "KL ≥ 0: {kl:?}");
            assert_eq!(trace.canvases.len(), 3);
            assert_eq!(trace.canvases[0].len(), 2 * 30);
            assert_eq!((trace.reads.len(), trace.writes.len()), if read > 0 { (3, 3) } else { (0, 0) });
            let g = m.generate(noise(3, 4, 3, 2, &dev), None);
            assert_eq!(g.dims(), [4, 6, 5]);
        }
    }

    /// The whole model, three steps, gradient with respect to the image and the noise.
    #[test]
    fn bound_gradient_matches_finite_differences() {
        let dev = Device::flex();
        let cfg = tiny(2, 2);
        let m = crate::device::seeded(&dev, 5, || cfg.init(&dev));
        let (b, t, z) = (2, 3, 3);
        let x = uniform(b * 30, 0.0, 1.0, 6);
        let eps = uniform(t * b * z, -1.0, 1.0, 7);
        grad_check(&[x, eps], 1e-2, 3e-2, |v| {
            let [x, eps]: [Tensor<1>; 2] = v.try_into().unwrap();
            let m = m.clone().fork(&x.device());
            m.bound(x.reshape([b, 6, 5]), eps.reshape([t, b, z]), None).total()
        });
    }

    /// A few hundred Adam steps on 8 fixed binary images bring the bound well below its start.
    #[test]
    fn draw_learns_a_tiny_set_in_seconds() {
        let dev = Device::flex().autodiff();
        let cfg = DrawConfig { side: [8, 8], steps: 4, encoder: 32, decoder: 32, latent: 4, read: 2, write: 3 };
        let mut model = crate::device::seeded(&dev, 1, || cfg.init(&dev));
        let mut rng = Rng::new(2);
        // Eight 8×8 bars: horizontal and vertical lines at different places.
        let mut pixels = vec![0.0f32; 8 * 64];
        for k in 0..8 {
            for j in 0..8 {
                let (r, c) = if k < 4 { (2 * k, j) } else { (j, 2 * (k - 4)) };
                pixels[k * 64 + r * 8 + c] = 1.0;
            }
        }
        let x = Tensor::<3>::from_data(TensorData::new(pixels, [8, 8, 8]), &dev);
        let mut optim = AdamConfig::new().init();
        let mut first = None;
        let mut last = 0.0f32;
        for _ in 0..300 {
            let eps = noise(4, 8, 4, rng.next_u64(), &dev);
            let loss = model.bound(x.clone(), eps, None).total().mean();
            last = loss.clone().into_scalar();
            first.get_or_insert(last);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-2, model, grads);
        }
        let first = first.unwrap();
        assert!(last.is_finite() && last < 0.5 * first, "bound {first} → {last}");
    }
}
