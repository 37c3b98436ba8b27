//! The command line: clap's types for every subcommand and their flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use glimpse::data::algorithmic::Task;
use glimpse::models::ClassifierConfig;
use glimpse::models::cnn::CnnConfig;
use glimpse::models::dnc::DncConfig;
use glimpse::models::draw_classifier::DrawClassifierConfig;
use glimpse::models::lstm::LstmConfig;
use glimpse::models::mlp::MlpConfig;
use glimpse::models::ntm::NtmConfig;
use glimpse::models::ram::RamConfig;
use glimpse::train::sequence::{SequenceModelConfig, SequenceRunConfig};

pub(crate) const ABOUT: &str = "Glimpse: attention and memory in deep learning.
Train, evaluate, inspect and benchmark the classic neural attention models on real data.";

pub(crate) const EXAMPLES: &str = "Examples:
  glimpse data fetch mnist                      # download MNIST into the data root
  glimpse train cnn --out runs/cnn-mnist        # train the CNN on MNIST
  glimpse eval runs/cnn-mnist/best --json       # test error of the best checkpoint
  glimpse saliency checkpoints/cnn-mnist --index 0 --out saliency.png
  glimpse bench cnn --json                      # ours vs PyTorch, training samples/s";

#[derive(Parser)]
#[command(name = "glimpse", version, about = ABOUT, after_help = EXAMPLES)]
pub(crate) struct Cli {
    /// CPU threads for tensor kernels (default: all cores).
    #[arg(long, global = true)]
    pub(crate) threads: Option<usize>,
    /// Data root (else $GLIMPSE_DATA, else the per-user cache).
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Compute device: cpu, or wgpu / cuda when built with those features.
    #[arg(long, global = true, default_value = "cpu")]
    pub(crate) device: String,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Train a model; writes checkpoints and metrics under --out.
    #[command(
        after_help = "Examples:
  glimpse train cnn --out runs/cnn-mnist --epochs 8 --augment-shift 2
  glimpse train mlp --dataset fashion-mnist --out runs/mlp-fashion
  glimpse train cnn --config my-run.toml --out runs/x
  glimpse train cnn --out runs/cnn-mnist --resume   # continue an interrupted run

A TOML config (configs/ holds one for each model) sets the run; flags override it.
`glimpse train --help` lists each model's config sections, keys and flags.",
        after_long_help = TRAIN_HELP
    )]
    Train(Box<TrainArgs>),
    /// Evaluate a checkpoint on the test split of its data.
    #[command(after_help = "Example:\n  glimpse eval checkpoints/cnn-mnist --json")]
    Eval(EvalArgs),
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
        /// The source text (or give --file).
        #[arg(required_unless_present = "file")]
        text: Option<String>,
        /// Translate each line of this file instead (`-`: standard input), one output a line.
        #[arg(long, conflicts_with_all = ["text", "alignment"])]
        file: Option<PathBuf>,
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
    /// A local web page over the trained models: draw a digit, type a date or a line, and
    /// watch where each model looks, reads and writes.
    #[command(after_help = "Example:
  glimpse serve            # then open http://127.0.0.1:8080

