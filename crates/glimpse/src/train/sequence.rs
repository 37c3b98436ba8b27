//! The training loop for sequence models on the algorithmic tasks (NTM paper §4): batches drawn
//! from a seeded stream, cost in bits per sequence and bit errors per sequence (the paper's
//! metrics), a fixed validation set, an optional length curriculum, and exact resume.
//!
//! Cost: the Bernoulli cross-entropy of the scored outputs, summed over time and bits, in bits,
//! averaged over sequences. Bit errors: scored output bits whose thresholded prediction
//! (`logit > 0`) differs from the target, averaged over sequences.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::checkpoint;
use super::config::{self, Keys as _, TrainConfig};
use super::engine::{self, At, Family, Progress, RunConfig, Tally, Validation};
use super::metrics::MetricsLog;
use super::optim::{descend_sharded, shard_range};
use crate::data::algorithmic::{Episode, Task, ngram_optimal_cost_bits};
use crate::models::dnc::{Dnc, DncConfig};
use crate::models::lstm::{Lstm, LstmConfig};
use crate::models::ntm::{Ntm, NtmConfig, Trace};
use crate::rng::Rng;
use crate::run::RunOptions;

/// Which sequence model, with its sizes; `[model]` in configs and checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SequenceModelConfig {
    /// Neural Turing Machine.
    Ntm(NtmConfig),
    /// Plain LSTM baseline.
    Lstm(LstmConfig),
    /// Differentiable Neural Computer.
    Dnc(DncConfig),
}

impl SequenceModelConfig {
    /// Builds the model.
    pub fn init(&self, device: &Device) -> SequenceModel {
        match self {
            Self::Ntm(c) => SequenceModel::Ntm(c.init(device)),
            Self::Lstm(c) => SequenceModel::Lstm(c.init(device)),
            Self::Dnc(c) => SequenceModel::Dnc(c.init(device)),
        }
    }
    /// Short name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Ntm(_) => "ntm",
            Self::Lstm(_) => "lstm",
            Self::Dnc(_) => "dnc",
        }
    }
    /// Input and output widths.
    pub fn io(&self) -> (usize, usize) {
        match self {
            Self::Ntm(c) => (c.inputs, c.outputs),
            Self::Lstm(c) => (c.inputs, c.outputs),
            Self::Dnc(c) => (c.inputs, c.outputs),
        }
    }
}

/// One of the sequence models.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // one model per run, never in a collection: boxing buys nothing
pub enum SequenceModel {
    /// See [`Ntm`].
    Ntm(Ntm),
    /// See [`Lstm`].
    Lstm(Lstm),
    /// See [`Dnc`].
    Dnc(Dnc),
}

impl SequenceModel {
    /// One `(B, I)` input per step → the logits of every step, `(T·B, O)` (step-major); `trace`
    /// records the memory models' weightings for batch element 0.
    pub fn forward(&self, inputs: Vec<Tensor<2>>, trace: Option<&mut Trace>) -> Tensor<2> {
        match self {
            Self::Ntm(m) => Tensor::cat(m.forward(inputs, trace), 0),
            Self::Lstm(m) => m.forward(inputs),
            Self::Dnc(m) => Tensor::cat(m.forward(inputs, trace), 0),
        }
    }
}

/// Everything that defines a sequence run; `config.toml` of its checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceRunConfig {
    /// Seed of every random draw.
    #[serde(default)]
    pub seed: u64,
    /// The model.
    pub model: SequenceModelConfig,
    /// The task.
    pub task: Task,
    /// Training hyper-parameters ([`config::SEQUENCE`]).
    #[serde(default = "config::Sequence::default", with = "config::Sequence")]
    pub train: TrainConfig,
}

