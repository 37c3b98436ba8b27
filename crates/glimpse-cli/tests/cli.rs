//! End-to-end tests of the `glimpse` command on the committed MNIST fixture.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn glimpse() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_glimpse"));
    c.env_remove("GLIMPSE_DATA").env("RUST_LOG", "warn");
    c
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/mnist-mini")
}

fn run(c: &mut Command) -> Output {
    c.output().expect("run glimpse")
}

fn ok(c: &mut Command) -> String {
    let out = run(c);
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `glimpse eval DIR --json ARGS`, its JSON answer.
fn eval_json(c: &mut Command) -> serde_json::Value {
    serde_json::from_str(ok(c.arg("--json")).trim()).expect("eval --json prints JSON")
}

/// `glimpse eval DIR`, for [`eval_json`].
fn eval(dir: &Path) -> Command {
    let mut c = glimpse();
    c.arg("eval").arg(dir);
    c
}

/// `glimpse train MODEL --quiet ARGS --config CFG --out OUT`.
fn train(model: &str, args: &[&str], cfg: &Path, out: &Path) -> Command {
    let mut c = glimpse();
    c.args(["train", model, "--quiet"]).args(args).arg("--config").arg(cfg).arg("--out").arg(out);
    c
}

/// Points a command at the MNIST fixture.
fn on_fixture(c: &mut Command) -> &mut Command {
    c.arg("--data-dir").arg(fixture())
}

/// A small MLP run on the fixture: 200 training images (100 held out), 20 steps an epoch.
fn write_config(dir: &Path) -> PathBuf {
    let p = dir.join("run.toml");
    std::fs::write(
        &p,
        r#"seed = 5
[model]
kind = "mlp"
input = [28, 28]
hidden = [32]
[train]
epochs = 3
batch_size = 10
lr = 0.003
valid_size = 100
checkpoint_every = 5
log_every = 5
augment_shift = 1
patience = 10
"#,
    )
    .unwrap();
    p
}

fn train_cmd(cfg: &Path, out: &Path) -> Command {
    let mut c = glimpse();
    c.args(["--threads", "2", "train", "mlp", "--quiet", "--config"])
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .arg("--data-dir")
        .arg(fixture());
    c
}

fn last_step(out: &Path) -> u64 {
    std::fs::read_to_string(out.join("last/meta.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["step"].as_u64())
        .unwrap_or(0)
}

/// Train-loss lines of a run, without the wall-clock throughput.
fn loss_curve(out: &Path) -> Vec<(u64, String)> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["split"] == "train" || v["split"] == "valid")
        .map(|v| (v["step"].as_u64().unwrap(), format!("{} {} {}", v["split"], v["loss"], v["accuracy"])))
        .collect()
}

/// The tensors of a safetensors file by name: dtype, shape and raw bytes (bit-exact compare).
fn tensors(path: &Path) -> std::collections::BTreeMap<String, (String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let (s, e) =
                (v["data_offsets"][0].as_u64().unwrap() as usize, v["data_offsets"][1].as_u64().unwrap() as usize);
            (k.clone(), (format!("{} {}", v["dtype"], v["shape"]), data[s..e].to_vec()))
        })
        .collect()
}

/// A disk that fills up mid-run: on a 512 KiB file system (a tmpfs mounted in a user and mount
/// namespace, which needs no privileges) the checkpoint of step 5 fits and the next one does
/// not. The run stops with one line naming the write that failed, the checkpoint before stays
/// readable, and the run resumed from a copy on a roomy disk ends with the weights of the
/// uninterrupted run. Where no tmpfs can be mounted (no `unshare`, namespaces disabled) the
/// test says so and passes.
#[test]
fn a_disk_full_mid_checkpoint_leaves_the_previous_one_resumable() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path());
    let (small, copy, whole) = (tmp.path().join("small"), tmp.path().join("copy"), tmp.path().join("whole"));
    std::fs::create_dir(&small).unwrap();
    let run = format!(
        "'{}' --threads 2 train mlp --quiet --config '{}' --out '{}/run' --data-dir '{}'",
        env!("CARGO_BIN_EXE_glimpse"),
        cfg.display(),
        small.display(),
        fixture().display()
    );
    let script = format!(
        "mount -t tmpfs -o size=512k tmpfs '{0}' || exit 99; {run}; s=$?; cp -a '{0}/run' '{1}'; exit $s",
        small.display(),
        copy.display()
    );
    let mut c = Command::new("unshare");
    c.args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .env_remove("GLIMPSE_DATA")
        .env("RUST_LOG", "warn");
    let out = match c.output() {
        Ok(o) if o.status.code() != Some(99) => o,
        other => {
            eprintln!("skipped: no small file system can be mounted here ({:?})", other.map(|o| o.status));
            return;
        }
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("rror")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains(".last.tmp/") && errors[0].contains("No space left on device"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(last_step(&copy), 5, "the checkpoint before the failed write");
    ok(train_cmd(&cfg, &copy).arg("--resume"));
    ok(&mut train_cmd(&cfg, &whole));
    assert!(tensors(&whole.join("last/model.safetensors")) == tensors(&copy.join("last/model.safetensors")));
    assert!(tensors(&whole.join("best/model.safetensors")) == tensors(&copy.join("best/model.safetensors")));
    assert_eq!(loss_curve(&whole), loss_curve(&copy));
}

/// What a SIGKILL during a checkpoint write can leave: a half-written `.last.tmp`, or (between
/// the write's two renames) the previous checkpoint set aside as `.last.old` and no `last`.
/// Either way the resume finds the previous checkpoint and ends with the uninterrupted weights.
#[test]
fn a_kill_during_a_checkpoint_write_leaves_the_previous_one_resumable() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path());
    let whole = tmp.path().join("whole");
    ok(&mut train_cmd(&cfg, &whole));
    for (name, set_aside) in [("torn", false), ("between", true)] {
        let b = tmp.path().join(name);
        ok(train_cmd(&cfg, &b).args(["--epochs", "1"]));
        let torn = b.join(".last.tmp");
        std::fs::create_dir(&torn).unwrap();
        let weights = std::fs::read(b.join("last/model.safetensors")).unwrap();
        std::fs::write(torn.join("model.safetensors"), &weights[..weights.len() / 3]).unwrap();
        if set_aside {
            std::fs::rename(b.join("last"), b.join(".last.old")).unwrap();
        }
        ok(train_cmd(&cfg, &b).arg("--resume"));
        assert!(tensors(&whole.join("last/model.safetensors")) == tensors(&b.join("last/model.safetensors")), "{name}");
        assert_eq!(loss_curve(&whole), loss_curve(&b), "{name}");
        assert!(!torn.exists() && !b.join(".last.old").exists(), "{name}: the leftovers are cleared");
    }
}

