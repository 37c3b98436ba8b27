//! Introspective attention: addressing, reading and writing an external memory, as in the
//! Neural Turing Machine (Graves, Wayne, Danihelka 2014, §3) and the Differentiable Neural
//! Computer (Graves et al. 2016, Methods).
//!
//! A memory is `(B, N, M)`: `N` locations of width `M` per batch element. A weighting `w` is
//! `(B, N)`, non-negative and (for NTM heads) summing to one. The NTM addressing pipeline, one
//! small function per step:
//!
//! 1. content: `w^c = softmax(β · K(k, M_i))`, `K` the cosine similarity (eq. 5–6);
//! 2. interpolation with the previous weighting: `w^g = g w^c + (1 − g) w_{t−1}` (eq. 7);
//! 3. circular shift convolution: `w̃_i = Σ_j w^g_j s_{i−j}` (eq. 8);
//! 4. sharpening: `w_i = w̃_i^γ / Σ_j w̃_j^γ`, `γ ≥ 1` (eq. 9).
//!
//! Reading is `r = Σ_i w_i M_i` (eq. 2); writing erases then adds,
//! `M_i ← M_i (1 − w_i e) + w_i a` (eq. 3–4).
//!
//! Numerical safety: norms are `sqrt(|x|² + ε)` so a zero vector has similarity 0 and a finite
//! gradient; softmaxes subtract their maximum; sharpening is computed as
//! `softmax(γ · ln(w̃ + ε))`, which equals `w̃^γ / Σ w̃^γ` but cannot overflow or divide by zero.

use burn::tensor::Tensor;
use burn::tensor::activation::{sigmoid, softmax, softplus};

/// The ε of the norms and logarithms: the fused addressing's own ([`crate::fused::ntm::EPS`]), so
/// both paths compute the same function.
pub const EPS: f32 = crate::fused::ntm::EPS;

/// Cosine similarity `K(k, M_i)` of a key with every memory row (eq. 6): `(B, N, M), (B, M)
/// → (B, N)`.
pub fn cosine_similarity(memory: Tensor<3>, key: Tensor<2>) -> Tensor<2> {
    let [b, n, _] = memory.dims();
    let dot = memory.clone().matmul(key.clone().unsqueeze_dim::<3>(2)).reshape([b, n]); // (B, N)
    let mem_norm = memory.square().sum_dim(2).reshape([b, n]).add_scalar(EPS).sqrt(); // (B, N)
    let key_norm = key.square().sum_dim(1).add_scalar(EPS).sqrt(); // (B, 1)
    dot / (mem_norm * key_norm)
}

/// Content addressing (eq. 5): `softmax_i(β K(k, M_i))`, `β ≥ 0` of shape `(B, 1)`.
pub fn content_weighting(memory: Tensor<3>, key: Tensor<2>, beta: Tensor<2>) -> Tensor<2> {
    softmax(cosine_similarity(memory, key) * beta, 1)
}

/// Interpolation gate (eq. 7): `g w_c + (1 − g) w_prev`, `g ∈ [0, 1]` of shape `(B, 1)`.
pub fn interpolate(w_content: Tensor<2>, w_prev: Tensor<2>, gate: Tensor<2>) -> Tensor<2> {
    w_prev.clone() + (w_content - w_prev) * gate
}

/// Circular convolution with a shift distribution (eq. 8): `s` is `(B, 2K+1)` over shifts
/// `−K..=K`; `out_i = Σ_j w_{(i−j) mod N} s_j`.
pub fn shift(w: Tensor<2>, s: Tensor<2>) -> Tensor<2> {
    let [_, n] = w.dims();
    let k = (s.dims()[1] - 1) / 2;
    let mut out: Option<Tensor<2>> = None;
    for (j, offset) in (-(k as isize)..=k as isize).enumerate() {
        // roll by `offset`: rolled_i = w_{i − offset}
        let r = offset.rem_euclid(n as isize) as usize;
        let rolled = if r == 0 {
            w.clone()
        } else {
            Tensor::cat(vec![w.clone().narrow(1, n - r, r), w.clone().narrow(1, 0, n - r)], 1)
        };
        let term = rolled * s.clone().narrow(1, j, 1);
        out = Some(match out {
            Some(acc) => acc + term,
            None => term,
        });
    }
    out.expect("at least one shift")
}

