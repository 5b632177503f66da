//! What opening a log does to its directory once recovery has read it:
//! cutting torn tails, moving what point-in-time recovery left out aside,
//! and keeping the segment record in step.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::report::{DropCause, RecoveryMode, RecoveryReport};
use crate::segment_record::{SegmentRecord, RECORD_FILE};
use crate::storage::{OpenMode, Storage};

/// Applies what recovery decided: truncates torn tails and, after a
/// point-in-time recovery, moves the unrecovered bytes out of the log.
pub(super) fn repair(storage: &dyn Storage, dir: &Path, report: &RecoveryReport) -> Result<()> {
    let mut changed = false;
    for range in &report.dropped {
        let path = &range.segment;
        if range.kind.is_segment_level() {
            // A segment that is missing, short or out of place: no bytes to
            // cut (one that is out of place is among the ignored segments).
            continue;
        }
        match (range.cause, report.mode) {
            (DropCause::TornTail, _) => {
                tracing::warn!(segment = %path.display(), offset = range.offset, "truncating torn tail");
            }
            (DropCause::Corruption, RecoveryMode::PointInTime) => {
                let aside = copy_aside(storage, dir, path, range.offset)?;
                tracing::warn!(
                    segment = %path.display(),
                    offset = range.offset,
                    aside = %aside.display(),
                    "moved unrecovered bytes aside"
                );
                changed = true;
            }
            // Skipped ranges stay where they are; salvage belongs to tools.
            (DropCause::Corruption, _) => continue,
        }
        let file = storage
            .open(path, OpenMode::ReadWrite)
            .map_err(Error::io(path))?;
        file.set_len(range.offset).map_err(Error::io(path))?;
        file.sync_data().map_err(Error::io(path))?;
    }
    for path in &report.ignored_segments {
        let mut aside = path.clone().into_os_string();
        aside.push(".corrupt");
        tracing::warn!(segment = %path.display(), "moving segment after the recovery point aside");
        storage
            .rename(path, Path::new(&aside))
            .map_err(Error::io(path))?;
        changed = true;
    }
    if changed {
        storage.sync_dir(dir).map_err(Error::io(dir))?;
    }
    Ok(())
}

/// Copies the bytes of `from` starting at `offset` into a new file beside
/// it, `<name>.at-<offset>.corrupt` (or `.at-<offset>-<n>.corrupt` when an
/// earlier recovery left one of that name), durably; returns its path.
fn copy_aside(storage: &dyn Storage, dir: &Path, from: &Path, offset: u64) -> Result<PathBuf> {
    let name = from
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("segment");
    let mut attempt = 0u32;
    let (to, dst) = loop {
        let to = match attempt {
            0 => dir.join(format!("{name}.at-{offset}.corrupt")),
            n => dir.join(format!("{name}.at-{offset}-{n}.corrupt")),
        };
        match storage.open(&to, OpenMode::CreateNew) {
            Ok(file) => break (to, file),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 10_000 => {
                attempt += 1
            }
            Err(e) => {
                return Err(Error::Io {
                    path: to,
                    source: e,
                })
            }
        }
    };
    let src = storage
        .open(from, OpenMode::Read)
        .map_err(Error::io(from))?;
    let mut buf = vec![0u8; 1024 * 1024];
    let mut pos = offset;
    let mut out = 0;
    loop {
        let n = crate::storage::read_up_to(&*src, &mut buf, pos).map_err(Error::io(from))?;
        if n == 0 {
            break;
        }
        dst.write_all_at(&buf[..n], out).map_err(Error::io(&to))?;
        pos += n as u64;
        out += n as u64;
    }
    dst.sync_data().map_err(Error::io(&to))?;
    Ok(to)
}

/// Writes the segment record when opening. On failure (a full disk, say)
/// the old record is removed rather than left stale, so the log still opens
/// and a later open rebuilds the record; only if that fails too does open
/// fail.
pub(super) fn store_record_at_open(
    storage: &dyn Storage,
    dir: &Path,
    record: &SegmentRecord,
) -> Result<()> {
    let Err(error) = record.store(storage, dir) else {
        return Ok(());
    };
    tracing::warn!(%error, "could not write the segment record; removing the old one");
    forget_record(storage, dir).map_err(|_| error)
}

/// Removes the segment record, durably, if there is one.
pub(super) fn forget_record(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let path = dir.join(RECORD_FILE);
    match storage.remove_file(&path) {
        Ok(()) => storage.sync_dir(dir).map_err(Error::io(dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io { path, source: e }),
    }
}
