//! The two stroke data sets of the handwriting models, as normalised pen-offset sequences.
//!
//! - `text-lines`: **synthetic handwriting.** Real English sentences (the English side of the
//!   Ding German–English dictionary, [`super::de_en`]) written with the Hershey script fonts
//!   ([`super::hershey`]) under a random [`Style`] (slant, scale, spacing, baseline drift,
//!   smooth wobble), so no two renderings of a sentence are alike; each training step renders
//!   fresh lines. Sentences are split train/valid/test by a hash of their text, so held-out
//!   lines are sentences never written in training. These are font glyphs, not a person's
//!   pen: the data set has the structure of online handwriting (pen offsets, pen lifts, a
//!   text per line), not its natural variability.
//! - `omniglot`: real pen trajectories of 20 people drawing characters of 30 alphabets
//!   ([`super::strokes`]), split by drawer, for the unconditional prediction network.
//!
//! Both are thinned (a point closer than `min_distance` to the last one kept is dropped,
//! stroke ends kept) and their offsets divided by the training set's standard deviation.

use crate::defaults;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::de_en::TextSplit;
use super::hershey::{self, Font, Style};
use super::strokes::{self, DrawerSplit, OffsetScale};
use crate::rng::Rng;

/// The characters a text may hold: printable ASCII, `' '` to `'~'`.
pub const ALPHABET: usize = 95;

/// Character indices `0..ALPHABET` of a text; a character outside printable ASCII is an error.
pub fn encode(text: &str) -> Result<Vec<usize>> {
    text.chars()
        .map(|c| match c {
            ' '..='~' => Ok(c as usize - 32),
            _ => bail!("{c:?} cannot be written: the alphabet is printable ASCII"),
        })
        .collect()
}

/// Which data and how it is prepared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum StrokeData {
    /// English sentences rendered in Hershey script fonts (synthetic handwriting).
    TextLines {
        /// Font names under `font_dir` (the cursive and script faces).
        #[serde(default = "default_fonts")]
        fonts: Vec<String>,
        /// Where the `.jhf` files are (default: Debian's `/usr/share/hershey-fonts`).
        #[serde(default)]
        font_dir: Option<PathBuf>,
        /// The German–English dictionary whose English sentences are written (default:
        /// Debian's `/usr/share/trans/de-en`).
        #[serde(default)]
        corpus: Option<PathBuf>,
        /// Shortest and longest sentence, in characters.
        #[serde(default = "defaults::usize::<8>")]
        min_chars: usize,
        /// Longest sentence, in characters.
        #[serde(default = "defaults::usize::<24>")]
        max_chars: usize,
        /// Thinning distance, in font units (a lower-case letter is ~10 high).
        #[serde(default = "defaults::f32::<3, 1>")]
        min_distance: f32,
        /// Held-out lines rendered for validation and for test.
        #[serde(default = "defaults::usize::<256>")]
        held_out: usize,
    },
    /// Omniglot's pen strokes, split by drawer.
    Omniglot {
        /// Archives under `<data root>/omniglot/`.
        #[serde(default = "default_archives")]
        archives: Vec<String>,
        /// Thinning distance, in Omniglot's pixels (characters are ~50–100 across).
        #[serde(default = "defaults::f32::<4, 1>")]
        min_distance: f32,
    },
}

fn default_fonts() -> Vec<String> {
    vec!["cursive".into(), "scripts".into()]
}
fn default_archives() -> Vec<String> {
    vec!["strokes_background_small1.zip".into(), "strokes_background_small2.zip".into()]
}

impl StrokeData {
    /// The default text-lines data.
    pub fn text_lines() -> Self {
        toml::from_str("kind = \"text-lines\"").expect("defaults")
    }

    /// The default Omniglot data.
    pub fn omniglot() -> Self {
        toml::from_str("kind = \"omniglot\"").expect("defaults")
    }

    /// Whether examples carry a text.
    pub fn has_text(&self) -> bool {
        matches!(self, Self::TextLines { .. })
    }

