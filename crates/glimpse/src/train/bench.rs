//! Training-throughput benchmarks: our model against the same model written plainly in PyTorch
//! (`bench/*.py`, run with the interpreter in `GLIMPSE_PYTHON`, else `python3`), measured in one
//! invocation so that the ratio compares like with like on the same machine.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Serialize;

use super::optim::{OptimizerConfig, apply_grads, shard, shard_range, sharded_gradients};
use super::sequence::{SequenceModelConfig, episode_tensors, sequence_cost};
use super::translate::{IdPair, TranslatorConfig, batch_loss};
use crate::data::algorithmic::Task;
use crate::data::handwriting::Example;
use crate::models::ClassifierConfig;
use crate::models::dnc::DncConfig;
use crate::models::draw::DrawConfig;
use crate::models::handwriting::HandwritingConfig;
use crate::models::lstm::LstmConfig;
use crate::models::ntm::NtmConfig;
use crate::rng::Rng;

/// The PyTorch baseline for classifiers, embedded so the binary works from any folder.
pub const CLASSIFIER_PY: &str = include_str!("../../../../bench/classifier.py");

/// The PyTorch baseline for RAM.
pub const RAM_PY: &str = include_str!("../../../../bench/ram.py");

/// The PyTorch baseline for DRAW and its classifier.
pub const DRAW_PY: &str = include_str!("../../../../bench/draw.py");

/// The PyTorch baseline for the sequence-to-sequence models.
pub const SEQ2SEQ_PY: &str = include_str!("../../../../bench/seq2seq.py");

/// The PyTorch baseline for the handwriting synthesis network.
pub const HANDWRITING_PY: &str = include_str!("../../../../bench/handwriting.py");

/// The PyTorch baseline for the NTM, the DNC and the LSTM on copy.
pub const NTM_PY: &str = include_str!("../../../../bench/ntm.py");

/// One benchmark's result, as `glimpse bench --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The model benchmarked.
    pub model: String,
    /// What is counted per second.
    pub unit: String,
    /// Our training throughput (median step; median over rounds).
    pub ours_per_s: f64,
    /// PyTorch's (the same), or `None` with `baseline_error` saying why.
    pub baseline_per_s: Option<f64>,
    /// Why there is no baseline figure.
    pub baseline_error: Option<String>,
    /// The median over rounds of `ours / baseline`.
    pub ratio: Option<f64>,
    /// Each round's ratio, in order.
    pub ratios: Vec<f64>,
    /// CPU threads used by both.
    pub threads: usize,
    /// Batch size of both.
    pub batch: usize,
    /// PyTorch's version, when it ran.
    pub torch: Option<String>,
}

/// How a comparison runs: CPU threads for both implementations, and rounds.
#[derive(Debug, Clone, Copy)]
pub struct BenchSetup {
    /// CPU threads of both implementations.
    pub threads: usize,
    /// Alternating rounds (ours, then PyTorch, `rounds` times); the figures are medians over
    /// rounds, the ratio the median of the rounds' ratios, so that a slow spell of a shared
    /// machine falls on both sides.
    pub rounds: usize,
    /// Data-parallel shards of our training step, as the trainers' `shards` setting (models
    /// without it ignore it).
    pub shards: usize,
}

impl BenchSetup {
    /// The shards of a batch of `batch`: at least 1, at most one per example.
    pub fn shards_for(&self, batch: usize) -> usize {
        self.shards.clamp(1, batch.max(1))
    }
}

