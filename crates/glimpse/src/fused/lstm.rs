//! The LSTM cell's gates ([`lstm_gates`]: `(h', c')` from the pre-activations `z = [i, f, u, o]`
//! and the cell `c`, in one pass over memory instead of the dozen tensor operations and their
//! autodiff nodes) and a whole LSTM layer over a sequence ([`lstm_sequence`]: the recurrent
//! products and the gates of every step in one op, with its own back-propagation through time,
//! the batch split across threads). Elsewhere, the same math composed of tensor operations.

use super::autodiff::{Grad, record, record_on_inputs};
use super::math::{sigmoid_fast, tanh_fast, wide};
use super::matmul::{gemm_strided, per_thread};
use super::unary::{Unary, unary};
use super::{contiguous, f32s, flex_f32, is_flex};
use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;

/// The four gate blocks `[i, f, u, o]` of one row `z (4H)` of pre-activations.
#[inline(always)]
fn quarters(z: &[f32], h: usize) -> (&[f32], &[f32], &[f32], &[f32]) {
    let (zi, rest) = z.split_at(h);
    let (zf, rest) = rest.split_at(h);
    let (zu, zo) = rest.split_at(h);
    (zi, zf, zu, zo)
}

/// The gates from their pre-activations: `(σ(z_i), σ(z_f), tanh(z_u), σ(z_o))`.
#[inline(always)]
fn gates(zi: f32, zf: f32, zu: f32, zo: f32) -> (f32, f32, f32, f32) {
    (sigmoid_fast(zi), sigmoid_fast(zf), tanh_fast(zu), sigmoid_fast(zo))
}

/// The forward kernel on slices: `z (B, 4H)`, `c (B, H)` → `out (B, 2H)` = `[h', c']`.
pub fn lstm_gates_kernel(z: &[f32], c: &[f32], out: &mut [f32], h: usize) {
    wide(
        #[inline(always)]
        || {
            for ((z, c), out) in z.chunks_exact(4 * h).zip(c.chunks_exact(h)).zip(out.chunks_exact_mut(2 * h)) {
                let (zi, zf, zu, zo) = quarters(z, h);
                let (h_out, c_out) = out.split_at_mut(h);
                for j in 0..h {
                    let (i, f, u, o) = gates(zi[j], zf[j], zu[j], zo[j]);
                    let c2 = f * c[j] + i * u;
                    c_out[j] = c2;
                    h_out[j] = o * tanh_fast(c2);
                }
            }
        },
    )
}