    /// The files the data are read from (Omniglot's under `root`).
    pub fn files(&self, root: &Path) -> Vec<PathBuf> {
        match self {
            Self::TextLines { fonts, font_dir, corpus, .. } => {
                let dir = font_dir.as_deref().unwrap_or(Path::new(hershey::HERSHEY_DIR));
                let corpus = corpus.clone().unwrap_or_else(|| PathBuf::from(super::de_en::DING_PATH));
                fonts.iter().map(|f| dir.join(format!("{f}.jhf"))).chain([corpus]).collect()
            }
            Self::Omniglot { archives, .. } => archives.iter().map(|a| root.join("omniglot").join(a)).collect(),
        }
    }

    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::TextLines { .. } => "text-lines",
            Self::Omniglot { .. } => "omniglot",
        }
    }

    /// Loads the data (Omniglot under `root`); `seed` fixes the held-out renderings and the
    /// offsets' scale.
    pub fn load(&self, root: &Path, seed: u64) -> Result<StrokeSet> {
        match self {
            Self::TextLines { fonts, font_dir, corpus, min_chars, max_chars, min_distance, held_out } => {
                if fonts.is_empty() {
                    bail!("text-lines: no fonts named");
                }
                let fonts =
                    fonts.iter().map(|f| hershey::load(font_dir.as_deref(), f)).collect::<Result<Vec<Font>>>()?;
                let [train, valid, test] = english_sentences(corpus.as_deref(), *min_chars, *max_chars)?;
                let mut lines =
                    TextLines { fonts, train, min_distance: *min_distance, scale: OffsetScale { sx: 1.0, sy: 1.0 } };
                // The scale of 500 training renderings.
                let mut rng = Rng::derive(seed, "scale", 0);
                let sample: Vec<Vec<[f32; 3]>> = (0..500.min(lines.train.len() * 4))
                    .map(|_| {
                        let t = rng.below(lines.train.len());
                        lines.render(&lines.train[t], &mut rng).offsets
                    })
                    .collect();
                lines.scale = OffsetScale::fit(&sample);
                let held = |texts: &[String], stream: &str| -> Vec<Example> {
                    texts
                        .iter()
                        .take(*held_out)
                        .enumerate()
                        .map(|(i, t)| lines.render(t, &mut Rng::derive(seed, stream, i as u64)))
                        .collect()
                };
                let (valid, test) = (held(&valid, "valid-style"), held(&test, "test-style"));
                Ok(StrokeSet { scale: lines.scale, source: Source::TextLines(lines), valid, test })
            }
            Self::Omniglot { archives, min_distance } => {
                let mut split: [Vec<Example>; 3] = Default::default();
                for name in archives {
                    for d in strokes::load_zip(&root.join("omniglot").join(name))? {
                        let k = match DrawerSplit::of(d.drawer) {
                            DrawerSplit::Train => 0,
                            DrawerSplit::Valid => 1,
                            DrawerSplit::Test => 2,
                        };
                        let offsets = strokes::offsets(&thin(&d.strokes, *min_distance));
                        split[k].push(Example { offsets, text: None });
                    }
                }
                let [mut train, mut valid, mut test] = split;
                let scale = OffsetScale::fit(&train.iter().map(|e| e.offsets.clone()).collect::<Vec<_>>());
                for e in train.iter_mut().chain(&mut valid).chain(&mut test) {
                    scale.apply(&mut e.offsets);
                }
                Ok(StrokeSet { scale, source: Source::Drawings(train), valid, test })
            }
        }
    }
}

/// One sequence: normalised pen offsets and, for written lines, the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// `(Δx, Δy, end of stroke)`, divided by the data set's scale.
    pub offsets: Vec<[f32; 3]>,
    /// What the line says.
    pub text: Option<String>,
}

/// Training lines: the sentences and the fonts to write them in.
#[derive(Debug, Clone)]
pub struct TextLines {
    fonts: Vec<Font>,
    /// Training sentences, sorted by length.
    pub train: Vec<String>,
    min_distance: f32,
    scale: OffsetScale,
}

