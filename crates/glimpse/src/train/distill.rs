//! Knowledge distillation (Hinton, Vinyals & Dean 2015): a classifier trained on the softened
//! class probabilities of an ensemble of trained checkpoints ("teachers") as well as on the
//! labels, so that one model of the same size takes in part of what the ensemble knows.
//!
//! With temperature `T`, teacher logits `v_k` and student logits `z`:
//! - soft targets `p = mean_k softmax(v_k / T)` (the ensemble's average, eq. 1 of the paper
//!   per teacher), computed once for every training image and kept in memory (and in
//!   `OUT/soft-targets/`, so a resumed run does not compute them again);
//! - loss `(1 − α)·CE(z, y) + α·T²·KL(p ‖ softmax(z / T))`; the `T²` keeps the soft term's
//!   gradients at the scale of the hard one's as `T` changes (§2 of the paper).

use crate::defaults;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::checkpoint;

/// `[train.distill]`: the teachers and how much their soft targets weigh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillConfig {
    /// Checkpoints of trained classifiers whose averaged probabilities are the soft targets
    /// (each must read the run's images and have its number of classes).
    pub teachers: Vec<PathBuf>,
    /// Weight `α` of the soft term (the label term gets `1 − α`).
    #[serde(default = "defaults::f64::<5, 10>")]
    pub weight: f64,
    /// Temperature `T` of the softmax for both teachers and student in the soft term.
    #[serde(default = "defaults::f64::<2, 1>")]
    pub temperature: f64,
}

impl DistillConfig {
    /// A clear error for settings that make no sense.
    pub fn validate(&self) -> Result<()> {
        if self.teachers.is_empty() {
            bail!("distill: no teachers");
        }
        if !(0.0..=1.0).contains(&self.weight) {
            bail!("distill: weight = {} must be in [0, 1]", self.weight);
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            bail!("distill: temperature = {} must be positive", self.temperature);
        }
        Ok(())
    }
}

/// The soft term `T²·KL(p ‖ softmax(z / T))`, averaged over the batch.
///
/// `logits` `(B, C)` are the student's; `soft` `(B, C)` the teachers' probabilities at the
/// same temperature (rows summing to 1). Zero where the student's tempered softmax equals
/// `soft`; its gradient in `z` is `T·(softmax(z/T) − p)/B`.
pub fn soft_loss(logits: Tensor<2>, soft: Tensor<2>, temperature: f64) -> Tensor<1> {
    let [b, _] = logits.dims();
    let log_q = log_softmax(logits.div_scalar(temperature), 1); // (B, C)
    // Σ p ln p is constant in the student's weights; kept so that the loss reads as a KL.
    let entropy_term = soft.clone() * soft.clone().clamp_min(1e-12).log(); // (B, C)
    (entropy_term - soft * log_q).sum().mul_scalar(temperature * temperature / b as f64)
}

/// Soft targets `(n × classes)`, row `i` for image `i` of `task`.
#[derive(Debug, Clone)]
pub struct SoftTargets {
    /// Classes per row.
    pub classes: usize,
    /// Row-major probabilities.
    pub probs: Vec<f32>,
}

impl SoftTargets {
    /// The rows of `indices` as a `(B, classes)` tensor on `device`.
    pub fn rows(&self, indices: &[usize], device: &Device) -> Tensor<2> {
        let c = self.classes;
        let data: Vec<f32> = indices.iter().flat_map(|&i| self.probs[i * c..(i + 1) * c].iter().copied()).collect();
        Tensor::from_data(TensorData::new(data, [indices.len(), c]), device)
    }
}

/// What the cached soft targets were computed from (`soft-targets/meta.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SoftMeta {
    teachers: Vec<PathBuf>,
    temperature: f64,
    images: usize,
    classes: usize,
}

const PROBS: &str = "probs.f32";

