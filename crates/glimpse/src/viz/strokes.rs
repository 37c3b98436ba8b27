//! Pictures of handwriting: pen strokes as SVG and PNG, and Graves' (2013, figure 13) window
//! picture: the written line above the soft window `φ(t, u)` over the text, one column per
//! pen point, one row per character.
//!
//! Strokes are polylines with y pointing up (as the data and the models have them).

use image::{Rgb, RgbImage};

use super::heatmap::ramp;

/// Polylines with y up.
pub type Strokes = Vec<Vec<(f32, f32)>>;

/// The bounding box `(x0, y0, x1, y1)` of some strokes (a unit box when empty).
fn bounds(strokes: &[Vec<(f32, f32)>]) -> (f32, f32, f32, f32) {
    let pts = strokes.iter().flatten();
    let b = pts
        .fold((f32::MAX, f32::MAX, f32::MIN, f32::MIN), |b, &(x, y)| (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y)));
    if b.0 > b.2 { (0.0, 0.0, 1.0, 1.0) } else { b }
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `path` elements for `strokes` scaled by `k` into a box whose top-left is `(ox, oy)`.
fn paths(strokes: &[Vec<(f32, f32)>], k: f32, ox: f32, oy: f32) -> String {
    let (x0, _, _, y1) = bounds(strokes);
    let mut out = String::new();
    for s in strokes.iter().filter(|s| !s.is_empty()) {
        let d: Vec<String> = s
            .iter()
            .enumerate()
            .map(|(i, &(x, y))| {
                format!("{}{:.1},{:.1}", if i == 0 { 'M' } else { 'L' }, ox + k * (x - x0), oy + k * (y1 - y))
            })
            .collect();
        // A one-point stroke is a dot.
        let d = if s.len() == 1 { format!("{} l0.1,0", d[0]) } else { d.join(" ") };
        out += &format!("<path d=\"{d}\"/>\n");
    }
    out
}

/// Several drawings side by side as one line (each shifted right past the previous one's box,
/// with a gap of `gap` times the tallest drawing's height), bottoms aligned.
pub fn side_by_side(drawings: &[Strokes], gap: f32) -> Strokes {
    let tallest = drawings.iter().map(|d| bounds(d)).map(|b| b.3 - b.1).fold(0.0f32, f32::max);
    let mut x = 0.0;
    let mut out = Vec::new();
    for d in drawings {
        let (x0, y0, x1, _) = bounds(d);
        out.extend(d.iter().map(|s| s.iter().map(|&(px, py)| (px - x0 + x, py - y0)).collect::<Vec<_>>()));
        x += x1 - x0 + gap * tallest;
    }
    out
}

/// Lines of handwriting stacked top to bottom, each scaled to `line_height` pixels, with an
/// optional caption (e.g. the text it was asked to write) above each.
pub fn lines_svg(lines: &[Strokes], captions: &[String], line_height: f32) -> String {
    let pad = 12.0;
    let cap = if captions.is_empty() { 0.0 } else { 18.0 };
    let scales: Vec<(f32, f32)> = lines
        .iter()
        .map(|l| {
            let (x0, y0, x1, y1) = bounds(l);
            let k = line_height / (y1 - y0).max(1e-3);
            (k, k * (x1 - x0))
        })
        .collect();
    let width = scales.iter().map(|s| s.1).fold(200.0f32, f32::max) + 2.0 * pad;
    let row = line_height + cap + pad;
    let height = row * lines.len() as f32 + pad;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" font-family=\"sans-serif\" font-size=\"13\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (i, l) in lines.iter().enumerate() {
        let top = pad + row * i as f32;
        if let Some(c) = captions.get(i) {
            out += &format!("<text x=\"{pad}\" y=\"{:.1}\" fill=\"#777\">{}</text>\n", top + 12.0, escape(c));
        }
        out += "<g fill=\"none\" stroke=\"black\" stroke-width=\"2\" stroke-linecap=\"round\" stroke-linejoin=\"round\">\n";
        out += &paths(l, scales[i].0, pad, top + cap);
        out += "</g>\n";
    }
    out + "</svg>\n"
}

