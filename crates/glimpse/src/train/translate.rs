//! The training loop for sequence-to-sequence models (the attention LSTM, its no-attention
//! baseline, the Transformer) on text-to-text tasks: date normalisation and German→English.
//!
//! Batches are a pure function of `(seed, step)`: dates are drawn afresh from the training
//! dates by `Rng::derive(seed, "batch", step)`; sentence pairs are visited in a seeded
//! permutation per epoch, grouped by length (pools of 50 batches sorted by source length, then
//! shuffled), so a resumed run continues exactly. Loss: the mean cross-entropy per target token
//! under teacher forcing. Validation: greedy exact match (dates) or BLEU (sentences); the best
//! checkpoint is kept. Checkpoints carry their tokenizers (`tokenizers.json`), so a checkpoint
//! alone can translate.

use crate::defaults;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::bleu::{self, Bleu};
use super::checkpoint;
use super::config::{self, Keys as _, TrainConfig};
use super::engine::{self, At, Family, Progress, RunConfig, Tally, Validation};
use super::metrics::MetricsLog;
use super::optim::{descend_sharded, shard};
use crate::data::dates::{DateSplit, DateTask, Pair};
use crate::data::de_en;
use crate::data::text::{BOS, EOS, PAD, Tokenizer};
use crate::models::decoding::pad_batch;
use crate::models::decoding::{self, Hypothesis};
use crate::models::seq2seq::{Seq2seq, Seq2seqConfig};
use crate::models::transformer::{Transformer, TransformerConfig};
use crate::rng::Rng;
use crate::run::RunOptions;

/// The file holding a checkpoint's tokenizers.
pub const TOKENIZERS: &str = "tokenizers.json";

/// Which task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TaskConfig {
    /// Dates in many formats and languages → `YYYY-MM-DD`; character tokens.
    Dates {
        /// glibc locales to take names from (empty: the default eight).
        #[serde(default)]
        locales: Vec<String>,
        /// Folder of the locale sources (default `/usr/share/i18n/locales`).
        #[serde(default)]
        locale_dir: Option<PathBuf>,
        /// Held-out examples scored by each validation.
        #[serde(default = "defaults::usize::<1000>")]
        valid_examples: usize,
        /// Held-out examples of the test set (fixed by the seed 0, the same for every run).
        #[serde(default = "defaults::usize::<5000>")]
        test_examples: usize,
        /// Test dates written in the held-out formats only, never drawn in training
        /// ([`crate::data::dates::FORMATS`]), reported on their own.
        #[serde(default = "defaults::usize::<2000>")]
        held_out_format_examples: usize,
        /// The time-zone table whose zone names are the datelines' places (default
        /// `/usr/share/zoneinfo/zone.tab`).
        #[serde(default)]
        zone_table: Option<PathBuf>,
    },
    /// German→English sentences from the Ding dictionary; BPE subwords.
    DeEn {
        /// The dictionary file (default `/usr/share/trans/de-en`).
        #[serde(default)]
        path: Option<PathBuf>,
        /// BPE merges learned on each side's training sentences.
        #[serde(default = "defaults::usize::<4000>")]
        bpe_merges: usize,
        /// Training pairs with more source or target tokens are skipped.
        #[serde(default = "defaults::usize::<50>")]
        max_tokens: usize,
        /// Validation sentences scored by each validation (0: all).
        #[serde(default)]
        valid_examples: usize,
    },
}

/// The model, with its sizes; the vocabulary sizes are filled in from the tokenizers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TranslatorConfig {
    /// LSTM encoder-decoder, with or without attention.
    Seq2seq(Seq2seqConfig),
    /// Encoder-decoder Transformer.
    Transformer(TransformerConfig),
}

impl TranslatorConfig {
    /// Builds the model.
    pub fn init(&self, device: &Device) -> Translator {
        match self {
            Self::Seq2seq(c) => Translator::Seq2seq(c.init(device)),
            Self::Transformer(c) => Translator::Transformer(c.init(device)),
        }
    }

    /// Sets the vocabulary sizes (a new run takes them from its tokenizers).
    pub fn set_vocab(&mut self, src: usize, tgt: usize) {
        match self {
            Self::Seq2seq(c) => (c.src_vocab, c.tgt_vocab) = (src, tgt),
            Self::Transformer(c) => (c.src_vocab, c.tgt_vocab) = (src, tgt),
        }
    }

    /// The source and target vocabulary sizes.
    pub fn vocab(&self) -> (usize, usize) {
        match self {
            Self::Seq2seq(c) => (c.src_vocab, c.tgt_vocab),
            Self::Transformer(c) => (c.src_vocab, c.tgt_vocab),
        }
    }

