//! `tensorboard = true`: the event files a run writes, read back by an independent reader —
//! the record framing checked with the `crc32c` crate, the events decoded with `prost` from
//! TensorFlow's `event.proto` / `summary.proto` field numbers (as TensorBoard 2.18's
//! `tensorboard.compat.proto.event_pb2` declares them) — hold every scalar of `metrics.csv`
//! at its env step, also across a stop and resume.

use std::path::Path;

use agents::{PolicyConfig, PolicyKind};
use fbrl::TrainConfig;
use fbrl::metrics::read_metrics;
use fbrl::metrics::row_scalars;
use fbrl::tensorboard::TENSORBOARD_DIR;

mod ppo_common;
use ppo_common::{maze_cfg, train_until};

/// `tensorflow.Event` (the fields this reader needs).
#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(string, optional, tag = "3")]
    file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    summary: Option<Summary>,
    #[prost(message, optional, tag = "7")]
    session_log: Option<SessionLog>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value` (simple values only).
#[derive(Clone, PartialEq, prost::Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
}

/// `tensorflow.SessionLog`.
#[derive(Clone, PartialEq, prost::Message)]
struct SessionLog {
    #[prost(int32, tag = "1")]
    status: i32,
}

fn masked(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Every event of a TFRecord file, the CRCs checked.
fn read_events(path: &Path) -> Vec<Event> {
    use prost::Message;
    let bytes = std::fs::read(path).unwrap();
    let mut events = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len_bytes = &bytes[at..at + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        assert_eq!(len_crc, masked(crc32c::crc32c(len_bytes)), "length CRC");
        let data = &bytes[at + 12..at + 12 + len];
        let data_crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
        assert_eq!(data_crc, masked(crc32c::crc32c(data)), "data CRC");
        events.push(Event::decode(data).unwrap());
        at += 16 + len;
    }
    events
}

fn event_files(run: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(run.join(TENSORBOARD_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn cfg(updates: usize) -> TrainConfig {
    let mut policy = PolicyConfig::preset(PolicyKind::Mlp);
    policy.set("hidden", 16).unwrap();
    TrainConfig {
        threads: 1,
        tensorboard: true,
        ..maze_cfg(policy, 16, 4, 16, updates)
    }
}

/// The summary events of a file: `(step, [(tag, value)])`.
fn summaries(events: &[Event]) -> Vec<(i64, Vec<(String, f32)>)> {
    events
        .iter()
        .filter_map(|e| {
            let s = e.summary.as_ref()?;
            let values = s
                .value
                .iter()
                .map(|v| (v.tag.clone(), v.simple_value.expect("a simple value")))
                .collect();
            Some((e.step, values))
        })
        .collect()
}

#[test]
fn every_metrics_scalar_is_in_the_event_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train_until(&cfg(4), &run, false, None).unwrap();
    let rows = read_metrics(run.join("metrics.csv")).unwrap();
    let files = event_files(&run);
    assert_eq!(files.len(), 1);
    let events = read_events(&files[0]);
    assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
    let got = summaries(&events);
    assert_eq!(got.len(), rows.len());
    for ((step, values), row) in got.iter().zip(&rows) {
        assert_eq!(*step, row.env_steps as i64);
        assert_eq!(values, &row_scalars(row).unwrap());
        // The tags a reader looks for, with the row's own values.
        let get = |tag: &str| values.iter().find(|(t, _)| t == tag).map(|(_, v)| *v);
        assert_eq!(get("losses/value_loss"), Some(row.value_loss as f32));
        assert_eq!(get("losses/entropy"), Some(row.entropy as f32));
        assert_eq!(get("train/lr"), Some(row.lr as f32));
        assert_eq!(
            get("episode/return_mean"),
            row.return_mean
                .is_finite()
                .then_some(row.return_mean as f32)
        );
    }
    assert!(events.iter().all(|e| e.wall_time > 1.6e9));
}

#[test]
fn a_resumed_run_starts_a_new_file_with_a_session_start() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let c = cfg(6);
    train_until(&c, &run, false, Some(3)).unwrap();
    // The first checkpoint after the stop covers update 3; resume and finish.
    train_until(&c, &run, true, None).unwrap();
    let rows = read_metrics(run.join("metrics.csv")).unwrap();
    assert_eq!(rows.len(), 6);
    let files = event_files(&run);
    assert_eq!(files.len(), 2, "{files:?}");
    let first = summaries(&read_events(&files[0]));
    let second_events = read_events(&files[1]);
    assert_eq!(first.len(), 3);
    // The second file: version, a session start just after update 3's steps, updates 4–6.
    assert_eq!(
        second_events[1].session_log.as_ref().map(|s| s.status),
        Some(1)
    );
    assert_eq!(second_events[1].step, rows[2].env_steps as i64 + 1);
    let second = summaries(&second_events);
    let steps: Vec<i64> = first.iter().chain(&second).map(|(s, _)| *s).collect();
    let expected: Vec<i64> = rows.iter().map(|r| r.env_steps as i64).collect();
    assert_eq!(steps, expected);
}

#[test]
fn resuming_a_finished_run_adds_no_event_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let c = cfg(2);
    train_until(&c, &run, false, None).unwrap();
    assert_eq!(event_files(&run).len(), 1);
    for _ in 0..2 {
        let summary = train_until(&c, &run, true, None).unwrap();
        assert_eq!(summary.updates_done, 2);
    }
    let files = event_files(&run);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(summaries(&read_events(&files[0])).len(), 2);
}
