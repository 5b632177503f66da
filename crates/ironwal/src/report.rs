//! What reading a log found: the recovery modes that decide what to do with
//! damage, and the reports that account for every byte not used.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::CorruptionKind;
use crate::segment::SegmentId;
use crate::segment_record::RecordState;
use crate::seq::Seq;

/// What recovery does with bytes that are not a valid log (after RocksDB's
/// `WALRecoveryMode`). A zero-filled tail is a clean end in every mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RecoveryMode {
    /// An incomplete or damaged record at the very end of the log is a torn
    /// write: dropped, reported, and truncated away when a `Wal` opens.
    /// Damage followed by any valid record is an error naming the segment and
    /// offset.
    #[default]
    TolerateTornTail,
    /// Any invalid byte, torn tail included, is an error.
    Strict,
    /// The log ends at the first damage; everything after it, later segments
    /// included, is reported and ignored.
    PointInTime,
    /// Damaged ranges are skipped and reported; reading resumes at the next
    /// valid record. For salvage, not for normal operation. One limit: if
    /// the damage destroys the header record of a kevo header-form batch,
    /// its surviving later entries carry nothing that marks them as batch
    /// members and come back as single entries. (ironwal writes batches as
    /// one record, which this cannot happen to.)
    SkipCorrupted,
}

impl RecoveryMode {
    /// Every mode, for iteration in tests and tools.
    pub const ALL: [RecoveryMode; 4] = [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::Strict,
        RecoveryMode::PointInTime,
        RecoveryMode::SkipCorrupted,
    ];

    /// The mode's name as the CLI spells it (`tolerate-torn-tail`, …).
    pub fn name(self) -> &'static str {
        match self {
            RecoveryMode::TolerateTornTail => "tolerate-torn-tail",
            RecoveryMode::Strict => "strict",
            RecoveryMode::PointInTime => "point-in-time",
            RecoveryMode::SkipCorrupted => "skip-corrupted",
        }
    }
}

impl fmt::Display for RecoveryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A recovery mode name that is not one of the four.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown recovery mode {0:?} (expected tolerate-torn-tail, strict, point-in-time or skip-corrupted)")]
pub struct UnknownMode(pub String);

impl FromStr for RecoveryMode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, UnknownMode> {
        RecoveryMode::ALL
            .into_iter()
            .find(|mode| mode.name() == s)
            .ok_or_else(|| UnknownMode(s.to_owned()))
    }
}

/// Why a byte range was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropCause {
    /// Damage at the very end of the log, with no valid record after it: an
    /// interrupted write.
    TornTail,
    /// Damage with valid records after it (skipped under `SkipCorrupted`,
    /// the end of the recovered log under `PointInTime`).
    Corruption,
}

/// A byte range of a segment that recovery did not use.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DroppedRange {
    /// The segment file.
    pub segment: PathBuf,
    /// First byte of the range: the damaged record, or the start of the entry
    /// or batch it broke.
    pub offset: u64,
    /// Length of the range in bytes.
    pub len: u64,
    /// What was wrong at its start.
    pub kind: CorruptionKind,
    /// Torn tail or corruption.
    pub cause: DropCause,
}

/// What recovery found in one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentReport {
    /// The segment file.
    pub path: PathBuf,
    /// Its id, if its name is a segment name.
    pub id: Option<SegmentId>,
    /// Bytes in the file when it was read.
    pub len: u64,
    /// Where the readable log ends in this segment: the end of the file, the
    /// start of a zero-filled tail, or the start of a torn or corrupt tail.
    pub valid_len: u64,
    /// Operations recovered from it (batches count each operation).
    pub entries: u64,
    /// Lowest sequence recovered from it.
    pub first_seq: Option<Seq>,
    /// Highest sequence recovered from it.
    pub last_seq: Option<Seq>,
}

/// Everything a recovery pass found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The mode it ran under.
    pub mode: RecoveryMode,
    /// The segments read, in log order.
    pub segments: Vec<SegmentReport>,
    /// Operations recovered (each operation of a batch counts).
    pub entries: u64,
    /// Batches recovered (of either form).
    pub batches: u64,
    /// Bytes of the records that made up the recovered entries.
    pub bytes: u64,
    /// Highest sequence recovered.
    pub highest_seq: Option<Seq>,
    /// Highest sequence any checksum-valid record names, recovered or not
    /// (a skipped batch's operations count). A log reopened under
    /// `SkipCorrupted` continues above it, so no new entry can take the
    /// number of one still in the log.
    pub claimed_seq: Option<Seq>,
    /// Every range dropped or skipped, in log order.
    pub dropped: Vec<DroppedRange>,
    /// Segments not used: those after the recovery point (`PointInTime`),
    /// and those out of place by the segment record (`PointInTime`,
    /// `SkipCorrupted`). A `Wal` opening the log moves them aside.
    pub ignored_segments: Vec<PathBuf>,
    /// Whether the log has a segment record, and whether the segments were
    /// checked against it (a missing, shortened or swapped segment is then
    /// corruption, in `dropped` or an error).
    pub record: RecordState,
    /// Where the sequence jumps ahead between one entry and the next. For
    /// information: kevo burns sequence numbers on some failed writes, so a
    /// gap alone proves no loss; in a log with a segment record, a gap where
    /// a segment begins is checked against the record.
    pub gaps: Vec<SequenceGap>,
    /// Read beside a live writer (another handle held the log's lock): the
    /// bytes at the end of the active segment that were still being written
    /// when the reader got there, and stayed unreadable while it waited.
    /// Not damage: the writer's work in progress. `None` when the log was
    /// not live or its end was clean.
    pub in_flight: Option<u64>,
    /// Segments that were listed when reading began and were gone when the
    /// reader got to them: removed meanwhile (by a live writer's
    /// retention). They are skipped; entries they held that the reader had
    /// not yet returned show in [`Self::gaps`].
    pub removed_segments: Vec<PathBuf>,
}

/// A jump in the sequence: the entry at `offset` of `segment` is numbered
/// `next`, the one before it `after`, and `after + 1 < next`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SequenceGap {
    /// The segment holding the entry after the gap.
    pub segment: PathBuf,
    /// The byte offset of that entry.
    pub offset: u64,
    /// The sequence before the gap.
    pub after: Seq,
    /// The sequence after the gap.
    pub next: Seq,
}

impl RecoveryReport {
    pub(crate) fn new(mode: RecoveryMode) -> Self {
        RecoveryReport {
            mode,
            segments: Vec::new(),
            entries: 0,
            batches: 0,
            bytes: 0,
            highest_seq: None,
            claimed_seq: None,
            dropped: Vec::new(),
            ignored_segments: Vec::new(),
            record: RecordState::Absent,
            gaps: Vec::new(),
            in_flight: None,
            removed_segments: Vec::new(),
        }
    }

    /// Whether nothing at all was dropped or ignored.
    pub fn is_clean(&self) -> bool {
        self.dropped.is_empty() && self.ignored_segments.is_empty()
    }

    /// The torn tail, if one was dropped.
    pub fn torn_tail(&self) -> Option<&DroppedRange> {
        self.dropped.iter().find(|d| d.cause == DropCause::TornTail)
    }

    /// Whether any corruption (as opposed to a torn tail) was found.
    pub fn has_corruption(&self) -> bool {
        self.dropped
            .iter()
            .any(|d| d.cause == DropCause::Corruption)
            || !self.ignored_segments.is_empty()
    }
}