impl RunConfig for SequenceRunConfig {
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

/// Tensors of an episode: inputs per step, targets and mask flattened over `(T·B)`.
pub struct EpisodeTensors {
    /// `T` tensors `(B, I)`.
    pub inputs: Vec<Tensor<2>>,
    /// `(T·B, O)`.
    pub targets: Tensor<2>,
    /// `(T·B, 1)`.
    pub mask: Tensor<2>,
    /// `B`.
    pub batch: usize,
    /// One-hot categorical targets (softmax cross-entropy) rather than bits.
    pub categorical: bool,
}

/// Moves an episode to `device`.
pub fn episode_tensors(e: &Episode, device: &Device) -> EpisodeTensors {
    let (t, b) = (e.steps, e.batch);
    let i = e.inputs.len() / (t * b);
    let o = e.targets.len() / (t * b);
    let x = Tensor::<2>::from_data(TensorData::new(e.inputs.clone(), [t * b, i]), device);
    EpisodeTensors {
        inputs: (0..t).map(|s| x.clone().narrow(0, s * b, b)).collect(),
        targets: Tensor::from_data(TensorData::new(e.targets.clone(), [t * b, o]), device),
        mask: Tensor::from_data(TensorData::new(e.mask.clone(), [t * b, 1]), device),
        batch: b,
        categorical: e.categorical,
    }
}

/// The cost per sequence (in nats) of logits `(T·B, O)`, summed over scored steps: the
/// Bernoulli cross-entropy of every output bit, `Σ mask · (max(z, 0) − y z + ln(1 + e^{−|z|}))`,
/// or for categorical tasks the softmax cross-entropy `−Σ mask · y · log_softmax(z)`; divided by
/// `B`.
pub fn sequence_cost(logits: Tensor<2>, ep: &EpisodeTensors) -> Tensor<1> {
    let z = logits;
    let ce = if ep.categorical {
        (log_softmax(z, 1) * ep.targets.clone()).neg() // (T·B, O)
    } else {
        let softplus_neg_abs = z.clone().abs().neg().exp().log1p();
        relu(z.clone()) - z * ep.targets.clone() + softplus_neg_abs
    };
    (ce * ep.mask.clone()).sum().div_scalar(ep.batch as f32)
}

/// Errors per sequence: scored output bits predicted wrongly (`logit > 0` predicts 1), or for
/// categorical tasks scored steps whose most likely output is not the target.
pub fn bit_errors(logits: &Tensor<2>, ep: &EpisodeTensors) -> f64 {
    let wrong: f32 = if ep.categorical {
        let pred = logits.clone().argmax(1);
        let truth = ep.targets.clone().argmax(1);
        (pred.not_equal(truth).float() * ep.mask.clone()).sum().into_scalar()
    } else {
        let pred = logits.clone().greater_elem(0.0).float();
        ((pred - ep.targets.clone()).abs() * ep.mask.clone()).sum().into_scalar()
    };
    wrong as f64 / ep.batch as f64
}

/// Metrics over a set of sequences.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default)]
pub struct SequenceMetrics {
    /// Cost in bits per sequence.
    pub cost_bits_per_seq: f64,
    /// Bit errors per sequence.
    pub bit_errors_per_seq: f64,
    /// Sequences evaluated.
    pub n: usize,
}

/// The evaluation stream: `n` sequences of `task` in batches of up to 32, batch `k` drawn from
/// `(seed, stream, k)`. Every evaluation of the same arguments sees the same sequences.
///
/// At length `len` when given; else the lengths are spread evenly over the training range
/// ([`evaluation_lengths`]). A batch has one length (the generators draw one per batch), so
/// drawing each batch's length at random would leave a small set, such as a 64-sequence
/// validation set in two batches, with two lengths that may both be short.
pub fn evaluation_batches<'a>(
    task: &'a Task,
    len: Option<usize>,
    n: usize,
    seed: u64,
    stream: &'a str,
) -> impl Iterator<Item = Episode> + 'a {
    let lengths = match len {
        Some(l) => vec![(l, n)],
        None => evaluation_lengths(task.len_range(), n),
    };
    // Each length's sequences in batches of up to 32.
    let plan: Vec<(usize, usize)> = lengths
        .into_iter()
        .flat_map(|(l, count)| (0..count.div_ceil(32)).map(move |i| (l, (count - 32 * i).min(32))))
        .collect();
    plan.into_iter().enumerate().map(move |(k, (l, b))| {
        let mut rng = Rng::derive(seed, stream, k as u64);
        task.sample_len(b, l, &mut rng)
    })
}

