//! Optimizers (burn's, configured from TOML), learning-rate schedules as pure functions of the
//! step, and global gradient-norm clipping.
//!
//! burn's `GradientClipping::Norm` clips each parameter's gradient on its own; the NTM, DRAW and
//! handwriting papers clip the norm of *all* gradients together, which [`clip_global_norm`] does.

use crate::defaults;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, RmsPropConfig, SgdConfig, momentum::MomentumConfig};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Which optimizer, with its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// SGD with (optionally Nesterov) momentum.
    Sgd {
        /// Momentum coefficient (0 disables momentum).
        #[serde(default = "defaults::f64::<9, 10>")]
        momentum: f64,
        /// Nesterov momentum.
        #[serde(default)]
        nesterov: bool,
    },
    /// Adam (Kingma & Ba 2015).
    Adam {
        /// First-moment decay.
        #[serde(default = "defaults::f32::<9, 10>")]
        beta1: f32,
        /// Second-moment decay.
        #[serde(default = "defaults::f32::<999, 1000>")]
        beta2: f32,
        /// Denominator epsilon (PyTorch's default, 1e-8).
        #[serde(default = "defaults::f32::<1, 100000000>")]
        epsilon: f32,
    },
    /// RMSProp with momentum; `centered` gives Graves' (2013) variant, which divides by the
    /// running standard deviation of the gradient rather than its running RMS.
    Rmsprop {
        /// Decay of the running averages (Graves: 0.95).
        #[serde(default = "defaults::f32::<95, 100>")]
        alpha: f32,
        /// Momentum (Graves: 0.9).
        #[serde(default = "defaults::f32::<9, 10>")]
        momentum: f32,
        /// Denominator epsilon (Graves: 1e-4).
        #[serde(default = "defaults::f32::<1, 10000>")]
        epsilon: f32,
        /// Centered (Graves) variant.
        #[serde(default = "defaults::yes")]
        centered: bool,
    },
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self::Adam { beta1: 0.9, beta2: 0.999, epsilon: 1e-8 }
    }
}

impl OptimizerConfig {
    /// Parses a short name (`sgd`, `adam`, `rmsprop`) into the default configuration.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "sgd" => Self::Sgd { momentum: 0.9, nesterov: false },
            "adam" => Self::default(),
            "rmsprop" => Self::Rmsprop { alpha: 0.95, momentum: 0.9, epsilon: 1e-4, centered: true },
            _ => return None,
        })
    }

    /// The burn optimizer.
    pub fn init(&self) -> ModuleOptimizer {
        match *self {
            Self::Sgd { momentum, nesterov } => {
                let m = (momentum > 0.0)
                    .then(|| MomentumConfig::new().with_momentum(momentum).with_dampening(0.0).with_nesterov(nesterov));
                SgdConfig::new().with_momentum(m).init()
            }
            Self::Adam { beta1, beta2, epsilon } => {
                AdamConfig::new().with_beta_1(beta1).with_beta_2(beta2).with_epsilon(epsilon).init()
            }
            Self::Rmsprop { alpha, momentum, epsilon, centered } => RmsPropConfig::new()
                .with_alpha(alpha)
                .with_momentum(momentum)
                .with_epsilon(epsilon)
                .with_centered(centered)
                .init(),
        }
    }
}

/// Learning rate as a function of the step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Schedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// Multiply by `gamma` every `every` steps.
    Step {
        /// Steps between decays.
        every: usize,
        /// Factor per decay.
        gamma: f64,
    },
    /// Multiply by `gamma` every step.
    Exponential {
        /// Factor per step.
        gamma: f64,
    },
    /// Linear warm-up over `warmup` steps, then cosine decay to `min_factor × base` at `total`.
    Cosine {
        /// Warm-up steps.
        #[serde(default)]
        warmup: usize,
        /// Step at which the decay ends.
        total: usize,
        /// Final rate as a fraction of the base rate.
        #[serde(default)]
        min_factor: f64,
    },
}

