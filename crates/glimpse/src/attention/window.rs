//! Graves' (2013) soft window over a text (section 5.1, eq. 46–51): a mixture of `K` Gaussian
//! bumps over the character positions `u = 1…U`, whose centres only move forward.
//!
//! From the network's output `(α̂, β̂, κ̂)` (each `(B, K)`):
//! - `α = exp(α̂)` (importance), `β = exp(β̂)` (width), `κ_t = κ_{t−1} + exp(κ̂)` (location,
//!   eq. 48–50: the offset is positive, so the window never moves back);
//! - `φ(t, u) = Σ_k α_k exp(−β_k (κ_k − u)²)` (eq. 46);
//! - the window vector `w_t = Σ_u φ(t, u) c_u` (eq. 47), `c_u` the one-hot characters.
//!
//! Padded characters (past each text's length) get `φ = 0`.

use crate::ops;
use burn::tensor::{Device, Tensor, TensorData};

/// The window parameters of one step.
#[derive(Debug, Clone)]
pub struct WindowParams {
    /// `α` `(B, K)`.
    pub alpha: Tensor<2>,
    /// `β` `(B, K)`.
    pub beta: Tensor<2>,
    /// `κ_t` `(B, K)`.
    pub kappa: Tensor<2>,
}

/// Eq. 48–50: `raw (B, 3K)` = `(α̂, β̂, κ̂)` and the previous `κ_{t−1} (B, K)`.
pub fn window_params(raw: Tensor<2>, kappa_prev: Tensor<2>) -> WindowParams {
    let k = raw.dims()[1] / 3;
    let alpha = ops::exp(raw.clone().narrow(1, 0, k));
    let beta = ops::exp(raw.clone().narrow(1, k, k));
    let kappa = kappa_prev + ops::exp(raw.narrow(1, 2 * k, k));
    WindowParams { alpha, beta, kappa }
}

/// `u = 1…U` as a `(1, 1, U)` tensor.
fn positions(u: usize, device: &Device) -> Tensor<3> {
    let v: Vec<f32> = (1..=u).map(|x| x as f32).collect();
    Tensor::from_data(TensorData::new(v, [1, 1, u]), device)
}

/// Eq. 46: `φ(t, u)` `(B, U)` for `U` character positions; `mask (B, U)` is 1 for real
/// characters and 0 for padding.
pub fn phi(p: &WindowParams, u: usize, mask: Tensor<2>) -> Tensor<2> {
    let [b, k] = p.alpha.dims();
    let device = p.alpha.device();
    let d = p.kappa.clone().reshape([b, k, 1]) - positions(u, &device); // (B, K, U)
    let bumps = ops::exp(d.square() * p.beta.clone().reshape([b, k, 1]).neg()) * p.alpha.clone().reshape([b, k, 1]);
    bumps.sum_dim(1).reshape([b, u]) * mask
}

/// Eq. 47: `w_t = Σ_u φ(t, u) c_u`: `phi (B, U)`, `chars (B, U, C)` → `(B, C)`.
pub fn window_vector(phi: Tensor<2>, chars: Tensor<3>) -> Tensor<2> {
    let [b, u] = phi.dims();
    let c = chars.dims()[2];
    phi.reshape([b, 1, u]).matmul(chars).reshape([b, c])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tensor as t2;
    use crate::testing::{grad_check, uniform};

    #[test]
    fn one_sharp_bump_reads_the_character_under_kappa_and_kappa_only_grows() {
        let dev = Device::flex();
        // K = 1: α = e^0 = 1, β = e^3 ≈ 20 (sharp), κ = 0 + e^{ln 2} = 2 → reads character 2.
        let raw = t2(vec![0.0, 3.0, 2f32.ln()], [1, 3], &dev);
        let p = window_params(raw, t2(vec![0.0], [1, 1], &dev));
        let f: Vec<f32> = phi(&p, 4, t2(vec![1.0; 4], [1, 4], &dev)).into_data().try_to_vec().unwrap();
        assert!((f[1] - 1.0).abs() < 1e-6 && f[0] < 1e-8 && f[2] < 1e-8, "{f:?}");
        // Characters a, b, c, d one-hot: the window vector is b.
        let eye: Vec<f32> = (0..16).map(|i| if i % 5 == 0 { 1.0 } else { 0.0 }).collect();
        let chars = Tensor::<3>::from_data(TensorData::new(eye, [1, 4, 4]), &dev);
        let w: Vec<f32> = window_vector(t2(f, [1, 4], &dev), chars).into_data().try_to_vec().unwrap();
        assert!((w[1] - 1.0).abs() < 1e-6 && w[0] < 1e-6);
        // Any raw κ̂ moves κ forward (exp(−3) ≈ 0.05 here).
        let next = window_params(t2(vec![0.0, 0.0, -3.0], [1, 3], &dev), p.kappa.clone());
        let (k0, k1): (f32, f32) = (p.kappa.into_scalar(), next.kappa.clone().into_scalar());
        assert!(k1 > k0);
        // Padding reads nothing.
        let masked: Vec<f32> =
            phi(&next, 4, t2(vec![1.0, 0.0, 1.0, 1.0], [1, 4], &dev)).into_data().try_to_vec().unwrap();
        assert_eq!(masked[1], 0.0);
    }

    #[test]
    fn window_gradients_match_finite_differences() {
        let (b, k, u, c) = (2, 2, 5, 3);
        let inputs = [uniform(b * 3 * k, -1.0, 0.5, 1), uniform(b * k, 0.0, 3.0, 2), uniform(b * u * c, 0.0, 1.0, 3)];
        grad_check(&inputs, 1e-3, 2e-2, |x| {
            let [raw, kappa, chars]: [Tensor<1>; 3] = x.try_into().unwrap();
            let dev = raw.device();
            let p = window_params(raw.reshape([b, 3 * k]), kappa.reshape([b, k]));
            let mask = t2(vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0], [b, u], &dev);
            let f = phi(&p, u, mask);
            let w = window_vector(f.clone(), chars.reshape([b, u, c]));
            Tensor::cat(vec![f.reshape([b * u]), w.reshape([b * c]), p.kappa.reshape([b * k])], 0)
        });
    }
}
