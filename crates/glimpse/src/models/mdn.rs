//! The mixture density output of Graves' handwriting networks (2013, section 4.1, eq. 17–26):
//! a mixture of `M` bivariate Gaussians for the pen offset `(Δx, Δy)` and a Bernoulli for the
//! end of stroke.
//!
//! From `raw (B, 1 + 6M)` = `(ê, π̂, μ̂₁, μ̂₂, σ̂₁, σ̂₂, ρ̂)`:
//! `e = 1 / (1 + exp(ê))` (eq. 18), `π = softmax(π̂)` (eq. 19), `μ = μ̂` (eq. 20),
//! `σ = exp(σ̂)` (eq. 21), `ρ = tanh(ρ̂)` (eq. 22). The loss of a point `x = (x₁, x₂, x₃)` is
//! `−log Σ_j π_j N(x₁, x₂ | μ_j, σ_j, ρ_j) − log(e if x₃ = 1 else 1 − e)` (eq. 26), computed
//! in log space (log-sum-exp over the components) so that no density underflows.

use burn::tensor::Tensor;
use burn::tensor::activation::{log_sigmoid, log_softmax};

/// The mixture of one step, in log form where that is what the loss needs.
#[derive(Debug, Clone)]
pub struct Mixture {
    /// `ê` `(B, 1)`: `e = σ(−ê)`.
    pub eos_logit: Tensor<2>,
    /// `log π` `(B, M)`.
    pub log_pi: Tensor<2>,
    /// `μ₁`, `μ₂` `(B, M)`.
    pub mu: [Tensor<2>; 2],
    /// `log σ₁`, `log σ₂` `(B, M)`.
    pub log_sigma: [Tensor<2>; 2],
    /// `ρ` `(B, M)`.
    pub rho: Tensor<2>,
}

/// Outputs per step for `m` components.
pub fn outputs(m: usize) -> usize {
    1 + 6 * m
}

/// Eq. 18–22: the mixture from `raw (B, 1 + 6M)`.
pub fn mixture(raw: Tensor<2>) -> Mixture {
    let m = (raw.dims()[1] - 1) / 6;
    let part = |k: usize| raw.clone().narrow(1, 1 + k * m, m);
    Mixture {
        eos_logit: raw.clone().narrow(1, 0, 1),
        log_pi: log_softmax(part(0), 1),
        mu: [part(1), part(2)],
        log_sigma: [part(3), part(4)],
        rho: crate::ops::tanh(part(5)),
    }
}

