//! `log softmax(x)_t` of one class `t` per row ([`log_softmax_pick`]), the cross-entropy of a
//! vocabulary-sized output (`(B·T, V)` logits of the translation models), in one pass forward
//! and one backward instead of the max / subtract / exp / sum / log / gather chain, each a pass
//! over the whole `(B·T, V)` tensor with its own gradient buffer. Elsewhere, burn's
//! `log_softmax` and a gather.

use super::autodiff::{Grad, record};
use super::math::{exp_fast, wide};
use super::{contiguous, f32s, flex_f32, is_flex};
use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;

/// Row-wise `log Σ_v exp(x_v)`, stable (the row's maximum taken out first); eight partial
/// maxima and sums, so both loops vectorise.
#[inline(always)]
fn log_sum_exp(row: &[f32]) -> f32 {
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    let mut m8 = [f32::MIN; 8];
    for c in chunks.clone() {
        for l in 0..8 {
            m8[l] = m8[l].max(c[l]);
        }
    }
    let m = tail.iter().chain(&m8).fold(f32::MIN, |a, &v| a.max(v));
    let mut s8 = [0.0f32; 8];
    for c in chunks {
        for l in 0..8 {
            s8[l] += exp_fast(c[l] - m);
        }
    }
    let rest: f32 = tail.iter().map(|&v| exp_fast(v - m)).sum();
    m + (s8.iter().sum::<f32>() + rest).ln()
}

/// Forward: `x (N, V)`, class indices `t (N)` (as floats) → `out (N)` = `x_t − log Σ exp x`,
/// and each row's `log Σ exp x` into `lse (N)` (for the backward pass).
pub fn log_softmax_pick_kernel(x: &[f32], t: &[f32], out: &mut [f32], lse: &mut [f32], v: usize) {
    wide(
        #[inline(always)]
        || {
            for (((row, &t), out), lse) in x.chunks_exact(v).zip(t).zip(out.iter_mut()).zip(lse.iter_mut()) {
                *lse = log_sum_exp(row);
                *out = row[t as usize] - *lse;
            }
        },
    )
}

/// Backward: `dx = g · (onehot(t) − softmax(x))` row by row, from the forward's `lse`.
pub fn log_softmax_pick_backward_kernel(x: &[f32], t: &[f32], lse: &[f32], g: &[f32], dx: &mut [f32], v: usize) {
    wide(
        #[inline(always)]
        || {
            let rows = x.chunks_exact(v).zip(t).zip(lse).zip(g);
            for ((((row, &t), &lse), &g), d) in rows.zip(dx.chunks_exact_mut(v)) {
                for (d, &x) in d.iter_mut().zip(row) {
                    *d = -g * exp_fast(x - lse);
                }
                d[t as usize] += g;
            }
        },
    )
}

/// Backends with the fused log-softmax pick.
#[backend_extension(Flex, Autodiff)]
pub trait LogSoftmaxPickOps: Backend {
    /// `x (N, V)`, `t (N)` class indices as floats (not differentiated) → `(N)`.
    fn log_softmax_pick(x: FloatTensor<Self>, t: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// The log-softmax pick's kernels an inner (non-autodiff) backend provides.
pub trait LogSoftmaxPickBackward: Backend {
    /// [`LogSoftmaxPickOps::log_softmax_pick`] that also returns each row's `log Σ exp x` `(N)`.
    fn log_softmax_pick_forward(x: FloatTensor<Self>, t: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// `x (N, V)`, `t (N)`, `lse (N)` from the forward pass, `g (N)` → `dx (N, V)`.
    fn log_softmax_pick_backward(
        x: FloatTensor<Self>,
        t: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        g: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

impl LogSoftmaxPickOps for Flex {
    fn log_softmax_pick(x: FlexTensor, t: FlexTensor) -> FlexTensor {
        Self::log_softmax_pick_forward(x, t).0
    }
}

impl LogSoftmaxPickBackward for Flex {
    fn log_softmax_pick_forward(x: FlexTensor, t: FlexTensor) -> (FlexTensor, FlexTensor) {
        let (x, t) = (contiguous(x), contiguous(t));
        let [n, v] = x.shape().dims();
        let (mut out, mut lse) = (vec![0.0f32; n], vec![0.0f32; n]);
        log_softmax_pick_kernel(f32s(&x), f32s(&t), &mut out, &mut lse, v);
        (flex_f32(out, [n]), flex_f32(lse, [n]))
    }

    fn log_softmax_pick_backward(x: FlexTensor, t: FlexTensor, lse: FlexTensor, g: FlexTensor) -> FlexTensor {
        let [x, t, lse, g] = [x, t, lse, g].map(contiguous);
        let [n, v] = x.shape().dims();
        let mut dx = vec![0.0f32; n * v];
        log_softmax_pick_backward_kernel(f32s(&x), f32s(&t), f32s(&lse), f32s(&g), &mut dx, v);
        flex_f32(dx, [n, v])
    }
}

impl<B: Backend + LogSoftmaxPickOps + LogSoftmaxPickBackward, C: CheckpointStrategy> LogSoftmaxPickOps
    for Autodiff<B, C>
{
    fn log_softmax_pick(x: FloatTensor<Self>, t: FloatTensor<Self>) -> FloatTensor<Self> {
        let parents = [x.node()];
        let (x, t) = (x.into_primitive(), t.into_primitive());
        let grad: Grad<B, [FloatTensor<B>; 3], _, 1> = |[x, t, lse], g, _| [B::log_softmax_pick_backward(x, t, lse, g)];
        record::<B, C, _, _, _, 1>(parents, grad, |tracked| match tracked {
            true => {
                let (out, lse) = B::log_softmax_pick_forward(x.clone(), t.clone());
                (out, Some([x, t, lse]))
            }
            false => (B::log_softmax_pick(x, t), None),
        })
    }
}

/// `log softmax(x)` at one class per row: `x (N, V)`, `classes (N)` → `(N)`; fused on the CPU
/// (the gradient flows to `x` only).
pub fn log_softmax_pick(x: Tensor<2>, classes: Tensor<1, burn::tensor::Int>) -> Tensor<1> {
    let n = x.dims()[0];
    if !is_flex(&x.device()) {
        let logp = burn::tensor::activation::log_softmax(x, 1);
        return logp.gather(1, classes.reshape([n, 1])).reshape([n]);
    }
    let t = classes.float().detach();
    Tensor::<1>::from_dispatch(<Dispatch as LogSoftmaxPickOps>::log_softmax_pick(x.into_dispatch(), t.into_dispatch()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{cpu, grad_check, uniform, values};
    use burn::tensor::{Int, TensorData};

    #[test]
    fn fused_log_softmax_pick_matches_the_composed_one_and_its_gradient() {
        let (n, v) = (4, 7);
        let x = cpu(uniform(n * v, -20.0, 20.0, 5), [n, v]);
        let classes = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 6, 3, 3], [n]), &x.device());
        let fused = values(log_softmax_pick(x.clone(), classes.clone()));
        let want = values(burn::tensor::activation::log_softmax(x, 1).gather(1, classes.clone().reshape([n, 1])));
        assert!(fused.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-4 * b.abs().max(1.0)), "{fused:?} vs {want:?}");
        grad_check(&[uniform(n * v, -3.0, 3.0, 6)], 1e-3, 1e-2, |x| {
            let [x]: [Tensor<1>; 1] = x.try_into().unwrap();
            let c = classes.clone().to_device(&x.device());
            log_softmax_pick(x.reshape([n, v]), c)
        });
    }
}
