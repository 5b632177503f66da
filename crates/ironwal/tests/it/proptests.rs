//! Properties over random inputs: whatever is written reads back equal;
//! whatever bytes the reader is given (random, or a valid log with bit
//! flips, cuts and overwrites) it never panics and never yields an entry
//! that was not written.
//!
//! Each property prints its seed; rerun a failure with
//! `IRONWAL_TEST_SEED=<seed> cargo test -p ironwal --test it <name>`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

use ironwal::format::record::write_record;
use ironwal::format::{decode_entry, encode_entry, EntryView, Op, RecordType};
use ironwal::storage::MemStorage;
use ironwal::{Entry, Options, RecoveryMode, Seq, SyncPolicy, Wal, WriteBatch};

use crate::common::{
    append_zeros, entry, flip_bit, overwrite_byte, read_all_in, replay_all, test_seed, truncate_at,
    zero_range, Rng, Store,
};

/// Runs `body` on `cases` values of `strategy`, from a printed seed.
fn check<S: Strategy>(
    test: &str,
    cases: u32,
    strategy: S,
    body: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(test_seed(test)),
        // The printed seed is the way to rerun a failure; nothing is
        // written next to the sources.
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    if let Err(failure) = runner.run(&strategy, body) {
        panic!("{test}: {failure}");
    }
}

// ---------------------------------------------------------------------------
// Inputs.

type OpSpec = (Op, Vec<u8>, Vec<u8>);

#[derive(Clone, Debug)]
enum Item {
    Single(OpSpec),
    Batch(Vec<OpSpec>),
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![Just(Op::Put), Just(Op::Delete), Just(Op::Merge)]
}

/// Mostly short values; now and then one that needs several records.
fn any_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        12 => vec(any::<u8>(), 0..300),
        1 => (30_000usize..70_000, any::<u64>()).prop_map(|(len, seed)| Rng::new(seed).bytes(len)),
    ]
}

fn any_op_spec() -> impl Strategy<Value = OpSpec> {
    (any_op(), vec(any::<u8>(), 0..300), any_value())
}

fn any_item() -> impl Strategy<Value = Item> {
    prop_oneof![
        3 => any_op_spec().prop_map(Item::Single),
        1 => vec(any_op_spec(), 1..20).prop_map(Item::Batch),
    ]
}

/// Appends the items; returns every operation as a reader must yield it.
fn write_items(wal: &Wal, items: &[Item]) -> Vec<Entry> {
    let mut written = Vec::new();
    for item in items {
        match item {
            Item::Single((op, key, value)) => {
                let seq = match op {
                    Op::Put => wal.put(key, value),
                    Op::Delete => wal.delete(key),
                    Op::Merge => wal.merge(key, value),
                }
                .unwrap();
                written.push(entry(seq.get(), *op, key, op.has_value().then_some(value)));
            }
            Item::Batch(ops) => {
                let mut batch = WriteBatch::new();
                for (op, key, value) in ops {
                    batch.push(*op, key, value);
                }
                let seq = wal.write_batch(&batch).unwrap();
                written.extend(batch.iter(seq).map(|e| e.to_entry()));
            }
        }
    }
    written
}

fn log_options(store: &Store, max_segment_size: u64) -> Options {
    store
        .options()
        .sync_policy(SyncPolicy::Never)
        .max_segment_size(max_segment_size)
}

// ---------------------------------------------------------------------------
// Round trip.

