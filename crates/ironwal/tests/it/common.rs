//! Helpers shared by the test modules.

#![allow(dead_code)]

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ironwal::format::record::checksum;
use ironwal::format::{decode_entry, EntryView, RawHeader, RecordType, HEADER_SIZE, MAX_PAYLOAD};
use ironwal::storage::{FsStorage, MemStorage, Storage};
pub use ironwal_testkit::{compat_dir, replay_all, test_seed, Rng};

use ironwal::{Entry, LogReader, Op, Options, RecoveryMode, RecoveryReport, SegmentId, Seq};

/// An operation as a manifest (and `ironwal dump --json`) spells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub seq: u64,
    pub op: Op,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

impl From<&Entry> for Expected {
    fn from(e: &Entry) -> Self {
        Expected {
            seq: e.seq.get(),
            op: e.op,
            key: e.key.clone(),
            value: e.value.clone(),
        }
    }
}

pub fn parse_op(name: &str) -> Op {
    match name {
        "put" => Op::Put,
        "delete" => Op::Delete,
        "merge" => Op::Merge,
        other => panic!("unknown op {other:?} in manifest"),
    }
}

/// Reads a whole log (directory or file), returning what it yielded before
/// any error, the error, and the report.
pub fn read_all(
    path: &Path,
    mode: RecoveryMode,
) -> (Vec<Entry>, Option<ironwal::Error>, RecoveryReport) {
    read_from(path, mode, Seq::ZERO)
}

pub fn read_from(
    path: &Path,
    mode: RecoveryMode,
    from: Seq,
) -> (Vec<Entry>, Option<ironwal::Error>, RecoveryReport) {
    let mut reader = LogReader::open(path, mode)
        .expect("open reader")
        .from_seq(from);
    let mut entries = Vec::new();
    loop {
        match reader.next_entry() {
            Ok(Some(e)) => entries.push(e.to_entry()),
            Ok(None) => return (entries, None, reader.report().clone()),
            Err(e) => return (entries, Some(e), reader.report().clone()),
        }
    }
}

/// Copies a directory's files (not recursive) into a new temporary directory.
/// A log in `dir` with 4 KiB segments (no preallocation, syncs only when
/// asked), filled with 300-byte values until it has `segments` segments.
pub fn small_segments(dir: &Path, segments: usize) -> ironwal::Wal {
    let options = ironwal::Options::default()
        .preallocate(false)
        .max_segment_size(4096)
        .sync_policy(ironwal::SyncPolicy::Never);
    let wal = ironwal::Wal::open(dir, options).unwrap();
    while wal.segments().len() < segments {
        let n = wal.next_seq().get();
        wal.put(&n.to_be_bytes(), &[(n % 251) as u8; 300]).unwrap();
    }
    wal
}

pub fn copy_dir(from: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            let to = dir.path().join(entry.file_name());
            std::fs::copy(entry.path(), &to).unwrap();
            let mut perms = std::fs::metadata(&to).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            std::fs::set_permissions(&to, perms).unwrap();
        }
    }
    dir
}

// ---------------------------------------------------------------------------
// Entries as the tests spell them.

/// An operation as a reader yields it.
pub fn entry(seq: u64, op: Op, key: &[u8], value: Option<&[u8]>) -> Entry {
    Entry {
        seq: Seq::new(seq),
        op,
        key: key.to_vec(),
        value: value.map(<[u8]>::to_vec),
    }
}

/// A Put as a reader yields it.
pub fn put_entry(seq: u64, key: &[u8], value: &[u8]) -> Entry {
    entry(seq, Op::Put, key, Some(value))
}

/// `len` bytes that spell no record header: every byte is a lower-case
/// letter, so no offset inside them has a record type of 1–4 at byte 6.
/// Used where a test's expectations must not depend on the reader finding
/// a record inside a payload while it resynchronises.
pub fn letters(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| b'a' + ((i + usize::from(salt)) % 26) as u8)
        .collect()
}

// ---------------------------------------------------------------------------
// Reading through any storage.

