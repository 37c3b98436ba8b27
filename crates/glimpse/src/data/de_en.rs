//! German→English sentence pairs from the Ding dictionary (Frank Richter, TU Chemnitz; GPL 2+),
//! Debian package `trans-de-en`, file `/usr/share/trans/de-en`.
//!
//! Each line is `German :: English`; each side holds sub-entries separated by ` | ` that
//! correspond one to one, and within a sub-entry alternatives separated by `;`. The example
//! sentences among the sub-entries are kept: both sides a single alternative that starts with a
//! capital letter, ends in `.`, `!` or `?`, and has at least three words, after removing the
//! dictionary's annotations (`{f}`, `[ugs.]`). Pairs are de-duplicated on the German side and
//! split into train/valid/test (90/5/5) by a hash of the German sentence, so the split never
//! changes when the file gains lines.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::dates::Pair;

/// Where Debian installs the dictionary.
pub const DING_PATH: &str = "/usr/share/trans/de-en";

/// Which part of the sentence pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextSplit {
    /// ~90%.
    Train,
    /// ~5%.
    Valid,
    /// ~5%.
    Test,
}

/// Removes `{…}` and `[…]` annotations and squeezes whitespace.
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    for c in s.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_sentence(s: &str) -> bool {
    !s.contains(';')
        && s.chars().next().is_some_and(char::is_uppercase)
        && s.ends_with(['.', '!', '?'])
        && s.split_whitespace().count() >= 3
}

/// The sentence pairs of one dictionary line (empty for a line without sentences).
pub fn sentences_of_line(line: &str) -> Vec<Pair> {
    let Some((de, en)) = line.split_once(" :: ") else { return vec![] };
    let (ds, es): (Vec<&str>, Vec<&str>) = (de.split(" | ").collect(), en.split(" | ").collect());
    if ds.len() != es.len() {
        return vec![];
    }
    ds.iter()
        .zip(&es)
        .map(|(d, e)| (clean(d), clean(e)))
        .filter(|(d, e)| is_sentence(d) && is_sentence(e))
        .map(|(source, target)| Pair { source, target })
        .collect()
}

/// The split of a German sentence (FNV-1a hash, fixed forever).
pub fn split_of(source: &str) -> TextSplit {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in source.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    match h % 20 {
        0 => TextSplit::Valid,
        1 => TextSplit::Test,
        _ => TextSplit::Train,
    }
}

/// The sentence pairs of a dictionary text, in file order, de-duplicated on the German side.
pub fn parse(text: &str) -> Result<Vec<Pair>> {
    let mut seen = HashSet::new();
    let mut pairs = Vec::new();
    let mut entries = 0usize;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if !line.contains(" :: ") {
            bail!("not a dictionary line (no ` :: `): `{}`", line.chars().take(80).collect::<String>());
        }
        entries += 1;
        for p in sentences_of_line(line) {
            if seen.insert(p.source.clone()) {
                pairs.push(p);
            }
        }
    }
    if entries == 0 {
        bail!("no dictionary entries");
    }
    Ok(pairs)
}

/// All sentence pairs of the dictionary file at `path` (default [`DING_PATH`]), split.
pub fn load(path: Option<&Path>) -> Result<[Vec<Pair>; 3]> {
    let path = path.unwrap_or(Path::new(DING_PATH));
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "{}: cannot read the German-English dictionary (install the Debian package `trans-de-en`)",
            path.display()
        )
    })?;
    let pairs = parse(&text).with_context(|| format!("{}: malformed dictionary", path.display()))?;
    let mut out: [Vec<Pair>; 3] = Default::default();
    for p in pairs {
        let k = match split_of(&p.source) {
            TextSplit::Train => 0,
            TextSplit::Valid => 1,
            TextSplit::Test => 2,
        };
        out[k].push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sentences_drops_annotations_and_mismatched_lines() {
        let line = "Geduld {f}; Ausdauer {f} | sich in Geduld üben | Ich verliere die Geduld. :: patience | to learn patience | I’m losing my patience.";
        assert_eq!(
            sentences_of_line(line),
            vec![Pair { source: "Ich verliere die Geduld.".into(), target: "I’m losing my patience.".into() }]
        );
        let annotated = "Das ist mir egal. [ugs.] :: I don't care. [coll.]";
        assert_eq!(sentences_of_line(annotated)[0].source, "Das ist mir egal.");
        assert_eq!(sentences_of_line(annotated)[0].target, "I don't care.");
        // Sub-entry counts differ: nothing is trusted.
        assert!(sentences_of_line("A | Das ist gut. :: Das ist gut.").is_empty());
        // Alternatives or fragments are not sentences.
        assert!(sentences_of_line("Er kam; sie ging. :: He came. She went.").is_empty());
        assert!(sentences_of_line("Haus {n} :: house").is_empty());
    }

    #[test]
    fn parse_deduplicates_and_rejects_garbage() {
        let text = "# header\nDas ist gut. :: That is good.\nX | Das ist gut. :: x | That's good.\n";
        assert_eq!(parse(text).unwrap().len(), 1);
        assert!(parse("# only comments\n").unwrap_err().to_string().contains("no dictionary entries"));
        assert!(parse("this is not a dictionary\n").unwrap_err().to_string().contains("` :: `"));
        let err = load(Some(Path::new("/nonexistent/de-en"))).unwrap_err().to_string();
        assert!(err.contains("trans-de-en"), "{err}");
    }

    #[test]
    fn the_real_dictionary_gives_thousands_of_split_pairs() {
        if !Path::new(DING_PATH).is_file() {
            eprintln!("skipped: {DING_PATH} is absent (Debian package `trans-de-en`)");
            return;
        }
        let [train, valid, test] = load(None).unwrap();
        assert!(train.len() > 10_000, "{}", train.len());
        assert!(valid.len() > 500 && test.len() > 500);
        assert!(test.iter().all(|p| split_of(&p.source) == TextSplit::Test));
        assert!(train.iter().chain(&valid).chain(&test).any(|p| p.source == "Ich verliere die Geduld."));
    }
}
