//! The Neural Turing Machine's addressing ([`ntm_address`], Graves et al. 2014, eq. 5–9: content,
//! interpolation, shift, sharpening, from one head's raw outputs) and its write by several heads
//! ([`ntm_write`], eq. 3–4), each one op forward and one backward instead of dozens per head and
//! step. Both run on the flex backend only: `attention::memory`, which holds the composed
//! pipeline (the reference of these kernels, and their tests), picks one or the other.

use super::autodiff::{Grad, record, record_on_inputs};
use super::math::{dot, exp_fast, ln_fast, sigmoid_fast, softplus, wide};
use super::{contiguous, f32s, flex_f32, is_flex};
use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;

/// The ε of the norms and logarithms (`attention::memory::EPS` is this one, so the fused and
/// the composed addressing agree).
pub const EPS: f32 = 1e-6;

/// What the addressing's backward pass reads of one batch row, saved by the forward pass
/// (Graves et al. 2014, eq. 5–9), from the head's raw outputs `raw = [k (M), β̂, ĝ, ŝ (S), γ̂]`:
/// `β = softplus β̂`, `g = σ(ĝ)`, `s = softmax ŝ`, `γ = 1 + softplus γ̂`, as
/// `attention::memory::HeadParams::from_raw` squashes them. Stored per row as
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
        let (rows, rest) = saved.split_at(6 * n);
        let mut rows = rows.chunks_exact(n);
        let [sim, mem_norm, wc, wg, ws, w] = std::array::from_fn(|_| rows.next().expect("six rows of n"));
        let (shift, s) = rest.split_at(rest.len() - 4);
        Addressing { sim, mem_norm, wc, wg, ws, w, shift, key_norm: s[0], beta: s[1], gate: s[2], gamma: s[3] }
    }
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
    let n = w_prev.len();
    let s_len = raw.len() - m - 3;
    let half = (s_len / 2) as isize;
    let key = &raw[..m];
    let key_norm = (dot(key, key) + EPS).sqrt();
    let (rows, rest) = saved.split_at_mut(6 * n);
    let mut rows = rows.chunks_exact_mut(n);
    let [sim, mem_norm, wc, wg, ws, w] = std::array::from_fn(|_| rows.next().expect("six rows of n"));
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

/// Backends with the fused NTM addressing and write.
#[backend_extension(Flex, Autodiff)]
pub trait NtmOps: Backend {
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
}

/// The NTM ops' kernels an inner (non-autodiff) backend provides.
pub trait NtmBackward: Backend {
    /// [`NtmOps::ntm_address`] that also returns what its backward reads, `(B, 6N + S + 4)`.
    fn ntm_address_forward(
        memory: FloatTensor<Self>,
        w_prev: FloatTensor<Self>,
        raw: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// From `memory`, `w_prev`, `raw`, the forward's `saved` and `g (B, N)` → `[dmemory,
    /// dw_prev, draw]`.
    fn ntm_address_backward(state: [FloatTensor<Self>; 4], g: FloatTensor<Self>) -> [FloatTensor<Self>; 3];
    /// From the write's inputs and `g (B, N, M)` → `[dmemory, dw, derase, dadd]`.
    fn ntm_write_backward(inputs: [FloatTensor<Self>; 4], g: FloatTensor<Self>) -> [FloatTensor<Self>; 4];
}

impl NtmOps for Flex {
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
}

impl NtmBackward for Flex {
    fn ntm_address_forward(memory: FlexTensor, w_prev: FlexTensor, raw: FlexTensor) -> (FlexTensor, FlexTensor) {
        let [memory, w_prev, raw] = [memory, w_prev, raw].map(contiguous);
        let [b, n, m] = memory.shape().dims();
        let per = address_saved_len(n, raw.shape().dims::<2>()[1] - m - 3);
        let (mut out, mut saved) = (vec![0.0f32; b * n], vec![0.0f32; b * per]);
        ntm_address_kernel((f32s(&memory), f32s(&w_prev), f32s(&raw)), &mut out, &mut saved, (b, n, m));
        (flex_f32(out, [b, n]), flex_f32(saved, [b, per]))
    }