/// The soft targets of `cfg`'s teachers on `images` images: read from `cache` when it holds
/// those of the same teachers, temperature and number of images, else the mean of
/// `probabilities_of(teacher)` (row-major `(images × classes)`) over the teachers, written to
/// `cache` atomically.
pub fn soft_targets(
    cfg: &DistillConfig,
    images: usize,
    classes: usize,
    cache: &Path,
    mut probabilities_of: impl FnMut(&Path) -> Result<Vec<f32>>,
) -> Result<SoftTargets> {
    cfg.validate()?;
    let want = SoftMeta { teachers: cfg.teachers.clone(), temperature: cfg.temperature, images, classes };
    if let Some(found) = read_cache(cache, &want)? {
        tracing::info!("soft targets read from {}", cache.display());
        return Ok(found);
    }
    let mut probs = vec![0f32; images * classes];
    let t0 = std::time::Instant::now();
    for (k, dir) in cfg.teachers.iter().enumerate() {
        let p = probabilities_of(dir)?;
        if p.len() != probs.len() {
            bail!("distill: teacher {} gave {} probabilities, expected {}", dir.display(), p.len(), probs.len());
        }
        probs.iter_mut().zip(&p).for_each(|(s, v)| *s += v / cfg.teachers.len() as f32);
        tracing::info!(
            "soft targets: teacher {}/{} ({}) done, {:.0} s",
            k + 1,
            cfg.teachers.len(),
            dir.display(),
            t0.elapsed().as_secs_f64()
        );
    }
    checkpoint::write_dir_atomic(cache, |tmp| {
        let bytes: Vec<u8> = probs.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(tmp.join(PROBS), bytes)?;
        std::fs::write(tmp.join(checkpoint::META), serde_json::to_string_pretty(&want)?)?;
        Ok(())
    })?;
    Ok(SoftTargets { classes, probs })
}

/// The cached targets in `dir` if they were computed for `want`; `None` when absent or for
/// other settings; an error when the cache is damaged.
fn read_cache(dir: &Path, want: &SoftMeta) -> Result<Option<SoftTargets>> {
    let Ok(text) = std::fs::read_to_string(dir.join(checkpoint::META)) else {
        return Ok(None);
    };
    let found: SoftMeta = serde_json::from_str(&text).with_context(|| format!("{}: bad meta.json", dir.display()))?;
    if found != *want {
        tracing::info!("soft targets in {} are of other teachers or data: computing them again", dir.display());
        return Ok(None);
    }
    let bytes = std::fs::read(dir.join(PROBS)).with_context(|| format!("{}: no {PROBS}", dir.display()))?;
    if bytes.len() != want.images * want.classes * 4 {
        bail!("{}: {PROBS} holds {} bytes, expected {}", dir.display(), bytes.len(), want.images * want.classes * 4);
    }
    let probs = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok(Some(SoftTargets { classes: want.classes, probs }))
}

