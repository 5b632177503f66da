//! Segment files for the writer: creating them, filling them with zeros
//! ahead of use, and the background thread that keeps the next one ready.
//!
//! Why zeros: an fdatasync after writing into blocks that are already
//! allocated and written needs no file-system metadata change (no journal
//! commit on ext4), which roughly halves its cost.
//!
//! The life of a preallocated segment:
//! 1. prepared: created as `<id>.wal.prepared`, zero-filled and synced. No
//!    reader looks at that name (kevo globs `*.wal`), and at most one exists.
//! 2. active: renamed to `<id>.wal` (and the directory synced) when rotation
//!    takes it. Its zero tail is a crash-time state only.
//! 3. sealed, or closed: cut to its last entry, so a log at rest holds no
//!    zeros for kevo's reader to trip on.
//!
//! Preallocation is an optimisation: when it fails (a full disk, say), the
//! log goes on without it and counts the failure.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::segment::SegmentId;
use crate::segment_record::SealedSegment;
use crate::seq::Seq;
use crate::sparse_index::SparseIndex;
use crate::storage::{OpenMode, Storage, StorageFile};

/// Bytes of zeros written per call while preparing a segment.
const ZERO_CHUNK: usize = 1024 * 1024;

/// The suffix of a prepared segment's name, after `<id>.wal`.
const PREPARED_SUFFIX: &str = ".prepared";

/// A segment's place in the log.
#[derive(Clone, Debug)]
pub(super) struct SegmentMeta {
    pub(super) id: SegmentId,
    pub(super) path: Arc<Path>,
    pub(super) first_seq: Option<Seq>,
    pub(super) last_seq: Option<Seq>,
    /// Bytes of the segment that hold the log (for a sealed segment; the
    /// active one's is `Active::written`). Past it: zeros or nothing.
    pub(super) len: u64,
    /// Where entries start, a point every 32 to 64 KiB (shared by the
    /// clones; see `sparse_index`).
    pub(super) index: Arc<SparseIndex>,
}

impl SegmentMeta {
    /// The segment as the segment record lists it once sealed.
    pub(super) fn recorded(&self) -> SealedSegment {
        SealedSegment {
            id: self.id,
            len: self.len,
            first: self.first_seq,
            last: self.last_seq,
        }
    }
}

/// The segment appends go to.
#[derive(Debug)]
pub(super) struct Active {
    pub(super) meta: SegmentMeta,
    pub(super) file: Arc<dyn StorageFile>,
    /// Bytes of the segment handed to the file.
    pub(super) written: u64,
    /// Bytes of the segment known durable (covered by a successful sync,
    /// or found on disk when the log was opened).
    pub(super) synced: u64,
    /// Bytes of the segment whose write-back the background syncer has
    /// started (a hint; see `StorageFile::start_writeback`).
    pub(super) hinted: u64,
}

impl Active {
    pub(super) fn new(segment: NewSegment) -> Self {
        let meta = SegmentMeta {
            id: segment.id,
            path: segment.path,
            first_seq: None,
            last_seq: None,
            len: 0,
            index: Arc::default(),
        };
        Active {
            meta,
            file: segment.file,
            written: 0,
            synced: 0,
            hinted: 0,
        }
    }
}

/// A newly created segment file.
#[derive(Debug)]
pub(super) struct NewSegment {
    pub(super) id: SegmentId,
    pub(super) path: Arc<Path>,
    pub(super) file: Arc<dyn StorageFile>,
}

/// The name a prepared segment has until it becomes active.
pub(super) fn prepared_name(id: SegmentId) -> String {
    format!("{}{PREPARED_SUFFIX}", id.file_name())
}

/// Whether `name` is a prepared segment's (left behind by a crash).
pub(super) fn is_prepared_name(name: &str) -> bool {
    name.strip_suffix(PREPARED_SUFFIX)
        .and_then(SegmentId::parse)
        .is_some()
}

/// Creates an empty segment named after the clock (but above `after`) and
/// makes its creation durable (directory fsync).
pub(super) fn create_segment(
    storage: &dyn Storage,
    dir: &Path,
    after: Option<SegmentId>,
) -> Result<NewSegment> {
    let id = SegmentId::next_after(after);
    let path = dir.join(id.file_name());
    let file = storage
        .open(&path, OpenMode::CreateNew)
        .map_err(Error::io(&path))?;
    if let Err(source) = storage.sync_dir(dir) {
        drop(file);
        let _ = storage.remove_file(&path);
        return Err(Error::Io {
            path: dir.to_path_buf(),
            source,
        });
    }
    Ok(NewSegment {
        id,
        path: Arc::from(path.as_path()),
        file,
    })
}