/// Darkens the pixels within `r` of the segment `a → b` (anti-aliased by distance).
fn segment(img: &mut RgbImage, a: (f32, f32), b: (f32, f32), r: f32) {
    let (w, h) = img.dimensions();
    let (lo_x, hi_x) = ((a.0.min(b.0) - r - 1.0).max(0.0) as u32, ((a.0.max(b.0) + r + 1.0) as u32).min(w));
    let (lo_y, hi_y) = ((a.1.min(b.1) - r - 1.0).max(0.0) as u32, ((a.1.max(b.1) + r + 1.0) as u32).min(h));
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = (dx * dx + dy * dy).max(1e-9);
    for y in lo_y..hi_y {
        for x in lo_x..hi_x {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let t = (((px - a.0) * dx + (py - a.1) * dy) / len2).clamp(0.0, 1.0);
            let d = (px - a.0 - t * dx).hypot(py - a.1 - t * dy);
            let ink = (r + 0.5 - d).clamp(0.0, 1.0);
            let p = img.get_pixel_mut(x, y);
            let v = ((1.0 - ink) * 255.0) as u8;
            if v < p.0[0] {
                *p = Rgb([v, v, v]);
            }
        }
    }
}

/// Lines of handwriting as one PNG, each `line_height` pixels high, stacked.
pub fn lines_png(lines: &[Strokes], line_height: f32) -> RgbImage {
    let pad = 10.0;
    let fitted: Vec<(f32, (f32, f32, f32, f32))> = lines
        .iter()
        .map(|l| {
            let b = bounds(l);
            (line_height / (b.3 - b.1).max(1e-3), b)
        })
        .collect();
    let width = fitted.iter().map(|(k, b)| k * (b.2 - b.0)).fold(100.0f32, f32::max) + 2.0 * pad;
    let row = line_height + pad;
    let mut img = RgbImage::from_pixel(width as u32, (row * lines.len() as f32 + pad) as u32, Rgb([255, 255, 255]));
    for (i, l) in lines.iter().enumerate() {
        let (k, (x0, _, _, y1)) = fitted[i];
        let top = pad + row * i as f32;
        let at = |(x, y): (f32, f32)| (pad + k * (x - x0), top + k * (y1 - y));
        for s in l {
            if s.len() == 1 {
                segment(&mut img, at(s[0]), at(s[0]), 1.2);
            }
            for w in s.windows(2) {
                segment(&mut img, at(w[0]), at(w[1]), 1.2);
            }
        }
    }
    img
}

/// Graves' figure: the line (`strokes`) above the window `phi[t][u]` (rows: the characters of
/// `text`, then the position past the end; columns: pen points), as SVG with the characters
/// labelled. Each column is normalised by its largest weight, as a heat map.
pub fn window_svg(strokes: &[Vec<(f32, f32)>], text: &str, phi: &[Vec<f32>]) -> String {
    let (cell_w, cell_h, left, pad) = (3.0f32, 14.0f32, 24.0f32, 10.0f32);
    let chars: Vec<char> = text.chars().chain(std::iter::once('␣')).collect();
    let u = phi.first().map_or(0, Vec::len).min(chars.len());
    let map_w = cell_w * phi.len() as f32;
    let (x0, y0, x1, y1) = bounds(strokes);
    let line_h = 90.0;
    let k = (line_h / (y1 - y0).max(1e-3)).min(map_w.max(300.0) / (x1 - x0).max(1e-3));
    let width = left + map_w.max(k * (x1 - x0)) + 2.0 * pad;
    let map_top = pad + k * (y1 - y0) + 2.0 * pad;
    let height = map_top + cell_h * u as f32 + pad;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" font-family=\"monospace\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<g fill=\"none\" stroke=\"black\" stroke-width=\"2\" stroke-linecap=\"round\" stroke-linejoin=\"round\">\n"
    );
    out += &paths(strokes, k, left + pad, pad);
    out += "</g>\n";
    for (j, c) in chars.iter().take(u).enumerate() {
        let y = map_top + cell_h * (j as f32 + 0.75);
        out += &format!(
            "<text x=\"{}\" y=\"{y:.1}\" text-anchor=\"end\">{}</text>\n",
            left + pad - 4.0,
            escape(&c.to_string())
        );
    }
    // The map's background is the ramp's 0; cells under 1% of their column's peak are left to it.
    let [r0, g0, b0] = ramp(0.0);
    out += &format!(
        "<rect x=\"{:.1}\" y=\"{map_top:.1}\" width=\"{map_w:.1}\" height=\"{:.1}\" fill=\"rgb({r0},{g0},{b0})\"/>\n",
        left + pad,
        cell_h * u as f32
    );
    for (t, col) in phi.iter().enumerate() {
        let top = col.iter().take(u).fold(0.0f32, |a, &v| a.max(v));
        for (j, &v) in col.iter().take(u).enumerate() {
            let level = if top > 0.0 { v / top } else { 0.0 };
            if level < 0.01 {
                continue;
            }
            let [r, g, b] = ramp(level);
            out += &format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{cell_w}\" height=\"{cell_h}\" fill=\"rgb({r},{g},{b})\"/>\n",
                left + pad + cell_w * t as f32,
                map_top + cell_h * j as f32
            );
        }
    }
    out + "</svg>\n"
}

