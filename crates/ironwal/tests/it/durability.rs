//! Waiting for durability without blocking a thread per write: nowait
//! appends, `wait_durable`, the `Durable` future, the background syncer.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Duration;

use ironwal::storage::MemStorage;
use ironwal::{Error, Options, Seq, SyncPolicy, Wal, WriteBatch};

use crate::common::replay_all;

/// Runs a future to completion on this thread.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(value) => return value,
            Poll::Pending => std::thread::park(),
        }
    }
}

fn mem_wal(policy: SyncPolicy) -> (MemStorage, Wal) {
    let mem = MemStorage::new();
    let options = Options::default()
        .storage(Arc::new(mem.clone()))
        .preallocate(false)
        .sync_policy(policy);
    let wal = Wal::open("/log", options).unwrap();
    (mem, wal)
}

#[test]
fn nowait_appends_return_before_syncing_and_wait_durable_syncs() {
    let (mem, wal) = mem_wal(SyncPolicy::Always);
    let before = mem.syncs();
    let mut last = Seq::ZERO;
    for i in 0..100u32 {
        last = wal.put_nowait(&i.to_be_bytes(), b"v").unwrap();
    }
    let mut batch = WriteBatch::new();
    batch.put(b"x", b"1").delete(b"y");
    let first = wal.write_batch_nowait(&batch).unwrap();
    assert_eq!(first.get(), last.get() + 1);
    assert_eq!(mem.syncs(), before, "nowait appends do not sync");
    assert!(wal.durable_seq() < first);

    wal.wait_durable(first + 1).unwrap();
    assert!(wal.durable_seq().get() > first.get());
    assert_eq!(mem.syncs(), before + 1, "one sync covers all of them");
    assert_eq!(replay_all(&wal).len(), 102);
}

#[test]
fn waiting_for_a_sequence_not_yet_appended_is_an_error() {
    let (_, wal) = mem_wal(SyncPolicy::Always);
    let seq = wal.put(b"k", b"v").unwrap();
    let ahead = seq.next();
    assert!(matches!(
        wal.wait_durable(ahead),
        Err(Error::NotAppended { .. })
    ));
    assert!(matches!(
        block_on(wal.durable(ahead)),
        Err(Error::NotAppended { .. })
    ));
    wal.wait_durable(seq).unwrap();
    block_on(wal.durable(seq)).unwrap();
}

#[test]
fn durable_futures_resolve_and_share_syncs() {
    let (mem, wal) = mem_wal(SyncPolicy::Always);
    let before = mem.syncs();
    let seqs: Vec<Seq> = (0..1000u32)
        .map(|i| wal.put_nowait(&i.to_be_bytes(), b"v").unwrap())
        .collect();
    let futures: Vec<_> = seqs.iter().map(|&s| wal.durable(s)).collect();
    for future in futures {
        block_on(future).unwrap();
    }
    assert!(wal.durable_seq() >= *seqs.last().unwrap());
    let syncs = mem.syncs() - before;
    assert!((1..=5).contains(&syncs), "{syncs} syncs for 1000 futures");
}

