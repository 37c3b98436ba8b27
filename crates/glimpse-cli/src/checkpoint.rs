//! Which family of model a checkpoint holds, read from its `meta.json`, so that `eval` and
//! `viz` dispatch with one `match`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use glimpse::train::checkpoint::{META, find_dir};

/// The families of models, each with its own loader and evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    /// Image classifiers: cnn, mlp, ram, draw-classifier.
    Classifier,
    /// Memory models on algorithmic tasks: ntm, lstm, dnc.
    Sequence,
    /// DRAW, the generative model.
    Draw,
    /// Sequence-to-sequence models: seq2seq (with or without attention), transformer.
    Translate,
    /// Graves' handwriting networks.
    Handwriting,
}

impl Family {
    /// The name meta.json's `family` field gives it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Family::Classifier => "classifier",
            Family::Sequence => "sequence",
            Family::Draw => "draw",
            Family::Translate => "translate",
            Family::Handwriting => "handwriting",
        }
    }

    /// The family named by meta.json's `family` field.
    fn from_name(name: &str) -> Option<Family> {
        [Family::Classifier, Family::Sequence, Family::Draw, Family::Translate, Family::Handwriting]
            .into_iter()
            .find(|f| f.name() == name)
    }

    /// The family of a meta.json `model` (for checkpoints written before the `family` field).
    fn of_model(model: &str) -> Option<Family> {
        Some(match model {
            "cnn" | "mlp" | "ram" | "draw-classifier" => Family::Classifier,
            "ntm" | "lstm" | "dnc" => Family::Sequence,
            "draw" => Family::Draw,
            "seq2seq" | "seq2seq-noattn" | "transformer" => Family::Translate,
            "handwriting" => Family::Handwriting,
            _ => return None,
        })
    }
}

/// The checkpoint folder of `dir` (itself, or a run's `best/` or `last/`); an error naming
/// `dir` when there is none.
pub(crate) fn find(dir: &Path) -> Result<PathBuf> {
    find_dir(dir).with_context(|| format!("{}: not a checkpoint (no meta.json)", dir.display()))
}

/// The family of the checkpoint in `dir`: meta.json's `family` field, else inferred from its
/// `model` field.
pub(crate) fn family(dir: &Path) -> Result<Family> {
    let path = dir.join(META);
    if !path.is_file() {
        bail!("{}: not a checkpoint (no meta.json)", dir.display());
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    let meta: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: invalid metadata", path.display()))?;
    match (meta["family"].as_str(), meta["model"].as_str()) {
        (Some(f), _) => Family::from_name(f).with_context(|| format!("{}: unknown model family `{f}`", path.display())),
        (None, Some(m)) => Family::of_model(m).with_context(|| format!("{}: unknown model `{m}`", path.display())),
        (None, None) => bail!("{}: names neither a model family nor a model", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder holding `meta` as its meta.json.
    fn with_meta(meta: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(META), meta).unwrap();
        dir
    }

    #[test]
    fn the_family_field_wins_over_the_model() {
        let dir = with_meta(r#"{"family": "sequence", "model": "draw"}"#);
        assert_eq!(family(dir.path()).unwrap(), Family::Sequence);
    }

    #[test]
    fn every_model_of_the_committed_checkpoints_has_its_family() {
        for (want, models) in [
            (Family::Classifier, ["cnn", "mlp", "ram", "draw-classifier"].as_slice()),
            (Family::Sequence, &["ntm", "lstm", "dnc"]),
            (Family::Draw, &["draw"]),
            (Family::Translate, &["seq2seq", "seq2seq-noattn", "transformer"]),
            (Family::Handwriting, &["handwriting"]),
        ] {
            for model in models {
                let dir = with_meta(&format!(r#"{{"model": "{model}", "step": 3}}"#));
                assert_eq!(family(dir.path()).unwrap(), want, "{model}");
            }
        }
    }

    #[test]
    fn the_committed_checkpoints_are_read() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../checkpoints");
        assert_eq!(family(&root.join("ntm-copy")).unwrap(), Family::Sequence);
        assert_eq!(family(&root.join("seq2seq-dates")).unwrap(), Family::Translate);
        assert_eq!(family(&root.join("draw-cluttered100")).unwrap(), Family::Classifier);
    }

    #[test]
    fn a_folder_without_meta_is_not_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let err = family(dir.path()).unwrap_err().to_string();
        assert!(err.ends_with("not a checkpoint (no meta.json)"), "{err}");
        assert!(find(dir.path()).is_err());
    }

    #[test]
    fn unknown_models_and_families_are_named() {
        let err = family(with_meta(r#"{"model": "perceptron"}"#).path()).unwrap_err().to_string();
        assert!(err.ends_with("unknown model `perceptron`"), "{err}");
        let err = family(with_meta(r#"{"family": "oracle"}"#).path()).unwrap_err().to_string();
        assert!(err.ends_with("unknown model family `oracle`"), "{err}");
        let err = family(with_meta(r#"{"step": 3}"#).path()).unwrap_err().to_string();
        assert!(err.ends_with("names neither a model family nor a model"), "{err}");
    }

    #[test]
    fn malformed_json_is_invalid_metadata() {
        let err = family(with_meta("{\"model\": ").path()).unwrap_err().to_string();
        assert!(err.ends_with("invalid metadata"), "{err}");
    }
}
