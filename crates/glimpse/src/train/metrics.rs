//! Run metrics: one JSON object per line in `metrics.jsonl`, and TensorBoard event files.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// Appends metrics to `DIR/metrics.jsonl` and to a TensorBoard event file under `DIR/tb/`.
pub struct MetricsLog {
    jsonl: File,
    tb: EventWriter,
}

impl MetricsLog {
    /// Opens the logs of the run in `dir`. When resuming from `resume_step`, lines logged after
    /// that step by the interrupted process are dropped, so the file reads as one clean run.
    pub fn open(dir: &Path, resume_step: Option<u64>) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("metrics.jsonl");
        if let Some(step) = resume_step.filter(|_| path.exists()) {
            let kept: Vec<String> = BufReader::new(File::open(&path)?)
                .lines()
                .map_while(Result::ok)
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v["step"].as_u64())
                        .is_some_and(|s| s <= step)
                })
                .collect();
            let mut text = kept.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            crate::data::fetch::write_atomic(&path, text.as_bytes())?;
        }
        let jsonl =
            File::options().create(true).append(true).open(&path).with_context(|| format!("{}", path.display()))?;
        let tb = EventWriter::create(&dir.join("tb"))?;
        Ok(Self { jsonl, tb })
    }

    /// Logs `values` for `split` (`train`, `valid`, `test`) at `step`, in `epoch` (counted from
    /// 1; none for runs without epochs).
    pub fn log(&mut self, split: &str, step: u64, epoch: Option<usize>, values: &[(&str, f64)]) -> Result<()> {
        let mut obj = serde_json::Map::new();
        obj.insert("step".into(), step.into());
        if let Some(e) = epoch {
            obj.insert("epoch".into(), e.into());
        }
        obj.insert("split".into(), split.into());
        for (k, v) in values {
            obj.insert((*k).into(), (*v).into());
            self.tb.scalar(&format!("{split}/{k}"), step as i64, *v as f32)?;
        }
        writeln!(self.jsonl, "{}", serde_json::Value::Object(obj))?;
        self.jsonl.flush()?;
        self.tb.flush()?;
        Ok(())
    }
}

/// CRC-32C masked as TFRecord requires.
fn masked_crc(bytes: &[u8]) -> u32 {
    let c = crc32c::crc32c(bytes);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// A protobuf varint.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited protobuf field.
fn bytes_field(field: u64, data: &[u8], out: &mut Vec<u8>) {
    varint(field << 3 | 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

/// Encodes a TensorBoard `Event` with wall time, step, and either a file version or one scalar.
pub fn encode_event(wall_time: f64, step: i64, file_version: Option<&str>, scalar: Option<(&str, f32)>) -> Vec<u8> {
    let mut ev = vec![];
    varint(1 << 3 | 1, &mut ev); // wall_time: double
    ev.extend_from_slice(&wall_time.to_le_bytes());
    varint(2 << 3, &mut ev); // step: int64
    varint(step as u64, &mut ev);
    if let Some(v) = file_version {
        bytes_field(3, v.as_bytes(), &mut ev);
    }
    if let Some((tag, value)) = scalar {
        let mut val = vec![];
        bytes_field(1, tag.as_bytes(), &mut val); // Summary.Value.tag
        varint(2 << 3 | 5, &mut val); // simple_value: float
        val.extend_from_slice(&value.to_le_bytes());
        let mut summary = vec![];
        bytes_field(1, &val, &mut summary); // Summary.value
        bytes_field(5, &summary, &mut ev); // Event.summary
    }
    ev
}

/// Frames `data` as one TFRecord.
pub fn tfrecord(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// Writes scalar summaries in TensorBoard's event-file format (TFRecord of `Event` protos).
pub struct EventWriter {
    file: File,
    /// The event file's path.
    pub path: PathBuf,
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl EventWriter {
    /// Creates a new event file in `dir`.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let t = now();
        let path = dir.join(format!("events.out.tfevents.{}.glimpse.{}", t as u64, std::process::id()));
        let mut file = File::create(&path).with_context(|| format!("{}", path.display()))?;
        file.write_all(&tfrecord(&encode_event(t, 0, Some("brain.Event:2"), None)))?;
        Ok(Self { file, path })
    }

    /// Appends one scalar.
    pub fn scalar(&mut self, tag: &str, step: i64, value: f32) -> Result<()> {
        self.file.write_all(&tfrecord(&encode_event(now(), step, None, Some((tag, value)))))?;
        Ok(())
    }

    /// Flushes to disk.
    pub fn flush(&mut self) -> Result<()> {
        self.file.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_value() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn event_file_records_are_framed_and_checksummed() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        w.scalar("train/loss", 7, 0.5).unwrap();
        w.flush().unwrap();
        let bytes = std::fs::read(&w.path).unwrap();
        let mut records = vec![];
        let mut i = 0;
        while i < bytes.len() {
            let len = u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap()) as usize;
            assert_eq!(u32::from_le_bytes(bytes[i + 8..i + 12].try_into().unwrap()), masked_crc(&bytes[i..i + 8]));
            let data = &bytes[i + 12..i + 12 + len];
            assert_eq!(u32::from_le_bytes(bytes[i + 12 + len..i + 16 + len].try_into().unwrap()), masked_crc(data));
            records.push(data.to_vec());
            i += 16 + len;
        }
        assert_eq!(records.len(), 2);
        assert!(records[0].windows(13).any(|w| w == b"brain.Event:2"));
        let r = &records[1];
        assert!(r.windows(10).any(|w| w == b"train/loss"));
        assert!(r.windows(4).any(|w| w == 0.5f32.to_le_bytes()));
        assert_eq!(&r[9..11], &[0x10, 7], "step field");
    }

    #[test]
    fn resume_drops_lines_after_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = MetricsLog::open(dir.path(), None).unwrap();
        for s in 1..=5 {
            m.log("train", s, None, &[("loss", s as f64)]).unwrap();
        }
        drop(m);
        let mut m = MetricsLog::open(dir.path(), Some(3)).unwrap();
        m.log("train", 4, None, &[("loss", 9.0)]).unwrap();
        let text = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
        let steps: Vec<u64> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
            .collect();
        assert_eq!(steps, vec![1, 2, 3, 4]);
    }
}
