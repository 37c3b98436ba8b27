//! The training loop for DRAW on binarised images: mini-batches in a seeded order, the noise
//! `ε` drawn from the run's own stream (so a resumed run continues the same draws), the
//! negative variational bound in nats as loss and metric, validation every `valid_every` steps
//! on a fixed slice of held-out images, the best checkpoint kept, exact resume.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::checkpoint;
use super::config::{self, Keys as _, TrainConfig};
use super::engine::{self, At, EpochOrder, Family, Progress, RunConfig, Tally, Validation};
use super::metrics::MetricsLog;
use super::optim::{descend_sharded, shard_range};
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
    /// The training hyper-parameters ([`config::DRAW`]).
    #[serde(default = "config::Draw::default", with = "config::Draw")]
    pub train: TrainConfig,
}

impl RunConfig for DrawRunConfig {
    fn seed(&self) -> u64 {
        self.seed
    }
    fn train(&self) -> &TrainConfig {
        &self.train
    }
    fn train_mut(&mut self) -> &mut TrainConfig {
        &mut self.train
    }
}

/// Metadata of an evaluable DRAW checkpoint (`best/meta.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrawCheckpointMeta {
    /// Always `draw`.
    pub model: String,
    /// Steps trained.
    pub step: u64,
    /// The epoch (from 1) of the step of these weights.
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

/// DRAW as the engine trains it: mini-batches in a seeded order each epoch, the noise `ε` from
/// the run's own stream (its resumable state), the bound as loss with the KL term warmed up,
/// validated by the true bound on a fixed slice of held-out images.
struct Trainer {
    cfg: DrawRunConfig,
    train: Binarised,
    valid: Binarised,
    /// The current epoch's order of the training images.
    order: EpochOrder,
    /// Where the images were read from.
    data_root: PathBuf,
    device: Device,
    eval_device: Device,
}

impl Family for Trainer {
    type Config = DrawRunConfig;
    type Model = Draw;
    type State = Rng;
    type Meta = DrawCheckpointMeta;
    type Summary = DrawSummary;
    const NAME: &'static str = "draw";
    const UNIT: &'static str = "images";

    fn config(&self) -> &DrawRunConfig {
        &self.cfg
    }

    fn batches_per_epoch(&self) -> Option<usize> {
        Some(self.train.len().div_ceil(self.cfg.train.batch_size))
    }

    fn init(&self, device: &Device) -> Draw {
        self.cfg.model.init(device)
    }

    fn fresh_state(&self) -> Rng {
        Rng::derive(self.cfg.seed, "draw-noise", 0)
    }

    fn compatible(&self, theirs: &DrawRunConfig, dir: &Path) -> Result<()> {
        if theirs.model != self.cfg.model {
            bail!("init: {} holds a DRAW of other sizes than this run's", dir.display());
        }
        Ok(())
    }

    fn data_files(&self) -> Vec<PathBuf> {
        crate::data::registry::by_name(&self.cfg.data.dataset).map(|s| s.located(&self.data_root)).unwrap_or_default()
    }

    fn step(
        &mut self,
        model: Draw,
        optim: &mut ModuleOptimizer,
        lr: f64,
        rng: &mut Rng,
        at: At,
    ) -> Result<(Draw, Tally)> {
        let (t, m) = (&self.cfg.train, &self.cfg.model);
        let (epoch, b) = at.epoch.expect("DRAW runs have epochs");
        let n = self.train.len();
        let idx = self.order.batch(self.cfg.seed, n, t.batch_size, (epoch, b));
        let eps = noise(m.steps, idx.len(), m.latent, rng, &self.device);
        let beta = if t.kl_warmup > 0 { (at.step as f32 / t.kl_warmup as f32).min(1.0) } else { 1.0 };
        let shards = t.shards.clamp(1, idx.len());
        // Per shard: the sums of the bound and of the KL term over its images (for the log).
        let sums = std::sync::Mutex::new(vec![(0.0f32, 0.0f32); shards]);
        let loss_of = |m: &Draw, i: usize| {
            let range = shard_range(idx.len(), shards, i);
            let eps = eps.clone().narrow(1, range.start, range.len()); // (T, b, Z)
            let part = &idx[range];
            let bound = m.bound(images(&self.train, part, &self.device), eps, None);
            let kl: f32 = bound.kl.clone().sum().into_scalar();
            let total: f32 = bound.total().sum().into_scalar();
            sums.lock().expect("no panics while held")[i] = (total, kl);
            (bound.reconstruction + bound.kl.mul_scalar(beta)).sum() / idx.len() as f32
        };
        let (model, _) = descend_sharded(model, shards, loss_of, optim, lr, t.clip_norm, "bound", at.step)?;
        let (bound_sum, kl_sum) =
            sums.into_inner().expect("no panics").iter().fold((0.0, 0.0), |a, s| (a.0 + s.0, a.1 + s.1));
        let (bound, kl) = (bound_sum / idx.len() as f32, kl_sum / idx.len() as f32);
        let k = idx.len() as f64;
        Ok((
            model,
            Tally {
                count: idx.len(),
                sums: vec![("nll_nats", bound as f64 * k), ("kl_nats", kl as f64 * k)],
                extra: vec![],
            },
        ))
    }

