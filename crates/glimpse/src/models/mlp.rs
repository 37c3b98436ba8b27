//! A multi-layer perceptron on flattened pixels: `x → [Linear → ReLU]* → Linear → logits`.

use crate::defaults;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Sizes of an [`Mlp`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Image height and width.
    pub input: [usize; 2],
    /// Hidden layer widths.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Number of classes.
    #[serde(default = "defaults::usize::<10>")]
    pub classes: usize,
}

fn default_hidden() -> Vec<usize> {
    vec![256, 256]
}

impl MlpConfig {
    /// An MLP for `h × w` images with the default hidden sizes and 10 classes.
    pub fn new(h: usize, w: usize) -> Self {
        Self { input: [h, w], hidden: default_hidden(), classes: 10 }
    }

    /// Builds the model on `device` (weights drawn from the device's seeded generator).
    pub fn init(&self, device: &Device) -> Mlp {
        let mut sizes = vec![self.input[0] * self.input[1]];
        sizes.extend(&self.hidden);
        let hidden = sizes.windows(2).map(|w| LinearConfig::new(w[0], w[1]).init(device)).collect();
        let out = LinearConfig::new(*sizes.last().unwrap(), self.classes).init(device);
        Mlp { hidden, out }
    }
}

/// The MLP.
#[derive(Module, Debug)]
pub struct Mlp {
    hidden: Vec<Linear>,
    out: Linear,
}

impl Mlp {
    /// `(B, 1, H, W)` images → `(B, classes)` logits.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x: Tensor<2> = images.flatten(1, 3); // (B, H*W)
        for layer in &self.hidden {
            x = relu(layer.forward(x));
        }
        self.out.forward(x)
    }
}
