//! The training engine: one loop for every family of models.
//!
//! A family ([`Family`]) says how to take one step on one batch, how to validate, and what its
//! checkpoints' metadata and its summary hold. The engine does the rest, the same way for all:
//! a fresh start or a resume from `out/last` ([`start`]), the learning-rate schedule, the
//! training log (`metrics.jsonl`, TensorBoard, the progress bar, or one line per log step when
//! stderr is not a terminal), validation on a cadence ([`super::cadence`]) keeping the best
//! weights in `out/best`, early stopping, and atomic resumable checkpoints in `out/last`.
//!
//! What makes a run repeatable lives in the family's step (its random streams are its
//! [`Family::State`], saved with every checkpoint); the engine adds no randomness, so the same
//! seed gives the same loss curve, and a run killed and resumed ends with the weights of the
//! uninterrupted one.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::checkpoint;
use super::config::TrainConfig;
use super::metrics::MetricsLog;
use crate::rng::Rng;
use crate::run::RunOptions;

/// A run's configuration, as saved in its checkpoints' `config.toml`.
pub trait RunConfig: Serialize + DeserializeOwned + Clone + PartialEq {
    /// The seed of every random draw.
    fn seed(&self) -> u64;
    /// The `[train]` section.
    fn train(&self) -> &TrainConfig;
    /// The `[train]` section, to change.
    fn train_mut(&mut self) -> &mut TrainConfig;
    /// The configuration as its author wrote it, to compare a resume's with the run's: what a
    /// run fills in for itself (a translator's vocabulary sizes) cleared.
    fn as_written(&self) -> Self {
        self.clone()
    }
}

/// What a resume may change (dotted keys and the tables below them): the run's length, its
/// spread over threads, its schedule (a function of the step), and how often it logs and
/// checkpoints. Any other difference would change what the run computes, and is refused.
pub const RESUMABLE: &[&str] =
    &["train.steps", "train.epochs", "train.shards", "train.schedule", "train.log_every", "train.checkpoint_every"];

/// Where a step falls in the run.
#[derive(Debug, Clone, Copy)]
pub struct At {
    /// Steps taken before this one.
    pub step: u64,
    /// The epoch (from 0) and the batch within it, for a family with epochs.
    pub epoch: Option<(usize, usize)>,
}

/// The examples of each epoch in a seeded order (`Rng::derive(seed, "epoch", epoch)`), drawn
/// when the epoch's first batch is asked for, so that a resumed run draws the order it was in.
#[derive(Debug, Default)]
pub struct EpochOrder {
    current: Option<(usize, Vec<usize>)>,
}

impl EpochOrder {
    /// The indices of batch `b` of `epoch` over `n` examples, `batch_size` a batch (the last
    /// batch of an epoch may be short).
    pub fn batch(&mut self, seed: u64, n: usize, batch_size: usize, (epoch, b): (usize, usize)) -> &[usize] {
        if self.current.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.current = Some((epoch, Rng::derive(seed, "epoch", epoch as u64).permutation(n)));
        }
        let order = &self.current.as_ref().expect("just set").1;
        &order[b * batch_size..((b + 1) * batch_size).min(n)]
    }
}

/// What one step measured, for the training log: `sums` are totals over the step's `count`
/// examples (the log shows them divided by the examples since the last log line), `extra` are
/// values of the moment (the log shows the last step's).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Examples (or points, or tokens) the sums are over.
    pub count: usize,
    /// Named totals.
    pub sums: Vec<(&'static str, f64)>,
    /// Named values of the moment.
    pub extra: Vec<(&'static str, f64)>,
}

/// What one validation found.
pub struct Validation<M> {
    /// The score the best weights are chosen by ([`Family::improves`]).
    pub score: f64,
    /// The metrics to log.
    pub values: Vec<(&'static str, f64)>,
    /// One line for the terminal.
    pub line: String,
    /// The metadata of these weights, should they be the best.
    pub meta: M,
    /// Why the run should stop here, if it should.
    pub stop: Option<String>,
}

/// The engine's resumable progress (`last/meta.json`) with the family's own `state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Progress<S> {
    /// Optimizer steps taken.
    pub step: u64,
    /// The best validation score and its step.
    pub best: Option<(f64, u64)>,
    /// Validations since the best one.
    pub stale: usize,
    /// Whether the run has ended early (a stop criterion, or patience).
    pub stopped: bool,
    /// Seconds of training so far, summed across resumes.
    pub train_seconds: f64,
    /// The family's random streams and whatever else it carries across a resume.
    pub state: S,
    /// The data files the run read, as they were when it started ([`Family::data_files`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<DataFile>,
}

/// A data file a run read: its path, size and SHA-256 when the run started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Lower-case hex SHA-256 of its bytes.
    pub sha256: String,
}

