//! `glimpse train`: the `--config` file (or the family's defaults), the flags over it, then the
//! run. The `[train]` flags are the same for every family and land on its shared `[train]`
//! section ([`TrainConfig`]); a flag whose key the family does not read is refused, naming the
//! keys it does.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use glimpse::data::handwriting::{ALPHABET, StrokeData};
use glimpse::models::draw::DrawConfig;
use glimpse::models::handwriting::HandwritingConfig;
use glimpse::run::RunOptions;
use glimpse::train::checkpoint;
use glimpse::train::classify::{self, CheckpointMeta, ClassifierRunConfig};
use glimpse::train::config::{self, Section, TrainConfig};
use glimpse::train::generative::{self, DrawRunConfig};
use glimpse::train::handwriting::{self, HandwritingRunConfig};
use glimpse::train::optim::OptimizerConfig;
use glimpse::train::sequence::{self, SequenceRunConfig};
use glimpse::train::translate::{self, TaskConfig, TranslateRunConfig, TranslatorConfig};

use crate::cli::{ModelKind, TrainArgs, TrainFlags};

impl TrainArgs {
    /// Where and how to run, from the flags.
    fn run_options(&self, root: PathBuf, device: &str) -> RunOptions {
        RunOptions {
            out: self.out.clone(),
            data_root: root,
            device: device.into(),
            resume: self.resume,
            force: self.force,
            throttle_ms: self.throttle_ms,
            progress: !self.quiet,
        }
    }
}

impl TrainFlags {
    /// The flags given, each as `(flag, the [train] key it sets)`.
    fn given(&self) -> Vec<(String, String)> {
        let v = serde_json::to_value(self).expect("flags serialize");
        let keys = v.as_object().into_iter().flatten().filter(|(_, v)| !v.is_null());
        keys.map(|(k, _)| (format!("--{}", k.replace('_', "-")), k.clone())).collect()
    }
}

/// The optimizer named by `--optimizer` (with its defaults), if the flag was given.
pub(crate) fn optimizer_flag(a: &TrainArgs) -> Result<Option<OptimizerConfig>> {
    a.train
        .optimizer
        .as_deref()
        .map(|name| {
            OptimizerConfig::from_name(name).with_context(|| format!("unknown optimizer `{name}` (sgd, adam, rmsprop)"))
        })
        .transpose()
}

/// Reads a TOML run configuration.
pub(crate) fn read_config<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T> {
    let text = std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))?;
    toml::from_str::<T>(&text).with_context(|| format!("{}: invalid configuration", p.display()))
}

/// The `--config` file; without one, when resuming, the run's own configuration (so that a
/// resume names only what it changes, `--steps` say), else `default()`.
fn config_or<T: serde::de::DeserializeOwned>(a: &TrainArgs, default: impl FnOnce() -> Result<T>) -> Result<T> {
    let saved = a.resume.then(|| checkpoint::find_dir(&a.out.join("last"))).flatten();
    match (&a.config, saved) {
        (Some(p), _) => read_config(p),
        (None, Some(dir)) => read_config(&dir.join(checkpoint::CONFIG)),
        (None, None) => default(),
    }
}

/// Applies `--seed` and the `[train]` flags to a run of `section`'s family; a flag whose key
/// the family does not read is refused with the keys it reads.
pub(crate) fn apply_train_flags(a: &TrainArgs, section: &Section, seed: &mut u64, t: &mut TrainConfig) -> Result<()> {
    if let Some((flag, _)) = a.train.given().into_iter().find(|(_, key)| !section.reads(key)) {
        bail!(
            "{flag} does not apply to {} runs (their [train] keys: {}; set others in a --config)",
            section.family,
            section.all_keys().join(", ")
        );
    }
    if let Some(v) = a.seed {
        *seed = v;
    }
    for (field, flag) in
        [(&mut t.steps, a.train.steps), (&mut t.epochs, a.train.epochs), (&mut t.limit_train, a.train.limit_train)]
    {
        if flag.is_some() {
            *field = flag;
        }
    }
    for (field, flag) in [
        (&mut t.batch_size, a.train.batch_size),
        (&mut t.valid_size, a.train.valid_size),
        (&mut t.checkpoint_every, a.train.checkpoint_every),
        (&mut t.augment_shift, a.train.augment_shift),
        (&mut t.log_every, a.train.log_every),
    ] {
        if let Some(v) = flag {
            *field = v;
        }
    }
    if let Some(v) = a.train.lr {
        t.lr = v;
    }
    if let Some(o) = optimizer_flag(a)? {
        t.optimizer = o;
    }
    if let Some(c) = a.train.clip_norm {
        t.clip_norm = config::clip_norm(c);
    }
    if a.train.patience.is_some() {
        t.patience = a.train.patience;
    }
    if a.train.init.is_some() {
        t.init.clone_from(&a.train.init);
    }
    Ok(())
}

