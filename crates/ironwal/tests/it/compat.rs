//! kevo's own files, read in place exactly as their manifests say.

use std::path::{Path, PathBuf};

use ironwal::format::encode_entry;
use ironwal::{Error, LogReader, Options, RecoveryMode, Seq, Wal};
use serde_json::Value;

use crate::common::{compat_dir, copy_dir, parse_op, read_all, Expected};

struct Vector {
    name: String,
    dir: PathBuf,
    files: Vec<String>,
    expect: String,
    corrupt: Option<(String, u64)>,
    single_entry_appends: bool,
    entries: Vec<Expected>,
}

fn hex_field(v: &Value) -> Option<Vec<u8>> {
    v.as_str().map(|s| hex::decode(s).expect("hex in manifest"))
}

fn vectors() -> Vec<Vector> {
    let root = compat_dir();
    let mut out = Vec::new();
    let listing = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("the compat vectors must be at {}: {e}", root.display()));
    for entry in listing {
        let dir = entry.unwrap().path();
        let manifest = dir.join("manifest.json");
        if !manifest.is_file() {
            continue;
        }
        let m: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        let entries = m["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| Expected {
                seq: e["seq"].as_u64().unwrap(),
                op: parse_op(e["op"].as_str().unwrap()),
                key: hex_field(&e["key"]).unwrap(),
                value: hex_field(&e["value"]),
            })
            .collect();
        out.push(Vector {
            name: m["name"].as_str().unwrap_or_default().to_owned(),
            files: m["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_owned())
                .collect(),
            expect: m["expect"].as_str().unwrap().to_owned(),
            corrupt: m.get("corrupt").filter(|c| !c.is_null()).map(|c| {
                (
                    c["file"].as_str().unwrap().to_owned(),
                    c["offset"].as_u64().unwrap(),
                )
            }),
            single_entry_appends: m["single_entry_appends"].as_bool().unwrap_or(false),
            entries,
            dir,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(!out.is_empty(), "no vectors found under {}", root.display());
    out
}

fn expected(entries: &[ironwal::Entry]) -> Vec<Expected> {
    entries.iter().map(Expected::from).collect()
}

#[test]
fn every_vector_reads_as_its_manifest_says() {
    for v in vectors() {
        let segments: Vec<PathBuf> = ironwal_segments(&v.dir);
        let names: Vec<String> = segments
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, v.files, "{}: segment order", v.name);

        let (entries, error, report) = read_all(&v.dir, RecoveryMode::TolerateTornTail);
        match v.expect.as_str() {
            "clean" => {
                assert!(error.is_none(), "{}: {error:?}", v.name);
                assert!(report.is_clean(), "{}: {report:#?}", v.name);
                assert_eq!(expected(&entries), v.entries, "{}", v.name);
            }
            "torn_tail" => {
                assert!(error.is_none(), "{}: {error:?}", v.name);
                assert!(report.torn_tail().is_some(), "{}: {report:#?}", v.name);
                assert!(!report.has_corruption(), "{}: {report:#?}", v.name);
                assert_eq!(expected(&entries), v.entries, "{}", v.name);
            }
            "corrupt" => {
                let (file, offset) = v.corrupt.clone().expect("corrupt vectors name the place");
                match error {
                    Some(Error::Corruption {
                        segment,
                        offset: at,
                        ..
                    }) => {
                        assert_eq!(
                            segment.file_name().unwrap().to_str().unwrap(),
                            file,
                            "{}",
                            v.name
                        );
                        assert_eq!(at, offset, "{}", v.name);
                    }
                    other => panic!("{}: expected corruption, got {other:?}", v.name),
                }
                // What comes before the damage is still yielded, then the error.
                let before = expected(&entries);
                assert_eq!(before, v.entries[..before.len()], "{}", v.name);

                let (entries, error, report) = read_all(&v.dir, RecoveryMode::PointInTime);
                assert!(error.is_none(), "{}: {error:?}", v.name);
                assert_eq!(expected(&entries), v.entries, "{}: point-in-time", v.name);
                assert!(report.has_corruption());
                let dropped = &report.dropped[0];
                assert_eq!(dropped.segment.file_name().unwrap().to_str().unwrap(), file);
                assert!(dropped.offset <= offset);

                let (_, error, _) = read_all(&v.dir, RecoveryMode::Strict);
                assert!(
                    matches!(error, Some(Error::Corruption { .. })),
                    "{}",
                    v.name
                );
            }
            other => panic!("{}: unknown expectation {other}", v.name),
        }
    }
}

fn ironwal_segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| ironwal::SegmentId::parse(p.file_name().unwrap().to_str().unwrap()).is_some())
        .collect();
    files.sort();
    files
}