impl Schedule {
    /// The learning rate at `step` (0-based) for base rate `base`.
    pub fn lr(&self, base: f64, step: usize) -> f64 {
        match *self {
            Self::Constant => base,
            Self::Step { every, gamma } => base * gamma.powi((step / every.max(1)) as i32),
            Self::Exponential { gamma } => base * gamma.powf(step as f64),
            Self::Cosine { warmup, total, min_factor } => {
                if step < warmup {
                    return base * (step + 1) as f64 / warmup as f64;
                }
                let span = total.saturating_sub(warmup).max(1) as f64;
                let t = ((step - warmup) as f64 / span).min(1.0);
                base * (min_factor + (1.0 - min_factor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
            }
        }
    }
}

/// Collects the ids of a module's float parameters.
struct Ids(Vec<(ParamId, usize)>);

impl ModuleVisitor for Ids {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push((param.id, D));
    }
}

fn rescale<const D: usize>(grads: &mut GradientsParams, id: ParamId, factor: f32) {
    if let Some(g) = grads.remove::<D>(id) {
        grads.register(id, g.mul_scalar(factor));
    }
}

fn sum_squares<const D: usize>(grads: &GradientsParams, id: ParamId) -> Option<Tensor<1>> {
    grads.get::<D>(id).map(|g| g.square().sum())
}

/// Global L2 norm of all gradients of `module`'s parameters.
pub fn global_norm<M: Module>(module: &M, grads: &GradientsParams) -> f32 {
    let mut ids = Ids(vec![]);
    module.visit(&mut ids);
    let mut parts = vec![];
    for (id, rank) in ids.0 {
        let s = match rank {
            1 => sum_squares::<1>(grads, id),
            2 => sum_squares::<2>(grads, id),
            3 => sum_squares::<3>(grads, id),
            4 => sum_squares::<4>(grads, id),
            5 => sum_squares::<5>(grads, id),
            r => panic!("parameter of rank {r} not supported by global_norm"),
        };
        parts.extend(s);
    }
    if parts.is_empty() {
        return 0.0;
    }
    let norm = Tensor::cat(parts, 0).sum().into_scalar::<f32>().sqrt();
    if norm == f32::INFINITY {
        // The squares overflowed (an entry above ~1.8e19); the norm may still be finite:
        // scaled by the largest entry first, as BLAS's nrm2 does. NaN or infinite entries stay
        // non-finite.
        return scaled_norm(module, grads);
    }
    norm
}

/// [`global_norm`] as `s · sqrt(Σ (g / s)²)` with `s` the largest `|g|`: no overflow.
fn scaled_norm<M: Module>(module: &M, grads: &GradientsParams) -> f32 {
    let g = flat_gradients(module, grads); // zeros where a parameter has none: no change to the norm
    let scale = g.iter().fold(0.0f64, |a, &x| a.max((x as f64).abs()));
    if !scale.is_finite() || g.iter().any(|x| x.is_nan()) {
        return f32::NAN;
    }
    (scale * g.iter().map(|&x| (x as f64 / scale).powi(2)).sum::<f64>().sqrt()) as f32
}

/// One descent step on a scalar `loss`: a non-finite loss is refused before anything touches the
/// weights (the error names `what` and step `step + 1`), then backward, clipping of the global
/// gradient norm to `clip`, and the optimizer at rate `lr`. Returns the model and the loss value.
pub fn descend<M: Module>(
    model: M,
    loss: Tensor<1>,
    optim: &mut ModuleOptimizer,
    lr: f64,
    clip: Option<f32>,
    what: &str,
    step: u64,
) -> anyhow::Result<(M, f32)> {
    let value = finite(loss.clone().into_scalar(), what, step)?;
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    Ok((checked_step(model, grads, optim, lr, clip, step)?, value))
}

/// Clipping and one optimizer step, refused when the gradient norm is not finite: a finite
/// loss with a NaN or infinite gradient is a backward-pass fault, and stepping would poison every
/// weight. Without clipping the norm is not computed and nothing is checked.
pub fn checked_step<M: Module>(
    model: M,
    mut grads: GradientsParams,
    optim: &mut ModuleOptimizer,
    lr: f64,
    clip: Option<f32>,
    step: u64,
) -> anyhow::Result<M> {
    if let Some(max) = clip {
        let norm = clip_global_norm(&model, &mut grads, max);
        if !norm.is_finite() {
            anyhow::bail!(
                "non-finite gradient norm ({norm}) at step {} with a finite loss; weights are left as after step {step}; \
                 largest gradients: {}",
                step + 1,
                largest_gradients(&model, &grads, 4)
            );
        }
    }
    Ok(optim.step(lr, model, grads))
}

/// The `k` parameters with the largest gradient entries (non-finite ones first), as
/// `path max|g|` pairs: where a diverging backward pass shows itself.
pub fn largest_gradients<M: Module>(module: &M, grads: &GradientsParams, k: usize) -> String {
    struct Paths<'a> {
        grads: &'a GradientsParams,
        path: Vec<String>,
        found: Vec<(String, f32)>,
    }
    impl ModuleVisitor for Paths<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let values = g.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
                // NaN ranks above infinity, infinity above any finite size.
                let size = values
                    .iter()
                    .fold(0.0f32, |a, &v| if v.is_nan() || a.is_nan() { f32::NAN } else { a.max(v.abs()) });
                self.found.push((self.path.join("."), size));
            }
        }
    }
    let mut p = Paths { grads, path: vec![], found: vec![] };
    module.visit(&mut p);
    let rank = |v: f32| {
        if v.is_nan() {
            f32::INFINITY
        } else if v.is_infinite() {
            f32::MAX
        } else {
            v
        }
    };
    p.found.sort_by(|a, b| rank(b.1).total_cmp(&rank(a.1)));
    let shown: Vec<String> = p.found.iter().take(k).map(|(path, v)| format!("{path} {v:e}")).collect();
    shown.join(", ")
}

