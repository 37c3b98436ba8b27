//! The checkpoint tools: `average` (a model soup), `widen` (a DRAW classifier's LSTM) and
//! `grow-memory` (an NTM's learned memory).

use std::path::{Path, PathBuf};

use crate::checkpoint::find;
use anyhow::{Context, Result, bail};
use glimpse::data::Split;
use glimpse::train::checkpoint;
use glimpse::train::classify::{self, CheckpointMeta, ClassifierRunConfig};

/// `glimpse average`: the parameter-wise mean of classifier checkpoints, saved and evaluated.
pub(crate) fn average(
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
        let dir = find(d)?;
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

/// `glimpse widen`: a DRAW classifier with a wider LSTM computing the same logits.
pub(crate) fn widen(dir: &Path, hidden: usize, out: &Path, device: &str) -> Result<()> {
    let dev = glimpse::device::by_name(device)?;
    glimpse::train::classify::widen(dir, hidden, out, &dev)?;
    println!("{}: DRAW classifier with {hidden} LSTM units written to {}", dir.display(), out.display());
    Ok(())
}

/// `glimpse grow-memory`: an NTM whose learned first memory has `rows` rows.
pub(crate) fn grow_memory(dir: &Path, rows: usize, out: &Path, device: &str) -> Result<()> {
    let dev = glimpse::device::by_name(device)?;
    let cfg = glimpse::train::sequence::grow_memory(dir, rows, out, &dev)?;
    println!("{}: {} with {rows} memory rows written to {}", dir.display(), cfg.model.kind(), out.display());
    Ok(())
}
