//! **Work in progress (issue 32), not run by `.ci/run`.** On lavapipe (Mesa 22.3.6, this
//! 2-core VM, `CUBECL_AUTOTUNE_LEVEL=minimal`, one test at a time, 2026-12-07): the MLP test
//! passes in 115 s and the sequence models' in 338 s; the translators' test ran past 900 s
//! unfinished; the handwriting test's corpus split failed (`max_chars = 8` against the default
//! `min_chars = 8`; now 6–10, checked on the CPU only); the CNN, RAM, DRAW classifier, DRAW
//! and benchmark tests are not yet run. A profile of the run is one core in LLVM
//! (`libLLVM-15`, lavapipe compiling shaders, ~35% of samples) and the other idle: the time
//! goes to compiling each fused kernel, not running it.
//!
//! `--device wgpu` against the CPU, for every model (feature `wgpu`; meant for `.ci/run` on
//! Mesa's software Vulkan, lavapipe).
//!
//! Each test trains a tiny model from the same seed on both devices (the engine draws the
//! starting weights on the CPU for every device) and checks that every logged training value
//! agrees within [`TOL`], that the end-of-run validation agrees, and that the CPU run's
//! checkpoint, loaded on wgpu, evaluates to the CPU's figure on a small split. The fused CPU
//! kernels have no GPU version: on wgpu every model runs the composed tensor operations, so
//! these tests also check that fallback.
#![cfg(feature = "wgpu")]

use std::path::{Path, PathBuf};

use anyhow::Result;
use glimpse::data::Split;
use glimpse::run::RunOptions;
use glimpse::train::classify::{self, ClassifierRunConfig};
use glimpse::train::generative::{self, DrawRunConfig};
use glimpse::train::handwriting::{self, HandwritingRunConfig};
use glimpse::train::sequence::{self, SequenceRunConfig};
use glimpse::train::translate::{self, TranslateRunConfig};

/// Relative tolerance, `|a − b| ≤ TOL · max(|a|, |b|, 1)`: the devices sum in other orders
/// (f32), and a few optimizer steps carry the difference forward.
const TOL: f64 = 2e-3;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn cpu() -> burn::tensor::Device {
    glimpse::device::by_name("cpu").unwrap()
}

fn gpu() -> burn::tensor::Device {
    glimpse::device::by_name("wgpu").unwrap()
}

fn close(what: &str, cpu: f64, gpu: f64) {
    assert!(
        (cpu - gpu).abs() <= TOL * cpu.abs().max(gpu.abs()).max(1.0),
        "{what}: cpu {cpu}, wgpu {gpu} (tolerance {TOL}, relative)"
    );
}

/// Every numeric value of the training log's `train` lines, but rates (`*_per_s`), which
/// depend on the device.
fn train_log(out: &Path) -> Vec<(u64, String, f64)> {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let mut values = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["split"] != "train" {
            continue;
        }
        let step = v["step"].as_u64().unwrap();
        for (k, x) in v.as_object().unwrap() {
            if let (Some(x), false) = (x.as_f64(), k.ends_with("_per_s") || k == "step" || k == "epoch") {
                values.push((step, k.clone(), x));
            }
        }
    }
    values
}

/// Trains with `train` on the CPU and on wgpu (data under `root`), checks that the two
/// training logs agree, and returns both summaries with the CPU run's folder.
fn on_both<S>(root: &Path, train: impl Fn(&RunOptions) -> Result<S>) -> (S, S, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let opts = |device: &str| RunOptions {
        out: tmp.path().join(device),
        data_root: root.to_path_buf(),
        device: device.into(),
        resume: false,
        force: false,
        throttle_ms: 0,
        progress: false,
    };
    let on_cpu = train(&opts("cpu")).unwrap();
    let on_gpu = train(&opts("wgpu")).unwrap();
    let (a, b) = (train_log(&tmp.path().join("cpu")), train_log(&tmp.path().join("wgpu")));
    assert!(!a.is_empty(), "the CPU run logged nothing");
    assert_eq!(a.len(), b.len(), "the two runs logged different values");
    for ((step, key, x), (step_b, key_b, y)) in a.iter().zip(&b) {
        assert_eq!((step, key), (step_b, key_b));
        close(&format!("step {step} {key}"), *x, *y);
    }
    (on_cpu, on_gpu, tmp)
}

