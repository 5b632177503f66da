//! Garbage: nothing read from disk may panic or size an allocation, in any
//! recovery mode, through the reader or through `Wal::open`.

use ironwal::format::record::write_record;
use ironwal::format::{decode_entry, encode_entry, Op, RecordType};
use ironwal::{CorruptionKind, RecoveryMode, Wal};

use crate::common::{read_all_in, test_seed, Rng, Store};
use crate::corruption::expect_corruption;

/// Reads `bytes` as a one-segment log under every mode, as a file and as a
/// directory, and opens a `Wal` on it; each must return, with entries or a
/// typed error.
fn read_garbage(bytes: &[u8]) {
    for mode in RecoveryMode::ALL {
        let store = Store::mem();
        let path = store.dir().join("00000000000000000001.wal");
        store.write(&path, bytes);
        let (_, error, report) = read_all_in(store.storage(), &path, mode);
        if let Some(error) = error {
            assert!(error.is_corruption(), "{mode}: {error}");
        }
        assert!(report.segments[0].valid_len <= bytes.len() as u64);
        let _ = store.read_all(mode);
        match Wal::open(store.dir(), store.options().recovery_mode(mode)) {
            Ok(wal) => {
                // Whatever was recovered, the log is writable and then clean.
                wal.put(b"k", b"v").unwrap();
                wal.close().unwrap();
            }
            Err(error) => assert!(error.is_corruption(), "{mode}: {error}"),
        }
    }
}

#[test]
fn random_files_never_panic() {
    let mut rng = Rng::new(test_seed("random_files_never_panic"));
    for len in [
        0, 1, 6, 7, 8, 12, 13, 14, 20, 100, 1000, 4096, 32_775, 40_000, 70_000,
    ] {
        read_garbage(&rng.bytes(len));
    }
    // Garbage that passes the header checks: types 1–4, small lengths.
    for _ in 0..20 {
        let mut bytes = Vec::new();
        for _ in 0..rng.range(1..30) {
            let mut header = rng.bytes(7);
            header[6] = rng.range(1..5) as u8;
            let len = rng.range(1..300);
            header[4..6].copy_from_slice(&(len as u16).to_le_bytes());
            bytes.extend_from_slice(&header);
            bytes.extend(rng.bytes(len));
        }
        read_garbage(&bytes);
    }
}

/// A Full record whose (checksum-valid) entry bytes are `entry`.
fn full_record(entry: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_record(&mut out, RecordType::Full, entry);
    out
}

#[test]
fn huge_length_fields_are_typed_errors() {
    let mut key_overrun = vec![1u8];
    key_overrun.extend_from_slice(&5u64.to_le_bytes());
    key_overrun.extend_from_slice(&u32::MAX.to_le_bytes());
    key_overrun.extend_from_slice(b"short key");

    let mut value_overrun = vec![1u8];
    value_overrun.extend_from_slice(&5u64.to_le_bytes());
    value_overrun.extend_from_slice(&1u32.to_le_bytes());
    value_overrun.push(b'k');
    value_overrun.extend_from_slice(&u32::MAX.to_le_bytes());
    value_overrun.extend_from_slice(b"short value");

    // A single-record batch claiming four billion operations.
    let mut batch_count = vec![4u8];
    batch_count.extend_from_slice(&5u64.to_le_bytes());
    batch_count.extend_from_slice(&12u32.to_le_bytes());
    batch_count.extend_from_slice(&u32::MAX.to_le_bytes());
    batch_count.extend_from_slice(&5u64.to_le_bytes());
    batch_count.extend_from_slice(&0u32.to_le_bytes());

    for entry_bytes in [&key_overrun, &value_overrun, &batch_count] {
        assert!(decode_entry(entry_bytes).is_err());
        let mut bytes = Vec::new();
        encode_entry(&mut bytes, Op::Put, 1, b"ok", b"before").unwrap();
        let at = bytes.len();
        bytes.extend(full_record(entry_bytes));
        encode_entry(&mut bytes, Op::Put, 9, b"ok", b"after").unwrap();
        let store = Store::mem();
        let path = store.dir().join("00000000000000000001.wal");
        store.write(&path, &bytes);
        let (got, error, _) = store.read_all(RecoveryMode::TolerateTornTail);
        let kind = expect_corruption(error, &path, at);
        assert!(
            matches!(kind, CorruptionKind::MalformedEntry(_)),
            "{kind:?}"
        );
        assert_eq!(got.len(), 1);
        read_garbage(&bytes);
    }

    // A header-form batch of u32::MAX entries, cut short by the end of the
    // log: a torn write, held in memory only as far as it got.
    let mut bytes = Vec::new();
    encode_entry(&mut bytes, Op::Put, 1, b"ok", b"before").unwrap();
    let at = bytes.len();
    let mut header = vec![4u8];
    header.extend_from_slice(&2u64.to_le_bytes());
    header.extend_from_slice(&u32::MAX.to_le_bytes());
    bytes.extend(full_record(&header));
    encode_entry(&mut bytes, Op::Put, 2, b"in", b"batch").unwrap();
    let store = Store::mem();
    let path = store.dir().join("00000000000000000001.wal");
    store.write(&path, &bytes);
    let (got, error, report) = store.read_all(RecoveryMode::TolerateTornTail);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(got.len(), 1);
    assert_eq!(report.torn_tail().map(|t| t.offset), Some(at as u64));
    read_garbage(&bytes);

    // A header claiming the largest payload, with a few bytes after it.
    let mut bytes = Vec::new();
    encode_entry(&mut bytes, Op::Put, 1, b"ok", b"before").unwrap();
    bytes.extend_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd, 0xff, 0xff, 1, 1, 2, 3]);
    read_garbage(&bytes);
    // And one claiming exactly 32768 bytes, with none after it.
    bytes.truncate(bytes.len() - 3);
    let len = bytes.len();
    bytes[len - 3..].copy_from_slice(&[0x00, 0x80, 1]);
    read_garbage(&bytes);
}
