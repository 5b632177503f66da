//! load (the inverse of `dump --json`), dump's `batch` field, and the
//! generated completions and manual page.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use ironwal::{LogReader, Options, RecoveryMode, Wal, WriteBatch};

use crate::common::{ironwal, json_lines, snapshot, vectors};

/// Runs `ironwal` with `input` on standard input.
fn ironwal_with_input(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ironwal"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ironwal");
    // A command that refuses its arguments may exit before reading.
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn dump_json(dir: &Path) -> Vec<u8> {
    let out = ironwal(&[
        "dump",
        "--json",
        "--mode",
        "point-in-time",
        dir.to_str().unwrap(),
    ]);
    out.stdout
}

/// The names in a directory (nothing left behind by a failed load).
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn dump_then_load_then_dump_prints_the_same_lines_for_every_vector() {
    for (dir, _) in vectors() {
        let name = dir.display().to_string();
        let lines = dump_json(&dir);
        assert!(!lines.is_empty(), "{name}");
        let tmp = tempfile::tempdir().unwrap();
        let new = tmp.path().join("new");
        let out = ironwal_with_input(&["load", new.to_str().unwrap()], &lines);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        assert_eq!(
            String::from_utf8(dump_json(&new)).unwrap(),
            String::from_utf8(lines).unwrap(),
            "{name}"
        );
        let verify = ironwal(&["verify", "--mode", "strict", new.to_str().unwrap()]);
        assert_eq!(verify.status.code(), Some(0), "{name}: {}", stderr(&verify));
    }
}

#[test]
fn dump_json_marks_each_entry_of_a_batch_with_the_batch_s_first_sequence() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(tmp.path(), Options::default()).unwrap();
    wal.put(b"a", b"1").unwrap();
    let mut batch = WriteBatch::new();
    batch.put(b"b", b"2").delete(b"c").merge(b"d", b"4");
    wal.write_batch(&batch).unwrap();
    wal.put(b"e", b"5").unwrap();
    wal.close().unwrap();

    let lines = json_lines(&dump_json(tmp.path()));
    let batches: Vec<Option<u64>> = lines.iter().map(|l| l["batch"].as_u64()).collect();
    assert_eq!(batches, [None, Some(2), Some(2), Some(2), None]);
    // The other fields are as they were.
    assert_eq!(
        lines[2],
        serde_json::json!({"seq": 3, "op": "delete", "key": "63", "value": null, "batch": 2})
    );
    assert_eq!(lines[0].as_object().unwrap().len(), 4);
}

#[test]
fn load_writes_lines_sharing_a_batch_as_one_atomic_batch() {
    let input = br#"{"seq":1,"op":"put","key":"61","value":"31"}
{"seq":2,"op":"put","key":"62","value":"32","batch":2}
{"seq":3,"op":"delete","key":"63","value":null,"batch":2}
{"seq":4,"op":"put","key":"64","value":"34","batch":4}
{"seq":5,"op":"merge","key":"65","value":"35"}
"#;
    let tmp = tempfile::tempdir().unwrap();
    let new = tmp.path().join("log");
    let out = ironwal_with_input(&["load", new.to_str().unwrap()], input);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut reader = LogReader::open(&new, RecoveryMode::Strict).unwrap();
    let mut items = Vec::new();
    while let Some(item) = reader.next_item().unwrap() {
        items.push((item.is_batch(), item.len()));
    }
    // A batch of one is still a batch: it stays one through the round trip.
    assert_eq!(items, [(false, 1), (true, 2), (true, 1), (false, 1)]);
}

#[test]
fn load_keeps_a_first_sequence_above_one_and_renumbers_a_filtered_dump_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    let later = br#"{"seq":41,"op":"put","key":"61","value":"31"}
{"seq":42,"op":"put","key":"62","value":"32"}
"#;
    let new = tmp.path().join("later");
    let out = ironwal_with_input(&["load", new.to_str().unwrap()], later);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(dump_json(&new), later);

    let filtered = br#"{"seq":7,"op":"put","key":"61","value":"31"}
{"seq":9,"op":"put","key":"62","value":"32"}
"#;
    let refused = tmp.path().join("refused");
    let out = ironwal_with_input(&["load", refused.to_str().unwrap()], filtered);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("line 2: sequence 9 leaves a gap after 7"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--renumber"), "{}", stderr(&out));
    assert!(!refused.exists());

    let renumbered = tmp.path().join("renumbered");
    let out = ironwal_with_input(
        &["load", "--renumber", renumbered.to_str().unwrap()],
        filtered,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let seqs: Vec<u64> = json_lines(&dump_json(&renumbered))
        .iter()
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [7, 8]);
}

