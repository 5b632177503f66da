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

/// `Wal::replay(from)` starts near `from`, not at the start of its segment:
/// a sparse index (built while writing, and rebuilt while recovering) puts
/// the first read within 64 KiB of the entry. Counted in entries scanned.
#[test]
fn replay_from_a_sequence_starts_near_it() {
    let dir = tempfile::tempdir().unwrap();
    let options = || {
        Options::default()
            .max_segment_size(16 << 20)
            .preallocate(false)
            .sync_policy(ironwal::SyncPolicy::Never)
    };
    let wal = Wal::open(dir.path(), options()).unwrap();
    for i in 0..12_000u32 {
        wal.put(&i.to_be_bytes(), &[5; 1000]).unwrap();
    }
    assert_eq!(
        wal.segments().len(),
        1,
        "one segment, so the offset is what counts"
    );
    // About 1 KiB per entry: fewer than 64 + 1 entries before the one asked for.
    let scanned_to_reach = |wal: &Wal, seq: u64| {
        let mut reader = wal.replay(Seq::new(seq)).unwrap();
        let entry = reader.next_entry().unwrap().unwrap();
        assert_eq!(entry.seq, Seq::new(seq));
        reader.report().entries
    };
    for seq in [1, 100, 6_001, 11_990] {
        let scanned = scanned_to_reach(&wal, seq);
        assert!(scanned <= 66, "{scanned} entries scanned to reach {seq}");
    }
    wal.close().unwrap();
    let wal = Wal::open(dir.path(), options()).unwrap();
    for seq in [1, 6_001, 11_990] {
        let scanned = scanned_to_reach(&wal, seq);
        assert!(
            scanned <= 66,
            "after reopening: {scanned} entries scanned to reach {seq}"
        );
    }
    // And what is read from there on is the whole rest of the log.
    let mut reader = wal.replay(Seq::new(6_001)).unwrap();
    let mut rest = Vec::new();
    while let Some(entry) = reader.next_entry().unwrap() {
        rest.push(entry.seq.get());
    }
    assert_eq!(rest, (6_001..=12_000).collect::<Vec<u64>>());
    wal.close().unwrap();
}
