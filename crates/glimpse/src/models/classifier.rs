//! The serialisable choice of an image classifier, and the model it builds.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};

use super::cnn::{Cnn, CnnConfig};
use super::draw_classifier::{DrawClassifier, DrawClassifierConfig};
use super::image_classifier::{ImageClassifier, Labelled, cross_entropy};
use super::mlp::{Mlp, MlpConfig};
use super::ram::{Gaze, Ram, RamConfig, pixels};
use crate::rng::Rng;

/// Which classifier, with its sizes; stored in checkpoints as `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ClassifierConfig {
    /// A multi-layer perceptron.
    Mlp(MlpConfig),
    /// A small CNN.
    Cnn(CnnConfig),
    /// The Recurrent Attention Model.
    Ram(RamConfig),
    /// DRAW's read attention with an LSTM ("differentiable RAM").
    #[serde(rename = "draw-classifier")]
    DrawClassifier(DrawClassifierConfig),
}

impl ClassifierConfig {
    /// The architecture alone: training-only options (dropout, step_loss, locate) cleared, so that two
    /// configurations compare equal exactly when their weights are interchangeable.
    pub fn architecture(&self) -> Self {
        match self {
            // The sizes kept; every other field at `new`'s (training-free) default.
            Self::DrawClassifier(c) => Self::DrawClassifier(DrawClassifierConfig {
                input: c.input,
                glimpses: c.glimpses,
                read: c.read,
                hidden: c.hidden,
                classes: c.classes,
                ..DrawClassifierConfig::new(c.input[0])
            }),
            other => other.clone(),
        }
    }

    /// Builds the classifier on `device`.
    pub fn init(&self, device: &Device) -> Classifier {
        match self {
            Self::Mlp(c) => Classifier::Mlp(c.init(device)),
            Self::Cnn(c) => Classifier::Cnn(c.init(device)),
            Self::Ram(c) => Classifier::Ram(c.init(device)),
            Self::DrawClassifier(c) => Classifier::DrawClassifier(c.init(device)),
        }
    }

    /// Input image height and width.
    pub fn input(&self) -> [usize; 2] {
        match self {
            Self::Mlp(c) => c.input,
            Self::Cnn(c) => c.input,
            Self::Ram(c) => c.input,
            Self::DrawClassifier(c) => c.input,
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        match self {
            Self::Mlp(c) => c.classes,
            Self::Cnn(c) => c.classes,
            Self::Ram(c) => c.classes,
            Self::DrawClassifier(c) => c.classes,
        }
    }

    /// Short name of the architecture.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Mlp(_) => "mlp",
            Self::Cnn(_) => "cnn",
            Self::Ram(_) => "ram",
            Self::DrawClassifier(_) => "draw-classifier",
        }
    }
}

/// One of the toolkit's plain classifiers.
// One model lives per run; the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Classifier {
    /// See [`Mlp`].
    Mlp(Mlp),
    /// See [`Cnn`].
    Cnn(Cnn),
    /// See [`Ram`].
    Ram(Ram),
    /// See [`DrawClassifier`].
    DrawClassifier(DrawClassifier),
}

impl ImageClassifier for Classifier {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Self::Mlp(m) => m.forward(images),
            Self::Cnn(m) => m.forward(images),
            Self::Ram(m) if images.is_require_grad() => {
                // Saliency: read glimpses as a differentiable function of the pixels.
                let [b, _, h, w] = images.dims();
                let device = images.device();
                let flat = images.clone().reshape([b, h * w]);
                m.run_on(&pixels(&images), Some(&flat), Gaze::Greedy, &device).logits
            }
            Self::Ram(m) => m.predict(&pixels(&images), &images.device()),
            Self::DrawClassifier(m) => m.logits(images),
        }
    }

    fn train_loss(&self, images: Tensor<4>, labels: Tensor<1, Int>, rng: &mut Rng) -> (Tensor<1>, Tensor<2>) {
        match self {
            Self::Ram(m) => m.hybrid_loss(&pixels(&images), labels, rng, &images.device()),
            Self::DrawClassifier(m) => m.train_loss(images, labels, rng),
            other => cross_entropy(other, images, labels),
        }
    }
}

impl Classifier {
    /// [`ImageClassifier::train_loss`] given, where the task knows them, the digits' centres
    /// `(B, 2)` (0-based `(row, col)` pixels): the DRAW classifier's location loss reads them
    /// ([`DrawClassifierConfig::locate`]); the other models ignore them.
    pub fn train_loss_at(&self, batch: Labelled, rng: &mut Rng) -> (Tensor<1>, Tensor<2>) {
        match self {
            Self::DrawClassifier(m) => m.train_loss_at(batch, rng),
            other => other.train_loss(batch.images, batch.labels, rng),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_architecture_ignores_training_only_options() {
        let base = DrawClassifierConfig::new(100);
        let with = |c: DrawClassifierConfig| ClassifierConfig::DrawClassifier(c).architecture();
        let dropped = DrawClassifierConfig {
            dropout: 0.5,
            read_dropout: 0.1,
            step_loss: 0.5,
            locate: 1.0,
            locate_from: 4,
            ..base.clone()
        };
        assert_eq!(with(dropped), with(base.clone()));
        assert_ne!(with(DrawClassifierConfig { hidden: 128, ..base.clone() }), with(base));
    }
}