/// `n` sequences spread evenly over the lengths `lo..=hi`: sequence `j` has length
/// `lo + ⌊j (hi − lo + 1) / n⌋`, so every length has ⌊n / lengths⌋ or one more sequences when
/// `n` covers the range. Returns `(length, sequences)` for each length used, in order.
pub fn evaluation_lengths((lo, hi): (usize, usize), n: usize) -> Vec<(usize, usize)> {
    let span = hi - lo + 1;
    let mut out: Vec<(usize, usize)> = Vec::new();
    for j in 0..n {
        let l = lo + j * span / n;
        match out.last_mut() {
            Some((last, count)) if *last == l => *count += 1,
            _ => out.push((l, 1)),
        }
    }
    out
}

/// Evaluates `model` on the sequences of [`evaluation_batches`].
pub fn evaluate(
    model: &SequenceModel,
    task: &Task,
    len: Option<usize>,
    n: usize,
    seed: u64,
    stream: &str,
    device: &Device,
) -> SequenceMetrics {
    let (mut cost, mut errors, mut done) = (0.0, 0.0, 0);
    for e in evaluation_batches(task, len, n, seed, stream) {
        let b = e.batch;
        let ep = episode_tensors(&e, device);
        let logits = model.forward(ep.inputs.clone(), None);
        let c: f32 = sequence_cost(logits.clone(), &ep).into_scalar();
        cost += c as f64 * b as f64;
        errors += bit_errors(&logits, &ep) * b as f64;
        done += b;
    }
    SequenceMetrics {
        cost_bits_per_seq: cost / done as f64 / std::f64::consts::LN_2,
        bit_errors_per_seq: errors / done as f64,
        n: done,
    }
}

/// For the N-grams task: the cost in bits per sequence of the Bayes-optimal predictor
/// ([`ngram_optimal_cost_bits`]) on exactly the sequences [`evaluate`] draws with the same
/// arguments — the lower bound to compare a model's cost with. `None` for other tasks.
pub fn ngram_optimal_cost(task: &Task, len: Option<usize>, n: usize, seed: u64, stream: &str) -> Option<f64> {
    let Task::NGrams { n: order, .. } = *task else { return None };
    let (mut cost, mut done) = (0.0, 0);
    for e in evaluation_batches(task, len, n, seed, stream) {
        let b = e.batch;
        for j in 0..b {
            // The bits: each step's input, then the last step's target.
            let mut bits: Vec<u8> = (0..e.steps).map(|t| e.inputs[t * b + j] as u8).collect();
            bits.push(e.targets[(e.steps - 1) * b + j] as u8);
            cost += ngram_optimal_cost_bits(&bits, order);
        }
        done += b;
    }
    Some(cost / done as f64)
}

/// What a sequence run carries across a resume (in `last/meta.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SequenceRunState {
    /// The episode stream.
    pub rng: Rng,
    /// Sequences trained on when validation bit errors first fell below 0.01 per sequence.
    pub converged_at_sequences: Option<u64>,
}

/// Metadata of an evaluable sequence checkpoint (`best/meta.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SequenceCheckpointMeta {
    /// Model kind.
    pub model: String,
    /// Task name.
    pub task: String,
    /// Steps trained.
    pub step: u64,
    /// Sequences trained on.
    pub sequences: u64,
    /// Validation metrics of these weights.
    pub valid: SequenceMetrics,
    /// Trainable parameters of the model.
    #[serde(default)]
    pub parameters: usize,
    /// Seconds of training up to these weights.
    pub train_seconds: f64,
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct SequenceSummary {
    /// Steps trained.
    pub steps: u64,
    /// Best validation metrics.
    pub valid: SequenceMetrics,
    /// Sequences to reach < 0.01 validation bit errors, if reached.
    pub converged_at_sequences: Option<u64>,
    /// Training seconds.
    pub train_seconds: f64,
    /// The best checkpoint.
    pub best: PathBuf,
}

/// Loads an evaluable sequence checkpoint.
pub fn load_sequence_model(dir: &Path, device: &Device) -> Result<(SequenceRunConfig, SequenceModel)> {
    let cfg: SequenceRunConfig = checkpoint::read_config(dir)?;
    let model = checkpoint::init_and_load(device, cfg.seed, dir, || cfg.model.init(device))?;
    Ok((cfg, model))
}

