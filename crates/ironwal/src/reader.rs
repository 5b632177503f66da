//! Reading a segment: physical records off a file, and logical items
//! (entries, header-form batches) assembled from them.
//!
//! This module reports what it finds and decides nothing: whether a bad
//! record is a torn tail or corruption, and what to do about it, belongs to
//! `recovery`. Nothing here may panic on file content, and no allocation is
//! sized by a length read from disk: buffers grow only as verified records
//! arrive.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)
)]

use std::io;
use std::ops::Range;
use std::sync::Arc;

use crate::error::CorruptionKind;
use crate::format::entry::OP_BATCH;
use crate::format::record::{checksum, HeaderProblem};
use crate::format::{
    decode_entry, EntryView, Op, OpView, RawHeader, RecordType, HEADER_SIZE, MAX_RECORD,
};
use crate::recovery::EntryRef;
use crate::seq::Seq;
use crate::storage::{read_up_to, StorageFile};

/// Bytes read from a segment at a time.
const WINDOW: usize = 256 * 1024;

/// A read-ahead window over the first `len` bytes of a file.
#[derive(Debug)]
struct Window {
    file: Arc<dyn StorageFile>,
    len: u64,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    start: u64,
    /// Valid bytes in `buf`.
    filled: usize,
}

impl Window {
    fn new(file: Arc<dyn StorageFile>, len: u64) -> Self {
        Window {
            file,
            len,
            buf: Vec::new(),
            start: 0,
            filled: 0,
        }
    }

    /// Returns the bytes `[offset, offset + n)`, reading ahead as far as the
    /// window allows. The caller keeps `offset + n <= len`.
    fn get(&mut self, offset: u64, n: usize) -> io::Result<&[u8]> {
        let end = self.start + self.filled as u64;
        if offset < self.start || offset + n as u64 > end {
            self.refill(offset, n)?;
        }
        let from = usize::try_from(offset - self.start).unwrap_or(usize::MAX);
        self.buf.get(from..from.saturating_add(n)).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment shrank while being read",
            )
        })
    }

    fn refill(&mut self, offset: u64, n: usize) -> io::Result<()> {
        let end = self.start + self.filled as u64;
        if offset >= self.start && offset < end {
            let keep = usize::try_from(offset - self.start).unwrap_or(0);
            self.buf.copy_within(keep..self.filled, 0);
            self.filled -= keep;
        } else {
            self.filled = 0;
        }
        self.start = offset;
        let want = usize::try_from(self.len - offset)
            .unwrap_or(usize::MAX)
            .min(WINDOW.max(n));
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        if let Some(free) = self.buf.get_mut(self.filled..want) {
            let got = read_up_to(&*self.file, free, offset + self.filled as u64)?;
            self.filled += got;
        }
        Ok(())
    }

    /// Whether every byte from `offset` to the end is zero.
    fn all_zero_from(&mut self, mut offset: u64) -> io::Result<bool> {
        while offset < self.len {
            let n = usize::try_from(self.len - offset)
                .unwrap_or(WINDOW)
                .min(WINDOW);
            // An OR over the block vectorizes; testing byte by byte does not.
            if self.get(offset, n)?.iter().fold(0u8, |acc, &b| acc | b) != 0 {
                return Ok(false);
            }
            offset += n as u64;
        }
        Ok(true)
    }

    /// The offset of the first record at or after `from` that is valid on its
    /// own: a sound header, a payload inside the file, a matching checksum,
    /// and for Full and First records a plausible entry start.
    fn find_valid_record(&mut self, mut from: u64) -> io::Result<Option<u64>> {
        while from + (HEADER_SIZE as u64) < self.len {
            let span = usize::try_from(self.len - from)
                .unwrap_or(usize::MAX)
                .min(WINDOW);
            let at_end = from + span as u64 == self.len;
            let bytes = self.get(from, span)?;
            // Every candidate must have its largest possible record inside
            // `bytes`, unless `bytes` already reaches the end of the file.
            let candidates = if at_end { span } else { span - MAX_RECORD + 1 };
            for i in 0..candidates {
                if bytes.get(i..).is_some_and(is_valid_record) {
                    return Ok(Some(from + i as u64));
                }
            }
            from += candidates as u64;
        }
        Ok(None)
    }
}

