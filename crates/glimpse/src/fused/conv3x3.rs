//! A 3×3 convolution with padding 1 and stride 1 ([`conv3x3`], the CNN's layers) as an im2col
//! and one matrix product per image, forward and backward, the batch split across threads;
//! burn-flex's convolution backward (a transposed convolution and tiled copies) led the CNN's
//! profile. Other convolutions and other devices take burn's own.

use super::autodiff::{Grad, record};
use super::matmul::{gemm_strided, per_thread};
use super::{contiguous, f32s, flex_f32, is_flex};
use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;

/// Sizes of a 3×3 convolution with padding 1 and stride 1 (the output is the input's size):
/// batch `b`, channels in `c` and out `o`, rows `h`, columns `w`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvDims {
    /// Batch.
    pub b: usize,
    /// Input channels.
    pub c: usize,
    /// Output channels.
    pub o: usize,
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
}

/// One image `x (C, H, W)` unrolled for a 3×3 kernel with padding 1 (im2col): `cols (9C, H·W)`,
/// row `9c + 3ky + kx` holding `x[c, y + ky − 1, x + kx − 1]` (0 outside the image) at column
/// `y·W + x`: the order of a weight `(O, C, 3, 3)` read as `(O, 9C)`.
fn im2col3x3(x: &[f32], (c, h, w): (usize, usize, usize), cols: &mut [f32]) {
    let hw = h * w;
    for ch in 0..c {
        let plane = &x[ch * hw..(ch + 1) * hw];
        for ky in 0..3 {
            for kx in 0..3 {
                let row = &mut cols[(ch * 9 + ky * 3 + kx) * hw..][..hw];
                for (y, out) in row.chunks_exact_mut(w).enumerate() {
                    // The source row is `y + ky − 1`; outside the image, the padding's zeros.
                    let Some(sy) = (y + ky).checked_sub(1).filter(|&r| r < h) else {
                        out.fill(0.0);
                        continue;
                    };
                    let src = &plane[sy * w..][..w];
                    match kx {
                        0 => {
                            out[0] = 0.0;
                            out[1..].copy_from_slice(&src[..w - 1]);
                        }
                        1 => out.copy_from_slice(src),
                        _ => {
                            out[..w - 1].copy_from_slice(&src[1..]);
                            out[w - 1] = 0.0;
                        }
                    }
                }
            }
        }
    }
}

/// The transpose of [`im2col3x3`]: adds each column entry of `cols (9C, H·W)` back onto the
/// pixel of `dx (C, H, W)` it was read from.
fn col2im3x3_add(cols: &[f32], (c, h, w): (usize, usize, usize), dx: &mut [f32]) {
    let hw = h * w;
    for ch in 0..c {
        let plane = &mut dx[ch * hw..(ch + 1) * hw];
        for ky in 0..3 {
            for kx in 0..3 {
                let row = &cols[(ch * 9 + ky * 3 + kx) * hw..][..hw];
                for (y, src) in row.chunks_exact(w).enumerate() {
                    let Some(sy) = (y + ky).checked_sub(1).filter(|&r| r < h) else { continue };
                    let dst = &mut plane[sy * w..][..w];
                    let (d, s) = match kx {
                        0 => (&mut dst[..w - 1], &src[1..]),
                        1 => (&mut dst[..], src),
                        _ => (&mut dst[1..], &src[..w - 1]),
                    };
                    d.iter_mut().zip(s).for_each(|(d, s)| *d += s);
                }
            }
        }
    }
}

/// A 3×3 convolution with padding 1: `x (B, C, H, W)`, `weight (O, C, 3, 3)`, `bias (O)` →
/// `out (B, O, H, W)`; per image one product `weight (O, 9C) · im2col(x) (9C, H·W)` started
/// from the bias, the batch split across the thread pool.
pub fn conv3x3_kernel(x: &[f32], weight: &[f32], bias: &[f32], d: ConvDims, out: &mut [f32]) {
    use rayon::prelude::*;
    let (hw, k) = (d.h * d.w, 9 * d.c);
    if d.b == 0 || hw == 0 {
        return;
    }
    let per = per_thread(d.b, 1);
    out.par_chunks_mut(per * d.o * hw).zip(x.par_chunks(per * d.c * hw)).for_each(|(out, x)| {
        let mut cols = vec![0.0f32; k * hw];
        for (ob, xb) in out.chunks_exact_mut(d.o * hw).zip(x.chunks_exact(d.c * hw)) {
            im2col3x3(xb, (d.c, d.h, d.w), &mut cols);
            for (row, &bv) in ob.chunks_exact_mut(hw).zip(bias) {
                row.fill(bv);
            }
            gemm_strided((d.o, hw, k), ob, hw, true, (weight, k, 1), (&cols, hw, 1), false);
        }
    });
}

