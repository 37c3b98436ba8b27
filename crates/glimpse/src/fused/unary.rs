//! Elementwise `tanh`, `σ` and `e^x` ([`Unary`]): one vectorised pass each with [`exp_fast`]
//! (burn-flex calls libm's scalar `expf` per element), and a backward pass computed from the
//! output alone. Elsewhere, burn's own operations.

use super::autodiff::{Grad, record};
use super::math::{exp_fast, sigmoid_fast, tanh_fast, wide};
use super::{contiguous, f32s, is_flex};
use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Tensor, TensorData};

/// Elementwise functions with fused kernels: each one pass with the vectorisable [`exp_fast`]
/// (burn-flex calls libm's scalar `expf` per element), and a backward pass computed from the
/// output alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unary {
    /// `tanh x`; `dy/dx = 1 − y²`.
    Tanh,
    /// `σ(x) = 1 / (1 + e^−x)`; `dy/dx = y (1 − y)`.
    Sigmoid,
    /// `e^x`, saturating at `e^−87` and `e^88` ([`exp_fast`]); `dy/dx = y`.
    Exp,
}

impl Unary {
    #[inline(always)]
    fn apply(self, x: f32) -> f32 {
        match self {
            Unary::Tanh => tanh_fast(x),
            Unary::Sigmoid => sigmoid_fast(x),
            Unary::Exp => exp_fast(x),
        }
    }

    #[inline(always)]
    fn slope(self, y: f32) -> f32 {
        match self {
            Unary::Tanh => 1.0 - y * y,
            Unary::Sigmoid => y * (1.0 - y),
            Unary::Exp => y,
        }
    }
}

/// Elements per task when an elementwise kernel splits across threads.
const ELEMENTWISE_GRAIN: usize = 1 << 15;

/// `out = f(x)` elementwise, split across threads for large tensors.
pub fn unary_kernel(kind: Unary, x: &[f32], out: &mut [f32]) {
    use rayon::prelude::*;
    let run = |(x, out): (&[f32], &mut [f32])| {
        wide(
            #[inline(always)]
            || match kind {
                // One loop per kind, so each vectorises without a branch inside.
                Unary::Tanh => out.iter_mut().zip(x).for_each(|(o, &x)| *o = Unary::Tanh.apply(x)),
                Unary::Sigmoid => out.iter_mut().zip(x).for_each(|(o, &x)| *o = Unary::Sigmoid.apply(x)),
                Unary::Exp => out.iter_mut().zip(x).for_each(|(o, &x)| *o = Unary::Exp.apply(x)),
            },
        )
    };
    if x.len() > 2 * ELEMENTWISE_GRAIN {
        x.par_chunks(ELEMENTWISE_GRAIN).zip(out.par_chunks_mut(ELEMENTWISE_GRAIN)).for_each(run);
    } else {
        run((x, out));
    }
}

/// `dx = g · f'(x)` from the output `y = f(x)`.
pub fn unary_backward_kernel(kind: Unary, y: &[f32], g: &[f32], dx: &mut [f32]) {
    use rayon::prelude::*;
    let run = |((y, g), dx): ((&[f32], &[f32]), &mut [f32])| {
        wide(
            #[inline(always)]
            || dx.iter_mut().zip(y).zip(g).for_each(|((d, &y), &g)| *d = g * kind.slope(y)),
        );
    };
    if y.len() > 2 * ELEMENTWISE_GRAIN {
        y.par_chunks(ELEMENTWISE_GRAIN)
            .zip(g.par_chunks(ELEMENTWISE_GRAIN))
            .zip(dx.par_chunks_mut(ELEMENTWISE_GRAIN))
            .for_each(run);
    } else {
        run(((y, g), dx));
    }
}

