//! What a [`LogReader`] does with what it finds: damage judged as a torn
//! tail or corruption under the recovery mode, segments checked against
//! the segment record, ranges dropped and reported.

use std::path::PathBuf;

use super::live::Recheck;
use super::LogReader;
use crate::error::{CorruptionKind, Error, Result};
use crate::reader::{holds_valid, valid_after, Problem, Resync, Scan, SegmentScanner};
use crate::report::{DropCause, DroppedRange, RecoveryMode, SequenceGap};
use crate::segment_record::Expect;
use crate::seq::Seq;

impl LogReader {
    /// Deals with the recorded segments missing before source `index` (all
    /// that are left, at the end); `Ok(true)` if the log ends there.
    pub(super) fn stopped_at_missing(&mut self, index: usize) -> Result<bool> {
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
    pub(super) fn expected(&self) -> Expect {
        self.next_source
            .checked_sub(1)
            .and_then(|i| self.expect.get(i))
            .copied()
            .unwrap_or(Expect::Nothing)
    }

    /// The sequence the current segment's first entry must have, if the
    /// segment record says.
    pub(super) fn expected_first(&self) -> Option<Seq> {
        match self.expected() {
            Expect::Sealed { first, .. } => first,
            Expect::Active { first } => Some(first),
            // After a missing segment, where the log continues is unknown.
            Expect::Continues if !self.missing_before_current => {
                self.report.highest_seq.map(Seq::next)
            }
            Expect::Continues | Expect::Nothing | Expect::Unrecorded => None,
        }
    }

    /// Whether the first entry read from the current segment, `first` at
    /// byte `start`, shows the segment out of place; if so, the sequence
    /// the segment should start with. At byte 0 the entry must be exactly
    /// that one; after damage skipped at the segment's start (salvage) it
    /// must at least lie among the segment's sequences.
    pub(super) fn out_of_place(&self, first: Seq, start: u64) -> Option<Seq> {
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
    pub(super) fn end_segment(&mut self, valid_len: u64) -> Result<()> {
        self.close_segment(valid_len);
        let Expect::Sealed { len, last, .. } = self.expected() else {
            return Ok(());
        };
        if self.report.dropped.iter().any(|d| d.segment == self.path) {
            // Damage was skipped in it (salvage): it explains a shorter
            // segment or an earlier last entry, and is reported already.
            return Ok(());
        }
        let found_last = self.segment_report().and_then(|s| s.last_seq);
        let kind = if valid_len != len {
            CorruptionKind::SegmentLength {
                recorded: len,
                found: valid_len,
            }
        } else if found_last != last {
            CorruptionKind::LastSequence {
                recorded: last.map_or(0, Seq::get),
                found: found_last.map_or(0, Seq::get),
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
    pub(super) fn on_record_problem(
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

    pub(super) fn close_segment(&mut self, valid_len: u64) {
        if let Some(segment) = self.segment_report() {
            segment.valid_len = valid_len;
        }
        self.done_bytes += self.scanner.take().map_or(0, |s| s.len());
    }

    /// Records the complete item in the report and lists its operations.
    /// Returns where and how the item breaks the segment record, if it does
    /// (and the mode does not read on): its operations are then not listed.
    pub(super) fn take_item(&mut self, start: u64, end: u64) -> Option<(u64, CorruptionKind)> {
        let item = self.asm.list_ops(self.from, &mut self.slots);
        let starts_segment = self.segment_report().is_some_and(|s| s.first_seq.is_none());
        if let (Some(first), true) = (item.first, starts_segment) {
            if let Some(expected) = self.out_of_place(first, start) {
                let kind = CorruptionKind::SequenceGap {
                    expected: expected.get(),
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
            if first > before.next() {
                self.report.gaps.push(SequenceGap {
                    segment: self.path.clone(),
                    offset: start,
                    after: before,
                    next: first,
                });
            }
        }
        if let Some(first) = item.first {
            self.note_index(first, start);
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
    pub(super) fn valid_after(&mut self, problem: &Problem) -> Result<bool> {
        if let Some(scanner) = self.scanner.as_mut() {
            if valid_after(scanner, problem).map_err(Error::io(&self.path))? {
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

    pub(super) fn source_holds_valid(&mut self, index: usize) -> Result<bool> {
        if let Some(Some(known)) = self.holds_valid.get(index) {
            return Ok(*known);
        }
        let opened = match self.open_source(index) {
            Err(Error::Io { source, .. }) if self.removed_meanwhile(&source) => return Ok(false),
            opened => opened?,
        };
        let Some((file, len)) = opened else {
            return Ok(false);
        };
        let path = &self.sources[index].path;
        let found = holds_valid(file, len).map_err(Error::io(path))?;
        self.holds_valid[index] = Some(found);
        Ok(found)
    }

    pub(super) fn on_problem(&mut self, problem: Problem) -> Result<()> {
        let unit = self
            .asm
            .unit_start()
            .map_or(problem.offset, |start| start.min(problem.offset));
        match self.recheck_live(unit, &problem)? {
            Recheck::Resolved => return Ok(()),
            Recheck::InFlight => {
                self.in_flight(unit);
                return Ok(());
            }
            Recheck::Confirmed => {}
        }
        self.report.claimed_seq = self.asm.claimed().map(Seq::new);
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

    pub(super) fn drop_range(
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
    pub(super) fn stop(&mut self, torn: bool) -> Result<()> {
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