impl DataFile {
    /// The file at `path` as it is now.
    pub fn read(path: &Path) -> Result<Self> {
        use sha2::Digest;
        let mut file = std::fs::File::open(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let mut hash = sha2::Sha256::new();
        let bytes = std::io::copy(&mut file, &mut hash).with_context(|| format!("{}: cannot read", path.display()))?;
        let sha256 = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self { path: path.to_path_buf(), bytes, sha256 })
    }
}

/// Refuses a resume whose data files are not those the run started on (`saved`): another file
/// under the same name would make the resumed run another run.
fn check_data(saved: &[DataFile]) -> Result<()> {
    for was in saved {
        let now = DataFile::read(&was.path).with_context(|| "--resume: a data file of the run is gone")?;
        if now != *was {
            bail!(
                "{}: changed since the run started ({} bytes, SHA-256 {}…; now {} bytes, {}…): resuming would \
                 train on other data; restore the file, or start a new run",
                was.path.display(),
                was.bytes,
                &was.sha256[..12],
                now.bytes,
                &now.sha256[..12]
            );
        }
    }
    Ok(())
}

/// One family of models, as the engine trains it.
pub trait Family {
    /// The run's configuration.
    type Config: RunConfig;
    /// The model (on the autodiff device).
    type Model: Module + Sync;
    /// What the family carries across a resume: its random streams.
    type State: Serialize + DeserializeOwned + Clone;
    /// The metadata of the best checkpoint (`best/meta.json`).
    type Meta: Serialize;
    /// What a finished run reports.
    type Summary;

    /// meta.json's `family`, which `glimpse eval` and `viz` dispatch on.
    const NAME: &'static str;
    /// What the training rate counts (`samples`, `sequences`, `tokens`, …): the log's
    /// `<unit>_per_s`.
    const UNIT: &'static str;

    /// The run's configuration (the saved one when resuming).
    fn config(&self) -> &Self::Config;
    /// Batches in an epoch; `None` when the data are generated afresh and a run has no epochs.
    fn batches_per_epoch(&self) -> Option<usize>;
    /// A model built from the configuration (its weights drawn by the seeded generator).
    fn init(&self, device: &Device) -> Self::Model;
    /// The random streams of a fresh run.
    fn fresh_state(&self) -> Self::State;
    /// Whether the checkpoint `dir`, of configuration `theirs`, can start this run (`init`).
    fn compatible(&self, theirs: &Self::Config, dir: &Path) -> Result<()>;
    /// One optimizer step on the batch of step `at` at rate `lr`: the stepped model and what it
    /// measured. A non-finite loss must stop the run before the weights change.
    fn step(
        &mut self,
        model: Self::Model,
        optim: &mut ModuleOptimizer,
        lr: f64,
        state: &mut Self::State,
        at: At,
    ) -> Result<(Self::Model, Tally)>;
    /// Validates `model` (without autodiff) after `run.step` steps.
    fn validate(&mut self, model: &Self::Model, run: &mut Progress<Self::State>) -> Result<Validation<Self::Meta>>;
    /// Whether `score` is better than `best` (lower is better, unless the family says otherwise).
    fn improves(&self, score: f64, best: f64) -> bool {
        score < best
    }
    /// The files the run's data are read from, fingerprinted when it starts and checked when it
    /// resumes (none for data generated afresh).
    fn data_files(&self) -> Vec<PathBuf> {
        Vec::new()
    }
    /// Files a checkpoint holds beyond weights, configuration and metadata (a translator's
    /// tokenizers), written into the checkpoint's temporary folder `dir`.
    fn save_extra(&self, _dir: &Path) -> Result<()> {
        Ok(())
    }
    /// The report of a finished run whose best checkpoint is `best`.
    fn finish(&mut self, run: &Progress<Self::State>, best: PathBuf, log: &mut MetricsLog) -> Result<Self::Summary>;
}

