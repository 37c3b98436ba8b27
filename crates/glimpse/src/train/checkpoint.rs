//! Checkpoints: a directory with the weights as safetensors, the configuration as TOML and a
//! small JSON metadata file (plus, for a resumable training state, the optimizer's state).
//!
//! A checkpoint directory is written whole into a temporary sibling and then swapped in by
//! renames ([`write_dir_atomic`]), so a run killed at any instant leaves either the previous
//! checkpoint or the new one, never a mixture.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Tensor, TensorData};

/// File names inside a checkpoint directory.
pub const WEIGHTS: &str = "model.safetensors";
/// The configuration (model and training), TOML.
pub const CONFIG: &str = "config.toml";
/// Metadata: step, epoch, metrics, RNG state; JSON.
pub const META: &str = "meta.json";
/// Optimizer state (burn's burnpack format), present in resumable training states.
pub const OPTIMIZER: &str = "optimizer.bpk";

/// Renumbers a module's parameters `0, 1, 2, …` in visiting order.
///
/// burn draws parameter ids at random, and optimizer state is keyed by them; fixed ids let a
/// resumed run (which rebuilds the model) find its optimizer state again.
pub fn number_params<M: Module>(module: M) -> M {
    struct Numberer(u64);
    impl ModuleMapper for Numberer {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (_, value, mapper) = param.consume();
            self.0 += 1;
            Param::from_mapped_value(ParamId::from(self.0 - 1), value, mapper)
        }
    }
    module.map(&mut Numberer(0))
}

/// Saves a module's weights as safetensors at `path`.
pub fn save_weights<M: Module>(module: &M, path: &Path) -> Result<()> {
    let mut store = SafetensorsStore::from_file(path).metadata("producer", "glimpse");
    module
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("writing {}", path.display()))
}

/// Loads weights saved by [`save_weights`] into `module`: every parameter must be present with
/// the right shape, and no tensor may be left over (another model's weights).
pub fn load_weights<M: Module>(module: &mut M, path: &Path) -> Result<()> {
    if !path.is_file() {
        bail!("{}: no such weights file", path.display());
    }
    let mut store = SafetensorsStore::from_file(path).allow_partial(false).validate(true);
    let result = module.load_from(&mut store).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if !result.missing.is_empty() || !result.errors.is_empty() || !result.unused.is_empty() {
        bail!(
            "{}: weights do not fit the model (missing {:?}, not the model's {:?}, errors {:?})",
            path.display(),
            result.missing,
            result.unused,
            result.errors
        );
    }
    Ok(())
}

/// The model `init` builds, its parameters numbered ([`number_params`]), with the weights saved
/// in the checkpoint `dir`: how every loader and `--resume` rebuilds a model. `init`'s draws are
/// thrown away, but they happen under the generator's lock ([`crate::device::seeded`] with
/// `seed`), so they cannot shift another thread's seeded draws (a concurrent run's or test's).
pub fn init_and_load<M: Module>(device: &Device, seed: u64, dir: &Path, init: impl FnOnce() -> M) -> Result<M> {
    let mut model = crate::device::seeded(device, seed, || number_params(init()));
    load_weights(&mut model, &dir.join(WEIGHTS))?;
    Ok(model)
}

/// The optimizer of `cfg` with the state saved in the resumable checkpoint `dir`.
pub fn load_optimizer(cfg: &crate::train::optim::OptimizerConfig, dir: &Path) -> Result<burn::optim::ModuleOptimizer> {
    let path = dir.join(OPTIMIZER);
    cfg.init().load(&path).map_err(|e| anyhow::anyhow!("{}: {e:?}", path.display()))
}

/// Writes a checkpoint directory atomically: the weights, the run's configuration as TOML, the
/// metadata as JSON, and (for a resumable state) the optimizer's state.
pub fn save_run_dir<M: Module, C: serde::Serialize, T: serde::Serialize>(
    dir: &Path,
    model: &M,
    cfg: &C,
    meta: &T,
    optim: Option<&burn::optim::ModuleOptimizer>,
) -> Result<()> {
    write_dir_atomic(dir, |tmp| {
        save_weights(model, &tmp.join(WEIGHTS))?;
        std::fs::write(tmp.join(CONFIG), toml::to_string(cfg)?)?;
        std::fs::write(tmp.join(META), serde_json::to_string_pretty(meta)?)?;
        if let Some(o) = optim {
            o.save(tmp.join(OPTIMIZER)).map_err(|e| anyhow::anyhow!("writing the optimizer state: {e}"))?;
        }
        Ok(())
    })
}

