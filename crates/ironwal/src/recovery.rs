//! Recovery: reading a whole log under a [`RecoveryMode`], telling a torn tail
//! from corruption, and reporting every byte range that was not used.
//!
//! A bad record (or an entry left incomplete) is a torn tail only if no valid
//! record follows it anywhere in the log: a crash can only damage the end.
//! Anything else is corruption, and what happens to it is the mode's call.
//! This module reads and judges; it never writes (truncating a torn tail is
//! the `Wal`'s job on open).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use crate::error::{CorruptionKind, Error, Result};
use crate::format::Op;
use crate::reader::{Assembler, Problem, Resync, Scan, SegmentScanner, Slot, Step};
use crate::segment::{list_segments, SegmentId};
use crate::segment_record::{Expect, Loaded, Missing, RecordState, SegmentRecord};
use crate::seq::Seq;
use crate::storage::{default_storage, OpenMode, PathKind, Storage, StorageFile};

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
    fn new(mode: RecoveryMode) -> Self {
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

/// One operation read from the log, owning its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Sequence number.
    pub seq: Seq,
    /// Operation.
    pub op: Op,
    /// Key.
    pub key: Vec<u8>,
    /// Value; `None` exactly for deletes.
    pub value: Option<Vec<u8>>,
}

/// One operation read from the log, borrowing the reader's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// Sequence number.
    pub seq: Seq,
    /// Operation.
    pub op: Op,
    /// Key.
    pub key: &'a [u8],
    /// Value; `None` exactly for deletes.
    pub value: Option<&'a [u8]>,
}

impl EntryRef<'_> {
    /// Copies the entry out of the reader's buffer.
    pub fn to_entry(&self) -> Entry {
        Entry {
            seq: self.seq,
            op: self.op,
            key: self.key.to_vec(),
            value: self.value.map(<[u8]>::to_vec),
        }
    }
}

/// A segment to read, and how much of it.
#[derive(Clone, Debug)]
pub(crate) struct Source {
    pub(crate) id: Option<SegmentId>,
    pub(crate) path: PathBuf,
    /// Read at most this many bytes (a live writer's durable length).
    pub(crate) limit: Option<u64>,
}

/// A whole item read by [`LogReader::next_item`]: one operation, or the
/// operations of one batch.
#[derive(Clone, Copy, Debug)]
pub struct Item<'a> {
    arena: &'a [u8],
    slots: &'a [Slot],
    batch: bool,
    segment: &'a Path,
}

impl<'a> Item<'a> {
    /// The segment file the item was read from.
    pub fn segment(&self) -> &'a Path {
        self.segment
    }

    /// Whether the operations were written as one batch.
    pub fn is_batch(&self) -> bool {
        self.batch
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the item has no operation (never, for an item returned by
    /// `next_item`).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The operations, in order.
    pub fn iter(&self) -> impl Iterator<Item = EntryRef<'a>> + 'a {
        let arena = self.arena;
        self.slots
            .iter()
            .filter_map(move |slot| slot.resolve(arena))
    }
}

/// Reads the operations of a log directory or a single segment file in
/// order, under a [`RecoveryMode`], never writing anything.
///
/// Batches come out flattened into their operations, and always whole: an
/// incomplete batch yields nothing. Memory stays bounded by the largest entry
/// (or batch), whatever the size of the files.
///
/// ```
/// # fn main() -> Result<(), ironwal::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let wal = ironwal::Wal::open(dir.path(), ironwal::Options::default())?;
/// # wal.put(b"k", b"v")?;
/// # wal.close()?;
/// use ironwal::{LogReader, RecoveryMode};
///
/// let mut reader = LogReader::open(dir.path(), RecoveryMode::TolerateTornTail)?;
/// while let Some(entry) = reader.next_entry()? {
///     println!("{} {:?} {:?}", entry.seq, entry.op, entry.key);
/// }
/// println!("{} entries, clean: {}", reader.report().entries, reader.report().is_clean());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LogReader {
    storage: Arc<dyn Storage>,
    mode: RecoveryMode,
    from: Seq,
    sources: Vec<Source>,
    next_source: usize,
    /// Whether each source holds a valid record, once asked.
    holds_valid: Vec<Option<bool>>,
    /// What the segment record says of each source (empty without one).
    expect: Vec<Expect>,
    /// Recorded segments missing from `sources`, in log order; those before
    /// `next_missing` have been dealt with.
    missing: Vec<Missing>,
    next_missing: usize,
    /// Whether a missing segment was reported just before the current one.
    missing_before_current: bool,
    /// The directory the segment record describes.
    record_dir: PathBuf,
    scanner: Option<SegmentScanner>,
    /// Path of the segment `scanner` reads.
    path: PathBuf,
    asm: Assembler,
    /// Offset of the first record of the item being assembled.
    item_start: Option<u64>,
    slots: Vec<Slot>,
    next_slot: usize,
    /// Whether the current item is a batch.
    item_is_batch: bool,
    /// Bytes of the segments already read.
    done_bytes: u64,
    report: RecoveryReport,
    done: bool,
}

