//! Alignment pictures of content attention (Bahdanau et al. 2014, figure 3): one row per
//! output token, one column per source token, each cell the weight `a_tj` (black 0, white 1).
//! Written twice: a PNG heat map, and an SVG of the same grid with the tokens written along
//! its edges (text needs no font files in SVG).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use image::{Rgb, RgbImage};

use super::heatmap::save_png;

fn grey(w: f32) -> u8 {
    (w.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// The heat map: `weights[t][j]` for target row `t`, source column `j`; `scale` pixels a cell.
pub fn heatmap(weights: &[Vec<f32>], scale: u32) -> RgbImage {
    let rows = weights.len() as u32;
    let cols = weights.first().map_or(0, Vec::len) as u32;
    let s = scale.max(1);
    RgbImage::from_fn(cols * s, rows * s, |x, y| {
        let g = grey(weights[(y / s) as usize][(x / s) as usize]);
        Rgb([g, g, g])
    })
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The SVG: source tokens written vertically above the columns, target tokens left of the rows.
pub fn svg(source: &[String], target: &[String], weights: &[Vec<f32>]) -> String {
    let cell = 20.0;
    let longest = |v: &[String]| v.iter().map(|t| t.chars().count()).max().unwrap_or(1) as f64;
    let (left, top) = (8.0 * longest(target) + 10.0, 8.0 * longest(source) + 10.0);
    let (w, h) = (left + cell * source.len() as f64 + 4.0, top + cell * target.len() as f64 + 4.0);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"monospace\" font-size=\"13\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (j, t) in source.iter().enumerate() {
        let x = left + cell * (j as f64 + 0.5) + 4.0;
        out += &format!("<text transform=\"translate({x},{}) rotate(-90)\">{}</text>\n", top - 4.0, escape(t));
    }
    for (i, t) in target.iter().enumerate() {
        let y = top + cell * (i as f64 + 0.5) + 4.0;
        out += &format!("<text x=\"{}\" y=\"{y}\" text-anchor=\"end\">{}</text>\n", left - 4.0, escape(t));
        for (j, &a) in weights[i].iter().enumerate() {
            let g = grey(a);
            out += &format!(
                "<rect x=\"{}\" y=\"{}\" width=\"{cell}\" height=\"{cell}\" fill=\"rgb({g},{g},{g})\"><title>{a:.3}</title></rect>\n",
                left + cell * j as f64,
                top + cell * i as f64
            );
        }
    }
    out + "</svg>\n"
}

/// Writes `PREFIX.png` and `PREFIX.svg`; returns their paths.
pub fn save(
    source: &[String],
    target: &[String],
    weights: &[Vec<f32>],
    prefix: &Path,
    scale: u32,
) -> Result<(PathBuf, PathBuf)> {
    if weights.len() != target.len() || weights.iter().any(|r| r.len() != source.len()) {
        bail!(
            "alignment of {} target and {} source tokens has {} rows of {:?} weights",
            target.len(),
            source.len(),
            weights.len(),
            weights.first().map(Vec::len)
        );
    }
    let png = prefix.with_extension("png");
    let svg_path = prefix.with_extension("svg");
    if let Some(dir) = png.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    save_png(&heatmap(weights, scale), &png)?;
    std::fs::write(&svg_path, svg(source, target, weights))?;
    Ok((png, svg_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heatmap_cells_and_svg_labels() {
        let w = vec![vec![1.0, 0.0], vec![0.25, 0.75]];
        let img = heatmap(&w, 3);
        assert_eq!(img.dimensions(), (6, 6));
        assert_eq!(img.get_pixel(0, 0).0, [255; 3]);
        assert_eq!(img.get_pixel(4, 1).0, [0; 3]);
        assert_eq!(img.get_pixel(4, 4).0, [191; 3]);
        let s = svg(&["a".into(), "<b>".into()], &["x".into(), "y".into()], &w);
        assert!(s.contains("&lt;b&gt;") && s.contains(">x</text>") && s.matches("<rect x=").count() == 4);
        let dir = tempfile::tempdir().unwrap();
        assert!(save(&["a".into()], &["x".into()], &w, &dir.path().join("al"), 2).is_err());
        let (p, q) = save(&["a".into(), "b".into()], &["x".into(), "y".into()], &w, &dir.path().join("al"), 2).unwrap();
        assert!(p.is_file() && q.is_file());
    }
}
