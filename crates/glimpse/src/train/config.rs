//! The `[train]` section every family shares: one struct, [`TrainConfig`], read the same way by
//! every trainer, with each family's defaults and the keys it reads ([`Section`]).
//!
//! A key that exists but does not apply to the run's family (`kl_warmup` in a classifier's
//! configuration, say) is refused with the family's keys named, as an unknown key is: a typo
//! never passes silently. `eval_every` is read as `valid_every` (its name before the sections
//! were one).

use std::path::PathBuf;

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::distill::DistillConfig;
use super::optim::{OptimizerConfig, Schedule};

/// How long a run is, how it steps, validates, checkpoints and logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimizer steps (runs measured in steps: memory models, handwriting, translation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Passes over the training set (runs measured in epochs: image classifiers, DRAW). Such a
    /// run also validates at the end of each epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Examples per step.
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// Optimizer.
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule (a function of the step).
    pub schedule: Schedule,
    /// Clip the global gradient norm to this value (0: no clipping, where the family clips by
    /// default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_norm: Option<f32>,
    /// Validate (and keep the best weights) every this many steps, and at the end (0: only at
    /// the end, or at epochs' ends).
    pub valid_every: usize,
    /// Write the resumable state every this many steps (also at each validation; 0: only then).
    pub checkpoint_every: usize,
    /// Log the training metrics every this many steps.
    pub log_every: usize,
    /// Data parallelism: each step's batch is split into this many shards, whose forward and
    /// backward passes run on their own threads and whose gradients are summed
    /// ([`super::optim::sharded_gradients`]). The same value gives the same loss curve; another
    /// changes it in the last bits. A resumed run may change it.
    pub shards: usize,
    /// Start from the weights of this checkpoint (a curriculum's next stage, fine-tuning); the
    /// optimizer, the schedule and the step count start afresh. The model must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<PathBuf>,
    /// Knowledge distillation: also fit the averaged, softened probabilities of these teachers
    /// ([`super::distill`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill: Option<DistillConfig>,
    /// Stop after this many validations without a better score (absent or 0: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
    /// Held-out examples (the last of the training file, or generated with the seed).
    pub valid_size: usize,
    /// Examples of the held-out set each validation uses (0: all).
    pub valid_limit: usize,
    /// Use only the first N training examples (quick runs, tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_train: Option<usize>,
    /// Random shift of each training image by up to this many pixels (0: none).
    pub augment_shift: usize,
    /// Curriculum: the longest training sequence grows linearly from the task's shortest to
    /// its longest over this many steps (0: none).
    pub curriculum_steps: usize,
    /// Stop once the validation bit errors per sequence fall below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_below_bit_errors: Option<f64>,
    /// Weight DRAW's KL term by `min(1, step / kl_warmup)` (0: always 1). Not in the paper: a
    /// standard guard against posterior collapse (Bowman et al. 2016, Sønderby et al. 2016).
    /// Validation and evaluation always report the true bound.
    pub kl_warmup: usize,
    /// Longest output decoded.
    pub max_len: usize,
    /// Beam width of the final test evaluation (1: greedy).
    pub beam: usize,
    /// Length-normalisation exponent α of beam search.
    pub alpha: f32,
}

impl TrainConfig {
    /// The run's length in optimizer steps: `steps`, or `epochs` passes of `batches_per_epoch`.
    pub fn total_steps(&self, batches_per_epoch: usize) -> u64 {
        match (self.steps, self.epochs) {
            (Some(s), _) => s as u64,
            (None, Some(e)) => (e * batches_per_epoch) as u64,
            (None, None) => 0,
        }
    }
}

/// `clip_norm` as given (in a file or a flag): 0 means no clipping.
pub fn clip_norm(value: f32) -> Option<f32> {
    Some(value).filter(|&c| c != 0.0)
}

