//! A round of I/O, as group commit sees it: what the leader took, what it
//! reports back, and the end of the round, which fires every wake-up.

use std::mem;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::MutexGuard;

use super::{Group, Locked};
use crate::error::{Error, Result};
use crate::seq::Seq;
use crate::sparse_index::SparseIndex;
use crate::storage::StorageFile;
use crate::wal::segments::{Active, SegmentMeta};

impl Group {
    /// Starts a round of I/O: a write (and, if `sync`, an fdatasync) of
    /// the buffer. Writes are serialized; so are syncs.
    pub(in crate::wal) fn begin_write<'g, 'a>(
        &'g self,
        st: &'g mut Locked<'a>,
        sync: bool,
    ) -> Round<'g, 'a> {
        st.writing = true;
        st.syncing |= sync;
        Round {
            group: self,
            st,
            holds: Holds {
                write: true,
                sync,
                rotate: false,
            },
        }
    }

    /// Starts a rotation: the buffer goes to the active segment, which is
    /// sealed and replaced. No other I/O runs meanwhile.
    pub(in crate::wal) fn begin_rotation<'g, 'a>(
        &'g self,
        st: &'g mut Locked<'a>,
    ) -> Round<'g, 'a> {
        debug_assert!(!st.writing && !st.syncing && !st.rotating);
        st.writing = true;
        st.rotating = true;
        Round {
            group: self,
            st,
            holds: Holds {
                write: true,
                sync: false,
                rotate: true,
            },
        }
    }
}

/// Which of the state's I/O flags a round set.
#[derive(Clone, Copy, Debug)]
struct Holds {
    write: bool,
    sync: bool,
    rotate: bool,
}

/// The buffer a leader took to write, and where it goes.
#[derive(Debug)]
pub(in crate::wal) struct Batch {
    pub(in crate::wal) data: Vec<u8>,
    pub(in crate::wal) offset: u64,
    pub(in crate::wal) file: Arc<dyn StorageFile>,
    /// The highest sequence in it.
    pub(in crate::wal) upto: Seq,
    /// Where some of its entries start (sequence, offset in `data`), for
    /// the segment's sparse index.
    marks: Vec<(Seq, usize)>,
}

/// A sealed segment whose fdatasync has not run yet: nothing may be written
/// to the new active segment until it has (a crash must only ever lose a
/// suffix of the log), and the segment record lists the sealed segment only
/// once it is durable.
#[derive(Clone, Debug)]
pub(in crate::wal) struct PendingSeal {
    pub(in crate::wal) file: Arc<dyn StorageFile>,
    /// The segment as the record will list it.
    pub(in crate::wal) meta: SegmentMeta,
    /// The segment that became active, and its first sequence.
    pub(in crate::wal) next: crate::segment::SegmentId,
    pub(in crate::wal) upto: Seq,
    /// Bytes of it already durable before the rotation (what a failed
    /// seal cuts it back to).
    pub(in crate::wal) synced_len: u64,
    /// Bytes handed to files since open, its own last write included.
    bytes: u64,
    /// A round is syncing it.
    pub(super) running: bool,
}

/// A segment being sealed by a rotation.
#[derive(Debug)]
pub(in crate::wal) struct Seal {
    pub(in crate::wal) batch: Batch,
    /// The segment as it is once sealed.
    pub(in crate::wal) meta: SegmentMeta,
}

/// A round of I/O in progress: holds the lock between its I/O operations
/// (releasing it around each, see [`Round::unlocked`]). Dropping it ends
/// the round: it clears what it set and fires every wake-up. A round that
/// ends in a panic poisons the log, since what reached the file is
/// unknown.
#[derive(Debug)]
pub(in crate::wal) struct Round<'g, 'a> {
    group: &'g Group,
    st: &'g mut Locked<'a>,
    holds: Holds,
}

impl Round<'_, '_> {
    /// Runs `f` (the I/O) with the lock released.
    pub(in crate::wal) fn unlocked<R>(&mut self, f: impl FnOnce() -> R) -> R {
        MutexGuard::unlocked(self.st, f)
    }