#[test]
fn sigkill_mid_epoch_then_resume_gives_the_uninterrupted_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path());
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));

    let stdout = ok(&mut train_cmd(&cfg, &a));
    assert!(stdout.contains("test error"), "{stdout}");

    // The same run, slowed down, killed with SIGKILL once a mid-epoch checkpoint (step 25 of
    // epoch 2's 20..40) is on disk.
    let mut child = train_cmd(&cfg, &b).arg("--throttle-ms").arg("40").stdout(Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    while last_step(&b) < 25 {
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
        assert!(child.try_wait().unwrap().is_none(), "run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(5));
    }
    // While it trains, a second run on the same folder is refused.
    let err = run_cmd_err(train_cmd(&cfg, &b).arg("--resume"));
    assert!(err.contains("another run is training in this folder"), "{err}");
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let killed_at = last_step(&b);
    assert!(!killed_at.is_multiple_of(20) && killed_at < 60, "checkpoint at step {killed_at} is mid-epoch");

    ok(train_cmd(&cfg, &b).arg("--resume"));
    let wa = tensors(&a.join("last/model.safetensors"));
    assert_eq!(wa.len(), 4, "two layers, weights and biases");
    assert!(wa == tensors(&b.join("last/model.safetensors")), "final weights differ after resume");
    assert!(tensors(&a.join("best/model.safetensors")) == tensors(&b.join("best/model.safetensors")));
    assert_eq!(loss_curve(&a), loss_curve(&b), "loss curves differ");
    assert_eq!(last_step(&a), 60);

    // A finished run is not overwritten by a new one unless forced; forced, the same seed gives
    // the same weights again.
    let err = run_cmd_err(&mut train_cmd(&cfg, &a));
    assert!(err.contains("already holds a run") && err.contains("--force"), "{err}");
    ok(train_cmd(&cfg, &a).arg("--force"));
    assert!(wa == tensors(&a.join("last/model.safetensors")), "a forced rerun differs");
    assert_eq!(loss_curve(&a), loss_curve(&b), "a forced rerun's log holds only its own lines");

    // The trained model learned something, and eval reproduces the recorded test error.
    let v = eval_json(on_fixture(&mut eval(&a.join("best"))));
    assert_eq!(v["n"], 100);
    let err = v["test_error"].as_f64().unwrap();
    assert!(err < 0.45, "test error {err} after 3 epochs on 200 images");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("best/meta.json")).unwrap()).unwrap();
    assert_eq!(meta["test_error"].as_f64().unwrap(), err);
    let v = eval_json(eval(&a.join("best")).args(["--split", "valid", "--data-dir"]).arg(fixture()));
    assert_eq!((v["n"].as_u64(), v["valid_error"].as_f64()), (Some(100), meta["valid_error"].as_f64()));

    // Saliency of a test image.
    let png = tmp.path().join("s.png");
    let said = ok(glimpse()
        .arg("saliency")
        .arg(a.join("best"))
        .args(["--index", "3", "--out"])
        .arg(&png)
        .arg("--data-dir")
        .arg(fixture()));
    assert!(said.contains("label"), "{said}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    let out =
        run(glimpse().arg("saliency").arg(a.join("best")).args(["--index", "100"]).arg("--data-dir").arg(fixture()));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("out of range"));
}

