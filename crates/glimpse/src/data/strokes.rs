//! Pen strokes: real online handwriting from Omniglot (Lake et al. 2015; MIT licence; the small
//! background sets, `omniglot/strokes_background_small{1,2}.zip` under the data root), and the
//! pen-offset form the handwriting models read (Graves 2013, section 4.1): one point per step,
//! `(Δx, Δy, end-of-stroke)`.
//!
//! An Omniglot drawing is a text file: `START`, then the points of each stroke as `x,y,t` lines
//! (y up, t in milliseconds), each stroke closed by `BREAK`. Files are
//! `<set>/<alphabet>/characterNN/<image>_<drawer>.txt`; the 20 drawers of a set are split
//! train/valid/test (14/3/3) so that held-out drawings come from people never seen in training.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// One drawing: who drew which character, and the strokes (x right, y up).
#[derive(Debug, Clone, PartialEq)]
pub struct Drawing {
    /// Alphabet folder name (`Korean`).
    pub alphabet: String,
    /// Character folder name (`character07`).
    pub character: String,
    /// Drawer number, 1–20.
    pub drawer: u32,
    /// Pen-down polylines.
    pub strokes: Vec<Vec<(f32, f32)>>,
}

/// Parses a drawing's text into strokes (the time column is read and dropped).
pub fn parse_drawing(text: &str) -> Result<Vec<Vec<(f32, f32)>>> {
    let mut strokes = Vec::new();
    let mut current: Vec<(f32, f32)> = Vec::new();
    let mut started = false;
    for (n, line) in text.lines().map(str::trim).enumerate().filter(|(_, l)| !l.is_empty()) {
        match line {
            "START" => started = true,
            "BREAK" => {
                if !current.is_empty() {
                    strokes.push(std::mem::take(&mut current));
                }
            }
            _ => {
                if !started {
                    bail!("line {}: a point before START", n + 1);
                }
                let v: Vec<&str> = line.split(',').collect();
                if v.len() != 3 {
                    bail!("line {}: expected `x,y,t`, got `{line}`", n + 1);
                }
                let num = |s: &str| -> Result<f32> {
                    let x: f32 = s.trim().parse().with_context(|| format!("line {}: bad number `{s}`", n + 1))?;
                    if !x.is_finite() {
                        bail!("line {}: non-finite number `{s}`", n + 1);
                    }
                    Ok(x)
                };
                num(v[2])?;
                current.push((num(v[0])?, num(v[1])?));
            }
        }
    }
    if !current.is_empty() {
        strokes.push(current);
    }
    if strokes.is_empty() {
        bail!("no strokes");
    }
    Ok(strokes)
}

/// Which drawers form each split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrawerSplit {
    /// Drawers 1–14.
    Train,
    /// Drawers 15–17.
    Valid,
    /// Drawers 18–20.
    Test,
}

impl DrawerSplit {
    /// The split of a drawer.
    pub fn of(drawer: u32) -> Self {
        match drawer {
            0..=14 => Self::Train,
            15..=17 => Self::Valid,
            _ => Self::Test,
        }
    }
}

/// Reads every drawing of an Omniglot strokes zip.
pub fn load_zip(path: &Path) -> Result<Vec<Drawing>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("{}: cannot open (Omniglot's strokes_background_small*.zip)", path.display()))?;
    let mut zip = zip::ZipArchive::new(file).with_context(|| format!("{}: not a zip archive", path.display()))?;
    let mut out = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).with_context(|| format!("{}: entry {i}", path.display()))?;
        let name = entry.name().to_string();
        if !name.ends_with(".txt") || name.starts_with("__MACOSX") {
            continue;
        }
        let parts: Vec<&str> = name.split('/').collect();
        let [.., alphabet, character, file] = parts[..] else {
            bail!("{}: unexpected entry `{name}`", path.display());
        };
        let drawer: u32 = file
            .trim_end_matches(".txt")
            .rsplit('_')
            .next()
            .and_then(|d| d.parse().ok())
            .with_context(|| format!("{}: `{name}` does not end in _<drawer>.txt", path.display()))?;
        let mut text = String::new();
        entry.read_to_string(&mut text).with_context(|| format!("{}: reading `{name}`", path.display()))?;
        let strokes = parse_drawing(&text).with_context(|| format!("{}: `{name}`", path.display()))?;
        out.push(Drawing { alphabet: alphabet.into(), character: character.into(), drawer, strokes });
    }
    if out.is_empty() {
        bail!("{}: no drawings in the archive", path.display());
    }
    Ok(out)
}

/// Strokes as pen offsets `(Δx, Δy, eos)`: the first point's offset is from the first point
/// itself (0, 0); `eos = 1` on the last point of each stroke.
pub fn offsets(strokes: &[Vec<(f32, f32)>]) -> Vec<[f32; 3]> {
    let mut out = Vec::new();
    let mut prev: Option<(f32, f32)> = None;
    for s in strokes {
        for (k, &(x, y)) in s.iter().enumerate() {
            let (px, py) = prev.unwrap_or((x, y));
            out.push([x - px, y - py, if k + 1 == s.len() { 1.0 } else { 0.0 }]);
            prev = Some((x, y));
        }
    }
    out
}

