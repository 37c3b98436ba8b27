//! `glimpse train`: each family's flags mapped onto its run configuration, then the run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use glimpse::data::handwriting::{ALPHABET, StrokeData};
use glimpse::models::draw::DrawConfig;
use glimpse::models::handwriting::HandwritingConfig;
use glimpse::run::RunOptions;
use glimpse::train::checkpoint;
use glimpse::train::classify::{self, CheckpointMeta, ClassifierRunConfig};
use glimpse::train::generative::{self, DrawRunConfig};
use glimpse::train::handwriting::{self, HandwritingRunConfig};
use glimpse::train::optim::OptimizerConfig;
use glimpse::train::sequence::{self, SequenceRunConfig};
use glimpse::train::translate::{self, TaskConfig, TranslateRunConfig, TranslatorConfig};

use crate::cli::{ModelKind, TrainArgs};

impl TrainArgs {
    /// Where and how to run, from the flags.
    fn run_options(&self, root: PathBuf, device: &str) -> RunOptions {
        RunOptions {
            out: self.out.clone(),
            data_root: root,
            device: device.into(),
            resume: self.resume,
            throttle_ms: self.throttle_ms,
            progress: !self.quiet,
        }
    }
}

/// The optimizer named by `--optimizer` (with its defaults), if the flag was given.
pub(crate) fn optimizer_flag(a: &TrainArgs) -> Result<Option<OptimizerConfig>> {
    a.optimizer
        .as_deref()
        .map(|name| {
            OptimizerConfig::from_name(name).with_context(|| format!("unknown optimizer `{name}` (sgd, adam, rmsprop)"))
        })
        .transpose()
}

/// Fails on the first of `flags` that was given: `"{flag} {why}"`.
pub(crate) fn reject_flags(flags: &[(&str, bool)], why: &str) -> Result<()> {
    match flags.iter().find(|(_, given)| *given) {
        Some((flag, _)) => bail!("{flag} {why}"),
        None => Ok(()),
    }
}

/// Reads a TOML run configuration.
pub(crate) fn read_config<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T> {
    let text = std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))?;
    toml::from_str::<T>(&text).with_context(|| format!("{}: invalid configuration", p.display()))
}

/// The fields of a step-based training configuration that flags override.
pub(crate) struct StepTrain<'a> {
    steps: &'a mut usize,
    batch_size: &'a mut usize,
    checkpoint_every: &'a mut usize,
    log_every: &'a mut usize,
    lr: &'a mut f64,
    optimizer: &'a mut OptimizerConfig,
    clip_norm: &'a mut Option<f32>,
    /// Where `--init` goes; None: the model takes no `--init`.
    init: Option<&'a mut Option<PathBuf>>,
}

/// The [`StepTrain`] fields of the step-based training configuration `$t` (the sequence,
/// translation and handwriting runs' configurations share these field names); `$init`: where
/// `--init` goes, or None.
macro_rules! step_train {
    ($t:expr, $init:expr) => {
        StepTrain {
            steps: &mut $t.steps,
            batch_size: &mut $t.batch_size,
            checkpoint_every: &mut $t.checkpoint_every,
            log_every: &mut $t.log_every,
            lr: &mut $t.lr,
            optimizer: &mut $t.optimizer,
            clip_norm: &mut $t.clip_norm,
            init: $init,
        }
    };
}

/// Applies `--seed`, `--steps`, `--batch-size`, `--checkpoint-every`, `--log-every`, `--lr`,
/// `--optimizer` and `--clip-norm`; fails on the image classifiers' flags (and `also`), saying
/// `"{flag} {why}"`.
pub(crate) fn apply_step_flags(
    a: &TrainArgs,
    seed: &mut u64,
    t: StepTrain,
    also: &[(&str, bool)],
    why: &str,
) -> Result<()> {
    if let Some(v) = a.seed {
        *seed = v;
    }
    for (field, flag) in [
        (t.steps, a.steps),
        (t.batch_size, a.batch_size),
        (t.checkpoint_every, a.checkpoint_every),
        (t.log_every, a.log_every),
    ] {
        if let Some(v) = flag {
            *field = v;
        }
    }
    if let Some(v) = a.lr {
        *t.lr = v;
    }
    if let Some(o) = optimizer_flag(a)? {
        *t.optimizer = o;
    }
    if a.clip_norm.is_some() {
        *t.clip_norm = a.clip_norm;
    }
    let takes_init = t.init.is_some();
    if let (Some(field), Some(from)) = (t.init, &a.init) {
        *field = Some(from.clone());
    }
    let mut flags = vec![
        ("--dataset", a.dataset.is_some()),
        ("--canvas", a.canvas.is_some()),
        ("--clutter", a.clutter.is_some()),
        ("--epochs", a.epochs.is_some()),
        ("--valid-size", a.valid_size.is_some()),
        ("--augment-shift", a.augment_shift.is_some()),
        ("--patience", a.patience.is_some()),
        ("--init", a.init.is_some() && !takes_init),
    ];
    flags.extend_from_slice(also);
    reject_flags(&flags, why)
}

