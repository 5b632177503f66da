//! A model of how kevo (25fe3b1) replays a WAL directory and appends to it
//! (`ReplayWALDir`, `ReplayWALFile`, `ReuseWAL` + `Append`), written from
//! kevo's rules, not its code, to judge what kevo would make of files ironwal
//! writes or leaves behind. It models kevo, flaws included: it must never be
//! "fixed" to read better than kevo does. Reads follow Go's `io.ReadFull`: no
//! byte read is `io.EOF` (a clean end), some but not all is a fatal
//! `io.ErrUnexpectedEOF`. Not modelled: handler errors, and the entry count
//! kevo's logging takes with a second, skip-less pass over each good file.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const HEADER: usize = 7;
const MAX_RECORD: usize = 32 * 1024;
/// Bytes kevo skips blindly after a corrupt or invalid record.
pub const SKIP: usize = 32 * 1024;
/// kevo's default `WALMaxSize`, used by [`reuse_and_append`] when given 0.
pub const DEFAULT_MAX_SIZE: u64 = 64 * 1024 * 1024;

/// One entry as kevo's replay hands it to its handler (a batch comes as one
/// entry of op 4 whose key is the batch body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KevoEntry {
    /// Sequence number from the entry bytes.
    pub seq: u64,
    /// 1 Put, 2 Delete, 3 Merge, 4 Batch.
    pub op: u8,
    /// The key (for op 4, the batch body).
    pub key: Vec<u8>,
    /// The value (empty for Delete).
    pub value: Vec<u8>,
}

/// What a replay of a directory produced.
#[derive(Debug, Default)]
pub struct KevoReplay {
    /// Entries in the order the handler saw them.
    pub entries: Vec<KevoEntry>,
    /// Every "Skipping corrupted entry" kevo would log: (file name, byte
    /// offset of the bad header, reason text).
    pub skipped: Vec<(String, u64, String)>,
    /// Files that failed with a "corrupt"/"invalid" error and were skipped
    /// whole by `ReplayWALDir` (file name, kevo's error text).
    pub failed_files: Vec<(String, String)>,
}

impl KevoReplay {
    /// True when no record was skipped and no file failed: kevo read the log
    /// with no error and no skipped bytes.
    pub fn is_clean(&self) -> bool {
        self.skipped.is_empty() && self.failed_files.is_empty()
    }
}

/// What `ReplayWALFile` delivered from one file.
#[derive(Debug, Default)]
pub struct FileReplay {
    /// Entries handed to the handler.
    pub entries: Vec<KevoEntry>,
    /// Skipped records: (offset of the bad header, reason text).
    pub skipped: Vec<(u64, String)>,
}

/// A failed `ReplayWALFile`, with what the handler had already received.
#[derive(Debug)]
pub struct FileError {
    /// What went wrong.
    pub error: KevoError,
    /// Entries and skips delivered before the failure (the handler keeps them).
    pub partial: FileReplay,
}

/// Why kevo's replay fails. `offset` is that of the record header being read.
#[derive(Debug)]
#[non_exhaustive]
pub enum KevoError {
    /// A header or payload cut short (`io.ErrUnexpectedEOF`): fatal.
    UnexpectedEof { file: String, offset: u64 },
    /// A file ends with fragments pending: fatal.
    UnexpectedEofWithFragments { file: String, fragments: usize },
    /// More than 5 skips before any entry: the file fails. Only
    /// [`replay_file`] returns it; [`replay_dir`] lists it in `failed_files`.
    TooManyCorrupted { file: String },
    /// A First record with an empty payload: kevo indexes `data[0]` and panics.
    Panic { file: String, offset: u64 },
    /// Every file failed ("failed to process any WAL files"), with kevo's text
    /// of the last failure.
    NoFileProcessed { last_error: String },
    /// A file could not be read.
    Io(io::Error),
}

