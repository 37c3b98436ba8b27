//! The Hershey vector fonts (A. V. Hershey, 1967; Debian package `hershey-fonts-data`,
//! `/usr/share/hershey-fonts/*.jhf`): every glyph a list of pen strokes, which makes them a
//! source of *synthetic handwriting* — text rendered as pen trajectories.
//!
//! The `.jhf` format: one glyph per record, the 96 records of a file standing for ASCII 32–127
//! in order. A record is a 5-column glyph number, a 3-column count of coordinate pairs, then the
//! pairs, two characters each, each coordinate `c − 'R'`: first the left and right margins, then
//! the points, with the pair `" R"` lifting the pen. Long records may wrap onto the next line.
//! The y axis points down.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// Where Debian installs the fonts.
pub const HERSHEY_DIR: &str = "/usr/share/hershey-fonts";

/// One glyph: its horizontal extent and its strokes (points in font units, y down).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Glyph {
    /// Left margin (usually negative).
    pub left: i32,
    /// Right margin.
    pub right: i32,
    /// Pen-down polylines.
    pub strokes: Vec<Vec<(i32, i32)>>,
}

impl Glyph {
    /// The advance width.
    pub fn width(&self) -> i32 {
        self.right - self.left
    }
}

/// A font: the glyphs of ASCII 32–127.
#[derive(Debug, Clone, PartialEq)]
pub struct Font {
    /// The font's name (its file stem).
    pub name: String,
    /// Glyph `c − 32` draws character `c`.
    pub glyphs: Vec<Glyph>,
}

fn coord(c: u8) -> i32 {
    c as i32 - b'R' as i32
}

/// Parses one record's coordinate characters (after the count).
fn parse_glyph(body: &[u8]) -> Result<Glyph> {
    if body.len() < 2 || !body.len().is_multiple_of(2) {
        bail!("a glyph needs an even number (≥ 2) of coordinate characters, got {}", body.len());
    }
    let mut g = Glyph { left: coord(body[0]), right: coord(body[1]), strokes: vec![vec![]] };
    for pair in body[2..].chunks(2) {
        if pair == b" R" {
            g.strokes.push(vec![]);
        } else if pair.iter().all(|c| (b' '..=b'~').contains(c)) {
            g.strokes.last_mut().expect("a stroke").push((coord(pair[0]), coord(pair[1])));
        } else {
            bail!("invalid coordinate pair {:?}", String::from_utf8_lossy(pair));
        }
    }
    g.strokes.retain(|s| !s.is_empty());
    Ok(g)
}

/// Parses a `.jhf` text: exactly 96 glyphs.
pub fn parse(name: &str, text: &str) -> Result<Font> {
    let mut glyphs = Vec::new();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty()).enumerate();
    while let Some((n, line)) = lines.next() {
        let bytes = line.as_bytes();
        if bytes.len() < 8 {
            bail!("{name}: record {}: too short for a glyph header: `{line}`", n + 1);
        }
        // Columns 6–8 by bytes: a line of other text may not split there on a character boundary.
        let field = String::from_utf8_lossy(&bytes[5..8]);
        let count: usize = field
            .trim()
            .parse()
            .with_context(|| format!("{name}: record {}: bad coordinate count `{field}`", n + 1))?;
        let mut body = bytes[8..].to_vec();
        while body.len() < 2 * count {
            let (_, next) = lines.next().with_context(|| format!("{name}: record {}: truncated glyph", n + 1))?;
            body.extend_from_slice(next.as_bytes());
        }
        if body.len() != 2 * count {
            bail!("{name}: record {}: {} coordinate characters for a count of {count}", n + 1, body.len());
        }
        glyphs.push(parse_glyph(&body).with_context(|| format!("{name}: record {}", n + 1))?);
    }
    if glyphs.len() != 96 {
        bail!("{name}: {} glyphs, expected the 96 of ASCII 32–127", glyphs.len());
    }
    Ok(Font { name: name.to_string(), glyphs })
}

