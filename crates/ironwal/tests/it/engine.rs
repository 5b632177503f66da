//! The append engine's promises under hostile timing: an append that does
//! not wait never waits for an fsync, and a leader that panics in the
//! middle of its I/O poisons the log instead of leaving every other
//! appender asleep.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use ironwal::storage::{DirLock, MemStorage, OpenMode, PathKind, Storage, StorageFile};
use ironwal::{Error, Options, SyncPolicy, Wal};
use parking_lot::{Condvar, Mutex};

/// Long enough that only a thread blocked for good misses it.
const STUCK: Duration = Duration::from_secs(30);

/// What the hooks do to file I/O.
#[derive(Debug, Default)]
struct Hooks {
    /// While set, every `sync_data` blocks.
    syncs_held: Mutex<bool>,
    released: Condvar,
    /// While set, every `write_all_at` panics.
    writes_panic: AtomicBool,
    /// While set, every `write_all_at` blocks.
    writes_held: Mutex<bool>,
    /// Writes blocked right now.
    writes_waiting: AtomicUsize,
    /// Every `start_writeback` asked for: (offset, len).
    writebacks: Mutex<Vec<(u64, u64)>>,
}

impl Hooks {
    fn hold_syncs(&self, held: bool) {
        *self.syncs_held.lock() = held;
        self.released.notify_all();
    }

    fn hold_writes(&self, held: bool) {
        *self.writes_held.lock() = held;
        self.released.notify_all();
    }
}

/// Memory storage with [`Hooks`] on its files.
#[derive(Debug)]
struct Hooked {
    mem: MemStorage,
    hooks: Arc<Hooks>,
}

#[derive(Debug)]
struct HookedFile {
    file: Arc<dyn StorageFile>,
    hooks: Arc<Hooks>,
}

impl Storage for Hooked {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.mem.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.mem.list(dir)
    }
    fn kind_of(&self, path: &Path) -> io::Result<PathKind> {
        self.mem.kind_of(path)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let file = self.mem.open(path, mode)?;
        let hooks = Arc::clone(&self.hooks);
        Ok(Arc::new(HookedFile { file, hooks }))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.mem.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.mem.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.mem.sync_dir(dir)
    }
    fn try_lock_dir(&self, dir: &Path) -> io::Result<Option<Box<dyn DirLock>>> {
        self.mem.try_lock_dir(dir)
    }
}

impl StorageFile for HookedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.hooks.writes_panic.load(Ordering::SeqCst) {
            panic!("injected panic in write_all_at");
        }
        let mut held = self.hooks.writes_held.lock();
        if *held {
            self.hooks.writes_waiting.fetch_add(1, Ordering::SeqCst);
            while *held {
                self.hooks.released.wait(&mut held);
            }
            self.hooks.writes_waiting.fetch_sub(1, Ordering::SeqCst);
        }
        drop(held);
        self.file.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        let mut held = self.hooks.syncs_held.lock();
        while *held {
            self.hooks.released.wait(&mut held);
        }
        drop(held);
        self.file.sync_data()
    }
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        self.hooks.writebacks.lock().push((offset, len));
        self.file.start_writeback(offset, len)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }
}