/// An image classifier's run configuration: the `--config` file (or the defaults), then the flags.
fn run_config(a: &TrainArgs) -> Result<ClassifierRunConfig> {
    let mut cfg = match &a.config {
        Some(p) => read_config::<ClassifierRunConfig>(p)?,
        None => ClassifierRunConfig {
            seed: 0,
            model: a.model.default_config(a.canvas.unwrap_or(28)),
            data: Default::default(),
            train: Default::default(),
        },
    };
    let t = &mut cfg.train;
    macro_rules! set {
        ($field:expr, $flag:expr) => {
            if let Some(v) = $flag.clone() {
                $field = v;
            }
        };
    }
    set!(cfg.seed, a.seed);
    set!(cfg.data.dataset, a.dataset);
    if a.canvas.is_some() {
        cfg.data.canvas = a.canvas;
    }
    set!(cfg.data.clutter, a.clutter);
    set!(t.epochs, a.epochs);
    set!(t.batch_size, a.batch_size);
    set!(t.lr, a.lr);
    if let Some(o) = optimizer_flag(a)? {
        t.optimizer = o;
    }
    if a.clip_norm.is_some() {
        t.clip_norm = a.clip_norm;
    }
    set!(t.valid_size, a.valid_size);
    if a.patience.is_some() {
        t.patience = a.patience;
    }
    set!(t.checkpoint_every, a.checkpoint_every);
    set!(t.augment_shift, a.augment_shift);
    if a.limit_train.is_some() {
        t.limit_train = a.limit_train;
    }
    set!(t.log_every, a.log_every);
    if a.init.is_some() {
        t.init.clone_from(&a.init);
    }
    Ok(cfg)
}

/// A memory model's run configuration: the `--config` file (or the copy task), then the flags.
fn sequence_run_config(a: &TrainArgs) -> Result<SequenceRunConfig> {
    let mut cfg = match &a.config {
        Some(p) => read_config::<SequenceRunConfig>(p)?,
        None => a.model.default_sequence_config(),
    };
    let t = &mut cfg.train;
    apply_step_flags(
        a,
        &mut cfg.seed,
        step_train!(t, Some(&mut t.init)),
        &[("--limit-train", a.limit_train.is_some())],
        "applies to image classifiers, not to sequence models (use --steps, or a --config)",
    )?;
    Ok(cfg)
}

/// A memory model's run (ntm, lstm, dnc); reports its best validation cost and bit errors.
fn train_sequence(a: &TrainArgs, opts: &RunOptions) -> Result<String> {
    let cfg = sequence_run_config(a)?;
    if a.model.name() != cfg.model.kind() {
        bail!("the configuration's model is `{}`, not `{}`", cfg.model.kind(), a.model.name());
    }
    let s = sequence::train_sequence(&cfg, opts)?;
    let conv = match s.converged_at_sequences {
        Some(n) => format!("; below 0.01 bit errors per sequence after {n} sequences"),
        None => String::new(),
    };
    Ok(format!(
        "{} steps; best validation {:.3} bits/seq cost, {:.3} bit errors/seq{conv}; checkpoint {}",
        s.steps,
        s.valid.cost_bits_per_seq,
        s.valid.bit_errors_per_seq,
        s.best.display()
    ))
}