#[test]
fn help_prints_for_every_subcommand() {
    for args in [
        vec!["--help"],
        vec!["train", "--help"],
        vec!["eval", "--help"],
        vec!["data", "--help"],
        vec!["data", "fetch", "--help"],
        vec!["data", "verify", "--help"],
        vec!["data", "list", "--help"],
        vec!["bench", "--help"],
        vec!["saliency", "--help"],
        vec!["average", "--help"],
        vec!["grow-memory", "--help"],
        vec!["viz", "--help"],
        vec!["viz", "ram", "--help"],
        vec!["viz", "ntm", "--help"],
        vec!["translate", "--help"],
        vec!["write", "--help"],
    ] {
        let text = ok(glimpse().args(&args));
        assert!(text.contains("Usage: glimpse"), "{args:?}: {text}");
    }
    assert!(ok(glimpse().arg("--help")).contains("Examples:"));
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn gunzip(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut out = vec![];
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_end(&mut out).unwrap();
    out
}

/// A copy of the fixture with `file` replaced by `bytes`.
fn corrupt_root(file: &str, bytes: &[u8]) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("mnist");
    std::fs::create_dir_all(&d).unwrap();
    for e in std::fs::read_dir(fixture().join("mnist")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
    }
    std::fs::write(d.join(file), bytes).unwrap();
    t
}

#[test]
fn corrupt_inputs_fail_with_one_clear_line() {
    let labels = gunzip(&fixture().join("mnist/t10k-labels-idx1-ubyte.gz"));
    let images = gunzip(&fixture().join("mnist/t10k-images-idx3-ubyte.gz"));
    let mut bad_magic = images.clone();
    bad_magic[2] = 0x0b;
    let mut wrong_count = labels.clone();
    wrong_count[7] = 101; // header says 101 labels, the data hold 100
    let mut short_labels = labels[..8].to_vec();
    short_labels[7] = 50;
    short_labels.extend_from_slice(&labels[8..58]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("t10k-images-idx3-ubyte.gz", gz(&bad_magic), "unsigned byte"),
        (
            "t10k-images-idx3-ubyte.gz",
            gz(&{
                let mut m = images.clone();
                m[0] = 9;
                m
            }),
            "wrong magic",
        ),
        ("t10k-images-idx3-ubyte.gz", gz(&images[..images.len() - 100]), "truncated"),
        ("t10k-labels-idx1-ubyte.gz", gz(&wrong_count), "truncated"),
        ("t10k-labels-idx1-ubyte.gz", gz(&short_labels), "50 labels for 100 images"),
        ("t10k-images-idx3-ubyte.gz", images.clone(), "not a gzip file"),
        ("t10k-images-idx3-ubyte.gz", gz(&images)[..2000].to_vec(), "gzip"),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path());
    ok(train_cmd(&cfg, &tmp.path().join("run")).args(["--epochs", "1"]));
    for (file, bytes, expect) in cases {
        let root = corrupt_root(file, &bytes);
        let out = run(glimpse().arg("eval").arg(tmp.path().join("run/best")).arg("--data-dir").arg(root.path()));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file}/{expect}: should fail");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {err}");
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains(file) && lines[0].contains(expect),
            "{expect}: {err}"
        );
        // `data verify` flags the corrupt file and exits non-zero.
        let out = run(glimpse().args(["data", "verify", "--data-dir"]).arg(root.path()));
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("CORRUPT"));
    }
}

/// `python3 -m http.server` on 127.0.0.1 serving `dir`; returns the child and its base URL.
fn http_server(dir: &Path) -> Option<(std::process::Child, String)> {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new("python3")
        .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take()?).read_line(&mut line).ok()?;
    let port = line.split_whitespace().skip_while(|w| *w != "port").nth(1)?.to_string();
    Some((child, format!("http://127.0.0.1:{port}/")))
}

#[test]
fn fetch_from_a_local_mirror_verifies_checksums() {
    let Some(real) = std::env::var_os("GLIMPSE_DATA")
        .map(PathBuf::from)
        .filter(|p| p.join("mnist/t10k-images-idx3-ubyte.gz").is_file())
    else {
        eprintln!("skipped: GLIMPSE_DATA does not hold MNIST (the fetch test serves the real files)");
        return;
    };
    let good = tempfile::tempdir().unwrap();
    let bad = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(real.join("mnist")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), good.path().join(e.file_name())).unwrap();
        std::fs::copy(e.path(), bad.path().join(e.file_name())).unwrap();
    }
    // The corrupted mirror flips one pixel of the test images.
    let mut t = gunzip(&bad.path().join("t10k-images-idx3-ubyte.gz"));
    t[5000] ^= 0xff;
    std::fs::write(bad.path().join("t10k-images-idx3-ubyte.gz"), gz(&t)).unwrap();
    let Some((mut good_srv, good_url)) = http_server(good.path()) else {
        eprintln!("skipped: python3 cannot serve HTTP here");
        return;
    };
    let (mut bad_srv, bad_url) = http_server(bad.path()).unwrap();

    let dest = tempfile::tempdir().unwrap();
    let out = run(glimpse()
        .args(["data", "fetch", "mnist", "--only-mirrors", "--mirror", &bad_url, "--data-dir"])
        .arg(dest.path()));
    assert!(!out.status.success(), "a corrupt mirror alone must fail");
    assert!(String::from_utf8_lossy(&out.stderr).contains("SHA-256"));
    assert!(!dest.path().join("mnist/t10k-images-idx3-ubyte.gz").exists());

    let said = ok(glimpse()
        .args(["data", "fetch", "mnist", "--only-mirrors", "--mirror", &bad_url, "--mirror", &good_url, "--data-dir"])
        .arg(dest.path()));
    assert!(said.contains("verified"), "{said}");
    let v = ok(glimpse().args(["data", "verify", "--data-dir"]).arg(dest.path()));
    assert!(v.contains("mnist          ok (4 files verified)"), "{v}");
    good_srv.kill().ok();
    bad_srv.kill().ok();
}

