//! Damage in the middle of a log is not a torn write. The default mode
//! refuses it and names the place; `PointInTime` ends the log there;
//! `SkipCorrupted` skips exactly the damaged entry (or batch) and reports it.
//! Nothing read from disk may panic or size an allocation.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

use ironwal::format::record::write_record;
use ironwal::format::{encode_entry, encode_header_batch, Op, RecordType};
use ironwal::{
    CorruptionKind, DropCause, Entry, Error, LogReader, Options, RecoveryMode, Seq, SyncPolicy,
    Wal, WriteBatch,
};

use crate::common::{
    entry, flip_bit, items, letters, overwrite_byte, put_entry, records, replay_all, zero_range,
    Store,
};

/// A log of several segments and the items of each.
struct Fixture {
    store: Store,
    segments: Vec<PathBuf>,
    items: Vec<Items>,
}

/// Eighty entries (puts, deletes, merges, batches) in 1.5 KiB segments.
fn multi_segment_log(store: Store) -> Fixture {
    let options = store
        .options()
        .max_segment_size(1536)
        .sync_policy(SyncPolicy::Never);
    let wal = Wal::open(store.dir(), options).unwrap();
    for i in 0..80u8 {
        let key = format!("key-{i:02}");
        match i % 10 {
            3 => wal.delete(key.as_bytes()),
            5 => wal.merge(key.as_bytes(), b"+1"),
            7 => {
                let mut batch = WriteBatch::new();
                batch
                    .put(key.as_bytes(), &letters(40, i))
                    .delete(b"gone")
                    .merge(b"count", b"+3");
                wal.write_batch(&batch)
            }
            _ => wal.put(key.as_bytes(), &letters(100, i)),
        }
        .unwrap();
    }
    wal.close().unwrap();
    let segments = store.segments();
    assert!(segments.len() >= 4, "{} segments", segments.len());
    let items = segments.iter().map(|p| items(&store.read(p))).collect();
    Fixture {
        store,
        segments,
        items,
    }
}

impl Fixture {
    fn all(&self) -> Vec<Entry> {
        self.items
            .iter()
            .flatten()
            .flat_map(|(_, ops)| ops.iter().cloned())
            .collect()
    }

    /// Operations of the items before item `item` of segment `seg`.
    fn before(&self, seg: usize, item: usize) -> Vec<Entry> {
        let mut out: Vec<Entry> = self.items[..seg]
            .iter()
            .flatten()
            .flat_map(|(_, ops)| ops.iter().cloned())
            .collect();
        out.extend(
            self.items[seg][..item]
                .iter()
                .flat_map(|(_, ops)| ops.iter().cloned()),
        );
        out
    }

    /// Every operation but those of one item.
    fn without(&self, seg: usize, item: usize) -> Vec<Entry> {
        let gone = &self.items[seg][item].1;
        self.all()
            .into_iter()
            .filter(|e| !gone.contains(e))
            .collect()
    }

    fn span(&self, seg: usize, item: usize) -> Range<usize> {
        self.items[seg][item].0.clone()
    }

    fn middle_item(&self, seg: usize) -> usize {
        self.items[seg].len() / 2
    }

    fn damage(&self, seg: usize, damage: impl FnOnce(&mut Vec<u8>)) {
        let mut bytes = self.store.read(&self.segments[seg]);
        damage(&mut bytes);
        self.store.write(&self.segments[seg], &bytes);
    }

    fn seg_len(&self, seg: usize) -> u64 {
        self.store.read(&self.segments[seg]).len() as u64
    }

    /// Every file in the log directory and its bytes.
    fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        self.store
            .files()
            .into_iter()
            .map(|name| {
                let bytes = self.store.read(&self.store.dir().join(&name));
                (name, bytes)
            })
            .collect()
    }
}

/// Asserts `error` is a corruption at `offset` of `segment` and returns its kind.
pub(crate) fn expect_corruption(
    error: Option<Error>,
    segment: &PathBuf,
    offset: usize,
) -> CorruptionKind {
    match error {
        Some(Error::Corruption {
            segment: at,
            offset: got,
            kind,
        }) => {
            assert_eq!(&at, segment, "corrupt segment");
            assert_eq!(got, offset as u64, "corrupt offset ({kind})");
            kind
        }
        other => panic!("expected corruption at {offset}, got {other:?}"),
    }
}