The JSON API behind the page is listed in the README (`glimpse serve`).")]
    Serve {
        /// The folder of checkpoints (the committed ones by default); a panel whose
        /// checkpoint is missing says so and the others work.
        #[arg(long, default_value = "checkpoints")]
        checkpoints: PathBuf,
        /// The address to listen on (port 0: any free port; the one taken is printed).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// Instead of serving: time each panel's call over HTTP (a server on a free local
        /// port), print the medians, and exit.
        #[arg(long)]
        bench: bool,
        /// --bench: timed calls per panel (after one warm-up).
        #[arg(long, default_value_t = 20, requires = "bench")]
        rounds: usize,
        /// --bench: one JSON object a line.
        #[arg(long, requires = "bench")]
        json: bool,
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

/// `glimpse train --help`: every family's configuration sections, the flags each takes, and
/// the example configuration of each model in configs/ (the keys are the serde fields of the
/// run configurations in `glimpse::train`).
const TRAIN_HELP: &str = "Examples:
  glimpse train cnn --out runs/cnn-mnist --epochs 8 --augment-shift 2
  glimpse train mlp --dataset fashion-mnist --out runs/mlp-fashion
  glimpse train ntm --config configs/ntm-copy.toml --out runs/ntm-copy
  glimpse train seq2seq --task dates --no-attention --out runs/dates-noattn
  glimpse train cnn --out runs/cnn-mnist --resume   # continue an interrupted run

A TOML config (--config) holds `seed` and the sections below; flags override it, and a run's
config is saved in its checkpoints. Without --config each model starts from its defaults.

[train] is one section for every model. Every family reads the loop's keys: batch_size, lr,
optimizer, schedule, clip_norm (0: no clipping), checkpoint_every, log_every, shards,
patience (validations without a better score before stopping; 0: never). Each family also
reads the keys listed below; any other key is refused, naming the keys the family reads.
Flags set [train] keys of the same name (--steps, --epochs, --batch-size, --lr, --optimizer,
--clip-norm, --valid-size, --patience, --checkpoint-every, --augment-shift, --limit-train,
--init, --log-every) where the family reads the key, and are refused where it does not.
Every model also takes --out, --config, --resume, --force, --seed and --quiet.

Image classifiers: mlp, cnn, ram, draw-classifier (trained in epochs)
  [model]  kind = \"mlp\" | \"cnn\" | \"ram\" | \"draw-classifier\" and its sizes (input, hidden;
           ram: glimpses, retina, policy, core; draw-classifier: glimpses, read, hidden)
  [data]   dataset (mnist, fashion-mnist), canvas (translated task), clutter, placements, warp
  [train]  the loop's, and: epochs, init, distill, valid_size, limit_train, augment_shift
           (validation at each epoch's end)
  flags:   --dataset --canvas --clutter
  configs: mlp-mnist.toml, mlp-fashion-mnist.toml, cnn-mnist.toml, cnn-fashion-mnist.toml,
           ram-mnist28-6g.toml, ram-translated60-8g.toml, ram-translated60-discrete.toml,
           ram-cluttered60-8g.toml, ram-cluttered100-8g.toml, draw-cluttered100.toml

Memory models on algorithmic tasks: ntm, lstm, dnc (trained in steps; default: copy)
  [model]  kind = \"ntm\" | \"lstm\" | \"dnc\" and its sizes (inputs, outputs; ntm: controller,
           memory_n, memory_m, read_heads, write_heads, shift_range, memory_init; lstm: hidden,
           layers; dnc: controller_size, memory_n, memory_w, read_heads)
  [task]   kind = \"copy\" | \"repeat-copy\" | \"associative-recall\" | \"n-grams\" |
           \"priority-sort\" | \"babi\" and its lengths (bits, min_len, max_len, ...)
  [train]  the loop's, and: steps, valid_every, init, valid_size, curriculum_steps,
           stop_below_bit_errors
  configs: ntm-copy.toml, ntm-repeat-copy.toml, ntm-assoc-recall.toml, ntm-ngrams.toml,
           ntm-priority-sort.toml, dnc-copy.toml, dnc-assoc-recall.toml, dnc-babi.toml,
           lstm-babi.toml

DRAW: draw (binarised MNIST, trained in epochs)
  [model]  side, steps, encoder, decoder, latent, read, write (read = write = 0: no attention)
  [data]   dataset, binarise_seed
  [train]  the loop's, and: epochs, valid_every, init, valid_size, valid_limit, limit_train,
           kl_warmup
  flags:   --dataset
  configs: draw-mnist.toml, draw-mnist-noattn.toml

