//! Where a DRAW classifier's mistakes come from on cluttered MNIST: for each test image, how
//! far its last read window's centre lies from the digit's centre, how wide the window is, and
//! whether any glimpse after the first came within 7 px of the digit's centre, split by right
//! and wrong answers. A mistake with the window far from the digit is one of
//! looking (the clutter drew the attention); one with the window on the digit is one of
//! reading (the digit itself was misread).
//!
//! ```text
//! GLIMPSE_DATA=… cargo run --release --example draw_errors -- CKPT [--data-seed S] [--split valid|test]
//! ```

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use glimpse::burn::tensor::{Device, Tensor, TensorData};
use glimpse::data::{ImageSet, Split};
use glimpse::models::Classifier;
use glimpse::train::{checkpoint, classify};

/// One image: answered right; how far (px, the larger of the two axes) the last window's
/// centre is from the digit's; the last window's side; the closest any glimpse after the
/// first came; how far the digit's centre is from the image's (the larger axis).
struct Seen {
    right: bool,
    off: f32,
    side: f32,
    closest: f32,
    eccentric: f32,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(ckpt) = args.first() else { bail!("usage: draw_errors CKPT [--data-seed S] [--split valid|test]") };
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let root = PathBuf::from(std::env::var("GLIMPSE_DATA").context("set GLIMPSE_DATA to the data root")?);
    let device = Device::flex();
    let dir = checkpoint::find_dir(&PathBuf::from(ckpt)).context("not a checkpoint")?;
    let (cfg, model) = classify::load_classifier(&dir, &device)?;
    let Classifier::DrawClassifier(model) = model else { bail!("{ckpt}: not a DRAW classifier") };
    let seed = flag("--data-seed").map(|s| s.parse::<u64>()).transpose()?.unwrap_or(cfg.seed);
    let split = flag("--split").unwrap_or_else(|| "test".into());
    let canvas = cfg.data.canvas.context("a translated (canvas) task")?;
    let spec = cfg.data.spec()?;
    // The same images and layouts `glimpse eval` scores.
    let (base, layout) = match split.as_str() {
        "test" => (ImageSet::load(spec, &root, Split::Test)?, classify::layout_seed(Split::Test, seed)),
        "valid" => {
            let (_, valid) = ImageSet::load(spec, &root, Split::Train)?.split_validation(cfg.train.valid_size);
            (valid, classify::valid_layout_seed(seed))
        }
        other => bail!("--split {other}: valid or test"),
    };
    // The image's centre, in pixels (the digits' come with each batch).
    let image_mid = (canvas as f32 - 1.0) / 2.0;
    let task = cfg.data.translated(canvas, base, layout, 1, 0.0);
    let n = task.len();
    let mut rows: Vec<Seen> = Vec::with_capacity(n);
    for start in (0..n).step_by(200) {
        let idx: Vec<usize> = (start..(start + 200).min(n)).collect();
        let (x, y, centres) = task.batch_with_centres(&idx);
        let b = idx.len();
        let images = Tensor::<4>::from_data(TensorData::new(x, [b, 1, canvas, canvas]), &device);
        let mut windows = Vec::new();
        let logits: Vec<f32> = model.run(images, Some(&mut windows)).into_data().try_to_vec().expect("f32");
        let classes = logits.len() / b;
        let last = windows.last().context("no glimpse")?;
        for k in 0..b {
            let p = &logits[k * classes..(k + 1) * classes];
            let guess = (0..classes).max_by(|&a, &c| p[a].total_cmp(&p[c])).unwrap_or(0);
            let (row, col) = (centres[2 * k], centres[2 * k + 1]);
            let off = |w: &glimpse::models::draw::Window| (w.row - row).abs().max((w.col - col).abs());
            let closest = windows[1..].iter().map(|g| off(&g[k])).fold(f32::INFINITY, f32::min);
            let eccentric = (row - image_mid).abs().max((col - image_mid).abs());
            let right = guess as i64 == y[k];
            rows.push(Seen { right, off: off(&last[k]), side: last[k].side, closest, eccentric });
        }
    }
    let report = |name: &str, pick: &dyn Fn(&Seen) -> bool| {
        let sel: Vec<&Seen> = rows.iter().filter(|r| pick(r)).collect();
        let m = sel.len().max(1) as f32;
        let far = |t: f32| sel.iter().filter(|r| r.off > t).count();
        let mut d: Vec<f32> = sel.iter().map(|r| r.off).collect();
        d.sort_by(f32::total_cmp);
        let median = d.get(d.len() / 2).copied().unwrap_or(f32::NAN);
        let mean_side = sel.iter().map(|r| r.side).sum::<f32>() / m;
        let (missed, found): (Vec<&Seen>, Vec<&Seen>) = sel.iter().partition(|r| r.closest > 7.0);
        let mean_ecc = |v: &[&Seen]| v.iter().map(|r| r.eccentric).sum::<f32>() / v.len().max(1) as f32;
        let (never, ecc_never, ecc_seen) = (missed.len(), mean_ecc(&missed), mean_ecc(&found));
        println!(
            "{name:<6} {:>6} images: centre off the digit's by median {median:.1} px; > 7 px: {} ({:.1}%), > 14 px (off the digit): {} ({:.1}%); mean window side {mean_side:.1} px; no glimpse within 7 px: {} ({:.1}%); digit's centre from the image's: {ecc_never:.1} px for those, {ecc_seen:.1} for the rest",
            sel.len(),
            far(7.0),
            100.0 * far(7.0) as f32 / m,
            far(14.0),
            100.0 * far(14.0) as f32 / m,
            never,
            100.0 * never as f32 / m
        );
    };
    println!(
        "{} on {split} (clutter seed {seed}): error {:.2}%",
        dir.display(),
        100.0 * rows.iter().filter(|r| !r.right).count() as f32 / n as f32
    );
    report("right", &|r| r.right);
    report("wrong", &|r| !r.right);
    Ok(())
}
