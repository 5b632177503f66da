//! [`Wal`]: opening and recovering a log, the append API, replay and
//! retention.
//!
//! The layout of the append engine:
//! - `group`: group commit's state machine (sequence numbers, the shared
//!   buffer, who leads a round of I/O, who sleeps, who wakes);
//! - `engine`: the open log's core and the leader's I/O (write, sync,
//!   rotate, cut), never under the state lock;
//! - `syncer`: the background syncer and the [`Durable`] future;
//! - `segments`: segment files, their preparation ahead of use;
//! - `open`: what opening does to the directory after recovery.

mod engine;
mod group;
mod open;
mod segments;
mod syncer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::{Error, Oversized, Result};
use crate::follow::{Ceiling, Follower};
use crate::format::entry::MAX_FIELD_LEN;
use crate::format::{encode_batch, encode_entry, Op};
use crate::metrics::Metrics;
use crate::options::{Options, SyncPolicy};
use crate::recovery::{LogReader, Source};
use crate::report::{RecoveryMode, RecoveryReport};
use crate::segment::{list_segments, lock_dir, SegmentId};
use crate::segment_record::SegmentRecord;
use crate::seq::Seq;
use crate::sparse_index::SparseIndex;
use crate::storage::OpenMode;
use crate::write_batch::WriteBatch;

use engine::Inner;
use group::{Reach, State};
use open::{forget_record, repair, store_record_at_open};
use segments::{
    create_segment, preallocate_active, remove_stale_prepared, Active, Preparer, SegmentMeta,
};
pub use syncer::Durable;

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