/// Pen offsets back to strokes (the inverse of [`offsets`], starting at the origin).
pub fn strokes_of(offsets: &[[f32; 3]]) -> Vec<Vec<(f32, f32)>> {
    let (mut x, mut y) = (0.0, 0.0);
    let mut out = vec![vec![]];
    for &[dx, dy, eos] in offsets {
        x += dx;
        y += dy;
        out.last_mut().expect("a stroke").push((x, y));
        if eos > 0.5 {
            out.push(vec![]);
        }
    }
    out.retain(|s: &Vec<(f32, f32)>| !s.is_empty());
    out
}

/// Per-axis scale of pen offsets: divide by the standard deviation of the training offsets
/// (Graves 2013 normalises offsets to unit variance).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OffsetScale {
    /// Standard deviation of Δx.
    pub sx: f32,
    /// Standard deviation of Δy.
    pub sy: f32,
}

impl OffsetScale {
    /// The scale of a set of offset sequences.
    pub fn fit(seqs: &[Vec<[f32; 3]>]) -> Self {
        let n = seqs.iter().map(Vec::len).sum::<usize>().max(1) as f64;
        let std = |k: usize| {
            let mean = seqs.iter().flatten().map(|p| p[k] as f64).sum::<f64>() / n;
            let var = seqs.iter().flatten().map(|p| (p[k] as f64 - mean).powi(2)).sum::<f64>() / n;
            (var.sqrt() as f32).max(1e-6)
        };
        Self { sx: std(0), sy: std(1) }
    }

    /// Scales offsets in place.
    pub fn apply(&self, seq: &mut [[f32; 3]]) {
        for p in seq {
            p[0] /= self.sx;
            p[1] /= self.sy;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strokes_and_round_trips_offsets() {
        let s = parse_drawing("START\n1,2,0\n3,2,10\nBREAK\n3,5,20\n4,6,30\n5,6,40\nBREAK\n").unwrap();
        assert_eq!(s, vec![vec![(1.0, 2.0), (3.0, 2.0)], vec![(3.0, 5.0), (4.0, 6.0), (5.0, 6.0)]]);
        let o = offsets(&s);
        assert_eq!(o, vec![[0.0, 0.0, 0.0], [2.0, 0.0, 1.0], [0.0, 3.0, 0.0], [1.0, 1.0, 0.0], [1.0, 0.0, 1.0]]);
        let back = strokes_of(&o);
        assert_eq!(back, vec![vec![(0.0, 0.0), (2.0, 0.0)], vec![(2.0, 3.0), (3.0, 4.0), (4.0, 4.0)]]);
        let scale = OffsetScale::fit(std::slice::from_ref(&o));
        let mut scaled = o.clone();
        scale.apply(&mut scaled);
        assert!((OffsetScale::fit(&[scaled]).sx - 1.0).abs() < 1e-5);
    }

    #[test]
    fn malformed_drawings_are_clear_errors() {
        let e = |t: &str| format!("{:#}", parse_drawing(t).unwrap_err());
        assert!(e("1,2,3\n").contains("before START"));
        assert!(e("START\n1,2\n").contains("expected `x,y,t`"));
        assert!(e("START\n1,x,3\n").contains("bad number"));
        assert!(e("START\nBREAK\n").contains("no strokes"));
        assert!(e("START\nNaN,1,2\n").contains("non-finite"));
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.zip");
        std::fs::write(&bad, b"PK\x03\x04 not really").unwrap();
        assert!(format!("{:#}", load_zip(&bad).unwrap_err()).contains("not a zip"));
        assert!(load_zip(&dir.path().join("absent.zip")).unwrap_err().to_string().contains("cannot open"));
        assert_eq!(DrawerSplit::of(3), DrawerSplit::Train);
        assert_eq!(DrawerSplit::of(16), DrawerSplit::Valid);
        assert_eq!(DrawerSplit::of(20), DrawerSplit::Test);
    }

    #[test]
    fn the_real_omniglot_strokes_load() {
        let Some(root) = std::env::var_os(crate::data::DATA_ENV).map(std::path::PathBuf::from) else {
            eprintln!("skipped: {} is not set", crate::data::DATA_ENV);
            return;
        };
        let path = root.join("omniglot/strokes_background_small1.zip");
        if !path.is_file() {
            eprintln!("skipped: {} is absent", path.display());
            return;
        }
        let d = load_zip(&path).unwrap();
        assert_eq!(d.len(), 2720);
        assert!(d.iter().all(|x| (1..=20).contains(&x.drawer) && !x.strokes.is_empty()));
        assert_eq!(d.iter().filter(|x| x.alphabet == "Korean").count(), 800);
    }
}
