//! `glimpse`: train, evaluate, inspect and benchmark attention models.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use glimpse::data::algorithmic::Task;
use glimpse::data::fetch::{FileStatus, fetch, verify};
use glimpse::data::handwriting::{ALPHABET, StrokeData};
use glimpse::data::{self, Split, registry};
use glimpse::models::ClassifierConfig;
use glimpse::models::cnn::CnnConfig;
use glimpse::models::dnc::DncConfig;
use glimpse::models::draw::DrawConfig;
use glimpse::models::draw_classifier::DrawClassifierConfig;
use glimpse::models::handwriting::HandwritingConfig;
use glimpse::models::lstm::LstmConfig;
use glimpse::models::mlp::MlpConfig;
use glimpse::models::ntm::NtmConfig;
use glimpse::models::ram::RamConfig;
use glimpse::run::RunOptions;
use glimpse::train::checkpoint;
use glimpse::train::classify::{self, CheckpointMeta, ClassifierRunConfig};
use glimpse::train::generative::{self, DrawRunConfig};
use glimpse::train::handwriting::{self, HandwritingRunConfig};
use glimpse::train::optim::OptimizerConfig;
use glimpse::train::sequence::{self, SequenceModelConfig, SequenceRunConfig};
use glimpse::train::translate::{self, TaskConfig, TranslateRunConfig, TranslatorConfig};

// mimalloc instead of glibc's malloc: autodiff allocates and frees many short-lived gradient
// buffers every step, and glibc returned their pages to the kernel only to fault them back in
// (`clear_page_erms` led the profile of `glimpse bench ntm`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ABOUT: &str = "Glimpse: attention and memory in deep learning.
Train, evaluate, inspect and benchmark the classic neural attention models on real data.";

const EXAMPLES: &str = "Examples:
  glimpse data fetch mnist                      # download MNIST into the data root
  glimpse train cnn --out runs/cnn-mnist        # train the CNN on MNIST
  glimpse eval runs/cnn-mnist/best --json       # test error of the best checkpoint
  glimpse saliency checkpoints/cnn-mnist --index 0 --out saliency.png
  glimpse bench cnn --json                      # ours vs PyTorch, training samples/s";

#[derive(Parser)]
#[command(name = "glimpse", version, about = ABOUT, after_help = EXAMPLES)]
struct Cli {
    /// CPU threads for tensor kernels (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Data root (else $GLIMPSE_DATA, else the per-user cache).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Compute device: cpu, or wgpu / cuda when built with those features.
    #[arg(long, global = true, default_value = "cpu")]
    device: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model; writes checkpoints and metrics under --out.
    #[command(after_help = "Examples:
  glimpse train cnn --out runs/cnn-mnist --epochs 8 --augment-shift 2
  glimpse train mlp --dataset fashion-mnist --out runs/mlp-fashion
  glimpse train cnn --config my-run.toml --out runs/x
  glimpse train cnn --out runs/cnn-mnist --resume   # continue an interrupted run

A TOML config holds `seed`, `[model]` (kind = \"cnn\" | \"mlp\" and its sizes),
`[data]` (dataset, canvas, clutter) and `[train]` (epochs, batch_size, lr,
optimizer, schedule, clip_norm, valid_size, patience, checkpoint_every,
augment_shift); flags override it. A run's config is saved in its checkpoints.")]
    Train(Box<TrainArgs>),
    /// Evaluate a checkpoint on the test split of its data.
    #[command(after_help = "Example:\n  glimpse eval checkpoints/cnn-mnist --json")]
    Eval {
        /// Checkpoint directory (holding config.toml, model.safetensors).
        checkpoint: PathBuf,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
        /// Which split: test (default), or valid (the run's held-out training images).
        #[arg(long, default_value = "test", value_parser = ["test", "valid"])]
        split: String,
        /// Sequence models: evaluate at this length (items for associative recall; default:
        /// lengths drawn over the training range).
        #[arg(long)]
        len: Option<usize>,
        /// Repeat copy: evaluate with this many repeats, the count fed on the training scale
        /// (default: repeats drawn over the training range).
        #[arg(long)]
        repeats: Option<usize>,
        /// Sequence models: number of test sequences.
        #[arg(long, default_value_t = 256)]
        sequences: usize,
        /// seq2seq / Transformer: beam width (default: the run's; 1 = greedy).
        #[arg(long)]
        beam: Option<usize>,
        /// seq2seq / Transformer: also print the first N test examples (source, reference, output).
        #[arg(long, default_value_t = 0)]
        examples: usize,
        /// Handwriting synthesis: the sampling bias of the window check (each of the first
        /// --sequences held-out texts written once).
        #[arg(long, default_value_t = 0.0)]
        bias: f32,
        /// Classifiers and sequence models: draw the evaluation data (clutter layouts and
        /// placements, test sequences) from this seed instead of the run's, to see how much a
        /// figure owes to one draw. The digits of each split stay the same.
        #[arg(long)]
        data_seed: Option<u64>,
    },
    /// Write a text in handwriting with a synthesis checkpoint (or draw unconditional samples
    /// with a prediction-network checkpoint).
    #[command(after_help = "Examples:
  glimpse write checkpoints/handwriting-synthesis \"attention and memory\" --bias 1.5 --out line.svg
  glimpse write checkpoints/handwriting-synthesis \"Keep a distance!\" --samples 4 --out four.png --window phi
  glimpse write checkpoints/handwriting-omniglot --samples 8 --out omniglot.svg")]
    Write {
        /// Checkpoint directory.
        checkpoint: PathBuf,
        /// The text (synthesis checkpoints; printable ASCII).
        text: Option<String>,
        /// Sampling bias b (Graves section 5.4): 0 samples the model as trained; larger is neater.
        #[arg(long, default_value_t = 1.0)]
        bias: f32,
        /// Output picture: .svg or .png.
        #[arg(long, default_value = "line.svg")]
        out: PathBuf,
        /// Lines to write (samples of the same text).
        #[arg(long, default_value_t = 1)]
        samples: usize,
        /// Seed of the samples.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Most points per sample (the synthesis network stops earlier, when its window
        /// passes the end of the text).
        #[arg(long)]
        max_steps: Option<usize>,
        /// Prime with held-out test sequence N (its strokes, and its text before the text to
        /// write): the samples continue in that line's style (Graves section 5.5).
        #[arg(long)]
        prime: Option<usize>,
        /// Also write the window picture φ(t, u) of the first sample: PREFIX.svg and PREFIX.png.
        #[arg(long, value_name = "PREFIX")]
        window: Option<PathBuf>,
        /// Instead of TEXT, write the first N sentences of the test split (never seen in
        /// training), one line each.
        #[arg(long, value_name = "N")]
        held_out: Option<usize>,
    },
    /// Translate (or normalise) a text with a seq2seq or Transformer checkpoint.
    #[command(after_help = "Examples:
  glimpse translate checkpoints/seq2seq-de-en \"Ich verliere die Geduld.\"
  glimpse translate checkpoints/seq2seq-dates \"Mittwoch, 3. März 2021\" --alignment docs/seq2seq/date")]
    Translate {
        /// Checkpoint directory.
        checkpoint: PathBuf,
        /// The source text.
        text: String,
        /// Beam width (1: greedy).
        #[arg(long, default_value_t = 5)]
        beam: usize,
        /// Also write the alignment picture: PREFIX.png (heat map) and PREFIX.svg (with tokens).
        #[arg(long, value_name = "PREFIX")]
        alignment: Option<PathBuf>,
        /// Pixels per cell of the PNG.
        #[arg(long, default_value_t = 16)]
        scale: u32,
    },
    /// Fetch, verify and list data sets.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Training throughput of our model against the same model in PyTorch.
    #[command(
        after_help = "Example:\n  glimpse bench cnn --json --threads 2\n\nThe baseline runs bench/classifier.py (embedded) with $GLIMPSE_PYTHON, else python3; it needs `pip install torch`."
    )]
    Bench(BenchArgs),
    /// Pictures of where a model looked.
    Viz {
        #[command(subcommand)]
        command: VizCommand,
    },
    /// Average the weights of image-classifier checkpoints of one model into a new checkpoint
    /// ("model soup": runs fine-tuned from one starting point; or points along one run), then
    /// report its validation and test error.
    #[command(after_help = "Example:\n  glimpse average runs/a/best runs/b/best --out runs/soup")]
    Average {
        /// Checkpoint directories (two or more), of the same model and sizes.
        #[arg(required = true, num_args = 2..)]
        checkpoints: Vec<PathBuf>,
        /// Where to write the averaged checkpoint (its config and data are the first one's).
        #[arg(long)]
        out: PathBuf,
        /// Draw the soup's clutter layouts and placements from this seed instead of the first
        /// checkpoint's (written into the soup's `config.toml`), so that checkpoints of runs on
        /// other clutter are scored, and the soup kept, on one clutter.
        #[arg(long)]
        data_seed: Option<u64>,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Give a trained NTM's learned first memory more rows (each new row interpolated from the
    /// two nearest old ones), every other weight kept; a larger run starts from it with `init`
    /// (the priority-sort recipe: 128 → 256 → 512 rows).
    #[command(
        name = "grow-memory",
        after_help = "Example:\n  glimpse grow-memory checkpoints/ntm-priority-sort --rows 1024 --out runs/ps-1024-init"
    )]
    GrowMemory {
        /// Checkpoint of an NTM trained with `memory_init = "learned"`.
        checkpoint: PathBuf,
        /// Rows of the grown memory (a multiple of the checkpoint's).
        #[arg(long)]
        rows: usize,
        /// Where to write the grown checkpoint.
        #[arg(long)]
        out: PathBuf,
    },
    /// Give a trained DRAW classifier a wider LSTM that computes the same logits (the new
    /// units start with zero weights into the rest of the model); a run of the wider model
    /// starts from it with `init` (a larger student for distillation).
    #[command(
        after_help = "Example:\n  glimpse widen checkpoints/draw-cluttered100 --hidden 512 --out runs/draw-512-init"
    )]
    Widen {
        /// Checkpoint of a DRAW classifier.
        checkpoint: PathBuf,
        /// LSTM units of the wider model (more than the checkpoint's).
        #[arg(long)]
        hidden: usize,
        /// Where to write the widened checkpoint.
        #[arg(long)]
        out: PathBuf,
    },
    /// Implicit attention: the input gradient of a class logit, as a PNG heat map.
    #[command(after_help = "Example:\n  glimpse saliency checkpoints/cnn-mnist --index 7 --out saliency.png")]
    Saliency {
        /// Checkpoint directory of an image classifier.
        checkpoint: PathBuf,
        /// Index of the test image.
        #[arg(long, default_value_t = 0)]
        index: usize,
        /// Class whose logit is differentiated (default: the predicted class).
        #[arg(long)]
        class: Option<usize>,
        /// Output PNG.
        #[arg(long, default_value = "saliency.png")]
        out: PathBuf,
        /// Enlargement of each pixel in the picture.
        #[arg(long, default_value_t = 8)]
        scale: u32,
    },
}

