//! An append waiting for its fdatasync never holds the store's lock: with
//! every fdatasync held back, reads through the store still answer, under
//! every sync policy and both ways of waiting.

use std::io;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use ironwal::storage::{DirLock, MemStorage, OpenMode, PathKind, Storage, StorageFile};
use ironwal::SyncPolicy;
use ironwal_raft::StoreOptions;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::RaftLogReader;
use parking_lot::{Condvar, Mutex};

use crate::{entries, Store};

/// Long enough that only a thread blocked for good misses it.
const STUCK: Duration = Duration::from_secs(30);

/// Memory storage whose fdatasyncs wait while `held` is set.
#[derive(Debug, Default)]
struct Gate {
    held: Mutex<bool>,
    released: Condvar,
}

#[derive(Debug)]
struct Gated {
    mem: MemStorage,
    gate: Arc<Gate>,
}

#[derive(Debug)]
struct GatedFile {
    file: Arc<dyn StorageFile>,
    gate: Arc<Gate>,
}

impl Storage for Gated {
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
        let gate = Arc::clone(&self.gate);
        Ok(Arc::new(GatedFile { file, gate }))
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

impl StorageFile for GatedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        let mut held = self.gate.held.lock();
        while *held {
            self.gate.released.wait(&mut held);
        }
        drop(held);
        self.file.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn an_append_waiting_for_its_fsync_leaves_the_store_readable() {
    let cases = [
        (SyncPolicy::Always, true),
        (SyncPolicy::Always, false),
        (SyncPolicy::Bytes(1), true),
        (SyncPolicy::Never, true),
    ];
    for (policy, inline) in cases {
        let gate = Arc::new(Gate::default());
        let storage = Gated {
            mem: MemStorage::new(),
            gate: Arc::clone(&gate),
        };
        let wal = ironwal::Options::default()
            .storage(Arc::new(storage))
            .preallocate(false)
            .sync_policy(policy);
        let options = StoreOptions::default().wal(wal).sync_on_append(inline);
        let rt = runtime();
        let mut store = Store::open("/raft", options).unwrap();
        rt.block_on(store.blocking_append(entries(1, 1..=3)))
            .unwrap();
        let mut reader = rt.block_on(store.get_log_reader());

        *gate.held.lock() = true;
        let (appended, waiting) = mpsc::channel();
        let appender = std::thread::spawn(move || {
            let rt = runtime();
            let result = rt.block_on(store.blocking_append(entries(1, 4..=4)));
            let _ = appended.send(result.is_ok());
            store
        });
        // The append is under way (its entry is in the store), held in its
        // fdatasync, or waiting for the syncer's.
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            waiting.try_recv().is_err(),
            "{policy:?}: the append did not wait"
        );
        let (read, got) = mpsc::channel();
        std::thread::spawn(move || {
            let rt = runtime();
            let entries = rt.block_on(reader.try_get_log_entries(1..=3)).unwrap();
            let _ = read.send(entries.len());
        });
        let count = got.recv_timeout(STUCK);
        *gate.held.lock() = false;
        gate.released.notify_all();
        assert_eq!(
            count,
            Ok(3),
            "{policy:?} inline={inline}: a read waited on the append's fsync"
        );
        assert_eq!(waiting.recv_timeout(STUCK), Ok(true), "{policy:?}");
        let store = appender.join().unwrap();
        store.close().unwrap();
    }
}
