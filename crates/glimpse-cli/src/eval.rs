//! `glimpse eval`: a checkpoint's figures on its test (or validation) data.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use glimpse::data::Split;
use glimpse::data::algorithmic::Task;
use glimpse::train::checkpoint;
use glimpse::train::{classify, generative, handwriting, sequence, translate};

use crate::checkpoint::{Family, family, find};
use crate::cli::EvalArgs;

/// DRAW: the variational bound on the negative log-likelihood of the test (or validation) images.
fn eval_draw(dir: &Path, e: &EvalArgs, root: &Path, device: &str) -> Result<()> {
    let (json, split) = (e.json, e.split.as_str());
    let dev = glimpse::device::by_name(device)?;
    let t0 = std::time::Instant::now();
    let (cfg, model) = generative::load_draw(dir, &dev)?;
    let data = match split {
        "valid" => generative::train_and_validation(&cfg, root)?.1,
        _ => cfg.data.load(root, Split::Test)?,
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
    let text = format!(
        "{}: {split} negative log-likelihood ≤ {:.2} nats (reconstruction {:.2} + KL {:.2}), {} images",
        dir.display(),
        m.nll_nats,
        m.reconstruction_nats,
        m.kl_nats,
        m.n
    );
    print_result(json, &out, &text);
    Ok(())
}

/// Prints an evaluation: its JSON object `out` with `--json`, else `text`.
fn print_result(json: bool, out: &serde_json::Value, text: &str) {
    if json {
        println!("{out}");
    } else {
        println!("{text}");
    }
}

/// `--repeats R` of `eval` and `viz ntm`: repeat copy with exactly `R` repeats, the count fed
/// on the training scale ([`Task::with_repeats`]); an error for other tasks or `R = 0`.
pub(crate) fn apply_repeats(task: &mut Task, repeats: Option<usize>) -> Result<()> {
    if let Some(r) = repeats {
        if r == 0 {
            bail!("--repeats must be at least 1");
        }
        *task = task.with_repeats(r).with_context(|| format!("--repeats: {} has no repeats", task.name()))?;
    }
    Ok(())
}

/// A memory model: bit errors and cost per sequence (per-task answer errors for question answering).
fn eval_sequence(dir: &Path, e: &EvalArgs, device: &str) -> Result<()> {
    let (json, len, repeats, n) = (e.json, e.len, e.repeats, e.sequences);
    let dev = glimpse::device::by_name(device)?;
    let t0 = std::time::Instant::now();
    let (mut cfg, model) = sequence::load_sequence_model(dir, &dev)?;
    cfg.seed = e.data_seed.unwrap_or(cfg.seed);
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

/// An image classifier's error and loss.
fn eval_classifier(dir: &Path, e: &EvalArgs, root: &Path, device: &str) -> Result<()> {
    let (json, split, data_root) = (e.json, e.split.as_str(), root);
    let dev = glimpse::device::by_name(device)?;
    let t0 = std::time::Instant::now();
    let (mut cfg, model) = classify::load_classifier(dir, &dev)?;
    cfg.seed = e.data_seed.unwrap_or(cfg.seed);
    let data = match split {
        "valid" => classify::train_and_validation(&cfg, data_root)?.1,
        _ => cfg.data.load(data_root, Split::Test, cfg.seed)?,
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
    let text = format!(
        "{}: {split} error {:.2}% ({} of {n} wrong), loss {loss:.4}",
        dir.display(),
        100.0 * err,
        (err * n as f64).round()
    );
    print_result(json, &out, &text);
    Ok(())
}

/// seq2seq / Transformer: exact match and BLEU on the test split, optionally with examples.
fn eval_translate(dir: &Path, e: &EvalArgs, device: &str) -> Result<()> {
    let (json, split, beam, examples) = (e.json, e.split.as_str(), e.beam, e.examples);
    if split != "test" {
        bail!("sequence-to-sequence checkpoints are evaluated on their test split only");
    }
    let dev = glimpse::device::by_name(device)?;
    let t0 = std::time::Instant::now();
    let meta: translate::TranslateCheckpointMeta = checkpoint::read_meta(dir)?;
    let evaluation = translate::evaluate_checkpoint(dir, beam, &dev)?;
    let (m, outputs) = (&evaluation.test, &evaluation.outputs);
    let mut out = serde_json::json!({
        "checkpoint": dir.display().to_string(),
        "model": meta.model,
        "task": meta.task,
        "exact_match": m.exact_match,
        "n": m.n,
        "beam": m.beam,
        "seconds": t0.elapsed().as_secs_f64(),
    });
    if let Some(h) = &evaluation.held_out_formats {
        out["held_out_formats_exact_match"] = h.overall.exact_match.into();
        out["held_out_formats_n"] = h.overall.n.into();
        let by: serde_json::Map<String, serde_json::Value> =
            h.by_template.iter().map(|(t, em, _)| (t.clone(), (*em).into())).collect();
        out["held_out_formats_by_template"] = by.into();
    }
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
    if let Some(h) = &evaluation.held_out_formats {
        println!(
            "  held-out formats (never trained on): exact match {:.2}% of {}",
            100.0 * h.overall.exact_match,
            h.overall.n
        );
        for (t, em, n) in &h.by_template {
            println!("    {t}: {:.2}% of {n}", 100.0 * em);
        }
    }
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

/// A handwriting network: NLL per sequence and per point; for synthesis, the window check.
fn eval_handwriting(dir: &Path, e: &EvalArgs, root: &Path, device: &str) -> Result<()> {
    let (json, split, sequences, bias) = (e.json, e.split.as_str(), e.sequences, e.bias);
    let dev = glimpse::device::by_name(device)?;
    let t0 = std::time::Instant::now();
    let (cfg, meta, model) = handwriting::load_handwriting(dir, &dev)?;
    let data = cfg.data.load(root, cfg.seed)?;
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
    let mut text = format!(
        "{}: {split} NLL {:.2} nats per sequence, {:.4} nats per point ({} sequences, {} points)",
        dir.display(),
        m.nll_nats,
        m.nll_per_point,
        m.sequences,
        m.points
    );
    if let Some(w) = window {
        text += &format!(
            "\n  window (bias {}): {:.1}% of {} samples reach the end of their text monotonically ({:.1}% reach it)",
            w.bias,
            100.0 * w.reaches_end_monotonic,
            w.n,
            100.0 * w.reaches_end
        );
    }
    print_result(json, &out, &text);
    Ok(())
}

/// `glimpse eval`: the evaluation of the checkpoint's kind.
pub(crate) fn run(e: &EvalArgs, root: PathBuf, device: &str) -> Result<()> {
    // The kinds whose evaluation data do not follow a seed refuse --data-seed.
    let unseeded = || match e.data_seed {
        Some(_) => bail!("--data-seed applies to classifier and sequence checkpoints"),
        None => Ok(()),
    };
    let dir = find(&e.checkpoint)?;
    match family(&dir)? {
        Family::Handwriting => unseeded().and_then(|_| eval_handwriting(&dir, e, &root, device)),
        Family::Translate => unseeded().and_then(|_| eval_translate(&dir, e, device)),
        Family::Sequence => eval_sequence(&dir, e, device),
        Family::Draw => unseeded().and_then(|_| eval_draw(&dir, e, &root, device)),
        Family::Classifier => eval_classifier(&dir, e, &root, device),
    }
}
