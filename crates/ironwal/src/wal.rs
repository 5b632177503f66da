//! [`Wal`]: the append path, group commit, sync policies, rotation and
//! retention.
//!
//! Appenders encode their entry into a shared buffer under a short lock and
//! get their sequence number there, so file order is sequence order. Whoever
//! then needs the buffer on disk becomes the *leader*: it takes the buffer
//! (leaving an empty spare in its place for others to fill), writes it and
//! syncs with the lock released, and wakes everyone its sync covered. The lock
//! is never held across a write or an fsync.

use std::mem;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::format::entry::MAX_FIELD_LEN;
use crate::format::{encode_batch, encode_entry, Op};
use crate::options::{Options, SyncPolicy};
use crate::recovery::{DropCause, LogReader, RecoveryMode, RecoveryReport, Source};
use crate::segment::{list_segments, lock_dir, SegmentId};
use crate::seq::Seq;
use crate::storage::{DirLock, OpenMode, Storage, StorageFile};
use crate::write_batch::WriteBatch;

/// A write-ahead log open for appending.
///
/// `Wal` is `Send + Sync`; share it between threads with `Arc` and append
/// from all of them. Dropping it flushes and syncs what it can (ignoring
/// errors); call [`Wal::close`] to see them.
///
/// ```
/// # fn main() -> Result<(), ironwal::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// use ironwal::{Options, Wal};
///
/// let wal = Wal::open(dir.path(), Options::default())?;
/// let seq = wal.put(b"key", b"value")?;
/// wal.delete(b"key")?;
/// wal.close()?;
///
/// let wal = Wal::open(dir.path(), Options::default())?;
/// assert_eq!(wal.next_seq().get(), seq.get() + 2);
/// let entries: Vec<_> = wal.replay(seq)?.collect::<Result<_, _>>()?;
/// assert_eq!(entries.len(), 2);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Wal {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    options: Options,
    state: Mutex<State>,
    /// Signalled whenever a leader finishes a round of I/O.
    io_done: Condvar,
    /// Wakes the interval flusher early (on close).
    flusher_wake: Condvar,
    flusher: Mutex<Option<JoinHandle<()>>>,
    lock: Mutex<Option<Box<dyn DirLock>>>,
    report: RecoveryReport,
}

/// A segment's place in the log.
#[derive(Clone, Debug)]
struct SegmentMeta {
    id: SegmentId,
    path: Arc<Path>,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
}

#[derive(Debug)]
struct Active {
    meta: SegmentMeta,
    file: Arc<dyn StorageFile>,
    /// Bytes of the segment handed to the file.
    written: u64,
}

#[derive(Debug)]
struct State {
    closed: bool,
    poisoned: Option<Arc<Error>>,
    next_seq: u64,
    /// Encoded entries not yet handed to the file.
    buf: Vec<u8>,
    /// An empty buffer, swapped in while a leader writes `buf`.
    spare: Vec<u8>,
    active: Active,
    /// Segments before the active one, in log order.
    sealed: Vec<SegmentMeta>,
    /// Highest sequence assigned, written to the file, made durable.
    buffered_seq: u64,
    written_seq: u64,
    durable_seq: u64,
    /// Bytes written since the last fdatasync.
    unsynced: u64,
    /// A leader is writing or syncing.
    io_busy: bool,
    /// The active segment is being sealed and replaced: appends wait, so
    /// none is counted against the old segment while its bytes go to the new.
    rotating: bool,
}

/// Where an appender needs its entry before it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach {
    /// Handed to the operating system.
    Written,
    /// Durable on disk.
    Synced,
}