impl BenchReport {
    /// Measures `ours` and the PyTorch baseline `script` run with `args` in alternating rounds
    /// (or reports why the baseline could not run).
    #[allow(clippy::too_many_arguments)]
    pub fn against_baseline(
        model: impl Into<String>,
        unit: impl Into<String>,
        mut ours: impl FnMut() -> f64,
        script: &str,
        args: &[String],
        setup: BenchSetup,
        batch: usize,
    ) -> Self {
        let (mut mine, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let (mut torch, mut baseline_error) = (None, None);
        for _ in 0..setup.rounds.max(1) {
            let o = ours();
            mine.push(o);
            if baseline_error.is_some() {
                continue;
            }
            match run_python_baseline(script, args) {
                Ok((v, t)) => {
                    theirs.push(v);
                    ratios.push(o / v);
                    torch = Some(t);
                }
                Err(e) => baseline_error = Some(e),
            }
        }
        let med = |v: &mut Vec<f64>| (!v.is_empty()).then(|| median(v));
        Self {
            model: model.into(),
            unit: unit.into(),
            ours_per_s: median(&mut mine),
            baseline_per_s: med(&mut theirs),
            baseline_error,
            ratio: med(&mut ratios.clone()),
            ratios,
            threads: setup.threads,
            batch,
            torch,
        }
    }
}

/// Median of `v` (sorted in place).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Median seconds of `steps` timed calls of `step` after `warmup` untimed ones; `step` takes
/// the training state (the model) and returns it updated.
pub fn median_step_seconds<S>(warmup: usize, steps: usize, mut state: S, mut step: impl FnMut(S) -> S) -> f64 {
    let mut times = Vec::with_capacity(steps);
    for i in 0..warmup + steps {
        let t0 = Instant::now();
        state = step(state);
        if i >= warmup {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    median(&mut times)
}

/// One benchmarked training step: the gradients of `loss_of` over `shards` data-parallel
/// shards, the optimizer step at `lr` (norm clipping at `clip`), then a wait for the loss, so
/// that the step has run and not only been queued.
fn timed_step<M, F>(model: M, shards: usize, optim: &mut ModuleOptimizer, lr: f64, clip: Option<f32>, loss_of: F) -> M
where
    M: Module + Sync,
    F: Fn(&M, usize) -> Tensor<1> + Sync,
{
    let (grads, loss) = sharded_gradients(&model, shards, loss_of);
    let model = apply_grads(model, grads, optim, lr, clip);
    let _: f32 = loss.into_scalar();
    model
}

/// One comparison's shape: the batch both implementations train on, the timed steps, the
/// setup (threads, rounds, shards) and our device.
#[derive(Debug, Clone)]
pub struct Bench {
    /// Examples a step.
    pub batch: usize,
    /// Timed steps (after a few untimed ones).
    pub steps: usize,
    /// Threads, rounds and shards.
    pub setup: BenchSetup,
    /// Our device (without autodiff).
    pub device: Device,
}

impl Bench {
    /// Our data-parallel shards of the batch.
    pub fn shards(&self) -> usize {
        self.setup.shards_for(self.batch)
    }

    /// The model on our device with autodiff, its weights drawn from seed 0 (the same each
    /// round).
    fn model<M>(&self, init: impl FnOnce(&Device) -> M) -> (M, Device) {
        let device = self.device.clone().autodiff();
        (crate::device::seeded(&device, 0, || init(&device)), device)
    }

    /// The model on our device without autodiff (inference), its weights drawn from seed 0.
    fn inference_model<M>(&self, init: impl FnOnce(&Device) -> M) -> M {
        crate::device::seeded(&self.device, 0, || init(&self.device))
    }

    /// `ours` against the baseline `script` run with `--batch --steps --threads` and `flags`.
    fn report(
        &self,
        model: &str,
        unit: String,
        ours: impl FnMut() -> f64,
        script: &str,
        flags: &[(&str, String)],
    ) -> BenchReport {
        let mut args = vec![
            "--batch".to_string(),
            self.batch.to_string(),
            "--steps".into(),
            self.steps.to_string(),
            "--threads".into(),
            self.setup.threads.to_string(),
        ];
        for (k, v) in flags {
            args.push(k.to_string());
            if !v.is_empty() {
                args.push(v.clone());
            }
        }
        BenchReport::against_baseline(model, unit, ours, script, &args, self.setup, self.batch)
    }
}

/// Training samples/s of `cfg` (forward, backward, Adam, with the model's own training loss;
/// the trainer's step, [`crate::train::classify::batch_gradients`], in shards) on one fixed
/// random batch: median step.
pub fn classifier_samples_per_s(cfg: &ClassifierConfig, b: &Bench) -> f64 {
    let (model, device) = b.model(|d| cfg.init(d));
    let ([h, w], batch) = (cfg.input(), b.batch);
    let mut optim = OptimizerConfig::default().init();
    let mut rng = Rng::new(0);
    let mut draws = Rng::new(1);
    let x: Vec<f32> = (0..batch * h * w).map(|_| rng.uniform() as f32).collect();
    let y: Vec<i64> = (0..batch).map(|_| rng.below(10) as i64).collect();
    let images = Tensor::<4>::from_data(TensorData::new(x, [batch, 1, h, w]), &device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(y, [batch]), &device);
    let step = crate::train::classify::StepBatch { images, labels, centres: None, soft: None };
    let shards = b.shards();
    let secs = median_step_seconds(5, b.steps, model, |model| {
        let (grads, loss, _) = crate::train::classify::batch_gradients(&model, &step, shards, &mut draws);
        let model = apply_grads(model, grads, &mut optim, 1e-3, None);
        let _: f32 = loss.into_scalar();
        model
    });
    batch as f64 / secs
}

/// The Python interpreter for baselines.
pub fn python() -> String {
    std::env::var("GLIMPSE_PYTHON").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "python3".into())
}

/// Runs an embedded PyTorch baseline script with `args`; returns its per-second figure and
/// torch version, or why it could not run.
pub fn run_python_baseline(script: &str, args: &[String]) -> Result<(f64, String), String> {
    run_python_baseline_in(&python(), script, args)
}

/// [`run_python_baseline`] with an explicit interpreter.
pub fn run_python_baseline_in(py: &str, script: &str, args: &[String]) -> Result<(f64, String), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("baseline.py");
    std::fs::write(&path, script).map_err(|e| e.to_string())?;
    let out = Command::new(py)
        .arg(&path)
        .args(args)
        .env("OMP_NUM_THREADS", args.iter().skip_while(|a| *a != "--threads").nth(1).map_or("2", |s| s.as_str()))
        .output()
        .map_err(|e| format!("cannot run {py}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim();
        return Err(format!("PyTorch baseline failed ({py}): {last}"));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with('{')).ok_or("baseline printed no JSON")?;
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let per_s = v["per_s"].as_f64().ok_or("baseline JSON lacks per_s")?;
    Ok((per_s, v["torch"].as_str().unwrap_or("?").to_string()))
}

/// Benchmarks a classifier against its PyTorch twin.
pub fn bench_classifier(cfg: &ClassifierConfig, b: &Bench) -> Result<BenchReport> {
    let (script, args) = classifier_flags(cfg);
    let unit = format!("training samples/s ({} shards)", b.shards());
    Ok(b.report(cfg.kind(), unit, || classifier_samples_per_s(cfg, b), script, &args))
}

/// Images classified per second by `cfg` (random weights, no autodiff; RAM along its policy's
/// mean path, as `glimpse eval` does) on one fixed random batch, the predicted classes read
/// back: median pass.
pub fn classifier_eval_per_s(cfg: &ClassifierConfig, b: &Bench) -> f64 {
    use crate::models::image_classifier::ImageClassifier;
    let device = b.device.clone();
    let model = b.inference_model(|d| cfg.init(d));
    let ([h, w], batch) = (cfg.input(), b.batch);
    let mut rng = Rng::new(0);
    let x: Vec<f32> = (0..batch * h * w).map(|_| rng.uniform() as f32).collect();
    let images = Tensor::<4>::from_data(TensorData::new(x, [batch, 1, h, w]), &device);
    let secs = median_step_seconds(3, b.steps, (), |()| {
        let classes = model.logits(images.clone()).argmax(1).into_data();
        std::hint::black_box(classes);
    });
    batch as f64 / secs
}

/// Benchmarks a classifier's evaluation against its PyTorch twin's (`--inference`, under
/// `torch.no_grad()`).
pub fn bench_classifier_eval(cfg: &ClassifierConfig, b: &Bench) -> Result<BenchReport> {
    let (script, mut args) = classifier_flags(cfg);
    args.push(("--inference", String::new()));
    let name = format!("{} evaluation", cfg.kind());
    Ok(b.report(&name, "images classified/s".into(), || classifier_eval_per_s(cfg, b), script, &args))
}

/// The PyTorch twin of a classifier and its flags.
fn classifier_flags(cfg: &ClassifierConfig) -> (&'static str, Vec<(&'static str, String)>) {
    let join = |v: &[usize]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",");
    let mut args = vec![("--side", cfg.input()[0].to_string())];
    let script = match cfg {
        ClassifierConfig::Mlp(m) => {
            args.extend([("--model", "mlp".into()), ("--hidden", join(&m.hidden))]);
            CLASSIFIER_PY
        }
        ClassifierConfig::Cnn(c) => {
            args.extend([("--model", "cnn".into()), ("--channels", join(&c.channels)), ("--fc", c.hidden.to_string())]);
            CLASSIFIER_PY
        }
        ClassifierConfig::Ram(r) => {
            args.extend([("--patch", r.retina.patch.to_string()), ("--scales", r.retina.scales.to_string())]);
            args.push(("--glimpses", r.glimpses.to_string()));
            if let crate::models::ram::LocationPolicy::Gaussian { std } = r.policy {
                args.push(("--std", std.to_string()));
            }
            RAM_PY
        }
        ClassifierConfig::DrawClassifier(d) => {
            args.extend([("--model", "classifier".into()), ("--read", d.read.to_string())]);
            args.extend([("--glimpses", d.glimpses.to_string()), ("--hidden", d.hidden.to_string())]);
            DRAW_PY
        }
    };
    (script, args)
}

