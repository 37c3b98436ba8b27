//! How much an ensemble of classifier checkpoints gains over its members: each checkpoint's
//! error on one split, and the error of the mean of their class probabilities, all on the
//! first checkpoint's data (its seed, so the same clutter), or with the clutter of another
//! seed (`--data-seed S`, as `glimpse eval` takes it).
//!
//! ```text
//! GLIMPSE_DATA=… cargo run --release --example ensemble_errors -- valid|test [--data-seed S] CKPT [CKPT …]
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use glimpse::burn::tensor::Device;
use glimpse::data::images::Split;
use glimpse::train::{checkpoint, classify};

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        bail!("usage: ensemble_errors valid|test [--data-seed S] CKPT [CKPT …]");
    }
    let split = args.remove(0);
    let data_seed = match args.first().map(String::as_str) {
        Some("--data-seed") if args.len() > 2 => {
            let seed = args[1].parse::<u64>().context("--data-seed takes a number")?;
            args.drain(..2);
            Some(seed)
        }
        _ => None,
    };
    let root = PathBuf::from(std::env::var("GLIMPSE_DATA").context("set GLIMPSE_DATA to the data root")?);
    let device = Device::flex();
    let dirs: Vec<PathBuf> = args.iter().map(PathBuf::from).collect();
    let first = find(&dirs[0])?;
    let (mut cfg, _) = classify::load_classifier(&first, &device)?;
    cfg.seed = data_seed.unwrap_or(cfg.seed);
    let data = match split.as_str() {
        "valid" => classify::train_and_validation(&cfg, &root)?.1,
        "test" => cfg.data.load(&root, Split::Test, cfg.seed)?,
        other => bail!("split {other}: valid or test"),
    };
    let n = data.len();
    let all: Vec<usize> = (0..n).collect();
    let (_, labels) = data.batch(&all);
    let classes = cfg.model.classes();
    let mut sum = vec![0f32; n * classes];
    for (k, dir) in dirs.iter().enumerate() {
        let (_, model) = classify::load_classifier(&find(dir)?, &device)?;
        let probs = classify::probabilities(&model, data.as_ref(), 1.0, &device);
        sum.iter_mut().zip(&probs).for_each(|(s, p)| *s += p);
        println!(
            "{:>3} {:<40} alone {:.2}%  ensemble of {} {:.2}%",
            k + 1,
            dir.display(),
            100.0 * error(&probs, &labels, classes),
            k + 1,
            100.0 * error(&sum, &labels, classes)
        );
    }
    Ok(())
}

fn find(dir: &Path) -> Result<PathBuf> {
    checkpoint::find_dir(dir).with_context(|| format!("{}: not a checkpoint", dir.display()))
}

/// Fraction of rows of `probs` whose largest entry is not the label.
fn error(probs: &[f32], labels: &[i64], classes: usize) -> f64 {
    let wrong = probs
        .chunks(classes)
        .zip(labels)
        .filter(|(p, y)| {
            let best = (0..classes).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
            best as i64 != **y
        })
        .count();
    wrong as f64 / labels.len() as f64
}