    fn validate(&mut self, model: &Draw, run: &mut Progress<Rng>) -> Result<Validation<DrawCheckpointMeta>> {
        let m = evaluate_bound(model, &self.valid, self.cfg.train.valid_limit, self.cfg.seed, &self.eval_device);
        let per_epoch = self.batches_per_epoch().unwrap_or(1).max(1);
        Ok(Validation {
            score: m.nll_nats,
            values: vec![
                ("nll_nats", m.nll_nats),
                ("reconstruction_nats", m.reconstruction_nats),
                ("kl_nats", m.kl_nats),
            ],
            line: format!("bound {:.2} nats (KL {:.2})", m.nll_nats, m.kl_nats),
            meta: DrawCheckpointMeta {
                model: "draw".into(),
                step: run.step,
                epoch: (run.step as usize).div_ceil(per_epoch),
                valid_nll_nats: m.nll_nats,
                train_seconds: run.train_seconds,
                parameters: model.num_params(),
            },
            stop: None,
        })
    }

    fn finish(&mut self, run: &Progress<Rng>, best: PathBuf, _: &mut MetricsLog) -> Result<DrawSummary> {
        let (valid_nll_nats, _) = run.best.context("no validation was run")?;
        Ok(DrawSummary { steps: run.step, valid_nll_nats, best })
    }
}

/// Trains (or resumes) a DRAW run.
pub fn train_draw(cfg: &DrawRunConfig, opts: &RunOptions) -> Result<DrawSummary> {
    if cfg.model.steps == 0 || cfg.model.latent == 0 {
        bail!("DRAW needs at least one step and a non-empty latent");
    }
    let start = engine::start(cfg, opts)?;
    let cfg = start.cfg;
    let (train, valid) = train_and_validation(&cfg, &opts.data_root)?;
    if [train.h, train.w] != cfg.model.side {
        bail!("the model expects {:?} images, the data are {:?}", cfg.model.side, [train.h, train.w]);
    }
    tracing::info!("draw: {} training images, {} validation images", train.len(), valid.len());
    let eval_device = start.device.clone().without_autodiff();
    let trainer = Trainer {
        cfg,
        train,
        valid,
        order: EpochOrder::default(),
        data_root: opts.data_root.clone(),
        device: start.device.clone(),
        eval_device,
    };
    engine::run(trainer, start.resume.as_deref(), &start.device, opts)
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
            train: TrainConfig {
                epochs: Some(8),
                batch_size: 25,
                lr: 1e-2,
                valid_size: 50,
                valid_every: 0,
                valid_limit: 0,
                checkpoint_every: 3,
                log_every: 5,
                ..config::draw_defaults()
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

    /// A resume with another learning rate or latent size is refused, the keys named; a longer
    /// one logging at another pace continues.
    #[test]
    fn a_resume_that_would_change_the_result_is_refused() {
        let out = tempfile::tempdir().unwrap();
        let cfg = DrawRunConfig { train: TrainConfig { epochs: Some(1), ..tiny().train }, ..tiny() };
        train_draw(&cfg, &opts(out.path(), false)).unwrap();
        let mut other = cfg.clone();
        other.train.lr *= 2.0;
        other.model.latent = 4;
        let e = train_draw(&other, &opts(out.path(), true)).unwrap_err().to_string();
        assert!(e.contains("in model.latent, train.lr, which would change its result"), "{e}");
        let longer = DrawRunConfig { train: TrainConfig { epochs: Some(2), log_every: 3, ..cfg.train.clone() }, ..cfg };
        assert_eq!(train_draw(&longer, &opts(out.path(), true)).unwrap().steps, 2 * 10);
    }

    /// A data file rewritten under a run (the same images, packed anew) is caught at resume,
    /// the file named; restored, the run resumes.
    #[test]
    fn a_data_file_changed_under_a_run_refuses_the_resume() {
        use std::io::{Read, Write};
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("mnist")).unwrap();
        for f in std::fs::read_dir(fixture().join("mnist")).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, root.path().join("mnist").join(f.file_name().unwrap())).unwrap();
        }
        let out = tempfile::tempdir().unwrap();
        let cfg = DrawRunConfig { train: TrainConfig { epochs: Some(1), ..tiny().train }, ..tiny() };
        let run =
            |cfg: &DrawRunConfig, resume| train_draw(cfg, &crate::testing::run_in(out.path(), root.path(), resume));
        run(&cfg, false).unwrap();
        let images = root.path().join("mnist/train-images-idx3-ubyte.gz");
        let packed = std::fs::read(&images).unwrap();
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&packed[..]).read_to_end(&mut raw).unwrap();
        let mut repacked = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        repacked.write_all(&raw).unwrap();
        std::fs::write(&images, repacked.finish().unwrap()).unwrap();
        let longer = DrawRunConfig { train: TrainConfig { epochs: Some(2), ..cfg.train.clone() }, ..cfg };
        let e = run(&longer, true).unwrap_err().to_string();
        assert!(e.contains("train-images-idx3-ubyte.gz: changed since the run started"), "{e}");
        std::fs::write(&images, packed).unwrap();
        assert_eq!(run(&longer, true).unwrap().steps, 20);
    }

    /// Interrupted after any checkpoint and resumed, a run ends where the uninterrupted one does.
    #[test]
    fn resume_reproduces_the_uninterrupted_run() {
        let cfg = TrainConfig { epochs: Some(2), ..tiny().train };
        let cfg = DrawRunConfig { train: cfg, ..tiny() };
        let whole = tempfile::tempdir().unwrap();
        let a = train_draw(&cfg, &opts(whole.path(), false)).unwrap();
        let parts = tempfile::tempdir().unwrap();
        let first = DrawRunConfig { train: TrainConfig { epochs: Some(1), ..cfg.train.clone() }, ..cfg.clone() };
        train_draw(&first, &opts(parts.path(), false)).unwrap();
        let b = train_draw(&cfg, &opts(parts.path(), true)).unwrap();
        assert_eq!(a.steps, b.steps);
        assert_eq!(valid_curve(whole.path()), valid_curve(parts.path()));
    }
}