/// Training sequences/s of a sequence model (forward, backward, global-norm clipping, RMSProp
/// with momentum, as the NTM paper trains) on one fixed copy batch of length `len`: median step.
pub fn sequence_per_s(cfg: &SequenceModelConfig, task: &Task, len: usize, b: &Bench) -> f64 {
    let (model, device) = b.model(|d| cfg.init(d));
    let (batch, shards) = (b.batch, b.shards());
    let mut optim = OptimizerConfig::Rmsprop { alpha: 0.95, momentum: 0.9, epsilon: 1e-4, centered: false }.init();
    let e = task.sample_len(batch, len, &mut Rng::new(0));
    let parts: Vec<_> = (0..shards).map(|i| episode_tensors(&e.rows(shard_range(batch, shards, i)), &device)).collect();
    let secs = median_step_seconds(5, b.steps, model, |model| {
        // The trainer's step (`train::sequence`): shards of the batch on their own threads.
        timed_step(model, shards, &mut optim, 1e-4, Some(10.0), |m, i| {
            let ep = &parts[i];
            let logits = m.forward(ep.inputs.clone(), None);
            sequence_cost(logits, ep) * (ep.batch as f32 / batch as f32)
        })
    });
    batch as f64 / secs
}

/// The sizes a sequence model is benchmarked at, on the copy task of 8-bit vectors: the NTM
/// at the paper's sizes ([`NtmConfig::new`]), the DNC at configs/dnc-copy.toml's (controller
/// 128, memory 128 × 20, one read head), the LSTM at the NTM paper's copy baseline (3 layers of
/// 256).
pub fn memory_bench_config(kind: &str, task: &Task) -> Result<SequenceModelConfig> {
    let (i, o) = (task.input_size(), task.output_size());
    Ok(match kind {
        "ntm" => SequenceModelConfig::Ntm(NtmConfig::new(i, o)),
        "dnc" => SequenceModelConfig::Dnc(DncConfig { memory_n: 128, ..DncConfig::new(i, o) }),
        "lstm" => SequenceModelConfig::Lstm(LstmConfig { inputs: i, outputs: o, hidden: 256, layers: 3 }),
        other => anyhow::bail!("no memory-model benchmark for `{other}` (ntm, dnc, lstm)"),
    })
}