#[test]
fn written_entries_read_back_equal() {
    let strategy = (
        vec(any_item(), 1..30),
        prop_oneof![Just(2048u64), Just(64 * 1024), Just(64 * 1024 * 1024)],
    );
    check(
        "written_entries_read_back_equal",
        64,
        strategy,
        |(items, segment_size)| {
            let store = Store::mem();
            let wal = Wal::open(store.dir(), log_options(&store, segment_size)).unwrap();
            let written = write_items(&wal, &items);
            let n = written.len() as u64;
            prop_assert!(written.iter().map(|e| e.seq.get()).eq(1..=n));
            prop_assert!(replay_all(&wal) == written, "replay before close");
            wal.close().unwrap();

            let (got, error, report) = store.read_all(RecoveryMode::Strict);
            prop_assert!(error.is_none(), "{:?}", error);
            prop_assert!(report.is_clean());
            prop_assert_eq!(report.entries, n);
            prop_assert!(got == written, "read back differs");

            let wal = Wal::open(store.dir(), log_options(&store, segment_size)).unwrap();
            prop_assert_eq!(wal.next_seq(), Seq::new(n + 1));
            prop_assert!(replay_all(&wal) == written, "replay after reopen");
            wal.close().unwrap();
            Ok(())
        },
    );
}

#[test]
fn encoded_entries_decode_to_themselves() {
    let strategy = (
        any_op(),
        any::<u64>(),
        vec(any::<u8>(), 0..40_000),
        any_value(),
    );
    check(
        "encoded_entries_decode_to_themselves",
        128,
        strategy,
        |(op, seq, key, value)| {
            let mut out = Vec::new();
            encode_entry(&mut out, op, seq, &key, &value).unwrap();
            let mem = MemStorage::new();
            let path = Path::new("/one.wal");
            mem.write_file(path, &out);
            let (got, error, _) = read_all_in(Arc::new(mem), path, RecoveryMode::Strict);
            prop_assert!(error.is_none(), "{:?}", error);
            prop_assert!(got == [entry(seq, op, &key, op.has_value().then_some(&value[..]))]);
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// Damage.

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(Index, Index, u8),
    Overwrite(Index, Index, u8),
    ZeroRange(Index, Index, usize),
    Truncate(Index, Index),
    AppendZeros(usize),
    AppendGarbage(Vec<u8>),
}

fn any_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), any::<Index>(), 0u8..8).prop_map(|(s, i, b)| Mutation::FlipBit(s, i, b)),
        2 => (any::<Index>(), any::<Index>(), any::<u8>()).prop_map(|(s, i, v)| Mutation::Overwrite(s, i, v)),
        1 => (any::<Index>(), any::<Index>(), 1usize..64).prop_map(|(s, i, n)| Mutation::ZeroRange(s, i, n)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(s, i)| Mutation::Truncate(s, i)),
        1 => (1usize..5000).prop_map(Mutation::AppendZeros),
        1 => vec(any::<u8>(), 1..100).prop_map(Mutation::AppendGarbage),
    ]
}

/// Applies a mutation to one of the segments (the last for appends).
fn apply(store: &Store, segments: &[PathBuf], mutation: &Mutation) {
    let path = match mutation {
        Mutation::FlipBit(s, ..)
        | Mutation::Overwrite(s, ..)
        | Mutation::ZeroRange(s, ..)
        | Mutation::Truncate(s, _) => s.get(segments),
        Mutation::AppendZeros(_) | Mutation::AppendGarbage(_) => segments.last().unwrap(),
    };
    let mut bytes = store.read(path);
    let len = bytes.len();
    match mutation {
        _ if len == 0
            && !matches!(
                mutation,
                Mutation::AppendZeros(_) | Mutation::AppendGarbage(_)
            ) => {}
        Mutation::FlipBit(_, i, bit) => flip_bit(&mut bytes, i.index(len), *bit),
        Mutation::Overwrite(_, i, v) => overwrite_byte(&mut bytes, i.index(len), *v),
        Mutation::ZeroRange(_, i, n) => {
            let at = i.index(len);
            zero_range(&mut bytes, at..(at + n).min(len));
        }
        Mutation::Truncate(_, i) => truncate_at(&mut bytes, i.index(len + 1)),
        Mutation::AppendZeros(n) => append_zeros(&mut bytes, *n),
        Mutation::AppendGarbage(garbage) => bytes.extend_from_slice(garbage),
    }
    store.write(path, &bytes);
}

