//! The models behind the page, loaded once: each panel's checkpoints, or why one is missing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use anyhow::Result;
use glimpse::burn::tensor::Device;
use glimpse::data::Split;
use glimpse::models::Classifier;
use glimpse::models::draw::Draw;
use glimpse::models::handwriting::Handwriting;
use glimpse::train::classify::{self, ClassifierRunConfig, ImageTask};
use glimpse::train::generative::{self, DrawRunConfig};
use glimpse::train::handwriting::{self as hw, HandwritingCheckpointMeta, HandwritingRunConfig};
use glimpse::train::sequence::{self, SequenceModel, SequenceRunConfig};
use glimpse::train::translate::{self, Tokenizers, TranslateRunConfig, Translator};
use serde::Serialize;

use super::ApiError;

/// The checkpoints each panel serves, by folder name under `--checkpoints`; the first of a
/// list is the panel's default.
pub(crate) const IMPLICIT: &[&str] = &["cnn-mnist"];
/// RAM: the 28×28 model first (it reads a drawn digit), then the translated and cluttered ones.
pub(crate) const HARD: &[&str] =
    &["ram-mnist28-6g", "ram-translated60-8g", "ram-cluttered60-8g", "ram-cluttered100-8g"];
/// DRAW: the generative model.
pub(crate) const SOFT_GENERATE: &[&str] = &["draw-mnist"];
/// DRAW: the classifier on cluttered images.
pub(crate) const SOFT_CLASSIFY: &[&str] = &["draw-cluttered100"];
/// The handwriting synthesis network.
pub(crate) const LOCATION: &[&str] = &["handwriting-synthesis"];
/// The date model first, then the German→English ones.
pub(crate) const ASSOCIATIVE: &[&str] = &["seq2seq-dates", "seq2seq-de-en", "transformer-de-en"];
/// The memory models on the copy task.
pub(crate) const MEMORY: &[&str] = &["ntm-copy", "dnc-copy"];

/// One checkpoint of a panel: its name and the loaded model, or why it is not there.
pub(crate) struct Loaded<T> {
    pub(crate) name: &'static str,
    model: Result<Mutex<T>, String>,
}

/// An image classifier and its test images (read on first use: the data root may lack them).
pub(crate) struct ImageModel {
    pub(crate) cfg: ClassifierRunConfig,
    pub(crate) model: Classifier,
    root: PathBuf,
    test: OnceLock<Result<Arc<dyn ImageTask>, String>>,
}

impl ImageModel {
    /// The test set, laid out by the run's seed as `glimpse eval` lays it out.
    pub(crate) fn test(&self) -> Result<Arc<dyn ImageTask>, ApiError> {
        self.test
            .get_or_init(|| {
                self.cfg.data.load(&self.root, Split::Test, self.cfg.seed).map_err(|e| format!("no test images: {e:#}"))
            })
            .clone()
            .map_err(ApiError::unavailable)
    }
}

/// DRAW, the generative model.
pub(crate) struct DrawModel {
    pub(crate) cfg: DrawRunConfig,
    pub(crate) model: Draw,
}

/// A sequence-to-sequence model and its tokenizers.
pub(crate) struct TranslateModel {
    pub(crate) cfg: TranslateRunConfig,
    pub(crate) toks: Tokenizers,
    pub(crate) model: Translator,
}

/// The handwriting network, its pen-offset scale and its run configuration.
pub(crate) struct WriteModel {
    #[allow(dead_code)]
    pub(crate) cfg: HandwritingRunConfig,
    pub(crate) meta: HandwritingCheckpointMeta,
    pub(crate) model: Handwriting,
}

/// A memory model (NTM or DNC).
pub(crate) struct MemoryModel {
    pub(crate) cfg: SequenceRunConfig,
    pub(crate) model: SequenceModel,
}

/// Every panel's models, and the devices they run on.
pub(crate) struct Panels {
    /// Plain inference.
    pub(crate) dev: Device,
    /// Gradient-tracking, for the saliency map.
    pub(crate) autodiff: Device,
    pub(crate) implicit: Vec<Loaded<ImageModel>>,
    pub(crate) hard: Vec<Loaded<ImageModel>>,
    pub(crate) generate: Vec<Loaded<DrawModel>>,
    pub(crate) read: Vec<Loaded<ImageModel>>,
    pub(crate) location: Vec<Loaded<WriteModel>>,
    pub(crate) associative: Vec<Loaded<TranslateModel>>,
    pub(crate) memory: Vec<Loaded<MemoryModel>>,
}

/// What `/api/status` says of one checkpoint.
#[derive(Serialize)]
pub(crate) struct ModelStatus {
    pub(crate) checkpoint: &'static str,
    /// Why it is not served (absent when it is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) missing: Option<String>,
}

/// What `/api/status` says of one panel.
#[derive(Serialize)]
pub(crate) struct PanelStatus {
    /// The panel: implicit, hard, soft, location, associative or memory.
    pub(crate) panel: &'static str,
    pub(crate) models: Vec<ModelStatus>,
    /// The checkpoints served.
    pub(crate) checkpoints: Vec<&'static str>,
    /// Why the panel cannot answer at all (none of its checkpoints loaded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) missing: Option<String>,
}

/// `/api/status`: each panel, in the page's order.
#[derive(Serialize)]
pub(crate) struct Status {
    pub(crate) panels: Vec<PanelStatus>,
}

