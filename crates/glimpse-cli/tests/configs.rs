//! Every recipe in `configs/` runs from a clean clone (issue 30): it parses with the trainer's
//! own configuration type, and every path it names (`init`, distillation `teachers`, any other
//! string that looks like a path) is a committed checkpoint under `checkpoints/`. And
//! `configs/` and `checkpoints/` match one to one, but for the listed exceptions.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use glimpse::train::classify::ClassifierRunConfig;
use glimpse::train::generative::DrawRunConfig;
use glimpse::train::handwriting::HandwritingRunConfig;
use glimpse::train::sequence::SequenceRunConfig;
use glimpse::train::translate::TranslateRunConfig;

/// Recipes whose result is a figure, not a committed checkpoint (they train in minutes).
const RECIPES_WITHOUT_CHECKPOINT: [&str; 3] = ["mlp-mnist", "mlp-fashion-mnist", "cnn-fashion-mnist"];

/// Committed checkpoints without a `configs/<name>.toml` (none today).
const CHECKPOINTS_WITHOUT_RECIPE: [&str; 0] = [];

/// The most a committed checkpoint directory may hold.
const MAX_CHECKPOINT_BYTES: u64 = 20 << 20;

/// The files of a committed checkpoint.
const CHECKPOINT_FILES: [&str; 3] = ["model.safetensors", "config.toml", "meta.json"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The names (file stems) of the entries of `dir` ending in `ext` ("" for directories).
fn names(dir: &Path, ext: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        let keep = if ext.is_empty() { p.is_dir() } else { p.extension().is_some_and(|x| x == ext) };
        if keep {
            out.insert(p.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    out
}

/// Parses `text` with the configuration type of the trainer the recipe `name` is for (the
/// `glimpse train MODEL` its first lines name; the families are told apart by the file name)
/// and returns the paths that type reads (`init`, distillation teachers).
fn typed_paths(name: &str, text: &str) -> Result<Vec<PathBuf>, String> {
    let err = |e: toml::de::Error| format!("{name}: {e}");
    if ["mlp-", "cnn-", "ram-", "draw-cluttered"].iter().any(|p| name.starts_with(p)) {
        let c: ClassifierRunConfig = toml::from_str(text).map_err(err)?;
        let teachers = c.train.distill.map(|d| d.teachers).unwrap_or_default();
        Ok(c.train.init.into_iter().chain(teachers).collect())
    } else if ["ntm-", "dnc-", "lstm-"].iter().any(|p| name.starts_with(p)) {
        let c: SequenceRunConfig = toml::from_str(text).map_err(err)?;
        Ok(c.train.init.into_iter().collect())
    } else if name.starts_with("draw-") {
        toml::from_str::<DrawRunConfig>(text).map_err(err)?;
        Ok(vec![])
    } else if ["seq2seq-", "transformer-"].iter().any(|p| name.starts_with(p)) {
        toml::from_str::<TranslateRunConfig>(text).map_err(err)?;
        Ok(vec![])
    } else if name.starts_with("handwriting-") {
        toml::from_str::<HandwritingRunConfig>(text).map_err(err)?;
        Ok(vec![])
    } else {
        Err(format!("{name}: no trainer known for this name"))
    }
}

/// Every string value of `v` (at any depth) that looks like a path: it holds a `/`, or starts
/// with `runs` or `checkpoints`.
fn path_like(v: &toml::Value, out: &mut Vec<PathBuf>) {
    match v {
        toml::Value::String(s) if s.contains('/') || s.starts_with("runs") || s.starts_with("checkpoints") => {
            out.push(s.into())
        }
        toml::Value::Array(a) => a.iter().for_each(|x| path_like(x, out)),
        toml::Value::Table(t) => t.values().for_each(|x| path_like(x, out)),
        _ => {}
    }
}

/// Why `path` (relative to `root`) is not a committed checkpoint, or None.
fn not_committed(root: &Path, path: &Path) -> Option<String> {
    let mut parts = path.components();
    let under = parts.next().is_some_and(|c| c.as_os_str() == "checkpoints");
    if !under || parts.count() != 1 {
        return Some(format!("{} is not a directory of checkpoints/", path.display()));
    }
    let missing: Vec<&str> = CHECKPOINT_FILES.into_iter().filter(|f| !root.join(path).join(f).is_file()).collect();
    (!missing.is_empty()).then(|| format!("{} lacks {}", path.display(), missing.join(", ")))
}

/// Everything in the recipe `name` (its TOML `text`) that a clean clone could not run.
fn problems(root: &Path, name: &str, text: &str) -> Vec<String> {
    let typed = match typed_paths(name, text) {
        Ok(p) => p,
        Err(e) => return vec![e],
    };
    let mut paths = typed;
    let table: toml::Table = toml::from_str(text).expect("parsed above");
    path_like(&toml::Value::Table(table), &mut paths);
    paths.sort();
    paths.dedup();
    paths.iter().filter_map(|p| not_committed(root, p)).map(|why| format!("{name}: {why}")).collect()
}

#[test]
fn every_config_runs_from_a_clean_clone() {
    let root = root();
    let configs = names(&root.join("configs"), "toml");
    assert!(configs.len() >= 20, "only {} configs found", configs.len());
    let mut bad = Vec::new();
    for name in &configs {
        let text = std::fs::read_to_string(root.join("configs").join(format!("{name}.toml"))).unwrap();
        bad.extend(problems(&root, name, &text));
    }
    assert!(bad.is_empty(), "configs a clean clone cannot run:\n{}", bad.join("\n"));
}

#[test]
fn the_check_rejects_runs_and_missing_checkpoints() {
    let root = root();
    let base = std::fs::read_to_string(root.join("configs/ntm-copy.toml")).unwrap();
    assert!(problems(&root, "ntm-copy", &base).is_empty());
    let with = |init: &str| format!("{base}\n").replace("[train]\n", &format!("[train]\ninit = \"{init}\"\n"));
    assert!(with("x").contains("init = \"x\""), "the test's edit did not apply");
    assert!(problems(&root, "ntm-copy", &with("checkpoints/ntm-copy")).is_empty());
    for init in ["runs/ntm-copy/best", "checkpoints/no-such-checkpoint", "checkpoints", "/tmp/ntm-copy"] {
        let p = problems(&root, "ntm-copy", &with(init));
        assert_eq!(p.len(), 1, "{init}: {p:?}");
    }
    // A teacher under runs/ is caught as well as an init.
    let draw = std::fs::read_to_string(root.join("configs/draw-cluttered100.toml")).unwrap();
    let distilled =
        format!("{draw}\n[train.distill]\nteachers = [\"checkpoints/draw-cluttered100\", \"runs/t/best\"]\n");
    let p = problems(&root, "draw-cluttered100", &distilled);
    assert!(p.len() == 1 && p[0].contains("runs/t/best"), "{p:?}");
    // An unknown field fails to parse.
    assert_eq!(problems(&root, "ntm-copy", &format!("{base}\nno_such_field = 1\n")).len(), 1);
}

#[test]
fn configs_and_checkpoints_match_one_to_one() {
    let root = root();
    let configs = names(&root.join("configs"), "toml");
    let checkpoints = names(&root.join("checkpoints"), "");
    let without_checkpoint: Vec<_> =
        configs.difference(&checkpoints).filter(|n| !RECIPES_WITHOUT_CHECKPOINT.contains(&n.as_str())).collect();
    let without_recipe: Vec<_> =
        checkpoints.difference(&configs).filter(|n| !CHECKPOINTS_WITHOUT_RECIPE.contains(&n.as_str())).collect();
    assert!(without_checkpoint.is_empty(), "configs without a checkpoint: {without_checkpoint:?}");
    assert!(without_recipe.is_empty(), "checkpoints without a config: {without_recipe:?}");
    for name in RECIPES_WITHOUT_CHECKPOINT {
        assert!(configs.contains(name), "listed recipe configs/{name}.toml is missing");
    }
}

#[test]
fn every_checkpoint_is_complete_and_small() {
    let root = root();
    for name in names(&root.join("checkpoints"), "") {
        let dir = PathBuf::from("checkpoints").join(&name);
        assert_eq!(not_committed(&root, &dir), None);
        let bytes: u64 =
            std::fs::read_dir(root.join(&dir)).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
        assert!(bytes <= MAX_CHECKPOINT_BYTES, "{name}: {bytes} bytes, over {MAX_CHECKPOINT_BYTES}");
    }
}
