//! A crash can cut the log at any byte. Wherever it is cut, the reader
//! yields exactly the entries that were complete before the cut (a batch
//! whole or not at all), the `Wal` truncates the rest away and continues the
//! sequence, and the continued log is clean under the strictest reading.
//!
//! The every-offset loops run over `MemStorage`; the real file system gets a
//! sample of the same offsets.

use ironwal::format::{encode_entry, encode_header_batch, Op};
use ironwal::{Entry, Error, LogReader, RecoveryMode, Seq, SyncPolicy, Wal, WriteBatch};

use crate::common::{
    append_zeros, entry, letters, put_entry, records, replay_all, test_seed, truncate_at, Rng,
    Store,
};

/// The one segment every log here lives in.
const SEGMENT: &str = "00000000000000000001.wal";

/// A single-segment log and where each of its items ends.
struct Log {
    name: &'static str,
    bytes: Vec<u8>,
    /// End offset of each item and the operations it holds, in order.
    items: Vec<(usize, Vec<Entry>)>,
}

impl Log {
    /// The operations of the items wholly before `cut`, and where the last
    /// of those items ends.
    fn complete_before(&self, cut: usize) -> (Vec<Entry>, usize) {
        let mut entries = Vec::new();
        let mut boundary = 0;
        for (end, ops) in &self.items {
            if *end > cut {
                break;
            }
            entries.extend(ops.iter().cloned());
            boundary = *end;
        }
        (entries, boundary)
    }

    fn all_entries(&self) -> Vec<Entry> {
        self.complete_before(self.bytes.len()).0
    }

    fn boundaries(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(0).chain(self.items.iter().map(|(end, _)| *end))
    }
}

/// A log written by `Wal`: puts, a delete, a merge, a batch and a ~70 KB
/// fragmented entry. Values are letters so that no byte inside a payload
/// can pass for a record header while the reader looks for valid data after
/// a cut.
fn wal_log() -> Log {
    let store = Store::mem();
    let wal = Wal::open(store.dir(), store.options().sync_policy(SyncPolicy::Always)).unwrap();
    let path = wal.segments()[0].path.clone();
    let mut items = Vec::new();
    let mut record = |seq: Seq, ops: Vec<Entry>| {
        assert_eq!(ops[0].seq, seq);
        let len = store.read(&path).len();
        items.push((len, ops));
    };

    let seq = wal.put(b"alpha", b"one").unwrap();
    record(seq, vec![put_entry(seq.get(), b"alpha", b"one")]);
    let value = letters(200, 1);
    let seq = wal.put(b"beta", &value).unwrap();
    record(seq, vec![put_entry(seq.get(), b"beta", &value)]);
    let seq = wal.delete(b"alpha").unwrap();
    record(seq, vec![entry(seq.get(), Op::Delete, b"alpha", None)]);
    let seq = wal.merge(b"counter", b"+1").unwrap();
    record(
        seq,
        vec![entry(seq.get(), Op::Merge, b"counter", Some(b"+1"))],
    );

    let mut batch = WriteBatch::new();
    let big_op = letters(300, 2);
    batch
        .put(b"b1", b"x")
        .delete(b"b2")
        .merge(b"b3", b"y")
        .put(b"b4", &big_op);
    let seq = wal.write_batch(&batch).unwrap();
    record(seq, batch.iter(seq).map(|e| e.to_entry()).collect());

    let value = letters(70_000, 3);
    let seq = wal.put(b"fragmented", &value).unwrap();
    record(seq, vec![put_entry(seq.get(), b"fragmented", &value)]);
    let seq = wal.put(b"", b"").unwrap();
    record(seq, vec![put_entry(seq.get(), b"", b"")]);
    let seq = wal.delete(b"").unwrap();
    record(seq, vec![entry(seq.get(), Op::Delete, b"", None)]);
    let seq = wal.put(b"last", b"entry").unwrap();
    record(seq, vec![put_entry(seq.get(), b"last", b"entry")]);
    wal.close().unwrap();

    let bytes = store.read(&path);
    assert_eq!(items.last().unwrap().0, bytes.len());
    assert!(
        records(&bytes).len() > items.len() + 2,
        "the log must hold a fragmented entry"
    );
    Log {
        name: "written by Wal",
        bytes,
        items,
    }
}

