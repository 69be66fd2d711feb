//! TensorBoard event files: tagged scalars at a step, readable by `tensorboard --logdir runs/`.
//! What the scalars are (the columns of `metrics.csv`, one event per update) is
//! [`crate::metrics`]'s business: this module knows the file format only.
//!
//! The format is TensorFlow's: a sequence of records (`u64` length, masked CRC-32C of the
//! length, the bytes, masked CRC-32C of the bytes), each an `Event` protocol buffer (from
//! `tensorflow/core/util/event.proto` and `summary.proto`): the first carries
//! `file_version = "brain.Event:2"`, the others a `Summary` of simple values. A run that
//! resumes opens a new file starting with a `SessionLog` START (field 7) at the first update it
//! redoes, so TensorBoard drops that file's predecessors' points from that step on (what the
//! crash had logged after the checkpoint) instead of drawing them twice.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// The folder inside a run directory that holds the event files.
pub const TENSORBOARD_DIR: &str = "tensorboard";

/// Writes one event file.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

/// Seconds since the Unix epoch, as TensorBoard's `wall_time`.
fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl EventWriter {
    /// Creates a new event file in `dir` (created if needed), named as TensorFlow names them
    /// (`events.out.tfevents.<seconds>.<host>.<pid>.<n>`), and writes its version event.
    pub fn create(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let secs = now_s() as u64;
        let host = crate::run_lock::host_name();
        let pid = std::process::id();
        let mut n = 0;
        let path = loop {
            let p = dir.join(format!("events.out.tfevents.{secs}.{host}.{pid}.{n}"));
            if !p.exists() {
                break p;
            }
            n += 1;
        };
        let file =
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut w = Self {
            path,
            out: BufWriter::new(file),
        };
        let mut event = event_header(now_s(), 0);
        put_bytes(&mut event, 3, b"brain.Event:2");
        w.record(&event)?;
        w.flush()?;
        Ok(w)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A `SessionLog` START at `step`: TensorBoard discards points of earlier files at this
    /// step and after.
    pub fn session_start(&mut self, step: i64) -> Result<()> {
        let mut session_log = Vec::new();
        put_varint_field(&mut session_log, 1, 1); // status = START
        let mut event = event_header(now_s(), step);
        put_bytes(&mut event, 7, &session_log);
        self.record(&event)
    }

    /// One event at `step` holding a simple value per `(tag, value)`.
    pub fn scalars(&mut self, step: i64, values: &[(String, f32)]) -> Result<()> {
        let mut summary = Vec::new();
        for (tag, value) in values {
            let mut v = Vec::new();
            put_bytes(&mut v, 1, tag.as_bytes());
            put_key(&mut v, 2, 5); // simple_value: fixed32
            v.extend_from_slice(&value.to_le_bytes());
            put_bytes(&mut summary, 1, &v);
        }
        let mut event = event_header(now_s(), step);
        put_bytes(&mut event, 5, &summary);
        self.record(&event)
    }

    /// Writes what is buffered to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// One record: length, its masked CRC, the bytes, their masked CRC.
    fn record(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut bytes = Vec::with_capacity(data.len() + 16);
        bytes.extend_from_slice(&len);
        bytes.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        bytes.extend_from_slice(data);
        bytes.extend_from_slice(&masked_crc32c(data).to_le_bytes());
        self.out
            .write_all(&bytes)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

/// An `Event` with its `wall_time` (field 1, double) and `step` (field 2, int64).
fn event_header(wall_time: f64, step: i64) -> Vec<u8> {
    let mut e = Vec::new();
    put_key(&mut e, 1, 1);
    e.extend_from_slice(&wall_time.to_le_bytes());
    put_varint_field(&mut e, 2, step as u64);
    e
}

fn put_varint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u32) {
    put_varint(out, u64::from(field << 3 | wire_type));
}

fn put_varint_field(out: &mut Vec<u8>, field: u32, x: u64) {
    put_key(out, field, 0);
    put_varint(out, x);
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// CRC-32C (Castagnoli, reflected polynomial `0x82F63B78`), bit by bit: event records are
/// small and written once per update.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82F6_3B78 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// TFRecord's masked CRC-32C.
fn masked_crc32c(data: &[u8]) -> u32 {
    crc32c(data).rotate_right(15).wrapping_add(0xa282_ead8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The CRC-32C check value of the ASCII digits 1–9 (RFC 3720, appendix B.4).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    }
}
