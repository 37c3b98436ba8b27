//! Training: one loop ([`engine`]) and one `[train]` section ([`config`]) for every family,
//! with optimizers and schedules, checkpoints and metrics; each family's trainer implements
//! [`engine::Family`]: image classifiers ([`classify`]), sequence models ([`sequence`]), DRAW
//! ([`generative`]), handwriting ([`handwriting`]) and translation ([`translate`]).
//!
//! Conventions the engine keeps for every family:
//! - every random draw comes from [`crate::rng::Rng`] (never burn's global generator, which is used only
//!   to initialise weights right after `Device::seed`), so a seed fixes the whole run;
//! - the learning rate is a pure function of the step ([`optim::Schedule`]);
//! - `--out DIR` holds `last/` (resumable state, written atomically), `best/` (the checkpoint to
//!   evaluate), `metrics.jsonl` and TensorBoard files in `tb/`;
//! - a non-finite loss stops training before the optimizer touches the weights.

pub mod bench;
pub mod bleu;
pub mod checkpoint;
pub mod classify;
pub mod config;
pub mod distill;
pub mod engine;
pub mod generative;
pub mod handwriting;
pub mod metrics;
pub mod optim;
pub mod sequence;
pub mod translate;

pub use classify::{ClassifierRunConfig, ImageData};
pub use config::TrainConfig;

/// After optimizer step `step`: whether to validate (every `valid_every` steps, and whenever
/// `forced`, e.g. at the end of the run or of an epoch) and whether to write the resumable state
/// (every `checkpoint_every` steps, and whenever validating). 0 turns a cadence off.
pub fn cadence(step: u64, forced: bool, valid_every: usize, checkpoint_every: usize) -> (bool, bool) {
    let every = |n: usize| n > 0 && step.is_multiple_of(n as u64);
    let validating = forced || every(valid_every);
    (validating, validating || every(checkpoint_every))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cadence_validates_on_schedule_or_when_forced_and_checkpoints_whenever_it_validates() {
        assert_eq!(super::cadence(10, false, 5, 3), (true, true));
        assert_eq!(super::cadence(9, false, 5, 3), (false, true));
        assert_eq!(super::cadence(7, false, 5, 3), (false, false));
        assert_eq!(super::cadence(7, true, 0, 0), (true, true));
        assert_eq!(super::cadence(4, false, 0, 0), (false, false));
    }
}
