//! dump, verify and bench.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use ironwal::{Options, SyncPolicy, Wal};
use serde_json::Value;

use crate::common::{ironwal, json_lines, manifest_entries, snapshot, vectors};

#[test]
fn dump_json_prints_every_vector_exactly_as_its_manifest() {
    for (dir, manifest) in vectors() {
        let name = dir.display().to_string();
        let entries = manifest["entries"].as_array().unwrap();
        let before = snapshot(&dir);
        let out = ironwal(&["dump", "--json", dir.to_str().unwrap()]);
        let lines = manifest_entries(&out.stdout);
        match manifest["expect"].as_str().unwrap() {
            "clean" | "torn_tail" => {
                assert_eq!(
                    out.status.code(),
                    Some(0),
                    "{name}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(&lines, entries, "{name}");
            }
            "corrupt" => {
                // The entries before the damage, then the error, exit 2.
                assert_eq!(out.status.code(), Some(2), "{name}");
                assert_eq!(lines[..], entries[..lines.len()], "{name}");
                let stderr = String::from_utf8_lossy(&out.stderr);
                let offset = manifest["corrupt"]["offset"].as_u64().unwrap();
                assert!(
                    stderr.contains(&format!("at byte {offset}")),
                    "{name}: {stderr}"
                );

                let out = ironwal(&[
                    "dump",
                    "--json",
                    "--mode",
                    "point-in-time",
                    dir.to_str().unwrap(),
                ]);
                assert_eq!(out.status.code(), Some(0), "{name}");
                assert_eq!(
                    &manifest_entries(&out.stdout),
                    entries,
                    "{name}: point-in-time"
                );
                assert!(
                    String::from_utf8_lossy(&out.stderr).contains("dropped"),
                    "{name}"
                );
            }
            other => panic!("{name}: unknown expectation {other}"),
        }
        assert!(before == snapshot(&dir), "{name}: dump modified the log");
    }
}

#[test]
fn dump_json_lines_have_exactly_the_documented_keys() {
    let (dir, _) = vectors()
        .into_iter()
        .find(|(d, _)| d.ends_with("mixed-ops"))
        .unwrap();
    let out = ironwal(&["dump", "--json", dir.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with(r#"{"seq":1,"op":"put","key":"","value":""#),
        "{first}"
    );
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 4, "{line}");
        let delete = v["op"] == "delete";
        assert_eq!(v["value"].is_null(), delete, "{line}");
        for field in ["key", "value"] {
            if let Some(hex) = v[field].as_str() {
                assert!(
                    hex.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                    "{line}"
                );
            }
        }
    }
}

#[test]
fn dump_from_prints_the_suffix() {
    let (dir, manifest) = vectors()
        .into_iter()
        .find(|(d, _)| d.ends_with("multi-segment"))
        .unwrap();
    let out = ironwal(&["dump", "--json", "--from", "20", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let want: Vec<Value> = manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["seq"].as_u64() >= Some(20))
        .cloned()
        .collect();
    assert_eq!(manifest_entries(&out.stdout), want);
}

#[test]
fn verify_exit_code_follows_the_verdict() {
    for (dir, manifest) in vectors() {
        let want = match manifest["expect"].as_str().unwrap() {
            "clean" => 0,
            "torn_tail" => 1,
            _ => 2,
        };
        let out = ironwal(&["verify", dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(want), "{}", dir.display());
        let out = ironwal(&["verify", "--json", dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(want), "{}", dir.display());
        let report = json_lines(&out.stdout);
        assert_eq!(report.len(), 1);
        let status = report[0]["status"].as_str().unwrap();
        assert_eq!(status, ["clean", "torn_tail", "corrupt"][want as usize]);
        if want == 0 {
            assert_eq!(
                report[0]["entries"].as_u64(),
                Some(manifest["entries"].as_array().unwrap().len() as u64)
            );
        }
    }
}

#[test]
fn verify_names_the_corrupt_place() {
    for (dir, manifest) in vectors()
        .into_iter()
        .filter(|(_, m)| m["expect"] == "corrupt")
    {
        let out = ironwal(&["verify", "--json", dir.to_str().unwrap()]);
        let report = &json_lines(&out.stdout)[0];
        let error = &report["error"];
        assert_eq!(error["offset"], manifest["corrupt"]["offset"]);
        let file = manifest["corrupt"]["file"].as_str().unwrap();
        assert!(error["segment"].as_str().unwrap().ends_with(file));

        // Salvage modes report the damage as corruption and still exit 2.
        for mode in ["point-in-time", "skip-corrupted"] {
            let out = ironwal(&["verify", "--json", "--mode", mode, dir.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(2), "{mode}");
            assert_eq!(json_lines(&out.stdout)[0]["status"], "corrupt");
        }
    }
}

#[test]
fn strict_mode_calls_a_torn_tail_an_error() {
    let (dir, _) = vectors()
        .into_iter()
        .find(|(_, m)| m["expect"] == "torn_tail")
        .unwrap();
    let out = ironwal(&["verify", "--mode", "strict", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let out = ironwal(&["dump", "--mode", "strict", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_paths_and_non_wal_files_fail_clearly() {
    let out = ironwal(&["dump", "/definitely/not/here"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let out = ironwal(&["verify", "/definitely/not/here"]);
    assert_eq!(out.status.code(), Some(2));

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, b"this is not a write-ahead log, just some text\n").unwrap();
    let out = ironwal(&["verify", junk.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    let out = ironwal(&["dump", "--json", junk.to_str().unwrap()]);
    assert!(out.stdout.is_empty());

    let out = ironwal(&["dump", "--mode", "sloppy", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn dump_and_verify_run_beside_a_live_writer() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(
        dir.path(),
        Options::default().sync_policy(SyncPolicy::Always),
    )
    .unwrap();
    for i in 0..100u32 {
        wal.put(format!("key-{i}").as_bytes(), &i.to_le_bytes())
            .unwrap();
    }
    let out = ironwal(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = ironwal(&["dump", "--json", dir.path().to_str().unwrap()]);
    assert_eq!(json_lines(&out.stdout).len(), 100);
    // The writer still holds its lock and keeps appending.
    wal.put(b"after", b"dump").unwrap();
    assert!(matches!(
        Wal::open(dir.path(), Options::default()),
        Err(ironwal::Error::Locked { .. })
    ));
}

#[test]
fn a_closed_pipe_ends_dump_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(
        dir.path(),
        Options::default().sync_policy(SyncPolicy::Never),
    )
    .unwrap();
    for i in 0..200_000u32 {
        wal.put(
            &i.to_be_bytes(),
            b"a value long enough to fill the pipe quickly",
        )
        .unwrap();
    }
    wal.close().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ironwal"))
        .args(["dump", "--json", dir.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with(r#"{"seq":1,"#));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bench_json_prints_one_object_with_the_documented_keys() {
    let out = ironwal(&[
        "bench",
        "--entries",
        "3000",
        "--writers",
        "3",
        "--sync",
        "never",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 1);
    let r = &lines[0];
    for key in [
        "writers",
        "value_size",
        "entries",
        "sync",
        "entries_per_sec",
        "mb_per_sec",
        "p50_us",
        "p99_us",
        "p999_us",
        "fsyncs",
        "replay_mb_per_sec",
        "peak_rss_mb",
    ] {
        assert!(r.get(key).is_some(), "missing {key} in {r}");
    }
    assert_eq!(r["entries"], 3000);
    assert_eq!(r["writers"], 3);
    assert_eq!(r["sync"], "never");
    assert!(r["entries_per_sec"].as_f64().unwrap() > 0.0);
}

#[test]
fn bench_keeps_the_log_in_a_given_dir_and_it_verifies_clean() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let out = ironwal(&[
        "bench",
        "--entries",
        "2000",
        "--sync",
        "bytes:65536",
        "--dir",
        log.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("entries/s"));
    let out = ironwal(&["verify", "--mode", "strict", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    // A second run refuses the non-empty directory.
    let out = ironwal(&["bench", "--entries", "10", "--dir", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}