/// Applies `--seed` and the `[train]` flags ([`apply_train_flags`]) to a run of `section`'s
/// family, whose own data and model flags are `takes`: another family's is refused, and so are
/// `--task` and `--no-attention` beside a `--config` (they choose a default configuration).
fn apply_flags(a: &TrainArgs, section: &Section, takes: &[&str], seed: &mut u64, t: &mut TrainConfig) -> Result<()> {
    let given = [
        ("--dataset", a.dataset.is_some()),
        ("--canvas", a.canvas.is_some()),
        ("--clutter", a.clutter.is_some()),
        ("--task", a.task.is_some()),
        ("--no-attention", a.no_attention),
    ];
    if let Some((flag, _)) = given.iter().find(|(f, on)| *on && !takes.contains(f)) {
        bail!("{flag} does not apply to {} runs", section.family);
    }
    if a.config.is_some() && (a.task.is_some() || a.no_attention) {
        bail!("--task and --no-attention choose a default configuration; edit the --config file instead");
    }
    apply_train_flags(a, section, seed, t)
}

/// An image classifier's run configuration: the `--config` file (or the defaults), then the flags.
fn run_config(a: &TrainArgs) -> Result<ClassifierRunConfig> {
    let mut cfg = config_or(a, || {
        Ok(ClassifierRunConfig {
            seed: 0,
            model: a.model.default_config(a.canvas.unwrap_or(28)),
            data: Default::default(),
            train: config::classifier_defaults(),
        })
    })?;
    apply_flags(a, &config::CLASSIFIER, &["--dataset", "--canvas", "--clutter"], &mut cfg.seed, &mut cfg.train)?;
    if let Some(v) = &a.dataset {
        cfg.data.dataset.clone_from(v);
    }
    if a.canvas.is_some() {
        cfg.data.canvas = a.canvas;
    }
    if let Some(v) = a.clutter {
        cfg.data.clutter = v;
    }
    Ok(cfg)
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

/// A memory model's run configuration: the `--config` file (or the copy task), then the flags.
fn sequence_run_config(a: &TrainArgs) -> Result<SequenceRunConfig> {
    let mut cfg = config_or(a, || Ok(a.model.default_sequence_config()))?;
    apply_flags(a, &config::SEQUENCE, &[], &mut cfg.seed, &mut cfg.train)?;
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
    let mut cfg = config_or(a, || {
        Ok(DrawRunConfig {
            seed: 0,
            model: DrawConfig::mnist(true),
            data: Default::default(),
            train: config::draw_defaults(),
        })
    })?;
    apply_flags(a, &config::DRAW, &["--dataset"], &mut cfg.seed, &mut cfg.train)?;
    if let Some(v) = &a.dataset {
        cfg.data.dataset.clone_from(v);
    }
    Ok(cfg)
}

/// DRAW's run; reports its best validation bound.
fn train_draw(a: &TrainArgs, opts: &RunOptions) -> Result<String> {
    let cfg = draw_run_config(a)?;
    let s = generative::train_draw(&cfg, opts)?;
    Ok(closing(s.steps, &format!("best validation bound {:.2} nats", s.valid_nll_nats), &s.best, "test bound"))
}

/// The closing line of a run whose test figure is left to `glimpse eval`: its steps, its best
/// validation figure `best`, and the best checkpoint's folder.
fn closing(steps: u64, best: &str, dir: &Path, test: &str) -> String {
    format!("{steps} steps; {best}; checkpoint {} (`glimpse eval` for the {test})", dir.display())
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
    let mut cfg = config_or(a, || {
        let task: TaskConfig = match a.task.as_deref().unwrap_or("dates") {
            "dates" => toml::from_str("kind = \"dates\"")?,
            "de-en" => toml::from_str("kind = \"de-en\"")?,
            other => bail!("unknown task `{other}` (dates, de-en)"),
        };
        let model = default_translator(a.model, &task, !a.no_attention);
        Ok(TranslateRunConfig { seed: 0, model, task, train: config::translate_defaults() })
    })?;
    apply_flags(a, &config::TRANSLATE, &["--task", "--no-attention"], &mut cfg.seed, &mut cfg.train)?;
    Ok(cfg)
}

/// A seq2seq or Transformer run; reports its best validation score.
fn train_translate(a: &TrainArgs, opts: &RunOptions) -> Result<String> {
    let cfg = translate_run_config(a)?;
    let s = translate::train_translate(&cfg, opts)?;
    Ok(closing(s.steps, &format!("best validation score {:.4}", s.valid_value), &s.best, "test score"))
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
        train: config::handwriting_defaults(),
    })
}

