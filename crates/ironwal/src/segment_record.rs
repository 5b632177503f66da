//! The segment record: what the writer knows about its segments, kept in a
//! file beside them (`ironwal-segments`, a name kevo's `*.wal` glob skips),
//! so that a sealed segment that goes missing, comes back shorter, or is
//! swapped with another is found out rather than read as a clean, shorter
//! log. RocksDB's `track_and_verify_wals_in_manifest` is the model.
//!
//! It lists every sealed segment with its length and first and last
//! sequence, and the active segment with the sequence its first entry has
//! (or will have). It is replaced atomically (write a temporary file, sync
//! it, rename it over the old one, sync the directory) when a segment is
//! sealed, when retention removes segments (before their files go), and on
//! open when what recovery found differs from it (or it is missing).
//!
//! The file is text, for operators:
//!
//! ```text
//! ironwal-segments 1
//! sealed 01795618051458572015.wal 1289 1 8
//! sealed 01795618051462123597.wal 0 - -
//! active 01795618051466426396.wal 9
//! crc32 e296f99e
//! ```
//!
//! The last line is the CRC-32 of every byte before it. A record that does
//! not parse is reported and rebuilt, never trusted.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Error, Result};
use crate::format::record::checksum;
use crate::segment::SegmentId;
use crate::seq::Seq;
use crate::storage::{write_atomically, OpenMode, PathKind, Storage};

/// The record's file name in the log directory.
pub const RECORD_FILE: &str = "ironwal-segments";
/// The temporary file a new record is written to before the rename.
const TEMP_FILE: &str = "ironwal-segments.tmp";
/// The first line: format name and version.
const MAGIC: &str = "ironwal-segments 1";
/// A record longer than this is not one (a segment line is under 80 bytes;
/// this allows over 100,000 segments).
const MAX_LEN: u64 = 8 << 20;

/// A sealed segment as the record lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SealedSegment {
    pub(crate) id: SegmentId,
    /// Bytes of log in it (the file may hold zeros after them only if it
    /// was sealed by an ironwal older than the record).
    pub(crate) len: u64,
    pub(crate) first: Option<Seq>,
    pub(crate) last: Option<Seq>,
}

/// The writer's account of its segments.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SegmentRecord {
    /// Sealed segments, in log order.
    pub(crate) sealed: Vec<SealedSegment>,
    /// The active segment and the sequence its first entry has (or will
    /// have).
    pub(crate) active: Option<(SegmentId, Seq)>,
}

/// A record as loaded: the record if it is there and reads, and what was
/// found.
pub(crate) type Loaded = (Option<SegmentRecord>, RecordState);

/// What the directory holds in the way of a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordState {
    /// No record: a log written by kevo, or by an ironwal before the record
    /// existed. Sequence gaps are reported as information only.
    Absent,
    /// A record was found and the log was checked against it.
    Checked,
    /// A record was found but is damaged; the log was read as if it had
    /// none (and a `Wal` opening it writes a new one).
    Unreadable {
        /// What is wrong with it.
        reason: String,
    },
}

/// What the reader should find in one segment, from the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Nothing: no record, or a segment older than the record's oldest
    /// (one that retention listed as gone but had not removed yet).
    Nothing,
    /// A sealed segment: exactly this much log and these sequences.
    Sealed {
        len: u64,
        first: Option<Seq>,
        last: Option<Seq>,
    },
    /// The active segment: its first entry, if it has one, is `first`.
    Active { first: Seq },
    /// Newer than every recorded segment (made by a rotation whose record
    /// update a crash cut off): continues the sequence.
    Continues,
    /// Between recorded segments, but not recorded.
    Unrecorded,
}

/// A recorded segment missing from the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Missing {
    pub(crate) id: SegmentId,
    /// Its recorded length (0 for the active one).
    pub(crate) len: u64,
    /// Index of the first present segment after it (the number of present
    /// segments if none).
    pub(crate) before: usize,
}

