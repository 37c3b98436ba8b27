//! The training loop for DRAW on binarised images: mini-batches in a seeded order, the noise
//! `ε` drawn from the run's own stream (so a resumed run continues the same draws), the
//! negative variational bound in nats as loss and metric, validation every `valid_every` steps
//! on a fixed slice of held-out images, the best checkpoint kept, exact resume.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use super::checkpoint;
use super::metrics::MetricsLog;
use super::optim::{OptimizerConfig, Schedule, descend_sharded, shard_range};
use crate::data::binarised::Binarised;
use crate::data::{ImageSet, Split, registry};
use crate::models::draw::{Draw, DrawConfig};
use crate::rng::Rng;
use crate::run::RunOptions;

/// Which images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BinarisedData {
    /// `mnist` or `fashion-mnist`.
    pub dataset: String,
    /// Seed of the fixed binarisation (the same for every run, so bounds compare).
    pub binarise_seed: u64,
}

impl Default for BinarisedData {
    fn default() -> Self {
        Self { dataset: "mnist".into(), binarise_seed: 0 }
    }
}

impl BinarisedData {
    /// Loads and binarises `split` under `root`.
    pub fn load(&self, root: &Path, split: Split) -> Result<Binarised> {
        let spec = registry::by_name(&self.dataset)
            .with_context(|| format!("unknown data set `{}` (known: mnist, fashion-mnist)", self.dataset))?;
        crate::data::fetch::ensure(spec, root)?;
        let set = ImageSet::load(spec, root, split)?;
        Ok(Binarised::draw(&set, split, self.binarise_seed))
    }
}

/// Hyper-parameters of a DRAW run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerativeTrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// Optimizer (the paper: Adam).
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Clip the global gradient norm to this value.
    pub clip_norm: Option<f32>,
    /// Training images held out (the last ones) for validation.
    pub valid_size: usize,
    /// Validate every this many steps (and at each epoch's end).
    pub valid_every: usize,
    /// Images of the held-out set used by each validation (0: all).
    pub valid_limit: usize,
    /// Write the resumable state every this many steps.
    pub checkpoint_every: usize,
    /// Log the training bound every this many steps.
    pub log_every: usize,
    /// Use only the first N training images (quick runs, tests).
    pub limit_train: Option<usize>,
    /// Weight the KL term of the training loss by `min(1, step / kl_warmup)` (0: always 1).
    /// Not in the DRAW paper: a standard guard against posterior collapse (Bowman et al. 2016,
    /// Sønderby et al. 2016). Validation and evaluation always report the true bound.
    pub kl_warmup: usize,
    /// Data parallelism: each step's batch is split into this many shards, whose forward and
    /// backward passes run on their own threads (`train::optim::sharded_gradients`; 1: none).
    /// The same value gives the same loss curve; another changes it in the last bits.
    pub shards: usize,
}

impl Default for GenerativeTrainConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 64,
            lr: 1e-3,
            optimizer: OptimizerConfig::default(),
            schedule: Schedule::Constant,
            clip_norm: Some(10.0),
            valid_size: 10_000,
            valid_every: 500,
            valid_limit: 2000,
            checkpoint_every: 100,
            log_every: 20,
            limit_train: None,
            kl_warmup: 0,
            shards: 1,
        }
    }
}

/// Everything that defines a DRAW run; saved as `config.toml` in its checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrawRunConfig {
    /// The seed of every random draw.
    #[serde(default)]
    pub seed: u64,
    /// The model.
    pub model: DrawConfig,
    /// The data.
    #[serde(default)]
    pub data: BinarisedData,
    /// The training hyper-parameters.
    #[serde(default)]
    pub train: GenerativeTrainConfig,
}