/// One payload bit of the middle item of the second segment, flipped.
fn flipped_payload_mid_log(store: Store) -> (Fixture, usize, usize) {
    let fx = multi_segment_log(store);
    let (seg, item) = (1, fx.middle_item(1));
    let at = fx.span(seg, item).start + 7 + 5;
    fx.damage(seg, |b| flip_bit(b, at, 3));
    (fx, seg, item)
}

#[test]
fn flipped_payload_bit_mid_segment_is_corruption_at_the_record() {
    let (fx, seg, item) = flipped_payload_mid_log(Store::mem());
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::Strict] {
        let (got, error, _) = fx.store.read_all(mode);
        let kind = expect_corruption(error, &fx.segments[seg], fx.span(seg, item).start);
        assert!(
            matches!(kind, CorruptionKind::ChecksumMismatch { .. }),
            "{mode}: {kind:?}"
        );
        assert!(
            got == fx.before(seg, item),
            "{mode}: entries before the damage come first"
        );
    }
}

#[test]
fn refused_open_leaves_every_file_byte_identical() {
    for store in Store::both() {
        let (fx, seg, item) = flipped_payload_mid_log(store);
        let before = fx.snapshot();
        let err = Wal::open(fx.store.dir(), fx.store.options()).unwrap_err();
        match err {
            Error::Corruption {
                segment, offset, ..
            } => {
                assert_eq!(segment, fx.segments[seg]);
                assert_eq!(offset, fx.span(seg, item).start as u64);
            }
            other => panic!("{}: expected corruption, got {other}", fx.store.name()),
        }
        assert!(
            before == fx.snapshot(),
            "{}: a refused open changed the log",
            fx.store.name()
        );
        // The refused open released the lock: a salvage open can follow.
        let wal = Wal::open(
            fx.store.dir(),
            fx.store
                .options()
                .recovery_mode(RecoveryMode::SkipCorrupted),
        )
        .unwrap();
        wal.close().unwrap();
    }
}

#[test]
fn point_in_time_yields_the_prefix_and_reports_the_rest() {
    let (fx, seg, item) = flipped_payload_mid_log(Store::mem());
    let (got, error, report) = fx.store.read_all(RecoveryMode::PointInTime);
    assert!(error.is_none(), "{error:?}");
    assert!(got == fx.before(seg, item));
    assert_eq!(report.dropped.len(), 1, "{report:#?}");
    let dropped = &report.dropped[0];
    let start = fx.span(seg, item).start as u64;
    assert_eq!(dropped.segment, fx.segments[seg]);
    assert_eq!(dropped.offset, start);
    assert_eq!(dropped.len, fx.seg_len(seg) - start);
    assert_eq!(dropped.cause, DropCause::Corruption);
    assert!(matches!(
        dropped.kind,
        CorruptionKind::ChecksumMismatch { .. }
    ));
    assert_eq!(report.ignored_segments, fx.segments[seg + 1..].to_vec());
    assert!(report.has_corruption());
    assert_eq!(report.highest_seq, got.last().map(|e| e.seq));
}