    /// Takes the buffer (leaving the empty spare for appenders to fill);
    /// for a syncing round, the group is cut here.
    pub(in crate::wal) fn take_batch(&mut self) -> Batch {
        let st = &mut **self.st;
        let spare = mem::take(&mut st.spare);
        let data = mem::replace(&mut st.buf, spare);
        let spare_marks = mem::take(&mut st.spare_marks);
        let marks = mem::replace(&mut st.marks, spare_marks);
        if self.holds.sync {
            st.requested_seq = st.buffered_seq;
        }
        Batch {
            data,
            offset: st.active.written,
            file: Arc::clone(&st.active.file),
            upto: st.buffered_seq,
            marks,
        }
    }

    /// Takes the buffer for the last write to the segment a rotation seals.
    pub(in crate::wal) fn take_seal(&mut self) -> Seal {
        let batch = self.take_batch();
        let meta = SegmentMeta {
            len: batch.offset + batch.data.len() as u64,
            ..self.st.active.meta.clone()
        };
        Seal { batch, meta }
    }

    /// Adds a written batch's marks to `index` and keeps their vector for
    /// the next batch.
    fn index_marks(&mut self, index: &SparseIndex, offset: u64, mut marks: Vec<(Seq, usize)>) {
        for &(seq, at) in &marks {
            index.note(seq, offset + at as u64);
        }
        marks.clear();
        self.st.spare_marks = marks;
    }

    /// Returns a written buffer as the spare, shrinking one a huge entry grew.
    fn recycle(&mut self, mut data: Vec<u8>) {
        data.clear();
        let size = self.group.config.write_buffer_size;
        if data.capacity() > 4 * size {
            data.shrink_to(size);
        }
        self.st.spare = data;
    }

    /// Records the outcome of writing `batch`: on success its bytes and
    /// sequences are written and the returned mark says how far a sync now
    /// covers; on failure the log is poisoned.
    pub(in crate::wal) fn written(
        &mut self,
        batch: Batch,
        wrote: std::io::Result<()>,
    ) -> Option<Written> {
        let len = batch.data.len() as u64;
        let (offset, upto) = (batch.offset, batch.upto);
        self.recycle(batch.data);
        if let Err(source) = wrote {
            if self.holds.sync {
                self.st.syncing = false;
                self.holds.sync = false;
            }
            // Remove whatever part of the write reached the file.
            self.fail(source, offset);
            return None;
        }
        let index = Arc::clone(&self.st.active.meta.index);
        self.index_marks(&index, offset, batch.marks);
        let st = &mut **self.st;
        st.active.written += len;
        st.written_seq = upto;
        st.written_bytes += len;
        if !self.holds.sync {
            if let Some(every) = self.group.config.background_sync {
                let unsynced = st.active.written - st.active.synced;
                if !st.syncing && unsynced >= every {
                    st.background_sync_due = true;
                }
                st.note_written();
            }
        }
        Some(Written {
            upto,
            bytes: st.written_bytes,
            segment_len: st.active.written,
        })
    }

    /// Lets other writers go ahead while this round syncs.
    pub(in crate::wal) fn release_write(&mut self) {
        if self.holds.write {
            self.st.writing = false;
            self.holds.write = false;
        }
        if self.holds.sync {
            // The sync is still to come: those who only needed the write
            // need not sleep through it.
            self.group.wake_writers(self.st);
        }
    }

    /// Records the outcome of the fdatasync covering `written`.
    pub(in crate::wal) fn synced(
        &mut self,
        written: Written,
        took: Duration,
        synced: std::io::Result<()>,
    ) {
        self.st.syncing = false;
        self.holds.sync = false;
        if let Err(source) = synced {
            // After a failed fdatasync the kernel may drop the unsynced pages
            // while still showing them to reads: cut back to what is known
            // durable, so a restarted process does not append after bytes
            // that may never reach the disk.
            let durable = self.st.active.synced;
            self.fail(source, durable);
            return;
        }
        let st = &mut **self.st;
        st.active.synced = st.active.synced.max(written.segment_len);
        st.synced(written.upto, written.bytes, took);
    }