/// The resumable part of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrawRunState {
    /// Optimizer steps taken.
    pub step: u64,
    /// Current epoch (0-based).
    pub epoch: usize,
    /// Batches of the current epoch already done.
    pub batch_in_epoch: usize,
    /// The noise stream.
    pub rng: Rng,
    /// Best validation bound so far (nats per image), and its step.
    pub best: Option<(f64, u64)>,
    /// Seconds of training so far (summed across resumes).
    pub train_seconds: f64,
}

/// Metadata of an evaluable DRAW checkpoint (`best/meta.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrawCheckpointMeta {
    /// Always `draw`.
    pub model: String,
    /// Steps trained.
    pub step: u64,
    /// Epoch of these weights.
    pub epoch: usize,
    /// Validation bound (nats per image) of these weights.
    pub valid_nll_nats: f64,
    /// Seconds of training up to these weights.
    pub train_seconds: f64,
    /// Trainable parameters.
    pub parameters: usize,
}

/// The negative variational bound on a set of images, in nats per image.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BoundMetrics {
    /// `L^x + L^z`: an upper bound on the negative log-likelihood.
    pub nll_nats: f64,
    /// `L^x`.
    pub reconstruction_nats: f64,
    /// `L^z`.
    pub kl_nats: f64,
    /// Images.
    pub n: usize,
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct DrawSummary {
    /// Steps trained.
    pub steps: u64,
    /// Best validation bound.
    pub valid_nll_nats: f64,
    /// Path of the best checkpoint.
    pub best: PathBuf,
}

/// `ε ~ N(0, I)` of shape `(T, B, Z)` from `rng`.
pub fn noise(t: usize, b: usize, z: usize, rng: &mut Rng, device: &Device) -> Tensor<3> {
    Tensor::from_data(TensorData::new(rng.normals(t * b * z, 1.0), [t, b, z]), device)
}

fn images(set: &Binarised, indices: &[usize], device: &Device) -> Tensor<3> {
    Tensor::from_data(TensorData::new(set.batch(indices), [indices.len(), set.h, set.w]), device)
}

/// The bound of `model` on the first `limit` images of `set` (0: all), one `ε` draw per image
/// from a stream fixed by `seed`, so repeated evaluations of the same weights agree.
pub fn evaluate_bound(model: &Draw, set: &Binarised, limit: usize, seed: u64, device: &Device) -> BoundMetrics {
    let n = if limit == 0 { set.len() } else { limit.min(set.len()) };
    let mut rng = Rng::derive(seed, "eval-noise", 0);
    let (mut rec, mut kl) = (0.0f64, 0.0f64);
    let batch = 250;
    for start in (0..n).step_by(batch) {
        let idx: Vec<usize> = (start..(start + batch).min(n)).collect();
        let eps = noise(model.steps(), idx.len(), model.latent(), &mut rng, device);
        let b = model.bound(images(set, &idx, device), eps, None);
        let r: f32 = b.reconstruction.sum().into_scalar();
        let k: f32 = b.kl.sum().into_scalar();
        rec += r as f64;
        kl += k as f64;
    }
    let d = n.max(1) as f64;
    BoundMetrics { nll_nats: (rec + kl) / d, reconstruction_nats: rec / d, kl_nats: kl / d, n }
}

/// Loads an evaluable DRAW checkpoint on `device`.
pub fn load_draw(dir: &Path, device: &Device) -> Result<(DrawRunConfig, Draw)> {
    let cfg: DrawRunConfig = checkpoint::read_config(dir)?;
    let model = checkpoint::init_and_load(device, cfg.seed, dir, || cfg.model.init(device))?;
    Ok((cfg, model))
}

/// The training and validation images of a run: the last `valid_size` training images held out.
pub fn train_and_validation(cfg: &DrawRunConfig, root: &Path) -> Result<(Binarised, Binarised)> {
    let all = cfg.data.load(root, Split::Train)?;
    let n = all.len();
    let valid = cfg.train.valid_size.min(n);
    let mut train = all.slice(0..n - valid);
    if let Some(limit) = cfg.train.limit_train {
        train = train.slice(0..limit.min(train.len()));
    }
    Ok((train, all.slice(n - valid..n)))
}