#[derive(Subcommand)]
enum VizCommand {
    /// A memory model on one test sequence: inputs, targets, outputs, then the write and read
    /// weightings over memory locations through time (rows: locations, columns: steps).
    #[command(after_help = "Example:\n  glimpse viz ntm checkpoints/ntm-copy --len 40 --out docs/ntm/copy-40.png")]
    Ntm {
        /// Checkpoint directory of an NTM or a DNC.
        checkpoint: PathBuf,
        /// Sequence length (items for associative recall; default: the longest trained).
        #[arg(long)]
        len: Option<usize>,
        /// Repeat copy: number of repeats, the count fed on the training scale (default: drawn
        /// over the training range).
        #[arg(long)]
        repeats: Option<usize>,
        /// Seed of the test sequence.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output PNG.
        #[arg(long, default_value = "ntm.png")]
        out: PathBuf,
        /// Pixels per cell.
        #[arg(long, default_value_t = 4)]
        scale: u32,
        /// Show every memory location. By default each head's panel shows one window round
        /// the locations it used or, where those lie far apart, only them (a grey row stands
        /// for each run of locations left out).
        #[arg(long)]
        all_locations: bool,
    },
    /// RAM's glimpse paths on test images: a PNG grid and an animated GIF.
    #[command(after_help = "Example:\n  glimpse viz ram checkpoints/ram-mnist28-6g --n 8 --out docs/ram/mnist28")]
    Ram {
        /// Checkpoint directory of a RAM.
        checkpoint: PathBuf,
        /// Number of test images (the first N, from --start).
        #[arg(long, default_value_t = 8)]
        n: usize,
        /// Index of the first test image.
        #[arg(long, default_value_t = 0)]
        start: usize,
        /// Output path prefix: writes PREFIX.png and PREFIX.gif.
        #[arg(long, default_value = "ram-glimpses")]
        out: PathBuf,
        /// Enlargement of each pixel.
        #[arg(long, default_value_t = 4)]
        scale: u32,
    },
    /// DRAW: generated digits (PREFIX-samples.png), the canvas step by step with the write
    /// window (PREFIX-strip.png, PREFIX.gif). A DRAW classifier: its read windows over test
    /// images (PREFIX.png, PREFIX.gif).
    #[command(after_help = "Examples:
  glimpse viz draw checkpoints/draw-mnist --out docs/draw/mnist
  glimpse viz draw checkpoints/draw-cluttered100 --n 8 --out docs/draw/cluttered100")]
    Draw {
        /// Checkpoint directory of a DRAW model or a DRAW classifier.
        checkpoint: PathBuf,
        /// Number of samples (or test images) in the strip and the GIF.
        #[arg(long, default_value_t = 8)]
        n: usize,
        /// Seed of the generated samples; for a classifier, the index of the first test image.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output path prefix.
        #[arg(long, default_value = "draw")]
        out: PathBuf,
        /// Enlargement of each pixel.
        #[arg(long, default_value_t = 4)]
        scale: u32,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Download a data set from public mirrors into the data root, verifying SHA-256.
    #[command(
        after_help = "Example:\n  glimpse data fetch mnist\n  glimpse data fetch fashion-mnist --data-dir ~/data"
    )]
    Fetch {
        /// mnist or fashion-mnist.
        name: String,
        /// Mirror base URL to try first (repeatable); `<URL><file>.gz` is fetched.
        #[arg(long = "mirror", value_name = "URL")]
        mirrors: Vec<String>,
        /// Try only the --mirror URLs, not the built-in ones.
        #[arg(long)]
        only_mirrors: bool,
    },
    /// Check every known data set under the data root offline; non-zero exit if a file is corrupt.
    Verify,
    /// List the known data sets and where they are.
    List,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModelKind {
    /// Multi-layer perceptron.
    Mlp,
    /// Small convolutional network.
    Cnn,
    /// Recurrent Attention Model (hard attention, REINFORCE).
    Ram,
    /// Neural Turing Machine on an algorithmic task (default: copy).
    Ntm,
    /// Plain LSTM on an algorithmic task: the memory models' baseline.
    Lstm,
    /// Differentiable Neural Computer on an algorithmic task (default: copy).
    Dnc,
    /// DRAW: soft read/write attention generating binarised MNIST.
    Draw,
    /// DRAW's read attention as a classifier (the DRAW paper's "differentiable RAM").
    DrawClassifier,
    /// LSTM encoder-decoder with content attention (or without: `--no-attention`).
    Seq2seq,
    /// Encoder-decoder Transformer.
    Transformer,
    /// Graves' handwriting networks: synthesis with a soft window over the text (default),
    /// or the unconditional prediction network (`--task omniglot`, or `--no-attention`).
    Handwriting,
}