impl SegmentRecord {
    /// The record as its file holds it.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let seq = |s: Option<Seq>| s.map_or_else(|| "-".to_owned(), |s| s.to_string());
        let mut text = format!("{MAGIC}\n");
        for s in &self.sealed {
            let (first, last) = (seq(s.first), seq(s.last));
            let _ = writeln!(text, "sealed {} {} {first} {last}", s.id.file_name(), s.len);
        }
        if let Some((id, first)) = self.active {
            let _ = writeln!(text, "active {} {first}", id.file_name());
        }
        let crc = checksum(text.as_bytes());
        let _ = writeln!(text, "crc32 {crc:08x}");
        text.into_bytes()
    }

    /// Parses a record file; the error says what is wrong with it.
    pub(crate) fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())?;
        let body_end = text
            .strip_suffix('\n')
            .and_then(|t| t.rfind('\n'))
            .map(|i| i + 1)
            .ok_or("no checksum line")?;
        let (body, crc_line) = text.split_at(body_end);
        let computed = checksum(body.as_bytes());
        if crc_line != format!("crc32 {computed:08x}\n") {
            return Err(format!(
                "checksum line {:?} does not match the contents ({computed:08x})",
                crc_line.trim_end()
            ));
        }
        let mut lines = body.lines();
        if lines.next() != Some(MAGIC) {
            return Err(format!("not a segment record (expected {MAGIC:?} first)"));
        }
        let mut record = SegmentRecord::default();
        for (n, line) in lines.enumerate() {
            let bad = || format!("line {}: cannot read {line:?}", n + 2);
            let fields: Vec<&str> = line.split(' ').collect();
            let id = |name: &str| SegmentId::parse(name).ok_or_else(bad);
            let number = |s: &str| s.parse::<u64>().map_err(|_| bad());
            let seq = |s: &str| match s {
                "-" => Ok(None),
                s => number(s).map(|n| Some(Seq::new(n))),
            };
            match fields.as_slice() {
                ["sealed", name, len, first, last] if record.active.is_none() => {
                    record.sealed.push(SealedSegment {
                        id: id(name)?,
                        len: number(len)?,
                        first: seq(first)?,
                        last: seq(last)?,
                    })
                }
                ["active", name, first] if record.active.is_none() => {
                    record.active = Some((id(name)?, Seq::new(number(first)?)))
                }
                _ => return Err(bad()),
            }
        }
        let ids: Vec<SegmentId> = record.ids().collect();
        if ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err("segments out of order".to_owned());
        }
        Ok(record)
    }

    /// Every recorded segment id, in log order.
    fn ids(&self) -> impl Iterator<Item = SegmentId> + '_ {
        self.sealed
            .iter()
            .map(|s| s.id)
            .chain(self.active.map(|(id, _)| id))
    }

    /// Reads the record of `dir`, if it has one.
    pub(crate) fn load(storage: &dyn Storage, dir: &Path) -> Result<Loaded> {
        let path = dir.join(RECORD_FILE);
        if storage.kind_of(&path).map_err(Error::io(&path))? != PathKind::File {
            return Ok((None, RecordState::Absent));
        }
        let file = storage
            .open(&path, OpenMode::Read)
            .map_err(Error::io(&path))?;
        let len = file.len().map_err(Error::io(&path))?;
        if len > MAX_LEN {
            let reason = format!("{len} bytes, more than a record can be");
            return Ok((None, RecordState::Unreadable { reason }));
        }
        let mut bytes = vec![0u8; len as usize];
        let read = crate::storage::read_up_to(&*file, &mut bytes, 0).map_err(Error::io(&path))?;
        bytes.truncate(read);
        Ok(match SegmentRecord::decode(&bytes) {
            Ok(record) => (Some(record), RecordState::Checked),
            Err(reason) => {
                tracing::warn!(record = %path.display(), %reason, "ignoring a damaged segment record");
                (None, RecordState::Unreadable { reason })
            }
        })
    }

    /// Replaces the record of `dir` atomically and durably.
    pub(crate) fn store(&self, storage: &dyn Storage, dir: &Path) -> Result<()> {
        write_atomically(storage, dir, TEMP_FILE, RECORD_FILE, &self.encode())
    }

    /// What to expect of each present segment (`present`, in log order),
    /// and which recorded segments are missing.
    pub(crate) fn expectations(&self, present: &[SegmentId]) -> (Vec<Expect>, Vec<Missing>) {
        let (Some(oldest), Some(newest)) = (self.ids().next(), self.ids().last()) else {
            return (vec![Expect::Nothing; present.len()], Vec::new());
        };
        let expect = present
            .iter()
            .map(|&id| {
                if let Some(s) = self.sealed.iter().find(|s| s.id == id) {
                    Expect::Sealed {
                        len: s.len,
                        first: s.first,
                        last: s.last,
                    }
                } else if let Some((_, first)) = self.active.filter(|(a, _)| *a == id) {
                    Expect::Active { first }
                } else if id < oldest {
                    Expect::Nothing
                } else if id > newest {
                    Expect::Continues
                } else {
                    Expect::Unrecorded
                }
            })
            .collect();
        let recorded_len =
            |id: SegmentId| self.sealed.iter().find(|s| s.id == id).map_or(0, |s| s.len);
        let missing = self
            .ids()
            .filter(|id| present.binary_search(id).is_err())
            .map(|id| Missing {
                id,
                len: recorded_len(id),
                before: present.partition_point(|p| *p < id),
            })
            .collect();
        (expect, missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;

    fn record() -> SegmentRecord {
        SegmentRecord {
            sealed: vec![
                SealedSegment {
                    id: SegmentId::new(10),
                    len: 1289,
                    first: Some(Seq::new(1)),
                    last: Some(Seq::new(8)),
                },
                SealedSegment {
                    id: SegmentId::new(20),
                    len: 0,
                    first: None,
                    last: None,
                },
            ],
            active: Some((SegmentId::new(30), Seq::new(9))),
        }
    }

    #[test]
    fn encodes_and_decodes() {
        let r = record();
        let bytes = r.encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("ironwal-segments 1\nsealed 00000000000000000010.wal 1289 1 8\n"));
        assert_eq!(SegmentRecord::decode(&bytes), Ok(r));
        assert_eq!(
            SegmentRecord::decode(&SegmentRecord::default().encode()),
            Ok(SegmentRecord::default())
        );
    }

    /// The example in the module docs (and docs/format.md) is a valid record.
    #[test]
    fn the_documented_example_reads() {
        let text = "ironwal-segments 1\n\
                    sealed 01795618051458572015.wal 1289 1 8\n\
                    sealed 01795618051462123597.wal 0 - -\n\
                    active 01795618051466426396.wal 9\n\
                    crc32 e296f99e\n";
        let record = SegmentRecord::decode(text.as_bytes()).unwrap();
        assert_eq!(record.sealed.len(), 2);
        assert_eq!(record.sealed[0].last, Some(Seq::new(8)));
        assert_eq!(record.sealed[1].first, None);
        assert_eq!(
            record.active,
            Some((SegmentId::new(1_795_618_051_466_426_396), Seq::new(9)))
        );
        assert_eq!(record.encode(), text.as_bytes());
    }

    #[test]
    fn damage_is_an_error_never_a_panic() {
        let bytes = record().encode();
        for cut in 0..bytes.len() {
            assert!(
                SegmentRecord::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[i] ^= 1 << bit;
                assert!(
                    SegmentRecord::decode(&damaged).is_err(),
                    "bit {bit} of byte {i}"
                );
            }
        }
        for junk in [
            &b""[..],
            b"\n",
            b"\xff\xfe",
            b"crc32 00000000\n",
            b"x\ncrc32 zz\n",
        ] {
            assert!(SegmentRecord::decode(junk).is_err());
        }
    }

    #[test]
    fn stores_atomically_and_loads_back() {
        let storage = MemStorage::new();
        let dir = Path::new("/log");
        storage.create_dir_all(dir).unwrap();
        assert_eq!(
            SegmentRecord::load(&storage, dir).unwrap(),
            (None, RecordState::Absent)
        );
        record().store(&storage, dir).unwrap();
        record().store(&storage, dir).unwrap();
        assert_eq!(
            SegmentRecord::load(&storage, dir).unwrap(),
            (Some(record()), RecordState::Checked)
        );
        let names = storage.list(dir).unwrap();
        assert_eq!(names, [RECORD_FILE]);
    }

    #[test]
    fn expectations_place_missing_and_unrecorded_segments() {
        let r = record();
        let ids = |raw: &[u64]| raw.iter().map(|&i| SegmentId::new(i)).collect::<Vec<_>>();
        let (expect, missing) = r.expectations(&ids(&[5, 10, 15, 30, 40]));
        assert_eq!(expect[0], Expect::Nothing);
        assert!(matches!(expect[1], Expect::Sealed { len: 1289, .. }));
        assert_eq!(expect[2], Expect::Unrecorded);
        assert_eq!(expect[3], Expect::Active { first: Seq::new(9) });
        assert_eq!(expect[4], Expect::Continues);
        assert_eq!(
            missing,
            [Missing {
                id: SegmentId::new(20),
                len: 0,
                before: 3
            }]
        );
        let (_, missing) = r.expectations(&ids(&[10, 20]));
        assert_eq!(missing[0].id, SegmentId::new(30));
        assert_eq!(missing[0].before, 2);
    }
}
