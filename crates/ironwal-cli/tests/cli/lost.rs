//! The read-only tools on logs that lost a segment, and on paths that hold
//! no log at all: never a clean verdict.

use std::path::{Path, PathBuf};

use ironwal::{Options, Wal};
use serde_json::Value;

use crate::common::{compat_dir, ironwal, json_lines};

/// Six entries, two per segment, in three sealed segments and an active one.
fn six_entries(dir: &Path) -> Vec<PathBuf> {
    let wal = Wal::open(dir, Options::default().max_segment_size(150)).unwrap();
    for i in 1..=6u8 {
        wal.put(&[i], &[b'v'; 100]).unwrap();
    }
    let files = wal.segments().into_iter().map(|s| s.path).collect();
    wal.close().unwrap();
    files
}

fn verify_json(dir: &Path) -> (Option<i32>, Value) {
    let out = ironwal(&["verify", "--json", dir.to_str().unwrap()]);
    let json = serde_json::from_slice(&out.stdout).unwrap();
    (out.status.code(), json)
}

#[test]
fn verify_and_dump_refuse_a_log_with_a_missing_middle_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let files = six_entries(tmp.path());
    assert_eq!(files.len(), 3);
    let (code, json) = verify_json(tmp.path());
    assert_eq!((code, json["record"].as_str()), (Some(0), Some("checked")));

    std::fs::remove_file(&files[1]).unwrap();
    let dir = tmp.path().to_str().unwrap();
    let out = ironwal(&["verify", dir]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("segment missing"), "{stdout}");
    assert!(stdout.contains(files[1].file_name().unwrap().to_str().unwrap()));
    assert!(stdout.contains("result:   CORRUPT"));

    let out = ironwal(&["dump", dir]);
    assert_eq!(out.status.code(), Some(2));
    // stats (skip-corrupted by default) lists it among the corrupt ranges.
    let out = ironwal(&["stats", dir]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("corrupt range") && stdout.contains("segment missing"),
        "{stdout}"
    );

    // Point in time: the prefix, and the verdict still says corrupt.
    let out = ironwal(&["dump", "--json", "--mode", "point-in-time", dir]);
    let seqs: Vec<u64> = json_lines(&out.stdout)
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2]);
    let out = ironwal(&["verify", "--mode", "point-in-time", dir]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn verify_refuses_a_sealed_segment_cut_at_an_entry_boundary() {
    let tmp = tempfile::tempdir().unwrap();
    let files = six_entries(tmp.path());
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &bytes[..bytes.len() / 2]).unwrap();
    let (code, json) = verify_json(tmp.path());
    assert_eq!(code, Some(2), "{json}");
    assert_eq!(json["status"], "corrupt");
}

#[test]
fn verify_and_dump_say_when_a_directory_holds_no_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for dir in [empty.as_path(), compat_dir().as_path()] {
        let path = dir.to_str().unwrap();
        let out = ironwal(&["verify", path]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{path}: {stdout}");
        assert!(stdout.contains("no segment files"), "{stdout}");
        assert!(stdout.contains("result:   ERROR"), "{stdout}");
        let out = ironwal(&["dump", path]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no segment files"));
        assert_eq!(ironwal(&["stats", path]).status.code(), Some(2));
    }
}

#[test]
fn verify_reports_sequence_gaps_of_a_log_without_a_record_as_information() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    for seq in [1, 2, 7] {
        ironwal::format::encode_entry(&mut bytes, ironwal::Op::Put, seq, b"k", b"v").unwrap();
    }
    std::fs::write(tmp.path().join("01000000000000000000.wal"), &bytes).unwrap();
    let out = ironwal(&["verify", tmp.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("sequence gap (information): 2 then 7"),
        "{stdout}"
    );
    assert!(stdout.contains("record:   none"), "{stdout}");
    let (_, json) = verify_json(tmp.path());
    assert_eq!(json["gaps"][0]["after"], 2);
    assert_eq!(json["gaps"][0]["next"], 7);
    let out = ironwal(&["stats", "--json", tmp.path().to_str().unwrap()]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["gaps"][0]["next"], 7);
}