/// [`read_from`] through `storage` (a [`MemStorage`] or the real one).
pub fn read_all_in(
    storage: Arc<dyn Storage>,
    path: &Path,
    mode: RecoveryMode,
) -> (Vec<Entry>, Option<ironwal::Error>, RecoveryReport) {
    let mut reader = LogReader::open_with(storage, path, mode).expect("open reader");
    let mut entries = Vec::new();
    loop {
        match reader.next_entry() {
            Ok(Some(e)) => entries.push(e.to_entry()),
            Ok(None) => return (entries, None, reader.report().clone()),
            Err(e) => return (entries, Some(e), reader.report().clone()),
        }
    }
}

/// A log directory on one of the two storages, so a scenario can run over
/// the real file system and the in-memory one with the same body.
pub enum Store {
    /// An in-memory file system; the log lives in `/log`.
    Mem(MemStorage),
    /// A temporary directory on the real file system.
    Fs(tempfile::TempDir),
}

impl Store {
    pub fn mem() -> Store {
        Store::Mem(MemStorage::new())
    }

    pub fn fs() -> Store {
        Store::Fs(tempfile::tempdir().expect("temp dir"))
    }

    /// One of each, for scenarios that must behave the same on both.
    pub fn both() -> [Store; 2] {
        [Store::mem(), Store::fs()]
    }

    pub fn name(&self) -> &'static str {
        match self {
            Store::Mem(_) => "memory",
            Store::Fs(_) => "file system",
        }
    }

    pub fn dir(&self) -> PathBuf {
        match self {
            Store::Mem(_) => PathBuf::from("/log"),
            Store::Fs(tmp) => tmp.path().join("log"),
        }
    }

    pub fn storage(&self) -> Arc<dyn Storage> {
        match self {
            Store::Mem(mem) => Arc::new(mem.clone()),
            Store::Fs(_) => Arc::new(FsStorage),
        }
    }

    /// Default options on this storage.
    /// Default options on this store, without segment preallocation, so
    /// that file lengths are the bytes written (the `prealloc` module tests
    /// preallocation itself).
    pub fn options(&self) -> Options {
        Options::default()
            .storage(self.storage())
            .preallocate(false)
    }

    pub fn read(&self, path: &Path) -> Vec<u8> {
        match self {
            Store::Mem(mem) => mem
                .read_file(path)
                .unwrap_or_else(|| panic!("{} missing", path.display())),
            Store::Fs(_) => std::fs::read(path).expect("read file"),
        }
    }

    pub fn write(&self, path: &Path, bytes: &[u8]) {
        match self {
            Store::Mem(mem) => mem.write_file(path, bytes),
            Store::Fs(_) => {
                std::fs::create_dir_all(path.parent().expect("parent")).expect("create dir");
                std::fs::write(path, bytes).expect("write file");
            }
        }
    }

    /// Names of the files in the log directory, sorted.
    pub fn files(&self) -> Vec<String> {
        let mut names = self.storage().list(&self.dir()).expect("list");
        names.retain(|n| n != "LOCK");
        names.sort();
        names
    }

    /// Paths of the segment files of the log directory, in log order.
    pub fn segments(&self) -> Vec<PathBuf> {
        self.files()
            .into_iter()
            .filter(|n| SegmentId::parse(n).is_some())
            .map(|n| self.dir().join(n))
            .collect()
    }

    pub fn read_all(
        &self,
        mode: RecoveryMode,
    ) -> (Vec<Entry>, Option<ironwal::Error>, RecoveryReport) {
        read_all_in(self.storage(), &self.dir(), mode)
    }
}

// ---------------------------------------------------------------------------
// Damage, named after what it does.

/// Inverts one bit of one byte.
pub fn flip_bit(bytes: &mut [u8], offset: usize, bit: u8) {
    bytes[offset] ^= 1 << bit;
}

/// Cuts the bytes short, as a crash in the middle of a write does.
pub fn truncate_at(bytes: &mut Vec<u8>, len: usize) {
    bytes.truncate(len);
}

/// Sets a range of bytes to zero.
pub fn zero_range(bytes: &mut [u8], range: Range<usize>) {
    bytes[range].fill(0);
}

/// Replaces one byte.
pub fn overwrite_byte(bytes: &mut [u8], offset: usize, value: u8) {
    bytes[offset] = value;
}

/// Adds zero bytes at the end, as pre-allocated space looks.
pub fn append_zeros(bytes: &mut Vec<u8>, n: usize) {
    bytes.resize(bytes.len() + n, 0);
}