/// Whether `bytes` starts with a self-consistent record (see
/// [`Window::find_valid_record`]).
fn is_valid_record(bytes: &[u8]) -> bool {
    let Some(header) = bytes.first_chunk::<HEADER_SIZE>() else {
        return false;
    };
    let header = RawHeader::parse(*header);
    let Ok(kind) = header.validate() else {
        return false;
    };
    let Some(payload) = bytes.get(HEADER_SIZE..HEADER_SIZE + usize::from(header.len)) else {
        return false;
    };
    if matches!(kind, RecordType::Full | RecordType::First)
        && (payload.len() < crate::format::entry::ENTRY_PREFIX
            || !matches!(payload.first(), Some(1..=4)))
    {
        return false;
    }
    checksum(payload) == header.checksum
}

/// What [`SegmentScanner::next`] found.
#[derive(Debug)]
pub(crate) enum Scan<'a> {
    /// A record whose checksum matches.
    Record {
        offset: u64,
        kind: RecordType,
        payload: &'a [u8],
    },
    /// The end of the segment, right after the last record.
    End,
    /// Only zero bytes from `offset` to the end: a clean end (pre-allocated space).
    ZeroTail { offset: u64 },
    /// A record that cannot be read.
    Bad { offset: u64, kind: CorruptionKind },
}

/// Reads the physical records of one segment in order.
#[derive(Debug)]
pub(crate) struct SegmentScanner {
    window: Window,
    pos: u64,
}

impl SegmentScanner {
    /// Scans the first `len` bytes of `file`.
    pub(crate) fn new(file: Arc<dyn StorageFile>, len: u64) -> Self {
        SegmentScanner {
            window: Window::new(file, len),
            pos: 0,
        }
    }

    /// Bytes of the segment being scanned.
    pub(crate) fn len(&self) -> u64 {
        self.window.len
    }

    /// Offset of the next record to read.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Continues scanning at `offset`.
    pub(crate) fn seek(&mut self, offset: u64) {
        self.pos = offset.min(self.window.len);
    }

    /// Offset of the first valid record at or after `from`, if any.
    pub(crate) fn find_valid_record(&mut self, from: u64) -> io::Result<Option<u64>> {
        self.window.find_valid_record(from)
    }

    /// Reads the record at the current position and moves past it if valid.
    pub(crate) fn next(&mut self) -> io::Result<Scan<'_>> {
        let offset = self.pos;
        let left = self.window.len - offset;
        if left == 0 {
            return Ok(Scan::End);
        }
        let head_len = usize::try_from(left)
            .unwrap_or(HEADER_SIZE)
            .min(HEADER_SIZE);
        let head = self.window.get(offset, head_len)?;
        let header = head
            .first_chunk::<HEADER_SIZE>()
            .map(|h| RawHeader::parse(*h));
        if head.iter().all(|&b| b == 0) && self.window.all_zero_from(offset)? {
            return Ok(Scan::ZeroTail { offset });
        }
        let Some(header) = header else {
            return Ok(Scan::Bad {
                offset,
                kind: CorruptionKind::TruncatedHeader { available: left },
            });
        };
        let kind = match header.validate() {
            Ok(kind) => kind,
            Err(problem) => {
                let kind = match problem {
                    HeaderProblem::InvalidType(found) => {
                        CorruptionKind::InvalidRecordType { found }
                    }
                    HeaderProblem::TooLong(len) => CorruptionKind::RecordTooLong { len },
                    HeaderProblem::Empty => CorruptionKind::EmptyRecord,
                };
                return Ok(Scan::Bad { offset, kind });
            }
        };
        let available = left - HEADER_SIZE as u64;
        if u64::from(header.len) > available {
            let kind = CorruptionKind::TruncatedRecord {
                len: header.len,
                available,
            };
            return Ok(Scan::Bad { offset, kind });
        }
        let total = HEADER_SIZE + usize::from(header.len);
        let payload = self
            .window
            .get(offset, total)?
            .get(HEADER_SIZE..)
            .unwrap_or_default();
        let computed = checksum(payload);
        if computed != header.checksum {
            let kind = CorruptionKind::ChecksumMismatch {
                stored: header.checksum,
                computed,
            };
            return Ok(Scan::Bad { offset, kind });
        }
        self.pos = offset + total as u64;
        Ok(Scan::Record {
            offset,
            kind,
            payload,
        })
    }
}

