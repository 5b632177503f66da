//! How `ironwal bench` and `ironwal-bench` measure: latency percentiles,
//! peak memory, and fdatasyncs counted at the storage seam.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ironwal::storage::{DirLock, OpenMode, PathKind, Storage, StorageFile};

/// The latency at quantile `q` (nearest rank) of nanosecond samples sorted
/// ascending, in microseconds; 0 without samples.
pub fn percentile_us(sorted_ns: &[u64], q: f64) -> f64 {
    let rank = ((q * sorted_ns.len() as f64).ceil() as usize).max(1);
    // Past the end only for q > 1; no samples, no latency.
    sorted_ns
        .get(rank - 1)
        .or(sorted_ns.last())
        .map_or(0.0, |ns| *ns as f64 / 1e3)
}

/// This process's peak resident set size (VmHWM) in MiB, from /proc
/// (Linux only).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// A storage that counts the fdatasyncs of its files (directory syncs are
/// not counted) and forwards everything to another.
///
/// Every method is forwarded, the provided ones too: a method left to its
/// trait default here would measure a different ironwal from the one users
/// get.
#[derive(Debug)]
pub struct CountingStorage {
    inner: Arc<dyn Storage>,
    syncs: Arc<AtomicU64>,
}

impl CountingStorage {
    /// Counts what goes through to `inner`.
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        CountingStorage {
            inner,
            syncs: Arc::default(),
        }
    }

    /// File fdatasyncs so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
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

    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.start_writeback(offset, len)
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

#[cfg(test)]
mod tests {
    use super::*;
    use ironwal::storage::MemStorage;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let ns: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_us(&ns, 0.50), 50.0);
        assert_eq!(percentile_us(&ns, 0.99), 99.0);
        assert_eq!(percentile_us(&ns, 1.0), 100.0);
        assert_eq!(percentile_us(&[], 0.99), 0.0);
    }

    #[test]
    fn file_syncs_are_counted_and_directory_syncs_are_not() {
        let storage = CountingStorage::new(Arc::new(MemStorage::new()));
        storage.create_dir_all(Path::new("/d")).unwrap();
        let file = storage
            .open(Path::new("/d/f"), OpenMode::CreateNew)
            .unwrap();
        file.write_all_at(b"x", 0).unwrap();
        file.sync_data().unwrap();
        storage.sync_dir(Path::new("/d")).unwrap();
        assert_eq!(storage.syncs(), 1);
    }
}