/// Builds a log by hand, item by item, for the header-form batch that only
/// kevo writes.
struct LogBuilder {
    log: Log,
    next_seq: u64,
}

impl LogBuilder {
    fn new(name: &'static str) -> Self {
        LogBuilder {
            log: Log {
                name,
                bytes: Vec::new(),
                items: Vec::new(),
            },
            next_seq: 1,
        }
    }

    fn single(mut self, op: Op, key: &[u8], value: &[u8]) -> Self {
        let seq = self.next_seq;
        self.next_seq += 1;
        encode_entry(&mut self.log.bytes, op, seq, key, value).unwrap();
        let e = entry(seq, op, key, op.has_value().then_some(value));
        self.log.items.push((self.log.bytes.len(), vec![e]));
        self
    }

    fn header_batch(mut self, ops: &[(Op, &[u8], &[u8])]) -> Self {
        let seq = self.next_seq;
        self.next_seq += ops.len() as u64;
        encode_header_batch(&mut self.log.bytes, seq, ops).unwrap();
        let entries = ops
            .iter()
            .enumerate()
            .map(|(i, (op, key, value))| {
                entry(seq + i as u64, *op, key, op.has_value().then_some(*value))
            })
            .collect();
        self.log.items.push((self.log.bytes.len(), entries));
        self
    }

    fn build(self) -> Log {
        self.log
    }
}

fn header_batch_in_the_middle() -> Log {
    LogBuilder::new("header-form batch in the middle")
        .single(Op::Put, b"before", b"the batch")
        .header_batch(&[
            (Op::Put, b"h1", b"one"),
            (Op::Delete, b"h2", b""),
            (Op::Put, b"h3", &letters(120, 4)),
        ])
        .single(Op::Merge, b"after", b"the batch")
        .single(Op::Put, b"end", b"")
        .build()
}

fn header_batch_at_the_end() -> Log {
    let big = letters(33_000, 5);
    LogBuilder::new("header-form batch at the end")
        .single(Op::Put, b"first", b"1")
        .single(Op::Delete, b"second", b"")
        .header_batch(&[
            (Op::Put, b"k1", b"v1"),
            (Op::Put, b"k2", &big),
            (Op::Delete, b"k3", b""),
            (Op::Put, b"k4", b"v4"),
        ])
        .build()
}

fn logs() -> Vec<Log> {
    vec![
        wal_log(),
        header_batch_in_the_middle(),
        header_batch_at_the_end(),
    ]
}

/// Writes `bytes` as the log's only segment in `store`.
fn place(store: &Store, bytes: &[u8]) -> std::path::PathBuf {
    let path = store.dir().join(SEGMENT);
    store.write(&path, bytes);
    path
}