impl KevoError {
    /// kevo's error text for a file failure with the file at `path`, which
    /// `ReplayWALDir` searches for "corrupt"/"invalid".
    fn kevo_text(&self, path: &str) -> Option<String> {
        let read = format!("error reading entry from {path}: unexpected EOF");
        match self {
            Self::UnexpectedEof { .. } => Some(read),
            Self::UnexpectedEofWithFragments { fragments, .. } => {
                Some(format!("{read} with {fragments} fragments"))
            }
            Self::TooManyCorrupted { .. } => Some(format!(
                "too many corrupted entries at start of file {path}"
            )),
            _ => None,
        }
    }
}

impl fmt::Display for KevoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnexpectedEof { file, offset } => {
                write!(
                    f,
                    "kevo stops: {file} ends inside the record at byte {offset}"
                )
            }
            Self::UnexpectedEofWithFragments { file, fragments } => {
                write!(
                    f,
                    "kevo stops: {file} ends after {fragments} fragments of an entry"
                )
            }
            Self::TooManyCorrupted { file } => {
                write!(
                    f,
                    "kevo gives up on {file}: too many corrupted entries at its start"
                )
            }
            Self::Panic { file, offset } => {
                write!(
                    f,
                    "kevo panics on the empty First record at byte {offset} of {file}"
                )
            }
            Self::NoFileProcessed { last_error } => write!(f, "kevo replays no file: {last_error}"),
            Self::Io(e) => write!(f, "kevo cannot read a WAL file: {e}"),
        }
    }
}

impl std::error::Error for KevoError {}

/// `FindWALFiles`: every name ending in ".wal" directly in `dir`, sorted.
/// Like Go's `filepath.Glob`, an unreadable or missing directory has no files.
fn wal_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().ends_with(".wal"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| (n.to_string_lossy().into_owned(), dir.join(n)))
        .collect()
}

/// Model of kevo's `ReplayWALDir`: replays each `*.wal` file in name order.
/// A directory with no `*.wal` file replays as nothing (kevo returns nil).
pub fn replay_dir(dir: &Path) -> Result<KevoReplay, KevoError> {
    let mut out = KevoReplay::default();
    let (mut successful, mut last_error) = (0, None);
    for (name, path) in wal_files(dir) {
        let bytes = fs::read(&path).map_err(KevoError::Io)?;
        let (partial, failure) = match replay_file(&name, &bytes) {
            Ok(r) => (r, None),
            Err(e) => (e.partial, Some(e.error)),
        };
        // The handler has seen these whether or not the file fails later.
        out.entries.extend(partial.entries);
        out.skipped.extend(
            partial
                .skipped
                .into_iter()
                .map(|(o, r)| (name.clone(), o, r)),
        );
        let Some(error) = failure else {
            successful += 1;
            continue;
        };
        // kevo matches on the text, which holds the full path.
        match error.kevo_text(&path.to_string_lossy()) {
            Some(t) if t.contains("corrupt") || t.contains("invalid") => {
                out.failed_files.push((name, t.clone()));
                last_error = Some(t);
            }
            _ => return Err(error),
        }
    }
    match last_error {
        Some(last_error) if successful == 0 => Err(KevoError::NoFileProcessed { last_error }),
        _ => Ok(out),
    }
}

fn le(b: &[u8], at: usize, n: usize) -> u64 {
    b[at..at + n]
        .iter()
        .rev()
        .fold(0, |v, &x| v << 8 | u64::from(x))
}

