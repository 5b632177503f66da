//! Group commit's state machine. Appenders take their sequence numbers and
//! buffer their entries here under one short lock, so file order is
//! sequence order; whoever then needs the buffer on disk either leads the
//! next round of I/O or sleeps until a round covers it.
//!
//! Nothing in this file touches a file. A leader runs its I/O (in
//! `engine`) inside a [`Round`], with the lock released around each
//! operation; dropping the round ends it, and ending a round is the one
//! place every wake-up fires (sleeping appenders, async waiters, rotation
//! and the background syncer), so no exit path can forget one.

mod background;
mod round;
mod sleepers;
mod views;

use std::mem;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Waker;
use std::thread::Thread;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::segments::{Active, SegmentMeta};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::options::{Options, SyncPolicy};
use crate::seq::Seq;
use crate::storage::StorageFile;
pub(super) use background::DurablePoll;
pub(super) use round::{Batch, PendingSeal, Round, Seal};
use sleepers::{sleep, Reached, Sleeper, DONE, SIGNAL, WAITING, WAKE};

/// The state, locked.
pub(super) type Locked<'a> = MutexGuard<'a, State>;

/// Where an appender needs its entry before it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reach {
    /// Handed to the operating system.
    Written,
    /// Durable on disk.
    Synced,
}

/// The options group commit decides by.
#[derive(Clone, Copy, Debug)]
struct Config {
    sync_policy: SyncPolicy,
    write_buffer_size: usize,
    max_segment_size: u64,
    /// Unsynced bytes of the active segment at which the background syncer
    /// is asked for a sync ([`Options::background_sync_bytes`], where the
    /// sync policy can let that many accumulate). With background syncs, the syncer also starts the write-back of
    /// every [`WRITE_BEHIND_STEP`] written, so the fdatasync that seals a
    /// segment finds little left to write.
    background_sync: Option<u64>,
}

/// Bytes written between two write-back hints (`StorageFile::start_writeback`).
pub(super) const WRITE_BEHIND_STEP: u64 = 1024 * 1024;

impl Config {
    fn new(options: &Options) -> Self {
        let background_sync = match options.sync_policy {
            SyncPolicy::Always => None,
            SyncPolicy::Bytes(n) => options.background_sync_bytes.filter(|b| *b < n),
            SyncPolicy::Interval(_) | SyncPolicy::Never => options.background_sync_bytes,
        };
        Config {
            sync_policy: options.sync_policy,
            write_buffer_size: options.write_buffer_size,
            max_segment_size: options.max_segment_size,
            background_sync,
        }
    }
}

/// Everything group commit shares, behind one lock. Only this file reads
/// or changes its fields.
#[derive(Debug)]
pub(super) struct State {
    closed: bool,
    poisoned: Option<Arc<Error>>,
    next_seq: Seq,
    /// Encoded entries not yet handed to the file.
    buf: Vec<u8>,
    /// An empty buffer, swapped in while a leader writes `buf`.
    spare: Vec<u8>,
    /// Where some entries of `buf` start, one every `STEP` bytes (for the
    /// segment's sparse index), and an empty vector to swap in.
    marks: Vec<(Seq, usize)>,
    spare_marks: Vec<(Seq, usize)>,
    active: Active,
    /// Segments before the active one, in log order.
    sealed: Vec<SegmentMeta>,
    /// Highest sequence assigned, written to the file, made durable.
    buffered_seq: Seq,
    written_seq: Seq,
    durable_seq: Seq,
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
    requested_seq: Seq,
    /// The active segment is being sealed and replaced: appends wait, so
    /// none is counted against the old segment while its bytes go to the new.
    rotating: bool,
    /// Async callers waiting for a sequence to become durable.
    waiters: Vec<(Seq, Waker)>,
    /// After a failure: cut the active segment to this length, which the
    /// round holding the write does once the lock can be released.
    cut_pending: Option<u64>,
    /// A sync is due that the background syncer should run.
    background_sync_due: bool,
    /// The active segment has [`WRITE_BEHIND_STEP`] written past its last
    /// write-back hint: the background syncer should give one.
    writeback_due: bool,
    /// The segment the last rotation sealed, until its fdatasync has run.
    seal: Option<PendingSeal>,
    /// Threads parked until a round covers them or hands them the lead.
    sleepers: Vec<Sleeper>,
    /// Threads to unpark once the lock is released (kept to reuse its
    /// allocation).
    to_wake: Vec<Thread>,
    metrics: Metrics,
}

