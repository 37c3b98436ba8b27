//! The training loop for image classifiers: mini-batches in a seeded order, optional shift
//! augmentation, validation every epoch, early stopping, and exact resume from checkpoints.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, META};
use super::config::{self, Keys as _, TrainConfig};
use super::distill::{self, DistillConfig, SoftTargets};
use super::engine::{self, At, EpochOrder, Family, Progress, RunConfig, Tally, Validation};
use super::metrics::MetricsLog;
use super::optim::checked_step;
use crate::data::translated::Translated;
use crate::data::{ImageSet, Split, registry};
use crate::models::image_classifier::Labelled;
use crate::models::{Classifier, ClassifierConfig, ImageClassifier};
use crate::rng::Rng;
use crate::run::RunOptions;

/// Something that yields labelled image batches.
pub trait ImageTask: Send + Sync {
    /// `[examples, height, width]`.
    fn shape(&self) -> [usize; 3];
    /// Number of examples.
    fn len(&self) -> usize {
        self.shape()[0]
    }
    /// Whether there is no example.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Image height and width.
    fn side(&self) -> [usize; 2] {
        let [_, h, w] = self.shape();
        [h, w]
    }
    /// `(len, H*W)` pixels in `[0, 1]` and labels of `indices`.
    fn batch(&self, indices: &[usize]) -> (Vec<f32>, Vec<i64>);
    /// [`ImageTask::batch`] and, for tasks that place a digit on a canvas, each digit's
    /// centre `(len, 2)` as 0-based `(row, col)` pixels; `None` where there is no placement.
    fn batch_located(&self, indices: &[usize]) -> (Vec<f32>, Vec<i64>, Option<Vec<f32>>) {
        let (x, y) = self.batch(indices);
        (x, y, None)
    }
}

impl ImageTask for ImageSet {
    fn shape(&self) -> [usize; 3] {
        [ImageSet::len(self), self.h, self.w]
    }
    fn batch(&self, indices: &[usize]) -> (Vec<f32>, Vec<i64>) {
        self.batch_f32(indices)
    }
}

impl ImageTask for Translated {
    fn shape(&self) -> [usize; 3] {
        [Translated::len(self), self.canvas, self.canvas]
    }
    fn batch(&self, indices: &[usize]) -> (Vec<f32>, Vec<i64>) {
        let (x, y, _) = self.batch_with_centres(indices);
        (x, y)
    }
    fn batch_located(&self, indices: &[usize]) -> (Vec<f32>, Vec<i64>, Option<Vec<f32>>) {
        let (x, y, c) = self.batch_with_centres(indices);
        (x, y, Some(c))
    }
}

/// Which images: a data set, plain or as a translated / cluttered task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageData {
    /// `mnist` or `fashion-mnist`.
    pub dataset: String,
    /// Canvas side for translated MNIST (absent: the plain 28×28 images).
    #[serde(default)]
    pub canvas: Option<usize>,
    /// Number of 8×8 distractors (cluttered translated MNIST).
    #[serde(default)]
    pub clutter: usize,
    /// Translated tasks: placements of each training digit (the training set has this many
    /// times the digits, each at its own positions; validation and test keep one). Absent: 1.
    #[serde(default = "one_placement")]
    pub placements: usize,
    /// Translated tasks: warp each training digit by a random scale in `[1 − w, 1 + w]` and
    /// rotation in `[−w, w]` radians (validation and test digits are never warped). 0: none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warp: f32,
}

fn is_zero(w: &f32) -> bool {
    *w == 0.0
}

fn one_placement() -> usize {
    1
}

impl Default for ImageData {
    fn default() -> Self {
        Self { dataset: "mnist".into(), canvas: None, clutter: 0, placements: 1, warp: 0.0 }
    }
}

impl ImageData {
    /// The data set's specification.
    pub fn spec(&self) -> Result<&'static registry::DatasetSpec> {
        registry::by_name(&self.dataset)
            .with_context(|| format!("unknown data set `{}` (known: mnist, fashion-mnist)", self.dataset))
    }

    /// Loads `split` under `root` as a task. Translated test sets use a different placement
    /// seed from the training set.
    pub fn load(&self, root: &Path, split: Split, seed: u64) -> Result<Arc<dyn ImageTask>> {
        let spec = self.spec()?;
        let set = ImageSet::load(spec, root, split)?;
        Ok(self.wrap(set, layout_seed(split, seed)))
    }

    /// Wraps a loaded set as this task (one placement per digit).
    pub fn wrap(&self, set: ImageSet, seed: u64) -> Arc<dyn ImageTask> {
        self.wrap_placed(set, seed, 1)
    }

    /// Wraps a loaded set as this task with `placements` placements of each digit (translated
    /// tasks; a plain set is returned as it is).
    pub fn wrap_placed(&self, set: ImageSet, seed: u64, placements: usize) -> Arc<dyn ImageTask> {
        self.wrap_warped(set, seed, placements, 0.0)
    }

    /// [`ImageData::wrap_placed`] with each digit warped by up to `warp` (translated tasks).
    fn wrap_warped(&self, set: ImageSet, seed: u64, placements: usize, warp: f32) -> Arc<dyn ImageTask> {
        match self.canvas {
            None => Arc::new(set),
            Some(w) => Arc::new(self.translated(w, set, seed, placements, warp)),
        }
    }

    /// This task's layout of `set` on a `canvas`-wide canvas (its clutter, `placements` per
    /// digit, each warped by up to `warp`): the task [`ImageData::wrap_placed`] wraps, as a
    /// [`Translated`], which also tells where each digit lies.
    pub fn translated(&self, canvas: usize, set: ImageSet, seed: u64, placements: usize, warp: f32) -> Translated {
        Translated::cluttered(Arc::new(set), canvas, self.clutter, seed)
            .with_placements(placements.max(1))
            .with_warp(warp)
    }
}