#[test]
fn point_in_time_open_moves_the_rest_aside_and_continues() {
    for store in Store::both() {
        let (fx, seg, item) = flipped_payload_mid_log(store);
        let before = fx.snapshot();
        let prefix = fx.before(seg, item);
        let start = fx.span(seg, item).start;
        let highest = prefix.last().unwrap().seq.get();

        let options = fx.store.options().recovery_mode(RecoveryMode::PointInTime);
        let wal = Wal::open(fx.store.dir(), options).unwrap();
        assert_eq!(wal.next_seq(), Seq::new(highest + 1));
        let seq = wal.put(b"after", b"point in time").unwrap();
        assert_eq!(seq, Seq::new(highest + 1));
        wal.close().unwrap();

        // Nothing is lost: the unrecovered bytes are kept beside the log.
        let damaged_name = fx.store.files()[seg].clone();
        let files = fx.snapshot();
        let aside = format!("{damaged_name}.at-{start}.corrupt");
        assert!(
            files.get(&aside).map(Vec::as_slice) == Some(&before[&damaged_name][start..]),
            "{}: {aside} must hold the bytes after the recovery point; files: {:?}",
            fx.store.name(),
            files.keys().collect::<Vec<_>>()
        );
        for later in &fx.segments[seg + 1..] {
            let name = later.file_name().unwrap().to_str().unwrap();
            assert!(
                files.get(&format!("{name}.corrupt")) == before.get(name),
                "{}: {name} must be kept as {name}.corrupt",
                fx.store.name()
            );
            assert!(!files.contains_key(name), "{name} is still a segment");
        }

        // A default open now finds a clean log: the prefix and the new entry.
        let wal = Wal::open(fx.store.dir(), fx.store.options()).unwrap();
        assert!(
            wal.recovery_report().is_clean(),
            "{:#?}",
            wal.recovery_report()
        );
        let mut want = prefix.clone();
        want.push(put_entry(highest + 1, b"after", b"point in time"));
        assert!(replay_all(&wal) == want, "{}", fx.store.name());
        assert_eq!(wal.next_seq(), Seq::new(highest + 2));
        wal.close().unwrap();
        let (_, error, report) = fx.store.read_all(RecoveryMode::Strict);
        assert!(
            error.is_none() && report.is_clean(),
            "{error:?} {report:#?}"
        );
    }
}

#[test]
fn skip_corrupted_yields_everything_but_the_damaged_entry() {
    let (fx, seg, item) = flipped_payload_mid_log(Store::mem());
    let (got, error, report) = fx.store.read_all(RecoveryMode::SkipCorrupted);
    assert!(error.is_none(), "{error:?}");
    assert!(got == fx.without(seg, item));
    assert_eq!(report.dropped.len(), 1, "{report:#?}");
    let span = fx.span(seg, item);
    let dropped = &report.dropped[0];
    assert_eq!(dropped.segment, fx.segments[seg]);
    assert_eq!(dropped.offset, span.start as u64);
    assert_eq!(dropped.len, span.len() as u64);
    assert_eq!(dropped.cause, DropCause::Corruption);
    assert!(report.ignored_segments.is_empty());
}

#[test]
fn skip_corrupted_drops_a_damaged_single_record_batch_whole() {
    // A batch big enough to be First + Middle + Last, between two entries;
    // damage each of its records in turn.
    let store = Store::mem();
    let wal = Wal::open(store.dir(), store.options()).unwrap();
    wal.put(b"before", b"1").unwrap();
    let mut batch = WriteBatch::new();
    for i in 0..80u8 {
        batch.put(&[i], &letters(1000, i));
    }
    wal.write_batch(&batch).unwrap();
    wal.put(b"after", b"2").unwrap();
    wal.close().unwrap();
    let path = store.segments()[0].clone();
    let clean = store.read(&path);
    let recs = records(&clean);
    let kinds: Vec<RecordType> = recs.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds[..3],
        [RecordType::Full, RecordType::First, RecordType::Middle]
    );
    let batch_span = recs[1].offset..recs[recs.len() - 2].end();

    for damaged in &recs[1..recs.len() - 1] {
        let mut bytes = clean.clone();
        flip_bit(&mut bytes, damaged.payload() + damaged.len / 2, 0);
        store.write(&path, &bytes);
        let ctx = format!("{:?} record at {}", damaged.kind, damaged.offset);

        let (got, error, report) = store.read_all(RecoveryMode::SkipCorrupted);
        assert!(error.is_none(), "{ctx}: {error:?}");
        assert!(
            got == [put_entry(1, b"before", b"1"), put_entry(82, b"after", b"2")],
            "{ctx}: got {} entries",
            got.len()
        );
        let ranges: Vec<(u64, u64)> = report.dropped.iter().map(|d| (d.offset, d.len)).collect();
        assert_eq!(
            ranges,
            [(batch_span.start as u64, batch_span.len() as u64)],
            "{ctx}"
        );

        let (got, error, _) = store.read_all(RecoveryMode::TolerateTornTail);
        expect_corruption(error, &path, damaged.offset);
        assert!(got == [put_entry(1, b"before", b"1")], "{ctx}");

        let (got, error, report) = store.read_all(RecoveryMode::PointInTime);
        assert!(error.is_none());
        assert!(got == [put_entry(1, b"before", b"1")], "{ctx}");
        assert_eq!(report.dropped[0].offset, batch_span.start as u64, "{ctx}");
    }
}