/// The backward kernel: from `z`, `c` and the gradient `g (B, 2H)` of `[h', c']`, the
/// gradients `out (B, 5H)` = `[dz (4H), dc (H)]`.
pub fn lstm_gates_backward_kernel(z: &[f32], c: &[f32], g: &[f32], out: &mut [f32], h: usize) {
    wide(
        #[inline(always)]
        || {
            let rows = z.chunks_exact(4 * h).zip(c.chunks_exact(h)).zip(g.chunks_exact(2 * h));
            for (((z, c), g), out) in rows.zip(out.chunks_exact_mut(5 * h)) {
                let (zi, zf, zu, zo) = quarters(z, h);
                let (dh, dc2) = g.split_at(h);
                let (dz, dc) = out.split_at_mut(4 * h);
                let (dzi, rest) = dz.split_at_mut(h);
                let (dzf, rest) = rest.split_at_mut(h);
                let (dzu, dzo) = rest.split_at_mut(h);
                for j in 0..h {
                    let (i, f, u, o) = gates(zi[j], zf[j], zu[j], zo[j]);
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
        },
    )
}

/// The sizes of one LSTM sequence: batch `b`, steps `t`, hidden `h`.
#[derive(Clone, Copy, Debug)]
pub struct SeqDims {
    /// Batch rows.
    pub b: usize,
    /// Steps.
    pub t: usize,
    /// Hidden units.
    pub h: usize,
}

/// Forward of an LSTM layer over a whole sequence: `z_t = zx_t + h_{t−1} W_h`, then the gates.
/// `zx (B, T, 4H)` the projected inputs, `w_h (H, 4H)`, `h0, c0 (B, H)`, `keep (B, T)` 1 where
/// a step is padding (the state passes through unchanged). Writes `out (B, T, 2H)` = `[h_t, c_t]`
/// and the pre-activations `z (B, T, 4H)` the backward pass needs. Rows are independent, so the
/// batch is split across the thread pool with no synchronisation between steps.
#[allow(clippy::too_many_arguments)]
pub fn lstm_sequence_kernel(
    d: SeqDims,
    zx: &[f32],
    w_h: &[f32],
    h0: &[f32],
    c0: &[f32],
    keep: &[f32],
    out: &mut [f32],
    z: &mut [f32],
) {
    use rayon::prelude::*;
    let SeqDims { t: steps, h, .. } = d;
    let rows = per_thread(d.b, 8);
    out.par_chunks_mut(rows * steps * 2 * h).zip(z.par_chunks_mut(rows * steps * 4 * h)).enumerate().for_each(
        |(chunk, (out, z))| {
            let r0 = chunk * rows;
            let n = out.len() / (steps * 2 * h);
            let (zx, keep) = (&zx[r0 * steps * 4 * h..], &keep[r0 * steps..]);
            let (h0, c0) = (&h0[r0 * h..(r0 + n) * h], &c0[r0 * h..(r0 + n) * h]);
            for s in 0..steps {
                for r in 0..n {
                    let at = (r * steps + s) * 4 * h;
                    z[at..at + 4 * h].copy_from_slice(&zx[at..at + 4 * h]);
                }
                // z_t += h_{t−1} W_h for this chunk's rows.
                let (prev, prev_rs): (&[f32], usize) =
                    if s == 0 { (h0, h) } else { (&out[(s - 1) * 2 * h..], steps * 2 * h) };
                let dst = &mut z[s * 4 * h..];
                gemm_strided((n, 4 * h, h), dst, steps * 4 * h, true, (prev, prev_rs, 1), (w_h, 4 * h, 1), false);
                for r in 0..n {
                    let at = (r * steps + s) * 2 * h;
                    let (before, after) = out.split_at_mut(at);
                    let c_prev = if s == 0 { &c0[r * h..(r + 1) * h] } else { &before[at - h..at] };
                    if keep[r * steps + s] != 0.0 {
                        let h_prev = if s == 0 { &h0[r * h..(r + 1) * h] } else { &before[at - 2 * h..at - h] };
                        after[..h].copy_from_slice(h_prev);
                        after[h..2 * h].copy_from_slice(c_prev);
                    } else {
                        let zr = &z[(r * steps + s) * 4 * h..(r * steps + s + 1) * 4 * h];
                        lstm_gates_kernel(zr, c_prev, &mut after[..2 * h], h);
                    }
                }
            }
        },
    );
}

/// Backward of [`lstm_sequence_kernel`]: from its `z` and `out`, and the gradient `g (B, T, 2H)`
/// of `out`, writes `dz (B, T, 4H)` (the gradient of `zx`), `dh0, dc0 (B, H)` and
/// `dw_h (H, 4H)`. Back-propagation through time runs per chunk of rows as the forward did;
/// the weight gradient is one product over all `B·T` steps afterwards.
#[allow(clippy::too_many_arguments)]
pub fn lstm_sequence_backward_kernel(
    d: SeqDims,
    (z, out, g): (&[f32], &[f32], &[f32]),
    w_h: &[f32],
    h0: &[f32],
    c0: &[f32],
    keep: &[f32],
    (dz, dh0, dc0): (&mut [f32], &mut [f32], &mut [f32]),
    dw_h: &mut [f32],
) {
    use rayon::prelude::*;
    let SeqDims { b, t: steps, h } = d;
    let rows = per_thread(b, 8);
    let chunks =
        dz.par_chunks_mut(rows * steps * 4 * h).zip(dh0.par_chunks_mut(rows * h)).zip(dc0.par_chunks_mut(rows * h));
    chunks.enumerate().for_each(|(chunk, ((dz, dh), dc))| {
        let r0 = chunk * rows;
        let n = dh.len() / h;
        let (z, out, g) = (&z[r0 * steps * 4 * h..], &out[r0 * steps * 2 * h..], &g[r0 * steps * 2 * h..]);
        let (c0, keep) = (&c0[r0 * h..], &keep[r0 * steps..]);
        // dh, dc: the gradients flowing into step s from step s + 1.
        dh.fill(0.0);
        dc.fill(0.0);
        let (mut g_row, mut d_row) = (vec![0.0f32; 2 * h], vec![0.0f32; 5 * h]);
        for s in (0..steps).rev() {
            for r in 0..n {
                let (dh, dc) = (&mut dh[r * h..(r + 1) * h], &mut dc[r * h..(r + 1) * h]);
                let gs = &g[(r * steps + s) * 2 * h..(r * steps + s + 1) * 2 * h];
                let dzr = &mut dz[(r * steps + s) * 4 * h..(r * steps + s + 1) * 4 * h];
                if keep[r * steps + s] != 0.0 {
                    // A padding step passes the state through: its gradient goes straight back.
                    dh.iter_mut().zip(&gs[..h]).for_each(|(a, g)| *a += g);
                    dc.iter_mut().zip(&gs[h..]).for_each(|(a, g)| *a += g);
                    dzr.fill(0.0);
                    continue;
                }
                for j in 0..h {
                    g_row[j] = gs[j] + dh[j];
                    g_row[h + j] = gs[h + j] + dc[j];
                }
                let at = (r * steps + s) * 2 * h;
                let c_prev = if s == 0 { &c0[r * h..(r + 1) * h] } else { &out[at - h..at] };
                let zr = &z[(r * steps + s) * 4 * h..(r * steps + s + 1) * 4 * h];
                lstm_gates_backward_kernel(zr, c_prev, &g_row, &mut d_row, h);
                dzr.copy_from_slice(&d_row[..4 * h]);
                dc.copy_from_slice(&d_row[4 * h..]);
                // The recurrent product below adds this step's dh_{t−1}; padding rows keep theirs.
                dh.fill(0.0);
            }
            // dh_{t−1} += dz_t W_hᵀ (W_hᵀ read in place: rows of W_h are its columns).
            let (lhs, dst) = (&dz[s * 4 * h..], &mut dh[..]);
            gemm_strided((n, h, 4 * h), dst, h, true, (lhs, steps * 4 * h, 1), (w_h, 1, 4 * h), false);
        }
    });
    // dW_h = Σ_{b,t} h_{t−1}ᵀ dz_t: h_{t−1} gathered into (B·T, H) rows, then one product.
    let mut prev = vec![0.0f32; b * steps * h];
    for r in 0..b {
        prev[r * steps * h..(r * steps + 1) * h].copy_from_slice(&h0[r * h..(r + 1) * h]);
        for s in 1..steps {
            let from = (r * steps + s - 1) * 2 * h;
            prev[(r * steps + s) * h..(r * steps + s + 1) * h].copy_from_slice(&out[from..from + h]);
        }
    }
    let big = b * steps * h * 4 * h >= 192 * 192 * 192;
    gemm_strided((h, 4 * h, b * steps), dw_h, 4 * h, false, (&prev, 1, h), (dz, 4 * h, 1), big);
}

/// Backends with the fused LSTM gates and sequence.
#[backend_extension(Flex, Autodiff)]
pub trait LstmOps: Backend {
    /// `z (B, 4H)`, `c (B, H)` → `[h', c'] (B, 2H)`.
    fn lstm_gates(z: FloatTensor<Self>, c: FloatTensor<Self>) -> FloatTensor<Self>;
    /// An LSTM layer over a sequence: `zx (B, T, 4H)`, `w_h (H, 4H)`, `h0, c0 (B, H)`, `keep
    /// (B, T)` (1 at padding; not differentiated) → `[h_t, c_t] (B, T, 2H)`.
    fn lstm_sequence(
        zx: FloatTensor<Self>,
        w_h: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        keep: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// The LSTM backward kernels an inner (non-autodiff) backend provides.
pub trait LstmBackward: Backend {
    /// `z (B, 4H)`, `c (B, H)`, `g (B, 2H)` → `[dz, dc] (B, 5H)`.
    fn lstm_gates_backward(z: FloatTensor<Self>, c: FloatTensor<Self>, g: FloatTensor<Self>) -> FloatTensor<Self>;
    /// [`LstmOps::lstm_sequence`] that also returns the pre-activations `z (B, T, 4H)`.
    fn lstm_sequence_forward(
        zx: FloatTensor<Self>,
        w_h: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        keep: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// From `z`, `out`, the inputs and `g (B, T, 2H)` → `[dzx, dw_h, dh0, dc0]`.
    fn lstm_sequence_backward(state: SequenceState<Self>, g: FloatTensor<Self>) -> [FloatTensor<Self>; 4];
}

/// What the backward pass of [`LstmOps::lstm_sequence`] keeps from its forward pass.
#[derive(Debug, Clone)]
pub struct SequenceState<B: Backend> {
    z: FloatTensor<B>,
    out: FloatTensor<B>,
    w_h: FloatTensor<B>,
    h0: FloatTensor<B>,
    c0: FloatTensor<B>,
    keep: FloatTensor<B>,
}

impl LstmOps for Flex {
    fn lstm_gates(z: FlexTensor, c: FlexTensor) -> FlexTensor {
        let (z, c) = (contiguous(z), contiguous(c));
        let [b, h4] = z.shape().dims();
        let h = h4 / 4;
        let mut out = vec![0.0f32; b * 2 * h];
        lstm_gates_kernel(z.as_slice().expect("f32"), c.as_slice().expect("f32"), &mut out, h);
        flex_f32(out, [b, 2 * h])
    }

    fn lstm_sequence(zx: FlexTensor, w_h: FlexTensor, h0: FlexTensor, c0: FlexTensor, keep: FlexTensor) -> FlexTensor {
        Self::lstm_sequence_forward(zx, w_h, h0, c0, keep).0
    }
}

impl LstmBackward for Flex {
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

    fn lstm_sequence_forward(
        zx: FlexTensor,
        w_h: FlexTensor,
        h0: FlexTensor,
        c0: FlexTensor,
        keep: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        let [zx, w_h, h0, c0, keep] = [zx, w_h, h0, c0, keep].map(contiguous);
        let [b, t, h4] = zx.shape().dims();
        let d = SeqDims { b, t, h: h4 / 4 };
        let (mut out, mut z) = (vec![0.0f32; b * t * 2 * d.h], vec![0.0f32; b * t * h4]);
        lstm_sequence_kernel(d, f32s(&zx), f32s(&w_h), f32s(&h0), f32s(&c0), f32s(&keep), &mut out, &mut z);
        (flex_f32(out, [b, t, 2 * d.h]), flex_f32(z, [b, t, h4]))
    }

    fn lstm_sequence_backward(state: SequenceState<Self>, g: FlexTensor) -> [FlexTensor; 4] {
        let SequenceState { z, out, w_h, h0, c0, keep } = state;
        let [z, out, w_h, h0, c0, keep, g] = [z, out, w_h, h0, c0, keep, g].map(contiguous);
        let [b, t, h4] = z.shape().dims();
        let d = SeqDims { b, t, h: h4 / 4 };
        let (mut dz, mut dh0, mut dc0) = (vec![0.0f32; b * t * h4], vec![0.0f32; b * d.h], vec![0.0f32; b * d.h]);
        let mut dw_h = vec![0.0f32; d.h * h4];
        lstm_sequence_backward_kernel(
            d,
            (f32s(&z), f32s(&out), f32s(&g)),
            f32s(&w_h),
            f32s(&h0),
            f32s(&c0),
            f32s(&keep),
            (&mut dz, &mut dh0, &mut dc0),
            &mut dw_h,
        );
        [flex_f32(dz, [b, t, h4]), flex_f32(dw_h, [d.h, h4]), flex_f32(dh0, [b, d.h]), flex_f32(dc0, [b, d.h])]
    }
}

impl<B: Backend + LstmOps + LstmBackward, C: CheckpointStrategy> LstmOps for Autodiff<B, C> {
    fn lstm_gates(z: FloatTensor<Self>, c: FloatTensor<Self>) -> FloatTensor<Self> {
        record_on_inputs::<B, C, _, _, 2>(
            [z, c],
            |[z, c]| B::lstm_gates(z, c),
            |[z, c], g, _| {
                let [b, h4] = z.shape().dims();
                let h = h4 / 4;
                let both = B::lstm_gates_backward(z, c, g); // (B, 5H): [∂z, ∂c]
                [
                    B::float_slice(both.clone(), &[(0..b).into(), (0..4 * h).into()]),
                    B::float_slice(both, &[(0..b).into(), (4 * h..5 * h).into()]),
                ]
            },
        )
    }

    fn lstm_sequence(
        zx: FloatTensor<Self>,
        w_h: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        keep: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let keep = keep.into_primitive();
        let parents = [zx.node(), w_h.node(), h0.node(), c0.node()];
        let [zx, w_h, h0, c0] = [zx, w_h, h0, c0].map(|t| t.into_primitive());
        let grad: Grad<B, SequenceState<B>, _, 4> = |state, g, _| B::lstm_sequence_backward(state, g);
        record::<B, C, _, _, _, 4>(parents, grad, |tracked| match tracked {
            true => {
                let (out, z) = B::lstm_sequence_forward(zx, w_h.clone(), h0.clone(), c0.clone(), keep.clone());
                (out.clone(), Some(SequenceState { z, out, w_h, h0, c0, keep }))
            }
            false => (B::lstm_sequence(zx, w_h, h0, c0, keep), None),
        })
    }
}

/// The LSTM update `(h', c')` from pre-activations `z = [i, f, u, o] (B, 4H)` and `c (B, H)`:
/// `c' = σ(f) c + σ(i) tanh(u)`, `h' = σ(o) tanh(c')`; fused on the CPU.
pub fn lstm_gates(z: Tensor<2>, c: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let n = c.dims()[1];
    if !is_flex(&z.device()) {
        return lstm_gates_composed(z, c);
    }
    let out = Tensor::<2>::from_dispatch(<Dispatch as LstmOps>::lstm_gates(z.into_dispatch(), c.into_dispatch()));
    (out.clone().narrow(1, 0, n), out.narrow(1, n, n))
}

/// [`lstm_gates`] composed of tensor operations.
fn lstm_gates_composed(z: Tensor<2>, c: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let n = c.dims()[1];
    let i = sigmoid(z.clone().narrow(1, 0, n));
    let f = sigmoid(z.clone().narrow(1, n, n));
    let u = unary(z.clone().narrow(1, 2 * n, n), Unary::Tanh);
    let o = sigmoid(z.narrow(1, 3 * n, n));
    let c = f * c + i * u;
    (o * unary(c.clone(), Unary::Tanh), c)
}

/// An LSTM layer over a whole sequence: `zx (B, T, 4H)` its projected inputs (bias included,
/// `models::lstm::LstmCell::project_inputs`), `w_h (H, 4H)` its recurrent weights,
/// the first state `h0, c0 (B, H)`, and `keep (B, T)`, 1 where a step is padding and the state
/// passes through unchanged. Returns `[h_t, c_t]` `(B, T, 2H)`. On the CPU one fused op with its
/// own back-propagation through time, the batch split across threads; elsewhere the same steps
/// composed of tensor operations.
pub fn lstm_sequence(
    zx: Tensor<3>,
    w_h: Tensor<2>,
    h0: Tensor<2>,
    c0: Tensor<2>,
    keep: Option<Tensor<2>>,
) -> Tensor<3> {
    let [b, t, _] = zx.dims();
    let device = zx.device();
    if !is_flex(&device) {
        return lstm_sequence_composed(zx, w_h, [h0, c0], keep);
    }
    let keep = keep.map_or_else(|| Tensor::<2>::zeros([b, t], &device), |k| k.detach());
    let out = <Dispatch as LstmOps>::lstm_sequence(
        zx.into_dispatch(),
        w_h.into_dispatch(),
        h0.into_dispatch(),
        c0.into_dispatch(),
        keep.into_dispatch(),
    );
    Tensor::<3>::from_dispatch(out)
}

/// [`lstm_sequence`] as a loop of tensor operations (other devices; the tests' reference).
fn lstm_sequence_composed(zx: Tensor<3>, w_h: Tensor<2>, hc: [Tensor<2>; 2], keep: Option<Tensor<2>>) -> Tensor<3> {
    let [b, t, h4] = zx.dims();
    let [mut h, mut c] = hc;
    let mut out = Vec::with_capacity(t);
    for s in 0..t {
        let z = zx.clone().narrow(1, s, 1).reshape([b, h4]) + h.clone().matmul(w_h.clone());
        let (h2, c2) = lstm_gates_composed(z, c.clone());
        (h, c) = match &keep {
            Some(k) => {
                let k = k.clone().narrow(1, s, 1); // (B, 1)
                (h2.clone() + (h - h2) * k.clone(), c2.clone() + (c - c2) * k)
            }
            None => (h2, c2),
        };
        out.push(Tensor::cat(vec![h.clone(), c.clone()], 1));
    }
    Tensor::stack(out, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{grad_check, uniform};
    use burn::tensor::{Device, TensorData};

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

    /// Random `(zx, w_h, h0, c0)` as flat vectors and a padding mask for an LSTM sequence.
    fn sequence_inputs(b: usize, t: usize, h: usize, seed: u64) -> ([Vec<f32>; 4], Vec<f32>) {
        let keep = uniform(b * t, 0.0, 1.0, seed).iter().map(|&u| f32::from(u < 0.3)).collect();
        let inputs = [
            uniform(b * t * 4 * h, -2.0, 2.0, seed + 1),
            uniform(h * 4 * h, -0.8, 0.8, seed + 2),
            uniform(b * h, -1.0, 1.0, seed + 3),
            uniform(b * h, -1.5, 1.5, seed + 4),
        ];
        (inputs, keep)
    }

    fn sequence_tensors(x: &[Tensor<1>], b: usize, t: usize, h: usize) -> (Tensor<3>, Tensor<2>, Tensor<2>, Tensor<2>) {
        let zx = x[0].clone().reshape([b, t, 4 * h]);
        (zx, x[1].clone().reshape([h, 4 * h]), x[2].clone().reshape([b, h]), x[3].clone().reshape([b, h]))
    }

    #[test]
    fn fused_sequence_matches_the_step_loop_forward_and_backward() {
        // 17 rows: split unevenly across two threads (9 + 8) where two are available.
        let (b, t, h) = (17, 6, 5);
        let dev = Device::flex().autodiff();
        let (inputs, keep) = sequence_inputs(b, t, h, 10);
        let keep = Tensor::<2>::from_data(TensorData::new(keep, [b, t]), &dev);
        let weights =
            Tensor::<3>::from_data(TensorData::new(uniform(b * t * 2 * h, -1.0, 1.0, 20), [b, t, 2 * h]), &dev);
        let run = |fused: bool| {
            let x: Vec<Tensor<1>> =
                inputs.iter().map(|v| Tensor::<1>::from_floats(v.as_slice(), &dev).require_grad()).collect();
            let (zx, w_h, h0, c0) = sequence_tensors(&x, b, t, h);
            let out = if fused {
                lstm_sequence(zx, w_h, h0, c0, Some(keep.clone()))
            } else {
                lstm_sequence_composed(zx, w_h, [h0, c0], Some(keep.clone()))
            };
            let vals: Vec<f32> = out.clone().inner().into_data().try_to_vec().unwrap();
            let grads = (out * weights.clone()).sum().backward();
            let g: Vec<Vec<f32>> =
                x.iter().map(|x| x.grad(&grads).unwrap().into_data().try_to_vec().unwrap()).collect();
            (vals, g)
        };
        let ((fv, fg), (rv, rg)) = (run(true), run(false));
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4 * y.abs().max(1.0));
        assert!(close(&fv, &rv), "outputs differ");
        for (k, (a, w)) in fg.iter().zip(&rg).enumerate() {
            assert_eq!(a.len(), w.len());
            assert!(close(a, w), "gradient of input {k} differs: {a:?} vs {w:?}");
        }
        // Padding steps hold the state: a row padded throughout ends where it began.
        let (inputs, _) = sequence_inputs(2, 3, 4, 30);
        let x: Vec<Tensor<1>> = inputs.iter().map(|v| Tensor::<1>::from_floats(v.as_slice(), &dev)).collect();
        let (zx, w_h, h0, c0) = sequence_tensors(&x, 2, 3, 4);
        let all = Tensor::<2>::ones([2, 3], &dev);
        let out = lstm_sequence(zx, w_h, h0.clone(), c0.clone(), Some(all));
        let last: Vec<f32> = out.narrow(1, 2, 1).reshape([2, 8]).into_data().try_to_vec().unwrap();
        let first: Vec<f32> = Tensor::cat(vec![h0, c0], 1).into_data().try_to_vec().unwrap();
        assert_eq!(last, first);
    }

    #[test]
    fn fused_sequence_gradients_match_finite_differences() {
        let (b, t, h) = (3, 4, 3);
        let (inputs, keep) = sequence_inputs(b, t, h, 40);
        grad_check(&inputs, 1e-3, 2e-2, |x| {
            let (zx, w_h, h0, c0) = sequence_tensors(&x, b, t, h);
            let keep = Tensor::<2>::from_data(TensorData::new(keep.clone(), [b, t]), &zx.device());
            lstm_sequence(zx, w_h, h0, c0, Some(keep)).reshape([b * t * 2 * h])
        });
    }
}
