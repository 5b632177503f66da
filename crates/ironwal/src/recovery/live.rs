//! Reading beside a live writer. A reader that gets to the end of the
//! active segment while the writer is writing there can see a record half
//! copied into the page cache, zeros where the next write lands a moment
//! later, or a file longer than when it looked at its length. None of that
//! is damage, and none of it may be reported as such: damage found in the
//! active segment while another handle holds the log's lock is read again,
//! from the start of its entry, until it resolves, the writer lets go of
//! the log, or it has stayed for [`PATIENCE`].

use std::time::{Duration, Instant};

use super::LogReader;
use crate::error::{Error, Result};
use crate::reader::{next_item, valid_after, Assembler, Next, Problem, SegmentScanner};
use crate::storage::OpenMode;

/// How long damage in a live writer's active segment must stay before it is
/// reported. A write in flight completes in microseconds to milliseconds;
/// a pause in between lets the writer move on.
const PATIENCE: Duration = Duration::from_secs(1);
const PAUSE: Duration = Duration::from_millis(10);

/// What reading again found.
#[derive(Debug)]
pub(super) enum Recheck {
    /// The entry reads now: the reader goes on from its start.
    Resolved,
    /// Still unreadable at the end of the segment, with the writer still
    /// there and nothing valid after it: the writer's work in progress.
    InFlight,
    /// Damage, to be dealt with as the mode says, as the reader found it
    /// (the log is not live, the problem is not in the active segment, or
    /// it stayed).
    Confirmed,
}

impl LogReader {
    /// Whether another handle holds the log's lock now. Asks without
    /// waiting, and a lock it gets is released at once.
    fn writer_live(&self) -> bool {
        let Some(dir) = &self.live_dir else {
            return false;
        };
        matches!(self.storage.try_lock_dir(dir), Ok(None))
    }

    /// Reads the entry at `unit` of the segment being read again, while a
    /// writer may still be writing it (see the module comment). The
    /// re-reads use a scanner and an assembler of their own: unless the
    /// entry now reads (or is the live writer's tip), the reader's state is
    /// left exactly as it was, and the problem is judged as found.
    pub(super) fn recheck_live(&mut self, unit: u64, problem: &Problem) -> Result<Recheck> {
        // Only the last segment listed can be the one being written.
        let active = self.next_source == self.sources.len();
        let again = self.resumed_at.take() == Some((self.next_source, unit));
        if !active || again || self.live_dir.is_none() {
            return Ok(Recheck::Confirmed);
        }
        let started = Instant::now();
        loop {
            // Always from a fresh look at the file: the length the reader
            // took may be from before the writer's last write.
            let mut scanner = self.scanner_from(unit)?;
            let mut asm = Assembler::default();
            let next = next_item(&mut scanner, &mut asm).map_err(Error::io(&self.path))?;
            let live = self.writer_live();
            // With no writer, only a file that changed since the reader
            // measured it can read differently now.
            let grew = self
                .scanner
                .as_ref()
                .is_some_and(|s| s.len() != scanner.len());
            if !live && !grew {
                return Ok(Recheck::Confirmed);
            }
            let Next::Problem(now) = next else {
                if live {
                    tracing::debug!(segment = %self.path.display(), unit, kind = %problem.kind, "a live writer's entry was in flight");
                }
                self.resume_at(scanner, unit);
                self.resumed_at = Some((self.next_source, unit));
                return Ok(Recheck::Resolved);
            };
            if !live {
                return Ok(Recheck::Confirmed);
            }
            if started.elapsed() >= PATIENCE {
                let after = valid_after(&mut scanner, &now).map_err(Error::io(&self.path))?;
                if after {
                    return Ok(Recheck::Confirmed);
                }
                self.resume_at(scanner, unit);
                return Ok(Recheck::InFlight);
            }
            std::thread::sleep(PAUSE);
        }
    }

    /// Goes on reading the segment with `scanner`, from `unit`, the start
    /// of the entry the reader was assembling (which is dropped).
    fn resume_at(&mut self, mut scanner: SegmentScanner, unit: u64) {
        self.asm.restart();
        scanner.seek(unit);
        if let Some(segment) = self.report.segments.last_mut() {
            segment.len = scanner.len();
        }
        self.scanner = Some(scanner);
    }

    /// A fresh scanner over the segment being read, as long as it is now,
    /// at `unit`.
    fn scanner_from(&self, unit: u64) -> Result<SegmentScanner> {
        let file = (self.storage)
            .open(&self.path, OpenMode::Read)
            .map_err(Error::io(&self.path))?;
        let len = file.len().map_err(Error::io(&self.path))?;
        let mut scanner = SegmentScanner::new(file, len);
        scanner.seek(unit);
        Ok(scanner)
    }

    /// Ends the log at `unit`, the live writer's tip: what follows is
    /// reported as in flight, not dropped.
    pub(super) fn in_flight(&mut self, unit: u64) {
        let len = self.scanner.as_ref().map_or(unit, SegmentScanner::len);
        tracing::debug!(segment = %self.path.display(), unit, "a live writer's tip is in flight");
        self.report.in_flight = Some(len.saturating_sub(unit));
        self.close_segment(unit);
        self.done = true;
    }
}
