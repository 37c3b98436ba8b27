//! Every parser and loader fuzzed with arbitrary bytes and with mutations of real files
//! (proptest's generators: bit flips, overwritten, inserted, deleted and repeated bytes,
//! truncation): each must answer with its value or with an error that names its file, and never
//! panic. A loader that accepts a mutated file must also give something that works (tokenizers
//! that encode, weights a model runs with).
//!
//! By default each target tries a few hundred inputs, a short run in the tests. The long run
//! gives each target `GLIMPSE_FUZZ_SECONDS` seconds and prints what it tried:
//!
//! ```sh
//! GLIMPSE_FUZZ_SECONDS=600 cargo test --release -p glimpse --test fuzz -- --nocapture --test-threads 1
//! ```
//!
//! An input that panics is saved as `tests/fuzz-regressions/<target>/<sha256>` (a crash to fix)
//! and replayed first by every later run, so each crash found stays a regression case.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use glimpse::burn::tensor::{Device, Tensor};
use glimpse::data::idx::{encode_idx, read_idx};
use glimpse::train::checkpoint;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

/// One change to a byte string; positions are fractions of its length.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(prop::sample::Index, u8),
    Set(prop::sample::Index, u8),
    Insert(prop::sample::Index, Vec<u8>),
    Delete(prop::sample::Index, usize),
    Repeat(prop::sample::Index, usize),
    Truncate(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<prop::sample::Index>;
    prop_oneof![
        (at(), 0..8u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (at(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
        (at(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, v)| Mutation::Insert(i, v)),
        (at(), 1..64usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (at(), 1..64usize).prop_map(|(i, n)| Mutation::Repeat(i, n)),
        at().prop_map(Mutation::Truncate),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        let pos = |i: &prop::sample::Index| if len == 0 { 0 } else { i.index(len) };
        match m {
            Mutation::Flip(i, b) if len > 0 => bytes[pos(i)] ^= 1 << b,
            Mutation::Set(i, v) if len > 0 => bytes[pos(i)] = *v,
            Mutation::Insert(i, v) => {
                let p = pos(i);
                bytes.splice(p..p, v.iter().copied());
            }
            Mutation::Delete(i, n) if len > 0 => {
                let p = pos(i);
                bytes.drain(p..(p + n).min(len));
            }
            Mutation::Repeat(i, n) if len > 0 => {
                let p = pos(i);
                let run: Vec<u8> = bytes[p..(p + n).min(len)].to_vec();
                bytes.splice(p..p, run);
            }
            Mutation::Truncate(i) => bytes.truncate(pos(i)),
            _ => {}
        }
    }
    bytes
}

/// Inputs: arbitrary bytes, or one of `seeds` mutated a few times.
fn inputs(seeds: Vec<Vec<u8>>) -> BoxedStrategy<Vec<u8>> {
    assert!(!seeds.is_empty(), "a target needs at least one seed");
    let mutated =
        (prop::sample::select(seeds), prop::collection::vec(mutation(), 1..6)).prop_map(|(seed, ms)| apply(seed, &ms));
    prop_oneof![1 => prop::collection::vec(any::<u8>(), 0..512), 4 => mutated].boxed()
}

/// The regression inputs of `target` (crashes found before).
fn regressions(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions").join(target)
}

/// Runs `check` on `cases` inputs (or for `GLIMPSE_FUZZ_SECONDS`), the saved regressions first.
/// `check` gets a fresh folder and the input, and returns a problem (an error that does not
/// name its file, a loaded value that does not work) or `None`; a panic is a crash.
fn fuzz(target: &str, cases: usize, seeds: Vec<Vec<u8>>, check: impl Fn(&Path, &[u8]) -> Option<String>) {
    let seconds: Option<u64> = std::env::var("GLIMPSE_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok());
    let mut runner =
        TestRunner::new(Config { rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..Config::default() });
    let strategy = inputs(seeds);
    let saved: Vec<Vec<u8>> = std::fs::read_dir(regressions(target))
        .map(|d| d.filter_map(|e| std::fs::read(e.ok()?.path()).ok()).collect())
        .unwrap_or_default();
    let (t0, mut tried, mut crashes, mut problems) = (Instant::now(), 0usize, Vec::new(), Vec::new());
    let mut next = saved.into_iter();
    loop {
        let input = match next.next() {
            Some(bytes) => bytes,
            None => match seconds {
                Some(s) if t0.elapsed() >= Duration::from_secs(s) => break,
                None if tried >= cases => break,
                _ => strategy.new_tree(&mut runner).expect("an input").current(),
            },
        };
        tried += 1;
        let dir = tempfile::tempdir().expect("a folder");
        match catch_unwind(AssertUnwindSafe(|| check(dir.path(), &input))) {
            Ok(None) => {}
            Ok(Some(problem)) => problems.push(problem),
            Err(_) => crashes.push(input),
        }
    }
    for input in &crashes {
        let name = sha256(input);
        let _ = std::fs::create_dir_all(regressions(target));
        let _ = std::fs::write(regressions(target).join(&name), input);
    }
    println!(
        "fuzz {target}: {tried} inputs in {:.1}s, {} crashes, {} bad answers",
        t0.elapsed().as_secs_f64(),
        crashes.len(),
        problems.len()
    );
    assert!(
        crashes.is_empty(),
        "{target}: {} inputs panicked (saved under {})",
        crashes.len(),
        regressions(target).display()
    );
    assert!(problems.is_empty(), "{target}: {} bad answers, the first: {}", problems.len(), problems[0]);
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// `None` if `result` is a value or an error naming `path`'s file, else the problem.
fn names_file<T>(result: anyhow::Result<T>, path: &Path) -> Option<String> {
    let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
    let e = format!("{:#}", result.err()?);
    (!e.contains(&name)).then(|| format!("the error does not name {name}: {e}"))
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

/// The files among `paths` that exist here (system files installed by Debian packages are
/// missing on some machines; the committed fixtures never are).
fn existing(paths: &[PathBuf], limit: usize) -> Vec<Vec<u8>> {
    let seeds: Vec<Vec<u8>> = paths
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .map(|mut b| {
            b.truncate(limit);
            b
        })
        .collect();
    assert!(!seeds.is_empty(), "no seed file among {paths:?}");
    seeds
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(bytes).expect("in memory");
    z.finish().expect("in memory")
}

#[test]
fn idx_files_plain_and_gzip() {
    let plain = encode_idx(&[3, 4, 4], &(0..48).map(|i| i as u8 * 5).collect::<Vec<u8>>());
    let labels = encode_idx(&[3], &[1, 7, 9]);
    let seeds = vec![plain.clone(), gzip(&plain), labels.clone(), gzip(&labels)];
    fuzz("idx", 400, seeds, |dir, bytes| {
        let gz = bytes.starts_with(&[0x1f, 0x8b]);
        let path = dir.join(if gz { "images-idx3-ubyte.gz" } else { "images-idx3-ubyte" });
        std::fs::write(&path, bytes).unwrap();
        for ndim in [1, 3] {
            if let Some(p) = names_file(read_idx(&path, ndim).map_err(anyhow::Error::from), &path) {
                return Some(p);
            }
        }
        None
    });
}

#[test]
fn omniglot_stroke_zips() {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let text = "START\n10.5,20.0,0\n11.0,21.5,17\nBREAK\n30,31,40\n32,33,57\nBREAK\n";
    for name in ["images_background/Greek/character01/0394_01.txt", "images_background/Greek/character02/0395_13.txt"] {
        zip.start_file(name, zip::write::FileOptions::default()).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    let archive = zip.finish().unwrap().into_inner();
    fuzz("omniglot-zip", 300, vec![archive, text.as_bytes().to_vec()], |dir, bytes| {
        let path = dir.join("strokes_background_small1.zip");
        std::fs::write(&path, bytes).unwrap();
        let _ = glimpse::data::strokes::parse_drawing(&String::from_utf8_lossy(bytes));
        names_file(glimpse::data::strokes::load_zip(&path), &path)
    });
}

#[test]
fn hershey_fonts() {
    // A font of 96 small glyphs, and Debian's cursive face where it is installed.
    let synthetic: String = (0..96).map(|i| format!("{:>5}{:>3}JZRFRT RRYQZ\n", i + 1, 6)).collect();
    let mut seeds = vec![synthetic.into_bytes()];
    seeds.extend(std::fs::read("/usr/share/hershey-fonts/cursive.jhf").ok());
    fuzz("hershey", 400, seeds, |dir, bytes| {
        let path = dir.join("face.jhf");
        std::fs::write(&path, bytes).unwrap();
        let font = glimpse::data::hershey::load(Some(dir), "face");
        if let Ok(f) = &font {
            let _ = f.layout("Glimpse, 1 2 3.", 1.0);
        }
        names_file(font, &path)
    });
}

#[test]
fn glibc_locale_sources() {
    let seeds =
        existing(&[repo("tests/fixtures/locales/de_TEST"), PathBuf::from("/usr/share/i18n/locales/fr_FR")], 16384);
    fuzz("locale", 400, seeds, |dir, bytes| {
        let path = dir.join("xx_XX");
        std::fs::write(&path, bytes).unwrap();
        names_file(glimpse::data::dates::load_locale(dir, "xx_XX"), &path)
    });
}

#[test]
fn ding_dictionary() {
    fuzz("ding", 400, existing(&[repo("tests/fixtures/de-en-mini")], 4096), |dir, bytes| {
        let path = dir.join("de-en");
        std::fs::write(&path, bytes).unwrap();
        names_file(glimpse::data::de_en::load(Some(&path)), &path)
    });
}

/// Reads a checkpoint folder's file as one type, the value dropped.
type Reader = fn(&Path) -> anyhow::Result<()>;

fn config<T: serde::de::DeserializeOwned>(dir: &Path) -> anyhow::Result<()> {
    checkpoint::read_config::<T>(dir).map(drop)
}

fn meta<T: serde::de::DeserializeOwned>(dir: &Path) -> anyhow::Result<()> {
    checkpoint::read_meta::<T>(dir).map(drop)
}

/// A checkpoint's `config.toml` and `meta.json` (seeds: every config in configs/ and every
/// committed checkpoint's metadata), each input read as every family's configuration and
/// metadata.
#[test]
fn checkpoint_configs_and_metadata() {
    use glimpse::train::{classify, generative, handwriting, sequence, translate};
    let listed = |dir: &str| std::fs::read_dir(repo(dir)).unwrap().map(|e| e.unwrap().path()).collect::<Vec<_>>();
    let mut files: Vec<PathBuf> =
        listed("configs").into_iter().filter(|p| p.extension().is_some_and(|x| x == "toml")).collect();
    files.extend(listed("checkpoints").into_iter().map(|d| d.join(checkpoint::META)));
    let readers: [(&str, Reader); 10] = [
        (checkpoint::CONFIG, config::<classify::ClassifierRunConfig>),
        (checkpoint::CONFIG, config::<generative::DrawRunConfig>),
        (checkpoint::CONFIG, config::<sequence::SequenceRunConfig>),
        (checkpoint::CONFIG, config::<handwriting::HandwritingRunConfig>),
        (checkpoint::CONFIG, config::<translate::TranslateRunConfig>),
        (checkpoint::META, meta::<classify::CheckpointMeta>),
        (checkpoint::META, meta::<generative::DrawCheckpointMeta>),
        (checkpoint::META, meta::<sequence::SequenceCheckpointMeta>),
        (checkpoint::META, meta::<handwriting::HandwritingCheckpointMeta>),
        (checkpoint::META, meta::<translate::TranslateCheckpointMeta>),
    ];
    fuzz("checkpoint-text", 600, existing(&files, 1 << 16), |dir, bytes| {
        for file in [checkpoint::CONFIG, checkpoint::META] {
            std::fs::write(dir.join(file), bytes).unwrap();
        }
        readers.iter().find_map(|(file, read)| names_file(read(dir), &dir.join(file)))
    });
}

/// `model.safetensors`: a small MLP's weights, mutated (truncated, dtypes, shapes and names
/// changed in the header), and another architecture's; weights that load must run.
#[test]
fn model_weights() {
    use glimpse::models::cnn::CnnConfig;
    use glimpse::models::mlp::MlpConfig;
    let dev = Device::flex();
    let mlp = MlpConfig { input: [4, 4], hidden: vec![5], classes: 3 };
    let dir = tempfile::tempdir().unwrap();
    let save = |name: &str, save: &dyn Fn(&Path)| {
        let p = dir.path().join(name);
        save(&p);
        std::fs::read(p).unwrap()
    };
    let mine = save("mlp", &|p| checkpoint::save_weights(&mlp.init(&dev), p).unwrap());
    let wider = save("wide", &|p| {
        checkpoint::save_weights(&MlpConfig { hidden: vec![6], ..mlp.clone() }.init(&dev), p).unwrap()
    });
    let cnn = CnnConfig { input: [4, 4], channels: vec![2], hidden: 4, classes: 3 };
    let other = save("cnn", &|p| checkpoint::save_weights(&cnn.init(&dev), p).unwrap());
    // The file's header edited: a tensor stored as f64, one of another shape, one missing, one
    // extra. Each must be refused, naming the file.
    let edits: [&dyn Fn(&mut Header); 4] = [
        &|h| h.values_mut().filter(|v| v.get("dtype").is_some()).take(1).for_each(|v| v["dtype"] = "F64".into()),
        &|h| {
            h.values_mut()
                .filter(|v| v.get("shape").is_some())
                .take(1)
                .for_each(|v| v["shape"] = serde_json::json!([2, 2]))
        },
        &|h| {
            let k = h.keys().find(|k| *k != "__metadata__").cloned().unwrap();
            h.remove(&k);
        },
        &|h| {
            let v = h.values().find(|v| v.get("dtype").is_some()).cloned().unwrap();
            h.insert("extra.weight".into(), v);
        },
    ];
    let mut seeds = vec![mine.clone(), wider, other];
    for edit in edits {
        let edited = edit_header(&mine, edit);
        let path = dir.path().join(checkpoint::WEIGHTS);
        std::fs::write(&path, &edited).unwrap();
        let e = checkpoint::load_weights(&mut mlp.init(&dev), &path).expect_err("an edited header is refused");
        assert!(format!("{e:#}").contains(checkpoint::WEIGHTS), "{e:#}");
        seeds.push(edited);
    }
    fuzz("safetensors", 300, seeds, |dir, bytes| {
        let path = dir.join(checkpoint::WEIGHTS);
        std::fs::write(&path, bytes).unwrap();
        let mut model = mlp.init(&dev);
        let loaded = checkpoint::load_weights(&mut model, &path);
        if loaded.is_ok() {
            let _: Vec<f32> = model.forward(Tensor::<4>::ones([1, 1, 4, 4], &dev)).into_data().try_to_vec().unwrap();
        }
        names_file(loaded, &path)
    });
}

/// A safetensors file's JSON header: each tensor's dtype, shape and data offsets by name.
type Header = serde_json::Map<String, serde_json::Value>;

/// A safetensors file with its JSON header changed by `edit` (the tensor data kept).
fn edit_header(file: &[u8], edit: &dyn Fn(&mut Header)) -> Vec<u8> {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let mut header: Header = serde_json::from_slice(&file[8..8 + n]).unwrap();
    edit(&mut header);
    let text = serde_json::to_vec(&header).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(&file[8 + n..]);
    out
}

/// A translator's `tokenizers.json`; tokenizers that load must encode and decode.
#[test]
fn tokenizer_files() {
    fuzz("tokenizers", 300, existing(&[repo("checkpoints/seq2seq-dates/tokenizers.json")], 1 << 16), |dir, bytes| {
        let path = dir.join("tokenizers.json");
        std::fs::write(&path, bytes).unwrap();
        let toks = glimpse::train::translate::read_tokenizers(dir);
        if let Ok(t) = &toks {
            for text in ["3 March 1999", "", "Ünïcödé ✓", "1999-03-03"] {
                let ids = t.source.encode(text);
                let _ = t.target.decode(&ids);
            }
        }
        names_file(toks, &path)
    });
}

/// The texts people give `glimpse translate` and `glimpse write`: any string, read with the
/// dates model's tokenizer and the handwriting alphabet.
#[test]
fn input_texts() {
    let toks = glimpse::train::translate::read_tokenizers(&repo("checkpoints/seq2seq-dates")).unwrap();
    let seeds =
        ["3rd of March 1999", "31/12/2049", "lundi 3 mars", "", "\u{0}\u{7f}\u{feff}"].map(|s| s.as_bytes().to_vec());
    fuzz("texts", 400, seeds.to_vec(), |_, bytes| {
        let text = String::from_utf8_lossy(bytes);
        let ids = toks.source.encode(&text);
        let _ = toks.source.decode(&ids);
        let _ = glimpse::data::handwriting::encode(&text);
        None
    });
}