/// Loads `<dir>/<name>.jhf` (default folder [`HERSHEY_DIR`]).
pub fn load(dir: Option<&Path>, name: &str) -> Result<Font> {
    let path = dir.unwrap_or(Path::new(HERSHEY_DIR)).join(format!("{name}.jhf"));
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!("{}: cannot read the font (install the Debian package `hershey-fonts-data`)", path.display())
    })?;
    parse(name, &text).with_context(|| format!("{}: malformed font", path.display()))
}

impl Font {
    /// The glyph of `c`, or `None` outside printable ASCII.
    pub fn glyph(&self, c: char) -> Option<&Glyph> {
        let k = (c as u32).checked_sub(32)?;
        self.glyphs.get(k as usize)
    }

    /// `text` as pen-down polylines in font units (y down), glyphs placed side by side; a
    /// character outside printable ASCII is an error. `spacing` is added after each glyph.
    pub fn layout(&self, text: &str, spacing: f32) -> Result<Vec<Vec<(f32, f32)>>> {
        let mut x = 0.0f32;
        let mut out = Vec::new();
        for c in text.chars() {
            let g = self.glyph(c).with_context(|| format!("the font `{}` has no glyph for {c:?}", self.name))?;
            for s in &g.strokes {
                out.push(s.iter().map(|&(px, py)| (x + (px - g.left) as f32, py as f32)).collect());
            }
            x += g.width() as f32 + spacing;
        }
        Ok(out)
    }
}

/// How one synthetic handwritten line departs from the font: no two renderings of a string
/// are the same.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Style {
    /// Glyph height multiplier.
    pub scale: f32,
    /// Shear: x gains `slant · height` (positive leans right).
    pub slant: f32,
    /// Extra space after each glyph, in font units.
    pub spacing: f32,
    /// Baseline slope (y change per unit of x).
    pub drift: f32,
    /// Amplitude of the smooth wobble added to every point, in font units.
    pub jitter: f32,
    /// Phases and frequencies of the wobble's sinusoids (x and y).
    wobble: [(f32, f32); 4],
}

impl Style {
    /// A random style: scale 0.8–1.2, slant −0.1–0.4, spacing −1–3, drift ±0.03, jitter 0–1.2.
    pub fn random(rng: &mut crate::rng::Rng) -> Self {
        let mut u = |lo: f32, hi: f32| lo + (hi - lo) * rng.uniform() as f32;
        let wobble = std::array::from_fn(|_| (u(0.0, std::f32::consts::TAU), u(0.05, 0.25)));
        Self {
            scale: u(0.8, 1.2),
            slant: u(-0.1, 0.4),
            spacing: u(-1.0, 3.0),
            drift: u(-0.03, 0.03),
            jitter: u(0.0, 1.2),
            wobble,
        }
    }

    /// The font as it is: no distortion.
    pub fn plain() -> Self {
        Self { scale: 1.0, slant: 0.0, spacing: 0.0, drift: 0.0, jitter: 0.0, wobble: [(0.0, 0.0); 4] }
    }
}

/// Splits every segment longer than `step` into equal pieces no longer than `step`, so that a
/// line is sampled like a pen trace rather than only at the font's vertices.
pub fn densify(strokes: &[Vec<(f32, f32)>], step: f32) -> Vec<Vec<(f32, f32)>> {
    strokes
        .iter()
        .map(|s| {
            let mut out = vec![s[0]];
            for w in s.windows(2) {
                let ((x0, y0), (x1, y1)) = (w[0], w[1]);
                let n = ((x1 - x0).hypot(y1 - y0) / step.max(1e-3)).ceil().max(1.0) as usize;
                out.extend((1..=n).map(|k| {
                    let t = k as f32 / n as f32;
                    (x0 + t * (x1 - x0), y0 + t * (y1 - y0))
                }));
            }
            out
        })
        .collect()
}