fn classifier(model: &str) -> ClassifierRunConfig {
    let text = format!(
        "seed = 3\n[model]\n{model}\n[train]\nepochs = 1\nlimit_train = 40\nbatch_size = 10\nlr = 0.003\n\
         valid_size = 100\nlog_every = 1\ncheckpoint_every = 0\n[train.optimizer]\nname = \"adam\"\n"
    );
    toml::from_str(&text).unwrap()
}

/// A classifier's training on both devices, its validation error, and its checkpoint's test
/// loss and error on wgpu.
fn classifier_agrees(model: &str) {
    let cfg = classifier(model);
    let root = fixtures().join("mnist-mini");
    let (a, b, _tmp) = on_both(&root, |o| classify::train_classifier(&cfg, o));
    close("validation error", a.valid_error, b.valid_error);
    close("test error", a.test_error, b.test_error);
    let test = cfg.data.load(&root, Split::Test, cfg.seed).unwrap();
    let eval = |device| {
        let (_, model) = classify::load_classifier(&a.best, &device).unwrap();
        classify::evaluate(&model, test.as_ref(), 50, &device)
    };
    let ((loss_a, err_a, n), (loss_b, err_b, _)) = (eval(cpu()), eval(gpu()));
    assert!(n > 0);
    close("checkpoint test loss", loss_a, loss_b);
    close("checkpoint test error", err_a, err_b);
}

#[test]
fn mlp_agrees_with_the_cpu() {
    classifier_agrees("kind = \"mlp\"\ninput = [28, 28]\nhidden = [32]");
}

#[test]
fn cnn_agrees_with_the_cpu() {
    classifier_agrees("kind = \"cnn\"\ninput = [28, 28]\nchannels = [4, 8]\nhidden = 16");
}

#[test]
fn ram_agrees_with_the_cpu() {
    classifier_agrees(
        "kind = \"ram\"\ninput = [28, 28]\nglimpses = 3\nwhat_where = 16\nhidden = 32\n\
         retina = { patch = 8, scales = 2 }\npolicy = { kind = \"discrete\", grid = 5 }",
    );
    classifier_agrees(
        "kind = \"ram\"\ninput = [28, 28]\nglimpses = 3\nwhat_where = 16\nhidden = 32\nretina = { patch = 8, scales = 2 }",
    );
}

#[test]
fn draw_classifier_agrees_with_the_cpu() {
    classifier_agrees(
        "kind = \"draw-classifier\"\ninput = [28, 28]\nglimpses = 3\nread = 6\nhidden = 16\nclasses = 10",
    );
}

/// DRAW with and without attention: the bound while training, at validation, and the CPU
/// checkpoint's test bound on wgpu.
#[test]
fn draw_agrees_with_the_cpu() {
    for (read, write) in [(2, 4), (0, 0)] {
        let text = format!(
            "seed = 3\n[model]\nside = [28, 28]\nsteps = 4\nencoder = 16\ndecoder = 16\nlatent = 4\nread = {read}\n\
             write = {write}\n[train]\nepochs = 1\nlimit_train = 40\nbatch_size = 10\nlr = 0.003\nvalid_size = 50\n\
             valid_every = 0\nlog_every = 1\ncheckpoint_every = 0\n"
        );
        let cfg: DrawRunConfig = toml::from_str(&text).unwrap();
        let root = fixtures().join("mnist-mini");
        let (a, b, _tmp) = on_both(&root, |o| generative::train_draw(&cfg, o));
        close("validation bound", a.valid_nll_nats, b.valid_nll_nats);
        let test = cfg.data.load(&root, Split::Test).unwrap();
        let eval = |device| {
            let (cfg, model) = generative::load_draw(&a.best, &device).unwrap();
            generative::evaluate_bound(&model, &test, 40, cfg.seed, &device).nll_nats
        };
        close("checkpoint test bound", eval(cpu()), eval(gpu()));
    }
}

