//! The append engine: [`Inner`], an open log's shared core, and the
//! leader's I/O. Writing a round, syncing it, sealing and replacing a
//! segment and cutting one back after a failure all run here, inside a
//! [`Round`] and always with the state lock released; `group` decides who
//! leads and who wakes.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use parking_lot::Mutex;

use super::group::{Batch, Group, Locked, Reach, Room, Round, Seal, State};
use super::segments::{create_segment, Active, Preparer, SegmentMeta};
use super::syncer::Syncer;
use crate::error::{Error, Result};
use crate::options::Options;
use crate::report::RecoveryReport;
use crate::segment::SegmentId;
use crate::segment_record::SegmentRecord;
use crate::seq::Seq;
use crate::storage::{DirLock, StorageFile};

/// An open log's shared core (what [`crate::Wal`] and its background
/// threads hold).
#[derive(Debug)]
pub(super) struct Inner {
    pub(super) dir: PathBuf,
    pub(super) options: Options,
    pub(super) group: Group,
    pub(super) syncer: Syncer,
    pub(super) preparer: Option<Preparer>,
    /// The segment record as last written (or meant to be). Taken before
    /// the group's state when both are needed.
    pub(super) record: Mutex<SegmentRecord>,
    lock: Mutex<Option<Box<dyn DirLock>>>,
    pub(super) report: RecoveryReport,
}

/// Hands a round's buffer to the file.
fn write(batch: &Batch) -> io::Result<()> {
    match batch.data.is_empty() {
        true => Ok(()),
        false => batch.file.write_all_at(&batch.data, batch.offset),
    }
}

/// Writes a segment's last round and ends the segment at its last entry:
/// the zeros of preallocation past it are cut. The fdatasync that makes
/// both durable is the pending seal's.
fn finish_segment(batch: &Batch) -> io::Result<()> {
    write(batch)?;
    let end = batch.offset + batch.data.len() as u64;
    if batch.file.len()? > end {
        batch.file.set_len(end)?;
    }
    Ok(())
}