/// DRAW's run configuration: the `--config` file (or binarised MNIST), then the flags.
fn draw_run_config(a: &TrainArgs) -> Result<DrawRunConfig> {
    let mut cfg = match &a.config {
        Some(p) => read_config::<DrawRunConfig>(p)?,
        None => DrawRunConfig {
            seed: 0,
            model: DrawConfig::mnist(true),
            data: Default::default(),
            train: Default::default(),
        },
    };
    let t = &mut cfg.train;
    if let Some(v) = a.seed {
        cfg.seed = v;
    }
    if let Some(v) = &a.dataset {
        cfg.data.dataset = v.clone();
    }
    for (field, flag) in [
        (&mut t.epochs, a.epochs),
        (&mut t.batch_size, a.batch_size),
        (&mut t.valid_size, a.valid_size),
        (&mut t.checkpoint_every, a.checkpoint_every),
        (&mut t.log_every, a.log_every),
    ] {
        if let Some(v) = flag {
            *field = v;
        }
    }
    if let Some(v) = a.lr {
        t.lr = v;
    }
    if let Some(o) = optimizer_flag(a)? {
        t.optimizer = o;
    }
    if a.clip_norm.is_some() {
        t.clip_norm = a.clip_norm;
    }
    if a.limit_train.is_some() {
        t.limit_train = a.limit_train;
    }
    reject_flags(
        &[
            ("--canvas", a.canvas.is_some()),
            ("--clutter", a.clutter.is_some()),
            ("--steps", a.steps.is_some()),
            ("--augment-shift", a.augment_shift.is_some()),
            ("--patience", a.patience.is_some()),
            ("--init", a.init.is_some()),
        ],
        "does not apply to DRAW (use --epochs, or a --config)",
    )?;
    Ok(cfg)
}

/// DRAW's run; reports its best validation bound.
fn train_draw(a: &TrainArgs, opts: &RunOptions) -> Result<String> {
    let cfg = draw_run_config(a)?;
    let s = generative::train_draw(&cfg, opts)?;
    Ok(format!(
        "{} steps; best validation bound {:.2} nats; checkpoint {} (`glimpse eval` for the test bound)",
        s.steps,
        s.valid_nll_nats,
        s.best.display()
    ))
}

/// `glimpse train`: one run of the chosen model.
pub(crate) fn run(a: &TrainArgs, root: PathBuf, device: &str) -> Result<()> {
    let opts = a.run_options(root, device);
    let t0 = std::time::Instant::now();
    let report = match a.model {
        ModelKind::Ntm | ModelKind::Lstm | ModelKind::Dnc => train_sequence(a, &opts)?,
        ModelKind::Draw => train_draw(a, &opts)?,
        ModelKind::Seq2seq | ModelKind::Transformer => train_translate(a, &opts)?,
        ModelKind::Handwriting => train_handwriting(a, &opts)?,
        ModelKind::Mlp | ModelKind::Cnn | ModelKind::Ram | ModelKind::DrawClassifier => train_classifier(a, &opts)?,
    };
    println!("done in {:.1}s: {report}", t0.elapsed().as_secs_f64());
    Ok(())
}

/// An image classifier's run; prints its validation and test error.
fn train_classifier(a: &TrainArgs, opts: &RunOptions) -> Result<String> {
    let cfg = run_config(a)?;
    let s = classify::train_classifier(&cfg, opts)?;
    let meta: CheckpointMeta = checkpoint::read_meta(&s.best)?;
    // A translated test set is placed (and cluttered) by the run's seed: name the
    // layout, since another seed's layout of the same test digits gives another figure.
    let layout = cfg.data.canvas.map(|_| format!(" (layout of data seed {})", cfg.seed)).unwrap_or_default();
    Ok(format!(
        "{} steps; best validation error {:.2}% (epoch {}); test error {:.2}% on {} images{layout}; checkpoint {}",
        s.steps,
        100.0 * s.valid_error,
        meta.epoch + 1,
        100.0 * s.test_error,
        s.n_test,
        s.best.display()
    ))
}

/// The default model of `train seq2seq` / `train transformer` for a task.
pub(crate) fn default_translator(kind: ModelKind, task: &TaskConfig, attention: bool) -> TranslatorConfig {
    let dates = matches!(task, TaskConfig::Dates { .. });
    match kind {
        ModelKind::Transformer => TranslatorConfig::Transformer(glimpse::models::transformer::TransformerConfig {
            src_vocab: 0,
            tgt_vocab: 0,
            d_model: if dates { 64 } else { 256 },
            heads: 4,
            ff: if dates { 256 } else { 512 },
            encoder_layers: 2,
            decoder_layers: 2,
        }),
        _ => TranslatorConfig::Seq2seq(glimpse::models::seq2seq::Seq2seqConfig {
            src_vocab: 0,
            tgt_vocab: 0,
            embed: if dates { 32 } else { 128 },
            encoder: if dates { 64 } else { 128 },
            decoder: if dates { 128 } else { 256 },
            attention: attention.then_some(glimpse::attention::content::Score::Additive),
            attention_hidden: if dates { 64 } else { 256 },
            input_feeding: true,
        }),
    }
}

