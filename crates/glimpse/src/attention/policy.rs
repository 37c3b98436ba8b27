//! Glimpse policies `π(l | h)`: distributions over where to look next, trained with REINFORCE
//! (Williams 1992), whose gradient is `∇ log π(l) · (R − b)`.
//!
//! - [`GaussianPolicy`]: the paper's (Mnih et al. 2014): `l ~ N(μ, σ² I)` with a fixed `σ`,
//!   `μ` from the location network. The sensor looks at the sample clamped to the image
//!   `[-1, 1]²`, but the policy is scored at the sample itself: scoring the clamped value
//!   would pile probability onto the border and drag `μ` there.
//! - [`DiscretePolicy`]: the simplest hard attention: a categorical distribution over a fixed
//!   `G × G` grid of candidate glimpse locations.
//!
//! Samples are drawn from the run's [`Rng`], so a seed fixes every glimpse taken.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

use crate::rng::Rng;

/// `l ~ N(μ, σ² I)` in two dimensions.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GaussianPolicy {
    /// The fixed standard deviation `σ` of each coordinate.
    pub std: f32,
}

const LN_SQRT_2PI: f32 = 0.918_938_5; // ln √(2π)

impl GaussianPolicy {
    /// Draws one location per row of `mean` (`(B, 2)` row-major): `μ + σ ε`, unclamped (score
    /// this; look at [`clamp`](Self::clamp) of it).
    pub fn sample(&self, mean: &[f32], rng: &mut Rng) -> Vec<f32> {
        mean.iter().map(|&m| m + self.std * rng.normal() as f32).collect()
    }

    /// The location the sensor reads for a sample: each coordinate clamped to `[-1, 1]`.
    pub fn clamp(sample: &[f32]) -> Vec<f32> {
        sample.iter().map(|v| v.clamp(-1.0, 1.0)).collect()
    }

    /// `log π(l | μ)` of each row, summed over the two coordinates: `(B, 2), (B, 2) → (B,)`.
    /// Differentiable in `mean`.
    pub fn log_prob(&self, mean: Tensor<2>, l: Tensor<2>) -> Tensor<1> {
        let [b, _] = mean.dims();
        let z = (l - mean).div_scalar(self.std); // (B, 2)
        let per = z.square().mul_scalar(-0.5).sub_scalar(self.std.ln() + LN_SQRT_2PI);
        per.sum_dim(1).reshape([b])
    }

    /// Entropy per location (nats): `2 · ½ ln(2πe σ²)`; constant, since σ is fixed.
    pub fn entropy(&self) -> f32 {
        1.0 + 2.0 * LN_SQRT_2PI + 2.0 * self.std.ln()
    }
}

/// A categorical distribution over a `G × G` grid of locations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiscretePolicy {
    /// Grid side `G`.
    pub grid: usize,
}

impl DiscretePolicy {
    /// Number of candidate locations `G²`.
    pub fn choices(&self) -> usize {
        self.grid * self.grid
    }

    /// Location `(row, col)` in `[-1, 1]²` of candidate `i` (row-major; cell centres).
    pub fn location(&self, i: usize) -> [f32; 2] {
        let c = |k: usize| (2.0 * k as f32 + 1.0) / self.grid as f32 - 1.0;
        [c(i / self.grid), c(i % self.grid)]
    }

    /// Draws one candidate per row of `logits` (`(B, G²)` row-major).
    pub fn sample(&self, logits: &[f32], rng: &mut Rng) -> Vec<usize> {
        logits.chunks(self.choices()).map(|row| self.sample_from(row, rng)).collect()
    }

    /// Draws an index with probability `softmax(row)`.
    pub fn sample_from(&self, row: &[f32], rng: &mut Rng) -> usize {
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
        let w: Vec<f64> = row.iter().map(|&v| ((v - m) as f64).exp()).collect();
        let mut u = rng.uniform() * w.iter().sum::<f64>();
        for (i, wi) in w.iter().enumerate() {
            if u < *wi {
                return i;
            }
            u -= wi;
        }
        row.len() - 1
    }