/// Writes the directory `dir` atomically: `fill` populates a temporary sibling, which is then
/// renamed into place (the previous `dir`, if any, is moved aside first and removed after).
pub fn write_dir_atomic(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = dir.file_name().context("checkpoint path has no name")?.to_string_lossy().into_owned();
    std::fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(".{name}.tmp"));
    let old = parent.join(format!(".{name}.old"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    fill(&tmp)?;
    for entry in std::fs::read_dir(&tmp)? {
        std::fs::File::open(entry?.path())?.sync_all()?;
    }
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        std::fs::rename(dir, &old)?;
    }
    std::fs::rename(&tmp, dir)?;
    std::fs::File::open(parent)?.sync_all()?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// The readable checkpoint at `dir`: `dir` itself, or the previous one left aside if a run
/// died between the two renames of [`write_dir_atomic`].
pub fn find_dir(dir: &Path) -> Option<PathBuf> {
    if dir.join(META).is_file() {
        return Some(dir.to_path_buf());
    }
    let name = dir.file_name()?.to_string_lossy().into_owned();
    let old = dir.parent()?.join(format!(".{name}.old"));
    old.join(META).is_file().then_some(old)
}

/// `model` with the weights of the checkpoint `from` (a run's `init`: a curriculum's next stage,
/// a longer run), once `compatible` has accepted the checkpoint's configuration (its error says
/// why not); the optimizer is the caller's to start afresh.
pub fn init_from<C: serde::de::DeserializeOwned, M: Module>(
    mut model: M,
    from: &Path,
    compatible: impl FnOnce(&C, &Path) -> Result<()>,
) -> Result<M> {
    let dir = find_dir(from).with_context(|| format!("init: {} is not a checkpoint (no meta.json)", from.display()))?;
    compatible(&read_config(&dir)?, &dir)?;
    load_weights(&mut model, &dir.join(WEIGHTS)).with_context(|| format!("init from {}", dir.display()))?;
    tracing::info!("initialised from {}", dir.display());
    Ok(model)
}

/// Reads `dir/config.toml` as `T`.
pub fn read_config<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<T> {
    let path = dir.join(CONFIG);
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{}: invalid configuration", path.display()))
}

/// Reads `dir/meta.json` as `T`.
pub fn read_meta<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<T> {
    let path = dir.join(META);
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: invalid metadata", path.display()))
}

/// The parameter-wise mean of `models` (of one architecture): weight averaging of checkpoints
/// that share a starting point ("model soups", Wortsman et al. 2022; Polyak averaging along
/// one run). The result has the first model's structure and parameter ids.
pub fn average_weights<M: Module>(models: &[M]) -> Result<M> {
    let Some(first) = models.first() else { bail!("nothing to average") };
    let mut sum = weight_values(first);
    for (k, m) in models.iter().enumerate().skip(1) {
        let g = weight_values(m);
        if g.len() != sum.len() || g.iter().zip(&sum).any(|(a, b)| a.0 != b.0) {
            bail!("model {k} has other parameters or shapes than model 0");
        }
        for ((_, acc), (_, v)) in sum.iter_mut().zip(&g) {
            acc.iter_mut().zip(v).for_each(|(a, b)| *a += b);
        }
    }
    let scale = 1.0 / models.len() as f32;
    struct Put(std::vec::IntoIter<(Vec<usize>, Vec<f32>)>);
    impl ModuleMapper for Put {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, value, mapper) = param.consume();
            let (shape, mean) = self.0.next().expect("one value per parameter");
            let shape: [usize; D] = shape.try_into().expect("same rank");
            let t = Tensor::<D>::from_data(TensorData::new(mean, shape), &value.device());
            Param::from_mapped_value(id, t, mapper)
        }
    }
    let means: Vec<_> = sum.into_iter().map(|(shape, v)| (shape, v.into_iter().map(|x| x * scale).collect())).collect();
    Ok(first.clone().map(&mut Put(means.into_iter())))
}