/// Writes zeros over `[from, to)` of `file`; stops early (successfully) when
/// `stop` is set.
fn zero_fill(file: &dyn StorageFile, from: u64, to: u64, stop: &AtomicBool) -> io::Result<()> {
    let zeros =
        vec![0u8; ZERO_CHUNK.min(usize::try_from(to.saturating_sub(from)).unwrap_or(ZERO_CHUNK))];
    let mut at = from;
    while at < to && !stop.load(Ordering::Relaxed) {
        let n = (to - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Zero-fills the active segment from its data's end `len` to `size`, so
/// appends overwrite written blocks. Best effort: on failure (no space, say)
/// the zeros are cut back off, a warning is logged, `failures` counts it,
/// and the segment is used as it is.
pub(super) fn preallocate_active(
    file: &dyn StorageFile,
    path: &Path,
    len: u64,
    size: u64,
    failures: &AtomicU64,
) {
    let filled = file.len().and_then(|now| {
        if now >= size {
            return Ok(());
        }
        zero_fill(file, now.max(len), size, &AtomicBool::new(false))?;
        file.sync_data()
    });
    if let Err(error) = filled {
        failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%error, segment = %path.display(), "could not preallocate the segment; going on without");
        if let Err(error) = file.set_len(len).and_then(|()| file.sync_data()) {
            tracing::warn!(%error, segment = %path.display(), "could not cut the partial preallocation back");
        }
    }
}

/// Removes prepared segments a crash left behind (only names of the form
/// `<id>.wal.prepared`, which ironwal alone creates).
pub(super) fn remove_stale_prepared(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let names = storage.list(dir).map_err(Error::io(dir))?;
    let mut removed = false;
    for name in names.iter().filter(|n| is_prepared_name(n)) {
        let path = dir.join(name);
        storage.remove_file(&path).map_err(Error::io(&path))?;
        tracing::info!(segment = %path.display(), "removed a prepared segment left by a crash");
        removed = true;
    }
    if removed {
        storage.sync_dir(dir).map_err(Error::io(dir))?;
    }
    Ok(())
}

/// A prepared segment: zero-filled and synced under its prepared name.
#[derive(Debug)]
pub(super) struct Prepared {
    id: SegmentId,
    path: PathBuf,
    file: Arc<dyn StorageFile>,
}

impl Prepared {
    /// Renames the segment to its `*.wal` name and syncs the directory: from
    /// here on it is part of the log.
    pub(super) fn activate(self, storage: &dyn Storage, dir: &Path) -> Result<NewSegment> {
        let path = dir.join(self.id.file_name());
        let renamed = storage
            .rename(&self.path, &path)
            .and_then(|()| storage.sync_dir(dir));
        if let Err(source) = renamed {
            let _ = storage.remove_file(&self.path);
            let _ = storage.remove_file(&path);
            return Err(Error::Io { path, source });
        }
        Ok(NewSegment {
            id: self.id,
            path: Arc::from(path.as_path()),
            file: self.file,
        })
    }
}

/// Keeps the next segment created, zero-filled and synced ahead of need, on
/// a thread of its own, so rotation costs a rename.
#[derive(Debug)]
pub(super) struct Preparer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    size: u64,
    state: Mutex<PrepState>,
    changed: Condvar,
    stop: AtomicBool,
    /// Preallocations that failed (and were done without).
    failures: AtomicU64,
}

#[derive(Debug, Default)]
struct PrepState {
    /// Prepare a segment named above this id.
    request: Option<SegmentId>,
    busy: bool,
    ready: Option<Prepared>,
}

impl Preparer {
    /// Starts the thread and asks it for a segment named above `after`.
    pub(super) fn start(
        storage: Arc<dyn Storage>,
        dir: PathBuf,
        size: u64,
        after: SegmentId,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            storage,
            dir,
            size,
            state: Mutex::new(PrepState {
                request: Some(after),
                busy: false,
                ready: None,
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            failures: AtomicU64::new(0),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ironwal-prepare".into())
            .spawn(move || worker.run())
            .map_err(Error::io(&shared.dir))?;
        Ok(Preparer {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The prepared segment, if one named above `after` is ready (waiting
    /// for one being prepared), and then asks for the next. Returns `None`
    /// if preparation failed; the caller creates a segment itself and then
    /// calls [`Preparer::request`] with its id, so the next prepared segment
    /// is named after it.
    pub(super) fn take(&self, after: SegmentId) -> Option<Prepared> {
        let mut st = self.shared.state.lock();
        while (st.busy || st.request.is_some()) && !self.shared.stop.load(Ordering::Relaxed) {
            self.shared.changed.wait(&mut st);
        }
        let ready = st.ready.take()?;
        if ready.id <= after {
            // Prepared for a rotation that did not use it: it would sit
            // before the active segment. Remove it rather than leak its space.
            drop(st);
            self.shared.discard(&ready);
            return None;
        }
        st.request = Some(ready.id);
        self.shared.changed.notify_all();
        Some(ready)
    }

    /// Counts a preallocation that failed.
    pub(super) fn failures(&self) -> &AtomicU64 {
        &self.shared.failures
    }

    /// Asks for a segment named above `after`.
    pub(super) fn request(&self, after: SegmentId) {
        let mut st = self.shared.state.lock();
        st.request = Some(after);
        self.shared.changed.notify_all();
    }

    /// Stops the thread, waits for it, and removes the prepared segment (or
    /// the half-filled one): a log at rest keeps no preallocated space.
    pub(super) fn stop(&self) {
        {
            // Under the lock: the worker checks `stop` under it before it
            // waits, so this wake-up cannot fall between check and wait.
            let _st = self.shared.state.lock();
            self.shared.stop.store(true, Ordering::Relaxed);
            self.shared.changed.notify_all();
        }
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
        let ready = self.shared.state.lock().ready.take();
        if let Some(ready) = ready {
            self.shared.discard(&ready);
        }
    }
}

impl Shared {
    fn run(&self) {
        let mut st = self.state.lock();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let Some(after) = st.request.take().filter(|_| st.ready.is_none()) else {
                self.changed.wait(&mut st);
                continue;
            };
            st.busy = true;
            drop(st);
            let prepared = self.prepare(after);
            st = self.state.lock();
            st.busy = false;
            match prepared {
                Ok(segment) if !self.stop.load(Ordering::Relaxed) => {
                    tracing::debug!(segment = %segment.path.display(), "prepared segment");
                    st.ready = Some(segment);
                }
                Ok(segment) => self.discard(&segment),
                Err(error) => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, "could not prepare the next segment; rotation will create it");
                }
            }
            self.changed.notify_all();
        }
    }

    /// Creates `<id>.wal.prepared`, fills it with zeros and syncs it. No
    /// directory fsync: the name only matters once it is renamed into the
    /// log, and activation syncs the directory then.
    fn prepare(&self, after: SegmentId) -> Result<Prepared> {
        let id = SegmentId::next_after(Some(after));
        let path = self.dir.join(prepared_name(id));
        let file = self
            .storage
            .open(&path, OpenMode::CreateNew)
            .map_err(Error::io(&path))?;
        let prepared = Prepared { id, path, file };
        let filled = zero_fill(&*prepared.file, 0, self.size, &self.stop)
            .and_then(|()| prepared.file.sync_data());
        if let Err(source) = filled {
            self.discard(&prepared);
            return Err(Error::Io {
                path: prepared.path,
                source,
            });
        }
        Ok(prepared)
    }

    fn discard(&self, prepared: &Prepared) {
        if let Err(error) = self.storage.remove_file(&prepared.path) {
            tracing::warn!(%error, segment = %prepared.path.display(), "could not remove a prepared segment");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_names_are_not_segment_names() {
        let id = SegmentId::new(1_745_172_985_771_529_746);
        let name = prepared_name(id);
        assert_eq!(name, "01745172985771529746.wal.prepared");
        assert!(is_prepared_name(&name));
        assert_eq!(SegmentId::parse(&name), None);
        assert!(!name.ends_with(".wal"), "kevo globs *.wal");
        for other in ["LOCK", "01745172985771529746.wal", "x.wal.prepared"] {
            assert!(!is_prepared_name(other), "{other}");
        }
    }
}