/// The placement seed of a translated task's `split` images for the run seed `seed`: the test
/// images get layouts of their own, the training images the run's.
pub fn layout_seed(split: Split, seed: u64) -> u64 {
    seed ^ if split == Split::Test { 0x7e57 } else { 0 }
}

/// The placement seed of the validation digits held out of the training set.
pub fn valid_layout_seed(seed: u64) -> u64 {
    seed ^ 0x7a11d
}

/// Everything that defines a classifier run; saved as `config.toml` in its checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierRunConfig {
    /// The seed of every random draw.
    #[serde(default)]
    pub seed: u64,
    /// The model.
    pub model: ClassifierConfig,
    /// The data.
    #[serde(default)]
    pub data: ImageData,
    /// The training hyper-parameters ([`config::CLASSIFIER`]).
    #[serde(default = "config::Classifier::default", with = "config::Classifier")]
    pub train: TrainConfig,
}

impl RunConfig for ClassifierRunConfig {
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

/// Metadata of an evaluable checkpoint (`best/meta.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Model kind (`mlp`, `cnn`, …).
    pub model: String,
    /// Steps trained.
    pub step: u64,
    /// Epoch of these weights, counted from 0 (the closing line and `metrics.jsonl` count
    /// from 1).
    pub epoch: usize,
    /// Validation error of these weights.
    pub valid_error: f64,
    /// Test error, filled in when training ends.
    pub test_error: Option<f64>,
    /// Seconds of training up to these weights (summed across resumes).
    pub train_seconds: f64,
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Steps trained.
    pub steps: u64,
    /// Best validation error.
    pub valid_error: f64,
    /// Test error of the best checkpoint.
    pub test_error: f64,
    /// Test images.
    pub n_test: usize,
    /// Path of the best checkpoint.
    pub best: PathBuf,
}

/// One training batch on the device.
pub struct StepBatch<'a> {
    /// Images `(B, 1, H, W)`.
    pub images: Tensor<4>,
    /// Labels `(B)`.
    pub labels: Tensor<1, Int>,
    /// The digits' centres `(B, 2)`, for a located run ([`crate::models::draw_classifier`]).
    pub centres: Option<Tensor<2>>,
    /// The teachers' soft targets `(B, classes)` and how to fit them, for a distilled run.
    pub soft: Option<(&'a DistillConfig, Tensor<2>)>,
}

/// The gradients, the loss and the number of right answers of one training batch, its
/// forward and backward passes split into `shards` data-parallel shards on their own threads
/// ([`super::optim::sharded_gradients`]). Each shard's loss (a mean over its examples) is
/// weighted by its share of the batch, so the shards' sum is the batch's mean loss. With one
/// shard the batch's random draws (dropout, RAM's locations) come from `rng`, as they always
/// did; with more, each shard draws from its own stream, seeded from `rng`.
pub fn batch_gradients(
    model: &Classifier,
    batch: &StepBatch<'_>,
    shards: usize,
    rng: &mut Rng,
) -> (GradientsParams, Tensor<1>, i64) {
    let n = batch.labels.dims()[0];
    let shards = shards.clamp(1, n.max(1));
    let seeds: Vec<u64> = if shards > 1 { (0..shards).map(|_| rng.next_u64()).collect() } else { vec![] };
    let whole = std::sync::Mutex::new(rng);
    let right = std::sync::Mutex::new(0i64);
    let loss_of = |m: &Classifier, i: usize| {
        // The shard's rows (all of them for one shard: a view, the same values).
        let r = super::optim::shard_range(n, shards, i);
        let rows = |t: Tensor<2>| t.narrow(0, r.start, r.len());
        let images = batch.images.clone().narrow(0, r.start, r.len());
        let labels = batch.labels.clone().narrow(0, r.start, r.len());
        let centres = batch.centres.clone().map(rows);
        let (mut loss, logits) = if shards == 1 {
            let mut rng = whole.lock().expect("no panics while held");
            m.train_loss_at(Labelled { images, labels: labels.clone(), centres }, &mut rng)
        } else {
            m.train_loss_at(Labelled { images, labels: labels.clone(), centres }, &mut Rng::new(seeds[i]))
        };
        if let Some((d, soft)) = &batch.soft {
            let kd = distill::soft_loss(logits.clone(), rows(soft.clone()), d.temperature);
            loss = distill::combine(loss, kd, d.weight);
        }
        let ok: i64 = logits.argmax(1).reshape([r.len()]).equal(labels).int().sum().into_scalar();
        *right.lock().expect("no panics while held") += ok;
        if shards == 1 { loss } else { loss.mul_scalar(r.len() as f64 / n as f64) }
    };
    let (grads, loss) = super::optim::sharded_gradients(model, shards, loss_of);
    (grads, loss, right.into_inner().expect("no panics"))
}

