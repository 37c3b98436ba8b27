//! The crate's layering, read from its source: no file imports another that imports it back
//! (directly or round a longer loop), the foundation (`rng`, `run`, `device`, `defaults`) imports nothing
//! above it, and the mechanisms, models and data (`fused`, `ops`, `attention`, `models`,
//! `data`) import nothing from training or pictures (`train`, `viz`). Test modules are left out:
//! a test may use anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The foundation: what every other layer may use and which uses nothing of the crate.
const FOUNDATION: &[&str] = &["rng", "run", "device", "defaults"];
/// The layers below training and pictures.
const BELOW_TRAIN: &[&str] = &["fused", "ops", "attention", "models", "data"];

/// Every module of `src/` (`a::b` for `src/a/b.rs` or `src/a/b/mod.rs`) and its source
/// without its `#[cfg(test)]` part and its comments.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            let name = if prefix.is_empty() { stem.clone() } else { format!("{prefix}::{stem}") };
            if path.is_dir() {
                walk(&path, &name, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let name = match stem.as_str() {
                    "mod" => prefix.to_string(),
                    "lib" if prefix.is_empty() => String::new(),
                    _ => name,
                };
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap();
                let code: Vec<&str> = code.lines().map(|l| l.split("//").next().unwrap()).collect();
                out.insert(name, code.join("\n"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), "", &mut out);
    out
}

/// The paths that follow each `marker` in `code` (`crate::a::b::{c, d}` gives `a::b::c`,
/// `a::b::d`).
fn paths_after(code: &str, marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices(marker) {
        let rest = &code[i + marker.len()..];
        let path: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
        let path = path.trim_end_matches(':').to_string();
        let after = &rest[path.len()..].trim_start_matches(':');
        if let Some(group) = after.strip_prefix('{') {
            for item in group.split('}').next().unwrap().split(',') {
                let item = item.trim().split("::").next().unwrap().split(' ').next().unwrap();
                out.push(format!("{path}::{item}"));
            }
        }
        out.push(path);
    }
    out
}

/// Each module's imports of other modules of the crate (the longest module prefix of each path).
fn imports(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let module_of = |path: &str| -> Option<String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len()).rev().map(|k| parts[..k].join("::")).find(|m| mods.contains_key(m))
    };
    mods.iter()
        .map(|(name, code)| {
            let parent = name.rsplit_once("::").map_or("", |(p, _)| p);
            let mut paths = paths_after(code, "crate::");
            for p in paths_after(code, "super::") {
                paths.push(if parent.is_empty() { p } else { format!("{parent}::{p}") });
            }
            let deps = paths.iter().filter_map(|p| module_of(p)).filter(|m| m != name && !m.is_empty()).collect();
            (name.clone(), deps)
        })
        .collect()
}

/// A loop of imports through `from`, if there is one.
fn cycle_through(from: &str, edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_string()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        for next in &edges[path.last().unwrap()] {
            if next == from {
                return Some(path.clone());
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
    }
    None
}

fn layer(module: &str) -> &str {
    module.split("::").next().unwrap()
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let edges = imports(&modules());
    let loops: Vec<String> = edges.keys().filter_map(|m| cycle_through(m, &edges)).map(|c| c.join(" -> ")).collect();
    assert!(loops.is_empty(), "import cycles:\n{}", loops.join("\n"));
}

#[test]
fn the_foundation_and_the_mechanisms_import_nothing_above_them() {
    let edges = imports(&modules());
    let mut upward = Vec::new();
    for (m, deps) in &edges {
        for d in deps {
            let (from, to) = (layer(m), layer(d));
            let bad = (FOUNDATION.contains(&from) && !FOUNDATION.contains(&to))
                || (BELOW_TRAIN.contains(&from) && ["train", "viz"].contains(&to));
            if bad {
                upward.push(format!("{m} -> {d}"));
            }
        }
    }
    assert!(upward.is_empty(), "upward imports:\n{}", upward.join("\n"));
}

/// The scan sees the imports it must: a loop or an upward import would not pass unseen.
#[test]
fn the_scan_finds_known_imports() {
    let edges = imports(&modules());
    assert!(edges["models::ntm"].contains("attention::memory"), "{:?}", edges["models::ntm"]);
    assert!(edges["train::classify"].contains("train::engine"), "{:?}", edges["train::classify"]);
    assert!(edges["attention::memory"].contains("fused"), "{:?}", edges["attention::memory"]);
    let mut looped = edges.clone();
    looped.get_mut("attention::memory").unwrap().insert("models::ntm".into());
    assert!(cycle_through("models::ntm", &looped).is_some());
}