#[test]
fn futures_from_many_threads_resolve_through_the_background_syncer() {
    let (_, wal) = mem_wal(SyncPolicy::Always);
    let wal = Arc::new(wal);
    let handles: Vec<_> = (0..8u32)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                for i in 0..200u32 {
                    let seq = wal
                        .put_nowait(&[t.to_be_bytes(), i.to_be_bytes()].concat(), b"v")
                        .unwrap();
                    block_on(wal.durable(seq)).unwrap();
                    assert!(wal.durable_seq() >= seq);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert_eq!(replay_all(&wal).len(), 1600);
}

#[test]
fn a_future_after_close_reports_what_close_did() {
    let (_, wal) = mem_wal(SyncPolicy::Never);
    let seq = wal.put(b"k", b"v").unwrap();
    let pending = wal.durable(seq);
    wal.close().unwrap();
    // Close synced everything, so the future resolves successfully.
    block_on(pending).unwrap();
    assert!(matches!(wal.put_nowait(b"k", b"v"), Err(Error::Closed)));
}

#[test]
fn interval_policy_syncs_in_the_background() {
    let (mem, wal) = mem_wal(SyncPolicy::Interval(Duration::from_millis(5)));
    let seq = wal.put(b"k", b"v").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while wal.durable_seq() < seq {
        assert!(std::time::Instant::now() < deadline, "no background sync");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(mem.syncs() >= 1);
}

/// Appends 1,000-byte values under `policy` until `total` bytes are
/// written, through a small write buffer so that write-only rounds run.
/// Opens a log on a `MemStorage` and appends `total` bytes of 1000-byte
/// values; returns the storage, the log, the last sequence, and the syncs
/// opening the log made (the segment record's).
fn lazy_wal_with_writes(
    policy: SyncPolicy,
    background_sync: Option<u64>,
    total: usize,
) -> (MemStorage, Wal, Seq, u64) {
    let mem = MemStorage::new();
    let options = Options::default()
        .storage(Arc::new(mem.clone()))
        .preallocate(false)
        .sync_policy(policy)
        .write_buffer_size(4096)
        .background_sync_bytes(background_sync);
    let wal = Wal::open("/log", options).unwrap();
    let opened = mem.syncs();
    let value = [7u8; 1000];
    let mut last = Seq::ZERO;
    for i in 0..(total / value.len()) as u32 {
        last = wal.put(&i.to_be_bytes(), &value).unwrap();
    }
    (mem, wal, last, opened)
}

#[test]
fn lazy_policies_sync_in_the_background_every_background_sync_bytes() {
    // An hour-long interval: any sync within the test is a background one.
    for policy in [
        SyncPolicy::Never,
        SyncPolicy::Interval(Duration::from_secs(3600)),
    ] {
        let (mem, wal, last, opened) = lazy_wal_with_writes(policy, Some(64 * 1024), 256 * 1024);
        // About 64 appends fill 64 KiB: the first background sync must
        // cover them; the appends never waited for it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while wal.durable_seq() < Seq::new(64) {
            assert!(
                std::time::Instant::now() < deadline,
                "{policy:?}: no background sync; durable {:?}",
                wal.durable_seq()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(mem.syncs() > opened, "{policy:?}");
        let metrics = wal.metrics();
        assert!(
            metrics.fsyncs >= 1,
            "{policy:?}: background syncs are counted"
        );
        assert!(wal.durable_seq() <= last);
        // That the synced entries survive a power loss is the power-loss
        // harness's business (ironwal-crash draws this option too).
        assert_eq!(replay_all(&wal).len() as u64, last.get());
    }
}

#[test]
fn without_background_sync_a_never_log_does_not_sync_until_asked() {
    let (mem, wal, last, opened) = lazy_wal_with_writes(SyncPolicy::Never, None, 256 * 1024);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(mem.syncs(), opened);
    assert_eq!(wal.durable_seq(), Seq::ZERO);
    wal.sync().unwrap();
    assert_eq!(wal.durable_seq(), last);
    assert_eq!(mem.syncs(), opened + 1);
}

#[test]
fn commit_delay_still_acknowledges_every_append() {
    let mem = MemStorage::new();
    let options = Options::default()
        .storage(Arc::new(mem.clone()))
        .preallocate(false)
        .commit_delay(Some(Duration::from_micros(200)));
    let wal = Arc::new(Wal::open("/log", options).unwrap());
    let handles: Vec<_> = (0..4u32)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                (0..50u32)
                    .map(|i| {
                        let seq = wal
                            .put(&[t.to_be_bytes(), i.to_be_bytes()].concat(), b"v")
                            .unwrap();
                        assert!(wal.durable_seq() >= seq);
                        seq
                    })
                    .count()
            })
        })
        .collect();
    let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 200);
    assert!(mem.syncs() <= 200);
}

