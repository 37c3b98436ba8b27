//! Additive (Bahdanau) attention scores `vᵀ tanh(keys + wq)` ([`additive_scores`]) in one pass
//! forward and one backward. Elsewhere, the same math composed of tensor operations.

use super::autodiff::record_on_inputs;
use super::math::{dot, tanh_fast, wide};
use super::{contiguous, f32s, flex_f32, is_flex};
use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;

/// Forward of [`additive_scores`]: `keys (B, S, A)`, `wq (B, A)`, `v (A)` → `out (B, S)`,
/// `out[b, s] = Σ_a v_a tanh(keys[b, s, a] + wq[b, a])`.
pub fn additive_scores_kernel(keys: &[f32], wq: &[f32], v: &[f32], out: &mut [f32]) {
    wide(
        #[inline(always)]
        || {
            let a = v.len();
            let s = out.len() / (wq.len() / a).max(1);
            let mut e = vec![0.0f32; a];
            for ((keys, wq), out) in keys.chunks_exact(s * a).zip(wq.chunks_exact(a)).zip(out.chunks_exact_mut(s)) {
                for (k, o) in keys.chunks_exact(a).zip(out.iter_mut()) {
                    e.iter_mut().zip(k).zip(wq).for_each(|((e, &k), &q)| *e = tanh_fast(k + q));
                    *o = dot(&e, v);
                }
            }
        },
    )
}

/// Backward of [`additive_scores`] from `g (B, S)` (the `tanh` recomputed): writes `dkeys
/// (B, S, A)` and adds into `dwq (B, A)` and `dv (A)`.
pub fn additive_scores_backward_kernel(
    (keys, wq, v): (&[f32], &[f32], &[f32]),
    g: &[f32],
    (dkeys, dwq, dv): (&mut [f32], &mut [f32], &mut [f32]),
) {
    wide(
        #[inline(always)]
        || {
            let a = v.len();
            let s = g.len() / (wq.len() / a).max(1);
            let rows = keys.chunks_exact(s * a).zip(wq.chunks_exact(a)).zip(g.chunks_exact(s));
            for (((keys, wq), g), (dkeys, dwq)) in rows.zip(dkeys.chunks_exact_mut(s * a).zip(dwq.chunks_exact_mut(a)))
            {
                for ((k, &g), dk) in keys.chunks_exact(a).zip(g).zip(dkeys.chunks_exact_mut(a)) {
                    let lanes =
                        k.iter().zip(wq.iter()).zip(v.iter()).zip(dk.iter_mut()).zip(dwq.iter_mut()).zip(dv.iter_mut());
                    for (((((&k, &q), &v), dk), dq), dv) in lanes {
                        let e = tanh_fast(k + q);
                        let de = g * v * (1.0 - e * e);
                        *dk = de;
                        *dq += de;
                        *dv += g * e;
                    }
                }
            }
        },
    )
}