/// Every yielded entry was written, with the same bytes, in log order.
fn only_written(
    got: &[Entry],
    written: &HashMap<Seq, Entry>,
    mode: RecoveryMode,
) -> Result<(), TestCaseError> {
    for e in got {
        prop_assert!(
            written.get(&e.seq) == Some(e),
            "{}: yielded an entry that was never written (seq {})",
            mode,
            e.seq
        );
    }
    prop_assert!(
        got.windows(2).all(|w| w[0].seq < w[1].seq),
        "{}: out of order",
        mode
    );
    Ok(())
}

#[test]
fn damaged_logs_never_panic_and_never_yield_a_wrong_entry() {
    let strategy = (
        vec(any_item(), 1..12),
        prop_oneof![Just(1024u64), Just(64 * 1024 * 1024)],
        vec(any_mutation(), 1..4),
    );
    check(
        "damaged_logs_never_panic_and_never_yield_a_wrong_entry",
        256,
        strategy,
        |(items, segment_size, mutations)| {
            let store = Store::mem();
            let dir = store.dir();
            let wal = Wal::open(&dir, log_options(&store, segment_size)).unwrap();
            let written_list = write_items(&wal, &items);
            wal.close().unwrap();
            let written: HashMap<Seq, Entry> =
                written_list.iter().map(|e| (e.seq, e.clone())).collect();
            let segments = store.segments();
            for mutation in &mutations {
                apply(&store, &segments, mutation);
            }
            let single = segments.len() == 1;
            let damaged: Vec<(PathBuf, Vec<u8>)> = segments
                .iter()
                .map(|p| (p.clone(), store.read(p)))
                .collect();

            for mode in RecoveryMode::ALL {
                // Each mode starts from the same damaged bytes.
                let store = Store::mem();
                for (path, bytes) in &damaged {
                    store.write(path, bytes);
                }
                let (got, error, read_report) = store.read_all(mode);
                if let Some(error) = &error {
                    prop_assert!(error.is_corruption(), "{}: {}", mode, error);
                    prop_assert!(
                        matches!(mode, RecoveryMode::TolerateTornTail | RecoveryMode::Strict),
                        "{}: returned an error: {}",
                        mode,
                        error
                    );
                }
                only_written(&got, &written, mode)?;
                if single && mode != RecoveryMode::SkipCorrupted {
                    prop_assert!(
                        written_list.starts_with(&got),
                        "{}: not a prefix of the log",
                        mode
                    );
                }

                // Opening agrees with reading; what it opens, it continues
                // into a log that reads back whole.
                let options = log_options(&store, segment_size).recovery_mode(mode);
                match Wal::open(&dir, options) {
                    Err(e) => {
                        prop_assert!(e.is_corruption(), "{}: open failed: {}", mode, e);
                        prop_assert!(error.is_some(), "{}: open refused a readable log", mode);
                    }
                    Ok(wal) => {
                        prop_assert!(error.is_none(), "{}: open accepted {:?}", mode, error);
                        let next = wal.next_seq();
                        // Under SkipCorrupted the damaged bytes stay: the log
                        // continues above every sequence they still name.
                        let mut last = got.last().map(|e| e.seq);
                        if mode == RecoveryMode::SkipCorrupted {
                            last = last.max(read_report.claimed_seq);
                        }
                        prop_assert_eq!(
                            next.get(),
                            last.map_or(0, Seq::get) + 1,
                            "{}: next_seq",
                            mode
                        );
                        wal.put(b"after", b"damage").unwrap();
                        wal.close().unwrap();
                        if mode != RecoveryMode::SkipCorrupted {
                            let (again, error, report) = store.read_all(RecoveryMode::Strict);
                            prop_assert!(
                                error.is_none(),
                                "{}: the continued log is not clean: {:?}",
                                mode,
                                error
                            );
                            prop_assert!(report.is_clean(), "{}: {:?}", mode, report);
                            let mut want = got.clone();
                            want.push(entry(next.get(), Op::Put, b"after", Some(b"damage")));
                            prop_assert!(again == want, "{}: continued log differs", mode);
                        }
                    }
                }
            }
            Ok(())
        },
    );
}