impl ModelKind {
    fn default_config(self, side: usize) -> ClassifierConfig {
        match self {
            ModelKind::Mlp => ClassifierConfig::Mlp(MlpConfig::new(side, side)),
            ModelKind::Cnn => ClassifierConfig::Cnn(CnnConfig::new(side, side)),
            ModelKind::Ram => ClassifierConfig::Ram(RamConfig::for_side(side)),
            ModelKind::DrawClassifier => ClassifierConfig::DrawClassifier(DrawClassifierConfig::new(side)),
            ModelKind::Ntm
            | ModelKind::Lstm
            | ModelKind::Dnc
            | ModelKind::Draw
            | ModelKind::Seq2seq
            | ModelKind::Transformer
            | ModelKind::Handwriting => {
                unreachable!("sequence models and DRAW have no classifier configuration")
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            ModelKind::Mlp => "mlp",
            ModelKind::Cnn => "cnn",
            ModelKind::Ram => "ram",
            ModelKind::Ntm => "ntm",
            ModelKind::Lstm => "lstm",
            ModelKind::Dnc => "dnc",
            ModelKind::Draw => "draw",
            ModelKind::DrawClassifier => "draw-classifier",
            ModelKind::Seq2seq => "seq2seq",
            ModelKind::Transformer => "transformer",
            ModelKind::Handwriting => "handwriting",
        }
    }

    fn is_sequence(self) -> bool {
        matches!(self, ModelKind::Ntm | ModelKind::Lstm | ModelKind::Dnc)
    }

    /// The default sequence run: the paper's copy task (8 bits, lengths 1–20).
    fn default_sequence_config(self) -> SequenceRunConfig {
        let task = Task::Copy { bits: 8, min_len: 1, max_len: 20 };
        let (i, o) = (task.input_size(), task.output_size());
        let model = match self {
            ModelKind::Lstm => SequenceModelConfig::Lstm(LstmConfig { inputs: i, outputs: o, hidden: 256, layers: 3 }),
            ModelKind::Dnc => SequenceModelConfig::Dnc(DncConfig::new(i, o)),
            _ => SequenceModelConfig::Ntm(NtmConfig::new(i, o)),
        };
        SequenceRunConfig { seed: 0, model, task, train: Default::default() }
    }
}

#[derive(Args)]
struct TrainArgs {
    /// Which model.
    model: ModelKind,
    /// Run directory: last/ (resumable), best/ (checkpoint), metrics.jsonl, tb/.
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// TOML configuration; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue from OUT/last.
    #[arg(long)]
    resume: bool,
    /// Seed of every random draw.
    #[arg(long)]
    seed: Option<u64>,
    /// Data set: mnist or fashion-mnist.
    #[arg(long)]
    dataset: Option<String>,
    /// Translated task on a canvas of this side.
    #[arg(long)]
    canvas: Option<usize>,
    /// Cluttered task: number of 8×8 distractors.
    #[arg(long)]
    clutter: Option<usize>,
    #[arg(long)]
    /// Passes over the training set.
    epochs: Option<usize>,
    /// Sequence models: optimizer steps (batches) in all.
    #[arg(long)]
    steps: Option<usize>,
    /// Examples per step.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Base learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Optimizer: sgd, adam or rmsprop (defaults of each; use --config for details).
    #[arg(long)]
    optimizer: Option<String>,
    /// Clip the global gradient norm.
    #[arg(long)]
    clip_norm: Option<f32>,
    /// Training images held out for validation.
    #[arg(long)]
    valid_size: Option<usize>,
    /// Early stopping patience in epochs.
    #[arg(long)]
    patience: Option<usize>,
    /// Save the resumable state every N steps.
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Random shift augmentation, in pixels.
    #[arg(long)]
    augment_shift: Option<usize>,
    /// Train on only the first N images.
    #[arg(long)]
    limit_train: Option<usize>,
    /// Image classifiers and the memory models (ntm, dnc, lstm): start from this checkpoint's
    /// weights (a curriculum's next stage, fine-tuning, a longer run); the optimizer starts afresh.
    #[arg(long, value_name = "CHECKPOINT")]
    init: Option<PathBuf>,
    /// Log every N steps.
    #[arg(long)]
    log_every: Option<usize>,
    /// Sequence-to-sequence task: dates or de-en; handwriting data: text-lines or omniglot.
    #[arg(long)]
    task: Option<String>,
    /// seq2seq: the encoder-decoder without attention (Cho et al.'s fixed summary);
    /// handwriting: the prediction network, which does not read the text.
    #[arg(long)]
    no_attention: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Sleep after each step (for tests that interrupt runs).
    #[arg(long, hide = true, default_value_t = 0)]
    throttle_ms: u64,
}

#[derive(Args)]
struct BenchArgs {
    /// Which model.
    model: ModelKind,
    /// Batch size (both implementations; default 64, and for the NTM both 1 and 16).
    #[arg(long)]
    batch: Option<usize>,
    /// NTM: copy-sequence length of the benchmark batch (seq2seq / Transformer: source and
    /// target length, default 16).
    #[arg(long, default_value_t = 20)]
    len: usize,
    /// Image side: 28 (MNIST), or e.g. 60 / 100 for RAM's translated and cluttered tasks.
    #[arg(long, default_value_t = 28)]
    side: usize,
    /// Timed steps (after a few warm-up steps).
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// DRAW: glimpses T (default: the paper's 64).
    #[arg(long)]
    glimpses: Option<usize>,
    /// DRAW: the no-attention variant (whole-image read and write); seq2seq: the encoder-decoder
    /// without attention.
    #[arg(long)]
    no_attention: bool,
    /// seq2seq / Transformer / DRAW / handwriting / NTM: data-parallel shards of our training step, each on its own
    /// thread (the trainers' `shards` setting; default: the thread count). The PyTorch baseline
    /// uses its own intra-op threads.
    #[arg(long)]
    shards: Option<usize>,
    /// Alternating rounds of ours and PyTorch; figures are medians over rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

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
fn optimizer_flag(a: &TrainArgs) -> Result<Option<OptimizerConfig>> {
    a.optimizer
        .as_deref()
        .map(|name| {
            OptimizerConfig::from_name(name).with_context(|| format!("unknown optimizer `{name}` (sgd, adam, rmsprop)"))
        })
        .transpose()
}

/// Fails on the first of `flags` that was given: `"{flag} {why}"`.
fn reject_flags(flags: &[(&str, bool)], why: &str) -> Result<()> {
    match flags.iter().find(|(_, given)| *given) {
        Some((flag, _)) => bail!("{flag} {why}"),
        None => Ok(()),
    }
}

/// Reads a TOML run configuration.
fn read_config<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T> {
    let text = std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))?;
    toml::from_str::<T>(&text).with_context(|| format!("{}: invalid configuration", p.display()))
}

/// The fields of a step-based training configuration that flags override.
struct StepTrain<'a> {
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

/// Applies `--seed`, `--steps`, `--batch-size`, `--checkpoint-every`, `--log-every`, `--lr`,
/// `--optimizer` and `--clip-norm`; fails on the image classifiers' flags (and `also`), saying
/// `"{flag} {why}"`.
fn apply_step_flags(a: &TrainArgs, seed: &mut u64, t: StepTrain, also: &[(&str, bool)], why: &str) -> Result<()> {
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

fn sequence_run_config(a: &TrainArgs) -> Result<SequenceRunConfig> {
    let mut cfg = match &a.config {
        Some(p) => read_config::<SequenceRunConfig>(p)?,
        None => a.model.default_sequence_config(),
    };
    let t = &mut cfg.train;
    let fields = StepTrain {
        steps: &mut t.steps,
        batch_size: &mut t.batch_size,
        checkpoint_every: &mut t.checkpoint_every,
        log_every: &mut t.log_every,
        lr: &mut t.lr,
        optimizer: &mut t.optimizer,
        clip_norm: &mut t.clip_norm,
        init: Some(&mut t.init),
    };
    apply_step_flags(
        a,
        &mut cfg.seed,
        fields,
        &[("--limit-train", a.limit_train.is_some())],
        "applies to image classifiers, not to sequence models (use --steps, or a --config)",
    )?;
    Ok(cfg)
}

fn train_sequence(a: &TrainArgs, root: PathBuf, device: &str) -> Result<()> {
    let cfg = sequence_run_config(a)?;
    if a.model.name() != cfg.model.kind() {
        bail!("the configuration's model is `{}`, not `{}`", cfg.model.kind(), a.model.name());
    }
    let opts = a.run_options(root, device);
    let t0 = std::time::Instant::now();
    let s = sequence::train_sequence(&cfg, &opts)?;
    let conv = match s.converged_at_sequences {
        Some(n) => format!("; below 0.01 bit errors per sequence after {n} sequences"),
        None => String::new(),
    };
    println!(
        "done in {:.1}s: {} steps; best validation {:.3} bits/seq cost, {:.3} bit errors/seq{conv}; checkpoint {}",
        t0.elapsed().as_secs_f64(),
        s.steps,
        s.valid.cost_bits_per_seq,
        s.valid.bit_errors_per_seq,
        s.best.display()
    );
    Ok(())
}

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

fn train_draw(a: &TrainArgs, root: PathBuf, device: &str) -> Result<()> {
    let cfg = draw_run_config(a)?;
    let opts = a.run_options(root, device);
    let t0 = std::time::Instant::now();
    let s = generative::train_draw(&cfg, &opts)?;
    println!(
        "done in {:.1}s: {} steps; best validation bound {:.2} nats; checkpoint {} (`glimpse eval` for the test bound)",
        t0.elapsed().as_secs_f64(),
        s.steps,
        s.valid_nll_nats,
        s.best.display()
    );
    Ok(())
}

/// Whether a checkpoint's metadata names `model` (`draw`, `handwriting`).
fn checkpoint_holds(dir: &Path, model: &str) -> bool {
    checkpoint::read_meta::<serde_json::Value>(dir).is_ok_and(|m| m["model"] == model)
}

fn eval_draw(dir: &Path, json: bool, split: &str, root: PathBuf, device: &str) -> Result<()> {
    let dev = glimpse::device::by_name(device)?;
    let t0 = std::time::Instant::now();
    let (cfg, model) = generative::load_draw(dir, &dev)?;
    let data = match split {
        "valid" => generative::train_and_validation(&cfg, &root)?.1,
        _ => cfg.data.load(&root, Split::Test)?,
    };
    let m = generative::evaluate_bound(&model, &data, 0, cfg.seed, &dev);
    let out = serde_json::json!({
        "checkpoint": dir.display().to_string(),
        "model": "draw",
        "dataset": cfg.data.dataset,
        "split": split,
        "nll_nats": m.nll_nats,
        "reconstruction_nats": m.reconstruction_nats,
        "kl_nats": m.kl_nats,
        "n": m.n,
        "seconds": t0.elapsed().as_secs_f64(),
    });
    if json {
        println!("{out}");
    } else {
        println!(
            "{}: {split} negative log-likelihood ≤ {:.2} nats (reconstruction {:.2} + KL {:.2}), {} images",
            dir.display(),
            m.nll_nats,
            m.reconstruction_nats,
            m.kl_nats,
            m.n
        );
    }
    Ok(())
}

fn viz_draw(dir: &Path, n: usize, seed: u64, out: &Path, scale: u32, root: PathBuf, device: &str) -> Result<()> {
    use glimpse::models::draw::DrawTrace;
    use glimpse::rng::Rng;
    use glimpse::viz::draw::{WRITE_COLOUR, canvas, reads_panel, tile};
    use glimpse::viz::glimpses::save_gif;
    use glimpse::viz::heatmap::save_png;
    let dir =
        checkpoint::find_dir(dir).with_context(|| format!("{}: not a checkpoint (no meta.json)", dir.display()))?;
    let dev = glimpse::device::by_name(device)?;
    let n = n.max(1);
    let path = |suffix: &str, ext: &str| {
        let name = out.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        out.with_file_name(format!("{name}{suffix}.{ext}"))
    };
    if !checkpoint_holds(&dir, "draw") {
        // A DRAW classifier: its read windows over test images.
        let (cfg, model) = classify::load_classifier(&dir, &dev)?;
        let glimpse::models::Classifier::DrawClassifier(m) = model else {
            bail!("{}: a {} checkpoint, neither DRAW nor a DRAW classifier", dir.display(), cfg.model.kind())
        };
        let test = cfg.data.load(&root, Split::Test, cfg.seed)?;
        let start = seed as usize;
        let idx: Vec<usize> = (start..(start + n).min(test.len())).collect();
        if idx.is_empty() {
            bail!("--seed {start} is past the {} test images", test.len());
        }
        let (x, y) = test.batch(&idx);
        let side = test.side();
        let images = glimpse::burn::tensor::Tensor::<4>::from_data(
            glimpse::burn::tensor::TensorData::new(x.clone(), [idx.len(), 1, side[0], side[1]]),
            &dev,
        );
        let mut windows = vec![];
        let logits = m.run(images, Some(&mut windows));
        let pred: Vec<i64> =
            logits.argmax(1).into_data().convert::<i64>().try_to_vec().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let d = side[0] * side[1];
        let steps = windows.len();
        let panel = |k: usize, upto: usize, show: bool| {
            let w: Vec<_> = windows.iter().map(|s| s[k]).collect();
            reads_panel(&x[k * d..(k + 1) * d], side, scale, &w, upto, show.then(|| (pred[k] as usize, y[k] as usize)))
        };
        let grid: Vec<_> = (0..idx.len()).map(|k| panel(k, usize::MAX, true)).collect();
        let png = out.with_extension("png");
        save_png(&tile(&grid, 4, 4), &png)?;
        let frames: Vec<_> = (0..=steps)
            .map(|t| {
                tile(&(0..idx.len()).map(|k| panel(k, t.min(steps - 1), t == steps)).collect::<Vec<_>>(), idx.len(), 4)
            })
            .collect();
        let gif = out.with_extension("gif");
        save_gif(&frames, 70, 200, &gif)?;
        let right = (0..idx.len()).filter(|&k| pred[k] == y[k]).count();
        println!("{right} of {} right; wrote {} and {}", idx.len(), png.display(), gif.display());
        return Ok(());
    }
    let (cfg, model) = generative::load_draw(&dir, &dev)?;
    let side = cfg.model.side;
    let d = side[0] * side[1];
    let mut rng = Rng::derive(seed, "viz-draw", 0);
    // 1. A grid of 8×8 samples (final canvases).
    let z = generative::noise(cfg.model.steps, 64, cfg.model.latent, &mut rng, &dev);
    let samples: Vec<f32> = model.generate(z, None).into_data().try_to_vec().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let panels: Vec<_> = samples.chunks(d).map(|p| canvas(p, side, scale.div_ceil(2), &[])).collect();
    let samples_png = path("-samples", "png");
    save_png(&tile(&panels, 8, 2), &samples_png)?;
    // 2. n samples drawn step by step: a strip of ~10 time points each, and a GIF.
    let z = generative::noise(cfg.model.steps, n, cfg.model.latent, &mut rng, &dev);
    let mut trace = DrawTrace::default();
    model.generate(z, Some(&mut trace));
    let t_max = trace.canvases.len();
    let frame = |t: usize, k: usize| {
        let w: Vec<_> = trace.writes.get(t).map(|s| vec![(s[k], WRITE_COLOUR)]).unwrap_or_default();
        canvas(&trace.canvases[t][k * d..(k + 1) * d], side, scale, &w)
    };
    let picks: Vec<usize> =
        (0..10).map(|i| (i * (t_max - 1)) / 9).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let strip: Vec<_> = (0..n).flat_map(|k| picks.iter().map(move |&t| (t, k))).map(|(t, k)| frame(t, k)).collect();
    let strip_png = path("-strip", "png");
    save_png(&tile(&strip, picks.len(), 2), &strip_png)?;
    let frames: Vec<_> = (0..t_max).map(|t| tile(&(0..n).map(|k| frame(t, k)).collect::<Vec<_>>(), n, 4)).collect();
    let gif = out.with_extension("gif");
    save_gif(&frames, 8, 150, &gif)?;
    println!("wrote {}, {} and {}", samples_png.display(), strip_png.display(), gif.display());
    Ok(())
}

/// Whether a checkpoint holds a sequence model (its configuration has a `[task]`).
fn is_sequence_checkpoint(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(checkpoint::CONFIG))
        .ok()
        .and_then(|t| toml::from_str::<toml::Table>(&t).ok())
        .is_some_and(|t| t.contains_key("task"))
}

