//! The shared state of an open log and the machinery that moves appended
//! bytes to disk: group commit, sync policies, rotation and the background
//! syncer.
//!
//! Appenders encode their entry into a shared buffer under a short lock and
//! get their sequence number there, so file order is sequence order. Whoever
//! then needs the buffer on disk becomes the *leader*: it takes the buffer
//! (leaving an empty spare in its place for others to fill), writes it and
//! syncs with the lock released, then wakes everyone its sync covered. The
//! lock is never held across a write or an fsync, and in steady state no
//! append allocates.

use std::future::Future;
use std::mem;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::segments::{create_segment, NewSegment, Preparer};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::options::{Options, SyncPolicy};
use crate::recovery::RecoveryReport;
use crate::segment::SegmentId;
use crate::segment_record::{SealedSegment, SegmentRecord};
use crate::seq::Seq;
use crate::storage::{DirLock, StorageFile};

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) dir: PathBuf,
    pub(super) options: Options,
    pub(super) state: Mutex<State>,
    /// Signalled whenever a round of I/O ends (rotation waits for it).
    io_done: Condvar,
    /// Wakes the background syncer (new async waiter, background sync due,
    /// close).
    syncer_wake: Condvar,
    /// Unsynced bytes of the active segment at which a write-only round asks
    /// the background syncer for a sync ([`Options::background_sync_bytes`],
    /// where the sync policy can let that many accumulate).
    background_sync: Option<u64>,
    syncer: Mutex<Option<JoinHandle<()>>>,
    pub(super) preparer: Option<Preparer>,
    /// The segment record as last written (or meant to be). Taken before
    /// `state` when both are needed.
    pub(super) record: Mutex<SegmentRecord>,
    pub(super) lock: Mutex<Option<Box<dyn DirLock>>>,
    pub(super) report: RecoveryReport,
}

/// A segment's place in the log.
#[derive(Clone, Debug)]
pub(super) struct SegmentMeta {
    pub(super) id: SegmentId,
    pub(super) path: Arc<Path>,
    pub(super) first_seq: Option<u64>,
    pub(super) last_seq: Option<u64>,
    /// Bytes of the segment that hold the log (for a sealed segment; the
    /// active one's is `Active::written`). Past it: zeros or nothing.
    pub(super) len: u64,
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
}

impl Active {
    pub(super) fn new(segment: NewSegment) -> Self {
        let meta = SegmentMeta {
            id: segment.id,
            path: segment.path,
            first_seq: None,
            last_seq: None,
            len: 0,
        };
        Active {
            meta,
            file: segment.file,
            written: 0,
            synced: 0,
        }
    }
}

#[derive(Debug)]
pub(super) struct State {
    pub(super) closed: bool,
    pub(super) poisoned: Option<Arc<Error>>,
    pub(super) next_seq: u64,
    /// Encoded entries not yet handed to the file.
    pub(super) buf: Vec<u8>,
    /// An empty buffer, swapped in while a leader writes `buf`.
    pub(super) spare: Vec<u8>,
    pub(super) active: Active,
    /// Segments before the active one, in log order.
    pub(super) sealed: Vec<SegmentMeta>,
    /// Highest sequence assigned, written to the file, made durable.
    pub(super) buffered_seq: u64,
    pub(super) written_seq: u64,
    pub(super) durable_seq: u64,
    /// Bytes handed to files since open, and how many of them the latest
    /// completed sync covered (for `SyncPolicy::Bytes`).
    written_bytes: u64,
    synced_bytes: u64,
    /// A leader is writing (writes are serialized, in sequence order).
    writing: bool,
    /// A leader is syncing. One fdatasync at a time: overlapping them was
    /// measured (2 and 4 in flight) and loses, because each then covers a
    /// smaller group.
    syncing: bool,
    /// The highest sequence the sync in flight (or the last one) covers.
    requested_seq: u64,
    /// The active segment is being sealed and replaced: appends wait, so
    /// none is counted against the old segment while its bytes go to the new.
    pub(super) rotating: bool,
    /// Async callers waiting for a sequence to become durable.
    pub(super) waiters: Vec<(u64, Waker)>,
    /// After a failure during a write-only round: cut the active segment to
    /// this length once the round ends.
    cut_pending: Option<u64>,
    /// A write-only round found `background_sync` bytes unsynced and woke
    /// the background syncer.
    background_sync_due: bool,
    /// Threads parked in `wait_for`.
    sleepers: Vec<Sleeper>,
    /// Threads to unpark once the lock is released (kept to reuse its
    /// allocation).
    to_wake: Vec<Thread>,
    pub(super) metrics: Metrics,
}