fn parameters(model: &Draw) -> usize {
    model.num_params()
}

/// Trains (or resumes) a DRAW run.
pub fn train_draw(cfg: &DrawRunConfig, opts: &RunOptions) -> Result<DrawSummary> {
    let device = crate::device::by_name(&opts.device)?.autodiff();
    let eval_device = device.clone().without_autodiff();
    let last_dir = opts.out.join("last");
    let best_dir = opts.out.join("best");
    let (cfg, mut model, mut optim, mut state) = match checkpoint::find_dir(&last_dir).filter(|_| opts.resume) {
        Some(dir) => {
            let saved: DrawRunConfig = checkpoint::read_config(&dir)?;
            let mut saved_cfg = saved.clone();
            // A resume may lengthen the run, change how each step is spread over threads, and
            // change the schedule (a function of the step: one that agrees with the old one up
            // to the current step keeps the run's history true to the config, e.g. a decay
            // from a later step on); everything else comes from the checkpoint.
            saved_cfg.train.epochs = saved.train.epochs.max(cfg.train.epochs);
            saved_cfg.train.shards = cfg.train.shards;
            saved_cfg.train.schedule = cfg.train.schedule.clone();
            if saved != *cfg {
                tracing::warn!("resuming with the configuration saved in {}", dir.display());
            }
            let model = checkpoint::init_and_load(&device, saved.seed, &dir, || saved.model.init(&device))?;
            let optim = checkpoint::load_optimizer(&saved.train.optimizer, &dir)?;
            let state: DrawRunState = checkpoint::read_meta(&dir)?;
            tracing::info!("resuming from step {} (epoch {}, batch {})", state.step, state.epoch, state.batch_in_epoch);
            (saved_cfg, model, optim, state)
        }
        None => {
            let model = crate::device::seeded(&device, cfg.seed, || checkpoint::number_params(cfg.model.init(&device)));
            let state = DrawRunState {
                step: 0,
                epoch: 0,
                batch_in_epoch: 0,
                rng: Rng::derive(cfg.seed, "draw-noise", 0),
                best: None,
                train_seconds: 0.0,
            };
            (cfg.clone(), model, cfg.train.optimizer.init(), state)
        }
    };
    let t = &cfg.train;
    if t.batch_size == 0 {
        bail!("batch_size must be positive");
    }
    if cfg.model.steps == 0 || cfg.model.latent == 0 {
        bail!("DRAW needs at least one step and a non-empty latent");
    }
    let mut log = MetricsLog::open(&opts.out, Some(state.step).filter(|_| opts.resume))?;
    let (train, valid) = train_and_validation(&cfg, &opts.data_root)?;
    if [train.h, train.w] != cfg.model.side {
        bail!("the model expects {:?} images, the data are {:?}", cfg.model.side, [train.h, train.w]);
    }
    let n = train.len();
    let batches = n.div_ceil(t.batch_size);
    let params = parameters(&model);
    tracing::info!("draw: {params} parameters, {n} training images, {} validation images", valid.len());

    let bar = if opts.progress { ProgressBar::new((t.epochs * batches) as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({eta})").unwrap().progress_chars("=> "),
    );
    bar.set_position((state.epoch * batches + state.batch_in_epoch) as u64);
    let mut clock = Instant::now();
    let mut window = (0.0f64, 0.0f64, 0usize, Instant::now()); // bound sum, KL sum, images, since

    // Validation, keeping the best weights.
    let validate = |model: &Draw, state: &mut DrawRunState, log: &mut MetricsLog, bar: &ProgressBar| -> Result<()> {
        let m = evaluate_bound(&model.valid(), &valid, t.valid_limit, cfg.seed, &eval_device);
        log.log(
            "valid",
            state.step,
            state.epoch,
            &[("nll_nats", m.nll_nats), ("reconstruction_nats", m.reconstruction_nats), ("kl_nats", m.kl_nats)],
        )?;
        bar.println(format!("step {}: valid bound {:.2} nats (KL {:.2})", state.step, m.nll_nats, m.kl_nats));
        if state.best.is_none_or(|(b, _)| m.nll_nats < b) {
            state.best = Some((m.nll_nats, state.step));
            let meta = DrawCheckpointMeta {
                model: "draw".into(),
                step: state.step,
                epoch: state.epoch,
                valid_nll_nats: m.nll_nats,
                train_seconds: state.train_seconds,
                parameters: params,
            };
            checkpoint::save_run_dir(&best_dir, model, &cfg, &meta, None)?;
        }
        Ok(())
    };

    while state.epoch < t.epochs {
        bar.set_prefix(format!("epoch {}/{}", state.epoch + 1, t.epochs));
        let order = Rng::derive(cfg.seed, "epoch", state.epoch as u64).permutation(n);
        for b in state.batch_in_epoch..batches {
            let idx = &order[b * t.batch_size..((b + 1) * t.batch_size).min(n)];
            let eps = noise(cfg.model.steps, idx.len(), cfg.model.latent, &mut state.rng, &device);
            let beta = if t.kl_warmup > 0 { (state.step as f32 / t.kl_warmup as f32).min(1.0) } else { 1.0 };
            let shards = t.shards.clamp(1, idx.len());
            // Per shard: the sums of the bound and of the KL term over its images (for the log).
            let sums = std::sync::Mutex::new(vec![(0.0f32, 0.0f32); shards]);
            let loss_of = |m: &Draw, i: usize| {
                let range = shard_range(idx.len(), shards, i);
                let eps = eps.clone().narrow(1, range.start, range.len()); // (T, b, Z)
                let part = &idx[range];
                let bound = m.bound(images(&train, part, &device), eps, None);
                let kl: f32 = bound.kl.clone().sum().into_scalar();
                let total: f32 = bound.total().sum().into_scalar();
                sums.lock().expect("no panics while held")[i] = (total, kl);
                (bound.reconstruction + bound.kl.mul_scalar(beta)).sum() / idx.len() as f32
            };
            let lr = t.schedule.lr(t.lr, state.step as usize);
            (model, _) = descend_sharded(model, shards, loss_of, &mut optim, lr, t.clip_norm, "bound", state.step)?;
            let (bound_sum, kl_sum) =
                sums.into_inner().expect("no panics").iter().fold((0.0, 0.0), |a, s| (a.0 + s.0, a.1 + s.1));
            let (bound_value, kl) = (bound_sum / idx.len() as f32, kl_sum / idx.len() as f32);
            state.step += 1;
            state.batch_in_epoch = b + 1;
            window.0 += bound_value as f64 * idx.len() as f64;
            window.1 += kl as f64 * idx.len() as f64;
            window.2 += idx.len();
            bar.inc(1);
            if opts.throttle_ms > 0 {
                std::thread::sleep(std::time::Duration::from_millis(opts.throttle_ms));
            }
            if state.step % t.log_every.max(1) as u64 == 0 {
                let secs = window.3.elapsed().as_secs_f64();
                let (nll, kl, ips) = (window.0 / window.2 as f64, window.1 / window.2 as f64, window.2 as f64 / secs);
                bar.set_message(format!("bound {nll:.2} nats (KL {kl:.2}) {ips:.0} img/s"));
                log.log(
                    "train",
                    state.step,
                    state.epoch,
                    &[("nll_nats", nll), ("kl_nats", kl), ("lr", lr), ("images_per_s", ips)],
                )?;
                window = (0.0, 0.0, 0, Instant::now());
            }
            let epoch_end = b + 1 == batches;
            if epoch_end {
                state.epoch += 1;
                state.batch_in_epoch = 0;
            }
            let (validating, checkpointing) = super::cadence(state.step, epoch_end, t.valid_every, t.checkpoint_every);
            if checkpointing {
                state.train_seconds += clock.elapsed().as_secs_f64();
                clock = Instant::now();
            }
            if validating {
                validate(&model, &mut state, &mut log, &bar)?;
            }
            if checkpointing {
                checkpoint::save_run_dir(&last_dir, &model, &cfg, &state, Some(&optim))?;
            }
        }
    }
    bar.finish_and_clear();
    let (valid_nll_nats, _) = state.best.context("no validation was run")?;
    Ok(DrawSummary {
        steps: state.step,
        valid_nll_nats,
        best: checkpoint::find_dir(&best_dir).context("no best checkpoint was written")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{mnist_fixture as fixture, mnist_run as opts};

    fn tiny() -> DrawRunConfig {
        DrawRunConfig {
            seed: 3,
            model: DrawConfig { side: [28, 28], steps: 4, encoder: 32, decoder: 32, latent: 8, read: 2, write: 4 },
            data: BinarisedData::default(),
            train: GenerativeTrainConfig {
                epochs: 8,
                batch_size: 25,
                lr: 1e-2,
                valid_size: 50,
                valid_every: 0,
                valid_limit: 0,
                checkpoint_every: 3,
                log_every: 5,
                ..Default::default()
            },
        }
    }

    fn valid_curve(out: &Path) -> Vec<f64> {
        std::fs::read_to_string(out.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["split"] == "valid")
            .map(|v| v["nll_nats"].as_f64().unwrap())
            .collect()
    }

    /// On the 300-image fixture the bound falls well below its start in seconds, and the best
    /// checkpoint reloads to the same bound.
    #[test]
    fn draw_bound_falls_on_a_tiny_mnist_and_the_checkpoint_reloads() {
        let out = tempfile::tempdir().unwrap();
        let cfg = tiny();
        let s = train_draw(&cfg, &opts(out.path(), false)).unwrap();
        assert_eq!(s.steps, 8 * 10);
        let curve = valid_curve(out.path());
        assert_eq!(curve.len(), 8);
        // An untrained model scores ≈ 784 ln 2 ≈ 543 nats; the trained one far less.
        assert!(curve[7] < 250.0, "validation bound {curve:?}");
        let dev = Device::flex();
        let (loaded, model) = load_draw(&s.best, &dev).unwrap();
        assert_eq!(loaded, cfg);
        let (_, valid) = train_and_validation(&cfg, &fixture()).unwrap();
        let m = evaluate_bound(&model, &valid, 0, cfg.seed, &dev);
        assert!((m.nll_nats - s.valid_nll_nats).abs() < 1e-3 * s.valid_nll_nats, "{m:?} vs {s:?}");
        assert!(m.kl_nats >= 0.0 && m.reconstruction_nats > 0.0);
    }

    /// Interrupted after any checkpoint and resumed, a run ends where the uninterrupted one does.
    #[test]
    fn resume_reproduces_the_uninterrupted_run() {
        let cfg = GenerativeTrainConfig { epochs: 2, ..tiny().train };
        let cfg = DrawRunConfig { train: cfg, ..tiny() };
        let whole = tempfile::tempdir().unwrap();
        let a = train_draw(&cfg, &opts(whole.path(), false)).unwrap();
        let parts = tempfile::tempdir().unwrap();
        let first = DrawRunConfig { train: GenerativeTrainConfig { epochs: 1, ..cfg.train.clone() }, ..cfg.clone() };
        train_draw(&first, &opts(parts.path(), false)).unwrap();
        let b = train_draw(&cfg, &opts(parts.path(), true)).unwrap();
        assert_eq!(a.steps, b.steps);
        assert_eq!(valid_curve(whole.path()), valid_curve(parts.path()));
    }
}
