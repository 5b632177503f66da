//! Readers beside a live writer tell the truth: a writer process appends
//! while the library's reader and `ironwal verify` read the log over and
//! over. Not one read may report corruption or a torn tail that is only
//! the writer's work in progress; and real damage beside the live writer
//! is still reported.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironwal::{LogReader, RecoveryMode};

/// A writer process: `ironwal bench` appending into `dir` (kept).
fn writer(dir: &Path, entries: u64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ironwal"))
        .args(["bench", "--dir", dir.to_str().unwrap(), "--writers", "4"])
        .args(["--value-size", "300", "--sync", "always"])
        .args(["--entries", &entries.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until the log in `dir` holds at least `bytes` bytes of segments.
fn wait_for_bytes(dir: &Path, bytes: u64) -> std::path::PathBuf {
    let started = Instant::now();
    loop {
        let mut segments: Vec<_> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "wal"))
            .collect();
        segments.sort();
        let first = segments.first().cloned();
        let written: u64 = (segments.iter()).map(|p| ironwal_len(p)).sum();
        if let (Some(first), true) = (first, written >= bytes) {
            return first;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the writer wrote nothing"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Bytes of entries in a segment: up to the first zero header (the
/// writer preallocates with zeros).
fn ironwal_len(segment: &Path) -> u64 {
    let bytes = std::fs::read(segment).unwrap_or_default();
    let zeros = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    zeros as u64
}

/// Runs `ironwal verify` on `dir`; its output, if it is not clean.
fn verify_verdict(dir: &Path) -> Option<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_ironwal"))
        .args(["verify", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    (out.status.code() != Some(0)).then(|| format!("verify: {said}"))
}

/// Reads the whole log once; the verdict, if it is not clean.
fn read_once(dir: &Path) -> Option<String> {
    let mut reader = match LogReader::open(dir, RecoveryMode::TolerateTornTail) {
        Ok(reader) => reader,
        Err(e) => return Some(format!("open: {e}")),
    };
    loop {
        match reader.next_entry() {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => return Some(e.to_string()),
        }
    }
    let report = reader.report();
    report.dropped.first().map(|d| {
        let (cause, segment) = (d.cause, d.segment.display());
        format!("{cause:?} at {segment} offset {}: {}", d.offset, d.kind)
    })
}

#[test]
fn readers_beside_a_live_writer_never_report_its_work_in_progress() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut child = writer(&dir, 200_000);
    let started = Instant::now();
    wait_for_bytes(&dir, 1);
    let mut reads = 0;
    let mut verifies = 0;
    let mut false_verdicts = Vec::new();
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(60) {
        for _ in 0..20 {
            reads += 1;
            if let Some(verdict) = read_once(&dir) {
                false_verdicts.push(format!("library: {verdict}"));
            }
        }
        verifies += 1;
        false_verdicts.extend(verify_verdict(&dir));
    }
    let _ = child.kill();
    let _ = child.wait();
    println!("{reads} reads and {verifies} verifies beside the writer");
    assert!(reads > 100, "only {reads} reads while the writer ran");
    assert!(
        false_verdicts.is_empty(),
        "{} false verdicts: {:#?}",
        false_verdicts.len(),
        false_verdicts
    );
}

/// Real damage beside a live writer is still reported: bytes of the active
/// segment well behind the writer are overwritten, and the reader and
/// `verify` say corruption (after waiting to be sure), while the writer
/// goes on.
#[test]
fn real_damage_beside_a_live_writer_is_still_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut child = writer(&dir, 2_000_000);
    let segment = wait_for_bytes(&dir, 256 * 1024);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[0x5A; 32], 100_000).unwrap();
    drop(file);
    let verdict = read_once(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_ironwal"))
        .args(["verify", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let live = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(live, "the writer stopped before the reads were done");
    let verdict = verdict.expect("the damage was not reported");
    assert!(verdict.contains("corruption"), "{verdict}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("CORRUPT"), "{said}");
}

/// `tail` says which entries it could not print because their segments
/// were gone (here removed by retention before it got there), and goes on.
#[test]
fn tail_names_the_entries_retention_removed_before_it_read_them() {
    let tmp = tempfile::tempdir().unwrap();
    let options = ironwal::Options::default()
        .preallocate(false)
        .max_segment_size(4096);
    let wal = ironwal::Wal::open(tmp.path(), options).unwrap();
    while wal.segments().len() < 4 {
        let n = wal.next_seq().get();
        wal.put(&n.to_be_bytes(), &[3; 300]).unwrap();
    }
    let segments = wal.segments();
    wal.close().unwrap();
    // What retention leaves when it removes the middle of a follower's way.
    std::fs::remove_file(&segments[1].path).unwrap();
    std::fs::remove_file(&segments[2].path).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ironwal"))
        .args(["tail", "--json", tmp.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let first = segments[1].first_seq.unwrap();
    let last = segments[3].first_seq.unwrap().get() - 1;
    assert!(
        stderr.contains(&format!("entries {first}..={last} were gone")),
        "{stderr}"
    );
    let printed = String::from_utf8_lossy(&out.stdout).lines().count() as u64;
    let kept = segments[0].last_seq.unwrap().get() + (wal_last(&segments) - last);
    assert_eq!(printed, kept);
}

fn wal_last(segments: &[ironwal::SegmentInfo]) -> u64 {
    segments.last().unwrap().last_seq.unwrap().get()
}

const WRITER_ENV: &str = "IRONWAL_TEST_RETENTION_WRITER";

/// A writer with small segments that keeps only the last few: appends for
/// the seconds its parent gives (with the directory) in
/// `IRONWAL_TEST_RETENTION_WRITER`, removing old segments as it goes.
#[test]
#[ignore = "a child process helper, run by readers_beside_a_writer_running_retention_tell_the_truth"]
fn retention_writer_child_process() {
    let dir = std::env::var(WRITER_ENV).expect("run only as a child process");
    let options = ironwal::Options::default()
        .max_segment_size(256 * 1024)
        .sync_policy(ironwal::SyncPolicy::Bytes(64 * 1024));
    let wal = ironwal::Wal::open(&dir, options).unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(12) {
        for _ in 0..100 {
            let n = wal.next_seq().get();
            wal.put(&n.to_be_bytes(), &[(n % 251) as u8; 200]).unwrap();
        }
        let segments = wal.segments();
        if segments.len() > 4 {
            let keep = segments[segments.len() - 4].first_seq.unwrap();
            wal.remove_segments_before(keep).unwrap();
        }
    }
    wal.close().unwrap();
}

/// The same, beside a writer that rotates every 256 KiB and removes all
/// but its last four segments: a segment removed after a reader listed it
/// is a note, never an error or a verdict.
#[test]
fn readers_beside_a_writer_running_retention_tell_the_truth() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "live::retention_writer_child_process"])
        .args(["--ignored", "--test-threads=1"])
        .env(WRITER_ENV, &dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_bytes(&dir, 1);
    let started = Instant::now();
    let (mut reads, mut verifies, mut removed) = (0, 0, 0);
    let mut false_verdicts = Vec::new();
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(60) {
        for _ in 0..50 {
            reads += 1;
            match LogReader::open(&dir, RecoveryMode::TolerateTornTail).and_then(LogReader::finish)
            {
                Ok(report) if report.dropped.is_empty() => {
                    removed += report.removed_segments.len();
                }
                Ok(report) => false_verdicts.push(format!("library: {:?}", report.dropped)),
                Err(e) => false_verdicts.push(format!("library: {e}")),
            }
        }
        verifies += 1;
        false_verdicts.extend(verify_verdict(&dir));
    }
    let _ = child.kill();
    let _ = child.wait();
    println!("{reads} reads and {verifies} verifies; {removed} segments removed under a reader");
    assert!(reads > 500, "only {reads} reads while the writer ran");
    assert!(
        false_verdicts.is_empty(),
        "{} false verdicts: {false_verdicts:#?}",
        false_verdicts.len()
    );
}
