//! Pictures of a memory model at work, after the NTM paper's figures 6 and 11: time runs left to
//! right; stacked panels show the inputs, the targets, the outputs, then each head's weighting
//! over the memory locations (write heads first, then read heads).

use image::{Rgb, RgbImage};

use super::heatmap::ramp;

/// One panel: `rows × cols` values in `[0, 1]`, row-major (row = feature or location,
/// column = time step).
#[derive(Debug, Clone)]
pub struct Panel {
    /// Rows.
    pub rows: usize,
    /// Columns (time steps).
    pub cols: usize,
    /// `rows × cols` values.
    pub values: Vec<f32>,
}

impl Panel {
    /// A panel from time-major rows: `per_step[t]` holds the `rows` values of step `t`.
    pub fn from_steps(per_step: &[Vec<f32>]) -> Self {
        let cols = per_step.len();
        let rows = per_step.first().map_or(0, Vec::len);
        let mut values = vec![0.0; rows * cols];
        for (t, col) in per_step.iter().enumerate() {
            for (r, v) in col.iter().enumerate().take(rows) {
                values[r * cols + t] = *v;
            }
        }
        Self { rows, cols, values }
    }

    /// Keeps only rows `lo..hi` (a window of memory locations).
    pub fn rows_range(&self, lo: usize, hi: usize) -> Self {
        let hi = hi.min(self.rows);
        let lo = lo.min(hi);
        Self { rows: hi - lo, cols: self.cols, values: self.values[lo * self.cols..hi * self.cols].to_vec() }
    }

    /// The rows any step gives more than `threshold`, widened by `pad` (the locations a head
    /// used), as a `lo..hi` range; the whole panel if none.
    pub fn used_rows(&self, threshold: f32, pad: usize) -> (usize, usize) {
        let used: Vec<usize> = (0..self.rows)
            .filter(|&r| self.values[r * self.cols..(r + 1) * self.cols].iter().any(|&v| v > threshold))
            .collect();
        match (used.first(), used.last()) {
            (Some(&a), Some(&b)) => (a.saturating_sub(pad), (b + 1 + pad).min(self.rows)),
            _ => (0, self.rows),
        }
    }
}

/// Stacks panels vertically, `scale` pixels per cell, with a white gap between panels.
pub fn stack(panels: &[Panel], scale: u32) -> RgbImage {
    let gap = 2 * scale.max(2);
    let cols = panels.iter().map(|p| p.cols).max().unwrap_or(0) as u32;
    let height: u32 =
        panels.iter().map(|p| p.rows as u32 * scale).sum::<u32>() + gap * panels.len().saturating_sub(1) as u32;
    let mut img = RgbImage::from_pixel((cols * scale).max(1), height.max(1), Rgb([255, 255, 255]));
    let mut top = 0;
    for p in panels {
        for r in 0..p.rows {
            for c in 0..p.cols {
                let colour = Rgb(ramp(p.values[r * p.cols + c]));
                for dy in 0..scale {
                    for dx in 0..scale {
                        img.put_pixel(c as u32 * scale + dx, top + r as u32 * scale + dy, colour);
                    }
                }
            }
        }
        top += p.rows as u32 * scale + gap;
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_transpose_steps_and_stack_with_gaps() {
        let p = Panel::from_steps(&[vec![0.0, 1.0], vec![1.0, 0.0], vec![0.0, 0.0]]);
        assert_eq!((p.rows, p.cols), (2, 3));
        assert_eq!(p.values, vec![0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
        let img = stack(&[p.clone(), p.clone()], 3);
        assert_eq!((img.width(), img.height()), (9, 2 * 6 + 6));
        assert_eq!(img.get_pixel(3, 0).0, ramp(1.0)); // row 0, step 1
        assert_eq!(img.get_pixel(0, 0).0, ramp(0.0));
        assert_eq!(img.get_pixel(0, 7).0, [255, 255, 255]); // the gap
        assert_eq!(p.used_rows(0.5, 0), (0, 2));
        let w = Panel::from_steps(&[vec![0.0, 0.0, 0.9, 0.0, 0.0]]);
        assert_eq!(w.used_rows(0.5, 1), (1, 4));
        assert_eq!(w.rows_range(1, 4).values, vec![0.0, 0.9, 0.0]);
    }
}
