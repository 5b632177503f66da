//! A reader beside a live writer: what the writer is still writing at the
//! tip is reported as in flight, never as a torn tail; once the writer is
//! gone, the same bytes are a torn tail.

use std::os::unix::fs::FileExt;

use std::path::Path;

use ironwal::{LogReader, Options, RecoveryMode, RecoveryReport, SyncPolicy, Wal};

/// A record header whose payload is not all there: what a reader sees of
/// a write still in flight.
fn half_record() -> Vec<u8> {
    let mut bytes = vec![0xAB, 0xCD, 0xEF, 0x01]; // a checksum
    bytes.extend_from_slice(&300u16.to_le_bytes()); // payload length
    bytes.push(1); // Full
    bytes.extend_from_slice(&[7; 50]); // 50 of the 300 bytes
    bytes
}

/// Writes `tip` at the end of `segment`, then reads the log in `dir`.
fn read_after_tip(dir: &Path, segment: &Path, tip: &[u8]) -> RecoveryReport {
    let end = std::fs::metadata(segment).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(segment)
        .unwrap();
    file.write_all_at(tip, end).unwrap();
    LogReader::open(dir, RecoveryMode::TolerateTornTail)
        .unwrap()
        .finish()
        .unwrap()
}

#[test]
fn a_live_writers_unfinished_tip_is_in_flight_not_torn() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default()
        .preallocate(false)
        .sync_policy(SyncPolicy::Always);
    let wal = Wal::open(dir.path(), options).unwrap();
    for i in 0..100u32 {
        wal.put(&i.to_be_bytes(), b"value").unwrap();
    }
    let segment = wal.segments().last().unwrap().path.clone();
    let tip = half_record();
    let report = read_after_tip(dir.path(), &segment, &tip);
    assert_eq!(report.entries, 100);
    assert!(report.dropped.is_empty(), "{:?}", report.dropped);
    assert_eq!(report.in_flight, Some(tip.len() as u64));

    // The writer gone (its close cuts what it did not write), the same
    // bytes are what a crash leaves: a torn tail.
    wal.close().unwrap();
    let report = read_after_tip(dir.path(), &segment, &tip);
    assert_eq!(report.entries, 100);
    assert_eq!(report.in_flight, None);
    assert_eq!(report.torn_tail().map(|d| d.len), Some(tip.len() as u64));
}

/// Retention removes segments a reader listed but had not read yet: they
/// are skipped with a note, the entries it had not returned are a gap,
/// and there is no I/O error.
#[test]
fn segments_removed_while_a_reader_reads_are_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let wal = crate::common::small_segments(dir.path(), 5);
    wal.sync().unwrap();
    let segments = wal.segments();
    let mut reader = LogReader::open(dir.path(), RecoveryMode::TolerateTornTail).unwrap();
    // The reader is inside the first segment when retention removes the
    // first three.
    let first = reader.next_entry().unwrap().unwrap().seq;
    let keep_from = segments[3].first_seq.unwrap();
    wal.remove_segments_before(keep_from).unwrap();
    let mut seqs = vec![first];
    while let Some(entry) = reader.next_entry().unwrap() {
        seqs.push(entry.seq);
    }
    let report = reader.report();
    let removed: Vec<_> = segments[1..3].iter().map(|s| s.path.clone()).collect();
    assert_eq!(report.removed_segments, removed);
    let gap = report
        .gaps
        .first()
        .expect("a gap where the removed entries were");
    assert_eq!(gap.next, keep_from);
    assert_eq!(seqs.last().copied(), Some(wal.last_seq()));
    assert!(report.dropped.is_empty(), "{:?}", report.dropped);
    wal.close().unwrap();
}
