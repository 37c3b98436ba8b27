//! `glimpse viz` and `glimpse saliency`: pictures of where a model looked.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, bail};
use glimpse::burn::tensor::Device;
use glimpse::data::Split;
use glimpse::train::sequence::{self, SequenceModelConfig};
use glimpse::train::{classify, generative};

use crate::checkpoint::{Family, family, find};
use crate::eval::apply_repeats;

/// Where a picture goes and what its model reads: the output path (or prefix), the pixels per
/// cell, the data root, and the device's name.
pub(crate) struct Picture<'a> {
    pub(crate) out: &'a Path,
    pub(crate) scale: u32,
    pub(crate) root: PathBuf,
    pub(crate) device: &'a str,
}

/// `glimpse viz draw`: DRAW's samples and canvases, or a DRAW classifier's read windows.
pub(crate) fn draw(dir: &Path, n: usize, seed: u64, pic: &Picture) -> Result<()> {
    let dir = find(dir)?;
    let dev = glimpse::device::by_name(pic.device)?;
    let n = n.max(1);
    match family(&dir)? {
        Family::Draw => draw_samples(&dir, n, seed, pic, &dev),
        Family::Classifier => draw_classifier_reads(&dir, n, seed as usize, pic, &dev),
        other => bail!("{}: a {} checkpoint, neither DRAW nor a DRAW classifier", dir.display(), other.name()),
    }
}

/// The image classifier in checkpoint `dir` on `dev`, and its test set (laid out by the run's
/// seed).
fn classifier_and_test(
    dir: &Path,
    dev: &Device,
    root: &Path,
) -> Result<(classify::ClassifierRunConfig, glimpse::models::Classifier, Arc<dyn classify::ImageTask>)> {
    let (cfg, model) = classify::load_classifier(dir, dev)?;
    let test = cfg.data.load(root, Split::Test, cfg.seed)?;
    Ok((cfg, model, test))
}