/// Images `(B, H*W)` and labels as tensors on `device`.
fn to_tensors(x: Vec<f32>, y: Vec<i64>, side: [usize; 2], device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let b = y.len();
    let images = Tensor::<4>::from_data(TensorData::new(x, [b, 1, side[0], side[1]]), device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(y, [b]), device);
    (images, labels)
}

/// Shifts each image by a random offset in `[-s, s]²`, filling with zeros.
pub fn random_shift(x: &mut [f32], side: [usize; 2], s: usize, rng: &mut Rng) {
    let [h, w] = side;
    let mut tmp = vec![0.0; h * w];
    for img in x.chunks_mut(h * w) {
        let dy = rng.below(2 * s + 1) as isize - s as isize;
        let dx = rng.below(2 * s + 1) as isize - s as isize;
        tmp.fill(0.0);
        for r in 0..h as isize {
            let sr = r - dy;
            if sr < 0 || sr >= h as isize {
                continue;
            }
            for c in 0..w as isize {
                let sc = c - dx;
                if sc >= 0 && sc < w as isize {
                    tmp[(r * w as isize + c) as usize] = img[(sr * w as isize + sc) as usize];
                }
            }
        }
        img.copy_from_slice(&tmp);
    }
}

/// Calls `f(images, labels)` on every image of `task` in order, `batch` images at a time
/// (evaluation, soft targets, ensembles: one pass, no shuffling, no augmentation).
fn for_each_batch(task: &dyn ImageTask, batch: usize, device: &Device, mut f: impl FnMut(Tensor<4>, Tensor<1, Int>)) {
    let n = task.len();
    for start in (0..n).step_by(batch.max(1)) {
        let idx: Vec<usize> = (start..(start + batch).min(n)).collect();
        let (x, y) = task.batch(&idx);
        let (images, labels) = to_tensors(x, y, task.side(), device);
        f(images, labels);
    }
}

/// Class probabilities `softmax(logits / temperature)` of `model` on every image of `task`,
/// row-major `(n × classes)`, 500 images at a time (distillation's soft targets, ensembles).
pub fn probabilities<M: ImageClassifier>(
    model: &M,
    task: &dyn ImageTask,
    temperature: f64,
    device: &Device,
) -> Vec<f32> {
    let mut out = Vec::new();
    for_each_batch(task, 500, device, |images, _| {
        let p = burn::tensor::activation::softmax(model.logits(images).div_scalar(temperature), 1); // (B, C)
        out.extend(p.into_data().try_to_vec::<f32>().expect("f32 probabilities"));
    });
    out
}

/// Mean cross-entropy, error rate and count of `model` on a whole task.
pub fn evaluate<M: ImageClassifier>(
    model: &M,
    task: &dyn ImageTask,
    batch: usize,
    device: &Device,
) -> (f64, f64, usize) {
    let n = task.len();
    let ce = CrossEntropyLossConfig::new().init(device);
    let (mut loss_sum, mut wrong) = (0.0f64, 0usize);
    for_each_batch(task, batch, device, |images, labels| {
        let b = labels.dims()[0];
        let logits = model.logits(images); // (B, C)
        let loss: f32 = ce.forward(logits.clone(), labels.clone()).into_scalar();
        loss_sum += loss as f64 * b as f64;
        let pred = logits.argmax(1).reshape([b]);
        let right: i64 = pred.equal(labels).int().sum().into_scalar();
        wrong += b - right as usize;
    });
    (loss_sum / n.max(1) as f64, wrong as f64 / n.max(1) as f64, n)
}

/// The training and validation tasks of a run: the last `valid_size` images of the training
/// file are held out (a fixed split, so every run and resume sees the same sets).
pub fn train_and_validation(
    cfg: &ClassifierRunConfig,
    root: &Path,
) -> Result<(Arc<dyn ImageTask>, Arc<dyn ImageTask>)> {
    let spec = cfg.data.spec()?;
    let full = ImageSet::load(spec, root, Split::Train)?;
    let (mut train_set, valid_set) = full.split_validation(cfg.train.valid_size);
    if let Some(limit) = cfg.train.limit_train {
        train_set = train_set.subset(&(0..limit.min(train_set.len())).collect::<Vec<_>>());
    }
    let d = &cfg.data;
    if d.warp != 0.0 && (d.canvas.is_none() || !(0.0..0.5).contains(&d.warp)) {
        bail!("warp = {} needs a translated task (canvas) and 0 ≤ warp < 0.5", d.warp);
    }
    if d.placements == 0 {
        bail!("placements = 0: each training digit needs at least one placement");
    }
    Ok((d.wrap_warped(train_set, cfg.seed, d.placements, d.warp), d.wrap(valid_set, valid_layout_seed(cfg.seed))))
}

