//! Training and evaluation of the handwriting networks (Graves 2013): teacher-forced
//! mixture-density loss in nats, held-out NLL per sequence and per point, the window metric of
//! the synthesis network, best checkpoint by validation NLL, exact resume.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::checkpoint;
use super::config::{self, Keys as _, TrainConfig};
use super::engine::{self, At, Family, Progress, RunConfig, Tally, Validation};
use super::metrics::MetricsLog;
use super::optim::{descend_sharded, shard};
use crate::data::handwriting::{Example, StrokeData, StrokeSet, encode};
use crate::data::strokes::OffsetScale;
use crate::models::handwriting::{Handwriting, HandwritingConfig, Sampling, Text};
use crate::rng::Rng;
use crate::run::RunOptions;

/// Everything that defines a run; saved as `config.toml` in its checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandwritingRunConfig {
    /// The seed of every random draw.
    #[serde(default)]
    pub seed: u64,
    /// The data.
    pub data: StrokeData,
    /// The network.
    pub model: HandwritingConfig,
    /// Training hyper-parameters ([`config::HANDWRITING`]).
    #[serde(default = "config::Handwriting::default", with = "config::Handwriting")]
    pub train: TrainConfig,
}

impl RunConfig for HandwritingRunConfig {
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
pub struct HandwritingCheckpointMeta {
    /// Always `handwriting`.
    pub model: String,
    /// `text-lines` or `omniglot`.
    pub data: String,
    /// Steps trained.
    pub step: u64,
    /// Validation NLL, nats per sequence.
    pub valid_nll_nats: f64,
    /// Validation NLL, nats per point.
    pub valid_nll_per_point: f64,
    /// Seconds of training up to these weights.
    pub train_seconds: f64,
    /// Trainable parameters.
    pub parameters: usize,
    /// Offsets were divided by this: multiply generated offsets by it.
    pub scale: OffsetScale,
}

/// Negative log-likelihood of held-out sequences.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct NllMetrics {
    /// Nats per sequence.
    pub nll_nats: f64,
    /// Nats per point.
    pub nll_per_point: f64,
    /// Sequences.
    pub sequences: usize,
    /// Points.
    pub points: usize,
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct HandwritingSummary {
    /// Steps trained.
    pub steps: u64,
    /// Best validation NLL (nats per sequence).
    pub valid_nll_nats: f64,
    /// Path of the best checkpoint.
    pub best: PathBuf,
}

/// Teacher-forcing tensors of a batch: inputs `(0, x₁ … x_{T−1})`, targets `(x₁ … x_T)`,
/// padded `(B, T, 3)`, the mask `(B, T)`, the text, and the number of real points.
pub fn batch_tensors(
    batch: &[Example],
    alphabet: Option<usize>,
    device: &Device,
) -> (Tensor<3>, Tensor<3>, Tensor<2>, Option<Text>, usize) {
    let (b, t) = (batch.len(), batch.iter().map(|e| e.offsets.len()).max().unwrap_or(1).max(1));
    let (mut x, mut y, mut mask) = (vec![0.0f32; b * t * 3], vec![0.0f32; b * t * 3], vec![0.0f32; b * t]);
    for (i, e) in batch.iter().enumerate() {
        for (s, p) in e.offsets.iter().enumerate() {
            y[(i * t + s) * 3..(i * t + s) * 3 + 3].copy_from_slice(p);
            if s + 1 < t {
                x[(i * t + s + 1) * 3..(i * t + s + 1) * 3 + 3].copy_from_slice(p);
            }
            mask[i * t + s] = 1.0;
        }
    }
    let text = alphabet.map(|c| {
        let ids: Vec<Vec<usize>> =
            batch.iter().map(|e| encode(e.text.as_deref().unwrap_or("")).expect("an encodable text")).collect();
        Text::from_indices(&ids, c, 0, device)
    });
    let points = batch.iter().map(|e| e.offsets.len()).sum();
    (
        Tensor::from_data(TensorData::new(x, [b, t, 3]), device),
        Tensor::from_data(TensorData::new(y, [b, t, 3]), device),
        Tensor::from_data(TensorData::new(mask, [b, t]), device),
        text,
        points,
    )
}

/// NLL of `model` on `examples`, in length-sorted batches of 64.
pub fn evaluate(model: &Handwriting, examples: &[Example], device: &Device) -> NllMetrics {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| examples[i].offsets.len());
    let (mut total, mut points) = (0.0f64, 0usize);
    for chunk in order.chunks(64) {
        let batch: Vec<Example> = chunk.iter().map(|&i| examples[i].clone()).collect();
        let (x, y, mask, text, n) = batch_tensors(&batch, model.alphabet(), device);
        let v: Vec<f32> = model.nll(x, y, mask, text.as_ref()).into_data().try_to_vec().expect("f32");
        total += v.iter().map(|&a| a as f64).sum::<f64>();
        points += n;
    }
    NllMetrics {
        nll_nats: total / examples.len().max(1) as f64,
        nll_per_point: total / points.max(1) as f64,
        sequences: examples.len(),
        points,
    }
}

