//! Complete, trainable models, one file each.
//!
//! - [`mlp`], [`cnn`]: plain image classifiers, the foundation's proof of the stack and the
//!   simplest subjects for implicit (saliency) attention.
//! - [`ram`]: the Recurrent Attention Model (hard attention trained with REINFORCE).
//! - [`ntm`]: the Neural Turing Machine; [`dnc`]: the Differentiable Neural Computer; [`lstm`]: its controller cell and the plain LSTM
//!   baseline of the memory tasks.
//! - [`draw`]: DRAW, soft read/write attention for image generation; [`draw_classifier`]: its
//!   read attention as a classifier (the DRAW paper's "differentiable RAM").
//! - [`image_classifier`]: the interface every image classifier in the toolkit implements;
//!   [`classifier`]: the serialisable choice between them.

pub mod classifier;
pub mod cnn;
pub mod decoding;
pub mod dnc;
pub mod draw;
pub mod draw_classifier;
pub mod handwriting;
pub mod image_classifier;
pub mod lstm;
pub mod mdn;
pub mod mlp;
pub mod ntm;
pub mod ram;
pub mod seq2seq;
pub mod transformer;

pub use classifier::{Classifier, ClassifierConfig};
pub use image_classifier::ImageClassifier;
