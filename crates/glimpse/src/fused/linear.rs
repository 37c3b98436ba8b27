//! A linear layer `x W + b` ([`linear`]), and one reading the concatenation of two inputs without
//! building it ([`linear2`]): the bias is the product's starting value, and the gradients are
//! written straight into new buffers, only those that are needed. Elsewhere, the layer's own
//! `forward`.

use super::autodiff::{Grad, record};
use super::matmul::{gemm_fresh, gemm_raw, gemm_strided};
use super::{contiguous, f32s, flex_f32, is_flex};
use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{Shape, Tensor, TensorData};

/// Whether a product of `m·n·k` multiply-adds is worth splitting across the thread pool.
fn worth_threads(m: usize, n: usize, k: usize) -> bool {
    m * n * k >= 192 * 192 * 192 && rayon::current_num_threads() > 1
}

/// Forward of a linear layer whose input comes in parts (a concatenation never built):
/// `out (N, O) = b + Σ_p x_p W_p`, part `p` `(N, I_p)` in row-major order, `W_p` the `I_p` rows
/// of `w (ΣI_p, O)` it reads. `out` arrives holding the bias in every row.
pub fn linear_kernel(parts: &[(&[f32], usize)], w: &[f32], n: usize, o: usize, out: &mut [f32]) {
    let mut row = 0;
    for &(x, i) in parts {
        let big = worth_threads(n, o, i);
        gemm_strided((n, o, i), out, o, true, (x, i, 1), (&w[row * o..], o, 1), big);
        row += i;
    }
}

/// Backward of [`linear_kernel`] for the upstream gradient `g (N, O)`: for each part that
/// `need`s it `dx_p = g W_pᵀ`, then (if needed, the last two flags) `dW = [x_pᵀ g]_p` and
/// `db = Σ_rows g`.
pub fn linear_backward_kernel(
    parts: &[(&[f32], usize)],
    w: &[f32],
    g: &[f32],
    (n, o): (usize, usize),
    need: &[bool],
) -> Vec<Option<Vec<f32>>> {
    let inputs: usize = parts.iter().map(|p| p.1).sum();
    let mut grads = Vec::with_capacity(parts.len() + 2);
    let mut row = 0;
    for (&(_, i), &needed) in parts.iter().zip(need) {
        // dx_p (N, I_p) = g (N, O) · W_pᵀ (O, I_p): W_p read transposed in place.
        let big = worth_threads(n, i, o);
        grads.push(needed.then(|| gemm_fresh((n, i, o), (g, o, 1), (&w[row * o..], 1, o), big)));
        row += i;
    }
    let dw = need[parts.len()].then(|| {
        if n == 0 {
            return vec![0.0; inputs * o];
        }
        let mut dw: Vec<f32> = Vec::with_capacity(inputs * o);
        let mut row = 0;
        for &(x, i) in parts {
            // dW_p (I_p, O) = x_pᵀ (I_p, N) · g (N, O), written into its rows of dW.
            // SAFETY: rows row..row + I_p of the (ΣI_p, O) capacity; with N > 0 the product
            // writes every element of them, and the parts' rows cover all ΣI_p rows.
            unsafe {
                gemm_raw(
                    (i, o, n),
                    dw.as_mut_ptr().add(row * o),
                    o,
                    false,
                    (x, 1, i),
                    (g, o, 1),
                    worth_threads(i, o, n),
                )
            };
            row += i;
        }
        // SAFETY: every element was written above.
        unsafe { dw.set_len(inputs * o) };
        dw
    });
    grads.push(dw);
    grads.push(need[parts.len() + 1].then(|| {
        let mut db = vec![0.0f32; o];
        for r in g.chunks_exact(o) {
            db.iter_mut().zip(r).for_each(|(d, x)| *d += x);
        }
        db
    }));
    grads
}