/// The synthesis network's window on held-out texts.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WindowMetrics {
    /// Fraction of samples whose window passed the last character (the stopping rule fired)
    /// with its peak never moving back.
    pub reaches_end_monotonic: f64,
    /// Fraction whose stopping rule fired at all.
    pub reaches_end: f64,
    /// Samples.
    pub n: usize,
    /// The sampling bias used.
    pub bias: f32,
}

/// Writes the texts of `examples` (up to `n`) once each with bias `bias` and checks the window.
pub fn window_metrics(
    model: &Handwriting,
    examples: &[Example],
    n: usize,
    bias: f32,
    seed: u64,
    device: &Device,
) -> Result<WindowMetrics> {
    let texts: Vec<Vec<usize>> =
        examples.iter().take(n).map(|e| encode(e.text.as_deref().unwrap_or(""))).collect::<Result<_>>()?;
    let longest = texts.iter().map(Vec::len).max().unwrap_or(0);
    let how = Sampling { bias, max_steps: 40 * longest + 50 };
    let mut rng = Rng::derive(seed, "window-metric", 0);
    let (mut done, mut mono) = (0usize, 0usize);
    for chunk in texts.chunks(64) {
        for g in model.generate(Some(chunk), 0, None, how, &mut rng, device) {
            done += g.finished as usize;
            mono += (g.finished && g.monotonic()) as usize;
        }
    }
    let k = texts.len().max(1) as f64;
    Ok(WindowMetrics { reaches_end_monotonic: mono as f64 / k, reaches_end: done as f64 / k, n: texts.len(), bias })
}

/// Loads an evaluable checkpoint.
pub fn load_handwriting(
    dir: &Path,
    device: &Device,
) -> Result<(HandwritingRunConfig, HandwritingCheckpointMeta, Handwriting)> {
    let cfg: HandwritingRunConfig = checkpoint::read_config(dir)?;
    let meta: HandwritingCheckpointMeta = checkpoint::read_meta(dir)?;
    let model = checkpoint::init_and_load(device, cfg.seed, dir, || cfg.model.init(device))?;
    Ok((cfg, meta, model))
}

/// The handwriting networks as the engine trains them: teacher-forced batches drawn by
/// `(seed, step)`, validated by held-out NLL; the resumable state is the offsets' scale.
struct Trainer {
    cfg: HandwritingRunConfig,
    data: StrokeSet,
    /// Where Omniglot's archives were read from.
    data_root: PathBuf,
    device: Device,
    eval_device: Device,
}

impl Family for Trainer {
    type Config = HandwritingRunConfig;
    type Model = Handwriting;
    type State = OffsetScale;
    type Meta = HandwritingCheckpointMeta;
    type Summary = HandwritingSummary;
    const NAME: &'static str = "handwriting";
    const UNIT: &'static str = "points";

    fn config(&self) -> &HandwritingRunConfig {
        &self.cfg
    }

    fn batches_per_epoch(&self) -> Option<usize> {
        Some(self.data.train_len().div_ceil(self.cfg.train.batch_size).max(1))
    }

    fn init(&self, device: &Device) -> Handwriting {
        self.cfg.model.init(device)
    }

    fn fresh_state(&self) -> OffsetScale {
        self.data.scale
    }

    fn compatible(&self, theirs: &HandwritingRunConfig, dir: &Path) -> Result<()> {
        if theirs.model != self.cfg.model {
            bail!("init: {} holds a handwriting network of other sizes than this run's", dir.display());
        }
        Ok(())
    }

    fn data_files(&self) -> Vec<PathBuf> {
        self.cfg.data.files(&self.data_root)
    }

