//! The bodies of the cargo-fuzz targets in `fuzz/`, kept here so that
//! `cargo test` can replay their corpus without a fuzzer.
//!
//! Both take arbitrary bytes. Whatever the bytes, ironwal must not panic,
//! must not allocate on the strength of a length it read, and must keep the
//! promises these functions assert; a panic here is a finding.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ironwal::format::batch::push_op;
use ironwal::format::{decode_entry, encode_batch, encode_entry, EntryView, HEADER_SIZE};
use ironwal::storage::{MemStorage, Storage};
use ironwal::{Entry, Error, LogReader, Options, RecoveryMode, SegmentId, Seq, Wal};

/// The directory the targets put their files in.
const DIR: &str = "/fuzz";

/// Separates the files of an `open` input. Any 4 bytes would do; these
/// are unlikely to occur in a log by chance.
pub const FILE_SEPARATOR: [u8; 4] = [0xf1, 0x1e, 0x5e, 0x9a];

/// At most this many segment files are made from an `open` input.
const MAX_SEGMENTS: usize = 4;

/// `decode`: `data` as entry bytes (a record's payload), then as one segment
/// file read under every recovery mode.
///
/// Asserts that a decoded entry encodes back to exactly `data`, and that
/// modes agree where they must: a log that reads clean in `Strict` mode
/// reads the same in every mode, and `PointInTime` recovers what
/// `TolerateTornTail` does whenever the latter succeeds.
pub fn decode(data: &[u8]) {
    match decode_entry(data) {
        Ok(EntryView::Single(op)) => {
            let mut records = Vec::new();
            let value = op.value.unwrap_or_default();
            if encode_entry(&mut records, op.op, op.seq, op.key, value).is_ok() {
                assert_eq!(
                    payloads(&records),
                    data,
                    "a decoded entry encodes differently"
                );
            }
        }
        Ok(EntryView::BatchHeader { .. }) => {
            assert_eq!(data.len(), 13, "a batch header is 13 bytes");
        }
        Ok(EntryView::Batch(batch)) => {
            let mut ops = Vec::new();
            let mut count = 0u32;
            for (i, op) in batch.iter().enumerate() {
                assert_eq!(
                    op.seq,
                    batch.seq() + i as u64,
                    "batch sequences are consecutive"
                );
                let pushed = push_op(&mut ops, op.op, op.key, op.value.unwrap_or_default());
                assert!(pushed.is_ok(), "a decoded operation re-encodes");
                count += 1;
            }
            assert_eq!(
                count,
                batch.count(),
                "a validated batch yields all its operations"
            );
            let mut records = Vec::new();
            if encode_batch(&mut records, batch.seq(), count, &ops).is_ok() {
                assert_eq!(
                    payloads(&records),
                    data,
                    "a decoded batch encodes differently"
                );
            }
        }
        Err(_) => {}
    }

    let storage = MemStorage::new();
    let path = Path::new(DIR).join(SegmentId::new(1).file_name());
    storage.write_file(&path, data);
    let storage: Arc<dyn Storage> = Arc::new(storage);
    let read = |mode| read_all(&storage, &path, mode);
    let strict = read(RecoveryMode::Strict);
    let torn = read(RecoveryMode::TolerateTornTail);
    let point = read(RecoveryMode::PointInTime);
    let skip = read(RecoveryMode::SkipCorrupted);
    if let Ok(clean) = &strict {
        for (mode, other) in [
            ("tolerate-torn-tail", &torn),
            ("point-in-time", &point),
            ("skip-corrupted", &skip),
        ] {
            assert_eq!(
                other.as_ref().ok(),
                Some(clean),
                "a clean segment reads differently under {mode}"
            );
        }
    }
    if let Ok(torn) = &torn {
        assert_eq!(
            point.as_ref().ok(),
            Some(torn),
            "point-in-time recovers other entries than tolerate-torn-tail"
        );
    }
}

/// The payloads of encoded records, concatenated.
fn payloads(mut records: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some((header, rest)) = records.split_first_chunk::<HEADER_SIZE>() {
        let len = usize::from(u16::from_le_bytes([header[4], header[5]]));
        let (payload, rest) = rest.split_at(len.min(rest.len()));
        out.extend_from_slice(payload);
        records = rest;
    }
    out
}

/// Every entry of a log directory or segment file under `mode`.
fn read_all(
    storage: &Arc<dyn Storage>,
    path: &Path,
    mode: RecoveryMode,
) -> Result<Vec<Entry>, Error> {
    let mut reader = LogReader::open_with(Arc::clone(storage), path, mode)?;
    let mut entries = Vec::new();
    while let Some(entry) = reader.next_entry()? {
        entries.push(entry.to_entry());
    }
    Ok(entries)
}

/// The files an `open` input describes, and how to open them.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Files (path, bytes) in the log directory.
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// `Options::max_segment_size`.
    pub segment_size: u64,
    /// `Options::write_buffer_size`.
    pub write_buffer: usize,
}