    /// Short name (`seq2seq`, `seq2seq-noattn`, `transformer`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Seq2seq(c) if c.attention.is_none() => "seq2seq-noattn",
            Self::Seq2seq(_) => "seq2seq",
            Self::Transformer(_) => "transformer",
        }
    }
}

/// One of the sequence-to-sequence models.
// A process holds one or two of these; boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Translator {
    /// See [`Seq2seq`].
    Seq2seq(Seq2seq),
    /// See [`Transformer`].
    Transformer(Transformer),
}

impl Translator {
    /// Teacher-forced logits `(B, T, V)` of `tgt_in (B, T)` given padded `src (B, S)`.
    pub fn logits(&self, src: Tensor<2, Int>, lengths: &[usize], tgt_in: Tensor<2, Int>) -> Tensor<3> {
        match self {
            Self::Seq2seq(m) => m.forward(&m.encode(src, lengths), tgt_in).0,
            Self::Transformer(m) => m.forward(&m.encode(src, lengths), tgt_in).0,
        }
    }

    /// Greedy decoding of a batch.
    pub fn greedy(&self, sources: &[Vec<u32>], max_len: usize, device: &Device) -> Vec<Hypothesis> {
        match self {
            Self::Seq2seq(m) => decoding::greedy(m, sources, max_len, device),
            Self::Transformer(m) => decoding::greedy(m, sources, max_len, device),
        }
    }

    /// Beam search for one source.
    pub fn beam(&self, source: &[u32], beam: usize, alpha: f32, max_len: usize, device: &Device) -> Hypothesis {
        match self {
            Self::Seq2seq(m) => decoding::beam_search(m, source, beam, alpha, max_len, device),
            Self::Transformer(m) => decoding::beam_search(m, source, beam, alpha, max_len, device),
        }
    }
}

/// The source and target tokenizers of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tokenizers {
    /// Source side.
    pub source: Tokenizer,
    /// Target side.
    pub target: Tokenizer,
}

/// Everything that defines a run; saved as `config.toml` in its checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranslateRunConfig {
    /// The seed of every random draw.
    #[serde(default)]
    pub seed: u64,
    /// The task.
    pub task: TaskConfig,
    /// The model.
    pub model: TranslatorConfig,
    /// Training hyper-parameters ([`config::TRANSLATE`]).
    #[serde(default = "config::Translate::default", with = "config::Translate")]
    pub train: TrainConfig,
}

impl RunConfig for TranslateRunConfig {
    fn seed(&self) -> u64 {
        self.seed
    }
    fn train(&self) -> &TrainConfig {
        &self.train
    }
    fn train_mut(&mut self) -> &mut TrainConfig {
        &mut self.train
    }
    fn as_written(&self) -> Self {
        let mut cfg = self.clone();
        cfg.model.set_vocab(0, 0);
        cfg
    }
}

/// The task's data, loaded.
pub enum TaskData {
    /// Generated dates.
    Dates(DateTask),
    /// Fixed sentence pairs, split.
    Sentences {
        /// Training pairs.
        train: Vec<Pair>,
        /// Validation pairs.
        valid: Vec<Pair>,
        /// Test pairs.
        test: Vec<Pair>,
    },
}

impl TaskConfig {
    /// Loads the data.
    pub fn load(&self) -> Result<TaskData> {
        Ok(match self {
            Self::Dates { locales, locale_dir, zone_table, .. } => {
                TaskData::Dates(DateTask::load(locale_dir.as_deref(), locales, zone_table.as_deref())?)
            }
            Self::DeEn { path, .. } => {
                let [train, valid, test] = de_en::load(path.as_deref())?;
                TaskData::Sentences { train, valid, test }
            }
        })
    }

    /// The files the data are read from: the locales' sources and the time-zone table, or the
    /// dictionary.
    pub fn files(&self) -> Vec<PathBuf> {
        match self {
            Self::Dates { locales, locale_dir, zone_table, .. } => {
                let dir = locale_dir.clone().unwrap_or_else(|| PathBuf::from(crate::data::dates::LOCALE_DIR));
                let names: Vec<&str> = match locales.is_empty() {
                    true => crate::data::dates::DEFAULT_LOCALES.to_vec(),
                    false => locales.iter().map(String::as_str).collect(),
                };
                let mut files: Vec<PathBuf> = names.into_iter().map(|n| dir.join(n)).collect();
                files.push(zone_table.clone().unwrap_or_else(|| PathBuf::from(crate::data::dates::ZONE_TABLE)));
                files
            }
            Self::DeEn { path, .. } => vec![path.clone().unwrap_or_else(|| PathBuf::from(de_en::DING_PATH))],
        }
    }