/// Backward of [`conv3x3_kernel`] for the upstream gradient `g (B, O, H, W)`: `[dx, dweight,
/// dbias]`, each only where `need` says. Per image `dweight += g_b · im2col(x_b)ᵀ`, `dbias +=
/// Σ_pixels g_b`, `dx_b = col2im(weightᵀ · g_b)`; each thread sums its own images' weight
/// gradients, then the threads' sums are added.
pub fn conv3x3_backward_kernel(
    x: &[f32],
    weight: &[f32],
    g: &[f32],
    d: ConvDims,
    need: [bool; 3],
) -> [Option<Vec<f32>>; 3] {
    use rayon::prelude::*;
    let (hw, k) = (d.h * d.w, 9 * d.c);
    let per = per_thread(d.b, 1);
    let chunks = if hw == 0 { 0 } else { d.b.div_ceil(per) };
    // Per chunk of images: `[dx of its images, its dW, its db]`.
    let parts: Vec<[Vec<f32>; 3]> = (0..chunks)
        .into_par_iter()
        .map(|ci| {
            let images = ci * per..((ci + 1) * per).min(d.b);
            let mut dx = if need[0] { vec![0.0f32; images.len() * d.c * hw] } else { vec![] };
            let mut dw = if need[1] { vec![0.0f32; d.o * k] } else { vec![] };
            let mut db = if need[2] { vec![0.0f32; d.o] } else { vec![] };
            let mut cols = vec![0.0f32; k * hw];
            for (j, i) in images.enumerate() {
                let gb = &g[i * d.o * hw..][..d.o * hw];
                if need[1] {
                    im2col3x3(&x[i * d.c * hw..][..d.c * hw], (d.c, d.h, d.w), &mut cols);
                    // dW (O, 9C) += g_b (O, HW) · colsᵀ (HW, 9C).
                    gemm_strided((d.o, k, hw), &mut dw, k, true, (gb, hw, 1), (&cols, 1, hw), false);
                }
                if need[2] {
                    db.iter_mut().zip(gb.chunks_exact(hw)).for_each(|(b, row)| *b += row.iter().sum::<f32>());
                }
                if need[0] {
                    // dcols (9C, HW) = Wᵀ (9C, O) · g_b (O, HW), then back onto the pixels.
                    gemm_strided((k, hw, d.o), &mut cols, hw, false, (weight, 1, k), (gb, hw, 1), false);
                    col2im3x3_add(&cols, (d.c, d.h, d.w), &mut dx[j * d.c * hw..][..d.c * hw]);
                }
            }
            [dx, dw, db]
        })
        .collect();
    let sum = |i: usize, len: usize| {
        let mut total = vec![0.0f32; len];
        for p in &parts {
            total.iter_mut().zip(&p[i]).for_each(|(t, v)| *t += v);
        }
        total
    };
    let dx = need[0].then(|| {
        let mut dx = Vec::with_capacity(d.b * d.c * hw);
        parts.iter().for_each(|p| dx.extend_from_slice(&p[0]));
        dx
    });
    [dx, need[1].then(|| sum(1, d.o * k)), need[2].then(|| sum(2, d.o))]
}