/// Writes to `out` the NTM checkpoint `src` with its learned first memory grown to `rows`
/// rows ([`crate::models::ntm::Ntm::with_memory_rows`]) and `memory_n = rows` in its
/// configuration; its `meta.json` is `src`'s. A run continues from it with `init = "OUT"`.
pub fn grow_memory(src: &Path, rows: usize, out: &Path, device: &Device) -> Result<SequenceRunConfig> {
    let dir = checkpoint::find_dir(src).with_context(|| format!("{}: not a checkpoint", src.display()))?;
    let (mut cfg, model) = load_sequence_model(&dir, device)?;
    let SequenceModel::Ntm(ntm) = model else {
        bail!("{}: memory growth applies to NTM checkpoints, this holds a {}", dir.display(), cfg.model.kind());
    };
    let grown = ntm.with_memory_rows(rows)?;
    cfg.model = SequenceModelConfig::Ntm(grown.config().clone());
    let meta: serde_json::Value = checkpoint::read_meta(&dir)?;
    checkpoint::save_run_dir(out, &SequenceModel::Ntm(grown), &cfg, &meta, None)?;
    Ok(cfg)
}

/// The length cap of the curriculum at `step`.
fn curriculum_cap(task: &Task, t: &TrainConfig, step: u64) -> Option<usize> {
    (t.curriculum_steps > 0).then(|| {
        let (lo, hi) = task.len_range();
        lo + ((hi - lo) as f64 * (step as f64 / t.curriculum_steps as f64).min(1.0)).round() as usize
    })
}

/// The memory models as the engine trains them: episodes drawn from one seeded stream (the
/// curriculum capping their length), validated on a fixed set by cost, stopping once the bit
/// errors fall below `stop_below_bit_errors`.
struct Trainer {
    cfg: SequenceRunConfig,
    device: Device,
    eval_device: Device,
}

impl Family for Trainer {
    type Config = SequenceRunConfig;
    type Model = SequenceModel;
    type State = SequenceRunState;
    type Meta = SequenceCheckpointMeta;
    type Summary = SequenceSummary;
    const NAME: &'static str = "sequence";
    const UNIT: &'static str = "sequences";

    fn config(&self) -> &SequenceRunConfig {
        &self.cfg
    }

    fn batches_per_epoch(&self) -> Option<usize> {
        None
    }

    fn init(&self, device: &Device) -> SequenceModel {
        self.cfg.model.init(device)
    }

    fn fresh_state(&self) -> SequenceRunState {
        SequenceRunState { rng: Rng::derive(self.cfg.seed, "episodes", 0), converged_at_sequences: None }
    }

    fn compatible(&self, theirs: &SequenceRunConfig, dir: &Path) -> Result<()> {
        if theirs.model != self.cfg.model {
            bail!(
                "init: {} holds a {} of other sizes or options than this run's {}",
                dir.display(),
                theirs.model.kind(),
                self.cfg.model.kind()
            );
        }
        Ok(())
    }

    fn step(
        &mut self,
        model: SequenceModel,
        optim: &mut ModuleOptimizer,
        lr: f64,
        state: &mut SequenceRunState,
        at: At,
    ) -> Result<(SequenceModel, Tally)> {
        let t = &self.cfg.train;
        let cap = curriculum_cap(&self.cfg.task, t, at.step);
        let e = self.cfg.task.sample(t.batch_size, cap, &mut state.rng);
        let shards = t.shards.clamp(1, e.batch);
        // Per shard: its bit errors summed over its sequences (for the log).
        let wrong = std::sync::Mutex::new(vec![0.0f64; shards]);
        let loss_of = |m: &SequenceModel, i: usize| {
            let part = e.rows(shard_range(e.batch, shards, i));
            let ep = episode_tensors(&part, &self.device);
            let logits = m.forward(ep.inputs.clone(), None);
            wrong.lock().expect("no panics while held")[i] = bit_errors(&logits, &ep) * part.batch as f64;
            sequence_cost(logits, &ep) * (part.batch as f32 / e.batch as f32)
        };
        let (model, value) = descend_sharded(model, shards, loss_of, optim, lr, t.clip_norm, "loss", at.step)?;
        let errors = wrong.into_inner().expect("no panics").iter().sum::<f64>() / e.batch as f64;
        let n = e.batch as f64;
        let tally = Tally {
            count: e.batch,
            sums: vec![
                ("cost_bits_per_seq", value as f64 / std::f64::consts::LN_2 * n),
                ("bit_errors_per_seq", errors * n),
            ],
            extra: vec![
                ("sequences", ((at.step + 1) * t.batch_size as u64) as f64),
                ("max_len", cap.unwrap_or(self.cfg.task.len_range().1) as f64),
            ],
        };
        Ok((model, tally))
    }

