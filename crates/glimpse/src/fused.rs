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
//! [`conv3x3`]: a 3×3 convolution with padding 1 (the CNN's layers) as an im2col and one
//! matrix product per image, forward and backward, the batch split across threads; burn-flex's
//! convolution backward (a transposed convolution and tiled copies) led the CNN's profile.
//!
//! Other devices (wgpu, cuda) take the same math composed of ordinary tensor operations.

use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, DispatchDevice, Flex, Scalar, backend_extension};
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

/// Runs `f` compiled for AVX2 and FMA where the CPU has them. The crate is built for baseline
/// x86-64, whose SSE2 gives the kernels' loops 4 lanes; inlined here they get 8.
#[inline(always)]
fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features `avx2` is compiled for.
            return unsafe { avx2(f) };
        }
    }
    f()
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

/// The forward kernel on slices: `z (B, 4H)`, `c (B, H)` → `out (B, 2H)` = `[h', c']`.
pub fn lstm_gates_kernel(z: &[f32], c: &[f32], out: &mut [f32], h: usize) {
    wide(
        #[inline(always)]
        || {
            for ((z, c), out) in z.chunks_exact(4 * h).zip(c.chunks_exact(h)).zip(out.chunks_exact_mut(2 * h)) {
                let (zi, rest) = z.split_at(h);
                let (zf, rest) = rest.split_at(h);
                let (zu, zo) = rest.split_at(h);
                let (h_out, c_out) = out.split_at_mut(h);
                for j in 0..h {
                    let (i, f, u, o) =
                        (sigmoid_fast(zi[j]), sigmoid_fast(zf[j]), tanh_fast(zu[j]), sigmoid_fast(zo[j]));
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
                let (zi, rest) = z.split_at(h);
                let (zf, rest) = rest.split_at(h);
                let (zu, zo) = rest.split_at(h);
                let (dh, dc2) = g.split_at(h);
                let (dz, dc) = out.split_at_mut(4 * h);
                let (dzi, rest) = dz.split_at_mut(h);
                let (dzf, rest) = rest.split_at_mut(h);
                let (dzu, dzo) = rest.split_at_mut(h);
                for j in 0..h {
                    let (i, f, u, o) =
                        (sigmoid_fast(zi[j]), sigmoid_fast(zf[j]), tanh_fast(zu[j]), sigmoid_fast(zo[j]));
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

/// `dst (m, n) = [dst +] lhs (m, k) · rhs (k, n)` on strided row-major slices (`*_rs` row
/// strides, `*_cs` column strides), through the `gemm` crate burn-flex itself uses.
#[allow(clippy::too_many_arguments)]
fn gemm_strided(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: (&[f32], usize, usize),
    rhs: (&[f32], usize, usize),
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(span(m, dst_rs, n, 1) <= dst.len(), "gemm: destination out of bounds");
    // SAFETY: the destination is a borrowed slice long enough for every element written.
    unsafe { gemm_raw((m, n, k), dst.as_mut_ptr(), dst_rs, accumulate, lhs, rhs, parallel) }
}

/// How many elements a strided `(rows, cols)` view spans.
fn span(rows: usize, rs: usize, cols: usize, cs: usize) -> usize {
    (rows - 1) * rs + (cols.max(1) - 1) * cs + 1
}

/// A new `(m, n)` row-major buffer holding `lhs (m, k) · rhs (k, n)`. Nothing is zeroed first:
/// the product writes every element (profiles of the decoder steps showed burn's zero-filled
/// gradient buffers, `memset`, beside the products themselves).
fn gemm_fresh(
    (m, n, k): (usize, usize, usize),
    lhs: (&[f32], usize, usize),
    rhs: (&[f32], usize, usize),
    parallel: bool,
) -> Vec<f32> {
    if m == 0 || n == 0 || k == 0 {
        return vec![0.0; m * n];
    }
    let mut out = Vec::with_capacity(m * n);
    // SAFETY: the capacity holds m·n elements; a product that does not accumulate writes all of
    // them (k > 0) without reading any, so every element is initialised before `set_len`.
    unsafe {
        gemm_raw((m, n, k), out.as_mut_ptr(), n, false, lhs, rhs, parallel);
        out.set_len(m * n);
    }
    out
}

/// The `gemm` call behind [`gemm_strided`] and [`gemm_fresh`]; checks the operands' bounds.
///
/// # Safety
/// `dst` must be valid for writes (and, with `accumulate`, reads) of the `(m, n)` view with row
/// stride `dst_rs`, and must not overlap the operands.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    (lhs, lhs_rs, lhs_cs): (&[f32], usize, usize),
    (rhs, rhs_rs, rhs_cs): (&[f32], usize, usize),
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k > 0 {
        assert!(span(m, lhs_rs, k, lhs_cs) <= lhs.len(), "gemm: left operand out of bounds");
        assert!(span(k, rhs_rs, n, rhs_cs) <= rhs.len(), "gemm: right operand out of bounds");
    }
    let rhs_by_columns = rhs_rs == 1 && rhs_cs != 1;
    if !parallel && k > 0 && m <= 48 && n > m && (k * n >= 1 << 19 || (rhs_by_columns && k * n >= 1 << 16)) {
        // A few rows times a weight matrix larger than the L2 cache (a decoder step on a shard of
        // 32 rows: (32, 640) · (640, 1024)), or times a transposed weight (the input gradient
        // `g Wᵀ`), ran at half to three quarters of the rate of the transposed product
        // `dstᵀ (n, m) = rhsᵀ lhsᵀ` with the same operands (`gemm` 0.19, AVX2: 46–50 against
        // 86–101 GFLOP/s for the former, 49–74 against 95–99 for the latter, including the
        // transposition back), so take that route. (`n > m` keeps the transposed call, whose row
        // count is `n`, off this branch.)
        let t = gemm_fresh((n, m, k), (rhs, rhs_cs, rhs_rs), (lhs, lhs_cs, lhs_rs), false);
        for r in 0..m {
            let col = t[r..].iter().step_by(m);
            // SAFETY: row r of the destination, n elements, as the caller vouches; written
            // through the pointer (it may not be initialised yet unless accumulating).
            for (j, x) in col.enumerate() {
                unsafe {
                    let d = dst.add(r * dst_rs + j);
                    d.write(if accumulate { d.read() + x } else { *x });
                }
            }
        }
        return;
    }
    let parallelism = if parallel { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    // SAFETY: the asserts above keep every element gemm reads inside the operands' slices; the
    // caller vouches for the destination.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

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

/// How many of `b` batch rows each thread takes: the batch split across the pool, at least
/// `at_least` rows a piece. The sequence kernels take 8 (smaller products lose more to the split
/// than they gain); the convolution, whose images are each a whole product, 1.
fn per_thread(b: usize, at_least: usize) -> usize {
    let threads = rayon::current_num_threads().clamp(1, (b / at_least).max(1));
    b.div_ceil(threads).max(1)
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

/// `Σ_j x_j y_j` with eight partial sums (so the loop vectorises).
#[inline(always)]
fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f32 = xc.remainder().iter().zip(yc.remainder()).map(|(a, b)| a * b).sum();
    for (x, y) in xc.zip(yc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
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

/// What the addressing's backward pass reads of one batch row, saved by the forward pass
/// (Graves et al. 2014, eq. 5–9), from the head's raw outputs `raw = [k (M), β̂, ĝ, ŝ (S), γ̂]`:
/// `β = softplus β̂`, `g = σ(ĝ)`, `s = softmax ŝ`, `γ = 1 + softplus γ̂`, as
/// [`crate::attention::memory::HeadParams::from_raw`] squashes them. Stored per row as
/// `[sim, mem_norm, wc, wg, ws, w (N each), s (S), |k|, β, g, γ]`.
struct Addressing<'a> {
    /// Cosine similarities `K_i` and memory-row norms.
    sim: &'a [f32],
    mem_norm: &'a [f32],
    /// Content, interpolated, shifted and final weightings.
    wc: &'a [f32],
    wg: &'a [f32],
    ws: &'a [f32],
    w: &'a [f32],
    shift: &'a [f32],
    key_norm: f32,
    beta: f32,
    gate: f32,
    gamma: f32,
}

/// Floats saved per batch row by the addressing's forward pass for `N` locations, `S` shifts.
fn address_saved_len(n: usize, s: usize) -> usize {
    6 * n + s + 4
}

impl<'a> Addressing<'a> {
    /// Reads a row saved by [`address_row`].
    fn view(saved: &'a [f32], n: usize) -> Self {
        let (sim, rest) = saved.split_at(n);
        let (mem_norm, rest) = rest.split_at(n);
        let (wc, rest) = rest.split_at(n);
        let (wg, rest) = rest.split_at(n);
        let (ws, rest) = rest.split_at(n);
        let (w, rest) = rest.split_at(n);
        let (shift, s) = rest.split_at(rest.len() - 4);
        Addressing { sim, mem_norm, wc, wg, ws, w, shift, key_norm: s[0], beta: s[1], gate: s[2], gamma: s[3] }
    }
}

fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `ln x` for positive normal `x`, to about 1 ulp of the result, without branches (vectorises):
/// `x = 2^e m` with `m ∈ [√½, √2)`, and `ln m = ln(1 + f)` by the classic degree-9 series fit
/// (Cephes' `logf` coefficients) on `f ∈ [√½ − 1, √2 − 1)`.
#[inline(always)]
pub fn ln_fast(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 126; // x = 2^e · m, m ∈ [½, 1)
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let small = m < std::f32::consts::FRAC_1_SQRT_2;
    e -= small as i32;
    let f = if small { m + m - 1.0 } else { m - 1.0 };
    let z = f * f;
    let p = 3.333_333e-1
        + f * (-2.499_999_4e-1
            + f * (2.000_071_4e-1
                + f * (-1.666_805_8e-1
                    + f * (1.424_932_3e-1
                        + f * (-1.242_014_1e-1 + f * (1.167_699_9e-1 + f * (-1.151_461e-1 + f * 7.037_683_6e-2)))))));
    let ef = e as f32;
    f * z * p - 0.5 * z + f + ef * (-2.121_944_4e-4) + ef * 0.693_359_4
}

/// `softmax(x)` in place, stable.
#[inline(always)]
fn softmax_in_place(x: &mut [f32]) {
    // Eight-lane maximum and sum, and the exponentials in a loop of their own: a running scalar
    // sum in the same loop would keep `exp_fast` from vectorising.
    let mut lanes = [f32::MIN; 8];
    let chunks = x.chunks_exact(8);
    let mut max = chunks.remainder().iter().fold(f32::MIN, |a, &v| a.max(v));
    for c in chunks {
        for l in 0..8 {
            lanes[l] = lanes[l].max(c[l]);
        }
    }
    max = lanes.iter().fold(max, |a, &v| a.max(v));
    x.iter_mut().for_each(|v| *v = exp_fast(*v - max));
    let mut acc = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..8 {
            acc[l] += c[l];
        }
    }
    let inv = 1.0 / (acc.iter().sum::<f32>() + tail);
    x.iter_mut().for_each(|v| *v *= inv);
}

/// `out[i] += s · x[(i − offset) mod N]` for all `i`: a circular shift as two contiguous runs.
#[inline(always)]
fn add_rolled(out: &mut [f32], x: &[f32], offset: isize, s: f32) {
    let n = x.len();
    let k = offset.rem_euclid(n as isize) as usize; // out[i] reads x[i − k]
    let (head, tail) = out.split_at_mut(k);
    head.iter_mut().zip(&x[n - k..]).for_each(|(o, v)| *o += s * v);
    tail.iter_mut().zip(&x[..n - k]).for_each(|(o, v)| *o += s * v);
}

/// `Σ_i a[i] · x[(i − offset) mod N]`.
#[inline(always)]
fn dot_rolled(a: &[f32], x: &[f32], offset: isize) -> f32 {
    let n = x.len();
    let k = offset.rem_euclid(n as isize) as usize;
    dot(&a[..k], &x[n - k..]) + dot(&a[k..], &x[..n - k])
}

/// Forward of the addressing of one row: `mem (N, M)`, `w_prev (N)`, `raw (M + 3 + S)`; writes
/// everything the backward needs into `saved` ([`Addressing`]'s layout), `w` included.
#[inline(always)]
fn address_row(mem: &[f32], w_prev: &[f32], raw: &[f32], m: usize, saved: &mut [f32]) {
    const EPS: f32 = crate::attention::memory::EPS;
    let n = w_prev.len();
    let s_len = raw.len() - m - 3;
    let half = (s_len / 2) as isize;
    let key = &raw[..m];
    let key_norm = (dot(key, key) + EPS).sqrt();
    let (sim, rest) = saved.split_at_mut(n);
    let (mem_norm, rest) = rest.split_at_mut(n);
    let (wc, rest) = rest.split_at_mut(n);
    let (wg, rest) = rest.split_at_mut(n);
    let (ws, rest) = rest.split_at_mut(n);
    let (w, rest) = rest.split_at_mut(n);
    let (shift, scalars) = rest.split_at_mut(s_len);
    for ((row, k), norm) in mem.chunks_exact(m).zip(sim.iter_mut()).zip(mem_norm.iter_mut()) {
        *norm = dot(row, row);
        *k = dot(row, key);
    }
    // The square roots and divisions in a loop of their own, where they vectorise.
    for (k, norm) in sim.iter_mut().zip(mem_norm.iter_mut()) {
        *norm = (*norm + EPS).sqrt();
        *k /= *norm * key_norm; // eq. 6
    }
    let (beta, gate, gamma) = (softplus(raw[m]), sigmoid_fast(raw[m + 1]), 1.0 + softplus(raw[m + 2 + s_len]));
    shift.copy_from_slice(&raw[m + 2..m + 2 + s_len]);
    softmax_in_place(shift);
    wc.iter_mut().zip(sim.iter()).for_each(|(c, k)| *c = beta * k);
    softmax_in_place(wc); // eq. 5
    wg.iter_mut().zip(wc.iter().zip(w_prev)).for_each(|(o, (c, p))| *o = p + gate * (c - p)); // eq. 7
    ws.fill(0.0);
    for (j, &s) in shift.iter().enumerate() {
        add_rolled(ws, wg, j as isize - half, s); // eq. 8
    }
    w.iter_mut().zip(ws.iter()).for_each(|(o, x)| *o = gamma * ln_fast(x + EPS));
    softmax_in_place(w); // eq. 9
    scalars.copy_from_slice(&[key_norm, beta, gate, gamma]);
}

/// Forward kernel of the fused NTM addressing: `mem (B, N, M)`, `w_prev (B, N)`, `raw (B, L)`
/// → `out (B, N)`, and `saved (B, `[`address_saved_len`]`)` for the backward pass.
pub fn ntm_address_kernel(
    (mem, w_prev, raw): (&[f32], &[f32], &[f32]),
    out: &mut [f32],
    saved: &mut [f32],
    (b, n, m): (usize, usize, usize),
) {
    let l = raw.len() / b.max(1);
    let per = address_saved_len(n, l - m - 3);
    let rows = mem.chunks_exact(n * m).zip(w_prev.chunks_exact(n)).zip(raw.chunks_exact(l));
    wide(
        #[inline(always)]
        || {
            for ((((mem, w_prev), raw), out), saved) in
                rows.zip(out.chunks_exact_mut(n)).zip(saved.chunks_exact_mut(per))
            {
                address_row(mem, w_prev, raw, m, saved);
                out.copy_from_slice(Addressing::view(saved, n).w);
            }
        },
    )
}

/// Backward of [`ntm_address_kernel`] from `g (B, N)` and the forward's `saved` rows: writes
/// `dmem (B, N, M)`, `dw_prev (B, N)` and `draw (B, L)` (the steps of eq. 9 back to eq. 5, then
/// the squashings).
pub fn ntm_address_backward_kernel(
    (mem, w_prev, raw, saved): (&[f32], &[f32], &[f32], &[f32]),
    g: &[f32],
    (dmem, dw_prev, draw): (&mut [f32], &mut [f32], &mut [f32]),
    (b, n, m): (usize, usize, usize),
) {
    const EPS: f32 = crate::attention::memory::EPS;
    let l = raw.len() / b.max(1);
    let s_len = l - m - 3;
    let half = (s_len / 2) as isize;
    let per = address_saved_len(n, s_len);
    wide(
        #[inline(always)]
        || {
            let (mut du, mut dwg, mut dz, mut tmp) =
                (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
            let mut ds = vec![0.0f32; s_len];
            for r in 0..b {
                let (mem, raw) = (&mem[r * n * m..(r + 1) * n * m], &raw[r * l..(r + 1) * l]);
                let dw = &g[r * n..(r + 1) * n];
                let a = Addressing::view(&saved[r * per..(r + 1) * per], n);
                // Sharpening: w = softmax(u), u_i = γ ln(w̃_i + ε); du/dw̃ = γ / (w̃ + ε).
                let wd = dot(a.w, dw);
                du.iter_mut().zip(a.w.iter().zip(dw)).for_each(|(o, (w, d))| *o = w * (d - wd));
                tmp.iter_mut().zip(a.ws).for_each(|(t, x)| *t = ln_fast(x + EPS));
                let dgamma = dot(&du, &tmp);
                du.iter_mut().zip(a.ws).for_each(|(d, x)| *d *= a.gamma / (x + EPS)); // now dL/dw̃
                // Shift: w̃_i = Σ_j w^g_{(i − o_j) mod N} s_j, so dw^g = Σ_j s_j dw̃ rolled back.
                dwg.fill(0.0);
                for (j, &s) in a.shift.iter().enumerate() {
                    let offset = j as isize - half;
                    add_rolled(&mut dwg, &du, -offset, s);
                    ds[j] = dot_rolled(&du, a.wg, offset);
                }
                // Interpolation: w^g = w_prev + g (w^c − w_prev).
                let w_prev = &w_prev[r * n..(r + 1) * n];
                tmp.iter_mut().zip(a.wc.iter().zip(w_prev)).for_each(|(t, (c, p))| *t = c - p);
                let dgate = dot(&dwg, &tmp);
                for (o, d) in dw_prev[r * n..(r + 1) * n].iter_mut().zip(&dwg) {
                    *o = (1.0 - a.gate) * d;
                }
                // Content: w^c = softmax(β K).
                let dotc = a.gate * dot(a.wc, &dwg);
                dz.iter_mut().zip(a.wc.iter().zip(&dwg)).for_each(|(o, (w, d))| *o = w * (a.gate * d - dotc));
                let dbeta = dot(&dz, a.sim);
                // Cosine similarity K_i = (M_i · k) / (|M_i| |k|).
                let key = &raw[..m];
                let draw_row = &mut draw[r * l..(r + 1) * l];
                draw_row[..m].fill(0.0);
                let mut dkey_norm = 0.0f32;
                let dmem_rows = dmem[r * n * m..(r + 1) * n * m].chunks_exact_mut(m);
                for (i, (row, drow)) in mem.chunks_exact(m).zip(dmem_rows).enumerate() {
                    let dk = a.beta * dz[i];
                    let ddot = dk / (a.mem_norm[i] * a.key_norm);
                    let dnorm = -dk * a.sim[i] / (a.mem_norm[i] * a.mem_norm[i]);
                    dkey_norm -= dk * a.sim[i] / a.key_norm;
                    for ((dm, &x), (dkey, &k)) in drow.iter_mut().zip(row).zip(draw_row[..m].iter_mut().zip(key)) {
                        *dm = ddot * k + dnorm * x;
                        *dkey += ddot * x;
                    }
                }
                for (dkey, &k) in draw_row[..m].iter_mut().zip(key) {
                    *dkey += dkey_norm * k / a.key_norm;
                }
                // The squashings: softplus' = σ, σ' = σ (1 − σ), softmax's Jacobian.
                draw_row[m] = dbeta * sigmoid_fast(raw[m]);
                draw_row[m + 1] = dgate * a.gate * (1.0 - a.gate);
                let sd: f32 = a.shift.iter().zip(&ds).map(|(s, d)| s * d).sum();
                for (j, (s, d)) in a.shift.iter().zip(&ds).enumerate() {
                    draw_row[m + 2 + j] = s * (d - sd);
                }
                draw_row[m + 2 + s_len] = dgamma * sigmoid_fast(raw[m + 2 + s_len]);
            }
        },
    )
}

/// Forward kernel of the NTM write (eq. 3–4) by `H` heads: `mem (B, N, M)`, `w (B, H, N)`,
/// `erase, add (B, H, M)` → `out[i, m] = M[i, m] ∏_h (1 − w_hi e_hm) + Σ_h w_hi a_hm`.
pub fn ntm_write_kernel(
    (mem, w, erase, add): (&[f32], &[f32], &[f32], &[f32]),
    out: &mut [f32],
    (b, heads, n, m): (usize, usize, usize, usize),
) {
    wide(
        #[inline(always)]
        || {
            for r in 0..b {
                let (w, e, a) = (&w[r * heads * n..], &erase[r * heads * m..], &add[r * heads * m..]);
                let rows = mem[r * n * m..(r + 1) * n * m].chunks_exact(m);
                for (i, (x, o)) in rows.zip(out[r * n * m..(r + 1) * n * m].chunks_exact_mut(m)).enumerate() {
                    o.copy_from_slice(x);
                    for h in 0..heads {
                        let (wh, eh) = (w[h * n + i], &e[h * m..(h + 1) * m]);
                        // Erasures multiply (in any order), then the additions.
                        o.iter_mut().zip(eh).for_each(|(o, e)| *o *= 1.0 - wh * e);
                    }
                    for h in 0..heads {
                        let (wh, ah) = (w[h * n + i], &a[h * m..(h + 1) * m]);
                        o.iter_mut().zip(ah).for_each(|(o, a)| *o += wh * a);
                    }
                }
            }
        },
    )
}

/// Backward of [`ntm_write_kernel`] from `g (B, N, M)`: writes `dmem`, `dw`, `derase`, `dadd`.
pub fn ntm_write_backward_kernel(
    (mem, w, erase, add): (&[f32], &[f32], &[f32], &[f32]),
    g: &[f32],
    (dmem, dw, derase, dadd): (&mut [f32], &mut [f32], &mut [f32], &mut [f32]),
    (b, heads, n, m): (usize, usize, usize, usize),
) {
    dw.fill(0.0);
    derase.fill(0.0);
    dadd.fill(0.0);
    wide(
        #[inline(always)]
        || {
            // `kept` is ∏ over all heads' erase factors, `others` over all but head h (recomputed
            // rather than divided out: a factor may be exactly 0).
            let (mut kept, mut others) = (vec![0.0f32; m], vec![0.0f32; m]);
            for r in 0..b {
                let (w, e, a) =
                    (&w[r * heads * n..(r + 1) * heads * n], &erase[r * heads * m..], &add[r * heads * m..]);
                let (dw, de, da) = (&mut dw[r * heads * n..], &mut derase[r * heads * m..], &mut dadd[r * heads * m..]);
                for i in 0..n {
                    let at = (r * n + i) * m;
                    let (x, gr, dx) = (&mem[at..at + m], &g[at..at + m], &mut dmem[at..at + m]);
                    kept.fill(1.0);
                    for h in 0..heads {
                        let wh = w[h * n + i];
                        kept.iter_mut().zip(&e[h * m..(h + 1) * m]).for_each(|(k, e)| *k *= 1.0 - wh * e);
                    }
                    dx.iter_mut().zip(gr).zip(&kept).for_each(|((d, g), k)| *d = g * k);
                    for h in 0..heads {
                        let wh = w[h * n + i];
                        others.fill(1.0);
                        for k in (0..heads).filter(|&k| k != h) {
                            let wk = w[k * n + i];
                            others.iter_mut().zip(&e[k * m..(k + 1) * m]).for_each(|(o, e)| *o *= 1.0 - wk * e);
                        }
                        let (eh, ah) = (&e[h * m..(h + 1) * m], &a[h * m..(h + 1) * m]);
                        let (deh, dah) = (&mut de[h * m..(h + 1) * m], &mut da[h * m..(h + 1) * m]);
                        let mut dwh = 0.0f32;
                        for j in 0..m {
                            let erased = gr[j] * x[j] * others[j]; // ∂out/∂(w_hi e_hj) = −erased
                            dwh += gr[j] * ah[j] - erased * eh[j];
                            deh[j] -= erased * wh;
                            dah[j] += gr[j] * wh;
                        }
                        dw[h * n + i] += dwh;
                    }
                }
            }
        },
    )
}

/// Backends with the fused kernels.
#[backend_extension(Flex, Autodiff)]
pub trait FusedOps: Backend {
    /// `z (B, 4H)`, `c (B, H)` → `[h', c'] (B, 2H)`.
    fn lstm_gates(z: FloatTensor<Self>, c: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `x (N, V)`, `t (N)` class indices as floats (not differentiated) → `(N)`.
    fn log_softmax_pick(x: FloatTensor<Self>, t: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Additive attention scores: `keys (B, S, A)`, `wq (B, A)`, `v (A)` → `(B, S)`.
    fn additive_scores(keys: FloatTensor<Self>, wq: FloatTensor<Self>, v: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `tanh x` elementwise.
    fn unary_tanh(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `σ(x)` elementwise.
    fn unary_sigmoid(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `e^x` elementwise.
    fn unary_exp(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// An LSTM layer over a sequence: `zx (B, T, 4H)`, `w_h (H, 4H)`, `h0, c0 (B, H)`, `keep
    /// (B, T)` (1 at padding; not differentiated) → `[h_t, c_t] (B, T, 2H)`.
    fn lstm_sequence(
        zx: FloatTensor<Self>,
        w_h: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        keep: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// The NTM addressing (eq. 5–9) from a head's raw outputs: `memory (B, N, M)`, `w_prev
    /// (B, N)`, `raw (B, M + 3 + S)` → `w (B, N)`.
    fn ntm_address(memory: FloatTensor<Self>, w_prev: FloatTensor<Self>, raw: FloatTensor<Self>) -> FloatTensor<Self>;
    /// The NTM write by `H` heads: `memory (B, N, M)`, `w (B, H, N)`, `erase, add (B, H, M)`
    /// → the new memory `(B, N, M)`.
    fn ntm_write(
        memory: FloatTensor<Self>,
        w: FloatTensor<Self>,
        erase: FloatTensor<Self>,
        add: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
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
    /// The identity forward; backward, the gradient clamped elementwise to `[−limit, limit]`.
    fn grad_clamp(x: FloatTensor<Self>, limit: f32) -> FloatTensor<Self>;
    /// A 3×3 convolution with padding 1 and stride 1: `x (B, C, H, W)`, `weight (O, C, 3, 3)`,
    /// `bias (O)` → `(B, O, H, W)`.
    fn conv3x3(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// The backward kernels an inner (non-autodiff) backend provides.
pub trait FusedBackward: Backend {
    /// `z (B, 4H)`, `c (B, H)`, `g (B, 2H)` → `[dz, dc] (B, 5H)`.
    fn lstm_gates_backward(z: FloatTensor<Self>, c: FloatTensor<Self>, g: FloatTensor<Self>) -> FloatTensor<Self>;
    /// [`FusedOps::log_softmax_pick`] that also returns each row's `log Σ exp x` `(N)`.
    fn log_softmax_pick_forward(x: FloatTensor<Self>, t: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// `x (N, V)`, `t (N)`, `lse (N)` from the forward pass, `g (N)` → `dx (N, V)`.
    fn log_softmax_pick_backward(
        x: FloatTensor<Self>,
        t: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        g: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// From `keys`, `wq`, `v` and `g (B, S)` → `[dkeys, dwq, dv]`.
    fn additive_scores_backward(
        keys: FloatTensor<Self>,
        wq: FloatTensor<Self>,
        v: FloatTensor<Self>,
        g: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3];
    /// `f(x)` for one of the [`Unary`] functions.
    fn unary_forward(x: FloatTensor<Self>, kind: Unary) -> FloatTensor<Self>;
    /// `g · f'(x)` from `y = f(x)`.
    fn unary_backward(y: FloatTensor<Self>, g: FloatTensor<Self>, kind: Unary) -> FloatTensor<Self>;
    /// [`FusedOps::lstm_sequence`] that also returns the pre-activations `z (B, T, 4H)`.
    fn lstm_sequence_forward(
        zx: FloatTensor<Self>,
        w_h: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        keep: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// From `z`, `out`, the inputs and `g (B, T, 2H)` → `[dzx, dw_h, dh0, dc0]`.
    fn lstm_sequence_backward(state: SequenceState<Self>, g: FloatTensor<Self>) -> [FloatTensor<Self>; 4];
    /// [`FusedOps::ntm_address`] that also returns what its backward reads, `(B, 6N + S + 4)`.
    fn ntm_address_forward(
        memory: FloatTensor<Self>,
        w_prev: FloatTensor<Self>,
        raw: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// From `memory`, `w_prev`, `raw`, the forward's `saved` and `g (B, N)` → `[dmemory,
    /// dw_prev, draw]`.
    fn ntm_address_backward(
        memory: FloatTensor<Self>,
        w_prev: FloatTensor<Self>,
        raw: FloatTensor<Self>,
        saved: FloatTensor<Self>,
        g: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3];
    /// From the write's inputs and `g (B, N, M)` → `[dmemory, dw, derase, dadd]`.
    fn ntm_write_backward(
        memory: FloatTensor<Self>,
        w: FloatTensor<Self>,
        erase: FloatTensor<Self>,
        add: FloatTensor<Self>,
        g: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 4];
    /// [`FusedOps::linear`] over inputs in parts `xs` (`(N, I_p)` each, `w` their stacked rows).
    fn linear_forward(xs: Vec<FloatTensor<Self>>, w: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;
    /// From the parts, `w` and `g (N, O)` → `[dx_p…, dw, db]`, each only where `need` says.
    fn linear_backward(
        xs: Vec<FloatTensor<Self>>,
        w: FloatTensor<Self>,
        g: FloatTensor<Self>,
        need: &[bool],
    ) -> Vec<Option<FloatTensor<Self>>>;
    /// From `x`, `weight` and `g (B, O, H, W)` → `[dx, dweight, dbias]`, each only where `need`
    /// says.
    fn conv3x3_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        g: FloatTensor<Self>,
        need: [bool; 3],
    ) -> [Option<FloatTensor<Self>>; 3];
}

/// What the backward pass of [`FusedOps::lstm_sequence`] keeps from its forward pass.
#[derive(Debug, Clone)]
pub struct SequenceState<B: Backend> {
    z: FloatTensor<B>,
    out: FloatTensor<B>,
    w_h: FloatTensor<B>,
    h0: FloatTensor<B>,
    c0: FloatTensor<B>,
    keep: FloatTensor<B>,
}

fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() { t } else { t.to_contiguous() }
}

fn flex_f32<const D: usize>(data: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, Shape::new(shape)))
}

impl FusedOps for Flex {
    fn grad_clamp(x: FlexTensor, _limit: f32) -> FlexTensor {
        x
    }

    fn lstm_gates(z: FlexTensor, c: FlexTensor) -> FlexTensor {
        let (z, c) = (contiguous(z), contiguous(c));
        let [b, h4] = z.shape().dims();
        let h = h4 / 4;
        let mut out = vec![0.0f32; b * 2 * h];
        lstm_gates_kernel(z.as_slice().expect("f32"), c.as_slice().expect("f32"), &mut out, h);
        flex_f32(out, [b, 2 * h])
    }

    fn log_softmax_pick(x: FlexTensor, t: FlexTensor) -> FlexTensor {
        Self::log_softmax_pick_forward(x, t).0
    }

    fn additive_scores(keys: FlexTensor, wq: FlexTensor, v: FlexTensor) -> FlexTensor {
        let [keys, wq, v] = [keys, wq, v].map(contiguous);
        let [b, s, _] = keys.shape().dims();
        let mut out = vec![0.0f32; b * s];
        additive_scores_kernel(f32s(&keys), f32s(&wq), f32s(&v), &mut out);
        flex_f32(out, [b, s])
    }

    fn unary_tanh(x: FlexTensor) -> FlexTensor {
        Self::unary_forward(x, Unary::Tanh)
    }

    fn unary_sigmoid(x: FlexTensor) -> FlexTensor {
        Self::unary_forward(x, Unary::Sigmoid)
    }

    fn unary_exp(x: FlexTensor) -> FlexTensor {
        Self::unary_forward(x, Unary::Exp)
    }

    fn lstm_sequence(zx: FlexTensor, w_h: FlexTensor, h0: FlexTensor, c0: FlexTensor, keep: FlexTensor) -> FlexTensor {
        Self::lstm_sequence_forward(zx, w_h, h0, c0, keep).0
    }

    fn ntm_address(memory: FlexTensor, w_prev: FlexTensor, raw: FlexTensor) -> FlexTensor {
        Self::ntm_address_forward(memory, w_prev, raw).0
    }

    fn ntm_write(memory: FlexTensor, w: FlexTensor, erase: FlexTensor, add: FlexTensor) -> FlexTensor {
        let [memory, w, erase, add] = [memory, w, erase, add].map(contiguous);
        let [b, n, m] = memory.shape().dims();
        let heads = w.shape().dims::<3>()[1];
        let mut out = vec![0.0f32; b * n * m];
        ntm_write_kernel((f32s(&memory), f32s(&w), f32s(&erase), f32s(&add)), &mut out, (b, heads, n, m));
        flex_f32(out, [b, n, m])
    }

    fn linear(x: FlexTensor, w: FlexTensor, b: FlexTensor) -> FlexTensor {
        Self::linear_forward(vec![x], w, b)
    }

    fn linear2(x1: FlexTensor, x2: FlexTensor, w: FlexTensor, b: FlexTensor) -> FlexTensor {
        Self::linear_forward(vec![x1, x2], w, b)
    }

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

fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice().expect("contiguous f32 tensor")
}

impl FusedBackward for Flex {
    fn additive_scores_backward(keys: FlexTensor, wq: FlexTensor, v: FlexTensor, g: FlexTensor) -> [FlexTensor; 3] {
        let [keys, wq, v, g] = [keys, wq, v, g].map(contiguous);
        let [b, s, a] = keys.shape().dims();
        let (mut dkeys, mut dwq, mut dv) = (vec![0.0f32; b * s * a], vec![0.0f32; b * a], vec![0.0f32; a]);
        additive_scores_backward_kernel((f32s(&keys), f32s(&wq), f32s(&v)), f32s(&g), (&mut dkeys, &mut dwq, &mut dv));
        [flex_f32(dkeys, [b, s, a]), flex_f32(dwq, [b, a]), flex_f32(dv, [a])]
    }

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

    fn ntm_address_forward(memory: FlexTensor, w_prev: FlexTensor, raw: FlexTensor) -> (FlexTensor, FlexTensor) {
        let [memory, w_prev, raw] = [memory, w_prev, raw].map(contiguous);
        let [b, n, m] = memory.shape().dims();
        let per = address_saved_len(n, raw.shape().dims::<2>()[1] - m - 3);
        let (mut out, mut saved) = (vec![0.0f32; b * n], vec![0.0f32; b * per]);
        ntm_address_kernel((f32s(&memory), f32s(&w_prev), f32s(&raw)), &mut out, &mut saved, (b, n, m));
        (flex_f32(out, [b, n]), flex_f32(saved, [b, per]))
    }

    fn ntm_address_backward(
        memory: FlexTensor,
        w_prev: FlexTensor,
        raw: FlexTensor,
        saved: FlexTensor,
        g: FlexTensor,
    ) -> [FlexTensor; 3] {
        let [memory, w_prev, raw, saved, g] = [memory, w_prev, raw, saved, g].map(contiguous);
        let [b, n, m] = memory.shape().dims();
        let l = raw.shape().dims::<2>()[1];
        let (mut dmem, mut dw_prev, mut draw) = (vec![0.0f32; b * n * m], vec![0.0f32; b * n], vec![0.0f32; b * l]);
        ntm_address_backward_kernel(
            (f32s(&memory), f32s(&w_prev), f32s(&raw), f32s(&saved)),
            f32s(&g),
            (&mut dmem, &mut dw_prev, &mut draw),
            (b, n, m),
        );
        [flex_f32(dmem, [b, n, m]), flex_f32(dw_prev, [b, n]), flex_f32(draw, [b, l])]
    }

    fn ntm_write_backward(
        memory: FlexTensor,
        w: FlexTensor,
        erase: FlexTensor,
        add: FlexTensor,
        g: FlexTensor,
    ) -> [FlexTensor; 4] {
        let [memory, w, erase, add, g] = [memory, w, erase, add, g].map(contiguous);
        let [b, n, m] = memory.shape().dims();
        let heads = w.shape().dims::<3>()[1];
        let (mut dmem, mut dw) = (vec![0.0f32; b * n * m], vec![0.0f32; b * heads * n]);
        let (mut de, mut da) = (vec![0.0f32; b * heads * m], vec![0.0f32; b * heads * m]);
        ntm_write_backward_kernel(
            (f32s(&memory), f32s(&w), f32s(&erase), f32s(&add)),
            f32s(&g),
            (&mut dmem, &mut dw, &mut de, &mut da),
            (b, heads, n, m),
        );
        [
            flex_f32(dmem, [b, n, m]),
            flex_f32(dw, [b, heads, n]),
            flex_f32(de, [b, heads, m]),
            flex_f32(da, [b, heads, m]),
        ]
    }

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

/// A linear layer over `P − 2` input parts under autodiff (`P` parents: the parts, `w`, `b`).
fn linear_autodiff<B: Backend + FusedBackward, C: CheckpointStrategy, const P: usize>(
    xs: Vec<FloatTensor<Autodiff<B, C>>>,
    w: FloatTensor<Autodiff<B, C>>,
    b: FloatTensor<Autodiff<B, C>>,
) -> FloatTensor<Autodiff<B, C>> {
    #[derive(Debug)]
    struct LinearOp;

    impl<B: Backend + FusedBackward, const P: usize> Backward<B, P> for LinearOp {
        type State = (Vec<B::FloatTensorPrimitive>, B::FloatTensorPrimitive);

        fn backward(self, ops: Ops<Self::State, P>, grads: &mut Gradients, _: &mut Checkpointer) {
            let g = grads.consume::<B>(&ops.node);
            let (xs, w) = ops.state;
            let need: Vec<bool> = ops.parents.iter().map(Option::is_some).collect();
            let all = B::linear_backward(xs, w, g, &need);
            for (node, grad) in ops.parents.into_iter().zip(all) {
                if let (Some(node), Some(grad)) = (node, grad) {
                    grads.register::<B>(node.id, grad);
                }
            }
        }
    }

    assert_eq!(xs.len() + 2, P, "linear: {} parts need {} parents", xs.len(), xs.len() + 2);
    let parents: Vec<_> = xs.iter().map(|x| x.node()).chain([w.node(), b.node()]).collect();
    let parents: [_; P] = parents.try_into().expect("P parents");
    let xs: Vec<_> = xs.into_iter().map(|x| x.into_primitive()).collect();
    let (w, b) = (w.into_primitive(), b.into_primitive());
    match LinearOp.prepare::<C>(parents).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let out = B::linear_forward(xs.clone(), w.clone(), b);
            prep.finish((xs, w), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::linear_forward(xs, w, b)),
    }
}

/// A [`Unary`] function under autodiff: its backward pass keeps only the output.
fn unary_autodiff<B: Backend + FusedBackward, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    kind: Unary,
) -> FloatTensor<Autodiff<B, C>> {
    #[derive(Debug)]
    struct Elementwise(Unary);

    impl<B: Backend + FusedBackward> Backward<B, 1> for Elementwise {
        type State = B::FloatTensorPrimitive;

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let g = grads.consume::<B>(&ops.node);
            if let [Some(node)] = ops.parents {
                grads.register::<B>(node.id, B::unary_backward(ops.state, g, self.0));
            }
        }
    }

    match Elementwise(kind).prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let y = B::unary_forward(x.into_primitive(), kind);
            prep.finish(y.clone(), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::unary_forward(x.into_primitive(), kind)),
    }
}

impl<B: Backend + FusedOps + FusedBackward, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn conv3x3(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Conv;

        impl<B: Backend + FusedBackward> Backward<B, 3> for Conv {
            type State = (B::FloatTensorPrimitive, B::FloatTensorPrimitive);

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
                let g = grads.consume::<B>(&ops.node);
                let (x, weight) = ops.state;
                let need = ops.parents.each_ref().map(Option::is_some);
                let all = B::conv3x3_backward(x, weight, g, need);
                for (node, grad) in ops.parents.into_iter().zip(all) {
                    if let (Some(node), Some(grad)) = (node, grad) {
                        grads.register::<B>(node.id, grad);
                    }
                }
            }
        }

        let parents = [x.node(), weight.node(), bias.node()];
        let [x, weight, bias] = [x, weight, bias].map(|t| t.into_primitive());
        match Conv.prepare::<C>(parents).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = B::conv3x3(x.clone(), weight.clone(), bias);
                prep.finish((x, weight), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv3x3(x, weight, bias)),
        }
    }

    fn grad_clamp(x: FloatTensor<Self>, limit: f32) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ClampGrad(f32);

        impl<B: Backend> Backward<B, 1> for ClampGrad {
            type State = ();

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let g = grads.consume::<B>(&ops.node);
                if let [Some(node)] = ops.parents {
                    let (lo, hi) = (Scalar::Float(-self.0 as f64), Scalar::Float(self.0 as f64));
                    grads.register::<B>(node.id, B::float_clamp(g, lo, hi));
                }
            }
        }

        match ClampGrad(limit).prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((), x.into_primitive()),
            OpsKind::UnTracked(prep) => prep.finish(x.into_primitive()),
        }
    }

    fn unary_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        unary_autodiff::<B, C>(x, Unary::Tanh)
    }

    fn additive_scores(keys: FloatTensor<Self>, wq: FloatTensor<Self>, v: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Scores;

        impl<B: Backend + FusedBackward> Backward<B, 3> for Scores {
            type State = [B::FloatTensorPrimitive; 3];

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
                let g = grads.consume::<B>(&ops.node);
                let [keys, wq, v] = ops.state;
                let all = B::additive_scores_backward(keys, wq, v, g);
                for (node, grad) in ops.parents.into_iter().zip(all) {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, grad);
                    }
                }
            }
        }

        let parents = [keys.node(), wq.node(), v.node()];
        let [keys, wq, v] = [keys, wq, v].map(|t| t.into_primitive());
        match Scores.prepare::<C>(parents).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = B::additive_scores(keys.clone(), wq.clone(), v.clone());
                prep.finish([keys, wq, v], out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::additive_scores(keys, wq, v)),
        }
    }

    fn unary_sigmoid(x: FloatTensor<Self>) -> FloatTensor<Self> {
        unary_autodiff::<B, C>(x, Unary::Sigmoid)
    }

    fn unary_exp(x: FloatTensor<Self>) -> FloatTensor<Self> {
        unary_autodiff::<B, C>(x, Unary::Exp)
    }

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
            type State = [B::FloatTensorPrimitive; 3];

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [node_x] = ops.parents;
                let g = grads.consume::<B>(&ops.node);
                let [x, t, lse] = ops.state;
                if let Some(node) = node_x {
                    grads.register::<B>(node.id, B::log_softmax_pick_backward(x, t, lse, g));
                }
            }
        }

        let t = t.into_primitive();
        match Pick.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let xp = x.into_primitive();
                let (out, lse) = B::log_softmax_pick_forward(xp.clone(), t.clone());
                prep.finish([xp, t, lse], out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::log_softmax_pick(x.into_primitive(), t)),
        }
    }

    fn lstm_sequence(
        zx: FloatTensor<Self>,
        w_h: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        keep: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Sequence;

        impl<B: Backend + FusedBackward> Backward<B, 4> for Sequence {
            type State = SequenceState<B>;

            fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
                let g = grads.consume::<B>(&ops.node);
                let all = B::lstm_sequence_backward(ops.state, g);
                for (node, grad) in ops.parents.into_iter().zip(all) {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, grad);
                    }
                }
            }
        }

        let keep = keep.into_primitive();
        let parents = [zx.node(), w_h.node(), h0.node(), c0.node()];
        let [zx, w_h, h0, c0] = [zx, w_h, h0, c0].map(|t| t.into_primitive());
        match Sequence.prepare::<C>(parents).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (out, z) = B::lstm_sequence_forward(zx, w_h.clone(), h0.clone(), c0.clone(), keep.clone());
                prep.finish(SequenceState { z, out: out.clone(), w_h, h0, c0, keep }, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::lstm_sequence(zx, w_h, h0, c0, keep)),
        }
    }

    fn linear(x: FloatTensor<Self>, w: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        linear_autodiff::<B, C, 3>(vec![x], w, b)
    }

    fn ntm_write(
        memory: FloatTensor<Self>,
        w: FloatTensor<Self>,
        erase: FloatTensor<Self>,
        add: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Write;

        impl<B: Backend + FusedBackward> Backward<B, 4> for Write {
            type State = [B::FloatTensorPrimitive; 4];

            fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
                let g = grads.consume::<B>(&ops.node);
                let [memory, w, erase, add] = ops.state;
                let all = B::ntm_write_backward(memory, w, erase, add, g);
                for (node, grad) in ops.parents.into_iter().zip(all) {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, grad);
                    }
                }
            }
        }

        let parents = [memory.node(), w.node(), erase.node(), add.node()];
        let [memory, w, erase, add] = [memory, w, erase, add].map(|t| t.into_primitive());
        match Write.prepare::<C>(parents).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = B::ntm_write(memory.clone(), w.clone(), erase.clone(), add.clone());
                prep.finish([memory, w, erase, add], out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::ntm_write(memory, w, erase, add)),
        }
    }

    fn ntm_address(memory: FloatTensor<Self>, w_prev: FloatTensor<Self>, raw: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Address;

        impl<B: Backend + FusedBackward> Backward<B, 3> for Address {
            type State = [B::FloatTensorPrimitive; 4];

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
                let g = grads.consume::<B>(&ops.node);
                let [memory, w_prev, raw, saved] = ops.state;
                let all = B::ntm_address_backward(memory, w_prev, raw, saved, g);
                for (node, grad) in ops.parents.into_iter().zip(all) {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, grad);
                    }
                }
            }
        }

        let parents = [memory.node(), w_prev.node(), raw.node()];
        let [memory, w_prev, raw] = [memory, w_prev, raw].map(|t| t.into_primitive());
        match Address.prepare::<C>(parents).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (out, saved) = B::ntm_address_forward(memory.clone(), w_prev.clone(), raw.clone());
                prep.finish([memory, w_prev, raw, saved], out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::ntm_address(memory, w_prev, raw)),
        }
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
        Unary::Tanh => <Dispatch as FusedOps>::unary_tanh(x),
        Unary::Sigmoid => <Dispatch as FusedOps>::unary_sigmoid(x),
        Unary::Exp => <Dispatch as FusedOps>::unary_exp(x),
    })
}

