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

mod assemble;
mod scan;

use std::io;

pub(crate) use assemble::{Assembler, Problem, Resync, Step};
pub(crate) use scan::{Scan, SegmentScanner};

/// What [`next_item`] found.
#[derive(Debug)]
pub(crate) enum Next {
    /// A complete item, at `start..end` of the segment; the assembler
    /// holds its operations ([`Assembler::list_ops`]).
    Item { start: u64, end: u64 },
    /// The segment ends cleanly at `valid_len`: at its end, or where a
    /// zero tail begins.
    End { valid_len: u64 },
    /// Reading stopped on damage or an incomplete entry. What to make of it
    /// (a torn tail, corruption, a writer's work in progress) is the
    /// caller's policy.
    Problem(Problem),
}

/// The one loop that reads items: records from `scanner` into `asm` until
/// an item is complete, the segment ends, or something is wrong. Every
/// reader of the log (recovery, replay, the follower) reads through it and
/// hands what it returns to its own policy.
pub(crate) fn next_item(scanner: &mut SegmentScanner, asm: &mut Assembler) -> io::Result<Next> {
    let mut start = None;
    let problem = loop {
        match scanner.next()? {
            Scan::Record {
                offset,
                kind,
                payload,
            } => {
                let start = *start.get_or_insert(offset);
                match asm.push(offset, kind, payload) {
                    Step::Pending => continue,
                    Step::Ready => {
                        let end = scanner.pos();
                        return Ok(Next::Item { start, end });
                    }
                    Step::Problem(problem) => break problem,
                }
            }
            Scan::End => match asm.finish_segment() {
                Some(problem) => break problem,
                None => {
                    return Ok(Next::End {
                        valid_len: scanner.len(),
                    })
                }
            },
            Scan::ZeroTail { offset } => match asm.finish_segment() {
                Some(problem) => break problem,
                None => return Ok(Next::End { valid_len: offset }),
            },
            Scan::Bad { offset, kind } => break Problem::bad_record(offset, kind),
        }
    };
    Ok(Next::Problem(problem))
}

/// Whether a valid record follows `problem` in the segment `scanner`
/// reads: damage with valid data after it cannot be a torn write.
pub(crate) fn valid_after(scanner: &mut SegmentScanner, problem: &Problem) -> io::Result<bool> {
    if problem.record_valid {
        return Ok(true);
    }
    match problem.resync {
        Resync::SkipFrom(offset) => Ok(scanner.find_valid_record(offset + 1)?.is_some()),
        Resync::Retry(_) | Resync::SegmentEnd => Ok(false),
    }
}

/// Whether the segment `file` (its first `len` bytes) holds any valid
/// record.
pub(crate) fn holds_valid(
    file: std::sync::Arc<dyn crate::storage::StorageFile>,
    len: u64,
) -> io::Result<bool> {
    Ok(SegmentScanner::new(file, len)
        .find_valid_record(0)?
        .is_some())
}
