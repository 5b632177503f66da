//! Where kevo cuts an entry into records, proved two ways: the exact record
//! layout `encode_entry` produces, and a round trip of the same entries
//! through a `Wal` and a `LogReader`.
//!
//! kevo's rule (DESIGN.md §1): an entry of at most 32768 bytes is one Full
//! record; a larger one starts with a First record of 13 + min(key, 32755)
//! bytes, and the rest is cut into 32768-byte Middle records and a non-empty
//! Last record.

use ironwal::format::entry::{encoded_len, entry_len};
use ironwal::format::{decode_entry, encode_entry, EntryView, Op, OpView, RecordType};
use ironwal::{Entry, RecoveryMode, Seq, SyncPolicy, Wal, WriteBatch};

use crate::common::{
    entry, item_spans, kevo_layout, layout, payloads, read_all_in, replay_all, Store,
};

use RecordType::{First, Full, Last, Middle};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// One operation and the records kevo cuts it into, worked out by hand.
struct Case {
    name: &'static str,
    op: Op,
    key: Vec<u8>,
    value: Vec<u8>,
    records: Vec<(RecordType, usize)>,
}

impl Case {
    fn new(
        name: &'static str,
        op: Op,
        key_len: usize,
        value_len: usize,
        records: Vec<(RecordType, usize)>,
    ) -> Case {
        Case {
            name,
            op,
            key: pattern(key_len, 1),
            value: pattern(value_len, 2),
            records,
        }
    }

    fn value(&self) -> Option<&[u8]> {
        self.op.has_value().then_some(&self.value[..])
    }

    fn entry_len(&self) -> usize {
        entry_len(self.op, self.key.len(), self.value.len()) as usize
    }

    fn as_entry(&self, seq: u64) -> Entry {
        entry(seq, self.op, &self.key, self.value())
    }
}

/// Bytes that differ from position to position, so a fragment put back in
/// the wrong place shows up.
fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add((i >> 8) as u8) ^ salt)
        .collect()
}

