//! `repair` never makes things worse: it checks before it touches, its
//! output is a log every reader reads, and a failure leaves nothing behind.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{compat_dir, ironwal, json_lines, snapshot};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A copy of a compat vector's log (without its manifest) in a fresh
/// directory.
fn copy_of(vector: &str) -> (tempfile::TempDir, Vec<PathBuf>) {
    let tmp = tempfile::tempdir().unwrap();
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(compat_dir().join(vector)).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wal") {
            let to = tmp.path().join(path.file_name().unwrap());
            std::fs::copy(&path, &to).unwrap();
            segments.push(to);
        }
    }
    segments.sort();
    (tmp, segments)
}

/// Every file of `dir` and its bytes, but for the lock file any tool that
/// locks the log creates.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = snapshot(dir);
    files.retain(|(p, _)| !p.ends_with("LOCK"));
    files
}

fn dump(path: &Path) -> Vec<Value> {
    let out = ironwal(&["dump", "--json", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    json_lines(&out.stdout)
}

/// A `.bak` in the way of the last segment's backup: the repair is refused
/// before it renames anything, and the log reads exactly as before.
#[test]
fn an_in_place_repair_that_cannot_finish_touches_nothing() {
    let (tmp, segments) = copy_of("multi-segment");
    assert_eq!(segments.len(), 4);
    let last = segments.last().unwrap();
    let mut in_the_way = last.clone().into_os_string();
    in_the_way.push(".bak");
    std::fs::write(&in_the_way, b"old\n").unwrap();
    let before = files(tmp.path());
    let entries = dump(tmp.path());
    assert_eq!(entries.len(), 32);

    let out = ironwal(&["repair", "--in-place", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(".bak"), "{}", stderr(&out));
    let after = files(tmp.path());
    let names = |f: &[(PathBuf, Vec<u8>)]| f.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(names(&after), names(&before), "the directory changed");
    assert!(after == before, "a file's bytes changed");
    assert_eq!(dump(tmp.path()), entries);

    // With the way clear, the same repair goes through.
    std::fs::remove_file(&in_the_way).unwrap();
    let out = ironwal(&["repair", "--in-place", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(dump(tmp.path()), entries);
    for segment in &segments {
        let mut backup = segment.clone().into_os_string();
        backup.push(".bak");
        assert!(Path::new(&backup).is_file(), "{backup:?}");
    }
}

/// A segment file given alone under a name that is not a segment's: the
/// copy is a log (a proper segment name) that reads back whole.
#[test]
fn a_file_repaired_alone_becomes_a_log_whatever_its_name() {
    let (tmp, segments) = copy_of("puts-small");
    let odd = tmp.path().join("FILE.wal");
    std::fs::rename(&segments[0], &odd).unwrap();
    let entries = dump(&odd);
    assert!(!entries.is_empty());
    let out_dir = tmp.path().join("out");
    let out = ironwal(&[
        "repair",
        odd.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!out_dir.join("FILE.wal").exists());
    let out = ironwal(&["verify", "--json", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        verdict["segments"].as_array().map(Vec::len),
        Some(1),
        "{verdict}"
    );
    assert_eq!(verdict["status"], "clean", "{verdict}");
    assert_eq!(dump(&out_dir), entries);
}