#[test]
fn a_diverging_run_stops_at_the_first_non_finite_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path());
    let out = run(train_cmd(&cfg, &tmp.path().join("nan")).args(["--optimizer", "sgd", "--lr", "1e30"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("non-finite loss") && err.contains("at step"), "{err}");
    let step: u64 = err.split("at step ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!((2..=60).contains(&step), "{err}");
}

#[test]
fn ram_trains_evaluates_and_draws_its_glimpse_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("ram.toml");
    std::fs::write(
        &cfg,
        r#"seed = 3
[model]
kind = "ram"
input = [28, 28]
glimpses = 4
what_where = 32
hidden = 64
retina = { patch = 8, scales = 2 }
policy = { kind = "discrete", grid = 5 }
[train]
epochs = 2
batch_size = 20
valid_size = 100
checkpoint_every = 0
"#,
    )
    .unwrap();
    let run = tmp.path().join("ram");
    let mut c = glimpse();
    c.args(["train", "ram", "--quiet", "--config"]).arg(&cfg).arg("--out").arg(&run).arg("--data-dir").arg(fixture());
    assert!(ok(&mut c).contains("test error"));
    let v = eval_json(on_fixture(&mut eval(&run.join("best"))));
    assert_eq!((v["model"].as_str(), v["n"].as_u64()), (Some("ram"), Some(100)));
    let prefix = tmp.path().join("pics/g");
    let said = ok(glimpse()
        .args(["viz", "ram"])
        .arg(run.join("best"))
        .args(["--n", "5", "--out"])
        .arg(&prefix)
        .arg("--data-dir")
        .arg(fixture()));
    assert!(said.contains("of 5 right"), "{said}");
    assert_eq!(&std::fs::read(prefix.with_extension("png")).unwrap()[1..4], b"PNG");
    assert_eq!(&std::fs::read(prefix.with_extension("gif")).unwrap()[..6], b"GIF89a");
    // A non-RAM checkpoint is refused with a clear message.
    let mlp = tmp.path().join("mlp");
    ok(train_cmd(&write_config(tmp.path()), &mlp).args(["--epochs", "1"]));
    let out = run_cmd_err(glimpse().args(["viz", "ram"]).arg(mlp.join("best")).arg("--data-dir").arg(fixture()));
    assert!(out.contains("not a RAM"), "{out}");
}

/// Two runs of one MLP averaged into a checkpoint that `eval` reads and agrees with; a
/// checkpoint of other sizes is refused.
#[test]
fn average_writes_an_evaluable_mean_of_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path());
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ok(train_cmd(&cfg, &a).args(["--epochs", "1"]));
    ok(train_cmd(&cfg, &b).args(["--epochs", "1", "--seed", "6"]));
    let soup = tmp.path().join("soup");
    let json = ok(glimpse()
        .arg("average")
        .arg(a.join("best"))
        .arg(b.join("last"))
        .arg("--out")
        .arg(&soup)
        .arg("--json")
        .arg("--data-dir")
        .arg(fixture()));
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    let eval = ok(glimpse().arg("eval").arg(&soup).arg("--json").arg("--data-dir").arg(fixture()));
    let e: serde_json::Value = serde_json::from_str(eval.trim()).unwrap();
    assert_eq!(v["test_error"], e["test_error"], "{v} vs {e}");
    assert_eq!(v["averaged"].as_array().map(|a| a.len()), Some(2));
    let wa = tensors(&a.join("best/model.safetensors"));
    let ws = tensors(&soup.join("model.safetensors"));
    assert_eq!(wa.keys().collect::<Vec<_>>(), ws.keys().collect::<Vec<_>>());
    assert!(wa.iter().any(|(k, t)| ws[k].1 != t.1), "the mean differs from either run");
    assert_eq!(v["data_seed"], 5, "the first checkpoint's seed: {v}");
    // Checkpoints of one run share its training time: the soup records it once, not twice.
    // `--data-seed` sets the soup's data seed in place of its first checkpoint's.
    let same_run = tmp.path().join("same-run");
    let json = ok(glimpse()
        .arg("average")
        .arg(a.join("best"))
        .arg(a.join("last"))
        .arg("--out")
        .arg(&same_run)
        .args(["--data-seed", "9", "--json"])
        .arg("--data-dir")
        .arg(fixture()));
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["data_seed"], 9, "{v}");
    let soup_cfg = std::fs::read_to_string(same_run.join("config.toml")).unwrap();
    assert!(soup_cfg.lines().any(|l| l.trim() == "seed = 9"), "{soup_cfg}");
    let secs = |d: &std::path::Path| {
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("meta.json")).unwrap()).unwrap();
        m["train_seconds"].as_f64().unwrap()
    };
    let last = secs(&a.join("last"));
    assert!(last > 0.0);
    // Within a few ulps: serde_json's default float parsing may miss the written value by one.
    let close = |x: f64, y: f64| assert!((x - y).abs() <= 1e-12 * y.abs(), "{x} vs {y}");
    close(secs(&same_run), last.max(secs(&a.join("best"))));
    close(secs(&soup), secs(&a.join("best")) + secs(&b.join("last")));
    let wide = tmp.path().join("wide");
    let wide_cfg = tmp.path().join("wide.toml");
    std::fs::write(&wide_cfg, std::fs::read_to_string(&cfg).unwrap().replace("hidden = [32]", "hidden = [16]"))
        .unwrap();
    ok(train_cmd(&wide_cfg, &wide).args(["--epochs", "1"]));
    let err = run_cmd_err(
        glimpse()
            .arg("average")
            .arg(a.join("best"))
            .arg(wide.join("best"))
            .arg("--out")
            .arg(tmp.path().join("x"))
            .arg("--data-dir")
            .arg(fixture()),
    );
    assert!(err.contains("holds another model"), "{err}");
}

