//! The hand-written date file (`tests/fixtures/dates/handwritten.tsv`): real-world date strings
//! written by hand, never by the generator, each with its ISO answer. These checks keep the file
//! usable as a test set: every line well-formed, every answer a real calendar date in the task's
//! range (years 1000 to 2999), no text twice, and enough lines in each of the task's eight
//! languages' phrasings to score a model on; and the committed date model scored on it and on
//! the held-out formats (issue 31's targets).

use std::collections::HashSet;
use std::path::Path;

use burn::tensor::Device;
use glimpse::data::dates::{LOCALE_DIR, Pair, ZONE_TABLE};
use glimpse::train::translate::{
    Decoding, TaskData, Tokenizers, TranslateRunConfig, Translator, evaluate, load_translator,
};

fn rows() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/dates/handwritten.tsv");
    let text = std::fs::read_to_string(&path).expect("the hand-written date file");
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 3, "line {}: text, answer and source, tab-separated: {line:?}", i + 1);
        assert!(!fields[0].trim().is_empty() && !fields[2].trim().is_empty(), "line {}: empty field", i + 1);
        out.push((fields[0].to_string(), fields[1].to_string()));
    }
    out
}

/// Days in `month` of `year` in the Gregorian calendar.
fn days_in_month(year: u32, month: u32) -> u32 {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Whether `iso` is `YYYY-MM-DD`, a real date with a year in 1000..=2999.
fn is_valid_iso(iso: &str) -> bool {
    let parts: Vec<&str> = iso.split('-').collect();
    let [y, m, d] = parts[..] else { return false };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<u32>(), m.parse::<u32>(), d.parse::<u32>()) else { return false };
    (1000..=2999).contains(&y) && (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m)
}

#[test]
fn the_validity_check_refuses_dates_that_do_not_exist() {
    assert!(is_valid_iso("2000-02-29") && is_valid_iso("1600-02-29") && is_valid_iso("2999-12-31"));
    for bad in ["1900-02-29", "1999-13-12", "2021-04-31", "0999-01-01", "3000-01-01", "1999-1-01", "x"] {
        assert!(!is_valid_iso(bad), "{bad}");
    }
}

#[test]
fn every_line_is_a_real_date_and_no_text_is_there_twice() {
    let rows = rows();
    assert!(rows.len() >= 200, "at least 200 dates, found {}", rows.len());
    let mut seen = HashSet::new();
    for (text, iso) in &rows {
        assert!(is_valid_iso(iso), "{text:?}: {iso:?} is not a date in 1000-2999");
        assert!(seen.insert(text.as_str()), "{text:?} twice");
    }
}

#[test]
fn each_language_has_its_own_phrasings() {
    let rows = rows();
    // One word each that only that language's dates use.
    let marks = [
        ("en", " of "),
        ("de", ". "),
        ("fr", "juillet"),
        ("es", " de "),
        ("pt", "abril de"),
        ("it", "giugno"),
        ("nl", " mei "),
        ("sv", "februari 1986"),
    ];
    for (lang, mark) in marks {
        let n = rows.iter().filter(|(t, _)| t.contains(mark)).count();
        assert!(n >= 3, "{lang}: only {n} dates contain {mark:?}");
    }
    let outside = rows.iter().filter(|(_, iso)| !(1950..2050).contains(&iso[..4].parse::<u32>().unwrap())).count();
    assert!(outside >= 50, "years outside 1950-2049 (the old generator's range): {outside}");
}

/// The committed date model: its run configuration, tokenizers and weights.
fn committed() -> (TranslateRunConfig, Tokenizers, Translator) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../checkpoints/seq2seq-dates");
    load_translator(&dir, &Device::flex()).expect("the committed date checkpoint")
}

/// Greedy exact match of a date model on `pairs`, with the pairs it got wrong.
fn score(
    (cfg, toks, model): &(TranslateRunConfig, Tokenizers, Translator),
    pairs: &[Pair],
) -> (f64, Vec<(String, String, String)>) {
    let dev = Device::flex();
    let how = Decoding { beam: 1, alpha: cfg.train.alpha, max_len: cfg.train.max_len };
    let (outputs, m) = evaluate(model, toks, pairs, false, how, &dev);
    let wrong = pairs
        .iter()
        .zip(outputs)
        .filter(|(p, o)| *o != p.target)
        .map(|(p, o)| (p.source.clone(), p.target.clone(), o))
        .collect();
    (m.exact_match, wrong)
}

/// Whether the task's files (glibc's locale sources, tzdata's zone table) are here.
fn task_files_present() -> bool {
    let here = Path::new(LOCALE_DIR).join("de_DE").is_file() && Path::new(ZONE_TABLE).is_file();
    if !here {
        eprintln!("skipped: {LOCALE_DIR} or {ZONE_TABLE} is absent (Debian packages `locales`, `tzdata`)");
    }
    here
}

#[test]
fn the_committed_date_model_reads_the_hand_written_file() {
    let pairs: Vec<Pair> = rows().into_iter().map(|(source, target)| Pair { source, target }).collect();
    let (exact, wrong) = score(&committed(), &pairs);
    assert!(exact >= 0.99, "exact match {exact:.4} of {} (target 0.99); wrong: {wrong:?}", pairs.len());
}

#[test]
fn the_committed_date_model_reads_formats_it_never_saw() {
    if !task_files_present() {
        return;
    }
    let model = committed();
    let TaskData::Dates(task) = model.0.task.load().unwrap() else { panic!("a date checkpoint") };
    let pairs: Vec<Pair> = task.held_out_formats(1000, 0).into_iter().map(|(_, p)| p).collect();
    let (exact, wrong) = score(&model, &pairs);
    assert!(exact >= 0.95, "exact match {exact:.4} on held-out formats; wrong: {:?}", &wrong[..wrong.len().min(20)]);
}
