//! Recovery: reading a whole log under a [`RecoveryMode`], telling a torn tail
//! from corruption, and reporting every byte range that was not used.
//!
//! A bad record (or an entry left incomplete) is a torn tail only if no valid
//! record follows it anywhere in the log: a crash can only damage the end.
//! Anything else is corruption, and what happens to it is the mode's call.
//! This module reads and judges; it never writes (truncating a torn tail is
//! the `Wal`'s job on open).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::entry::{Entry, EntryRef, Item, Slot};
use crate::error::{CorruptionKind, Error, Result};
mod live;
mod policy;

use crate::reader::{next_item, Assembler, Next, SegmentScanner};
use crate::report::{RecoveryMode, RecoveryReport, SegmentReport};
use crate::segment::{list_segments, SegmentId};
use crate::segment_record::{Expect, Loaded, Missing, RecordState, SegmentRecord};
use crate::seq::Seq;
use crate::storage::{default_storage, OpenMode, PathKind, Storage, StorageFile};

/// A segment's path and the sparse index points collected while reading it.
pub(crate) type SegmentIndexPoints = (PathBuf, Vec<(Seq, u64)>);

/// A segment to read, and how much of it.
#[derive(Clone, Debug)]
pub(crate) struct Source {
    pub(crate) id: Option<SegmentId>,
    pub(crate) path: PathBuf,
    /// Read at most this many bytes (a live writer's durable length).
    pub(crate) limit: Option<u64>,
    /// Start reading at this offset, an entry's start (from a sparse
    /// index); 0 for the whole segment.
    pub(crate) start: u64,
}

impl Source {
    /// All of the segment file at `path`.
    pub(crate) fn whole(id: Option<SegmentId>, path: PathBuf) -> Self {
        Source {
            id,
            path,
            limit: None,
            start: 0,
        }
    }
}