    fn validate(
        &mut self,
        model: &SequenceModel,
        run: &mut Progress<SequenceRunState>,
    ) -> Result<Validation<SequenceCheckpointMeta>> {
        let t = &self.cfg.train;
        let v = evaluate(model, &self.cfg.task, None, t.valid_size, self.cfg.seed, "valid", &self.eval_device);
        let sequences = run.step * t.batch_size as u64;
        if run.state.converged_at_sequences.is_none() && v.bit_errors_per_seq < 0.01 {
            run.state.converged_at_sequences = Some(sequences);
        }
        Ok(Validation {
            score: v.cost_bits_per_seq,
            values: vec![
                ("cost_bits_per_seq", v.cost_bits_per_seq),
                ("bit_errors_per_seq", v.bit_errors_per_seq),
                ("sequences", sequences as f64),
            ],
            line: format!("cost {:.3} bits/seq, {:.3} bit errors/seq", v.cost_bits_per_seq, v.bit_errors_per_seq),
            stop: t
                .stop_below_bit_errors
                .filter(|&s| v.bit_errors_per_seq < s)
                .map(|_| format!("validation bit errors {:.4} per sequence", v.bit_errors_per_seq)),
            meta: SequenceCheckpointMeta {
                model: self.cfg.model.kind().into(),
                task: self.cfg.task.name().into(),
                step: run.step,
                sequences,
                valid: v,
                parameters: model.num_params(),
                train_seconds: run.train_seconds,
            },
        })
    }

    fn finish(
        &mut self,
        run: &Progress<SequenceRunState>,
        best: PathBuf,
        _: &mut MetricsLog,
    ) -> Result<SequenceSummary> {
        let meta: SequenceCheckpointMeta = checkpoint::read_meta(&best)?;
        Ok(SequenceSummary {
            steps: run.step,
            valid: meta.valid,
            converged_at_sequences: run.state.converged_at_sequences,
            train_seconds: run.train_seconds,
            best,
        })
    }
}