/// Sharpening (eq. 9): `w^γ / Σ w^γ` for `γ ≥ 1` of shape `(B, 1)`, computed as
/// `softmax(γ ln(w + ε))`.
pub fn sharpen(w: Tensor<2>, gamma: Tensor<2>) -> Tensor<2> {
    softmax(w.add_scalar(EPS).log() * gamma, 1)
}

/// Reads `(B, R, N)` weightings from a `(B, N, M)` memory: `(B, R, M)` (eq. 2).
pub fn read(memory: Tensor<3>, w: Tensor<3>) -> Tensor<3> {
    w.matmul(memory)
}

/// Erase-then-add write by `H` heads (eq. 3–4): weightings `(B, H, N)`, erase vectors
/// `(B, H, M)` in `[0, 1]`, add vectors `(B, H, M)`. Erasures multiply (their order does not
/// matter) and additions sum, as the paper prescribes for several write heads.
/// On the CPU one fused op with its own backward ([`crate::fused::ntm_write`]), elsewhere
/// [`write_composed`].
pub fn write(memory: Tensor<3>, w: Tensor<3>, erase: Tensor<3>, add: Tensor<3>) -> Tensor<3> {
    if !crate::fused::is_flex(&memory.device()) {
        return write_composed(memory, w, erase, add);
    }
    crate::fused::ntm_write(memory, w, erase, add)
}

/// [`write`] composed of tensor operations (other devices; the fused op's reference).
pub fn write_composed(memory: Tensor<3>, w: Tensor<3>, erase: Tensor<3>, add: Tensor<3>) -> Tensor<3> {
    let heads = w.dims()[1];
    let w_t = w.swap_dims(1, 2); // (B, N, H)
    let mut kept = memory;
    for h in 0..heads {
        let wh = w_t.clone().narrow(2, h, 1); // (B, N, 1)
        let eh = erase.clone().narrow(1, h, 1); // (B, 1, M)
        kept = kept * (wh * eh).neg().add_scalar(1.0);
    }
    kept + w_t.matmul(add) // Σ_h w_h a_hᵀ: (B, N, M)
}

/// The addressing parameters one NTM head emits, already squashed into their ranges.
#[derive(Debug, Clone)]
pub struct HeadParams {
    /// Key `k` `(B, M)`.
    pub key: Tensor<2>,
    /// Key strength `β ≥ 0` `(B, 1)` (softplus).
    pub beta: Tensor<2>,
    /// Interpolation gate `g ∈ [0, 1]` `(B, 1)` (sigmoid).
    pub gate: Tensor<2>,
    /// Shift distribution `s` `(B, 2K+1)` (softmax).
    pub shift: Tensor<2>,
    /// Sharpening `γ ≥ 1` `(B, 1)` (1 + softplus).
    pub gamma: Tensor<2>,
}

impl HeadParams {
    /// Number of raw outputs a head needs for width `m` and shift range `k`.
    pub fn len(m: usize, k: usize) -> usize {
        m + 1 + 1 + (2 * k + 1) + 1
    }

    /// Splits raw controller outputs `(B, len)` and squashes each part into its range.
    pub fn from_raw(raw: Tensor<2>, m: usize, k: usize) -> Self {
        let s = 2 * k + 1;
        Self {
            key: raw.clone().narrow(1, 0, m),
            beta: softplus(raw.clone().narrow(1, m, 1), 1.0),
            gate: sigmoid(raw.clone().narrow(1, m + 1, 1)),
            shift: softmax(raw.clone().narrow(1, m + 2, s), 1),
            gamma: softplus(raw.narrow(1, m + 2 + s, 1), 1.0).add_scalar(1.0),
        }
    }
}

