//! Fused CPU kernels for measured hot paths, added to burn's `flex` backend as a backend
//! extension (with their own backward pass under autodiff).
//!
//! [`lstm_gates`]: an LSTM cell's update from its gate pre-activations, `z = [i, f, u, o]`
//! `(B, 4H)` and the cell `c (B, H)`, to `(h', c')`, in one pass over memory instead of the
//! dozen tensor operations (four slices, sigmoids, tanh, products, sums) and their autodiff
//! nodes. Profiles of the LSTM models showed libm's scalar `expf` and burn's per-element
//! activation loop among the top entries (`glimpse bench seq2seq`, `bench handwriting`); here
//! the exponential is a branch-free polynomial the compiler vectorises.
//!
//! [`log_softmax_pick`]: `log softmax(x)_t` of one class `t` per row, the cross-entropy of a
//! vocabulary-sized output (`(B·T, V)` logits of the translation models), in one pass forward
//! and one backward instead of the max / subtract / exp / sum / log / gather chain, each a pass
//! over the whole `(B·T, V)` tensor with its own gradient buffer.
//!
//! Other devices (wgpu, cuda) take the same math composed of ordinary tensor operations.

use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, DispatchDevice, Flex, backend_extension};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Shape, Tensor, TensorData};

/// `e^x` for `x` in f32 range, to about 2 ulp, without branches (vectorises): `2^n · e^r` with
/// `n = round(x / ln 2)`, `r = x − n ln 2` (ln 2 split in two for exactness) and a degree-6
/// polynomial for `e^r` on `|r| ≤ ln 2 / 2`.
#[inline(always)]
pub fn exp_fast(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest by the 1.5·2^23 trick (no rounding instruction needed).
    let n = (x * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0 + r * (0.5 + r * (0.166_666_67 + r * (0.041_666_41 + r * (0.008_333_452 + r * 0.001_393_989_9)))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[inline(always)]
fn sigmoid_fast(x: f32) -> f32 {
    1.0 / (1.0 + exp_fast(-x))
}

#[inline(always)]
fn tanh_fast(x: f32) -> f32 {
    2.0 * sigmoid_fast(2.0 * x) - 1.0
}

/// The forward kernel on slices: `z (B, 4H)`, `c (B, H)` → `out (B, 2H)` = `[h', c']`.
pub fn lstm_gates_kernel(z: &[f32], c: &[f32], out: &mut [f32], h: usize) {
    for ((z, c), out) in z.chunks_exact(4 * h).zip(c.chunks_exact(h)).zip(out.chunks_exact_mut(2 * h)) {
        let (zi, rest) = z.split_at(h);
        let (zf, rest) = rest.split_at(h);
        let (zu, zo) = rest.split_at(h);
        let (h_out, c_out) = out.split_at_mut(h);
        for j in 0..h {
            let (i, f, u, o) = (sigmoid_fast(zi[j]), sigmoid_fast(zf[j]), tanh_fast(zu[j]), sigmoid_fast(zo[j]));
            let c2 = f * c[j] + i * u;
            c_out[j] = c2;
            h_out[j] = o * tanh_fast(c2);
        }
    }
}

/// The backward kernel: from `z`, `c` and the gradient `g (B, 2H)` of `[h', c']`, the
/// gradients `out (B, 5H)` = `[dz (4H), dc (H)]`.
pub fn lstm_gates_backward_kernel(z: &[f32], c: &[f32], g: &[f32], out: &mut [f32], h: usize) {
    let rows = z.chunks_exact(4 * h).zip(c.chunks_exact(h)).zip(g.chunks_exact(2 * h));
    for (((z, c), g), out) in rows.zip(out.chunks_exact_mut(5 * h)) {
        let (zi, rest) = z.split_at(h);
        let (zf, rest) = rest.split_at(h);
        let (zu, zo) = rest.split_at(h);
        let (dh, dc2) = g.split_at(h);
        let (dz, dc) = out.split_at_mut(4 * h);
        let (dzi, rest) = dz.split_at_mut(h);
        let (dzf, rest) = rest.split_at_mut(h);
        let (dzu, dzo) = rest.split_at_mut(h);
        for j in 0..h {
            let (i, f, u, o) = (sigmoid_fast(zi[j]), sigmoid_fast(zf[j]), tanh_fast(zu[j]), sigmoid_fast(zo[j]));
            let c2 = f * c[j] + i * u;
            let tc = tanh_fast(c2);
            // dL/dc' through h' = o tanh(c') and directly.
            let dct = dc2[j] + dh[j] * o * (1.0 - tc * tc);
            dzo[j] = dh[j] * tc * o * (1.0 - o);
            dzi[j] = dct * u * i * (1.0 - i);
            dzu[j] = dct * i * (1.0 - u * u);
            dzf[j] = dct * c[j] * f * (1.0 - f);
            dc[j] = dct * f;
        }
    }
}

/// Row-wise `log Σ_v exp(x_v)`, stable (the row's maximum taken out first).
fn log_sum_exp(row: &[f32]) -> f32 {
    let m = row.iter().fold(f32::MIN, |a, &v| a.max(v));
    m + row.iter().map(|&v| exp_fast(v - m)).sum::<f32>().ln()
}

/// Forward: `x (N, V)`, class indices `t (N)` (as floats) → `out (N)` = `x_t − log Σ exp x`.
pub fn log_softmax_pick_kernel(x: &[f32], t: &[f32], out: &mut [f32], v: usize) {
    for ((row, &t), out) in x.chunks_exact(v).zip(t).zip(out.iter_mut()) {
        *out = row[t as usize] - log_sum_exp(row);
    }
}

/// Backward: `dx = g · (onehot(t) − softmax(x))` row by row.
pub fn log_softmax_pick_backward_kernel(x: &[f32], t: &[f32], g: &[f32], dx: &mut [f32], v: usize) {
    for (((row, &t), &g), d) in x.chunks_exact(v).zip(t).zip(g).zip(dx.chunks_exact_mut(v)) {
        let lse = log_sum_exp(row);
        for (d, &x) in d.iter_mut().zip(row) {
            *d = -g * exp_fast(x - lse);
        }
        d[t as usize] += g;
    }
}

/// Backends with the fused kernels.
#[backend_extension(Flex, Autodiff)]
pub trait FusedOps: Backend {
    /// `z (B, 4H)`, `c (B, H)` → `[h', c'] (B, 2H)`.
    fn lstm_gates(z: FloatTensor<Self>, c: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `x (N, V)`, `t (N)` class indices as floats (not differentiated) → `(N)`.
    fn log_softmax_pick(x: FloatTensor<Self>, t: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// The backward kernels an inner (non-autodiff) backend provides.
pub trait FusedBackward: Backend {
    /// `z (B, 4H)`, `c (B, H)`, `g (B, 2H)` → `[dz, dc] (B, 5H)`.
    fn lstm_gates_backward(z: FloatTensor<Self>, c: FloatTensor<Self>, g: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `x (N, V)`, `t (N)`, `g (N)` → `dx (N, V)`.
    fn log_softmax_pick_backward(x: FloatTensor<Self>, t: FloatTensor<Self>, g: FloatTensor<Self>)
    -> FloatTensor<Self>;
}

fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() { t } else { t.to_contiguous() }
}

fn flex_f32(data: Vec<f32>, shape: [usize; 2]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, Shape::new(shape)))
}

impl FusedOps for Flex {
    fn lstm_gates(z: FlexTensor, c: FlexTensor) -> FlexTensor {
        let (z, c) = (contiguous(z), contiguous(c));
        let [b, h4] = z.shape().dims();
        let h = h4 / 4;
        let mut out = vec![0.0f32; b * 2 * h];
        lstm_gates_kernel(z.as_slice().expect("f32"), c.as_slice().expect("f32"), &mut out, h);
        flex_f32(out, [b, 2 * h])
    }

    fn log_softmax_pick(x: FlexTensor, t: FlexTensor) -> FlexTensor {
        let (x, t) = (contiguous(x), contiguous(t));
        let [n, v] = x.shape().dims();
        let mut out = vec![0.0f32; n];
        log_softmax_pick_kernel(x.as_slice().expect("f32"), t.as_slice().expect("f32"), &mut out, v);
        FlexTensor::from_data(TensorData::new(out, Shape::new([n])))
    }
}

impl FusedBackward for Flex {
    fn log_softmax_pick_backward(x: FlexTensor, t: FlexTensor, g: FlexTensor) -> FlexTensor {
        let (x, t, g) = (contiguous(x), contiguous(t), contiguous(g));
        let [n, v] = x.shape().dims();
        let mut dx = vec![0.0f32; n * v];
        log_softmax_pick_backward_kernel(
            x.as_slice().expect("f32"),
            t.as_slice().expect("f32"),
            g.as_slice().expect("f32"),
            &mut dx,
            v,
        );
        flex_f32(dx, [n, v])
    }

    fn lstm_gates_backward(z: FlexTensor, c: FlexTensor, g: FlexTensor) -> FlexTensor {
        let (z, c, g) = (contiguous(z), contiguous(c), contiguous(g));
        let [b, h4] = z.shape().dims();
        let h = h4 / 4;
        let mut out = vec![0.0f32; b * 5 * h];
        lstm_gates_backward_kernel(
            z.as_slice().expect("f32"),
            c.as_slice().expect("f32"),
            g.as_slice().expect("f32"),
            &mut out,
            h,
        );
        flex_f32(out, [b, 5 * h])
    }
}

impl<B: Backend + FusedOps + FusedBackward, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn lstm_gates(z: FloatTensor<Self>, c: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Gates;

        impl<B: Backend + FusedBackward> Backward<B, 2> for Gates {
            type State = (B::FloatTensorPrimitive, B::FloatTensorPrimitive);

            fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [node_z, node_c] = ops.parents;
                let g = grads.consume::<B>(&ops.node);
                let (z, c) = ops.state;
                let [b, h4] = z.shape().dims();
                let h = h4 / 4;
                let both = B::lstm_gates_backward(z, c, g); // (B, 5H)
                if let Some(node) = node_z {
                    grads.register::<B>(node.id, B::float_slice(both.clone(), &[(0..b).into(), (0..4 * h).into()]));
                }
                if let Some(node) = node_c {
                    grads.register::<B>(node.id, B::float_slice(both, &[(0..b).into(), (4 * h..5 * h).into()]));
                }
            }
        }

        match Gates.prepare::<C>([z.node(), c.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (zp, cp) = (z.into_primitive(), c.into_primitive());
                let out = B::lstm_gates(zp.clone(), cp.clone());
                prep.finish((zp, cp), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::lstm_gates(z.into_primitive(), c.into_primitive())),
        }
    }

    fn log_softmax_pick(x: FloatTensor<Self>, t: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Pick;

        impl<B: Backend + FusedBackward> Backward<B, 1> for Pick {
            type State = (B::FloatTensorPrimitive, B::FloatTensorPrimitive);

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [node_x] = ops.parents;
                let g = grads.consume::<B>(&ops.node);
                let (x, t) = ops.state;
                if let Some(node) = node_x {
                    grads.register::<B>(node.id, B::log_softmax_pick_backward(x, t, g));
                }
            }
        }

        let t = t.into_primitive();
        match Pick.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let xp = x.into_primitive();
                let out = B::log_softmax_pick(xp.clone(), t.clone());
                prep.finish((xp, t), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::log_softmax_pick(x.into_primitive(), t)),
        }
    }
}

/// Whether `device` (or the device under its autodiff) is the `flex` CPU backend.
fn is_flex(device: &burn::tensor::Device) -> bool {
    matches!(device.clone().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// The LSTM update `(h', c')` from pre-activations `z = [i, f, u, o] (B, 4H)` and `c (B, H)`:
/// `c' = σ(f) c + σ(i) tanh(u)`, `h' = σ(o) tanh(c')`; fused on the CPU.
pub fn lstm_gates(z: Tensor<2>, c: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let n = c.dims()[1];
    if !is_flex(&z.device()) {
        let i = sigmoid(z.clone().narrow(1, 0, n));
        let f = sigmoid(z.clone().narrow(1, n, n));
        let u = crate::ops::tanh(z.clone().narrow(1, 2 * n, n));
        let o = sigmoid(z.narrow(1, 3 * n, n));
        let c = f * c + i * u;
        return (o * crate::ops::tanh(c.clone()), c);
    }
    let out = Tensor::<2>::from_dispatch(<Dispatch as FusedOps>::lstm_gates(z.into_dispatch(), c.into_dispatch()));
    (out.clone().narrow(1, 0, n), out.narrow(1, n, n))
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
    Tensor::<1>::from_dispatch(<Dispatch as FusedOps>::log_softmax_pick(x.into_dispatch(), t.into_dispatch()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{grad_check, uniform};
    use burn::tensor::Device;

    #[test]
    fn exp_fast_is_accurate_over_the_range() {
        let mut worst = 0.0f64;
        for k in -8700..8800 {
            let x = k as f32 * 0.01;
            let (a, b) = (exp_fast(x) as f64, (x as f64).exp());
            worst = worst.max(((a - b) / b).abs());
        }
        assert!(worst < 1e-6, "relative error {worst}");
        assert!(exp_fast(-200.0) >= 0.0 && exp_fast(200.0).is_finite());
    }

    #[test]
    fn fused_log_softmax_pick_matches_the_composed_one_and_its_gradient() {
        let dev = Device::flex();
        let (n, v) = (4, 7);
        let x = Tensor::<2>::from_data(TensorData::new(uniform(n * v, -20.0, 20.0, 5), [n, v]), &dev);
        let classes = Tensor::<1, burn::tensor::Int>::from_data(TensorData::new(vec![0i64, 6, 3, 3], [n]), &dev);
        let fused: Vec<f32> = log_softmax_pick(x.clone(), classes.clone()).into_data().try_to_vec().unwrap();
        let logp = burn::tensor::activation::log_softmax(x, 1).gather(1, classes.clone().reshape([n, 1]));
        let want: Vec<f32> = logp.into_data().try_to_vec().unwrap();
        assert!(fused.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-4 * b.abs().max(1.0)), "{fused:?} vs {want:?}");
        grad_check(&[uniform(n * v, -3.0, 3.0, 6)], 1e-3, 1e-2, |x| {
            let [x]: [Tensor<1>; 1] = x.try_into().unwrap();
            let c = classes.clone().to_device(&x.device());
            log_softmax_pick(x.reshape([n, v]), c)
        });
    }

    #[test]
    fn fused_gates_match_the_composed_ones_and_their_gradients() {
        let dev = Device::flex();
        let (b, h) = (3, 5);
        let z = Tensor::<2>::from_data(TensorData::new(uniform(b * 4 * h, -3.0, 3.0, 1), [b, 4 * h]), &dev);
        let c = Tensor::<2>::from_data(TensorData::new(uniform(b * h, -2.0, 2.0, 2), [b, h]), &dev);
        let (hf, cf) = lstm_gates(z.clone(), c.clone());
        let n = h;
        let i = sigmoid(z.clone().narrow(1, 0, n));
        let f = sigmoid(z.clone().narrow(1, n, n));
        let u = z.clone().narrow(1, 2 * n, n).tanh();
        let o = sigmoid(z.narrow(1, 3 * n, n));
        let c2 = f * c + i * u;
        let h2 = o * c2.clone().tanh();
        for (a, w) in [(hf, h2), (cf, c2)] {
            let (a, w): (Vec<f32>, Vec<f32>) =
                (a.into_data().try_to_vec().unwrap(), w.into_data().try_to_vec().unwrap());
            assert!(a.iter().zip(&w).all(|(x, y)| (x - y).abs() < 1e-5), "{a:?} vs {w:?}");
        }
        let inputs = [uniform(b * 4 * h, -2.0, 2.0, 3), uniform(b * h, -1.5, 1.5, 4)];
        grad_check(&inputs, 1e-3, 1e-2, |x| {
            let [z, c]: [Tensor<1>; 2] = x.try_into().unwrap();
            let (h2, c2) = lstm_gates(z.reshape([b, 4 * h]), c.reshape([b, h]));
            // Both outputs, and h' alone (a gradient for c' that is absent).
            Tensor::cat(vec![h2.clone().reshape([b * h]), c2.reshape([b * h]), (h2 * 2.0).reshape([b * h])], 0)
        });
    }
}