/// Entries before, a header-form batch of four, entries after.
fn log_with_header_batch() -> (Vec<u8>, Range<usize>, Vec<Entry>, Vec<Entry>) {
    let mut bytes = Vec::new();
    encode_entry(&mut bytes, Op::Put, 1, b"before", b"1").unwrap();
    let start = bytes.len();
    encode_header_batch(
        &mut bytes,
        2,
        &[
            (Op::Put, b"b1", b"x"),
            (Op::Delete, b"b2", b""),
            (Op::Put, b"b3", b"y"),
            (Op::Merge, b"b4", b"z"),
        ],
    )
    .unwrap();
    let end = bytes.len();
    encode_entry(&mut bytes, Op::Put, 6, b"after", b"2").unwrap();
    encode_entry(&mut bytes, Op::Delete, 7, b"later", b"").unwrap();
    let before = vec![put_entry(1, b"before", b"1")];
    let after = vec![
        put_entry(6, b"after", b"2"),
        entry(7, Op::Delete, b"later", None),
    ];
    (bytes, start..end, before, after)
}

#[test]
fn skip_corrupted_drops_a_damaged_header_form_batch_whole() {
    let (clean, span, before, after) = log_with_header_batch();
    let recs = records(&clean);
    // recs[1] is the batch header, recs[2..6] its four entries.
    let mut leaks = Vec::new();
    for (i, damaged) in recs[1..6].iter().enumerate() {
        let mut bytes = clean.clone();
        flip_bit(&mut bytes, damaged.payload() + 1, 2);
        let store = Store::mem();
        let path = store.dir().join("00000000000000000001.wal");
        store.write(&path, &bytes);
        let ctx = match i {
            0 => format!("damaged batch header at {}", damaged.offset),
            _ => format!(
                "damaged operation {i} of 4 of the batch, at {}",
                damaged.offset
            ),
        };

        let (got, error, report) = store.read_all(RecoveryMode::SkipCorrupted);
        assert!(error.is_none(), "{ctx}: {error:?}");
        if i == 0 {
            // With its header gone, nothing marks the entries as a batch; they
            // can only be read as what they look like: single entries.
            assert_eq!(got.len(), before.len() + 4 + after.len(), "{ctx}");
        } else {
            let mut want = before.clone();
            want.extend(after.iter().cloned());
            let ranges: Vec<(u64, u64)> =
                report.dropped.iter().map(|d| (d.offset, d.len)).collect();
            let want_ranges = [(span.start as u64, span.len() as u64)];
            if got != want || ranges != want_ranges {
                leaks.push(format!(
                    "{ctx}: yielded sequences {:?} (want {:?}), dropped {ranges:?} (want {want_ranges:?})",
                    got.iter().map(|e| e.seq.get()).collect::<Vec<_>>(),
                    want.iter().map(|e| e.seq.get()).collect::<Vec<_>>(),
                ));
            }
        }

        let (got, error, _) = store.read_all(RecoveryMode::TolerateTornTail);
        expect_corruption(error, &path, damaged.offset);
        assert!(got == before, "{ctx}");
        let (got, _, _) = store.read_all(RecoveryMode::PointInTime);
        assert!(got == before, "{ctx}");
    }
    assert!(
        leaks.is_empty(),
        "SkipCorrupted yielded part of a damaged header-form batch:\n{}",
        leaks.join("\n")
    );
}

/// The items of a segment: the bytes each spans and its operations.
type Items = Vec<(Range<usize>, Vec<Entry>)>;

/// A one-segment log of twenty small entries.
fn small_log() -> (Store, PathBuf, Vec<u8>, Items) {
    let store = Store::mem();
    let wal = Wal::open(store.dir(), store.options().sync_policy(SyncPolicy::Never)).unwrap();
    for i in 0..20u8 {
        wal.put(&[b'k', i], &letters(60, i)).unwrap();
    }
    wal.close().unwrap();
    let path = store.segments()[0].clone();
    let bytes = store.read(&path);
    let items = items(&bytes);
    (store, path, bytes, items)
}

fn ops_of(items: &[(Range<usize>, Vec<Entry>)]) -> Vec<Entry> {
    items
        .iter()
        .flat_map(|(_, ops)| ops.iter().cloned())
        .collect()
}