/// Every key of `[train]`, in the order of [`TrainConfig`].
pub const KEYS: &[&str] = &[
    "steps",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "schedule",
    "clip_norm",
    "valid_every",
    "checkpoint_every",
    "log_every",
    "shards",
    "init",
    "distill",
    "patience",
    "valid_size",
    "valid_limit",
    "limit_train",
    "augment_shift",
    "curriculum_steps",
    "stop_below_bit_errors",
    "kl_warmup",
    "max_len",
    "beam",
    "alpha",
];

/// The loop's keys, which every family reads.
const LOOP: [&str; 9] =
    ["batch_size", "lr", "optimizer", "schedule", "clip_norm", "checkpoint_every", "log_every", "shards", "patience"];

/// One family's view of `[train]`: its name, the keys it reads and its defaults.
pub struct Section {
    /// The family, as messages name it.
    pub family: &'static str,
    /// The keys beyond the loop's own that its runs read.
    pub keys: &'static [&'static str],
    /// Its defaults.
    pub defaults: fn() -> TrainConfig,
}

impl Section {
    /// Whether this family's runs read `key`.
    pub fn reads(&self, key: &str) -> bool {
        LOOP.contains(&key) || self.keys.contains(&key)
    }

    /// Every key this family reads.
    pub fn all_keys(&self) -> Vec<&'static str> {
        KEYS.iter().copied().filter(|k| self.reads(k)).collect()
    }

    /// `None` when this family reads `key`; else why not, in one line.
    pub fn refuse(&self, key: &str) -> Option<String> {
        if self.reads(key) {
            return None;
        }
        let what = if KEYS.contains(&key) { "does not apply to" } else { "is not a key of" };
        Some(format!("[train] `{key}` {what} {} runs (their keys: {})", self.family, self.all_keys().join(", ")))
    }

    /// The section `given` over this family's defaults.
    pub fn resolve(&self, given: toml::Table) -> Result<TrainConfig, String> {
        let toml::Value::Table(mut table) = toml::Value::try_from((self.defaults)()).map_err(|e| e.to_string())? else {
            unreachable!("a struct serialises to a table")
        };
        for (key, value) in given {
            let key = if key == "eval_every" { "valid_every".to_string() } else { key };
            if let Some(why) = self.refuse(&key) {
                return Err(why);
            }
            table.insert(key, value);
        }
        let mut t: TrainConfig =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| format!("[train]: {}", e.message()))?;
        t.clip_norm = t.clip_norm.and_then(clip_norm);
        Ok(t)
    }

    /// Reads a `[train]` section (serde's `deserialize_with`).
    pub fn read<'de, D: Deserializer<'de>>(&self, d: D) -> Result<TrainConfig, D::Error> {
        self.resolve(toml::Table::deserialize(d)?).map_err(D::Error::custom)
    }

    /// Writes `t` with only this family's keys (serde's `serialize_with`).
    pub fn write<S: Serializer>(&self, t: &TrainConfig, s: S) -> Result<S::Ok, S::Error> {
        let toml::Value::Table(mut table) = toml::Value::try_from(t).map_err(S::Error::custom)? else {
            unreachable!("a struct serialises to a table")
        };
        table.retain(|k, _| self.reads(k));
        if t.clip_norm.is_none() && (self.defaults)().clip_norm.is_some() {
            table.insert("clip_norm".into(), toml::Value::Float(0.0));
        }
        table.serialize(s)
    }
}

/// The values of the keys no family sets by default: none, zero or off.
fn base() -> TrainConfig {
    TrainConfig {
        steps: None,
        epochs: None,
        batch_size: 64,
        lr: 1e-3,
        optimizer: OptimizerConfig::default(),
        schedule: Schedule::Constant,
        clip_norm: None,
        valid_every: 0,
        checkpoint_every: 100,
        log_every: 20,
        shards: 1,
        init: None,
        distill: None,
        patience: None,
        valid_size: 0,
        valid_limit: 0,
        limit_train: None,
        augment_shift: 0,
        curriculum_steps: 0,
        stop_below_bit_errors: None,
        kl_warmup: 0,
        max_len: 0,
        beam: 1,
        alpha: 0.0,
    }
}