/// Under the lazy policies the background syncer starts the write-back of
/// each MiB written, between its syncs: every range once, in order, inside
/// what was written. Under `Always` (every round syncs) and without
/// background syncs, there is none.
#[test]
fn the_background_syncer_starts_the_write_back_of_what_was_written() {
    const VALUE: usize = 4096;
    const APPENDS: usize = 1024; // 4 MiB and a little more, in one segment
    let cases = [
        (SyncPolicy::Never, Some(64 << 20), true),
        (
            SyncPolicy::Interval(Duration::from_secs(3600)),
            Some(64 << 20),
            true,
        ),
        (SyncPolicy::Never, None, false),
        (SyncPolicy::Always, Some(64 << 20), false),
    ];
    for (policy, background, hints) in cases {
        let options = Options::default()
            .sync_policy(policy)
            .background_sync_bytes(background)
            .write_buffer_size(64 * 1024);
        let (hooks, wal) = hooked_wal_with(options);
        for i in 0..APPENDS {
            wal.put(&(i as u32).to_be_bytes(), &[3; VALUE]).unwrap();
        }
        wal.flush().unwrap();
        let written = wal.metrics().bytes;
        if hints {
            // The syncer works on its own thread: wait for it to catch up
            // with all but the last step.
            let started = std::time::Instant::now();
            let covered = || hooks.writebacks.lock().iter().map(|r| r.1).sum::<u64>();
            while covered() < 3 << 20 {
                assert!(
                    started.elapsed() < STUCK,
                    "{policy:?}: no write-back started"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        wal.close().unwrap();
        let ranges = hooks.writebacks.lock().clone();
        if !hints {
            assert!(ranges.is_empty(), "{policy:?}/{background:?}: {ranges:?}");
            continue;
        }
        let mut end = 0;
        for &(offset, len) in &ranges {
            assert_eq!(
                offset, end,
                "{policy:?}: ranges must follow each other: {ranges:?}"
            );
            assert!(
                len >= 1 << 20,
                "{policy:?}: a hint below the step: {ranges:?}"
            );
            end = offset + len;
        }
        assert!(
            end <= written,
            "{policy:?}: {end} past the {written} bytes written"
        );
    }
}

fn hooked_wal(policy: SyncPolicy) -> (Arc<Hooks>, Wal) {
    hooked_wal_with(
        Options::default()
            .write_buffer_size(4096)
            .sync_policy(policy),
    )
}

fn hooked_wal_with(options: Options) -> (Arc<Hooks>, Wal) {
    let hooks = Arc::new(Hooks::default());
    let storage = Hooked {
        mem: MemStorage::new(),
        hooks: Arc::clone(&hooks),
    };
    let options = options.storage(Arc::new(storage)).preallocate(false);
    (hooks, Wal::open("/log", options).unwrap())
}

/// Runs `f` on a thread of its own; its result, or `None` if it is still
/// blocked after [`STUCK`].
fn within_bound<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(STUCK).ok()
}

#[test]
fn nowait_appends_never_wait_for_an_fsync_under_any_policy() {
    let policies = [
        SyncPolicy::Always,
        SyncPolicy::Bytes(256),
        SyncPolicy::Interval(Duration::from_millis(1)),
        SyncPolicy::Never,
    ];
    for policy in policies {
        let (hooks, wal) = hooked_wal(policy);
        let wal = Arc::new(wal);
        hooks.hold_syncs(true);
        let appender = Arc::clone(&wal);
        // 1,000 entries of ~120 bytes: many times the sync threshold and
        // the write buffer.
        let appended = within_bound(move || {
            (0..1000u32)
                .map(|i| appender.put_nowait(&i.to_be_bytes(), &[7; 100]))
                .collect::<Result<Vec<_>, _>>()
        });
        let seqs = appended
            .unwrap_or_else(|| panic!("{policy:?}: put_nowait waited for an fsync"))
            .unwrap();
        hooks.hold_syncs(false);
        wal.wait_durable(*seqs.last().unwrap()).unwrap();
        assert_eq!(wal.durable_seq(), *seqs.last().unwrap(), "{policy:?}");
    }
}

/// A rotation seals the full segment, but the fdatasync that makes it
/// durable is not the appender's to wait for: a nowait append that rotates
/// returns while fsyncs are held (the seal runs before anything is written
/// to the new segment).
#[test]
fn a_nowait_append_that_rotates_does_not_wait_for_the_seal() {
    let policies = [
        SyncPolicy::Always,
        SyncPolicy::Bytes(1 << 20),
        SyncPolicy::Interval(Duration::from_secs(3600)),
        SyncPolicy::Never,
    ];
    for policy in policies {
        let options = Options::default()
            .sync_policy(policy)
            .max_segment_size(16 * 1024)
            .write_buffer_size(64 * 1024);
        let (hooks, wal) = hooked_wal_with(options);
        let wal = Arc::new(wal);
        hooks.hold_syncs(true);
        let appender = Arc::clone(&wal);
        // ~24 KiB: one rotation, at 16 KiB.
        let appended = within_bound(move || {
            (0..200u32)
                .map(|i| appender.put_nowait(&i.to_be_bytes(), &[7; 100]))
                .collect::<Result<Vec<_>, _>>()
        });
        let seqs = appended
            .unwrap_or_else(|| panic!("{policy:?}: a rotating put_nowait waited for the seal"))
            .unwrap();
        assert_eq!(wal.segments().len(), 2, "{policy:?}: one rotation");
        hooks.hold_syncs(false);
        let last = *seqs.last().unwrap();
        wal.wait_durable(last).unwrap();
        let replayed = ironwal_testkit::replay_all(&wal);
        assert_eq!(replayed.len(), 200, "{policy:?}");
    }
}

/// A nowait append that finds the buffer full while a syncing round is
/// writing waits for that write, and not for the fsync that follows it.
#[test]
fn a_nowait_append_behind_a_syncing_round_does_not_wait_for_its_fsync() {
    let (hooks, wal) = hooked_wal(SyncPolicy::Always);
    let wal = Arc::new(wal);
    hooks.hold_writes(true);
    hooks.hold_syncs(true);
    // A durable append leads a round that stops in its write.
    let leader = Arc::clone(&wal);
    let durable = std::thread::spawn(move || leader.put(b"durable", b"v"));
    while hooks.writes_waiting.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Nowait appends fill the buffer (4 KiB) and wait for a write.
    let appender = Arc::clone(&wal);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let appended: Result<Vec<_>, _> = (0..100u32)
            .map(|i| appender.put_nowait(&i.to_be_bytes(), &[7; 100]))
            .collect();
        let _ = tx.send(appended);
    });
    std::thread::sleep(Duration::from_millis(100));
    // The round's write ends; its fsync stays held.
    hooks.hold_writes(false);
    let appended = rx
        .recv_timeout(STUCK)
        .expect("the nowait appends slept through the round's fsync");
    assert_eq!(appended.unwrap().len(), 100);
    hooks.hold_syncs(false);
    durable.join().unwrap().unwrap();
}

#[test]
fn a_panic_during_the_log_io_poisons_it_instead_of_hanging_other_appenders() {
    let (hooks, wal) = hooked_wal(SyncPolicy::Always);
    let wal = Arc::new(wal);
    wal.put(b"before", b"v").unwrap();
    hooks.writes_panic.store(true, Ordering::SeqCst);
    let panicked = catch_unwind(AssertUnwindSafe(|| wal.put(b"during", b"v")));
    assert!(panicked.is_err(), "the injected panic reaches the appender");
    hooks.writes_panic.store(false, Ordering::SeqCst);

    let other = Arc::clone(&wal);
    let after = within_bound(move || other.put(b"after", b"v"))
        .expect("an append after the leader's panic must not hang");
    assert!(
        matches!(after, Err(Error::Poisoned { .. })),
        "the log is poisoned after a panic in its I/O: {after:?}"
    );
}