    /// The tokenizers a new run builds (deterministically) from the data.
    pub fn tokenizers(&self, data: &TaskData) -> Tokenizers {
        match (self, data) {
            (_, TaskData::Dates(task)) => Tokenizers {
                source: Tokenizer::chars(task.alphabet()),
                target: Tokenizer::chars("0123456789-".chars()),
            },
            (Self::DeEn { bpe_merges, .. }, TaskData::Sentences { train, .. }) => Tokenizers {
                source: Tokenizer::learn_bpe(train.iter().map(|p| p.source.as_str()), *bpe_merges, 2),
                target: Tokenizer::learn_bpe(train.iter().map(|p| p.target.as_str()), *bpe_merges, 2),
            },
            (Self::Dates { .. }, TaskData::Sentences { .. }) => unreachable!("task and data agree"),
        }
    }
}

/// A tokenised pair.
#[derive(Debug, Clone, PartialEq)]
pub struct IdPair {
    /// Source ids.
    pub src: Vec<u32>,
    /// Target ids (no marks).
    pub tgt: Vec<u32>,
}

/// Tokenises pairs.
pub fn tokenise(toks: &Tokenizers, pairs: &[Pair]) -> Vec<IdPair> {
    let src = toks.source.encode_all(&pairs.iter().map(|p| p.source.as_str()).collect::<Vec<_>>());
    let tgt = toks.target.encode_all(&pairs.iter().map(|p| p.target.as_str()).collect::<Vec<_>>());
    src.into_iter().zip(tgt).map(|(src, tgt)| IdPair { src, tgt }).collect()
}

/// Teacher-forcing tensors of a batch: inputs `<s> y` and outputs `y </s>`, padded `(B, T)`,
/// and the number of real target tokens.
fn targets(batch: &[IdPair], device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>, Tensor<2>, usize) {
    let t = batch.iter().map(|p| p.tgt.len() + 1).max().unwrap_or(1);
    let (mut inp, mut out, mut mask) = (Vec::new(), Vec::new(), Vec::new());
    for p in batch {
        for j in 0..t {
            inp.push(if j == 0 { BOS } else { p.tgt.get(j - 1).copied().unwrap_or(PAD) } as i64);
            let o = match j.cmp(&p.tgt.len()) {
                std::cmp::Ordering::Less => p.tgt[j],
                std::cmp::Ordering::Equal => EOS,
                std::cmp::Ordering::Greater => PAD,
            };
            out.push(o as i64);
            mask.push(if j <= p.tgt.len() { 1.0f32 } else { 0.0 });
        }
    }
    let b = batch.len();
    let count = mask.iter().filter(|&&m| m > 0.0).count();
    (
        Tensor::from_data(TensorData::new(inp, [b, t]), device),
        Tensor::from_data(TensorData::new(out, [b, t]), device),
        Tensor::from_data(TensorData::new(mask, [b, t]), device),
        count,
    )
}

/// Mean cross-entropy per target token (the end mark included) of a batch, and its token count.
pub fn batch_loss(model: &Translator, batch: &[IdPair], device: &Device) -> (Tensor<1>, usize) {
    let sources: Vec<Vec<u32>> = batch.iter().map(|p| p.src.clone()).collect();
    let (src, lengths) = pad_batch(&sources, device);
    let (tgt_in, tgt_out, mask, count) = targets(batch, device);
    let [b, t] = tgt_in.dims();
    let logits = model.logits(src, &lengths, tgt_in);
    let v = logits.dims()[2];
    let logp = crate::fused::log_softmax_pick(logits.reshape([b * t, v]), tgt_out.reshape([b * t]));
    let loss = (logp * mask.reshape([b * t])).sum().neg() / count.max(1) as f32;
    (loss, count)
}

/// BLEU of the sentences whose source has a number of words in `[lo, hi]`.
#[derive(Debug, Clone, Serialize)]
pub struct LengthBucket {
    /// Fewest source words.
    pub lo: usize,
    /// Most source words (none: no limit).
    pub hi: Option<usize>,
    /// Sentences.
    pub n: usize,
    /// Their corpus BLEU.
    pub bleu: f64,
    /// Their corpus BLEU with exp smoothing ([`bleu::corpus_bleu_smoothed`]).
    pub bleu_smoothed: f64,
}

/// Source-length buckets (words) of the BLEU-by-length table; the last has no upper limit.
pub const BUCKETS: [(usize, usize); 5] = [(1, 5), (6, 7), (8, 10), (11, 14), (15, usize::MAX)];

/// What an evaluation reports.
#[derive(Debug, Clone, Serialize)]
pub struct TranslateMetrics {
    /// Fraction of outputs equal to the reference.
    pub exact_match: f64,
    /// Corpus BLEU (sentence tasks).
    pub bleu: Option<Bleu>,
    /// BLEU by source length (sentence tasks).
    pub by_length: Vec<LengthBucket>,
    /// Examples.
    pub n: usize,
    /// Beam width used (1: greedy).
    pub beam: usize,
}