/// A run about to start: its configuration (the saved one when resuming), the checkpoint it
/// resumes from, and the training device.
pub struct Start<C> {
    /// The configuration to train with.
    pub cfg: C,
    /// `out/last` when resuming.
    pub resume: Option<PathBuf>,
    /// The device, with autodiff.
    pub device: Device,
}

/// Resolves a run's configuration: `given`, or when resuming the one saved in `out/last`, which
/// a resume may lengthen (`steps`, `epochs`), spread differently over threads (`shards`), give
/// another schedule (a function of the step: one that agrees with the old up to the current
/// step keeps the run's history true) and log or checkpoint at another pace ([`RESUMABLE`]). A
/// resume whose configuration differs in any other key is refused, the keys named: it would not
/// continue the run it names.
pub fn start<C: RunConfig>(given: &C, opts: &RunOptions) -> Result<Start<C>> {
    if given.train().batch_size == 0 {
        bail!("batch_size must be positive");
    }
    let device = crate::device::by_name(&opts.device)?.autodiff();
    let last = opts.out.join("last");
    let Some(dir) = checkpoint::find_dir(&last).filter(|_| opts.resume) else {
        if opts.resume {
            tracing::warn!("--resume: no checkpoint in {}, starting afresh", last.display());
        }
        return Ok(Start { cfg: given.clone(), resume: None, device });
    };
    let mut cfg: C = checkpoint::read_config(&dir)?;
    let (saved, asked) = (cfg.train_mut(), given.train());
    saved.steps = saved.steps.max(asked.steps);
    saved.epochs = saved.epochs.max(asked.epochs);
    saved.shards = asked.shards;
    saved.schedule = asked.schedule.clone();
    (saved.log_every, saved.checkpoint_every) = (asked.log_every, asked.checkpoint_every);
    let resumable = |k: &&str| RESUMABLE.iter().any(|r| k == r || k.starts_with(&format!("{r}.")));
    let differ = differing_keys(&cfg.as_written(), &given.as_written());
    let changed: Vec<&str> = differ.split(", ").filter(|k| !k.is_empty() && !resumable(k)).collect();
    if !changed.is_empty() {
        bail!(
            "--resume: the configuration differs from the run's ({}) in {}, which would change its result; resume \
             with the run's configuration (without --config, or with that file), or start a new run in another --out",
            dir.join(checkpoint::CONFIG).display(),
            changed.join(", ")
        );
    }
    Ok(Start { cfg, resume: Some(dir), device })
}

/// The dotted keys whose values differ between two configurations, comma-separated.
fn differing_keys<C: Serialize>(a: &C, b: &C) -> String {
    fn flat(prefix: &str, v: &toml::Value, out: &mut Vec<(String, String)>) {
        match v {
            toml::Value::Table(t) => t.iter().for_each(|(k, v)| flat(&format!("{prefix}{k}."), v, out)),
            other => out.push((prefix.trim_end_matches('.').to_string(), other.to_string())),
        }
    }
    let keys = |c: &C| {
        let mut out = Vec::new();
        if let Ok(v) = toml::Value::try_from(c) {
            flat("", &v, &mut out);
        }
        out
    };
    let (ka, kb) = (keys(a), keys(b));
    let mut differ: Vec<&str> = ka.iter().filter(|p| !kb.contains(p)).map(|(k, _)| k.as_str()).collect();
    differ.extend(kb.iter().filter(|p| !ka.contains(p)).map(|(k, _)| k.as_str()));
    differ.sort();
    differ.dedup();
    differ.join(", ")
}