    /// The most probable candidate of each row.
    pub fn mode(&self, logits: &[f32]) -> Vec<usize> {
        logits
            .chunks(self.choices())
            .map(|row| row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i))
            .collect()
    }

    /// `log π(i)` of the chosen candidates: `(B, G²), (B,) → (B,)`. Differentiable in `logits`.
    pub fn log_prob(&self, logits: Tensor<2>, chosen: Tensor<1, Int>) -> Tensor<1> {
        let [b, _] = logits.dims();
        log_softmax(logits, 1).gather(1, chosen.reshape([b, 1])).reshape([b])
    }

    /// Entropy of each row's distribution (nats): `(B, G²) → (B,)`.
    pub fn entropy(&self, logits: Tensor<2>) -> Tensor<1> {
        let [b, _] = logits.dims();
        let logp = log_softmax(logits, 1);
        (logp.clone().exp() * logp).sum_dim(1).neg().reshape([b])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{tensor, values as vec1};
    use burn::tensor::{Device, TensorData};

    #[test]
    fn gaussian_log_prob_matches_the_density_and_its_gradient_finite_differences() {
        let dev = Device::flex().autodiff();
        let p = GaussianPolicy { std: 0.2 };
        let mean = vec![0.1f32, -0.3, 0.5, 0.0];
        let l = vec![0.2f32, -0.1, 0.4, 0.3];
        let lp = vec1(p.log_prob(tensor(mean.clone(), [2, 2], &dev), tensor(l.clone(), [2, 2], &dev)));
        for n in 0..2 {
            let dens: f64 = (0..2)
                .map(|k| {
                    let z = (l[2 * n + k] - mean[2 * n + k]) as f64 / 0.2;
                    (-0.5 * z * z).exp() / (0.2 * (2.0 * std::f64::consts::PI).sqrt())
                })
                .product();
            assert!((lp[n] as f64 - dens.ln()).abs() < 1e-4);
        }
        // Gradient in μ by autodiff against central differences.
        let m = tensor(mean.clone(), [2, 2], &dev).require_grad();
        let total = p.log_prob(m.clone(), tensor(l.clone(), [2, 2], &dev)).sum();
        let g: Vec<f32> = m.grad(&total.backward()).unwrap().into_data().try_to_vec().unwrap();
        let plain = Device::flex();
        let f = |mv: Vec<f32>| {
            vec1(p.log_prob(tensor(mv, [2, 2], &plain), tensor(l.clone(), [2, 2], &plain))).iter().sum::<f32>() as f64
        };
        for i in 0..4 {
            let (mut up, mut down) = (mean.clone(), mean.clone());
            up[i] += 1e-3;
            down[i] -= 1e-3;
            let fd = (f(up) - f(down)) / 2e-3;
            assert!((fd - g[i] as f64).abs() < 1e-2 * fd.abs().max(1.0), "μ[{i}]: {fd} vs {}", g[i]);
            assert!((g[i] - (l[i] - mean[i]) / 0.04).abs() < 1e-3);
        }
        assert!((p.entropy() - (2.0 * std::f32::consts::PI * std::f32::consts::E * 0.04).ln()).abs() < 1e-5);
    }

    #[test]
    fn gaussian_samples_have_the_right_spread_and_stay_inside() {
        let p = GaussianPolicy { std: 0.1 };
        let mut rng = Rng::new(4);
        let mean = vec![0.2f32; 20_000];
        let s = p.sample(&mean, &mut rng);
        let m = s.iter().sum::<f32>() / s.len() as f32;
        let sd = (s.iter().map(|v| (v - m) * (v - m)).sum::<f32>() / s.len() as f32).sqrt();
        assert!((m - 0.2).abs() < 0.005 && (sd - 0.1).abs() < 0.005, "{m} {sd}");
        assert_eq!(GaussianPolicy::clamp(&[1.3, -0.2, -7.0]), vec![1.0, -0.2, -1.0]);
    }

    #[test]
    fn discrete_policy_grid_sampling_log_prob_and_entropy() {
        let p = DiscretePolicy { grid: 3 };
        let close = |a: [f32; 2], b: [f32; 2]| (a[0] - b[0]).abs() < 1e-6 && (a[1] - b[1]).abs() < 1e-6;
        assert!(close(p.location(0), [-2.0 / 3.0, -2.0 / 3.0]));
        assert!(close(p.location(4), [0.0, 0.0]));
        assert!(close(p.location(5), [0.0, 2.0 / 3.0]));
        let logits = vec![0.0f32, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0];
        let mut rng = Rng::new(1);
        let mut counts = [0usize; 9];
        for _ in 0..20_000 {
            counts[p.sample(&logits, &mut rng)[0]] += 1;
        }
        let z: f64 = logits.iter().map(|&v| (v as f64).exp()).sum();
        for i in 0..9 {
            let want = (logits[i] as f64).exp() / z;
            assert!((counts[i] as f64 / 20_000.0 - want).abs() < 0.015, "choice {i}");
        }
        assert_eq!(p.mode(&logits), vec![2]);

        let dev = Device::flex().autodiff();
        let lt = tensor(logits.clone(), [1, 9], &dev).require_grad();
        let chosen = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64], [1]), &dev);
        let lp = p.log_prob(lt.clone(), chosen);
        let lpv = vec1(lp.clone())[0] as f64;
        assert!((lpv - (2.0 - z.ln())).abs() < 1e-5);
        // ∂ log softmax_2 / ∂ logit_j = 1[j=2] − p_j, and central differences agree.
        let g: Vec<f32> = lt.grad(&lp.sum().backward()).unwrap().into_data().try_to_vec().unwrap();
        let plain = Device::flex();
        for j in 0..9 {
            let pj = (logits[j] as f64).exp() / z;
            let want = if j == 2 { 1.0 - pj } else { -pj };
            let f = |d: f32| {
                let mut v = logits.clone();
                v[j] += d;
                let c = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64], [1]), &plain);
                vec1(p.log_prob(tensor(v, [1, 9], &plain), c))[0] as f64
            };
            let fd = (f(1e-3) - f(-1e-3)) / 2e-3;
            assert!((g[j] as f64 - want).abs() < 1e-5 && (fd - want).abs() < 1e-3, "logit {j}");
        }
        let h = vec1(p.entropy(tensor(logits.clone(), [1, 9], &plain)))[0] as f64;
        let want: f64 = logits.iter().map(|&v| (v as f64).exp() / z).map(|q| -q * q.ln()).sum();
        assert!((h - want).abs() < 1e-5);
    }

    /// REINFORCE's estimator `E[r(l) ∇ log π(l)]`, computed with these policies' `log_prob`
    /// and autodiff on many samples, matches the analytic gradient of the expected reward.
    #[test]
    fn reinforce_matches_the_analytic_gradient_on_toy_bandits() {
        let dev = Device::flex().autodiff();
        let mut rng = Rng::new(11);
        let n = 40_000;

        // Gaussian: r(l) = -|l - c|², E[r] = -(|μ - c|² + 2σ²), ∂E/∂μ = -2(μ - c).
        let p = GaussianPolicy { std: 0.3 };
        let (mu, c) = ([0.2f32, -0.4], [0.5f32, 0.1]);
        let means: Vec<f32> = (0..n).flat_map(|_| mu).collect();
        let l = p.sample(&means, &mut rng);
        let r: Vec<f32> = l.chunks(2).map(|v| -((v[0] - c[0]).powi(2) + (v[1] - c[1]).powi(2))).collect();
        let m = Tensor::<2>::from_data(TensorData::new(mu.to_vec(), [1, 2]), &dev).require_grad();
        let lp = p.log_prob(m.clone().repeat_dim(0, n), tensor(l, [n, 2], &dev)); // (N,)
        let rt = Tensor::<1>::from_data(TensorData::new(r, [n]), &dev);
        let est: Vec<f32> = m.grad(&(lp * rt).mean().backward()).unwrap().into_data().try_to_vec().unwrap();
        for k in 0..2 {
            let want = -2.0 * (mu[k] - c[k]);
            assert!((est[k] - want).abs() < 0.05, "∂E/∂μ[{k}]: REINFORCE {} vs analytic {want}", est[k]);
        }

        // Categorical over three arms with rewards r: ∂E/∂logit_j = p_j (r_j − E).
        let d = DiscretePolicy { grid: 1 };
        let rewards = [1.0f32, 0.0, 0.5];
        let logits = [0.3f32, -0.2, 0.1];
        let z: f32 = logits.iter().map(|v| v.exp()).sum();
        let probs: Vec<f32> = logits.iter().map(|v| v.exp() / z).collect();
        let expected: f32 = probs.iter().zip(&rewards).map(|(p, r)| p * r).sum();
        let mut arms = vec![];
        let mut rng = Rng::new(12);
        for _ in 0..n {
            let i = d.sample_from(&[logits[0], logits[1], logits[2]], &mut rng);
            arms.push(i);
        }
        let lt = Tensor::<2>::from_data(TensorData::new(logits.to_vec(), [1, 3]), &dev).require_grad();
        let chosen =
            Tensor::<1, Int>::from_data(TensorData::new(arms.iter().map(|&a| a as i64).collect::<Vec<_>>(), [n]), &dev);
        let lp = d.log_prob(lt.clone().repeat_dim(0, n), chosen);
        let rt =
            Tensor::<1>::from_data(TensorData::new(arms.iter().map(|&a| rewards[a]).collect::<Vec<_>>(), [n]), &dev);
        let est: Vec<f32> = lt.grad(&(lp * rt).mean().backward()).unwrap().into_data().try_to_vec().unwrap();
        for j in 0..3 {
            let want = probs[j] * (rewards[j] - expected);
            assert!((est[j] - want).abs() < 0.01, "∂E/∂logit[{j}]: REINFORCE {} vs analytic {want}", est[j]);
        }
    }
}