/// How outputs are decoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decoding {
    /// Beam width (1: greedy).
    pub beam: usize,
    /// Length-normalisation exponent of beam search.
    pub alpha: f32,
    /// Longest output.
    pub max_len: usize,
}

/// Decodes `pairs` (greedy in batches of 100 when `beam <= 1`, else beam search) and scores
/// the outputs (BLEU too for `sentences`); returns them with the metrics.
pub fn evaluate(
    model: &Translator,
    toks: &Tokenizers,
    pairs: &[Pair],
    sentences: bool,
    how: Decoding,
    device: &Device,
) -> (Vec<String>, TranslateMetrics) {
    let Decoding { beam, alpha, max_len } = how;
    let ids = tokenise(toks, pairs);
    let mut outputs = vec![String::new(); pairs.len()];
    if beam <= 1 {
        // Batches of similar length.
        let mut order: Vec<usize> = (0..pairs.len()).collect();
        order.sort_by_key(|&i| ids[i].src.len());
        for chunk in order.chunks(100) {
            let sources: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].src.clone()).collect();
            for (&i, h) in chunk.iter().zip(model.greedy(&sources, max_len, device)) {
                outputs[i] = toks.target.decode(&h.tokens);
            }
        }
    } else {
        for (i, p) in ids.iter().enumerate() {
            outputs[i] = toks.target.decode(&model.beam(&p.src, beam, alpha, max_len, device).tokens);
        }
    }
    let n = pairs.len();
    let exact = outputs.iter().zip(pairs).filter(|(o, p)| **o == p.target).count();
    let (bleu, by_length) = if sentences {
        let refs: Vec<String> = pairs.iter().map(|p| p.target.clone()).collect();
        let all = bleu::corpus_bleu_text(&outputs, &refs, false);
        let buckets = BUCKETS
            .iter()
            .map(|&(lo, hi)| {
                let idx: Vec<usize> =
                    (0..n).filter(|&i| (lo..=hi).contains(&pairs[i].source.split_whitespace().count())).collect();
                let pick = |v: &[String]| idx.iter().map(|&i| v[i].clone()).collect::<Vec<_>>();
                let (o, r) = (pick(&outputs), pick(&refs));
                LengthBucket {
                    lo,
                    hi: (hi != usize::MAX).then_some(hi),
                    n: idx.len(),
                    bleu: bleu::corpus_bleu_text(&o, &r, false).score,
                    bleu_smoothed: bleu::corpus_bleu_text(&o, &r, true).score,
                }
            })
            .collect();
        (Some(all), buckets)
    } else {
        (None, vec![])
    };
    (outputs, TranslateMetrics { exact_match: exact as f64 / n.max(1) as f64, bleu, by_length, n, beam: beam.max(1) })
}

/// Metadata of an evaluable checkpoint (`best/meta.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TranslateCheckpointMeta {
    /// `seq2seq`, `seq2seq-noattn` or `transformer`.
    pub model: String,
    /// `dates` or `de-en`.
    pub task: String,
    /// Steps trained.
    pub step: u64,
    /// The validation metric's name (`exact_match` or `bleu`).
    pub valid_metric: String,
    /// Its value for these weights.
    pub valid_value: f64,
    /// Seconds of training up to these weights.
    pub train_seconds: f64,
    /// Trainable parameters.
    pub parameters: usize,
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TranslateSummary {
    /// Steps trained.
    pub steps: u64,
    /// Best validation score.
    pub valid_value: f64,
    /// Path of the best checkpoint.
    pub best: PathBuf,
}

fn task_name(task: &TaskConfig) -> &'static str {
    match task {
        TaskConfig::Dates { .. } => "dates",
        TaskConfig::DeEn { .. } => "de-en",
    }
}

/// Reads a checkpoint's tokenizers.
pub fn read_tokenizers(dir: &Path) -> Result<Tokenizers> {
    let path = dir.join(TOKENIZERS);
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: invalid tokenizers", path.display()))
}

/// Loads a checkpoint (its configuration, tokenizers and model) on `device`.
pub fn load_translator(dir: &Path, device: &Device) -> Result<(TranslateRunConfig, Tokenizers, Translator)> {
    let cfg: TranslateRunConfig = checkpoint::read_config(dir)?;
    let toks = read_tokenizers(dir)?;
    let model = checkpoint::init_and_load(device, cfg.seed, dir, || cfg.model.init(device))?;
    Ok((cfg, toks, model))
}

