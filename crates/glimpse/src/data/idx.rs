//! The IDX file format of MNIST and Fashion-MNIST, plain or gzipped.
//!
//! An IDX file is a 4-byte magic number (`0, 0, type, ndim`; type `0x08` is unsigned byte), then
//! `ndim` big-endian `u32` dimension sizes, then the data in row-major order. Every way a file can
//! be wrong gives a [`DataError`] that names the file and the problem.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

/// A data file that could not be read, with the file's path and what was wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct DataError {
    /// The file at fault.
    pub path: PathBuf,
    /// What is wrong with it, in one line.
    pub problem: String,
}

impl DataError {
    /// An error about `path`.
    pub fn new(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Self { path: path.into(), problem: problem.into() }
    }
}

/// An IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimension sizes, outermost first.
    pub dims: Vec<usize>,
    /// `dims.iter().product()` bytes, row-major.
    pub data: Vec<u8>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const IDX_UBYTE: u8 = 0x08;

/// Reads a whole file, unpacking it when it is gzipped (by content, or because its name ends in
/// `.gz`, in which case it must be gzip).
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::new(path, format!("cannot read: {e}")))?;
    if raw.starts_with(&GZIP_MAGIC) {
        unpack(&raw).map_err(|e| DataError::new(path, format!("corrupt or truncated gzip stream: {e}")))
    } else if path.extension().is_some_and(|e| e == "gz") {
        Err(DataError::new(path, "named .gz but is not a gzip file (bad gzip magic)"))
    } else {
        Ok(raw)
    }
}

/// Unpacks `bytes` if they are gzip (by their magic number), else returns them as they are.
pub fn unpack(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    if bytes.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::with_capacity(bytes.len() * 4);
        GzDecoder::new(bytes).read_to_end(&mut out)?;
        Ok(out)
    } else {
        Ok(bytes.to_vec())
    }
}

/// Parses IDX bytes (already unpacked), expecting unsigned-byte data of rank `ndim`.
pub fn parse_idx(path: &Path, bytes: &[u8], ndim: usize) -> Result<IdxArray, DataError> {
    if bytes.len() < 4 {
        return Err(DataError::new(path, format!("truncated: {} bytes, too short for an IDX header", bytes.len())));
    }
    let magic = &bytes[..4];
    if magic[0] != 0 || magic[1] != 0 {
        return Err(DataError::new(
            path,
            format!("wrong magic number {magic:02x?}: not an IDX file (expected 00 00 08 {ndim:02x})"),
        ));
    }
    if magic[2] != IDX_UBYTE {
        return Err(DataError::new(path, format!("IDX element type 0x{:02x} is not unsigned byte (0x08)", magic[2])));
    }
    if magic[3] as usize != ndim {
        return Err(DataError::new(path, format!("IDX rank is {}, expected {ndim}", magic[3])));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(DataError::new(path, format!("truncated: header needs {header} bytes, file has {}", bytes.len())));
    }
    let dims: Vec<usize> =
        bytes[4..header].chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::new(path, format!("dimensions {dims:?} overflow")))?;
    let found = bytes.len() - header;
    if found < expected {
        return Err(DataError::new(
            path,
            format!("truncated: dimensions {dims:?} need {expected} data bytes, found {found}"),
        ));
    }
    if found > expected {
        return Err(DataError::new(
            path,
            format!("{} trailing bytes after the {expected} data bytes of dimensions {dims:?}", found - expected),
        ));
    }
    Ok(IdxArray { dims, data: bytes[header..].to_vec() })
}

/// Reads an IDX file (plain or gzipped) of rank `ndim`.
pub fn read_idx(path: &Path, ndim: usize) -> Result<IdxArray, DataError> {
    parse_idx(path, &read_maybe_gz(path)?, ndim)
}

/// Encodes an unsigned-byte IDX array (used to write fixtures and subsets).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, IDX_UBYTE, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn round_trip_plain_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = encode_idx(&[2, 3, 2], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let plain = dir.path().join("x-idx3-ubyte");
        let packed = dir.path().join("x-idx3-ubyte.gz");
        std::fs::write(&plain, &bytes).unwrap();
        std::fs::write(&packed, gz(&bytes)).unwrap();
        for p in [&plain, &packed] {
            let a = read_idx(p, 3).unwrap();
            assert_eq!(a.dims, vec![2, 3, 2]);
            assert_eq!(a.data[11], 12);
        }
    }

    fn err(bytes: &[u8], name: &str, ndim: usize) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = read_idx(&p, ndim).unwrap_err().to_string();
        assert!(e.contains(name), "error should name the file: {e}");
        assert!(!e.contains('\n'), "one line: {e}");
        e
    }

    #[test]
    fn wrong_magic_is_named() {
        let mut b = encode_idx(&[1, 2, 2], &[0; 4]);
        b[0] = 7;
        assert!(err(&b, "m", 3).contains("wrong magic"));
        let mut b = encode_idx(&[1, 2, 2], &[0; 4]);
        b[2] = 0x0d;
        assert!(err(&b, "m", 3).contains("not unsigned byte"));
        assert!(err(&encode_idx(&[4], &[0; 4]), "m", 3).contains("rank is 1"));
    }

    #[test]
    fn truncated_and_trailing_data() {
        let b = encode_idx(&[2, 2, 2], &[0; 8]);
        assert!(err(&b[..b.len() - 1], "t", 3).contains("truncated"));
        assert!(err(&b[..10], "t", 3).contains("truncated"));
        assert!(err(&b[..2], "t", 3).contains("truncated"));
        let mut long = b.clone();
        long.push(0);
        assert!(err(&long, "t", 3).contains("trailing"));
    }

    #[test]
    fn gzip_problems() {
        let b = encode_idx(&[2, 2, 2], &[0; 8]);
        assert!(err(&b, "plain.gz", 3).contains("not a gzip file"));
        let z = gz(&b);
        assert!(err(&z[..z.len() / 2], "cut.gz", 3).contains("gzip"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = parse_idx(Path::new("fuzz"), &bytes, 3);
            let _ = parse_idx(Path::new("fuzz"), &bytes, 1);
        }
    }
}