/// `x` unchanged, but its gradient clamped elementwise to `[−limit, limit]` in the backward
/// pass (Graves 2013 §4 clipped LSTM derivatives this way): put on a recurrent state, it keeps
/// a gradient exploding through time from overflowing while the loss stays finite. On devices
/// other than the CPU it is the identity (no clamping).
pub fn grad_clamp<const D: usize>(x: Tensor<D>, limit: f32) -> Tensor<D> {
    if !is_flex(&x.device()) {
        return x;
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::grad_clamp(x.into_dispatch(), limit))
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
    let out = <Dispatch as FusedOps>::additive_scores(keys.into_dispatch(), wq.into_dispatch(), v.into_dispatch());
    Tensor::from_dispatch(out)
}

/// A linear layer `x W + b` on `x (N, I)` → `(N, O)`. On the CPU one op with its own backward:
/// the bias is the product's starting value, and the gradients are written straight into new
/// buffers (burn's matrix product zero-fills and copies around each of its products, which
/// profiles of the decoder steps showed beside the products themselves).
pub fn linear(x: Tensor<2>, layer: &burn::nn::Linear) -> Tensor<2> {
    match &layer.bias {
        Some(b) if is_flex(&x.device()) => Tensor::from_dispatch(<Dispatch as FusedOps>::linear(
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
        Some(b) if is_flex(&x1.device()) => Tensor::from_dispatch(<Dispatch as FusedOps>::linear2(
            x1.into_dispatch(),
            x2.into_dispatch(),
            layer.weight.val().into_dispatch(),
            b.val().into_dispatch(),
        )),
        _ => layer.forward(Tensor::cat(vec![x1, x2], 1)),
    }
}

/// The NTM addressing (Graves et al. 2014, eq. 5–9: content, interpolation, shift, sharpening)
/// from one head's raw outputs `raw (B, M + 3 + S)` (key, then the unsquashed `β`, `g`, shift
/// logits and `γ`; `S = 2k + 1`), the memory `(B, N, M)` and the previous weighting `(B, N)`:
/// [`crate::attention::memory::address`] of [`crate::attention::memory::HeadParams::from_raw`].
/// On the CPU one op forward and one backward instead of ~40 per head and step.
pub fn ntm_address(memory: Tensor<3>, w_prev: Tensor<2>, raw: Tensor<2>, k: usize) -> Tensor<2> {
    use crate::attention::memory::{HeadParams, address};
    let m = memory.dims()[2];
    assert_eq!(raw.dims()[1], HeadParams::len(m, k), "raw head outputs of the wrong width");
    if !is_flex(&memory.device()) {
        return address(memory, w_prev, &HeadParams::from_raw(raw, m, k));
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::ntm_address(
        memory.into_dispatch(),
        w_prev.into_dispatch(),
        raw.into_dispatch(),
    ))
}

/// The NTM write (eq. 3–4) by `H` heads, `memory (B, N, M)`, weightings `w (B, H, N)`, erase
/// and add vectors `(B, H, M)`: one op on the CPU, [`crate::attention::memory::write_composed`]
/// elsewhere.
pub fn ntm_write(memory: Tensor<3>, w: Tensor<3>, erase: Tensor<3>, add: Tensor<3>) -> Tensor<3> {
    if !is_flex(&memory.device()) {
        return crate::attention::memory::write_composed(memory, w, erase, add);
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::ntm_write(
        memory.into_dispatch(),
        w.into_dispatch(),
        erase.into_dispatch(),
        add.into_dispatch(),
    ))
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
        Some(b) if plain && is_flex(&x.device()) => Tensor::from_dispatch(<Dispatch as FusedOps>::conv3x3(
            x.into_dispatch(),
            conv.weight.val().into_dispatch(),
            b.val().into_dispatch(),
        )),
        _ => conv.forward(x),
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
        return lstm_gates_composed(z, c);
    }
    let out = Tensor::<2>::from_dispatch(<Dispatch as FusedOps>::lstm_gates(z.into_dispatch(), c.into_dispatch()));
    (out.clone().narrow(1, 0, n), out.narrow(1, n, n))
}

/// [`lstm_gates`] composed of tensor operations.
fn lstm_gates_composed(z: Tensor<2>, c: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let n = c.dims()[1];
    let i = sigmoid(z.clone().narrow(1, 0, n));
    let f = sigmoid(z.clone().narrow(1, n, n));
    let u = crate::ops::tanh(z.clone().narrow(1, 2 * n, n));
    let o = sigmoid(z.narrow(1, 3 * n, n));
    let c = f * c + i * u;
    (o * crate::ops::tanh(c.clone()), c)
}

/// An LSTM layer over a whole sequence: `zx (B, T, 4H)` its projected inputs (bias included,
/// [`crate::models::lstm::LstmCell::project_inputs`]), `w_h (H, 4H)` its recurrent weights,
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
        return lstm_sequence_composed(zx, w_h, h0, c0, keep);
    }
    let keep = keep.map_or_else(|| Tensor::<2>::zeros([b, t], &device), |k| k.detach());
    let out = <Dispatch as FusedOps>::lstm_sequence(
        zx.into_dispatch(),
        w_h.into_dispatch(),
        h0.into_dispatch(),
        c0.into_dispatch(),
        keep.into_dispatch(),
    );
    Tensor::<3>::from_dispatch(out)
}