#[test]
fn length_running_past_the_end_with_valid_records_after_is_corruption() {
    // Bit 14 of the length adds 16384: the record now runs past the end of
    // a 1.6 KB file, which looks like a torn write, but valid records follow.
    let (store, path, clean, items) = small_log();
    let mid = items.len() / 2;
    let at = items[mid].0.start;
    let mut bytes = clean.clone();
    flip_bit(&mut bytes, at + 5, 6);
    store.write(&path, &bytes);

    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::Strict] {
        let (got, error, report) = store.read_all(mode);
        let kind = expect_corruption(error, &path, at);
        assert!(
            matches!(kind, CorruptionKind::TruncatedRecord { .. }),
            "{mode}: {kind:?}"
        );
        assert!(got == ops_of(&items[..mid]), "{mode}");
        assert!(report.torn_tail().is_none(), "{mode}: called a torn tail");
    }
    let err = Wal::open(store.dir(), store.options()).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert!(
        store.read(&path) == bytes,
        "a refused open must not truncate"
    );

    let (got, error, report) = store.read_all(RecoveryMode::SkipCorrupted);
    assert!(error.is_none());
    let mut want = ops_of(&items[..mid]);
    want.extend(ops_of(&items[mid + 1..]));
    assert!(got == want);
    assert_eq!(report.dropped.len(), 1);
    assert_eq!(report.dropped[0].offset, at as u64);
    assert_eq!(report.dropped[0].len, items[mid].0.len() as u64);
}

#[test]
fn length_over_the_record_limit_with_valid_records_after_is_corruption() {
    let (store, path, clean, items) = small_log();
    let mid = items.len() / 2;
    let at = items[mid].0.start;
    let mut bytes = clean.clone();
    flip_bit(&mut bytes, at + 5, 7);
    store.write(&path, &bytes);
    let (got, error, _) = store.read_all(RecoveryMode::TolerateTornTail);
    let kind = expect_corruption(error, &path, at);
    assert!(
        matches!(kind, CorruptionKind::RecordTooLong { .. }),
        "{kind:?}"
    );
    assert!(got == ops_of(&items[..mid]));
}

#[test]
fn length_running_past_the_end_in_the_last_record_is_a_torn_tail() {
    let (store, path, clean, items) = small_log();
    let last = items.len() - 1;
    let at = items[last].0.start;
    let mut bytes = clean.clone();
    flip_bit(&mut bytes, at + 5, 6);
    store.write(&path, &bytes);
    let (got, error, report) = store.read_all(RecoveryMode::TolerateTornTail);
    assert!(error.is_none(), "{error:?}");
    assert!(got == ops_of(&items[..last]));
    assert_eq!(report.torn_tail().map(|t| t.offset), Some(at as u64));
}

#[test]
fn invalid_record_type_mid_log_is_corruption() {
    let (store, path, clean, items) = small_log();
    let mid = items.len() / 2;
    let at = items[mid].0.start;
    for found in [0u8, 5, 0xff] {
        let mut bytes = clean.clone();
        overwrite_byte(&mut bytes, at + 6, found);
        store.write(&path, &bytes);
        let (got, error, _) = store.read_all(RecoveryMode::TolerateTornTail);
        let kind = expect_corruption(error, &path, at);
        assert_eq!(kind, CorruptionKind::InvalidRecordType { found });
        assert!(got == ops_of(&items[..mid]));

        let (got, error, report) = store.read_all(RecoveryMode::SkipCorrupted);
        assert!(error.is_none());
        assert_eq!(got.len(), items.len() - 1);
        assert_eq!(report.dropped[0].offset, at as u64);
        assert_eq!(report.dropped[0].len, items[mid].0.len() as u64);
    }
}

/// `put 1`, a stray record of `kind`, `put 2`, and optionally nothing after.
fn log_with_stray(kind: RecordType, stray_last: bool) -> (Vec<u8>, usize, usize) {
    let mut bytes = Vec::new();
    encode_entry(&mut bytes, Op::Put, 1, b"one", b"1").unwrap();
    if stray_last {
        encode_entry(&mut bytes, Op::Put, 2, b"two", b"2").unwrap();
    }
    let at = bytes.len();
    write_record(&mut bytes, kind, b"a fragment of some entry");
    let end = bytes.len();
    if !stray_last {
        encode_entry(&mut bytes, Op::Put, 2, b"two", b"2").unwrap();
    }
    (bytes, at, end)
}

