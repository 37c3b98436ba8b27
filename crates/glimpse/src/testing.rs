//! Test helpers shared by the crate's tests: a finite-difference gradient check, the committed
//! MNIST fixture, quiet run options, tensors from values and back, and a tolerance check.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};

use crate::rng::Rng;
use crate::run::RunOptions;

/// The small MNIST set committed under `tests/fixtures/mnist-mini` (standard IDX files).
pub fn mnist_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/mnist-mini")
}

/// Options of a quiet CPU test run in `out` reading data under `data_root`.
pub fn run_in(out: &Path, data_root: &Path, resume: bool) -> RunOptions {
    RunOptions {
        out: out.to_path_buf(),
        data_root: data_root.to_path_buf(),
        device: "cpu".into(),
        resume,
        force: false,
        throttle_ms: 0,
        progress: false,
    }
}

/// Options of a quiet CPU test run in `out` on the MNIST fixture.
pub fn mnist_run(out: &Path, resume: bool) -> RunOptions {
    run_in(out, &mnist_fixture(), resume)
}

/// Checks the autodiff gradient of `f` against central differences.
///
/// `inputs` are flat buffers; `f` receives them as 1-D tensors (to reshape as it likes) and
/// returns any tensor flattened to 1-D. The scalar differentiated is `Σ_i r_i f_i` with fixed
/// random weights `r`, so every output element is checked. Each input element is perturbed
/// by `±eps` (f32 arithmetic: use `eps ≈ 1e-2 … 1e-3` and a loose `tol`, relative to
/// `max(|fd|, 1)`).
pub fn grad_check(inputs: &[Vec<f32>], eps: f32, tol: f64, f: impl Fn(Vec<Tensor<1>>) -> Tensor<1>) {
    let ad = Device::flex().autodiff();
    let plain = Device::flex();
    let to = |v: &Vec<f32>, d: &Device| Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), d);
    let out_len = f(inputs.iter().map(|v| to(v, &plain)).collect()).dims()[0];
    let mut rng = Rng::new(99);
    let weights: Vec<f32> = (0..out_len).map(|_| rng.uniform() as f32 * 2.0 - 1.0).collect();
    let objective = |xs: Vec<Tensor<1>>, d: &Device| (f(xs) * to(&weights, d)).sum();
    let tracked: Vec<Tensor<1>> = inputs.iter().map(|v| to(v, &ad).require_grad()).collect();
    let grads = objective(tracked.clone(), &ad).backward();
    let value = |xs: &[Vec<f32>]| -> f64 {
        let t: f32 = objective(xs.iter().map(|v| to(v, &plain)).collect(), &plain).into_scalar();
        t as f64
    };
    for (k, x) in tracked.iter().enumerate() {
        let g: Vec<f32> =
            x.grad(&grads).map(|g| g.into_data().try_to_vec().unwrap()).unwrap_or_else(|| vec![0.0; inputs[k].len()]);
        for i in 0..inputs[k].len() {
            let mut up = inputs.to_vec();
            let mut down = inputs.to_vec();
            up[k][i] += eps;
            down[k][i] -= eps;
            let fd = (value(&up) - value(&down)) / (2.0 * eps as f64);
            assert!(
                (fd - g[i] as f64).abs() <= tol * fd.abs().max(1.0),
                "input {k}, element {i}: finite difference {fd}, autodiff {}",
                g[i]
            );
        }
    }
}

/// [`grad_check`] of a recurrent model's outputs with respect to its inputs: `forward` maps
/// `T` inputs `(B, I)` on a device to `T` outputs `(B, O)`; the inputs are uniform in
/// `[−1, 1]`, drawn from `seed`.
pub fn sequence_grad_check(
    [t, b, i]: [usize; 3],
    seed: u64,
    forward: impl Fn(Vec<Tensor<2>>, &Device) -> Vec<Tensor<2>>,
) {
    grad_check(&[uniform(t * b * i, -1.0, 1.0, seed)], 1e-2, 3e-2, |x| {
        let [x]: [Tensor<1>; 1] = x.try_into().expect("one input");
        let xs: Vec<Tensor<2>> = (0..t).map(|s| x.clone().narrow(0, s * b * i, b * i).reshape([b, i])).collect();
        let out = Tensor::cat(forward(xs, &x.device()), 1); // (B, T·O)
        let n = out.dims().iter().product::<usize>();
        out.reshape([n])
    });
}

/// A buffer of `n` uniform values in `[lo, hi)` from `seed`.
pub fn uniform(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| lo + (hi - lo) * rng.uniform() as f32).collect()
}

/// `values` as a tensor of `shape` on `device`.
pub fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// `values` as a tensor of `shape` on the CPU (`flex`).
pub fn cpu<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
    tensor(values, shape, &Device::flex())
}

/// A tensor's values, in row-major order.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec().unwrap()
}

/// Asserts that `a` and `b` have the same length and agree element by element within `tol`.
pub fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "element {i}: {x} vs {y}");
    }
}