/// A segment of the log, as [`Wal::segments`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
        let _span = tracing::info_span!("ironwal_open", dir = %dir.display()).entered();
        let storage = Arc::clone(&options.storage);
        storage.create_dir_all(&dir).map_err(Error::io(&dir))?;
        let lock = lock_dir(&*storage, &dir)?;
        crate::repair::finish_interrupted_locked(&*storage, &dir)?;

        let sources = list_segments(&*storage, &dir)?
            .into_iter()
            .map(|(id, path)| Source::whole(Some(id), path))
            .collect();
        let (record, record_state) = SegmentRecord::load(&*storage, &dir)?;
        let (report, mut index) =
            LogReader::from_sources(Arc::clone(&storage), sources, options.recovery_mode)
                .with_record(&dir, record.as_ref(), record_state)
                .collect_index()
                .finish_with_index()?;
        if record.is_some() && !report.ignored_segments.is_empty()
            || report.mode == RecoveryMode::PointInTime && report.has_corruption()
        {
            // Segments are about to move or shrink: drop the record first, so
            // a crash before the new one is written leaves no stale record
            // (a log without one is read as it is, then recorded again).
            forget_record(&*storage, &dir)?;
        }
        repair(&*storage, &dir, &report)?;

        let mut sealed: Vec<SegmentMeta> = report
            .segments
            .iter()
            .filter_map(|s| {
                let points = (index.iter_mut())
                    .find(|(path, _)| *path == s.path)
                    .map(|(_, points)| std::mem::take(points))
                    .unwrap_or_default();
                Some(SegmentMeta {
                    id: s.id?,
                    path: Arc::from(s.path.as_path()),
                    first_seq: s.first_seq,
                    last_seq: s.last_seq,
                    len: s.valid_len,
                    index: Arc::new(SparseIndex::from_points(points)),
                })
            })
            .collect();
        // Only appends that each wait for an fsync gain from preallocation;
        // under lazier policies filling segments costs more than it saves.
        let prealloc = (options.preallocate && options.sync_policy == SyncPolicy::Always)
            .then_some(options.max_segment_size);
        remove_stale_prepared(&*storage, &dir)?;
        // A process that died between a write and its fdatasync leaves the
        // tail of the segment it was writing in the page cache only, and one
        // killed right after a rotation leaves the segment it had not sealed
        // yet (its seal waits for the next round). This log reports what it
        // recovered as durable (and a Raft follower acknowledges it to its
        // leader), so make it so before anything is appended: every segment
        // the segment record does not list as sealed (a sealed one was
        // synced before it was recorded) is synced once.
        let recorded_sealed = |id: SegmentId| {
            record
                .as_ref()
                .is_some_and(|r| r.sealed.iter().any(|s| s.id == id))
        };
        for meta in sealed.iter().filter(|m| !recorded_sealed(m.id)) {
            storage
                .open(&meta.path, OpenMode::ReadWrite)
                .and_then(|file| file.sync_data())
                .map_err(Error::io(&*meta.path))?;
        }
        let active = match (sealed.pop(), report.segments.last()) {
            // Continue the last segment while it has room (kevo's ReuseWAL
            // does the same), so restarts do not leave a file each.
            (Some(meta), Some(last)) if last.valid_len < options.max_segment_size => {
                let file = storage
                    .open(&meta.path, OpenMode::ReadWrite)
                    .map_err(Error::io(&*meta.path))?;
                Active {
                    meta,
                    file,
                    written: last.valid_len,
                    synced: last.valid_len,
                    hinted: last.valid_len,
                }
            }
            (meta, _) => {
                let after = meta.as_ref().map(|m| m.id);
                sealed.extend(meta);
                Active::new(create_segment(&*storage, &dir, after)?)
            }
        };
        let preparer = match prealloc {
            Some(size) => {
                let preparer =
                    Preparer::start(Arc::clone(&storage), dir.clone(), size, active.meta.id)?;
                // Make the rest of the segment already-written blocks.
                preallocate_active(
                    &*active.file,
                    &active.meta.path,
                    active.written,
                    size,
                    preparer.failures(),
                );
                Some(preparer)
            }
            None => None,
        };

        // Under SkipCorrupted the skipped bytes stay in the log: continue
        // above every sequence they name too, or a new entry could take the
        // number of a damaged batch's operation and be read as part of it.
        let skipped = options.recovery_mode == RecoveryMode::SkipCorrupted;
        let last = if skipped {
            report.highest_seq.max(report.claimed_seq)
        } else {
            report.highest_seq
        };
        let highest = last.unwrap_or(Seq::new(options.first_seq.get() - 1));
        let Some(next) = highest.checked_add(1) else {
            return Err(Error::SequenceExhausted);
        };
        tracing::info!(
            dir = %dir.display(),
            segments = report.segments.len(),
            entries = report.entries,
            next_seq = %next,
            "opened log"
        );
        let now = SegmentRecord {
            sealed: sealed.iter().map(SegmentMeta::recorded).collect(),
            active: Some((active.meta.id, active.meta.first_seq.unwrap_or(next))),
        };
        if record.as_ref() != Some(&now) {
            store_record_at_open(&*storage, &dir, &now)?;
        }
        let state = State::new(&options, active, sealed, highest);
        let inner = Arc::new(Inner::new(dir, options, state, preparer, now, lock, report));
        if inner.needs_syncer() {
            inner.start_syncer()?;
        }
        Ok(Wal { inner })
    }

    /// Appends a Put and returns its sequence number once the sync policy is
    /// satisfied.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<Seq> {
        self.append_op(Op::Put, key, value, true)
    }

    /// Appends a Delete.
    pub fn delete(&self, key: &[u8]) -> Result<Seq> {
        self.append_op(Op::Delete, key, &[], true)
    }

    /// Appends a Merge.
    pub fn merge(&self, key: &[u8], value: &[u8]) -> Result<Seq> {
        self.append_op(Op::Merge, key, value, true)
    }

    /// Appends a batch atomically and returns the sequence of its first
    /// operation; the others follow consecutively.
    pub fn write_batch(&self, batch: &WriteBatch) -> Result<Seq> {
        self.append_batch(batch, true)
    }

    /// Like [`Wal::put`], but returns as soon as the entry has its sequence
    /// number, without waiting for durability; follow with
    /// [`Wal::wait_durable`] or [`Wal::durable`].
    pub fn put_nowait(&self, key: &[u8], value: &[u8]) -> Result<Seq> {
        self.append_op(Op::Put, key, value, false)
    }

    /// Like [`Wal::delete`], without waiting for durability.
    pub fn delete_nowait(&self, key: &[u8]) -> Result<Seq> {
        self.append_op(Op::Delete, key, &[], false)
    }

    /// Like [`Wal::merge`], without waiting for durability.
    pub fn merge_nowait(&self, key: &[u8], value: &[u8]) -> Result<Seq> {
        self.append_op(Op::Merge, key, value, false)
    }

    /// Like [`Wal::write_batch`], without waiting for durability. Returns the
    /// first sequence; the batch is durable once its last,
    /// `first + batch.len() - 1`, is.
    pub fn write_batch_nowait(&self, batch: &WriteBatch) -> Result<Seq> {
        self.append_batch(batch, false)
    }

    /// Blocks until `seq` (and everything before it) is durable, syncing if
    /// no one else is. Fails with [`Error::NotAppended`] for a sequence not
    /// yet assigned.
    pub fn wait_durable(&self, seq: Seq) -> Result<()> {
        self.inner.wait_durable(seq)
    }

    /// A future that resolves once `seq` (and everything before it) is
    /// durable, for async callers: no thread blocks per pending write. One
    /// background thread per log performs the syncs that futures wait for,
    /// sharing each fsync among every waiter it covers.
    ///
    /// ```
    /// # fn main() -> Result<(), ironwal::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # use ironwal::{Options, Wal};
    /// let wal = Wal::open(dir.path(), Options::default())?;
    /// let seq = wal.put_nowait(b"k", b"v")?;
    /// // In async code: `wal.durable(seq).await?`. Any executor will do:
    /// let durable = wal.durable(seq);
    /// # let waker = std::task::Waker::noop();
    /// # let mut cx = std::task::Context::from_waker(&waker);
    /// # let mut durable = std::pin::pin!(durable);
    /// # while std::future::Future::poll(durable.as_mut(), &mut cx).is_pending() {
    /// #     std::thread::yield_now();
    /// # }
    /// assert!(wal.durable_seq() >= seq);
    /// # Ok(()) }
    /// ```
    pub fn durable(&self, seq: Seq) -> Durable {
        Durable {
            inner: Arc::clone(&self.inner),
            seq,
        }
    }

    fn append_batch(&self, batch: &WriteBatch, wait: bool) -> Result<Seq> {
        if batch.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let (ops, count) = batch.encoded()?;
        self.inner.append(u64::from(count), true, wait, |buf, seq| {
            encode_batch(buf, seq, count, ops).map_err(|e| Error::TooLarge {
                what: Oversized::Batch,
                len: e.len,
                max: MAX_FIELD_LEN,
            })
        })
    }

    fn append_op(&self, op: Op, key: &[u8], value: &[u8], wait: bool) -> Result<Seq> {
        for (what, len) in [(Oversized::Key, key.len()), (Oversized::Value, value.len())] {
            if len as u64 > MAX_FIELD_LEN {
                return Err(Error::TooLarge {
                    what,
                    len: len as u64,
                    max: MAX_FIELD_LEN,
                });
            }
        }
        self.inner.append(1, false, wait, |buf, seq| {
            encode_entry(buf, op, seq, key, value).map_err(|e| Error::TooLarge {
                what: Oversized::Entry,
                len: e.len,
                max: MAX_FIELD_LEN,
            })
        })
    }

    /// Writes everything appended so far and makes it durable.
    pub fn sync(&self) -> Result<()> {
        self.inner.sync(Reach::Synced)
    }

    /// Hands everything appended so far to the operating system (it then
    /// survives a crash of this process, not of the machine).
    pub fn flush(&self) -> Result<()> {
        self.inner.sync(Reach::Written)
    }

    /// Flushes, syncs and releases the directory lock. Appends after close
    /// fail with [`Error::Closed`]; closing twice is a no-op.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    /// The sequence the next append will get.
    pub fn next_seq(&self) -> Seq {
        self.inner.group.next_seq()
    }

    /// The highest sequence appended (or recovered); `Seq::ZERO` if none.
    pub fn last_seq(&self) -> Seq {
        self.inner.group.last_seq()
    }

    /// The highest sequence known durable: it and everything before it
    /// survive a crash.
    pub fn durable_seq(&self) -> Seq {
        self.inner.group.durable_seq()
    }

    /// A snapshot of the log's counters since it was opened: appends, bytes,
    /// fsyncs, group commit sizes, sync latencies, segments.
    ///
    /// ```
    /// # fn main() -> Result<(), ironwal::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let wal = ironwal::Wal::open(dir.path(), ironwal::Options::default())?;
    /// wal.put(b"k", b"v")?;
    /// let m = wal.metrics();
    /// assert_eq!(m.appends, 1);
    /// assert!(m.fsyncs >= 1);
    /// println!("p99 fsync {} us, {:.1} appends per fsync", m.sync_latency_us.quantile(0.99), m.group_sizes.mean());
    /// # Ok(()) }
    /// ```
    pub fn metrics(&self) -> Metrics {
        let mut metrics = self.inner.group.metrics();
        metrics.preallocation_failures =
            (self.inner.preparer.as_ref()).map_or(0, |p| p.failures().load(Ordering::Relaxed));
        metrics
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
        let segments = self.inner.group.segments();
        let count = segments.len();
        let info = |(i, (meta, _)): (usize, (SegmentMeta, u64))| SegmentInfo {
            id: meta.id,
            path: meta.path.to_path_buf(),
            first_seq: meta.first_seq,
            last_seq: meta.last_seq,
            active: i + 1 == count,
        };
        segments.into_iter().enumerate().map(info).collect()
    }

    /// Reads the log's operations with a sequence of at least `from`,
    /// including everything appended so far (it is flushed first). Segments
    /// that end before `from` are skipped without being read, and the
    /// segment holding `from` is read from less than 64 KiB (plus one entry)
    /// before it: the log keeps a sparse in-memory index of where entries
    /// start (at most one 16-byte point per 32 KiB of log, 512 bytes per
    /// MiB; built while writing and while recovering). Reading one entry
    /// 60 MiB into a segment costs about what reading one at its start does.
    pub fn replay(&self, from: Seq) -> Result<LogReader> {
        self.flush()?;
        let mut segments = self.inner.group.segments();
        let active = segments.pop();
        // Segments holding nothing at or after `from` need not be read, and
        // the first one is read from the last indexed entry at or before
        // `from` (within 64 KiB of it), not from its start.
        segments.retain(|(m, _)| m.last_seq.is_some_and(|last| last >= from));
        let sources = segments
            .into_iter()
            .chain(active)
            .enumerate()
            .map(|(i, (meta, len))| Source {
                id: Some(meta.id),
                path: meta.path.to_path_buf(),
                limit: Some(len),
                start: match i {
                    0 => meta.index.floor(from).unwrap_or(0).min(len),
                    _ => 0,
                },
            })
            .collect();
        let storage = Arc::clone(&self.inner.options.storage);
        Ok(
            LogReader::from_sources(storage, sources, self.inner.options.recovery_mode)
                .from_seq(from),
        )
    }

    /// A [`Follower`] of this log that yields only durable entries, from
    /// `from` on, as they become durable: what a replica or a
    /// change-data-capture consumer in this process should read. (A
    /// follower in another process, like `ironwal tail`, sees entries once
    /// they are written, before their fsync.)
    ///
    /// ```
    /// # fn main() -> Result<(), ironwal::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// use ironwal::{Options, Seq, SyncPolicy, Wal};
    ///
    /// let wal = Wal::open(dir.path(), Options::default().sync_policy(SyncPolicy::Never))?;
    /// let mut subscription = wal.subscribe(Seq::ZERO);
    /// wal.put(b"k", b"v")?;
    /// wal.flush()?; // written, but not durable yet
    /// assert!(subscription.try_next()?.is_none());
    /// wal.sync()?;
    /// let entry = subscription.next_timeout(Duration::from_secs(5))?.expect("durable now");
    /// assert_eq!(entry.key, b"k");
    /// # Ok(()) }
    /// ```
    pub fn subscribe(&self, from: Seq) -> Follower {
        let inner = Arc::downgrade(&self.inner);
        // Once the log is dropped, what is on disk is all there will be.
        let durable = move || {
            inner
                .upgrade()
                .map_or(u64::MAX, |inner| inner.group.durable_seq().get())
        };
        Follower::new(
            Arc::clone(&self.inner.options.storage),
            &self.inner.dir,
            from,
        )
        .with_ceiling(Ceiling(Arc::new(durable)))
    }

    /// Retention: deletes the segments, oldest first, whose operations all
    /// have sequences below `seq` (say, everything a checkpoint covers). The
    /// active segment is never deleted, and neither is any segment after one
    /// that must stay. Returns the deleted files.
    pub fn remove_segments_before(&self, seq: Seq) -> Result<Vec<PathBuf>> {
        // Held throughout: the segment record changes in step with the files.
        let mut record = self.inner.record.lock();
        let doomed = self.inner.group.take_sealed_before(seq)?;
        let storage = &*self.inner.options.storage;
        if doomed.is_empty() {
            return Ok(Vec::new());
        }
        // The record forgets the segments before their files go: a crash in
        // between leaves files older than the record, which read as before.
        let mut kept = record.clone();
        kept.sealed.retain(|s| !doomed.iter().any(|d| d.id == s.id));
        if let Err(error) = kept.store(storage, &self.inner.dir) {
            self.inner.group.restore_sealed(doomed);
            return Err(error);
        }
        *record = kept;
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
            let rest = doomed.get(i..).unwrap_or_default().to_vec();
            self.inner.group.restore_sealed(rest);
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