/// Writes a checkpoint atomically: weights, configuration, `meta` with the family's name, the
/// family's extra files, and (for a resumable state) the optimizer's state.
fn save<F: Family>(
    family: &F,
    dir: &Path,
    model: &F::Model,
    meta: &impl Serialize,
    optim: Option<&ModuleOptimizer>,
) -> Result<()> {
    /// `meta` with the family's name first (each value serialised as its own type, so an `f32`
    /// reads as written).
    #[derive(Serialize)]
    struct Named<'a, M: Serialize> {
        family: &'static str,
        #[serde(flatten)]
        meta: &'a M,
    }
    let meta = Named { family: F::NAME, meta };
    checkpoint::write_dir_atomic(dir, |tmp| {
        checkpoint::save_weights(model, &tmp.join(checkpoint::WEIGHTS))?;
        std::fs::write(tmp.join(checkpoint::CONFIG), toml::to_string(family.config())?)?;
        std::fs::write(tmp.join(checkpoint::META), serde_json::to_string_pretty(&meta)?)?;
        family.save_extra(tmp)?;
        if let Some(o) = optim {
            o.save(tmp.join(checkpoint::OPTIMIZER)).map_err(|e| anyhow::anyhow!("writing the optimizer state: {e}"))?;
        }
        Ok(())
    })
}

/// The lock file of a run folder.
pub const LOCK: &str = "glimpse.lock";

/// A run folder held by one run for as long as it trains: an operating-system lock on
/// `out/glimpse.lock`, released when the run ends however it ends (a crash or `kill -9`
/// included, so a lock is never left stale).
#[derive(Debug)]
pub struct RunFolder {
    _lock: std::fs::File,
}

impl RunFolder {
    /// Takes `out` for a run: refused while another run holds it, and when it already holds a
    /// run (a checkpoint or a log) that this one neither resumes nor replaces (`force`: its
    /// checkpoints, log and TensorBoard files are removed first).
    pub fn claim(out: &Path, resuming: bool, force: bool) -> Result<Self> {
        std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create the run folder", out.display()))?;
        let path = out.join(LOCK);
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "{}: another run is training in this folder (it holds {}); wait for it to end, or give another --out",
                out.display(),
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("{}: cannot lock", path.display()));
            }
        }
        let held: Vec<&str> = ["last", "best", "metrics.jsonl"].into_iter().filter(|f| out.join(f).exists()).collect();
        if !held.is_empty() && !resuming {
            if !force {
                bail!(
                    "{} already holds a run ({}): --resume continues it, --force starts afresh over it (replacing its \
                     checkpoints and log), or give another --out",
                    out.display(),
                    held.join(", ")
                );
            }
            tracing::warn!("--force: replacing the run in {}", out.display());
            for dir in ["last", "best", "tb"].map(|d| out.join(d)).into_iter().filter(|d| d.exists()) {
                std::fs::remove_dir_all(&dir).with_context(|| format!("{}: cannot remove", dir.display()))?;
            }
            let log = out.join("metrics.jsonl");
            if log.exists() {
                std::fs::remove_file(&log).with_context(|| format!("{}: cannot remove", log.display()))?;
            }
        }
        Ok(Self { _lock: file })
    }
}

