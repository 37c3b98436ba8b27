//! Pictures of hard attention: where a RAM looked, step by step — a PNG grid of glimpse paths
//! and an animated GIF — with each scale's box drawn at each step and the prediction written.

use std::path::Path;

use anyhow::{Context, Result};
use image::{Rgb, RgbImage};

use crate::attention::glimpse_sensor::Retina;

/// One image's glimpse path.
#[derive(Debug, Clone)]
pub struct GlimpsePath {
    /// `h × w` pixels in `[0, 1]`.
    pub pixels: Vec<f32>,
    /// Locations `(row, col)` in `[-1, 1]²`, one per glimpse.
    pub locations: Vec<[f32; 2]>,
    /// Predicted class.
    pub prediction: usize,
    /// True class.
    pub label: usize,
}

/// 3×5 bitmaps of the digits 0–9, row-major, one `u16` per digit (bit 14 = top-left).
const DIGITS: [u16; 10] = [
    0b111_101_101_101_111,
    0b010_110_010_010_111,
    0b111_001_111_100_111,
    0b111_001_111_001_111,
    0b101_101_111_001_001,
    0b111_100_111_001_111,
    0b111_100_111_101_111,
    0b111_001_010_010_010,
    0b111_101_111_101_111,
    0b111_101_111_001_111,
];

/// Writes the number `n` at `(x, y)` with pixel blocks of `size`.
pub fn draw_number(img: &mut RgbImage, n: usize, x: u32, y: u32, size: u32, colour: Rgb<u8>) {
    for (k, ch) in n.to_string().bytes().enumerate() {
        let glyph = DIGITS[(ch - b'0') as usize];
        for r in 0..5u32 {
            for c in 0..3u32 {
                if glyph >> (14 - (r * 3 + c)) & 1 == 1 {
                    fill(img, x + (k as u32 * 4 + c) * size, y + r * size, size, size, colour);
                }
            }
        }
    }
}

fn fill(img: &mut RgbImage, x: u32, y: u32, w: u32, h: u32, c: Rgb<u8>) {
    for yy in y..(y + h).min(img.height()) {
        for xx in x..(x + w).min(img.width()) {
            img.put_pixel(xx, yy, c);
        }
    }
}

/// Draws the outline of the rectangle with top-left `(top, left)` and side `side` (image
/// pixels, possibly outside the image) enlarged by `scale` and shifted right by `ox` picture
/// pixels, clipped to the picture.
pub fn outline(img: &mut RgbImage, top: isize, left: isize, side: usize, scale: u32, ox: u32, c: Rgb<u8>) {
    let (s, side, ox) = (scale as i64, side as i64, ox as i64);
    let (top, left) = (top as i64, left as i64);
    let (y0, x0, y1, x1) = (top * s, left * s + ox, (top + side) * s - 1, (left + side) * s - 1 + ox);
    outline_box(img, (y0, x0, y1, x1), ox, c);
}

/// Draws the outline of the box of picture pixels `y0..=y1` × `x0..=x1`, clipped to the
/// picture's rows and to its columns from `min_x` on.
pub fn outline_box(img: &mut RgbImage, (y0, x0, y1, x1): (i64, i64, i64, i64), min_x: i64, c: Rgb<u8>) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let mut put = |x: i64, y: i64| {
        if (min_x..w).contains(&x) && (0..h).contains(&y) {
            img.put_pixel(x as u32, y as u32, c);
        }
    };
    for x in x0..=x1 {
        put(x, y0);
        put(x, y1);
    }
    for y in y0..=y1 {
        put(x0, y);
        put(x1, y);
    }
}

/// A colour for step `t` of `n`: from blue (first) to red (last).
pub fn step_colour(t: usize, n: usize) -> Rgb<u8> {
    let f = if n > 1 { t as f32 / (n - 1) as f32 } else { 1.0 };
    Rgb([(60.0 + 195.0 * f) as u8, (200.0 * (1.0 - (2.0 * f - 1.0).abs())) as u8 + 40, (255.0 * (1.0 - f)) as u8])
}

/// One panel: the image enlarged, the boxes of glimpses `0..=upto`, and (when `show_pred`) the
/// prediction, green if right and red if wrong, in a strip below.
pub fn panel(p: &GlimpsePath, retina: &Retina, side: [usize; 2], scale: u32, upto: usize, show_pred: bool) -> RgbImage {
    let [h, w] = side;
    let strip = 7 * 2 + 4;
    let mut img = RgbImage::new(w as u32 * scale, h as u32 * scale + strip);
    for y in 0..h as u32 * scale {
        for x in 0..w as u32 * scale {
            let v = (p.pixels[(y / scale) as usize * w + (x / scale) as usize].clamp(0.0, 1.0) * 200.0) as u8;
            img.put_pixel(x, y, Rgb([v, v, v]));
        }
    }
    let n = p.locations.len();
    for (t, l) in p.locations.iter().enumerate().take(upto.saturating_add(1)) {
        let c = step_colour(t, n);
        for i in 0..retina.scales {
            let (top, left) = retina.corner(*l, h, w, i);
            outline(&mut img, top, left, retina.side(i), scale, 0, c);
        }
    }
    if show_pred {
        let c = if p.prediction == p.label { Rgb([80, 220, 80]) } else { Rgb([240, 70, 70]) };
        draw_number(&mut img, p.prediction, 3, h as u32 * scale + 2, 2, c);
    }
    img
}