/// The training time behind a set of checkpoints, given each one's directory and recorded
/// `train_seconds`. A checkpoint records its run's cumulative time, so checkpoints of one run
/// (its `best`, `last` and `epoch-N` directories, or their `.NAME.old` copies) count once, by
/// the longest-trained of them, and separate runs add up.
pub fn combined_train_seconds(items: &[(PathBuf, f64)]) -> f64 {
    let mut per_run: Vec<(PathBuf, f64)> = Vec::new();
    for (dir, secs) in items {
        let run = run_of(dir);
        match per_run.iter_mut().find(|(r, _)| *r == run) {
            Some((_, s)) => *s = s.max(*secs),
            None => per_run.push((run, *secs)),
        }
    }
    per_run.iter().map(|(_, s)| s).sum()
}

/// The run directory a checkpoint directory belongs to: the parent of a run's `best`, `last`
/// or `epoch-N`, else the checkpoint itself (a committed, standalone checkpoint).
fn run_of(dir: &Path) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let name = name.strip_prefix('.').and_then(|n| n.strip_suffix(".old")).unwrap_or(&name);
    let in_run = name == "best"
        || name == "last"
        || name.strip_prefix("epoch-").is_some_and(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()));
    match dir.parent() {
        Some(parent) if in_run => parent.to_path_buf(),
        _ => dir.to_path_buf(),
    }
}