/// Cuts `log` at `cut` in a fresh `store` and checks every promise:
/// (a) the reader yields exactly the complete items, (b) `Wal::open`
/// truncates to them and continues the sequence, (c) the continued log is
/// clean under `Strict`.
fn check_cut(store: &Store, log: &Log, cut: usize) {
    let ctx = |what: &str| format!("{} ({}), cut at {cut}: {what}", log.name, store.name());
    let path = place(store, &log.bytes[..cut]);
    let (want, boundary) = log.complete_before(cut);
    let highest = want.last().map_or(0, |e| e.seq.get());
    let tail = &log.bytes[boundary..cut];
    let zero_tail = tail.iter().all(|&b| b == 0);

    // (a) The reader: the complete items, no error, and a torn tail exactly
    // where the complete items end.
    let (got, error, report) = store.read_all(RecoveryMode::TolerateTornTail);
    assert!(error.is_none(), "{}", ctx(&format!("{error:?}")));
    assert!(
        got == want,
        "{}",
        ctx("entries differ from the complete prefix")
    );
    assert!(!report.has_corruption(), "{}", ctx(&format!("{report:#?}")));
    assert_eq!(
        report.highest_seq,
        want.last().map(|e| e.seq),
        "{}",
        ctx("highest")
    );
    assert_eq!(
        report.segments[0].valid_len,
        boundary as u64,
        "{}",
        ctx("valid_len")
    );
    if zero_tail {
        assert!(report.is_clean(), "{}", ctx(&format!("{report:#?}")));
    } else {
        let torn = report
            .torn_tail()
            .unwrap_or_else(|| panic!("{}", ctx("no torn tail")));
        assert_eq!(torn.offset, boundary as u64, "{}", ctx("torn tail offset"));
        assert_eq!(
            torn.len,
            (cut - boundary) as u64,
            "{}",
            ctx("torn tail length")
        );
        assert_eq!(report.dropped.len(), 1, "{}", ctx("dropped"));
    }

    // (b) Open: the torn bytes are gone and the sequence continues.
    let wal = Wal::open(store.dir(), store.options())
        .unwrap_or_else(|e| panic!("{}", ctx(&format!("open failed: {e}"))));
    assert_eq!(wal.next_seq(), Seq::new(highest + 1), "{}", ctx("next_seq"));
    let len = store.read(&path).len();
    assert!(
        len == boundary || (zero_tail && len == cut),
        "{}",
        ctx(&format!(
            "file is {len} bytes after open, complete items end at {boundary}"
        ))
    );

    // (c) Append, reopen strictly, and find everything in order.
    let seq = wal.put(b"after the cut", b"appended").unwrap();
    assert_eq!(seq, Seq::new(highest + 1), "{}", ctx("appended sequence"));
    wal.close().unwrap();
    assert_eq!(
        store.segments().len(),
        1,
        "{}",
        ctx("a new segment was started")
    );
    let wal = Wal::open(
        store.dir(),
        store.options().recovery_mode(RecoveryMode::Strict),
    )
    .unwrap_or_else(|e| panic!("{}", ctx(&format!("strict reopen failed: {e}"))));
    assert!(
        wal.recovery_report().is_clean(),
        "{}",
        ctx("strict reopen not clean")
    );
    assert_eq!(
        wal.next_seq(),
        Seq::new(highest + 2),
        "{}",
        ctx("next_seq after reopen")
    );
    let mut want = want;
    want.push(put_entry(highest + 1, b"after the cut", b"appended"));
    assert!(replay_all(&wal) == want, "{}", ctx("entries after reopen"));
    wal.close().unwrap();
}

#[test]
fn log_cut_at_every_offset_keeps_exactly_the_complete_entries() {
    for log in logs() {
        for cut in 0..=log.bytes.len() {
            check_cut(&Store::mem(), &log, cut);
        }
    }
}

#[test]
fn log_cut_on_the_real_file_system_keeps_exactly_the_complete_entries() {
    let mut rng = Rng::new(test_seed(
        "log_cut_on_the_real_file_system_keeps_exactly_the_complete_entries",
    ));
    for log in logs() {
        let len = log.bytes.len();
        let mut cuts: Vec<usize> = log
            .boundaries()
            .flat_map(|b| [b.saturating_sub(1), b, b + 1, b + 7, b + 8])
            .chain(records(&log.bytes).iter().map(|r| r.end() - 1))
            .chain((0..20).map(|_| rng.range(0..len + 1)))
            .filter(|&cut| cut <= len)
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        for cut in cuts {
            check_cut(&Store::fs(), &log, cut);
        }
    }
}

#[test]
fn truncated_trailing_record_is_a_torn_tail() {
    let log = wal_log();
    let last = log.items[log.items.len() - 2].0;
    let mut bytes = log.bytes.clone();
    truncate_at(&mut bytes, log.bytes.len() - 3);
    let store = Store::mem();
    place(&store, &bytes);
    let (got, error, report) = store.read_all(RecoveryMode::TolerateTornTail);
    assert!(error.is_none(), "{error:?}");
    assert!(got == log.complete_before(last).0);
    let torn = report.torn_tail().expect("torn tail");
    assert_eq!(torn.offset, last as u64);
}