/// A segment of the log, as [`Wal::segments`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The segment's id.
    pub id: SegmentId,
    /// Its file.
    pub path: PathBuf,
    /// Lowest sequence in it.
    pub first_seq: Option<Seq>,
    /// Highest sequence in it.
    pub last_seq: Option<Seq>,
    /// Whether appends go to it.
    pub active: bool,
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`: takes the directory's
    /// lock, recovers the segments under `options.recovery_mode`, truncates a
    /// torn tail, and continues the last segment (or starts a new one when it
    /// is full). The next sequence is one past the highest recovered.
    ///
    /// Under `PointInTime`, the bytes after the recovery point are moved out
    /// of the log (into `<segment>.at-<offset>.corrupt` and
    /// `<segment>.corrupt` files beside it) so new appends follow the
    /// recovered prefix; nothing is deleted.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Wal> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let storage = Arc::clone(&options.storage);
        storage.create_dir_all(&dir).map_err(Error::io(&dir))?;
        let lock = lock_dir(&*storage, &dir)?;

        let sources = list_segments(&*storage, &dir)?
            .into_iter()
            .map(|(id, path)| Source {
                id: Some(id),
                path,
                limit: None,
            })
            .collect();
        let report = LogReader::from_sources(Arc::clone(&storage), sources, options.recovery_mode)
            .finish()?;
        repair(&*storage, &dir, &report)?;

        let mut sealed: Vec<SegmentMeta> = report
            .segments
            .iter()
            .filter_map(|s| {
                Some(SegmentMeta {
                    id: s.id?,
                    path: Arc::from(s.path.as_path()),
                    first_seq: s.first_seq.map(Seq::get),
                    last_seq: s.last_seq.map(Seq::get),
                })
            })
            .collect();
        let last = report.segments.last();
        let active = match (sealed.pop(), last) {
            (Some(meta), Some(last)) if last.valid_len < options.max_segment_size => {
                let file = storage
                    .open(&meta.path, OpenMode::ReadWrite)
                    .map_err(Error::io(&*meta.path))?;
                Active {
                    meta,
                    file,
                    written: last.valid_len,
                }
            }
            (meta, _) => {
                let after = meta.as_ref().map(|m| m.id);
                sealed.extend(meta);
                create_segment(&*storage, &dir, after)?
            }
        };

        let highest = report.highest_seq.map_or(0, Seq::get);
        let next_seq = highest.checked_add(1).ok_or(Error::SequenceExhausted)?;
        tracing::info!(
            dir = %dir.display(),
            segments = report.segments.len(),
            entries = report.entries,
            next_seq,
            "opened log"
        );
        let state = State {
            closed: false,
            poisoned: None,
            next_seq,
            buf: Vec::with_capacity(options.write_buffer_size),
            spare: Vec::with_capacity(options.write_buffer_size),
            active,
            sealed,
            buffered_seq: highest,
            written_seq: highest,
            durable_seq: highest,
            unsynced: 0,
            io_busy: false,
            rotating: false,
        };
        let inner = Arc::new(Inner {
            dir,
            options,
            state: Mutex::new(state),
            io_done: Condvar::new(),
            flusher_wake: Condvar::new(),
            flusher: Mutex::new(None),
            lock: Mutex::new(Some(lock)),
            report,
        });
        if let SyncPolicy::Interval(period) = inner.options.sync_policy {
            let worker = Arc::clone(&inner);
            let handle = std::thread::Builder::new()
                .name("ironwal-flusher".into())
                .spawn(move || worker.run_flusher(period))
                .map_err(Error::io(&inner.dir))?;
            *inner.flusher.lock() = Some(handle);
        }
        Ok(Wal { inner })
    }

    /// Appends a Put and returns its sequence number once the sync policy is
    /// satisfied.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<Seq> {
        self.append_op(Op::Put, key, value)
    }

    /// Appends a Delete.
    pub fn delete(&self, key: &[u8]) -> Result<Seq> {
        self.append_op(Op::Delete, key, &[])
    }

    /// Appends a Merge.
    pub fn merge(&self, key: &[u8], value: &[u8]) -> Result<Seq> {
        self.append_op(Op::Merge, key, value)
    }

    /// Appends a batch atomically and returns the sequence of its first
    /// operation; the others follow consecutively.
    pub fn write_batch(&self, batch: &WriteBatch) -> Result<Seq> {
        if batch.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let (ops, count) = batch.encoded()?;
        self.inner.append(u64::from(count), |buf, seq| {
            encode_batch(buf, seq, count, ops).map_err(|e| Error::TooLarge {
                what: "batch",
                len: e.len,
                max: MAX_FIELD_LEN,
            })
        })
    }

    fn append_op(&self, op: Op, key: &[u8], value: &[u8]) -> Result<Seq> {
        for (what, len) in [("key", key.len()), ("value", value.len())] {
            if len as u64 > MAX_FIELD_LEN {
                return Err(Error::TooLarge {
                    what,
                    len: len as u64,
                    max: MAX_FIELD_LEN,
                });
            }
        }
        self.inner.append(1, |buf, seq| {
            encode_entry(buf, op, seq, key, value).map_err(|e| Error::TooLarge {
                what: "entry",
                len: e.len,
                max: MAX_FIELD_LEN,
            })
        })
    }

    /// Writes everything appended so far and makes it durable.
    pub fn sync(&self) -> Result<()> {
        let mut st = self.inner.state.lock();
        if st.closed {
            return Err(Error::Closed);
        }
        let seq = st.buffered_seq;
        self.inner.wait_for(&mut st, seq, Reach::Synced)
    }

    /// Hands everything appended so far to the operating system (it then
    /// survives a crash of this process, not of the machine).
    pub fn flush(&self) -> Result<()> {
        let mut st = self.inner.state.lock();
        if st.closed {
            return Err(Error::Closed);
        }
        let seq = st.buffered_seq;
        self.inner.wait_for(&mut st, seq, Reach::Written)
    }

    /// Flushes, syncs and releases the directory lock. Appends after close
    /// fail with [`Error::Closed`]; closing twice is a no-op.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    /// The sequence the next append will get.
    pub fn next_seq(&self) -> Seq {
        Seq::new(self.inner.state.lock().next_seq)
    }

    /// The highest sequence appended (or recovered); `Seq::ZERO` if none.
    pub fn last_seq(&self) -> Seq {
        Seq::new(self.inner.state.lock().buffered_seq)
    }

    /// The highest sequence known durable: it and everything before it
    /// survive a crash.
    pub fn durable_seq(&self) -> Seq {
        Seq::new(self.inner.state.lock().durable_seq)
    }

    /// What recovery found when the log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The segments of the log, in order; the last is the active one.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let st = self.inner.state.lock();
        let info = |meta: &SegmentMeta, active| SegmentInfo {
            id: meta.id,
            path: meta.path.to_path_buf(),
            first_seq: meta.first_seq.map(Seq::new),
            last_seq: meta.last_seq.map(Seq::new),
            active,
        };
        st.sealed
            .iter()
            .map(|m| info(m, false))
            .chain([info(&st.active.meta, true)])
            .collect()
    }

    /// Reads the log's operations with a sequence of at least `from`,
    /// including everything appended so far (it is flushed first).
    pub fn replay(&self, from: Seq) -> Result<LogReader> {
        self.flush()?;
        let st = self.inner.state.lock();
        let source = |meta: &SegmentMeta, limit| Source {
            id: Some(meta.id),
            path: meta.path.to_path_buf(),
            limit,
        };
        let sources = st
            .sealed
            .iter()
            .map(|m| source(m, None))
            .chain([source(&st.active.meta, Some(st.active.written))])
            .collect();
        let storage = Arc::clone(&self.inner.options.storage);
        Ok(
            LogReader::from_sources(storage, sources, self.inner.options.recovery_mode)
                .from_seq(from),
        )
    }

    /// Retention: deletes the segments, oldest first, whose operations all
    /// have sequences below `seq` (say, everything a checkpoint covers). The
    /// active segment is never deleted, and neither is any segment after one
    /// that must stay. Returns the deleted files.
    pub fn remove_segments_before(&self, seq: Seq) -> Result<Vec<PathBuf>> {
        let doomed: Vec<SegmentMeta> = {
            let mut st = self.inner.state.lock();
            if st.closed {
                return Err(Error::Closed);
            }
            let mut keep_from = st
                .sealed
                .iter()
                .position(|m| m.last_seq.is_some_and(|last| last >= seq.get()))
                .unwrap_or(st.sealed.len());
            // The log's highest sequence must stay on disk, or a reopen would
            // number new entries from 1 again: keep the last segment holding
            // entries until the active one holds a durable entry.
            let active_durable = st
                .active
                .meta
                .first_seq
                .is_some_and(|first| first <= st.durable_seq);
            if !active_durable {
                if let Some(holder) = st.sealed.iter().rposition(|m| m.last_seq.is_some()) {
                    keep_from = keep_from.min(holder);
                }
            }
            st.sealed.drain(..keep_from).collect()
        };
        let storage = &*self.inner.options.storage;
        let mut removed = Vec::with_capacity(doomed.len());
        let mut failure = None;
        for (i, meta) in doomed.iter().enumerate() {
            if let Err(e) = storage.remove_file(&meta.path) {
                failure = Some((
                    i,
                    Error::Io {
                        path: meta.path.to_path_buf(),
                        source: e,
                    },
                ));
                break;
            }
            tracing::info!(segment = %meta.path.display(), "removed segment");
            removed.push(meta.path.to_path_buf());
        }
        if let Some((i, error)) = failure {
            // Put back what is still on disk so a later call can retry.
            let mut st = self.inner.state.lock();
            let rest = doomed.get(i..).unwrap_or_default().to_vec();
            st.sealed.splice(..0, rest);
            drop(st);
            if !removed.is_empty() {
                let _ = storage.sync_dir(&self.inner.dir);
            }
            return Err(error);
        }
        if !removed.is_empty() {
            storage
                .sync_dir(&self.inner.dir)
                .map_err(Error::io(&self.inner.dir))?;
        }
        Ok(removed)
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if let Err(error) = self.inner.close() {
            tracing::warn!(%error, "closing the log on drop failed");
        }
    }
}

impl Inner {
    /// Encodes an entry of `count` operations, assigns its sequences and
    /// waits as the sync policy requires.
    fn append(
        &self,
        count: u64,
        encode: impl FnOnce(&mut Vec<u8>, u64) -> Result<()>,
    ) -> Result<Seq> {
        let mut st = self.state.lock();
        self.make_room(&mut st)?;
        let seq = st.next_seq;
        let last = seq
            .checked_add(count - 1)
            .filter(|l| *l < u64::MAX)
            .ok_or(Error::SequenceExhausted)?;
        let before = st.buf.len();
        if let Err(e) = encode(&mut st.buf, seq) {
            st.buf.truncate(before);
            return Err(e);
        }
        st.next_seq = last + 1;
        st.buffered_seq = last;
        let meta = &mut st.active.meta;
        meta.first_seq.get_or_insert(seq);
        meta.last_seq = Some(last);

        let pending = st.buf.len();
        let reach = match self.options.sync_policy {
            SyncPolicy::Always => Some(Reach::Synced),
            SyncPolicy::Bytes(n) if st.unsynced + pending as u64 >= n => Some(Reach::Synced),
            _ if pending >= self.options.write_buffer_size => Some(Reach::Written),
            _ => None,
        };
        if let Some(reach) = reach {
            self.wait_for(&mut st, last, reach)?;
        }
        Ok(Seq::new(seq))
    }

    fn check_usable(&self, st: &State) -> Result<()> {
        if st.closed {
            return Err(Error::Closed);
        }
        if let Some(cause) = &st.poisoned {
            return Err(Error::Poisoned {
                cause: Arc::clone(cause),
            });
        }
        Ok(())
    }

    /// Returns once `seq` has reached `reach`, leading I/O rounds as needed.
    fn wait_for(&self, st: &mut MutexGuard<'_, State>, seq: u64, reach: Reach) -> Result<()> {
        loop {
            if let Some(cause) = &st.poisoned {
                return Err(Error::Poisoned {
                    cause: Arc::clone(cause),
                });
            }
            let done = match reach {
                Reach::Written => st.written_seq >= seq,
                Reach::Synced => st.durable_seq >= seq,
            };
            if done {
                return Ok(());
            }
            if st.io_busy {
                self.io_done.wait(st);
            } else {
                self.lead(st, reach);
            }
        }
    }

    /// One round of I/O: writes the whole buffer and, for `Synced`, syncs.
    /// On failure the log is poisoned.
    fn lead(&self, st: &mut MutexGuard<'_, State>, reach: Reach) {
        st.io_busy = true;
        let spare = mem::take(&mut st.spare);
        let mut data = mem::replace(&mut st.buf, spare);
        let upto = st.buffered_seq;
        let offset = st.active.written;
        let file = Arc::clone(&st.active.file);
        let sync = reach == Reach::Synced;
        let result = MutexGuard::unlocked(st, || {
            if !data.is_empty() {
                file.write_all_at(&data, offset)?;
            }
            if sync {
                file.sync_data()?;
            }
            Ok(())
        });
        st.io_busy = false;
        match result {
            Ok(()) => {
                st.active.written += data.len() as u64;
                st.written_seq = upto;
                st.unsynced += data.len() as u64;
                if sync {
                    st.durable_seq = upto;
                    st.unsynced = 0;
                }
            }
            Err(source) => {
                let path = st.active.meta.path.to_path_buf();
                self.poison(st, Error::Io { path, source });
            }
        }
        data.clear();
        if data.capacity() > 4 * self.options.write_buffer_size {
            data.shrink_to(self.options.write_buffer_size);
        }
        st.spare = data;
        self.io_done.notify_all();
    }

    fn poison(&self, st: &mut State, error: Error) {
        tracing::error!(%error, "write failed; the log accepts no more writes");
        st.poisoned.get_or_insert_with(|| Arc::new(error));
    }

    /// Before an append: checks the log is usable and, if the active segment
    /// is full, seals it (written and synced) and starts a new one.
    fn make_room(&self, st: &mut MutexGuard<'_, State>) -> Result<()> {
        loop {
            self.check_usable(st)?;
            let len = st.active.written + st.buf.len() as u64;
            if !st.rotating && (len < self.options.max_segment_size || len == 0) {
                return Ok(());
            }
            if st.io_busy {
                self.io_done.wait(st);
                continue;
            }
            self.rotate(st)?;
        }
    }

    fn rotate(&self, st: &mut MutexGuard<'_, State>) -> Result<()> {
        st.io_busy = true;
        st.rotating = true;
        let spare = mem::take(&mut st.spare);
        let mut data = mem::replace(&mut st.buf, spare);
        let upto = st.buffered_seq;
        let offset = st.active.written;
        let file = Arc::clone(&st.active.file);
        let after = st.active.meta.id;
        let storage = &*self.options.storage;
        let dir = &self.dir;
        let (sealed, created) = MutexGuard::unlocked(st, || {
            let sealed = (|| {
                if !data.is_empty() {
                    file.write_all_at(&data, offset)?;
                }
                file.sync_data()
            })();
            let created = match sealed {
                Ok(()) => Some(create_segment(storage, dir, Some(after))),
                Err(_) => None,
            };
            (sealed, created)
        });
        st.io_busy = false;
        st.rotating = false;
        let written = data.len() as u64;
        data.clear();
        st.spare = data;
        let result = match (sealed, created) {
            (Err(source), _) => {
                let path = st.active.meta.path.to_path_buf();
                self.poison(st, Error::Io { path, source });
                Ok(())
            }
            (Ok(()), created) => {
                st.active.written += written;
                st.written_seq = upto;
                st.durable_seq = upto;
                st.unsynced = 0;
                match created {
                    Some(Ok(next)) => {
                        tracing::info!(segment = %next.meta.path.display(), "started segment");
                        let old = mem::replace(&mut st.active, next);
                        st.sealed.push(old.meta);
                        Ok(())
                    }
                    Some(Err(e)) => Err(e),
                    None => Ok(()),
                }
            }
        };
        self.io_done.notify_all();
        result
    }

    fn close(&self) -> Result<()> {
        let mut st = self.state.lock();
        if st.closed {
            return Ok(());
        }
        st.closed = true;
        let seq = st.buffered_seq;
        let result = self.wait_for(&mut st, seq, Reach::Synced);
        drop(st);
        self.flusher_wake.notify_all();
        if let Some(handle) = self.flusher.lock().take() {
            let _ = handle.join();
        }
        self.lock.lock().take();
        result
    }

    fn run_flusher(&self, period: Duration) {
        let mut st = self.state.lock();
        loop {
            // `closed` is checked under the lock before waiting, so close's
            // wake-up cannot slip in between.
            if st.closed {
                return;
            }
            let _ = self.flusher_wake.wait_for(&mut st, period);
            if st.closed {
                return;
            }
            if st.poisoned.is_some() || st.buffered_seq <= st.durable_seq {
                continue;
            }
            let seq = st.buffered_seq;
            // A failure poisons the log; appenders see it on their next call.
            let _ = self.wait_for(&mut st, seq, Reach::Synced);
        }
    }
}

/// Creates a new, empty segment named after the clock (but above `after`)
/// and makes its creation durable.
fn create_segment(storage: &dyn Storage, dir: &Path, after: Option<SegmentId>) -> Result<Active> {
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
    let meta = SegmentMeta {
        id,
        path: Arc::from(path.as_path()),
        first_seq: None,
        last_seq: None,
    };
    Ok(Active {
        meta,
        file,
        written: 0,
    })
}

/// Applies what recovery decided: truncates torn tails and, after a
/// point-in-time recovery, moves the unrecovered bytes out of the log.
fn repair(storage: &dyn Storage, dir: &Path, report: &RecoveryReport) -> Result<()> {
    let mut changed = false;
    for range in &report.dropped {
        let path = &range.segment;
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