/// `--repeats R` of `eval` and `viz ntm`: repeat copy with exactly `R` repeats, the count fed
/// on the training scale ([`Task::with_repeats`]); an error for other tasks or `R = 0`.
fn apply_repeats(task: &mut Task, repeats: Option<usize>) -> Result<()> {
    if let Some(r) = repeats {
        if r == 0 {
            bail!("--repeats must be at least 1");
        }
        *task = task.with_repeats(r).with_context(|| format!("--repeats: {} has no repeats", task.name()))?;
    }
    Ok(())
}

fn eval_sequence(
    dir: &Path,
    json: bool,
    len: Option<usize>,
    repeats: Option<usize>,
    n: usize,
    data_seed: Option<u64>,
    device: &str,
) -> Result<()> {
    let dev = glimpse::device::by_name(device)?;
    let t0 = std::time::Instant::now();
    let (mut cfg, model) = sequence::load_sequence_model(dir, &dev)?;
    cfg.seed = data_seed.unwrap_or(cfg.seed);
    apply_repeats(&mut cfg.task, repeats)?;
    let m = sequence::evaluate(&model, &cfg.task, len, n, cfg.seed, "test", &dev);
    // Question answering: the error of each task type on its own, too.
    let mut per_task = serde_json::Map::new();
    if let Task::Babi { tasks, min_facts, max_facts } = &cfg.task {
        for &k in tasks {
            let one = Task::Babi { tasks: vec![k], min_facts: *min_facts, max_facts: *max_facts };
            let mk = sequence::evaluate(&model, &one, len, n, cfg.seed, "test", &dev);
            per_task.insert(format!("task{k}_error"), mk.bit_errors_per_seq.into());
        }
    }
    let mut out = serde_json::json!({
        "checkpoint": dir.display().to_string(),
        "model": cfg.model.kind(),
        "task": cfg.task.name(),
        "len": len,
        "repeats": repeats,
        "bit_errors_per_seq": m.bit_errors_per_seq,
        "cost_bits_per_seq": m.cost_bits_per_seq,
        "n": m.n,
        "data_seed": cfg.seed,
        "seconds": t0.elapsed().as_secs_f64(),
    });
    if let Some(opt) = sequence::ngram_optimal_cost(&cfg.task, len, n, cfg.seed, "test") {
        out["optimal_cost_bits_per_seq"] = opt.into();
    }
    if cfg.task.categorical() {
        out["answer_error"] = m.bit_errors_per_seq.into();
        out["per_task"] = per_task.clone().into();
    }
    if json {
        println!("{out}");
    } else if cfg.task.categorical() {
        let tasks: Vec<String> =
            per_task.iter().map(|(k, v)| format!("{k} {:.1}%", 100.0 * v.as_f64().unwrap_or(f64::NAN))).collect();
        println!(
            "{}: {}: answer error {:.2}% ({}), {} questions",
            dir.display(),
            cfg.task.name(),
            100.0 * m.bit_errors_per_seq,
            tasks.join(", "),
            m.n
        );
    } else {
        let at = len.map_or("training lengths".to_string(), |l| format!("length {l}"));
        println!(
            "{}: {} at {at}: {:.3} bit errors per sequence, cost {:.3} bits per sequence ({} sequences)",
            dir.display(),
            cfg.task.name(),
            m.bit_errors_per_seq,
            m.cost_bits_per_seq,
            m.n
        );
        if let Some(opt) = out["optimal_cost_bits_per_seq"].as_f64() {
            println!("  the Bayes-optimal predictor costs {opt:.3} bits per sequence on the same sequences");
        }
    }
    Ok(())
}