/// `text` written in `font` with `style`, as strokes with y pointing **up** (like Omniglot's),
/// sampled every `step` font units at most.
pub fn render(font: &Font, text: &str, style: &Style, step: f32) -> Result<Vec<Vec<(f32, f32)>>> {
    let laid = densify(&font.layout(text, style.spacing)?, step);
    let wob = |x: f32, k: usize| {
        let (p0, f0) = style.wobble[k];
        let (p1, f1) = style.wobble[k + 2];
        style.jitter * 0.5 * ((f0 * x + p0).sin() + (f1 * x + p1).sin())
    };
    Ok(laid
        .into_iter()
        .map(|s| {
            s.into_iter()
                .map(|(x, y)| {
                    let up = -y; // font y points down
                    let x2 = x + style.slant * up;
                    let y2 = up + style.drift * x;
                    (style.scale * (x2 + wob(x, 0)), style.scale * (y2 + wob(x, 1)))
                })
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_flips_y_densifies_and_varies_with_the_style() {
        let f = parse("tiny", &tiny_font()).unwrap();
        let plain = render(&f, "A", &Style::plain(), 100.0).unwrap();
        assert_eq!(plain[0], vec![(2.0, -4.0), (5.0, 4.0), (8.0, -4.0)]);
        let dense = render(&f, "A", &Style::plain(), 1.0).unwrap();
        // Each segment of the caret is √(9 + 64) ≈ 8.5 long: 9 pieces each.
        assert_eq!(dense[0].len(), 1 + 9 + 9);
        let mut rng = crate::rng::Rng::new(4);
        let (a, b) = (Style::random(&mut rng), Style::random(&mut rng));
        assert_ne!(a, b);
        let (ra, rb) = (render(&f, "AA", &a, 1.0).unwrap(), render(&f, "AA", &b, 1.0).unwrap());
        assert_eq!(ra.len(), rb.len());
        assert_ne!(ra, rb);
    }

    /// A font of 96 glyphs where `A` (65) is a caret and the rest blank.
    fn tiny_font() -> String {
        (32..128)
            .map(|c| match c {
                // Margins ±5, strokes (−3,4)→(0,−4)→(3,4), pen up, (−2,1)→(2,1).
                65 => "   65  7MWOVRNUV RPSTS".to_string(),
                _ => format!("{c:5}  1MW"),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn parses_margins_strokes_and_pen_ups() {
        let f = parse("tiny", &tiny_font()).unwrap();
        let a = f.glyph('A').unwrap();
        assert_eq!((a.left, a.right, a.width()), (-5, 5, 10));
        assert_eq!(a.strokes, vec![vec![(-3, 4), (0, -4), (3, 4)], vec![(-2, 1), (2, 1)]]);
        assert!(f.glyph(' ').unwrap().strokes.is_empty());
        // Two As: the second one is shifted by the advance width plus the spacing.
        let s = f.layout("AA", 1.0).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[2][0], (11.0 + 2.0, 4.0));
        assert!(f.layout("Ä", 0.0).is_err());
    }

    #[test]
    fn wrapped_records_are_joined() {
        let text = tiny_font().replace("   65  7MWOVRNUV RPSTS", "   65  7MWOVRN\nUV RPSTS");
        assert_eq!(parse("tiny", &text).unwrap(), parse("tiny", &tiny_font()).unwrap());
    }

    #[test]
    fn malformed_fonts_are_clear_errors() {
        let err = |t: &str| format!("{:#}", parse("bad", t).unwrap_err());
        assert!(err("   65  xMW").contains("bad coordinate count"));
        assert!(err("   65  3MWOV").contains("truncated glyph"));
        assert!(err("   65  1MW").contains("1 glyphs, expected"));
        assert!(err("  1").contains("too short"));
        assert!(
            load(Some(Path::new("/nonexistent")), "cursive").unwrap_err().to_string().contains("hershey-fonts-data")
        );
    }

    #[test]
    fn the_real_cursive_and_script_fonts_parse() {
        if !Path::new(HERSHEY_DIR).join("cursive.jhf").is_file() {
            eprintln!("skipped: {HERSHEY_DIR} is absent (Debian package `hershey-fonts-data`)");
            return;
        }
        for name in ["cursive", "scripts", "scriptc", "futural"] {
            let f = load(None, name).unwrap();
            assert!(f.glyph('a').unwrap().strokes.iter().map(Vec::len).sum::<usize>() > 3, "{name}");
            assert!(f.layout("attention and memory", 0.0).unwrap().len() > 10);
        }
    }
}
