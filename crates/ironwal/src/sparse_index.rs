//! A sparse index of where entries start in a segment, so a read from a
//! sequence starts within [`STRIDE`] bytes (plus one entry) of it instead of
//! at the segment's start. Built while writing and while recovering; never
//! stored on disk.
//!
//! Candidate points come at least every `STRIDE / 2` bytes (writers mark
//! the entries of each buffer that cross a `STRIDE / 2` step; each buffer
//! starts at an entry); a point is kept when it lies `STRIDE / 2` past the
//! last one kept. So two kept points are less than `STRIDE` plus one entry
//! apart, and at least `STRIDE / 2`: memory is at most 16 bytes per 32 KiB
//! of log, 512 bytes per MiB (32 KiB for a full 64 MiB segment).

use parking_lot::Mutex;

use crate::seq::Seq;

/// A read from a sequence starts less than this many bytes (plus one
/// entry) before it.
pub(crate) const STRIDE: u64 = 64 * 1024;

/// Candidate points are marked at least this often; kept ones are at
/// least this far apart.
pub(crate) const STEP: u64 = STRIDE / 2;

/// Index points of one segment, in increasing order of both fields.
#[derive(Debug, Default)]
pub(crate) struct SparseIndex {
    points: Mutex<Vec<(Seq, u64)>>,
}

impl SparseIndex {
    pub(crate) fn from_points(points: Vec<(Seq, u64)>) -> Self {
        SparseIndex {
            points: Mutex::new(points),
        }
    }

    /// Notes that the entry with sequence `seq` starts at `offset`; kept if
    /// it lies [`STEP`] past the last point (or is the first).
    pub(crate) fn note(&self, seq: Seq, offset: u64) {
        note(&mut self.points.lock(), seq, offset);
    }

    /// The offset of the last indexed entry at or before `seq`: reading
    /// from there finds `seq`. `None` if `seq` is before every point.
    pub(crate) fn floor(&self, seq: Seq) -> Option<u64> {
        let points = self.points.lock();
        let after = points.partition_point(|(s, _)| *s <= seq);
        after
            .checked_sub(1)
            .and_then(|i| points.get(i))
            .map(|(_, offset)| *offset)
    }

    /// Points kept, for tests of the bound.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.points.lock().len()
    }
}

/// Adds `(seq, offset)` to `points` if it lies [`STEP`] past the last one.
pub(crate) fn note(points: &mut Vec<(Seq, u64)>, seq: Seq, offset: u64) {
    let due = points
        .last()
        .is_none_or(|(last_seq, last)| seq > *last_seq && offset >= last + STEP);
    if due {
        points.push((seq, offset));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_point_per_step_and_finds_the_floor() {
        let index = SparseIndex::default();
        // 10,000 entries of 1 KiB.
        for i in 0..10_000u64 {
            index.note(Seq::new(i + 1), i * 1024);
        }
        let bytes: u64 = 10_000 * 1024;
        assert_eq!(index.len() as u64, bytes.div_ceil(STEP));
        assert_eq!(index.floor(Seq::new(1)), Some(0));
        assert_eq!(index.floor(Seq::new(32)), Some(0));
        assert_eq!(index.floor(Seq::new(33)), Some(STEP));
        let offset = index.floor(Seq::new(9_000)).unwrap();
        assert!(offset <= 8_999 * 1024 && 8_999 * 1024 - offset < STRIDE);
        assert_eq!(SparseIndex::default().floor(Seq::new(5)), None);
    }
}