#[test]
fn metrics_count_appends_fsyncs_and_group_sizes() {
    let (mem, wal) = mem_wal(SyncPolicy::Always);
    let wal = Arc::new(wal);
    let before = mem.syncs();
    let handles: Vec<_> = (0..4u32)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                for i in 0..100u32 {
                    wal.put(&[t.to_be_bytes(), i.to_be_bytes()].concat(), b"v")
                        .unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let mut batch = WriteBatch::new();
    batch.put(b"a", b"1").put(b"b", b"2");
    wal.write_batch(&batch).unwrap();
    let m = wal.metrics();
    assert_eq!(m.appends, 402);
    assert_eq!(m.batches, 1);
    assert_eq!(m.fsyncs, mem.syncs() - before);
    // Every operation was made durable by exactly one fsync.
    assert_eq!(m.group_sizes.sum(), 402);
    assert_eq!(m.group_sizes.count(), m.fsyncs);
    assert_eq!(m.sync_latency_us.count(), m.fsyncs);
    assert_eq!(m.last_seq, Seq::new(402));
    assert_eq!(m.durable_seq, Seq::new(402));
    assert_eq!(m.segments, 1);
    assert!(!m.poisoned);
    assert!(m.idle_wakeups <= m.wakeups, "{m:?}");
}

#[test]
fn a_lone_appender_is_never_woken_and_waiting_appenders_are() {
    let (_mem, wal) = mem_wal(SyncPolicy::Always);
    for i in 0..50u32 {
        wal.put(&i.to_be_bytes(), b"v").unwrap();
    }
    // It leads every round itself: nobody sleeps, nobody is woken.
    assert_eq!((wal.metrics().wakeups, wal.metrics().idle_wakeups), (0, 0));

    // Appenders held up behind a slow fsync sleep, and a round wakes them.
    let mem = MemStorage::new();
    let options = Options::default()
        .storage(Arc::new(mem))
        .preallocate(false)
        .commit_delay(Some(Duration::from_millis(20)));
    let wal = Arc::new(Wal::open("/log", options).unwrap());
    let handles: Vec<_> = (0..4u32)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || wal.put(&t.to_be_bytes(), b"v").unwrap())
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let m = wal.metrics();
    assert!(m.wakeups >= 1, "{m:?}");
    assert!(m.idle_wakeups <= m.wakeups, "{m:?}");
}

/// Threads that only need their bytes written (a full buffer under a lazy
/// policy, `flush`) wait beside threads that need them synced (`sync`):
/// every round must hand the lead to a thread it did not satisfy, or a
/// syncing thread can sleep forever once the others finish. The threads
/// stop one after another, many times over, so that a wake-up missed as the
/// others leave has nobody to cover for it.
#[test]
fn writers_and_syncers_waiting_together_all_finish() {
    const THREADS: u32 = 8;
    for round in 0..30u32 {
        // A real disk: its fsyncs are slow enough for rounds to overlap.
        let dir = tempfile::tempdir().unwrap();
        let options = Options::default()
            .write_buffer_size(64)
            .sync_policy(SyncPolicy::Never);
        let wal = Arc::new(Wal::open(dir.path(), options).unwrap());
        let (done, finished) = std::sync::mpsc::channel();
        let counts: Vec<u32> = (0..THREADS).map(|t| 5 + (t * 7 + round * 3) % 29).collect();
        for (t, &count) in counts.iter().enumerate() {
            let (wal, done) = (Arc::clone(&wal), done.clone());
            std::thread::spawn(move || {
                for i in 0..count {
                    let key = [(t as u32).to_be_bytes(), i.to_be_bytes()].concat();
                    wal.put(&key, &[7; 80]).unwrap();
                    match (t as u32 + i + round) % 3 {
                        0 => wal.sync().unwrap(),
                        1 => wal.flush().unwrap(),
                        _ => {}
                    }
                }
                done.send(()).unwrap();
            });
        }
        for _ in 0..THREADS {
            // A hang detector, not a timing check: a round takes milliseconds.
            finished
                .recv_timeout(Duration::from_secs(120))
                .expect("a waiting thread was never woken");
        }
        wal.sync().unwrap();
        let total: u32 = counts.iter().sum();
        assert_eq!(wal.durable_seq(), Seq::new(total.into()));
        assert_eq!(replay_all(&wal).len(), total as usize);
    }
}