/// A thread parked until its sequence reaches `reach`.
#[derive(Debug)]
struct Sleeper {
    seq: u64,
    reach: Reach,
    thread: Thread,
    /// Set before the thread is unparked: `DONE` or `WAKE`.
    signal: Arc<AtomicU8>,
}

/// A sleeper's signal: still waiting.
const WAITING: u8 = 0;
/// Its sequence reached what it waited for: it may return without taking
/// the lock again.
const DONE: u8 = 1;
/// It must take the lock and look (lead the next round, or collect an error).
const WAKE: u8 = 2;

thread_local! {
    /// Each thread's one signal, reused by every wait (no allocation).
    static SIGNAL: Arc<AtomicU8> = Arc::new(AtomicU8::new(WAITING));
}

/// Parks until `signal` is set; returns it.
fn sleep(signal: &AtomicU8) -> u8 {
    loop {
        match signal.load(Ordering::Acquire) {
            WAITING => std::thread::park(),
            set => return set,
        }
    }
}

impl State {
    pub(super) fn new(
        options: &Options,
        active: Active,
        sealed: Vec<SegmentMeta>,
        highest: u64,
    ) -> Self {
        State {
            closed: false,
            poisoned: None,
            next_seq: highest + 1,
            buf: Vec::with_capacity(options.write_buffer_size),
            spare: Vec::with_capacity(options.write_buffer_size),
            active,
            sealed,
            buffered_seq: highest,
            written_seq: highest,
            durable_seq: highest,
            written_bytes: 0,
            synced_bytes: 0,
            writing: false,
            syncing: false,
            requested_seq: highest,
            rotating: false,
            waiters: Vec::new(),
            cut_pending: None,
            background_sync_due: false,
            sleepers: Vec::new(),
            to_wake: Vec::new(),
            metrics: Metrics::default(),
        }
    }

    fn reached(&self, seq: u64, reach: Reach) -> bool {
        match reach {
            Reach::Written => self.written_seq >= seq,
            Reach::Synced => self.durable_seq >= seq,
        }
    }

    /// After a round of I/O: picks the threads to unpark, into `to_wake`.
    fn wake_sleepers(&mut self) {
        let reached = Reached {
            written: self.written_seq,
            durable: self.durable_seq,
            requested: self.requested_seq,
            poisoned: self.poisoned.is_some(),
        };
        reached.wake(&mut self.sleepers, &mut self.to_wake);
    }

    /// Removes this thread's sleeper entry, if a round did not already.
    fn unregister(&mut self) {
        let id = std::thread::current().id();
        if let Some(i) = self.sleepers.iter().position(|s| s.thread.id() == id) {
            self.sleepers.swap_remove(i);
        }
    }

    fn io_idle(&self) -> bool {
        !self.writing && !self.syncing
    }

    fn unsynced(&self) -> u64 {
        self.written_bytes - self.synced_bytes
    }

    fn check_usable(&self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.check_poisoned()
    }

    fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(Error::Poisoned {
                cause: Arc::clone(cause),
            }),
            None => Ok(()),
        }
    }

    /// Wakes the async waiters whose sequence is now durable (all of them
    /// once the log is poisoned: they have an error to collect).
    fn wake_waiters(&mut self) {
        let durable = self.durable_seq;
        let all = self.poisoned.is_some();
        self.waiters.retain(|(seq, waker)| {
            let done = all || *seq <= durable;
            if done {
                waker.wake_by_ref();
            }
            !done
        });
    }
}