/// The window picture as PNG: `phi[t][u]` with points left to right and characters top to
/// bottom, `cell` pixels per character row and 2 per point, each column normalised.
pub fn window_png(phi: &[Vec<f32>], cell: u32) -> RgbImage {
    let u = phi.first().map_or(0, Vec::len) as u32;
    let (cw, ch) = (2u32, cell.max(1));
    RgbImage::from_fn(cw * phi.len().max(1) as u32, ch * u.max(1), |x, y| {
        let (t, j) = ((x / cw) as usize, (y / ch) as usize);
        let col = match phi.get(t) {
            Some(c) if j < c.len() => c,
            _ => return Rgb([0, 0, 0]),
        };
        let top = col.iter().fold(0.0f32, |a, &v| a.max(v));
        Rgb(ramp(if top > 0.0 { col[j] / top } else { 0.0 }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zigzag() -> Strokes {
        vec![vec![(0.0, 0.0), (10.0, 10.0), (20.0, 0.0)], vec![(25.0, 5.0)]]
    }

    #[test]
    fn svg_has_one_path_per_stroke_and_flips_y() {
        let s = lines_svg(&[zigzag()], &["a <b>".into()], 50.0);
        assert_eq!(s.matches("<path").count(), 2);
        assert!(s.contains("a &lt;b&gt;"));
        // The first point (bottom-left, y = 0) is drawn at the bottom of the 50-pixel line.
        assert!(s.contains("M12.0,80.0"), "{s}");
    }

    #[test]
    fn side_by_side_shifts_each_drawing_past_the_last() {
        let row = side_by_side(&[zigzag(), zigzag()], 0.5);
        assert_eq!(row.len(), 4);
        // The first drawing is 25 wide and 10 high: the second starts at 25 + 5.
        assert_eq!(row[2][0], (30.0, 0.0));
    }

    #[test]
    fn png_inks_the_strokes_and_leaves_the_rest_white() {
        let img = lines_png(&[zigzag()], 40.0);
        let dark = img.pixels().filter(|p| p.0[0] < 128).count();
        assert!(dark > 50 && dark < (img.width() * img.height()) as usize / 4, "{dark}");
        assert_eq!(img.get_pixel(img.width() - 1, 0).0, [255, 255, 255]);
    }

    #[test]
    fn window_pictures_have_a_row_per_character_and_a_column_per_point() {
        let phi = vec![vec![1.0, 0.1, 0.0, 0.0], vec![0.2, 0.9, 0.0, 0.0], vec![0.0, 0.1, 0.8, 0.3]];
        let png = window_png(&phi, 5);
        assert_eq!(png.dimensions(), (6, 20));
        assert_eq!(png.get_pixel(0, 0).0, ramp(1.0));
        let svg = window_svg(&zigzag(), "abc", &phi);
        // The page, the map's background, and the cells of at least 1% of their column's peak.
        assert_eq!(svg.matches("<rect").count(), 2 + 2 + 2 + 3);
        assert!(svg.contains(">␣</text>"));
    }
}