    fn ntm_address_backward(state: [FlexTensor; 4], g: FlexTensor) -> [FlexTensor; 3] {
        let [memory, w_prev, raw, saved] = state.map(contiguous);
        let g = contiguous(g);
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

    fn ntm_write_backward(inputs: [FlexTensor; 4], g: FlexTensor) -> [FlexTensor; 4] {
        let [memory, w, erase, add] = inputs.map(contiguous);
        let g = contiguous(g);
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
}

impl<B: Backend + NtmOps + NtmBackward, C: CheckpointStrategy> NtmOps for Autodiff<B, C> {
    fn ntm_address(memory: FloatTensor<Self>, w_prev: FloatTensor<Self>, raw: FloatTensor<Self>) -> FloatTensor<Self> {
        let parents = [memory.node(), w_prev.node(), raw.node()];
        let [memory, w_prev, raw] = [memory, w_prev, raw].map(|t| t.into_primitive());
        let grad: Grad<B, _, _, 3> = |state, g, _| B::ntm_address_backward(state, g);
        record::<B, C, _, _, _, 3>(parents, grad, |tracked| match tracked {
            true => {
                let (out, saved) = B::ntm_address_forward(memory.clone(), w_prev.clone(), raw.clone());
                (out, Some([memory, w_prev, raw, saved]))
            }
            false => (B::ntm_address(memory, w_prev, raw), None),
        })
    }

    fn ntm_write(
        memory: FloatTensor<Self>,
        w: FloatTensor<Self>,
        erase: FloatTensor<Self>,
        add: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        record_on_inputs::<B, C, _, _, 4>(
            [memory, w, erase, add],
            |[memory, w, erase, add]| B::ntm_write(memory, w, erase, add),
            |inputs, g, _| B::ntm_write_backward(inputs, g),
        )
    }
}

/// The NTM addressing (Graves et al. 2014, eq. 5–9: content, interpolation, shift, sharpening)
/// from one head's raw outputs `raw (B, M + 3 + S)` (key, then the unsquashed `β`, `g`, shift
/// logits and `γ`; `S = 2k + 1`), the memory `(B, N, M)` and the previous weighting `(B, N)`:
/// `attention::memory::address` of `attention::memory::HeadParams::from_raw`, in one op forward
/// and one backward instead of ~40 per head and step. On the flex backend only (it panics on
/// another device): `attention::memory::address_raw` checks `raw`'s width and picks this op or
/// the composed pipeline.
pub fn ntm_address(memory: Tensor<3>, w_prev: Tensor<2>, raw: Tensor<2>) -> Tensor<2> {
    assert!(is_flex(&memory.device()), "ntm_address: the fused op runs on the flex backend only");
    Tensor::from_dispatch(<Dispatch as NtmOps>::ntm_address(
        memory.into_dispatch(),
        w_prev.into_dispatch(),
        raw.into_dispatch(),
    ))
}

/// The NTM write (eq. 3–4) by `H` heads, `memory (B, N, M)`, weightings `w (B, H, N)`, erase
/// and add vectors `(B, H, M)`, in one op. On the flex backend only (it panics on another
/// device): `attention::memory::write` picks this op or `attention::memory::write_composed`.
pub fn ntm_write(memory: Tensor<3>, w: Tensor<3>, erase: Tensor<3>, add: Tensor<3>) -> Tensor<3> {
    assert!(is_flex(&memory.device()), "ntm_write: the fused op runs on the flex backend only");
    Tensor::from_dispatch(<Dispatch as NtmOps>::ntm_write(
        memory.into_dispatch(),
        w.into_dispatch(),
        erase.into_dispatch(),
        add.into_dispatch(),
    ))
}