/// Backends with the fused additive attention scores.
#[backend_extension(Flex, Autodiff)]
pub trait AdditiveScoresOps: Backend {
    /// Additive attention scores: `keys (B, S, A)`, `wq (B, A)`, `v (A)` → `(B, S)`.
    fn additive_scores(keys: FloatTensor<Self>, wq: FloatTensor<Self>, v: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// The scores' backward kernel an inner (non-autodiff) backend provides.
pub trait AdditiveScoresBackward: Backend {
    /// From `keys`, `wq`, `v` and `g (B, S)` → `[dkeys, dwq, dv]`.
    fn additive_scores_backward(inputs: [FloatTensor<Self>; 3], g: FloatTensor<Self>) -> [FloatTensor<Self>; 3];
}

impl AdditiveScoresOps for Flex {
    fn additive_scores(keys: FlexTensor, wq: FlexTensor, v: FlexTensor) -> FlexTensor {
        let [keys, wq, v] = [keys, wq, v].map(contiguous);
        let [b, s, _] = keys.shape().dims();
        let mut out = vec![0.0f32; b * s];
        additive_scores_kernel(f32s(&keys), f32s(&wq), f32s(&v), &mut out);
        flex_f32(out, [b, s])
    }
}

impl AdditiveScoresBackward for Flex {
    fn additive_scores_backward(inputs: [FlexTensor; 3], g: FlexTensor) -> [FlexTensor; 3] {
        let [keys, wq, v] = inputs.map(contiguous);
        let g = contiguous(g);
        let [b, s, a] = keys.shape().dims();
        let (mut dkeys, mut dwq, mut dv) = (vec![0.0f32; b * s * a], vec![0.0f32; b * a], vec![0.0f32; a]);
        additive_scores_backward_kernel((f32s(&keys), f32s(&wq), f32s(&v)), f32s(&g), (&mut dkeys, &mut dwq, &mut dv));
        [flex_f32(dkeys, [b, s, a]), flex_f32(dwq, [b, a]), flex_f32(dv, [a])]
    }
}

impl<B: Backend + AdditiveScoresOps + AdditiveScoresBackward, C: CheckpointStrategy> AdditiveScoresOps
    for Autodiff<B, C>
{
    fn additive_scores(keys: FloatTensor<Self>, wq: FloatTensor<Self>, v: FloatTensor<Self>) -> FloatTensor<Self> {
        record_on_inputs::<B, C, _, _, 3>(
            [keys, wq, v],
            |[keys, wq, v]| B::additive_scores(keys, wq, v),
            |inputs, g, _| B::additive_scores_backward(inputs, g),
        )
    }
}

/// Additive (Bahdanau) attention scores `e_{b,s} = vᵀ tanh(keys_{b,s} + wq_b)`: `keys (B, S, A)`
/// (the projected memory), `wq (B, A)` (the projected query), `v (A)` → `(B, S)`. On the CPU one
/// pass forward and one backward, instead of a broadcast sum, a `tanh` and a product each with
/// its own `(B, S, A)` buffers and gradients at every decoder step.
pub fn additive_scores(keys: Tensor<3>, wq: Tensor<2>, v: Tensor<1>) -> Tensor<2> {
    let [b, s, a] = keys.dims();
    if !is_flex(&keys.device()) {
        let e = (keys + wq.unsqueeze_dim::<3>(1)).tanh(); // (B, S, A)
        return e.reshape([b * s, a]).matmul(v.reshape([a, 1])).reshape([b, s]);
    }
    let out =
        <Dispatch as AdditiveScoresOps>::additive_scores(keys.into_dispatch(), wq.into_dispatch(), v.into_dispatch());
    Tensor::from_dispatch(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{grad_check, uniform};
    use burn::tensor::Device;

    #[test]
    fn fused_additive_scores_match_the_composed_ones_and_their_gradients() {
        let (b, s, a) = (3, 4, 5);
        let inputs = [uniform(b * s * a, -1.5, 1.5, 50), uniform(b * a, -1.0, 1.0, 51), uniform(a, -1.0, 1.0, 52)];
        let dev = Device::flex();
        let t = |v: &[f32]| Tensor::<1>::from_floats(v, &dev);
        let keys = t(&inputs[0]).reshape([b, s, a]);
        let wq = t(&inputs[1]).reshape([b, a]);
        let fused: Vec<f32> =
            additive_scores(keys.clone(), wq.clone(), t(&inputs[2])).into_data().try_to_vec().unwrap();
        let e = (keys + wq.unsqueeze_dim::<3>(1)).tanh().reshape([b * s, a]);
        let want: Vec<f32> = e.matmul(t(&inputs[2]).reshape([a, 1])).into_data().try_to_vec().unwrap();
        assert!(fused.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-5), "{fused:?} vs {want:?}");
        grad_check(&inputs, 1e-3, 1e-2, |x| {
            let [k, q, v]: [Tensor<1>; 3] = x.try_into().unwrap();
            additive_scores(k.reshape([b, s, a]), q.reshape([b, a]), v).reshape([b * s])
        });
    }
}