/// `parseEntryData`: the entry bytes of a Full record or of joined fragments.
fn parse_entry(d: &[u8]) -> Result<KevoEntry, String> {
    if d.len() < 13 {
        return Err(format!(
            "corrupt record: entry too small, {} bytes",
            d.len()
        ));
    }
    let op = d[0];
    if !(1..=4).contains(&op) {
        return Err(format!("invalid operation type: {op}"));
    }
    let key_len = le(d, 9, 4);
    let key_end = 13 + key_len as usize;
    if key_end > d.len() {
        // Where a header-form batch (op 4, seq, count) lands: count is read as
        // a key length running past its 13 bytes.
        return Err(format!("corrupt record: invalid key length {key_len}"));
    }
    let mut value = Vec::new();
    if op != 2 {
        if key_end + 4 > d.len() {
            return Err("corrupt record: missing value length".into());
        }
        let value_len = le(d, key_end, 4);
        let end = key_end + 4 + value_len as usize;
        if end > d.len() {
            return Err(format!("corrupt record: invalid value length {value_len}"));
        }
        value = d[key_end + 4..end].to_vec();
    }
    let key = d[13..key_end].to_vec();
    Ok(KevoEntry {
        seq: le(d, 1, 8),
        op,
        key,
        value,
    })
}

/// What one `readRecord` got.
enum Record<'a> {
    /// `io.EOF`: `io.ReadFull` read no byte (of the header, or of the payload).
    Eof,
    /// `io.ErrUnexpectedEOF`: it read some bytes but not all.
    Short,
    /// A "corrupt"/"invalid" error, with kevo's text.
    Bad(String),
    Ok(u8, &'a [u8]),
}

/// `readRecord`: a header and its payload, each read with `io.ReadFull`.
fn read_record<'a>(bytes: &'a [u8], pos: &mut usize) -> Record<'a> {
    let cut = |pos: usize| {
        if pos == bytes.len() {
            Record::Eof
        } else {
            Record::Short
        }
    };
    let Some(h) = bytes.get(*pos..*pos + HEADER) else {
        return cut(*pos);
    };
    let (crc, len, kind) = (le(h, 0, 4) as u32, le(h, 4, 2) as usize, h[6]);
    *pos += HEADER;
    if !(1..=4).contains(&kind) {
        return Record::Bad(format!("invalid record type: {kind}"));
    }
    let Some(data) = bytes.get(*pos..*pos + len) else {
        return cut(*pos);
    };
    *pos += len;
    match crc32(data) {
        got if got != crc => Record::Bad(format!("corrupt record: expected CRC {crc}, got {got}")),
        _ => Record::Ok(kind, data),
    }
}

/// Model of kevo's `ReplayWALFile` (with its `ReadEntry`) over the bytes of
/// the file `name`.
pub fn replay_file(name: &str, bytes: &[u8]) -> Result<FileReplay, FileError> {
    let mut out = FileReplay::default();
    // kevo keeps fragments across errors and a First appends to pending ones.
    let (mut pos, mut frags, mut nfrags, file) = (0, Vec::new(), 0, name.to_owned());
    let error = loop {
        let at = pos as u64;
        let parsed = match read_record(bytes, &mut pos) {
            Record::Eof if nfrags == 0 => return Ok(out),
            Record::Eof => {
                break KevoError::UnexpectedEofWithFragments {
                    file,
                    fragments: nfrags,
                }
            }
            Record::Short => break KevoError::UnexpectedEof { file, offset: at },
            Record::Bad(reason) => Err(reason),
            Record::Ok(2, []) => break KevoError::Panic { file, offset: at },
            Record::Ok(1, data) => parse_entry(data),
            Record::Ok(3, _) if nfrags == 0 => {
                Err("corrupt record: middle fragment without first fragment".into())
            }
            Record::Ok(4, _) if nfrags == 0 => {
                Err("corrupt record: last fragment without previous fragments".into())
            }
            Record::Ok(kind, data) => {
                frags.extend_from_slice(data);
                nfrags += 1;
                if kind != 4 {
                    continue;
                }
                nfrags = 0;
                parse_entry(&std::mem::take(&mut frags))
            }
        };
        match parsed {
            Ok(entry) => out.entries.push(entry),
            Err(reason) => {
                out.skipped.push((at, reason));
                if out.skipped.len() > 5 && out.entries.is_empty() {
                    break KevoError::TooManyCorrupted { file };
                }
                // The blind skip; EOF during it ends the file cleanly, fragments or not.
                if bytes.len() - pos < SKIP {
                    return Ok(out);
                }
                pos += SKIP;
            }
        }
    };
    Err(FileError {
        error,
        partial: out,
    })
}