#[test]
fn random_bytes_never_panic_the_reader() {
    check(
        "random_bytes_never_panic_the_reader",
        512,
        vec(any::<u8>(), 0..4000),
        |bytes| {
            read_every_mode(&bytes)?;
            Ok(())
        },
    );
}

/// Records with valid checksums but random types and payloads: past the
/// checksum, into fragment assembly and entry decoding.
#[test]
fn random_valid_records_never_panic_the_reader() {
    let record = (
        1u8..=4,
        prop_oneof![
            vec(any::<u8>(), 1..200),
            (1u8..=4, any::<u64>(), vec(any::<u8>(), 0..60)).prop_map(|(op, seq, rest)| {
                let mut p = vec![op];
                p.extend_from_slice(&seq.to_le_bytes());
                p.extend_from_slice(&((rest.len() as u32) / 2).to_le_bytes());
                p.extend(rest);
                p
            }),
        ],
    );
    check(
        "random_valid_records_never_panic_the_reader",
        512,
        vec(record, 0..30),
        |records| {
            let mut bytes = Vec::new();
            for (kind, payload) in &records {
                write_record(&mut bytes, RecordType::from_byte(*kind).unwrap(), payload);
            }
            read_every_mode(&bytes)?;
            Ok(())
        },
    );
}

/// Reads `bytes` as a one-segment log under every mode; only typed errors.
fn read_every_mode(bytes: &[u8]) -> Result<(), TestCaseError> {
    let mem = MemStorage::new();
    let path = Path::new("/log/00000000000000000001.wal");
    mem.write_file(path, bytes);
    for mode in RecoveryMode::ALL {
        let (_, error, report) = read_all_in(Arc::new(mem.clone()), path.parent().unwrap(), mode);
        if let Some(error) = error {
            prop_assert!(error.is_corruption(), "{}: {}", mode, error);
        }
        prop_assert!(report.segments[0].valid_len <= bytes.len() as u64);
    }
    Ok(())
}

#[test]
fn decode_entry_never_panics() {
    let structured = (0u8..7, any::<u64>(), any::<u32>(), vec(any::<u8>(), 0..200)).prop_map(
        |(op, seq, key_len, rest)| {
            let mut b = vec![op];
            b.extend_from_slice(&seq.to_le_bytes());
            // Half the time a key length that fits the bytes that follow.
            let key_len = if key_len % 2 == 0 {
                key_len % (rest.len() as u32 + 1)
            } else {
                key_len
            };
            b.extend_from_slice(&key_len.to_le_bytes());
            b.extend(rest);
            b
        },
    );
    let input = prop_oneof![vec(any::<u8>(), 0..300), structured];
    check("decode_entry_never_panics", 2048, input, |bytes| {
        match decode_entry(&bytes) {
            Err(_) => {}
            Ok(EntryView::BatchHeader { .. }) => prop_assert_eq!(bytes.len(), 13),
            // Decoding is exact: a single entry encodes back to its bytes.
            Ok(EntryView::Single(op)) => {
                let mut again = Vec::new();
                encode_entry(
                    &mut again,
                    op.op,
                    op.seq,
                    op.key,
                    op.value.unwrap_or_default(),
                )
                .unwrap();
                prop_assert!(again.len() > 7);
                prop_assert!(
                    crate::common::payloads(&again) == bytes,
                    "decoded entry does not encode back to its bytes"
                );
            }
            Ok(EntryView::Batch(view)) => {
                prop_assert!(view.iter().count() == view.count() as usize);
            }
        }
        Ok(())
    });
}