    fn step(
        &mut self,
        model: Handwriting,
        optim: &mut ModuleOptimizer,
        lr: f64,
        _: &mut OffsetScale,
        at: At,
    ) -> Result<(Handwriting, Tally)> {
        let t = &self.cfg.train;
        let batch = self.data.train_batch(self.cfg.seed, at.step as usize, t.batch_size);
        let (points, shards) = (batch.iter().map(|e| e.offsets.len()).sum::<usize>(), t.shards.clamp(1, batch.len()));
        let loss_of = |m: &Handwriting, i: usize| {
            let (x, y, mask, text, _) = batch_tensors(shard(&batch, shards, i), m.alphabet(), &self.device);
            // The loss is nats per point, so the learning rate does not depend on line lengths.
            m.nll(x, y, mask, text.as_ref()).sum() / points.max(1) as f32
        };
        let (model, value) = descend_sharded(model, shards, loss_of, optim, lr, t.clip_norm, "loss", at.step)?;
        Ok((model, Tally { count: points, sums: vec![("nll_per_point", value as f64 * points as f64)], extra: vec![] }))
    }

    fn validate(
        &mut self,
        model: &Handwriting,
        run: &mut Progress<OffsetScale>,
    ) -> Result<Validation<HandwritingCheckpointMeta>> {
        let m = evaluate(model, &self.data.valid, &self.eval_device);
        Ok(Validation {
            score: m.nll_nats,
            values: vec![("nll_nats", m.nll_nats), ("nll_per_point", m.nll_per_point)],
            line: format!("NLL {:.1} nats/sequence, {:.4} nats/point", m.nll_nats, m.nll_per_point),
            meta: HandwritingCheckpointMeta {
                model: "handwriting".into(),
                data: self.cfg.data.name().into(),
                step: run.step,
                valid_nll_nats: m.nll_nats,
                valid_nll_per_point: m.nll_per_point,
                train_seconds: run.train_seconds,
                parameters: model.num_params(),
                scale: run.state,
            },
            stop: None,
        })
    }

    fn finish(&mut self, run: &Progress<OffsetScale>, best: PathBuf, _: &mut MetricsLog) -> Result<HandwritingSummary> {
        let (valid_nll_nats, _) = run.best.context("no validation was run")?;
        Ok(HandwritingSummary { steps: run.step, valid_nll_nats, best })
    }
}