impl<T> Loaded<T> {
    /// The checkpoint `name` under `dir`, loaded by `load`; a missing folder or a failed load
    /// is kept as its reason.
    fn load(dir: &Path, name: &'static str, load: impl FnOnce(&Path) -> Result<T>) -> Self {
        let path = dir.join(name);
        let model = if !path.join(glimpse::train::checkpoint::META).is_file() {
            Err(format!("no checkpoint {name} in {}", dir.display()))
        } else {
            load(&path).map(Mutex::new).map_err(|e| format!("{name}: {e:#}"))
        };
        Self { name, model }
    }

    /// The model, locked for this request (a panic in an earlier request does not poison
    /// it: every request starts from the same weights).
    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, T>, ApiError> {
        match &self.model {
            Ok(m) => Ok(m.lock().unwrap_or_else(|p| p.into_inner())),
            Err(why) => Err(ApiError::unavailable(why.clone())),
        }
    }

    /// [`lock`](Self::lock)'s 503 without taking the lock: whether the model is loaded.
    pub(crate) fn ready(&self) -> Result<(), ApiError> {
        self.model.as_ref().map(|_| ()).map_err(|why| ApiError::unavailable(why.clone()))
    }
}

/// The checkpoint `name` of a panel (its first when `None`); 400 naming the panel's
/// checkpoints when it has no such one.
pub(crate) fn find<'a, T>(list: &'a [Loaded<T>], name: Option<&str>) -> Result<&'a Loaded<T>, ApiError> {
    let found = match name {
        None => list.first(),
        Some(n) => list.iter().find(|l| l.name == n),
    };
    found.ok_or_else(|| {
        let names: Vec<&str> = list.iter().map(|l| l.name).collect();
        ApiError::bad(format!("unknown checkpoint `{}`: this panel serves {}", name.unwrap_or(""), names.join(", ")))
    })
}

/// The model of [`find`]'s checkpoint, locked: 400 when the panel has no such checkpoint, 503
/// when it is not loaded.
pub(crate) fn pick<'a, T>(list: &'a [Loaded<T>], name: Option<&str>) -> Result<MutexGuard<'a, T>, ApiError> {
    find(list, name)?.lock()
}

/// Each of `names` under `dir`, loaded by `load`.
fn all<T>(dir: &Path, names: &[&'static str], load: impl Fn(&Path) -> Result<T>) -> Vec<Loaded<T>> {
    names.iter().map(|n| Loaded::load(dir, n, &load)).collect()
}

fn panel_status<T>(panel: &'static str, list: &[Loaded<T>]) -> PanelStatus {
    let models: Vec<ModelStatus> =
        list.iter().map(|l| ModelStatus { checkpoint: l.name, missing: l.model.as_ref().err().cloned() }).collect();
    let checkpoints: Vec<&'static str> = list.iter().filter(|l| l.model.is_ok()).map(|l| l.name).collect();
    let missing =
        checkpoints.is_empty().then(|| models.iter().filter_map(|m| m.missing.clone()).collect::<Vec<_>>().join("; "));
    PanelStatus { panel, models, checkpoints, missing }
}

impl Panels {
    /// Loads every panel's checkpoints from `dir` on the device named `device`; the test
    /// images are read from `root` when first asked for.
    pub(crate) fn load(dir: &Path, root: &Path, device: &str) -> Result<Self> {
        if !dir.is_dir() {
            anyhow::bail!("{}: no such checkpoint folder (--checkpoints)", dir.display());
        }
        let dev = glimpse::device::by_name(device)?;
        let autodiff = dev.clone().autodiff();
        let image = |on: &Device| {
            let on = on.clone();
            let root = root.to_path_buf();
            move |p: &Path| -> Result<ImageModel> {
                let (cfg, model) = classify::load_classifier(p, &on)?;
                Ok(ImageModel { cfg, model, root: root.clone(), test: OnceLock::new() })
            }
        };
        Ok(Self {
            implicit: all(dir, IMPLICIT, image(&autodiff)),
            hard: all(dir, HARD, image(&dev)),
            generate: all(dir, SOFT_GENERATE, |p| {
                let (cfg, model) = generative::load_draw(p, &dev)?;
                Ok(DrawModel { cfg, model })
            }),
            read: all(dir, SOFT_CLASSIFY, image(&dev)),
            location: all(dir, LOCATION, |p| {
                let (cfg, meta, model) = hw::load_handwriting(p, &dev)?;
                Ok(WriteModel { cfg, meta, model })
            }),
            associative: all(dir, ASSOCIATIVE, |p| {
                let (cfg, toks, model) = translate::load_translator(p, &dev)?;
                Ok(TranslateModel { cfg, toks, model })
            }),
            memory: all(dir, MEMORY, |p| {
                let (cfg, model) = sequence::load_sequence_model(p, &dev)?;
                Ok(MemoryModel { cfg, model })
            }),
            dev,
            autodiff,
        })
    }

    /// Which checkpoints each panel serves, and why any is missing.
    pub(crate) fn status(&self) -> Status {
        let mut soft = panel_status("soft", &self.generate);
        let read = panel_status("soft", &self.read);
        soft.models.extend(read.models);
        soft.checkpoints.extend(read.checkpoints);
        soft.missing = match (soft.missing, read.missing) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            _ => None,
        };
        Status {
            panels: vec![
                panel_status("implicit", &self.implicit),
                panel_status("hard", &self.hard),
                soft,
                panel_status("location", &self.location),
                panel_status("associative", &self.associative),
                panel_status("memory", &self.memory),
            ],
        }
    }
}