/// The validation (or test) pairs of a task.
pub fn held_out(cfg: &TranslateRunConfig, data: &TaskData, test: bool) -> Vec<Pair> {
    match (&cfg.task, data) {
        (TaskConfig::Dates { valid_examples, test_examples, .. }, TaskData::Dates(task)) => {
            if test {
                task.fixed_set(DateSplit::Test, *test_examples, 0)
            } else {
                task.fixed_set(DateSplit::Valid, *valid_examples, 0)
            }
        }
        (TaskConfig::DeEn { valid_examples, .. }, TaskData::Sentences { valid, test: t, .. }) => {
            if test {
                t.clone()
            } else {
                let n = if *valid_examples == 0 { valid.len() } else { (*valid_examples).min(valid.len()) };
                valid[..n].to_vec()
            }
        }
        _ => unreachable!("task and data agree"),
    }
}

/// A checkpoint's figures: its test set, and for dates the held-out formats as well.
pub struct CheckpointEvaluation {
    /// The test set's metrics.
    pub test: TranslateMetrics,
    /// The test pairs with the model's outputs.
    pub outputs: Vec<(Pair, String)>,
    /// Dates: the held-out-format set's figures ([`DateTask::held_out_formats`]).
    pub held_out_formats: Option<HeldOutFormats>,
}

/// A date model on the formats it never saw.
pub struct HeldOutFormats {
    /// Over all of them (each template drawn equally often).
    pub overall: TranslateMetrics,
    /// Per template: the template, its exact match and its examples.
    pub by_template: Vec<(String, f64, usize)>,
    /// The pairs with the model's outputs.
    pub outputs: Vec<(Pair, String)>,
}

/// Evaluates a checkpoint on its task's test set (`beam`: override the configured width), and a
/// date model on the held-out formats too.
pub fn evaluate_checkpoint(dir: &Path, beam: Option<usize>, device: &Device) -> Result<CheckpointEvaluation> {
    let (cfg, toks, model) = load_translator(dir, device)?;
    let data = cfg.task.load()?;
    let pairs = held_out(&cfg, &data, true);
    let sentences = matches!(data, TaskData::Sentences { .. });
    let beam = beam.unwrap_or(cfg.train.beam);
    let how = Decoding { beam, alpha: cfg.train.alpha, max_len: cfg.train.max_len };
    let (outputs, test) = evaluate(&model, &toks, &pairs, sentences, how, device);
    let held_out_formats = match (&cfg.task, &data) {
        (TaskConfig::Dates { held_out_format_examples: n, .. }, TaskData::Dates(task)) if *n > 0 => {
            let (templates, pairs): (Vec<&str>, Vec<Pair>) = task.held_out_formats(*n, 0).into_iter().unzip();
            let (outputs, overall) = evaluate(&model, &toks, &pairs, false, how, device);
            let by_template = task
                .held_out_templates()
                .iter()
                .map(|f| {
                    let mine: Vec<usize> = (0..pairs.len()).filter(|&i| templates[i] == f.template).collect();
                    let right = mine.iter().filter(|&&i| outputs[i] == pairs[i].target).count();
                    (f.template.to_string(), right as f64 / mine.len().max(1) as f64, mine.len())
                })
                .collect();
            Some(HeldOutFormats { overall, by_template, outputs: pairs.into_iter().zip(outputs).collect() })
        }
        _ => None,
    };
    Ok(CheckpointEvaluation { test, outputs: pairs.into_iter().zip(outputs).collect(), held_out_formats })
}

/// The sequence-to-sequence models as the engine trains them: batches a pure function of
/// `(seed, step)` (so the resumable state is empty), validated by greedy exact match or BLEU
/// (higher is better; ties go to the later weights); checkpoints carry the tokenizers.
struct Trainer {
    cfg: TranslateRunConfig,
    toks: Tokenizers,
    data: TaskData,
    /// The training pairs' ids (sentence tasks) and source lengths.
    train_ids: Vec<IdPair>,
    lengths: Vec<usize>,
    valid: Vec<Pair>,
    per_epoch: usize,
    /// The current epoch's length-grouped batches (sentence tasks).
    epoch_cache: Option<(usize, Vec<Vec<usize>>)>,
    device: Device,
    eval_device: Device,
}

impl Trainer {
    /// The pairs of step `step`.
    fn batch(&mut self, step: usize) -> Vec<IdPair> {
        let t = &self.cfg.train;
        match &self.data {
            TaskData::Dates(task) => {
                let mut rng = Rng::derive(self.cfg.seed, "batch", step as u64);
                let pairs: Vec<Pair> =
                    (0..t.batch_size).map(|_| task.sample(DateSplit::Train, false, &mut rng)).collect();
                tokenise(&self.toks, &pairs)
            }
            TaskData::Sentences { .. } => {
                let epoch = step / self.per_epoch;
                if self.epoch_cache.as_ref().is_none_or(|(e, _)| *e != epoch) {
                    let batches =
                        crate::data::batching::epoch_batches(&self.lengths, t.batch_size, self.cfg.seed, epoch);
                    self.epoch_cache = Some((epoch, batches));
                }
                let (_, batches) = self.epoch_cache.as_ref().expect("cached");
                batches[step % self.per_epoch].iter().map(|&i| self.train_ids[i].clone()).collect()
            }
        }
    }
}