/// CRC-32 (IEEE), bitwise: the model must not lean on ironwal's code.
fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |mut c, &b| {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = (c >> 1) ^ (0xEDB8_8320 & (c & 1).wrapping_neg());
        }
        c
    })
}

fn push_record(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
}

/// kevo's `Append` encoding of one Put/Delete/Merge: a Full record when the
/// entry bytes fit in 32768; otherwise a First holding op, seq, key length
/// and as much key as fits, then 32768-byte Middles and a Last.
pub fn encode_append(op: u8, seq: u64, key: &[u8], value: &[u8]) -> io::Result<Vec<u8>> {
    if !(1..=3).contains(&op) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "invalid operation type",
        ));
    }
    let mut entry = vec![op];
    entry.extend_from_slice(&seq.to_le_bytes());
    entry.extend_from_slice(&(key.len() as u32).to_le_bytes());
    entry.extend_from_slice(key);
    if op != 2 {
        entry.extend_from_slice(&(value.len() as u32).to_le_bytes());
        entry.extend_from_slice(value);
    }
    let mut out = Vec::new();
    if entry.len() <= MAX_RECORD {
        push_record(&mut out, 1, &entry);
        return Ok(out);
    }
    let (first, mut rest) = entry.split_at(13 + key.len().min(MAX_RECORD - 13));
    push_record(&mut out, 2, first);
    while rest.len() > MAX_RECORD {
        push_record(&mut out, 3, &rest[..MAX_RECORD]);
        rest = &rest[MAX_RECORD..];
    }
    if !rest.is_empty() {
        push_record(&mut out, 4, rest);
    }
    Ok(out)
}

/// Model of kevo's `ReuseWAL` + `Append`: appends `entries` (op, seq, key,
/// value) at the end of the last `*.wal` file if it is smaller than
/// `max_size` (0 means 64 MiB), whatever that file ends with; otherwise
/// creates `<20-digit nanoseconds>.wal`. Returns the path written.
pub fn reuse_and_append(
    dir: &Path,
    max_size: u64,
    entries: &[(u8, u64, Vec<u8>, Vec<u8>)],
) -> io::Result<PathBuf> {
    let max_size = Some(max_size)
        .filter(|&m| m > 0)
        .unwrap_or(DEFAULT_MAX_SIZE);
    let mut bytes = Vec::new();
    for (op, seq, key, value) in entries {
        bytes.extend(encode_append(*op, *seq, key, value)?);
    }
    let files = wal_files(dir);
    let last = files.last();
    // kevo falls back to a new file when the last one is too large or cannot be opened.
    let reuse = last.filter(|(_, p)| fs::metadata(p).is_ok_and(|m| m.len() < max_size));
    let reuse =
        reuse.and_then(|(_, p)| Some((p.clone(), OpenOptions::new().append(true).open(p).ok()?)));
    let (path, mut file) = match reuse {
        Some(reused) => reused,
        None => {
            fs::create_dir_all(dir)?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            // kevo trusts the clock; the model also makes sure to sort after the last file.
            let after = last.and_then(|(n, _)| n.trim_end_matches(".wal").parse::<u128>().ok());
            let p = dir.join(format!("{:020}.wal", now.max(after.map_or(0, |n| n + 1))));
            let file = OpenOptions::new().write(true).create_new(true).open(&p)?;
            (p, file)
        }
    };
    file.write_all(&bytes)?;
    file.sync_all()?;
    Ok(path)
}

