//! Fetching data sets from public mirrors, and verifying data sets on disk, by the SHA-256 of
//! each file's unpacked bytes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::idx::{read_maybe_gz, unpack};
use super::registry::{DatasetSpec, KnownFile};

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The state of one file of a data set under a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStatus {
    /// Present and its checksum matches.
    Ok(PathBuf),
    /// Not found.
    Absent,
    /// Present but unreadable or with the wrong checksum.
    Corrupt(PathBuf, String),
}

/// Checks one file: found, readable, and with the expected unpacked SHA-256.
pub fn verify_file(spec: &DatasetSpec, root: &Path, file: &KnownFile) -> FileStatus {
    let Some(path) = spec.locate(root, file.name) else { return FileStatus::Absent };
    match read_maybe_gz(&path) {
        Err(e) => FileStatus::Corrupt(path, e.problem),
        Ok(bytes) => {
            let got = sha256_hex(&bytes);
            if got == file.sha256 {
                FileStatus::Ok(path)
            } else {
                FileStatus::Corrupt(path, format!("SHA-256 of unpacked bytes is {got}, expected {}", file.sha256))
            }
        }
    }
}

/// Checks every file of a data set.
pub fn verify(spec: &DatasetSpec, root: &Path) -> Vec<(KnownFile, FileStatus)> {
    spec.files.iter().map(|f| (*f, verify_file(spec, root, f))).collect()
}

/// Downloads `url` whole (up to 512 MiB).
fn download(url: &str) -> Result<Vec<u8>> {
    let mut resp = ureq::get(url).call().with_context(|| format!("GET {url}"))?;
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(512 << 20)
        .read_to_vec()
        .with_context(|| format!("reading the body of {url}"))?;
    Ok(bytes)
}

/// Fetches every file of `spec` that is not already present and valid under `dest_root`,
/// trying each of `mirrors` in turn (`<mirror><name>.gz`). A download whose unpacked SHA-256 is
/// wrong is rejected and the next mirror tried. Returns the paths of the files written.
pub fn fetch(spec: &DatasetSpec, dest_root: &Path, mirrors: &[String]) -> Result<Vec<PathBuf>> {
    let mut written = vec![];
    for file in spec.files {
        let dest = dest_root.join(spec.dir).join(format!("{}.gz", file.name));
        if let Ok(bytes) = read_maybe_gz(&dest)
            && sha256_hex(&bytes) == file.sha256
        {
            tracing::info!("{} already present and valid", dest.display());
            continue;
        }
        let mut failures = vec![];
        let mut done = false;
        for base in mirrors {
            let url = format!("{base}{}.gz", file.name);
            tracing::debug!("fetching {url}");
            let outcome = download(&url).and_then(|bytes| {
                let unpacked = unpack(&bytes).with_context(|| format!("{url} is not a valid gzip stream"))?;
                let got = sha256_hex(&unpacked);
                if got != file.sha256 {
                    bail!("{url}: SHA-256 of unpacked bytes is {got}, expected {}", file.sha256);
                }
                Ok(bytes)
            });
            match outcome {
                Ok(bytes) => {
                    write_atomic(&dest, &bytes).with_context(|| format!("writing {}", dest.display()))?;
                    written.push(dest.clone());
                    done = true;
                    break;
                }
                Err(e) => {
                    tracing::debug!("{e:#}");
                    failures.push(format!("{e:#}"));
                }
            }
        }
        if !done {
            bail!("could not fetch {} of {} from any mirror: {}", file.name, spec.name, failures.join("; "));
        }
    }
    Ok(written)
}

/// Fetches `spec` from its public mirrors into `root` when none of its files is there; a data
/// set that is present (even partly or corrupt) is left for the loader to judge.
///
/// When it cannot be fetched (no network, say), the error is one line saying what to do; each
/// mirror's own error is logged at the debug level (`RUST_LOG=debug`), and `glimpse data fetch`
/// reports them all.
pub fn ensure(spec: &DatasetSpec, root: &Path) -> Result<()> {
    if spec.files.iter().all(|f| spec.locate(root, f.name).is_none()) && !spec.mirrors.is_empty() {
        tracing::info!("{} is not under {}: fetching it", spec.name, root.display());
        let mirrors: Vec<String> = spec.mirrors.iter().map(|m| m.to_string()).collect();
        if let Err(e) = fetch(spec, root, &mirrors) {
            tracing::debug!("{e:#}");
            bail!("{}", missing_data(spec, root));
        }
    }
    Ok(())
}

