//! Physical records off a segment file, through a read-ahead window.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)
)]

use std::io;
use std::sync::Arc;

use crate::error::CorruptionKind;
use crate::format::record::{checksum, HeaderProblem};
use crate::format::{RawHeader, RecordType, HEADER_SIZE, MAX_RECORD};
use crate::storage::{read_up_to, StorageFile};

/// Bytes read from a segment at a time.
const WINDOW: usize = 256 * 1024;

/// The first read-ahead of a window: a reader that wants one entry (a
/// positioned read) reads this much, one that goes on doubles it each time
/// up to [`WINDOW`].
const FIRST_WINDOW: usize = 16 * 1024;

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
    /// How far the next refill reads ahead.
    ahead: usize,
}

impl Window {
    fn new(file: Arc<dyn StorageFile>, len: u64) -> Self {
        Window {
            file,
            len,
            buf: Vec::new(),
            start: 0,
            filled: 0,
            ahead: FIRST_WINDOW,
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
            .min(self.ahead.max(n));
        self.ahead = (self.ahead * 2).min(WINDOW);
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
