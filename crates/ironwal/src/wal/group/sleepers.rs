//! Sleeping appenders: each parks on a signal of its own, and the end of a
//! round decides which of them wake (those it satisfied, and one to lead
//! the next round), so no thread wakes only to sleep again.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::Thread;

use super::Reach;
use crate::seq::Seq;

/// A thread parked until its sequence reaches `reach`.
#[derive(Debug)]
pub(super) struct Sleeper {
    pub(super) seq: Seq,
    pub(super) reach: Reach,
    pub(super) thread: Thread,
    /// Set before the thread is unparked: `DONE` or `WAKE`.
    pub(super) signal: Arc<AtomicU8>,
}

/// A sleeper's signal: still waiting.
pub(super) const WAITING: u8 = 0;
/// Its sequence reached what it waited for: it may return without taking
/// the lock again.
pub(super) const DONE: u8 = 1;
/// It must take the lock and look (lead the next round, or collect an error).
pub(super) const WAKE: u8 = 2;

thread_local! {
    /// Each thread's one signal, reused by every wait (no allocation).
    pub(super) static SIGNAL: Arc<AtomicU8> = Arc::new(AtomicU8::new(WAITING));
}

/// Parks until `signal` is set; returns it.
pub(super) fn sleep(signal: &AtomicU8) -> u8 {
    loop {
        match signal.load(Ordering::Acquire) {
            WAITING => std::thread::park(),
            set => return set,
        }
    }
}

/// How far the log got, as a round of I/O ends: decides which sleepers
/// wake.
#[derive(Clone, Copy, Debug)]
pub(super) struct Reached {
    pub(super) written: Seq,
    pub(super) durable: Seq,
    /// The highest sequence the sync in flight (or the last one) covers.
    pub(super) requested: Seq,
    pub(super) poisoned: bool,
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
    pub(super) fn wake(self, sleepers: &mut Vec<Sleeper>, to_wake: &mut Vec<Thread>) {
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

    /// Mid-round, once a syncing round's write is done (its sync still to
    /// come): moves to `to_wake` the sleepers that only needed their bytes
    /// written and the write covered, and one that needs a write it did not
    /// cover, to lead a write-only round while the sync runs. Without this
    /// they would sleep through the fsync they do not need.
    pub(super) fn wake_writers(self, sleepers: &mut Vec<Sleeper>, to_wake: &mut Vec<Thread>) {
        let done = sleepers.extract_if(.., |s| s.reach == Reach::Written && s.seq <= self.written);
        to_wake.extend(done.map(|s| {
            s.signal.store(DONE, Ordering::Release);
            s.thread
        }));
        if let Some(next) = sleepers.iter().find(|s| s.reach == Reach::Written) {
            next.signal.store(WAKE, Ordering::Release);
            to_wake.push(next.thread.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(seq: u64, reach: Reach) -> Sleeper {
        Sleeper {
            seq: Seq::new(seq),
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
            written: Seq::new(6),
            durable: Seq::new(3),
            requested: Seq::new(3),
            poisoned: false,
        };
        reached.wake(&mut sleepers, &mut to_wake);
        assert_eq!(signals(&[&a, &b]), [DONE, WAKE]);
        assert_eq!(to_wake.len(), 2);
        // The new leader stays registered until it runs.
        assert_eq!(sleepers.len(), 1);
        assert_eq!(sleepers[0].seq, Seq::new(6));
    }

    #[test]
    fn sleepers_a_sync_in_flight_covers_are_left_to_it() {
        let (covered, beyond) = (sleeper(4, Reach::Synced), sleeper(9, Reach::Written));
        let (a, b) = (Arc::clone(&covered.signal), Arc::clone(&beyond.signal));
        let mut sleepers = vec![covered, beyond];
        let mut to_wake = Vec::new();
        let reached = Reached {
            written: Seq::new(5),
            durable: Seq::new(2),
            requested: Seq::new(5),
            poisoned: false,
        };
        reached.wake(&mut sleepers, &mut to_wake);
        assert_eq!(signals(&[&a, &b]), [WAITING, WAKE]);
        assert_eq!(sleepers.len(), 2);

        // Nothing left to lead for: only the satisfied wake.
        to_wake.clear();
        let reached = Reached {
            written: Seq::new(9),
            durable: Seq::new(5),
            requested: Seq::new(5),
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
            written: Seq::new(0),
            durable: Seq::new(0),
            requested: Seq::new(0),
            poisoned: true,
        };
        reached.wake(&mut sleepers, &mut to_wake);
        assert_eq!(signals(&[&a, &b]), [WAKE, WAKE]);
        assert!(sleepers.is_empty());
        assert_eq!(to_wake.len(), 2);
    }

    /// Once a syncing round's write is done, the sleepers that only needed
    /// the write wake, and one that needs a later write leads; the one that
    /// needs the sync stays asleep for the round's end.
    #[test]
    fn a_finished_write_wakes_the_writers_and_not_the_syncers() {
        let (covered, later, syncer) = (
            sleeper(5, Reach::Written),
            sleeper(9, Reach::Written),
            sleeper(4, Reach::Synced),
        );
        let (a, b, c) = (
            Arc::clone(&covered.signal),
            Arc::clone(&later.signal),
            Arc::clone(&syncer.signal),
        );
        let mut sleepers = vec![covered, later, syncer];
        let mut to_wake = Vec::new();
        let reached = Reached {
            written: Seq::new(6),
            durable: Seq::new(0),
            requested: Seq::new(6),
            poisoned: false,
        };
        reached.wake_writers(&mut sleepers, &mut to_wake);
        assert_eq!(signals(&[&a, &b, &c]), [DONE, WAKE, WAITING]);
        assert_eq!(to_wake.len(), 2);
        assert_eq!(sleepers.len(), 2, "the new leader stays registered");
    }
}
