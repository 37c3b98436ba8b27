//! Scalar functions the kernels share: a branch-free `e^x` and `ln x` the compiler vectorises,
//! the sigmoid and `tanh` built on the former, an eight-lane dot product, and [`wide`], which
//! compiles a kernel's loops for AVX2 and FMA where the CPU has them.

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
pub(super) fn sigmoid_fast(x: f32) -> f32 {
    1.0 / (1.0 + exp_fast(-x))
}

#[inline(always)]
pub(super) fn tanh_fast(x: f32) -> f32 {
    2.0 * sigmoid_fast(2.0 * x) - 1.0
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

pub(super) fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `Σ_j x_j y_j` with eight partial sums (so the loop vectorises).
#[inline(always)]
pub(super) fn dot(x: &[f32], y: &[f32]) -> f32 {
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

/// Runs `f` compiled for AVX2 and FMA where the CPU has them. The crate is built for baseline
/// x86-64, whose SSE2 gives the kernels' loops 4 lanes; inlined here they get 8.
#[inline(always)]
pub(super) fn wide<R>(f: impl FnOnce() -> R) -> R {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