/// `glimpse average`: the parameter-wise mean of classifier checkpoints, saved and evaluated.
fn average(
    dirs: &[PathBuf],
    out: &Path,
    data_seed: Option<u64>,
    json: bool,
    data_root: PathBuf,
    device: &str,
) -> Result<()> {
    let dev = glimpse::device::by_name(device)?;
    let mut models = Vec::new();
    let mut first: Option<ClassifierRunConfig> = None;
    let mut seconds = Vec::new();
    for d in dirs {
        let dir =
            checkpoint::find_dir(d).with_context(|| format!("{}: not a checkpoint (no meta.json)", d.display()))?;
        let (cfg, model) = classify::load_classifier(&dir, &dev)
            .with_context(|| format!("{}: not an image-classifier checkpoint", dir.display()))?;
        if let Some(f) = &first
            && f.model.architecture() != cfg.model.architecture()
        {
            bail!("{} holds another model than {} (kind or sizes differ)", dir.display(), dirs[0].display());
        }
        // Every checkpoint records its run's cumulative training seconds.
        let meta: serde_json::Value = checkpoint::read_meta(&dir)?;
        let path = std::fs::canonicalize(&dir).unwrap_or(dir);
        seconds.push((path, meta["train_seconds"].as_f64().unwrap_or(0.0)));
        first.get_or_insert(cfg);
        models.push(model);
    }
    let mut cfg = first.context("no checkpoints")?;
    cfg.seed = data_seed.unwrap_or(cfg.seed);
    let model = checkpoint::average_weights(&models)?;
    let train_seconds = checkpoint::combined_train_seconds(&seconds);
    let valid = classify::train_and_validation(&cfg, &data_root)?.1;
    let test = cfg.data.load(&data_root, Split::Test, cfg.seed)?;
    let (_, verr, _) = classify::evaluate(&model, valid.as_ref(), 500, &dev);
    let (tloss, terr, n) = classify::evaluate(&model, test.as_ref(), 500, &dev);
    let meta = CheckpointMeta {
        model: cfg.model.kind().into(),
        step: 0,
        epoch: 0,
        valid_error: verr,
        test_error: Some(terr),
        train_seconds,
    };
    checkpoint::save_run_dir(out, &model, &cfg, &meta, None)?;
    let summary = serde_json::json!({
        "checkpoint": out.display().to_string(),
        "averaged": dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
        "data_seed": cfg.seed,
        "valid_error": verr,
        "test_error": terr,
        "test_loss": tloss,
        "n": n,
    });
    if json {
        println!("{summary}");
    } else {
        let layout = cfg.data.canvas.map(|_| format!(", layout of data seed {}", cfg.seed)).unwrap_or_default();
        println!(
            "{}: the mean of {} checkpoints: validation error {:.2}%, test error {:.2}% ({n} images{layout})",
            out.display(),
            dirs.len(),
            100.0 * verr,
            100.0 * terr
        );
    }
    Ok(())
}

fn eval(dir: &Path, json: bool, split: &str, data_seed: Option<u64>, data_root: PathBuf, device: &str) -> Result<()> {
    let dir =
        checkpoint::find_dir(dir).with_context(|| format!("{}: not a checkpoint (no meta.json)", dir.display()))?;
    let dev = glimpse::device::by_name(device)?;
    let t0 = std::time::Instant::now();
    let (mut cfg, model) = classify::load_classifier(&dir, &dev)?;
    cfg.seed = data_seed.unwrap_or(cfg.seed);
    let data = match split {
        "valid" => classify::train_and_validation(&cfg, &data_root)?.1,
        _ => cfg.data.load(&data_root, Split::Test, cfg.seed)?,
    };
    let (loss, err, n) = classify::evaluate(&model, data.as_ref(), 500, &dev);
    let out = serde_json::json!({
        "checkpoint": dir.display().to_string(),
        "model": cfg.model.kind(),
        "dataset": cfg.data.dataset,
        "split": split,
        format!("{split}_error"): err,
        format!("{split}_loss"): loss,
        "n": n,
        "data_seed": cfg.seed,
        "seconds": t0.elapsed().as_secs_f64(),
    });
    if json {
        println!("{out}");
    } else {
        println!(
            "{}: {split} error {:.2}% ({} of {n} wrong), loss {loss:.4}",
            dir.display(),
            100.0 * err,
            (err * n as f64).round()
        );
    }
    Ok(())
}