/// The error of a training step whose loss is not finite.
fn finite(value: f32, what: &str, step: u64) -> anyhow::Result<f32> {
    if !value.is_finite() {
        anyhow::bail!(
            "non-finite {what} ({value}) at step {}; weights are left as after step {step} — lower the learning rate or set clip_norm",
            step + 1
        );
    }
    Ok(value)
}

/// [`descend`] on a batch split into `shards` run on their own threads
/// ([`sharded_gradients`]; one shard is [`descend`] itself).
#[allow(clippy::too_many_arguments)]
pub fn descend_sharded<M, F>(
    model: M,
    shards: usize,
    loss_of: F,
    optim: &mut ModuleOptimizer,
    lr: f64,
    clip: Option<f32>,
    what: &str,
    step: u64,
) -> anyhow::Result<(M, f32)>
where
    M: Module + Sync,
    F: Fn(&M, usize) -> Tensor<1> + Sync,
{
    if shards <= 1 {
        let loss = loss_of(&model, 0);
        return descend(model, loss, optim, lr, clip, what, step);
    }
    let (grads, loss) = sharded_gradients(&model, shards, loss_of);
    let value = finite(loss.into_scalar(), what, step)?;
    Ok((checked_step(model, grads, optim, lr, clip, step)?, value))
}

/// The `i`-th of `shards` contiguous, nearly equal parts of `items` (empty past the end).
pub fn shard<T>(items: &[T], shards: usize, i: usize) -> &[T] {
    &items[shard_range(items.len(), shards, i)]
}

/// Where the `i`-th of `shards` parts of `n` items lies ([`shard`]).
pub fn shard_range(n: usize, shards: usize, i: usize) -> std::ops::Range<usize> {
    let per = n.div_ceil(shards.max(1));
    (i * per).min(n)..((i + 1) * per).min(n)
}

/// Backward from `loss`, clipping of the global gradient norm to `clip`, and one optimizer step at
/// rate `lr` (no check of the loss: [`descend`] is the training step; benchmarks time this).
pub fn apply_loss<M: Module>(model: M, loss: &Tensor<1>, optim: &mut ModuleOptimizer, lr: f64, clip: Option<f32>) -> M {
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    apply_grads(model, grads, optim, lr, clip)
}

/// A copy of `model` whose parameters are fresh autodiff leaves: the same ids and the same
/// data (nothing is copied), but a graph built from it is separate from any other copy's, so
/// copies can run forward and backward on different threads at once.
fn fresh_leaves<M: Module>(model: &M) -> M {
    struct Fresh;
    impl ModuleMapper for Fresh {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            param.map(|t| t.detach().require_grad())
        }
    }
    model.clone().map(&mut Fresh)
}

