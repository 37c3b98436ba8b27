//! Small numeric helpers shared by the models, where a measured hot path needs them.

use crate::fused::{Unary, unary};
use burn::tensor::Tensor;

/// `tanh(x)`: one fused pass on the CPU ([`crate::fused::unary`](fn@crate::fused::unary)).
///
/// On the CPU backend `Tensor::tanh` calls libm's scalar `tanhf` per element, which took 26%
/// of a seq2seq training step in `perf` (`__tanhf` and `__expm1f`); then burn's sigmoid (libm's
/// scalar `expf`, 9% of the same profile after that). The fused pass uses a vectorisable `exp`
/// and agrees with `tanh` to within 1e-6 absolutely (tested).
pub fn tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    unary(x, Unary::Tanh)
}

/// `σ(x)`: one fused pass on the CPU.
pub fn sigmoid<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    unary(x, Unary::Sigmoid)
}

/// `e^x`: one fused pass on the CPU, where it saturates at `e^−87` and `e^88` (no subnormals,
/// no overflow to infinity).
pub fn exp<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    unary(x, Unary::Exp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::grad_check;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn fused_functions_equal_libm_and_have_the_right_gradients() {
        let dev = Device::flex();
        // Longer than the kernels' split into threads, so both paths run.
        let v: Vec<f32> = (-40_000..=40_000).map(|i| i as f32 * 5e-4).chain([-90.0, 90.0, 1e-6]).collect();
        let x = Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), &dev);
        type Check = (fn(Tensor<1>) -> Tensor<1>, fn(f64) -> f64, f64);
        let checks: [Check; 3] = [
            (tanh, f64::tanh, 1e-6),
            (sigmoid, |x| 1.0 / (1.0 + (-x).exp()), 1e-6),
            // Saturates: e^−87 ≈ 1.6e−38 below −87 instead of a subnormal, e^88 ≈ 1.7e38
            // above 88 instead of overflowing to infinity.
            (exp, |x| x.clamp(-87.0, 88.0).exp(), 0.0),
        ];
        for (f, want, abs) in checks {
            let ours: Vec<f32> = f(x.clone()).into_data().try_to_vec().unwrap();
            for (a, &x) in ours.iter().zip(&v) {
                let w = want(x as f64);
                assert!((*a as f64 - w).abs() <= abs + 1e-6 * w.abs(), "f({x}): {a} vs {w}");
            }
            grad_check(&[vec![-2.0, -0.3, 0.0, 0.7, 3.0]], 1e-3, 1e-2, |x| f(x.into_iter().next().unwrap()));
        }
    }
}