/// A DRAW classifier's read windows over `n` test images from `start`: PREFIX.png, PREFIX.gif.
fn draw_classifier_reads(dir: &Path, n: usize, start: usize, pic: &Picture, dev: &Device) -> Result<()> {
    use glimpse::viz::draw::{reads_panel, tile};
    use glimpse::viz::glimpses::save_gif;
    use glimpse::viz::heatmap::save_png;
    let (out, scale) = (pic.out, pic.scale);
    let (cfg, model, test) = classifier_and_test(dir, dev, &pic.root)?;
    let glimpse::models::Classifier::DrawClassifier(m) = model else {
        bail!("{}: a {} checkpoint, neither DRAW nor a DRAW classifier", dir.display(), cfg.model.kind())
    };
    let idx = test_indices(start, n, test.len(), "--seed")?;
    let (x, y) = test.batch(&idx);
    let side = test.side();
    let images = glimpse::burn::tensor::Tensor::<4>::from_data(
        glimpse::burn::tensor::TensorData::new(x.clone(), [idx.len(), 1, side[0], side[1]]),
        dev,
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
    Ok(())
}

/// DRAW's generated digits (PREFIX-samples.png) and `n` of them drawn step by step
/// (PREFIX-strip.png, PREFIX.gif).
fn draw_samples(dir: &Path, n: usize, seed: u64, pic: &Picture, dev: &Device) -> Result<()> {
    let (out, scale) = (pic.out, pic.scale);
    use glimpse::models::draw::DrawTrace;
    use glimpse::rng::Rng;
    use glimpse::viz::draw::{WRITE_COLOUR, canvas, tile};
    use glimpse::viz::glimpses::save_gif;
    use glimpse::viz::heatmap::save_png;
    let path = |suffix: &str, ext: &str| {
        let name = out.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        out.with_file_name(format!("{name}{suffix}.{ext}"))
    };
    let (cfg, model) = generative::load_draw(dir, dev)?;
    let side = cfg.model.side;
    let d = side[0] * side[1];
    let mut rng = Rng::derive(seed, "viz-draw", 0);
    // 1. A grid of 8×8 samples (final canvases).
    let z = generative::noise(cfg.model.steps, 64, cfg.model.latent, &mut rng, dev);
    let samples: Vec<f32> = model.generate(z, None).into_data().try_to_vec().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let panels: Vec<_> = samples.chunks(d).map(|p| canvas(p, side, scale.div_ceil(2), &[])).collect();
    let samples_png = path("-samples", "png");
    save_png(&tile(&panels, 8, 2), &samples_png)?;
    // 2. n samples drawn step by step: a strip of ~10 time points each, and a GIF.
    let z = generative::noise(cfg.model.steps, n, cfg.model.latent, &mut rng, dev);
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

/// The indices of `n` test images from `start` (fewer at the end of the `len` images); an
/// error naming `flag` when there are none.
fn test_indices(start: usize, n: usize, len: usize, flag: &str) -> Result<Vec<usize>> {
    let idx: Vec<usize> = (start..(start + n).min(len)).collect();
    if idx.is_empty() {
        bail!("{flag} {start} is past the {len} test images");
    }
    Ok(idx)
}

/// `glimpse saliency`: the input gradient of a class logit as a heat map.
pub(crate) fn saliency(dir: &Path, index: usize, class: Option<usize>, pic: &Picture) -> Result<()> {
    let dir = find(dir)?;
    let dev = glimpse::device::by_name(pic.device)?.autodiff();
    let (_, model, test) = classifier_and_test(&dir, &dev, &pic.root)?;
    if index >= test.len() {
        bail!("--index {index} is out of range: the test set has {} images", test.len());
    }
    let (x, y) = test.batch(&[index]);
    if let Some(c) = class.filter(|&c| c >= 10) {
        bail!("--class {c} is out of range (0..10)");
    }
    let s = glimpse::attention::saliency::input_gradient(&model, &x, test.side(), class, &dev);
    let img = glimpse::viz::heatmap::image_and_heat(&x, &s.gradient, test.side(), pic.scale);
    glimpse::viz::heatmap::save_png(&img, pic.out)?;
    let pred = s.logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0);
    println!(
        "test image {index}: label {}, predicted {pred}; saliency of class {} written to {} (image | |∂logit/∂x| | overlay)",
        y[0],
        s.class,
        pic.out.display()
    );
    Ok(())
}

/// `glimpse viz ram`: RAM's glimpse paths as a PNG grid and a GIF.
pub(crate) fn ram(dir: &Path, start: usize, n: usize, pic: &Picture) -> Result<()> {
    use glimpse::models::Classifier;
    use glimpse::models::ram::Gaze;
    use glimpse::viz::glimpses::{GlimpsePath, animation, grid};
    let (out, scale) = (pic.out, pic.scale);
    let dir = find(dir)?;
    let dev = glimpse::device::by_name(pic.device)?;
    let (cfg, model, test) = classifier_and_test(&dir, &dev, &pic.root)?;
    let Classifier::Ram(ram) = model else { bail!("{}: a {} checkpoint, not a RAM", dir.display(), cfg.model.kind()) };
    let idx = test_indices(start, n, test.len(), "--start")?;
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
pub(crate) struct NtmSequence {
    pub(crate) len: Option<usize>,
    pub(crate) repeats: Option<usize>,
    pub(crate) seed: u64,
}

/// `glimpse viz ntm`: a memory model's weightings on one test sequence.
pub(crate) fn ntm(dir: &Path, which: NtmSequence, all: bool, pic: &Picture) -> Result<()> {
    let (out, scale) = (pic.out, pic.scale);
    use glimpse::burn::tensor::activation::sigmoid;
    use glimpse::models::ntm::Trace;
    use glimpse::rng::Rng;
    use glimpse::viz::memory::{Panel, stack};
    let dir = find(dir)?;
    if !matches!(family(&dir), Ok(Family::Sequence)) {
        bail!("{}: not a sequence-model checkpoint", dir.display());
    }
    let dev = glimpse::device::by_name(pic.device)?;
    let (mut cfg, model) = sequence::load_sequence_model(&dir, &dev)?;
    if matches!(cfg.model, SequenceModelConfig::Lstm(_)) {
        bail!("{}: a {} checkpoint has no memory to draw", dir.display(), cfg.model.kind());
    }
    apply_repeats(&mut cfg.task, which.repeats)?;
    let len = which.len.unwrap_or(cfg.task.len_range().1);
    let e = cfg.task.sample_len(1, len, &mut Rng::derive(which.seed, "viz", 0));
    let ep = sequence::episode_tensors(&e, &dev);
    let mut trace = Trace::default();
    let logits = model.forward(ep.inputs.clone(), Some(&mut trace)); // (T, O)
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