/// An entry just buffered.
#[derive(Debug)]
pub(super) struct Pushed {
    pub(super) seq: Seq,
    /// The sequence of its last operation.
    pub(super) last: Seq,
    /// How far the appender must wait before returning, if at all.
    pub(super) wait: Option<Reach>,
}

/// What an appender must do before its entry fits the active segment.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Room {
    Fits,
    /// Wait for the I/O in flight (it may rotate) and look again.
    WaitForIo,
    /// Seal the active segment and start the next.
    Rotate,
    /// Run the pending seal of the segment the last rotation sealed (a
    /// round that writes does it first).
    Seal,
}

/// One step of waiting for a sequence.
#[derive(Debug)]
enum Step {
    Done,
    Lead,
    Sleep,
}

impl State {
    pub(super) fn new(
        options: &Options,
        active: Active,
        sealed: Vec<SegmentMeta>,
        highest: Seq,
    ) -> Self {
        State {
            closed: false,
            poisoned: None,
            next_seq: highest.next(),
            buf: Vec::with_capacity(options.write_buffer_size),
            spare: Vec::with_capacity(options.write_buffer_size),
            marks: Vec::new(),
            spare_marks: Vec::new(),
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
            writeback_due: false,
            seal: None,
            sleepers: Vec::new(),
            to_wake: Vec::new(),
            metrics: Metrics::default(),
        }
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

    fn reached(&self, seq: Seq, reach: Reach) -> bool {
        match reach {
            Reach::Written => self.written_seq >= seq,
            Reach::Synced => self.durable_seq >= seq,
        }
    }

    fn unsynced(&self) -> u64 {
        self.written_bytes - self.synced_bytes
    }

    /// After a successful fdatasync covering sequences up to `upto` and
    /// `bytes` bytes handed to files since open.
    fn synced(&mut self, upto: Seq, bytes: u64, took: Duration) {
        let metrics = &mut self.metrics;
        metrics.fsyncs += 1;
        metrics.sync_latency_us.record(took.as_micros() as u64);
        metrics.group_sizes.record(upto.since(self.durable_seq));
        self.durable_seq = self.durable_seq.max(upto);
        self.synced_bytes = self.synced_bytes.max(bytes);
    }

    fn poison(&mut self, error: Error) {
        tracing::error!(%error, "write failed; the log accepts no more writes");
        self.poisoned.get_or_insert_with(|| Arc::new(error));
    }

    /// Removes this thread's sleeper entry, if a round did not already.
    fn unregister(&mut self) {
        let id = std::thread::current().id();
        if let Some(i) = self.sleepers.iter().position(|s| s.thread.id() == id) {
            self.sleepers.swap_remove(i);
        }
    }

    /// The highest sequence assigned.
    pub(super) fn buffered_seq(&self) -> Seq {
        self.buffered_seq
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Marks the log closed; `false` if it already was.
    pub(super) fn close(&mut self) -> bool {
        !mem::replace(&mut self.closed, true)
    }

    /// The active segment's file, path and length, to cut its tail at a
    /// clean close; `None` once the log is poisoned (a failure already cut
    /// it back to what the log can vouch for).
    pub(super) fn active_tail(&self) -> Option<(Arc<dyn StorageFile>, Arc<Path>, u64)> {
        if self.poisoned.is_some() {
            return None;
        }
        let active = &self.active;
        Some((
            Arc::clone(&active.file),
            Arc::clone(&active.meta.path),
            active.written,
        ))
    }

    /// What an appender must do before its entry can be buffered.
    pub(super) fn room(&self, max_segment_size: u64) -> Result<Room> {
        self.check_usable()?;
        let len = self.active.written + self.buf.len() as u64;
        if !self.rotating && (len < max_segment_size || len == 0) {
            Ok(Room::Fits)
        } else if self.writing || self.syncing || self.rotating {
            Ok(Room::WaitForIo)
        } else if self.seal.is_some() {
            // The previous rotation's seal comes first.
            Ok(Room::Seal)
        } else {
            Ok(Room::Rotate)
        }
    }

    /// Encodes an entry of `count` operations into the buffer and assigns
    /// its sequences. `wait` says whether the appender will wait as the
    /// sync policy asks; one that does not never waits for a sync (a sync
    /// the policy wants is handed to the background syncer).
    fn push(
        &mut self,
        config: &Config,
        count: u64,
        batch: bool,
        wait: bool,
        encode: impl FnOnce(&mut Vec<u8>, u64) -> Result<()>,
    ) -> Result<Pushed> {
        let seq = self.next_seq;
        let last = seq
            .checked_add(count - 1)
            .filter(|l| l.get() < u64::MAX)
            .ok_or(Error::SequenceExhausted)?;
        let before = self.buf.len();
        if let Err(e) = encode(&mut self.buf, seq.get()) {
            self.buf.truncate(before);
            return Err(e);
        }
        let step = crate::sparse_index::STEP as usize;
        if self.marks.last().is_none_or(|(_, at)| before >= at + step) {
            self.marks.push((seq, before));
        }
        self.next_seq = last.next();
        self.buffered_seq = last;
        let bytes = (self.buf.len() - before) as u64;
        let metrics = &mut self.metrics;
        metrics.appends += count;
        metrics.batches += u64::from(batch);
        metrics.bytes += bytes;
        let meta = &mut self.active.meta;
        meta.first_seq.get_or_insert(seq);
        meta.last_seq = Some(last);

        let pending = self.buf.len();
        let full = pending >= config.write_buffer_size;
        let wait = match config.sync_policy {
            SyncPolicy::Always if wait => Some(Reach::Synced),
            SyncPolicy::Bytes(n) if self.unsynced() + pending as u64 >= n => {
                if wait {
                    Some(Reach::Synced)
                } else {
                    self.background_sync_due = true;
                    full.then_some(Reach::Written)
                }
            }
            _ => full.then_some(Reach::Written),
        };
        Ok(Pushed { seq, last, wait })
    }

    /// One step of waiting for `seq` to reach `reach`: done, lead a round
    /// (no one else is doing what is needed), or sleep (registered as a
    /// sleeper) until a round covers it or hands it the lead. `woken` says
    /// the thread was just woken to look: if it only goes back to sleep, the
    /// wake-up was wasted, and is counted.
    fn step(&mut self, seq: Seq, reach: Reach, woken: bool) -> Result<Step> {
        self.check_poisoned()?;
        if self.reached(seq, reach) {
            return Ok(Step::Done);
        }
        // Anyone may lead, a newcomer included: a round that waited for the
        // thread woken to lead to be scheduled was measured 12 % slower at
        // 64 writers, though it never wakes a thread for nothing.
        if !self.writing && !self.rotating {
            let write = self.written_seq < seq;
            let sync = reach == Reach::Synced && self.requested_seq < seq;
            if (write || sync) && (reach == Reach::Written || !self.syncing) {
                return Ok(Step::Lead);
            }
        }
        self.metrics.idle_wakeups += u64::from(woken);
        let signal = SIGNAL.with(Arc::clone);
        signal.store(WAITING, Ordering::Release);
        self.sleepers.push(Sleeper {
            seq,
            reach,
            thread: std::thread::current(),
            signal,
        });
        Ok(Step::Sleep)
    }

    /// How far the log got, for deciding who wakes.
    fn reached_now(&self) -> Reached {
        Reached {
            written: self.written_seq,
            durable: self.durable_seq,
            requested: self.requested_seq,
            poisoned: self.poisoned.is_some(),
        }
    }

    /// After a round of I/O: picks the threads to unpark, into `to_wake`.
    fn wake_sleepers(&mut self) {
        let reached = self.reached_now();
        reached.wake(&mut self.sleepers, &mut self.to_wake);
    }
}

/// Group commit: the shared state and the ways threads wait on it.
#[derive(Debug)]
pub(super) struct Group {
    config: Config,
    state: Mutex<State>,
    /// Signalled whenever a round of I/O ends (rotation waits for it).
    io_done: Condvar,
    /// Wakes the background syncer (new async waiter, sync due, close).
    syncer_wake: Condvar,
}

impl Group {
    pub(super) fn new(options: &Options, state: State) -> Self {
        Group {
            config: Config::new(options),
            state: Mutex::new(state),
            io_done: Condvar::new(),
            syncer_wake: Condvar::new(),
        }
    }

    pub(super) fn lock(&self) -> Locked<'_> {
        self.state.lock()
    }

    /// Buffers an entry (see [`State::push`]); wakes the background syncer
    /// if that made a sync due.
    pub(super) fn push(
        &self,
        st: &mut Locked<'_>,
        count: u64,
        batch: bool,
        wait: bool,
        encode: impl FnOnce(&mut Vec<u8>, u64) -> Result<()>,
    ) -> Result<Pushed> {
        let was_due = st.background_sync_due;
        let pushed = st.push(&self.config, count, batch, wait, encode)?;
        if st.background_sync_due && !was_due {
            self.syncer_wake.notify_all();
        }
        Ok(pushed)
    }

    /// What an appender must do before its entry fits (see [`State::room`]).
    pub(super) fn room(&self, st: &Locked<'_>) -> Result<Room> {
        st.room(self.config.max_segment_size)
    }

    /// Sleeps until a round of I/O ends.
    pub(super) fn wait_for_io(&self, st: &mut Locked<'_>) {
        self.io_done.wait(st);
    }

    /// Returns once `seq` has reached `reach`, calling `lead` to run a round
    /// whenever no one else is doing what is needed; the lock is held again
    /// on return.
    pub(super) fn wait_for(
        &self,
        st: &mut Locked<'_>,
        seq: Seq,
        reach: Reach,
        mut lead: impl FnMut(&mut Locked<'_>, Reach),
    ) -> Result<()> {
        let mut woken = false;
        loop {
            match st.step(seq, reach, mem::take(&mut woken))? {
                Step::Done => return Ok(()),
                Step::Lead => lead(st, reach),
                Step::Sleep => {
                    let signal = SIGNAL.with(Arc::clone);
                    if MutexGuard::unlocked(st, || sleep(&signal)) == WAKE {
                        st.unregister();
                        woken = true;
                    }
                }
            }
        }
    }

    /// Like [`Self::wait_for`], but gives up the lock for good: a thread a
    /// round satisfies returns without taking it again, which spares a
    /// contended lock acquisition per append when many threads append.
    pub(super) fn wait_released<'a>(
        &'a self,
        mut st: Locked<'a>,
        seq: Seq,
        reach: Reach,
        mut lead: impl FnMut(&mut Locked<'_>, Reach),
    ) -> Result<()> {
        let mut woken = false;
        loop {
            match st.step(seq, reach, mem::take(&mut woken))? {
                Step::Done => return Ok(()),
                Step::Lead => lead(&mut st, reach),
                Step::Sleep => {
                    let signal = SIGNAL.with(Arc::clone);
                    drop(st);
                    if sleep(&signal) == DONE {
                        return Ok(());
                    }
                    st = self.state.lock();
                    st.unregister();
                    woken = true;
                }
            }
        }
    }

    /// Fires every wake-up the state calls for: async waiters and sleepers
    /// a round satisfied (and the next leader), rotation waiting for I/O,
    /// and the background syncer when a sync is due or the log closed.
    /// Sleepers are unparked with the lock released so they can take it at
    /// once. Every round ends here; so does closing.
    pub(super) fn wake_everyone(&self, st: &mut Locked<'_>) {
        st.wake_waiters();
        st.wake_sleepers();
        self.io_done.notify_all();
        if st.background_sync_due || st.writeback_due || st.closed || st.seal.is_some() {
            self.syncer_wake.notify_all();
        }
        self.unpark(st);
    }

    /// Once a syncing round's write is done: wakes the appenders that only
    /// needed that write, and one to lead the next write (see
    /// `Reached::wake_writers`).
    pub(super) fn wake_writers(&self, st: &mut Locked<'_>) {
        let reached = st.reached_now();
        let state = &mut **st;
        reached.wake_writers(&mut state.sleepers, &mut state.to_wake);
        self.unpark(st);
    }

    /// Unparks the threads picked to wake, with the lock released so they
    /// can take it at once.
    fn unpark(&self, st: &mut Locked<'_>) {
        if st.to_wake.is_empty() {
            return;
        }
        st.metrics.wakeups += st.to_wake.len() as u64;
        let mut threads = mem::take(&mut st.to_wake);
        MutexGuard::unlocked(st, || threads.iter().for_each(Thread::unpark));
        threads.clear();
        st.to_wake = threads;
    }

    /// Wakes the background syncer.
    pub(super) fn wake_syncer(&self) {
        self.syncer_wake.notify_all();
    }

    /// The background syncer's sleep: until woken, or `period` passes.
    pub(super) fn syncer_sleep(&self, st: &mut Locked<'_>, period: Option<Duration>) {
        match period {
            Some(period) => {
                let _ = self.syncer_wake.wait_for(st, period);
            }
            None => self.syncer_wake.wait(st),
        }
    }
}