/// How far the log got, as a round of I/O ends: decides which sleepers
/// wake.
#[derive(Clone, Copy, Debug)]
struct Reached {
    written: u64,
    durable: u64,
    /// The highest sequence the sync in flight (or the last one) covers.
    requested: u64,
    poisoned: bool,
}

impl Reached {
    /// Moves the threads to unpark from `sleepers` to `to_wake`: first those
    /// the round satisfied (signalled `DONE`; all of them, signalled `WAKE`,
    /// once the log is poisoned), then one that still waits, to lead the
    /// next round at once. Waking only these (not every sleeper) saves a
    /// context switch per append when many threads append.
    ///
    /// The leader is chosen among the sleepers left after the satisfied ones
    /// are gone: one that only needed its bytes written may be satisfied by
    /// this round, and handing it the lead would leave a thread that needs a
    /// sync asleep with no one to lead for it.
    fn wake(self, sleepers: &mut Vec<Sleeper>, to_wake: &mut Vec<Thread>) {
        let done = sleepers.extract_if(.., |s| {
            self.poisoned
                || match s.reach {
                    Reach::Written => s.seq <= self.written,
                    Reach::Synced => s.seq <= self.durable,
                }
        });
        let signal = if self.poisoned { WAKE } else { DONE };
        to_wake.extend(done.map(|s| {
            s.signal.store(signal, Ordering::Release);
            s.thread
        }));
        // A sync in flight wakes the sleepers it covers when it ends.
        let covered = self.requested;
        let next = sleepers
            .iter()
            .find(|s| !(s.reach == Reach::Synced && s.seq <= covered));
        if let Some(next) = next {
            // It stays registered and removes itself when it runs.
            next.signal.store(WAKE, Ordering::Release);
            to_wake.push(next.thread.clone());
        }
    }
}

/// Where an appender needs its entry before it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reach {
    /// Handed to the operating system.
    Written,
    /// Durable on disk.
    Synced,
}

impl Inner {
    pub(super) fn new(
        dir: PathBuf,
        options: Options,
        state: State,
        preparer: Option<Preparer>,
        record: SegmentRecord,
        lock: Box<dyn DirLock>,
        report: RecoveryReport,
    ) -> Self {
        let background_sync = match options.sync_policy {
            SyncPolicy::Always => None,
            SyncPolicy::Bytes(n) => options.background_sync_bytes.filter(|b| *b < n),
            SyncPolicy::Interval(_) | SyncPolicy::Never => options.background_sync_bytes,
        };
        Inner {
            dir,
            background_sync,
            options,
            state: Mutex::new(state),
            io_done: Condvar::new(),
            syncer_wake: Condvar::new(),
            syncer: Mutex::new(None),
            preparer,
            record: Mutex::new(record),
            lock: Mutex::new(Some(lock)),
            report,
        }
    }

    /// Encodes an entry of `count` operations and assigns its sequences;
    /// then, if `wait`, waits as the sync policy requires. Without `wait` the
    /// entry is only buffered (written out if the buffer is full).
    pub(super) fn append(
        &self,
        count: u64,
        batch: bool,
        wait: bool,
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
        let bytes = (st.buf.len() - before) as u64;
        let metrics = &mut st.metrics;
        metrics.appends += count;
        metrics.batches += u64::from(batch);
        metrics.bytes += bytes;
        let meta = &mut st.active.meta;
        meta.first_seq.get_or_insert(seq);
        meta.last_seq = Some(last);

        let pending = st.buf.len();
        let reach = match self.options.sync_policy {
            SyncPolicy::Always if wait => Some(Reach::Synced),
            SyncPolicy::Bytes(n) if st.unsynced() + pending as u64 >= n => Some(Reach::Synced),
            _ if pending >= self.options.write_buffer_size => Some(Reach::Written),
            _ => None,
        };
        if let Some(reach) = reach {
            self.wait_released(st, last, reach)?;
        }
        Ok(Seq::new(seq))
    }