fn add_into<const D: usize>(sum: &mut GradientsParams, part: &mut GradientsParams, id: ParamId) {
    if let Some(g) = part.remove::<D>(id) {
        let total = match sum.remove::<D>(id) {
            Some(s) => s + g,
            None => g,
        };
        sum.register(id, total);
    }
}

/// The `i`-th shard's thread pool: one thread, kept for the process's life, so that the kernels
/// inside a shard run on its own core instead of queueing behind the other shards' work.
fn shard_pool(i: usize) -> std::sync::Arc<rayon::ThreadPool> {
    static POOLS: std::sync::Mutex<Vec<std::sync::Arc<rayon::ThreadPool>>> = std::sync::Mutex::new(Vec::new());
    let mut pools = POOLS.lock().expect("no panics while held");
    while pools.len() <= i {
        let k = pools.len();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(move |_| format!("glimpse-shard-{k}"))
            .build()
            .expect("a shard thread");
        pools.push(std::sync::Arc::new(pool));
    }
    pools[i].clone()
}

/// Data parallelism over the cores of one machine: the gradients of `Σ_i loss_of(model, i)`
/// for shards `i = 0…shards−1` of a batch, each shard's forward and backward pass on its own
/// thread, summed in shard order (so a run is reproducible). `loss_of` must weight its shard's
/// loss so that the shards' losses add up to the batch's (a mean over the batch: each shard's
/// sum divided by the whole batch's count). Returns the gradients and the summed loss.
///
/// Per-step models (LSTM decoders, memory networks) issue many small operations one after
/// another, which one core runs no faster with two threads in each kernel; two halves of the
/// batch on two cores ran 1.4–1.6× faster in `glimpse bench` (seq2seq, DRAW, handwriting).
/// Each shard runs on a thread of its own (a one-thread pool per shard), whatever `--threads`
/// says for the kernels outside them.
pub fn sharded_gradients<M, F>(model: &M, shards: usize, loss_of: F) -> (GradientsParams, Tensor<1>)
where
    M: Module + Sync,
    F: Fn(&M, usize) -> Tensor<1> + Sync,
{
    if shards <= 1 {
        let loss = loss_of(model, 0);
        return (GradientsParams::from_grads(loss.backward(), model), loss.detach());
    }
    let one = |i: usize| {
        let copy = fresh_leaves(model);
        let loss = loss_of(&copy, i);
        (GradientsParams::from_grads(loss.backward(), &copy), loss.detach())
    };
    // Each shard on its own one-thread pool (A/B on `bench seq2seq`, 3 pairs: +1–4% over the
    // shards sharing the global pool, where a shard's parallel kernels queue behind the other's).
    let parts: Vec<(GradientsParams, Tensor<1>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..shards)
            .map(|i| {
                let (pool, one) = (shard_pool(i), &one);
                s.spawn(move || pool.install(|| one(i)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a shard panicked")).collect()
    });
    let mut ids = Ids(vec![]);
    model.visit(&mut ids);
    let mut parts = parts.into_iter();
    let (mut grads, mut loss) = parts.next().expect("at least one shard");
    for (mut g, l) in parts {
        loss = loss + l;
        for &(id, rank) in &ids.0 {
            match rank {
                1 => add_into::<1>(&mut grads, &mut g, id),
                2 => add_into::<2>(&mut grads, &mut g, id),
                3 => add_into::<3>(&mut grads, &mut g, id),
                4 => add_into::<4>(&mut grads, &mut g, id),
                5 => add_into::<5>(&mut grads, &mut g, id),
                r => panic!("parameter of rank {r} not supported by sharded_gradients"),
            }
        }
    }
    (grads, loss)
}

/// Every parameter's gradient (zeros where it has none), flattened in the module's visiting
/// order: for comparing gradients in tests and diagnostics.
pub fn flat_gradients<M: Module>(module: &M, grads: &GradientsParams) -> Vec<f32> {
    struct Flat<'a>(&'a GradientsParams, Vec<f32>);
    impl ModuleVisitor for Flat<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let values: Vec<f32> = match self.0.get::<D>(param.id) {
                Some(g) => g.into_data().convert::<f32>().try_to_vec().expect("f32 gradient"),
                None => vec![0.0; param.val().shape().num_elements()],
            };
            self.1.extend(values);
        }
    }
    let mut flat = Flat(grads, Vec::new());
    module.visit(&mut flat);
    flat.1
}