/// Benchmarks a sequence model (`ntm`, `dnc` or `lstm`, at [`memory_bench_config`]'s sizes, on
/// the copy task at length `len`) against its PyTorch twin, `bench/ntm.py --model KIND`.
pub fn bench_memory(kind: &str, len: usize, b: &Bench) -> Result<BenchReport> {
    let task = Task::Copy { bits: 8, min_len: 1, max_len: len.max(1) };
    let cfg = memory_bench_config(kind, &task)?;
    let unit = format!("training sequences/s (copy, length {len}, {} shards)", b.shards());
    let flags = [("--model", kind.to_string()), ("--len", len.to_string())];
    Ok(b.report(kind, unit, || sequence_per_s(&cfg, &task, len, b), NTM_PY, &flags))
}

/// Training images/s of DRAW (forward, backward, clipping, Adam) on one fixed binary batch,
/// fresh noise each step, split into data-parallel shards (as the trainer does): median step.
pub fn draw_per_s(cfg: &DrawConfig, b: &Bench) -> f64 {
    let (model, device) = b.model(|d| cfg.init(d));
    let (batch, shards) = (b.batch, b.shards());
    let mut optim = OptimizerConfig::default().init();
    let mut rng = Rng::new(0);
    let [h, w] = cfg.side;
    let x: Vec<f32> = (0..batch * h * w).map(|_| f32::from(rng.uniform() < 0.5)).collect();
    let images = Tensor::<3>::from_data(TensorData::new(x, [batch, h, w]), &device);
    let secs = median_step_seconds(2, b.steps, model, |model| {
        let eps = super::generative::noise(cfg.steps, batch, cfg.latent, &mut rng, &device);
        timed_step(model, shards, &mut optim, 1e-3, Some(10.0), |m, i| {
            let rows = shard_range(batch, shards, i);
            let x = images.clone().narrow(0, rows.start, rows.len());
            let eps = eps.clone().narrow(1, rows.start, rows.len());
            m.bound(x, eps, None).total().sum() / batch as f32
        })
    });
    batch as f64 / secs
}