/// Eq. 26: the negative log-likelihood `(B)` of points `x (B, 3)` = `(Δx, Δy, end of stroke)`.
pub fn nll(mix: &Mixture, x: Tensor<2>) -> Tensor<1> {
    let b = x.dims()[0];
    let x1 = x.clone().narrow(1, 0, 1);
    let x2 = x.clone().narrow(1, 1, 1);
    let eos = x.narrow(1, 2, 1);
    let z1 = (x1 - mix.mu[0].clone()) / crate::ops::exp(mix.log_sigma[0].clone()); // (B, M)
    let z2 = (x2 - mix.mu[1].clone()) / crate::ops::exp(mix.log_sigma[1].clone());
    let one_minus_rho2 = mix.rho.clone().square().neg().add_scalar(1.0);
    // Eq. 24–25: Z = z₁² + z₂² − 2ρ z₁ z₂; log N = −Z / (2(1−ρ²)) − log(2π σ₁ σ₂ √(1−ρ²)).
    let big_z = z1.clone().square() + z2.clone().square() - z1 * z2 * mix.rho.clone() * 2.0;
    let log_n = big_z.neg() / (one_minus_rho2.clone() * 2.0)
        - mix.log_sigma[0].clone()
        - mix.log_sigma[1].clone()
        - one_minus_rho2.log() * 0.5
        - (2.0 * std::f32::consts::PI).ln();
    let a = mix.log_pi.clone() + log_n; // (B, M)
    let top = a.clone().max_dim(1); // (B, 1)
    let log_mix = (a - top.clone()).exp().sum_dim(1).log() + top; // (B, 1)
    // log e = log σ(−ê), log(1 − e) = log σ(ê).
    let log_eos = log_sigmoid(mix.eos_logit.clone().neg()) * eos.clone()
        + log_sigmoid(mix.eos_logit.clone()) * eos.neg().add_scalar(1.0);
    (log_mix + log_eos).neg().reshape([b])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{grad_check, uniform};
    use burn::tensor::{Device, TensorData};

    /// The loss written out directly in f64 for one point.
    fn direct(raw: &[f32], x: [f32; 3]) -> f64 {
        let m = (raw.len() - 1) / 6;
        let r = |k: usize, j: usize| raw[1 + k * m + j] as f64;
        let e = 1.0 / (1.0 + (raw[0] as f64).exp());
        let zsum: f64 = (0..m).map(|j| r(0, j).exp()).sum();
        let mut p = 0.0;
        for j in 0..m {
            let pi = r(0, j).exp() / zsum;
            let (s1, s2, rho) = (r(3, j).exp(), r(4, j).exp(), r(5, j).tanh());
            let (d1, d2) = ((x[0] as f64 - r(1, j)) / s1, (x[1] as f64 - r(2, j)) / s2);
            let z = d1 * d1 + d2 * d2 - 2.0 * rho * d1 * d2;
            let n = (-z / (2.0 * (1.0 - rho * rho))).exp()
                / (2.0 * std::f64::consts::PI * s1 * s2 * (1.0 - rho * rho).sqrt());
            p += pi * n;
        }
        -(p.ln()) - if x[2] > 0.5 { e.ln() } else { (1.0 - e).ln() }
    }

    #[test]
    fn loss_matches_a_direct_computation() {
        let dev = Device::flex();
        let (b, m) = (4, 3);
        let raw = uniform(b * outputs(m), -1.0, 1.0, 9);
        let xs: Vec<[f32; 3]> = vec![[0.3, -0.2, 0.0], [1.5, 0.7, 1.0], [-2.0, 0.1, 0.0], [0.0, 0.0, 1.0]];
        let flat: Vec<f32> = xs.iter().flatten().copied().collect();
        let mix = mixture(Tensor::from_data(TensorData::new(raw.clone(), [b, outputs(m)]), &dev));
        let got: Vec<f32> =
            nll(&mix, Tensor::from_data(TensorData::new(flat, [b, 3]), &dev)).into_data().try_to_vec().unwrap();
        for i in 0..b {
            let want = direct(&raw[i * outputs(m)..(i + 1) * outputs(m)], xs[i]);
            assert!((got[i] as f64 - want).abs() < 1e-4 * want.abs().max(1.0), "point {i}: {} vs {want}", got[i]);
        }
    }

    #[test]
    fn far_points_and_sharp_components_stay_finite() {
        let dev = Device::flex();
        // σ = e^{−8}, the point 100 σ-units away: the density underflows f32, the log does not.
        let m = 2;
        let mut raw = vec![0.0f32; outputs(m)];
        raw[1 + 3 * m..1 + 5 * m].fill(-8.0);
        let mix = mixture(Tensor::from_data(TensorData::new(raw.clone(), [1, outputs(m)]), &dev));
        let v: f32 = nll(&mix, Tensor::from_data(TensorData::new(vec![0.03f32, 0.0, 1.0], [1, 3]), &dev)).into_scalar();
        assert!(v.is_finite() && v > 1000.0, "{v}");
        // The direct product underflows to −log 0 = ∞ even in f64; in log form, with both
        // components equal and ρ = 0: Z/2 + log(2π σ²) + log 2 (the end-of-stroke term, e = ½).
        assert!(direct(&raw, [0.03, 0.0, 1.0]).is_infinite());
        let z = (0.03f64 * 8f64.exp()).powi(2);
        let want = z / 2.0 + (2.0 * std::f64::consts::PI).ln() - 16.0 + 2f64.ln();
        assert!((v as f64 - want).abs() < 1e-3 * want, "{v} vs {want}");
    }

    #[test]
    fn loss_gradients_match_finite_differences() {
        let (b, m) = (2, 2);
        let inputs = [uniform(b * outputs(m), -0.8, 0.8, 4), uniform(b * 2, -1.0, 1.0, 5)];
        grad_check(&inputs, 1e-3, 2e-2, |x| {
            let [raw, pts]: [Tensor<1>; 2] = x.try_into().unwrap();
            let dev = raw.device();
            let eos = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0], [b, 1]), &dev);
            let x = Tensor::cat(vec![pts.reshape([b, 2]), eos], 1);
            nll(&mixture(raw.reshape([b, outputs(m)])), x)
        });
    }
}