/// Loads an evaluable classifier checkpoint (`config.toml` + `model.safetensors`) on `device`.
pub fn load_classifier(dir: &Path, device: &Device) -> Result<(ClassifierRunConfig, Classifier)> {
    let cfg: ClassifierRunConfig = checkpoint::read_config(dir)?;
    let model = checkpoint::init_and_load(device, cfg.seed, dir, || cfg.model.init(device))?;
    Ok((cfg, model))
}

/// Writes to `out` the DRAW-classifier checkpoint `src` with `hidden` LSTM units
/// ([`crate::models::draw_classifier::DrawClassifier::widened`]: the same logits; the new
/// units drawn from the checkpoint's seed) and `hidden` in its configuration; its `meta.json`
/// is `src`'s. A run of the wider model continues from it with `init = "OUT"`.
pub fn widen(src: &Path, hidden: usize, out: &Path, device: &Device) -> Result<ClassifierRunConfig> {
    let dir = checkpoint::find_dir(src).with_context(|| format!("{}: not a checkpoint", src.display()))?;
    let (mut cfg, model) = load_classifier(&dir, device)?;
    let Classifier::DrawClassifier(m) = model else {
        bail!("{}: widening applies to DRAW classifiers, this holds a {}", dir.display(), cfg.model.kind());
    };
    let wide = crate::device::seeded(device, cfg.seed, || m.widened(hidden, device))?;
    let ClassifierConfig::DrawClassifier(c) = &mut cfg.model else { unreachable!("a DRAW classifier's config") };
    c.hidden = hidden;
    let meta: serde_json::Value = checkpoint::read_meta(&dir)?;
    checkpoint::save_run_dir(out, &Classifier::DrawClassifier(wide), &cfg, &meta, None)?;
    Ok(cfg)
}

/// The image classifiers as the engine trains them: each epoch a seeded order of the training
/// images, randomly shifted and (RAM, dropout) drawn from the run's stream, its resumable state;
/// validated at each epoch's end by the error rate; the best weights tested at the end.
struct Trainer {
    cfg: ClassifierRunConfig,
    train: Arc<dyn ImageTask>,
    valid: Arc<dyn ImageTask>,
    /// The teachers' soft targets, for a distilled run.
    soft: Option<(DistillConfig, SoftTargets)>,
    /// The DRAW classifier's location loss needs the digits' centres.
    locate: bool,
    /// The current epoch's order of the training images.
    order: EpochOrder,
    data_root: PathBuf,
    device: Device,
    eval_device: Device,
}

impl Family for Trainer {
    type Config = ClassifierRunConfig;
    type Model = Classifier;
    type State = Rng;
    type Meta = CheckpointMeta;
    type Summary = Summary;
    const NAME: &'static str = "classifier";
    const UNIT: &'static str = "samples";

    fn config(&self) -> &ClassifierRunConfig {
        &self.cfg
    }

    fn batches_per_epoch(&self) -> Option<usize> {
        Some(self.train.len().div_ceil(self.cfg.train.batch_size))
    }

    fn init(&self, device: &Device) -> Classifier {
        self.cfg.model.init(device)
    }

    fn fresh_state(&self) -> Rng {
        Rng::derive(self.cfg.seed, "train", 0)
    }

    fn compatible(&self, theirs: &ClassifierRunConfig, dir: &Path) -> Result<()> {
        if theirs.model.kind() != self.cfg.model.kind() {
            bail!(
                "init: {} holds a {}, this run trains a {}",
                dir.display(),
                theirs.model.kind(),
                self.cfg.model.kind()
            );
        }
        Ok(())
    }

    fn data_files(&self) -> Vec<PathBuf> {
        self.cfg.data.spec().map(|s| s.located(&self.data_root)).unwrap_or_default()
    }

    fn step(
        &mut self,
        model: Classifier,
        optim: &mut ModuleOptimizer,
        lr: f64,
        rng: &mut Rng,
        at: At,
    ) -> Result<(Classifier, Tally)> {
        let (epoch, b) = at.epoch.expect("classifier runs have epochs");
        let n = self.train.len();
        let (t, side, device) = (&self.cfg.train, self.train.side(), &self.device);
        let idx = self.order.batch(self.cfg.seed, n, t.batch_size, (epoch, b));
        let (mut x, y, centres) = if self.locate {
            self.train.batch_located(idx)
        } else {
            let (x, y) = self.train.batch(idx);
            (x, y, None)
        };
        if t.augment_shift > 0 {
            random_shift(&mut x, side, t.augment_shift, rng);
        }
        let centres = centres.map(|c| Tensor::<2>::from_data(TensorData::new(c, [idx.len(), 2]), device));
        let (images, labels) = to_tensors(x, y, side, device);
        let soft = self.soft.as_ref().map(|(d, targets)| (d, targets.rows(idx, device)));
        let batch = StepBatch { images, labels, centres, soft };
        let (grads, loss, right) = batch_gradients(&model, &batch, t.shards, rng);
        let loss_value: f32 = loss.into_scalar();
        if !loss_value.is_finite() {
            bail!(
                "non-finite loss ({loss_value}) at step {} (epoch {}, batch {b}); weights are left as after step {} — lower the learning rate or set clip_norm",
                at.step + 1,
                epoch + 1,
                at.step
            );
        }
        let model = checked_step(model, grads, optim, lr, t.clip_norm, at.step)?;
        let k = idx.len();
        Ok((
            model,
            Tally {
                count: k,
                sums: vec![("loss", loss_value as f64 * k as f64), ("accuracy", right as f64)],
                extra: vec![],
            },
        ))
    }

