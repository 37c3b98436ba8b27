//! The interface of image classifiers, and the serialisable choice of one.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::cnn::{Cnn, CnnConfig};
use super::mlp::{Mlp, MlpConfig};

/// A model that maps images to class logits. Saliency, evaluation and the classification
/// trainer work with any implementation.
pub trait ImageClassifier: Module {
    /// `(B, 1, H, W)` images in `[0, 1]` → `(B, classes)` logits.
    fn logits(&self, images: Tensor<4>) -> Tensor<2>;
}

/// Which classifier, with its sizes; stored in checkpoints as `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ClassifierConfig {
    /// A multi-layer perceptron.
    Mlp(MlpConfig),
    /// A small CNN.
    Cnn(CnnConfig),
}

impl ClassifierConfig {
    /// Builds the classifier on `device`.
    pub fn init(&self, device: &Device) -> Classifier {
        match self {
            Self::Mlp(c) => Classifier::Mlp(c.init(device)),
            Self::Cnn(c) => Classifier::Cnn(c.init(device)),
        }
    }

    /// Input image height and width.
    pub fn input(&self) -> [usize; 2] {
        match self {
            Self::Mlp(c) => c.input,
            Self::Cnn(c) => c.input,
        }
    }

    /// Short name of the architecture.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Mlp(_) => "mlp",
            Self::Cnn(_) => "cnn",
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
}

impl ImageClassifier for Classifier {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Self::Mlp(m) => m.forward(images),
            Self::Cnn(m) => m.forward(images),
        }
    }
}