impl Layout {
    /// Cuts an `open` input into files. Byte 0 steers: bit 0 makes the last
    /// part a junk file (named by bits 1-2) rather than a segment, bits 3-4
    /// pick the segment size, bit 5 a small write buffer. The rest is split
    /// at [`FILE_SEPARATOR`] into up to four segments (the last part keeps
    /// any further separators), named in increasing order.
    pub fn parse(data: &[u8]) -> Layout {
        let (control, rest) = data.split_first().map_or((0, data), |(c, r)| (*c, r));
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut rest = rest;
        while parts.len() < MAX_SEGMENTS {
            match find(rest, &FILE_SEPARATOR) {
                Some(at) => {
                    parts.push(&rest[..at]);
                    rest = &rest[at + FILE_SEPARATOR.len()..];
                }
                None => break,
            }
        }
        parts.push(rest);
        let junk = (control & 1 == 1 && parts.len() > 1)
            .then(|| parts.pop())
            .flatten();
        let dir = Path::new(DIR);
        let mut files: Vec<(PathBuf, Vec<u8>)> = parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let id = SegmentId::new(1_000 * (i as u64 + 1));
                (dir.join(id.file_name()), part.to_vec())
            })
            .collect();
        if let Some(junk) = junk {
            let name = match (control >> 1) & 3 {
                0 => "notes.txt".to_owned(),
                1 => "LOCK".to_owned(),
                2 => format!("{}.corrupt", SegmentId::new(2_500).file_name()),
                // A directory with a segment's name.
                _ => format!("{}/inner", SegmentId::new(9_000).file_name()),
            };
            files.push((dir.join(name), junk.to_vec()));
        }
        Layout {
            files,
            segment_size: [128, 1024, 8192, 1 << 20][usize::from((control >> 3) & 3)],
            write_buffer: if control & 0x20 != 0 { 64 } else { 1 << 16 },
        }
    }

    /// A file system holding the files.
    pub fn storage(&self) -> MemStorage {
        let storage = MemStorage::new();
        for (path, bytes) in &self.files {
            storage.write_file(path, bytes);
        }
        storage
    }

    fn options(&self, storage: &MemStorage, mode: RecoveryMode) -> Options {
        Options::default()
            .storage(Arc::new(storage.clone()))
            .recovery_mode(mode)
            .max_segment_size(self.segment_size)
            .write_buffer_size(self.write_buffer)
            .preallocate(false)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `open`: `data` as a log directory (see [`Layout::parse`]), opened with
/// `Wal::open` under every recovery mode.
///
/// Asserts, for every mode in which the open succeeds: replay succeeds and
/// yields what a `LogReader` yields for the directory; the next sequence is
/// above every recovered one; one append succeeds; the log closes; and it
/// reopens (in `Strict` mode, or `SkipCorrupted` if that is how it was
/// opened, since skipped ranges stay in place) holding exactly the recovered
/// entries plus the new one.
pub fn open(data: &[u8]) {
    let layout = Layout::parse(data);
    for mode in RecoveryMode::ALL {
        open_in(&layout, mode);
    }
}

fn open_in(layout: &Layout, mode: RecoveryMode) {
    let storage = layout.storage();
    let shared: Arc<dyn Storage> = Arc::new(storage.clone());
    let read = read_all(&shared, Path::new(DIR), mode);
    let wal = match Wal::open(DIR, layout.options(&storage, mode)) {
        Ok(wal) => wal,
        Err(e) => {
            if e.is_corruption() {
                assert!(
                    read.is_err(),
                    "{mode}: Wal::open calls the log corrupt ({e}) but LogReader reads it"
                );
            }
            return;
        }
    };
    let recovered =
        replay(&wal).unwrap_or_else(|e| panic!("{mode}: replay after open failed: {e}"));
    if let Ok(read) = &read {
        assert_eq!(
            read, &recovered,
            "{mode}: LogReader and Wal::open recover different entries"
        );
    }
    let next = wal.next_seq();
    if let Some(highest) = recovered.iter().map(|e| e.seq).max() {
        assert!(
            next > highest,
            "{mode}: next sequence {next} is not above {highest}"
        );
    }
    let seq = wal
        .put(b"fuzz-key", b"fuzz-value")
        .unwrap_or_else(|e| panic!("{mode}: appending after open failed: {e}"));
    assert_eq!(
        seq, next,
        "{mode}: the append did not get the next sequence"
    );
    wal.close()
        .unwrap_or_else(|e| panic!("{mode}: closing failed: {e}"));

    let again = match mode {
        RecoveryMode::SkipCorrupted => RecoveryMode::SkipCorrupted,
        _ => RecoveryMode::Strict,
    };
    let wal = Wal::open(DIR, layout.options(&storage, again))
        .unwrap_or_else(|e| panic!("{mode}: reopening in {again} failed: {e}"));
    let reopened =
        replay(&wal).unwrap_or_else(|e| panic!("{mode}: replay after reopening failed: {e}"));
    let mut expected = recovered;
    expected.push(Entry {
        seq,
        op: ironwal::Op::Put,
        key: b"fuzz-key".to_vec(),
        value: Some(b"fuzz-value".to_vec()),
    });
    assert_eq!(
        reopened, expected,
        "{mode}: the reopened log is not the recovered one plus the append"
    );
    let _ = wal.close();
}

fn replay(wal: &Wal) -> Result<Vec<Entry>, Error> {
    wal.replay(Seq::ZERO)?.collect()
}

/// Builds an `open` input from files (the inverse of [`Layout::parse`] for
/// segments without the separator in them), for making seed inputs.
pub fn open_input(control: u8, segments: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![control];
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(&FILE_SEPARATOR);
        }
        out.extend_from_slice(segment);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_input_splits_into_its_segments() {
        let input = open_input(0b1_1011, &[b"one", b"two", b"junk"]);
        let layout = Layout::parse(&input);
        assert_eq!(layout.files.len(), 3);
        assert_eq!(layout.files[0].1, b"one");
        assert!(layout.files[2].0.ends_with("LOCK"));
        assert_eq!(layout.segment_size, 1 << 20);
        assert_eq!(Layout::parse(&[]).files.len(), 1);
    }

    #[test]
    fn empty_and_tiny_inputs_do_not_panic() {
        for data in [&b""[..], b"\0", b"\x01", &[0xff; 40]] {
            decode(data);
            open(data);
        }
    }
}
