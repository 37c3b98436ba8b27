//! Labelled image sets (MNIST, Fashion-MNIST) held as bytes, and batches made from them.

use std::path::Path;

use super::idx::{DataError, read_idx};
use super::registry::DatasetSpec;

/// Which part of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The 60,000 training images (from which a validation split is held out).
    Train,
    /// The 10,000 test images.
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// A set of `n` grey images of `h × w` bytes with a label each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    /// Image height.
    pub h: usize,
    /// Image width.
    pub w: usize,
    /// `n * h * w` bytes, image after image, row-major.
    pub pixels: Vec<u8>,
    /// `n` labels.
    pub labels: Vec<u8>,
    /// Number of classes (labels are `< classes`).
    pub classes: usize,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The bytes of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let s = self.h * self.w;
        &self.pixels[i * s..(i + 1) * s]
    }

    /// Reads an images file and a labels file (IDX, plain or gzipped) and checks they agree.
    pub fn from_idx_files(images: &Path, labels: &Path, classes: usize) -> Result<Self, DataError> {
        let im = read_idx(images, 3)?;
        let lb = read_idx(labels, 1)?;
        if im.dims[0] != lb.dims[0] {
            return Err(DataError::new(
                labels,
                format!("{} labels for {} images in {}", lb.dims[0], im.dims[0], images.display()),
            ));
        }
        if let Some(bad) = lb.data.iter().position(|&l| l as usize >= classes) {
            return Err(DataError::new(
                labels,
                format!("label {} at index {bad} is not below {classes}", lb.data[bad]),
            ));
        }
        Ok(Self { h: im.dims[1], w: im.dims[2], pixels: im.data, labels: lb.data, classes })
    }

    /// Loads one split of an IDX data set (MNIST layout) found under `root`.
    pub fn load(spec: &DatasetSpec, root: &Path, split: Split) -> Result<Self, DataError> {
        let find = |kind: &str| {
            let name = format!("{}-{kind}", split.prefix());
            spec.locate(root, &name).ok_or_else(|| {
                DataError::new(
                    root.join(spec.dir).join(format!("{name}.gz")),
                    format!(
                        "{} is not under the data root {}; run `glimpse data fetch {}` or pass --data-dir",
                        spec.name,
                        root.display(),
                        spec.name
                    ),
                )
            })
        };
        let images = find("images-idx3-ubyte")?;
        let labels = find("labels-idx1-ubyte")?;
        Self::from_idx_files(&images, &labels, 10)
    }

    /// The images at `indices`, as a new set.
    pub fn subset(&self, indices: &[usize]) -> Self {
        let mut pixels = Vec::with_capacity(indices.len() * self.h * self.w);
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        Self {
            h: self.h,
            w: self.w,
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes,
        }
    }

    /// Splits off the last `valid` images as a validation set: `(train, valid)`.
    ///
    /// The split is fixed (not random), so every run and every resume sees the same sets.
    pub fn split_validation(&self, valid: usize) -> (Self, Self) {
        let n = self.len();
        let valid = valid.min(n);
        let train: Vec<usize> = (0..n - valid).collect();
        let val: Vec<usize> = (n - valid..n).collect();
        (self.subset(&train), self.subset(&val))
    }

    /// Pixels of `indices` scaled to `[0, 1]`, `(len, h*w)` row-major, and their labels.
    pub fn batch_f32(&self, indices: &[usize]) -> (Vec<f32>, Vec<i64>) {
        let mut x = Vec::with_capacity(indices.len() * self.h * self.w);
        for &i in indices {
            x.extend(self.image(i).iter().map(|&p| p as f32 / 255.0));
        }
        (x, indices.iter().map(|&i| self.labels[i] as i64).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::encode_idx;

    fn write(dir: &Path, name: &str, dims: &[usize], data: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, encode_idx(dims, data)).unwrap();
        p
    }

    /// Images and labels that disagree (in number, or a label past the classes) are refused
    /// with the reason.
    #[test]
    fn mismatched_images_and_labels_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let cases: [(usize, &[u8], &str); 2] =
            [(3, &[0, 1], "2 labels for 3 images"), (2, &[0, 10], "label 10 at index 1")];
        for (images, labels, want) in cases {
            let im = write(d.path(), "im", &[images, 2, 2], &vec![0; images * 4]);
            let lb = write(d.path(), "lb", &[labels.len()], labels);
            let e = ImageSet::from_idx_files(&im, &lb, 10).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn missing_data_set_says_how_to_fetch() {
        let d = tempfile::tempdir().unwrap();
        let e = ImageSet::load(&crate::data::MNIST, d.path(), Split::Test).unwrap_err().to_string();
        assert!(e.contains("glimpse data fetch mnist"), "{e}");
    }

    #[test]
    fn split_and_batch() {
        let d = tempfile::tempdir().unwrap();
        let px: Vec<u8> = (0..5 * 4).map(|i| (i * 10) as u8).collect();
        let im = write(d.path(), "im", &[5, 2, 2], &px);
        let lb = write(d.path(), "lb", &[5], &[0, 1, 2, 3, 4]);
        let s = ImageSet::from_idx_files(&im, &lb, 10).unwrap();
        let (tr, va) = s.split_validation(2);
        assert_eq!((tr.len(), va.len()), (3, 2));
        assert_eq!(va.labels, vec![3, 4]);
        let (x, y) = s.batch_f32(&[4, 0]);
        assert_eq!(y, vec![4, 0]);
        assert_eq!(x.len(), 8);
        assert!((x[0] - 160.0 / 255.0).abs() < 1e-6);
    }
}