fn run_cmd_err(c: &mut Command) -> String {
    let out = run(c);
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A small NTM on short copies: train, kill-free resume, evaluate at a chosen length, draw.
#[test]
fn ntm_trains_evaluates_at_a_length_and_draws_its_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("ntm.toml");
    std::fs::write(
        &cfg,
        r#"seed = 2
[model]
kind = "ntm"
inputs = 5
outputs = 4
controller_size = 32
memory_n = 16
memory_m = 6
[task]
kind = "copy"
bits = 4
min_len = 1
max_len = 4
[train]
steps = 60
batch_size = 8
lr = 0.01
valid_size = 16
eval_every = 30
log_every = 10
[train.optimizer]
name = "adam"
"#,
    )
    .unwrap();
    let out = tmp.path().join("ntm");
    let said = ok(&mut train("ntm", &[], &cfg, &out));
    assert!(said.contains("60 steps") && said.contains("bit errors/seq"), "{said}");
    // Lengthen the run: resuming continues from step 60.
    let said = ok(glimpse()
        .args(["train", "ntm", "--quiet", "--resume", "--steps", "90", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out));
    assert!(said.contains("90 steps"), "{said}");
    // A resume without --config continues the run's own configuration; one that would change
    // the result (another learning rate) is refused, the key named.
    let said = ok(glimpse().args(["train", "ntm", "--quiet", "--resume", "--steps", "100", "--out"]).arg(&out));
    assert!(said.contains("100 steps"), "{said}");
    let err =
        run_cmd_err(glimpse().args(["train", "ntm", "--resume", "--steps", "110", "--lr", "0.1", "--out"]).arg(&out));
    assert!(err.contains("train.lr") && err.contains("would change its result"), "{err}");
    let v = eval_json(eval(&out.join("best")).args(["--len", "8", "--sequences", "20"]));
    assert_eq!((v["task"].as_str(), v["len"].as_u64(), v["n"].as_u64()), (Some("copy"), Some(8), Some(20)));
    let errors = v["bit_errors_per_seq"].as_f64().unwrap();
    assert!((0.0..=32.0).contains(&errors), "at most 8 × 4 bits can be wrong: {errors}");
    assert_eq!(v["data_seed"].as_u64(), Some(2), "the run's seed by default");
    // Other test sequences on request, the same ones for the same seed.
    let with_seed = || {
        let json =
            ok(glimpse().arg("eval").arg(out.join("best")).args(["--sequences", "20", "--json", "--data-seed", "7"]));
        serde_json::from_str::<serde_json::Value>(json.trim()).unwrap()
    };
    let (a, b) = (with_seed(), with_seed());
    assert_eq!(a["data_seed"].as_u64(), Some(7));
    assert_eq!(a["cost_bits_per_seq"], b["cost_bits_per_seq"]);
    let png = tmp.path().join("mem.png");
    let said = ok(glimpse().args(["viz", "ntm"]).arg(out.join("best")).args(["--len", "6", "--out"]).arg(&png));
    assert!(said.contains("length 6"), "{said}");
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
    // Copy has no repeat count to change.
    let err = run_cmd_err(glimpse().arg("eval").arg(out.join("best")).args(["--repeats", "3"]));
    assert!(err.contains("--repeats: copy has no repeats"), "{err}");
    // Image flags make no sense for sequence models; an impossible task is refused.
    let err = run_cmd_err(glimpse().args(["train", "ntm", "--epochs", "3", "--out"]).arg(tmp.path().join("x")));
    assert!(err.contains("--epochs does not apply to sequence model runs"), "{err}");
    // A new run from the checkpoint's weights (fresh optimizer), recorded in its config.
    let next = tmp.path().join("next");
    let said = ok(glimpse()
        .args(["train", "ntm", "--quiet", "--steps", "30", "--config"])
        .arg(&cfg)
        .arg("--init")
        .arg(out.join("best"))
        .arg("--out")
        .arg(&next));
    assert!(said.contains("30 steps"), "{said}");
    let saved = std::fs::read_to_string(next.join("best").join("config.toml")).unwrap();
    assert!(saved.contains("init = "), "{saved}");
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, std::fs::read_to_string(&cfg).unwrap().replace("min_len = 1", "min_len = 0")).unwrap();
    let err =
        run_cmd_err(glimpse().args(["train", "ntm", "--config"]).arg(&bad).arg("--out").arg(tmp.path().join("y")));
    assert!(err.contains("copy: need 1 ≤ min ≤ max"), "{err}");
    // Memory growth needs a learned first memory; this run's is the constant one.
    let err = run_cmd_err(
        glimpse().arg("grow-memory").arg(out.join("best")).args(["--rows", "32", "--out"]).arg(tmp.path().join("g")),
    );
    assert!(err.contains("no learned first memory"), "{err}");
}

