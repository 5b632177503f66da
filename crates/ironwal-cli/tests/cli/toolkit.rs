//! stats, repair and tail: the operator's toolkit, including bad input.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ironwal::format::encode_entry;
use ironwal::{Op, Options, SyncPolicy, Wal};
use serde_json::Value;

use crate::common::{ironwal, json_lines, manifest_entries, snapshot, vectors};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A log of three segments whose middle one is damaged mid-way.
fn damaged_middle_segment() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let options = Options::default().max_segment_size(2048).preallocate(false);
    let wal = Wal::open(tmp.path(), options).unwrap();
    while wal.segments().len() < 3 {
        let seq = wal.next_seq().get();
        wal.put(format!("key-{seq}").as_bytes(), &[b'v'; 100])
            .unwrap();
    }
    let middle = wal.segments()[1].path.clone();
    wal.close().unwrap();
    let mut bytes = std::fs::read(&middle).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&middle, &bytes).unwrap();
    (tmp, middle)
}

#[test]
fn stats_summarises_every_vector() {
    for (dir, manifest) in vectors() {
        let out = ironwal(&["stats", "--json", dir.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            dir.display(),
            stderr(&out)
        );
        let stats = &json_lines(&out.stdout)[0];
        let entries = manifest["entries"].as_array().unwrap();
        let ops = |op: &str| entries.iter().filter(|e| e["op"] == op).count() as u64;
        match manifest["expect"].as_str().unwrap() {
            "clean" => {
                assert_eq!(
                    stats["entries"].as_u64(),
                    Some(entries.len() as u64),
                    "{}",
                    dir.display()
                );
                assert_eq!(stats["puts"].as_u64(), Some(ops("put")));
                assert_eq!(stats["deletes"].as_u64(), Some(ops("delete")));
                assert_eq!(stats["merges"].as_u64(), Some(ops("merge")));
                assert!(stats["corrupt"].as_array().unwrap().is_empty());
            }
            "torn_tail" => assert!(stats["torn_tail"].is_object(), "{}", dir.display()),
            _ => assert!(
                !stats["corrupt"].as_array().unwrap().is_empty(),
                "{}",
                dir.display()
            ),
        }
        assert_eq!(
            stats["segments"].as_array().unwrap().len(),
            manifest["files"].as_array().unwrap().len()
        );
    }
    let (dir, _) = vectors()
        .into_iter()
        .find(|(d, _)| d.ends_with("fragment-boundaries"))
        .unwrap();
    let stats = &json_lines(&ironwal(&["stats", "--json", dir.to_str().unwrap()]).stdout)[0];
    assert!(stats["fragmented"].as_u64().unwrap() >= 4, "{stats}");
    let out = ironwal(&["stats", dir.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("fragmented entries") && text.contains("value sizes"),
        "{text}"
    );
}

#[test]
fn stats_lists_a_damaged_middle_segment_and_reads_the_rest() {
    let (tmp, middle) = damaged_middle_segment();
    let out = ironwal(&["stats", "--json", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stats = &json_lines(&out.stdout)[0];
    let corrupt = stats["corrupt"].as_array().unwrap();
    assert_eq!(corrupt.len(), 1);
    assert_eq!(
        corrupt[0]["segment"].as_str().unwrap(),
        middle.to_str().unwrap()
    );
    // Under the default-recovery reading the same damage is an error.
    let out = ironwal(&[
        "stats",
        "--mode",
        "tolerate-torn-tail",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_input_gets_a_clear_error_and_no_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let notes = tmp.path().join("notes.txt");
    std::fs::write(&notes, b"this is a shopping list, not a log\n").unwrap();
    // A record whose header claims the largest payload, and an entry whose
    // key length says four gigabytes.
    let huge = tmp.path().join("huge");
    std::fs::create_dir(&huge).unwrap();
    let mut bytes = Vec::new();
    encode_entry(&mut bytes, Op::Put, 1, b"ok", b"fine").unwrap();
    bytes.extend_from_slice(&[0, 0, 0, 0, 0xff, 0xff, 1]);
    bytes.extend_from_slice(&[7; 100]);
    let mut entry = vec![1u8];
    entry.extend_from_slice(&2u64.to_le_bytes());
    entry.extend_from_slice(&u32::MAX.to_le_bytes());
    let mut record = Vec::new();
    ironwal::format::record::write_record(&mut record, ironwal::format::RecordType::Full, &entry);
    bytes.extend_from_slice(&record);
    encode_entry(&mut bytes, Op::Put, 3, b"after", b"the damage").unwrap();
    std::fs::write(huge.join("00000000000000000001.wal"), &bytes).unwrap();

    for command in ["dump", "verify", "stats"] {
        for path in [&missing, &notes] {
            let out = ironwal(&[command, path.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(2), "{command} {}", path.display());
            assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
            assert!(!stderr(&out).is_empty() || !out.stdout.is_empty());
        }
        let out = ironwal(&[command, huge.to_str().unwrap()]);
        assert!(
            !stderr(&out).contains("panicked"),
            "{command}: {}",
            stderr(&out)
        );
    }
    let out = ironwal(&["verify", "--json", huge.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json_lines(&out.stdout)[0]["status"], "corrupt");
    let out = ironwal(&["stats", "--json", huge.to_str().unwrap()]);
    let stats = &json_lines(&out.stdout)[0];
    assert_eq!(
        stats["entries"].as_u64(),
        Some(2),
        "both intact entries are counted: {stats}"
    );
    let out = ironwal(&[
        "repair",
        missing.to_str().unwrap(),
        "--out",
        tmp.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = ironwal(&["tail", notes.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let out = ironwal(&["tail", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn repair_of_every_damaged_vector_verifies_clean_and_keeps_every_intact_entry() {
    for (dir, manifest) in vectors()
        .into_iter()
        .filter(|(_, m)| m["expect"] != "clean")
    {
        let name = dir.display().to_string();
        let before = snapshot(&dir);
        let out_dir = tempfile::tempdir().unwrap();
        let repaired = out_dir.path().join("repaired");
        let out = ironwal(&[
            "repair",
            dir.to_str().unwrap(),
            "--out",
            repaired.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        let report = &json_lines(&out.stdout)[0];
        assert!(
            !report["skipped"].as_array().unwrap().is_empty(),
            "{name}: a damaged vector skips something"
        );
        assert!(repaired.join("ironwal-repair-report.json").is_file());
        assert!(
            before == snapshot(&dir),
            "{name}: repair modified the original"
        );

        let out = ironwal(&["verify", "--mode", "strict", repaired.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let got = json_lines(&ironwal(&["dump", "--json", repaired.to_str().unwrap()]).stdout);
        // Exactly what a skip-corrupted reading of the original yields...
        let salvage = json_lines(
            &ironwal(&[
                "dump",
                "--json",
                "--mode",
                "skip-corrupted",
                dir.to_str().unwrap(),
            ])
            .stdout,
        );
        assert_eq!(got, salvage, "{name}");
        // ...which holds every entry the manifest expects, in order.
        let want = manifest["entries"].as_array().unwrap();
        let got =
            manifest_entries(&ironwal(&["dump", "--json", repaired.to_str().unwrap()]).stdout);
        let mut rest = got.iter();
        for entry in want {
            assert!(
                rest.any(|e| e == entry),
                "{name}: {entry} missing after repair"
            );
        }
    }
}

#[test]
fn repair_in_place_keeps_the_originals_beside_and_refuses_a_live_writer() {
    let (tmp, middle) = damaged_middle_segment();
    let dir = tmp.path().to_str().unwrap();
    let wal = Wal::open(
        tmp.path(),
        Options::default().recovery_mode(ironwal::RecoveryMode::SkipCorrupted),
    );
    let wal = wal.unwrap();
    let out = ironwal(&["repair", "--in-place", dir]);
    assert_eq!(out.status.code(), Some(2), "a live writer holds the log");
    assert!(stderr(&out).contains("locked"), "{}", stderr(&out));
    wal.close().unwrap();

    let out = ironwal(&["repair", "--in-place", dir]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut backup = middle.clone().into_os_string();
    backup.push(".bak");
    assert!(Path::new(&backup).is_file(), "the damaged original is kept");
    let out = ironwal(&["verify", dir]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The repaired log opens and continues.
    let wal = Wal::open(tmp.path(), Options::default()).unwrap();
    wal.put(b"after", b"repair").unwrap();
    wal.close().unwrap();
}

#[test]
fn repair_refuses_a_destination_that_is_not_empty() {
    let (dir, _) = vectors()
        .into_iter()
        .find(|(_, m)| m["expect"] == "corrupt")
        .unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    std::fs::write(out_dir.path().join("something"), b"x").unwrap();
    let out = ironwal(&[
        "repair",
        dir.to_str().unwrap(),
        "--out",
        out_dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn tail_prints_what_is_there_and_exits_without_follow() {
    for (dir, manifest) in vectors()
        .into_iter()
        .filter(|(_, m)| m["expect"] == "clean")
    {
        let out = ironwal(&["tail", "--json", dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(
            &json_lines(&out.stdout),
            manifest["entries"].as_array().unwrap(),
            "{}",
            dir.display()
        );
    }
}

#[test]
fn tail_follow_and_verify_run_beside_a_live_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let options = Options::default()
        .max_segment_size(8192)
        .sync_policy(SyncPolicy::Always);
    let wal = Wal::open(tmp.path(), options).unwrap();
    wal.put(b"before", b"tail").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ironwal"))
        .args([
            "tail",
            "--follow",
            "--json",
            "--from",
            "1",
            tmp.path().to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::thread::spawn({
        let stdout = child.stdout.take().unwrap();
        move || {
            let mut seen = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                seen.push(serde_json::from_str::<Value>(&line).unwrap());
                if seen.len() == 301 {
                    break;
                }
            }
            seen
        }
    });
    for i in 0..300u32 {
        wal.put(format!("key-{i:04}").as_bytes(), &[b'x'; 200])
            .unwrap();
        if i % 100 == 50 {
            // verify reads beside the writer, never locks, never fails it.
            let out = ironwal(&["verify", tmp.path().to_str().unwrap()]);
            assert!(
                matches!(out.status.code(), Some(0 | 1)),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
    assert!(
        wal.segments().len() > 3,
        "the writer rotated while tail followed"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lines.is_finished() {
        assert!(
            Instant::now() < deadline,
            "tail --follow did not print every entry"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let seen = lines.join().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(seen[0]["key"], hex(b"before"));
    for (i, entry) in seen[1..].iter().enumerate() {
        assert_eq!(entry["seq"].as_u64(), Some(i as u64 + 2));
        assert_eq!(entry["key"], hex(format!("key-{i:04}").as_bytes()));
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