#[test]
fn single_entry_vectors_reencode_byte_for_byte() {
    let mut checked = 0;
    for v in vectors().into_iter().filter(|v| v.single_entry_appends) {
        let (_, error, report) = read_all(&v.dir, RecoveryMode::TolerateTornTail);
        assert!(error.is_none());
        let mut on_disk = Vec::new();
        for segment in &report.segments {
            let bytes = std::fs::read(&segment.path).unwrap();
            on_disk.extend_from_slice(&bytes[..segment.valid_len as usize]);
        }
        let mut encoded = Vec::new();
        for e in &v.entries {
            encode_entry(
                &mut encoded,
                e.op,
                e.seq,
                &e.key,
                e.value.as_deref().unwrap_or_default(),
            )
            .unwrap();
        }
        assert!(
            encoded == on_disk,
            "{}: re-encoding differs from the file",
            v.name
        );
        checked += 1;
    }
    assert!(checked > 0, "no single-entry vector to check");
}

#[test]
fn every_vector_reads_as_single_files_in_order() {
    for v in vectors().into_iter().filter(|v| v.expect == "clean") {
        let mut all = Vec::new();
        for file in &v.files {
            let (entries, error, _) = read_all(&v.dir.join(file), RecoveryMode::TolerateTornTail);
            assert!(error.is_none(), "{}/{file}: {error:?}", v.name);
            all.extend(expected(&entries));
        }
        assert_eq!(all, v.entries, "{}", v.name);
    }
}

#[test]
fn reading_from_a_sequence_yields_the_suffix() {
    for v in vectors().into_iter().filter(|v| v.expect != "corrupt") {
        let Some(mid) = v.entries.get(v.entries.len() / 2) else {
            continue;
        };
        let reader = LogReader::open(&v.dir, RecoveryMode::TolerateTornTail)
            .unwrap()
            .from_seq(Seq::new(mid.seq));
        let got: Vec<Expected> = reader.map(|e| Expected::from(&e.unwrap())).collect();
        let want: Vec<Expected> = v
            .entries
            .iter()
            .filter(|e| e.seq >= mid.seq)
            .cloned()
            .collect();
        assert_eq!(got, want, "{}", v.name);
    }
}

#[test]
fn wal_opens_every_recoverable_vector_and_continues_it() {
    for v in vectors() {
        let copy = copy_dir(&v.dir);
        // Small segments keep the preallocated zeros cheap; every vector is
        // below the limit, so its last segment is continued.
        let options = || {
            Options::default()
                .recovery_mode(RecoveryMode::PointInTime)
                .max_segment_size(4 << 20)
        };
        let wal = Wal::open(copy.path(), options()).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        let highest = v.entries.iter().map(|e| e.seq).max().unwrap_or(0);
        assert_eq!(wal.next_seq(), Seq::new(highest + 1), "{}", v.name);
        let seq = wal.put(b"after-kevo", b"ironwal was here").unwrap();
        wal.close().unwrap();

        // The continued log is clean under the strictest reading.
        let (entries, error, report) = read_all(copy.path(), RecoveryMode::Strict);
        assert!(error.is_none(), "{}: {error:?}", v.name);
        assert!(report.is_clean(), "{}: {report:#?}", v.name);
        let mut want = v.entries.clone();
        want.push(Expected {
            seq: seq.get(),
            op: ironwal::Op::Put,
            key: b"after-kevo".to_vec(),
            value: Some(b"ironwal was here".to_vec()),
        });
        assert_eq!(expected(&entries), want, "{}", v.name);
    }
}

#[test]
fn default_open_refuses_corrupt_vectors_and_changes_nothing() {
    for v in vectors().into_iter().filter(|v| v.expect == "corrupt") {
        let copy = copy_dir(&v.dir);
        let before: Vec<Vec<u8>> = v
            .files
            .iter()
            .map(|f| std::fs::read(copy.path().join(f)).unwrap())
            .collect();
        let err = Wal::open(copy.path(), Options::default()).unwrap_err();
        assert!(err.is_corruption(), "{}: {err}", v.name);
        let after: Vec<Vec<u8>> = v
            .files
            .iter()
            .map(|f| std::fs::read(copy.path().join(f)).unwrap())
            .collect();
        assert!(
            before == after,
            "{}: a refused open modified the log",
            v.name
        );
    }
}
