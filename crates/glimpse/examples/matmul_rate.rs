//! How fast the CPU backend multiplies matrices at the shapes the benchmarked models use, in
//! GFLOP/s (median of seven timings of a loop of at least 0.2 s), beside
//! `bench/matmul.py`, the same products in PyTorch. It says how much of a model's ratio to its
//! PyTorch twin the matrix products alone allow when they lead the model's profile. Three
//! columns: burn's `matmul` (burn-flex: `gemm` with `Parallelism::Rayon` above 192³ operations),
//! `gemm` called directly with `Rayon(0)`, and the product split into two halves of its columns,
//! each a single-threaded `gemm` call on its own thread (`rayon::join`; each half into its own
//! buffer, so this column is what the split could give, not a finished op).
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release --example matmul_rate
//! python3 bench/matmul.py --threads 2
//! ```

use std::time::Instant;

use glimpse::burn::tensor::{Device, Distribution, Tensor};

/// `dst (m, n) = lhs (m, k) · rhs[:, cols]` with `rhs` row-major `(k, n_all)`, through `gemm`.
fn product(
    lhs: &[f32],
    rhs: &[f32],
    (m, k, n_all): (usize, usize, usize),
    cols: std::ops::Range<usize>,
    dst: &mut [f32],
    par: gemm::Parallelism,
) {
    let n = cols.len();
    assert!(lhs.len() >= m * k && rhs.len() >= k * n_all && cols.end <= n_all && dst.len() >= m * n);
    // SAFETY: the asserts keep every read inside `lhs` and `rhs[.., cols]` and every write inside `dst`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr().add(cols.start),
            1,
            n_all as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// The median of seven rates (GFLOP/s) of `once`, each over a loop of at least 0.2 s.
fn rate(flops: usize, mut once: impl FnMut()) -> f64 {
    once();
    let start = Instant::now();
    let mut reps = 0usize;
    while start.elapsed().as_secs_f64() < 0.05 {
        once();
        reps += 1;
    }
    let per_loop = (0.2 / (start.elapsed().as_secs_f64() / reps as f64)).ceil() as usize;
    let mut rates: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_loop {
                once();
            }
            (flops * per_loop) as f64 / t.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[3]
}

/// (M, K, N) of `(M, K) · (K, N)`: the products that lead the profiles of the rows below
/// target (docs/notes/benchmarks.md): batch 64 against the 784-256 layer, an LSTM's
/// gates from 256 and 512 inputs, and a sequence's positions (64 × 20) against 256 and 512.
const SHAPES: [(usize, usize, usize); 6] =
    [(64, 784, 256), (64, 256, 1024), (64, 512, 1024), (1280, 256, 256), (1280, 512, 2048), (1280, 256, 1024)];

fn main() {
    let device = Device::flex();
    for (m, k, n) in SHAPES {
        let a = Tensor::<2>::random([m, k], Distribution::Uniform(-1.0, 1.0), &device);
        let b = Tensor::<2>::random([k, n], Distribution::Uniform(-1.0, 1.0), &device);
        let flops = 2 * m * k * n;
        let burn = rate(flops, || drop(a.clone().matmul(b.clone())));
        let lhs: Vec<f32> = a.to_data().try_to_vec::<f32>().expect("f32 data");
        let rhs: Vec<f32> = b.to_data().try_to_vec::<f32>().expect("f32 data");
        let mut out = vec![0.0f32; m * n];
        let direct = rate(flops, || product(&lhs, &rhs, (m, k, n), 0..n, &mut out, gemm::Parallelism::Rayon(0)));
        let (mut left, mut right) = (vec![0.0f32; m * (n / 2)], vec![0.0f32; m * (n - n / 2)]);
        let halves = rate(flops, || {
            rayon::join(
                || product(&lhs, &rhs, (m, k, n), 0..n / 2, &mut left, gemm::Parallelism::None),
                || product(&lhs, &rhs, (m, k, n), n / 2..n, &mut right, gemm::Parallelism::None),
            );
        });
        println!("{m}x{k}x{n} burn {burn:.1}  gemm {direct:.1}  halves {halves:.1} GFLOP/s");
    }
}