/// NTM, DNC and the LSTM on copy: cost and bit errors while training and at validation, and
/// the CPU checkpoint's figures at length 5 on wgpu.
#[test]
fn sequence_models_agree_with_the_cpu() {
    let models = [
        "kind = \"ntm\"\ninputs = 5\noutputs = 4\ncontroller_size = 16\nmemory_n = 8\nmemory_m = 6",
        "kind = \"dnc\"\ninputs = 5\noutputs = 4\ncontroller_size = 16\nmemory_n = 8\nmemory_w = 4\nread_heads = 2",
        "kind = \"lstm\"\ninputs = 5\noutputs = 4\nhidden = 16\nlayers = 1",
    ];
    for model in models {
        let text = format!(
            "seed = 2\n[model]\n{model}\n[task]\nkind = \"copy\"\nbits = 4\nmin_len = 1\nmax_len = 4\n[train]\n\
             steps = 4\nbatch_size = 8\nlr = 0.01\nvalid_size = 16\nvalid_every = 0\nlog_every = 1\n\
             checkpoint_every = 0\n[train.optimizer]\nname = \"adam\"\n"
        );
        let cfg: SequenceRunConfig = toml::from_str(&text).unwrap();
        let (a, b, _tmp) = on_both(&fixtures(), |o| sequence::train_sequence(&cfg, o));
        close("validation cost", a.valid.cost_bits_per_seq, b.valid.cost_bits_per_seq);
        close("validation bit errors", a.valid.bit_errors_per_seq, b.valid.bit_errors_per_seq);
        let eval = |device| {
            let (cfg, model) = sequence::load_sequence_model(&a.best, &device).unwrap();
            sequence::evaluate(&model, &cfg.task, Some(5), 16, 7, "test", &device)
        };
        let (x, y) = (eval(cpu()), eval(gpu()));
        close("checkpoint cost at length 5", x.cost_bits_per_seq, y.cost_bits_per_seq);
        close("checkpoint bit errors at length 5", x.bit_errors_per_seq, y.bit_errors_per_seq);
    }
}

/// seq2seq (with and without attention) and the Transformer on the committed date locale:
/// the loss while training, the validation figure, and the CPU checkpoint's test exact match
/// on wgpu with greedy and beam decoding.
#[test]
fn translators_agree_with_the_cpu() {
    let models = [
        "kind = \"seq2seq\"\nembed = 8\nencoder = 16\ndecoder = 16\nattention = \"additive\"\nattention_hidden = 8",
        "kind = \"seq2seq\"\nembed = 8\nencoder = 16\ndecoder = 16\nattention_hidden = 8",
        "kind = \"transformer\"\nd_model = 16\nheads = 2\nff = 32\nencoder_layers = 1\ndecoder_layers = 1",
    ];
    let locales = fixtures().join("locales");
    for model in models {
        let text = format!(
            "seed = 2\n[task]\nkind = \"dates\"\nlocales = [\"de_TEST\"]\nlocale_dir = \"{}\"\nvalid_examples = 20\n\
             test_examples = 20\n[model]\n{model}\nsrc_vocab = 0\ntgt_vocab = 0\n[train]\nsteps = 4\nbatch_size = 8\n\
             lr = 0.01\nvalid_every = 0\nlog_every = 1\ncheckpoint_every = 0\nmax_len = 12\nbeam = 1\n",
            locales.display()
        );
        let cfg: TranslateRunConfig = toml::from_str(&text).unwrap();
        let (a, b, _tmp) = on_both(&fixtures(), |o| translate::train_translate(&cfg, o));
        close("validation figure", a.valid_value, b.valid_value);
        for beam in [None, Some(2)] {
            let eval = |device| translate::evaluate_checkpoint(&a.best, beam, &device).unwrap().test;
            let (x, y) = (eval(cpu()), eval(gpu()));
            close(&format!("checkpoint exact match, beam {beam:?}"), x.exact_match, y.exact_match);
        }
    }
}