#[test]
fn zero_filled_tail_is_a_clean_end() {
    for store in Store::both() {
        let log = wal_log();
        let mut bytes = log.bytes.clone();
        append_zeros(&mut bytes, 4096);
        place(&store, &bytes);
        for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::Strict] {
            let (got, error, report) = store.read_all(mode);
            assert!(error.is_none(), "{mode}: {error:?}");
            assert!(report.is_clean(), "{mode}: {report:#?}");
            assert!(got == log.all_entries(), "{mode}");
            assert_eq!(report.segments[0].valid_len, log.bytes.len() as u64);
        }

        // The writer continues over the zeros and the log stays clean.
        let wal = Wal::open(store.dir(), store.options()).unwrap();
        assert!(wal.recovery_report().is_clean());
        let highest = log.all_entries().last().unwrap().seq.get();
        assert_eq!(wal.next_seq(), Seq::new(highest + 1));
        wal.put(b"over", b"the zeros").unwrap();
        wal.close().unwrap();
        let (got, error, report) = store.read_all(RecoveryMode::Strict);
        assert!(error.is_none(), "{}: {error:?}", store.name());
        assert!(report.is_clean());
        let mut want = log.all_entries();
        want.push(put_entry(highest + 1, b"over", b"the zeros"));
        assert!(got == want, "{}", store.name());
    }
}

/// The log followed by the first `part` bytes of one more encoded entry
/// (a torn write), then 4096 zero bytes.
fn torn_then_zeros(log: &Log, part: usize) -> Vec<u8> {
    let mut next = Vec::new();
    encode_entry(&mut next, Op::Put, 99, b"torn", &letters(40_000, 6)).unwrap();
    let mut bytes = log.bytes.clone();
    bytes.extend_from_slice(&next[..part]);
    append_zeros(&mut bytes, 4096);
    bytes
}

#[test]
fn torn_record_followed_only_by_zeros_is_a_torn_tail() {
    let log = wal_log();
    // Inside the first header, inside the First record, inside the first
    // Middle record, and a whole First record with nothing after it.
    for part in [3, 20, 7 + 17 + 1000, 7 + 17] {
        let store = Store::mem();
        let path = place(&store, &torn_then_zeros(&log, part));
        let (got, error, report) = store.read_all(RecoveryMode::TolerateTornTail);
        assert!(error.is_none(), "part {part}: {error:?}");
        assert!(got == log.all_entries(), "part {part}");
        assert!(!report.has_corruption(), "part {part}: {report:#?}");
        let torn = report.torn_tail().expect("torn tail");
        assert_eq!(torn.offset, log.bytes.len() as u64, "part {part}");

        let wal = Wal::open(store.dir(), store.options()).unwrap();
        assert_eq!(
            store.read(&path).len(),
            log.bytes.len(),
            "part {part}: truncated"
        );
        assert!(wal.recovery_report().torn_tail().is_some());
        wal.close().unwrap();
    }
}

#[test]
fn incomplete_header_form_batch_followed_by_zeros_is_a_torn_tail() {
    let log = LogBuilder::new("before")
        .single(Op::Put, b"a", b"1")
        .build();
    let mut bytes = log.bytes.clone();
    let start = bytes.len();
    let mut batch = Vec::new();
    encode_header_batch(
        &mut batch,
        2,
        &[
            (Op::Put, b"x", b"1"),
            (Op::Put, b"y", b"2"),
            (Op::Put, b"z", b"3"),
        ],
    )
    .unwrap();
    // The header and two of the three entries made it.
    let cut = records(&batch)[2].end();
    bytes.extend_from_slice(&batch[..cut]);
    append_zeros(&mut bytes, 4096);

    let store = Store::mem();
    let path = place(&store, &bytes);
    let (got, error, report) = store.read_all(RecoveryMode::TolerateTornTail);
    assert!(error.is_none(), "{error:?}");
    assert!(got == log.all_entries(), "no part of the batch is yielded");
    assert_eq!(report.torn_tail().map(|t| t.offset), Some(start as u64));
    let wal = Wal::open(store.dir(), store.options()).unwrap();
    assert_eq!(wal.next_seq(), Seq::new(2));
    assert_eq!(store.read(&path).len(), start);
    wal.close().unwrap();
}