/// Image classifiers (MLP, CNN, RAM, the DRAW classifier): 10 epochs of 64 at 1e-3 with Adam,
/// 5,000 validation images, validation at each epoch's end.
pub fn classifier_defaults() -> TrainConfig {
    TrainConfig { epochs: Some(10), valid_size: 5000, checkpoint_every: 200, log_every: 50, ..base() }
}

/// The image classifiers' section.
pub const CLASSIFIER: Section = Section {
    family: "image classifier",
    keys: &["epochs", "init", "distill", "valid_size", "limit_train", "augment_shift"],
    defaults: classifier_defaults,
};

/// Memory models on algorithmic tasks (NTM, DNC, LSTM): the NTM paper's RMSProp (momentum 0.9,
/// lr 1e-4), batches of 16, norm clipping at 10, validation every 250 steps on 64 sequences.
pub fn sequence_defaults() -> TrainConfig {
    TrainConfig {
        steps: Some(10_000),
        batch_size: 16,
        lr: 1e-4,
        optimizer: OptimizerConfig::Rmsprop { alpha: 0.95, momentum: 0.9, epsilon: 1e-4, centered: false },
        clip_norm: Some(10.0),
        valid_size: 64,
        valid_every: 250,
        checkpoint_every: 250,
        log_every: 50,
        ..base()
    }
}

/// The memory models' section.
pub const SEQUENCE: Section = Section {
    family: "sequence model",
    keys: &["steps", "valid_every", "init", "valid_size", "curriculum_steps", "stop_below_bit_errors"],
    defaults: sequence_defaults,
};

/// DRAW: 20 epochs of 64 with Adam at 1e-3, norm clipping at 10, validation every 500 steps
/// on 2,000 of 10,000 held-out images.
pub fn draw_defaults() -> TrainConfig {
    TrainConfig {
        epochs: Some(20),
        clip_norm: Some(10.0),
        valid_size: 10_000,
        valid_every: 500,
        valid_limit: 2000,
        ..base()
    }
}

/// DRAW's section.
pub const DRAW: Section = Section {
    family: "DRAW",
    keys: &["epochs", "valid_every", "init", "valid_size", "valid_limit", "limit_train", "kl_warmup"],
    defaults: draw_defaults,
};

/// The handwriting networks: 5,000 steps of 32 with Adam at 1e-3, norm clipping at 10.
pub fn handwriting_defaults() -> TrainConfig {
    TrainConfig {
        steps: Some(5000),
        batch_size: 32,
        clip_norm: Some(10.0),
        valid_every: 250,
        checkpoint_every: 50,
        log_every: 10,
        ..base()
    }
}

/// The handwriting networks' section.
pub const HANDWRITING: Section =
    Section { family: "handwriting", keys: &["steps", "valid_every", "init"], defaults: handwriting_defaults };

/// Sequence-to-sequence models: 10,000 steps of 64 with Adam at 1e-3, norm clipping at 5,
/// validation every 500 steps; a beam of 5 (α = 0.6) for the final test.
pub fn translate_defaults() -> TrainConfig {
    TrainConfig {
        steps: Some(10_000),
        clip_norm: Some(5.0),
        valid_every: 500,
        max_len: 60,
        beam: 5,
        alpha: 0.6,
        ..base()
    }
}

/// The sequence-to-sequence models' section.
pub const TRANSLATE: Section = Section {
    family: "sequence-to-sequence",
    keys: &["steps", "valid_every", "limit_train", "max_len", "beam", "alpha"],
    defaults: translate_defaults,
};

/// A family's `[train]` section as a type, for serde: `#[serde(default = "config::Draw::default",
/// with = "config::Draw")]` reads a missing section as the family's defaults, and a given one
/// over them ([`Section::read`]), and writes only the family's keys ([`Section::write`]).
pub trait Keys {
    /// The family's section.
    const SECTION: Section;

    /// The family's defaults.
    fn default() -> TrainConfig {
        (Self::SECTION.defaults)()
    }

