//! Pictures of soft attention by location: DRAW's canvas being drawn, with the write window of
//! each step, and the read windows of the DRAW classifier over an image.

use image::{Rgb, RgbImage};

use super::glimpses::{draw_number, outline_box, step_colour};
use crate::models::draw::Window;

/// A grey image `pixels` (`[0, 1]`, `rows × cols`) enlarged by `scale`, with `windows` outlined.
pub fn canvas(pixels: &[f32], side: [usize; 2], scale: u32, windows: &[(Window, Rgb<u8>)]) -> RgbImage {
    let [rows, cols] = side;
    let mut img = RgbImage::new(cols as u32 * scale, rows as u32 * scale);
    for y in 0..rows as u32 * scale {
        for x in 0..cols as u32 * scale {
            let v = (pixels[(y / scale) as usize * cols + (x / scale) as usize].clamp(0.0, 1.0) * 255.0) as u8;
            img.put_pixel(x, y, Rgb([v, v, v]));
        }
    }
    for (w, c) in windows {
        rect(&mut img, w, scale, *c);
    }
    img
}

/// Outlines a window (centre and side in image pixels, centre of pixel `k` at `k`), clipped.
pub fn rect(img: &mut RgbImage, w: &Window, scale: u32, c: Rgb<u8>) {
    let s = scale as f32;
    let half = (w.side * s / 2.0).max(1.0);
    let (cy, cx) = (w.row * s + s / 2.0, w.col * s + s / 2.0);
    outline_box(img, ((cy - half) as i64, (cx - half) as i64, (cy + half) as i64, (cx + half) as i64), 0, c);
}

/// Panels side by side (`cols` per row, the rest below), on white with `gap` pixels between.
pub fn tile(panels: &[RgbImage], cols: usize, gap: u32) -> RgbImage {
    let (pw, ph) = panels.first().map_or((1, 1), |p| p.dimensions());
    let cols = cols.max(1).min(panels.len().max(1));
    let rows = panels.len().div_ceil(cols).max(1);
    let mut out = RgbImage::from_pixel(cols as u32 * (pw + gap) - gap, rows as u32 * (ph + gap) - gap, Rgb([255; 3]));
    for (k, p) in panels.iter().enumerate() {
        let (x, y) = ((k % cols) as u32 * (pw + gap), (k / cols) as u32 * (ph + gap));
        image::imageops::replace(&mut out, p, x as i64, y as i64);
    }
    out
}

/// The colour of the write window.
pub const WRITE_COLOUR: Rgb<u8> = Rgb([235, 60, 50]);

/// One image's read windows, all glimpses, coloured from blue (first) to red (last), with the
/// prediction (green if right, red if wrong) in a strip below.
pub fn reads_panel(
    pixels: &[f32],
    side: [usize; 2],
    scale: u32,
    windows: &[Window],
    upto: usize,
    prediction: Option<(usize, usize)>,
) -> RgbImage {
    let n = windows.len();
    let coloured: Vec<(Window, Rgb<u8>)> =
        windows.iter().enumerate().take(upto.saturating_add(1)).map(|(t, w)| (*w, step_colour(t, n))).collect();
    let img = canvas(pixels, side, scale, &coloured);
    let strip = 14;
    let mut out = RgbImage::new(img.width(), img.height() + strip);
    image::imageops::replace(&mut out, &img, 0, 0);
    if let Some((pred, label)) = prediction {
        let c = if pred == label { Rgb([80, 220, 80]) } else { Rgb([240, 70, 70]) };
        draw_number(&mut out, pred, 3, img.height() + 2, 2, c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_outlined_where_they_are_and_tiles_fit() {
        let w = Window { row: 5.0, col: 3.0, side: 4.0 };
        let img = canvas(&[0.0; 100], [10, 10], 2, &[(w, WRITE_COLOUR)]);
        assert_eq!(img.dimensions(), (20, 20));
        // Centre of pixel (5, 3) at picture (11, 7); half-side 4: top edge at y = 7, x from 3 to 11.
        assert_eq!(*img.get_pixel(7, 7), WRITE_COLOUR);
        assert_eq!(*img.get_pixel(3, 11), WRITE_COLOUR);
        assert_eq!(*img.get_pixel(7, 11), Rgb([0, 0, 0]), "inside stays the image");
        let t = tile(&[img.clone(), img.clone(), img], 2, 3);
        assert_eq!(t.dimensions(), (43, 43));
        let p = reads_panel(&[0.5; 100], [10, 10], 2, &[w, w], 0, Some((3, 3)));
        assert_eq!(p.dimensions(), (20, 34));
    }
}
