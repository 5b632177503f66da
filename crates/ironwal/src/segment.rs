//! Segment files: naming, discovery and the directory lock.
//!
//! A segment is named `<20-digit nanoseconds since the epoch>.wal`; the
//! lexicographic order of names is the log order. Anything else in the
//! directory is ignored and never touched.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::storage::{DirLock, Storage};

/// Digits in a segment name before the `.wal` extension.
const ID_DIGITS: usize = 20;

/// The identity of a segment: the number in its file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId(u64);

impl SegmentId {
    /// Wraps a raw id.
    pub const fn new(raw: u64) -> Self {
        SegmentId(raw)
    }

    /// The raw id (nanoseconds since the Unix epoch when it was named).
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The segment's file name.
    pub fn file_name(self) -> String {
        format!("{:0width$}.wal", self.0, width = ID_DIGITS)
    }

    /// Parses a segment file name; `None` for any other name.
    pub fn parse(name: &str) -> Option<Self> {
        let digits = name.strip_suffix(".wal")?;
        if digits.len() != ID_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(SegmentId)
    }

    /// The id for a new segment: the current time, but always greater than
    /// `after` so names keep increasing when the clock goes backwards.
    pub(crate) fn next_after(after: Option<SegmentId>) -> SegmentId {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Self::next_at(after, now)
    }

    fn next_at(after: Option<SegmentId>, now: u64) -> SegmentId {
        match after {
            Some(SegmentId(last)) if last >= now => SegmentId(last.saturating_add(1)),
            _ => SegmentId(now),
        }
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:0width$}", self.0, width = ID_DIGITS)
    }
}

/// The segments of a directory, in log order.
pub(crate) fn list_segments(
    storage: &dyn Storage,
    dir: &Path,
) -> Result<Vec<(SegmentId, PathBuf)>> {
    let names = storage.list(dir).map_err(Error::io(dir))?;
    let mut segments: Vec<_> = names
        .iter()
        .filter_map(|name| SegmentId::parse(name).map(|id| (id, dir.join(name))))
        .collect();
    segments.sort_unstable_by_key(|(id, _)| *id);
    Ok(segments)
}

/// How long a lock that is held is tried again before `Locked`: a child
/// process the program starts holds copies of its open files from fork to
/// exec, the lock's among them, so a log closed and reopened while another
/// thread starts a process can find its own released lock still held for
/// that instant.
const LOCK_PATIENCE: Duration = Duration::from_millis(100);

/// Takes the directory's exclusive lock.
pub(crate) fn lock_dir(storage: &dyn Storage, dir: &Path) -> Result<Box<dyn DirLock>> {
    let deadline = Instant::now() + LOCK_PATIENCE;
    loop {
        match storage.try_lock_dir(dir) {
            Ok(Some(lock)) => return Ok(lock),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) => {
                return Err(Error::Locked {
                    dir: dir.to_path_buf(),
                })
            }
            Err(source) => {
                return Err(Error::Io {
                    path: crate::storage::lock_path(dir),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_twenty_digits_and_parse_back() {
        let id = SegmentId::new(1_745_172_985_771_529_746);
        assert_eq!(id.file_name(), "01745172985771529746.wal");
        assert_eq!(SegmentId::parse(&id.file_name()), Some(id));
    }

    #[test]
    fn other_names_are_not_segments() {
        for name in [
            "LOCK",
            "1745172985771529746.wal",
            "01745172985771529746.wal.corrupt",
            "0174517298577152974a.wal",
            "99999999999999999999.wal",
            "01745172985771529746.WAL",
        ] {
            assert_eq!(SegmentId::parse(name), None, "{name}");
        }
    }

    #[test]
    fn clock_going_backwards_still_gives_increasing_ids() {
        let last = SegmentId::new(5_000);
        assert_eq!(SegmentId::next_at(Some(last), 4_000), SegmentId::new(5_001));
        assert_eq!(SegmentId::next_at(Some(last), 5_000), SegmentId::new(5_001));
        assert_eq!(SegmentId::next_at(Some(last), 9_000), SegmentId::new(9_000));
        assert_eq!(SegmentId::next_at(None, 7), SegmentId::new(7));
    }
}