/// An operation of a complete item, located in the assembler's arena.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    seq: Seq,
    op: Op,
    key: Range<usize>,
    value: Option<Range<usize>>,
}

impl Slot {
    /// The operation's sequence.
    pub(crate) fn seq(&self) -> Seq {
        self.seq
    }

    /// The operation, borrowing its bytes from `arena`.
    pub(crate) fn resolve<'a>(&self, arena: &'a [u8]) -> Option<EntryRef<'a>> {
        let key = arena.get(self.key.clone())?;
        let value = match &self.value {
            Some(range) => Some(arena.get(range.clone())?),
            None => None,
        };
        Some(EntryRef {
            seq: self.seq,
            op: self.op,
            key,
            value,
        })
    }
}

/// What [`Assembler::list_ops`] found in an item.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ItemOps {
    pub(crate) ops: u64,
    pub(crate) batch: bool,
    pub(crate) first: Option<Seq>,
    pub(crate) last: Option<Seq>,
}

/// The position of `part` inside `whole`, which it borrows from.
fn range_in(whole: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize);
    start..start + part.len()
}

/// How reading may continue after a [`Problem`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resync {
    /// The record at this offset is valid on its own; read it again once the
    /// broken entry around it is abandoned.
    Retry(u64),
    /// The record at this offset cannot be used; look for the next valid one
    /// after it.
    SkipFrom(u64),
    /// Nothing more can be read from this segment.
    SegmentEnd,
}

/// A place where the bytes are not a valid log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    /// Offset to report: the bad record, or the start of an incomplete entry.
    pub(crate) offset: u64,
    pub(crate) kind: CorruptionKind,
    /// Whether the record at `offset` has a valid checksum (so valid data
    /// follows the damage, by definition).
    pub(crate) record_valid: bool,
    pub(crate) resync: Resync,
}

impl Problem {
    /// A record that cannot be read at all.
    pub(crate) fn bad_record(offset: u64, kind: CorruptionKind) -> Self {
        Problem {
            offset,
            kind,
            record_valid: false,
            resync: Resync::SkipFrom(offset),
        }
    }
}

/// An open header-form batch.
#[derive(Clone, Copy, Debug)]
struct OpenBatch {
    start: u64,
    next_seq: u64,
    left: u32,
}

/// What [`Assembler::push`] made of a record.
#[derive(Debug)]
pub(crate) enum Step {
    /// The record was taken; the item it belongs to is not complete yet.
    Pending,
    /// An item is complete: [`Assembler::entries`] holds its entries.
    Ready,
    /// The record does not fit the item under construction; the caller must
    /// stop or [`Assembler::abandon`] the item.
    Problem(Problem),
}

/// Turns records into items: a single entry, a single-record batch, or a
/// header-form batch with all its entries. Items come out whole or not at
/// all.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    /// Entry bytes of the item being built, back to back.
    arena: Vec<u8>,
    /// End offset in `arena` of each complete entry of the item.
    ends: Vec<usize>,
    /// Offset of the open First record and where its entry starts in `arena`.
    fragment: Option<(u64, usize)>,
    /// Offset of the latest First or Middle record of the open fragment.
    last_fragment: u64,
    batch: Option<OpenBatch>,
    /// Whether the item started with a batch header.
    header_batch: bool,
    /// Sequences still expected by an abandoned header-form batch.
    lost_batch: Option<Range<u64>>,
    /// The highest sequence any checksum-valid Full or First record names,
    /// whether or not its entry turned out whole.
    claimed: Option<u64>,
}

impl Assembler {
    /// Where the item under construction started in the segment, if any.
    pub(crate) fn unit_start(&self) -> Option<u64> {
        match (self.batch, self.fragment) {
            (Some(batch), _) => Some(batch.start),
            (None, Some((start, _))) => Some(start),
            (None, None) => None,
        }
    }

    /// Drops a partial item after a problem. If it was a header-form batch,
    /// the entries it still expected are remembered, so that reading on
    /// (under `SkipCorrupted`) does not yield them as if they stood alone.
    pub(crate) fn abandon(&mut self) {
        if let Some(b) = self.batch {
            self.lost_batch = Some(b.next_seq..b.next_seq.saturating_add(u64::from(b.left)));
        }
        self.clear();
    }