impl Family for Trainer {
    type Config = TranslateRunConfig;
    type Model = Translator;
    type State = ();
    type Meta = TranslateCheckpointMeta;
    type Summary = TranslateSummary;
    const NAME: &'static str = "translate";
    const UNIT: &'static str = "tokens";

    fn config(&self) -> &TranslateRunConfig {
        &self.cfg
    }

    fn batches_per_epoch(&self) -> Option<usize> {
        Some(self.per_epoch)
    }

    fn init(&self, device: &Device) -> Translator {
        self.cfg.model.init(device)
    }

    fn fresh_state(&self) {}

    fn compatible(&self, _: &TranslateRunConfig, dir: &Path) -> Result<()> {
        bail!("init: {}: a translator starts afresh (its tokenizers come from its data)", dir.display())
    }

    fn data_files(&self) -> Vec<PathBuf> {
        self.cfg.task.files()
    }

    fn step(
        &mut self,
        model: Translator,
        optim: &mut ModuleOptimizer,
        lr: f64,
        _: &mut (),
        at: At,
    ) -> Result<(Translator, Tally)> {
        let batch = self.batch(at.step as usize);
        let t = &self.cfg.train;
        let shards = t.shards.clamp(1, batch.len().max(1));
        let tokens: usize = batch.iter().map(|p| p.tgt.len() + 1).sum();
        let loss_of = |m: &Translator, i: usize| {
            let (loss, n) = batch_loss(m, shard(&batch, shards, i), &self.device);
            loss * (n as f32 / tokens as f32)
        };
        let (model, value) = descend_sharded(model, shards, loss_of, optim, lr, t.clip_norm, "loss", at.step)?;
        Ok((model, Tally { count: tokens, sums: vec![("loss", value as f64 * tokens as f64)], extra: vec![] }))
    }

    fn validate(&mut self, model: &Translator, run: &mut Progress<()>) -> Result<Validation<TranslateCheckpointMeta>> {
        let t = &self.cfg.train;
        let sentences = matches!(self.data, TaskData::Sentences { .. });
        let how = Decoding { beam: 1, alpha: t.alpha, max_len: t.max_len };
        let m = evaluate(model, &self.toks, &self.valid, sentences, how, &self.eval_device).1;
        let value = m.bleu.as_ref().map_or(m.exact_match, |b| b.score);
        let metric = if sentences { "bleu" } else { "exact_match" };
        Ok(Validation {
            score: value,
            values: vec![(metric, value), ("exact_match", m.exact_match)],
            line: format!("{metric} {value:.4}"),
            meta: TranslateCheckpointMeta {
                model: self.cfg.model.name().into(),
                task: task_name(&self.cfg.task).into(),
                step: run.step,
                valid_metric: metric.into(),
                valid_value: value,
                train_seconds: run.train_seconds,
                parameters: model.num_params(),
            },
            stop: None,
        })
    }

    /// Ties go to the later weights (exact match saturates at 1 on the dates).
    fn improves(&self, score: f64, best: f64) -> bool {
        score >= best
    }

    fn save_extra(&self, dir: &Path) -> Result<()> {
        std::fs::write(dir.join(TOKENIZERS), serde_json::to_string(&self.toks)?)?;
        Ok(())
    }

    fn finish(&mut self, run: &Progress<()>, best: PathBuf, _: &mut MetricsLog) -> Result<TranslateSummary> {
        let (valid_value, _) = run.best.context("no validation was run")?;
        Ok(TranslateSummary { steps: run.step, valid_value, best })
    }
}