/// Benchmarks DRAW against its PyTorch twin, `bench/draw.py`.
pub fn bench_draw(cfg: &DrawConfig, b: &Bench) -> Result<BenchReport> {
    let args = [
        ("--model", "draw".to_string()),
        ("--side", cfg.side[0].to_string()),
        ("--glimpses", cfg.steps.to_string()),
        ("--encoder", cfg.encoder.to_string()),
        ("--hidden", cfg.decoder.to_string()),
        ("--latent", cfg.latent.to_string()),
        ("--read", cfg.read.to_string()),
        ("--write", cfg.write.to_string()),
    ];
    let attention = if cfg.read > 0 {
        format!("read {0}×{0}, write {1}×{1}", cfg.read, cfg.write)
    } else {
        "no attention".into()
    };
    let unit = format!("training images/s (T = {}, {attention}, {} shards)", cfg.steps, b.shards());
    Ok(b.report("draw", unit, || draw_per_s(cfg, b), DRAW_PY, &args))
}

/// Training target tokens/s of a sequence-to-sequence model (teacher forcing, backward,
/// clipping, Adam) on one fixed random batch, every source `src_len` and every target
/// `tgt_len` tokens long, split into data-parallel shards: median step.
pub fn translator_tokens_per_s(cfg: &TranslatorConfig, (src_len, tgt_len): (usize, usize), b: &Bench) -> f64 {
    let (model, device) = b.model(|d| cfg.init(d));
    let (batch, shards) = (b.batch, b.shards());
    let mut optim = OptimizerConfig::default().init();
    let (sv, tv) = cfg.vocab();
    let mut rng = Rng::new(0);
    let pairs: Vec<IdPair> = (0..batch)
        .map(|_| IdPair {
            src: (0..src_len).map(|_| 4 + rng.below(sv - 4) as u32).collect(),
            tgt: (0..tgt_len).map(|_| 4 + rng.below(tv - 4) as u32).collect(),
        })
        .collect();
    let tokens = batch * (tgt_len + 1);
    let secs = median_step_seconds(3, b.steps, model, |model| {
        // The trainer's step (`train::translate`): shards of the batch on their own threads.
        timed_step(model, shards, &mut optim, 1e-3, Some(5.0), |m, i| {
            let (loss, n) = batch_loss(m, shard(&pairs, shards, i), &device);
            loss * (n as f32 / tokens as f32)
        })
    });
    tokens as f64 / secs
}