#[test]
fn draw_trains_evaluates_its_bound_and_draws_its_canvas() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("draw.toml");
    std::fs::write(
        &cfg,
        r#"seed = 1
[model]
side = [28, 28]
steps = 3
encoder = 16
decoder = 16
latent = 4
read = 2
write = 3
[train]
epochs = 2
batch_size = 50
lr = 0.01
valid_size = 100
valid_every = 0
valid_limit = 0
"#,
    )
    .unwrap();
    let out = tmp.path().join("draw");
    let said = ok(on_fixture(&mut train("draw", &[], &cfg, &out)));
    assert!(said.contains("8 steps") && said.contains("nats"), "{said}");
    let v = eval_json(on_fixture(&mut eval(&out.join("best"))));
    assert_eq!((v["model"].as_str(), v["n"].as_u64()), (Some("draw"), Some(100)));
    let (nll, rec, kl) =
        (v["nll_nats"].as_f64().unwrap(), v["reconstruction_nats"].as_f64().unwrap(), v["kl_nats"].as_f64().unwrap());
    assert!(nll > 0.0 && nll < 784.0 * 2f64.ln() && (rec + kl - nll).abs() < 1e-6 * nll, "{v}");
    let prefix = tmp.path().join("pics").join("d");
    let said = ok(glimpse().args(["viz", "draw"]).arg(out.join("best")).args(["--n", "3", "--out"]).arg(&prefix));
    assert!(said.contains("wrote"), "{said}");
    for f in ["d-samples.png", "d-strip.png"] {
        assert_eq!(&std::fs::read(tmp.path().join("pics").join(f)).unwrap()[1..4], b"PNG");
    }
    assert_eq!(&std::fs::read(tmp.path().join("pics/d.gif")).unwrap()[..3], b"GIF");
    let err = run_cmd_err(glimpse().args(["train", "draw", "--canvas", "60", "--out"]).arg(tmp.path().join("x")));
    assert!(err.contains("--canvas does not apply to DRAW"), "{err}");
    let err = run_cmd_err(glimpse().arg("eval").arg(out.join("best")).args(["--data-seed", "3"]));
    assert!(err.contains("--data-seed applies to classifier and sequence checkpoints"), "{err}");
}

#[test]
fn draw_classifier_trains_and_draws_its_read_windows() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("dc.toml");
    std::fs::write(
        &cfg,
        r#"seed = 1
[model]
kind = "draw-classifier"
input = [28, 28]
glimpses = 3
read = 6
hidden = 32
classes = 10
dropout = 0.2
[train]
epochs = 3
batch_size = 20
lr = 0.003
valid_size = 100
"#,
    )
    .unwrap();
    let out = tmp.path().join("dc");
    let said = ok(on_fixture(&mut train("draw-classifier", &[], &cfg, &out)));
    assert!(said.contains("test error"), "{said}");
    let v = eval_json(on_fixture(&mut eval(&out.join("best"))));
    assert_eq!(v["model"].as_str(), Some("draw-classifier"));
    let prefix = tmp.path().join("reads");
    let said = ok(glimpse()
        .args(["viz", "draw"])
        .arg(out.join("best"))
        .args(["--n", "4", "--out"])
        .arg(&prefix)
        .arg("--data-dir")
        .arg(fixture()));
    assert!(said.contains("of 4 right"), "{said}");
    assert_eq!(&std::fs::read(prefix.with_extension("png")).unwrap()[1..4], b"PNG");
    assert_eq!(&std::fs::read(prefix.with_extension("gif")).unwrap()[..3], b"GIF");
    // A curriculum's next stage starts from these weights, and its checkpoint says so.
    let next = tmp.path().join("next");
    let said =
        ok(on_fixture(train("draw-classifier", &["--epochs", "1"], &cfg, &next).arg("--init").arg(out.join("best"))));
    assert!(said.contains("test error"), "{said}");
    let saved = std::fs::read_to_string(next.join("best").join("config.toml")).unwrap();
    assert!(saved.contains("init = "), "{saved}");
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Dates from the committed locale fixture: train a small attention model, evaluate its exact
/// match, normalise one date and draw the alignment; resume lengthens a run.
#[test]
fn seq2seq_trains_on_dates_evaluates_translates_and_draws_the_alignment() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("dates.toml");
    let locales = fixtures().join("locales");
    std::fs::write(
        &cfg,
        format!(
            r#"seed = 2
[task]
kind = "dates"
locales = ["de_TEST"]
locale_dir = "{}"
valid_examples = 50
test_examples = 60
[model]
kind = "seq2seq"
src_vocab = 0
tgt_vocab = 0
embed = 8
encoder = 16
decoder = 32
attention = "additive"
attention_hidden = 16
[train]
steps = 30
batch_size = 16
lr = 0.01
valid_every = 0
checkpoint_every = 10
max_len = 12
beam = 1
"#,
            locales.display()
        ),
    )
    .unwrap();
    let out = tmp.path().join("run");
    let said = ok(&mut train("seq2seq", &[], &cfg, &out));
    assert!(said.contains("30 steps"), "{said}");
    let said = ok(glimpse()
        .args(["train", "seq2seq", "--quiet", "--resume", "--steps", "40", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out));
    assert!(said.contains("40 steps"), "{said}");
    let v = eval_json(&mut eval(&out.join("best")));
    assert_eq!((v["model"].as_str(), v["task"].as_str(), v["n"].as_u64()), (Some("seq2seq"), Some("dates"), Some(60)));
    let em = v["exact_match"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&em), "{v}");
    let prefix = tmp.path().join("pics").join("align");
    let said = run(glimpse()
        .arg("translate")
        .arg(out.join("best"))
        .arg("Mittwoch, 3. März 2021")
        .args(["--beam", "2", "--alignment"])
        .arg(&prefix));
    // A model this small answers a calendar date (digits and dashes, ten characters), or an
    // answer that is none and refused as such; either way the alignment is drawn.
    let (line, err) = (String::from_utf8_lossy(&said.stdout), String::from_utf8_lossy(&said.stderr));
    match said.status.success() {
        true => {
            assert!(line.trim().len() == 10 && line.trim().chars().all(|c| c.is_ascii_digit() || c == '-'), "{line}")
        }
        false => assert!(err.contains("not a date this model can read"), "{err}"),
    }
    assert_eq!(&std::fs::read(prefix.with_extension("png")).unwrap()[1..4], b"PNG");
    assert!(std::fs::read_to_string(prefix.with_extension("svg")).unwrap().contains("<svg"));
    let err = run_cmd_err(glimpse().args(["train", "seq2seq", "--epochs", "3", "--out"]).arg(tmp.path().join("x")));
    assert!(err.contains("--epochs does not apply"), "{err}");
    let err = run_cmd_err(glimpse().args(["train", "seq2seq", "--init", "x", "--out"]).arg(tmp.path().join("x")));
    assert!(err.contains("--init does not apply"), "{err}");
}