/// A handwriting run configuration: the `--config` file (or `--task`'s defaults), then the flags.
fn handwriting_run_config(a: &TrainArgs) -> Result<HandwritingRunConfig> {
    let mut cfg = config_or(a, || default_handwriting(a.task.as_deref().unwrap_or("text-lines"), !a.no_attention))?;
    apply_flags(a, &config::HANDWRITING, &["--task", "--no-attention"], &mut cfg.seed, &mut cfg.train)?;
    Ok(cfg)
}

/// A handwriting network's run; reports its best validation NLL.
fn train_handwriting(a: &TrainArgs, opts: &RunOptions) -> Result<String> {
    let cfg = handwriting_run_config(a)?;
    let s = handwriting::train_handwriting(&cfg, opts)?;
    let best = format!("best validation NLL {:.1} nats per sequence", s.valid_nll_nats);
    Ok(closing(s.steps, &best, &s.best, "test NLL"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn args(line: &str) -> TrainArgs {
        let words = std::iter::once("glimpse").chain(line.split_whitespace());
        match Cli::try_parse_from(words).unwrap().command {
            Command::Train(a) => *a,
            _ => unreachable!("a train command"),
        }
    }

    /// The shared flags land on the shared section of every family that reads their key.
    #[test]
    fn train_flags_set_the_shared_section() {
        let c = run_config(&args("train cnn --epochs 3 --lr 0.01 --clip-norm 0 --patience 2 --limit-train 7")).unwrap();
        assert_eq!((c.train.epochs, c.train.lr, c.train.clip_norm), (Some(3), 0.01, None));
        assert_eq!((c.train.patience, c.train.limit_train), (Some(2), Some(7)));
        let c = sequence_run_config(&args("train ntm --steps 9 --batch-size 4 --seed 5 --init x")).unwrap();
        assert_eq!((c.train.steps, c.train.batch_size, c.seed), (Some(9), 4, 5));
        assert_eq!(c.train.init.as_deref(), Some(Path::new("x")));
        let c = handwriting_run_config(&args("train handwriting --steps 2 --clip-norm 3")).unwrap();
        assert_eq!((c.train.steps, c.train.clip_norm), (Some(2), Some(3.0)));
    }

    /// A flag whose key the family does not read, or another family's data flag, is refused
    /// with the family named.
    #[test]
    fn flags_of_other_families_are_refused_naming_the_family() {
        let err = |r: Result<()>| format!("{:#}", r.unwrap_err());
        let e = err(run_config(&args("train cnn --steps 3")).map(drop));
        assert!(e.contains("--steps does not apply to image classifier runs") && e.contains("epochs"), "{e}");
        let e = err(translate_run_config(&args("train seq2seq --init x")).map(drop));
        assert!(e.contains("--init does not apply to sequence-to-sequence runs"), "{e}");
        let e = err(draw_run_config(&args("train draw --canvas 60")).map(drop));
        assert!(e.contains("--canvas does not apply to DRAW runs"), "{e}");
        let e = err(sequence_run_config(&args("train ntm --augment-shift 2")).map(drop));
        assert!(e.contains("--augment-shift does not apply to sequence model runs"), "{e}");
    }
}