/// The training log's running totals between two log lines.
struct Window {
    count: usize,
    sums: Vec<(&'static str, f64)>,
    extra: Vec<(&'static str, f64)>,
    since: Instant,
}

impl Window {
    fn new() -> Self {
        Self { count: 0, sums: Vec::new(), extra: Vec::new(), since: Instant::now() }
    }

    fn add(&mut self, t: Tally) {
        if self.sums.is_empty() {
            self.sums = t.sums.iter().map(|&(k, _)| (k, 0.0)).collect();
        }
        for ((_, total), (_, v)) in self.sums.iter_mut().zip(&t.sums) {
            *total += v;
        }
        self.count += t.count;
        self.extra = t.extra;
    }

    /// The means since the last line, and the rate in counts per second.
    fn means(&self) -> (Vec<(&'static str, f64)>, f64) {
        let n = self.count.max(1) as f64;
        let means = self.sums.iter().map(|&(k, s)| (k, s / n)).collect();
        (means, self.count as f64 / self.since.elapsed().as_secs_f64())
    }
}

/// `1h 02m`, `3m 07s` or `12s`.
fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

/// The 1-based epoch step `step` falls in (`None` without epochs), as the log and the closing
/// line number it.
fn epoch_of(step: u64, per_epoch: Option<usize>) -> Option<usize> {
    per_epoch.map(|b| (step as usize).div_ceil(b.max(1)))
}

/// Prints a line above the progress bar, or on stderr when there is no bar to draw but
/// progress was asked for (stderr is not a terminal).
fn say(bar: &ProgressBar, progress: bool, line: &str) {
    if !bar.is_hidden() {
        bar.println(line);
    } else if progress {
        eprintln!("{line}");
    }
}

/// Trains `family` from `resume` (or afresh) on `device` as `opts` says, then reports.
pub fn run<F: Family>(mut family: F, resume: Option<&Path>, device: &Device, opts: &RunOptions) -> Result<F::Summary> {
    let cfg = family.config().clone();
    let t = cfg.train().clone();
    let per_epoch = family.batches_per_epoch();
    let by_epochs = t.steps.is_none();
    let total = t.total_steps(per_epoch.unwrap_or(0));
    let (last_dir, best_dir) = (opts.out.join("last"), opts.out.join("best"));
    let _folder = RunFolder::claim(&opts.out, opts.resume, opts.force)?;

    let (mut model, mut optim, mut run) = match resume {
        Some(dir) => {
            let model = checkpoint::init_and_load(device, cfg.seed(), dir, || family.init(device))?;
            let optim = checkpoint::load_optimizer(&t.optimizer, dir)?;
            let run: Progress<F::State> = checkpoint::read_meta(dir)?;
            check_data(&run.data)?;
            tracing::info!("resuming from step {}", run.step);
            (model, optim, run)
        }
        None => {
            // The weights are drawn on the CPU whatever the device, so a seed gives the same
            // starting weights on every device (burn's generators differ between backends).
            let host = crate::device::host(device);
            let mut model = crate::device::seeded(&host, cfg.seed(), || checkpoint::number_params(family.init(&host)));
            if host != *device {
                model = model.fork(device);
            }
            if let Some(from) = &t.init {
                model = checkpoint::init_from(model, from, |theirs: &F::Config, dir| family.compatible(theirs, dir))?;
            }
            let state = family.fresh_state();
            let data = family.data_files().iter().map(|p| DataFile::read(p)).collect::<Result<_>>()?;
            let run = Progress { step: 0, best: None, stale: 0, stopped: false, train_seconds: 0.0, state, data };
            (model, t.optimizer.init(), run)
        }
    };
    let mut log = MetricsLog::open(&opts.out, Some(run.step).filter(|_| opts.resume))?;

    let bar = if opts.progress { ProgressBar::new(total) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({eta})").unwrap().progress_chars("=> "),
    );
    bar.set_position(run.step);
    let where_ = |step: u64| match (epoch_of(step, per_epoch), t.epochs) {
        (Some(e), Some(n)) if by_epochs => format!("step {step}/{total} (epoch {e}/{n})"),
        _ => format!("step {step}/{total}"),
    };
    let (began, first_step) = (Instant::now(), run.step);
    let mut clock = Instant::now();
    let mut window = Window::new();
    while run.step < total && !run.stopped {
        let at = At { step: run.step, epoch: per_epoch.map(|b| (run.step as usize / b, run.step as usize % b)) };
        if let Some((e, _)) = at.epoch.filter(|_| by_epochs) {
            bar.set_prefix(format!("epoch {}/{}", e + 1, t.epochs.unwrap_or(0)));
        }
        let lr = t.schedule.lr(t.lr, run.step as usize);
        let tally;
        (model, tally) = family.step(model, &mut optim, lr, &mut run.state, at)?;
        run.step += 1;
        window.add(tally);
        bar.inc(1);
        if opts.throttle_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(opts.throttle_ms));
        }
        if run.step.is_multiple_of(t.log_every.max(1) as u64) {
            let (means, rate) = window.means();
            let shown: Vec<String> = means.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
            let rate_key = format!("{}_per_s", F::UNIT);
            let mut values = means.clone();
            values.extend([("lr", lr), (rate_key.as_str(), rate)]);
            values.extend(window.extra.iter().copied());
            log.log("train", run.step, epoch_of(run.step, per_epoch), &values)?;
            let message = format!("{}, {rate:.0} {}/s", shown.join(", "), F::UNIT);
            bar.set_message(message.clone());
            if bar.is_hidden() && opts.progress && !std::io::stderr().is_terminal() {
                let done = (run.step - first_step) as f64;
                let eta = began.elapsed().as_secs_f64() / done * (total - run.step) as f64;
                eprintln!("{}: {message}, ETA {}", where_(run.step), duration(eta));
            }
            window = Window::new();
        }
        let epoch_end = by_epochs && per_epoch.is_some_and(|b| run.step.is_multiple_of(b as u64));
        let (validating, checkpointing) =
            super::cadence(run.step, epoch_end || run.step == total, t.valid_every, t.checkpoint_every);
        if checkpointing {
            run.train_seconds += clock.elapsed().as_secs_f64();
            clock = Instant::now();
        }
        if validating {
            let v = family.validate(&model.valid(), &mut run)?;
            log.log("valid", run.step, epoch_of(run.step, per_epoch), &v.values)?;
            say(&bar, opts.progress, &format!("{}: valid {}", where_(run.step), v.line));
            if run.best.is_none_or(|(b, _)| family.improves(v.score, b)) {
                run.best = Some((v.score, run.step));
                run.stale = 0;
                save(&family, &best_dir, &model, &v.meta, None)?;
            } else {
                run.stale += 1;
                if let Some(p) = t.patience.filter(|&p| p > 0 && run.stale >= p) {
                    say(&bar, opts.progress, &format!("early stop: no better validation score for {p} validations"));
                    run.stopped = true;
                }
            }
            if let Some(why) = v.stop {
                say(&bar, opts.progress, &format!("stop: {why}"));
                run.stopped = true;
            }
        }
        if checkpointing {
            save(&family, &last_dir, &model, &run, Some(&optim))?;
        }
    }
    bar.finish_and_clear();
    let best = checkpoint::find_dir(&best_dir).context("no best checkpoint was written")?;
    family.finish(&run, best, &mut log)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run folder is held by one run at a time and free again once it ends; a folder that
    /// holds a run is refused unless resumed, or replaced with `force`.
    #[test]
    fn a_run_folder_is_held_by_one_run_and_a_finished_run_is_not_overwritten() {
        let out = tempfile::tempdir().unwrap();
        let first = RunFolder::claim(out.path(), false, false).unwrap();
        let err = RunFolder::claim(out.path(), true, false).unwrap_err().to_string();
        assert!(err.contains("another run is training in this folder"), "{err}");
        drop(first);
        std::fs::create_dir(out.path().join("best")).unwrap();
        std::fs::write(out.path().join("metrics.jsonl"), "{}\n").unwrap();
        std::fs::write(out.path().join("soft-targets"), "kept").unwrap();
        let err = RunFolder::claim(out.path(), false, false).unwrap_err().to_string();
        assert!(err.contains("already holds a run (best, metrics.jsonl)") && err.contains("--force"), "{err}");
        drop(RunFolder::claim(out.path(), true, false).unwrap());
        drop(RunFolder::claim(out.path(), false, true).unwrap());
        assert!(!out.path().join("best").exists() && !out.path().join("metrics.jsonl").exists());
        assert!(out.path().join("soft-targets").exists(), "only the run's checkpoints and log go");
    }

    #[test]
    fn epochs_count_from_one_and_durations_read_short() {
        assert_eq!(epoch_of(0, Some(10)), Some(0));
        assert_eq!(epoch_of(1, Some(10)), Some(1));
        assert_eq!(epoch_of(10, Some(10)), Some(1));
        assert_eq!(epoch_of(11, Some(10)), Some(2));
        assert_eq!(epoch_of(11, None), None);
        assert_eq!(duration(7.4), "7s");
        assert_eq!(duration(187.0), "3m 07s");
        assert_eq!(duration(3720.0), "1h 02m");
    }

    /// Two configurations differ in the dotted keys named, and only those.
    #[test]
    fn differing_keys_names_each_changed_key() {
        #[derive(Serialize, Clone)]
        struct C {
            seed: u64,
            train: std::collections::BTreeMap<String, f64>,
        }
        let a = C { seed: 1, train: [("lr".to_string(), 0.1), ("x".to_string(), 1.0)].into() };
        let mut b = a.clone();
        assert_eq!(differing_keys(&a, &b), "");
        b.train.insert("lr".into(), 0.2);
        b.seed = 2;
        assert_eq!(differing_keys(&a, &b), "seed, train.lr");
    }
}
