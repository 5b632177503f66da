//! Reading from a sequence inside a segment: the entries before it are
//! read and counted once, and memory does not grow with them.

use ironwal::{LogReader, Options, RecoveryMode, Seq, Wal};

/// 5,000 entries in one segment, read from the 4,990th: every entry is
/// counted once in the report, and only the last 11 come out.
#[test]
fn reading_from_a_sequence_counts_each_earlier_entry_once() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), Options::default().preallocate(false)).unwrap();
    for i in 0..5_000u32 {
        wal.put_nowait(&i.to_be_bytes(), &[1; 100]).unwrap();
    }
    wal.close().unwrap();
    assert_eq!(wal.segments().len(), 1, "one segment holds them all");

    let mut reader = LogReader::open(dir.path(), RecoveryMode::TolerateTornTail)
        .unwrap()
        .from_seq(Seq::new(4_990));
    let mut seqs = Vec::new();
    while let Some(entry) = reader.next_entry().unwrap() {
        seqs.push(entry.seq.get());
    }
    assert_eq!(seqs, (4_990..=5_000).collect::<Vec<_>>());
    let report = reader.report();
    assert_eq!(report.entries, 5_000, "each entry is counted once");
    assert_eq!(report.highest_seq, Some(Seq::new(5_000)));
}
