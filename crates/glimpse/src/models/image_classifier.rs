//! The interface of image classifiers: images in, class logits out. Saliency, evaluation and
//! the classification trainer work with any implementation.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor};

use crate::rng::Rng;

/// A model that maps images to class logits. Saliency, evaluation and the classification
/// trainer work with any implementation.
pub trait ImageClassifier: Module {
    /// `(B, 1, H, W)` images in `[0, 1]` → `(B, classes)` logits.
    fn logits(&self, images: Tensor<4>) -> Tensor<2>;

    /// The training loss of a batch, and its logits. The default is the cross-entropy of
    /// [`logits`](Self::logits); models that sample (RAM) draw from `rng` and add their terms.
    fn train_loss(&self, images: Tensor<4>, labels: Tensor<1, Int>, rng: &mut Rng) -> (Tensor<1>, Tensor<2>) {
        let _ = rng;
        cross_entropy(self, images, labels)
    }
}

/// A training batch of an image task: `(B, 1, H, W)` images in `[0, 1]`, their `(B,)` labels
/// and, where the task knows them, the digits' centres `(B, 2)` (0-based `(row, col)` pixels).
#[derive(Debug, Clone)]
pub struct Labelled {
    /// `(B, 1, H, W)`.
    pub images: Tensor<4>,
    /// `(B,)`.
    pub labels: Tensor<1, Int>,
    /// `(B, 2)`, or none.
    pub centres: Option<Tensor<2>>,
}

/// The cross-entropy of a classifier's logits on a batch, and the logits.
pub fn cross_entropy<M: ImageClassifier>(
    model: &M,
    images: Tensor<4>,
    labels: Tensor<1, Int>,
) -> (Tensor<1>, Tensor<2>) {
    logits_cross_entropy(model.logits(images), labels)
}

/// The mean cross-entropy of `logits` against `labels`, and the logits.
fn logits_cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> (Tensor<1>, Tensor<2>) {
    let device = logits.device();
    (CrossEntropyLossConfig::new().init(&device).forward(logits.clone(), labels), logits)
}