/// The PyTorch twin's flags for `cfg` (`bench/seq2seq.py`), sources and targets of `len`
/// tokens.
fn translator_flags(cfg: &TranslatorConfig, len: usize) -> Result<Vec<(&'static str, String)>> {
    let (sv, tv) = cfg.vocab();
    let mut args: Vec<(&str, String)> = vec![
        ("--src-len", len.to_string()),
        ("--tgt-len", len.to_string()),
        ("--src-vocab", sv.to_string()),
        ("--tgt-vocab", tv.to_string()),
        ("--model", if matches!(cfg, TranslatorConfig::Seq2seq(_)) { "seq2seq" } else { "transformer" }.into()),
    ];
    match cfg {
        TranslatorConfig::Seq2seq(c) => {
            args.extend([
                ("--embed", c.embed.to_string()),
                ("--encoder", c.encoder.to_string()),
                ("--decoder", c.decoder.to_string()),
            ]);
            if c.attention.is_none() {
                args.push(("--no-attention", String::new()));
            } else if c.attention != Some(crate::attention::content::Score::Additive) {
                anyhow::bail!("the PyTorch baseline implements the additive score only");
            } else {
                args.push(("--attention-hidden", c.attention_hidden.to_string()));
            }
            if !c.input_feeding {
                args.push(("--no-input-feeding", String::new()));
            }
        }
        TranslatorConfig::Transformer(c) => {
            if c.encoder_layers != c.decoder_layers {
                anyhow::bail!("the PyTorch baseline takes equal encoder and decoder depths");
            }
            args.extend([
                ("--d-model", c.d_model.to_string()),
                ("--heads", c.heads.to_string()),
                ("--ff", c.ff.to_string()),
                ("--layers", c.encoder_layers.to_string()),
            ]);
        }
    }
    Ok(args)
}

/// Benchmarks a sequence-to-sequence model against its PyTorch twin, `bench/seq2seq.py`.
pub fn bench_translator(cfg: &TranslatorConfig, len: usize, b: &Bench) -> Result<BenchReport> {
    let args = translator_flags(cfg, len)?;
    let unit = format!("training target tokens/s (source and target {len} tokens, {} shards)", b.shards());
    Ok(b.report(cfg.name(), unit, || translator_tokens_per_s(cfg, (len, len), b), SEQ2SEQ_PY, &args))
}