Sequence to sequence: seq2seq, transformer (trained in steps)
  [task]   kind = \"dates\" (locales, valid_examples, test_examples) | \"de-en\" (path,
           bpe_merges, max_tokens, valid_examples)
  [model]  kind = \"seq2seq\" (embed, encoder, decoder, attention, attention_hidden,
           input_feeding) | \"transformer\" (d_model, heads, ff, encoder_layers, decoder_layers)
  [train]  the loop's, and: steps, valid_every, limit_train, max_len, beam, alpha
  flags:   without --config: --task dates | de-en, and --no-attention (seq2seq without
           attention)
  configs: seq2seq-dates.toml, seq2seq-dates-noattn.toml, seq2seq-de-en.toml,
           seq2seq-de-en-noattn.toml, transformer-de-en.toml

Handwriting: handwriting (trained in steps; default: synthesis on text lines)
  [data]   kind = \"text-lines\" (fonts, corpus, min_chars, max_chars, min_distance, held_out)
           | \"omniglot\" (archives, min_distance)
  [model]  hidden, layers, mixtures, window (absent: the prediction network), alphabet,
           window_rate
  [train]  the loop's, and: steps, valid_every, init
  flags:   without --config: --task text-lines | omniglot, and --no-attention (the
           prediction network, which does not read the text)
  configs: handwriting-synthesis.toml, handwriting-omniglot.toml";