/// The entry bytes of DESIGN.md §1, spelled out field by field.
fn entry_bytes(op: Op, seq: u64, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![op.to_byte()];
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    if op.has_value() {
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
    out
}

/// Entry bytes = 13 + key + 4 + value for Put and Merge, 13 + key for Delete.
fn cases() -> Vec<Case> {
    vec![
        Case::new("put of 32767 bytes", Op::Put, 1, 32749, vec![(Full, 32767)]),
        Case::new("put of 32768 bytes", Op::Put, 1, 32750, vec![(Full, 32768)]),
        Case::new(
            "put of 32769 bytes",
            Op::Put,
            1,
            32751,
            vec![(First, 14), (Last, 32755)],
        ),
        Case::new(
            "put of 32768 bytes with an empty key",
            Op::Put,
            0,
            32751,
            vec![(Full, 32768)],
        ),
        Case::new(
            "put of 32769 bytes with an empty key",
            Op::Put,
            0,
            32752,
            vec![(First, 13), (Last, 32756)],
        ),
        Case::new(
            "put of 65536 bytes with a 32755-byte key",
            Op::Put,
            32755,
            65536 - 32772,
            vec![(First, 32768), (Last, 32768)],
        ),
        Case::new(
            "put of 65537 bytes with a 32755-byte key",
            Op::Put,
            32755,
            65537 - 32772,
            vec![(First, 32768), (Middle, 32768), (Last, 1)],
        ),
        Case::new(
            "put of 65636 bytes with a 32755-byte key",
            Op::Put,
            32755,
            65636 - 32772,
            vec![(First, 32768), (Middle, 32768), (Last, 100)],
        ),
        Case::new(
            "put of 65636 bytes with a 1-byte key",
            Op::Put,
            1,
            65636 - 18,
            vec![(First, 14), (Middle, 32768), (Middle, 32768), (Last, 86)],
        ),
        Case::new(
            "merge of 40017 bytes with a 100-byte key",
            Op::Merge,
            100,
            39900,
            vec![(First, 113), (Middle, 32768), (Last, 7136)],
        ),
        Case::new(
            "delete of 32768 bytes",
            Op::Delete,
            32755,
            0,
            vec![(Full, 32768)],
        ),
        Case::new(
            "delete of 32769 bytes",
            Op::Delete,
            32756,
            0,
            vec![(First, 32768), (Last, 1)],
        ),
        Case::new(
            "put with a 40 KiB key",
            Op::Put,
            40 * KIB,
            10,
            vec![(First, 32768), (Last, 40 * KIB - 32755 + 4 + 10)],
        ),
        Case::new(
            "delete with a 40 KiB key",
            Op::Delete,
            40 * KIB,
            0,
            vec![(First, 32768), (Last, 40 * KIB - 32755)],
        ),
        Case::new(
            "merge with a 40 KiB key and a 40 KiB value",
            Op::Merge,
            40 * KIB,
            40 * KIB,
            vec![(First, 32768), (Middle, 32768), (Last, 16401)],
        ),
        Case::new(
            "put with an empty key and value",
            Op::Put,
            0,
            0,
            vec![(Full, 17)],
        ),
        Case::new(
            "merge with an empty key and value",
            Op::Merge,
            0,
            0,
            vec![(Full, 17)],
        ),
        Case::new(
            "delete with an empty key",
            Op::Delete,
            0,
            0,
            vec![(Full, 13)],
        ),
        {
            // 16 + 4 + 1 MiB = 1048596 bytes: First 16, then 1048580 = 32 x 32768 + 4.
            let mut records = vec![(First, 16)];
            records.extend([(Middle, 32768); 32]);
            records.push((Last, 4));
            Case::new("put of a 1 MiB value", Op::Put, 3, MIB, records)
        },
    ]
}

#[test]
fn each_entry_size_is_cut_as_kevo_cuts_it() {
    for case in cases() {
        let mut out = Vec::new();
        encode_entry(&mut out, case.op, 7, &case.key, &case.value).unwrap();
        let got = layout(&out);
        assert_eq!(got, case.records, "{}: record layout", case.name);
        assert_eq!(
            got,
            kevo_layout(case.entry_len(), case.key.len()),
            "{}: the hand-worked layout disagrees with the rule",
            case.name
        );
        assert_eq!(
            out.len() as u64,
            encoded_len(case.entry_len() as u64, case.key.len() as u64),
            "{}: encoded_len",
            case.name
        );
    }
}

#[test]
fn fragments_concatenate_to_the_entry_bytes() {
    for case in cases() {
        let mut out = Vec::new();
        encode_entry(
            &mut out,
            case.op,
            0x0102_0304_0506_0708,
            &case.key,
            &case.value,
        )
        .unwrap();
        let joined = payloads(&out);
        assert!(
            joined == entry_bytes(case.op, 0x0102_0304_0506_0708, &case.key, &case.value),
            "{}: payloads are not the entry bytes",
            case.name
        );
        let view = decode_entry(&joined).unwrap();
        assert_eq!(
            view,
            EntryView::Single(OpView {
                seq: 0x0102_0304_0506_0708,
                op: case.op,
                key: &case.key,
                value: case.value(),
            }),
            "{}",
            case.name
        );
    }
}

#[test]
fn first_record_holds_only_the_prefix_and_key() {
    // The "cut every 32768 bytes" rule and kevo's agree only for keys of at
    // least 32755 bytes; sweep key lengths around that edge and small ones.
    for key_len in [0, 1, 2, 100, 32754, 32755, 32756, 40 * KIB] {
        for value_len in [0, 1, 32751, 32768, 70_000] {
            for op in [Op::Put, Op::Merge, Op::Delete] {
                let key = pattern(key_len, 3);
                let value = pattern(value_len, 4);
                let mut out = Vec::new();
                encode_entry(&mut out, op, 1, &key, &value).unwrap();
                let len = entry_len(op, key_len, value_len) as usize;
                let got = layout(&out);
                assert_eq!(
                    got,
                    kevo_layout(len, key_len),
                    "{op:?} key {key_len} value {value_len}"
                );
                if len > 32768 {
                    assert_eq!(got[0], (First, 13 + key_len.min(32755)));
                }
                assert!(got.last().unwrap().1 > 0, "a Last record is never empty");
                assert!(payloads(&out) == entry_bytes(op, 1, &key, &value));
            }
        }
    }
}

fn write_cases(store: &Store, cases: &[Case]) -> Vec<Entry> {
    let wal = Wal::open(store.dir(), store.options()).unwrap();
    let mut want = Vec::new();
    for case in cases {
        let seq = match case.op {
            Op::Put => wal.put(&case.key, &case.value),
            Op::Delete => wal.delete(&case.key),
            Op::Merge => wal.merge(&case.key, &case.value),
        }
        .unwrap();
        want.push(case.as_entry(seq.get()));
    }
    wal.close().unwrap();
    want
}

#[test]
fn fragmented_entries_round_trip_through_wal_and_reader() {
    let cases = cases();
    for store in Store::both() {
        let want = write_cases(&store, &cases);
        let seqs: Vec<u64> = want.iter().map(|e| e.seq.get()).collect();
        assert_eq!(seqs, (1..=cases.len() as u64).collect::<Vec<_>>());

        for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::Strict] {
            let (got, error, report) = store.read_all(mode);
            assert!(error.is_none(), "{}: {error:?}", store.name());
            assert!(report.is_clean(), "{}: {report:#?}", store.name());
            assert!(got == want, "{}: entries differ", store.name());
        }

        // The file is byte for byte what encode_entry gives for each entry.
        let segments = store.segments();
        assert_eq!(segments.len(), 1);
        let mut encoded = Vec::new();
        for (case, e) in cases.iter().zip(&want) {
            encode_entry(&mut encoded, case.op, e.seq.get(), &case.key, &case.value).unwrap();
        }
        assert!(store.read(&segments[0]) == encoded, "{}", store.name());

        // Reopening continues after the last fragmented entry.
        let wal = Wal::open(store.dir(), store.options()).unwrap();
        assert_eq!(wal.next_seq(), Seq::new(cases.len() as u64 + 1));
        assert!(replay_all(&wal) == want);
        wal.close().unwrap();
    }
}