/// [`lstm_sequence`] as a loop of tensor operations (other devices; the tests' reference).
fn lstm_sequence_composed(
    zx: Tensor<3>,
    w_h: Tensor<2>,
    h0: Tensor<2>,
    c0: Tensor<2>,
    keep: Option<Tensor<2>>,
) -> Tensor<3> {
    let [b, t, h4] = zx.dims();
    let (mut h, mut c) = (h0, c0);
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
    fn ln_fast_is_accurate_over_the_range() {
        let mut worst = 0.0f64;
        let mut x = 1.2e-38f32;
        while x < 3e38 {
            let (a, b) = (ln_fast(x) as f64, (x as f64).ln());
            worst = worst.max((a - b).abs() / b.abs().max(1.0));
            x *= 1.0007;
        }
        assert!(worst < 3e-7, "error {worst}");
        assert_eq!(ln_fast(1.0), 0.0);
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
                lstm_sequence_composed(zx, w_h, h0, c0, Some(keep.clone()))
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

    /// A layer with the given weight `(I, O)` and bias `(O)`.
    fn layer(w: Tensor<2>, b: Tensor<1>) -> burn::nn::Linear {
        // `initialized` keeps the tensors as given (tracked leaves or reshapes of them).
        let param = |t| burn::module::Param::initialized(burn::module::ParamId::new(), t);
        burn::nn::Linear {
            weight: param(w),
            bias: Some(burn::module::Param::initialized(burn::module::ParamId::new(), b)),
        }
    }

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