/// The synthesis and prediction networks on real text lines: the loss while training, the
/// validation NLL, and the CPU checkpoint's NLL on wgpu.
#[test]
fn handwriting_agrees_with_the_cpu() {
    if !Path::new("/usr/share/hershey-fonts/cursive.jhf").is_file() || !Path::new("/usr/share/trans/de-en").is_file() {
        eprintln!("skipped: needs the Debian packages hershey-fonts-data and trans-de-en");
        return;
    }
    for window in ["window = 2\n", ""] {
        let text = format!(
            "seed = 3\n[data]\nkind = \"text-lines\"\nmin_chars = 6\nmax_chars = 10\nheld_out = 4\n[model]\nhidden = 8\nlayers = 2\n\
             mixtures = 2\n{window}alphabet = 95\n[train]\nsteps = 3\nbatch_size = 4\nvalid_every = 0\nlog_every = 1\n\
             checkpoint_every = 0\n"
        );
        let cfg: HandwritingRunConfig = toml::from_str(&text).unwrap();
        let (a, b, _tmp) = on_both(&fixtures(), |o| handwriting::train_handwriting(&cfg, o));
        close("validation NLL", a.valid_nll_nats, b.valid_nll_nats);
        let eval = |device| {
            let (cfg, _, model) = handwriting::load_handwriting(&a.best, &device).unwrap();
            let data = cfg.data.load(&fixtures(), cfg.seed).unwrap();
            handwriting::evaluate(&model, &data.test, &device).nll_nats
        };
        close("checkpoint test NLL", eval(cpu()), eval(gpu()));
    }
}

/// Every benchmark's timed step runs on wgpu (`glimpse bench --device wgpu`), training and
/// inference, at tiny sizes.
#[test]
fn benchmarks_run_on_wgpu() {
    use glimpse::data::algorithmic::Task;
    use glimpse::train::bench::{self, Bench, BenchSetup};
    let b = |batch| Bench { batch, steps: 1, setup: BenchSetup { threads: 1, rounds: 1, shards: 2 }, device: gpu() };
    let positive = |what: &str, v: f64| assert!(v.is_finite() && v > 0.0, "{what}: {v}");
    for model in [
        "kind = \"mlp\"\ninput = [28, 28]\nhidden = [8]",
        "kind = \"cnn\"\ninput = [28, 28]\nchannels = [2, 4]\nhidden = 8",
    ] {
        let cfg = classifier(model).model;
        positive("classifier training", bench::classifier_samples_per_s(&cfg, &b(4)));
        positive("classifier evaluation", bench::classifier_eval_per_s(&cfg, &b(4)));
    }
    let task = Task::Copy { bits: 8, min_len: 1, max_len: 3 };
    for kind in ["ntm", "dnc", "lstm"] {
        let cfg = bench::memory_bench_config(kind, &task).unwrap();
        positive(kind, bench::sequence_per_s(&cfg, &task, 3, &b(2)));
    }
    let draw: DrawRunConfig = toml::from_str(
        "seed = 1\n[model]\nside = [28, 28]\nsteps = 2\nencoder = 8\ndecoder = 8\nlatent = 2\nread = 2\nwrite = 3\n",
    )
    .unwrap();
    positive("draw", bench::draw_per_s(&draw.model, &b(2)));
    let mut translator: glimpse::train::translate::TranslatorConfig =
        toml::from_str("kind = \"transformer\"\nd_model = 8\nheads = 2\nff = 16\nencoder_layers = 1\ndecoder_layers = 1\nsrc_vocab = 0\ntgt_vocab = 0").unwrap();
    translator.set_vocab(20, 20);
    positive("translator training", bench::translator_tokens_per_s(&translator, (4, 4), &b(2)));
    positive("greedy decoding", bench::translator_decoding_per_s(&translator, 4, None, &b(2)));
    positive("beam search", bench::translator_decoding_per_s(&translator, 4, Some(2), &b(1)));
    let hw: glimpse::models::handwriting::HandwritingConfig =
        toml::from_str("hidden = 4\nlayers = 2\nmixtures = 2\nwindow = 2\nalphabet = 95").unwrap();
    positive("handwriting training", bench::handwriting_points_per_s(&hw, (6, 2), &b(2)));
    positive("handwriting sampling", bench::handwriting_sampling_per_s(&hw, 6, &b(2)));
}