/// The combined loss `(1 − α)·hard + α·soft` of a batch.
pub fn combine(hard: Tensor<1>, soft: Tensor<1>, weight: f64) -> Tensor<1> {
    hard.mul_scalar(1.0 - weight) + soft.mul_scalar(weight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tensor as t2;
    use crate::testing::{grad_check, uniform};
    use burn::tensor::Int;

    fn labels(y: &[i64], device: &Device) -> Tensor<1, Int> {
        Tensor::from_data(TensorData::new(y.to_vec(), [y.len()]), device)
    }

    fn probs_of(logits: &[f32], rows: usize, t: f32) -> Vec<f32> {
        let c = logits.len() / rows;
        logits
            .chunks(c)
            .flat_map(|r| {
                let m = r.iter().cloned().fold(f32::MIN, f32::max);
                let e: Vec<f32> = r.iter().map(|v| ((v - m) / t).exp()).collect();
                let s: f32 = e.iter().sum();
                e.into_iter().map(move |v| v / s)
            })
            .collect()
    }

    #[test]
    fn soft_loss_is_zero_at_the_teacher_and_positive_elsewhere() {
        let d = Device::flex();
        let z = uniform(12, -3.0, 3.0, 1);
        let p = probs_of(&z, 3, 2.0);
        let at: f32 = soft_loss(t2(z.clone(), [3, 4], &d), t2(p.clone(), [3, 4], &d), 2.0).into_scalar();
        assert!(at.abs() < 1e-5, "KL at the teacher's own logits: {at}");
        let other = uniform(12, -3.0, 3.0, 2);
        let away: f32 = soft_loss(t2(other, [3, 4], &d), t2(p, [3, 4], &d), 2.0).into_scalar();
        assert!(away > 1e-3, "KL away from the teacher: {away}");
    }

    #[test]
    fn soft_loss_at_temperature_one_with_one_hot_targets_is_cross_entropy() {
        let d = Device::flex();
        let z = uniform(8, -2.0, 2.0, 3);
        let y = [2i64, 0];
        let one_hot: Vec<f32> = (0..8).map(|i| if i % 4 == y[i / 4] as usize { 1.0 } else { 0.0 }).collect();
        let soft: f32 = soft_loss(t2(z.clone(), [2, 4], &d), t2(one_hot, [2, 4], &d), 1.0).into_scalar();
        let ce: f32 = burn::nn::loss::CrossEntropyLossConfig::new()
            .init(&d)
            .forward(t2(z, [2, 4], &d), labels(&y, &d))
            .into_scalar();
        assert!((soft - ce).abs() < 1e-5, "{soft} vs {ce}");
    }

    #[test]
    fn soft_loss_gradient_matches_finite_differences() {
        let z = uniform(12, -2.0, 2.0, 4);
        let p = probs_of(&uniform(12, -2.0, 2.0, 5), 3, 1.0);
        grad_check(&[z], 1e-2, 2e-2, |xs| {
            let d = xs[0].device();
            soft_loss(xs[0].clone().reshape([3, 4]), t2(p.clone(), [3, 4], &d), 3.0)
        });
    }

    #[test]
    fn rows_gathers_the_requested_images() {
        let t = SoftTargets { classes: 2, probs: vec![0.1, 0.9, 0.2, 0.8, 0.3, 0.7] };
        let r: Vec<f32> = t.rows(&[2, 0], &Device::flex()).into_data().try_to_vec().unwrap();
        assert_eq!(r, vec![0.3, 0.7, 0.1, 0.9]);
    }

    #[test]
    fn bad_settings_and_damaged_caches_are_clear_errors() {
        let base = DistillConfig { teachers: vec!["a".into()], weight: 0.5, temperature: 2.0 };
        assert!(DistillConfig { teachers: vec![], ..base.clone() }.validate().is_err());
        assert!(DistillConfig { weight: 1.5, ..base.clone() }.validate().is_err());
        assert!(DistillConfig { temperature: 0.0, ..base.clone() }.validate().is_err());
        assert!(base.validate().is_ok());

        let dir = tempfile::tempdir().unwrap();
        let want = SoftMeta { teachers: vec!["a".into()], temperature: 2.0, images: 3, classes: 2 };
        assert!(read_cache(dir.path(), &want).unwrap().is_none(), "no cache yet");
        std::fs::write(dir.path().join(checkpoint::META), serde_json::to_string(&want).unwrap()).unwrap();
        std::fs::write(dir.path().join(PROBS), [0u8; 10]).unwrap();
        let err = read_cache(dir.path(), &want).unwrap_err().to_string();
        assert!(err.contains("expected 24"), "{err}");
        let other = SoftMeta { temperature: 3.0, ..want.clone() };
        assert!(read_cache(dir.path(), &other).unwrap().is_none(), "other settings: computed again");
        std::fs::write(dir.path().join(PROBS), 1f32.to_le_bytes().repeat(6)).unwrap();
        assert_eq!(read_cache(dir.path(), &want).unwrap().unwrap().probs, vec![1.0; 6]);
    }
}