impl LogReader {
    /// Reads a log directory, or a single segment file, from the real file
    /// system.
    pub fn open(path: impl AsRef<Path>, mode: RecoveryMode) -> Result<Self> {
        Self::open_with(default_storage(), path, mode)
    }

    /// Reads a log directory or segment file through `storage`.
    pub fn open_with(
        storage: Arc<dyn Storage>,
        path: impl AsRef<Path>,
        mode: RecoveryMode,
    ) -> Result<Self> {
        let path = path.as_ref();
        let source = |id, path| Source {
            id,
            path,
            limit: None,
        };
        match storage.kind_of(path).map_err(Error::io(path))? {
            PathKind::Missing => Err(Error::NotFound {
                path: path.to_path_buf(),
            }),
            PathKind::Dir => {
                let (segments, (record, state)) = consistent_listing(&*storage, path)?;
                let sources = segments
                    .into_iter()
                    .map(|(id, path)| source(Some(id), path))
                    .collect();
                Ok(Self::from_sources(storage, sources, mode).with_record(
                    path,
                    record.as_ref(),
                    state,
                ))
            }
            PathKind::File => {
                let id = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(SegmentId::parse);
                let sources = vec![source(id, path.to_path_buf())];
                Ok(Self::from_sources(storage, sources, mode))
            }
        }
    }

    /// Checks the segments against the log's segment record as they are
    /// read (`record` is `None` when there is none, or it is unreadable).
    pub(crate) fn with_record(
        mut self,
        dir: &Path,
        record: Option<&SegmentRecord>,
        state: RecordState,
    ) -> Self {
        self.report.record = state;
        self.record_dir = dir.to_path_buf();
        if let Some(record) = record {
            let ids: Vec<SegmentId> = self.sources.iter().filter_map(|s| s.id).collect();
            if ids.len() == self.sources.len() {
                (self.expect, self.missing) = record.expectations(&ids);
            }
        }
        self
    }

    pub(crate) fn from_sources(
        storage: Arc<dyn Storage>,
        sources: Vec<Source>,
        mode: RecoveryMode,
    ) -> Self {
        LogReader {
            storage,
            mode,
            from: Seq::ZERO,
            holds_valid: vec![None; sources.len()],
            expect: Vec::new(),
            missing: Vec::new(),
            next_missing: 0,
            missing_before_current: false,
            record_dir: PathBuf::new(),
            sources,
            next_source: 0,
            scanner: None,
            path: PathBuf::new(),
            asm: Assembler::default(),
            item_start: None,
            slots: Vec::new(),
            next_slot: 0,
            item_is_batch: false,
            done_bytes: 0,
            report: RecoveryReport::new(mode),
            done: false,
        }
    }

    /// Yields only operations with a sequence of at least `seq` (the log is
    /// still read, and judged, from its start).
    pub fn from_seq(mut self, seq: Seq) -> Self {
        self.from = seq;
        self
    }

    /// What has been found so far; complete once [`Self::next_entry`] has
    /// returned `Ok(None)`.
    pub fn report(&self) -> &RecoveryReport {
        &self.report
    }

    /// Reads to the end and returns the report.
    pub fn finish(mut self) -> Result<RecoveryReport> {
        while self.next_entry()?.is_some() {}
        Ok(self.report)
    }