#[test]
fn orphan_middle_or_last_record_is_corruption() {
    for (kind, is_last) in [(RecordType::Middle, false), (RecordType::Last, true)] {
        for stray_last in [false, true] {
            let (bytes, at, end) = log_with_stray(kind, stray_last);
            let store = Store::mem();
            let path = store.dir().join("00000000000000000001.wal");
            store.write(&path, &bytes);
            let ctx = format!("orphan {kind:?}, last in the log: {stray_last}");

            let (got, error, _) = store.read_all(RecoveryMode::TolerateTornTail);
            let found = expect_corruption(error, &path, at);
            assert_eq!(found, CorruptionKind::OrphanFragment { is_last }, "{ctx}");
            assert_eq!(got.len(), if stray_last { 2 } else { 1 }, "{ctx}");

            let (got, error, report) = store.read_all(RecoveryMode::SkipCorrupted);
            assert!(error.is_none(), "{ctx}");
            assert_eq!(
                got,
                [put_entry(1, b"one", b"1"), put_entry(2, b"two", b"2")],
                "{ctx}"
            );
            let ranges: Vec<(u64, u64)> =
                report.dropped.iter().map(|d| (d.offset, d.len)).collect();
            assert_eq!(ranges, [(at as u64, (end - at) as u64)], "{ctx}");
        }
    }
}

