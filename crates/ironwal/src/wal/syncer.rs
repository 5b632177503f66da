//! The background syncer, and [`Durable`], the future async callers await.
//!
//! One thread per log runs the syncs nobody waits for on a thread of their
//! own: the periodic sync of `SyncPolicy::Interval`, background syncs every
//! [`crate::Options::background_sync_bytes`], syncs handed over by appends
//! that do not wait, the seal of each segment a rotation ends, and the
//! syncs [`Durable`] futures wait for. Between background syncs it starts
//! the write-back of each MiB written (a hint to the kernel), so the seal's
//! fdatasync at a rotation finds little left to write. It leads
//! an ordinary group-commit round, so its fsync covers everyone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

use super::engine::Inner;
use super::group::{DurablePoll, Reach};
use crate::error::{Error, Result};
use crate::options::SyncPolicy;
use crate::seq::Seq;

/// The background syncer's thread, once started.
#[derive(Debug, Default)]
pub(super) struct Syncer {
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl Syncer {
    /// Waits for the thread to exit (the log is closed and its state woke
    /// it).
    pub(super) fn join(&self) {
        if let Some(handle) = self.handle.lock().take() {
            let _ = handle.join();
        }
    }
}

impl Inner {
    /// Whether the log needs the background syncer from the start (else it
    /// starts when an async caller first waits): under every policy but
    /// `Always`, where appenders sync for themselves, it also runs the seal
    /// of each segment a rotation ends, so appends need not wait for it.
    pub(super) fn needs_syncer(&self) -> bool {
        self.options.sync_policy != SyncPolicy::Always
    }

    /// Starts the background syncer unless it runs already.
    pub(super) fn start_syncer(self: &Arc<Self>) -> Result<()> {
        let mut slot = self.syncer.handle.lock();
        if slot.is_some() || self.group.lock().is_closed() {
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

    /// The background syncer: sleeps until woken (or `period` passes), then
    /// syncs whatever is unsynced; exits once the log is closed.
    fn run_syncer(&self, period: Option<Duration>) {
        let mut st = self.group.lock();
        loop {
            // `closed` is checked under the lock before sleeping, so close's
            // wake-up cannot slip in between.
            if st.is_closed() {
                return;
            }
            if st.syncer_idle() {
                self.group.syncer_sleep(&mut st, period);
                if st.is_closed() {
                    return;
                }
            }
            // Seal the segment the last rotation ended, so appends need not
            // wait for it (one step at a time, so a close is seen).
            if self.seal_step(&mut st) {
                continue;
            }
            if let Some(hint) = st.take_writeback() {
                let started = MutexGuard::unlocked(&mut st, || {
                    hint.file.start_writeback(hint.offset, hint.len)
                });
                if let Err(error) = started {
                    // Only a hint: the next sync writes these bytes anyway.
                    tracing::debug!(%error, "could not start a write-back");
                }
                continue;
            }
            if let Some(seq) = st.take_background_sync() {
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
        let poll = self.inner.group.lock().poll_durable(self.seq, cx.waker());
        if let DurablePoll::Ready(result) = poll {
            return Poll::Ready(result);
        }
        if let Err(e) = self.inner.start_syncer() {
            return Poll::Ready(Err(e));
        }
        self.inner.group.wake_syncer();
        Poll::Pending
    }
}