/// Backends with the fused linear layers.
#[backend_extension(Flex, Autodiff)]
pub trait LinearOps: Backend {
    /// A linear layer: `x (N, I)`, `w (I, O)`, `b (O)` → `x w + b (N, O)`.
    fn linear(x: FloatTensor<Self>, w: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;
    /// A linear layer reading `[x1, x2]` without building it: `x1 (N, I1)`, `x2 (N, I2)`,
    /// `w (I1 + I2, O)`, `b (O)` → `(N, O)`.
    fn linear2(
        x1: FloatTensor<Self>,
        x2: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// The linear layers' kernels an inner (non-autodiff) backend provides.
pub trait LinearBackward: Backend {
    /// [`LinearOps::linear`] over inputs in parts `xs` (`(N, I_p)` each, `w` their stacked rows).
    fn linear_forward(xs: Vec<FloatTensor<Self>>, w: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;
    /// From the parts, `w` and `g (N, O)` → `[dx_p…, dw, db]`, each only where `need` says.
    fn linear_backward(
        xs: Vec<FloatTensor<Self>>,
        w: FloatTensor<Self>,
        g: FloatTensor<Self>,
        need: &[bool],
    ) -> Vec<Option<FloatTensor<Self>>>;
}

impl LinearOps for Flex {
    fn linear(x: FlexTensor, w: FlexTensor, b: FlexTensor) -> FlexTensor {
        Self::linear_forward(vec![x], w, b)
    }

    fn linear2(x1: FlexTensor, x2: FlexTensor, w: FlexTensor, b: FlexTensor) -> FlexTensor {
        Self::linear_forward(vec![x1, x2], w, b)
    }
}

/// The `(data, width)` of each part of a linear layer's input.
fn linear_parts(xs: &[FlexTensor]) -> (Vec<(&[f32], usize)>, usize) {
    let n = xs[0].shape().dims::<2>()[0];
    let parts = xs
        .iter()
        .map(|x| {
            let [rows, i] = x.shape().dims();
            assert_eq!(rows, n, "linear: input parts with different row counts");
            (f32s(x), i)
        })
        .collect();
    (parts, n)
}

impl LinearBackward for Flex {
    fn linear_forward(xs: Vec<FlexTensor>, w: FlexTensor, b: FlexTensor) -> FlexTensor {
        let xs: Vec<FlexTensor> = xs.into_iter().map(contiguous).collect();
        let (w, b) = (contiguous(w), contiguous(b));
        let [inputs, o] = w.shape().dims();
        let (parts, n) = linear_parts(&xs);
        assert_eq!(parts.iter().map(|p| p.1).sum::<usize>(), inputs, "linear: input width ≠ weight rows");
        let mut out = Vec::with_capacity(n * o);
        for _ in 0..n {
            out.extend_from_slice(f32s(&b));
        }
        linear_kernel(&parts, f32s(&w), n, o, &mut out);
        flex_f32(out, [n, o])
    }

    fn linear_backward(xs: Vec<FlexTensor>, w: FlexTensor, g: FlexTensor, need: &[bool]) -> Vec<Option<FlexTensor>> {
        let xs: Vec<FlexTensor> = xs.into_iter().map(contiguous).collect();
        let (w, g) = (contiguous(w), contiguous(g));
        let [inputs, o] = w.shape().dims();
        let (parts, n) = linear_parts(&xs);
        let widths: Vec<usize> = parts.iter().map(|p| p.1).collect();
        let grads = linear_backward_kernel(&parts, f32s(&w), f32s(&g), (n, o), need);
        let shapes = widths.iter().map(|&i| vec![n, i]).chain([vec![inputs, o], vec![o]]);
        grads
            .into_iter()
            .zip(shapes)
            .map(|(grad, shape)| grad.map(|d| FlexTensor::from_data(TensorData::new(d, Shape::from(shape)))))
            .collect()
    }
}

/// A linear layer over `P − 2` input parts under autodiff (`P` parents: the parts, `w`, `b`).
fn linear_autodiff<B: Backend + LinearBackward, C: CheckpointStrategy, const P: usize>(
    xs: Vec<FloatTensor<Autodiff<B, C>>>,
    w: FloatTensor<Autodiff<B, C>>,
    b: FloatTensor<Autodiff<B, C>>,
) -> FloatTensor<Autodiff<B, C>> {
    assert_eq!(xs.len() + 2, P, "linear: {} parts need {} parents", xs.len(), xs.len() + 2);
    let parents: Vec<_> = xs.iter().map(|x| x.node()).chain([w.node(), b.node()]).collect();
    let parents: [_; P] = parents.try_into().expect("P parents");
    let xs: Vec<_> = xs.into_iter().map(|x| x.into_primitive()).collect();
    let (w, b) = (w.into_primitive(), b.into_primitive());
    let grad: Grad<B, _, _, P> = |(xs, w), g, need| B::linear_backward(xs, w, g, &need);
    record::<B, C, _, _, _, P>(parents, grad, |tracked| match tracked {
        true => (B::linear_forward(xs.clone(), w.clone(), b), Some((xs, w))),
        false => (B::linear_forward(xs, w, b), None),
    })
}

impl<B: Backend + LinearOps + LinearBackward, C: CheckpointStrategy> LinearOps for Autodiff<B, C> {
    fn linear(x: FloatTensor<Self>, w: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        linear_autodiff::<B, C, 3>(vec![x], w, b)
    }

    fn linear2(
        x1: FloatTensor<Self>,
        x2: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        linear_autodiff::<B, C, 4>(vec![x1, x2], w, b)
    }
}

/// A linear layer `x W + b` on `x (N, I)` → `(N, O)`. On the CPU one op with its own backward:
/// the bias is the product's starting value, and the gradients are written straight into new
/// buffers (burn's matrix product zero-fills and copies around each of its products, which
/// profiles of the decoder steps showed beside the products themselves).
pub fn linear(x: Tensor<2>, layer: &burn::nn::Linear) -> Tensor<2> {
    match &layer.bias {
        Some(b) if is_flex(&x.device()) => Tensor::from_dispatch(<Dispatch as LinearOps>::linear(
            x.into_dispatch(),
            layer.weight.val().into_dispatch(),
            b.val().into_dispatch(),
        )),
        _ => layer.forward(x),
    }
}

/// [`linear`] of the concatenation `[x1, x2]` `(N, I1 + I2)`, without building it (the layer's
/// first `I1` weight rows read `x1`).
pub fn linear2(x1: Tensor<2>, x2: Tensor<2>, layer: &burn::nn::Linear) -> Tensor<2> {
    match &layer.bias {
        Some(b) if is_flex(&x1.device()) => Tensor::from_dispatch(<Dispatch as LinearOps>::linear2(
            x1.into_dispatch(),
            x2.into_dispatch(),
            layer.weight.val().into_dispatch(),
            b.val().into_dispatch(),
        )),
        _ => layer.forward(Tensor::cat(vec![x1, x2], 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{grad_check, uniform};
    use burn::tensor::Device;

    /// A layer with the given weight `(I, O)` and bias `(O)`.
    fn layer(w: Tensor<2>, b: Tensor<1>) -> burn::nn::Linear {
        // `initialized` keeps the tensors as given (tracked leaves or reshapes of them).
        let param = |t| burn::module::Param::initialized(burn::module::ParamId::new(), t);
        burn::nn::Linear {
            weight: param(w),
            bias: Some(burn::module::Param::initialized(burn::module::ParamId::new(), b)),
        }
    }

    #[test]
    fn fused_linear_matches_the_composed_layer_forward_and_backward() {
        let (n, i1, i2, o) = (5, 3, 4, 6);
        let inputs = [
            uniform(n * i1, -1.0, 1.0, 60),
            uniform(n * i2, -1.0, 1.0, 61),
            uniform((i1 + i2) * o, -1.0, 1.0, 62),
            uniform(o, -1.0, 1.0, 63),
        ];
        let dev = Device::flex().autodiff();
        let t = |v: &[f32]| Tensor::<1>::from_floats(v, &dev).require_grad();
        let (x1, x2, w, b) = (t(&inputs[0]), t(&inputs[1]), t(&inputs[2]), t(&inputs[3]));
        let run = |fused: bool| {
            let lin = layer(w.clone().reshape([i1 + i2, o]), b.clone());
            let (a, c) = (x1.clone().reshape([n, i1]), x2.clone().reshape([n, i2]));
            let both = linear2(a.clone(), c.clone(), &lin);
            let one = linear(Tensor::cat(vec![a.clone(), c.clone()], 1), &lin);
            let want = lin.forward(Tensor::cat(vec![a, c], 1));
            let out = if fused { both * 0.5 + one * 0.25 } else { want * 0.75 };
            let r = Tensor::<2>::from_floats([[1.0, -2.0, 0.5, 3.0, -1.0, 0.25]], &dev);
            let loss = (out.clone() * r).sum();
            let grads = loss.backward();
            let g = |x: &Tensor<1>| x.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
            (out.into_data().try_to_vec::<f32>().unwrap(), [g(&x1), g(&x2), g(&w), g(&b)])
        };
        let ((out, grads), (want, want_grads)) = (run(true), run(false));
        let close = |a: &[f32], b: &[f32]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
        assert!(close(&out, &want), "{out:?} vs {want:?}");
        for (k, (g, h)) in grads.iter().zip(&want_grads).enumerate() {
            assert!(close(g, h), "gradient {k}: {g:?} vs {h:?}");
        }
        grad_check(&inputs, 1e-2, 1e-2, |x| {
            let [a, c, w, b]: [Tensor<1>; 4] = x.try_into().unwrap();
            linear2(a.reshape([n, i1]), c.reshape([n, i2]), &layer(w.reshape([i1 + i2, o]), b)).reshape([n * o])
        });
    }

    #[test]
    fn fused_linear_skips_the_gradients_nobody_asked_for() {
        // An untracked first part (a constant input) and a large product split across threads.
        let (n, i1, i2, o) = (64, 200, 300, 256);
        let dev = Device::flex().autodiff();
        let t = |len, seed| Tensor::<1>::from_floats(uniform(len, -1.0, 1.0, seed).as_slice(), &dev);
        let x1 = t(n * i1, 70).reshape([n, i1]);
        let x2 = t(n * i2, 71).reshape([n, i2]).require_grad();
        let w = t((i1 + i2) * o, 72).reshape([i1 + i2, o]).require_grad();
        let b = t(o, 73).require_grad();
        let lin = layer(w.clone(), b.clone());
        let loss = |fused: bool| {
            let out = if fused {
                linear2(x1.clone(), x2.clone(), &lin)
            } else {
                lin.forward(Tensor::cat(vec![x1.clone(), x2.clone()], 1))
            };
            (out.clone() * out).sum()
        };
        let (gf, gc) = (loss(true).backward(), loss(false).backward());
        assert!(x1.grad(&gf).is_none());
        for (a, c) in [(x2.grad(&gf), x2.grad(&gc)), (w.grad(&gf), w.grad(&gc))] {
            let (a, c) = (
                a.unwrap().into_data().try_to_vec::<f32>().unwrap(),
                c.unwrap().into_data().try_to_vec::<f32>().unwrap(),
            );
            let scale = c.iter().fold(1.0f32, |m, x| m.max(x.abs()));
            assert!(a.iter().zip(&c).all(|(x, y)| (x - y).abs() <= 1e-4 * scale));
        }
    }

    #[test]
    fn fused_linear_takes_the_transposed_route_for_few_rows_and_large_weights() {
        // 8 rows × (640 → 1024): the forward product and dx go through the transposed product
        // of `gemm_raw` (few rows, a weight beyond 2^19 elements), dW through the direct one.
        let (n, i, o) = (8, 640, 1024);
        let dev = Device::flex().autodiff();
        let t = |len, seed| Tensor::<1>::from_floats(uniform(len, -1.0, 1.0, seed).as_slice(), &dev);
        let x = t(n * i, 80).reshape([n, i]).require_grad();
        let w = t(i * o, 81).reshape([i, o]).require_grad();
        let b = t(o, 82).require_grad();
        let lin = layer(w.clone(), b.clone());
        let r = t(n * o, 83).reshape([n, o]);
        let run = |fused: bool| {
            let out = if fused { linear(x.clone(), &lin) } else { lin.forward(x.clone()) };
            let grads = (out.clone() * r.clone()).sum().backward();
            let v = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
            [v(out), v(x.grad(&grads).unwrap()), v(w.grad(&grads).unwrap())]
        };
        for (k, (a, c)) in run(true).iter().zip(run(false).iter()).enumerate() {
            let scale = c.iter().fold(1.0f32, |m, x| m.max(x.abs()));
            assert!(a.iter().zip(c).all(|(x, y)| (x - y).abs() <= 1e-4 * scale), "output {k} differs");
        }
    }
}