    /// Reads the section.
    fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TrainConfig, D::Error> {
        Self::SECTION.read(d)
    }

    /// Writes the section.
    fn serialize<S: Serializer>(t: &TrainConfig, s: S) -> Result<S::Ok, S::Error> {
        Self::SECTION.write(t, s)
    }
}

/// The image classifiers' `[train]` ([`CLASSIFIER`]).
pub struct Classifier;
impl Keys for Classifier {
    const SECTION: Section = CLASSIFIER;
}

/// The memory models' `[train]` ([`SEQUENCE`]).
pub struct Sequence;
impl Keys for Sequence {
    const SECTION: Section = SEQUENCE;
}

/// DRAW's `[train]` ([`DRAW`]).
pub struct Draw;
impl Keys for Draw {
    const SECTION: Section = DRAW;
}

/// The handwriting networks' `[train]` ([`HANDWRITING`]).
pub struct Handwriting;
impl Keys for Handwriting {
    const SECTION: Section = HANDWRITING;
}

/// The sequence-to-sequence models' `[train]` ([`TRANSLATE`]).
pub struct Translate;
impl Keys for Translate {
    const SECTION: Section = TRANSLATE;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Run {
        seed: u64,
        #[serde(default = "Draw::default", with = "Draw")]
        train: TrainConfig,
    }

    /// Missing keys take the family's defaults; a key of another family, an unknown key and a
    /// badly typed value are refused naming the key; `eval_every` reads as `valid_every`.
    #[test]
    fn a_section_takes_its_familys_defaults_and_refuses_other_keys() {
        let run: Run = toml::from_str("seed = 1\n[train]\nepochs = 3\nkl_warmup = 7\n").unwrap();
        assert_eq!(run.train, TrainConfig { epochs: Some(3), kl_warmup: 7, ..draw_defaults() });
        let run: Run = toml::from_str("seed = 1\n").unwrap();
        assert_eq!(run.train, draw_defaults());
        let run: Run = toml::from_str("seed = 1\n[train]\neval_every = 9\n").unwrap();
        assert_eq!(run.train.valid_every, 9);
        let err = toml::from_str::<Run>("seed = 1\n[train]\nbeam = 3\n").unwrap_err().to_string();
        assert!(err.contains("`beam` does not apply to DRAW runs") && err.contains("kl_warmup"), "{err}");
        let err = toml::from_str::<Run>("seed = 1\n[train]\nepocs = 3\n").unwrap_err().to_string();
        assert!(err.contains("`epocs` is not a key of DRAW runs"), "{err}");
        let err = toml::from_str::<Run>("seed = 1\n[train]\nepochs = \"3\"\n").unwrap_err().to_string();
        assert!(err.contains("[train]"), "{err}");
    }

    /// A section written out holds only its family's keys and reads back the same.
    #[test]
    fn a_written_section_reads_back_the_same() {
        let run = Run { seed: 2, train: TrainConfig { shards: 2, clip_norm: None, ..draw_defaults() } };
        let text = toml::to_string(&run).unwrap();
        assert!(!text.contains("beam") && text.contains("kl_warmup"), "{text}");
        assert_eq!(toml::from_str::<Run>(&text).unwrap(), run);
    }

    /// Every family reads the keys its runs need, and only those and the loop's.
    #[test]
    fn every_key_belongs_to_some_family() {
        for key in KEYS {
            assert!(
                [CLASSIFIER, SEQUENCE, DRAW, HANDWRITING, TRANSLATE].iter().any(|s| s.reads(key)),
                "{key} is read by no family"
            );
        }
        for s in [CLASSIFIER, SEQUENCE, DRAW, HANDWRITING, TRANSLATE] {
            let d = (s.defaults)();
            assert!(d.steps.is_some() != d.epochs.is_some(), "{}: steps or epochs", s.family);
            assert!(s.reads(if d.steps.is_some() { "steps" } else { "epochs" }), "{}", s.family);
        }
    }
}
