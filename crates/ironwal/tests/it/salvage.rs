//! Salvage: every intact entry of a damaged log, with its sequence and its
//! batch, copied into a clean log.

use ironwal::{salvage_with, LogReader, RecoveryMode, Seq, Wal, WriteBatch};

use crate::common::{flip_bit, Store};

#[test]
fn salvage_keeps_sequences_and_batches_and_skips_only_the_damage() {
    let store = Store::mem();
    let wal = Wal::open(store.dir(), store.options().max_segment_size(512)).unwrap();
    let mut batch = WriteBatch::new();
    for i in 0..30u32 {
        if i % 5 == 0 {
            batch.clear();
            batch
                .put(format!("b{i}a").as_bytes(), b"1")
                .delete(format!("b{i}b").as_bytes());
            wal.write_batch(&batch).unwrap();
        } else {
            wal.put(format!("k{i}").as_bytes(), &[b'v'; 40]).unwrap();
        }
    }
    let segments = wal.segments();
    wal.close().unwrap();
    assert!(segments.len() >= 3);
    let damaged = &segments[1].path;
    let mut bytes = store.read(damaged);
    flip_bit(&mut bytes, 30, 1);
    store.write(damaged, &bytes);

    let dest = store.dir().join("repaired");
    let report = salvage_with(store.storage(), store.dir(), &dest).unwrap();
    assert_eq!(report.skipped().len(), 1);
    assert_eq!(report.written.len(), segments.len());
    let original =
        LogReader::open_with(store.storage(), store.dir(), RecoveryMode::SkipCorrupted).unwrap();
    let want: Vec<_> = original.map(Result::unwrap).collect();
    assert_eq!(report.entries, want.len() as u64);

    let mut reader = LogReader::open_with(store.storage(), &dest, RecoveryMode::Strict).unwrap();
    let mut got = Vec::new();
    let mut batches = 0;
    while let Some(item) = reader.next_item().unwrap() {
        if item.is_batch() {
            batches += 1;
            assert_eq!(item.len(), 2, "batches stay whole");
        }
        got.extend(item.iter().map(|e| e.to_entry()));
    }
    assert!(reader.report().is_clean());
    assert_eq!(got, want, "same entries, same sequences, in order");
    assert!(batches >= 4);
    assert!(got.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(
        got.iter().any(|e| e.seq > Seq::new(20)),
        "entries after the damage are kept"
    );
    assert!(
        salvage_with(store.storage(), store.dir(), &dest).is_err(),
        "the destination must be empty"
    );
}
