//! `glimpse translate` and `glimpse write`: a text translated, or written in handwriting.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use glimpse::data::dates::Date;
use glimpse::data::text::UNK;
use glimpse::train::checkpoint;
use glimpse::train::{handwriting, translate as translation};

use crate::checkpoint::{Family, family, find};

/// What `glimpse translate` reads: one text, or a file of them (one a line; `-` for stdin).
pub(crate) enum Input {
    /// The text on the command line.
    Text(String),
    /// A file of texts.
    File(PathBuf),
}

impl Input {
    /// The texts, each with where it came from for messages; a line that is not UTF-8 is an
    /// error naming the file and the line.
    fn texts(self) -> Result<Vec<(String, String)>> {
        let (name, bytes) = match self {
            Input::Text(t) => return Ok(vec![("the text".into(), t)]),
            Input::File(p) if p.as_os_str() == "-" => {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).context("reading standard input")?;
                ("standard input".to_string(), bytes)
            }
            Input::File(p) => {
                let bytes = std::fs::read(&p).with_context(|| format!("{}: cannot read", p.display()))?;
                (p.display().to_string(), bytes)
            }
        };
        let mut texts = Vec::new();
        for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
            let line =
                std::str::from_utf8(line).map_err(|e| anyhow::anyhow!("{name}: line {} is not UTF-8 ({e})", n + 1))?;
            let line = line.trim_end_matches('\r');
            if !line.trim().is_empty() {
                texts.push((format!("{name}: line {}", n + 1), line.to_string()));
            }
        }
        if texts.is_empty() {
            bail!("{name}: no text to translate");
        }
        Ok(texts)
    }
}

/// The longest input `glimpse translate` takes, in source tokens, as a multiple of the run's
/// longest output (`max_len`): longer texts are far outside anything the model was trained on
/// and only cost time.
const INPUT_LIMIT_FACTOR: usize = 10;

/// A date model's answer is refused when the model's probability of the whole answer (its
/// characters and the end mark, greedy or the beam's best) is under this: the answers to real
/// dates are near 1, the answers to texts that are no dates mostly far below (docs/results.md).
pub(crate) const DATE_CONFIDENCE: f32 = 0.5;

/// `glimpse translate`: prints the translation of each input text; optionally draws the
/// alignment of one.
pub(crate) fn translate(
    dir: &Path,
    input: Input,
    beam: usize,
    alignment: Option<&Path>,
    scale: u32,
    device: &str,
) -> Result<()> {
    let dir = find(dir)?;
    let dev = glimpse::device::by_name(device)?;
    let (cfg, toks, model) = translation::load_translator(&dir, &dev)?;
    let single = matches!(input, Input::Text(_));
    for (source, text) in input.texts()? {
        let t = translate_text(&cfg, &toks, &model, &text, beam, &dev).with_context(|| source.clone())?;
        if !t.unknown.is_empty() {
            eprintln!("warning: {source}: unknown to this model, read as <unk>: {}", t.unknown.join(" "));
        }
        let refused = t.refused.as_ref().map(|why| format!("{source}: {why}"));
        match &refused {
            None => println!("{}", t.answer),
            Some(why) if !single => {
                eprintln!("warning: {why}");
                println!("-");
            }
            Some(_) => {}
        }
        if let Some(prefix) = alignment {
            if t.weights.is_empty() {
                bail!("this model does not attend: there is no alignment to draw");
            }
            let (png, svg) = glimpse::viz::alignment::save(&t.source, &t.target, &t.weights, prefix, scale)?;
            eprintln!("wrote {} and {}", png.display(), svg.display());
        }
        if let Some(why) = refused.filter(|_| single) {
            bail!("{why}");
        }
    }
    Ok(())
}

/// One text translated.
#[derive(Clone)]
pub(crate) struct Translation {
    /// The source tokens the model read.
    pub(crate) source: Vec<String>,
    /// The answer's tokens, with the end mark when the alignment has a row for it.
    pub(crate) target: Vec<String>,
    /// The answer as text.
    pub(crate) answer: String,
    /// The attention over the source for each of `target` (empty for a model that does not
    /// attend).
    pub(crate) weights: Vec<Vec<f32>>,
    /// The answer's summed log-probability.
    pub(crate) log_prob: f32,
    /// Words of the text the model reads as `<unk>`.
    pub(crate) unknown: Vec<String>,
    /// Why the answer is refused: a date model's answer that is no calendar date (a validity
    /// check on the output), or one the model gives a probability under [`DATE_CONFIDENCE`].
    pub(crate) refused: Option<String>,
}