#[test]
fn fragmented_entries_round_trip_through_small_write_buffers() {
    // A write buffer smaller than one record: entries reach the file in
    // pieces, and must still read back whole.
    let cases = cases();
    let store = Store::mem();
    let wal = Wal::open(
        store.dir(),
        store
            .options()
            .sync_policy(SyncPolicy::Never)
            .write_buffer_size(1000),
    )
    .unwrap();
    let mut want = Vec::new();
    for case in &cases {
        let seq = match case.op {
            Op::Put => wal.put(&case.key, &case.value),
            Op::Delete => wal.delete(&case.key),
            Op::Merge => wal.merge(&case.key, &case.value),
        }
        .unwrap();
        want.push(case.as_entry(seq.get()));
    }
    assert!(replay_all(&wal) == want);
    wal.close().unwrap();
    let (got, error, _) = store.read_all(RecoveryMode::Strict);
    assert!(error.is_none(), "{error:?}");
    assert!(got == want);
}

/// Writes `batch` alone to a fresh log and checks its records and contents.
fn check_batch_round_trip(store: &Store, batch: &WriteBatch) {
    let wal = Wal::open(store.dir(), store.options()).unwrap();
    let before = wal.put(b"before", b"the batch").unwrap();
    let first = wal.write_batch(batch).unwrap();
    assert_eq!(first.get(), before.get() + 1);
    let after = wal.put(b"after", b"the batch").unwrap();
    assert_eq!(after.get(), first.get() + batch.len() as u64);
    wal.close().unwrap();

    let mut want = vec![entry(before.get(), Op::Put, b"before", Some(b"the batch"))];
    want.extend(batch.iter(first).map(|e| e.to_entry()));
    want.push(entry(after.get(), Op::Put, b"after", Some(b"the batch")));
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::Strict] {
        let (got, error, report) = store.read_all(mode);
        assert!(error.is_none(), "{}: {error:?}", store.name());
        assert!(report.is_clean(), "{}: {report:#?}", store.name());
        assert_eq!(report.batches, 1);
        assert_eq!(report.entries, batch.len() as u64 + 2);
        assert!(got == want, "{}: entries differ", store.name());
    }

    // The batch is one logical entry whose key field is the batch body; it
    // is cut by the same rule as any entry.
    let segment = store.read(&store.segments()[0]);
    let records = crate::common::records(&segment);
    let batch_records: Vec<_> = records[1..records.len() - 1].to_vec();
    let start = batch_records[0].offset;
    let end = batch_records.last().unwrap().end();
    let entry_len = batch.encoded_len() as usize;
    let body_len = entry_len - 13 - 4;
    assert_eq!(
        layout(&segment[start..end]),
        kevo_layout(entry_len, body_len),
        "{}: batch record layout",
        store.name()
    );
    let joined = payloads(&segment[start..end]);
    match decode_entry(&joined).unwrap() {
        EntryView::Batch(view) => {
            assert_eq!(view.seq(), first.get());
            assert_eq!(view.count() as usize, batch.len());
            assert!(view
                .iter()
                .map(|op| op.key)
                .eq(batch.iter(first).map(|e| e.key)));
        }
        other => panic!("expected a single-record batch, got {other:?}"),
    }
}