/// An entry as kevo's memtable applies it: (seq, op, key, value), `None` for Delete.
pub type FlatEntry = (u64, u8, Vec<u8>, Option<Vec<u8>>);

/// Flattens replayed entries like kevo's memtable (`DecodeBatch`): a batch
/// (op 4) entry's key is the batch body (u32 count, u64 seq, then per
/// operation: op, u32 key length, key and, not for Delete, u32 value length,
/// value), whose operations get seq, seq+1, …; a body that fails to decode is
/// an error.
pub fn flatten(entries: &[KevoEntry]) -> Result<Vec<FlatEntry>, String> {
    let mut out = Vec::new();
    for e in entries {
        if e.op != 4 {
            out.push((
                e.seq,
                e.op,
                e.key.clone(),
                (e.op != 2).then(|| e.value.clone()),
            ));
            continue;
        }
        let b = &e.key;
        let bad = |what: &str| format!("corrupt record: {what} in the batch at seq {}", e.seq);
        if b.len() < 12 {
            return Err(bad("header too small"));
        }
        let (count, seq, mut at) = (le(b, 0, 4), le(b, 4, 8), 12);
        // A u32 length and that many bytes.
        let field = |at: &mut usize| -> Result<Vec<u8>, String> {
            let n = b.get(*at..*at + 4).ok_or_else(|| bad("unexpected end"))?;
            let n = le(n, 0, 4) as usize;
            let v = b
                .get(*at + 4..*at + 4 + n)
                .ok_or_else(|| bad("invalid length"))?;
            *at += 4 + n;
            Ok(v.to_vec())
        };
        for i in 0..count {
            let op = *b.get(at).ok_or_else(|| bad("unexpected end"))?;
            if !(1..=3).contains(&op) {
                return Err(format!("invalid operation type: {op}"));
            }
            at += 1;
            let key = field(&mut at)?;
            let value = if op == 2 { None } else { Some(field(&mut at)?) };
            out.push((seq.wrapping_add(i), op, key, value));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/kevo");
    /// What one skip of a zero tail consumes: a header and 32,768 bytes.
    const CYCLE: usize = HEADER + SKIP;

    type Append = (u8, u64, Vec<u8>, Vec<u8>);

    fn put(seq: u64) -> Append {
        (1, seq, b"key".to_vec(), vec![b'v'; seq as usize])
    }

    fn encode(entries: &[Append]) -> Vec<u8> {
        let each = entries
            .iter()
            .map(|(o, s, k, v)| encode_append(*o, *s, k, v).unwrap());
        each.collect::<Vec<_>>().concat()
    }

    fn seqs(r: &KevoReplay) -> Vec<u64> {
        flatten(&r.entries).unwrap().iter().map(|e| e.0).collect()
    }

    fn dir_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            fs::write(dir.path().join(name), bytes).unwrap();
        }
        dir
    }

    /// A vector's manifest and its entries, as `flatten` returns them.
    fn manifest(dir: &Path) -> (serde_json::Value, Vec<FlatEntry>) {
        let m: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        let hex = |v: &serde_json::Value| -> Vec<u8> {
            let s = v.as_str().unwrap().as_bytes();
            s.chunks(2)
                .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
                .collect()
        };
        let entries = m["entries"].as_array().unwrap().iter().map(|e| {
            let op = ["put", "delete", "merge"]
                .iter()
                .position(|o| e["op"] == *o)
                .unwrap() as u8;
            let value = (!e["value"].is_null()).then(|| hex(&e["value"]));
            (e["seq"].as_u64().unwrap(), op + 1, hex(&e["key"]), value)
        });
        let entries = entries.collect();
        (m, entries)
    }

    /// Whether a file holds a header-form batch: a Full record of 13 entry bytes with op 4.
    fn has_header_form_batch(dir: &Path) -> bool {
        wal_files(dir).iter().any(|(_, p)| {
            let (b, mut at, mut found) = (fs::read(p).unwrap(), 0, false);
            while at + HEADER <= b.len() {
                let len = le(&b, at + 4, 2) as usize;
                found |= b[at + 6] == 1 && len == 13 && b.get(at + HEADER) == Some(&4);
                at += HEADER + len;
            }
            found
        })
    }

    #[test]
    fn every_vector_replays_as_kevo_would() {
        let mut dirs: Vec<_> = fs::read_dir(VECTORS)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        assert_eq!(dirs.len(), 12);
        for dir in dirs {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let (m, want) = manifest(&dir);
            let got = replay_dir(&dir);
            let flat = got
                .as_ref()
                .ok()
                .map(|r| flatten(&r.entries).unwrap())
                .unwrap_or_default();
            if m["expect"] == "clean" && !has_header_form_batch(&dir) {
                assert_eq!(flat, want, "{name}");
            }
            // The one skip kevo logs, by offset and reason.
            let skip = |r: &KevoReplay| (r.skipped.len(), r.skipped[0].1, r.skipped[0].2.clone());
            let key_len = |n| format!("corrupt record: invalid key length {n}");
            match (name.as_str(), got) {
                (
                    "puts-small" | "mixed-ops" | "fragment-boundaries" | "batch-record-form",
                    Ok(r),
                ) => {
                    assert!(r.is_clean(), "{name}")
                }
                // The zeros read as a header of type 0; the 32 KiB skip runs off the end.
                ("zero-tail", Ok(r)) => {
                    assert_eq!(skip(&r), (1, 5778 - 4096, "invalid record type: 0".into()))
                }
                // The CRC mismatch is skipped with the rest of the 2702-byte file:
                // kevo yields what precedes the damage, as the manifest lists.
                ("corrupt-mid-log", Ok(r)) => {
                    assert_eq!(skip(&r).1, 1355);
                    assert!(skip(&r).2.starts_with("corrupt record: expected CRC"));
                    assert_eq!(flat, want);
                }
                // A header-form batch is "corrupt" to kevo (its count reads as a key
                // length) and the 32 KiB skip swallows every later record of its
                // file: intact, committed entries are lost without an error.
                ("batch-header-form", Ok(r)) => {
                    assert_eq!(skip(&r), (1, 94, key_len(3)));
                    assert_eq!(flat, want[..2]); // 22 of 24 lost
                }
                ("torn-tail-in-header-batch", Ok(r)) => {
                    assert_eq!(skip(&r), (1, 257, key_len(2)));
                    assert_eq!(flat, want[..5]); // seqs 6..=9 lost, though intact
                }
                ("multi-segment", Ok(r)) => {
                    assert_eq!(skip(&r), (1, 307, key_len(3)));
                    assert_eq!(r.skipped[0].0, "01795618051462123597.wal");
                    // The rest of the second file, seqs 17..=24, is lost.
                    let kept = want.iter().filter(|e| !(17..=24).contains(&e.0));
                    assert_eq!(flat, kept.cloned().collect::<Vec<_>>());
                }
                // Torn tails are fatal: kevo does not open the log at all.
                ("torn-tail-in-header", Err(KevoError::UnexpectedEof { offset: 918, .. })) => {}
                ("torn-tail-mid-record", Err(KevoError::UnexpectedEof { offset: 937, .. })) => {}
                (
                    "torn-tail-in-fragment",
                    Err(KevoError::UnexpectedEofWithFragments { fragments: 3, .. }),
                ) => {}
                (name, got) => panic!("{name}: undocumented outcome {got:?}"),
            }
        }
    }

    #[test]
    fn single_appends_encode_byte_for_byte_as_kevo_wrote_them() {
        for name in ["puts-small", "mixed-ops", "fragment-boundaries"] {
            let dir = Path::new(VECTORS).join(name);
            let (m, want) = manifest(&dir);
            assert_eq!(m["single_entry_appends"], true);
            let ours = want
                .into_iter()
                .map(|(s, o, k, v)| (o, s, k, v.unwrap_or_default()));
            let ours: Vec<Append> = ours.collect();
            assert!(
                encode(&ours) == fs::read(&wal_files(&dir)[0].1).unwrap(),
                "{name}"
            );
        }
    }

    #[test]
    fn zero_tail_vector_is_skipped_yet_yields_every_entry() {
        let r = replay_dir(&Path::new(VECTORS).join("zero-tail")).unwrap();
        assert_eq!((r.is_clean(), r.skipped.len()), (false, 1));
        assert_eq!(seqs(&r), (1..=32).collect::<Vec<_>>());
    }

    #[test]
    fn zero_tail_leaving_1_to_6_bytes_after_its_last_skip_is_fatal() {
        let data = encode(&[put(1), put(2), put(3)]);
        for (k, rest) in (0..3).flat_map(|k| (0..=10).map(move |rest| (k, rest))) {
            let b = [data.clone(), vec![0; k * CYCLE + rest]].concat();
            match replay_file("z.wal", &b) {
                Err(FileError {
                    error: KevoError::UnexpectedEof { offset, .. },
                    partial,
                }) => {
                    assert!((1..=6).contains(&rest), "k={k} rest={rest}");
                    assert_eq!(offset as usize, data.len() + k * CYCLE);
                    assert_eq!(partial.entries.len(), 3);
                }
                Ok(r) => {
                    assert!(!(1..=6).contains(&rest), "k={k} rest={rest}");
                    let skips = k + usize::from(rest >= 7);
                    assert_eq!((r.skipped.len(), r.entries.len()), (skips, 3));
                }
                Err(e) => panic!("k={k} rest={rest}: {}", e.error),
            }
        }
        let dir = dir_with(&[("1.wal", &[data.as_slice(), &[0; CYCLE + 3]].concat())]);
        assert!(matches!(
            replay_dir(dir.path()),
            Err(KevoError::UnexpectedEof { .. })
        ));
    }

    #[test]
    fn zero_tail_up_to_64_mib_costs_2048_skips() {
        let data = encode(&[put(1), put(2), put(3)]);
        let mut b = vec![0u8; DEFAULT_MAX_SIZE as usize];
        b[..data.len()].copy_from_slice(&data);
        let zeros = b.len() - data.len();
        assert_eq!(zeros / CYCLE + usize::from(zeros % CYCLE >= 7), 2048);
        let r = replay_file("full.wal", &b).unwrap();
        assert_eq!((r.entries.len(), r.skipped.len()), (3, 2048));
        for (i, (offset, reason)) in r.skipped.iter().enumerate() {
            assert_eq!(*offset as usize, data.len() + i * CYCLE);
            assert_eq!(reason, "invalid record type: 0");
        }
    }

    #[test]
    fn zero_filled_only_file_fails_the_directory() {
        for size in [5 * CYCLE + HEADER, 1 << 20] {
            let dir = dir_with(&[("1.wal", &vec![0; size])]);
            match replay_dir(dir.path()) {
                Err(KevoError::NoFileProcessed { last_error: e }) => {
                    assert!(
                        e.starts_with("too many corrupted entries at start of file"),
                        "{e}"
                    )
                }
                other => panic!("{size}: {other:?}"),
            }
        }
        // Shorter, five skips and nothing, or a short header read.
        let r = replay_file("1.wal", &[0; 5 * CYCLE]).unwrap();
        assert_eq!((r.entries.len(), r.skipped.len()), (0, 5));
        let short = replay_file("1.wal", &[0; 5 * CYCLE + 6]).unwrap_err().error;
        assert!(
            matches!(short, KevoError::UnexpectedEof { offset, .. } if offset == 5 * CYCLE as u64)
        );
        // After a file that replays, a failing file is only logged.
        let dir = dir_with(&[("1.wal", &encode(&[put(1)])), ("2.wal", &vec![0; 1 << 20])]);
        let r = replay_dir(dir.path()).unwrap();
        assert_eq!((seqs(&r), r.failed_files.len()), (vec![1], 1));
    }

    #[test]
    fn empty_file_and_bare_header_end_cleanly() {
        let r = replay_dir(dir_with(&[("1.wal", b"")]).path()).unwrap();
        assert!(r.is_clean() && r.entries.is_empty());
        // No *.wal file at all: kevo's ReplayWALDir returns nil.
        assert!(replay_dir(dir_with(&[("LOCK", b"")]).path())
            .unwrap()
            .entries
            .is_empty());
        // io.ReadFull reads no byte of the payload: io.EOF, a clean end.
        let r = replay_file("1.wal", &encode(&[put(1)])[..HEADER]).unwrap();
        assert!(r.entries.is_empty() && r.skipped.is_empty());
        // An empty First: kevo reads its op byte and panics.
        let e = replay_file("1.wal", &[0, 0, 0, 0, 0, 0, 2])
            .unwrap_err()
            .error;
        assert!(matches!(e, KevoError::Panic { offset: 0, .. }));
    }

    #[test]
    fn append_after_zero_tail_is_lost_on_replay() {
        let name = "01000000000000000000.wal";
        let dir = dir_with(&[(name, &[encode(&[put(1), put(2)]), vec![0; 4096]].concat())]);
        assert_eq!(
            reuse_and_append(dir.path(), 0, &[put(3)]).unwrap(),
            dir.path().join(name)
        );
        let r = replay_dir(dir.path()).unwrap();
        assert_eq!(seqs(&r), [1, 2]); // seq 3 sits inside the skipped 32 KiB
        assert!(!r.is_clean());
    }

    #[test]
    fn append_to_clean_file_is_replayed() {
        let name = "01000000000000000000.wal";
        let dir = dir_with(&[(name, &encode(&[put(1)]))]);
        let big_put = (1, 3, b"big".to_vec(), vec![7; 70_000]);
        let big_delete = (2, 4, vec![9; 40 << 10], Vec::new());
        let path = reuse_and_append(dir.path(), 0, &[put(2), big_put, big_delete]).unwrap();
        assert_eq!(path, dir.path().join(name));
        let r = replay_dir(dir.path()).unwrap();
        let flat = flatten(&r.entries).unwrap();
        assert!(r.is_clean());
        assert_eq!(flat[2], (3, 1, b"big".to_vec(), Some(vec![7; 70_000])));
        assert_eq!(flat[3], (4, 2, vec![9; 40 << 10], None));
        // A file of max_size bytes or more is left alone: the append starts a later file.
        assert!(reuse_and_append(dir.path(), 100, &[put(5)]).unwrap() > path);
        let r = replay_dir(dir.path()).unwrap();
        assert_eq!((seqs(&r), r.is_clean()), (vec![1, 2, 3, 4, 5], true));
    }

    #[test]
    fn path_words_decide_whether_a_torn_tail_is_fatal() {
        let torn = [encode(&[put(2)]), vec![0; 3]].concat();
        let root = tempfile::tempdir().unwrap();
        for sub in ["plain", "corrupt-copy"] {
            let dir = root.path().join(sub);
            fs::create_dir(&dir).unwrap();
            fs::write(dir.join("1.wal"), encode(&[put(1)])).unwrap();
            fs::write(dir.join("2.wal"), &torn).unwrap();
            match (sub, replay_dir(&dir)) {
                ("plain", Err(KevoError::UnexpectedEof { offset: 29, .. })) => {}
                // kevo's error text holds the path: "corrupt" in it makes the error skippable.
                ("corrupt-copy", Ok(r)) => {
                    assert_eq!((seqs(&r), r.failed_files.len()), (vec![1, 2], 1))
                }
                (sub, other) => panic!("{sub}: {other:?}"),
            }
        }
    }
}