/// Applies `damage` to a file on the real file system.
pub fn damage_file(path: &Path, damage: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).expect("read file to damage");
    damage(&mut bytes);
    std::fs::write(path, &bytes).expect("write damaged file");
}

// ---------------------------------------------------------------------------
// Record layout of well-formed logs.

/// One physical record of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// Offset of its header.
    pub offset: usize,
    pub kind: RecordType,
    /// Payload bytes.
    pub len: usize,
}

impl RecordInfo {
    /// Offset of the payload.
    pub fn payload(&self) -> usize {
        self.offset + HEADER_SIZE
    }

    /// Offset just past the record.
    pub fn end(&self) -> usize {
        self.payload() + self.len
    }
}

/// The records of a well-formed segment (one this test wrote); panics on
/// anything else, checksums included.
pub fn records(bytes: &[u8]) -> Vec<RecordInfo> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let header = RawHeader::parse(bytes[at..at + HEADER_SIZE].try_into().unwrap());
        let kind = header.validate().expect("well-formed header");
        let len = usize::from(header.len);
        let payload = &bytes[at + HEADER_SIZE..at + HEADER_SIZE + len];
        assert_eq!(checksum(payload), header.checksum, "checksum at {at}");
        out.push(RecordInfo {
            offset: at,
            kind,
            len,
        });
        at += HEADER_SIZE + len;
    }
    out
}

/// The (type, payload length) sequence of a well-formed segment.
pub fn layout(bytes: &[u8]) -> Vec<(RecordType, usize)> {
    records(bytes).iter().map(|r| (r.kind, r.len)).collect()
}

/// The payloads of a well-formed segment's records, concatenated.
pub fn payloads(bytes: &[u8]) -> Vec<u8> {
    records(bytes)
        .iter()
        .flat_map(|r| &bytes[r.payload()..r.end()])
        .copied()
        .collect()
}

/// kevo's cut rule (DESIGN.md §1), for an entry of `entry_len` bytes whose
/// key field is `key_len` bytes: one Full record if it fits; otherwise a
/// First record of 13 + min(key_len, 32755) bytes, then 32768-byte Middle
/// records and a non-empty Last.
pub fn kevo_layout(entry_len: usize, key_len: usize) -> Vec<(RecordType, usize)> {
    if entry_len <= MAX_PAYLOAD {
        return vec![(RecordType::Full, entry_len)];
    }
    let first = 13 + key_len.min(MAX_PAYLOAD - 13);
    let mut out = vec![(RecordType::First, first)];
    let mut rest = entry_len - first;
    while rest > MAX_PAYLOAD {
        out.push((RecordType::Middle, MAX_PAYLOAD));
        rest -= MAX_PAYLOAD;
    }
    assert!(rest > 0, "a Last record is never empty");
    out.push((RecordType::Last, rest));
    out
}

/// The logical items (single entries, and whole batches of either form) of
/// a well-formed segment, in order: the bytes each spans and the operations
/// it holds.
pub fn items(bytes: &[u8]) -> Vec<(Range<usize>, Vec<Entry>)> {
    let mut out = Vec::new();
    let mut item_start = None;
    let mut ops = Vec::new();
    let mut entry_bytes = Vec::new();
    let mut batch_left = 0u32;
    for r in records(bytes) {
        item_start.get_or_insert(r.offset);
        entry_bytes.extend_from_slice(&bytes[r.payload()..r.end()]);
        if matches!(r.kind, RecordType::First | RecordType::Middle) {
            continue;
        }
        match decode_entry(&entry_bytes).expect("well-formed entry") {
            EntryView::BatchHeader { count, .. } => batch_left = count,
            EntryView::Single(op) => {
                ops.push(entry(op.seq, op.op, op.key, op.value));
                batch_left = batch_left.saturating_sub(1);
            }
            EntryView::Batch(view) => {
                ops.extend(view.iter().map(|op| entry(op.seq, op.op, op.key, op.value)));
            }
        }
        entry_bytes.clear();
        if batch_left == 0 {
            out.push((
                item_start.take().unwrap()..r.end(),
                std::mem::take(&mut ops),
            ));
        }
    }
    out
}

/// The byte spans of the logical items of a well-formed segment.
pub fn item_spans(bytes: &[u8]) -> Vec<Range<usize>> {
    items(bytes).into_iter().map(|(span, _)| span).collect()
}