    /// Returns once `seq` has reached `reach`, leading I/O rounds as needed;
    /// the lock is held again on return.
    pub(super) fn wait_for(
        &self,
        st: &mut MutexGuard<'_, State>,
        seq: u64,
        reach: Reach,
    ) -> Result<()> {
        loop {
            if self.lead_or_register(st, seq, reach)? {
                return Ok(());
            }
            let signal = SIGNAL.with(Arc::clone);
            if MutexGuard::unlocked(st, || sleep(&signal)) == WAKE {
                st.unregister();
            }
        }
    }

    /// Like [`Self::wait_for`], but gives up the lock for good: a thread a
    /// round satisfies returns without taking it again, which spares a
    /// contended lock acquisition per append when many threads append.
    fn wait_released<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        seq: u64,
        reach: Reach,
    ) -> Result<()> {
        loop {
            if self.lead_or_register(&mut st, seq, reach)? {
                return Ok(());
            }
            let signal = SIGNAL.with(Arc::clone);
            drop(st);
            if sleep(&signal) == DONE {
                return Ok(());
            }
            st = self.state.lock();
            st.unregister();
        }
    }

    /// One step of waiting: `Ok(true)` if `seq` has reached `reach` (after
    /// leading rounds of I/O if no one else is); `Ok(false)` once this thread
    /// is registered to sleep until a round covers it or hands it the lead.
    fn lead_or_register(
        &self,
        st: &mut MutexGuard<'_, State>,
        seq: u64,
        reach: Reach,
    ) -> Result<bool> {
        loop {
            st.check_poisoned()?;
            if st.reached(seq, reach) {
                return Ok(true);
            }
            if !st.writing && !st.rotating {
                let write = st.written_seq < seq;
                let sync = reach == Reach::Synced && st.requested_seq < seq;
                if (write || sync) && (reach == Reach::Written || !st.syncing) {
                    self.lead(st, reach);
                    continue;
                }
            }
            let signal = SIGNAL.with(Arc::clone);
            signal.store(WAITING, Ordering::Release);
            st.sleepers.push(Sleeper {
                seq,
                reach,
                thread: std::thread::current(),
                signal,
            });
            return Ok(false);
        }
    }

    /// Unparks the threads `wake_sleepers` picked, with the lock released so
    /// they can take it at once.
    fn unpark(&self, st: &mut MutexGuard<'_, State>) {
        if st.to_wake.is_empty() {
            return;
        }
        let mut threads = mem::take(&mut st.to_wake);
        MutexGuard::unlocked(st, || threads.iter().for_each(Thread::unpark));
        threads.clear();
        st.to_wake = threads;
    }

    /// One round of I/O: writes the whole buffer and, for `Synced`, syncs
    /// it. The lock is released for both; once the write is done, a leader
    /// that only needs to write (a full buffer under a lazy sync policy) may
    /// go ahead while this round syncs. Any failure poisons the log.
    fn lead(&self, st: &mut MutexGuard<'_, State>, reach: Reach) {
        st.writing = true;
        let sync = reach == Reach::Synced;
        if sync {
            st.syncing = true;
            if let Some(delay) = self.options.commit_delay {
                // Let more appenders join this group before it is cut.
                MutexGuard::unlocked(st, || std::thread::sleep(delay));
            }
        }
        let spare = mem::take(&mut st.spare);
        let data = mem::replace(&mut st.buf, spare);
        let upto = st.buffered_seq;
        let offset = st.active.written;
        let file = Arc::clone(&st.active.file);
        if sync {
            st.requested_seq = upto;
        }
        let wrote = MutexGuard::unlocked(st, || match data.is_empty() {
            true => Ok(()),
            false => file.write_all_at(&data, offset),
        });
        st.writing = false;
        let len = data.len() as u64;
        self.recycle(st, data);
        if let Some(len) = st.cut_pending.take() {
            // A sync failed while this write ran: cut the file now.
            self.cut(st, len);
        }
        if let Err(source) = wrote {
            st.syncing &= !sync;
            // Remove whatever part of the write reached the file.
            self.fail(st, source, offset);
            return;
        }
        st.active.written += len;
        st.written_seq = upto;
        st.written_bytes += len;
        let mark = st.written_bytes;
        let synced_to = st.active.written;
        if !sync {
            self.request_background_sync(st);
            st.wake_sleepers();
            self.io_done.notify_all();
            self.unpark(st);
            return;
        }
        let started = Instant::now();
        let synced = MutexGuard::unlocked(st, || file.sync_data());
        let took = started.elapsed();
        st.syncing = false;
        if let Err(source) = synced {
            // After a failed fdatasync the kernel may drop the unsynced pages
            // while still showing them to reads: cut back to what is known
            // durable, so a restarted process does not append after bytes
            // that may never reach the disk.
            let durable = st.active.synced;
            self.fail(st, source, durable);
            return;
        }
        st.active.synced = st.active.synced.max(synced_to);
        let group = upto.saturating_sub(st.durable_seq);
        let metrics = &mut st.metrics;
        metrics.fsyncs += 1;
        metrics.sync_latency_us.record(took.as_micros() as u64);
        metrics.group_sizes.record(group);
        st.durable_seq = st.durable_seq.max(upto);
        st.synced_bytes = st.synced_bytes.max(mark);
        st.wake_waiters();
        st.wake_sleepers();
        self.io_done.notify_all();
        self.unpark(st);
    }

    /// Poisons the log after a failed write or sync of the active segment,
    /// cuts the segment back to `keep` bytes (the log cannot vouch for what
    /// follows), and wakes everyone to see the error.
    fn fail(&self, st: &mut MutexGuard<'_, State>, source: std::io::Error, keep: u64) {
        let path = st.active.meta.path.to_path_buf();
        self.poison(st, Error::Io { path, source });
        if st.writing {
            // A write-only round is still running; it cuts when it is done.
            st.cut_pending = Some(st.cut_pending.map_or(keep, |k| k.min(keep)));
        } else {
            self.cut(st, keep);
        }
        st.wake_waiters();
        st.wake_sleepers();
        self.io_done.notify_all();
        self.unpark(st);
    }

    /// Truncates the active segment to `len` bytes, best effort (the log is
    /// poisoned already; this only keeps a restart from building on bytes
    /// that may not be durable).
    fn cut(&self, st: &mut State, len: u64) {
        let file = &st.active.file;
        if let Err(error) = file.set_len(len).and_then(|()| file.sync_data()) {
            tracing::warn!(%error, len, "could not cut the failed segment back");
        }
        st.active.written = st.active.written.min(len);
    }

    /// Returns a written buffer as the spare, shrinking one a huge entry grew.
    fn recycle(&self, st: &mut State, mut data: Vec<u8>) {
        data.clear();
        if data.capacity() > 4 * self.options.write_buffer_size {
            data.shrink_to(self.options.write_buffer_size);
        }
        st.spare = data;
    }

    /// After a write-only round: wakes the background syncer if the active
    /// segment holds `background_sync` unsynced bytes and no sync runs.
    fn request_background_sync(&self, st: &mut State) {
        let Some(every) = self.background_sync else {
            return;
        };
        if !st.syncing && !st.background_sync_due && st.active.written - st.active.synced >= every {
            st.background_sync_due = true;
            self.syncer_wake.notify_all();
        }
    }

    fn poison(&self, st: &mut State, error: Error) {
        tracing::error!(%error, "write failed; the log accepts no more writes");
        st.poisoned.get_or_insert_with(|| Arc::new(error));
    }

    /// Before an append: checks the log is usable and, if the active segment
    /// is full, seals it (written and synced) and starts a new one.
    fn make_room(&self, st: &mut MutexGuard<'_, State>) -> Result<()> {
        loop {
            st.check_usable()?;
            let len = st.active.written + st.buf.len() as u64;
            if !st.rotating && (len < self.options.max_segment_size || len == 0) {
                return Ok(());
            }
            if !st.io_idle() || st.rotating {
                self.io_done.wait(st);
                continue;
            }
            self.rotate(st)?;
        }
    }

    fn rotate(&self, st: &mut MutexGuard<'_, State>) -> Result<()> {
        st.writing = true;
        st.rotating = true;
        let spare = mem::take(&mut st.spare);
        let data = mem::replace(&mut st.buf, spare);
        let upto = st.buffered_seq;
        let offset = st.active.written;
        let file = Arc::clone(&st.active.file);
        let after = st.active.meta.id;
        let sealing = SegmentMeta {
            len: offset + data.len() as u64,
            ..st.active.meta.clone()
        };
        let (sealed, next) = MutexGuard::unlocked(st, || {
            let sealed = (|| {
                if !data.is_empty() {
                    file.write_all_at(&data, offset)?;
                }
                // A sealed segment ends at its last entry: cut the zeros of
                // preallocation (the sync below makes the length durable).
                let end = offset + data.len() as u64;
                if file.len()? > end {
                    file.set_len(end)?;
                }
                file.sync_data()
            })();
            let next = match sealed {
                Ok(()) => Some(self.next_segment(after)),
                Err(_) => None,
            };
            if let Some(Ok(next)) = &next {
                self.record_rotation(&sealing, next.meta.id, upto + 1);
            }
            (sealed, next)
        });
        st.writing = false;
        st.rotating = false;
        let written = data.len() as u64;
        self.recycle(st, data);
        let result = match (sealed, next) {
            (Err(source), _) => {
                let durable = st.active.synced;
                self.fail(st, source, durable);
                Ok(())
            }
            (Ok(()), next) => {
                st.active.written += written;
                st.active.synced = st.active.written;
                st.written_seq = upto;
                st.durable_seq = upto;
                st.requested_seq = st.requested_seq.max(upto);
                st.written_bytes += written;
                st.synced_bytes = st.written_bytes;
                st.metrics.fsyncs += 1;
                match next {
                    Some(Ok(next)) => {
                        st.metrics.rotations += 1;
                        tracing::info!(segment = %next.meta.path.display(), "started segment");
                        let old = mem::replace(&mut st.active, next);
                        st.sealed.push(SegmentMeta {
                            len: old.written,
                            ..old.meta
                        });
                        Ok(())
                    }
                    // The old segment stays active; a later append retries.
                    Some(Err(e)) => Err(e),
                    None => Ok(()),
                }
            }
        };
        st.wake_waiters();
        st.wake_sleepers();
        self.io_done.notify_all();
        self.unpark(st);
        result
    }

    /// Writes the segment record after a rotation: `sealed` joins the sealed
    /// segments and `active`, whose first entry will be `first`, is active.
    /// A failure leaves the old record, which still describes the log (the
    /// new segment reads as one that continues it), so it is only logged.
    fn record_rotation(&self, sealed: &SegmentMeta, active: SegmentId, first: u64) {
        let mut record = self.record.lock();
        record.sealed.push(sealed.recorded());
        record.active = Some((active, first));
        if let Err(error) = record.store(&*self.options.storage, &self.dir) {
            tracing::warn!(%error, "could not update the segment record after a rotation");
        }
    }

    /// The segment to rotate into: the prepared one, or a new empty one.
    fn next_segment(&self, after: SegmentId) -> Result<Active> {
        let storage = &*self.options.storage;
        if let Some(preparer) = &self.preparer {
            let prepared = preparer.take(after);
            match prepared.map(|p| p.activate(storage, &self.dir)) {
                None => {}
                Some(Ok(segment)) => return Ok(Active::new(segment)),
                Some(Err(error)) => {
                    preparer.failures().fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, "could not activate the prepared segment; creating one");
                }
            }
        }
        let segment = create_segment(storage, &self.dir, Some(after))?;
        if let Some(preparer) = &self.preparer {
            preparer.request(segment.id);
        }
        Ok(Active::new(segment))
    }

    pub(super) fn sync(&self, reach: Reach) -> Result<()> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(Error::Closed);
        }
        let seq = st.buffered_seq;
        self.wait_for(&mut st, seq, reach)
    }

    pub(super) fn wait_durable(&self, seq: Seq) -> Result<()> {
        let mut st = self.state.lock();
        if seq.get() > st.buffered_seq {
            return Err(Error::NotAppended {
                seq,
                last: Seq::new(st.buffered_seq),
            });
        }
        self.wait_for(&mut st, seq.get(), Reach::Synced)
    }

    pub(super) fn close(&self) -> Result<()> {
        let mut st = self.state.lock();
        if st.closed {
            return Ok(());
        }
        st.closed = true;
        let seq = st.buffered_seq;
        let result = self.wait_for(&mut st, seq, Reach::Synced);
        st.wake_waiters();
        drop(st);
        self.syncer_wake.notify_all();
        if let Some(handle) = self.syncer.lock().take() {
            let _ = handle.join();
        }
        if let Some(preparer) = &self.preparer {
            preparer.stop();
        }
        let result = result.and_then(|()| self.cut_tail());
        self.lock.lock().take();
        result
    }

    /// At a clean close: cuts the active segment's zero tail, so the log at
    /// rest ends at its last entry (kevo's reader reads zeros as damage).
    /// Only called once no I/O can start: the log is closed and synced.
    fn cut_tail(&self) -> Result<()> {
        let (file, path, written) = {
            let st = self.state.lock();
            if st.poisoned.is_some() {
                // `fail` already cut back to what the log can vouch for.
                return Ok(());
            }
            let active = &st.active;
            (
                Arc::clone(&active.file),
                active.meta.path.clone(),
                active.written,
            )
        };
        let cut = file.len().and_then(|len| {
            if len <= written {
                return Ok(());
            }
            file.set_len(written)?;
            file.sync_data()
        });
        cut.map_err(Error::io(&*path))
    }

    /// Whether the log needs the background syncer from the start (else it
    /// starts when an async caller first waits).
    pub(super) fn needs_syncer(&self) -> bool {
        matches!(self.options.sync_policy, SyncPolicy::Interval(_))
            || self.background_sync.is_some()
    }

    /// Starts the background syncer unless it runs already.
    pub(super) fn start_syncer(self: &Arc<Self>) -> Result<()> {
        let mut slot = self.syncer.lock();
        if slot.is_some() || self.state.lock().closed {
            return Ok(());
        }
        let period = match self.options.sync_policy {
            SyncPolicy::Interval(period) => Some(period),
            _ => None,
        };
        let worker = Arc::clone(self);
        let handle = std::thread::Builder::new()
            .name("ironwal-sync".into())
            .spawn(move || worker.run_syncer(period))
            .map_err(Error::io(&self.dir))?;
        *slot = Some(handle);
        Ok(())
    }

    /// The background syncer: syncs every `period` when there is something
    /// to sync (`SyncPolicy::Interval`), and at once when an async caller
    /// waits for durability or a background sync is due.
    fn run_syncer(&self, period: Option<Duration>) {
        let mut st = self.state.lock();
        loop {
            // `closed` is checked under the lock before waiting, so close's
            // wake-up cannot slip in between.
            if st.closed {
                return;
            }
            let durable = st.durable_seq;
            let waited_for = st.waiters.iter().any(|(seq, _)| *seq > durable);
            if !(waited_for || st.background_sync_due) || st.poisoned.is_some() {
                match period {
                    Some(period) => {
                        let _ = self.syncer_wake.wait_for(&mut st, period);
                    }
                    None => self.syncer_wake.wait(&mut st),
                }
                if st.closed {
                    return;
                }
            }
            st.background_sync_due = false;
            if st.poisoned.is_none() && st.buffered_seq > st.durable_seq {
                let seq = st.buffered_seq;
                // A failure poisons the log; callers see it on their next call.
                let _ = self.wait_for(&mut st, seq, Reach::Synced);
            }
        }
    }
}