/// The whole NTM addressing pipeline (eq. 5–9): content → interpolate → shift → sharpen.
pub fn address(memory: Tensor<3>, w_prev: Tensor<2>, p: &HeadParams) -> Tensor<2> {
    let wc = content_weighting(memory, p.key.clone(), p.beta.clone());
    let wg = interpolate(wc, w_prev, p.gate.clone());
    let ws = shift(wg, p.shift.clone());
    sharpen(ws, p.gamma.clone())
}

/// [`address`] from a head's raw outputs `raw (B, HeadParams::len(M, k))`, squashed as
/// [`HeadParams::from_raw`] does: one fused op on the CPU ([`crate::fused::ntm_address`]), the
/// composed pipeline elsewhere.
pub fn address_raw(memory: Tensor<3>, w_prev: Tensor<2>, raw: Tensor<2>, k: usize) -> Tensor<2> {
    let m = memory.dims()[2];
    assert_eq!(raw.dims()[1], HeadParams::len(m, k), "raw head outputs of the wrong width");
    if !crate::fused::is_flex(&memory.device()) {
        return address(memory, w_prev, &HeadParams::from_raw(raw, m, k));
    }
    crate::fused::ntm_address(memory, w_prev, raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close as close, cpu as t2, cpu as t3, values as vals};
    use crate::testing::{grad_check, uniform};
    use burn::tensor::{Device, TensorData};

    fn dev() -> Device {
        Device::flex()
    }

    #[test]
    fn cosine_similarity_matches_the_formula_and_is_zero_for_zero_vectors() {
        let (b, n, m) = (2, 4, 3);
        let mut mem = uniform(b * n * m, -1.0, 1.0, 1);
        mem[3..6].fill(0.0); // batch 0, row 1: a zero row
        let mut key = uniform(b * m, -1.0, 1.0, 2);
        key[3..6].fill(0.0); // batch 1: a zero key
        let k = vals(cosine_similarity(t3(mem.clone(), [b, n, m]), t2(key.clone(), [b, m])));
        assert_eq!(k.len(), b * n);
        for bi in 0..b {
            for i in 0..n {
                let row = &mem[(bi * n + i) * m..(bi * n + i + 1) * m];
                let kk = &key[bi * m..(bi + 1) * m];
                let dot: f32 = row.iter().zip(kk).map(|(x, y)| x * y).sum();
                let nr = row.iter().map(|x| x * x).sum::<f32>().sqrt();
                let nk = kk.iter().map(|x| x * x).sum::<f32>().sqrt();
                let want = if nr == 0.0 || nk == 0.0 { 0.0 } else { dot / (nr * nk) };
                assert!((k[bi * n + i] - want).abs() < 1e-3, "{bi},{i}: {} vs {want}", k[bi * n + i]);
            }
        }
        assert!(k.iter().all(|v| v.is_finite() && v.abs() <= 1.0 + 1e-5));
    }

    #[test]
    fn content_weighting_is_a_distribution_even_for_huge_beta_and_zero_memory() {
        let (b, n, m) = (2, 5, 3);
        let mem = uniform(b * n * m, -1.0, 1.0, 3);
        let w = vals(content_weighting(
            t3(mem, [b, n, m]),
            t2(uniform(b * m, -1.0, 1.0, 4), [b, m]),
            t2(vec![1e30, 0.0], [b, 1]),
        ));
        for row in w.chunks(n) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5 && row.iter().all(|v| v.is_finite()));
        }
        // β = 0: uniform; an all-zero memory: uniform too.
        close(&w[n..], &[0.2; 5], 1e-6);
        let w0 =
            vals(content_weighting(Tensor::zeros([1, n, m], &dev()), t2(vec![0.0; m], [1, m]), t2(vec![50.0], [1, 1])));
        close(&w0, &[0.2; 5], 1e-6);
    }

    #[test]
    fn shift_is_a_circular_convolution() {
        let (b, n) = (2, 6);
        for k in [1usize, 2] {
            let w = uniform(b * n, 0.0, 1.0, 5);
            let s = uniform(b * (2 * k + 1), 0.0, 1.0, 6);
            let got = vals(shift(t2(w.clone(), [b, n]), t2(s.clone(), [b, 2 * k + 1])));
            for bi in 0..b {
                for i in 0..n {
                    let mut want = 0.0;
                    for (j, off) in (-(k as isize)..=k as isize).enumerate() {
                        let src = (i as isize - off).rem_euclid(n as isize) as usize;
                        want += w[bi * n + src] * s[bi * (2 * k + 1) + j];
                    }
                    assert!((got[bi * n + i] - want).abs() < 1e-5);
                }
            }
        }
        // A one-hot shift of +1 moves the focus one location forward, wrapping around.
        let moved = vals(shift(t2(vec![0.0, 0.0, 1.0], [1, 3]), t2(vec![0.0, 0.0, 1.0], [1, 3])));
        close(&moved, &[1.0, 0.0, 0.0], 0.0);
    }

    #[test]
    fn sharpen_equals_the_power_formula_and_survives_extremes() {
        let w = vec![0.1f32, 0.2, 0.3, 0.4];
        let got = vals(sharpen(t2(w.clone(), [1, 4]), t2(vec![3.0], [1, 1])));
        let z: f32 = w.iter().map(|x| x.powi(3)).sum();
        close(&got, &w.iter().map(|x| x.powi(3) / z).collect::<Vec<_>>(), 1e-4);
        // Zero weights, huge γ: still a finite distribution, concentrated on the maximum.
        let ext = vals(sharpen(t2(vec![0.0, 0.0, 1e-30, 0.5], [1, 4]), t2(vec![1e6], [1, 1])));
        assert!(ext.iter().all(|v| v.is_finite()));
        close(&ext, &[0.0, 0.0, 0.0, 1.0], 1e-6);
        let zero = vals(sharpen(Tensor::zeros([1, 4], &dev()), t2(vec![20.0], [1, 1])));
        close(&zero, &[0.25; 4], 1e-6);
    }

    #[test]
    fn read_and_write_follow_the_equations() {
        let (b, n, m) = (1, 3, 2);
        let mem = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let w = vec![0.5, 0.5, 0.0];
        let r = vals(read(t3(mem.clone(), [b, n, m]), t3(w.clone(), [b, 1, n])));
        close(&r, &[2.0, 3.0], 1e-6);
        let out = vals(write(
            t3(mem.clone(), [b, n, m]),
            t3(w.clone(), [b, 1, n]),
            t3(vec![1.0, 0.0], [b, 1, m]),
            t3(vec![10.0, 20.0], [b, 1, m]),
        ));
        // Row i: M_i ⊙ (1 − w_i e) + w_i a.
        close(&out, &[0.5 + 5.0, 2.0 + 10.0, 1.5 + 5.0, 4.0 + 10.0, 5.0, 6.0], 1e-5);
        // Two heads: erasures multiply, additions sum.
        let two = vals(write(
            t3(mem, [b, n, m]),
            t3(vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0], [b, 2, n]),
            t3(vec![0.5, 0.0, 0.5, 0.0], [b, 2, m]),
            t3(vec![1.0, 1.0, 2.0, 2.0], [b, 2, m]),
        ));
        close(&two[..2], &[1.0 * 0.25 + 3.0, 2.0 + 3.0], 1e-5);
    }

    #[test]
    fn head_params_land_in_their_ranges() {
        let (m, k) = (4, 1);
        let raw = uniform(3 * HeadParams::len(m, k), -30.0, 30.0, 7);
        let p = HeadParams::from_raw(t2(raw, [3, HeadParams::len(m, k)]), m, k);
        assert!(vals(p.beta).iter().all(|&v| v >= 0.0));
        assert!(vals(p.gate).iter().all(|&v| (0.0..=1.0).contains(&v)));
        assert!(vals(p.gamma).iter().all(|&v| v >= 1.0));
        for row in vals(p.shift).chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        assert_eq!(p.key.dims(), [3, m]);
    }

    // Finite-difference gradient checks, one per step and one for the whole pipeline.

    #[test]
    fn gradient_of_content_weighting() {
        let (b, n, m) = (2, 4, 3);
        let mem = uniform(b * n * m, -1.0, 1.0, 10);
        let inputs = [mem.clone(), uniform(b * m, -1.0, 1.0, 11), uniform(b, 0.5, 3.0, 12)];
        grad_check(&inputs, 1e-3, 2e-2, |x| {
            let [mm, k, beta]: [Tensor<1>; 3] = x.try_into().unwrap();
            content_weighting(mm.reshape([b, n, m]), k.reshape([b, m]), beta.reshape([b, 1])).reshape([b * n])
        });
        // A zero memory row and a zero key: finite gradients everywhere.
        let ad = Device::flex().autodiff();
        let mut zeroed = mem;
        zeroed[0..3].fill(0.0);
        let mm = Tensor::<3>::from_data(TensorData::new(zeroed, [b, n, m]), &ad).require_grad();
        let k = Tensor::<2>::zeros([b, m], &ad).require_grad();
        let beta = Tensor::<2>::ones([b, 1], &ad).mul_scalar(5.0);
        let grads = (content_weighting(mm.clone(), k.clone(), beta)
            * Tensor::arange(0..(b * n) as i64, &ad).float().reshape([b, n]))
        .sum()
        .backward();
        for g in [vals(mm.grad(&grads).unwrap()), vals(k.grad(&grads).unwrap())] {
            assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
        }
    }

    #[test]
    fn gradient_of_interpolate_shift_sharpen() {
        let (b, n) = (2, 5);
        let inputs = [
            uniform(b * n, 0.05, 1.0, 13),
            uniform(b * n, 0.05, 1.0, 14),
            uniform(b, 0.1, 0.9, 15),
            uniform(b * 3, 0.1, 1.0, 16),
            uniform(b, 1.0, 3.0, 17),
        ];
        grad_check(&inputs, 1e-3, 2e-2, |x| {
            let [wc, wp, g, s, gamma]: [Tensor<1>; 5] = x.try_into().unwrap();
            let wg = interpolate(wc.reshape([b, n]), wp.reshape([b, n]), g.reshape([b, 1]));
            let ws = shift(wg.clone(), s.reshape([b, 3]));
            Tensor::cat(vec![wg, ws.clone(), sharpen(ws, gamma.reshape([b, 1]))], 1).reshape([3 * b * n])
        });
    }

    #[test]
    fn gradient_of_read_and_write() {
        let (b, h, n, m) = (1, 2, 3, 2);
        let inputs = [
            uniform(b * n * m, -1.0, 1.0, 18),
            uniform(b * h * n, 0.0, 1.0, 19),
            uniform(b * h * m, 0.0, 1.0, 20),
            uniform(b * h * m, -1.0, 1.0, 21),
        ];
        grad_check(&inputs, 1e-3, 1e-2, |x| {
            let [mm, w, e, a]: [Tensor<1>; 4] = x.try_into().unwrap();
            let mem = mm.reshape([b, n, m]);
            let w = w.reshape([b, h, n]);
            let written = write(mem.clone(), w.clone(), e.reshape([b, h, m]), a.reshape([b, h, m]));
            let r = read(written.clone(), w);
            Tensor::cat(vec![written.reshape([b * n * m]), r.reshape([b * h * m])], 0)
        });
    }

    #[test]
    fn gradient_of_the_whole_addressing_pipeline_from_raw_head_outputs() {
        let (b, n, m, k) = (2, 6, 3, 1);
        let len = HeadParams::len(m, k);
        let inputs = [uniform(b * n * m, -1.0, 1.0, 22), uniform(b * n, 0.0, 0.4, 23), uniform(b * len, -1.0, 1.0, 24)];
        grad_check(&inputs, 1e-3, 2e-2, |x| {
            let [mm, wp, raw]: [Tensor<1>; 3] = x.try_into().unwrap();
            let p = HeadParams::from_raw(raw.reshape([b, len]), m, k);
            address(mm.reshape([b, n, m]), wp.reshape([b, n]), &p).reshape([b * n])
        });
    }

    #[test]
    fn fused_addressing_equals_the_composed_pipeline_forward_and_backward() {
        // Two shift ranges; one memory row of zeros (similarity 0), a large β̂ and γ̂ in row 1.
        for (k, seed) in [(1, 30), (2, 40)] {
            let (b, n, m) = (3, 7, 4);
            let len = HeadParams::len(m, k);
            let mut mem = uniform(b * n * m, -1.0, 1.0, seed);
            mem[..m].fill(0.0);
            let mut raw = uniform(b * len, -2.0, 2.0, seed + 1);
            raw[len + m] = 30.0;
            raw[2 * len - 1] = 25.0;
            let prev = uniform(b * n, 0.0, 0.3, seed + 2);
            let ad = Device::flex().autodiff();
            let leaf = |v: &[f32]| Tensor::<1>::from_floats(v, &ad).require_grad();
            let (mm, wp, rr) = (leaf(&mem), leaf(&prev), leaf(&raw));
            let r = Tensor::<1>::from_floats(uniform(b * n, -1.0, 1.0, seed + 3).as_slice(), &ad).reshape([b, n]);
            let run = |fused: bool| {
                let (memory, w_prev, raw) =
                    (mm.clone().reshape([b, n, m]), wp.clone().reshape([b, n]), rr.clone().reshape([b, len]));
                let w = if fused {
                    address_raw(memory, w_prev, raw, k)
                } else {
                    address(memory, w_prev, &HeadParams::from_raw(raw, m, k))
                };
                let grads = (w.clone() * r.clone()).sum().backward();
                let g = |x: &Tensor<1>| vals(x.grad(&grads).unwrap());
                [vals(w), g(&mm), g(&wp), g(&rr)]
            };
            let (fused, composed) = (run(true), run(false));
            for (i, (a, c)) in fused.iter().zip(&composed).enumerate() {
                close(a, c, 2e-4);
                assert!(a.iter().all(|x| x.is_finite()), "shift range {k}, output {i}: {a:?}");
            }
        }
        let (b, n, m, k) = (2, 6, 3, 1);
        let len = HeadParams::len(m, k);
        let inputs = [uniform(b * n * m, -1.0, 1.0, 25), uniform(b * n, 0.0, 0.4, 26), uniform(b * len, -1.0, 1.0, 27)];
        grad_check(&inputs, 1e-3, 2e-2, |x| {
            let [mm, wp, raw]: [Tensor<1>; 3] = x.try_into().unwrap();
            address_raw(mm.reshape([b, n, m]), wp.reshape([b, n]), raw.reshape([b, len]), k).reshape([b * n])
        });
    }

    #[test]
    fn fused_write_equals_the_composed_one_forward_and_backward() {
        let (b, h, n, m) = (2, 3, 5, 4);
        let mut erase = uniform(b * h * m, 0.0, 1.0, 51);
        erase[0] = 1.0; // a full erase: one factor exactly 0 when w = 1
        let mut w = uniform(b * h * n, 0.0, 1.0, 50);
        w[0] = 1.0;
        let inputs = [uniform(b * n * m, -1.0, 1.0, 52), w, erase, uniform(b * h * m, -1.0, 1.0, 53)];
        let ad = Device::flex().autodiff();
        let leaves: Vec<Tensor<1>> =
            inputs.iter().map(|v| Tensor::<1>::from_floats(v.as_slice(), &ad).require_grad()).collect();
        let r = Tensor::<1>::from_floats(uniform(b * n * m, -1.0, 1.0, 54).as_slice(), &ad).reshape([b, n, m]);
        let run = |fused: bool| {
            let [mm, ww, ee, aa] = [&leaves[0], &leaves[1], &leaves[2], &leaves[3]];
            let args = (
                mm.clone().reshape([b, n, m]),
                ww.clone().reshape([b, h, n]),
                ee.clone().reshape([b, h, m]),
                aa.clone().reshape([b, h, m]),
            );
            let out = if fused {
                write(args.0, args.1, args.2, args.3)
            } else {
                write_composed(args.0, args.1, args.2, args.3)
            };
            let grads = (out.clone() * r.clone()).sum().backward();
            let mut all = vec![vals(out)];
            all.extend(leaves.iter().map(|x| vals(x.grad(&grads).unwrap())));
            all
        };
        for (a, c) in run(true).iter().zip(&run(false)) {
            close(a, c, 1e-5);
        }
    }
}