#[test]
fn first_record_interrupted_by_a_new_entry_is_corruption() {
    let mut big = Vec::new();
    encode_entry(&mut big, Op::Put, 2, b"big", &letters(50_000, 7)).unwrap();
    let first = records(&big)[0];
    assert_eq!(first.kind, RecordType::First);

    let mut bytes = Vec::new();
    encode_entry(&mut bytes, Op::Put, 1, b"one", b"1").unwrap();
    let at = bytes.len();
    bytes.extend_from_slice(&big[..first.end()]);
    let next = bytes.len();
    encode_entry(&mut bytes, Op::Put, 3, b"three", b"3").unwrap();
    let store = Store::mem();
    let path = store.dir().join("00000000000000000001.wal");
    store.write(&path, &bytes);

    let (got, error, _) = store.read_all(RecoveryMode::TolerateTornTail);
    match error {
        Some(Error::Corruption {
            segment,
            offset,
            kind,
        }) => {
            assert_eq!(segment, path);
            assert!(
                offset == at as u64 || offset == next as u64,
                "offset {offset}"
            );
            assert_eq!(kind, CorruptionKind::InterruptedFragment);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert_eq!(got, [put_entry(1, b"one", b"1")]);

    let (got, error, report) = store.read_all(RecoveryMode::SkipCorrupted);
    assert!(error.is_none());
    assert_eq!(
        got,
        [put_entry(1, b"one", b"1"), put_entry(3, b"three", b"3")]
    );
    let ranges: Vec<(u64, u64)> = report.dropped.iter().map(|d| (d.offset, d.len)).collect();
    assert_eq!(ranges, [(at as u64, (next - at) as u64)]);
}

#[test]
fn damage_in_the_last_record_of_the_last_segment_is_a_torn_tail() {
    let fx = multi_segment_log(Store::mem());
    let seg = fx.segments.len() - 1;
    let item = fx.items[seg].len() - 1;
    let span = fx.span(seg, item);
    fx.damage(seg, |b| flip_bit(b, span.start + 7 + 2, 1));

    let (got, error, report) = fx.store.read_all(RecoveryMode::TolerateTornTail);
    assert!(error.is_none(), "{error:?}");
    assert!(got == fx.before(seg, item));
    let torn = report.torn_tail().expect("torn tail");
    assert_eq!(
        (torn.offset, torn.len),
        (span.start as u64, span.len() as u64)
    );
    assert!(!report.has_corruption());

    let wal = Wal::open(fx.store.dir(), fx.store.options()).unwrap();
    assert_eq!(
        fx.seg_len(seg),
        span.start as u64,
        "the torn record is truncated away"
    );
    assert_eq!(wal.next_seq(), Seq::new(got.last().unwrap().seq.get() + 1));
    wal.close().unwrap();
}

#[test]
fn damage_in_the_middle_of_the_last_segment_is_corruption() {
    let fx = multi_segment_log(Store::mem());
    let seg = fx.segments.len() - 1;
    assert!(fx.items[seg].len() >= 3, "the last segment needs a middle");
    let item = fx.middle_item(seg);
    let span = fx.span(seg, item);
    fx.damage(seg, |b| flip_bit(b, span.end - 1, 7));
    let (got, error, _) = fx.store.read_all(RecoveryMode::TolerateTornTail);
    expect_corruption(error, &fx.segments[seg], span.start);
    assert!(got == fx.before(seg, item));
}

#[test]
fn damage_in_the_last_record_of_an_earlier_segment_is_corruption() {
    let fx = multi_segment_log(Store::mem());
    let seg = 1;
    let item = fx.items[seg].len() - 1;
    let span = fx.span(seg, item);
    fx.damage(seg, |b| flip_bit(b, span.end - 1, 0));

    let (got, error, _) = fx.store.read_all(RecoveryMode::TolerateTornTail);
    expect_corruption(error, &fx.segments[seg], span.start);
    assert!(got == fx.before(seg, item));

    let (got, error, report) = fx.store.read_all(RecoveryMode::PointInTime);
    assert!(error.is_none());
    assert!(got == fx.before(seg, item));
    assert_eq!(report.ignored_segments, fx.segments[seg + 1..].to_vec());

    // A segment cut short before the next one starts is also corruption.
    fx.damage(seg, |b| b.truncate(span.end - 3));
    let (_, error, _) = fx.store.read_all(RecoveryMode::TolerateTornTail);
    expect_corruption(error, &fx.segments[seg], span.start);
}

#[test]
fn skip_corrupted_reports_every_damaged_range_across_segments() {
    let fx = multi_segment_log(Store::mem());
    let damaged = [(0, 1), (1, fx.middle_item(1)), (2, fx.items[2].len() - 1)];
    for &(seg, item) in &damaged {
        let at = fx.span(seg, item).start + 7 + 3;
        fx.damage(seg, |b| flip_bit(b, at, 5));
    }
    let gone: Vec<&Entry> = damaged
        .iter()
        .flat_map(|&(seg, item)| &fx.items[seg][item].1)
        .collect();
    let want: Vec<Entry> = fx
        .all()
        .into_iter()
        .filter(|e| !gone.contains(&e))
        .collect();
    let (got, error, report) = fx.store.read_all(RecoveryMode::SkipCorrupted);
    assert!(error.is_none(), "{error:?}");
    assert!(got == want);
    let ranges: Vec<(PathBuf, u64, u64)> = report
        .dropped
        .iter()
        .map(|d| (d.segment.clone(), d.offset, d.len))
        .collect();
    let expected: Vec<(PathBuf, u64, u64)> = damaged
        .iter()
        .map(|&(seg, item)| {
            let span = fx.span(seg, item);
            (
                fx.segments[seg].clone(),
                span.start as u64,
                span.len() as u64,
            )
        })
        .collect();
    assert_eq!(ranges, expected);
}

#[test]
fn a_reader_of_a_damaged_log_yields_nothing_after_its_error() {
    let (fx, _, _) = flipped_payload_mid_log(Store::mem());
    let mut reader = LogReader::open_with(
        fx.store.storage(),
        fx.store.dir(),
        RecoveryMode::TolerateTornTail,
    )
    .unwrap();
    let error = loop {
        match reader.next_entry() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the damage was not found"),
            Err(e) => break e,
        }
    };
    assert!(error.is_corruption());
    assert!(matches!(reader.next_entry(), Ok(None)));
}

#[test]
fn damaged_log_options_are_validated_before_reading() {
    // A bad option is reported as such, not as the corruption in the log.
    let (fx, _, _) = flipped_payload_mid_log(Store::mem());
    let options = Options::default()
        .storage(fx.store.storage())
        .max_segment_size(0);
    assert!(matches!(
        Wal::open(fx.store.dir(), options),
        Err(Error::InvalidOption(_))
    ));
}

#[test]
fn zeroed_block_mid_log_is_corruption() {
    // A lost block reads back as zeros; with valid records after it, it is
    // not the pre-allocated tail.
    let (store, path, clean, items) = small_log();
    let mid = items.len() / 2;
    let span = items[mid].0.clone();
    let mut bytes = clean.clone();
    zero_range(&mut bytes, span.clone());
    store.write(&path, &bytes);
    let (got, error, _) = store.read_all(RecoveryMode::TolerateTornTail);
    let kind = expect_corruption(error, &path, span.start);
    assert_eq!(kind, CorruptionKind::InvalidRecordType { found: 0 });
    assert!(got == ops_of(&items[..mid]));

    let (got, error, report) = store.read_all(RecoveryMode::SkipCorrupted);
    assert!(error.is_none());
    let mut want = ops_of(&items[..mid]);
    want.extend(ops_of(&items[mid + 1..]));
    assert!(got == want);
    assert_eq!(report.dropped[0].offset, span.start as u64);
    assert_eq!(report.dropped[0].len, span.len() as u64);
}

#[test]
fn valid_record_far_after_the_damage_makes_it_corruption() {
    // The search for a valid record after the damage reads the file in
    // windows; put the next valid record at places around the window edges.
    const WINDOW: usize = 256 * 1024;
    for gap in [
        100_000,
        WINDOW - 30,
        WINDOW - 32_775,
        WINDOW - 32_775 + 1,
        WINDOW + 5,
        2 * WINDOW - 32_775 + 3,
        600_000,
    ] {
        let mut bytes = Vec::new();
        encode_entry(&mut bytes, Op::Put, 1, b"one", b"1").unwrap();
        let at = bytes.len();
        // A header whose checksum cannot match, then filler no header can
        // be read from, then one valid entry.
        bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0x10, 0x00, 1]);
        bytes.extend(letters(gap, 0));
        encode_entry(&mut bytes, Op::Put, 2, b"two", &letters(500, 1)).unwrap();
        let store = Store::mem();
        let path = store.dir().join("00000000000000000001.wal");
        store.write(&path, &bytes);

        let (got, error, report) = store.read_all(RecoveryMode::TolerateTornTail);
        assert!(
            error.as_ref().is_some_and(Error::is_corruption),
            "gap {gap}: {error:?} {report:#?}"
        );
        expect_corruption(error, &path, at);
        assert_eq!(got.len(), 1);

        let (got, error, report) = store.read_all(RecoveryMode::SkipCorrupted);
        assert!(error.is_none());
        assert_eq!(
            got.len(),
            2,
            "gap {gap}: the entry after the damage is found"
        );
        assert_eq!(report.dropped[0].offset, at as u64);
        assert_eq!(report.dropped[0].len, (7 + gap) as u64, "gap {gap}");
    }
}