/// Backends with the fused 3×3 convolution.
#[backend_extension(Flex, Autodiff)]
pub trait Conv3x3Ops: Backend {
    /// A 3×3 convolution with padding 1 and stride 1: `x (B, C, H, W)`, `weight (O, C, 3, 3)`,
    /// `bias (O)` → `(B, O, H, W)`.
    fn conv3x3(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// The convolution's backward kernel an inner (non-autodiff) backend provides.
pub trait Conv3x3Backward: Backend {
    /// From `x`, `weight` and `g (B, O, H, W)` → `[dx, dweight, dbias]`, each only where `need`
    /// says.
    fn conv3x3_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        g: FloatTensor<Self>,
        need: [bool; 3],
    ) -> [Option<FloatTensor<Self>>; 3];
}

impl Conv3x3Ops for Flex {
    fn conv3x3(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        let [x, weight, bias] = [x, weight, bias].map(contiguous);
        let d = conv_dims(&x, &weight);
        let mut out = vec![0.0f32; d.b * d.o * d.h * d.w];
        conv3x3_kernel(f32s(&x), f32s(&weight), f32s(&bias), d, &mut out);
        flex_f32(out, [d.b, d.o, d.h, d.w])
    }
}

/// The sizes of a 3×3 convolution of `x (B, C, H, W)` by `weight (O, C, 3, 3)`.
fn conv_dims(x: &FlexTensor, weight: &FlexTensor) -> ConvDims {
    let [b, c, h, w] = x.shape().dims();
    let [o, ci, kh, kw] = weight.shape().dims();
    assert_eq!((ci, kh, kw), (c, 3, 3), "conv3x3: weight (O, C, 3, 3) for input channels C");
    ConvDims { b, c, o, h, w }
}

impl Conv3x3Backward for Flex {
    fn conv3x3_backward(x: FlexTensor, weight: FlexTensor, g: FlexTensor, need: [bool; 3]) -> [Option<FlexTensor>; 3] {
        let [x, weight, g] = [x, weight, g].map(contiguous);
        let d = conv_dims(&x, &weight);
        let [dx, dw, db] = conv3x3_backward_kernel(f32s(&x), f32s(&weight), f32s(&g), d, need);
        [
            dx.map(|v| flex_f32(v, [d.b, d.c, d.h, d.w])),
            dw.map(|v| flex_f32(v, [d.o, d.c, 3, 3])),
            db.map(|v| flex_f32(v, [d.o])),
        ]
    }
}

impl<B: Backend + Conv3x3Ops + Conv3x3Backward, C: CheckpointStrategy> Conv3x3Ops for Autodiff<B, C> {
    fn conv3x3(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        let parents = [x.node(), weight.node(), bias.node()];
        let [x, weight, bias] = [x, weight, bias].map(|t| t.into_primitive());
        let grad: Grad<B, _, _, 3> = |(x, weight), g, need| B::conv3x3_backward(x, weight, g, need);
        record::<B, C, _, _, _, 3>(parents, grad, |tracked| match tracked {
            true => (B::conv3x3(x.clone(), weight.clone(), bias), Some((x, weight))),
            false => (B::conv3x3(x, weight, bias), None),
        })
    }
}

/// `conv.forward(x)` for a 3×3 convolution with padding 1, stride 1, no dilation, one group
/// and a bias (the CNN's layers), `x (B, C, H, W)` → `(B, O, H, W)`. On the CPU one op each way:
/// per image an im2col and one matrix product, the batch split across threads (burn-flex's
/// convolution backward, a transposed convolution and tiled copies, led the CNN's profile).
/// Any other convolution, or another device, takes `conv.forward`.
pub fn conv3x3(x: Tensor<4>, conv: &burn::nn::conv::Conv2d) -> Tensor<4> {
    use burn::nn::PaddingConfig2d;
    let plain = conv.kernel_size == [3, 3]
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && conv.padding == PaddingConfig2d::Explicit(1, 1, 1, 1);
    match &conv.bias {
        Some(b) if plain && is_flex(&x.device()) => Tensor::from_dispatch(<Dispatch as Conv3x3Ops>::conv3x3(
            x.into_dispatch(),
            conv.weight.val().into_dispatch(),
            b.val().into_dispatch(),
        )),
        _ => conv.forward(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{grad_check, uniform};
    use burn::tensor::Device;

    /// A 3×3, padding-1 convolution layer holding the given tensors as they are.
    fn conv_layer(weight: Tensor<4>, bias: Tensor<1>) -> burn::nn::conv::Conv2d {
        let [o, c, _, _] = weight.dims();
        let mut conv = burn::nn::conv::Conv2dConfig::new([c, o], [3, 3])
            .with_padding(burn::nn::PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&weight.device());
        conv.weight = burn::module::Param::initialized(burn::module::ParamId::new(), weight);
        conv.bias = Some(burn::module::Param::initialized(burn::module::ParamId::new(), bias));
        conv
    }

    /// The fused convolution against burn's, forward and every gradient, on shapes with edges
    /// (one row, one column, rectangular), then against finite differences.
    #[test]
    fn fused_conv3x3_matches_burns_convolution_forward_and_backward() {
        for (k, &(b, c, o, h, w)) in
            [(3, 2, 4, 5, 6), (2, 3, 2, 1, 4), (1, 1, 3, 4, 1), (5, 4, 5, 7, 7)].iter().enumerate()
        {
            let seed = 90 + 4 * k as u64;
            let dev = Device::flex().autodiff();
            let t = |len, seed| Tensor::<1>::from_floats(uniform(len, -1.0, 1.0, seed).as_slice(), &dev).require_grad();
            let (x, wt, bias) = (t(b * c * h * w, seed), t(o * c * 9, seed + 1), t(o, seed + 2));
            let r = Tensor::<1>::from_floats(uniform(b * o * h * w, -1.0, 1.0, seed + 3).as_slice(), &dev);
            let run = |fused: bool| {
                let conv = conv_layer(wt.clone().reshape([o, c, 3, 3]), bias.clone());
                let xi = x.clone().reshape([b, c, h, w]);
                let out = if fused { conv3x3(xi, &conv) } else { conv.forward(xi) }.reshape([b * o * h * w]);
                let grads = (out.clone() * r.clone()).sum().backward();
                let g = |v: &Tensor<1>| v.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
                (out.into_data().try_to_vec::<f32>().unwrap(), [g(&x), g(&wt), g(&bias)])
            };
            let ((out, grads), (want, want_grads)) = (run(true), run(false));
            let close = |a: &[f32], b: &[f32]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4);
            assert!(close(&out, &want), "shape {k}: {out:?} vs {want:?}");
            for (n, (g, h)) in grads.iter().zip(&want_grads).enumerate() {
                assert!(close(g, h), "shape {k}, gradient {n}: {g:?} vs {h:?}");
            }
        }
        let (b, c, o, h, w) = (2, 2, 3, 4, 5);
        let inputs =
            [uniform(b * c * h * w, -1.0, 1.0, 120), uniform(o * c * 9, -1.0, 1.0, 121), uniform(o, -1.0, 1.0, 122)];
        grad_check(&inputs, 1e-2, 1e-2, |v| {
            let [x, wt, bias]: [Tensor<1>; 3] = v.try_into().unwrap();
            conv3x3(x.reshape([b, c, h, w]), &conv_layer(wt.reshape([o, c, 3, 3]), bias)).reshape([b * o * h * w])
        });
    }

    /// An untracked input (the images) gets no gradient, the weights still get theirs; and a
    /// convolution the fused op does not cover (stride 2) takes burn's own.
    #[test]
    fn fused_conv3x3_skips_the_input_gradient_and_leaves_other_convolutions_to_burn() {
        let (b, c, o, h, w) = (16, 3, 8, 12, 10);
        let dev = Device::flex().autodiff();
        let t = |len, seed| Tensor::<1>::from_floats(uniform(len, -1.0, 1.0, seed).as_slice(), &dev);
        let x = t(b * c * h * w, 130).reshape([b, c, h, w]);
        let conv = conv_layer(t(o * c * 9, 131).reshape([o, c, 3, 3]).require_grad(), t(o, 132).require_grad());
        let loss = |fused: bool| {
            let y = if fused { conv3x3(x.clone(), &conv) } else { conv.forward(x.clone()) };
            (y.clone() * y).sum()
        };
        let (gf, gc) = (loss(true).backward(), loss(false).backward());
        assert!(x.grad(&gf).is_none());
        let (a, e) = (conv.weight.val().grad(&gf).unwrap(), conv.weight.val().grad(&gc).unwrap());
        let (a, e) = (a.into_data().try_to_vec::<f32>().unwrap(), e.into_data().try_to_vec::<f32>().unwrap());
        let scale = e.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        assert!(a.iter().zip(&e).all(|(p, q)| (p - q).abs() <= 1e-4 * scale));
        let strided = burn::nn::conv::Conv2dConfig::new([c, o], [3, 3])
            .with_stride([2, 2])
            .with_padding(burn::nn::PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&dev);
        assert_eq!(conv3x3(x.clone(), &strided).dims(), [b, o, h / 2, w / 2]);
    }
}