/// Backends with the fused [`Unary`] functions.
#[backend_extension(Flex, Autodiff)]
pub trait UnaryOps: Backend {
    /// `tanh x` elementwise.
    fn unary_tanh(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `σ(x)` elementwise.
    fn unary_sigmoid(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `e^x` elementwise.
    fn unary_exp(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// The [`Unary`] kernels an inner (non-autodiff) backend provides.
pub trait UnaryBackward: Backend {
    /// `f(x)` for one of the [`Unary`] functions.
    fn unary_forward(x: FloatTensor<Self>, kind: Unary) -> FloatTensor<Self>;
    /// `g · f'(x)` from `y = f(x)`.
    fn unary_backward(y: FloatTensor<Self>, g: FloatTensor<Self>, kind: Unary) -> FloatTensor<Self>;
}

impl UnaryOps for Flex {
    fn unary_tanh(x: FlexTensor) -> FlexTensor {
        Self::unary_forward(x, Unary::Tanh)
    }

    fn unary_sigmoid(x: FlexTensor) -> FlexTensor {
        Self::unary_forward(x, Unary::Sigmoid)
    }

    fn unary_exp(x: FlexTensor) -> FlexTensor {
        Self::unary_forward(x, Unary::Exp)
    }
}

impl UnaryBackward for Flex {
    fn unary_forward(x: FlexTensor, kind: Unary) -> FlexTensor {
        let x = contiguous(x);
        let shape = x.shape();
        let mut out = vec![0.0f32; shape.num_elements()];
        unary_kernel(kind, f32s(&x), &mut out);
        FlexTensor::from_data(TensorData::new(out, shape))
    }

    fn unary_backward(y: FlexTensor, g: FlexTensor, kind: Unary) -> FlexTensor {
        let (y, g) = (contiguous(y), contiguous(g));
        let shape = y.shape();
        let mut dx = vec![0.0f32; shape.num_elements()];
        unary_backward_kernel(kind, f32s(&y), f32s(&g), &mut dx);
        FlexTensor::from_data(TensorData::new(dx, shape))
    }
}

/// A [`Unary`] function under autodiff: its backward pass keeps only the output.
fn unary_autodiff<B: Backend + UnaryBackward, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    kind: Unary,
) -> FloatTensor<Autodiff<B, C>> {
    let grad: Grad<B, _, _, 1> = |(y, kind), g, _| [B::unary_backward(y, g, kind)];
    record::<B, C, _, _, _, 1>([x.node()], grad, |tracked| {
        let y = B::unary_forward(x.into_primitive(), kind);
        match tracked {
            true => (y.clone(), Some((y, kind))),
            false => (y, None),
        }
    })
}

impl<B: Backend + UnaryOps + UnaryBackward, C: CheckpointStrategy> UnaryOps for Autodiff<B, C> {
    fn unary_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        unary_autodiff::<B, C>(x, Unary::Tanh)
    }

    fn unary_sigmoid(x: FloatTensor<Self>) -> FloatTensor<Self> {
        unary_autodiff::<B, C>(x, Unary::Sigmoid)
    }

    fn unary_exp(x: FloatTensor<Self>) -> FloatTensor<Self> {
        unary_autodiff::<B, C>(x, Unary::Exp)
    }
}

/// `f(x)` elementwise for one of the [`Unary`] functions: one fused pass on the CPU, burn's own
/// operation elsewhere.
pub fn unary<const D: usize>(x: Tensor<D>, kind: Unary) -> Tensor<D> {
    if !is_flex(&x.device()) {
        return match kind {
            Unary::Tanh => x.tanh(),
            Unary::Sigmoid => sigmoid(x),
            Unary::Exp => x.exp(),
        };
    }
    let x = x.into_dispatch();
    Tensor::from_dispatch(match kind {
        Unary::Tanh => <Dispatch as UnaryOps>::unary_tanh(x),
        Unary::Sigmoid => <Dispatch as UnaryOps>::unary_sigmoid(x),
        Unary::Exp => <Dispatch as UnaryOps>::unary_exp(x),
    })
}
