//! Matrix products on strided row-major slices through the `gemm` crate burn-flex itself uses,
//! and the split of a batch across the thread pool.

/// `dst (m, n) = [dst +] lhs (m, k) · rhs (k, n)` on strided row-major slices (`*_rs` row
/// strides, `*_cs` column strides), through the `gemm` crate burn-flex itself uses.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_strided(
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
pub(super) fn gemm_fresh(
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
pub(super) unsafe fn gemm_raw(
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

/// How many of `b` batch rows each thread takes: the batch split across the pool, at least
/// `at_least` rows a piece. The sequence kernels take 8 (smaller products lose more to the split
/// than they gain); the convolution, whose images are each a whole product, 1.
pub(super) fn per_thread(b: usize, at_least: usize) -> usize {
    let threads = rayon::current_num_threads().clamp(1, (b / at_least).max(1));
    b.div_ceil(threads).max(1)
}