    fn validate(&mut self, model: &Classifier, run: &mut Progress<Rng>) -> Result<Validation<CheckpointMeta>> {
        let (vloss, verr, _) = evaluate(model, self.valid.as_ref(), 500, &self.eval_device);
        let per_epoch = self.batches_per_epoch().unwrap_or(1).max(1);
        Ok(Validation {
            score: verr,
            values: vec![("loss", vloss), ("error", verr)],
            line: format!("loss {vloss:.4}, error {:.2}%", 100.0 * verr),
            meta: CheckpointMeta {
                model: self.cfg.model.kind().into(),
                step: run.step,
                epoch: run.step.saturating_sub(1) as usize / per_epoch,
                valid_error: verr,
                test_error: None,
                train_seconds: run.train_seconds,
            },
            stop: None,
        })
    }

    /// Tests the best weights and records their test error in their `meta.json`.
    fn finish(&mut self, run: &Progress<Rng>, best: PathBuf, log: &mut MetricsLog) -> Result<Summary> {
        let (_, best_model) = load_classifier(&best, &self.eval_device)?;
        let test = self.cfg.data.load(&self.data_root, Split::Test, self.cfg.seed)?;
        let (tloss, terr, n_test) = evaluate(&best_model, test.as_ref(), 500, &self.eval_device);
        let mut meta: serde_json::Value = checkpoint::read_meta(&best)?;
        meta["test_error"] = terr.into();
        std::fs::write(best.join(META), serde_json::to_string_pretty(&meta)?)?;
        let epoch = (run.step as usize).div_ceil(self.batches_per_epoch().unwrap_or(1).max(1));
        log.log("test", run.step, Some(epoch), &[("loss", tloss), ("error", terr)])?;
        let valid_error = meta["valid_error"].as_f64().context("best/meta.json: no valid_error")?;
        Ok(Summary { steps: run.step, valid_error, test_error: terr, n_test, best })
    }
}

/// The averaged soft targets of `d`'s teachers on every image of `train`, computed on
/// `device` (or read from the cache in `out/soft-targets`).
fn teachers_targets(
    d: &DistillConfig,
    train: &dyn ImageTask,
    classes: usize,
    out: &Path,
    device: &Device,
) -> Result<SoftTargets> {
    let probabilities_of = |dir: &Path| -> Result<Vec<f32>> {
        let found =
            checkpoint::find_dir(dir).with_context(|| format!("distill: {} is not a checkpoint", dir.display()))?;
        let (teacher_cfg, teacher) = load_classifier(&found, device)?;
        if teacher_cfg.model.input() != train.side() {
            bail!(
                "distill: teacher {} reads {:?} images, the run's are {:?}",
                dir.display(),
                teacher_cfg.model.input(),
                train.side()
            );
        }
        if teacher_cfg.model.classes() != classes {
            bail!("distill: teacher {} has {} classes, the run {classes}", dir.display(), teacher_cfg.model.classes());
        }
        Ok(probabilities(&teacher, train, d.temperature, device))
    };
    distill::soft_targets(d, train.len(), classes, &out.join("soft-targets"), probabilities_of)
}