/// Sources decoded per second by `cfg` (random weights, no autodiff) from `b.batch` random
/// sources of `len` tokens, at most `len + 1` target tokens each: greedy decoding of the batch
/// (`beam = None`) or beam search of each source in turn (length penalty α = 0.6); median over
/// `b.steps` timed passes.
pub fn translator_decoding_per_s(cfg: &TranslatorConfig, len: usize, beam: Option<usize>, b: &Bench) -> f64 {
    let device = b.device.clone();
    let model = b.inference_model(|d| cfg.init(d));
    let (sv, _) = cfg.vocab();
    let mut rng = Rng::new(0);
    let sources: Vec<Vec<u32>> =
        (0..b.batch).map(|_| (0..len).map(|_| 4 + rng.below(sv - 4) as u32).collect()).collect();
    let secs = median_step_seconds(1, b.steps, (), |()| match beam {
        None => {
            model.greedy(&sources, len + 1, &device);
        }
        Some(k) => {
            for s in &sources {
                model.beam(s, k, DECODING_ALPHA, len + 1, &device);
            }
        }
    });
    b.batch as f64 / secs
}

/// The length penalty's α in the decoding benchmarks (both sides).
const DECODING_ALPHA: f32 = 0.6;

/// Benchmarks decoding (greedy, or beam search of width `beam`) against the PyTorch twin's
/// (`bench/seq2seq.py --inference`, under `torch.no_grad()`).
pub fn bench_translator_decoding(
    cfg: &TranslatorConfig,
    len: usize,
    beam: Option<usize>,
    b: &Bench,
) -> Result<BenchReport> {
    let mut args = translator_flags(cfg, len)?;
    match beam {
        None => args.push(("--inference", "greedy".into())),
        Some(k) => args.extend([("--inference", "beam".into()), ("--beam", k.to_string())]),
    }
    args.push(("--alpha", DECODING_ALPHA.to_string()));
    let how = beam.map_or("greedy".to_string(), |k| format!("beam {k}"));
    let unit = format!("sources decoded/s ({how}, source {len} tokens, at most {} out)", len + 1);
    let name = format!("{} {how}", cfg.name());
    Ok(b.report(&name, unit, || translator_decoding_per_s(cfg, len, beam, b), SEQ2SEQ_PY, &args))
}

/// Training points/s of the handwriting synthesis network (teacher forcing, backward,
/// clipping, Adam) on one fixed random batch of lines of `len` points writing texts of `chars`
/// characters, split into data-parallel shards (as the trainer does): median step.
pub fn handwriting_points_per_s(cfg: &HandwritingConfig, (len, chars): (usize, usize), b: &Bench) -> f64 {
    let (model, device) = b.model(|d| cfg.init(d));
    let (batch, shards) = (b.batch, b.shards());
    let mut optim = OptimizerConfig::default().init();
    let mut rng = Rng::new(0);
    let examples: Vec<Example> = (0..batch)
        .map(|_| Example {
            offsets: (0..len)
                .map(|_| [rng.normal() as f32 * 0.5, rng.normal() as f32 * 0.5, f32::from(rng.uniform() < 0.1)])
                .collect(),
            text: Some((0..chars).map(|_| (b' ' + rng.below(cfg.alphabet.min(95)) as u8) as char).collect()),
        })
        .collect();
    let alphabet = cfg.window.map(|_| cfg.alphabet);
    let parts: Vec<_> = (0..shards)
        .map(|i| super::handwriting::batch_tensors(shard(&examples, shards, i), alphabet, &device))
        .collect();
    let points = batch * len;
    let secs = median_step_seconds(2, b.steps, model, |model| {
        timed_step(model, shards, &mut optim, 1e-3, Some(10.0), |m, i| {
            let (x, y, mask, text, _) = &parts[i];
            m.nll(x.clone(), y.clone(), mask.clone(), text.as_ref()).sum() / points as f32
        })
    });
    points as f64 / secs
}

/// The twin's flags for `cfg`'s sizes, a window of `k` mixtures (0: none), lines of `len`
/// points and texts of `chars` characters.
fn handwriting_flags(cfg: &HandwritingConfig, k: usize, len: usize, chars: usize) -> Vec<(&'static str, String)> {
    vec![
        ("--len", len.to_string()),
        ("--chars", chars.to_string()),
        ("--hidden", cfg.hidden.to_string()),
        ("--layers", cfg.layers.to_string()),
        ("--mixtures", cfg.mixtures.to_string()),
        ("--window", k.to_string()),
        ("--alphabet", cfg.alphabet.to_string()),
    ]
}

