//! ironwal, through its public API: `Wal::put` under `SyncPolicy::Always` or
//! `Never`, and `LogReader`'s borrowing `next_entry` for replay.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use ironwal::storage::{default_storage, DirLock, OpenMode, PathKind, Storage, StorageFile};
use ironwal::{LogReader, Options, RecoveryMode, SyncPolicy, Wal};

use super::{Log, Mode, Peer, Tally, Writer};
use crate::plan::Workload;

pub struct Ironwal;

impl Peer for Ironwal {
    fn name(&self) -> &'static str {
        "ironwal"
    }

    fn note(&self, workload: Workload) -> Option<&'static str> {
        match workload {
            Workload::W4 => Some("LogReader, borrowing next_entry"),
            _ => None,
        }
    }

    fn open(&self, dir: &Path, mode: Mode) -> Result<Box<dyn Log>> {
        let policy = match mode {
            Mode::Durable => SyncPolicy::Always,
            Mode::Unsynced | Mode::ReplayLog => SyncPolicy::Never,
        };
        let storage = Arc::new(CountingStorage::new(default_storage()));
        let options = Options::default()
            .sync_policy(policy)
            .storage(storage.clone());
        let wal = Wal::open(dir, options)?;
        Ok(Box::new(IronwalLog { wal, storage }))
    }

    fn replay(&self, dir: &Path, tally: &mut Tally) -> Result<()> {
        let mut reader = LogReader::open(dir, RecoveryMode::TolerateTornTail)?;
        while let Some(entry) = reader.next_entry()? {
            tally.see(entry.key, entry.value.unwrap_or_default());
        }
        Ok(())
    }
}

struct IronwalLog {
    wal: Wal,
    storage: Arc<CountingStorage>,
}

impl Log for IronwalLog {
    fn writer(&self, _id: usize) -> Result<Box<dyn Writer + '_>> {
        Ok(Box::new(IronwalWriter(&self.wal)))
    }

    fn flush(&self) -> Result<()> {
        Ok(self.wal.flush()?)
    }

    fn fsyncs(&self) -> Option<u64> {
        Some(self.storage.syncs.load(Ordering::Relaxed))
    }

    fn close(self: Box<Self>) -> Result<()> {
        Ok(self.wal.close()?)
    }
}

struct IronwalWriter<'a>(&'a Wal);

impl Writer for IronwalWriter<'_> {
    #[inline]
    fn append(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.0.put(key, value)?;
        Ok(())
    }
}

/// The default storage, counting fdatasyncs of files (directory syncs are
/// not counted).
///
/// Every method is forwarded, the provided ones too: a method left to its
/// trait default here would benchmark a different ironwal from the one users
/// get.
#[derive(Debug)]
struct CountingStorage {
    inner: Arc<dyn Storage>,
    syncs: Arc<AtomicU64>,
}

impl CountingStorage {
    fn new(inner: Arc<dyn Storage>) -> Self {
        CountingStorage {
            inner,
            syncs: Arc::default(),
        }
    }
}

impl Storage for CountingStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }

    fn kind_of(&self, path: &Path) -> io::Result<PathKind> {
        self.inner.kind_of(path)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(CountingFile {
            inner: self.inner.open(path, mode)?,
            syncs: Arc::clone(&self.syncs),
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }

    fn try_lock_dir(&self, dir: &Path) -> io::Result<Option<Box<dyn DirLock>>> {
        self.inner.try_lock_dir(dir)
    }
}

#[derive(Debug)]
struct CountingFile {
    inner: Arc<dyn StorageFile>,
    syncs: Arc<AtomicU64>,
}

impl StorageFile for CountingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.inner.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn is_empty(&self) -> io::Result<bool> {
        self.inner.is_empty()
    }
}