/// German→English from the committed dictionary fixture: a tiny Transformer trains and its
/// checkpoint reports BLEU; a no-attention seq2seq has no alignment to draw.
#[test]
fn transformer_and_noattention_seq2seq_on_a_tiny_dictionary() {
    let tmp = tempfile::tempdir().unwrap();
    let dict = fixtures().join("de-en-mini");
    for (name, model) in [
        (
            "transformer",
            "kind = \"transformer\"\nd_model = 16\nheads = 2\nff = 32\nencoder_layers = 1\ndecoder_layers = 1",
        ),
        ("seq2seq", "kind = \"seq2seq\"\nembed = 8\nencoder = 8\ndecoder = 16"),
    ] {
        let cfg = tmp.path().join(format!("{name}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "seed = 1\n[task]\nkind = \"de-en\"\npath = \"{}\"\nbpe_merges = 50\n[model]\n{model}\nsrc_vocab = 0\ntgt_vocab = 0\n[train]\nsteps = 6\nbatch_size = 8\nvalid_every = 0\nmax_len = 10\nbeam = 2\n",
                dict.display()
            ),
        )
        .unwrap();
        let out = tmp.path().join(name);
        ok(&mut train(name, &[], &cfg, &out));
        let v = eval_json(&mut eval(&out.join("best")));
        assert_eq!(v["task"].as_str(), Some("de-en"), "{v}");
        assert!(v["bleu"].as_f64().is_some_and(|b| (0.0..=100.0).contains(&b)), "{v}");
        assert_eq!(v["bleu_by_source_length"].as_array().map(Vec::len), Some(5), "{v}");
        let said = ok(glimpse().arg("translate").arg(out.join("best")).arg("Der Hund schläft."));
        assert!(!said.contains("error"), "{said}");
        if name == "seq2seq" {
            let err = run_cmd_err(
                glimpse()
                    .arg("translate")
                    .arg(out.join("best"))
                    .arg("Das Haus.")
                    .arg("--alignment")
                    .arg(tmp.path().join("a")),
            );
            assert!(err.contains("does not attend"), "{err}");
        }
    }
}