#[test]
fn batch_of_100_one_kib_ops_fragments_and_round_trips() {
    let mut batch = WriteBatch::new();
    for i in 0..100u32 {
        batch.put(format!("key-{i:03}").as_bytes(), &pattern(KIB, i as u8));
    }
    assert!(batch.encoded_len() > 3 * 32768);
    for store in Store::both() {
        check_batch_round_trip(&store, &batch);
    }
}

#[test]
fn batch_with_one_200_kib_op_fragments_and_round_trips() {
    let mut batch = WriteBatch::new();
    batch
        .put(b"small", b"op")
        .put(b"huge", &pattern(200 * KIB, 9))
        .delete(b"gone")
        .merge(b"", b"")
        .delete(b"");
    for store in Store::both() {
        check_batch_round_trip(&store, &batch);
    }
}

#[test]
fn batch_of_exactly_32768_entry_bytes_is_one_full_record() {
    // Entry = 13 + body + 4, body = 12 + one put (1 + 4 + key + 4 + value).
    for (entry_len, want) in [
        (32767, vec![(Full, 32767)]),
        (32768, vec![(Full, 32768)]),
        // The key field (the 32752-byte body) is whole in the First record;
        // only the 4-byte value length is left for the Last.
        (32769, vec![(First, 32765), (Last, 4)]),
    ] {
        let value_len = entry_len - 13 - 4 - 12 - (1 + 4 + 1 + 4);
        let mut batch = WriteBatch::new();
        batch.put(b"k", &pattern(value_len, 5));
        assert_eq!(batch.encoded_len() as usize, entry_len);

        let store = Store::mem();
        let wal = Wal::open(store.dir(), store.options()).unwrap();
        let first = wal.write_batch(&batch).unwrap();
        wal.close().unwrap();
        let segment = store.read(&store.segments()[0]);
        assert_eq!(layout(&segment), want, "batch entry of {entry_len} bytes");
        assert_eq!(want, kevo_layout(entry_len, entry_len - 17));
        let (got, error, _) = store.read_all(RecoveryMode::Strict);
        assert!(error.is_none());
        assert!(got == batch.iter(first).map(|e| e.to_entry()).collect::<Vec<_>>());
    }
}