/// [`apply_loss`] for [`sharded_gradients`]: clipping and one optimizer step from summed
/// gradients.
pub fn apply_grads<M: Module>(
    model: M,
    mut grads: GradientsParams,
    optim: &mut ModuleOptimizer,
    lr: f64,
    clip: Option<f32>,
) -> M {
    if let Some(max) = clip {
        clip_global_norm(&model, &mut grads, max);
    }
    optim.step(lr, model, grads)
}

/// Scales all gradients together so that their global norm is at most `max_norm`.
/// Returns the norm before clipping.
pub fn clip_global_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f32) -> f32 {
    let norm = global_norm(module, grads);
    if norm > max_norm && norm.is_finite() {
        let factor = max_norm / (norm + 1e-6);
        let mut ids = Ids(vec![]);
        module.visit(&mut ids);
        for (id, rank) in ids.0 {
            match rank {
                1 => rescale::<1>(grads, id, factor),
                2 => rescale::<2>(grads, id, factor),
                3 => rescale::<3>(grads, id, factor),
                4 => rescale::<4>(grads, id, factor),
                5 => rescale::<5>(grads, id, factor),
                r => panic!("parameter of rank {r} not supported by clip_global_norm"),
            }
        }
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3×3 → 4 → 2 MLP on the autodiff CPU, and a batch of two constant images.
    fn tiny_mlp() -> (crate::models::mlp::Mlp, Tensor<4>) {
        use burn::tensor::{Device, TensorData};
        let dev = Device::flex().autodiff();
        let cfg = crate::models::mlp::MlpConfig { input: [3, 3], hidden: vec![4], classes: 2 };
        let model = crate::device::seeded(&dev, 0, || cfg.init(&dev));
        (model, Tensor::<4>::from_data(TensorData::new(vec![0.5f32; 18], [2, 1, 3, 3]), &dev))
    }

    #[test]
    fn schedules() {
        assert_eq!(Schedule::Constant.lr(0.1, 1000), 0.1);
        let s = Schedule::Step { every: 10, gamma: 0.5 };
        assert_eq!((s.lr(1.0, 9), s.lr(1.0, 10), s.lr(1.0, 25)), (1.0, 0.5, 0.25));
        let c = Schedule::Cosine { warmup: 10, total: 110, min_factor: 0.1 };
        assert!((c.lr(1.0, 0) - 0.1).abs() < 1e-12);
        assert!((c.lr(1.0, 10) - 1.0).abs() < 1e-12);
        assert!((c.lr(1.0, 60) - 0.55).abs() < 1e-9);
        assert!((c.lr(1.0, 500) - 0.1).abs() < 1e-12);
        assert!((Schedule::Exponential { gamma: 0.9 }.lr(1.0, 2) - 0.81).abs() < 1e-12);
    }

    /// A finite loss whose backward pass gives NaN (`√(0·s)`: 0 × ∞) is refused before the
    /// optimizer poisons the weights.
    #[test]
    fn a_nan_gradient_under_a_finite_loss_stops_the_step() {
        let (model, x) = tiny_mlp();
        let loss = model.forward(x).sum().mul_scalar(0.0).sqrt();
        let mut optim = OptimizerConfig::default().init();
        let err = descend(model, loss, &mut optim, 1e-3, Some(1.0), "loss", 7).expect_err("refused");
        let msg = err.to_string();
        assert!(msg.contains("non-finite gradient norm") && msg.contains("step 8"), "{msg}");
    }

    #[test]
    fn a_huge_but_finite_gradient_has_a_finite_norm_and_is_clipped_not_refused() {
        let (model, x) = tiny_mlp();
        let loss_of = |scale: f32| model.forward(x.clone()).sum().mul_scalar(scale);
        let small = GradientsParams::from_grads(loss_of(1.0).backward(), &model);
        let mut huge = GradientsParams::from_grads(loss_of(1e21).backward(), &model);
        // Entries near 1e20: their squares overflow f32, the norm itself does not.
        let (n1, n2) = (global_norm(&model, &small), global_norm(&model, &huge));
        assert!(n1 > 0.0 && n2.is_finite(), "{n1} {n2}");
        assert!((n2 / n1 / 1e21 - 1.0).abs() < 1e-3, "{n1} {n2}");
        assert!((clip_global_norm(&model, &mut huge, 1.0) - n2).abs() <= 1e-3 * n2);
        assert!((global_norm(&model, &huge) - 1.0).abs() < 1e-3);
        // A NaN anywhere stays NaN (refused by `checked_step`), and the report names it first.
        let mut poisoned = GradientsParams::from_grads(loss_of(1.0).backward(), &model);
        let mut ids = Ids(vec![]);
        model.visit(&mut ids);
        let (id, rank) = *ids.0.iter().find(|p| p.1 == 1).expect("a bias");
        assert_eq!(rank, 1);
        let g = poisoned.remove::<1>(id).unwrap();
        poisoned.register(id, g.mul_scalar(f32::NAN));
        assert!(global_norm(&model, &poisoned).is_nan());
        let report = largest_gradients(&model, &poisoned, 2);
        assert!(report.contains("NaN") && report.contains("bias"), "{report}");
        let mut optim = OptimizerConfig::Sgd { momentum: 0.0, nesterov: false }.init();
        let err = checked_step(model, poisoned, &mut optim, 0.1, Some(1.0), 6).unwrap_err().to_string();
        assert!(err.contains("at step 7") && err.contains("largest gradients"), "{err}");
    }

    #[test]
    fn global_norm_clipping_scales_all_gradients_together() {
        let (model, x) = tiny_mlp();
        let loss = model.forward(x).square().sum().mul_scalar(100.0);
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        // The norm by hand: every parameter's gradient, squared and summed.
        let mut ids = Ids(vec![]);
        model.visit(&mut ids);
        let by_hand = |g: &GradientsParams| -> f32 {
            ids.0
                .iter()
                .map(|&(id, rank)| -> f32 {
                    let v: Vec<f32> = match rank {
                        1 => g.get::<1>(id).unwrap().into_data().try_to_vec().unwrap(),
                        _ => g.get::<2>(id).unwrap().into_data().try_to_vec().unwrap(),
                    };
                    v.iter().map(|x| x * x).sum::<f32>()
                })
                .sum::<f32>()
                .sqrt()
        };
        let before = by_hand(&grads);
        assert!(before > 1.0);
        assert!((global_norm(&model, &grads) - before).abs() < 1e-3 * before);
        let w0: Vec<f32> = grads.get::<2>(ids.0[0].0).unwrap().into_data().try_to_vec().unwrap();
        let reported = clip_global_norm(&model, &mut grads, 1.0);
        assert!((reported - before).abs() < 1e-3 * before);
        assert!((by_hand(&grads) - 1.0).abs() < 1e-4);
        let w1: Vec<f32> = grads.get::<2>(ids.0[0].0).unwrap().into_data().try_to_vec().unwrap();
        // Every element scaled by the same factor, max_norm / norm (zeros, e.g. from dead ReLUs,
        // stay zero).
        let k = 1.0 / before;
        assert!(w0.iter().zip(&w1).all(|(a, b)| (a * k - b).abs() <= 1e-4 * (a * k).abs().max(1e-6)), "same direction");
        // Under the threshold nothing changes.
        assert!((clip_global_norm(&model, &mut grads, 10.0) - 1.0).abs() < 1e-4);
        assert!((by_hand(&grads) - 1.0).abs() < 1e-4);
    }

    #[test]
    fn configs_parse_from_toml() {
        let c: OptimizerConfig = toml::from_str("name = \"rmsprop\"\nmomentum = 0.5").unwrap();
        assert_eq!(c, OptimizerConfig::Rmsprop { alpha: 0.95, momentum: 0.5, epsilon: 1e-4, centered: true });
        assert!(toml::from_str::<OptimizerConfig>("name = \"adam\"\nbogus = 1").is_err());
        for n in ["sgd", "adam", "rmsprop"] {
            let _ = OptimizerConfig::from_name(n).unwrap().init();
        }
    }
}
