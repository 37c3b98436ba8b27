//! `glimpse bench`: training (or, with `--inference`, evaluation and decoding) throughput of
//! our models against PyTorch's.

use anyhow::{Result, bail};
use glimpse::models::draw::DrawConfig;
use glimpse::train::bench::{self, Bench, BenchSetup};
use glimpse::train::translate::TaskConfig;

use crate::cli::{BenchArgs, ModelKind};
use crate::train::{default_handwriting, default_translator};

/// `glimpse bench`: times our training step and the PyTorch baseline's, and prints them.
pub(crate) fn run(b: &BenchArgs, threads: Option<usize>, device: &str) -> Result<()> {
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let setup = BenchSetup { threads, rounds: b.rounds, shards: b.shards.unwrap_or(threads) };
    let device = glimpse::device::by_name(device)?;
    let bench = |batch: usize| Bench { batch, steps: b.steps, setup, device: device.clone() };
    if b.inference && matches!(b.model, ModelKind::Ntm | ModelKind::Dnc | ModelKind::Lstm | ModelKind::Draw) {
        bail!(
            "no inference benchmark for `{}`: --inference times seq2seq and Transformer decoding, handwriting \
             sampling and the image classifiers' evaluation",
            b.model.name()
        );
    }
    let reports = match b.model {
        ModelKind::Ntm | ModelKind::Dnc | ModelKind::Lstm => {
            // The NTM at batch 1 (the paper's) and 16; the DNC and the LSTM at 16 (configs/dnc-copy.toml's).
            let default = if b.model == ModelKind::Ntm { vec![1, 16] } else { vec![16] };
            let batches = b.batch.map_or(default, |x| vec![x]);
            let kind = b.model.name();
            batches
                .into_iter()
                .map(|batch| bench::bench_memory(kind, b.len, &bench(batch)))
                .collect::<Result<Vec<_>>>()?
        }
        ModelKind::Seq2seq | ModelKind::Transformer => {
            // The German-English sizes (configs/seq2seq-de-en.toml, configs/transformer-de-en.toml).
            let task: TaskConfig = toml::from_str("kind = \"de-en\"")?;
            let mut cfg = default_translator(b.model, &task, !b.no_attention);
            cfg.set_vocab(2000, 2000);
            let len = if b.len == 20 { 16 } else { b.len };
            if b.inference {
                // Greedy over a batch of 64 sources; beam search source by source, 8 a pass.
                vec![
                    bench::bench_translator_decoding(&cfg, len, None, &bench(b.batch.unwrap_or(64)))?,
                    bench::bench_translator_decoding(&cfg, len, Some(b.beam), &bench(b.batch.unwrap_or(8)))?,
                ]
            } else {
                vec![bench::bench_translator(&cfg, len, &bench(b.batch.unwrap_or(64)))?]
            }
        }
        ModelKind::Handwriting => {
            // The sizes of configs/handwriting-synthesis.toml; --no-attention: the prediction
            // network of configs/handwriting-omniglot.toml.
            let cfg = if b.no_attention {
                default_handwriting("omniglot", false)?.model
            } else {
                default_handwriting("text-lines", true)?.model
            };
            let len = if b.len == 20 { 200 } else { b.len };
            if b.inference {
                vec![bench::bench_handwriting_sampling(&cfg, len, &bench(b.batch.unwrap_or(8)))?]
            } else {
                vec![bench::bench_handwriting(&cfg, len, &bench(b.batch.unwrap_or(32)))?]
            }
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
            runs.iter().map(|c| bench::bench_draw(c, &bench(b.batch.unwrap_or(64)))).collect::<Result<Vec<_>>>()?
        }
        kind => {
            let cfg = kind.default_config(b.side);
            if b.inference {
                vec![bench::bench_classifier_eval(&cfg, &bench(b.batch.unwrap_or(64)))?]
            } else {
                vec![bench::bench_classifier(&cfg, &bench(b.batch.unwrap_or(64)))?]
            }
        }
    };
    for r in reports {
        print_bench(&r, b.json)?;
    }
    Ok(())
}

/// Prints one benchmark report, as text or as one JSON object.
fn print_bench(r: &bench::BenchReport, json: bool) -> Result<()> {
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
