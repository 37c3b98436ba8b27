//! Fused CPU kernels for measured hot paths, added to burn's `flex` backend as backend
//! extensions (each with its own backward pass under autodiff).
//!
//! One file per op (or tight pair of ops), holding the whole op: its kernels on slices, its
//! `…Ops` trait (a `#[backend_extension]` with its `Flex` impl and its `Autodiff` impl, which
//! writes the backward pass), its `…Backward` trait (the kernels that backward pass calls on the
//! inner backend), the public function on tensors, the same math composed of ordinary tensor
//! operations for other devices, and its tests. The scalar functions the kernels share live in
//! `math`, the matrix products in `matmul`.
//!
//! [`lstm_gates`](fn@lstm_gates): an LSTM cell's update from its gate pre-activations,
//! `z = [i, f, u, o]` `(B, 4H)` and the cell `c (B, H)`, to `(h', c')`, in one pass over memory
//! instead of the dozen tensor operations (four slices, sigmoids, tanh, products, sums) and
//! their autodiff nodes. Profiles of the LSTM models showed libm's scalar `expf` and burn's
//! per-element activation loop among the top entries (`glimpse bench seq2seq`, `bench
//! handwriting`); here the exponential is a branch-free polynomial the compiler vectorises.
//!
//! [`log_softmax_pick`](fn@log_softmax_pick): `log softmax(x)_t` of one class `t` per row, the
//! cross-entropy of a vocabulary-sized output (`(B·T, V)` logits of the translation models), in
//! one pass forward and one backward instead of the max / subtract / exp / sum / log / gather
//! chain, each a pass over the whole `(B·T, V)` tensor with its own gradient buffer.
//!
//! [`conv3x3`](fn@conv3x3): a 3×3 convolution with padding 1 (the CNN's layers) as an im2col
//! and one matrix product per image, forward and backward, the batch split across threads;
//! burn-flex's convolution backward (a transposed convolution and tiled copies) led the CNN's
//! profile.
//!
//! Also [`unary`](fn@unary) (`tanh`, `σ`, `e^x`), [`grad_clamp`](fn@grad_clamp),
//! [`additive_scores`], [`linear`](fn@linear) and [`linear2`], and the NTM's [`ntm_address`] and
//! [`ntm_write`].
//!
//! Other devices (wgpu, cuda) take the same math composed of ordinary tensor operations. The
//! NTM ops are the exception: they run on the flex backend only, and `attention::memory`, which
//! holds their composed pipeline, picks the fused op where [`is_flex`] says so. Nothing here
//! uses the crate's attention, models or ops.

use burn::backend::DispatchDevice;
use burn::backend::flex::FlexTensor;
use burn::tensor::{Shape, TensorData};

mod autodiff;
pub mod conv3x3;
pub mod grad_clamp;
pub mod linear;
pub mod log_softmax_pick;
pub mod lstm;
mod math;
mod matmul;
pub mod ntm;
pub mod scores;
pub mod unary;

pub use conv3x3::{ConvDims, conv3x3, conv3x3_backward_kernel, conv3x3_kernel};
pub use grad_clamp::grad_clamp;
pub use linear::{linear, linear_backward_kernel, linear_kernel, linear2};
pub use log_softmax_pick::{log_softmax_pick, log_softmax_pick_backward_kernel, log_softmax_pick_kernel};
pub use lstm::{
    SeqDims, SequenceState, lstm_gates, lstm_gates_backward_kernel, lstm_gates_kernel, lstm_sequence,
    lstm_sequence_backward_kernel, lstm_sequence_kernel,
};
pub use math::{exp_fast, ln_fast};
pub use ntm::{
    ntm_address, ntm_address_backward_kernel, ntm_address_kernel, ntm_write, ntm_write_backward_kernel,
    ntm_write_kernel,
};
pub use scores::{additive_scores, additive_scores_backward_kernel, additive_scores_kernel};
pub use unary::{Unary, unary, unary_backward_kernel, unary_kernel};

/// Whether `device` (or the device under its autodiff) is the `flex` CPU backend, where the
/// fused ops run.
pub fn is_flex(device: &burn::tensor::Device) -> bool {
    matches!(device.clone().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// `t` itself if its `f32` data is contiguous, else a contiguous copy.
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() { t } else { t.to_contiguous() }
}

/// A flex tensor of shape `shape` holding `data`.
fn flex_f32<const D: usize>(data: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, Shape::new(shape)))
}

/// The `f32` data of a contiguous tensor.
fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice().expect("contiguous f32 tensor")
}