/// Trains (or resumes) a classifier run and evaluates its best checkpoint on the test set.
pub fn train_classifier(cfg: &ClassifierRunConfig, opts: &RunOptions) -> Result<Summary> {
    let start = engine::start(cfg, opts)?;
    let cfg = start.cfg;
    let t = &cfg.train;
    if let ClassifierConfig::DrawClassifier(m) = &cfg.model {
        m.validate()?;
        if m.locate > 0.0 && cfg.data.canvas.is_none() {
            bail!("locate needs digits placed on a canvas (a translated task: set canvas)");
        }
        if m.locate > 0.0 && t.augment_shift > 0 {
            bail!("locate needs the digits where the generator put them: set augment_shift = 0");
        }
    }
    let locate = matches!(&cfg.model, ClassifierConfig::DrawClassifier(m) if m.locate > 0.0);

    // Data: a fixed train/validation split of the training set, and the test set.
    crate::data::fetch::ensure(cfg.data.spec()?, &opts.data_root)?;
    let (train, valid) = train_and_validation(&cfg, &opts.data_root)?;
    if train.side() != cfg.model.input() {
        bail!("the model expects {:?} images, the data are {:?}", cfg.model.input(), train.side());
    }
    let eval_device = start.device.clone().without_autodiff();
    let soft = match &t.distill {
        None => None,
        Some(d) => {
            // Soft targets belong to fixed images: no random shift, no random warp.
            if t.augment_shift > 0 || cfg.data.warp != 0.0 {
                bail!("distill needs the same images every epoch: set augment_shift = 0 and warp = 0");
            }
            let targets = teachers_targets(d, train.as_ref(), cfg.model.classes(), &opts.out, &eval_device)?;
            Some((d.clone(), targets))
        }
    };
    let trainer = Trainer {
        cfg,
        train,
        valid,
        soft,
        locate,
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

    /// The tests' small runs: `epochs` of batch 20 at 3e-3 on the fixture, 60 validation
    /// images, checkpoints only when validating.
    fn quick(epochs: usize) -> TrainConfig {
        TrainConfig {
            epochs: Some(epochs),
            batch_size: 20,
            lr: 3e-3,
            valid_size: 60,
            checkpoint_every: 0,
            ..config::classifier_defaults()
        }
    }

    /// A batch split into shards has the whole batch's loss, gradients and right answers: a
    /// CNN, and a DRAW classifier with the location loss and soft targets (no dropout, so
    /// nothing random). Then a two-shard run learns, and the same seed repeats it exactly.
    #[test]
    fn sharded_batches_have_the_whole_batch_gradients() {
        use crate::models::cnn::CnnConfig;
        use crate::models::draw_classifier::DrawClassifierConfig;
        let dev = Device::flex().autodiff();
        let (b, side) = (7, 12);
        let images = crate::testing::uniform(b * side * side, 0.0, 1.0, 140);
        let labels: Vec<i64> = (0..b as i64).map(|k| k % 3).collect();
        let soft = crate::testing::uniform(b * 3, 0.0, 1.0, 141);
        let configs = [
            ClassifierConfig::Cnn(CnnConfig { input: [side, side], channels: vec![2, 3], hidden: 5, classes: 3 }),
            ClassifierConfig::DrawClassifier(DrawClassifierConfig {
                glimpses: 3,
                read: 3,
                hidden: 6,
                classes: 3,
                locate: 1.0,
                ..DrawClassifierConfig::new(side)
            }),
        ];
        for cfg in configs {
            let model = crate::device::seeded(&dev, 5, || cfg.init(&dev));
            let (x, y) = to_tensors(images.clone(), labels.clone(), [side, side], &dev);
            let centres = (0..b).flat_map(|k| [k as f32, 11.0 - k as f32]).collect::<Vec<_>>();
            let batch = StepBatch {
                images: x,
                labels: y,
                centres: Some(Tensor::<2>::from_data(TensorData::new(centres, [b, 2]), &dev)),
                soft: Some((
                    &DistillConfig { teachers: vec![], weight: 0.5, temperature: 2.0 },
                    Tensor::<2>::from_data(TensorData::new(soft.clone(), [b, 3]), &dev),
                )),
            };
            let run = |shards| {
                let (g, loss, right) = batch_gradients(&model, &batch, shards, &mut Rng::new(1));
                (super::super::optim::flat_gradients(&model, &g), loss.into_scalar::<f32>(), right)
            };
            let (g1, l1, r1) = run(1);
            for shards in [2, 3, 7] {
                let (g, l, r) = run(shards);
                let scale = g1.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                assert!((l - l1).abs() < 1e-5 * l1.abs().max(1.0), "{}, {shards} shards: loss {l} vs {l1}", cfg.kind());
                assert_eq!(r, r1, "{}, {shards} shards: right answers", cfg.kind());
                assert!(
                    g.iter().zip(&g1).all(|(a, e)| (a - e).abs() <= 1e-4 * scale),
                    "{}, {shards} shards: gradients differ",
                    cfg.kind()
                );
            }
        }

        let dir = tempfile::tempdir().unwrap();
        let cfg = ClassifierRunConfig {
            seed: 4,
            model: ClassifierConfig::Cnn(CnnConfig { input: [28, 28], channels: vec![4], hidden: 16, classes: 10 }),
            data: ImageData::default(),
            train: TrainConfig { shards: 2, limit_train: Some(200), ..quick(2) },
        };
        let first = train_classifier(&cfg, &opts(dir.path(), false)).unwrap();
        let losses = logged_losses(dir.path(), "valid");
        assert!(losses[1] < losses[0], "validation loss fell: {losses:?}");
        let again = tempfile::tempdir().unwrap();
        let second = train_classifier(&cfg, &opts(again.path(), false)).unwrap();
        assert_eq!((second.valid_error, second.test_error), (first.valid_error, first.test_error));
        assert_eq!(logged_losses(again.path(), "train"), logged_losses(dir.path(), "train"));
    }

    /// The losses a run logged for `split`, in order.
    fn logged_losses(out: &Path, split: &str) -> Vec<f64> {
        let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        log.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["split"] == split)
            .map(|v| v["loss"].as_f64().unwrap())
            .collect()
    }

    /// A tiny CNN learns the 300-image fixture in seconds.
    #[test]
    fn cnn_learns_a_tiny_mnist_in_seconds() {
        let out = tempfile::tempdir().unwrap();
        let cfg = ClassifierRunConfig {
            seed: 2,
            model: ClassifierConfig::Cnn(crate::models::cnn::CnnConfig {
                input: [28, 28],
                channels: vec![8, 16],
                hidden: 32,
                classes: 10,
            }),
            data: ImageData::default(),
            train: TrainConfig { patience: None, ..quick(6) },
        };
        let s = train_classifier(&cfg, &opts(out.path(), false)).unwrap();
        assert_eq!((s.steps, s.n_test), (6 * 12, 100));
        assert!(s.test_error < 0.35, "test error {} (chance: 0.9)", s.test_error);
        let losses = logged_losses(out.path(), "valid");
        assert!(losses.last().unwrap() < &(0.6 * losses[0]), "validation loss fell: {losses:?}");
    }

    /// Data settings that cannot make a training set are refused with a clear message.
    #[test]
    fn impossible_data_settings_are_refused() {
        let mlp =
            ClassifierConfig::Mlp(crate::models::mlp::MlpConfig { input: [28, 28], hidden: vec![8], classes: 10 });
        let train = TrainConfig { valid_size: 60, ..config::classifier_defaults() };
        let with = |data: ImageData| ClassifierRunConfig { seed: 1, model: mlp.clone(), data, train: train.clone() };
        let err = |data: ImageData| train_and_validation(&with(data), &fixture()).err().unwrap().to_string();
        let e = err(ImageData { canvas: Some(40), placements: 0, ..ImageData::default() });
        assert!(e.contains("placements = 0"), "{e}");
        let e = err(ImageData { warp: 0.1, ..ImageData::default() });
        assert!(e.contains("needs a translated task"), "{e}");
        let e = err(ImageData { canvas: Some(40), warp: 0.7, ..ImageData::default() });
        assert!(e.contains("0 ≤ warp < 0.5"), "{e}");
        assert!(
            train_and_validation(&with(ImageData { canvas: Some(40), ..ImageData::default() }), &fixture()).is_ok()
        );
    }

    /// `init` starts a run from another run's weights: with a zero learning rate the second
    /// run's model is the first's best, so both report the same errors; a checkpoint of
    /// another model, or no checkpoint, is a clear error.
    #[test]
    fn a_run_starts_from_another_runs_weights() {
        let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mlp = |hidden: usize| {
            ClassifierConfig::Mlp(crate::models::mlp::MlpConfig { input: [28, 28], hidden: vec![hidden], classes: 10 })
        };
        let cfg = ClassifierRunConfig { seed: 2, model: mlp(16), data: ImageData::default(), train: quick(2) };
        let a = train_classifier(&cfg, &opts(first.path(), false)).unwrap();
        let mut next = cfg.clone();
        next.seed = 5; // another fresh initialisation, replaced by the loaded weights
        next.train = TrainConfig { epochs: Some(1), lr: 0.0, init: Some(a.best.clone()), ..cfg.train.clone() };
        let b = train_classifier(&next, &opts(second.path(), false)).unwrap();
        assert_eq!((b.valid_error, b.test_error), (a.valid_error, a.test_error));
        let saved: ClassifierRunConfig = checkpoint::read_config(&b.best).unwrap();
        assert_eq!(saved.train.init.as_deref(), Some(a.best.as_path()), "the checkpoint records where it started");

        let other = tempfile::tempdir().unwrap();
        let mut wrong = next.clone();
        wrong.model = mlp(8);
        let err = format!("{:#}", train_classifier(&wrong, &opts(other.path(), false)).unwrap_err());
        assert!(err.contains("init from") && err.contains("ShapeMismatch"), "{err}");
        wrong.train.init = Some(other.path().join("nothing-here"));
        let err = format!("{:#}", train_classifier(&wrong, &opts(other.path(), false)).unwrap_err());
        assert!(err.contains("not a checkpoint"), "{err}");
    }

    /// `widen` writes a DRAW classifier with a wider LSTM that a wider run starts from: at
    /// lr 0 that run scores what the original scored; widening another model is refused.
    #[test]
    fn a_widened_draw_classifier_starts_a_wider_run() {
        let (first, second, wide) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let draw = |hidden: usize| {
            ClassifierConfig::DrawClassifier(crate::models::draw_classifier::DrawClassifierConfig {
                glimpses: 2,
                read: 4,
                hidden,
                ..crate::models::draw_classifier::DrawClassifierConfig::new(28)
            })
        };
        let cfg = ClassifierRunConfig { seed: 2, model: draw(6), data: ImageData::default(), train: quick(1) };
        let a = train_classifier(&cfg, &opts(first.path(), false)).unwrap();
        let dev = Device::flex();
        let grown = widen(&a.best, 11, wide.path(), &dev).unwrap();
        assert_eq!(grown.model, draw(11));
        let mut next = cfg.clone();
        next.model = draw(11);
        next.train = TrainConfig { lr: 0.0, init: Some(wide.path().to_path_buf()), ..cfg.train.clone() };
        let b = train_classifier(&next, &opts(second.path(), false)).unwrap();
        assert_eq!((b.valid_error, b.test_error), (a.valid_error, a.test_error));
        let err = format!("{:#}", widen(&a.best, 6, &wide.path().join("same"), &dev).unwrap_err());
        assert!(err.contains("more units"), "{err}");

        let mlp = ClassifierRunConfig {
            model: ClassifierConfig::Mlp(crate::models::mlp::MlpConfig {
                input: [28, 28],
                hidden: vec![8],
                classes: 10,
            }),
            ..cfg.clone()
        };
        let m = train_classifier(&mlp, &opts(&first.path().join("mlp"), false)).unwrap();
        let err = format!("{:#}", widen(&m.best, 16, &wide.path().join("mlp"), &dev).unwrap_err());
        assert!(err.contains("applies to DRAW classifiers"), "{err}");
    }

    /// `locate` trains on a translated task (the digits' centres come with each batch) and
    /// is refused where there is no placement to supervise, or where a random shift would
    /// move the digit from it.
    #[test]
    fn a_located_run_needs_placed_digits() {
        use crate::models::draw_classifier::DrawClassifierConfig;
        let out = tempfile::tempdir().unwrap();
        let located = |locate_from: usize| {
            ClassifierConfig::DrawClassifier(DrawClassifierConfig {
                glimpses: 3,
                read: 4,
                hidden: 8,
                locate: 1.0,
                locate_from,
                ..DrawClassifierConfig::new(40)
            })
        };
        let train = TrainConfig { limit_train: Some(100), ..quick(1) };
        let data = ImageData { canvas: Some(40), ..ImageData::default() };
        let cfg = ClassifierRunConfig { seed: 3, model: located(2), data, train };
        let s = train_classifier(&cfg, &opts(out.path(), false)).unwrap();
        assert!(s.test_error.is_finite() && logged_losses(out.path(), "valid").iter().all(|l| l.is_finite()));

        let refused = |cfg: ClassifierRunConfig, want: &str| {
            let dir = tempfile::tempdir().unwrap();
            let err = format!("{:#}", train_classifier(&cfg, &opts(dir.path(), false)).unwrap_err());
            assert!(err.contains(want), "{err}");
        };
        refused(ClassifierRunConfig { model: located(0), ..cfg.clone() }, "locate_from = 0");
        refused(ClassifierRunConfig { model: located(4), ..cfg.clone() }, "a glimpse in 1..=3");
        let plain = ClassifierRunConfig {
            model: ClassifierConfig::DrawClassifier(DrawClassifierConfig {
                glimpses: 3,
                read: 4,
                hidden: 8,
                locate: 1.0,
                ..DrawClassifierConfig::new(28)
            }),
            data: ImageData::default(),
            ..cfg.clone()
        };
        refused(plain, "set canvas");
        let mut shifted = cfg.clone();
        shifted.train.augment_shift = 2;
        refused(shifted, "augment_shift = 0");
    }

    /// A distilled run: the teacher's soft targets are computed once, cached in the run
    /// directory and read back on resume; with weight 1 and the teacher as its own student
    /// at lr 0, the soft loss is zero (the KL of the teacher against itself).
    #[test]
    fn distillation_fits_a_teachers_soft_targets_and_caches_them() {
        let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mlp =
            ClassifierConfig::Mlp(crate::models::mlp::MlpConfig { input: [28, 28], hidden: vec![16], classes: 10 });
        let train = TrainConfig { log_every: 1, ..quick(2) };
        let cfg = ClassifierRunConfig { seed: 2, model: mlp, data: ImageData::default(), train };
        let teacher = train_classifier(&cfg, &opts(first.path(), false)).unwrap();
        let mut student = cfg.clone();
        let distill = DistillConfig { teachers: vec![teacher.best.clone()], weight: 1.0, temperature: 2.0 };
        student.train = TrainConfig {
            epochs: Some(1),
            lr: 0.0,
            init: Some(teacher.best.clone()),
            distill: Some(distill),
            ..cfg.train.clone()
        };
        let s = train_classifier(&student, &opts(second.path(), false)).unwrap();
        assert_eq!(s.test_error, teacher.test_error, "lr 0: the student is the teacher");
        let losses = logged_losses(second.path(), "train");
        assert!(!losses.is_empty() && losses.iter().all(|l| l.abs() < 1e-4), "KL against itself: {losses:?}");
        let cache = second.path().join("soft-targets");
        assert_eq!(std::fs::metadata(cache.join("probs.f32")).unwrap().len(), 240 * 10 * 4);

        // Resumed with more epochs: the targets come from the cache (a damaged cache would fail).
        std::fs::write(cache.join("probs.f32"), [0u8; 8]).unwrap();
        student.train.epochs = Some(2);
        let err = format!("{:#}", train_classifier(&student, &opts(second.path(), true)).unwrap_err());
        assert!(err.contains("probs.f32 holds 8 bytes"), "{err}");

        // Random shifts would change the images under fixed targets: refused.
        student.train.augment_shift = 2;
        let third = tempfile::tempdir().unwrap();
        let err = format!("{:#}", train_classifier(&student, &opts(third.path(), false)).unwrap_err());
        assert!(err.contains("augment_shift = 0"), "{err}");
    }

    #[test]
    fn shift_moves_pixels_and_zero_fills() {
        let mut x = vec![0.0; 9];
        x[4] = 1.0; // centre of 3×3
        let mut rng = Rng::new(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..300 {
            let mut y = x.clone();
            random_shift(&mut y, [3, 3], 1, &mut rng);
            assert_eq!(y.iter().sum::<f32>(), 1.0);
            seen.insert(y.iter().position(|&v| v == 1.0).unwrap());
        }
        assert_eq!(seen.len(), 9, "every offset in [-1,1]² occurs");
    }
}