fn data_cmd(cmd: DataCommand, root: PathBuf) -> Result<ExitCode> {
    match cmd {
        DataCommand::Fetch { name, mirrors, only_mirrors } => {
            let spec = registry::by_name(&name)
                .with_context(|| format!("unknown data set `{name}` (known: mnist, fashion-mnist)"))?;
            let mut all = mirrors;
            if !only_mirrors {
                all.extend(spec.mirrors.iter().map(|s| s.to_string()));
            }
            let written = fetch(spec, &root, &all)?;
            println!(
                "{}: {} file(s) fetched, all verified, in {}",
                spec.name,
                written.len(),
                root.join(spec.dir).display()
            );
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Verify => {
            println!("data root: {}", root.display());
            let mut bad = false;
            for spec in registry::ALL {
                let st = verify(spec, &root);
                let ok = st.iter().filter(|(_, s)| matches!(s, FileStatus::Ok(_))).count();
                let absent: Vec<_> = st.iter().filter(|(_, s)| *s == FileStatus::Absent).map(|(f, _)| f.name).collect();
                let corrupt: Vec<_> = st
                    .iter()
                    .filter_map(|(_, s)| match s {
                        FileStatus::Corrupt(p, why) => Some(format!("{}: {why}", p.display())),
                        _ => None,
                    })
                    .collect();
                if ok == 0 && corrupt.is_empty() {
                    println!("{:<14} absent", spec.name);
                } else if corrupt.is_empty() && absent.is_empty() {
                    println!("{:<14} ok ({ok} files verified)", spec.name);
                } else {
                    println!("{:<14} {ok} ok, {} corrupt, {} missing", spec.name, corrupt.len(), absent.len());
                    for c in &corrupt {
                        println!("  CORRUPT {c}");
                    }
                    for a in &absent {
                        println!("  missing {a}");
                    }
                    bad |= !corrupt.is_empty();
                }
            }
            Ok(if bad { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        DataCommand::List => {
            for spec in registry::ALL {
                let dirs: Vec<String> = spec.search_dirs(&root).iter().map(|d| d.display().to_string()).collect();
                println!(
                    "{:<14} {} files; looked for in {}\n{:<14} {}",
                    spec.name,
                    spec.files.len(),
                    dirs.join(", "),
                    "",
                    spec.licence
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn saliency(
    dir: &Path,
    index: usize,
    class: Option<usize>,
    out: &Path,
    scale: u32,
    root: PathBuf,
    device: &str,
) -> Result<()> {
    let dir =
        checkpoint::find_dir(dir).with_context(|| format!("{}: not a checkpoint (no meta.json)", dir.display()))?;
    let dev = glimpse::device::by_name(device)?.autodiff();
    let (cfg, model) = classify::load_classifier(&dir, &dev)?;
    let test = cfg.data.load(&root, Split::Test, cfg.seed)?;
    if index >= test.len() {
        bail!("--index {index} is out of range: the test set has {} images", test.len());
    }
    let (x, y) = test.batch(&[index]);
    if let Some(c) = class.filter(|&c| c >= 10) {
        bail!("--class {c} is out of range (0..10)");
    }
    let s = glimpse::attention::saliency::input_gradient(&model, &x, test.side(), class, &dev);
    let img = glimpse::viz::heatmap::image_and_heat(&x, &s.gradient, test.side(), scale);
    glimpse::viz::heatmap::save_png(&img, out)?;
    let pred = s.logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0);
    println!(
        "test image {index}: label {}, predicted {pred}; saliency of class {} written to {} (image | |∂logit/∂x| | overlay)",
        y[0],
        s.class,
        out.display()
    );
    Ok(())
}

fn viz_ram(dir: &Path, start: usize, n: usize, out: &Path, scale: u32, root: PathBuf, device: &str) -> Result<()> {
    use glimpse::models::Classifier;
    use glimpse::models::ram::Gaze;
    use glimpse::viz::glimpses::{GlimpsePath, animation, grid};
    let dir =
        checkpoint::find_dir(dir).with_context(|| format!("{}: not a checkpoint (no meta.json)", dir.display()))?;
    let dev = glimpse::device::by_name(device)?;
    let (cfg, model) = classify::load_classifier(&dir, &dev)?;
    let Classifier::Ram(ram) = model else { bail!("{}: a {} checkpoint, not a RAM", dir.display(), cfg.model.kind()) };
    let test = cfg.data.load(&root, Split::Test, cfg.seed)?;
    let idx: Vec<usize> = (start..(start + n).min(test.len())).collect();
    if idx.is_empty() {
        bail!("--start {start} is past the {} test images", test.len());
    }
    let (x, y) = test.batch(&idx);
    let tr = ram.run(&x, Gaze::Greedy, &dev);
    let logits: Vec<f32> = tr.logits.into_data().try_to_vec().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let side = test.side();
    let classes = logits.len() / idx.len();
    let paths: Vec<GlimpsePath> = (0..idx.len())
        .map(|k| GlimpsePath {
            pixels: x[k * side[0] * side[1]..(k + 1) * side[0] * side[1]].to_vec(),
            locations: tr.locations.iter().map(|l| [l[2 * k], l[2 * k + 1]]).collect(),
            prediction: (0..classes)
                .max_by(|&a, &b| logits[k * classes + a].total_cmp(&logits[k * classes + b]))
                .unwrap_or(0),
            label: y[k] as usize,
        })
        .collect();
    let retina = ram.config().retina;
    let png = out.with_extension("png");
    let gif = out.with_extension("gif");
    glimpse::viz::heatmap::save_png(&grid(&paths, &retina, side, scale, 4), &png)?;
    animation(&paths, &retina, side, scale, &gif)?;
    let right = paths.iter().filter(|p| p.prediction == p.label).count();
    println!("{right} of {} right; wrote {} and {}", paths.len(), png.display(), gif.display());
    Ok(())
}

/// Which test sequence `glimpse viz ntm` draws.
struct NtmSequence {
    len: Option<usize>,
    repeats: Option<usize>,
    seed: u64,
}

fn viz_ntm(dir: &Path, which: NtmSequence, out: &Path, scale: u32, all: bool, device: &str) -> Result<()> {
    use glimpse::burn::tensor::Tensor;
    use glimpse::burn::tensor::activation::sigmoid;
    use glimpse::models::ntm::Trace;
    use glimpse::rng::Rng;
    use glimpse::viz::memory::{Panel, stack};
    let dir =
        checkpoint::find_dir(dir).with_context(|| format!("{}: not a checkpoint (no meta.json)", dir.display()))?;
    if !is_sequence_checkpoint(&dir) {
        bail!("{}: not a sequence-model checkpoint", dir.display());
    }
    let dev = glimpse::device::by_name(device)?;
    let (mut cfg, model) = sequence::load_sequence_model(&dir, &dev)?;
    if matches!(cfg.model, SequenceModelConfig::Lstm(_)) {
        bail!("{}: a {} checkpoint has no memory to draw", dir.display(), cfg.model.kind());
    }
    apply_repeats(&mut cfg.task, which.repeats)?;
    let len = which.len.unwrap_or(cfg.task.len_range().1);
    let e = cfg.task.sample_len(1, len, &mut Rng::derive(which.seed, "viz", 0));
    let ep = sequence::episode_tensors(&e, &dev);
    let mut trace = Trace::default();
    let logits = Tensor::cat(model.forward(ep.inputs.clone(), Some(&mut trace)), 0); // (T, O)
    let errors = sequence::bit_errors(&logits, &ep);
    let (i, o) = (cfg.task.input_size(), cfg.task.output_size());
    let probs: Vec<f32> = sigmoid(logits).into_data().try_to_vec().map_err(|err| anyhow::anyhow!("{err:?}"))?;
    let steps = |v: &[f32], w: usize| -> Vec<Vec<f32>> { v.chunks(w).map(<[f32]>::to_vec).collect() };
    let scored: Vec<Vec<f32>> = probs.chunks(o).zip(&e.mask).map(|(p, &m)| p.iter().map(|v| v * m).collect()).collect();
    let mut panels = vec![
        Panel::from_steps(&steps(&e.inputs, i)),
        Panel::from_steps(&steps(&e.targets, o)),
        Panel::from_steps(&scored),
    ];
    let heads = |pick: fn(&Trace) -> &Vec<Vec<Vec<f32>>>| -> Vec<Panel> {
        let per_step = pick(&trace);
        let n_heads = per_step.first().map_or(0, Vec::len);
        (0..n_heads)
            .map(|h| {
                let p = Panel::from_steps(&per_step.iter().map(|s| s[h].clone()).collect::<Vec<_>>());
                if all {
                    p
                } else {
                    // One window round the used locations; or, where they lie far apart
                    // (priority sort), only them.
                    let (start, len) = p.used_rows(0.05, 2);
                    let sparse = p.used_rows_only(0.05, 1);
                    if 2 * sparse.rows < len { sparse } else { p.rows_wrapping(start, len) }
                }
            })
            .collect()
    };
    panels.extend(heads(|t| &t.writes));
    panels.extend(heads(|t| &t.reads));
    glimpse::viz::heatmap::save_png(&stack(&panels, scale), out)?;
    println!(
        "{} at length {len}: {errors} bit errors; wrote {} (inputs, targets, outputs, write then read weightings)",
        cfg.task.name(),
        out.display()
    );
    Ok(())
}

/// mimalloc's `mi_option_purge_delay` (index 15 of `mi_option_e` in both of its versions).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Never hand freed pages back to the kernel: a training step frees and reallocates the
    // same buffers, and each purge made the next step fault in and zero fresh pages
    // (`clear_page_erms` was 6% of `glimpse bench draw`; this took it from 47 to 62 images/s).
    // SAFETY: setting an option is allowed at any time; done before any thread starts.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        // SAFETY: set before any thread is started; rayon reads it when its pool starts.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
    let root = data::resolve_root(cli.data_dir.clone());
    let result = match cli.command {
        Command::Train(a) => train(&a, root, &cli.device).map(|_| ExitCode::SUCCESS),
        Command::Eval { checkpoint, json, split, len, repeats, sequences, beam, examples, bias, data_seed } => {
            // The kinds whose evaluation data do not follow a seed refuse --data-seed.
            let unseeded = || match data_seed {
                Some(_) => bail!("--data-seed applies to classifier and sequence checkpoints"),
                None => Ok(()),
            };
            match checkpoint::find_dir(&checkpoint) {
                Some(dir) if checkpoint_holds(&dir, "handwriting") => {
                    unseeded().and_then(|_| eval_handwriting(&dir, json, &split, sequences, bias, root, &cli.device))
                }
                Some(dir) if is_translate_checkpoint(&dir) => {
                    unseeded().and_then(|_| eval_translate(&dir, json, &split, beam, examples, &cli.device))
                }
                Some(dir) if is_sequence_checkpoint(&dir) => {
                    eval_sequence(&dir, json, len, repeats, sequences, data_seed, &cli.device)
                }
                Some(dir) if checkpoint_holds(&dir, "draw") => {
                    unseeded().and_then(|_| eval_draw(&dir, json, &split, root, &cli.device))
                }
                _ => eval(&checkpoint, json, &split, data_seed, root, &cli.device),
            }
            .map(|_| ExitCode::SUCCESS)
        }
        Command::Data { command } => data_cmd(command, root),
        Command::Bench(b) => bench(&b, cli.threads, &cli.device).map(|_| ExitCode::SUCCESS),
        Command::Viz { command: VizCommand::Ram { checkpoint, n, start, out, scale } } => {
            viz_ram(&checkpoint, start, n, &out, scale, root, &cli.device).map(|_| ExitCode::SUCCESS)
        }
        Command::Viz { command: VizCommand::Ntm { checkpoint, len, repeats, seed, out, scale, all_locations } } => {
            let which = NtmSequence { len, repeats, seed };
            viz_ntm(&checkpoint, which, &out, scale, all_locations, &cli.device).map(|_| ExitCode::SUCCESS)
        }
        Command::Viz { command: VizCommand::Draw { checkpoint, n, seed, out, scale } } => {
            viz_draw(&checkpoint, n, seed, &out, scale, root, &cli.device).map(|_| ExitCode::SUCCESS)
        }
        Command::Translate { checkpoint, text, beam, alignment, scale } => {
            translate(&checkpoint, &text, beam, alignment.as_deref(), scale, &cli.device).map(|_| ExitCode::SUCCESS)
        }
        Command::Write { checkpoint, text, bias, out, samples, seed, max_steps, prime, window, held_out } => {
            let w = WriteArgs { text, bias, samples, seed, max_steps, prime, window, held_out };
            write(&checkpoint, w, &out, root, &cli.device).map(|_| ExitCode::SUCCESS)
        }
        Command::Average { checkpoints, out, data_seed, json } => {
            average(&checkpoints, &out, data_seed, json, root, &cli.device).map(|_| ExitCode::SUCCESS)
        }
        Command::Widen { checkpoint, hidden, out } => glimpse::device::by_name(&cli.device)
            .and_then(|dev| glimpse::train::classify::widen(&checkpoint, hidden, &out, &dev))
            .map(|_| {
                println!(
                    "{}: DRAW classifier with {hidden} LSTM units written to {}",
                    checkpoint.display(),
                    out.display()
                );
                ExitCode::SUCCESS
            }),
        Command::GrowMemory { checkpoint, rows, out } => glimpse::device::by_name(&cli.device)
            .and_then(|dev| glimpse::train::sequence::grow_memory(&checkpoint, rows, &out, &dev))
            .map(|cfg| {
                println!(
                    "{}: {} with {rows} memory rows written to {}",
                    checkpoint.display(),
                    cfg.model.kind(),
                    out.display()
                );
                ExitCode::SUCCESS
            }),
        Command::Saliency { checkpoint, index, class, out, scale } => {
            saliency(&checkpoint, index, class, &out, scale, root, &cli.device).map(|_| ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn train(a: &TrainArgs, root: PathBuf, device: &str) -> Result<()> {
    if a.model.is_sequence() {
        return train_sequence(a, root, device);
    }
    if a.model == ModelKind::Draw {
        return train_draw(a, root, device);
    }
    if matches!(a.model, ModelKind::Seq2seq | ModelKind::Transformer) {
        return train_translate(a, root, device);
    }
    if a.model == ModelKind::Handwriting {
        return train_handwriting(a, root, device);
    }
    let cfg = run_config(a)?;
    let opts = a.run_options(root, device);
    let t0 = std::time::Instant::now();
    let s = classify::train_classifier(&cfg, &opts)?;
    let meta: CheckpointMeta = checkpoint::read_meta(&s.best)?;
    // A translated test set is placed (and cluttered) by the run's seed: name the layout, since
    // another seed's layout of the same test digits gives another figure.
    let layout = cfg.data.canvas.map(|_| format!(" (layout of data seed {})", cfg.seed)).unwrap_or_default();
    println!(
        "done in {:.1}s: {} steps; best validation error {:.2}% (epoch {}); test error {:.2}% on {} images{layout}; checkpoint {}",
        t0.elapsed().as_secs_f64(),
        s.steps,
        100.0 * s.valid_error,
        meta.epoch + 1,
        100.0 * s.test_error,
        s.n_test,
        s.best.display()
    );
    Ok(())
}

fn bench(b: &BenchArgs, threads: Option<usize>, device: &str) -> Result<()> {
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let setup = glimpse::train::bench::BenchSetup { threads, rounds: b.rounds, shards: b.shards.unwrap_or(threads) };
    let dev = glimpse::device::by_name(device)?;
    let reports = match b.model {
        ModelKind::Ntm => {
            let batches = b.batch.map_or(vec![1, 16], |x| vec![x]);
            batches
                .into_iter()
                .map(|batch| glimpse::train::bench::bench_ntm(batch, b.len, b.steps, setup, &dev))
                .collect::<Result<Vec<_>>>()?
        }
        ModelKind::Seq2seq | ModelKind::Transformer => {
            // The German-English sizes (configs/seq2seq-de-en.toml, configs/transformer-de-en.toml).
            let task: TaskConfig = toml::from_str("kind = \"de-en\"")?;
            let mut cfg = default_translator(b.model, &task, !b.no_attention);
            cfg.set_vocab(2000, 2000);
            let len = if b.len == 20 { 16 } else { b.len };
            vec![glimpse::train::bench::bench_translator(&cfg, b.batch.unwrap_or(64), len, b.steps, setup, &dev)?]
        }
        ModelKind::Handwriting => {
            // The sizes of configs/handwriting-synthesis.toml.
            let cfg = default_handwriting("text-lines", true)?.model;
            let len = if b.len == 20 { 200 } else { b.len };
            let batch = b.batch.unwrap_or(32);
            vec![glimpse::train::bench::bench_handwriting(&cfg, batch, len, b.steps, setup, &dev)?]
        }
        ModelKind::Lstm | ModelKind::Dnc => {
            bail!("no benchmark for `{}`; `glimpse bench ntm` measures the memory models", b.model.name())
        }
        ModelKind::Draw => {
            let mut cfg = DrawConfig::mnist(true);
            cfg.side = [b.side, b.side];
            if let Some(t) = b.glimpses {
                cfg.steps = t;
            }
            let mut runs = vec![cfg.clone()];
            if b.no_attention {
                runs = vec![DrawConfig { read: 0, write: 0, ..cfg }];
            }
            runs.iter()
                .map(|c| glimpse::train::bench::bench_draw(c, b.batch.unwrap_or(64), b.steps, setup, &dev))
                .collect::<Result<Vec<_>>>()?
        }
        kind => {
            let cfg = kind.default_config(b.side);
            vec![glimpse::train::bench::bench_classifier(&cfg, b.batch.unwrap_or(64), b.steps, setup, &dev)?]
        }
    };
    for r in reports {
        print_bench(&r, b.json)?;
    }
    Ok(())
}

fn print_bench(r: &glimpse::train::bench::BenchReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        println!("{} ({}, batch {}, {} threads)", r.model, r.unit, r.batch, r.threads);
        println!("  glimpse: {:.1}", r.ours_per_s);
        match (r.baseline_per_s, &r.baseline_error) {
            (Some(v), _) => {
                let rounds: Vec<String> = r.ratios.iter().map(|x| format!("{x:.2}")).collect();
                println!(
                    "  PyTorch {}: {v:.1}\n  ratio: {:.2} (median of rounds: {})",
                    r.torch.as_deref().unwrap_or("?"),
                    r.ratio.unwrap_or(f64::NAN),
                    rounds.join(", ")
                )
            }
            (None, Some(e)) => println!("  PyTorch: unavailable ({e})"),
            _ => {}
        }
    }
    Ok(())
}

/// The default model of `train seq2seq` / `train transformer` for a task.
fn default_translator(kind: ModelKind, task: &TaskConfig, attention: bool) -> TranslatorConfig {
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
    let fields = StepTrain {
        steps: &mut t.steps,
        batch_size: &mut t.batch_size,
        checkpoint_every: &mut t.checkpoint_every,
        log_every: &mut t.log_every,
        lr: &mut t.lr,
        optimizer: &mut t.optimizer,
        clip_norm: &mut t.clip_norm,
        init: None,
    };
    apply_step_flags(
        a,
        &mut cfg.seed,
        fields,
        &[],
        "does not apply to sequence-to-sequence models (use --steps, or a --config)",
    )?;
    Ok(cfg)
}

fn train_translate(a: &TrainArgs, root: PathBuf, device: &str) -> Result<()> {
    let cfg = translate_run_config(a)?;
    let opts = a.run_options(root, device);
    let t0 = std::time::Instant::now();
    let s = translate::train_translate(&cfg, &opts)?;
    println!(
        "done in {:.1}s: {} steps; best validation score {:.4}; checkpoint {} (`glimpse eval` for the test score)",
        t0.elapsed().as_secs_f64(),
        s.steps,
        s.valid_value,
        s.best.display()
    );
    Ok(())
}

/// Whether a checkpoint holds a sequence-to-sequence model (its metadata names a task).
fn is_translate_checkpoint(dir: &Path) -> bool {
    checkpoint::read_meta::<serde_json::Value>(dir).is_ok_and(|m| m["valid_metric"].is_string())
}

fn eval_translate(
    dir: &Path,
    json: bool,
    split: &str,
    beam: Option<usize>,
    examples: usize,
    device: &str,
) -> Result<()> {
    if split != "test" {
        bail!("sequence-to-sequence checkpoints are evaluated on their test split only");
    }
    let dev = glimpse::device::by_name(device)?;
    let t0 = std::time::Instant::now();
    let meta: translate::TranslateCheckpointMeta = checkpoint::read_meta(dir)?;
    let (m, outputs) = translate::evaluate_checkpoint(dir, beam, &dev)?;
    let mut out = serde_json::json!({
        "checkpoint": dir.display().to_string(),
        "model": meta.model,
        "task": meta.task,
        "exact_match": m.exact_match,
        "n": m.n,
        "beam": m.beam,
        "seconds": t0.elapsed().as_secs_f64(),
    });
    if let Some(b) = &m.bleu {
        out["bleu"] = serde_json::json!(b.score);
        out["bleu_detail"] = serde_json::to_value(b)?;
        out["bleu_by_source_length"] = serde_json::to_value(&m.by_length)?;
    }
    let shown: Vec<serde_json::Value> = outputs
        .iter()
        .take(examples)
        .map(|(p, o)| serde_json::json!({"source": p.source, "reference": p.target, "output": o}))
        .collect();
    if examples > 0 {
        out["examples"] = serde_json::json!(shown);
    }
    if json {
        println!("{out}");
        return Ok(());
    }
    println!("{}: {} on {} (beam {})", dir.display(), meta.model, meta.task, m.beam);
    println!("  exact match {:.2}% of {}", 100.0 * m.exact_match, m.n);
    if let Some(b) = &m.bleu {
        println!(
            "  BLEU {:.2} (brevity penalty {:.3}, {} / {} tokens)",
            b.score, b.brevity_penalty, b.hyp_len, b.ref_len
        );
        for k in &m.by_length {
            let hi = k.hi.map_or("+".to_string(), |h| format!("-{h}"));
            println!(
                "  source {}{hi} words: BLEU {:.2} (smoothed {:.2}; {} sentences)",
                k.lo, k.bleu, k.bleu_smoothed, k.n
            );
        }
    }
    for (p, o) in outputs.iter().take(examples) {
        println!("\n  source:    {}\n  reference: {}\n  output:    {o}", p.source, p.target);
    }
    Ok(())
}

fn translate(dir: &Path, text: &str, beam: usize, alignment: Option<&Path>, scale: u32, device: &str) -> Result<()> {
    let dir =
        checkpoint::find_dir(dir).with_context(|| format!("{}: not a checkpoint (no meta.json)", dir.display()))?;
    let dev = glimpse::device::by_name(device)?;
    let (cfg, toks, model) = translate::load_translator(&dir, &dev)?;
    let src = toks.source.encode(text);
    if src.is_empty() {
        bail!("nothing to translate");
    }
    let h = if beam <= 1 {
        model.greedy(std::slice::from_ref(&src), cfg.train.max_len, &dev).remove(0)
    } else {
        model.beam(&src, beam, cfg.train.alpha, cfg.train.max_len, &dev)
    };
    println!("{}", toks.target.decode(&h.tokens));
    if let Some(prefix) = alignment {
        if h.weights.is_empty() {
            bail!("this model does not attend: there is no alignment to draw");
        }
        let source: Vec<String> = src.iter().map(|&i| toks.source.vocab().token(i).to_string()).collect();
        let mut target: Vec<String> = h.tokens.iter().map(|&i| toks.target.vocab().token(i).to_string()).collect();
        target.push("</s>".into());
        let rows = h.weights.len().min(target.len());
        let (png, svg) = glimpse::viz::alignment::save(&source, &target[..rows], &h.weights[..rows], prefix, scale)?;
        eprintln!("wrote {} and {}", png.display(), svg.display());
    }
    Ok(())
}

/// The default handwriting run: the synthesis network on text lines, or the prediction network
/// (on Omniglot's strokes, or on text lines without reading the text).
fn default_handwriting(task: &str, window: bool) -> Result<HandwritingRunConfig> {
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

fn handwriting_run_config(a: &TrainArgs) -> Result<HandwritingRunConfig> {
    let mut cfg = match &a.config {
        Some(p) => read_config::<HandwritingRunConfig>(p)?,
        None => default_handwriting(a.task.as_deref().unwrap_or("text-lines"), !a.no_attention)?,
    };
    if a.config.is_some() && (a.task.is_some() || a.no_attention) {
        bail!("--task and --no-attention choose a default configuration; edit the --config file instead");
    }
    let t = &mut cfg.train;
    let fields = StepTrain {
        steps: &mut t.steps,
        batch_size: &mut t.batch_size,
        checkpoint_every: &mut t.checkpoint_every,
        log_every: &mut t.log_every,
        lr: &mut t.lr,
        optimizer: &mut t.optimizer,
        clip_norm: &mut t.clip_norm,
        init: None,
    };
    apply_step_flags(
        a,
        &mut cfg.seed,
        fields,
        &[("--limit-train", a.limit_train.is_some())],
        "does not apply to the handwriting networks (use --steps, or a --config)",
    )?;
    Ok(cfg)
}

fn train_handwriting(a: &TrainArgs, root: PathBuf, device: &str) -> Result<()> {
    let cfg = handwriting_run_config(a)?;
    let opts = a.run_options(root, device);
    let t0 = std::time::Instant::now();
    let s = handwriting::train_handwriting(&cfg, &opts)?;
    println!(
        "done in {:.1}s: {} steps; best validation NLL {:.1} nats per sequence; checkpoint {} (`glimpse eval` for the test NLL)",
        t0.elapsed().as_secs_f64(),
        s.steps,
        s.valid_nll_nats,
        s.best.display()
    );
    Ok(())
}

fn eval_handwriting(
    dir: &Path,
    json: bool,
    split: &str,
    sequences: usize,
    bias: f32,
    root: PathBuf,
    device: &str,
) -> Result<()> {
    let dev = glimpse::device::by_name(device)?;
    let t0 = std::time::Instant::now();
    let (cfg, meta, model) = handwriting::load_handwriting(dir, &dev)?;
    let data = cfg.data.load(&root, cfg.seed)?;
    let set = if split == "valid" { &data.valid } else { &data.test };
    let m = handwriting::evaluate(&model, set, &dev);
    let window = if model.is_synthesis() {
        Some(handwriting::window_metrics(&model, set, sequences, bias, cfg.seed, &dev)?)
    } else {
        None
    };
    let out = serde_json::json!({
        "checkpoint": dir.display().to_string(),
        "model": "handwriting",
        "network": if model.is_synthesis() { "synthesis" } else { "prediction" },
        "data": cfg.data.name(),
        "split": split,
        "step": meta.step,
        "nll_nats": m.nll_nats,
        "nll_nats_per_point": m.nll_per_point,
        "sequences": m.sequences,
        "points": m.points,
        "window": window,
        "seconds": t0.elapsed().as_secs_f64(),
    });
    if json {
        println!("{out}");
    } else {
        println!(
            "{}: {split} NLL {:.2} nats per sequence, {:.4} nats per point ({} sequences, {} points)",
            dir.display(),
            m.nll_nats,
            m.nll_per_point,
            m.sequences,
            m.points
        );
        if let Some(w) = window {
            println!(
                "  window (bias {}): {:.1}% of {} samples reach the end of their text monotonically ({:.1}% reach it)",
                w.bias,
                100.0 * w.reaches_end_monotonic,
                w.n,
                100.0 * w.reaches_end
            );
        }
    }
    Ok(())
}

/// `glimpse write` options.
struct WriteArgs {
    text: Option<String>,
    bias: f32,
    samples: usize,
    seed: u64,
    max_steps: Option<usize>,
    prime: Option<usize>,
    window: Option<PathBuf>,
    held_out: Option<usize>,
}

fn write(ckpt: &Path, mut w: WriteArgs, out: &Path, root: PathBuf, device: &str) -> Result<()> {
    use glimpse::data::handwriting::encode;
    use glimpse::data::strokes::strokes_of;
    use glimpse::models::handwriting::Sampling;
    use glimpse::viz::strokes as draw;
    let dir = checkpoint::find_dir(ckpt).with_context(|| format!("{}: no checkpoint", ckpt.display()))?;
    if !checkpoint_holds(&dir, "handwriting") {
        bail!("{}: not a handwriting checkpoint", dir.display());
    }
    let dev = glimpse::device::by_name(device)?;
    let (cfg, meta, model) = handwriting::load_handwriting(&dir, &dev)?;
    let mut sentences: Vec<String> = vec![];
    if let Some(n) = w.held_out {
        if w.text.is_some() || w.prime.is_some() || !model.is_synthesis() {
            bail!("--held-out writes test sentences with a synthesis checkpoint, without TEXT or --prime");
        }
        let data = cfg.data.load(&root, cfg.seed)?;
        sentences = data.test.iter().take(n).filter_map(|e| e.text.clone()).collect();
        w.text = sentences.iter().max_by_key(|t| t.len()).cloned();
    }
    let texts = match (&w.text, model.is_synthesis()) {
        (Some(_), true) if !sentences.is_empty() => {
            Some(sentences.iter().map(|t| encode(t)).collect::<Result<Vec<_>>>()?)
        }
        (Some(t), true) => Some(vec![encode(t)?; w.samples.max(1)]),
        (None, true) => bail!("a synthesis checkpoint writes a TEXT: glimpse write {} \"some text\"", ckpt.display()),
        (Some(_), false) => bail!("{} is the unconditional prediction network: it takes no text", ckpt.display()),
        (None, false) => None,
    };
    let primer = match w.prime {
        Some(i) => {
            let data = cfg.data.load(&root, cfg.seed)?;
            let e = data.test.get(i).with_context(|| format!("the test split has {} sequences", data.test.len()))?;
            let text = e.text.as_deref().map(|t| encode(&format!("{t} "))).transpose()?.unwrap_or_default();
            Some((e.offsets.clone(), text))
        }
        None => None,
    };
    let chars = w.text.as_ref().map_or(0, |t| t.len());
    let max_steps = w.max_steps.unwrap_or(if model.is_synthesis() { 40 * chars + 50 } else { 60 });
    let how = Sampling { bias: w.bias, max_steps };
    let mut rng = glimpse::rng::Rng::derive(w.seed, "write", 0);
    let prime = primer.as_ref().map(|(o, t)| (o.as_slice(), t.as_slice()));
    let samples = model.generate(texts.as_deref(), w.samples.max(1), prime, how, &mut rng, &dev);
    let mut lines: Vec<draw::Strokes> = samples
        .iter()
        .map(|g| {
            let real: Vec<[f32; 3]> =
                g.offsets.iter().map(|p| [p[0] * meta.scale.sx, p[1] * meta.scale.sy, p[2]]).collect();
            strokes_of(&real)
        })
        .collect();
    if w.text.is_none() {
        // Unconditional samples (single characters, for Omniglot): eight to a row.
        lines = lines.chunks(8).map(|row| draw::side_by_side(row, 0.4)).collect();
    }
    let captions: Vec<String> = match &w.text {
        Some(t) => samples
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let t = sentences.get(i).unwrap_or(t);
                format!("{t} (bias {}{})", w.bias, if g.finished { "" } else { ", stopped at the step limit" })
            })
            .collect(),
        None => vec![],
    };
    match out.extension().and_then(|e| e.to_str()) {
        Some("png") => glimpse::viz::heatmap::save_png(&draw::lines_png(&lines, 60.0), out)?,
        Some("svg") => std::fs::write(out, draw::lines_svg(&lines, &captions, 60.0))
            .with_context(|| format!("{}: cannot write", out.display()))?,
        _ => bail!("{}: the output must be .svg or .png", out.display()),
    }
    println!("wrote {} ({} line{})", out.display(), lines.len(), if lines.len() == 1 { "" } else { "s" });
    if let Some(prefix) = &w.window {
        let (Some(first), Some(text)) = (samples.first(), sentences.first().or(w.text.as_ref())) else {
            bail!("--window needs a synthesis checkpoint and a text");
        };
        let full = match &primer {
            Some((_, p)) => format!("{}{text}", p.iter().map(|&k| (k as u8 + 32) as char).collect::<String>()),
            None => text.clone(),
        };
        let svg = prefix.with_extension("svg");
        std::fs::write(&svg, draw::window_svg(&lines[0], &full, &first.phi))
            .with_context(|| format!("{}: cannot write", svg.display()))?;
        let png = prefix.with_extension("png");
        glimpse::viz::heatmap::save_png(&draw::window_png(&first.phi, 12), &png)?;
        println!("wrote {} and {}", svg.display(), png.display());
    }
    Ok(())
}