/// A future that resolves once a sequence number is durable; see
/// [`Wal::durable`](crate::Wal::durable).
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Durable {
    pub(super) inner: Arc<Inner>,
    pub(super) seq: Seq,
}

impl Future for Durable {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let seq = self.seq.get();
        let mut st = self.inner.state.lock();
        if let Err(e) = st.check_poisoned() {
            return Poll::Ready(Err(e));
        }
        if st.durable_seq >= seq {
            return Poll::Ready(Ok(()));
        }
        if seq > st.buffered_seq {
            let last = Seq::new(st.buffered_seq);
            return Poll::Ready(Err(Error::NotAppended {
                seq: self.seq,
                last,
            }));
        }
        if st.closed {
            // Close synced everything it could; what is missing is lost.
            return Poll::Ready(Err(Error::Closed));
        }
        if !st
            .waiters
            .iter()
            .any(|(s, w)| *s == seq && w.will_wake(cx.waker()))
        {
            st.waiters.push((seq, cx.waker().clone()));
        }
        drop(st);
        if let Err(e) = self.inner.start_syncer() {
            return Poll::Ready(Err(e));
        }
        self.inner.syncer_wake.notify_all();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(seq: u64, reach: Reach) -> Sleeper {
        Sleeper {
            seq,
            reach,
            thread: std::thread::current(),
            signal: Arc::new(AtomicU8::new(WAITING)),
        }
    }