/// Trains (or resumes) a sequence run. Data need no files, so `opts.data_root` is unused.
pub fn train_sequence(cfg: &SequenceRunConfig, opts: &RunOptions) -> Result<SequenceSummary> {
    cfg.task.validate().map_err(anyhow::Error::msg)?;
    if cfg.model.io() != (cfg.task.input_size(), cfg.task.output_size()) {
        bail!(
            "the model reads {} and writes {} features per step; the {} task needs {} and {}",
            cfg.model.io().0,
            cfg.model.io().1,
            cfg.task.name(),
            cfg.task.input_size(),
            cfg.task.output_size()
        );
    }
    let start = engine::start(cfg, opts)?;
    tracing::info!("{} on {}", start.cfg.model.kind(), start.cfg.task.name());
    let eval_device = start.device.clone().without_autodiff();
    let trainer = Trainer { cfg: start.cfg, device: start.device.clone(), eval_device };
    engine::run(trainer, start.resume.as_deref(), &start.device, opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::optim::OptimizerConfig;

    #[test]
    fn evaluation_spreads_lengths_over_the_training_range() {
        // 64 sequences over lengths 1–20: every length, 3 or 4 sequences each, in order.
        let l = evaluation_lengths((1, 20), 64);
        assert_eq!(l.iter().map(|&(len, _)| len).collect::<Vec<_>>(), (1..=20).collect::<Vec<_>>());
        assert!(l.iter().all(|&(_, c)| c == 3 || c == 4), "{l:?}");
        assert_eq!(l.iter().map(|&(_, c)| c).sum::<usize>(), 64);
        // Fewer sequences than lengths: spread, never repeated; one length takes them all.
        assert_eq!(evaluation_lengths((1, 20), 4), vec![(1, 1), (6, 1), (11, 1), (16, 1)]);
        assert_eq!(evaluation_lengths((7, 7), 70), vec![(7, 70)]);
        assert!(evaluation_lengths((1, 20), 0).is_empty());
        // The batches: up to 32 sequences of one length; the mean length is the range's.
        let task = Task::Copy { bits: 8, min_len: 1, max_len: 20 };
        let batches: Vec<Episode> = evaluation_batches(&task, None, 1000, 1, "valid").collect();
        assert_eq!(batches.iter().map(|e| e.batch).sum::<usize>(), 1000);
        assert!(batches.iter().all(|e| e.batch <= 32));
        let mean = batches.iter().map(|e| (e.len * e.batch) as f64).sum::<f64>() / 1000.0;
        assert!((mean - 10.5).abs() < 0.05, "mean length {mean}");
        // A fixed length keeps it; the same arguments draw the same sequences.
        assert!(evaluation_batches(&task, Some(80), 100, 1, "test").all(|e| e.len == 80));
        let again: Vec<Episode> = evaluation_batches(&task, None, 1000, 1, "valid").collect();
        assert!(batches.iter().zip(&again).all(|(a, b)| a.inputs == b.inputs));
    }

    #[test]
    fn cost_and_bit_errors_count_only_scored_outputs() {
        let dev = Device::flex();
        let e = Episode {
            steps: 2,
            batch: 1,
            inputs: vec![0.0, 0.0],
            targets: vec![1.0, 0.0, 1.0, 0.0],
            mask: vec![0.0, 1.0],
            len: 1,
            categorical: false,
        };
        let ep = episode_tensors(&e, &dev);
        // Step 0 is unscored; step 1 scores logits (2, 0) against targets (1, 0): no error,
        // since a logit of 0 predicts 0.
        let logits = Tensor::<2>::from_data(TensorData::new(vec![-9.0f32, 9.0, 2.0, 0.0], [2, 2]), &dev);
        let c: f32 = sequence_cost(logits.clone(), &ep).into_scalar();
        let want = (1.0f64 + (-2.0f64).exp()).ln() + 2f64.ln();
        assert!((c as f64 - want).abs() < 1e-5, "{c} vs {want}");
        assert_eq!(bit_errors(&logits, &ep), 0.0);
        let wrong = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 0.0, -1.0, 3.0], [2, 2]), &dev);
        assert_eq!(bit_errors(&wrong, &ep), 2.0);
        // Extreme logits stay finite.
        let huge = Tensor::<2>::from_data(TensorData::new(vec![1e30f32, -1e30, -1e30, 1e30], [2, 2]), &dev);
        assert!(sequence_cost(huge.clone(), &ep).into_scalar::<f32>().is_finite());
        // Categorical: the answer at step 1 is class 0; logits (2, 0) are right, (−1, 3) wrong.
        let cat = EpisodeTensors { categorical: true, ..episode_tensors(&e, &dev) };
        let c: f32 = sequence_cost(logits.clone(), &cat).into_scalar();
        assert!((c as f64 - (1.0 + (-2.0f64).exp()).ln()).abs() < 1e-5);
        assert_eq!(bit_errors(&logits, &cat), 0.0);
        assert_eq!(bit_errors(&wrong, &cat), 1.0);
        assert!(sequence_cost(huge, &cat).into_scalar::<f32>().is_finite());
    }

    #[test]
    fn sharded_steps_have_the_whole_batch_gradients_for_ntm_and_dnc() {
        use crate::train::optim::{flat_gradients, shard_range, sharded_gradients};
        let dev = Device::flex().autodiff();
        let base = copy_run(1);
        let (i, o) = (base.task.input_size(), base.task.output_size());
        let dnc = SequenceModelConfig::Dnc(DncConfig {
            controller_size: 16,
            memory_n: 8,
            memory_w: 4,
            ..DncConfig::new(i, o)
        });
        for cfg in [base.model.clone(), dnc] {
            let model = crate::device::seeded(&dev, 5, || cfg.init(&dev));
            let e = base.task.sample(5, None, &mut Rng::new(6));
            // A shard of the episode holds exactly its rows.
            let part = e.rows(1..3);
            assert_eq!((part.batch, part.steps), (2, e.steps));
            let w = e.inputs.len() / (e.steps * e.batch);
            assert_eq!(part.inputs[..w], e.inputs[w..2 * w]);
            let run = |shards: usize| {
                let (g, loss) = sharded_gradients(&model, shards, |m, k| {
                    let part = e.rows(shard_range(e.batch, shards, k));
                    let ep = episode_tensors(&part, &dev);
                    let logits = m.forward(ep.inputs.clone(), None);
                    sequence_cost(logits, &ep) * (part.batch as f32 / e.batch as f32)
                });
                (loss.into_scalar::<f32>(), flat_gradients(&model, &g))
            };
            let ((l1, g1), (l2, g2)) = (run(1), run(2));
            assert!((l1 - l2).abs() < 1e-4 * l1.abs(), "{}: loss {l1} vs {l2}", cfg.kind());
            let worst = g1.iter().zip(&g2).map(|(a, b)| (a - b).abs() / a.abs().max(1e-2)).fold(0.0f32, f32::max);
            assert!(worst < 1e-3, "{}: gradients differ by {worst}", cfg.kind());
        }
    }

    fn copy_run(steps: usize) -> SequenceRunConfig {
        let task = Task::Copy { bits: 4, min_len: 1, max_len: 5 };
        let mut model = NtmConfig::new(task.input_size(), task.output_size());
        model.memory_n = 16;
        model.memory_m = 8;
        model.controller_size = 64;
        SequenceRunConfig {
            seed: 3,
            model: SequenceModelConfig::Ntm(model),
            task,
            train: TrainConfig {
                steps: Some(steps),
                batch_size: 16,
                lr: 1e-2,
                optimizer: OptimizerConfig::default(),
                valid_size: 64,
                valid_every: 100,
                checkpoint_every: 100,
                log_every: 50,
                ..config::sequence_defaults()
            },
        }
    }

    fn opts(out: &Path) -> RunOptions {
        crate::testing::run_in(out, out, false)
    }

    /// The NTM learns to copy sequences of length ≤ 5 (4-bit vectors) in seconds.
    #[test]
    fn ntm_learns_short_copy_in_seconds() {
        let out = tempfile::tempdir().unwrap();
        let s = train_sequence(&copy_run(1000), &opts(out.path())).unwrap();
        assert!(s.valid.bit_errors_per_seq < 0.1, "bit errors per sequence: {:?}", s.valid);
        // The best checkpoint evaluates the same again, and at length 5.
        let (cfg, model) = load_sequence_model(&s.best, &Device::flex()).unwrap();
        let v = evaluate(&model, &cfg.task, None, 64, cfg.seed, "valid", &Device::flex());
        assert!((v.cost_bits_per_seq - s.valid.cost_bits_per_seq).abs() < 1e-3);
        let at5 = evaluate(&model, &cfg.task, Some(5), 64, 0, "test", &Device::flex());
        assert!(at5.bit_errors_per_seq < 0.5, "length 5: {at5:?}");
    }

    /// `init` starts a run from a checkpoint's weights: at a negligible rate the new run
    /// validates as the checkpoint did; a model of other sizes is refused with a clear error.
    #[test]
    fn init_starts_from_a_checkpoint_and_refuses_other_sizes() {
        let out = tempfile::tempdir().unwrap();
        let first = train_sequence(&copy_run(300), &opts(&out.path().join("a"))).unwrap();
        let mut cfg = copy_run(100);
        cfg.train.lr = 1e-12;
        cfg.train.init = Some(first.best.clone());
        let again = train_sequence(&cfg, &opts(&out.path().join("b"))).unwrap();
        assert!((again.valid.cost_bits_per_seq - first.valid.cost_bits_per_seq).abs() < 1e-2, "{again:?} {first:?}");
        cfg.train.init = None;
        let fresh = train_sequence(&cfg, &opts(&out.path().join("c"))).unwrap();
        assert!(fresh.valid.cost_bits_per_seq > first.valid.cost_bits_per_seq + 1.0, "{fresh:?} {first:?}");
        if let SequenceModelConfig::Ntm(m) = &mut cfg.model {
            m.memory_n = 32;
        }
        cfg.train.init = Some(first.best);
        let err = format!("{:#}", train_sequence(&cfg, &opts(&out.path().join("d"))).unwrap_err());
        assert!(err.contains("other sizes"), "{err}");
    }

    /// `grow_memory` writes a checkpoint with more memory rows that evaluates and that a run of
    /// the larger size starts from; a model without a learned first memory is refused.
    #[test]
    fn a_grown_memory_checkpoint_is_a_starting_point_for_a_larger_run() {
        let out = tempfile::tempdir().unwrap();
        let mut cfg = copy_run(200);
        if let SequenceModelConfig::Ntm(m) = &mut cfg.model {
            m.memory_init = crate::models::ntm::MemoryInit::Learned;
        }
        let first = train_sequence(&cfg, &opts(&out.path().join("a"))).unwrap();
        let dev = Device::flex();
        let grown_dir = out.path().join("grown");
        let grown = grow_memory(&first.best, 32, &grown_dir, &dev).unwrap();
        let SequenceModelConfig::Ntm(m) = &grown.model else { unreachable!() };
        assert_eq!(m.memory_n, 32);
        let (saved, model) = load_sequence_model(&grown_dir, &dev).unwrap();
        assert_eq!(saved, grown);
        let v = evaluate(&model, &saved.task, None, 64, saved.seed, "valid", &dev);
        assert!(v.cost_bits_per_seq.is_finite(), "{v:?}");

        let mut next = grown.clone();
        next.train = TrainConfig { steps: Some(100), lr: 1e-12, init: Some(grown_dir.clone()), ..cfg.train.clone() };
        let again = train_sequence(&next, &opts(&out.path().join("b"))).unwrap();
        assert!((again.valid.cost_bits_per_seq - v.cost_bits_per_seq).abs() < 1e-2, "{again:?} {v:?}");

        let constant = train_sequence(&copy_run(100), &opts(&out.path().join("c"))).unwrap();
        let err = format!("{:#}", grow_memory(&constant.best, 32, &out.path().join("d"), &dev).unwrap_err());
        assert!(err.contains("no learned first memory"), "{err}");
    }

    /// The DNC learns the same short copy task in seconds.
    #[test]
    fn dnc_learns_short_copy_in_seconds() {
        let out = tempfile::tempdir().unwrap();
        let mut cfg = copy_run(1000);
        let (i, o) = (cfg.task.input_size(), cfg.task.output_size());
        cfg.model = SequenceModelConfig::Dnc(DncConfig {
            controller_size: 64,
            memory_n: 16,
            memory_w: 8,
            ..DncConfig::new(i, o)
        });
        let s = train_sequence(&cfg, &opts(out.path())).unwrap();
        // Chance is about 6 bit errors per sequence (half of 3 × 4 bits on average).
        assert!(s.valid.bit_errors_per_seq < 0.5, "bit errors per sequence: {:?}", s.valid);
    }

    /// A plain LSTM learns the bAbI-style single-supporting-fact questions far above chance.
    #[test]
    fn lstm_answers_single_supporting_fact_questions() {
        let out = tempfile::tempdir().unwrap();
        let task = Task::Babi { tasks: vec![1], min_facts: 1, max_facts: 3 };
        let (i, o) = (task.input_size(), task.output_size());
        let cfg = SequenceRunConfig {
            seed: 5,
            model: SequenceModelConfig::Lstm(LstmConfig { inputs: i, outputs: o, hidden: 64, layers: 1 }),
            task,
            train: TrainConfig { lr: 3e-3, valid_every: 200, ..copy_run(2000).train },
        };
        let s = train_sequence(&cfg, &opts(out.path())).unwrap();
        // Six places: guessing is wrong 5 times in 6.
        assert!(s.valid.bit_errors_per_seq < 0.4, "answer error: {:?}", s.valid);
    }

    #[test]
    fn ngram_lower_bound_is_below_a_coin_and_matches_the_scored_steps() {
        let task = Task::NGrams { n: 3, len: 60 };
        let opt = ngram_optimal_cost(&task, None, 40, 1, "test").unwrap();
        // 58 scored bits per sequence; a fair coin costs one bit each.
        assert!(opt > 10.0 && opt < 58.0, "{opt}");
        assert_eq!(ngram_optimal_cost(&Task::Copy { bits: 2, min_len: 1, max_len: 2 }, None, 4, 1, "test"), None);
    }

    /// Interrupting and resuming gives the run an uninterrupted run would have.
    #[test]
    fn resume_reproduces_the_uninterrupted_run() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let full = train_sequence(&copy_run(200), &opts(a.path())).unwrap();
        train_sequence(&copy_run(100), &opts(b.path())).unwrap();
        let resumed = train_sequence(&copy_run(200), &RunOptions { resume: true, ..opts(b.path()) }).unwrap();
        assert_eq!(full.steps, resumed.steps);
        assert_eq!(full.valid.cost_bits_per_seq, resumed.valid.cost_bits_per_seq);
    }
}
