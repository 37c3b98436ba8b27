//! Training: seeded randomness, optimizers and schedules, checkpoints, metrics, and the
//! training loops for image classifiers ([`classify`]), sequence models ([`sequence`]) and DRAW
//! ([`generative`]), handwriting ([`handwriting`]) and translation ([`translate`]).
//!
//! Conventions every trainer in the toolkit follows:
//! - every random draw comes from [`rng::Rng`] (never burn's global generator, which is used only
//!   to initialise weights right after `Device::seed`), so a seed fixes the whole run;
//! - the learning rate is a pure function of the step ([`optim::Schedule`]);
//! - `--out DIR` holds `last/` (resumable state, written atomically), `best/` (the checkpoint to
//!   evaluate), `metrics.jsonl` and TensorBoard files in `tb/`;
//! - a non-finite loss stops training before the optimizer touches the weights.

pub mod bench;
pub mod bleu;
pub mod checkpoint;
pub mod classify;
pub mod generative;
pub mod handwriting;
pub mod metrics;
pub mod optim;
pub mod rng;
pub mod sequence;
pub mod translate;

pub use classify::{ClassifierRunConfig, ImageData, RunOptions, TrainConfig};
pub use rng::Rng;