/// Translates `text` with `model` (greedy when `beam <= 1`, else a beam of that width); an
/// error when the text is empty or longer than the model takes.
pub(crate) fn translate_text(
    cfg: &translation::TranslateRunConfig,
    toks: &translation::Tokenizers,
    model: &translation::Translator,
    text: &str,
    beam: usize,
    dev: &glimpse::burn::tensor::Device,
) -> Result<Translation> {
    let limit = INPUT_LIMIT_FACTOR * cfg.train.max_len;
    let src = toks.source.encode(text);
    if src.is_empty() {
        bail!("nothing to translate");
    }
    if src.len() > limit {
        bail!(
            "{} tokens, more than this model takes ({limit}: {INPUT_LIMIT_FACTOR} × its longest output, max_len {})",
            src.len(),
            cfg.train.max_len
        );
    }
    let unknown: Vec<String> =
        text.split_whitespace().filter(|w| toks.source.encode(w).contains(&UNK)).map(str::to_string).collect();
    let h = if beam <= 1 {
        model.greedy(std::slice::from_ref(&src), cfg.train.max_len, dev).remove(0)
    } else {
        model.beam(&src, beam, cfg.train.alpha, cfg.train.max_len, dev)
    };
    let answer = toks.target.decode(&h.tokens);
    let dates = matches!(cfg.task, translation::TaskConfig::Dates { .. });
    let confidence = h.log_prob.exp();
    let refused = if !dates {
        None
    } else if Date::from_iso(&answer).is_none() {
        Some(format!("not a date this model can read (its answer `{answer}` is no calendar date)"))
    } else if confidence < DATE_CONFIDENCE {
        Some(format!(
            "not a date this model can read (its answer `{answer}` has probability {confidence:.2}, under {DATE_CONFIDENCE})"
        ))
    } else {
        None
    };
    let source: Vec<String> = src.iter().map(|&i| toks.source.vocab().token(i).to_string()).collect();
    let mut target: Vec<String> = h.tokens.iter().map(|&i| toks.target.vocab().token(i).to_string()).collect();
    target.push("</s>".into());
    let rows = h.weights.len().min(target.len());
    target.truncate(if h.weights.is_empty() { h.tokens.len() } else { rows });
    let weights = h.weights[..rows].to_vec();
    Ok(Translation { source, target, answer, weights, log_prob: h.log_prob, unknown, refused })
}

/// The longest text `glimpse write` takes, in characters: the networks write a line in one
/// go, and train on lines of 8 to 24 characters.
const WRITE_LIMIT: usize = 500;

/// `glimpse write` options.
pub(crate) struct WriteArgs {
    pub(crate) text: Option<String>,
    pub(crate) bias: f32,
    pub(crate) samples: usize,
    pub(crate) seed: u64,
    pub(crate) max_steps: Option<usize>,
    pub(crate) prime: Option<usize>,
    pub(crate) window: Option<PathBuf>,
    pub(crate) held_out: Option<usize>,
}

/// `glimpse write`: handwriting samples of a text (or unconditional ones) as SVG or PNG.
pub(crate) fn write(ckpt: &Path, mut w: WriteArgs, out: &Path, root: PathBuf, device: &str) -> Result<()> {
    use glimpse::data::handwriting::encode;
    use glimpse::data::strokes::strokes_of;
    use glimpse::models::handwriting::Sampling;
    use glimpse::viz::strokes as draw;
    let dir = checkpoint::find_dir(ckpt).with_context(|| format!("{}: no checkpoint", ckpt.display()))?;
    if !matches!(family(&dir), Ok(Family::Handwriting)) {
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
    if let Some(t) = &w.text {
        if t.trim().is_empty() {
            bail!("nothing to write: the text is empty");
        }
        let n = t.chars().count();
        if n > WRITE_LIMIT {
            bail!(
                "the text is {n} characters; `glimpse write` takes at most {WRITE_LIMIT} (a line is written in one go)"
            );
        }
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