#[test]
fn bad_input_gets_a_line_numbered_error_and_leaves_no_partial_log() {
    let good = r#"{"seq":1,"op":"put","key":"61","value":"31"}"#;
    let cases: [(&str, String, &str); 9] = [
        (
            "invalid JSON",
            format!("{good}\n{{\"seq\":2,\n"),
            "line 2: invalid entry",
        ),
        (
            "bad key hex",
            format!("{good}\n{{\"seq\":2,\"op\":\"put\",\"key\":\"zz\",\"value\":\"31\"}}\n"),
            "line 2: key is not hex",
        ),
        (
            "bad value hex",
            "{\"seq\":1,\"op\":\"put\",\"key\":\"61\",\"value\":\"3\"}\n".into(),
            "line 1: value is not hex",
        ),
        (
            "repeated sequence",
            format!("{good}\n{good}\n"),
            "line 2: sequence 1 does not follow 1",
        ),
        (
            "decreasing sequence",
            format!("{}\n{good}\n", good.replace("\"seq\":1", "\"seq\":5")),
            "line 2: sequence 1 does not follow 5",
        ),
        (
            "unknown op",
            "{\"seq\":1,\"op\":\"set\",\"key\":\"61\",\"value\":\"31\"}\n".into(),
            "line 1: unknown op \"set\"",
        ),
        (
            "delete with a value",
            "{\"seq\":1,\"op\":\"delete\",\"key\":\"61\",\"value\":\"31\"}\n".into(),
            "line 1: a delete has no value",
        ),
        (
            "unknown field",
            "{\"seq\":1,\"op\":\"put\",\"key\":\"61\",\"value\":\"31\",\"colour\":1}\n".into(),
            "line 1: invalid entry: unknown field",
        ),
        (
            "a batch split by another entry",
            format!(
                "{}\n{}\n{}\n",
                good.replace('}', ",\"batch\":1}"),
                good.replace("\"seq\":1", "\"seq\":2"),
                good.replace("\"seq\":1", "\"seq\":3")
                    .replace('}', ",\"batch\":1}")
            ),
            "line 3: batch 1 resumes after other entries",
        ),
    ];
    for (what, input, message) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let new = tmp.path().join("new");
        let out = ironwal_with_input(&["load", new.to_str().unwrap()], input.as_bytes());
        assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{what}: {}", stderr(&out));
        assert!(
            names(tmp.path()).is_empty(),
            "{what}: left {:?}",
            names(tmp.path())
        );
    }
}

#[test]
fn load_refuses_a_directory_that_is_not_empty_and_changes_nothing_in_it() {
    let (dir, _) = vectors().remove(0);
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("log");
    std::fs::create_dir(&target).unwrap();
    for (path, bytes) in snapshot(&dir) {
        std::fs::write(target.join(path.file_name().unwrap()), bytes).unwrap();
    }
    let before = snapshot(&target);
    let out = ironwal_with_input(
        &["load", target.to_str().unwrap()],
        br#"{"seq":1,"op":"put","key":"61","value":"31"}"#,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("exists and is not empty"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&target), before);
    assert_eq!(names(tmp.path()), ["log"]);

    // An empty directory is taken.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = ironwal_with_input(
        &["load", empty.to_str().unwrap()],
        br#"{"seq":1,"op":"put","key":"61","value":"31"}"#,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_lines(&dump_json(&empty)).len(), 1);
}

#[test]
fn completions_and_the_manual_page_cover_every_subcommand() {
    let subcommands = ["dump", "verify", "stats", "repair", "tail", "bench", "load"];
    for shell in ["bash", "zsh", "fish"] {
        let out = ironwal(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", stderr(&out));
        let script = String::from_utf8(out.stdout).unwrap();
        for sub in subcommands {
            assert!(script.contains(sub), "{shell} completions lack {sub}");
        }
    }
    let bash = String::from_utf8(ironwal(&["completions", "bash"]).stdout).unwrap();
    assert!(bash.contains("complete -F"), "{bash}");
    let out = ironwal(&["man"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH ironwal"),
        "{page}"
    );
    for sub in subcommands {
        assert!(page.contains(sub), "the manual page lacks {sub}");
    }
    let bad = ironwal(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn load_refuses_a_link_a_path_naming_no_directory_and_the_last_sequence_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let line = br#"{"seq":1,"op":"put","key":"61","value":"31"}"#;
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&empty, &link).unwrap();
    let out = ironwal_with_input(&["load", link.to_str().unwrap()], line);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));

    let dotted = format!("{}/..", empty.display());
    let out = ironwal_with_input(&["load", &dotted], line);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("names no new directory"),
        "{}",
        stderr(&out)
    );

    let last = format!(
        "{{\"seq\":{},\"op\":\"put\",\"key\":\"61\",\"value\":\"31\"}}",
        u64::MAX
    );
    let new = tmp.path().join("new");
    let out = ironwal_with_input(&["load", new.to_str().unwrap()], last.as_bytes());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("line 1: sequence"),
        "{}",
        stderr(&out)
    );
    assert_eq!(names(tmp.path()), ["empty", "link"]);
    assert!(names(&empty).is_empty());
}

#[test]
fn load_removes_what_an_interrupted_load_of_the_same_name_left() {
    let tmp = tempfile::tempdir().unwrap();
    // A process id no running process has (above Linux's pid_max).
    let stale = tmp.path().join(".log.loading-4294967");
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("00000000000000000001.wal"), b"partial").unwrap();
    let new = tmp.path().join("log");
    let out = ironwal_with_input(
        &["load", new.to_str().unwrap()],
        br#"{"seq":1,"op":"put","key":"61","value":"31"}"#,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(names(tmp.path()), ["log"]);
}