/// A tiny synthesis network on real text lines (Hershey fonts and the Ding dictionary, when the
/// Debian packages are installed): a resumed run repeats the uninterrupted loss curve; the
/// checkpoint reports its NLL and window check, writes a line as SVG and PNG with its window
/// picture, and primes with a held-out line.
#[test]
fn handwriting_trains_resumes_evaluates_and_writes() {
    if !Path::new("/usr/share/hershey-fonts/cursive.jhf").is_file() || !Path::new("/usr/share/trans/de-en").is_file() {
        eprintln!("skipped: needs the Debian packages hershey-fonts-data and trans-de-en");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("hw.toml");
    std::fs::write(
        &cfg,
        r#"seed = 3
[data]
kind = "text-lines"
max_chars = 12
held_out = 6
[model]
hidden = 16
layers = 2
mixtures = 3
window = 2
alphabet = 95
[train]
steps = 4
batch_size = 4
valid_every = 2
checkpoint_every = 2
log_every = 1
"#,
    )
    .unwrap();
    let train = |out: &Path, steps: &str, resume: bool| {
        let mut c = glimpse();
        c.args(["train", "handwriting", "--quiet", "--steps", steps, "--config"]).arg(&cfg).arg("--out").arg(out);
        if resume {
            c.arg("--resume");
        }
        ok(&mut c)
    };
    let (straight, split) = (tmp.path().join("a"), tmp.path().join("b"));
    assert!(train(&straight, "4", false).contains("4 steps"));
    train(&split, "2", false);
    assert!(train(&split, "4", true).contains("4 steps"));
    let curve = |out: &Path| -> Vec<String> {
        std::fs::read_to_string(out.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| format!("{} {} {} {}", v["split"], v["step"], v["nll_per_point"], v["nll_nats"]))
            .collect()
    };
    assert_eq!(curve(&straight).len(), 6);
    assert_eq!(curve(&straight), curve(&split));
    let v = eval_json(eval(&straight.join("best")).args(["--sequences", "3", "--bias", "2"]));
    let n = v["sequences"].as_u64().unwrap();
    assert!(v["network"] == "synthesis" && (1..=6).contains(&n), "{v}");
    let per_point = v["nll_nats_per_point"].as_f64().unwrap();
    let per_seq = v["nll_nats"].as_f64().unwrap();
    assert!(per_point.is_finite() && (per_seq / per_point) > 20.0, "{v}");
    assert_eq!(v["window"]["n"].as_u64(), Some(n.min(3)));
    let svg = tmp.path().join("line.svg");
    let said = ok(glimpse()
        .arg("write")
        .arg(straight.join("best"))
        .arg("attention")
        .args(["--samples", "2", "--max-steps", "30", "--out"])
        .arg(&svg)
        .arg("--window")
        .arg(tmp.path().join("phi")));
    assert!(said.contains("2 lines"), "{said}");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("attention (bias 1"));
    assert!(std::fs::read_to_string(tmp.path().join("phi.svg")).unwrap().contains(">n</text>"));
    assert_eq!(&std::fs::read(tmp.path().join("phi.png")).unwrap()[1..4], b"PNG");
    let png = tmp.path().join("line.png");
    ok(glimpse()
        .arg("write")
        .arg(straight.join("best"))
        .args(["memory", "--prime", "0", "--max-steps", "20", "--out"])
        .arg(&png));
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
    let err = run_cmd_err(glimpse().arg("write").arg(straight.join("best")).arg("Straße").arg("--out").arg(&png));
    assert!(err.contains("printable ASCII"), "{err}");
    let err = run_cmd_err(glimpse().arg("write").arg(straight.join("best")).arg("--out").arg(&png));
    assert!(err.contains("writes a TEXT"), "{err}");
}

/// The texts people give `translate` and `write`, on the committed checkpoints: empty, far too
/// long, unknown characters, a file of texts with a line that is not UTF-8. Each bad one is
/// refused in one line naming the problem (and the line), never with a panic.
#[test]
fn translate_and_write_answer_bad_texts_in_one_line() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (dates, hand) = (repo.join("checkpoints/seq2seq-dates"), repo.join("checkpoints/handwriting-synthesis"));
    let one_line = |err: &str| {
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!err.contains("panicked"), "{err}");
    };
    let long = "3 March 1999 ".repeat(100);
    for (text, want) in [("", "nothing to translate"), (long.as_str(), "more than this model takes (120")] {
        let err = run_cmd_err(glimpse().arg("translate").arg(&dates).arg(text));
        assert!(err.contains(want), "{err}");
        one_line(&err);
    }
    // A date that does not exist is not invented: the answer fails the calendar check.
    let err = run_cmd_err(glimpse().arg("translate").arg(&dates).arg("31 February 2001"));
    assert!(err.contains("not a date this model can read") && err.contains("2001-02-31"), "{err}");
    one_line(&err);
    // Nor is a text that is no date, when the model is unsure of its answer (the confidence check).
    let err = run_cmd_err(glimpse().arg("translate").arg(&dates).args(["tomorrow", "--beam", "1"]));
    assert!(err.contains("not a date this model can read") && err.contains("probability"), "{err}");
    one_line(&err);
    // Unknown characters are read as <unk>, and said so.
    let out = run(glimpse().arg("translate").arg(&dates).arg("日本 3 March 1999"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("read as <unk>: 日本"));
    // A file: one translation a line; a line that is not UTF-8 is named.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("dates.txt");
    std::fs::write(&file, "3 March 1999\n\n1 janvier 2001\n31 February 2001\n").unwrap();
    let said = ok(glimpse().arg("translate").arg(&dates).arg("--file").arg(&file));
    assert_eq!(said.lines().collect::<Vec<_>>(), ["1999-03-03", "2001-01-01", "-"], "{said}");
    std::fs::write(&file, b"3 March 1999\n\xff\xfe\n").unwrap();
    let err = run_cmd_err(glimpse().arg("translate").arg(&dates).arg("--file").arg(&file));
    assert!(err.contains("dates.txt: line 2 is not UTF-8"), "{err}");
    one_line(&err);
    let svg = tmp.path().join("w.svg");
    let long = "abc ".repeat(200);
    for (text, want) in [("", "nothing to write"), ("héllo", "'é' cannot be written"), (long.as_str(), "at most 500")]
    {
        let err = run_cmd_err(glimpse().arg("write").arg(&hand).arg(text).arg("--out").arg(&svg));
        assert!(err.contains(want), "{err}");
        one_line(&err);
    }
}
