//! A small convolutional classifier in the LeNet tradition:
//! `[Conv 3×3 → ReLU → Conv 3×3 → ReLU → MaxPool 2×2]* → Linear → ReLU → Linear`.

use crate::defaults;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Sizes of a [`Cnn`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CnnConfig {
    /// Image height and width (each must be divisible by `2^blocks`).
    pub input: [usize; 2],
    /// Channels of each block (two 3×3 convolutions then a 2×2 max-pool per block).
    #[serde(default = "default_channels")]
    pub channels: Vec<usize>,
    /// Width of the hidden fully connected layer.
    #[serde(default = "defaults::usize::<128>")]
    pub hidden: usize,
    /// Number of classes.
    #[serde(default = "defaults::usize::<10>")]
    pub classes: usize,
}

fn default_channels() -> Vec<usize> {
    vec![16, 32]
}

impl CnnConfig {
    /// A CNN for `h × w` images with the default sizes and 10 classes.
    pub fn new(h: usize, w: usize) -> Self {
        Self { input: [h, w], channels: default_channels(), hidden: 128, classes: 10 }
    }

    /// Builds the model on `device`.
    pub fn init(&self, device: &Device) -> Cnn {
        let conv =
            |i, o| Conv2dConfig::new([i, o], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device);
        let mut blocks = vec![];
        let mut c_in = 1;
        for &c in &self.channels {
            blocks.push(Block { a: conv(c_in, c), b: conv(c, c) });
            c_in = c;
        }
        let down = 1 << self.channels.len();
        let flat = c_in * (self.input[0] / down) * (self.input[1] / down);
        Cnn {
            blocks,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            fc: LinearConfig::new(flat, self.hidden).init(device),
            out: LinearConfig::new(self.hidden, self.classes).init(device),
        }
    }
}

/// Two 3×3 convolutions with ReLU.
#[derive(Module, Debug)]
pub struct Block {
    a: Conv2d,
    b: Conv2d,
}

/// The CNN.
#[derive(Module, Debug)]
pub struct Cnn {
    blocks: Vec<Block>,
    pool: MaxPool2d,
    fc: Linear,
    out: Linear,
}

impl Cnn {
    /// `(B, 1, H, W)` images → `(B, classes)` logits.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = images;
        for block in &self.blocks {
            x = relu(crate::fused::conv3x3(x, &block.a)); // (B, C, H, W)
            x = self.pool.forward(relu(crate::fused::conv3x3(x, &block.b))); // (B, C, H/2, W/2)
        }
        let x: Tensor<2> = x.flatten(1, 3); // (B, C*H*W)
        self.out.forward(relu(self.fc.forward(x)))
    }
}
