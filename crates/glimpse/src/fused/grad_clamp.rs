//! The identity whose backward pass clamps the gradient elementwise ([`grad_clamp`]).

use super::autodiff::{Grad, record};
use super::is_flex;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, Scalar, backend_extension};
use burn::tensor::Tensor;

/// Backends with the gradient clamp.
#[backend_extension(Flex, Autodiff)]
pub trait GradClampOps: Backend {
    /// The identity forward; backward, the gradient clamped elementwise to `[−limit, limit]`.
    fn grad_clamp(x: FloatTensor<Self>, limit: f32) -> FloatTensor<Self>;
}

impl GradClampOps for Flex {
    fn grad_clamp(x: FlexTensor, _limit: f32) -> FlexTensor {
        x
    }
}

impl<B: Backend, C: CheckpointStrategy> GradClampOps for Autodiff<B, C> {
    fn grad_clamp(x: FloatTensor<Self>, limit: f32) -> FloatTensor<Self> {
        let grad: Grad<B, f32, _, 1> = |limit, g, _| {
            let (lo, hi) = (Scalar::Float(-limit as f64), Scalar::Float(limit as f64));
            [B::float_clamp(g, lo, hi)]
        };
        record::<B, C, _, _, _, 1>([x.node()], grad, |tracked| (x.into_primitive(), tracked.then_some(limit)))
    }
}

/// `x` unchanged, but its gradient clamped elementwise to `[−limit, limit]` in the backward
/// pass (Graves 2013 §4 clipped LSTM derivatives this way): put on a recurrent state, it keeps
/// a gradient exploding through time from overflowing while the loss stays finite. On devices
/// other than the CPU it is the identity (no clamping).
pub fn grad_clamp<const D: usize>(x: Tensor<D>, limit: f32) -> Tensor<D> {
    if !is_flex(&x.device()) {
        return x;
    }
    Tensor::from_dispatch(<Dispatch as GradClampOps>::grad_clamp(x.into_dispatch(), limit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn grad_clamp_is_the_identity_forward_and_clamps_the_gradient_backward() {
        let dev = Device::flex().autodiff();
        let x = Tensor::<2>::from_data(TensorData::new(vec![0.5f32, -2.0, 3.0, 0.0], [2, 2]), &dev).require_grad();
        let y = grad_clamp(x.clone(), 1.0);
        assert_eq!(y.clone().into_data().try_to_vec::<f32>().unwrap(), vec![0.5, -2.0, 3.0, 0.0]);
        // d(Σ c_i y_i)/dy = c: entries beyond ±1 are clamped, smaller ones pass unchanged.
        let c = Tensor::<2>::from_data(TensorData::new(vec![100.0f32, -0.25, -7.0, 1.0], [2, 2]), &dev);
        let grads = (y * c).sum().backward();
        let g: Vec<f32> = x.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
        assert_eq!(g, vec![1.0, -0.25, -1.0, 1.0]);
    }
}
