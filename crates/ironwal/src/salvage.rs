//! Salvage: copy every intact entry of a damaged log into a new, clean log.
//!
//! The source is read under `SkipCorrupted`; each segment's intact items
//! are re-encoded, with their original sequence numbers and batches kept
//! whole, into a segment of the same name in the destination. The source is
//! never modified. The result reads clean in every recovery mode.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::entry::MAX_FIELD_LEN;
use crate::format::{encode_batch, encode_entry};
use crate::recovery::LogReader;
use crate::report::{DroppedRange, RecoveryMode, RecoveryReport};
use crate::segment::SegmentId;
use crate::storage::{default_storage, OpenMode, PathKind, Storage, StorageFile};
use crate::write_batch::WriteBatch;

/// What [`salvage`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SalvageReport {
    /// The source read under `SkipCorrupted`: every skipped range is in
    /// `source.dropped`.
    pub source: RecoveryReport,
    /// Segment files written to the destination.
    pub written: Vec<PathBuf>,
    /// Operations copied.
    pub entries: u64,
}

impl SalvageReport {
    /// The byte ranges of the source that were not copied.
    pub fn skipped(&self) -> &[DroppedRange] {
        &self.source.dropped
    }
}

/// Copies every intact entry of the log at `source` (a directory or one
/// segment file) into a new log in `dest`, which must be absent or empty,
/// on the real file system.
pub fn salvage(source: impl AsRef<Path>, dest: impl AsRef<Path>) -> Result<SalvageReport> {
    salvage_with(default_storage(), source, dest)
}

/// [`salvage`] through `storage`. The copy is read back before this
/// returns; if anything fails, the files it wrote are removed again.
pub fn salvage_with(
    storage: Arc<dyn Storage>,
    source: impl AsRef<Path>,
    dest: impl AsRef<Path>,
) -> Result<SalvageReport> {
    let dest = dest.as_ref();
    match storage.kind_of(dest).map_err(Error::io(dest))? {
        PathKind::Missing => {}
        PathKind::Dir if storage.list(dest).map_err(Error::io(dest))?.is_empty() => {}
        _ => {
            let source = std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the destination must be absent or empty",
            );
            return Err(Error::Io {
                path: dest.to_path_buf(),
                source,
            });
        }
    }
    let reader = LogReader::open_with(Arc::clone(&storage), source, RecoveryMode::SkipCorrupted)?;
    storage.create_dir_all(dest).map_err(Error::io(dest))?;
    // Each source segment goes to the segment of the same name; a file
    // without a segment's name (given alone) gets a fresh one, so the copy
    // is a log every reader reads.
    let mut fresh: Option<SegmentId> = None;
    let place = |segment: &Path| -> Result<PathBuf> {
        let name = segment.file_name().and_then(|n| n.to_str());
        let id = match name.and_then(SegmentId::parse) {
            Some(id) => id,
            None => *fresh.get_or_insert_with(|| SegmentId::next_after(None)),
        };
        Ok(dest.join(id.file_name()))
    };
    let report = copy_intact(&*storage, reader, place)?;
    let checked = storage
        .sync_dir(dest)
        .map_err(Error::io(dest))
        .and_then(|()| read_back(&storage, &[dest], report.entries));
    if let Err(e) = checked {
        remove_all(&*storage, &report.written);
        return Err(e);
    }
    Ok(report)
}

/// Reads each of `paths` (a log directory or segment files) back strictly:
/// the copy must read clean and hold every operation copied, `entries`.
pub(crate) fn read_back<P: AsRef<Path>>(
    storage: &Arc<dyn Storage>,
    paths: &[P],
    entries: u64,
) -> Result<()> {
    let mut read = 0;
    for path in paths {
        let mut reader = LogReader::open_with(Arc::clone(storage), path, RecoveryMode::Strict)?;
        while let Some(item) = reader.next_item()? {
            read += item.len() as u64;
        }
    }
    match read == entries {
        true => Ok(()),
        false => Err(Error::Internal("the copy does not read back whole")),
    }
}

/// Removes the files a failed salvage wrote, best effort (it is already
/// failing).
fn remove_all(storage: &dyn Storage, written: &[PathBuf]) {
    for path in written {
        if let Err(error) = storage.remove_file(path) {
            tracing::warn!(%error, path = %path.display(), "could not remove a partial copy");
        }
    }
}

/// Copies every intact item `reader` yields into the file `place` names for
/// its source segment, each file synced when done. On failure the files
/// written so far are removed.
pub(crate) fn copy_intact(
    storage: &dyn Storage,
    mut reader: LogReader,
    mut place: impl FnMut(&Path) -> Result<PathBuf>,
) -> Result<SalvageReport> {
    let mut written = Vec::new();
    let mut entries = 0;
    match copy_items(storage, &mut reader, &mut place, &mut written, &mut entries) {
        Ok(()) => Ok(SalvageReport {
            source: reader.report().clone(),
            written,
            entries,
        }),
        Err(e) => {
            remove_all(storage, &written);
            Err(e)
        }
    }
}

fn copy_items(
    storage: &dyn Storage,
    reader: &mut LogReader,
    place: &mut impl FnMut(&Path) -> Result<PathBuf>,
    written: &mut Vec<PathBuf>,
    entries: &mut u64,
) -> Result<()> {
    let mut out: Option<Output> = None;
    let mut source: Option<PathBuf> = None;
    let mut buf = Vec::new();
    let mut batch = WriteBatch::new();
    while let Some(item) = reader.next_item()? {
        // Items come segment by segment; each segment has its own copy.
        if source.as_deref() != Some(item.segment()) {
            if let Some(done) = out.take() {
                done.finish()?;
            }
            let path = place(item.segment())?;
            let file = storage
                .open(&path, OpenMode::CreateNew)
                .map_err(Error::io(&path))?;
            written.push(path.clone());
            source = Some(item.segment().to_path_buf());
            out = Some(Output { path, file, len: 0 });
        }
        buf.clear();
        let too_large = |e: crate::format::TooLarge| Error::TooLarge {
            what: crate::error::Oversized::Entry,
            len: e.len,
            max: MAX_FIELD_LEN,
        };
        let mut ops = item.iter();
        let first = ops.next();
        match (first, item.is_batch()) {
            (Some(op), false) => {
                encode_entry(
                    &mut buf,
                    op.op,
                    op.seq.get(),
                    op.key,
                    op.value.unwrap_or_default(),
                )
                .map_err(too_large)?;
            }
            (Some(op), true) => {
                batch.clear();
                for op in std::iter::once(op).chain(ops) {
                    batch.push(op.op, op.key, op.value.unwrap_or_default());
                }
                let (encoded, count) = batch.encoded()?;
                encode_batch(&mut buf, op.seq.get(), count, encoded).map_err(too_large)?;
            }
            (None, _) => continue,
        }
        *entries += item.len() as u64;
        if let Some(out) = &mut out {
            out.file
                .write_all_at(&buf, out.len)
                .map_err(Error::io(&out.path))?;
            out.len += buf.len() as u64;
        }
    }
    match out {
        Some(done) => done.finish(),
        None => Ok(()),
    }
}

/// A destination segment being written.
struct Output {
    path: PathBuf,
    file: Arc<dyn StorageFile>,
    len: u64,
}

impl Output {
    fn finish(self) -> Result<()> {
        self.file.sync_data().map_err(Error::io(&self.path))
    }
}