#[test]
fn fragmented_entries_never_span_two_segments() {
    // With a tiny segment limit every big entry starts a new segment and is
    // whole inside it.
    let cases = cases();
    let store = Store::mem();
    let options = store.options().max_segment_size(4096);
    let wal = Wal::open(store.dir(), options).unwrap();
    let mut want = Vec::new();
    for case in &cases {
        let seq = match case.op {
            Op::Put => wal.put(&case.key, &case.value),
            Op::Delete => wal.delete(&case.key),
            Op::Merge => wal.merge(&case.key, &case.value),
        }
        .unwrap();
        want.push(case.as_entry(seq.get()));
    }
    wal.close().unwrap();
    let segments = store.segments();
    assert!(segments.len() > 10, "{} segments", segments.len());
    for path in &segments {
        // Each segment holds whole entries: read alone, strictly, it is clean.
        let bytes = store.read(path);
        let spans = item_spans(&bytes);
        assert_eq!(spans.first().map(|s| s.start), Some(0));
        assert_eq!(spans.last().map(|s| s.end), Some(bytes.len()));
        let (_, error, report) = read_all_in(store.storage(), path, RecoveryMode::Strict);
        assert!(error.is_none(), "{}: {error:?}", path.display());
        assert!(report.is_clean());
    }
    let (got, error, report) = store.read_all(RecoveryMode::Strict);
    assert!(error.is_none(), "{error:?}");
    assert!(report.is_clean());
    assert!(got == want);
}

fn unhex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

#[test]
fn the_worked_examples_in_docs_format_md_are_what_the_encoder_writes() {
    use ironwal::format::{encode_batch, encode_header_batch};
    let mut put = Vec::new();
    encode_entry(&mut put, Op::Put, 1, b"apple", b"red").unwrap();
    assert_eq!(
        put,
        unhex("d3 91 30 1a 19 00 01 01 01 00 00 00 00 00 00 00 05 00 00 00 61 70 70 6c 65 03 00 00 00 72 65 64")
    );
    let mut delete = Vec::new();
    encode_entry(&mut delete, Op::Delete, 2, b"pear", b"").unwrap();
    assert_eq!(
        delete,
        unhex("42 a9 f7 f9 11 00 01 02 02 00 00 00 00 00 00 00 04 00 00 00 70 65 61 72")
    );
    let mut batch = WriteBatch::new();
    batch.put(b"a", b"1").delete(b"b");
    let ops: Vec<u8> = unhex("01 01 00 00 00 61 01 00 00 00 31 02 01 00 00 00 62");
    let mut single = Vec::new();
    encode_batch(&mut single, 3, 2, &ops).unwrap();
    assert_eq!(
        single,
        unhex(
            "33 ef c0 4d 2e 00 01 04 03 00 00 00 00 00 00 00 1d 00 00 00 02 00 00 00 03 00 00 00 00 00 00 00 \
             01 01 00 00 00 61 01 00 00 00 31 02 01 00 00 00 62 00 00 00 00"
        )
    );
    let mut header = Vec::new();
    encode_header_batch(
        &mut header,
        5,
        &[(Op::Put, b"a", b"1"), (Op::Delete, b"b", b"")],
    )
    .unwrap();
    assert_eq!(
        header[..20],
        unhex("8f 93 67 fd 0d 00 01 04 05 00 00 00 00 00 00 00 02 00 00 00")[..]
    );
    // The fragmentation example: First 14, Middle 32768, Last 7236.
    let mut big = Vec::new();
    encode_entry(&mut big, Op::Put, 1, b"k", &vec![0u8; 40_000]).unwrap();
    let lens: Vec<usize> = crate::common::records(&big).iter().map(|r| r.len).collect();
    assert_eq!(lens, [14, 32768, 7236]);
}