/// Trains a handwriting network; `opts.out` gets `last/` (resumable), `best/` and metrics.
pub fn train_handwriting(cfg: &HandwritingRunConfig, opts: &RunOptions) -> Result<HandwritingSummary> {
    if cfg.data.has_text() != cfg.model.window.is_some() {
        bail!("the synthesis network (a `window`) needs text lines, and text lines need the window");
    }
    let start = engine::start(cfg, opts)?;
    let cfg = start.cfg;
    let data: StrokeSet = cfg.data.load(&opts.data_root, cfg.seed)?;
    let mean_len = data.valid.iter().map(|e| e.offsets.len()).sum::<usize>() as f64 / data.valid.len().max(1) as f64;
    tracing::info!(
        "handwriting {} on {}: {} training {}, {} validation sequences of {mean_len:.0} points on average",
        if cfg.model.window.is_some() { "synthesis" } else { "prediction" },
        cfg.data.name(),
        data.train_len(),
        if cfg.data.has_text() { "sentences (rendered afresh each step)" } else { "drawings" },
        data.valid.len(),
    );
    let eval_device = start.device.clone().without_autodiff();
    let trainer = Trainer { cfg, data, data_root: opts.data_root.clone(), device: start.device.clone(), eval_device };
    engine::run(trainer, start.resume.as_deref(), &start.device, opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::handwriting::ALPHABET;
    use burn::optim::GradientsParams;

    /// Lines that write each of three characters as its own two-point stroke (`a` right then
    /// up, `b` up then left, `c` down-right then right), with a little pen noise so that no
    /// point can be predicted exactly without knowing its character.
    fn toy_line(text: &str, rng: &mut Rng) -> Example {
        let mut offsets = Vec::new();
        for ch in text.chars() {
            let d = match ch {
                'a' => [[1.0, 0.0], [0.0, 1.0]],
                'b' => [[0.0, 1.0], [-1.0, 0.0]],
                _ => [[0.7, -0.7], [1.0, 0.0]],
            };
            for (k, p) in d.iter().enumerate() {
                let noise = rng.normals(2, 0.05);
                offsets.push([p[0] + noise[0], p[1] + noise[1], k as f32]);
            }
        }
        Example { offsets, text: Some(text.into()) }
    }

    /// A two-layer synthesis network of `hidden` units, two mixture components and a window
    /// of `k` Gaussians that starts at half a character a point (the pace of [`toy_line`]).
    fn toy_synthesis(hidden: usize, k: usize) -> HandwritingConfig {
        HandwritingConfig { hidden, layers: 2, mixtures: 2, window: Some(k), alphabet: ALPHABET, window_rate: 0.5 }
    }

    #[test]
    fn sharded_steps_have_the_whole_batch_loss_and_gradients() {
        use crate::train::optim::{flat_gradients, shard, sharded_gradients};
        let dev = Device::flex().autodiff();
        let cfg = toy_synthesis(8, 2);
        let model = crate::device::seeded(&dev, 2, || cfg.init(&dev));
        // Lines and texts of different lengths: each shard pads to its own longest.
        let mut rng = Rng::new(4);
        let batch: Vec<Example> = ["ab", "cabba", "c", "bca", "abcabc"].iter().map(|t| toy_line(t, &mut rng)).collect();
        let points: usize = batch.iter().map(|e| e.offsets.len()).sum();
        let run = |shards: usize| {
            let (g, loss) = sharded_gradients(&model, shards, |m, i| {
                let (x, y, mask, text, _) = batch_tensors(shard(&batch, shards, i), m.alphabet(), &dev);
                m.nll(x, y, mask, text.as_ref()).sum() / points as f32
            });
            (loss.into_scalar::<f32>(), flat_gradients(&model, &g))
        };
        let ((l1, g1), (l2, g2)) = (run(1), run(2));
        assert!((l1 - l2).abs() < 1e-4 * l1.abs().max(1.0), "loss {l1} vs {l2}");
        let worst = g1.iter().zip(&g2).map(|(a, b)| (a - b).abs() / a.abs().max(1e-2)).fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "gradients differ by {worst}");
    }

    #[test]
    fn the_window_learns_to_move_along_a_three_character_text() {
        let dev = Device::flex().autodiff();
        // Two points per character: the window starts at that pace (0.5 characters per point).
        let cfg = toy_synthesis(16, 1);
        let mut model = crate::device::seeded(&dev, 1, || cfg.init(&dev));
        let mut optim = crate::train::optim::OptimizerConfig::default().init();
        let mut rng = Rng::new(3);
        // Texts of 3–8 letters over {a, b, c}: too long to be read whole through a window
        // that stays put, so the window has to move.
        let text = |rng: &mut Rng| -> String { (0..4 + rng.below(7)).map(|_| ['a', 'b', 'c'][rng.below(3)]).collect() };
        let mut last = f64::MAX;
        const STEPS: usize = 600;
        for step in 0..STEPS {
            let batch: Vec<Example> = (0..16).map(|_| toy_line(&text(&mut rng), &mut rng)).collect();
            let (x, y, mask, text, points) = batch_tensors(&batch, Some(cfg.alphabet), &dev);
            let loss = model.nll(x, y, mask, text.as_ref()).sum() / points as f32;
            last = loss.clone().into_scalar::<f32>() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(if step < STEPS * 2 / 3 { 1e-2 } else { 3e-3 }, model, grads);
        }
        // The offsets are deterministic given the character under the window, so a window
        // that tracks the text drives the loss far below that of guessing among three shapes.
        assert!(last < -1.0, "loss {last}");
        // On held-out texts the window peak walks a, b, c in order, one step per two points.
        let plain = Device::flex();
        let model = model.valid();
        for text in ["abc", "cab", "bca"] {
            let (x, _, _, t, _) = batch_tensors(&[toy_line(text, &mut rng)], Some(cfg.alphabet), &plain);
            let (_, phi) = model.forward(x, t.as_ref());
            let phi: Vec<f32> = phi.unwrap().into_data().try_to_vec().unwrap(); // (1, 6, 3)
            let peaks: Vec<usize> = phi
                .chunks(3)
                .map(|r| r.iter().enumerate().fold((0, f32::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a }).0)
                .collect();
            assert!(peaks.windows(2).all(|w| w[1] >= w[0]), "{text}: {peaks:?}");
            assert_eq!((peaks[0], peaks[5]), (0, 2), "{text}: {peaks:?}");
        }
    }
}