/// Reads the operations of a log directory or a single segment file in
/// order, under a [`RecoveryMode`], never writing anything to the log
/// (the one exception: a directory whose in-place repair a crash
/// interrupted has that repair finished first; see
/// [`crate::repair_in_place`]).
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
    /// Whether a segment removed while reading was skipped just before the
    /// next one opened: where the log goes on is then unknown too.
    removed_before_next: bool,
    /// The directory the segment record describes.
    record_dir: PathBuf,
    scanner: Option<SegmentScanner>,
    /// Path of the segment `scanner` reads.
    path: PathBuf,
    asm: Assembler,
    slots: Vec<Slot>,
    next_slot: usize,
    /// Whether the current item is a batch.
    item_is_batch: bool,
    /// Bytes of the segments already read.
    done_bytes: u64,
    report: RecoveryReport,
    done: bool,
    /// The log directory, when a writer may be appending to it (its lock
    /// file exists): damage in the active segment is checked again before
    /// it is reported (see `live`).
    live_dir: Option<PathBuf>,
    /// Where a re-read beside a live writer last let reading go on (the
    /// source's index and the entry's offset): a problem found there again
    /// is judged, not read again, so a reader cannot loop on it.
    resumed_at: Option<(usize, u64)>,
    /// When asked for ([`Self::collect_index`]): sparse index points of
    /// each segment read, by path.
    index: Option<Vec<SegmentIndexPoints>>,
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
        match storage.kind_of(path).map_err(Error::io(path))? {
            PathKind::Missing => Err(Error::NotFound {
                path: path.to_path_buf(),
            }),
            PathKind::Dir => {
                crate::repair::finish_interrupted(&*storage, path)?;
                let lock_file = crate::storage::lock_path(path);
                let lockable = storage.kind_of(&lock_file).map_err(Error::io(&lock_file))?;
                let mut reader = Self::open_locked(storage, path, mode)?;
                reader.live_dir = (lockable == PathKind::File).then(|| path.to_path_buf());
                Ok(reader)
            }
            PathKind::Special => Err(Error::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "neither a log directory nor a segment file (a FIFO, socket or device)",
                ),
            }),
            PathKind::File => {
                let id = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(SegmentId::parse);
                let sources = vec![Source::whole(id, path.to_path_buf())];
                Ok(Self::from_sources(storage, sources, mode))
            }
        }
    }

    /// Reads a log directory without looking for an interrupted repair
    /// (the caller holds the directory's lock and has finished it).
    pub(crate) fn open_locked(
        storage: Arc<dyn Storage>,
        dir: &Path,
        mode: RecoveryMode,
    ) -> Result<Self> {
        let (segments, (record, state)) = consistent_listing(&*storage, dir)?;
        let sources = segments
            .into_iter()
            .map(|(id, path)| Source::whole(Some(id), path))
            .collect();
        Ok(Self::from_sources(storage, sources, mode).with_record(dir, record.as_ref(), state))
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
            removed_before_next: false,
            record_dir: PathBuf::new(),
            sources,
            next_source: 0,
            scanner: None,
            path: PathBuf::new(),
            asm: Assembler::default(),
            slots: Vec::new(),
            next_slot: 0,
            item_is_batch: false,
            done_bytes: 0,
            report: RecoveryReport::new(mode),
            done: false,
            live_dir: None,
            resumed_at: None,
            index: None,
        }
    }

    /// Collects a sparse index of each segment as it is read (see
    /// `sparse_index`); [`Self::finish_with_index`] returns it.
    pub(crate) fn collect_index(mut self) -> Self {
        self.index = Some(Vec::new());
        self
    }

    /// Reads to the end; the report, and the index collected.
    pub(crate) fn finish_with_index(mut self) -> Result<(RecoveryReport, Vec<SegmentIndexPoints>)> {
        while self.next_entry()?.is_some() {}
        Ok((self.report, self.index.unwrap_or_default()))
    }

    /// Notes where an item starts, for the sparse index being collected.
    pub(super) fn note_index(&mut self, seq: Seq, start: u64) {
        let Some(index) = &mut self.index else {
            return;
        };
        match index.last_mut() {
            Some((path, points)) if *path == self.path => {
                crate::sparse_index::note(points, seq, start)
            }
            _ => index.push((self.path.clone(), vec![(seq, start)])),
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
        let slot = &self.slots[self.next_slot];
        self.next_slot += 1;
        slot.resolve(self.asm.arena()).map(Some)
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
        let kind = (self.item_is_batch, self.asm.fragmented());
        Item::new(self.asm.arena(), slots, kind, &self.path).map(Some)
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
            total += match self.open_source(index) {
                Err(Error::Io { source, .. }) if self.removed_meanwhile(&source) => 0,
                opened => opened?.map_or(0, |(_, len)| len),
            };
        }
        Ok(total)
    }

    /// Reads items until one with operations to yield is ready, or the log
    /// ends; hands every problem to the mode's policy.
    fn advance(&mut self) -> Result<()> {
        self.slots.clear();
        self.next_slot = 0;
        while !self.done {
            // The previous item is yielded (or had nothing to yield).
            self.asm.consume();
            let Some(scanner) = self.scanner.as_mut() else {
                self.open_next()?;
                continue;
            };
            match next_item(scanner, &mut self.asm).map_err(Error::io(&self.path))? {
                Next::Item { start, end } => {
                    if let Some((offset, kind)) = self.take_item(start, end) {
                        let len = scanner_len(&self.scanner) - offset;
                        let path = self.path.clone();
                        self.on_record_problem(path, offset, len, kind)?;
                    } else if !self.slots.is_empty() {
                        return Ok(());
                    }
                }
                Next::End { valid_len } => self.end_segment(valid_len)?,
                Next::Problem(problem) => self.on_problem(problem)?,
            }
        }
        Ok(())
    }

    /// Whether a segment that was listed failed to open because it is gone:
    /// in a log a writer may hold (it has a lock file), retention removed
    /// it after the listing.
    pub(super) fn removed_meanwhile(&self, error: &std::io::Error) -> bool {
        self.live_dir.is_some() && error.kind() == std::io::ErrorKind::NotFound
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
        self.missing_before_current |= std::mem::take(&mut self.removed_before_next);
        let opened = match self.open_source(index) {
            Err(Error::Io { path, source }) if self.removed_meanwhile(&source) => {
                tracing::info!(segment = %path.display(), "a segment was removed while the log was read");
                self.report.removed_segments.push(path);
                self.removed_before_next = true;
                self.next_source += 1;
                return Ok(());
            }
            opened => opened?,
        };
        let Some((file, len)) = opened else {
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
        let mut scanner = SegmentScanner::new(file, len);
        scanner.seek(source.start);
        self.scanner = Some(scanner);
        self.path.clone_from(&source.path);
        self.asm.start_segment();
        if self.expect.get(index) == Some(&Expect::Unrecorded) {
            let path = self.path.clone();
            self.on_record_problem(path, 0, len, CorruptionKind::UnrecordedSegment)?;
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
    use crate::format::Op;
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