impl TextLines {
    /// `text` in a random font and style, thinned and normalised.
    pub fn render(&self, text: &str, rng: &mut Rng) -> Example {
        let font = &self.fonts[rng.below(self.fonts.len())];
        let style = Style::random(rng);
        let strokes = hershey::render(font, text, &style, 2.0 * self.min_distance).expect("an ASCII sentence");
        let mut offsets = strokes::offsets(&thin(&strokes, self.min_distance));
        self.scale.apply(&mut offsets);
        Example { offsets, text: Some(text.to_string()) }
    }
}

/// Where training sequences come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Freshly rendered lines.
    TextLines(TextLines),
    /// A fixed set of drawings.
    Drawings(Vec<Example>),
}

/// A loaded data set.
#[derive(Debug, Clone)]
pub struct StrokeSet {
    /// Offsets were divided by this.
    pub scale: OffsetScale,
    /// Training data.
    pub source: Source,
    /// Validation sequences.
    pub valid: Vec<Example>,
    /// Test sequences.
    pub test: Vec<Example>,
}

impl StrokeSet {
    /// The training batch of `step`: for text lines, `b` sentences of similar length (a random
    /// window of the length-sorted list) freshly rendered; for drawings, the `step`-th batch of
    /// a seeded, length-bucketed epoch order.
    pub fn train_batch(&self, seed: u64, step: usize, b: usize) -> Vec<Example> {
        match &self.source {
            Source::TextLines(lines) => {
                let mut rng = Rng::derive(seed, "batch", step as u64);
                let n = lines.train.len();
                let width = (4 * b).max(n / 50).min(n);
                let start = rng.below(n - width + 1);
                (0..b).map(|_| lines.render(&lines.train[start + rng.below(width)], &mut rng)).collect()
            }
            Source::Drawings(train) => {
                let per_epoch = train.len().div_ceil(b).max(1);
                let lengths: Vec<usize> = train.iter().map(|e| e.offsets.len()).collect();
                let order = super::batching::epoch_batches(&lengths, b, seed, step / per_epoch);
                order[step % per_epoch].iter().map(|&i| train[i].clone()).collect()
            }
        }
    }

    /// Training sequences (drawings) or sentences (text lines).
    pub fn train_len(&self) -> usize {
        match &self.source {
            Source::TextLines(l) => l.train.len(),
            Source::Drawings(d) => d.len(),
        }
    }
}

/// Drops every point closer than `d` to the last point kept; each stroke keeps its first and
/// last point.
pub fn thin(strokes: &[Vec<(f32, f32)>], d: f32) -> Vec<Vec<(f32, f32)>> {
    strokes
        .iter()
        .map(|s| {
            let mut out = vec![s[0]];
            for (k, &p) in s.iter().enumerate().skip(1) {
                let last = *out.last().expect("a point");
                if k + 1 == s.len() || (p.0 - last.0).hypot(p.1 - last.1) >= d {
                    out.push(p);
                }
            }
            out
        })
        .collect()
}

/// Typographic apostrophes and quotes as ASCII.
fn asciify(s: &str) -> String {
    s.replace(['’', '‘'], "'").replace(['“', '”'], "\"")
}