#[test]
fn strict_mode_rejects_a_torn_tail() {
    let log = wal_log();
    for cut in [
        log.bytes.len() - 1,
        log.items[5].0 - 40_000,
        log.items[2].0 + 3,
    ] {
        let store = Store::mem();
        let path = place(&store, &log.bytes[..cut]);
        let (_, boundary) = log.complete_before(cut);
        let (got, error, _) = store.read_all(RecoveryMode::Strict);
        match error {
            Some(Error::Corruption {
                segment, offset, ..
            }) => {
                assert_eq!(segment, path);
                assert!(
                    (boundary as u64..cut as u64).contains(&offset),
                    "cut {cut}: offset {offset} outside the torn tail {boundary}..{cut}"
                );
            }
            other => panic!("cut {cut}: expected corruption, got {other:?}"),
        }
        assert!(got == log.complete_before(cut).0);

        // A strict open refuses, and leaves the bytes alone.
        let err = Wal::open(
            store.dir(),
            store.options().recovery_mode(RecoveryMode::Strict),
        )
        .unwrap_err();
        assert!(err.is_corruption(), "cut {cut}: {err}");
        assert!(store.read(&path) == log.bytes[..cut]);
    }
}

#[test]
fn strict_mode_accepts_a_zero_tail() {
    let log = header_batch_at_the_end();
    let mut bytes = log.bytes.clone();
    append_zeros(&mut bytes, 4096);
    let store = Store::mem();
    place(&store, &bytes);
    let wal = Wal::open(
        store.dir(),
        store.options().recovery_mode(RecoveryMode::Strict),
    )
    .unwrap();
    assert!(wal.recovery_report().is_clean());
    assert!(replay_all(&wal) == log.all_entries());
    wal.close().unwrap();
}

#[test]
fn torn_tail_is_reported_by_a_reader_of_the_single_file() {
    // A reader given the segment file rather than the directory judges it
    // the same way, and never writes.
    let log = wal_log();
    let cut = log.items[5].0 - 1;
    let store = Store::mem();
    let path = place(&store, &log.bytes[..cut]);
    let mut reader =
        LogReader::open_with(store.storage(), &path, RecoveryMode::TolerateTornTail).unwrap();
    let mut n = 0;
    while reader.next_entry().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, log.complete_before(cut).0.len());
    assert!(reader.report().torn_tail().is_some());
    assert_eq!(store.read(&path).len(), cut, "a reader never truncates");
}

#[test]
fn torn_tail_in_the_last_of_several_segments_keeps_the_earlier_ones() {
    let store = Store::mem();
    let options = store
        .options()
        .max_segment_size(1024)
        .sync_policy(SyncPolicy::Never);
    let wal = Wal::open(store.dir(), options.clone()).unwrap();
    let mut all = Vec::new();
    for i in 0..40u8 {
        let value = letters(50 + usize::from(i), i);
        let seq = wal.put(&[b'k', i], &value).unwrap();
        all.push(put_entry(seq.get(), &[b'k', i], &value));
    }
    wal.close().unwrap();
    let segments = store.segments();
    assert!(segments.len() >= 3);
    let last = segments.last().unwrap().clone();
    let bytes = store.read(&last);
    let ends: Vec<usize> = crate::common::item_spans(&bytes)
        .iter()
        .map(|s| s.end)
        .collect();
    let in_last = ends.len();
    let earlier = &all[..all.len() - in_last];

    for cut in 0..=bytes.len() {
        let copy = Store::mem();
        for path in &segments {
            copy.write(path, &store.read(path));
        }
        copy.write(&last, &bytes[..cut]);
        let complete = ends.iter().filter(|&&end| end <= cut).count();
        let mut want = earlier.to_vec();
        want.extend_from_slice(&all[earlier.len()..earlier.len() + complete]);

        let (got, error, report) = copy.read_all(RecoveryMode::TolerateTornTail);
        assert!(error.is_none(), "cut {cut}: {error:?}");
        assert!(got == want, "cut {cut}");
        assert!(!report.has_corruption(), "cut {cut}");
        let wal = Wal::open(copy.dir(), copy.options().max_segment_size(1024)).unwrap();
        assert_eq!(wal.next_seq(), Seq::new(want.len() as u64 + 1), "cut {cut}");
        wal.put(b"new", b"entry").unwrap();
        wal.close().unwrap();
        let (got, error, _) = copy.read_all(RecoveryMode::Strict);
        assert!(error.is_none(), "cut {cut}: {error:?}");
        assert_eq!(got.len(), want.len() + 1, "cut {cut}");
    }
}