#[test]
fn point_in_time_open_twice_at_the_same_place_keeps_both_copies() {
    // A bad sector damages whatever is written at the same offset again.
    let (store, path, clean, items) = small_log();
    let mid = items.len() / 2;
    let at = items[mid].0.start;
    let options = || store.options().recovery_mode(RecoveryMode::PointInTime);
    let mut first_aside = None;
    for round in 0..2 {
        let mut bytes = store.read(&path);
        if round == 0 {
            assert!(bytes == clean);
        }
        flip_bit(&mut bytes, at + 7 + 2, 4);
        store.write(&path, &bytes);
        let wal = Wal::open(store.dir(), options())
            .unwrap_or_else(|e| panic!("point-in-time open, round {round}: {e}"));
        assert_eq!(wal.next_seq(), Seq::new(mid as u64 + 1), "round {round}");
        // Rewrite the log after the recovery point, over the bad place.
        for i in mid..items.len() {
            wal.put(&[b'r', round, i as u8], &letters(60, i as u8))
                .unwrap();
        }
        wal.close().unwrap();
        let quarantined: Vec<Vec<u8>> = store
            .files()
            .iter()
            .filter(|n| n.ends_with(".corrupt"))
            .map(|n| store.read(&store.dir().join(n)))
            .collect();
        assert_eq!(
            quarantined.len(),
            round as usize + 1,
            "round {round}: every copy kept"
        );
        match &first_aside {
            None => first_aside = Some(quarantined[0].clone()),
            Some(first) => assert!(quarantined.contains(first), "the first copy was replaced"),
        }
    }
}
