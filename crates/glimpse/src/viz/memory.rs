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

    /// Keeps `len` rows from `start` on, wrapping past the last row to the first (memory is
    /// circular under the NTM's shifts, so a head that moves past location `N − 1` goes on at 0).
    pub fn rows_wrapping(&self, start: usize, len: usize) -> Self {
        let len = len.min(self.rows);
        let mut values = Vec::with_capacity(len * self.cols);
        for k in 0..len {
            let r = (start + k) % self.rows.max(1);
            values.extend_from_slice(&self.values[r * self.cols..(r + 1) * self.cols]);
        }
        Self { rows: len, cols: self.cols, values }
    }

    /// The rows any step gives more than `threshold` (the locations a head used), as the
    /// shortest circular window `(start, len)` holding them all, widened by `pad` on each side;
    /// the whole panel if none.
    pub fn used_rows(&self, threshold: f32, pad: usize) -> (usize, usize) {
        let n = self.rows;
        let used: Vec<usize> = (0..n).filter(|&r| self.row_used(r, threshold)).collect();
        if used.is_empty() {
            return (0, n);
        }
        // The window starts just after the widest circular gap between used rows.
        let (mut start, mut widest) = (used[0], n - 1 - used[used.len() - 1] + used[0]);
        for pair in used.windows(2) {
            let gap = pair[1] - pair[0] - 1;
            if gap > widest {
                (start, widest) = (pair[1], gap);
            }
        }
        let len = n - widest;
        if len + 2 * pad >= n {
            return (0, n);
        }
        ((start + n - pad) % n, len + 2 * pad)
    }

    /// Only the rows any step gives more than `threshold`, each with `pad` neighbours on either
    /// side (circularly), in location order; a row of NaN (drawn grey by [`stack`]) stands for
    /// each run of locations left out. For heads that touch a few locations spread over a large
    /// memory (priority sort's writes land by priority anywhere in 1,024 rows), where the
    /// window of [`Panel::used_rows`] would be nearly the whole memory.
    pub fn used_rows_only(&self, threshold: f32, pad: usize) -> Self {
        let n = self.rows;
        let mut keep = vec![false; n];
        for r in 0..n {
            if self.row_used(r, threshold) {
                for d in 0..=2 * pad {
                    keep[(r + n * (pad + 1) + d - pad) % n] = true;
                }
            }
        }
        if keep.iter().all(|&k| !k) {
            return self.clone();
        }
        let mut values = Vec::new();
        let mut rows = 0;
        for r in 0..n {
            if keep[r] {
                values.extend_from_slice(&self.values[r * self.cols..(r + 1) * self.cols]);
                rows += 1;
            } else if r == 0 || keep[r - 1] {
                values.extend(std::iter::repeat_n(f32::NAN, self.cols));
                rows += 1;
            }
        }
        Self { rows, cols: self.cols, values }
    }

    /// Whether any step gives row `r` more than `threshold`.
    fn row_used(&self, r: usize, threshold: f32) -> bool {
        self.values[r * self.cols..(r + 1) * self.cols].iter().any(|&v| v > threshold)
    }
}

/// Stacks panels vertically, `scale` pixels per cell, with a white gap between panels; NaN
/// cells (locations left out) are grey.
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
                let v = p.values[r * p.cols + c];
                let colour = if v.is_nan() { Rgb(LEFT_OUT) } else { Rgb(ramp(v)) };
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

/// The colour of a row that stands for locations left out of a panel.
const LEFT_OUT: [u8; 3] = [190, 190, 190];

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
        assert_eq!(w.used_rows(0.5, 1), (1, 3));
        assert_eq!(w.rows_wrapping(1, 3).values, vec![0.0, 0.9, 0.0]);
        assert_eq!(Panel::from_steps(&[vec![0.0; 4]]).used_rows(0.5, 1), (0, 4), "none used: all");
    }

    #[test]
    fn a_head_that_wraps_past_the_last_location_is_shown_as_one_window() {
        // Rows 0, 1 and 8, 9 of 10 used: the window is 8, 9, 0, 1, not all ten rows.
        let mut col = vec![0.0; 10];
        for r in [0, 1, 8, 9] {
            col[r] = 1.0;
        }
        let p = Panel::from_steps(&[col]);
        assert_eq!(p.used_rows(0.5, 0), (8, 4));
        assert_eq!(p.rows_wrapping(8, 4).values, vec![1.0; 4]);
        assert_eq!(p.used_rows(0.5, 1), (7, 6));
        assert_eq!(p.used_rows(0.5, 3), (0, 10), "padding past the whole memory: all of it");
    }

    #[test]
    fn sparse_heads_keep_only_their_locations_with_a_grey_row_per_gap() {
        // Locations 2 and 7 of 12 used, and 11 (whose pad wraps to 0).
        let mut col = vec![0.0; 12];
        for (r, v) in [(2, 0.9), (7, 0.8), (11, 0.7)] {
            col[r] = v;
        }
        let p = Panel::from_steps(&[col]).used_rows_only(0.5, 1);
        // Kept: 0 1 2 3 (0 as 11's neighbour) | gap 4-5 | 6 7 8 | gap 9 | 10 11.
        let shown: Vec<String> =
            p.values.iter().map(|v| if v.is_nan() { "-".into() } else { format!("{v}") }).collect();
        assert_eq!(shown, ["0", "0", "0.9", "0", "-", "0", "0.8", "0", "-", "0", "0.7"]);
        assert_eq!(p.rows, 11);
        let img = stack(&[p], 1);
        assert_eq!(img.get_pixel(0, 4).0, LEFT_OUT);
        assert_eq!(img.get_pixel(0, 2).0, ramp(0.9));
        // Nothing over the threshold: the panel as it was.
        let quiet = Panel::from_steps(&[vec![0.1; 5]]);
        assert_eq!(quiet.used_rows_only(0.5, 1).values, quiet.values);
        // Padding that covers the memory: every row, no gap rows.
        assert_eq!(Panel::from_steps(&[vec![0.0, 1.0, 0.0]]).used_rows_only(0.5, 1).rows, 3);
    }
}
