//! kevo's own reader on logs ironwal writes, through the model in
//! `ironwal_crash::kevo` (kevo's `ReplayWALDir` and `ReuseWAL` rules): every
//! shape of log ironwal leaves after a clean close replays in kevo with no
//! error and no skipped byte, kevo may append to it and read everything back,
//! and ironwal reads kevo's appends. With `Options::kevo_interop()` the same
//! holds after `kill -9`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use ironwal::{LogReader, Op, Options, RecoveryMode, Seq, SyncPolicy, Wal, WriteBatch};
use ironwal_crash::kevo::{self, FlatEntry};

/// What ironwal reads from `dir`, as kevo's memtable would see it.
fn ironwal_entries(dir: &Path) -> Vec<FlatEntry> {
    LogReader::open(dir, RecoveryMode::Strict)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.seq.get(), e.op.to_byte(), e.key, e.value)
        })
        .collect()
}

/// kevo replays `dir` with no error and no skipped byte, and sees exactly
/// what ironwal sees.
fn assert_kevo_reads_it(dir: &Path, shape: &str) -> Vec<FlatEntry> {
    let replay = kevo::replay_dir(dir).unwrap_or_else(|e| panic!("{shape}: kevo fails: {e}"));
    assert!(
        replay.is_clean(),
        "{shape}: kevo skips {:?} and fails files {:?}",
        replay.skipped,
        replay.failed_files
    );
    let flat = kevo::flatten(&replay.entries).unwrap();
    let ironwal = ironwal_entries(dir);
    let seqs = |v: &[FlatEntry]| v.iter().map(|e| e.0).collect::<Vec<_>>();
    assert_eq!(
        seqs(&flat),
        seqs(&ironwal),
        "{shape}: kevo and ironwal differ"
    );
    assert!(
        flat == ironwal,
        "{shape}: kevo and ironwal read different bytes"
    );
    flat
}

/// kevo appends to the log (ReuseWAL), reads everything back, and so does
/// ironwal, which then continues the log after kevo's entries.
fn assert_kevo_appends(dir: &Path, shape: &str, options: &Options) {
    let before = assert_kevo_reads_it(dir, shape);
    let next = before.last().map_or(1, |e| e.0 + 1);
    let appended = vec![
        (
            Op::Put.to_byte(),
            next,
            b"kevo".to_vec(),
            b"appended".to_vec(),
        ),
        (Op::Delete.to_byte(), next + 1, b"gone".to_vec(), Vec::new()),
    ];
    kevo::reuse_and_append(dir, 0, &appended).unwrap();
    let after = assert_kevo_reads_it(dir, shape);
    assert_eq!(
        after.len(),
        before.len() + 2,
        "{shape}: kevo lost an append"
    );
    let wal = Wal::open(dir, options.clone()).unwrap();
    assert_eq!(wal.next_seq(), Seq::new(next + 2), "{shape}");
    wal.put(b"ironwal", b"again").unwrap();
    wal.close().unwrap();
    assert_eq!(assert_kevo_reads_it(dir, shape).len(), after.len() + 1);
}

fn fill(wal: &Wal, n: u32, value_len: usize) {
    for i in 0..n {
        let key = format!("key-{i}");
        match i % 5 {
            0 => wal.delete(key.as_bytes()).map(drop),
            1 => wal.merge(key.as_bytes(), b"+1").map(drop),
            _ => wal.put(key.as_bytes(), &vec![b'v'; value_len]).map(drop),
        }
        .unwrap();
    }
}

/// A shape of log: its name and how to write it into a directory.
type Shape<'a> = (&'a str, &'a dyn Fn(&Path));

/// Builds each shape of log under `options`, closes it, and checks it.
fn every_shape(options: Options, label: &str) {
    let shapes: [Shape<'_>; 7] = [
        ("empty", &|dir| {
            Wal::open(dir, options.clone()).unwrap().close().unwrap();
        }),
        ("opened and closed 10 times", &|dir| {
            for _ in 0..10 {
                Wal::open(dir, options.clone()).unwrap().close().unwrap();
            }
        }),
        ("single segment", &|dir| {
            let wal = Wal::open(dir, options.clone()).unwrap();
            fill(&wal, 40, 100);
            wal.close().unwrap();
        }),
        ("batches and fragments", &|dir| {
            let wal = Wal::open(dir, options.clone()).unwrap();
            let mut batch = WriteBatch::new();
            batch.put(b"b1", b"one").delete(b"b2").merge(b"b3", b"+");
            wal.write_batch(&batch).unwrap();
            wal.put(b"huge value", &vec![7u8; 100_000]).unwrap();
            wal.put(&vec![b'k'; 40_000], b"huge key").unwrap();
            wal.delete(&vec![b'd'; 33_000]).unwrap();
            wal.write_batch(&batch).unwrap();
            wal.close().unwrap();
        }),
        ("rotated", &|dir| {
            let wal = Wal::open(dir, options.clone().max_segment_size(4096)).unwrap();
            fill(&wal, 300, 100);
            assert!(wal.segments().len() > 5);
            wal.close().unwrap();
        }),
        ("retained", &|dir| {
            let wal = Wal::open(dir, options.clone().max_segment_size(4096)).unwrap();
            fill(&wal, 300, 100);
            let removed = wal.remove_segments_before(Seq::new(150)).unwrap();
            assert!(!removed.is_empty());
            wal.close().unwrap();
        }),
        ("reopened 30 times", &|dir| {
            for i in 0..30u32 {
                let wal = Wal::open(dir, options.clone().max_segment_size(2048)).unwrap();
                fill(&wal, i % 4, 200);
                wal.close().unwrap();
            }
        }),
    ];
    for (shape, build) in shapes {
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path());
        assert_kevo_appends(tmp.path(), &format!("{label}: {shape}"), &options);
    }
}