#[derive(Subcommand)]
pub(crate) enum VizCommand {
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
pub(crate) enum DataCommand {
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
pub(crate) enum ModelKind {
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
    pub(crate) fn default_config(self, side: usize) -> ClassifierConfig {
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

    pub(crate) fn name(self) -> &'static str {
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

    /// The default sequence run: the paper's copy task (8 bits, lengths 1–20).
    pub(crate) fn default_sequence_config(self) -> SequenceRunConfig {
        let task = Task::Copy { bits: 8, min_len: 1, max_len: 20 };
        let (i, o) = (task.input_size(), task.output_size());
        let model = match self {
            ModelKind::Lstm => SequenceModelConfig::Lstm(LstmConfig { inputs: i, outputs: o, hidden: 256, layers: 3 }),
            ModelKind::Dnc => SequenceModelConfig::Dnc(DncConfig::new(i, o)),
            _ => SequenceModelConfig::Ntm(NtmConfig::new(i, o)),
        };
        SequenceRunConfig { seed: 0, model, task, train: glimpse::train::config::sequence_defaults() }
    }
}

/// The `[train]` flags of `glimpse train`: each sets the key of its name (`--batch-size` sets
/// `batch_size`), over the `--config` file's.
#[derive(Args, Debug, Default, serde::Serialize)]
pub(crate) struct TrainFlags {
    /// Passes over the training set.
    #[arg(long)]
    pub(crate) epochs: Option<usize>,
    /// Sequence models: optimizer steps (batches) in all.
    #[arg(long)]
    pub(crate) steps: Option<usize>,
    /// Examples per step.
    #[arg(long)]
    pub(crate) batch_size: Option<usize>,
    /// Base learning rate.
    #[arg(long)]
    pub(crate) lr: Option<f64>,
    /// Optimizer: sgd, adam or rmsprop (defaults of each; use --config for details).
    #[arg(long)]
    pub(crate) optimizer: Option<String>,
    /// Clip the global gradient norm.
    #[arg(long)]
    pub(crate) clip_norm: Option<f32>,
    /// Training images held out for validation.
    #[arg(long)]
    pub(crate) valid_size: Option<usize>,
    /// Early stopping patience in epochs.
    #[arg(long)]
    pub(crate) patience: Option<usize>,
    /// Save the resumable state every N steps.
    #[arg(long)]
    pub(crate) checkpoint_every: Option<usize>,
    /// Random shift augmentation, in pixels.
    #[arg(long)]
    pub(crate) augment_shift: Option<usize>,
    /// Train on only the first N images.
    #[arg(long)]
    pub(crate) limit_train: Option<usize>,
    /// Image classifiers and the memory models (ntm, dnc, lstm): start from this checkpoint's
    /// weights (a curriculum's next stage, fine-tuning, a longer run); the optimizer starts afresh.
    #[arg(long, value_name = "CHECKPOINT")]
    pub(crate) init: Option<PathBuf>,
    /// Log every N steps.
    #[arg(long)]
    pub(crate) log_every: Option<usize>,
}

#[derive(Args)]
pub(crate) struct TrainArgs {
    /// Which model.
    pub(crate) model: ModelKind,
    /// Run directory: last/ (resumable), best/ (checkpoint), metrics.jsonl, tb/.
    #[arg(long, default_value = "runs/latest")]
    pub(crate) out: PathBuf,
    /// TOML configuration; flags override it.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Continue from OUT/last.
    #[arg(long)]
    pub(crate) resume: bool,
    /// Start afresh over an OUT that already holds a run (its checkpoints and log are replaced).
    #[arg(long, conflicts_with = "resume")]
    pub(crate) force: bool,
    /// Seed of every random draw.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Data set: mnist or fashion-mnist.
    #[arg(long)]
    pub(crate) dataset: Option<String>,
    /// Translated task on a canvas of this side.
    #[arg(long)]
    pub(crate) canvas: Option<usize>,
    /// Cluttered task: number of 8×8 distractors.
    #[arg(long)]
    pub(crate) clutter: Option<usize>,
    #[command(flatten)]
    pub(crate) train: TrainFlags,
    /// Sequence-to-sequence task: dates or de-en; handwriting data: text-lines or omniglot.
    #[arg(long)]
    pub(crate) task: Option<String>,
    /// seq2seq: the encoder-decoder without attention (Cho et al.'s fixed summary);
    /// handwriting: the prediction network, which does not read the text.
    #[arg(long)]
    pub(crate) no_attention: bool,
    /// No progress bar.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Sleep after each step (for tests that interrupt runs).
    #[arg(long, hide = true, default_value_t = 0)]
    pub(crate) throttle_ms: u64,
}

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Which model.
    pub(crate) model: ModelKind,
    /// Batch size (both implementations; default 64, and for the NTM both 1 and 16).
    #[arg(long)]
    pub(crate) batch: Option<usize>,
    /// NTM: copy-sequence length of the benchmark batch (seq2seq / Transformer: source and
    /// target length, default 16).
    #[arg(long, default_value_t = 20)]
    pub(crate) len: usize,
    /// Image side: 28 (MNIST), or e.g. 60 / 100 for RAM's translated and cluttered tasks.
    #[arg(long, default_value_t = 28)]
    pub(crate) side: usize,
    /// Timed steps (after a few warm-up steps).
    #[arg(long, default_value_t = 50)]
    pub(crate) steps: usize,
    /// DRAW: glimpses T (default: the paper's 64).
    #[arg(long)]
    pub(crate) glimpses: Option<usize>,
    /// DRAW: the no-attention variant (whole-image read and write); seq2seq: the encoder-decoder
    /// without attention.
    #[arg(long)]
    pub(crate) no_attention: bool,
    /// seq2seq / Transformer / DRAW / handwriting / NTM: data-parallel shards of our training step, each on its own
    /// thread (the trainers' `shards` setting; default: the thread count). The PyTorch baseline
    /// uses its own intra-op threads.
    #[arg(long)]
    pub(crate) shards: Option<usize>,
    /// Alternating rounds of ours and PyTorch; figures are medians over rounds.
    #[arg(long, default_value_t = 3)]
    pub(crate) rounds: usize,
    /// Time inference instead of training, against the PyTorch twin under `torch.no_grad()`:
    /// seq2seq / Transformer decoding (greedy and beam), handwriting sampling, the classifiers'
    /// evaluation.
    #[arg(long)]
    pub(crate) inference: bool,
    /// seq2seq / Transformer with `--inference`: the beam width of the beam-search benchmark.
    #[arg(long, default_value_t = 5)]
    pub(crate) beam: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `glimpse eval` options.
#[derive(Args)]
pub(crate) struct EvalArgs {
    /// Checkpoint directory (holding config.toml, model.safetensors).
    pub(crate) checkpoint: PathBuf,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Which split: test (default), or valid (the run's held-out training images).
    #[arg(long, default_value = "test", value_parser = ["test", "valid"])]
    pub(crate) split: String,
    /// Sequence models: evaluate at this length (items for associative recall; default:
    /// lengths drawn over the training range).
    #[arg(long)]
    pub(crate) len: Option<usize>,
    /// Repeat copy: evaluate with this many repeats, the count fed on the training scale
    /// (default: repeats drawn over the training range).
    #[arg(long)]
    pub(crate) repeats: Option<usize>,
    /// Sequence models: number of test sequences.
    #[arg(long, default_value_t = 256)]
    pub(crate) sequences: usize,
    /// seq2seq / Transformer: beam width (default: the run's; 1 = greedy).
    #[arg(long)]
    pub(crate) beam: Option<usize>,
    /// seq2seq / Transformer: also print the first N test examples (source, reference, output).
    #[arg(long, default_value_t = 0)]
    pub(crate) examples: usize,
    /// Handwriting synthesis: the sampling bias of the window check (each of the first
    /// --sequences held-out texts written once).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) bias: f32,
    /// Classifiers and sequence models: draw the evaluation data (clutter layouts and
    /// placements, test sequences) from this seed instead of the run's, to see how much a
    /// figure owes to one draw. The digits of each split stay the same.
    #[arg(long)]
    pub(crate) data_seed: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configs/ folder of the repository.
    fn configs() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs")
    }

