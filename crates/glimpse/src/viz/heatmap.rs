//! Heat maps over images (saliency, attention weights), as PNG.

use std::path::Path;

use anyhow::{Context, Result};
use image::{Rgb, RgbImage};

/// A perceptually ordered colour ramp (black → purple → orange → yellow), `t` in `[0, 1]`.
pub fn ramp(t: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 5] =
        [[0.0, 0.0, 0.02], [0.34, 0.06, 0.43], [0.74, 0.22, 0.33], [0.98, 0.55, 0.04], [0.99, 1.0, 0.64]];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f32;
    let c = |k: usize| ((STOPS[i][k] * (1.0 - f) + STOPS[i + 1][k] * f) * 255.0).round() as u8;
    [c(0), c(1), c(2)]
}

/// Normalises `values` by their largest magnitude into `[0, 1]` (all zeros stay zero).
pub fn normalise_abs(values: &[f32]) -> Vec<f32> {
    let m = values.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    values.iter().map(|v| if m > 0.0 { v.abs() / m } else { 0.0 }).collect()
}

/// A picture of three panels, each `scale`× enlarged: the grey image, the heat map of `heat`
/// (magnitudes), and the heat map blended over the image.
pub fn image_and_heat(pixels: &[f32], heat: &[f32], side: [usize; 2], scale: u32) -> RgbImage {
    let [h, w] = side;
    let heat = normalise_abs(heat);
    let (pw, ph) = (w as u32 * scale, h as u32 * scale);
    let gap = scale.max(2);
    let mut img = RgbImage::from_pixel(3 * pw + 2 * gap, ph, Rgb([255, 255, 255]));
    for y in 0..ph {
        for x in 0..pw {
            let i = (y / scale) as usize * w + (x / scale) as usize;
            let g = (pixels[i].clamp(0.0, 1.0) * 255.0) as u8;
            let c = ramp(heat[i]);
            img.put_pixel(x, y, Rgb([g, g, g]));
            img.put_pixel(pw + gap + x, y, Rgb(c));
            let blend = |k: usize| (0.45 * g as f32 + 0.55 * c[k] as f32 * heat[i].sqrt()) as u8;
            img.put_pixel(2 * (pw + gap) + x, y, Rgb([blend(0), blend(1), blend(2)]));
        }
    }
    img
}

/// Saves an image as PNG, creating the parent folder.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    if let Some(p) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(p)?;
    }
    img.save(path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_have_the_right_size_and_the_hot_pixel_is_brightest() {
        let mut heat = vec![0.0; 16];
        heat[5] = -3.0;
        heat[6] = 1.0;
        let img = image_and_heat(&[0.5; 16], &heat, [4, 4], 4);
        assert_eq!(img.dimensions(), (3 * 16 + 8, 16));
        let hot = img.get_pixel(16 + 4 + 4 + 1, 4 + 1); // heat panel, pixel (1,1)
        let warm = img.get_pixel(16 + 4 + 8 + 1, 4 + 1); // pixel (1,2)
        let sum = |p: &Rgb<u8>| p.0.iter().map(|&v| v as u32).sum::<u32>();
        assert!(sum(hot) > sum(warm));
        assert_eq!(ramp(0.0), [0, 0, 5]);
    }
}