    /// Records a rotation's outcome: the last write to the old segment (and
    /// the cut of its zero tail) and, if that succeeded, the segment that
    /// becomes active (`None` when creating it failed: the old segment stays
    /// active and a later append retries). The old segment's fdatasync is
    /// left pending ([`Self::take_pending_seal`]): appends go on into memory
    /// meanwhile, and the first round that writes does it before any byte
    /// reaches the new segment.
    pub(in crate::wal) fn rotated(
        &mut self,
        seal: Seal,
        written: std::io::Result<()>,
        next: Option<Result<Active>>,
    ) -> Result<()> {
        let len = seal.batch.data.len() as u64;
        let upto = seal.batch.upto;
        let file = Arc::clone(&seal.batch.file);
        self.recycle(seal.batch.data);
        if let Err(source) = written {
            let durable = self.st.active.synced;
            self.fail(source, durable);
            return Ok(());
        }
        self.index_marks(&seal.meta.index, seal.batch.offset, seal.batch.marks);
        let st = &mut **self.st;
        st.active.written += len;
        st.written_seq = upto;
        st.written_bytes += len;
        match next {
            Some(Ok(next)) => {
                st.metrics.rotations += 1;
                tracing::info!(segment = %next.meta.path.display(), "started segment");
                let synced_len = st.active.synced;
                st.seal = Some(PendingSeal {
                    file,
                    meta: seal.meta.clone(),
                    next: next.meta.id,
                    upto,
                    synced_len,
                    bytes: st.written_bytes,
                    running: false,
                });
                st.active = next;
                st.sealed.push(seal.meta);
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => Ok(()),
        }
    }

    /// The sealed segment whose fdatasync is pending, if any and no other
    /// round is doing it: this round must do it before it writes.
    pub(in crate::wal) fn take_pending_seal(&mut self) -> Option<PendingSeal> {
        let seal = self.st.seal.as_mut().filter(|s| !s.running)?;
        seal.running = true;
        Some(seal.clone())
    }

    /// Records the outcome of a pending seal's fdatasync: on success the
    /// sealed segment's entries are durable; on failure the log is
    /// poisoned. Returns whether it succeeded.
    pub(in crate::wal) fn seal_synced(
        &mut self,
        seal: &PendingSeal,
        took: Duration,
        synced: std::io::Result<()>,
    ) -> bool {
        let st = &mut **self.st;
        st.seal = None;
        if let Err(source) = synced {
            let path = seal.meta.path.to_path_buf();
            st.poison(Error::Io { path, source });
            return false;
        }
        st.requested_seq = st.requested_seq.max(seal.upto);
        st.synced(seal.upto, seal.bytes, took);
        true
    }

    /// Poisons the log after a failed write or sync of the active segment
    /// and asks for the segment to be cut back to `keep` bytes (the log
    /// cannot vouch for what follows): by this round if no other write is
    /// in flight, else by that write's round when it ends.
    pub(in crate::wal) fn fail(&mut self, source: std::io::Error, keep: u64) {
        let path = self.st.active.meta.path.to_path_buf();
        self.st.poison(Error::Io { path, source });
        let st = &mut **self.st;
        st.cut_pending = Some(st.cut_pending.map_or(keep, |k| k.min(keep)));
    }

    /// A cut this round should make now, if one is pending and no other
    /// round is writing: the file and the length to cut it to. The round
    /// holds the write until it ends.
    pub(in crate::wal) fn due_cut(&mut self) -> Option<(Arc<dyn StorageFile>, u64)> {
        if self.st.writing && !self.holds.write {
            return None;
        }
        let len = self.st.cut_pending.take()?;
        self.st.writing = true;
        self.holds.write = true;
        Some((Arc::clone(&self.st.active.file), len))
    }

    /// After the cut [`Self::due_cut`] asked for.
    pub(in crate::wal) fn cut_done(&mut self, len: u64) {
        let active = &mut self.st.active;
        active.written = active.written.min(len);
    }
}

/// What a successful write covers, for the sync that follows it.
#[derive(Clone, Copy, Debug)]
pub(in crate::wal) struct Written {
    upto: Seq,
    /// Bytes handed to files since open, this write included.
    bytes: u64,
    /// The active segment's written length after it.
    segment_len: u64,
}

impl Drop for Round<'_, '_> {
    fn drop(&mut self) {
        let held = self.holds.write || self.holds.sync || self.holds.rotate;
        if held && std::thread::panicking() {
            let cause = std::io::Error::other("a thread panicked during the log's I/O");
            let path = self.st.active.meta.path.to_path_buf();
            self.st.poison(Error::Io {
                path,
                source: cause,
            });
        }
        if self.holds.write {
            self.st.writing = false;
        }
        if self.holds.sync {
            self.st.syncing = false;
        }
        if self.holds.rotate {
            self.st.rotating = false;
        }
        self.group.wake_everyone(self.st);
    }
}
