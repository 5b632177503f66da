//! Segment files for the writer: creating them, filling them with zeros
//! ahead of use, and the background thread that keeps the next one ready.
//!
//! Why zeros: an fdatasync after writing into blocks that are already
//! allocated and written needs no file-system metadata change (no journal
//! commit on ext4), which roughly halves its cost. A zero-filled tail reads
//! as a clean end of the log, so a prepared segment is an empty segment to
//! every reader (kevo included), before, during and after a crash.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::segment::SegmentId;
use crate::storage::{OpenMode, Storage, StorageFile};

/// Bytes of zeros written per call while preparing a segment.
const ZERO_CHUNK: usize = 1024 * 1024;

/// A newly created segment file.
#[derive(Debug)]
pub(super) struct NewSegment {
    pub(super) id: SegmentId,
    pub(super) path: Arc<Path>,
    pub(super) file: Arc<dyn StorageFile>,
}

/// Creates a segment named after the clock (but above `after`); if
/// `zero_len` is set, fills it with that many zeros and syncs them. The
/// creation is made durable (directory fsync) before this returns.
pub(super) fn create_segment(
    storage: &dyn Storage,
    dir: &Path,
    after: Option<SegmentId>,
    zero_len: Option<u64>,
    stop: &AtomicBool,
) -> Result<NewSegment> {
    let id = SegmentId::next_after(after);
    let path = dir.join(id.file_name());
    let file = storage
        .open(&path, OpenMode::CreateNew)
        .map_err(Error::io(&path))?;
    let filled = match zero_len {
        Some(len) => zero_fill(&*file, 0, len, stop).and_then(|()| file.sync_data()),
        None => Ok(()),
    };
    if let Err(source) = filled {
        drop(file);
        let _ = storage.remove_file(&path);
        return Err(Error::Io { path, source });
    }
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
pub(super) fn zero_fill(
    file: &dyn StorageFile,
    from: u64,
    to: u64,
    stop: &AtomicBool,
) -> io::Result<()> {
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

/// Keeps the next segment created, zero-filled and synced ahead of need, on
/// a thread of its own, so rotation costs a pointer swap.
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
}

#[derive(Debug, Default)]
struct PrepState {
    /// Prepare a segment named above this id.
    request: Option<SegmentId>,
    busy: bool,
    ready: Option<NewSegment>,
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
    pub(super) fn take(&self, after: SegmentId) -> Option<NewSegment> {
        let mut st = self.shared.state.lock();
        while (st.busy || st.request.is_some()) && !self.shared.stop.load(Ordering::Relaxed) {
            self.shared.changed.wait(&mut st);
        }
        let ready = st.ready.take()?;
        if ready.id <= after {
            // Prepared for a rotation that did not use it: an empty segment
            // that would sit before the active one. Nothing reads it; remove
            // it rather than leak its space.
            drop(st);
            let _ = self.shared.storage.remove_file(&ready.path);
            return None;
        }
        st.request = Some(ready.id);
        self.shared.changed.notify_all();
        Some(ready)
    }

    /// Asks for a segment named above `after`.
    pub(super) fn request(&self, after: SegmentId) {
        let mut st = self.shared.state.lock();
        st.request = Some(after);
        self.shared.changed.notify_all();
    }

    /// Stops the thread (abandoning a half-filled segment, which reads as an
    /// empty one) and waits for it.
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
            let prepared = create_segment(
                &*self.storage,
                &self.dir,
                Some(after),
                Some(self.size),
                &self.stop,
            );
            st = self.state.lock();
            st.busy = false;
            match prepared {
                Ok(segment) if !self.stop.load(Ordering::Relaxed) => {
                    tracing::debug!(segment = %segment.path.display(), "prepared segment");
                    st.ready = Some(segment);
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "could not prepare the next segment; rotation will create it");
                }
            }
            self.changed.notify_all();
        }
    }
}