/// A seq2seq / Transformer run configuration: the `--config` file (or `--task`'s defaults),
/// then the flags.
fn translate_run_config(a: &TrainArgs) -> Result<TranslateRunConfig> {
    let mut cfg = match &a.config {
        Some(p) => read_config::<TranslateRunConfig>(p)?,
        None => {
            let task: TaskConfig = match a.task.as_deref().unwrap_or("dates") {
                "dates" => toml::from_str("kind = \"dates\"")?,
                "de-en" => toml::from_str("kind = \"de-en\"")?,
                other => bail!("unknown task `{other}` (dates, de-en)"),
            };
            TranslateRunConfig {
                seed: 0,
                model: default_translator(a.model, &task, !a.no_attention),
                task,
                train: Default::default(),
            }
        }
    };
    if a.config.is_some() && (a.task.is_some() || a.no_attention) {
        bail!("--task and --no-attention choose a default configuration; edit the --config file instead");
    }
    let t = &mut cfg.train;
    if a.limit_train.is_some() {
        t.limit_train = a.limit_train;
    }
    apply_step_flags(
        a,
        &mut cfg.seed,
        step_train!(t, None),
        &[],
        "does not apply to sequence-to-sequence models (use --steps, or a --config)",
    )?;
    Ok(cfg)
}

/// A seq2seq or Transformer run; reports its best validation score.
fn train_translate(a: &TrainArgs, opts: &RunOptions) -> Result<String> {
    let cfg = translate_run_config(a)?;
    let s = translate::train_translate(&cfg, opts)?;
    Ok(format!(
        "{} steps; best validation score {:.4}; checkpoint {} (`glimpse eval` for the test score)",
        s.steps,
        s.valid_value,
        s.best.display()
    ))
}

/// The default handwriting run: the synthesis network on text lines, or the prediction network
/// (on Omniglot's strokes, or on text lines without reading the text).
pub(crate) fn default_handwriting(task: &str, window: bool) -> Result<HandwritingRunConfig> {
    let data = match task {
        "text-lines" => StrokeData::text_lines(),
        "omniglot" => StrokeData::omniglot(),
        other => bail!("unknown handwriting data `{other}` (text-lines, omniglot)"),
    };
    let window = (window && data.has_text()).then_some(10);
    Ok(HandwritingRunConfig {
        seed: 0,
        data,
        model: HandwritingConfig { hidden: 128, layers: 3, mixtures: 20, window, alphabet: ALPHABET, window_rate: 0.1 },
        train: Default::default(),
    })
}

/// A handwriting run configuration: the `--config` file (or `--task`'s defaults), then the flags.
fn handwriting_run_config(a: &TrainArgs) -> Result<HandwritingRunConfig> {
    let mut cfg = match &a.config {
        Some(p) => read_config::<HandwritingRunConfig>(p)?,
        None => default_handwriting(a.task.as_deref().unwrap_or("text-lines"), !a.no_attention)?,
    };
    if a.config.is_some() && (a.task.is_some() || a.no_attention) {
        bail!("--task and --no-attention choose a default configuration; edit the --config file instead");
    }
    let t = &mut cfg.train;
    apply_step_flags(
        a,
        &mut cfg.seed,
        step_train!(t, None),
        &[("--limit-train", a.limit_train.is_some())],
        "does not apply to the handwriting networks (use --steps, or a --config)",
    )?;
    Ok(cfg)
}

/// A handwriting network's run; reports its best validation NLL.
fn train_handwriting(a: &TrainArgs, opts: &RunOptions) -> Result<String> {
    let cfg = handwriting_run_config(a)?;
    let s = handwriting::train_handwriting(&cfg, opts)?;
    Ok(format!(
        "{} steps; best validation NLL {:.1} nats per sequence; checkpoint {} (`glimpse eval` for the test NLL)",
        s.steps,
        s.valid_nll_nats,
        s.best.display()
    ))
}