    fn signals(sleepers: &[&Arc<AtomicU8>]) -> Vec<u8> {
        sleepers.iter().map(|s| s.load(Ordering::Acquire)).collect()
    }

    /// A write-only round (beside a sync that covers up to 3) satisfies a
    /// thread that needed its bytes written; the thread that needs a sync
    /// must get the lead, or nobody syncs for it.
    #[test]
    fn the_lead_goes_to_a_sleeper_the_round_did_not_satisfy() {
        let (written, synced) = (sleeper(5, Reach::Written), sleeper(6, Reach::Synced));
        let (a, b) = (Arc::clone(&written.signal), Arc::clone(&synced.signal));
        let mut sleepers = vec![written, synced];
        let mut to_wake = Vec::new();
        let reached = Reached {
            written: 6,
            durable: 3,
            requested: 3,
            poisoned: false,
        };
        reached.wake(&mut sleepers, &mut to_wake);
        assert_eq!(signals(&[&a, &b]), [DONE, WAKE]);
        assert_eq!(to_wake.len(), 2);
        // The new leader stays registered until it runs.
        assert_eq!(sleepers.len(), 1);
        assert_eq!(sleepers[0].seq, 6);
    }

    #[test]
    fn sleepers_a_sync_in_flight_covers_are_left_to_it() {
        let (covered, beyond) = (sleeper(4, Reach::Synced), sleeper(9, Reach::Written));
        let (a, b) = (Arc::clone(&covered.signal), Arc::clone(&beyond.signal));
        let mut sleepers = vec![covered, beyond];
        let mut to_wake = Vec::new();
        let reached = Reached {
            written: 5,
            durable: 2,
            requested: 5,
            poisoned: false,
        };
        reached.wake(&mut sleepers, &mut to_wake);
        assert_eq!(signals(&[&a, &b]), [WAITING, WAKE]);
        assert_eq!(sleepers.len(), 2);

        // Nothing left to lead for: only the satisfied wake.
        to_wake.clear();
        let reached = Reached {
            written: 9,
            durable: 5,
            requested: 5,
            poisoned: false,
        };
        reached.wake(&mut sleepers, &mut to_wake);
        assert_eq!(signals(&[&a, &b]), [DONE, DONE]);
        assert!(sleepers.is_empty());
        assert_eq!(to_wake.len(), 2);
    }

    #[test]
    fn a_poisoned_log_wakes_every_sleeper_to_collect_the_error() {
        let (one, two) = (sleeper(4, Reach::Synced), sleeper(9, Reach::Written));
        let (a, b) = (Arc::clone(&one.signal), Arc::clone(&two.signal));
        let mut sleepers = vec![one, two];
        let mut to_wake = Vec::new();
        let reached = Reached {
            written: 0,
            durable: 0,
            requested: 0,
            poisoned: true,
        };
        reached.wake(&mut sleepers, &mut to_wake);
        assert_eq!(signals(&[&a, &b]), [WAKE, WAKE]);
        assert!(sleepers.is_empty());
        assert_eq!(to_wake.len(), 2);
    }
}