/// A grid of panels (all glimpses, with predictions), `cols` per row.
pub fn grid(paths: &[GlimpsePath], retina: &Retina, side: [usize; 2], scale: u32, cols: usize) -> RgbImage {
    let panels: Vec<RgbImage> = paths.iter().map(|p| panel(p, retina, side, scale, usize::MAX, true)).collect();
    let (pw, ph) = panels.first().map_or((1, 1), |p| p.dimensions());
    let gap = 4;
    let cols = cols.max(1).min(panels.len().max(1));
    let rows = panels.len().div_ceil(cols);
    let mut out = RgbImage::from_pixel(cols as u32 * (pw + gap) - gap, rows as u32 * (ph + gap) - gap, Rgb([255; 3]));
    for (k, p) in panels.iter().enumerate() {
        image::imageops::replace(
            &mut out,
            p,
            ((k % cols) as u32 * (pw + gap)) as i64,
            ((k / cols) as u32 * (ph + gap)) as i64,
        );
    }
    out
}

/// An animated GIF: one frame per glimpse (the panels of all images side by side), then a last
/// frame with the predictions.
pub fn animation(paths: &[GlimpsePath], retina: &Retina, side: [usize; 2], scale: u32, out: &Path) -> Result<()> {
    let steps = paths.iter().map(|p| p.locations.len()).max().unwrap_or(0);
    let mut frames = vec![];
    for t in 0..=steps {
        let frame: Vec<GlimpsePath> = paths.to_vec();
        let imgs: Vec<RgbImage> =
            frame.iter().map(|p| panel(p, retina, side, scale, t.min(steps.saturating_sub(1)), t == steps)).collect();
        let (pw, ph) = imgs[0].dimensions();
        let mut row = RgbImage::from_pixel(imgs.len() as u32 * (pw + 4) - 4, ph, Rgb([255; 3]));
        for (k, i) in imgs.iter().enumerate() {
            image::imageops::replace(&mut row, i, (k as u32 * (pw + 4)) as i64, 0);
        }
        frames.push(row);
    }
    save_gif(&frames, 70, 200, out)
}

/// Writes `frames` (all the same size) as a looping GIF: `delay` hundredths of a second per
/// frame, `last_delay` for the last one.
pub fn save_gif(frames: &[RgbImage], delay: u16, last_delay: u16, out: &Path) -> Result<()> {
    let first = frames.first().context("a GIF needs at least one frame")?;
    if let Some(p) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(p)?;
    }
    let (w, h) = first.dimensions();
    let file = std::fs::File::create(out).with_context(|| format!("writing {}", out.display()))?;
    let mut enc = gif::Encoder::new(file, w as u16, h as u16, &[])?;
    enc.set_repeat(gif::Repeat::Infinite)?;
    for (k, f) in frames.iter().enumerate() {
        let mut frame = gif::Frame::from_rgb_speed(w as u16, h as u16, f.as_raw(), 10);
        frame.delay = if k == frames.len() - 1 { last_delay } else { delay };
        enc.write_frame(&frame)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> GlimpsePath {
        GlimpsePath { pixels: vec![0.5; 28 * 28], locations: vec![[0.0, 0.0], [-0.5, 0.5]], prediction: 7, label: 7 }
    }

    #[test]
    fn boxes_are_drawn_where_the_retina_reads() {
        let r = Retina { patch: 8, scales: 2 };
        let img = panel(&path(), &r, [28, 28], 2, usize::MAX, true);
        assert_eq!(img.dimensions(), (56, 56 + 18));
        // Step 0, scale 0 at the centre: top-left (10, 10) → picture (20, 20) is on the box.
        let (top, left) = r.corner([0.0, 0.0], 28, 28, 0);
        assert_eq!((top, left), (10, 10));
        assert_eq!(*img.get_pixel(20, 20), step_colour(0, 2));
        // A pixel inside the box but off its edges keeps the image's grey.
        assert_eq!(*img.get_pixel(24, 24), Rgb([100, 100, 100]));
        // The prediction is written in green in the strip.
        assert!(img.pixels().skip(56 * 56).any(|p| *p == Rgb([80, 220, 80])));
    }

    #[test]
    fn grid_and_gif_are_written() {
        let r = Retina { patch: 8, scales: 1 };
        let g = grid(&[path(), path(), path()], &r, [28, 28], 2, 2);
        assert_eq!(g.dimensions(), (2 * 56 + 4, 2 * 74 + 4));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.gif");
        animation(&[path(), path()], &r, [28, 28], 2, &p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..6], b"GIF89a");
        let frames = gif::DecodeOptions::new().read_info(std::fs::File::open(&p).unwrap()).unwrap().into_iter().count();
        assert_eq!(frames, 3, "one frame per glimpse and one with the prediction");
    }
}