    /// The next operation, borrowing the reader's buffer; `Ok(None)` at the
    /// end of the log. After an error, the reader yields nothing more.
    pub fn next_entry(&mut self) -> Result<Option<EntryRef<'_>>> {
        while self.next_slot >= self.slots.len() {
            if self.done {
                return Ok(None);
            }
            if let Err(e) = self.advance() {
                self.done = true;
                self.slots.clear();
                return Err(e);
            }
        }
        let slot = self.slots.get(self.next_slot);
        self.next_slot += 1;
        Ok(slot.and_then(|slot| slot.resolve(self.asm.arena())))
    }

    /// The rest of the current item, or the next whole item: one operation,
    /// or every operation of one batch (as far as `from_seq` lets through).
    /// For tools that must keep batches together (`ironwal repair`); do not
    /// mix with [`Self::next_entry`] on the same item.
    pub fn next_item(&mut self) -> Result<Option<Item<'_>>> {
        if self.next_slot >= self.slots.len() {
            self.next_slot = self.slots.len();
            if self.next_entry()?.is_none() {
                return Ok(None);
            }
            self.next_slot -= 1;
        }
        let slots = self.slots.get(self.next_slot..).unwrap_or_default();
        self.next_slot = self.slots.len();
        Ok(Some(Item {
            arena: self.asm.arena(),
            slots,
            batch: self.item_is_batch,
            segment: &self.path,
        }))
    }

    /// Bytes of the log read so far (segments done, plus the position in
    /// the current one): with [`Self::total_len`], a progress measure.
    pub fn position(&self) -> u64 {
        self.done_bytes + self.scanner.as_ref().map_or(0, SegmentScanner::pos)
    }

    /// Bytes in all the segments to read (their lengths now).
    pub fn total_len(&self) -> Result<u64> {
        let mut total = 0;
        for index in 0..self.sources.len() {
            total += self.open_source(index)?.map_or(0, |(_, len)| len);
        }
        Ok(total)
    }

    /// Reads records until an item with operations to yield is ready, or the
    /// log ends.
    fn advance(&mut self) -> Result<()> {
        self.asm.consume();
        self.item_start = None;
        self.slots.clear();
        self.next_slot = 0;
        while !self.done {
            let Some(scanner) = self.scanner.as_mut() else {
                self.open_next()?;
                continue;
            };
            let problem = match scanner.next().map_err(Error::io(&self.path))? {
                Scan::Record {
                    offset,
                    kind,
                    payload,
                } => {
                    self.item_start.get_or_insert(offset);
                    match self.asm.push(offset, kind, payload) {
                        Step::Pending => continue,
                        Step::Ready => {
                            if let Some((offset, kind)) = self.take_item() {
                                let len = scanner_len(&self.scanner) - offset;
                                let path = self.path.clone();
                                self.on_record_problem(path, offset, len, kind)?;
                                continue;
                            }
                            if self.slots.is_empty() {
                                continue;
                            }
                            return Ok(());
                        }
                        Step::Problem(problem) => problem,
                    }
                }
                Scan::End => match self.asm.finish_segment() {
                    Some(problem) => problem,
                    None => {
                        let len = scanner.len();
                        self.end_segment(len)?;
                        continue;
                    }
                },
                Scan::ZeroTail { offset } => match self.asm.finish_segment() {
                    Some(problem) => problem,
                    None => {
                        self.end_segment(offset)?;
                        continue;
                    }
                },
                Scan::Bad { offset, kind } => Problem::bad_record(offset, kind),
            };
            self.on_problem(problem)?;
        }
        Ok(())
    }

    /// The report of the segment being read.
    fn segment_report(&mut self) -> Option<&mut SegmentReport> {
        self.report.segments.last_mut()
    }

    fn open_source(&self, index: usize) -> Result<Option<(Arc<dyn StorageFile>, u64)>> {
        let Some(source) = self.sources.get(index) else {
            return Ok(None);
        };
        let file = self
            .storage
            .open(&source.path, OpenMode::Read)
            .map_err(Error::io(&source.path))?;
        let len = file.len().map_err(Error::io(&source.path))?;
        Ok(Some((
            file,
            source.limit.map_or(len, |limit| limit.min(len)),
        )))
    }

    fn open_next(&mut self) -> Result<()> {
        let index = self.next_source;
        if self.stopped_at_missing(index)? {
            return Ok(());
        }
        let Some((file, len)) = self.open_source(index)? else {
            self.done = true;
            return Ok(());
        };
        self.next_source += 1;
        let source = &self.sources[index];
        self.report.segments.push(SegmentReport {
            path: source.path.clone(),
            id: source.id,
            len,
            valid_len: 0,
            entries: 0,
            first_seq: None,
            last_seq: None,
        });
        self.scanner = Some(SegmentScanner::new(file, len));
        self.path.clone_from(&source.path);
        self.asm.start_segment();
        if self.expect.get(index) == Some(&Expect::Unrecorded) {
            let path = self.path.clone();
            self.on_record_problem(path, 0, len, CorruptionKind::UnrecordedSegment)?;
        }
        Ok(())
    }

    /// Deals with the recorded segments missing before source `index` (all
    /// that are left, at the end); `Ok(true)` if the log ends there.
    fn stopped_at_missing(&mut self, index: usize) -> Result<bool> {
        self.missing_before_current = false;
        while !self.done {
            let Some(missing) = self.missing.get(self.next_missing) else {
                break;
            };
            if missing.before > index {
                break;
            }
            let (path, len) = (self.record_dir.join(missing.id.file_name()), missing.len);
            self.next_missing += 1;
            self.missing_before_current = true;
            self.on_record_problem(path, 0, len, CorruptionKind::SegmentMissing)?;
            if self.done {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// What the segment record says of the segment being read.
    fn expected(&self) -> Expect {
        self.next_source
            .checked_sub(1)
            .and_then(|i| self.expect.get(i))
            .copied()
            .unwrap_or(Expect::Nothing)
    }

    /// The sequence the current segment's first entry must have, if the
    /// segment record says.
    fn expected_first(&self) -> Option<u64> {
        match self.expected() {
            Expect::Sealed { first, .. } => first,
            Expect::Active { first } => Some(first),
            // After a missing segment, where the log continues is unknown.
            Expect::Continues if !self.missing_before_current => {
                self.report.highest_seq.map(|s| s.get() + 1)
            }
            Expect::Continues | Expect::Nothing | Expect::Unrecorded => None,
        }
    }

    /// Whether the first entry read from the current segment, `first` at
    /// byte `start`, shows the segment out of place; if so, the sequence
    /// the segment should start with. At byte 0 the entry must be exactly
    /// that one; after damage skipped at the segment's start (salvage) it
    /// must at least lie among the segment's sequences.
    fn out_of_place(&self, first: u64, start: u64) -> Option<u64> {
        let expected = self.expected_first()?;
        let fits = match self.expected() {
            _ if start == 0 => first == expected,
            Expect::Sealed {
                last: Some(last), ..
            } => (expected..=last).contains(&first),
            _ => first >= expected,
        };
        (!fits).then_some(expected)
    }

    /// The current segment ended where its log ends (`valid_len`): checks
    /// a sealed one against the segment record.
    fn end_segment(&mut self, valid_len: u64) -> Result<()> {
        self.close_segment(valid_len);
        let Expect::Sealed { len, last, .. } = self.expected() else {
            return Ok(());
        };
        if self.report.dropped.iter().any(|d| d.segment == self.path) {
            // Damage was skipped in it (salvage): it explains a shorter
            // segment or an earlier last entry, and is reported already.
            return Ok(());
        }
        let found_last = self.segment_report().and_then(|s| s.last_seq).map(Seq::get);
        let kind = if valid_len != len {
            CorruptionKind::SegmentLength {
                recorded: len,
                found: valid_len,
            }
        } else if found_last != last {
            CorruptionKind::LastSequence {
                recorded: last.unwrap_or(0),
                found: found_last.unwrap_or(0),
            }
        } else {
            return Ok(());
        };
        let path = self.path.clone();
        self.on_record_problem(path, valid_len, len.saturating_sub(valid_len), kind)
    }

    /// A segment does not match the segment record: corruption, never a
    /// torn tail (a crash cannot do it), dealt with as the mode says.
    /// `offset..offset + len` is what of the segment cannot be used. A
    /// segment out of place (its first entry is not where the log goes on,
    /// or the record does not list it) is set aside whole: listed with the
    /// ignored segments, which a `Wal` opening the log moves aside.
    fn on_record_problem(
        &mut self,
        segment: PathBuf,
        offset: u64,
        len: u64,
        kind: CorruptionKind,
    ) -> Result<()> {
        tracing::warn!(segment = %segment.display(), offset, %kind, "the log does not match its segment record");
        if matches!(
            self.mode,
            RecoveryMode::Strict | RecoveryMode::TolerateTornTail
        ) {
            self.done = true;
            return Err(Error::Corruption {
                segment,
                offset,
                kind,
            });
        }
        self.drop_range(segment.clone(), offset, len, kind, DropCause::Corruption);
        let reading = self.scanner.is_some() && self.path == segment;
        let out_of_place = matches!(
            kind,
            CorruptionKind::SequenceGap { .. } | CorruptionKind::UnrecordedSegment
        );
        if reading && out_of_place {
            self.asm.abandon();
            self.report.segments.pop();
            self.done_bytes += self.scanner.take().map_or(0, |s| s.len());
            self.report.ignored_segments.push(segment);
        } else if reading {
            self.asm.abandon();
            self.close_segment(offset);
        }
        match self.mode {
            RecoveryMode::PointInTime => self.stop(false),
            _ => Ok(()),
        }
    }

    fn close_segment(&mut self, valid_len: u64) {
        if let Some(segment) = self.segment_report() {
            segment.valid_len = valid_len;
        }
        self.done_bytes += self.scanner.take().map_or(0, |s| s.len());
    }

    /// Records the complete item in the report and lists its operations.
    /// Returns where and how the item breaks the segment record, if it does
    /// (and the mode does not read on): its operations are then not listed.
    fn take_item(&mut self) -> Option<(u64, CorruptionKind)> {
        let end = self.scanner.as_ref().map_or(0, SegmentScanner::pos);
        let start = self.item_start.take().unwrap_or(end);
        let item = self.asm.list_ops(self.from, &mut self.slots);
        let starts_segment = self.segment_report().is_some_and(|s| s.first_seq.is_none());
        if let (Some(first), true) = (item.first, starts_segment) {
            if let Some(expected) = self.out_of_place(first.get(), start) {
                let kind = CorruptionKind::SequenceGap {
                    expected,
                    found: first.get(),
                };
                // The segment is out of place (or one before it is lost):
                // none of it is yielded, in any mode, so nothing comes out of
                // order. What it claims still counts, so no new entry takes
                // one of its numbers.
                self.slots.clear();
                self.report.claimed_seq = self.asm.claimed().map(Seq::new);
                return Some((start, kind));
            }
        }
        if let (Some(first), Some(before)) = (item.first, self.report.highest_seq) {
            if first.get() > before.get() + 1 {
                self.report.gaps.push(SequenceGap {
                    segment: self.path.clone(),
                    offset: start,
                    after: before,
                    next: first,
                });
            }
        }
        self.item_is_batch = item.batch;
        let report = &mut self.report;
        report.claimed_seq = self.asm.claimed().map(Seq::new);
        report.entries += item.ops;
        report.batches += u64::from(item.batch);
        report.bytes += end - start;
        report.highest_seq = report.highest_seq.max(item.last);
        if let Some(segment) = self.segment_report() {
            segment.entries += item.ops;
            segment.valid_len = end;
            if segment.first_seq.is_none() {
                segment.first_seq = item.first;
            }
            segment.last_seq = segment.last_seq.max(item.last);
        }
        None
    }

    /// Whether any valid record exists after the problem: in the rest of this
    /// segment or in any later one.
    fn valid_after(&mut self, problem: &Problem) -> Result<bool> {
        if problem.record_valid {
            return Ok(true);
        }
        if let (Resync::SkipFrom(offset), Some(scanner)) = (problem.resync, self.scanner.as_mut()) {
            let found = scanner
                .find_valid_record(offset + 1)
                .map_err(Error::io(&self.path))?;
            if found.is_some() {
                return Ok(true);
            }
        }
        for index in self.next_source..self.sources.len() {
            if self.source_holds_valid(index)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn source_holds_valid(&mut self, index: usize) -> Result<bool> {
        if let Some(Some(known)) = self.holds_valid.get(index) {
            return Ok(*known);
        }
        let Some((file, len)) = self.open_source(index)? else {
            return Ok(false);
        };
        let path = &self.sources[index].path;
        let found = SegmentScanner::new(file, len)
            .find_valid_record(0)
            .map_err(Error::io(path))?;
        self.holds_valid[index] = Some(found.is_some());
        Ok(found.is_some())
    }

    fn on_problem(&mut self, problem: Problem) -> Result<()> {
        self.report.claimed_seq = self.asm.claimed().map(Seq::new);
        let unit = self
            .asm
            .unit_start()
            .map_or(problem.offset, |start| start.min(problem.offset));
        // A sealed segment was synced before the record listed it: damage in
        // it is never an interrupted write.
        let sealed = matches!(self.expected(), Expect::Sealed { .. });
        let torn = !sealed && !self.valid_after(&problem)?;
        let segment = self.path.clone();
        let seg_len = self.scanner.as_ref().map_or(0, SegmentScanner::len);
        match (self.mode, torn) {
            (RecoveryMode::Strict, _) | (RecoveryMode::TolerateTornTail, false) => {
                self.done = true;
                Err(Error::Corruption {
                    segment,
                    offset: problem.offset,
                    kind: problem.kind,
                })
            }
            (_, true) | (RecoveryMode::PointInTime, false) => {
                let cause = if torn {
                    DropCause::TornTail
                } else {
                    DropCause::Corruption
                };
                tracing::warn!(
                    segment = %segment.display(),
                    offset = unit,
                    kind = %problem.kind,
                    torn,
                    "log ends early: dropping the rest"
                );
                self.drop_range(segment, unit, seg_len - unit, problem.kind, cause);
                self.close_segment(unit);
                self.stop(torn)
            }
            (RecoveryMode::SkipCorrupted, false) => {
                self.asm.abandon();
                self.item_start = None;
                let Some(scanner) = self.scanner.as_mut() else {
                    return Ok(());
                };
                let resume = match problem.resync {
                    Resync::Retry(offset) => offset,
                    Resync::SkipFrom(offset) => scanner
                        .find_valid_record(offset + 1)
                        .map_err(Error::io(&segment))?
                        .unwrap_or(seg_len),
                    Resync::SegmentEnd => seg_len,
                };
                scanner.seek(resume);
                tracing::warn!(
                    segment = %segment.display(),
                    offset = unit,
                    len = resume - unit,
                    kind = %problem.kind,
                    "skipping corrupt bytes"
                );
                self.drop_range(
                    segment,
                    unit,
                    resume - unit,
                    problem.kind,
                    DropCause::Corruption,
                );
                Ok(())
            }
        }
    }

    fn drop_range(
        &mut self,
        segment: PathBuf,
        offset: u64,
        len: u64,
        kind: CorruptionKind,
        cause: DropCause,
    ) {
        if let Some(last) = self.report.dropped.last_mut() {
            if last.segment == segment && last.cause == cause && last.offset + last.len == offset {
                last.len += len;
                return;
            }
        }
        self.report.dropped.push(DroppedRange {
            segment,
            offset,
            len,
            kind,
            cause,
        });
    }

    /// Ends the log at the current segment. After a torn tail, the later
    /// segments hold no valid record; any that are not empty or all zeros are
    /// part of the torn tail. After corruption (`PointInTime`) they are
    /// ignored.
    fn stop(&mut self, torn: bool) -> Result<()> {
        self.done = true;
        while self.next_source < self.sources.len() {
            if !torn {
                let path = self.sources[self.next_source].path.clone();
                self.report.ignored_segments.push(path);
                self.next_source += 1;
                continue;
            }
            self.open_next()?;
            let Some(scanner) = self.scanner.as_mut() else {
                break;
            };
            let path = self.path.clone();
            let len = scanner.len();
            match scanner.next().map_err(Error::io(&path))? {
                Scan::End | Scan::ZeroTail { .. } => {}
                Scan::Bad { kind, .. } => self.drop_range(path, 0, len, kind, DropCause::TornTail),
                Scan::Record { .. } => {
                    let kind = CorruptionKind::IncompleteEntry;
                    self.drop_range(path, 0, len, kind, DropCause::TornTail);
                }
            }
            self.close_segment(0);
        }
        Ok(())
    }
}

/// The segments of `dir` and its segment record, as of one moment even
/// beside a live writer: the record is read before and after the listing,
/// and the listing is taken again if it changed in between (a writer
/// records a new segment after creating it, and forgets one before removing
/// it, so an unchanged record brackets a listing it describes).
fn consistent_listing(
    storage: &dyn Storage,
    dir: &Path,
) -> Result<(Vec<(SegmentId, PathBuf)>, Loaded)> {
    const ATTEMPTS: usize = 10;
    let mut before = SegmentRecord::load(storage, dir)?;
    let mut attempts = 1;
    loop {
        let segments = list_segments(storage, dir)?;
        let after = SegmentRecord::load(storage, dir)?;
        if after == before || attempts == ATTEMPTS {
            return Ok((segments, after));
        }
        before = after;
        attempts += 1;
    }
}

/// The length of the segment `scanner` reads (0 without one).
fn scanner_len(scanner: &Option<SegmentScanner>) -> u64 {
    scanner.as_ref().map_or(0, SegmentScanner::len)
}

impl Iterator for LogReader {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        self.next_entry()
            .map(|e| e.map(|e| e.to_entry()))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{encode_entry, HEADER_SIZE};
    use crate::storage::MemStorage;

    /// A log of a small Put, a Put cut into First/Middle/Middle/Last, and
    /// another small Put; returns it with the offset and type of each record.
    fn three_entries() -> (Vec<u8>, Vec<(usize, u8)>) {
        let mut log = Vec::new();
        encode_entry(&mut log, Op::Put, 1, b"a", b"small").unwrap();
        encode_entry(&mut log, Op::Put, 2, b"b", &vec![7u8; 70_000]).unwrap();
        encode_entry(&mut log, Op::Put, 3, b"c", b"small").unwrap();
        let mut records = Vec::new();
        let mut at = 0;
        while at < log.len() {
            let len = u16::from_le_bytes([log[at + 4], log[at + 5]]) as usize;
            records.push((at, log[at + 6]));
            at += HEADER_SIZE + len;
        }
        (log, records)
    }

    fn read(log: &[u8], mode: RecoveryMode) -> (Vec<u64>, Result<RecoveryReport>) {
        let mem = MemStorage::new();
        let path = Path::new("/log/00000000000000000001.wal");
        mem.write_file(path, log);
        let mut reader = LogReader::open_with(Arc::new(mem), "/log", mode).unwrap();
        let mut seqs = Vec::new();
        loop {
            match reader.next_entry() {
                Ok(Some(e)) => seqs.push(e.seq.get()),
                Ok(None) => return (seqs, Ok(reader.report().clone())),
                Err(e) => return (seqs, Err(e)),
            }
        }
    }

    fn corruption_offset(result: Result<RecoveryReport>) -> u64 {
        match result {
            Err(Error::Corruption { offset, .. }) => offset,
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn damaged_type_bytes_are_reported_where_the_damage_is() {
        let (log, records) = three_entries();
        assert_eq!(
            records.iter().map(|r| r.1).collect::<Vec<_>>(),
            [1, 2, 3, 3, 4, 1]
        );
        // (record index, new type): every case has valid records after it.
        for (index, new_type) in [
            (0, 2),
            (0, 3),
            (0, 4),
            (1, 1),
            (1, 3),
            (2, 1),
            (2, 2),
            (4, 3),
            (4, 2),
            (4, 1),
        ] {
            let mut damaged = log.clone();
            let (at, _) = records[index];
            damaged[at + 6] = new_type;
            let (seqs, result) = read(&damaged, RecoveryMode::TolerateTornTail);
            assert_eq!(
                corruption_offset(result),
                at as u64,
                "record {index} retyped to {new_type}"
            );
            assert!(
                seqs.iter().all(|&s| s < 3),
                "record {index}: yielded {seqs:?}"
            );

            // Point-in-time recovery keeps exactly the entries before the damage.
            let (seqs, report) = read(&damaged, RecoveryMode::PointInTime);
            let want: Vec<u64> = if index == 0 { vec![] } else { vec![1] };
            assert_eq!(seqs, want, "record {index} retyped to {new_type}");
            assert!(report.unwrap().has_corruption());
        }
    }

    #[test]
    fn skip_corrupted_resumes_after_damaged_type_bytes() {
        let (log, records) = three_entries();
        for (index, new_type) in [(0, 2), (1, 1), (2, 2), (4, 3)] {
            let mut damaged = log.clone();
            damaged[records[index].0 + 6] = new_type;
            let (seqs, report) = read(&damaged, RecoveryMode::SkipCorrupted);
            let report = report.unwrap();
            assert!(!report.dropped.is_empty());
            // The damaged entry is lost; the entries around it survive.
            let lost = if index == 0 { 1 } else { 2 };
            let want: Vec<u64> = (1..=3).filter(|&s| s != lost).collect();
            assert_eq!(seqs, want, "record {index} retyped to {new_type}");
        }
    }
}