/// The dictionary's English sentences of `lo..=hi` printable-ASCII characters, de-duplicated,
/// split train/valid/test (90/5/5) by a hash of the English text; each list sorted by length,
/// then text.
pub fn english_sentences(corpus: Option<&Path>, lo: usize, hi: usize) -> Result<[Vec<String>; 3]> {
    let [a, b, c] = super::de_en::load(corpus)?;
    let english: BTreeSet<String> = a
        .into_iter()
        .chain(b)
        .chain(c)
        .map(|p| asciify(&p.target))
        .filter(|t| (lo..=hi).contains(&t.len()) && encode(t).is_ok())
        .collect();
    let mut out: [Vec<String>; 3] = Default::default();
    for t in english {
        let k = match super::de_en::split_of(&t) {
            TextSplit::Train => 0,
            TextSplit::Valid => 1,
            TextSplit::Test => 2,
        };
        out[k].push(t);
    }
    for v in &mut out {
        v.sort_by(|x, y| x.len().cmp(&y.len()).then_with(|| x.cmp(y)));
    }
    if out.iter().any(Vec::is_empty) {
        bail!("the corpus has too few English sentences of {lo}–{hi} characters to split");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alphabet_is_printable_ascii() {
        assert_eq!(encode(" a~").unwrap(), vec![0, 65, 94]);
        assert!(encode("Straße").unwrap_err().to_string().contains("printable ASCII"));
        assert_eq!(asciify("I’m “here”"), "I'm \"here\"");
    }

    #[test]
    fn thinning_keeps_stroke_ends_and_spacing() {
        let s = vec![vec![(0.0, 0.0), (0.5, 0.0), (1.0, 0.0), (2.5, 0.0), (2.6, 0.0)], vec![(9.0, 9.0)]];
        assert_eq!(thin(&s, 1.0), vec![vec![(0.0, 0.0), (1.0, 0.0), (2.5, 0.0), (2.6, 0.0)], vec![(9.0, 9.0)]]);
    }

    #[test]
    fn text_lines_render_split_by_sentence_and_vary() {
        if !Path::new(hershey::HERSHEY_DIR).join("cursive.jhf").is_file()
            || !Path::new(super::super::de_en::DING_PATH).is_file()
        {
            eprintln!("skipped: needs the Debian packages hershey-fonts-data and trans-de-en");
            return;
        }
        let set = StrokeData::text_lines().load(Path::new("/nonexistent"), 1).unwrap();
        let Source::TextLines(lines) = &set.source else { panic!("text lines") };
        assert!(lines.train.len() > 2000, "{}", lines.train.len());
        let held: BTreeSet<&str> = set.valid.iter().chain(&set.test).filter_map(|e| e.text.as_deref()).collect();
        assert!(lines.train.iter().all(|t| !held.contains(t.as_str())));
        let a = set.train_batch(1, 0, 8);
        assert_eq!(a, set.train_batch(1, 0, 8));
        assert_ne!(a, set.train_batch(1, 1, 8));
        // Same sentence, two renderings: different pens.
        let t = &lines.train[0];
        let (x, y) = (lines.render(t, &mut Rng::new(1)), lines.render(t, &mut Rng::new(2)));
        assert_ne!(x.offsets, y.offsets);
        // Normalised offsets have roughly unit spread; ~5–20 points per character.
        let per_char = a.iter().map(|e| e.offsets.len() as f64 / e.text.as_ref().unwrap().len() as f64);
        assert!(per_char.clone().all(|p| (3.0..25.0).contains(&p)), "{:?}", per_char.collect::<Vec<_>>());
        assert!(set.scale.sx > 0.5 && set.scale.sy > 0.5);
    }

    #[test]
    fn a_missing_corpus_or_font_is_a_clear_error() {
        let bad = StrokeData::TextLines {
            fonts: vec!["cursive".into()],
            font_dir: Some("/nonexistent".into()),
            corpus: None,
            min_chars: 8,
            max_chars: 24,
            min_distance: 3.0,
            held_out: 4,
        };
        assert!(format!("{:#}", bad.load(Path::new("/"), 0).unwrap_err()).contains("hershey-fonts-data"));
        let dir = tempfile::tempdir().unwrap();
        let corpus = dir.path().join("de-en");
        std::fs::write(&corpus, "Das ist gut. :: That is good.\n").unwrap();
        let err = english_sentences(Some(&corpus), 8, 24).unwrap_err().to_string();
        assert!(err.contains("too few"), "{err}");
        let omni = StrokeData::omniglot();
        assert!(format!("{:#}", omni.load(dir.path(), 0).unwrap_err()).contains("cannot open"));
    }
}
