//! What the background syncer and async waiters ([`crate::Wal::durable`])
//! read of group commit's state, and take from it.

use std::sync::Arc;
use std::task::Waker;

use super::{State, WRITE_BEHIND_STEP};
use crate::error::{Error, Result};
use crate::seq::Seq;
use crate::storage::StorageFile;

/// Where a [`crate::Wal::durable`] future stands.
#[derive(Debug)]
pub(in crate::wal) enum DurablePoll {
    Ready(Result<()>),
    /// Registered: the background syncer will sync and wake it.
    Pending,
}

/// A range of a segment whose write-back the background syncer starts
/// (`StorageFile::start_writeback`).
#[derive(Debug)]
pub(in crate::wal) struct Writeback {
    pub(in crate::wal) file: Arc<dyn StorageFile>,
    pub(in crate::wal) offset: u64,
    pub(in crate::wal) len: u64,
}

impl State {
    /// Where a `durable` future for `seq` stands; registers its waker when
    /// it must wait.
    pub(in crate::wal) fn poll_durable(&mut self, seq: Seq, waker: &Waker) -> DurablePoll {
        if let Err(e) = self.check_poisoned() {
            return DurablePoll::Ready(Err(e));
        }
        if self.durable_seq >= seq {
            return DurablePoll::Ready(Ok(()));
        }
        if seq > self.buffered_seq {
            return DurablePoll::Ready(Err(Error::NotAppended {
                seq,
                last: self.buffered_seq,
            }));
        }
        if self.closed {
            // Close synced everything it could; what is missing is lost.
            return DurablePoll::Ready(Err(Error::Closed));
        }
        let registered = self
            .waiters
            .iter()
            .any(|(s, w)| *s == seq && w.will_wake(waker));
        if !registered {
            self.waiters.push((seq, waker.clone()));
        }
        DurablePoll::Pending
    }

    /// Wakes the async waiters whose sequence is now durable (all of them
    /// once the log is poisoned or closed: they have an error to collect).
    pub(super) fn wake_waiters(&mut self) {
        let durable = self.durable_seq;
        let all = self.poisoned.is_some() || self.closed;
        self.waiters.retain(|(seq, waker)| {
            let done = all || *seq <= durable;
            if done {
                waker.wake_by_ref();
            }
            !done
        });
    }

    /// Whether the background syncer has nothing to do until woken or its
    /// period passes: no async caller waits beyond what is durable, no
    /// seal, sync or write-back hint is due (or the log is poisoned).
    pub(in crate::wal) fn syncer_idle(&self) -> bool {
        let durable = self.durable_seq;
        let waited_for = self.waiters.iter().any(|(seq, _)| *seq > durable);
        let due = self.background_sync_due || self.writeback_due || self.seal.is_some();
        !(waited_for || due) || self.poisoned.is_some()
    }

    /// Whether a sealed segment's fdatasync is pending, and whether a round
    /// is running it.
    pub(in crate::wal) fn seal_pending(&self) -> Option<bool> {
        self.seal.as_ref().map(|s| s.running)
    }

    /// Whether no round of I/O runs.
    pub(in crate::wal) fn io_idle(&self) -> bool {
        !self.writing && !self.syncing && !self.rotating
    }

    /// The background syncer takes over whatever sync is due: the sequence
    /// to make durable, if anything is unsynced.
    pub(in crate::wal) fn take_background_sync(&mut self) -> Option<Seq> {
        self.background_sync_due = false;
        let due = self.poisoned.is_none() && self.buffered_seq > self.durable_seq;
        due.then_some(self.buffered_seq)
    }

    /// After a round wrote without syncing: marks a write-back hint due
    /// once [`WRITE_BEHIND_STEP`] of the active segment is neither synced
    /// nor hinted.
    pub(super) fn note_written(&mut self) {
        let active = &self.active;
        let from = active.hinted.max(active.synced);
        if active.written.saturating_sub(from) >= WRITE_BEHIND_STEP {
            self.writeback_due = true;
        }
    }

    /// The background syncer takes over the write-back hint that is due:
    /// the active segment's bytes written since the last hint (or sync).
    pub(in crate::wal) fn take_writeback(&mut self) -> Option<Writeback> {
        if !std::mem::take(&mut self.writeback_due) || self.poisoned.is_some() {
            return None;
        }
        let active = &mut self.active;
        let offset = active.hinted.max(active.synced);
        let len = active.written.checked_sub(offset).filter(|n| *n > 0)?;
        active.hinted = active.written;
        Some(Writeback {
            file: Arc::clone(&active.file),
            offset,
            len,
        })
    }
}