#[test]
fn every_shape_of_closed_log_replays_in_kevo_with_preallocation() {
    every_shape(Options::default(), "defaults");
}

#[test]
fn every_shape_of_closed_log_replays_in_kevo_under_the_lazy_policies() {
    every_shape(Options::default().sync_policy(SyncPolicy::Never), "never");
    every_shape(Options::kevo_interop(), "kevo_interop");
}

/// A log whose writer died: `forget` skips the close, leaving the files as a
/// killed process leaves them.
fn crashed_log(dir: &Path, options: Options) {
    let wal = Wal::open(dir, options.max_segment_size(64 * 1024)).unwrap();
    fill(&wal, 50, 300);
    std::mem::forget(wal);
}

/// The model has teeth: the zero tail a crash leaves in a preallocated
/// segment is what kevo's reader cannot take (and what a closed log once
/// held too).
#[test]
fn a_crashed_preallocated_log_is_not_clean_for_kevo() {
    let tmp = tempfile::tempdir().unwrap();
    crashed_log(tmp.path(), Options::default());
    // kevo either fails outright or skips the zeros.
    if let Ok(replay) = kevo::replay_dir(tmp.path()) {
        assert!(!replay.is_clean(), "kevo skipped nothing");
    }
}

#[test]
fn a_crashed_kevo_interop_log_replays_in_kevo() {
    let tmp = tempfile::tempdir().unwrap();
    crashed_log(tmp.path(), Options::kevo_interop());
    let flat = assert_kevo_reads_it(tmp.path(), "crashed kevo_interop");
    assert_eq!(flat.len(), 50);
}

/// Runs the kill -9 harness's child on `dir` until it acknowledges `acks`
/// operations, kills it, and returns the acknowledged sequences.
fn kill_child(dir: &Path, preallocate: bool, cycle: u64, acks: usize) -> Vec<u64> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ironwal-crash"))
        .arg(ironwal_crash::kill9::CHILD_COMMAND)
        .args(["--dir", dir.to_str().unwrap()])
        .args(["--seed", &cycle.to_string(), "--threads", "2"])
        .args(["--serial-base", &(cycle * 1_000_000).to_string()])
        .args(["--segment-size", "32768"])
        .args(["--preallocate", &preallocate.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seqs = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        seqs.push(line.split(' ').next().unwrap().parse::<u64>().unwrap());
        if seqs.len() >= acks {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    seqs
}

/// `kill -9` of a writer under `Options::kevo_interop()` leaves a log kevo
/// replays with every acknowledged entry. One outcome is allowed and
/// checked: a kill in the middle of a write leaves a torn last record,
/// which kevo's reader cannot skip (and ironwal truncates on its next open).
#[test]
fn kevo_interop_logs_replay_in_kevo_after_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let mut clean = 0;
    for cycle in 0..6 {
        let acked = kill_child(tmp.path(), false, cycle, 300);
        assert!(!acked.is_empty());
        match kevo::replay_dir(tmp.path()) {
            Ok(replay) => {
                assert!(replay.is_clean(), "cycle {cycle}: {:?}", replay.skipped);
                let seqs: Vec<u64> = kevo::flatten(&replay.entries)
                    .unwrap()
                    .iter()
                    .map(|e| e.0)
                    .collect();
                for seq in &acked {
                    assert!(seqs.contains(seq), "cycle {cycle}: kevo lost acked {seq}");
                }
                clean += 1;
            }
            Err(error) => {
                let report = LogReader::open(tmp.path(), RecoveryMode::TolerateTornTail)
                    .unwrap()
                    .finish()
                    .unwrap();
                assert!(
                    report.torn_tail().is_some(),
                    "cycle {cycle}: kevo fails ({error}) on a log with no torn tail"
                );
            }
        }
        // The next cycle's child reopens (and so repairs) the log.
    }
    assert!(clean >= 3, "only {clean} of 6 kills left a clean log");
}

/// The same kills with preallocation leave a zero tail kevo cannot take.
#[test]
fn preallocated_logs_are_not_clean_for_kevo_after_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    kill_child(tmp.path(), true, 0, 100);
    if let Ok(replay) = kevo::replay_dir(tmp.path()) {
        assert!(!replay.is_clean(), "kevo skipped nothing");
    }
}