    #[test]
    fn train_help_names_every_config_and_nothing_else() {
        let mut files: Vec<String> = std::fs::read_dir(configs())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".toml"))
            .collect();
        files.sort();
        let named: Vec<&str> =
            TRAIN_HELP.split([' ', ',', '\n']).filter(|w| w.ends_with(".toml") && !w.contains('/')).collect();
        let mut named_sorted: Vec<String> = named.iter().map(|w| w.to_string()).collect();
        named_sorted.sort();
        named_sorted.dedup();
        assert_eq!(named_sorted, files);
    }

    #[test]
    fn train_help_names_every_model() {
        for kind in ModelKind::value_variants() {
            assert!(TRAIN_HELP.contains(&format!(" {}", kind.name())), "{}", kind.name());
        }
    }

    /// Each family's `[train]` line in the help lists exactly the keys its section reads
    /// beyond the loop's, and the loop's keys are listed once for all.
    #[test]
    fn train_help_lists_each_familys_train_keys() {
        use glimpse::train::config::{CLASSIFIER, DRAW, HANDWRITING, SEQUENCE, TRANSLATE};
        let words = |text: &str| -> Vec<String> {
            let mut w: Vec<String> = text
                .split([' ', ',', '\n', ':', '(', ')'])
                .filter(|w| glimpse::train::config::KEYS.contains(w))
                .map(str::to_string)
                .collect();
            w.sort();
            w
        };
        let blocks: Vec<&str> = TRAIN_HELP.split("  [train]  the loop's, and: ").skip(1).collect();
        assert_eq!(blocks.len(), 5);
        for (block, section) in blocks.iter().zip([CLASSIFIER, SEQUENCE, DRAW, TRANSLATE, HANDWRITING]) {
            let end = ["\n  flags", "\n  configs"].iter().filter_map(|m| block.find(m)).min().unwrap();
            let listed = block[..end].split("(validation").next().unwrap();
            let mut keys: Vec<String> = section.keys.iter().map(|k| k.to_string()).collect();
            keys.sort();
            assert_eq!(words(listed), keys, "{}", section.family);
        }
    }
}