/// What to do about a data set that is neither under `root` nor downloadable, in one line.
fn missing_data(spec: &DatasetSpec, root: &Path) -> String {
    format!(
        "{} is not under {} and could not be downloaded: run `glimpse data fetch {}` where the network is \
         reachable, or point --data-dir or GLIMPSE_DATA at a folder holding {}/",
        spec.name,
        root.display(),
        spec.name,
        spec.dir
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::registry::KnownFile;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// A one-thread HTTP/1.1 server on 127.0.0.1 serving `files` (path → bytes), 404 otherwise.
    /// Serves `max_requests` requests, then stops.
    pub(crate) fn serve(files: Vec<(String, Vec<u8>)>, max_requests: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(max_requests) {
                let Ok(mut s) = stream else { continue };
                let mut reader = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap() <= 2 {
                        break;
                    }
                }
                match files.iter().find(|(p, _)| *p == path) {
                    Some((_, body)) => {
                        write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                            .unwrap();
                        s.write_all(body).unwrap();
                    }
                    None => {
                        write!(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
                    }
                }
            }
        });
        format!("http://{addr}")
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    const A: &[u8] = b"first file";
    const B: &[u8] = b"second file";

    fn spec() -> DatasetSpec {
        let files: &'static [KnownFile] = Box::leak(Box::new([
            KnownFile { name: "a-idx1-ubyte", sha256: Box::leak(sha256_hex(A).into_boxed_str()) },
            KnownFile { name: "b-idx1-ubyte", sha256: Box::leak(sha256_hex(B).into_boxed_str()) },
        ]));
        DatasetSpec { name: "toy", dir: "toy", files, mirrors: &[], system_dir: None, licence: "" }
    }

    /// A data set neither on disk nor downloadable (its one mirror answers 404): one line that
    /// says what to do, and nothing written.
    #[test]
    fn a_missing_data_set_that_cannot_be_fetched_says_what_to_do_in_one_line() {
        let empty = serve(vec![], 2);
        let mirrors: &'static [&'static str] =
            Box::leak(Box::new([&*Box::leak(format!("{empty}/x/").into_boxed_str())]));
        let s = DatasetSpec { mirrors, ..spec() };
        let dir = tempfile::tempdir().unwrap();
        let err = format!("{:#}", ensure(&s, dir.path()).unwrap_err());
        assert!(!err.contains('\n') && err.contains("glimpse data fetch toy") && err.contains("GLIMPSE_DATA"), "{err}");
        assert!(err.contains("holding toy/"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written");
    }

    #[test]
    fn fetches_from_the_second_mirror_after_a_corrupt_first() {
        let good = serve(vec![("/good/a-idx1-ubyte.gz".into(), gz(A)), ("/good/b-idx1-ubyte.gz".into(), gz(B))], 4);
        // The first mirror serves a corrupted copy of `a` and lacks `b`.
        let bad = serve(vec![("/bad/a-idx1-ubyte.gz".into(), gz(b"first fil3"))], 4);
        let dir = tempfile::tempdir().unwrap();
        let s = spec();
        let mirrors = vec![format!("{bad}/bad/"), format!("{good}/good/")];
        let written = fetch(&s, dir.path(), &mirrors).unwrap();
        assert_eq!(written.len(), 2);
        assert!(verify(&s, dir.path()).iter().all(|(_, st)| matches!(st, FileStatus::Ok(_))));
    }

    #[test]
    fn a_corrupt_copy_alone_is_rejected() {
        let bad = serve(vec![("/a-idx1-ubyte.gz".into(), gz(b"tampered"))], 4);
        let dir = tempfile::tempdir().unwrap();
        let e = fetch(&spec(), dir.path(), &[format!("{bad}/")]).unwrap_err().to_string();
        assert!(e.contains("SHA-256"), "{e}");
        assert!(!dir.path().join("toy/a-idx1-ubyte.gz").exists(), "nothing written");
    }

    #[test]
    fn verify_reports_absent_and_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec();
        assert!(verify(&s, dir.path()).iter().all(|(_, st)| *st == FileStatus::Absent));
        std::fs::create_dir_all(dir.path().join("toy")).unwrap();
        std::fs::write(dir.path().join("toy/a-idx1-ubyte.gz"), gz(A)).unwrap();
        std::fs::write(dir.path().join("toy/b-idx1-ubyte"), b"wrong").unwrap();
        let st = verify(&s, dir.path());
        assert!(matches!(st[0].1, FileStatus::Ok(_)));
        assert!(matches!(&st[1].1, FileStatus::Corrupt(_, why) if why.contains("SHA-256")));
    }
}