/// Benchmarks the handwriting synthesis network (or, without a window, the prediction
/// network) against its PyTorch twin, `bench/handwriting.py`.
pub fn bench_handwriting(cfg: &HandwritingConfig, len: usize, b: &Bench) -> Result<BenchReport> {
    let k = cfg.window.unwrap_or(0);
    let chars = (len / 10).max(1);
    let args = handwriting_flags(cfg, k, len, chars);
    let (name, text) = match cfg.window {
        Some(_) => ("handwriting synthesis", format!("{chars} characters, ")),
        None => ("handwriting prediction", String::new()),
    };
    let unit =
        format!("training points/s ({} × {} LSTM, {len} points, {text}{} shards)", cfg.layers, cfg.hidden, b.shards());
    Ok(b.report(name, unit, || handwriting_points_per_s(cfg, (len, chars), b), HANDWRITING_PY, &args))
}

/// Points written per second by the synthesis network `cfg` (random weights, no autodiff):
/// `b.batch` random texts of `len / 5` characters, written for `len` points each (the window
/// starts at 0.1 characters a point, so no text ends sooner), bias 0.5: median pass.
pub fn handwriting_sampling_per_s(cfg: &HandwritingConfig, len: usize, b: &Bench) -> f64 {
    use crate::models::handwriting::Sampling;
    let device = b.device.clone();
    let model = b.inference_model(|d| cfg.init(d));
    let mut rng = Rng::new(0);
    let chars = sampling_chars(len);
    let texts: Vec<Vec<usize>> =
        (0..b.batch).map(|_| (0..chars).map(|_| rng.below(cfg.alphabet.min(95))).collect()).collect();
    let how = Sampling { bias: SAMPLING_BIAS, max_steps: len };
    let secs = median_step_seconds(1, b.steps, (), |()| {
        std::hint::black_box(model.generate(Some(&texts), 0, None, how, &mut rng, &device));
    });
    (b.batch * len) as f64 / secs
}

/// Characters of each text the sampling benchmark writes in `len` points (both sides).
fn sampling_chars(len: usize) -> usize {
    (len / 5).max(1)
}

/// Graves' sampling bias in the sampling benchmark (both sides).
const SAMPLING_BIAS: f32 = 0.5;

/// Benchmarks sampling from the synthesis network against its PyTorch twin's
/// (`bench/handwriting.py --inference`, under `torch.no_grad()`).
pub fn bench_handwriting_sampling(cfg: &HandwritingConfig, len: usize, b: &Bench) -> Result<BenchReport> {
    let k = cfg.window.context("the benchmark is of the synthesis network (a window)")?;
    let mut args = handwriting_flags(cfg, k, len, sampling_chars(len));
    args.extend([("--bias", SAMPLING_BIAS.to_string()), ("--inference", String::new())]);
    let unit = format!("points written/s ({} × {} LSTM, {len} points a line)", cfg.layers, cfg.hidden);
    Ok(b.report("handwriting sampling", unit, || handwriting_sampling_per_s(cfg, len, b), HANDWRITING_PY, &args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn a_missing_interpreter_or_failing_script_is_reported_not_fatal() {
        let e = run_python_baseline_in("/nonexistent/python", "print(1)", &[]).unwrap_err();
        assert!(e.contains("cannot run"), "{e}");
        if Command::new("python3").arg("-c").arg("1").output().is_ok() {
            let e = run_python_baseline_in("python3", "raise SystemExit('no torch here')", &[]).unwrap_err();
            assert!(e.contains("no torch here"), "{e}");
            let (v, t) =
                run_python_baseline_in("python3", "print('{\"per_s\": 12.5, \"torch\": \"x\"}')", &[]).unwrap();
            assert_eq!((v, t.as_str()), (12.5, "x"));
        }
    }
}