/// Every float parameter's shape and values, in the module's visiting order.
fn weight_values<M: Module>(module: &M) -> Vec<(Vec<usize>, Vec<f32>)> {
    struct Grab(Vec<(Vec<usize>, Vec<f32>)>);
    impl ModuleVisitor for Grab {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let v = p.val();
            self.0.push((v.dims().to_vec(), v.into_data().convert::<f32>().try_to_vec().expect("f32 weights")));
        }
    }
    let mut g = Grab(Vec::new());
    module.visit(&mut g);
    g.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::mlp::MlpConfig;
    use burn::tensor::Device;

    fn weights<M: Module>(m: &M) -> Vec<Vec<f32>> {
        weight_values(m).into_iter().map(|(_, v)| v).collect()
    }

    #[test]
    fn train_seconds_count_each_run_once() {
        let item = |p: &str, s: f64| (PathBuf::from(p), s);
        // Three epochs of one run: the last holds the others' time already.
        let one_run = [item("runs/a/epoch-4", 40.0), item("runs/a/epoch-8", 80.0), item("runs/a/last", 100.0)];
        assert_eq!(combined_train_seconds(&one_run), 100.0);
        // Two runs and a standalone checkpoint add up; a left-aside `.best.old` is its run's.
        let mixed = [
            item("runs/a/best", 60.0),
            item("runs/b/.best.old", 30.0),
            item("runs/b/epoch-2", 20.0),
            item("checkpoints/draw", 500.0),
            item("checkpoints/draw-soup", 700.0),
        ];
        assert_eq!(combined_train_seconds(&mixed), 60.0 + 30.0 + 500.0 + 700.0);
        // Not run sub-directories: `epoch-` alone, `epoch-x`, other names.
        let odd = [item("runs/c/epoch-", 1.0), item("runs/c/epoch-x", 2.0), item("runs/c/bestish", 4.0)];
        assert_eq!(combined_train_seconds(&odd), 7.0);
        assert_eq!(combined_train_seconds(&[]), 0.0);
    }

    /// A 4×4 → 5 → 3 MLP on the CPU, its configuration, and its weights numbered in order
    /// ([`number_params`]).
    fn numbered_mlp() -> (Device, MlpConfig, crate::models::mlp::Mlp) {
        let dev = Device::flex();
        let cfg = MlpConfig { input: [4, 4], hidden: vec![5], classes: 3 };
        let a = crate::device::seeded(&dev, 1, || number_params(cfg.init(&dev)));
        (dev, cfg, a)
    }

    #[test]
    fn weights_round_trip_exactly_and_ids_are_fixed() {
        let (dev, cfg, a) = numbered_mlp();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(WEIGHTS);
        save_weights(&a, &p).unwrap();
        let mut b = crate::device::seeded(&dev, 2, || number_params(cfg.init(&dev)));
        assert_ne!(weights(&a), weights(&b));
        load_weights(&mut b, &p).unwrap();
        assert_eq!(weights(&a), weights(&b));
        let ids = |m: &crate::models::mlp::Mlp| {
            struct Ids(Vec<u64>);
            impl burn::module::ModuleVisitor for Ids {
                fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                    self.0.push(p.id.val());
                }
            }
            let mut i = Ids(vec![]);
            m.visit(&mut i);
            i.0
        };
        assert_eq!(ids(&b), vec![0, 1, 2, 3]);
    }

    #[test]
    fn init_and_load_gives_the_saved_weights_whatever_the_seed() {
        let (dev, cfg, a) = numbered_mlp();
        let dir = tempfile::tempdir().unwrap();
        save_weights(&a, &dir.path().join(WEIGHTS)).unwrap();
        for seed in [1, 7] {
            let b = init_and_load(&dev, seed, dir.path(), || cfg.init(&dev)).unwrap();
            assert_eq!(weights(&b), weights(&a), "seed {seed}");
        }
        // A directory without weights, or with weights of another shape: an error naming the file.
        let empty = tempfile::tempdir().unwrap();
        let err = init_and_load(&dev, 1, empty.path(), || cfg.init(&dev)).unwrap_err().to_string();
        assert!(err.contains(WEIGHTS), "{err}");
        let wider = MlpConfig { hidden: vec![6], ..cfg.clone() };
        assert!(init_and_load(&dev, 1, dir.path(), || wider.init(&dev)).is_err());
    }

    #[test]
    fn averaging_takes_the_parameter_wise_mean_and_refuses_other_shapes() {
        let dev = Device::flex();
        let cfg = MlpConfig { input: [4, 4], hidden: vec![5], classes: 3 };
        let (a, b, c) = crate::device::seeded(&dev, 1, || {
            (number_params(cfg.init(&dev)), number_params(cfg.init(&dev)), number_params(cfg.init(&dev)))
        });
        let mean = average_weights(&[a.clone(), b.clone(), c.clone()]).unwrap();
        let (wa, wb, wc, wm) = (weights(&a), weights(&b), weights(&c), weights(&mean));
        for k in 0..wa.len() {
            for i in 0..wa[k].len() {
                let want = (wa[k][i] + wb[k][i] + wc[k][i]) / 3.0;
                assert!((wm[k][i] - want).abs() < 1e-6, "param {k}[{i}]: {} vs {want}", wm[k][i]);
            }
        }
        assert_eq!(weights(&average_weights(std::slice::from_ref(&a)).unwrap()), wa);
        let other = crate::device::seeded(&dev, 2, || {
            number_params(MlpConfig { input: [4, 4], hidden: vec![6], classes: 3 }.init(&dev))
        });
        assert!(average_weights(&[a, other]).is_err());
        assert!(average_weights::<crate::models::mlp::Mlp>(&[]).is_err());
    }

    #[test]
    fn wrong_shapes_are_refused() {
        let dev = Device::flex();
        let a = crate::device::seeded(&dev, 1, || MlpConfig { input: [4, 4], hidden: vec![5], classes: 3 }.init(&dev));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(WEIGHTS);
        save_weights(&a, &p).unwrap();
        let mut b =
            crate::device::seeded(&dev, 2, || MlpConfig { input: [4, 4], hidden: vec![6], classes: 3 }.init(&dev));
        assert!(load_weights(&mut b, &p).is_err());
        std::fs::write(&p, b"not safetensors").unwrap();
        assert!(load_weights(&mut b, &p).is_err());
    }

    #[test]
    fn atomic_dir_replaces_whole_and_survives_a_crash_between_renames() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("last");
        write_dir_atomic(&dir, |d| Ok(std::fs::write(d.join(META), "1")?)).unwrap();
        write_dir_atomic(&dir, |d| Ok(std::fs::write(d.join(META), "2")?)).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join(META)).unwrap(), "2");
        assert!(!root.path().join(".last.old").exists() && !root.path().join(".last.tmp").exists());
        // A failing fill leaves the previous checkpoint untouched.
        assert!(write_dir_atomic(&dir, |_| anyhow::bail!("disk full")).is_err());
        assert_eq!(std::fs::read_to_string(dir.join(META)).unwrap(), "2");
        // Simulate death after the first rename: only `.last.old` exists.
        std::fs::rename(&dir, root.path().join(".last.old")).unwrap();
        assert_eq!(find_dir(&dir).unwrap(), root.path().join(".last.old"));
    }
}