/// Cuts a failed segment back to `len` bytes, durably.
fn cut(file: &dyn StorageFile, len: u64) -> io::Result<()> {
    file.set_len(len)?;
    file.sync_data()
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
        Inner {
            dir,
            group: Group::new(&options, state),
            options,
            syncer: Syncer::default(),
            preparer,
            record: Mutex::new(record),
            lock: Mutex::new(Some(lock)),
            report,
        }
    }

    /// Encodes an entry of `count` operations and assigns its sequences;
    /// then, if `wait`, waits as the sync policy requires. Without `wait` the
    /// entry is only buffered (written out if the buffer is full); it never
    /// waits for an fdatasync.
    pub(super) fn append(
        &self,
        count: u64,
        batch: bool,
        wait: bool,
        encode: impl FnOnce(&mut Vec<u8>, u64) -> Result<()>,
    ) -> Result<Seq> {
        let mut st = self.group.lock();
        self.make_room(&mut st)?;
        let pushed = self.group.push(&mut st, count, batch, wait, encode)?;
        if let Some(reach) = pushed.wait {
            let lead = |st: &mut Locked<'_>, reach| self.lead(st, reach);
            self.group.wait_released(st, pushed.last, reach, lead)?;
        }
        Ok(pushed.seq)
    }

    /// Returns once `seq` has reached `reach`, leading rounds as needed.
    pub(super) fn wait_for(&self, st: &mut Locked<'_>, seq: Seq, reach: Reach) -> Result<()> {
        let lead = |st: &mut Locked<'_>, reach| self.lead(st, reach);
        self.group.wait_for(st, seq, reach, lead)
    }

    /// Before an append: if the active segment is full, seals it and
    /// starts a new one.
    fn make_room(&self, st: &mut Locked<'_>) -> Result<()> {
        loop {
            match self.group.room(st)? {
                Room::Fits => return Ok(()),
                Room::WaitForIo => self.group.wait_for_io(st),
                Room::Rotate => self.rotate(st)?,
                Room::Seal => self.lead(st, Reach::Written),
            }
        }
    }

    /// One round of I/O: writes the whole buffer and, for `Synced`, syncs
    /// it. Once the write is done, a leader that only needs to write (a
    /// full buffer under a lazy sync policy) may go ahead while this round
    /// syncs. Any failure poisons the log.
    pub(super) fn lead(&self, st: &mut Locked<'_>, reach: Reach) {
        let sync = reach == Reach::Synced;
        let mut round = self.group.begin_write(st, sync);
        if !self.seal_if_pending(&mut round) {
            return;
        }
        if let Some(delay) = self.options.commit_delay.filter(|_| sync) {
            // Let more appenders join this group before it is cut.
            round.unlocked(|| std::thread::sleep(delay));
        }
        let batch = round.take_batch();
        let file = std::sync::Arc::clone(&batch.file);
        let wrote = round.unlocked(|| write(&batch));
        let written = round.written(batch, wrote);
        self.cut_if_due(&mut round);
        round.release_write();
        let Some(written) = written.filter(|_| sync) else {
            return;
        };
        let started = Instant::now();
        let synced = round.unlocked(|| file.sync_data());
        round.synced(written, started.elapsed(), synced);
        self.cut_if_due(&mut round);
    }

    /// Ends the active segment (its last round written, its tail cut) and
    /// makes the next one active. Its fdatasync is left pending: the first
    /// round that writes runs it (the background syncer, under the lazy
    /// policies, right away), and appends go on into memory meanwhile.
    fn rotate(&self, st: &mut Locked<'_>) -> Result<()> {
        let mut round = self.group.begin_rotation(st);
        let seal_of: Seal = round.take_seal();
        let (written, next) = round.unlocked(|| {
            let written = finish_segment(&seal_of.batch);
            let next = written.is_ok().then(|| self.next_segment(seal_of.meta.id));
            (written, next)
        });
        let result = round.rotated(seal_of, written, next);
        self.cut_if_due(&mut round);
        result
    }

    /// Runs the pending seal, if this round must: the sealed segment's
    /// fdatasync, then the segment record that lists it. `false` if it
    /// failed (the log is poisoned; the segment is cut back to what was
    /// durable before, best effort).
    fn seal_if_pending(&self, round: &mut Round<'_, '_>) -> bool {
        let Some(seal) = round.take_pending_seal() else {
            return true;
        };
        let started = Instant::now();
        let synced = round.unlocked(|| {
            let synced = seal.file.sync_data();
            match &synced {
                Ok(()) => self.record_rotation(&seal.meta, seal.next, seal.upto.next()),
                Err(_) => {
                    if let Err(error) = cut(&*seal.file, seal.synced_len) {
                        tracing::warn!(%error, "could not cut the failed segment back");
                    }
                }
            }
            synced
        });
        round.seal_synced(&seal, started.elapsed(), synced)
    }

    /// Runs the pending seal, if there is one, or waits for the round
    /// running it.
    pub(super) fn settle_seal(&self, st: &mut Locked<'_>) {
        while self.seal_step(st) {}
    }

    /// One step towards a pending seal: runs it when no round is doing I/O,
    /// else waits for the round in flight to end. `false` when no seal is
    /// pending.
    pub(super) fn seal_step(&self, st: &mut Locked<'_>) -> bool {
        match st.seal_pending() {
            None => return false,
            Some(false) if st.io_idle() => self.lead(st, Reach::Written),
            Some(_) => self.group.wait_for_io(st),
        }
        true
    }

    /// Makes the cut a failure asked for, if it falls to this round: best
    /// effort (the log is poisoned already; this only keeps a restart from
    /// building on bytes that may not be durable).
    fn cut_if_due(&self, round: &mut Round<'_, '_>) {
        let Some((file, len)) = round.due_cut() else {
            return;
        };
        if let Err(error) = round.unlocked(|| cut(&*file, len)) {
            tracing::warn!(%error, len, "could not cut the failed segment back");
        }
        round.cut_done(len);
    }

    /// Writes the segment record after a rotation: `sealed` joins the sealed
    /// segments and `active`, whose first entry will be `first`, is active.
    /// A failure leaves the old record, which still describes the log (the
    /// new segment reads as one that continues it), so it is only logged.
    fn record_rotation(&self, sealed: &SegmentMeta, active: SegmentId, first: Seq) {
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

    /// Writes (and for `Synced` syncs) everything appended so far.
    pub(super) fn sync(&self, reach: Reach) -> Result<()> {
        let mut st = self.group.lock();
        if st.is_closed() {
            return Err(Error::Closed);
        }
        let seq = st.buffered_seq();
        self.wait_for(&mut st, seq, reach)
    }

    pub(super) fn wait_durable(&self, seq: Seq) -> Result<()> {
        let mut st = self.group.lock();
        if seq > st.buffered_seq() {
            return Err(Error::NotAppended {
                seq,
                last: st.buffered_seq(),
            });
        }
        self.wait_for(&mut st, seq, Reach::Synced)
    }

    /// Closes the log: syncs what was appended, stops the background
    /// threads, cuts the active segment's zero tail (a log at rest ends at
    /// its last entry: kevo's reader reads zeros as damage) and releases
    /// the directory lock.
    pub(super) fn close(&self) -> Result<()> {
        let mut st = self.group.lock();
        if !st.close() {
            return Ok(());
        }
        let seq = st.buffered_seq();
        let result = self.wait_for(&mut st, seq, Reach::Synced);
        if result.is_ok() {
            // A rotation whose entries were all synced already may still
            // have its seal (the cut's length, the record) to make durable.
            self.settle_seal(&mut st);
        }
        self.group.wake_everyone(&mut st);
        let tail = st.active_tail();
        drop(st);
        self.syncer.join();
        if let Some(preparer) = &self.preparer {
            preparer.stop();
        }
        let result = result.and_then(|()| {
            let Some((file, path, written)) = tail else {
                return Ok(());
            };
            let cut = file.len().and_then(|len| match len > written {
                true => cut(&*file, written),
                false => Ok(()),
            });
            cut.map_err(Error::io(&*path))
        });
        self.lock.lock().take();
        result
    }
}