    fn clear(&mut self) {
        self.arena.clear();
        self.ends.clear();
        self.fragment = None;
        self.batch = None;
        self.header_batch = false;
    }

    /// Clears a completed item and releases memory a huge one left behind.
    pub(crate) fn consume(&mut self) {
        self.clear();
        const KEEP: usize = 4 * 1024 * 1024;
        if self.arena.capacity() > KEEP {
            self.arena = Vec::new();
        }
    }

    /// Entry bytes of the complete item, one slice per entry.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .filter_map(|(s, e)| self.arena.get(s..e))
    }

    /// The arena the entries of [`Self::entries`] live in.
    pub(crate) fn arena(&self) -> &[u8] {
        &self.arena
    }

    /// The highest sequence a checksum-valid record has named so far.
    pub(crate) fn claimed(&self) -> Option<u64> {
        self.claimed
    }

    /// Called when a new segment starts: entries and batches never span
    /// segments, so nothing of an abandoned batch can follow.
    pub(crate) fn start_segment(&mut self) {
        self.lost_batch = None;
    }

    /// Notes the sequences an entry's first record names: its own, and for
    /// a batch the last of its operations.
    fn note_claim(&mut self, payload: &[u8]) {
        let field = |at: usize| {
            payload
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
        };
        let Some(seq) = payload
            .get(1..9)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
        else {
            return;
        };
        let count = match (payload.first(), payload.len()) {
            (Some(&OP_BATCH), 13) => field(9),
            (Some(&OP_BATCH), _) => field(13),
            _ => None,
        };
        let last = seq.saturating_add(u64::from(count.unwrap_or(1).max(1)) - 1);
        self.claimed = self.claimed.max(Some(last));
    }

    /// Feeds one valid record.
    pub(crate) fn push(&mut self, offset: u64, kind: RecordType, payload: &[u8]) -> Step {
        if matches!(kind, RecordType::Full | RecordType::First) {
            self.note_claim(payload);
        }
        let orphan = |is_last| Problem {
            offset,
            kind: CorruptionKind::OrphanFragment { is_last },
            record_valid: true,
            resync: Resync::SkipFrom(offset),
        };
        match kind {
            RecordType::Full | RecordType::First if self.fragment.is_some() => {
                Step::Problem(self.interrupted(offset))
            }
            RecordType::Full => {
                let begin = self.arena.len();
                self.arena.extend_from_slice(payload);
                self.finish_entry(offset, begin)
            }
            RecordType::First => {
                self.fragment = Some((offset, self.arena.len()));
                self.last_fragment = offset;
                self.arena.extend_from_slice(payload);
                Step::Pending
            }
            RecordType::Middle | RecordType::Last if self.fragment.is_none() => {
                Step::Problem(orphan(kind == RecordType::Last))
            }
            RecordType::Middle => {
                self.last_fragment = offset;
                self.arena.extend_from_slice(payload);
                Step::Pending
            }
            RecordType::Last => {
                self.arena.extend_from_slice(payload);
                let (start, begin) = self.fragment.take().unwrap_or((offset, 0));
                self.finish_entry(start, begin)
            }
        }
    }

    /// The problem of a Full or First record at `offset` arriving while a
    /// fragmented entry is open. If the fragments so far already form a whole
    /// entry, the damage is the type byte of the last of them (a Last that
    /// reads as a Middle, a Full that reads as a First), so that is the place
    /// reported; otherwise it is the record that interrupts.
    fn interrupted(&self, offset: u64) -> Problem {
        let begin = self.fragment.map_or(0, |(_, begin)| begin);
        let whole = decode_entry(self.arena.get(begin..).unwrap_or_default()).is_ok();
        Problem {
            offset: if whole { self.last_fragment } else { offset },
            kind: CorruptionKind::InterruptedFragment,
            record_valid: true,
            resync: Resync::Retry(offset),
        }
    }

    /// Places the entry at `arena[begin..]`, whose first record is at
    /// `offset`, into the item under construction.
    fn finish_entry(&mut self, offset: u64, begin: usize) -> Step {
        enum Decoded {
            Bad(CorruptionKind),
            BatchHeader { seq: u64, count: u32 },
            Batch,
            Single { seq: u64 },
        }
        let decoded = match decode_entry(self.arena.get(begin..).unwrap_or_default()) {
            Err(e) => Decoded::Bad(CorruptionKind::MalformedEntry(e)),
            Ok(EntryView::BatchHeader { seq, count }) => Decoded::BatchHeader { seq, count },
            Ok(EntryView::Batch(_)) => Decoded::Batch,
            Ok(EntryView::Single(op)) => Decoded::Single { seq: op.seq },
        };
        let lost = match (&decoded, &self.lost_batch) {
            (Decoded::Single { seq }, Some(lost)) if self.batch.is_none() => lost.contains(seq),
            _ => false,
        };
        if lost {
            self.arena.truncate(begin);
            return Step::Problem(Problem {
                offset,
                kind: CorruptionKind::DamagedBatchMember,
                record_valid: true,
                resync: Resync::SkipFrom(offset),
            });
        }
        if !matches!(decoded, Decoded::Bad(_)) {
            // A sound entry outside the abandoned batch ends it; a malformed
            // one says nothing about where the batch's members stop.
            self.lost_batch = None;
        }
        let (kind, resync) = match (decoded, &mut self.batch) {
            (Decoded::Bad(kind), _) => (kind, Resync::SkipFrom(offset)),
            (Decoded::BatchHeader { .. } | Decoded::Batch, Some(_)) => {
                (CorruptionKind::NestedBatch, Resync::Retry(offset))
            }
            (Decoded::BatchHeader { seq, count }, None) => {
                // The header carries no operation of its own.
                self.arena.truncate(begin);
                self.header_batch = true;
                if count == 0 {
                    return Step::Ready;
                }
                self.batch = Some(OpenBatch {
                    start: offset,
                    next_seq: seq,
                    left: count,
                });
                return Step::Pending;
            }
            (Decoded::Single { seq }, Some(batch)) if seq != batch.next_seq => {
                let kind = CorruptionKind::BatchSequenceMismatch {
                    expected: batch.next_seq,
                    found: seq,
                };
                (kind, Resync::Retry(offset))
            }
            (Decoded::Single { .. }, Some(batch)) => {
                self.ends.push(self.arena.len());
                batch.left -= 1;
                batch.next_seq = batch.next_seq.wrapping_add(1);
                if batch.left > 0 {
                    return Step::Pending;
                }
                self.batch = None;
                return Step::Ready;
            }
            (Decoded::Batch | Decoded::Single { .. }, None) => {
                self.ends.push(self.arena.len());
                return Step::Ready;
            }
        };
        self.arena.truncate(begin);
        Step::Problem(Problem {
            offset,
            kind,
            record_valid: true,
            resync,
        })
    }

    /// Lists the operations of the complete item into `slots` (those with a
    /// sequence of at least `from`), and sums it up.
    pub(crate) fn list_ops(&self, from: Seq, slots: &mut Vec<Slot>) -> ItemOps {
        let arena = self.arena();
        let mut item = ItemOps {
            batch: self.header_batch,
            ..ItemOps::default()
        };
        for entry in self.entries() {
            let mut record = |op: OpView<'_>| {
                item.ops += 1;
                let seq = Seq::new(op.seq);
                item.first.get_or_insert(seq);
                item.last = Some(seq);
                if seq >= from {
                    slots.push(Slot {
                        seq,
                        op: op.op,
                        key: range_in(arena, op.key),
                        value: op.value.map(|v| range_in(arena, v)),
                    });
                }
            };
            match decode_entry(entry) {
                Ok(EntryView::Single(op)) => record(op),
                Ok(EntryView::Batch(view)) => {
                    item.batch = true;
                    view.iter().for_each(record);
                }
                // Only items whose entries decoded are ever complete.
                Ok(EntryView::BatchHeader { .. }) | Err(_) => {}
            }
        }
        item
    }

    /// Called at the end of a segment: an item still open there is incomplete.
    pub(crate) fn finish_segment(&self) -> Option<Problem> {
        self.unit_start().map(|offset| Problem {
            offset,
            kind: CorruptionKind::IncompleteEntry,
            record_valid: false,
            resync: Resync::SegmentEnd,
        })
    }
}
