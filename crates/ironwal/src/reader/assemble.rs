//! Logical items (entries, batches of either form) assembled from records.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)
)]

use std::ops::Range;

use crate::entry::Slot;
use crate::error::CorruptionKind;
use crate::format::entry::OP_BATCH;
use crate::format::{decode_entry, EntryView, RecordType};
use crate::seq::Seq;

/// What [`Assembler::list_ops`] found in an item.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ItemOps {
    pub(crate) ops: u64,
    pub(crate) batch: bool,
    pub(crate) first: Option<Seq>,
    pub(crate) last: Option<Seq>,
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
    /// The operations of the item's complete entries, located in `arena`
    /// (each entry is decoded once, as it completes).
    ops: Vec<Slot>,
    /// Whether the item is a batch (of either form).
    is_batch: bool,
    /// Whether an entry of the item spans several records.
    fragmented: bool,
    /// Offset of the open First record and where its entry starts in `arena`.
    fragment: Option<(u64, usize)>,
    /// Offset of the latest First or Middle record of the open fragment.
    last_fragment: u64,
    batch: Option<OpenBatch>,
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

    /// Forgets a partial item, to read it again from its start (a live
    /// writer's record that was still being written).
    pub(crate) fn restart(&mut self) {
        self.clear();
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
        self.ops.clear();
        self.fragment = None;
        self.batch = None;
        self.is_batch = false;
        self.fragmented = false;
    }

    /// Clears a completed item and releases memory a huge one left behind.
    pub(crate) fn consume(&mut self) {
        self.clear();
        const KEEP: usize = 4 * 1024 * 1024;
        if self.arena.capacity() > KEEP {
            self.arena = Vec::new();
        }
    }

    /// Whether an entry of the complete item spans several records.
    pub(crate) fn fragmented(&self) -> bool {
        self.fragmented
    }

    /// The arena the operations of the complete item live in.
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
                self.fragmented = true;
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
        // The entry's operations are listed as it is decoded, and taken
        // back out below if the entry does not fit the item.
        let arena = &self.arena;
        let mark = self.ops.len();
        let decoded = match decode_entry(arena.get(begin..).unwrap_or_default()) {
            Err(e) => Decoded::Bad(CorruptionKind::MalformedEntry(e)),
            Ok(EntryView::BatchHeader { seq, count }) => Decoded::BatchHeader { seq, count },
            Ok(EntryView::Batch(view)) => {
                self.ops
                    .extend(view.iter().map(|op| Slot::locate(arena, op)));
                Decoded::Batch
            }
            Ok(EntryView::Single(op)) => {
                self.ops.push(Slot::locate(arena, op));
                Decoded::Single { seq: op.seq }
            }
        };
        let lost = match (&decoded, &self.lost_batch) {
            (Decoded::Single { seq }, Some(lost)) if self.batch.is_none() => lost.contains(seq),
            _ => false,
        };
        if lost {
            self.arena.truncate(begin);
            self.ops.truncate(mark);
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
                self.is_batch = true;
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
                batch.left -= 1;
                batch.next_seq = batch.next_seq.wrapping_add(1);
                if batch.left > 0 {
                    return Step::Pending;
                }
                self.batch = None;
                return Step::Ready;
            }
            (Decoded::Batch, None) => {
                self.is_batch = true;
                return Step::Ready;
            }
            (Decoded::Single { .. }, None) => return Step::Ready,
        };
        self.arena.truncate(begin);
        self.ops.truncate(mark);
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
        slots.extend(self.ops.iter().filter(|s| s.seq() >= from).cloned());
        ItemOps {
            ops: self.ops.len() as u64,
            batch: self.is_batch,
            first: self.ops.first().map(Slot::seq),
            last: self.ops.last().map(Slot::seq),
        }
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