/// Trains (or resumes) a run.
pub fn train_translate(cfg: &TranslateRunConfig, opts: &RunOptions) -> Result<TranslateSummary> {
    let start = engine::start(cfg, opts)?;
    let data = start.cfg.task.load()?;
    let (cfg, toks) = match &start.resume {
        Some(dir) => (start.cfg, read_tokenizers(dir)?),
        None => {
            let toks = start.cfg.task.tokenizers(&data);
            let mut cfg = start.cfg;
            cfg.model.set_vocab(toks.source.len(), toks.target.len());
            (cfg, toks)
        }
    };
    let t = &cfg.train;
    let sentences = matches!(data, TaskData::Sentences { .. });
    let valid = held_out(&cfg, &data, false);
    let train_ids: Vec<IdPair> = match (&data, &cfg.task) {
        (TaskData::Sentences { train, .. }, TaskConfig::DeEn { max_tokens, .. }) => {
            let mut ids = tokenise(&toks, train);
            ids.retain(|p| p.src.len() <= *max_tokens && p.tgt.len() <= *max_tokens && !p.src.is_empty());
            if let Some(n) = t.limit_train {
                ids.truncate(n);
            }
            ids
        }
        _ => vec![],
    };
    let lengths: Vec<usize> = train_ids.iter().map(|p| p.src.len()).collect();
    tracing::info!(
        "{} on {}: vocabularies {} / {}, {} training pairs, {} validation",
        cfg.model.name(),
        task_name(&cfg.task),
        toks.source.len(),
        toks.target.len(),
        if sentences { train_ids.len().to_string() } else { "generated".into() },
        valid.len()
    );
    // An epoch: one pass over the training pairs, or as many generated examples as there are
    // training dates.
    let epoch_size = match &data {
        TaskData::Dates(task) => task.dates(DateSplit::Train).len(),
        TaskData::Sentences { .. } => lengths.len(),
    };
    let per_epoch = epoch_size.div_ceil(t.batch_size.max(1)).max(1);
    let eval_device = start.device.clone().without_autodiff();
    let trainer = Trainer {
        cfg,
        toks,
        data,
        train_ids,
        lengths,
        valid,
        per_epoch,
        epoch_cache: None,
        device: start.device.clone(),
        eval_device,
    };
    engine::run(trainer, start.resume.as_deref(), &start.device, opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::content::Score;
    use crate::train::optim::OptimizerConfig;
    use burn::optim::GradientsParams;

    fn seq2seq(attention: Option<Score>, vocab: usize) -> TranslatorConfig {
        TranslatorConfig::Seq2seq(Seq2seqConfig {
            src_vocab: vocab,
            tgt_vocab: vocab,
            embed: 16,
            encoder: 32,
            decoder: 64,
            attention,
            attention_hidden: 32,
            input_feeding: true,
        })
    }

    fn transformer(vocab: usize) -> TranslatorConfig {
        TranslatorConfig::Transformer(TransformerConfig {
            src_vocab: vocab,
            tgt_vocab: vocab,
            d_model: 32,
            heads: 4,
            ff: 64,
            encoder_layers: 1,
            decoder_layers: 1,
        })
    }

    /// Random sequences of symbols 4..4+k, lengths 3..=6, and their reversals.
    fn reversal_batch(rng: &mut Rng, n: usize, k: usize) -> Vec<IdPair> {
        (0..n)
            .map(|_| {
                let len = 3 + rng.below(4);
                let src: Vec<u32> = (0..len).map(|_| 4 + rng.below(k) as u32).collect();
                IdPair { tgt: src.iter().rev().copied().collect(), src }
            })
            .collect()
    }

    #[test]
    fn sharded_gradients_equal_the_whole_batch_gradients() {
        use crate::train::optim::{shard, sharded_gradients};
        let device = Device::flex().autodiff();
        for cfg in [seq2seq(Some(Score::Additive), 12), transformer(12)] {
            let model = crate::device::seeded(&device, 3, || cfg.init(&device));
            // Varied lengths: the shards pad to different widths than the whole batch.
            let batch = reversal_batch(&mut Rng::new(9), 7, 8);
            let tokens: usize = batch.iter().map(|p| p.tgt.len() + 1).sum();
            let grads = |shards: usize| {
                let (g, loss) = sharded_gradients(&model, shards, |m, i| {
                    let (loss, n) = batch_loss(m, shard(&batch, shards, i), &device);
                    loss * (n as f32 / tokens as f32)
                });
                let loss: f32 = loss.into_scalar();
                (loss, crate::train::optim::flat_gradients(&model, &g))
            };
            let (l1, g1) = grads(1);
            let (l3, g3) = grads(3);
            assert!((l1 - l3).abs() < 1e-5 * l1.abs(), "loss {l1} vs {l3}");
            assert_eq!(g1.len(), g3.len());
            assert!(!g1.is_empty() && g1.iter().any(|&g| g != 0.0));
            let worst = g1.iter().zip(&g3).map(|(a, b)| (a - b).abs() / a.abs().max(1e-3)).fold(0.0f32, f32::max);
            assert!(worst < 1e-3, "sharded gradients differ by {worst}");
            // The same shards give the same gradients, bit for bit.
            assert_eq!(grads(3).1, g3);
        }
    }

    fn train_reversal(cfg: &TranslatorConfig, steps: usize, lr: f64) -> (Translator, f64) {
        let device = Device::flex().autodiff();
        let mut model = crate::device::seeded(&device, 1, || checkpoint::number_params(cfg.init(&device)));
        let mut optim = OptimizerConfig::default().init();
        let mut rng = Rng::new(5);
        for _ in 0..steps {
            let batch = reversal_batch(&mut rng, 32, 8);
            let (loss, _) = batch_loss(&model, &batch, &device);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
        }
        let model = model.valid();
        let test = reversal_batch(&mut Rng::new(77), 200, 8);
        let sources: Vec<Vec<u32>> = test.iter().map(|p| p.src.clone()).collect();
        let out = model.greedy(&sources, 10, &Device::flex());
        let right = out.iter().zip(&test).filter(|(h, p)| h.tokens == p.tgt).count();
        (model, right as f64 / test.len() as f64)
    }

    /// The seconds-long check: attention learns to reverse short sequences almost
    /// perfectly; its alignment runs along the anti-diagonal.
    #[test]
    fn attention_learns_to_reverse_short_sequences() {
        let (model, acc) = train_reversal(&seq2seq(Some(Score::General), 12), 300, 1e-2);
        assert!(acc >= 0.97, "reversal accuracy {acc}");
        let h = model.greedy(&[vec![4, 5, 6, 7, 8]], 10, &Device::flex()).remove(0);
        assert_eq!(h.tokens, vec![8, 7, 6, 5, 4]);
        // Output token i attends most to source position 4 − i.
        for (i, w) in h.weights.iter().take(5).enumerate() {
            let argmax = w.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
            assert_eq!(argmax, 4 - i, "weights of output {i}: {w:?}");
        }
    }

    #[test]
    fn transformer_learns_to_reverse_short_sequences() {
        let (_, acc) = train_reversal(&transformer(12), 300, 3e-3);
        assert!(acc >= 0.9, "reversal accuracy {acc}");
    }

    /// Padding a source (in a batch with a longer one) changes none of its outputs, in every
    /// model; and a Transformer's logits at position i ignore target tokens after i.
    #[test]
    fn padding_and_future_tokens_are_invisible() {
        let dev = Device::flex();
        for cfg in [seq2seq(Some(Score::Additive), 10), seq2seq(None, 10), transformer(10)] {
            let model = crate::device::seeded(&dev, 2, || cfg.init(&dev));
            let short = vec![4u32, 5, 6];
            let long = vec![7u32, 8, 9, 4, 5, 6, 7];
            let tgt = |ids: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(ids, [1, 4]), &dev);
            let alone = {
                let (src, len) = pad_batch(std::slice::from_ref(&short), &dev);
                model.logits(src, &len, tgt(vec![1, 5, 6, 7]))
            };
            let batched = {
                let (src, len) = pad_batch(&[short.clone(), long], &dev);
                let tgts = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 5, 6, 7, 1, 4, 4, 4], [2, 4]), &dev);
                model.logits(src, &len, tgts).narrow(0, 0, 1)
            };
            let (a, b): (Vec<f32>, Vec<f32>) =
                (alone.into_data().try_to_vec().unwrap(), batched.into_data().try_to_vec().unwrap());
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-4, "{}: {x} vs {y}", cfg.name());
            }
            if let Translator::Transformer(_) = &model {
                let (src, len) = pad_batch(&[short], &dev);
                let changed = model.logits(src, &len, tgt(vec![1, 5, 9, 9]));
                let c: Vec<f32> = changed.narrow(1, 0, 2).into_data().try_to_vec().unwrap();
                let v = c.len() / 2;
                for (x, y) in c.iter().zip(&a[..2 * v]) {
                    assert!((x - y).abs() < 1e-4, "the future leaked: {x} vs {y}");
                }
            }
        }
    }

    /// Beam search with width 1 is greedy search; a wider beam never finds a less probable
    /// (unnormalised) answer when α = 0.
    #[test]
    fn beam_of_one_is_greedy_and_wider_beams_score_at_least_as_well() {
        let dev = Device::flex();
        let cfg = seq2seq(Some(Score::Additive), 10);
        let model = crate::device::seeded(&dev, 3, || cfg.init(&dev));
        let src = vec![4u32, 5, 6, 7];
        let g = model.greedy(std::slice::from_ref(&src), 8, &dev).remove(0);
        let b1 = model.beam(&src, 1, 0.0, 8, &dev);
        assert_eq!(g.tokens, b1.tokens);
        assert!((g.log_prob - b1.log_prob).abs() < 1e-4);
        let b4 = model.beam(&src, 4, 0.0, 8, &dev);
        assert!(b4.log_prob >= b1.log_prob - 1e-4, "{} < {}", b4.log_prob, b1.log_prob);
    }
}
